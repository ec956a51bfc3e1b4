//! The tamper-evident audit trail: every administrative and security-relevant action is a row
//! that carries the hash of its own content and of the row before it, so `jianmen audit verify`
//! finds any row edited, deleted or moved. The hash is behind [`ChainHash`]: SM3 for new logs;
//! a log keeps the hash its first row was written with (older logs: SHA-256). In cluster mode
//! the chain is the cluster's: every node appends to one table, one append at a time.

use std::path::Path;

use sqlx::Row;

use crate::store::{Serialised, SharedDb, Store};

pub mod export;
pub mod syslog;

/// The hash that links the rows.
pub trait ChainHash: Send + Sync {
    /// Name recorded with each row (`sha256`, later `sm3`).
    fn name(&self) -> &'static str;
    /// Digest of `data`.
    fn digest(&self, data: &[u8]) -> Vec<u8>;
}

/// SM3 (GB/T 32905): the chain hash of new logs.
pub struct Sm3Chain;

impl ChainHash for Sm3Chain {
    fn name(&self) -> &'static str {
        "sm3"
    }
    fn digest(&self, data: &[u8]) -> Vec<u8> {
        jianmen_gm::sm3::sm3(data).to_vec()
    }
}

/// SHA-256 (ring): logs begun before SM3.
pub struct Sha256Chain;

impl ChainHash for Sha256Chain {
    fn name(&self) -> &'static str {
        "sha256"
    }
    fn digest(&self, data: &[u8]) -> Vec<u8> {
        ring::digest::digest(&ring::digest::SHA256, data)
            .as_ref()
            .to_vec()
    }
}

/// Why the audit log could not be written or read, or where its chain is broken.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// The database failed.
    #[error("audit database: {0}")]
    Database(#[from] sqlx::Error),
    /// A row does not match the chain: edited, deleted, inserted or reordered.
    #[error("audit chain broken at row {seq}: {reason}")]
    Broken {
        /// Sequence number of the first row that does not verify.
        seq: i64,
        /// What does not match.
        reason: String,
    },
}

/// One recorded action.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Entry {
    /// Position in the chain, from 1, without gaps.
    pub seq: i64,
    /// When (RFC 3339, UTC).
    pub at: String,
    /// Who: an account, or `cli:<user>` for the command line.
    pub actor: String,
    /// What, e.g. `queue.delete`.
    pub action: String,
    /// On what, and how it ended.
    pub detail: String,
}

/// The log's file in a node's data directory.
pub const FILE: &str = "audit.db";

const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS audit (
    seq INTEGER PRIMARY KEY,
    at TEXT NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    detail TEXT NOT NULL,
    algorithm TEXT NOT NULL,
    prev TEXT NOT NULL,
    hash TEXT NOT NULL
)";

/// The audit log of one gateway (`data_dir/audit.db`), or of a cluster.
pub struct AuditLog {
    db: SharedDb,
    hash: Box<dyn ChainHash>,
}

/// The chain hash called `name`, if this build knows it.
pub fn chain_hash(name: &str) -> Option<Box<dyn ChainHash>> {
    match name {
        "sm3" => Some(Box::new(Sm3Chain)),
        "sha256" => Some(Box::new(Sha256Chain)),
        _ => None,
    }
}

impl AuditLog {
    /// Opens the log of `store`: the cluster's, or the node's own file.
    pub async fn open_in(store: &Store) -> Result<AuditLog, AuditError> {
        match store.shared() {
            Some(db) => Self::on(db.clone(), Box::new(Sm3Chain)).await,
            None => Self::open(&store.data_dir().join(FILE)).await,
        }
    }

    /// Opens (creating if needed) the log at `path`, chained with the hash of its first row,
    /// or SM3 for a new log.
    pub async fn open(path: &Path) -> Result<AuditLog, AuditError> {
        Self::open_with(path, Box::new(Sm3Chain)).await
    }

