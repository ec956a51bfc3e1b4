//! The delivery-channel board (发信通道): every egress channel's state, public address, block
//! listings, success rate, deliveries under way and recent errors, with its history; and the
//! system administrator's two levers — drain a channel, or put one (back) into rotation.
//! Channels carry the whole organisation's mail: only an administrator of all domains sees and
//! moves them. Every move is audited.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::json;

use super::accounts::Role;
use super::api::{actor, approver};
use super::{ApiError, Console, authorize};
use jianmen_mta::relay::{DecideError, Relay};

type Data = web::Data<Console>;
type Reply = Result<HttpResponse, ApiError>;

/// Transitions shown per channel.
const HISTORY: u32 = 20;

/// Registers the board's routes.
pub(super) fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/api/channels", web::get().to(board))
        .route(
            "/api/channels/{name}/drain",
            web::post().to(|req, console, name| decide(req, console, name, true)),
        )
        .route(
            "/api/channels/{name}/activate",
            web::post().to(|req, console, name| decide(req, console, name, false)),
        );
}

impl From<DecideError> for ApiError {
    fn from(e: DecideError) -> Self {
        let status = match e {
            DecideError::Unknown => StatusCode::NOT_FOUND,
            DecideError::Already(_) | DecideError::Listed => StatusCode::CONFLICT,
        };
        Self::new(status, e.to_string())
    }
}

/// The channels, or why there are none.
fn relay(console: &Console) -> Result<&Relay, ApiError> {
    console.relay.as_deref().ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "no delivery channels are configured ([[relay.channel]])",
        )
    })
}

async fn board(req: HttpRequest, console: Data) -> Reply {
    let s = authorize(&req, &console, &[Role::System]).await?;
    approver(&s)?;
    let r = relay(&console)?;
    let mut channels = Vec::new();
    for (view, live) in r.board_view() {
        let history = r
            .history(&view.name, HISTORY)
            .await
            .map_err(ApiError::internal)?;
        channels.push(json!({ "channel": view, "live": live, "history": history }));
    }
    let c = r.config();
    Ok(HttpResponse::Ok().json(json!({
        "channels": channels,
        "watch": {
            "dnsbl": c.dnsbl.iter().map(|z| z.zone.as_str()).collect::<Vec<_>>(),
            "check_secs": c.check_secs,
            "holddown_secs": c.holddown_secs,
            "channels_per_attempt": c.channels_per_attempt,
        },
    })))
}

/// Drains a channel or puts it into rotation, and audits it.
async fn decide(req: HttpRequest, console: Data, name: web::Path<String>, drain: bool) -> Reply {
    let s = authorize(&req, &console, &[Role::System]).await?;
    approver(&s)?;
    let who = actor(&s);
    if name.len() > 64 || name.chars().any(char::is_control) {
        return Err(ApiError::field("name", "not a channel name"));
    }
    let changes = relay(&console)?.decide(&name, drain, &who).await?;
    let detail: Vec<String> = changes
        .iter()
        .map(|t| format!("{}: {} -> {}", t.channel, t.from.as_str(), t.to.as_str()))
        .collect();
    let action = if drain {
        "channel.drain"
    } else {
        "channel.activate"
    };
    console.record(&who, action, &detail.join("; ")).await;
    Ok(HttpResponse::Ok().json(json!({ "changes": changes })))
}
