//! Attachments judged by what they are, not what they claim: true type from magic bytes,
//! names that lie (double extensions, RTLO), archives unpacked recursively within fixed limits
//! (zip bombs stop at the ratio, depth and size bounds), encrypted archives, Office macros,
//! PDF actions and executables. A walk that stops at a bound says so with a symbol of the
//! `unscannable` category: what was left unread may be what matters.

use std::io::{Cursor, Read};

use super::Symbols;
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

/// Walks every attachment (and archive member) and adds symbols for what is risky; stops
/// (with `SCAN_BUDGET_EXCEEDED`) when `deadline` passes.
pub fn check(attachments: &[Attachment], deadline: &Deadline, symbols: &mut Symbols) {
    let mut budget = Budget {
        unpacked: 0,
        members: 0,
        deadline,
    };
    for a in attachments {
        if !budget.time_left(symbols) {
            return;
        }
        inspect(&a.name, &a.data, 0, &mut budget, symbols);
    }
}

struct Budget<'a> {
    unpacked: u64,
    members: usize,
    deadline: &'a Deadline,
}

impl Budget<'_> {
    fn time_left(&self, symbols: &mut Symbols) -> bool {
        if self.deadline.passed() {
            symbols.add("SCAN_BUDGET_EXCEEDED", "attachments");
            return false;
        }
        true
    }
}

fn extension(name: &str) -> String {
    name.rsplit_once('.')
        .map(|(_, e)| e.trim().to_ascii_lowercase())
        .unwrap_or_default()
}

fn inspect(name: &str, data: &[u8], depth: usize, budget: &mut Budget, symbols: &mut Symbols) {
    let kind = FileType::detect(data);
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
        FileType::Zip => walk_zip(shown, data, depth, budget, symbols),
        FileType::Gzip => walk_gzip(shown, data, depth, budget, symbols),
        FileType::Tar => walk_tar(shown, data, depth, budget, symbols),
        FileType::SevenZip => walk_7z(shown, data, depth, budget, symbols),
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

fn is_encrypted_rar(data: &[u8]) -> bool {
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

fn walk_7z(name: &str, data: &[u8], depth: usize, budget: &mut Budget, symbols: &mut Symbols) {
    use sevenz_rust2::{ArchiveReader, Error, Password};
    if depth >= MAX_DEPTH {
        symbols.add("ARCHIVE_TOO_DEEP", name);
        return;
    }
    let mut reader = match ArchiveReader::new_with_memory_limit(
        Cursor::new(data),
        Password::empty(),
        SEVENZ_MEMORY_KB,
    ) {
        Ok(r) => r,
        Err(Error::PasswordRequired | Error::MaybeBadPassword(_)) => {
            // Encrypted headers: not even the names can be read.
            symbols.add("ATTACH_ENCRYPTED_ARCHIVE", name);
            return;
        }
        Err(_) => {
            symbols.add("ARCHIVE_MALFORMED", name);
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
        if !member_budget_ok(
            name,
            budget,
            entry.size(),
            entry.compressed_size.max(1),
            symbols,
        ) {
            stop = true;
            return Ok(false);
        }
        let mut bytes = Vec::new();
        content.take(MAX_MEMBER + 1).read_to_end(&mut bytes)?;
        cap_member(name, &mut bytes, symbols);
        budget.unpacked += bytes.len() as u64;
        members.push((entry.name().to_owned(), bytes));
        Ok(true)
    });
    match result {
        Ok(()) => {}
        Err(Error::PasswordRequired | Error::MaybeBadPassword(_)) => {
            symbols.add("ATTACH_ENCRYPTED_ARCHIVE", name);
            for entry in &reader.archive().files {
                inspect_name_only(entry.name(), symbols);
            }
        }
        Err(_) => symbols.add("ARCHIVE_MALFORMED", name),
    }
    for (member, bytes) in members {
        inspect(&member, &bytes, depth + 1, budget, symbols);
    }
}

/// Whether a member of `size` bytes (`compressed` in the archive) may be unpacked; says why
/// not otherwise.
fn member_budget_ok(
    archive: &str,
    budget: &mut Budget,
    size: u64,
    compressed: u64,
    symbols: &mut Symbols,
) -> bool {
    if !budget.time_left(symbols) {
        return false;
    }
    budget.members += 1;
    if budget.members > MAX_MEMBERS {
        symbols.add("ARCHIVE_TOO_MANY_MEMBERS", archive);
        return false;
    }
    if size > 1024 * 1024 && size / compressed.max(1) > MAX_RATIO {
        symbols.add("ARCHIVE_BOMB", archive);
        return false;
    }
    if size > MAX_MEMBER || budget.unpacked.saturating_add(size) > MAX_TOTAL_UNPACKED {
        symbols.add("ARCHIVE_TOO_LARGE", archive);
        return false;
    }
    true
}

/// A member that turned out larger than it claimed is inspected as far as the cap, and flagged.
fn cap_member(archive: &str, content: &mut Vec<u8>, symbols: &mut Symbols) {
    if content.len() as u64 > MAX_MEMBER {
        content.truncate(MAX_MEMBER as usize);
        symbols.add("ARCHIVE_MEMBER_TRUNCATED", archive);
    }
}

fn walk_zip(name: &str, data: &[u8], depth: usize, budget: &mut Budget, symbols: &mut Symbols) {
    if depth >= MAX_DEPTH {
        symbols.add("ARCHIVE_TOO_DEEP", name);
        return;
    }
    let Ok(mut zip) = zip::ZipArchive::new(Cursor::new(data)) else {
        symbols.add("ARCHIVE_MALFORMED", name);
        return;
    };
    let mut ooxml_macro = false;
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
                symbols.add("ARCHIVE_MALFORMED", name);
                return;
            }
        };
        if member.to_ascii_lowercase().ends_with("vbaproject.bin") {
            ooxml_macro = true;
        }
        if is_dir {
            continue;
        }
        if encrypted {
            symbols.add("ATTACH_ENCRYPTED_ARCHIVE", name);
            // The name still tells what is inside.
            inspect_name_only(&member, symbols);
            continue;
        }
        if !member_budget_ok(name, budget, size, compressed, symbols) {
            return;
        }
        let mut content = Vec::new();
        let read = zip.by_index(i).map_err(|_| ()).and_then(|f| {
            f.take(MAX_MEMBER + 1)
                .read_to_end(&mut content)
                .map_err(|_| ())
        });
        if read.is_err() {
            symbols.add("ARCHIVE_MALFORMED", name);
            continue;
        }
        cap_member(name, &mut content, symbols);
        budget.unpacked += content.len() as u64;
        // Office documents are zips too: their parts are not attachments of their own.
        if !(member.starts_with("word/") || member.starts_with("xl/") || member.starts_with("ppt/"))
        {
            inspect(&member, &content, depth + 1, budget, symbols);
        }
    }
    if ooxml_macro {
        symbols.add("ATTACH_OFFICE_MACRO", name);
    }
}

