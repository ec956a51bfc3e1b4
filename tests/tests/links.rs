//! Click-time link protection against real peers: inbound mail's links are rewritten to the
//! console's link service (each recipient's copy with tokens of its own; partner and internal
//! links left alone); a link clicked while its domain is clean goes straight on; after dnsmasq
//! puts the domain on a URI block list, the click in Chromium shows the warning page, is recorded
//! in tracking and alerts the administrators; a tampered token is refused.

use std::process::Command;
use std::time::Duration;

use jianmen_testkit::{
    Browser, Client, Console, Dns, Gateway, Setup, Sink, free_port, readable_parts, wait_until,
};

const NEW_PASSWORD: &str = "Link-Guard-2026!";
const BAD: &str = "https://login.bad-bank.test/verify?id=7&lang=zh";

/// The protected links in `text`.
fn protected(text: &str, console_port: u16) -> Vec<String> {
    let prefix = format!("https://127.0.0.1:{console_port}/l/");
    text.match_indices(&prefix)
        .map(|(at, _)| {
            text[at..]
                .split(|c: char| c == '"' || c.is_whitespace())
                .next()
                .unwrap_or_default()
                .to_owned()
        })
        .collect()
}

/// GETs (or POSTs) `url` without following: the status and where it redirects.
fn fetch(url: &str, post: bool) -> (u16, String) {
    let out = Command::new("curl")
        .args([
            "-sk",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code} %{redirect_url}",
        ])
        .args(if post { &["-X", "POST"][..] } else { &[][..] })
        .arg(url)
        .output()
        .expect("curl");
    let said = String::from_utf8_lossy(&out.stdout).into_owned();
    let (code, location) = said.split_once(' ').unwrap_or((&said, ""));
    (code.parse().unwrap_or(0), location.to_owned())
}

