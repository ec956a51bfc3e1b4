//! The system settings the console changes (system administrators only): the protected domains,
//! the routes, the audit log's syslog collector and the listening addresses, checked with the configuration file as
//! `check-config` would, kept beside it and laid over it (see [`jianmen_mta::settings`]); and a
//! restart by the service manager that puts them in force. Every change is audited with what it
//! changed.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;
use serde_json::json;

use super::accounts::Role;
use super::api::actor;
use super::{ApiError, Console, authorize, now};
use jianmen_mta::config::{Config, ConfigError};
use jianmen_mta::settings::{self, RouteSetting, SystemSettings};

type Data = web::Data<Console>;
type Reply = Result<HttpResponse, ApiError>;

pub(super) fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/api/system/settings", web::get().to(show))
        .route("/api/system/settings", web::put().to(change))
        .route("/api/system/settings", web::delete().to(revert))
        .route("/api/system/restart", web::post().to(restart));
}

/// The settings as one configuration has them.
fn values(c: &Config) -> serde_json::Value {
    json!({
        "protected": c.domains.protected,
        "routes": c.routes.iter().map(RouteSetting::from).collect::<Vec<_>>(),
        "syslog": c.audit.syslog,
        "smtp_listen": c.smtp.listen,
        "console_listen": c.console.as_ref().map(|c| c.listen),
    })
}

/// The keys of [`values`], in the audit log's order.
const KEYS: [&str; 5] = [
    "protected",
    "routes",
    "syslog",
    "smtp_listen",
    "console_listen",
];

/// Refuses a listening address this machine cannot serve: an address it does not have, or a
/// port another program holds (ports below 1024 cannot be tried by the service account and are
/// left to the start, which falls back to the file's listeners when they fail).
fn check_listeners(next: &Config, running: &Config) -> Result<(), ApiError> {
    use std::net::{SocketAddr, TcpListener};
    let ours: Vec<SocketAddr> = running
        .smtp
        .listen
        .iter()
        .copied()
        .chain(running.console.as_ref().map(|c| c.listen))
        .chain(running.metrics.listen)
        .collect();
    let console = next.console.as_ref().map(|c| c.listen);
    let all: Vec<(&str, SocketAddr)> = next
        .smtp
        .listen
        .iter()
        .map(|a| ("smtp.listen", *a))
        .chain(console.map(|a| ("console.listen", a)))
        .collect();
    // Two sockets on one port clash when either takes every address or both take the same.
    let overlap = |a: &SocketAddr, b: &SocketAddr| {
        a.port() == b.port()
            && (a.ip().is_unspecified() || b.ip().is_unspecified() || a.ip() == b.ip())
    };
    for (i, (key, addr)) in all.iter().enumerate() {
        if all[..i].iter().any(|(_, a)| overlap(a, addr))
            || next.metrics.listen.is_some_and(|m| overlap(&m, addr))
        {
            return Err(ApiError::field(key, format!("{addr} is used twice")));
        }
        if !addr.ip().is_unspecified()
            && let Err(e) = TcpListener::bind(SocketAddr::new(addr.ip(), 0))
        {
            return Err(ApiError::field(
                key,
                format!("{} is not an address of this machine ({e})", addr.ip()),
            ));
        }
        if addr.port() >= 1024
            && !ours.iter().any(|o| overlap(o, addr))
            && let Err(e) = TcpListener::bind(addr)
            && e.kind() == std::io::ErrorKind::AddrInUse
        {
            return Err(ApiError::field(
                key,
                format!("{addr} is in use by another program"),
            ));
        }
    }
    Ok(())
}

/// The configuration file as it is now, without the console's settings.
fn file_config(console: &Console) -> Result<Config, ApiError> {
    let path = console.config.file.as_deref().ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "the configuration file is not known: settings cannot be changed here",
        )
    })?;
    Config::load_file(path).map_err(|e| {
        ApiError::new(
            StatusCode::CONFLICT,
            format!("the configuration file does not load now: {e}"),
        )
    })
}

/// When this process started serving (Unix milliseconds): a restart changes it.
static STARTED: std::sync::LazyLock<i64> =
    std::sync::LazyLock::new(|| chrono::Utc::now().timestamp_millis());

/// Fixes the start time at the console's start, not at the first page that asks.
pub(super) fn note_start() {
    std::sync::LazyLock::force(&STARTED);
}

/// Whether a service manager starts the gateway again when it stops (systemd gives each service
/// it runs an invocation id).
fn restartable() -> bool {
    std::env::var_os("INVOCATION_ID").is_some()
}

