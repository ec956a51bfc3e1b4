//! System settings changed in the console: the protected domains, the routes to the internal
//! mail servers, the audit log's syslog collector and the addresses the SMTP service and the
//! console listen on. The configuration file is root's and the
//! console runs as the service account, so what the console sets is kept apart, in
//! `data_dir/system/settings.toml`, and laid over the file's values whenever the configuration
//! is loaded ([`Config::load`]); it takes effect at the next start, which the console can ask the
//! service manager for. Only these keys can be set, and nothing that names a file: a root process
//! reads this file at start, and must not be pointed at another file by the service account. A
//! route set here keeps the certificate authority file the configuration file gives its domain.
//! Listeners are bound by root before it gives up its rights, so the ports the console may set
//! below 1024 are only the mail and web ports the gateway serves anyway ([`SMTP_PORTS`],
//! [`CONSOLE_PORTS`]): the service account cannot have root open another privileged port.
//!
//! Settings the loaded file no longer agrees with (a change to the file made them invalid) are
//! not applied: the gateway starts on the file alone and says why ([`SettingsState::Refused`]),
//! rather than not starting.

use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::config::{Config, RouteConfig, TlsPolicy};

/// The folder of the data directory that holds the settings.
pub const FOLDER: &str = "system";
/// The settings file in it.
pub const FILE: &str = "settings.toml";
/// The largest settings file read.
const MAX_BYTES: u64 = 1024 * 1024;
/// The most routes the console may set.
pub const MAX_ROUTES: usize = 1000;
/// The most protected domains the console may set.
pub const MAX_DOMAINS: usize = 10_000;
/// The most SMTP listening addresses the console may set.
pub const MAX_LISTENERS: usize = 16;
/// The ports below 1024 the console may have the SMTP service listen on: SMTP, submissions,
/// submission.
pub const SMTP_PORTS: &[u16] = &[25, 465, 587];
/// The port below 1024 the console may have itself listen on: HTTPS.
pub const CONSOLE_PORTS: &[u16] = &[443];

/// A route as the console sets it: everything but the authority file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteSetting {
    /// Recipient domain, or `*`.
    pub domain: String,
    /// Next hop.
    pub host: String,
    /// Its port.
    #[serde(default = "smtp_port")]
    pub port: u16,
    /// STARTTLS policy.
    #[serde(default = "route_tls")]
    pub tls: TlsPolicy,
    /// The name the server's certificate must carry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_name: Option<String>,
    /// Pinned public keys.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tls_pins: Vec<String>,
}

fn smtp_port() -> u16 {
    25
}

fn route_tls() -> TlsPolicy {
    TlsPolicy::VerifyIfOffered
}

impl From<&RouteConfig> for RouteSetting {
    fn from(r: &RouteConfig) -> Self {
        RouteSetting {
            domain: r.domain.clone(),
            host: r.host.clone(),
            port: r.port,
            tls: r.tls,
            tls_name: r.tls_name.clone(),
            tls_pins: r.tls_pins.clone(),
        }
    }
}

/// What the console set; a key left out keeps the configuration file's value.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SystemSettings {
    /// The protected domains, in place of `domains.protected`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protected: Option<Vec<String>>,
    /// The routes, in place of `[[route]]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub routes: Option<Vec<RouteSetting>>,
    /// The syslog collector (`host:port`), in place of `audit.syslog`; empty: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub syslog: Option<String>,
    /// The SMTP service's addresses, in place of `smtp.listen`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub smtp_listen: Option<Vec<std::net::SocketAddr>>,
    /// The console's address, in place of `console.listen`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub console_listen: Option<std::net::SocketAddr>,
    /// Who saved them.
    #[serde(default)]
    pub changed_by: String,
    /// When (Unix seconds).
    #[serde(default)]
    pub changed_at: i64,
}

/// Whether the console's settings are in the loaded configuration.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(tag = "state", content = "reason", rename_all = "lowercase")]
pub enum SettingsState {
    /// None were saved.
    #[default]
    None,
    /// They are laid over the file's values.
    Applied,
    /// They were not applied, for this reason: the file's values run.
    Refused(String),
    /// They were applied but for the listeners, which could not be bound at start (this
    /// reason): the file's listeners run.
    #[serde(rename = "listeners_refused")]
    ListenersRefused(String),
}

/// Why settings cannot be read or kept.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    /// The file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// What failed.
        source: io::Error,
    },
    /// The file is not settings of this version.
    #[error("{path}: {why}")]
    Unreadable {
        /// The file.
        path: String,
        /// What is wrong.
        why: String,
    },
}

/// Where the settings of the gateway with this data directory are kept.
pub fn path(data_dir: &Path) -> PathBuf {
    data_dir.join(FOLDER).join(FILE)
}

