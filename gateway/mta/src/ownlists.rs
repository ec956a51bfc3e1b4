//! Recipients' own allow and block lists (个人黑白名单): senders a person trusts or never wants
//! to hear from, kept per recipient address of a protected domain. The recipient edits them
//! from the signed link in their quarantine digest, an administrator from the console; they
//! are in force for the next message without a restart and judge only that recipient's copy
//! (see `jianmen_scan::pipeline::OwnLists` for how much they weigh).
//!
//! Bounded twice: a recipient holds at most [`MAX_PER_OWNER`] entries and the gateway at most
//! [`MAX_ENTRIES`], so neither one person nor many can make every message's lookup or the
//! store grow without end.

use std::collections::BTreeMap;
use std::sync::Arc;

use jianmen_scan::pipeline::{OwnLists, Pipeline};
use jianmen_scan::reputation::AddressList;
use serde::{Deserialize, Serialize};
use sqlx::Row;
use tokio::sync::Mutex;

use crate::db::StoreError;
use crate::queue::SqliteStore;
use crate::queue::manager::unix_now;

/// Created with the queue's schema.
pub const SCHEMA: &[&str] = &["CREATE TABLE IF NOT EXISTS own_lists (
        owner TEXT NOT NULL,
        list TEXT NOT NULL,
        entry TEXT NOT NULL,
        added_at INTEGER NOT NULL,
        added_by TEXT NOT NULL,
        PRIMARY KEY (owner, list, entry)
    )"];

/// Entries one recipient may keep, both lists together.
pub const MAX_PER_OWNER: usize = 500;
/// Entries all recipients together may keep.
pub const MAX_ENTRIES: usize = 200_000;
/// Longest entry or address accepted.
const MAX_LEN: usize = 254;

/// Which of a recipient's lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ListKind {
    /// Senders whose mail this recipient trusts.
    Allow,
    /// Senders this recipient never wants mail from.
    Block,
}

impl ListKind {
    /// Lower-case name, as stored and in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            ListKind::Allow => "allow",
            ListKind::Block => "block",
        }
    }

    fn parse(s: &str) -> Result<Self, StoreError> {
        match s {
            "allow" => Ok(ListKind::Allow),
            "block" => Ok(ListKind::Block),
            other => Err(StoreError::Corrupt(format!("own list `{other}`"))),
        }
    }
}

/// One entry of a recipient's list.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Entry {
    /// The list it is on.
    pub list: ListKind,
    /// An address, `@domain`, a domain, an IP address or a CIDR range (lower case).
    pub entry: String,
    /// When it was added (Unix time).
    pub added_at: i64,
    /// Who added it: the recipient (`link:<address>`) or a console account.
    pub added_by: String,
}

/// A recipient who keeps entries, with how many on each list.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Owner {
    /// The recipient's address (lower case).
    pub owner: String,
    /// Entries on the allow list.
    pub allow: i64,
    /// Entries on the block list.
    pub block: i64,
}

