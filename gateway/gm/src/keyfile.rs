//! Secret key files under `data_dir/keys/`: random bytes, mode 0600, created once and fsync'd,
//! never overwritten — so a key that seals or signs data cannot be lost to a restart.

use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use ring::rand::{SecureRandom, SystemRandom};

/// The `len`-byte secret in `path`; when the file is missing it is created (if `create`) or
/// `None` is returned. A file of another length is an error, not replaced.
pub fn load_secret(path: &Path, len: usize, create: bool) -> io::Result<Option<Vec<u8>>> {
    match std::fs::read(path) {
        Ok(s) if s.len() == len => Ok(Some(s)),
        Ok(_) => Err(io::Error::other(format!(
            "{} is not a {len}-byte key",
            path.display()
        ))),
        Err(e) if e.kind() == io::ErrorKind::NotFound && create => {
            let mut s = vec![0u8; len];
            SystemRandom::new()
                .fill(&mut s)
                .map_err(|_| io::Error::other("no randomness"))?;
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)?;
            }
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(path)?;
            f.write_all(&s)?;
            f.sync_all()?;
            if let Some(dir) = path.parent() {
                std::fs::File::open(dir)?.sync_all()?;
            }
            Ok(Some(s))
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn a_key_is_created_once_private_and_then_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys/k.key");
        assert_eq!(load_secret(&path, 16, false).unwrap(), None);
        let first = load_secret(&path, 16, true).unwrap().unwrap();
        assert_eq!(first.len(), 16);
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(load_secret(&path, 16, true).unwrap().unwrap(), first);
        assert!(load_secret(&path, 32, true).is_err());
    }
}
