//! `jianmen quarantine`: search, inspect, release, delete and download held mail from the shell
//! (the same actions as the console, recorded in the audit log the same way).

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::Subcommand;

use jianmen_mta::config::Config;
use jianmen_mta::hunt::HuntIndex;
use jianmen_mta::quarantine::approval::Notices;
use jianmen_mta::quarantine::digest::DigestSettings;
use jianmen_mta::quarantine::links::LinkKey;
use jianmen_mta::quarantine::{Quarantine, Query, Status};
use jianmen_mta::queue::manager::unix_now;
use jianmen_mta::queue::spool::Spool;
use jianmen_mta::tracking::Tracker;
use jianmen_scan::feedback::{FeedbackStore, Label};

/// What `jianmen quarantine` does.
#[derive(Subcommand)]
pub enum QuarantineAction {
    /// Search held mail, newest first.
    List {
        /// Print JSON, one item per line.
        #[arg(long)]
        json: bool,
        /// Most items shown (at most 200).
        #[arg(long, default_value_t = 50)]
        limit: u32,
        /// Envelope or header sender contains.
        #[arg(long)]
        sender: Option<String>,
        /// A recipient contains.
        #[arg(long)]
        rcpt: Option<String>,
        /// Subject contains.
        #[arg(long)]
        subject: Option<String>,
        /// Verdict class (spam, phish, virus, bec, unscannable, refused, or dlp: outgoing
        /// mail waiting for approval).
        #[arg(long)]
        class: Option<String>,
        /// Status: held (default), released, deleted, expired, rejected or all.
        #[arg(long, default_value = "held")]
        status: String,
    },
    /// Show one item: envelope, verdict evidence, recipients.
    Show {
        /// Item (queue) id.
        id: String,
    },
    /// Hand a held message to delivery (all recipients, or only those given).
    Release {
        /// Item (queue) id.
        id: String,
        /// Release only this recipient's copy (repeatable).
        #[arg(long)]
        rcpt: Vec<String>,
        /// Also keep the message as a "not spam" example for local learning.
        #[arg(long)]
        not_spam: bool,
    },
    /// Refuse outgoing mail held for approval (class dlp): it is dropped and its sender gets a
    /// notice naming the policy, without the message. (Approving is `release`.)
    Reject {
        /// Item (queue) id.
        id: String,
    },
    /// Delete a held message without delivering it.
    Delete {
        /// Item (queue) id.
        id: String,
    },
    /// Write a held message's raw .eml to a file (or standard output).
    Download {
        /// Item (queue) id.
        id: String,
        /// Output file; standard output when absent.
        #[arg(long, short)]
        out: Option<PathBuf>,
    },
    /// Delete every held message whose retention has ended, and reject approvals past their
    /// deadline (the daemon does this every ten minutes).
    Expire,
    /// Queue the digest mails now (the daemon does this every `quarantine.digest_hours`).
    Digest,
}

/// Options of `jianmen quarantine`.
#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub config: super::ConfigPath,
    #[command(subcommand)]
    action: QuarantineAction,
}

