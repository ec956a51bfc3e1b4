//! The secure relay (安全海外中继): mail to the internet leaves by one of several egress channels
//! ([`channel`]) — a source address, a SOCKS5 relay node, or a smart host. For every message and
//! destination the channels are ranked by the domain's policy and by their recent record there
//! (sticky while healthy); a channel that cannot deliver (no connection, a timeout, a 4xx, or a
//! 5xx naming a block list) hands the recipients to the next one at once. [`watch`] looks up
//! every channel's public address in the block lists, takes listed and broken channels out of
//! rotation, promotes reserves and brings channels back after a hold-down; [`store`] keeps their
//! states and history in the queue's database.
//!
//! Configured routes (the organisation's own servers) never go through channels: only mail
//! routed by MX does.

pub mod channel;
pub mod config;
mod store;
pub mod watch;

#[cfg(test)]
mod tests;

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use serde::Serialize;
use tokio::sync::{Notify, OwnedSemaphorePermit};

use crate::db::StoreError;
use crate::metrics::Metrics;
use crate::queue::SqliteStore;
use channel::Channel;
pub use config::{ChannelConfig, PolicyConfig, RelayConfig};
pub use store::{SCHEMA, Transition};

/// Most (channel, domain) records kept; the least recently used go first.
const MAX_RECORDS: usize = 50_000;
/// Recent errors kept per channel for the board.
const MAX_ERRORS: usize = 10;
/// Block-list refusals kept per channel as evidence.
const MAX_EVIDENCE: usize = 20;
/// Weight of the newest outcome in a record's running success rate and latency.
const ALPHA: f64 = 0.2;
/// Success rate assumed for a channel that has not yet delivered to a domain.
const PRIOR_OK: f64 = 0.9;
/// A channel stays a domain's first choice while its success rate there is at least this.
const STICKY_OK: f64 = 0.5;

/// Where a channel stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    /// Carries mail.
    Active,
    /// Waits until an active channel drops out.
    Reserve,
    /// Its address is on a block list (or refusals say so): out of rotation.
    Listed,
    /// Its connections fail: out of rotation until it has rested.
    Down,
    /// Taken out by an administrator.
    Drained,
}

impl State {
    /// The name used in the store, the API and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Reserve => "reserve",
            Self::Listed => "listed",
            Self::Down => "down",
            Self::Drained => "drained",
        }
    }

    /// Every state, for metrics.
    pub const ALL: [State; 5] = [
        Self::Active,
        Self::Reserve,
        Self::Listed,
        Self::Down,
        Self::Drained,
    ];

    fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|x| x.as_str() == s)
    }
}

/// A block-list refusal a channel met.
#[derive(Debug, Clone, Serialize)]
pub struct Refusal {
    /// Unix time.
    pub at: i64,
    /// The recipient domain that refused.
    pub domain: String,
    /// Its reply.
    pub reply: String,
}

/// What is known of a channel now.
#[derive(Debug, Clone, Serialize)]
pub struct Live {
    /// Where it stands.
    pub state: State,
    /// A reserve carrying mail in place of an active channel that dropped out.
    pub promoted: bool,
    /// Since when (Unix time).
    pub since: i64,
    /// Why (the listings, the failure, the administrator).
    pub reason: String,
    /// The block lists its address is on, as last looked up.
    pub listings: Vec<String>,
    /// Since when the lists have been clean while it was listed.
    pub clean_since: Option<i64>,
    /// When the lists were last looked up for it.
    pub checked_at: i64,
    /// Recent block-list refusals.
    pub refusals: VecDeque<Refusal>,
    /// Failed connections in a row that were the channel's fault.
    pub failures: u32,
    /// Recent errors.
    pub errors: VecDeque<(i64, String)>,
    /// Recipients delivered through it since start.
    pub delivered: u64,
    /// Recipients it could not deliver (passed on, or left for a later retry) since start.
    pub deferred: u64,
    /// Running success rate of its attempts.
    pub success: f64,
    /// Look at the lists at the next turn of the watch.
    #[serde(skip)]
    pub recheck: bool,
}

impl Live {
    fn new(state: State, now: i64) -> Self {
        Self {
            state,
            promoted: false,
            since: now,
            reason: String::new(),
            listings: Vec::new(),
            clean_since: None,
            checked_at: 0,
            refusals: VecDeque::new(),
            failures: 0,
            errors: VecDeque::new(),
            delivered: 0,
            deferred: 0,
            success: 1.0,
            recheck: false,
        }
    }
}

