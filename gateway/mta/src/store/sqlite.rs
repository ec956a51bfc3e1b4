//! A part's SQLite file opened through the `Any` driver, with the settings every SQLite
//! database of the gateway gets ([`crate::db::pragmas`]), for parts whose queries also run on
//! PostgreSQL.

use sqlx::Executor;
use sqlx::any::AnyPoolOptions;

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
    // The `Any` driver takes a URL, whose path sqlx percent-decodes: every byte but the
    // plainest is encoded (sqlx's own encoder leaves `%`, so `%41` would open `A`).
    let path = db.path.to_str().ok_or_else(|| {
        sqlx::Error::Configuration(format!("{}: not UTF-8", db.path.display()).into())
    })?;
    const KEPT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'/')
        .remove(b'.')
        .remove(b'-')
        .remove(b'_');
    let url = format!(
        "sqlite://{}?mode=rwc",
        percent_encoding::utf8_percent_encode(path, KEPT)
    );
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
        .connect(&url)
        .await?;
    Ok(SharedDb {
        pool,
        backend: Backend::Sqlite,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_file_is_the_one_named_whatever_its_name_holds() {
        let dir = tempfile::tempdir().unwrap();
        let odd = dir.path().join("data %41 #1 ?x");
        std::fs::create_dir(&odd).unwrap();
        let path = odd.join("audit.db");
        open_file(&Database {
            path: &path,
            durability: crate::db::Durability::PowerLoss,
            readers: 0,
            schema: &[&["CREATE TABLE IF NOT EXISTS t (x INTEGER)"]],
            added_columns: &[],
            settings: &[],
        })
        .await
        .unwrap()
        .pool()
        .execute("INSERT INTO t VALUES (1)")
        .await
        .unwrap();
        let made: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(made, [odd.file_name().unwrap()]);
        assert!(path.exists());
    }
}
