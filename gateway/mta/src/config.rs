//! The gateway's TOML configuration: parsed strictly (unknown keys are errors that name the key) and
//! validated once at start so a bad value is reported before any port is opened.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

// The sections other crates own, composed here: the scanner's and the TLS identities'.
pub use jianmen_gm::tls::{ServerTrust, TlsConfig};
pub use jianmen_scan::config::{
    Action, Actions, BrandConfig, DnsConfig, DomainPolicy, GreylistConfig, ScanConfig, Thresholds,
};

/// Why a configuration could not be used; every message names the offending key.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}")]
    Read {
        /// The file that was tried.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// TOML syntax error or a key of the wrong type / unknown key.
    #[error("{path}: {message}")]
    Parse {
        /// The file that was parsed.
        path: PathBuf,
        /// The parser's message, which names the key and line.
        message: String,
    },
    /// The TOML is well-formed but a value is unusable.
    #[error("invalid value for `{key}`: {reason}")]
    Invalid {
        /// Dotted path of the key, e.g. `smtp.max_message_size`.
        key: String,
        /// What is wrong with it.
        reason: String,
    },
}

fn invalid(key: impl Into<String>, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key: key.into(),
        reason: reason.into(),
    }
}

/// The queue's database (and the settings kept with it) in the data directory.
pub const DATABASE_FILE: &str = "jianmen.db";

/// The whole configuration file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Identity and storage locations.
    pub server: ServerConfig,
    /// The inbound SMTP listener and its limits.
    #[serde(default)]
    pub smtp: SmtpConfig,
    /// Certificate for STARTTLS (inbound) — absent means STARTTLS is not offered.
    #[serde(default)]
    pub tls: Option<TlsConfig>,
    /// Which recipient domains this gateway accepts mail for.
    pub domains: DomainsConfig,
    /// Per-domain downstream routes; other domains go by MX lookup.
    #[serde(default, rename = "route")]
    pub routes: Vec<RouteConfig>,
    /// Queue retry and outbound delivery settings.
    #[serde(default)]
    pub delivery: DeliveryConfig,
    /// Prometheus metrics endpoint.
    #[serde(default)]
    pub metrics: MetricsConfig,
    /// The shared DNS resolver.
    #[serde(default)]
    pub dns: DnsConfig,
    /// Detection: checks, rules, thresholds and actions.
    #[serde(default)]
    pub scan: ScanConfig,
    /// How long held mail is kept.
    #[serde(default)]
    pub quarantine: QuarantineConfig,
    /// How long message tracking remembers.
    #[serde(default)]
    pub tracking: TrackingConfig,
    /// The HTTPS administration console; absent means no console.
    #[serde(default)]
    pub console: Option<ConsoleConfig>,
    /// Where audit rows are copied to.
    #[serde(default)]
    pub audit: AuditConfig,
    /// Outbound DKIM signing: the sending domains and the selector each signs with.
    #[serde(default)]
    pub dkim: crate::dkim::DkimConfig,
    /// Data-leak prevention policies for outbound and internal mail.
    #[serde(default)]
    pub dlp: jianmen_scan::dlp::DlpConfig,
    /// When the sending behaviour of internal accounts contains them, and how.
    #[serde(default)]
    pub behaviour: crate::risk::RiskConfig,
    /// The egress channels mail to the internet leaves by, and the watch on them.
    #[serde(default)]
    pub relay: crate::relay::RelayConfig,
    /// Taking delivered mail back out of the organisation's mailboxes.
    #[serde(default)]
    pub recall: crate::recall::RecallConfig,
    /// Threat-intelligence sources and what a retro-hunt does.
    #[serde(default)]
    pub intel: crate::intel::IntelConfig,
    /// Click-time protection of the links in inbound mail.
    #[serde(default)]
    pub links: crate::links::LinksConfig,
    /// Phishing drills.
    #[serde(default)]
    pub drills: crate::drills::DrillsConfig,
    /// The organisation's directory, where recipients sign in to their self-service pages.
    #[serde(default)]
    pub directory: Option<crate::directory::DirectoryConfig>,
    /// Where the state shared by a cluster's nodes lives.
    #[serde(default)]
    pub store: crate::store::StoreConfig,
    /// The file this configuration was loaded from (none when parsed from text): a backup
    /// takes it and the files beside it.
    #[serde(skip)]
    pub file: Option<PathBuf>,
    /// Whether the settings changed in the console are laid over the file's.
    #[serde(skip)]
    pub settings: crate::settings::SettingsState,
}

/// Copies of the audit log for a SIEM.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuditConfig {
    /// `host:port` of a syslog collector taking RFC 5424 over TCP (RFC 6587 octet counting);
    /// every audit row is sent there in order, resuming after outages.
    pub syslog: Option<String>,
    /// The IANA private enterprise number the syslog messages' structured data element is
    /// named with (`jianmen@<number>`); without one the fields travel in the message text.
    pub syslog_enterprise_number: Option<u32>,
}

/// The HTTPS administration console and its login rules (等保 2.0).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConsoleConfig {
    /// HTTPS address (the certificate is `[tls]`'s, or a generated one).
    pub listen: SocketAddr,
    /// Addresses or networks allowed to sign in to the console (`10.0.0.0/8`, `192.0.2.7`).
    /// Left out: the local networks ([`LOCAL_NETWORKS`]); an explicit empty list allows any.
    pub allow_from: Vec<String>,
    /// Minutes without a request before a session ends.
    pub session_idle_minutes: u32,
    /// Hours after which a session ends regardless.
    pub session_max_hours: u32,
    /// Consecutive failed logins that lock an account.
    pub lockout_failures: u32,
    /// Minutes an account stays locked.
    pub lockout_minutes: u32,
    /// Shortest password accepted.
    pub password_min_length: usize,
    /// The console's address as recipients reach it, for the links in quarantine digests
    /// (default `https://<server.hostname>:<listen port>`).
    pub public_url: Option<String>,
}

