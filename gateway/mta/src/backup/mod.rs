//! Backup and restore of what makes a gateway this gateway: its configuration file and the files
//! beside it, its keys (spool sealing, DKIM, digest links, audit export), the certificates
//! installed from the console and the system settings changed there, and the settings kept in its
//! databases (policy versions,
//! personal lists, drill templates, console accounts). Mail, the queue and the logs are not in
//! it: a copy of them would be stale the moment it was taken, and mail is kept safe by the
//! queue's own rules, not by backups.
//!
//! A backup is one file sealed with a passphrase ([`sealed`]), so it can be kept off the
//! machine. Restoring is root's work at the appliance (`jianmen restore`) with the gateway
//! stopped ([`crate::lock`]): it writes the configuration directory, which root owns and the
//! console must not be able to change, and then, as the service account, the keys and the
//! settings, which the gateway takes on its next start (see [`crate::db::Database::settings`]).
//! Files that are replaced are kept beside their name as `*.before-restore`; a spool key is
//! never replaced while mail sealed with the present one waits in the spool.

pub mod sealed;
#[cfg(test)]
mod tests;

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::config::Config;

/// The archive format inside the sealed file.
pub const FORMAT: u32 = 1;
/// The most plain bytes a backup may hold, and so the most memory a restore takes for it.
pub const MAX_BYTES: usize = 256 * 1024 * 1024;
/// The most bytes one file in a backup may have.
pub const MAX_FILE: u64 = 64 * 1024 * 1024;
/// The most files a backup may hold.
pub const MAX_FILES: usize = 5_000;
/// How deep the folders of the data directory that are backed up are walked.
const MAX_DEPTH: usize = 6;
/// The folders of the data directory a backup takes whole.
pub const DATA_FOLDERS: [&str; 3] = ["keys", "tls", crate::settings::FOLDER];
/// The suffix of a file a restore replaced, kept beside it.
pub const BEFORE_RESTORE: &str = "before-restore";
const SPOOL_KEY: &str = "data/keys/spool-sm4.key";

/// A database of the data directory and its tables that are settings.
#[derive(Debug, Clone, Copy)]
pub struct SettingsOf<'a> {
    /// The database's file name in the data directory.
    pub file: &'a str,
    /// Its settings tables.
    pub tables: &'a [&'a str],
}

/// The queue database's settings.
pub const QUEUE_SETTINGS: SettingsOf<'static> = SettingsOf {
    file: crate::config::DATABASE_FILE,
    tables: crate::queue::store::SETTINGS,
};

/// Why a backup could not be made or restored.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    /// Sealing or opening failed.
    #[error(transparent)]
    Sealed(#[from] sealed::SealError),
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// What failed.
        source: std::io::Error,
    },
    /// The configuration was loaded from no file.
    #[error("the configuration's file is not known")]
    NoConfigFile,
    /// Something is over a bound.
    #[error("{0}")]
    TooMuch(String),
    /// The archive inside is not one this version makes.
    #[error("the backup's contents are damaged or not understood: {0}")]
    Damaged(String),
    /// The backup's configuration does not load in this version.
    #[error("the backup's configuration does not load here: {0}")]
    Config(String),
    /// The settings could not be copied.
    #[error("settings: {0}")]
    Database(#[from] sqlx::Error),
    /// Restoring would cost mail.
    #[error("{0}")]
    Refused(String),
}

fn io_error(path: &Path) -> impl Fn(std::io::Error) -> BackupError + '_ {
    move |source| BackupError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// What a backup says of itself (its `manifest.json`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// [`FORMAT`].
    pub format: u32,
    /// When it was made (Unix seconds).
    pub made_at: i64,
    /// The gateway's host name.
    pub hostname: String,
    /// The version that made it.
    pub version: String,
    /// The configuration file's name, in the configuration directory.
    pub config_file: String,
    /// Files the configuration names outside its directory: not in the backup (a restore does
    /// not write outside the configuration directory).
    pub outside: Vec<String>,
    /// Every file in it but this one.
    pub files: Vec<String>,
}

/// One file of a backup.
#[derive(Debug, Clone)]
struct Item {
    /// Its name in the archive (`etc/…`, `data/keys/…`, `data/tls/…`, `settings/…`).
    name: String,
    mode: u32,
    bytes: Vec<u8>,
}

