//! The account-risk tables, in the queue's database: each account's state and profile, the
//! history of what was decided about it, and which held messages are its. Every query is
//! parameterised.

use serde::Serialize;
use sqlx::Row;

use super::{Account, Level};
use crate::db::StoreError;
use crate::queue::SqliteStore;
use jianmen_scan::behaviour::{Profile, Reason};

/// Created with the queue's schema.
pub const SCHEMA: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS risk_accounts (
        account TEXT PRIMARY KEY,
        level TEXT NOT NULL,
        score REAL NOT NULL,
        reasons TEXT NOT NULL,
        since INTEGER NOT NULL,
        last_at INTEGER NOT NULL,
        volume TEXT NOT NULL,
        profile TEXT NOT NULL
    )",
    "CREATE TABLE IF NOT EXISTS risk_events (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        at INTEGER NOT NULL,
        account TEXT NOT NULL,
        level TEXT NOT NULL,
        score REAL NOT NULL,
        reasons TEXT NOT NULL,
        actor TEXT NOT NULL
    )",
    "CREATE INDEX IF NOT EXISTS risk_events_account ON risk_events (account, id)",
    "CREATE TABLE IF NOT EXISTS risk_holds (
        id TEXT PRIMARY KEY,
        account TEXT NOT NULL
    )",
    "CREATE INDEX IF NOT EXISTS risk_holds_account ON risk_holds (account)",
];

/// One decision about an account: the gateway's (escalations) or a person's (clear, confirm).
#[derive(Debug, Clone, Serialize)]
pub struct Event {
    /// Unix time.
    pub at: i64,
    /// The account.
    pub account: String,
    /// The level it was put at.
    pub level: Level,
    /// Its score then.
    pub score: f64,
    /// The explanation then.
    pub reasons: Vec<Reason>,
    /// `gateway` for automatic containment, else the administrator.
    pub actor: String,
}

/// The hour the sparkline ends at and its counts, oldest first.
#[derive(serde::Serialize, serde::Deserialize)]
struct Volume {
    hour: i64,
    counts: Vec<u32>,
}

fn json<T: Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_default()
}

/// Writes one account's row (state and profile).
async fn upsert(
    conn: &mut sqlx::SqliteConnection,
    name: &str,
    a: &Account,
) -> Result<(), sqlx::Error> {
    sqlx::query(
            "INSERT INTO risk_accounts (account, level, score, reasons, since, last_at, volume, profile)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?)
             ON CONFLICT (account) DO UPDATE SET level = excluded.level, score = excluded.score,
               reasons = excluded.reasons, since = excluded.since, last_at = excluded.last_at,
               volume = excluded.volume, profile = excluded.profile",
        )
        .bind(name)
        .bind(a.level.as_str())
        .bind(a.peak)
        .bind(json(&a.reasons))
        .bind(a.since)
        .bind(a.last_at)
        .bind(json(&Volume {
            hour: a.volume_hour,
            counts: a.volume.to_vec(),
        }))
        .bind(json(&a.profile))
        .execute(conn)
        .await?;
    Ok(())
}

/// Writes accounts' rows in one transaction.
pub(super) async fn save(
    store: &SqliteStore,
    accounts: &[(String, Account)],
) -> Result<(), StoreError> {
    let mut tx = store.writer().begin().await?;
    for (name, a) in accounts {
        upsert(&mut tx, name, a).await?;
    }
    tx.commit().await?;
    Ok(())
}

