//! `jianmen audit`: check, list and export the tamper-evident audit log, and verify an exported
//! package on any machine.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Subcommand;
use jianmen_gm::signing::PackageSigner;
use jianmen_mta::audit::{AuditLog, export};
use jianmen_mta::config::Config;

use super::record;

/// Options of `jianmen audit`.
#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub config: super::ConfigPath,
    #[command(subcommand)]
    action: AuditAction,
}

/// What `jianmen audit` does.
#[derive(Subcommand)]
enum AuditAction {
    /// Check every row's hash and link; exit status 4 names the first broken row.
    Verify,
    /// Show the newest entries (seq, time, actor, action, detail).
    List {
        /// Most entries shown.
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
    /// Write the signed package for the authorities (CSV + JSON + signed manifest).
    Export {
        /// Output file (.tar).
        #[arg(long, short)]
        out: PathBuf,
    },
    /// Check a package: signature, file digests and the hash chain (exit status 4 if it
    /// fails; 5, UNVERIFIED, when it is intact but no registered key was given to check the
    /// signer against). Needs no configuration: the authorities run it on their own machine.
    VerifyExport {
        /// The package.
        file: PathBuf,
        /// The gateway's registered public key (hex, as `audit public-key` prints it); without
        /// it, anyone's self-signed package would pass, so the result is UNVERIFIED and the
        /// signer's fingerprint is printed for comparison.
        #[arg(long)]
        public_key: Option<String>,
    },
    /// Print the public key that signs exports (register it with the authorities).
    PublicKey,
}

/// Runs one audit action; exit status 4 when a check finds tampering.
pub async fn run(args: Args) -> Result<ExitCode> {
    // Needs no configuration: the authorities run it on their own machine.
    if let AuditAction::VerifyExport { file, public_key } = &args.action {
        return verify_export(file, public_key.as_deref());
    }
    let config = &Config::load(&args.config.path)?;
    let action = args.action;
    // The export goes where the caller asked, written with the caller's rights.
    let mut export_file = match &action {
        AuditAction::Export { out } => Some(
            std::fs::File::create(out).with_context(|| format!("creating {}", out.display()))?,
        ),
        _ => None,
    };
    super::as_service(config)?;
    let store = jianmen_mta::store::Store::open(config).await?;
    let log = AuditLog::open_in(&store).await?;
    match action {
        AuditAction::Verify => match log.verify().await {
            Ok((rows, head)) => {
                println!("audit log intact: {rows} row(s); newest hash {head}");
                Ok(ExitCode::SUCCESS)
            }
            Err(e @ jianmen_mta::audit::AuditError::Broken { .. }) => {
                println!("TAMPERED: {e}");
                Ok(ExitCode::from(4))
            }
            Err(e) => Err(e.into()),
        },
        AuditAction::List { limit } => {
            for e in log.recent(limit).await? {
                println!(
                    "{}\t{}\t{}\t{}\t{}",
                    e.seq, e.at, e.actor, e.action, e.detail
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        AuditAction::Export { out } => {
            let signer = export::signer(&config.server.data_dir)?;
            let package = export::build(
                &log.chained().await?,
                log.chain(),
                &config.server.hostname,
                &signer,
            )?;
            if let Some(file) = export_file.as_mut() {
                use std::io::Write;
                file.write_all(&package)
                    .and_then(|()| file.sync_all())
                    .with_context(|| format!("writing {}", out.display()))?;
            }
            record(config, "audit.export", &out.display().to_string()).await?;
            println!(
                "{}: {} bytes, signed by {}",
                out.display(),
                package.len(),
                jianmen_gm::signing::fingerprint(&signer.public_key())
            );
            Ok(ExitCode::SUCCESS)
        }
        AuditAction::PublicKey => {
            let key = export::signer(&config.server.data_dir)?.public_key();
            println!(
                "{}\nfingerprint {}",
                jianmen_gm::hex(&key),
                jianmen_gm::signing::fingerprint(&key)
            );
            Ok(ExitCode::SUCCESS)
        }
        AuditAction::VerifyExport { file, public_key } => {
            verify_export(&file, public_key.as_deref())
        }
    }
}

/// Exit status of `verify-export` for a package that is intact but whose signer was not checked
/// against a registered key.
const EXIT_UNVERIFIED: u8 = 5;

/// `jianmen audit verify-export`: exit 0 if the package verifies against the registered key,
/// 4 if it does not verify, 5 if it is intact but no key was given to check its signer.
fn verify_export(file: &std::path::Path, public_key: Option<&str>) -> Result<ExitCode> {
    let key = match public_key {
        Some(hex) => Some(export::unhex(hex).context("--public-key must be hex")?),
        None => None,
    };
    let meta = std::fs::metadata(file).with_context(|| format!("reading {}", file.display()))?;
    if meta.len() > export::MAX_PACKAGE_BYTES {
        println!("REJECTED: larger than 1 GiB");
        return Ok(ExitCode::from(4));
    }
    let package = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
    match export::verify(&package, key.as_deref()) {
        Ok(v) => {
            let verdict = if key.is_some() {
                "package intact"
            } else {
                "UNVERIFIED: package intact but its signer unchecked"
            };
            println!(
                "{verdict}: {} row(s) from {} exported {}; newest hash {}; signed by {}{}",
                v.manifest.rows,
                v.manifest.hostname,
                v.manifest.created_at,
                v.manifest.head_hash,
                v.key_fingerprint,
                if key.is_some() {
                    " (the registered key)"
                } else {
                    " (compare with the registered fingerprint, or pass --public-key)"
                }
            );
            Ok(if key.is_some() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(EXIT_UNVERIFIED)
            })
        }
        Err(e) => {
            println!("REJECTED: {e}");
            Ok(ExitCode::from(4))
        }
    }
}
