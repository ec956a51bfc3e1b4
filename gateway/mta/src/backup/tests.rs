use super::*;

const PASS: &str = "a long enough passphrase";

/// A gateway's files: configuration directory `etc` (the file, a key beside it, a certificate in
/// a folder it names, a stray file in a folder it does not), data directory `data` with keys, an
/// installed certificate, settings and mail-side tables, and a file the configuration names
/// outside its directory.
struct Site {
    root: tempfile::TempDir,
}

impl Site {
    fn new() -> Site {
        let root = tempfile::tempdir().unwrap();
        let r = root.path();
        for d in [
            "etc/certs",
            "etc/unnamed",
            "data/keys/example.com",
            "data/tls",
            "data/spool",
            "elsewhere",
        ] {
            std::fs::create_dir_all(r.join(d)).unwrap();
        }
        std::fs::write(
            r.join("etc/jianmen.toml"),
            format!(
                "[server]\nhostname = \"mx.example.com\"\ndata_dir = \"{data}\"\n\
                 [domains]\nprotected = [\"example.com\"]\n\
                 [tls]\ncert = \"certs/mx.pem\"\nkey = \"{etc}/mx.key\"\nkey_password_file = \"{out}\"\n",
                data = r.join("data").display(),
                etc = r.join("etc").display(),
                out = r.join("elsewhere/password").display(),
            ),
        )
        .unwrap();
        std::fs::write(r.join("etc/mx.key"), "KEY").unwrap();
        std::fs::write(r.join("etc/certs/mx.pem"), "CERT").unwrap();
        std::fs::write(r.join("etc/unnamed/stray.pem"), "STRAY").unwrap();
        std::fs::write(r.join("elsewhere/password"), "secret").unwrap();
        std::fs::write(r.join("data/keys/spool-sm4.key"), [7u8; 16]).unwrap();
        std::fs::write(r.join("data/keys/example.com/jm.pem"), "DKIM").unwrap();
        std::fs::write(r.join("data/tls/international.crt"), "INSTALLED").unwrap();
        Site { root }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.root.path().join(rel)
    }

    fn config(&self) -> Config {
        Config::load(&self.path("etc/jianmen.toml")).unwrap()
    }

    async fn settings(&self, rows: &[(&str, &str)]) {
        let store = crate::queue::store::SqliteStore::open(&self.path("data/jianmen.db"))
            .await
            .unwrap();
        for (owner, entry) in rows {
            sqlx::query(
                "INSERT INTO own_lists (owner, list, entry, added_at, added_by) \
                 VALUES (?, 'block', ?, 1, 'test')",
            )
            .bind(owner)
            .bind(entry)
            .execute(store.writer())
            .await
            .unwrap();
        }
    }

    async fn own_lists(&self) -> Vec<(String, String)> {
        let store = crate::queue::store::SqliteStore::open(&self.path("data/jianmen.db"))
            .await
            .unwrap();
        sqlx::query_as("SELECT owner, entry FROM own_lists ORDER BY owner, entry")
            .fetch_all(store.writer())
            .await
            .unwrap()
    }
}

