//! The `jianmen` command: run the gateway, the demo, inspect and steer the queue, check a
//! configuration.

mod eval_command;
mod features_command;
mod quarantine_command;
mod retrain_command;
mod scan_command;
mod tls_probe_command;
mod upgrade_command;

use std::path::PathBuf;
use std::process::ExitCode;

use jianmen::audit::{AuditLog, export};
use jianmen::signing::PackageSigner;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};

use jianmen::config::Config;
use jianmen::queue::manager::unix_now;
use jianmen::queue::spool::is_queue_id;
use jianmen::queue::{QueueStore, QueuedMessage};

/// Jianmen (剑门) mail security gateway.
#[derive(Parser)]
#[command(name = "jianmen", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway with a configuration file.
    Serve {
        /// Configuration file (TOML).
        #[arg(long, short, default_value = "/etc/jianmen/jianmen.toml")]
        config: PathBuf,
    },
    /// Run a self-contained demo: SQLite, self-signed certificate, built-in downstream mailbox.
    Demo {
        /// Directory for the demo's data, mailbox and generated configuration.
        #[arg(long, default_value = "demo-data")]
        dir: PathBuf,
    },
    /// Inspect and steer the delivery queue.
    Queue {
        /// Configuration file (TOML).
        #[arg(
            long,
            short,
            global = true,
            default_value = "/etc/jianmen/jianmen.toml"
        )]
        config: PathBuf,
        #[command(subcommand)]
        action: QueueAction,
    },
    /// Judge message files (or a directory of them, or `-` for stdin) without a server; prints
    /// one JSON line per message: path, verdict, score, symbols, explanation, micros.
    Scan {
        /// Files, directories or `-`.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// Use this configuration's [scan] section, network checks included.
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// Client address the message came from (for SPF and DNSBL).
        #[arg(long)]
        client_ip: Option<std::net::IpAddr>,
        /// HELO name of the client.
        #[arg(long, default_value = "")]
        helo: String,
        /// Envelope sender.
        #[arg(long, default_value = "")]
        mail_from: String,
        /// Envelope recipient (repeatable).
        #[arg(long)]
        rcpt: Vec<String>,
        /// Worker threads.
        #[arg(long, short, default_value_t = 1)]
        jobs: usize,
    },
    /// Compute the content model's training data from a corpora directory (per corpus a
    /// `*.tar.zst` and `labels.tsv`): one TSV line per message with its split and features.
    Features {
        /// Directory of corpora, e.g. ../shared/corpora.
        #[arg(long)]
        corpora: PathBuf,
        /// Output TSV file.
        #[arg(long)]
        out: PathBuf,
        /// Worker threads.
        #[arg(long, short, default_value_t = 2)]
        jobs: usize,
    },
    /// Measure the whole verdict path on the internal test split of a corpora directory and
    /// write a JSON report (per corpus and total: caught %, false positives %, 1-ROCA %, CPU).
    Eval {
        /// Directory of corpora, e.g. ../shared/corpora.
        #[arg(long)]
        corpora: PathBuf,
        /// JSON report to write.
        #[arg(long)]
        report: PathBuf,
        /// Worker threads.
        #[arg(long, short, default_value_t = 2)]
        jobs: usize,
        /// Score every message, not only the test split.
        #[arg(long)]
        all: bool,
        /// Also write one line per message: corpus, label, member path, class, score, CPU µs
        /// (TSV).
        #[arg(long)]
        scores: Option<PathBuf>,
        /// Content model: `builtin`, `none` (rules only) or an ONNX file.
        #[arg(long, default_value = "builtin")]
        model: String,
    },
    /// Keep messages as feedback for `jianmen retrain` ("not spam", "report spam").
    Feedback {
        /// Configuration file (its data directory holds the feedback).
        #[arg(long, short, default_value = "/etc/jianmen/jianmen.toml")]
        config: PathBuf,
        /// What the messages are: ham, spam or phish.
        label: String,
        /// Message files (`-` for standard input).
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Train a new content model on a base corpus plus the stored feedback; activate it only if
    /// it is not worse than the active model on the base corpus's test split (exit status 3
    /// when refused).
    Retrain {
        /// Configuration file (data directory, active model).
        #[arg(long, short, default_value = "/etc/jianmen/jianmen.toml")]
        config: PathBuf,
        /// Base corpora directory (per corpus `*.tar.zst` + `labels.tsv`).
        #[arg(long)]
        corpora: PathBuf,
        /// The trainer (`train.py`); found next to the binary's share directory by default.
        #[arg(long)]
        trainer: Option<PathBuf>,
        /// Python interpreter with the trainer's requirements.
        #[arg(long, default_value = "python3")]
        python: PathBuf,
        /// Worker threads.
        #[arg(long, short, default_value_t = 2)]
        jobs: usize,
    },
    /// Read or check the tamper-evident audit log.
    Audit {
        /// Configuration file (its data directory holds the log).
        #[arg(long, short, default_value = "/etc/jianmen/jianmen.toml")]
        config: PathBuf,
        #[command(subcommand)]
        action: AuditAction,
    },
    /// Search, release, delete or download held mail.
    Quarantine {
        /// Configuration file (its data directory holds the quarantine).
        #[arg(long, short, default_value = "/etc/jianmen/jianmen.toml")]
        config: PathBuf,
        #[command(subcommand)]
        action: quarantine_command::QuarantineAction,
    },
    /// Validate a configuration file and exit.
    CheckConfig {
        /// Configuration file (TOML).
        #[arg(long, short, default_value = "/etc/jianmen/jianmen.toml")]
        config: PathBuf,
    },
    /// Make SM2 keys, self-signed SM2 certificates and certificate requests for a CA: the
    /// signing pair `sm2-{key,cert}.pem` + `sm2.csr` (for `tls.sm_cert` / `tls.sm_key`) and
    /// TLCP's encryption pair `sm2-enc-{key,cert}.pem` + `sm2-enc.csr` (`tls.sm_enc_*`).
    CertSm2 {
        /// Host name the certificate is for.
        #[arg(long)]
        host: String,
        /// Directory to write into (an existing key is never overwritten).
        #[arg(long)]
        dir: PathBuf,
        /// Days the self-signed certificate is valid.
        #[arg(long, default_value_t = 3650)]
        days: i64,
        /// Encrypt the keys (PKCS#8, scrypt + AES-256-CBC) with the first line of this file;
        /// point `tls.key_password_file` at it.
        #[arg(long)]
        password_file: Option<PathBuf>,
    },
    /// Write the manual pages (one per command) and bash, zsh and fish completions into a
    /// directory; the packages install them.
    #[command(hide = true)]
    GenerateDocs {
        /// Output directory (created).
        #[arg(long)]
        out: PathBuf,
    },
    /// Make and verify offline upgrade packages (.jup).
    Upgrade {
        #[command(subcommand)]
        action: upgrade_command::UpgradeAction,
    },
    /// Show what outbound TLS negotiates with a server (protocol, suite, group).
    TlsProbe {
        /// Server address, `host:port`.
        addr: String,
        /// Speak SMTP first and upgrade with STARTTLS.
        #[arg(long)]
        starttls: bool,
        /// Server name sent in SNI.
        #[arg(long, default_value = "localhost")]
        name: String,
    },
}

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
    /// fails). Needs no configuration: the authorities run it on their own machine.
    VerifyExport {
        /// The package.
        file: PathBuf,
        /// The gateway's registered public key (hex, as `audit public-key` prints it); without
        /// it, the package's own key is used and its fingerprint printed for comparison.
        #[arg(long)]
        public_key: Option<String>,
    },
    /// Print the public key that signs exports (register it with the authorities).
    PublicKey,
}