#[test]
fn links_are_rewritten_and_a_link_that_went_bad_warns_at_the_click() {
    let dir = tempfile::tempdir().unwrap();
    let listed = dir.path().join("listed");
    std::fs::write(&listed, "").unwrap();
    // dnsmasq reads the file again as `nobody`.
    let _ = Command::new("chmod").arg("0755").arg(dir.path()).status();
    let _ = Command::new("chmod").arg("0644").arg(&listed).status();
    let dns = Dns::start(&[
        "--local=/uribl.test/".to_owned(),
        format!("--addn-hosts={}", listed.display()),
    ]);
    let sink = Sink::start(&[]);
    let console_port = free_port();
    let gw = Gateway::start(
        &Setup::new(sink.port, sink.port)
            .scanning(&[
                "model = \"none\"",
                "first_contact = false",
                "uribl = [{ zone = \"uribl.test\", symbol = \"URIBL_TEST\" }]",
            ])
            .section(&format!("[dns]\nresolver = \"127.0.0.1:{}\"", dns.port))
            .console(console_port)
            .section(&format!(
                "[links]\nenabled = true\nbase_url = \"https://127.0.0.1:{console_port}\"\n\
                 skip = [\"partner.test\"]\nnotify = [\"secadmin@example.com\"]\n"
            )),
    );
    let html = format!(
        "<p>Dear customer, <a href=\"{}\">verify your account</a> today.</p>\
         <p>Forms: <a href=\"https://www.partner.test/forms\">partner</a>, \
         <a href=\"https://intranet.example.com/hr\">intranet</a></p>",
        BAD.replace('&', "&amp;")
    );
    let message = format!(
        "From: Bank <service@bank-notice.test>\r\nTo: alice@example.com, bob@example.com\r\n\
         Subject: Account review\r\nMessage-ID: <review-1@bank-notice.test>\r\nMIME-Version: 1.0\r\n\
         Content-Type: multipart/alternative; boundary=b\r\n\r\n\
         --b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nVerify at {BAD} today.\r\n\
         --b\r\nContent-Type: text/html; charset=utf-8\r\n\r\n{html}\r\n--b--\r\n"
    );
    let mut c = Client::ready(gw.addr);
    let reply = c.send_mail(
        "service@bank-notice.test",
        &["alice@example.com", "bob@example.com"],
        message.as_bytes(),
    );
    assert_eq!(reply.code, 250, "{}", reply.text);
    assert!(
        wait_until(Duration::from_secs(30), || sink.messages().len() == 2),
        "{}",
        gw.log()
    );

    // Each recipient has a copy of their own, its bad link rewritten in both parts, the visible
    // text kept, partner and internal links untouched.
    let mut alice_link = String::new();
    for m in sink.messages() {
        assert_eq!(m.rcpts.len(), 1, "one copy per recipient");
        let text = readable_parts(&m.content);
        let links = protected(&text, console_port);
        assert_eq!(links.len(), 2, "{text}");
        assert!(!text.contains("bad-bank.test"), "{text}");
        assert!(text.contains(">verify your account</a>"), "{text}");
        assert!(
            text.contains("href=\"https://www.partner.test/forms\""),
            "{text}"
        );
        assert!(
            text.contains("href=\"https://intranet.example.com/hr\""),
            "{text}"
        );
        if m.rcpts[0].contains("alice") {
            alice_link = links[1].replace("&amp;", "&");
        }
    }
    // Clean when clicked: straight on to where it led.
    assert_eq!(fetch(&alice_link, false), (302, BAD.to_owned()));

    // The domain is listed after delivery: the next click warns.
    std::fs::write(&listed, "127.0.0.2 bad-bank.test.uribl.test\n").unwrap();
    dns.reload();
    assert!(wait_until(Duration::from_secs(10), || dns
        .a("bad-bank.test.uribl.test")
        .is_some()));
    let (user, password) = gw.initial_account("security");
    let console = Console::new(console_port, dir.path());
    console.sign_in(&user, &password, NEW_PASSWORD);
    Browser::ready().run(
        "links.mjs",
        &[
            ("JM_LINK", alice_link.clone()),
            ("JM_TARGET", BAD.to_owned()),
            ("JM_URL", format!("https://127.0.0.1:{console_port}/")),
            ("JM_SEC_USER", user),
            ("JM_SEC_PASS", NEW_PASSWORD.into()),
            ("JM_NEW_PASS", NEW_PASSWORD.into()),
        ],
        || gw.log(),
    );
    // Going past the warning is a POST, allowed by the default policy.
    assert_eq!(fetch(&alice_link, true), (302, BAD.to_owned()));
    // A tampered token is refused, and so is one that is not a token at all.
    let mut tampered = alice_link.clone().into_bytes();
    let at = tampered.len() - 50;
    tampered[at] = if tampered[at] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).unwrap();
    assert_eq!(fetch(&tampered, false).0, 400);
    assert_eq!(
        fetch(
            &format!("https://127.0.0.1:{console_port}/l/https%3A%2F%2Fevil.test"),
            false
        )
        .0,
        400
    );

    // The administrators are told.
    assert!(
        wait_until(Duration::from_secs(30), || sink.messages().iter().any(
            |m| m.rcpts.iter().any(|r| r.contains("secadmin@example.com"))
                && m.content
                    .contains("A link in delivered mail was found dangerous")
                && m.content.contains("alice@example.com")
        )),
        "no alert:\n{}",
        gw.log()
    );
    // Every click is in tracking: who, and what each was judged.
    let clicks = || {
        let (_, body) = console.request("/api/tracking?kind=clicked", &[]);
        body
    };
    assert!(
        wait_until(Duration::from_secs(10), || {
            let body = clicks();
            ["passed", "warned", "continued"]
                .iter()
                .all(|o| body.contains(&format!("{o} {BAD}")))
        }),
        "{}",
        clicks()
    );
    let body = clicks();
    assert!(body.contains("alice@example.com"), "{body}");
    assert!(body.contains("URIBL_TEST"), "{body}");
}
