//! Phishing drills (反钓鱼演练) in the console and the pages their mail leads to. The security
//! administrator of all domains picks a template (or writes one), names a sender, imports the
//! target group as CSV, previews, schedules and pauses a campaign, and reads its results per
//! department with the trend across campaigns; every change is audited. The public side:
//! `/d/<token>` (the click: a landing page with a fake sign-in form), its POST (recorded as
//! submitted — the request body is never read, so nothing typed reaches the gateway — then the
//! training page), `/d/<token>/o.gif` (the open pixel).

use actix_web::http::StatusCode;
use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::json;

use super::accounts::Role;
use super::api::{actor, approver};
use super::selfservice::page;
use super::{ApiError, Console, authorize};
use jianmen_mta::drills::templates::Template;
use jianmen_mta::drills::{DrillError, Drills, NewCampaign, Step};

type Data = web::Data<Console>;
type Reply = Result<HttpResponse, ApiError>;

/// A transparent 1×1 GIF.
const PIXEL: &[u8] = &[
    0x47, 0x49, 0x46, 0x38, 0x39, 0x61, 0x01, 0x00, 0x01, 0x00, 0x80, 0x00, 0x00, 0x00, 0x00, 0x00,
    0xff, 0xff, 0xff, 0x21, 0xf9, 0x04, 0x01, 0x00, 0x00, 0x00, 0x00, 0x2c, 0x00, 0x00, 0x00, 0x00,
    0x01, 0x00, 0x01, 0x00, 0x00, 0x02, 0x02, 0x44, 0x01, 0x00, 0x3b,
];

/// Registers the routes.
pub(super) fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/d/{token}", web::get().to(landing))
        .route("/d/{token}", web::post().to(submitted))
        .route("/d/{token}/o.gif", web::get().to(opened))
        .route("/api/drills", web::get().to(list))
        .route("/api/drills", web::post().to(create))
        .route("/api/drills/templates", web::get().to(templates))
        .route("/api/drills/templates", web::post().to(save_template))
        .route("/api/drills/{id}", web::get().to(results))
        .route("/api/drills/{id}/schedule", web::post().to(schedule))
        .route("/api/drills/{id}/pause", web::post().to(pause))
        .route("/api/drills/{id}/export.csv", web::get().to(export));
}

impl From<DrillError> for ApiError {
    fn from(e: DrillError) -> Self {
        match e {
            DrillError::Invalid(field, why) => ApiError::field(field, why),
            DrillError::NotFound => ApiError::new(StatusCode::NOT_FOUND, e.to_string()),
            DrillError::State(_) => ApiError::new(StatusCode::CONFLICT, e.to_string()),
            DrillError::Store(_) => ApiError::internal(e),
        }
    }
}

fn service(console: &Console) -> Result<&std::sync::Arc<Drills>, ApiError> {
    console
        .drills
        .as_ref()
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "drills are not enabled ([drills])"))
}

/// The token's target, or the page refusing it.
fn target(console: &Console, token: &str) -> Option<jianmen_mta::drills::Token> {
    console.drills.as_ref()?.open(token).ok()
}

fn gone() -> HttpResponse {
    page(
        StatusCode::NOT_FOUND,
        "页面不存在 / Not found",
        "<p>此链接无效。/ This link is not valid.</p>",
    )
}

async fn landing(console: Data, token: web::Path<String>) -> HttpResponse {
    let Some(t) = target(&console, &token) else {
        return gone();
    };
    let Some(drills) = &console.drills else {
        return gone();
    };
    if let Err(e) = drills.record(&t, Step::Clicked).await {
        tracing::error!(error = %e, "cannot record a drill click");
    }
    let heading = drills
        .results(&t.campaign)
        .await
        .map(|r| r.campaign.landing)
        .unwrap_or_else(|_| "登录 / Sign in".into());
    // The form posts nothing anyone types: its fields have no names, so a browser sends an
    // empty body; the server would not read one anyway.
    page(
        StatusCode::OK,
        &heading,
        "<form method=\"post\" class=\"card login\" id=\"drill-form\">\
         <label for=\"drill-user\">账号 / Account</label><input id=\"drill-user\" autocomplete=\"off\">\
         <label for=\"drill-pass\">密码 / Password</label><input id=\"drill-pass\" type=\"password\" autocomplete=\"off\">\
         <button type=\"submit\" class=\"primary\" id=\"drill-submit\">登录 / Sign in</button></form>",
    )
}

async fn submitted(console: Data, token: web::Path<String>) -> HttpResponse {
    let Some(t) = target(&console, &token) else {
        return gone();
    };
    let Some(drills) = &console.drills else {
        return gone();
    };
    for step in [Step::Clicked, Step::Submitted] {
        if let Err(e) = drills.record(&t, step).await {
            tracing::error!(error = %e, "cannot record a drill submission");
        }
    }
    page(
        StatusCode::OK,
        "这是一次钓鱼演练 / This was a phishing drill",
        "<p class=\"notice\" id=\"drill-training\">您刚才打开的是单位组织的钓鱼邮件演练，您输入的内容没有被发送或保存。</p>\
         <p>识别钓鱼邮件：<br>1. 核对发件人地址，而不只是显示名；<br>2. 警惕催促、威胁停用账号、薪资和发票等话题；<br>\
         3. 将鼠标悬停在链接上，查看真实网址；<br>4. 不在邮件链接打开的页面中输入账号密码；<br>\
         5. 可疑邮件请转发至信息安全部门的举报邮箱。</p>\
         <p>You opened a phishing drill run by your organisation; nothing you typed was sent or kept. \
         Check the sender's address, beware of urgency, look at where links really lead, never sign in \
         from a mail's link, and forward suspicious mail to the report address.</p>",
    )
}

