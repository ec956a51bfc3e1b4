//! Outbound delivery: [`lookup`] finds the next hop (with [`dane`] and [`mta_sts`] saying what
//! MX hosts must prove), [`client`] speaks SMTP to it. This module
//! adds what sits between them: per-destination concurrency limits, reuse of idle connections,
//! failover across a destination's hosts, the mapping of replies to recipient outcomes, and —
//! for mail routed by MX when delivery channels are configured — the choice of channel and the
//! hand-over to the next one when a channel cannot deliver ([`crate::relay`]).

pub mod client;
pub mod dane;
pub mod lookup;
pub mod mta_sts;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::config::{Config, DeliveryConfig};
use crate::queue::{QueuedMessage, RcptOutcome, RcptStatus};
use crate::relay::channel::{Channel, DialError};
use crate::relay::{Lease, Relay, Report, Tried, names_a_block_list};
use client::{Client, ClientError, ClientSettings};
use lookup::{Destination, LookupError, Router};

/// Delivers messages to next hops.
pub struct Outbound {
    router: Router,
    settings: ClientSettings,
    config: DeliveryConfig,
    idle: Mutex<HashMap<String, Vec<(Client, Instant)>>>,
    limits: Mutex<HashMap<String, Arc<Semaphore>>>,
    relay: Option<Arc<Relay>>,
}

/// What one try over one path came to.
struct Attempt {
    outcomes: Vec<RcptOutcome>,
    /// The delivery channel's own failure, when that is why nothing was sent.
    broken: Option<String>,
}

impl Attempt {
    fn all(rcpts: &[String], status: RcptStatus, reply: &str) -> Self {
        Self {
            outcomes: all(rcpts, status, reply),
            broken: None,
        }
    }
}

impl Outbound {
    /// Builds the delivery side from the configuration, looking up MX on the shared resolver.
    pub fn new(
        config: &Config,
        resolver: hickory_resolver::TokioResolver,
    ) -> std::io::Result<Self> {
        let d = &config.delivery;
        Ok(Self {
            router: Router::new(config, resolver).map_err(std::io::Error::other)?,
            settings: ClientSettings {
                helo: config.server.hostname.clone(),
                connect_timeout: Duration::from_secs(d.connect_timeout_secs),
                command_timeout: Duration::from_secs(d.command_timeout_secs),
                tls: jianmen_gm::tls::client_config().map_err(std::io::Error::other)?,
            },
            config: d.clone(),
            idle: Mutex::default(),
            limits: Mutex::default(),
            relay: None,
        })
    }

    /// Sends mail routed by MX through `relay`'s channels.
    pub fn relaying(mut self, relay: Arc<Relay>) -> Self {
        self.relay = Some(relay);
        self
    }

    fn limit(&self, key: &str) -> Arc<Semaphore> {
        let mut map = self.limits.lock().unwrap_or_else(|p| p.into_inner());
        map.entry(key.to_owned())
            .or_insert_with(|| Arc::new(Semaphore::new(self.config.concurrency_per_destination)))
            .clone()
    }

    fn take_idle(&self, key: &str) -> Option<Client> {
        let max_idle = Duration::from_secs(self.config.connection_idle_secs);
        let mut map = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        let list = map.get_mut(key)?;
        while let Some((client, since)) = list.pop() {
            if since.elapsed() < max_idle {
                return Some(client);
            }
        }
        None
    }

    fn put_idle(&self, key: &str, client: Client) {
        if client.transactions >= self.config.max_messages_per_connection
            || self.config.connection_idle_secs == 0
        {
            tokio::spawn(client.quit());
            return;
        }
        let max_idle = Duration::from_secs(self.config.connection_idle_secs);
        let mut map = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        // Drop connections idle too long everywhere, so destinations never used again do not
        // keep sockets open forever.
        map.retain(|_, list| {
            list.retain(|(_, since)| since.elapsed() < max_idle);
            !list.is_empty()
        });
        map.entry(key.to_owned())
            .or_default()
            .push((client, Instant::now()));
    }

