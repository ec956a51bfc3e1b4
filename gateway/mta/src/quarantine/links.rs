//! Capability links for recipients, mailed in digests: no login, but signed (HMAC-SHA256 with
//! a key only this gateway holds), bound to one action, item and recipient, expiring, and —
//! for actions — usable once. A link is `base64url(claims) "." base64url(mac)`.

use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::hmac;
use ring::rand::{SecureRandom, SystemRandom};
use serde::{Deserialize, Serialize};

/// What a link lets its holder do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LinkAction {
    /// Release this recipient's copy of one item.
    Release,
    /// See one's own held mail (the portal), for the link's lifetime.
    Portal,
}

/// The signed content of a link.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Claims {
    /// The action.
    pub act: LinkAction,
    /// The item (empty for the portal).
    pub id: String,
    /// The recipient it was mailed to.
    pub rcpt: String,
    /// Unix time it expires.
    pub exp: i64,
    /// Random, so each link is distinct and can be spent once.
    pub nonce: String,
}

/// Why a link is refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum LinkError {
    /// Not a link, or altered.
    #[error("this link is not valid / 链接无效")]
    Invalid,
    /// Past its lifetime.
    #[error("this link has expired / 链接已过期")]
    Expired,
}

/// Makes and checks links with this gateway's key.
pub struct LinkKey {
    key: hmac::Key,
}

impl LinkKey {
    /// Loads `data_dir/keys/links.key`, creating it (32 random bytes, mode 0600) on first use.
    pub fn load_or_create(data_dir: &Path) -> std::io::Result<LinkKey> {
        let path = data_dir.join("keys").join("links.key");
        let secret = jianmen_gm::keyfile::load_secret(&path, 32, true)?
            .ok_or_else(|| std::io::Error::other("links.key missing"))?;
        Ok(LinkKey {
            key: hmac::Key::new(hmac::HMAC_SHA256, &secret),
        })
    }

    /// `payload` sealed for `purpose`: `base64url(payload) "." base64url(mac)`, the MAC taken
    /// over the purpose too, so a token made for one purpose is refused for every other.
    pub fn seal(&self, purpose: &str, payload: &[u8]) -> String {
        let body = URL_SAFE_NO_PAD.encode(payload);
        let mac = hmac::sign(&self.key, &Self::signed(purpose, &body));
        format!("{body}.{}", URL_SAFE_NO_PAD.encode(mac.as_ref()))
    }

    /// The payload of a genuine `token` sealed for `purpose`, at most `max_len` bytes long.
    pub fn unseal(&self, purpose: &str, token: &str, max_len: usize) -> Result<Vec<u8>, LinkError> {
        if token.len() > max_len {
            return Err(LinkError::Invalid);
        }
        let (body, mac) = token.split_once('.').ok_or(LinkError::Invalid)?;
        let mac = URL_SAFE_NO_PAD
            .decode(mac)
            .map_err(|_| LinkError::Invalid)?;
        hmac::verify(&self.key, &Self::signed(purpose, body), &mac)
            .map_err(|_| LinkError::Invalid)?;
        URL_SAFE_NO_PAD.decode(body).map_err(|_| LinkError::Invalid)
    }

    /// What the MAC covers: the body alone for the digest links (as issued before purposes
    /// existed), else the purpose, a NUL and the body.
    fn signed(purpose: &str, body: &str) -> Vec<u8> {
        if purpose.is_empty() {
            return body.as_bytes().to_vec();
        }
        [purpose.as_bytes(), b"\0", body.as_bytes()].concat()
    }

    /// A link for `act` on item `id` for `rcpt`, valid until `exp`.
    pub fn issue(&self, act: LinkAction, id: &str, rcpt: &str, exp: i64) -> String {
        let mut nonce = [0u8; 12];
        // Without randomness the nonce stays zero: links still verify, only single use
        // would then merge identical links, which the item and expiry already separate.
        let _ = SystemRandom::new().fill(&mut nonce);
        let claims = Claims {
            act,
            id: id.to_owned(),
            rcpt: rcpt.to_lowercase(),
            exp,
            nonce: URL_SAFE_NO_PAD.encode(nonce),
        };
        self.seal("", &serde_json::to_vec(&claims).unwrap_or_default())
    }

    /// The claims of a genuine, unexpired link.
    pub fn check(&self, link: &str, now: i64) -> Result<Claims, LinkError> {
        let json = self.unseal("", link, 1024)?;
        let claims: Claims = serde_json::from_slice(&json).map_err(|_| LinkError::Invalid)?;
        if claims.exp < now {
            return Err(LinkError::Expired);
        }
        Ok(claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_verify_and_reject_tampering_and_expiry() {
        let dir = tempfile::tempdir().unwrap();
        let key = LinkKey::load_or_create(dir.path()).unwrap();
        let link = key.issue(LinkAction::Release, "01ID", "User@Example.com", 1000);
        let c = key.check(&link, 999).unwrap();
        assert_eq!(
            (c.act, c.id.as_str(), c.rcpt.as_str()),
            (LinkAction::Release, "01ID", "user@example.com")
        );
        assert_eq!(key.check(&link, 1001), Err(LinkError::Expired));
        // Altered claims (another recipient) with the old MAC.
        let (body, mac) = link.split_once('.').unwrap();
        let mut claims: Claims =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(body).unwrap()).unwrap();
        claims.rcpt = "boss@example.com".into();
        let forged = format!(
            "{}.{mac}",
            URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims).unwrap())
        );
        assert_eq!(key.check(&forged, 0), Err(LinkError::Invalid));
        assert_eq!(key.check("garbage", 0), Err(LinkError::Invalid));
        // Another gateway's key.
        let other = tempfile::tempdir().unwrap();
        let other = LinkKey::load_or_create(other.path()).unwrap();
        assert_eq!(other.check(&link, 0), Err(LinkError::Invalid));
        // The same key after a restart.
        assert!(
            LinkKey::load_or_create(dir.path())
                .unwrap()
                .check(&link, 0)
                .is_ok()
        );
    }
}
