//! The gateway's SQLite databases (queue and quarantine, tracking, audit, console accounts): how
//! every one is opened — one way, so that none of them forgets WAL, the busy timeout or the
//! single writer (SQLite allows one writer at a time; a pool of one connection serialises the
//! process's writes in order instead of failing them with `SQLITE_BUSY`, and readers get
//! connections of their own that cannot write) — what their failures are, and how searches
//! filter rows from the console's fields without letting `%` or `_` act as wildcards.

use std::path::{Path, PathBuf};
use std::str::FromStr;

use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};
use sqlx::{QueryBuilder, Sqlite, SqlitePool};

/// A store failure.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database reported an error.
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    /// A row held a value this version does not understand.
    #[error("database holds an unexpected value: {0}")]
    Corrupt(String),
}

impl StoreError {
    /// Whether the database failed because the disk is full.
    pub fn is_storage_full(&self) -> bool {
        match self {
            StoreError::Database(sqlx::Error::Database(e)) => {
                // SQLITE_FULL = 13 (extended codes keep the primary code in the low byte).
                e.code()
                    .and_then(|c| c.parse::<i64>().ok())
                    .is_some_and(|c| c & 0xff == 13)
            }
            StoreError::Database(sqlx::Error::Io(e)) => is_storage_full(e),
            _ => false,
        }
    }
}

/// Whether an I/O error means the disk (or quota) is full.
pub fn is_storage_full(e: &std::io::Error) -> bool {
    e.kind() == std::io::ErrorKind::StorageFull || e.kind() == std::io::ErrorKind::QuotaExceeded
}

/// `%text%` for LIKE with the wildcard characters of `text` escaped (`ESCAPE '\'`).
pub fn like_contains(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('%');
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('%');
    out
}

/// A search's `WHERE` clause, built from the fields a user filled in: each condition is added
/// only when its value is given, values are always bound, never spliced into the SQL.
pub struct Filter<'a> {
    sql: QueryBuilder<'a, Sqlite>,
}

impl<'a> Filter<'a> {
    /// `{select} FROM {from} WHERE 1 = 1`, conditions to follow.
    pub fn new(select: &str, from: &str) -> Self {
        let mut sql = QueryBuilder::new(select);
        sql.push(format!(" FROM {from} WHERE 1 = 1"));
        Self { sql }
    }

    /// `column` within `[since, until)` (Unix times).
    pub fn time_range(mut self, column: &str, since: Option<i64>, until: Option<i64>) -> Self {
        if let Some(t) = since {
            self.sql.push(format!(" AND {column} >= ")).push_bind(t);
        }
        if let Some(t) = until {
            self.sql.push(format!(" AND {column} < ")).push_bind(t);
        }
        self
    }

    /// One of `columns` contains `text` (case-insensitively for ASCII, as LIKE does).
    pub fn contains(mut self, columns: &[&str], text: Option<&str>) -> Self {
        if let Some(text) = text {
            self.sql.push(" AND (");
            for (i, column) in columns.iter().enumerate() {
                if i > 0 {
                    self.sql.push(" OR ");
                }
                self.sql
                    .push(format!("{column} LIKE "))
                    .push_bind(like_contains(text))
                    .push(" ESCAPE '\\'");
            }
            self.sql.push(")");
        }
        self
    }

    /// `column` equals `value`.
    pub fn equals(mut self, column: &str, value: Option<String>) -> Self {
        if let Some(v) = value {
            self.sql.push(format!(" AND {column} = ")).push_bind(v);
        }
        self
    }

    /// `column` is at least `value`.
    pub fn at_least(mut self, column: &str, value: Option<f64>) -> Self {
        if let Some(v) = value {
            self.sql.push(format!(" AND {column} >= ")).push_bind(v);
        }
        self
    }

