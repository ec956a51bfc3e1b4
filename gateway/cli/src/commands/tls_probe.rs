//! `jianmen tls-probe`: what the gateway's outbound TLS client negotiates with a server — the
//! protocol, cipher suite (international or RFC 8998) and key exchange group — like Postfix's
//! `posttls-finger`, for checking a downstream before routing mail to it — and the pin of its
//! certificate's public key, for a route's `tls_pins` or a DANE record; with `--tlcp`, the
//! same for a TLCP server (its signing certificate's key).

use std::time::Duration;

use anyhow::{Context, Result, bail};
use rustls_pki_types::ServerName;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// Longest a probe waits for any step.
const TIMEOUT: Duration = Duration::from_secs(15);

/// Options of `jianmen tls-probe`.
#[derive(clap::Args)]
pub struct Args {
    /// Server address, `host:port`.
    pub addr: String,
    /// Speak SMTP first and upgrade with STARTTLS.
    #[arg(long)]
    pub starttls: bool,
    /// Server name sent in SNI.
    #[arg(long, default_value = "localhost")]
    pub name: String,
    /// Handshake with TLCP (GB/T 38636) instead of TLS; prints the signing certificate's key
    /// pin, for the `tls_pins` of a `tls = "tlcp"` route.
    #[arg(long)]
    pub tlcp: bool,
}

/// Connects to the address, optionally after SMTP STARTTLS, and prints what was negotiated.
pub async fn run(args: Args) -> Result<()> {
    let (addr, starttls, name) = (args.addr.as_str(), args.starttls, args.name.as_str());
    let server_name = ServerName::try_from(name.to_owned()).context("--name is not a host name")?;
    let mut stream = tokio::time::timeout(TIMEOUT, TcpStream::connect(addr))
        .await
        .context("connect timed out")?
        .with_context(|| format!("cannot connect to {addr}"))?;
    if starttls {
        let mut reader = BufReader::new(&mut stream);
        expect(&mut reader, "220").await?;
        reader
            .get_mut()
            .write_all(b"EHLO jianmen-probe\r\n")
            .await?;
        let ehlo = expect(&mut reader, "250").await?;
        if !ehlo.iter().any(|l| {
            l.get(4..)
                .is_some_and(|k| k.eq_ignore_ascii_case("STARTTLS"))
        }) {
            bail!("the server does not offer STARTTLS");
        }
        reader.get_mut().write_all(b"STARTTLS\r\n").await?;
        expect(&mut reader, "220").await?;
        if !reader.buffer().is_empty() {
            bail!("the server sent data before the TLS handshake");
        }
    }
    if args.tlcp {
        let tlcp = tokio::time::timeout(TIMEOUT, jianmen_gm::tlcp::connect(stream, &[]))
            .await
            .context("TLCP handshake timed out")?
            .context("TLCP handshake failed")?;
        println!("{addr}: TLCP with cipher {}", tlcp.suite().name());
        if let Some(signing) = tlcp.peer_signing_certificate() {
            print_pin(signing);
        }
        return Ok(());
    }
    let connector = tokio_rustls::TlsConnector::from(jianmen_gm::tls::client_config()?);
    let mut tls = tokio::time::timeout(TIMEOUT, connector.connect(server_name, stream))
        .await
        .context("TLS handshake timed out")?
        .context("TLS handshake failed")?;
    println!("{addr}: {}", jianmen_gm::tls::describe(tls.get_ref().1));
    if let Some(leaf) = tls.get_ref().1.peer_certificates().and_then(|c| c.first()) {
        print_pin(leaf);
    }
    // close_notify, so the server sees an orderly end.
    let _ = tokio::time::timeout(TIMEOUT, tls.shutdown()).await;
    Ok(())
}

/// Prints the pin of `certificate`'s public key (a route's `tls_pins`; a DANE `3 1 1` record's
/// data is its hex).
fn print_pin(certificate: &[u8]) {
    match jianmen_gm::tls::public_key_pin(certificate) {
        Ok(pin) => println!("public key pin: sha256:{}", jianmen_gm::hex(&pin)),
        Err(e) => println!("public key pin: none (certificate unreadable: {e})"),
    }
}

/// Reads one (multi-line) reply and checks its code; returns its lines (bounded).
async fn expect(reader: &mut BufReader<&mut TcpStream>, code: &str) -> Result<Vec<String>> {
    let mut lines = Vec::new();
    loop {
        let mut line = String::new();
        let n = tokio::time::timeout(TIMEOUT, reader.read_line(&mut line))
            .await
            .context("the server did not answer")??;
        let line = line.trim_end().to_owned();
        if n == 0 || line.len() < 4 || lines.len() > 100 {
            bail!("unexpected answer: {line:?}");
        }
        if !line.starts_with(code) {
            bail!("expected {code}, got {line:?}");
        }
        let last = line.as_bytes()[3] == b' ';
        lines.push(line);
        if last {
            return Ok(lines);
        }
    }
}
