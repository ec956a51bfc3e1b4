//! One SMTP session's command loop: reads commands, enforces ordering and limits, and dispatches
//! each phase to its module (`ehlo`, `mail`, `rcpt`, `data`); the state they share is in
//! [`super::state`].

use std::borrow::Cow;

use smtp_proto::{Error as ProtoError, Request};
use tokio::time::Instant;

use super::io::{Line, ReadError};
use super::reply::Reply;
use super::state::{Flow, Session};

impl Session {
    /// Runs the session to its end.
    pub async fn run(mut self) {
        let greeting = Reply::new(220, "", format!("{} ESMTP Jianmen", self.ctx.hostname));
        self.send(&greeting);
        loop {
            if !self.conn.has_buffered_input() && self.conn.flush().await.is_err() {
                return;
            }
            let max = self.ctx.limits.max_line_length;
            self.conn.set_idle(self.idle_timeout());
            let idle = self.tx.is_none();
            let read = tokio::select! {
                read = self.conn.read_line(max) => Some(read),
                _ = self.shutdown.wait_for(|stop| *stop), if idle => None,
            };
            let line = match read {
                Some(Ok(line)) => line,
                None => {
                    self.send(&Reply::new(
                        421,
                        "4.3.2",
                        "Service shutting down, try again later",
                    ));
                    let _ = self.conn.flush().await;
                    self.conn.shutdown().await;
                    return;
                }
                Some(Err(e)) => {
                    self.end_on_read_error(e).await;
                    return;
                }
            };
            self.commands += 1;
            let flow = match line {
                Line::TooLong => self.fail(Reply::new(500, "5.5.2", "Line too long")),
                Line::Complete(line) => self.command(&line).await,
            };
            if flow == Flow::Close {
                let _ = self.conn.flush().await;
                self.conn.shutdown().await;
                return;
            }
        }
    }

    /// Counts a greeting as junk when the client has greeted already.
    fn regreeting(&mut self) -> Option<Flow> {
        if self.helo.is_some() {
            self.junk()
        } else {
            None
        }
    }

    /// Says goodbye when the client timed out; stays silent when it vanished.
    pub(super) async fn end_on_read_error(&mut self, e: ReadError) {
        if let ReadError::Timeout = e {
            self.send(&Reply::new(
                421,
                "4.4.2",
                "Timeout exceeded, closing connection",
            ));
            let _ = self.conn.flush().await;
        }
        self.conn.shutdown().await;
    }

    async fn command(&mut self, line: &[u8]) -> Flow {
        if line.contains(&0) {
            return self.fail(Reply::new(500, "5.5.2", "NUL byte in command"));
        }
        // Postfix's XFORWARD is not in smtp-proto's grammar.
        if line.len() >= 9 && line[..9].eq_ignore_ascii_case(b"XFORWARD ") {
            let args = String::from_utf8_lossy(&line[9..]);
            return self.xforward(args.trim_end_matches(['\r', '\n']));
        }
        let request = match Request::parse(&mut line.iter()) {
            Ok(r) => r.into_owned(),
            Err(e) => return self.fail(protocol_error_reply(&e)),
        };
        match request {
            // Greeting again and transactions that never carry a message count as junk: a
            // session that loops on them only holds a slot. (The first greeting, and the one
            // after STARTTLS, are not junk.)
            Request::Ehlo { host } => match self.regreeting() {
                Some(flow) => flow,
                None => self.ehlo(host, true),
            },
            Request::Helo { host } => match self.regreeting() {
                Some(flow) => flow,
                None => self.ehlo(host, false),
            },
            Request::StartTls => self.starttls().await,
            Request::Mail { from } => match self.junk() {
                Some(flow) => flow,
                None => self.mail(from).await,
            },
            Request::Rcpt { to } => self.rcpt(to).await,
            Request::Data => self.data().await,
            Request::Bdat {
                chunk_size,
                is_last,
            } => self.bdat(chunk_size, is_last).await,
            Request::Rset => {
                if let Some(flow) = self.junk() {
                    return flow;
                }
                self.tx = None;
                self.forwarded = Default::default();
                self.send(&Reply::new(250, "2.0.0", "Ok"));
                Flow::Continue
            }
            Request::Noop { .. } => {
                if let Some(flow) = self.junk() {
                    return flow;
                }
                self.send(&Reply::new(250, "2.0.0", "Ok"));
                Flow::Continue
            }
            Request::Quit => {
                self.send(&Reply::new(221, "2.0.0", "Bye"));
                Flow::Close
            }
            Request::Vrfy { .. } | Request::Expn { .. } => {
                if let Some(flow) = self.junk() {
                    return flow;
                }
                self.fail(Reply::new(502, "5.5.1", "VRFY and EXPN are disabled"))
            }
            Request::Help { .. } => {
                if let Some(flow) = self.junk() {
                    return flow;
                }
                self.send(&Reply::new(
                    214,
                    "2.0.0",
                    "Commands: EHLO HELO MAIL RCPT DATA BDAT RSET NOOP QUIT STARTTLS",
                ));
                Flow::Continue
            }
            Request::Lhlo { .. }
            | Request::Auth { .. }
            | Request::Etrn { .. }
            | Request::Atrn { .. }
            | Request::Burl { .. } => {
                self.fail(Reply::new(502, "5.5.1", "Command not implemented"))
            }
        }
    }

