//! The store against a real PostgreSQL (a throwaway cluster of the test's own) and SQLite.

use jianmen_testkit::postgres::Postgres;

use super::*;
use crate::audit::AuditLog;

/// A node's store on `pg`'s database `database`, connected without TLS.
pub(crate) async fn node_on(pg: &Postgres, database: &str, node: &str) -> Store {
    let section = StoreConfig {
        backend: Backend::Postgres,
        url: Some(pg.url(database)),
        tls: PostgresTls::Off,
        ..StoreConfig::default()
    };
    Store::connect(&section, Path::new("/nonexistent"), node)
        .await
        .unwrap()
}

#[test]
fn the_section_is_checked() {
    let postgres = |url: Option<&str>| StoreConfig {
        backend: Backend::Postgres,
        url: url.map(str::to_owned),
        ..StoreConfig::default()
    };
    assert_eq!(StoreConfig::default().problem(), None);
    assert_eq!(
        postgres(Some("postgres://gw@db.example:5432/jianmen")).problem(),
        None
    );
    for (config, key) in [
        (postgres(None), "store.url"),
        (postgres(Some("mysql://db.example/jianmen")), "store.url"),
        (postgres(Some("postgres:///jianmen")), "store.url"),
        (
            postgres(Some("postgres://db.example/jianmen?sslmode=disable")),
            "store.url",
        ),
        (
            StoreConfig {
                pool_size: 0,
                ..postgres(Some("postgres://db.example/jianmen"))
            },
            "store.pool_size",
        ),
        (
            StoreConfig {
                url: Some("postgres://db.example/jianmen".to_owned()),
                ..StoreConfig::default()
            },
            "store.backend",
        ),
    ] {
        assert_eq!(config.problem().map(|(k, _)| k), Some(key), "{config:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_appending_at_once_make_one_chain() {
    let pg = Postgres::start();
    pg.create_database("audit");
    // Both nodes start together: the schema is made once, the other waits for it.
    let (a, b) = tokio::join!(node_on(&pg, "audit", "a"), node_on(&pg, "audit", "b"));
    let (log_a, log_b) = crate::audit::tests::appending_at_once(
        [
            (AuditLog::open_in(&a).await.unwrap(), "admin@a"),
            (AuditLog::open_in(&b).await.unwrap(), "admin@b"),
        ],
        25,
    )
    .await;
    let (rows, head) = log_b.verify().await.unwrap();
    assert_eq!(rows, 50);
    assert_eq!(log_a.verify().await.unwrap(), (rows, head));
    let actors: std::collections::BTreeSet<String> = log_a
        .chained()
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.entry.actor)
        .collect();
    assert_eq!(actors.len(), 2, "{actors:?}");

    // An edit made in the database itself, behind both nodes' backs, is found by either.
    pg.psql(
        "audit",
        "UPDATE audit SET detail = 'nothing' WHERE seq = 17",
    );
    match log_a.verify().await {
        Err(crate::audit::AuditError::Broken { seq, .. }) => assert_eq!(seq, 17),
        other => panic!("expected a broken chain, got {other:?}"),
    }
    // A migration already applied is not applied again when a node starts later.
    let c = node_on(&pg, "audit", "c").await;
    let versions = pg.psql("audit", "SELECT COUNT(*) FROM _sqlx_migrations");
    assert_eq!(versions.trim(), postgres::MIGRATIONS.len().to_string());
    assert_eq!(
        AuditLog::open_in(&c)
            .await
            .unwrap()
            .recent(1)
            .await
            .unwrap()[0]
            .seq,
        50
    );
}

#[tokio::test]
async fn no_statement_waits_without_end() {
    let pg = Postgres::start();
    pg.create_database("bounded");
    let store = node_on(&pg, "bounded", "n").await;
    let db = store.shared().unwrap();
    for (setting, value) in [
        ("statement_timeout", "15s"),
        ("idle_in_transaction_session_timeout", "1min"),
    ] {
        let shown: String = sqlx::query_scalar(&format!("SHOW {setting}"))
            .fetch_one(db.pool())
            .await
            .unwrap();
        assert_eq!(shown, value);
    }
    // A statement that would outlast it is ended by the server.
    let slow = sqlx::query("SELECT pg_sleep(20)").execute(db.pool()).await;
    assert!(
        slow.as_ref()
            .is_err_and(|e| e.to_string().contains("statement timeout")),
        "{slow:?}"
    );
}

#[tokio::test]
async fn nodes_register_and_beat() {
    let pg = Postgres::start();
    pg.create_database("nodes");
    let store = node_on(&pg, "nodes", "gw-1").await;
    let db = store.shared().unwrap();
    let one = nodes::Registration::join(db, "gw-1", "10.0.0.1:8443", "1.2.0", 1_000)
        .await
        .unwrap();
    nodes::Registration::join(db, "gw-2", "10.0.0.2:8443", "1.1.0", 1_000)
        .await
        .unwrap();
    one.beat(1_100).await.unwrap();
    let listed = nodes::list(db, 1_100).await.unwrap();
    let summary: Vec<(&str, &str, i64, bool)> = listed
        .iter()
        .map(|n| (n.name.as_str(), n.version.as_str(), n.heartbeat, n.alive))
        .collect();
    assert_eq!(
        summary,
        [
            ("gw-1", "1.2.0", 1_100, true),
            ("gw-2", "1.1.0", 1_000, false)
        ]
    );
    // Restarted after an upgrade, under the same name: one entry, the new version.
    nodes::Registration::join(db, "gw-2", "10.0.0.2:8443", "1.2.0", 1_200)
        .await
        .unwrap();
    let listed = nodes::list(db, 1_120).await.unwrap();
    assert_eq!(listed.len(), 2);
    assert!(listed.iter().all(|n| n.version == "1.2.0" && n.alive));
}

#[tokio::test]
async fn the_server_certificate_is_verified() {
    let dir = tempfile::tempdir().unwrap();
    let pki = jianmen_testkit::TestPki::make(dir.path(), &["127.0.0.1"]);
    let pg = Postgres::start_with_tls(&pki);
    pg.create_database("tls");
    let section = |tls, ca_file: Option<&std::path::Path>| StoreConfig {
        backend: Backend::Postgres,
        url: Some(pg.url("tls")),
        tls,
        ca_file: ca_file.map(std::path::Path::to_path_buf),
        ..StoreConfig::default()
    };
    let db = postgres::connect(&section(PostgresTls::VerifyFull, Some(&pki.ca)), "n")
        .await
        .unwrap();
    let ssl: bool = sqlx::query_scalar("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
        .fetch_one(db.pool())
        .await
        .unwrap();
    assert!(ssl, "the connection is not encrypted");
    // A certificate from another CA, or the public roots for a private CA: refused.
    for ca in [Some(pki.other_ca.as_path()), None] {
        let refused = postgres::connect(&section(PostgresTls::VerifyFull, ca), "n").await;
        assert!(
            matches!(refused, Err(OpenError::Database(_))),
            "{ca:?}: {:?}",
            refused.err()
        );
    }
}

#[tokio::test]
async fn the_password_comes_from_its_file() {
    let pg = Postgres::start();
    pg.create_database("pw");
    let dir = tempfile::tempdir().unwrap();
    let url = pg.url("pw");
    // The URL without its password; the file with it, as an editor leaves it (newline).
    let (before, after) = url.split_once('@').unwrap();
    let (user, password) = before
        .trim_start_matches("postgres://")
        .split_once(':')
        .unwrap();
    let file = dir.path().join("pg-password");
    std::fs::write(&file, format!("{password}\n")).unwrap();
    let section = |password_file: Option<PathBuf>| StoreConfig {
        backend: Backend::Postgres,
        url: Some(format!("postgres://{user}@{after}")),
        tls: PostgresTls::Off,
        password_file,
        ..StoreConfig::default()
    };
    assert!(
        postgres::connect(&section(Some(file.clone())), "n")
            .await
            .is_ok()
    );
    assert!(matches!(
        postgres::connect(&section(None), "n").await,
        Err(OpenError::Database(_))
    ));
    assert!(matches!(
        postgres::connect(&section(Some(dir.path().join("missing"))), "n").await,
        Err(OpenError::PasswordFile { .. })
    ));
    // Taken as written, whatever it holds: `%41` is not an `A`, `@` and `:` end nothing.
    let odd = "p%41ss@w:rd/#?é";
    pg.psql("pw", &format!("ALTER ROLE {user} PASSWORD '{odd}'"));
    std::fs::write(&file, odd).unwrap();
    let opened = postgres::connect(&section(Some(file)), "n").await;
    assert!(opened.is_ok(), "{:?}", opened.err());
}
