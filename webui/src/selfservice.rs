//! Recipient self-service, reached from quarantine digests without an account: a signed link
//! (see [`jianmen_mta::quarantine::links`]) shows one held message and releases the recipient's own
//! copy, or lists all their held mail. Opening a link never changes anything — releasing is a
//! POST from the page, so mail scanners that fetch links cannot release mail. Only the classes
//! in `quarantine.user_release` and recipients of protected domains are served; every release
//! is audited as `link:<recipient>`. The list page also keeps the recipient's own allow and
//! block lists ([`jianmen_mta::ownlists`]): senders and domains only (addresses of servers are
//! an administrator's business), changed by POST, audited the same way.
//!
//! With a `[directory]` configured, recipients also sign in at `/u/login` with their directory
//! name and password (LDAP/AD bind, see [`jianmen_mta::directory`]) and get the same list page
//! for an hour, for each of their addresses in a protected domain. Failed sign-ins count
//! against the source address together with the console's.

use actix_web::http::StatusCode;
use actix_web::http::header;
use actix_web::{HttpResponse, web};
use serde::Deserialize;

use super::{Console, now};
use jianmen_mta::ownlists::{Entry, ListKind, OwnListBook, OwnListError};
use jianmen_mta::quarantine::digest::{DigestSettings, escape_html};
use jianmen_mta::quarantine::links::{Claims, LinkAction, LinkError};
use jianmen_mta::quarantine::{Item, QuarantineError, Query, Status, Summary};

type Data = web::Data<Console>;

/// Mounts `/u/…`.
pub(super) fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/u")
            .app_data(web::FormConfig::default().limit(4096))
            .route("/release", web::get().to(release_page))
            .route("/release", web::post().to(release))
            .route("/portal", web::get().to(portal))
            .route("/lists", web::post().to(change_lists))
            .route("/login", web::get().to(login_page))
            .route("/login", web::post().to(login)),
    );
}

/// The link, as `?t=` or a form field.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Link {
    t: String,
}

/// A release, and whether to trust the sender from now on.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReleaseForm {
    t: String,
    #[serde(default)]
    allow: Option<String>,
}

/// A recipient's sign-in.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SignIn {
    user: String,
    password: String,
}

/// How long the list page a sign-in leads to stays usable.
const SIGNED_IN_SECS: i64 = 3600;

/// A change to the recipient's own lists, from the list page's forms.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListChange {
    t: String,
    op: String,
    list: ListKind,
    entry: String,
}

/// A whole page (zh-CN with English beside it; no script).
pub(super) fn page(status: StatusCode, title: &str, body: &str) -> HttpResponse {
    HttpResponse::build(status)
        .content_type("text/html; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .body(format!(
            "<!DOCTYPE html><html lang=\"zh-CN\"><head><meta charset=\"utf-8\">\
             <meta name=\"viewport\" content=\"width=device-width\"><title>{t}</title>\
             <link rel=\"stylesheet\" href=\"/app.css\"></head><body>\
             <header><span class=\"brand\">剑门 Jianmen</span></header>\
             <main><h1>{t}</h1>{body}</main></body></html>",
            t = escape_html(title)
        ))
}

/// Why a self-service request was refused: shown as a page with this status.
#[derive(Debug)]
struct Refusal(StatusCode, String);

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.1)
    }
}

impl actix_web::ResponseError for Refusal {
    fn status_code(&self) -> StatusCode {
        self.0
    }

    fn error_response(&self) -> HttpResponse {
        page(
            self.0,
            "无法完成 / Cannot do this",
            &format!("<p class=\"error\">{}</p>", escape_html(&self.1)),
        )
    }
}

fn refused(status: StatusCode, why: &str) -> Refusal {
    Refusal(status, why.to_owned())
}

type Reply = Result<HttpResponse, Refusal>;

/// The claims of a link for `act`, or the page saying why it is refused.
fn claims(console: &Console, link: &str, act: LinkAction) -> Result<Claims, Refusal> {
    match console.links.check(link, now()) {
        Ok(c) if c.act == act => Ok(c),
        Ok(_) | Err(LinkError::Invalid) => Err(refused(
            StatusCode::BAD_REQUEST,
            &LinkError::Invalid.to_string(),
        )),
        Err(e @ LinkError::Expired) => Err(refused(StatusCode::GONE, &e.to_string())),
    }
}

fn settings(console: &Console) -> Result<DigestSettings, Refusal> {
    DigestSettings::from_config(&console.config)
        .ok_or_else(|| refused(StatusCode::NOT_FOUND, "self-service is off"))
}

