use super::*;
use crate::upgrade::{Input, pack};
use jianmen_gm::signing::Sm2Signer;

const ARCH: &str = std::env::consts::ARCH;
/// The version of the "installed package" in these tests.
const FACTORY: &str = "1.0.0";

struct Site {
    dir: tempfile::TempDir,
    signer: Sm2Signer,
    trusted: Result<Vec<TrustedKey>, UpgradeError>,
    releases: Releases,
}

fn site() -> Site {
    let dir = tempfile::tempdir().unwrap();
    let signer = Sm2Signer::load_or_create(&dir.path().join("vendor.pk8")).unwrap();
    let trust = dir.path().join("upgrade-trust");
    std::fs::write(&trust, TrustedKey::line_for(&signer)).unwrap();
    let trusted = TrustedKey::load(&trust);
    let releases = Releases::new(dir.path().join("data/releases"));
    Site {
        dir,
        signer,
        trusted,
        releases,
    }
}

impl Site {
    /// A package of `version` whose binary and model have content unique to it.
    fn package(&self, version: &str) -> PathBuf {
        let src = self.dir.path().join(format!("src-{version}"));
        std::fs::create_dir_all(&src).unwrap();
        let binary = src.join("jianmen");
        std::fs::write(&binary, format!("#!/bin/sh\n# jianmen {version}\n")).unwrap();
        let model = src.join("content.onnx");
        std::fs::write(&model, version.repeat(100)).unwrap();
        let out = self
            .dir
            .path()
            .join(format!("jianmen-{version}-{ARCH}.jup"));
        let inputs = [
            Input {
                kind: ComponentKind::Binary,
                path: binary,
            },
            Input {
                kind: ComponentKind::Model,
                path: model,
            },
        ];
        pack(&out, version, ARCH, "0.1.0", &inputs, &self.signer).unwrap();
        out
    }

    fn keys(&self) -> &[TrustedKey] {
        self.trusted.as_ref().unwrap()
    }

    /// Installs the package of `version` for the version that runs now.
    fn install(&self, version: &str) -> Result<Manifest, UpgradeError> {
        let running = self.releases.effective_version(FACTORY);
        let installed = Installed {
            version: &running,
            arch: ARCH,
            trusted: self.keys(),
        };
        self.releases.install(&self.package(version), &installed)
    }

    /// Installs and switches to `version` on trial.
    fn apply(&self, version: &str) {
        assert_eq!(self.install(version).unwrap().version, version);
        self.releases.start_trial(version).unwrap();
    }

    fn start(&self, serving: bool) -> (Option<String>, Vec<String>) {
        let (launch, notes) = choose(&self.releases, FACTORY, &self.trusted, serving);
        let version = match launch {
            Launch::Factory => None,
            Launch::Release(r) => Some(r.manifest.version),
        };
        (version, notes)
    }

    fn release_dirs(&self) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(self.releases.root())
            .unwrap()
            .flatten()
            .filter(|e| e.file_type().unwrap().is_dir())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }
}

#[test]
fn nothing_applied_runs_the_installed_package() {
    let s = site();
    assert_eq!(s.start(true), (None, vec![]));
    assert_eq!(s.releases.effective_version(FACTORY), FACTORY);
}

#[test]
fn a_release_on_trial_is_kept_once_confirmed() {
    let s = site();
    s.apply("1.1.0");
    let (version, notes) = s.start(true);
    assert_eq!(version.as_deref(), Some("1.1.0"), "{notes:?}");
    assert_eq!(s.releases.trial().map(|t| t.starts), Some(1));
    assert!(s.releases.confirm("1.1.0").unwrap());
    assert_eq!(s.releases.trial(), None);
    // Later starts run it without counting.
    assert_eq!(s.start(true).0.as_deref(), Some("1.1.0"));
    assert_eq!(s.start(true).0.as_deref(), Some("1.1.0"));
    assert_eq!(s.releases.effective_version(FACTORY), "1.1.0");
    // A release can only confirm itself while on trial.
    assert!(!s.releases.confirm("1.1.0").unwrap());
}

