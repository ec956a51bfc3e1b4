//! The console's JSON API. Each handler names the roles that may call it; [`super::authorize`]
//! enforces them before anything else happens, and every state change is audited.

use std::collections::HashMap;

use actix_web::http::{StatusCode, header};
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;
use serde_json::json;

use super::accounts::{AccountError, Role};
use super::{ApiError, COOKIE, Console, authorize, now, peer_ip, source_allowed};
use jianmen_mta::config::HELD_CLASSES;
use jianmen_mta::hunt::Term;
use jianmen_mta::policy::SaveError;
use jianmen_mta::quarantine::approval::{ACCOUNT_CLASS, APPROVAL_CLASS, Notices, awaits_review};
use jianmen_mta::quarantine::{Query as QQuery, Sort, Status};
use jianmen_mta::queue::spool::is_queue_id;
use jianmen_mta::tracking::{MAX_MESSAGES, Query as TQuery};
use jianmen_scan::Direction;
use jianmen_scan::config::DomainPolicy;
use jianmen_scan::feedback::{FeedbackStore, Label};
use jianmen_scan::reputation::AddressList;
use jianmen_scan::verdict::CLASS_NAMES;

type Data = web::Data<Console>;
type Reply = Result<HttpResponse, ApiError>;

/// Registers every API route.
pub(super) fn routes(cfg: &mut web::ServiceConfig) {
    cfg.app_data(json_config())
        .app_data(query_config())
        .route("/api/login", web::post().to(login))
        .route("/api/logout", web::post().to(logout))
        .route("/api/session", web::get().to(session))
        .route("/api/password", web::post().to(password))
        .route("/api/dashboard", web::get().to(dashboard))
        .route("/api/quarantine", web::get().to(quarantine_search))
        .route("/api/quarantine/{id}", web::get().to(quarantine_item))
        .route("/api/quarantine/{id}/raw", web::get().to(quarantine_raw))
        .route(
            "/api/quarantine/{id}/preview",
            web::get().to(quarantine_preview),
        )
        .route(
            "/api/quarantine/{id}/anatomy",
            web::get().to(quarantine_anatomy),
        )
        .route(
            "/api/quarantine/{id}/release",
            web::post().to(quarantine_release),
        )
        .route(
            "/api/quarantine/{id}/reject",
            web::post().to(quarantine_reject),
        )
        .route(
            "/api/quarantine/{id}/delete",
            web::post().to(quarantine_delete),
        )
        .route("/api/tracking", web::get().to(tracking_search))
        .route("/api/tracking/messages", web::get().to(tracking_messages))
        .route(
            "/api/tracking/messages/{id}",
            web::get().to(tracking_message),
        )
        .route("/api/system", web::get().to(system))
        .route("/api/accounts", web::get().to(accounts_list))
        .route("/api/accounts", web::post().to(accounts_create))
        .route("/api/accounts/{name}/reset", web::post().to(accounts_reset))
        .route(
            "/api/accounts/{name}/unlock",
            web::post().to(accounts_unlock),
        )
        .route(
            "/api/accounts/{name}/delete",
            web::post().to(accounts_delete),
        )
        .route("/api/audit", web::get().to(audit_list))
        .route("/api/audit/verify", web::get().to(audit_verify))
        .route("/api/audit/export", web::get().to(audit_export));
}

/// Request bodies: at most 64 KiB, unknown fields refused, errors as 400 JSON.
fn json_config() -> web::JsonConfig {
    web::JsonConfig::default()
        .limit(64 * 1024)
        .error_handler(|e, _| ApiError::field("body", format!("invalid JSON body: {e}")).into())
}

/// Query strings: errors as 400 JSON.
fn query_config() -> web::QueryConfig {
    web::QueryConfig::default()
        .error_handler(|e, _| ApiError::field("query", format!("invalid query: {e}")).into())
}

/// Who did it, as the audit log names console users.
pub(super) fn actor(s: &super::Session) -> String {
    format!("console:{}", s.account.name)
}

/// Query parameters, each taken once and checked; anything left over is an error.
struct Params(HashMap<String, String>);

impl Params {
    fn text(&mut self, name: &str) -> Result<Option<String>, ApiError> {
        match self.0.remove(name) {
            Some(v) if v.chars().count() > 200 => {
                Err(ApiError::field(name, "at most 200 characters"))
            }
            Some(v) if v.is_empty() => Ok(None),
            other => Ok(other),
        }
    }

