//! Recall against real peers: the gateway delivers through a real Postfix (the organisation's
//! mail server) into Dovecot over LMTP; the security administrator finds the message in the
//! hunt index by its attachment's SHA-256 and recalls it from three mailboxes — the gateway
//! logs in to Dovecot over verified TLS as a master user acting as each user — and puts it back.
//! An independent IMAP client (Python's imaplib, logged in as each user) checks the mailboxes.

use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

use jianmen_testkit::{
    Browser, Client, Console, Dovecot, Gateway, Postfix, Setup, Sink, TestPki, free_port,
    sha256_hex, wait_until,
};

const USERS: [(&str, &str); 3] = [
    ("alice@example.com", "alice-pw-1"),
    ("bob@example.com", "bob-pw-2"),
    ("carol@example.com", "carol-pw-3"),
];
const NEW_PASSWORD: &str = "Recall-Board-2026!";

/// Counts the messages with `message_id` in `folder` of `user`'s mailbox, as the user sees it.
const COUNT: &str = r#"
import imaplib, ssl, sys
port, ca, user, password, folder, mid = sys.argv[1:7]
ctx = ssl.create_default_context(cafile=ca)
ctx.check_hostname = False
m = imaplib.IMAP4_SSL("127.0.0.1", int(port), ssl_context=ctx)
m.login(user, password)
typ, _ = m.select('"%s"' % folder, readonly=True)
if typ != "OK":
    print(0)
else:
    typ, data = m.search(None, "HEADER", "Message-ID", mid)
    print(len(data[0].split()))
m.logout()
"#;

fn count(
    dovecot: &Dovecot,
    ca: &std::path::Path,
    user: (&str, &str),
    folder: &str,
    mid: &str,
) -> usize {
    let out = Command::new("python3")
        .arg("-c")
        .arg(COUNT)
        .arg(dovecot.imaps_port.to_string())
        .arg(ca)
        .args([user.0, user.1, folder, mid])
        .output()
        .expect("python3");
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("imaplib: {}", String::from_utf8_lossy(&out.stderr)))
}

fn message(mid: &str, attachment: &[u8]) -> Vec<u8> {
    format!(
        "From: Payroll <payroll@outside.test>\r\nTo: staff@example.com\r\nSubject: Salary adjustment\r\n\
         Message-ID: <{mid}>\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n\
         --b\r\nContent-Type: text/plain\r\n\r\nSee the attachment.\r\n--b\r\n\
         Content-Type: application/octet-stream; name=\"salary.xlsm\"\r\nContent-Transfer-Encoding: base64\r\n\r\n\
         {}\r\n--b--\r\n",
        jianmen_testkit::b64(attachment)
    )
    .into_bytes()
}

fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

