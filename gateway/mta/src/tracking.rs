//! Message tracking: one row per thing that happened to a message — received and queued,
//! quarantined, discarded, rejected at end of DATA, each delivery attempt's outcome per
//! recipient, released — searchable by time, sender, recipient, subject, client, verdict and
//! queue id. Rows are written by a background task in batches so the SMTP path never waits on
//! this log; if it falls far behind, events are dropped and counted rather than slowing mail.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::Serialize;
use sqlx::{QueryBuilder, Row, Sqlite, SqlitePool};
use tokio::sync::{mpsc, oneshot};

use crate::db::{Filter, StoreError};

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum EventKind {
    /// Accepted and queued for delivery.
    Queued,
    /// Accepted and held in quarantine.
    Quarantined,
    /// Accepted and dropped by policy.
    Discarded,
    /// Refused at end of DATA.
    Rejected,
    /// A recipient's copy was accepted by the next hop.
    Delivered,
    /// A delivery attempt failed temporarily; it will be retried.
    Deferred,
    /// A recipient failed permanently (a bounce goes to the sender).
    Bounced,
    /// Released from quarantine.
    Released,
    /// A recipient clicked a protected link (the detail says where and what it was judged).
    Clicked,
}

impl EventKind {
    /// Lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Queued => "queued",
            EventKind::Quarantined => "quarantined",
            EventKind::Discarded => "discarded",
            EventKind::Rejected => "rejected",
            EventKind::Delivered => "delivered",
            EventKind::Deferred => "deferred",
            EventKind::Bounced => "bounced",
            EventKind::Released => "released",
            EventKind::Clicked => "clicked",
        }
    }
}

/// One event, as recorded.
#[derive(Debug, Clone, Serialize)]
pub struct Event {
    /// Unix time.
    pub at: i64,
    /// Queue id.
    pub queue_id: String,
    /// What happened.
    pub kind: EventKind,
    /// Envelope sender.
    pub mail_from: String,
    /// Recipients concerned, comma-separated.
    pub rcpts: String,
    /// Subject, when known.
    pub subject: String,
    /// Connecting client.
    pub client_ip: String,
    /// Verdict class, when scanned.
    pub class: String,
    /// Verdict score.
    pub score: f64,
    /// Reply, reason or evidence.
    pub detail: String,
    /// `inbound`, `outbound` or `internal` on the events of intake; empty on later ones (the
    /// message's first event says it).
    pub direction: String,
}

impl Event {
    /// The queue id a release's copy is delivered under (its detail ends `as <queue id>`, as
    /// `quarantine::Released::event` writes it).
    pub fn released_copy(&self) -> Option<&str> {
        let (_, id) = self.detail.rsplit_once(" as ")?;
        (self.kind == EventKind::Released && crate::queue::spool::is_queue_id(id)).then_some(id)
    }
}

/// A recorded event with its sequence number.
#[derive(Debug, Clone, Serialize)]
pub struct Recorded {
    /// Order of recording.
    pub seq: i64,
    /// The event.
    #[serde(flatten)]
    pub event: Event,
}

/// Most events one search returns.
pub const MAX_PAGE: u32 = 500;

/// A search; every field narrows it, text fields match substrings.
#[derive(Debug, Clone, Default)]
pub struct Query {
    /// At or after (Unix time).
    pub since: Option<i64>,
    /// Before (Unix time).
    pub until: Option<i64>,
    /// Sender contains.
    pub sender: Option<String>,
    /// Recipients contain.
    pub rcpt: Option<String>,
    /// Subject contains.
    pub subject: Option<String>,
    /// Client address equals.
    pub client_ip: Option<String>,
    /// Verdict class equals.
    pub class: Option<String>,
    /// Event kind equals.
    pub kind: Option<String>,
    /// Queue id equals.
    pub queue_id: Option<String>,
    /// Queue id starts with (upper-case letters and digits only; others are dropped).
    pub queue_prefix: Option<String>,
    /// Queue id is one of these (the messages another index found).
    pub queue_ids: Option<Vec<String>>,
    /// Direction equals (`inbound`, `outbound`, `internal`).
    pub direction: Option<String>,
    /// Only events with a recipient in this domain (a per-domain administrator's scope).
    pub domain: Option<String>,
    /// Events to skip.
    pub offset: u32,
    /// Events to return, at most [`MAX_PAGE`].
    pub limit: u32,
}

