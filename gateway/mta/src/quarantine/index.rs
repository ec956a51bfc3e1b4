//! The quarantine's tables, in the queue's database: one record per held message and one row
//! per recipient (a user may release only their own copy). Every query is parameterised.

use serde::Serialize;
use sqlx::{QueryBuilder, Row, Sqlite, SqliteConnection, SqlitePool};

use super::QuarantineError;
use crate::db::{Filter, StoreError, like_contains};
use crate::queue::store::WriteTx;
use crate::queue::{NewMessage, SqliteStore};
use jianmen_scan::verdict::Report;

/// Created with the queue's schema.
pub const SCHEMA: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS quarantine (
        id TEXT PRIMARY KEY,
        received_at INTEGER NOT NULL,
        expires_at INTEGER NOT NULL,
        mail_from TEXT NOT NULL,
        header_from TEXT NOT NULL,
        subject TEXT NOT NULL,
        client_ip TEXT NOT NULL,
        class TEXT NOT NULL,
        score REAL NOT NULL,
        reason TEXT NOT NULL,
        report TEXT,
        size INTEGER NOT NULL,
        status TEXT NOT NULL,
        closed_at INTEGER,
        closed_by TEXT
    )",
    "CREATE INDEX IF NOT EXISTS quarantine_received ON quarantine (received_at)",
    "CREATE INDEX IF NOT EXISTS quarantine_expiry ON quarantine (status, expires_at)",
    "CREATE TABLE IF NOT EXISTS quarantine_rcpts (
        id TEXT NOT NULL,
        rcpt TEXT NOT NULL,
        released_at INTEGER,
        released_by TEXT,
        PRIMARY KEY (id, rcpt)
    )",
    "CREATE INDEX IF NOT EXISTS quarantine_rcpts_rcpt ON quarantine_rcpts (rcpt)",
];

/// Columns added to [`SCHEMA`]'s tables since their first version (table, column, type);
/// opening the store adds the missing ones, so older databases keep working.
pub const ADDED_COLUMNS: &[(&str, &str, &str)] = &[("quarantine_rcpts", "digest_sent", "INTEGER")];

/// Where a quarantined message stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Kept, waiting for a decision.
    Held,
    /// Handed to delivery for every recipient.
    Released,
    /// Deleted by a person.
    Deleted,
    /// Deleted when its retention ended.
    Expired,
    /// Not approved (a reviewer said no, or the approval deadline passed); the sender was told.
    Rejected,
}

impl Status {
    /// Lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Held => "held",
            Status::Released => "released",
            Status::Deleted => "deleted",
            Status::Expired => "expired",
            Status::Rejected => "rejected",
        }
    }

    /// The status a name denotes.
    pub fn parse(s: &str) -> Option<Status> {
        [
            Status::Held,
            Status::Released,
            Status::Deleted,
            Status::Expired,
            Status::Rejected,
        ]
        .into_iter()
        .find(|st| st.as_str() == s)
    }
}

/// Most items one search returns.
pub const MAX_PAGE: u32 = 200;

/// A search: every field narrows it; text fields match substrings, case-insensitively.
#[derive(Debug, Clone, Default)]
pub struct Query {
    /// Received at or after (Unix time).
    pub since: Option<i64>,
    /// Received before (Unix time).
    pub until: Option<i64>,
    /// Envelope or header sender contains.
    pub sender: Option<String>,
    /// Some recipient contains.
    pub rcpt: Option<String>,
    /// Subject contains.
    pub subject: Option<String>,
    /// Verdict class equals.
    pub class: Option<String>,
    /// Status equals.
    pub status: Option<Status>,
    /// Only items with a recipient in this domain (a per-domain administrator's scope).
    pub domain: Option<String>,
    /// Only items with exactly this recipient (a user's own quarantine).
    pub owner: Option<String>,
    /// Score at least.
    pub min_score: Option<f64>,
    /// Order of the items.
    pub sort: Sort,
    /// Items to skip.
    pub offset: u32,
    /// Items to return, at most [`MAX_PAGE`].
    pub limit: u32,
}

/// The order a search lists items in.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Sort {
    /// Newest first.
    #[default]
    Newest,
    /// Oldest first.
    Oldest,
    /// Highest score first.
    Score,
    /// Soonest to expire first.
    Expiry,
}

impl Sort {
    /// The sort a name gives (`newest`, `oldest`, `score`, `expiry`).
    pub fn parse(name: &str) -> Option<Sort> {
        match name {
            "newest" => Some(Sort::Newest),
            "oldest" => Some(Sort::Oldest),
            "score" => Some(Sort::Score),
            "expiry" => Some(Sort::Expiry),
            _ => None,
        }
    }

