//! The hunt index: for every message accepted for delivery into the organisation's mailboxes,
//! what it can be found again by — Message-ID, sender, subject, recipients, links and their
//! domains, attachments' SHA-256 — kept in `hunt.db` for the tracking retention. A threat
//! known only later (an intel indicator, an administrator's search) finds the messages and the
//! mailboxes that hold them, for recall.
//!
//! Indexing never delays mail: the message is parsed by a background task; when that task is
//! far behind, messages go unindexed and are counted.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;
use sqlx::{QueryBuilder, Row, Sqlite, SqlitePool};
use tokio::sync::{mpsc, oneshot};

use crate::db::StoreError;
use jianmen_scan::hunt::Facts;

/// Messages waiting to be indexed before new ones are skipped.
const BACKLOG: usize = 256;
/// Most messages one search returns.
pub const MAX_FOUND: u32 = 1000;

const SCHEMA: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS hunt_messages (
        queue_id TEXT PRIMARY KEY,
        at INTEGER NOT NULL,
        message_id TEXT NOT NULL,
        mail_from TEXT NOT NULL,
        header_from TEXT NOT NULL,
        subject TEXT NOT NULL,
        rcpts TEXT NOT NULL
    )",
    "CREATE INDEX IF NOT EXISTS hunt_messages_at ON hunt_messages (at)",
    "CREATE INDEX IF NOT EXISTS hunt_messages_id ON hunt_messages (message_id)",
    "CREATE TABLE IF NOT EXISTS hunt_terms (
        queue_id TEXT NOT NULL,
        kind TEXT NOT NULL,
        value TEXT NOT NULL
    )",
    "CREATE INDEX IF NOT EXISTS hunt_terms_value ON hunt_terms (kind, value)",
    "CREATE INDEX IF NOT EXISTS hunt_terms_queue ON hunt_terms (queue_id)",
];

/// What a message is looked for by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Term {
    /// An attachment's SHA-256 (hex, any case).
    Sha256(String),
    /// A link, as written in the message (scheme and host compared without case).
    Url(String),
    /// A link's host or any domain above it (`evil.test` finds `login.evil.test`).
    Domain(String),
    /// The envelope or header sender.
    Sender(String),
    /// The Message-ID (with or without angle brackets).
    MessageId(String),
    /// The queue id.
    QueueId(String),
}

/// A message the index knows.
#[derive(Debug, Clone, Serialize)]
pub struct Indexed {
    /// When it was accepted (Unix time).
    pub at: i64,
    /// Its queue id.
    pub queue_id: String,
    /// Its Message-ID, without angle brackets.
    pub message_id: String,
    /// Envelope sender.
    pub mail_from: String,
    /// Header `From` address.
    pub header_from: String,
    /// Subject.
    pub subject: String,
    /// The protected recipients it was accepted for: the mailboxes that may hold it.
    pub rcpts: Vec<String>,
}

enum Request {
    Index {
        at: i64,
        queue_id: String,
        mail_from: String,
        rcpts: Vec<String>,
        raw: Vec<u8>,
    },
    Flush(oneshot::Sender<()>),
    Purge(i64, oneshot::Sender<Result<u64, sqlx::Error>>),
}

/// The index: cheap to clone.
#[derive(Clone)]
pub struct HuntIndex {
    pool: SqlitePool,
    tx: mpsc::Sender<Request>,
    skipped: Arc<AtomicU64>,
    protected: Arc<Vec<String>>,
}

impl HuntIndex {
    /// Opens (creating) `data_dir/hunt.db` and starts the indexer; the mailboxes are those of
    /// the `protected` domains.
    pub async fn open(data_dir: &Path, protected: &[String]) -> Result<HuntIndex, StoreError> {
        let pools = crate::db::Database {
            path: &data_dir.join("hunt.db"),
            durability: crate::db::Durability::Crash,
            readers: 2,
            schema: &[SCHEMA],
            added_columns: &[],
            settings: &[],
        }
        .open()
        .await?;
        let (tx, rx) = mpsc::channel(BACKLOG);
        tokio::spawn(index_loop(rx, pools.writer));
        Ok(HuntIndex {
            pool: pools.reader,
            tx,
            skipped: Arc::default(),
            protected: Arc::new(protected.iter().map(|d| d.to_ascii_lowercase()).collect()),
        })
    }

