//! Offline upgrade packages (`jianmen-<version>-<arch>.jup`): what the vendor carries into a
//! site with no internet. A `.jup` is a tar holding `manifest.json` (version, architecture,
//! oldest version it may upgrade, and each component — binary, model, rules, ClamAV signature
//! files — with its size and SM3 digest), `manifest.sig` (the vendor's SM2 or Ed25519 signature
//! over the manifest, through [`signing`]) and the component files. [`verify`] trusts nothing in
//! it before the signature checks against a key the site installed, and refuses wrong
//! architectures, downgrades, digests or sizes that do not match, extra or missing files and
//! truncated archives, reading within fixed bounds.
//!
//! [`release`] installs a verified package beside the running version and switches to it on
//! trial; [`health`] is the check the new version must pass before the switch is kept.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use jianmen_gm::signing::{self, PackageSigner};
use jianmen_gm::sm3::Sm3Hasher;

pub mod health;
pub mod release;

/// The manifest format this build writes and reads.
pub const FORMAT: u32 = 1;
/// Largest manifest or signature file accepted.
const MAX_META_BYTES: u64 = 64 * 1024;
/// Most component files in one package.
const MAX_COMPONENTS: usize = 64;
/// Largest package payload accepted (all components together).
const MAX_TOTAL_BYTES: u64 = 2 * 1024 * 1024 * 1024;

/// Why a package was refused or could not be made.
#[derive(Debug, thiserror::Error)]
pub enum UpgradeError {
    /// Reading or writing a file failed.
    #[error("{path}: {error}")]
    Io {
        /// The file.
        path: String,
        /// The error (named so that it is shown once, not again as the cause).
        error: std::io::Error,
    },
    /// No vendor key is trusted yet: the trust file is missing.
    #[error(
        "no vendor key is trusted: {0} does not exist (as root, put the vendor's trust line there: jianmen upgrade trust-line)"
    )]
    NoTrust(String),
    /// The archive is damaged or cut short.
    #[error("the package is damaged or truncated: {0}")]
    Damaged(String),
    /// The manifest is not one this build understands.
    #[error("bad manifest: {0}")]
    BadManifest(String),
    /// The signature does not verify, or its key is not trusted here.
    #[error("signature refused: {0}")]
    Signature(String),
    /// Built for another processor.
    #[error("the package is for {package}, this gateway runs on {here}")]
    WrongArch {
        /// The package's architecture.
        package: String,
        /// This build's architecture.
        here: String,
    },
    /// Not newer than what runs, or this version is too old to upgrade from.
    #[error("version refused: {0}")]
    Version(String),
    /// A component's content does not match the manifest.
    #[error("component {file}: {problem}")]
    Component {
        /// The component's file name.
        file: String,
        /// What is wrong.
        problem: String,
    },
    /// The vendor key could not be used.
    #[error(transparent)]
    Key(#[from] signing::SigningError),
}

/// What a component replaces on the appliance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ComponentKind {
    /// The `jianmen` executable.
    Binary,
    /// The content model (ONNX).
    Model,
    /// The default rule file.
    Rules,
    /// A ClamAV signature database file (several allowed).
    Clamav,
}

impl ComponentKind {
    /// File mode of the installed component: only the binary is executable.
    fn mode(self) -> u32 {
        match self {
            ComponentKind::Binary => 0o755,
            _ => 0o644,
        }
    }
}

/// One file of the package.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Component {
    /// What it replaces.
    pub kind: ComponentKind,
    /// Its name inside the package.
    pub file: String,
    /// Its size in bytes.
    pub size: u64,
    /// Its SM3 digest, lower-case hex.
    pub sm3: String,
}

/// The signed description of a package.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// [`FORMAT`].
    pub format: u32,
    /// Always `jianmen`.
    pub product: String,
    /// The version the package installs (semver).
    pub version: String,
    /// The processor it is built for, as Rust names it (`x86_64`, `aarch64`, `loongarch64`).
    pub arch: String,
    /// The oldest running version that may take this package.
    pub min_from_version: String,
    /// Its files.
    pub components: Vec<Component>,
}

/// `manifest.sig`: the signature and the key that made it.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct SignatureFile {
    algorithm: String,
    public_key: String,
    signature: String,
}

