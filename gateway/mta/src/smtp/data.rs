//! DATA and BDAT (RFC 3030): receive the message, stamp our `Received:` trace header, check it is
//! sane (size, NUL bytes, header count, hop count) and hand it to the inbox, whose reply — 250
//! only once spooled — ends the transaction.

use super::io::{ReadError, Reservation};
use super::reply::Reply;
use super::state::{Chunks, Flow, Session, Transaction};
use jianmen_scan::{Direction, Envelope};

fn no_memory() -> Reply {
    Reply::new(
        452,
        "4.3.1",
        "Insufficient system resources, try again later",
    )
}

/// Initial buffer reservation; messages grow past it as needed.
const INITIAL_BUFFER: usize = 64 * 1024;

impl Session {
    /// Checks that a transaction with recipients is open, or says why not.
    fn ready_for_data(&self) -> Result<(), Reply> {
        match &self.tx {
            None => Err(Reply::new(503, "5.5.1", "Need MAIL command first")),
            Some(tx) if tx.rcpts.is_empty() => {
                Err(Reply::new(503, "5.5.1", "Need RCPT command first"))
            }
            Some(_) => Ok(()),
        }
    }

    /// Handles DATA.
    pub(super) async fn data(&mut self) -> Flow {
        if let Err(reply) = self.ready_for_data() {
            return self.fail(reply);
        }
        if self.tx.as_ref().is_some_and(|tx| tx.bdat.is_some()) {
            return self.fail(Reply::new(503, "5.5.1", "DATA not allowed after BDAT"));
        }
        self.send(&Reply::new(354, "", "End data with <CR><LF>.<CR><LF>"));
        if self.conn.flush().await.is_err() {
            return Flow::Close;
        }
        let mut buf = Vec::with_capacity(INITIAL_BUFFER);
        let trace_len = self.write_trace_header(&mut buf);
        let max = self.ctx.limits.max_message_size;
        let mut memory = self.memory.reserve();
        match self.conn.read_data(&mut buf, max, &mut memory).await {
            Ok(outcome) if outcome.no_memory => {
                self.tx = None;
                self.ctx.metrics.rejected("memory");
                self.fail(no_memory())
            }
            Ok(outcome) if outcome.too_big => {
                self.tx = None;
                self.ctx.metrics.rejected("size");
                self.fail(Reply::new(
                    552,
                    "5.3.4",
                    "Message size exceeds fixed maximum message size",
                ))
            }
            Ok(_) => self.finish(buf, trace_len, memory).await,
            Err(e) => self.lost_in_body(e).await,
        }
    }

    /// Handles one BDAT chunk; the chunk is always read, even when it is refused.
    pub(super) async fn bdat(&mut self, size: usize, last: bool) -> Flow {
        let refusal = self.ready_for_data().err();
        if let Some(reply) = refusal {
            let mut sink = Vec::new();
            let mut nothing = self.memory.reserve();
            if let Err(e) = self.conn.read_chunk(&mut sink, size, 0, &mut nothing).await {
                return self.lost_in_body(e).await;
            }
            return self.fail(reply);
        }
        let mut chunks = match self.tx.as_mut().and_then(|tx| tx.bdat.take()) {
            Some(c) => c,
            None => {
                let mut buf = Vec::with_capacity(size.min(INITIAL_BUFFER));
                let trace_len = self.write_trace_header(&mut buf);
                let memory = self.memory.reserve();
                Chunks {
                    buf,
                    trace_len,
                    memory,
                }
            }
        };
        let limit = chunks.trace_len + self.ctx.limits.max_message_size;
        let read = self
            .conn
            .read_chunk(&mut chunks.buf, size, limit, &mut chunks.memory)
            .await;
        let fits = match read {
            Ok(fits) => fits,
            Err(e) => return self.lost_in_body(e).await,
        };
        if !fits {
            self.tx = None;
            if chunks.buf.len().saturating_add(size) <= limit {
                self.ctx.metrics.rejected("memory");
                return self.fail(no_memory());
            }
            self.ctx.metrics.rejected("size");
            return self.fail(Reply::new(
                552,
                "5.3.4",
                "Message size exceeds fixed maximum message size",
            ));
        }
        if !last {
            if let Some(tx) = self.tx.as_mut() {
                tx.bdat = Some(chunks);
            }
            self.send(&Reply::new(250, "2.0.0", format!("{size} octets received")));
            return Flow::Continue;
        }
        self.finish(chunks.buf, chunks.trace_len, chunks.memory)
            .await
    }

