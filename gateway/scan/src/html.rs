//! What a reader sees in an HTML body, and what it hides: visible text, links with their anchor
//! text, forms, scripts and smuggling tricks. A single forward pass over the bytes with fixed
//! bounds — no DOM, no recursion — because every HTML body is hostile.

use std::sync::LazyLock;

use aho_corasick::AhoCorasick;

use super::search::NextMatch;

/// Most links kept from one HTML document.
pub const MAX_LINKS: usize = 256;
/// Most visible text kept from one HTML document, in bytes.
pub const MAX_TEXT: usize = 256 * 1024;
/// Longest tag (from `<` to `>`) that is parsed; longer ones are skipped as text-less junk.
const MAX_TAG: usize = 16 * 1024;

/// A hyperlink and the text a reader sees for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    /// The `href` as written (entities decoded).
    pub href: String,
    /// The visible anchor text (empty for bare URLs found in text).
    pub text: String,
}

/// What [`scan`] found in one HTML document.
#[derive(Debug, Default, Clone)]
pub struct HtmlView {
    /// Visible text, tags removed, entities decoded, whitespace collapsed.
    pub text: String,
    /// `<a href>` and `<area href>` links.
    pub links: Vec<Link>,
    /// `<form action>` targets (empty string for a form without action).
    pub form_actions: Vec<String>,
    /// An `<input type=password>` is present.
    pub password_input: bool,
    /// `<script>` elements or `javascript:` / `on*=` handlers are present.
    pub script: bool,
    /// Script that assembles a file in the browser (HTML smuggling: `Blob`, `atob`,
    /// `msSaveOrOpenBlob`, `download=` with a data URI).
    pub smuggling: bool,
    /// `<meta http-equiv=refresh>` redirect.
    pub meta_refresh: bool,
    /// Text styled to be invisible (`display:none`, `font-size:0`, `visibility:hidden`).
    pub hidden_text: bool,
    /// `<iframe>`, `<object>` or `<embed>`.
    pub embedded: bool,
    /// Count of `<img>` elements.
    pub images: usize,
}

/// Elements whose content is never visible.
const INVISIBLE: &[&str] = &["script", "style", "head", "noscript", "template", "title"];
/// Elements that break lines in rendering.
const BLOCK: &[&str] = &[
    "br",
    "p",
    "div",
    "tr",
    "li",
    "td",
    "th",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "table",
    "ul",
    "ol",
    "hr",
    "blockquote",
    "center",
];

/// Reads an HTML document.
pub fn scan(html: &str) -> HtmlView {
    scan_counted(html).0
}