async fn show(req: HttpRequest, console: Data) -> Reply {
    authorize(&req, &console, &[Role::System]).await?;
    let file = file_config(&console)?;
    let (saved, unreadable) = match settings::read(&console.config.server.data_dir) {
        Ok(saved) => (saved, None),
        Err(e) => (None, Some(e.to_string())),
    };
    let next = match &saved {
        Some(s) => file.clone().overlaid(s).unwrap_or_else(|_| file.clone()),
        None => file.clone(),
    };
    let running = values(&console.config);
    Ok(HttpResponse::Ok().json(json!({
        "file": values(&file),
        "saved": saved,
        "running": running,
        "state": console.config.settings,
        // A saved file that does not read: shown, and removable.
        "unreadable": unreadable,
        "pending": values(&next) != running,
        "restartable": restartable(),
        // Which run of the gateway answers: the page waits for it to change after a restart.
        "started": *STARTED,
        "tls_policies": ["verify-if-offered", "verify", "required", "opportunistic", "tlcp", "none"],
    })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Change {
    #[serde(default)]
    protected: Option<Vec<String>>,
    #[serde(default)]
    routes: Option<Vec<RouteSetting>>,
    #[serde(default)]
    syslog: Option<String>,
    #[serde(default)]
    smtp_listen: Option<Vec<std::net::SocketAddr>>,
    #[serde(default)]
    console_listen: Option<std::net::SocketAddr>,
}

/// One line of what changed between two sets of values, for the audit log.
fn changes(before: &serde_json::Value, after: &serde_json::Value) -> String {
    let shown = |v: &serde_json::Value| {
        let text = v.to_string();
        if text.chars().count() > 300 {
            format!("{}…", text.chars().take(300).collect::<String>())
        } else {
            text
        }
    };
    KEYS.iter()
        .filter(|k| before[**k] != after[**k])
        .map(|k| format!("{k}: {} → {}", shown(&before[*k]), shown(&after[*k])))
        .collect::<Vec<_>>()
        .join("; ")
}

async fn change(req: HttpRequest, console: Data, body: web::Bytes) -> Reply {
    let session = authorize(&req, &console, &[Role::System]).await?;
    let body: Change = serde_json::from_slice(&body)
        .map_err(|e| ApiError::field("body", format!("invalid JSON body: {e}")))?;
    let who = actor(&session);
    let settings = SystemSettings {
        protected: body.protected,
        routes: body.routes,
        syslog: body.syslog,
        smtp_listen: body.smtp_listen,
        console_listen: body.console_listen,
        changed_by: who.clone(),
        changed_at: now(),
    };
    if settings.is_empty() {
        return Err(ApiError::field("body", "nothing to change"));
    }
    settings
        .check_bounds()
        .map_err(|(key, why)| ApiError::field(key, why))?;
    let file = file_config(&console)?;
    let data_dir = &console.config.server.data_dir;
    let before = match settings::read(data_dir).map_err(ApiError::internal)? {
        Some(s) => values(&file.clone().overlaid(&s).unwrap_or_else(|_| file.clone())),
        None => values(&file),
    };
    let next = file.overlaid(&settings).map_err(|e| match e {
        ConfigError::Invalid { key, reason } => ApiError::field(&key, reason),
        other => ApiError::field("body", other.to_string()),
    })?;
    check_listeners(&next, &console.config)?;
    settings::write(data_dir, Some(&settings)).map_err(ApiError::internal)?;
    let after = values(&next);
    console
        .record(&who, "settings.change", &changes(&before, &after))
        .await;
    Ok(HttpResponse::Ok().json(json!({
        "saved": settings,
        "pending": after != values(&console.config),
        "restartable": restartable(),
    })))
}

async fn revert(req: HttpRequest, console: Data) -> Reply {
    let session = authorize(&req, &console, &[Role::System]).await?;
    let data_dir = &console.config.server.data_dir;
    // A file that no longer reads (damaged) is removed all the same.
    let saved = match settings::read(data_dir) {
        Ok(Some(saved)) => Some(saved),
        Ok(None) => {
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                "no settings were changed in the console",
            ));
        }
        Err(_) => None,
    };
    let file = file_config(&console)?;
    let before = match &saved {
        Some(s) => values(&file.clone().overlaid(s).unwrap_or_else(|_| file.clone())),
        None => serde_json::Value::Object(
            KEYS.iter()
                .map(|k| (k.to_string(), json!("unreadable")))
                .collect(),
        ),
    };
    settings::write(data_dir, None).map_err(ApiError::internal)?;
    console
        .record(
            &actor(&session),
            "settings.revert",
            &changes(&before, &values(&file)),
        )
        .await;
    Ok(HttpResponse::Ok().json(json!({
        "pending": values(&file) != values(&console.config),
        "restartable": restartable(),
    })))
}

async fn restart(req: HttpRequest, console: Data) -> Reply {
    let session = authorize(&req, &console, &[Role::System]).await?;
    if !restartable() {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "no service manager runs this gateway: restart it at the appliance",
        )
        .coded("not_supervised"));
    }
    console
        .record(&actor(&session), "system.restart", "from the console")
        .await;
    super::stop_for_restart();
    Ok(HttpResponse::Accepted().json(json!({ "restarting": true })))
}
