//! `jianmen backup` and `jianmen restore`: the gateway's configuration, keys and settings in one
//! file sealed with a passphrase (see [`jianmen_mta::backup`]), and putting them back. A restore
//! is root's, with the gateway stopped: the configuration directory is written as root, then the
//! keys and settings as the service account; the gateway takes the settings when it starts.

use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use jianmen_mta::backup;
use jianmen_mta::config::Config;
use jianmen_mta::lock::DataDirLock;
use jianmen_webui::backup::databases;

/// Options of `jianmen backup`.
#[derive(clap::Args)]
pub struct BackupArgs {
    #[command(flatten)]
    config: super::ConfigPath,
    /// Where to write the sealed backup (made mode 0600; an existing file is not replaced).
    #[arg(long)]
    out: PathBuf,
    /// File whose first line is the passphrase (at least 12 characters), or `-` to read it
    /// from standard input. Without the passphrase the backup cannot be restored.
    #[arg(long)]
    passphrase_file: PathBuf,
}

/// Options of `jianmen restore`.
#[derive(clap::Args)]
pub struct RestoreArgs {
    /// Where the restored configuration file goes (the files beside it go beside it).
    #[command(flatten)]
    config: super::ConfigPath,
    /// The sealed backup.
    #[arg(long)]
    from: PathBuf,
    /// File whose first line is the passphrase, or `-` for standard input.
    #[arg(long)]
    passphrase_file: PathBuf,
    /// Also put the backup's configuration files in place (look at them first: without this
    /// they are written to `restored-<time>/` beside the configuration for you to compare).
    #[arg(long)]
    configuration: bool,
}

fn passphrase(path: &Path) -> Result<String> {
    let mut text = String::new();
    if path == Path::new("-") {
        std::io::stdin()
            .take(4096)
            .read_to_string(&mut text)
            .context("reading the passphrase from standard input")?;
    } else {
        std::fs::File::open(path)
            .and_then(|f| f.take(4096).read_to_string(&mut text))
            .with_context(|| format!("reading {}", path.display()))?;
    }
    let line = text.lines().next().unwrap_or_default().to_owned();
    if line.is_empty() {
        bail!(
            "the passphrase (the first line of {}) is empty",
            path.display()
        );
    }
    Ok(line)
}

/// Runs `jianmen backup`.
pub async fn backup(args: BackupArgs) -> Result<()> {
    let config = Config::load(&args.config.path)?;
    let passphrase = passphrase(&args.passphrase_file)?;
    // Opened first, by the caller: the file is theirs, not the service account's.
    let mut out = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    // Reading the databases as root could leave root's files in the data directory.
    super::as_service(&config)?;
    let made = match backup::make(&config, &databases(&config), &passphrase).await {
        Ok(made) => made,
        Err(e) => {
            let _ = std::fs::remove_file(&args.out);
            return Err(e.into());
        }
    };
    out.write_all(&made.sealed)
        .and_then(|()| out.sync_all())
        .with_context(|| format!("writing {}", args.out.display()))?;
    super::record(
        &config,
        "backup.make",
        &format!(
            "{} files, {} bytes",
            made.manifest.files.len(),
            made.sealed.len()
        ),
    )
    .await?;
    println!(
        "{}: {} files ({} bytes sealed)",
        args.out.display(),
        made.manifest.files.len(),
        made.sealed.len()
    );
    for path in &made.manifest.outside {
        println!("not in the backup (outside the configuration directory): {path}");
    }
    Ok(())
}

/// Runs `jianmen restore`.
pub async fn restore(args: RestoreArgs) -> Result<()> {
    let passphrase = passphrase(&args.passphrase_file)?;
    let mut sealed = Vec::new();
    std::fs::File::open(&args.from)
        .and_then(|f| {
            f.take(backup::MAX_BYTES as u64 * 2)
                .read_to_end(&mut sealed)
        })
        .with_context(|| format!("reading {}", args.from.display()))?;
    let opened = backup::open(&sealed, &passphrase)?;
    // Where things go is this machine's configuration's to say (root's file), never the
    // backup's: whoever sealed the backup chose what is in it.
    let current = Config::load_file(&args.config.path).with_context(|| {
        "the configuration of this machine (install the package first: it makes one, and the \
         data directory)"
    })?;
    let data_dir = &current.server.data_dir;
    if args.configuration
        && (opened.config.server.data_dir != *data_dir
            || opened.config.spool_dir() != current.spool_dir())
    {
        bail!(
            "the backup's configuration keeps its data in {} (spool {}), this machine's in {} \
             (spool {}): restore onto a machine installed the same way, or without \
             --configuration",
            opened.config.server.data_dir.display(),
            opened.config.spool_dir().display(),
            data_dir.display(),
            current.spool_dir().display()
        );
    }
    check_owner(&current)?;
    // Held until the end: the gateway cannot start meanwhile.
    let _lock = DataDirLock::take(data_dir)?;
    opened.check_spool_key(data_dir, &current.spool_dir())?;
    let differing = opened.configuration_changes(&args.config.path);
    let etc = opened.restore_configuration(&args.config.path, args.configuration)?;
    super::as_service(&current)?;
    let data = opened.restore_data(data_dir)?;
    let config = &current;
    super::record(
        config,
        "backup.restore",
        &format!(
            "made {} on {} by version {}: {} files written, {} unchanged",
            opened.manifest.made_at,
            opened.manifest.hostname,
            opened.manifest.version,
            etc.changed.len() + data.changed.len(),
            etc.unchanged + data.unchanged
        ),
    )
    .await?;
    for path in etc.changed.iter().chain(&data.changed) {
        println!("written: {}", path.display());
    }
    for path in etc.kept.iter().chain(&data.kept) {
        println!("kept (replaced): {}", path.display());
    }
    for path in &opened.manifest.outside {
        println!("not in the backup, put it back by hand: {path}");
    }
    if !args.configuration {
        println!(
            "the backup's configuration files are in {} for you to compare; {} differ from \
             those in place ({}). Put them in place yourself, or run again with \
             --configuration once you have checked them",
            backup::directory_of(&args.config.path)
                .join(format!("restored-{}", opened.manifest.made_at))
                .display(),
            differing.len(),
            differing.join(", ")
        );
    }
    println!(
        "restored: start the gateway (systemctl start jianmen); it takes the policy, lists and \
         accounts at its start, and every console session ends"
    );
    Ok(())
}

/// Refuses a data directory that is not `server.user`'s (or root's, for a gateway run as
/// root): keys written there as root would be unreadable to the gateway, or land somewhere
/// else than the gateway's own directory.
fn check_owner(config: &Config) -> Result<()> {
    use std::os::unix::fs::MetadataExt;
    let data_dir = &config.server.data_dir;
    let meta = std::fs::metadata(data_dir).with_context(|| {
        format!(
            "{} (server.data_dir): install the package, which makes it",
            data_dir.display()
        )
    })?;
    let owner = nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(meta.uid()))?;
    if owner.is_some_and(|o| o.name == config.server.user) {
        return Ok(());
    }
    bail!(
        "{} is not owned by {} (server.user): not the gateway's data directory as installed",
        data_dir.display(),
        config.server.user
    )
}
