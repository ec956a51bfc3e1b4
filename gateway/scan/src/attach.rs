//! Attachments judged by what they are, not what they claim: true type from magic bytes,
//! names that lie (double extensions, RTLO), archives unpacked recursively within fixed limits
//! (zip bombs stop at the ratio, depth and size bounds), encrypted archives, Office macros,
//! PDF actions and executables. A walk that stops at a bound says so with a symbol of the
//! `unscannable` category: what was left unread may be what matters.
//!
//! The archive walk is shared: [`check`] is one `Visitor` of it, data-leak prevention's text
//! extraction ([`crate::dlp::extract`]) another, so both unpack within the same bounds.

use std::io::{Cursor, Read};

use super::Symbols;
use super::config::AttachmentPolicy;
use super::message::Attachment;
use super::pool::Deadline;

/// Deepest archive nesting unpacked.
const MAX_DEPTH: usize = 4;
/// Most bytes unpacked from all archives of one message.
const MAX_TOTAL_UNPACKED: u64 = 64 * 1024 * 1024;
/// Most bytes read from one archive member.
const MAX_MEMBER: u64 = 32 * 1024 * 1024;
/// Most members looked at in one message.
const MAX_MEMBERS: usize = 2000;
/// Expansion ratio beyond which a member is a decompression bomb.
const MAX_RATIO: u64 = 200;

/// What a file really is, from its first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileType {
    /// Windows PE (`MZ`).
    WindowsExecutable,
    /// ELF binary.
    Elf,
    /// Mach-O binary.
    MachO,
    /// Zip container (also OOXML, JAR, APK).
    Zip,
    /// RAR archive.
    Rar,
    /// 7-Zip archive.
    SevenZip,
    /// gzip stream.
    Gzip,
    /// POSIX tar.
    Tar,
    /// OLE2 compound file (legacy Office, MSI).
    Ole,
    /// PDF document.
    Pdf,
    /// Windows shortcut.
    Lnk,
    /// ISO 9660 disk image.
    Iso,
    /// Images and other inert media.
    Media,
    /// HTML.
    Html,
    /// Anything else.
    Other,
}

impl FileType {
    /// Detects the type from content.
    pub fn detect(data: &[u8]) -> Self {
        let starts = |m: &[u8]| data.starts_with(m);
        if starts(b"MZ") {
            FileType::WindowsExecutable
        } else if starts(b"\x7fELF") {
            FileType::Elf
        } else if starts(&[0xcf, 0xfa, 0xed, 0xfe]) || starts(&[0xfe, 0xed, 0xfa, 0xcf]) {
            FileType::MachO
        } else if starts(b"PK\x03\x04") || starts(b"PK\x05\x06") {
            FileType::Zip
        } else if starts(b"Rar!\x1a\x07") {
            FileType::Rar
        } else if starts(b"7z\xbc\xaf\x27\x1c") {
            FileType::SevenZip
        } else if starts(&[0x1f, 0x8b]) {
            FileType::Gzip
        } else if data.get(257..262) == Some(b"ustar") {
            FileType::Tar
        } else if starts(&[0xd0, 0xcf, 0x11, 0xe0, 0xa1, 0xb1, 0x1a, 0xe1]) {
            FileType::Ole
        } else if find(head(data, 1024), b"%PDF-").is_some() {
            FileType::Pdf
        } else if starts(&[0x4c, 0, 0, 0, 0x01, 0x14, 0x02, 0]) {
            FileType::Lnk
        } else if data.get(0x8001..0x8006) == Some(b"CD001") {
            FileType::Iso
        } else if starts(b"\x89PNG")
            || starts(b"\xff\xd8\xff")
            || starts(b"GIF8")
            || starts(b"BM")
            || starts(b"RIFF")
        {
            FileType::Media
        } else if looks_like_html(data) {
            FileType::Html
        } else {
            FileType::Other
        }
    }

    /// The extensions a file of this type really has, for refusing it whatever it is called.
    /// Zip and OLE2 have none: they are also the containers of Office documents.
    fn extensions(self) -> &'static [&'static str] {
        match self {
            FileType::WindowsExecutable => &["exe", "dll", "scr", "com", "cpl", "sys", "ocx"],
            FileType::Elf => &["elf", "so", "bin"],
            FileType::MachO => &["macho", "dylib", "app"],
            FileType::Rar => &["rar"],
            FileType::SevenZip => &["7z"],
            FileType::Gzip => &["gz", "tgz"],
            FileType::Tar => &["tar"],
            FileType::Pdf => &["pdf"],
            FileType::Lnk => &["lnk"],
            FileType::Iso => &["iso", "img"],
            FileType::Zip | FileType::Ole | FileType::Media | FileType::Html | FileType::Other => {
                &[]
            }
        }
    }

    fn is_executable(self) -> bool {
        matches!(
            self,
            FileType::WindowsExecutable | FileType::Elf | FileType::MachO | FileType::Lnk
        )
    }
}