#[test]
fn a_recall_takes_a_message_out_of_three_mailboxes_and_undo_puts_it_back() {
    let pki_dir = tempfile::tempdir().unwrap();
    let pki = TestPki::make(pki_dir.path(), &["imap.example.com"]);
    let dovecot = Dovecot::start(&USERS, ("recall", "master-secret-9"), &pki.cert, &pki.key);
    let elsewhere = Sink::start(&[]);
    // The organisation's mail server: a real Postfix storing example.com's mail in Dovecot.
    let postfix = Postfix::start(
        SocketAddr::from(([127, 0, 0, 1], elsewhere.port)),
        "127.0.0.1",
        &[
            "virtual_mailbox_domains = example.com",
            &format!(
                "virtual_transport = lmtp:inet:127.0.0.1:{}",
                dovecot.lmtp_port
            ),
            "smtpd_reject_unlisted_recipient = no",
        ],
    );
    let secret = pki_dir.path().join("recall.secret");
    std::fs::write(&secret, "master-secret-9\n").unwrap();
    let console_port = free_port();
    let gw = Gateway::start(
        &Setup::new(postfix.port, elsewhere.port)
            .section(&format!("[console]\nlisten = \"127.0.0.1:{console_port}\""))
            .section(&format!(
                "[recall]\nfolder = \"Recalled\"\n[[recall.imap]]\ndomains = [\"example.com\"]\n\
                 host = \"127.0.0.1\"\nport = {}\ntls = \"tls\"\ntls_ca = \"{}\"\n\
                 tls_name = \"imap.example.com\"\nmaster_user = \"recall\"\npassword_file = \"{}\"\n",
                dovecot.imaps_port,
                pki.ca.display(),
                secret.display()
            )),
    );
    let attachment = b"Sub AutoOpen()\r\n  Shell \"powershell -enc ...\"\r\nEnd Sub\r\n".repeat(20);
    let sha = sha256_hex(&attachment);
    let mid = "payroll-2026-12@outside.test";
    let mut c = Client::ready(gw.addr);
    let rcpts: Vec<&str> = USERS.iter().map(|u| u.0).collect();
    assert_eq!(
        c.send_mail("payroll@outside.test", &rcpts, &message(mid, &attachment))
            .code,
        250
    );
    let other = "lunch-menu@outside.test";
    assert_eq!(
        c.send_mail(
            "canteen@outside.test",
            &[USERS[0].0],
            &message(other, b"menu")
        )
        .code,
        250
    );
    assert!(
        wait_until(Duration::from_secs(60), || USERS
            .iter()
            .all(|u| count(&dovecot, &pki.ca, *u, "INBOX", mid) == 1)
            && count(&dovecot, &pki.ca, USERS[0], "INBOX", other) == 1),
        "not delivered into the mailboxes:\n{}\n{}\n{}",
        gw.log(),
        postfix.log(),
        dovecot.log()
    );

    // The security administrator finds it by the attachment's hash and recalls it.
    let (user, password) = gw.initial_account("security");
    let work = tempfile::tempdir().unwrap();
    let console = Console::new(console_port, work.path());
    let csrf = console.sign_in(&user, &password, NEW_PASSWORD);
    let (code, found) = console.request(&format!("/api/hunt?sha256={}", sha.to_uppercase()), &[]);
    assert_eq!(code, 200, "{found}");
    let found = json(&found);
    assert_eq!(found["messages"].as_array().unwrap().len(), 1, "{found}");
    let queue_id = found["messages"][0]["queue_id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(found["messages"][0]["message_id"], mid);
    let (code, started) = console.post_json(
        "/api/recall",
        &csrf,
        &serde_json::json!({"queue_id": queue_id, "reason": "macro malware reported by intel"})
            .to_string(),
    );
    assert_eq!(code, 202, "{started}");
    let id = json(&started)["recall"]["id"].as_str().unwrap().to_owned();
    let states = |want: &str| {
        let (_, body) = console.request(&format!("/api/recall/{id}"), &[]);
        let v = json(&body);
        let items = v["mailboxes"].as_array().cloned().unwrap_or_default();
        items.len() == 3 && items.iter().all(|i| i["state"] == want)
    };
    assert!(
        wait_until(Duration::from_secs(60), || states("recalled")),
        "{}\n{}\n{}",
        console.request(&format!("/api/recall/{id}"), &[]).1,
        gw.log(),
        dovecot.log()
    );
    for u in USERS {
        assert_eq!(
            count(&dovecot, &pki.ca, u, "INBOX", mid),
            0,
            "{} still has it",
            u.0
        );
        assert_eq!(
            count(&dovecot, &pki.ca, u, "Recalled", mid),
            1,
            "{} has no recalled copy",
            u.0
        );
    }
    assert_eq!(
        count(&dovecot, &pki.ca, USERS[0], "INBOX", other),
        1,
        "other mail is left alone"
    );
    let (_, detail) = console.request(&format!("/api/recall/{id}"), &[]);
    assert!(
        detail.contains("\"INBOX\""),
        "the folder it came from is kept: {detail}"
    );

    // Undo puts it back where it was.
    let (code, body) = console.post_json(&format!("/api/recall/{id}/undo"), &csrf, "");
    assert_eq!(code, 202, "{body}");
    assert!(
        wait_until(Duration::from_secs(60), || states("restored")),
        "{}",
        console.request(&format!("/api/recall/{id}"), &[]).1
    );
    for u in USERS {
        assert_eq!(count(&dovecot, &pki.ca, u, "INBOX", mid), 1);
        assert_eq!(count(&dovecot, &pki.ca, u, "Recalled", mid), 0);
    }
    let (code, body) = console.post_json(&format!("/api/recall/{id}/undo"), &csrf, "");
    assert_eq!(code, 409, "nothing left to put back: {body}");

    // Again, in the console: found by the hash, recalled, followed to the end.
    Browser::ready().run(
        "recall.mjs",
        &[
            ("JM_URL", format!("https://127.0.0.1:{console_port}/")),
            ("JM_SEC_USER", user.clone()),
            ("JM_SEC_PASS", NEW_PASSWORD.into()),
            ("JM_NEW_PASS", NEW_PASSWORD.into()),
            ("JM_SHA256", sha.clone()),
        ],
        || gw.log(),
    );
    for u in USERS {
        assert_eq!(
            count(&dovecot, &pki.ca, u, "INBOX", mid),
            0,
            "{} still has it",
            u.0
        );
    }
    // Both are on the record.
    let (auditor, apw) = gw.initial_account("audit");
    let audit_dir = tempfile::tempdir().unwrap();
    let audit_console = Console::new(console_port, audit_dir.path());
    audit_console.sign_in(&auditor, &apw, NEW_PASSWORD);
    let (_, trail) = audit_console.request("/api/audit", &[]);
    assert!(
        trail.contains("recall.start") && trail.contains("recall.undo"),
        "{trail}"
    );
}
