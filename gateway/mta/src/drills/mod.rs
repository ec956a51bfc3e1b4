//! Phishing drills (反钓鱼演练): campaigns that mail a lure ([`templates`]) from a chosen sender
//! to a target group ([`targets`], imported as CSV) at a set rate, each copy with tokens of its
//! own, and measure what people do — open it (a pixel), click it, submit the landing page's
//! form (that a form was submitted is recorded, never anything typed), report it (forward it to
//! the report address). Drill mail goes straight into the queue: the gateway's own scanner never
//! sees it, and the organisation's mail server gets it like any other inbound message.
//! Results come per campaign and department, with the time to the first click, and across
//! campaigns as a trend.

pub mod config;
pub mod store;
pub mod targets;
pub mod templates;

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::db::StoreError;
use crate::quarantine::links::{LinkError, LinkKey};
use crate::queue::manager::unix_now;
use crate::queue::{MessageKind, NewMessage, Queue, SqliteStore};
pub use config::DrillsConfig;
pub use store::{Campaign, Progress, SCHEMA, Step};
use templates::{Fill, Template};

/// The purpose drill tokens are sealed for.
const PURPOSE: &str = "drill";
/// Longest token opened.
pub const MAX_TOKEN: usize = 512;
/// The header drill mail carries: its campaign and recipient, sealed.
pub const HEADER: &str = "X-Jianmen-Drill";
/// How often the sender looks for work.
const TICK: Duration = Duration::from_secs(5);

/// Why drill work did not go through.
#[derive(Debug, thiserror::Error)]
pub enum DrillError {
    /// Something given is not acceptable (field, reason).
    #[error("{1}")]
    Invalid(&'static str, String),
    /// No such campaign or template.
    #[error("no such drill")]
    NotFound,
    /// The campaign cannot do that in its state.
    #[error("the drill is {0}")]
    State(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What a drill token carries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Token {
    /// The campaign.
    #[serde(rename = "c")]
    pub campaign: String,
    /// The recipient.
    #[serde(rename = "r")]
    pub email: String,
}

/// A new campaign, as the console asks for it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewCampaign {
    /// Its name.
    pub name: String,
    /// The template (`builtin:…` or a custom one's id).
    pub template_id: String,
    /// The sender's display name ("" for the template's).
    #[serde(default)]
    pub from_name: String,
    /// The sender's address.
    pub from_address: String,
    /// The target group, as CSV.
    pub targets_csv: String,
    /// When sending starts (Unix time; 0: now).
    #[serde(default)]
    pub start_at: i64,
    /// Messages per minute.
    pub rate_per_minute: u32,
}

/// Counts for a group of targets.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Tally {
    /// Targets.
    pub targets: u64,
    /// Sent.
    pub sent: u64,
    /// Opened.
    pub opened: u64,
    /// Clicked.
    pub clicked: u64,
    /// Submitted the form.
    pub submitted: u64,
    /// Reported.
    pub reported: u64,
    /// Median seconds from sending to the first click (clickers only).
    pub median_click_secs: Option<i64>,
}

impl Tally {
    fn of<'a>(people: impl Iterator<Item = &'a Progress>) -> Tally {
        let mut t = Tally::default();
        let mut delays = Vec::new();
        for p in people {
            t.targets += 1;
            t.sent += u64::from(p.sent_at.is_some());
            t.opened += u64::from(p.opened_at.is_some() || p.clicked_at.is_some());
            t.clicked += u64::from(p.clicked_at.is_some());
            t.submitted += u64::from(p.submitted_at.is_some());
            t.reported += u64::from(p.reported_at.is_some());
            if let (Some(s), Some(c)) = (p.sent_at, p.clicked_at) {
                delays.push((c - s).max(0));
            }
        }
        delays.sort_unstable();
        t.median_click_secs = (!delays.is_empty()).then(|| delays[delays.len() / 2]);
        t
    }
}

/// A campaign's results.
#[derive(Debug, Clone, Serialize)]
pub struct Results {
    /// The campaign.
    pub campaign: Campaign,
    /// All of it.
    pub total: Tally,
    /// Per department.
    pub departments: Vec<(String, Tally)>,
    /// Each person.
    pub people: Vec<Progress>,
}

