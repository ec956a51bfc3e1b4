//! The console in a real browser: Debian's Chromium, driven by playwright-core
//! (`tests/browser/console.mjs`), signs in to the running gateway over HTTPS as the security
//! administrator, changes the generated password, finds a quarantined phish sent to two people,
//! previews it and releases it to one (asked first) — and Postfix smtp-sink receives that copy
//! only; the auditor then verifies the audit chain
//! and exports the signed audit package, which `jianmen audit verify-export` accepts (and
//! rejects once a byte of it is changed); the system administrator's upload of a file that is
//! no upgrade package is refused on the page. A second run edits the policy in the console
//! (`tests/browser/policy.mjs`) and the next messages feel it; another replaces the served
//! certificate with one issued for a request made in the console (`tests/browser/certificates.mjs`);
//! one refuses a file type and adds a DLP policy there (`tests/browser/attachments-dlp.mjs`).
//! Screenshots are kept in `target/console-screenshots/`.

use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

use jianmen_testkit::{Browser, Client, Gateway, Setup, Sink, free_port, jianmen_bin, wait_until};

fn phish() -> Vec<u8> {
    b"From: \"IT Helpdesk\" <helpdesk@it-support-portal.test>\r\nTo: staff@example.com\r\n\
      Cc: boss@example.com\r\nSubject: Mailbox storage full - action required\r\nMessage-ID: <full@it-support-portal.test>\r\n\
      Content-Type: text/html\r\n\r\n<p>Your mailbox is full. Verify your password to keep receiving mail:</p>\
      <a href=\"http://198.51.100.23/owa/auth/login\">https://mail.example.com/owa</a>\r\n"
        .to_vec()
}

#[test]
fn security_admin_releases_quarantined_mail_in_chromium() {
    let browser = Browser::ready();
    let sink = Sink::start(&[]);
    let console_port = free_port();
    let mut setup = Setup::new(sink.port, sink.port)
        .scanning(&[
            "thresholds = { spam = 6.0, spam_high = 60.0, phish = 6.0, bec = 6.0, virus = 5.0 }",
        ])
        .console(console_port);
    // Upgrades: releases and trusted keys of this test's own, and a file that is no package.
    let upgrades = tempfile::tempdir().unwrap();
    let trust_line = Command::new(jianmen_bin())
        .args(["upgrade", "trust-line", "--create", "--key"])
        .arg(upgrades.path().join("vendor.pk8"))
        .output()
        .unwrap();
    assert!(trust_line.status.success(), "{trust_line:?}");
    std::fs::write(upgrades.path().join("upgrade-trust"), &trust_line.stdout).unwrap();
    let bad_package = upgrades.path().join("not-a-package.jup");
    std::fs::write(&bad_package, "this is not an upgrade package").unwrap();
    setup.env = vec![
        (
            "JIANMEN_RELEASES".into(),
            upgrades.path().join("releases").display().to_string(),
        ),
        (
            "JIANMEN_UPGRADE_TRUST".into(),
            upgrades.path().join("upgrade-trust").display().to_string(),
        ),
    ];
    let gw = Gateway::start(&setup);
    let mut c = Client::ready(gw.addr);
    let r = c.send_mail(
        "helpdesk@it-support-portal.test",
        &["staff@example.com", "boss@example.com"],
        &phish(),
    );
    assert_eq!(r.code, 250, "{r:?}");
    std::thread::sleep(Duration::from_millis(1200));
    assert!(
        sink.messages().is_empty(),
        "the phish is held, not delivered"
    );

    let (sec_user, sec_pass) = gw.initial_account("security");
    let (sys_user, sys_pass) = gw.initial_account("system");
    let (aud_user, aud_pass) = gw.initial_account("audit");
    let export = gw.dir.path().join("audit-export.tar");
    browser.run(
        "console.mjs",
        &[
            ("JM_URL", format!("https://127.0.0.1:{console_port}/")),
            ("JM_SEC_USER", sec_user),
            ("JM_SEC_PASS", sec_pass),
            ("JM_AUD_USER", aud_user),
            ("JM_AUD_PASS", aud_pass),
            ("JM_NEW_PASS", "Pass-Of-Jianmen-2026".into()),
            ("JM_SUBJECT", "Mailbox storage full".into()),
            ("JM_RCPT_1", "staff@example.com".into()),
            ("JM_RCPT_2", "boss@example.com".into()),
            ("JM_BODY_TEXT", "Your mailbox is full".into()),
            ("JM_EXPORT", export.display().to_string()),
            ("JM_SYS_USER", sys_user),
            ("JM_SYS_PASS", sys_pass),
            ("JM_BAD_PACKAGE", bad_package.display().to_string()),
        ],
        || gw.log(),
    );
    assert!(
        wait_until(Duration::from_secs(10), || sink.messages().len() == 1),
        "the released message reaches smtp-sink"
    );
    std::thread::sleep(Duration::from_millis(1000));
    assert_eq!(
        sink.messages().len(),
        1,
        "one copy, to the one recipient released"
    );
    let m = &sink.messages()[0];
    assert_eq!(m.rcpts, ["<staff@example.com>"]);
    assert_eq!(
        m.header("Subject").as_deref(),
        Some("Mailbox storage full - action required")
    );
    assert!(
        !upgrades.path().join("releases/current").exists(),
        "nothing was installed from the refused upload"
    );
    let key = Command::new(jianmen_bin())
        .args(["audit", "public-key", "--config"])
        .arg(&gw.config)
        .output()
        .unwrap();
    assert!(key.status.success(), "{key:?}");
    let key = String::from_utf8_lossy(&key.stdout)
        .lines()
        .next()
        .unwrap_or_default()
        .to_owned();
    let verify = |file: &std::path::Path, key: Option<&str>| {
        let mut cmd = Command::new(jianmen_bin());
        cmd.args(["audit", "verify-export"]).arg(file);
        if let Some(key) = key {
            cmd.args(["--public-key", key]);
        }
        cmd.output().unwrap()
    };
    let out = verify(&export, Some(&key));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("package intact"), "{text}");
    // Finding 10 of the hardening review: without the registered key any self-signed package
    // passed with exit status 0; now it is UNVERIFIED, with its own status.
    let out = verify(&export, None);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(5), "{text}");
    assert!(text.starts_with("UNVERIFIED"), "{text}");
    let mut package = std::fs::read(&export).unwrap();
    let at = String::from_utf8_lossy(&package)
        .find("quarantine.release")
        .expect("the release is in the package");
    package[at] = b'Q';
    let tampered = gw.dir.path().join("tampered.tar");
    std::fs::write(&tampered, &package).unwrap();
    let out = verify(&tampered, Some(&key));
    assert_eq!(out.status.code(), Some(4), "{out:?}");
    for shot in [
        "1-dashboard",
        "2-quarantine",
        "3-detail",
        "4-released",
        "5-audit-en",
        "6-upgrade-refused",
    ] {
        let png = std::fs::read(browser.shots().join(format!("{shot}.png"))).unwrap();
        assert!(
            png.starts_with(b"\x89PNG") && png.len() > 5_000,
            "{shot}.png"
        );
    }
}

