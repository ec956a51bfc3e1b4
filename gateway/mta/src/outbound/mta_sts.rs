//! MTA-STS (RFC 8461): a domain announces in DNS (`_mta-sts.<domain>` TXT) that it has a
//! policy, and serves it over HTTPS from `mta-sts.<domain>`; in `enforce` mode its mail goes
//! only to the MX hosts the policy lists, over TLS with a certificate valid for the host's name.
//! Policies are cached for their `max_age` and used while the DNS record or the policy server
//! is unreachable, so an attacker who blocks either cannot strip the policy once it is known.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hickory_resolver::TokioResolver;
use hickory_resolver::proto::rr::RData;
use rustls::ClientConfig;
use rustls_pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

/// Largest policy body read (RFC 8461 §3.3 suggests 64 KiB).
const MAX_BODY: usize = 64 * 1024;
/// Largest response header read.
/// Longest a policy is kept (RFC 8461 §3.2: `max_age` up to a year).
const MAX_AGE: u64 = 31_557_600;
/// Most domains whose policies are cached.
const MAX_CACHED: usize = 10_000;
/// Time for one policy fetch, from connect to the last byte.
const FETCH_TIMEOUT: Duration = Duration::from_secs(20);
/// How long a failed fetch is not tried again for the same domain: a policy server that hangs
/// would otherwise cost every delivery to that domain the whole fetch timeout.
const RETRY_FETCH_AFTER: Duration = Duration::from_secs(300);

/// What a policy asks of senders.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Deliver only as the policy says.
    Enforce,
    /// Deliver as usual; the policy is only reported on.
    Testing,
    /// The domain withdrew its policy.
    None,
}

/// A domain's policy (RFC 8461 §3.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// What senders must do.
    pub mode: Mode,
    /// Host names and `*.`-patterns the MX hosts must match.
    pub mx: Vec<String>,
    /// Seconds the policy may be cached.
    pub max_age: u64,
}

impl Policy {
    /// Parses a policy body; unknown keys are ignored, as the RFC asks.
    pub fn parse(text: &str) -> Result<Self, String> {
        let (mut version, mut mode, mut max_age, mut mx) = (None, None, None, Vec::new());
        for line in text.lines() {
            let Some((key, value)) = line.split_once(':') else {
                continue;
            };
            let value = value.trim();
            match key.trim() {
                "version" => version = Some(value.to_owned()),
                "mode" => {
                    mode = Some(match value {
                        "enforce" => Mode::Enforce,
                        "testing" => Mode::Testing,
                        "none" => Mode::None,
                        other => return Err(format!("unknown mode `{other}`")),
                    })
                }
                "max_age" => {
                    max_age = Some(
                        value
                            .parse::<u64>()
                            .map_err(|_| format!("max_age `{value}` is not a number"))?
                            .min(MAX_AGE),
                    )
                }
                "mx" if !value.is_empty() => mx.push(value.to_ascii_lowercase()),
                _ => {}
            }
        }
        if version.as_deref() != Some("STSv1") {
            return Err("not an STSv1 policy".into());
        }
        let mode = mode.ok_or("no mode")?;
        if mode != Mode::None && mx.is_empty() {
            return Err("no mx".into());
        }
        Ok(Self {
            mode,
            mx,
            max_age: max_age.ok_or("no max_age")?,
        })
    }

    /// Whether `host` is one of the policy's MX hosts: the same name, or one label more than
    /// a `*.` pattern (RFC 8461 §4.1).
    pub fn permits(&self, host: &str) -> bool {
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        self.mx
            .iter()
            .any(|pattern| match pattern.strip_prefix("*.") {
                Some(parent) => host
                    .split_once('.')
                    .is_some_and(|(label, rest)| !label.is_empty() && rest == parent),
                None => *pattern == host,
            })
    }
}

/// A cached policy and the DNS `id` it was fetched for.
struct Cached {
    id: String,
    policy: Arc<Policy>,
    expires: Instant,
}

/// Discovers, fetches and caches policies.
pub struct MtaSts {
    resolver: TokioResolver,
    /// Checks the policy server's certificate (public authorities, or the site's `tls_ca`).
    https: Arc<ClientConfig>,
    port: u16,
    cache: Mutex<HashMap<String, Cached>>,
    /// Domains whose last fetch failed, and when.
    failed: Mutex<HashMap<String, Instant>>,
}