    /// The connection broke or timed out mid-message: nothing was accepted.
    async fn lost_in_body(&mut self, e: ReadError) -> Flow {
        self.tx = None;
        self.end_on_read_error(e).await;
        Flow::Close
    }

    /// Checks the complete message and hands it to the inbox; `memory` is held until the inbox
    /// has it.
    async fn finish(
        &mut self,
        mut message: Vec<u8>,
        trace_len: usize,
        memory: Reservation,
    ) -> Flow {
        let Some(tx) = self.tx.take() else {
            return self.fail(Reply::new(503, "5.5.1", "Need MAIL command first"));
        };
        self.messages += 1;
        pair_bare_cr(&mut message, trace_len);
        let body = &message[trace_len..];
        if body.contains(&0) {
            self.ctx.metrics.rejected("nul");
            return self.fail(Reply::new(554, "5.6.0", "Message contains NUL bytes"));
        }
        let shape = HeaderShape::of(body);
        if shape.received > self.ctx.limits.max_hops {
            self.ctx.metrics.rejected("loop");
            return self.fail(Reply::new(
                554,
                "5.4.6",
                "Too many hops, mail loop detected",
            ));
        }
        if shape.fields > self.ctx.limits.max_header_fields {
            self.ctx.metrics.rejected("headers");
            return self.fail(Reply::new(552, "5.3.4", "Too many header fields"));
        }
        if shape.longest_line > MAX_HEADER_LINE {
            self.ctx.metrics.rejected("header_line");
            return self.fail(Reply::new(
                554,
                "5.6.0",
                "Header line longer than 998 characters (RFC 5322)",
            ));
        }
        let envelope = self.envelope(tx);
        let reply = self.ctx.inbox.accept(envelope, message, trace_len).await;
        drop(memory);
        if reply.is_positive() {
            // A message went through: the commands that led to it were not junk.
            self.junk = 0;
            self.send(&reply);
            Flow::Continue
        } else {
            self.fail(reply)
        }
    }

    /// The envelope of a finished transaction. Mail from an internal relay is outbound until
    /// the inbox, which knows the local domains, finds every recipient local (internal); the
    /// client it names is the one its XFORWARD reported, when it did.
    fn envelope(&self, tx: Transaction) -> Envelope {
        let forwarded = tx.forwarded;
        Envelope {
            queue_id: tx.queue_id,
            client_ip: forwarded.addr.unwrap_or(self.client_ip),
            helo: forwarded
                .helo
                .or_else(|| self.helo.clone())
                .unwrap_or_default(),
            mail_from: tx.mail_from,
            rcpts: tx.rcpts,
            tls: self.tls,
            smtputf8: tx.smtputf8,
            direction: if self.relay {
                Direction::Outbound
            } else {
                Direction::Inbound
            },
            login: forwarded.login,
        }
    }

    /// Writes our `Received:` header (RFC 5321 §4.4) into `buf`; returns its length.
    fn write_trace_header(&self, buf: &mut Vec<u8>) -> usize {
        let Some(tx) = &self.tx else { return 0 };
        let protocol = match (tx.smtputf8, self.esmtp, self.tls) {
            (true, _, true) => "UTF8SMTPS",
            (true, _, false) => "UTF8SMTP",
            (false, true, true) => "ESMTPS",
            (false, true, false) => "ESMTP",
            (false, false, true) => "SMTPS",
            (false, false, false) => "SMTP",
        };
        let helo: String = self
            .helo
            .as_deref()
            .unwrap_or("unknown")
            .chars()
            .filter(|c| !c.is_control() && *c != '(' && *c != ')')
            .collect();
        let using = match &self.tls_cipher {
            Some(tls) => format!("\r\n\t(using {tls})"),
            None => String::new(),
        };
        let mut header = format!(
            "Received: from {helo} ([{}]){using}\r\n\tby {} (Jianmen) with {protocol} id {}",
            self.client_ip, self.ctx.hostname, tx.queue_id
        );
        if let [rcpt] = tx.rcpts.as_slice() {
            header.push_str(&format!("\r\n\tfor <{rcpt}>"));
        }
        header.push_str(&format!("; {}\r\n", chrono::Utc::now().to_rfc2822()));
        buf.extend_from_slice(header.as_bytes());
        header.len()
    }
}

