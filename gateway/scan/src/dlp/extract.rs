//! The text a message carries in its attachments, for the DLP detectors: plain text and CSV,
//! HTML, Office Open XML (docx, xlsx, pptx), PDF, and all of them inside archives (zip, gzip,
//! tar, 7z, nested), read through the attachment check's own archive walk
//! ([`crate::attach`]) so that the same depth, size, member-count and ratio bounds and the
//! scan's [`Deadline`] apply. Every attachment is hostile: what could not be read is said
//! rather than skipped in silence, because an unreadable file may be exactly what leaks —
//! encrypted archives and documents by name ([`Extracted::encrypted`], a policy acts on
//! them), files no reader here understands ([`Extracted::unreadable`]), and any bound that
//! stopped the walk ([`Extracted::truncated`]).
//!
//! Text is laid out so that the detectors see what a reader sees: table cells and paragraphs
//! are separated (a tab between cells, a newline between rows and paragraphs, never a single
//! space, which the detectors read as a digit-group separator), while the runs a word
//! processor splits one word into are joined.
//!
//! PDF is read by a small extractor of its own (the `pdf` module below): the maintained crates parse
//! whole documents with unbounded decompression and panic on malformed files; this one makes
//! one linear pass over the file, decodes only content streams, fonts and object streams
//! within a byte budget, and understands what common generators write (Flate streams,
//! `Tj`/`TJ`/`'`/`"`, ToUnicode CMaps, WinAnsi and the predefined Chinese CMaps).

use std::borrow::Cow;
use std::io::Read;

use quick_xml::events::Event;
use quick_xml::reader::Reader;

use crate::attach::{self, FileType, Obstacle, Visit, Visitor};
use crate::html;
use crate::message::{Attachment, decode_unlabelled};
use crate::pool::Deadline;

/// Most text kept from one message's attachments, in bytes: far beyond any document a person
/// writes, small enough that the detectors' single pass stays a few milliseconds.
pub const MAX_TEXT: usize = 8 * 1024 * 1024;
/// Most bytes decoded from PDF streams (content, fonts, object streams) in one message: what a
/// PDF costs is what it decodes, however small it is on the wire.
const MAX_PDF_DECODED: u64 = 64 * 1024 * 1024;
/// Most bytes one PDF stream may decode to.
const MAX_PDF_STREAM: u64 = 16 * 1024 * 1024;
/// Most names kept in each list of [`Extracted`] (files, encrypted, unreadable).
const MAX_NAMES: usize = 4096;

/// A file found in the message: an attachment or a member of an archive inside one, for rules
/// on file type, extension and size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileSeen {
    /// The name as declared or stored in its archive (may be empty).
    pub name: String,
    /// The archive it was unpacked from; `None` for an attachment.
    pub archive: Option<String>,
    /// Its size in bytes (as unpacked).
    pub size: u64,
    /// What it really is, from its content.
    pub kind: FileType,
    /// Archive nesting: 0 for an attachment.
    pub depth: usize,
}

/// What [`attachments_text`] read.
#[derive(Debug, Clone, Default)]
pub struct Extracted {
    /// The text of every readable file, in order, a newline between files; at most
    /// [`MAX_TEXT`] bytes.
    pub text: String,
    /// Names of encrypted archives and documents (zip, 7z and RAR with encryption, encrypted
    /// Office documents, PDFs with an `/Encrypt` dictionary): their content cannot be judged.
    pub encrypted: Vec<String>,
    /// Names of files whose text could not be read: malformed archives and documents, RAR,
    /// legacy (OLE) Office formats.
    pub unreadable: Vec<String>,
    /// A bound (text size, depth, members, unpacked bytes, ratio, PDF decoding, deadline)
    /// stopped some of the reading: what was left unread may be what matters.
    pub truncated: bool,
    /// Every file met, attachments and archive members (parts of Office documents are not
    /// files of their own, their embedded documents are).
    pub files: Vec<FileSeen>,
}

/// Reads the text of `attachments` and of everything packed inside them, within the walk's
/// bounds and `deadline`.
pub fn attachments_text(attachments: &[Attachment], deadline: &Deadline) -> Extracted {
    let mut extractor = Extractor {
        sink: Sink::default(),
        out: Extracted::default(),
        work: Work {
            deadline,
            pdf_decoded: 0,
            truncated: false,
        },
    };
    attach::walk(attachments, deadline, &mut extractor);
    let Extractor {
        sink,
        mut out,
        work,
    } = extractor;
    out.truncated |= sink.full || work.truncated;
    out.text = sink.text;
    out
}

/// The text gathered so far, never beyond [`MAX_TEXT`].
#[derive(Default)]
struct Sink {
    text: String,
    /// Something was cut off at the bound.
    full: bool,
}

impl Sink {
    fn push(&mut self, s: &str) {
        if self.full {
            return;
        }
        let room = MAX_TEXT - self.text.len();
        if s.len() <= room {
            self.text.push_str(s);
            return;
        }
        let mut cut = room;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        self.text.push_str(&s[..cut]);
        self.full = true;
    }

    fn push_char(&mut self, c: char) {
        let mut buf = [0; 4];
        self.push(c.encode_utf8(&mut buf));
    }

    /// A separator between cells (`'\t'`), words (`' '`) or lines (`'\n'`), unless the text
    /// already ends in one; a line break replaces a weaker separator just written.
    fn sep(&mut self, c: char) {
        match self.text.chars().next_back() {
            None | Some('\n') => {}
            Some(' ' | '\t') if c == '\n' => {
                self.text.pop();
                self.push_char('\n');
            }
            Some(last) if last.is_whitespace() => {}
            Some(_) => self.push_char(c),
        }
    }
}

/// What reading costs beyond the archive walk's own bounds.
struct Work<'a> {
    deadline: &'a Deadline,
    /// Bytes of PDF streams decoded so far in this message.
    pdf_decoded: u64,
    /// A bound or the deadline stopped some reading.
    truncated: bool,
}

impl Work<'_> {
    /// Whether the deadline passed (and says so).
    fn out_of_time(&mut self) -> bool {
        if self.deadline.passed() {
            self.truncated = true;
            return true;
        }
        false
    }
}

/// The visitor of the archive walk that reads text.
struct Extractor<'a> {
    sink: Sink,
    out: Extracted,
    work: Work<'a>,
}

/// Parts of an Office package whose text a reader sees: body, headers and footers, notes,
/// comments, cells and slides.
fn is_text_part(member: &str) -> bool {
    let m = member.to_ascii_lowercase();
    if !m.ends_with(".xml") {
        return false;
    }
    const PARTS: &[&str] = &[
        "word/document",
        "word/header",
        "word/footer",
        "word/footnotes",
        "word/endnotes",
        "word/comments",
        "xl/sharedstrings",
        "xl/worksheets/sheet",
        "xl/comments",
        "ppt/slides/slide",
        "ppt/notesslides/notesslide",
        "ppt/comments/",
    ];
    PARTS.iter().any(|p| m.starts_with(p))
}

/// Documents embedded in an Office document (an xlsx inside a docx): files of their own.
fn is_embedded(member: &str) -> bool {
    let m = member.to_ascii_lowercase();
    ["word/embeddings/", "xl/embeddings/", "ppt/embeddings/"]
        .iter()
        .any(|p| m.starts_with(p))
}

fn push_name(list: &mut Vec<String>, name: &str) {
    if list.len() < MAX_NAMES && !list.iter().any(|n| n == name) {
        list.push(name.to_owned());
    }
}

impl Visitor for Extractor<'_> {
    fn wants(&mut self, _archive: &str, member: &str, package: bool) -> bool {
        // Styles, themes, relationships and media of an Office document carry no text.
        !package || is_text_part(member) || is_embedded(member)
    }

    fn file(&mut self, file: &Visit<'_>) -> bool {
        let shown = if file.name.is_empty() {
            "(unnamed)"
        } else {
            file.name
        };
        if file.package && !is_embedded(file.name) {
            self.sink.sep('\n');
            xml_text(file.data, &mut self.sink, &mut self.work);
            return false;
        }
        if self.out.files.len() < MAX_NAMES {
            self.out.files.push(FileSeen {
                name: file.name.to_owned(),
                archive: file.archive.map(str::to_owned),
                size: file.data.len() as u64,
                kind: file.kind,
                depth: file.depth,
            });
        } else {
            self.out.truncated = true;
        }
        if self.sink.full {
            // No room for more text; archives are still walked for the list of files.
            return true;
        }
        self.sink.sep('\n');
        match file.kind {
            FileType::Zip | FileType::Gzip | FileType::Tar | FileType::SevenZip => {}
            FileType::Rar => {
                push_name(&mut self.out.unreadable, shown);
                if attach::is_encrypted_rar(file.data) {
                    push_name(&mut self.out.encrypted, shown);
                }
            }
            FileType::Ole => {
                // An encrypted Office Open XML document is an OLE file holding the encrypted
                // package beside its EncryptionInfo stream (MS-OFFCRYPTO).
                if attach::find(file.data, ENCRYPTED_PACKAGE).is_some() {
                    push_name(&mut self.out.encrypted, shown);
                } else {
                    push_name(&mut self.out.unreadable, shown);
                }
            }
            FileType::Pdf => match pdf::extract(file.data, &mut self.sink, &mut self.work) {
                pdf::Outcome::Read => {}
                pdf::Outcome::Encrypted => push_name(&mut self.out.encrypted, shown),
                pdf::Outcome::Unreadable => push_name(&mut self.out.unreadable, shown),
            },
            FileType::Html => html_text(file.data, &mut self.sink, &mut self.work),
            // An attached message's parts are already the message's own text and attachments.
            FileType::Other if !file.declared_type.eq_ignore_ascii_case("message/rfc822") => {
                plain_text(file.data, &mut self.sink);
            }
            _ => {}
        }
        true
    }

    fn obstacle(&mut self, archive: &str, _member: Option<&str>, obstacle: Obstacle) {
        match obstacle {
            Obstacle::Encrypted => push_name(&mut self.out.encrypted, archive),
            Obstacle::Malformed => push_name(&mut self.out.unreadable, archive),
            Obstacle::OutOfTime
            | Obstacle::TooDeep
            | Obstacle::TooManyMembers
            | Obstacle::Bomb
            | Obstacle::TooLarge
            | Obstacle::MemberTruncated => self.out.truncated = true,
        }
    }
}

/// The name of the stream holding an encrypted Office package, as an OLE directory spells it
/// (UTF-16LE).
const ENCRYPTED_PACKAGE: &[u8] = b"E\0n\0c\0r\0y\0p\0t\0e\0d\0P\0a\0c\0k\0a\0g\0e\0";

/// Bytes of unknown charset as text: a byte-order mark says UTF-16 or UTF-8, otherwise UTF-8
/// when valid, else GB18030 (which decodes anything). Reads no more than fits in the sink.
fn decode_text(data: &[u8], room: usize) -> (Cow<'_, str>, bool) {
    for (bom, encoding) in [
        (&b"\xff\xfe"[..], encoding_rs::UTF_16LE),
        (&b"\xfe\xff"[..], encoding_rs::UTF_16BE),
    ] {
        if let Some(rest) = data.strip_prefix(bom) {
            // UTF-16 takes at most twice the bytes of the UTF-8 it becomes, 2 per code unit.
            let cut = rest.len().min(room.saturating_mul(2)) & !1;
            let text = encoding.decode_without_bom_handling(&rest[..cut]).0;
            return (Cow::Owned(text.into_owned()), cut < rest.len());
        }
    }
    let data = data.strip_prefix(b"\xef\xbb\xbf").unwrap_or(data);
    let cut = data.len().min(room);
    let mut head = &data[..cut];
    // A cut through a UTF-8 character must not turn the whole text into GB18030.
    if let Err(e) = std::str::from_utf8(head)
        && e.error_len().is_none()
    {
        head = &head[..e.valid_up_to()];
    }
    (decode_unlabelled(head), cut < data.len())
}

/// Text files: anything without NUL bytes near its start (binary formats have them), or
/// UTF-16 with its byte-order mark.
fn plain_text(data: &[u8], sink: &mut Sink) {
    let utf16 = data.starts_with(b"\xff\xfe") || data.starts_with(b"\xfe\xff");
    if !utf16 && data[..data.len().min(8192)].contains(&0) {
        return;
    }
    let (text, cut) = decode_text(data, MAX_TEXT - sink.text.len());
    sink.push(&text);
    sink.full |= cut;
}

/// Most HTML read from one file: [`html::scan`] keeps [`html::MAX_TEXT`] of text at most.
const MAX_HTML: usize = 8 * 1024 * 1024;