impl MtaSts {
    /// Fetches policies from port `port` of the policy hosts, checking them with `https`.
    pub fn new(resolver: TokioResolver, https: Arc<ClientConfig>, port: u16) -> Self {
        Self {
            resolver,
            https,
            port,
            cache: Mutex::default(),
            failed: Mutex::default(),
        }
    }

    /// The policy in force for `domain`, if it has one: the cached one while DNS still names
    /// its id (or cannot be asked), else a freshly fetched one; a cached one when fetching fails.
    pub async fn policy(&self, domain: &str) -> Option<Arc<Policy>> {
        let cached = self.cached(domain);
        let Some(id) = self.announced_id(domain).await else {
            return cached.map(|(_, p)| p);
        };
        if let Some((cached_id, policy)) = &cached
            && *cached_id == id
        {
            return Some(policy.clone());
        }
        if self.failed_recently(domain) {
            return cached.map(|(_, p)| p);
        }
        match self.fetch(domain).await {
            Ok(policy) => {
                let policy = Arc::new(policy);
                self.remember(domain, id, policy.clone());
                Some(policy)
            }
            Err(e) => {
                tracing::warn!(domain, error = %e, "MTA-STS policy could not be fetched");
                let mut failed = self.failed.lock().unwrap_or_else(|p| p.into_inner());
                if failed.len() >= MAX_CACHED {
                    failed.retain(|_, at| at.elapsed() < RETRY_FETCH_AFTER);
                }
                if failed.len() < MAX_CACHED {
                    failed.insert(domain.to_owned(), Instant::now());
                }
                cached.map(|(_, p)| p)
            }
        }
    }

    fn failed_recently(&self, domain: &str) -> bool {
        let failed = self.failed.lock().unwrap_or_else(|p| p.into_inner());
        failed
            .get(domain)
            .is_some_and(|at| at.elapsed() < RETRY_FETCH_AFTER)
    }

    fn cached(&self, domain: &str) -> Option<(String, Arc<Policy>)> {
        let cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        cache
            .get(domain)
            .filter(|c| c.expires > Instant::now())
            .map(|c| (c.id.clone(), c.policy.clone()))
    }

    fn remember(&self, domain: &str, id: String, policy: Arc<Policy>) {
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        if cache.len() >= MAX_CACHED {
            let now = Instant::now();
            cache.retain(|_, c| c.expires > now);
            if cache.len() >= MAX_CACHED
                && let Some(any) = cache.keys().next().cloned()
            {
                cache.remove(&any);
            }
        }
        let expires = Instant::now() + Duration::from_secs(policy.max_age);
        cache.insert(
            domain.to_owned(),
            Cached {
                id,
                policy,
                expires,
            },
        );
    }

    /// The `id` of the one `v=STSv1` TXT record at `_mta-sts.<domain>`; none when there is no
    /// such record, more than one, or DNS does not answer.
    async fn announced_id(&self, domain: &str) -> Option<String> {
        let lookup = self
            .resolver
            .txt_lookup(format!("_mta-sts.{domain}."))
            .await
            .ok()?;
        let records: Vec<String> = lookup
            .answers()
            .iter()
            .filter_map(|r| match &r.data {
                RData::TXT(txt) => Some(
                    txt.txt_data
                        .iter()
                        .map(|part| String::from_utf8_lossy(part))
                        .collect::<String>(),
                ),
                _ => None,
            })
            .filter(|t| t.starts_with("v=STSv1"))
            .collect();
        let [record] = records.as_slice() else {
            return None;
        };
        parse_id(record)
    }

    /// GETs `https://mta-sts.<domain>/.well-known/mta-sts.txt` (no redirects, RFC 8461 §3.3).
    async fn fetch(&self, domain: &str) -> Result<Policy, String> {
        let host = format!("mta-sts.{domain}");
        tokio::time::timeout(FETCH_TIMEOUT, self.get(&host))
            .await
            .map_err(|_| format!("{host}: timeout"))?
            .and_then(|body| Policy::parse(&body))
            .map_err(|e| format!("{host}: {e}"))
    }