    fn order_by(self) -> &'static str {
        match self {
            Sort::Newest => " ORDER BY q.received_at DESC, q.id DESC",
            Sort::Oldest => " ORDER BY q.received_at ASC, q.id ASC",
            Sort::Score => " ORDER BY q.score DESC, q.received_at DESC, q.id DESC",
            Sort::Expiry => " ORDER BY q.expires_at ASC, q.id ASC",
        }
    }
}

/// One line of a search result.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    /// Queue id (also the item's id).
    pub id: String,
    /// Unix time of receipt.
    pub received_at: i64,
    /// Unix time the message will be deleted unless released.
    pub expires_at: i64,
    /// Envelope sender.
    pub mail_from: String,
    /// Header From address.
    pub header_from: String,
    /// Subject.
    pub subject: String,
    /// Verdict class.
    pub class: String,
    /// Total score.
    pub score: f64,
    /// Why it was held.
    pub reason: String,
    /// Size in bytes.
    pub size: u64,
    /// Where it stands.
    pub status: Status,
    /// Connecting client.
    pub client_ip: String,
    /// Recipients, comma-separated.
    pub rcpts: String,
}

/// A recipient of a quarantined message.
#[derive(Debug, Clone, Serialize)]
pub struct RcptState {
    /// The address.
    pub rcpt: String,
    /// When their copy was released, if it was.
    pub released_at: Option<i64>,
    /// Who released it.
    pub released_by: Option<String>,
}

/// One item in full.
#[derive(Debug, Clone, Serialize)]
pub struct Item {
    /// The summary fields.
    #[serde(flatten)]
    pub summary: Summary,
    /// The verdict's evidence.
    pub report: Option<Report>,
    /// Recipients and their release state.
    #[serde(rename = "recipients")]
    pub rcpts: Vec<RcptState>,
    /// When it was released, deleted or expired.
    pub closed_at: Option<i64>,
    /// By whom.
    pub closed_by: Option<String>,
}

/// A page of results.
#[derive(Debug, Clone, Serialize)]
pub struct Page {
    /// How many items match in all.
    pub total: i64,
    /// This page.
    pub items: Vec<Summary>,
}

/// Inserts the quarantine records of the held messages in `batch` (inside the queue's
/// insert transaction).
pub(crate) async fn insert(
    conn: &mut SqliteConnection,
    batch: &[&NewMessage],
) -> Result<(), StoreError> {
    for m in batch {
        let Some(held) = &m.held else { continue };
        let report = held
            .report
            .as_ref()
            .and_then(|r| serde_json::to_string(r).ok());
        sqlx::query(
            "INSERT INTO quarantine (id, received_at, expires_at, mail_from, header_from, subject,
                client_ip, class, score, reason, report, size, status)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'held')",
        )
        .bind(&m.id)
        .bind(m.received_at)
        .bind(held.expires_at)
        .bind(&m.mail_from)
        .bind(&held.header_from)
        .bind(&held.subject)
        .bind(&m.client_ip)
        .bind(&held.class)
        .bind(held.score)
        .bind(&held.reason)
        .bind(report)
        .bind(m.size as i64)
        .execute(&mut *conn)
        .await?;
        for rcpt in &m.rcpts {
            sqlx::query("INSERT OR IGNORE INTO quarantine_rcpts (id, rcpt) VALUES (?, ?)")
                .bind(&m.id)
                .bind(rcpt.to_lowercase())
                .execute(&mut *conn)
                .await?;
        }
    }
    Ok(())
}

fn filtered<'a>(select: &str, q: &'a Query) -> QueryBuilder<'a, Sqlite> {
    const ANY_RCPT: &str =
        " AND EXISTS (SELECT 1 FROM quarantine_rcpts r WHERE r.id = q.id AND r.rcpt";
    Filter::new(select, "quarantine q")
        .time_range("q.received_at", q.since, q.until)
        .contains(&["q.mail_from", "q.header_from"], q.sender.as_deref())
        .contains(&["q.subject"], q.subject.as_deref())
        .equals("q.class", q.class.clone())
        .at_least("q.score", q.min_score)
        .equals("q.status", q.status.map(|s| s.as_str().to_owned()))
        .condition(
            &format!("{ANY_RCPT} LIKE "),
            q.rcpt.as_deref().map(like_contains),
            " ESCAPE '\\')",
        )
        // One address per row: the domain ends the pattern.
        .condition(
            &format!("{ANY_RCPT} LIKE "),
            q.domain
                .as_ref()
                .map(|d| format!("%@{}", d.replace(['%', '_', '\\'], ""))),
            ")",
        )
        .condition(
            &format!("{ANY_RCPT} = "),
            q.owner.as_ref().map(|o| o.to_lowercase()),
            ")",
        )
        .into_builder()
}

