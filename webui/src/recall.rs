//! Hunting and recall (邮件召回): the security administrator of all domains finds delivered
//! messages in the hunt index (by attachment hash, link, domain, sender, Message-ID or queue
//! id), recalls one from the mailboxes it reached, follows each mailbox's progress, and puts
//! back what was moved. Every recall and undo is audited.

use std::collections::HashMap;

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;
use serde_json::json;

use super::accounts::Role;
use super::api::{actor, approver};
use super::{ApiError, Console, authorize, now};
use jianmen_mta::hunt::{HuntIndex, Term};
use jianmen_mta::queue::spool::is_queue_id;
use jianmen_mta::recall::{RecallError, Recaller};

type Data = web::Data<Console>;
type Reply = Result<HttpResponse, ApiError>;

/// Recalls listed at most.
const RECENT: u32 = 100;
/// Longest search term (a URL may be long).
const MAX_TERM: usize = 2048;

/// Registers the routes.
pub(super) fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/api/hunt", web::get().to(hunt))
        .route("/api/recall", web::get().to(recent))
        .route("/api/recall", web::post().to(start))
        .route("/api/recall/{id}", web::get().to(one))
        .route("/api/recall/{id}/undo", web::post().to(undo));
}

impl From<RecallError> for ApiError {
    fn from(e: RecallError) -> Self {
        let status = match &e {
            RecallError::NotFound => StatusCode::NOT_FOUND,
            RecallError::NoMessageId | RecallError::NoMailbox | RecallError::NothingToUndo => {
                StatusCode::CONFLICT
            }
            RecallError::Store(_) => return Self::internal(e),
            RecallError::Server(_) | RecallError::Unsearchable(_) | RecallError::NoSystem(_) => {
                StatusCode::BAD_GATEWAY
            }
        };
        Self::new(status, e.to_string())
    }
}

fn index(console: &Console) -> Result<&HuntIndex, ApiError> {
    console
        .hunt
        .as_ref()
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "the hunt index is not open"))
}

fn recaller(console: &Console) -> Result<&std::sync::Arc<Recaller>, ApiError> {
    console.recaller.as_ref().ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "no mail system is configured for recall ([[recall.imap]])",
        )
    })
}

/// Makes a search term of one kind.
type MakeTerm = fn(String) -> Term;

/// One search term from the query: exactly one of the kinds, bounded.
fn term(query: &mut HashMap<String, String>) -> Result<Term, ApiError> {
    let kinds: [(&str, MakeTerm); 6] = [
        ("sha256", Term::Sha256),
        ("url", Term::Url),
        ("domain", Term::Domain),
        ("sender", Term::Sender),
        ("message_id", Term::MessageId),
        ("queue_id", Term::QueueId),
    ];
    let mut found = None;
    for (name, make) in kinds {
        let Some(value) = query.remove(name).filter(|v| !v.trim().is_empty()) else {
            continue;
        };
        if value.len() > MAX_TERM || value.chars().any(char::is_control) {
            return Err(ApiError::field(name, "too long, or control characters"));
        }
        if name == "sha256" && (value.len() != 64 || !value.bytes().all(|b| b.is_ascii_hexdigit()))
        {
            return Err(ApiError::field(name, "64 hex digits"));
        }
        if name == "queue_id" && !is_queue_id(&value) {
            return Err(ApiError::field(name, "not a queue id"));
        }
        if found.is_some() {
            return Err(ApiError::field(name, "one search term at a time"));
        }
        found = Some(make(value));
    }
    found.ok_or_else(|| {
        ApiError::field(
            "sha256",
            "give sha256, url, domain, sender, message_id or queue_id",
        )
    })
}