/// A channel's record with one recipient domain.
#[derive(Debug, Clone, Copy)]
struct Record {
    ok: f64,
    latency: f64,
    used: i64,
}

/// Records per (channel, domain) and each domain's last good channel.
#[derive(Default)]
struct Records {
    by_pair: HashMap<(usize, String), Record>,
    sticky: HashMap<String, usize>,
}

impl Records {
    fn note(&mut self, channel: usize, domain: &str, ok: bool, latency: f64, now: i64) {
        if self.by_pair.len() >= MAX_RECORDS {
            // Forget the older half: bounded memory at amortised linear cost.
            let mut ages: Vec<i64> = self.by_pair.values().map(|r| r.used).collect();
            let mid = ages.len() / 2;
            let cut = *ages.select_nth_unstable(mid).1;
            self.by_pair.retain(|_, r| r.used > cut);
            self.sticky
                .retain(|d, c| self.by_pair.contains_key(&(*c, d.clone())));
        }
        let r = self
            .by_pair
            .entry((channel, domain.to_owned()))
            .or_insert(Record {
                ok: PRIOR_OK,
                latency,
                used: now,
            });
        r.ok = (1.0 - ALPHA) * r.ok + ALPHA * if ok { 1.0 } else { 0.0 };
        r.latency = (1.0 - ALPHA) * r.latency + ALPHA * latency;
        r.used = now;
        let ok_now = r.ok;
        // The first channel to deliver keeps the domain while it stays healthy; another that
        // delivers meanwhile (taking the overflow) does not take it over.
        let keeper = self.sticky.get(domain).copied();
        let keeper_healthy = keeper.is_some_and(|k| {
            self.by_pair
                .get(&(k, domain.to_owned()))
                .is_some_and(|r| r.ok >= STICKY_OK)
        });
        if ok && !keeper_healthy {
            self.sticky.insert(domain.to_owned(), channel);
        } else if !ok && keeper == Some(channel) && ok_now < STICKY_OK {
            self.sticky.remove(domain);
        }
    }
}

/// How one try on one channel went, for its record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tried {
    /// The next hop took or definitively refused the recipients.
    Answered,
    /// Nothing delivered: deferrals, a timeout or a failed connection to the next hop.
    Deferred,
    /// The channel itself failed (source address, SOCKS5 node, smart host unreachable).
    Broken,
}

/// One try on one channel for one domain, as the delivery saw it.
#[derive(Debug, Clone, Copy)]
pub struct Report<'a> {
    /// How it went.
    pub tried: Tried,
    /// Recipients delivered.
    pub delivered: usize,
    /// Recipients passed on or left for a retry.
    pub deferred: usize,
    /// Seconds it took.
    pub latency: f64,
    /// What went wrong, if anything did.
    pub error: Option<&'a str>,
}

/// The egress channels and what is known of them.
pub struct Relay {
    config: RelayConfig,
    channels: Vec<Channel>,
    board: Mutex<Vec<Live>>,
    records: Mutex<Records>,
    store: Option<Arc<SqliteStore>>,
    metrics: Arc<Metrics>,
    wake: Notify,
}

/// A permit to deliver through a channel; its slot frees when dropped.
pub struct Lease {
    /// The channel's index.
    pub channel: usize,
    _permit: OwnedSemaphorePermit,
}

