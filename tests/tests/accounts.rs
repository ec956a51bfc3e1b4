//! Compromised internal accounts, end to end. A real Postfix is the organisation's mail server
//! (relayhost = the gateway, XFORWARD on), smtp-sink the Internet and the internal mailboxes.
//! An account that suddenly sends 300 messages to recipients it never wrote to is alerted
//! (a mail to the security team), throttled (Postfix hears 451 and queues), then held: the
//! rest of its mail waits in the quarantine. Its profile and containment survive a restart;
//! the security administrator clears it in Chromium and every held message goes out. Phishing
//! from one colleague's account to another is quarantined by the internal scan.

use std::time::Duration;

use jianmen_testkit::{
    Browser, Client, Console, Gateway, Postfix, Setup, Sink, free_port, wait_until,
};
use serde_json::Value;

/// Where the organisation's Postfix connects from: the only internal relay.
const RELAY_IP: &str = "127.0.0.3";
/// Where users' mail clients connect to Postfix from.
const USER_IP: &str = "127.0.0.5";
const ACCOUNT: &str = "zhang@corp.test";
const BURST: usize = 300;
const NEW_PASSWORD: &str = "Pass-Of-Jianmen-2026";

fn json(body: &str) -> Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"))
}

/// The account as the board's API shows it, with its history.
fn account(console: &Console) -> Value {
    let (code, body) = console.request(&format!("/api/risk/{ACCOUNT}"), &[]);
    if code == 404 {
        return Value::Null;
    }
    assert_eq!(code, 200, "{body}");
    json(&body)
}

/// Messages of the burst held as the account's, by the quarantine's search.
fn held(console: &Console) -> usize {
    let (code, body) = console.request("/api/quarantine?class=account&limit=1", &[]);
    assert_eq!(code, 200, "{body}");
    json(&body)["total"].as_u64().unwrap_or(0) as usize
}

fn delivered(internet: &Sink) -> usize {
    internet
        .messages()
        .iter()
        .filter(|m| {
            m.header("Subject")
                .is_some_and(|s| s.starts_with("Quarterly update"))
        })
        .count()
}

