//! The message as every check sees it, parsed once: decoded headers, visible text (plain and
//! HTML, any charset), links with their anchor text, and attachments with their bytes. Parsing
//! is bounded; whatever looks broken is recorded in [`Message::anomalies`] instead of failing.

use std::borrow::Cow;
use std::sync::LazyLock;

use mail_parser::{Encoding, HeaderName, MessageParser, MimeHeaders, PartType};

use super::html::{self, Link};
use super::search::NextMatch;

/// Most header fields kept.
const MAX_HEADERS: usize = 512;
/// Most MIME parts looked at.
const MAX_PARTS: usize = 512;
/// Most visible text kept, in bytes.
const MAX_TEXT: usize = 512 * 1024;
/// Most links kept.
const MAX_LINKS: usize = 512;
/// Deepest nesting of attached messages that is read.
const MAX_DEPTH: usize = 3;

/// One attachment (or inline non-text part).
#[derive(Debug, Clone)]
pub struct Attachment {
    /// File name as declared (decoded), empty when none.
    pub name: String,
    /// Declared MIME type, lower case (`application/pdf`).
    pub declared_type: String,
    /// Decoded content.
    pub data: Vec<u8>,
}

/// A parsed message view shared by all checks.
#[derive(Debug, Default, Clone)]
pub struct Message {
    /// Header fields in order: lower-case name and value (unfolded, encoded words decoded).
    pub headers: Vec<(String, String)>,
    /// Decoded `Subject`.
    pub subject: String,
    /// Display name of the first `From` address.
    pub from_name: String,
    /// Address of the first `From` address, lower case.
    pub from_addr: String,
    /// Address of the first `Reply-To`, lower case, empty when absent.
    pub reply_to: String,
    /// Visible text of all text parts (plain text and rendered HTML), in order.
    pub text: String,
    /// Links from HTML anchors and bare URLs in text.
    pub links: Vec<Link>,
    /// Attachments and inline binary parts.
    pub attachments: Vec<Attachment>,
    /// HTML bodies seen, merged.
    pub html: html::HtmlView,
    /// Some part was HTML.
    pub has_html: bool,
    /// Some part was plain text.
    pub has_plain: bool,
    /// Names of structural problems (`MIME_MALFORMED`, `CHARSET_UNDECLARED_8BIT`, …).
    pub anomalies: Vec<&'static str>,
    /// Size of the raw message in bytes.
    pub size: usize,
}

/// Parses only the header fields the view reads structured (the MIME ones, Subject, From,
/// Reply-To); the rest are kept raw, as the view decodes them itself. Parsing every `Received`,
/// `To` or `Date` field into structures nothing reads was work for nothing on every message
/// (`benches/model` measures the parse).
static PARSER: LazyLock<MessageParser> = LazyLock::new(|| {
    MessageParser::new()
        .with_mime_headers()
        .header_text(HeaderName::Subject)
        .header_address(HeaderName::From)
        .header_address(HeaderName::ReplyTo)
        .default_header_raw()
});

impl Message {
    /// Parses raw message bytes. Never fails: unparseable input gives a view with anomalies.
    pub fn parse(raw: &[u8]) -> Self {
        let mut view = Message {
            size: raw.len(),
            ..Default::default()
        };
        let Some(parsed) = PARSER.parse(raw) else {
            view.anomaly("MIME_MALFORMED");
            view.text = decode_unlabelled(raw).chars().take(MAX_TEXT).collect();
            view.collect_text_urls();
            return view;
        };
        if parsed.headers().is_empty() {
            view.anomaly("MIME_MALFORMED");
        }
        view.read_headers(&parsed, raw);
        let mut parts_seen = 0;
        view.read_parts(&parsed, 0, &mut parts_seen);
        view.collect_text_urls();
        view
    }

