//! The queue's promises, tested with real peers: Postfix smtp-source for load, smtp-sink as the
//! downstream (also made to fail on purpose), kill -9 mid-stream, and a full filesystem.

use std::collections::{HashMap, HashSet};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use jianmen_testkit::{
    Client, Gateway, Setup, Sink, SunkMessage, sha256_hex, smtp_source, test_message, wait_until,
};

#[test]
fn two_thousand_messages_from_smtp_source_arrive_exactly_once_intact() {
    // Reference: what smtp-source's body looks like when sent straight to a sink.
    let reference = Sink::start(&[]);
    smtp_source(&format!("127.0.0.1:{}", reference.port), 1, 1, 2000);
    assert!(wait_until(Duration::from_secs(10), || reference
        .messages()
        .len()
        == 1));
    let expected = sha256_hex(reference.messages()[0].body().as_bytes());

    let sink = Sink::start(&[]);
    let gw = Gateway::start(&Setup::new(sink.port, sink.port));
    smtp_source(&gw.addr.to_string(), 2000, 20, 2000);
    // Count complete messages (smtp-sink creates a dump file when a transaction starts).
    let complete = || {
        sink.messages()
            .iter()
            .filter(|m| sha256_hex(m.body().as_bytes()) == expected)
            .count()
    };
    assert!(
        wait_until(Duration::from_secs(180), || complete() >= 2000),
        "only {} of 2000 arrived",
        complete()
    );
    std::thread::sleep(Duration::from_secs(1));
    let msgs = sink.messages();
    assert_eq!(msgs.len(), 2000, "no duplicates");
    let ids: HashSet<String> = msgs.iter().filter_map(|m| m.header("Message-Id")).collect();
    assert_eq!(ids.len(), 2000, "every Message-Id exactly once");
    for m in &msgs {
        assert_eq!(sha256_hex(m.body().as_bytes()), expected, "body intact");
        assert!(m.header("Received").unwrap().contains("(Jianmen)"));
    }
    assert!(wait_until(Duration::from_secs(10), || gw.queue_len() == 0));
}

/// Sends messages from `threads` parallel sessions until told to stop or the server goes away;
/// returns the tokens that got a 250.
fn load(
    addr: std::net::SocketAddr,
    threads: usize,
    per_thread: usize,
    acked: Arc<AtomicUsize>,
) -> Vec<std::thread::JoinHandle<Vec<String>>> {
    (0..threads)
        .map(|t| {
            let acked = acked.clone();
            std::thread::spawn(move || {
                let mut ok = Vec::new();
                let Ok(stream) = std::net::TcpStream::connect(addr) else {
                    return ok;
                };
                drop(stream);
                let mut c = Client::ready(addr);
                for i in 0..per_thread {
                    let token = format!("t{t}m{i}");
                    let r = c.send_mail(
                        "sender@outside.example",
                        &["user@example.com"],
                        &test_message(&token, 20),
                    );
                    if r.code != 250 {
                        break;
                    }
                    ok.push(token);
                    acked.fetch_add(1, Ordering::SeqCst);
                }
                ok
            })
        })
        .collect()
}

#[test]
fn kill_9_mid_stream_loses_no_acknowledged_message() {
    let sink = Sink::start(&[]);
    let mut gw = Gateway::start(&Setup::new(sink.port, sink.port));
    let acked = Arc::new(AtomicUsize::new(0));
    let handles = load(gw.addr, 10, 300, acked.clone());
    assert!(
        wait_until(Duration::from_secs(60), || acked.load(Ordering::SeqCst)
            >= 300),
        "load did not get going"
    );
    gw.kill9();
    let acknowledged: Vec<String> = handles
        .into_iter()
        // A load thread that panicked would lose its acknowledgements from the count.
        .flat_map(|h| h.join().expect("a load thread panicked"))
        .collect();
    assert!(acknowledged.len() >= 300);
    assert!(acknowledged.len() < 3000, "the kill happened mid-stream");
    gw.restart();
    let count = |sink: &Sink| -> HashMap<String, usize> {
        let mut seen = HashMap::new();
        for m in sink.messages() {
            if let Some(s) = m.header("Subject") {
                *seen
                    .entry(s.trim_start_matches("test ").to_owned())
                    .or_insert(0) += 1;
            }
        }
        seen
    };
    let all_arrived = wait_until(Duration::from_secs(60), || {
        let seen = count(&sink);
        acknowledged.iter().all(|t| seen.contains_key(t))
    });
    let seen = count(&sink);
    let missing: Vec<&String> = acknowledged
        .iter()
        .filter(|t| !seen.contains_key(*t))
        .collect();
    assert!(
        all_arrived,
        "{} acknowledged messages lost, e.g. {:?}",
        missing.len(),
        &missing[..missing.len().min(5)]
    );
    // Nothing stays in limbo: the queue drains completely.
    assert!(wait_until(Duration::from_secs(30), || gw.queue_len() == 0));
    // At most one resend of what was in flight at the kill.
    let dups = seen.values().filter(|&&n| n > 1).count();
    assert!(
        seen.values().all(|&n| n <= 2),
        "a message arrived more than twice"
    );
    assert!(
        dups <= 100,
        "{dups} duplicates is more than the in-flight window"
    );
    eprintln!(
        "acknowledged {}, delivered {} distinct, {} resent after the crash",
        acknowledged.len(),
        seen.len(),
        dups
    );
}

