//! The quarantine: mail a verdict holds back instead of delivering. A held message stays in the
//! delivery spool with its queue row in state `held`, and a quarantine record (subject, sender,
//! verdict, evidence, expiry) is committed in the same transaction — so holding is exactly as
//! durable as queueing, and releasing is one transaction that makes the row deliverable (never
//! twice, never lost). Nothing released is scanned again: it goes straight to delivery.
//!
//! [`index`] owns the tables and queries; this module owns the actions (search, release,
//! delete, download, expiry) that the console, the self-service links and the CLI share.

pub mod approval;
pub mod digest;
pub mod index;
pub mod links;

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::config::RetentionDays;
use crate::db::StoreError;
use crate::queue::SqliteStore;
use crate::queue::spool::Spool;
use jianmen_scan::verdict::Report;

pub use index::{Item, Page, Query, RcptState, Sort, Status, Summary};

/// Why a quarantine action failed.
#[derive(Debug, thiserror::Error)]
pub enum QuarantineError {
    /// No quarantined message has this id.
    #[error("no quarantined message {0}")]
    NotFound(String),
    /// The action does not apply in the item's present state (already released, deleted…).
    #[error("message {id} is {status}: {why}")]
    Conflict {
        /// The item.
        id: String,
        /// Its state.
        status: &'static str,
        /// What could not be done.
        why: String,
    },
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The message file could not be read or written.
    #[error("quarantined message file: {0}")]
    Spool(#[from] std::io::Error),
}

impl From<sqlx::Error> for QuarantineError {
    fn from(e: sqlx::Error) -> Self {
        QuarantineError::Store(e.into())
    }
}

/// What a verdict records about a message it holds; stored beside the queue row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Held {
    /// One line for people (the verdict's explanation or the refusal).
    pub reason: String,
    /// Verdict class (`spam`, `phish`, `virus`, `bec`, or `refused` for a split refusal).
    pub class: String,
    /// Total score.
    pub score: f64,
    /// Decoded Subject, bounded.
    pub subject: String,
    /// Header From address, bounded.
    pub header_from: String,
    /// The full evidence, when the scanner produced one.
    pub report: Option<Report>,
    /// Unix time after which the message is deleted unless released.
    pub expires_at: i64,
}

/// Longest subject or address kept in the index, in characters.
const MAX_FIELD_CHARS: usize = 300;

/// The decoded Subject and header From of a raw message (bounded; empty when absent or
/// unparsable) — what an administrator searches by.
pub fn headline(raw: &[u8]) -> (String, String) {
    let Some(message) = mail_parser::MessageParser::new().parse_headers(raw) else {
        return (String::new(), String::new());
    };
    let subject = message.subject().unwrap_or_default();
    let from = message
        .from()
        .and_then(|a| a.first())
        .and_then(|a| a.address())
        .unwrap_or_default();
    (bounded(subject), bounded(&from.to_lowercase()))
}

fn bounded(s: &str) -> String {
    s.chars()
        .filter(|c| !c.is_control())
        .take(MAX_FIELD_CHARS)
        .collect()
}

impl Held {
    /// The record for a message held with `reason` on `report`, expiring after `hours` when
    /// the verdict set them (a DLP approval's deadline), else after the retention configured
    /// for its class.
    pub fn new(
        raw: &[u8],
        reason: String,
        report: Option<Report>,
        hours: Option<u32>,
        retention: &RetentionDays,
        now: i64,
    ) -> Self {
        let (subject, header_from) = headline(raw);
        let (class, score) = match &report {
            Some(r) => (r.class.as_str().to_owned(), r.score),
            None => ("refused".to_owned(), 0.0),
        };
        let keep_secs = match hours {
            Some(hours) => i64::from(hours) * 3600,
            None => i64::from(retention.for_class(&class)) * 86_400,
        };
        Self {
            reason,
            class,
            score,
            subject,
            header_from,
            report,
            expires_at: now + keep_secs,
        }
    }
}

/// The outcome of a release.
#[derive(Debug, Clone, Serialize)]
pub struct Released {
    /// Queue id the released copy is delivered under.
    pub queue_id: String,
    /// The recipients it goes to.
    pub rcpts: Vec<String>,
}

