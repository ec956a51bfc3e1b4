//! What one SMTP session knows between commands — the connection, the client, the open
//! transaction — in one place, so that the command loop ([`super::session`]) and each phase
//! (`ehlo`, `mail`, `rcpt`, `data`) depend on it and not on each other.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

use super::io::{Conn, Io, MemoryBudget, Reservation};
use super::relay::Forwarded;
use super::reply::Reply;
use super::{SessionContext, SessionCounter};

/// A message being assembled from BDAT chunks.
pub struct Chunks {
    /// `Received:` header followed by the chunks so far.
    pub buf: Vec<u8>,
    /// Length of the `Received:` header at the start of `buf`.
    pub trace_len: usize,
    /// The memory the buffer holds.
    pub memory: Reservation,
}

/// What the command loop does after a command.
#[derive(Debug, PartialEq, Eq)]
pub enum Flow {
    /// Read the next command.
    Continue,
    /// Flush and close the connection.
    Close,
}

/// The mail transaction between MAIL and the end of DATA/BDAT.
pub struct Transaction {
    /// Queue id given to the message (in `Received:` and the spool).
    pub queue_id: String,
    /// Reverse path (empty for `<>`).
    pub mail_from: String,
    /// SMTPUTF8 was requested on MAIL.
    pub smtputf8: bool,
    /// Accepted recipients, deduplicated case-insensitively.
    pub rcpts: Vec<String>,
    /// Message being assembled from BDAT chunks, and whether it still fits the size limit.
    pub bdat: Option<Chunks>,
    /// What an internal relay said about the client of this transaction (XFORWARD before
    /// MAIL): it ends with the transaction, however the transaction ends.
    pub forwarded: Forwarded,
}

/// A client connection from greeting to QUIT.
pub struct Session {
    pub(super) ctx: SessionContext,
    pub(super) conn: Conn,
    pub(super) client_ip: IpAddr,
    /// The client is one of the organisation's mail servers (`smtp.internal_relays`).
    pub(super) relay: bool,
    /// What an internal relay told about its own client (XFORWARD) for the next transaction.
    pub(super) forwarded: Forwarded,
    /// Name given in HELO/EHLO, once given.
    pub(super) helo: Option<String>,
    /// The client used EHLO (extensions allowed).
    pub(super) esmtp: bool,
    /// STARTTLS completed.
    pub(super) tls: bool,
    /// What STARTTLS negotiated (for the `Received:` header).
    pub(super) tls_cipher: Option<String>,
    pub(super) tx: Option<Transaction>,
    pub(super) messages: usize,
    pub(super) errors: usize,
    pub(super) junk: usize,
    pub(super) shutdown: watch::Receiver<bool>,
    pub(super) memory: MemoryBudget,
    /// The server's session count: under stress the idle timeout shortens.
    pub(super) load: Arc<SessionCounter>,
    /// Commands read so far (the first one has its own timeout).
    pub(super) commands: usize,
}

impl Session {
    /// Prepares a session over `io` for a client at `client_ip`.
    /// `shutdown` turning true asks the session to close once no transaction is open; message
    /// data is held against the server-wide `memory` budget; `load` tells it when the server is
    /// under stress.
    pub(super) fn new(
        ctx: SessionContext,
        client_ip: IpAddr,
        io: Box<dyn Io>,
        shutdown: watch::Receiver<bool>,
        memory: MemoryBudget,
        load: Arc<SessionCounter>,
    ) -> Self {
        let deadline = Instant::now() + ctx.limits.session_timeout();
        let conn = Conn::new(io, ctx.limits.idle_timeout(), deadline);
        let relay = ctx.relays.is_internal(client_ip);
        Self {
            ctx,
            conn,
            client_ip,
            relay,
            forwarded: Forwarded::default(),
            helo: None,
            esmtp: false,
            tls: false,
            tls_cipher: None,
            tx: None,
            messages: 0,
            errors: 0,
            junk: 0,
            shutdown,
            memory,
            load,
            commands: 0,
        }
    }

    /// How long the client may now stay silent: short before its first command and while
    /// the server is under stress, the configured idle timeout otherwise.
    pub(super) fn idle_timeout(&self) -> Duration {
        let limits = &self.ctx.limits;
        let mut idle = limits.idle_timeout();
        if self.commands == 0 {
            idle = idle.min(Duration::from_secs(limits.first_command_timeout_secs));
        }
        if self.load.stressed(limits) {
            idle = idle.min(Duration::from_secs(limits.stress_idle_timeout_secs));
        }
        idle
    }

    /// Queues a reply for the client.
    pub(super) fn send(&mut self, reply: &Reply) {
        let mut out = Vec::with_capacity(64);
        reply.write_to(&mut out);
        self.conn.reply(&out);
    }

    /// Queues a reply for a failed command; too many of them end the session.
    pub(super) fn fail(&mut self, reply: Reply) -> Flow {
        self.send(&reply);
        self.errors += 1;
        if self.errors >= self.ctx.limits.max_errors {
            self.send(&Reply::new(
                421,
                "4.7.0",
                "Too many errors, closing connection",
            ));
            return Flow::Close;
        }
        Flow::Continue
    }

    /// Counts a command that moves no mail; too many of them end the session.
    pub(super) fn junk(&mut self) -> Option<Flow> {
        self.junk += 1;
        if self.junk > self.ctx.limits.max_junk_commands {
            self.send(&Reply::new(
                421,
                "4.7.0",
                "Too many commands, closing connection",
            ));
            return Some(Flow::Close);
        }
        None
    }
}
