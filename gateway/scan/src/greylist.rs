//! Greylisting (RFC 6647): the first delivery attempt of an unknown (client network, sender,
//! recipient) triplet is deferred; a real MTA retries after the delay and passes, most spam
//! cannon does not. Off by default — it delays legitimate first contacts.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Most triplets remembered; the oldest are dropped beyond this.
const MAX_ENTRIES: usize = 500_000;

/// The outcome for one triplet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Known and old enough: accept.
    Pass,
    /// Too early: defer with 451 and this many seconds left.
    Defer(u64),
}

struct Entry {
    first_seen: Instant,
    passed: bool,
    last_seen: Instant,
}

/// The greylist table (in memory; a restart greylists new attempts again, which costs only a
/// retry).
pub struct Greylist {
    delay: Duration,
    retry_window: Duration,
    pass_ttl: Duration,
    entries: Mutex<HashMap<u64, Entry>>,
}

impl Greylist {
    /// A retry is accepted between `delay` and `retry_window` after the first attempt; a passed
    /// triplet stays known for `pass_ttl` after its last message.
    pub fn new(delay: Duration, retry_window: Duration, pass_ttl: Duration) -> Self {
        Self {
            delay,
            retry_window,
            pass_ttl,
            entries: Mutex::new(HashMap::new()),
        }
    }

    fn key(client: IpAddr, from: &str, rcpt: &str) -> u64 {
        // Big senders retry from other addresses of the same network: key on /24 or /64.
        let net = match client {
            IpAddr::V4(v4) => {
                let o = v4.octets();
                IpAddr::from([o[0], o[1], o[2], 0])
            }
            IpAddr::V6(v6) => {
                let mut s = v6.segments();
                s[4..].fill(0);
                IpAddr::from(s)
            }
        };
        let mut h = std::collections::hash_map::DefaultHasher::new();
        net.hash(&mut h);
        from.to_ascii_lowercase().hash(&mut h);
        rcpt.to_ascii_lowercase().hash(&mut h);
        h.finish()
    }

    /// Decides for a triplet seen now.
    pub fn check(&self, client: IpAddr, from: &str, rcpt: &str) -> Decision {
        self.check_at(client, from, rcpt, Instant::now())
    }

    fn check_at(&self, client: IpAddr, from: &str, rcpt: &str, now: Instant) -> Decision {
        let key = Self::key(client, from, rcpt);
        let Ok(mut entries) = self.entries.lock() else {
            return Decision::Pass;
        };
        if entries.len() >= MAX_ENTRIES {
            let (delay, window, ttl) = (self.delay, self.retry_window, self.pass_ttl);
            entries.retain(|_, e| {
                let age = now.saturating_duration_since(e.last_seen);
                if e.passed {
                    age < ttl
                } else {
                    age < delay + window
                }
            });
            if entries.len() >= MAX_ENTRIES {
                return Decision::Pass;
            }
        }
        match entries.get_mut(&key) {
            Some(e) if e.passed && now.saturating_duration_since(e.last_seen) < self.pass_ttl => {
                e.last_seen = now;
                Decision::Pass
            }
            Some(e) if !e.passed => {
                let waited = now.saturating_duration_since(e.first_seen);
                if waited < self.delay {
                    Decision::Defer((self.delay - waited).as_secs().max(1))
                } else if waited <= self.delay + self.retry_window {
                    e.passed = true;
                    e.last_seen = now;
                    Decision::Pass
                } else {
                    *e = Entry {
                        first_seen: now,
                        passed: false,
                        last_seen: now,
                    };
                    Decision::Defer(self.delay.as_secs().max(1))
                }
            }
            _ => {
                entries.insert(
                    key,
                    Entry {
                        first_seen: now,
                        passed: false,
                        last_seen: now,
                    },
                );
                Decision::Defer(self.delay.as_secs().max(1))
            }
        }
    }
}

/// Per-client message rate limit: a token bucket per client address.
pub struct RateLimiter {
    per_minute: u32,
    buckets: Mutex<HashMap<IpAddr, (f64, Instant)>>,
}

impl RateLimiter {
    /// Allows `per_minute` messages a minute per client address, in bursts up to that many.
    pub fn new(per_minute: u32) -> Self {
        Self {
            per_minute,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one token for `client`; false when the client is over its rate.
    pub fn allow(&self, client: IpAddr) -> bool {
        self.allow_at(client, Instant::now())
    }

    fn allow_at(&self, client: IpAddr, now: Instant) -> bool {
        let Ok(mut buckets) = self.buckets.lock() else {
            return true;
        };
        let cap = f64::from(self.per_minute);
        let rate = cap / 60.0;
        if buckets.len() >= MAX_ENTRIES {
            buckets.retain(|_, (_, t)| now.saturating_duration_since(*t) < Duration::from_secs(60));
        }
        let (tokens, last) = buckets.entry(client).or_insert((cap, now));
        *tokens = (*tokens + now.saturating_duration_since(*last).as_secs_f64() * rate).min(cap);
        *last = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn greylist_defers_then_passes_within_the_window() {
        let g = Greylist::new(
            Duration::from_secs(300),
            Duration::from_secs(3600),
            Duration::from_secs(86400),
        );
        let t0 = Instant::now();
        let ip: IpAddr = "192.0.2.10".parse().unwrap();
        assert_eq!(
            g.check_at(ip, "a@x.test", "u@example.com", t0),
            Decision::Defer(300)
        );
        assert!(matches!(
            g.check_at(
                ip,
                "a@x.test",
                "u@example.com",
                t0 + Duration::from_secs(60)
            ),
            Decision::Defer(240)
        ));
        // The retry comes from another address of the same /24.
        let ip2: IpAddr = "192.0.2.77".parse().unwrap();
        assert_eq!(
            g.check_at(
                ip2,
                "A@x.test",
                "u@example.com",
                t0 + Duration::from_secs(301)
            ),
            Decision::Pass
        );
        assert_eq!(
            g.check_at(
                ip,
                "a@x.test",
                "u@example.com",
                t0 + Duration::from_secs(9000)
            ),
            Decision::Pass
        );
        // Another recipient is another triplet.
        assert!(matches!(
            g.check_at(ip, "a@x.test", "v@example.com", t0),
            Decision::Defer(_)
        ));
    }

    #[test]
    fn rate_limit_refills_over_time() {
        let r = RateLimiter::new(3);
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let t0 = Instant::now();
        assert!((0..3).all(|_| r.allow_at(ip, t0)));
        assert!(!r.allow_at(ip, t0));
        assert!(
            r.allow_at("192.0.2.2".parse().unwrap(), t0),
            "other clients are not affected"
        );
        assert!(r.allow_at(ip, t0 + Duration::from_secs(21)));
    }
}