    /// Delivers `data` to `rcpts` (all in `domain`); one outcome per recipient.
    pub async fn deliver(
        &self,
        domain: &str,
        message: &QueuedMessage,
        data: &[u8],
        rcpts: Vec<String>,
    ) -> Vec<RcptOutcome> {
        let dest = match self.router.resolve(domain).await {
            Ok(d) => d,
            Err(LookupError::Temporary(e)) => return all(&rcpts, RcptStatus::Pending, &e),
            Err(LookupError::Permanent(e)) => {
                return all(&rcpts, RcptStatus::Failed, &format!("550 5.1.2 {e}"));
            }
        };
        if let Some(relay) = self.relay.as_ref().filter(|r| r.is_used())
            && !dest.is_route()
        {
            return self
                .by_channels(relay, domain, &dest, message, data, rcpts)
                .await;
        }
        let Ok(permit) = self.limit(&dest.key).acquire_owned().await else {
            return all(&rcpts, RcptStatus::Pending, "shutting down");
        };
        self.attempt(None, &dest, &dest.key, permit, message, data, &rcpts)
            .await
            .outcomes
    }

    /// Tries the channels `relay` ranks for `domain` in turn, each with the recipients the
    /// ones before could not deliver: deferred, unreachable, or refused by a block list. What
    /// is left after the last waits for the message's next retry — a block-list refusal too,
    /// since it says nothing of the message or the recipient.
    async fn by_channels(
        &self,
        relay: &Relay,
        domain: &str,
        mx: &Destination,
        message: &QueuedMessage,
        data: &[u8],
        rcpts: Vec<String>,
    ) -> Vec<RcptOutcome> {
        let ranked = relay.ranked(domain);
        if ranked.is_empty() {
            return all(
                &rcpts,
                RcptStatus::Pending,
                &format!("no delivery channel in service for {domain}"),
            );
        }
        let mut paths = Vec::with_capacity(ranked.len());
        for &i in &ranked {
            let channel = &relay.channels()[i];
            let dest = match self.router.smarthost(channel.name()).await {
                None => Ok(mx.clone()),
                Some(found) => found,
            };
            let key = format!(
                "{}|{}",
                channel.name(),
                dest.as_ref().map_or("", |d| &d.key)
            );
            paths.push((i, dest, key));
        }
        // The best channel with room now takes the mail (its slots taken at once, so that
        // deliveries starting together spread); when all are busy, the first to free a slot.
        let mut slots = None;
        let mut first = paths.iter().position(|(i, dest, key)| {
            if dest.is_ok()
                && let Some(lease) = relay.try_lease(*i)
                && let Ok(permit) = self.limit(key).try_acquire_owned()
            {
                slots = Some((lease, permit));
                return true;
            }
            false
        });
        if first.is_none() {
            let waits: Vec<_> = paths
                .iter()
                .enumerate()
                .filter(|(_, (_, dest, _))| dest.is_ok())
                .map(|(n, (i, _, key))| {
                    let limit = self.limit(key);
                    Box::pin(async move {
                        let lease = relay.lease(*i).await?;
                        let permit = limit.acquire_owned().await.ok()?;
                        Some((n, lease, permit))
                    })
                })
                .collect();
            if !waits.is_empty()
                && let (Some((n, lease, permit)), _, _) =
                    futures_util::future::select_all(waits).await
            {
                slots = Some((lease, permit));
                first = Some(n);
            }
        }
        if let Some(first) = first {
            paths[..=first].rotate_right(1);
        }
        let mut pending = rcpts;
        let mut last: HashMap<String, RcptOutcome> = HashMap::new();
        let mut done = Vec::new();
        for (i, dest, key) in paths {
            let channel = &relay.channels()[i];
            let started = Instant::now();
            let attempt = match dest {
                Err(e) => Attempt::all(&pending, RcptStatus::Pending, &e.to_string()),
                Ok(dest) => {
                    let (lease, permit) = match slots.take() {
                        Some(taken) => taken,
                        None => {
                            match (relay.lease(i).await, self.limit(&key).acquire_owned().await) {
                                (Some(lease), Ok(permit)) => (lease, permit),
                                _ => return all(&pending, RcptStatus::Pending, "shutting down"),
                            }
                        }
                    };
                    let attempt = self
                        .attempt(
                            Some((channel, &lease)),
                            &dest,
                            &key,
                            permit,
                            message,
                            data,
                            &pending,
                        )
                        .await;
                    drop(lease);
                    attempt
                }
            };
            let mut again = Vec::new();
            let (mut delivered, mut answered, mut refusal) = (0, false, None);
            for o in attempt.outcomes {
                let blocked = o.status != RcptStatus::Delivered && names_a_block_list(&o.reply);
                match o.status {
                    RcptStatus::Delivered => delivered += 1,
                    RcptStatus::Failed if !blocked => answered = true,
                    RcptStatus::Failed | RcptStatus::Pending => {
                        if blocked {
                            refusal.get_or_insert_with(|| o.reply.clone());
                        }
                        again.push(o.address.clone());
                        last.insert(o.address.clone(), o);
                        continue;
                    }
                }
                last.remove(&o.address);
                done.push(o);
            }
            let tried = if attempt.broken.is_some() {
                Tried::Broken
            } else if delivered > 0 || answered {
                Tried::Answered
            } else {
                Tried::Deferred
            };
            let error = attempt.broken.or_else(|| refusal.clone()).or_else(|| {
                again
                    .first()
                    .and_then(|a| last.get(a))
                    .map(|o| o.reply.clone())
            });
            let took = started.elapsed().as_secs_f64();
            let report = Report {
                tried,
                delivered,
                deferred: again.len(),
                latency: took,
                error: error.as_deref(),
            };
            relay.note(i, domain, report);
            if let Some(reply) = &refusal {
                relay.refused(i, domain, reply);
            }
            if again.is_empty() {
                return done;
            }
            tracing::info!(
                queue_id = %message.id,
                channel = channel.name(),
                domain,
                left = again.len(),
                error = error.as_deref().unwrap_or(""),
                "channel did not deliver; next channel"
            );
            pending = again;
        }
        done.extend(pending.into_iter().map(|address| {
            let reply = last.remove(&address).map(|o| o.reply).unwrap_or_default();
            let reply = if names_a_block_list(&reply) {
                format!("block-listed on every channel tried; retried later: {reply}")
            } else {
                reply
            };
            RcptOutcome {
                address,
                status: RcptStatus::Pending,
                reply,
            }
        }));
        done
    }