    /// The first header field `name` (lower case), if present.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Every value of header field `name` (lower case).
    pub fn header_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.headers
            .iter()
            .filter(move |(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Domain of the `From` address, lower case.
    pub fn from_domain(&self) -> &str {
        domain_of(&self.from_addr)
    }

    fn anomaly(&mut self, name: &'static str) {
        if !self.anomalies.contains(&name) {
            self.anomalies.push(name);
        }
    }

    fn read_headers(&mut self, parsed: &mail_parser::Message<'_>, raw: &[u8]) {
        let headers = parsed.headers();
        if headers.len() > MAX_HEADERS {
            self.anomaly("HEADERS_TOO_MANY");
        }
        for h in headers.iter().take(MAX_HEADERS) {
            let start = h.offset_start as usize;
            let end = (h.offset_end as usize).min(raw.len());
            let bytes = raw.get(start..end).unwrap_or_default();
            let value = unfold(&decode_header_bytes(bytes, self));
            self.headers
                .push((h.name.as_str().to_ascii_lowercase(), value));
        }
        self.subject = match parsed.subject() {
            Some(s) if s.contains('\u{fffd}') => self.header("subject").unwrap_or(s).to_owned(),
            Some(s) => s.to_owned(),
            None => String::new(),
        };
        if let Some(from) = parsed.from().and_then(|a| a.first()) {
            self.from_name = from.name().unwrap_or_default().trim().to_owned();
            self.from_addr = from.address().unwrap_or_default().trim().to_lowercase();
        }
        if self.from_addr.is_empty() && self.header("from").is_some() {
            self.anomaly("FROM_UNPARSEABLE");
        }
        if parsed.from().is_some_and(|a| a.iter().count() > 1) {
            self.anomaly("FROM_MULTIPLE");
        }
        if let Some(rt) = parsed.reply_to().and_then(|a| a.first()) {
            self.reply_to = rt.address().unwrap_or_default().trim().to_lowercase();
        }
    }

    fn read_parts(&mut self, parsed: &mail_parser::Message<'_>, depth: usize, seen: &mut usize) {
        let raw = parsed.raw_message();
        for part in &parsed.parts {
            *seen += 1;
            if *seen > MAX_PARTS {
                self.anomaly("MIME_TOO_MANY_PARTS");
                return;
            }
            if part.is_encoding_problem {
                self.anomaly("MIME_BAD_ENCODING");
            }
            let is_attachment = part
                .content_disposition()
                .is_some_and(|d| d.ctype().eq_ignore_ascii_case("attachment"))
                || part.attachment_name().is_some();
            match &part.body {
                PartType::Text(text) if !is_attachment => {
                    self.has_plain = true;
                    let text = self.redecode(part, text, raw);
                    self.push_text(&text);
                }
                PartType::Html(text) if !is_attachment => {
                    self.has_html = true;
                    let text = self.redecode(part, text, raw);
                    let view = html::scan(&text);
                    self.push_text(&view.text);
                    self.merge_html(view);
                }
                PartType::Text(text) | PartType::Html(text) => {
                    if matches!(part.body, PartType::Html(_)) {
                        // An HTML attachment renders locally: its forms and scripts matter.
                        self.merge_html(html::scan(text));
                    }
                    self.push_attachment(part, text.as_bytes().to_vec());
                }
                PartType::Binary(data) | PartType::InlineBinary(data) => {
                    self.push_attachment(part, data.to_vec());
                }
                PartType::Message(inner) => {
                    if depth + 1 >= MAX_DEPTH {
                        self.anomaly("MIME_TOO_DEEP");
                        continue;
                    }
                    self.push_attachment(part, inner.raw_message().to_vec());
                    self.read_parts(inner, depth + 1, seen);
                }
                PartType::Multipart(_) => {}
            }
        }
    }

    /// Text whose part declared no charset but is not UTF-8 is read as GB18030, the superset of
    /// the encodings undeclared Chinese mail uses.
    fn redecode<'a>(
        &mut self,
        part: &mail_parser::MessagePart<'_>,
        text: &'a str,
        raw: &[u8],
    ) -> Cow<'a, str> {
        let declared = part
            .content_type()
            .and_then(|ct| ct.attribute("charset"))
            .is_some();
        if declared || !text.contains('\u{fffd}') {
            return Cow::Borrowed(text);
        }
        let start = part.offset_body as usize;
        let end = (part.offset_end as usize).min(raw.len());
        let Some(body) = raw.get(start..end) else {
            return Cow::Borrowed(text);
        };
        let bytes = match part.encoding {
            Encoding::None => Some(body.to_vec()),
            Encoding::QuotedPrintable => {
                mail_parser::decoders::quoted_printable::quoted_printable_decode(body)
            }
            Encoding::Base64 => mail_parser::decoders::base64::base64_decode(body),
        };
        match bytes {
            Some(b) => {
                self.anomaly("CHARSET_UNDECLARED_8BIT");
                Cow::Owned(decode_unlabelled(&b).into_owned())
            }
            None => Cow::Borrowed(text),
        }
    }

