//! `jianmen upgrade`: make (vendor) and verify (site) offline upgrade packages.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Result, bail};
use clap::Subcommand;

use jianmen::signing::{Ed25519Signer, PackageSigner, Sm2Signer};
use jianmen::upgrade::{self, ComponentKind, Input, Installed, TrustedKey};

/// What `jianmen upgrade` does.
#[derive(Subcommand)]
pub enum UpgradeAction {
    /// Check a package against this gateway: trusted signature, architecture, version order,
    /// every file's size and SM3 digest. Exit status 4 when it is refused.
    Verify {
        /// The package (.jup).
        file: PathBuf,
        /// Keys trusted to sign upgrades, one `<algorithm> <hex key>` line each.
        #[arg(long, default_value = "/etc/jianmen/upgrade-trust")]
        trust: PathBuf,
    },
    /// Make a signed package (the vendor's side).
    Pack {
        /// Output file, e.g. jianmen-0.2.0-aarch64.jup.
        #[arg(long, short)]
        out: PathBuf,
        /// Version the package installs.
        #[arg(long)]
        version: String,
        /// Oldest running version allowed to take it.
        #[arg(long)]
        min_from: String,
        /// Target processor (x86_64, aarch64, loongarch64); default: this build's.
        #[arg(long, default_value = std::env::consts::ARCH)]
        arch: String,
        /// The vendor's signing key (PKCS#8 DER; must exist: see `trust-line --create`).
        #[arg(long)]
        key: PathBuf,
        /// Signature algorithm of the key.
        #[arg(long, default_value = "sm2-sm3", value_parser = ["sm2-sm3", "ed25519"])]
        algorithm: String,
        /// The jianmen executable.
        #[arg(long)]
        binary: Option<PathBuf>,
        /// The content model (ONNX).
        #[arg(long)]
        model: Option<PathBuf>,
        /// The default rule file.
        #[arg(long)]
        rules: Option<PathBuf>,
        /// A ClamAV signature database file (repeatable).
        #[arg(long)]
        clamav: Vec<PathBuf>,
    },
    /// Print the trust-file line of a vendor key, for /etc/jianmen/upgrade-trust on the sites.
    TrustLine {
        /// The vendor's signing key (PKCS#8 DER).
        #[arg(long)]
        key: PathBuf,
        /// Signature algorithm of the key.
        #[arg(long, default_value = "sm2-sm3", value_parser = ["sm2-sm3", "ed25519"])]
        algorithm: String,
        /// Make the key (mode 0600) when it does not exist yet.
        #[arg(long)]
        create: bool,
    },
}

fn signer(key: &Path, algorithm: &str, create: bool) -> Result<Box<dyn PackageSigner>> {
    if !create && !key.exists() {
        bail!(
            "{}: no such key (make one with `jianmen upgrade trust-line --create`)",
            key.display()
        );
    }
    Ok(match algorithm {
        "ed25519" => Box::new(Ed25519Signer::load_or_create(key)?),
        _ => Box::new(Sm2Signer::load_or_create(key)?),
    })
}

/// Runs the command.
pub fn run(action: UpgradeAction) -> Result<ExitCode> {
    match action {
        UpgradeAction::Verify { file, trust } => {
            let trusted = TrustedKey::load(&trust)?;
            let installed = Installed {
                version: env!("CARGO_PKG_VERSION"),
                arch: std::env::consts::ARCH,
                trusted: &trusted,
            };
            match upgrade::verify(&file, &installed, None) {
                Ok((manifest, fingerprint)) => {
                    println!(
                        "{}: ok — jianmen {} for {} (from {} or later), signed by {fingerprint}",
                        file.display(),
                        manifest.version,
                        manifest.arch,
                        manifest.min_from_version
                    );
                    for c in &manifest.components {
                        println!(
                            "  {:<8} {:<24} {:>12} bytes  sm3 {}",
                            format!("{:?}", c.kind).to_lowercase(),
                            c.file,
                            c.size,
                            c.sm3
                        );
                    }
                    Ok(ExitCode::SUCCESS)
                }
                Err(e) => {
                    eprintln!("{}: REFUSED: {e}", file.display());
                    Ok(ExitCode::from(4))
                }
            }
        }
        UpgradeAction::Pack {
            out,
            version,
            min_from,
            arch,
            key,
            algorithm,
            binary,
            model,
            rules,
            clamav,
        } => {
            let signer = signer(&key, &algorithm, false)?;
            let inputs: Vec<Input> = [
                (ComponentKind::Binary, binary),
                (ComponentKind::Model, model),
                (ComponentKind::Rules, rules),
            ]
            .into_iter()
            .filter_map(|(kind, path)| path.map(|path| Input { kind, path }))
            .chain(clamav.into_iter().map(|path| Input {
                kind: ComponentKind::Clamav,
                path,
            }))
            .collect();
            let manifest =
                upgrade::pack(&out, &version, &arch, &min_from, &inputs, signer.as_ref())?;
            println!(
                "{}: jianmen {} for {}, {} component(s)",
                out.display(),
                manifest.version,
                manifest.arch,
                manifest.components.len()
            );
            Ok(ExitCode::SUCCESS)
        }
        UpgradeAction::TrustLine {
            key,
            algorithm,
            create,
        } => {
            println!(
                "{}",
                TrustedKey::line_for(signer(&key, &algorithm, create)?.as_ref())
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}
