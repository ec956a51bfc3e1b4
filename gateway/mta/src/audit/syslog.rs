//! Forwarding the audit log to a SIEM: every row, in order, as an RFC 5424 message over TCP
//! with RFC 6587 octet-counting framing. The forwarder follows the table (so rows written by
//! the command line are sent too), remembers the last row sent in `data_dir/audit-syslog.seq`,
//! and after an outage resumes where it stopped: the collector may see a row twice, never miss
//! one.

use std::path::PathBuf;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::{AuditLog, Chained};

/// RFC 5424 PRI: facility authpriv (10), severity notice (5).
const PRI: u8 = 10 * 8 + 5;

/// Who the messages say they come from.
#[derive(Debug, Clone)]
pub struct Origin {
    /// HOSTNAME: the gateway's name.
    pub hostname: String,
    /// The structured data element's ID, `jianmen@<private enterprise number>` (RFC 5424
    /// §6.3.2 wants a number IANA assigned to whoever defines the element: the site's own, or
    /// the vendor's), from `audit.syslog_enterprise_number`. Without one, the fields are sent
    /// in the message text instead, with the same `name="value"` quoting.
    pub sd_id: Option<String>,
}

/// Escapes an SD-PARAM value (RFC 5424 §6.3.3).
fn sd_value(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for c in v.chars() {
        if matches!(c, '"' | '\\' | ']') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// One row as an RFC 5424 message, framed with its length.
pub fn frame(row: &Chained, origin: &Origin) -> Vec<u8> {
    let e = &row.entry;
    let fields = format!(
        "seq=\"{seq}\" actor=\"{actor}\" action=\"{action}\" hash=\"{hash}\"",
        seq = e.seq,
        actor = sd_value(&e.actor),
        action = sd_value(&e.action),
        hash = sd_value(&row.hash),
    );
    let detail = e.detail.replace(['\r', '\n'], " ");
    let (data, text) = match &origin.sd_id {
        Some(id) => (format!("[{id} {fields}]"), detail),
        None => ("-".to_owned(), format!("{fields} {detail}")),
    };
    let msg = format!(
        "<{PRI}>1 {at} {host} jianmen - AUDIT {data} {text}",
        at = e.at,
        host = origin.hostname,
    );
    format!("{} {msg}", msg.len()).into_bytes()
}

/// Sends rows after the last one forwarded, forever; reconnects with backoff.
pub async fn forward(log: AuditLog, collector: String, origin: Origin, state: PathBuf) {
    let mut sent: i64 = std::fs::read_to_string(&state)
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0);
    let mut backoff = Duration::from_secs(1);
    loop {
        match send_new(&log, &collector, &origin, &state, &mut sent).await {
            Ok(()) => backoff = Duration::from_secs(1),
            Err(e) => {
                tracing::warn!(collector, error = %e, "audit syslog forwarding interrupted");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(60));
            }
        }
    }
}