/// The item a release link names, if the recipient may still release it.
async fn releasable(console: &Console, c: &Claims) -> Result<Item, Refusal> {
    let settings = settings(console)?;
    let item = match console.quarantine.get(&c.id).await {
        Ok(item) => item,
        Err(QuarantineError::NotFound(_)) => {
            return Err(refused(
                StatusCode::NOT_FOUND,
                "该邮件不存在 / no such message",
            ));
        }
        Err(e) => return Err(internal(e)),
    };
    let mine = item
        .rcpts
        .iter()
        .find(|r| r.rcpt.eq_ignore_ascii_case(&c.rcpt));
    let Some(mine) = mine.filter(|_| settings.covers(&c.rcpt, &item.summary.class)) else {
        return Err(refused(
            StatusCode::FORBIDDEN,
            "请联系管理员放行此邮件 / only an administrator can release this message",
        ));
    };
    if mine.released_at.is_some() || item.summary.status != Status::Held {
        return Err(refused(
            StatusCode::CONFLICT,
            &format!(
                "该邮件已放行或已删除 / this message was already released or is no longer kept ({})",
                if mine.released_at.is_some() {
                    "released"
                } else {
                    item.summary.status.as_str()
                }
            ),
        ));
    }
    Ok(item)
}

fn internal(e: impl std::fmt::Display) -> Refusal {
    tracing::error!(error = %e, "self-service request failed");
    refused(
        StatusCode::INTERNAL_SERVER_ERROR,
        "内部错误 / internal error",
    )
}

fn describe(item: &Summary, zone: chrono_tz::Tz) -> String {
    format!(
        "<table><tr><th>时间 Time</th><td>{}</td></tr><tr><th>发件人 From</th><td>{}</td></tr>\
         <tr><th>主题 Subject</th><td>{}</td></tr><tr><th>类别 Class</th><td>{}</td></tr></table>",
        escape_html(&item.received_text(zone)),
        escape_html(item.shown_from()),
        escape_html(&item.subject),
        escape_html(&item.class)
    )
}

/// The release button, and "release and trust" where `sender` can go on the allow list and
/// `lists` are applied.
fn release_form(link: &str, sender: &str, lists: bool) -> String {
    let allow = if lists && trustable(sender) {
        format!(
            " <button class=\"plain\" type=\"submit\" name=\"allow\" value=\"1\">\
             放行并信任 {s} / Release and always trust {s}</button>",
            s = escape_html(sender)
        )
    } else {
        String::new()
    };
    format!(
        "<form method=\"post\" action=\"/u/release\"><input type=\"hidden\" name=\"t\" value=\"{}\">\
         <button class=\"primary\" type=\"submit\">放行到我的邮箱 / Release to my mailbox</button>{allow}</form>",
        escape_html(link)
    )
}

/// Whether `sender` can go on a recipient's allow list: an address (a bounce's empty sender
/// cannot).
fn trustable(sender: &str) -> bool {
    sender.contains('@') && !sender.starts_with('@') && sender.len() <= 254
}

/// GET: shows the message and a release button; changes nothing.
async fn release_page(console: Data, link: web::Query<Link>) -> Reply {
    let c = claims(&console, &link.t, LinkAction::Release)?;
    let item = releasable(&console, &c).await?;
    Ok(page(
        StatusCode::OK,
        "放行隔离邮件 / Release held mail",
        &format!(
            "<div class=\"card\"><p>发给 {} 的这封邮件被隔离。确认它是正常邮件后再放行。<br>\
             This message to you was held. Release it only if you trust it.</p>{}{}</div>",
            escape_html(&c.rcpt),
            describe(&item.summary, console.config.server.zone()),
            release_form(
                &link.t,
                &item.summary.mail_from,
                own_lists(&console).is_ok()
            )
        ),
    ))
}