    /// `column` is one of `values` (none: nothing matches).
    pub fn one_of(mut self, column: &str, values: Option<&[String]>) -> Self {
        if let Some(values) = values {
            if values.is_empty() {
                self.sql.push(" AND 0");
            } else {
                self.sql.push(format!(" AND {column} IN ("));
                let mut list = self.sql.separated(", ");
                for v in values {
                    list.push_bind(v.clone());
                }
                list.push_unseparated(")");
            }
        }
        self
    }

    /// A condition of the caller's own, `value` bound into it: `sql_before ? sql_after`.
    pub fn condition(mut self, sql_before: &str, value: Option<String>, sql_after: &str) -> Self {
        if let Some(v) = value {
            self.sql.push(sql_before).push_bind(v).push(sql_after);
        }
        self
    }

    /// The statement, for ordering, paging and running.
    pub fn into_builder(self) -> QueryBuilder<'a, Sqlite> {
        self.sql
    }
}

/// The folder of the data directory where `jianmen restore` leaves settings to take.
pub const RESTORE_DIR: &str = "restore";

/// Where `jianmen restore` leaves the settings of the database at `database` for its next open.
pub fn restored_copy(database: &Path) -> Option<PathBuf> {
    Some(
        database
            .parent()?
            .join(RESTORE_DIR)
            .join(database.file_name()?),
    )
}

/// Replaces the settings tables with a restored copy's rows, when there is one. A copy that
/// cannot be taken is set aside as `<name>.failed` with an error in the log: the gateway still
/// starts (mail keeps flowing) on the settings it had.
async fn take_restored(writer: &SqlitePool, database: &Path, tables: &[&str]) {
    let Some(copy) = restored_copy(database).filter(|c| c.is_file()) else {
        return;
    };
    match replace_settings(writer, &copy, tables).await {
        Ok(rows) => {
            tracing::warn!(database = %database.display(), rows, "settings restored from a backup");
            if let Err(e) = std::fs::remove_file(&copy) {
                tracing::error!(copy = %copy.display(), "restored settings taken but not removed: {e}");
            }
        }
        Err(e) => {
            let aside = copy.with_extension("failed");
            tracing::error!(
                copy = %copy.display(),
                aside = %aside.display(),
                "restored settings could not be taken, the previous ones stay: {e}"
            );
            let _ = std::fs::rename(&copy, &aside);
        }
    }
}

fn quoted(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// In one transaction, empties each of `tables` and fills it with the rows of the same table in
/// `copy`, in the columns both have (a copy from an older version lacks newer columns, which
/// keep their defaults). A table the copy lacks is left as it is. Returns the rows taken.
async fn replace_settings(
    writer: &SqlitePool,
    copy: &Path,
    tables: &[&str],
) -> Result<u64, sqlx::Error> {
    use sqlx::Connection;
    let mut conn = writer.acquire().await?;
    sqlx::query("ATTACH DATABASE ? AS restored")
        .bind(copy.to_string_lossy().into_owned())
        .execute(&mut *conn)
        .await?;
    let taken = async {
        let mut tx = conn.begin().await?;
        let mut rows = 0;
        for table in tables {
            let columns: Vec<String> = sqlx::query_scalar(
                "SELECT name FROM pragma_table_info(?1, 'main') \
                 WHERE name IN (SELECT name FROM pragma_table_info(?1, 'restored'))",
            )
            .bind(table)
            .fetch_all(&mut *tx)
            .await?;
            if columns.is_empty() {
                continue;
            }
            let columns = columns
                .iter()
                .map(|c| quoted(c))
                .collect::<Vec<_>>()
                .join(", ");
            let table = quoted(table);
            sqlx::query(&format!("DELETE FROM main.{table}"))
                .execute(&mut *tx)
                .await?;
            rows += sqlx::query(&format!(
                "INSERT INTO main.{table} ({columns}) SELECT {columns} FROM restored.{table}"
            ))
            .execute(&mut *tx)
            .await?
            .rows_affected();
        }
        tx.commit().await?;
        Ok::<_, sqlx::Error>(rows)
    }
    .await;
    let detached = sqlx::query("DETACH DATABASE restored")
        .execute(&mut *conn)
        .await;
    let rows = taken?;
    detached?;
    Ok(rows)
}

/// Copies the rows of `tables` of the database at `database` (those it has) into a new database
/// at `to`, all read in one transaction so they agree with each other. Nothing is written to the
/// database copied; a database that does not exist yet gives an empty copy.
pub async fn snapshot_settings(
    database: &Path,
    tables: &[&str],
    to: &Path,
) -> Result<(), sqlx::Error> {
    use sqlx::Connection;
    let options = SqliteConnectOptions::from_str("sqlite://")?
        .filename(to)
        .create_if_missing(true);
    let mut conn = sqlx::SqliteConnection::connect_with(&options).await?;
    if database.is_file() {
        sqlx::query("ATTACH DATABASE ? AS live")
            .bind(database.to_string_lossy().into_owned())
            .execute(&mut conn)
            .await?;
        let mut tx = conn.begin().await?;
        for table in tables {
            let present: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM live.sqlite_master WHERE type = 'table' AND name = ?",
            )
            .bind(table)
            .fetch_one(&mut *tx)
            .await?;
            if present > 0 {
                let table = quoted(table);
                sqlx::query(&format!(
                    "CREATE TABLE main.{table} AS SELECT * FROM live.{table}"
                ))
                .execute(&mut *tx)
                .await?;
            }
        }
        tx.commit().await?;
        sqlx::query("DETACH DATABASE live")
            .execute(&mut conn)
            .await?;
    }
    conn.close().await
}