/// GBK spam (about 21 points: the model, 代开发票, a phone number), tagged by the file's policy.
fn gbk_spam(from: &str) -> Vec<u8> {
    let gbk = |s: &str| {
        let out = Command::new("iconv")
            .args(["-f", "UTF-8", "-t", "GBK"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .and_then(|mut c| {
                use std::io::Write;
                c.stdin.take().unwrap().write_all(s.as_bytes())?;
                c.wait_with_output()
            })
            .unwrap();
        assert!(out.status.success());
        out.stdout
    };
    let mut m = format!("From: {from}\r\nTo: user@example.com\r\nSubject: ").into_bytes();
    m.extend(gbk("代开发票"));
    m.extend_from_slice(b"\r\n\r\n");
    m.extend(gbk(
        "您好！本公司长期代开增值税发票、普通发票，税点优惠，可验证后付款。联系电话：13912345678 王经理",
    ));
    m.extend_from_slice(b"\r\n");
    m
}

/// The policy is changed in the console and the next message feels it, without a restart:
/// spam that was tagged and delivered is held, and a sender put on the block list is refused.
#[test]
fn policy_edited_in_chromium_applies_to_the_next_message() {
    let browser = Browser::ready();
    let sink = Sink::start(&[]);
    let console_port = free_port();
    let setup = Setup::new(sink.port, sink.port)
        .scanning(&[
            "thresholds = { spam = 6.0, spam_high = 60.0, phish = 6.0, bec = 6.0, virus = 5.0 }",
        ])
        .console(console_port);
    let gw = Gateway::start(&setup);
    let mut c = Client::ready(gw.addr);
    let blocked = "mass@bulk.test";
    for from in ["wang@fapiao.test", blocked] {
        let r = c.send_mail(from, &["user@example.com"], &gbk_spam(from));
        assert_eq!(r.code, 250, "{r:?}");
    }
    assert!(
        wait_until(Duration::from_secs(20), || sink.messages().len() == 2),
        "before the edit both are tagged and delivered"
    );
    assert!(sink.messages().iter().all(|m| {
        m.header("Subject")
            .unwrap_or_default()
            .starts_with("[SPAM]")
    }));

    let (user, pass) = gw.initial_account("security");
    browser.run(
        "policy.mjs",
        &[
            ("JM_URL", format!("https://127.0.0.1:{console_port}/")),
            ("JM_SEC_USER", user),
            ("JM_SEC_PASS", pass),
            ("JM_NEW_PASS", "Pass-Of-Jianmen-2026".into()),
            ("JM_BLOCKED", blocked.into()),
            ("JM_OWNER", "boss@example.com".into()),
            ("JM_OWN_BLOCKED", "friend@partner.test".into()),
        ],
        || gw.log(),
    );

    // The boss's own block list holds the boss's copy; the colleague's is delivered.
    let ordinary =
        b"From: Friend <friend@partner.test>\r\nTo: boss@example.com, user@example.com\r\n\
        Subject: Minutes of Tuesday\r\nMessage-ID: <minutes@partner.test>\r\n\
        Date: Fri, 4 Dec 2026 09:00:00 +0800\r\n\r\nHello both,\r\n\
        the minutes of Tuesday's meeting are below; the next one is on the 15th.\r\nRegards\r\n";
    let r = c.send_mail(
        "friend@partner.test",
        &["boss@example.com", "user@example.com"],
        ordinary,
    );
    assert_eq!(r.code, 250, "{r:?}");
    let minutes = sink.with_subject("Minutes of Tuesday", Duration::from_secs(15));
    assert_eq!(minutes.len(), 1);
    assert_eq!(minutes[0].rcpts, ["<user@example.com>"]);

    let r = c.send_mail(
        "wang@fapiao.test",
        &["user@example.com"],
        &gbk_spam("wang@fapiao.test"),
    );
    assert_eq!(r.code, 250, "spam is accepted and held: {r:?}");
    let r = c.send_mail(blocked, &["user@example.com"], &gbk_spam(blocked));
    assert!(
        r.text.starts_with("550 5.7.1"),
        "the blocked sender is refused: {r:?}"
    );
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(sink.messages().len(), 3, "nothing more was delivered");
    let held = Command::new(jianmen_bin())
        .args(["quarantine", "list", "--config"])
        .arg(&gw.config)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&held.stdout);
    assert!(held.status.success(), "{held:?}");
    assert!(
        text.contains("wang@fapiao.test"),
        "the spam is held: {text}"
    );
    assert!(
        text.lines()
            .any(|l| l.contains("friend@partner.test") && l.contains("Minutes of Tuesday")),
        "the boss's copy is held: {text}"
    );
}

/// The attachment and DLP policies are changed in the console and the next messages feel
/// them, without a restart: an RTF attachment that was delivered is refused as a refused file
/// type, and outgoing mail naming the project's code word, delivered before, is refused by the
/// new DLP policy while other outgoing mail still goes out.
#[test]
fn attachment_and_dlp_policies_edited_in_chromium_apply_to_the_next_message() {
    const RELAY: &str = "127.0.0.3";
    const KEYWORD: &str = "蓝鹭计划";
    let browser = Browser::ready();
    let sink = Sink::start(&[]);
    let console_port = free_port();
    let setup = Setup::new(sink.port, sink.port)
        .scanning(&[
            "thresholds = { spam = 6.0, spam_high = 60.0, phish = 6.0, bec = 6.0, virus = 5.0 }",
        ])
        .smtp(&format!("internal_relays = [\"{RELAY}\"]"))
        .console(console_port);
    let gw = Gateway::start(&setup);
    let rtf = |subject: &str| {
        jianmen_testkit::with_attachment(subject, "合同.rtf", b"{\\rtf1\\ansi contract terms}")
    };
    let outgoing = |subject: &str, words: &str| {
        format!(
            "From: Zhang <zhang@example.com>\r\nTo: buyer@partner.test\r\nSubject: {subject}\r\n\
             Message-ID: <{subject}@example.com>\r\nDate: Fri, 4 Dec 2026 09:00:00 +0800\r\n\
             MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\
             Content-Transfer-Encoding: 8bit\r\n\r\n{words}\r\n"
        )
        .into_bytes()
    };
    let relay = || {
        let (mut c, greeting) = Client::connect_from(RELAY.parse().unwrap(), gw.addr);
        assert_eq!(greeting.code, 220);
        assert_eq!(c.cmd("EHLO mail.example.com").code, 250);
        c
    };
    let mut inbound = Client::ready(gw.addr);
    let r = inbound.send_mail(
        "billing@vendor.test",
        &["user@example.com"],
        &rtf("rtf-before"),
    );
    assert_eq!(r.code, 250, "{r:?}");
    let r = relay().send_mail(
        "zhang@example.com",
        &["buyer@partner.test"],
        &outgoing("plan-before", &format!("关于{KEYWORD}的进度，请查收。")),
    );
    assert_eq!(r.code, 250, "{r:?}");
    assert!(
        wait_until(Duration::from_secs(20), || sink.messages().len() == 2),
        "before the edit both are delivered\n{}",
        gw.log()
    );

    let (user, pass) = gw.initial_account("security");
    browser.run(
        "attachments-dlp.mjs",
        &[
            ("JM_URL", format!("https://127.0.0.1:{console_port}/")),
            ("JM_SEC_USER", user),
            ("JM_SEC_PASS", pass),
            ("JM_NEW_PASS", "Pass-Of-Jianmen-2026".into()),
            ("JM_KEYWORD", KEYWORD.into()),
        ],
        || gw.log(),
    );

    let r = inbound.send_mail(
        "billing@vendor.test",
        &["user@example.com"],
        &rtf("rtf-after"),
    );
    assert!(
        r.text.starts_with("550 5.7.1"),
        "the refused file type takes the virus action (reject): {r:?}"
    );
    let r = relay().send_mail(
        "zhang@example.com",
        &["buyer@partner.test"],
        &outgoing("plan-after", &format!("关于{KEYWORD}的进度，请查收。")),
    );
    assert_eq!(r.code, 550, "the DLP policy refuses it: {r:?}");
    assert!(
        r.text.contains("data-leak prevention policy"),
        "the refusal says why: {r:?}"
    );
    let r = relay().send_mail(
        "zhang@example.com",
        &["buyer@partner.test"],
        &outgoing("lunch-after", "周五中午一起吃饭吗？"),
    );
    assert_eq!(r.code, 250, "{r:?}");
    let lunch = sink.with_subject("lunch-after", Duration::from_secs(15));
    assert_eq!(lunch.len(), 1, "other outgoing mail still goes out");
    assert_eq!(sink.messages().len(), 3, "nothing refused was delivered");
}

/// Two-step sign-in turned on in Chromium; afterwards the password alone does not sign in.
#[test]
fn two_step_sign_in_is_turned_on_and_then_needed() {
    let browser = Browser::ready();
    let sink = Sink::start(&[]);
    let console_port = free_port();
    let setup = Setup::new(sink.port, sink.port).console(console_port);
    let gw = Gateway::start(&setup);
    let (user, pass) = gw.initial_account("security");
    browser.run(
        "totp.mjs",
        &[
            ("JM_URL", format!("https://127.0.0.1:{console_port}/")),
            ("JM_SEC_USER", user),
            ("JM_SEC_PASS", pass),
            ("JM_NEW_PASS", "Pass-Of-Jianmen-2026".into()),
        ],
        || gw.log(),
    );
}

/// Every page of the three roles, with mail in the lists, reads as zh-CN (no untranslated
/// message key) and fits 1024×768 without sideways scrolling.
#[test]
fn every_page_of_every_role_is_translated_and_fits() {
    let browser = Browser::ready();
    let sink = Sink::start(&[]);
    let console_port = free_port();
    let setup = Setup::new(sink.port, sink.port)
        .scanning(&[
            "thresholds = { spam = 6.0, spam_high = 60.0, phish = 6.0, bec = 6.0, virus = 5.0 }",
        ])
        .console(console_port);
    let gw = Gateway::start(&setup);
    let mut c = Client::ready(gw.addr);
    for (from, message) in [
        ("helpdesk@it-support-portal.test", phish()),
        ("wang@fapiao.test", gbk_spam("wang@fapiao.test")),
    ] {
        let r = c.send_mail(from, &["staff@example.com"], &message);
        assert_eq!(r.code, 250, "{r:?}");
    }
    let account = |role| gw.initial_account(role);
    let ((sec_user, sec_pass), (sys_user, sys_pass), (aud_user, aud_pass)) =
        (account("security"), account("system"), account("audit"));
    browser.run(
        "pages.mjs",
        &[
            ("JM_URL", format!("https://127.0.0.1:{console_port}/")),
            ("JM_SEC_USER", sec_user),
            ("JM_SEC_PASS", sec_pass),
            ("JM_SYS_USER", sys_user),
            ("JM_SYS_PASS", sys_pass),
            ("JM_AUD_USER", aud_user),
            ("JM_AUD_PASS", aud_pass),
            ("JM_NEW_PASS", "Pass-Of-Jianmen-2026".into()),
        ],
        || gw.log(),
    );
}

/// Whether `openssl s_client` completes a handshake on `port` (with `starttls smtp` when
/// given) whose chain verifies against the CA in `ca` for the gateway's host name.
fn verifies(port: u16, starttls: bool, ca: &std::path::Path) -> bool {
    let connect = format!("127.0.0.1:{port}");
    let mut args = vec![
        "s_client",
        "-connect",
        &connect,
        "-servername",
        "gw.jianmen.test",
        "-verify_hostname",
        "gw.jianmen.test",
        "-verify_return_error",
        "-CAfile",
    ];
    let ca = ca.to_string_lossy().into_owned();
    args.push(&ca);
    if starttls {
        args.extend(["-starttls", "smtp"]);
    }
    let out = Command::new("openssl")
        .args(&args)
        .stdin(std::process::Stdio::null())
        .output()
        .expect("openssl s_client");
    let text = String::from_utf8_lossy(&out.stdout);
    out.status.success() && text.contains("Verify return code: 0 (ok)")
}

fn openssl(dir: &std::path::Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl");
    assert!(out.status.success(), "openssl {args:?}: {out:?}");
}

/// The system administrator replaces the self-signed certificate in Chromium with one a CA
/// issued for a request made on the system page: STARTTLS and the console serve it from the
/// next connection, without a restart; a key of another certificate is refused first.
#[test]
fn a_certificate_installed_in_the_console_is_served_at_once() {
    let browser = Browser::ready();
    let sink = Sink::start(&[]);
    let console_port = free_port();
    let setup = Setup::new(sink.port, sink.port).console(console_port);
    let gw = Gateway::start(&setup);
    let ca = tempfile::tempdir().unwrap();
    let dir = ca.path();
    let new_pair = |key: &str, cert: &str, cn: &str| {
        openssl(
            dir,
            &[
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-keyout",
                key,
                "-out",
                cert,
                "-days",
                "30",
                "-subj",
                cn,
            ],
        )
    };
    new_pair("ca.key", "ca.pem", "/CN=Jianmen Test CA");
    new_pair("other.key", "other.pem", "/CN=gw.jianmen.test");
    new_pair("stranger.key", "stranger.pem", "/CN=gw.jianmen.test");
    let ca_pem = dir.join("ca.pem");
    let smtp_port = gw.addr.port();
    assert!(
        !verifies(smtp_port, true, &ca_pem),
        "served self-signed at first"
    );
    assert!(!verifies(console_port, false, &ca_pem));

    let (user, pass) = gw.initial_account("system");
    browser.run(
        "certificates.mjs",
        &[
            ("JM_URL", format!("https://127.0.0.1:{console_port}/")),
            ("JM_SYS_USER", user),
            ("JM_SYS_PASS", pass),
            ("JM_NEW_PASS", "Pass-Of-Jianmen-2026".into()),
            ("JM_CA_DIR", dir.display().to_string()),
        ],
        || gw.log(),
    );
    assert!(
        verifies(smtp_port, true, &ca_pem),
        "STARTTLS serves the issued certificate"
    );
    assert!(
        verifies(console_port, false, &ca_pem),
        "the console serves it too"
    );
    let audit = Command::new(jianmen_bin())
        .args(["audit", "--config"])
        .arg(&gw.config)
        .arg("list")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&audit.stdout);
    assert!(
        text.contains("tls.request")
            && text.contains("tls.install")
            && text.contains("backup.make"),
        "{text}"
    );
    // The downloaded backup opens with its passphrase: the restore gets as far as the lock the
    // running gateway holds (and a wrong passphrase not even that far).
    let backup = dir.join("gateway.jbk");
    let sealed = std::fs::read(&backup).unwrap();
    assert!(sealed.starts_with(b"JMBKUP1\n"), "a sealed backup");
    for (passphrase, said) in [
        ("Backup-Passphrase-2026", "is held"),
        ("Backup-Passphrase-2027", "wrong passphrase"),
    ] {
        let file = dir.join("passphrase");
        std::fs::write(&file, passphrase).unwrap();
        let out = Command::new(jianmen_bin())
            .args(["restore", "--config"])
            .arg(&gw.config)
            .arg("--from")
            .arg(&backup)
            .arg("--passphrase-file")
            .arg(&file)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && stderr.contains(said),
            "{passphrase}: {stderr}"
        );
    }
}

