//! Jianmen's detection: everything that judges a message and nothing that moves one. A message
//! is viewed once ([`message`], [`html`], [`attach`] with archives and [`clamav`]), checked
//! ([`auth`], [`reputation`] and [`dns`], [`phish`], [`bec`], [`domain`], [`greylist`]), scored
//! by the [`rules`] and the content model ([`features`], [`model`], `neural` on tract-onnx) and
//! decided per recipient domain ([`verdict`]); [`pipeline`] runs all of it behind [`Scanner`].
//! [`feedback`] keeps what users report, [`accuracy`] measures how well verdicts separate ham
//! from spam. [`dlp`] finds what outgoing mail must not carry; [`behaviour`] scores how internal
//! accounts send, to find stolen ones; [`hunt`] says what a delivered message can be found
//! again by when a threat becomes known later; [`intel`] reads STIX indicators and refuses
//! mail that matches one in force.
//!
//! It hands on [`Disposition`]s per recipient. Its configuration types ([`config`]) are
//! sections of the gateway's file; what else it needs (host name, data directory, protected
//! domains, files an upgrade shipped) is passed in as a [`pipeline::Environment`], never looked
//! up. No queue, database or web server below this crate (no sqlx, no actix-web).
//!
//! The scan hook: every message is judged between the end of DATA and the queue, so that a
//! reject is said in the SMTP session instead of becoming a bounce. The detection pipeline plugs
//! in behind [`Scanner`]; [`PassThrough`] delivers everything.

#![warn(missing_docs)]

pub mod accuracy;
pub mod attach;
pub mod auth;
pub mod bec;
pub mod behaviour;
pub mod clamav;
pub mod config;
pub mod dlp;
pub mod dns;
pub mod domain;
pub mod features;
pub mod feedback;
pub mod fnv;
pub mod greylist;
pub mod html;
pub mod hunt;
pub mod intel;
pub mod message;
pub mod model;
#[cfg(feature = "neural")]
pub mod neural;
pub mod ngram;
pub mod phish;
pub mod pipeline;
pub mod pool;
pub mod reputation;
pub mod rules;
pub mod search;
pub mod verdict;

use std::net::IpAddr;

use async_trait::async_trait;

/// Where the scanner counts the checks it had to leave out (the gateway's metrics), so that an
/// operator sees a degraded scan instead of inferring it from verdicts.
pub trait SkippedChecks: Send + Sync {
    /// One message was judged without `check`: `dns` (the resolver is down or too slow) or
    /// `budget` (the scan ran out of time before every check had run).
    fn skipped(&self, check: &'static str);
}

/// What the SMTP session knows about a message when it is scanned.
#[derive(Debug, Clone)]
pub struct Envelope {
    /// Queue id the message will carry (also in its `Received:` header).
    pub queue_id: String,
    /// Address of the connecting client.
    pub client_ip: IpAddr,
    /// Name the client gave in HELO/EHLO.
    pub helo: String,
    /// Reverse path; empty for bounces.
    pub mail_from: String,
    /// Accepted recipients.
    pub rcpts: Vec<String>,
    /// The session was protected by TLS.
    pub tls: bool,
    /// The client asked for SMTPUTF8.
    pub smtputf8: bool,
    /// Which way the message travels: inbound mail is judged for threats, outbound and internal
    /// mail for what it must not carry.
    pub direction: Direction,
    /// The login the sender authenticated with at the organisation's mail server, when its
    /// relay said (XFORWARD).
    pub login: Option<String>,
}

/// Which way a message crosses the gateway. Only a trusted internal relay can send mail that is
/// not inbound, so the direction is decided by where the message came from and where it goes,
/// never by what it says about itself.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// From the Internet to a protected domain.
    #[default]
    Inbound,
    /// From the organisation's mail system to a domain it does not host.
    Outbound,
    /// From the organisation's mail system to its own domains.
    Internal,
}

impl Direction {
    /// Every direction, in the order the console lists them.
    pub const ALL: [Direction; 3] = [Direction::Inbound, Direction::Outbound, Direction::Internal];

    /// Lower-case name (`inbound`, `outbound`, `internal`).
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Inbound => "inbound",
            Direction::Outbound => "outbound",
            Direction::Internal => "internal",
        }
    }

    /// The direction a name gives, if it is one.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|d| d.as_str() == name)
    }
}

