//! Containment of compromised internal accounts. Every account that sends outbound or internal
//! mail through the organisation's server has a sending-behaviour profile
//! ([`jianmen_scan::behaviour`]); each message is scored against it, and the score raises the
//! account's [`Level`] by the `[behaviour]` policy: an alert, a throttle (4xx beyond a rate),
//! a hold of everything it sends for review, a block of its sending. Levels only rise on their
//! own: an administrator clears an account (a false alarm — its held mail is released and the
//! profile learns the behaviour) or confirms it (compromised — its held mail is dropped and its
//! sending blocked until cleared).
//!
//! Levels and their history are written when they change; the profiles are kept in memory and
//! written every minute and at shutdown, so a crash forgets at most a minute of learning, never
//! a containment.

mod store;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use serde::{Deserialize, Serialize};

use crate::db::StoreError;
use crate::quarantine::{Quarantine, QuarantineError, Released};
use crate::queue::SqliteStore;
use jianmen_scan::behaviour::{Profile, Reason, Sent};
pub use store::{Event, SCHEMA};

/// Accounts kept at once; beyond it the longest-quiet ordinary account is forgotten.
const MAX_ACCOUNTS: usize = 20_000;
/// Events an account's history shows.
const HISTORY: u32 = 200;
/// Peers a new account's baseline is taken from, at most.
const PEERS: usize = 200;

/// The peers an account is compared with when it is new: the accounts of its mail domain (the
/// gateway knows no finer department), or the other logins.
fn department(account: &str) -> &str {
    account.rsplit_once('@').map_or("", |(_, domain)| domain)
}

/// The `[behaviour]` section: when the score contains an account, and how.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RiskConfig {
    /// Score and contain the sending accounts at all.
    pub enabled: bool,
    /// Score at or above which an account is shown and reported (0: never).
    pub alert: f64,
    /// Score at or above which its sending is throttled (0: never).
    pub throttle: f64,
    /// Score at or above which everything it sends is held for review (0: never).
    pub hold: f64,
    /// Score at or above which its sending is refused (0: never).
    pub block: f64,
    /// Messages per hour a throttled account may still send; beyond, `451 4.7.1`.
    pub throttle_per_hour: u32,
    /// Hours its held mail waits for a decision; then it is rejected and the sender told.
    pub hold_hours: u32,
    /// Addresses told by mail when an account's level rises.
    pub notify: Vec<String>,
}

impl Default for RiskConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            alert: 1.0,
            throttle: 2.0,
            hold: 3.0,
            block: 0.0,
            throttle_per_hour: 20,
            hold_hours: 72,
            notify: Vec::new(),
        }
    }
}

impl RiskConfig {
    /// Why the section cannot be used, if it cannot.
    pub fn check(&self) -> Result<(), String> {
        let scores = [self.alert, self.throttle, self.hold, self.block];
        if scores.iter().any(|s| !s.is_finite() || *s < 0.0) {
            return Err("scores must be 0 (never) or positive".into());
        }
        let used: Vec<f64> = scores.into_iter().filter(|s| *s > 0.0).collect();
        if used.windows(2).any(|w| w[0] > w[1]) {
            return Err("alert ≤ throttle ≤ hold ≤ block, where set".into());
        }
        if self.throttle_per_hour == 0 {
            return Err("throttle_per_hour must be at least 1".into());
        }
        if self.hold_hours == 0 || self.hold_hours > 24 * 30 {
            return Err("hold_hours must be within 1–720".into());
        }
        if let Some(bad) = self.notify.iter().find(|a| !a.contains('@')) {
            return Err(format!("notify: `{bad}` is not an address"));
        }
        Ok(())
    }

    fn level_for(&self, score: f64) -> Level {
        [
            (self.block, Level::Blocked),
            (self.hold, Level::Held),
            (self.throttle, Level::Throttled),
            (self.alert, Level::Alert),
        ]
        .into_iter()
        .find(|(at, _)| *at > 0.0 && score >= *at)
        .map_or(Level::Normal, |(_, level)| level)
    }
}

/// How far an account is contained, least first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// Sends as usual.
    Normal,
    /// Sends as usual; shown on the board and reported.
    Alert,
    /// Sends at most `throttle_per_hour` messages an hour.
    Throttled,
    /// Everything it sends is held for review.
    Held,
    /// Its sending is refused.
    Blocked,
}

