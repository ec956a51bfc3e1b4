//! The secure relay against real peers on loopback: delivery channels bound to 127.0.0.2–4, a
//! destination Postfix that refuses listed clients with `reject_rbl_client` against a zone
//! dnsmasq serves (and the gateway's watch asks), a next hop that accepts TCP and never speaks,
//! a SOCKS5 relay node (microsocks), and a destination that defers everything.

use std::collections::HashMap;
use std::net::TcpListener;
use std::time::Duration;

use jianmen_testkit::{
    BlockListDns, Browser, Console, Dns, DovecotAuth, Gateway, Listening, Postfix, Setup, Sink,
    TestPki, free_port, send_out, wait_until,
};

const NEW_PASSWORD: &str = "Relay-Board-2026!";

/// The organisation's own mail server, allowed to send out.
const INSIDE: &str = "127.0.0.9";

fn send(gw: &Gateway, token: &str) {
    send_out(gw, INSIDE, token, 3);
}

/// Sends `n` messages (`{prefix}0`…) and waits until every one reached `sink`.
fn send_all(gw: &Gateway, sink: &Sink, prefix: &str, n: usize) {
    for i in 0..n {
        send(gw, &format!("{prefix}{i}"));
    }
    assert!(
        wait_until(Duration::from_secs(60), || arrivals(sink).len() == n),
        "{}",
        gw.log()
    );
}

/// Whether every message at `sink` came from `addr`.
fn all_from(sink: &Sink, addr: &str) -> bool {
    sink.messages().iter().all(|m| m.client_addr == addr)
}

/// Tokens delivered to `sink`, with how many times each arrived.
fn arrivals(sink: &Sink) -> HashMap<String, usize> {
    let mut seen = HashMap::new();
    for m in sink.messages() {
        if let Some(token) = m
            .header("Subject")
            .and_then(|s| s.strip_prefix("test ").map(str::to_owned))
        {
            *seen.entry(token).or_default() += 1;
        }
    }
    seen
}

/// A gateway sending far.test's mail (MX via `dns`, port `mx_port`) through `relay`.
fn gateway(dns: &Dns, mx_port: u16, notify: &Sink, relay: &str, delivery: &[&str]) -> Gateway {
    gateway_with(dns, mx_port, notify, relay, delivery, "")
}

fn gateway_with(
    dns: &Dns,
    mx_port: u16,
    notify: &Sink,
    relay: &str,
    delivery: &[&str],
    more: &str,
) -> Gateway {
    let mut setup = Setup::sending_out(notify.port, INSIDE, dns, mx_port)
        .section(more)
        .section(relay);
    for line in delivery {
        setup = setup.delivery(line);
    }
    Gateway::start(&setup)
}

fn loopback_dns() -> Dns {
    Dns::far_test(
        std::net::SocketAddr::from(([127, 0, 0, 1], free_port())),
        &[],
    )
}

fn state(gw: &Gateway, channel: &str, state: &str) -> bool {
    gw.metrics().contains(&format!(
        "jianmen_channel_state{{channel=\"{channel}\",state=\"{state}\"}} 1"
    ))
}

