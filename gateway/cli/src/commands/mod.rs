//! One module per `jianmen` command, each with its options (`Args`) and what it does; the
//! helpers below are what several commands share.

pub mod account;
pub mod audit;
pub mod backup;
pub mod cert_sm2;
pub mod check_config;
pub mod demo;
pub mod dkim;
pub mod eval;
pub mod features;
pub mod generate_docs;
pub mod quarantine;
pub mod queue;
pub mod retrain;
pub mod scan;
pub mod serve;
pub mod tls_probe;
pub mod train_ngram;
pub mod upgrade;

use std::path::PathBuf;

use anyhow::{Result, bail};
use jianmen_mta::audit::AuditLog;
use jianmen_mta::config::Config;
use jianmen_mta::queue::spool::is_queue_id;

/// `--config FILE` of the commands with subcommands, accepted before or after the subcommand
/// (`jianmen audit --config F list` and `jianmen audit list --config F`).
#[derive(clap::Args)]
pub struct ConfigPath {
    /// Configuration file (TOML); its data directory holds the queue, quarantine and audit log.
    #[arg(
        id = "config",
        value_name = "CONFIG",
        long = "config",
        short = 'c',
        global = true,
        default_value = "/etc/jianmen/jianmen.toml"
    )]
    pub path: PathBuf,
}

/// Logs to the systemd journal when systemd connected our stderr to it (tracing events reach
/// it through the `log` facade, fields folded into the message); to stderr otherwise.
pub fn init_logging() {
    if systemd_journal_logger::connected_to_journal()
        && let Ok(journal) = systemd_journal_logger::JournalLog::new()
        && journal.install().is_ok()
    {
        log::set_max_level(log::LevelFilter::Info);
        return;
    }
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("JIANMEN_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .init();
}

/// Refuses anything but a queue id before it reaches a store or a file name.
pub fn check_id(id: &str) -> Result<()> {
    if !is_queue_id(id) {
        bail!("`{id}` is not a queue id (26 characters, 0-9 and A-Z)");
    }
    Ok(())
}

/// Becomes the service account (`server.user`) when run as root on a data directory that
/// account owns, before a command opens it: a file it creates there (SQLite's `-wal` and
/// `-shm`, a signing key) must be the service's, or the gateway can no longer write it. Files
/// the command writes for the caller are opened before this. A directory of root's (a copy
/// examined elsewhere, a test) is left as it is.
pub fn as_service(config: &Config) -> Result<()> {
    use std::os::unix::fs::MetadataExt;
    let Ok(meta) = std::fs::metadata(&config.server.data_dir) else {
        return Ok(());
    };
    let owner = nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(meta.uid()))?;
    if owner.is_some_and(|o| o.name == config.server.user) {
        jianmen_mta::privilege::drop_root(&config.server.user)?;
    }
    Ok(())
}

/// Appends a command-line action to the audit log (`cli:<login>` as the actor).
pub async fn record(config: &Config, action: &str, detail: &str) -> Result<()> {
    let store = jianmen_mta::store::Store::open(config).await?;
    let log = AuditLog::open_in(&store).await?;
    log.append(&cli_actor(), action, detail).await?;
    Ok(())
}

/// Who runs a command-line action, as the audit log and the quarantine record it:
/// `cli:<login>`.
pub fn cli_actor() -> String {
    let login = std::env::var("SUDO_USER")
        .or_else(|_| std::env::var("USER"))
        .unwrap_or_else(|_| "unknown".into());
    format!("cli:{login}")
}