impl Level {
    /// Lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Normal => "normal",
            Level::Alert => "alert",
            Level::Throttled => "throttled",
            Level::Held => "held",
            Level::Blocked => "blocked",
        }
    }

    /// The level a name denotes.
    pub fn parse(s: &str) -> Option<Level> {
        [
            Level::Normal,
            Level::Alert,
            Level::Throttled,
            Level::Held,
            Level::Blocked,
        ]
        .into_iter()
        .find(|l| l.as_str() == s)
    }
}

/// What the gateway knows of one account.
#[derive(Debug, Clone)]
struct Account {
    profile: Profile,
    level: Level,
    /// The latest message's score.
    score: f64,
    /// The highest score since the account was last cleared, and its explanation.
    peak: f64,
    reasons: Vec<Reason>,
    /// When the level was set.
    since: i64,
    /// When it last sent.
    last_at: i64,
    /// Messages in each of the 24 hours up to `volume_hour` (Unix hours), oldest first.
    volume: [u32; 24],
    volume_hour: i64,
    /// A throttled account's allowance (a token bucket refilled at `throttle_per_hour`), and
    /// the attempts refused since it ran out.
    tokens: f64,
    tokens_at: i64,
    refused: u32,
    /// Changed since last written.
    dirty: bool,
}

impl Account {
    fn new(profile: Profile, now: i64) -> Self {
        Self {
            profile,
            level: Level::Normal,
            score: 0.0,
            peak: 0.0,
            reasons: Vec::new(),
            since: now,
            last_at: now,
            volume: [0; 24],
            volume_hour: now.div_euclid(3600),
            tokens: 0.0,
            tokens_at: now,
            refused: 0,
            dirty: true,
        }
    }

    /// Moves the sparkline to the hour of `now`.
    fn roll_volume(&mut self, now: i64) {
        let hour = now.div_euclid(3600);
        let shift = (hour - self.volume_hour).clamp(0, 24) as usize;
        if shift > 0 {
            self.volume.rotate_left(shift);
            for v in &mut self.volume[24 - shift..] {
                *v = 0;
            }
            self.volume_hour = hour;
        }
    }

    fn refill(&mut self, per_hour: u32, now: i64) {
        let rate = f64::from(per_hour) / 3600.0;
        let elapsed = (now - self.tokens_at).max(0) as f64;
        self.tokens = (self.tokens + elapsed * rate).min(f64::from(per_hour));
        self.tokens_at = now;
    }

    fn view(&self, name: &str, now: i64) -> AccountView {
        let mut shown = self.clone();
        shown.roll_volume(now);
        AccountView {
            account: name.to_owned(),
            level: self.level,
            score: self.score,
            peak: self.peak,
            reasons: self.reasons.clone(),
            since: self.since,
            last_at: self.last_at,
            volume: shown.volume.to_vec(),
            messages: self.profile.messages,
        }
    }
}

/// An account as the risk board shows it.
#[derive(Debug, Clone, Serialize)]
pub struct AccountView {
    /// The login, else the envelope sender.
    pub account: String,
    /// How far it is contained.
    pub level: Level,
    /// Its latest message's score.
    pub score: f64,
    /// The highest score since it was last cleared.
    pub peak: f64,
    /// What that score rests on.
    pub reasons: Vec<Reason>,
    /// When the level was set.
    pub since: i64,
    /// When it last sent.
    pub last_at: i64,
    /// Messages in each of the last 24 hours, oldest first.
    pub volume: Vec<u32>,
    /// Messages seen in all.
    pub messages: u64,
}

/// Why sending is refused at MAIL FROM.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The account is throttled and used its allowance.
    Throttled,
    /// The account is blocked.
    Blocked,
}

/// What one message did to its account.
#[derive(Debug, Clone)]
pub struct Observed {
    /// The account's level after the message.
    pub level: Level,
    /// The message's score and its explanation.
    pub score: f64,
    /// What it rests on.
    pub reasons: Vec<Reason>,
    /// The event, when the message raised the level.
    pub raised: Option<Event>,
}

