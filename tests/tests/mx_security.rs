//! What MX hosts must prove, against real servers: DANE (RFC 7672) with TLSA records in zones
//! signed by ldns-signzone and served by NSD under a signed root of the test's own (the
//! gateway validates from that root's key), and MTA-STS (RFC 8461) with policies served over
//! HTTPS by Python's http.server and announced by dnsmasq. The next hop is a second gateway
//! with a certificate from a test CA, passing mail on to smtp-sink.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use jianmen_testkit::{
    Client, Dns, Gateway, Listening, Setup, Sink, TestPki, free_port, test_message, wait_until,
};

/// NSD serving zones signed on the spot: a root that delegates to them (with DS records for
/// the signed ones) and the zones themselves, all on one loopback port. `zones`: (name,
/// records, signed). Writes the root's trust anchor to `dir/anchor`.
fn start_nsd(dir: &Path, zones: &[(&str, String, bool)]) -> Listening {
    let run = |cmd: &str, args: &[&str]| -> String {
        let out = Command::new(cmd)
            .args(args)
            .current_dir(dir)
            .output()
            .unwrap_or_else(|e| panic!("{cmd} (install nsd and ldnsutils): {e}"));
        assert!(
            out.status.success(),
            "{cmd} {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    };
    // Signs `zone` (file `file`) with new keys; returns the KSK's file stem. NSEC, not
    // NSEC3: denial of existence as the root zone does it.
    let sign = |zone: &str, file: &str| -> String {
        let ksk = run("ldns-keygen", &["-a", "ECDSAP256SHA256", "-k", zone]);
        let zsk = run("ldns-keygen", &["-a", "ECDSAP256SHA256", zone]);
        run("ldns-signzone", &["-o", zone, file, &zsk, &ksk]);
        ksk
    };
    let mut root = String::from(
        "$ORIGIN .\n$TTL 300\n. IN SOA ns.root. hostmaster.root. 1 3600 600 86400 300\n\
             . IN NS ns.root.\nns.root. IN A 127.0.0.1\n",
    );
    let port = free_port();
    let mut conf = format!(
        "server:\n  ip-address: 127.0.0.1@{port}\n  username: \"\"\n  zonesdir: \"{d}\"\n  \
             database: \"\"\n  pidfile: \"{d}/nsd.pid\"\n  xfrdfile: \"{d}/xfrd.state\"\n  \
             zonelistfile: \"{d}/zone.list\"\n  logfile: \"{d}/nsd.log\"\n\
             remote-control:\n  control-enable: no\n",
        d = dir.display()
    );
    for (name, records, signed) in zones {
        let file = format!("{name}.zone");
        std::fs::write(
            dir.join(&file),
            format!(
                "$ORIGIN {name}.\n$TTL 300\n@ IN SOA ns.{name}. hostmaster.{name}. 1 3600 \
                     600 86400 300\n@ IN NS ns.{name}.\nns IN A 127.0.0.1\n{records}\n"
            ),
        )
        .unwrap();
        root.push_str(&format!(
            "{name}. IN NS ns.{name}.\nns.{name}. IN A 127.0.0.1\n"
        ));
        let served = if *signed {
            let ksk = sign(name, &file);
            let ds = std::fs::read_to_string(dir.join(format!("{ksk}.ds"))).unwrap();
            root.push_str(ds.split(';').next().unwrap_or_default().trim());
            root.push('\n');
            format!("{file}.signed")
        } else {
            file
        };
        conf.push_str(&format!("zone:\n  name: {name}\n  zonefile: {served}\n"));
    }
    std::fs::write(dir.join("root.zone"), root).unwrap();
    let ksk = sign(".", "root.zone");
    let anchor = std::fs::read_to_string(dir.join(format!("{ksk}.key"))).unwrap();
    std::fs::write(
        dir.join("anchor"),
        anchor.split(';').next().unwrap_or_default(),
    )
    .unwrap();
    conf.push_str("zone:\n  name: .\n  zonefile: root.zone.signed\n");
    std::fs::write(dir.join("nsd.conf"), conf).unwrap();
    let mut command = Command::new("nsd");
    command.args(["-d", "-c"]).arg(dir.join("nsd.conf"));
    Listening::spawn(&mut command, port, "nsd", || {
        std::fs::read_to_string(dir.join("nsd.log")).unwrap_or_default()
    })
}

/// The next hop: a gateway with a certificate from `pki`, accepting `domains` and passing
/// everything on to `sink`.
fn next_hop(pki: &TestPki, sink: &Sink, domains: &[&str]) -> Gateway {
    let mut setup = Setup::new(sink.port, sink.port);
    setup.tls = vec![
        format!("cert = \"{}\"", pki.cert.display()),
        format!("key = \"{}\"", pki.key.display()),
    ];
    setup.also_protected = domains.iter().map(|d| d.to_string()).collect();
    Gateway::start(&setup)
}

/// A gateway delivering `domains` by MX lookup to port `mx_port`, with `sections` added.
fn sender(mx_port: u16, domains: &[&str], delivery: &[String], sections: &[String]) -> Gateway {
    let mut setup = Setup::new(free_port(), free_port());
    setup.catch_all = false;
    setup.also_protected = domains.iter().map(|d| d.to_string()).collect();
    setup.delivery.push(format!("mx_port = {mx_port}"));
    setup.delivery.push("mx_tls = \"opportunistic\"".into());
    setup.delivery.extend(delivery.iter().cloned());
    setup.sections = sections.to_vec();
    Gateway::start(&setup)
}

/// Sends one message to `user@domain` and says whether it reached the sink within 20 s.
fn send(gw: &Gateway, sink: &Sink, domain: &str) -> bool {
    let token = format!("to-{domain}");
    let r = Client::ready(gw.addr).send_mail(
        "sender@example.com",
        &[&format!("user@{domain}")],
        &test_message(&token, 2),
    );
    assert_eq!(r.code, 250, "{domain}: {r:?}");
    let subject = format!("test {token}");
    wait_until(Duration::from_secs(20), || {
        sink.messages().iter().any(|m| {
            m.header("Subject").as_deref() == Some(subject.as_str())
                && m.content.contains("with ESMTPS")
        })
    })
}

/// Waits until the queue shows a deferral for `domain` mentioning `why`.
fn deferred_because(gw: &Gateway, domain: &str, why: &str) -> bool {
    wait_until(Duration::from_secs(20), || {
        let out = String::from_utf8_lossy(&gw.cli(&["queue", "list"]).stdout).into_owned();
        out.lines()
            .any(|l| l.contains(&format!("user@{domain}")) && l.contains(why))
    })
}

/// The public key pin `jianmen tls-probe` prints for the server at `addr`: the SHA-256 of the
/// key the server shows, which is what a `3 1 1` TLSA record carries.
fn probed_pin(addr: std::net::SocketAddr) -> String {
    let out = Command::new(jianmen_testkit::jianmen_bin())
        .args(["tls-probe", "--starttls"])
        .arg(addr.to_string())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.lines()
        .find_map(|l| l.strip_prefix("public key pin: sha256:"))
        .unwrap_or_else(|| panic!("no pin in {text}"))
        .to_owned()
}

/// Finding 9 of the hardening review asked for DANE-TLSA. A signed MX host with a TLSA record
/// naming the next hop's key gets the mail (its certificate's issuer and name do not matter for
/// DANE-EE: here it is self-made); one whose signed record names another key does not, though opportunistic TLS
/// would have sent it; and the same wrong record in an unsigned zone is not DANE at all.
#[test]
fn dane_tlsa_records_decide_which_certificate_an_mx_host_must_show() {
    let dir = tempfile::tempdir().unwrap();
    let pki = TestPki::make(dir.path(), &["hop.test"]);
    let sink = Sink::start(&[]);
    let domains = ["dane.test", "wrong.dane.test", "plain.test"];
    let hop = next_hop(&pki, &sink, &domains);
    let port = hop.addr.port();
    // The key the next hop shows this gateway (its SM2 one: both speak RFC 8998), as an
    // administrator would publish it.
    let right = probed_pin(hop.addr);
    assert_eq!(right.len(), 64, "{right}");
    let wrong = "ab".repeat(32);
    let nsd = start_nsd(
        dir.path(),
        &[
            (
                "dane.test",
                format!(
                    "@ IN MX 10 mx.dane.test.\nmx IN A 127.0.0.1\n\
                     _{port}._tcp.mx IN TLSA 3 1 1 {right}\n\
                     wrong IN MX 10 mx.wrong.dane.test.\nmx.wrong IN A 127.0.0.1\n\
                     _{port}._tcp.mx.wrong IN TLSA 3 1 1 {wrong}\n"
                ),
                true,
            ),
            (
                "plain.test",
                format!(
                    "@ IN MX 10 mx.plain.test.\nmx IN A 127.0.0.1\n\
                     _{port}._tcp.mx IN TLSA 3 1 1 {wrong}\n"
                ),
                false,
            ),
        ],
    );
    let gw = sender(
        port,
        &domains,
        &[],
        &[format!(
            "[dns]\nresolver = \"127.0.0.1:{}\"\ntrust_anchor = \"{}\"",
            nsd.port,
            dir.path().join("anchor").display()
        )],
    );
    assert!(
        send(&gw, &sink, "dane.test"),
        "the key the signed TLSA record names: not delivered\n{}\n{}",
        String::from_utf8_lossy(&gw.cli(&["queue", "list"]).stdout),
        gw.log()
    );
    assert!(
        !send(&gw, &sink, "wrong.dane.test"),
        "delivered to a server whose key the signed TLSA record does not name"
    );
    assert!(
        deferred_because(&gw, "wrong.dane.test", "TLSA"),
        "{}",
        String::from_utf8_lossy(&gw.cli(&["queue", "list"]).stdout)
    );
    assert!(
        send(&gw, &sink, "plain.test"),
        "an unsigned zone's TLSA record was obeyed\n{}",
        String::from_utf8_lossy(&gw.cli(&["queue", "list"]).stdout)
    );
}

/// An HTTPS server answering `GET /.well-known/mta-sts.txt` for `mta-sts.<domain>` with
/// `<dir>/<domain>.txt` (404 when absent).
fn start_policy_server(dir: &Path, cert: &Path, key: &Path) -> Listening {
    let port = free_port();
    let script = r#"
import http.server, os, ssl, sys
port, cert, key, root = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
class Policy(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        host = (self.headers.get("Host") or "").split(":")[0]
        path = os.path.join(root, host.removeprefix("mta-sts.") + ".txt")
        if self.path != "/.well-known/mta-sts.txt" or not os.path.isfile(path):
            self.send_error(404)
            return
        body = open(path, "rb").read()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
server = http.server.HTTPServer(("127.0.0.1", port), Policy)
context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
context.load_cert_chain(cert, key)
server.socket = context.wrap_socket(server.socket, server_side=True)
server.serve_forever()
"#;
    let mut command = Command::new("python3");
    command
        .arg("-c")
        .arg(script)
        .arg(port.to_string())
        .arg(cert)
        .arg(key)
        .arg(dir);
    Listening::spawn(
        &mut command,
        port,
        "the policy server (python3)",
        String::new,
    )
}

/// Finding 9 asked for MTA-STS. Domains with an `enforce` policy get mail only through listed
/// MX hosts whose certificates are valid for their names; a `testing` policy and no policy
/// change nothing (opportunistic TLS delivers to a certificate that names another host).
#[test]
fn mta_sts_enforce_policies_hold_mail_for_unlisted_or_unproven_mx_hosts() {
    let dir = tempfile::tempdir().unwrap();
    let domains = [
        "good.test",
        "unlisted.test",
        "badcert.test",
        "testing.test",
        "nopolicy.test",
    ];
    // The next hop's certificate names the MX hosts of good.test and unlisted.test only; the
    // policy server's names every mta-sts.<domain>.
    let pki = TestPki::make(dir.path(), &["mx.good.test", "mx.unlisted.test"]);
    let web_dir = dir.path().join("web");
    std::fs::create_dir(&web_dir).unwrap();
    let mta_sts_names: Vec<String> = domains.iter().map(|d| format!("mta-sts.{d}")).collect();
    let names: Vec<&str> = mta_sts_names.iter().map(String::as_str).collect();
    let web_pki = TestPki::make(&web_dir, &names);
    for (domain, mode, mx) in [
        ("good.test", "enforce", "mx.good.test"),
        ("unlisted.test", "enforce", "other.unlisted.test"),
        ("badcert.test", "enforce", "*.badcert.test"),
        ("testing.test", "testing", "other.testing.test"),
    ] {
        std::fs::write(
            web_dir.join(format!("{domain}.txt")),
            format!("version: STSv1\nmode: {mode}\nmx: {mx}\nmax_age: 86400\n"),
        )
        .unwrap();
    }
    let web = start_policy_server(&web_dir, &web_pki.cert, &web_pki.key);
    let sink = Sink::start(&[]);
    let hop = next_hop(&pki, &sink, &domains);
    let mut records = Vec::new();
    for domain in domains {
        records.push(format!("--mx-host={domain},mx.{domain},10"));
        records.push(format!("--host-record=mx.{domain},127.0.0.1"));
        records.push(format!("--host-record=mta-sts.{domain},127.0.0.1"));
        if domain != "nopolicy.test" {
            records.push(format!("--txt-record=_mta-sts.{domain},v=STSv1; id=1"));
        }
    }
    let dns = Dns::start(&records);
    // Both CAs are the site's own here: the policy server's and the next hop's.
    let authorities = dir.path().join("authorities.pem");
    let pem = |p: &Path| std::fs::read_to_string(p).unwrap();
    std::fs::write(&authorities, pem(&pki.ca) + &pem(&web_pki.ca)).unwrap();
    let gw = sender(
        hop.addr.port(),
        &domains,
        &[
            format!("mta_sts_port = {}", web.port),
            format!("tls_ca = \"{}\"", authorities.display()),
        ],
        &[format!("[dns]\nresolver = \"127.0.0.1:{}\"", dns.port)],
    );
    let queue = || String::from_utf8_lossy(&gw.cli(&["queue", "list"]).stdout).into_owned();
    assert!(
        send(&gw, &sink, "good.test"),
        "enforced policy, listed host, valid certificate: not delivered\n{}\n{}",
        queue(),
        gw.log()
    );
    assert!(
        !send(&gw, &sink, "unlisted.test"),
        "delivered to an MX host the enforced policy does not list"
    );
    assert!(
        deferred_because(&gw, "unlisted.test", "MTA-STS"),
        "{}",
        queue()
    );
    assert!(
        !send(&gw, &sink, "badcert.test"),
        "delivered to an MX host whose certificate names another host"
    );
    assert!(
        deferred_because(&gw, "badcert.test", "certificate"),
        "{}",
        queue()
    );
    for domain in ["testing.test", "nopolicy.test"] {
        assert!(
            send(&gw, &sink, domain),
            "{domain}: not delivered\n{}",
            queue()
        );
    }
}
