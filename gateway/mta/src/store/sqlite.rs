//! A part's SQLite file opened through the `Any` driver, with the settings every SQLite
//! database of the gateway gets ([`crate::db::pragmas`]), for parts whose queries also run on
//! PostgreSQL.

use sqlx::any::AnyPoolOptions;
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{ConnectOptions, Executor};

use super::{Backend, SharedDb};
use crate::db::Database;

/// Opens (creating) the file `db` describes, with one connection (SQLite's single writer).
pub async fn open_file(db: &Database<'_>) -> Result<SharedDb, sqlx::Error> {
    // The schema, the columns added since older versions and the settings a restore left are
    // taken as for every other SQLite database of the gateway, then those connections closed.
    let prepared = db.open().await?;
    prepared.writer.close().await;
    prepared.reader.close().await;
    sqlx::any::install_default_drivers();
    // The `Any` driver takes a URL: sqlx's own encoding of the file name into one.
    let url = SqliteConnectOptions::new()
        .filename(db.path)
        .create_if_missing(true)
        .to_url_lossy();
    let settings: String = crate::db::pragmas(db.durability)
        .iter()
        .map(|(name, value)| format!("PRAGMA {name} = {value};"))
        .collect();
    let pool = AnyPoolOptions::new()
        .max_connections(1)
        .test_before_acquire(false)
        .after_connect(move |conn, _| {
            let settings = settings.clone();
            Box::pin(async move {
                conn.execute(sqlx::raw_sql(&settings)).await?;
                Ok(())
            })
        })
        .connect(url.as_str())
        .await?;
    Ok(SharedDb {
        pool,
        backend: Backend::Sqlite,
    })
}