/// Extensions that run code when opened on Windows.
const DANGEROUS_EXT: &[&str] = &[
    "exe",
    "scr",
    "com",
    "pif",
    "bat",
    "cmd",
    "cpl",
    "msi",
    "msp",
    "js",
    "jse",
    "vbs",
    "vbe",
    "wsf",
    "wsh",
    "hta",
    "ps1",
    "psm1",
    "lnk",
    "jar",
    "reg",
    "dll",
    "iso",
    "img",
    "vhd",
    "vhdx",
    "appx",
    "msix",
    "chm",
    "scf",
    "url",
    "xll",
    "application",
    "gadget",
    "inf",
    "sct",
];
/// Extensions of documents that innocent users expect to open.
const DOCUMENT_EXT: &[&str] = &[
    "pdf", "doc", "docx", "xls", "xlsx", "ppt", "pptx", "txt", "jpg", "jpeg", "png", "gif", "rtf",
    "csv", "zip", "rar",
];
/// Office formats that can carry macros.
const MACRO_EXT: &[&str] = &["docm", "xlsm", "pptm", "dotm", "xltm", "xlam", "ppam"];

/// Walks every attachment (and archive member) and adds symbols for what is risky and for
/// what `policy` refuses; stops (with `SCAN_BUDGET_EXCEEDED`) when `deadline` passes.
pub fn check(
    attachments: &[Attachment],
    policy: &AttachmentPolicy,
    deadline: &Deadline,
    symbols: &mut Symbols,
) {
    walk(attachments, deadline, &mut Checker { symbols, policy });
}

/// Why part of a walk went unread. The walk itself only says so; its [`Visitor`] decides what
/// that means (a symbol for the attachment check, "encrypted" or "truncated" for data-leak
/// prevention), so both read archives through the same bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Obstacle {
    /// The scan's deadline passed: nothing after this point was read.
    OutOfTime,
    /// An archive nested deeper than [`MAX_DEPTH`].
    TooDeep,
    /// More members than [`MAX_MEMBERS`] in the message.
    TooManyMembers,
    /// A member expanding beyond [`MAX_RATIO`].
    Bomb,
    /// A member beyond [`MAX_MEMBER`], or beyond what the message may still unpack.
    TooLarge,
    /// A member longer than it claimed, read as far as [`MAX_MEMBER`].
    MemberTruncated,
    /// An archive that cannot be parsed.
    Malformed,
    /// An encrypted archive (with a member's name: that member is encrypted).
    Encrypted,
}

/// A file a walk met: an attachment, or a member unpacked from an archive inside one.
pub(crate) struct Visit<'a> {
    /// The name as declared or stored in the archive; may be empty.
    pub name: &'a str,
    /// The declared MIME type of an attachment; empty for archive members, which have none.
    pub declared_type: &'a str,
    /// The content.
    pub data: &'a [u8],
    /// What the content is.
    pub kind: FileType,
    /// The archive it was unpacked from; `None` for an attachment.
    pub archive: Option<&'a str>,
    /// A part of an Office Open XML package (a zip holding `[Content_Types].xml`): a piece of
    /// one document rather than a file of its own.
    pub package: bool,
    /// Archive nesting: 0 for an attachment.
    pub depth: usize,
}

/// What a walk reports to: every file it reads and everything it could not read.
pub(crate) trait Visitor {
    /// Whether member `member` of `archive` is worth unpacking: its name (and whether the
    /// archive is an Office package) is all the walk knows before spending the budget on it.
    fn wants(&mut self, _archive: &str, _member: &str, _package: bool) -> bool {
        true
    }

    /// Looks at one file; returns whether to unpack it, if it is an archive, and visit its
    /// members in turn.
    fn file(&mut self, file: &Visit<'_>) -> bool;

    /// Part of `archive` (or the attachment of that name) went unread; `member` names the
    /// member concerned when it is known (an encrypted member's name still tells what it is).
    fn obstacle(&mut self, archive: &str, member: Option<&str>, obstacle: Obstacle);
}

/// Visits every attachment and, recursively, the members of the archives among them, within
/// the bounds above and `deadline`.
pub(crate) fn walk(attachments: &[Attachment], deadline: &Deadline, visitor: &mut dyn Visitor) {
    let mut budget = Budget {
        unpacked: 0,
        members: 0,
        deadline,
    };
    for a in attachments {
        if !budget.time_left(&a.name, visitor) {
            return;
        }
        let file = Visit {
            name: &a.name,
            declared_type: &a.declared_type,
            data: &a.data,
            kind: FileType::detect(&a.data),
            archive: None,
            package: false,
            depth: 0,
        };
        visit(&file, &mut budget, visitor);
    }
}

/// The attachment check: symbols for what each file is and what stopped the walk.
struct Checker<'a> {
    symbols: &'a mut Symbols,
    policy: &'a AttachmentPolicy,
}