    /// Opens the log at `path`; a new log is chained with `new_hash`, an existing one keeps
    /// the hash of its first row.
    pub async fn open_with(
        path: &Path,
        new_hash: Box<dyn ChainHash>,
    ) -> Result<AuditLog, AuditError> {
        let db = crate::store::open_file(&crate::db::Database {
            path,
            durability: crate::db::Durability::PowerLoss,
            readers: 0,
            schema: &[&[SCHEMA]],
            added_columns: &[],
            settings: &[],
        })
        .await?;
        Self::on(db, new_hash).await
    }

    /// The log in `db`; a new log is chained with `new_hash`, an existing one keeps the hash of
    /// its first row.
    async fn on(db: SharedDb, new_hash: Box<dyn ChainHash>) -> Result<AuditLog, AuditError> {
        let first: Option<String> =
            sqlx::query_scalar("SELECT algorithm FROM audit ORDER BY seq LIMIT 1")
                .fetch_optional(db.pool())
                .await?;
        let hash = match first {
            None => new_hash,
            Some(name) => chain_hash(&name).ok_or_else(|| AuditError::Broken {
                seq: 1,
                reason: format!("chained with {name}, which this build does not know"),
            })?,
        };
        Ok(AuditLog { db, hash })
    }

    /// Appends an action durably (the row is committed with a full fsync before this returns);
    /// returns its sequence number.
    pub async fn append(&self, actor: &str, action: &str, detail: &str) -> Result<i64, AuditError> {
        let mut tx = self.db.begin_serialised(Serialised::AuditChain).await?;
        let last = sqlx::query("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1")
            .fetch_optional(&mut *tx)
            .await?;
        let (seq, prev) = match last {
            Some(row) => (row.try_get::<i64, _>(0)? + 1, row.try_get::<String, _>(1)?),
            None => (1, String::new()),
        };
        let entry = Entry {
            seq,
            at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            actor: actor.to_owned(),
            action: action.to_owned(),
            detail: detail.to_owned(),
        };
        let hash = row_hash(self.hash.as_ref(), &prev, &entry);
        sqlx::query(
            "INSERT INTO audit (seq, at, actor, action, detail, algorithm, prev, hash) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(entry.seq)
        .bind(&entry.at)
        .bind(&entry.actor)
        .bind(&entry.action)
        .bind(&entry.detail)
        .bind(self.hash.name())
        .bind(&prev)
        .bind(&hash)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(seq)
    }

    /// The newest `limit` entries, newest first.
    pub async fn recent(&self, limit: u32) -> Result<Vec<Entry>, AuditError> {
        let rows = sqlx::query(
            "SELECT seq, at, actor, action, detail FROM audit ORDER BY seq DESC LIMIT $1",
        )
        .bind(i64::from(limit))
        .fetch_all(self.db.pool())
        .await?;
        rows.iter().map(entry_of).collect()
    }

    /// Every row with its chain fields, oldest first (for verification and export).
    pub async fn chained(&self) -> Result<Vec<Chained>, AuditError> {
        let rows = sqlx::query(
            "SELECT seq, at, actor, action, detail, algorithm, prev, hash FROM audit ORDER BY seq",
        )
        .fetch_all(self.db.pool())
        .await?;
        rows.iter().map(chained_of).collect()
    }

    /// Up to `limit` rows after `seq`, oldest first (for forwarding).
    pub async fn chained_after(&self, seq: i64, limit: u32) -> Result<Vec<Chained>, AuditError> {
        let rows = sqlx::query(
            "SELECT seq, at, actor, action, detail, algorithm, prev, hash FROM audit \
             WHERE seq > $1 ORDER BY seq LIMIT $2",
        )
        .bind(seq)
        .bind(i64::from(limit))
        .fetch_all(self.db.pool())
        .await?;
        rows.iter().map(chained_of).collect()
    }

    /// Checks the whole chain; returns the number of rows and the last row's hash (keep it
    /// elsewhere: only an outside copy of the newest hash reveals the newest rows cut off).
    pub async fn verify(&self) -> Result<(i64, String), AuditError> {
        verify_chain(self.hash.as_ref(), &self.chained().await?)
    }

    /// The chain's hash.
    pub fn chain(&self) -> &dyn ChainHash {
        self.hash.as_ref()
    }
}

/// A row with the fields that chain it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Chained {
    /// The recorded action.
    #[serde(flatten)]
    pub entry: Entry,
    /// Hash that chains it.
    pub algorithm: String,
    /// The previous row's hash (empty for the first).
    pub prev: String,
    /// This row's hash.
    pub hash: String,
}