/// A public key the site trusts to sign upgrades: one line `<algorithm> <hex key> [comment]`
/// of the trust file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustedKey {
    /// `sm2-sm3` or `ed25519`.
    pub algorithm: String,
    /// The raw public key.
    pub public_key: Vec<u8>,
}

impl TrustedKey {
    /// The trust-file line for `signer`'s key.
    pub fn line_for(signer: &dyn PackageSigner) -> String {
        format!(
            "{} {} fingerprint {}",
            signer.algorithm(),
            jianmen_gm::hex(&signer.public_key()),
            signing::fingerprint(&signer.public_key())
        )
    }

    /// Reads a trust file; blank lines and `#` comments are skipped.
    pub fn load(path: &Path) -> Result<Vec<TrustedKey>, UpgradeError> {
        let text = std::fs::read_to_string(path).map_err(|error| match error.kind() {
            std::io::ErrorKind::NotFound => UpgradeError::NoTrust(path.display().to_string()),
            _ => UpgradeError::Io {
                path: path.display().to_string(),
                error,
            },
        })?;
        let mut keys = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let mut words = line.split_whitespace();
            let (Some(algorithm), Some(key)) = (words.next(), words.next()) else {
                return Err(UpgradeError::Signature(format!(
                    "{} line {}: expected `<algorithm> <hex key>`",
                    path.display(),
                    n + 1
                )));
            };
            let public_key = crate::audit::export::unhex(key).map_err(|_| {
                UpgradeError::Signature(format!("{} line {}: bad hex key", path.display(), n + 1))
            })?;
            keys.push(TrustedKey {
                algorithm: algorithm.to_owned(),
                public_key,
            });
        }
        Ok(keys)
    }
}

/// What [`verify`] checks the package against: this gateway.
pub struct Installed<'a> {
    /// The running version.
    pub version: &'a str,
    /// This build's architecture.
    pub arch: &'a str,
    /// Keys allowed to sign upgrades.
    pub trusted: &'a [TrustedKey],
}

/// Verifies the package at `path` for `installed`; with `extract_to`, writes each verified
/// component there (a file is only complete once the whole package verified). Returns the
/// manifest and the fingerprint of the key that signed it.
pub fn verify(
    path: &Path,
    installed: &Installed<'_>,
    extract_to: Option<&Path>,
) -> Result<(Manifest, String), UpgradeError> {
    let io = |error| UpgradeError::Io {
        path: path.display().to_string(),
        error,
    };
    let file = std::fs::File::open(path).map_err(io)?;
    let mut archive = tar::Archive::new(std::io::BufReader::new(file));
    let mut entries = archive
        .entries()
        .map_err(|e| UpgradeError::Damaged(e.to_string()))?;
    let mut next_entry = |expect: Option<&str>| -> Result<Option<_>, UpgradeError> {
        let Some(entry) = entries.next() else {
            return match expect {
                Some(name) => Err(UpgradeError::Damaged(format!("{name} is missing"))),
                None => Ok(None),
            };
        };
        let entry = entry.map_err(|e| UpgradeError::Damaged(e.to_string()))?;
        let name = entry
            .path()
            .map_err(|e| UpgradeError::Damaged(e.to_string()))?
            .to_string_lossy()
            .into_owned();
        if let Some(want) = expect
            && name != want
        {
            return Err(UpgradeError::Damaged(format!(
                "expected {want} at this place, found {name}"
            )));
        }
        if entry.header().entry_type() != tar::EntryType::Regular {
            return Err(UpgradeError::Damaged(format!(
                "{name} is not a regular file"
            )));
        }
        Ok(Some((name, entry)))
    };

    // The manifest and its signature come first, and nothing else is believed before both check.
    let (_, manifest_entry) = next_entry(Some("manifest.json"))?.ok_or_else(missing)?;
    let manifest_bytes = read_small(manifest_entry, "manifest.json")?;
    let (_, sig_entry) = next_entry(Some("manifest.sig"))?.ok_or_else(missing)?;
    let sig_bytes = read_small(sig_entry, "manifest.sig")?;
    let fingerprint = check_signature(&manifest_bytes, &sig_bytes, installed.trusted)?;
    let manifest = parse_manifest(&manifest_bytes, installed.arch)?;
    check_version(&manifest, installed.version)?;
    if let Some(dir) = extract_to {
        // Kept beside the components, so that the release can be verified again at each start.
        write_synced(&dir.join("manifest.json"), &manifest_bytes, 0o644)?;
        write_synced(&dir.join("manifest.sig"), &sig_bytes, 0o644)?;
    }

    let mut wanted: BTreeMap<&str, &Component> = manifest
        .components
        .iter()
        .map(|c| (c.file.as_str(), c))
        .collect();
    while let Some((name, mut entry)) = next_entry(None)? {
        let Some(component) = wanted.remove(name.as_str()) else {
            return Err(UpgradeError::Component {
                file: name,
                problem: "not listed in the manifest, or listed once and present twice".into(),
            });
        };
        if entry.size() != component.size {
            return Err(UpgradeError::Component {
                file: name,
                problem: format!(
                    "{} bytes, the manifest says {}",
                    entry.size(),
                    component.size
                ),
            });
        }
        let mut out = match extract_to {
            Some(dir) => {
                let target = dir.join(&component.file);
                Some(create_new(&target, component.kind.mode())?)
            }
            None => None,
        };
        let digest = copy_digesting(&mut entry, out.as_mut(), component.size)
            .map_err(|e| UpgradeError::Damaged(format!("{name}: {e}")))?;
        if jianmen_gm::hex(&digest) != component.sm3 {
            return Err(UpgradeError::Component {
                file: name,
                problem: "SM3 digest does not match the manifest".into(),
            });
        }
    }
    if let Some(file) = wanted.keys().next() {
        return Err(UpgradeError::Damaged(format!(
            "component {file} is missing"
        )));
    }
    Ok((manifest, fingerprint))
}