/// Why a risk action failed.
#[derive(Debug, thiserror::Error)]
pub enum RiskError {
    /// No such account is known.
    #[error("no account {0} is watched")]
    NotFound(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Releasing or dropping its held mail failed.
    #[error(transparent)]
    Quarantine(#[from] QuarantineError),
}

/// What an administrator found an account's alarm to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Finding {
    /// The behaviour was the user's own (clear, 解除).
    FalseAlarm,
    /// The account is in an intruder's hands (confirm, 确认失陷).
    Compromised,
}

/// The outcome of clearing or confirming an account.
#[derive(Debug, Clone, Serialize)]
pub struct Decided {
    /// The account's level now.
    pub level: Level,
    /// Held messages released (clear).
    pub released: Vec<Released>,
    /// Held messages dropped (confirm).
    pub dropped: Vec<String>,
}

/// The accounts being watched.
pub struct Watch {
    config: RiskConfig,
    store: Arc<SqliteStore>,
    accounts: Mutex<HashMap<String, Account>>,
    /// Accounts forgotten since the last write, whose rows go too.
    evicted: Mutex<Vec<String>>,
}

/// The account a message is charged to: the login its sender authenticated with at the
/// organisation's server, else its envelope sender; none for the null sender (bounces).
pub fn account_of(login: Option<&str>, mail_from: &str) -> Option<String> {
    let name = login.filter(|l| !l.is_empty()).unwrap_or(mail_from);
    // An XFORWARD login is xtext and may decode to control characters: dropped, so every
    // account can be named in the console's paths, the log and the alert mail.
    let name: String = name
        .chars()
        .filter(|c| !c.is_control())
        .take(320)
        .collect::<String>()
        .to_lowercase();
    (!name.is_empty()).then_some(name)
}

impl Watch {
    /// The watch over the accounts stored in `store`.
    pub async fn open(
        config: RiskConfig,
        store: Arc<SqliteStore>,
    ) -> Result<Arc<Self>, StoreError> {
        let accounts = store::load(&store).await?.into_iter().collect();
        Ok(Arc::new(Self {
            config,
            store,
            accounts: Mutex::new(accounts),
            evicted: Mutex::new(Vec::new()),
        }))
    }

    /// The section it was opened with.
    pub fn config(&self) -> &RiskConfig {
        &self.config
    }

    fn accounts(&self) -> MutexGuard<'_, HashMap<String, Account>> {
        // A panic elsewhere must not stop the mail: the map itself is always consistent.
        self.accounts.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether `account` may start another message now. A throttled account that keeps
    /// trying — as many refused attempts as its hourly allowance — is held (when holding is
    /// on): what it sends from then on waits for review instead of being refused. The event,
    /// when this raised the level.
    pub async fn gate(&self, account: &str, now: i64) -> Result<Option<Event>, Refusal> {
        let (held, row) = {
            let mut accounts = self.accounts();
            let Some(a) = accounts.get_mut(account) else {
                return Ok(None);
            };
            match a.level {
                Level::Blocked => return Err(Refusal::Blocked),
                Level::Throttled => {
                    let per_hour = self.config.throttle_per_hour;
                    a.refill(per_hour, now);
                    if a.tokens >= 1.0 {
                        a.refused = 0;
                        return Ok(None);
                    }
                    a.refused = a.refused.saturating_add(1);
                    if self.config.hold <= 0.0 || a.refused < per_hour {
                        return Err(Refusal::Throttled);
                    }
                    let mut reasons = vec![Reason::PastThrottle {
                        tried: a.refused,
                        per_hour,
                    }];
                    reasons.extend(a.reasons.iter().cloned());
                    a.level = Level::Held;
                    a.since = now;
                    a.reasons = reasons.clone();
                    a.dirty = true;
                    let event = Event {
                        at: now,
                        account: account.to_owned(),
                        level: Level::Held,
                        score: a.peak,
                        reasons,
                        actor: "gateway".into(),
                    };
                    (event, a.clone())
                }
                _ => return Ok(None),
            }
        };
        self.record_rise(&held, &row).await;
        Ok(Some(held))
    }

    /// Writes and logs an automatic rise of an account's level.
    async fn record_rise(&self, event: &Event, row: &Account) {
        if let Err(e) = store::save_event(&self.store, row, event).await {
            tracing::error!(account = %event.account, error = %e, "cannot record a sending account's containment");
        }
        tracing::warn!(
            account = %event.account, level = event.level.as_str(), score = event.score,
            reasons = %words(&event.reasons), "sending account contained"
        );
    }

