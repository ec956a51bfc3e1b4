//! The detection policy's versions: what the console's policy editor saves, kept in the
//! queue's database so every change can be read back, compared with the one before and rolled
//! back. The configuration file gives a version too — whenever its `[scan]` thresholds,
//! actions or lists differ from the last version it gave — so the later change wins, whether
//! it was made in the file (at the next start) or in the console (at once, no restart).
//! Saving checks the policy as `check-config` does and puts it in force in the running
//! pipeline before it answers.

use std::collections::BTreeMap;
use std::sync::Arc;

use jianmen_scan::config::{PolicyError, ScanPolicy};
use jianmen_scan::pipeline::Pipeline;
use serde::Serialize;
use serde_json::Value;
use sqlx::Row;
use tokio::sync::Mutex;

use crate::db::StoreError;
use crate::ownlists::OwnListBook;
use crate::queue::SqliteStore;
use crate::queue::manager::unix_now;

/// Created with the queue's schema.
pub const SCHEMA: &[&str] = &["CREATE TABLE IF NOT EXISTS policy_versions (
        version INTEGER PRIMARY KEY,
        created_at INTEGER NOT NULL,
        author TEXT NOT NULL,
        source TEXT NOT NULL,
        comment TEXT NOT NULL,
        policy TEXT NOT NULL
    )"];

/// Where a version came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// The configuration file, read at start.
    File,
    /// The console's policy editor (or a roll-back there).
    Console,
}

impl Source {
    fn as_str(self) -> &'static str {
        match self {
            Source::File => "file",
            Source::Console => "console",
        }
    }
}

/// One saved policy, without the policy itself.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    /// Its number, counting up from 1.
    pub version: i64,
    /// When it was saved (Unix time).
    pub created_at: i64,
    /// Who saved it (the console account, or `configuration file`).
    pub author: String,
    /// Where it came from.
    pub source: Source,
    /// The author's words on why.
    pub comment: String,
}

/// One saved policy.
#[derive(Debug, Clone, Serialize)]
pub struct Version {
    /// Number, time, author, comment.
    #[serde(flatten)]
    pub summary: Summary,
    /// The policy.
    pub policy: ScanPolicy,
}

/// One difference between two versions: a setting (`thresholds.spam`,
/// `domains[example.com].actions.phish`) or a list entry (`allow ∋ a@b.test`) with its value
/// before and after (`None`: absent).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Change {
    /// The setting or list entry.
    pub key: String,
    /// Its value before.
    pub before: Option<String>,
    /// Its value after.
    pub after: Option<String>,
}