/// Checks `manifest.sig` over the manifest's bytes against the site's trusted keys; the
/// fingerprint of the key that signed.
fn check_signature(
    manifest: &[u8],
    sig: &[u8],
    trusted: &[TrustedKey],
) -> Result<String, UpgradeError> {
    let sig: SignatureFile = serde_json::from_slice(sig)
        .map_err(|e| UpgradeError::Signature(format!("manifest.sig: {e}")))?;
    let public_key = crate::audit::export::unhex(&sig.public_key)
        .map_err(|_| UpgradeError::Signature("manifest.sig: bad hex key".into()))?;
    let signature = crate::audit::export::unhex(&sig.signature)
        .map_err(|_| UpgradeError::Signature("manifest.sig: bad hex signature".into()))?;
    let fingerprint = signing::fingerprint(&public_key);
    if !trusted
        .iter()
        .any(|k| k.algorithm == sig.algorithm && k.public_key == public_key)
    {
        return Err(UpgradeError::Signature(format!(
            "signed by {} key {fingerprint}, which this gateway does not trust",
            sig.algorithm
        )));
    }
    signing::verify(&sig.algorithm, &public_key, manifest, &signature)
        .map_err(|e| UpgradeError::Signature(e.to_string()))?;

    Ok(fingerprint)
}

/// Verifies a release directory that [`verify`] extracted earlier: the signature against the
/// keys trusted now, the architecture, and each component's size and SM3 digest (files are
/// opened without following symbolic links). Returns the manifest.
pub fn verify_dir(
    dir: &Path,
    arch: &str,
    trusted: &[TrustedKey],
) -> Result<Manifest, UpgradeError> {
    let read = |name: &str| -> Result<Vec<u8>, UpgradeError> {
        read_small(open_nofollow(&dir.join(name))?, name)
    };
    let manifest_bytes = read("manifest.json")?;
    check_signature(&manifest_bytes, &read("manifest.sig")?, trusted)?;
    let manifest = parse_manifest(&manifest_bytes, arch)?;
    for c in &manifest.components {
        let path = dir.join(&c.file);
        let mut file = open_nofollow(&path)?;
        let size = file
            .metadata()
            .map_err(|error| UpgradeError::Io {
                path: path.display().to_string(),
                error,
            })?
            .len();
        let problem = if size != c.size {
            Some(format!("{size} bytes, the manifest says {}", c.size))
        } else {
            match copy_digesting(&mut file, None, size) {
                Ok(digest) if jianmen_gm::hex(&digest) == c.sm3 => None,
                Ok(_) => Some("SM3 digest does not match the manifest".into()),
                Err(e) => Some(e.to_string()),
            }
        };
        if let Some(problem) = problem {
            return Err(UpgradeError::Component {
                file: c.file.clone(),
                problem,
            });
        }
    }
    Ok(manifest)
}

