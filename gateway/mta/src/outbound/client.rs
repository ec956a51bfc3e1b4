//! The SMTP client that hands messages to the next hop: greeting, EHLO (HELO fallback),
//! STARTTLS by policy, pipelined MAIL/RCPT, DATA with dot-stuffing, and per-recipient replies.
//! Replies from the next hop are bounded in line length and line count.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rustls::ClientConfig;
use rustls_pki_types::ServerName;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use crate::config::TlsPolicy;
use crate::smtp::io::Io;

/// Longest reply line accepted from a server.
const MAX_REPLY_LINE: u64 = 4096;
/// Most lines in one multi-line reply.
const MAX_REPLY_LINES: usize = 100;

/// A reply from the next hop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerReply {
    /// The three-digit code.
    pub code: u16,
    /// All lines joined by spaces, without codes.
    pub text: String,
}

impl ServerReply {
    /// 2xx.
    pub fn is_positive(&self) -> bool {
        (200..300).contains(&self.code)
    }
    /// 5xx.
    pub fn is_permanent(&self) -> bool {
        (500..600).contains(&self.code)
    }
}

impl std::fmt::Display for ServerReply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.code, self.text)
    }
}

/// A failure that affects every recipient of the attempt.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Network, TLS or protocol failure: try again later.
    #[error("{0}")]
    Temporary(String),
    /// The server refused permanently (e.g. 5xx to MAIL FROM or to the data).
    #[error("{0}")]
    Permanent(String),
    /// The connection failed before the transaction began: on a reused connection this means
    /// the peer had closed it, and the transaction can be tried again on a new one.
    #[error("{0}")]
    Stale(String),
}

/// Marks a failure of a transaction's first exchange as [`ClientError::Stale`].
fn stale(e: ClientError) -> ClientError {
    match e {
        ClientError::Temporary(m) => ClientError::Stale(m),
        other => other,
    }
}

/// What the server advertised in EHLO.
#[derive(Debug, Default, Clone)]
struct Extensions {
    pipelining: bool,
    starttls: bool,
    smtputf8: bool,
    eightbitmime: bool,
    size: Option<u64>,
    /// SASL mechanisms offered (upper case).
    auth: Vec<String>,
}

/// Settings shared by all client connections.
#[derive(Clone)]
pub struct ClientSettings {
    /// Name we give in EHLO.
    pub helo: String,
    /// TCP connect timeout.
    pub connect_timeout: Duration,
    /// Timeout for each reply.
    pub command_timeout: Duration,
    /// TLS settings for STARTTLS where no server proof is asked.
    pub tls: Arc<ClientConfig>,
}

/// The handshake after STARTTLS.
enum Handshake {
    /// TLS (international or RFC 8998 suites) with this client configuration.
    Tls(Arc<ClientConfig>),
    /// TLCP (GB/T 38636), for downstreams that speak only TLCP; with pins, only to a server
    /// whose signing certificate carries one of these public keys.
    Tlcp(Vec<[u8; 32]>),
}

/// One open connection to a next hop, ready for a transaction.
pub struct Client {
    stream: BufReader<Box<dyn Io>>,
    ext: Extensions,
    settings: ClientSettings,
    /// The server's name and address, for messages.
    pub peer: String,
    /// Transactions completed on this connection.
    pub transactions: usize,
    /// Whether the connection is encrypted (after STARTTLS).
    encrypted: bool,
}

/// The result of one transaction: one reply (or error text) per recipient, in order.
pub type RcptReplies = Vec<(String, ServerReply)>;