/// How much a committed write must survive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// A power cut right after the commit keeps it (`synchronous=FULL`): mail, audit, accounts.
    PowerLoss,
    /// A process crash keeps it, a power cut may lose the last instant (`synchronous=NORMAL`):
    /// logs such as tracking.
    Crash,
}

/// How long a connection waits for another's lock before failing.
const BUSY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// The settings of every connection to a gateway database, as `PRAGMA` names and values.
pub fn pragmas(durability: Durability) -> [(&'static str, &'static str); 5] {
    [
        // First, so the statements after it wait as long for a lock: BUSY_TIMEOUT in ms.
        ("busy_timeout", "10000"),
        ("journal_mode", "WAL"),
        (
            "synchronous",
            match durability {
                Durability::PowerLoss => "FULL",
                Durability::Crash => "NORMAL",
            },
        ),
        ("foreign_keys", "ON"),
        // Give the space of a WAL grown by a burst back after checkpoints.
        ("journal_size_limit", "16777216"),
    ]
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
    /// Tables that are settings rather than mail or logs (policy versions, personal lists,
    /// console accounts): a backup carries their rows ([`snapshot_settings`]), and the copy
    /// `jianmen restore` leaves at [`restored_copy`] replaces them at the next open.
    pub settings: &'a [&'a str],
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
        let options = pragmas(self.durability).into_iter().fold(
            SqliteConnectOptions::from_str("sqlite://")?
                .filename(self.path)
                .create_if_missing(true)
                // sqlx runs its own pragmas (journal_mode among them) before those added: the
                // wait is set at open too, so that they wait as long.
                .busy_timeout(BUSY_TIMEOUT),
            |options, (name, value)| options.pragma(name, value),
        );
        // An embedded database's connection cannot go stale: testing it before every use
        // would only add a round trip to SQLite's thread per transaction.
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .test_before_acquire(false)
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
        if !self.settings.is_empty() {
            take_restored(&writer, self.path, self.settings).await;
        }
        let reader = if self.readers == 0 {
            writer.clone()
        } else {
            SqlitePoolOptions::new()
                .max_connections(self.readers)
                .test_before_acquire(false)
                .connect_with(options.read_only(true))
                .await?
        };
        Ok(Pools { writer, reader })
    }
}
