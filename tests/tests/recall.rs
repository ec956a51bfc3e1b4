//! Recall against real peers: the gateway delivers through a real Postfix (the organisation's
//! mail server) into Dovecot over LMTP; the security administrator finds the message in the
//! hunt index by its attachment's SHA-256 and recalls it from three mailboxes — the gateway
//! logs in to Dovecot over verified TLS as a master user acting as each user — and puts it back.
//! An independent IMAP client (Python's imaplib, logged in as each user) checks the mailboxes.

use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

use jianmen_testkit::{
    Browser, Client, Console, Dovecot, Gateway, Medallion, Postfix, Setup, Sink, TestPki,
    free_port, sha256_hex, wait_until,
};

const USERS: [(&str, &str); 3] = [
    ("alice@example.com", "alice-pw-1"),
    ("bob@example.com", "bob-pw-2"),
    ("carol@example.com", "carol-pw-3"),
];
/// The attachment's name: a spreadsheet the scanner lets through.
const ATTACHED: &str = "salary.xlsx";
const NEW_PASSWORD: &str = "Recall-Board-2026!";

/// Counts the messages whose header field has a value in `folder` of `user`'s mailbox, as the
/// user sees it.
const COUNT: &str = r#"
import imaplib, ssl, sys
port, ca, user, password, folder, field, value = sys.argv[1:8]
ctx = ssl.create_default_context(cafile=ca)
ctx.check_hostname = False
m = imaplib.IMAP4_SSL("127.0.0.1", int(port), ssl_context=ctx)
m.login(user, password)
typ, _ = m.select('"%s"' % folder, readonly=True)
if typ != "OK":
    print(0)
else:
    typ, data = m.search(None, "HEADER", field, '"%s"' % value)
    print(len(data[0].split()))
m.logout()
"#;

fn count(
    dovecot: &Dovecot,
    ca: &std::path::Path,
    user: (&str, &str),
    folder: &str,
    (field, value): (&str, &str),
) -> usize {
    let out = Command::new("python3")
        .arg("-c")
        .arg(COUNT)
        .arg(dovecot.imaps_port.to_string())
        .arg(ca)
        .args([user.0, user.1, folder, field, value])
        .output()
        .expect("python3");
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("imaplib: {}", String::from_utf8_lossy(&out.stderr)))
}

fn message(mid: &str, name: &str, attachment: &[u8]) -> Vec<u8> {
    format!(
        "From: Payroll <payroll@outside.test>\r\nTo: staff@example.com\r\nSubject: Salary adjustment\r\n\
         Message-ID: <{mid}>\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n\
         --b\r\nContent-Type: text/plain\r\n\r\nSee the attachment.\r\n--b\r\n\
         Content-Type: application/octet-stream; name=\"{name}\"\r\nContent-Transfer-Encoding: base64\r\n\r\n\
         {}\r\n--b--\r\n",
        jianmen_testkit::b64(attachment),
    )
    .into_bytes()
}

fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

/// The organisation: Dovecot holding three mailboxes, a real Postfix delivering into it, and
/// the gateway in front, configured to recall from Dovecot (and with `more`).
struct Site {
    gw: Gateway,
    console_port: u16,
    dovecot: Dovecot,
    pki: TestPki,
    _postfix: Postfix,
    _elsewhere: Sink,
    dir: tempfile::TempDir,
}

impl Site {
    fn start(more: impl FnOnce(Setup, &TestPki, &std::path::Path) -> Setup) -> Site {
        let dir = tempfile::tempdir().unwrap();
        let pki = TestPki::make(dir.path(), &["imap.example.com", "127.0.0.1"]);
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
        let secret = dir.path().join("recall.secret");
        std::fs::write(&secret, "master-secret-9\n").unwrap();
        let console_port = free_port();
        let setup = Setup::new(postfix.port, elsewhere.port)
                .console(console_port)
                .section(&format!(
                    "[recall]\nfolder = \"Recalled\"\nnotify_recipients = true\n[[recall.imap]]\ndomains = [\"example.com\"]\n\
                     host = \"127.0.0.1\"\nport = {}\ntls = \"tls\"\ntls_ca = \"{}\"\n\
                     tls_name = \"imap.example.com\"\nmaster_user = \"recall\"\npassword_file = \"{}\"\n",
                    dovecot.imaps_port,
                    pki.ca.display(),
                    secret.display()
                ));
        let gw = Gateway::start(&more(setup, &pki, dir.path()));
        Site {
            gw,
            console_port,
            dovecot,
            pki,
            _postfix: postfix,
            _elsewhere: elsewhere,
            dir,
        }
    }