#[test]
fn downstream_outage_and_4xx_defer_until_it_comes_back() {
    let mut sink = Sink::start(&[]);
    sink.stop();
    let gw = Gateway::start(&Setup::new(sink.port, sink.port));
    let mut c = Client::ready(gw.addr);
    for i in 0..5 {
        let r = c.send_mail(
            "sender@outside.example",
            &["user@example.com"],
            &test_message(&format!("down{i}"), 3),
        );
        assert_eq!(r.code, 250, "{}", r.text);
    }
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        gw.queue_len(),
        5,
        "messages wait in the queue while downstream is down"
    );
    let listing = gw.cli(&["queue", "list"]);
    assert!(String::from_utf8_lossy(&listing.stdout).contains("Connection refused"));
    sink.restart_with(&[]);
    assert!(wait_until(Duration::from_secs(30), || sink
        .messages()
        .len()
        == 5));
    assert!(wait_until(Duration::from_secs(10), || gw.queue_len() == 0));

    // Downstream answers 4xx to RCPT: deferred, not bounced.
    sink.restart_with(&["-r", "RCPT"]);
    for i in 0..3 {
        let r = c.send_mail(
            "sender@outside.example",
            &["user@example.com"],
            &test_message(&format!("soft{i}"), 3),
        );
        assert_eq!(r.code, 250);
    }
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(gw.queue_len(), 3);
    assert_eq!(
        sink.messages().len(),
        5,
        "nothing delivered, nothing bounced"
    );
    sink.restart_with(&[]);
    assert!(wait_until(Duration::from_secs(30), || sink
        .messages()
        .len()
        == 8));
    assert!(wait_until(Duration::from_secs(10), || gw.queue_len() == 0));

    // `queue flush` and `retry` answer; `delete` removes.
    sink.stop();
    let r = c.send_mail(
        "sender@outside.example",
        &["user@example.com"],
        &test_message("deleted", 1),
    );
    assert_eq!(r.code, 250);
    let id = r.text.split_whitespace().last().unwrap().to_owned();
    assert!(gw.cli(&["queue", "flush"]).status.success());
    assert!(gw.cli(&["queue", "retry", &id]).status.success());
    let show = gw.cli(&["queue", "show", &id]);
    assert!(String::from_utf8_lossy(&show.stdout).contains("Subject: test deleted"));
    assert!(gw.cli(&["queue", "delete", &id]).status.success());
    assert_eq!(gw.queue_len(), 0);
    assert!(!gw.cli(&["queue", "show", &id]).status.success());
    assert!(
        !gw.cli(&["queue", "retry", "../../etc/passwd"])
            .status
            .success()
    );
}

/// Sends one message to user@example.com and returns the bounce that reaches `elsewhere`.
fn bounce_for(gw: &Gateway, elsewhere: &Sink, token: &str) -> SunkMessage {
    let mut c = Client::ready(gw.addr);
    let r = c.send_mail(
        "sender@outside.example",
        &["user@example.com"],
        &test_message(token, 2),
    );
    assert_eq!(r.code, 250, "{}", r.text);
    assert!(
        wait_until(Duration::from_secs(30), || elsewhere.messages().len() == 1),
        "no bounce for {token}"
    );
    elsewhere.messages().remove(0)
}