    /// Takes one message of `account` into its profile; raises its level when the score calls
    /// for it (the event is written before this returns; one the store refuses is logged, and
    /// the level holds in memory and is written with the profiles).
    pub async fn observe(&self, account: &str, sent: &Sent<'_>) -> Observed {
        let now = sent.at;
        let (observed, row) = {
            let mut accounts = self.accounts();
            if !accounts.contains_key(account) {
                if accounts.len() >= MAX_ACCOUNTS {
                    self.evict(&mut accounts);
                }
                let profile = Profile::from_peers(
                    accounts
                        .iter()
                        .filter(|(name, _)| department(name) == department(account))
                        .take(PEERS)
                        .map(|(_, a)| &a.profile),
                );
                accounts.insert(account.to_owned(), Account::new(profile, now));
            }
            let a = accounts
                .entry(account.to_owned())
                .or_insert_with(|| Account::new(Profile::default(), now));
            let assessment = a.profile.observe(sent);
            a.last_at = now;
            a.score = assessment.score;
            a.roll_volume(now);
            a.volume[23] = a.volume[23].saturating_add(1);
            a.dirty = true;
            if a.level == Level::Throttled {
                a.refill(self.config.throttle_per_hour, now);
                a.tokens = (a.tokens - 1.0).max(0.0);
            }
            if assessment.score > a.peak {
                a.peak = assessment.score;
                a.reasons = assessment.reasons.clone();
            }
            let target = self.config.level_for(assessment.score);
            let raised = (target > a.level).then(|| {
                a.level = target;
                a.since = now;
                if target == Level::Throttled {
                    a.tokens = f64::from(self.config.throttle_per_hour);
                    a.tokens_at = now;
                }
                Event {
                    at: now,
                    account: account.to_owned(),
                    level: target,
                    score: assessment.score,
                    reasons: assessment.reasons.clone(),
                    actor: "gateway".into(),
                }
            });
            let row = raised.as_ref().map(|_| a.clone());
            (
                Observed {
                    level: a.level,
                    score: assessment.score,
                    reasons: assessment.reasons,
                    raised,
                },
                row,
            )
        };
        if let (Some(event), Some(row)) = (&observed.raised, row) {
            self.record_rise(event, &row).await;
        }
        observed
    }

    /// Forgets the longest-quiet account that is not contained.
    fn evict(&self, accounts: &mut HashMap<String, Account>) {
        let quietest = accounts
            .iter()
            .filter(|(_, a)| a.level == Level::Normal)
            .min_by_key(|(_, a)| a.last_at)
            .map(|(name, _)| name.clone());
        if let Some(name) = quietest {
            accounts.remove(&name);
            self.evicted
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(name);
        }
    }

    /// Notes that the held message `id` is `account`'s, so clearing the account releases it.
    pub async fn note_hold(&self, id: &str, account: &str) -> Result<(), StoreError> {
        store::note_hold(&self.store, id, account).await
    }

    /// Writes the profiles changed since the last write.
    pub async fn flush(&self) -> Result<usize, StoreError> {
        let dirty: Vec<(String, Account)> = {
            let mut accounts = self.accounts();
            accounts
                .iter_mut()
                .filter(|(_, a)| a.dirty)
                .map(|(name, a)| {
                    a.dirty = false;
                    (name.clone(), a.clone())
                })
                .collect()
        };
        let evicted = std::mem::take(&mut *self.evicted.lock().unwrap_or_else(|p| p.into_inner()));
        let written = store::save(&self.store, &dirty).await;
        if written.is_err() {
            // Written next time.
            let mut accounts = self.accounts();
            for (name, _) in &dirty {
                if let Some(a) = accounts.get_mut(name) {
                    a.dirty = true;
                }
            }
        }
        written?;
        // An evicted account that came back since is kept: its row is current again.
        let gone: Vec<String> = {
            let accounts = self.accounts();
            evicted
                .into_iter()
                .filter(|name| !accounts.contains_key(name))
                .collect()
        };
        store::forget(&self.store, &gone).await?;
        Ok(dirty.len())
    }

    /// The accounts worth an administrator's look: contained or scored, highest first.
    pub fn board(&self, now: i64, limit: usize) -> Vec<AccountView> {
        let accounts = self.accounts();
        let mut shown: Vec<AccountView> = accounts
            .iter()
            .filter(|(_, a)| a.level > Level::Normal || a.peak > 0.0)
            .map(|(name, a)| a.view(name, now))
            .collect();
        shown.sort_by(|a, b| {
            b.level
                .cmp(&a.level)
                .then(b.peak.total_cmp(&a.peak))
                .then(a.account.cmp(&b.account))
        });
        shown.truncate(limit);
        shown
    }

    /// One account and its history, newest first.
    pub async fn account(
        &self,
        account: &str,
        now: i64,
    ) -> Result<(AccountView, Vec<Event>, usize), RiskError> {
        let view = self
            .accounts()
            .get(account)
            .map(|a| a.view(account, now))
            .ok_or_else(|| RiskError::NotFound(account.to_owned()))?;
        let events = store::events(&self.store, account, HISTORY).await?;
        let holds = store::holds(&self.store, account).await?.len();
        Ok((view, events, holds))
    }

