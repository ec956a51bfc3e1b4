//! STIX 2.1 indicators (OASIS STIX 2.1 §4.7, patterning §9): the part of the language a mail
//! gateway can act on — equality comparisons on file hashes, URLs, domain names, e-mail
//! addresses, Message-IDs and IP addresses, joined by `OR`. Anything else in a pattern (AND,
//! FOLLOWEDBY, qualifiers, other operators or objects) makes the indicator unusable here, and
//! it is reported as such rather than half-read.
//!
//! Bounded: a pattern of at most [`MAX_PATTERN`] bytes gives at most [`MAX_OBSERVABLES`]
//! observables; a bundle is read only up to [`MAX_OBJECTS`] objects.

use std::net::IpAddr;

use serde_json::Value;

/// Longest pattern read.
pub const MAX_PATTERN: usize = 4096;
/// Most observables one indicator yields.
pub const MAX_OBSERVABLES: usize = 64;
/// Most objects read from one bundle or TAXII page.
pub const MAX_OBJECTS: usize = 10_000;
/// Longest value (URL, address…) kept.
const MAX_VALUE: usize = 2048;

/// What an indicator points at, normalised the way the hunt index and the live checks compare.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Observable {
    /// An attachment's SHA-256, lower-case hex.
    Sha256(String),
    /// A web link, as [`crate::hunt::web_url`] keeps it.
    Url(String),
    /// A domain and every name below it, lower case.
    Domain(String),
    /// A sender address, lower case.
    Email(String),
    /// A Message-ID without angle brackets.
    MessageId(String),
    /// A client address or network (address, prefix length).
    Ip(IpAddr, u8),
}

impl Observable {
    /// Its kind as stored and shown: `sha256`, `url`, `domain`, `email`, `message_id`, `ip`.
    pub fn kind(&self) -> &'static str {
        match self {
            Observable::Sha256(_) => "sha256",
            Observable::Url(_) => "url",
            Observable::Domain(_) => "domain",
            Observable::Email(_) => "email",
            Observable::MessageId(_) => "message_id",
            Observable::Ip(..) => "ip",
        }
    }

    /// Its value as stored and shown (an IP network as `address/prefix`).
    pub fn value(&self) -> String {
        match self {
            Observable::Sha256(v)
            | Observable::Url(v)
            | Observable::Domain(v)
            | Observable::Email(v)
            | Observable::MessageId(v) => v.clone(),
            Observable::Ip(ip, prefix) => format!("{ip}/{prefix}"),
        }
    }

    /// The observable stored as `kind` and `value` (the inverse of [`Observable::kind`] and
    /// [`Observable::value`]).
    pub fn from_stored(kind: &str, value: &str) -> Option<Observable> {
        let path = match kind {
            "sha256" => "file:hashes.'SHA-256'",
            "url" => "url:value",
            "domain" => "domain-name:value",
            "email" => "email-addr:value",
            "message_id" => "email-message:message_id",
            "ip" if value.contains(':') => "ipv6-addr:value",
            "ip" => "ipv4-addr:value",
            _ => return None,
        };
        observable(path, value).ok()
    }
}

/// An indicator as read from STIX.
#[derive(Debug, Clone, PartialEq)]
pub struct Indicator {
    /// Its STIX id (`indicator--…`).
    pub id: String,
    /// Its name, or its pattern when unnamed (shortened).
    pub name: String,
    /// The pattern as written.
    pub pattern: String,
    /// `modified` (else `created`), Unix time: a newer version replaces an older.
    pub modified: i64,
    /// `valid_from`, Unix time.
    pub valid_from: i64,
    /// `valid_until`, Unix time: after it the indicator no longer counts.
    pub valid_until: Option<i64>,
    /// Withdrawn by its producer.
    pub revoked: bool,
    /// What it points at.
    pub observables: Vec<Observable>,
}

