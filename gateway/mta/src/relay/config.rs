//! The `[relay]` section: the egress channels mail to the internet leaves by, which recipient
//! domains use which, and the watch on the channels' public addresses.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use serde::Deserialize;

use crate::config::{RouteConfig, TlsPolicy};
use jianmen_scan::reputation::ZoneConfig;

/// Longest channel name: it is a console label and a metric label.
const MAX_NAME: usize = 32;

/// The `[relay]` section. Without channels, mail to the internet leaves as before: from the
/// host's default address, straight to the destination's MX hosts.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RelayConfig {
    /// The egress paths (`[[relay.channel]]`).
    #[serde(rename = "channel")]
    pub channels: Vec<ChannelConfig>,
    /// Which channels serve which recipient domains (`[[relay.policy]]`); the first that names
    /// a domain decides, and a domain none names may use every channel.
    #[serde(rename = "policy")]
    pub policies: Vec<PolicyConfig>,
    /// Block lists every channel's public address is looked up in.
    pub dnsbl: Vec<ZoneConfig>,
    /// Seconds between two looks at the block lists.
    pub check_secs: u64,
    /// Seconds a listed channel must stay clean (and unrefused) before it carries mail again.
    pub holddown_secs: u64,
    /// Most channels one delivery attempt tries before the message waits for its next retry.
    pub channels_per_attempt: usize,
    /// Block-list refusals from this many different recipient domains within an hour take a
    /// channel out of rotation even when no watched list names it (0: never).
    pub passive_domains: usize,
    /// Failed connections in a row (to a smart host or SOCKS5 node, or a source address that
    /// cannot be bound) that mark a channel down.
    pub down_after: u32,
    /// Seconds a down channel rests before it is tried again.
    pub down_secs: u64,
    /// Addresses told by mail when a channel is listed, goes down or comes back.
    pub notify: Vec<String>,
}

impl Default for RelayConfig {
    fn default() -> Self {
        Self {
            channels: Vec::new(),
            policies: Vec::new(),
            dnsbl: Vec::new(),
            check_secs: 600,
            holddown_secs: 3600,
            channels_per_attempt: 3,
            passive_domains: 3,
            down_after: 5,
            down_secs: 300,
            notify: Vec::new(),
        }
    }
}

/// One egress path.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChannelConfig {
    /// Its name in the console, logs and metrics.
    pub name: String,
    /// Local address its connections leave from (bound before connecting).
    #[serde(default)]
    pub source: Option<IpAddr>,
    /// A relay node reached through SOCKS5: connections to the next hop are made by the proxy.
    #[serde(default)]
    pub socks5: Option<SocketAddr>,
    /// SOCKS5 user name (RFC 1929), with `socks5_password_file`.
    #[serde(default)]
    pub socks5_username: Option<String>,
    /// A file holding the SOCKS5 password (kept out of the configuration).
    #[serde(default)]
    pub socks5_password_file: Option<PathBuf>,
    /// An upstream relay that takes all of this channel's mail instead of the MX hosts.
    #[serde(default)]
    pub smarthost: Option<SmartHostConfig>,
    /// The public address the world sees this channel's mail come from, looked up in the block
    /// lists; `source` when absent (a channel with neither is not watched).
    #[serde(default)]
    pub address: Option<IpAddr>,
    /// Held back until an active channel is listed or down.
    #[serde(default)]
    pub reserve: bool,
    /// Share of new destinations given to this channel, relative to the others.
    #[serde(default = "one")]
    pub weight: u32,
    /// Most deliveries at once through this channel.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
}

/// A smart host: where, and what it must prove.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmartHostConfig {
    /// Host name or address.
    pub host: String,
    /// Port.
    #[serde(default = "submission_port")]
    pub port: u16,
    /// STARTTLS policy, as for routes (`required` by default: the path crosses networks the
    /// site does not own).
    #[serde(default = "required")]
    pub tls: TlsPolicy,
    /// As for routes.
    #[serde(default)]
    pub tls_ca: Option<PathBuf>,
    /// As for routes.
    #[serde(default)]
    pub tls_name: Option<String>,
    /// As for routes.
    #[serde(default)]
    pub tls_pins: Vec<String>,
    /// User name for SMTP AUTH (PLAIN, else LOGIN), with `password_file`; sent only inside TLS.
    #[serde(default)]
    pub username: Option<String>,
    /// A file holding the AUTH password (kept out of the configuration).
    #[serde(default)]
    pub password_file: Option<PathBuf>,
}