async fn hunt(
    req: HttpRequest,
    console: Data,
    query: web::Query<HashMap<String, String>>,
) -> Reply {
    let s = authorize(&req, &console, &[Role::Security]).await?;
    approver(&s)?;
    let mut q = query.into_inner();
    let term = term(&mut q)?;
    let days: i64 = match q.remove("days") {
        Some(d) => d
            .parse()
            .ok()
            .filter(|d| (1..=3650).contains(d))
            .ok_or_else(|| ApiError::field("days", "1–3650"))?,
        None => 30,
    };
    if let Some(extra) = q.keys().next() {
        return Err(ApiError::field(extra, "unknown parameter"));
    }
    let found = index(&console)?
        .find(&term, now() - days * 86_400, 200)
        .await
        .map_err(ApiError::internal)?;
    Ok(HttpResponse::Ok().json(json!({ "messages": found })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StartRecall {
    queue_id: String,
    #[serde(default)]
    mailboxes: Vec<String>,
    #[serde(default)]
    reason: String,
}

async fn start(req: HttpRequest, console: Data, body: web::Json<StartRecall>) -> Reply {
    let s = authorize(&req, &console, &[Role::Security]).await?;
    approver(&s)?;
    let body = body.into_inner();
    if !is_queue_id(&body.queue_id) {
        return Err(ApiError::field("queue_id", "not a queue id"));
    }
    if body.reason.chars().count() > 500 || body.reason.chars().any(char::is_control) {
        return Err(ApiError::field(
            "reason",
            "at most 500 characters, no controls",
        ));
    }
    if body.mailboxes.len() > jianmen_mta::recall::MAX_MAILBOXES
        || body
            .mailboxes
            .iter()
            .any(|m| m.len() > 320 || m.chars().any(char::is_control))
    {
        return Err(ApiError::field("mailboxes", "addresses, at most 10,000"));
    }
    let recaller = recaller(&console)?;
    let message = index(&console)?
        .find(&Term::QueueId(body.queue_id.clone()), 0, 1)
        .await
        .map_err(ApiError::internal)?
        .into_iter()
        .next()
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "the hunt index does not know this message (not delivered to a mailbox here, or past retention)",
            )
        })?;
    let who = actor(&s);
    let job = recaller
        .start(&message, &body.mailboxes, &who, &body.reason)
        .await?;
    console
        .record(
            &who,
            "recall.start",
            &format!(
                "recall {} of {} (Message-ID {}) from {}: {}",
                job.id,
                job.queue_id,
                job.message_id,
                if body.mailboxes.is_empty() {
                    "every recipient".to_owned()
                } else {
                    body.mailboxes.join(", ")
                },
                body.reason
            ),
        )
        .await;
    Ok(HttpResponse::Accepted().json(json!({ "recall": job })))
}

async fn recent(req: HttpRequest, console: Data) -> Reply {
    let s = authorize(&req, &console, &[Role::Security]).await?;
    approver(&s)?;
    let list = recaller(&console)?.recent(RECENT).await?;
    let recalls: Vec<_> = list
        .into_iter()
        .map(|(job, counts)| json!({ "recall": job, "states": counts.into_iter().collect::<HashMap<_, _>>() }))
        .collect();
    Ok(HttpResponse::Ok().json(json!({ "recalls": recalls })))
}

fn recall_id(id: &str) -> Result<&str, ApiError> {
    if is_queue_id(id) {
        Ok(id)
    } else {
        Err(ApiError::field("id", "not a recall id"))
    }
}

async fn one(req: HttpRequest, console: Data, id: web::Path<String>) -> Reply {
    let s = authorize(&req, &console, &[Role::Security]).await?;
    approver(&s)?;
    let (job, items) = recaller(&console)?.get(recall_id(&id)?).await?;
    Ok(HttpResponse::Ok().json(json!({ "recall": job, "mailboxes": items })))
}

async fn undo(req: HttpRequest, console: Data, id: web::Path<String>) -> Reply {
    let s = authorize(&req, &console, &[Role::Security]).await?;
    approver(&s)?;
    let id = recall_id(&id)?;
    let mailboxes = recaller(&console)?.undo(id).await?;
    let who = actor(&s);
    console
        .record(
            &who,
            "recall.undo",
            &format!("recall {id}: putting back into {}", mailboxes.join(", ")),
        )
        .await;
    Ok(HttpResponse::Accepted().json(json!({ "mailboxes": mailboxes })))
}
