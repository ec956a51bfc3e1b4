//! The link service (安全链接): where the rewritten links of inbound mail lead. Each click opens
//! its signed token (a tampered or expired one is refused — there is no way to make this
//! service redirect anywhere a token does not name), judges the address as it stands now and
//! either sends the user on or shows a warning (zh-CN first, English beside) with, by policy,
//! a way on. Every click is recorded in tracking; a click on a link that went bad after the
//! mail was delivered alerts the administrators and, by policy, recalls the message. Clients
//! are rate-limited; going past a warning is a POST, so link scanners that fetch links never
//! do it.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use actix_web::http::StatusCode;
use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};

use super::selfservice::page;
use super::{Console, now, peer_ip};
use jianmen_mta::hunt::Term;
use jianmen_mta::links::{Click, LinkGuard, OnBad};
use jianmen_mta::quarantine::digest::escape_html;
use jianmen_mta::quarantine::links::LinkError;
use jianmen_mta::queue::{MessageKind, NewMessage, Queue};
use jianmen_mta::tracking::{Event, EventKind};
use jianmen_scan::greylist::RateLimiter;
use jianmen_scan::pipeline::{LinkJudgement, Pipeline};

type Data = web::Data<Console>;

/// Clicks one address may make per minute.
const CLICKS_PER_MINUTE: u32 = 120;
/// Links alerted on, remembered so that one bad link alerts once.
const MAX_ALERTED: usize = 10_000;

/// What the link service needs of the gateway.
pub struct LinkService {
    /// Opens tokens.
    pub guard: Arc<LinkGuard>,
    /// Judges addresses.
    pub judge: Arc<Pipeline>,
    /// Where alerts are queued.
    pub queue: Arc<Queue>,
    limiter: RateLimiter,
    alerted: Mutex<HashSet<(String, String)>>,
}

impl LinkService {
    /// The service over `guard`, judging with `judge` and alerting through `queue`.
    pub fn new(guard: Arc<LinkGuard>, judge: Arc<Pipeline>, queue: Arc<Queue>) -> LinkService {
        LinkService {
            guard,
            judge,
            queue,
            limiter: RateLimiter::new(CLICKS_PER_MINUTE),
            alerted: Mutex::new(HashSet::new()),
        }
    }

    /// Whether `(queue id, url)` is alerted on for the first time.
    fn first_alert(&self, click: &Click) -> bool {
        let Ok(mut seen) = self.alerted.lock() else {
            return false;
        };
        if seen.len() >= MAX_ALERTED {
            seen.clear();
        }
        seen.insert((click.queue_id.clone(), click.url.clone()))
    }
}

/// Mounts `/l/…` and the policy's API.
pub(super) fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/l/{token}", web::get().to(click))
        .route("/l/{token}", web::post().to(go_on))
        .route("/api/links", web::get().to(policy));
}

/// The link-protection policy, for the console (the clicks are in tracking).
async fn policy(req: HttpRequest, console: Data) -> Result<HttpResponse, super::ApiError> {
    let s = super::authorize(&req, &console, &[super::accounts::Role::Security]).await?;
    super::api::approver(&s)?;
    let c = &console.config.links;
    Ok(HttpResponse::Ok().json(serde_json::json!({
        "enabled": console.link_service.is_some(),
        "base_url": c.base_url,
        "domains": c.domains,
        "skip": c.skip,
        "max_age_days": c.max_age_days,
        "on_bad": c.on_bad,
        "notify": c.notify,
        "recall": c.recall,
        "per_recipient_max": c.per_recipient_max,
    })))
}

fn refusal(status: StatusCode, text: &str) -> HttpResponse {
    page(
        status,
        "链接无法打开 / This link cannot be opened",
        &format!("<p class=\"error\">{}</p>", escape_html(text)),
    )
}

/// The service and the token's click, or why not (shown as a page).
fn opened<'a>(
    req: &HttpRequest,
    console: &'a Console,
    token: &str,
) -> Result<(&'a LinkService, Click), (StatusCode, String)> {
    let Some(service) = &console.link_service else {
        return Err((
            StatusCode::NOT_FOUND,
            "link protection is not enabled / 未启用安全链接".into(),
        ));
    };
    if let Some(ip) = peer_ip(req)
        && !service.limiter.allow(ip)
    {
        return Err((
            StatusCode::TOO_MANY_REQUESTS,
            "too many clicks, try again in a minute / 点击过于频繁，请稍后再试".into(),
        ));
    }
    match service.guard.open(token, now()) {
        Ok(click) => Ok((service, click)),
        Err(e @ LinkError::Expired) => Err((StatusCode::GONE, e.to_string())),
        Err(e) => Err((StatusCode::BAD_REQUEST, e.to_string())),
    }
}

fn redirect(url: &str) -> HttpResponse {
    HttpResponse::Found()
        .insert_header((header::LOCATION, url))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((header::REFERRER_POLICY, "no-referrer"))
        .finish()
}