    /// STARTTLS (RFC 3207): answer, drop any pipelined plaintext, handshake, forget the session
    /// state learnt before encryption.
    async fn starttls(&mut self) -> Flow {
        let Some(acceptor) = self.ctx.tls.clone() else {
            return self.fail(Reply::new(502, "5.5.1", "STARTTLS not available"));
        };
        if self.tls {
            return self.fail(Reply::new(503, "5.5.1", "TLS already active"));
        }
        if self.tx.is_some() {
            return self.fail(Reply::new(
                503,
                "5.5.1",
                "STARTTLS not allowed in a transaction",
            ));
        }
        self.send(&Reply::new(220, "2.0.0", "Ready to start TLS"));
        if self.conn.flush().await.is_err() {
            return Flow::Close;
        }
        self.conn.discard_buffered_input();
        let Ok(stream) = self.conn.take_stream() else {
            return Flow::Close;
        };
        let handshake = tokio::time::timeout_at(
            (Instant::now() + self.ctx.limits.idle_timeout()).min(self.conn.deadline()),
            acceptor.accept(stream),
        )
        .await;
        match handshake {
            Ok(Ok((tls, negotiated))) => {
                tracing::debug!(client = %self.client_ip, tls = %negotiated, "TLS established");
                self.tls_cipher = Some(negotiated);
                self.conn.put_stream(Box::new(tls));
                self.tls = true;
                self.helo = None;
                self.esmtp = false;
                self.forwarded = Default::default();
                Flow::Continue
            }
            Ok(Err(e)) => {
                tracing::info!(client = %self.client_ip, error = %e, "TLS handshake failed");
                Flow::Close
            }
            Err(_) => Flow::Close,
        }
    }
}

/// Maps a command parse failure to its reply.
fn protocol_error_reply(e: &ProtoError) -> Reply {
    match e {
        ProtoError::UnknownCommand => Reply::new(500, "5.5.2", "Command unrecognized"),
        ProtoError::InvalidSenderAddress => Reply::new(501, "5.1.7", "Bad sender address syntax"),
        ProtoError::InvalidRecipientAddress => {
            Reply::new(501, "5.1.3", "Bad recipient address syntax")
        }
        ProtoError::SyntaxError { syntax } => {
            Reply::new(501, "5.5.2", format!("Syntax error, expected: {syntax}"))
        }
        ProtoError::InvalidParameter { param } => {
            Reply::new(501, "5.5.4", format!("Invalid parameter {param}"))
        }
        ProtoError::UnsupportedParameter { param } => {
            let param: Cow<'_, str> = if param.len() > 64 {
                Cow::Owned(param.chars().take(64).collect())
            } else {
                Cow::Borrowed(param)
            };
            Reply::new(555, "5.5.4", format!("Unsupported parameter {param}"))
        }
        ProtoError::ResponseTooLong => Reply::new(500, "5.5.2", "Line too long"),
        ProtoError::NeedsMoreData { .. } | ProtoError::InvalidResponse { .. } => {
            Reply::new(500, "5.5.2", "Syntax error")
        }
    }
}
