use super::*;
use jianmen_gm::signing::{Ed25519Signer, Sm2Signer};

const ARCH: &str = std::env::consts::ARCH;

struct Fixture {
    dir: tempfile::TempDir,
    signer: Sm2Signer,
    trusted: Vec<TrustedKey>,
    inputs: Vec<Input>,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let signer = Sm2Signer::load_or_create(&dir.path().join("vendor.pk8")).unwrap();
    let trust = dir.path().join("upgrade-trust");
    std::fs::write(
        &trust,
        format!("# vendor\n\n{}\n", TrustedKey::line_for(&signer)),
    )
    .unwrap();
    let trusted = TrustedKey::load(&trust).unwrap();
    let mut inputs = Vec::new();
    for (kind, name, len) in [
        (ComponentKind::Binary, "jianmen", 70_000),
        (ComponentKind::Model, "content.onnx", 5_000),
        (ComponentKind::Clamav, "daily.ndb", 300),
        (ComponentKind::Clamav, "main.ndb", 0),
    ] {
        let path = dir.path().join(name);
        std::fs::write(
            &path,
            (0..len).map(|i| (i * 7 % 251) as u8).collect::<Vec<_>>(),
        )
        .unwrap();
        inputs.push(Input { kind, path });
    }
    Fixture {
        dir,
        signer,
        trusted,
        inputs,
    }
}

impl Fixture {
    fn pack(&self, version: &str, arch: &str, min_from: &str) -> Result<PathBuf, UpgradeError> {
        let out = self
            .dir
            .path()
            .join(format!("jianmen-{version}-{arch}.jup"));
        pack(&out, version, arch, min_from, &self.inputs, &self.signer)?;
        Ok(out)
    }

    fn verify(&self, path: &Path) -> Result<(Manifest, String), UpgradeError> {
        let installed = Installed {
            version: "0.1.0",
            arch: ARCH,
            trusted: &self.trusted,
        };
        verify(path, &installed, None)
    }
}

/// The package's entries, in order.
fn entries(path: &Path) -> Vec<(String, Vec<u8>)> {
    let mut archive = tar::Archive::new(std::fs::File::open(path).unwrap());
    archive
        .entries()
        .unwrap()
        .map(|e| {
            let mut e = e.unwrap();
            let name = e.path().unwrap().to_string_lossy().into_owned();
            let mut bytes = Vec::new();
            e.read_to_end(&mut bytes).unwrap();
            (name, bytes)
        })
        .collect()
}