/// Writes an account's row and the event that changed it, together.
pub(super) async fn save_event(
    store: &SqliteStore,
    account: &Account,
    event: &Event,
) -> Result<(), StoreError> {
    let mut tx = store.writer().begin().await?;
    upsert(&mut tx, &event.account, account).await?;
    sqlx::query(
        "INSERT INTO risk_events (at, account, level, score, reasons, actor)
         VALUES (?, ?, ?, ?, ?, ?)",
    )
    .bind(event.at)
    .bind(&event.account)
    .bind(event.level.as_str())
    .bind(event.score)
    .bind(json(&event.reasons))
    .bind(&event.actor)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Forgets accounts evicted from memory.
pub(super) async fn forget(store: &SqliteStore, accounts: &[String]) -> Result<(), StoreError> {
    let mut tx = store.writer().begin().await?;
    for name in accounts {
        sqlx::query("DELETE FROM risk_accounts WHERE account = ?")
            .bind(name)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(())
}

/// Every stored account. A row this version cannot read starts afresh (its level kept).
pub(super) async fn load(store: &SqliteStore) -> Result<Vec<(String, Account)>, StoreError> {
    let rows = sqlx::query(
        "SELECT account, level, score, reasons, since, last_at, volume, profile FROM risk_accounts",
    )
    .fetch_all(store.reader())
    .await?;
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        let name: String = row.try_get("account")?;
        let level: String = row.try_get("level")?;
        let level = Level::parse(&level)
            .ok_or_else(|| StoreError::Corrupt(format!("risk level {level:?}")))?;
        let volume: Volume =
            serde_json::from_str(&row.try_get::<String, _>("volume")?).unwrap_or(Volume {
                hour: 0,
                counts: Vec::new(),
            });
        let mut counts = [0u32; 24];
        for (slot, n) in counts.iter_mut().zip(volume.counts) {
            *slot = n;
        }
        let profile: Profile =
            serde_json::from_str(&row.try_get::<String, _>("profile")?).unwrap_or_default();
        out.push((
            name,
            Account {
                profile,
                level,
                score: 0.0,
                peak: row.try_get("score")?,
                reasons: serde_json::from_str(&row.try_get::<String, _>("reasons")?)
                    .unwrap_or_default(),
                since: row.try_get("since")?,
                last_at: row.try_get("last_at")?,
                volume: counts,
                volume_hour: volume.hour,
                tokens: 0.0,
                tokens_at: 0,
                refused: 0,
                dirty: false,
            },
        ));
    }
    Ok(out)
}

/// An account's events, newest first (at most `limit`).
pub(super) async fn events(
    store: &SqliteStore,
    account: &str,
    limit: u32,
) -> Result<Vec<Event>, StoreError> {
    let rows = sqlx::query(
        "SELECT at, account, level, score, reasons, actor FROM risk_events
         WHERE account = ? ORDER BY id DESC LIMIT ?",
    )
    .bind(account)
    .bind(limit)
    .fetch_all(store.reader())
    .await?;
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        let level: String = row.try_get("level")?;
        out.push(Event {
            at: row.try_get("at")?,
            account: row.try_get("account")?,
            level: Level::parse(&level)
                .ok_or_else(|| StoreError::Corrupt(format!("risk level {level:?}")))?,
            score: row.try_get("score")?,
            reasons: serde_json::from_str(&row.try_get::<String, _>("reasons")?)
                .unwrap_or_default(),
            actor: row.try_get("actor")?,
        });
    }
    Ok(out)
}

/// Records that the held message `id` is the account's.
pub(super) async fn note_hold(
    store: &SqliteStore,
    id: &str,
    account: &str,
) -> Result<(), StoreError> {
    sqlx::query("INSERT OR REPLACE INTO risk_holds (id, account) VALUES (?, ?)")
        .bind(id)
        .bind(account)
        .execute(store.writer())
        .await?;
    Ok(())
}

/// The held messages noted for an account.
pub(super) async fn holds(store: &SqliteStore, account: &str) -> Result<Vec<String>, StoreError> {
    Ok(
        sqlx::query_scalar("SELECT id FROM risk_holds WHERE account = ? ORDER BY id")
            .bind(account)
            .fetch_all(store.reader())
            .await?,
    )
}

/// Forgets a hold that was decided.
pub(super) async fn drop_hold(store: &SqliteStore, id: &str) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM risk_holds WHERE id = ?")
        .bind(id)
        .execute(store.writer())
        .await?;
    Ok(())
}
