//! The `[links]` section: click-time protection of the web links in inbound mail.

use serde::Deserialize;

/// The `[links]` section.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LinksConfig {
    /// Rewrite links (off by default: rewriting changes the message body).
    pub enabled: bool,
    /// Where the users' clicks reach the gateway's link service: the console's HTTPS address
    /// as the users see it, e.g. `https://mailgw.example.com:8443`.
    pub base_url: String,
    /// Recipient domains whose mail is rewritten (empty: every protected domain).
    pub domains: Vec<String>,
    /// Link domains never rewritten (and every name below them); the protected domains never
    /// are.
    pub skip: Vec<String>,
    /// Days a rewritten link keeps working.
    pub max_age_days: u32,
    /// A link judged dangerous at click time: `warn` (a warning page the user may go past) or
    /// `block` (the warning only).
    pub on_bad: OnBad,
    /// Told when a click finds a link gone bad after delivery.
    pub notify: Vec<String>,
    /// Such a message is also recalled from every mailbox (needs `[[recall.imap]]`).
    pub recall: bool,
    /// Up to this many recipients each get their own copy (so a click says who); mail to more
    /// shares one copy whose clicks name no one.
    pub per_recipient_max: usize,
}

impl Default for LinksConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            base_url: String::new(),
            domains: Vec::new(),
            skip: Vec::new(),
            max_age_days: 30,
            on_bad: OnBad::Warn,
            notify: Vec::new(),
            recall: false,
            per_recipient_max: 10,
        }
    }
}

/// What a click on a dangerous link gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum OnBad {
    /// The warning page, with a way on.
    Warn,
    /// The warning page only.
    Block,
}

impl LinksConfig {
    /// Refuses a missing or non-https link service address and out-of-range numbers.
    pub fn check(&self) -> Result<(), String> {
        if !self.enabled {
            return Ok(());
        }
        if self.base_url.is_empty() {
            return Err("base_url: where users reach the console (https://host:port)".into());
        }
        let url = url::Url::parse(&self.base_url).map_err(|e| format!("base_url: {e}"))?;
        if url.scheme() != "https" || url.host_str().is_none() || url.query().is_some() {
            return Err("base_url must be https://host[:port][/path]".into());
        }
        if !(1..=365).contains(&self.max_age_days) {
            return Err("max_age_days must be 1 to 365".into());
        }
        if !(1..=1000).contains(&self.per_recipient_max) {
            return Err("per_recipient_max must be 1 to 1000".into());
        }
        Ok(())
    }
}