/// Why a policy was not saved.
#[derive(Debug, thiserror::Error)]
pub enum SaveError {
    /// Someone else saved a version since the editor loaded the one it changed.
    #[error("the policy was changed meanwhile (now version {0}): reload and edit again")]
    Conflict(i64),
    /// The policy is the one in force already.
    #[error("nothing was changed")]
    Unchanged,
    /// The policy is wrong.
    #[error(transparent)]
    Invalid(#[from] PolicyError),
    /// No such version to roll back to.
    #[error("no policy version {0}")]
    Unknown(i64),
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The versions and the one in force.
pub struct PolicyBook {
    store: Arc<SqliteStore>,
    protected: Vec<String>,
    pipeline: Option<Arc<Pipeline>>,
    /// Held while a version is saved, so two editors cannot both build on the same one.
    current: Mutex<Version>,
    own: OwnListBook,
}

const FILE_AUTHOR: &str = "configuration file";

/// Versions kept; older ones are deleted as new ones are saved.
const KEPT: i64 = 200;

impl PolicyBook {
    /// Records the file's policy when it changed since it was last recorded, and puts the
    /// newest version in force in `pipeline`. A newest version the file no longer allows (a
    /// domain it names is no longer protected) is set aside for the file's, with a warning.
    pub async fn open(
        store: Arc<SqliteStore>,
        file: ScanPolicy,
        protected: Vec<String>,
        pipeline: Option<Arc<Pipeline>>,
    ) -> Result<Arc<Self>, SaveError> {
        migrate(&store, &file).await?;
        let last_file = sqlx::query(
            "SELECT policy, parts FROM policy_versions WHERE source = 'file' ORDER BY version DESC LIMIT 1",
        )
        .fetch_optional(store.reader())
        .await
        .map_err(StoreError::from)?
        .map(|r| join(r.get::<String, _>(0), r.get::<Option<String>, _>(1)))
        .transpose()?;
        if last_file.as_ref() != Some(&file) {
            insert(&store, FILE_AUTHOR, Source::File, "", &file).await?;
        }
        let newest = latest(&store)
            .await?
            .ok_or_else(|| StoreError::Corrupt("no policy version".into()))?;
        let mut current = newest.clone();
        if let Err(e) = current.policy.check(&protected) {
            tracing::warn!(version = newest.summary.version, error = %e,
                "the newest policy version no longer fits the configuration: the file's policy is in force");
            current.policy = file.clone();
        }
        if current.policy != file
            && let Some(p) = &pipeline
        {
            // Points for a symbol that left the rule files are dropped, not the whole version.
            let known: std::collections::BTreeSet<String> =
                p.symbols().into_iter().map(|s| s.name).collect();
            let before = current.policy.scores.len();
            current.policy.scores.retain(|name, _| known.contains(name));
            if current.policy.scores.len() != before {
                tracing::warn!(
                    version = newest.summary.version,
                    "points for symbols no rule emits any more are not in force"
                );
            }
            if let Err(e) = p.set_policy(&current.policy) {
                tracing::warn!(version = newest.summary.version, error = %e,
                    "the newest policy version does not fit the rules in force: the file's policy is in force");
                current.policy = file.clone();
            }
        }
        tracing::info!(
            version = current.summary.version,
            "detection policy in force"
        );
        let own = OwnListBook::open(store.clone(), protected.clone(), pipeline.clone()).await?;
        Ok(Arc::new(Self {
            store,
            protected,
            pipeline,
            current: Mutex::new(current),
            own,
        }))
    }

    /// Recipients' own allow and block lists, in force beside the versioned policy.
    pub fn own_lists(&self) -> &OwnListBook {
        &self.own
    }

    /// The symbols whose points the policy may set (none without a pipeline).
    pub fn symbols(&self) -> Vec<jianmen_scan::pipeline::SymbolRow> {
        self.pipeline
            .as_ref()
            .map(|p| p.symbols())
            .unwrap_or_default()
    }

    /// The version in force.
    pub async fn current(&self) -> Version {
        self.current.lock().await.clone()
    }

    /// Saves `policy` as a new version built on version `base` and puts it in force.
    pub async fn save(
        &self,
        author: &str,
        comment: &str,
        base: i64,
        policy: ScanPolicy,
    ) -> Result<(Version, Vec<Change>), SaveError> {
        let mut current = self.current.lock().await;
        if base != current.summary.version {
            return Err(SaveError::Conflict(current.summary.version));
        }
        self.put_in_force(&mut current, author, comment, policy)
            .await
    }

    /// Saves the version in force changed by `change` (one entry added from a quarantined
    /// item, say): no editor loaded it, so there is nothing to conflict with.
    pub async fn amend(
        &self,
        author: &str,
        comment: &str,
        change: impl FnOnce(&mut ScanPolicy),
    ) -> Result<(Version, Vec<Change>), SaveError> {
        let mut current = self.current.lock().await;
        let mut policy = current.policy.clone();
        change(&mut policy);
        self.put_in_force(&mut current, author, comment, policy)
            .await
    }

    async fn put_in_force(
        &self,
        current: &mut Version,
        author: &str,
        comment: &str,
        policy: ScanPolicy,
    ) -> Result<(Version, Vec<Change>), SaveError> {
        // Compiling lists and DLP patterns is CPU work: off the threads that serve sessions.
        let protected = self.protected.clone();
        let policy = blocking(move || {
            let mut policy = policy;
            policy.check(&protected).map(|()| policy)
        })
        .await??;
        if policy == current.policy {
            return Err(SaveError::Unchanged);
        }
        if policy.dlp != current.policy.dlp {
            console_bounds(&policy.dlp)?;
        }
        if self.pipeline.is_none() && policy.dlp != current.policy.dlp {
            // Nothing would judge outgoing mail by them: saved, they would only seem in force.
            return Err(PolicyError {
                key: "dlp".into(),
                why: "no scanner runs on this gateway (scan.enabled = false and no [dlp] policy \
                      in the file): DLP policies set here would not be in force"
                    .into(),
            }
            .into());
        }
        if let Some(p) = self.pipeline.clone() {
            let candidate = policy.clone();
            blocking(move || p.set_policy(&candidate))
                .await?
                .map_err(|e| match e {
                    jianmen_scan::pipeline::PipelineError::UnknownSymbol(name) => PolicyError {
                        key: format!("scan.scores.{name}"),
                        why: "no rule or check has this symbol".into(),
                    },
                    e => PolicyError {
                        key: "scan".into(),
                        why: e.to_string(),
                    },
                })?;
        }
        let saved = insert(&self.store, author, Source::Console, comment, &policy).await;
        let saved = match saved {
            Ok(v) => v,
            Err(e) => {
                // Not recorded, so not in force either.
                if let Some(p) = &self.pipeline {
                    let _ = p.set_policy(&current.policy);
                }
                return Err(e.into());
            }
        };
        let changes = changes(&current.policy, &saved.policy);
        *current = saved.clone();
        Ok((saved, changes))
    }

    /// Saves version `number`'s policy again, as the newest version.
    pub async fn restore(
        &self,
        author: &str,
        number: i64,
    ) -> Result<(Version, Vec<Change>), SaveError> {
        let old = self
            .version(number)
            .await?
            .ok_or(SaveError::Unknown(number))?;
        let base = self.current.lock().await.summary.version;
        self.save(
            author,
            &format!("roll back to version {number}"),
            base,
            old.policy,
        )
        .await
    }

    /// The newest versions first, at most `limit`.
    pub async fn versions(&self, limit: u32) -> Result<Vec<Summary>, StoreError> {
        let rows = sqlx::query(
            "SELECT version, created_at, author, source, comment FROM policy_versions
             ORDER BY version DESC LIMIT ?",
        )
        .bind(limit)
        .fetch_all(self.store.reader())
        .await?;
        rows.iter().map(summary).collect()
    }

    /// One version, with what changed from the one before it.
    pub async fn version(&self, number: i64) -> Result<Option<Version>, StoreError> {
        let row = sqlx::query(
            "SELECT version, created_at, author, source, comment, policy, parts FROM policy_versions
             WHERE version = ?",
        )
        .bind(number)
        .fetch_optional(self.store.reader())
        .await?;
        row.map(|r| version(&r)).transpose()
    }

    /// What changed from the version before `number` to it.
    pub async fn changes_of(&self, number: i64) -> Result<Option<Vec<Change>>, StoreError> {
        let Some(this) = self.version(number).await? else {
            return Ok(None);
        };
        let before = sqlx::query(
            "SELECT version, created_at, author, source, comment, policy, parts FROM policy_versions
             WHERE version < ? ORDER BY version DESC LIMIT 1",
        )
        .bind(number)
        .fetch_optional(self.store.reader())
        .await?
        .map(|r| version(&r))
        .transpose()?
        .map(|v| v.policy)
        .unwrap_or_default();
        Ok(Some(changes(&before, &this.policy)))
    }
}

/// Runs `work` on the blocking threads.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, PolicyError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| PolicyError {
            key: "scan".into(),
            why: format!("the check stopped: {e}"),
        })
}

