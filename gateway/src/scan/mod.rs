//! The scan hook: every message is judged here between the end of DATA and the queue, so that a
//! reject is said in the SMTP session instead of becoming a bounce. The detection pipeline plugs in
//! behind [`Scanner`]; [`PassThrough`] delivers everything.

pub mod html;
pub mod message;

use std::net::IpAddr;

use async_trait::async_trait;

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
    },
    /// Keep the message but do not deliver it; it waits for an administrator.
    Hold {
        /// Why it is held, shown to administrators.
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

/// Judges messages. Implementations must be cheap to share and must never panic on hostile input.
#[async_trait]
pub trait Scanner: Send + Sync {
    /// Decides what happens to `message` (the raw bytes as received, without our `Received:`).
    async fn scan(&self, envelope: &Envelope, message: &[u8]) -> Verdict;
}

/// A scanner that lets every message through; the default until detection is configured.
#[derive(Debug, Default, Clone, Copy)]
pub struct PassThrough;

#[async_trait]
impl Scanner for PassThrough {
    async fn scan(&self, _envelope: &Envelope, _message: &[u8]) -> Verdict {
        Verdict::Deliver
    }
}