/// The saved settings, if any.
pub fn read(data_dir: &Path) -> Result<Option<SystemSettings>, SettingsError> {
    let path = path(data_dir);
    let shown = path.display().to_string();
    // Root reads it at start from the service account's directory.
    let file = match crate::privilege::open_unlinked(&data_dir.join(FOLDER), FILE) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(SettingsError::Io {
                path: shown,
                source,
            });
        }
    };
    let mut text = String::new();
    file.take(MAX_BYTES + 1)
        .read_to_string(&mut text)
        .map_err(|source| SettingsError::Io {
            path: shown.clone(),
            source,
        })?;
    if text.len() as u64 > MAX_BYTES {
        return Err(SettingsError::Unreadable {
            path: shown,
            why: format!("larger than {MAX_BYTES} bytes"),
        });
    }
    // The parser's message only, without the lines around it: nothing of the file is repeated.
    toml::from_str(&text)
        .map(Some)
        .map_err(|e| SettingsError::Unreadable {
            path: shown,
            why: e.message().to_owned(),
        })
}

/// Keeps `settings` (whole or not at all), or removes them with `None`.
pub fn write(data_dir: &Path, settings: Option<&SystemSettings>) -> Result<(), SettingsError> {
    let target = path(data_dir);
    let io = |source| SettingsError::Io {
        path: target.display().to_string(),
        source,
    };
    let dir = data_dir.join(FOLDER);
    let Some(settings) = settings else {
        return match std::fs::remove_file(&target) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(io(e)),
            _ => Ok(()),
        };
    };
    {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
            .map_err(io)?;
    }
    let text = toml::to_string(settings).map_err(|e| io(io::Error::other(e)))?;
    let mut file = tempfile::NamedTempFile::new_in(&dir).map_err(io)?;
    file.write_all(text.as_bytes()).map_err(io)?;
    file.as_file().sync_all().map_err(io)?;
    file.persist(&target).map_err(|e| io(e.error))?;
    std::fs::File::open(&dir)
        .and_then(|d| d.sync_all())
        .map_err(io)
}

impl SystemSettings {
    /// Lays these settings over `config`: the keys set replace the file's.
    pub fn apply(&self, config: &mut Config) {
        if let Some(protected) = &self.protected {
            config.domains.protected = protected.clone();
        }
        if let Some(routes) = &self.routes {
            let file_routes = std::mem::take(&mut config.routes);
            config.routes = routes
                .iter()
                .map(|r| {
                    let domain = r.domain.trim().trim_end_matches('.').to_ascii_lowercase();
                    let tls_ca = file_routes
                        .iter()
                        .find(|f| f.domain == domain && r.tls.verifies() && r.tls_pins.is_empty())
                        .and_then(|f| f.tls_ca.clone());
                    RouteConfig {
                        domain,
                        host: r.host.clone(),
                        port: r.port,
                        tls: r.tls,
                        tls_ca,
                        tls_name: r.tls_name.clone(),
                        tls_pins: r.tls_pins.clone(),
                    }
                })
                .collect();
        }
        if let Some(syslog) = &self.syslog {
            config.audit.syslog = (!syslog.trim().is_empty()).then(|| syslog.trim().to_owned());
        }
        if let Some(listen) = &self.smtp_listen {
            config.smtp.listen = listen.clone();
        }
        if let (Some(listen), Some(console)) = (self.console_listen, config.console.as_mut()) {
            console.listen = listen;
        }
    }

    /// Whether these settings move a listener.
    pub fn sets_listeners(&self) -> bool {
        self.smtp_listen.is_some() || self.console_listen.is_some()
    }

    /// Whether anything is set.
    pub fn is_empty(&self) -> bool {
        self.protected.is_none()
            && self.routes.is_none()
            && self.syslog.is_none()
            && !self.sets_listeners()
    }