#[derive(Subcommand)]
enum QueueAction {
    /// List queued messages.
    List {
        /// Print JSON, one message per line.
        #[arg(long)]
        json: bool,
        /// Most messages shown.
        #[arg(long, default_value_t = 1000)]
        limit: u32,
    },
    /// Show one message's envelope, recipients and headers.
    Show {
        /// Queue id.
        id: String,
    },
    /// Make one message due for delivery now.
    Retry {
        /// Queue id.
        id: String,
    },
    /// Delete a message from the queue without delivering it.
    Delete {
        /// Queue id.
        id: String,
    },
    /// Make every queued message due for delivery now.
    Flush,
}

/// Writes `jianmen.1`, `jianmen-<command>.1`, `jianmen.bash`, `_jianmen` and `jianmen.fish`.
fn generate_docs(out: &std::path::Path) -> Result<()> {
    use clap::CommandFactory;
    use clap_complete::Shell;
    let man = out.join("man");
    let completions = out.join("completions");
    for dir in [&man, &completions] {
        std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    }
    clap_mangen::generate_to(Cli::command(), &man).context("write manual pages")?;
    for (shell, name) in [
        (Shell::Bash, "jianmen.bash"),
        (Shell::Zsh, "_jianmen"),
        (Shell::Fish, "jianmen.fish"),
    ] {
        let mut script = Vec::new();
        clap_complete::generate(shell, &mut Cli::command(), "jianmen", &mut script);
        std::fs::write(completions.join(name), script).with_context(|| format!("write {name}"))?;
    }
    Ok(())
}

