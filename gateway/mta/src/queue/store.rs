//! Queue metadata: envelopes, per-recipient state and retry schedule. [`QueueStore`] is the seam
//! for other databases (PostgreSQL for clusters); [`SqliteStore`] is the embedded default, in WAL
//! mode with `synchronous=FULL` so a committed insert survives power loss.

use std::path::Path;

use async_trait::async_trait;
use serde::Serialize;

use crate::quarantine::Held;
use sqlx::pool::PoolConnection;
use sqlx::{Row, Sqlite, SqliteConnection, SqlitePool};

use crate::db::Durability;
pub use crate::db::StoreError;
use crate::quarantine;

/// Whether a message waits for delivery or is held back by a verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MessageState {
    /// Scheduled for delivery.
    Active,
    /// Kept, not delivered, until an administrator acts.
    Held,
}

/// What produced a queued message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MessageKind {
    /// Mail received over SMTP.
    Mail,
    /// A delivery status notification we generated; never itself bounced.
    Dsn,
}

/// A recipient's delivery state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RcptStatus {
    /// Not yet delivered; will be tried (again).
    Pending,
    /// Accepted by the next hop.
    Delivered,
    /// Permanently refused or expired; reported in a DSN.
    Failed,
}

macro_rules! text_enum {
    ($ty:ty { $($variant:ident = $text:literal),+ $(,)? }) => {
        impl $ty {
            fn as_str(self) -> &'static str {
                match self { $(Self::$variant => $text),+ }
            }
            fn parse(s: &str) -> Result<Self, StoreError> {
                match s {
                    $($text => Ok(Self::$variant),)+
                    other => Err(StoreError::Corrupt(other.to_owned())),
                }
            }
        }
    };
}
text_enum!(MessageState { Active = "active", Held = "held" });
text_enum!(MessageKind { Mail = "mail", Dsn = "dsn" });
text_enum!(RcptStatus { Pending = "pending", Delivered = "delivered", Failed = "failed" });

/// A message about to be queued.
#[derive(Debug, Clone)]
pub struct NewMessage {
    /// Queue id (also the spool file name).
    pub id: String,
    /// Reverse path; empty for bounces.
    pub mail_from: String,
    /// Recipients, all pending.
    pub rcpts: Vec<String>,
    /// Size of the spool file in bytes.
    pub size: u64,
    /// Unix time of receipt.
    pub received_at: i64,
    /// Client address as text.
    pub client_ip: String,
    /// Client HELO name.
    pub helo: String,
    /// SMTPUTF8 is needed to relay it.
    pub smtputf8: bool,
    /// Mail or DSN.
    pub kind: MessageKind,
    /// Present when a verdict holds the message in quarantine instead of delivering it; the
    /// quarantine record is committed in the same transaction as the message.
    pub held: Option<Box<Held>>,
}

impl NewMessage {
    /// Active or held.
    pub fn state(&self) -> MessageState {
        if self.held.is_some() {
            MessageState::Held
        } else {
            MessageState::Active
        }
    }

    /// The message as the store holds it right after insertion (no attempts yet).
    pub fn queued(&self) -> QueuedMessage {
        QueuedMessage {
            id: self.id.clone(),
            mail_from: self.mail_from.clone(),
            size: self.size,
            received_at: self.received_at,
            client_ip: self.client_ip.clone(),
            helo: self.helo.clone(),
            smtputf8: self.smtputf8,
            state: self.state(),
            hold_reason: self.held.as_ref().map(|h| h.reason.clone()),
            kind: self.kind,
            attempts: 0,
            next_attempt: self.received_at,
            rcpts: self
                .rcpts
                .iter()
                .map(|a| QueuedRcpt {
                    address: a.clone(),
                    status: RcptStatus::Pending,
                    last_reply: None,
                })
                .collect(),
        }
    }
}

/// A finished message to remove, with the bounce that replaces it if any.
#[derive(Debug, Clone)]
pub struct Completion {
    /// The finished message.
    pub id: String,
    /// Its bounce, queued in the same transaction.
    pub bounce: Option<NewMessage>,
}

