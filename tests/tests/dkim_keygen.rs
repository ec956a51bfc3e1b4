//! `jianmen dkim keygen`: the key is filed where the gateway loads it, readable by the service
//! account alone, never over an existing selector, and the DNS record it prints publishes it.
//! (That the gateway signs with such keys and python3-dkim verifies the signatures is
//! tests/tests/outbound.rs's and gateway/mta/tests/dkim.rs's.)

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::{Command, Output};

use jianmen_testkit::jianmen_bin;

fn jianmen(config: &Path, args: &[&str]) -> Output {
    Command::new(jianmen_bin())
        .args(args)
        .arg("--config")
        .arg(config)
        .output()
        .expect("jianmen runs")
}

/// The uid of an account, as `id` says.
fn uid_of(user: &str) -> u32 {
    let out = Command::new("id").args(["-u", user]).output().expect("id");
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .expect("a uid")
}

/// The quoted strings of the zone-file line for `name`.
fn record_strings<'a>(stdout: &'a str, name: &str) -> Vec<&'a str> {
    let line = stdout
        .lines()
        .find(|l| l.starts_with(&format!("{name} IN TXT ( \"")))
        .unwrap_or_else(|| panic!("no record for {name} in:\n{stdout}"));
    let inner = line
        .strip_prefix(&format!("{name} IN TXT ( \""))
        .and_then(|l| l.strip_suffix("\" )"))
        .unwrap_or_else(|| panic!("not a TXT line: {line}"));
    inner.split("\" \"").collect()
}

#[test]
fn keygen_files_a_private_key_and_prints_the_record_that_publishes_it() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    let config = dir.path().join("jianmen.toml");
    // `nobody`: an account every system has, to see the key handed over when run as root.
    std::fs::write(
        &config,
        format!(
            "[server]\nhostname = \"mx.example.com\"\ndata_dir = \"{}\"\nuser = \"nobody\"\n\
             [domains]\nprotected = [\"example.com\"]\n",
            data.display()
        ),
    )
    .unwrap();

    let out = jianmen(
        &config,
        &[
            "dkim",
            "keygen",
            "--domain",
            "Example.COM",
            "--selector",
            "JM2026a",
        ],
    );
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Filed by lower-case names, 0600 in 0700 directories, the service account's when root.
    let key = data.join("keys/example.com/jm2026a.pem");
    let pem = std::fs::read_to_string(&key).unwrap();
    assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----\n"), "{pem}");
    let me = std::fs::metadata(dir.path()).unwrap().uid();
    let owner = if me == 0 { uid_of("nobody") } else { me };
    for (path, mode) in [
        (key.as_path(), 0o600),
        (&data.join("keys/example.com"), 0o700),
        (&data.join("keys"), 0o700),
    ] {
        let meta = std::fs::metadata(path).unwrap();
        assert_eq!(
            meta.permissions().mode() & 0o7777,
            mode,
            "{}",
            path.display()
        );
        assert_eq!(meta.uid(), owner, "{}", path.display());
    }
    let leftovers: Vec<_> = std::fs::read_dir(data.join("keys/example.com"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(leftovers, ["jm2026a.pem"]);

    // The record: strings of at most 255 characters that join into the whole value printed.
    let strings = record_strings(&stdout, "jm2026a._domainkey.example.com.");
    assert!(
        strings.len() == 2 && strings.iter().all(|s| s.len() <= 255),
        "{stdout}"
    );
    let whole = strings.concat();
    assert!(whole.starts_with("v=DKIM1; k=rsa; p=MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA"));
    assert!(
        stdout.contains(&format!("in one field: {whole})")),
        "{stdout}"
    );

    // The configuration it suggests is accepted as printed.
    let snippet = "[[dkim.domains]]\ndomain = \"example.com\"\nselector = \"jm2026a\"\n";
    assert!(stdout.contains(snippet), "{stdout}");
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str(snippet);
    std::fs::write(&config, text).unwrap();
    let check = Command::new(jianmen_bin())
        .args(["check-config", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );

    // Never over an existing selector, whatever the case it is given in.
    let again = jianmen(
        &config,
        &[
            "dkim",
            "keygen",
            "--domain",
            "example.com",
            "--selector",
            "jm2026A",
        ],
    );
    let stderr = String::from_utf8_lossy(&again.stderr);
    assert!(!again.status.success());
    assert!(stderr.contains("never overwritten"), "{stderr}");
    assert_eq!(std::fs::read_to_string(&key).unwrap(), pem);

    // Ed25519: one short string, the raw public key (RFC 8463).
    let out = jianmen(
        &config,
        &[
            "dkim",
            "keygen",
            "--domain",
            "example.com",
            "--selector",
            "e1",
            "--algorithm",
            "ed25519",
        ],
    );
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let strings = record_strings(&stdout, "e1._domainkey.example.com.");
    assert_eq!(strings.len(), 1, "{stdout}");
    let p = strings[0]
        .strip_prefix("v=DKIM1; k=ed25519; p=")
        .unwrap_or_else(|| panic!("{stdout}"));
    assert_eq!(p.len(), 44, "32 bytes in base64: {p}");

    // Names that are not DNS names never become paths.
    for (domain, selector) in [("../etc", "x"), ("example.com", "../../x"), ("a b", "x")] {
        let out = jianmen(
            &config,
            &["dkim", "keygen", "--domain", domain, "--selector", selector],
        );
        assert!(!out.status.success(), "{domain} {selector}");
    }
}