#[test]
fn a_release_that_starts_twice_unconfirmed_rolls_back_to_the_previous_one() {
    let s = site();
    s.apply("1.1.0");
    s.start(true);
    s.releases.confirm("1.1.0").unwrap();
    s.apply("1.2.0");
    assert_eq!(s.releases.previous().as_deref(), Some("1.1.0"));
    assert_eq!(s.start(true).0.as_deref(), Some("1.2.0"));
    // It never confirmed (crashed, or failed its health check): the next start goes back.
    let (version, notes) = s.start(true);
    assert_eq!(version.as_deref(), Some("1.1.0"));
    assert!(
        notes[0].contains("without passing its health check"),
        "{notes:?}"
    );
    assert_eq!(s.releases.current().as_deref(), Some("1.1.0"));
    assert_eq!(s.releases.previous(), None);
    assert_eq!(s.releases.trial(), None);
    let why = s.releases.last_rollback().unwrap();
    assert!(why.contains("from 1.2.0 to 1.1.0"), "{why}");
    assert_eq!(s.release_dirs(), ["1.1.0"], "the failed release is removed");
    // A release that says what failed has it in the rollback's reason.
    s.apply("1.3.0");
    s.start(true);
    s.releases
        .fail("1.3.0", "console on 127.0.0.1:8443: TLS: eof")
        .unwrap();
    let (version, notes) = s.start(true);
    assert_eq!(version.as_deref(), Some("1.1.0"));
    assert!(
        notes[0].contains("1.3.0 failed its health check: console"),
        "{notes:?}"
    );
    assert!(s.releases.last_rollback().unwrap().contains("TLS: eof"));
    // The release rolled back to is not on trial: it keeps running.
    assert_eq!(s.start(true).0.as_deref(), Some("1.1.0"));
}

#[test]
fn the_first_release_rolls_back_to_the_installed_package() {
    let s = site();
    s.apply("1.1.0");
    s.start(true);
    assert_eq!(s.start(true).0, None);
    assert_eq!(s.releases.current(), None);
    assert!(
        s.releases
            .last_rollback()
            .unwrap()
            .contains("the installed package")
    );
}

#[test]
fn other_commands_run_the_installed_package_while_a_release_is_on_trial() {
    let s = site();
    s.apply("1.1.0");
    let (version, notes) = s.start(false);
    assert_eq!(version, None);
    assert!(notes[0].contains("on trial"), "{notes:?}");
    assert_eq!(s.releases.trial().map(|t| t.starts), Some(0), "not counted");
    s.start(true);
    s.releases.confirm("1.1.0").unwrap();
    assert_eq!(s.start(false).0.as_deref(), Some("1.1.0"));
}

#[test]
fn a_tampered_release_is_not_run() {
    let s = site();
    s.apply("1.1.0");
    s.start(true);
    s.releases.confirm("1.1.0").unwrap();
    let binary = s.releases.root().join("1.1.0/jianmen");
    std::fs::write(&binary, "#!/bin/sh\n# jianmen 1.1.0 with a backdoor\n").unwrap();
    // A command-line start refuses it without touching the releases.
    let (version, notes) = s.start(false);
    assert_eq!(version, None);
    assert!(notes[0].contains("does not verify"), "{notes:?}");
    assert_eq!(s.releases.current().as_deref(), Some("1.1.0"));
    // The daemon rolls back.
    let (version, notes) = s.start(true);
    assert_eq!(version, None);
    assert!(notes[0].contains("rolled back"), "{notes:?}");
    assert_eq!(s.releases.current(), None);
}

#[test]
fn a_component_replaced_by_a_symbolic_link_is_refused() {
    let s = site();
    s.apply("1.1.0");
    let model = s.releases.root().join("1.1.0/content.onnx");
    let elsewhere = s.dir.path().join("same-bytes.onnx");
    std::fs::copy(&model, &elsewhere).unwrap();
    std::fs::remove_file(&model).unwrap();
    std::os::unix::fs::symlink(&elsewhere, &model).unwrap();
    let err = s.releases.verified("1.1.0", s.keys()).unwrap_err();
    assert!(matches!(err, UpgradeError::Io { .. }), "{err}");
}

#[test]
fn a_release_signed_by_a_key_no_longer_trusted_is_rolled_back() {
    let mut s = site();
    s.apply("1.1.0");
    s.start(true);
    s.releases.confirm("1.1.0").unwrap();
    let other = Sm2Signer::load_or_create(&s.dir.path().join("other.pk8")).unwrap();
    let trust = s.dir.path().join("upgrade-trust");
    std::fs::write(&trust, TrustedKey::line_for(&other)).unwrap();
    s.trusted = TrustedKey::load(&trust);
    let (version, notes) = s.start(true);
    assert_eq!(version, None);
    assert!(notes[0].contains("does not trust"), "{notes:?}");
    // A missing trust file is no better.
    s.apply_unchecked_for_test();
    s.trusted = TrustedKey::load(&s.dir.path().join("missing"));
    let (version, notes) = s.start(true);
    assert_eq!(version, None);
    assert!(notes[0].contains("trusted keys"), "{notes:?}");
}

impl Site {
    /// Applies 1.2.0 with the original key (for tests that changed `trusted` afterwards).
    fn apply_unchecked_for_test(&mut self) {
        let trust = self.dir.path().join("upgrade-trust");
        std::fs::write(&trust, TrustedKey::line_for(&self.signer)).unwrap();
        self.trusted = TrustedKey::load(&trust);
        self.apply("1.2.0");
    }
}