#[test]
fn a_listed_channel_hands_its_mail_on_and_a_reserve_takes_its_place() {
    let browser = Browser::ready();
    let console_port = free_port();
    let internet = Sink::start(&[]);
    let notify = Sink::start(&[]);
    let lists = BlockListDns::start();
    let dns = &lists.dns;
    // The destination: a real Postfix refusing block-listed clients, relaying the rest to the sink.
    let destination = Postfix::start_resolving(
        std::net::SocketAddr::from(([127, 0, 0, 1], internet.port)),
        "127.0.0.1",
        &[
            "smtpd_client_restrictions = reject_rbl_client bl.test",
            "smtpd_relay_restrictions = permit_mynetworks, reject",
            "smtpd_delay_reject = yes",
            // smtpd remembers block-list answers for its lifetime: one connection per process.
            "max_use = 1",
        ],
        dns.ip,
    );
    let gw = gateway_with(
        dns,
        destination.port,
        &notify,
        "[relay]\ndnsbl = [{ zone = \"bl.test\" }]\ncheck_secs = 5\nholddown_secs = 3\n\
         notify = [\"postmaster@example.com\"]\n\
         [[relay.channel]]\nname = \"a\"\nsource = \"127.0.0.2\"\nweight = 10\n\
         [[relay.channel]]\nname = \"b\"\nsource = \"127.0.0.3\"\n\
         [[relay.channel]]\nname = \"r\"\nsource = \"127.0.0.4\"\nreserve = true\n",
        // Postfix judges a client once per connection: a new one for every message, so that
        // the listing is seen as soon as it is published.
        &["connection_idle_secs = 0"],
        &format!("[console]\nlisten = \"127.0.0.1:{console_port}\""),
    );
    let (admin, password) = gw.initial_account("system");
    let work = tempfile::tempdir().unwrap();
    Console::new(console_port, work.path()).sign_in(&admin, &password, NEW_PASSWORD);
    let batch = |from: usize, to: usize| {
        for i in from..to {
            send(&gw, &format!("m{i}"));
        }
    };
    batch(0, 20);
    assert!(
        wait_until(Duration::from_secs(60), || arrivals(&internet).len() == 20),
        "first batch: {:?}\n{}\n{}",
        arrivals(&internet).len(),
        gw.log(),
        destination.log()
    );
    assert!(state(&gw, "a", "active") && state(&gw, "r", "reserve"));
    // 127.0.0.2 — channel `a`, the first choice — is listed midway.
    lists.list(&["127.0.0.2".parse().unwrap()]);
    batch(20, 50);
    assert!(
        wait_until(Duration::from_secs(90), || arrivals(&internet).len() == 50),
        "after the listing: {}\n{}\n{}",
        arrivals(&internet).len(),
        gw.log(),
        destination.log()
    );
    let log = gw.log();
    assert!(
        destination.log().contains("blocked using bl.test"),
        "the destination refused the listed channel:\n{}",
        destination.log()
    );
    assert!(
        log.contains("channel did not deliver; next channel"),
        "{log}"
    );
    assert!(
        wait_until(Duration::from_secs(30), || state(&gw, "a", "listed")
            && state(&gw, "r", "active")),
        "listed and reserve promoted:\n{}",
        gw.metrics()
    );
    // The system administrator sees it on the channel board, and drains and restores `b`.
    browser.run(
        "channels.mjs",
        &[
            ("JM_URL", format!("https://127.0.0.1:{console_port}/")),
            ("JM_SYS_USER", admin.clone()),
            ("JM_SYS_PASS", NEW_PASSWORD.into()),
            ("JM_NEW_PASS", NEW_PASSWORD.into()),
        ],
        || gw.log(),
    );
    // Delisted: back after the hold-down, and the reserve stands down.
    lists.list(&[]);
    assert!(
        wait_until(Duration::from_secs(60), || state(&gw, "a", "active")
            && state(&gw, "r", "reserve")),
        "back after delisting:\n{}\n{}",
        gw.metrics(),
        gw.log()
    );
    batch(50, 55);
    assert!(wait_until(Duration::from_secs(60), || arrivals(&internet)
        .len()
        == 55));
    // Every message exactly once, nothing bounced or left in the queue.
    let seen = arrivals(&internet);
    let twice: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "duplicates: {twice:?}");
    assert!(wait_until(Duration::from_secs(30), || gw.queue_len() == 0));
    // The postmaster was told, and got nothing else (no bounce).
    assert!(wait_until(Duration::from_secs(30), || notify
        .messages()
        .iter()
        .any(|m| m.content.contains("listed: bl.test"))));
    assert!(
        notify
            .messages()
            .iter()
            .all(|m| m.rcpts.iter().all(|r| r.contains("postmaster"))),
        "a bounce reached the sender"
    );
}

#[test]
fn a_silent_next_hop_times_out_and_the_mail_moves_on() {
    let internet = Sink::start(&[]);
    let notify = Sink::start(&[]);
    let dns = loopback_dns();
    // A smart host that accepts connections and never says a word.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_port = silent.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for s in silent.incoming().flatten() {
            held.push(s);
        }
    });
    let gw = gateway(
        &dns,
        internet.port,
        &notify,
        &format!(
            "[relay]\ndown_after = 2\n\
             [[relay.channel]]\nname = \"silent\"\nweight = 10\n\
             smarthost = {{ host = \"127.0.0.1\", port = {silent_port}, tls = \"none\" }}\n\
             [[relay.channel]]\nname = \"b\"\nsource = \"127.0.0.3\"\n"
        ),
        &["command_timeout_secs = 2"],
    );
    send_all(&gw, &internet, "t", 4);
    assert!(all_from(&internet, "127.0.0.3"), "all left by channel b");
    let log = gw.log();
    assert!(log.contains("timeout waiting for 127.0.0.1"), "{log}");
    assert!(
        wait_until(Duration::from_secs(20), || state(&gw, "silent", "down")),
        "{}",
        gw.metrics()
    );
    // Delivered mail leaves the queue just after the sink has it.
    assert!(wait_until(Duration::from_secs(10), || gw.queue_len() == 0));
}

#[test]
fn a_socks5_channel_delivers_through_its_relay_node() {
    let internet = Sink::start(&[]);
    let notify = Sink::start(&[]);
    let dns = loopback_dns();
    let port = free_port();
    let mut microsocks = std::process::Command::new("microsocks");
    microsocks.args([
        "-i",
        "127.0.0.1",
        "-p",
        &port.to_string(),
        "-b",
        "127.0.0.6",
    ]);
    microsocks.args(["-u", "relay", "-P", "node-secret"]);
    let _node = Listening::spawn(
        &mut microsocks,
        port,
        "microsocks (install microsocks)",
        String::new,
    );
    let secret = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(secret.path(), "node-secret\n").unwrap();
    let gw = gateway(
        &dns,
        internet.port,
        &notify,
        &format!(
            "[[relay.channel]]\nname = \"node\"\nsocks5 = \"127.0.0.1:{port}\"\n\
             socks5_username = \"relay\"\nsocks5_password_file = \"{}\"\n\
             address = \"127.0.0.6\"\n",
            secret.path().display()
        ),
        &[],
    );
    send_all(&gw, &internet, "s", 3);
    assert!(
        all_from(&internet, "127.0.0.6"),
        "delivered by the relay node's outgoing address"
    );
}