/// Logs to the systemd journal when systemd connected our stderr to it (tracing events reach
/// it through the `log` facade, fields folded into the message); to stderr otherwise.
fn init_logging() {
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

fn main() -> ExitCode {
    upgrade_command::hand_over_to_release();
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("jianmen: cannot start runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("jianmen: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Runs the command; its exit status on success (`retrain` refusing a model is not an error).
async fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Command::Serve { config } => {
            init_logging();
            let config = Config::load(&config)?;
            jianmen::daemon::run(config).await?;
        }
        Command::Demo { dir } => {
            init_logging();
            jianmen::demo::run(&dir).await?;
        }
        Command::Scan {
            paths,
            config,
            client_ip,
            helo,
            mail_from,
            rcpt,
            jobs,
        } => {
            scan_command::run(scan_command::ScanOptions {
                paths,
                config,
                client_ip,
                helo,
                mail_from,
                rcpts: rcpt,
                jobs,
            })?;
        }
        Command::Features { corpora, out, jobs } => {
            let n = features_command::run(&corpora, &out, jobs)?;
            eprintln!("{n} messages written to {}", out.display());
        }
        Command::Eval {
            corpora,
            report,
            jobs,
            all,
            scores,
            model,
        } => {
            eval_command::run(&corpora, &report, scores.as_deref(), &model, jobs, all)?;
        }
        Command::Feedback {
            config,
            label,
            files,
        } => {
            retrain_command::feedback(&config, &label, &files)?;
            let detail = format!("{} message(s) as {label}", files.len());
            record(&Config::load(&config)?, "feedback", &detail).await?;
        }
        Command::Retrain {
            config,
            corpora,
            trainer,
            python,
            jobs,
        } => {
            let activated = retrain_command::run(retrain_command::RetrainOptions {
                config: config.clone(),
                corpora: corpora.clone(),
                trainer,
                python,
                jobs,
            })?;
            let action = if activated {
                "model.activate"
            } else {
                "model.refuse"
            };
            let detail = format!("retrained on {}", corpora.display());
            record(&Config::load(&config)?, action, &detail).await?;
            if !activated {
                return Ok(ExitCode::from(3));
            }
        }
        Command::GenerateDocs { out } => generate_docs(&out)?,
        Command::Upgrade { action } => return upgrade_command::run(action).await,
        Command::CheckConfig { config: path } => {
            let config = Config::load(&path)?;
            let rules =
                jianmen::scan::rules::RuleSet::load(config.scan.builtin_rules, &config.scan.rules)?;
            println!(
                "{}: ok ({} protected domain(s), {} route(s), {} rules)",
                path.display(),
                config.domains.protected.len(),
                config.routes.len(),
                rules.len()
            );
        }
        Command::CertSm2 {
            host,
            dir,
            days,
            password_file,
        } => cert_sm2(&host, &dir, days, password_file.as_deref())?,
        Command::TlsProbe {
            addr,
            starttls,
            name,
        } => tls_probe_command::run(&addr, starttls, &name).await?,
        Command::Queue { config, action } => {
            let config = Config::load(&config)?;
            queue_command(&config, action).await?;
        }
        Command::Audit {
            action: AuditAction::VerifyExport { file, public_key },
            ..
        } => return verify_export(&file, public_key.as_deref()),
        Command::Audit { config, action } => {
            let config = Config::load(&config)?;
            return audit_command(&config, action).await;
        }
        Command::Quarantine { config, action } => {
            let config = Config::load(&config)?;
            quarantine_command::run(&config, action).await?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn check_id(id: &str) -> Result<()> {
    if !is_queue_id(id) {
        bail!("`{id}` is not a queue id (26 characters, 0-9 and A-Z)");
    }
    Ok(())
}

async fn queue_command(config: &Config, action: QueueAction) -> Result<()> {
    let store = jianmen::daemon::open_store(config).await?;
    match action {
        QueueAction::List { json, limit } => {
            let messages = store.list(limit).await?;
            for m in &messages {
                if json {
                    println!("{}", serde_json::to_string(m)?);
                } else {
                    print_summary(m);
                }
            }
            if !json {
                println!("{} message(s)", messages.len());
            }
        }
        QueueAction::Show { id } => {
            check_id(&id)?;
            let m = store
                .get(&id)
                .await?
                .with_context(|| format!("no queued message {id}"))?;
            println!("{}", serde_json::to_string_pretty(&m)?);
            let spool = config.spool()?;
            let data = spool.read(&id).context("reading spool file")?;
            let end = data
                .windows(4)
                .position(|w| w == b"\r\n\r\n")
                .unwrap_or(data.len().min(64 * 1024));
            println!("--- headers ---\n{}", String::from_utf8_lossy(&data[..end]));
        }
        QueueAction::Retry { id } => {
            check_id(&id)?;
            if store.reschedule(Some(&id), unix_now()).await? == 0 {
                bail!("no active queued message {id}");
            }
            record(config, "queue.retry", &id).await?;
            println!("{id}: due now");
        }
        QueueAction::Delete { id } => {
            check_id(&id)?;
            if !store.delete(&id).await? {
                bail!("no queued message {id}");
            }
            config.spool()?.remove(&id)?;
            record(config, "queue.delete", &id).await?;
            println!("{id}: deleted");
        }
        QueueAction::Flush => {
            let n = store.reschedule(None, unix_now()).await?;
            record(config, "queue.flush", &format!("{n} message(s)")).await?;
            println!("{n} message(s) due now");
        }
    }
    Ok(())
}

/// `jianmen cert-sm2`: key (0600, never overwritten), self-signed certificate and request.
fn cert_sm2(
    host: &str,
    dir: &std::path::Path,
    days: i64,
    password_file: Option<&std::path::Path>,
) -> Result<()> {
    use jianmen::gm::cert;
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    if !jianmen::config::is_domain_like(host) {
        anyhow::bail!("--host must be a host name");
    }
    if !(1..=36500).contains(&days) {
        anyhow::bail!("--days must be 1 to 36500");
    }
    let password = match password_file {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            let line = text.lines().next().unwrap_or_default().to_owned();
            if line.is_empty() {
                anyhow::bail!("{}: the first line (the password) is empty", path.display());
            }
            Some(line)
        }
        None => None,
    };
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    for (stem, usage) in [
        ("sm2", cert::Usage::Signing),
        ("sm2-enc", cert::Usage::Encryption),
    ] {
        let key = jianmen::gm::sm2::Sm2PrivateKey::generate();
        let key_path = dir.join(format!("{stem}-key.pem"));
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&key_path)
            .with_context(|| {
                format!(
                    "{} (an existing key is never overwritten)",
                    key_path.display()
                )
            })?;
        let pem = match &password {
            Some(p) => key.to_pkcs8_encrypted_pem(p.as_bytes())?,
            None => key.to_pkcs8_pem()?,
        };
        f.write_all(pem.as_bytes())?;
        f.sync_all()?;
        let certificate = cert::self_signed(&key, host, days, usage)?;
        std::fs::write(
            dir.join(format!("{stem}-cert.pem")),
            cert::pem("CERTIFICATE", &certificate),
        )?;
        let csr = cert::request(&key, host, usage)?;
        std::fs::write(
            dir.join(format!("{stem}.csr")),
            cert::pem("CERTIFICATE REQUEST", &csr),
        )?;
    }
    println!(
        "{}: sm2-key.pem, sm2-cert.pem, sm2.csr (signing) and sm2-enc-key.pem, sm2-enc-cert.pem, \
         sm2-enc.csr (TLCP encryption); certificates self-signed for {days} days, requests for your CA",
        dir.display()
    );
    Ok(())
}

/// Appends a command-line action to the audit log (`cli:<login>` as the actor).
async fn record(config: &Config, action: &str, detail: &str) -> Result<()> {
    let log = AuditLog::open(&config.server.data_dir.join("audit.db")).await?;
    log.append(&cli_actor(), action, detail).await?;
    Ok(())
}

/// Who runs a command-line action, as the audit log and the quarantine record it:
/// `cli:<login>`.
fn cli_actor() -> String {
    let login = std::env::var("SUDO_USER")
        .or_else(|_| std::env::var("USER"))
        .unwrap_or_else(|_| "unknown".into());
    format!("cli:{login}")
}

async fn audit_command(config: &Config, action: AuditAction) -> Result<ExitCode> {
    let log = AuditLog::open(&config.server.data_dir.join("audit.db")).await?;
    match action {
        AuditAction::Verify => match log.verify().await {
            Ok((rows, head)) => {
                println!("audit log intact: {rows} row(s); newest hash {head}");
                Ok(ExitCode::SUCCESS)
            }
            Err(e @ jianmen::audit::AuditError::Broken { .. }) => {
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
            std::fs::write(&out, &package).with_context(|| format!("writing {}", out.display()))?;
            record(config, "audit.export", &out.display().to_string()).await?;
            println!(
                "{}: {} bytes, signed by {}",
                out.display(),
                package.len(),
                jianmen::signing::fingerprint(&signer.public_key())
            );
            Ok(ExitCode::SUCCESS)
        }
        AuditAction::PublicKey => {
            let key = export::signer(&config.server.data_dir)?.public_key();
            println!(
                "{}\nfingerprint {}",
                jianmen::audit::hex(&key),
                jianmen::signing::fingerprint(&key)
            );
            Ok(ExitCode::SUCCESS)
        }
        AuditAction::VerifyExport { file, public_key } => {
            verify_export(&file, public_key.as_deref())
        }
    }
}

/// `jianmen audit verify-export`: exit 0 if the package verifies, 4 if it does not.
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
            println!(
                "package intact: {} row(s) from {} exported {}; newest hash {}; signed by {}{}",
                v.manifest.rows,
                v.manifest.hostname,
                v.manifest.created_at,
                v.manifest.head_hash,
                v.key_fingerprint,
                if key.is_some() {
                    " (the registered key)"
                } else {
                    " (compare with the registered fingerprint)"
                }
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            println!("REJECTED: {e}");
            Ok(ExitCode::from(4))
        }
    }
}

fn print_summary(m: &QueuedMessage) {
    let when = chrono::DateTime::from_timestamp(m.received_at, 0)
        .map(|d| d.format("%Y-%m-%d %H:%M:%S").to_string())
        .unwrap_or_default();
    let from = if m.mail_from.is_empty() {
        "<>"
    } else {
        &m.mail_from
    };
    println!(
        "{}  {:>8}  {when}  {:?}/{:?}  attempts={}  from={from}",
        m.id, m.size, m.kind, m.state, m.attempts
    );
    for r in &m.rcpts {
        println!(
            "    {:?} {} {}",
            r.status,
            r.address,
            r.last_reply.as_deref().unwrap_or("")
        );
    }
}