/// What the console may set of DLP policies: each message is matched against all of them.
fn console_bounds(dlp: &[jianmen_scan::dlp::policy::PolicyConfig]) -> Result<(), PolicyError> {
    use jianmen_scan::dlp::policy::{MAX_ALL_PATTERNS, MAX_POLICIES};
    let patterns: usize = dlp.iter().map(|p| p.patterns.len()).sum();
    let why = if dlp.len() > MAX_POLICIES {
        format!("at most {MAX_POLICIES} policies")
    } else if patterns > MAX_ALL_PATTERNS {
        format!("at most {MAX_ALL_PATTERNS} patterns in all policies")
    } else {
        return Ok(());
    };
    Err(PolicyError {
        key: "dlp.policy".into(),
        why,
    })
}

/// The parts of a version kept in the `parts` column, apart from the rest: a release from
/// before they were edited here reads the `policy` column alone, and still can after a
/// roll-back to it.
const PARTS: [&str; 2] = ["attachments", "dlp"];

/// A version as stored: the `policy` column and the `parts` column.
fn split(policy: &ScanPolicy) -> Result<(String, String), StoreError> {
    let corrupt = |e: serde_json::Error| StoreError::Corrupt(e.to_string());
    let mut rest = serde_json::to_value(policy).map_err(corrupt)?;
    let mut parts = serde_json::Map::new();
    if let Value::Object(fields) = &mut rest {
        for key in PARTS {
            if let Some(v) = fields.remove(key) {
                parts.insert(key.to_owned(), v);
            }
        }
    }
    Ok((rest.to_string(), Value::Object(parts).to_string()))
}