/// Where the console accepts sign-ins from unless `console.allow_from` says otherwise:
/// loopback, the private and link-local ranges (RFC 1918, RFC 4193, RFC 3927/4291) — the
/// organisation's own networks, never the whole Internet by default.
pub const LOCAL_NETWORKS: &[&str] = &[
    "127.0.0.0/8",
    "10.0.0.0/8",
    "172.16.0.0/12",
    "192.168.0.0/16",
    "169.254.0.0/16",
    "::1/128",
    "fc00::/7",
    "fe80::/10",
];

impl Default for ConsoleConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8443)),
            allow_from: LOCAL_NETWORKS.iter().map(|n| n.to_string()).collect(),
            session_idle_minutes: 15,
            session_max_hours: 12,
            lockout_failures: 5,
            lockout_minutes: 30,
            password_min_length: 12,
            public_url: None,
        }
    }
}

/// How long message tracking remembers.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrackingConfig {
    /// Days events are kept (the log of who sent what to whom is personal data: keep it no
    /// longer than needed; 180 matches the audit retention).
    pub retention_days: u32,
}

impl Default for TrackingConfig {
    fn default() -> Self {
        Self {
            retention_days: 180,
        }
    }
}

/// The classes a held message can have: a verdict class, or `refused` (a copy of mail refused
/// for some recipients only).
pub const HELD_CLASSES: [&str; 6] = ["spam", "phish", "virus", "bec", "unscannable", "refused"];

/// How long held mail is kept, and what recipients may do with it themselves.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct QuarantineConfig {
    /// Days before an unreleased message is deleted, per verdict class.
    pub retention_days: RetentionDays,
    /// Hours between digest mails to recipients of protected domains listing their newly held
    /// mail with release links (0: no digests). Needs `[console]`, which serves the links.
    pub digest_hours: u32,
    /// Days a digest's links stay valid.
    pub link_days: u32,
    /// Verdict classes recipients see in digests and may release themselves; anything else
    /// (phishing, viruses…) only an administrator releases.
    pub user_release: Vec<String>,
    /// Days a copy of mail refused at SMTP is kept in quarantine, so that a false positive at
    /// reject level can still be found (by the `ref` id the sender was told) and released
    /// (0: no copies).
    pub rejected_copy_days: u32,
    /// The verdict classes whose refused mail is copied.
    pub rejected_copy_classes: Vec<String>,
}

impl Default for QuarantineConfig {
    fn default() -> Self {
        Self {
            retention_days: RetentionDays::default(),
            digest_hours: 24,
            link_days: 7,
            user_release: vec!["spam".into()],
            rejected_copy_days: 3,
            rejected_copy_classes: vec!["spam".into(), "phish".into(), "bec".into()],
        }
    }
}

/// Days a held message is kept, per verdict class.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetentionDays {
    /// Spam.
    pub spam: u32,
    /// Phishing.
    pub phish: u32,
    /// Viruses.
    pub virus: u32,
    /// Business email compromise.
    pub bec: u32,
    /// Anything else (e.g. mail refused for some recipients only).
    pub other: u32,
}

impl Default for RetentionDays {
    fn default() -> Self {
        Self {
            spam: 15,
            phish: 30,
            virus: 30,
            bec: 30,
            other: 30,
        }
    }
}

impl RetentionDays {
    /// The retention for a verdict class name.
    pub fn for_class(&self, class: &str) -> u32 {
        match class {
            "spam" => self.spam,
            "phish" => self.phish,
            "virus" => self.virus,
            "bec" => self.bec,
            _ => self.other,
        }
    }
}

/// Identity and storage locations.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// Name used in the SMTP greeting, EHLO and Received headers.
    pub hostname: String,
    /// Directory for the spool and the metadata database; must be on a durable filesystem.
    pub data_dir: PathBuf,
    /// On SIGTERM/SIGINT, seconds to let sessions inside a transaction finish before exiting.
    #[serde(default = "default_shutdown_grace")]
    pub shutdown_grace_secs: u64,
    /// Seal queued and quarantined message files with SM4-GCM under
    /// `data_dir/keys/spool-sm4.key` (created on first start). Files sealed earlier stay
    /// readable when this is turned off, as long as the key is there.
    #[serde(default = "yes")]
    pub encrypt_spool: bool,
    /// Directory of the message files; `data_dir/spool` when unset (packages use
    /// `/var/spool/jianmen`). Must be on the same durable filesystem rules as `data_dir`.
    #[serde(default)]
    pub spool_dir: Option<PathBuf>,
    /// The account a gateway started as root becomes once its ports are bound (systemd starts
    /// it as this user already). It must exist; the gateway never serves mail as root.
    #[serde(default = "default_user")]
    pub user: String,
    /// The time zone every page, mail and chart shows times in (an IANA name); the stores
    /// keep UTC.
    #[serde(default = "default_time_zone")]
    pub time_zone: String,
}

impl ServerConfig {
    /// [`ServerConfig::time_zone`], checked at load (UTC should it not parse).
    pub fn zone(&self) -> chrono_tz::Tz {
        self.time_zone.parse().unwrap_or(chrono_tz::UTC)
    }
}

/// `t` (Unix time) as a person in `zone` reads it, with its offset: `2026-12-06 09:55
/// (UTC+08:00)`.
pub fn time_text(t: i64, zone: chrono_tz::Tz) -> String {
    chrono::DateTime::from_timestamp(t, 0)
        .map(|d| {
            d.with_timezone(&zone)
                .format("%Y-%m-%d %H:%M (UTC%:z)")
                .to_string()
        })
        .unwrap_or_default()
}

fn default_time_zone() -> String {
    "Asia/Shanghai".into()
}

fn default_shutdown_grace() -> u64 {
    30
}

fn default_user() -> String {
    "jianmen".into()
}