impl Client {
    /// Connects, reads the greeting, says EHLO and applies the STARTTLS policy, handshaking
    /// with `proof`: the TLS client configuration (which checks what the policy asks of the
    /// server) and, for TLCP, the public keys its signing certificate may carry.
    pub async fn connect(
        addr: SocketAddr,
        tls_name: &str,
        policy: TlsPolicy,
        proof: (&Arc<ClientConfig>, &[[u8; 32]]),
        settings: &ClientSettings,
    ) -> Result<Self, ClientError> {
        let peer = format!("{tls_name}[{}]:{}", addr.ip(), addr.port());
        let tcp = tokio::time::timeout(settings.connect_timeout, TcpStream::connect(addr))
            .await
            .map_err(|_| ClientError::Temporary(format!("connect to {peer}: timeout")))?
            .map_err(|e| ClientError::Temporary(format!("connect to {peer}: {e}")))?;
        let _ = tcp.set_nodelay(true);
        Self::start(Box::new(tcp), peer, tls_name, policy, proof, settings).await
    }

    /// As [`Client::connect`], over a connection already made (from a delivery channel) to
    /// the server `peer` names.
    pub async fn start(
        stream: Box<dyn Io>,
        peer: String,
        tls_name: &str,
        policy: TlsPolicy,
        proof: (&Arc<ClientConfig>, &[[u8; 32]]),
        settings: &ClientSettings,
    ) -> Result<Self, ClientError> {
        let (tls, pins) = proof;
        let mut client = Self {
            stream: BufReader::new(stream),
            ext: Extensions::default(),
            settings: settings.clone(),
            peer,
            transactions: 0,
            encrypted: false,
        };
        let greeting = client.read_reply().await?;
        if greeting.code != 220 {
            return Err(ClientError::Temporary(format!(
                "{} greeted with {greeting}",
                client.peer
            )));
        }
        client.hello().await?;
        match policy {
            TlsPolicy::None => {}
            TlsPolicy::Opportunistic | TlsPolicy::VerifyIfOffered if !client.ext.starttls => {}
            TlsPolicy::Required | TlsPolicy::Tlcp | TlsPolicy::Verify if !client.ext.starttls => {
                let _ = client.quit().await;
                return Err(ClientError::Temporary(
                    "TLS is required but the server does not offer STARTTLS".into(),
                ));
            }
            TlsPolicy::Opportunistic
            | TlsPolicy::Required
            | TlsPolicy::Tlcp
            | TlsPolicy::Verify
            | TlsPolicy::VerifyIfOffered => {
                let handshake = if policy == TlsPolicy::Tlcp {
                    Handshake::Tlcp(pins.to_vec())
                } else {
                    Handshake::Tls(tls.clone())
                };
                client.starttls(tls_name, handshake).await?;
                client.hello().await?;
            }
        }
        Ok(client)
    }

    async fn hello(&mut self) -> Result<(), ClientError> {
        let helo = self.settings.helo.clone();
        self.write(format!("EHLO {helo}\r\n").as_bytes()).await?;
        let (reply, lines) = self.read_reply_lines().await?;
        if reply.is_positive() {
            self.ext = parse_extensions(&lines);
            return Ok(());
        }
        self.write(format!("HELO {helo}\r\n").as_bytes()).await?;
        let reply = self.read_reply().await?;
        if !reply.is_positive() {
            return Err(ClientError::Temporary(format!(
                "{} refused HELO: {reply}",
                self.peer
            )));
        }
        self.ext = Extensions::default();
        Ok(())
    }

