//! Prometheus metrics: counters the SMTP and delivery paths bump, and the `/metrics` endpoint on
//! a local port.

use std::sync::Arc;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

use crate::queue::RcptStatus;

type Labels = Vec<(&'static str, &'static str)>;

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
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("jianmen");
        let sessions = Counter::default();
        let sessions_refused = Counter::default();
        let accepted = Counter::default();
        let rejected = Family::<Labels, Counter>::default();
        let deliveries = Family::<Labels, Counter>::default();
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
        Self {
            registry,
            sessions,
            sessions_refused,
            accepted,
            rejected,
            deliveries,
        }
    }
}

impl Metrics {
    /// Counts a message refused at DATA for `reason`.
    pub fn rejected(&self, reason: &'static str) {
        self.rejected.get_or_create(&vec![("reason", reason)]).inc();
    }

    /// Counts one recipient's delivery attempt outcome.
    pub fn delivery(&self, status: RcptStatus) {
        let result = match status {
            RcptStatus::Delivered => "delivered",
            RcptStatus::Pending => "deferred",
            RcptStatus::Failed => "failed",
        };
        self.deliveries
            .get_or_create(&vec![("result", result)])
            .inc();
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

/// Serves `GET /metrics` on a bound listener until the process ends.
pub async fn serve(metrics: Arc<Metrics>, listener: std::net::TcpListener) -> std::io::Result<()> {
    let server = actix_web::HttpServer::new(move || {
        let metrics = metrics.clone();
        actix_web::App::new().route(
            "/metrics",
            actix_web::web::get().to(move || {
                let body = metrics.render();
                async move {
                    actix_web::HttpResponse::Ok()
                        .content_type("text/plain; version=0.0.4; charset=utf-8")
                        .body(body)
                }
            }),
        )
    })
    .workers(1)
    .disable_signals()
    .listen(listener)?
    .run();
    server.await
}
