//! Releases applied from upgrade packages, kept beside the version the system package manager
//! installed (the "factory" binary, `/usr/bin/jianmen`), A/B style:
//!
//! ```text
//! /var/lib/jianmen/releases/
//!   0.2.0/          a verified release: manifest.json, manifest.sig and the component files
//!   current -> 0.2.0
//!   previous -> 0.1.5   what a rollback returns to (absent: the factory binary)
//!   trial           the version on trial and how often it was started
//!   last-rollback   why the newest rollback happened
//! ```
//!
//! Applying switches `current` by renaming a fresh symbolic link over it, so a crash leaves one
//! whole release or the other. A new release runs on trial: [`choose`] counts its starts, the
//! release confirms itself once [`super::health`] passes, and a release started once without
//! confirming is rolled back at the next start. Each start verifies the release again (SM2 or
//! Ed25519 signature against the keys trusted now, SM3 of each file), so only signed code
//! runs from this writable directory.
//!
//! The directory is the service account's (the console installs uploads as that account), and
//! root runs `jianmen` commands too: so what runs is never the file on disk but a sealed copy in
//! memory whose SM3 was checked on the very bytes copied ([`Release::sealed_binary`]), and root
//! creates files here and in clamd's directory only with `O_CREAT|O_EXCL` (never through a link
//! someone left in the way) and reads them with `O_NOFOLLOW`.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{ComponentKind, Installed, Manifest, TrustedKey, UpgradeError};
use crate::config::Config;

/// Where releases live unless `JIANMEN_RELEASES` says otherwise.
pub const DEFAULT_ROOT: &str = "/var/lib/jianmen/releases";
/// The keys trusted to sign upgrades unless `JIANMEN_UPGRADE_TRUST` says otherwise.
pub const DEFAULT_TRUST: &str = "/etc/jianmen/upgrade-trust";
/// Set by [`choose`]'s caller in the environment of a release it starts: its version.
pub const ENV_VERSION: &str = "JIANMEN_RELEASE";
/// Set beside [`ENV_VERSION`]: the release's directory.
pub const ENV_DIR: &str = "JIANMEN_RELEASE_DIR";

/// The directory of releases.
#[derive(Debug, Clone)]
pub struct Releases {
    root: PathBuf,
}

/// A version on trial: switched to, not yet confirmed healthy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Trial {
    /// The release on trial.
    pub version: String,
    /// Starts so far (the first start sets 1; a second start without confirmation rolls back).
    pub starts: u32,
    /// What its health check found wrong, when it failed.
    #[serde(default)]
    pub problem: Option<String>,
}

/// A release that verified.
#[derive(Debug, Clone)]
pub struct Release {
    /// Its directory.
    pub dir: PathBuf,
    /// Its signed manifest.
    pub manifest: Manifest,
}

impl Release {
    /// The file of the component of `kind` (the first, for ClamAV files).
    pub fn component(&self, kind: ComponentKind) -> Option<PathBuf> {
        self.manifest
            .components
            .iter()
            .find(|c| c.kind == kind)
            .map(|c| self.dir.join(&c.file))
    }

    /// The release this process runs as, when a launcher started it from a release directory
    /// (its manifest was verified just before).
    pub fn running() -> Option<&'static Release> {
        static RUNNING: std::sync::OnceLock<Option<Release>> = std::sync::OnceLock::new();
        RUNNING
            .get_or_init(|| {
                let dir = PathBuf::from(std::env::var_os(ENV_DIR)?);
                let bytes = std::fs::read(dir.join("manifest.json")).ok()?;
                let manifest = serde_json::from_slice(&bytes).ok()?;
                Some(Release { dir, manifest })
            })
            .as_ref()
    }
}

/// What the scanner needs to know of the gateway `config` describes besides `[scan]`, the rule
/// file and model of the running release included.
pub fn scan_environment(config: &Config) -> jianmen_scan::pipeline::Environment {
    jianmen_scan::pipeline::Environment {
        hostname: config.server.hostname.clone(),
        data_dir: Some(config.server.data_dir.clone()),
        protected_domains: config.domains.protected.clone(),
        dns_timeout: std::time::Duration::from_millis(config.dns.timeout_ms),
        shipped: shipped(),
        skipped: None,
        dlp: config.dlp.clone(),
    }
}

