//! Message files on disk. A file is complete and fsync'd before the store learns of it, so after
//! any crash a file with no store row is an unacknowledged leftover and a row always has its file.
//!
//! Files are spread over 32 subdirectories by the last character of their id: a queue creates
//! and deletes files all the time, and ext4 slows down allocating inodes in a directory's block
//! group full of recently deleted ones.
//!
//! With a [`SpoolKey`] files are sealed with SM4-GCM (queued and quarantined mail alike): a
//! magic header, a random nonce, then the ciphertext, authenticated together with the file's
//! id so files cannot be swapped. Files written before sealing was turned on stay readable.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use jianmen_gm::sm4::{KEY_LEN, NONCE_LEN, Sm4Gcm};

use crate::config::Config;

/// The SM4 key that seals message files at rest (`data_dir/keys/spool-sm4.key`).
#[derive(Clone)]
pub struct SpoolKey(Arc<Sm4Gcm>);

impl std::fmt::Debug for SpoolKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SpoolKey(…)")
    }
}

impl SpoolKey {
    /// The key of `data_dir`, created on first use when `create`; `None` when there is none.
    pub fn load(data_dir: &Path, create: bool) -> io::Result<Option<SpoolKey>> {
        let path = data_dir.join("keys").join("spool-sm4.key");
        Ok(
            jianmen_gm::keyfile::load_secret(&path, KEY_LEN, create)?.map(|secret| {
                let mut key = [0u8; KEY_LEN];
                key.copy_from_slice(&secret);
                SpoolKey(Arc::new(Sm4Gcm::new(&key)))
            }),
        )
    }
}

/// The first bytes of a sealed file.
const SEALED: &[u8; 8] = b"JMSPSM4\x01";

/// The spool directory.
#[derive(Debug, Clone)]
pub struct Spool {
    dir: PathBuf,
    key: Option<SpoolKey>,
    seal: bool,
}

/// The characters a ULID ends with (Crockford base32): one subdirectory each.
const SHARDS: &str = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/// Whether `id` is a queue id (ULID alphabet) — guards every path built from an id.
pub fn is_queue_id(id: &str) -> bool {
    id.len() == 26
        && id
            .bytes()
            .all(|b| b.is_ascii_digit() || b.is_ascii_uppercase())
}

fn bad_id(id: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!(
            "not a queue id: {:?}",
            id.chars().take(40).collect::<String>()
        ),
    )
}

impl Spool {
    /// The spool `config` names, with its sealing key (see `server.encrypt_spool`): every
    /// process that reads or writes message files opens it here.
    pub fn configured(config: &Config) -> io::Result<Spool> {
        let spool = Spool::open(&config.spool_dir())?;
        let seal = config.server.encrypt_spool;
        let key = match SpoolKey::load(&config.server.data_dir, false)? {
            Some(key) => Some(key),
            // A new key would never open the mail sealed with the lost one, and mail sealed
            // with it would not open once the old key is restored: refuse instead.
            None if spool.has_sealed_files()? => {
                return Err(io::Error::other(
                    "the spool holds sealed mail but data_dir/keys/spool-sm4.key is missing: \
                     restore it from backup",
                ));
            }
            None => SpoolKey::load(&config.server.data_dir, seal)?,
        };
        Ok(match key {
            Some(key) => spool.with_key(key, seal),
            None => spool,
        })
    }

    /// Opens (creating if needed) the spool directory and its subdirectories.
    pub fn open(dir: &Path) -> io::Result<Self> {
        for shard in SHARDS.chars() {
            fs::create_dir_all(dir.join(shard.to_string()))?;
        }
        File::open(dir)?.sync_all()?;
        Ok(Self {
            dir: dir.to_owned(),
            key: None,
            seal: false,
        })
    }

    /// The same spool reading sealed files with `key`, and sealing new ones when `seal`.
    pub fn with_key(self, key: SpoolKey, seal: bool) -> Self {
        Self {
            key: Some(key),
            seal,
            ..self
        }
    }

    fn shard(&self, id: &str) -> PathBuf {
        self.dir.join(&id[id.len() - 1..])
    }

