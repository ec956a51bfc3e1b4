//! What a delivered message can be found again by when a threat becomes known only later
//! (a retro-hunt, a recall): its Message-ID, sender, subject, the web links it carries and
//! their hosts, and its attachments' SHA-256. Bounded: a message yields at most
//! [`MAX_TERMS`] of each kind.

use sha2::{Digest, Sha256};

use crate::message::Message;

/// Most terms of one kind kept per message.
pub const MAX_TERMS: usize = 64;
/// Longest URL kept.
const MAX_URL: usize = 2048;
/// Longest Message-ID kept.
const MAX_ID: usize = 998;

/// The facts a message is hunted by.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Facts {
    /// `Message-ID` without its angle brackets (empty when absent).
    pub message_id: String,
    /// Address of the first `From`, lower case.
    pub from: String,
    /// Decoded subject.
    pub subject: String,
    /// Web links (http, https), scheme and host in lower case, fragment dropped.
    pub urls: Vec<String>,
    /// Their hosts, lower case, without a trailing dot.
    pub domains: Vec<String>,
    /// SHA-256 of each attachment's decoded content, lower-case hex.
    pub sha256: Vec<String>,
}

impl Facts {
    /// The facts of a parsed message.
    pub fn of(message: &Message) -> Facts {
        let message_id = message
            .header("message-id")
            .map(|v| {
                v.trim()
                    .trim_start_matches('<')
                    .trim_end_matches('>')
                    .trim()
            })
            .unwrap_or("")
            .chars()
            .filter(|c| !c.is_control())
            .take(MAX_ID)
            .collect();
        let mut urls = Vec::new();
        let mut domains = Vec::new();
        for link in &message.links {
            let Some((url, host)) = web_url(&link.href) else {
                continue;
            };
            if urls.len() < MAX_TERMS && !urls.contains(&url) {
                urls.push(url);
            }
            if domains.len() < MAX_TERMS && !domains.contains(&host) {
                domains.push(host);
            }
        }
        let mut sha256 = Vec::new();
        for a in &message.attachments {
            let digest = hex(&Sha256::digest(&a.data));
            if sha256.len() < MAX_TERMS && !sha256.contains(&digest) {
                sha256.push(digest);
            }
        }
        Facts {
            message_id,
            from: message.from_addr.clone(),
            subject: message.subject.clone(),
            urls,
            domains,
            sha256,
        }
    }
}

/// A web link as kept for hunting, with its host; None for other links.
pub fn web_url(href: &str) -> Option<(String, String)> {
    let href = href.trim();
    let (scheme, rest) = href.split_once("://")?;
    let scheme = scheme.to_ascii_lowercase();
    if scheme != "http" && scheme != "https" {
        return None;
    }
    let end = rest.find(['/', '?', '#', '\\']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(end);
    let hostport = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = if hostport.starts_with('[') {
        hostport.split(']').next()?.trim_start_matches('[')
    } else {
        hostport.split(':').next()?
    };
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    if host.is_empty() {
        return None;
    }
    let path = path.split('#').next().unwrap_or("");
    let url = format!("{scheme}://{}{path}", hostport.to_ascii_lowercase());
    (url.len() <= MAX_URL).then_some((url, host))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_gives_its_id_links_hosts_and_attachment_hashes() {
        let raw = b"From: Bank <Notice@Bank.test>\r\nSubject: =?UTF-8?B?5qC45a+5?=\r\n\
            Message-ID: <abc.123@mail.bank.test>\r\nMIME-Version: 1.0\r\n\
            Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\
            Content-Type: text/html\r\n\r\n<a href=\"HTTPS://Login.Bank-Verify.TEST/x?y=1#frag\">x</a> \
            <a href=\"mailto:a@b.test\">m</a> <a href=\"https://login.bank-verify.test/x?y=1\">again</a>\r\n\
            --b\r\nContent-Type: application/octet-stream; name=a.bin\r\n\
            Content-Transfer-Encoding: base64\r\n\r\naGVsbG8=\r\n--b--\r\n";
        let f = Facts::of(&Message::parse(raw));
        assert_eq!(f.message_id, "abc.123@mail.bank.test");
        assert_eq!(f.from, "notice@bank.test");
        assert_eq!(f.subject, "核对");
        assert_eq!(f.urls, ["https://login.bank-verify.test/x?y=1"]);
        assert_eq!(f.domains, ["login.bank-verify.test"]);
        // SHA-256 of "hello".
        assert_eq!(
            f.sha256,
            ["2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"]
        );
    }

    #[test]
    fn only_web_links_count_and_hosts_are_normalised() {
        assert_eq!(
            web_url("http://user@Host.Test.:8080/p#f"),
            Some(("http://host.test.:8080/p".into(), "host.test".into()))
        );
        assert_eq!(web_url("ftp://x.test/"), None);
        assert_eq!(web_url("javascript:alert(1)"), None);
        assert_eq!(web_url("https:///nohost"), None);
    }
}