#[test]
fn permanent_failure_bounces_to_the_sender() {
    let downstream = Sink::start(&["-f", "RCPT"]);
    let elsewhere = Sink::start(&[]);
    let gw = Gateway::start(&Setup::new(downstream.port, elsewhere.port));
    let dsn = &bounce_for(&gw, &elsewhere, "bounce-me");
    assert!(
        dsn.mail_from.starts_with("<> "),
        "bounces have a null sender: {}",
        dsn.mail_from
    );
    assert_eq!(dsn.rcpts, vec!["<sender@outside.example>"]);
    assert!(dsn.content.contains("report-type=delivery-status"));
    assert!(
        dsn.content
            .contains("Final-Recipient: rfc822; user@example.com")
    );
    assert!(dsn.content.contains("Action: failed"));
    assert!(
        dsn.content.contains("Subject: test bounce-me"),
        "original headers quoted"
    );
    assert!(downstream.messages().is_empty());
    assert!(wait_until(Duration::from_secs(10), || gw.queue_len() == 0));
}

/// A small tmpfs, unmounted on drop.
struct Tmpfs(tempfile::TempDir);

impl Tmpfs {
    fn mount(size: &str) -> Tmpfs {
        let dir = tempfile::tempdir().unwrap();
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .status()
            .expect("mount");
        assert!(
            status.success(),
            "mounting a tmpfs needs root (tests/run.sh runs as root on CI)"
        );
        Tmpfs(dir)
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(self.0.path()).status();
    }
}

#[test]
fn full_disk_refuses_new_mail_with_452_and_keeps_what_it_accepted() {
    // Room for the databases the gateway makes at start (their write-ahead logs grow before
    // a checkpoint: with 3 MiB a start under load once ran out) and some 70 of these messages.
    let fs = Tmpfs::mount("8m");
    let mut sink = Sink::start(&[]);
    sink.stop();
    let mut setup = Setup::new(sink.port, sink.port).smtp("min_free_space_mib = 0");
    setup.data_dir = Some(fs.0.path().join("data"));
    let gw = Gateway::start(&setup);
    let mut c = Client::ready(gw.addr);
    let mut accepted = Vec::new();
    let mut refusal = None;
    for i in 0..200 {
        let token = format!("full{i}");
        let r = c.send_mail(
            "sender@outside.example",
            &["user@example.com"],
            &test_message(&token, 1500),
        );
        match r.code {
            250 => accepted.push(token),
            _ => {
                refusal = Some(r);
                break;
            }
        }
        if c.cmd("RSET").code != 250 {
            break;
        }
    }
    let refusal = refusal.expect("the disk filled up");
    assert_eq!(refusal.code, 452, "{}", refusal.text);
    assert!(refusal.text.contains("4.3.1"), "{}", refusal.text);
    assert!(!accepted.is_empty());
    // The session and the server survive; once downstream is back everything accepted arrives.
    assert_eq!(c.cmd("NOOP").code, 250);
    sink.restart_with(&[]);
    // smtp-sink creates its dump file when a transaction starts: wait for complete messages.
    let missing = || -> Vec<String> {
        let subjects: HashSet<String> = sink
            .messages()
            .iter()
            .filter_map(|m| m.header("Subject"))
            .collect();
        accepted
            .iter()
            .filter(|t| !subjects.contains(&format!("test {t}")))
            .cloned()
            .collect()
    };
    assert!(
        wait_until(Duration::from_secs(60), || missing().is_empty()),
        "accepted but never delivered: {:?}",
        missing()
    );
    // With space back, mail is accepted again.
    assert!(
        wait_until(Duration::from_secs(20), || {
            let mut c = Client::ready(gw.addr);
            let msg = test_message("after-full", 3);
            c.send_mail("sender@outside.example", &["user@example.com"], &msg)
                .code
                == 250
        }),
        "mail accepted again once the queue drained"
    );

    // A free-space threshold above what the filesystem has: refused already at MAIL.
    let mut strict = Setup::new(sink.port, sink.port).smtp("min_free_space_mib = 100");
    strict.data_dir = Some(fs.0.path().join("strict"));
    let gw2 = Gateway::start(&strict);
    let mut c2 = Client::ready(gw2.addr);
    let r = c2.cmd("MAIL FROM:<sender@outside.example>");
    assert_eq!(r.code, 452, "{}", r.text);
}