    /// The spool directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn path(&self, id: &str) -> io::Result<PathBuf> {
        if is_queue_id(id) {
            Ok(self.shard(id).join(id))
        } else {
            Err(bad_id(id))
        }
    }

    /// Writes a new message file from `parts` and makes it durable: the file is fsync'd, then
    /// its directory (so the name survives a crash too). A partial file is removed on failure.
    /// Sessions call this in parallel; the directory fsyncs of concurrent writers overlap.
    pub fn write(&self, id: &str, parts: &[&[u8]]) -> io::Result<()> {
        let path = self.path(id)?;
        let sealed = match (&self.key, self.seal) {
            (Some(SpoolKey(key)), true) => {
                let mut nonce = [0u8; NONCE_LEN];
                ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut nonce)
                    .map_err(|_| io::Error::other("no randomness"))?;
                let mut out = SEALED.to_vec();
                out.extend_from_slice(&nonce);
                out.extend(key.seal(&nonce, id.as_bytes(), &parts.concat()));
                Some(out)
            }
            _ => None,
        };
        // A name that is taken is another message's file: refused, and left alone.
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)?;
        let result = (|| {
            match &sealed {
                Some(bytes) => f.write_all(bytes)?,
                None => {
                    for part in parts {
                        f.write_all(part)?;
                    }
                }
            }
            f.sync_all()?;
            File::open(self.shard(id))?.sync_all()
        })();
        if result.is_err() {
            let _ = fs::remove_file(&path);
        }
        result
    }

    /// Reads a message file (unsealing it); a sealed file that does not open — altered,
    /// renamed, or no key — is an `InvalidData` error.
    pub fn read(&self, id: &str) -> io::Result<Vec<u8>> {
        let bytes = fs::read(self.path(id)?)?;
        let Some(rest) = bytes.strip_prefix(SEALED) else {
            return Ok(bytes);
        };
        let Some(SpoolKey(key)) = &self.key else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{id} is sealed and data_dir/keys/spool-sm4.key is missing"),
            ));
        };
        if rest.len() < NONCE_LEN {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{id} is truncated"),
            ));
        }
        let (nonce, sealed) = rest.split_at(NONCE_LEN);
        let mut n = [0u8; NONCE_LEN];
        n.copy_from_slice(nonce);
        key.open(&n, id.as_bytes(), sealed).map_err(|_| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{id} does not unseal (altered, moved, or another key)"),
            )
        })
    }

    /// Removes a message file; a missing file is not an error.
    pub fn remove(&self, id: &str) -> io::Result<()> {
        match fs::remove_file(self.path(id)?) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            other => other,
        }
    }

    /// Ids of all message files present.
    pub fn ids(&self) -> io::Result<Vec<String>> {
        let mut ids = Vec::new();
        for shard in SHARDS.chars() {
            for entry in fs::read_dir(self.dir.join(shard.to_string()))? {
                let name = entry?.file_name();
                if let Some(name) = name.to_str()
                    && is_queue_id(name)
                {
                    ids.push(name.to_owned());
                }
            }
        }
        Ok(ids)
    }

    /// Whether any message file is sealed (read from the first bytes only).
    pub fn has_sealed_files(&self) -> io::Result<bool> {
        use std::io::Read;
        for id in self.ids()? {
            let mut head = [0u8; SEALED.len()];
            let mut f = File::open(self.path(&id)?)?;
            if f.read_exact(&mut head).is_ok() && &head == SEALED {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Bytes available to unprivileged writers on the spool's filesystem.
    pub fn free_bytes(&self) -> io::Result<u64> {
        let st = nix::sys::statvfs::statvfs(&self.dir).map_err(io::Error::from)?;
        Ok(st.blocks_available() as u64 * st.fragment_size() as u64)
    }
}

#[cfg(test)]
mod sealing_tests {
    use super::*;

    const A: &str = "01ARZ3NDEKTSV4RRFFQ69G5FAV";
    const B: &str = "01ARZ3NDEKTSV4RRFFQ69G5FAW";

    #[test]
    fn sealed_files_hide_the_message_and_refuse_tampering_swaps_and_missing_keys() {
        let dir = tempfile::tempdir().unwrap();
        let key = SpoolKey::load(dir.path(), true).unwrap().unwrap();
        let plain = Spool::open(&dir.path().join("spool")).unwrap();
        plain
            .write(B, &[b"Subject: written before sealing\r\n"])
            .unwrap();
        let spool = plain.clone().with_key(key.clone(), true);
        spool
            .write(A, &[b"Subject: secret ", b"plans\r\n"])
            .unwrap();
        let on_disk = fs::read(spool.path(A).unwrap()).unwrap();
        assert!(on_disk.starts_with(SEALED));
        assert!(!on_disk.windows(6).any(|w| w == b"secret"));
        assert_eq!(spool.read(A).unwrap(), b"Subject: secret plans\r\n");
        // Older plaintext files still read.
        assert_eq!(
            spool.read(B).unwrap(),
            b"Subject: written before sealing\r\n"
        );
        // Without the key, or after a flipped byte or a rename, nothing is returned.
        assert_eq!(
            plain.read(A).unwrap_err().kind(),
            io::ErrorKind::InvalidData
        );
        let mut altered = on_disk.clone();
        *altered.last_mut().unwrap() ^= 1;
        fs::write(spool.path(A).unwrap(), &altered).unwrap();
        assert_eq!(
            spool.read(A).unwrap_err().kind(),
            io::ErrorKind::InvalidData
        );
        spool.remove(B).unwrap();
        fs::write(spool.path(B).unwrap(), &on_disk).unwrap();
        assert_eq!(
            spool.read(B).unwrap_err().kind(),
            io::ErrorKind::InvalidData
        );
        assert!(spool.has_sealed_files().unwrap());
        // The key file is kept across loads.
        let again = SpoolKey::load(dir.path(), false).unwrap().unwrap();
        fs::write(spool.path(A).unwrap(), &on_disk).unwrap();
        assert!(plain.with_key(again, false).read(A).is_ok());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_read_remove_and_reject_bad_ids() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::open(dir.path()).unwrap();
        let id = ulid::Ulid::new().to_string();
        spool.write(&id, &[b"a", b"bc"]).unwrap();
        assert_eq!(spool.read(&id).unwrap(), b"abc");
        assert_eq!(spool.ids().unwrap(), vec![id.clone()]);
        assert!(spool.write(&id, &[b"x"]).is_err(), "ids are never reused");
        assert_eq!(
            spool.read(&id).unwrap(),
            b"abc",
            "and the first file is kept"
        );
        spool.remove(&id).unwrap();
        spool.remove(&id).unwrap();
        assert!(spool.read("../etc/passwd").is_err());
        assert!(spool.free_bytes().unwrap() > 0);
    }
}