    async fn get(&self, host: &str) -> Result<String, String> {
        let addr = self
            .resolver
            .lookup_ip(format!("{host}."))
            .await
            .map_err(|e| e.to_string())?
            .iter()
            .next()
            .ok_or("no address")?;
        let tcp = TcpStream::connect((addr, self.port))
            .await
            .map_err(|e| e.to_string())?;
        let name = ServerName::try_from(host.to_owned()).map_err(|e| e.to_string())?;
        let tls = TlsConnector::from(self.https.clone())
            .connect(name, tcp)
            .await
            .map_err(|e| format!("TLS: {e}"))?;
        let response =
            crate::http::get(tls, host, "/.well-known/mta-sts.txt", &[], MAX_BODY).await?;
        policy_text(&response)
    }
}

/// The `id` field of an `v=STSv1; id=…` record: 1 to 32 letters and digits.
fn parse_id(record: &str) -> Option<String> {
    record
        .split(';')
        .filter_map(|field| field.trim().split_once('='))
        .find(|(key, _)| key.trim() == "id")
        .map(|(_, id)| id.trim().to_owned())
        .filter(|id| (1..=32).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric()))
}

/// The policy a response carries: a `200` with a `text/plain` UTF-8 body.
fn policy_text(response: &crate::http::Response) -> Result<String, String> {
    if response.status != 200 {
        return Err(format!("answered {}", response.status));
    }
    let content_type = response
        .header("content-type")
        .unwrap_or_default()
        .to_ascii_lowercase();
    if !content_type.starts_with("text/plain") {
        return Err(format!("policy served as `{content_type}`, not text/plain"));
    }
    String::from_utf8(response.body.clone()).map_err(|_| "policy is not UTF-8".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policies_parse_as_the_rfc_writes_them() {
        let p = Policy::parse(
            "version: STSv1\r\nmode: enforce\r\nmx: mail.example.com\r\nmx: *.example.net\r\n\
             max_age: 604800\r\nextension: ignored\r\n",
        )
        .unwrap();
        assert_eq!(p.mode, Mode::Enforce);
        assert_eq!(p.max_age, 604800);
        assert!(p.permits("mail.example.com") && p.permits("MAIL.example.com."));
        assert!(p.permits("mx1.example.net"));
        assert!(!p.permits("example.net"), "a wildcard needs one label more");
        assert!(!p.permits("a.b.example.net"), "and only one");
        assert!(!p.permits("mail.example.com.evil.test"));
        assert_eq!(
            Policy::parse("version: STSv1\nmode: testing\nmx: a.test\nmax_age: 99999999999\n")
                .unwrap()
                .max_age,
            MAX_AGE
        );
        assert!(Policy::parse("version: STSv1\nmode: none\nmax_age: 1\n").is_ok());
        for bad in [
            "mode: enforce\nmx: a.test\nmax_age: 1\n",
            "version: STSv2\nmode: enforce\nmx: a.test\nmax_age: 1\n",
            "version: STSv1\nmode: maybe\nmx: a.test\nmax_age: 1\n",
            "version: STSv1\nmode: enforce\nmax_age: 1\n",
            "version: STSv1\nmode: enforce\nmx: a.test\n",
            "version: STSv1\nmode: enforce\nmx: a.test\nmax_age: soon\n",
        ] {
            assert!(Policy::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_dns_record_names_one_id() {
        assert_eq!(
            parse_id("v=STSv1; id=20240101T1"),
            Some("20240101T1".into())
        );
        assert_eq!(parse_id("v=STSv1;id=abc;"), Some("abc".into()));
        assert_eq!(parse_id("v=STSv1;"), None);
        assert_eq!(parse_id("v=STSv1; id=has-dash"), None);
        assert_eq!(parse_id(&format!("v=STSv1; id={}", "a".repeat(33))), None);
    }

    #[test]
    fn only_a_plain_text_200_is_a_policy() {
        let policy = |raw: &[u8]| policy_text(&crate::http::parse(raw, true, MAX_BODY).unwrap());
        let ok =
            b"HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nversion: STSv1\n";
        assert_eq!(policy(ok).unwrap(), "version: STSv1\n");
        assert!(policy(b"HTTP/1.1 301 Moved\r\nLocation: x\r\n\r\n").is_err());
        assert!(policy(b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n\r\nx").is_err());
        assert!(policy(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n\xff").is_err());
        let mut long = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n".to_vec();
        long.extend(std::iter::repeat_n(b'a', MAX_BODY + 1));
        assert!(crate::http::parse(&long, true, MAX_BODY).is_err());
    }
}
