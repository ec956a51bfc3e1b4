//! Offline upgrades on a running gateway, as a site applies them: a signed package is
//! installed beside the running version and started on trial; bad packages are refused; a
//! release that fails its health check, or crashes, is rolled back; mail queued before the
//! upgrade is delivered after it. A small supervisor stands in for systemd's `Restart=`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use jianmen_testkit::{
    Clamd, Client, Console, Gateway, Setup, Sink, free_port, jianmen_bin, test_message,
    wait_for_smtp, wait_until,
};

/// Text a ClamAV signature in the good package detects.
const NEW_THREAT: &str = "JIANMEN-UPGRADE-NEW-THREAT-7f3a9c";

const ARCH: &str = std::env::consts::ARCH;

/// The vendor's side: a key and the packages it signs.
struct Vendor {
    dir: PathBuf,
    name: String,
    key: PathBuf,
}

impl Vendor {
    fn new(dir: &Path, name: &str) -> Vendor {
        let key = dir.join(format!("{name}.pk8"));
        jianmen(
            &[],
            &["upgrade", "trust-line", "--create", "--key", path(&key)],
        );
        Vendor {
            dir: dir.to_owned(),
            name: name.to_owned(),
            key,
        }
    }

    fn trust_line(&self) -> String {
        let out = jianmen(&[], &["upgrade", "trust-line", "--key", path(&self.key)]);
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// A package of `version` for `arch` with these components (`--binary FILE` …).
    fn pack(&self, version: &str, arch: &str, components: &[(&str, &Path)]) -> PathBuf {
        let out = self
            .dir
            .join(format!("{}-jianmen-{version}-{arch}.jup", self.name));
        let mut args = vec![
            "upgrade",
            "pack",
            "--out",
            path(&out),
            "--version",
            version,
            "--min-from",
            "0.1.0",
            "--arch",
            arch,
            "--key",
            path(&self.key),
        ];
        for (flag, file) in components {
            args.push(flag);
            args.push(path(file));
        }
        jianmen(&[], &args);
        out
    }
}

fn path(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// Runs `jianmen` with `env`; asserts success.
fn jianmen(env: &[(String, String)], args: &[&str]) -> Output {
    let out = run(env, args);
    assert!(
        out.status.success(),
        "jianmen {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn run(env: &[(String, String)], args: &[&str]) -> Output {
    Command::new(jianmen_bin())
        .args(args)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .output()
        .expect("run jianmen")
}

/// Asserts that a command ended with `code` and said `want`.
fn expect(out: &Output, code: i32, want: &str, gw: &Gateway) {
    assert_eq!(out.status.code(), Some(code), "{}\n{}", text(out), gw.log());
    assert!(text(out).contains(want), "want {want:?}: {}", text(out));
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn packages_apply_on_trial_bad_ones_are_refused_failures_roll_back_and_queued_mail_survives() {
    let work = tempfile::tempdir().expect("tempdir");
    let vendor = Vendor::new(work.path(), "vendor");
    let stranger = Vendor::new(work.path(), "stranger");
    let trust = work.path().join("upgrade-trust");
    std::fs::write(&trust, vendor.trust_line()).expect("trust file");
    let releases = work.path().join("releases");
    let env = vec![
        ("JIANMEN_RELEASES".to_owned(), path(&releases).to_owned()),
        ("JIANMEN_UPGRADE_TRUST".to_owned(), path(&trust).to_owned()),
    ];

    // The release binary: this build without its debug sections (the package's size).
    let binary = work.path().join("jianmen");
    let status = Command::new("strip")
        .arg("-o")
        .arg(&binary)
        .arg(jianmen_bin())
        .status()
        .expect("strip");
    assert!(status.success());
    let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let model = manifest_dir.join("../gateway/model/content.onnx");
    let rules = manifest_dir.join("../gateway/rules/default.toml");

    let clamd = Clamd::start();
    let signature = work.path().join("jianmen-upgrade.ndb");
    let hex: String = NEW_THREAT.bytes().map(|b| format!("{b:02x}")).collect();
    std::fs::write(&signature, format!("Jianmen.Upgrade.NewThreat:0:*:{hex}\n")).expect("ndb");

    let downstream = free_port();
    let console = free_port();
    let mut setup = Setup::new(downstream, downstream)
        .scanning(&[])
        .section(&format!("[console]\nlisten = \"127.0.0.1:{console}\""))
        .section(&format!(
            "[scan.clamav]\naddress = \"unix:{}\"",
            clamd.socket.display()
        ));
    setup.env = env.clone();
    setup.supervised = true;
    let gw = Gateway::start(&setup);
    let pidfile = gw.dir.path().join("gateway.pid");
    let restart = format!("kill -TERM $(cat '{}')", pidfile.display());
    let apply = |package: &Path| {
        run(
            &env,
            &[
                "upgrade",
                "apply",
                path(package),
                "--trust",
                path(&trust),
                "--restart",
                &restart,
                "--wait",
                "90",
                "--clamav-dir",
                path(&clamd.db),
                "--config",
                path(&gw.config),
            ],
        )
    };
    let status = || text(&jianmen(&env, &["upgrade", "status"]));

    // Mail accepted while the mail server behind the gateway is down waits in the queue.
    let mut c = Client::ready(gw.addr);
    let r = c.send_mail(
        "alice@partner.test",
        &["bob@example.com"],
        &test_message("queued-before-the-upgrade", 3),
    );
    assert_eq!(r.code, 250, "{}", r.text);
    drop(c);
    assert!(wait_until(Duration::from_secs(10), || gw.queue_len() == 1));

    // Before the upgrade, clamd does not know the new threat.
    let threat = || {
        let mut c = Client::ready(gw.addr);
        c.send_mail(
            "mallory@partner.test",
            &["bob@example.com"],
            format!("Subject: hello\r\n\r\n{NEW_THREAT}\r\n").as_bytes(),
        )
    };
    let r = threat();
    assert_eq!(r.code, 250, "{}", r.text);

    // A good package: started on trial, passes its health check, kept.
    let good = vendor.pack(
        "9.0.0",
        ARCH,
        &[
            ("--binary", &binary),
            ("--model", &model),
            ("--rules", &rules),
            ("--clamav", &signature),
        ],
    );
    let out = apply(&good);
    expect(&out, 0, "9.0.0 passed its health check: kept", &gw);
    assert!(wait_for_smtp(gw.addr, Duration::from_secs(30)));
    // The release's binary runs — from the sealed in-memory copy whose digest was checked,
    // not from the file in the service account's folder (finding 6 of the hardening review).
    let pid = gw.pid().expect("pid");
    let exe = std::fs::read_link(format!("/proc/{pid}/exe")).expect("exe of the gateway");
    assert!(
        exe.to_string_lossy().starts_with("/memfd:jianmen-release"),
        "{exe:?}"
    );
    let environ = std::fs::read(format!("/proc/{pid}/environ")).expect("environ");
    assert!(
        environ
            .split(|&b| b == 0)
            .any(|v| v == b"JIANMEN_RELEASE=9.0.0"),
        "the 9.0.0 release runs"
    );
    assert!(releases.join("9.0.0/jianmen").is_file());
    assert!(
        status().contains("current release:   9.0.0\n"),
        "{}",
        status()
    );
    assert!(gw.log().contains("release passed its health check: kept"));
    // Its ClamAV signatures are in clamd's directory, and clamd uses them.
    assert!(text(&out).contains("clamd at unix:"), "{}", text(&out));
    assert!(clamd.db.join("jianmen-upgrade.ndb").is_file());
    assert!(
        wait_until(Duration::from_secs(30), || threat().code == 550),
        "the new signature is not used; log:\n{}",
        gw.log()
    );

    // Bad packages are refused, each with its reason, and nothing changes.
    let untrusted = stranger.pack("9.5.0", ARCH, &[("--binary", &binary)]);
    let other_arch = if ARCH == "aarch64" {
        "x86_64"
    } else {
        "aarch64"
    };
    let foreign = vendor.pack("9.5.0", other_arch, &[("--binary", &binary)]);
    let older = vendor.pack("8.0.0", ARCH, &[("--binary", &binary)]);
    let whole =
        std::fs::read(vendor.pack("9.5.0", ARCH, &[("--binary", &binary)])).expect("read package");
    let truncated = work.path().join("truncated.jup");
    std::fs::write(&truncated, &whole[..whole.len() * 3 / 5]).expect("write");
    let mut flipped = whole.clone();
    let middle = flipped.len() / 2;
    flipped[middle] ^= 0x01;
    let corrupt = work.path().join("corrupt.jup");
    std::fs::write(&corrupt, &flipped).expect("write");
    for (package, reason) in [
        (&untrusted, "which this gateway does not trust"),
        (
            &foreign,
            &format!("the package is for {other_arch}") as &str,
        ),
        (&older, "not newer than the running 9.0.0"),
        (&truncated, "damaged or truncated"),
        (&corrupt, "SM3 digest does not match"),
    ] {
        let out = apply(package);
        expect(&out, 4, "REFUSED", &gw);
        expect(&out, 4, reason, &gw);
    }
    assert!(
        status().contains("current release:   9.0.0\n"),
        "{}",
        status()
    );

    // A release whose model does not load fails its health check and is rolled back.
    let broken_model = work.path().join("content.onnx");
    std::fs::write(&broken_model, b"not an ONNX model").expect("write");
    let out = apply(&vendor.pack(
        "9.1.0",
        ARCH,
        &[("--binary", &binary), ("--model", &broken_model)],
    ));
    expect(&out, 5, "9.1.0 failed its health check: content model", &gw);
    assert!(wait_for_smtp(gw.addr, Duration::from_secs(30)));
    assert!(
        status().contains("current release:   9.0.0\n"),
        "{}",
        status()
    );

    // A release that dies at start is rolled back too.
    let out = apply(&vendor.pack("9.2.0", ARCH, &[("--binary", Path::new("/bin/false"))]));
    expect(
        &out,
        5,
        "9.2.0 started 1 time(s) without passing its health check",
        &gw,
    );
    assert!(wait_for_smtp(gw.addr, Duration::from_secs(30)));
    let st = status();
    assert!(st.contains("current release:   9.0.0\n"), "{st}");
    assert!(st.contains("rolled back from 9.2.0 to 9.0.0"), "{st}");

    // The message queued before all this is delivered once the mail server is back.
    let sink = Sink::start_on(downstream, &[]);
    assert!(
        wait_until(Duration::from_secs(30), || sink.messages().len() >= 2),
        "not delivered; log:\n{}",
        gw.log()
    );
    assert!(
        sink.messages()
            .iter()
            .any(|m| m.body().contains("queued-before-the-upgrade"))
    );
    assert!(wait_until(Duration::from_secs(10), || gw.queue_len() == 0));

    // The system administrator uploads a package in the console: refused when untrusted, else
    // the gateway restarts on it and keeps it.
    let console = Console::new(console, gw.dir.path());
    let (user, password) = gw.initial_account("system");
    let anonymous = console.upload("none", &good);
    assert_eq!(anonymous.0, 401, "{anonymous:?}");
    let csrf = console.sign_in(&user, &password, "Upgrade-Admin-Pass-2026");
    let (code, body) = console.upload(&csrf, &untrusted);
    assert_eq!(code, 422, "{body}");
    assert!(body.contains("does not trust"), "{body}");
    let newer = vendor.pack("9.3.0", ARCH, &[("--binary", &binary), ("--model", &model)]);
    let (code, body) = console.upload(&csrf, &newer);
    assert_eq!(code, 202, "{body}");
    assert!(body.contains("\"version\":\"9.3.0\""), "{body}");
    assert!(
        wait_until(Duration::from_secs(60), || {
            let st = status();
            st.contains("current release:   9.3.0\n") && !st.contains("on trial")
        }),
        "{}\n{}",
        status(),
        gw.log()
    );
    assert!(wait_for_smtp(gw.addr, Duration::from_secs(30)));
    let audit = text(&gw.cli(&["audit", "list"]));
    assert!(audit.contains("upgrade.apply"), "{audit}");
    assert!(audit.contains("upgrade.refuse"), "{audit}");

    // An administrator's rollbacks: to the previous release, then to the installed package.
    let out = jianmen(&env, &["upgrade", "rollback", "--restart", &restart]);
    assert!(
        text(&out).contains("rolled back from 9.3.0 to 9.0.0"),
        "{}",
        text(&out)
    );
    assert!(wait_for_smtp(gw.addr, Duration::from_secs(30)));
    let out = jianmen(&env, &["upgrade", "rollback", "--restart", &restart]);
    assert!(
        text(&out).contains("rolled back from 9.0.0 to the installed package"),
        "{}",
        text(&out)
    );
    assert!(wait_until(Duration::from_secs(30), || {
        gw.pid()
            .and_then(|pid| std::fs::read_link(format!("/proc/{pid}/exe")).ok())
            .is_some_and(|exe| exe == jianmen_bin())
    }));
    assert!(wait_for_smtp(gw.addr, Duration::from_secs(30)));
    assert!(status().contains("current release:   none"), "{}", status());
}
