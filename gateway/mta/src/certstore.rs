//! Certificates installed from the console, kept in `data_dir/tls/` and served in place of the
//! files `[tls]` names (or the generated ones) for their role until they are removed — so an
//! administrator can replace a self-signed certificate without editing the configuration file.
//! Keys are written mode 0600, each file through a temporary file of its own, fsync and rename;
//! the old certificate goes first, so a crash leaves the old pair, the new one, or none (and
//! `[tls]`'s is served) — never a certificate with another pair's key. A key made for a
//! certificate request waits beside them until the issued certificate is installed.

use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use jianmen_gm::pair::{self, CertRole};
use jianmen_gm::tls::{Identity, TlsConfig};

/// The installed certificates of one gateway.
#[derive(Debug, Clone)]
pub struct CertStore {
    dir: PathBuf,
}

/// A role's files as they were before an install, to put back if serving the new pair fails.
pub struct Previous {
    role: CertRole,
    files: Option<(Vec<u8>, Vec<u8>)>,
}

impl CertStore {
    /// The store under `data_dir` (created on the first install).
    pub fn new(data_dir: &Path) -> Self {
        CertStore {
            dir: data_dir.join("tls"),
        }
    }

    fn cert_path(&self, role: CertRole) -> PathBuf {
        self.dir.join(format!("{}.crt", role.as_str()))
    }

    fn key_path(&self, role: CertRole) -> PathBuf {
        self.dir.join(format!("{}.key", role.as_str()))
    }

    fn request_key_path(&self, role: CertRole) -> PathBuf {
        self.dir.join(format!("{}.request.key", role.as_str()))
    }

    /// Whether a pair is installed for `role`.
    pub fn is_installed(&self, role: CertRole) -> bool {
        self.cert_path(role).is_file() && self.key_path(role).is_file()
    }

    /// `base` with the installed pairs in place of its files.
    pub fn effective(&self, base: &TlsConfig) -> TlsConfig {
        let mut config = base.clone();
        for role in CertRole::ALL {
            if !self.is_installed(role) {
                continue;
            }
            let files = (Some(self.cert_path(role)), Some(self.key_path(role)));
            match role {
                CertRole::International => (config.cert, config.key) = files,
                CertRole::Sm2Signing => (config.sm_cert, config.sm_key) = files,
                CertRole::Sm2Encryption => (config.sm_enc_cert, config.sm_enc_key) = files,
            }
        }
        config
    }

    /// Writes `identity` as `role`'s pair; returns what was there before.
    pub fn install(&self, role: CertRole, identity: &Identity) -> io::Result<Previous> {
        let previous = Previous {
            role,
            files: self.read(role)?,
        };
        let (chain, key) = pair::to_pem(identity);
        if let Err(e) = self.write_pair(role, chain.as_bytes(), key.as_bytes()) {
            if let Some((chain, key)) = &previous.files {
                let _ = self.write_pair(role, chain, key);
            }
            return Err(e);
        }
        Ok(previous)
    }

    /// Restores what [`install`](Self::install) replaced.
    pub fn put_back(&self, previous: Previous) -> io::Result<()> {
        match previous.files {
            Some((chain, key)) => self.write_pair(previous.role, &chain, &key),
            None => self.remove(previous.role).map(|_| ()),
        }
    }

    /// Removes `role`'s installed pair (the configured or generated one is served again);
    /// whether there was one.
    pub fn remove(&self, role: CertRole) -> io::Result<bool> {
        let existed = self.is_installed(role);
        for path in [self.cert_path(role), self.key_path(role)] {
            match std::fs::remove_file(&path) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
        }
        sync_dir(&self.dir)?;
        Ok(existed)
    }

    /// Keeps the key of a certificate request for `role` (replacing an earlier request's).
    pub fn save_request_key(&self, role: CertRole, key_pem: &str) -> io::Result<()> {
        self.write_file(&self.request_key_path(role), key_pem.as_bytes(), 0o600)?;
        sync_dir(&self.dir)
    }

    /// The waiting request key of `role`, if any.
    pub fn request_key(&self, role: CertRole) -> io::Result<Option<Vec<u8>>> {
        read_optional(&self.request_key_path(role))
    }