/// A scanner's decision about one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Queue for delivery unchanged.
    Deliver,
    /// Queue for delivery with these header fields added on top.
    Tag {
        /// `(name, value)` pairs, e.g. `("X-Jianmen-Spam", "yes")`.
        headers: Vec<(String, String)>,
        /// Text put in front of the Subject, e.g. `[SPAM]`.
        subject_prefix: Option<String>,
    },
    /// Keep the message but do not deliver it; it waits for an administrator.
    Hold {
        /// Why it is held, shown to administrators.
        reason: String,
        /// How long it waits before it expires, when the policy says (a DLP approval); else
        /// the quarantine's retention for its class.
        hours: Option<u32>,
    },
    /// Accept and drop; only the log remembers it.
    Discard {
        /// Why, for the log.
        reason: String,
    },
    /// Refuse at end of DATA with this reply.
    Reject {
        /// Three-digit reply code, 4xx or 5xx.
        code: u16,
        /// Enhanced status code, e.g. `5.7.1`.
        enhanced: String,
        /// Reply text.
        text: String,
    },
}

/// One piece of evidence a check found, by symbol name (scored by the rule set).
#[derive(Debug, Clone, PartialEq)]
pub struct Hit {
    /// Symbol name, e.g. `ATTACH_EXECUTABLE`.
    pub name: String,
    /// What exactly matched, for the explanation (file name, URL, keyword…).
    pub detail: String,
    /// Share of the symbol's configured score this hit carries, in `0.0..=1.0` (1.0 for
    /// yes/no checks; graded evidence such as the model's confidence scales it).
    pub weight: f64,
}

/// The evidence gathered for one message; each symbol counts once.
#[derive(Debug, Default, Clone)]
pub struct Symbols {
    hits: Vec<Hit>,
}

impl Symbols {
    /// Records `name` with `detail`, unless it is already recorded.
    pub fn add(&mut self, name: &str, detail: impl Into<String>) {
        self.add_weighted(name, 1.0, detail);
    }

    /// Records `name` carrying `weight` (clamped to `0.0..=1.0`) of its score, unless it is
    /// already recorded.
    pub fn add_weighted(&mut self, name: &str, weight: f64, detail: impl Into<String>) {
        if !self.has(name) {
            self.hits.push(Hit {
                name: name.to_owned(),
                detail: detail.into(),
                weight: if weight.is_nan() {
                    0.0
                } else {
                    weight.clamp(0.0, 1.0)
                },
            });
        }
    }

    /// Whether `name` was recorded.
    pub fn has(&self, name: &str) -> bool {
        self.hits.iter().any(|h| h.name == name)
    }

    /// Recorded symbol names, in the order found.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.hits.iter().map(|h| h.name.as_str())
    }

    /// Recorded hits, in the order found.
    pub fn hits(&self) -> &[Hit] {
        &self.hits
    }
}

/// The verdict for some of a message's recipients (recipient domains may have different
/// policies, so one message can be split).
#[derive(Debug, Clone, PartialEq)]
pub struct Disposition {
    /// The recipients this verdict applies to.
    pub rcpts: Vec<String>,
    /// What happens to the message for them.
    pub verdict: Verdict,
    /// The evidence behind the verdict, when the message was analysed (kept with held mail and
    /// in message tracking so an administrator can see why).
    pub report: Option<verdict::Report>,
}

impl Disposition {
    /// One verdict for every recipient of `envelope`.
    pub fn all(envelope: &Envelope, verdict: Verdict) -> Vec<Self> {
        vec![Self {
            rcpts: envelope.rcpts.clone(),
            verdict,
            report: None,
        }]
    }
}

/// Judges messages. Implementations must be cheap to share and must never panic on hostile input.
#[async_trait]
pub trait Scanner: Send + Sync {
    /// Decides what happens to `message` (the raw bytes as received, without our `Received:`);
    /// every recipient of `envelope` appears in exactly one returned disposition.
    async fn scan(&self, envelope: &Envelope, message: &[u8]) -> Vec<Disposition>;

    /// Whether the allow list in force names `client` or `sender` (greylisting and rate
    /// limits spare them); `None` when this scanner keeps no list.
    fn allowed(&self, _client: IpAddr, _sender: &str) -> Option<bool> {
        None
    }
}

/// A scanner that lets every message through; the default until detection is configured.
#[derive(Debug, Default, Clone, Copy)]
pub struct PassThrough;

#[async_trait]
impl Scanner for PassThrough {
    async fn scan(&self, envelope: &Envelope, _message: &[u8]) -> Vec<Disposition> {
        Disposition::all(envelope, Verdict::Deliver)
    }
}