/// The inbound SMTP listener and its limits.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SmtpConfig {
    /// Addresses to listen on.
    pub listen: Vec<SocketAddr>,
    /// Largest message accepted, in bytes (SIZE extension; 552 beyond).
    pub max_message_size: usize,
    /// Most recipients per message (452 4.5.3 beyond).
    pub max_recipients: usize,
    /// Longest command line in bytes, including CRLF (500 5.5.2 beyond).
    pub max_line_length: usize,
    /// Most commands that move no mail (EHLO, HELO, MAIL, RSET, NOOP, VRFY, HELP) between two
    /// accepted messages before 421: bounds sessions that loop without sending mail.
    pub max_junk_commands: usize,
    /// Most protocol errors per session before 421.
    pub max_errors: usize,
    /// Most messages per session.
    pub max_messages_per_session: usize,
    /// Seconds a client may stay silent.
    pub idle_timeout_secs: u64,
    /// Seconds a client may take to send its first command after the greeting (clients that
    /// connect and say nothing only hold a slot).
    pub first_command_timeout_secs: u64,
    /// Seconds a client may stay silent while the server is under stress (half of
    /// `max_sessions` in use), as Postfix shortens its timeouts under stress.
    pub stress_idle_timeout_secs: u64,
    /// Seconds a whole session may last.
    pub session_timeout_secs: u64,
    /// Concurrent sessions in total (421 beyond).
    pub max_sessions: usize,
    /// Concurrent sessions per client IP (421 beyond).
    pub max_sessions_per_ip: usize,
    /// Concurrent sessions per client network — an IPv4 /24 or IPv6 /64 (421 beyond). The last
    /// tenth of `max_sessions` is kept for networks that have no session open.
    pub max_sessions_per_network: usize,
    /// Most `Received:` headers before a message is taken to be looping (554 5.4.6).
    pub max_hops: usize,
    /// Most header fields in a message (552 5.3.4 beyond) — bounds header bombs.
    pub max_header_fields: usize,
    /// Refuse new mail (452 4.3.1) when the spool filesystem has less free space than this, in MiB.
    pub min_free_space_mib: u64,
    /// Message bytes all sessions together may hold in memory while receiving, in MiB; beyond
    /// it a message gets 452 4.3.1.
    pub max_inflight_mib: usize,
    /// Valid recipients (full addresses, case-insensitive); empty means every address of a protected
    /// domain is accepted.
    pub valid_recipients: Vec<String>,
    /// The organisation's mail servers (addresses or CIDR networks): the only clients whose
    /// mail may go to domains other than the protected ones (outbound) — and, when every
    /// recipient is local, internal mail. Empty: the gateway relays nothing outward.
    pub internal_relays: Vec<String>,
    /// Believe Postfix's XFORWARD (original client address, HELO, login) from internal relays.
    pub xforward: bool,
}

impl Default for SmtpConfig {
    fn default() -> Self {
        Self {
            listen: vec![SocketAddr::from(([0, 0, 0, 0], 25))],
            max_message_size: 50 * 1024 * 1024,
            max_recipients: 100,
            max_line_length: 4096,
            max_junk_commands: 100,
            max_errors: 20,
            max_messages_per_session: 1000,
            idle_timeout_secs: 300,
            first_command_timeout_secs: 30,
            stress_idle_timeout_secs: 10,
            session_timeout_secs: 1800,
            max_sessions: 1000,
            max_sessions_per_ip: 50,
            max_sessions_per_network: 100,
            max_hops: 50,
            max_header_fields: 1000,
            min_free_space_mib: 100,
            max_inflight_mib: 1024,
            valid_recipients: Vec::new(),
            internal_relays: Vec::new(),
            xforward: true,
        }
    }
}

impl SmtpConfig {
    /// Idle timeout as a duration.
    pub fn idle_timeout(&self) -> Duration {
        Duration::from_secs(self.idle_timeout_secs)
    }
    /// Session timeout as a duration.
    pub fn session_timeout(&self) -> Duration {
        Duration::from_secs(self.session_timeout_secs)
    }
}

/// Which recipient domains this gateway accepts mail for.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DomainsConfig {
    /// Protected domains (lower case); mail to any other domain is refused as relaying.
    pub protected: Vec<String>,
}

/// STARTTLS policy when delivering to a downstream server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TlsPolicy {
    /// Never use TLS.
    None,
    /// Use STARTTLS when offered; certificates are not verified (like Postfix `may`).
    Opportunistic,
    /// Defer unless STARTTLS succeeds; certificates are not verified (like Postfix `encrypt`).
    Required,
    /// As `required`, but the handshake after STARTTLS is TLCP (GB/T 38636), for downstreams
    /// that speak only TLCP; the key exchange must be signed by the server's signing key.
    Tlcp,
    /// As `required`, and the server must prove who it is (like Postfix `verify`): its
    /// certificate chains to the route's `tls_ca` (else the system's authorities) and names
    /// `tls_name` (else the host), or carries a public key in `tls_pins`.
    Verify,
    /// A server that offers STARTTLS must prove who it is as with `verify`; one that offers
    /// none gets the mail in clear as with `opportunistic`. The default for routes: a certificate
    /// an internal server presents is checked, and one that cannot be (self-made, expired,
    /// another name) stops delivery until it is pinned, its CA given, or the route relaxed.
    #[serde(rename = "verify-if-offered")]
    VerifyIfOffered,
}

impl TlsPolicy {
    /// Whether the server's certificate is checked when there is TLS.
    pub fn verifies(self) -> bool {
        matches!(self, Self::Verify | Self::VerifyIfOffered)
    }
}

/// A configured downstream for one recipient domain.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    /// Recipient domain (lower case), or `*` for every domain without its own route.
    pub domain: String,
    /// Downstream host name or IP address.
    pub host: String,
    /// Downstream port.
    #[serde(default = "default_smtp_port")]
    pub port: u16,
    /// STARTTLS policy towards this downstream.
    #[serde(default = "default_tls_policy")]
    pub tls: TlsPolicy,
    /// With `tls = "verify"`: a PEM file of the authorities the server's certificate must
    /// chain to (the site's own CA); the system's authorities when absent.
    #[serde(default)]
    pub tls_ca: Option<PathBuf>,
    /// With `tls = "verify"`: the name the server's certificate must carry (default: `host`).
    #[serde(default)]
    pub tls_name: Option<String>,
    /// With `tls = "verify"` or `"tlcp"`: `sha256:<hex>` of public keys (SubjectPublicKeyInfo)
    /// the server's (signing) certificate may carry, pinned instead of checked against an
    /// authority (`jianmen tls-probe` prints a TLS server's).
    #[serde(default)]
    pub tls_pins: Vec<String>,
}