fn inspect_name_only(member: &str, symbols: &mut Symbols) {
    let ext = extension(member);
    if DANGEROUS_EXT.contains(&ext.as_str()) {
        symbols.add("ARCHIVE_ENCRYPTED_EXECUTABLE", member);
    }
}

fn walk_gzip(name: &str, data: &[u8], depth: usize, budget: &mut Budget, symbols: &mut Symbols) {
    if depth >= MAX_DEPTH {
        symbols.add("ARCHIVE_TOO_DEEP", name);
        return;
    }
    let room = MAX_MEMBER.min(MAX_TOTAL_UNPACKED.saturating_sub(budget.unpacked));
    let mut out = Vec::new();
    let decoder = flate2::read::GzDecoder::new(data);
    if decoder.take(room + 1).read_to_end(&mut out).is_err() {
        symbols.add("ARCHIVE_MALFORMED", name);
        return;
    }
    let size = out.len() as u64;
    if !member_budget_ok(name, budget, size, data.len() as u64, symbols) {
        return;
    }
    if size > room {
        // Within the ratio but beyond what one member or the message may unpack.
        symbols.add("ARCHIVE_TOO_LARGE", name);
        return;
    }
    budget.unpacked += size;
    let inner = name
        .strip_suffix(".gz")
        .or_else(|| name.strip_suffix(".tgz"))
        .unwrap_or(name);
    inspect(inner, &out, depth + 1, budget, symbols);
}

fn walk_tar(name: &str, data: &[u8], depth: usize, budget: &mut Budget, symbols: &mut Symbols) {
    if depth >= MAX_DEPTH {
        symbols.add("ARCHIVE_TOO_DEEP", name);
        return;
    }
    let mut archive = tar::Archive::new(data);
    let Ok(entries) = archive.entries() else {
        symbols.add("ARCHIVE_MALFORMED", name);
        return;
    };
    for entry in entries {
        let Ok(entry) = entry else {
            symbols.add("ARCHIVE_MALFORMED", name);
            return;
        };
        if !entry.header().entry_type().is_file() {
            continue;
        }
        let member = entry
            .path()
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_default();
        let size = entry.size();
        if !member_budget_ok(name, budget, size, size, symbols) {
            return;
        }
        let mut content = Vec::new();
        // The header's size was checked above and bounds the read.
        if entry.take(MAX_MEMBER).read_to_end(&mut content).is_err() {
            symbols.add("ARCHIVE_MALFORMED", name);
            return;
        }
        budget.unpacked += content.len() as u64;
        inspect(&member, &content, depth + 1, budget, symbols);
    }
}

fn looks_like_html(data: &[u8]) -> bool {
    let h = String::from_utf8_lossy(head(data, 512)).to_ascii_lowercase();
    h.contains("<html") || h.contains("<!doctype html") || h.contains("<script")
}

fn head(data: &[u8], n: usize) -> &[u8] {
    &data[..data.len().min(n)]
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
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
mod tests {
    use std::io::Write;

    use super::*;

    fn zip_of(entries: &[(&str, &[u8])], encrypted: bool) -> Vec<u8> {
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
        let mut s = Symbols::default();
        check(
            &[Attachment {
                name: name.into(),
                declared_type: String::new(),
                data,
            }],
            &Deadline::unlimited(),
            &mut s,
        );
        s.names().map(str::to_owned).collect()
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
            &Deadline::after(std::time::Duration::ZERO),
            &mut spent,
        );
        assert!(spent.has("SCAN_BUDGET_EXCEEDED"));
    }

    #[test]
    fn truncated_members_are_flagged() {
        let mut content = vec![7u8; (MAX_MEMBER + 1) as usize];
        let mut s = Symbols::default();
        cap_member("a.7z", &mut content, &mut s);
        assert_eq!(content.len() as u64, MAX_MEMBER);
        assert!(s.has("ARCHIVE_MEMBER_TRUNCATED"));
        let mut small = vec![7u8; 10];
        let mut s = Symbols::default();
        cap_member("a.7z", &mut small, &mut s);
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