    fn push_text(&mut self, text: &str) {
        if self.text.len() >= MAX_TEXT {
            return;
        }
        if !self.text.is_empty() {
            self.text.push('\n');
        }
        let room = MAX_TEXT - self.text.len();
        let mut cut = text.len().min(room);
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        self.text.push_str(&text[..cut]);
    }

    fn merge_html(&mut self, view: html::HtmlView) {
        for link in view.links {
            if self.links.len() < MAX_LINKS {
                self.links.push(link);
            }
        }
        let h = &mut self.html;
        h.form_actions.extend(view.form_actions);
        h.password_input |= view.password_input;
        h.script |= view.script;
        h.smuggling |= view.smuggling;
        h.meta_refresh |= view.meta_refresh;
        h.hidden_text |= view.hidden_text;
        h.embedded |= view.embedded;
        h.images += view.images;
    }

    fn push_attachment(&mut self, part: &mail_parser::MessagePart<'_>, data: Vec<u8>) {
        let name = part.attachment_name().unwrap_or_default().to_owned();
        let declared_type = part
            .content_type()
            .map(|ct| match ct.subtype() {
                Some(sub) => format!("{}/{}", ct.ctype(), sub),
                None => ct.ctype().to_owned(),
            })
            .unwrap_or_default()
            .to_ascii_lowercase();
        self.attachments.push(Attachment {
            name,
            declared_type,
            data,
        });
    }

    /// Adds bare `http(s)://` and `www.` URLs from the visible text, skipping ones already known.
    fn collect_text_urls(&mut self) {
        let text = &self.text;
        let mut found = Vec::new();
        let lower = text.to_ascii_lowercase();
        // Where each URL start comes next; a position is searched again only once passed, so
        // the text is read once per needle however many URLs it holds.
        let mut next = URL_STARTS.map(|n| lower.find(n));
        while let Some(start) = next.iter().flatten().copied().min() {
            let end = text[start..]
                .find(|c: char| c.is_whitespace() || "<>\"'()[]{}，。、；！？“”".contains(c))
                .map_or(text.len(), |e| start + e);
            let url = text[start..end].trim_end_matches(['.', ',', ';', ':', '!', '?']);
            if url.len() > 7 {
                found.push(url.to_owned());
            }
            let pos = end.max(start + 1);
            for (slot, needle) in next.iter_mut().zip(URL_STARTS) {
                if slot.is_some_and(|p| p < pos) {
                    *slot = lower[pos..].find(needle).map(|p| pos + p);
                }
            }
            if found.len() >= MAX_LINKS {
                break;
            }
        }
        for href in found {
            if self.links.len() >= MAX_LINKS {
                break;
            }
            if !self.links.iter().any(|l| l.href == href) {
                self.links.push(Link {
                    href,
                    text: String::new(),
                });
            }
        }
    }
}

/// How a bare URL in text begins.
const URL_STARTS: [&str; 3] = ["http://", "https://", "www."];

/// Decodes a header value: encoded words (RFC 2047) and raw 8-bit bytes (UTF-8, else GB18030).
fn decode_header_bytes<'a>(bytes: &'a [u8], view: &mut Message) -> Cow<'a, str> {
    let text = match std::str::from_utf8(bytes) {
        Ok(s) => Cow::Borrowed(s),
        Err(_) => {
            view.anomaly("HEADER_8BIT");
            decode_unlabelled(bytes)
        }
    };
    if text.contains("=?") {
        Cow::Owned(decode_encoded_words(&text))
    } else {
        text
    }
}

/// Decodes RFC 2047 encoded words in `s`, leaving everything else.
pub fn decode_encoded_words(s: &str) -> String {
    decode_encoded_words_counted(s).0
}

/// Longest charset name of an encoded word (with its `*language` suffix).
const MAX_CHARSET: usize = 64;
/// Longest encoded text of one word (RFC 2047 says 75 octets for the whole word; real mail
/// exceeds that, hostile mail exceeds anything).
const MAX_ENCODED_TEXT: usize = 4096;

