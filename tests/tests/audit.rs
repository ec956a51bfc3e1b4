//! The audit trail through the command line: actions are recorded, `jianmen audit verify`
//! passes on an intact log and names the row when one is edited behind its back (here with
//! Python's sqlite3, as an intruder with file access would).

use std::ffi::OsStr;
use std::path::Path;
use std::process::Command;

use jianmen_testkit::{jianmen_bin, jianmen_ok};

fn audit(config: &Path, action: &str) -> std::process::Output {
    Command::new(jianmen_bin())
        .args([
            OsStr::new("audit"),
            "--config".as_ref(),
            config.as_ref(),
            action.as_ref(),
        ])
        .output()
        .unwrap()
}

#[test]
fn actions_are_recorded_and_tampering_is_found() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let config = dir.path().join("jianmen.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nhostname = \"gw.jianmen.test\"\ndata_dir = \"{}\"\n\
             [domains]\nprotected = [\"example.com\"]\n",
            data.display()
        ),
    )
    .unwrap();
    let message = dir.path().join("m.eml");
    std::fs::write(&message, b"Subject: offer\r\n\r\ncheap\r\n").unwrap();
    for label in ["spam", "ham"] {
        jianmen_ok([
            OsStr::new("feedback"),
            "--config".as_ref(),
            config.as_ref(),
            label.as_ref(),
            message.as_ref(),
        ]);
    }
    let listed = jianmen_ok([
        OsStr::new("audit"),
        "--config".as_ref(),
        config.as_ref(),
        "list".as_ref(),
    ]);
    let listed = String::from_utf8_lossy(&listed.stdout);
    assert_eq!(listed.lines().count(), 2, "{listed}");
    assert!(
        listed
            .lines()
            .next()
            .unwrap()
            .contains("1 message(s) as ham"),
        "{listed}"
    );

    let ok = audit(&config, "verify");
    assert_eq!(ok.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&ok.stdout).contains("intact: 2 row(s)"));

    let db = data.join("audit.db");
    let edit = Command::new("python3")
        .arg("-c")
        .arg(
            "import sqlite3, sys; c = sqlite3.connect(sys.argv[1]); \
             c.execute(\"UPDATE audit SET detail = 'nothing happened' WHERE seq = 1\"); c.commit()",
        )
        .arg(&db)
        .status()
        .unwrap();
    assert!(edit.success());
    let bad = audit(&config, "verify");
    assert_eq!(bad.status.code(), Some(4));
    let text = String::from_utf8_lossy(&bad.stdout);
    assert!(
        text.contains("TAMPERED") && text.contains("row 1"),
        "{text}"
    );
}
