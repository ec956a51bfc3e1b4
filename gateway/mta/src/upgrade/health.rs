//! The health check a release on trial must pass before it is kept: it answers SMTP on each
//! listener, the console answers HTTPS, the queue can be read (its store, and the spool file of
//! each queued message), and the content model it ships loads. A release that fails (or dies
//! before the check ends) is rolled back at the next start, see [`super::release`].

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use crate::queue::Queue;

/// Exit status of a release that failed its health check (the service manager restarts it, and
/// the launcher then rolls back).
pub const EXIT_UNHEALTHY: i32 = 70;
/// Longest a release on trial may take to pass its health check before it gives up.
pub const TRIAL_DEADLINE: Duration = Duration::from_secs(120);
/// Time allowed for each network probe.
const PROBE_TIMEOUT: Duration = Duration::from_secs(10);
/// Queued messages whose spool files are read back.
const QUEUE_SAMPLE: u32 = 200;

/// What the check looks at: this process's own services.
pub struct Target<'a> {
    /// SMTP listeners (unspecified addresses are probed on loopback).
    pub smtp: &'a [SocketAddr],
    /// The console's HTTPS address, if it runs.
    pub console: Option<SocketAddr>,
    /// The queue.
    pub queue: &'a Queue,
    /// The `scan.model` setting and the data directory, when scanning is on.
    pub model: Option<(&'a str, &'a Path)>,
}

/// Runs every check; the first failure, described.
pub async fn check(target: &Target<'_>) -> Result<(), String> {
    for addr in target.smtp {
        let addr = reachable(*addr);
        tokio::time::timeout(PROBE_TIMEOUT, smtp(addr))
            .await
            .map_err(|_| format!("SMTP on {addr}: no greeting within {PROBE_TIMEOUT:?}"))?
            .map_err(|e| format!("SMTP on {addr}: {e}"))?;
    }
    if let Some(addr) = target.console {
        let addr = reachable(addr);
        tokio::time::timeout(PROBE_TIMEOUT, console(addr))
            .await
            .map_err(|_| format!("console on {addr}: no answer within {PROBE_TIMEOUT:?}"))?
            .map_err(|e| format!("console on {addr}: {e}"))?;
    }
    queue(target.queue)
        .await
        .map_err(|e| format!("queue: {e}"))?;
    if let Some((setting, data_dir)) = target.model {
        jianmen_scan::pipeline::load_model(
            setting,
            Some(data_dir),
            crate::upgrade::release::shipped().model.as_deref(),
        )
        .map_err(|e| format!("content model: {e}"))?;
    }
    Ok(())
}

/// Guards a trial from a thread of its own, so that it also fires when the async runtime is
/// stuck: unless `passed` is set within `deadline`, runs `expire` (which records the failure and
/// exits). Whether it fired.
pub fn watchdog(
    deadline: Duration,
    passed: Arc<AtomicBool>,
    expire: impl FnOnce() + Send + 'static,
) -> std::thread::JoinHandle<bool> {
    std::thread::spawn(move || {
        let end = Instant::now() + deadline;
        while Instant::now() < end {
            if passed.load(Ordering::SeqCst) {
                return false;
            }
            std::thread::sleep(Duration::from_millis(50).min(deadline));
        }
        if passed.load(Ordering::SeqCst) {
            return false;
        }
        expire();
        true
    })
}

/// Where to reach a listener bound to `addr` from this host.
fn reachable(addr: SocketAddr) -> SocketAddr {
    match addr {
        SocketAddr::V4(a) if a.ip().is_unspecified() => {
            SocketAddr::from(([127, 0, 0, 1], a.port()))
        }
        SocketAddr::V6(a) if a.ip().is_unspecified() => {
            SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, a.port()))
        }
        a => a,
    }
}

/// A 220 greeting, then QUIT answered with 221.
async fn smtp(addr: SocketAddr) -> Result<(), String> {
    let stream = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    let mut reader = BufReader::new(stream);
    let greeting = reply(&mut reader).await?;
    if !greeting.starts_with("220") {
        return Err(format!("greeting {greeting:?}"));
    }
    reader
        .get_mut()
        .write_all(b"QUIT\r\n")
        .await
        .map_err(|e| e.to_string())?;
    let bye = reply(&mut reader).await?;
    if !bye.starts_with("221") {
        return Err(format!("QUIT answered {bye:?}"));
    }
    Ok(())
}

/// The last line of an SMTP reply (bounded).
async fn reply(reader: &mut BufReader<TcpStream>) -> Result<String, String> {
    for _ in 0..32 {
        let mut line = String::new();
        let n = (&mut *reader)
            .take(1024)
            .read_line(&mut line)
            .await
            .map_err(|e| e.to_string())?;
        if n == 0 {
            return Err("connection closed".into());
        }
        if line.as_bytes().get(3) != Some(&b'-') {
            return Ok(line.trim_end().to_owned());
        }
    }
    Err("reply longer than 32 lines".into())
}

/// A TLS handshake and an HTTP status line for the login page (a 4xx counts: the console
/// answers, though `allow_from` may keep loopback out).
async fn console(addr: SocketAddr) -> Result<(), String> {
    let config = jianmen_gm::tls::client_config().map_err(|e| e.to_string())?;
    let stream = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    let name = rustls_pki_types::ServerName::IpAddress(addr.ip().into());
    let mut tls = tokio_rustls::TlsConnector::from(config)
        .connect(name, stream)
        .await
        .map_err(|e| format!("TLS: {e}"))?;
    tls.write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await
        .map_err(|e| e.to_string())?;
    let mut head = [0u8; 12];
    tls.read_exact(&mut head)
        .await
        .map_err(|e| format!("no HTTP answer: {e}"))?;
    let status = std::str::from_utf8(&head).unwrap_or("");
    match status.strip_prefix("HTTP/1.1 ").map(|s| s.trim()) {
        Some(code) if matches!(code.as_bytes().first(), Some(b'2' | b'3' | b'4')) => Ok(()),
        _ => Err(format!("answered {status:?}")),
    }
}

/// The store lists the queue and each listed message's spool file reads back.
async fn queue(queue: &Queue) -> Result<(), String> {
    let messages = queue
        .store()
        .list(QUEUE_SAMPLE)
        .await
        .map_err(|e| e.to_string())?;
    for m in messages {
        let spool = queue.spool().clone();
        let id = m.id.clone();
        tokio::task::spawn_blocking(move || spool.read(&id))
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| format!("message {}: {e}", m.id))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_watchdog_fires_only_without_a_verdict() {
        let fired = Arc::new(AtomicBool::new(false));
        let passed = Arc::new(AtomicBool::new(false));
        let (f, p) = (fired.clone(), passed.clone());
        let guard = watchdog(Duration::from_secs(5), passed.clone(), move || {
            f.store(true, Ordering::SeqCst)
        });
        std::thread::sleep(Duration::from_millis(100));
        p.store(true, Ordering::SeqCst);
        assert!(!guard.join().unwrap(), "a verdict in time stops it");
        assert!(!fired.load(Ordering::SeqCst));

        let f = fired.clone();
        let guard = watchdog(
            Duration::from_millis(200),
            Arc::new(AtomicBool::new(false)),
            move || f.store(true, Ordering::SeqCst),
        );
        assert!(guard.join().unwrap(), "no verdict: it fires");
        assert!(fired.load(Ordering::SeqCst));
    }
}