#[tokio::test]
async fn a_backup_restores_configuration_keys_and_settings_in_place() {
    let site = Site::new();
    site.settings(&[
        ("dora@example.com", "bad.example"),
        ("eve@example.com", "worse.example"),
    ])
    .await;
    let made = make(&site.config(), &[QUEUE_SETTINGS], PASS).await.unwrap();
    let mut files = made.manifest.files.clone();
    files.sort();
    assert_eq!(
        files,
        [
            "data/keys/example.com/jm.pem",
            "data/keys/spool-sm4.key",
            "data/tls/international.crt",
            "etc/certs/mx.pem",
            "etc/jianmen.toml",
            "etc/mx.key",
            "settings/jianmen.db",
        ]
    );
    assert_eq!(
        made.manifest.outside,
        [site
            .path("elsewhere/password")
            .canonicalize()
            .unwrap()
            .display()
            .to_string()]
    );
    // Nothing readable without the passphrase.
    assert!(!made.sealed.windows(4).any(|w| w == b"DKIM" || w == b"CERT"));

    // Everything changes after the backup: a file edited, one lost, a list entry removed and
    // another added, a new key.
    std::fs::write(site.path("etc/mx.key"), "EDITED").unwrap();
    std::fs::remove_file(site.path("etc/certs/mx.pem")).unwrap();
    std::fs::remove_file(site.path("data/keys/example.com/jm.pem")).unwrap();
    {
        let store = crate::queue::store::SqliteStore::open(&site.path("data/jianmen.db"))
            .await
            .unwrap();
        sqlx::query("DELETE FROM own_lists")
            .execute(store.writer())
            .await
            .unwrap();
    }
    site.settings(&[("mallory@example.com", "later.example")])
        .await;

    let opened = open(&made.sealed, PASS).unwrap();
    assert_eq!(opened.manifest, made.manifest);
    assert_eq!(opened.config.server.hostname, "mx.example.com");
    // Not told to put the configuration in place: it goes beside, for a look, and nothing in
    // place changes.
    assert_eq!(
        opened.configuration_changes(&site.path("etc/jianmen.toml")),
        ["mx.key", "certs/mx.pem"]
    );
    let review = opened
        .restore_configuration(&site.path("etc/jianmen.toml"), false)
        .unwrap();
    assert_eq!(review.changed.len(), 3, "{review:?}");
    let aside = site.path(&format!("etc/restored-{}", made.manifest.made_at));
    assert_eq!(
        std::fs::read_to_string(aside.join("mx.key")).unwrap(),
        "KEY"
    );
    assert_eq!(
        std::fs::read_to_string(site.path("etc/mx.key")).unwrap(),
        "EDITED"
    );
    opened
        .check_spool_key(&site.path("data"), &site.path("data/spool"))
        .unwrap();
    let etc = opened
        .restore_configuration(&site.path("etc/jianmen.toml"), true)
        .unwrap();
    assert_eq!(etc.changed.len(), 2, "{etc:?}");
    assert_eq!(etc.unchanged, 1);
    assert_eq!(
        std::fs::read_to_string(site.path("etc/mx.key")).unwrap(),
        "KEY"
    );
    assert_eq!(
        std::fs::read_dir(site.path("etc"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| p.to_string_lossy().contains("mx.key.before-restore-"))
            .map(|p| std::fs::read_to_string(p).unwrap())
            .unwrap(),
        "EDITED",
        "what a restore replaces is kept"
    );
    assert_eq!(
        std::fs::read_to_string(site.path("etc/certs/mx.pem")).unwrap(),
        "CERT"
    );
    let data = opened.restore_data(&site.path("data")).unwrap();
    assert_eq!(
        std::fs::read_to_string(site.path("data/keys/example.com/jm.pem")).unwrap(),
        "DKIM"
    );
    let mode = std::fs::metadata(site.path("data/keys/example.com/jm.pem"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    assert!(data.changed.contains(&site.path("data/restore/jianmen.db")));

    // The settings are taken at the next open, and only the settings.
    assert_eq!(
        site.own_lists().await,
        [
            ("dora@example.com".to_string(), "bad.example".to_string()),
            ("eve@example.com".to_string(), "worse.example".to_string())
        ]
    );
    assert!(!site.path("data/restore/jianmen.db").exists(), "taken once");
    // A second open keeps them (nothing is taken twice).
    assert_eq!(site.own_lists().await.len(), 2);
}

/// A tar archive whose names are written into the headers as given, unchecked.
fn raw_archive(entries: &[(&str, &[u8])]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for (name, bytes) in entries {
        let mut header = tar::Header::new_old();
        header.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
        header.set_size(bytes.len() as u64);
        header.set_mode(0o600);
        header.set_cksum();
        builder.append(&header, *bytes).unwrap();
    }
    builder.into_inner().unwrap()
}

#[tokio::test]
async fn a_wrong_passphrase_or_a_crafted_archive_does_not_open() {
    let site = Site::new();
    let made = make(&site.config(), &[QUEUE_SETTINGS], PASS).await.unwrap();
    assert!(matches!(
        open(&made.sealed, "another long passphrase"),
        Err(BackupError::Sealed(sealed::SealError::DoesNotOpen))
    ));
    assert!(matches!(
        make(&site.config(), &[], "short").await,
        Err(BackupError::Sealed(sealed::SealError::WeakPassphrase))
    ));

    // Archives sealed with the right passphrase but made by hand: a name climbing out, an
    // absolute name, a folder of the data directory that is not backed up, a link, a file
    // the manifest does not list, a configuration this version refuses.
    let config = std::fs::read(site.path("etc/jianmen.toml")).unwrap();
    let manifest = |files: &[&str]| Manifest {
        format: FORMAT,
        made_at: 0,
        hostname: "h".into(),
        version: "0".into(),
        config_file: "jianmen.toml".into(),
        outside: Vec::new(),
        files: files.iter().map(|s| s.to_string()).collect(),
    };
    let item = |name: &str, bytes: &[u8]| Item {
        name: name.into(),
        mode: 0o600,
        bytes: bytes.to_vec(),
    };
    for (name, why) in [
        ("etc/../../evil", "climbs out"),
        ("/etc/passwd", "absolute"),
        ("data/spool/x", "not a folder backed up"),
        ("data/keys", "a folder's name alone"),
        ("settings/../x.db", "climbs out"),
        ("settings/Evil.db", "not a database name"),
        (
            "data/keys/./spool-sm4.key",
            "a `.` that would slip past a name comparison",
        ),
        ("etc/./jianmen.toml", "a second name for one file"),
        ("data/system/evil.service", "not the settings file"),
        ("other/x", "not a part of a backup"),
    ] {
        // Names set in the header's bytes: the tar crate's own checks are not what is tested.
        let crafted = raw_archive(&[
            (
                "manifest.json",
                &serde_json::to_vec(&manifest(&["etc/jianmen.toml", name])).unwrap(),
            ),
            ("etc/jianmen.toml", &config),
            (name, b"x"),
        ]);
        let sealed = sealed::seal(PASS, &crafted).unwrap();
        assert!(
            matches!(open(&sealed, PASS), Err(BackupError::Damaged(_))),
            "{name}: {why}"
        );
    }
    // The same archive with an acceptable name opens: what failed above was the name.
    let fine = raw_archive(&[
        (
            "manifest.json",
            &serde_json::to_vec(&manifest(&["etc/jianmen.toml", "data/keys/x"])).unwrap(),
        ),
        ("etc/jianmen.toml", &config),
        ("data/keys/x", b"x"),
    ]);
    open(&sealed::seal(PASS, &fine).unwrap(), PASS).unwrap();
    let unlisted = archive(
        &manifest(&["etc/jianmen.toml"]),
        &[item("etc/jianmen.toml", &config), item("etc/extra", b"x")],
    )
    .unwrap();
    assert!(matches!(
        open(&sealed::seal(PASS, &unlisted).unwrap(), PASS),
        Err(BackupError::Damaged(_))
    ));
    let refused = archive(
        &manifest(&["etc/jianmen.toml"]),
        &[item("etc/jianmen.toml", b"[server]\nhostname = 1\n")],
    )
    .unwrap();
    assert!(matches!(
        open(&sealed::seal(PASS, &refused).unwrap(), PASS),
        Err(BackupError::Config(_))
    ));
    let mut link = tar::Builder::new(Vec::new());
    let manifest_bytes = serde_json::to_vec(&manifest(&["etc/jianmen.toml"])).unwrap();
    let mut header = tar::Header::new_gnu();
    header.set_size(manifest_bytes.len() as u64);
    header.set_cksum();
    link.append_data(&mut header, "manifest.json", manifest_bytes.as_slice())
        .unwrap();
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(tar::EntryType::Symlink);
    header.set_size(0);
    link.append_link(&mut header, "etc/jianmen.toml", "/etc/shadow")
        .unwrap();
    let link = link.into_inner().unwrap();
    assert!(matches!(
        open(&sealed::seal(PASS, &link).unwrap(), PASS),
        Err(BackupError::Damaged(_))
    ));
}

#[tokio::test]
async fn the_spool_key_is_not_replaced_while_mail_sealed_with_the_present_one_waits() {
    let site = Site::new();
    let made = make(&site.config(), &[QUEUE_SETTINGS], PASS).await.unwrap();
    let opened = open(&made.sealed, PASS).unwrap();
    std::fs::write(site.path("data/keys/spool-sm4.key"), [9u8; 16]).unwrap();
    // An empty spool (folders only): the key may be replaced.
    std::fs::create_dir_all(site.path("data/spool/incoming")).unwrap();
    opened
        .check_spool_key(&site.path("data"), &site.path("data/spool"))
        .unwrap();
    std::fs::write(
        site.path("data/spool/incoming/01J0000000000000000000000A"),
        "mail",
    )
    .unwrap();
    assert!(matches!(
        opened.check_spool_key(&site.path("data"), &site.path("data/spool")),
        Err(BackupError::Refused(_))
    ));
    // The same key as the backup's: nothing to refuse.
    std::fs::write(site.path("data/keys/spool-sm4.key"), [7u8; 16]).unwrap();
    opened
        .check_spool_key(&site.path("data"), &site.path("data/spool"))
        .unwrap();
}