#[test]
fn messages_that_outlive_max_lifetime_bounce() {
    let mut downstream = Sink::start(&[]);
    downstream.stop();
    let elsewhere = Sink::start(&[]);
    let setup = Setup::new(downstream.port, elsewhere.port).delivery("max_lifetime_secs = 3");
    let gw = Gateway::start(&setup);
    let dsn = &bounce_for(&gw, &elsewhere, "expires");
    assert!(
        dsn.content.contains("delivery time expired"),
        "{}",
        dsn.content
    );
    assert!(dsn.content.contains("Connection refused"));
    assert!(wait_until(Duration::from_secs(10), || gw.queue_len() == 0));
}

#[test]
fn a_pooled_connection_the_downstream_dropped_is_replaced_not_deferred() {
    let mut sink = Sink::start(&[]);
    let mut setup = Setup::new(sink.port, sink.port);
    // A deferral would hold the message for five minutes: it must not happen.
    setup.delivery = vec![
        "retry_initial_secs = 300".into(),
        "retry_max_secs = 300".into(),
    ];
    let gw = Gateway::start(&setup);
    let mut c = Client::ready(gw.addr);
    let first = test_message("pooled-1", 2);
    assert_eq!(
        c.send_mail("sender@outside.example", &["user@example.com"], &first)
            .code,
        250
    );
    assert!(wait_until(Duration::from_secs(10), || sink
        .messages()
        .len()
        == 1));
    // The downstream restarts: the gateway's idle connection to it is now dead.
    sink.restart_with(&[]);
    let second = test_message("pooled-2", 2);
    assert_eq!(
        c.send_mail("sender@outside.example", &["user@example.com"], &second)
            .code,
        250
    );
    assert!(
        wait_until(Duration::from_secs(10), || sink.messages().len() == 2),
        "second message deferred instead of sent on a new connection"
    );
    assert!(wait_until(Duration::from_secs(5), || gw.queue_len() == 0));
}

#[test]
fn sigterm_closes_idle_sessions_lets_a_transaction_finish_and_loses_nothing() {
    let mut sink = Sink::start(&[]);
    sink.stop();
    let mut gw = Gateway::start(&Setup::new(sink.port, sink.port));
    let mut busy = Client::ready(gw.addr);
    assert_eq!(busy.cmd("MAIL FROM:<sender@outside.example>").code, 250);
    assert_eq!(busy.cmd("RCPT TO:<user@example.com>").code, 250);
    assert_eq!(busy.cmd("DATA").code, 354);
    busy.send(b"Subject: test in-flight\r\n\r\nfirst half\r\n");
    let mut idle = Client::ready(gw.addr);

    gw.terminate();
    let r = idle.read_reply();
    assert_eq!(r.code, 421, "idle session told to go: {}", r.text);
    assert!(r.text.contains("4.3.2"));
    assert!(
        wait_until(Duration::from_secs(5), || std::net::TcpStream::connect(
            gw.addr
        )
        .is_err()),
        "the listener closes"
    );
    busy.send(b"second half\r\n.\r\n");
    let r = busy.read_reply();
    assert_eq!(r.code, 250, "the open transaction completes: {}", r.text);
    let status = gw
        .wait_exit(Duration::from_secs(15))
        .expect("gateway exits");
    assert!(status.success(), "{status:?}");

    sink.restart_with(&[]);
    gw.restart();
    assert!(wait_until(Duration::from_secs(20), || {
        sink.messages()
            .iter()
            .any(|m| m.header("Subject").as_deref() == Some("test in-flight"))
    }));
}

#[test]
fn outbound_starttls_policy_required_and_opportunistic() {
    let sink = Sink::start(&[]);
    // A second gateway offers STARTTLS (self-signed) and passes mail on to the sink.
    let tls_hop = Gateway::start(&Setup::new(sink.port, sink.port));
    for policy in ["required", "opportunistic"] {
        let mut setup = Setup::new(tls_hop.addr.port(), sink.port);
        setup.downstream_tls = policy;
        let gw = Gateway::start(&setup);
        let mut c = Client::ready(gw.addr);
        let token = format!("tls-{policy}");
        let r = c.send_mail(
            "sender@outside.example",
            &["user@example.com"],
            &test_message(&token, 2),
        );
        assert_eq!(r.code, 250);
        let subject = format!("test {token}");
        assert!(
            wait_until(Duration::from_secs(20), || {
                sink.messages().iter().any(|m| {
                    m.header("Subject").as_deref() == Some(subject.as_str())
                        && m.content.contains("with ESMTPS")
                })
            }),
            "{policy}: delivered over TLS to the second hop"
        );
    }
    // Required towards a server without STARTTLS (smtp-sink): deferred, never sent in clear.
    let mut setup = Setup::new(sink.port, sink.port);
    setup.downstream_tls = "required";
    let gw = Gateway::start(&setup);
    let mut c = Client::ready(gw.addr);
    let r = c.send_mail(
        "sender@outside.example",
        &["user@example.com"],
        &test_message("tls-refused", 2),
    );
    assert_eq!(r.code, 250);
    assert!(wait_until(Duration::from_secs(10), || {
        let out = gw.cli(&["queue", "list"]);
        String::from_utf8_lossy(&out.stdout).contains("does not offer STARTTLS")
    }));
    assert!(
        !sink
            .messages()
            .iter()
            .any(|m| m.header("Subject").as_deref() == Some("test tls-refused"))
    );
}