    /// Refuses settings over the bounds, before anything is built from them.
    pub fn check_bounds(&self) -> Result<(), (&'static str, String)> {
        if self
            .protected
            .as_ref()
            .is_some_and(|p| p.len() > MAX_DOMAINS)
        {
            return Err((
                "domains.protected",
                format!("at most {MAX_DOMAINS} domains"),
            ));
        }
        if self.routes.as_ref().is_some_and(|r| r.len() > MAX_ROUTES) {
            return Err(("route", format!("at most {MAX_ROUTES} routes")));
        }
        if let Some(listen) = &self.smtp_listen {
            if listen.len() > MAX_LISTENERS {
                return Err(("smtp.listen", format!("at most {MAX_LISTENERS} addresses")));
            }
            if let Some(a) = listen
                .iter()
                .find(|a| a.port() < 1024 && !SMTP_PORTS.contains(&a.port()))
            {
                return Err((
                    "smtp.listen",
                    format!("port {} is below 1024 and not 25, 465 or 587", a.port()),
                ));
            }
        }
        if let Some(a) = self.console_listen
            && a.port() < 1024
            && !CONSOLE_PORTS.contains(&a.port())
        {
            return Err((
                "console.listen",
                format!("port {} is below 1024 and not 443", a.port()),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file_config(dir: &Path) -> Config {
        Config::parse(&format!(
            "[server]\nhostname = \"mx.example.com\"\ndata_dir = \"{}\"\n\
             [domains]\nprotected = [\"example.com\"]\n\
             [[route]]\ndomain = \"example.com\"\nhost = \"10.0.0.25\"\n",
            dir.display()
        ))
        .unwrap()
    }

    #[test]
    fn settings_replace_only_the_keys_they_set_and_survive_a_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read(dir.path()).unwrap(), None);
        let settings = SystemSettings {
            protected: Some(vec!["example.com".into(), "New.Test".into()]),
            routes: Some(vec![RouteSetting {
                domain: "New.Test.".into(),
                host: "10.0.0.26".into(),
                port: 2525,
                tls: TlsPolicy::Required,
                tls_name: None,
                tls_pins: Vec::new(),
            }]),
            syslog: None,
            smtp_listen: Some(vec!["127.0.0.1:2525".parse().unwrap()]),
            console_listen: None,
            changed_by: "console:sys".into(),
            changed_at: 1,
        };
        write(dir.path(), Some(&settings)).unwrap();
        assert_eq!(read(dir.path()).unwrap().as_ref(), Some(&settings));
        let mut config = file_config(dir.path());
        settings.apply(&mut config);
        assert_eq!(config.routes.len(), 1);
        assert_eq!(
            (config.routes[0].domain.as_str(), config.routes[0].port),
            ("new.test", 2525)
        );
        assert_eq!(config.audit.syslog, None, "a key not set keeps the file's");
        assert_eq!(config.smtp.listen, ["127.0.0.1:2525".parse().unwrap()]);
        write(dir.path(), None).unwrap();
        assert_eq!(read(dir.path()).unwrap(), None);
    }

    #[test]
    fn a_file_path_or_an_unknown_key_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join(FOLDER)).unwrap();
        for text in [
            "[[routes]]\ndomain = \"x.test\"\nhost = \"h\"\ntls_ca = \"/etc/shadow\"\n",
            "data_dir = \"/\"\n",
        ] {
            std::fs::write(path(dir.path()), text).unwrap();
            assert!(
                matches!(read(dir.path()), Err(SettingsError::Unreadable { .. })),
                "{text}"
            );
        }
        std::fs::write(path(dir.path()), vec![b'#'; MAX_BYTES as usize + 2]).unwrap();
        assert!(matches!(
            read(dir.path()),
            Err(SettingsError::Unreadable { .. })
        ));
        // A link in place of the file is not followed, and nothing of a file read is repeated.
        let secret = dir.path().join("secret");
        std::fs::write(&secret, "root:$6$hash-of-a-password:19000::::::\n").unwrap();
        std::fs::remove_file(path(dir.path())).unwrap();
        std::os::unix::fs::symlink(&secret, path(dir.path())).unwrap();
        assert!(matches!(read(dir.path()), Err(SettingsError::Io { .. })));
        std::fs::remove_file(path(dir.path())).unwrap();
        std::fs::copy(&secret, path(dir.path())).unwrap();
        let said = read(dir.path()).unwrap_err().to_string();
        assert!(!said.contains("hash-of-a-password"), "{said}");
    }

    /// Root binds the listeners: the console may not have it open a privileged port the
    /// gateway does not serve, and the file is refused as a whole when it tries.
    #[test]
    fn privileged_ports_other_than_mail_and_https_are_refused() {
        let at = |text: &str| -> std::net::SocketAddr { text.parse().unwrap() };
        let smtp = |addrs: &[&str]| SystemSettings {
            smtp_listen: Some(addrs.iter().map(|a| at(a)).collect()),
            ..SystemSettings::default()
        };
        for fine in [
            smtp(&["0.0.0.0:25", "[::]:587", "127.0.0.1:465", "127.0.0.2:2525"]),
            SystemSettings {
                console_listen: Some(at("0.0.0.0:443")),
                ..SystemSettings::default()
            },
        ] {
            assert_eq!(fine.check_bounds(), Ok(()));
        }
        assert_eq!(
            smtp(&["0.0.0.0:25", "0.0.0.0:22"])
                .check_bounds()
                .unwrap_err()
                .0,
            "smtp.listen"
        );
        let console = SystemSettings {
            console_listen: Some(at("127.0.0.1:80")),
            ..SystemSettings::default()
        };
        assert_eq!(console.check_bounds().unwrap_err().0, "console.listen");
        let many: Vec<String> = (0..=MAX_LISTENERS)
            .map(|i| format!("127.0.0.1:{}", 3000 + i))
            .collect();
        let many: Vec<&str> = many.iter().map(String::as_str).collect();
        assert!(smtp(&many).check_bounds().is_err());
        let dir = tempfile::tempdir().unwrap();
        let e = file_config(dir.path())
            .overlaid(&smtp(&["0.0.0.0:22"]))
            .unwrap_err();
        assert!(e.to_string().contains("smtp.listen"), "{e}");
    }
}
