//! The detection policy (策略): thresholds and actions per class, allow and block lists —
//! globally and per protected domain —, each rule's switch and points, the refused file types
//! (附件策略) and the data-leak prevention policies (外发防泄漏), edited in the console and in
//! force for the next message, without a restart. The security administrator of all domains edits all of it and
//! sees every version (what changed, who, why) and can roll back to any; a per-domain
//! administrator edits its own domain's part only and sees no other tenant's entries. Every
//! save is checked as `check-config` checks the file, built on the version the editor loaded
//! (a concurrent save is refused, not overwritten) and audited with what changed.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;
use serde_json::json;

use super::accounts::Role;
use super::accounts::Session;
use super::api::actor;
use super::{ApiError, Console, authorize};
use jianmen_mta::policy::{Change, PolicyBook, SaveError};
use jianmen_scan::config::{DomainPolicy, ScanPolicy};

type Data = web::Data<Console>;
type Reply = Result<HttpResponse, ApiError>;

/// Versions listed at most.
const LISTED: u32 = 100;
/// Changes named in one audit row at most (the version keeps all of them).
const AUDITED_CHANGES: usize = 20;
/// A policy with two full 10,000-entry lists fits.
const BODY_LIMIT: usize = 2 * 1024 * 1024;

/// Registers the routes.
pub(super) fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/api/policy")
            .app_data(web::PayloadConfig::default().limit(BODY_LIMIT))
            .route(web::get().to(show))
            .route(web::put().to(save)),
    )
    .route("/api/policy/versions", web::get().to(versions))
    .route("/api/policy/versions/{n}", web::get().to(version))
    .route("/api/policy/versions/{n}/restore", web::post().to(restore));
}

impl From<SaveError> for ApiError {
    fn from(e: SaveError) -> Self {
        match e {
            SaveError::Conflict(_) => {
                ApiError::new(StatusCode::CONFLICT, e.to_string()).coded("policy_conflict")
            }
            SaveError::Unchanged => ApiError::field("policy", e.to_string()).coded("unchanged"),
            SaveError::Invalid(p) => ApiError::field(&p.key, p.why),
            SaveError::Unknown(_) => ApiError::new(StatusCode::NOT_FOUND, e.to_string()),
            SaveError::Store(s) => ApiError::internal(s),
        }
    }
}

fn book(console: &Console) -> Result<&PolicyBook, ApiError> {
    console
        .policy
        .as_deref()
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "the policy cannot be edited here"))
}

/// Versions and roll-backs name every tenant's entries: administrators of all domains only.
fn all_domains(s: &Session) -> Result<(), ApiError> {
    match s.account.domain {
        None => Ok(()),
        Some(_) => Err(ApiError::forbidden(
            "policy versions are kept by an administrator of all domains",
        )),
    }
}

/// The policy in force, with what else decides a message's fate (read-only here). A
/// per-domain administrator gets its domain's policy and the defaults it inherits, and no
/// other tenant's domains or the global lists (they name other tenants' correspondents).
async fn show(req: HttpRequest, console: Data) -> Reply {
    let s = authorize(&req, &console, &[Role::Security]).await?;
    let c = &console.config;
    let (version, policy) = match &console.policy {
        Some(b) => {
            let v = b.current().await;
            (Some(v.summary), v.policy)
        }
        None => (None, c.scan_policy()),
    };
    let common = json!({
        "version": version,
        "model": c.scan.model,
        "quarantine_retention_days": c.quarantine.retention_days,
        "editable": console.policy.is_some(),
    });
    let body = match s.account.domain.as_deref() {
        Some(d) => {
            let own = policy
                .domains
                .iter()
                .find(|p| p.domain == d)
                .cloned()
                .unwrap_or_else(|| DomainPolicy::inheriting(d));
            json!({
                "common": common,
                "scope": d,
                "protected_domains": [d],
                "defaults": { "thresholds": policy.thresholds, "actions": policy.actions },
                "domain_policy": own,
            })
        }
        None => json!({
            "common": common,
            "scope": null,
            "protected_domains": c.domains.protected,
            "policy": policy,
            // Outgoing mail is the whole organisation's: shown to administrators of all domains.
            "internal_relays": c.smtp.internal_relays,
            "dkim_domains": c.dkim.domains.iter()
                .map(|d| format!("{} ({})", d.domain, d.selector)).collect::<Vec<_>>(),
            // What a DLP policy may count (its `detect` keys).
            "dlp_detectors": jianmen_scan::dlp::identifiers::Detector::ALL.map(|d| d.name()),
            // The rule switches and weights: every symbol with the rule files' points.
            "symbols": console.policy.as_ref().map(|b| b.symbols()).unwrap_or_default(),
        }),
    };
    Ok(HttpResponse::Ok().json(body))
}

