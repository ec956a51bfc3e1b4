//! Least privilege outside systemd: a gateway started as root binds its ports first, then
//! becomes the unprivileged service account for good — before it opens any mail, key or
//! database — and checks that root cannot be regained. (Under systemd the unit starts it as
//! that account with only `CAP_NET_BIND_SERVICE`, and this is a no-op.)

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
}
