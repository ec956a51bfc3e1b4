//! Outbound delivery: [`lookup`] finds the next hop (with [`dane`] and [`mta_sts`] saying what
//! MX hosts must prove), [`client`] speaks SMTP to it. This module
//! adds what sits between them: per-destination concurrency limits, reuse of idle connections,
//! failover across a destination's hosts, and the mapping of replies to recipient outcomes.

pub mod client;
pub mod dane;
pub mod lookup;
pub mod mta_sts;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;

use crate::config::{Config, DeliveryConfig};
use crate::queue::{QueuedMessage, RcptOutcome, RcptStatus};
use client::{Client, ClientError, ClientSettings};
use lookup::{Destination, LookupError, Router};

/// Delivers messages to next hops.
pub struct Outbound {
    router: Router,
    settings: ClientSettings,
    config: DeliveryConfig,
    idle: Mutex<HashMap<String, Vec<(Client, Instant)>>>,
    limits: Mutex<HashMap<String, Arc<Semaphore>>>,
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
        })
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
        let Ok(_permit) = self.limit(&dest.key).acquire_owned().await else {
            return all(&rcpts, RcptStatus::Pending, "shutting down");
        };
        let (mut client, reused) = match self.take_idle(&dest.key) {
            Some(c) => (c, true),
            None => match self.connect(&dest).await {
                Ok(c) => (c, false),
                Err(e) => return all(&rcpts, RcptStatus::Pending, &e),
            },
        };
        let (from, utf8) = (&message.mail_from, message.smtputf8);
        let mut result = client.send(from, &rcpts, data, utf8).await;
        if reused && matches!(result, Err(ClientError::Stale(_))) {
            // The peer closed the idle connection; nothing was sent: use a new one.
            client = match self.connect(&dest).await {
                Ok(c) => c,
                Err(e) => return all(&rcpts, RcptStatus::Pending, &e),
            };
            result = client.send(from, &rcpts, data, utf8).await;
        }
        match result {
            Ok(replies) => {
                self.put_idle(&dest.key, client);
                replies
                    .into_iter()
                    .map(|(address, reply)| outcome(address, reply))
                    .collect()
            }
            Err(ClientError::Permanent(e)) => {
                tokio::spawn(client.quit());
                all(&rcpts, RcptStatus::Failed, &e)
            }
            Err(ClientError::Temporary(e) | ClientError::Stale(e)) => {
                all(&rcpts, RcptStatus::Pending, &e)
            }
        }
    }

    /// A new connection to the first of the destination's hosts that answers.
    async fn connect(&self, dest: &Destination) -> Result<Client, String> {
        let mut errors = Vec::new();
        for hop in &dest.hosts {
            let tls = hop.verifier.as_ref().unwrap_or(&self.settings.tls);
            let proof = (tls, dest.pins.as_slice());
            match Client::connect(hop.addr, &hop.name, hop.tls, proof, &self.settings).await {
                Ok(c) => return Ok(c),
                Err(e) if hop.tls.verifies() && e.to_string().contains("certificate") => {
                    errors.push(format!("{e} ({})", hop.policy.hint()));
                }
                Err(e) => errors.push(e.to_string()),
            }
        }
        Err(errors.join("; "))
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
