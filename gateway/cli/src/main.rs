//! The `jianmen` command: run the gateway or the demo, inspect and steer the queue, the
//! quarantine and the audit log, scan and measure offline, make certificates and upgrades.
//! This file is the command line and its dispatch only; each command lives in [`commands`],
//! the running gateway's wiring in [`daemon`].

mod commands;
mod daemon;

use std::process::ExitCode;

use anyhow::Result;
use clap::{CommandFactory, Parser, Subcommand};

use commands::{
    account, audit, backup, cert_sm2, check_config, demo, dkim, eval, features, generate_docs,
    quarantine, queue, retrain, scan, serve, tls_probe, train_ngram, upgrade,
};

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
    Serve(serve::Args),
    /// Run a self-contained demo: SQLite, self-signed certificate, built-in downstream mailbox.
    Demo(demo::Args),
    /// Inspect and steer the delivery queue.
    Queue(queue::Args),
    /// Judge message files (or a directory of them, or `-` for stdin) without a server; prints
    /// one JSON line per message: path, verdict, score, symbols, explanation, micros.
    Scan(scan::Args),
    /// Compute the content model's training data from a corpora directory (per corpus a
    /// `*.tar.zst` and `labels.tsv`): one TSV line per message with its split and features.
    Features(features::Args),
    /// Measure the whole verdict path on the internal test split of a corpora directory and
    /// write a JSON report (per corpus and total: caught %, false positives %, 1-ROCA %, CPU).
    Eval(eval::Args),
    /// Train the 4-gram model on the training part of a corpora directory and print how it
    /// does alone on the validation fold.
    TrainNgram(train_ngram::Args),
    /// Keep messages as feedback for `jianmen retrain` ("not spam", "report spam").
    Feedback(retrain::FeedbackArgs),
    /// Train a new content model on a base corpus plus the stored feedback; activate it only if
    /// it is not worse than the active model on the base corpus's test split (exit status 3
    /// when refused).
    Retrain(retrain::Args),
    /// Read or check the tamper-evident audit log.
    Audit(audit::Args),
    /// Manage console accounts at the appliance: security and audit administrators are
    /// created, reset and deleted only here.
    Account(account::Args),
    /// Search, release, delete or download held mail.
    Quarantine(quarantine::Args),
    /// Validate a configuration file and exit.
    CheckConfig(check_config::Args),
    /// Make SM2 keys, self-signed SM2 certificates and certificate requests for a CA: the
    /// signing pair `sm2-{key,cert}.pem` + `sm2.csr` (for `tls.sm_cert` / `tls.sm_key`) and
    /// TLCP's encryption pair `sm2-enc-{key,cert}.pem` + `sm2-enc.csr` (`tls.sm_enc_*`).
    CertSm2(cert_sm2::Args),
    /// Make DKIM keys for outbound signing (`dkim keygen`): the key goes to
    /// data_dir/keys/<domain>/<selector>.pem, never over an existing one, and the DNS record to
    /// publish is printed.
    Dkim(dkim::Args),
    /// Write the manual pages (one per command) and bash, zsh and fish completions into a
    /// directory; the packages install them.
    #[command(hide = true)]
    GenerateDocs(generate_docs::Args),
    /// Seal the configuration, keys, installed certificates and settings (policy, lists,
    /// console accounts) into one file with a passphrase; mail and logs are not in it.
    Backup(backup::BackupArgs),
    /// Put a backup back, as root with the gateway stopped: the configuration directory, then
    /// the keys and settings (taken by the gateway at its next start).
    Restore(backup::RestoreArgs),
    /// Make and verify offline upgrade packages (.jup).
    Upgrade(upgrade::Args),
    /// Show what outbound TLS negotiates with a server (protocol, suite, group).
    TlsProbe(tls_probe::Args),
}

fn main() -> ExitCode {
    upgrade::hand_over_to_release();
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
    match runtime.block_on(run(cli.command)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("jianmen: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Runs the command; its exit status on success (a refusal that is no error, such as
/// `retrain` keeping the active model, has its own status).
async fn run(command: Command) -> Result<ExitCode> {
    match command {
        Command::Serve(args) => serve::run(args).await?,
        Command::Demo(args) => demo::run(args).await?,
        Command::Queue(args) => queue::run(args).await?,
        Command::Scan(args) => {
            scan::run(args)?;
        }
        Command::Features(args) => features::run(args)?,
        Command::Eval(args) => eval::run(args)?,
        Command::TrainNgram(args) => train_ngram::run(args)?,
        Command::Feedback(args) => retrain::feedback_command(args).await?,
        Command::Retrain(args) => return retrain::retrain_command(args).await,
        Command::Audit(args) => return audit::run(args).await,
        Command::Quarantine(args) => quarantine::run(args).await?,
        Command::Account(args) => account::run(args).await?,
        Command::CheckConfig(args) => check_config::run(args)?,
        Command::CertSm2(args) => cert_sm2::run(args)?,
        Command::Dkim(args) => dkim::run(args).await?,
        Command::GenerateDocs(args) => generate_docs::run(args, Cli::command())?,
        Command::Backup(args) => backup::backup(args).await?,
        Command::Restore(args) => backup::restore(args).await?,
        Command::Upgrade(args) => return upgrade::run(args).await,
        Command::TlsProbe(args) => tls_probe::run(args).await?,
    }
    Ok(ExitCode::SUCCESS)
}
