//! `jianmen check-config`: validates a configuration file without starting anything — its
//! keys, and what serving would load from it: rule files, certificates and keys, DKIM keys, the
//! model.

use std::path::PathBuf;

use anyhow::{Context, Result};
use jianmen_mta::config::Config;
use jianmen_mta::settings::SettingsState;
use jianmen_scan::rules::RuleSet;

/// Options of `jianmen check-config`.
#[derive(clap::Args)]
pub struct Args {
    /// Configuration file (TOML).
    #[arg(long, short, default_value = "/etc/jianmen/jianmen.toml")]
    pub config: PathBuf,
}

/// Loads the configuration, compiles its rules, reads its certificates and keys and loads its
/// content model, as `serve` would; prints a one-line summary. A file `serve` could not use
/// fails here, named, instead of at start (or, for the model, by scanning without it).
pub fn run(args: Args) -> Result<()> {
    let path = args.config;
    let config = Config::load(&path)?;
    let shipped = jianmen_mta::upgrade::release::shipped();
    let rules = RuleSet::load(
        config.scan.builtin_rules,
        shipped.rules.as_deref(),
        &config.scan.rules,
    )?;
    // Points given to a symbol no rule or block list emits would change nothing: serve refuses
    // them, so this does too.
    let zones: Vec<&str> = config
        .scan
        .dnsbl
        .iter()
        .chain(&config.scan.uribl)
        .map(|z| z.symbol.as_str())
        .collect();
    if let Some(name) = config
        .scan
        .scores
        .keys()
        .find(|n| rules.info(n).is_none() && !zones.contains(&n.as_str()))
    {
        anyhow::bail!("scan.scores.{name}: no rule or check has this symbol");
    }
    if let Some(tls) = &config.tls {
        jianmen_gm::tls::ServerTls::new(tls, &config.server.hostname).context("[tls]")?;
    }
    if let Some(directory) = &config.directory {
        jianmen_mta::directory::Directory::new(directory)
            .map_err(anyhow::Error::msg)
            .context("[directory]")?;
    }
    let signer = jianmen_mta::dkim::DkimSigner::load(&config.dkim, &config.server.data_dir)
        .context("[dkim]")?;
    if config.scan.enabled {
        jianmen_scan::pipeline::load_model(
            &config.scan.model,
            Some(&config.server.data_dir),
            shipped.model.as_deref(),
        )
        .map_err(anyhow::Error::msg)
        .context("scan.model")?;
        jianmen_scan::ngram::SiteModel::load(&config.scan.ngram, Some(&config.server.data_dir))
            .map_err(anyhow::Error::msg)
            .context("scan.ngram")?;
    }
    match &config.settings {
        SettingsState::None => {}
        SettingsState::Applied => println!(
            "with the settings changed in the console ({})",
            jianmen_mta::settings::path(&config.server.data_dir).display()
        ),
        SettingsState::Refused(why) => println!(
            "the settings changed in the console are NOT applied (the file's values run): {why}"
        ),
        // Known only to a start that tried to bind them.
        SettingsState::ListenersRefused(_) => {}
    }
    println!(
        "{}: ok ({} protected domain(s), {} route(s), {} rules, {} internal relay(s), {} DKIM \
         key(s), {} DLP policies)",
        path.display(),
        config.domains.protected.len(),
        config.routes.len(),
        rules.len(),
        config.smtp.internal_relays.len(),
        signer.published_keys().len(),
        config.dlp.policy.len(),
    );
    Ok(())
}