impl Checker<'_> {
    /// Adds `ATTACH_BLOCKED_TYPE` when the policy refuses `name`'s extension or, when the
    /// content is known, what it really is.
    fn refuse(&mut self, name: &str, kind: Option<FileType>) {
        if self.policy.blocked.is_empty() {
            return;
        }
        let ext = extension(name);
        let really = kind
            .map(FileType::extensions)
            .unwrap_or_default()
            .iter()
            .find(|e| self.policy.blocks(e));
        let shown = if name.is_empty() { "(unnamed)" } else { name };
        if self.policy.blocks(&ext) {
            self.symbols.add(BLOCKED_TYPE, format!("{shown} (.{ext})"));
        } else if let Some(e) = really {
            self.symbols.add(BLOCKED_TYPE, format!("{shown} (.{e})"));
        }
    }
}

/// The symbol of a file type the attachment policy refuses.
pub const BLOCKED_TYPE: &str = "ATTACH_BLOCKED_TYPE";

impl Visitor for Checker<'_> {
    fn wants(&mut self, archive: &str, member: &str, package: bool) -> bool {
        if member.to_ascii_lowercase().ends_with("vbaproject.bin") {
            self.symbols.add("ATTACH_OFFICE_MACRO", archive);
        }
        // Office documents are zips too: their parts are not attachments of their own.
        !(package && is_office_part(member))
    }

    fn file(&mut self, file: &Visit<'_>) -> bool {
        inspect(file.name, file.data, file.kind, self.symbols);
        // An Office package's own bookkeeping is no file of its own; anything else in it is.
        if !(file.package && is_package_bookkeeping(file.name)) {
            self.refuse(file.name, Some(file.kind));
        }
        true
    }

    fn obstacle(&mut self, archive: &str, member: Option<&str>, obstacle: Obstacle) {
        let symbol = match obstacle {
            Obstacle::OutOfTime => {
                self.symbols.add("SCAN_BUDGET_EXCEEDED", "attachments");
                return;
            }
            Obstacle::TooDeep => "ARCHIVE_TOO_DEEP",
            Obstacle::TooManyMembers => "ARCHIVE_TOO_MANY_MEMBERS",
            Obstacle::Bomb => "ARCHIVE_BOMB",
            Obstacle::TooLarge => "ARCHIVE_TOO_LARGE",
            Obstacle::MemberTruncated => "ARCHIVE_MEMBER_TRUNCATED",
            Obstacle::Malformed => "ARCHIVE_MALFORMED",
            Obstacle::Encrypted => {
                // The name still tells what is inside.
                if let Some(member) = member {
                    if DANGEROUS_EXT.contains(&extension(member).as_str()) {
                        self.symbols.add("ARCHIVE_ENCRYPTED_EXECUTABLE", member);
                    }
                    self.refuse(member, None);
                }
                "ATTACH_ENCRYPTED_ARCHIVE"
            }
        };
        self.symbols.add(symbol, archive);
    }
}

/// Whether a member of an Office Open XML package is its bookkeeping (content types,
/// relationships, properties) rather than content.
fn is_package_bookkeeping(member: &str) -> bool {
    member == "[Content_Types].xml"
        || member.ends_with(".rels")
        || member.starts_with("docProps/")
        || member.starts_with("customXml/")
}

/// Whether a member of an Office Open XML package is one of its documents' parts (`word/`,
/// `xl/`, `ppt/`).
pub(crate) fn is_office_part(member: &str) -> bool {
    member.starts_with("word/") || member.starts_with("xl/") || member.starts_with("ppt/")
}

struct Budget<'a> {
    unpacked: u64,
    members: usize,
    deadline: &'a Deadline,
}

impl Budget<'_> {
    fn time_left(&self, archive: &str, visitor: &mut dyn Visitor) -> bool {
        if self.deadline.passed() {
            visitor.obstacle(archive, None, Obstacle::OutOfTime);
            return false;
        }
        true
    }
}

/// The extension as Windows reads it: trailing dots and spaces are dropped (`a.rtf.` is an
/// RTF file).
fn extension(name: &str) -> String {
    name.trim_end_matches(['.', ' '])
        .rsplit_once('.')
        .map(|(_, e)| e.trim().to_ascii_lowercase())
        .unwrap_or_default()
}

/// Shows `file` to the visitor and, if it is an archive the visitor wants unpacked, walks it.
fn visit(file: &Visit<'_>, budget: &mut Budget, visitor: &mut dyn Visitor) {
    if !visitor.file(file) {
        return;
    }
    let walker = match file.kind {
        FileType::Zip => walk_zip,
        FileType::Gzip => walk_gzip,
        FileType::Tar => walk_tar,
        FileType::SevenZip => walk_7z,
        _ => return,
    };
    let shown = if file.name.is_empty() {
        "(unnamed)"
    } else {
        file.name
    };
    if file.depth >= MAX_DEPTH {
        visitor.obstacle(shown, None, Obstacle::TooDeep);
        return;
    }
    walker(shown, file.data, file.depth, budget, visitor);
}