/// A backup made: the sealed file and what it holds.
#[derive(Debug)]
pub struct Made {
    /// The sealed file's bytes.
    pub sealed: Vec<u8>,
    /// What it holds.
    pub manifest: Manifest,
}

/// Everything a backup is made of, gathered and bounded.
struct Gathered {
    items: Vec<Item>,
    bytes: u64,
}

impl Gathered {
    fn add(&mut self, name: String, mode: u32, bytes: Vec<u8>) -> Result<(), BackupError> {
        self.bytes += bytes.len() as u64;
        if self.items.len() >= MAX_FILES || self.bytes > MAX_BYTES as u64 {
            return Err(BackupError::TooMuch(format!(
                "a backup holds at most {MAX_FILES} files and {} MiB",
                MAX_BYTES >> 20
            )));
        }
        self.items.push(Item { name, mode, bytes });
        Ok(())
    }
}

fn read_bounded(path: &Path) -> Result<(Vec<u8>, u32), BackupError> {
    let file = std::fs::File::open(path).map_err(io_error(path))?;
    let meta = file.metadata().map_err(io_error(path))?;
    if meta.len() > MAX_FILE {
        return Err(BackupError::TooMuch(format!(
            "{} has {} bytes, more than a backed-up file may ({} MiB): keep only configuration \
             in the configuration directory",
            path.display(),
            meta.len(),
            MAX_FILE >> 20
        )));
    }
    let mut bytes = Vec::new();
    file.take(MAX_FILE + 1)
        .read_to_end(&mut bytes)
        .map_err(io_error(path))?;
    Ok((bytes, meta.mode() & 0o777))
}

/// The directory `file` is in (`.` for a bare name).
pub fn directory_of(file: &Path) -> PathBuf {
    match file.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
        _ => PathBuf::from("."),
    }
}

/// Every string of a TOML document, however deep.
fn strings(value: &toml::Value, out: &mut Vec<String>) {
    match value {
        toml::Value::String(s) => out.push(s.clone()),
        toml::Value::Array(a) => a.iter().for_each(|v| strings(v, out)),
        toml::Value::Table(t) => t.values().for_each(|v| strings(v, out)),
        _ => {}
    }
}

/// The configuration's files: the regular files directly in its directory (links followed),
/// and those in its folders that the configuration names. Files it names elsewhere are
/// returned apart, by path. Names the data directory and the spool are skipped.
fn configuration_files(
    config: &Config,
    config_file: &Path,
    out: &mut Gathered,
) -> Result<Vec<String>, BackupError> {
    let dir = directory_of(config_file);
    let real_dir = dir.canonicalize().map_err(io_error(&dir))?;
    let skipped: Vec<PathBuf> = [config.server.data_dir.clone(), config.spool_dir()]
        .iter()
        .filter_map(|p| p.canonicalize().ok())
        .collect();
    // The file itself always, even kept in the data directory.
    let config_name = config_file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let (bytes, mode) = read_bounded(config_file)?;
    out.add(format!("etc/{config_name}"), mode, bytes)?;
    let mut taken = BTreeSet::from([config_name]);
    let entries = std::fs::read_dir(&dir).map_err(io_error(&dir))?;
    for entry in entries {
        let entry = entry.map_err(io_error(&dir))?;
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.contains(BEFORE_RESTORE) || taken.contains(&name) || !path.is_file() {
            continue;
        }
        if skipped
            .iter()
            .any(|s| path.canonicalize().is_ok_and(|p| p.starts_with(s)))
        {
            continue;
        }
        let (bytes, mode) = read_bounded(&path)?;
        taken.insert(name.clone());
        out.add(format!("etc/{name}"), mode, bytes)?;
    }
    let text = std::fs::read_to_string(config_file).map_err(io_error(config_file))?;
    let document: toml::Value = toml::from_str(&text)
        .map_err(|e| BackupError::Config(format!("{}: {e}", config_file.display())))?;
    let mut named = Vec::new();
    strings(&document, &mut named);
    let mut outside = BTreeSet::new();
    for value in named {
        if !value.contains('/') || value.len() > 4096 {
            continue;
        }
        let path = dir.join(&value);
        let Ok(real) = path.canonicalize() else {
            continue;
        };
        if !real.is_file() || skipped.iter().any(|s| real.starts_with(s)) {
            continue;
        }
        match real.strip_prefix(&real_dir) {
            Ok(inside) => {
                let inside = inside.to_string_lossy().into_owned();
                if taken.insert(inside.clone()) {
                    let (bytes, mode) = read_bounded(&real)?;
                    out.add(format!("etc/{inside}"), mode, bytes)?;
                }
            }
            Err(_) => {
                outside.insert(real.display().to_string());
            }
        }
    }
    Ok(outside.into_iter().collect())
}

