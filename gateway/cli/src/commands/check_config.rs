//! `jianmen check-config`: validates a configuration file, rule files included, without
//! starting anything.

use std::path::PathBuf;

use anyhow::Result;
use jianmen_mta::config::Config;
use jianmen_scan::rules::RuleSet;

/// Options of `jianmen check-config`.
#[derive(clap::Args)]
pub struct Args {
    /// Configuration file (TOML).
    #[arg(long, short, default_value = "/etc/jianmen/jianmen.toml")]
    pub config: PathBuf,
}

/// Loads the configuration and compiles its rules; prints a one-line summary.
pub fn run(args: Args) -> Result<()> {
    let path = args.config;
    let config = Config::load(&path)?;
    let shipped = jianmen_mta::upgrade::release::shipped();
    let rules = RuleSet::load(
        config.scan.builtin_rules,
        shipped.rules.as_deref(),
        &config.scan.rules,
    )?;
    println!(
        "{}: ok ({} protected domain(s), {} route(s), {} rules)",
        path.display(),
        config.domains.protected.len(),
        config.routes.len(),
        rules.len()
    );
    Ok(())
}