const SUMMARY_COLUMNS: &str = "SELECT q.id, q.received_at, q.expires_at, q.mail_from,
    q.header_from, q.subject, q.class, q.score, q.reason, q.size, q.status, q.client_ip,
    (SELECT group_concat(r.rcpt, ',') FROM quarantine_rcpts r WHERE r.id = q.id) AS rcpts";

fn summary(row: &sqlx::sqlite::SqliteRow) -> Result<Summary, StoreError> {
    let status: String = row.try_get("status")?;
    Ok(Summary {
        id: row.try_get("id")?,
        received_at: row.try_get("received_at")?,
        expires_at: row.try_get("expires_at")?,
        mail_from: row.try_get("mail_from")?,
        header_from: row.try_get("header_from")?,
        subject: row.try_get("subject")?,
        class: row.try_get("class")?,
        score: row.try_get("score")?,
        reason: row.try_get("reason")?,
        size: row.try_get::<i64, _>("size")?.max(0) as u64,
        status: Status::parse(&status).ok_or(StoreError::Corrupt(status))?,
        client_ip: row.try_get("client_ip")?,
        rcpts: row
            .try_get::<Option<String>, _>("rcpts")?
            .unwrap_or_default(),
    })
}

/// One page of matches, newest first.
pub(crate) async fn search(pool: &SqlitePool, q: &Query) -> Result<Page, StoreError> {
    let total: i64 = filtered("SELECT COUNT(*)", q)
        .build()
        .fetch_one(pool)
        .await?
        .try_get(0)?;
    let mut b = filtered(SUMMARY_COLUMNS, q);
    b.push(q.sort.order_by())
        .push(" LIMIT ")
        .push_bind(i64::from(q.limit.min(MAX_PAGE)))
        .push(" OFFSET ")
        .push_bind(i64::from(q.offset));
    let rows = b.build().fetch_all(pool).await?;
    let items = rows.iter().map(summary).collect::<Result<_, _>>()?;
    Ok(Page { total, items })
}

/// One item, if it exists.
pub(crate) async fn get(pool: &SqlitePool, id: &str) -> Result<Option<Item>, StoreError> {
    let Some(row) = sqlx::query(&format!(
        "{SUMMARY_COLUMNS}, q.report, q.closed_at, q.closed_by FROM quarantine q WHERE q.id = ?"
    ))
    .bind(id)
    .fetch_optional(pool)
    .await?
    else {
        return Ok(None);
    };
    let report: Option<String> = row.try_get("report")?;
    let rcpts = sqlx::query(
        "SELECT rcpt, released_at, released_by FROM quarantine_rcpts WHERE id = ? ORDER BY rcpt",
    )
    .bind(id)
    .fetch_all(pool)
    .await?
    .iter()
    .map(|r| {
        Ok(RcptState {
            rcpt: r.try_get("rcpt")?,
            released_at: r.try_get("released_at")?,
            released_by: r.try_get("released_by")?,
        })
    })
    .collect::<Result<_, StoreError>>()?;
    Ok(Some(Item {
        summary: summary(&row)?,
        report: report.and_then(|r| serde_json::from_str(&r).ok()),
        rcpts,
        closed_at: row.try_get("closed_at")?,
        closed_by: row.try_get("closed_by")?,
    }))
}

fn lost_race(id: &str) -> QuarantineError {
    QuarantineError::Conflict {
        id: id.to_owned(),
        status: "changed",
        why: "another action got there first".into(),
    }
}

/// Makes the held queue row deliverable and marks every waiting recipient released.
pub(crate) async fn release_all(
    store: &SqliteStore,
    id: &str,
    actor: &str,
    now: i64,
) -> Result<(), QuarantineError> {
    let mut tx = WriteTx::begin(store.writer(), true).await?;
    let result: Result<bool, StoreError> = async {
        let moved = sqlx::query(
            "UPDATE messages SET state = 'active', hold_reason = NULL, next_attempt = ?
             WHERE id = ? AND state = 'held'",
        )
        .bind(now)
        .bind(id)
        .execute(&mut *tx.conn)
        .await?;
        if moved.rows_affected() != 1 {
            return Ok(false);
        }
        mark_released(&mut tx.conn, id, None, actor, now).await?;
        close(&mut tx.conn, id, super::Status::Released, actor, now).await?;
        Ok(true)
    }
    .await;
    match tx.finish(result).await {
        Ok(true) => Ok(()),
        Ok(false) => Err(lost_race(id)),
        Err(e) => Err(e.into()),
    }
}

