//! What cluster mode costs the parts it shares, SQLite (one node's files) beside PostgreSQL (a
//! throwaway cluster on loopback, started here as the tests start theirs, but syncing its
//! commits as SQLite's are synced): the time of an audit append — one node alone, then two
//! nodes appending at once, which the cluster's one chain serialises — and of a console session
//! check, the statements every console request makes (reads only: a session's last use is
//! written once a minute).
//! Nothing is shared per message yet (mail in flight stays on the node), so it prints that
//! figure as what it is: no database round trip per message.
//!
//! Usage: `cargo run --release -p jianmen-benches --bin store` (needs Debian's postgresql
//! installed: tests/run.sh installs it).

use std::path::Path;
use std::time::Instant;

use jianmen_mta::audit::AuditLog;
use jianmen_mta::config::ConsoleConfig;
use jianmen_mta::store::{Backend, PostgresTls, Store, StoreConfig};
use jianmen_testkit::postgres::Postgres;
use jianmen_webui::accounts::Accounts;

const APPENDS: u32 = 2_000;
const CHECKS: u32 = 5_000;

/// Microseconds per operation of `n` runs of `op`.
async fn per_op<F: std::future::Future<Output = ()>>(n: u32, mut op: impl FnMut(u32) -> F) -> f64 {
    let started = Instant::now();
    for i in 0..n {
        op(i).await;
    }
    started.elapsed().as_secs_f64() * 1e6 / f64::from(n)
}

/// The figures of one backend: append alone, append with a second writer (node) at once, session check.
async fn measure(a: &Store, b: &Store) -> (f64, f64, f64) {
    let log = AuditLog::open_in(a).await.expect("audit log");
    let alone = per_op(APPENDS, |i| {
        let log = &log;
        async move {
            log.append("bench", "bench.append", &format!("row {i}"))
                .await
                .expect("append");
        }
    })
    .await;
    let other = AuditLog::open_in(b).await.expect("audit log");
    let started = Instant::now();
    let one = async {
        for i in 0..APPENDS {
            log.append("bench-a", "bench.append", &format!("a {i}"))
                .await
                .expect("append");
        }
    };
    let two = async {
        for i in 0..APPENDS {
            other
                .append("bench-b", "bench.append", &format!("b {i}"))
                .await
                .expect("append");
        }
    };
    tokio::join!(one, two);
    let together = started.elapsed().as_secs_f64() * 1e6 / f64::from(2 * APPENDS);
    log.verify().await.expect("one chain");

    let accounts = Accounts::open_in(a, ConsoleConfig::default())
        .await
        .expect("accounts");
    let (name, _, password) = accounts
        .create_initial(1_000)
        .await
        .expect("initial accounts")
        .swap_remove(0);
    let session = accounts
        .login(&name, &password, None, "127.0.0.1", 1_000)
        .await
        .expect("sign-in");
    let check = per_op(CHECKS, |_| {
        let (accounts, token) = (&accounts, &session.token);
        async move {
            accounts
                .session(token, 1_001)
                .await
                .expect("session")
                .expect("a live session");
        }
    })
    .await;
    (alone, together, check)
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let dir = tempfile::tempdir().expect("tempdir");
    let local = Store::local(dir.path(), "bench");
    let sqlite = measure(&local, &local).await;

    let pg = Postgres::start_durable();
    pg.create_database("bench");
    let section = StoreConfig {
        backend: Backend::Postgres,
        url: Some(pg.url("bench")),
        tls: PostgresTls::Off,
        ..StoreConfig::default()
    };
    let node = |name| Store::connect(&section, Path::new("/nonexistent"), name);
    let (a, b) = (
        node("a").await.expect("node a"),
        node("b").await.expect("node b"),
    );
    let postgres = measure(&a, &b).await;

    println!("| µs per operation (one thread, loopback) | SQLite | PostgreSQL |");
    println!("|---|---:|---:|");
    for (what, s, p) in [
        (
            format!("audit append, one node ({APPENDS} rows)"),
            sqlite.0,
            postgres.0,
        ),
        (
            format!(
                "audit append, two writers at once — on PostgreSQL two nodes ({} rows)",
                2 * APPENDS
            ),
            sqlite.1,
            postgres.1,
        ),
        (
            format!("console session check, within a minute of its last write ({CHECKS})"),
            sqlite.2,
            postgres.2,
        ),
    ] {
        println!("| {what} | {s:.0} | {p:.0} |");
    }
    println!("database round trips per message: 0 (mail in flight stays on the node)");
}