impl Released {
    /// The tracking event for this release of `item` by `actor`.
    pub fn event(&self, item: &Summary, actor: &str) -> crate::tracking::Event {
        crate::tracking::Event {
            at: crate::queue::manager::unix_now(),
            queue_id: item.id.clone(),
            kind: crate::tracking::EventKind::Released,
            mail_from: item.mail_from.clone(),
            rcpts: self.rcpts.join(","),
            subject: item.subject.clone(),
            client_ip: item.client_ip.clone(),
            class: item.class.clone(),
            score: item.score,
            detail: format!("released by {actor} as {}", self.queue_id),
            direction: String::new(),
        }
    }
}

/// The quarantine over the queue's store and spool.
#[derive(Clone)]
pub struct Quarantine {
    store: Arc<SqliteStore>,
    spool: Spool,
    hunt: Option<crate::hunt::HuntIndex>,
}

impl Quarantine {
    /// The quarantine of a queue (the same database and spool).
    pub fn new(store: Arc<SqliteStore>, spool: Spool) -> Self {
        Self {
            store,
            spool,
            hunt: None,
        }
    }

    /// The same quarantine indexing what it releases into the mailboxes in `hunt`: mail
    /// released by mistake is what most often needs recalling.
    pub fn indexing(mut self, hunt: crate::hunt::HuntIndex) -> Self {
        self.hunt = Some(hunt);
        self
    }

    /// Hands a released copy to the hunt index.
    async fn index_released(&self, queue_id: &str, mail_from: &str, rcpts: &[String], now: i64) {
        let Some(hunt) = &self.hunt else { return };
        let mailboxes = hunt.mailboxes(rcpts);
        if mailboxes.is_empty() {
            return;
        }
        let spool = self.spool.clone();
        let id = queue_id.to_owned();
        match tokio::task::spawn_blocking(move || spool.read(&id)).await {
            Ok(Ok(data)) => hunt.index(now, queue_id, mail_from, &mailboxes, data),
            _ => tracing::warn!(
                queue_id,
                "released message not indexed for hunting: unreadable"
            ),
        }
    }

    /// One page of items matching `query`, newest first.
    pub async fn search(&self, query: &Query) -> Result<Page, QuarantineError> {
        Ok(index::search(self.store.reader(), query).await?)
    }

    /// One item with its evidence and recipients.
    pub async fn get(&self, id: &str) -> Result<Item, QuarantineError> {
        index::get(self.store.reader(), id)
            .await?
            .ok_or_else(|| QuarantineError::NotFound(id.to_owned()))
    }

    /// The raw message of a held item (what a download or a preview shows).
    pub async fn raw(&self, id: &str) -> Result<Vec<u8>, QuarantineError> {
        let item = self.get(id).await?;
        item.summary
            .require(Status::Held, "its message is no longer kept")?;
        let spool = self.spool.clone();
        let id = id.to_owned();
        Ok(tokio::task::spawn_blocking(move || spool.read(&id))
            .await
            .map_err(|e| std::io::Error::other(e.to_string()))??)
    }

    /// Releases a held item to all its remaining recipients, or to `only` some of them (a user
    /// releasing their own copy); `actor` is recorded with the release.
    pub async fn release(
        &self,
        id: &str,
        only: Option<&[String]>,
        actor: &str,
        now: i64,
    ) -> Result<Released, QuarantineError> {
        let item = self.get(id).await?;
        item.summary
            .require(Status::Held, "it cannot be released")?;
        let waiting: Vec<String> = item
            .rcpts
            .iter()
            .filter(|r| r.released_at.is_none())
            .map(|r| r.rcpt.clone())
            .collect();
        let targets: Vec<String> = match only {
            Some(only) => waiting
                .iter()
                .filter(|r| only.iter().any(|o| o.eq_ignore_ascii_case(r)))
                .cloned()
                .collect(),
            None => waiting.clone(),
        };
        if targets.is_empty() {
            return Err(QuarantineError::Conflict {
                id: id.to_owned(),
                status: Status::Held.as_str(),
                why: "none of these recipients has a copy waiting".into(),
            });
        }
        if targets.len() == waiting.len() {
            index::release_all(&self.store, id, actor, now).await?;
            self.index_released(id, &item.summary.mail_from, &targets, now)
                .await;
            return Ok(Released {
                queue_id: id.to_owned(),
                rcpts: targets,
            });
        }
        // Some recipients only: their copy becomes a new queued message; the rest stay held.
        let copy = ulid::Ulid::new().to_string();
        let spool = self.spool.clone();
        let (from, to) = (id.to_owned(), copy.clone());
        tokio::task::spawn_blocking(move || {
            let data = spool.read(&from)?;
            spool.write(&to, &[&data])
        })
        .await
        .map_err(|e| std::io::Error::other(e.to_string()))??;
        if let Err(e) = index::release_some(&self.store, id, &copy, &targets, actor, now).await {
            let _ = self.spool.remove(&copy);
            return Err(e);
        }
        self.index_released(&copy, &item.summary.mail_from, &targets, now)
            .await;
        Ok(Released {
            queue_id: copy,
            rcpts: targets,
        })
    }