#[test]
fn mail_every_channel_defers_is_kept_and_delivered_later() {
    let mut internet = Sink::start(&["-r", "RCPT"]);
    let notify = Sink::start(&[]);
    let dns = loopback_dns();
    let gw = gateway(
        &dns,
        internet.port,
        &notify,
        "[relay]\n[[relay.channel]]\nname = \"a\"\nsource = \"127.0.0.2\"\n\
         [[relay.channel]]\nname = \"b\"\nsource = \"127.0.0.3\"\n",
        &[],
    );
    send(&gw, "d0");
    // Both channels are tried at each attempt; the message stays queued.
    assert!(wait_until(Duration::from_secs(30), || gw
        .log()
        .matches("channel did not deliver; next channel")
        .count()
        >= 4));
    assert_eq!(gw.queue_len(), 1);
    assert!(notify.messages().is_empty(), "not bounced");
    internet.restart_with(&[]);
    assert!(
        wait_until(Duration::from_secs(30), || arrivals(&internet).len() == 1),
        "{}",
        gw.log()
    );
    assert!(wait_until(Duration::from_secs(10), || gw.queue_len() == 0));
}

#[test]
fn a_smart_host_channel_logs_in_over_tls_and_a_wrong_password_passes_the_mail_on() {
    let internet = Sink::start(&[]);
    let notify = Sink::start(&[]);
    let pki_dir = tempfile::tempdir().unwrap();
    let pki = TestPki::make(pki_dir.path(), &["relay.isp.test"]);
    let auth = DovecotAuth::start(&[("jianmen", "up-secret-2026")]);
    // The upstream relay: a real Postfix that relays only for clients that logged in, and
    // offers AUTH only inside TLS.
    let upstream = Postfix::start(
        std::net::SocketAddr::from(([127, 0, 0, 1], internet.port)),
        "127.0.0.1",
        &[
            &format!("smtpd_tls_cert_file = {}", pki.cert.display()),
            &format!("smtpd_tls_key_file = {}", pki.key.display()),
            "smtpd_tls_security_level = may",
            "smtpd_tls_auth_only = yes",
            "smtpd_sasl_auth_enable = yes",
            "smtpd_sasl_type = dovecot",
            &format!("smtpd_sasl_path = {}", auth.socket.display()),
            "mynetworks = 127.0.0.254/32",
            "smtpd_relay_restrictions = permit_sasl_authenticated, reject",
        ],
    );
    let dns = loopback_dns();
    let secrets = tempfile::tempdir().unwrap();
    let (good, bad) = (secrets.path().join("good"), secrets.path().join("bad"));
    std::fs::write(&good, "up-secret-2026\n").unwrap();
    std::fs::write(&bad, "guessed\n").unwrap();
    let smarthost = |file: &std::path::Path| {
        format!(
            "{{ host = \"127.0.0.1\", port = {}, tls = \"verify\", tls_ca = \"{}\", \
             tls_name = \"relay.isp.test\", username = \"jianmen\", password_file = \"{}\" }}",
            upstream.port,
            pki.ca.display(),
            file.display()
        )
    };
    // The MX host itself (port 9) is never reached: everything goes by the smart hosts.
    let gw = gateway(
        &dns,
        9,
        &notify,
        &format!(
            "[relay]\n\
             [[relay.channel]]\nname = \"wrong\"\nweight = 10\nsmarthost = {}\n\
             [[relay.channel]]\nname = \"upstream\"\nsmarthost = {}\n",
            smarthost(&bad),
            smarthost(&good)
        ),
        &[],
    );
    for i in 0..3 {
        send(&gw, &format!("u{i}"));
    }
    assert!(
        wait_until(Duration::from_secs(60), || arrivals(&internet).len() == 3),
        "{}\n{}\n{}",
        gw.log(),
        upstream.log(),
        auth.log()
    );
    let log = upstream.log();
    assert!(log.contains("sasl_username=jianmen"), "{log}");
    assert!(
        log.contains("authentication failed"),
        "the wrong password was tried: {log}"
    );
    assert!(gw.log().contains("refused AUTH as jianmen"), "{}", gw.log());
    assert!(gw.log().contains("TLS"), "{}", gw.log());
    // Delivered mail leaves the queue just after the sink has it.
    assert!(wait_until(Duration::from_secs(10), || gw.queue_len() == 0));
}