async fn opened(console: Data, token: web::Path<String>) -> HttpResponse {
    if let (Some(t), Some(drills)) = (target(&console, &token), &console.drills)
        && let Err(e) = drills.record(&t, Step::Opened).await
    {
        tracing::error!(error = %e, "cannot record a drill open");
    }
    HttpResponse::Ok()
        .content_type("image/gif")
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .body(PIXEL)
}

async fn list(req: HttpRequest, console: Data) -> Reply {
    let s = authorize(&req, &console, &[Role::Security]).await?;
    approver(&s)?;
    let all = service(&console)?
        .campaigns()
        .await
        .map_err(ApiError::internal)?;
    let drills: Vec<_> = all
        .into_iter()
        .map(|(campaign, tally)| json!({ "campaign": campaign, "tally": tally }))
        .collect();
    Ok(HttpResponse::Ok().json(json!({ "drills": drills })))
}

async fn create(req: HttpRequest, console: Data, body: web::Json<NewCampaign>) -> Reply {
    let s = authorize(&req, &console, &[Role::Security]).await?;
    approver(&s)?;
    let who = actor(&s);
    let c = service(&console)?.create(body.into_inner(), &who).await?;
    console
        .record(
            &who,
            "drill.create",
            &format!("drill {} \"{}\" from {}", c.id, c.name, c.from_address),
        )
        .await;
    Ok(HttpResponse::Created().json(json!({ "campaign": c })))
}

async fn templates(req: HttpRequest, console: Data) -> Reply {
    let s = authorize(&req, &console, &[Role::Security]).await?;
    approver(&s)?;
    let all = service(&console)?
        .templates()
        .await
        .map_err(ApiError::internal)?;
    Ok(HttpResponse::Ok().json(json!({ "templates": all })))
}

async fn save_template(req: HttpRequest, console: Data, body: web::Json<Template>) -> Reply {
    let s = authorize(&req, &console, &[Role::Security]).await?;
    approver(&s)?;
    let who = actor(&s);
    let id = service(&console)?.save_template(body.into_inner()).await?;
    console
        .record(&who, "drill.template", &format!("template {id} saved"))
        .await;
    Ok(HttpResponse::Ok().json(json!({ "id": id })))
}

async fn results(req: HttpRequest, console: Data, id: web::Path<String>) -> Reply {
    let s = authorize(&req, &console, &[Role::Security]).await?;
    approver(&s)?;
    let r = service(&console)?.results(&id).await?;
    Ok(HttpResponse::Ok().json(r))
}

async fn change(req: HttpRequest, console: Data, id: &str, state: &str) -> Reply {
    let s = authorize(&req, &console, &[Role::Security]).await?;
    approver(&s)?;
    service(&console)?.set_state(id, state).await?;
    console
        .record(&actor(&s), "drill.state", &format!("drill {id} {state}"))
        .await;
    Ok(HttpResponse::Ok().json(json!({ "state": state })))
}

async fn schedule(req: HttpRequest, console: Data, id: web::Path<String>) -> Reply {
    change(req, console, &id, "scheduled").await
}

async fn pause(req: HttpRequest, console: Data, id: web::Path<String>) -> Reply {
    change(req, console, &id, "paused").await
}

async fn export(req: HttpRequest, console: Data, id: web::Path<String>) -> Reply {
    let s = authorize(&req, &console, &[Role::Security]).await?;
    approver(&s)?;
    let r = service(&console)?.results(&id).await?;
    let cell = |s: &str| format!("\"{}\"", s.replace('"', "\"\""));
    let when = |t: Option<i64>| {
        t.and_then(|t| chrono::DateTime::from_timestamp(t, 0))
            .map(|d| d.to_rfc3339())
            .unwrap_or_default()
    };
    let mut csv =
        String::from("\u{feff}email,name,department,sent,opened,clicked,submitted,reported\r\n");
    for p in &r.people {
        // A leading = + - @ would make a spreadsheet run the cell as a formula.
        let safe = |s: &str| {
            if s.starts_with(['=', '+', '-', '@']) {
                format!("'{s}")
            } else {
                s.to_owned()
            }
        };
        csv.push_str(&format!(
            "{},{},{},{},{},{},{},{}\r\n",
            cell(&safe(&p.email)),
            cell(&safe(&p.name)),
            cell(&safe(&p.department)),
            when(p.sent_at),
            when(p.opened_at),
            when(p.clicked_at),
            when(p.submitted_at),
            when(p.reported_at)
        ));
    }
    Ok(HttpResponse::Ok()
        .content_type("text/csv; charset=utf-8")
        .insert_header((
            header::CONTENT_DISPOSITION,
            format!("attachment; filename=\"drill-{}.csv\"", r.campaign.id),
        ))
        .body(csv))
}