/// Moves `rcpts` of held message `id` to a new active queue row `copy` (whose spool file is
/// already written) and marks them released; the others stay held.
pub(crate) async fn release_some(
    store: &SqliteStore,
    id: &str,
    copy: &str,
    rcpts: &[String],
    actor: &str,
    now: i64,
) -> Result<(), QuarantineError> {
    let mut tx = WriteTx::begin(store.writer(), true).await?;
    let result: Result<bool, StoreError> = async {
        let created = sqlx::query(
            "INSERT INTO messages (id, mail_from, size, received_at, client_ip, helo, smtputf8,
                state, hold_reason, kind, attempts, next_attempt)
             SELECT ?, mail_from, size, received_at, client_ip, helo, smtputf8, 'active', NULL,
                kind, 0, ? FROM messages WHERE id = ? AND state = 'held'",
        )
        .bind(copy)
        .bind(now)
        .bind(id)
        .execute(&mut *tx.conn)
        .await?;
        if created.rows_affected() != 1 {
            return Ok(false);
        }
        for rcpt in rcpts {
            let moved = sqlx::query(
                "UPDATE recipients SET message_id = ? WHERE message_id = ? AND lower(address) = ?",
            )
            .bind(copy)
            .bind(id)
            .bind(rcpt)
            .execute(&mut *tx.conn)
            .await?;
            if moved.rows_affected() != 1 {
                return Ok(false);
            }
            mark_released(&mut tx.conn, id, Some(rcpt), actor, now).await?;
        }
        Ok(true)
    }
    .await;
    match tx.finish(result).await {
        Ok(true) => Ok(()),
        Ok(false) => Err(lost_race(id)),
        Err(e) => Err(e.into()),
    }
}

async fn mark_released(
    conn: &mut SqliteConnection,
    id: &str,
    rcpt: Option<&str>,
    actor: &str,
    now: i64,
) -> Result<(), StoreError> {
    let mut b = QueryBuilder::<Sqlite>::new("UPDATE quarantine_rcpts SET released_at = ");
    b.push_bind(now)
        .push(", released_by = ")
        .push_bind(actor)
        .push(" WHERE id = ")
        .push_bind(id)
        .push(" AND released_at IS NULL");
    if let Some(r) = rcpt {
        b.push(" AND rcpt = ").push_bind(r);
    }
    b.build().execute(&mut *conn).await?;
    Ok(())
}

async fn close(
    conn: &mut SqliteConnection,
    id: &str,
    status: super::Status,
    actor: &str,
    now: i64,
) -> Result<(), StoreError> {
    sqlx::query("UPDATE quarantine SET status = ?, closed_at = ?, closed_by = ? WHERE id = ?")
        .bind(status.as_str())
        .bind(now)
        .bind(actor)
        .bind(id)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Removes a held message's queue row and closes its record as `status`, queueing `notice`
/// (already spooled) in the same transaction.
pub(crate) async fn drop_message(
    store: &SqliteStore,
    id: &str,
    status: super::Status,
    actor: &str,
    now: i64,
    notice: Option<&NewMessage>,
) -> Result<(), QuarantineError> {
    let mut tx = WriteTx::begin(store.writer(), true).await?;
    let result: Result<bool, StoreError> = async {
        let gone = sqlx::query("DELETE FROM messages WHERE id = ? AND state = 'held'")
            .bind(id)
            .execute(&mut *tx.conn)
            .await?;
        if gone.rows_affected() != 1 {
            return Ok(false);
        }
        close(&mut tx.conn, id, status, actor, now).await?;
        if let Some(notice) = notice {
            crate::queue::store::insert_many(&mut tx.conn, &[notice]).await?;
        }
        Ok(true)
    }
    .await;
    match tx.finish(result).await {
        Ok(true) => Ok(()),
        Ok(false) => Err(lost_race(id)),
        Err(e) => Err(e.into()),
    }
}

/// Held items whose retention ended by `now` (a bounded batch).
pub(crate) async fn expired(pool: &SqlitePool, now: i64) -> Result<Vec<String>, StoreError> {
    let rows = sqlx::query(
        "SELECT id FROM quarantine WHERE status = 'held' AND expires_at <= ? LIMIT 1000",
    )
    .bind(now)
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|r| r.try_get("id").map_err(StoreError::from))
        .collect()
}