    /// How many copies of `mid` `user` has in `folder`.
    fn count(&self, user: (&str, &str), folder: &str, mid: &str) -> usize {
        count(
            &self.dovecot,
            &self.pki.ca,
            user,
            folder,
            ("Message-ID", mid),
        )
    }

    /// How many messages with `subject` `user` has in `folder`.
    fn count_subject(&self, user: (&str, &str), folder: &str, subject: &str) -> usize {
        count(
            &self.dovecot,
            &self.pki.ca,
            user,
            folder,
            ("Subject", subject),
        )
    }

    /// Sends `message` to all three and waits until each mailbox has it.
    fn deliver(&self, mid: &str, message: &[u8]) {
        let mut c = Client::ready(self.gw.addr);
        let rcpts: Vec<&str> = USERS.iter().map(|u| u.0).collect();
        assert_eq!(
            c.send_mail("payroll@outside.test", &rcpts, message).code,
            250
        );
        assert!(
            wait_until(Duration::from_secs(60), || USERS
                .iter()
                .all(|u| self.count(*u, "INBOX", mid) == 1)),
            "not delivered into the mailboxes:\n{}\n{}",
            self.gw.log(),
            self.dovecot.log()
        );
    }

    /// The security administrator, signed in.
    fn security_console(&self) -> (Console, String, String) {
        let (user, password) = self.gw.initial_account("security");
        let work = self.dir.path().join("console");
        std::fs::create_dir_all(&work).unwrap();
        let console = Console::new(self.console_port, &work);
        let csrf = console.sign_in(&user, &password, NEW_PASSWORD);
        (console, csrf, user)
    }
}

#[test]
fn a_recall_takes_a_message_out_of_three_mailboxes_and_undo_puts_it_back() {
    let site = Site::start(|setup, _, _| setup);
    let (gw, console_port) = (&site.gw, site.console_port);
    let attachment = b"Sub AutoOpen()\r\n  Shell \"powershell -enc ...\"\r\nEnd Sub\r\n".repeat(20);
    let sha = sha256_hex(&attachment);
    let mid = "payroll-2026-12@outside.test";
    site.deliver(mid, &message(mid, ATTACHED, &attachment));
    let other = "lunch-menu@outside.test";
    let mut c = Client::ready(gw.addr);
    assert_eq!(
        c.send_mail(
            "canteen@outside.test",
            &[USERS[0].0],
            &message(other, ATTACHED, b"menu")
        )
        .code,
        250
    );
    assert!(
        wait_until(Duration::from_secs(60), || site
            .count(USERS[0], "INBOX", other)
            == 1),
        "not delivered:\n{}",
        gw.log()
    );

    // The security administrator finds it by the attachment's hash and recalls it.
    let (console, csrf, user) = site.security_console();
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
        site.dovecot.log()
    );
    for u in USERS {
        assert_eq!(site.count(u, "INBOX", mid), 0, "{} still has it", u.0);
        assert_eq!(
            site.count(u, "Recalled", mid),
            1,
            "{} has no recalled copy",
            u.0
        );
    }
    assert_eq!(
        site.count(USERS[0], "INBOX", other),
        1,
        "other mail is left alone"
    );
    // Each recipient is told.
    assert!(
        wait_until(Duration::from_secs(60), || USERS.iter().all(|u| site
            .count_subject(
                *u,
                "INBOX",
                "A message was recalled from your mailbox"
            )
            == 1)),
        "no notice:\n{}",
        gw.log()
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
        assert_eq!(site.count(u, "INBOX", mid), 1);
        assert_eq!(site.count(u, "Recalled", mid), 0);
    }
    let (code, body) = console.post_json(&format!("/api/recall/{id}/undo"), &csrf, "");
    assert_eq!(code, 409, "nothing left to put back: {body}");

    // A message without a Message-ID is found by its sender, subject and day.
    let subject = "Quarterly figures without an id";
    let bare = format!(
        "From: Controller <controller@outside.test>\r\nTo: carol@example.com\r\nSubject: {subject}\r\n\r\nFigures.\r\n"
    );
    assert_eq!(
        c.send_mail("controller@outside.test", &[USERS[2].0], bare.as_bytes())
            .code,
        250
    );
    assert!(wait_until(Duration::from_secs(60), || site
        .count_subject(USERS[2], "INBOX", subject)
        == 1));
    let (_, found) = console.request("/api/hunt?sender=controller@outside.test", &[]);
    let found = json(&found);
    assert_eq!(found["messages"][0]["message_id"], "", "{found}");
    let bare_id = found["messages"][0]["queue_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (code, started) = console.post_json(
        "/api/recall",
        &csrf,
        &serde_json::json!({"queue_id": bare_id}).to_string(),
    );
    assert_eq!(code, 202, "{started}");
    let bare_recall = json(&started)["recall"]["id"].as_str().unwrap().to_owned();
    assert!(
        wait_until(Duration::from_secs(60), || {
            let (_, body) = console.request(&format!("/api/recall/{bare_recall}"), &[]);
            json(&body)["mailboxes"][0]["state"] == "recalled"
        }),
        "{}",
        console
            .request(&format!("/api/recall/{bare_recall}"), &[])
            .1
    );
    assert_eq!(site.count_subject(USERS[2], "INBOX", subject), 0);
    assert_eq!(site.count_subject(USERS[2], "Recalled", subject), 1);

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
        assert_eq!(site.count(u, "INBOX", mid), 0, "{} still has it", u.0);
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

