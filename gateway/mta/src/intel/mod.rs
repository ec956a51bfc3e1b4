//! Threat intelligence (威胁情报): indicators received from TAXII 2.1 collections
//! ([`taxii`], polled) or imported by an administrator (a STIX bundle, for sites without a
//! feed), kept in the queue's database ([`store`]) and put in force at once in the scanner's
//! watchlist, so the next matching message is refused at SMTP time. Each new indicator also
//! starts a retro-hunt over the hunt index: mail that reached the mailboxes before the
//! indicator did is recalled at once or proposed to an administrator, as `[intel] on_match`
//! says. Indicators stop counting at their `valid_until`, or when revoked.

pub mod config;
pub mod store;
pub mod taxii;

use std::sync::Arc;
use std::time::Duration;

use jianmen_scan::intel::stix::{self, Read, Skipped};
use jianmen_scan::intel::{Indicator, Observable, Watchlist};

use crate::db::StoreError;
use crate::hunt::{HuntIndex, MAX_FOUND, Term};
use crate::queue::SqliteStore;
use crate::queue::manager::unix_now;
use crate::recall::{RecallError, Recaller};
pub use config::{IntelConfig, OnMatch, TaxiiConfig};
pub use store::{Hit, SCHEMA, SourceState, StoredIndicator};

/// Largest document an administrator imports.
pub const MAX_IMPORT: usize = 16 * 1024 * 1024;
/// Most pages one poll reads.
const MAX_PAGES: usize = 100;
/// How often expiry is applied to the watchlist.
const REFRESH: Duration = Duration::from_secs(30);
/// Ended indicators are forgotten this long after their end.
const KEEP_ENDED_SECS: i64 = 30 * 86_400;
/// The source name of imported documents.
pub const IMPORTED: &str = "import";

/// Why intel work did not go through.
#[derive(Debug, thiserror::Error)]
pub enum IntelError {
    /// The document is not STIX that can be read.
    #[error("{0}")]
    Invalid(String),
    /// No such hit.
    #[error("no such hit")]
    NotFound,
    /// Recall is not possible or failed to start.
    #[error(transparent)]
    Recall(#[from] RecallError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What one document (a TAXII page, an imported bundle) gave.
#[derive(Debug, Default, serde::Serialize)]
pub struct Taken {
    /// Indicators new or changed.
    pub new: u64,
    /// Indicators already held in this version.
    pub unchanged: u64,
    /// Indicators refused, with why (the first 50).
    pub skipped: Vec<(String, String)>,
    /// Skipped in all.
    pub skipped_count: u64,
    /// Delivered messages the new indicators found.
    pub hits: u64,
}

/// The intel service.
pub struct Intel {
    config: IntelConfig,
    store: Arc<SqliteStore>,
    watchlist: Arc<Watchlist>,
    hunt: Option<HuntIndex>,
    recaller: Option<Arc<Recaller>>,
    /// How far back a retro-hunt looks (the hunt index's retention).
    hunt_secs: i64,
}

impl Intel {
    /// Opens the service and puts the stored indicators in force in `watchlist`.
    pub async fn open(
        config: IntelConfig,
        store: Arc<SqliteStore>,
        watchlist: Arc<Watchlist>,
        hunt: Option<HuntIndex>,
        recaller: Option<Arc<Recaller>>,
        hunt_days: u32,
    ) -> Result<Arc<Intel>, StoreError> {
        let intel = Arc::new(Intel {
            config,
            store,
            watchlist,
            hunt,
            recaller,
            hunt_secs: i64::from(hunt_days) * 86_400,
        });
        intel.refresh().await?;
        Ok(intel)
    }

    /// The section it was opened with.
    pub fn config(&self) -> &IntelConfig {
        &self.config
    }

    /// Starts polling each TAXII source and applying expiry; a source that cannot be set up
    /// is recorded as failed.
    pub fn start(self: &Arc<Self>) {
        for source in &self.config.taxii {
            let (me, source) = (self.clone(), source.clone());
            tokio::spawn(async move { me.poll_forever(source).await });
        }
        let me = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(REFRESH);
            loop {
                tick.tick().await;
                let now = unix_now();
                if let Err(e) = store::forget_ended(&me.store, now - KEEP_ENDED_SECS).await {
                    tracing::error!(error = %e, "cannot forget ended indicators");
                }
                if let Err(e) = me.refresh().await {
                    tracing::error!(error = %e, "cannot read the indicators in force");
                }
            }
        });
    }

    /// Puts exactly the indicators in force now into the watchlist.
    async fn refresh(&self) -> Result<(), StoreError> {
        let now = unix_now();
        let observables = store::in_force(&self.store, now).await?;
        self.watchlist
            .replace(observables.iter().map(|(id, o)| (id.as_str(), o)));
        Ok(())
    }