/// POST: releases the recipient's own copy (once: a second use finds it released), and with
/// `allow` puts its sender on the recipient's own allow list.
async fn release(console: Data, link: web::Form<ReleaseForm>) -> Reply {
    let c = claims(&console, &link.t, LinkAction::Release)?;
    let item = releasable(&console, &c).await?;
    let actor = format!("link:{}", c.rcpt);
    let sender = item.summary.mail_from.trim().to_lowercase();
    let trust = link.allow.is_some() && trustable(&sender);
    // Lists not applied here: the release goes ahead, without the trust.
    let book = trust.then(|| own_lists(&console).ok()).flatten();
    let released = console
        .quarantine
        .release(
            &item.summary.id,
            Some(std::slice::from_ref(&c.rcpt)),
            &actor,
            now(),
        )
        .await
        .map_err(|e| match e {
            QuarantineError::Conflict { .. } => refused(StatusCode::CONFLICT, &e.to_string()),
            e => internal(e),
        })?;
    console
        .tracker
        .record(released.event(&item.summary, &actor));
    console
        .record(
            &actor,
            "quarantine.release",
            &format!(
                "{} to {} as {} (self-service link)",
                item.summary.id, c.rcpt, released.queue_id
            ),
        )
        .await;
    let mut trusted = String::new();
    if let Some(book) = book {
        match book
            .add(
                &c.rcpt,
                ListKind::Allow,
                std::slice::from_ref(&sender),
                &actor,
            )
            .await
        {
            Ok(_) => {
                console
                    .record(
                        &actor,
                        "ownlist.add",
                        &format!("{} allow: {sender} (self-service link)", c.rcpt),
                    )
                    .await;
                trusted = format!(
                    "<p class=\"notice\">已将 {s} 加入您的个人白名单。<br>{s} is on your allow list now.</p>",
                    s = escape_html(&sender)
                );
            }
            // Released all the same; only the trust is missing, and said so.
            Err(e) => {
                trusted = format!(
                    "<p class=\"error\">未能加入个人白名单 / not added to your allow list: {}</p>",
                    escape_html(&e.to_string())
                );
            }
        }
    }
    Ok(page(
        StatusCode::OK,
        "已放行 / Released",
        &format!(
            "<div class=\"card\"><p class=\"notice\">邮件正在投递到您的邮箱。<br>The message is on its way to your mailbox.</p>{trusted}{}</div>",
            describe(&item.summary, console.config.server.zone())
        ),
    ))
}

/// The recipients' lists, where they are applied to mail (threat scanning is on).
fn own_lists(console: &Console) -> Result<&OwnListBook, Refusal> {
    console
        .policy
        .as_deref()
        .map(|p| p.own_lists())
        .filter(|b| b.applied())
        .ok_or_else(|| {
            refused(
                StatusCode::NOT_FOUND,
                "个人名单未启用 / personal lists are off",
            )
        })
}

/// The recipient's lists, each entry with a remove button, and a form to add one.
fn lists_card(link: &str, entries: &[Entry]) -> String {
    let link = escape_html(link);
    let mut rows = String::new();
    for e in entries {
        let (zh, en) = match e.list {
            ListKind::Allow => ("白名单", "allow"),
            ListKind::Block => ("黑名单", "block"),
        };
        rows.push_str(&format!(
            "<tr><td>{zh} / {en}</td><td>{entry}</td><td><form method=\"post\" action=\"/u/lists\">\
             <input type=\"hidden\" name=\"t\" value=\"{link}\"><input type=\"hidden\" name=\"op\" value=\"remove\">\
             <input type=\"hidden\" name=\"list\" value=\"{en}\"><input type=\"hidden\" name=\"entry\" value=\"{entry}\">\
             <button class=\"plain\" type=\"submit\">移除 / Remove</button></form></td></tr>",
            entry = escape_html(&e.entry)
        ));
    }
    let table = if rows.is_empty() {
        "<p class=\"muted\">尚无条目。/ No entries yet.</p>".to_owned()
    } else {
        format!(
            "<table id=\"own-lists\"><tr><th>名单 List</th><th>发件人或域 Sender or domain</th><th></th></tr>{rows}</table>"
        )
    };
    format!(
        "<div class=\"card\"><h2>我的黑白名单 / My allow and block lists</h2>\
         <p class=\"muted\">白名单中发件人的邮件大多不再被当作垃圾邮件拦截（病毒、明显的钓鱼和得分很高的垃圾邮件仍会拦截，冒充发件人的邮件不受白名单保护）；黑名单中的发件人的邮件不再送达您。\
         <br>Mail from senders you allow is mostly no longer held as spam (viruses, clear phishing and very high-scoring spam still are, and mail that fails sender authentication is not spared); mail from senders you block no longer reaches you.</p>\
         {table}<form method=\"post\" action=\"/u/lists\" class=\"filters\"><input type=\"hidden\" name=\"t\" value=\"{link}\">\
         <input type=\"hidden\" name=\"op\" value=\"add\">\
         <label>名单 List <select name=\"list\"><option value=\"allow\">白名单 / allow</option><option value=\"block\">黑名单 / block</option></select></label>\
         <label>发件人或域 Sender or domain <input name=\"entry\" required maxlength=\"254\" placeholder=\"boss@partner.com / partner.com\"></label>\
         <button class=\"primary\" type=\"submit\">添加 / Add</button></form></div>"
    )
}

