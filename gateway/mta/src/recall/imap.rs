//! The IMAP connector: logs in to a mailbox with the administrator's right to act as its user,
//! finds a message by its Message-ID in every folder, moves it to the recall folder (or
//! expunges it), checks it is gone, and can move it back. Every exchange has a deadline and a
//! connection reads at most [`MAX_READ`] bytes: a server that stalls or floods is cut off.

use std::collections::HashSet;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::{StreamExt, TryStreamExt};
use rustls::ClientConfig;
use rustls_pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use super::config::{ImapConfig, ImapTls, RecallAction, RecallConfig};
use super::{RecallError, Target};
use crate::smtp::io::Io;

/// Most bytes one connection reads from the server: far more than the listings and searches
/// recall asks for (it never fetches a message), little enough that a flood is cut off fast.
const MAX_READ: u64 = 4 * 1024 * 1024;
/// Most folders of one mailbox looked through.
const MAX_FOLDERS: usize = 1000;

/// The connection's bytes: TLS or not, counted.
struct Wire {
    inner: Box<dyn Io>,
    read: u64,
}

impl std::fmt::Debug for Wire {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Wire({} bytes read)", self.read)
    }
}

impl AsyncRead for Wire {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        if self.read > MAX_READ {
            return Poll::Ready(Err(std::io::Error::other(format!(
                "the IMAP server sent more than {MAX_READ} bytes"
            ))));
        }
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        let got = (buf.filled().len() - before) as u64;
        self.read += got;
        polled
    }
}

impl AsyncWrite for Wire {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, data)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

type Session = async_imap::Session<Wire>;

/// One configured IMAP mail system.
pub struct Imap {
    config: ImapConfig,
    password: String,
    tls: Option<Arc<ClientConfig>>,
    timeout: Duration,
    folder: String,
    action: RecallAction,
}

impl Imap {
    /// Prepares the connector: reads the password file, builds the TLS check.
    pub fn new(config: &ImapConfig, recall: &RecallConfig) -> Result<Imap, String> {
        let password = std::fs::read_to_string(&config.password_file)
            .map_err(|e| format!("{}: {e}", config.password_file.display()))?
            .lines()
            .next()
            .unwrap_or("")
            .to_owned();
        let tls = match config.tls {
            ImapTls::None => None,
            ImapTls::Tls => Some(crate::config::verifying_client(config.tls_ca.as_deref())?),
        };
        Ok(Imap {
            config: config.clone(),
            password,
            tls,
            timeout: Duration::from_secs(recall.timeout_secs),
            folder: recall.folder.clone(),
            action: recall.action,
        })
    }

