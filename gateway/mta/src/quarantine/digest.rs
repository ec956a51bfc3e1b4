//! Quarantine digests: one mail per recipient listing what was held for them since the last
//! digest (zh-CN and English, text and HTML), each item with a one-click release link and one
//! link to their own quarantine page — see [`super::links`]. Digests are queued like any mail
//! (null sender, `Auto-Submitted`), so they get the queue's retries and durability.

use std::fmt::Write as _;

use base64::Engine;
use sqlx::Row;

use super::index::Summary;
use super::links::{LinkAction, LinkKey};
use super::{Quarantine, QuarantineError};
use crate::queue::{MessageKind, NewMessage, QueueStore};

/// Most items listed in one digest (the portal link shows the rest).
const MAX_ITEMS: usize = 100;

/// Escapes text for HTML.
pub fn escape_html(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// How digests are made, from the configuration.
#[derive(Debug, Clone)]
pub struct DigestSettings {
    /// The gateway's host name (From, Message-ID).
    pub hostname: String,
    /// The console's address as recipients reach it, e.g. `https://mail-gw.example.com:8443`.
    pub base_url: String,
    /// Days the links stay valid.
    pub link_days: u32,
    /// Verdict classes recipients are told about and may release.
    pub classes: Vec<String>,
    /// Protected domains: only their recipients get digests (never outside addresses).
    pub domains: Vec<String>,
    /// The time zone times are shown in.
    pub zone: chrono_tz::Tz,
}

impl DigestSettings {
    /// The settings of a configuration; `None` without a console to serve the links.
    pub fn from_config(config: &crate::config::Config) -> Option<DigestSettings> {
        Some(DigestSettings {
            hostname: config.server.hostname.clone(),
            base_url: config.console_url()?,
            link_days: config.quarantine.link_days,
            classes: config.quarantine.user_release.clone(),
            domains: config.domains.protected.clone(),
            zone: config.server.zone(),
        })
    }

    /// Whether `rcpt` may be told about (and release) an item of `class`.
    pub fn covers(&self, rcpt: &str, class: &str) -> bool {
        let domain = rcpt.rsplit_once('@').map(|(_, d)| d).unwrap_or_default();
        self.classes.iter().any(|c| c == class)
            && self.domains.iter().any(|d| d.eq_ignore_ascii_case(domain))
    }
}

/// The digest message for `rcpt` listing `items`.
pub fn compose(
    settings: &DigestSettings,
    key: &LinkKey,
    rcpt: &str,
    items: &[Summary],
    now: i64,
) -> Vec<u8> {
    let exp = now + i64::from(settings.link_days) * 86_400;
    let base = settings.base_url.trim_end_matches('/');
    let portal = format!(
        "{base}/u/portal?t={}",
        key.issue(LinkAction::Portal, "", rcpt, exp)
    );
    let mut text = format!(
        "以下 {n} 封发给 {rcpt} 的邮件被安全网关隔离。如确认是正常邮件，可点击“放行”链接投递到您的邮箱。\n\
         {n} message(s) to {rcpt} were held by the mail security gateway. Use a release link to have one delivered.\n\n",
        n = items.len()
    );
    let mut html = format!(
        "<html><body><p>以下 {n} 封发给 {r} 的邮件被安全网关隔离。如确认是正常邮件，可点击“放行”投递到您的邮箱。<br>\
         {n} message(s) to {r} were held by the mail security gateway.</p>\
         <table border=\"1\" cellpadding=\"4\" cellspacing=\"0\"><tr><th>时间 Time</th><th>发件人 From</th>\
         <th>主题 Subject</th><th>类别 Class</th><th></th></tr>",
        n = items.len(),
        r = escape_html(rcpt)
    );
    for item in items.iter().take(MAX_ITEMS) {
        let release = format!(
            "{base}/u/release?t={}",
            key.issue(LinkAction::Release, &item.id, rcpt, exp)
        );
        let (when, from) = (item.received_text(settings.zone), item.shown_from());
        let _ = write!(
            text,
            "- {when}  {from}  {subject}  [{class}]\n  放行 Release: {release}\n",
            subject = item.subject,
            class = item.class
        );
        let _ = write!(
            html,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td><a href=\"{}\">放行 Release</a></td></tr>",
            escape_html(&when),
            escape_html(from),
            escape_html(&item.subject),
            escape_html(&item.class),
            escape_html(&release)
        );
    }
    let _ = write!(
        text,
        "\n查看全部隔离邮件 / All your held mail: {portal}\n链接 {d} 天内有效 / Links are valid for {d} days.\n",
        d = settings.link_days
    );
    let _ = write!(
        html,
        "</table><p><a href=\"{}\">查看全部隔离邮件 / All your held mail</a></p>\
         <p>链接 {d} 天内有效 / Links are valid for {d} days.</p></body></html>",
        escape_html(&portal),
        d = settings.link_days
    );
    let subject = format!(
        "[隔离通知 Quarantine] {} 封邮件被隔离 / {} held",
        items.len(),
        items.len()
    );
    let encoded = base64::engine::general_purpose::STANDARD.encode(subject.as_bytes());
    let id = ulid::Ulid::new();
    let date = chrono::DateTime::from_timestamp(now, 0)
        .unwrap_or_default()
        .to_rfc2822();
    format!(
        "From: Jianmen Quarantine <postmaster@{host}>\r\nTo: <{rcpt}>\r\nSubject: =?UTF-8?B?{encoded}?=\r\n\
         Date: {date}\r\nMessage-ID: <digest.{id}@{host}>\r\nAuto-Submitted: auto-generated\r\n\
         MIME-Version: 1.0\r\nContent-Type: multipart/alternative; boundary=\"=_jm_{id}\"\r\n\r\n\
         --=_jm_{id}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n{text}\r\n\
         --=_jm_{id}\r\nContent-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n{html}\r\n\
         --=_jm_{id}--\r\n",
        host = settings.hostname,
        text = text.replace('\n', "\r\n"),
    )
    .into_bytes()
}

impl Quarantine {
    /// Queues one digest per recipient with copies held since their last digest, then marks
    /// those copies as announced; returns how many digests were queued.
    pub async fn send_digests(
        &self,
        settings: &DigestSettings,
        key: &LinkKey,
        now: i64,
    ) -> Result<usize, QuarantineError> {
        let rows = sqlx::query(
            "SELECT r.rcpt, r.id, q.class FROM quarantine_rcpts r JOIN quarantine q ON q.id = r.id
             WHERE q.status = 'held' AND r.released_at IS NULL AND r.digest_sent IS NULL
             ORDER BY r.rcpt, q.received_at",
        )
        .fetch_all(self.store.reader())
        .await?;
        let mut by_rcpt: std::collections::BTreeMap<String, Vec<String>> = Default::default();
        for row in &rows {
            let rcpt: String = row.try_get("rcpt")?;
            let class: String = row.try_get("class")?;
            if settings.covers(&rcpt, &class) {
                by_rcpt.entry(rcpt).or_default().push(row.try_get("id")?);
            }
        }
        let mut sent = 0;
        for (rcpt, ids) in by_rcpt {
            let mut items = Vec::with_capacity(ids.len());
            for id in &ids {
                items.push(self.get(id).await?.summary);
            }
            let message = compose(settings, key, &rcpt, &items, now);
            let id = ulid::Ulid::new().to_string();
            let spool = self.spool.clone();
            let (file, data) = (id.clone(), message.clone());
            tokio::task::spawn_blocking(move || spool.write(&file, &[&data]))
                .await
                .map_err(|e| std::io::Error::other(e.to_string()))??;
            let queued = NewMessage {
                id: id.clone(),
                mail_from: String::new(),
                rcpts: vec![rcpt.clone()],
                size: message.len() as u64,
                received_at: now,
                client_ip: "127.0.0.1".into(),
                helo: settings.hostname.clone(),
                smtputf8: !rcpt.is_ascii(),
                kind: MessageKind::Mail,
                held: None,
            };
            if let Err(e) = self.store.insert(&[queued]).await {
                let _ = self.spool.remove(&id);
                return Err(e.into());
            }
            for item in &ids {
                sqlx::query(
                    "UPDATE quarantine_rcpts SET digest_sent = ? WHERE id = ? AND rcpt = ?",
                )
                .bind(now)
                .bind(item)
                .bind(&rcpt)
                .execute(self.store.writer())
                .await?;
            }
            sent += 1;
        }
        Ok(sent)
    }
}

/// Sends digests every `hours`, forever. The schedule survives restarts: the next run is due
/// `hours` after the last digest recorded in the database.
pub async fn send_periodically(
    quarantine: Quarantine,
    settings: DigestSettings,
    key: LinkKey,
    hours: u32,
) {
    let period = i64::from(hours) * 3600;
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(300));
    loop {
        tick.tick().await;
        let now = crate::queue::manager::unix_now();
        let last: Result<Option<i64>, sqlx::Error> =
            sqlx::query_scalar("SELECT MAX(digest_sent) FROM quarantine_rcpts")
                .fetch_one(quarantine.store.reader())
                .await;
        match last {
            Ok(Some(last)) if now < last + period => continue,
            Ok(_) => {}
            Err(e) => {
                tracing::error!(error = %e, "cannot read the digest schedule");
                continue;
            }
        }
        match quarantine.send_digests(&settings, &key, now).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(count = n, "quarantine digests queued"),
            Err(e) => tracing::error!(error = %e, "cannot send quarantine digests"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quarantine::Status;

    fn settings() -> DigestSettings {
        DigestSettings {
            hostname: "gw.example.com".into(),
            base_url: "https://gw.example.com:8443/".into(),
            link_days: 7,
            classes: vec!["spam".into()],
            domains: vec!["example.com".into()],
            zone: chrono_tz::Asia::Shanghai,
        }
    }

    #[test]
    fn only_protected_recipients_and_listed_classes_are_covered() {
        let s = settings();
        assert!(s.covers("user@EXAMPLE.com", "spam"));
        assert!(!s.covers("user@example.com", "phish"));
        assert!(!s.covers("user@outside.test", "spam"));
        assert!(!s.covers("no-at-sign", "spam"));
    }

    #[test]
    fn digests_escape_what_senders_control_and_carry_working_links() {
        let dir = tempfile::tempdir().unwrap();
        let key = LinkKey::load_or_create(dir.path()).unwrap();
        let item = Summary {
            id: "01ITEM".into(),
            received_at: 1_700_000_000,
            expires_at: 1_800_000_000,
            mail_from: "x@spam.test".into(),
            header_from: "\"<b>\" <x@spam.test>".into(),
            subject: "<script>alert(1)</script> 发票".into(),
            class: "spam".into(),
            score: 9.0,
            reason: String::new(),
            size: 10,
            status: Status::Held,
            client_ip: "192.0.2.1".into(),
            rcpts: "u@example.com".into(),
        };
        let mail = String::from_utf8(compose(
            &settings(),
            &key,
            "u@example.com",
            &[item],
            1_700_000_100,
        ))
        .unwrap();
        // 2023-11-14 22:13:20 UTC, told in the configured zone.
        assert!(mail.contains("2023-11-15 06:13 (UTC+08:00)"), "{mail}");
        let html = mail.split("text/html").nth(1).unwrap();
        assert!(
            !html.contains("<script>") && html.contains("&lt;script&gt;"),
            "{html}"
        );
        let start = mail
            .find("https://gw.example.com:8443/u/release?t=")
            .unwrap();
        let token = mail[start..]
            .split_whitespace()
            .next()
            .unwrap()
            .split_once("?t=")
            .unwrap()
            .1;
        let claims = key.check(token, 1_700_000_200).unwrap();
        assert_eq!(
            (claims.act, claims.id.as_str(), claims.rcpt.as_str()),
            (LinkAction::Release, "01ITEM", "u@example.com")
        );
        assert!(
            key.check(token, 1_700_000_100 + 7 * 86_400 + 1).is_err(),
            "links expire after link_days"
        );
        assert!(mail.contains("/u/portal?t="));
    }
}