/// The rule file and content model the running release ships, which take the place of the
/// built-in ones; none when this process was not started from a release.
pub fn shipped() -> jianmen_scan::pipeline::Shipped {
    let running = Release::running();
    jianmen_scan::pipeline::Shipped {
        rules: running.and_then(|r| r.component(ComponentKind::Rules)),
        model: running.and_then(|r| r.component(ComponentKind::Model)),
    }
}

/// What to run.
#[derive(Debug)]
pub enum Launch {
    /// The binary the package manager installed (this process).
    Factory,
    /// A verified release.
    Release(Release),
}

/// The keys trusted to sign upgrades, from `JIANMEN_UPGRADE_TRUST` or [`DEFAULT_TRUST`].
pub fn trust_file() -> PathBuf {
    std::env::var_os("JIANMEN_UPGRADE_TRUST")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_TRUST))
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> UpgradeError + '_ {
    move |error| UpgradeError::Io {
        path: path.display().to_string(),
        error,
    }
}

fn version(v: &str) -> Option<semver::Version> {
    semver::Version::parse(v).ok()
}

impl Releases {
    /// Releases under `root`.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// Releases under `JIANMEN_RELEASES`, or [`DEFAULT_ROOT`].
    pub fn from_env() -> Self {
        Self::new(
            std::env::var_os("JIANMEN_RELEASES")
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from(DEFAULT_ROOT)),
        )
    }

    /// The directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn link(&self, name: &str) -> Option<String> {
        let target = std::fs::read_link(self.root.join(name)).ok()?;
        let name = target.file_name()?.to_str()?.to_owned();
        version(&name).map(|_| name)
    }

    /// The version `current` names, if any.
    pub fn current(&self) -> Option<String> {
        self.link("current")
    }

    /// The version a rollback returns to (`None`: the factory binary).
    pub fn previous(&self) -> Option<String> {
        self.link("previous")
    }

    /// The version on trial, if any.
    pub fn trial(&self) -> Option<Trial> {
        let bytes = std::fs::read(self.root.join("trial")).ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    /// Why the newest rollback happened.
    pub fn last_rollback(&self) -> Option<String> {
        std::fs::read_to_string(self.root.join("last-rollback")).ok()
    }

    /// The version that runs now: `current` when it is newer than the factory's, else the
    /// factory's.
    pub fn effective_version(&self, factory: &str) -> String {
        match self.current() {
            Some(c) if version(&c) > version(factory) => c,
            _ => factory.to_owned(),
        }
    }

    /// Verifies `package` for the version that runs now and unpacks it as a release; the
    /// switch is [`Releases::start_trial`]. A release of the same version left by an earlier
    /// attempt is replaced.
    pub fn install(
        &self,
        package: &Path,
        installed: &Installed<'_>,
    ) -> Result<Manifest, UpgradeError> {
        std::fs::create_dir_all(&self.root).map_err(io(&self.root))?;
        // A folder of this install's own (created 0700 with a fresh name): two installs at once
        // — a console upload beside `jianmen upgrade apply` — never share one, and a refused
        // package's folder is removed when `staging` is dropped.
        let staging = tempfile::Builder::new()
            .prefix(".incoming-")
            .tempdir_in(&self.root)
            .map_err(io(&self.root))?;
        let (manifest, _) = super::verify(package, installed, Some(staging.path()))?;
        let staging = staging.keep();
        sync_dir(&staging)?;
        let dir = self.root.join(&manifest.version);
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::rename(&staging, &dir).map_err(io(&dir))?;
        self.own(&dir)?;
        sync_dir(&self.root)?;
        Ok(manifest)
    }

    /// Makes `version` current on trial; the old current becomes `previous`.
    pub fn start_trial(&self, version: &str) -> Result<(), UpgradeError> {
        let old = self.current();
        self.write_trial(&Trial {
            version: version.to_owned(),
            starts: 0,
            problem: None,
        })?;
        match old {
            Some(old) if old != version => self.set_link("previous", Some(&old))?,
            Some(_) => {}
            None => self.set_link("previous", None)?,
        }
        self.set_link("current", Some(version))?;
        sync_dir(&self.root)
    }

    /// Keeps `version` for good: ends its trial and removes releases nothing points to.
    /// False when `version` is not the one on trial.
    pub fn confirm(&self, version: &str) -> Result<bool, UpgradeError> {
        if self.trial().map(|t| t.version) != Some(version.to_owned()) {
            return Ok(false);
        }
        let path = self.root.join("trial");
        std::fs::remove_file(&path).map_err(io(&path))?;
        sync_dir(&self.root)?;
        self.prune();
        Ok(true)
    }

    /// Records why `version`, on trial, failed its health check (the next start rolls it
    /// back and says why).
    pub fn fail(&self, version: &str, problem: &str) -> Result<(), UpgradeError> {
        match self.trial() {
            Some(mut t) if t.version == version => {
                t.problem = Some(problem.to_owned());
                self.write_trial(&t)
            }
            _ => Ok(()),
        }
    }

    /// Returns to `previous` (or the factory binary), ends any trial, records `reason`, and
    /// removes the release rolled back from. The version now current.
    pub fn roll_back(&self, reason: &str) -> Result<Option<String>, UpgradeError> {
        let from = self.current();
        let to = self.previous().filter(|p| Some(p) != from.as_ref());
        let note = format!(
            "{} rolled back from {} to {}: {reason}\n",
            chrono::Utc::now().format("%Y-%m-%d %H:%M:%S UTC"),
            from.as_deref().unwrap_or("(none)"),
            to.as_deref().unwrap_or("the installed package")
        );
        self.write_file("last-rollback", note.as_bytes())?;
        self.set_link("current", to.as_deref())?;
        self.set_link("previous", None)?;
        let trial = self.root.join("trial");
        if trial.exists() {
            std::fs::remove_file(&trial).map_err(io(&trial))?;
        }
        sync_dir(&self.root)?;
        self.prune();
        Ok(to)
    }

    /// The release `version`, verified now against `trusted`.
    pub fn verified(&self, version: &str, trusted: &[TrustedKey]) -> Result<Release, UpgradeError> {
        let dir = self.root.join(version);
        let manifest = super::verify_dir(&dir, std::env::consts::ARCH, trusted)?;
        if manifest.version != version {
            return Err(UpgradeError::BadManifest(format!(
                "directory {version} holds version {}",
                manifest.version
            )));
        }
        Ok(Release { dir, manifest })
    }

    /// Counts a start of the release on trial (for `serve`).
    fn count_start(&self, mut trial: Trial) -> Result<(), UpgradeError> {
        trial.starts += 1;
        self.write_trial(&trial)
    }

    fn write_trial(&self, trial: &Trial) -> Result<(), UpgradeError> {
        let bytes =
            serde_json::to_vec(trial).map_err(|e| UpgradeError::BadManifest(e.to_string()))?;
        self.write_file("trial", &bytes)
    }

    /// Replaces `name` with `bytes` atomically.
    fn write_file(&self, name: &str, bytes: &[u8]) -> Result<(), UpgradeError> {
        use std::io::Write;
        let tmp = self.root.join(format!(".{name}.tmp"));
        let path = self.root.join(name);
        let mut f = fresh_file(&tmp)?;
        f.write_all(bytes)
            .and_then(|()| f.sync_all())
            .map_err(io(&tmp))?;
        std::fs::rename(&tmp, &path).map_err(io(&path))?;
        self.own(&path)
    }

    /// Points the link `name` at `version` (or removes it) by renaming a new link over it.
    fn set_link(&self, name: &str, version: Option<&str>) -> Result<(), UpgradeError> {
        let path = self.root.join(name);
        let Some(version) = version else {
            return match std::fs::remove_file(&path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io(&path)(e)),
                _ => Ok(()),
            };
        };
        let tmp = self.root.join(format!(".{name}.tmp"));
        let _ = std::fs::remove_file(&tmp);
        std::os::unix::fs::symlink(version, &tmp).map_err(io(&tmp))?;
        self.own(&tmp)?;
        std::fs::rename(&tmp, &path).map_err(io(&path))
    }

    /// Removes release directories that neither `current` nor `previous` names, and leftovers
    /// of interrupted installs.
    fn prune(&self) {
        let keep = [self.current(), self.previous()];
        let Ok(entries) = std::fs::read_dir(&self.root) else {
            return;
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let stale_release = version(&name).is_some() && !keep.contains(&Some(name.clone()));
            let leftover = name.starts_with(".incoming-");
            if (stale_release || leftover) && entry.file_type().is_ok_and(|t| t.is_dir()) {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
    }

    /// When root writes here (the command line), hands what it made to the owner of the
    /// directory above, the service account, which must be able to confirm or roll back.
    fn own(&self, path: &Path) -> Result<(), UpgradeError> {
        let parent = self.root.parent().unwrap_or(Path::new("/"));
        give_to_owner_of(parent, &self.root)?;
        give_to_owner_of(parent, path)?;
        if path.is_dir() && !path.is_symlink() {
            for entry in std::fs::read_dir(path).map_err(io(path))?.flatten() {
                give_to_owner_of(parent, &entry.path())?;
            }
        }
        Ok(())
    }
}

/// Creates `path` anew (mode 0644): whatever was left there, a symbolic link above all, is
/// removed first, and `O_CREAT|O_EXCL` makes the open fail rather than follow one planted in
/// between.
fn fresh_file(path: &Path) -> Result<std::fs::File, UpgradeError> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(io(path)(e)),
        _ => {}
    }
    super::create_new(path, 0o644)
}