impl RouteConfig {
    /// Whom this route's server must prove to be, for `tls = "verify"` (None: no proof asked).
    pub fn server_trust(&self) -> Result<Option<ServerTrust>, String> {
        let pins = self.pins()?;
        if !self.tls.verifies() {
            if self.tls_ca.is_some() || self.tls_name.is_some() {
                return Err(
                    "tls_ca and tls_name need tls = \"verify\" or \"verify-if-offered\"".into(),
                );
            }
            if !pins.is_empty() && self.tls != TlsPolicy::Tlcp {
                return Err(
                    "tls_pins need tls = \"verify\", \"verify-if-offered\" or \"tlcp\"".into(),
                );
            }
            return Ok(None);
        }
        if let Some(name) = &self.tls_name
            && !is_domain_like(name)
            && name.parse::<std::net::IpAddr>().is_err()
        {
            return Err(format!("tls_name `{name}` is not a host name or address"));
        }
        match (&self.tls_ca, pins.is_empty()) {
            (Some(_), false) => Err("give tls_ca or tls_pins, not both".into()),
            (None, true) => Ok(Some(ServerTrust::SystemAuthorities)),
            (None, false) => Ok(Some(ServerTrust::Pins(pins))),
            (Some(ca), true) => load_authorities(ca).map(Some),
        }
    }

    /// The public keys pinned for this route's server (`tls_pins`).
    pub fn pins(&self) -> Result<Vec<[u8; 32]>, String> {
        self.tls_pins.iter().map(|p| parse_pin(p)).collect()
    }

    /// The name the server's certificate must carry.
    pub fn tls_name(&self) -> &str {
        self.tls_name.as_deref().unwrap_or(&self.host)
    }
}

/// The authorities in the PEM file `ca` (a `tls_ca`), as whom a server's chain may lead to.
fn load_authorities(ca: &Path) -> Result<ServerTrust, String> {
    use rustls_pki_types::pem::PemObject;
    let certs: Vec<_> = rustls_pki_types::CertificateDer::pem_file_iter(ca)
        .and_then(|i| i.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("tls_ca {}: {e}", ca.display()))?;
    if certs.is_empty() {
        return Err(format!("tls_ca {}: no certificate", ca.display()));
    }
    Ok(ServerTrust::Authorities(certs))
}

/// The TLS client check for a server whose certificate chains to `tls_ca` (the system's
/// authorities when none is given).
pub(crate) fn verifying_client(
    tls_ca: Option<&Path>,
) -> Result<std::sync::Arc<rustls::ClientConfig>, String> {
    let trust = match tls_ca {
        Some(ca) => load_authorities(ca)?,
        None => ServerTrust::SystemAuthorities,
    };
    jianmen_gm::tls::verifying_client_config(&trust).map_err(|e| e.to_string())
}

/// `sha256:<64 hex digits>` as the 32 bytes it names.
fn parse_pin(pin: &str) -> Result<[u8; 32], String> {
    let bad = || format!("tls_pins: `{pin}` is not sha256:<64 hex digits>");
    let hex = pin.strip_prefix("sha256:").ok_or_else(bad)?;
    if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(bad());
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).map_err(|_| bad())?;
    }
    Ok(out)
}

fn yes() -> bool {
    true
}

fn default_smtp_port() -> u16 {
    25
}
fn default_tls_policy() -> TlsPolicy {
    TlsPolicy::VerifyIfOffered
}

/// Queue retry and outbound delivery settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DeliveryConfig {
    /// First retry delay in seconds; doubles on every further failure.
    pub retry_initial_secs: u64,
    /// Longest delay between retries, in seconds.
    pub retry_max_secs: u64,
    /// A message still undelivered after this many seconds is bounced.
    pub max_lifetime_secs: u64,
    /// Concurrent deliveries to one destination.
    pub concurrency_per_destination: usize,
    /// Concurrent deliveries in total.
    pub max_concurrency: usize,
    /// TCP connect timeout in seconds.
    pub connect_timeout_secs: u64,
    /// Timeout for each SMTP reply, in seconds.
    pub command_timeout_secs: u64,
    /// Seconds an idle downstream connection is kept for reuse.
    pub connection_idle_secs: u64,
    /// Messages sent over one connection before it is closed.
    pub max_messages_per_connection: usize,
    /// Port used for MX-routed deliveries.
    pub mx_port: u16,
    /// STARTTLS policy for MX-routed deliveries.
    pub mx_tls: TlsPolicy,
    /// DANE (RFC 7672) for MX deliveries: an MX host whose TLSA records validate under DNSSEC
    /// gets mail only over TLS with a certificate those records name.
    pub dane: bool,
    /// MTA-STS (RFC 8461) for MX deliveries: a domain that publishes an `enforce` policy gets
    /// mail only through the MX hosts it lists, over TLS checked against `tls_ca`.
    pub mta_sts: bool,
    /// Port of the HTTPS server an MTA-STS policy is fetched from (443; another only to test).
    pub mta_sts_port: u16,
    /// A PEM file of the authorities MX hosts (`mx_tls = "verify"`, MTA-STS) and MTA-STS
    /// policy servers are checked against, for a site with its own PKI; the system's when absent.
    pub tls_ca: Option<PathBuf>,
}

impl DeliveryConfig {
    /// Whom MX hosts that must prove who they are (`mx_tls = "verify"`, MTA-STS) and MTA-STS
    /// policy servers may chain to.
    pub fn public_trust(&self) -> Result<ServerTrust, String> {
        self.tls_ca
            .as_deref()
            .map_or(Ok(ServerTrust::SystemAuthorities), load_authorities)
    }
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        Self {
            retry_initial_secs: 60,
            retry_max_secs: 3600,
            max_lifetime_secs: 5 * 24 * 3600,
            concurrency_per_destination: 10,
            max_concurrency: 100,
            connect_timeout_secs: 30,
            command_timeout_secs: 300,
            connection_idle_secs: 30,
            max_messages_per_connection: 100,
            mx_port: 25,
            mx_tls: TlsPolicy::Opportunistic,
            dane: true,
            mta_sts: true,
            mta_sts_port: 443,
            tls_ca: None,
        }
    }
}