#[test]
fn an_installed_package_newer_than_the_release_wins() {
    let s = site();
    s.apply("1.1.0");
    s.start(true);
    s.releases.confirm("1.1.0").unwrap();
    let (launch, notes) = choose(&s.releases, "2.0.0", &s.trusted, true);
    assert!(matches!(launch, Launch::Factory));
    assert!(notes[0].contains("not newer"), "{notes:?}");
    assert_eq!(s.releases.effective_version("2.0.0"), "2.0.0");
}

#[test]
fn install_refuses_what_is_not_newer_than_what_runs_and_leaves_nothing() {
    let s = site();
    s.apply("1.1.0");
    s.start(true);
    s.releases.confirm("1.1.0").unwrap();
    for version in ["1.1.0", "1.0.5"] {
        let err = s.install(version).unwrap_err();
        assert!(matches!(err, UpgradeError::Version(_)), "{err}");
    }
    assert_eq!(s.release_dirs(), ["1.1.0"]);
    assert_eq!(s.releases.current().as_deref(), Some("1.1.0"));
}

#[test]
fn a_manual_rollback_returns_to_the_previous_release() {
    let s = site();
    s.apply("1.1.0");
    s.start(true);
    s.releases.confirm("1.1.0").unwrap();
    s.apply("1.2.0");
    s.start(true);
    s.releases.confirm("1.2.0").unwrap();
    assert_eq!(s.release_dirs(), ["1.1.0", "1.2.0"]);
    assert_eq!(
        s.releases.roll_back("asked").unwrap().as_deref(),
        Some("1.1.0")
    );
    assert_eq!(s.start(true).0.as_deref(), Some("1.1.0"));
    assert_eq!(s.releases.roll_back("asked").unwrap(), None);
    assert_eq!(s.start(true).0, None);
}

/// Finding 10 of the hardening review: concurrent installs shared one staging folder, so one
/// could remove or take the other's files.
#[test]
fn concurrent_installs_each_use_a_staging_folder_of_their_own() {
    let site = site();
    let versions: Vec<String> = (1..=6).map(|v| format!("1.{v}.0")).collect();
    let packages: Vec<PathBuf> = versions.iter().map(|v| site.package(v)).collect();
    let running = site.releases.effective_version(FACTORY);
    let installed = Installed {
        version: &running,
        arch: ARCH,
        trusted: site.keys(),
    };
    std::thread::scope(|scope| {
        let installs: Vec<_> = packages
            .iter()
            .map(|p| scope.spawn(|| site.releases.install(p, &installed)))
            .collect();
        for (install, version) in installs.into_iter().zip(&versions) {
            let manifest = install.join().unwrap().unwrap();
            assert_eq!(&manifest.version, version);
        }
    });
    assert_eq!(
        site.release_dirs(),
        versions,
        "every release whole, no staging left"
    );
    for v in &versions {
        let model = std::fs::read(site.releases.root().join(v).join("content.onnx")).unwrap();
        assert_eq!(model, v.repeat(100).into_bytes(), "{v}: its own files");
    }
}

/// Finding 6 of the hardening review: root verified a release's binary, then executed the file
/// by its name — and the folder is the service account's, which could swap the file between.
#[test]
fn what_runs_is_the_verified_copy_not_the_file_on_disk() {
    use std::io::Read;
    let s = site();
    s.apply("2.0.0");
    let release = s.releases.verified("2.0.0", s.keys()).unwrap();
    let image = release.sealed_binary().unwrap().expect("a binary");
    let path = release.component(ComponentKind::Binary).unwrap();
    std::fs::write(&path, "#!/bin/sh\n# something else\n").unwrap();
    let mut held = String::new();
    std::fs::File::from(image)
        .read_to_string(&mut held)
        .unwrap();
    assert_eq!(
        held, "#!/bin/sh\n# jianmen 2.0.0\n",
        "the copy kept the verified bytes"
    );
    assert!(
        matches!(release.sealed_binary(), Err(UpgradeError::Component { .. })),
        "a copy made after the change refuses it"
    );
}

/// Finding 6 of the hardening review: root replaced `trial` and `last-rollback` by creating
/// `.trial.tmp` with `File::create`, which follows a symbolic link the service account could
/// leave there — and truncates whatever it points to.
#[test]
fn root_never_writes_through_a_link_left_in_the_folder() {
    let s = site();
    s.apply("2.0.0");
    let victim = s.dir.path().join("victim");
    std::fs::write(&victim, "precious").unwrap();
    for tmp in [".trial.tmp", ".last-rollback.tmp"] {
        std::os::unix::fs::symlink(&victim, s.releases.root().join(tmp)).unwrap();
    }
    s.releases.start_trial("2.0.0").unwrap();
    assert_eq!(
        s.releases.trial().map(|t| t.version).as_deref(),
        Some("2.0.0")
    );
    s.releases.roll_back("test").unwrap();
    assert!(
        s.releases
            .last_rollback()
            .is_some_and(|n| n.contains("test"))
    );
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
}
