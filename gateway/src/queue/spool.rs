//! Message files on disk. A file is complete and fsync'd before the store learns of it, so after
//! any crash a file with no store row is an unacknowledged leftover and a row always has its file.
//!
//! Files are spread over 32 subdirectories by the last character of their id: a queue creates
//! and deletes files all the time, and ext4 slows down allocating inodes in a directory's block
//! group full of recently deleted ones.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// The spool directory.
#[derive(Debug, Clone)]
pub struct Spool {
    dir: PathBuf,
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
    /// Opens (creating if needed) the spool directory and its subdirectories.
    pub fn open(dir: &Path) -> io::Result<Self> {
        for shard in SHARDS.chars() {
            fs::create_dir_all(dir.join(shard.to_string()))?;
        }
        File::open(dir)?.sync_all()?;
        Ok(Self {
            dir: dir.to_owned(),
        })
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
        let result = (|| {
            let mut f = OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&path)?;
            for part in parts {
                f.write_all(part)?;
            }
            f.sync_all()?;
            File::open(self.shard(id))?.sync_all()
        })();
        if result.is_err() {
            let _ = fs::remove_file(&path);
        }
        result
    }

    /// Reads a message file.
    pub fn read(&self, id: &str) -> io::Result<Vec<u8>> {
        fs::read(self.path(id)?)
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

    /// Bytes available to unprivileged writers on the spool's filesystem.
    pub fn free_bytes(&self) -> io::Result<u64> {
        let st = nix::sys::statvfs::statvfs(&self.dir).map_err(io::Error::from)?;
        Ok(st.blocks_available() as u64 * st.fragment_size() as u64)
    }
}

/// Whether an I/O error means the disk (or quota) is full.
pub fn is_storage_full(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::StorageFull || e.kind() == io::ErrorKind::QuotaExceeded
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
        spool.remove(&id).unwrap();
        spool.remove(&id).unwrap();
        assert!(spool.read("../etc/passwd").is_err());
        assert!(spool.free_bytes().unwrap() > 0);
    }
}