    fn int(&mut self, name: &str, min: i64, max: i64) -> Result<Option<i64>, ApiError> {
        match self.0.remove(name).filter(|v| !v.is_empty()) {
            None => Ok(None),
            Some(v) => match v.parse::<i64>() {
                Ok(n) if (min..=max).contains(&n) => Ok(Some(n)),
                _ => Err(ApiError::field(
                    name,
                    format!("an integer from {min} to {max}"),
                )),
            },
        }
    }

    fn one_of(&mut self, name: &str, allowed: &[&str]) -> Result<Option<String>, ApiError> {
        match self.text(name)? {
            Some(v) if !allowed.contains(&v.as_str()) => Err(ApiError::field(
                name,
                format!("one of {}", allowed.join(", ")),
            )),
            other => Ok(other),
        }
    }

    /// Offset and limit: limit 1..=`max` (default 50), offset at most 100,000.
    fn page(&mut self, max: i64) -> Result<(u32, u32), ApiError> {
        let limit = self.int("limit", 1, max)?.unwrap_or(50.min(max));
        let offset = self.int("offset", 0, 100_000)?.unwrap_or(0);
        Ok((offset as u32, limit as u32))
    }

    fn finish(self) -> Result<(), ApiError> {
        match self.0.keys().next() {
            Some(k) => Err(ApiError::field(k, "unknown parameter")),
            None => Ok(()),
        }
    }
}

