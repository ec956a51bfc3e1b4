//! The Prometheus `/metrics` endpoint on its own local port (`[metrics] listen`), apart from
//! the console so that scrapers need no account.

use std::sync::Arc;

use jianmen_mta::metrics::Metrics;

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
