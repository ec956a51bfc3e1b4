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

/// Whether `candidate` imitates `genuine` without being it: both registrable domains.
pub fn imitates(candidate: &str, genuine: &str) -> bool {
    if candidate == genuine || candidate.is_empty() || genuine.is_empty() {
        return false;
    }
    let cand_u = unicode_form(candidate);
    if skeleton(&cand_u) == skeleton(genuine) {
        return true;
    }
    let a = brand_label(&cand_u);
    let b = brand_label(genuine);
    if a.chars().count() < 4 || b.chars().count() < 4 {
        return false;
    }
    // The genuine brand with a hyphenated extra word (icbc-security.com).
    if a != b && (a.starts_with(&format!("{b}-")) || a.ends_with(&format!("-{b}"))) {
        return true;
    }
    if a == b {
        return false;
    }
    let limit = if b.chars().count() >= 10 { 2 } else { 1 };
    edit_distance(&skeleton(a), &skeleton(b), limit) <= limit
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
