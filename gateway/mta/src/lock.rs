//! The data directory's lock: held by the running gateway for its whole life, and by
//! `jianmen restore` while it replaces keys and settings, so that neither works under the other
//! (a spool key changed under a running gateway would seal mail no one can open afterwards), and
//! two gateways never share one data directory. The kernel lets go of it when its holder dies,
//! kill -9 included: nothing stale is ever left to clear by hand.

use std::fs::{File, OpenOptions, TryLockError};
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// The lock file's name in the data directory.
pub const FILE: &str = "gateway.lock";

/// Why the lock could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Another process holds it.
    #[error(
        "{0} is held: a gateway is running on this data directory (or a restore is under way); \
         stop it first (systemctl stop jianmen)"
    )]
    Held(PathBuf),
    /// The file could not be opened or made.
    #[error("{path}: {source}")]
    Io {
        /// The lock file.
        path: PathBuf,
        /// What failed.
        source: io::Error,
    },
}

/// The lock, held until dropped.
#[derive(Debug)]
pub struct DataDirLock {
    _file: File,
}

impl DataDirLock {
    /// Takes the lock of `data_dir` without waiting. Root may run this in a directory the
    /// service account owns: the file is opened as [`crate::privilege::open_unlinked`] opens,
    /// only for reading, and one root makes is handed to the directory's owner so the gateway
    /// can lock it later.
    pub fn take(data_dir: &Path) -> Result<DataDirLock, LockError> {
        let path = data_dir.join(FILE);
        let io = |source| LockError::Io {
            path: path.clone(),
            source,
        };
        let file = match crate::privilege::open_unlinked(data_dir, FILE) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                let file = OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o644)
                    .custom_flags(nix::libc::O_NOFOLLOW)
                    .open(&path)
                    .map_err(io)?;
                if nix::unistd::Uid::effective().is_root() {
                    use std::os::unix::fs::MetadataExt;
                    let dir = std::fs::metadata(data_dir).map_err(io)?;
                    std::os::unix::fs::fchown(&file, Some(dir.uid()), Some(dir.gid()))
                        .map_err(io)?;
                }
                file
            }
            Err(e) => return Err(io(e)),
        };
        match file.try_lock() {
            Ok(()) => Ok(DataDirLock { _file: file }),
            Err(TryLockError::WouldBlock) => Err(LockError::Held(path)),
            Err(TryLockError::Error(e)) => Err(io(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_holder_at_a_time_and_free_again_once_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let held = DataDirLock::take(dir.path()).unwrap();
        assert!(matches!(
            DataDirLock::take(dir.path()),
            Err(LockError::Held(_))
        ));
        drop(held);
        DataDirLock::take(dir.path()).unwrap();
    }

    #[test]
    fn a_link_in_its_place_is_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let elsewhere = dir.path().join("elsewhere");
        std::fs::write(&elsewhere, "x").unwrap();
        std::os::unix::fs::symlink(&elsewhere, dir.path().join(FILE)).unwrap();
        assert!(matches!(
            DataDirLock::take(dir.path()),
            Err(LockError::Io { .. })
        ));
    }
}
