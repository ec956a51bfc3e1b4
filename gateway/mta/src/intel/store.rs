//! The intel tables, in the queue's database: each source's state (its TAXII cursor, its last
//! poll), each indicator with what it points at, and each hit of a retro-hunt (a delivered
//! message an indicator matched, and what became of it). Every query is parameterised.

use serde::Serialize;
use sqlx::Row;

use crate::db::StoreError;
use crate::queue::SqliteStore;
use jianmen_scan::intel::{Indicator, Observable};

/// Created with the queue's schema.
pub const SCHEMA: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS intel_sources (
        name TEXT PRIMARY KEY,
        cursor TEXT NOT NULL DEFAULT '',
        last_poll INTEGER NOT NULL DEFAULT 0,
        last_ok INTEGER NOT NULL DEFAULT 0,
        last_error TEXT NOT NULL DEFAULT '',
        received INTEGER NOT NULL DEFAULT 0,
        skipped INTEGER NOT NULL DEFAULT 0
    )",
    "CREATE TABLE IF NOT EXISTS intel_indicators (
        id TEXT PRIMARY KEY,
        source TEXT NOT NULL,
        name TEXT NOT NULL,
        pattern TEXT NOT NULL,
        modified INTEGER NOT NULL,
        valid_from INTEGER NOT NULL,
        valid_until INTEGER,
        revoked INTEGER NOT NULL,
        added_at INTEGER NOT NULL
    )",
    "CREATE INDEX IF NOT EXISTS intel_indicators_added ON intel_indicators (added_at)",
    "CREATE TABLE IF NOT EXISTS intel_observables (
        indicator_id TEXT NOT NULL,
        kind TEXT NOT NULL,
        value TEXT NOT NULL
    )",
    "CREATE INDEX IF NOT EXISTS intel_observables_indicator ON intel_observables (indicator_id)",
    "CREATE TABLE IF NOT EXISTS intel_hits (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        at INTEGER NOT NULL,
        indicator_id TEXT NOT NULL,
        queue_id TEXT NOT NULL,
        kind TEXT NOT NULL,
        value TEXT NOT NULL,
        state TEXT NOT NULL,
        recall_id TEXT NOT NULL DEFAULT '',
        detail TEXT NOT NULL DEFAULT '',
        UNIQUE (indicator_id, queue_id)
    )",
];

/// A source as the console shows it.
#[derive(Debug, Clone, Serialize)]
pub struct SourceState {
    /// Its name (`import` for files an administrator uploaded).
    pub name: String,
    /// The TAXII `added_after` it goes on from.
    pub cursor: String,
    /// Last poll (Unix time; 0 never).
    pub last_poll: i64,
    /// Last poll that worked.
    pub last_ok: i64,
    /// Why the last poll failed ("" when it worked).
    pub last_error: String,
    /// Indicators taken from it in all.
    pub received: i64,
    /// Indicators it sent that could not be used.
    pub skipped: i64,
}

/// An indicator as stored.
#[derive(Debug, Clone, Serialize)]
pub struct StoredIndicator {
    /// STIX id.
    pub id: String,
    /// The source it came from.
    pub source: String,
    /// Its name.
    pub name: String,
    /// Its pattern.
    pub pattern: String,
    /// From when it counts (Unix time).
    pub valid_from: i64,
    /// Until when (none: no end).
    pub valid_until: Option<i64>,
    /// Withdrawn.
    pub revoked: bool,
    /// When it was received.
    pub added_at: i64,
    /// What it points at: (kind, value).
    pub observables: Vec<(String, String)>,
}

/// A delivered message a retro-hunt found.
#[derive(Debug, Clone, Serialize)]
pub struct Hit {
    /// Its id.
    pub id: i64,
    /// When it was found (Unix time).
    pub at: i64,
    /// The indicator that matched.
    pub indicator_id: String,
    /// The indicator's name.
    pub indicator_name: String,
    /// The indicator's source.
    pub source: String,
    /// The message's queue id.
    pub queue_id: String,
    /// The kind of what matched.
    pub kind: String,
    /// Its value.
    pub value: String,
    /// `proposed`, `recalling` (a recall was started), `failed`.
    pub state: String,
    /// The recall started for it.
    pub recall_id: String,
    /// Why a recall could not start.
    pub detail: String,
}