    /// STARTTLS, then the handshake.
    async fn starttls(&mut self, tls_name: &str, handshake: Handshake) -> Result<(), ClientError> {
        self.write(b"STARTTLS\r\n").await?;
        let reply = self.read_reply().await?;
        if reply.code != 220 {
            return Err(ClientError::Temporary(format!(
                "{} refused STARTTLS: {reply}",
                self.peer
            )));
        }
        if !self.stream.buffer().is_empty() {
            return Err(ClientError::Temporary(format!(
                "{} sent data before the TLS handshake",
                self.peer
            )));
        }
        let name = ServerName::try_from(tls_name.to_owned())
            .map_err(|e| ClientError::Temporary(format!("bad TLS name {tls_name}: {e}")))?;
        let placeholder: Box<dyn Io> = Box::new(tokio::io::duplex(1).0);
        let plain = std::mem::replace(&mut self.stream, BufReader::new(placeholder)).into_inner();
        let handshake = async {
            match handshake {
                Handshake::Tlcp(pins) => {
                    let stream = jianmen_gm::tlcp::connect(plain, &pins)
                        .await
                        .map_err(std::io::Error::other)?;
                    let negotiated = format!("TLCP with cipher {}", stream.suite().name());
                    Ok::<(Box<dyn Io>, String), std::io::Error>((Box::new(stream), negotiated))
                }
                Handshake::Tls(config) => {
                    let tls = TlsConnector::from(config).connect(name, plain).await?;
                    let negotiated = jianmen_gm::tls::describe(tls.get_ref().1);
                    let stream: Box<dyn Io> = Box::new(tls);
                    Ok((stream, negotiated))
                }
            }
        };
        let (stream, negotiated) = tokio::time::timeout(self.settings.command_timeout, handshake)
            .await
            .map_err(|_| {
                ClientError::Temporary(format!("TLS handshake with {}: timeout", self.peer))
            })?
            .map_err(|e| {
                ClientError::Temporary(format!("TLS handshake with {}: {e}", self.peer))
            })?;
        tracing::info!(peer = %self.peer, tls = %negotiated, "delivering over TLS");
        self.stream = BufReader::new(stream);
        self.encrypted = true;
        Ok(())
    }

    /// Logs in (SMTP AUTH, RFC 4954) with PLAIN, else LOGIN; only over TLS, so that the
    /// password never crosses the network in clear.
    pub async fn authenticate(&mut self, user: &str, password: &str) -> Result<(), ClientError> {
        use base64::Engine;
        let b64 = |s: &[u8]| base64::engine::general_purpose::STANDARD.encode(s);
        if !self.encrypted {
            return Err(ClientError::Temporary(format!(
                "{}: no TLS, so no AUTH (the password is never sent in clear)",
                self.peer
            )));
        }
        let offered = |m: &str| self.ext.auth.iter().any(|a| a == m);
        let reply = if offered("PLAIN") {
            let token = b64(format!("\0{user}\0{password}").as_bytes());
            self.write(format!("AUTH PLAIN {token}\r\n").as_bytes())
                .await?;
            self.read_reply().await?
        } else if offered("LOGIN") {
            self.write(b"AUTH LOGIN\r\n").await?;
            let mut reply = self.read_reply().await?;
            for answer in [user, password] {
                if reply.code != 334 {
                    break;
                }
                self.write(format!("{}\r\n", b64(answer.as_bytes())).as_bytes())
                    .await?;
                reply = self.read_reply().await?;
            }
            reply
        } else {
            return Err(ClientError::Temporary(format!(
                "{} offers no AUTH PLAIN or LOGIN (offers: {})",
                self.peer,
                self.ext.auth.join(" ")
            )));
        };
        if reply.code == 235 {
            Ok(())
        } else {
            Err(ClientError::Temporary(format!(
                "{} refused AUTH as {user}: {reply}",
                self.peer
            )))
        }
    }

    /// Resets the transaction state after a transaction that did not reach DATA.
    async fn reset(&mut self) -> Result<(), ClientError> {
        self.write(b"RSET\r\n").await?;
        let reply = self.read_reply().await?;
        if reply.is_positive() {
            Ok(())
        } else {
            Err(ClientError::Temporary(format!("RSET refused: {reply}")))
        }
    }

    /// Sends QUIT and closes.
    pub async fn quit(mut self) -> Result<(), ClientError> {
        self.write(b"QUIT\r\n").await?;
        let _ = self.read_reply().await;
        Ok(())
    }