impl Relay {
    /// Prepares the configured channels and restores their states from `store` (none: a
    /// relay that forgets at exit, for tests and tools).
    pub async fn open(
        config: RelayConfig,
        store: Option<Arc<SqliteStore>>,
        metrics: Arc<Metrics>,
    ) -> Result<Arc<Self>, OpenError> {
        let channels = config
            .channels
            .iter()
            .cloned()
            .map(|c| {
                let name = c.name.clone();
                Channel::new(c).map_err(|e| OpenError::Secret(name, e))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let now = crate::queue::manager::unix_now();
        let mut board: Vec<Live> = channels.iter().map(|c| Live::new(role(c), now)).collect();
        if let Some(store) = &store {
            for (name, saved) in store::load(store).await? {
                if let Some(i) = channels.iter().position(|c| c.name() == name) {
                    board[i] = restored(saved, role(&channels[i]), now);
                }
            }
        }
        let relay = Arc::new(Self {
            config,
            channels,
            board: Mutex::new(board),
            records: Mutex::default(),
            store,
            metrics,
            wake: Notify::new(),
        });
        let changes = relay.rebalance(&mut relay.board(), now);
        relay.publish(&changes).await;
        Ok(relay)
    }

    /// The section it was opened with.
    pub fn config(&self) -> &RelayConfig {
        &self.config
    }

    /// Whether any channel is configured.
    pub fn is_used(&self) -> bool {
        !self.channels.is_empty()
    }

    /// The channels, in configuration order.
    pub fn channels(&self) -> &[Channel] {
        &self.channels
    }

    fn board(&self) -> MutexGuard<'_, Vec<Live>> {
        self.board.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn records(&self) -> MutexGuard<'_, Records> {
        self.records.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The channels mail for `domain` may take, best first: the active ones by their record
    /// there (the domain's last good channel first while it stays healthy), then reserves; the
    /// listed ones only when nothing else is left, since many destinations ignore any one list.
    pub fn ranked(&self, domain: &str) -> Vec<usize> {
        let pool: Vec<usize> = match self.config.policies.iter().find(|p| p.covers(domain)) {
            Some(p) => p
                .channels
                .iter()
                .filter_map(|n| self.channels.iter().position(|c| c.name() == n))
                .collect(),
            None => (0..self.channels.len()).collect(),
        };
        let board = self.board();
        let records = self.records();
        let sticky = records.sticky.get(domain).copied();
        let score = |i: usize| {
            let r = records.by_pair.get(&(i, domain.to_owned()));
            let (ok, latency) = r.map_or((PRIOR_OK, 0.0), |r| (r.ok, r.latency));
            if sticky == Some(i) && ok >= STICKY_OK {
                return f64::INFINITY;
            }
            f64::from(self.channels[i].config.weight) * ok / (1.0 + latency / 30.0)
        };
        let mut ranked: Vec<(u8, f64, u64, usize)> = pool
            .into_iter()
            .filter_map(|i| {
                let tier = match board[i].state {
                    State::Active => 0,
                    State::Reserve => 1,
                    State::Listed => 2,
                    State::Down | State::Drained => return None,
                };
                Some((tier, score(i), spread(domain, self.channels[i].name()), i))
            })
            .collect();
        ranked.sort_by(|a, b| a.0.cmp(&b.0).then(b.1.total_cmp(&a.1)).then(b.2.cmp(&a.2)));
        let usable = ranked.iter().any(|r| r.0 < 2);
        ranked
            .into_iter()
            .filter(|r| !usable || r.0 < 2)
            .map(|r| r.3)
            .take(self.config.channels_per_attempt)
            .collect()
    }

    /// A slot on channel `i` if one is free now.
    pub fn try_lease(&self, i: usize) -> Option<Lease> {
        let permit = self.channels[i]
            .connections
            .clone()
            .try_acquire_owned()
            .ok()?;
        Some(Lease {
            channel: i,
            _permit: permit,
        })
    }

    /// A slot on channel `i`, waiting for one.
    pub async fn lease(&self, i: usize) -> Option<Lease> {
        let permit = self.channels[i]
            .connections
            .clone()
            .acquire_owned()
            .await
            .ok()?;
        Some(Lease {
            channel: i,
            _permit: permit,
        })
    }

    /// Records how a try on channel `i` for `domain` went.
    pub fn note(&self, i: usize, domain: &str, report: Report<'_>) {
        let Report {
            tried,
            delivered,
            deferred,
            latency,
            error,
        } = report;
        let now = crate::queue::manager::unix_now();
        let ok = tried == Tried::Answered;
        self.records().note(i, domain, ok, latency, now);
        let name = self.channels[i].name();
        self.metrics.channel_delivery(name, "delivered", delivered);
        self.metrics.channel_delivery(name, "deferred", deferred);
        let mut wake = false;
        {
            let mut board = self.board();
            let live = &mut board[i];
            live.success = (1.0 - ALPHA) * live.success + ALPHA * if ok { 1.0 } else { 0.0 };
            live.delivered += delivered as u64;
            live.deferred += deferred as u64;
            match tried {
                Tried::Broken => {
                    live.failures += 1;
                    wake = live.failures >= self.config.down_after;
                }
                Tried::Answered => live.failures = 0,
                Tried::Deferred => {}
            }
            if let Some(e) = error {
                if live.errors.len() >= MAX_ERRORS {
                    live.errors.pop_front();
                }
                live.errors.push_back((now, one_line(e)));
            }
        }
        if wake {
            self.wake.notify_one();
        }
    }

    /// Records that `domain` refused channel `i` by a block list: the watch looks at the lists
    /// for it at once.
    pub fn refused(&self, i: usize, domain: &str, reply: &str) {
        let now = crate::queue::manager::unix_now();
        {
            let mut board = self.board();
            let live = &mut board[i];
            if live.refusals.len() >= MAX_EVIDENCE {
                live.refusals.pop_front();
            }
            live.refusals.push_back(Refusal {
                at: now,
                domain: domain.to_owned(),
                reply: one_line(reply),
            });
            live.recheck = true;
        }
        tracing::warn!(
            channel = self.channels[i].name(),
            domain,
            reply,
            "refused by a block list"
        );
        self.wake.notify_one();
    }

    /// Every channel with what is known of it, for the board.
    pub fn board_view(&self) -> Vec<(ChannelView, Live)> {
        let board = self.board();
        self.channels
            .iter()
            .zip(board.iter())
            .map(|(c, live)| {
                (
                    ChannelView {
                        name: c.name().to_owned(),
                        kind: kind(c),
                        address: c.address().map(|a| a.to_string()),
                        reserve: c.config.reserve,
                        weight: c.config.weight,
                        in_flight: c.config.max_connections - c.connections.available_permits(),
                        max_connections: c.config.max_connections,
                    },
                    live.clone(),
                )
            })
            .collect()
    }

    /// The channel's history, newest first.
    pub async fn history(&self, name: &str, limit: u32) -> Result<Vec<Transition>, StoreError> {
        match &self.store {
            Some(s) => store::history(s, name, limit).await,
            None => Ok(Vec::new()),
        }
    }

    /// An administrator takes channel `name` out of rotation (`drain`) or puts it in
    /// (`activate`: a drained or down channel back to its role, a reserve promoted). A listed
    /// channel comes back by itself once delisted. What changed, or why nothing did.
    pub async fn decide(
        &self,
        name: &str,
        drain: bool,
        actor: &str,
    ) -> Result<Vec<Transition>, DecideError> {
        let i = self
            .channels
            .iter()
            .position(|c| c.name() == name)
            .ok_or(DecideError::Unknown)?;
        let now = crate::queue::manager::unix_now();
        let changes = {
            let mut board = self.board();
            let from = board[i].state;
            let to = match (drain, from) {
                (true, State::Drained) | (false, State::Active) => {
                    return Err(DecideError::Already(from));
                }
                (true, _) => State::Drained,
                (false, State::Listed) => return Err(DecideError::Listed),
                (false, State::Reserve) => State::Active,
                (false, _) => role(&self.channels[i]),
            };
            let mut changes = vec![self.set(&mut board, i, to, now, format!("by {actor}"), actor)];
            board[i].promoted = !drain && from == State::Reserve;
            board[i].failures = 0;
            changes.extend(self.rebalance(&mut board, now));
            changes
        };
        self.publish(&changes).await;
        Ok(changes)
    }

    /// Moves channel `i` to `to`, returning the transition to record.
    fn set(
        &self,
        board: &mut [Live],
        i: usize,
        to: State,
        now: i64,
        reason: String,
        actor: &str,
    ) -> Transition {
        let live = &mut board[i];
        let from = live.state;
        live.state = to;
        live.since = now;
        live.reason = reason.clone();
        if to != State::Active {
            live.promoted = false;
        }
        tracing::warn!(
            channel = self.channels[i].name(),
            from = from.as_str(),
            to = to.as_str(),
            reason,
            "channel state changed"
        );
        Transition {
            at: now,
            channel: self.channels[i].name().to_owned(),
            from,
            to,
            reason,
            actor: actor.to_owned(),
        }
    }

    /// Keeps as many channels carrying mail as are configured active: reserves are promoted
    /// while active channels are out, and stand down when they are back.
    fn rebalance(&self, board: &mut [Live], now: i64) -> Vec<Transition> {
        let wanted = self.channels.iter().filter(|c| !c.config.reserve).count();
        let mut serving = board.iter().filter(|l| l.state == State::Active).count();
        let mut changes = Vec::new();
        for i in 0..board.len() {
            if serving >= wanted {
                break;
            }
            if board[i].state == State::Reserve {
                let t = self.set(
                    board,
                    i,
                    State::Active,
                    now,
                    "promoted: an active channel is out".into(),
                    "gateway",
                );
                board[i].promoted = true;
                changes.push(t);
                serving += 1;
            }
        }
        for i in (0..board.len()).rev() {
            if serving <= wanted {
                break;
            }
            if board[i].state == State::Active && board[i].promoted {
                changes.push(self.set(
                    board,
                    i,
                    State::Reserve,
                    now,
                    "the active channels are back".into(),
                    "gateway",
                ));
                serving -= 1;
            }
        }
        changes
    }

    /// Stores transitions and updates the state gauges.
    async fn publish(&self, changes: &[Transition]) {
        let rows: Vec<(String, Live)> = {
            let board = self.board();
            changes
                .iter()
                .filter_map(|t| {
                    let i = self.channels.iter().position(|c| c.name() == t.channel)?;
                    Some((t.channel.clone(), board[i].clone()))
                })
                .collect()
        };
        if let Some(store) = &self.store
            && !changes.is_empty()
            && let Err(e) = store::save(store, &rows, changes).await
        {
            tracing::error!(error = %e, "channel states not stored");
        }
        let board = self.board();
        for (c, live) in self.channels.iter().zip(board.iter()) {
            self.metrics.channel_state(
                c.name(),
                live.state.as_str(),
                State::ALL.map(State::as_str),
            );
        }
    }
}

/// Why the channels could not be prepared.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// Their stored states could not be read.
    #[error("channel states: {0}")]
    Store(#[from] StoreError),
    /// A channel's SOCKS5 or smart-host password file could not be read.
    #[error("channel {0}: password file: {1}")]
    Secret(String, std::io::Error),
}

/// Why an administrator's decision was not carried out.
#[derive(Debug, thiserror::Error)]
pub enum DecideError {
    /// No such channel.
    #[error("no such channel")]
    Unknown,
    /// It is already there.
    #[error("the channel is already {}", .0.as_str())]
    Already(State),
    /// Listed channels come back only when delisted.
    #[error(
        "the channel is on a block list; it returns by itself once delisted and clean for the hold-down"
    )]
    Listed,
}