fn write_entries(path: &Path, entries: &[(String, Vec<u8>)]) {
    let mut b = tar::Builder::new(std::fs::File::create(path).unwrap());
    for (name, bytes) in entries {
        let mut h = tar::Header::new_gnu();
        h.set_size(bytes.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        b.append_data(&mut h, name, bytes.as_slice()).unwrap();
    }
    b.finish().unwrap();
}

/// A package whose manifest is `manifest`, signed by `signer`, with the fixture's files.
fn signed(f: &Fixture, manifest: &Manifest, signer: &dyn PackageSigner) -> PathBuf {
    let good = entries(&f.pack("0.2.0", ARCH, "0.1.0").unwrap());
    let bytes = serde_json::to_vec(manifest).unwrap();
    let sig = serde_json::to_vec(&SignatureFile {
        algorithm: signer.algorithm().into(),
        public_key: jianmen_gm::hex(&signer.public_key()),
        signature: jianmen_gm::hex(&signer.sign(&bytes)),
    })
    .unwrap();
    let mut all = vec![
        ("manifest.json".to_owned(), bytes),
        ("manifest.sig".to_owned(), sig),
    ];
    all.extend(good.into_iter().skip(2));
    let path = f.dir.path().join("crafted.jup");
    write_entries(&path, &all);
    path
}

fn good_manifest(f: &Fixture) -> Manifest {
    f.verify(&f.pack("0.2.0", ARCH, "0.1.0").unwrap())
        .unwrap()
        .0
}

#[test]
fn a_signed_package_verifies_and_extracts_its_files_unchanged() {
    let f = fixture();
    let path = f.pack("0.2.0", ARCH, "0.1.0").unwrap();
    let out = f.dir.path().join("staged");
    std::fs::create_dir(&out).unwrap();
    let installed = Installed {
        version: "0.1.0",
        arch: ARCH,
        trusted: &f.trusted,
    };
    let (manifest, fingerprint) = verify(&path, &installed, Some(&out)).unwrap();
    assert_eq!(manifest.version, "0.2.0");
    assert_eq!(manifest.components.len(), 4);
    assert_eq!(fingerprint, signing::fingerprint(&f.signer.public_key()));
    for input in &f.inputs {
        let name = input.path.file_name().unwrap();
        assert_eq!(
            std::fs::read(out.join(name)).unwrap(),
            std::fs::read(&input.path).unwrap()
        );
    }
}

#[test]
fn ed25519_packages_verify_where_the_ed25519_key_is_trusted() {
    let f = fixture();
    let ed = Ed25519Signer::load_or_create(&f.dir.path().join("ed.pk8")).unwrap();
    let path = signed(&f, &good_manifest(&f), &ed);
    assert!(matches!(f.verify(&path), Err(UpgradeError::Signature(_))));
    let trust = f.dir.path().join("trust-ed");
    std::fs::write(&trust, TrustedKey::line_for(&ed)).unwrap();
    let installed = Installed {
        version: "0.1.0",
        arch: ARCH,
        trusted: &TrustedKey::load(&trust).unwrap(),
    };
    verify(&path, &installed, None).unwrap();
}

#[test]
fn a_package_signed_by_an_untrusted_key_is_refused() {
    let f = fixture();
    let other = Sm2Signer::load_or_create(&f.dir.path().join("other.pk8")).unwrap();
    let path = signed(&f, &good_manifest(&f), &other);
    let err = f.verify(&path).unwrap_err().to_string();
    assert!(err.contains("does not trust"), "{err}");
}

#[test]
fn a_changed_manifest_breaks_the_signature() {
    let f = fixture();
    let mut all = entries(&f.pack("0.2.0", ARCH, "0.1.0").unwrap());
    let text = String::from_utf8(all[0].1.clone()).unwrap();
    all[0].1 = text.replace("0.2.0", "0.3.0").into_bytes();
    let path = f.dir.path().join("changed.jup");
    write_entries(&path, &all);
    let err = f.verify(&path).unwrap_err();
    assert!(matches!(err, UpgradeError::Signature(_)), "{err}");
}

#[test]
fn a_changed_component_fails_its_digest() {
    let f = fixture();
    let mut all = entries(&f.pack("0.2.0", ARCH, "0.1.0").unwrap());
    all[2].1[1000] ^= 1;
    let path = f.dir.path().join("flipped.jup");
    write_entries(&path, &all);
    let err = f.verify(&path).unwrap_err().to_string();
    assert!(err.contains("SM3 digest does not match"), "{err}");
}

#[test]
fn extra_missing_and_reordered_entries_are_refused() {
    let f = fixture();
    let good = entries(&f.pack("0.2.0", ARCH, "0.1.0").unwrap());
    let path = f.dir.path().join("odd.jup");
    let mut extra = good.clone();
    extra.push(("evil.sh".into(), b"rm -rf /".to_vec()));
    let mut twice = good.clone();
    twice.push(good[3].clone());
    let mut missing = good.clone();
    missing.remove(3);
    let mut reordered = good.clone();
    reordered.swap(0, 1);
    for (what, all) in [
        ("extra", extra),
        ("twice", twice),
        ("missing", missing),
        ("reordered", reordered),
    ] {
        write_entries(&path, &all);
        assert!(f.verify(&path).is_err(), "{what} was accepted");
    }
}

#[test]
fn a_truncated_package_is_refused_wherever_it_is_cut() {
    let f = fixture();
    let bytes = std::fs::read(f.pack("0.2.0", ARCH, "0.1.0").unwrap()).unwrap();
    // The last 1024 bytes are the end-of-archive blocks; before them a component's padding.
    let whole_data = bytes.len() - 1024 - 511;
    let path = f.dir.path().join("cut.jup");
    for cut in (0..whole_data).step_by(509).chain([whole_data - 1]) {
        std::fs::write(&path, &bytes[..cut]).unwrap();
        assert!(
            f.verify(&path).is_err(),
            "cut at {cut} of {} accepted",
            bytes.len()
        );
    }
}

#[test]
fn wrong_arch_downgrade_and_too_old_a_gateway_are_refused() {
    let f = fixture();
    let other_arch = if ARCH == "aarch64" {
        "x86_64"
    } else {
        "aarch64"
    };
    let err = f
        .verify(&f.pack("0.2.0", other_arch, "0.1.0").unwrap())
        .unwrap_err();
    assert!(matches!(err, UpgradeError::WrongArch { .. }), "{err}");
    for (version, min_from) in [("0.1.0", "0.0.1"), ("0.0.9", "0.0.1")] {
        let err = f
            .verify(&f.pack(version, ARCH, min_from).unwrap())
            .unwrap_err();
        assert!(err.to_string().contains("downgrades are refused"), "{err}");
    }
    let err = f
        .verify(&f.pack("0.3.0", ARCH, "0.2.0").unwrap())
        .unwrap_err();
    assert!(err.to_string().contains("intermediate version"), "{err}");
}

#[test]
fn signed_manifests_with_hostile_names_or_counts_are_refused() {
    let f = fixture();
    let good = good_manifest(&f);
    let mut traversal = good.clone();
    traversal.components[0].file = "../../usr/bin/jianmen".into();
    let mut two_binaries = good.clone();
    two_binaries.components[1].kind = ComponentKind::Binary;
    let mut huge = good.clone();
    huge.components[0].size = u64::MAX / 2;
    let mut bad_digest = good.clone();
    bad_digest.components[0].sm3 = "zz".into();
    for (what, manifest) in [
        ("traversal", traversal),
        ("two binaries", two_binaries),
        ("huge", huge),
        ("bad digest", bad_digest),
    ] {
        let err = f.verify(&signed(&f, &manifest, &f.signer)).unwrap_err();
        assert!(matches!(err, UpgradeError::BadManifest(_)), "{what}: {err}");
    }
}

#[test]
fn garbage_is_a_clear_error_not_a_panic() {
    let f = fixture();
    let path = f.dir.path().join("garbage.jup");
    for bytes in [Vec::new(), vec![0u8; 512], b"not a tar at all".repeat(100)] {
        std::fs::write(&path, &bytes).unwrap();
        assert!(f.verify(&path).is_err());
    }
}
