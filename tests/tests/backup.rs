//! Backup and restore with the real binary: a gateway whose configuration file and data
//! directory are lost comes back from `jianmen backup`'s file by `jianmen restore`, with its
//! keys (spool sealing, DKIM), its console accounts and its personal lists; a restore while the
//! gateway runs, or with the wrong passphrase, changes nothing.

use std::time::Duration;

use jianmen_testkit::{Client, Console, Gateway, Setup, Sink, free_port, wait_until};

const NEW_PASSWORD: &str = "Gate-Keeper-2026!";

#[test]
fn a_lost_gateway_comes_back_from_its_backup() {
    let sink = Sink::start(&[]);
    let console_port = free_port();
    let setup = Setup::new(sink.port, sink.port).console(console_port);
    let mut gw = Gateway::start(&setup);
    let data = gw.config.parent().unwrap().join("data");
    let work = tempfile::tempdir().unwrap();
    let console = Console::new(console_port, work.path());
    let (user, password) = gw.initial_account("security");
    let csrf = console.sign_in(&user, &password, NEW_PASSWORD);
    let (code, body) = console.post_json(
        "/api/own-lists/dora@example.com",
        &csrf,
        r#"{"list": "block", "entries": ["bad.test"]}"#,
    );
    assert_eq!(code, 200, "{body}");
    let out = gw.cli(&[
        "dkim",
        "keygen",
        "--domain",
        "example.com",
        "--selector",
        "jm1",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dkim_key = std::fs::read(data.join("keys/example.com/jm1.pem")).unwrap();
    let spool_key = std::fs::read(data.join("keys/spool-sm4.key")).unwrap();
    let config_text = std::fs::read_to_string(&gw.config).unwrap();

    let passphrase = work.path().join("passphrase");
    std::fs::write(&passphrase, "a long enough passphrase\n").unwrap();
    let sealed = work.path().join("gateway.jbk");
    let args = |command: &str, file: &std::path::Path, pass: &std::path::Path| {
        let file_flag = if command == "backup" {
            "--out"
        } else {
            "--from"
        };
        vec![
            command.to_owned(),
            file_flag.to_owned(),
            file.display().to_string(),
            "--passphrase-file".to_owned(),
            pass.display().to_string(),
        ]
    };
    let run = |gw: &Gateway, a: Vec<String>| {
        let a: Vec<&str> = a.iter().map(String::as_str).collect();
        gw.cli(&a)
    };
    let out = run(&gw, args("backup", &sealed, &passphrase));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let sealed_bytes = std::fs::read(&sealed).unwrap();
    assert!(
        !sealed_bytes
            .windows(8)
            .any(|w| w == b"bad.test" || w == b"PRIVATE "),
        "nothing readable in the file"
    );

    // While the gateway runs, a restore is refused before it writes anything.
    let out = run(&gw, args("restore", &sealed, &passphrase));
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && said.contains("is held"), "{said}");
    assert!(!data.join("restore").exists());

    // The machine is lost; on a new one the package installed its default configuration and
    // an empty data directory.
    gw.terminate();
    assert!(
        gw.wait_exit(Duration::from_secs(60)).is_some(),
        "{}",
        gw.log()
    );
    let fresh = format!(
        "[server]\nhostname = \"localhost.localdomain\"\ndata_dir = \"{}\"\nuser = \"root\"\n\
         [domains]\nprotected = [\"example.invalid\"]\n",
        data.display()
    );
    std::fs::write(&gw.config, &fresh).unwrap();
    std::fs::remove_dir_all(&data).unwrap();
    std::fs::create_dir(&data).unwrap();

    let wrong = work.path().join("wrong");
    std::fs::write(&wrong, "not the passphrase at all\n").unwrap();
    let out = run(&gw, args("restore", &sealed, &wrong));
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && said.contains("wrong passphrase"),
        "{said}"
    );
    assert_eq!(std::fs::read_to_string(&gw.config).unwrap(), fresh);

    // Whoever sealed a backup chose its configuration files: root puts them in place only when
    // told to, and otherwise beside the configuration for a look.
    let out = run(&gw, args("restore", &sealed, &passphrase));
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(std::fs::read_to_string(&gw.config).unwrap(), fresh);
    assert!(
        said.contains("restored-") && said.contains("jianmen.toml"),
        "{said}"
    );
    let mut with_configuration = args("restore", &sealed, &passphrase);
    with_configuration.push("--configuration".into());
    let out = run(&gw, with_configuration);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(std::fs::read_to_string(&gw.config).unwrap(), config_text);
    let kept: Vec<String> = std::fs::read_dir(gw.config.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("jianmen.toml.before-restore-"))
        .collect();
    assert_eq!(
        kept.len(),
        1,
        "the replaced configuration is kept: {kept:?}"
    );
    assert_eq!(
        std::fs::read(data.join("keys/example.com/jm1.pem")).unwrap(),
        dkim_key
    );
    assert_eq!(
        std::fs::read(data.join("keys/spool-sm4.key")).unwrap(),
        spool_key
    );

    // Started again: the same console account and password, the same list in force, mail
    // flows, and the restore is in the (new) audit log.
    gw.restart();
    let csrf = console.log_in(&user, NEW_PASSWORD);
    let (code, body) = console.request("/api/own-lists/dora@example.com", &[]);
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("bad.test"), "{body}");
    assert!(
        !data.join("restore/jianmen.db").exists(),
        "the settings were taken"
    );
    let _ = csrf;
    let mut c = Client::ready(gw.addr);
    let r = c.send_mail(
        "someone@sender.test",
        &["dora@example.com"],
        b"From: someone@sender.test\r\nTo: dora@example.com\r\nSubject: after the restore\r\n\r\nHello.\r\n",
    );
    assert_eq!(r.code, 250, "{r:?}");
    assert!(
        wait_until(Duration::from_secs(30), || !sink
            .with_subject("after the restore", Duration::from_millis(10))
            .is_empty()),
        "{}",
        gw.log()
    );
    let out = gw.cli(&["audit", "list"]);
    let listed = String::from_utf8_lossy(&out.stdout);
    assert!(listed.contains("backup.restore"), "{listed}");
}
