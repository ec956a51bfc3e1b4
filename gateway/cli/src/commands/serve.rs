//! `jianmen serve`: the gateway itself, wired by [`crate::daemon`].

use std::path::PathBuf;

use anyhow::Result;
use jianmen_mta::config::Config;
use jianmen_mta::upgrade::release::Releases;

/// Options of `jianmen serve`.
#[derive(clap::Args)]
pub struct Args {
    /// Configuration file (TOML).
    #[arg(long, short, default_value = "/etc/jianmen/jianmen.toml")]
    pub config: PathBuf,
}

/// Runs the gateway until it is told to stop.
pub async fn run(args: Args) -> Result<()> {
    super::init_logging();
    let config = Config::load(&args.config)?;
    if let jianmen_mta::settings::SettingsState::Refused(why) = &config.settings {
        tracing::error!(
            "the settings changed in the console are not applied, the configuration file's run: {why}"
        );
    }
    crate::daemon::run(config, Releases::from_env()).await?;
    Ok(())
}