#[test]
fn settings_changed_in_chromium_take_effect_after_a_restart_from_the_page() {
    let browser = Browser::ready();
    let sink = Sink::start(&[]);
    // The mail server of the domain the administrator adds.
    let new_server = Sink::start(&[]);
    let console_port = free_port();
    let smtp_port = free_port();
    let mut setup = Setup::new(sink.port, sink.port).console(console_port);
    // Started again whenever it exits, as systemd does; systemd names each service run, which is
    // how the console knows a restart will bring it back.
    setup.supervised = true;
    setup
        .env
        .push(("INVOCATION_ID".into(), "jianmen-test-run".into()));
    let gw = Gateway::start(&setup);
    let mut c = Client::ready(gw.addr);
    assert_eq!(c.cmd("MAIL FROM:<someone@sender.test>").code, 250);
    let r = c.cmd("RCPT TO:<dora@new.test>");
    assert!(r.code >= 500, "not protected yet: {r:?}");
    let _ = c.cmd("QUIT");
    let first = gw.pid();

    let (user, pass) = gw.initial_account("system");
    browser.run(
        "settings.mjs",
        &[
            ("JM_URL", format!("https://127.0.0.1:{console_port}/")),
            ("JM_SYS_USER", user),
            ("JM_SYS_PASS", pass),
            ("JM_NEW_PASS", "Pass-Of-Jianmen-2026".into()),
            ("JM_NEW_PORT", new_server.port.to_string()),
            ("JM_SMTP_PORT", smtp_port.to_string()),
        ],
        || gw.log(),
    );
    assert_ne!(gw.pid(), first, "the gateway was restarted");
    assert_eq!(
        Client::ready(gw.addr).cmd("NOOP").code,
        250,
        "the file's address still listens"
    );
    let mut c = Client::ready(SocketAddr::from(([127, 0, 0, 1], smtp_port)));
    let r = c.send_mail(
        "someone@sender.test",
        &["dora@new.test"],
        b"From: someone@sender.test\r\nTo: dora@new.test\r\nSubject: to the new domain\r\n\r\nHello.\r\n",
    );
    assert_eq!(r.code, 250, "{r:?}");
    assert!(
        wait_until(Duration::from_secs(30), || !new_server
            .with_subject("to the new domain", Duration::from_millis(10))
            .is_empty()),
        "delivered by the new route; log:\n{}",
        gw.log()
    );
    let audit = gw.cli(&["audit", "list"]);
    let text = String::from_utf8_lossy(&audit.stdout);
    assert!(
        text.contains("settings.change") && text.contains("system.restart"),
        "{text}"
    );

    // A console-set address another program has taken by the next start: the gateway starts on
    // the configuration file's listeners, keeps the console's other settings (the new domain
    // stays protected) and says why.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken_port = taken.local_addr().unwrap().port();
    let settings = gw.dir.path().join("data/system/settings.toml");
    let saved = std::fs::read_to_string(&settings).unwrap();
    assert!(saved.contains(&format!("127.0.0.1:{smtp_port}")), "{saved}");
    std::fs::write(
        &settings,
        saved.replace(
            &format!("127.0.0.1:{smtp_port}"),
            &format!("127.0.0.1:{taken_port}"),
        ),
    )
    .unwrap();
    let second = gw.pid();
    gw.terminate();
    assert!(
        wait_until(Duration::from_secs(60), || gw.pid() != second
            && std::net::TcpStream::connect(gw.addr).is_ok()),
        "started again; log:\n{}",
        gw.log()
    );
    assert!(
        gw.log()
            .contains("the listeners set in the console cannot be bound"),
        "{}",
        gw.log()
    );
    let mut c = Client::ready(gw.addr);
    assert_eq!(c.cmd("MAIL FROM:<someone@sender.test>").code, 250);
    assert_eq!(
        c.cmd("RCPT TO:<dora@new.test>").code,
        250,
        "the other settings are in force"
    );
    drop(taken);
}
