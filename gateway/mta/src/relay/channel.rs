//! One egress channel: how its connections are made (from a source address, or through a
//! SOCKS5 relay node) and the limit on how many it keeps open at once.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpSocket;
use tokio::sync::Semaphore;

use super::config::ChannelConfig;
use crate::smtp::io::Io;

/// Longest SOCKS5 password read from its file.
const MAX_SECRET: u64 = 1024;

/// The first line of a password file, bounded.
fn secret(path: &std::path::Path) -> std::io::Result<String> {
    use std::io::Read;
    let mut text = String::new();
    std::fs::File::open(path)?
        .take(MAX_SECRET)
        .read_to_string(&mut text)?;
    Ok(text.lines().next().unwrap_or("").to_owned())
}

/// Why a connection could not be made, and whose fault that is.
#[derive(Debug, thiserror::Error)]
pub enum DialError {
    /// The channel itself is broken: its source address cannot be bound, or its SOCKS5 node
    /// does not answer.
    #[error("{0}")]
    Channel(String),
    /// The next hop did not answer (directly, or as the SOCKS5 node reports).
    #[error("{0}")]
    Peer(String),
}

/// A configured channel, ready to dial.
pub struct Channel {
    /// As configured.
    pub config: ChannelConfig,
    socks5_password: Option<String>,
    /// The smart host's AUTH user name and password.
    pub smarthost_login: Option<(String, String)>,
    /// Deliveries under way through it.
    pub connections: Arc<Semaphore>,
}

impl Channel {
    /// Prepares a channel, reading its SOCKS5 password file.
    pub fn new(config: ChannelConfig) -> std::io::Result<Self> {
        let socks5_password = config
            .socks5_password_file
            .as_deref()
            .map(secret)
            .transpose()?;
        let smarthost_login = match config.smarthost.as_ref() {
            Some(s) => match (&s.username, &s.password_file) {
                (Some(user), Some(file)) => Some((user.clone(), secret(file)?)),
                _ => None,
            },
            None => None,
        };
        Ok(Self {
            connections: Arc::new(Semaphore::new(config.max_connections)),
            config,
            socks5_password,
            smarthost_login,
        })
    }

    /// Its name.
    pub fn name(&self) -> &str {
        &self.config.name
    }

    /// The address the world sees its mail come from, if known.
    pub fn address(&self) -> Option<IpAddr> {
        self.config.address.or(self.config.source)
    }

    /// A TCP connection to `target` by this channel's path, within `timeout`.
    pub async fn dial(
        &self,
        target: SocketAddr,
        timeout: Duration,
    ) -> Result<Box<dyn Io>, DialError> {
        let first = self.config.socks5.unwrap_or(target);
        let socket = if first.is_ipv4() {
            TcpSocket::new_v4()
        } else {
            TcpSocket::new_v6()
        }
        .map_err(|e| DialError::Channel(format!("socket: {e}")))?;
        if let Some(source) = self.config.source {
            socket
                .bind(SocketAddr::new(source, 0))
                .map_err(|e| DialError::Channel(format!("cannot send from {source}: {e}")))?;
        }
        let work = async {
            let tcp = socket.connect(first).await;
            let Some(proxy) = self.config.socks5 else {
                let tcp = tcp.map_err(|e| DialError::Peer(format!("connect to {target}: {e}")))?;
                let _ = tcp.set_nodelay(true);
                return Ok(Box::new(tcp) as Box<dyn Io>);
            };
            let tcp = tcp.map_err(|e| {
                DialError::Channel(format!("SOCKS5 node {proxy} does not answer: {e}"))
            })?;
            let _ = tcp.set_nodelay(true);
            let stream = match (&self.config.socks5_username, &self.socks5_password) {
                (Some(user), Some(password)) => {
                    tokio_socks::tcp::Socks5Stream::connect_with_password_and_socket(
                        tcp, target, user, password,
                    )
                    .await
                }
                _ => tokio_socks::tcp::Socks5Stream::connect_with_socket(tcp, target).await,
            };
            stream
                .map(|s| Box::new(s) as Box<dyn Io>)
                .map_err(|e| match e {
                    tokio_socks::Error::Io(_)
                    | tokio_socks::Error::InvalidResponseVersion
                    | tokio_socks::Error::NoAcceptableAuthMethods
                    | tokio_socks::Error::UnknownAuthMethod
                    | tokio_socks::Error::PasswordAuthFailure(_)
                    | tokio_socks::Error::InvalidAuthValues(_) => {
                        DialError::Channel(format!("SOCKS5 node {proxy}: {e}"))
                    }
                    other => {
                        DialError::Peer(format!("{target} through SOCKS5 node {proxy}: {other}"))
                    }
                })
        };
        tokio::time::timeout(timeout, work)
            .await
            .map_err(|_| DialError::Peer(format!("connect to {target}: timeout")))?
    }
}