    /// Runs one transaction. Errors that hit every recipient come back as `Err`.
    pub async fn send(
        &mut self,
        from: &str,
        rcpts: &[String],
        data: &[u8],
        smtputf8: bool,
    ) -> Result<RcptReplies, ClientError> {
        if smtputf8 && !self.ext.smtputf8 {
            return Err(ClientError::Permanent(format!(
                "550 5.6.7 {} does not support SMTPUTF8",
                self.peer
            )));
        }
        if let Some(limit) = self.ext.size
            && limit > 0
            && data.len() as u64 > limit
        {
            return Err(ClientError::Permanent(format!(
                "552 5.3.4 message is larger than {} accepts ({limit} bytes)",
                self.peer
            )));
        }
        let mut mail = format!("MAIL FROM:<{from}>");
        if self.ext.size.is_some() {
            mail.push_str(&format!(" SIZE={}", data.len()));
        }
        if self.ext.eightbitmime && !data.is_ascii() {
            mail.push_str(" BODY=8BITMIME");
        }
        if smtputf8 {
            mail.push_str(" SMTPUTF8");
        }
        mail.push_str("\r\n");
        let mut replies = Vec::with_capacity(rcpts.len());
        if self.ext.pipelining {
            let mut batch = mail.into_bytes();
            for r in rcpts {
                batch.extend_from_slice(format!("RCPT TO:<{r}>\r\n").as_bytes());
            }
            self.write(&batch).await.map_err(stale)?;
            let mail_reply = self.read_reply().await.map_err(stale)?;
            for r in rcpts {
                replies.push((r.clone(), self.read_reply().await?));
            }
            check_mail_reply(&mail_reply)?;
        } else {
            self.write(mail.as_bytes()).await.map_err(stale)?;
            check_mail_reply(&self.read_reply().await.map_err(stale)?)?;
            for r in rcpts {
                self.write(format!("RCPT TO:<{r}>\r\n").as_bytes()).await?;
                replies.push((r.clone(), self.read_reply().await?));
            }
        }
        if !replies.iter().any(|(_, r)| r.is_positive()) {
            self.reset().await?;
            return Ok(replies);
        }
        self.write(b"DATA\r\n").await?;
        let go = self.read_reply().await?;
        if go.code != 354 {
            let err = format!("{} refused DATA: {go}", self.peer);
            return Err(if go.is_permanent() {
                ClientError::Permanent(err)
            } else {
                ClientError::Temporary(err)
            });
        }
        self.write(&dot_stuff(data)).await?;
        let fin = self.read_reply().await?;
        self.transactions += 1;
        Ok(replies
            .into_iter()
            .map(|(address, rcpt_reply)| {
                let reply = if rcpt_reply.is_positive() {
                    fin.clone()
                } else {
                    rcpt_reply
                };
                (address, reply)
            })
            .collect())
    }

    async fn write(&mut self, bytes: &[u8]) -> Result<(), ClientError> {
        let io = self.stream.get_mut();
        let result = tokio::time::timeout(self.settings.command_timeout, async {
            io.write_all(bytes).await?;
            io.flush().await
        })
        .await;
        match result {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(ClientError::Temporary(format!(
                "lost connection with {}: {e}",
                self.peer
            ))),
            Err(_) => Err(ClientError::Temporary(format!(
                "timeout writing to {}",
                self.peer
            ))),
        }
    }

    async fn read_reply(&mut self) -> Result<ServerReply, ClientError> {
        Ok(self.read_reply_lines().await?.0)
    }