    /// One step, within the deadline.
    async fn step<T>(
        &self,
        what: &str,
        work: impl Future<Output = async_imap::error::Result<T>>,
    ) -> Result<T, RecallError> {
        match tokio::time::timeout(self.timeout, work).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(RecallError::Server(format!("{what}: {e}"))),
            Err(_) => Err(RecallError::Server(format!(
                "{what}: no answer within {:?}",
                self.timeout
            ))),
        }
    }

    /// A session as `mailbox`'s user.
    async fn open(&self, mailbox: &str) -> Result<Session, RecallError> {
        let c = &self.config;
        let addr = format!("{}:{}", c.host, c.port);
        let tcp = tokio::time::timeout(self.timeout, TcpStream::connect(&addr))
            .await
            .map_err(|_| RecallError::Server(format!("connect to {addr}: timeout")))?
            .map_err(|e| RecallError::Server(format!("connect to {addr}: {e}")))?;
        let inner: Box<dyn Io> = match &self.tls {
            None => Box::new(tcp),
            Some(config) => {
                let name = c.tls_name.clone().unwrap_or_else(|| c.host.clone());
                let name = ServerName::try_from(name)
                    .map_err(|e| RecallError::Server(format!("TLS name: {e}")))?;
                let tls = tokio::time::timeout(
                    self.timeout,
                    tokio_rustls::TlsConnector::from(config.clone()).connect(name, tcp),
                )
                .await
                .map_err(|_| RecallError::Server(format!("TLS with {addr}: timeout")))?
                .map_err(|e| RecallError::Server(format!("TLS with {addr}: {e}")))?;
                Box::new(tls)
            }
        };
        let mut client = async_imap::Client::new(Wire { inner, read: 0 });
        let greeting = tokio::time::timeout(self.timeout, client.read_response())
            .await
            .map_err(|_| RecallError::Server(format!("{addr} did not greet")))?
            .map_err(|e| RecallError::Server(format!("{addr}: {e}")))?;
        if greeting.is_none() {
            return Err(RecallError::Server(format!("{addr} closed the connection")));
        }
        let login = c.login_for(mailbox);
        match tokio::time::timeout(self.timeout, client.login(&login, &self.password)).await {
            Ok(Ok(session)) => Ok(session),
            Ok(Err((e, _))) => Err(RecallError::Server(format!("log in as {login}: {e}"))),
            Err(_) => Err(RecallError::Server(format!("log in as {login}: timeout"))),
        }
    }

    /// The mailbox's folders that can hold mail, the recall folder left out.
    async fn folders(&self, s: &mut Session) -> Result<Vec<String>, RecallError> {
        let listed = self
            .step("LIST", async {
                let names = s.list(Some(""), Some("*")).await?;
                names.take(MAX_FOLDERS).try_collect::<Vec<_>>().await
            })
            .await?;
        Ok(listed
            .iter()
            .filter(|n| {
                !n.attributes()
                    .iter()
                    .any(|a| matches!(a, async_imap::types::NameAttribute::NoSelect))
            })
            .map(|n| n.name().to_owned())
            .filter(|n| *n != self.folder)
            .collect())
    }

    /// UIDs of the copies of `target` in the selected folder.
    async fn find(&self, s: &mut Session, target: &Target) -> Result<Vec<u32>, RecallError> {
        let query = search(target)?;
        let found: HashSet<u32> = self.step("SEARCH", s.uid_search(&query)).await?;
        let mut uids: Vec<u32> = found.into_iter().collect();
        uids.sort_unstable();
        Ok(uids)
    }

    /// Moves (or expunges) the selected folder's `uids` to `to`.
    async fn move_out(
        &self,
        s: &mut Session,
        uids: &[u32],
        to: Option<&str>,
    ) -> Result<(), RecallError> {
        let set = uids
            .iter()
            .map(u32::to_string)
            .collect::<Vec<_>>()
            .join(",");
        let caps = self.step("CAPABILITY", s.capabilities()).await?;
        match to {
            Some(folder) if caps.has_str("MOVE") => {
                self.step("MOVE", s.uid_mv(&set, plain(folder)?)).await?;
            }
            _ => {
                if let Some(folder) = to {
                    self.step("COPY", s.uid_copy(&set, plain(folder)?)).await?;
                }
                self.step("STORE", async {
                    let stored = s.uid_store(&set, "+FLAGS.SILENT (\\Deleted)").await?;
                    stored.try_collect::<Vec<_>>().await
                })
                .await?;
                if caps.has_str("UIDPLUS") {
                    self.step("EXPUNGE", async {
                        let gone = s.uid_expunge(&set).await?;
                        gone.try_collect::<Vec<_>>().await
                    })
                    .await?;
                } else {
                    self.step("EXPUNGE", async {
                        let gone = s.expunge().await?;
                        gone.try_collect::<Vec<_>>().await
                    })
                    .await?;
                }
            }
        }
        Ok(())
    }

    /// Takes `target` out of every folder of `mailbox`; returns each folder it was in with the
    /// number of copies.
    pub async fn recall(
        &self,
        mailbox: &str,
        target: &Target,
    ) -> Result<Vec<(String, u32)>, RecallError> {
        let mut s = self.open(mailbox).await?;
        let folders = self.folders(&mut s).await?;
        if self.action == RecallAction::Move {
            // An existing folder answers NO: that is fine.
            let _ = self.step("CREATE", s.create(plain(&self.folder)?)).await;
        }
        let to = (self.action == RecallAction::Move).then_some(self.folder.as_str());
        let mut moved = Vec::new();
        for folder in folders {
            self.step("SELECT", s.select(plain(&folder)?)).await?;
            let uids = self.find(&mut s, target).await?;
            if uids.is_empty() {
                continue;
            }
            self.move_out(&mut s, &uids, to).await?;
            if !self.find(&mut s, target).await?.is_empty() {
                return Err(RecallError::Server(format!(
                    "{folder}: the message is still there after the move"
                )));
            }
            moved.push((folder, uids.len() as u32));
        }
        let _ = self.step("LOGOUT", s.logout()).await;
        Ok(moved)
    }

    /// Moves `target` back from the recall folder to the first folder it was taken from;
    /// returns how many copies.
    pub async fn restore(
        &self,
        mailbox: &str,
        target: &Target,
        from: &[(String, u32)],
    ) -> Result<u32, RecallError> {
        let home = from.first().map_or("INBOX", |(f, _)| f.as_str());
        let mut s = self.open(mailbox).await?;
        self.step("SELECT", s.select(plain(&self.folder)?)).await?;
        let uids = self.find(&mut s, target).await?;
        if !uids.is_empty() {
            self.move_out(&mut s, &uids, Some(home)).await?;
        }
        self.step("SELECT", s.select(plain(home)?)).await?;
        let back = self.find(&mut s, target).await?.len() as u32;
        let _ = self.step("LOGOUT", s.logout()).await;
        if back == 0 {
            return Err(RecallError::Server(format!(
                "{home}: the message is not back"
            )));
        }
        Ok(back)
    }
}

