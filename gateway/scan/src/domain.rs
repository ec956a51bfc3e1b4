//! Domain names as a reader perceives them: the registrable part (public suffix list), the
//! Unicode form of punycode labels, and whether one name imitates another (UTS #39 confusable
//! skeletons, or one or two typing edits away).

/// The registrable domain (`mail.icbc.com.cn` → `icbc.com.cn`), lower case; the input itself
/// when the public suffix list does not know it.
pub fn registrable(host: &str) -> String {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    psl::domain_str(&host).unwrap_or(&host).to_owned()
}

/// The label before the public suffix (`icbc.com.cn` → `icbc`).
fn brand_label(registrable: &str) -> &str {
    let suffix_len = psl::suffix_str(registrable).map_or(0, str::len);
    let stem = &registrable[..registrable.len().saturating_sub(suffix_len)];
    stem.trim_end_matches('.')
}

/// `host` with punycode labels shown in Unicode, as a browser's address bar might.
pub fn unicode_form(host: &str) -> String {
    if host.contains("xn--") {
        let (u, result) = idna::domain_to_unicode(host);
        if result.is_ok() {
            return u;
        }
    }
    host.to_owned()
}

fn skeleton(s: &str) -> String {
    unicode_security::skeleton(s).collect()
}

/// A genuine domain with its comparison forms computed once.
#[derive(Debug, Clone)]
struct Genuine {
    domain: String,
    skeleton: String,
    label: String,
    label_skeleton: String,
}

/// A set of genuine registrable domains that others may imitate.
#[derive(Debug, Clone, Default)]
pub struct Lookalikes {
    genuine: Vec<Genuine>,
}

impl Lookalikes {
    /// Prepares `domains` (registrable domains, lower case) for comparison.
    pub fn new<I: IntoIterator<Item = String>>(domains: I) -> Self {
        let mut genuine: Vec<Genuine> = domains
            .into_iter()
            .filter(|d| !d.is_empty())
            .map(|domain| {
                let label = brand_label(&domain).to_owned();
                Genuine {
                    skeleton: skeleton(&domain),
                    label_skeleton: skeleton(&label),
                    label,
                    domain,
                }
            })
            .collect();
        genuine.sort_by(|a, b| a.domain.cmp(&b.domain));
        genuine.dedup_by(|a, b| a.domain == b.domain);
        Self { genuine }
    }

    /// Whether `domain` (registrable) is one of the genuine domains.
    pub fn contains(&self, domain: &str) -> bool {
        self.genuine.iter().any(|g| g.domain == domain)
    }

    /// The genuine domain that `candidate` (registrable) imitates without being it, if any.
    pub fn imitated(&self, candidate: &str) -> Option<&str> {
        if candidate.is_empty() || self.contains(candidate) {
            return None;
        }
        let cand_u = unicode_form(candidate);
        let cand_skeleton = skeleton(&cand_u);
        let a = brand_label(&cand_u);
        let a_chars = a.chars().count();
        let mut a_skeleton: Option<String> = None;
        for g in &self.genuine {
            if cand_skeleton == g.skeleton {
                return Some(&g.domain);
            }
            let b = g.label.as_str();
            let b_chars = b.chars().count();
            if a_chars < 4 || b_chars < 4 || a == b {
                continue;
            }
            // The genuine brand with a hyphenated extra word (icbc-security.com).
            if a.strip_prefix(b).is_some_and(|rest| rest.starts_with('-'))
                || a.strip_suffix(b).is_some_and(|rest| rest.ends_with('-'))
            {
                return Some(&g.domain);
            }
            let limit = if b_chars >= 10 { 2 } else { 1 };
            if a_chars.abs_diff(b_chars) > limit {
                continue;
            }
            let a_sk = a_skeleton.get_or_insert_with(|| skeleton(a));
            if edit_distance(a_sk, &g.label_skeleton, limit) <= limit {
                return Some(&g.domain);
            }
        }
        None
    }
}

/// Whether `candidate` imitates `genuine` without being it: both registrable domains.
pub fn imitates(candidate: &str, genuine: &str) -> bool {
    Lookalikes::new([genuine.to_owned()])
        .imitated(candidate)
        .is_some()
}

/// Levenshtein distance, giving up (returning `limit + 1`) once it must exceed `limit`.
pub fn edit_distance(a: &str, b: &str, limit: usize) -> usize {
    let a: Vec<char> = a.chars().take(64).collect();
    let b: Vec<char> = b.chars().take(64).collect();
    if a.len().abs_diff(b.len()) > limit {
        return limit + 1;
    }
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for (i, ca) in a.iter().enumerate() {
        cur[0] = i + 1;
        let mut row_min = cur[0];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
            row_min = row_min.min(cur[j + 1]);
        }
        if row_min > limit {
            return limit + 1;
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registrable_domains() {
        assert_eq!(registrable("mail.icbc.com.cn"), "icbc.com.cn");
        assert_eq!(registrable("WWW.PayPal.com."), "paypal.com");
    }

    #[test]
    fn lookalikes() {
        assert!(imitates("paypa1.com", "paypal.com"));
        assert!(imitates("xn--pypal-4ve.com", "paypal.com"), "Cyrillic а");
        assert!(imitates("icbc-security.com", "icbc.com.cn"));
        assert!(imitates("examp1e.com", "example.com"));
        assert!(imitates("rnicrosoft.com", "microsoft.com"));
        assert!(!imitates("paypal.com", "paypal.com"));
        assert!(
            !imitates("example.org", "example.com"),
            "same name, other owner: not a typo"
        );
        assert!(!imitates("github.com", "gitlab.com"));
        assert!(!imitates("qq.com", "163.com"));
    }
}
