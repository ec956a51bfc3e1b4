//! The organisation's directory (LDAP; Active Directory alike): who a person signing in to the
//! recipients' self-service pages is, and which addresses are theirs. The gateway keeps no
//! recipients' passwords: it finds the person's entry (as a service account, or anonymously),
//! then binds as that entry with the password they typed — the directory decides, its own
//! lockout and password rules included.
//!
//! The directory is another party's server, so its answers are bounded like any input: one
//! sign-in takes at most `timeout_secs` in all (waiting for its turn included), at most two
//! entries are read from a search (two means the name is ambiguous: refused; references and
//! intermediate messages are not entries), an entry the client library cannot read is an
//! unavailable directory rather than a crash, and at most [`MAX_ADDRESSES`] addresses are
//! taken from the entry. Sign-ins run [`MAX_AT_ONCE`] at a time, so a flood of them cannot
//! become a flood of binds against the directory.
//!
//! Left as it is: an unknown name is refused without a bind, so it is answered a little
//! sooner than a wrong password — the per-source failure limit of the caller bounds what that
//! timing can enumerate.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use ldap3::{LdapConnAsync, LdapConnSettings, Scope, SearchEntry};
use serde::Deserialize;

/// Addresses taken from one entry at most.
pub const MAX_ADDRESSES: usize = 50;
/// Sign-ins against the directory at once.
pub const MAX_AT_ONCE: usize = 8;
/// Longest name or password accepted.
const MAX_INPUT: usize = 256;

/// The `[directory]` section.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DirectoryConfig {
    /// `ldaps://dc.example.com` (TLS from the start) or `ldap://dc.example.com` (with
    /// `starttls`; plain only for a directory on this host or a protected network).
    pub url: String,
    /// Upgrade an `ldap://` connection with StartTLS before anything is sent.
    #[serde(default)]
    pub starttls: bool,
    /// A PEM file of the authorities the directory's certificate must chain to (the system's
    /// when absent).
    #[serde(default)]
    pub tls_ca: Option<PathBuf>,
    /// The service account that searches (none: an anonymous search).
    #[serde(default)]
    pub bind_dn: Option<String>,
    /// A file holding the service account's password.
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    /// Where people's entries are searched, the whole subtree.
    pub base_dn: String,
    /// The search filter; `{user}` is what the person typed, escaped (RFC 4515). Active
    /// Directory: `(|(sAMAccountName={user})(userPrincipalName={user})(mail={user}))`.
    #[serde(default = "default_filter")]
    pub user_filter: String,
    /// Attributes holding the person's addresses; values such as Active Directory's
    /// `proxyAddresses` lose their `smtp:` prefix.
    #[serde(default = "default_mail")]
    pub mail_attributes: Vec<String>,
    /// Seconds one sign-in may take in all.
    #[serde(default = "default_timeout")]
    pub timeout_secs: u64,
}

fn default_filter() -> String {
    "(|(uid={user})(mail={user}))".into()
}
fn default_mail() -> Vec<String> {
    vec!["mail".into()]
}
fn default_timeout() -> u64 {
    5
}

impl DirectoryConfig {
    /// What `check-config` checks of the section (the files are read when used).
    pub fn check(&self) -> Result<(), String> {
        let tls_from_start = self.url.starts_with("ldaps://");
        if !tls_from_start && !self.url.starts_with("ldap://") {
            return Err("url must start with ldaps:// or ldap://".into());
        }
        if tls_from_start && self.starttls {
            return Err("starttls is for ldap:// (ldaps:// has TLS from the start)".into());
        }
        if self.base_dn.trim().is_empty() {
            return Err("base_dn is empty".into());
        }
        if !self.user_filter.starts_with('(') || !self.user_filter.contains("{user}") {
            return Err("user_filter must be a filter in parentheses naming {user}".into());
        }
        if self.bind_dn.is_some() != self.password_file.is_some() {
            return Err("bind_dn and password_file go together".into());
        }
        if self.mail_attributes.is_empty()
            || self.mail_attributes.len() > 8
            || self.mail_attributes.iter().any(|a| a.is_empty())
        {
            return Err("mail_attributes names 1 to 8 attributes".into());
        }
        if !(1..=60).contains(&self.timeout_secs) {
            return Err("timeout_secs must be 1 to 60".into());
        }
        Ok(())
    }
}

/// Why a sign-in did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum DirectoryError {
    /// No such person, more than one, or the wrong password: told apart only in the log.
    #[error("wrong name or password")]
    Refused,
    /// The directory could not be asked (down, slow, refusing the service account, TLS).
    #[error("the directory cannot be reached: {0}")]
    Unavailable(String),
}