async fn click(req: HttpRequest, console: Data, token: web::Path<String>) -> HttpResponse {
    let (service, click) = match opened(&req, &console, &token) {
        Ok(opened) => opened,
        Err((status, why)) => return refusal(status, &why),
    };
    let judgement = service.judge.judge_link(&click.url).await;
    let on_bad = service.guard.config().on_bad;
    let outcome = match (judgement.dangerous, on_bad) {
        (false, _) => "passed",
        (true, OnBad::Warn) => "warned",
        (true, OnBad::Block) => "blocked",
    };
    record(&console, &req, &click, outcome, &judgement);
    if !judgement.dangerous {
        return redirect(&click.url);
    }
    if service.first_alert(&click) {
        alert(&console, service, &click, &judgement).await;
    }
    let reasons: String = judgement
        .reasons
        .iter()
        .map(|r| format!("<li>{}</li>", escape_html(r)))
        .collect();
    let go_on = match on_bad {
        OnBad::Warn => {
            "<form method=\"post\"><button type=\"submit\" class=\"danger\" id=\"go-on\">\
             我了解风险，继续访问 / I understand the risk, continue</button></form>"
                .to_owned()
        }
        OnBad::Block => {
            "<p>管理员已禁止访问此链接。/ Your administrator blocks this link.</p>".into()
        }
    };
    page(
        StatusCode::OK,
        "危险链接 / Dangerous link",
        &format!(
            "<p class=\"error\" id=\"warning\">此链接已被判定为危险（钓鱼、恶意或仿冒网站），请勿输入账号、密码或下载文件。\
             <br>This link was found dangerous (phishing, malware or an imitation site): do not enter \
             passwords or download anything.</p><p><code id=\"target\">{}</code></p><ul>{reasons}</ul>{go_on}\
             <p class=\"muted\">如有疑问，请联系信息安全部门。/ If in doubt, contact your security team.</p>",
            escape_html(&click.url)
        ),
    )
}

/// Going past the warning, where the policy allows it.
async fn go_on(req: HttpRequest, console: Data, token: web::Path<String>) -> HttpResponse {
    let (service, click) = match opened(&req, &console, &token) {
        Ok(opened) => opened,
        Err((status, why)) => return refusal(status, &why),
    };
    if service.guard.config().on_bad == OnBad::Block {
        return refusal(
            StatusCode::FORBIDDEN,
            "your administrator blocks this link / 管理员已禁止访问此链接",
        );
    }
    record(
        &console,
        &req,
        &click,
        "continued",
        &LinkJudgement::default(),
    );
    redirect(&click.url)
}

/// The click, in tracking.
fn record(
    console: &Console,
    req: &HttpRequest,
    click: &Click,
    outcome: &str,
    judgement: &LinkJudgement,
) {
    let mut detail = format!("{outcome} {}", click.url);
    if !judgement.reasons.is_empty() {
        detail.push_str(" — ");
        detail.push_str(&judgement.reasons.join("; "));
    }
    console.tracker.record(Event {
        at: now(),
        queue_id: click.queue_id.clone(),
        kind: EventKind::Clicked,
        mail_from: String::new(),
        rcpts: click.rcpt.clone(),
        subject: String::new(),
        client_ip: peer_ip(req).map(|ip| ip.to_string()).unwrap_or_default(),
        class: if judgement.dangerous {
            "phish".into()
        } else {
            String::new()
        },
        score: 0.0,
        detail: detail.chars().take(2000).collect(),
        direction: String::new(),
    });
    tracing::info!(queue_id = %click.queue_id, rcpt = %click.rcpt, outcome, url = %click.url, "protected link clicked");
}

/// Tells `links.notify` that a delivered link turned out dangerous, and recalls the message
/// when the policy says so.
async fn alert(console: &Console, service: &LinkService, click: &Click, judgement: &LinkJudgement) {
    let config = service.guard.config();
    let mut recalled = String::new();
    if config.recall
        && let (Some(hunt), Some(recaller)) = (&console.hunt, &console.recaller)
    {
        let found = hunt
            .find(&Term::QueueId(click.queue_id.clone()), 0, 1)
            .await;
        match found.ok().and_then(|f| f.into_iter().next()) {
            Some(message) => {
                let reason = format!("a link turned dangerous: {}", click.url);
                match recaller.start(&message, &[], "links:click", &reason).await {
                    Ok(job) => recalled = format!("\r\n召回 / Recall: {}", job.id),
                    Err(e) => recalled = format!("\r\n召回失败 / Recall failed: {e}"),
                }
            }
            None => recalled = "\r\n召回失败 / Recall failed: not in the hunt index".into(),
        }
    }
    if config.notify.is_empty() {
        return;
    }
    let hostname = &console.config.server.hostname;
    let id = ulid::Ulid::new().to_string();
    let body = format!(
        "一封已投递邮件中的链接在点击时被判定为危险。\r\n\
         A link in delivered mail was found dangerous when clicked.\r\n\r\n\
         链接 / Link: {}\r\n收件人 / Recipient: {}\r\n队列 ID / Queue id: {}\r\n\
         依据 / Why: {}{recalled}\r\n",
        click.url,
        if click.rcpt.is_empty() {
            "-"
        } else {
            &click.rcpt
        },
        click.queue_id,
        judgement.reasons.join("; "),
    );
    let message = jianmen_mta::queue::dsn::administrators_alert(
        hostname,
        &id,
        "危险链接被点击 / A delivered link turned dangerous",
        &body,
    );
    let new = NewMessage {
        id: id.clone(),
        mail_from: String::new(),
        rcpts: config.notify.clone(),
        size: 0,
        received_at: now(),
        client_ip: "127.0.0.1".into(),
        helo: hostname.clone(),
        smtputf8: config.notify.iter().any(|a| !a.is_ascii()),
        kind: MessageKind::Dsn,
        held: None,
    };
    if let Err(e) = service.queue.enqueue(new, vec![message]).await {
        tracing::error!(queue_id = %id, error = %e, "cannot queue the link alert");
    }
}