/// An edit: the whole policy (administrators of all domains) or one domain's part
/// (per-domain administrators), built on version `base`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Edit {
    base: i64,
    #[serde(default)]
    comment: String,
    policy: Option<serde_json::Value>,
    domain_policy: Option<DomainPolicy>,
}

/// The body is read as bytes and parsed only once the caller is known: an anonymous request
/// learns nothing from a parse error.
async fn save(req: HttpRequest, console: Data, body: web::Bytes) -> Reply {
    let s = authorize(&req, &console, &[Role::Security]).await?;
    let book = book(&console)?;
    let edit: Edit = serde_json::from_slice(&body)
        .map_err(|e| ApiError::field("body", format!("invalid JSON body: {e}")))?;
    if edit.comment.chars().count() > 500 || edit.comment.chars().any(char::is_control) {
        return Err(ApiError::field(
            "comment",
            "at most 500 characters, one line",
        ));
    }
    let policy = match (s.account.domain.as_deref(), edit.policy, edit.domain_policy) {
        (None, Some(p), None) => whole(p, book.current().await.policy)?,
        (Some(d), None, Some(mut own)) => {
            // Only its own domain's part changes; the rest is the version it was built on.
            own.domain = d.to_owned();
            let mut p = book.current().await.policy;
            p.domains.retain(|x| x.domain != d);
            if own != DomainPolicy::inheriting(d) {
                p.domains.push(own);
            }
            p
        }
        (None, _, _) => return Err(ApiError::field("policy", "give the whole policy")),
        (Some(_), _, _) => {
            return Err(ApiError::field(
                "domain_policy",
                "give your domain's policy only",
            ));
        }
    };
    let who = actor(&s);
    let (v, changes) = book.save(&who, &edit.comment, edit.base, policy).await?;
    console
        .record(&who, "policy.save", &audited(v.summary.version, &changes))
        .await;
    Ok(HttpResponse::Ok().json(json!({ "version": v.summary, "changes": changes })))
}

/// The whole policy an editor sent. A part it leaves out — the refused file types or the DLP
/// policies, from a page or a script older than those parts — is kept as in force, never
/// emptied.
fn whole(mut sent: serde_json::Value, current: ScanPolicy) -> Result<ScanPolicy, ApiError> {
    let bad = |e: serde_json::Error| ApiError::field("policy", e.to_string());
    let current = serde_json::to_value(current).map_err(bad)?;
    if let (Some(fields), Some(now)) = (sent.as_object_mut(), current.as_object()) {
        for key in ["attachments", "dlp"] {
            if !fields.contains_key(key)
                && let Some(v) = now.get(key)
            {
                fields.insert(key.to_owned(), v.clone());
            }
        }
    }
    serde_json::from_value(sent).map_err(bad)
}

async fn versions(req: HttpRequest, console: Data) -> Reply {
    let s = authorize(&req, &console, &[Role::Security]).await?;
    all_domains(&s)?;
    let list = book(&console)?
        .versions(LISTED)
        .await
        .map_err(ApiError::internal)?;
    Ok(HttpResponse::Ok().json(json!({ "versions": list })))
}

async fn version(req: HttpRequest, console: Data, n: web::Path<i64>) -> Reply {
    let s = authorize(&req, &console, &[Role::Security]).await?;
    all_domains(&s)?;
    let b = book(&console)?;
    let missing = || ApiError::new(StatusCode::NOT_FOUND, "no such policy version");
    let v = b
        .version(*n)
        .await
        .map_err(ApiError::internal)?
        .ok_or_else(missing)?;
    let changes = b
        .changes_of(*n)
        .await
        .map_err(ApiError::internal)?
        .ok_or_else(missing)?;
    Ok(HttpResponse::Ok().json(json!({ "version": v, "changes": changes })))
}

async fn restore(req: HttpRequest, console: Data, n: web::Path<i64>) -> Reply {
    let s = authorize(&req, &console, &[Role::Security]).await?;
    all_domains(&s)?;
    let who = actor(&s);
    let (v, changes) = book(&console)?.restore(&who, *n).await?;
    console
        .record(
            &who,
            "policy.restore",
            &format!(
                "to version {}; {}",
                *n,
                audited(v.summary.version, &changes)
            ),
        )
        .await;
    Ok(HttpResponse::Ok().json(json!({ "version": v.summary, "changes": changes })))
}

/// The audit row's words: the new version and the first changes.
fn audited(version: i64, changes: &[Change]) -> String {
    let shown: Vec<String> = changes
        .iter()
        .take(AUDITED_CHANGES)
        .map(|c| {
            format!(
                "{}: {} -> {}",
                c.key,
                c.before.as_deref().unwrap_or("-"),
                c.after.as_deref().unwrap_or("-")
            )
        })
        .collect();
    let more = changes.len().saturating_sub(AUDITED_CHANGES);
    let mut text = format!("version {version}: {}", shown.join("; "));
    if more > 0 {
        text.push_str(&format!("; and {more} more"));
    }
    text
}