/// One page of events, newest first.
#[derive(Debug, Clone, Serialize)]
pub struct Page {
    /// Matching events in all.
    pub total: i64,
    /// This page.
    pub events: Vec<Recorded>,
}

enum Request {
    Record(Event),
    Flush(oneshot::Sender<()>),
    Purge(i64, oneshot::Sender<Result<u64, sqlx::Error>>),
}

/// One message as the tracking list shows it: its first event (how it came in, what the
/// scanner said) and its latest (where it stands now).
#[derive(Debug, Clone, Serialize)]
pub struct MessageRow {
    /// The first event.
    pub first: Event,
    /// The latest event.
    pub latest: Event,
    /// Events recorded for it.
    pub events: i64,
}

/// One page of messages, newest first.
#[derive(Debug, Clone, Serialize)]
pub struct MessagePage {
    /// Matching messages in all.
    pub total: i64,
    /// This page.
    pub messages: Vec<MessageRow>,
}

/// Released copies a timeline follows at most.
const MAX_COPIES: usize = 20;

/// Most messages one page lists.
pub const MAX_MESSAGES: u32 = 100;

/// The tracking log: cheap to clone, shared by intake, delivery and the console.
#[derive(Clone)]
pub struct Tracker {
    pool: SqlitePool,
    tx: mpsc::Sender<Request>,
    dropped: Arc<AtomicU64>,
}

/// Events waiting for the writer before new ones are dropped.
const BACKLOG: usize = 65_536;

const SCHEMA: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS events (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        at INTEGER NOT NULL,
        queue_id TEXT NOT NULL,
        kind TEXT NOT NULL,
        mail_from TEXT NOT NULL,
        rcpts TEXT NOT NULL,
        subject TEXT NOT NULL,
        client_ip TEXT NOT NULL,
        class TEXT NOT NULL,
        score REAL NOT NULL,
        detail TEXT NOT NULL
    )",
    "CREATE INDEX IF NOT EXISTS events_at ON events (at)",
    "CREATE INDEX IF NOT EXISTS events_queue_id ON events (queue_id)",
];

impl Tracker {
    /// Opens (creating) `data_dir/tracking.db` and starts the writer.
    pub async fn open(data_dir: &Path) -> Result<Tracker, StoreError> {
        let pools = crate::db::Database {
            path: &data_dir.join("tracking.db"),
            // A log: losing the last instant of it in a power cut is acceptable.
            durability: crate::db::Durability::Crash,
            readers: 2,
            schema: &[SCHEMA],
            added_columns: &[("events", "direction", "TEXT NOT NULL DEFAULT ''")],
            settings: &[],
        }
        .open()
        .await?;
        let (writer, pool) = (pools.writer, pools.reader);
        let (tx, rx) = mpsc::channel(BACKLOG);
        tokio::spawn(write_loop(rx, writer));
        Ok(Tracker {
            pool,
            tx,
            dropped: Arc::default(),
        })
    }

    /// Records an event without waiting; dropped (and counted) if the writer is far behind.
    pub fn record(&self, event: Event) {
        if self.tx.try_send(Request::Record(event)).is_err() {
            let n = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
            if n.is_power_of_two() {
                tracing::warn!(dropped = n, "tracking log behind; events dropped");
            }
        }
    }

    /// Waits until every event recorded so far is written (command-line tools, tests).
    pub async fn flush(&self) {
        let (done, wait) = oneshot::channel();
        if self.tx.send(Request::Flush(done)).await.is_ok() {
            let _ = wait.await;
        }
    }

