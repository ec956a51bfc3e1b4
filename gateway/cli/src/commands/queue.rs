//! `jianmen queue`: list, show, retry, delete and flush queued mail from the shell; every change
//! is recorded in the audit log.

use anyhow::{Context, Result, bail};
use clap::Subcommand;
use jianmen_mta::config::Config;
use jianmen_mta::queue::manager::unix_now;
use jianmen_mta::queue::spool::Spool;
use jianmen_mta::queue::{QueueStore, QueuedMessage};

use super::{check_id, record};

/// Options of `jianmen queue`.
#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub config: super::ConfigPath,
    #[command(subcommand)]
    action: QueueAction,
}

/// What `jianmen queue` does.
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

/// Runs one queue action against the configuration's data directory.
pub async fn run(args: Args) -> Result<()> {
    let config = &Config::load(&args.config.path)?;
    super::as_service(config)?;
    let store = crate::daemon::open_store(config).await?;
    let action = args.action;
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
            let spool = Spool::configured(config)?;
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
            Spool::configured(config)?.remove(&id)?;
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
