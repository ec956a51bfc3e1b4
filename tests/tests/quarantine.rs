//! The quarantine end to end: the real binary holds phishing for two recipients, and the
//! `jianmen quarantine` commands search it, release one recipient's copy, then the rest, to
//! Postfix smtp-sink, delete another item, and leave a trail in the audit log.

use jianmen_testkit::{Client, Gateway, Setup, Sink, Slapd, SunkMessage, TestPki, wait_until};
use std::time::Duration;

fn phish(subject: &str) -> Vec<u8> {
    format!(
        "From: \"Bank Notice\" <notice@bank-verify.test>\r\nTo: staff@example.com\r\n\
         Subject: {subject}\r\nMessage-ID: <{}@bank-verify.test>\r\n\
         Content-Type: text/html\r\n\r\n<p>Your mailbox will be closed. Confirm your password:</p>\
         <a href=\"http://203.0.113.7/owa/login\">https://mail.example.com/owa</a>\r\n",
        subject.len()
    )
    .into_bytes()
}

fn cli_json(gw: &Gateway, args: &[&str]) -> Vec<serde_json::Value> {
    let out = gw.cli(args);
    assert!(out.status.success(), "{args:?}: {out:?}");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn held_mail_is_searched_released_per_recipient_and_deleted() {
    let sink = Sink::start(&[]);
    let setup = Setup::new(sink.port, sink.port).scanning(&[
        "thresholds = { spam = 6.0, spam_high = 60.0, phish = 6.0, bec = 6.0, virus = 5.0 }",
    ]);
    let gw = Gateway::start(&setup);
    let mut c = Client::ready(gw.addr);
    let two = ["alice@example.com", "bob@example.com"];
    let r = c.send_mail(
        "notice@bank-verify.test",
        &two,
        &phish("Mailbox quota exceeded"),
    );
    assert_eq!(r.code, 250, "{r:?}");
    let r = c.send_mail(
        "notice@bank-verify.test",
        &["carol@example.com"],
        &phish("Password expires today"),
    );
    assert_eq!(r.code, 250, "{r:?}");
    std::thread::sleep(Duration::from_millis(1500));
    assert!(
        sink.messages().is_empty(),
        "held mail must not be delivered"
    );
    // Held mail is sealed at rest (SM4-GCM, server.encrypt_spool defaults on): no spool file
    // shows the subject, and every one carries the sealed header.
    let spool = gw.dir.path().join("data/spool");
    let files: Vec<Vec<u8>> = std::fs::read_dir(&spool)
        .unwrap()
        .flat_map(|shard| std::fs::read_dir(shard.unwrap().path()).unwrap())
        .map(|f| std::fs::read(f.unwrap().path()).unwrap())
        .collect();
    assert!(files.len() >= 2, "held copies in the spool");
    for f in &files {
        assert!(f.starts_with(b"JMSPSM4\x01"));
        assert!(!f.windows(5).any(|w| w == b"quota"));
    }

    // Search: by subject, by recipient, and a query with SQL and LIKE metacharacters.
    let items = cli_json(&gw, &["quarantine", "list", "--json", "--subject", "quota"]);
    assert_eq!(items.len(), 1, "{items:?}");
    let quota = items[0]["id"].as_str().unwrap().to_owned();
    assert_eq!(items[0]["class"], "phish");
    assert_eq!(items[0]["header_from"], "notice@bank-verify.test");
    assert_eq!(
        cli_json(&gw, &["quarantine", "list", "--json", "--rcpt", "carol"]).len(),
        1
    );
    assert_eq!(cli_json(&gw, &["quarantine", "list", "--json"]).len(), 2);
    for hostile in ["%", "_", "' OR 1=1 --", "\\"] {
        let found = cli_json(&gw, &["quarantine", "list", "--json", "--subject", hostile]);
        assert!(found.is_empty(), "{hostile:?} matched {found:?}");
    }

    // The detail carries the evidence and both recipients.
    let out = gw.cli(&["quarantine", "show", &quota]);
    assert!(out.status.success(), "{out:?}");
    let item: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let symbols = item["report"]["symbols"].as_array().unwrap();
    assert!(!symbols.is_empty(), "{item}");
    assert_eq!(item["recipients"].as_array().unwrap().len(), 2, "{item}");

    // Download gives the message as received.
    let eml = gw.dir.path().join("held.eml");
    let out = gw.cli(&[
        "quarantine",
        "download",
        &quota,
        "-o",
        eml.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{out:?}");
    let raw = std::fs::read_to_string(&eml).unwrap();
    assert!(raw.contains("Subject: Mailbox quota exceeded"), "{raw}");

    // Bob's copy only: delivered to him alone, Alice's stays held.
    let out = gw.cli(&["quarantine", "release", &quota, "--rcpt", "BOB@example.com"]);
    assert!(out.status.success(), "{out:?}");
    assert!(wait_until(Duration::from_secs(10), || sink
        .messages()
        .len()
        == 1));
    assert_eq!(sink.messages()[0].rcpts, ["<bob@example.com>"]);
    let still = cli_json(&gw, &["quarantine", "list", "--json", "--subject", "quota"]);
    assert_eq!(still.len(), 1, "Alice's copy is still held: {still:?}");

    // The rest, then a second release is refused.
    let out = gw.cli(&["quarantine", "release", &quota]);
    assert!(out.status.success(), "{out:?}");
    assert!(wait_until(Duration::from_secs(10), || sink
        .messages()
        .len()
        == 2));
    let alice = sink
        .messages()
        .into_iter()
        .find(|m| m.rcpts == ["<alice@example.com>"])
        .expect("Alice's copy delivered");
    assert_eq!(
        alice.header("Subject").as_deref(),
        Some("Mailbox quota exceeded"),
        "released mail is delivered unchanged, not scanned again"
    );
    let again = gw.cli(&["quarantine", "release", &quota]);
    assert!(!again.status.success());
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("released"),
        "{again:?}"
    );

    // Delete the other item: gone from the held list, its message no longer downloadable.
    let other = cli_json(&gw, &["quarantine", "list", "--json"]);
    assert_eq!(other.len(), 1);
    let other = other[0]["id"].as_str().unwrap().to_owned();
    assert!(gw.cli(&["quarantine", "delete", &other]).status.success());
    assert!(cli_json(&gw, &["quarantine", "list", "--json"]).is_empty());
    let deleted = cli_json(
        &gw,
        &["quarantine", "list", "--json", "--status", "deleted"],
    );
    assert_eq!(deleted.len(), 1);
    assert!(!gw.cli(&["quarantine", "download", &other]).status.success());
    assert!(
        !gw.cli(&["quarantine", "show", "not-an-id"])
            .status
            .success()
    );

    // Every action is in the audit log, and the chain verifies.
    let out = gw.cli(&["audit", "list"]);
    let audit = String::from_utf8_lossy(&out.stdout);
    for action in [
        "quarantine.release",
        "quarantine.delete",
        "quarantine.download",
    ] {
        assert!(audit.contains(action), "{action} missing from\n{audit}");
    }
    assert!(gw.cli(&["audit", "verify"]).status.success());
    assert_eq!(sink.messages().len(), 2, "nothing else was delivered");
}

/// `curl -k` against the console: the status code and the page.
fn curl(args: &[&str]) -> (u16, String) {
    let out = std::process::Command::new("curl")
        .args(["-k", "-s", "--max-time", "20", "-w", "\n%{http_code}"])
        .args(args)
        .output()
        .expect("curl (tests/run.sh installs it)");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (page, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
    (code.trim().parse().unwrap_or(0), page.to_owned())
}

/// A gateway with the console and digests on (phish released by recipients), with `scan`'s
/// lines and the sections `more`, holding one phish for dora@example.com; and the console's
/// address.
fn holding_a_phish_for_dora(scan: &[&str], more: &str) -> (Sink, Gateway, Client, String) {
    let sink = Sink::start(&[]);
    let console_port = jianmen_testkit::free_port();
    let base = format!("https://127.0.0.1:{console_port}");
    let mut lines =
        vec!["thresholds = { spam = 6.0, spam_high = 60.0, phish = 6.0, bec = 6.0, virus = 5.0 }"];
    lines.extend_from_slice(scan);
    let setup = Setup::new(sink.port, sink.port)
        .scanning(&lines)
        .section(&format!(
            "[console]\nlisten = \"127.0.0.1:{console_port}\"\npublic_url = \"{base}\"\n\
             [quarantine]\nuser_release = [\"phish\"]\ndigest_hours = 24\n{more}"
        ));
    let gw = Gateway::start(&setup);
    let mut c = Client::ready(gw.addr);
    let r = c.send_mail(
        "notice@bank-verify.test",
        &["dora@example.com"],
        &phish("Mailbox quota exceeded"),
    );
    assert_eq!(r.code, 250, "{r:?}");
    assert!(wait_until(Duration::from_secs(10), || cli_json(
        &gw,
        &["quarantine", "list", "--json"]
    )
    .len()
        == 1));
    (sink, gw, c, base)
}

/// Runs `jianmen quarantine digest` and returns the one digest smtp-sink received.
fn digest_sent(gw: &Gateway, sink: &Sink) -> SunkMessage {
    let out = gw.cli(&["quarantine", "digest"]);
    assert!(out.status.success(), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("1 digest"),
        "{out:?}"
    );
    assert!(wait_until(Duration::from_secs(15), || sink
        .messages()
        .len()
        == 1));
    sink.messages().remove(0)
}

/// The link to `path` (`/u/release`, `/u/portal`) in `digest`.
fn link_in(digest: &SunkMessage, base: &str, path: &str) -> String {
    let start = digest
        .content
        .find(&format!("{base}{path}?t="))
        .expect(path);
    digest.content[start..]
        .split(|c: char| c.is_whitespace() || c == '"' || c == '<')
        .next()
        .unwrap()
        .to_owned()
}

#[test]
fn digest_mail_is_sent_through_the_gateway_and_its_link_releases_once() {
    let (sink, gw, _client, base) = holding_a_phish_for_dora(&[], "");
    // The digest is queued and delivered like any mail, to the recipient only.
    let digest = digest_sent(&gw, &sink);
    assert_eq!(digest.rcpts, ["<dora@example.com>"]);
    assert_eq!(
        digest.header("Auto-Submitted").as_deref(),
        Some("auto-generated")
    );
    assert!(
        digest.content.contains("Mailbox quota exceeded"),
        "{}",
        digest.content
    );
    let release = link_in(&digest, &base, "/u/release");
    let portal = link_in(&digest, &base, "/u/portal");
    // Nothing new to announce: a second run sends nothing.
    let out = gw.cli(&["quarantine", "digest"]);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("0 digest"),
        "{out:?}"
    );

    // Opening the link shows the message without releasing it.
    let (code, page) = curl(&[&release]);
    assert_eq!(code, 200, "{page}");
    assert!(page.contains("Mailbox quota exceeded"), "{page}");
    let (code, page) = curl(&[&portal]);
    assert_eq!(code, 200, "{page}");
    assert!(page.contains("Mailbox quota exceeded"), "{page}");
    std::thread::sleep(Duration::from_millis(1000));
    assert_eq!(sink.messages().len(), 1, "a GET must not release");

    // A tampered link is refused; the genuine one releases, once.
    let token = release.split_once("?t=").unwrap().1.to_owned();
    let mut forged = token.clone().into_bytes();
    forged[3] = if forged[3] == b'A' { b'B' } else { b'A' };
    let forged = String::from_utf8(forged).unwrap();
    let url = format!("{base}/u/release");
    let (code, _) = curl(&["--data-urlencode", &format!("t={forged}"), &url]);
    assert_eq!(code, 400);
    let (code, page) = curl(&["--data-urlencode", &format!("t={token}"), &url]);
    assert_eq!(code, 200, "{page}");
    assert!(wait_until(Duration::from_secs(15), || sink
        .messages()
        .len()
        == 2));
    let delivered = sink
        .messages()
        .into_iter()
        .find(|m| m.header("Subject").as_deref() == Some("Mailbox quota exceeded"))
        .expect("the released message reached the mailbox");
    assert_eq!(delivered.rcpts, ["<dora@example.com>"]);
    let (code, _) = curl(&["--data-urlencode", &format!("t={token}"), &url]);
    assert_eq!(code, 409, "a link releases once");

    // The release is in the audit log under the link's recipient.
    let out = gw.cli(&["audit", "list"]);
    let log = String::from_utf8_lossy(&out.stdout);
    assert!(log.contains("link:dora@example.com"), "{out:?}");
}

/// A recipient keeps their own lists from the digest's link: a sender they block is held
/// for them while a colleague on the same message gets it; only senders and domains go on
/// such a list; "release and trust" puts the sender on their allow list. All audited.
#[test]
fn a_recipient_keeps_own_lists_from_the_digest_and_they_judge_only_their_copy() {
    let (sink, gw, mut c, base) =
        holding_a_phish_for_dora(&["actions = { spam = \"quarantine\" }"], "");
    let digest = digest_sent(&gw, &sink);
    let portal = link_in(&digest, &base, "/u/portal");
    let portal_token = portal.split_once("?t=").unwrap().1.to_owned();
    let lists = format!("{base}/u/lists");
    let change = |op: &str, list: &str, entry: &str| {
        curl(&[
            "--data-urlencode",
            &format!("t={portal_token}"),
            "--data-urlencode",
            &format!("op={op}"),
            "--data-urlencode",
            &format!("list={list}"),
            "--data-urlencode",
            &format!("entry={entry}"),
            &lists,
        ])
    };

    // Blocked from the list page; an address range is refused (an administrator's business).
    let (code, page) = change("add", "block", "@Bank-Verify.test");
    assert_eq!(code, 303, "{page}");
    let (code, page) = change("add", "block", "203.0.113.0/24");
    assert_eq!(code, 400, "{page}");
    let (code, page) = curl(&[&portal]);
    assert_eq!(code, 200, "{page}");
    assert!(page.contains("My allow and block lists"), "{page}");
    assert!(
        page.contains("<td>黑名单 / block</td><td>@bank-verify.test</td>"),
        "{page}"
    );
    assert!(!page.contains("203.0.113.0"), "{page}");

    // The next message from that domain: the colleague gets it, Dora's copy is held.
    let ordinary =
        b"From: Li Wei <notice@bank-verify.test>\r\nTo: dora@example.com, ed@example.com\r\n\
        Subject: Lunch on Friday\r\nMessage-ID: <lunch-1@bank-verify.test>\r\n\
        Date: Fri, 4 Dec 2026 09:00:00 +0800\r\n\r\nHi Dora and Ed,\r\n\
        shall we meet for lunch on Friday at noon, at the usual place?\r\nBest, Li\r\n";
    let r = c.send_mail(
        "notice@bank-verify.test",
        &["dora@example.com", "ed@example.com"],
        ordinary,
    );
    assert_eq!(r.code, 250, "{r:?}");
    let lunch = sink.with_subject("Lunch on Friday", Duration::from_secs(15));
    assert_eq!(lunch.len(), 1);
    assert_eq!(lunch[0].rcpts, ["<ed@example.com>"]);
    let held = cli_json(&gw, &["quarantine", "list", "--json"]);
    let mine = held
        .iter()
        .find(|i| i["subject"] == "Lunch on Friday")
        .expect("Dora's copy is held");
    assert_eq!(mine["rcpts"], "dora@example.com", "{mine}");
    assert!(
        mine["reason"]
            .as_str()
            .unwrap()
            .contains("USER_BLOCKLISTED"),
        "{mine}"
    );

    // Removed again, it is gone from the page.
    let (code, page) = change("remove", "block", "@bank-verify.test");
    assert_eq!(code, 303, "{page}");
    let (_, page) = curl(&[&portal]);
    assert!(page.contains("No entries yet"), "{page}");

    // "Release and trust": released, and the sender is on Dora's allow list.
    let release_token = link_in(&digest, &base, "/u/release")
        .split_once("?t=")
        .unwrap()
        .1
        .to_owned();
    let (code, page) = curl(&[
        "--data-urlencode",
        &format!("t={release_token}"),
        "--data-urlencode",
        "allow=1",
        &format!("{base}/u/release"),
    ]);
    assert_eq!(code, 200, "{page}");
    assert!(page.contains("is on your allow list now"), "{page}");
    let (_, page) = curl(&[&portal]);
    assert!(
        page.contains("<td>白名单 / allow</td><td>notice@bank-verify.test</td>"),
        "{page}"
    );

    let out = gw.cli(&["audit", "list"]);
    let log = String::from_utf8_lossy(&out.stdout);
    for line in [
        "ownlist.add",
        "ownlist.remove",
        "dora@example.com allow: notice@bank-verify.test",
    ] {
        assert!(log.contains(line), "{line}: {log}");
    }
    assert!(log.contains("link:dora@example.com"), "{log}");
}

/// Recipients sign in with their directory account — OpenLDAP's slapd over ldaps, its
/// certificate checked against the site's CA — and reach the page of their held mail, by
/// name or by address; a wrong password, an unknown name and an account with no protected
/// address are refused, and every attempt is audited.
#[test]
fn a_recipient_signs_in_through_the_directory() {
    let pki_dir = tempfile::tempdir().unwrap();
    let pki = TestPki::make(pki_dir.path(), &["127.0.0.1"]);
    let people: &[(&str, &[&str], &str)] = &[
        (
            "dora",
            &["Dora@Example.com", "dora.li@elsewhere.test"],
            "Dora-Pass-2026",
        ),
        ("visitor", &["visitor@elsewhere.test"], "Visitor-Pass-2026"),
    ];
    let ldap = Slapd::start(people, Some(&pki));
    let (sink, gw, _client, base) = holding_a_phish_for_dora(
        &[],
        &format!(
            "[directory]\nurl = \"ldaps://127.0.0.1:{}\"\ntls_ca = \"{}\"\n\
             base_dn = \"ou=people,dc=example,dc=com\"\n",
            ldap.tls_port.unwrap(),
            pki.ca.display()
        ),
    );

    let login = format!("{base}/u/login");
    let (code, page) = curl(&[&login]);
    assert_eq!(code, 200, "{page}");
    assert!(page.contains("name=\"password\""), "{page}");
    let sign_in = |user: &str, password: &str| {
        curl(&[
            "-L",
            "--data-urlencode",
            &format!("user={user}"),
            "--data-urlencode",
            &format!("password={password}"),
            &login,
        ])
    };
    for (user, password, expected) in [
        ("dora", "wrong-password", 401),
        ("nobody", "Dora-Pass-2026", 401),
        ("dora", "", 401),
        ("visitor", "Visitor-Pass-2026", 403),
    ] {
        let (code, page) = sign_in(user, password);
        assert_eq!(code, expected, "{user}/{password}: {page}");
        assert!(!page.contains("Mailbox quota exceeded"), "{page}");
    }
    for user in ["dora", "dora@example.com"] {
        let (code, page) = sign_in(user, "Dora-Pass-2026");
        assert_eq!(code, 200, "{user}: {page}");
        assert!(page.contains("Mailbox quota exceeded"), "{page}");
        assert!(page.contains("Held mail for dora@example.com"), "{page}");
    }

    let out = gw.cli(&["audit", "list"]);
    let log = String::from_utf8_lossy(&out.stdout);
    assert!(log.contains("directory:dora"), "{log}");
    assert!(log.contains("user.login_fail"), "{log}");
    assert!(log.contains("as dora@example.com"), "{log}");
    assert!(
        !log.contains("as dora.li@elsewhere.test"),
        "only protected addresses: {log}"
    );
    drop(gw);

    // A directory whose certificate the configured CA did not issue is not asked.
    let port = jianmen_testkit::free_port();
    let untrusting = Setup::new(sink.port, sink.port).section(&format!(
        "[console]\nlisten = \"127.0.0.1:{port}\"\n[quarantine]\nuser_release = [\"phish\"]\n\
         [directory]\nurl = \"ldaps://127.0.0.1:{}\"\ntls_ca = \"{}\"\n\
         base_dn = \"ou=people,dc=example,dc=com\"\n",
        ldap.tls_port.unwrap(),
        pki.other_ca.display()
    ));
    let gw = Gateway::start(&untrusting);
    let (code, page) = curl(&[
        "--data-urlencode",
        "user=dora",
        "--data-urlencode",
        "password=Dora-Pass-2026",
        &format!("https://127.0.0.1:{port}/u/login"),
    ]);
    assert_eq!(code, 503, "{page}");
    assert!(
        gw.log().contains("the directory cannot be asked"),
        "{}",
        gw.log()
    );
}

/// A message refused at SMTP (high-scoring spam: `550 … (ref <id>)`) leaves a copy in
/// quarantine under the id the sender was told, for a few days, so a false positive at reject
/// level can still be released; viruses are not copied.
#[test]
fn a_refused_message_keeps_a_copy_that_can_be_released() {
    let sink = Sink::start(&[]);
    let setup = Setup::new(sink.port, sink.port).scanning(&[
        "actions = { spam_high = \"reject\", virus = \"reject\", phish = \"reject\" }",
    ]);
    let gw = Gateway::start(&setup);
    let mut c = Client::ready(gw.addr);
    // Lottery spam in English, well past spam_high (15).
    let spam = b"From: Lucky Draw <winner@prize-claims.test>\r\nTo: staff@example.com\r\n\
        Subject: CONGRATULATIONS!!! You have WON $1,000,000 USD\r\n\r\n\
        Dear winner, you have won the international lottery jackpot of ONE MILLION DOLLARS. \
        To claim your prize send your full name, bank account number and a processing fee of \
        $500 by western union today. Act now, this offer expires! 100% guaranteed winner.\r\n";
    let r = c.send_mail("winner@prize-claims.test", &["staff@example.com"], spam);
    assert!(r.text.starts_with("550 5.7.1"), "{r:?}");
    let id = r
        .text
        .rsplit_once("(ref ")
        .map(|(_, id)| id.trim_end().trim_end_matches(')').to_owned())
        .expect("the refusal names a reference");
    let items = cli_json(&gw, &["quarantine", "list", "--json"]);
    assert_eq!(items.len(), 1, "{items:?}");
    assert_eq!(items[0]["id"], id.as_str());
    assert!(
        items[0]["reason"]
            .as_str()
            .unwrap()
            .starts_with("refused at SMTP (550 5.7.1"),
        "{items:?}"
    );
    let days = (items[0]["expires_at"].as_i64().unwrap()
        - items[0]["received_at"].as_i64().unwrap())
        / 86_400;
    assert_eq!(
        days, 3,
        "kept for rejected_copy_days, not the class's retention"
    );
    assert!(sink.messages().is_empty());

    let out = gw.cli(&["quarantine", "release", &id]);
    assert!(out.status.success(), "{out:?}");
    assert!(
        wait_until(Duration::from_secs(10), || sink.messages().len() == 1),
        "the released copy is delivered"
    );
    assert!(sink.messages()[0].body().contains("lottery jackpot"));
}