/// Visits `data`, unpacked from `archive` under the name `member`.
fn visit_member(
    archive: &str,
    (member, package): (&str, bool),
    data: &[u8],
    depth: usize,
    budget: &mut Budget,
    visitor: &mut dyn Visitor,
) {
    let file = Visit {
        name: member,
        declared_type: "",
        data,
        kind: FileType::detect(data),
        archive: Some(archive),
        package,
        depth: depth + 1,
    };
    visit(&file, budget, visitor);
}

fn inspect(name: &str, data: &[u8], kind: FileType, symbols: &mut Symbols) {
    let ext = extension(name);
    let shown = if name.is_empty() { "(unnamed)" } else { name };
    if name.contains('\u{202e}') || name.contains('\u{202d}') {
        symbols.add("ATTACH_NAME_RTLO", shown);
    }
    let stem_ext = name
        .rsplit_once('.')
        .map(|(stem, _)| extension(stem))
        .unwrap_or_default();
    if DANGEROUS_EXT.contains(&ext.as_str()) && DOCUMENT_EXT.contains(&stem_ext.as_str()) {
        symbols.add("ATTACH_DOUBLE_EXT", shown);
    }
    if kind.is_executable() {
        symbols.add("ATTACH_EXECUTABLE", shown);
        if !DANGEROUS_EXT.contains(&ext.as_str()) {
            symbols.add("ATTACH_TYPE_MISMATCH", format!("{shown} is an executable"));
        }
    } else if DANGEROUS_EXT.contains(&ext.as_str()) {
        symbols.add("ATTACH_DANGEROUS_EXT", shown);
    }
    if MACRO_EXT.contains(&ext.as_str()) {
        symbols.add("ATTACH_OFFICE_MACRO", shown);
    }
    match kind {
        FileType::Rar => {
            // No pure-Rust RAR unpacker exists; the names are not read either. clamd, when
            // configured, unpacks RAR itself.
            symbols.add("ATTACH_ARCHIVE_UNSCANNED", shown);
            if is_encrypted_rar(data) {
                symbols.add("ATTACH_ENCRYPTED_ARCHIVE", shown);
            }
        }
        FileType::Ole
            if find(data, b"_\0V\0B\0A\0_\0P\0R\0O\0J\0E\0C\0T").is_some()
                || find(data, b"V\0B\0A\0").is_some() && find(data, b"Attribut").is_some() =>
        {
            symbols.add("ATTACH_OFFICE_MACRO", shown);
        }
        FileType::Pdf => {
            if find(data, b"/JavaScript").is_some() || find(data, b"/JS").is_some() {
                symbols.add("PDF_JAVASCRIPT", shown);
            }
            if find(data, b"/Launch").is_some() {
                symbols.add("PDF_LAUNCH_ACTION", shown);
            }
            if find(data, b"/EmbeddedFile").is_some() {
                symbols.add("PDF_EMBEDDED_FILE", shown);
            }
        }
        FileType::Iso => symbols.add("ATTACH_DISK_IMAGE", shown),
        FileType::Html => {
            let text = String::from_utf8_lossy(&data[..data.len().min(2 * 1024 * 1024)]);
            let view = super::html::scan(&text);
            // A search box is a form too: only a password field makes a credential page.
            if view.password_input {
                symbols.add("HTML_ATTACH_CREDENTIAL_FORM", shown);
            }
            if view.smuggling {
                symbols.add("HTML_SMUGGLING", shown);
            }
        }
        _ => {}
    }
}

/// Whether a RAR archive's headers are encrypted (no pure-Rust unpacker reads RAR at all).
pub(crate) fn is_encrypted_rar(data: &[u8]) -> bool {
    // RAR4: archive header flag 0x0080 (block headers encrypted); RAR5 marks encryption with an
    // archive encryption header of type 4 right after the signature.
    if data.starts_with(b"Rar!\x1a\x07\x00") {
        data.get(10..12)
            .is_some_and(|f| u16::from_le_bytes([f[0], f[1]]) & 0x0080 != 0)
    } else {
        data.get(8..16).is_some_and(|h| h.contains(&0x04))
    }
}

/// Memory a 7z decoder may use for its dictionary and headers, in KiB.
const SEVENZ_MEMORY_KB: usize = 64 * 1024;