    async fn poll_forever(self: Arc<Self>, config: TaxiiConfig) {
        let collection = match taxii::Collection::new(&config) {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(source = %config.name, error = %e, "intel source cannot be used");
                let _ = store::record(&self.store, &config.name, unix_now(), Err(&e), None).await;
                return;
            }
        };
        let mut tick = tokio::time::interval(Duration::from_secs(config.interval_secs));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let outcome = self.poll(&config.name, &collection).await;
            let now = unix_now();
            let recorded = match &outcome {
                Ok(taken) => {
                    if taken.new > 0 || taken.skipped_count > 0 {
                        tracing::info!(source = %config.name, new = taken.new, skipped = taken.skipped_count, hits = taken.hits, "intel received");
                    }
                    store::record(
                        &self.store,
                        &config.name,
                        now,
                        Ok((taken.new, taken.skipped_count)),
                        None,
                    )
                    .await
                }
                Err(e) => {
                    tracing::warn!(source = %config.name, error = %e, "intel poll failed");
                    store::record(&self.store, &config.name, now, Err(e), None).await
                }
            };
            if let Err(e) = recorded {
                tracing::error!(source = %config.name, error = %e, "cannot record an intel poll");
            }
        }
    }

    /// One poll: every page added since the source's cursor.
    async fn poll(&self, name: &str, collection: &taxii::Collection) -> Result<Taken, String> {
        let mut cursor = store::cursor(&self.store, name)
            .await
            .map_err(|e| e.to_string())?;
        let mut next: Option<String> = None;
        let mut total = Taken::default();
        for _ in 0..MAX_PAGES {
            let page = collection.page(&cursor, next.as_deref()).await?;
            let read = stix::read_objects(&page.envelope)?;
            let taken = self.take(name, read).await.map_err(|e| e.to_string())?;
            total.new += taken.new;
            total.unchanged += taken.unchanged;
            total.hits += taken.hits;
            total.skipped_count += taken.skipped_count;
            if let Some(last) = page.added_last {
                cursor = last;
                store::record(&self.store, name, unix_now(), Ok((0, 0)), Some(&cursor))
                    .await
                    .map_err(|e| e.to_string())?;
            }
            next = page.next.filter(|_| page.more);
            if next.is_none() {
                break;
            }
        }
        Ok(total)
    }

    /// Imports a STIX bundle an administrator brought (air-gapped sites).
    pub async fn import(&self, document: &[u8]) -> Result<Taken, IntelError> {
        if document.len() > MAX_IMPORT {
            return Err(IntelError::Invalid(format!(
                "larger than {} MiB",
                MAX_IMPORT >> 20
            )));
        }
        let value: serde_json::Value = serde_json::from_slice(document)
            .map_err(|e| IntelError::Invalid(format!("not JSON: {e}")))?;
        let read = stix::read_objects(&value).map_err(IntelError::Invalid)?;
        if read.indicators.is_empty() && read.skipped.is_empty() {
            return Err(IntelError::Invalid(
                "the document holds no indicator".into(),
            ));
        }
        let taken = self.take(IMPORTED, read).await?;
        store::record(
            &self.store,
            IMPORTED,
            unix_now(),
            Ok((taken.new, taken.skipped_count)),
            None,
        )
        .await?;
        Ok(taken)
    }

    /// Stores what a document gave, puts it in force and hunts for it.
    async fn take(&self, source: &str, read: Read) -> Result<Taken, StoreError> {
        let mut taken = Taken::default();
        let mut skipped: Vec<Skipped> = read.skipped;
        let now = unix_now();
        let mut room = self
            .config
            .max_indicators
            .saturating_sub(store::count(&self.store).await?);
        let mut fresh = Vec::new();
        for indicator in read.indicators {
            let known = store::known(&self.store, &indicator.id).await?;
            if !known && room == 0 {
                skipped.push(Skipped {
                    id: indicator.id.clone(),
                    reason: format!("{} indicators held: no room", self.config.max_indicators),
                });
                continue;
            }
            if store::upsert(&self.store, source, &indicator, now).await? {
                taken.new += 1;
                if !known {
                    room -= 1;
                }
                let in_force = !indicator.revoked
                    && indicator.valid_from <= now
                    && indicator.valid_until.is_none_or(|t| t > now);
                if in_force {
                    fresh.push(indicator);
                }
            } else {
                taken.unchanged += 1;
            }
        }
        taken.skipped_count = skipped.len() as u64;
        taken.skipped = skipped
            .into_iter()
            .take(50)
            .map(|s| (s.id, s.reason))
            .collect();
        if taken.new > 0 {
            self.refresh().await?;
        }
        for indicator in &fresh {
            taken.hits += self.hunt(source, indicator).await?;
        }
        Ok(taken)
    }

    /// The retro-hunt for one new indicator: every delivered message it matches is recalled or
    /// proposed; returns how many were found anew.
    async fn hunt(&self, source: &str, indicator: &Indicator) -> Result<u64, StoreError> {
        let Some(index) = &self.hunt else {
            return Ok(0);
        };
        let since = unix_now() - self.hunt_secs;
        let mut found = 0;
        for o in &indicator.observables {
            let term = match o {
                Observable::Sha256(h) => Term::Sha256(h.clone()),
                Observable::Url(u) => Term::Url(u.clone()),
                Observable::Domain(d) => Term::Domain(d.clone()),
                Observable::Email(e) => Term::Sender(e.clone()),
                Observable::MessageId(m) => Term::MessageId(m.clone()),
                // The index does not keep client addresses: these only block.
                Observable::Ip(..) => continue,
            };
            for message in index.find(&term, since, MAX_FOUND).await? {
                let recall = self.config.on_match == OnMatch::Recall && self.recaller.is_some();
                let state = if recall { "recalling" } else { "proposed" };
                let Some(hit) = store::add_hit(
                    &self.store,
                    unix_now(),
                    &indicator.id,
                    &message.queue_id,
                    o,
                    state,
                )
                .await?
                else {
                    continue;
                };
                found += 1;
                tracing::info!(indicator = %indicator.id, queue_id = %message.queue_id, state, "retro-hunt found a delivered message");
                if recall {
                    let reason = format!("{} ({} {})", indicator.name, o.kind(), o.value());
                    self.start_recall(hit, &message, &format!("intel:{source}"), &reason)
                        .await?;
                }
            }
        }
        Ok(found)
    }

    async fn start_recall(
        &self,
        hit: i64,
        message: &crate::hunt::Indexed,
        actor: &str,
        reason: &str,
    ) -> Result<Option<String>, StoreError> {
        let Some(recaller) = &self.recaller else {
            return Ok(None);
        };
        match recaller.start(message, &[], actor, reason).await {
            Ok(job) => {
                store::set_hit(&self.store, hit, "recalling", &job.id, "").await?;
                Ok(Some(job.id))
            }
            Err(e) => {
                tracing::warn!(hit, error = %e, "retro-hunt recall did not start");
                store::set_hit(&self.store, hit, "failed", "", &e.to_string()).await?;
                Ok(None)
            }
        }
    }

    /// Recalls the message of a proposed (or failed) hit, for `actor`; returns the recall's id.
    pub async fn recall_hit(&self, id: i64, actor: &str) -> Result<String, IntelError> {
        let hit = store::hit(&self.store, id)
            .await?
            .ok_or(IntelError::NotFound)?;
        let (Some(index), Some(recaller)) = (&self.hunt, &self.recaller) else {
            return Err(RecallError::NoSystem("this gateway".into()).into());
        };
        let message = index
            .find(&Term::QueueId(hit.queue_id.clone()), 0, 1)
            .await?
            .into_iter()
            .next()
            .ok_or(IntelError::NotFound)?;
        let reason = format!("{} ({} {})", hit.indicator_name, hit.kind, hit.value);
        let job = recaller.start(&message, &[], actor, &reason).await?;
        store::set_hit(&self.store, id, "recalling", &job.id, "").await?;
        Ok(job.id)
    }

    /// Every source's state (configured sources never polled included).
    pub async fn sources(&self) -> Result<Vec<SourceState>, StoreError> {
        let mut states = store::sources(&self.store).await?;
        for t in &self.config.taxii {
            if !states.iter().any(|s| s.name == t.name) {
                states.push(SourceState {
                    name: t.name.clone(),
                    cursor: String::new(),
                    last_poll: 0,
                    last_ok: 0,
                    last_error: String::new(),
                    received: 0,
                    skipped: 0,
                });
            }
        }
        Ok(states)
    }

    /// The latest indicators matching `search`.
    pub async fn indicators(
        &self,
        search: &str,
        limit: u32,
    ) -> Result<Vec<StoredIndicator>, StoreError> {
        store::indicators(&self.store, search, limit).await
    }

    /// The latest retro-hunt hits.
    pub async fn hits(&self, limit: u32) -> Result<Vec<Hit>, StoreError> {
        store::hits(&self.store, limit).await
    }

    /// Observables in force now.
    pub fn in_force(&self) -> usize {
        self.watchlist.len()
    }
}

#[cfg(test)]
mod tests;