/// The regular files under `dir` (links are not followed), named `prefix/<relative path>`.
fn folder_files(
    dir: &Path,
    prefix: &str,
    depth: usize,
    out: &mut Gathered,
) -> Result<(), BackupError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io_error(dir)(e)),
    };
    for entry in entries {
        let entry = entry.map_err(io_error(dir))?;
        let kind = entry.file_type().map_err(io_error(dir))?;
        let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
            continue;
        };
        if name.contains(BEFORE_RESTORE) {
            continue;
        }
        let path = entry.path();
        if kind.is_dir() && depth < MAX_DEPTH {
            folder_files(&path, &format!("{prefix}/{name}"), depth + 1, out)?;
        } else if kind.is_file() {
            let (bytes, mode) = read_bounded(&path)?;
            out.add(format!("{prefix}/{name}"), mode, bytes)?;
        }
    }
    Ok(())
}

/// Makes a sealed backup of the gateway `config` describes, with the settings tables of
/// `databases`. The databases are read while the gateway runs: each one's tables are copied in
/// one transaction.
pub async fn make(
    config: &Config,
    databases: &[SettingsOf<'_>],
    passphrase: &str,
) -> Result<Made, BackupError> {
    if passphrase.chars().count() < sealed::MIN_PASSPHRASE {
        return Err(sealed::SealError::WeakPassphrase.into());
    }
    let config_file = config.file.as_deref().ok_or(BackupError::NoConfigFile)?;
    let mut gathered = Gathered {
        items: Vec::new(),
        bytes: 0,
    };
    let outside = configuration_files(config, config_file, &mut gathered)?;
    for folder in DATA_FOLDERS {
        folder_files(
            &config.server.data_dir.join(folder),
            &format!("data/{folder}"),
            1,
            &mut gathered,
        )?;
    }
    let scratch = tempfile::tempdir().map_err(io_error(Path::new("temporary directory")))?;
    for db in databases {
        let copy = scratch.path().join(db.file);
        crate::db::snapshot_settings(&config.server.data_dir.join(db.file), db.tables, &copy)
            .await?;
        let (bytes, _) = read_bounded(&copy)?;
        gathered.add(format!("settings/{}", db.file), 0o600, bytes)?;
    }
    let manifest = Manifest {
        format: FORMAT,
        made_at: chrono::Utc::now().timestamp(),
        hostname: config.server.hostname.clone(),
        version: env!("CARGO_PKG_VERSION").into(),
        config_file: config_file
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        outside,
        files: gathered.items.iter().map(|i| i.name.clone()).collect(),
    };
    let archive = archive(&manifest, &gathered.items)?;
    let passphrase = passphrase.to_owned();
    let sealed = tokio::task::spawn_blocking(move || sealed::seal(&passphrase, &archive))
        .await
        .map_err(|e| sealed::SealError::Internal(e.to_string()))??;
    Ok(Made { sealed, manifest })
}

fn archive(manifest: &Manifest, items: &[Item]) -> Result<Vec<u8>, BackupError> {
    let io = io_error(Path::new("backup archive"));
    let mut builder = tar::Builder::new(Vec::new());
    let mut add = |name: &str, mode: u32, bytes: &[u8]| {
        let mut header = tar::Header::new_gnu();
        header.set_size(bytes.len() as u64);
        header.set_mode(mode);
        header.set_cksum();
        builder.append_data(&mut header, name, bytes)
    };
    let manifest_bytes =
        serde_json::to_vec_pretty(manifest).map_err(|e| BackupError::Damaged(e.to_string()))?;
    add("manifest.json", 0o644, &manifest_bytes).map_err(&io)?;
    for item in items {
        add(&item.name, item.mode, &item.bytes).map_err(&io)?;
    }
    builder.into_inner().map_err(io)
}

/// A backup opened and checked: nothing has been written yet.
#[derive(Debug)]
pub struct Opened {
    /// What it says of itself.
    pub manifest: Manifest,
    /// Its configuration, as this version loads it.
    pub config: Config,
    items: Vec<Item>,
}

/// Whether `name` is a file name a backup may hold: under one of its four parts, with plain
/// components only (no `..`, no root, nothing empty).
fn acceptable(name: &str) -> bool {
    // Split by hand: `Path::components` would quietly drop a `.` in the middle.
    let plain = name
        .split('/')
        .all(|part| !part.is_empty() && part != "." && part != "..");
    let mut parts = name.split('/');
    let allowed = match (parts.next(), parts.next(), parts.next()) {
        (Some("etc"), Some(_), _) => true,
        (Some("data"), Some(crate::settings::FOLDER), Some(file)) => {
            file == crate::settings::FILE && parts.next().is_none()
        }
        (Some("data"), Some(folder), Some(_)) => DATA_FOLDERS.contains(&folder),
        (Some("settings"), Some(file), None) => {
            file.ends_with(".db")
                && file[..file.len() - 3]
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b == b'_')
        }
        _ => false,
    };
    plain && allowed && name.split('/').count() <= MAX_DEPTH + 2
}