impl SmartHostConfig {
    /// The same settings as a route, to share its checks of what the server must prove.
    pub fn as_route(&self) -> RouteConfig {
        RouteConfig {
            domain: "*".into(),
            host: self.host.clone(),
            port: self.port,
            tls: self.tls,
            tls_ca: self.tls_ca.clone(),
            tls_name: self.tls_name.clone(),
            tls_pins: self.tls_pins.clone(),
        }
    }
}

/// Which channels serve some recipient domains.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyConfig {
    /// Domains: `example.org` (that domain), `.jp` or `*.jp` (every domain under it), `*` (all).
    pub domains: Vec<String>,
    /// Channel names, by preference when their records are alike.
    pub channels: Vec<String>,
}

impl PolicyConfig {
    /// Whether this policy names `domain` (lower case).
    pub fn covers(&self, domain: &str) -> bool {
        self.domains.iter().any(|d| {
            if d == "*" {
                return true;
            }
            match d.strip_prefix('*').unwrap_or(d).strip_prefix('.') {
                Some(suffix) => domain
                    .strip_suffix(suffix)
                    .is_some_and(|head| head.ends_with('.')),
                None => domain == d,
            }
        })
    }
}

fn one() -> u32 {
    1
}
fn default_max_connections() -> usize {
    20
}
fn submission_port() -> u16 {
    587
}
fn required() -> TlsPolicy {
    TlsPolicy::Required
}

impl RelayConfig {
    /// Why the section cannot be used, if it cannot.
    pub fn check(&self) -> Result<(), String> {
        let mut names = std::collections::HashSet::new();
        for c in &self.channels {
            let good_name = !c.name.is_empty()
                && c.name.len() <= MAX_NAME
                && c.name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
            if !good_name {
                return Err(format!(
                    "channel name `{}`: 1–{MAX_NAME} letters, digits, `-` or `_`",
                    c.name
                ));
            }
            if !names.insert(c.name.as_str()) {
                return Err(format!("channel `{}` is defined twice", c.name));
            }
            if c.weight == 0 || c.max_connections == 0 {
                return Err(format!(
                    "channel `{}`: weight and max_connections must be at least 1",
                    c.name
                ));
            }
            if c.socks5_username.is_some() != c.socks5_password_file.is_some() {
                return Err(format!(
                    "channel `{}`: socks5_username and socks5_password_file go together",
                    c.name
                ));
            }
            if c.socks5.is_none() && c.socks5_username.is_some() {
                return Err(format!(
                    "channel `{}`: socks5 credentials without socks5",
                    c.name
                ));
            }
            if let Some(s) = &c.smarthost {
                s.as_route()
                    .server_trust()
                    .map_err(|e| format!("channel `{}` smarthost: {e}", c.name))?;
                if s.username.is_some() != s.password_file.is_some() {
                    return Err(format!(
                        "channel `{}` smarthost: username and password_file go together",
                        c.name
                    ));
                }
                let encrypted = matches!(
                    s.tls,
                    TlsPolicy::Required | TlsPolicy::Verify | TlsPolicy::Tlcp
                );
                if s.username.is_some() && !encrypted {
                    return Err(format!(
                        "channel `{}` smarthost: a password is sent only over TLS: tls = \"verify\", \"required\" or \"tlcp\"",
                        c.name
                    ));
                }
            }
        }
        if !self.channels.is_empty() && self.channels.iter().all(|c| c.reserve) {
            return Err("every channel is a reserve: at least one must be active".into());
        }
        for p in &self.policies {
            if p.domains.is_empty() || p.channels.is_empty() {
                return Err("a relay policy names domains and channels".into());
            }
            if let Some(unknown) = p.channels.iter().find(|n| !names.contains(n.as_str())) {
                return Err(format!("relay policy names unknown channel `{unknown}`"));
            }
        }
        if self.check_secs < 5 && !self.dnsbl.is_empty() {
            return Err("check_secs must be at least 5".into());
        }
        if self.channels_per_attempt == 0 || self.down_after == 0 {
            return Err("channels_per_attempt and down_after must be at least 1".into());
        }
        Ok(())
    }
}
