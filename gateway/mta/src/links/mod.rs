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

    /// The copies of an inbound message (`body` after the first `trace_len` bytes of our trace
    /// header) to deliver: each recipient whose mail is rewritten gets a copy of its own (its
    /// clicks say who) while they are at most `per_recipient_max`, else they share one; the
    /// others share the message as it is. Each is (queue id, recipients, body); the first keeps
    /// `id`. CPU work: the message is parsed once, its text passed over once per copy.
    pub fn copies(
        &self,
        id: String,
        rcpts: Vec<String>,
        body: Vec<u8>,
        trace_len: usize,
        now: i64,
    ) -> Vec<(String, Vec<String>, Vec<u8>)> {
        let (rewritten, plain): (Vec<String>, Vec<String>) =
            rcpts.into_iter().partition(|r| self.applies_to(r));
        let split = trace_len.min(body.len());
        let (trace, message) = body.split_at(split);
        let plan = (!rewritten.is_empty())
            .then(|| rewrite::Plan::of(message))
            .flatten();
        let copy = |queue_id: &str, rcpt: &str| {
            plan.as_ref()
                .and_then(|p| p.apply(message, &mut |url| self.protect(url, queue_id, rcpt, now)))
                .map_or_else(|| body.clone(), |new| [trace, new.as_slice()].concat())
        };
        let mut ids =
            std::iter::once(id).chain(std::iter::repeat_with(|| ulid::Ulid::new().to_string()));
        let mut copies = Vec::new();
        if rewritten.len() <= self.config.per_recipient_max {
            for rcpt in rewritten {
                let queue_id = ids.next().unwrap_or_default();
                let body = copy(&queue_id, &rcpt);
                copies.push((queue_id, vec![rcpt], body));
            }
        } else if !rewritten.is_empty() {
            let queue_id = ids.next().unwrap_or_default();
            let body = copy(&queue_id, "");
            copies.push((queue_id, rewritten, body));
        }
        if !plain.is_empty() {
            copies.push((ids.next().unwrap_or_default(), plain, body));
        }
        copies
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
    fn each_recipient_gets_a_copy_naming_them_while_they_are_few() {
        let dir = tempfile::tempdir().unwrap();
        let mut g = guard(dir.path());
        let trace = b"Received: by gw\r\n";
        let body = [&trace[..], b"Subject: x\r\n\r\nSee https://evil.test/a\r\n"].concat();
        let rcpts = vec![
            "a@example.com".to_owned(),
            "b@example.com".into(),
            "c@other.test".into(),
        ];
        let copies = g.copies("Q0".into(), rcpts.clone(), body.clone(), trace.len(), 0);
        assert_eq!(copies.len(), 3);
        assert_eq!(copies[0].0, "Q0", "the first copy keeps the queue id");
        for (id, to, copy) in &copies[..2] {
            assert!(copy.starts_with(trace), "our trace header stays first");
            let text = String::from_utf8_lossy(copy);
            assert!(!text.contains("evil.test"));
            let m = mail_parser::MessageParser::default()
                .parse(&copy[trace.len()..])
                .unwrap();
            let shown = m.body_text(0).unwrap().into_owned();
            let token = shown.split("/l/").nth(1).unwrap().trim();
            let click = g.open(token, 0).unwrap();
            assert_eq!((&click.queue_id, &click.rcpt), (id, &to[0]));
        }
        assert_eq!(copies[2].1, ["c@other.test"]);
        assert_eq!(copies[2].2, body, "mail to others is left as it is");
        // Beyond the bound they share one copy, whose clicks name no one.
        g.config.per_recipient_max = 1;
        let shared = g.copies("Q0".into(), rcpts, body, trace.len(), 0);
        assert_eq!(shared.len(), 2);
        assert_eq!(shared[0].1.len(), 2);
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