/// An object a bundle held that is not used, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    /// Its id, when it had one.
    pub id: String,
    /// Why it was not used.
    pub reason: String,
}

/// What one bundle (or TAXII envelope) gave.
#[derive(Debug, Default)]
pub struct Read {
    /// The indicators usable here.
    pub indicators: Vec<Indicator>,
    /// Indicators that were not.
    pub skipped: Vec<Skipped>,
    /// Objects of other types (identities, malware, relationships…), counted.
    pub other_objects: usize,
}

/// Reads the `objects` of a STIX bundle or a TAXII envelope.
pub fn read_objects(document: &Value) -> Result<Read, String> {
    let objects = match document.get("objects") {
        None | Some(Value::Null) => return Ok(Read::default()),
        Some(Value::Array(objects)) => objects,
        Some(_) => return Err("`objects` is not an array".into()),
    };
    if objects.len() > MAX_OBJECTS {
        return Err(format!(
            "{} objects: more than {MAX_OBJECTS} in one document",
            objects.len()
        ));
    }
    let mut read = Read::default();
    for object in objects {
        if object.get("type").and_then(Value::as_str) != Some("indicator") {
            read.other_objects += 1;
            continue;
        }
        match indicator(object) {
            Ok(i) => read.indicators.push(i),
            Err(reason) => read.skipped.push(Skipped {
                id: text(object, "id")
                    .unwrap_or_default()
                    .chars()
                    .take(128)
                    .collect(),
                reason,
            }),
        }
    }
    Ok(read)
}

fn text<'a>(object: &'a Value, field: &str) -> Option<&'a str> {
    object.get(field).and_then(Value::as_str)
}

fn timestamp(object: &Value, field: &str) -> Result<Option<i64>, String> {
    text(object, field)
        .map(|t| {
            chrono::DateTime::parse_from_rfc3339(t)
                .map(|t| t.timestamp())
                .map_err(|_| format!("`{field}` is not a STIX timestamp"))
        })
        .transpose()
}

/// One indicator object.
pub fn indicator(object: &Value) -> Result<Indicator, String> {
    let id = text(object, "id").ok_or("no id")?;
    if !id.starts_with("indicator--") || id.len() > 128 {
        return Err("the id is not an indicator's".into());
    }
    match text(object, "pattern_type") {
        Some("stix") => {}
        Some(other) => return Err(format!("pattern type `{other}` is not STIX")),
        None => return Err("no pattern_type".into()),
    }
    let pattern = text(object, "pattern").ok_or("no pattern")?;
    let observables = parse_pattern(pattern)?;
    let created = timestamp(object, "created")?.ok_or("no `created`")?;
    let modified = timestamp(object, "modified")?.unwrap_or(created);
    let valid_from = timestamp(object, "valid_from")?.unwrap_or(created);
    let valid_until = timestamp(object, "valid_until")?;
    let name = text(object, "name")
        .unwrap_or(pattern)
        .chars()
        .filter(|c| !c.is_control())
        .take(200)
        .collect();
    Ok(Indicator {
        id: id.to_owned(),
        name,
        pattern: pattern.to_owned(),
        modified,
        valid_from,
        valid_until,
        revoked: object.get("revoked").and_then(Value::as_bool) == Some(true),
        observables,
    })
}

#[derive(Debug, PartialEq)]
enum Token {
    Open,
    Close,
    Word(String),
    Path(String),
    Str(String),
    Equals,
}