    /// Those of `rcpts` whose mailboxes are the organisation's.
    pub fn mailboxes(&self, rcpts: &[String]) -> Vec<String> {
        rcpts
            .iter()
            .filter(|r| {
                r.rsplit_once('@').is_some_and(|(_, d)| {
                    let d = d.trim_end_matches('.').to_ascii_lowercase();
                    self.protected.contains(&d)
                })
            })
            .cloned()
            .collect()
    }

    /// Indexes a message on its way into `rcpts`' mailboxes (see [`HuntIndex::mailboxes`])
    /// without waiting; skipped (and counted) when the indexer is far behind.
    pub fn index(&self, at: i64, queue_id: &str, mail_from: &str, rcpts: &[String], raw: Vec<u8>) {
        let request = Request::Index {
            at,
            queue_id: queue_id.to_owned(),
            mail_from: mail_from.to_owned(),
            rcpts: rcpts.to_vec(),
            raw,
        };
        if self.tx.try_send(request).is_err() {
            let n = self.skipped.fetch_add(1, Ordering::Relaxed) + 1;
            if n.is_power_of_two() {
                tracing::warn!(skipped = n, "hunt index behind; messages left unindexed");
            }
        }
    }

    /// Waits until every message handed over so far is indexed (tools, tests).
    pub async fn flush(&self) {
        let (done, wait) = oneshot::channel();
        if self.tx.send(Request::Flush(done)).await.is_ok() {
            let _ = wait.await;
        }
    }

    /// The messages `term` finds, newest first, accepted at or after `since` (at most `limit`,
    /// itself at most [`MAX_FOUND`]).
    pub async fn find(
        &self,
        term: &Term,
        since: i64,
        limit: u32,
    ) -> Result<Vec<Indexed>, StoreError> {
        let mut b = QueryBuilder::<Sqlite>::new(
            "SELECT at, queue_id, message_id, mail_from, header_from, subject, rcpts
             FROM hunt_messages WHERE at >= ",
        );
        b.push_bind(since);
        let in_terms = |b: &mut QueryBuilder<'_, Sqlite>, kind: &'static str| {
            b.push(" AND queue_id IN (SELECT queue_id FROM hunt_terms WHERE kind = ")
                .push_bind(kind)
                .push(" AND ");
        };
        match term {
            Term::Sha256(h) => {
                in_terms(&mut b, "sha256");
                b.push("value = ")
                    .push_bind(h.trim().to_ascii_lowercase())
                    .push(")");
            }
            Term::Url(u) => {
                let url = jianmen_scan::hunt::web_url(u)
                    .map_or_else(|| u.trim().to_owned(), |(url, _)| url);
                in_terms(&mut b, "url");
                b.push("value = ").push_bind(url).push(")");
            }
            Term::Domain(d) => {
                // Hosts are kept label-reversed (`test.evil.login`), so that a domain and all
                // below it are one index range.
                let reversed = reversed(d.trim().trim_end_matches('.'));
                in_terms(&mut b, "rdomain");
                b.push("(value = ")
                    .push_bind(reversed.clone())
                    .push(" OR (value > ")
                    .push_bind(format!("{reversed}."))
                    .push(" AND value < ")
                    .push_bind(format!("{reversed}/"))
                    .push(")))");
            }
            Term::Sender(s) => {
                let s = s.trim().to_lowercase();
                b.push(" AND (mail_from = ")
                    .push_bind(s.clone())
                    .push(" OR header_from = ")
                    .push_bind(s)
                    .push(")");
            }
            Term::MessageId(id) => {
                let id = id
                    .trim()
                    .trim_start_matches('<')
                    .trim_end_matches('>')
                    .to_owned();
                b.push(" AND message_id = ").push_bind(id);
            }
            Term::QueueId(id) => {
                b.push(" AND queue_id = ").push_bind(id.clone());
            }
        }
        b.push(" ORDER BY at DESC LIMIT ")
            .push_bind(i64::from(limit.min(MAX_FOUND)));
        let rows = b.build().fetch_all(&self.pool).await?;
        rows.iter()
            .map(|r| {
                Ok(Indexed {
                    at: r.try_get("at")?,
                    queue_id: r.try_get("queue_id")?,
                    message_id: r.try_get("message_id")?,
                    mail_from: r.try_get("mail_from")?,
                    header_from: r.try_get("header_from")?,
                    subject: r.try_get("subject")?,
                    rcpts: serde_json::from_str(&r.try_get::<String, _>("rcpts")?)
                        .unwrap_or_default(),
                })
            })
            .collect()
    }