    /// Reads one (possibly multi-line) reply; also returns the text of each line.
    async fn read_reply_lines(&mut self) -> Result<(ServerReply, Vec<String>), ClientError> {
        let mut lines = Vec::new();
        let timeout = self.settings.command_timeout;
        loop {
            let mut line = Vec::with_capacity(128);
            let n = tokio::time::timeout(
                timeout,
                (&mut self.stream)
                    .take(MAX_REPLY_LINE)
                    .read_until(b'\n', &mut line),
            )
            .await
            .map_err(|_| ClientError::Temporary(format!("timeout waiting for {}", self.peer)))?
            .map_err(|e| {
                ClientError::Temporary(format!("lost connection with {}: {e}", self.peer))
            })?;
            if n == 0 {
                return Err(ClientError::Temporary(format!(
                    "{} closed the connection",
                    self.peer
                )));
            }
            let text = String::from_utf8_lossy(&line);
            let text = text.trim_end_matches(['\r', '\n']);
            let code = text
                .get(..3)
                .and_then(|c| c.parse::<u16>().ok())
                .filter(|c| (200..600).contains(c))
                .ok_or_else(|| {
                    ClientError::Temporary(format!("{} sent a malformed reply", self.peer))
                })?;
            let more = text.as_bytes().get(3) == Some(&b'-');
            lines.push((code, text.get(4..).unwrap_or("").to_owned()));
            if !more {
                break;
            }
            if lines.len() >= MAX_REPLY_LINES {
                return Err(ClientError::Temporary(format!(
                    "{} sent an overlong reply",
                    self.peer
                )));
            }
        }
        let code = lines.last().map(|(c, _)| *c).unwrap_or(0);
        let texts: Vec<String> = lines.into_iter().map(|(_, t)| t).collect();
        Ok((
            ServerReply {
                code,
                text: texts.join(" "),
            },
            texts,
        ))
    }
}

fn check_mail_reply(reply: &ServerReply) -> Result<(), ClientError> {
    if reply.is_positive() {
        Ok(())
    } else if reply.is_permanent() {
        Err(ClientError::Permanent(format!(
            "MAIL FROM refused: {reply}"
        )))
    } else {
        Err(ClientError::Temporary(format!(
            "MAIL FROM refused: {reply}"
        )))
    }
}

fn parse_extensions(lines: &[String]) -> Extensions {
    let mut ext = Extensions::default();
    for line in lines.iter().skip(1) {
        let mut words = line.split_whitespace();
        let keyword = words.next().unwrap_or("").to_ascii_uppercase();
        match keyword.as_str() {
            "PIPELINING" => ext.pipelining = true,
            "STARTTLS" => ext.starttls = true,
            "SMTPUTF8" => ext.smtputf8 = true,
            "8BITMIME" => ext.eightbitmime = true,
            "SIZE" => ext.size = Some(words.next().and_then(|w| w.parse().ok()).unwrap_or(0)),
            "AUTH" => ext.auth = words.map(str::to_ascii_uppercase).collect(),
            _ => {}
        }
    }
    ext
}

/// The DATA body on the wire: leading dots doubled, CRLF line ends, terminated by `.` CRLF.
pub fn dot_stuff(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + data.len() / 64 + 8);
    let mut line_start = true;
    let mut prev = 0u8;
    for &b in data {
        if line_start && b == b'.' {
            out.push(b'.');
        }
        if b == b'\n' && prev != b'\r' {
            out.push(b'\r');
        }
        out.push(b);
        line_start = b == b'\n';
        prev = b;
    }
    if !data.is_empty() && !data.ends_with(b"\r\n") {
        if data.ends_with(b"\r") {
            out.push(b'\n');
        } else if !data.ends_with(b"\n") {
            out.extend_from_slice(b"\r\n");
        }
    }
    out.extend_from_slice(b".\r\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dot_stuffing_doubles_leading_dots_and_terminates() {
        assert_eq!(dot_stuff(b".a\r\nb\r\n.\r\n"), b"..a\r\nb\r\n..\r\n.\r\n");
        assert_eq!(dot_stuff(b"no newline"), b"no newline\r\n.\r\n");
        assert_eq!(dot_stuff(b"bare\nlf\n"), b"bare\r\nlf\r\n.\r\n");
        assert_eq!(dot_stuff(b""), b".\r\n");
    }

    #[test]
    fn extensions_are_read_from_ehlo_lines() {
        let lines: Vec<String> = [
            "mx hello",
            "PIPELINING",
            "SIZE 1000",
            "starttls",
            "8BITMIME",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let ext = parse_extensions(&lines);
        assert!(ext.pipelining && ext.starttls && ext.eightbitmime && !ext.smtputf8);
        assert_eq!(ext.size, Some(1000));
    }
}
