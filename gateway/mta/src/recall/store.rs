//! The recall tables, in the queue's database: each recall (who asked, for which message, what
//! it does) and each mailbox's part in it (its state, the folders the message was taken from,
//! what went wrong). Every query is parameterised.

use serde::Serialize;
use sqlx::Row;

use crate::db::StoreError;
use crate::queue::SqliteStore;

/// Created with the queue's schema.
pub const SCHEMA: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS recall_jobs (
        id TEXT PRIMARY KEY,
        created_at INTEGER NOT NULL,
        actor TEXT NOT NULL,
        queue_id TEXT NOT NULL,
        message_id TEXT NOT NULL,
        mail_from TEXT NOT NULL,
        subject TEXT NOT NULL,
        action TEXT NOT NULL,
        reason TEXT NOT NULL
    )",
    "CREATE INDEX IF NOT EXISTS recall_jobs_created ON recall_jobs (created_at)",
    "CREATE TABLE IF NOT EXISTS recall_items (
        job_id TEXT NOT NULL,
        mailbox TEXT NOT NULL,
        state TEXT NOT NULL,
        folders TEXT NOT NULL,
        detail TEXT NOT NULL,
        updated_at INTEGER NOT NULL,
        PRIMARY KEY (job_id, mailbox)
    )",
];

/// Columns added after the first release of these tables, as (table, column, type).
pub const ADDED_COLUMNS: &[(&str, &str, &str)] = &[
    ("recall_jobs", "header_from", "TEXT NOT NULL DEFAULT ''"),
    ("recall_jobs", "delivered_at", "INTEGER NOT NULL DEFAULT 0"),
];

/// One recall.
#[derive(Debug, Clone, Serialize)]
pub struct Job {
    /// Its id.
    pub id: String,
    /// When it was asked for (Unix time).
    pub created_at: i64,
    /// Who asked (`console:name`, or `intel:…` for a hunt).
    pub actor: String,
    /// The message's queue id.
    pub queue_id: String,
    /// Its Message-ID.
    pub message_id: String,
    /// Its sender.
    pub mail_from: String,
    /// Its header `From` address: with the subject and the day, what finds a message that has
    /// no Message-ID.
    pub header_from: String,
    /// When the gateway accepted it (Unix time).
    pub delivered_at: i64,
    /// Its subject.
    pub subject: String,
    /// `move` or `delete`.
    pub action: String,
    /// Why.
    pub reason: String,
}

/// One mailbox's part in a recall.
#[derive(Debug, Clone, Serialize)]
pub struct Item {
    /// The mailbox (recipient address).
    pub mailbox: String,
    /// `pending`, `working`, `recalled`, `absent`, `failed`, `restoring`, `restored`,
    /// `restore_failed`.
    pub state: String,
    /// The folders the message was taken from, with the copies in each.
    pub folders: Vec<(String, u32)>,
    /// What went wrong, or what was done.
    pub detail: String,
    /// When it last changed (Unix time).
    pub updated_at: i64,
}