/// Prometheus metrics endpoint.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// Address of the `/metrics` HTTP endpoint; absent disables it.
    pub listen: Option<SocketAddr>,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        Self {
            listen: Some(SocketAddr::from(([127, 0, 0, 1], 9125))),
        }
    }
}

impl Config {
    /// The detection policy the file gives: `[scan]`'s editable part and the `[dlp]` policies,
    /// the first version of what the console edits.
    pub fn scan_policy(&self) -> jianmen_scan::config::ScanPolicy {
        self.scan.scan_policy(&self.dlp)
    }

    /// Reads, parses and validates a configuration file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        Ok(Self::load_file(path)?.with_saved_settings())
    }

    /// The configuration file alone, without the settings changed in the console.
    pub fn load_file(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let mut config = Self::parse(&text).map_err(|e| match e {
            ConfigError::Parse { message, .. } => ConfigError::Parse {
                path: path.to_owned(),
                message,
            },
            other => other,
        })?;
        config.file = Some(path.to_owned());
        Ok(config)
    }

    /// This configuration with the console's saved settings laid over it; ones it no longer
    /// agrees with are left out, and [`Config::settings`] says why.
    fn with_saved_settings(self) -> Self {
        use crate::settings::SettingsState;
        let refused = |mut config: Config, why: String| {
            config.settings = SettingsState::Refused(why);
            config
        };
        match crate::settings::read(&self.server.data_dir) {
            Ok(None) => self,
            Ok(Some(saved)) => match self.clone().overlaid(&saved) {
                Ok(mut config) => {
                    config.settings = SettingsState::Applied;
                    config
                }
                Err(e) => refused(self, e.to_string()),
            },
            Err(e) => refused(self, e.to_string()),
        }
    }

    /// This configuration with `settings` laid over it, checked as a whole as the file is —
    /// and first within the bounds the console may set, whoever wrote the settings file.
    pub fn overlaid(
        mut self,
        settings: &crate::settings::SystemSettings,
    ) -> Result<Self, ConfigError> {
        settings
            .check_bounds()
            .map_err(|(key, why)| invalid(key, why))?;
        settings.apply(&mut self);
        self.normalise();
        self.validate()?;
        Ok(self)
    }

    /// Parses and validates configuration text.
    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        let mut config: Config = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: PathBuf::from("<config>"),
            message: e.to_string(),
        })?;
        config.normalise();
        config.validate()?;
        Ok(config)
    }

    fn normalise(&mut self) {
        for d in &mut self.domains.protected {
            *d = d.trim().trim_end_matches('.').to_ascii_lowercase();
        }
        for r in &mut self.routes {
            r.domain = r.domain.trim().trim_end_matches('.').to_ascii_lowercase();
        }
        for p in &mut self.scan.policy {
            p.domain = p.domain.trim().trim_end_matches('.').to_ascii_lowercase();
        }
        for b in &mut self.scan.attachments.blocked {
            *b = b.trim().trim_start_matches('.').to_ascii_lowercase();
        }
        for a in &mut self.smtp.valid_recipients {
            *a = a.trim().to_lowercase();
        }
    }

    fn validate(&self) -> Result<(), ConfigError> {
        self.behaviour
            .check()
            .map_err(|e| invalid("behaviour", e))?;
        self.relay.check().map_err(|e| invalid("relay", e))?;
        self.recall.check().map_err(|e| invalid("recall", e))?;
        self.intel.check().map_err(|e| invalid("intel", e))?;
        self.links.check().map_err(|e| invalid("links", e))?;
        if self.server.time_zone.parse::<chrono_tz::Tz>().is_err() {
            return Err(invalid(
                "server.time_zone",
                "not a time zone of the IANA database (Asia/Shanghai, UTC, …)",
            ));
        }
        self.drills.check().map_err(|e| invalid("drills", e))?;
        if let Some((key, reason)) = self.store.problem() {
            return Err(invalid(key, reason));
        }
        if let Some(d) = &self.directory {
            d.check().map_err(|e| invalid("directory", e))?;
        }
        if self.links.enabled && !self.scan.enabled {
            return Err(invalid(
                "links.enabled",
                "clicks are judged by the scanner: needs scan.enabled",
            ));
        }
        if let Some(collector) = &self.audit.syslog
            && collector
                .rsplit_once(':')
                .is_none_or(|(host, port)| host.is_empty() || port.parse::<u16>().is_err())
        {
            return Err(invalid("audit.syslog", "must be host:port"));
        }
        if let Some(c) = &self.console {
            jianmen_scan::reputation::AddressList::parse(&c.allow_from).map_err(|e| {
                invalid(
                    "console.allow_from",
                    format!("`{}` is not an address or network", e.0),
                )
            })?;
            for (key, value, range) in [
                (
                    "console.session_idle_minutes",
                    c.session_idle_minutes,
                    1..=1440,
                ),
                ("console.session_max_hours", c.session_max_hours, 1..=168),
                ("console.lockout_failures", c.lockout_failures, 1..=100),
                ("console.lockout_minutes", c.lockout_minutes, 1..=10080),
            ] {
                if !range.contains(&value) {
                    return Err(invalid(
                        key,
                        format!("must be {} to {}", range.start(), range.end()),
                    ));
                }
            }
            if !(8..=128).contains(&c.password_min_length) {
                return Err(invalid("console.password_min_length", "must be 8 to 128"));
            }
            if let Some(url) = &c.public_url
                && (!url.starts_with("https://")
                    || url.len() > 200
                    || url.contains(['"', '<', '>', ' ']))
            {
                return Err(invalid("console.public_url", "must be an https:// address"));
            }
        }
        self.dkim.validate()?;
        if !(1..=3650).contains(&self.tracking.retention_days) {
            return Err(invalid("tracking.retention_days", "must be 1 to 3650 days"));
        }
        let r = &self.quarantine.retention_days;
        for (class, days) in [
            ("spam", r.spam),
            ("phish", r.phish),
            ("virus", r.virus),
            ("bec", r.bec),
            ("other", r.other),
        ] {
            if !(1..=3650).contains(&days) {
                return Err(invalid(
                    format!("quarantine.retention_days.{class}"),
                    "must be 1 to 3650 days",
                ));
            }
        }
        let q = &self.quarantine;
        if q.digest_hours > 24 * 31 {
            return Err(invalid("quarantine.digest_hours", "must be 0 to 744 hours"));
        }
        if !(1..=90).contains(&q.link_days) {
            return Err(invalid("quarantine.link_days", "must be 1 to 90 days"));
        }
        for (key, classes) in [
            ("quarantine.user_release", &q.user_release),
            ("quarantine.rejected_copy_classes", &q.rejected_copy_classes),
        ] {
            if let Some(c) = classes.iter().find(|c| !HELD_CLASSES.contains(&c.as_str())) {
                return Err(invalid(
                    key,
                    format!("`{c}` is not a class ({})", HELD_CLASSES.join(", ")),
                ));
            }
        }
        if q.rejected_copy_days > 30 {
            return Err(invalid(
                "quarantine.rejected_copy_days",
                "must be 0 to 30 days",
            ));
        }
        if !is_domain_like(&self.server.hostname) {
            return Err(invalid("server.hostname", "must be a host name"));
        }
        if self.domains.protected.is_empty() {
            return Err(invalid("domains.protected", "list at least one domain"));
        }
        for d in &self.domains.protected {
            if !is_domain_like(d) {
                return Err(invalid(
                    "domains.protected",
                    format!("`{d}` is not a domain"),
                ));
            }
        }
        let s = &self.smtp;
        if s.listen.is_empty() {
            return Err(invalid("smtp.listen", "list at least one address"));
        }
        let positive = [
            ("smtp.max_message_size", s.max_message_size as u64),
            ("smtp.max_recipients", s.max_recipients as u64),
            ("smtp.max_junk_commands", s.max_junk_commands as u64),
            ("smtp.max_errors", s.max_errors as u64),
            (
                "smtp.max_messages_per_session",
                s.max_messages_per_session as u64,
            ),
            ("smtp.idle_timeout_secs", s.idle_timeout_secs),
            (
                "smtp.first_command_timeout_secs",
                s.first_command_timeout_secs,
            ),
            ("smtp.stress_idle_timeout_secs", s.stress_idle_timeout_secs),
            ("smtp.session_timeout_secs", s.session_timeout_secs),
            ("smtp.max_sessions", s.max_sessions as u64),
            ("smtp.max_sessions_per_ip", s.max_sessions_per_ip as u64),
            (
                "smtp.max_sessions_per_network",
                s.max_sessions_per_network as u64,
            ),
            ("smtp.max_hops", s.max_hops as u64),
            ("smtp.max_header_fields", s.max_header_fields as u64),
            ("smtp.max_inflight_mib", s.max_inflight_mib as u64),
            (
                "delivery.retry_initial_secs",
                self.delivery.retry_initial_secs,
            ),
            ("delivery.retry_max_secs", self.delivery.retry_max_secs),
            (
                "delivery.max_lifetime_secs",
                self.delivery.max_lifetime_secs,
            ),
            (
                "delivery.concurrency_per_destination",
                self.delivery.concurrency_per_destination as u64,
            ),
            (
                "delivery.max_concurrency",
                self.delivery.max_concurrency as u64,
            ),
            (
                "delivery.connect_timeout_secs",
                self.delivery.connect_timeout_secs,
            ),
            (
                "delivery.command_timeout_secs",
                self.delivery.command_timeout_secs,
            ),
            (
                "delivery.max_messages_per_connection",
                self.delivery.max_messages_per_connection as u64,
            ),
        ];
        for (key, value) in positive {
            if value == 0 {
                return Err(invalid(key, "must be greater than 0"));
            }
        }
        if !(512..=1024 * 1024).contains(&s.max_line_length) {
            return Err(invalid(
                "smtp.max_line_length",
                "must be between 512 (RFC 5321 minimum) and 1048576",
            ));
        }
        if self.delivery.retry_max_secs < self.delivery.retry_initial_secs {
            return Err(invalid(
                "delivery.retry_max_secs",
                "must not be smaller than delivery.retry_initial_secs",
            ));
        }
        for relay in &s.internal_relays {
            let (host, prefix) = match relay.split_once('/') {
                Some((net, len)) => (net.trim(), len.trim().parse::<u8>().ok()),
                None => (relay.trim(), None),
            };
            let Ok(ip) = host.parse::<std::net::IpAddr>() else {
                return Err(invalid(
                    "smtp.internal_relays",
                    format!("`{relay}` is not an address or network"),
                ));
            };
            // A relay list is the organisation's own servers: a network wider than a /8 (or
            // an IPv6 /32) would let the Internet relay through the gateway.
            let (narrowest, widest) = match ip {
                std::net::IpAddr::V4(_) => (32, 8),
                std::net::IpAddr::V6(v6) if v6.to_ipv4_mapped().is_some() => (0, 129),
                std::net::IpAddr::V6(_) => (128, 32),
            };
            let prefix = match (relay.contains('/'), prefix) {
                (false, _) => narrowest,
                (true, Some(p)) => p,
                (true, None) => 0,
            };
            if !(widest..=narrowest).contains(&prefix)
                || jianmen_scan::reputation::AddressList::parse(std::slice::from_ref(relay))
                    .is_err()
            {
                return Err(invalid(
                    "smtp.internal_relays",
                    format!(
                        "`{relay}` is not the address or network of the organisation's own \
                         servers (IPv4 networks /8 or narrower, IPv6 /32 or narrower, no \
                         IPv4-mapped IPv6)"
                    ),
                ));
            }
        }
        for a in &s.valid_recipients {
            match a.rsplit_once('@') {
                Some((local, domain)) if !local.is_empty() && is_domain_like(domain) => {}
                _ => {
                    return Err(invalid(
                        "smtp.valid_recipients",
                        format!("`{a}` is not an address"),
                    ));
                }
            }
        }
        if let Some(tls) = &self.tls {
            match (&tls.cert, &tls.key, tls.self_signed) {
                (Some(_), Some(_), false) | (None, None, true) => {}
                _ => {
                    return Err(invalid(
                        "tls",
                        "set either both `cert` and `key`, or `self_signed = true`",
                    ));
                }
            }
            if tls.sm_cert.is_some() != tls.sm_key.is_some() {
                return Err(invalid(
                    "tls",
                    "set both `sm_cert` and `sm_key`, or neither",
                ));
            }
            if tls.sm_enc_cert.is_some() != tls.sm_enc_key.is_some() {
                return Err(invalid(
                    "tls",
                    "set both `sm_enc_cert` and `sm_enc_key`, or neither",
                ));
            }
        }
        let mut seen = BTreeSet::new();
        for (i, r) in self.routes.iter().enumerate() {
            let key = format!("route[{i}]");
            if r.domain != "*" && !is_domain_like(&r.domain) {
                return Err(invalid(format!("{key}.domain"), "must be a domain or `*`"));
            }
            if !seen.insert(r.domain.clone()) {
                return Err(invalid(
                    format!("{key}.domain"),
                    format!("`{}` has more than one route", r.domain),
                ));
            }
            if r.host.is_empty() || r.host.contains(char::is_whitespace) {
                return Err(invalid(
                    format!("{key}.host"),
                    "must be a host name or address",
                ));
            }
            if r.port == 0 {
                return Err(invalid(format!("{key}.port"), "must be greater than 0"));
            }
            r.server_trust()
                .map_err(|e| invalid(format!("{key}.tls"), e))?;
        }
        self.validate_scan()
    }

    fn validate_scan(&self) -> Result<(), ConfigError> {
        let scan = &self.scan;
        self.scan_policy()
            .check(&self.domains.protected)
            .map_err(|e| invalid(e.key, e.why))?;
        for (key, zones) in [("scan.dnsbl", &scan.dnsbl), ("scan.uribl", &scan.uribl)] {
            for z in zones {
                if !is_domain_like(&z.zone) {
                    return Err(invalid(key, format!("`{}` is not a DNS zone", z.zone)));
                }
            }
        }
        if !(10..=600_000).contains(&scan.budget_ms) {
            return Err(invalid(
                "scan.budget_ms",
                "must be 10 to 600000 milliseconds",
            ));
        }
        // The rule files are compiled once, by the pipeline at start-up (and by `check-config`),
        // not here as well.
        Ok(())
    }

    /// Whether `domain` (lower case) is one this gateway accepts mail for.
    pub fn is_protected(&self, domain: &str) -> bool {
        self.domains.protected.iter().any(|d| d == domain)
    }

    /// Path of the spool directory.
    pub fn spool_dir(&self) -> PathBuf {
        match &self.server.spool_dir {
            Some(dir) => dir.clone(),
            None => self.server.data_dir.join("spool"),
        }
    }

    /// Path of the SQLite metadata database.
    pub fn database_path(&self) -> PathBuf {
        self.server.data_dir.join(DATABASE_FILE)
    }

    /// Where recipients reach the console (for mailed links), when there is a console.
    pub fn console_url(&self) -> Option<String> {
        let c = self.console.as_ref()?;
        Some(match &c.public_url {
            Some(url) => url.trim_end_matches('/').to_owned(),
            None => format!("https://{}:{}", self.server.hostname, c.listen.port()),
        })
    }
}