/// A recipient as stored.
#[derive(Debug, Clone, Serialize)]
pub struct QueuedRcpt {
    /// The address.
    pub address: String,
    /// Delivery state.
    pub status: RcptStatus,
    /// Last reply or error from the next hop.
    pub last_reply: Option<String>,
}

/// A queued message as stored.
#[derive(Debug, Clone, Serialize)]
pub struct QueuedMessage {
    /// Queue id.
    pub id: String,
    /// Reverse path.
    pub mail_from: String,
    /// Size in bytes.
    pub size: u64,
    /// Unix time of receipt.
    pub received_at: i64,
    /// Client address.
    pub client_ip: String,
    /// Client HELO name.
    pub helo: String,
    /// SMTPUTF8 required.
    pub smtputf8: bool,
    /// Active or held.
    pub state: MessageState,
    /// Why held.
    pub hold_reason: Option<String>,
    /// Mail or DSN.
    pub kind: MessageKind,
    /// Delivery attempts so far.
    pub attempts: u32,
    /// Unix time of the next attempt.
    pub next_attempt: i64,
    /// Recipients and their states.
    pub rcpts: Vec<QueuedRcpt>,
}

/// The result of one delivery attempt for one recipient.
#[derive(Debug, Clone)]
pub struct RcptOutcome {
    /// The recipient.
    pub address: String,
    /// Its new state.
    pub status: RcptStatus,
    /// The next hop's reply or our error text.
    pub reply: String,
}

/// Persistent queue metadata. Every method is one transaction.
#[async_trait]
pub trait QueueStore: Send + Sync {
    /// Inserts messages (one commit for the batch: group commit).
    async fn insert(&self, batch: &[NewMessage]) -> Result<(), StoreError>;
    /// Ids of active messages due at `now`, oldest schedule first.
    async fn due(&self, now: i64, limit: u32) -> Result<Vec<String>, StoreError>;
    /// One message with its recipients.
    async fn get(&self, id: &str) -> Result<Option<QueuedMessage>, StoreError>;
    /// Messages in queue order, at most `limit`.
    async fn list(&self, limit: u32) -> Result<Vec<QueuedMessage>, StoreError>;
    /// Records an attempt: recipient states, attempt count and the next attempt time.
    async fn record(
        &self,
        id: &str,
        outcomes: &[RcptOutcome],
        next_attempt: i64,
    ) -> Result<(), StoreError>;
    /// Removes finished messages and, atomically with each, queues its bounce if it has one
    /// (one transaction for the batch).
    async fn complete(&self, batch: &[Completion]) -> Result<(), StoreError>;
    /// Makes one message (or all, with `None`) due at `at`; returns how many.
    async fn reschedule(&self, id: Option<&str>, at: i64) -> Result<u64, StoreError>;
    /// Deletes a message; returns whether it existed.
    async fn delete(&self, id: &str) -> Result<bool, StoreError>;
    /// Every queued id (to find spool files that never got a row).
    async fn ids(&self) -> Result<Vec<String>, StoreError>;
}

/// A write transaction that takes the write lock up front (`BEGIN IMMEDIATE`, so it waits for
/// other writers instead of failing on a stale WAL snapshot) and always ends: committed, or
/// rolled back — and if even the rollback fails (disk full), the connection is discarded rather
/// than returned to the pool inside a broken transaction.
///
/// `durable` transactions (new mail, bounces) are fsync'd at commit. Bookkeeping that may be
/// lost in a crash at the price of one resend (delivery outcomes) commits without waiting for
/// the disk; the next durable commit flushes it along.
pub(crate) struct WriteTx {
    pub(crate) conn: PoolConnection<Sqlite>,
}

