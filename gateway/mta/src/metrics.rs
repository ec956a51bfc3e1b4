//! Prometheus metrics: counters the SMTP and delivery paths bump, rendered in the text format
//! for the `/metrics` endpoint (served by the console crate). Labels are plain words, so this
//! module depends on nothing it counts.

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

type Labels = Vec<(&'static str, &'static str)>;
/// Labels naming something configured (a channel), with a fixed word beside it.
type NamedLabels = Vec<(&'static str, String)>;

/// The gateway's counters.
pub struct Metrics {
    registry: Registry,
    /// SMTP sessions started.
    pub sessions: Counter,
    /// Connections refused by session limits.
    pub sessions_refused: Counter,
    /// Messages accepted (250 after spooling).
    pub accepted: Counter,
    rejected: Family<Labels, Counter>,
    deliveries: Family<Labels, Counter>,
    scan_skipped: Family<Labels, Counter>,
    directions: Family<Labels, Counter>,
    dlp: Family<Labels, Counter>,
    dkim: Family<Labels, Counter>,
    contained: Family<Labels, Counter>,
    channel_deliveries: Family<NamedLabels, Counter>,
    channel_states: Family<NamedLabels, Gauge>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("jianmen");
        let sessions = Counter::default();
        let sessions_refused = Counter::default();
        let accepted = Counter::default();
        let rejected = Family::<Labels, Counter>::default();
        let deliveries = Family::<Labels, Counter>::default();
        let scan_skipped = Family::<Labels, Counter>::default();
        let directions = Family::<Labels, Counter>::default();
        let dlp = Family::<Labels, Counter>::default();
        let dkim = Family::<Labels, Counter>::default();
        let contained = Family::<Labels, Counter>::default();
        let channel_deliveries = Family::<NamedLabels, Counter>::default();
        let channel_states = Family::<NamedLabels, Gauge>::default();
        registry.register(
            "channel_deliveries",
            "Recipients per delivery channel, by result (delivered; deferred: passed to another channel or left for a retry)",
            channel_deliveries.clone(),
        );
        registry.register(
            "channel_state",
            "1 for each delivery channel's current state (active, reserve, listed, down, drained), else 0",
            channel_states.clone(),
        );
        registry.register(
            "accounts_contained",
            "Sending accounts whose level the behaviour score raised, by level (alert, throttled, held, blocked)",
            contained.clone(),
        );
        registry.register(
            "messages_by_direction",
            "Messages accepted, by direction (inbound, outbound, internal)",
            directions.clone(),
        );
        registry.register(
            "dlp_incidents",
            "Messages a data-leak prevention policy acted on, by action (log, hold, block)",
            dlp.clone(),
        );
        registry.register(
            "dkim_signatures",
            "Outbound messages of signing domains, by result (signed, unsigned)",
            dkim.clone(),
        );
        registry.register("smtp_sessions", "SMTP sessions started", sessions.clone());
        registry.register(
            "smtp_sessions_refused",
            "Connections refused by session limits",
            sessions_refused.clone(),
        );
        registry.register(
            "messages_accepted",
            "Messages accepted and spooled",
            accepted.clone(),
        );
        registry.register(
            "messages_rejected",
            "Messages refused at end of DATA, by reason",
            rejected.clone(),
        );
        registry.register(
            "deliveries",
            "Per-recipient delivery attempt outcomes",
            deliveries.clone(),
        );
        registry.register(
            "scan_checks_skipped",
            "Messages judged without a check (dns: resolver down or too slow; budget: the scan ran out of time), by check",
            scan_skipped.clone(),
        );
        Self {
            registry,
            sessions,
            sessions_refused,
            accepted,
            rejected,
            deliveries,
            scan_skipped,
            directions,
            dlp,
            dkim,
            contained,
            channel_deliveries,
            channel_states,
        }
    }
}

impl Metrics {
    /// Counts a message refused at DATA for `reason`.
    pub fn rejected(&self, reason: &'static str) {
        self.rejected.get_or_create(&vec![("reason", reason)]).inc();
    }

    /// Counts one recipient's delivery attempt outcome (`delivered`, `deferred`, `failed`).
    pub fn delivery(&self, result: &'static str) {
        self.deliveries
            .get_or_create(&vec![("result", result)])
            .inc();
    }

    /// Counts a message accepted going `direction`.
    pub fn directed(&self, direction: &'static str) {
        self.directions
            .get_or_create(&vec![("direction", direction)])
            .inc();
    }

    /// Counts a message a DLP policy acted on with `action`.
    pub fn dlp_incident(&self, action: &'static str) {
        self.dlp.get_or_create(&vec![("action", action)]).inc();
    }

    /// Counts an outbound message signed or left `unsigned`.
    pub fn dkim(&self, result: &'static str) {
        self.dkim.get_or_create(&vec![("result", result)]).inc();
    }

    /// Counts an account raised to `level` by its behaviour score.
    pub fn contained(&self, level: &'static str) {
        self.contained.get_or_create(&vec![("level", level)]).inc();
    }

    /// Counts `n` recipients through delivery channel `channel` with `result`.
    pub fn channel_delivery(&self, channel: &str, result: &'static str, n: usize) {
        if n > 0 {
            self.channel_deliveries
                .get_or_create(&vec![
                    ("channel", channel.to_owned()),
                    ("result", result.to_owned()),
                ])
                .inc_by(n as u64);
        }
    }

    /// Sets delivery channel `channel`'s state gauges: 1 for `state`, 0 for the rest of `all`.
    pub fn channel_state(&self, channel: &str, state: &str, all: [&'static str; 5]) {
        for s in all {
            self.channel_states
                .get_or_create(&vec![
                    ("channel", channel.to_owned()),
                    ("state", s.to_owned()),
                ])
                .set(i64::from(s == state));
        }
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}

impl jianmen_scan::SkippedChecks for Metrics {
    fn skipped(&self, check: &'static str) {
        self.scan_skipped
            .get_or_create(&vec![("check", check)])
            .inc();
    }
}