#[test]
fn a_hijacked_account_is_contained_and_cleared_and_colleagues_are_not_phished() {
    let browser = Browser::ready();
    let internet = Sink::start(&[]);
    let console_port = free_port();
    let mut setup = Setup::new(internet.port, internet.port)
        .scanning(&[])
        .smtp(&format!("internal_relays = [\"{RELAY_IP}\"]"))
        .console(console_port)
        .section("[behaviour]\nthrottle_per_hour = 10\nnotify = [\"secops@corp.test\"]");
    setup.also_protected = vec!["corp.test".into()];
    let mut gw = Gateway::start(&setup);
    // Deferred mail is retried within seconds, as an operator would set it for this test.
    let postfix = Postfix::start(
        gw.addr,
        RELAY_IP,
        &[
            "queue_run_delay = 2s",
            "minimal_backoff_time = 2s",
            "maximal_backoff_time = 4s",
        ],
    );
    let (user, password) = gw.initial_account("security");
    let work = tempfile::tempdir().unwrap();
    let console = Console::new(console_port, work.path());
    console.sign_in(&user, &password, NEW_PASSWORD);

    // The intruder sends from the account's mail client: 300 messages, each to a stranger.
    let postfix_addr = format!("127.0.0.1:{}", postfix.port).parse().unwrap();
    let (mut c, greeting) = Client::connect_from(USER_IP.parse().unwrap(), postfix_addr);
    assert_eq!(greeting.code, 220);
    assert_eq!(c.cmd("EHLO pc7.corp.test").code, 250);
    for i in 0..BURST {
        let to = format!("buyer{i}@partner{}.test", i % 7);
        let message = format!(
            "From: <{ACCOUNT}>\r\nTo: <{to}>\r\nSubject: Quarterly update {i}\r\n\
             Date: Fri, 4 Dec 2026 10:00:00 +0800\r\nMessage-ID: <q{i}@corp.test>\r\n\r\n\
             Please find this quarter's figures below.\r\n"
        );
        let r = c.send_mail(ACCOUNT, &[&to], message.as_bytes());
        assert_eq!(r.code, 250, "Postfix takes the user's mail: {r:?}");
    }
    assert_eq!(c.cmd("QUIT").code, 221);

    // Alerted, throttled, held: every message is delivered or held, none lost.
    let settled = wait_until(Duration::from_secs(180), || {
        postfix.flush();
        account(&console)["account"]["level"] == "held"
            && delivered(&internet) + held(&console) == BURST
    });
    let state = account(&console);
    assert!(
        settled,
        "delivered {}, held {}, account {state}\n--- postfix ---\n{}\n--- gateway ---\n{}",
        delivered(&internet),
        held(&console),
        postfix.log(),
        gw.log()
    );
    let out = delivered(&internet);
    assert!(out > 0 && out < BURST / 2, "{out} went out before the hold");
    let levels: Vec<&str> = state["events"]
        .as_array()
        .unwrap()
        .iter()
        .rev()
        .map(|e| e["level"].as_str().unwrap())
        .collect();
    assert_eq!(levels, ["alert", "throttled", "held"], "{state}");
    let why = state["account"]["reasons"].to_string();
    assert!(
        why.contains("\"kind\":\"new_recipients\"") && why.contains("\"kind\":\"volume\""),
        "{why}"
    );
    // Held for trying past the throttle, Postfix must have been told to slow down first; an
    // account whose score reached the hold level while it still had allowance (a fast burst on
    // a loaded machine) is held before any refusal.
    if why.contains("\"kind\":\"past_throttle\"") {
        assert!(
            postfix
                .log()
                .contains("451 4.7.1 This account is sending unusually much"),
            "Postfix was throttled:\n{}",
            postfix.log()
        );
    }
    assert!(
        wait_until(Duration::from_secs(20), || internet.messages().iter().any(
            |m| m.rcpts == ["<secops@corp.test>"] && m.content.contains(ACCOUNT)
        )),
        "the security team is told"
    );

    // The profile and the containment survive a restart.
    let seen = state["account"]["messages"].as_u64().unwrap();
    gw.restart_gracefully();
    let console = Console::new(console_port, work.path());
    console.log_in(&user, NEW_PASSWORD);
    let again = account(&console);
    assert_eq!(again["account"]["level"], "held", "{again}");
    assert_eq!(again["account"]["messages"].as_u64(), Some(seen), "{again}");
    assert_eq!(
        again["held"].as_u64(),
        Some((BURST - out) as u64),
        "{again}"
    );

    // The administrator finds it a false alarm (a mailing they had asked for) in Chromium.
    browser.run(
        "risk.mjs",
        &[
            ("JM_URL", format!("https://127.0.0.1:{console_port}/")),
            ("JM_SEC_USER", user.clone()),
            ("JM_SEC_PASS", NEW_PASSWORD.into()),
            ("JM_NEW_PASS", NEW_PASSWORD.into()),
            ("JM_ACCOUNT", ACCOUNT.into()),
            ("JM_REASON", "从未联系过".into()),
        ],
        || gw.log(),
    );
    assert!(
        wait_until(Duration::from_secs(60), || delivered(&internet) == BURST),
        "the held mail goes out once cleared: {} of {BURST}",
        delivered(&internet)
    );
    assert_eq!(account(&console)["account"]["level"], "normal");

    // A colleague's hijacked account phishes another colleague: held, not delivered.
    let phish = "From: \"Li Na\" <li@corp.test>\r\nTo: <wang@corp.test>\r\n\
        Subject: Mailbox quota exceeded\r\nMessage-ID: <quota@corp.test>\r\n\
        Content-Type: text/html\r\n\r\n<p>Your mailbox will be closed. Confirm your password:</p>\
        <a href=\"http://203.0.113.7/owa/login\">https://mail.corp.test/owa</a>\r\n";
    let (mut c, _) = Client::connect_from(USER_IP.parse().unwrap(), postfix_addr);
    assert_eq!(c.cmd("EHLO pc9.corp.test").code, 250);
    let r = c.send_mail("li@corp.test", &["wang@corp.test"], phish.as_bytes());
    assert_eq!(r.code, 250, "{r:?}");
    let quarantined = || {
        let (_, body) = console.request("/api/quarantine?class=phish", &[]);
        json(&body)["items"].as_array().is_some_and(|items| {
            items
                .iter()
                .any(|i| i["subject"] == "Mailbox quota exceeded")
        })
    };
    assert!(
        wait_until(Duration::from_secs(30), || {
            postfix.flush();
            quarantined()
        }),
        "internal phishing is quarantined\n--- gateway ---\n{}",
        gw.log()
    );
    assert!(
        gw.log().contains("direction=\"internal\""),
        "judged as internal mail"
    );
    assert!(
        !internet
            .messages()
            .iter()
            .any(|m| m.rcpts == ["<wang@corp.test>"]),
        "the phishing never reached the colleague"
    );
}
