//! Rewriting the web links of a message's readable parts (HTML and plain text, never
//! attachments or forwarded messages) to the gateway's link service. HTML keeps its visible
//! text: only `href` values change. Each rewritten part is re-encoded as UTF-8 in base64; the
//! rest of the message is left byte for byte. Linear in the message's size and bounded: big
//! messages, too many parts or links are left alone (beyond the bound, unchanged).

use base64::Engine;
use mail_parser::{MessageParser, PartType};

/// Largest message rewritten.
pub const MAX_MESSAGE: usize = 16 * 1024 * 1024;
/// Most readable parts rewritten.
const MAX_PARTS: usize = 64;
/// Most links rewritten in one message.
const MAX_LINKS: usize = 1000;
/// Longest URL rewritten.
const MAX_URL: usize = 2048;

/// `message` with the web links `replace` gives a new address for rewritten; None when no
/// link was (or the message is beyond the bounds).
pub fn rewrite(message: &[u8], replace: &mut dyn FnMut(&str) -> Option<String>) -> Option<Vec<u8>> {
    Plan::of(message)?.apply(message, replace)
}

/// A readable part to rewrite: where it is and what it says.
struct Readable {
    start: usize,
    end: usize,
    /// Its header, without the content fields, with the new ones.
    header: Vec<u8>,
    text: String,
    html: bool,
}

/// A message read once for rewriting, so that each recipient's copy costs one pass over its
/// text, not another parse.
pub struct Plan {
    parts: Vec<Readable>,
}

impl Plan {
    /// The readable parts of `message`; None when it has none (or is beyond the bounds).
    pub fn of(message: &[u8]) -> Option<Plan> {
        if message.len() > MAX_MESSAGE {
            return None;
        }
        let parsed = MessageParser::default().parse(message)?;
        let mut readable: Vec<usize> = parsed
            .text_body
            .iter()
            .chain(parsed.html_body.iter())
            .map(|&i| i as usize)
            .collect();
        readable.sort_unstable();
        readable.dedup();
        let mut parts = Vec::new();
        for i in readable.into_iter().take(MAX_PARTS) {
            let Some(part) = parsed.parts.get(i) else {
                continue;
            };
            let (text, html) = match &part.body {
                PartType::Text(t) => (t, false),
                PartType::Html(h) => (h, true),
                _ => continue,
            };
            let (start, body, end) = (
                part.offset_header as usize,
                part.offset_body as usize,
                part.offset_end as usize,
            );
            let Some(original) = message.get(start..body) else {
                continue;
            };
            let mut header = strip_content_fields(original);
            if i == 0 && !has_field(original, b"mime-version") {
                header.extend_from_slice(b"MIME-Version: 1.0\r\n");
            }
            let subtype = if html { "html" } else { "plain" };
            header.extend_from_slice(
                format!(
                    "Content-Type: text/{subtype}; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n"
                )
                .as_bytes(),
            );
            parts.push(Readable {
                start,
                end: end.max(body),
                header,
                text: text.to_string(),
                html,
            });
        }
        parts.sort_by_key(|p| p.start);
        (!parts.is_empty()).then_some(Plan { parts })
    }

    /// `message` (the one planned) with the links `replace` gives an address for rewritten;
    /// None when none was.
    pub fn apply(
        &self,
        message: &[u8],
        replace: &mut dyn FnMut(&str) -> Option<String>,
    ) -> Option<Vec<u8>> {
        // Links in document order (the budget goes to the first); parts spliced from the end,
        // so that earlier offsets stay true (parts do not overlap).
        let mut budget = MAX_LINKS;
        let mut edits = Vec::new();
        for p in &self.parts {
            let rewritten = if p.html {
                rewrite_html(&p.text, replace, &mut budget)
            } else {
                rewrite_text(&p.text, replace, &mut budget)
            };
            if let Some(rewritten) = rewritten {
                edits.push((p, rewritten));
            }
        }
        if edits.is_empty() {
            return None;
        }
        let mut out = message.to_vec();
        for (p, rewritten) in edits.into_iter().rev() {
            if p.start <= p.end && p.end <= out.len() {
                let mut replacement = p.header.clone();
                replacement.extend_from_slice(&base64_lines(rewritten.as_bytes()));
                out.splice(p.start..p.end, replacement);
            }
        }
        Some(out)
    }
}

