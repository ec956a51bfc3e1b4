//! Text extraction for data-leak prevention (`jianmen_scan::dlp::extract`): generates documents
//! of a few MB as common generators lay them out — a docx of paragraphs and tables with a
//! picture, an xlsx of shared strings, inline strings and numbers, a PDF of Flate-compressed
//! pages in a Chinese Type0 font with a ToUnicode CMap and a picture, the same xlsx inside a zip
//! inside a tar.gz — and prints, for each, the input size, the text extracted, input and text
//! MB/s on one thread, and the resident ID numbers the detectors then find against those
//! written (a check that the text is the right text).
//!
//! Usage: `cargo run --release -p jianmen-benches --bin extract [-- SECONDS_PER_TYPE]`
//! (default 3 seconds of repetitions per type).

use std::collections::HashSet;
use std::io::{Cursor, Write};
use std::time::{Duration, Instant};

use jianmen_scan::dlp::extract::attachments_text;
use jianmen_scan::dlp::identifiers::{self, Detector};
use jianmen_scan::message::Attachment;
use jianmen_scan::pool::Deadline;

fn main() {
    let seconds: f64 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(3.0);
    let today = chrono::Local::now().date_naive();
    let (xlsx, xlsx_ids) = xlsx(100_000);
    let (docx, docx_ids) = docx(40_000);
    let (pdf, pdf_ids) = pdf(1000);
    let documents = [
        ("docx", "report.docx", docx, docx_ids),
        ("xlsx", "staff.xlsx", xlsx.clone(), xlsx_ids),
        ("pdf", "scan.pdf", pdf, pdf_ids),
        ("tar.gz>zip>xlsx", "backup.tar.gz", nested(&xlsx), xlsx_ids),
    ];
    println!(
        "{:<16} {:>9} {:>8} {:>5} {:>11} {:>10} {:>17}",
        "type", "input MB", "text MB", "runs", "input MB/s", "text MB/s", "IDs found/written"
    );
    for (kind, name, data, written) in documents {
        let attachment = [Attachment {
            name: name.into(),
            declared_type: String::new(),
            data,
        }];
        let started = Instant::now();
        let mut runs = 0u32;
        let mut text_len = 0;
        let mut ids = 0;
        while runs == 0 || started.elapsed() < Duration::from_secs_f64(seconds) {
            let x = attachments_text(&attachment, &Deadline::unlimited());
            assert!(!x.truncated, "{kind}: a bound stopped the extraction");
            if runs == 0 {
                text_len = x.text.len();
                ids = identifiers::find(&x.text, today)
                    .get(Detector::ResidentId)
                    .map_or(0, |f| f.distinct);
            }
            runs += 1;
        }
        let spent = started.elapsed().as_secs_f64() / f64::from(runs);
        let mb = attachment[0].data.len() as f64 / 1e6;
        let text_mb = text_len as f64 / 1e6;
        println!(
            "{kind:<16} {mb:>9.2} {text_mb:>8.2} {runs:>5} {:>11.1} {:>10.1} {:>17}",
            mb / spent,
            text_mb / spent,
            format!("{ids}/{written}")
        );
    }
}

/// The i-th of a run of valid 居民身份证号 (GB 11643 check character).
fn resident_id(i: usize) -> String {
    const WEIGHTS: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
    let first17 = format!(
        "44030419{:02}0{}{:02}{:03}",
        60 + i % 40,
        1 + i % 9,
        1 + i % 28,
        i % 1000
    );
    let sum: u32 = first17
        .bytes()
        .zip(WEIGHTS)
        .map(|(d, w)| u32::from(d - b'0') * w)
        .sum();
    format!(
        "{first17}{}",
        char::from(b"10X98765432"[(sum % 11) as usize])
    )
}

/// Incompressible bytes, as a picture is.
fn picture(len: usize) -> Vec<u8> {
    let mut x = 0x2545_f491_4f6c_dd1du64;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn zip_of(entries: &[(&str, &[u8])]) -> Vec<u8> {
    let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
    for (name, data) in entries {
        let opts = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated);
        w.start_file(*name, opts).expect("zip entry");
        w.write_all(data).expect("zip data");
    }
    w.finish().expect("zip").into_inner()
}