fn walk_7z(name: &str, data: &[u8], depth: usize, budget: &mut Budget, visitor: &mut dyn Visitor) {
    use sevenz_rust2::{ArchiveReader, Error, Password};
    let mut reader = match ArchiveReader::new_with_memory_limit(
        Cursor::new(data),
        Password::empty(),
        SEVENZ_MEMORY_KB,
    ) {
        Ok(r) => r,
        Err(Error::PasswordRequired | Error::MaybeBadPassword(_)) => {
            // Encrypted headers: not even the names can be read.
            visitor.obstacle(name, None, Obstacle::Encrypted);
            return;
        }
        Err(_) => {
            visitor.obstacle(name, None, Obstacle::Malformed);
            return;
        }
    };
    reader.set_thread_count(1);
    let mut members: Vec<(String, Vec<u8>)> = Vec::new();
    let mut stop = false;
    let result = reader.for_each_entries(|entry, content| {
        if entry.is_directory() || stop {
            return Ok(!stop);
        }
        // An unwanted member of a solid block is decoded all the same on the way to the next
        // one: it is budgeted like the others, only not kept.
        let wanted = visitor.wants(name, entry.name(), false);
        if !member_budget_ok(
            name,
            budget,
            entry.size(),
            entry.compressed_size.max(1),
            visitor,
        ) {
            stop = true;
            return Ok(false);
        }
        let mut bytes = Vec::new();
        content.take(MAX_MEMBER + 1).read_to_end(&mut bytes)?;
        cap_member(name, &mut bytes, visitor);
        budget.unpacked += bytes.len() as u64;
        if wanted {
            members.push((entry.name().to_owned(), bytes));
        }
        Ok(true)
    });
    match result {
        Ok(()) => {}
        Err(Error::PasswordRequired | Error::MaybeBadPassword(_)) => {
            visitor.obstacle(name, None, Obstacle::Encrypted);
            for entry in &reader.archive().files {
                visitor.obstacle(name, Some(entry.name()), Obstacle::Encrypted);
            }
        }
        Err(_) => visitor.obstacle(name, None, Obstacle::Malformed),
    }
    for (member, bytes) in members {
        visit_member(name, (&member, false), &bytes, depth, budget, visitor);
    }
}

/// Whether a member of `size` bytes (`compressed` in the archive) may be unpacked; says why
/// not otherwise.
fn member_budget_ok(
    archive: &str,
    budget: &mut Budget,
    size: u64,
    compressed: u64,
    visitor: &mut dyn Visitor,
) -> bool {
    if !budget.time_left(archive, visitor) {
        return false;
    }
    budget.members += 1;
    if budget.members > MAX_MEMBERS {
        visitor.obstacle(archive, None, Obstacle::TooManyMembers);
        return false;
    }
    if size > 1024 * 1024 && size / compressed.max(1) > MAX_RATIO {
        visitor.obstacle(archive, None, Obstacle::Bomb);
        return false;
    }
    if size > MAX_MEMBER || budget.unpacked.saturating_add(size) > MAX_TOTAL_UNPACKED {
        visitor.obstacle(archive, None, Obstacle::TooLarge);
        return false;
    }
    true
}

/// A member that turned out larger than it claimed is inspected as far as the cap, and flagged.
fn cap_member(archive: &str, content: &mut Vec<u8>, visitor: &mut dyn Visitor) {
    if content.len() as u64 > MAX_MEMBER {
        content.truncate(MAX_MEMBER as usize);
        visitor.obstacle(archive, None, Obstacle::MemberTruncated);
    }
}

fn walk_zip(name: &str, data: &[u8], depth: usize, budget: &mut Budget, visitor: &mut dyn Visitor) {
    let Ok(mut zip) = zip::ZipArchive::new(Cursor::new(data)) else {
        visitor.obstacle(name, None, Obstacle::Malformed);
        return;
    };
    let package = zip.index_for_name("[Content_Types].xml").is_some();
    for i in 0..zip.len() {
        let (member, encrypted, size, compressed, is_dir) = match zip.by_index_raw(i) {
            Ok(f) => (
                f.name().to_owned(),
                f.encrypted(),
                f.size(),
                f.compressed_size(),
                f.is_dir(),
            ),
            Err(_) => {
                visitor.obstacle(name, None, Obstacle::Malformed);
                return;
            }
        };
        if is_dir {
            continue;
        }
        let wanted = visitor.wants(name, &member, package);
        if encrypted {
            visitor.obstacle(name, Some(&member), Obstacle::Encrypted);
            continue;
        }
        if !wanted {
            continue;
        }
        if !member_budget_ok(name, budget, size, compressed, visitor) {
            return;
        }
        let mut content = Vec::new();
        let read = zip.by_index(i).map_err(|_| ()).and_then(|f| {
            f.take(MAX_MEMBER + 1)
                .read_to_end(&mut content)
                .map_err(|_| ())
        });
        if read.is_err() {
            visitor.obstacle(name, None, Obstacle::Malformed);
            continue;
        }
        cap_member(name, &mut content, visitor);
        budget.unpacked += content.len() as u64;
        visit_member(name, (&member, package), &content, depth, budget, visitor);
    }
}