/// POST: adds an entry to, or removes one from, the recipient's own list; then shows the
/// list page again (a redirect, so reloading it changes nothing).
async fn change_lists(console: Data, form: web::Form<ListChange>) -> Reply {
    let c = claims(&console, &form.t, LinkAction::Portal)?;
    settings(&console)?;
    let book = own_lists(&console)?;
    let actor = format!("link:{}", c.rcpt);
    let entry = form.entry.trim().to_lowercase();
    let shown = |e: OwnListError| match e {
        OwnListError::Store(s) => internal(s),
        e => refused(StatusCode::BAD_REQUEST, &e.to_string()),
    };
    match form.op.as_str() {
        "add" => {
            // Senders and domains only: an address range is an administrator's decision.
            if entry.contains('/') || entry.parse::<std::net::IpAddr>().is_ok() {
                return Err(refused(
                    StatusCode::BAD_REQUEST,
                    "请填写发件人地址或域名 / a sender address or a domain, please",
                ));
            }
            book.add(&c.rcpt, form.list, std::slice::from_ref(&entry), &actor)
                .await
                .map_err(shown)?;
            console
                .record(
                    &actor,
                    "ownlist.add",
                    &format!(
                        "{} {}: {entry} (self-service link)",
                        c.rcpt,
                        form.list.as_str()
                    ),
                )
                .await;
        }
        "remove" => {
            if book
                .remove(&c.rcpt, form.list, &entry)
                .await
                .map_err(shown)?
            {
                console
                    .record(
                        &actor,
                        "ownlist.remove",
                        &format!(
                            "{} {}: {entry} (self-service link)",
                            c.rcpt,
                            form.list.as_str()
                        ),
                    )
                    .await;
            }
        }
        _ => return Err(refused(StatusCode::BAD_REQUEST, "unknown change")),
    }
    // The link was sealed here, so it is URL-safe; anything else is not sent back.
    if !form
        .t
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"-_.~".contains(&b))
    {
        return Err(refused(
            StatusCode::BAD_REQUEST,
            &LinkError::Invalid.to_string(),
        ));
    }
    Ok(HttpResponse::SeeOther()
        .insert_header((header::LOCATION, format!("/u/portal?t={}", form.t)))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .finish())
}

/// GET: the recipient's held mail (of the classes they may release), each with a release button.
async fn portal(console: Data, link: web::Query<Link>) -> Reply {
    let c = claims(&console, &link.t, LinkAction::Portal)?;
    let settings = settings(&console)?;
    let query = Query {
        owner: Some(c.rcpt.clone()),
        status: Some(Status::Held),
        limit: jianmen_mta::quarantine::index::MAX_PAGE,
        ..Query::default()
    };
    let found = console.quarantine.search(&query).await.map_err(internal)?;
    let mut rows = String::new();
    let mut count = 0;
    for item in found
        .items
        .iter()
        .filter(|i| settings.covers(&c.rcpt, &i.class))
    {
        let full = console.quarantine.get(&item.id).await.map_err(internal)?;
        if full
            .rcpts
            .iter()
            .any(|r| r.rcpt.eq_ignore_ascii_case(&c.rcpt) && r.released_at.is_some())
        {
            continue;
        }
        count += 1;
        let release = console
            .links
            .issue(LinkAction::Release, &item.id, &c.rcpt, c.exp);
        rows.push_str(&format!(
            "<div class=\"card\">{}{}</div>",
            describe(item, console.config.server.zone()),
            release_form(&release, &item.mail_from, own_lists(&console).is_ok())
        ));
    }
    let lists = match own_lists(&console) {
        Ok(book) => lists_card(
            &link.t,
            &book.entries(&c.rcpt).await.unwrap_or_else(|e| {
                tracing::warn!(error = %e, "cannot read a recipient's own lists");
                Vec::new()
            }),
        ),
        Err(_) => String::new(),
    };
    let intro = format!(
        "<p>{} 的隔离邮件：{count} 封。/ Held mail for {}: {count}.</p>",
        escape_html(&c.rcpt),
        escape_html(&c.rcpt)
    );
    Ok(page(
        StatusCode::OK,
        "我的隔离邮件 / My held mail",
        &(intro + &rows + &lists),
    ))
}

fn directory(console: &Console) -> Result<&jianmen_mta::directory::Directory, Refusal> {
    console.directory.as_deref().ok_or_else(|| {
        refused(
            StatusCode::NOT_FOUND,
            "未配置登录，请使用隔离摘要邮件中的链接 / sign-in is not set up here: use the link in your digest mail",
        )
    })
}