/// A stored version read back. `parts` is absent only in rows a release from before wrote,
/// which [`PolicyBook::open`] fills in first.
fn join(rest: String, parts: Option<String>) -> Result<ScanPolicy, StoreError> {
    let corrupt = |e: serde_json::Error| StoreError::Corrupt(format!("policy version: {e}"));
    let mut value: Value = serde_json::from_str(&rest).map_err(corrupt)?;
    if let (Value::Object(fields), Some(parts)) = (&mut value, parts) {
        let parts: serde_json::Map<String, Value> =
            serde_json::from_str(&parts).map_err(corrupt)?;
        for (key, v) in parts {
            if PARTS.contains(&key.as_str()) {
                fields.insert(key, v);
            }
        }
    }
    serde_json::from_value(value).map_err(corrupt)
}

/// Gives the table its `parts` column, and rows written before it (by an older release) the
/// file's refused types and DLP policies — what was in force when they were written, as those
/// releases read them from the file. Done once per row, so a later change to the file is one.
async fn migrate(store: &SqliteStore, file: &ScanPolicy) -> Result<(), StoreError> {
    let has_parts =
        sqlx::query("SELECT 1 FROM pragma_table_info('policy_versions') WHERE name = 'parts'")
            .fetch_optional(store.reader())
            .await?
            .is_some();
    if !has_parts {
        sqlx::query("ALTER TABLE policy_versions ADD COLUMN parts TEXT")
            .execute(store.writer())
            .await?;
    }
    let (_, parts) = split(file)?;
    sqlx::query("UPDATE policy_versions SET parts = ? WHERE parts IS NULL")
        .bind(parts)
        .execute(store.writer())
        .await?;
    Ok(())
}

fn summary(r: &sqlx::sqlite::SqliteRow) -> Result<Summary, StoreError> {
    Ok(Summary {
        version: r.get(0),
        created_at: r.get(1),
        author: r.get(2),
        source: match r.get::<String, _>(3).as_str() {
            "file" => Source::File,
            "console" => Source::Console,
            other => return Err(StoreError::Corrupt(format!("policy source `{other}`"))),
        },
        comment: r.get(4),
    })
}

fn version(r: &sqlx::sqlite::SqliteRow) -> Result<Version, StoreError> {
    Ok(Version {
        summary: summary(r)?,
        policy: join(r.get(5), r.get(6))?,
    })
}

async fn latest(store: &SqliteStore) -> Result<Option<Version>, StoreError> {
    let row = sqlx::query(
        "SELECT version, created_at, author, source, comment, policy, parts FROM policy_versions
         ORDER BY version DESC LIMIT 1",
    )
    .fetch_optional(store.reader())
    .await?;
    row.map(|r| version(&r)).transpose()
}

async fn insert(
    store: &SqliteStore,
    author: &str,
    source: Source,
    comment: &str,
    policy: &ScanPolicy,
) -> Result<Version, StoreError> {
    let (json, parts) = split(policy)?;
    let created_at = unix_now();
    let version: i64 = sqlx::query(
        "INSERT INTO policy_versions (created_at, author, source, comment, policy, parts)
         VALUES (?, ?, ?, ?, ?, ?) RETURNING version",
    )
    .bind(created_at)
    .bind(author)
    .bind(source.as_str())
    .bind(comment)
    .bind(json)
    .bind(parts)
    .fetch_one(store.writer())
    .await?
    .get(0);
    // The newest versions are kept, and the file's newest (what tells a changed file).
    sqlx::query(
        "DELETE FROM policy_versions WHERE version <= ? AND version !=
           (SELECT MAX(version) FROM policy_versions WHERE source = 'file')",
    )
    .bind(version - KEPT)
    .execute(store.writer())
    .await?;
    Ok(Version {
        summary: Summary {
            version,
            created_at,
            author: author.to_owned(),
            source,
            comment: comment.to_owned(),
        },
        policy: policy.clone(),
    })
}