    /// Deletes a held item's message; the record stays (status `deleted`) for the history.
    pub async fn delete(&self, id: &str, actor: &str, now: i64) -> Result<(), QuarantineError> {
        let item = self.get(id).await?;
        item.summary.require(Status::Held, "it cannot be deleted")?;
        index::drop_message(&self.store, id, Status::Deleted, actor, now, None).await?;
        self.remove_file(id);
        Ok(())
    }

    /// Deletes every held message whose retention ended by `now`; returns how many. A message
    /// whose approval deadline passed is rejected and its sender told ([`approval::Notices`]).
    /// One that cannot be expired (say, released a moment ago) does not stop the others.
    pub async fn expire(
        &self,
        now: i64,
        notices: &approval::Notices<'_>,
    ) -> Result<usize, QuarantineError> {
        let ids = index::expired(self.store.reader(), now).await?;
        let mut done = 0;
        for id in &ids {
            let expired = async {
                let item = self.get(id).await?;
                if approval::awaits_review(&item.summary.class) {
                    let why = "审批超时 / No reviewer approved it before the deadline.";
                    let status = Status::Rejected;
                    self.drop_with_notice(&item.summary, status, "deadline", notices, why, now)
                        .await
                } else {
                    index::drop_message(&self.store, id, Status::Expired, "retention", now, None)
                        .await?;
                    self.remove_file(id);
                    Ok(())
                }
            };
            match expired.await {
                Ok(()) => done += 1,
                Err(e) => tracing::warn!(queue_id = %id, error = %e, "cannot expire held message"),
            }
        }
        Ok(done)
    }

    /// Removes a message file after its row is gone; a file left by a crash here is removed
    /// by the queue's start-up sweep (it has no row).
    fn remove_file(&self, id: &str) {
        if let Err(e) = self.spool.remove(id) {
            tracing::warn!(queue_id = %id, error = %e, "cannot remove quarantined message file");
        }
    }
}

impl Summary {
    /// When it arrived, as recipients are shown it (`2026-11-24 06:00 UTC`).
    pub fn received_text(&self, zone: chrono_tz::Tz) -> String {
        crate::config::time_text(self.received_at, zone)
    }

    /// The sender as recipients know it: the header From, else the envelope sender.
    pub fn shown_from(&self) -> &str {
        if self.header_from.is_empty() {
            &self.mail_from
        } else {
            &self.header_from
        }
    }

    fn require(&self, status: Status, why: &str) -> Result<(), QuarantineError> {
        if self.status == status {
            Ok(())
        } else {
            Err(QuarantineError::Conflict {
                id: self.id.clone(),
                status: self.status.as_str(),
                why: why.to_owned(),
            })
        }
    }
}