/// The drill service.
pub struct Drills {
    config: DrillsConfig,
    store: Arc<SqliteStore>,
    key: LinkKey,
    queue: Arc<Queue>,
    hostname: String,
    /// The zone a lure's `{date}` is told in.
    zone: chrono_tz::Tz,
}

impl Drills {
    /// The service, sending as `hostname` with dates in `zone`; `start` sends.
    pub fn new(
        config: DrillsConfig,
        store: Arc<SqliteStore>,
        key: LinkKey,
        queue: Arc<Queue>,
        hostname: String,
        zone: chrono_tz::Tz,
    ) -> Arc<Drills> {
        Arc::new(Drills {
            config,
            store,
            key,
            queue,
            hostname,
            zone,
        })
    }

    /// The section it was made from.
    pub fn config(&self) -> &DrillsConfig {
        &self.config
    }

    /// Sends the scheduled campaigns' mail, each at its rate, from now on.
    pub fn start(self: &Arc<Self>) {
        let me = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(TICK);
            loop {
                tick.tick().await;
                if let Err(e) = me.send_due().await {
                    tracing::error!(error = %e, "drill sending failed");
                }
            }
        });
    }

    /// The built-in and the custom templates.
    pub async fn templates(&self) -> Result<Vec<Template>, StoreError> {
        let mut all = templates::builtin();
        all.extend(store::templates(&self.store).await?);
        Ok(all)
    }

    /// Saves a custom template (a new one when its id is empty); returns its id.
    pub async fn save_template(&self, mut t: Template) -> Result<String, DrillError> {
        if t.id.starts_with("builtin:") {
            return Err(DrillError::Invalid(
                "id",
                "built-in templates cannot be changed".into(),
            ));
        }
        check_text("title", &t.title, 200)?;
        check_text("from_name", &t.from_name, 200)?;
        check_text("subject", &t.subject, 500)?;
        check_text("landing", &t.landing, 200)?;
        if t.html.len() > 256 * 1024 || !t.html.contains("{{link}}") {
            return Err(DrillError::Invalid(
                "html",
                "at most 256 KiB, and it must use {{link}}".into(),
            ));
        }
        if t.id.is_empty() {
            t.id = format!("custom:{}", ulid::Ulid::new());
        }
        store::save_template(&self.store, &t, unix_now()).await?;
        Ok(t.id)
    }

    /// Makes a campaign (a draft until scheduled).
    pub async fn create(&self, new: NewCampaign, actor: &str) -> Result<Campaign, DrillError> {
        check_text("name", &new.name, 200)?;
        let template = self
            .templates()
            .await?
            .into_iter()
            .find(|t| t.id == new.template_id)
            .ok_or(DrillError::Invalid(
                "template_id",
                "no such template".into(),
            ))?;
        let from_address = new.from_address.trim().to_lowercase();
        if !from_address
            .split_once('@')
            .is_some_and(|(l, d)| !l.is_empty() && d.contains('.'))
            || from_address.len() > 254
            || from_address
                .contains(|c: char| c.is_whitespace() || c.is_control() || c == '<' || c == '>')
        {
            return Err(DrillError::Invalid(
                "from_address",
                "an e-mail address".into(),
            ));
        }
        let from_name = if new.from_name.trim().is_empty() {
            template.from_name.clone()
        } else {
            check_text("from_name", &new.from_name, 200)?;
            new.from_name.trim().to_owned()
        };
        if !(1..=self.config.max_rate_per_minute).contains(&new.rate_per_minute) {
            return Err(DrillError::Invalid(
                "rate_per_minute",
                format!("1 to {}", self.config.max_rate_per_minute),
            ));
        }
        let people =
            targets::parse(&new.targets_csv).map_err(|e| DrillError::Invalid("targets_csv", e))?;
        let now = unix_now();
        let campaign = Campaign {
            id: ulid::Ulid::new().to_string(),
            name: new.name.trim().to_owned(),
            template_id: template.id,
            from_name,
            from_address,
            subject: template.subject,
            html: template.html,
            landing: template.landing,
            created_at: now,
            actor: actor.to_owned(),
            start_at: if new.start_at > 0 { new.start_at } else { now },
            rate_per_minute: new.rate_per_minute,
            state: "draft".into(),
        };
        store::create(&self.store, &campaign, &people).await?;
        Ok(campaign)
    }

    /// Moves a campaign to `state` (`scheduled` from draft or paused; `paused` from
    /// scheduled).
    pub async fn set_state(&self, id: &str, state: &str) -> Result<(), DrillError> {
        let c = store::get(&self.store, id)
            .await?
            .ok_or(DrillError::NotFound)?;
        let allowed = match state {
            "scheduled" => c.state == "draft" || c.state == "paused",
            "paused" => c.state == "scheduled",
            _ => false,
        };
        if !allowed {
            return Err(DrillError::State(c.state));
        }
        store::set_state(&self.store, id, state).await?;
        Ok(())
    }

    /// Every campaign.
    pub async fn campaigns(&self) -> Result<Vec<(Campaign, Tally)>, StoreError> {
        let mut out = Vec::new();
        for c in store::campaigns(&self.store).await? {
            let people = store::progress(&self.store, &c.id).await?;
            out.push((c, Tally::of(people.iter())));
        }
        Ok(out)
    }

    /// One campaign's results.
    pub async fn results(&self, id: &str) -> Result<Results, DrillError> {
        let campaign = store::get(&self.store, id)
            .await?
            .ok_or(DrillError::NotFound)?;
        let people = store::progress(&self.store, id).await?;
        let mut departments: Vec<(String, Tally)> = Vec::new();
        let mut names: Vec<&str> = people.iter().map(|p| p.department.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        for d in names {
            departments.push((
                d.to_owned(),
                Tally::of(people.iter().filter(|p| p.department == d)),
            ));
        }
        Ok(Results {
            campaign,
            total: Tally::of(people.iter()),
            departments,
            people,
        })
    }

    /// The token of `email`'s copy of `campaign`.
    pub fn token(&self, campaign: &str, email: &str) -> String {
        let t = Token {
            campaign: campaign.to_owned(),
            email: email.to_owned(),
        };
        self.key
            .seal(PURPOSE, &serde_json::to_vec(&t).unwrap_or_default())
    }

    /// What a genuine token carries.
    pub fn open(&self, token: &str) -> Result<Token, LinkError> {
        let payload = self.key.unseal(PURPOSE, token, MAX_TOKEN)?;
        serde_json::from_slice(&payload).map_err(|_| LinkError::Invalid)
    }

    /// Records `step` for the token's target (the first time); says whether it was new.
    pub async fn record(&self, token: &Token, step: Step) -> Result<bool, StoreError> {
        store::mark(
            &self.store,
            &token.campaign,
            &token.email,
            step,
            unix_now(),
            None,
        )
        .await
    }

    /// Reads a message sent to the report address: each drill it carries (our header or our
    /// links, in a forwarded copy or quoted) counts as reported by its recipient.
    pub async fn reported(&self, message: &[u8]) -> Result<u64, StoreError> {
        let text = String::from_utf8_lossy(&message[..message.len().min(4 * 1024 * 1024)]);
        let mut found = 0;
        let mut seen = std::collections::HashSet::new();
        let base = format!("{}/d/", self.config.base_url.trim_end_matches('/'));
        let header = format!("{HEADER}:");
        let mut candidates: Vec<&str> = Vec::new();
        for (at, _) in text.match_indices(&base).take(100) {
            candidates.push(&text[at + base.len()..]);
        }
        for (at, _) in text.match_indices(&header).take(100) {
            candidates.push(text[at + header.len()..].trim_start());
        }
        for c in candidates {
            let token: String = c
                .chars()
                .take_while(|ch| {
                    ch.is_ascii_alphanumeric() || *ch == '-' || *ch == '_' || *ch == '.'
                })
                .take(MAX_TOKEN)
                .collect();
            if let Ok(t) = self.open(&token)
                && seen.insert((t.campaign.clone(), t.email.clone()))
                && self.record(&t, Step::Reported).await?
            {
                found += 1;
            }
        }
        Ok(found)
    }

    /// Sends what the scheduled campaigns owe now, each at most its rate per tick.
    async fn send_due(&self) -> Result<(), StoreError> {
        let now = unix_now();
        for c in store::campaigns(&self.store).await? {
            if c.state != "scheduled" || c.start_at > now {
                continue;
            }
            let per_tick = (u64::from(c.rate_per_minute) * TICK.as_secs())
                .div_ceil(60)
                .max(1) as u32;
            let batch = store::unsent(&self.store, &c.id, per_tick).await?;
            if batch.is_empty() {
                store::set_state(&self.store, &c.id, "done").await?;
                tracing::info!(drill = %c.id, "drill sent to everyone");
                continue;
            }
            for person in batch {
                let id = ulid::Ulid::new().to_string();
                let body = self.message(&c, &person, &id, now);
                let new = NewMessage {
                    id: id.clone(),
                    mail_from: c.from_address.clone(),
                    rcpts: vec![person.email.clone()],
                    size: 0,
                    received_at: now,
                    client_ip: "127.0.0.1".into(),
                    helo: self.hostname.clone(),
                    smtputf8: !person.email.is_ascii(),
                    kind: MessageKind::Mail,
                    held: None,
                };
                match self.queue.enqueue(new, vec![body]).await {
                    Ok(()) => {
                        store::mark(
                            &self.store,
                            &c.id,
                            &person.email,
                            Step::Sent,
                            now,
                            Some(&id),
                        )
                        .await?;
                    }
                    Err(e) => {
                        tracing::warn!(drill = %c.id, error = %e, "cannot queue drill mail; trying again later");
                        return Ok(());
                    }
                }
            }
        }
        Ok(())
    }

    /// One person's copy: the lure with their link and open pixel, marked as a drill.
    pub fn message(&self, c: &Campaign, person: &targets::Target, id: &str, now: i64) -> Vec<u8> {
        use base64::Engine;
        let token = self.token(&c.id, &person.email);
        let base = self.config.base_url.trim_end_matches('/');
        let date = chrono::DateTime::from_timestamp(now, 0)
            .map(|d| d.with_timezone(&self.zone).format("%Y-%m-%d").to_string())
            .unwrap_or_default();
        let link = format!("{base}/d/{token}");
        let fill = Fill {
            name: &person.name,
            email: &person.email,
            department: &person.department,
            link: &link,
            date: &date,
        };
        let subject = templates::fill(&c.subject, &fill, false);
        let html = format!(
            "<!DOCTYPE html><html><body>{}<img src=\"{base}/d/{token}/o.gif\" width=\"1\" height=\"1\" alt=\"\"></body></html>",
            templates::fill(&c.html, &fill, true)
        );
        let b64 = base64::engine::general_purpose::STANDARD;
        let encoded_subject = b64.encode(crate::queue::dsn::one_line(&subject));
        let encoded_name = b64.encode(crate::queue::dsn::one_line(&c.from_name));
        let mut body = String::new();
        for chunk in b64.encode(html.as_bytes()).as_bytes().chunks(76) {
            body.push_str(&String::from_utf8_lossy(chunk));
            body.push_str("\r\n");
        }
        format!(
            "From: =?UTF-8?B?{encoded_name}?= <{from}>\r\nTo: <{to}>\r\n\
             Subject: =?UTF-8?B?{encoded_subject}?=\r\nDate: {date}\r\n\
             Message-ID: <{id}@{host}>\r\n{HEADER}: {token}\r\nMIME-Version: 1.0\r\n\
             Content-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n{body}",
            from = c.from_address,
            to = person.email,
            date = chrono::DateTime::from_timestamp(now, 0)
                .map(|d| d.to_rfc2822())
                .unwrap_or_default(),
            host = self.hostname,
        )
        .into_bytes()
    }
}

fn check_text(field: &'static str, value: &str, max: usize) -> Result<(), DrillError> {
    if value.trim().is_empty() || value.chars().count() > max || value.chars().any(char::is_control)
    {
        return Err(DrillError::Invalid(
            field,
            format!("1 to {max} characters, no controls"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