fn package(parts: &[(&str, &[u8])]) -> Vec<u8> {
    let mut entries: Vec<(&str, &[u8])> = vec![("[Content_Types].xml", b"<Types/>")];
    entries.extend_from_slice(parts);
    zip_of(&entries)
}

/// A report: paragraphs whose runs split words (as Word's revision marks do), tables, and a
/// picture. Returns it and the number of distinct ID numbers written.
fn docx(paragraphs: usize) -> (Vec<u8>, usize) {
    let mut body = String::new();
    let mut ids = HashSet::new();
    for i in 0..paragraphs {
        let id = resident_id(i);
        body.push_str(&format!(
            "<w:p><w:r><w:t xml:space=\"preserve\">第{i}条 关于客户资料的核查：客户身份证号 </w:t></w:r>\
             <w:r><w:rPr><w:b/></w:rPr><w:t>{}</w:t></w:r><w:r><w:t>{}，联系电话请见附件 Lorem ipsum dolor sit amet.</w:t></w:r></w:p>",
            &id[..9],
            &id[9..]
        ));
        ids.insert(id);
        if i % 10 == 0 {
            body.push_str(&format!(
                "<w:tbl><w:tr><w:tc><w:p><w:r><w:t>{i}</w:t></w:r></w:p></w:tc>\
                 <w:tc><w:p><w:r><w:t>{}</w:t></w:r></w:p></w:tc></w:tr></w:tbl>",
                i * 7
            ));
        }
    }
    let document = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><w:document xmlns:w=\"w\"><w:body>{body}</w:body></w:document>"
    );
    let docx = package(&[
        ("word/document.xml", document.as_bytes()),
        ("word/media/image1.png", &picture(2 << 20)),
    ]);
    (docx, ids.len())
}

/// A staff list: names as shared strings, ID numbers as inline strings, numbers as values.
/// Returns it and the number of distinct ID numbers written.
fn xlsx(rows: usize) -> (Vec<u8>, usize) {
    let mut shared = String::new();
    for i in 0..1000 {
        shared.push_str(&format!("<si><t>员工{i} 研发部</t></si>"));
    }
    let mut sheet = String::new();
    let mut ids = HashSet::new();
    for r in 0..rows {
        let id = resident_id(r);
        sheet.push_str(&format!(
            "<row r=\"{}\"><c r=\"A{0}\" t=\"s\"><v>{}</v></c><c r=\"B{0}\" t=\"inlineStr\"><is><t>{id}</t></is></c>\
             <c r=\"C{0}\"><v>{}</v></c><c r=\"D{0}\"><v>{}.5</v></c></row>",
            r + 1,
            r % 1000,
            13_800_000_000u64 + r as u64,
            r * 3
        ));
        ids.insert(id);
    }
    let shared = format!("<sst xmlns=\"x\">{shared}</sst>");
    let sheet = format!("<worksheet xmlns=\"x\"><sheetData>{sheet}</sheetData></worksheet>");
    let xlsx = package(&[
        ("xl/sharedStrings.xml", shared.as_bytes()),
        ("xl/worksheets/sheet1.xml", sheet.as_bytes()),
    ]);
    (xlsx, ids.len())
}

