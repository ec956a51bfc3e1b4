//! Recipients' own allow and block lists (个人黑白名单), as security administrators see them:
//! find the recipients who keep entries, read one recipient's lists, add entries (one or an
//! imported file's worth) and remove them — for any protected domain, or for its own domain
//! only when the administrator is a per-domain one. Every change is in force for the next
//! message and audited. Recipients edit their own from their digest's link
//! ([`super::selfservice`]).

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;
use serde_json::json;

use super::accounts::{Role, Session};
use super::api::actor;
use super::{ApiError, Console, authorize};
use jianmen_mta::ownlists::{ListKind, MAX_PER_OWNER, OwnListBook, OwnListError};

type Data = web::Data<Console>;
type Reply = Result<HttpResponse, ApiError>;

/// Recipients listed at most.
const LISTED: u32 = 200;
/// Entries named in one audit row at most (the count is always there).
const AUDITED: usize = 10;

/// Registers the routes.
pub(super) fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/api/own-lists", web::get().to(owners)).service(
        web::resource("/api/own-lists/{owner}")
            // A full list of long entries, with the JSON around it.
            .app_data(web::PayloadConfig::new(MAX_PER_OWNER * 300))
            .route(web::get().to(show))
            .route(web::post().to(add))
            .route(web::delete().to(remove)),
    );
}

impl From<OwnListError> for ApiError {
    fn from(e: OwnListError) -> Self {
        match e {
            OwnListError::Owner(_) => ApiError::field("owner", e.to_string()).coded("own_owner"),
            OwnListError::Entry(_) => ApiError::field("entries", e.to_string()).coded("list_entry"),
            OwnListError::Full | OwnListError::AllFull => {
                ApiError::field("entries", e.to_string()).coded("own_full")
            }
            OwnListError::Store(s) => ApiError::internal(s),
        }
    }
}

fn book(console: &Console) -> Result<&OwnListBook, ApiError> {
    console
        .policy
        .as_deref()
        .map(|p| p.own_lists())
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "the policy cannot be edited here"))
}

/// The owner's address, if the session may manage it: a per-domain administrator only its
/// own domain's recipients (another tenant's look absent).
fn owner_for(s: &Session, book: &OwnListBook, owner: &str) -> Result<String, ApiError> {
    let owner = book.owner(owner)?;
    match &s.account.domain {
        Some(d) if !owner.ends_with(&format!("@{}", d.to_lowercase())) => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "no such recipient in your domain",
        )),
        _ => Ok(owner),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Find {
    #[serde(default)]
    owner: String,
}

async fn owners(req: HttpRequest, console: Data, find: web::Query<Find>) -> Reply {
    let s = authorize(&req, &console, &[Role::Security]).await?;
    let book = book(&console)?;
    if find.owner.len() > 320 {
        return Err(ApiError::field("owner", "at most 320 characters"));
    }
    let owners = book
        .owners(&find.owner, s.account.domain.as_deref(), LISTED)
        .await
        .map_err(ApiError::internal)?;
    Ok(HttpResponse::Ok()
        .json(json!({ "owners": owners, "limit": LISTED, "applied": book.applied() })))
}

async fn show(req: HttpRequest, console: Data, owner: web::Path<String>) -> Reply {
    let s = authorize(&req, &console, &[Role::Security]).await?;
    let book = book(&console)?;
    let owner = owner_for(&s, book, &owner)?;
    let entries = book.entries(&owner).await?;
    Ok(HttpResponse::Ok().json(json!({
        "owner": owner,
        "entries": entries,
        "max": MAX_PER_OWNER,
        "applied": book.applied(),
    })))
}

/// Entries to add to one list.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Addition {
    list: ListKind,
    entries: Vec<String>,
}

async fn add(req: HttpRequest, console: Data, owner: web::Path<String>, body: web::Bytes) -> Reply {
    let s = authorize(&req, &console, &[Role::Security]).await?;
    let book = book(&console)?;
    let owner = owner_for(&s, book, &owner)?;
    let addition: Addition = serde_json::from_slice(&body)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, e.to_string()))?;
    let who = actor(&s);
    let added = book
        .add(&owner, addition.list, &addition.entries, &who)
        .await?;
    let named: Vec<&str> = addition
        .entries
        .iter()
        .take(AUDITED)
        .map(|e| e.trim())
        .collect();
    console
        .record(
            &who,
            "ownlist.add",
            &format!(
                "{owner} {}: {added} new of {} ({}{})",
                addition.list.as_str(),
                addition.entries.len(),
                named.join(", "),
                if addition.entries.len() > AUDITED {
                    ", …"
                } else {
                    ""
                }
            ),
        )
        .await;
    Ok(HttpResponse::Ok().json(json!({ "added": added })))
}

/// One entry to remove.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Removal {
    list: ListKind,
    entry: String,
}

async fn remove(
    req: HttpRequest,
    console: Data,
    owner: web::Path<String>,
    removal: web::Query<Removal>,
) -> Reply {
    let s = authorize(&req, &console, &[Role::Security]).await?;
    let book = book(&console)?;
    let owner = owner_for(&s, book, &owner)?;
    if !book.remove(&owner, removal.list, &removal.entry).await? {
        return Err(ApiError::new(StatusCode::NOT_FOUND, "no such entry"));
    }
    let who = actor(&s);
    console
        .record(
            &who,
            "ownlist.remove",
            &format!(
                "{owner} {}: {}",
                removal.list.as_str(),
                removal.entry.trim()
            ),
        )
        .await;
    Ok(HttpResponse::Ok().json(json!({ "removed": true })))
}