    /// Forgets messages accepted before `before` (Unix time); returns how many.
    pub async fn purge(&self, before: i64) -> Result<u64, StoreError> {
        let (done, wait) = oneshot::channel();
        let stopped = || StoreError::Corrupt("hunt indexer stopped".into());
        self.tx
            .send(Request::Purge(before, done))
            .await
            .map_err(|_| stopped())?;
        wait.await.map_err(|_| stopped())?.map_err(StoreError::from)
    }
}

/// `login.evil.test` → `test.evil.login`.
fn reversed(host: &str) -> String {
    let lower = host.to_ascii_lowercase();
    lower.rsplit('.').collect::<Vec<_>>().join(".")
}

async fn index_loop(mut rx: mpsc::Receiver<Request>, writer: SqlitePool) {
    while let Some(request) = rx.recv().await {
        match request {
            Request::Index {
                at,
                queue_id,
                mail_from,
                rcpts,
                raw,
            } => {
                let facts = tokio::task::spawn_blocking(move || {
                    Facts::of(&jianmen_scan::message::Message::parse(&raw))
                })
                .await
                .unwrap_or_default();
                if let Err(e) = write(&writer, at, &queue_id, &mail_from, &rcpts, &facts).await {
                    tracing::error!(queue_id, error = %e, "cannot index a message for hunting");
                }
            }
            Request::Flush(done) => {
                let _ = done.send(());
            }
            Request::Purge(before, done) => {
                let _ = done.send(purge(&writer, before).await);
            }
        }
    }
}