fn html_text(data: &[u8], sink: &mut Sink, work: &mut Work) {
    let (html, cut) = decode_text(data, MAX_HTML);
    let view = html::scan(&html);
    // The HTML reader stops at its own bound: a longer text was cut.
    work.truncated |= cut || view.text.len() + 4 >= html::MAX_TEXT;
    sink.push(&view.text);
}

/// XML bytes as text: UTF-16 with a byte-order mark, else UTF-8 (invalid bytes replaced).
fn decode_xml(data: &[u8]) -> Cow<'_, str> {
    if data.starts_with(b"\xff\xfe") || data.starts_with(b"\xfe\xff") {
        return decode_text(data, usize::MAX / 2).0;
    }
    String::from_utf8_lossy(data.strip_prefix(b"\xef\xbb\xbf").unwrap_or(data))
}

/// Events between two looks at the deadline while reading XML.
const XML_EVENTS_PER_CHECK: u32 = 1 << 16;

/// The text of an Office Open XML part: character data of text elements (`w:t`, `a:t`,
/// `t`, `w:delText` — deleted text is still in the file — and cell values `v` except indexes
/// into the shared strings), a tab after each cell and a newline after each paragraph, row
/// and shared string.
fn xml_text(data: &[u8], sink: &mut Sink, work: &mut Work) {
    let xml = decode_xml(data);
    let mut reader = Reader::from_str(&xml);
    let config = reader.config_mut();
    config.check_end_names = false;
    config.allow_unmatched_ends = true;
    config.allow_dangling_amp = true;
    config.trim_text(false);
    // Depth inside elements whose character data is text.
    let mut inside = 0usize;
    let mut shared_string_cell = false;
    let mut value_counted = false;
    let mut events = 0u32;
    loop {
        events = events.wrapping_add(1);
        if (events.is_multiple_of(XML_EVENTS_PER_CHECK) && work.out_of_time()) || sink.full {
            return;
        }
        match reader.read_event() {
            Err(_) | Ok(Event::Eof) => return,
            Ok(Event::Start(e)) => match e.local_name().as_ref() {
                "t" | "delText" => inside += 1,
                "v" if !shared_string_cell => {
                    inside += 1;
                    value_counted = true;
                }
                "c" => {
                    shared_string_cell = matches!(
                        e.try_get_attribute("t"), Ok(Some(a)) if a.value == "s"
                    );
                }
                _ => {}
            },
            Ok(Event::End(e)) => {
                let name = e.local_name();
                match name.as_ref() {
                    "t" | "delText" => inside = inside.saturating_sub(1),
                    "v" if value_counted => {
                        inside = inside.saturating_sub(1);
                        value_counted = false;
                    }
                    other => separate(other, sink),
                }
            }
            Ok(Event::Empty(e)) => separate(e.local_name().as_ref(), sink),
            Ok(Event::Text(t)) if inside > 0 => sink.push(&t.xml10_content()),
            Ok(Event::CData(t)) if inside > 0 => sink.push(&t.xml10_content()),
            Ok(Event::GeneralRef(r)) if inside > 0 => {
                sink.push(&html::decode_entities(&format!("&{};", &*r)));
            }
            Ok(_) => {}
        }
    }
}

/// The separator the end of element `name` (or an empty one) stands for in an Office part.
fn separate(name: &str, sink: &mut Sink) {
    match name {
        // Paragraphs (w:p, a:p), line breaks, table rows, sheet rows, shared strings.
        "p" | "br" | "cr" | "tr" | "row" | "si" => sink.sep('\n'),
        // Tabs, table cells (w:tc, a:tc), sheet cells.
        "tab" | "tc" | "c" => sink.sep('\t'),
        _ => {}
    }
}

/// A bounded PDF text extractor: one pass over the file finds every object (without trusting
/// the cross-reference table, which hostile and damaged files get wrong), then the pages'
/// content streams are interpreted for their text operators.
mod pdf {
    use std::borrow::Cow;
    use std::cell::{Cell, RefCell};
    use std::collections::{HashMap, HashSet};
    use std::rc::Rc;

    use super::{MAX_PDF_DECODED, MAX_PDF_STREAM, Read, Sink, Work};
    use crate::search::NextMatch;