fn walk_gzip(
    name: &str,
    data: &[u8],
    depth: usize,
    budget: &mut Budget,
    visitor: &mut dyn Visitor,
) {
    let inner = name
        .strip_suffix(".gz")
        .or_else(|| name.strip_suffix(".tgz"))
        .unwrap_or(name);
    if !visitor.wants(name, inner, false) {
        return;
    }
    let room = MAX_MEMBER.min(MAX_TOTAL_UNPACKED.saturating_sub(budget.unpacked));
    let mut out = Vec::new();
    let decoder = flate2::read::GzDecoder::new(data);
    if decoder.take(room + 1).read_to_end(&mut out).is_err() {
        visitor.obstacle(name, None, Obstacle::Malformed);
        return;
    }
    let size = out.len() as u64;
    if !member_budget_ok(name, budget, size, data.len() as u64, visitor) {
        return;
    }
    if size > room {
        // Within the ratio but beyond what one member or the message may unpack.
        visitor.obstacle(name, None, Obstacle::TooLarge);
        return;
    }
    budget.unpacked += size;
    visit_member(name, (inner, false), &out, depth, budget, visitor);
}

fn walk_tar(name: &str, data: &[u8], depth: usize, budget: &mut Budget, visitor: &mut dyn Visitor) {
    let mut archive = tar::Archive::new(data);
    let Ok(entries) = archive.entries() else {
        visitor.obstacle(name, None, Obstacle::Malformed);
        return;
    };
    for entry in entries {
        let Ok(entry) = entry else {
            visitor.obstacle(name, None, Obstacle::Malformed);
            return;
        };
        if !entry.header().entry_type().is_file() {
            continue;
        }
        let member = entry
            .path()
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_default();
        if !visitor.wants(name, &member, false) {
            continue;
        }
        let size = entry.size();
        if !member_budget_ok(name, budget, size, size, visitor) {
            return;
        }
        let mut content = Vec::new();
        // The header's size was checked above and bounds the read.
        if entry.take(MAX_MEMBER).read_to_end(&mut content).is_err() {
            visitor.obstacle(name, None, Obstacle::Malformed);
            return;
        }
        budget.unpacked += content.len() as u64;
        visit_member(name, (&member, false), &content, depth, budget, visitor);
    }
}

fn looks_like_html(data: &[u8]) -> bool {
    let h = String::from_utf8_lossy(head(data, 512)).to_ascii_lowercase();
    h.contains("<html") || h.contains("<!doctype html") || h.contains("<script")
}

fn head(data: &[u8], n: usize) -> &[u8] {
    &data[..data.len().min(n)]
}

/// Where `needle` first occurs in `hay`.
pub(crate) fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() || hay.len() < needle.len() {
        return None;
    }
    let first = needle[0];
    let mut i = 0;
    while i + needle.len() <= hay.len() {
        match hay[i..=hay.len() - needle.len()]
            .iter()
            .position(|&b| b == first)
        {
            Some(p) => {
                let at = i + p;
                if &hay[at..at + needle.len()] == needle {
                    return Some(at);
                }
                i = at + 1;
            }
            None => return None,
        }
    }
    None
}

#[cfg(test)]
pub(crate) mod tests {
    use std::io::Write;

    use super::*;

    /// A zip of `entries`, deflated; `encrypted` marks every entry password-protected.
    pub(crate) fn zip_of(entries: &[(&str, &[u8])], encrypted: bool) -> Vec<u8> {
        let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
        for (name, data) in entries {
            let opts = zip::write::SimpleFileOptions::default()
                .compression_method(zip::CompressionMethod::Deflated);
            w.start_file(*name, opts).unwrap();
            w.write_all(data).unwrap();
        }
        let mut out = w.finish().unwrap().into_inner();
        if encrypted {
            // Set the "encrypted" flag (bit 0) in every local and central header, as a
            // password-protected archive has it; the walker must not try to read the data.
            for sig in [&b"PK\x03\x04"[..], b"PK\x01\x02"] {
                let flag_at = if sig[2] == 3 { 6 } else { 8 };
                let mut i = 0;
                while let Some(p) = find(&out[i..], sig) {
                    out[i + p + flag_at] |= 1;
                    i += p + 4;
                }
            }
        }
        out
    }

    fn symbols_of(name: &str, data: Vec<u8>) -> Vec<String> {
        symbols_under(&AttachmentPolicy::default(), name, data)
    }

    fn symbols_under(policy: &AttachmentPolicy, name: &str, data: Vec<u8>) -> Vec<String> {
        let mut s = Symbols::default();
        check(
            &[Attachment {
                name: name.into(),
                declared_type: String::new(),
                data,
            }],
            policy,
            &Deadline::unlimited(),
            &mut s,
        );
        s.names().map(str::to_owned).collect()
    }

