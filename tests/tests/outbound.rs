//! Outbound mail through the gateway as an organisation sends it: a real Postfix stands for the
//! organisation's mail server (relayhost = the gateway, XFORWARD on, sending from its own
//! loopback address), smtp-sink for the Internet. Users' mail is DKIM-signed with keys made by
//! `jianmen dkim keygen` (RSA and Ed25519, checked by python3-dkim); a spreadsheet of five valid
//! 身份证 numbers is held for approval, approved by the security administrator in Chromium and
//! delivered signed; the same sheet with wrong check digits goes out at once; a rejected one
//! reaches its sender as a notice without the data; nobody else can relay.

use std::process::Command;
use std::time::Duration;

use jianmen_testkit::{
    Browser, Client, Gateway, Postfix, Setup, Sink, SunkMessage, b64, dkimpy, free_port,
    jianmen_bin, resident_ids, swaks, wait_until, xlsx,
};

/// Where the organisation's Postfix connects from: the only internal relay.
const RELAY_IP: &str = "127.0.0.3";
/// Where a user's mail client connects to Postfix from (what XFORWARD reports).
const USER_IP: &str = "127.0.0.5";

/// A message from `from` to `to` with a spreadsheet of `ids` attached.
fn with_sheet(from: &str, to: &str, subject: &str, ids: &[String]) -> Vec<u8> {
    let rows: Vec<Vec<String>> = std::iter::once(vec!["姓名".to_owned(), "身份证号".to_owned()])
        .chain(
            ids.iter()
                .enumerate()
                .map(|(i, id)| vec![format!("客户{i}"), id.clone()]),
        )
        .collect();
    format!(
        "From: <{from}>\r\nTo: <{to}>\r\nSubject: {subject}\r\n\
         Date: Fri, 4 Dec 2026 10:00:00 +0800\r\nMessage-ID: <{subject}@corp.test>\r\n\
         MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b\"\r\n\r\n\
         --b\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n\
         客户名单见附件。\r\n\
         --b\r\nContent-Type: application/vnd.openxmlformats-officedocument.spreadsheetml.sheet; \
         name=\"customers.xlsx\"\r\nContent-Disposition: attachment; filename=\"customers.xlsx\"\r\n\
         Content-Transfer-Encoding: base64\r\n\r\n{}\r\n--b--\r\n",
        b64(&xlsx(&rows))
    )
    .into_bytes()
}

/// Sends `message` to the organisation's Postfix as a user's mail client would.
fn submit(postfix: &Postfix, from: &str, to: &str, message: &[u8], dir: &std::path::Path) {
    let file = dir.join(format!("{}.eml", free_port()));
    std::fs::write(&file, message).unwrap();
    let out = swaks(&[
        "--server",
        &format!("127.0.0.1:{}", postfix.port),
        "--local-interface",
        USER_IP,
        "--ehlo",
        "pc7.corp.test",
        "--from",
        from,
        "--to",
        to,
        "--data",
        &format!("@{}", file.display()),
    ]);
    assert!(
        out.status.success(),
        "Postfix refused the user's mail: {}",
        String::from_utf8_lossy(&out.stdout)
    );
}

/// The DKIM TXT value `jianmen dkim keygen` printed.
fn keygen(gw: &Gateway, domain: &str, selector: &str, algorithm: &str) -> String {
    let out = gw.cli(&[
        "dkim",
        "keygen",
        "--domain",
        domain,
        "--selector",
        selector,
        "--algorithm",
        algorithm,
    ]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    text.lines()
        .find_map(|l| {
            l.split_once("in one field: ")
                .map(|(_, v)| v.trim_end_matches(')').to_owned())
        })
        .unwrap_or_else(|| panic!("no TXT value in: {text}"))
}

/// A delivered message as it was on the wire (smtp-sink keeps LF line ends).
fn wire(m: &SunkMessage) -> String {
    m.content.replace('\n', "\r\n")
}

fn arrived<'a>(sink: &'a [SunkMessage], subject: &str) -> Option<&'a SunkMessage> {
    sink.iter()
        .find(|m| m.header("Subject").as_deref() == Some(subject))
}