/// The header block without its Content-Type and Content-Transfer-Encoding fields (folded
/// lines included); it ends with a line break.
fn strip_content_fields(header: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(header.len());
    let mut dropping = false;
    for line in header.split_inclusive(|&b| b == b'\n') {
        let bare = line.strip_suffix(b"\n").unwrap_or(line);
        let bare = bare.strip_suffix(b"\r").unwrap_or(bare);
        if bare.is_empty() {
            // The blank line ending the header: written again by the caller.
            break;
        }
        let continuation = matches!(line.first(), Some(b' ' | b'\t'));
        if !continuation {
            dropping = starts_with_field(bare, b"content-type")
                || starts_with_field(bare, b"content-transfer-encoding");
        }
        if !dropping {
            out.extend_from_slice(bare);
            out.extend_from_slice(b"\r\n");
        }
    }
    out
}

fn starts_with_field(line: &[u8], name: &[u8]) -> bool {
    line.len() > name.len()
        && line[..name.len()].eq_ignore_ascii_case(name)
        && line[name.len()..]
            .iter()
            .find(|b| !b.is_ascii_whitespace())
            .is_some_and(|&b| b == b':')
}

fn has_field(header: &[u8], name: &[u8]) -> bool {
    header
        .split(|&b| b == b'\n')
        .any(|line| starts_with_field(line, name))
}

