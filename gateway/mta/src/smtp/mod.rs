//! Inbound SMTP (RFC 5321) on tokio: the listener with its connection limits, and one
//! [`state::Session`] per client that walks the phases EHLO → MAIL → RCPT → DATA/BDAT.
//! What happens to an accepted message is decided by the [`Inbox`] the server was given.

pub mod data;
pub mod ehlo;
pub mod io;
pub mod mail;
pub mod rcpt;
pub mod relay;
pub mod reply;
pub mod session;
pub mod state;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use crate::config::SmtpConfig;
use crate::metrics::Metrics;
use jianmen_scan::Envelope;
use jianmen_scan::reputation::network_of;
pub use relay::{Forwarded, Relays};
pub use reply::Reply;

/// Receives what a session accepts. The gateway's inbox scans and spools; the demo's mailbox
/// writes files. Replies returned here are sent to the client as they are.
#[async_trait]
pub trait Inbox: Send + Sync + 'static {
    /// Called at MAIL FROM before a transaction starts (e.g. refuses when the disk is full or
    /// the client sends too fast). `relay` says the client is one of the organisation's own
    /// mail servers ([`Relays`]); `login` is the sender's login there, when its XFORWARD said.
    async fn check_mail(
        &self,
        client_ip: IpAddr,
        relay: bool,
        login: Option<&str>,
        from: &str,
    ) -> Result<(), Reply>;
    /// Called for each RCPT TO with the address as given (recipient policy, greylisting); only
    /// a `relay` may send to domains the gateway does not protect.
    async fn check_rcpt(
        &self,
        client_ip: IpAddr,
        relay: bool,
        from: &str,
        rcpt: &str,
    ) -> Result<(), Reply>;
    /// Takes a complete message: `message[..trace_len]` is the `Received:` header the session
    /// prepended, the rest is what the client sent. Must only return 2xx once the message is
    /// durably stored.
    async fn accept(&self, envelope: Envelope, message: Vec<u8>, trace_len: usize) -> Reply;
}

/// Settings a session needs that are not in [`SmtpConfig`].
#[derive(Clone)]
pub struct SessionContext {
    /// Our host name (greeting, EHLO, Received).
    pub hostname: String,
    /// Limits and timeouts.
    pub limits: Arc<SmtpConfig>,
    /// STARTTLS acceptor, if a certificate is configured.
    pub tls: Option<Arc<jianmen_gm::tls::ServerTls>>,
    /// Where accepted messages go.
    pub inbox: Arc<dyn Inbox>,
    /// Counters.
    pub metrics: Arc<Metrics>,
    /// The organisation's mail servers, which may relay.
    pub relays: Arc<Relays>,
}

/// Counts live sessions overall, per client address and per client network, so floods get
/// `421` instead of resources and the sessions of well-behaved networks keep room.
#[derive(Default)]
pub(crate) struct SessionCounter {
    counts: Mutex<Counts>,
}

#[derive(Default)]
struct Counts {
    total: usize,
    per_ip: HashMap<IpAddr, usize>,
    per_network: HashMap<IpAddr, usize>,
}

/// A live session's place in the counter; released on drop.
struct SessionSlot {
    counter: Arc<SessionCounter>,
    ip: IpAddr,
}

impl SessionCounter {
    fn counts(&self) -> std::sync::MutexGuard<'_, Counts> {
        self.counts.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Takes a slot unless a limit is reached; the error is the reply to send. The last tenth
    /// of `max_sessions` only goes to networks that hold no session yet.
    fn enter(
        self: &Arc<Self>,
        ip: IpAddr,
        limits: &SmtpConfig,
    ) -> Result<SessionSlot, &'static str> {
        let mut c = self.counts();
        let network = network_of(ip);
        let on_network = c.per_network.get(&network).copied().unwrap_or(0);
        let reserved = limits.max_sessions / 10;
        if c.total >= limits.max_sessions
            || (on_network > 0 && c.total >= limits.max_sessions - reserved)
        {
            return Err("421 4.3.2 Too many connections, try again later\r\n");
        }
        if c.per_ip.get(&ip).copied().unwrap_or(0) >= limits.max_sessions_per_ip {
            return Err("421 4.7.0 Too many connections from your address\r\n");
        }
        if on_network >= limits.max_sessions_per_network {
            return Err("421 4.7.0 Too many connections from your network\r\n");
        }
        c.total += 1;
        *c.per_ip.entry(ip).or_insert(0) += 1;
        *c.per_network.entry(network).or_insert(0) += 1;
        Ok(SessionSlot {
            counter: self.clone(),
            ip,
        })
    }

    /// Sessions open now.
    fn total(&self) -> usize {
        self.counts().total
    }

    /// Whether half of `max_sessions` or more are in use: sessions then get the short idle
    /// timeout.
    pub(crate) fn stressed(&self, limits: &SmtpConfig) -> bool {
        self.total() * 2 >= limits.max_sessions
    }
}