/// The directory, ready to check sign-ins.
pub struct Directory {
    config: DirectoryConfig,
    tls: Option<Arc<rustls::ClientConfig>>,
    at_once: tokio::sync::Semaphore,
}

impl Directory {
    /// Checks `config` and loads its authorities.
    pub fn new(config: &DirectoryConfig) -> Result<Self, String> {
        config.check()?;
        let tls = (config.url.starts_with("ldaps://") || config.starttls)
            .then(|| crate::config::verifying_client(config.tls_ca.as_deref()))
            .transpose()?;
        Ok(Self {
            config: config.clone(),
            tls,
            at_once: tokio::sync::Semaphore::new(MAX_AT_ONCE),
        })
    }

    /// The addresses of the person `user` names, if `password` is theirs (lower case, as the
    /// directory lists them; the caller keeps those it serves).
    pub async fn sign_in(&self, user: &str, password: &str) -> Result<Vec<String>, DirectoryError> {
        let user = user.trim();
        // An empty password is an unauthenticated bind, which directories answer with
        // success (RFC 4513 §5.1.2): never a sign-in.
        if user.is_empty()
            || password.is_empty()
            || user.len() > MAX_INPUT
            || password.len() > MAX_INPUT
            || user.contains(char::is_control)
        {
            return Err(DirectoryError::Refused);
        }
        let limit = Duration::from_secs(self.config.timeout_secs);
        let turn_then_ask = async {
            let _turn = self
                .at_once
                .acquire()
                .await
                .map_err(|e| DirectoryError::Unavailable(e.to_string()))?;
            self.ask(user, password).await
        };
        match tokio::time::timeout(limit, turn_then_ask).await {
            Ok(answer) => answer,
            Err(_) => Err(DirectoryError::Unavailable(format!(
                "no answer within {} s",
                self.config.timeout_secs
            ))),
        }
    }

    async fn ask(&self, user: &str, password: &str) -> Result<Vec<String>, DirectoryError> {
        let down =
            |what: &str, e: ldap3::LdapError| DirectoryError::Unavailable(format!("{what}: {e}"));
        let mut settings = LdapConnSettings::new()
            .set_conn_timeout(Duration::from_secs(self.config.timeout_secs))
            .set_starttls(self.config.starttls);
        if let Some(tls) = &self.tls {
            settings = settings.set_config(tls.clone());
        }
        let (conn, mut ldap) = LdapConnAsync::with_settings(settings, &self.config.url)
            .await
            .map_err(|e| down("connect", e))?;
        ldap3::drive!(conn);
        let found = self.find(&mut ldap, user).await;
        let answer = match found {
            Ok((dn, addresses)) => match ldap.simple_bind(&dn, password).await {
                Ok(r) if r.rc == 0 => Ok(addresses),
                // invalidCredentials
                Ok(r) if r.rc == 49 => {
                    tracing::info!(dn, "directory sign-in: wrong password");
                    Err(DirectoryError::Refused)
                }
                Ok(r) => Err(DirectoryError::Unavailable(format!("bind: {r}"))),
                Err(e) => Err(down("bind", e)),
            },
            Err(e) => Err(e),
        };
        let _ = ldap.unbind().await;
        answer
    }

