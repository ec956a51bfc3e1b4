//! Threat intelligence (威胁情报): the security administrator of all domains sees each source's
//! state, searches the indicators (with their expiry), follows the retro-hunts — delivered mail
//! a new indicator matched, recalled or proposed — recalls a proposed one, and imports a STIX
//! bundle where no feed reaches. Imports and recalls are audited.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use futures_util::StreamExt;
use serde_json::json;

use super::accounts::Role;
use super::api::{actor, approver};
use super::{ApiError, Console, authorize};
use jianmen_mta::intel::{Intel, IntelError, MAX_IMPORT};

type Data = web::Data<Console>;
type Reply = Result<HttpResponse, ApiError>;

/// Rows listed at most.
const LISTED: u32 = 200;

/// Registers the routes.
pub(super) fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/api/intel", web::get().to(overview))
        .route("/api/intel/indicators", web::get().to(indicators))
        .route("/api/intel/hits", web::get().to(hits))
        .route("/api/intel/hits/{id}/recall", web::post().to(recall_hit))
        .route("/api/intel/import", web::post().to(import));
}

impl From<IntelError> for ApiError {
    fn from(e: IntelError) -> Self {
        match e {
            IntelError::Invalid(why) => ApiError::field("body", why),
            IntelError::NotFound => ApiError::new(StatusCode::NOT_FOUND, e.to_string()),
            IntelError::Recall(r) => r.into(),
            IntelError::Store(_) => ApiError::internal(e),
        }
    }
}

fn service(console: &Console) -> Result<&std::sync::Arc<Intel>, ApiError> {
    console
        .intel
        .as_ref()
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "threat intelligence is not running"))
}

async fn overview(req: HttpRequest, console: Data) -> Reply {
    let s = authorize(&req, &console, &[Role::Security]).await?;
    approver(&s)?;
    let intel = service(&console)?;
    let sources = intel.sources().await.map_err(ApiError::internal)?;
    Ok(HttpResponse::Ok().json(json!({
        "sources": sources,
        "in_force": intel.in_force(),
        "on_match": intel.config().on_match,
        "max_import_bytes": MAX_IMPORT,
    })))
}

async fn indicators(
    req: HttpRequest,
    console: Data,
    query: web::Query<std::collections::HashMap<String, String>>,
) -> Reply {
    let s = authorize(&req, &console, &[Role::Security]).await?;
    approver(&s)?;
    let mut q = query.into_inner();
    let search = q.remove("q").unwrap_or_default();
    if search.chars().count() > 200 || search.chars().any(char::is_control) {
        return Err(ApiError::field("q", "at most 200 characters, no controls"));
    }
    if let Some(extra) = q.keys().next() {
        return Err(ApiError::field(extra, "unknown parameter"));
    }
    let list = service(&console)?
        .indicators(search.trim(), LISTED)
        .await
        .map_err(ApiError::internal)?;
    Ok(HttpResponse::Ok().json(json!({ "indicators": list, "now": super::now() })))
}

async fn hits(req: HttpRequest, console: Data) -> Reply {
    let s = authorize(&req, &console, &[Role::Security]).await?;
    approver(&s)?;
    let list = service(&console)?
        .hits(LISTED)
        .await
        .map_err(ApiError::internal)?;
    Ok(HttpResponse::Ok().json(json!({ "hits": list })))
}

async fn recall_hit(req: HttpRequest, console: Data, id: web::Path<String>) -> Reply {
    let s = authorize(&req, &console, &[Role::Security]).await?;
    approver(&s)?;
    let id: i64 = id
        .parse()
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| ApiError::field("id", "not a hit id"))?;
    let who = actor(&s);
    let recall = service(&console)?.recall_hit(id, &who).await?;
    console
        .record(
            &who,
            "intel.recall",
            &format!("recall {recall} for retro-hunt hit {id}"),
        )
        .await;
    Ok(HttpResponse::Accepted().json(json!({ "recall": recall })))
}

async fn import(req: HttpRequest, console: Data, mut body: web::Payload) -> Reply {
    let s = authorize(&req, &console, &[Role::Security]).await?;
    approver(&s)?;
    let intel = service(&console)?;
    let mut document = Vec::new();
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| ApiError::field("body", e.to_string()))?;
        if document.len() + chunk.len() > MAX_IMPORT {
            return Err(ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("larger than {} MiB", MAX_IMPORT >> 20),
            ));
        }
        document.extend_from_slice(&chunk);
    }
    let taken = intel.import(&document).await?;
    let who = actor(&s);
    console
        .record(
            &who,
            "intel.import",
            &format!(
                "STIX import: {} new or changed, {} unchanged, {} refused, {} delivered messages found",
                taken.new, taken.unchanged, taken.skipped_count, taken.hits
            ),
        )
        .await;
    Ok(HttpResponse::Ok().json(taken))
}