/// When running as root, makes `path` (not following links) belong to the owner of `reference`.
fn give_to_owner_of(reference: &Path, path: &Path) -> Result<(), UpgradeError> {
    use std::os::unix::fs::MetadataExt;
    if !nix::unistd::Uid::effective().is_root() {
        return Ok(());
    }
    let meta = std::fs::metadata(reference).map_err(io(reference))?;
    nix::unistd::fchownat(
        None,
        path,
        Some(nix::unistd::Uid::from_raw(meta.uid())),
        Some(nix::unistd::Gid::from_raw(meta.gid())),
        nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
    )
    .map_err(|e| io(path)(std::io::Error::from(e)))
}

impl Release {
    /// Copies component `c` into `to`, checking its SM3 on the bytes copied: what was verified
    /// at start-up may have been changed on disk since.
    fn copy_verified(
        &self,
        c: &super::Component,
        to: &mut std::fs::File,
    ) -> Result<(), UpgradeError> {
        let path = self.dir.join(&c.file);
        let mut source = super::open_nofollow(&path)?;
        let digest = super::copy_digesting(&mut source, Some(to), c.size).map_err(io(&path))?;
        if jianmen_gm::hex(&digest) != c.sm3 {
            return Err(UpgradeError::Component {
                file: c.file.clone(),
                problem: "SM3 digest does not match the manifest".into(),
            });
        }
        Ok(())
    }