/// The observables of a pattern such as
/// `[file:hashes.'SHA-256' = '…'] OR [url:value = '…' OR domain-name:value = '…']`.
pub fn parse_pattern(pattern: &str) -> Result<Vec<Observable>, String> {
    if pattern.len() > MAX_PATTERN {
        return Err(format!("pattern longer than {MAX_PATTERN} bytes"));
    }
    let tokens = tokenize(pattern)?;
    let mut out = Vec::new();
    let mut i = 0;
    let mut expect_expression = true;
    let mut depth = 0usize;
    while i < tokens.len() {
        match (&tokens[i], expect_expression) {
            (Token::Open, true) => {
                depth += 1;
                if depth > 1 {
                    return Err("nested observation expressions are not supported".into());
                }
                i += 1;
            }
            (Token::Path(path), true) if depth == 1 => {
                let (Some(Token::Equals), Some(Token::Str(value))) =
                    (tokens.get(i + 1), tokens.get(i + 2))
                else {
                    return Err(format!("only `{path} = '…'` comparisons are supported"));
                };
                let o = observable(path, value)?;
                if !out.contains(&o) {
                    if out.len() == MAX_OBSERVABLES {
                        return Err(format!("more than {MAX_OBSERVABLES} observables"));
                    }
                    out.push(o);
                }
                i += 3;
                expect_expression = false;
            }
            (Token::Close, false) if depth == 1 => {
                depth = 0;
                i += 1;
            }
            (Token::Word(w), false) if w.eq_ignore_ascii_case("or") => {
                expect_expression = true;
                i += 1;
            }
            (Token::Word(w), _) => {
                return Err(format!(
                    "`{}` is not supported: only OR of equality comparisons is",
                    w.chars().take(32).collect::<String>()
                ));
            }
            _ => return Err("malformed pattern".into()),
        }
    }
    if expect_expression || depth != 0 || out.is_empty() {
        return Err("malformed pattern".into());
    }
    Ok(out)
}

fn tokenize(pattern: &str) -> Result<Vec<Token>, String> {
    let mut tokens = Vec::new();
    let mut chars = pattern.char_indices().peekable();
    while let Some((at, c)) = chars.next() {
        match c {
            c if c.is_whitespace() => {}
            '[' => tokens.push(Token::Open),
            ']' => tokens.push(Token::Close),
            '=' => tokens.push(Token::Equals),
            '\'' => {
                let mut s = String::new();
                loop {
                    match chars.next() {
                        Some((_, '\\')) => match chars.next() {
                            Some((_, e @ ('\'' | '\\'))) => s.push(e),
                            _ => return Err("bad escape in a string".into()),
                        },
                        Some((_, '\'')) => break,
                        Some((_, c)) => s.push(c),
                        None => return Err("unterminated string".into()),
                    }
                }
                tokens.push(Token::Str(s));
            }
            c if c.is_ascii_alphanumeric() || c == '_' || c == '-' => {
                // A word, or an object path `type:prop.'quoted'.prop`.
                let mut end = at + c.len_utf8();
                let mut quoted = false;
                while let Some(&(i, n)) = chars.peek() {
                    let part = n.is_ascii_alphanumeric() || "_-:.".contains(n) || quoted;
                    if n == '\'' && pattern[at..i].ends_with('.') && !quoted {
                        quoted = true;
                    } else if n == '\'' && quoted {
                        quoted = false;
                    } else if !part {
                        break;
                    }
                    end = i + n.len_utf8();
                    chars.next();
                }
                if quoted {
                    return Err("unterminated quoted path".into());
                }
                let word = &pattern[at..end];
                if word.contains(':') {
                    tokens.push(Token::Path(word.to_owned()));
                } else {
                    tokens.push(Token::Word(word.to_owned()));
                }
            }
            other => {
                return Err(format!(
                    "`{other}` is not supported: only OR of equality comparisons is"
                ));
            }
        }
    }
    Ok(tokens)
}

