//! The watch on the channels: their public addresses are looked up in the block lists every
//! `check_secs` (at once when a destination refuses one by a list), and the evidence decides
//! their states — listed channels and broken ones leave rotation and reserves take their place;
//! a channel comes back once the lists have been clean, and the refusals silent, for the
//! hold-down, or a down one has rested. Every automatic change is told to `relay.notify`.

use std::collections::HashSet;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use jianmen_scan::reputation::BlockLists;

use super::{Relay, State, Transition, role};
use crate::queue::manager::unix_now;
use crate::queue::{MessageKind, NewMessage, Queue};

/// The longest the watch sleeps between two looks at its channels.
const TICK: Duration = Duration::from_secs(5);
/// How far back refusals count towards a passive listing.
const REFUSAL_WINDOW: i64 = 3600;

/// Looks after the channels until the process ends.
pub async fn run(
    relay: Arc<Relay>,
    lists: Option<BlockLists>,
    queue: Arc<Queue>,
    hostname: String,
) {
    loop {
        let now = unix_now();
        let due: Vec<(usize, IpAddr)> = {
            let board = relay.board();
            relay
                .channels
                .iter()
                .zip(board.iter())
                .enumerate()
                .filter(|(_, (_, live))| {
                    live.recheck || now - live.checked_at >= relay.config.check_secs as i64
                })
                .filter_map(|(i, (c, _))| Some((i, c.address()?)))
                .collect()
        };
        let mut found = Vec::new();
        if let Some(lists) = &lists {
            for (i, ip) in due {
                match lists.listings(ip).await {
                    Some(listings) => found.push((i, listings)),
                    None => tracing::warn!(
                        channel = relay.channels[i].name(),
                        "block lists did not answer; channel state unchanged"
                    ),
                }
            }
        }
        let changes = relay.review(&found, unix_now());
        relay.publish(&changes).await;
        let automatic: Vec<&Transition> = changes.iter().filter(|t| t.actor == "gateway").collect();
        if !automatic.is_empty() && !relay.config.notify.is_empty() {
            alert(&relay, &queue, &hostname, &automatic).await;
        }
        let _ = tokio::time::timeout(TICK, relay.wake.notified()).await;
    }
}

impl Relay {
    /// Applies what the lists said (`found`: channel, listings) and what deliveries saw, at
    /// `now`; returns the transitions.
    pub(super) fn review(&self, found: &[(usize, Vec<String>)], now: i64) -> Vec<Transition> {
        let mut board = self.board();
        for (i, listings) in found {
            let live = &mut board[*i];
            live.checked_at = now;
            live.recheck = false;
            live.listings = listings.clone();
            if !listings.is_empty() {
                live.clean_since = None;
            } else if live.state == State::Listed {
                live.clean_since.get_or_insert(now);
            }
        }
        let holddown = self.config.holddown_secs as i64;
        let mut changes = Vec::new();
        for i in 0..board.len() {
            let live = &board[i];
            let watched = self.channels[i].address().is_some() && !self.config.dnsbl.is_empty();
            let refused_by: HashSet<&str> = live
                .refusals
                .iter()
                .filter(|r| now - r.at < REFUSAL_WINDOW)
                .map(|r| r.domain.as_str())
                .collect();
            let passive =
                self.config.passive_domains > 0 && refused_by.len() >= self.config.passive_domains;
            let next = match live.state {
                State::Active | State::Reserve if !live.listings.is_empty() => Some((
                    State::Listed,
                    format!("listed: {}", live.listings.join(", ")),
                )),
                State::Active | State::Reserve if passive => Some((
                    State::Listed,
                    format!(
                        "refused by block lists at {} domains: {}",
                        refused_by.len(),
                        live.refusals.back().map(|r| r.reply.as_str()).unwrap_or("")
                    ),
                )),
                State::Active | State::Reserve if live.failures >= self.config.down_after => {
                    Some((
                        State::Down,
                        format!(
                            "{} failed connections in a row: {}",
                            live.failures,
                            live.errors.back().map(|e| e.1.as_str()).unwrap_or("")
                        ),
                    ))
                }
                State::Listed => {
                    let lists_clean = if watched {
                        live.listings
                            .is_empty()
                            .then_some(live.clean_since)
                            .flatten()
                    } else {
                        Some(live.since)
                    };
                    let last_refusal = live.refusals.back().map_or(i64::MIN, |r| r.at);
                    lists_clean
                        .map(|t| t.max(last_refusal))
                        .filter(|t| now - t >= holddown)
                        .map(|_| {
                            (
                                role(&self.channels[i]),
                                "delisted and clean for the hold-down".to_owned(),
                            )
                        })
                }
                State::Down if now - live.since >= self.config.down_secs as i64 => {
                    Some((role(&self.channels[i]), "rested; tried again".to_owned()))
                }
                _ => None,
            };
            if let Some((to, reason)) = next {
                if to != State::Listed {
                    let live = &mut board[i];
                    live.failures = 0;
                    live.clean_since = None;
                    if to != State::Down {
                        live.refusals.clear();
                    }
                }
                changes.push(self.set(&mut board, i, to, now, reason, "gateway"));
            }
        }
        changes.extend(self.rebalance(&mut board, now));
        changes
    }
}

/// Tells `relay.notify` what changed, by a mail queued like a bounce.
async fn alert(relay: &Relay, queue: &Queue, hostname: &str, changes: &[&Transition]) {
    let notify = &relay.config.notify;
    let id = ulid::Ulid::new().to_string();
    let body = alert_message(hostname, &id, changes);
    let message = NewMessage {
        id: id.clone(),
        mail_from: String::new(),
        rcpts: notify.clone(),
        size: 0,
        received_at: unix_now(),
        client_ip: "127.0.0.1".into(),
        helo: hostname.to_owned(),
        smtputf8: notify.iter().any(|a| !a.is_ascii()),
        kind: MessageKind::Dsn,
        held: None,
    };
    if let Err(e) = queue.enqueue(message, vec![body]).await {
        tracing::error!(queue_id = %id, error = %e, "cannot queue the channel alert");
    }
}

/// The alert mail: bilingual, one line per change.
pub fn alert_message(hostname: &str, id: &str, changes: &[&Transition]) -> Vec<u8> {
    let lines: String = changes
        .iter()
        .map(|t| {
            format!(
                "  - {}: {} -> {} ({})\r\n",
                crate::queue::dsn::one_line(&t.channel),
                t.from.as_str(),
                t.to.as_str(),
                crate::queue::dsn::one_line(&t.reason)
            )
        })
        .collect();
    let body = format!(
        "通道 / Channels:\r\n{lines}\r\n\
         请在控制台“发信通道”页面查看。\r\n\
         See the console's delivery-channel page.\r\n"
    );
    crate::queue::dsn::administrators_alert(
        hostname,
        id,
        "发信通道状态变化 / Delivery channel state changed",
        &body,
    )
}