/// Stores `indicator` from `source` unless the same or a newer version is stored; says whether
/// it was new or changed.
pub(super) async fn upsert(
    store: &SqliteStore,
    source: &str,
    indicator: &Indicator,
    now: i64,
) -> Result<bool, StoreError> {
    let mut tx = store.writer().begin().await?;
    let stored: Option<i64> = sqlx::query("SELECT modified FROM intel_indicators WHERE id = ?")
        .bind(&indicator.id)
        .fetch_optional(&mut *tx)
        .await?
        .map(|r| r.get(0));
    if stored.is_some_and(|m| m >= indicator.modified) {
        return Ok(false);
    }
    sqlx::query(
        "INSERT OR REPLACE INTO intel_indicators
         (id, source, name, pattern, modified, valid_from, valid_until, revoked, added_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(&indicator.id)
    .bind(source)
    .bind(&indicator.name)
    .bind(&indicator.pattern)
    .bind(indicator.modified)
    .bind(indicator.valid_from)
    .bind(indicator.valid_until)
    .bind(indicator.revoked)
    .bind(now)
    .execute(&mut *tx)
    .await?;
    sqlx::query("DELETE FROM intel_observables WHERE indicator_id = ?")
        .bind(&indicator.id)
        .execute(&mut *tx)
        .await?;
    for o in &indicator.observables {
        sqlx::query("INSERT INTO intel_observables (indicator_id, kind, value) VALUES (?, ?, ?)")
            .bind(&indicator.id)
            .bind(o.kind())
            .bind(o.value())
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(true)
}

/// Whether an indicator with this id is stored.
pub(super) async fn known(store: &SqliteStore, id: &str) -> Result<bool, StoreError> {
    Ok(sqlx::query("SELECT 1 FROM intel_indicators WHERE id = ?")
        .bind(id)
        .fetch_optional(store.reader())
        .await?
        .is_some())
}

/// How many indicators are stored.
pub(super) async fn count(store: &SqliteStore) -> Result<usize, StoreError> {
    let n: i64 = sqlx::query("SELECT COUNT(*) FROM intel_indicators")
        .fetch_one(store.reader())
        .await?
        .get(0);
    Ok(n.max(0) as usize)
}

/// What the indicators in force at `now` point at, with their ids.
pub(super) async fn in_force(
    store: &SqliteStore,
    now: i64,
) -> Result<Vec<(String, Observable)>, StoreError> {
    let rows = sqlx::query(
        "SELECT o.indicator_id, o.kind, o.value FROM intel_observables o
         JOIN intel_indicators i ON i.id = o.indicator_id
         WHERE i.revoked = 0 AND i.valid_from <= ? AND (i.valid_until IS NULL OR i.valid_until > ?)",
    )
    .bind(now)
    .bind(now)
    .fetch_all(store.reader())
    .await?;
    Ok(rows
        .iter()
        .filter_map(|r| {
            let o = Observable::from_stored(r.get(1), r.get(2))?;
            Some((r.get::<String, _>(0), o))
        })
        .collect())
}

/// Forgets indicators that ended (or were revoked) before `before`, with their observables.
pub(super) async fn forget_ended(store: &SqliteStore, before: i64) -> Result<u64, StoreError> {
    let mut tx = store.writer().begin().await?;
    let ended =
        "SELECT id FROM intel_indicators WHERE valid_until < ?1 OR (revoked = 1 AND added_at < ?1)";
    sqlx::query(&format!(
        "DELETE FROM intel_observables WHERE indicator_id IN ({ended})"
    ))
    .bind(before)
    .execute(&mut *tx)
    .await?;
    let n = sqlx::query(
        "DELETE FROM intel_indicators WHERE valid_until < ?1 OR (revoked = 1 AND added_at < ?1)",
    )
    .bind(before)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    tx.commit().await?;
    Ok(n)
}

/// The cursor (`added_after`) source `name` goes on from ("" from the start).
pub(super) async fn cursor(store: &SqliteStore, name: &str) -> Result<String, StoreError> {
    Ok(
        sqlx::query("SELECT cursor FROM intel_sources WHERE name = ?")
            .bind(name)
            .fetch_optional(store.reader())
            .await?
            .map(|r| r.get(0))
            .unwrap_or_default(),
    )
}

/// Records a poll of (or an import into) source `name`: the indicators it gave and skipped, or
/// why it failed; `cursor` when it moved on.
pub(super) async fn record(
    store: &SqliteStore,
    name: &str,
    now: i64,
    outcome: Result<(u64, u64), &str>,
    cursor: Option<&str>,
) -> Result<(), StoreError> {
    sqlx::query("INSERT OR IGNORE INTO intel_sources (name) VALUES (?)")
        .bind(name)
        .execute(store.writer())
        .await?;
    let (received, skipped, error, ok_at) = match outcome {
        Ok((r, s)) => (r as i64, s as i64, "", now),
        Err(e) => (0, 0, e, 0),
    };
    sqlx::query(
        "UPDATE intel_sources SET last_poll = ?, last_ok = MAX(last_ok, ?), last_error = ?,
         received = received + ?, skipped = skipped + ?, cursor = COALESCE(?, cursor)
         WHERE name = ?",
    )
    .bind(now)
    .bind(ok_at)
    .bind(error.chars().take(500).collect::<String>())
    .bind(received)
    .bind(skipped)
    .bind(cursor)
    .bind(name)
    .execute(store.writer())
    .await?;
    Ok(())
}

/// Every source's state.
pub(super) async fn sources(store: &SqliteStore) -> Result<Vec<SourceState>, StoreError> {
    let rows = sqlx::query(
        "SELECT name, cursor, last_poll, last_ok, last_error, received, skipped
         FROM intel_sources ORDER BY name",
    )
    .fetch_all(store.reader())
    .await?;
    Ok(rows
        .iter()
        .map(|r| SourceState {
            name: r.get(0),
            cursor: r.get(1),
            last_poll: r.get(2),
            last_ok: r.get(3),
            last_error: r.get(4),
            received: r.get(5),
            skipped: r.get(6),
        })
        .collect())
}

/// The latest indicators whose name, id or observed value contains `search` (all when empty).
pub(super) async fn indicators(
    store: &SqliteStore,
    search: &str,
    limit: u32,
) -> Result<Vec<StoredIndicator>, StoreError> {
    let like = format!(
        "%{}%",
        search
            .replace('\\', "\\\\")
            .replace('%', "\\%")
            .replace('_', "\\_")
    );
    let rows = sqlx::query(
        "SELECT id, source, name, pattern, valid_from, valid_until, revoked, added_at
         FROM intel_indicators i
         WHERE ?1 = '' OR name LIKE ?2 ESCAPE '\\' OR id LIKE ?2 ESCAPE '\\'
            OR id IN (SELECT indicator_id FROM intel_observables WHERE value LIKE ?2 ESCAPE '\\')
         ORDER BY added_at DESC, id LIMIT ?3",
    )
    .bind(search)
    .bind(&like)
    .bind(limit)
    .fetch_all(store.reader())
    .await?;
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        let id: String = r.get(0);
        let observables = sqlx::query(
            "SELECT kind, value FROM intel_observables WHERE indicator_id = ? ORDER BY rowid",
        )
        .bind(&id)
        .fetch_all(store.reader())
        .await?
        .iter()
        .map(|o| (o.get(0), o.get(1)))
        .collect();
        out.push(StoredIndicator {
            id,
            source: r.get(1),
            name: r.get(2),
            pattern: r.get(3),
            valid_from: r.get(4),
            valid_until: r.get(5),
            revoked: r.get::<i64, _>(6) != 0,
            added_at: r.get(7),
            observables,
        });
    }
    Ok(out)
}

/// Records that `indicator_id` matched `queue_id` by `observable`, in `state`; None when that
/// was found before.
pub(super) async fn add_hit(
    store: &SqliteStore,
    now: i64,
    indicator_id: &str,
    queue_id: &str,
    observable: &Observable,
    state: &str,
) -> Result<Option<i64>, StoreError> {
    let done = sqlx::query(
        "INSERT OR IGNORE INTO intel_hits (at, indicator_id, queue_id, kind, value, state)
         VALUES (?, ?, ?, ?, ?, ?)",
    )
    .bind(now)
    .bind(indicator_id)
    .bind(queue_id)
    .bind(observable.kind())
    .bind(observable.value())
    .bind(state)
    .execute(store.writer())
    .await?;
    Ok((done.rows_affected() == 1).then(|| done.last_insert_rowid()))
}

/// Sets a hit's state, the recall started for it and what went wrong.
pub(super) async fn set_hit(
    store: &SqliteStore,
    id: i64,
    state: &str,
    recall_id: &str,
    detail: &str,
) -> Result<(), StoreError> {
    sqlx::query("UPDATE intel_hits SET state = ?, recall_id = ?, detail = ? WHERE id = ?")
        .bind(state)
        .bind(recall_id)
        .bind(detail)
        .bind(id)
        .execute(store.writer())
        .await?;
    Ok(())
}

const HITS: &str =
    "SELECT h.id, h.at, h.indicator_id, COALESCE(i.name, ''), COALESCE(i.source, ''),
     h.queue_id, h.kind, h.value, h.state, h.recall_id, h.detail
     FROM intel_hits h LEFT JOIN intel_indicators i ON i.id = h.indicator_id";

fn hit_of(r: &sqlx::sqlite::SqliteRow) -> Hit {
    Hit {
        id: r.get(0),
        at: r.get(1),
        indicator_id: r.get(2),
        indicator_name: r.get(3),
        source: r.get(4),
        queue_id: r.get(5),
        kind: r.get(6),
        value: r.get(7),
        state: r.get(8),
        recall_id: r.get(9),
        detail: r.get(10),
    }
}

/// The latest hits.
pub(super) async fn hits(store: &SqliteStore, limit: u32) -> Result<Vec<Hit>, StoreError> {
    let rows = sqlx::query(&format!("{HITS} ORDER BY h.id DESC LIMIT ?"))
        .bind(limit)
        .fetch_all(store.reader())
        .await?;
    Ok(rows.iter().map(hit_of).collect())
}

/// One hit.
pub(super) async fn hit(store: &SqliteStore, id: i64) -> Result<Option<Hit>, StoreError> {
    let row = sqlx::query(&format!("{HITS} WHERE h.id = ?"))
        .bind(id)
        .fetch_optional(store.reader())
        .await?;
    Ok(row.as_ref().map(hit_of))
}
