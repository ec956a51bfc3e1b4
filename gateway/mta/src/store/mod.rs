//! Where the state an administrator works with lives: in the gateway's own SQLite files (one
//! node: the default, and the demo's), or in one PostgreSQL database that several gateway
//! nodes share (cluster mode, `[store] backend = "postgres"`).
//!
//! Mail in flight is never here: each node's spool and queue stay on its own disk, as
//! Postfix's do, so no network round trip sits between the end of DATA and the 250. What moves
//! to the shared database is what must outlive a node and be seen from every console. Parts
//! move one at a time, each opening itself in a [`Store`]; today the audit chain (one chain for
//! the cluster), the console's accounts and sessions and the register of nodes ([`nodes`]) are
//! shared. The rest — quarantine, tracking, policies and lists, and the state of the later
//! capabilities — is still per node, on SQLite, whatever the backend.

pub mod nodes;
mod postgres;
mod sqlite;

use std::path::{Path, PathBuf};

use serde::Deserialize;
use sqlx::AnyPool;

pub use sqlite::open_file;

/// Which database holds the shared state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// Files in the node's data directory.
    #[default]
    Sqlite,
    /// A PostgreSQL server (or one compatible with it) shared by the cluster's nodes.
    Postgres,
}

/// How the connection to PostgreSQL is protected.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PostgresTls {
    /// TLS required, the server's certificate checked against the public roots and `ca_file`
    /// (sqlx adds it to them rather than trusting it alone) and its name against the URL's
    /// host.
    #[default]
    VerifyFull,
    /// No TLS: only for a database on the same host or a network as closed as the host.
    Off,
}

/// The `[store]` section.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    /// `sqlite` (default) or `postgres`.
    pub backend: Backend,
    /// `postgres://user@host:port/database` (PostgreSQL only). TLS is set by `tls` and
    /// `ca_file`, not by the URL.
    pub url: Option<String>,
    /// A file holding the database password, kept out of the configuration (PostgreSQL only).
    pub password_file: Option<PathBuf>,
    /// `verify-full` (default) or `off`.
    pub tls: PostgresTls,
    /// CA certificates (PEM) the server's certificate may chain to, besides the public roots.
    pub ca_file: Option<PathBuf>,
    /// Connections this node keeps to the database.
    pub pool_size: u32,
    /// This node's name in the cluster, one per node (default: the machine's host name).
    pub node_name: Option<String>,
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            backend: Backend::Sqlite,
            url: None,
            password_file: None,
            tls: PostgresTls::VerifyFull,
            ca_file: None,
            pool_size: 10,
            node_name: None,
        }
    }
}

impl StoreConfig {
    /// What is wrong with the section, as (key, reason).
    pub fn problem(&self) -> Option<(&'static str, String)> {
        if self.backend == Backend::Sqlite {
            let postgres_only =
                self.url.is_some() || self.password_file.is_some() || self.ca_file.is_some();
            return postgres_only.then(|| {
                (
                    "store.backend",
                    "url, password_file and ca_file are for backend = \"postgres\"".to_owned(),
                )
            });
        }
        if !(1..=200).contains(&self.pool_size) {
            return Some(("store.pool_size", "must be 1 to 200".to_owned()));
        }
        let Some(url) = &self.url else {
            return Some(("store.url", "backend = \"postgres\" needs a url".to_owned()));
        };
        postgres::check_url(url)
            .err()
            .map(|reason| ("store.url", reason))
    }
}

