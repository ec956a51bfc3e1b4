//! Delivery status notifications (RFC 3464): the bounce sent to the sender when recipients fail
//! permanently or expire in the queue.

use super::store::{QueuedMessage, RcptOutcome};

/// Most bytes of the original header section quoted in a bounce.
const MAX_QUOTED_HEADERS: usize = 64 * 1024;

/// Builds the bounce message for `failed` recipients of `original` (whose spool bytes are
/// `data`). The caller queues it with a null sender to `original.mail_from`.
pub fn build(
    hostname: &str,
    dsn_id: &str,
    original: &QueuedMessage,
    data: &[u8],
    failed: &[RcptOutcome],
) -> Vec<u8> {
    let boundary = format!("{dsn_id}/{hostname}");
    let date = chrono::Utc::now().to_rfc2822();
    let arrival = chrono::DateTime::from_timestamp(original.received_at, 0)
        .map(|d| d.to_rfc2822())
        .unwrap_or_else(|| date.clone());
    let mut text = String::with_capacity(2048);
    text.push_str(&format!(
        "From: Mail Delivery System <MAILER-DAEMON@{hostname}>\r\n\
         To: <{to}>\r\n\
         Subject: Undelivered Mail Returned to Sender / 退信通知\r\n\
         Date: {date}\r\n\
         Message-ID: <{dsn_id}@{hostname}>\r\n\
         Auto-Submitted: auto-replied\r\n\
         MIME-Version: 1.0\r\n\
         Content-Type: multipart/report; report-type=delivery-status;\r\n\
         \tboundary=\"{boundary}\"\r\n\
         \r\n\
         This is a MIME-encapsulated message.\r\n\
         \r\n\
         --{boundary}\r\n\
         Content-Type: text/plain; charset=utf-8\r\n\
         Content-Transfer-Encoding: 8bit\r\n\
         \r\n\
         This is the mail system at host {hostname}.\r\n\
         Your message could not be delivered to one or more recipients.\r\n\
         您的邮件未能投递给以下收件人。\r\n\
         \r\n",
        to = original.mail_from,
    ));
    for f in failed {
        text.push_str(&format!("<{}>: {}\r\n", f.address, one_line(&f.reply)));
    }
    text.push_str(&format!(
        "\r\n--{boundary}\r\n\
         Content-Type: message/delivery-status\r\n\
         \r\n\
         Reporting-MTA: dns; {hostname}\r\n\
         X-Jianmen-Queue-ID: {id}\r\n\
         Arrival-Date: {arrival}\r\n",
        id = original.id,
    ));
    for f in failed {
        text.push_str(&format!(
            "\r\nFinal-Recipient: rfc822; {}\r\n\
             Action: failed\r\n\
             Status: {}\r\n\
             Diagnostic-Code: smtp; {}\r\n",
            f.address,
            status_of(&f.reply),
            one_line(&f.reply)
        ));
    }
    text.push_str(&format!(
        "\r\n--{boundary}\r\nContent-Type: text/rfc822-headers\r\n\r\n"
    ));
    let mut out = text.into_bytes();
    out.extend_from_slice(header_section(data));
    out.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    out
}

/// The header section of `data` (without the empty line), bounded.
fn header_section(data: &[u8]) -> &[u8] {
    let end = find(data, b"\r\n\r\n")
        .map(|i| i + 2)
        .unwrap_or(data.len())
        .min(MAX_QUOTED_HEADERS);
    &data[..end]
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// A mail from the gateway to its administrators (alerts): `subject` and `body` (CRLF lines)
/// as UTF-8 text, marked auto-generated so that nobody's auto-reply answers it.
pub fn administrators_alert(hostname: &str, id: &str, subject: &str, body: &str) -> Vec<u8> {
    gateway_mail(hostname, id, None, subject, body)
}

/// A mail from the gateway, as [`administrators_alert`], addressed `to` one person when given.
pub fn gateway_mail(
    hostname: &str,
    id: &str,
    to: Option<&str>,
    subject: &str,
    body: &str,
) -> Vec<u8> {
    use base64::Engine;
    let subject = base64::engine::general_purpose::STANDARD.encode(one_line(subject));
    let date = chrono::Utc::now().to_rfc2822();
    let to = to.map_or(String::new(), |a| format!("To: <{}>\r\n", one_line(a)));
    format!(
        "From: Jianmen <MAILER-DAEMON@{hostname}>\r\n\
         {to}Subject: =?UTF-8?B?{subject}?=\r\n\
         Date: {date}\r\n\
         Message-ID: <{id}@{hostname}>\r\n\
         Auto-Submitted: auto-generated\r\n\
         MIME-Version: 1.0\r\n\
         Content-Type: text/plain; charset=utf-8\r\n\
         Content-Transfer-Encoding: 8bit\r\n\
         \r\n\
         {body}"
    )
    .into_bytes()
}

/// `s` on one line (control characters as spaces), at most 500 characters: what a report
/// may quote of a reply or a reason.
pub(crate) fn one_line(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(500)
        .collect()
}

/// The enhanced status code found in a reply, or a generic permanent failure.
fn status_of(reply: &str) -> String {
    reply
        .split_whitespace()
        .find(|w| {
            let parts: Vec<&str> = w.split('.').collect();
            parts.len() == 3
                && matches!(parts[0], "4" | "5")
                && parts
                    .iter()
                    .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
        })
        .map(|s| format!("5{}", &s[1..]))
        .unwrap_or_else(|| "5.0.0".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::queue::store::{MessageKind, MessageState, RcptStatus};

    #[test]
    fn bounce_names_each_failed_recipient_and_quotes_headers_only() {
        let original = QueuedMessage {
            id: "01ABCDEFGHJKMNPQRSTVWXYZ00".into(),
            mail_from: "sender@outside.example".into(),
            size: 0,
            received_at: 1_700_000_000,
            client_ip: "127.0.0.1".into(),
            helo: "x".into(),
            smtputf8: false,
            state: MessageState::Active,
            hold_reason: None,
            kind: MessageKind::Mail,
            attempts: 1,
            next_attempt: 0,
            rcpts: vec![],
        };
        let failed = [RcptOutcome {
            address: "bob@example.com".into(),
            status: RcptStatus::Failed,
            reply: "550 5.1.1 <bob@example.com>: User unknown".into(),
        }];
        let data = b"Subject: hello\r\nFrom: a@b\r\n\r\nsecret body\r\n";
        let dsn = String::from_utf8(build("mx.test", "DSNID", &original, data, &failed)).unwrap();
        assert!(dsn.contains("Final-Recipient: rfc822; bob@example.com\r\n"));
        assert!(dsn.contains("Status: 5.1.1\r\n"));
        assert!(dsn.contains("Subject: hello\r\n"));
        assert!(!dsn.contains("secret body"));
        assert!(dsn.contains("report-type=delivery-status"));
        assert_eq!(status_of("451 4.4.1 timeout"), "5.4.1");
        assert_eq!(status_of("connection refused"), "5.0.0");
    }
}
