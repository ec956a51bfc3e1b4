//! `jianmen upgrade`: make (vendor), verify, apply and roll back (site) offline upgrade
//! packages; and the hand-over by which the installed binary starts an applied release.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Subcommand;

use jianmen_gm::signing::{Ed25519Signer, PackageSigner, Sm2Signer};
use jianmen_mta::config::Config;
use jianmen_mta::upgrade::release::{self, Launch, Releases};
use jianmen_mta::upgrade::{self, ComponentKind, Input, Installed, TrustedKey};

/// This binary's version: the one the package manager installed.
const FACTORY: &str = env!("CARGO_PKG_VERSION");
/// Exit status when a package is refused.
const EXIT_REFUSED: u8 = 4;
/// Exit status when an applied release was rolled back.
const EXIT_ROLLED_BACK: u8 = 5;

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
    /// Verify a package, install it beside the running version and switch to it on trial:
    /// the service is restarted, and the new version is kept only once it answers SMTP and
    /// HTTPS, reads the queue and loads its model; otherwise the previous version comes back.
    /// Exit status 4 when refused, 5 when rolled back.
    Apply {
        /// The package (.jup).
        file: PathBuf,
        /// Keys trusted to sign upgrades.
        #[arg(long, default_value = release::DEFAULT_TRUST)]
        trust: PathBuf,
        /// Command that restarts the service (run by `sh -c`); default `systemctl restart
        /// jianmen.service` under systemd.
        #[arg(long)]
        restart: Option<String>,
        /// Do not restart: the release starts on trial at the next start of the service.
        #[arg(long, conflicts_with = "restart")]
        no_restart: bool,
        /// Seconds to wait for the new version's health verdict before rolling back (the
        /// release itself gives up after 120 s; this covers one that never starts).
        #[arg(long, default_value_t = 180)]
        wait: u64,
        /// clamd's database directory, where the package's ClamAV files go (clamd is then
        /// told to reload, when `scan.clamav` is configured).
        #[arg(long, default_value = "/var/lib/clamav")]
        clamav_dir: PathBuf,
        /// The gateway's configuration (for the audit log).
        #[arg(long, default_value = "/etc/jianmen/jianmen.toml")]
        config: PathBuf,
    },
    /// Return to the previous version (or the installed package) and restart the service.
    Rollback {
        /// Command that restarts the service (see `apply`).
        #[arg(long)]
        restart: Option<String>,
        /// Do not restart.
        #[arg(long, conflicts_with = "restart")]
        no_restart: bool,
        /// The gateway's configuration (for the audit log).
        #[arg(long, default_value = "/etc/jianmen/jianmen.toml")]
        config: PathBuf,
    },
    /// Show the installed package's version, the applied releases and the last rollback.
    Status,
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

/// Options of `jianmen upgrade`.
#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    action: UpgradeAction,
}