/// Why a change to a recipient's lists was refused.
#[derive(Debug, thiserror::Error)]
pub enum OwnListError {
    /// The owner is not an address of a protected domain.
    #[error("`{0}` is not an address of a protected domain")]
    Owner(String),
    /// An entry is neither an address, a domain, an IP nor a CIDR range.
    #[error("not an IP, CIDR range, address or domain: {0}")]
    Entry(String),
    /// The recipient's lists are full.
    #[error("a recipient keeps at most {MAX_PER_OWNER} entries")]
    Full,
    /// All recipients' lists together are full.
    #[error("the gateway keeps at most {MAX_ENTRIES} personal list entries")]
    AllFull,
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sqlx::Error> for OwnListError {
    fn from(e: sqlx::Error) -> Self {
        OwnListError::Store(e.into())
    }
}

/// The lists, stored and in force.
pub struct OwnListBook {
    store: Arc<SqliteStore>,
    protected: Vec<String>,
    pipeline: Option<Arc<Pipeline>>,
    /// Held while a change is written and put in force, so the limits hold under concurrency
    /// and what is in force is what is stored.
    changes: Mutex<()>,
}

impl OwnListBook {
    /// Puts every stored list in force in `pipeline`. Entries a newer version no longer
    /// parses are skipped with a warning rather than stopping the gateway.
    pub async fn open(
        store: Arc<SqliteStore>,
        protected: Vec<String>,
        pipeline: Option<Arc<Pipeline>>,
    ) -> Result<Self, StoreError> {
        let book = Self {
            store,
            protected,
            pipeline,
            changes: Mutex::new(()),
        };
        if let Some(p) = &book.pipeline {
            let rows = sqlx::query(
                "SELECT owner, list, entry FROM own_lists WHERE list IN ('allow', 'block')
                 ORDER BY owner",
            )
            .fetch_all(book.store.reader())
            .await?;
            let mut all: BTreeMap<String, Vec<(ListKind, String)>> = BTreeMap::new();
            for r in &rows {
                all.entry(r.get(0))
                    .or_default()
                    .push((ListKind::parse(r.get(1))?, r.get(2)));
            }
            for (owner, entries) in all {
                p.set_own_lists(&owner, readable(&owner, entries));
            }
        }
        Ok(book)
    }

    /// Whether the lists are applied to mail here (threat scanning is on).
    pub fn applied(&self) -> bool {
        self.pipeline.is_some()
    }

    /// The owner's address in lower case, if it is one of a protected domain.
    pub fn owner(&self, address: &str) -> Result<String, OwnListError> {
        let a = address.trim().to_lowercase();
        let ok = a.len() <= MAX_LEN
            && !a.contains(|c: char| c.is_whitespace() || c.is_control())
            && a.rsplit_once('@').is_some_and(|(local, domain)| {
                !local.is_empty()
                    && self
                        .protected
                        .iter()
                        .any(|p| p.eq_ignore_ascii_case(domain))
            });
        if ok {
            Ok(a)
        } else {
            Err(OwnListError::Owner(address.chars().take(MAX_LEN).collect()))
        }
    }