/// The differences from `before` to `after`, setting by setting and list entry by entry.
pub fn changes(before: &ScanPolicy, after: &ScanPolicy) -> Vec<Change> {
    let flat = |p: &ScanPolicy| {
        let mut out = BTreeMap::new();
        flatten(
            &serde_json::to_value(p).unwrap_or(Value::Null),
            "",
            &mut out,
        );
        out
    };
    let (mut a, b) = (flat(before), flat(after));
    let mut out = Vec::new();
    for (key, after) in b {
        let before = a.remove(&key);
        if before.as_ref() != Some(&after) {
            out.push(Change {
                key,
                before,
                after: Some(after),
            });
        }
    }
    out.extend(a.into_iter().map(|(key, before)| Change {
        key,
        before: Some(before),
        after: None,
    }));
    out.sort_by(|x, y| x.key.cmp(&y.key));
    out
}

/// Settings as `a.b.c = value`; list entries as `list ∋ entry = ✓`; per-domain policies keyed
/// by their domain and DLP policies by their name, so removing one does not shift the others.
fn flatten(v: &Value, key: &str, out: &mut BTreeMap<String, String>) {
    let join = |k: &str| {
        if key.is_empty() {
            k.to_owned()
        } else {
            format!("{key}.{k}")
        }
    };
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                flatten(x, &join(k), out);
            }
        }
        Value::Array(items) => {
            for (i, x) in items.iter().enumerate() {
                match x {
                    Value::String(s) => {
                        out.insert(format!("{key} ∋ {s}"), "✓".to_owned());
                    }
                    Value::Object(o) => {
                        let id = o
                            .get("domain")
                            .or_else(|| o.get("name"))
                            .and_then(Value::as_str)
                            .map_or_else(|| i.to_string(), str::to_owned);
                        flatten(x, &format!("{key}[{id}]"), out);
                    }
                    other => flatten(other, &format!("{key}[{i}]"), out),
                }
            }
        }
        Value::Null => {}
        Value::String(s) => {
            out.insert(key.to_owned(), s.clone());
        }
        other => {
            out.insert(key.to_owned(), other.to_string());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jianmen_scan::config::{Action, DomainPolicy};
    use jianmen_scan::dlp::DlpAction;

    async fn book(dir: &std::path::Path, file: ScanPolicy) -> Arc<PolicyBook> {
        let store = Arc::new(SqliteStore::open(&dir.join("q.db")).await.unwrap());
        PolicyBook::open(store, file, vec!["example.com".into()], None)
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn versions_are_kept_checked_and_rolled_back() {
        let dir = tempfile::tempdir().unwrap();
        let b = book(dir.path(), ScanPolicy::default()).await;
        assert_eq!(b.current().await.summary.version, 1);
        assert_eq!(b.current().await.summary.source, Source::File);

        let mut p = ScanPolicy::default();
        p.actions.spam = Action::Quarantine;
        p.block.push("bad@spam.test".into());
        let (v2, changes) = b.save("alice", "hold spam", 1, p.clone()).await.unwrap();
        assert_eq!(v2.summary.version, 2);
        assert_eq!(
            changes,
            [
                Change {
                    key: "actions.spam".into(),
                    before: Some("tag".into()),
                    after: Some("quarantine".into())
                },
                Change {
                    key: "block ∋ bad@spam.test".into(),
                    before: None,
                    after: Some("✓".into())
                },
            ]
        );
        // Built on an old version, unchanged, or wrong: refused, nothing saved.
        assert!(matches!(
            b.save("bob", "", 1, ScanPolicy::default()).await,
            Err(SaveError::Conflict(2))
        ));
        assert!(matches!(
            b.save("bob", "", 2, p.clone()).await,
            Err(SaveError::Unchanged)
        ));
        let mut wrong = p.clone();
        wrong.thresholds.spam_high = 1.0;
        assert!(matches!(
            b.save("bob", "", 2, wrong).await,
            Err(SaveError::Invalid(_))
        ));
        let mut foreign = p.clone();
        foreign.domains.push(DomainPolicy {
            domain: "Other.TEST".into(),
            actions: None,
            thresholds: None,
            allow: vec![],
            block: vec![],
        });
        let e = b.save("bob", "", 2, foreign).await.unwrap_err();
        assert!(
            e.to_string()
                .contains("`other.test` is not a protected domain"),
            "{e}"
        );
        let mut bad_entry = p.clone();
        bad_entry.allow.push("not an address!".into());
        assert!(matches!(
            b.save("bob", "", 2, bad_entry).await,
            Err(SaveError::Invalid(_))
        ));

        let (v3, back) = b.restore("carol", 1).await.unwrap();
        assert_eq!(v3.policy, ScanPolicy::default());
        assert_eq!(back.len(), 2);
        assert_eq!(b.versions(10).await.unwrap().len(), 3);
        assert_eq!(b.changes_of(2).await.unwrap().unwrap().len(), 2);
        assert!(b.changes_of(9).await.unwrap().is_none());

        // A restart with the same file keeps the console's newest version in force; a
        // changed file is recorded and wins.
        drop(b);
        let b = book(dir.path(), ScanPolicy::default()).await;
        assert_eq!(b.current().await.summary.version, 3);
        let mut edited = ScanPolicy::default();
        edited.thresholds.spam = 5.0;
        drop(b);
        let b = book(dir.path(), edited.clone()).await;
        let now = b.current().await;
        assert_eq!((now.summary.version, now.summary.source), (4, Source::File));
        assert_eq!(now.policy, edited);
    }

    #[tokio::test]
    async fn old_versions_go_but_the_files_newest_stays() {
        let dir = tempfile::tempdir().unwrap();
        let b = book(dir.path(), ScanPolicy::default()).await;
        for i in 0..KEPT + 5 {
            let mut p = ScanPolicy::default();
            p.thresholds.spam = 1.0 + i as f64 / 1000.0;
            let base = b.current().await.summary.version;
            b.save("alice", "", base, p).await.unwrap();
        }
        let listed = b.versions(1000).await.unwrap();
        assert_eq!(listed.len() as i64, KEPT + 1, "the newest and the file's");
        assert_eq!(
            listed.last().map(|v| (v.version, v.source)),
            Some((1, Source::File))
        );
        // A restart with the same file keeps the console's newest in force.
        drop(b);
        let b = book(dir.path(), ScanPolicy::default()).await;
        assert_eq!(b.current().await.summary.version, KEPT + 6);
    }

    /// An outbound DLP policy firing on five resident ID numbers or the word 机密.
    fn dlp(name: &str, action: DlpAction) -> jianmen_scan::dlp::policy::PolicyConfig {
        jianmen_scan::dlp::policy::PolicyConfig {
            name: name.into(),
            directions: vec![jianmen_scan::Direction::Outbound],
            senders: vec![],
            recipient_domains: vec![],
            detect: BTreeMap::from([("resident_id".to_owned(), 5)]),
            keywords: vec!["机密".into()],
            min_keywords: 1,
            patterns: vec![],
            min_patterns: 1,
            extensions: vec![],
            max_attachment_mib: None,
            encrypted: false,
            uninspectable: false,
            action,
            approval_hours: 72,
        }
    }

    /// DLP policies are versioned with the rest, their changes keyed by name; without a
    /// pipeline to put them in force they are refused rather than saved for nothing.
    #[tokio::test]
    async fn dlp_policies_and_refused_types_are_versioned_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let b = book(dir.path(), ScanPolicy::default()).await;
        let before = ScanPolicy {
            dlp: vec![dlp("a", DlpAction::Log), dlp("b", DlpAction::Hold)],
            ..Default::default()
        };
        let after = ScanPolicy {
            dlp: vec![dlp("b", DlpAction::Block)],
            attachments: jianmen_scan::config::AttachmentPolicy {
                blocked: vec![".ISO".into()],
            },
            ..Default::default()
        };
        let c = changes(&before, &after);
        assert!(
            c.iter().any(|c| c.key == "dlp[b].action"
                && c.before.as_deref() == Some("hold")
                && c.after.as_deref() == Some("block")),
            "{c:?}"
        );
        assert!(
            c.iter()
                .filter(|c| c.key.starts_with("dlp[a]"))
                .all(|c| c.after.is_none())
        );
        assert!(c.iter().any(|c| c.key == "dlp[a].keywords ∋ 机密"));
        let e = b.save("alice", "", 1, after.clone()).await.unwrap_err();
        assert!(e.to_string().contains("no scanner runs"), "{e}");
        let mut no_dlp = after.clone();
        no_dlp.dlp.clear();
        let (v, c) = b.save("alice", "", 1, no_dlp).await.unwrap();
        assert_eq!(
            v.policy.attachments.blocked,
            ["iso"],
            "checked and normalised"
        );
        assert_eq!(c[0].key, "attachments.blocked ∋ iso");
        let mut wrong = v.policy.clone();
        wrong.dlp.push(dlp("", DlpAction::Log));
        assert!(matches!(
            b.save("alice", "", 2, wrong).await,
            Err(SaveError::Invalid(PolicyError { key, .. })) if key == "dlp.policy[#1]"
        ));
    }

    /// A version saved before file types and DLP policies were edited here takes the file's:
    /// an upgrade keeps the console's newest version in force, DLP policies included.
    #[tokio::test]
    async fn versions_from_before_dlp_was_editable_keep_the_files_dlp() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(SqliteStore::open(&dir.path().join("q.db")).await.unwrap());
        for (source, spam) in [("file", 6.0), ("console", 7.0)] {
            let mut old = serde_json::to_value(ScanPolicy::default()).unwrap();
            let fields = old.as_object_mut().unwrap();
            fields.remove("dlp");
            fields.remove("attachments");
            fields["thresholds"]["spam"] = spam.into();
            sqlx::query(
                "INSERT INTO policy_versions (created_at, author, source, comment, policy)
                 VALUES (1, 'x', ?, '', ?)",
            )
            .bind(source)
            .bind(old.to_string())
            .execute(store.writer())
            .await
            .unwrap();
        }
        let mut file = ScanPolicy::default();
        file.attachments.blocked = vec!["exe".into()];
        file.dlp.push(dlp("密级", DlpAction::Block));
        let b = book(dir.path(), file.clone()).await;
        let now = b.current().await;
        assert_eq!(now.summary.version, 2, "no new file version");
        assert_eq!(now.policy.thresholds.spam, 7.0);
        assert_eq!(
            (&now.policy.dlp, &now.policy.attachments),
            (&file.dlp, &file.attachments)
        );
        // The old rows keep what they were given: a later change to the file's DLP policies
        // is a new version, in force.
        drop(b);
        let mut edited = file.clone();
        edited.dlp[0].action = DlpAction::Hold;
        let b = book(dir.path(), edited.clone()).await;
        let now = b.current().await;
        assert_eq!((now.summary.version, now.summary.source), (3, Source::File));
        assert_eq!(now.policy.dlp, edited.dlp);
        assert_eq!(b.version(1).await.unwrap().unwrap().policy.dlp, file.dlp);
        // What an older release reads, the policy column, holds no part it does not know.
        let rest: String = sqlx::query("SELECT policy FROM policy_versions WHERE version = 3")
            .fetch_one(store.reader())
            .await
            .unwrap()
            .get(0);
        assert!(
            !rest.contains("dlp") && !rest.contains("attachments"),
            "{rest}"
        );
    }

    #[test]
    fn domain_policies_differ_by_domain_not_position() {
        let d = |name: &str, phish| DomainPolicy {
            domain: name.into(),
            actions: Some(jianmen_scan::config::Actions {
                phish,
                ..Default::default()
            }),
            thresholds: None,
            allow: vec![],
            block: vec![],
        };
        let before = ScanPolicy {
            domains: vec![d("a.test", Action::Quarantine), d("b.test", Action::Reject)],
            ..Default::default()
        };
        let after = ScanPolicy {
            domains: vec![d("b.test", Action::Reject)],
            ..Default::default()
        };
        let c = changes(&before, &after);
        assert!(
            c.iter().all(|c| c.key.starts_with("domains[a.test]")),
            "{c:?}"
        );
        assert!(c.iter().all(|c| c.after.is_none()));
    }
}