/// [`scan`], and the bytes its searches for tag and comment ends examined: linear in the
/// document however many `<` it holds.
fn scan_counted(html: &str) -> (HtmlView, usize) {
    let mut view = HtmlView::default();
    let bytes = html.as_bytes();
    let mut i = 0;
    let mut invisible: Option<&'static str> = None;
    let mut anchor: Option<(String, String)> = None;
    let mut text_start = 0;
    view.smuggling = is_smuggling(bytes);
    let mut tag_ends = NextMatch::new(bytes, b">");
    let mut comment_ends = NextMatch::new(bytes, b"-->");
    while i < bytes.len() {
        if bytes[i] != b'<' {
            i += 1;
            continue;
        }
        // Flush the text before this tag.
        if invisible.is_none() && text_start < i {
            push_text(&mut view, &mut anchor, &html[text_start..i]);
        }
        if bytes[i..].starts_with(b"<!--") {
            let end = comment_ends
                .at_or_after(i + 4)
                .map_or(bytes.len(), |e| e + 3);
            i = end;
            text_start = i;
            continue;
        }
        let end = match tag_ends.at_or_after(i + 1).filter(|e| e - i <= MAX_TAG) {
            Some(e) => e,
            None => {
                // An unterminated or giant tag: skip the '<' and go on as text.
                i += 1;
                text_start = i;
                continue;
            }
        };
        let tag = &html[i + 1..end];
        i = end + 1;
        text_start = i;
        let (closing, name, attrs) = split_tag(tag);
        if let Some(inv) = invisible {
            if closing && name.eq_ignore_ascii_case(inv) {
                invisible = None;
            }
            if inv != "script" && !closing && name.eq_ignore_ascii_case("script") {
                view.script = true;
            }
            continue;
        }
        let name_lc = name.to_ascii_lowercase();
        if !closing && let Some(inv) = INVISIBLE.iter().find(|t| **t == name_lc) {
            if *inv == "script" {
                view.script = true;
            }
            if !tag.ends_with('/') {
                invisible = Some(inv);
            }
            continue;
        }
        if BLOCK.contains(&name_lc.as_str()) {
            push_text(&mut view, &mut anchor, "\n");
        }
        if closing {
            if name_lc == "a" {
                finish_anchor(&mut view, &mut anchor);
            }
            continue;
        }
        let lower_attrs = attrs.to_ascii_lowercase();
        if lower_attrs.contains("javascript:") || has_event_handler(&lower_attrs) {
            view.script = true;
        }
        if let Some(style) = attr(attrs, "style") {
            let s: String = style
                .chars()
                .filter(|c| !c.is_whitespace())
                .collect::<String>()
                .to_ascii_lowercase();
            if s.contains("display:none")
                || s.contains("visibility:hidden")
                || s.contains("font-size:0")
                || s.contains("font-size:1px")
            {
                view.hidden_text = true;
            }
        }
        match name_lc.as_str() {
            "a" | "area" => {
                finish_anchor(&mut view, &mut anchor);
                if let Some(href) = attr(attrs, "href") {
                    let href = decode_entities(href.trim());
                    if name_lc == "a" {
                        anchor = Some((href, String::new()));
                    } else if view.links.len() < MAX_LINKS {
                        view.links.push(Link {
                            href,
                            text: String::new(),
                        });
                    }
                }
            }
            "form" if view.form_actions.len() < MAX_LINKS => {
                view.form_actions.push(
                    attr(attrs, "action")
                        .map(decode_entities)
                        .unwrap_or_default(),
                );
            }
            "input" if attr(attrs, "type").is_some_and(|t| t.eq_ignore_ascii_case("password")) => {
                view.password_input = true;
            }
            "meta"
                if attr(attrs, "http-equiv").is_some_and(|v| v.eq_ignore_ascii_case("refresh")) =>
            {
                view.meta_refresh = true;
                if let Some(url) = attr(attrs, "content")
                    .and_then(|c| c.to_ascii_lowercase().find("url=").map(|p| (c, p)))
                    .map(|(c, p)| c[p + 4..].trim_matches(['\'', '"', ' ']).to_owned())
                    && view.links.len() < MAX_LINKS
                {
                    view.links.push(Link {
                        href: url,
                        text: String::new(),
                    });
                }
            }
            "img" => view.images += 1,
            "iframe" | "object" | "embed" => view.embedded = true,
            _ => {}
        }
    }
    if invisible.is_none() && text_start < bytes.len() {
        push_text(&mut view, &mut anchor, &html[text_start..]);
    }
    finish_anchor(&mut view, &mut anchor);
    (view, tag_ends.examined + comment_ends.examined)
}

fn push_text(view: &mut HtmlView, anchor: &mut Option<(String, String)>, raw: &str) {
    if view.text.len() >= MAX_TEXT {
        return;
    }
    let decoded = decode_entities(raw);
    let mut last_space = view.text.ends_with([' ', '\n']) || view.text.is_empty();
    for c in decoded.chars() {
        if view.text.len() >= MAX_TEXT {
            break;
        }
        if c.is_whitespace() || c == '\u{a0}' {
            if c == '\n' && !view.text.ends_with('\n') && !view.text.is_empty() {
                if view.text.ends_with(' ') {
                    view.text.pop();
                }
                view.text.push('\n');
                last_space = true;
            } else if !last_space {
                view.text.push(' ');
                last_space = true;
            }
        } else if !is_invisible_char(c) {
            view.text.push(c);
            last_space = false;
        }
    }
    if let Some((_, text)) = anchor
        && text.len() < 1024
    {
        let t = decoded.trim();
        if !t.is_empty() {
            if !text.is_empty() {
                text.push(' ');
            }
            text.push_str(t);
        }
    }
}

/// Zero-width and bidi control characters: invisible, used to break up words.
pub fn is_invisible_char(c: char) -> bool {
    matches!(
        c,
        '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2060}'..='\u{2064}' | '\u{feff}' | '\u{ad}'
    )
}

fn finish_anchor(view: &mut HtmlView, anchor: &mut Option<(String, String)>) {
    if let Some((href, text)) = anchor.take()
        && view.links.len() < MAX_LINKS
    {
        view.links.push(Link { href, text });
    }
}

fn has_event_handler(lower_attrs: &str) -> bool {
    [
        "onload=",
        "onerror=",
        "onclick=",
        "onmouseover=",
        "onfocus=",
    ]
    .iter()
    .any(|h| lower_attrs.contains(h))
}