fn open_nofollow(path: &Path) -> Result<std::fs::File, UpgradeError> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NOFOLLOW)
        .open(path)
        .map_err(|error| UpgradeError::Io {
            path: path.display().to_string(),
            error,
        })
}

/// Creates `path` (which must not exist yet) with `mode`.
fn create_new(path: &Path, mode: u32) -> Result<std::fs::File, UpgradeError> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(|error| UpgradeError::Io {
            path: path.display().to_string(),
            error,
        })
}

/// Writes a new file and flushes it to disk.
fn write_synced(path: &Path, bytes: &[u8], mode: u32) -> Result<(), UpgradeError> {
    use std::io::Write;
    let mut file = create_new(path, mode)?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(|error| UpgradeError::Io {
            path: path.display().to_string(),
            error,
        })
}

fn missing() -> UpgradeError {
    UpgradeError::Damaged("the package ends early".into())
}

/// Reads a metadata file of the package, refusing large ones.
fn read_small(entry: impl Read, name: &str) -> Result<Vec<u8>, UpgradeError> {
    let mut bytes = Vec::new();
    entry
        .take(MAX_META_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| UpgradeError::Damaged(format!("{name}: {e}")))?;
    if bytes.len() as u64 > MAX_META_BYTES {
        return Err(UpgradeError::Damaged(format!(
            "{name} is larger than 64 KiB"
        )));
    }
    Ok(bytes)
}

/// Copies exactly `size` bytes of `from` (into `to` when given), returning their SM3 digest.
fn copy_digesting(
    from: &mut impl Read,
    mut to: Option<&mut std::fs::File>,
    size: u64,
) -> std::io::Result<[u8; 32]> {
    use std::io::Write;
    let mut hasher = Sm3Hasher::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut left = size;
    while left > 0 {
        let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        let n = from.read(&mut buf[..want])?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        hasher.update(&buf[..n]);
        if let Some(file) = to.as_mut() {
            file.write_all(&buf[..n])?;
        }
        left -= n as u64;
    }
    if let Some(file) = to {
        file.sync_all()?;
    }
    Ok(hasher.finish())
}

/// Parses a signed manifest and checks its shape and architecture (not its version order).
fn parse_manifest(bytes: &[u8], arch: &str) -> Result<Manifest, UpgradeError> {
    let manifest: Manifest =
        serde_json::from_slice(bytes).map_err(|e| UpgradeError::BadManifest(e.to_string()))?;
    check_shape(&manifest, arch)?;
    Ok(manifest)
}

/// Refuses downgrades, and upgrades from a version older than the package allows.
fn check_version(m: &Manifest, running: &str) -> Result<(), UpgradeError> {
    let parse = |what: &str, v: &str| {
        semver::Version::parse(v)
            .map_err(|e| UpgradeError::Version(format!("{what} {v:?} is not a version: {e}")))
    };
    let new = parse("package version", &m.version)?;
    let min_from = parse("min_from_version", &m.min_from_version)?;
    let running = parse("running version", running)?;
    if new <= running {
        return Err(UpgradeError::Version(format!(
            "{new} is not newer than the running {running} (downgrades are refused)"
        )));
    }
    if running < min_from {
        return Err(UpgradeError::Version(format!(
            "{new} upgrades {min_from} or later; this gateway runs {running}: apply an intermediate version first"
        )));
    }
    Ok(())
}

/// Checks what the manifest says about itself and the processor, before any component is read.
fn check_shape(m: &Manifest, arch: &str) -> Result<(), UpgradeError> {
    let bad = |s: String| Err(UpgradeError::BadManifest(s));
    if m.format != FORMAT {
        return bad(format!("format {} (this build reads {FORMAT})", m.format));
    }
    if m.product != "jianmen" {
        return bad(format!("product {:?} is not jianmen", m.product));
    }
    if m.arch != arch {
        return Err(UpgradeError::WrongArch {
            package: m.arch.clone(),
            here: arch.to_owned(),
        });
    }
    if m.components.is_empty() || m.components.len() > MAX_COMPONENTS {
        return bad(format!(
            "{} components (1 to {MAX_COMPONENTS})",
            m.components.len()
        ));
    }
    let mut total = 0u64;
    let mut files = std::collections::HashSet::new();
    for c in &m.components {
        let name_ok = !c.file.is_empty()
            && c.file.len() <= 100
            && !c.file.starts_with('.')
            && c.file
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
        if !name_ok || matches!(c.file.as_str(), "manifest.json" | "manifest.sig") {
            return bad(format!("component file name {:?}", c.file));
        }
        if !files.insert(c.file.as_str()) {
            return bad(format!("component {} listed twice", c.file));
        }
        if c.kind != ComponentKind::Clamav
            && m.components.iter().filter(|o| o.kind == c.kind).count() > 1
        {
            return bad(format!("more than one {:?} component", c.kind));
        }
        if c.sm3.len() != 64 || !c.sm3.bytes().all(|b| b.is_ascii_hexdigit()) {
            return bad(format!("component {}: SM3 digest {:?}", c.file, c.sm3));
        }
        total = total.saturating_add(c.size);
    }
    if total > MAX_TOTAL_BYTES {
        return bad(format!(
            "{total} bytes of components (at most {MAX_TOTAL_BYTES})"
        ));
    }
    Ok(())
}

