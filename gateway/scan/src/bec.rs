//! Business email compromise: an outsider who borrows an executive's name, a sender domain one
//! typo away from ours or a partner's, replies steered elsewhere, and the first message ever
//! from this sender to this recipient. The payment and urgency language is in the rule set.

use std::collections::HashSet;
use std::hash::{Hash, Hasher};
use std::io::Write;
use std::path::PathBuf;
use std::sync::Mutex;

use super::Symbols;
use super::domain::{Lookalikes, registrable};
use super::message::{Message, domain_of};

/// Most sender→recipient pairs remembered (8 bytes each).
const MAX_CONTACTS: usize = 4_000_000;

/// Who we are and whom we trust, for impersonation checks.
pub struct BecSettings {
    /// Names of executives (lower case, spaces removed).
    pub vips: Vec<String>,
    /// Registrable domains of our own protected domains.
    pub own: Vec<String>,
    /// Our own and our partners' domains, prepared for lookalike checks.
    pub known: Lookalikes,
}

impl BecSettings {
    /// Normalises the configured names and domains.
    pub fn new(vips: &[String], protected: &[String], partners: &[String]) -> Self {
        Self {
            vips: vips
                .iter()
                .map(|v| normalise_name(v))
                .filter(|v| !v.is_empty())
                .collect(),
            own: protected.iter().map(|d| registrable(d)).collect(),
            known: Lookalikes::new(
                protected
                    .iter()
                    .chain(partners)
                    .map(|d| registrable(d))
                    .collect::<Vec<_>>(),
            ),
        }
    }
}

fn normalise_name(s: &str) -> String {
    s.chars()
        .filter(|c| c.is_alphanumeric())
        .flat_map(char::to_lowercase)
        .collect()
}

/// Adds BEC symbols; `mail_from` is the envelope sender when known.
pub fn check(
    message: &Message,
    mail_from: Option<&str>,
    settings: &BecSettings,
    symbols: &mut Symbols,
) {
    let from_reg = registrable(message.from_domain());
    if from_reg.is_empty() {
        return;
    }
    let outside = !settings.own.contains(&from_reg);
    let name = normalise_name(&message.from_name);
    if outside
        && !name.is_empty()
        && let Some(vip) = settings.vips.iter().find(|v| name.contains(v.as_str()))
    {
        symbols.add(
            "BEC_VIP_IMPERSONATION",
            format!("{} <{}> ({vip})", message.from_name, message.from_addr),
        );
    }
    for candidate in [from_reg.clone(), registrable(domain_of(&message.reply_to))] {
        if let Some(genuine) = settings.known.imitated(&candidate) {
            symbols.add("BEC_LOOKALIKE_DOMAIN", format!("{candidate} ≈ {genuine}"));
        }
    }
    if !message.reply_to.is_empty() {
        let rt = registrable(domain_of(&message.reply_to));
        if !rt.is_empty() && rt != from_reg {
            symbols.add(
                "BEC_REPLY_TO_DIVERGENT",
                format!("{} → {}", message.from_addr, message.reply_to),
            );
        }
    }
    if let Some(env) = mail_from.filter(|m| !m.is_empty()) {
        let env_reg = registrable(domain_of(env));
        if !env_reg.is_empty() && env_reg != from_reg {
            symbols.add(
                "BEC_RETURN_PATH_DIVERGENT",
                format!("{env} / {}", message.from_addr),
            );
        }
    }
}

/// Remembers which outside senders have written to which recipients, so that a first contact
/// stands out. Kept as hashes in memory and appended to a file so restarts do not forget.
pub struct ContactHistory {
    seen: Mutex<HashSet<u64>>,
    file: Option<PathBuf>,
}