    /// Sets an account's level by an administrator's decision and records it.
    async fn decide(
        &self,
        account: &str,
        level: Level,
        actor: &str,
        now: i64,
    ) -> Result<(), RiskError> {
        let (row, event) = {
            let mut accounts = self.accounts();
            let a = accounts
                .get_mut(account)
                .ok_or_else(|| RiskError::NotFound(account.to_owned()))?;
            let event = Event {
                at: now,
                account: account.to_owned(),
                level,
                score: a.peak,
                reasons: a.reasons.clone(),
                actor: actor.to_owned(),
            };
            a.level = level;
            a.since = now;
            if level == Level::Normal {
                // A false alarm: what it did is its usual from now on.
                a.profile.forgive();
                a.peak = 0.0;
                a.score = 0.0;
                a.reasons.clear();
            }
            (a.clone(), event)
        };
        store::save_event(&self.store, &row, &event).await?;
        tracing::info!(
            account,
            level = level.as_str(),
            actor,
            "sending account decided"
        );
        Ok(())
    }

    /// An administrator's finding about an account. A false alarm: it sends again, its held
    /// mail is released and its profile takes the behaviour as usual. A compromise: its sending
    /// is refused until it is cleared, and its held mail is dropped (nobody is told: the
    /// sender is the intruder).
    pub async fn settle(
        &self,
        account: &str,
        finding: Finding,
        actor: &str,
        quarantine: &Quarantine,
        now: i64,
    ) -> Result<Decided, RiskError> {
        let level = match finding {
            Finding::FalseAlarm => Level::Normal,
            Finding::Compromised => Level::Blocked,
        };
        self.decide(account, level, actor, now).await?;
        self.settle_holds(account, level, actor, quarantine, now)
            .await
    }

    /// Releases (`level` normal) or drops the account's held mail. A message decided already
    /// (released, deleted, expired) is passed over.
    async fn settle_holds(
        &self,
        account: &str,
        level: Level,
        actor: &str,
        quarantine: &Quarantine,
        now: i64,
    ) -> Result<Decided, RiskError> {
        let mut decided = Decided {
            level,
            released: Vec::new(),
            dropped: Vec::new(),
        };
        for id in store::holds(&self.store, account).await? {
            let done = if level == Level::Normal {
                quarantine
                    .release(&id, None, actor, now)
                    .await
                    .map(|r| decided.released.push(r))
            } else {
                quarantine
                    .delete(&id, actor, now)
                    .await
                    .map(|()| decided.dropped.push(id.clone()))
            };
            match done {
                Ok(()) | Err(QuarantineError::NotFound(_) | QuarantineError::Conflict { .. }) => {}
                Err(e) => return Err(e.into()),
            }
            store::drop_hold(&self.store, &id).await?;
        }
        Ok(decided)
    }
}

/// Reasons in English words, for logs and mail.
pub fn words(reasons: &[Reason]) -> String {
    reasons
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// Writes the profiles every minute, forever.
pub async fn flush_periodically(watch: Arc<Watch>) {
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(60));
    loop {
        tick.tick().await;
        if let Err(e) = watch.flush().await {
            tracing::error!(error = %e, "cannot write sending-behaviour profiles");
        }
    }
}

/// The mail that tells the administrators in `notify` an account's level rose.
pub fn alert_message(hostname: &str, id: &str, event: &Event) -> Vec<u8> {
    let level = match event.level {
        Level::Normal => "正常 / normal",
        Level::Alert => "告警 / alert",
        Level::Throttled => "限速 / throttled",
        Level::Held => "暂扣待审 / held for review",
        Level::Blocked => "禁止发信 / blocked",
    };
    let subject = format!("账户发信异常 / Unusual sending: {}", event.account);
    let reasons: String = event
        .reasons
        .iter()
        .map(|r| format!("  - {}\r\n", crate::queue::dsn::one_line(&r.to_string())))
        .collect();
    let body = format!(
        "账户 / Account: {account}\r\n\
         处置 / Now: {level}\r\n\
         分数 / Score: {score:.1}\r\n\
         原因 / Why:\r\n{reasons}\r\n\
         请在控制台“风险账户”页面确认或解除。\r\n\
         Confirm or clear it on the console's account-risk page.\r\n",
        account = crate::queue::dsn::one_line(&event.account),
        score = event.score,
    );
    crate::queue::dsn::administrators_alert(hostname, id, &subject, &body)
}

#[cfg(test)]
mod tests;