/// A loose check that a string is a DNS name: labels of letters, digits, hyphens (and underscores,
/// seen in the wild), no empty label, at most 253 bytes.
pub fn is_domain_like(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Finding 5 of the hardening review: a console section without `allow_from` let the
    /// whole world try passwords.
    #[test]
    fn the_console_takes_sign_ins_from_local_networks_unless_told_otherwise() {
        let base = "[server]\nhostname = \"gw.test\"\ndata_dir = \"/tmp/x\"\n\
                    [domains]\nprotected = [\"example.com\"]\n[console]\n";
        let c = Config::parse(base).unwrap();
        let allow = &c.console.unwrap().allow_from;
        assert_eq!(
            allow,
            &LOCAL_NETWORKS
                .iter()
                .map(|n| n.to_string())
                .collect::<Vec<_>>()
        );
        let list = jianmen_scan::reputation::AddressList::parse(allow).unwrap();
        for local in ["127.0.0.1", "10.1.2.3", "192.168.1.1", "::1", "fd00::1"] {
            assert!(list.matches(local.parse().ok(), &[]).is_some(), "{local}");
        }
        for outside in ["8.8.8.8", "2001:db8::1", "172.32.0.1"] {
            assert!(
                list.matches(outside.parse().ok(), &[]).is_none(),
                "{outside}"
            );
        }
        let open = Config::parse(&format!("{base}allow_from = []\n")).unwrap();
        assert!(
            open.console.unwrap().allow_from.is_empty(),
            "an explicit [] allows any"
        );
    }

    const MINIMAL: &str = r#"
        [server]
        hostname = "mx.example.com"
        data_dir = "/tmp/x"
        [domains]
        protected = ["Example.COM"]
    "#;

    #[test]
    fn minimal_config_gets_defaults_and_normalised_domains() {
        let c = Config::parse(MINIMAL).unwrap();
        assert!(c.is_protected("example.com"));
        assert_eq!(c.smtp.max_recipients, 100);
        assert_eq!(c.delivery.mx_port, 25);
        assert!(c.tls.is_none());
    }

    #[test]
    fn unknown_key_is_named() {
        let text = format!("{MINIMAL}\n[smtp]\nmax_recipent = 5\n");
        let err = Config::parse(&text).unwrap_err().to_string();
        assert!(err.contains("max_recipent"), "{err}");
    }

    /// Review of issue 22: `internal_relays = ["0.0.0.0/0"]` made the gateway an open relay.
    #[test]
    fn internal_relays_are_the_organisations_servers_not_the_internet() {
        let relays = |list: &str| {
            Config::parse(&format!("{MINIMAL}\n[smtp]\ninternal_relays = [{list}]\n"))
                .map(|c| c.smtp.internal_relays)
                .map_err(|e| e.to_string())
        };
        for ok in [
            r#""10.0.0.25""#,
            r#""10.0.0.0/8""#,
            r#""192.168.1.0/24", "2001:db8::25""#,
            r#""2001:db8::/32""#,
        ] {
            assert!(relays(ok).is_ok(), "{ok}: {:?}", relays(ok));
        }
        for open in [
            r#""0.0.0.0/0""#,
            r#""10.0.0.0/7""#,
            r#""::/0""#,
            r#""2001::/16""#,
            r#""::ffff:0:0/96""#,
            r#""::ffff:10.0.0.25""#,
            r#""10.0.0.0/33""#,
            r#""mail.example.com""#,
            r#""@example.com""#,
        ] {
            let err = relays(open).unwrap_err();
            assert!(err.contains("smtp.internal_relays"), "{open}: {err}");
        }
    }

    #[test]
    fn zero_limit_is_rejected_with_its_key() {
        let text = format!("{MINIMAL}\n[smtp]\nmax_recipients = 0\n");
        let err = Config::parse(&text).unwrap_err().to_string();
        assert!(err.contains("smtp.max_recipients"), "{err}");
    }

    #[test]
    fn route_proof_settings_are_checked() {
        let route = |lines: &str| {
            Config::parse(&format!(
                "{MINIMAL}\n[[route]]\ndomain = \"example.com\"\nhost = \"10.0.0.25\"\n{lines}\n"
            ))
        };
        let pin = format!("sha256:{}", "0f".repeat(32));
        let c = route(&format!("tls = \"verify\"\ntls_pins = [\"{pin}\"]")).unwrap();
        assert!(matches!(
            c.routes[0].server_trust(),
            Ok(Some(ServerTrust::Pins(p))) if p == vec![[0x0f; 32]]
        ));
        assert!(matches!(
            route("tls = \"verify\"").unwrap().routes[0].server_trust(),
            Ok(Some(ServerTrust::SystemAuthorities))
        ));
        let tlcp = route(&format!("tls = \"tlcp\"\ntls_pins = [\"{pin}\"]")).unwrap();
        assert_eq!(tlcp.routes[0].pins().unwrap(), vec![[0x0f; 32]]);
        for bad in [
            format!("tls = \"required\"\ntls_pins = [\"{pin}\"]"),
            "tls = \"tlcp\"\ntls_name = \"mail.example.com\"".to_owned(),
            "tls = \"verify\"\ntls_pins = [\"sha256:12\"]".to_owned(),
            "tls = \"verify\"\ntls_pins = [\"md5:00\"]".to_owned(),
            format!(
                "tls = \"verify\"\ntls_pins = [\"{pin}\"]\ntls_ca = \"/etc/ssl/certs/ca-certificates.crt\""
            ),
            "tls = \"verify\"\ntls_ca = \"/nonexistent/ca.pem\"".to_owned(),
            "tls = \"verify\"\ntls_name = \"not a name\"".to_owned(),
        ] {
            let err = route(&bad).unwrap_err().to_string();
            assert!(err.contains("route[0].tls"), "{bad}: {err}");
        }
    }

    #[test]
    fn audit_syslog_needs_host_and_port() {
        for bad in ["siem.example.com", ":514", "siem:99999"] {
            let text = format!("{MINIMAL}\n[audit]\nsyslog = \"{bad}\"\n");
            let err = Config::parse(&text).unwrap_err().to_string();
            assert!(err.contains("audit.syslog"), "{bad}: {err}");
        }
        let text = format!("{MINIMAL}\n[audit]\nsyslog = \"[::1]:601\"\n");
        assert_eq!(
            Config::parse(&text).unwrap().audit.syslog.as_deref(),
            Some("[::1]:601")
        );
    }

    #[test]
    fn tls_needs_cert_and_key_or_self_signed() {
        let text = format!("{MINIMAL}\n[tls]\ncert = \"/a.pem\"\n");
        let err = Config::parse(&text).unwrap_err().to_string();
        assert!(err.contains("`tls`"), "{err}");
    }

    #[test]
    fn duplicate_route_is_rejected() {
        let text = format!(
            "{MINIMAL}\n[[route]]\ndomain = \"a.com\"\nhost = \"h\"\n[[route]]\ndomain = \"A.com\"\nhost = \"h2\"\n"
        );
        let err = Config::parse(&text).unwrap_err().to_string();
        assert!(err.contains("route[1].domain"), "{err}");
    }

    #[test]
    fn the_documented_cluster_store_is_valid() {
        let example = include_str!("../../config/jianmen.example.toml");
        let (before, store) = example.split_once("# [store]").unwrap();
        let uncommented: String = format!("# [store]{store}")
            .lines()
            .map(|l| format!("{}\n", l.trim_start_matches("# ")))
            .collect();
        let c = Config::parse(&format!("{before}{uncommented}")).unwrap();
        assert_eq!(c.store.backend, crate::store::Backend::Postgres);
        assert_eq!(c.store.tls, crate::store::PostgresTls::VerifyFull);
        assert_eq!(c.store.node_name.as_deref(), Some("gw-1"));
    }

    #[test]
    fn documented_example_is_valid() {
        let c = Config::parse(include_str!("../../config/jianmen.example.toml")).unwrap();
        assert_eq!(c.routes[0].tls, TlsPolicy::VerifyIfOffered);
        assert!(c.delivery.dane && c.delivery.mta_sts);
        assert_eq!(c.smtp.max_errors, SmtpConfig::default().max_errors);
        assert_eq!(
            c.delivery.max_lifetime_secs,
            DeliveryConfig::default().max_lifetime_secs
        );
    }

    #[test]
    fn routes_verify_an_offered_certificate_unless_told_otherwise() {
        let route: RouteConfig =
            toml::from_str("domain = \"example.com\"\nhost = \"10.0.0.25\"").unwrap();
        assert_eq!(route.tls, TlsPolicy::VerifyIfOffered);
        assert!(matches!(
            route.server_trust(),
            Ok(Some(ServerTrust::SystemAuthorities))
        ));
        let relaxed: RouteConfig = toml::from_str(
            "domain = \"example.com\"\nhost = \"10.0.0.25\"\ntls = \"opportunistic\"",
        )
        .unwrap();
        assert!(matches!(relaxed.server_trust(), Ok(None)));
    }

    #[test]
    fn domain_check() {
        assert!(is_domain_like("mail.example.com"));
        assert!(!is_domain_like("a..b"));
        assert!(!is_domain_like("a b"));
        assert!(!is_domain_like(""));
    }
}
