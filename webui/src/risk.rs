//! The account-risk board (风险账户): the internal accounts whose sending looks compromised,
//! why, what the gateway did, and the administrator's two answers — clear (a false alarm: held
//! mail released, the profile learns) or confirm (a compromise: held mail dropped, sending
//! blocked until cleared). Sending accounts are the whole organisation's: only an
//! administrator of all domains sees and decides them. Every decision is audited.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::json;

use super::accounts::Role;
use super::api::{actor, approver};
use super::{ApiError, Console, authorize, now};
use jianmen_mta::risk::{Finding, RiskError, Watch};

type Data = web::Data<Console>;
type Reply = Result<HttpResponse, ApiError>;

/// Accounts the board shows at most.
const BOARD: usize = 200;

/// Registers the board's routes.
pub(super) fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/api/risk", web::get().to(board))
        .route("/api/risk/{account}", web::get().to(account))
        .route(
            "/api/risk/{account}/clear",
            web::post().to(|req, console, name| settle(req, console, name, Finding::FalseAlarm)),
        )
        .route(
            "/api/risk/{account}/confirm",
            web::post().to(|req, console, name| settle(req, console, name, Finding::Compromised)),
        );
}

impl From<RiskError> for ApiError {
    fn from(e: RiskError) -> Self {
        match e {
            RiskError::NotFound(_) => Self::new(StatusCode::NOT_FOUND, e.to_string()),
            RiskError::Quarantine(q) => q.into(),
            RiskError::Store(_) => Self::internal(e),
        }
    }
}

/// The watch, or why there is none.
fn watch(console: &Console) -> Result<&Watch, ApiError> {
    console.watch.as_deref().ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "the sending behaviour of accounts is not watched (behaviour.enabled = false)",
        )
    })
}

/// An account name from the path: bounded, no control characters.
fn account_name(raw: &str) -> Result<String, ApiError> {
    if raw.is_empty() || raw.len() > 320 || raw.chars().any(char::is_control) {
        return Err(ApiError::field("account", "not an account name"));
    }
    Ok(raw.to_lowercase())
}

async fn board(req: HttpRequest, console: Data) -> Reply {
    let s = authorize(&req, &console, &[Role::Security]).await?;
    approver(&s)?;
    let w = watch(&console)?;
    Ok(HttpResponse::Ok().json(json!({
        "accounts": w.board(now(), BOARD),
        "policy": {
            "alert": w.config().alert,
            "throttle": w.config().throttle,
            "hold": w.config().hold,
            "block": w.config().block,
            "throttle_per_hour": w.config().throttle_per_hour,
        },
    })))
}

async fn account(req: HttpRequest, console: Data, name: web::Path<String>) -> Reply {
    let s = authorize(&req, &console, &[Role::Security]).await?;
    approver(&s)?;
    let (view, events, holds) = watch(&console)?
        .account(&account_name(&name)?, now())
        .await?;
    Ok(HttpResponse::Ok().json(json!({ "account": view, "events": events, "held": holds })))
}

/// Clears (`FalseAlarm`) or confirms (`Compromised`) an account, and audits it.
async fn settle(
    req: HttpRequest,
    console: Data,
    name: web::Path<String>,
    finding: Finding,
) -> Reply {
    let s = authorize(&req, &console, &[Role::Security]).await?;
    approver(&s)?;
    let name = account_name(&name)?;
    let who = actor(&s);
    let decided = watch(&console)?
        .settle(&name, finding, &who, &console.quarantine, now())
        .await?;
    for r in &decided.released {
        let item = console.quarantine.get(&r.queue_id).await?;
        console.tracker.record(r.event(&item.summary, &who));
    }
    let (action, detail) = match finding {
        Finding::FalseAlarm => (
            "risk.clear",
            format!(
                "{name}: false alarm, {} held released",
                decided.released.len()
            ),
        ),
        Finding::Compromised => (
            "risk.confirm",
            format!(
                "{name}: compromised, sending blocked, {} held dropped",
                decided.dropped.len()
            ),
        ),
    };
    console.record(&who, action, &detail).await;
    Ok(HttpResponse::Ok().json(&decided))
}