    /// What became of one PDF.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub(super) enum Outcome {
        /// Its text (if any) was read.
        Read,
        /// It has an `/Encrypt` dictionary: strings and streams are ciphertext.
        Encrypted,
        /// No object could be found in it.
        Unreadable,
    }

    /// Deepest nesting of arrays and dictionaries parsed.
    const MAX_NESTING: usize = 32;
    /// Most array elements and dictionary entries kept from one object.
    const MAX_ELEMENTS: usize = 100_000;
    /// Most objects indexed in one file.
    const MAX_OBJECTS: usize = 500_000;
    /// Most pages read from one file.
    const MAX_PAGES: usize = 20_000;
    /// Deepest nesting of form XObjects followed.
    const MAX_FORM_DEPTH: usize = 8;
    /// Most entries of one ToUnicode CMap, or of one font's width table.
    const MAX_MAP: usize = 200_000;
    /// Operators between two looks at the deadline.
    const OPS_PER_CHECK: usize = 4096;

    /// Reads the text of the PDF `data` into `sink`.
    pub(super) fn extract(data: &[u8], sink: &mut Sink, work: &mut Work) -> Outcome {
        let doc = Doc::index(data, work);
        if doc.encrypted {
            return Outcome::Encrypted;
        }
        if doc.objects.is_empty() {
            return Outcome::Unreadable;
        }
        let pages = doc.pages(work);
        let mut reader = TextReader {
            doc: &doc,
            sink,
            work,
            fonts: HashMap::new(),
            streams_read: HashSet::new(),
            last: None,
            ops: 0,
            named: HashMap::new(),
        };
        // By reference: the resource dictionaries stay where they are for the whole read (the
        // reader knows shared ones by address).
        for (page, resources) in &pages {
            if reader.sink.full || reader.work.out_of_time() {
                break;
            }
            reader.page(page, resources.as_ref());
        }
        reader.work.truncated |= doc.exhausted.get();
        Outcome::Read
    }

    // ---- Lexing and parsing -------------------------------------------------------------

    fn is_white(b: u8) -> bool {
        matches!(b, 0 | 9 | 10 | 12 | 13 | 32)
    }

    fn is_delimiter(b: u8) -> bool {
        matches!(
            b,
            b'(' | b')' | b'<' | b'>' | b'[' | b']' | b'{' | b'}' | b'/' | b'%'
        )
    }

    /// One token of PDF syntax.
    enum Tok<'a> {
        Num(f64, bool),
        Name(Vec<u8>),
        Str(Vec<u8>),
        Keyword(&'a [u8]),
        ArrayOpen,
        ArrayClose,
        DictOpen,
        DictClose,
    }

    struct Lexer<'a> {
        data: &'a [u8],
        pos: usize,
    }

    impl<'a> Lexer<'a> {
        fn skip_white(&mut self) {
            while let Some(&b) = self.data.get(self.pos) {
                if is_white(b) {
                    self.pos += 1;
                } else if b == b'%' {
                    while self
                        .data
                        .get(self.pos)
                        .is_some_and(|&c| c != b'\n' && c != b'\r')
                    {
                        self.pos += 1;
                    }
                } else {
                    break;
                }
            }
        }

        fn token(&mut self) -> Option<Tok<'a>> {
            loop {
                self.skip_white();
                let b = *self.data.get(self.pos)?;
                let next = self.data.get(self.pos + 1).copied();
                return Some(match b {
                    b'(' => Tok::Str(self.literal()),
                    b'<' if next == Some(b'<') => {
                        self.pos += 2;
                        Tok::DictOpen
                    }
                    b'<' => Tok::Str(self.hex()),
                    b'>' if next == Some(b'>') => {
                        self.pos += 2;
                        Tok::DictClose
                    }
                    b'[' => {
                        self.pos += 1;
                        Tok::ArrayOpen
                    }
                    b']' => {
                        self.pos += 1;
                        Tok::ArrayClose
                    }
                    b'/' => {
                        self.pos += 1;
                        Tok::Name(self.name())
                    }
                    b'>' | b')' | b'{' | b'}' => {
                        self.pos += 1;
                        continue;
                    }
                    _ => {
                        let start = self.pos;
                        while self
                            .data
                            .get(self.pos)
                            .is_some_and(|&c| !is_white(c) && !is_delimiter(c))
                        {
                            self.pos += 1;
                        }
                        let word = &self.data[start..self.pos];
                        match number(word) {
                            Some((v, int)) => Tok::Num(v, int),
                            None => Tok::Keyword(word),
                        }
                    }
                });
            }
        }

        /// A `(literal string)`, balanced parentheses and escapes decoded.
        fn literal(&mut self) -> Vec<u8> {
            self.pos += 1;
            let mut out = Vec::new();
            let mut depth = 1usize;
            while let Some(&b) = self.data.get(self.pos) {
                self.pos += 1;
                match b {
                    b'\\' => {
                        let Some(&e) = self.data.get(self.pos) else {
                            break;
                        };
                        self.pos += 1;
                        match e {
                            b'n' => out.push(b'\n'),
                            b'r' => out.push(b'\r'),
                            b't' => out.push(b'\t'),
                            b'b' => out.push(8),
                            b'f' => out.push(12),
                            b'\r' => {
                                if self.data.get(self.pos) == Some(&b'\n') {
                                    self.pos += 1;
                                }
                            }
                            b'\n' => {}
                            b'0'..=b'7' => {
                                let mut v = u16::from(e - b'0');
                                for _ in 0..2 {
                                    match self.data.get(self.pos) {
                                        Some(&c @ b'0'..=b'7') => {
                                            v = v * 8 + u16::from(c - b'0');
                                            self.pos += 1;
                                        }
                                        _ => break,
                                    }
                                }
                                out.push(v as u8);
                            }
                            other => out.push(other),
                        }
                    }
                    b'(' => {
                        depth += 1;
                        out.push(b);
                    }
                    b')' => {
                        depth -= 1;
                        if depth == 0 {
                            break;
                        }
                        out.push(b);
                    }
                    _ => out.push(b),
                }
            }
            out
        }

        /// A `<hex string>`; white space ignored, an odd last digit padded with 0.
        fn hex(&mut self) -> Vec<u8> {
            self.pos += 1;
            let mut out = Vec::new();
            let mut high: Option<u8> = None;
            while let Some(&b) = self.data.get(self.pos) {
                self.pos += 1;
                if b == b'>' {
                    break;
                }
                let Some(v) = (b as char).to_digit(16) else {
                    continue;
                };
                match high.take() {
                    Some(h) => out.push(h << 4 | v as u8),
                    None => high = Some(v as u8),
                }
            }
            if let Some(h) = high {
                out.push(h << 4);
            }
            out
        }

        /// A name after its `/`, `#xx` escapes decoded.
        fn name(&mut self) -> Vec<u8> {
            let mut out = Vec::new();
            while let Some(&b) = self.data.get(self.pos) {
                if is_white(b) || is_delimiter(b) {
                    break;
                }
                self.pos += 1;
                let hex = |at: usize| self.data.get(at).and_then(|c| (*c as char).to_digit(16));
                if b == b'#'
                    && let (Some(h), Some(l)) = (hex(self.pos), hex(self.pos + 1))
                {
                    out.push((h << 4 | l) as u8);
                    self.pos += 2;
                } else {
                    out.push(b);
                }
            }
            out
        }
    }

    /// A PDF number (`12`, `-3.5`, `.25`, `+7`): its value and whether it is an integer.
    fn number(word: &[u8]) -> Option<(f64, bool)> {
        let (negative, digits) = match word.first()? {
            b'-' => (true, &word[1..]),
            b'+' => (false, &word[1..]),
            _ => (false, word),
        };
        if digits.is_empty() || !digits.iter().any(u8::is_ascii_digit) {
            return None;
        }
        let mut value = 0f64;
        let mut scale = 0f64;
        for &c in digits {
            match c {
                b'0'..=b'9' if scale == 0.0 => value = value * 10.0 + f64::from(c - b'0'),
                b'0'..=b'9' => {
                    value += f64::from(c - b'0') * scale;
                    scale /= 10.0;
                }
                b'.' if scale == 0.0 => scale = 0.1,
                _ => return None,
            }
        }
        Some((if negative { -value } else { value }, scale == 0.0))
    }

    /// A PDF object.
    #[derive(Debug, Clone, PartialEq)]
    enum Obj {
        Null,
        Bool(bool),
        Num(f64),
        Name(Vec<u8>),
        Str(Vec<u8>),
        Array(Vec<Obj>),
        Dict(Vec<(Vec<u8>, Obj)>),
        Ref(u32),
    }

    impl Obj {
        fn get(&self, key: &[u8]) -> Option<&Obj> {
            match self {
                Obj::Dict(entries) => entries.iter().find(|(k, _)| k == key).map(|(_, v)| v),
                _ => None,
            }
        }

        fn num(&self) -> Option<f64> {
            match self {
                Obj::Num(n) if n.is_finite() => Some(*n),
                _ => None,
            }
        }

        fn name(&self) -> Option<&[u8]> {
            match self {
                Obj::Name(n) => Some(n),
                _ => None,
            }
        }

        fn is_type(&self, ty: &[u8]) -> bool {
            self.get(b"Type").and_then(Obj::name) == Some(ty)
        }
    }

    /// A piece of a content stream: an operand or an operator.
    enum Item<'a> {
        Obj(Obj),
        Op(&'a [u8]),
    }

    struct Parser<'a> {
        lx: Lexer<'a>,
        /// `N G R` is a reference (in the file's objects, not in content streams).
        refs: bool,
        /// Elements kept of the object being parsed.
        elements: usize,
    }

    impl<'a> Parser<'a> {
        fn new(data: &'a [u8], pos: usize, refs: bool) -> Self {
            Parser {
                lx: Lexer { data, pos },
                refs,
                elements: 0,
            }
        }

        /// The next operand or operator.
        fn item(&mut self) -> Option<Item<'a>> {
            self.elements = 0;
            let tok = self.lx.token()?;
            Some(match tok {
                Tok::Keyword(k) if !matches!(k, b"true" | b"false" | b"null") => Item::Op(k),
                other => Item::Obj(self.finish(other, 0)),
            })
        }

        /// The object at the current position.
        fn object(&mut self) -> Option<Obj> {
            self.elements = 0;
            let tok = self.lx.token()?;
            Some(self.finish(tok, 0))
        }

        /// The object that starts with `tok`.
        fn finish(&mut self, tok: Tok<'a>, depth: usize) -> Obj {
            match tok {
                Tok::Num(v, true) if self.refs && v >= 0.0 && v <= f64::from(u32::MAX) => {
                    let save = self.lx.pos;
                    if let Some(Tok::Num(_, true)) = self.lx.token()
                        && let Some(Tok::Keyword(b"R")) = self.lx.token()
                    {
                        return Obj::Ref(v as u32);
                    }
                    self.lx.pos = save;
                    Obj::Num(v)
                }
                Tok::Num(v, _) => Obj::Num(v),
                Tok::Name(n) => Obj::Name(n),
                Tok::Str(s) => Obj::Str(s),
                Tok::Keyword(b"true") => Obj::Bool(true),
                Tok::Keyword(b"false") => Obj::Bool(false),
                Tok::Keyword(_) | Tok::ArrayClose | Tok::DictClose => Obj::Null,
                Tok::ArrayOpen | Tok::DictOpen if depth >= MAX_NESTING => {
                    self.skip_nested();
                    Obj::Null
                }
                Tok::ArrayOpen => {
                    let mut items = Vec::new();
                    loop {
                        match self.lx.token() {
                            None | Some(Tok::ArrayClose | Tok::DictClose) => break,
                            Some(t) => {
                                let o = self.finish(t, depth + 1);
                                if self.elements < MAX_ELEMENTS {
                                    self.elements += 1;
                                    items.push(o);
                                }
                            }
                        }
                    }
                    Obj::Array(items)
                }
                Tok::DictOpen => {
                    let mut entries = Vec::new();
                    loop {
                        match self.lx.token() {
                            None | Some(Tok::DictClose | Tok::ArrayClose) => break,
                            Some(Tok::Name(key)) => {
                                let value = match self.lx.token() {
                                    None | Some(Tok::DictClose) => break,
                                    Some(t) => self.finish(t, depth + 1),
                                };
                                if self.elements < MAX_ELEMENTS {
                                    self.elements += 1;
                                    entries.push((key, value));
                                }
                            }
                            // Not a key: skipped, as a damaged dictionary's junk.
                            Some(t) => {
                                self.finish(t, depth + 1);
                            }
                        }
                    }
                    Obj::Dict(entries)
                }
            }
        }

        /// Reads past an array or dictionary nested too deep to keep, without recursion.
        fn skip_nested(&mut self) {
            let mut open = 1usize;
            while let Some(t) = self.lx.token() {
                match t {
                    Tok::ArrayOpen | Tok::DictOpen => open += 1,
                    Tok::ArrayClose | Tok::DictClose => {
                        open -= 1;
                        if open == 0 {
                            return;
                        }
                    }
                    _ => {}
                }
            }
        }
    }

    // ---- The document -------------------------------------------------------------------

    /// Where an object is.
    #[derive(Clone, Copy)]
    enum Loc {
        /// In the file at `at`, with its stream's data range.
        Direct {
            at: usize,
            stream: Option<(usize, usize)>,
        },
        /// In decoded object stream `stream` (an index into `Doc::packed`) at `at`.
        Packed { stream: usize, at: usize },
    }

    /// A PDF's objects, indexed by number; parsed again when asked for, so that memory stays
    /// bounded by what is in use rather than by the file.
    struct Doc<'a> {
        data: &'a [u8],
        objects: HashMap<u32, Loc>,
        packed: Vec<Vec<u8>>,
        root: Option<u32>,
        encrypted: bool,
        /// Objects of `/Type /Page`, in file order: the pages when the page tree is broken.
        pages_seen: Vec<u32>,
        /// Bytes parsed looking objects up, against [`Doc::parse_budget`]: a hostile file makes
        /// thousands of pages share one huge object, or an object stream list one offset
        /// thousands of times.
        parsed: Cell<u64>,
        /// A lookup was refused for want of budget.
        exhausted: Cell<bool>,
    }

    impl<'a> Doc<'a> {
        /// Finds every `N G obj` in one pass, skipping stream data.
        fn index(data: &'a [u8], work: &mut Work) -> Doc<'a> {
            let mut doc = Doc {
                data,
                objects: HashMap::new(),
                packed: Vec::new(),
                root: None,
                encrypted: false,
                pages_seen: Vec::new(),
                parsed: Cell::new(0),
                exhausted: Cell::new(false),
            };
            let mut catalog = None;
            let mut object_streams = Vec::new();
            let mut p = Parser::new(data, 0, true);
            let mut endstream = NextMatch::new(data, b"endstream");
            // The two integers before the current token: an object's number and generation.
            let mut before: [Option<f64>; 2] = [None, None];
            let mut tokens = 0usize;
            while let Some(tok) = p.lx.token() {
                tokens += 1;
                if tokens.is_multiple_of(OPS_PER_CHECK * 16) && work.out_of_time() {
                    break;
                }
                match tok {
                    Tok::Num(v, true) => {
                        before = [before[1], Some(v)];
                        continue;
                    }
                    Tok::Keyword(b"obj") => {
                        if let [Some(num), Some(_)] = before
                            && num >= 0.0
                            && num <= f64::from(u32::MAX)
                        {
                            let num = num as u32;
                            let at = p.lx.pos;
                            let Some(value) = p.object() else {
                                break;
                            };
                            let save = p.lx.pos;
                            let stream = match p.lx.token() {
                                Some(Tok::Keyword(b"stream")) => {
                                    let (range, resume) =
                                        stream_range(data, p.lx.pos, &value, &mut endstream);
                                    p.lx.pos = resume;
                                    Some(range)
                                }
                                _ => {
                                    p.lx.pos = save;
                                    None
                                }
                            };
                            if doc.objects.len() >= MAX_OBJECTS {
                                work.truncated = true;
                                break;
                            }
                            doc.objects.insert(num, Loc::Direct { at, stream });
                            doc.note(num, &value, &mut catalog);
                            if stream.is_some() && value.is_type(b"ObjStm") {
                                object_streams.push(num);
                            }
                        }
                    }
                    Tok::Keyword(b"trailer") => {
                        if let Some(trailer) = p.object() {
                            doc.note_trailer(&trailer);
                        }
                    }
                    _ => {}
                }
                before = [None, None];
            }
            for num in object_streams {
                doc.unpack_object_stream(num, work, &mut catalog);
            }
            if doc.root.is_none() {
                doc.root = catalog;
            }
            doc
        }

        /// Remembers what the page walk needs from object `num`.
        fn note(&mut self, num: u32, value: &Obj, catalog: &mut Option<u32>) {
            if value.is_type(b"Page") {
                self.pages_seen.push(num);
            } else if value.is_type(b"Catalog") {
                *catalog = Some(num);
            } else if value.is_type(b"XRef") {
                // A cross-reference stream's dictionary is the trailer of PDF 1.5.
                self.note_trailer(value);
            }
        }

        fn note_trailer(&mut self, trailer: &Obj) {
            if trailer.get(b"Encrypt").is_some_and(|e| *e != Obj::Null) {
                self.encrypted = true;
            }
            if let Some(Obj::Ref(root)) = trailer.get(b"Root") {
                self.root = Some(*root);
            }
        }

        /// Indexes the objects packed in object stream `num` (those not defined directly).
        fn unpack_object_stream(&mut self, num: u32, work: &mut Work, catalog: &mut Option<u32>) {
            let Some((dict, Some(raw))) = self.get(num) else {
                return;
            };
            let Some(data) = self.decode(&dict, raw, work) else {
                return;
            };
            let count = dict.get(b"N").and_then(Obj::num).unwrap_or(0.0);
            let first = dict.get(b"First").and_then(Obj::num).unwrap_or(0.0);
            if !(0.0..=MAX_OBJECTS as f64).contains(&count) || first < 0.0 {
                return;
            }
            let index = self.packed.len();
            let mut header = Lexer {
                data: &data,
                pos: 0,
            };
            let mut found = Vec::new();
            for _ in 0..count as usize {
                match (header.token(), header.token()) {
                    (Some(Tok::Num(n, true)), Some(Tok::Num(off, true)))
                        if n >= 0.0 && off >= 0.0 =>
                    {
                        found.push((n.min(f64::from(u32::MAX)) as u32, first + off));
                    }
                    _ => break,
                }
            }
            for (n, at) in found {
                if at >= data.len() as f64 || self.objects.contains_key(&n) {
                    continue;
                }
                if self.objects.len() >= MAX_OBJECTS {
                    work.truncated = true;
                    break;
                }
                let at = at as usize;
                if let Some(value) = self.parse_at(&data, at) {
                    self.note(n, &value, catalog);
                }
                self.objects.insert(n, Loc::Packed { stream: index, at });
            }
            self.packed.push(data);
        }

        /// Object `num` and its stream's raw data.
        fn get(&self, num: u32) -> Option<(Obj, Option<&'a [u8]>)> {
            match *self.objects.get(&num)? {
                Loc::Direct { at, stream } => {
                    let value = self.parse_at(self.data, at)?;
                    let raw = stream.and_then(|(s, e)| self.data.get(s..e));
                    Some((value, raw))
                }
                Loc::Packed { stream, at } => {
                    let data = self.packed.get(stream)?;
                    Some((self.parse_at(data, at)?, None))
                }
            }
        }

        /// Looking objects up may parse twice the file and a little more: a normal document
        /// needs a fraction of that (its page tree, resources and fonts).
        fn parse_budget(&self) -> u64 {
            2 * (self.data.len() as u64 + self.packed.iter().map(|p| p.len() as u64).sum::<u64>())
                + 8 * 1024 * 1024
        }

        /// The object at `at` of `data`, unless the parsing budget is spent.
        fn parse_at(&self, data: &[u8], at: usize) -> Option<Obj> {
            if self.parsed.get() > self.parse_budget() {
                self.exhausted.set(true);
                return None;
            }
            let mut p = Parser::new(data, at, true);
            let value = p.object();
            self.parsed
                .set(self.parsed.get() + p.lx.pos.saturating_sub(at) as u64);
            value
        }

        /// `obj` itself, or the object it refers to (through a few references at most).
        fn resolve<'o>(&self, obj: &'o Obj) -> Cow<'o, Obj> {
            let mut current = Cow::Borrowed(obj);
            for _ in 0..8 {
                match *current {
                    Obj::Ref(n) => match self.get(n) {
                        Some((o, _)) => current = Cow::Owned(o),
                        None => return Cow::Owned(Obj::Null),
                    },
                    _ => return current,
                }
            }
            Cow::Owned(Obj::Null)
        }

        /// A stream's data, its filters undone, within the message's decoding budget.
        fn decode(&self, dict: &Obj, raw: &[u8], work: &mut Work) -> Option<Vec<u8>> {
            if work.out_of_time() {
                return None;
            }
            let filters = match dict.get(b"Filter").map(|f| self.resolve(f)) {
                None => Vec::new(),
                Some(f) => match &*f {
                    Obj::Name(n) => vec![n.clone()],
                    Obj::Array(a) => a
                        .iter()
                        .filter_map(|o| o.name().map(<[u8]>::to_vec))
                        .collect(),
                    _ => Vec::new(),
                },
            };
            let room = MAX_PDF_DECODED.saturating_sub(work.pdf_decoded);
            let limit = room.min(MAX_PDF_STREAM);
            if room == 0 || filters.len() > 4 {
                work.truncated |= room == 0;
                return None;
            }
            let mut data = raw.to_vec();
            for filter in filters {
                data = match filter.as_slice() {
                    b"FlateDecode" | b"Fl" => {
                        let (out, cut) = inflate(&data, limit);
                        work.truncated |= cut;
                        out
                    }
                    b"ASCIIHexDecode" | b"AHx" => Lexer {
                        data: &data,
                        pos: 0,
                    }
                    .hex(),
                    b"ASCII85Decode" | b"A85" => ascii85(&data),
                    // Images and the rest carry no text.
                    _ => return None,
                };
            }
            if data.len() as u64 > limit {
                data.truncate(limit as usize);
                work.truncated = true;
            }
            work.pdf_decoded += data.len() as u64;
            Some(data)
        }

        /// The pages in document order with the resources each inherits, from the page tree
        /// (or, when it is broken, every page object in file order).
        fn pages(&self, work: &mut Work) -> Vec<(Obj, Option<Rc<Obj>>)> {
            let mut pages = Vec::new();
            let mut seen = HashSet::new();
            // Resources shared by many pages are parsed once.
            let mut shared: HashMap<u32, Rc<Obj>> = HashMap::new();
            let tree = self
                .root
                .and_then(|r| self.get(r))
                .and_then(|(catalog, _)| catalog.get(b"Pages").cloned());
            let mut stack: Vec<(Obj, Option<Rc<Obj>>)> =
                tree.into_iter().map(|t| (t, None)).collect();
            while let Some((node, inherited)) = stack.pop() {
                if let Obj::Ref(n) = node
                    && !seen.insert(n)
                {
                    continue;
                }
                if seen.len() > MAX_PAGES * 2 || pages.len() >= MAX_PAGES {
                    work.truncated = true;
                    break;
                }
                let node = self.resolve(&node).into_owned();
                let resources = match node.get(b"Resources") {
                    Some(Obj::Ref(n)) => {
                        Some(Rc::clone(shared.entry(*n).or_insert_with(|| {
                            Rc::new(self.resolve(&Obj::Ref(*n)).into_owned())
                        })))
                    }
                    Some(r) => Some(Rc::new(r.clone())),
                    None => inherited,
                };
                match node.get(b"Kids").map(|k| self.resolve(k).into_owned()) {
                    Some(Obj::Array(kids)) => {
                        for kid in kids.into_iter().rev() {
                            stack.push((kid, resources.clone()));
                        }
                    }
                    Some(_) => {}
                    None if node.get(b"Contents").is_some() => pages.push((node, resources)),
                    None => {}
                }
            }
            if pages.is_empty() {
                for &n in self.pages_seen.iter().take(MAX_PAGES) {
                    if let Some((page, _)) = self.get(n) {
                        let resources = self.inherited_resources(&page);
                        pages.push((page, resources));
                    }
                }
            }
            pages
        }

        /// A page's resources, its own or its ancestors'.
        fn inherited_resources(&self, page: &Obj) -> Option<Rc<Obj>> {
            let mut node = Cow::Borrowed(page);
            for _ in 0..16 {
                if let Some(r) = node.get(b"Resources") {
                    return Some(Rc::new(self.resolve(r).into_owned()));
                }
                let parent = node.get(b"Parent")?.clone();
                node = Cow::Owned(self.resolve(&parent).into_owned());
            }
            None
        }
    }

    /// Where a stream's data lies (`start` is just after the `stream` keyword): by its
    /// `/Length` when that ends at `endstream`, else up to the next `endstream`. Returns the
    /// range and where parsing resumes.
    fn stream_range(
        data: &[u8],
        mut start: usize,
        dict: &Obj,
        endstream: &mut NextMatch<'_>,
    ) -> ((usize, usize), usize) {
        if data.get(start..start + 2) == Some(b"\r\n") {
            start += 2;
        } else if matches!(data.get(start), Some(b'\n' | b'\r')) {
            start += 1;
        }
        if let Some(len) = dict.get(b"Length").and_then(Obj::num)
            && len >= 0.0
            && let Some(end) = start.checked_add(len as usize)
            && end <= data.len()
        {
            let mut after = end;
            while data.get(after).is_some_and(|&b| is_white(b)) {
                after += 1;
            }
            if data[after..].starts_with(b"endstream") {
                return ((start, end), after + 9);
            }
        }
        match endstream.at_or_after(start) {
            Some(at) => {
                let mut end = at;
                if end > start && data[end - 1] == b'\n' {
                    end -= 1;
                }
                if end > start && data[end - 1] == b'\r' {
                    end -= 1;
                }
                ((start, end), at + 9)
            }
            None => ((start, data.len()), data.len()),
        }
    }

    /// Inflates zlib (or, failing that, raw deflate) data up to `limit` bytes; what a damaged
    /// stream gave before its damage is kept. Says whether the limit cut it.
    fn inflate(data: &[u8], limit: u64) -> (Vec<u8>, bool) {
        let mut out = Vec::new();
        let _ = flate2::read::ZlibDecoder::new(data)
            .take(limit + 1)
            .read_to_end(&mut out);
        if out.is_empty() {
            let _ = flate2::read::DeflateDecoder::new(data)
                .take(limit + 1)
                .read_to_end(&mut out);
        }
        let cut = out.len() as u64 > limit;
        out.truncate(limit as usize);
        (out, cut)
    }

    /// ASCII base-85 (`~>` ends it, `z` is four zero bytes).
    fn ascii85(data: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(data.len() / 5 * 4 + 4);
        let mut group = [0u8; 5];
        let mut n = 0;
        for &b in data {
            match b {
                b'~' => break,
                b'z' if n == 0 => out.extend_from_slice(&[0; 4]),
                b'!'..=b'u' => {
                    group[n] = b - b'!';
                    n += 1;
                    if n == 5 {
                        let v = group.iter().fold(0u64, |v, d| v * 85 + u64::from(*d));
                        out.extend_from_slice(&(v as u32).to_be_bytes());
                        n = 0;
                    }
                }
                _ => {}
            }
        }
        if n > 1 {
            for slot in group.iter_mut().skip(n) {
                *slot = 84;
            }
            let v = group.iter().fold(0u64, |v, d| v * 85 + u64::from(*d));
            out.extend_from_slice(&(v as u32).to_be_bytes()[..n - 1]);
        }
        out
    }

    // ---- Fonts ------------------------------------------------------------------------

    /// How a font's strings split into character codes.
    enum Codes {
        /// Simple fonts: one byte each.
        One,
        /// Identity-H and the UCS-2/UTF-16 CMaps: two bytes each.
        Two,
        /// The GB CMaps (`GBK-EUC-H`…): one byte below 0x81, else a GB18030 sequence.
        Gb,
        /// An embedded CMap's code space: (bytes, low, high) ranges.
        Ranges(Vec<(usize, u32, u32)>),
    }

    /// What a code means when the font has no ToUnicode entry for it.
    enum Fallback {
        /// A simple font's encoding (base encoding and `/Differences`).
        Table(Box<[Option<char>; 256]>),
        /// The code is the character (UCS-2).
        Unicode,
        /// The bytes are GB18030.
        Gb,
        /// Nothing (Identity-H without ToUnicode: glyph numbers only the font program maps).
        Nothing,
    }

    /// Glyph widths in thousandths of the font size.
    enum Widths {
        Simple {
            first: u32,
            widths: Vec<f64>,
            missing: f64,
        },
        Cid {
            default: f64,
            ranges: Vec<(u32, u32, f64)>,
        },
    }

    struct Font {
        codes: Codes,
        to_unicode: HashMap<u32, Box<str>>,
        fallback: Fallback,
        widths: Widths,
    }

    impl Font {
        /// Splits `bytes` into (code, its bytes).
        fn split<'b>(&self, bytes: &'b [u8]) -> Vec<(u32, &'b [u8])> {
            let mut out = Vec::with_capacity(bytes.len());
            let mut i = 0;
            while i < bytes.len() {
                let len = match &self.codes {
                    Codes::One => 1,
                    Codes::Two => 2,
                    Codes::Gb => match (bytes[i], bytes.get(i + 1)) {
                        (0..=0x80, _) => 1,
                        (_, Some(0x30..=0x39)) => 4,
                        _ => 2,
                    },
                    Codes::Ranges(ranges) => (1..=4)
                        .find(|&n| {
                            let code = be(&bytes[i..(i + n).min(bytes.len())]);
                            ranges
                                .iter()
                                .any(|&(len, lo, hi)| len == n && (lo..=hi).contains(&code))
                        })
                        .unwrap_or(1),
                };
                let piece = &bytes[i..(i + len).min(bytes.len())];
                out.push((be(piece), piece));
                i += len;
            }
            out
        }

        fn push_text(&self, code: u32, piece: &[u8], sink: &mut Sink) {
            if let Some(text) = self.to_unicode.get(&code) {
                sink.push(text);
                return;
            }
            match &self.fallback {
                Fallback::Table(table) => {
                    if let Some(c) = table.get(code as usize).copied().flatten() {
                        sink.push_char(c);
                    }
                }
                Fallback::Unicode => {
                    if let Some(c) = char::from_u32(code).filter(|c| !c.is_control()) {
                        sink.push_char(c);
                    }
                }
                Fallback::Gb => {
                    let (text, _) = encoding_rs::GB18030.decode_without_bom_handling(piece);
                    sink.push(&text);
                }
                Fallback::Nothing => {}
            }
        }

        fn width(&self, code: u32) -> f64 {
            match &self.widths {
                Widths::Simple {
                    first,
                    widths,
                    missing,
                } => code
                    .checked_sub(*first)
                    .and_then(|i| widths.get(i as usize))
                    .copied()
                    .unwrap_or(*missing),
                Widths::Cid { default, ranges } => {
                    let i = ranges.partition_point(|&(lo, _, _)| lo <= code);
                    match i.checked_sub(1).and_then(|i| ranges.get(i)) {
                        Some(&(_, hi, w)) if code <= hi => w,
                        _ => *default,
                    }
                }
            }
        }
    }

    /// Big-endian value of up to four bytes (the last four of a longer string).
    fn be(bytes: &[u8]) -> u32 {
        bytes.iter().fold(0u32, |v, b| v << 8 | u32::from(*b))
    }

    /// The character a glyph name stands for, for the names `/Differences` arrays use.
    fn glyph_char(name: &[u8]) -> Option<char> {
        const NAMES: &[(&[u8], char)] = &[
            (b"zero", '0'),
            (b"one", '1'),
            (b"two", '2'),
            (b"three", '3'),
            (b"four", '4'),
            (b"five", '5'),
            (b"six", '6'),
            (b"seven", '7'),
            (b"eight", '8'),
            (b"nine", '9'),
            (b"space", ' '),
            (b"period", '.'),
            (b"comma", ','),
            (b"hyphen", '-'),
            (b"minus", '-'),
            (b"colon", ':'),
            (b"semicolon", ';'),
            (b"slash", '/'),
            (b"parenleft", '('),
            (b"parenright", ')'),
            (b"underscore", '_'),
            (b"at", '@'),
            (b"plus", '+'),
            (b"equal", '='),
            (b"asterisk", '*'),
            (b"numbersign", '#'),
            (b"percent", '%'),
            (b"ampersand", '&'),
            (b"quoteright", '\''),
            (b"quotesingle", '\''),
            (b"quotedbl", '"'),
        ];
        match name {
            [c] if c.is_ascii_alphanumeric() => return Some(char::from(*c)),
            _ => {}
        }
        if let Some((_, c)) = NAMES.iter().find(|(n, _)| *n == name) {
            return Some(*c);
        }
        let hex = name
            .strip_prefix(b"uni")
            .filter(|h| h.len() == 4)
            .or_else(|| {
                name.strip_prefix(b"u")
                    .filter(|h| (4..=6).contains(&h.len()))
            })?;
        let hex = std::str::from_utf8(hex).ok()?;
        char::from_u32(u32::from_str_radix(hex, 16).ok()?)
    }

    /// A CMap's mappings (`bfchar`, `bfrange`) and code space.
    #[derive(Default)]
    struct CMap {
        map: HashMap<u32, Box<str>>,
        codespace: Vec<(usize, u32, u32)>,
        /// Mappings read, the same code's included: what the CMap cost, bounded.
        read: usize,
        /// Bytes of mapped text kept: a range copies its target once per code, so a long
        /// target would multiply memory by the range's width.
        bytes: usize,
    }

    /// Longest mapping target taken, in bytes (the PDF specification's own limit for a
    /// `bfchar`/`bfrange` destination string).
    const MAX_TARGET: usize = 512;
    /// Most bytes of mapped text one CMap keeps.
    const MAX_MAP_BYTES: usize = 4 << 20;

    /// UTF-16BE bytes as text, NULs dropped.
    fn utf16be(bytes: &[u8]) -> String {
        let units: Vec<u16> = bytes
            .chunks_exact(2)
            .map(|p| u16::from_be_bytes([p[0], p[1]]))
            .collect();
        String::from_utf16_lossy(&units).replace('\0', "")
    }

    impl CMap {
        fn parse(data: &[u8]) -> CMap {
            let mut cmap = CMap::default();
            let mut p = Parser::new(data, 0, false);
            let mut operands: Vec<Obj> = Vec::new();
            while let Some(item) = p.item() {
                if cmap.full() {
                    break;
                }
                match item {
                    Item::Obj(o) => {
                        if operands.len() < 3 * 10_000 {
                            operands.push(o);
                        }
                    }
                    Item::Op(b"endcodespacerange") => {
                        for pair in operands.chunks_exact(2) {
                            if let [Obj::Str(lo), Obj::Str(hi)] = pair
                                && (1..=4).contains(&lo.len())
                                && cmap.codespace.len() < 64
                            {
                                cmap.codespace.push((lo.len(), be(lo), be(hi)));
                            }
                        }
                        operands.clear();
                    }
                    Item::Op(b"endbfchar") => {
                        for pair in operands.chunks_exact(2) {
                            let text = match &pair[1] {
                                Obj::Str(s) if s.len() <= MAX_TARGET => utf16be(s),
                                Obj::Name(n) => glyph_char(n).map(String::from).unwrap_or_default(),
                                _ => continue,
                            };
                            if let Obj::Str(src) = &pair[0] {
                                cmap.insert(be(src), text);
                            }
                        }
                        operands.clear();
                    }
                    Item::Op(b"endbfrange") => {
                        for triple in operands.chunks_exact(3) {
                            let [Obj::Str(lo), Obj::Str(hi), dst] = triple else {
                                continue;
                            };
                            let (lo, hi) = (be(lo), be(hi));
                            // A range may vary only in its last byte: 256 codes at most.
                            let hi = hi.min(lo.saturating_add(255));
                            for (i, code) in (lo..=hi).enumerate() {
                                if cmap.full() {
                                    break;
                                }
                                let text = match dst {
                                    Obj::Str(s) if (2..=MAX_TARGET).contains(&s.len()) => {
                                        let mut s = s.clone();
                                        let n = s.len();
                                        let last = u16::from_be_bytes([s[n - 2], s[n - 1]])
                                            .wrapping_add(i as u16);
                                        s[n - 2..].copy_from_slice(&last.to_be_bytes());
                                        utf16be(&s)
                                    }
                                    Obj::Array(a) => match a.get(i) {
                                        Some(Obj::Str(s)) if s.len() <= MAX_TARGET => utf16be(s),
                                        _ => break,
                                    },
                                    _ => break,
                                };
                                cmap.insert(code, text);
                            }
                        }
                        operands.clear();
                    }
                    Item::Op(_) => operands.clear(),
                }
            }
            cmap
        }

        fn insert(&mut self, code: u32, text: String) {
            self.read += 1;
            self.bytes += text.len();
            self.map.insert(code, text.into_boxed_str());
        }

        /// Whether [`MAX_MAP`] mappings or [`MAX_MAP_BYTES`] of text were read: the rest of
        /// the CMap is not.
        fn full(&self) -> bool {
            self.read >= MAX_MAP || self.bytes >= MAX_MAP_BYTES
        }
    }

    /// A simple font's code table: a base encoding and its `/Differences`.
    fn simple_table(encoding: &Obj, doc: &Doc) -> Box<[Option<char>; 256]> {
        let base = match encoding {
            Obj::Name(n) => n.as_slice(),
            Obj::Dict(_) => encoding
                .get(b"BaseEncoding")
                .and_then(Obj::name)
                .unwrap_or(b""),
            _ => b"",
        };
        let charset = if base == b"MacRomanEncoding" {
            encoding_rs::MACINTOSH
        } else {
            encoding_rs::WINDOWS_1252
        };
        let mut table = Box::new([None; 256]);
        for (b, slot) in table.iter_mut().enumerate() {
            let byte = [b as u8];
            let (text, _) = charset.decode_without_bom_handling(&byte);
            *slot = text.chars().next().filter(|c| !c.is_control());
        }
        let diffs = encoding
            .get(b"Differences")
            .map(|d| doc.resolve(d).into_owned());
        if let Some(Obj::Array(diffs)) = diffs {
            let mut code = 0usize;
            for d in diffs {
                match d {
                    Obj::Num(n) if n >= 0.0 => code = n as usize,
                    Obj::Name(name) => {
                        if let Some(slot) = table.get_mut(code) {
                            *slot = glyph_char(&name);
                        }
                        code += 1;
                    }
                    _ => {}
                }
            }
        }
        table
    }

    impl Doc<'_> {
        fn stream_of(&self, obj: &Obj, work: &mut Work) -> Option<(Obj, Vec<u8>)> {
            let Obj::Ref(n) = obj else {
                return None;
            };
            let (dict, raw) = self.get(*n)?;
            let data = self.decode(&dict, raw?, work)?;
            Some((dict, data))
        }

        fn load_font(&self, font: &Obj, work: &mut Work) -> Font {
            let to_unicode = font
                .get(b"ToUnicode")
                .and_then(|t| self.stream_of(t, work))
                .map(|(_, data)| CMap::parse(&data))
                .unwrap_or_default();
            work.truncated |= to_unicode.full();
            let encoding = font.get(b"Encoding").map(|e| self.resolve(e).into_owned());
            if font.get(b"Subtype").and_then(Obj::name) == Some(&b"Type0"[..]) {
                let (codes, fallback) = match &encoding {
                    Some(Obj::Name(name)) => {
                        let name = String::from_utf8_lossy(name);
                        if name.starts_with("Identity") {
                            (Codes::Two, Fallback::Nothing)
                        } else if name.contains("UCS2") || name.contains("UTF16") {
                            (Codes::Two, Fallback::Unicode)
                        } else if name.starts_with("GB") {
                            (Codes::Gb, Fallback::Gb)
                        } else {
                            (Codes::Two, Fallback::Nothing)
                        }
                    }
                    _ => {
                        // An embedded CMap: its code space tells how codes split.
                        let space = font
                            .get(b"Encoding")
                            .and_then(|e| self.stream_of(e, work))
                            .map(|(_, data)| CMap::parse(&data).codespace)
                            .filter(|s| !s.is_empty())
                            .or_else(|| {
                                (!to_unicode.codespace.is_empty())
                                    .then(|| to_unicode.codespace.clone())
                            });
                        (space.map_or(Codes::Two, Codes::Ranges), Fallback::Nothing)
                    }
                };
                let descendant = font
                    .get(b"DescendantFonts")
                    .map(|d| self.resolve(d).into_owned())
                    .and_then(|d| match d {
                        Obj::Array(a) => a.first().map(|f| self.resolve(f).into_owned()),
                        _ => None,
                    })
                    .unwrap_or(Obj::Null);
                Font {
                    codes,
                    to_unicode: to_unicode.map,
                    fallback,
                    widths: self.cid_widths(&descendant),
                }
            } else {
                let table = simple_table(encoding.as_ref().unwrap_or(&Obj::Null), self);
                Font {
                    codes: Codes::One,
                    to_unicode: to_unicode.map,
                    fallback: Fallback::Table(table),
                    widths: self.simple_widths(font),
                }
            }
        }

        fn simple_widths(&self, font: &Obj) -> Widths {
            let first = font.get(b"FirstChar").and_then(Obj::num).unwrap_or(0.0);
            let widths: Vec<f64> = match font.get(b"Widths").map(|w| self.resolve(w)) {
                Some(w) => match &*w {
                    Obj::Array(a) => a
                        .iter()
                        .take(256)
                        .map(|w| self.resolve(w).num().unwrap_or(0.0))
                        .collect(),
                    _ => Vec::new(),
                },
                None => Vec::new(),
            };
            let descriptor = font
                .get(b"FontDescriptor")
                .map(|d| self.resolve(d).into_owned());
            let missing = descriptor
                .as_ref()
                .and_then(|d| d.get(b"MissingWidth"))
                .and_then(Obj::num)
                .filter(|w| *w > 0.0);
            // The standard 14 fonts come without widths: an average glyph, monospaced Courier.
            let base = font.get(b"BaseFont").and_then(Obj::name).unwrap_or(b"");
            let average = if base.starts_with(b"Courier") {
                600.0
            } else {
                500.0
            };
            Widths::Simple {
                first: first.clamp(0.0, 255.0) as u32,
                widths,
                missing: missing.unwrap_or(average),
            }
        }

        fn cid_widths(&self, descendant: &Obj) -> Widths {
            let default = descendant.get(b"DW").and_then(Obj::num).unwrap_or(1000.0);
            let mut ranges = Vec::new();
            if let Some(w) = descendant.get(b"W") {
                let w = self.resolve(w);
                if let Obj::Array(items) = &*w {
                    let mut i = 0;
                    while i < items.len() && ranges.len() < MAX_MAP {
                        let Some(first) = items[i].num().filter(|n| *n >= 0.0) else {
                            i += 1;
                            continue;
                        };
                        let first = first.min(f64::from(u32::MAX)) as u32;
                        match (items.get(i + 1), items.get(i + 2)) {
                            (Some(Obj::Array(list)), _) => {
                                for (k, w) in list.iter().enumerate().take(MAX_MAP) {
                                    let code = first.saturating_add(k as u32);
                                    ranges.push((code, code, w.num().unwrap_or(default)));
                                }
                                i += 2;
                            }
                            (Some(last), Some(width)) => {
                                if let (Some(last), Some(width)) = (last.num(), width.num()) {
                                    let last = last.clamp(0.0, f64::from(u32::MAX)) as u32;
                                    ranges.push((first, last, width));
                                }
                                i += 3;
                            }
                            _ => break,
                        }
                    }
                }
            }
            ranges.sort_by_key(|r| r.0);
            Widths::Cid { default, ranges }
        }
    }

    // ---- Content streams ----------------------------------------------------------------

    /// An affine matrix `[a b c d e f]`.
    #[derive(Clone, Copy, Debug)]
    struct Matrix([f64; 6]);

    impl Matrix {
        const IDENTITY: Matrix = Matrix([1.0, 0.0, 0.0, 1.0, 0.0, 0.0]);

        fn translate(x: f64, y: f64) -> Matrix {
            Matrix([1.0, 0.0, 0.0, 1.0, x, y])
        }

        /// `self` then `other` (PDF's row-vector order).
        fn then(&self, other: &Matrix) -> Matrix {
            let [a, b, c, d, e, f] = self.0;
            let [a2, b2, c2, d2, e2, f2] = other.0;
            Matrix([
                a * a2 + b * c2,
                a * b2 + b * d2,
                c * a2 + d * c2,
                c * b2 + d * d2,
                e * a2 + f * c2 + e2,
                e * b2 + f * d2 + f2,
            ])
        }

        fn scale(&self) -> f64 {
            let [a, b, c, d, _, _] = self.0;
            (a * d - b * c).abs().sqrt()
        }

        fn from_obj(obj: Option<&Obj>) -> Option<Matrix> {
            let Some(Obj::Array(items)) = obj else {
                return None;
            };
            let mut m = [0.0; 6];
            for (slot, item) in m.iter_mut().zip(items) {
                *slot = item.num()?;
            }
            (items.len() == 6).then_some(Matrix(m))
        }
    }

    /// The graphics and text state the text operators use.
    #[derive(Clone)]
    struct State {
        ctm: Matrix,
        font: Option<Rc<Font>>,
        size: f64,
        char_spacing: f64,
        word_spacing: f64,
        horizontal: f64,
        leading: f64,
        tm: Matrix,
        line: Matrix,
    }

    struct TextReader<'d, 'a, 's, 'w> {
        doc: &'d Doc<'a>,
        sink: &'s mut Sink,
        work: &'s mut Work<'w>,
        /// Fonts loaded, by object number.
        fonts: HashMap<u32, Rc<Font>>,
        /// Content streams and forms already read: each is read once, however often used.
        streams_read: HashSet<u32>,
        /// Where the last text shown ended, on which line, at what size (device space).
        last: Option<(f64, f64, f64)>,
        ops: usize,
        /// The named resources of each page's resource dictionary, read once for all the
        /// pages that share it (the pages keep the dictionaries alive, so the address is
        /// theirs for the whole read).
        named: HashMap<*const Obj, Rc<Named>>,
    }

    /// A resource dictionary's fonts and XObjects by name, and the fonts defined inline in it.
    #[derive(Default)]
    struct Named {
        fonts: HashMap<Vec<u8>, Obj>,
        xobjects: HashMap<Vec<u8>, Obj>,
        inline_fonts: RefCell<HashMap<Vec<u8>, Rc<Font>>>,
    }

    impl Named {
        fn of(doc: &Doc, resources: Option<&Obj>) -> Named {
            let by_name = |key: &[u8]| -> HashMap<Vec<u8>, Obj> {
                match resources.and_then(|r| r.get(key)).map(|d| doc.resolve(d)) {
                    Some(d) => match d.into_owned() {
                        Obj::Dict(entries) => entries.into_iter().collect(),
                        _ => HashMap::new(),
                    },
                    None => HashMap::new(),
                }
            };
            Named {
                fonts: by_name(b"Font"),
                xobjects: by_name(b"XObject"),
                inline_fonts: RefCell::default(),
            }
        }
    }

    impl TextReader<'_, '_, '_, '_> {
        fn page(&mut self, page: &Obj, resources: Option<&Rc<Obj>>) {
            self.sink.sep('\n');
            self.last = None;
            let contents = match page.get(b"Contents") {
                Some(Obj::Ref(n)) => match self.doc.get(*n) {
                    Some((Obj::Array(a), None)) => a,
                    _ => vec![Obj::Ref(*n)],
                },
                Some(Obj::Array(a)) => a.clone(),
                _ => Vec::new(),
            };
            // Content may be split anywhere between tokens, so the pieces are read as one.
            let mut content = Vec::new();
            for part in &contents {
                if let Obj::Ref(n) = part
                    && !self.streams_read.insert(*n)
                {
                    continue;
                }
                if let Some((_, data)) = self.doc.stream_of(part, self.work) {
                    content.extend_from_slice(&data);
                    content.push(b'\n');
                }
            }
            if content.is_empty() {
                return;
            }
            let named = match resources {
                Some(r) => {
                    let doc = self.doc;
                    Rc::clone(
                        self.named
                            .entry(Rc::as_ptr(r))
                            .or_insert_with(|| Rc::new(Named::of(doc, Some(r)))),
                    )
                }
                None => Rc::new(Named::default()),
            };
            self.run(
                &content,
                resources.map(|r| &**r),
                &named,
                Matrix::IDENTITY,
                0,
            );
        }

        fn font(&mut self, named: &Named, name: &[u8]) -> Option<Rc<Font>> {
            match named.fonts.get(name)? {
                Obj::Ref(n) => {
                    if let Some(f) = self.fonts.get(n) {
                        return Some(Rc::clone(f));
                    }
                    let (dict, _) = self.doc.get(*n)?;
                    let font = Rc::new(self.doc.load_font(&dict, self.work));
                    self.fonts.insert(*n, Rc::clone(&font));
                    Some(font)
                }
                dict @ Obj::Dict(_) => {
                    if let Some(f) = named.inline_fonts.borrow().get(name) {
                        return Some(Rc::clone(f));
                    }
                    let font = Rc::new(self.doc.load_font(dict, self.work));
                    named
                        .inline_fonts
                        .borrow_mut()
                        .insert(name.to_vec(), Rc::clone(&font));
                    Some(font)
                }
                _ => None,
            }
        }

        /// Interprets one content stream with `resources` (whose fonts and XObjects are
        /// `named`), starting from `ctm`.
        fn run(
            &mut self,
            content: &[u8],
            resources: Option<&Obj>,
            named: &Named,
            ctm: Matrix,
            depth: usize,
        ) {
            let mut state = State {
                ctm,
                font: None,
                size: 0.0,
                char_spacing: 0.0,
                word_spacing: 0.0,
                horizontal: 1.0,
                leading: 0.0,
                tm: Matrix::IDENTITY,
                line: Matrix::IDENTITY,
            };
            let mut saved: Vec<State> = Vec::new();
            let mut operands: Vec<Obj> = Vec::new();
            let mut p = Parser::new(content, 0, false);
            while let Some(item) = p.item() {
                let op = match item {
                    Item::Obj(o) => {
                        if operands.len() >= 64 {
                            operands.clear();
                        }
                        operands.push(o);
                        continue;
                    }
                    Item::Op(op) => op,
                };
                self.ops += 1;
                if self.sink.full
                    || (self.ops.is_multiple_of(OPS_PER_CHECK) && self.work.out_of_time())
                {
                    return;
                }
                let num = |i: usize| -> f64 {
                    operands
                        .len()
                        .checked_sub(i)
                        .and_then(|at| operands.get(at))
                        .and_then(Obj::num)
                        .unwrap_or(0.0)
                };
                match op {
                    b"q" if saved.len() < 64 => saved.push(state.clone()),
                    b"Q" => {
                        if let Some(s) = saved.pop() {
                            state = s;
                        }
                    }
                    b"cm" => {
                        let m = Matrix([num(6), num(5), num(4), num(3), num(2), num(1)]);
                        state.ctm = m.then(&state.ctm);
                    }
                    b"BT" => {
                        state.tm = Matrix::IDENTITY;
                        state.line = Matrix::IDENTITY;
                    }
                    b"Tf" => {
                        state.size = num(1);
                        let name = operands.len().checked_sub(2).and_then(|i| operands.get(i));
                        state.font = match name {
                            Some(Obj::Name(n)) => self.font(named, n),
                            _ => None,
                        };
                    }
                    b"Tc" => state.char_spacing = num(1),
                    b"Tw" => state.word_spacing = num(1),
                    b"Tz" => state.horizontal = num(1) / 100.0,
                    b"TL" => state.leading = num(1),
                    b"Td" => next_line(&mut state, num(2), num(1)),
                    b"TD" => {
                        state.leading = -num(1);
                        next_line(&mut state, num(2), num(1));
                    }
                    b"Tm" => {
                        let m = Matrix([num(6), num(5), num(4), num(3), num(2), num(1)]);
                        state.tm = m;
                        state.line = m;
                    }
                    b"T*" => {
                        let leading = state.leading;
                        next_line(&mut state, 0.0, -leading);
                    }
                    b"Tj" | b"'" | b"\"" => {
                        if op == b"\"" {
                            state.word_spacing = num(3);
                            state.char_spacing = num(2);
                        }
                        if op != b"Tj" {
                            let leading = state.leading;
                            next_line(&mut state, 0.0, -leading);
                        }
                        if let Some(Obj::Str(s)) = operands.last() {
                            self.show(&mut state, s);
                        }
                    }
                    b"TJ" => {
                        if let Some(Obj::Array(items)) = operands.last() {
                            for item in items {
                                match item {
                                    Obj::Str(s) => self.show(&mut state, s),
                                    Obj::Num(n) => {
                                        let dx = -n / 1000.0 * state.size * state.horizontal;
                                        state.tm = Matrix::translate(dx, 0.0).then(&state.tm);
                                    }
                                    _ => {}
                                }
                            }
                        }
                    }
                    b"Do" if depth < MAX_FORM_DEPTH => {
                        if let Some(Obj::Name(name)) = operands.last()
                            && let Some(Obj::Ref(n)) = named.xobjects.get(name)
                        {
                            self.form(*n, resources, named, &state.ctm, depth);
                        }
                    }
                    b"ID" => skip_inline_image(&mut p.lx),
                    _ => {}
                }
                operands.clear();
            }
        }

        /// Reads form XObject `n` (once per document) as drawn with `ctm`.
        fn form(
            &mut self,
            n: u32,
            resources: Option<&Obj>,
            named: &Named,
            ctm: &Matrix,
            depth: usize,
        ) {
            if !self.streams_read.insert(n) {
                return;
            }
            let Some((dict, Some(raw))) = self.doc.get(n) else {
                return;
            };
            if dict.get(b"Subtype").and_then(Obj::name) != Some(&b"Form"[..]) {
                return;
            }
            let Some(data) = self.doc.decode(&dict, raw, self.work) else {
                return;
            };
            let matrix = Matrix::from_obj(dict.get(b"Matrix")).unwrap_or(Matrix::IDENTITY);
            let ctm = matrix.then(ctm);
            // A form without resources of its own uses those of the page that draws it.
            match dict
                .get(b"Resources")
                .map(|r| self.doc.resolve(r).into_owned())
            {
                Some(own) => {
                    let own_named = Named::of(self.doc, Some(&own));
                    self.run(&data, Some(&own), &own_named, ctm, depth + 1);
                }
                None => self.run(&data, resources, named, ctm, depth + 1),
            }
        }

        /// Shows string `s`: its text, separated from the text before it by what the gap on
        /// the page says (nothing within a word, a space between words, a tab between
        /// columns, a newline between lines).
        fn show(&mut self, state: &mut State, s: &[u8]) {
            let position = state.tm.then(&state.ctm);
            let size = (state.size.abs() * position.scale()).max(0.01);
            let (x, y) = (position.0[4], position.0[5]);
            if let Some((end_x, end_y, last_size)) = self.last {
                let em = size.max(last_size);
                let dx = x - end_x;
                if (y - end_y).abs() > 0.5 * em {
                    self.sink.sep('\n');
                } else if !(-0.5 * em..=em).contains(&dx) {
                    self.sink.sep('\t');
                } else if dx > 0.15 * em {
                    self.sink.sep(' ');
                }
            }
            let mut advance = 0.0;
            match state.font.clone() {
                Some(font) => {
                    for (code, piece) in font.split(s) {
                        font.push_text(code, piece, self.sink);
                        let space = if piece == b" " {
                            state.word_spacing
                        } else {
                            0.0
                        };
                        advance +=
                            font.width(code) / 1000.0 * state.size + state.char_spacing + space;
                    }
                }
                None => {
                    // No usable font: the bytes as Latin-1, the commonest case.
                    for &b in s {
                        if !b.is_ascii_control() {
                            self.sink.push_char(char::from(b));
                        }
                        advance += 0.5 * state.size + state.char_spacing;
                    }
                }
            }
            state.tm = Matrix::translate(advance * state.horizontal, 0.0).then(&state.tm);
            let end = state.tm.then(&state.ctm);
            self.last = Some((end.0[4], end.0[5], size));
        }
    }

    fn next_line(state: &mut State, tx: f64, ty: f64) {
        state.line = Matrix::translate(tx, ty).then(&state.line);
        state.tm = state.line;
    }

    /// Skips an inline image's data (after `ID`, up to `EI` between white space).
    fn skip_inline_image(lx: &mut Lexer) {
        let data = lx.data;
        let mut at = lx.pos + 1;
        while let Some(found) = data
            .get(at..)
            .and_then(|rest| super::attach::find(rest, b"EI"))
        {
            let ei = at + found;
            let before = ei == 0 || is_white(data[ei - 1]);
            let after = data.get(ei + 2).is_none_or(|&b| is_white(b));
            if before && after {
                lx.pos = ei + 2;
                return;
            }
            at = ei + 1;
        }
        lx.pos = data.len();
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn lexer_reads_strings_names_and_numbers() {
            let mut lx = Lexer {
                data: br"(a\(b\)c\101\
d) <48 65 6c6> /A#42 -.5 7 [ << >> %comment
kw",
                pos: 0,
            };
            let mut got = Vec::new();
            while let Some(t) = lx.token() {
                got.push(match t {
                    Tok::Str(s) => format!("S{}", String::from_utf8_lossy(&s)),
                    Tok::Name(n) => format!("N{}", String::from_utf8_lossy(&n)),
                    Tok::Num(v, int) => format!("#{v}{int}"),
                    Tok::Keyword(k) => format!("K{}", String::from_utf8_lossy(k)),
                    Tok::ArrayOpen => "[".into(),
                    Tok::ArrayClose => "]".into(),
                    Tok::DictOpen => "<<".into(),
                    Tok::DictClose => ">>".into(),
                });
            }
            assert_eq!(
                got,
                [
                    "Sa(b)cAd",
                    "SHel`",
                    "NAB",
                    "#-0.5false",
                    "#7true",
                    "[",
                    "<<",
                    ">>",
                    "Kkw"
                ]
            );
        }

        #[test]
        fn ascii85_and_cmaps() {
            assert_eq!(ascii85(b"87cURD]i,\"Ebo80~>"), b"Hello World!");
            assert_eq!(ascii85(b"87cURD]i,\"Ebo7~>"), b"Hello World");
            let cmap = CMap::parse(
                b"1 begincodespacerange <0000> <FFFF> endcodespacerange\n\
                  2 beginbfchar <0001> <8EAB> <0002> <4EFD> endbfchar\n\
                  1 beginbfrange <0010> <0019> <0030> endbfrange\n\
                  1 beginbfrange <0020> <0021> [<0041> <00420043>] endbfrange",
            );
            assert_eq!(cmap.codespace, [(2, 0, 0xffff)]);
            assert_eq!(&*cmap.map[&1], "身");
            assert_eq!(&*cmap.map[&0x12], "2");
            assert_eq!(&*cmap.map[&0x21], "BC");
            // A range over the whole code space is cut to 256 codes, not expanded.
            let huge = CMap::parse(b"1 beginbfrange <00000000> <FFFFFFFF> <0041> endbfrange");
            assert_eq!(huge.map.len(), 256);
            // Mapping the same codes again and again costs a bounded number of mappings (it
            // took 5 s before the bound counted repeats too).
            let repeated = "1 beginbfrange <0000> <FFFF> <0041> endbfrange\n".repeat(100_000);
            let cmap = CMap::parse(repeated.as_bytes());
            assert!(cmap.full() && cmap.read == MAX_MAP, "{}", cmap.read);
            // A range copies its target once per code: a megabyte target is refused instead of
            // being copied 256 times (review finding: gigabytes from a few kilobytes).
            let long = format!(
                "1 beginbfrange <0000> <00FF> <{}> endbfrange\n1 beginbfchar <0001> <{}> endbfchar",
                "0041".repeat(1 << 18),
                "0042".repeat(1 << 18)
            );
            let cmap = CMap::parse(long.as_bytes());
            assert!(cmap.map.is_empty() && cmap.bytes == 0, "{}", cmap.bytes);
            // Many mappings of the longest allowed target stop at the byte bound.
            let wide = format!(
                "1 beginbfrange <0000> <00FF> <{}> endbfrange\n",
                "0041".repeat(MAX_TARGET / 2)
            )
            .repeat(200);
            let cmap = CMap::parse(wide.as_bytes());
            assert!(
                cmap.full() && cmap.bytes < MAX_MAP_BYTES + MAX_TARGET,
                "{}",
                cmap.bytes
            );
        }

        /// An object stream naming one offset for thousands of objects, at an array megabytes
        /// long: lookups stop at the parsing budget instead of parsing it thousands of times.
        #[test]
        fn lookups_stop_at_the_parsing_budget() {
            let mut body = String::new();
            for i in 0..10_000 {
                body.push_str(&format!("{} 0 ", 100 + i));
            }
            let first = body.len();
            body.push_str(&"[1 2 3 4 5 6 7 8 9 ".repeat(100_000));
            let pdf = format!(
                "%PDF-1.7\n1 0 obj << /Type /ObjStm /N 10000 /First {first} /Length {} >> \
                 stream\n{body}\nendstream endobj\n",
                body.len()
            );
            let deadline = crate::pool::Deadline::unlimited();
            let mut work = Work {
                deadline: &deadline,
                pdf_decoded: 0,
                truncated: false,
            };
            let doc = Doc::index(pdf.as_bytes(), &mut work);
            assert!(doc.exhausted.get());
            assert!(doc.parsed.get() <= doc.parse_budget() + 2 * body.len() as u64);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Cursor, Write};
    use std::time::Duration;

    use chrono::NaiveDate;

    use super::*;
    use crate::attach::tests::zip_of;
    use crate::dlp::identifiers::{self, Detector};

    fn attachment(name: &str, data: Vec<u8>) -> Attachment {
        Attachment {
            name: name.into(),
            declared_type: String::new(),
            data,
        }
    }

    fn extract(name: &str, data: Vec<u8>) -> Extracted {
        attachments_text(&[attachment(name, data)], &Deadline::unlimited())
    }

    /// A valid 居民身份证号 from its first 17 digits (ISO 7064 MOD 11-2 check character).
    fn resident_id(first17: &str) -> String {
        const WEIGHTS: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
        let sum: u32 = first17
            .bytes()
            .zip(WEIGHTS)
            .map(|(d, w)| u32::from(d - b'0') * w)
            .sum();
        let check = b"10X98765432"[(sum % 11) as usize];
        format!("{first17}{}", char::from(check))
    }

    fn today() -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 12, 5).unwrap()
    }

    /// An Office package: `[Content_Types].xml` and the given parts.
    fn package(parts: &[(&str, &str)]) -> Vec<u8> {
        let types = r#"<?xml version="1.0"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"/>"#;
        let mut entries: Vec<(&str, &[u8])> = vec![("[Content_Types].xml", types.as_bytes())];
        entries.extend(parts.iter().map(|(n, x)| (*n, x.as_bytes())));
        entries.push((
            "docProps/app.xml",
            b"<Properties><Company>9</Company></Properties>",
        ));
        zip_of(&entries, false)
    }

    fn docx(body: &str) -> Vec<u8> {
        let document = format!(
            r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"><w:body>{body}</w:body></w:document>"#
        );
        package(&[
            ("word/document.xml", document.as_str()),
            (
                "word/header1.xml",
                r#"<w:hdr xmlns:w="w"><w:p><w:r><w:t>机密★5年</w:t></w:r></w:p></w:hdr>"#,
            ),
            ("word/styles.xml", "<w:styles><w:t>STYLE</w:t></w:styles>"),
        ])
    }

    /// A worksheet row of cells, each `(type, inner XML)`.
    fn row(cells: &[(&str, &str)]) -> String {
        let cells: String = cells
            .iter()
            .map(|(t, inner)| {
                if t.is_empty() {
                    format!("<c>{inner}</c>")
                } else {
                    format!(r#"<c t="{t}">{inner}</c>"#)
                }
            })
            .collect();
        format!("<row>{cells}</row>")
    }

    fn xlsx(shared: &[String], rows: &[String]) -> Vec<u8> {
        let strings: String = shared
            .iter()
            .map(|s| format!("<si><t>{s}</t></si>"))
            .collect();
        let shared_xml = format!(r#"<sst xmlns="x" count="{}">{strings}</sst>"#, shared.len());
        let sheet = format!(
            r#"<worksheet xmlns="x"><sheetData>{}</sheetData></worksheet>"#,
            rows.concat()
        );
        package(&[
            ("xl/workbook.xml", "<workbook/>"),
            ("xl/worksheets/sheet1.xml", sheet.as_str()),
            ("xl/sharedStrings.xml", shared_xml.as_str()),
        ])
    }

    #[test]
    fn docx_paragraphs_runs_tables_and_headers() {
        let body = r#"<w:p><w:r><w:t>身份证号：1101</w:t></w:r><w:r><w:rPr><w:b/></w:rPr><w:t xml:space="preserve">0119900307451X</w:t></w:r></w:p>
<w:p><w:r><w:t>A&amp;B</w:t><w:tab/><w:t>&#x4E2D;</w:t></w:r></w:p>
<w:tbl><w:tr><w:tc><w:p><w:r><w:t>123456</w:t></w:r></w:p></w:tc><w:tc><w:p><w:r><w:t>789012</w:t></w:r></w:p></w:tc></w:tr></w:tbl>
<w:p><w:del><w:r><w:delText>deleted 13812345678</w:delText></w:r></w:del></w:p>"#;
        let x = extract("report.docx", docx(body));
        let t = &x.text;
        // Runs of one word join; paragraphs, tabs and cells separate.
        assert!(t.contains("身份证号：11010119900307451X\n"), "{t:?}");
        assert!(t.contains("A&B\t中"), "{t:?}");
        assert!(
            t.contains("123456\n789012") || t.contains("123456\t789012"),
            "{t:?}"
        );
        assert!(!t.contains("123456789012"), "{t:?}");
        assert!(t.contains("deleted 13812345678"), "{t:?}");
        assert!(t.contains("机密★5年"), "{t:?}");
        assert!(!t.contains("STYLE") && !t.contains("Properties"), "{t:?}");
        assert_eq!(x.files.len(), 1, "{:?}", x.files);
        assert_eq!(x.files[0].kind, FileType::Zip);
        assert!(x.encrypted.is_empty() && x.unreadable.is_empty() && !x.truncated);
    }

    #[test]
    fn xlsx_shared_and_inline_strings_and_adjacent_cells() {
        let ids: Vec<String> = (1..=5)
            .map(|n| resident_id(&format!("4403041990030745{n}")))
            .collect();
        let shared = vec![ids[0].clone(), ids[1].clone(), "姓名".to_owned()];
        let inline = format!("<is><t>{}</t></is>", ids[2]);
        let rich = format!(
            "<is><r><t>{}</t></r><r><t>{}</t></r></is>",
            &ids[3][..9],
            &ids[3][9..]
        );
        let formula = format!("<f>A1</f><v>{}</v>", ids[4]);
        let rows = [
            row(&[("s", "<v>2</v>"), ("s", "<v>0</v>"), ("s", "<v>1</v>")]),
            row(&[
                ("inlineStr", inline.as_str()),
                ("inlineStr", rich.as_str()),
                ("str", formula.as_str()),
            ]),
            row(&[
                ("", "<v>123456</v>"),
                ("", "<v>789012</v>"),
                ("n", "<v>3.5</v>"),
            ]),
        ];
        let x = extract("staff.xlsx", xlsx(&shared, &rows));
        let t = &x.text;
        assert!(t.contains("123456\t789012\t3.5"), "{t:?}");
        // Indexes into the shared strings are not text; formulas are not either.
        assert!(!t.contains("\t0\t") && !t.contains("A1"), "{t:?}");
        let found = identifiers::find(t, today());
        let ids_found = found.get(Detector::ResidentId).expect("ids found");
        assert_eq!(ids_found.distinct, 5, "{t:?}");
    }

    #[test]
    fn pptx_slides_and_notes() {
        let slide = r#"<p:sld xmlns:a="a" xmlns:p="p"><p:cSld><p:spTree><p:sp><p:txBody><a:p><a:r><a:t>客户名单</a:t></a:r></a:p><a:p><a:r><a:t>6222 0212 3456 7890 128</a:t></a:r><a:br/><a:r><a:t>next</a:t></a:r></a:p></p:txBody></p:sp></p:spTree></p:cSld></p:sld>"#;
        let notes = r#"<p:notes xmlns:a="a" xmlns:p="p"><a:p><a:r><a:t>speaker note</a:t></a:r></a:p></p:notes>"#;
        let pptx = package(&[
            ("ppt/presentation.xml", "<p:presentation/>"),
            ("ppt/slides/slide1.xml", slide),
            ("ppt/notesSlides/notesSlide1.xml", notes),
        ]);
        let x = extract("deck.pptx", pptx);
        assert!(
            x.text.contains("客户名单\n6222 0212 3456 7890 128\nnext"),
            "{:?}",
            x.text
        );
        assert!(x.text.contains("speaker note"));
        let found = identifiers::find(&x.text, today());
        assert!(found.get(Detector::BankCard).is_some(), "{:?}", x.text);
    }

    /// A PDF of `objects` (numbered from 1; object 1 is the catalog; an empty one is left
    /// out), with a cross-reference table and trailer as a generator writes them.
    fn pdf_of(objects: &[Vec<u8>], trailer_extra: &str) -> Vec<u8> {
        let mut out = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n".to_vec();
        let mut offsets = Vec::new();
        for (i, o) in objects.iter().enumerate() {
            offsets.push(out.len());
            if o.is_empty() {
                continue;
            }
            out.extend_from_slice(format!("{} 0 obj\n", i + 1).as_bytes());
            out.extend_from_slice(o);
            out.extend_from_slice(b"\nendobj\n");
        }
        let xref = out.len();
        out.extend_from_slice(
            format!("xref\n0 {}\n0000000000 65535 f \n", objects.len() + 1).as_bytes(),
        );
        for o in offsets {
            out.extend_from_slice(format!("{o:010} 00000 n \n").as_bytes());
        }
        out.extend_from_slice(
            format!(
                "trailer\n<< /Size {} /Root 1 0 R {trailer_extra} >>\nstartxref\n{xref}\n%%EOF\n",
                objects.len() + 1
            )
            .as_bytes(),
        );
        out
    }

    fn stream(dict: &str, data: &[u8]) -> Vec<u8> {
        let mut o = format!("<< {dict} /Length {} >>\nstream\n", data.len()).into_bytes();
        o.extend_from_slice(data);
        o.extend_from_slice(b"\nendstream");
        o
    }

    fn deflate(data: &[u8]) -> Vec<u8> {
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        z.write_all(data).unwrap();
        z.finish().unwrap()
    }

    /// A one-page PDF with Helvetica as /F1 and `content` as its page.
    fn simple_pdf(content: &[u8], compress: bool, trailer_extra: &str) -> Vec<u8> {
        let content = if compress {
            stream("/Filter /FlateDecode", &deflate(content))
        } else {
            stream("", content)
        };
        pdf_of(
            &[
                b"<< /Type /Catalog /Pages 2 0 R >>".to_vec(),
                b"<< /Type /Pages /Kids [3 0 R] /Count 1 /Resources << /Font << /F1 5 0 R >> >> >>".to_vec(),
                b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R >>".to_vec(),
                content,
                b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>".to_vec(),
            ],
            trailer_extra,
        )
    }

    const PAGE: &[u8] = b"BT /F1 12 Tf 72 720 Td (Employee ID: 11010519491231002X) Tj \
        0 -14 Td [(Cust) -20 (omer) -300 (list)] TJ T* (\\(caf\\351\\)) ' ET \
        BT /F1 10 Tf 1 0 0 1 72 600 Tm (123456789) Tj 1 0 0 1 300 600 Tm (987654321) Tj ET";

    #[test]
    fn pdf_text_uncompressed_and_flate() {
        for compress in [false, true] {
            let x = extract("a.pdf", simple_pdf(PAGE, compress, ""));
            let t = &x.text;
            assert!(
                t.contains("Employee ID: 11010519491231002X\nCustomer list"),
                "{t:?}"
            );
            assert!(t.contains("(café)"), "{t:?}");
            // Two cells on one line stay two numbers.
            assert!(t.contains("123456789\t987654321"), "{t:?}");
            assert!(x.encrypted.is_empty() && x.unreadable.is_empty(), "{x:?}");
            let found = identifiers::find(t, today());
            assert_eq!(found.get(Detector::ResidentId).map(|f| f.distinct), Some(1));
        }
    }

    #[test]
    fn pdf_type0_fonts_with_tounicode_in_object_streams() {
        let cmap = b"/CIDInit /ProcSet findresource begin 12 dict begin begincmap\n\
            1 begincodespacerange <0000> <FFFF> endcodespacerange\n\
            3 beginbfchar <0001> <8EAB> <0002> <4EFD> <0003> <8BC1> endbfchar\n\
            1 beginbfrange <0010> <0019> <0030> endbfrange\n\
            endcmap CMapName currentdict /CMap defineresource pop end end";
        let content = b"BT /F1 11 Tf 1 0 0 1 72 700 Tm <000100020003> Tj \
            [<0011 0012>-10<0013>] TJ ET";
        // Font and page dictionaries packed in an object stream, as PDF 1.5 writers do.
        let packed_objects = [
            (
                3,
                "<< /Type /Page /Parent 2 0 R /Contents 4 0 R /Resources << /Font << /F1 5 0 R >> >> >>",
            ),
            (
                5,
                "<< /Type /Font /Subtype /Type0 /BaseFont /SimSun /Encoding /Identity-H /DescendantFonts [6 0 R] /ToUnicode 7 0 R >>",
            ),
            (
                6,
                "<< /Type /Font /Subtype /CIDFontType2 /DW 1000 /W [1 [1000 1000 1000] 16 25 500] >>",
            ),
        ];
        let mut header = String::new();
        let mut body = String::new();
        for (n, o) in packed_objects {
            header.push_str(&format!("{n} {} ", body.len()));
            body.push_str(o);
            body.push('\n');
        }
        let objstm = format!("{header}\n{body}");
        let first = header.len() + 1;
        let pdf = pdf_of(
            &[
                b"<< /Type /Catalog /Pages 2 0 R >>".to_vec(),
                b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>".to_vec(),
                Vec::new(),
                stream("/Filter /FlateDecode", &deflate(content)),
                Vec::new(),
                Vec::new(),
                stream("/Filter /FlateDecode", &deflate(cmap)),
                stream(
                    &format!("/Type /ObjStm /N 3 /First {first} /Filter /FlateDecode"),
                    &deflate(objstm.as_bytes()),
                ),
            ],
            "",
        );
        let x = extract("id.pdf", pdf);
        assert!(x.text.contains("身份证123"), "{:?}", x.text);
    }

    #[test]
    fn encrypted_pdf_is_reported() {
        let pdf = simple_pdf(PAGE, false, "/Encrypt 9 0 R /ID [<00> <00>]");
        let x = extract("locked.pdf", pdf);
        assert_eq!(x.encrypted, ["locked.pdf"]);
        assert!(!x.text.contains("Employee"));
    }

    #[test]
    fn archives_nest_and_encryption_is_named() {
        let ids: Vec<String> = (1..=5)
            .map(|n| resident_id(&format!("3101011985061223{n}")))
            .collect();
        let book = xlsx(&ids, &[]);
        let zip = zip_of(
            &[("data/staff.xlsx", &book), ("readme.txt", b"hello")],
            false,
        );
        // zip in tar in gzip.
        let mut tar = tar::Builder::new(Vec::new());
        let mut header = tar::Header::new_gnu();
        header.set_size(zip.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        tar.append_data(&mut header, "backup/export.zip", &zip[..])
            .unwrap();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&tar.into_inner().unwrap()).unwrap();
        let x = extract("backup.tar.gz", gz.finish().unwrap());
        let found = identifiers::find(&x.text, today());
        assert_eq!(
            found.get(Detector::ResidentId).map(|f| f.distinct),
            Some(5),
            "{x:?}"
        );
        let names: Vec<&str> = x.files.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "backup.tar.gz",
                "backup.tar",
                "backup/export.zip",
                "data/staff.xlsx",
                "readme.txt"
            ]
        );
        assert_eq!(x.files[3].archive.as_deref(), Some("backup/export.zip"));
        assert_eq!(x.files[3].depth, 3);

        // 7z holding a docx.
        let mut w = sevenz_rust2::ArchiveWriter::new(Cursor::new(Vec::new())).unwrap();
        let doc = docx("<w:p><w:r><w:t>inside 7z</w:t></w:r></w:p>");
        w.push_archive_entry(
            sevenz_rust2::ArchiveEntry::new_file("a.docx"),
            Some(Cursor::new(doc)),
        )
        .unwrap();
        let x = extract("a.7z", w.finish().unwrap().into_inner());
        assert!(x.text.contains("inside 7z"), "{x:?}");

        let locked = zip_of(&[("secret.xlsx", &book)], true);
        let x = extract("locked.zip", locked);
        assert_eq!(x.encrypted, ["locked.zip"]);
        assert!(
            identifiers::find(&x.text, today())
                .get(Detector::ResidentId)
                .is_none()
        );

        // An encrypted Office document is an OLE file holding an EncryptedPackage stream.
        let mut ole = vec![0xd0, 0xcf, 0x11, 0xe0, 0xa1, 0xb1, 0x1a, 0xe1];
        ole.resize(1024, 0);
        ole.extend_from_slice(ENCRYPTED_PACKAGE);
        let x = extract("salary.xlsx", ole.clone());
        assert_eq!(x.encrypted, ["salary.xlsx"]);
        let legacy = vec![0xd0, 0xcf, 0x11, 0xe0, 0xa1, 0xb1, 0x1a, 0xe1, 0, 0];
        let x = extract("old.doc", legacy);
        assert_eq!(x.unreadable, ["old.doc"]);
        assert!(x.encrypted.is_empty());
    }

    #[test]
    fn plain_text_html_and_charsets() {
        let (gbk, _, _) = encoding_rs::GB18030.encode("客户身份证：11010519491231002X");
        let x = attachments_text(
            &[
                attachment("list.csv", gbk.into_owned()),
                attachment(
                    "page.html",
                    b"<html><body><p>A</p><script>var s='hidden';</script><td>1</td><td>2</td></body></html>"
                        .to_vec(),
                ),
                attachment("photo.png", b"\x89PNG\r\n\x1a\n\0\0\0binary".to_vec()),
                Attachment {
                    name: String::new(),
                    declared_type: "message/rfc822".into(),
                    data: b"Subject: x\r\n\r\nalready read".to_vec(),
                },
            ],
            &Deadline::unlimited(),
        );
        assert!(
            x.text.contains("客户身份证：11010519491231002X"),
            "{:?}",
            x.text
        );
        assert!(
            x.text.contains("A\n1\n2") || x.text.contains('A'),
            "{:?}",
            x.text
        );
        assert!(
            !x.text.contains("hidden") && !x.text.contains("PNG"),
            "{:?}",
            x.text
        );
        assert!(!x.text.contains("already read"), "{:?}", x.text);
        assert_eq!(x.files.len(), 4);
        let utf16: Vec<u8> = [0xff, 0xfe]
            .into_iter()
            .chain("编号 E12345678".encode_utf16().flat_map(u16::to_le_bytes))
            .collect();
        assert!(extract("notes.txt", utf16).text.contains("编号 E12345678"));
    }

    #[test]
    fn bounds_stop_the_walk_and_say_so() {
        let zeros = vec![b'1'; 40 * 1024 * 1024];
        let bomb = zip_of(&[("a.txt", &zeros)], false);
        let x = extract("bomb.zip", bomb);
        assert!(x.truncated);
        assert!(x.text.len() < 1024);

        let docx = docx("<w:p><w:r><w:t>late</w:t></w:r></w:p>");
        let x = attachments_text(
            &[attachment("a.docx", docx)],
            &Deadline::after(Duration::ZERO),
        );
        assert!(x.truncated && x.text.is_empty(), "{x:?}");

        // More text than the bound: cut at the bound, on a character boundary.
        let big = "身份".repeat(MAX_TEXT / 5);
        let x = extract("big.txt", big.into_bytes());
        assert!(x.truncated && x.text.len() <= MAX_TEXT && x.text.len() > MAX_TEXT - 8);
    }

    #[test]
    fn garbage_and_truncated_files_never_panic() {
        let doc = docx("<w:p><w:r><w:t>x</w:t></w:r></w:p>");
        let book = xlsx(&["a".into()], &[row(&[("", "<v>1</v>")])]);
        let pdfs = [simple_pdf(PAGE, true, ""), simple_pdf(PAGE, false, "")];
        for (name, whole) in [
            ("a.docx", &doc),
            ("b.xlsx", &book),
            ("c.pdf", &pdfs[0]),
            ("d.pdf", &pdfs[1]),
        ] {
            for cut in (0..whole.len()).step_by(7) {
                extract(name, whole[..cut].to_vec());
            }
        }
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let mut noise = vec![0u8; 64 * 1024];
        for b in noise.iter_mut() {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            *b = x as u8;
        }
        for prefix in [&b"%PDF-1.4\n"[..], b"PK\x03\x04", b"", b"<html>"] {
            let mut data = prefix.to_vec();
            data.extend_from_slice(&noise);
            extract("noise", data);
        }
        // Hostile PDF syntax: deep nesting, unbalanced strings, huge numbers, loops.
        let mut hostile = pdf_of(
            &[
                b"<< /Type /Catalog /Pages 2 0 R >>".to_vec(),
                b"<< /Type /Pages /Kids [2 0 R 3 0 R] >>".to_vec(),
                b"<< /Type /Page /Parent 2 0 R /Contents 4 0 R /Resources << /XObject << /X 5 0 R >> >> >>".to_vec(),
                stream("", b"/X Do q q q Q 1e999 99999999999999999999 Tf (unclosed"),
                stream("/Subtype /Form", b"/X Do (form text) Tj"),
            ],
            "",
        );
        hostile.extend_from_slice(b"6 0 obj ");
        hostile.extend_from_slice(&b"[".repeat(100_000));
        let x = extract("hostile.pdf", hostile);
        assert!(x.text.contains("form text"), "{x:?}");
    }
}