    /// Forgets `role`'s request key once its certificate is installed.
    pub fn drop_request_key(&self, role: CertRole) -> io::Result<()> {
        match std::fs::remove_file(self.request_key_path(role)) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => sync_dir(&self.dir),
        }
    }

    fn read(&self, role: CertRole) -> io::Result<Option<(Vec<u8>, Vec<u8>)>> {
        Ok(
            match (
                read_optional(&self.cert_path(role))?,
                read_optional(&self.key_path(role))?,
            ) {
                (Some(c), Some(k)) => Some((c, k)),
                _ => None,
            },
        )
    }

    /// Both files are written aside first; then the old certificate goes, the key and the
    /// certificate take their names. The certificate file is what makes a pair installed, so
    /// no moment pairs a certificate with another pair's key.
    fn write_pair(&self, role: CertRole, chain: &[u8], key: &[u8]) -> io::Result<()> {
        let key_tmp = self.write_aside(key, 0o600)?;
        let cert_tmp = match self.write_aside(chain, 0o644) {
            Ok(t) => t,
            Err(e) => {
                let _ = std::fs::remove_file(&key_tmp);
                return Err(e);
            }
        };
        match std::fs::remove_file(self.cert_path(role)) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
        sync_dir(&self.dir)?;
        std::fs::rename(&key_tmp, self.key_path(role))?;
        std::fs::rename(&cert_tmp, self.cert_path(role))?;
        sync_dir(&self.dir)
    }

    fn write_file(&self, path: &Path, bytes: &[u8], mode: u32) -> io::Result<()> {
        let tmp = self.write_aside(bytes, mode)?;
        std::fs::rename(&tmp, path)
    }

    /// `bytes` in a new file of this directory with `mode` (set on the open file, whatever the
    /// umask or a file left by a crash), fsync'd; returns its path.
    fn write_aside(&self, bytes: &[u8], mode: u32) -> io::Result<PathBuf> {
        use std::os::unix::fs::PermissionsExt;
        std::fs::create_dir_all(&self.dir)?;
        let mut random = [0u8; 8];
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut random)
            .map_err(|_| io::Error::other("no randomness"))?;
        let tmp = self.dir.join(format!(".{}.tmp", jianmen_gm::hex(&random)));
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&tmp)?;
        f.set_permissions(std::fs::Permissions::from_mode(mode))?;
        f.write_all(bytes)?;
        f.sync_all()?;
        Ok(tmp)
    }
}

fn read_optional(path: &Path) -> io::Result<Option<Vec<u8>>> {
    match std::fs::read(path) {
        Ok(b) => Ok(Some(b)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    match std::fs::File::open(dir) {
        Ok(d) => d.sync_all(),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn an_installed_pair_replaces_the_configured_files_until_removed() {
        let dir = tempfile::tempdir().unwrap();
        let store = CertStore::new(dir.path());
        let base = TlsConfig::generated();
        assert!(store.effective(&base).cert.is_none());
        let first = Identity::self_signed("mx.example.com").unwrap();
        let previous = store.install(CertRole::International, &first).unwrap();
        assert!(previous.files.is_none());
        let config = store.effective(&base);
        let loaded = Identity::international(&config, "ignored").unwrap();
        assert_eq!(loaded.chain, first.chain);
        assert!(config.sm_cert.is_none(), "other roles keep theirs");
        let mode = std::fs::metadata(store.key_path(CertRole::International))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);

        let second = Identity::self_signed("mx.example.com").unwrap();
        let previous = store.install(CertRole::International, &second).unwrap();
        store.put_back(previous).unwrap();
        let loaded = Identity::international(&store.effective(&base), "x").unwrap();
        assert_eq!(
            loaded.chain, first.chain,
            "put back restores the first pair"
        );

        assert!(store.remove(CertRole::International).unwrap());
        assert!(store.effective(&base).cert.is_none());
        assert!(!store.remove(CertRole::International).unwrap());
    }

    #[test]
    fn a_request_key_waits_until_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let store = CertStore::new(dir.path());
        assert!(store.request_key(CertRole::Sm2Signing).unwrap().is_none());
        store
            .save_request_key(CertRole::Sm2Signing, "-----BEGIN PRIVATE KEY-----\n")
            .unwrap();
        assert!(store.request_key(CertRole::Sm2Signing).unwrap().is_some());
        store.drop_request_key(CertRole::Sm2Signing).unwrap();
        assert!(store.request_key(CertRole::Sm2Signing).unwrap().is_none());
    }
}