    /// `owner`'s entries, allow list first, each list in the order added.
    pub async fn entries(&self, owner: &str) -> Result<Vec<Entry>, OwnListError> {
        let owner = self.owner(owner)?;
        let rows = sqlx::query(
            "SELECT list, entry, added_at, added_by FROM own_lists
             WHERE owner = ? AND list IN ('allow', 'block') ORDER BY list, added_at, rowid",
        )
        .bind(&owner)
        .fetch_all(self.store.reader())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(Entry {
                    list: ListKind::parse(r.get(0))?,
                    entry: r.get(1),
                    added_at: r.get(2),
                    added_by: r.get(3),
                })
            })
            .collect()
    }

    /// Recipients who keep entries, whose address starts with `prefix` (lower case) and, for a
    /// per-domain administrator, is in `domain`; at most `limit`.
    pub async fn owners(
        &self,
        prefix: &str,
        domain: Option<&str>,
        limit: u32,
    ) -> Result<Vec<Owner>, StoreError> {
        let prefix = prefix.trim().to_lowercase();
        let like = |s: &str| {
            s.replace('\\', "\\\\")
                .replace('%', "\\%")
                .replace('_', "\\_")
        };
        let rows = sqlx::query(
            "SELECT owner, SUM(list = 'allow'), SUM(list = 'block') FROM own_lists
             WHERE owner LIKE ? ESCAPE '\\' AND owner LIKE ? ESCAPE '\\'
             GROUP BY owner ORDER BY owner LIMIT ?",
        )
        .bind(format!("{}%", like(&prefix)))
        .bind(domain.map_or_else(
            || "%".to_owned(),
            |d| format!("%@{}", like(&d.to_lowercase())),
        ))
        .bind(limit)
        .fetch_all(self.store.reader())
        .await?;
        Ok(rows
            .iter()
            .map(|r| Owner {
                owner: r.get(0),
                allow: r.get(1),
                block: r.get(2),
            })
            .collect())
    }

    /// Adds `entries` to `owner`'s `list` (all or none: one bad entry refuses the lot);
    /// entries already there are left as they are, and one moved from the other list leaves
    /// it. Returns how many were new to the list.
    pub async fn add(
        &self,
        owner: &str,
        list: ListKind,
        entries: &[String],
        actor: &str,
    ) -> Result<usize, OwnListError> {
        let owner = self.owner(owner)?;
        let mut clean = Vec::with_capacity(entries.len().min(MAX_PER_OWNER));
        for raw in entries {
            let e = raw.trim().to_lowercase();
            if e.is_empty() {
                continue;
            }
            if e.len() > MAX_LEN || AddressList::parse(std::slice::from_ref(&e)).is_err() {
                return Err(OwnListError::Entry(raw.chars().take(MAX_LEN).collect()));
            }
            if !clean.contains(&e) {
                clean.push(e);
            }
            if clean.len() > MAX_PER_OWNER {
                return Err(OwnListError::Full);
            }
        }
        let _one = self.changes.lock().await;
        let mut tx = self.store.writer().begin().await?;
        let mut added = 0;
        let now = unix_now();
        for e in &clean {
            sqlx::query("DELETE FROM own_lists WHERE owner = ? AND list != ? AND entry = ?")
                .bind(&owner)
                .bind(list.as_str())
                .bind(e)
                .execute(&mut *tx)
                .await?;
            added += sqlx::query(
                "INSERT OR IGNORE INTO own_lists (owner, list, entry, added_at, added_by)
                 VALUES (?, ?, ?, ?, ?)",
            )
            .bind(&owner)
            .bind(list.as_str())
            .bind(e)
            .bind(now)
            .bind(actor)
            .execute(&mut *tx)
            .await?
            .rows_affected() as usize;
        }
        let (mine, all): (i64, i64) = sqlx::query_as(
            "SELECT (SELECT COUNT(*) FROM own_lists WHERE owner = ?), (SELECT COUNT(*) FROM own_lists)",
        )
        .bind(&owner)
        .fetch_one(&mut *tx)
        .await?;
        if mine as usize > MAX_PER_OWNER {
            return Err(OwnListError::Full);
        }
        if all as usize > MAX_ENTRIES {
            return Err(OwnListError::AllFull);
        }
        tx.commit().await?;
        self.put_in_force(&owner).await;
        Ok(added)
    }

    /// Removes `entry` from `owner`'s `list`; whether it was there.
    pub async fn remove(
        &self,
        owner: &str,
        list: ListKind,
        entry: &str,
    ) -> Result<bool, OwnListError> {
        let owner = self.owner(owner)?;
        let _one = self.changes.lock().await;
        let gone = sqlx::query("DELETE FROM own_lists WHERE owner = ? AND list = ? AND entry = ?")
            .bind(&owner)
            .bind(list.as_str())
            .bind(entry.trim().to_lowercase())
            .execute(self.store.writer())
            .await?
            .rows_affected()
            > 0;
        if gone {
            self.put_in_force(&owner).await;
        }
        Ok(gone)
    }

    /// Puts `owner`'s stored lists in force (the caller holds `changes`). The change is
    /// stored already: should reading it back fail, the gateway says so loudly and the lists
    /// in force are the ones from before, until the next change or start.
    async fn put_in_force(&self, owner: &str) {
        let Some(p) = &self.pipeline else {
            return;
        };
        match self.entries(owner).await {
            Ok(entries) => p.set_own_lists(
                owner,
                readable(owner, entries.into_iter().map(|e| (e.list, e.entry))),
            ),
            Err(e) => {
                tracing::error!(owner, error = %e, "a changed personal list is not in force")
            }
        }
    }
}