#[test]
fn outbound_mail_is_signed_and_id_lists_wait_for_approval() {
    let browser = Browser::ready();
    let internet = Sink::start(&[]);
    let console_port = free_port();
    let mut setup = Setup::new(internet.port, internet.port)
        .smtp(&format!("internal_relays = [\"{RELAY_IP}\"]"))
        .console(console_port)
        .section(
            "[[dlp.policy]]\nname = \"身份证号批量外发\"\ndetect = { resident_id = 5 }\n\
             action = \"hold\"\napproval_hours = 24",
        );
    setup.also_protected = vec!["corp.test".into(), "dept.corp.test".into()];
    let mut gw = Gateway::start(&setup);
    // Keys for two sending domains, then the gateway restarted to sign with them.
    let rsa = keygen(&gw, "corp.test", "jm2026a", "rsa");
    let ed = keygen(&gw, "dept.corp.test", "jm2026e", "ed25519");
    let again = gw.cli(&[
        "dkim",
        "keygen",
        "--domain",
        "corp.test",
        "--selector",
        "jm2026a",
    ]);
    assert!(!again.status.success(), "a key is never overwritten");
    let mut config = std::fs::read_to_string(&gw.config).unwrap();
    config.push_str(
        "\n[[dkim.domains]]\ndomain = \"corp.test\"\nselector = \"jm2026a\"\n\
         [[dkim.domains]]\ndomain = \"dept.corp.test\"\nselector = \"jm2026e\"\n",
    );
    std::fs::write(&gw.config, config).unwrap();
    gw.restart();

    // Nobody but the relay relays, whatever it claims.
    let outsider = Client::connect_from("127.0.0.7".parse().unwrap(), gw.addr);
    let mut c = outsider.0;
    assert_eq!(c.cmd("EHLO attacker.test").code, 250);
    assert_eq!(
        c.cmd("XFORWARD ADDR=127.0.0.3 LOGIN=admin").code,
        500,
        "XFORWARD is only for internal relays"
    );
    assert_eq!(c.cmd("MAIL FROM:<ceo@corp.test>").code, 250);
    let refused = c.cmd("RCPT TO:<victim@elsewhere.test>");
    assert_eq!(
        (refused.code, refused.text.contains("5.7.1")),
        (550, true),
        "{refused:?}"
    );
    assert_eq!(
        c.cmd("RCPT TO:<staff@example.com>").code,
        250,
        "inbound is fine"
    );

    let postfix = Postfix::start(gw.addr, RELAY_IP, &[]);
    let work = tempfile::tempdir().unwrap();
    let valid = resident_ids(5, true);
    let invalid = resident_ids(5, false);
    submit(
        &postfix,
        "zhang@corp.test",
        "buyer@partner.test",
        &with_sheet("zhang@corp.test", "buyer@partner.test", "held-list", &valid),
        work.path(),
    );
    submit(
        &postfix,
        "zhang@corp.test",
        "buyer@partner.test",
        &with_sheet(
            "zhang@corp.test",
            "buyer@partner.test",
            "wrong-digits",
            &invalid,
        ),
        work.path(),
    );
    submit(
        &postfix,
        "li@dept.corp.test",
        "buyer@partner.test",
        &with_sheet(
            "li@dept.corp.test",
            "buyer@partner.test",
            "ed25519-note",
            &[],
        ),
        work.path(),
    );
    submit(
        &postfix,
        "wang@corp.test",
        "buyer@partner.test",
        &with_sheet("wang@corp.test", "buyer@partner.test", "to-reject", &valid),
        work.path(),
    );
    assert!(
        wait_until(Duration::from_secs(60), || internet.messages().len() >= 2),
        "the clean messages went out\n--- postfix ---\n{}\n--- gateway ---\n{}",
        postfix.log(),
        gw.log()
    );
    std::thread::sleep(Duration::from_secs(2));
    let out = internet.messages();
    assert_eq!(out.len(), 2, "the two ID lists are held: {out:?}");
    let wrong = arrived(&out, "wrong-digits").expect("invalid check digits go out at once");
    assert_eq!(
        dkimpy(
            wire(wrong).as_bytes(),
            "jm2026a._domainkey.corp.test.",
            &rsa
        ),
        "pass",
        "RSA signature verified by python3-dkim"
    );
    let note = arrived(&out, "ed25519-note").expect("delivered");
    assert_eq!(
        dkimpy(
            wire(note).as_bytes(),
            "jm2026e._domainkey.dept.corp.test.",
            &ed
        ),
        "pass",
        "Ed25519 signature verified by python3-dkim"
    );
    let tampered = wire(wrong).replacen("客户名单", "客户名册", 1);
    assert_eq!(
        dkimpy(tampered.as_bytes(), "jm2026a._domainkey.corp.test.", &rsa),
        "fail",
        "the verifier does fail a changed body"
    );
    let log = gw.log();
    assert!(
        log.contains(&format!("client={USER_IP}")) && log.contains("direction=\"outbound\""),
        "XFORWARD told the gateway the user's address:\n{log}"
    );

    // `jianmen scan --direction outbound` shows the findings, masked.
    let sheet = work.path().join("list.eml");
    std::fs::write(
        &sheet,
        with_sheet("zhang@corp.test", "buyer@partner.test", "scan", &valid),
    )
    .unwrap();
    let scan = Command::new(jianmen_bin())
        .args(["scan", "--direction", "outbound", "--config"])
        .arg(&gw.config)
        .args([
            "--mail-from",
            "zhang@corp.test",
            "--rcpt",
            "buyer@partner.test",
        ])
        .arg(&sheet)
        .output()
        .unwrap();
    assert!(scan.status.success(), "{scan:?}");
    let line: serde_json::Value = serde_json::from_slice(&scan.stdout).unwrap();
    assert_eq!(line["verdict"], "dlp", "{line}");
    assert_eq!(line["action"], "hold", "{line}");
    assert_eq!(line["dlp"][0]["detector"], "resident_id", "{line}");
    assert_eq!(line["dlp"][0]["count"], 5, "{line}");
    let masked = line["dlp"][0]["sample"].as_str().unwrap().to_owned();
    assert_eq!(masked, format!("1101**********{}", &valid[0][14..]));
    assert!(!String::from_utf8_lossy(&scan.stdout).contains(&valid[0]));

    // The reviewer approves the first list in Chromium.
    let (user, password) = gw.initial_account("security");
    browser.run(
        "approval.mjs",
        &[
            ("JM_URL", format!("https://127.0.0.1:{console_port}/")),
            ("JM_SEC_USER", user.clone()),
            ("JM_SEC_PASS", password),
            ("JM_NEW_PASS", "Pass-Of-Jianmen-2026".into()),
            ("JM_SUBJECT", "held-list".into()),
            ("JM_MASKED", masked.clone()),
            ("JM_SECRET", valid[0].clone()),
            ("JM_POLICY", "身份证号批量外发".into()),
        ],
        || gw.log(),
    );
    assert!(
        wait_until(Duration::from_secs(20), || arrived(
            &internet.messages(),
            "held-list"
        )
        .is_some()),
        "the approved message reaches the Internet"
    );
    let approved = internet.messages();
    let approved = arrived(&approved, "held-list").unwrap();
    assert_eq!(
        dkimpy(
            wire(approved).as_bytes(),
            "jm2026a._domainkey.corp.test.",
            &rsa
        ),
        "pass",
        "approved mail goes out signed"
    );

    // The other is rejected: its sender hears which policy, and nothing of the data.
    let console = jianmen_testkit::Console::new(console_port, work.path());
    let csrf = console.log_in(&user, "Pass-Of-Jianmen-2026");
    let (code, body) = console.request("/api/quarantine?class=dlp", &[]);
    assert_eq!(code, 200, "{body}");
    let page: serde_json::Value = serde_json::from_str(&body).unwrap();
    let id = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["subject"] == "to-reject")
        .and_then(|i| i["id"].as_str())
        .expect("the second list is waiting")
        .to_owned();
    let (code, body) = console.post_json(&format!("/api/quarantine/{id}/reject"), &csrf, "{}");
    assert_eq!(code, 204, "{body}");
    assert!(
        wait_until(Duration::from_secs(20), || internet
            .messages()
            .iter()
            .any(|m| m.rcpts == ["<wang@corp.test>"])),
        "the sender is told"
    );
    let notices = internet.messages();
    let notice = notices
        .iter()
        .find(|m| m.rcpts == ["<wang@corp.test>"])
        .unwrap();
    assert!(
        notice.content.contains("身份证号批量外发"),
        "{}",
        notice.content
    );
    for id in &valid {
        assert!(
            !notice.content.contains(&id[6..14]),
            "the notice quotes data: {}",
            notice.content
        );
    }
    assert!(
        arrived(&internet.messages(), "to-reject").is_none(),
        "the rejected list never left"
    );
}
