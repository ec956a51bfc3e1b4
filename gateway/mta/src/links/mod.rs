//! Click-time link protection (安全链接): the web links of inbound mail are rewritten
//! ([`rewrite`]) to the gateway's link service, each as a signed token naming the message, the
//! recipient, the original address and an expiry — tamper-proof (HMAC with the gateway's link
//! key) and never an open redirect (only a signed address is ever redirected to). At the click
//! the console's link service opens the token ([`LinkGuard::open`]), judges the address as it
//! stands *now* (block lists, threat intelligence, look-alike checks) and redirects or warns.

pub mod config;
pub mod rewrite;

use serde::{Deserialize, Serialize};

use crate::quarantine::links::{LinkError, LinkKey};
pub use config::{LinksConfig, OnBad};

/// The purpose link tokens are sealed for.
const PURPOSE: &str = "click";
/// Longest token opened.
pub const MAX_TOKEN: usize = 4096;

/// What a rewritten link carries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Click {
    /// The message's queue id.
    #[serde(rename = "q")]
    pub queue_id: String,
    /// The recipient whose copy it is ("" for a copy shared by many).
    #[serde(rename = "r")]
    pub rcpt: String,
    /// The original address.
    #[serde(rename = "u")]
    pub url: String,
    /// Unix time it stops working.
    #[serde(rename = "e")]
    pub exp: i64,
}

/// Rewrites links and opens what it rewrote.
pub struct LinkGuard {
    config: LinksConfig,
    key: LinkKey,
    base: String,
    protected: Vec<String>,
}

impl LinkGuard {
    /// The guard of `config` (checked), signing with `key`; links into the `protected`
    /// domains are never rewritten.
    pub fn new(config: LinksConfig, key: LinkKey, protected: &[String]) -> LinkGuard {
        LinkGuard {
            base: config.base_url.trim_end_matches('/').to_owned(),
            protected: protected.iter().map(|d| d.to_ascii_lowercase()).collect(),
            config,
            key,
        }
    }

    /// The section it was made from.
    pub fn config(&self) -> &LinksConfig {
        &self.config
    }

    /// Whether mail to `rcpt` has its links rewritten.
    pub fn applies_to(&self, rcpt: &str) -> bool {
        let domain = rcpt.rsplit_once('@').map_or("", |(_, d)| d);
        let domains = if self.config.domains.is_empty() {
            &self.protected
        } else {
            &self.config.domains
        };
        domains.iter().any(|d| d.eq_ignore_ascii_case(domain))
    }

    /// Whether a link to `host` is left as it is: protected and skipped domains (and the names
    /// below them), and the link service itself.
    fn skipped(&self, host: &str) -> bool {
        let below = |d: &str| {
            let d = d.trim_start_matches('.').trim_start_matches("*.");
            host.eq_ignore_ascii_case(d)
                || (host.len() > d.len()
                    && host[host.len() - d.len()..].eq_ignore_ascii_case(d)
                    && host.as_bytes()[host.len() - d.len() - 1] == b'.')
        };
        let service = url::Url::parse(&self.base)
            .ok()
            .and_then(|u| u.host_str().map(str::to_owned))
            .unwrap_or_default();
        host.eq_ignore_ascii_case(&service)
            || self.protected.iter().any(|d| below(d))
            || self.config.skip.iter().any(|d| below(d))
    }

    /// The service's address for `url` in `queue_id`'s copy for `rcpt`; None for links left
    /// alone.
    pub fn protect(&self, url: &str, queue_id: &str, rcpt: &str, now: i64) -> Option<String> {
        let (_, host) = jianmen_scan::hunt::web_url(url)?;
        if self.skipped(&host) {
            return None;
        }
        let click = Click {
            queue_id: queue_id.to_owned(),
            rcpt: rcpt.to_ascii_lowercase(),
            url: url.to_owned(),
            exp: now + i64::from(self.config.max_age_days) * 86_400,
        };
        let token = self.key.seal(PURPOSE, &serde_json::to_vec(&click).ok()?);
        Some(format!("{}/l/{token}", self.base))
    }

    /// `message` with its links protected for `rcpt`'s copy `queue_id`; None when it has none
    /// to protect.
    pub fn rewrite(&self, message: &[u8], queue_id: &str, rcpt: &str, now: i64) -> Option<Vec<u8>> {
        rewrite::rewrite(message, &mut |url| self.protect(url, queue_id, rcpt, now))
    }

    /// What a genuine, unexpired token carries.
    pub fn open(&self, token: &str, now: i64) -> Result<Click, LinkError> {
        let payload = self.key.unseal(PURPOSE, token, MAX_TOKEN)?;
        let click: Click = serde_json::from_slice(&payload).map_err(|_| LinkError::Invalid)?;
        if jianmen_scan::hunt::web_url(&click.url).is_none() {
            return Err(LinkError::Invalid);
        }
        if click.exp < now {
            return Err(LinkError::Expired);
        }
        Ok(click)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn guard(dir: &std::path::Path) -> LinkGuard {
        let config = LinksConfig {
            enabled: true,
            base_url: "https://gw.example.com:8443/".into(),
            skip: vec!["partner.test".into()],
            ..LinksConfig::default()
        };
        LinkGuard::new(
            config,
            LinkKey::load_or_create(dir).unwrap(),
            &["example.com".into()],
        )
    }

    #[test]
    fn a_protected_link_opens_to_its_address_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let g = guard(dir.path());
        let link = g
            .protect(
                "https://login.evil.test/a?b=1",
                "Q1",
                "Alice@Example.com",
                1000,
            )
            .unwrap();
        let token = link.strip_prefix("https://gw.example.com:8443/l/").unwrap();
        let click = g.open(token, 1000).unwrap();
        assert_eq!(
            (
                click.queue_id.as_str(),
                click.rcpt.as_str(),
                click.url.as_str()
            ),
            ("Q1", "alice@example.com", "https://login.evil.test/a?b=1")
        );
        assert_eq!(g.open(token, 1000 + 31 * 86_400), Err(LinkError::Expired));
        // Another address under the same MAC, another purpose's token, garbage.
        let (body, mac) = token.split_once('.').unwrap();
        let mut forged = click.clone();
        forged.url = "https://elsewhere.test/".into();
        let forged_body = base64::Engine::encode(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            serde_json::to_vec(&forged).unwrap(),
        );
        assert_ne!(forged_body, body);
        assert_eq!(
            g.open(&format!("{forged_body}.{mac}"), 0),
            Err(LinkError::Invalid)
        );
        let digest_link = LinkKey::load_or_create(dir.path())
            .unwrap()
            .seal("", body.as_bytes());
        assert_eq!(g.open(&digest_link, 0), Err(LinkError::Invalid));
        assert_eq!(g.open("x", 0), Err(LinkError::Invalid));
        assert_eq!(
            g.open(&"a".repeat(MAX_TOKEN + 1), 0),
            Err(LinkError::Invalid)
        );
    }

    #[test]
    fn own_partner_and_service_links_are_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let g = guard(dir.path());
        for url in [
            "https://intranet.example.com/x",
            "https://example.com/",
            "http://www.partner.test/doc",
            "https://gw.example.com:8443/l/abc",
            "mailto:a@b.test",
        ] {
            assert_eq!(g.protect(url, "Q", "a@example.com", 0), None, "{url}");
        }
        assert!(
            g.protect("https://notexample.com/", "Q", "a@example.com", 0)
                .is_some()
        );
        assert!(g.applies_to("bob@EXAMPLE.com") && !g.applies_to("bob@other.test"));
    }
}