fn item_id(id: &str) -> Result<&str, ApiError> {
    if is_queue_id(id) {
        Ok(id)
    } else {
        Err(ApiError::field("id", "not a queue id"))
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Login {
    username: String,
    password: String,
    /// The one-time code, for an account with a second factor.
    #[serde(default)]
    totp: Option<String>,
}

async fn login(req: HttpRequest, console: Data, body: web::Json<Login>) -> Reply {
    source_allowed(&req, &console)?;
    let ip = peer_ip(&req).map(|i| i.to_string()).unwrap_or_default();
    let name = body.username.trim().to_ascii_lowercase();
    if name.len() > 64 || body.password.len() > 1024 {
        return Err(ApiError::field("username", "too long"));
    }
    if body.totp.as_ref().is_some_and(|c| c.len() > 16) {
        return Err(ApiError::field("totp", "too long"));
    }
    match console
        .accounts
        .login(&name, &body.password, body.totp.as_deref(), &ip, now())
        .await
    {
        Ok(new) => {
            console
                .record(
                    &format!("console:{name}"),
                    "login.ok",
                    &format!("from {ip}"),
                )
                .await;
            let cookie = actix_web::cookie::Cookie::build(COOKIE, new.token)
                .path("/")
                .secure(true)
                .http_only(true)
                .same_site(actix_web::cookie::SameSite::Strict)
                .finish();
            Ok(HttpResponse::Ok()
                .cookie(cookie)
                .insert_header((header::CACHE_CONTROL, "no-store"))
                .json(session_view(&new.session, &console)))
        }
        Err(e) => {
            let safe_name: String = name.chars().filter(|c| !c.is_control()).take(64).collect();
            let action = match e {
                AccountError::CodeNeeded => "login.code_needed",
                _ => "login.fail",
            };
            console
                .record(
                    &format!("console:{safe_name}"),
                    action,
                    &format!("from {ip}: {e}"),
                )
                .await;
            Err(e.into())
        }
    }
}

async fn logout(req: HttpRequest, console: Data) -> Reply {
    let s = authorize(&req, &console, &[]).await?;
    if let Some(c) = req.cookie(COOKIE) {
        console.accounts.logout(c.value()).await?;
    }
    console.record(&actor(&s), "logout", "").await;
    let mut gone = actix_web::cookie::Cookie::build(COOKIE, "")
        .path("/")
        .secure(true)
        .http_only(true)
        .finish();
    gone.make_removal();
    Ok(HttpResponse::NoContent().cookie(gone).finish())
}

async fn session(req: HttpRequest, console: Data) -> Reply {
    let s = authorize(&req, &console, &[]).await?;
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(session_view(&s, &console)))
}

/// The session, with the password rules the pages state before a password is typed.
fn session_view(s: &super::Session, console: &Console) -> serde_json::Value {
    let mut v = serde_json::to_value(s).unwrap_or_default();
    if let (Some(map), Some(c)) = (v.as_object_mut(), &console.config.console) {
        map.insert("password_min_length".into(), c.password_min_length.into());
    }
    if let Some(map) = v.as_object_mut() {
        map.insert(
            "time_zone".into(),
            console.config.server.time_zone.clone().into(),
        );
    }
    v
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PasswordChange {
    current_password: String,
    new_password: String,
}

async fn password(req: HttpRequest, console: Data, body: web::Json<PasswordChange>) -> Reply {
    let s = authorize(&req, &console, &[]).await?;
    let token = req
        .cookie(COOKIE)
        .map(|c| c.value().to_owned())
        .unwrap_or_default();
    let result = console
        .accounts
        .change_password(
            &s.account.name,
            &body.current_password,
            &body.new_password,
            &token,
        )
        .await;
    let outcome = match &result {
        Ok(()) => "ok".to_owned(),
        Err(e) => e.to_string(),
    };
    console
        .record(&actor(&s), "password.change", &outcome)
        .await;
    result?;
    Ok(HttpResponse::NoContent().finish())
}

/// Mail flow of the last 24 hours by hour and kind, and the top senders and recipients.
/// The dashboard over `range` (`24h`, `7d` or `30d`): mail by class over time and in all,
/// outcomes, who sends and receives what is stopped, and — for administrators of all
/// domains — the queue.
async fn dashboard(
    req: HttpRequest,
    console: Data,
    query: web::Query<HashMap<String, String>>,
) -> Reply {
    let s = authorize(&req, &console, &[Role::Security, Role::System]).await?;
    let mut p = Params(query.into_inner());
    let range = p
        .one_of("range", &["24h", "7d", "30d"])?
        .unwrap_or_else(|| "24h".into());
    p.finish()?;
    let (span, bucket) = match range.as_str() {
        "7d" => (7 * 86_400, 6 * 3600),
        "30d" => (30 * 86_400, 86_400),
        _ => (86_400, 3600),
    };
    // Whole buckets of the configured zone's hours and days, so the first is not a sliver
    // and a day is the administrators' day.
    let offset = {
        use chrono::{Offset, TimeZone};
        let zone = console.config.server.zone();
        i64::from(
            zone.offset_from_utc_datetime(&chrono::Utc::now().naive_utc())
                .fix()
                .local_minus_utc(),
        )
    };
    let since = (now() - span + offset) / bucket * bucket + bucket - offset;
    let stats = console
        .tracker
        .stats(since, bucket, offset, s.account.domain.as_deref())
        .await
        .map_err(ApiError::internal)?;
    let queue = match s.account.domain {
        Some(_) => None,
        None => {
            let (active, held) = console.store.counts().await.map_err(ApiError::internal)?;
            Some(json!({ "active": active, "held": held }))
        }
    };
    Ok(HttpResponse::Ok().json(json!({
        "range": range, "since": since, "until": now(), "bucket": bucket, "offset": offset,
        "stats": stats, "queue": queue, "scan_enabled": console.config.scan.enabled,
    })))
}

async fn quarantine_search(
    req: HttpRequest,
    console: Data,
    query: web::Query<HashMap<String, String>>,
) -> Reply {
    let s = authorize(&req, &console, &[Role::Security]).await?;
    let mut p = Params(query.into_inner());
    let (offset, limit) = p.page(200)?;
    let status = match p.one_of(
        "status",
        &["held", "released", "deleted", "expired", "rejected", "all"],
    )? {
        Some(v) if v == "all" => None,
        Some(v) => Status::parse(&v),
        None => Some(Status::Held),
    };
    let q = QQuery {
        since: p.int("since", 0, i64::MAX)?,
        until: p.int("until", 0, i64::MAX)?,
        sender: p.text("sender")?,
        rcpt: p.text("rcpt")?,
        subject: p.text("subject")?,
        class: p.one_of(
            "class",
            &[HELD_CLASSES.as_slice(), &[APPROVAL_CLASS, ACCOUNT_CLASS]].concat(),
        )?,
        status,
        domain: s.account.domain.clone(),
        owner: None,
        min_score: match p.text("min_score")? {
            None => None,
            Some(v) => Some(
                v.parse::<f64>()
                    .ok()
                    .filter(|n| n.is_finite() && (-1000.0..=1000.0).contains(n))
                    .ok_or_else(|| ApiError::field("min_score", "a number"))?,
            ),
        },
        sort: match p.one_of("sort", &["newest", "oldest", "score", "expiry"])? {
            Some(v) => Sort::parse(&v).unwrap_or_default(),
            None => Sort::default(),
        },
        offset,
        limit,
    };
    p.finish()?;
    Ok(HttpResponse::Ok().json(console.quarantine.search(&q).await?))
}

/// The item, if the session's domain scope covers one of its recipients.
async fn scoped_item(
    console: &Console,
    s: &super::Session,
    id: &str,
) -> Result<jianmen_mta::quarantine::Item, ApiError> {
    let item = console.quarantine.get(item_id(id)?).await?;
    if let Some(domain) = &s.account.domain {
        let suffix = format!("@{domain}");
        if !item.rcpts.iter().any(|r| r.rcpt.ends_with(&suffix)) {
            // Outside the scope looks the same as absent.
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                format!("no quarantined message {id}"),
            ));
        }
    }
    Ok(item)
}

