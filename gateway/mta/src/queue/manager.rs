//! The queue manager: picks due messages, delivers each recipient domain through
//! [`crate::outbound`], records outcomes, schedules retries with exponential backoff and turns
//! permanent failures (and expiry) into bounces.
//!
//! A crash between the next hop's final 250 and our commit of that outcome makes the message
//! be sent once more after restart: at most one duplicate, never a loss.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;

use super::store::{MessageKind, MessageState, NewMessage, QueuedMessage, RcptOutcome, RcptStatus};
use super::{Completion, Queue, QueueError, dsn};
use crate::config::DeliveryConfig;
use crate::metrics::Metrics;
use crate::outbound::Outbound;
use crate::tracking::{Event, EventKind, Tracker};

/// How often the store is polled for due retries (new mail wakes the manager at once).
const POLL: Duration = Duration::from_secs(1);

/// Current Unix time in seconds.
pub fn unix_now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// Delay before attempt number `attempts + 1`.
pub fn backoff(config: &DeliveryConfig, attempts: u32) -> u64 {
    let factor = 1u64 << attempts.min(20);
    config
        .retry_initial_secs
        .saturating_mul(factor)
        .min(config.retry_max_secs)
}

/// A message to attempt: just committed (already in memory) or found due in the store.
enum Work {
    Loaded(QueuedMessage),
    Due(String),
}

impl Work {
    fn id(&self) -> &str {
        match self {
            Work::Loaded(m) => &m.id,
            Work::Due(id) => id,
        }
    }
}

/// Schedules and runs deliveries.
pub struct Manager {
    queue: Arc<Queue>,
    outbound: Arc<Outbound>,
    config: DeliveryConfig,
    hostname: String,
    metrics: Arc<Metrics>,
    tracker: Tracker,
    in_flight: Mutex<HashSet<String>>,
    /// Outcomes the store could not record (e.g. disk full), applied before the next attempt
    /// so that delivered recipients are not sent to again.
    unrecorded: Mutex<HashMap<String, Vec<RcptOutcome>>>,
    slots: Arc<Semaphore>,
}

impl Manager {
    /// Creates a manager; call [`Manager::run`] to start it.
    pub fn new(
        queue: Arc<Queue>,
        outbound: Arc<Outbound>,
        config: DeliveryConfig,
        hostname: String,
        metrics: Arc<Metrics>,
        tracker: Tracker,
    ) -> Arc<Self> {
        let slots = Arc::new(Semaphore::new(config.max_concurrency));
        Arc::new(Self {
            queue,
            outbound,
            config,
            hostname,
            metrics,
            tracker,
            in_flight: Mutex::default(),
            unrecorded: Mutex::default(),
            slots,
        })
    }

    fn in_flight(&self) -> std::sync::MutexGuard<'_, HashSet<String>> {
        self.in_flight.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs forever: new messages are started as soon as they are committed; the store is
    /// scanned for due retries once per poll interval.
    pub async fn run(self: Arc<Self>) {
        let mut last_scan: Option<Instant> = None;
        loop {
            let mut work: Vec<Work> = self
                .queue
                .take_fresh()
                .into_iter()
                .map(Work::Loaded)
                .collect();
            if last_scan.is_none_or(|t| t.elapsed() >= POLL) {
                last_scan = Some(Instant::now());
                match self.queue.store().due(unix_now(), 1000).await {
                    Ok(due) => work.extend(due.into_iter().map(Work::Due)),
                    Err(e) => tracing::error!(error = %e, "cannot read the queue"),
                }
            }
            for item in work {
                let id = item.id().to_owned();
                if !self.in_flight().insert(id.clone()) {
                    continue;
                }
                let Ok(permit) = self.slots.clone().acquire_owned().await else {
                    return;
                };
                let me = self.clone();
                tokio::spawn(async move {
                    me.process(item).await;
                    me.in_flight().remove(&id);
                    drop(permit);
                });
            }
            let wait = POLL.saturating_sub(last_scan.map(|t| t.elapsed()).unwrap_or_default());
            let _ = tokio::time::timeout(wait, self.queue.woken()).await;
        }
    }