/// A file to put into a package.
pub struct Input {
    /// What it replaces.
    pub kind: ComponentKind,
    /// Where it is now.
    pub path: PathBuf,
}

/// Writes a package to `out`: manifest (with `version`, `arch`, `min_from_version`), its
/// signature by `signer`, and the `inputs`. The vendor's side; the site runs [`verify`].
pub fn pack(
    out: &Path,
    version: &str,
    arch: &str,
    min_from_version: &str,
    inputs: &[Input],
    signer: &dyn PackageSigner,
) -> Result<Manifest, UpgradeError> {
    let io = |path: &Path| {
        let path = path.display().to_string();
        move |error| UpgradeError::Io { path, error }
    };
    let mut components = Vec::new();
    for input in inputs {
        let file = input
            .path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let mut f = std::fs::File::open(&input.path).map_err(io(&input.path))?;
        let size = f.metadata().map_err(io(&input.path))?.len();
        let digest = copy_digesting(&mut f, None, size).map_err(io(&input.path))?;
        components.push(Component {
            kind: input.kind,
            file,
            size,
            sm3: jianmen_gm::hex(&digest),
        });
    }
    let manifest = Manifest {
        format: FORMAT,
        product: "jianmen".into(),
        version: version.into(),
        arch: arch.into(),
        min_from_version: min_from_version.into(),
        components,
    };
    // The vendor's own check, against the oldest version the package claims to upgrade (any
    // running version below `version` would do).
    check_shape(&manifest, arch)?;
    check_version(&manifest, min_from_version)?;
    let manifest_bytes = serde_json::to_vec_pretty(&manifest)
        .map_err(|e| UpgradeError::BadManifest(e.to_string()))?;
    let sig = serde_json::to_vec_pretty(&SignatureFile {
        algorithm: signer.algorithm().into(),
        public_key: jianmen_gm::hex(&signer.public_key()),
        signature: jianmen_gm::hex(&signer.sign(&manifest_bytes)),
    })
    .map_err(|e| UpgradeError::BadManifest(e.to_string()))?;

    let tmp = out.with_extension("jup.part");
    let file = std::fs::File::create(&tmp).map_err(io(&tmp))?;
    let mut builder = tar::Builder::new(std::io::BufWriter::new(file));
    let add = |b: &mut tar::Builder<_>, name: &str, bytes: &[u8]| {
        let mut header = tar::Header::new_gnu();
        header.set_size(bytes.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        b.append_data(&mut header, name, bytes)
    };
    add(&mut builder, "manifest.json", &manifest_bytes).map_err(io(&tmp))?;
    add(&mut builder, "manifest.sig", &sig).map_err(io(&tmp))?;
    for (input, component) in inputs.iter().zip(&manifest.components) {
        let mut f = std::fs::File::open(&input.path).map_err(io(&input.path))?;
        let mut header = tar::Header::new_gnu();
        header.set_size(component.size);
        header.set_mode(0o644);
        header.set_cksum();
        builder
            .append_data(&mut header, &component.file, &mut f)
            .map_err(io(&tmp))?;
    }
    let file = builder
        .into_inner()
        .map_err(io(&tmp))?
        .into_inner()
        .map_err(|e| UpgradeError::Io {
            path: tmp.display().to_string(),
            error: e.into_error(),
        })?;
    file.sync_all().map_err(io(&tmp))?;
    std::fs::rename(&tmp, out).map_err(io(out))?;
    Ok(manifest)
}

#[cfg(test)]
mod tests;