    /// The release's binary as a sealed in-memory file holding exactly the bytes whose SM3
    /// matched the manifest, opened read-only for `fexecve`; `None` when the release ships no
    /// binary. Between verifying a file on disk and executing it, its owner could change it.
    pub fn sealed_binary(&self) -> Result<Option<std::os::fd::OwnedFd>, UpgradeError> {
        use nix::fcntl::{FcntlArg, SealFlag, fcntl};
        use nix::sys::memfd::{MemFdCreateFlag, memfd_create};
        use std::os::fd::AsRawFd;
        let Some(c) = self
            .manifest
            .components
            .iter()
            .find(|c| c.kind == ComponentKind::Binary)
        else {
            return Ok(None);
        };
        let failed = |step: &str, e: nix::Error| UpgradeError::Io {
            path: format!("in-memory copy of {} ({step})", c.file),
            error: std::io::Error::from(e),
        };
        let image = memfd_create(
            c"jianmen-release",
            MemFdCreateFlag::MFD_CLOEXEC | MemFdCreateFlag::MFD_ALLOW_SEALING,
        )
        .map_err(|e| failed("memfd_create", e))?;
        let mut image = std::fs::File::from(image);
        self.copy_verified(c, &mut image)?;
        let seals = SealFlag::F_SEAL_SEAL
            | SealFlag::F_SEAL_SHRINK
            | SealFlag::F_SEAL_GROW
            | SealFlag::F_SEAL_WRITE;
        fcntl(image.as_raw_fd(), FcntlArg::F_ADD_SEALS(seals)).map_err(|e| failed("seal", e))?;
        // exec refuses a file open for writing anywhere (ETXTBSY): reopen it read-only (and
        // close-on-exec) and close the writable descriptor.
        let reopen = format!("/proc/self/fd/{}", image.as_raw_fd());
        let read_only = std::fs::File::open(&reopen).map_err(io(Path::new(&reopen)))?;
        drop(image);
        Ok(Some(read_only.into()))
    }