async fn quarantine_item(req: HttpRequest, console: Data, id: web::Path<String>) -> Reply {
    let s = authorize(&req, &console, &[Role::Security]).await?;
    let item = scoped_item(&console, &s, &id).await?;
    let history = console
        .tracker
        .search(&TQuery {
            queue_id: Some(item.summary.id.clone()),
            limit: 100,
            ..TQuery::default()
        })
        .await
        .map_err(ApiError::internal)?;
    Ok(HttpResponse::Ok().json(json!({ "item": item, "history": history.events })))
}

/// A held message's bytes for a security administrator whose scope covers it, the access
/// audited as `action`; with its id.
async fn held_message(
    req: &HttpRequest,
    console: &Console,
    id: &str,
    action: &str,
) -> Result<(String, Vec<u8>), ApiError> {
    let s = authorize(req, console, &[Role::Security]).await?;
    let item = scoped_item(console, &s, id).await?;
    let raw = console.quarantine.raw(&item.summary.id).await?;
    console.record(&actor(&s), action, &item.summary.id).await;
    Ok((item.summary.id, raw))
}

async fn quarantine_raw(req: HttpRequest, console: Data, id: web::Path<String>) -> Reply {
    let (id, raw) = held_message(&req, &console, &id, "quarantine.download").await?;
    Ok(HttpResponse::Ok()
        .content_type("message/rfc822")
        .insert_header((
            header::CONTENT_DISPOSITION,
            format!("attachment; filename=\"{id}.eml\""),
        ))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .body(raw))
}

/// Header fields and links an item's page lists at most.
const ANATOMY_MAX: usize = 200;
/// Characters of one header value or link shown at most.
const ANATOMY_CHARS: usize = 2000;

/// What a held message is made of, for the administrator deciding on it: its header fields in
/// order (the Received chain among them) and every link — the text a reader sees and the
/// address it really leads to — and form targets. Read from the parsed message, never fetched.
async fn quarantine_anatomy(req: HttpRequest, console: Data, id: web::Path<String>) -> Reply {
    let (_, raw) = held_message(&req, &console, &id, "quarantine.headers").await?;
    let cut = |s: &str| s.chars().take(ANATOMY_CHARS).collect::<String>();
    let parsed = web::block(move || jianmen_scan::message::Message::parse(&raw))
        .await
        .map_err(ApiError::internal)?;
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(json!({
            "headers": parsed.headers.iter().take(ANATOMY_MAX)
                .map(|(n, v)| (n.clone(), cut(v))).collect::<Vec<_>>(),
            "links": parsed.links.iter().take(ANATOMY_MAX)
                .map(|l| json!({ "text": cut(&l.text), "href": cut(&l.href) })).collect::<Vec<_>>(),
            "forms": parsed.html.form_actions.iter().take(ANATOMY_MAX).map(|f| cut(f)).collect::<Vec<_>>(),
        })))
}

/// The preview's own policy: no scripts, no network, a unique origin (`sandbox`).
const PREVIEW_CSP: &str =
    "default-src 'none'; style-src 'unsafe-inline'; img-src data:; sandbox; frame-ancestors 'self'";

async fn quarantine_preview(req: HttpRequest, console: Data, id: web::Path<String>) -> Reply {
    let (_, raw) = held_message(&req, &console, &id, "quarantine.preview").await?;
    Ok(HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .insert_header((header::CONTENT_SECURITY_POLICY, PREVIEW_CSP))
        .insert_header((header::X_FRAME_OPTIONS, "SAMEORIGIN"))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .body(preview_html(&raw)))
}

/// A safe rendering of a message body: its HTML part sanitised (no scripts, handlers, forms,
/// frames or remote resources survive, and the CSP forbids them anyway), else its text escaped.
pub(crate) fn preview_html(raw: &[u8]) -> String {
    let parsed = mail_parser::MessageParser::default().parse(raw);
    let body = match &parsed {
        Some(m) => match m.body_html(0) {
            Some(html) => ammonia::Builder::default()
                .url_schemes(["http", "https", "mailto"].into_iter().collect())
                .link_rel(Some("noopener noreferrer nofollow"))
                // Remote images are tracking beacons: only inline (data:) ones stay. Links lose
                // their targets: nothing in the preview can be followed, whatever the frame's
                // policy; the item page lists each link's text beside where it really goes.
                .attribute_filter(|element, attribute, value| match (element, attribute) {
                    ("img", "src") if !value.starts_with("data:") => None,
                    ("a" | "area", "href") => None,
                    _ => Some(value.into()),
                })
                .clean(&html)
                .to_string(),
            None => format!(
                "<pre>{}</pre>",
                ammonia::clean_text(&m.body_text(0).unwrap_or_default())
            ),
        },
        None => format!(
            "<pre>{}</pre>",
            ammonia::clean_text(&String::from_utf8_lossy(raw))
        ),
    };
    format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><base target=\"_blank\">\
         <style>body{{font:14px sans-serif;margin:12px;word-wrap:break-word}}</style></head>\
         <body>{body}</body></html>"
    )
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Release {
    #[serde(default)]
    rcpts: Option<Vec<String>>,
    #[serde(default)]
    not_spam: bool,
    /// Also put the envelope sender on the allow list: the caller's domain's, or the global
    /// one for an administrator of all domains. (Not the header From: anyone can write that.)
    #[serde(default)]
    allow_sender: bool,
}

