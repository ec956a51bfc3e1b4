//! A TAXII 2.1 client for one collection (OASIS TAXII 2.1 §5.4 Get Objects): pages of objects
//! added after a cursor, the server's `X-TAXII-Date-Added-Last` moving the cursor on and
//! `more`/`next` paging through what is left. Each page is bounded in bytes and objects.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use rustls::ClientConfig;
use serde_json::Value;

use super::config::TaxiiConfig;

/// Largest page read.
const MAX_PAGE: usize = 16 * 1024 * 1024;
/// Objects asked for per page.
const PAGE_OBJECTS: usize = 1000;
/// Time one page may take.
const PAGE_TIMEOUT: Duration = Duration::from_secs(60);
/// The TAXII 2.1 media type.
const TAXII: &str = "application/taxii+json;version=2.1";

/// One page of a collection.
#[derive(Debug)]
pub struct Page {
    /// The envelope (its `objects`).
    pub envelope: Value,
    /// More objects wait.
    pub more: bool,
    /// The `next` token for them.
    pub next: Option<String>,
    /// When the last object of this page was added: the next poll's `added_after`.
    pub added_last: Option<String>,
}

/// One collection.
pub struct Collection {
    objects: url::Url,
    tls: Arc<ClientConfig>,
    authorization: Option<String>,
}

impl Collection {
    /// Prepares the client for `config` (reading its password file, building its TLS check).
    pub fn new(config: &TaxiiConfig) -> Result<Collection, String> {
        let base = if config.url.ends_with('/') {
            config.url.clone()
        } else {
            format!("{}/", config.url)
        };
        let objects = url::Url::parse(&base)
            .and_then(|u| u.join("objects/"))
            .map_err(|e| format!("{}: {e}", config.url))?;
        let tls = crate::config::verifying_client(config.tls_ca.as_deref())?;
        let authorization = match (&config.username, &config.password_file) {
            (Some(user), Some(file)) => {
                let password = std::fs::read_to_string(file)
                    .map_err(|e| format!("{}: {e}", file.display()))?;
                let password = password.lines().next().unwrap_or_default();
                let token =
                    base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
                Some(format!("Basic {token}"))
            }
            _ => None,
        };
        Ok(Collection {
            objects,
            tls,
            authorization,
        })
    }

    /// The objects added after `added_after` ("" from the start), or the page `next` names.
    pub async fn page(&self, added_after: &str, next: Option<&str>) -> Result<Page, String> {
        let mut url = self.objects.clone();
        {
            let mut query = url.query_pairs_mut();
            query.append_pair("limit", &PAGE_OBJECTS.to_string());
            if !added_after.is_empty() {
                query.append_pair("added_after", added_after);
            }
            if let Some(next) = next {
                query.append_pair("next", next);
            }
        }
        let mut fields = vec![("Accept", TAXII)];
        if let Some(a) = &self.authorization {
            fields.push(("Authorization", a.as_str()));
        }
        let response = crate::http::fetch(&url, &self.tls, &fields, MAX_PAGE, PAGE_TIMEOUT).await?;
        if response.status != 200 {
            return Err(format!("the server answered {}", response.status));
        }
        let content_type = response
            .header("content-type")
            .unwrap_or_default()
            .to_ascii_lowercase();
        if !content_type.starts_with("application/taxii+json")
            && !content_type.starts_with("application/json")
        {
            return Err(format!("served as `{content_type}`, not TAXII JSON"));
        }
        let added_last = response
            .header("x-taxii-date-added-last")
            .filter(|t| t.len() <= 64 && chrono::DateTime::parse_from_rfc3339(t).is_ok())
            .map(str::to_owned);
        page_of(&response.body, added_last)
    }
}

/// The page a body holds.
fn page_of(body: &[u8], added_last: Option<String>) -> Result<Page, String> {
    let envelope: Value =
        serde_json::from_slice(body).map_err(|e| format!("not a TAXII envelope: {e}"))?;
    if !envelope.is_object() {
        return Err("not a TAXII envelope: not a JSON object".into());
    }
    let more = envelope.get("more").and_then(Value::as_bool) == Some(true);
    let next = envelope
        .get("next")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty() && n.len() <= 256)
        .map(str::to_owned);
    Ok(Page {
        envelope,
        more,
        next,
        added_last,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_envelope_says_whether_more_waits() {
        let p = page_of(br#"{"more": true, "next": "abc", "objects": []}"#, None).unwrap();
        assert!(p.more);
        assert_eq!(p.next.as_deref(), Some("abc"));
        let p = page_of(b"{}", Some("2026-12-05T17:03:47.371978Z".into())).unwrap();
        assert!(!p.more && p.next.is_none());
        assert!(page_of(b"[1, 2]", None).is_err());
        assert!(page_of(b"{\"objects\": [", None).is_err());
    }
}