/// The SEARCH criteria that find `target`: its Message-ID, else its sender and subject among
/// the mail that arrived from the day before to the day after it did.
fn search(target: &Target) -> Result<String, RecallError> {
    if !target.message_id.is_empty() {
        return Ok(format!(
            "HEADER Message-ID {}",
            quoted(&format!("<{}>", target.message_id))?
        ));
    }
    let day = |offset: i64| {
        chrono::DateTime::from_timestamp(target.delivered_at + offset * 86_400, 0)
            .map(|d| d.format("%-d-%b-%Y").to_string())
            .ok_or_else(|| RecallError::Unsearchable("arrival time".into()))
    };
    Ok(format!(
        "FROM {} SUBJECT {} SINCE {} BEFORE {}",
        quoted(&target.from)?,
        quoted(&target.subject)?,
        day(-1)?,
        day(2)?
    ))
}

/// `s` as an IMAP quoted string; text a quoted string cannot carry is refused.
fn quoted(s: &str) -> Result<String, RecallError> {
    Ok(format!(
        "\"{}\"",
        plain(s)?.replace('\\', "\\\\").replace('"', "\\\"")
    ))
}

/// `s` when an IMAP quoted string can carry it (the client library quotes mailbox names).
fn plain(s: &str) -> Result<&str, RecallError> {
    if s.chars().any(|c| c.is_control() || !c.is_ascii()) {
        return Err(RecallError::Unsearchable(s.chars().take(80).collect()));
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_without_a_message_id_is_searched_by_sender_subject_and_day() {
        let target = |id: &str, subject: &str| Target {
            message_id: id.into(),
            from: "billing@vendor.test".into(),
            subject: subject.into(),
            // 2026-12-05 10:00 UTC.
            delivered_at: 1_796_464_800,
        };
        assert_eq!(
            search(&target("a@b", "x")).unwrap(),
            "HEADER Message-ID \"<a@b>\""
        );
        assert_eq!(
            search(&target("", "Invoice \"Q4\"")).unwrap(),
            "FROM \"billing@vendor.test\" SUBJECT \"Invoice \\\"Q4\\\"\" SINCE 4-Dec-2026 BEFORE 7-Dec-2026"
        );
        assert!(matches!(
            search(&target("", "发票")),
            Err(RecallError::Unsearchable(_))
        ));
    }

    #[test]
    fn quoting_escapes_and_refuses_what_needs_a_literal() {
        assert_eq!(quoted("a\"b\\c").unwrap(), "\"a\\\"b\\\\c\"");
        assert!(quoted("a\r\nb").is_err());
        assert!(quoted("已召回").is_err());
    }
}