    /// The attachment policy refuses a type by name, by what the file really is, inside
    /// archives and by the names an encrypted archive still shows; Office documents are not
    /// refused as zips.
    #[test]
    fn refused_types_are_found_by_name_content_and_inside_archives() {
        let policy = AttachmentPolicy {
            blocked: vec!["exe".into(), "iso".into(), "zip".into(), "7z".into()],
        };
        let refused = |name: &str, data: Vec<u8>| {
            symbols_under(&policy, name, data).contains(&BLOCKED_TYPE.to_owned())
        };
        assert!(refused("setup.EXE", b"not really a program".to_vec()));
        assert!(refused(
            "报告.txt",
            b"MZ\x90\x00 a renamed program".to_vec()
        ));
        assert!(refused("a.7z", b"7z\xbc\xaf\x27\x1c....".to_vec()));
        assert!(refused("a.zip", zip_of(&[("readme.txt", b"hi")], false)));
        let inner = zip_of(&[("docs/run.exe", b"hello")], false);
        assert!(refused("inner.bin", inner));
        let encrypted = zip_of(&[("photos/holiday.iso", b"secret")], true);
        assert!(refused("photos.dat", encrypted));
        assert!(!refused("notes.txt", b"plain words".to_vec()));
        assert!(!refused("readme", Vec::new()));
        // A docx is a zip inside, and not refused by `zip`.
        let docx = zip_of(
            &[
                ("[Content_Types].xml", b"<Types/>"),
                ("word/document.xml", b"<w:document/>"),
            ],
            false,
        );
        assert!(!refused("季度报告.docx", docx));
        // A program riding in a document's package is refused all the same, and so is a name
        // with a trailing dot.
        let carrier = zip_of(
            &[
                ("[Content_Types].xml", b"<Types/>"),
                ("word/document.xml", b"<w:document/>"),
                ("payload.exe", b"MZ\x90\x00"),
            ],
            false,
        );
        assert!(refused("invoice.docx", carrier));
        assert!(refused("合同.iso.", b"plain".to_vec()));
        // Nothing refused, nothing added.
        assert!(!symbols_of("setup.exe", b"MZ".to_vec()).contains(&BLOCKED_TYPE.to_owned()));
    }

    #[test]
    fn executables_by_content_and_lying_names() {
        let pe = b"MZ\x90\x00rest".to_vec();
        let s = symbols_of("invoice.pdf.exe", pe.clone());
        assert!(s.contains(&"ATTACH_DOUBLE_EXT".into()) && s.contains(&"ATTACH_EXECUTABLE".into()));
        let s = symbols_of("photo.jpg", pe.clone());
        assert!(s.contains(&"ATTACH_TYPE_MISMATCH".into()), "{s:?}");
        let s = symbols_of("report\u{202e}fdp.exe", pe);
        assert!(s.contains(&"ATTACH_NAME_RTLO".into()));
        assert!(symbols_of("notes.txt", b"hello".to_vec()).is_empty());
    }

    #[test]
    fn nested_archives_encryption_and_bombs() {
        let inner = zip_of(&[("run.exe", b"MZ\x90\x00")], false);
        let outer = zip_of(&[("inner.zip", &inner)], false);
        let s = symbols_of("outer.zip", outer);
        assert!(s.contains(&"ATTACH_EXECUTABLE".into()), "{s:?}");

        let locked = zip_of(&[("payload.exe", b"MZ")], true);
        let s = symbols_of("locked.zip", locked);
        assert!(s.contains(&"ATTACH_ENCRYPTED_ARCHIVE".into()), "{s:?}");
        assert!(s.contains(&"ARCHIVE_ENCRYPTED_EXECUTABLE".into()), "{s:?}");

        let zeros = vec![0u8; 40 * 1024 * 1024];
        let bomb = zip_of(&[("a.bin", &zeros)], false);
        assert!(bomb.len() < 200 * 1024);
        let s = symbols_of("bomb.zip", bomb);
        assert!(s.contains(&"ARCHIVE_BOMB".into()), "{s:?}");

        // Nesting beyond the depth bound stops, it does not recurse forever.
        let mut nested = zip_of(&[("x.txt", b"x")], false);
        for _ in 0..6 {
            nested = zip_of(&[("n.zip", &nested)], false);
        }
        assert!(symbols_of("n.zip", nested).contains(&"ARCHIVE_TOO_DEEP".into()));

        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(b"MZ\x90\x00").unwrap();
        let s = symbols_of("tool.exe.gz", gz.finish().unwrap());
        assert!(s.contains(&"ATTACH_EXECUTABLE".into()), "{s:?}");

        assert!(
            symbols_of("broken.zip", b"PK\x03\x04garbage".to_vec())
                .contains(&"ARCHIVE_MALFORMED".into())
        );
    }

