//! The drill tables, in the queue's database: custom templates, campaigns (with the template's
//! text copied in, so editing a template never changes a campaign already made) and each
//! target's progress — when their copy was sent, first opened, first clicked, when a form was
//! submitted (only *that* it was: nothing typed is ever received or kept) and when they
//! reported it. Every query is parameterised.

use serde::Serialize;
use sqlx::Row;

use super::templates::Template;
use crate::db::StoreError;
use crate::queue::SqliteStore;

/// Created with the queue's schema.
pub const SCHEMA: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS drill_templates (
        id TEXT PRIMARY KEY,
        title TEXT NOT NULL,
        from_name TEXT NOT NULL,
        subject TEXT NOT NULL,
        html TEXT NOT NULL,
        landing TEXT NOT NULL,
        updated_at INTEGER NOT NULL
    )",
    "CREATE TABLE IF NOT EXISTS drill_campaigns (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        template_id TEXT NOT NULL,
        from_name TEXT NOT NULL,
        from_address TEXT NOT NULL,
        subject TEXT NOT NULL,
        html TEXT NOT NULL,
        landing TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        actor TEXT NOT NULL,
        start_at INTEGER NOT NULL,
        rate_per_minute INTEGER NOT NULL,
        state TEXT NOT NULL
    )",
    "CREATE TABLE IF NOT EXISTS drill_targets (
        campaign_id TEXT NOT NULL,
        email TEXT NOT NULL,
        name TEXT NOT NULL,
        department TEXT NOT NULL,
        queue_id TEXT NOT NULL DEFAULT '',
        sent_at INTEGER,
        opened_at INTEGER,
        clicked_at INTEGER,
        submitted_at INTEGER,
        reported_at INTEGER,
        PRIMARY KEY (campaign_id, email)
    )",
];

/// A campaign.
#[derive(Debug, Clone, Serialize)]
pub struct Campaign {
    /// Its id.
    pub id: String,
    /// Its name.
    pub name: String,
    /// The template it was made from.
    pub template_id: String,
    /// The sender's display name.
    pub from_name: String,
    /// The sender's address.
    pub from_address: String,
    /// Subject, with placeholders.
    pub subject: String,
    /// Body, with placeholders.
    pub html: String,
    /// The landing page's heading.
    pub landing: String,
    /// When it was made (Unix time).
    pub created_at: i64,
    /// Who made it.
    pub actor: String,
    /// When sending starts.
    pub start_at: i64,
    /// Messages sent per minute at most.
    pub rate_per_minute: u32,
    /// `draft`, `scheduled` (sends from `start_at`), `paused`, `done`.
    pub state: String,
}

/// One target's progress.
#[derive(Debug, Clone, Serialize)]
pub struct Progress {
    /// Their address.
    pub email: String,
    /// Their name.
    pub name: String,
    /// Their department.
    pub department: String,
    /// Their copy's queue id.
    pub queue_id: String,
    /// Sent (Unix time).
    pub sent_at: Option<i64>,
    /// First opened.
    pub opened_at: Option<i64>,
    /// First clicked.
    pub clicked_at: Option<i64>,
    /// A form submitted on the landing page.
    pub submitted_at: Option<i64>,
    /// Reported to the report address.
    pub reported_at: Option<i64>,
}

/// What happened to a target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Sent.
    Sent,
    /// Opened (the pixel was fetched).
    Opened,
    /// Clicked.
    Clicked,
    /// Submitted the landing page's form.
    Submitted,
    /// Reported.
    Reported,
}

impl Step {
    fn column(self) -> &'static str {
        match self {
            Step::Sent => "sent_at",
            Step::Opened => "opened_at",
            Step::Clicked => "clicked_at",
            Step::Submitted => "submitted_at",
            Step::Reported => "reported_at",
        }
    }
}

