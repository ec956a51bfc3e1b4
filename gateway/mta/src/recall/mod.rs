//! Recall (邮件召回): taking delivered mail back out of the organisation's mailboxes. A recall
//! names a message the hunt index knows ([`crate::hunt`]) and the mailboxes it went to; each
//! mailbox's mail system is reached by its connector ([`imap`]: a master user acting as the
//! mailbox's user), the message found by its Message-ID in every folder and moved to the recall
//! folder (or expunged), and the outcome recorded per mailbox ([`store`]) for the console to
//! follow. A moved message can be put back (undo). Work runs in the background, a bounded
//! number of mailboxes at once; a recall interrupted by a restart goes on when the gateway
//! starts again (finding a message is idempotent).

pub mod config;
pub mod imap;
pub mod store;

use std::sync::Arc;

use tokio::sync::Semaphore;

use crate::db::StoreError;
use crate::hunt::Indexed;
use crate::queue::SqliteStore;
use crate::queue::manager::unix_now;
pub use config::{RecallAction, RecallConfig};
use imap::Imap;
pub use store::{ADDED_COLUMNS, Item, Job, SCHEMA};

/// Most mailboxes one recall reaches.
pub const MAX_MAILBOXES: usize = 10_000;

/// What is looked for in a mailbox: the message by its Message-ID or, when it has none, by its
/// sender, subject and the day it arrived.
#[derive(Debug, Clone)]
pub struct Target {
    /// The Message-ID, without angle brackets (empty: none).
    pub message_id: String,
    /// The header `From` address.
    pub from: String,
    /// The subject.
    pub subject: String,
    /// When it arrived (Unix time).
    pub delivered_at: i64,
}

/// Why a recall, or one mailbox's part in it, did not go through.
#[derive(Debug, thiserror::Error)]
pub enum RecallError {
    /// The mail system failed or refused (connection, login, a command, a deadline).
    #[error("{0}")]
    Server(String),
    /// The Message-ID cannot be searched for over IMAP.
    #[error("cannot search for this Message-ID: {0}")]
    Unsearchable(String),
    /// No connector serves the mailbox's domain.
    #[error("no mail system is configured for {0} ([[recall.imap]] domains)")]
    NoSystem(String),
    /// The message has neither a Message-ID nor a sender and subject to find it by.
    #[error(
        "the message has no Message-ID, and no sender and subject: it cannot be found in the mailboxes"
    )]
    NoMessageId,
    /// None of the mailboxes named received the message.
    #[error("none of these mailboxes received the message")]
    NoMailbox,
    /// No such recall.
    #[error("no such recall")]
    NotFound,
    /// The recall deleted the message (or nothing was moved): there is nothing to put back.
    #[error("nothing to put back: the recall deleted the message or moved nothing")]
    NothingToUndo,
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Where notices to the recipients go: the queue, sent as the gateway (`hostname`).
pub struct Notices {
    /// The queue the notices are put in.
    pub queue: Arc<crate::queue::Queue>,
    /// The gateway's host name.
    pub hostname: String,
    /// The time zone the notices tell times in.
    pub zone: chrono_tz::Tz,
}

/// The recall service.
pub struct Recaller {
    config: RecallConfig,
    systems: Vec<Imap>,
    store: Arc<SqliteStore>,
    slots: Arc<Semaphore>,
    notices: Option<Notices>,
}

impl Recaller {
    /// Prepares the connectors of `config` (reading their password files) and goes on with the
    /// recalls a restart interrupted; notices to the recipients (when the configuration asks
    /// for them) go through `notices`.
    pub async fn open(
        config: RecallConfig,
        store: Arc<SqliteStore>,
        notices: Option<Notices>,
    ) -> Result<Arc<Self>, String> {
        let systems = config
            .imap
            .iter()
            .map(|c| Imap::new(c, &config))
            .collect::<Result<Vec<_>, _>>()?;
        let recaller = Arc::new(Self {
            slots: Arc::new(Semaphore::new(config.concurrency)),
            notices: notices.filter(|_| config.notify_recipients),
            config,
            systems,
            store,
        });
        match store::unfinished(&recaller.store).await {
            Ok(left) => {
                for (job, mailbox, restoring) in left {
                    recaller.clone().spawn_one(job, mailbox, restoring);
                }
            }
            Err(e) => tracing::error!(error = %e, "cannot read unfinished recalls"),
        }
        Ok(recaller)
    }

    /// The section it was opened with.
    pub fn config(&self) -> &RecallConfig {
        &self.config
    }