    /// One transaction with `dest` (through `channel` when given), on an idle connection kept
    /// under `key` or a new one; `permit` is the destination's concurrency slot.
    #[allow(clippy::too_many_arguments)]
    async fn attempt(
        &self,
        channel: Option<(&Channel, &Lease)>,
        dest: &Destination,
        key: &str,
        permit: OwnedSemaphorePermit,
        message: &QueuedMessage,
        data: &[u8],
        rcpts: &[String],
    ) -> Attempt {
        let channel = channel.map(|(c, _)| c);
        let (mut client, reused) = match self.take_idle(key) {
            Some(c) => (c, true),
            None => match self.connect(channel, dest).await {
                Ok(c) => (c, false),
                Err(e) => return e.attempt(rcpts),
            },
        };
        let (from, utf8) = (&message.mail_from, message.smtputf8);
        let mut result = client.send(from, rcpts, data, utf8).await;
        if reused && matches!(result, Err(ClientError::Stale(_))) {
            // The peer closed the idle connection; nothing was sent: use a new one.
            client = match self.connect(channel, dest).await {
                Ok(c) => c,
                Err(e) => return e.attempt(rcpts),
            };
            result = client.send(from, rcpts, data, utf8).await;
        }
        drop(permit);
        let outcomes = match result {
            Ok(replies) => {
                self.put_idle(key, client);
                replies
                    .into_iter()
                    .map(|(address, reply)| outcome(address, reply))
                    .collect()
            }
            Err(ClientError::Permanent(e)) => {
                tokio::spawn(client.quit());
                all(rcpts, RcptStatus::Failed, &e)
            }
            Err(ClientError::Temporary(e) | ClientError::Stale(e)) => {
                all(rcpts, RcptStatus::Pending, &e)
            }
        };
        Attempt {
            outcomes,
            broken: None,
        }
    }