    /// Copies the release's ClamAV signature files into clamd's database directory `dir`
    /// (each replaced atomically, owned like `dir`, its SM3 checked on the bytes copied);
    /// their names. clamd still has to be told to reload.
    pub fn install_clamav(&self, dir: &Path) -> Result<Vec<String>, UpgradeError> {
        let mut names = Vec::new();
        for c in &self.manifest.components {
            if c.kind != ComponentKind::Clamav {
                continue;
            }
            let tmp = dir.join(format!(".{}.jianmen-tmp", c.file));
            let target = dir.join(&c.file);
            let mut copy = fresh_file(&tmp)?;
            if let Err(e) = self.copy_verified(c, &mut copy) {
                let _ = std::fs::remove_file(&tmp);
                return Err(e);
            }
            give_to_owner_of(dir, &tmp)?;
            std::fs::rename(&tmp, &target).map_err(io(&target))?;
            names.push(c.file.clone());
        }
        if !names.is_empty() {
            sync_dir(dir)?;
        }
        Ok(names)
    }
}

/// Decides what a starting `jianmen` runs: the newest of the factory binary and a release
/// that verifies. With `serving` (the daemon starting), counts the trial's starts and rolls
/// back a release that started before without confirming, or that no longer verifies; the
/// returned notes say what happened, for the log.
pub fn choose(
    releases: &Releases,
    factory: &str,
    trusted: &Result<Vec<TrustedKey>, UpgradeError>,
    serving: bool,
) -> (Launch, Vec<String>) {
    let mut notes = Vec::new();
    // Each rollback moves `current` one step back or to none, so this ends; the bound is a
    // guard against a directory edited by hand into a loop.
    for _ in 0..4 {
        let Some(current) = releases.current() else {
            return (Launch::Factory, notes);
        };
        if version(&current) <= version(factory) {
            notes.push(format!(
                "release {current} is not newer than the installed package {factory}: running the package"
            ));
            return (Launch::Factory, notes);
        }
        let trial = releases.trial().filter(|t| t.version == current);
        if !serving && trial.is_some() {
            // A release on trial only runs as the daemon, until it passes its health check.
            notes.push(format!(
                "release {current} is on trial: running the installed package"
            ));
            return (Launch::Factory, notes);
        }
        let reason = match (trusted, trial) {
            (_, Some(t)) if t.starts >= 1 => match t.problem {
                Some(problem) => format!("{current} failed its health check: {problem}"),
                None => format!(
                    "{current} started {} time(s) without passing its health check",
                    t.starts
                ),
            },
            (Err(e), _) => format!("cannot read the trusted keys: {e}"),
            (Ok(keys), trial) => match releases.verified(&current, keys) {
                Ok(release) => match trial.map_or(Ok(()), |t| releases.count_start(t)) {
                    Ok(()) => return (Launch::Release(release), notes),
                    Err(e) => format!("cannot record the trial start: {e}"),
                },
                Err(e) => format!("release {current} does not verify: {e}"),
            },
        };
        if !serving {
            notes.push(format!("{reason}: running the installed package"));
            return (Launch::Factory, notes);
        }
        match releases.roll_back(&reason) {
            Ok(to) => notes.push(format!(
                "{reason}: rolled back to {}",
                to.as_deref().unwrap_or("the installed package")
            )),
            Err(e) => {
                notes.push(format!(
                    "{reason}; the rollback failed ({e}): running the installed package"
                ));
                return (Launch::Factory, notes);
            }
        }
    }
    (Launch::Factory, notes)
}

/// Flushes a directory's entries (new names, renames) to disk.
fn sync_dir(dir: &Path) -> Result<(), UpgradeError> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io(dir))
}

#[cfg(test)]
mod tests;