    /// One page of matching events, newest first.
    pub async fn search(&self, q: &Query) -> Result<Page, StoreError> {
        let total: i64 = filtered("SELECT COUNT(*)", q)
            .build()
            .fetch_one(&self.pool)
            .await?
            .try_get(0)?;
        let mut b = filtered("SELECT *", q);
        b.push(" ORDER BY seq DESC LIMIT ")
            .push_bind(i64::from(q.limit.min(MAX_PAGE)))
            .push(" OFFSET ")
            .push_bind(i64::from(q.offset));
        let rows = b.build().fetch_all(&self.pool).await?;
        let events = rows.iter().map(recorded).collect::<Result<_, _>>()?;
        Ok(Page { total, events })
    }

    /// One page of the messages any of whose events match, newest first. A message found by
    /// one event (its subject is on the first) still shows its latest state.
    pub async fn messages(&self, q: &Query) -> Result<MessagePage, StoreError> {
        let total: i64 = filtered("SELECT COUNT(DISTINCT queue_id)", q)
            .build()
            .fetch_one(&self.pool)
            .await?
            .try_get(0)?;
        let mut b = filtered("SELECT queue_id, MIN(seq) AS first", q);
        b.push(" GROUP BY queue_id ORDER BY first DESC LIMIT ")
            .push_bind(i64::from(q.limit.min(MAX_MESSAGES)))
            .push(" OFFSET ")
            .push_bind(i64::from(q.offset));
        let ids: Vec<String> = b
            .build()
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|r| r.try_get("queue_id"))
            .collect::<Result<_, _>>()?;
        // Each message's whole record (within the caller's domain), not only what matched.
        let whole = Query {
            domain: q.domain.clone(),
            queue_ids: Some(ids),
            ..Query::default()
        };
        let mut b = filtered(
            "SELECT queue_id, MIN(seq) AS first, MAX(seq) AS latest, COUNT(*) AS n",
            &whole,
        );
        b.push(" GROUP BY queue_id ORDER BY first DESC");
        let spans: Vec<(i64, i64, i64)> = b
            .build()
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|r| Ok((r.try_get("first")?, r.try_get("latest")?, r.try_get("n")?)))
            .collect::<Result<_, sqlx::Error>>()?;
        let mut b = QueryBuilder::<Sqlite>::new("SELECT * FROM events WHERE seq IN (");
        let mut seqs = b.separated(", ");
        for (first, latest, _) in &spans {
            seqs.push_bind(*first);
            seqs.push_bind(*latest);
        }
        seqs.push_unseparated(")");
        let mut events: std::collections::HashMap<i64, Event> = if spans.is_empty() {
            Default::default()
        } else {
            b.build()
                .fetch_all(&self.pool)
                .await?
                .iter()
                .map(|r| recorded(r).map(|e| (e.seq, e.event)))
                .collect::<Result<_, _>>()?
        };
        let mut messages = Vec::with_capacity(spans.len());
        for (first, latest, n) in spans {
            let latest_event = events.get(&latest).cloned();
            if let (Some(first), Some(latest)) = (events.remove(&first), latest_event) {
                messages.push(MessageRow {
                    first,
                    latest,
                    events: n,
                });
            }
        }
        Ok(MessagePage { total, messages })
    }

    /// A message's events oldest first, with those of the copies released from it (they are
    /// delivered under queue ids of their own), within `domain` when given.
    pub async fn timeline(
        &self,
        queue_id: &str,
        domain: Option<&str>,
    ) -> Result<Vec<Recorded>, StoreError> {
        let of = |ids: Vec<String>| Query {
            queue_ids: Some(ids),
            domain: domain.map(str::to_owned),
            limit: MAX_PAGE,
            ..Query::default()
        };
        let mut events = self.search(&of(vec![queue_id.to_owned()])).await?.events;
        let copies: Vec<String> = events
            .iter()
            .filter_map(|e| e.event.released_copy().map(str::to_owned))
            .take(MAX_COPIES)
            .collect();
        if !copies.is_empty() {
            events.extend(self.search(&of(copies)).await?.events);
        }
        events.sort_by_key(|e| e.seq);
        Ok(events)
    }

    /// Deletes events older than `before` (Unix time); returns how many.
    pub async fn purge(&self, before: i64) -> Result<u64, StoreError> {
        let (done, wait) = oneshot::channel();
        self.tx
            .send(Request::Purge(before, done))
            .await
            .map_err(|_| StoreError::Corrupt("tracking writer stopped".into()))?;
        wait.await
            .map_err(|_| StoreError::Corrupt("tracking writer stopped".into()))?
            .map_err(StoreError::from)
    }
}