impl Drop for SessionSlot {
    fn drop(&mut self) {
        let mut guard = self.counter.counts();
        let c = &mut *guard;
        c.total = c.total.saturating_sub(1);
        for (map, key) in [
            (&mut c.per_ip, self.ip),
            (&mut c.per_network, network_of(self.ip)),
        ] {
            if let Some(n) = map.get_mut(&key) {
                *n -= 1;
                if *n == 0 {
                    map.remove(&key);
                }
            }
        }
    }
}

/// The SMTP listener.
pub struct Server {
    ctx: SessionContext,
    sessions: Arc<SessionCounter>,
    shutdown: watch::Sender<bool>,
    memory: io::MemoryBudget,
}

impl Server {
    /// Creates a server that hands accepted mail to `ctx.inbox`.
    pub fn new(ctx: SessionContext) -> Self {
        let memory = io::MemoryBudget::new(ctx.limits.max_inflight_mib);
        Self {
            ctx,
            sessions: Arc::default(),
            shutdown: watch::Sender::new(false),
            memory,
        }
    }

    /// Tells sessions to close: idle ones at once (421), those inside a transaction once it
    /// ends. Stopping the listeners is the caller's part (drop the [`Server::serve`] future).
    pub fn begin_shutdown(&self) {
        self.shutdown.send_replace(true);
    }

    /// Sessions currently open.
    pub fn active_sessions(&self) -> usize {
        self.sessions.total()
    }

    /// Binds every configured address; fails before serving if any cannot be bound, naming it.
    pub async fn bind(addrs: &[SocketAddr]) -> std::io::Result<Vec<TcpListener>> {
        let mut listeners = Vec::with_capacity(addrs.len());
        for addr in addrs {
            let listener = TcpListener::bind(addr).await.map_err(|e| {
                std::io::Error::new(e.kind(), format!("cannot listen on {addr}: {e}"))
            })?;
            listeners.push(listener);
        }
        Ok(listeners)
    }

    /// Serves on already bound listeners until the task is dropped.
    pub async fn serve(self: Arc<Self>, listeners: Vec<TcpListener>) {
        let mut tasks = tokio::task::JoinSet::new();
        for listener in listeners {
            let server = self.clone();
            tasks.spawn(async move { server.accept_loop(listener).await });
        }
        while tasks.join_next().await.is_some() {}
    }

    async fn accept_loop(self: Arc<Self>, listener: TcpListener) {
        loop {
            let (stream, peer) = match listener.accept().await {
                Ok(x) => x,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                }
            };
            let server = self.clone();
            tokio::spawn(async move { server.handle(stream, peer).await });
        }
    }

    async fn handle(&self, mut stream: TcpStream, peer: SocketAddr) {
        let _ = stream.set_nodelay(true);
        let slot = match self.sessions.enter(peer.ip(), &self.ctx.limits) {
            Ok(slot) => slot,
            Err(reply) => {
                self.ctx.metrics.sessions_refused.inc();
                let _ = tokio::time::timeout(
                    std::time::Duration::from_secs(5),
                    stream.write_all(reply.as_bytes()),
                )
                .await;
                return;
            }
        };
        self.ctx.metrics.sessions.inc();
        let shutdown = self.shutdown.subscribe();
        let memory = self.memory.clone();
        state::Session::new(
            self.ctx.clone(),
            peer.ip(),
            Box::new(stream),
            shutdown,
            memory,
            self.sessions.clone(),
        )
        .run()
        .await;
        drop(slot);
    }
}