/// [`decode_encoded_words`], and the bytes its searches examined: linear in `s` however many
/// `=?` it holds.
fn decode_encoded_words_counted(s: &str) -> (String, usize) {
    let mut out = String::with_capacity(s.len());
    let mut closers = NextMatch::new(s.as_bytes(), b"?=");
    let mut pos = 0;
    let mut last_was_word = false;
    let mut examined = 0;
    while let Some(p) = s[pos..].find("=?") {
        examined += p + 2;
        let (before, after) = s[pos..].split_at(p);
        let start = pos + p;
        match parse_encoded_word(after, start, &mut closers) {
            Some((decoded, len)) => {
                if !(last_was_word && before.trim().is_empty()) {
                    out.push_str(before);
                }
                out.push_str(&decoded);
                pos = start + len;
                last_was_word = true;
            }
            None => {
                out.push_str(before);
                out.push_str("=?");
                pos = start + 2;
                last_was_word = false;
            }
        }
    }
    out.push_str(&s[pos..]);
    (out, examined + closers.examined)
}

/// Parses one `=?charset?B|Q?text?=` at the start of `s`, which begins at `offset` of the text
/// `closers` searches: (decoded text, length consumed).
fn parse_encoded_word(
    s: &str,
    offset: usize,
    closers: &mut NextMatch<'_>,
) -> Option<(String, usize)> {
    let inner = &s[2..];
    let q1 = inner
        .bytes()
        .take(MAX_CHARSET + 1)
        .position(|b| b == b'?')?;
    let charset = &inner[..q1];
    let enc = inner.get(q1 + 1..q1 + 2)?;
    if inner.get(q1 + 2..q1 + 3)? != "?" {
        return None;
    }
    let body_start = q1 + 3;
    let body_len = closers.at_or_after(offset + 2 + body_start)? - (offset + 2 + body_start);
    if body_len > MAX_ENCODED_TEXT {
        return None;
    }
    let body = inner.get(body_start..body_start + body_len)?;
    let bytes = match enc {
        "B" | "b" => mail_parser::decoders::base64::base64_decode(body.as_bytes())?,
        "Q" | "q" => {
            let spaced = body.replace('_', " ");
            mail_parser::decoders::quoted_printable::quoted_printable_decode(spaced.as_bytes())?
        }
        _ => return None,
    };
    let charset = charset.split('*').next().unwrap_or(charset);
    let text = decode_with_charset(&bytes, charset);
    Some((text, 2 + body_start + body_len + 2))
}

/// Decodes `bytes` in the named charset; unknown names fall back to UTF-8/GB18030.
pub fn decode_with_charset(bytes: &[u8], charset: &str) -> String {
    let label = match charset.to_ascii_lowercase().as_str() {
        // GB2312 and GBK mail routinely carries GB18030-only characters.
        "gb2312" | "gbk" | "cp936" | "x-gbk" | "euc-cn" => "gb18030".to_owned(),
        other => other.to_owned(),
    };
    match encoding_rs::Encoding::for_label(label.as_bytes()) {
        Some(enc) => enc.decode_without_bom_handling(bytes).0.into_owned(),
        None => decode_unlabelled(bytes).into_owned(),
    }
}

/// Bytes of unknown charset: UTF-8 when valid, else GB18030 (which decodes any byte sequence).
pub fn decode_unlabelled(bytes: &[u8]) -> Cow<'_, str> {
    match std::str::from_utf8(bytes) {
        Ok(s) => Cow::Borrowed(s),
        Err(_) => Cow::Owned(
            encoding_rs::GB18030
                .decode_without_bom_handling(bytes)
                .0
                .into_owned(),
        ),
    }
}

fn unfold(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut space = false;
    for c in s.trim().chars() {
        if c == '\r' || c == '\n' || c == '\t' || c == ' ' {
            if !space {
                out.push(' ');
                space = true;
            }
        } else {
            out.push(c);
            space = false;
        }
    }
    out
}