    /// A new connection to the first of the destination's hosts that answers, through
    /// `channel` when given.
    async fn connect(
        &self,
        channel: Option<&Channel>,
        dest: &Destination,
    ) -> Result<Client, ConnectError> {
        let mut errors = Vec::new();
        let smarthost = dest
            .hosts
            .iter()
            .any(|h| h.policy == lookup::HopPolicy::SmartHost);
        for hop in &dest.hosts {
            let tls = hop.verifier.as_ref().unwrap_or(&self.settings.tls);
            let proof = (tls, dest.pins.as_slice());
            let connected = match channel {
                None => Client::connect(hop.addr, &hop.name, hop.tls, proof, &self.settings).await,
                Some(c) => match c.dial(hop.addr, self.settings.connect_timeout).await {
                    Ok(stream) => {
                        let peer = format!(
                            "{}[{}]:{} via {}",
                            hop.name,
                            hop.addr.ip(),
                            hop.addr.port(),
                            c.name()
                        );
                        let started =
                            Client::start(stream, peer, &hop.name, hop.tls, proof, &self.settings)
                                .await;
                        match (started, &c.smarthost_login) {
                            (Ok(mut client), Some((user, password)))
                                if hop.policy == lookup::HopPolicy::SmartHost =>
                            {
                                client.authenticate(user, password).await.map(|()| client)
                            }
                            (started, _) => started,
                        }
                    }
                    Err(DialError::Channel(e)) => {
                        return Err(ConnectError {
                            text: e,
                            broken: true,
                        });
                    }
                    Err(DialError::Peer(e)) => Err(ClientError::Temporary(e)),
                },
            };
            match connected {
                Ok(c) => return Ok(c),
                Err(e) if hop.tls.verifies() && e.to_string().contains("certificate") => {
                    errors.push(format!("{e} ({})", hop.policy.hint()));
                }
                Err(e) => errors.push(e.to_string()),
            }
        }
        Err(ConnectError {
            text: errors.join("; "),
            // A smart host that does not answer is the channel's own path failing.
            broken: smarthost,
        })
    }
}

/// Why no connection was made.
struct ConnectError {
    text: String,
    /// The delivery channel's fault, not the destination's.
    broken: bool,
}

impl ConnectError {
    fn attempt(self, rcpts: &[String]) -> Attempt {
        Attempt {
            outcomes: all(rcpts, RcptStatus::Pending, &self.text),
            broken: self.broken.then_some(self.text),
        }
    }
}

fn all(rcpts: &[String], status: RcptStatus, reply: &str) -> Vec<RcptOutcome> {
    rcpts
        .iter()
        .map(|a| RcptOutcome {
            address: a.clone(),
            status,
            reply: reply.to_owned(),
        })
        .collect()
}

fn outcome(address: String, reply: client::ServerReply) -> RcptOutcome {
    let status = if reply.is_positive() {
        RcptStatus::Delivered
    } else if reply.is_permanent() {
        RcptStatus::Failed
    } else {
        RcptStatus::Pending
    };
    RcptOutcome {
        address,
        status,
        reply: reply.to_string(),
    }
}