/// A STIX indicator as a CERT's feed would publish it.
fn indicator(id: &str, name: &str, pattern: &str) -> serde_json::Value {
    serde_json::json!({
        "type": "indicator", "spec_version": "2.1", "id": format!("indicator--{id}"),
        "created": "2026-12-01T00:00:00.000Z", "modified": "2026-12-01T00:00:00.000Z",
        "valid_from": "2026-12-01T00:00:00Z", "name": name,
        "pattern_type": "stix", "pattern": pattern,
    })
}

#[test]
fn an_indicator_from_a_taxii_feed_recalls_delivered_mail_and_refuses_the_next_copy() {
    let feed = std::cell::OnceCell::new();
    let site = Site::start(|setup, pki, dir| {
        let medallion = feed.get_or_init(|| Medallion::start(pki));
        let password = dir.join("taxii.secret");
        std::fs::write(&password, format!("{}\n", medallion.password)).unwrap();
        // Indicators are checked by the scanner: it runs, without the content model.
        setup.scanning(&["model = \"none\"", "first_contact = false"]).section(&format!(
            "[intel]\non_match = \"recall\"\n[[intel.taxii]]\nname = \"cert-feed\"\nurl = \"{}\"\n\
             username = \"{}\"\npassword_file = \"{}\"\ntls_ca = \"{}\"\ninterval_secs = 10\n",
            medallion.collection,
            medallion.user,
            password.display(),
            pki.ca.display()
        ))
    });
    let medallion = feed.get().unwrap();
    let attachment =
        b"Sub Document_Open()\r\n  CreateObject(\"WScript.Shell\").Run \"x\"\r\nEnd Sub\r\n"
            .repeat(30);
    let sha = sha256_hex(&attachment);
    let mid = "invoice-4711@outside.test";
    site.deliver(mid, &message(mid, ATTACHED, &attachment));
    let other = "newsletter-12@outside.test";
    site.deliver(other, &message(other, ATTACHED, b"harmless"));
    let (console, csrf, user) = site.security_console();
    // Indexed for hunting before the indicator is published.
    assert!(wait_until(Duration::from_secs(30), || {
        console
            .request(&format!("/api/hunt?sha256={sha}"), &[])
            .1
            .contains(mid)
    }));
    // The first poll found an empty collection.
    assert!(
        wait_until(Duration::from_secs(30), || {
            let (_, body) = console.request("/api/intel", &[]);
            json(&body)["sources"].as_array().is_some_and(|s| {
                s.iter()
                    .any(|s| s["name"] == "cert-feed" && s["last_ok"].as_i64() > Some(0))
            })
        }),
        "{}\n{}",
        console.request("/api/intel", &[]).1,
        site.gw.log()
    );

    medallion.add(&[
        indicator(
            "6f1b6b9a-2f4e-4a36-9d27-3f5a0e4e1a01",
            "Invoice macro dropper",
            &format!("[file:hashes.'SHA-256' = '{sha}']"),
        ),
        // What the gateway cannot act on is refused and counted, not half-read.
        indicator(
            "6f1b6b9a-2f4e-4a36-9d27-3f5a0e4e1a02",
            "C2 beacon",
            "[network-traffic:dst_port = 4444]",
        ),
    ]);
    // Within one poll it is recalled from every mailbox that got it.
    assert!(
        wait_until(Duration::from_secs(60), || USERS
            .iter()
            .all(
                |u| site.count(*u, "INBOX", mid) == 0 && site.count(*u, "Recalled", mid) == 1
            )),
        "not recalled:\n{}\n{}\n{}",
        console.request("/api/intel/hits", &[]).1,
        site.gw.log(),
        site.dovecot.log()
    );
    for u in USERS {
        assert_eq!(site.count(u, "INBOX", other), 1, "other mail is left alone");
    }
    let (_, hits) = console.request("/api/intel/hits", &[]);
    let hits = json(&hits);
    let hits = hits["hits"].as_array().unwrap();
    assert_eq!(hits.len(), 1, "{hits:?}");
    assert_eq!(hits[0]["state"], "recalling");
    assert_eq!(hits[0]["kind"], "sha256");
    let recall_id = hits[0]["recall_id"].as_str().unwrap();
    let (_, recall) = console.request(&format!("/api/recall/{recall_id}"), &[]);
    let recall = json(&recall);
    assert_eq!(recall["recall"]["actor"], "intel:cert-feed");
    let (_, overview) = console.request("/api/intel", &[]);
    let source = json(&overview)["sources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "cert-feed")
        .cloned()
        .unwrap();
    assert_eq!(
        (source["received"].as_i64(), source["skipped"].as_i64()),
        (Some(1), Some(1)),
        "{source}"
    );
    assert!(
        source["cursor"]
            .as_str()
            .is_some_and(|c| c.starts_with("20")),
        "{source}"
    );

    // The next copy is refused at SMTP time, by the same indicator.
    let mut c = Client::ready(site.gw.addr);
    let again = "invoice-4712@outside.test";
    let reply = c.send_mail(
        "payroll@outside.test",
        &[USERS[1].0],
        &message(again, ATTACHED, &attachment),
    );
    assert_eq!(reply.code, 550, "{}", reply.text);
    assert!(reply.text.contains("5.7.1"), "{}", reply.text);

    // An administrator's import of a bundle (for sites no feed reaches) works the same way,
    // here proposing nothing new: the indicator is already held.
    let bundle = serde_json::json!({
        "type": "bundle", "id": "bundle--1",
        "objects": [indicator(
            "6f1b6b9a-2f4e-4a36-9d27-3f5a0e4e1a01",
            "Invoice macro dropper",
            &format!("[file:hashes.'SHA-256' = '{sha}']"),
        )],
    });
    let (code, body) = console.post_json("/api/intel/import", &csrf, &bundle.to_string());
    assert_eq!(code, 200, "{body}");
    assert_eq!(json(&body)["unchanged"], 1, "{body}");
    let (code, body) = console.post_json("/api/intel/import", &csrf, "{\"objects\": 5}");
    assert_eq!(code, 400, "{body}");

    // In the console: the source, the hit and its recall; an import of a file.
    let stix = site.dir.path().join("phishing-domains.json");
    let imported = "Credential phishing kit";
    std::fs::write(
        &stix,
        serde_json::json!({"type": "bundle", "id": "bundle--2", "objects": [indicator(
            "6f1b6b9a-2f4e-4a36-9d27-3f5a0e4e1a03",
            imported,
            "[domain-name:value = 'secure-login-portal.test']",
        )]})
        .to_string(),
    )
    .unwrap();
    Browser::ready().run(
        "intel.mjs",
        &[
            (
                "JM_URL",
                format!("https://127.0.0.1:{}/", site.console_port),
            ),
            ("JM_SEC_USER", user),
            ("JM_SEC_PASS", NEW_PASSWORD.into()),
            ("JM_SOURCE", "cert-feed".into()),
            ("JM_STIX_FILE", stix.display().to_string()),
            ("JM_IMPORTED", imported.into()),
        ],
        || site.gw.log(),
    );
    let (_, audit) = {
        let (auditor, apw) = site.gw.initial_account("audit");
        let work = site.dir.path().join("auditor");
        std::fs::create_dir_all(&work).unwrap();
        let c = Console::new(site.console_port, &work);
        c.sign_in(&auditor, &apw, NEW_PASSWORD);
        c.request("/api/audit", &[])
    };
    assert!(audit.contains("intel.import"), "{audit}");
}