/// The domain part of an address, lower case as given; empty when there is none.
pub fn domain_of(addr: &str) -> &str {
    addr.rsplit_once('@')
        .map(|(_, d)| d.trim_end_matches(['>', '.']))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoded_words_decode_beside_plain_text() {
        assert_eq!(
            decode_encoded_words("Re: =?UTF-8?B?5Lit5paH?= =?gb2312?Q?=D6=D0?= end"),
            "Re: 中文中 end"
        );
        assert_eq!(decode_encoded_words("a =?x?Q?b"), "a =?x?Q?b");
        assert_eq!(decode_encoded_words("=?=?=?"), "=?=?=?");
    }

    /// Finding 1 of the hardening review: every `=?` searched the rest of the header for `?=`,
    /// so 150,000 of them took 35 s. The work must grow with the text, not its square.
    #[test]
    fn many_unclosed_encoded_words_cost_work_linear_in_the_header() {
        let work = |n: usize| {
            let header = "=?a?B?x".repeat(n);
            let (decoded, examined) = decode_encoded_words_counted(&header);
            assert_eq!(decoded, header);
            examined
        };
        let (small, large) = (work(5_000), work(20_000));
        assert!(large <= 4 * small + 64, "4x input cost {large} vs {small}");
        assert!(large <= 3 * 7 * 20_000, "{large} bytes examined");
    }

    #[test]
    fn multipart_view_with_links_and_attachment() {
        let raw = b"From: =?UTF-8?B?5byg5LyfIOaAu+e7j+eQhg==?= <ceo@example.net>\r\n\
Reply-To: Boss <boss@evil.test>\r\n\
Subject: =?GB2312?B?1tC9sc2o1qo=?=\r\n\
MIME-Version: 1.0\r\n\
Content-Type: multipart/mixed; boundary=\"b1\"\r\n\
\r\n\
--b1\r\n\
Content-Type: text/html; charset=utf-8\r\n\
\r\n\
<p>Click <a href=\"http://1.2.3.4/x\">here</a></p>\r\n\
--b1\r\n\
Content-Type: application/octet-stream; name=\"invoice.pdf.exe\"\r\n\
Content-Disposition: attachment; filename=\"invoice.pdf.exe\"\r\n\
Content-Transfer-Encoding: base64\r\n\
\r\n\
TVqQAAMAAAAEAAAA\r\n\
--b1--\r\n";
        let m = Message::parse(raw);
        assert_eq!(m.from_name, "张伟 总经理");
        assert_eq!(m.from_addr, "ceo@example.net");
        assert_eq!(m.from_domain(), "example.net");
        assert_eq!(m.reply_to, "boss@evil.test");
        assert_eq!(m.subject, "中奖通知");
        assert!(m.text.contains("Click here"), "{:?}", m.text);
        assert_eq!(m.links[0].href, "http://1.2.3.4/x");
        assert_eq!(m.attachments.len(), 1);
        assert_eq!(m.attachments[0].name, "invoice.pdf.exe");
        assert!(m.attachments[0].data.starts_with(b"MZ"));
    }

    #[test]
    fn undeclared_gbk_body_and_8bit_subject_decode_as_gb18030() {
        let (subject, _, _) = encoding_rs::GB18030.encode("发票代开");
        let (body, _, _) = encoding_rs::GB18030.encode("您好，本公司可代开增值税发票。");
        let mut raw = b"From: a@b.test\r\nSubject: ".to_vec();
        raw.extend_from_slice(&subject);
        raw.extend_from_slice(b"\r\n\r\n");
        raw.extend_from_slice(&body);
        raw.extend_from_slice(b"\r\n");
        let m = Message::parse(&raw);
        assert_eq!(m.subject, "发票代开");
        assert!(m.text.contains("增值税发票"), "{:?}", m.text);
        assert!(m.anomalies.contains(&"CHARSET_UNDECLARED_8BIT"));
    }

    #[test]
    fn garbage_never_panics() {
        for raw in [
            &b""[..],
            b"\r\n\r\n",
            b"Content-Type: multipart/mixed; boundary=x\r\n\r\n--x\r\n--x\r\n",
            b"Subject: =?utf-8?B?####?= =?x?Q?a?=\r\n\r\nbody http://",
            &[0xff, 0xfe, 0x00, 0x80, b'\n', b'\n', 0x81],
        ] {
            let _ = Message::parse(raw);
        }
        let deep = "Content-Type: message/rfc822\r\n\r\n".repeat(50) + "x";
        let m = Message::parse(deep.as_bytes());
        assert!(m.attachments.len() <= MAX_DEPTH);
    }
}