impl ContactHistory {
    /// Loads the history from `file` (created on first write); `None` keeps it in memory only.
    pub fn open(file: Option<PathBuf>) -> Self {
        let mut seen = HashSet::new();
        if let Some(bytes) = file.as_ref().and_then(|f| std::fs::read(f).ok()) {
            for chunk in bytes.chunks_exact(8).take(MAX_CONTACTS) {
                let mut b = [0u8; 8];
                b.copy_from_slice(chunk);
                seen.insert(u64::from_le_bytes(b));
            }
        }
        Self {
            seen: Mutex::new(seen),
            file,
        }
    }

    fn key(sender: &str, rcpt: &str) -> u64 {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        sender.to_lowercase().hash(&mut h);
        rcpt.to_lowercase().hash(&mut h);
        h.finish()
    }

    /// Records the pairs; adds `BEC_FIRST_CONTACT` when any recipient never heard from `sender`.
    pub fn observe(&self, sender: &str, rcpts: &[String], symbols: &mut Symbols) {
        if sender.is_empty() {
            return;
        }
        let mut new_keys = Vec::new();
        {
            let Ok(mut seen) = self.seen.lock() else {
                return;
            };
            for r in rcpts {
                let k = Self::key(sender, r);
                if seen.len() < MAX_CONTACTS && seen.insert(k) {
                    new_keys.push(k);
                }
            }
        }
        if new_keys.is_empty() {
            return;
        }
        symbols.add("BEC_FIRST_CONTACT", sender);
        if let Some(path) = &self.file {
            let bytes: Vec<u8> = new_keys.iter().flat_map(|k| k.to_le_bytes()).collect();
            let written = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .and_then(|mut f| f.write_all(&bytes));
            if let Err(e) = written {
                tracing::warn!(path = %path.display(), error = %e, "cannot record contact history");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> BecSettings {
        BecSettings::new(
            &["张伟".into(), "Wei Zhang".into()],
            &["example.com".into()],
            &["partner.cn".into()],
        )
    }

    fn run(raw: &str, mail_from: Option<&str>) -> Symbols {
        let mut s = Symbols::default();
        check(
            &Message::parse(raw.as_bytes()),
            mail_from,
            &settings(),
            &mut s,
        );
        s
    }

    #[test]
    fn impersonation_patterns() {
        let s = run("From: \"张伟\" <zhangwei.ceo@gmail.com>\r\n\r\n在吗", None);
        assert!(s.has("BEC_VIP_IMPERSONATION"));
        let s = run("From: \"WEI ZHANG\" <w@examp1e.com>\r\n\r\nx", None);
        assert!(s.has("BEC_VIP_IMPERSONATION") && s.has("BEC_LOOKALIKE_DOMAIN"));
        let s = run(
            "From: a@partner.cn\r\nReply-To: a@partnet.cn\r\n\r\nx",
            Some("bounce@esp.test"),
        );
        assert!(
            s.has("BEC_LOOKALIKE_DOMAIN")
                && s.has("BEC_REPLY_TO_DIVERGENT")
                && s.has("BEC_RETURN_PATH_DIVERGENT")
        );
        // Our own executive writing from our own domain is not impersonation.
        let s = run(
            "From: \"张伟\" <zw@example.com>\r\n\r\nx",
            Some("zw@example.com"),
        );
        assert!(s.hits().is_empty(), "{:?}", s.hits());
    }

    #[test]
    fn first_contact_is_remembered_across_restarts() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("contacts");
        let h = ContactHistory::open(Some(file.clone()));
        let mut s = Symbols::default();
        h.observe("a@x.test", &["u@example.com".into()], &mut s);
        assert!(s.has("BEC_FIRST_CONTACT"));
        let h = ContactHistory::open(Some(file));
        let mut s = Symbols::default();
        h.observe("A@x.test", &["u@example.com".into()], &mut s);
        assert!(!s.has("BEC_FIRST_CONTACT"));
        h.observe("a@x.test", &["v@example.com".into()], &mut s);
        assert!(s.has("BEC_FIRST_CONTACT"));
    }
}