/// What the dashboard shows for a time range: messages by verdict class over time and in all,
/// what happened to them, and who sends and receives the mail that is stopped.
#[derive(Debug, Clone, Serialize)]
pub struct Stats {
    /// `(bucket start, class, messages)`, oldest first; class `clean` for unscanned mail too.
    pub series: Vec<(i64, String, i64)>,
    /// Messages per verdict class.
    pub classes: Vec<(String, i64)>,
    /// Events per kind (delivered, deferred, bounced, quarantined, rejected…).
    pub kinds: Vec<(String, i64)>,
    /// Envelope senders of the most stopped messages (quarantined, refused or dropped).
    pub top_senders: Vec<(String, i64)>,
    /// Their domains.
    pub top_sender_domains: Vec<(String, i64)>,
    /// Recipients of the most stopped messages.
    pub top_targets: Vec<(String, i64)>,
}

/// The events that record a message's arrival and verdict.
const ARRIVALS: &str = "'queued', 'quarantined', 'rejected', 'discarded'";
/// Those that stop it.
const STOPPED: &str = "'quarantined', 'rejected', 'discarded'";

impl Tracker {
    /// Dashboard figures since `since` in buckets of `bucket` seconds that begin on the
    /// hours and days of a zone `offset` seconds east of UTC, within `domain` when given.
    pub async fn stats(
        &self,
        since: i64,
        bucket: i64,
        offset: i64,
        domain: Option<&str>,
    ) -> Result<Stats, StoreError> {
        let scope = Query {
            since: Some(since),
            domain: domain.map(str::to_owned),
            ..Query::default()
        };
        let class = "CASE WHEN class = '' THEN 'clean' ELSE class END";
        let mut b = filtered(
            &format!(
                "SELECT ((at + {offset}) / {bucket}) * {bucket} - {offset} AS t, {class} AS c, COUNT(*) AS n"
            ),
            &scope,
        );
        b.push(format!(
            " AND kind IN ({ARRIVALS}) GROUP BY t, c ORDER BY t"
        ));
        let series = b
            .build()
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|r| Ok((r.try_get("t")?, r.try_get("c")?, r.try_get("n")?)))
            .collect::<Result<_, sqlx::Error>>()?;
        let grouped = |column: &str, kinds: Option<&str>, limit: u32| {
            let mut b = filtered(&format!("SELECT {column} AS who, COUNT(*) AS n"), &scope);
            if let Some(kinds) = kinds {
                b.push(format!(" AND kind IN ({kinds})"));
            }
            b.push(format!(
                " AND {column} != '' GROUP BY who ORDER BY n DESC LIMIT {limit}"
            ));
            b
        };
        let mut out = Vec::new();
        for (column, kinds, limit) in [
            (class, Some(ARRIVALS), 20),
            ("kind", None, 20),
            ("mail_from", Some(STOPPED), 10),
            (
                "lower(substr(mail_from, instr(mail_from, '@') + 1))",
                Some(STOPPED),
                10,
            ),
            ("rcpts", Some(STOPPED), 10),
        ] {
            out.push(pairs(
                grouped(column, kinds, limit)
                    .build()
                    .fetch_all(&self.pool)
                    .await?,
            )?);
        }
        let [classes, kinds, top_senders, top_sender_domains, top_targets] =
            <[_; 5]>::try_from(out).map_err(|_| StoreError::Corrupt("dashboard".into()))?;
        Ok(Stats {
            series,
            classes,
            kinds,
            top_senders,
            top_sender_domains,
            top_targets,
        })
    }
}