/// The observable `path = 'value'` names.
fn observable(path: &str, value: &str) -> Result<Observable, String> {
    if value.len() > MAX_VALUE || value.chars().any(char::is_control) {
        return Err(format!("value for {path} too long or not printable"));
    }
    let bad = |what: &str| Err(format!("`{value}` is not {what}"));
    match path {
        "file:hashes.'SHA-256'"
        | "file:hashes.SHA256"
        | "file:hashes.'SHA256'"
        | "artifact:hashes.'SHA-256'" => {
            if value.len() == 64 && value.bytes().all(|b| b.is_ascii_hexdigit()) {
                Ok(Observable::Sha256(value.to_ascii_lowercase()))
            } else {
                bad("a SHA-256")
            }
        }
        "url:value" => match crate::hunt::web_url(value) {
            Some((url, _)) => Ok(Observable::Url(url)),
            None => bad("an http(s) URL"),
        },
        "domain-name:value" => {
            let d = value.trim_end_matches('.').to_ascii_lowercase();
            let valid = !d.is_empty()
                && d.len() <= 253
                && d.split('.').all(|l| {
                    !l.is_empty()
                        && l.len() <= 63
                        && l.bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
                });
            if valid {
                Ok(Observable::Domain(d))
            } else {
                bad("a domain name")
            }
        }
        "email-addr:value" | "email-message:from_ref.value" | "email-message:sender_ref.value" => {
            match value.rsplit_once('@') {
                Some((local, domain)) if !local.is_empty() && !domain.is_empty() => {
                    Ok(Observable::Email(value.to_ascii_lowercase()))
                }
                _ => bad("an e-mail address"),
            }
        }
        "email-message:message_id" => {
            let id = value.trim().trim_start_matches('<').trim_end_matches('>');
            if id.is_empty() {
                bad("a Message-ID")
            } else {
                Ok(Observable::MessageId(id.to_owned()))
            }
        }
        "ipv4-addr:value" | "ipv6-addr:value" => {
            let (ip, prefix) = match value.split_once('/') {
                Some((ip, p)) => (ip, Some(p)),
                None => (value, None),
            };
            let Ok(ip) = ip.parse::<IpAddr>() else {
                return bad("an IP address");
            };
            let full = if ip.is_ipv4() { 32 } else { 128 };
            let prefix = match prefix.map(str::parse::<u8>) {
                None => full,
                Some(Ok(p)) if p <= full => p,
                Some(_) => return bad("an IP network"),
            };
            if ip.is_ipv4() != path.starts_with("ipv4") {
                return bad("of the address family its object says");
            }
            Ok(Observable::Ip(network(ip, prefix), prefix))
        }
        other => Err(format!(
            "`{}` is not something mail carries",
            other.chars().take(64).collect::<String>()
        )),
    }
}

