//! Phishing signs in links and sender names: link text that shows one domain while the link
//! goes to another, IP literals, punycode, user@host tricks, shorteners, domains that imitate
//! protected or well-known ones, and display names that claim a brand.

use super::Symbols;
use super::domain::{Lookalikes, registrable, unicode_form};
use super::message::Message;

/// Well-known brands: the names a display name may claim and the domains that really send
/// for them. Operators add their own through `scan.brands`.
pub const BUILTIN_BRANDS: &[(&str, &[&str])] = &[
    ("paypal", &["paypal.com"]),
    ("apple", &["apple.com", "icloud.com"]),
    (
        "microsoft",
        &[
            "microsoft.com",
            "office.com",
            "outlook.com",
            "live.com",
            "office365.com",
        ],
    ),
    (
        "office 365",
        &["microsoft.com", "office.com", "office365.com"],
    ),
    ("outlook", &["microsoft.com", "outlook.com"]),
    ("google", &["google.com", "gmail.com"]),
    ("amazon", &["amazon.com", "amazon.cn"]),
    ("dhl", &["dhl.com", "dhl.de"]),
    ("fedex", &["fedex.com"]),
    ("netflix", &["netflix.com"]),
    ("linkedin", &["linkedin.com"]),
    ("facebook", &["facebook.com", "facebookmail.com"]),
    ("工商银行", &["icbc.com.cn"]),
    ("建设银行", &["ccb.com"]),
    ("农业银行", &["abchina.com"]),
    ("中国银行", &["boc.cn", "bankofchina.com"]),
    ("招商银行", &["cmbchina.com"]),
    ("交通银行", &["bankcomm.com"]),
    ("支付宝", &["alipay.com", "alibaba-inc.com"]),
    ("淘宝", &["taobao.com", "alibaba-inc.com"]),
    ("京东", &["jd.com"]),
    ("腾讯", &["qq.com", "tencent.com"]),
    ("微信", &["qq.com", "tencent.com", "wechat.com"]),
    ("网易", &["163.com", "126.com", "netease.com"]),
    ("中国移动", &["10086.cn", "chinamobile.com"]),
    ("顺丰", &["sf-express.com", "sfmail.sf-express.com"]),
    ("国家税务总局", &["chinatax.gov.cn"]),
    ("税务局", &["chinatax.gov.cn"]),
    ("阿里云", &["aliyun.com", "alibaba-inc.com"]),
];

/// Link hosts that hide the real destination.
const SHORTENERS: &[&str] = &[
    "bit.ly",
    "t.cn",
    "dwz.cn",
    "tinyurl.com",
    "goo.gl",
    "ow.ly",
    "is.gd",
    "t.co",
    "url.cn",
    "suo.im",
    "reurl.cc",
    "rebrand.ly",
    "cutt.ly",
    "buff.ly",
    "shorturl.at",
    "rb.gy",
    "tiny.cc",
];

/// Domains imitation is judged against: brands plus our protected domains.
pub struct Targets {
    brands: Vec<(String, Vec<String>)>,
    genuine: Lookalikes,
}

impl Targets {
    /// Built-in brands, extra `(name, domains)` brands and the protected domains.
    pub fn new(extra_brands: &[(String, Vec<String>)], protected: &[String]) -> Self {
        let mut brands: Vec<(String, Vec<String>)> = BUILTIN_BRANDS
            .iter()
            .map(|(n, d)| (n.to_string(), d.iter().map(|s| s.to_string()).collect()))
            .collect();
        brands.extend(extra_brands.iter().cloned());
        let genuine = Lookalikes::new(
            brands
                .iter()
                .flat_map(|(_, d)| d.iter().map(|x| registrable(x)))
                .chain(protected.iter().map(|d| registrable(d)))
                .collect::<Vec<_>>(),
        );
        Self { brands, genuine }
    }

    /// The genuine domain `domain` imitates, if any.
    pub fn imitated(&self, domain: &str) -> Option<&str> {
        self.genuine.imitated(&registrable(domain))
    }
}

/// Host and userinfo flag of a URL, or `None` for non-web links.
pub(crate) fn host_of(href: &str) -> Option<(String, bool)> {
    let lower = href.trim().to_ascii_lowercase();
    let rest = if let Some(r) = lower.strip_prefix("http://") {
        r
    } else if let Some(r) = lower.strip_prefix("https://") {
        r
    } else if let Some(r) = lower.strip_prefix("//") {
        r
    } else if lower.starts_with("www.") {
        &lower[..]
    } else {
        return None;
    };
    let authority = rest.split(['/', '?', '#', '\\']).next().unwrap_or_default();
    let (userinfo, hostport) = match authority.rsplit_once('@') {
        Some((_, h)) => (true, h),
        None => (false, authority),
    };
    let host = if hostport.starts_with('[') {
        hostport
            .split(']')
            .next()
            .unwrap_or_default()
            .trim_start_matches('[')
    } else {
        hostport.split(':').next().unwrap_or_default()
    };
    if host.is_empty() {
        return None;
    }
    Some((host.trim_end_matches('.').to_owned(), userinfo))
}

