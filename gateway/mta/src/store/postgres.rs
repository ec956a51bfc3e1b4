//! The cluster's PostgreSQL database: the connection (TLS verified unless switched off, the
//! password from a file) and the shared schema's migrations, versioned and applied at start.

use std::borrow::Cow;

use sqlx::any::AnyPoolOptions;
use sqlx::migrate::{Migration, MigrationType, Migrator};

use super::{Backend, OpenError, PostgresTls, SharedDb, StoreConfig};

/// The shared schema of every part (the console's accounts included, though `jianmen-webui`
/// owns their queries), oldest first: a version is never edited once released (sqlx refuses a
/// database whose applied migration's checksum changed), later changes are new versions, and
/// they only add (tables, columns with defaults), so older nodes keep working beside them.
pub(super) const MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "audit chain and node register",
        include_str!("../../migrations/postgres/0001_audit_and_nodes.sql"),
    ),
    (
        2,
        "console accounts and sessions",
        include_str!("../../migrations/postgres/0002_console_accounts.sql"),
    ),
];

fn migrator() -> Migrator {
    Migrator {
        migrations: Cow::Owned(
            MIGRATIONS
                .iter()
                .map(|&(version, description, sql)| {
                    Migration::new(
                        version,
                        Cow::Borrowed(description),
                        MigrationType::Simple,
                        Cow::Borrowed(sql),
                        false,
                    )
                })
                .collect(),
        ),
        // A node of an older version, beside newer ones during a rolling upgrade or after a
        // roll-back, runs on a schema with versions it does not know: they only ever add.
        ignore_missing: true,
        ..Migrator::DEFAULT
    }
}

/// The longest any statement may run or wait (PostgreSQL's `statement_timeout`).
const STATEMENT_TIMEOUT: &str = "15s";
/// The longest a session may sit in an open transaction doing nothing before the server ends
/// it, releasing its locks.
const IDLE_IN_TRANSACTION: &str = "60s";

/// Why `url` cannot be used, if it cannot.
pub(super) fn check_url(url: &str) -> Result<(), String> {
    let parsed = url::Url::parse(url).map_err(|e| e.to_string())?;
    if !matches!(parsed.scheme(), "postgres" | "postgresql") {
        return Err("must begin with postgres://".to_owned());
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err("must name the database server's host".to_owned());
    }
    if parsed
        .query_pairs()
        .any(|(k, _)| k.to_ascii_lowercase().starts_with("ssl"))
    {
        return Err("TLS is set by store.tls and store.ca_file, not in the URL".to_owned());
    }
    Ok(())
}

/// Connects `node` to the configured database and brings its schema up to date.
pub(super) async fn connect(config: &StoreConfig, node: &str) -> Result<SharedDb, OpenError> {
    let given = config.url.as_deref().unwrap_or_default();
    check_url(given).map_err(OpenError::Url)?;
    let mut url = url::Url::parse(given).map_err(|e| OpenError::Url(e.to_string()))?;
    if let Some(file) = &config.password_file {
        let password = std::fs::read_to_string(file).map_err(|source| OpenError::PasswordFile {
            path: file.display().to_string(),
            source,
        })?;
        // Encoded whole: the URL's own rules leave `%` as it is, which would then be decoded.
        let password = percent_encoding::utf8_percent_encode(
            password.trim_end_matches(['\r', '\n']),
            percent_encoding::NON_ALPHANUMERIC,
        )
        .to_string();
        url.set_password(Some(&password))
            .map_err(|()| OpenError::Url("cannot hold a password".to_owned()))?;
    }
    {
        let mut query = url.query_pairs_mut();
        match config.tls {
            PostgresTls::VerifyFull => {
                query.append_pair("sslmode", "verify-full");
                if let Some(ca) = &config.ca_file {
                    query.append_pair("sslrootcert", &ca.to_string_lossy());
                }
            }
            PostgresTls::Off => {
                query.append_pair("sslmode", "disable");
            }
        }
        // What a DBA sees in pg_stat_activity.
        query.append_pair("application_name", &format!("jianmen {node}"));
        // Bounded waits: no statement (a lock wait included) outlasts STATEMENT_TIMEOUT, and a
        // node cut off in the middle of a transaction cannot hold the audit chain's lock for
        // the other nodes longer than IDLE_IN_TRANSACTION.
        query.append_pair("options[statement_timeout]", STATEMENT_TIMEOUT);
        query.append_pair(
            "options[idle_in_transaction_session_timeout]",
            IDLE_IN_TRANSACTION,
        );
    }
    sqlx::any::install_default_drivers();
    let pool = AnyPoolOptions::new()
        .max_connections(config.pool_size)
        .acquire_timeout(std::time::Duration::from_secs(10))
        .connect(url.as_str())
        .await?;
    migrator().run(&pool).await?;
    Ok(SharedDb {
        pool,
        backend: Backend::Postgres,
    })
}