/// How a channel is configured, for the board.
#[derive(Debug, Clone, Serialize)]
pub struct ChannelView {
    /// Its name.
    pub name: String,
    /// `source`, `socks5` or `smarthost`.
    pub kind: &'static str,
    /// The public address watched.
    pub address: Option<String>,
    /// Configured as a reserve.
    pub reserve: bool,
    /// Its weight.
    pub weight: u32,
    /// Deliveries under way through it.
    pub in_flight: usize,
    /// Its limit.
    pub max_connections: usize,
}

fn kind(c: &Channel) -> &'static str {
    if c.config.smarthost.is_some() {
        "smarthost"
    } else if c.config.socks5.is_some() {
        "socks5"
    } else {
        "source"
    }
}

/// The state a channel has when nothing is wrong with it.
fn role(c: &Channel) -> State {
    if c.config.reserve {
        State::Reserve
    } else {
        State::Active
    }
}

/// A stored state on restart: drained and listed channels stay so; a down one is tried again;
/// the active/reserve split is redone by the rebalance.
fn restored(saved: store::Saved, role: State, now: i64) -> Live {
    let mut live = Live::new(role, now);
    match saved.state {
        State::Drained | State::Listed => {
            live.state = saved.state;
            live.since = saved.since;
            live.reason = saved.reason;
            live.listings = saved.listings;
            live.clean_since = saved.clean_since;
            live.recheck = saved.state == State::Listed;
        }
        State::Active | State::Reserve | State::Down => {}
    }
    live
}

