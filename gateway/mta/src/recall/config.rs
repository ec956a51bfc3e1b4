//! The `[recall]` section: how delivered mail is taken back out of the organisation's
//! mailboxes, and the mail systems that can be reached for it.

use std::path::PathBuf;

use serde::Deserialize;

/// The `[recall]` section. Without connectors nothing can be recalled (the hunt index is kept
/// all the same).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RecallConfig {
    /// The mail systems, by the recipient domains they hold (`[[recall.imap]]`).
    pub imap: Vec<ImapConfig>,
    /// The folder recalled messages are moved to, created when missing.
    pub folder: String,
    /// `move` (to `folder`, can be undone) or `delete` (expunged at once; cannot).
    pub action: RecallAction,
    /// Mailboxes worked on at once.
    pub concurrency: usize,
    /// Seconds each IMAP exchange may take.
    pub timeout_secs: u64,
    /// Tell each recipient whose mailbox a message was taken from (what, from whom, why).
    pub notify_recipients: bool,
}

impl Default for RecallConfig {
    fn default() -> Self {
        Self {
            imap: Vec::new(),
            folder: "Recalled".into(),
            action: RecallAction::Move,
            concurrency: 4,
            timeout_secs: 30,
            notify_recipients: false,
        }
    }
}

/// What recalling does to a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RecallAction {
    /// Moved to the recall folder.
    Move,
    /// Expunged.
    Delete,
}

/// How the connection to the IMAP server is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ImapTls {
    /// TLS from the start (port 993), the server's certificate checked.
    Tls,
    /// No TLS: only for a server on this host or a protected network.
    None,
}

/// One mail system reached by IMAP with an administrator's (master user's) right to log in as
/// any user (Dovecot's `user*master`; Coremail, Domino and Exchange have their own forms).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImapConfig {
    /// Recipient domains whose mailboxes live there (lower case).
    pub domains: Vec<String>,
    /// Host name or address.
    pub host: String,
    /// Port.
    #[serde(default = "imaps")]
    pub port: u16,
    /// Protection of the connection.
    #[serde(default = "tls")]
    pub tls: ImapTls,
    /// A PEM file of the authorities the server's certificate must chain to (the system's when
    /// absent).
    #[serde(default)]
    pub tls_ca: Option<PathBuf>,
    /// The name the certificate must carry (default: `host`).
    #[serde(default)]
    pub tls_name: Option<String>,
    /// The administrator (master user) name.
    pub master_user: String,
    /// A file holding its password.
    pub password_file: PathBuf,
    /// The login name: `{user}` is the mailbox's user, `{master}` the master user.
    #[serde(default = "dovecot_login")]
    pub login: String,
    /// What the mailbox's user is called there: `address` (alice@example.com) or `local`
    /// (alice).
    #[serde(default = "address")]
    pub user: String,
}

impl ImapConfig {
    /// The login for `mailbox` (a recipient address).
    pub fn login_for(&self, mailbox: &str) -> String {
        let user = if self.user == "local" {
            mailbox.rsplit_once('@').map_or(mailbox, |(local, _)| local)
        } else {
            mailbox
        };
        self.login
            .replace("{user}", user)
            .replace("{master}", &self.master_user)
    }
}

fn imaps() -> u16 {
    993
}
fn tls() -> ImapTls {
    ImapTls::Tls
}
fn dovecot_login() -> String {
    "{user}*{master}".into()
}
fn address() -> String {
    "address".into()
}

impl RecallConfig {
    /// Why the section cannot be used, if it cannot.
    pub fn check(&self) -> Result<(), String> {
        let bad_folder = self.folder.is_empty()
            || self.folder.len() > 100
            || self.folder.chars().any(|c| {
                !c.is_ascii() || c.is_control() || c == '"' || c == '\\' || c == '*' || c == '%'
            });
        if bad_folder {
            return Err(
                "folder: 1–100 ASCII characters, no quotes, backslashes, wildcards or controls"
                    .into(),
            );
        }
        if self.concurrency == 0 || self.timeout_secs == 0 {
            return Err("concurrency and timeout_secs must be at least 1".into());
        }
        for i in &self.imap {
            if i.domains.is_empty() {
                return Err(format!("recall.imap {}: no domains", i.host));
            }
            if !i.login.contains("{user}") {
                return Err(format!(
                    "recall.imap {}: login must contain {{user}}",
                    i.host
                ));
            }
            if i.user != "address" && i.user != "local" {
                return Err(format!(
                    "recall.imap {}: user is `address` or `local`",
                    i.host
                ));
            }
            let controls = |s: &str| s.chars().any(|c| c.is_control() || c == '"');
            if controls(&i.master_user) || controls(&i.login) {
                return Err(format!(
                    "recall.imap {}: quotes or controls in the login",
                    i.host
                ));
            }
        }
        Ok(())
    }

    /// Which `imap` entry holds `mailbox`'s messages, if one is configured.
    pub fn system_for(&self, mailbox: &str) -> Option<usize> {
        let domain = mailbox.rsplit_once('@')?.1.to_ascii_lowercase();
        self.imap
            .iter()
            .position(|i| i.domains.iter().any(|d| d.eq_ignore_ascii_case(&domain)))
    }
}