/// Opens a sealed backup with its passphrase and checks everything in it: names, sizes, the
/// manifest, and that its configuration loads in this version.
pub fn open(sealed_bytes: &[u8], passphrase: &str) -> Result<Opened, BackupError> {
    let plain = sealed::open(passphrase, sealed_bytes, MAX_BYTES)?;
    let damaged = |what: String| BackupError::Damaged(what);
    let mut archive = tar::Archive::new(plain.as_slice());
    let mut manifest: Option<Manifest> = None;
    let mut items = Vec::new();
    let mut names = BTreeSet::new();
    for entry in archive.entries().map_err(|e| damaged(e.to_string()))? {
        let entry = entry.map_err(|e| damaged(e.to_string()))?;
        let name = entry
            .path()
            .map_err(|e| damaged(e.to_string()))?
            .to_str()
            .ok_or_else(|| damaged("a name that is not UTF-8".into()))?
            .to_owned();
        if entry.header().entry_type() != tar::EntryType::Regular {
            return Err(damaged(format!("{name} is not a regular file")));
        }
        if entry.size() > MAX_FILE {
            return Err(damaged(format!("{name} is too large")));
        }
        let mode = entry.header().mode().map_err(|e| damaged(e.to_string()))? & 0o777;
        let mut bytes = Vec::new();
        entry
            .take(MAX_FILE)
            .read_to_end(&mut bytes)
            .map_err(|e| damaged(e.to_string()))?;
        if manifest.is_none() {
            if name != "manifest.json" {
                return Err(damaged("manifest.json does not come first".into()));
            }
            let m: Manifest = serde_json::from_slice(&bytes)
                .map_err(|e| damaged(format!("manifest.json: {e}")))?;
            if m.format != FORMAT {
                return Err(damaged(format!(
                    "format {} (this version reads {FORMAT})",
                    m.format
                )));
            }
            manifest = Some(m);
            continue;
        }
        if !acceptable(&name) {
            return Err(damaged(format!("{name} is not a name a backup holds")));
        }
        if !names.insert(name.clone()) || items.len() >= MAX_FILES {
            return Err(damaged(format!("{name} twice, or too many files")));
        }
        items.push(Item { name, mode, bytes });
    }
    let manifest = manifest.ok_or_else(|| damaged("empty".into()))?;
    let listed: BTreeSet<&String> = manifest.files.iter().collect();
    if listed.len() != names.len() || !names.iter().all(|n| listed.contains(n)) {
        return Err(damaged("the files differ from the manifest's list".into()));
    }
    if !acceptable(&format!("etc/{}", manifest.config_file)) || manifest.config_file.contains('/') {
        return Err(damaged("the configuration file's name".into()));
    }
    let config_name = format!("etc/{}", manifest.config_file);
    let config_item = items
        .iter()
        .find(|i| i.name == config_name)
        .ok_or_else(|| damaged(format!("{config_name} is missing")))?;
    let text = std::str::from_utf8(&config_item.bytes)
        .map_err(|_| BackupError::Config("not UTF-8".into()))?;
    let config = Config::parse(text).map_err(|e| BackupError::Config(e.to_string()))?;
    Ok(Opened {
        manifest,
        config,
        items,
    })
}