/// `ip` with the bits past `prefix` cleared.
pub fn network(ip: IpAddr, prefix: u8) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
            IpAddr::V4((u32::from(v4) & mask).into())
        }
        IpAddr::V6(v6) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
            IpAddr::V6((u128::from(v6) & mask).into())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HASH: &str = "2CF24DBA5FB0A30E26E83B2AC5B9E29E1B161E5C1FA7425E73043362938B9824";

    #[test]
    fn disjunctions_of_supported_comparisons_give_their_observables() {
        let got = parse_pattern(&format!(
            "[file:hashes.'SHA-256' = '{HASH}'] OR [url:value = 'HTTPS://Evil.TEST/a#x' OR \
             domain-name:value = 'Evil.test.'] or [email-message:from_ref.value = 'Boss@Evil.Test'] \
             OR [ipv4-addr:value = '198.51.100.77/24'] OR [email-message:message_id = '<a@b>']"
        ))
        .unwrap();
        assert_eq!(
            got,
            [
                Observable::Sha256(HASH.to_ascii_lowercase()),
                Observable::Url("https://evil.test/a".into()),
                Observable::Domain("evil.test".into()),
                Observable::Email("boss@evil.test".into()),
                Observable::Ip("198.51.100.0".parse().unwrap(), 24),
                Observable::MessageId("a@b".into()),
            ]
        );
        for o in &got {
            assert_eq!(
                Observable::from_stored(o.kind(), &o.value()).as_ref(),
                Some(o)
            );
        }
    }

    #[test]
    fn what_cannot_be_acted_on_alone_is_refused_not_half_read() {
        for pattern in [
            "[file:hashes.'SHA-256' = 'abc']",
            "[url:value = 'ftp://x.test/']",
            "[file:name = 'a.exe']",
            "[domain-name:value = 'a.test' AND url:value = 'http://b.test/']",
            "[domain-name:value = 'a.test'] FOLLOWEDBY [domain-name:value = 'b.test']",
            "[domain-name:value = 'a.test'] WITHIN 5 SECONDS",
            "[domain-name:value != 'a.test']",
            "[domain-name:value LIKE 'a%']",
            "[domain-name:value = 'a.test'",
            "domain-name:value = 'a.test'",
            "[[domain-name:value = 'a.test']]",
            "[domain-name:value = 'a.test' OR]",
            "[ipv4-addr:value = '2001:db8::1']",
            "[ipv4-addr:value = '10.0.0.0/33']",
            "[domain-name:value = 'unterminated]",
            "",
        ] {
            assert!(parse_pattern(pattern).is_err(), "{pattern} was accepted");
        }
    }

    #[test]
    fn a_pattern_is_bounded_in_length_and_observables() {
        let long = format!("[domain-name:value = '{}']", "a".repeat(MAX_PATTERN));
        assert!(parse_pattern(&long).unwrap_err().contains("longer"));
        let many: Vec<String> = (0..=MAX_OBSERVABLES)
            .map(|i| format!("[domain-name:value = 'd{i}.test']"))
            .collect();
        assert!(
            parse_pattern(&many.join(" OR "))
                .unwrap_err()
                .contains("more than")
        );
    }

    #[test]
    fn a_bundle_gives_its_indicators_and_says_why_others_were_skipped() {
        let bundle = serde_json::json!({
            "type": "bundle", "id": "bundle--1",
            "objects": [
                {"type": "identity", "id": "identity--1", "name": "CERT"},
                {"type": "indicator", "id": "indicator--1", "spec_version": "2.1",
                 "created": "2026-12-01T00:00:00Z", "modified": "2026-12-02T00:00:00.000Z",
                 "valid_from": "2026-12-01T00:00:00Z", "valid_until": "2027-01-01T00:00:00Z",
                 "name": "Invoice dropper", "pattern_type": "stix",
                 "pattern": format!("[file:hashes.'SHA-256' = '{HASH}']")},
                {"type": "indicator", "id": "indicator--2", "created": "2026-12-01T00:00:00Z",
                 "pattern_type": "snort", "pattern": "alert tcp any any"},
                {"type": "indicator", "id": "indicator--3", "created": "2026-12-01T00:00:00Z",
                 "pattern_type": "stix", "pattern": "[process:name = 'x']", "revoked": true},
                {"type": "indicator", "id": "indicator--4", "created": "yesterday",
                 "pattern_type": "stix", "pattern": "[domain-name:value = 'a.test']"}
            ]
        });
        let read = read_objects(&bundle).unwrap();
        assert_eq!(read.other_objects, 1);
        assert_eq!(read.indicators.len(), 1);
        let i = &read.indicators[0];
        assert_eq!(
            (i.id.as_str(), i.name.as_str(), i.revoked),
            ("indicator--1", "Invoice dropper", false)
        );
        assert_eq!(i.modified - i.valid_from, 86_400);
        assert_eq!(i.valid_until, Some(1_798_761_600));
        let skipped: Vec<&str> = read.skipped.iter().map(|s| s.id.as_str()).collect();
        assert_eq!(skipped, ["indicator--2", "indicator--3", "indicator--4"]);
        assert!(read_objects(&serde_json::json!({"objects": 3})).is_err());
        assert_eq!(
            read_objects(&serde_json::json!({}))
                .unwrap()
                .indicators
                .len(),
            0
        );
    }
}