/// Deletes expired quarantine items (and rejects approvals past their deadline) every ten
/// minutes, forever; notices go out from `hostname` to senders in `protected` domains, with
/// times in `zone`.
pub async fn expire_periodically(
    quarantine: Quarantine,
    hostname: String,
    protected: Vec<String>,
    zone: chrono_tz::Tz,
) {
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(600));
    let notices = approval::Notices::new(&hostname, &protected).in_zone(zone);
    loop {
        tick.tick().await;
        match quarantine
            .expire(crate::queue::manager::unix_now(), &notices)
            .await
        {
            Ok(0) => {}
            Ok(n) => tracing::info!(count = n, "expired quarantined messages deleted"),
            Err(e) => tracing::error!(error = %e, "cannot expire quarantined messages"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::queue::{MessageKind, NewMessage, QueueStore};

    fn held(id: &str, expires_at: i64) -> NewMessage {
        NewMessage {
            id: id.into(),
            mail_from: "a@outside.test".into(),
            rcpts: vec!["u@example.com".into()],
            size: 3,
            received_at: 10,
            client_ip: "192.0.2.1".into(),
            helo: "outside.test".into(),
            smtputf8: false,
            kind: MessageKind::Mail,
            held: Some(Box::new(Held {
                reason: "spam".into(),
                class: "spam".into(),
                score: 9.0,
                subject: "s".into(),
                header_from: "a@outside.test".into(),
                report: None,
                expires_at,
            })),
        }
    }

    #[tokio::test]
    async fn expiry_deletes_only_what_is_due() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(SqliteStore::open(&dir.path().join("q.db")).await.unwrap());
        let spool = Spool::open(&dir.path().join("spool")).unwrap();
        let (old, young) = ("01AAAAAAAAAAAAAAAAAAAAAAA0", "01AAAAAAAAAAAAAAAAAAAAAAA1");
        for (id, expires) in [(old, 100), (young, 300)] {
            spool.write(id, &[b"x\r\n"]).unwrap();
            store.insert(&[held(id, expires)]).await.unwrap();
        }
        let q = Quarantine::new(store.clone(), spool.clone());
        assert_eq!(
            q.expire(200, &approval::Notices::new("gw.test", &[]))
                .await
                .unwrap(),
            1
        );
        assert_eq!(q.get(old).await.unwrap().summary.status, Status::Expired);
        assert!(
            spool.read(old).is_err(),
            "the expired message file is removed"
        );
        assert!(store.get(old).await.unwrap().is_none());
        assert_eq!(q.get(young).await.unwrap().summary.status, Status::Held);
        assert_eq!(q.raw(young).await.unwrap(), b"x\r\n");
        assert_eq!(
            q.expire(200, &approval::Notices::new("gw.test", &[]))
                .await
                .unwrap(),
            0
        );
    }

    #[tokio::test]
    async fn what_is_released_into_the_mailboxes_can_be_found_again() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(SqliteStore::open(&dir.path().join("q.db")).await.unwrap());
        let spool = Spool::open(&dir.path().join("spool")).unwrap();
        let hunt = crate::hunt::HuntIndex::open(dir.path(), &["example.com".into()])
            .await
            .unwrap();
        let id = "01AAAAAAAAAAAAAAAAAAAAAAA2";
        spool
            .write(
                id,
                &[b"Message-ID: <released@outside.test>\r\nSubject: s\r\n\r\nhi\r\n"],
            )
            .unwrap();
        store.insert(&[held(id, 1000)]).await.unwrap();
        let q = Quarantine::new(store, spool).indexing(hunt.clone());
        let term = crate::hunt::Term::MessageId("released@outside.test".into());
        assert!(hunt.find(&term, 0, 10).await.unwrap().is_empty());
        q.release(id, None, "admin", 50).await.unwrap();
        hunt.flush().await;
        let found = hunt.find(&term, 0, 10).await.unwrap();
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].rcpts, ["u@example.com"]);
        assert_eq!(found[0].queue_id, id);
    }

    #[test]
    fn retention_follows_the_class() {
        let r = RetentionDays::default();
        let spam = Held::new(b"Subject: hi\r\n\r\n", "x".into(), None, None, &r, 0);
        assert_eq!(spam.class, "refused");
        assert_eq!(spam.expires_at, i64::from(r.other) * 86_400);
        assert_eq!(spam.subject, "hi");
        let approval = Held::new(b"", "dlp".into(), None, Some(24), &r, 100);
        assert_eq!(
            approval.expires_at,
            100 + 24 * 3600,
            "a policy's deadline wins"
        );
    }
}
