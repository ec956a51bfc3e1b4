//! How every SQLite database of the gateway is opened (queue and quarantine, tracking, audit,
//! console accounts): one way, so that none of them forgets WAL, the busy timeout or the single
//! writer. SQLite allows one writer at a time; a pool of one connection serialises the
//! process's writes in order instead of failing them with `SQLITE_BUSY`, and readers get
//! connections of their own that cannot write.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::SqlitePool;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

/// How much a committed write must survive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// A power cut right after the commit keeps it (`synchronous=FULL`): mail, audit, accounts.
    PowerLoss,
    /// A process crash keeps it, a power cut may lose the last instant (`synchronous=NORMAL`):
    /// logs such as tracking.
    Crash,
}

/// One database: where it lives, what it must survive, its tables.
pub struct Database<'a> {
    /// The database file (created when missing).
    pub path: &'a Path,
    /// What a committed write must survive.
    pub durability: Durability,
    /// Read-only connections besides the writer; with none, reads share the writer.
    pub readers: u32,
    /// `CREATE … IF NOT EXISTS` statements of each part whose tables live here (the queue's
    /// database holds the quarantine's too), applied in order on every open.
    pub schema: &'a [&'a [&'a str]],
    /// Columns added after a release, as (table, column, type): databases made by older
    /// versions gain them on open.
    pub added_columns: &'a [(&'a str, &'a str, &'a str)],
}

/// An open database.
pub struct Pools {
    /// The single writer connection.
    pub writer: SqlitePool,
    /// Read-only connections (the writer itself when `readers` was 0).
    pub reader: SqlitePool,
}

impl Database<'_> {
    /// Opens (creating) the database and brings its schema up to date.
    pub async fn open(&self) -> Result<Pools, sqlx::Error> {
        let sync = match self.durability {
            Durability::PowerLoss => SqliteSynchronous::Full,
            Durability::Crash => SqliteSynchronous::Normal,
        };
        let options = SqliteConnectOptions::from_str("sqlite://")?
            .filename(self.path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(sync)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10))
            // Give the space of a WAL grown by a burst back after checkpoints.
            .pragma("journal_size_limit", "16777216");
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options.clone())
            .await?;
        for statement in self.schema.iter().flat_map(|part| part.iter()) {
            sqlx::query(statement).execute(&writer).await?;
        }
        for (table, column, kind) in self.added_columns {
            let present: i64 =
                sqlx::query_scalar("SELECT COUNT(*) FROM pragma_table_info(?) WHERE name = ?")
                    .bind(table)
                    .bind(column)
                    .fetch_one(&writer)
                    .await?;
            if present == 0 {
                sqlx::query(&format!("ALTER TABLE {table} ADD COLUMN {column} {kind}"))
                    .execute(&writer)
                    .await?;
            }
        }
        let reader = if self.readers == 0 {
            writer.clone()
        } else {
            SqlitePoolOptions::new()
                .max_connections(self.readers)
                .connect_with(options.read_only(true))
                .await?
        };
        Ok(Pools { writer, reader })
    }
}