    /// Starts recalling `message` from `mailboxes` (those of its recipients; all of them when
    /// none are named); returns the recall's id at once.
    pub async fn start(
        self: &Arc<Self>,
        message: &Indexed,
        mailboxes: &[String],
        actor: &str,
        reason: &str,
    ) -> Result<Job, RecallError> {
        if message.message_id.is_empty()
            && (message.header_from.is_empty() || message.subject.is_empty())
        {
            return Err(RecallError::NoMessageId);
        }
        let chosen: Vec<String> = if mailboxes.is_empty() {
            message.rcpts.clone()
        } else {
            message
                .rcpts
                .iter()
                .filter(|r| mailboxes.iter().any(|m| m.eq_ignore_ascii_case(r)))
                .cloned()
                .collect()
        };
        if chosen.is_empty() {
            return Err(RecallError::NoMailbox);
        }
        let chosen: Vec<String> = chosen.into_iter().take(MAX_MAILBOXES).collect();
        let job = Job {
            id: ulid::Ulid::new().to_string(),
            created_at: unix_now(),
            actor: actor.to_owned(),
            queue_id: message.queue_id.clone(),
            message_id: message.message_id.clone(),
            mail_from: message.mail_from.clone(),
            header_from: message.header_from.clone(),
            delivered_at: message.at,
            subject: message.subject.clone(),
            action: match self.config.action {
                RecallAction::Move => "move",
                RecallAction::Delete => "delete",
            }
            .to_owned(),
            reason: reason.to_owned(),
        };
        store::create(&self.store, &job, &chosen).await?;
        tracing::info!(recall = %job.id, queue_id = %job.queue_id, mailboxes = chosen.len(), actor, "recall started");
        for mailbox in chosen {
            self.clone().spawn_one(job.clone(), mailbox, false);
        }
        Ok(job)
    }

    /// Puts back what recall `id` moved.
    pub async fn undo(self: &Arc<Self>, id: &str) -> Result<Vec<String>, RecallError> {
        let (job, items) = store::get(&self.store, id)
            .await?
            .ok_or(RecallError::NotFound)?;
        let moved: Vec<String> = items
            .into_iter()
            .filter(|i| i.state == "recalled" || i.state == "restore_failed")
            .map(|i| i.mailbox)
            .collect();
        if job.action != "move" || moved.is_empty() {
            return Err(RecallError::NothingToUndo);
        }
        let now = unix_now();
        for mailbox in &moved {
            store::set(&self.store, &job.id, mailbox, "restoring", None, "", now).await?;
            self.clone().spawn_one(job.clone(), mailbox.clone(), true);
        }
        tracing::info!(recall = %job.id, mailboxes = moved.len(), "recall undone");
        Ok(moved)
    }

    /// A recall and each mailbox's state.
    pub async fn get(&self, id: &str) -> Result<(Job, Vec<Item>), RecallError> {
        store::get(&self.store, id)
            .await?
            .ok_or(RecallError::NotFound)
    }

    /// The latest recalls with their mailboxes counted by state.
    pub async fn recent(&self, limit: u32) -> Result<Vec<(Job, Vec<(String, i64)>)>, RecallError> {
        Ok(store::recent(&self.store, limit).await?)
    }

    /// Works on one mailbox in the background, within the concurrency bound.
    fn spawn_one(self: Arc<Self>, job: Job, mailbox: String, restoring: bool) {
        tokio::spawn(async move {
            let Ok(_slot) = self.slots.clone().acquire_owned().await else {
                return;
            };
            let result = self.one(&job, &mailbox, restoring).await;
            if let Err(e) = result {
                tracing::error!(recall = %job.id, mailbox, error = %e, "cannot record a recall's progress");
            }
        });
    }

    async fn one(&self, job: &Job, mailbox: &str, restoring: bool) -> Result<(), StoreError> {
        let target = Target {
            message_id: job.message_id.clone(),
            from: job.header_from.clone(),
            subject: job.subject.clone(),
            delivered_at: job.delivered_at,
        };
        let set = |state: &'static str, folders: Option<Vec<(String, u32)>>, detail: String| {
            let store = self.store.clone();
            let (id, mailbox) = (job.id.clone(), mailbox.to_owned());
            async move {
                store::set(
                    &store,
                    &id,
                    &mailbox,
                    state,
                    folders.as_deref(),
                    &detail,
                    unix_now(),
                )
                .await
            }
        };
        let Some(n) = self.config.system_for(mailbox) else {
            let why = RecallError::NoSystem(mailbox.to_owned()).to_string();
            return set(
                if restoring {
                    "restore_failed"
                } else {
                    "failed"
                },
                None,
                why,
            )
            .await;
        };
        let system = &self.systems[n];
        if restoring {
            let folders = store::folders(&self.store, &job.id, mailbox).await?;
            return match system.restore(mailbox, &target, &folders).await {
                Ok(count) => {
                    tracing::info!(recall = %job.id, mailbox, count, "recalled message put back");
                    set("restored", None, String::new()).await
                }
                Err(e) => set("restore_failed", None, e.to_string()).await,
            };
        }
        set("working", None, String::new()).await?;
        match system.recall(mailbox, &target).await {
            // The state and the folders (with their copies) say it all; `detail` is for errors,
            // which come from the mail system in its own words.
            Ok(found) if found.is_empty() => set("absent", Some(found), String::new()).await,
            Ok(found) => {
                let count: u32 = found.iter().map(|f| f.1).sum();
                tracing::info!(recall = %job.id, mailbox, count, "message recalled from a mailbox");
                set("recalled", Some(found), String::new()).await?;
                self.notify(job, mailbox).await;
                Ok(())
            }
            Err(e) => {
                tracing::warn!(recall = %job.id, mailbox, error = %e, "recall failed for a mailbox");
                set("failed", None, e.to_string()).await
            }
        }
    }
}