/// Finding 9 of the hardening review: outbound TLS never verified certificates. With
/// `tls = "verify"` the downstream must prove who it is — a certificate from the route's CA
/// naming it, or a pinned public key — and mail waits in the queue rather than go to a server
/// that cannot.
#[test]
fn outbound_verify_delivers_only_to_a_server_that_proves_who_it_is() {
    let certs = tempfile::tempdir().unwrap();
    let jianmen_testkit::TestPki {
        ca,
        other_ca,
        cert,
        key,
    } = jianmen_testkit::TestPki::make(certs.path(), &["hop.test"]);
    let sink = Sink::start(&[]);
    let mut hop_setup = Setup::new(sink.port, sink.port);
    hop_setup.tls = vec![
        format!("cert = \"{}\"", cert.display()),
        format!("key = \"{}\"", key.display()),
    ];
    let hop = Gateway::start(&hop_setup);
    // The pin an administrator copies from `jianmen tls-probe`.
    let probe = Command::new(jianmen_testkit::jianmen_bin())
        .args(["tls-probe", "--starttls", "--name", "hop.test"])
        .arg(hop.addr.to_string())
        .output()
        .unwrap();
    let probed = String::from_utf8_lossy(&probe.stdout).into_owned();
    let pin = probed
        .lines()
        .find_map(|l| l.strip_prefix("public key pin: "))
        .unwrap_or_else(|| panic!("no pin in {probed}"))
        .to_owned();
    let wrong_pin = format!("sha256:{}", "ab".repeat(32));
    let cases: [(&str, Vec<String>, bool); 5] = [
        (
            "own CA",
            vec![
                format!("tls_ca = \"{}\"", ca.display()),
                "tls_name = \"hop.test\"".into(),
            ],
            true,
        ),
        ("pinned key", vec![format!("tls_pins = [\"{pin}\"]")], true),
        (
            "unrelated CA",
            vec![
                format!("tls_ca = \"{}\"", other_ca.display()),
                "tls_name = \"hop.test\"".into(),
            ],
            false,
        ),
        (
            "wrong name",
            vec![
                format!("tls_ca = \"{}\"", ca.display()),
                "tls_name = \"other.test\"".into(),
            ],
            false,
        ),
        (
            "wrong pin",
            vec![format!("tls_pins = [\"{wrong_pin}\"]")],
            false,
        ),
    ];
    for (what, route, delivered) in cases {
        let mut setup = Setup::new(hop.addr.port(), sink.port);
        setup.downstream_tls = "verify";
        setup.route = route;
        let gw = Gateway::start(&setup);
        let token = format!("verify-{}", what.replace(' ', "-"));
        let r = Client::ready(gw.addr).send_mail(
            "sender@outside.example",
            &["user@example.com"],
            &test_message(&token, 2),
        );
        assert_eq!(r.code, 250, "{what}: {r:?}");
        let subject = format!("test {token}");
        let arrived = || {
            sink.messages()
                .iter()
                .any(|m| m.header("Subject").as_deref() == Some(subject.as_str()))
        };
        if delivered {
            assert!(
                wait_until(Duration::from_secs(20), arrived),
                "{what}: not delivered\n{}",
                gw.log()
            );
        } else {
            assert!(
                wait_until(Duration::from_secs(20), || {
                    let out = gw.cli(&["queue", "list"]);
                    String::from_utf8_lossy(&out.stdout).contains("certificate")
                }),
                "{what}: no certificate error in the queue\n{}",
                String::from_utf8_lossy(&gw.cli(&["queue", "list"]).stdout)
            );
            assert!(
                !arrived(),
                "{what}: delivered to a server that proved nothing"
            );
        }
    }
}