    /// Finding 3 of the hardening review: after 2,000 members the walk stopped and an
    /// executable behind them went unseen. The stop is now said, in the `unscannable` category.
    #[test]
    fn a_walk_stopped_at_a_bound_says_so() {
        let empty: Vec<(String, &[u8])> = (0..MAX_MEMBERS)
            .map(|i| (format!("{i}.txt"), &b""[..]))
            .collect();
        let mut entries: Vec<(&str, &[u8])> = empty.iter().map(|(n, d)| (n.as_str(), *d)).collect();
        entries.push(("payload.exe", b"MZ\x90\x00"));
        let s = symbols_of("many.zip", zip_of(&entries, false));
        assert!(s.contains(&"ARCHIVE_TOO_MANY_MEMBERS".into()), "{s:?}");
        assert!(
            !s.contains(&"ATTACH_EXECUTABLE".into()),
            "the executable is past the bound"
        );

        // Big but not a bomb (random bytes do not compress): too large to unpack, not malware.
        let mut noise = vec![0u8; (MAX_MEMBER + 1) as usize];
        let mut x = 0x2545_f491_4f6c_dd1du64;
        for b in noise.iter_mut() {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            *b = x as u8;
        }
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::none());
        gz.write_all(&noise).unwrap();
        let s = symbols_of("dump.bin.gz", gz.finish().unwrap());
        assert!(s.contains(&"ARCHIVE_TOO_LARGE".into()), "{s:?}");
        assert!(!s.contains(&"ARCHIVE_BOMB".into()), "{s:?}");

        // A spent budget stops the walk before the first member.
        let mut spent = Symbols::default();
        let zip = zip_of(&[("run.exe", b"MZ\x90\x00")], false);
        check(
            &[Attachment {
                name: "a.zip".into(),
                declared_type: String::new(),
                data: zip,
            }],
            &AttachmentPolicy::default(),
            &Deadline::after(std::time::Duration::ZERO),
            &mut spent,
        );
        assert!(spent.has("SCAN_BUDGET_EXCEEDED"));
    }

    #[test]
    fn truncated_members_are_flagged() {
        let mut content = vec![7u8; (MAX_MEMBER + 1) as usize];
        let mut s = Symbols::default();
        cap_member(
            "a.7z",
            &mut content,
            &mut Checker {
                symbols: &mut s,
                policy: &AttachmentPolicy::default(),
            },
        );
        assert_eq!(content.len() as u64, MAX_MEMBER);
        assert!(s.has("ARCHIVE_MEMBER_TRUNCATED"));
        let mut small = vec![7u8; 10];
        let mut s = Symbols::default();
        cap_member(
            "a.7z",
            &mut small,
            &mut Checker {
                symbols: &mut s,
                policy: &AttachmentPolicy::default(),
            },
        );
        assert!(!s.has("ARCHIVE_MEMBER_TRUNCATED"));
    }

    /// Finding 12 of the hardening review: tar unpacking was advertised, never tested.
    #[test]
    fn programs_inside_tar_and_tar_gz_are_found() {
        let mut tar = tar::Builder::new(Vec::new());
        let mut header = tar::Header::new_gnu();
        let program = b"MZ\x90\x00\x03\x00\x00\x00";
        header.set_size(program.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        tar.append_data(&mut header, "docs/invoice.pdf.exe", &program[..])
            .unwrap();
        let tar = tar.into_inner().unwrap();
        let s = symbols_of("docs.tar", tar.clone());
        assert!(s.contains(&"ATTACH_EXECUTABLE".into()), "{s:?}");
        assert!(s.contains(&"ATTACH_DOUBLE_EXT".into()), "{s:?}");
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&tar).unwrap();
        let s = symbols_of("docs.tar.gz", gz.finish().unwrap());
        assert!(s.contains(&"ATTACH_EXECUTABLE".into()), "{s:?}");
    }

    #[test]
    fn macros_and_pdf_actions() {
        let docm = zip_of(&[("word/vbaProject.bin", b"\xd0\xcf\x11\xe0")], false);
        assert!(symbols_of("a.docx", docm).contains(&"ATTACH_OFFICE_MACRO".into()));
        // Only an Office package's parts are pieces of a document: a plain zip's folder named
        // `word/` holds files like any other.
        let folder = zip_of(&[("word/run.exe", b"MZ\x90\x00")], false);
        assert!(symbols_of("a.zip", folder).contains(&"ATTACH_EXECUTABLE".into()));
        let package = zip_of(
            &[
                ("[Content_Types].xml", b"<Types/>"),
                ("word/document.xml", b"MZ\x90\x00"),
            ],
            false,
        );
        assert!(symbols_of("a.docx", package).is_empty());
        let pdf =
            b"%PDF-1.7\n1 0 obj << /OpenAction << /S /JavaScript /JS (app.alert(1)) >> >>".to_vec();
        assert!(symbols_of("a.pdf", pdf).contains(&"PDF_JAVASCRIPT".into()));
        let html =
            b"<html><form action=https://x.test><input type=password></form></html>".to_vec();
        assert!(symbols_of("login.html", html).contains(&"HTML_ATTACH_CREDENTIAL_FORM".into()));
        let search = b"<html><form action=https://weather.test/q><input name=city></form></html>";
        assert!(symbols_of("forecast.htm", search.to_vec()).is_empty());
    }
}