impl Recaller {
    /// Tells `mailbox` that `job` took a message out of it.
    async fn notify(&self, job: &Job, mailbox: &str) {
        let Some(n) = &self.notices else { return };
        let id = ulid::Ulid::new().to_string();
        let body = notice(&n.hostname, &id, job, mailbox, n.zone);
        let message = crate::queue::NewMessage {
            id: id.clone(),
            mail_from: String::new(),
            rcpts: vec![mailbox.to_owned()],
            size: 0,
            received_at: unix_now(),
            client_ip: "127.0.0.1".into(),
            helo: n.hostname.clone(),
            smtputf8: !mailbox.is_ascii(),
            kind: crate::queue::MessageKind::Dsn,
            held: None,
        };
        if let Err(e) = n.queue.enqueue(message, vec![body]).await {
            tracing::error!(recall = %job.id, mailbox, error = %e, "cannot queue the recall notice");
        }
    }
}

/// The notice to a recipient, in Chinese and English.
fn notice(hostname: &str, id: &str, job: &Job, mailbox: &str, zone: chrono_tz::Tz) -> Vec<u8> {
    use crate::queue::dsn::one_line;
    let from = if job.header_from.is_empty() {
        &job.mail_from
    } else {
        &job.header_from
    };
    let (subject, from, reason) = (
        one_line(&job.subject),
        one_line(from),
        one_line(&job.reason),
    );
    let arrived = crate::config::time_text(job.delivered_at, zone);
    let body = format!(
        "您邮箱中的一封邮件已被安全管理员从所有收件人的邮箱中召回：\r\n\
         \x20 主题：{subject}\r\n\
         \x20 发件人：{from}\r\n\
         \x20 收到时间：{arrived}\r\n\
         \x20 原因：{reason}\r\n\
         如您已打开其中的链接或附件，请立即联系信息安全部门。\r\n\
         \r\n\
         A message in your mailbox was recalled by the security administrator:\r\n\
         \x20 Subject: {subject}\r\n\
         \x20 From: {from}\r\n\
         \x20 Received: {arrived}\r\n\
         \x20 Reason: {reason}\r\n\
         If you opened its links or attachments, contact your security team now.\r\n"
    );
    crate::queue::dsn::gateway_mail(
        hostname,
        id,
        Some(mailbox),
        "邮件召回通知 / A message was recalled from your mailbox",
        &body,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn message() -> Indexed {
        Indexed {
            at: 1,
            queue_id: "01RECALLRECALLRECALLRECALL".into(),
            message_id: "m1@bank.test".into(),
            mail_from: "a@bank.test".into(),
            header_from: "a@bank.test".into(),
            subject: "x".into(),
            rcpts: vec!["alice@example.com".into(), "bob@other.test".into()],
        }
    }

    /// A recaller whose only mail system is the IMAP server `behave` plays on a loopback port.
    async fn recaller(
        dir: &std::path::Path,
        timeout_secs: u64,
        behave: impl FnOnce(tokio::net::TcpStream) -> tokio::task::JoinHandle<()> + Send + 'static,
    ) -> Arc<Recaller> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            if let Ok((s, _)) = listener.accept().await {
                let _ = behave(s).await;
            }
        });
        std::fs::write(dir.join("secret"), "pw\n").unwrap();
        let config = RecallConfig {
            imap: vec![config::ImapConfig {
                domains: vec!["example.com".into()],
                host: "127.0.0.1".into(),
                port,
                tls: config::ImapTls::None,
                tls_ca: None,
                tls_name: None,
                master_user: "m".into(),
                password_file: dir.join("secret"),
                login: "{user}*{master}".into(),
                user: "address".into(),
            }],
            timeout_secs,
            ..RecallConfig::default()
        };
        let store = Arc::new(SqliteStore::open(&dir.join("q.db")).await.unwrap());
        Recaller::open(config, store, None).await.unwrap()
    }

    /// The job's items once none is still under way (within the longest deadline of these
    /// tests, with room for an emulated, loaded machine).
    async fn settled(r: &Recaller, id: &str) -> Vec<Item> {
        for _ in 0..1500 {
            let (_, items) = r.get(id).await.unwrap();
            if items
                .iter()
                .all(|i| !["pending", "working", "restoring"].contains(&i.state.as_str()))
            {
                return items;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        panic!("the recall never settled");
    }

    #[tokio::test]
    async fn a_server_that_stalls_fails_its_mailbox_within_the_deadline_and_others_go_on() {
        let dir = tempfile::tempdir().unwrap();
        let r = recaller(dir.path(), 1, |mut s| {
            tokio::spawn(async move {
                let _ = s.write_all(b"* OK ready\r\n").await;
                let mut buf = [0u8; 1024];
                // Reads the login and never answers.
                while s.read(&mut buf).await.is_ok_and(|n| n > 0) {}
            })
        })
        .await;
        let job = r.start(&message(), &[], "test", "stall").await.unwrap();
        let items = settled(&r, &job.id).await;
        let alice = items
            .iter()
            .find(|i| i.mailbox == "alice@example.com")
            .unwrap();
        assert_eq!(alice.state, "failed");
        assert!(alice.detail.contains("timeout"), "{}", alice.detail);
        // A mailbox of a domain no system holds says so.
        let bob = items
            .iter()
            .find(|i| i.mailbox == "bob@other.test")
            .unwrap();
        assert_eq!(bob.state, "failed");
        assert!(bob.detail.contains("no mail system"), "{}", bob.detail);
        assert!(matches!(
            r.undo(&job.id).await,
            Err(RecallError::NothingToUndo)
        ));
    }

    #[tokio::test]
    async fn a_server_that_floods_is_cut_off() {
        let dir = tempfile::tempdir().unwrap();
        // The flood is cut off by size, not time: under QEMU on a loaded machine reading the
        // 4 MiB took longer than 20 s, so the deadline here is far beyond it.
        let r = recaller(dir.path(), 120, |mut s| {
            tokio::spawn(async move {
                let _ = s.write_all(b"* OK ready\r\n").await;
                let mut buf = [0u8; 1024];
                let _ = s.read(&mut buf).await;
                // One endless untagged line in answer to the login.
                let chunk = vec![b'x'; 1 << 20];
                let _ = s.write_all(b"* OK ").await;
                while s.write_all(&chunk).await.is_ok() {}
            })
        })
        .await;
        let job = r
            .start(&message(), &["alice@example.com".into()], "test", "flood")
            .await
            .unwrap();
        let items = settled(&r, &job.id).await;
        assert_eq!(items.len(), 1);
        assert_eq!(items[0].state, "failed");
        assert!(items[0].detail.contains("more than"), "{}", items[0].detail);
    }

    #[test]
    fn the_notice_says_what_was_recalled_from_whom_and_why() {
        let job = Job {
            id: "J".into(),
            created_at: 0,
            actor: "console:sec".into(),
            queue_id: "Q".into(),
            message_id: "m@x".into(),
            mail_from: "bounce@bank.test".into(),
            header_from: "notice@bank.test".into(),
            delivered_at: 1_796_464_800,
            subject: "Verify your account\r\nBcc: evil@x.test".into(),
            action: "move".into(),
            reason: "phishing".into(),
        };
        let text = String::from_utf8(notice(
            "gw.test",
            "N1",
            &job,
            "alice@example.com",
            chrono_tz::UTC,
        ))
        .unwrap();
        let (header, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(header.contains("To: <alice@example.com>\r\n"), "{header}");
        assert!(header.contains("Auto-Submitted: auto-generated"));
        assert!(
            !header.contains("Bcc"),
            "the subject cannot add header lines"
        );
        for said in [
            "主题：Verify your account  Bcc: evil@x.test",
            "发件人：notice@bank.test",
            "Reason: phishing",
        ] {
            assert!(body.contains(said), "{body}");
        }
    }

    #[tokio::test]
    async fn a_message_without_message_id_sender_and_subject_or_mailboxes_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let r = recaller(dir.path(), 1, |_| tokio::spawn(async {})).await;
        let mut m = message();
        assert!(matches!(
            r.start(&m, &["nobody@example.com".into()], "t", "").await,
            Err(RecallError::NoMailbox)
        ));
        m.message_id.clear();
        // Its sender and subject still find it.
        assert!(r.start(&m, &[], "t", "").await.is_ok());
        m.subject.clear();
        assert!(matches!(
            r.start(&m, &[], "t", "").await,
            Err(RecallError::NoMessageId)
        ));
    }
}
