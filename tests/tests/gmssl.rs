//! National-cipher interop with GmSSL 3, the second independent implementation beside Tongsuo
//! (its `gmssl` command, built from crates.io `gmssl-src` by tests/run.sh, `JIANMEN_GMSSL`):
//! GmSSL's TLCP client gets an HTTPS answer from the console, and the gateway's TLCP client
//! (`jianmen tls-probe --tlcp`, the code TLCP routes deliver with) completes a handshake with
//! GmSSL's TLCP server and pins its signing key. GmSSL's TLS 1.3 tools do not interoperate with
//! RFC 8446 peers that coalesce records or send the compatibility ChangeCipherSpec (README,
//! "National ciphers"), so RFC 8998 is tested against Tongsuo only.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use jianmen_testkit::{Gateway, Setup, Sink, free_port, jianmen_bin, wait_until};

fn gmssl() -> PathBuf {
    PathBuf::from(
        std::env::var("JIANMEN_GMSSL")
            .expect("JIANMEN_GMSSL names GmSSL's gmssl command (tests/run.sh builds it)"),
    )
}

/// Runs `gmssl args…` in `dir` and returns its standard output; panics when it fails.
fn gmssl_ok(dir: &Path, args: &[&str]) -> String {
    let out = Command::new(gmssl())
        .args(args)
        .current_dir(dir)
        .output()
        .expect("gmssl");
    assert!(
        out.status.success(),
        "gmssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Whether something listens on TCP `port` (read from the kernel's table: GmSSL's server ends
/// after one failed handshake, so knocking would stop it).
fn listening(port: u16) -> bool {
    let needle = format!(":{port:04X} ");
    ["/proc/net/tcp", "/proc/net/tcp6"].iter().any(|table| {
        std::fs::read_to_string(table).is_ok_and(|t| {
            t.lines().any(|l| {
                let fields: Vec<&str> = l.split_whitespace().collect();
                fields.get(1).is_some_and(|local| {
                    format!("{local} ").ends_with(&needle) && fields.get(3) == Some(&"0A")
                })
            })
        })
    })
}

#[test]
fn gmssl_tlcp_client_gets_an_https_answer_from_the_console() {
    let sink = Sink::start(&[]);
    let console = free_port();
    let setup = Setup::new(sink.port, sink.port).section(&format!(
        "[console]\nlisten = \"127.0.0.1:{console}\"\nallow_from = [\"127.0.0.1/32\"]"
    ));
    let _gw = Gateway::start(&setup);
    let mut client = Command::new(gmssl())
        .args(["tlcp_client", "-host", "127.0.0.1", "-port"])
        .arg(console.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("gmssl tlcp_client");
    // The tool sends what one read of its input gives: one line at a time.
    let mut input = client.stdin.take().unwrap();
    for line in ["GET /api/session HTTP/1.0\r\n", "Host: gw\r\n", "\r\n"] {
        std::thread::sleep(Duration::from_millis(300));
        input.write_all(line.as_bytes()).unwrap();
        input.flush().unwrap();
    }
    std::thread::sleep(Duration::from_secs(2));
    drop(input);
    let finished = wait_until(Duration::from_secs(10), || {
        client.try_wait().ok().flatten().is_some()
    });
    if !finished {
        let _ = client.kill();
    }
    let out = client.wait_with_output().unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(
        stderr.contains("Connection established"),
        "no TLCP handshake: {stderr}"
    );
    assert!(
        stdout.starts_with("HTTP/1.0 401"),
        "the console's answer: {stdout}\n{stderr}"
    );
    assert!(stdout.contains("content-security-policy"), "{stdout}");
}

#[test]
fn the_tlcp_client_completes_a_handshake_with_gmssl_and_pins_its_signing_key() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // GmSSL's own keys (encrypted PKCS#8) and certificates: signing, then encryption.
    for (key, cert, usage) in [
        ("sign.key", "sign.pem", "digitalSignature"),
        ("enc.key", "enc.pem", "keyEncipherment"),
    ] {
        gmssl_ok(d, &["sm2keygen", "-pass", "1234", "-out", key]);
        gmssl_ok(
            d,
            &[
                "certgen",
                "-C",
                "CN",
                "-ST",
                "BJ",
                "-L",
                "BJ",
                "-O",
                "Jianmen test",
                "-OU",
                "interop",
                "-CN",
                "gmssl.test",
                "-days",
                "30",
                "-key",
                key,
                "-pass",
                "1234",
                "-out",
                cert,
                "-key_usage",
                usage,
            ],
        );
    }
    let chain = [d.join("sign.pem"), d.join("enc.pem")]
        .iter()
        .map(|p| std::fs::read_to_string(p).unwrap())
        .collect::<String>();
    std::fs::write(d.join("chain.pem"), chain).unwrap();
    let port = free_port();
    let mut server = Command::new(gmssl())
        .args(["tlcp_server", "-port"])
        .arg(port.to_string())
        .args([
            "-cert",
            "chain.pem",
            "-key",
            "sign.key",
            "-pass",
            "1234",
            "-ex_key",
            "enc.key",
            "-ex_pass",
            "1234",
        ])
        .current_dir(d)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("gmssl tlcp_server");
    assert!(
        wait_until(Duration::from_secs(10), || listening(port)),
        "GmSSL's TLCP server did not listen"
    );
    let out = Command::new(jianmen_bin())
        .args(["tls-probe", "--tlcp"])
        .arg(format!("127.0.0.1:{port}"))
        .output()
        .unwrap();
    let _ = server.kill();
    let _ = server.wait();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("TLCP with cipher ECC-SM2-SM4-"), "{stdout}");
    // The pin is the signing certificate's key, as openssl computes it.
    let expected = Command::new("sh")
        .arg("-c")
        .arg(
            "openssl x509 -in sign.pem -noout -pubkey | openssl pkey -pubin -outform DER | \
             openssl dgst -sha256 -r",
        )
        .current_dir(d)
        .output()
        .unwrap();
    let expected = String::from_utf8_lossy(&expected.stdout);
    let expected = expected.split_whitespace().next().unwrap_or_default();
    assert_eq!(expected.len(), 64, "openssl: {expected}");
    assert!(
        stdout.contains(&format!("public key pin: sha256:{expected}")),
        "{stdout}"
    );
}