async fn write(
    writer: &SqlitePool,
    at: i64,
    queue_id: &str,
    mail_from: &str,
    rcpts: &[String],
    facts: &Facts,
) -> Result<(), sqlx::Error> {
    let mut tx = writer.begin().await?;
    sqlx::query(
        "INSERT OR REPLACE INTO hunt_messages
           (queue_id, at, message_id, mail_from, header_from, subject, rcpts)
         VALUES (?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(queue_id)
    .bind(at)
    .bind(&facts.message_id)
    .bind(mail_from.to_lowercase())
    .bind(&facts.from)
    .bind(&facts.subject)
    .bind(serde_json::to_string(rcpts).unwrap_or_default())
    .execute(&mut *tx)
    .await?;
    let terms = facts
        .sha256
        .iter()
        .map(|v| ("sha256", v.clone()))
        .chain(facts.urls.iter().map(|v| ("url", v.clone())))
        .chain(facts.domains.iter().map(|v| ("rdomain", reversed(v))));
    let terms: Vec<(&str, String)> = terms.collect();
    for chunk in terms.chunks(100) {
        let mut b = QueryBuilder::<Sqlite>::new("INSERT INTO hunt_terms (queue_id, kind, value) ");
        b.push_values(chunk, |mut row, (kind, value)| {
            row.push_bind(queue_id)
                .push_bind(*kind)
                .push_bind(value.clone());
        });
        b.build().persistent(false).execute(&mut *tx).await?;
    }
    tx.commit().await
}

async fn purge(writer: &SqlitePool, before: i64) -> Result<u64, sqlx::Error> {
    let mut tx = writer.begin().await?;
    sqlx::query(
        "DELETE FROM hunt_terms WHERE queue_id IN (SELECT queue_id FROM hunt_messages WHERE at < ?)",
    )
    .bind(before)
    .execute(&mut *tx)
    .await?;
    let gone = sqlx::query("DELETE FROM hunt_messages WHERE at < ?")
        .bind(before)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    tx.commit().await?;
    Ok(gone)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAIL: &[u8] = b"From: Bank <notice@bank.test>\r\nSubject: Verify\r\n\
        Message-ID: <m1@bank.test>\r\nMIME-Version: 1.0\r\n\
        Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\
        Content-Type: text/html\r\n\r\n<a href=\"https://login.evil.test/p?q=1\">go</a>\r\n\
        --b\r\nContent-Type: application/octet-stream; name=a.bin\r\n\
        Content-Transfer-Encoding: base64\r\n\r\naGVsbG8=\r\n--b--\r\n";

    #[tokio::test]
    async fn messages_are_found_by_hash_link_domain_sender_and_id_and_purged() {
        let dir = tempfile::tempdir().unwrap();
        let index = HuntIndex::open(dir.path(), &["example.com".into()])
            .await
            .unwrap();
        assert_eq!(
            index.mailboxes(&["a@Example.COM".into(), "x@elsewhere.test".into()]),
            ["a@Example.COM"]
        );
        let rcpts = vec!["a@example.com".to_owned(), "b@example.com".to_owned()];
        index.index(1000, "Q1", "Bounce@Bank.test", &rcpts, MAIL.to_vec());
        index.index(
            2000,
            "Q2",
            "other@x.test",
            &rcpts[..1],
            b"Subject: hi\r\n\r\nplain".to_vec(),
        );
        index.flush().await;
        let found = |term: Term| {
            let index = index.clone();
            async move {
                index
                    .find(&term, 0, 10)
                    .await
                    .unwrap()
                    .into_iter()
                    .map(|m| m.queue_id)
                    .collect::<Vec<_>>()
            }
        };
        let hello = "2CF24DBA5FB0A30E26E83B2AC5B9E29E1B161E5C1FA7425E73043362938B9824";
        assert_eq!(found(Term::Sha256(hello.into())).await, ["Q1"]);
        assert_eq!(
            found(Term::Url("HTTPS://Login.Evil.Test/p?q=1".into())).await,
            ["Q1"]
        );
        assert_eq!(found(Term::Domain("evil.test".into())).await, ["Q1"]);
        assert_eq!(found(Term::Domain("login.evil.test.".into())).await, ["Q1"]);
        assert!(found(Term::Domain("vil.test".into())).await.is_empty());
        assert!(found(Term::Domain("test".into())).await.len() == 1);
        assert_eq!(found(Term::Sender("notice@bank.test".into())).await, ["Q1"]);
        assert_eq!(found(Term::Sender("bounce@bank.test".into())).await, ["Q1"]);
        assert_eq!(
            found(Term::MessageId("<m1@bank.test>".into())).await,
            ["Q1"]
        );
        let all = index
            .find(&Term::QueueId("Q1".into()), 0, 10)
            .await
            .unwrap();
        assert_eq!(all[0].rcpts, rcpts);
        assert_eq!(all[0].subject, "Verify");
        assert_eq!(index.purge(1500).await.unwrap(), 1);
        assert!(found(Term::Sha256(hello.into())).await.is_empty());
        assert_eq!(found(Term::QueueId("Q2".into())).await, ["Q2"]);
    }
}