/// Whether a directory holds a regular file anywhere below it (bounded: a spool past the depth
/// or count looked at counts as holding mail).
fn holds_files(dir: &Path, depth: usize, budget: &mut usize) -> bool {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return false;
    };
    for entry in entries.flatten() {
        *budget = budget.saturating_sub(1);
        if *budget == 0 || depth > MAX_DEPTH {
            return true;
        }
        match entry.file_type() {
            Ok(t) if t.is_file() => return true,
            Ok(t) if t.is_dir() && holds_files(&entry.path(), depth + 1, budget) => return true,
            _ => {}
        }
    }
    false
}

/// What a restore wrote.
#[derive(Debug, Default)]
pub struct Written {
    /// Files written (new or changed).
    pub changed: Vec<PathBuf>,
    /// Files already as in the backup.
    pub unchanged: usize,
    /// Files replaced, kept as `*.before-restore`.
    pub kept: Vec<PathBuf>,
}

impl Opened {
    fn items_under<'a>(
        &'a self,
        prefix: &'a str,
    ) -> impl Iterator<Item = (&'a str, &'a Item)> + 'a {
        self.items
            .iter()
            .filter_map(move |i| i.name.strip_prefix(prefix).map(|rest| (rest, i)))
    }

    /// Refuses a restore that would replace the spool key while mail sealed with the present
    /// key waits in `spool`: that mail could never be opened again.
    pub fn check_spool_key(&self, data_dir: &Path, spool: &Path) -> Result<(), BackupError> {
        let Some(key) = self.items.iter().find(|i| i.name == SPOOL_KEY) else {
            return Ok(());
        };
        let present = data_dir.join("keys").join("spool-sm4.key");
        // Read as root from the service account's directory: no link followed, a key's size at
        // most. A file that is not a plain key counts as differing.
        let mut bytes = Vec::new();
        let differs = match crate::privilege::open_unlinked(&data_dir.join("keys"), "spool-sm4.key")
        {
            Ok(file) => file.take(1024).read_to_end(&mut bytes).is_err() || bytes != key.bytes,
            Err(e) => e.kind() != std::io::ErrorKind::NotFound,
        };
        if differs && holds_files(spool, 0, &mut 10_000) {
            return Err(BackupError::Refused(format!(
                "the backup's spool key differs from {} and {} holds mail sealed with the \
                 present key: let the queue empty (or release what is held) first, or that \
                 mail could never be opened again",
                present.display(),
                spool.display()
            )));
        }
        Ok(())
    }

    /// The names of the configuration files in the backup that differ from those now in place
    /// beside `config_file` (or are missing there).
    pub fn configuration_changes(&self, config_file: &Path) -> Vec<String> {
        let dir = directory_of(config_file);
        self.items_under("etc/")
            .filter(|(rest, item)| {
                let target = if *rest == self.manifest.config_file {
                    config_file.to_owned()
                } else {
                    dir.join(rest)
                };
                std::fs::read(target).map_or(true, |present| present != item.bytes)
            })
            .map(|(rest, _)| rest.to_owned())
            .collect()
    }

    /// Writes the configuration file and the files beside it. Whoever sealed the backup chose
    /// them — the console's backups are sealed by the service account — so root puts them in
    /// place (`config_file` and beside it: each file with the directory's owner and group, its
    /// mode without write permission for others) only when told to (`in_place`), once the
    /// administrator has looked at them; otherwise they go to a folder of root's alone beside
    /// the configuration, `restored-<time>/`, for that look.
    pub fn restore_configuration(
        &self,
        config_file: &Path,
        in_place: bool,
    ) -> Result<Written, BackupError> {
        let dir = directory_of(config_file);
        let mut written = Written::default();
        if !in_place {
            let review = dir.join(format!("restored-{}", self.manifest.made_at));
            for (rest, item) in self.items_under("etc/") {
                let mode = item.mode & 0o700;
                write_file(
                    &review.join(rest),
                    &item.bytes,
                    mode,
                    0o700,
                    None,
                    &mut written,
                )?;
            }
            return Ok(written);
        }
        let meta = std::fs::metadata(&dir).map_err(io_error(&dir))?;
        let owner = nix::unistd::Uid::effective()
            .is_root()
            .then_some((meta.uid(), meta.gid()));
        let config_name = self.manifest.config_file.as_str();
        for (rest, item) in self.items_under("etc/") {
            let target = if rest == config_name {
                config_file.to_owned()
            } else {
                dir.join(rest)
            };
            let mode = item.mode & 0o755;
            write_file(&target, &item.bytes, mode, 0o750, owner, &mut written)?;
        }
        Ok(written)
    }

    /// Writes the keys and installed certificates into `data_dir` and leaves the settings for
    /// the gateway's next start (`data_dir/restore/`). Run as the service account.
    pub fn restore_data(&self, data_dir: &Path) -> Result<Written, BackupError> {
        let mut written = Written::default();
        for (rest, item) in self.items_under("data/") {
            write_file(
                &data_dir.join(rest),
                &item.bytes,
                0o600,
                0o700,
                None,
                &mut written,
            )?;
        }
        for (rest, item) in self.items_under("settings/") {
            let target = data_dir.join(crate::db::RESTORE_DIR).join(rest);
            // A copy waiting from an earlier restore is simply replaced: it was never in force.
            let _ = std::fs::remove_file(&target);
            write_file(&target, &item.bytes, 0o600, 0o700, None, &mut written)?;
        }
        Ok(written)
    }
}

