//! The channel tables, in the queue's database: each channel's last state (so a listed or
//! drained channel stays out after a restart) and the history of its changes. Every query is
//! parameterised.

use serde::Serialize;
use sqlx::Row;

use super::{Live, State};
use crate::db::StoreError;
use crate::queue::SqliteStore;

/// Created with the queue's schema.
pub const SCHEMA: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS relay_channels (
        name TEXT PRIMARY KEY,
        state TEXT NOT NULL,
        since INTEGER NOT NULL,
        reason TEXT NOT NULL,
        listings TEXT NOT NULL,
        clean_since INTEGER
    )",
    "CREATE TABLE IF NOT EXISTS relay_events (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        at INTEGER NOT NULL,
        channel TEXT NOT NULL,
        from_state TEXT NOT NULL,
        to_state TEXT NOT NULL,
        reason TEXT NOT NULL,
        actor TEXT NOT NULL
    )",
    "CREATE INDEX IF NOT EXISTS relay_events_channel ON relay_events (channel, id)",
];

/// History kept per channel.
const KEEP_EVENTS: i64 = 1000;

/// One change of a channel's state.
#[derive(Debug, Clone, Serialize)]
pub struct Transition {
    /// Unix time.
    pub at: i64,
    /// The channel.
    pub channel: String,
    /// From.
    pub from: State,
    /// To.
    pub to: State,
    /// Why.
    pub reason: String,
    /// `gateway`, or the administrator.
    pub actor: String,
}

/// A stored channel row.
pub(super) struct Saved {
    pub state: State,
    pub since: i64,
    pub reason: String,
    pub listings: Vec<String>,
    pub clean_since: Option<i64>,
}

/// Writes the channels' rows and the transitions that changed them, together.
pub(super) async fn save(
    store: &SqliteStore,
    rows: &[(String, Live)],
    changes: &[Transition],
) -> Result<(), StoreError> {
    let mut tx = store.writer().begin().await?;
    for (name, live) in rows {
        sqlx::query(
            "INSERT INTO relay_channels (name, state, since, reason, listings, clean_since)
             VALUES (?, ?, ?, ?, ?, ?)
             ON CONFLICT (name) DO UPDATE SET state = excluded.state, since = excluded.since,
               reason = excluded.reason, listings = excluded.listings,
               clean_since = excluded.clean_since",
        )
        .bind(name)
        .bind(live.state.as_str())
        .bind(live.since)
        .bind(&live.reason)
        .bind(serde_json::to_string(&live.listings).unwrap_or_default())
        .bind(live.clean_since)
        .execute(&mut *tx)
        .await?;
    }
    for t in changes {
        sqlx::query(
            "INSERT INTO relay_events (at, channel, from_state, to_state, reason, actor)
             VALUES (?, ?, ?, ?, ?, ?)",
        )
        .bind(t.at)
        .bind(&t.channel)
        .bind(t.from.as_str())
        .bind(t.to.as_str())
        .bind(&t.reason)
        .bind(&t.actor)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "DELETE FROM relay_events WHERE channel = ? AND id <= (
               SELECT id FROM relay_events WHERE channel = ? ORDER BY id DESC LIMIT 1 OFFSET ?)",
        )
        .bind(&t.channel)
        .bind(&t.channel)
        .bind(KEEP_EVENTS)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(())
}

/// Every stored channel row. A row this version cannot read is skipped: the channel starts in
/// its configured role.
pub(super) async fn load(store: &SqliteStore) -> Result<Vec<(String, Saved)>, StoreError> {
    let rows =
        sqlx::query("SELECT name, state, since, reason, listings, clean_since FROM relay_channels")
            .fetch_all(store.reader())
            .await?;
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        let state: String = row.try_get("state")?;
        let Some(state) = State::parse(&state) else {
            continue;
        };
        out.push((
            row.try_get("name")?,
            Saved {
                state,
                since: row.try_get("since")?,
                reason: row.try_get("reason")?,
                listings: serde_json::from_str(&row.try_get::<String, _>("listings")?)
                    .unwrap_or_default(),
                clean_since: row.try_get("clean_since")?,
            },
        ));
    }
    Ok(out)
}

/// A channel's transitions, newest first (at most `limit`).
pub(super) async fn history(
    store: &SqliteStore,
    channel: &str,
    limit: u32,
) -> Result<Vec<Transition>, StoreError> {
    let rows = sqlx::query(
        "SELECT at, channel, from_state, to_state, reason, actor FROM relay_events
         WHERE channel = ? ORDER BY id DESC LIMIT ?",
    )
    .bind(channel)
    .bind(i64::from(limit))
    .fetch_all(store.reader())
    .await?;
    rows.into_iter()
        .map(|row| {
            let state = |col: &str| -> Result<State, StoreError> {
                let s: String = row.try_get(col)?;
                State::parse(&s).ok_or_else(|| StoreError::Corrupt(format!("channel state {s:?}")))
            };
            Ok(Transition {
                at: row.try_get("at")?,
                channel: row.try_get("channel")?,
                from: state("from_state")?,
                to: state("to_state")?,
                reason: row.try_get("reason")?,
                actor: row.try_get("actor")?,
            })
        })
        .collect()
}