fn pairs(rows: Vec<sqlx::sqlite::SqliteRow>) -> Result<Vec<(String, i64)>, StoreError> {
    rows.iter()
        .map(|r| Ok((r.try_get("who")?, r.try_get("n")?)))
        .collect()
}

fn filtered<'a>(select: &str, q: &'a Query) -> QueryBuilder<'a, Sqlite> {
    Filter::new(select, "events")
        .time_range("at", q.since, q.until)
        .contains(&["mail_from"], q.sender.as_deref())
        .contains(&["rcpts"], q.rcpt.as_deref())
        .contains(&["subject"], q.subject.as_deref())
        .equals("client_ip", q.client_ip.clone())
        .equals("class", q.class.clone())
        .equals("kind", q.kind.clone())
        .equals("queue_id", q.queue_id.clone())
        .condition(
            " AND queue_id LIKE ",
            q.queue_prefix.as_ref().map(|p| {
                let p: String = p.chars().filter(char::is_ascii_alphanumeric).collect();
                format!("{}%", p.to_ascii_uppercase())
            }),
            "",
        )
        .one_of("queue_id", q.queue_ids.as_deref())
        .equals("direction", q.direction.clone())
        // `,a@x,b@y,` LIKE `%@x,%`: the domain must end where the address ends, or the
        // administrator of example.co would see example.com's mail.
        .condition(
            " AND ',' || rcpts || ',' LIKE ",
            q.domain
                .as_ref()
                .map(|d| format!("%@{},%", d.replace(['%', '_', '\\', ','], ""))),
            " ESCAPE '\\'",
        )
        .into_builder()
}

fn recorded(row: &sqlx::sqlite::SqliteRow) -> Result<Recorded, StoreError> {
    let kind_name: String = row.try_get("kind")?;
    let kind = [
        EventKind::Queued,
        EventKind::Quarantined,
        EventKind::Discarded,
        EventKind::Rejected,
        EventKind::Delivered,
        EventKind::Deferred,
        EventKind::Bounced,
        EventKind::Released,
        EventKind::Clicked,
    ]
    .into_iter()
    .find(|k| k.as_str() == kind_name)
    .ok_or(StoreError::Corrupt(kind_name))?;
    Ok(Recorded {
        seq: row.try_get("seq")?,
        event: Event {
            at: row.try_get("at")?,
            queue_id: row.try_get("queue_id")?,
            kind,
            mail_from: row.try_get("mail_from")?,
            rcpts: row.try_get("rcpts")?,
            subject: row.try_get("subject")?,
            client_ip: row.try_get("client_ip")?,
            class: row.try_get("class")?,
            score: row.try_get("score")?,
            detail: row.try_get("detail")?,
            direction: row.try_get("direction")?,
        },
    })
}

/// Most events written in one transaction.
const BATCH: usize = 512;

async fn write_loop(mut rx: mpsc::Receiver<Request>, writer: SqlitePool) {
    let mut batch = Vec::with_capacity(BATCH);
    while rx.recv_many(&mut batch, BATCH).await > 0 {
        let mut events = Vec::new();
        let mut flushes = Vec::new();
        let mut purges = Vec::new();
        for r in batch.drain(..) {
            match r {
                Request::Record(e) => events.push(e),
                Request::Flush(done) => flushes.push(done),
                Request::Purge(before, done) => purges.push((before, done)),
            }
        }
        if !events.is_empty()
            && let Err(e) = write(&writer, &events).await
        {
            tracing::error!(error = %e, count = events.len(), "cannot write tracking events");
        }
        for done in flushes {
            let _ = done.send(());
        }
        for (before, done) in purges {
            let deleted = sqlx::query("DELETE FROM events WHERE at < ?")
                .bind(before)
                .execute(&writer)
                .await
                .map(|r| r.rows_affected());
            let _ = done.send(deleted);
        }
    }
}

