//! Least privilege outside systemd: a gateway started as root binds its ports first, then
//! becomes the unprivileged service account for good — before it opens any mail, key or
//! database — and checks that root cannot be regained. (Under systemd the unit starts it as
//! that account with only `CAP_NET_BIND_SERVICE`, and this is a no-op.) And how root reads what
//! lies in a directory that account owns ([`open_unlinked`]).

use nix::unistd::{Gid, Uid, User, setgid, setgroups, setuid};

/// Why the gateway would not give up root.
#[derive(Debug, thiserror::Error)]
pub enum PrivilegeError {
    /// `server.user` names no account.
    #[error("server.user {0:?} does not exist: create it (the packages do) or name another")]
    NoSuchUser(String),
    /// The account database could not be read.
    #[error("cannot look up server.user {user:?}: {source}")]
    Lookup {
        /// The account name.
        user: String,
        /// The system error.
        source: nix::Error,
    },
    /// A step of the change failed.
    #[error("cannot drop root ({step}): {source}")]
    Change {
        /// setgroups, setgid or setuid.
        step: &'static str,
        /// The system error.
        source: nix::Error,
    },
    /// After the change, root could be taken back.
    #[error("root privileges could be regained after switching to {0:?}: refusing to run")]
    Regained(String),
}

/// The account the process now runs as, when it had to change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dropped {
    /// The new user id.
    pub uid: Uid,
    /// The new group id (also the only supplementary group).
    pub gid: Gid,
}

/// Becomes `user` when running as root (every thread: glibc applies set*id process-wide).
/// Returns `None` when there is nothing to give up: not root, or `user` is root itself (an
/// explicit choice, e.g. the demo's and the tests'; the caller warns).
pub fn drop_root(user: &str) -> Result<Option<Dropped>, PrivilegeError> {
    if !Uid::effective().is_root() && !Uid::current().is_root() {
        return Ok(None);
    }
    let account = User::from_name(user)
        .map_err(|source| PrivilegeError::Lookup {
            user: user.to_owned(),
            source,
        })?
        .ok_or_else(|| PrivilegeError::NoSuchUser(user.to_owned()))?;
    if account.uid.is_root() {
        return Ok(None);
    }
    let change =
        |step, r: nix::Result<()>| r.map_err(|source| PrivilegeError::Change { step, source });
    // Order matters: groups and gid need root, so they go before the uid.
    change("setgroups", setgroups(&[account.gid]))?;
    change("setgid", setgid(account.gid))?;
    change("setuid", setuid(account.uid))?;
    if setuid(Uid::from_raw(0)).is_ok()
        || Uid::effective().is_root()
        || Uid::current().is_root()
        || setgid(Gid::from_raw(0)).is_ok()
    {
        return Err(PrivilegeError::Regained(user.to_owned()));
    }
    Ok(Some(Dropped {
        uid: account.uid,
        gid: account.gid,
    }))
}

/// Opens `dir/name` for reading as root may open a file in a directory the service account owns:
/// no link is followed at `dir`'s last step or at `name`, a FIFO does not make it wait, and only
/// a regular file is returned — the account cannot lead root to another file, or stall it.
pub fn open_unlinked(dir: &std::path::Path, name: &str) -> std::io::Result<std::fs::File> {
    use nix::fcntl::{OFlag, open, openat};
    use nix::sys::stat::Mode;
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    if name.contains('/') || name == "." || name == ".." {
        return Err(std::io::Error::other(format!(
            "{name:?} is not a file name"
        )));
    }
    let base = OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    let dir_fd = open(dir, base | OFlag::O_DIRECTORY, Mode::empty())?;
    // SAFETY: `open` just returned this descriptor; nothing else owns it.
    let dir_fd = unsafe { OwnedFd::from_raw_fd(dir_fd) };
    let fd = openat(
        Some(dir_fd.as_raw_fd()),
        name,
        base | OFlag::O_NONBLOCK,
        Mode::empty(),
    )?;
    // SAFETY: as above.
    let file = std::fs::File::from(unsafe { OwnedFd::from_raw_fd(fd) });
    if !file.metadata()?.is_file() {
        return Err(std::io::Error::other(format!(
            "{}/{name} is not a regular file",
            dir.display()
        )));
    }
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Refusals happen before any identity change, so they can be checked in-process; the
    /// change itself is checked end to end (tests/tests/privilege.rs).
    #[test]
    fn root_refuses_a_missing_account_and_stays_only_when_told() {
        let before = (Uid::current(), Gid::current());
        let missing = drop_root("no-such-account-jianmen");
        let root = drop_root("root");
        if before.0.is_root() {
            assert!(
                matches!(missing, Err(PrivilegeError::NoSuchUser(_))),
                "{missing:?}"
            );
        } else {
            assert_eq!(missing.unwrap(), None);
        }
        assert_eq!(root.unwrap(), None);
        assert_eq!((Uid::current(), Gid::current()), before);
    }

    #[test]
    fn links_fifos_and_folders_are_not_opened() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::write(d.join("plain"), "x").unwrap();
        std::fs::create_dir(d.join("sub")).unwrap();
        std::fs::write(d.join("sub/inner"), "y").unwrap();
        std::os::unix::fs::symlink(d.join("plain"), d.join("link")).unwrap();
        std::os::unix::fs::symlink(d.join("sub"), d.join("linked-dir")).unwrap();
        nix::unistd::mkfifo(&d.join("fifo"), nix::sys::stat::Mode::S_IRWXU).unwrap();
        assert!(open_unlinked(d, "plain").is_ok());
        assert!(open_unlinked(&d.join("sub"), "inner").is_ok());
        for (folder, name) in [
            (d.to_path_buf(), "link"),
            (d.join("linked-dir"), "inner"),
            (d.to_path_buf(), "fifo"),
            (d.to_path_buf(), "sub"),
            (d.to_path_buf(), "../plain"),
            (d.to_path_buf(), "missing"),
        ] {
            assert!(
                open_unlinked(&folder, name).is_err(),
                "{}/{name}",
                folder.display()
            );
        }
    }
}