impl WriteTx {
    pub(crate) async fn begin(pool: &SqlitePool, durable: bool) -> Result<Self, StoreError> {
        let mut conn = pool.acquire().await?;
        // Set per transaction: the one writer connection serves both kinds.
        // One round trip to SQLite's thread for both statements.
        let begin = if durable {
            "PRAGMA synchronous = FULL; BEGIN IMMEDIATE"
        } else {
            "PRAGMA synchronous = NORMAL; BEGIN IMMEDIATE"
        };
        if let Err(e) = sqlx::query(begin).execute(&mut *conn).await {
            conn.close_on_drop();
            return Err(e.into());
        }
        Ok(Self { conn })
    }

    /// Commits if `result` is Ok, rolls back otherwise; returns `result` or the commit error.
    pub(crate) async fn finish<T>(
        mut self,
        result: Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let end = if result.is_ok() { "COMMIT" } else { "ROLLBACK" };
        match sqlx::query(end).execute(&mut *self.conn).await {
            Ok(_) => result,
            Err(e) => {
                if sqlx::query("ROLLBACK")
                    .execute(&mut *self.conn)
                    .await
                    .is_err()
                {
                    self.conn.close_on_drop();
                }
                result.and(Err(e.into()))
            }
        }
    }
}

/// The embedded SQLite store.
///
/// All writes go through one connection, so in-process writers queue in the pool instead of
/// sleeping in SQLite's busy handler; reads use their own connections.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    writer: SqlitePool,
    pool: SqlitePool,
}

const SCHEMA: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS messages (
        id TEXT PRIMARY KEY,
        mail_from TEXT NOT NULL,
        size INTEGER NOT NULL,
        received_at INTEGER NOT NULL,
        client_ip TEXT NOT NULL,
        helo TEXT NOT NULL,
        smtputf8 INTEGER NOT NULL,
        state TEXT NOT NULL,
        hold_reason TEXT,
        kind TEXT NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        next_attempt INTEGER NOT NULL
    )",
    "CREATE INDEX IF NOT EXISTS messages_due ON messages (state, next_attempt)",
    "CREATE TABLE IF NOT EXISTS recipients (
        message_id TEXT NOT NULL REFERENCES messages(id) ON DELETE CASCADE,
        address TEXT NOT NULL,
        status TEXT NOT NULL,
        last_reply TEXT,
        PRIMARY KEY (message_id, address)
    )",
];

/// The queue database's tables that are settings (see [`crate::db::Database::settings`]): the
/// policy's versions, the personal lists and the drill templates.
pub const SETTINGS: &[&str] = &["policy_versions", "own_lists", "drill_templates"];

impl SqliteStore {
    /// Opens (creating if needed) the database at `path`.
    pub async fn open(path: &Path) -> Result<Self, StoreError> {
        let pools = crate::db::Database {
            path,
            durability: Durability::PowerLoss,
            readers: 4,
            schema: &[
                SCHEMA,
                quarantine::index::SCHEMA,
                crate::risk::SCHEMA,
                crate::relay::SCHEMA,
                crate::recall::SCHEMA,
                crate::intel::SCHEMA,
                crate::drills::SCHEMA,
                crate::policy::SCHEMA,
                crate::ownlists::SCHEMA,
            ],
            added_columns: &[
                quarantine::index::ADDED_COLUMNS,
                crate::recall::ADDED_COLUMNS,
            ]
            .concat(),
            settings: SETTINGS,
        }
        .open()
        .await?;
        Ok(Self {
            writer: pools.writer,
            pool: pools.reader,
        })
    }

    /// The single writer connection's pool (quarantine actions share the queue's transactions).
    pub(crate) fn writer(&self) -> &SqlitePool {
        &self.writer
    }

    /// The read-only pool.
    pub(crate) fn reader(&self) -> &SqlitePool {
        &self.pool
    }

    /// How many messages wait for delivery and how many are held.
    pub async fn counts(&self) -> Result<(i64, i64), StoreError> {
        let row = sqlx::query(
            "SELECT COALESCE(SUM(state = 'active'), 0) AS active,
                    COALESCE(SUM(state = 'held'), 0) AS held FROM messages",
        )
        .fetch_one(&self.pool)
        .await?;
        Ok((row.try_get("active")?, row.try_get("held")?))
    }