/// Runs the command.
pub async fn run(Args { action }: Args) -> Result<ExitCode> {
    match action {
        UpgradeAction::Apply {
            file,
            trust,
            restart,
            no_restart,
            wait,
            clamav_dir,
            config,
        } => {
            apply(
                &file,
                &trust,
                restart_command(restart, no_restart),
                Duration::from_secs(wait),
                &clamav_dir,
                &config,
            )
            .await
        }
        UpgradeAction::Rollback {
            restart,
            no_restart,
            config,
        } => {
            let releases = Releases::from_env();
            let Some(from) = releases.current() else {
                println!("no release applied: the installed package {FACTORY} runs");
                return Ok(ExitCode::FAILURE);
            };
            let to = releases.roll_back(&format!("asked by {}", crate::commands::cli_actor()))?;
            let to = to.unwrap_or_else(|| format!("the installed package {FACTORY}"));
            audit(&config, "upgrade.rollback", &format!("{from} to {to}")).await;
            println!("rolled back from {from} to {to}");
            if let Some(cmd) = restart_command(restart, no_restart) {
                run_restart(&cmd)?;
            }
            Ok(ExitCode::SUCCESS)
        }
        UpgradeAction::Status => {
            let releases = Releases::from_env();
            println!("installed package: {FACTORY}");
            println!("running:           {}", releases.effective_version(FACTORY));
            let trial = releases.trial();
            match releases.current() {
                Some(c) => {
                    let on_trial = match &trial {
                        Some(t) if t.version == c => {
                            format!(" (on trial, started {} time(s))", t.starts)
                        }
                        _ => String::new(),
                    };
                    println!("current release:   {c}{on_trial}");
                }
                None => println!("current release:   none"),
            }
            if let Some(p) = releases.previous() {
                println!("previous release:  {p}");
            }
            if let Some(r) = releases.last_rollback() {
                print!("last rollback:     {r}");
            }
            Ok(ExitCode::SUCCESS)
        }
        UpgradeAction::Verify { file, trust } => {
            let trusted = TrustedKey::load(&trust)?;
            let running = Releases::from_env().effective_version(FACTORY);
            let installed = Installed {
                version: &running,
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
                    Ok(ExitCode::from(EXIT_REFUSED))
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

/// `--restart`, or the systemd default when systemd runs the machine.
fn restart_command(restart: Option<String>, no_restart: bool) -> Option<String> {
    if no_restart {
        return None;
    }
    restart.or_else(|| {
        Path::new("/run/systemd/system")
            .is_dir()
            .then(|| "systemctl restart jianmen.service".to_owned())
    })
}

fn run_restart(cmd: &str) -> Result<()> {
    let status = std::process::Command::new("sh")
        .args(["-c", cmd])
        .status()
        .with_context(|| format!("cannot run `{cmd}`"))?;
    if !status.success() {
        eprintln!("`{cmd}` failed ({status}); waiting for the service anyway");
    }
    Ok(())
}

/// Records an upgrade action in the audit log when the gateway's configuration and log exist
/// (a vendor's build machine has neither).
async fn audit(config: &Path, action: &str, detail: &str) {
    let Ok(config) = Config::load(config) else {
        return;
    };
    let shared = config.store.backend == jianmen_mta::store::Backend::Postgres;
    if !shared
        && !config
            .server
            .data_dir
            .join(jianmen_mta::audit::FILE)
            .exists()
    {
        return;
    }
    if let Err(e) = crate::commands::record(&config, action, detail).await {
        eprintln!("audit log: {e:#}");
    }
}

async fn apply(
    file: &Path,
    trust: &Path,
    restart: Option<String>,
    wait: Duration,
    clamav_dir: &Path,
    config: &Path,
) -> Result<ExitCode> {
    let trusted = TrustedKey::load(trust)?;
    let releases = Releases::from_env();
    if let Some(t) = releases.trial() {
        bail!(
            "release {} is on trial: wait for its health verdict, or `jianmen upgrade rollback`",
            t.version
        );
    }
    let running = releases.effective_version(FACTORY);
    let installed = Installed {
        version: &running,
        arch: std::env::consts::ARCH,
        trusted: &trusted,
    };
    let manifest = match releases.install(file, &installed) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("{}: REFUSED: {e}", file.display());
            audit(
                config,
                "upgrade.refuse",
                &format!("{}: {e}", file.display()),
            )
            .await;
            return Ok(ExitCode::from(EXIT_REFUSED));
        }
    };
    let version = manifest.version;
    releases.start_trial(&version)?;
    audit(
        config,
        "upgrade.apply",
        &format!("{running} to {version} on trial"),
    )
    .await;
    println!("{version} installed beside {running}; on trial");
    // Signature databases move forward independently of the binary's trial.
    let release = releases.verified(&version, &trusted)?;
    if release.component(ComponentKind::Clamav).is_some() {
        install_clamav(&release, clamav_dir, config).await?;
    }
    let Some(cmd) = restart else {
        println!("restart the service to start it (it is kept once its health check passes)");
        return Ok(ExitCode::SUCCESS);
    };
    run_restart(&cmd)?;
    let end = Instant::now() + wait;
    while Instant::now() < end {
        tokio::time::sleep(Duration::from_millis(250)).await;
        if releases.trial().is_some_and(|t| t.version == version) {
            continue;
        }
        if releases.current().as_deref() == Some(version.as_str()) {
            audit(
                config,
                "upgrade.keep",
                &format!("{version} passed its health check"),
            )
            .await;
            println!("{version} passed its health check: kept");
            return Ok(ExitCode::SUCCESS);
        }
        let why = releases.last_rollback().unwrap_or_default();
        audit(config, "upgrade.rollback", why.trim()).await;
        print!("ROLLED BACK: {why}");
        return Ok(ExitCode::from(EXIT_ROLLED_BACK));
    }
    let why = format!("no health verdict within {} s", wait.as_secs());
    releases.roll_back(&why)?;
    run_restart(&cmd)?;
    audit(config, "upgrade.rollback", &format!("{version}: {why}")).await;
    println!("ROLLED BACK: {version}: {why}");
    Ok(ExitCode::from(EXIT_ROLLED_BACK))
}

/// Installs the release's ClamAV files and has clamd reload them.
async fn install_clamav(release: &release::Release, dir: &Path, config: &Path) -> Result<()> {
    let names = release
        .install_clamav(dir)
        .with_context(|| format!("ClamAV files into {}", dir.display()))?;
    println!(
        "ClamAV signatures installed in {}: {}",
        dir.display(),
        names.join(", ")
    );
    let clamav = Config::load(config).ok().and_then(|c| c.scan.clamav);
    match clamav {
        Some(c) => match jianmen_scan::clamav::Clamd::new(&c).reload().await {
            Ok(()) => println!("clamd at {} reloads its databases", c.address),
            Err(e) => eprintln!("clamd at {} did not reload: {e}", c.address),
        },
        None => println!("no [scan.clamav] configured: reload clamd yourself"),
    }
    Ok(())
}

/// Replaces this process with the program in `image` (`fexecve`), with `args` and this
/// process's environment plus `extra`; returns only on failure, saying why.
fn exec_image(
    image: &std::os::fd::OwnedFd,
    args: &[OsString],
    extra: &[(&str, &std::ffi::OsStr)],
) -> String {
    use std::ffi::CString;
    use std::os::fd::AsRawFd;
    use std::os::unix::ffi::OsStrExt;
    let c = |bytes: &[u8]| CString::new(bytes).ok();
    let argv: Vec<CString> = args.iter().filter_map(|a| c(a.as_bytes())).collect();
    let mut envp: Vec<CString> = std::env::vars_os()
        .filter(|(k, _)| !extra.iter().any(|(name, _)| k.as_os_str() == *name))
        .filter_map(|(k, v)| c(&[k.as_bytes(), b"=", v.as_bytes()].concat()))
        .collect();
    envp.extend(
        extra
            .iter()
            .filter_map(|(k, v)| c(&[k.as_bytes(), b"=", v.as_bytes()].concat())),
    );
    match nix::unistd::fexecve(image.as_raw_fd(), &argv, &envp) {
        Err(e) => e.to_string(),
        Ok(never) => match never {},
    }
}

/// Before anything else runs: when an applied release is newer than this binary and verifies,
/// becomes it (exec, same process id). `upgrade` commands always run the installed binary, so
/// a broken release can be rolled back. Starting the daemon counts a trial's starts and rolls
/// back a release that failed; see [`release::choose`].
pub fn hand_over_to_release() {
    use std::os::unix::process::CommandExt;
    if std::env::var_os(release::ENV_VERSION).is_some() {
        return;
    }
    let args: Vec<OsString> = std::env::args_os().collect();
    let command = args.get(1).and_then(|a| a.to_str()).unwrap_or("");
    let releases = Releases::from_env();
    if command == "upgrade" || releases.current().is_none() {
        return;
    }
    let serving = command == "serve";
    let trusted = TrustedKey::load(&release::trust_file());
    // Each failed exec rolls back one step, so this ends.
    for _ in 0..4 {
        let (launch, notes) = release::choose(&releases, FACTORY, &trusted, serving);
        for note in notes {
            eprintln!("jianmen: upgrade: {note}");
        }
        let Launch::Release(chosen) = launch else {
            return;
        };
        let env = [
            (
                release::ENV_VERSION,
                std::ffi::OsStr::new(&chosen.manifest.version),
            ),
            (release::ENV_DIR, chosen.dir.as_os_str()),
        ];
        let error = match chosen.sealed_binary() {
            // Run the bytes that were verified, not the file that may have changed since.
            Ok(Some(image)) => exec_image(&image, &args, &env),
            // A release without a binary (rules, model): this binary, told of the release.
            Ok(None) => match std::env::current_exe() {
                Ok(me) => {
                    let mut command = std::process::Command::new(me);
                    command.args(args.iter().skip(1)).envs(env);
                    command.exec().to_string()
                }
                Err(_) => return,
            },
            Err(e) => e.to_string(),
        };
        let binary = chosen.dir.display();
        let reason = format!("cannot run the release in {binary}: {error}");
        if !serving {
            eprintln!("jianmen: upgrade: {reason}: running the installed package");
            return;
        }
        match releases.roll_back(&reason) {
            Ok(_) => eprintln!("jianmen: upgrade: {reason}: rolled back"),
            Err(e) => {
                eprintln!("jianmen: upgrade: {reason}; the rollback failed ({e})");
                return;
            }
        }
    }
}