/// Turns each CR of `message[from..]` that does not start a CRLF into CRLF (RFC 5321 §2.3.8:
/// CR and LF travel only as a pair). Left alone, a bare CR could end a line — or, as
/// `<CR>.<CR>`, the data — for a lax server downstream: SMTP smuggling.
pub fn pair_bare_cr(message: &mut Vec<u8>, from: usize) {
    let is_bare = |m: &[u8], i: usize| m[i] == b'\r' && m.get(i + 1) != Some(&b'\n');
    if !(from..message.len()).any(|i| is_bare(message, i)) {
        return;
    }
    let mut paired = Vec::with_capacity(message.len() + 64);
    paired.extend_from_slice(&message[..from]);
    for i in from..message.len() {
        paired.push(message[i]);
        if is_bare(message, i) {
            paired.push(b'\n');
        }
    }
    *message = paired;
}

/// Longest header line RFC 5322 §2.1.1 allows, without its CRLF. Downstream servers refuse
/// longer ones, and a message they refuse on every attempt would only bounce days later.
pub const MAX_HEADER_LINE: usize = 998;

/// Counts taken from a message's header section.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct HeaderShape {
    /// Header fields (continuation lines not counted).
    pub fields: usize,
    /// `Received:` fields.
    pub received: usize,
    /// Length of the longest header line, without its line end.
    pub longest_line: usize,
}

impl HeaderShape {
    /// Scans the header section (up to the first empty line).
    pub fn of(message: &[u8]) -> Self {
        let mut shape = HeaderShape::default();
        for line in message.split(|&b| b == b'\n') {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if line.is_empty() {
                break;
            }
            shape.longest_line = shape.longest_line.max(line.len());
            if line[0] == b' ' || line[0] == b'\t' {
                continue;
            }
            shape.fields += 1;
            if line.len() >= 9 && line[..9].eq_ignore_ascii_case(b"received:") {
                shape.received += 1;
            }
        }
        shape
    }
}

#[cfg(test)]
mod tests {
    use super::{HeaderShape, MAX_HEADER_LINE, pair_bare_cr};

    /// Finding 4 of the hardening review: a bare CR went to downstream servers as it came, so
    /// `<CR>.<CR>` could end the data early for a lax one.
    #[test]
    fn bare_cr_becomes_crlf_and_crlf_stays() {
        let mut m = b"Received: x\r\nSubject: a\r\n\r\nline\r.\rMAIL FROM:<x@y>\r\nend\r".to_vec();
        pair_bare_cr(&mut m, 13);
        assert_eq!(
            m,
            b"Received: x\r\nSubject: a\r\n\r\nline\r\n.\r\nMAIL FROM:<x@y>\r\nend\r\n"
        );
        let mut clean = b"a\r\nb\r\n".to_vec();
        pair_bare_cr(&mut clean, 0);
        assert_eq!(clean, b"a\r\nb\r\n");
    }

    /// Finding 2 of the hardening review: a 1 MB unfolded header line was relayed as it was.
    #[test]
    fn header_shape_measures_the_longest_header_line_only() {
        let long = format!(
            "Subject: {}\r\n\tfolded\r\n\r\n{}\r\n",
            "x".repeat(MAX_HEADER_LINE - 9),
            "b".repeat(5000)
        );
        assert_eq!(
            HeaderShape::of(long.as_bytes()).longest_line,
            MAX_HEADER_LINE
        );
        let over = format!("To: {}\n\nbody\n", "y".repeat(1_000_000));
        assert_eq!(HeaderShape::of(over.as_bytes()).longest_line, 1_000_004);
    }

    #[test]
    fn header_shape_counts_fields_and_hops() {
        let m = b"Received: a\r\n\tb\r\nRECEIVED: c\r\nSubject: x\r\n\r\nReceived: body\r\n";
        assert_eq!(
            HeaderShape::of(m),
            HeaderShape {
                fields: 3,
                received: 2,
                longest_line: 11,
            }
        );
    }
}
