//! Outbound DKIM signatures checked by an independent verifier: python3-dkim (dkimpy, with
//! python3-nacl for Ed25519), given the key's TXT record in place of DNS. A signature that
//! only mail-auth (which also signs) accepted could share its mistakes; dkimpy shares none of
//! its code. tests/run.sh installs both packages.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use jianmen_mta::dkim::{DkimConfig, DkimDomain, DkimSigner, KeyAlgorithm, generate_key, key_path};
use jianmen_testkit::dkimpy;

/// A message with what canonicalization has to get right: folded and oddly spaced header
/// fields, UTF-8 (8bit) text, trailing spaces and blank lines at the end of the body.
const MESSAGE: &str = "From: =?utf-8?b?5byg5LiJ?= <zhangsan@example.com>\r\n\
    To: partner@outside.test,\r\n\
    \x20 second@outside.test\r\n\
    Cc: audit@example.com\r\n\
    Subject:   季度报告   (quarterly report)\r\n\
    Date: Mon, 2 Mar 2026 10:00:00 +0800\r\n\
    Message-ID: <r-2026-03@example.com>\r\n\
    MIME-Version: 1.0\r\n\
    Content-Type: text/plain; charset=utf-8\r\n\
    Content-Transfer-Encoding: 8bit\r\n\
    X-Mailer: internal\r\n\
    \r\n\
    各位好，\r\n\
    \r\n\
    The report is attached.   \r\n\
    \x20 Indented line\twith a tab.\r\n\
    \r\n\
    \r\n";

/// A signer of example.com with a new key of `algorithm` under `dir`; returns it and the key's
/// TXT value.
fn signer(dir: &Path, algorithm: KeyAlgorithm) -> (DkimSigner, String) {
    let (pem, txt) = generate_key(algorithm).expect("key");
    let path = key_path(dir, "example.com", "jm2026a").expect("path");
    std::fs::create_dir_all(path.parent().expect("dir")).expect("key dir");
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .and_then(|mut f| f.write_all(pem.as_bytes()))
        .expect("key written");
    let config = DkimConfig {
        domains: vec![DkimDomain {
            domain: "example.com".into(),
            selector: "jm2026a".into(),
        }],
    };
    (DkimSigner::load(&config, dir).expect("key loads"), txt)
}

fn signed_mail_verifies_in_dkimpy_and_changed_mail_does_not(algorithm: KeyAlgorithm) {
    let dir = tempfile::tempdir().expect("tempdir");
    let (signer, txt) = signer(dir.path(), algorithm);
    let header = signer
        .sign(MESSAGE.as_bytes())
        .expect("example.com signs")
        .expect("signed");
    let signed = format!("{header}{MESSAGE}");
    let name = "jm2026a._domainkey.example.com.";
    assert_eq!(dkimpy(signed.as_bytes(), name, &txt), "pass", "{signed}");

    // Relaxed canonicalization forgives what relays do to whitespace and folding…
    let refolded = signed.replace(
        "To: partner@outside.test,\r\n  second@outside.test",
        "To:  partner@outside.test,   second@outside.test",
    );
    assert_ne!(refolded, signed);
    assert_eq!(dkimpy(refolded.as_bytes(), name, &txt), "pass");

    // …but not a changed body, a changed signed field, a field added where none was signed,
    // a second From, or another key.
    let changes = [
        signed.replace("The report is attached.", "The report is attachd."),
        format!("{signed}P.S. one more line\r\n"),
        signed.replace("(quarterly report)", "(quarterly reports)"),
        signed.replace("X-Mailer: internal\r\n", "Reply-To: thief@evil.test\r\n"),
        format!("{header}From: ceo@example.com\r\n{MESSAGE}"),
    ];
    for changed in &changes {
        assert_ne!(changed, &signed);
        assert_eq!(
            dkimpy(changed.as_bytes(), name, &txt),
            "fail",
            "must fail:\n{changed}"
        );
    }
    let (_, other_txt) = generate_key(algorithm).expect("second key");
    assert_eq!(dkimpy(signed.as_bytes(), name, &other_txt), "fail");
    // The unsigned header field stays outside the signature.
    let retagged = signed.replace("X-Mailer: internal", "X-Mailer: relay");
    assert_eq!(dkimpy(retagged.as_bytes(), name, &txt), "pass");
}

#[test]
fn rsa_signatures_verify_in_dkimpy() {
    signed_mail_verifies_in_dkimpy_and_changed_mail_does_not(KeyAlgorithm::Rsa);
}

#[test]
fn ed25519_signatures_verify_in_dkimpy() {
    signed_mail_verifies_in_dkimpy_and_changed_mail_does_not(KeyAlgorithm::Ed25519);
}
