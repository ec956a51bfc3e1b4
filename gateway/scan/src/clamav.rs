//! Antivirus through ClamAV's `clamd` (INSTREAM over a unix or TCP socket). clamd parses the
//! MIME structure and archives itself, so the whole message is streamed once.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Longest clamd reply read.
const MAX_REPLY: usize = 4096;
/// Bytes per INSTREAM chunk.
const CHUNK: usize = 64 * 1024;

/// What to do with a message when clamd cannot give an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnError {
    /// Answer 451 so the sender retries later (fail closed).
    Tempfail,
    /// Go on without antivirus (fail open); the verdict says so.
    Accept,
}

/// Where clamd listens and how long to wait for it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClamavConfig {
    /// `unix:/run/clamav/clamd.ctl` or `127.0.0.1:3310`.
    pub address: String,
    /// Time allowed for one scan, in seconds.
    #[serde(default = "default_timeout")]
    pub timeout_secs: u64,
    /// Policy when clamd is down or slow.
    #[serde(default = "default_on_error")]
    pub on_error: OnError,
}

fn default_timeout() -> u64 {
    30
}

fn default_on_error() -> OnError {
    OnError::Tempfail
}

/// clamd's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Nothing found.
    Clean,
    /// Malware found: the signature name.
    Infected(String),
}

/// Why clamd gave no answer.
#[derive(Debug, thiserror::Error)]
pub enum ClamavError {
    /// Could not connect, write or read.
    #[error("clamd i/o: {0}")]
    Io(#[from] std::io::Error),
    /// No answer in time.
    #[error("clamd did not answer in time")]
    Timeout,
    /// An answer that is neither OK nor FOUND (e.g. size limit exceeded).
    #[error("clamd: {0}")]
    Refused(String),
}

enum Address {
    Unix(PathBuf),
    Tcp(String),
}

/// A clamd client.
pub struct Clamd {
    address: Address,
    timeout: Duration,
    /// What to do when clamd fails.
    pub on_error: OnError,
}

impl Clamd {
    /// Builds a client from the configuration.
    pub fn new(config: &ClamavConfig) -> Self {
        let address = match config.address.strip_prefix("unix:") {
            Some(path) => Address::Unix(PathBuf::from(path)),
            None => Address::Tcp(config.address.clone()),
        };
        Self {
            address,
            timeout: Duration::from_secs(config.timeout_secs.max(1)),
            on_error: config.on_error,
        }
    }

    /// Streams `data` to clamd and returns its verdict.
    pub async fn scan(&self, data: &[u8]) -> Result<Outcome, ClamavError> {
        parse_reply(&self.talk(Request::Instream(data)).await?)
    }

    /// Asks clamd to load its signature databases again (after new files were installed).
    pub async fn reload(&self) -> Result<(), ClamavError> {
        match self.talk(Request::Reload).await?.as_str() {
            "RELOADING" => Ok(()),
            other => Err(ClamavError::Refused(other.chars().take(200).collect())),
        }
    }

    async fn talk(&self, request: Request<'_>) -> Result<String, ClamavError> {
        let work = async {
            match &self.address {
                Address::Unix(path) => {
                    let s = tokio::net::UnixStream::connect(path).await?;
                    exchange(s, request).await
                }
                Address::Tcp(addr) => {
                    let s = tokio::net::TcpStream::connect(addr.as_str()).await?;
                    exchange(s, request).await
                }
            }
        };
        tokio::time::timeout(self.timeout, work)
            .await
            .map_err(|_| ClamavError::Timeout)?
    }
}

/// What is asked of clamd.
enum Request<'a> {
    /// Scan these bytes.
    Instream(&'a [u8]),
    /// Reload the databases.
    Reload,
}

/// Sends one request and returns clamd's reply, trimmed (bounded to [`MAX_REPLY`]).
async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(
    mut s: S,
    request: Request<'_>,
) -> Result<String, ClamavError> {
    match request {
        Request::Instream(data) => {
            s.write_all(b"zINSTREAM\0").await?;
            for chunk in data.chunks(CHUNK) {
                s.write_all(&(chunk.len() as u32).to_be_bytes()).await?;
                s.write_all(chunk).await?;
            }
            s.write_all(&[0, 0, 0, 0]).await?;
        }
        Request::Reload => s.write_all(b"zRELOAD\0").await?,
    }
    s.flush().await?;
    let mut reply = Vec::new();
    let mut buf = [0u8; 512];
    loop {
        let n = s.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        reply.extend_from_slice(&buf[..n]);
        if reply.contains(&0) || reply.len() > MAX_REPLY {
            break;
        }
    }
    let text = String::from_utf8_lossy(&reply);
    Ok(text.trim_end_matches(['\0', '\n']).trim().to_owned())
}

fn parse_reply(text: &str) -> Result<Outcome, ClamavError> {
    let body = text.strip_prefix("stream:").unwrap_or(text).trim();
    if body == "OK" {
        Ok(Outcome::Clean)
    } else if let Some(name) = body.strip_suffix(" FOUND") {
        Ok(Outcome::Infected(name.trim().to_owned()))
    } else {
        Err(ClamavError::Refused(body.chars().take(200).collect()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies() {
        assert_eq!(parse_reply("stream: OK").unwrap(), Outcome::Clean);
        assert_eq!(
            parse_reply("stream: Eicar-Signature FOUND").unwrap(),
            Outcome::Infected("Eicar-Signature".into())
        );
        assert!(parse_reply("INSTREAM size limit exceeded. ERROR").is_err());
    }
}