/// Pages of Chinese text in a Type0 font (two-byte codes, ToUnicode CMap) and a Latin column
/// in Helvetica, each page's content Flate-compressed, and a picture every page shows.
/// Returns it and the number of distinct ID numbers written.
fn pdf(pages: usize) -> (Vec<u8>, usize) {
    let chars: Vec<char> = "客户身份证号码联系电话地址银行账户姓名部门"
        .chars()
        .collect();
    let mut cmap = String::from(
        "/CIDInit /ProcSet findresource begin 12 dict begin begincmap\n\
         1 begincodespacerange <0000> <FFFF> endcodespacerange\n",
    );
    // The ID numbers' digits and check character X keep their ASCII codes.
    cmap.push_str(&format!("{} beginbfchar\n<0058> <0058>\n", chars.len() + 1));
    for (i, c) in chars.iter().enumerate() {
        cmap.push_str(&format!("<{:04X}> <{:04X}>\n", i + 1, u32::from(*c)));
    }
    cmap.push_str("endbfchar\n1 beginbfrange <0030> <0039> <0030> endbfrange\nendcmap end end\n");
    let photo = picture(2 << 20);
    let mut image = format!(
        "<< /Type /XObject /Subtype /Image /Width 1024 /Height 1024 /ColorSpace /DeviceRGB \
         /BitsPerComponent 8 /Filter /DCTDecode /Length {} >>\nstream\n",
        photo.len()
    )
    .into_bytes();
    image.extend_from_slice(&photo);
    image.extend_from_slice(b"\nendstream");

    let mut objects: Vec<Vec<u8>> = vec![
        b"<< /Type /Catalog /Pages 2 0 R >>".to_vec(),
        Vec::new(), // the page tree, once the pages are known
        b"<< /Font << /F1 4 0 R /F2 5 0 R >> /XObject << /Im1 8 0 R >> >>".to_vec(),
        b"<< /Type /Font /Subtype /Type0 /BaseFont /SimSun /Encoding /Identity-H \
          /DescendantFonts [6 0 R] /ToUnicode 7 0 R >>"
            .to_vec(),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>"
            .to_vec(),
        b"<< /Type /Font /Subtype /CIDFontType2 /BaseFont /SimSun /DW 1000 /W [48 57 500 88 88 500] >>"
            .to_vec(),
        stream(&deflate(cmap.as_bytes())),
        image,
    ];
    let mut kids = String::new();
    let mut ids = HashSet::new();
    for p in 0..pages {
        let mut content = String::from("q 200 0 0 200 300 300 cm /Im1 Do Q\n");
        for line in 0..40 {
            let y = 780 - line * 18;
            let mut hex = String::new();
            for k in 0..12 {
                hex.push_str(&format!("{:04X}", (p + line + k) % chars.len() + 1));
            }
            let id = resident_id(p * 40 + line);
            for d in id.bytes() {
                hex.push_str(&format!("{:04X}", u32::from(d)));
            }
            ids.insert(id);
            content.push_str(&format!(
                "BT /F1 10.5 Tf 1 0 0 1 56 {y} Tm <{hex}> Tj ET\n\
                 BT /F2 9 Tf 1 0 0 1 400 {y} Tm [(Row) -250 (total ) 20 ({}.00)] TJ ET\n",
                p * 100 + line
            ));
        }
        objects.push(stream(&deflate(content.as_bytes())));
        let content_ref = objects.len();
        objects.push(
            format!(
                "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Resources 3 0 R /Contents {content_ref} 0 R >>"
            )
            .into_bytes(),
        );
        kids.push_str(&format!("{} 0 R ", objects.len()));
    }
    objects[1] = format!("<< /Type /Pages /Kids [{kids}] /Count {pages} >>").into_bytes();

    let mut out = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n".to_vec();
    let mut offsets = Vec::new();
    for (i, o) in objects.iter().enumerate() {
        offsets.push(out.len());
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
            "trailer\n<< /Size {} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n",
            objects.len() + 1
        )
        .as_bytes(),
    );
    (out, ids.len())
}

fn stream(data: &[u8]) -> Vec<u8> {
    let mut o = format!(
        "<< /Filter /FlateDecode /Length {} >>\nstream\n",
        data.len()
    )
    .into_bytes();
    o.extend_from_slice(data);
    o.extend_from_slice(b"\nendstream");
    o
}

fn deflate(data: &[u8]) -> Vec<u8> {
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    z.write_all(data).expect("deflate");
    z.finish().expect("deflate")
}

/// The workbook in a zip in a tar in gzip, as a backup is sent.
fn nested(xlsx: &[u8]) -> Vec<u8> {
    let zip = zip_of(&[("export/staff.xlsx", xlsx)]);
    let mut tar = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_gnu();
    header.set_size(zip.len() as u64);
    header.set_mode(0o644);
    header.set_cksum();
    tar.append_data(&mut header, "backup/export.zip", &zip[..])
        .expect("tar");
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&tar.into_inner().expect("tar")).expect("gzip");
    gz.finish().expect("gzip")
}
