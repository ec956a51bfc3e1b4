//! The `[intel]` section: where threat-intelligence indicators come from and what is done with
//! mail that reached the mailboxes before an indicator named it.

use std::path::PathBuf;

use serde::Deserialize;

/// The `[intel]` section.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IntelConfig {
    /// TAXII 2.1 collections polled for indicators (`[[intel.taxii]]`).
    pub taxii: Vec<TaxiiConfig>,
    /// What a retro-hunt does with delivered mail a new indicator matches.
    pub on_match: OnMatch,
    /// Most indicators kept; a feed past it is refused more until some expire.
    pub max_indicators: usize,
}

impl Default for IntelConfig {
    fn default() -> Self {
        Self {
            taxii: Vec::new(),
            on_match: OnMatch::Recall,
            max_indicators: 100_000,
        }
    }
}

/// What a retro-hunt does with a delivered message an indicator matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum OnMatch {
    /// Recalls it from every mailbox that got it (needs `[[recall.imap]]`).
    Recall,
    /// Lists it for an administrator to recall.
    Propose,
}

/// One TAXII 2.1 collection.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaxiiConfig {
    /// The source's name, as shown and recorded (`intel:<name>` recalls).
    pub name: String,
    /// The collection's URL (`https://…/api-root/collections/<id>/`); its objects are read
    /// from `objects/` below it.
    pub url: String,
    /// HTTP basic authentication user (only over https).
    pub username: Option<String>,
    /// File holding the password (first line).
    pub password_file: Option<PathBuf>,
    /// PEM certificate authorities the server's certificate must chain to (else the system's).
    pub tls_ca: Option<PathBuf>,
    /// Seconds between polls.
    #[serde(default = "default_interval")]
    pub interval_secs: u64,
}

fn default_interval() -> u64 {
    300
}

impl IntelConfig {
    /// Refuses sources without a usable URL, duplicate names and passwords sent in clear.
    pub fn check(&self) -> Result<(), String> {
        let mut names = std::collections::HashSet::new();
        for t in &self.taxii {
            if t.name.is_empty()
                || t.name.len() > 64
                || !t
                    .name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
            {
                return Err(format!(
                    "taxii name `{}`: 1 to 64 letters, digits, - _ .",
                    t.name
                ));
            }
            if !names.insert(&t.name) {
                return Err(format!("taxii name `{}` is used twice", t.name));
            }
            let url = url::Url::parse(&t.url).map_err(|e| format!("taxii {} url: {e}", t.name))?;
            if !["http", "https"].contains(&url.scheme()) || url.host_str().is_none() {
                return Err(format!("taxii {} url: must be http(s)://host/…", t.name));
            }
            if t.username.is_some() != t.password_file.is_some() {
                return Err(format!(
                    "taxii {}: username and password_file go together",
                    t.name
                ));
            }
            if t.username.is_some() && url.scheme() != "https" {
                return Err(format!(
                    "taxii {}: a password is only sent over https",
                    t.name
                ));
            }
            if !(10..=86_400).contains(&t.interval_secs) {
                return Err(format!(
                    "taxii {}: interval_secs must be 10 to 86400",
                    t.name
                ));
            }
        }
        if !(1..=10_000_000).contains(&self.max_indicators) {
            return Err("max_indicators must be 1 to 10000000".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source(url: &str, user: bool) -> TaxiiConfig {
        TaxiiConfig {
            name: "cert".into(),
            url: url.into(),
            username: user.then(|| "feed".into()),
            password_file: user.then(|| "/etc/jianmen/taxii.pass".into()),
            tls_ca: None,
            interval_secs: 300,
        }
    }

    #[test]
    fn sources_need_a_web_url_and_keep_passwords_off_plain_http() {
        let config = |t: TaxiiConfig| IntelConfig {
            taxii: vec![t],
            ..IntelConfig::default()
        };
        assert!(
            config(source("https://ti.test/api/collections/1/", true))
                .check()
                .is_ok()
        );
        assert!(
            config(source("http://127.0.0.1:9/api/collections/1/", false))
                .check()
                .is_ok()
        );
        assert!(
            config(source("http://ti.test/api/collections/1/", true))
                .check()
                .is_err()
        );
        assert!(config(source("ftp://ti.test/", false)).check().is_err());
        assert!(config(source("not a url", false)).check().is_err());
        let twice = IntelConfig {
            taxii: vec![
                source("https://a.test/", false),
                source("https://b.test/", false),
            ],
            ..IntelConfig::default()
        };
        assert!(twice.check().unwrap_err().contains("twice"));
    }
}
