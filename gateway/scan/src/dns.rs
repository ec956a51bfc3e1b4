//! The one DNS resolver every part shares (MX lookups for delivery; SPF, DKIM, DMARC and block
//! lists for scanning), so that answers are cached once and timeouts are the same everywhere.

use std::time::Duration;

use hickory_resolver::TokioResolver;
use hickory_resolver::config::{ConnectionConfig, NameServerConfig, ResolverConfig, ResolverOpts};
use hickory_resolver::net::runtime::TokioRuntimeProvider;

use crate::config::DnsConfig;

/// Builds the shared resolver: `config.resolver` when set, else the system configuration.
pub fn resolver(config: &DnsConfig) -> std::io::Result<TokioResolver> {
    builder(config)?
        .with_options(options(config))
        .build()
        .map_err(std::io::Error::other)
}

/// A resolver on the same servers that validates answers with DNSSEC from `config.trust_anchor`
/// (else the root's keys): each record it returns says whether it was proven (DANE needs that).
pub fn validating_resolver(config: &DnsConfig) -> std::io::Result<TokioResolver> {
    let mut opts = options(config);
    opts.validate = true;
    let mut builder = builder(config)?.with_options(opts);
    if let Some(path) = &config.trust_anchor {
        let anchors = hickory_resolver::proto::dnssec::TrustAnchors::from_file(path)
            .map_err(|e| std::io::Error::other(format!("{}: {e}", path.display())))?;
        builder = builder.with_trust_anchor(std::sync::Arc::new(anchors));
    }
    builder.build().map_err(std::io::Error::other)
}

/// A resolver on the same servers that trusts no answer longer than `max_ttl`, for a watch that
/// must see block-list entries come and go.
pub fn fresh_resolver(config: &DnsConfig, max_ttl: Duration) -> std::io::Result<TokioResolver> {
    let mut opts = options(config);
    opts.positive_max_ttl = Some(max_ttl);
    opts.negative_max_ttl = Some(max_ttl);
    builder(config)?
        .with_options(opts)
        .build()
        .map_err(std::io::Error::other)
}

fn options(config: &DnsConfig) -> ResolverOpts {
    let mut opts = ResolverOpts::default();
    opts.timeout = Duration::from_millis(config.timeout_ms);
    opts.attempts = 2;
    opts.cache_size = 8192;
    opts
}

fn builder(
    config: &DnsConfig,
) -> std::io::Result<hickory_resolver::ResolverBuilder<TokioRuntimeProvider>> {
    Ok(match config.resolver {
        Some(addr) => {
            let mut udp = ConnectionConfig::udp();
            udp.port = addr.port();
            let mut tcp = ConnectionConfig::tcp();
            tcp.port = addr.port();
            let server = NameServerConfig::new(addr.ip(), true, vec![udp, tcp]);
            TokioResolver::builder_with_config(
                ResolverConfig::from_parts(None, vec![], vec![server]),
                TokioRuntimeProvider::default(),
            )
        }
        None => TokioResolver::builder_tokio().map_err(std::io::Error::other)?,
    })
}

/// Messages in a row whose DNS checks ran out of time before the breaker opens.
const TRIP_AFTER: u32 = 3;
/// How long DNS checks are skipped once the breaker opened, before one message tries again.
const OPEN_FOR: Duration = Duration::from_secs(30);

/// A circuit breaker over the scanner's DNS checks. An unreachable resolver (an air-gapped
/// site, an outage) makes every query wait its timeout; without the breaker every message
/// would, too. After [`TRIP_AFTER`] messages in a row ran out of their DNS budget the checks
/// are skipped for [`OPEN_FOR`]; then the next message tries again and its outcome closes or
/// reopens the breaker.
#[derive(Debug, Default)]
pub struct Breaker {
    state: std::sync::Mutex<BreakerState>,
}

#[derive(Debug, Default)]
struct BreakerState {
    /// Messages in a row whose DNS checks ran out of time.
    failures: u32,
    /// While set and in the future, DNS checks are skipped.
    open_until: Option<std::time::Instant>,
}

/// What a message's outcome did to the breaker, for the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    /// DNS checks are skipped from now on.
    Opened,
    /// DNS answers again; checks resume.
    Closed,
}

impl Breaker {
    /// Whether DNS checks should run for the next message at `now`.
    pub fn allows(&self, now: std::time::Instant) -> bool {
        self.state
            .lock()
            .map(|s| s.open_until.is_none_or(|until| now >= until))
            .unwrap_or(true)
    }

    /// Records whether a message's DNS checks finished within their budget.
    pub fn record(&self, finished: bool, now: std::time::Instant) -> Option<Transition> {
        let Ok(mut s) = self.state.lock() else {
            return None;
        };
        if finished {
            s.failures = 0;
            return s.open_until.take().map(|_| Transition::Closed);
        }
        s.failures = s.failures.saturating_add(1);
        let was_open = s.open_until.is_some();
        if was_open || s.failures >= TRIP_AFTER {
            s.open_until = Some(now + OPEN_FOR);
            return (!was_open).then_some(Transition::Opened);
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    #[test]
    fn the_breaker_opens_after_timeouts_in_a_row_and_closes_when_dns_answers() {
        let b = Breaker::default();
        let t0 = Instant::now();
        assert!(b.allows(t0));
        assert_eq!(b.record(false, t0), None);
        assert_eq!(
            b.record(true, t0),
            None,
            "a success in between resets the count"
        );
        for _ in 0..TRIP_AFTER - 1 {
            assert_eq!(b.record(false, t0), None);
        }
        assert_eq!(b.record(false, t0), Some(Transition::Opened));
        assert!(!b.allows(t0 + Duration::from_secs(1)));
        // After the pause one message tries again: a failure reopens without a new log line,
        let later = t0 + OPEN_FOR;
        assert!(b.allows(later));
        assert_eq!(b.record(false, later), None);
        assert!(!b.allows(later + Duration::from_secs(1)));
        // and a success closes it.
        let again = later + OPEN_FOR;
        assert!(b.allows(again));
        assert_eq!(b.record(true, again), Some(Transition::Closed));
        assert!(b.allows(again));
    }
}