/// Why the store could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The password file could not be read.
    #[error("store.password_file {path}: {source}")]
    PasswordFile {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The URL is not one this version can use.
    #[error("store.url: {0}")]
    Url(String),
    /// The database refused or failed.
    #[error("shared database: {0}")]
    Database(#[from] sqlx::Error),
    /// Its schema could not be brought up to date.
    #[error("shared database schema: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

/// A database opened through sqlx's `Any` driver, so a part's queries run unchanged on either
/// backend: they are written in the SQL both understand, with `$1`-style parameters.
#[derive(Clone)]
pub struct SharedDb {
    pool: AnyPool,
    backend: Backend,
}

/// Appends that must happen one at a time across the whole cluster.
#[derive(Debug, Clone, Copy)]
pub enum Serialised {
    /// A row of the audit chain: each names the one before it.
    AuditChain = 1,
    /// A change to the console accounts that depends on the others (the last of a role is
    /// kept; the initial accounts are made once).
    Accounts = 2,
}

impl SharedDb {
    /// The connections.
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// Which database it is.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Begins a transaction that writes what depends on what it reads, holding `what`'s lock
    /// until it commits or rolls back: other writers — other nodes' on PostgreSQL, another
    /// process's on SQLite — wait for their turn instead of interleaving or failing.
    pub async fn begin_serialised(
        &self,
        what: Serialised,
    ) -> Result<sqlx::Transaction<'static, sqlx::Any>, sqlx::Error> {
        match self.backend {
            // The write lock taken at BEGIN: a deferred transaction whose read turns into a
            // write fails at once ("database is locked") when another writer came first,
            // without waiting the busy timeout.
            Backend::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await,
            Backend::Postgres => {
                let mut tx = self.pool.begin().await?;
                // The key's high half marks the lock as Jianmen's among the database's users.
                let key = (0x4a4d_i64 << 32) | what as i64;
                sqlx::query("SELECT pg_advisory_xact_lock($1)")
                    .bind(key)
                    .execute(&mut *tx)
                    .await?;
                Ok(tx)
            }
        }
    }
}

/// The opened store of a configuration.
#[derive(Clone)]
pub struct Store {
    data_dir: PathBuf,
    shared: Option<SharedDb>,
    node: String,
}

impl Store {
    /// One node's store: SQLite files in `data_dir`.
    pub fn local(data_dir: &Path, node: &str) -> Store {
        Store {
            data_dir: data_dir.to_path_buf(),
            shared: None,
            node: node.to_owned(),
        }
    }

    /// Opens the store `config` names: for PostgreSQL, connects and brings the shared schema
    /// up to date (nodes starting together take turns: the migration holds a lock).
    pub async fn open(config: &crate::config::Config) -> Result<Store, OpenError> {
        let section = &config.store;
        // Not server.hostname: that is the name the nodes greet with, often one for all of them.
        let node = match &section.node_name {
            Some(name) => name.clone(),
            None => nix::unistd::gethostname()
                .ok()
                .and_then(|h| h.into_string().ok())
                .unwrap_or_else(|| config.server.hostname.clone()),
        };
        Self::connect(section, &config.server.data_dir, &node).await
    }

    /// As [`Store::open`], trying again (1 s, then up to 30 s apart) while the database cannot
    /// be reached or refuses, each failure logged: how the gateway opens it, so that its mail
    /// path runs meanwhile. A schema this version cannot use is an error at once.
    pub async fn open_patiently(config: &crate::config::Config) -> Result<Store, OpenError> {
        let mut wait = std::time::Duration::from_secs(1);
        loop {
            match Self::open(config).await {
                Err(
                    e @ (OpenError::Database(_)
                    | OpenError::Migrate(sqlx::migrate::MigrateError::Execute(_))),
                ) => {
                    tracing::warn!(error = %e, retry_in = ?wait, "the cluster's database does not answer");
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(std::time::Duration::from_secs(30));
                }
                opened => return opened,
            }
        }
    }

    /// Opens the store `section` names for the node `node` whose data directory is
    /// `data_dir`.
    pub async fn connect(
        section: &StoreConfig,
        data_dir: &Path,
        node: &str,
    ) -> Result<Store, OpenError> {
        let mut store = Store::local(data_dir, node);
        if section.backend == Backend::Postgres {
            store.shared = Some(postgres::connect(section, node).await?);
        }
        Ok(store)
    }

    /// The shared database, in cluster mode.
    pub fn shared(&self) -> Option<&SharedDb> {
        self.shared.as_ref()
    }

    /// The node's data directory, where parts not shared keep their files.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// This node's name.
    pub fn node(&self) -> &str {
        &self.node
    }
}

#[cfg(test)]
pub(crate) mod tests;