/// Runs one quarantine action against the configuration's data directory.
pub async fn run(args: Args) -> Result<()> {
    let config = &Config::load(&args.config.path)?;
    let action = args.action;
    // A download goes where the caller asked, written with the caller's rights.
    let mut download_file = match &action {
        QuarantineAction::Download {
            out: Some(path), ..
        } => Some(
            std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?,
        ),
        _ => None,
    };
    super::as_service(config)?;
    let store = Arc::new(crate::daemon::open_store(config).await?);
    let quarantine = Quarantine::new(store, Spool::configured(config)?);
    match action {
        QuarantineAction::List {
            json,
            limit,
            sender,
            rcpt,
            subject,
            class,
            status,
        } => {
            let status = match status.as_str() {
                "all" => None,
                s => Some(Status::parse(s).with_context(|| format!("unknown status `{s}`"))?),
            };
            let page = quarantine
                .search(&Query {
                    sender,
                    rcpt,
                    subject,
                    class,
                    status,
                    limit,
                    ..Query::default()
                })
                .await?;
            for s in &page.items {
                if json {
                    println!("{}", serde_json::to_string(s)?);
                } else {
                    println!(
                        "{}  {:<8} {:>6.1}  {:<8} {:<30} {}",
                        s.id,
                        s.class,
                        s.score,
                        s.status.as_str(),
                        s.mail_from,
                        s.subject
                    );
                }
            }
            if !json {
                println!("{} of {} item(s)", page.items.len(), page.total);
            }
        }
        QuarantineAction::Show { id } => {
            crate::commands::check_id(&id)?;
            let item = quarantine.get(&id).await?;
            println!("{}", serde_json::to_string_pretty(&item)?);
        }
        QuarantineAction::Release { id, rcpt, not_spam } => {
            crate::commands::check_id(&id)?;
            if not_spam {
                let raw = quarantine.raw(&id).await?;
                FeedbackStore::open(&config.server.data_dir).record(&raw, Label::Ham)?;
            }
            let actor = crate::commands::cli_actor();
            let only = (!rcpt.is_empty()).then_some(rcpt.as_slice());
            // What goes into the mailboxes is indexed, so that it can be recalled.
            let hunt = HuntIndex::open(&config.server.data_dir, &config.domains.protected).await?;
            let released = quarantine
                .clone()
                .indexing(hunt.clone())
                .release(&id, only, &actor, unix_now())
                .await?;
            hunt.flush().await;
            let detail = format!(
                "{id} to {} as {}{}",
                released.rcpts.join(","),
                released.queue_id,
                if not_spam { " (not spam)" } else { "" }
            );
            crate::commands::record(config, "quarantine.release", &detail).await?;
            let tracker = Tracker::open(&config.server.data_dir).await?;
            tracker.record(released.event(&quarantine.get(&id).await?.summary, &actor));
            tracker.flush().await;
            println!("{detail}");
        }
        QuarantineAction::Reject { id } => {
            crate::commands::check_id(&id)?;
            let actor = crate::commands::cli_actor();
            let notices = Notices::new(&config.server.hostname, &config.domains.protected)
                .in_zone(config.server.zone());
            quarantine.reject(&id, &actor, &notices, unix_now()).await?;
            crate::commands::record(config, "quarantine.reject", &id).await?;
            let tracker = Tracker::open(&config.server.data_dir).await?;
            tracker.record(quarantine.get(&id).await?.summary.rejected_event(&actor));
            tracker.flush().await;
            println!("{id}: rejected; the sender is told");
        }
        QuarantineAction::Delete { id } => {
            crate::commands::check_id(&id)?;
            quarantine
                .delete(&id, &crate::commands::cli_actor(), unix_now())
                .await?;
            crate::commands::record(config, "quarantine.delete", &id).await?;
            println!("{id}: deleted");
        }
        QuarantineAction::Download { id, out } => {
            crate::commands::check_id(&id)?;
            let raw = quarantine.raw(&id).await?;
            crate::commands::record(config, "quarantine.download", &id).await?;
            match (out, download_file.as_mut()) {
                (Some(path), Some(file)) => file
                    .write_all(&raw)
                    .with_context(|| format!("writing {}", path.display()))?,
                _ => std::io::stdout().write_all(&raw)?,
            }
        }
        QuarantineAction::Expire => {
            let notices = Notices::new(&config.server.hostname, &config.domains.protected)
                .in_zone(config.server.zone());
            let n = quarantine.expire(unix_now(), &notices).await?;
            if n > 0 {
                crate::commands::record(config, "quarantine.expire", &format!("{n} message(s)"))
                    .await?;
            }
            println!("{n} expired message(s) deleted");
        }
        QuarantineAction::Digest => {
            let settings = DigestSettings::from_config(config)
                .context("digests need a [console] section to serve their links")?;
            let key = LinkKey::load_or_create(&config.server.data_dir)?;
            let n = quarantine.send_digests(&settings, &key, unix_now()).await?;
            println!("{n} digest(s) queued");
        }
    }
    Ok(())
}