/// Writes `bytes` at `path` whole or not at all (temporary file, fsync, rename, fsync of the
/// directory), making missing directories with `dir_mode`; a different file already there is
/// kept as `<name>.before-restore`, an identical one is left alone.
fn write_file(
    path: &Path,
    bytes: &[u8],
    mode: u32,
    dir_mode: u32,
    owner: Option<(u32, u32)>,
    written: &mut Written,
) -> Result<(), BackupError> {
    let dir = directory_of(path);
    if !dir.is_dir() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(dir_mode)
            .create(&dir)
            .map_err(io_error(&dir))?;
        if let Some((uid, gid)) = owner {
            std::os::unix::fs::chown(&dir, Some(uid), Some(gid)).map_err(io_error(&dir))?;
        }
    }
    match std::fs::read(path) {
        Ok(present) if present == bytes => {
            written.unchanged += 1;
            return Ok(());
        }
        Ok(_) => {
            // Kept under a name of its own (a second restore keeps the first one's too), by a
            // second link: the name itself is never without a file.
            let mut kept = path.as_os_str().to_owned();
            kept.push(format!(
                ".{BEFORE_RESTORE}-{}",
                chrono::Utc::now().format("%Y%m%d%H%M%S%f")
            ));
            let kept = PathBuf::from(kept);
            std::fs::hard_link(path, &kept).map_err(io_error(path))?;
            written.kept.push(kept);
        }
        Err(_) => {}
    }
    let mut file = tempfile::Builder::new()
        .prefix(".restore-")
        .permissions(std::fs::Permissions::from_mode(mode))
        .tempfile_in(&dir)
        .map_err(io_error(&dir))?;
    file.write_all(bytes).map_err(io_error(path))?;
    file.as_file().sync_all().map_err(io_error(path))?;
    if let Some((uid, gid)) = owner {
        std::os::unix::fs::fchown(file.as_file(), Some(uid), Some(gid)).map_err(io_error(path))?;
    }
    file.persist(path).map_err(|e| io_error(path)(e.error))?;
    std::fs::File::open(&dir)
        .and_then(|d| d.sync_all())
        .map_err(io_error(&dir))?;
    written.changed.push(path.to_owned());
    Ok(())
}