/// A domain written as text (`www.icbc.com.cn`, `https://icbc.com.cn/x`), if the anchor text is one.
fn domain_in_text(text: &str) -> Option<String> {
    let t = text.trim();
    if t.contains(char::is_whitespace) || !t.contains('.') {
        return None;
    }
    let host = host_of(t).map(|(h, _)| h).or_else(|| {
        let h = t.split(['/', '?', '#']).next().unwrap_or_default();
        let tld = h.rsplit('.').next().unwrap_or_default();
        (tld.len() >= 2 && tld.chars().all(|c| c.is_ascii_alphabetic()))
            .then(|| h.to_ascii_lowercase())
    })?;
    host.contains('.').then_some(host)
}

fn is_ip(host: &str) -> bool {
    host.parse::<std::net::IpAddr>().is_ok()
        || (host.split('.').count() == 4 && host.split('.').all(|p| p.parse::<u32>().is_ok()))
}

/// Link checks; returns the registrable domains of all web links (for URI block lists).
pub fn check_links(message: &Message, targets: &Targets, symbols: &mut Symbols) -> Vec<String> {
    let mut domains = Vec::new();
    let mut hosts_seen: Vec<String> = Vec::new();
    for link in &message.links {
        let Some((host, userinfo)) = host_of(&link.href) else {
            continue;
        };
        let new_host = !hosts_seen.contains(&host);
        if new_host {
            hosts_seen.push(host.clone());
        }
        if userinfo {
            symbols.add("URL_USERINFO", &link.href);
        }
        let ip = is_ip(&host);
        if ip {
            symbols.add("URL_IP_LITERAL", &host);
        }
        if host.contains("xn--") {
            symbols.add("URL_PUNYCODE", unicode_form(&host));
        }
        let reg = registrable(&host);
        if SHORTENERS.contains(&host.as_str()) || SHORTENERS.contains(&reg.as_str()) {
            symbols.add("URL_SHORTENER", &host);
        }
        if !ip
            && new_host
            && let Some(genuine) = targets.imitated(&host)
        {
            symbols.add("URL_LOOKALIKE", format!("{host} ≈ {genuine}"));
        }
        if let Some(shown) = domain_in_text(&link.text) {
            let shown_reg = registrable(&shown);
            if shown_reg != reg && !is_ip(&shown) {
                symbols.add("URL_ANCHOR_MISMATCH", format!("{shown} → {host}"));
            }
        }
        if !ip && !domains.contains(&reg) {
            domains.push(reg);
        }
    }
    domains
}

/// Sender-name checks: brand claims and addresses hidden in display names.
pub fn check_sender(message: &Message, targets: &Targets, symbols: &mut Symbols) {
    let name = message.from_name.to_lowercase();
    if name.is_empty() {
        return;
    }
    let from_reg = registrable(message.from_domain());
    if let Some(at) = name.find('@') {
        let tail = &name[at + 1..];
        let dom: String = tail
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '.' || *c == '-')
            .collect();
        if dom.contains('.') && registrable(&dom) != from_reg {
            symbols.add("FROM_NAME_HAS_ADDRESS", &message.from_name);
        }
    }
    for (brand, domains) in &targets.brands {
        let claims = if brand.is_ascii() {
            name.split(|c: char| !c.is_alphanumeric() && c != ' ')
                .any(|part| part.trim() == brand.as_str())
                || name
                    .split(|c: char| !c.is_alphanumeric())
                    .any(|w| w == brand.as_str())
        } else {
            name.contains(brand.as_str())
        };
        if claims && !domains.iter().any(|d| registrable(d) == from_reg) {
            symbols.add(
                "FROM_BRAND_IMPERSONATION",
                format!("“{}” <{}>", message.from_name, message.from_addr),
            );
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(raw: &str) -> Symbols {
        let m = Message::parse(raw.as_bytes());
        let t = Targets::new(&[], &["example.com".into()]);
        let mut s = Symbols::default();
        check_links(&m, &t, &mut s);
        check_sender(&m, &t, &mut s);
        s
    }

    #[test]
    fn link_tricks() {
        let s = run("From: a@b.test\r\nContent-Type: text/html\r\n\r\n\
            <a href=\"http://evil.test/x\">www.icbc.com.cn</a>\
            <a href=\"http://198.51.100.7/login\">login</a>\
            <a href=\"https://www.paypal.com@evil.test/\">x</a>\
            <a href=\"https://xn--pypal-4ve.com/\">PayPal</a>\
            <a href=\"https://bit.ly/abc\">x</a>\
            <a href=\"https://examp1e.com/\">x</a>");
        for sym in [
            "URL_ANCHOR_MISMATCH",
            "URL_IP_LITERAL",
            "URL_USERINFO",
            "URL_PUNYCODE",
            "URL_LOOKALIKE",
            "URL_SHORTENER",
        ] {
            assert!(s.has(sym), "{sym} missing: {:?}", s.hits());
        }
    }

    #[test]
    fn honest_links_are_quiet() {
        let s = run(
            "From: \"PayPal\" <service@paypal.com>\r\nContent-Type: text/html\r\n\r\n\
            <a href=\"https://www.paypal.com/signin\">www.paypal.com</a> see https://example.com/x",
        );
        assert!(s.hits().is_empty(), "{:?}", s.hits());
    }

    #[test]
    fn brand_and_address_in_display_name() {
        let s = run("From: \"中国工商银行 客服\" <notice@icbc-notice.top>\r\n\r\nhi");
        assert!(s.has("FROM_BRAND_IMPERSONATION"));
        let s = run("From: \"boss@example.com\" <x@mailer.test>\r\n\r\nhi");
        assert!(s.has("FROM_NAME_HAS_ADDRESS"));
    }
}