const LOGIN_FORM: &str = "<div class=\"card\"><form method=\"post\" action=\"/u/login\" class=\"stacked\">\
    <p>使用您的域账号（与登录电脑、邮箱相同）查看被隔离的邮件和个人黑白名单。<br>\
    Sign in with your directory account (as for your computer and mailbox) to see your held mail and your own lists.</p>\
    <label>用户名或邮件地址 / Name or address <input name=\"user\" autocomplete=\"username\" required maxlength=\"256\"></label>\
    <label>密码 / Password <input type=\"password\" name=\"password\" autocomplete=\"current-password\" required maxlength=\"256\"></label>\
    <button class=\"primary\" type=\"submit\">登录 / Sign in</button></form></div>";

/// GET: the sign-in form.
async fn login_page(console: Data) -> Reply {
    directory(&console)?;
    settings(&console)?;
    Ok(page(StatusCode::OK, "用户登录 / Sign in", LOGIN_FORM))
}

/// POST: checks the name and password with the directory; on success leads to the list page
/// of the person's address (or offers each, for several).
async fn login(req: actix_web::HttpRequest, console: Data, form: web::Form<SignIn>) -> Reply {
    let dir = directory(&console)?;
    settings(&console)?;
    let ip = super::peer_ip(&req).map_or_else(String::new, |ip| ip.to_string());
    let at = now();
    let user = form.user.trim().chars().take(256).collect::<String>();
    if console.accounts.source_blocked(&ip, at) {
        return Err(refused(
            StatusCode::TOO_MANY_REQUESTS,
            "失败次数过多，请稍后再试 / too many failed sign-ins from here: try again later",
        ));
    }
    // Counted as failed until it is known otherwise: a burst of parallel attempts all pass
    // the check above, but each one counts before it waits for the directory.
    console.accounts.source_attempt(&ip, at);
    // The name is the visitor's text: the audit log gets it on one line, bounded.
    let shown: String = user.chars().filter(|c| !c.is_control()).take(64).collect();
    let actor = format!("directory:{shown}");
    let addresses = match dir.sign_in(&user, &form.password).await {
        Ok(a) => {
            console.accounts.source_succeeded(&ip);
            a
        }
        Err(jianmen_mta::directory::DirectoryError::Refused) => {
            console
                .record(&actor, "user.login_fail", &format!("from {ip}"))
                .await;
            return Err(Refusal(
                StatusCode::UNAUTHORIZED,
                "用户名或密码错误 / wrong name or password".into(),
            ));
        }
        Err(e) => {
            // Not the visitor's failure.
            console.accounts.source_succeeded(&ip);
            tracing::error!(error = %e, "recipient sign-in: the directory cannot be asked");
            return Err(refused(
                StatusCode::SERVICE_UNAVAILABLE,
                "目录服务暂时无法访问，请稍后再试 / the directory cannot be reached: try again later",
            ));
        }
    };
    let protected = &console.config.domains.protected;
    let mine: Vec<String> = addresses
        .into_iter()
        .filter(|a| {
            a.rsplit_once('@')
                .is_some_and(|(_, d)| protected.iter().any(|p| p.eq_ignore_ascii_case(d)))
        })
        .collect();
    if mine.is_empty() {
        console
            .record(
                &actor,
                "user.login_fail",
                &format!("from {ip}: no protected address"),
            )
            .await;
        return Err(refused(
            StatusCode::FORBIDDEN,
            "您的账号没有本网关保护的邮件地址 / your account has no address this gateway protects",
        ));
    }
    console
        .record(
            &actor,
            "user.login",
            &format!("from {ip} as {}", mine.join(", ")),
        )
        .await;
    let portal = |address: &str| {
        format!(
            "/u/portal?t={}",
            console
                .links
                .issue(LinkAction::Portal, "", address, at + SIGNED_IN_SECS)
        )
    };
    if let [one] = mine.as_slice() {
        return Ok(HttpResponse::SeeOther()
            .insert_header((header::LOCATION, portal(one)))
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .finish());
    }
    let links: String = mine
        .iter()
        .map(|a| {
            format!(
                "<li><a href=\"{}\">{}</a></li>",
                escape_html(&portal(a)),
                escape_html(a)
            )
        })
        .collect();
    Ok(page(
        StatusCode::OK,
        "选择邮件地址 / Choose an address",
        &format!("<div class=\"card\"><ul id=\"addresses\">{links}</ul></div>"),
    ))
}