/// Finding 9 also asked that `verify` be the default for routes to internal servers that
/// present a certificate: a route without a `tls` line checks the certificate of a server that
/// offers STARTTLS (and holds the mail, saying how to fix it, when it cannot be checked) and
/// still delivers in clear to one that offers none.
#[test]
fn routes_check_an_offered_certificate_by_default() {
    let certs = tempfile::tempdir().unwrap();
    let pki = jianmen_testkit::TestPki::make(certs.path(), &["hop.test"]);
    let sink = Sink::start(&[]);
    let mut hop_setup = Setup::new(sink.port, sink.port);
    hop_setup.tls = vec![
        format!("cert = \"{}\"", pki.cert.display()),
        format!("key = \"{}\"", pki.key.display()),
    ];
    let hop = Gateway::start(&hop_setup);
    let sink = &sink;
    let send = |gw: &Gateway, token: &str| {
        let r = Client::ready(gw.addr).send_mail(
            "sender@outside.example",
            &["user@example.com"],
            &test_message(token, 2),
        );
        assert_eq!(r.code, 250, "{token}: {r:?}");
        let subject = format!("test {token}");
        move || {
            sink.messages()
                .iter()
                .any(|m| m.header("Subject").as_deref() == Some(subject.as_str()))
        }
    };
    // The hop's certificate is from a CA the route does not name, for a name it does not use.
    let mut setup = Setup::new(hop.addr.port(), sink.port);
    setup.downstream_tls = "";
    let gw = Gateway::start(&setup);
    let arrived = send(&gw, "default-unproven");
    assert!(
        wait_until(Duration::from_secs(20), || {
            let out = gw.cli(&["queue", "list"]);
            let out = String::from_utf8_lossy(&out.stdout);
            out.contains("certificate") && out.contains("tls_pins")
        }),
        "no certificate error with its remedy in the queue\n{}",
        String::from_utf8_lossy(&gw.cli(&["queue", "list"]).stdout)
    );
    assert!(
        !arrived(),
        "delivered to a server whose certificate was not checked"
    );
    // Its CA and name given, the same route delivers, over TLS.
    setup.route = vec![
        format!("tls_ca = \"{}\"", pki.ca.display()),
        "tls_name = \"hop.test\"".into(),
    ];
    let gw = Gateway::start(&setup);
    assert!(wait_until(
        Duration::from_secs(20),
        send(&gw, "default-proven")
    ));
    // smtp-sink offers no STARTTLS: delivered in clear.
    let mut setup = Setup::new(sink.port, sink.port);
    setup.downstream_tls = "";
    let gw = Gateway::start(&setup);
    assert!(wait_until(
        Duration::from_secs(20),
        send(&gw, "default-clear")
    ));
}

#[test]
fn sealed_mail_is_never_dropped_for_a_lost_key() {
    let mut sink = Sink::start(&[]);
    sink.stop();
    let mut gw = Gateway::start(&Setup::new(sink.port, sink.port));
    let mut c = Client::ready(gw.addr);
    let r = c.send_mail(
        "sender@outside.example",
        &["user@example.com"],
        &test_message("sealed", 3),
    );
    assert_eq!(r.code, 250, "{}", r.text);
    drop(c);
    gw.kill9();
    let key = gw.dir.path().join("data/keys/spool-sm4.key");
    let saved = gw.dir.path().join("spool-sm4.key.saved");
    std::fs::rename(&key, &saved).unwrap();
    // Without its key the gateway refuses to start rather than make a new one.
    let out = Command::new(jianmen_testkit::jianmen_bin())
        .args(["serve", "--config"])
        .arg(&gw.config)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("spool-sm4.key is missing"),
        "{out:?}"
    );
    assert!(!key.exists(), "no new key was made");
    // A key that does not open the file (another key): the message waits, it is not dropped.
    std::fs::write(&key, [7u8; 16]).unwrap();
    sink.restart_with(&[]);
    gw.restart();
    std::thread::sleep(Duration::from_secs(3));
    assert!(sink.messages().is_empty());
    assert_eq!(gw.queue_len(), 1, "{}", gw.log());
    assert!(gw.log().contains("does not unseal"), "{}", gw.log());
    // The right key back: delivered.
    gw.kill9();
    std::fs::rename(&saved, &key).unwrap();
    gw.restart();
    let _ = gw.cli(&["queue", "flush"]);
    assert!(wait_until(Duration::from_secs(30), || sink
        .messages()
        .len()
        == 1));
    assert!(wait_until(Duration::from_secs(10), || gw.queue_len() == 0));
}