/// Writes a new recall and its mailboxes (all pending).
pub(super) async fn create(
    store: &SqliteStore,
    job: &Job,
    mailboxes: &[String],
) -> Result<(), StoreError> {
    let mut tx = store.writer().begin().await?;
    sqlx::query(
        "INSERT INTO recall_jobs (id, created_at, actor, queue_id, message_id, mail_from, subject, action, reason,
         header_from, delivered_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(&job.id)
    .bind(job.created_at)
    .bind(&job.actor)
    .bind(&job.queue_id)
    .bind(&job.message_id)
    .bind(&job.mail_from)
    .bind(&job.subject)
    .bind(&job.action)
    .bind(&job.reason)
    .bind(&job.header_from)
    .bind(job.delivered_at)
    .execute(&mut *tx)
    .await?;
    for m in mailboxes {
        sqlx::query(
            "INSERT INTO recall_items (job_id, mailbox, state, folders, detail, updated_at)
             VALUES (?, ?, 'pending', '[]', '', ?)",
        )
        .bind(&job.id)
        .bind(m)
        .bind(job.created_at)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(())
}

/// Sets a mailbox's state (and, when given, its folders).
pub(super) async fn set(
    store: &SqliteStore,
    job: &str,
    mailbox: &str,
    state: &str,
    folders: Option<&[(String, u32)]>,
    detail: &str,
    now: i64,
) -> Result<(), StoreError> {
    let mut q = String::from("UPDATE recall_items SET state = ?, detail = ?, updated_at = ?");
    if folders.is_some() {
        q.push_str(", folders = ?");
    }
    q.push_str(" WHERE job_id = ? AND mailbox = ?");
    let mut query = sqlx::query(&q).bind(state).bind(detail).bind(now);
    if let Some(f) = folders {
        query = query.bind(serde_json::to_string(f).unwrap_or_else(|_| "[]".into()));
    }
    query
        .bind(job)
        .bind(mailbox)
        .execute(store.writer())
        .await?;
    Ok(())
}

/// A recall and its mailboxes.
pub(super) async fn get(
    store: &SqliteStore,
    id: &str,
) -> Result<Option<(Job, Vec<Item>)>, StoreError> {
    let Some(row) = sqlx::query("SELECT * FROM recall_jobs WHERE id = ?")
        .bind(id)
        .fetch_optional(store.reader())
        .await?
    else {
        return Ok(None);
    };
    let job = job(&row)?;
    let items = sqlx::query(
        "SELECT mailbox, state, folders, detail, updated_at FROM recall_items
         WHERE job_id = ? ORDER BY mailbox",
    )
    .bind(id)
    .fetch_all(store.reader())
    .await?
    .iter()
    .map(|r| {
        Ok(Item {
            mailbox: r.try_get("mailbox")?,
            state: r.try_get("state")?,
            folders: serde_json::from_str(&r.try_get::<String, _>("folders")?).unwrap_or_default(),
            detail: r.try_get("detail")?,
            updated_at: r.try_get("updated_at")?,
        })
    })
    .collect::<Result<Vec<_>, StoreError>>()?;
    Ok(Some((job, items)))
}

/// The latest recalls, newest first, with their mailboxes' states counted.
pub(super) async fn recent(
    store: &SqliteStore,
    limit: u32,
) -> Result<Vec<(Job, Vec<(String, i64)>)>, StoreError> {
    let rows = sqlx::query("SELECT * FROM recall_jobs ORDER BY created_at DESC, id DESC LIMIT ?")
        .bind(i64::from(limit))
        .fetch_all(store.reader())
        .await?;
    let mut out = Vec::with_capacity(rows.len());
    for row in &rows {
        let job = job(row)?;
        let counts = sqlx::query(
            "SELECT state, COUNT(*) AS n FROM recall_items WHERE job_id = ? GROUP BY state ORDER BY state",
        )
        .bind(&job.id)
        .fetch_all(store.reader())
        .await?
        .iter()
        .map(|r| Ok((r.try_get("state")?, r.try_get("n")?)))
        .collect::<Result<Vec<_>, StoreError>>()?;
        out.push((job, counts));
    }
    Ok(out)
}

fn job(row: &sqlx::sqlite::SqliteRow) -> Result<Job, StoreError> {
    Ok(Job {
        id: row.try_get("id")?,
        created_at: row.try_get("created_at")?,
        actor: row.try_get("actor")?,
        queue_id: row.try_get("queue_id")?,
        message_id: row.try_get("message_id")?,
        mail_from: row.try_get("mail_from")?,
        header_from: row.try_get("header_from")?,
        delivered_at: row.try_get("delivered_at")?,
        subject: row.try_get("subject")?,
        action: row.try_get("action")?,
        reason: row.try_get("reason")?,
    })
}

/// The folders a mailbox's copy was taken from.
pub(super) async fn folders(
    store: &SqliteStore,
    job: &str,
    mailbox: &str,
) -> Result<Vec<(String, u32)>, StoreError> {
    let row = sqlx::query("SELECT folders FROM recall_items WHERE job_id = ? AND mailbox = ?")
        .bind(job)
        .bind(mailbox)
        .fetch_optional(store.reader())
        .await?;
    Ok(match row {
        Some(r) => serde_json::from_str(&r.try_get::<String, _>("folders")?).unwrap_or_default(),
        None => Vec::new(),
    })
}

/// Mailboxes whose part a restart interrupted: (recall, mailbox, whether it was being put back).
pub(super) async fn unfinished(
    store: &SqliteStore,
) -> Result<Vec<(Job, String, bool)>, StoreError> {
    let rows = sqlx::query(
        "SELECT j.*, i.mailbox AS mailbox, i.state AS state FROM recall_items i
         JOIN recall_jobs j ON j.id = i.job_id
         WHERE i.state IN ('pending', 'working', 'restoring')",
    )
    .fetch_all(store.reader())
    .await?;
    rows.iter()
        .map(|r| {
            let state: String = r.try_get("state")?;
            Ok((job(r)?, r.try_get("mailbox")?, state == "restoring"))
        })
        .collect()
}