fn base64_lines(data: &[u8]) -> Vec<u8> {
    let encoded = base64::engine::general_purpose::STANDARD.encode(data);
    let mut out = Vec::with_capacity(encoded.len() + encoded.len() / 76 * 2 + 2);
    for chunk in encoded.as_bytes().chunks(76) {
        out.extend_from_slice(chunk);
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// Whether `url` is a web link.
fn is_web(url: &str) -> bool {
    let lower = url.get(..8).unwrap_or(url).to_ascii_lowercase();
    lower.starts_with("http://") || lower.starts_with("https://")
}

/// The HTML with the `href` of every `<a>` and `<area>` that is a web link replaced; None when
/// none was.
fn rewrite_html(
    html: &str,
    replace: &mut dyn FnMut(&str) -> Option<String>,
    budget: &mut usize,
) -> Option<String> {
    let bytes = html.as_bytes();
    let mut out = String::with_capacity(html.len() + html.len() / 4);
    let mut copied = 0;
    let mut changed = false;
    let mut i = 0;
    while let Some(off) = bytes[i..].iter().position(|&b| b == b'<') {
        let tag_start = i + off;
        // The tag's name.
        let name_end = bytes[tag_start + 1..]
            .iter()
            .position(|b| !b.is_ascii_alphanumeric())
            .map_or(bytes.len(), |p| tag_start + 1 + p);
        let name = &html[tag_start + 1..name_end];
        let is_link = name.eq_ignore_ascii_case("a") || name.eq_ignore_ascii_case("area");
        // Its attributes run to the next `>` outside quotes.
        let mut j = name_end;
        let mut quote: Option<u8> = None;
        while j < bytes.len() {
            match (quote, bytes[j]) {
                (None, b'>') => break,
                (None, q @ (b'"' | b'\'')) => quote = Some(q),
                (Some(q), b) if b == q => quote = None,
                _ => {}
            }
            j += 1;
        }
        if is_link
            && *budget > 0
            && let Some((value_start, value_end, quoted)) = href_value(html, name_end, j)
        {
            let raw = &html[value_start..value_end];
            let url = decode_entities(raw.trim());
            if is_web(&url)
                && url.len() <= MAX_URL
                && let Some(new) = replace(&url)
            {
                *budget -= 1;
                changed = true;
                out.push_str(&html[copied..value_start]);
                if quoted {
                    out.push_str(&escape_attribute(&new));
                } else {
                    out.push('"');
                    out.push_str(&escape_attribute(&new));
                    out.push('"');
                }
                copied = value_end;
            }
        }
        i = j.min(bytes.len());
        if i >= bytes.len() {
            break;
        }
    }
    if !changed {
        return None;
    }
    out.push_str(&html[copied..]);
    Some(out)
}

/// Where the value of the `href` attribute is between `from` and `to` (inside a tag), without
/// its quotes, and whether it had any.
fn href_value(html: &str, from: usize, to: usize) -> Option<(usize, usize, bool)> {
    let bytes = html.as_bytes();
    let mut k = from;
    while k < to {
        // Skip to an attribute name.
        while k < to && (bytes[k].is_ascii_whitespace() || bytes[k] == b'/') {
            k += 1;
        }
        let name_start = k;
        while k < to && !bytes[k].is_ascii_whitespace() && bytes[k] != b'=' && bytes[k] != b'>' {
            k += 1;
        }
        let name = &html[name_start..k];
        while k < to && bytes[k].is_ascii_whitespace() {
            k += 1;
        }
        if k >= to || bytes[k] != b'=' {
            if k == name_start {
                k += 1;
            }
            continue;
        }
        k += 1;
        while k < to && bytes[k].is_ascii_whitespace() {
            k += 1;
        }
        let (start, end, quoted) = match bytes.get(k) {
            Some(&q @ (b'"' | b'\'')) => {
                let start = k + 1;
                let end = bytes[start..to]
                    .iter()
                    .position(|&b| b == q)
                    .map_or(to, |p| start + p);
                (start, end, true)
            }
            _ => {
                let start = k;
                let end = bytes[start..to]
                    .iter()
                    .position(|b| b.is_ascii_whitespace())
                    .map_or(to, |p| start + p);
                (start, end, false)
            }
        };
        if name.eq_ignore_ascii_case("href") {
            return Some((start, end, quoted));
        }
        k = end + 1;
    }
    None
}

/// The few entities an `href` uses.
fn decode_entities(s: &str) -> String {
    if !s.contains('&') {
        return s.to_owned();
    }
    s.replace("&amp;", "&")
        .replace("&#38;", "&")
        .replace("&quot;", "\"")
        .replace("&#x2F;", "/")
        .replace("&#47;", "/")
}

fn escape_attribute(s: &str) -> String {
    s.replace('&', "&amp;").replace('"', "&quot;")
}

/// The text with every bare web address replaced; None when none was.
fn rewrite_text(
    text: &str,
    replace: &mut dyn FnMut(&str) -> Option<String>,
    budget: &mut usize,
) -> Option<String> {
    let lower = text.to_ascii_lowercase();
    let mut out = String::with_capacity(text.len() + text.len() / 4);
    let mut copied = 0;
    let mut changed = false;
    let mut i = 0;
    while *budget > 0 {
        let Some(off) = lower[i..].find("http") else {
            break;
        };
        let start = i + off;
        let rest = &lower[start..];
        if !(rest.starts_with("http://") || rest.starts_with("https://")) {
            i = start + 4;
            continue;
        }
        let mut end = text[start..]
            .find(|c: char| c.is_whitespace() || "<>\"'`".contains(c))
            .map_or(text.len(), |p| start + p);
        // Sentence punctuation after an address is not part of it.
        while end > start && text[..end].ends_with(['.', ',', ';', ':', '!', '?', ')', ']']) {
            end -= 1;
        }
        let url = &text[start..end];
        if url.len() <= MAX_URL
            && let Some(new) = replace(url)
        {
            *budget -= 1;
            changed = true;
            out.push_str(&text[copied..start]);
            out.push_str(&new);
            copied = end;
        }
        i = end.max(start + 4);
    }
    if !changed {
        return None;
    }
    out.push_str(&text[copied..]);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn protect(url: &str) -> Option<String> {
        (!url.contains("trusted.test")).then(|| format!("https://gw.test/l/{}", url.len()))
    }

    fn decoded(message: &[u8]) -> String {
        let m = MessageParser::default().parse(message).unwrap();
        let mut all = String::new();
        let mut parts: Vec<u32> = m
            .text_body
            .iter()
            .chain(m.html_body.iter())
            .copied()
            .collect();
        parts.sort_unstable();
        parts.dedup();
        for i in &parts {
            match &m.parts[*i as usize].body {
                PartType::Text(t) | PartType::Html(t) => all.push_str(t),
                _ => {}
            }
        }
        all
    }

    #[test]
    fn links_in_html_and_text_parts_are_rewritten_and_the_rest_is_kept() {
        let raw = b"From: a@b.test\r\nSubject: hi\r\nMIME-Version: 1.0\r\n\
            Content-Type: multipart/mixed; boundary=\"x\"\r\n\r\n\
            --x\r\nContent-Type: multipart/alternative; boundary=\"y\"\r\n\r\n\
            --y\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n\
            Log in at https://bank.evil.test/login. Or see https://docs.trusted.test/a\r\n\
            --y\r\nContent-Type: text/html; charset=iso-8859-1\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n\
            <p><A title=3D\"x\" HREF=3D\"https://bank.evil.test/login?a=3D1&amp;b=3D2\">Your bank</A>\r\n\
            <a href=3Dhttp://plain.evil.test/x>x</a> <a href=3D\"mailto:a@b.test\">m</a>\r\n\
            <a href=3D\"https://docs.trusted.test/\">docs</a></p>\r\n\
            --y--\r\n\
            --x\r\nContent-Type: text/plain; name=notes.txt\r\nContent-Disposition: attachment\r\n\r\n\
            attached https://bank.evil.test/in-attachment\r\n\
            --x--\r\n";
        let mut seen = Vec::new();
        let out = rewrite(raw, &mut |u| {
            seen.push(u.to_owned());
            protect(u)
        })
        .unwrap();
        assert_eq!(
            seen,
            [
                "https://bank.evil.test/login",
                "https://docs.trusted.test/a",
                "https://bank.evil.test/login?a=1&b=2",
                "http://plain.evil.test/x",
                "https://docs.trusted.test/",
            ]
        );
        let text = decoded(&out);
        assert!(
            text.contains("Log in at https://gw.test/l/28. Or see https://docs.trusted.test/a"),
            "{text}"
        );
        assert!(
            text.contains("<A title=\"x\" HREF=\"https://gw.test/l/36\">Your bank</A>"),
            "{text}"
        );
        assert!(
            text.contains("<a href=\"https://gw.test/l/24\">x</a>"),
            "{text}"
        );
        assert!(text.contains("href=\"mailto:a@b.test\""));
        assert!(text.contains("href=\"https://docs.trusted.test/\""));
        let out = String::from_utf8(out).unwrap();
        assert!(
            out.contains("attached https://bank.evil.test/in-attachment"),
            "attachments are left alone"
        );
        assert!(out.starts_with("From: a@b.test\r\nSubject: hi\r\n"));
        assert_eq!(out.matches("Content-Transfer-Encoding: base64").count(), 2);
        assert!(!out.contains("iso-8859-1") && !out.contains("quoted-printable"));
        // What the client shows: the same parts, the same attachment.
        let m = MessageParser::default().parse(out.as_bytes()).unwrap();
        assert_eq!(m.attachments.len(), 1);
    }

    #[test]
    fn a_single_part_message_gets_its_content_fields_replaced() {
        let raw =
            b"From: a@b.test\r\nContent-Type: text/plain;\r\n charset=gbk\r\nSubject: s\r\n\r\n\
            \xb5\xc7\xc2\xbc https://evil.test/x\r\n";
        let out = rewrite(raw, &mut protect).unwrap();
        let out_text = String::from_utf8_lossy(&out).into_owned();
        assert!(out_text.starts_with("From: a@b.test\r\nSubject: s\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n"), "{out_text}");
        assert!(!out_text.contains("gbk"));
        assert_eq!(decoded(&out).trim_end(), "登录 https://gw.test/l/19");
    }

    #[test]
    fn nothing_to_rewrite_gives_nothing_and_bounds_hold() {
        assert!(rewrite(b"Subject: x\r\n\r\nno links here\r\n", &mut protect).is_none());
        assert!(
            rewrite(
                b"Subject: x\r\n\r\nhttps://docs.trusted.test/\r\n",
                &mut protect
            )
            .is_none()
        );
        let mut many = String::from("Subject: x\r\n\r\n");
        for i in 0..MAX_LINKS + 10 {
            many.push_str(&format!("https://e{i}.test/ "));
        }
        let mut n = 0;
        rewrite(many.as_bytes(), &mut |u| {
            n += 1;
            protect(u)
        })
        .unwrap();
        assert_eq!(n, MAX_LINKS);
        // An unclosed tag or quote ends the scan without harm.
        assert!(
            rewrite(
                b"Content-Type: text/html\r\n\r\n<a href=\"https://e.test/",
                &mut protect
            )
            .is_some()
        );
        assert!(rewrite(b"Content-Type: text/html\r\n\r\n<a", &mut protect).is_none());
    }
}