/// Saves a custom template.
pub(super) async fn save_template(
    store: &SqliteStore,
    t: &Template,
    now: i64,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT OR REPLACE INTO drill_templates (id, title, from_name, subject, html, landing, updated_at)
         VALUES (?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(&t.id)
    .bind(&t.title)
    .bind(&t.from_name)
    .bind(&t.subject)
    .bind(&t.html)
    .bind(&t.landing)
    .bind(now)
    .execute(store.writer())
    .await?;
    Ok(())
}

/// The custom templates.
pub(super) async fn templates(store: &SqliteStore) -> Result<Vec<Template>, StoreError> {
    let rows = sqlx::query(
        "SELECT id, title, from_name, subject, html, landing FROM drill_templates ORDER BY title",
    )
    .fetch_all(store.reader())
    .await?;
    Ok(rows
        .iter()
        .map(|r| Template {
            id: r.get(0),
            title: r.get(1),
            from_name: r.get(2),
            subject: r.get(3),
            html: r.get(4),
            landing: r.get(5),
        })
        .collect())
}

/// Writes a new campaign and its targets.
pub(super) async fn create(
    store: &SqliteStore,
    c: &Campaign,
    targets: &[super::targets::Target],
) -> Result<(), StoreError> {
    let mut tx = store.writer().begin().await?;
    sqlx::query(
        "INSERT INTO drill_campaigns (id, name, template_id, from_name, from_address, subject, html,
         landing, created_at, actor, start_at, rate_per_minute, state)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(&c.id)
    .bind(&c.name)
    .bind(&c.template_id)
    .bind(&c.from_name)
    .bind(&c.from_address)
    .bind(&c.subject)
    .bind(&c.html)
    .bind(&c.landing)
    .bind(c.created_at)
    .bind(&c.actor)
    .bind(c.start_at)
    .bind(c.rate_per_minute)
    .bind(&c.state)
    .execute(&mut *tx)
    .await?;
    for t in targets {
        sqlx::query(
            "INSERT INTO drill_targets (campaign_id, email, name, department) VALUES (?, ?, ?, ?)",
        )
        .bind(&c.id)
        .bind(&t.email)
        .bind(&t.name)
        .bind(&t.department)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(())
}

fn campaign(r: &sqlx::sqlite::SqliteRow) -> Campaign {
    Campaign {
        id: r.get("id"),
        name: r.get("name"),
        template_id: r.get("template_id"),
        from_name: r.get("from_name"),
        from_address: r.get("from_address"),
        subject: r.get("subject"),
        html: r.get("html"),
        landing: r.get("landing"),
        created_at: r.get("created_at"),
        actor: r.get("actor"),
        start_at: r.get("start_at"),
        rate_per_minute: r.get::<i64, _>("rate_per_minute").clamp(1, 100_000) as u32,
        state: r.get("state"),
    }
}

/// One campaign.
pub(super) async fn get(store: &SqliteStore, id: &str) -> Result<Option<Campaign>, StoreError> {
    Ok(sqlx::query("SELECT * FROM drill_campaigns WHERE id = ?")
        .bind(id)
        .fetch_optional(store.reader())
        .await?
        .as_ref()
        .map(campaign))
}

/// Every campaign, newest first.
pub(super) async fn campaigns(store: &SqliteStore) -> Result<Vec<Campaign>, StoreError> {
    Ok(
        sqlx::query("SELECT * FROM drill_campaigns ORDER BY created_at DESC, id DESC LIMIT 500")
            .fetch_all(store.reader())
            .await?
            .iter()
            .map(campaign)
            .collect(),
    )
}

/// Sets a campaign's state.
pub(super) async fn set_state(
    store: &SqliteStore,
    id: &str,
    state: &str,
) -> Result<bool, StoreError> {
    Ok(
        sqlx::query("UPDATE drill_campaigns SET state = ? WHERE id = ?")
            .bind(state)
            .bind(id)
            .execute(store.writer())
            .await?
            .rows_affected()
            == 1,
    )
}

/// Up to `n` targets of `id` not yet sent.
pub(super) async fn unsent(
    store: &SqliteStore,
    id: &str,
    n: u32,
) -> Result<Vec<super::targets::Target>, StoreError> {
    Ok(sqlx::query(
        "SELECT email, name, department FROM drill_targets
         WHERE campaign_id = ? AND sent_at IS NULL ORDER BY rowid LIMIT ?",
    )
    .bind(id)
    .bind(n)
    .fetch_all(store.reader())
    .await?
    .iter()
    .map(|r| super::targets::Target {
        email: r.get(0),
        name: r.get(1),
        department: r.get(2),
    })
    .collect())
}

/// Records `step` for a target, the first time only (and `queue_id` when sending); says
/// whether it was new.
pub(super) async fn mark(
    store: &SqliteStore,
    id: &str,
    email: &str,
    step: Step,
    at: i64,
    queue_id: Option<&str>,
) -> Result<bool, StoreError> {
    let column = step.column();
    let done = sqlx::query(&format!(
        "UPDATE drill_targets SET {column} = ?, queue_id = COALESCE(?, queue_id)
         WHERE campaign_id = ? AND email = ? AND {column} IS NULL"
    ))
    .bind(at)
    .bind(queue_id)
    .bind(id)
    .bind(email)
    .execute(store.writer())
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Every target's progress in `id`.
pub(super) async fn progress(store: &SqliteStore, id: &str) -> Result<Vec<Progress>, StoreError> {
    Ok(sqlx::query(
        "SELECT email, name, department, queue_id, sent_at, opened_at, clicked_at, submitted_at,
         reported_at FROM drill_targets WHERE campaign_id = ? ORDER BY department, email",
    )
    .bind(id)
    .fetch_all(store.reader())
    .await?
    .iter()
    .map(|r| Progress {
        email: r.get(0),
        name: r.get(1),
        department: r.get(2),
        queue_id: r.get(3),
        sent_at: r.get(4),
        opened_at: r.get(5),
        clicked_at: r.get(6),
        submitted_at: r.get(7),
        reported_at: r.get(8),
    })
    .collect())
}