    /// One delivery attempt for one message.
    async fn process(&self, work: Work) {
        let started = Instant::now();
        let mut message = match work {
            Work::Loaded(m) => m,
            Work::Due(id) => match self.queue.store().get(&id).await {
                Ok(Some(m)) if m.state == MessageState::Active => m,
                Ok(_) => return,
                Err(e) => {
                    tracing::error!(queue_id = %id, error = %e, "cannot load message");
                    return;
                }
            },
        };
        let id = message.id.clone();
        let id = id.as_str();
        let earlier = self.unrecorded().remove(id).unwrap_or_default();
        for o in &earlier {
            if let Some(r) = message.rcpts.iter_mut().find(|r| r.address == o.address) {
                r.status = o.status;
                r.last_reply = Some(o.reply.clone());
            }
        }
        let data = match self.queue.spool().read(id) {
            Ok(d) => Arc::new(d),
            // Delivered earlier but not yet recorded (see `finish`): only the row is left.
            Err(e)
                if e.kind() == std::io::ErrorKind::NotFound
                    && message
                        .rcpts
                        .iter()
                        .all(|r| r.status == RcptStatus::Delivered) =>
            {
                if let Err(e) = self.finish(&message, &[], &[]).await {
                    tracing::error!(queue_id = %id, error = %e, "cannot record delivery outcome; kept in memory");
                    self.unrecorded().insert(id.to_owned(), earlier);
                }
                return;
            }
            // Any other failure to read — a sealed file that does not open (damaged, or sealed
            // under another key), permissions, I/O errors — may pass: keep the message for an
            // administrator and look again in an hour, never drop it.
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                let what = if e.kind() == std::io::ErrorKind::InvalidData {
                    "spool file does not unseal; message kept, retried in an hour"
                } else {
                    "spool file unreadable; message kept, retried in an hour"
                };
                tracing::error!(queue_id = %id, error = %e, "{what}");
                let later = unix_now() + 3600;
                let _ = self.queue.store().reschedule(Some(id), later).await;
                return;
            }
            Err(e) => {
                tracing::error!(queue_id = %id, error = %e, "spool file missing; message dropped from queue");
                let _ = self.queue.store().delete(id).await;
                return;
            }
        };
        let mut by_domain: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for r in message
            .rcpts
            .iter()
            .filter(|r| r.status == RcptStatus::Pending)
        {
            let domain = r
                .address
                .rsplit_once('@')
                .map(|(_, d)| d.to_ascii_lowercase())
                .unwrap_or_default();
            by_domain.entry(domain).or_default().push(r.address.clone());
        }
        let mut outcomes = Vec::new();
        for (domain, rcpts) in by_domain {
            outcomes.extend(self.outbound.deliver(&domain, &message, &data, rcpts).await);
        }
        let expired = unix_now() - message.received_at >= self.config.max_lifetime_secs as i64;
        if expired {
            for o in outcomes
                .iter_mut()
                .filter(|o| o.status == RcptStatus::Pending)
            {
                o.status = RcptStatus::Failed;
                o.reply = format!("delivery time expired; last error: {}", o.reply);
            }
        }
        for o in &outcomes {
            self.metrics.delivery(match o.status {
                RcptStatus::Delivered => "delivered",
                RcptStatus::Pending => "deferred",
                RcptStatus::Failed => "failed",
            });
        }
        self.log_attempt(&message, &outcomes, started.elapsed());
        let still_pending = message.rcpts.iter().any(|r| {
            r.status == RcptStatus::Pending
                && outcomes
                    .iter()
                    .find(|o| o.address == r.address)
                    .is_none_or(|o| o.status == RcptStatus::Pending)
        });
        let result = if still_pending {
            let next = unix_now() + backoff(&self.config, message.attempts) as i64;
            self.queue
                .store()
                .record(id, &outcomes, next)
                .await
                .map_err(QueueError::from)
        } else {
            self.finish(&message, &data, &outcomes).await
        };
        if let Err(e) = result {
            tracing::error!(queue_id = %id, error = %e, "cannot record delivery outcome; kept in memory");
            let mut all = earlier;
            all.extend(outcomes);
            self.unrecorded().insert(id.to_owned(), all);
        }
    }

    fn unrecorded(&self) -> std::sync::MutexGuard<'_, HashMap<String, Vec<RcptOutcome>>> {
        self.unrecorded.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Removes a finished message, queueing a bounce for failed recipients first.
    async fn finish(
        &self,
        message: &QueuedMessage,
        data: &[u8],
        outcomes: &[RcptOutcome],
    ) -> Result<(), QueueError> {
        let mut failed: Vec<RcptOutcome> = message
            .rcpts
            .iter()
            .filter(|r| r.status == RcptStatus::Failed)
            .map(|r| RcptOutcome {
                address: r.address.clone(),
                status: RcptStatus::Failed,
                reply: r.last_reply.clone().unwrap_or_default(),
            })
            .collect();
        failed.extend(
            outcomes
                .iter()
                .filter(|o| o.status == RcptStatus::Failed)
                .cloned(),
        );
        let bounce = if !failed.is_empty()
            && message.kind == MessageKind::Mail
            && !message.mail_from.is_empty()
        {
            self.spool_bounce(message, data, &failed)
        } else {
            if !failed.is_empty() {
                tracing::warn!(queue_id = %message.id, "undeliverable bounce or null-sender message discarded");
            }
            None
        };
        let completion = Completion {
            id: message.id.clone(),
            bounce,
        };
        let bounce_id = completion.bounce.as_ref().map(|b| b.id.clone());
        if let Err(e) = self.queue.complete(completion).await {
            // Disk full can stop the store from recording that a message is done. If nothing
            // needs its file any more (no bounce to quote it), free the space now: the outcome
            // is kept in memory and the row is removed at the next attempt.
            if failed.is_empty() {
                let _ = self.queue.spool().remove(&message.id);
            } else if let Some(b) = &bounce_id {
                let _ = self.queue.spool().remove(b);
            }
            return Err(e);
        }
        if let Err(e) = self.queue.spool().remove(&message.id) {
            tracing::warn!(queue_id = %message.id, error = %e, "cannot remove spool file");
        }
        Ok(())
    }

    /// Writes the bounce file; its row is committed together with the original's removal.
    fn spool_bounce(
        &self,
        message: &QueuedMessage,
        data: &[u8],
        failed: &[RcptOutcome],
    ) -> Option<NewMessage> {
        let id = ulid::Ulid::new().to_string();
        let body = dsn::build(&self.hostname, &id, message, data, failed);
        let spool = self.queue.spool();
        if let Err(e) = spool.write(&id, &[&body]) {
            tracing::error!(queue_id = %message.id, error = %e, "cannot spool bounce");
            return None;
        }
        tracing::info!(queue_id = %message.id, dsn_id = %id, to = %message.mail_from, "bounce queued");
        Some(NewMessage {
            id,
            mail_from: String::new(),
            rcpts: vec![message.mail_from.clone()],
            size: body.len() as u64,
            received_at: unix_now(),
            client_ip: "127.0.0.1".into(),
            helo: self.hostname.clone(),
            // Only a non-ASCII bounce address needs SMTPUTF8; the report itself is 8-bit text.
            smtputf8: !message.mail_from.is_ascii(),
            held: None,
            kind: MessageKind::Dsn,
        })
    }

    fn log_attempt(&self, m: &QueuedMessage, outcomes: &[RcptOutcome], took: Duration) {
        for o in outcomes {
            self.tracker.record(Event {
                at: unix_now(),
                queue_id: m.id.clone(),
                kind: match o.status {
                    RcptStatus::Delivered => EventKind::Delivered,
                    RcptStatus::Pending => EventKind::Deferred,
                    RcptStatus::Failed => EventKind::Bounced,
                },
                mail_from: m.mail_from.clone(),
                rcpts: o.address.clone(),
                subject: String::new(),
                client_ip: m.client_ip.clone(),
                class: String::new(),
                score: 0.0,
                detail: format!("attempt {}: {}", m.attempts + 1, o.reply),
                direction: String::new(),
            });
        }
        let result: Vec<String> = outcomes
            .iter()
            .map(|o| format!("{}={:?}({})", o.address, o.status, o.reply))
            .collect();
        tracing::info!(
            queue_id = %m.id,
            from = %m.mail_from,
            size = m.size,
            attempt = m.attempts + 1,
            queued_secs = unix_now() - m.received_at,
            delivery_ms = took.as_millis() as u64,
            result = %result.join(", "),
            "delivery attempt"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_caps() {
        let c = DeliveryConfig {
            retry_initial_secs: 10,
            retry_max_secs: 100,
            ..DeliveryConfig::default()
        };
        assert_eq!(backoff(&c, 0), 10);
        assert_eq!(backoff(&c, 1), 20);
        assert_eq!(backoff(&c, 3), 80);
        assert_eq!(backoff(&c, 4), 100);
        assert_eq!(backoff(&c, 200), 100);
    }
}