/// `owner`'s lists from stored `(list, entry)` rows; an entry this version cannot read is
/// left out with a warning rather than taking the others (or the gateway) down with it.
fn readable(owner: &str, rows: impl IntoIterator<Item = (ListKind, String)>) -> OwnLists {
    let (mut allow, mut block) = (Vec::new(), Vec::new());
    for (list, entry) in rows {
        if AddressList::parse(std::slice::from_ref(&entry)).is_err() {
            tracing::warn!(owner, entry, "a personal list entry is not in force");
            continue;
        }
        match list {
            ListKind::Allow => allow.push(entry),
            ListKind::Block => block.push(entry),
        }
    }
    OwnLists::parse(&allow, &block).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn book(dir: &std::path::Path) -> OwnListBook {
        let store = Arc::new(SqliteStore::open(&dir.join("q.db")).await.unwrap());
        OwnListBook::open(store, vec!["example.com".into()], None)
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn entries_are_checked_bounded_moved_and_removed() {
        let dir = tempfile::tempdir().unwrap();
        let b = book(dir.path()).await;
        let list = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            b.add(
                "Dora@Example.com",
                ListKind::Allow,
                &list(&["Boss@Partner.test", "@supplier.test", " "]),
                "link:dora@example.com"
            )
            .await
            .unwrap(),
            2
        );
        // Again: nothing new.
        assert_eq!(
            b.add(
                "dora@example.com",
                ListKind::Allow,
                &list(&["boss@partner.test"]),
                "x"
            )
            .await
            .unwrap(),
            0
        );
        // Moved to the block list, it leaves the allow list.
        b.add(
            "dora@example.com",
            ListKind::Block,
            &list(&["@supplier.test"]),
            "x",
        )
        .await
        .unwrap();
        let entries = b.entries("dora@example.com").await.unwrap();
        let shown: Vec<(ListKind, &str)> =
            entries.iter().map(|e| (e.list, e.entry.as_str())).collect();
        assert_eq!(
            shown,
            [
                (ListKind::Allow, "boss@partner.test"),
                (ListKind::Block, "@supplier.test")
            ]
        );
        assert_eq!(entries[0].added_by, "link:dora@example.com");

        // Refused: a foreign owner, a bad entry (and the good one beside it), too many.
        assert!(matches!(
            b.add("eve@other.test", ListKind::Allow, &list(&["a@b.test"]), "x")
                .await,
            Err(OwnListError::Owner(_))
        ));
        assert!(matches!(
            b.add(
                "dora@example.com",
                ListKind::Allow,
                &list(&["ok@b.test", "not an entry"]),
                "x"
            )
            .await,
            Err(OwnListError::Entry(_))
        ));
        assert_eq!(b.entries("dora@example.com").await.unwrap().len(), 2);
        let many: Vec<String> = (0..MAX_PER_OWNER).map(|i| format!("s{i}@b.test")).collect();
        assert!(matches!(
            b.add("dora@example.com", ListKind::Block, &many, "x").await,
            Err(OwnListError::Full)
        ));
        assert_eq!(
            b.entries("dora@example.com").await.unwrap().len(),
            2,
            "all or none"
        );

        b.add("ed@example.com", ListKind::Block, &list(&["x@y.test"]), "x")
            .await
            .unwrap();
        let owners = b.owners("", None, 10).await.unwrap();
        assert_eq!(
            owners,
            [
                Owner {
                    owner: "dora@example.com".into(),
                    allow: 1,
                    block: 1
                },
                Owner {
                    owner: "ed@example.com".into(),
                    allow: 0,
                    block: 1
                },
            ]
        );
        assert_eq!(b.owners("e", None, 10).await.unwrap().len(), 1);
        assert!(
            b.owners("", Some("other.test"), 10)
                .await
                .unwrap()
                .is_empty()
        );
        // `_` is a character, not a wildcard.
        assert!(b.owners("d_ra", None, 10).await.unwrap().is_empty());

        assert!(
            b.remove("dora@example.com", ListKind::Block, "@Supplier.test")
                .await
                .unwrap()
        );
        assert!(
            !b.remove("dora@example.com", ListKind::Block, "@supplier.test")
                .await
                .unwrap()
        );
        assert_eq!(b.entries("dora@example.com").await.unwrap().len(), 1);
    }
}