    async fn recipients(&self, id: &str) -> Result<Vec<QueuedRcpt>, StoreError> {
        let rows = sqlx::query(
            "SELECT address, status, last_reply FROM recipients WHERE message_id = ? ORDER BY rowid",
        )
        .bind(id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(QueuedRcpt {
                    address: r.try_get("address")?,
                    status: RcptStatus::parse(r.try_get::<&str, _>("status")?)?,
                    last_reply: r.try_get("last_reply")?,
                })
            })
            .collect()
    }

    fn message_from_row(row: &sqlx::sqlite::SqliteRow) -> Result<QueuedMessage, StoreError> {
        Ok(QueuedMessage {
            id: row.try_get("id")?,
            mail_from: row.try_get("mail_from")?,
            size: row.try_get::<i64, _>("size")?.max(0) as u64,
            received_at: row.try_get("received_at")?,
            client_ip: row.try_get("client_ip")?,
            helo: row.try_get("helo")?,
            smtputf8: row.try_get("smtputf8")?,
            state: MessageState::parse(row.try_get::<&str, _>("state")?)?,
            hold_reason: row.try_get("hold_reason")?,
            kind: MessageKind::parse(row.try_get::<&str, _>("kind")?)?,
            attempts: row.try_get::<i64, _>("attempts")?.max(0) as u32,
            next_attempt: row.try_get("next_attempt")?,
            rcpts: Vec::new(),
        })
    }
}

/// Rows per multi-row statement: every statement is a round trip to SQLite's thread, and
/// SQLite allows at most 32,766 bound values in one.
const ROWS_PER_STATEMENT: usize = 1000;

/// `(?, ?, …)` repeated `rows` times, for a multi-row statement.
fn placeholders(row: &str, rows: usize) -> String {
    vec![row; rows].join(", ")
}

/// Inserts messages and their recipients with a few multi-row statements.
pub(crate) async fn insert_many(
    conn: &mut SqliteConnection,
    batch: &[&NewMessage],
) -> Result<(), StoreError> {
    for chunk in batch.chunks(ROWS_PER_STATEMENT) {
        let sql = format!(
            "INSERT INTO messages (id, mail_from, size, received_at, client_ip, helo, smtputf8,
                state, hold_reason, kind, attempts, next_attempt) VALUES {}",
            placeholders("(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0, ?)", chunk.len())
        );
        let mut query = sqlx::query(&sql).persistent(false);
        for m in chunk {
            query = query
                .bind(&m.id)
                .bind(&m.mail_from)
                .bind(m.size as i64)
                .bind(m.received_at)
                .bind(&m.client_ip)
                .bind(&m.helo)
                .bind(m.smtputf8)
                .bind(m.state().as_str())
                .bind(m.held.as_ref().map(|h| h.reason.as_str()))
                .bind(m.kind.as_str())
                .bind(m.received_at);
        }
        query.execute(&mut *conn).await?;
    }
    let rcpts: Vec<(&str, &str)> = batch
        .iter()
        .flat_map(|m| m.rcpts.iter().map(|r| (m.id.as_str(), r.as_str())))
        .collect();
    for chunk in rcpts.chunks(ROWS_PER_STATEMENT) {
        let sql = format!(
            "INSERT OR IGNORE INTO recipients (message_id, address, status) VALUES {}",
            placeholders("(?, ?, 'pending')", chunk.len())
        );
        let mut query = sqlx::query(&sql).persistent(false);
        for (id, rcpt) in chunk {
            query = query.bind(*id).bind(*rcpt);
        }
        query.execute(&mut *conn).await?;
    }
    crate::quarantine::index::insert(conn, batch).await
}