async fn write(writer: &SqlitePool, events: &[Event]) -> Result<(), sqlx::Error> {
    let mut tx = writer.begin().await?;
    for chunk in events.chunks(100) {
        let mut b = QueryBuilder::<Sqlite>::new(
            "INSERT INTO events (at, queue_id, kind, mail_from, rcpts, subject, client_ip, class,
                score, detail, direction) ",
        );
        b.push_values(chunk, |mut row, e| {
            row.push_bind(e.at)
                .push_bind(&e.queue_id)
                .push_bind(e.kind.as_str())
                .push_bind(&e.mail_from)
                .push_bind(&e.rcpts)
                .push_bind(&e.subject)
                .push_bind(&e.client_ip)
                .push_bind(&e.class)
                .push_bind(e.score)
                .push_bind(&e.detail)
                .push_bind(&e.direction);
        });
        b.build().persistent(false).execute(&mut *tx).await?;
    }
    tx.commit().await
}

/// Deletes events past `retention_days` once a day, forever.
/// The hunt index (`hunt`) keeps messages as long.
pub async fn purge_periodically(
    tracker: Tracker,
    hunt: Option<crate::hunt::HuntIndex>,
    retention_days: u32,
) {
    let mut tick = tokio::time::interval(Duration::from_secs(86_400));
    loop {
        tick.tick().await;
        let before = chrono::Utc::now().timestamp() - i64::from(retention_days) * 86_400;
        match tracker.purge(before).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(count = n, "old tracking events deleted"),
            Err(e) => tracing::error!(error = %e, "cannot purge tracking events"),
        }
        if let Some(hunt) = &hunt {
            match hunt.purge(before).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(count = n, "old messages dropped from the hunt index"),
                Err(e) => tracing::error!(error = %e, "cannot purge the hunt index"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(at: i64, kind: EventKind, rcpts: &str, subject: &str) -> Event {
        Event {
            at,
            queue_id: format!("Q{at}"),
            kind,
            mail_from: "sender@outside.test".into(),
            rcpts: rcpts.into(),
            subject: subject.into(),
            client_ip: "192.0.2.7".into(),
            class: "spam".into(),
            score: 7.5,
            direction: "inbound".into(),
            detail: String::new(),
        }
    }

    /// A message is one row however many events it has, found by any of them, showing its
    /// first event and its latest; queue ids are found by prefix.
    #[tokio::test]
    async fn messages_are_listed_once_with_their_latest_state() {
        let dir = tempfile::tempdir().unwrap();
        let t = Tracker::open(dir.path()).await.unwrap();
        let at = |queue_id: &str, at: i64, kind: EventKind, subject: &str| Event {
            queue_id: queue_id.into(),
            ..event(at, kind, "a@example.com", subject)
        };
        t.record(at("01AAA", 10, EventKind::Queued, "quarterly report"));
        t.record(at("01BBB", 11, EventKind::Quarantined, "invoice"));
        t.record(at("01AAA", 12, EventKind::Deferred, ""));
        t.record(at("01AAA", 13, EventKind::Delivered, ""));
        t.record(at("01BBB", 14, EventKind::Released, ""));
        t.flush().await;
        let q = |f: fn(&mut Query)| {
            let mut q = Query {
                limit: 10,
                ..Query::default()
            };
            f(&mut q);
            q
        };
        let all = t.messages(&q(|_| {})).await.unwrap();
        assert_eq!(all.total, 2);
        let rows: Vec<(&str, EventKind, i64)> = all
            .messages
            .iter()
            .map(|m| (m.first.queue_id.as_str(), m.latest.kind, m.events))
            .collect();
        assert_eq!(
            rows,
            [
                ("01BBB", EventKind::Released, 2),
                ("01AAA", EventKind::Delivered, 3)
            ]
        );
        // The subject is on the first event only; the row still says it was delivered.
        let found = t
            .messages(&q(|q| q.subject = Some("quarterly".into())))
            .await
            .unwrap();
        assert_eq!(found.total, 1);
        assert_eq!(found.messages[0].first.subject, "quarterly report");
        assert_eq!(found.messages[0].latest.kind, EventKind::Delivered);
        let by_prefix = t
            .messages(&q(|q| q.queue_prefix = Some("01b".into())))
            .await
            .unwrap();
        assert_eq!(by_prefix.messages[0].first.queue_id, "01BBB");
        let wildcard = t
            .messages(&q(|q| q.queue_prefix = Some("%".into())))
            .await
            .unwrap();
        assert_eq!(
            wildcard.total, 2,
            "a prefix of no letters matches all, not a pattern"
        );
        let none = t
            .messages(&q(|q| q.queue_ids = Some(Vec::new())))
            .await
            .unwrap();
        assert_eq!((none.total, none.messages.len()), (0, 0));
    }

    /// Finding 8 of the hardening review: the domain filter had no closing delimiter, so the
    /// administrator of example.co saw example.com's and example.com.cn's events.
    #[tokio::test]
    async fn a_domain_scope_matches_the_whole_domain_only() {
        let dir = tempfile::tempdir().unwrap();
        let t = Tracker::open(dir.path()).await.unwrap();
        for (at, rcpts) in [
            (1, "a@example.com"),
            (2, "b@example.com.cn"),
            (3, "c@other.test,d@example.co"),
            (4, "e@EXAMPLE.CO"),
        ] {
            t.record(event(at, EventKind::Queued, rcpts, ""));
        }
        t.flush().await;
        let scoped = |domain: &str| Query {
            limit: 10,
            domain: Some(domain.into()),
            ..Query::default()
        };
        let seen = t.search(&scoped("example.co")).await.unwrap();
        let mut at: Vec<i64> = seen.events.iter().map(|e| e.event.at).collect();
        at.sort();
        assert_eq!(at, [3, 4]);
        assert_eq!(t.search(&scoped("example.com")).await.unwrap().total, 1);
        let stats = t.stats(0, 3600, 0, Some("example.co")).await.unwrap();
        let counted: i64 = stats.series.iter().map(|(_, _, n)| n).sum();
        assert_eq!(counted, 2, "the dashboard's scope too");
        assert_eq!(stats.classes, [("spam".to_owned(), 2)]);
        assert_eq!(stats.kinds, [("queued".to_owned(), 2)]);
    }

    #[tokio::test]
    async fn search_narrows_and_purge_forgets() {
        let dir = tempfile::tempdir().unwrap();
        let t = Tracker::open(dir.path()).await.unwrap();
        t.record(event(
            100,
            EventKind::Queued,
            "a@example.com",
            "invoice 100%",
        ));
        t.record(event(
            200,
            EventKind::Quarantined,
            "b@other.test,c@example.com",
            "hi",
        ));
        t.record(event(300, EventKind::Delivered, "a@example.com", ""));
        t.flush().await;
        let all = t
            .search(&Query {
                limit: 10,
                ..Query::default()
            })
            .await
            .unwrap();
        assert_eq!(all.total, 3);
        assert_eq!(all.events[0].event.at, 300, "newest first");
        let q = |f: fn(&mut Query)| {
            let mut q = Query {
                limit: 10,
                ..Query::default()
            };
            f(&mut q);
            q
        };
        let n = |p: Page| p.events.len();
        assert_eq!(
            n(t.search(&q(|q| q.subject = Some("100%".into())))
                .await
                .unwrap()),
            1
        );
        assert_eq!(
            n(t.search(&q(|q| q.subject = Some("%".into())))
                .await
                .unwrap()),
            1
        );
        assert_eq!(
            n(t.search(&q(|q| q.domain = Some("other.test".into())))
                .await
                .unwrap()),
            1
        );
        assert_eq!(
            n(t.search(&q(|q| q.domain = Some("example.com".into())))
                .await
                .unwrap()),
            3
        );
        assert_eq!(
            n(t.search(&q(|q| q.kind = Some("delivered".into())))
                .await
                .unwrap()),
            1
        );
        assert_eq!(n(t.search(&q(|q| q.since = Some(150))).await.unwrap()), 2);
        assert_eq!(
            n(t.search(&q(|q| q.sender = Some("' OR '1'='1".into())))
                .await
                .unwrap()),
            0
        );
        assert_eq!(t.purge(250).await.unwrap(), 2);
        assert_eq!(t.search(&q(|_| {})).await.unwrap().total, 1);
    }
}
