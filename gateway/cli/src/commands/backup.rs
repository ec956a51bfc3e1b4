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
use jianmen_webui::backup::DATABASES;

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
    let made = match backup::make(&config, &DATABASES, &passphrase).await {
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
    let config = &opened.config;
    let data_dir = &config.server.data_dir;
    if !data_dir.is_dir() {
        bail!(
            "{} (server.data_dir of the backup's configuration) does not exist: install the \
             package, which makes it, or make it owned by {}",
            data_dir.display(),
            config.server.user
        );
    }
    // Held until the end: the gateway cannot start meanwhile.
    let _lock = DataDirLock::take(data_dir)?;
    opened.check_spool_key(data_dir, &config.spool_dir())?;
    let etc = opened.restore_configuration(&args.config.path)?;
    super::as_service(config)?;
    let data = opened.restore_data(data_dir)?;
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
    println!(
        "restored: start the gateway (systemctl start jianmen); it takes the policy, lists and \
         accounts at its start, and every console session ends"
    );
    Ok(())
}
