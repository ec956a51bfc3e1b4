//! Cluster mode end to end: two gateway processes share one PostgreSQL database (a throwaway
//! cluster of the test's own). The console accounts made by the first node serve the second,
//! a session begun on one is valid on the other, both appear in the register of nodes (and on
//! the system page, in Chromium), and
//! their audit rows form one chain that either node's `jianmen audit verify` checks — and that
//! an edit made in the database breaks. A node whose database is down takes mail all the same,
//! and opens its console when the database answers.

use std::process::{Command, Output};
use std::time::Duration;

use jianmen_testkit::postgres::Postgres;
use jianmen_testkit::{
    Browser, Client, Console, Gateway, Setup, Sink, free_port, jianmen_bin, test_message,
    wait_until,
};
use serde_json::Value;

const NEW_PASSWORD: &str = "Pass-Of-Jianmen-2026";

/// A node of the cluster whose database is at `url`.
fn node(sink: &Sink, url: &str, name: &str, console_port: u16) -> Gateway {
    Gateway::start(
        &Setup::new(sink.port, sink.port)
            .console(console_port)
            .section(&format!(
                "[store]\nbackend = \"postgres\"\nurl = \"{url}\"\ntls = \"off\"\nnode_name = \"{name}\""
            )),
    )
}

fn console_started(gw: &Gateway) -> bool {
    wait_until(Duration::from_secs(60), || {
        gw.log().contains("console on https://")
    })
}

fn audit_verify(gw: &Gateway) -> Output {
    Command::new(jianmen_bin())
        .args(["audit", "verify", "--config"])
        .arg(&gw.config)
        .output()
        .expect("jianmen audit verify")
}

fn system(console: &Console) -> Value {
    let (code, body) = console.request("/api/system", &[]);
    assert_eq!(code, 200, "{body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"))
}

#[test]
fn two_nodes_share_accounts_sessions_the_register_and_one_audit_chain() {
    let pg = Postgres::start();
    pg.create_database("cluster");
    let sink = Sink::start(&[]);
    let (port_a, port_b) = (free_port(), free_port());
    let mut a = node(&sink, &pg.url("cluster"), "node-a", port_a);
    // A node's console starts once its database answers, after its SMTP service.
    assert!(console_started(&a), "{}", a.log());
    let b = node(&sink, &pg.url("cluster"), "node-b", port_b);
    assert!(console_started(&b), "{}", b.log());

    // The first node made the console's accounts; the second found them made.
    let (user, password) = a.initial_account("system");
    assert!(
        !b.dir.path().join("data/initial-passwords.txt").exists(),
        "{}",
        b.log()
    );

    // Signed in (and the first password changed) on A; the same cookie is a session on B (the
    // cookie jar is shared, as a browser's is behind one load-balanced name).
    let jar = tempfile::tempdir().unwrap();
    let on_a = Console::new(port_a, jar.path());
    on_a.sign_in(&user, &password, NEW_PASSWORD);
    let on_b = Console::new(port_b, jar.path());
    let seen = system(&on_b);
    assert_eq!(seen["cluster"]["node"], "node-b");
    let nodes: Vec<(String, bool)> = seen["cluster"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| {
            (
                n["name"].as_str().unwrap().to_owned(),
                n["alive"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        nodes,
        [("node-a".to_owned(), true), ("node-b".to_owned(), true)]
    );

    // The system page of B shows both nodes, in Chromium; signing in there is an action on B,
    // audited beside A's in one chain, which either node verifies.
    Browser::ready().run(
        "cluster.mjs",
        &[
            ("JM_URL", format!("https://127.0.0.1:{port_b}/")),
            ("JM_SYS_USER", user.clone()),
            ("JM_SYS_PASS", NEW_PASSWORD.to_owned()),
            ("JM_NEW_PASS", NEW_PASSWORD.to_owned()),
            ("JM_NODE_A", "node-a".to_owned()),
            ("JM_NODE_B", "node-b".to_owned()),
        ],
        || b.log(),
    );
    let rows: i64 = pg
        .psql("cluster", "SELECT COUNT(*) FROM audit")
        .trim()
        .parse()
        .unwrap();
    assert!(
        rows >= 3,
        "sign-in on A, password change, sign-in on B: {rows}"
    );
    for gw in [&a, &b] {
        let ok = audit_verify(gw);
        assert_eq!(ok.status.code(), Some(0), "{ok:?}");
        let text = String::from_utf8_lossy(&ok.stdout);
        assert!(text.contains(&format!("intact: {rows} row(s)")), "{text}");
    }

    // An edit made in the database, behind both nodes' backs, is found.
    pg.psql("cluster", "UPDATE audit SET actor = 'nobody' WHERE seq = 2");
    let bad = audit_verify(&b);
    assert_eq!(bad.status.code(), Some(4), "{bad:?}");
    assert!(String::from_utf8_lossy(&bad.stdout).contains("row 2"));

    // Node A killed: it stops beating and is shown as not heard from (after three missed
    // beats), while B, beating on, serves the shared console alone.
    a.kill9();
    let alive = |name: &str| {
        system(&on_b)["cluster"]["nodes"]
            .as_array()
            .and_then(|nodes| nodes.iter().find(|n| n["name"] == name))
            .and_then(|n| n["alive"].as_bool())
    };
    assert!(
        wait_until(Duration::from_secs(60), || alive("node-a") == Some(false)),
        "{}",
        b.log()
    );
    assert_eq!(alive("node-b"), Some(true));
}

#[test]
fn a_node_takes_mail_while_its_database_is_down_and_opens_its_console_when_it_answers() {
    let sink = Sink::start(&[]);
    let (db_port, console_port) = (free_port(), free_port());
    let gw = node(
        &sink,
        &Postgres::url_on(db_port, "cluster"),
        "node-a",
        console_port,
    );
    // No database yet: mail is received, spooled and delivered all the same.
    let mut client = Client::ready(gw.addr);
    let reply = client.send_mail(
        "sender@elsewhere.test",
        &["staff@example.com"],
        &test_message("while the database is down", 3),
    );
    assert_eq!(reply.code, 250, "{reply:?}");
    assert!(
        wait_until(Duration::from_secs(10), || sink.messages().len() == 1),
        "{}",
        gw.log()
    );
    assert!(
        wait_until(Duration::from_secs(30), || gw
            .log()
            .contains("does not answer")),
        "{}",
        gw.log()
    );

    // The database comes: the node joins, makes the accounts and serves its console.
    let pg = Postgres::start_on(db_port);
    pg.create_database("cluster");
    assert!(console_started(&gw), "{}", gw.log());
    let (user, password) = gw.initial_account("system");
    let jar = tempfile::tempdir().unwrap();
    let console = Console::new(console_port, jar.path());
    console.sign_in(&user, &password, NEW_PASSWORD);
    assert_eq!(system(&console)["cluster"]["nodes"][0]["name"], "node-a");
}