/// A stable pseudo-random rank of `channel` for `domain` (rendezvous hashing), so that new
/// domains spread across equally good channels and each keeps to one.
fn spread(domain: &str, channel: &str) -> u64 {
    jianmen_scan::fnv::fnv1a(domain.bytes().chain([0]).chain(channel.bytes()))
}

/// Whether a refusal's text says the sending address is on a block list, not that the message
/// or recipient is refused: such mail is passed to another channel rather than bounced.
pub fn names_a_block_list(reply: &str) -> bool {
    let text = reply.to_ascii_lowercase();
    const PHRASES: [&str; 9] = [
        "blocked using",
        "blacklist",
        "blocklist",
        "block list",
        "black list",
        "poor reputation",
        "ip reputation",
        "listed at",
        "listed by",
    ];
    const LISTS: [&str; 9] = [
        "spamhaus",
        "barracuda",
        "spamcop",
        "sorbs",
        "uceprotect",
        "rbl",
        "dnsbl",
        "psbl",
        "abuseat",
    ];
    PHRASES.iter().any(|p| text.contains(p))
        || (text.contains("listed in") && !text.contains("not listed"))
        || text.split(|c: char| !c.is_ascii_alphanumeric()).any(|w| {
            LISTS
                .iter()
                .any(|l| w == *l || w.strip_suffix('s') == Some(*l))
        })
}

fn one_line(s: &str) -> String {
    let mut out: String = s
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(300)
        .collect();
    out.truncate(out.trim_end().len());
    out
}