/// The hash of a row: over the previous row's hash and every field, each length-prefixed so
/// no two different rows hash the same input.
fn row_hash(hash: &dyn ChainHash, prev: &str, e: &Entry) -> String {
    let mut data = Vec::new();
    let seq = e.seq.to_string();
    for field in [
        prev,
        seq.as_str(),
        e.at.as_str(),
        e.actor.as_str(),
        e.action.as_str(),
        e.detail.as_str(),
        hash.name(),
    ] {
        data.extend_from_slice(&(field.len() as u64).to_be_bytes());
        data.extend_from_slice(field.as_bytes());
    }
    jianmen_gm::hex(&hash.digest(&data))
}

/// Checks that `rows` form an unbroken chain from row 1; returns the number of rows and the
/// last hash.
pub fn verify_chain(hash: &dyn ChainHash, rows: &[Chained]) -> Result<(i64, String), AuditError> {
    let mut prev = String::new();
    for (expected_seq, row) in (1i64..).zip(rows.iter()) {
        let broken = |reason: &str| AuditError::Broken {
            seq: row.entry.seq,
            reason: reason.to_owned(),
        };
        if row.entry.seq != expected_seq {
            return Err(broken(&format!(
                "expected row {expected_seq}: rows are missing"
            )));
        }
        if row.algorithm != hash.name() {
            return Err(broken(&format!("chained with {}", row.algorithm)));
        }
        if row.prev != prev {
            return Err(broken("does not follow the row before it"));
        }
        if row_hash(hash, &prev, &row.entry) != row.hash {
            return Err(broken("content changed after it was written"));
        }
        prev = row.hash.clone();
    }
    Ok((rows.len() as i64, prev))
}

fn chained_of(row: &sqlx::any::AnyRow) -> Result<Chained, AuditError> {
    Ok(Chained {
        entry: entry_of(row)?,
        algorithm: row.try_get(5)?,
        prev: row.try_get(6)?,
        hash: row.try_get(7)?,
    })
}