#[async_trait]
impl QueueStore for SqliteStore {
    async fn insert(&self, batch: &[NewMessage]) -> Result<(), StoreError> {
        let mut tx = WriteTx::begin(&self.writer, true).await?;
        let all: Vec<&NewMessage> = batch.iter().collect();
        let result = insert_many(&mut tx.conn, &all).await;
        tx.finish(result).await
    }

    async fn due(&self, now: i64, limit: u32) -> Result<Vec<String>, StoreError> {
        let rows = sqlx::query(
            "SELECT id FROM messages WHERE state = 'active' AND next_attempt <= ?
             ORDER BY next_attempt, id LIMIT ?",
        )
        .bind(now)
        .bind(limit as i64)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| r.try_get("id").map_err(StoreError::from))
            .collect()
    }

    async fn get(&self, id: &str) -> Result<Option<QueuedMessage>, StoreError> {
        // fetch_all runs the statement to completion: a statement left un-reset would pin its
        // connection to an old WAL snapshot and later reads would see deleted messages.
        let rows = sqlx::query("SELECT * FROM messages WHERE id = ?")
            .bind(id)
            .fetch_all(&self.pool)
            .await?;
        let Some(row) = rows.first() else {
            return Ok(None);
        };
        let mut m = Self::message_from_row(row)?;
        m.rcpts = self.recipients(id).await?;
        Ok(Some(m))
    }

    async fn list(&self, limit: u32) -> Result<Vec<QueuedMessage>, StoreError> {
        let rows = sqlx::query("SELECT * FROM messages ORDER BY received_at, id LIMIT ?")
            .bind(limit as i64)
            .fetch_all(&self.pool)
            .await?;
        let mut out = Vec::with_capacity(rows.len());
        for row in &rows {
            let mut m = Self::message_from_row(row)?;
            m.rcpts = self.recipients(&m.id).await?;
            out.push(m);
        }
        Ok(out)
    }

    async fn record(
        &self,
        id: &str,
        outcomes: &[RcptOutcome],
        next_attempt: i64,
    ) -> Result<(), StoreError> {
        let mut tx = WriteTx::begin(&self.writer, false).await?;
        let result = async {
            for o in outcomes {
                sqlx::query(
                    "UPDATE recipients SET status = ?, last_reply = ?
                     WHERE message_id = ? AND address = ?",
                )
                .bind(o.status.as_str())
                .bind(&o.reply)
                .bind(id)
                .bind(&o.address)
                .execute(&mut *tx.conn)
                .await?;
            }
            sqlx::query(
                "UPDATE messages SET attempts = attempts + 1, next_attempt = ? WHERE id = ?",
            )
            .bind(next_attempt)
            .bind(id)
            .execute(&mut *tx.conn)
            .await?;
            Ok(())
        }
        .await;
        tx.finish(result).await
    }

    async fn complete(&self, batch: &[Completion]) -> Result<(), StoreError> {
        // A bounce must survive a crash; a plain completion lost in one costs one resend.
        let durable = batch.iter().any(|c| c.bounce.is_some());
        let mut tx = WriteTx::begin(&self.writer, durable).await?;
        let result = async {
            let bounces: Vec<&NewMessage> =
                batch.iter().filter_map(|c| c.bounce.as_ref()).collect();
            insert_many(&mut tx.conn, &bounces).await?;
            for chunk in batch.chunks(ROWS_PER_STATEMENT) {
                let sql = format!(
                    "DELETE FROM messages WHERE id IN ({})",
                    placeholders("?", chunk.len())
                );
                let mut query = sqlx::query(&sql).persistent(false);
                for c in chunk {
                    query = query.bind(&c.id);
                }
                query.execute(&mut *tx.conn).await?;
            }
            Ok(())
        }
        .await;
        tx.finish(result).await
    }

    async fn reschedule(&self, id: Option<&str>, at: i64) -> Result<u64, StoreError> {
        let result = match id {
            Some(id) => {
                sqlx::query(
                    "UPDATE messages SET next_attempt = ? WHERE id = ? AND state = 'active'",
                )
                .bind(at)
                .bind(id)
                .execute(&self.writer)
                .await?
            }
            None => {
                sqlx::query("UPDATE messages SET next_attempt = ? WHERE state = 'active'")
                    .bind(at)
                    .execute(&self.writer)
                    .await?
            }
        };
        Ok(result.rows_affected())
    }

    async fn delete(&self, id: &str) -> Result<bool, StoreError> {
        let result = sqlx::query("DELETE FROM messages WHERE id = ?")
            .bind(id)
            .execute(&self.writer)
            .await?;
        Ok(result.rows_affected() > 0)
    }

    async fn ids(&self) -> Result<Vec<String>, StoreError> {
        let rows = sqlx::query("SELECT id FROM messages")
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| r.try_get("id").map_err(StoreError::from))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(id: &str, rcpts: &[&str]) -> NewMessage {
        NewMessage {
            id: id.to_owned(),
            mail_from: "a@b.example".into(),
            rcpts: rcpts.iter().map(|s| s.to_string()).collect(),
            size: 10,
            received_at: 100,
            client_ip: "127.0.0.1".into(),
            helo: "client".into(),
            smtputf8: false,
            held: None,
            kind: MessageKind::Mail,
        }
    }

    #[tokio::test]
    async fn a_write_transaction_is_open_with_its_durability_until_it_ends() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("q.db")).await.unwrap();
        for (durable, level) in [(true, 2), (false, 1)] {
            let mut tx = WriteTx::begin(store.writer(), durable).await.unwrap();
            let sync: i64 = sqlx::query_scalar("PRAGMA synchronous")
                .fetch_one(&mut *tx.conn)
                .await
                .unwrap();
            assert_eq!(sync, level, "durable = {durable}");
            // Both statements ran: a transaction is open, so another BEGIN is refused.
            assert!(sqlx::query("BEGIN").execute(&mut *tx.conn).await.is_err());
            tx.finish(Ok(())).await.unwrap();
        }
        // Committed: the connection is out of its transaction again.
        let mut conn = store.writer().acquire().await.unwrap();
        sqlx::query("BEGIN").execute(&mut *conn).await.unwrap();
        sqlx::query("ROLLBACK").execute(&mut *conn).await.unwrap();
    }

    #[tokio::test]
    async fn lifecycle_insert_due_record_complete() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("q.db")).await.unwrap();
        store
            .insert(&[message("A", &["x@d", "y@d"]), message("B", &["z@d"])])
            .await
            .unwrap();
        assert_eq!(store.due(100, 10).await.unwrap(), vec!["A", "B"]);
        assert!(store.due(99, 10).await.unwrap().is_empty());
        let outcome = RcptOutcome {
            address: "x@d".into(),
            status: RcptStatus::Delivered,
            reply: "250 ok".into(),
        };
        store.record("A", &[outcome], 500).await.unwrap();
        let a = store.get("A").await.unwrap().unwrap();
        assert_eq!(a.attempts, 1);
        assert_eq!(a.rcpts[0].status, RcptStatus::Delivered);
        assert_eq!(a.rcpts[1].status, RcptStatus::Pending);
        assert_eq!(store.due(100, 10).await.unwrap(), vec!["B"]);
        assert_eq!(store.reschedule(None, 0).await.unwrap(), 2);
        let mut dsn = message("C", &["a@b.example"]);
        dsn.kind = MessageKind::Dsn;
        let done = Completion {
            id: "A".into(),
            bounce: Some(dsn.clone()),
        };
        store.complete(&[done]).await.unwrap();
        assert_eq!(dsn.queued().rcpts[0].status, RcptStatus::Pending);
        assert!(store.get("A").await.unwrap().is_none());
        let mut ids = store.ids().await.unwrap();
        ids.sort();
        assert_eq!(ids, vec!["B", "C"]);
        assert_eq!(store.reschedule(Some("B"), 7).await.unwrap(), 1);
        assert!(store.delete("B").await.unwrap());
        assert!(!store.delete("B").await.unwrap());
    }
}
