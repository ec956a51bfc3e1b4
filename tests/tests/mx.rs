//! Delivery by MX lookup against a real DNS server on loopback (dnsmasq): MX preference, the
//! implicit MX of a domain with only an address record, null MX (RFC 7505) and NXDOMAIN bounces.

use std::time::Duration;

use jianmen_testkit::{Client, Dns, Gateway, Setup, Sink, test_message, wait_until};

#[test]
fn mx_lookup_delivers_and_null_mx_or_nxdomain_bounce() {
    let sink = Sink::start(&[]);
    let dns = Dns::start(&[
        "--mx-host=mxtest.example,mx1.mxtest.example,10".into(),
        "--mx-host=mxtest.example,mx2.mxtest.example,20".into(),
        "--host-record=mx1.mxtest.example,127.0.0.1".into(),
        "--host-record=mx2.mxtest.example,127.0.0.2".into(),
        "--host-record=nomx.example,127.0.0.1".into(),
        "--mx-host=nullmx.example,.,0".into(),
    ]);
    let mut setup = Setup::new(sink.port, sink.port)
        .section(&format!("[dns]\nresolver = \"127.0.0.1:{}\"", dns.port))
        .delivery(&format!("mx_port = {}", sink.port))
        .delivery("mx_tls = \"none\"");
    setup.catch_all = false;
    setup.also_protected = [
        "mxtest.example",
        "nomx.example",
        "nullmx.example",
        "nothere.example",
    ]
    .map(String::from)
    .to_vec();
    // The preference-20 host: a listener that only records being contacted. The preferred
    // host takes the mail, so nothing may ever connect here.
    let backup = std::net::TcpListener::bind(("127.0.0.2", sink.port)).unwrap();
    backup.set_nonblocking(true).unwrap();
    let gw = Gateway::start(&setup);
    let mut c = Client::ready(gw.addr);
    for (i, rcpt) in [
        "u@mxtest.example",
        "u@nomx.example",
        "u@nullmx.example",
        "u@nothere.example",
    ]
    .iter()
    .enumerate()
    {
        let r = c.send_mail(
            "sender@example.com",
            &[rcpt],
            &test_message(&format!("mx{i}"), 2),
        );
        assert_eq!(r.code, 250, "{rcpt}: {}", r.text);
    }
    // Two deliveries and two bounces (to sender@example.com, routed to the same sink).
    assert!(
        wait_until(Duration::from_secs(30), || sink.messages().len() >= 4),
        "got {}",
        sink.messages().len()
    );
    let msgs = sink.messages();
    let delivered: Vec<String> = msgs
        .iter()
        .filter(|m| !m.mail_from.starts_with("<>"))
        .flat_map(|m| m.rcpts.clone())
        .collect();
    assert!(
        delivered.contains(&"<u@mxtest.example>".to_owned()),
        "{delivered:?}"
    );
    assert!(
        backup.accept().is_err(),
        "the preference-20 MX was contacted although the preference-10 one took the mail"
    );
    assert!(
        delivered.contains(&"<u@nomx.example>".to_owned()),
        "{delivered:?}"
    );
    let bounces: Vec<&str> = msgs
        .iter()
        .filter(|m| m.mail_from.starts_with("<>"))
        .map(|m| m.content.as_str())
        .collect();
    assert_eq!(bounces.len(), 2);
    assert!(
        bounces
            .iter()
            .any(|b| b.contains("Final-Recipient: rfc822; u@nullmx.example")
                && b.contains("null MX"))
    );
    assert!(
        bounces
            .iter()
            .any(|b| b.contains("Final-Recipient: rfc822; u@nothere.example")
                && b.contains("does not exist"))
    );
    assert!(wait_until(Duration::from_secs(10), || gw.queue_len() == 0));
}