/// One connection: sends what is new, then waits for more until the collector goes away.
/// `sent` advances only after a whole batch was written and flushed, so a batch cut short is
/// sent again on the next connection. Plain TCP syslog has no acknowledgements: a collector
/// that dies after the kernel took the bytes loses them — a collector closing cleanly (EOF,
/// watched between batches) does not.
async fn send_new(
    log: &AuditLog,
    collector: &str,
    origin: &Origin,
    state: &PathBuf,
    sent: &mut i64,
) -> std::io::Result<()> {
    let stream = tokio::time::timeout(Duration::from_secs(10), TcpStream::connect(collector))
        .await
        .map_err(|_| std::io::Error::other("connect timed out"))??;
    let (mut reader, mut writer) = stream.into_split();
    let mut sink = [0u8; 512];
    loop {
        let rows = log
            .chained_after(*sent, 500)
            .await
            .map_err(std::io::Error::other)?;
        if rows.is_empty() {
            tokio::select! {
                read = reader.read(&mut sink) => {
                    if read? == 0 {
                        return Err(std::io::Error::other("collector closed the connection"));
                    }
                }
                () = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
            continue;
        }
        // A collector that closed while we slept is noticed before the batch, not after: bytes
        // written to a closed connection would count as sent and be lost.
        match reader.try_read(&mut sink) {
            Ok(0) => return Err(std::io::Error::other("collector closed the connection")),
            Err(e) if e.kind() != std::io::ErrorKind::WouldBlock => return Err(e),
            _ => {}
        }
        let mut batch = Vec::new();
        for row in &rows {
            batch.extend_from_slice(&frame(row, origin));
        }
        tokio::time::timeout(Duration::from_secs(30), async {
            writer.write_all(&batch).await?;
            writer.flush().await
        })
        .await
        .map_err(|_| std::io::Error::other("write timed out"))??;
        if let Some(last) = rows.last() {
            *sent = last.entry.seq;
        }
        if let Err(e) = std::fs::write(state, sent.to_string()) {
            tracing::warn!(path = %state.display(), error = %e, "cannot record audit syslog position");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_are_rfc_5424_with_escaped_structured_data() {
        let row = Chained {
            entry: super::super::Entry {
                seq: 7,
                at: "2026-11-24T08:00:00.000Z".into(),
                actor: "console:sec\"ops]".into(),
                action: "quarantine.release".into(),
                detail: "01ID to a@example.com\r\ninjected".into(),
            },
            algorithm: "sm3".into(),
            prev: String::new(),
            hash: "ab".into(),
        };
        let origin = |sd_id: Option<&str>| Origin {
            hostname: "gw.test".into(),
            sd_id: sd_id.map(str::to_owned),
        };
        let f = String::from_utf8(frame(&row, &origin(Some("jianmen@54321")))).unwrap();
        let (len, msg) = f.split_once(' ').unwrap();
        assert_eq!(len.parse::<usize>().unwrap(), msg.len());
        assert!(msg.starts_with(
            "<85>1 2026-11-24T08:00:00.000Z gw.test jianmen - AUDIT [jianmen@54321 seq=\"7\""
        ));
        assert!(msg.contains("actor=\"console:sec\\\"ops\\]\""), "{msg}");
        assert!(
            !msg.contains('\n') && msg.ends_with("a@example.com  injected"),
            "{msg}"
        );
        // Without an enterprise number of its own, no made-up SD-ID: the fields go in the text.
        let f = String::from_utf8(frame(&row, &origin(None))).unwrap();
        let (_, msg) = f.split_once(' ').unwrap();
        assert!(
            msg.starts_with("<85>1 2026-11-24T08:00:00.000Z gw.test jianmen - AUDIT - seq=\"7\""),
            "{msg}"
        );
        assert!(!msg.contains("[jianmen"), "{msg}");
    }

    #[tokio::test]
    async fn every_row_reaches_the_collector_in_order_across_a_reconnect() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.db");
        let log = AuditLog::open(&path).await.unwrap();
        log.append("cli:root", "queue.delete", "one").await.unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let forwarder = tokio::spawn(forward(
            AuditLog::open(&path).await.unwrap(),
            addr,
            Origin {
                hostname: "gw.test".into(),
                sd_id: None,
            },
            dir.path().join("audit-syslog.seq"),
        ));
        // Generous bounds: under QEMU on a busy machine a one-second poll can take several.
        let read_until = |mut conn: TcpStream, want: usize| async move {
            let mut got = String::new();
            let mut buf = [0u8; 4096];
            while got.matches("<85>1 ").count() < want {
                let n = tokio::time::timeout(Duration::from_secs(60), conn.read(&mut buf))
                    .await
                    .unwrap()
                    .unwrap();
                assert!(n > 0, "collector connection closed early: {got}");
                got.push_str(&String::from_utf8_lossy(&buf[..n]));
            }
            got
        };
        let (conn, _) = listener.accept().await.unwrap();
        log.append("console:sec", "quarantine.release", "two")
            .await
            .unwrap();
        let got = read_until(conn, 2).await;
        assert!(
            got.find("seq=\"1\"").unwrap() < got.find("seq=\"2\"").unwrap(),
            "{got}"
        );
        // The collector goes away (connection dropped above); rows written meanwhile follow on
        // the next connection.
        log.append("cli:root", "queue.flush", "three")
            .await
            .unwrap();
        let (conn, _) = tokio::time::timeout(Duration::from_secs(60), listener.accept())
            .await
            .unwrap()
            .unwrap();
        let got = read_until(conn, 1).await;
        assert!(got.contains("seq=\"3\""), "{got}");
        forwarder.abort();
    }
}