fn entry_of(row: &sqlx::any::AnyRow) -> Result<Entry, AuditError> {
    Ok(Entry {
        seq: row.try_get(0)?,
        at: row.try_get(1)?,
        actor: row.try_get(2)?,
        action: row.try_get(3)?,
        detail: row.try_get(4)?,
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    async fn log_with_three(store: &Store) -> AuditLog {
        let log = AuditLog::open_in(store).await.unwrap();
        for (i, action) in ["queue.delete", "feedback", "model.activate"]
            .iter()
            .enumerate()
        {
            assert_eq!(
                log.append("cli:root", action, &format!("item {i}"))
                    .await
                    .unwrap(),
                i as i64 + 1
            );
        }
        log
    }

    async fn tamper(log: &AuditLog, sql: &str) {
        sqlx::query(sql).execute(log.db.pool()).await.unwrap();
    }

    fn broken_at(result: Result<(i64, String), AuditError>) -> i64 {
        match result {
            Err(AuditError::Broken { seq, .. }) => seq,
            other => panic!("expected a broken chain, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn an_intact_chain_verifies_and_lists_newest_first() {
        let dir = tempfile::tempdir().unwrap();
        let log = log_with_three(&Store::local(dir.path(), "a")).await;
        let (rows, head) = log.verify().await.unwrap();
        assert_eq!(rows, 3);
        assert_eq!(head.len(), 64);
        let recent = log.recent(2).await.unwrap();
        assert_eq!(recent[0].action, "model.activate");
        assert_eq!(recent.len(), 2);
    }

    #[tokio::test]
    async fn new_logs_chain_with_sm3_and_old_logs_keep_their_hash() {
        let dir = tempfile::tempdir().unwrap();
        let log = log_with_three(&Store::local(dir.path(), "a")).await;
        assert_eq!(log.chain().name(), "sm3");
        let rows = log.chained().await.unwrap();
        assert!(
            rows.iter()
                .all(|r| r.algorithm == "sm3" && r.hash.len() == 64)
        );
        // A log begun with SHA-256 goes on with SHA-256 when reopened the default way.
        let old = tempfile::tempdir().unwrap();
        let path = old.path().join("audit.db");
        let log = AuditLog::open_with(&path, Box::new(Sha256Chain))
            .await
            .unwrap();
        log.append("cli:root", "queue.delete", "x").await.unwrap();
        drop(log);
        let log = AuditLog::open(&path).await.unwrap();
        assert_eq!(log.chain().name(), "sha256");
        log.append("cli:root", "queue.flush", "y").await.unwrap();
        assert_eq!(log.verify().await.unwrap().0, 2);
        // A row chained with SM3 in a SHA-256 log is a break.
        assert!(verify_chain(&Sm3Chain, &log.chained().await.unwrap()).is_err());
    }

    /// The console and a `jianmen` command append to one node's file at once: each waits for
    /// the other's write lock (a deferred transaction would fail with "database is locked").
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn two_writers_of_one_file_take_turns() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE);
        let (one, _) = appending_at_once(
            [
                (AuditLog::open(&path).await.unwrap(), "console"),
                (AuditLog::open(&path).await.unwrap(), "cli:root"),
            ],
            50,
        )
        .await;
        assert_eq!(one.verify().await.unwrap().0, 100);
    }

    /// Two logs each appending `n` rows as its actor, at the same time; both, when done.
    pub(crate) async fn appending_at_once(
        logs: [(AuditLog, &'static str); 2],
        n: usize,
    ) -> (AuditLog, AuditLog) {
        let [one, other] = logs.map(|(log, actor)| {
            tokio::spawn(async move {
                for i in 0..n {
                    log.append(actor, "policy.edit", &format!("change {i}"))
                        .await
                        .unwrap();
                }
                log
            })
        });
        (one.await.unwrap(), other.await.unwrap())
    }

    #[tokio::test]
    async fn edits_deletions_and_reordering_are_found() {
        let tampering: [(&[&str], i64); 4] = [
            (&["UPDATE audit SET detail = 'nothing' WHERE seq = 2"], 2),
            (&["DELETE FROM audit WHERE seq = 2"], 3),
            (
                &[
                    "UPDATE audit SET seq = 10 WHERE seq = 1",
                    "UPDATE audit SET seq = 1 WHERE seq = 3",
                    "UPDATE audit SET seq = 3 WHERE seq = 10",
                ],
                1,
            ),
            // Rewriting a row's hash to match its new content breaks the next row's link.
            (
                &["UPDATE audit SET actor = 'someone', hash = 'x' WHERE seq = 1"],
                1,
            ),
        ];
        let pg = jianmen_testkit::postgres::Postgres::start();
        for (i, (statements, at)) in tampering.into_iter().enumerate() {
            let dir = tempfile::tempdir().unwrap();
            let database = format!("tamper{i}");
            pg.create_database(&database);
            let cluster = crate::store::tests::node_on(&pg, &database, "a").await;
            for store in [Store::local(dir.path(), "a"), cluster] {
                let log = log_with_three(&store).await;
                for sql in statements {
                    tamper(&log, sql).await;
                }
                assert_eq!(broken_at(log.verify().await), at, "{statements:?}");
            }
        }
    }
}