    /// The DN and addresses of the one entry `user` names.
    async fn find(
        &self,
        ldap: &mut ldap3::Ldap,
        user: &str,
    ) -> Result<(String, Vec<String>), DirectoryError> {
        let down =
            |what: &str, e: ldap3::LdapError| DirectoryError::Unavailable(format!("{what}: {e}"));
        if let (Some(dn), Some(file)) = (&self.config.bind_dn, &self.config.password_file) {
            let secret = std::fs::read_to_string(file)
                .map_err(|e| DirectoryError::Unavailable(format!("{}: {e}", file.display())))?;
            let secret = secret.trim_end_matches(['\r', '\n']);
            ldap.simple_bind(dn, secret)
                .await
                .and_then(|r| r.success())
                .map_err(|e| down("service account bind", e))?;
        }
        let filter = self
            .config
            .user_filter
            .replace("{user}", &ldap3::ldap_escape(user));
        let mut search = ldap
            .streaming_search_with(
                ldap3::adapters::EntriesOnly::new(),
                &self.config.base_dn,
                Scope::Subtree,
                &filter,
                self.config.mail_attributes.clone(),
            )
            .await
            .map_err(|e| down("search", e))?;
        let mut entries = Vec::new();
        while entries.len() < 2 {
            match search.next().await {
                Ok(Some(entry)) => {
                    // The library panics on an entry it cannot read (a DN that is not UTF-8,
                    // say): that is the directory's fault, not a reason to lose the worker.
                    let read = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        SearchEntry::construct(entry)
                    }));
                    match read {
                        Ok(e) => entries.push(e),
                        Err(_) => {
                            return Err(DirectoryError::Unavailable(
                                "search: an entry that cannot be read".into(),
                            ));
                        }
                    }
                }
                Ok(None) => break,
                Err(e) => return Err(down("search", e)),
            }
        }
        // Two are enough to know the name is ambiguous: the rest is dropped unread.
        let done = search.finish().await;
        if entries.len() < 2 && !matches!(done.rc, 0 | 4) {
            return Err(DirectoryError::Unavailable(format!("search: {done}")));
        }
        let mut entries = entries.into_iter();
        let (Some(entry), None) = (entries.next(), entries.next()) else {
            tracing::info!(user, "directory sign-in: no single entry for this name");
            return Err(DirectoryError::Refused);
        };
        let mut addresses: Vec<String> = Vec::new();
        for attr in &self.config.mail_attributes {
            let values = entry
                .attrs
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(attr))
                .map(|(_, v)| v.as_slice())
                .unwrap_or_default();
            for v in values
                .iter()
                .take(MAX_ADDRESSES)
                .filter_map(|v| mail_address(v))
            {
                if !addresses.contains(&v) {
                    addresses.push(v);
                }
            }
        }
        addresses.truncate(MAX_ADDRESSES);
        Ok((entry.dn, addresses))
    }
}

/// A directory value as a mail address (lower case). Active Directory's `proxyAddresses` name
/// their kind (`SMTP:`, `smtp:`, `sip:`, `x500:`…): only mail addresses count.
fn mail_address(value: &str) -> Option<String> {
    let v = match value.trim().split_once(':') {
        Some((kind, rest)) if !kind.contains('@') => {
            kind.eq_ignore_ascii_case("smtp").then_some(rest)?
        }
        _ => value.trim(),
    };
    let v = v.to_lowercase();
    (v.contains('@') && v.len() <= MAX_INPUT).then_some(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_mail_addresses_are_taken_from_the_entry() {
        assert_eq!(
            mail_address(" Dora@Example.com ").as_deref(),
            Some("dora@example.com")
        );
        assert_eq!(
            mail_address("SMTP:Dora@Example.com").as_deref(),
            Some("dora@example.com")
        );
        assert_eq!(
            mail_address("smtp:alias@example.com").as_deref(),
            Some("alias@example.com")
        );
        for other in [
            "sip:dora@example.com",
            "eum:dora@example.com",
            "x500:/o=Org/cn=dora",
            "dora",
        ] {
            assert_eq!(mail_address(other), None, "{other}");
        }
    }

    fn config(extra: &str) -> Result<DirectoryConfig, String> {
        let c: DirectoryConfig = toml::from_str(&format!(
            "url = \"ldap://127.0.0.1:1\"\nbase_dn = \"dc=example,dc=com\"\n{extra}"
        ))
        .map_err(|e| e.to_string())?;
        c.check().map(|_| c)
    }

    #[test]
    fn the_section_is_checked() {
        assert!(config("").is_ok());
        for (extra, why) in [
            ("user_filter = \"uid={user}\"", "parentheses"),
            ("user_filter = \"(uid=dora)\"", "parentheses"),
            ("bind_dn = \"cn=svc\"", "together"),
            ("mail_attributes = []", "1 to 8"),
            ("timeout_secs = 0", "1 to 60"),
        ] {
            let e = config(extra).unwrap_err();
            assert!(e.contains(why), "{extra}: {e}");
        }
        let ldaps: DirectoryConfig =
            toml::from_str("url = \"ldaps://dc.test\"\nstarttls = true\nbase_dn = \"dc=test\"")
                .unwrap();
        assert!(ldaps.check().unwrap_err().contains("starttls"));
    }

    /// Nothing is sent for an empty password (an unauthenticated bind "succeeds"), an empty
    /// name or one with control characters: refused before the directory is asked (this one
    /// listens nowhere, so asking would be "unavailable").
    #[tokio::test]
    async fn empty_or_odd_credentials_are_refused_without_asking() {
        let d = Directory::new(&config("").unwrap()).unwrap();
        for (user, password) in [("dora", ""), ("", "x"), ("do\nra", "x")] {
            assert!(matches!(
                d.sign_in(user, password).await,
                Err(DirectoryError::Refused)
            ));
        }
        assert!(matches!(
            d.sign_in("dora", "x").await,
            Err(DirectoryError::Unavailable(_))
        ));
    }
}
