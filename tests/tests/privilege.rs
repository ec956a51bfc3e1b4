//! Started as root outside systemd, the gateway binds a privileged port, then runs as the
//! `jianmen` account with no capabilities left — and still takes and delivers mail. Needs root
//! (tests/run.sh runs as root on CI); creates the `jianmen` system account if missing, as the
//! packages do.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::process::Command;
use std::time::Duration;

use jianmen_testkit::{Client, Gateway, Setup, Sink, jianmen_bin, test_message, wait_until};

/// The `jianmen` account's (uid, gid), created like the packages' sysusers entry would.
fn service_account() -> (u32, u32) {
    let id = |flag: &str| {
        Command::new("id")
            .args([flag, "jianmen"])
            .output()
            .ok()
            .filter(|o| o.status.success())
            .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
    };
    if id("-u").is_none() {
        let status = Command::new("useradd")
            .args([
                "--system",
                "--no-create-home",
                "--home-dir",
                "/var/lib/jianmen",
            ])
            .args(["--shell", "/usr/sbin/nologin", "--user-group", "jianmen"])
            .status()
            .expect("useradd");
        assert!(status.success(), "useradd needs root");
    }
    (id("-u").expect("uid"), id("-g").expect("gid"))
}

/// A port below 1024 free on 127.0.0.1 (binding it proves we are root).
fn privileged_port() -> u16 {
    (900..1024)
        .rev()
        .find(|p| std::net::TcpListener::bind(("127.0.0.1", *p)).is_ok())
        .expect("a free port below 1024 (needs root)")
}

/// The four ids of a `Uid:`/`Gid:` line of /proc/PID/status.
fn status_field(status: &str, name: &str) -> String {
    status
        .lines()
        .find_map(|l| l.strip_prefix(name))
        .unwrap_or_else(|| panic!("{name} missing from status"))
        .trim()
        .to_owned()
}

#[test]
fn root_binds_the_port_then_serves_as_jianmen_without_capabilities() {
    assert!(
        nix_is_root(),
        "this test needs root (tests/run.sh runs as root on CI)"
    );
    let (uid, gid) = service_account();
    let sink = Sink::start(&[]);
    // The data directory belongs to the account, as the packages' tmpfiles entry makes it.
    let base = tempfile::tempdir().unwrap();
    let data = base.path().join("data");
    std::fs::create_dir(&data).unwrap();
    std::os::unix::fs::chown(&data, Some(uid), Some(gid)).unwrap();
    std::fs::set_permissions(
        base.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let mut setup = Setup::new(sink.port, sink.port);
    setup.user = "jianmen".into();
    setup.port = Some(privileged_port());
    setup.data_dir = Some(data.clone());
    let gw = Gateway::start(&setup);
    assert!(gw.log().contains("root given up"), "{}", gw.log());

    let pid = gw.pid().unwrap();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let ids = |n: u32| format!("{n}\t{n}\t{n}\t{n}");
    assert_eq!(
        status_field(&status, "Uid:"),
        ids(uid),
        "real, effective, saved, fs uid"
    );
    assert_eq!(status_field(&status, "Gid:"), ids(gid));
    assert_eq!(status_field(&status, "Groups:"), gid.to_string());
    for cap in ["CapInh:", "CapPrm:", "CapEff:", "CapAmb:"] {
        assert_eq!(status_field(&status, cap), "0000000000000000", "{cap}");
    }
    // Every thread, not only the main one.
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap() {
        let task = std::fs::read_to_string(task.unwrap().path().join("status")).unwrap();
        assert_eq!(status_field(&task, "Uid:"), ids(uid));
    }

    // Mail still flows, and what it wrote is the account's.
    let mut c = Client::ready(gw.addr);
    let r = c.send_mail(
        "someone@outside.example",
        &["user@example.com"],
        &test_message("after-drop", 3),
    );
    assert_eq!(r.code, 250, "{}", r.text);
    assert!(wait_until(Duration::from_secs(20), || {
        sink.messages()
            .iter()
            .any(|m| m.header("Subject").as_deref() == Some("test after-drop"))
    }));
    for f in ["jianmen.db", "keys/spool-sm4.key"] {
        let meta = std::fs::metadata(data.join(f)).unwrap();
        assert_eq!((meta.uid(), meta.gid()), (uid, gid), "{f}");
    }

    // Commands root runs at the machine leave nothing of root's in the data directory (a
    // root-owned -wal file or key would stop the gateway), and still write what root asked
    // for where only root may write.
    let export = base.path().join("audit-export.tar");
    // A message only root may read, given as feedback.
    let reported = base.path().join("reported.eml");
    std::fs::write(&reported, test_message("reported", 2)).unwrap();
    std::fs::set_permissions(&reported, std::fs::Permissions::from_mode(0o600)).unwrap();
    for args in [
        &["queue", "list"][..],
        &["audit", "export", "--out", export.to_str().unwrap()],
        &["quarantine", "list"],
        &["feedback", "spam", reported.to_str().unwrap()],
    ] {
        let out = gw.cli(args);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert!(std::fs::metadata(&export).unwrap().len() > 0);
    let mut dirs = vec![data.clone()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let meta = std::fs::symlink_metadata(&path).unwrap();
            assert_eq!(
                meta.uid(),
                uid,
                "{} is not the service account's",
                path.display()
            );
            if meta.is_dir() {
                dirs.push(path);
            }
        }
    }
}

#[test]
fn root_with_a_missing_account_refuses_to_start() {
    assert!(
        nix_is_root(),
        "this test needs root (tests/run.sh runs as root on CI)"
    );
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("jianmen.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nhostname = \"gw.jianmen.test\"\ndata_dir = \"{}\"\n\
             user = \"no-such-account-jianmen\"\n\
             [smtp]\nlisten = [\"127.0.0.1:{}\"]\n[domains]\nprotected = [\"example.com\"]\n\
             [metrics]\nlisten = \"127.0.0.1:0\"\n",
            dir.path().join("data").display(),
            jianmen_testkit::free_port()
        ),
    )
    .unwrap();
    let out = Command::new(jianmen_bin())
        .args(["serve", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("server.user \"no-such-account-jianmen\" does not exist"),
        "{err}"
    );
    // Nothing was created as root before the refusal.
    assert!(!dir.path().join("data").exists());
}

fn nix_is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}