/// Splits `"/a href=x"` into (closing, name, attributes).
fn split_tag(tag: &str) -> (bool, &str, &str) {
    let (closing, rest) = match tag.strip_prefix('/') {
        Some(r) => (true, r),
        None => (false, tag),
    };
    let rest = rest.trim_start();
    let end = rest
        .find(|c: char| c.is_whitespace() || c == '/' || c == '>')
        .unwrap_or(rest.len());
    (closing, &rest[..end], &rest[end..])
}

/// The value of attribute `name` (case-insensitive), quoted or not.
pub fn attr<'a>(attrs: &'a str, name: &str) -> Option<&'a str> {
    let bytes = attrs.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        // Skip to the start of an attribute name.
        while i < bytes.len() && (bytes[i].is_ascii_whitespace() || bytes[i] == b'/') {
            i += 1;
        }
        let start = i;
        while i < bytes.len() && !bytes[i].is_ascii_whitespace() && bytes[i] != b'=' {
            i += 1;
        }
        let key = &attrs[start..i];
        while i < bytes.len() && bytes[i].is_ascii_whitespace() {
            i += 1;
        }
        if i >= bytes.len() || bytes[i] != b'=' {
            if i == start {
                i += 1;
            }
            continue;
        }
        i += 1;
        while i < bytes.len() && bytes[i].is_ascii_whitespace() {
            i += 1;
        }
        let value = if i < bytes.len() && (bytes[i] == b'"' || bytes[i] == b'\'') {
            let q = bytes[i];
            let vstart = i + 1;
            let vend = attrs[vstart..]
                .bytes()
                .position(|b| b == q)
                .map_or(bytes.len(), |p| vstart + p);
            i = (vend + 1).min(bytes.len());
            &attrs[vstart..vend]
        } else {
            let vstart = i;
            while i < bytes.len() && !bytes[i].is_ascii_whitespace() {
                i += 1;
            }
            &attrs[vstart..i]
        };
        if key.eq_ignore_ascii_case(name) {
            return Some(value);
        }
    }
    None
}