async fn quarantine_release(
    req: HttpRequest,
    console: Data,
    id: web::Path<String>,
    body: web::Json<Release>,
) -> Reply {
    let s = authorize(&req, &console, &[Role::Security]).await?;
    let body = body.into_inner();
    let item = scoped_item(&console, &s, &id).await?;
    if awaits_review(&item.summary.class) {
        approver(&s)?;
        if body.not_spam {
            // The held data must not become training material.
            return Err(ApiError::field(
                "not_spam",
                "not for outgoing mail held for approval",
            ));
        }
    }
    let mut only = body.rcpts;
    if let Some(domain) = &s.account.domain {
        // A domain administrator releases only its own domain's copies.
        let suffix = format!("@{domain}");
        let mine: Vec<String> = item
            .rcpts
            .iter()
            .map(|r| r.rcpt.clone())
            .filter(|r| r.ends_with(&suffix))
            .filter(|r| {
                only.as_ref()
                    .is_none_or(|o| o.iter().any(|x| x.eq_ignore_ascii_case(r)))
            })
            .collect();
        only = Some(mine);
    }
    if let Some(o) = &only
        && (o.len() > 1000 || o.iter().any(|r| r.len() > 320))
    {
        return Err(ApiError::field("rcpts", "at most 1000 addresses"));
    }
    let allow = match body.allow_sender {
        false => None,
        true if awaits_review(&item.summary.class) => {
            return Err(ApiError::field(
                "allow_sender",
                "not for outgoing mail held for approval",
            ));
        }
        true => {
            let sender = item.summary.mail_from.trim().to_lowercase();
            if !sender.contains('@') || AddressList::parse(std::slice::from_ref(&sender)).is_err() {
                return Err(ApiError::field(
                    "allow_sender",
                    "the message has no sender address to allow",
                ));
            }
            let book = console.policy.clone().ok_or_else(|| {
                ApiError::new(StatusCode::NOT_FOUND, "the policy cannot be edited here")
            })?;
            Some((book, sender))
        }
    };
    if body.not_spam {
        let raw = console.quarantine.raw(&item.summary.id).await?;
        let data_dir = &console.config.server.data_dir;
        // A per-domain administrator's labels stay with its domain (finding 8 of the hardening
        // review): retraining learns only from the gateway-wide store.
        let store = match &s.account.domain {
            Some(domain) => FeedbackStore::for_domain(data_dir, domain),
            None => FeedbackStore::open(data_dir),
        };
        store.record(&raw, Label::Ham).map_err(ApiError::internal)?;
    }
    let who = actor(&s);
    let released = console
        .quarantine
        .release(&item.summary.id, only.as_deref(), &who, now())
        .await?;
    console.tracker.record(released.event(&item.summary, &who));
    let detail = format!(
        "{} to {} as {}{}",
        item.summary.id,
        released.rcpts.join(","),
        released.queue_id,
        if body.not_spam { " (not spam)" } else { "" }
    );
    console.record(&who, "quarantine.release", &detail).await;
    if let Some((book, sender)) = allow {
        let domain = s.account.domain.clone();
        let entry = sender.clone();
        let amended = book
            .amend(
                &who,
                &format!("allow the sender of quarantined {}", item.summary.id),
                move |p| {
                    let list = match domain {
                        None => &mut p.allow,
                        Some(d) => {
                            let i = match p.domains.iter().position(|x| x.domain == d) {
                                Some(i) => i,
                                None => {
                                    p.domains.push(DomainPolicy::inheriting(&d));
                                    p.domains.len() - 1
                                }
                            };
                            &mut p.domains[i].allow
                        }
                    };
                    if !list.contains(&entry) {
                        list.push(entry);
                    }
                },
            )
            .await;
        match amended {
            Ok((v, _)) => {
                let detail = format!("version {}: allow {sender}", v.summary.version);
                console.record(&who, "policy.save", &detail).await;
            }
            // Already on the list.
            Err(SaveError::Unchanged) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(HttpResponse::Ok().json(&released))
}

/// Rejects outgoing mail held for approval: dropped, and its sender told which policy held it.
/// Outgoing mail is the whole organisation's: only an administrator of all domains decides.
async fn quarantine_reject(req: HttpRequest, console: Data, id: web::Path<String>) -> Reply {
    let s = authorize(&req, &console, &[Role::Security]).await?;
    approver(&s)?;
    let item = scoped_item(&console, &s, &id).await?;
    let who = actor(&s);
    let c = &console.config;
    let notices = Notices::new(&c.server.hostname, &c.domains.protected).in_zone(c.server.zone());
    console
        .quarantine
        .reject(&item.summary.id, &who, &notices, now())
        .await?;
    console.tracker.record(item.summary.rejected_event(&who));
    console
        .record(&who, "quarantine.reject", &item.summary.id)
        .await;
    Ok(HttpResponse::NoContent().finish())
}

/// Outgoing mail held for approval is the whole organisation's: only an administrator of all
/// domains approves, rejects or deletes it.
pub(super) fn approver(s: &super::Session) -> Result<(), ApiError> {
    match s.account.domain {
        None => Ok(()),
        Some(_) => Err(ApiError::forbidden(
            "approvals are decided by an administrator of all domains",
        )),
    }
}

async fn quarantine_delete(req: HttpRequest, console: Data, id: web::Path<String>) -> Reply {
    let s = authorize(&req, &console, &[Role::Security]).await?;
    let item = scoped_item(&console, &s, &id).await?;
    if awaits_review(&item.summary.class) {
        approver(&s)?;
    }
    if s.account.domain.is_some()
        && item.rcpts.iter().any(|r| {
            !r.rcpt.ends_with(&format!(
                "@{}",
                s.account.domain.as_deref().unwrap_or_default()
            ))
        })
    {
        return Err(ApiError::forbidden(
            "the message also belongs to other domains",
        ));
    }
    console
        .quarantine
        .delete(&item.summary.id, &actor(&s), now())
        .await?;
    console
        .record(&actor(&s), "quarantine.delete", &item.summary.id)
        .await;
    Ok(HttpResponse::NoContent().finish())
}

/// The tracking filters both views share.
fn tracking_query(p: &mut Params, s: &super::Session, max: i64) -> Result<TQuery, ApiError> {
    let (offset, limit) = p.page(max)?;
    let queue_id = p.text("queue_id")?;
    if let Some(id) = &queue_id {
        item_id(id).map_err(|_| ApiError::field("queue_id", "not a queue id"))?;
    }
    Ok(TQuery {
        since: p.int("since", 0, i64::MAX)?,
        until: p.int("until", 0, i64::MAX)?,
        sender: p.text("sender")?,
        rcpt: p.text("rcpt")?,
        subject: p.text("subject")?,
        client_ip: p.text("client_ip")?,
        class: p.one_of("class", &CLASS_NAMES)?,
        kind: p.one_of(
            "kind",
            &[
                "queued",
                "quarantined",
                "discarded",
                "rejected",
                "delivered",
                "deferred",
                "bounced",
                "released",
                "clicked",
            ],
        )?,
        queue_id,
        direction: p.one_of("direction", &Direction::ALL.map(Direction::as_str))?,
        domain: s.account.domain.clone(),
        offset,
        limit,
        ..TQuery::default()
    })
}

async fn tracking_search(
    req: HttpRequest,
    console: Data,
    query: web::Query<HashMap<String, String>>,
) -> Reply {
    let s = authorize(&req, &console, &[Role::Security]).await?;
    let mut p = Params(query.into_inner());
    let q = tracking_query(&mut p, &s, 500)?;
    p.finish()?;
    let page = console
        .tracker
        .search(&q)
        .await
        .map_err(ApiError::internal)?;
    Ok(HttpResponse::Ok().json(page))
}

/// Messages, one row each. `id` finds them by the start of their queue id or, when it looks
/// like one (`<…>` or `…@…`), by Message-ID through the hunt index of delivered mail.
async fn tracking_messages(
    req: HttpRequest,
    console: Data,
    query: web::Query<HashMap<String, String>>,
) -> Reply {
    let s = authorize(&req, &console, &[Role::Security]).await?;
    let mut p = Params(query.into_inner());
    let mut q = tracking_query(&mut p, &s, i64::from(MAX_MESSAGES))?;
    let id = p.text("id")?;
    p.finish()?;
    match id.as_deref().map(str::trim) {
        None | Some("") => {}
        Some(id) if id.contains('@') => {
            let hunt = console.hunt.as_ref().ok_or_else(|| {
                ApiError::field(
                    "id",
                    "Message-IDs are searched in the hunt index, which is off",
                )
            })?;
            let found = hunt
                .find(&Term::MessageId(id.to_owned()), 0, 50)
                .await
                .map_err(ApiError::internal)?;
            q.queue_ids = Some(found.into_iter().map(|m| m.queue_id).collect());
        }
        Some(id) if id.len() <= 26 && id.chars().all(|c| c.is_ascii_alphanumeric()) => {
            q.queue_prefix = Some(id.to_owned());
        }
        Some(_) => {
            return Err(ApiError::field(
                "id",
                "the start of a queue id (letters and digits) or a Message-ID",
            ));
        }
    }
    let page = console
        .tracker
        .messages(&q)
        .await
        .map_err(ApiError::internal)?;
    Ok(HttpResponse::Ok().json(page))
}

/// One message's events, oldest first, with its released copies' (those concerning the
/// caller's domain, for a per-domain administrator).
async fn tracking_message(req: HttpRequest, console: Data, id: web::Path<String>) -> Reply {
    let s = authorize(&req, &console, &[Role::Security]).await?;
    let id = item_id(&id)?;
    let events = console
        .tracker
        .timeline(id, s.account.domain.as_deref())
        .await
        .map_err(ApiError::internal)?;
    if events.is_empty() {
        return Err(ApiError::new(StatusCode::NOT_FOUND, "no such message"));
    }
    Ok(HttpResponse::Ok().json(json!({ "events": events })))
}

async fn system(req: HttpRequest, console: Data) -> Reply {
    authorize(&req, &console, &[Role::System]).await?;
    let c = &console.config;
    let (active, held) = console.store.counts().await.map_err(ApiError::internal)?;
    let clock = jianmen_mta::clock::status(&c.server.time_zone).await;
    // The rest of the page does not depend on the cluster's database answering.
    let cluster = match &console.cluster {
        Some((db, node)) => Some(match jianmen_mta::store::nodes::list(db, now()).await {
            Ok(nodes) => json!({ "node": node, "nodes": nodes }),
            Err(e) => json!({ "node": node, "nodes": [], "error": e.to_string() }),
        }),
        None => None,
    };
    Ok(HttpResponse::Ok().json(json!({
        "cluster": cluster,
        "version": env!("CARGO_PKG_VERSION"),
        "clock": clock,
        "hostname": c.server.hostname,
        "smtp_listen": c.smtp.listen,
        "console_listen": c.console.as_ref().map(|x| x.listen),
        "starttls": c.tls.is_some(),
        "queue": { "active": active, "held": held },
        "routes": c.routes.iter().map(|r| json!({"domain": r.domain, "host": r.host, "port": r.port})).collect::<Vec<_>>(),
        "scan_enabled": c.scan.enabled,
        // What STARTTLS and the console present (the console generates its own without [tls]);
        // pairs installed here replace the configured files.
        "certificates": jianmen_gm::certinfo::describe(
            &console.certs.effective(&c.tls.clone().unwrap_or_else(jianmen_mta::config::TlsConfig::generated)),
            now(),
        ).into_iter().map(|info| {
            let role = jianmen_gm::pair::CertRole::parse(info.role);
            let mut shown = json!(info);
            shown["installed"] = json!(role.is_some_and(|r| console.certs.is_installed(r)));
            shown["request_pending"] =
                json!(role.is_some_and(|r| matches!(console.certs.request_key(r), Ok(Some(_)))));
            shown
        }).collect::<Vec<_>>(),
        "certificates_editable": console.tls.is_some(),
        "expiry_warning_days": jianmen_gm::certinfo::EXPIRY_WARNING_DAYS,
    })))
}

/// The accounts the caller may manage, and those it may only see: the system administrator
/// sees every account, a security administrator of all domains its per-domain delegates.
async fn accounts_list(req: HttpRequest, console: Data) -> Reply {
    let s = authorize(&req, &console, &[Role::System, Role::Security]).await?;
    let mut list = console.accounts.list().await?;
    match (s.account.role, &s.account.domain) {
        (Role::System, _) => {}
        (_, None) => list.retain(|a| a.domain.is_some()),
        (_, Some(_)) => return Err(ApiError::forbidden("your role may not do this")),
    }
    Ok(HttpResponse::Ok().json(list))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewAccount {
    name: String,
    role: String,
    #[serde(default)]
    domain: Option<String>,
}

async fn accounts_create(req: HttpRequest, console: Data, body: web::Json<NewAccount>) -> Reply {
    let s = authorize(&req, &console, &[Role::System, Role::Security]).await?;
    let role = Role::parse(&body.role)
        .ok_or_else(|| ApiError::field("role", "one of system, security, audit"))?;
    let domain = body.domain.as_deref().filter(|d| !d.is_empty());
    console.accounts.may_create(&s.account, role, domain)?;
    let password = console
        .accounts
        .create(&body.name, role, domain, now())
        .await?;
    console
        .record(
            &actor(&s),
            "account.create",
            &format!(
                "{} as {}{}",
                body.name,
                role.as_str(),
                domain.map(|d| format!(" for {d}")).unwrap_or_default()
            ),
        )
        .await;
    Ok(HttpResponse::Created()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(json!({ "name": body.name, "initial_password": password })))
}

async fn accounts_reset(req: HttpRequest, console: Data, name: web::Path<String>) -> Reply {
    let s = authorize(&req, &console, &[Role::System, Role::Security]).await?;
    console.accounts.managed_by(&s.account, &name).await?;
    let password = console.accounts.reset(&name).await?;
    console.record(&actor(&s), "account.reset", &name).await;
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(json!({ "name": name.as_str(), "initial_password": password })))
}

async fn accounts_unlock(req: HttpRequest, console: Data, name: web::Path<String>) -> Reply {
    let s = authorize(&req, &console, &[Role::System, Role::Security]).await?;
    console.accounts.managed_by(&s.account, &name).await?;
    console.accounts.unlock(&name).await?;
    console.record(&actor(&s), "account.unlock", &name).await;
    Ok(HttpResponse::NoContent().finish())
}

async fn accounts_delete(req: HttpRequest, console: Data, name: web::Path<String>) -> Reply {
    let s = authorize(&req, &console, &[Role::System, Role::Security]).await?;
    console.accounts.managed_by(&s.account, &name).await?;
    if *name == s.account.name {
        return Err(ApiError::field(
            "name",
            "you cannot delete your own account",
        ));
    }
    console.accounts.delete(&name).await?;
    console.record(&actor(&s), "account.delete", &name).await;
    Ok(HttpResponse::NoContent().finish())
}

async fn audit_list(
    req: HttpRequest,
    console: Data,
    query: web::Query<HashMap<String, String>>,
) -> Reply {
    authorize(&req, &console, &[Role::Audit]).await?;
    let mut p = Params(query.into_inner());
    let (_, limit) = p.page(1000)?;
    p.finish()?;
    let entries = console
        .audit
        .recent(limit)
        .await
        .map_err(ApiError::internal)?;
    Ok(HttpResponse::Ok().json(entries))
}

async fn audit_verify(req: HttpRequest, console: Data) -> Reply {
    let s = authorize(&req, &console, &[Role::Audit]).await?;
    let result = console.audit.verify().await;
    let body = match &result {
        Ok((rows, head)) => json!({ "intact": true, "rows": rows, "head": head }),
        Err(jianmen_mta::audit::AuditError::Broken { seq, reason }) => {
            json!({ "intact": false, "seq": seq, "reason": reason })
        }
        Err(e) => return Err(ApiError::internal(e)),
    };
    console
        .record(&actor(&s), "audit.verify", &body.to_string())
        .await;
    Ok(HttpResponse::Ok().json(body))
}

/// The signed package for the authorities, as a download.
async fn audit_export(req: HttpRequest, console: Data) -> Reply {
    let s = authorize(&req, &console, &[Role::Audit]).await?;
    let rows = console.audit.chained().await.map_err(ApiError::internal)?;
    let data_dir = console.config.server.data_dir.clone();
    let hostname = console.config.server.hostname.clone();
    let chain = jianmen_mta::audit::chain_hash(console.audit.chain().name())
        .ok_or_else(|| ApiError::internal("the audit log's hash is unknown"))?;
    let package = tokio::task::spawn_blocking(move || {
        let signer = jianmen_mta::audit::export::signer(&data_dir).map_err(ApiError::internal)?;
        jianmen_mta::audit::export::build(&rows, chain.as_ref(), &hostname, &signer)
            .map_err(ApiError::internal)
    })
    .await
    .map_err(ApiError::internal)??;
    let name = format!(
        "jianmen-audit-{}-{}.tar",
        console.config.server.hostname,
        chrono::Utc::now().format("%Y%m%dT%H%M%SZ")
    );
    console.record(&actor(&s), "audit.export", &name).await;
    Ok(HttpResponse::Ok()
        .content_type("application/x-tar")
        .insert_header((
            header::CONTENT_DISPOSITION,
            format!("attachment; filename=\"{name}\""),
        ))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .body(package))
}