/// Decodes the character references a mail body uses (`&amp;`, `&#26412;`, `&#x5b;`, …).
pub fn decode_entities(s: &str) -> String {
    if !s.contains('&') {
        return s.to_owned();
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(p) = rest.find('&') {
        out.push_str(&rest[..p]);
        rest = &rest[p..];
        let end = rest[1..]
            .char_indices()
            .take(12)
            .find(|(_, c)| *c == ';')
            .map(|(i, _)| i + 1);
        let decoded = end.and_then(|e| {
            let name = &rest[1..e];
            let c = if let Some(num) = name.strip_prefix('#') {
                let n = match num.strip_prefix(['x', 'X']) {
                    Some(hex) => u32::from_str_radix(hex, 16).ok(),
                    None => num.parse().ok(),
                };
                n.and_then(char::from_u32)
            } else {
                match name {
                    "amp" => Some('&'),
                    "lt" => Some('<'),
                    "gt" => Some('>'),
                    "quot" => Some('"'),
                    "apos" => Some('\''),
                    "nbsp" => Some(' '),
                    "copy" => Some('©'),
                    "reg" => Some('®'),
                    "yen" => Some('¥'),
                    "middot" => Some('·'),
                    "mdash" => Some('—'),
                    "ndash" => Some('–'),
                    "hellip" => Some('…'),
                    "zwj" | "zwnj" | "shy" => Some('\u{200b}'),
                    _ => None,
                }
            };
            c.map(|c| (c, e + 1))
        });
        match decoded {
            Some((c, len)) => {
                out.push(c);
                rest = &rest[len..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// What script in a page uses to build a file in the browser, in lower case (matched ignoring
/// ASCII case): [`is_smuggling`] reads which occur.
const SMUGGLING_PARTS: [&str; 5] = [
    "mssaveoropenblob",
    "new blob(",
    "atob(",
    "download=",
    "data:application/",
];

static SMUGGLING_FINDER: LazyLock<AhoCorasick> = LazyLock::new(|| {
    AhoCorasick::builder()
        .ascii_case_insensitive(true)
        .build(SMUGGLING_PARTS)
        .expect("fixed patterns build")
});

/// HTML smuggling: `msSaveOrOpenBlob`, or a `Blob` made from `atob` output, or a `download`
/// link to a `data:application/` URI — found in one pass over the page, whatever its size.
fn is_smuggling(html: &[u8]) -> bool {
    // No part overlaps another or itself, so matches that do not overlap find every part that
    // occurs.
    let mut seen = [false; SMUGGLING_PARTS.len()];
    for m in SMUGGLING_FINDER.find_iter(html) {
        seen[m.pattern().as_usize()] = true;
        if seen[0] || (seen[1] && seen[2]) || (seen[3] && seen[4]) {
            return true;
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Finding 1 of the hardening review: each `<` without `>` searched up to 16 KiB ahead, so
    /// 1 MiB of `<` took 5.3 s. The work must grow with the document, not with `<` × 16 KiB.
    #[test]
    fn unclosed_tags_and_comments_cost_work_linear_in_the_document() {
        for unit in ["<", "<a", "<!--x"] {
            let work = |n: usize| {
                let (view, examined) = scan_counted(&unit.repeat(n));
                assert!(view.links.is_empty());
                examined
            };
            let (small, large) = (work(50_000), work(200_000));
            assert!(
                large <= 4 * small + 64,
                "{unit}: 4x input cost {large} vs {small}"
            );
            assert!(
                large <= 2 * unit.len() * 200_000,
                "{unit}: {large} bytes examined"
            );
        }
    }

    #[test]
    fn a_tag_longer_than_the_limit_is_skipped_and_the_next_one_read() {
        let html = format!(
            "<a {}>x</a><a href=\"http://ok.test/\">y</a>",
            "b".repeat(MAX_TAG)
        );
        let view = scan(&html);
        assert_eq!(view.links.len(), 1);
        assert_eq!(view.links[0].href, "http://ok.test/");
    }

    #[test]
    fn visible_text_links_and_forms() {
        let v = scan(
            "<html><head><title>t</title><style>p{}</style></head><body>\
             <p>Dear&nbsp;user,</p><!-- hidden <a href=x> -->\
             <a href=\"http://evil.test/login?a=1&amp;b=2\">https://www.icbc.com.cn</a>\
             <script>var x='<p>no</p>';</script>\
             <form action='https://evil.test/post'><input type=password name=p></form>\
             <div style=\"display: none\">spam words</div>\u{200b}工商银行</body></html>",
        );
        assert!(v.text.contains("Dear user,"), "{:?}", v.text);
        assert!(v.text.contains("工商银行"));
        assert!(
            !v.text.contains("no"),
            "script content leaked: {:?}",
            v.text
        );
        assert!(!v.text.contains("p{}"));
        assert_eq!(v.links.len(), 1);
        assert_eq!(v.links[0].href, "http://evil.test/login?a=1&b=2");
        assert_eq!(v.links[0].text, "https://www.icbc.com.cn");
        assert_eq!(v.form_actions, vec!["https://evil.test/post".to_owned()]);
        assert!(v.password_input && v.script && v.hidden_text);
    }

    #[test]
    fn entities_and_hostile_markup() {
        assert_eq!(
            decode_entities("&#26412;&#x5B;&lt;&bogus;&"),
            "本[<&bogus;&"
        );
        // Unterminated tags, giant attributes and stray brackets neither panic nor loop.
        let junk = format!("<a href='{}", "x".repeat(100_000));
        let v = scan(&junk);
        assert!(v.links.is_empty());
        let v = scan(
            "<<<>>><a/><a href=>text</a><meta http-equiv=Refresh content=\"0;url=http://r.test/\">",
        );
        assert!(v.meta_refresh);
        assert!(v.links.iter().any(|l| l.href == "http://r.test/"));
        let smuggle = "<script>var b=new Blob([atob('TVqQ')]);</script>";
        assert!(scan(smuggle).smuggling);
    }

    #[test]
    fn smuggling_needs_a_whole_recipe_in_any_case() {
        for page in [
            "<script>navigator.MSSAVEOROPENBLOB(b)</script>",
            "<script>x = NEW BLOB([ATOB(s)])</script>",
            "<a DOWNLOAD=\"inv.iso\" href=\"DATA:Application/octet-stream;base64,AA\">x</a>",
        ] {
            assert!(scan(page).smuggling, "{page}");
        }
        for page in [
            "<p>atob( alone decodes text</p>",
            "<p>new Blob( without decoding</p>",
            "<a download=\"a.txt\" href=\"/a.txt\">a</a> and data:text/plain",
            "<p>msSaveOrOpen Blob</p>",
        ] {
            assert!(!scan(page).smuggling, "{page}");
        }
    }
}
