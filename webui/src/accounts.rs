//! Console accounts under 等保 2.0 rules: three built-in roles that no account can combine
//! (an account has exactly one [`Role`]), argon2id password hashes, complexity rules, lockout
//! after repeated failures, forced change of generated passwords, and sessions that end when
//! idle. Session tokens are stored only as SHA-256 digests.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use base64::Engine;
use ring::rand::{SecureRandom, SystemRandom};
use serde::{Deserialize, Serialize};
use sqlx::Row;

use jianmen_mta::config::ConsoleConfig;
use jianmen_mta::store::{Serialised, SharedDb, Store};

/// What an account may do; one per account (三权分立).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// 系统管理员: system settings, queue, accounts.
    System,
    /// 安全管理员: policies, quarantine, message tracking.
    Security,
    /// 审计管理员: reads and exports the audit log, nothing else.
    Audit,
}

impl Role {
    /// Lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::System => "system",
            Role::Security => "security",
            Role::Audit => "audit",
        }
    }

    /// The role a name denotes.
    pub fn parse(s: &str) -> Option<Role> {
        [Role::System, Role::Security, Role::Audit]
            .into_iter()
            .find(|r| r.as_str() == s)
    }
}

/// Why an account action failed.
#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    /// Wrong name or password (deliberately not saying which).
    #[error("wrong user name or password")]
    BadCredentials,
    /// Too many failures; try again after this Unix time. Sign-in answers it like
    /// [`AccountError::BadCredentials`]; the audit log tells them apart.
    #[error("account locked until {}", utc(*.0))]
    Locked(i64),
    /// The password was right and the account has a second factor: the one-time code is
    /// needed (a wrong or used one counts as a failed sign-in).
    #[error("enter the one-time code of your authenticator app")]
    CodeNeeded,
    /// Too many failed sign-ins from this source address lately.
    #[error("too many failed sign-ins from this address; try again later")]
    TooManyAttempts,
    /// Every password check slot stayed busy: try again shortly.
    #[error("too many sign-ins at once; try again shortly")]
    Busy,
    /// The login comes from an address outside the allow-list.
    #[error("logins are not allowed from this address")]
    SourceNotAllowed,
    /// The new password breaks a rule.
    #[error("password rejected: {0}")]
    WeakPassword(String),
    /// A field is not acceptable.
    #[error("{field}: {reason}")]
    Invalid {
        /// The field.
        field: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// No such account.
    #[error("no account {0}")]
    NotFound(String),
    /// The name is taken.
    #[error("account {0} exists")]
    Exists(String),
    /// The acting account may not manage accounts of that role (see [`may_manage`]).
    #[error(
        "{0} accounts are managed at the appliance (jianmen account), not by this console role"
    )]
    NotYours(&'static str),
    /// Deleting the account would leave its role without anyone to fill it.
    #[error("{0} is the last {1} administrator; create another one first")]
    LastOfRole(String, &'static str),
    /// The database failed.
    #[error("account database: {0}")]
    Store(#[from] sqlx::Error),
    /// Hashing failed.
    #[error("password hashing: {0}")]
    Hash(String),
}

/// An account as shown to administrators (never the hash).
#[derive(Debug, Clone, Serialize)]
pub struct Account {
    /// Login name.
    pub name: String,
    /// Its one role.
    pub role: Role,
    /// For a per-domain administrator, the one domain it may see.
    pub domain: Option<String>,
    /// The password was generated or reset and must be changed at next login.
    pub must_change: bool,
    /// Locked until this Unix time (0: not locked).
    pub locked_until: i64,
    /// Consecutive failed logins.
    pub failures: i64,
    /// Unix time of creation.
    pub created_at: i64,
    /// Unix time of the last successful login.
    pub last_login: Option<i64>,
    /// Signing in needs a one-time code (TOTP, RFC 6238) besides the password.
    pub totp: bool,
}

/// A signed-in session, as a request sees it.
#[derive(Debug, Clone, Serialize)]
pub struct Session {
    /// The account.
    pub account: Account,
    /// Token the client must echo in `X-CSRF-Token` on every state change.
    pub csrf: String,
}

/// A new session: the cookie value (shown once) and the session.
#[derive(Debug, Clone)]
pub struct NewSession {
    /// Cookie value.
    pub token: String,
    /// The session.
    pub session: Session,
}

/// The account database (`data_dir/console.db`, or the cluster's).
#[derive(Clone)]
pub struct Accounts {
    db: SharedDb,
    rules: ConsoleConfig,
    /// Shared by every clone: one serialisation and one count per account store.
    attempts: Arc<Attempts>,
}

/// How long a password check waits for a free slot before the request is answered as busy.
const PASSWORD_QUEUE_WAIT: Duration = Duration::from_secs(10);
/// Stripes of account names: sign-ins for names of one stripe run one at a time, so parallel
/// attempts cannot race the lockout, and the table of locks never grows.
const NAME_STRIPES: usize = 64;
/// Failed sign-ins one source address may make within [`SOURCE_WINDOW_SECS`] before it is
/// refused without a password check.
pub const SOURCE_FAILURES: u32 = 30;
/// The window of [`SOURCE_FAILURES`], seconds.
pub const SOURCE_WINDOW_SECS: i64 = 600;
/// Most source addresses remembered at once.
const MAX_SOURCES: usize = 4096;

/// Password hashes and checks running at once, process-wide: one per core. Each argon2id
/// run holds about 19 MiB, so this bounds the memory sign-in floods can take, too.
static PASSWORD_SLOTS: LazyLock<Arc<tokio::sync::Semaphore>> = LazyLock::new(|| {
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    Arc::new(tokio::sync::Semaphore::new(cores))
});

/// Who is signing in how often: per-name turns and per-source failure counts.
struct Attempts {
    stripes: Vec<tokio::sync::Mutex<()>>,
    /// Source address → (failures in the window, window start).
    sources: Mutex<HashMap<String, (u32, i64)>>,
    /// Passwords checked at sign-in (the costly part a flood of sign-ins spends).
    checked: AtomicU64,
}

impl Attempts {
    fn new() -> Self {
        Self {
            stripes: (0..NAME_STRIPES)
                .map(|_| tokio::sync::Mutex::new(()))
                .collect(),
            sources: Mutex::new(HashMap::new()),
            checked: AtomicU64::new(0),
        }
    }

    /// The lock whose holder may sign in as `name` (FNV-1a over the name picks the stripe).
    fn turn(&self, name: &str) -> &tokio::sync::Mutex<()> {
        let h = jianmen_scan::fnv::fnv1a(name.bytes());
        &self.stripes[(h % NAME_STRIPES as u64) as usize]
    }

    /// Whether `ip` has used up its failures in the current window.
    fn source_blocked(&self, ip: &str, now: i64) -> bool {
        let Ok(sources) = self.sources.lock() else {
            return true;
        };
        sources
            .get(ip)
            .is_some_and(|&(n, since)| n >= SOURCE_FAILURES && now - since < SOURCE_WINDOW_SECS)
    }

    /// Takes back one failure counted for `ip` (an attempt counted before it was checked that
    /// turned out right).
    fn refund(&self, ip: &str) {
        if let Ok(mut sources) = self.sources.lock()
            && let Some(entry) = sources.get_mut(ip)
        {
            entry.0 = entry.0.saturating_sub(1);
        }
    }

    /// Counts a failed sign-in from `ip`.
    fn failed(&self, ip: &str, now: i64) {
        let Ok(mut sources) = self.sources.lock() else {
            return;
        };
        if sources.len() >= MAX_SOURCES && !sources.contains_key(ip) {
            sources.retain(|_, &mut (_, since)| now - since < SOURCE_WINDOW_SECS);
            if sources.len() >= MAX_SOURCES {
                // Thousands of addresses failing at once: the per-name turns, the lockout and
                // the password slots still bound what they can do.
                return;
            }
        }
        let entry = sources.entry(ip.to_owned()).or_insert((0, now));
        if now - entry.1 >= SOURCE_WINDOW_SECS {
            *entry = (0, now);
        }
        entry.0 += 1;
    }
}

const SCHEMA: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS accounts (
        name TEXT PRIMARY KEY,
        role TEXT NOT NULL,
        domain TEXT,
        hash TEXT NOT NULL,
        must_change INTEGER NOT NULL,
        failures INTEGER NOT NULL DEFAULT 0,
        locked_until INTEGER NOT NULL DEFAULT 0,
        created_at INTEGER NOT NULL,
        last_login INTEGER
    )",
    "CREATE TABLE IF NOT EXISTS sessions (
        token_hash TEXT PRIMARY KEY,
        name TEXT NOT NULL REFERENCES accounts(name) ON DELETE CASCADE,
        csrf TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        last_seen INTEGER NOT NULL,
        ip TEXT NOT NULL
    )",
];

fn random_token(bytes: usize) -> Result<String, AccountError> {
    let mut buf = vec![0u8; bytes];
    SystemRandom::new()
        .fill(&mut buf)
        .map_err(|_| AccountError::Hash("no randomness".into()))?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(buf))
}

fn digest(token: &str) -> String {
    let d = ring::digest::digest(&ring::digest::SHA256, token.as_bytes());
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(d.as_ref())
}

/// Whether `name` can be a login name: 2–32 of `a-z 0-9 . _ -`, starting with a letter.
pub fn valid_name(name: &str) -> bool {
    (2..=32).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
}

/// Checks the complexity rules: length, three of four character classes, not the name.
pub fn check_password(name: &str, password: &str, min_len: usize) -> Result<(), AccountError> {
    let weak = |why: &str| Err(AccountError::WeakPassword(why.to_owned()));
    if password.chars().count() < min_len {
        return weak(&format!("at least {min_len} characters"));
    }
    if password.len() > 256 {
        return weak("at most 256 bytes");
    }
    let classes = [
        password.chars().any(|c| c.is_ascii_lowercase()),
        password.chars().any(|c| c.is_ascii_uppercase()),
        password.chars().any(|c| c.is_ascii_digit()),
        password.chars().any(|c| !c.is_ascii_alphanumeric()),
    ];
    if classes.iter().filter(|c| **c).count() < 3 {
        return weak("use three of: lower case, upper case, digits, symbols");
    }
    if password.to_lowercase().contains(&name.to_lowercase()) {
        return weak("must not contain the user name");
    }
    Ok(())
}

fn hash(password: &str) -> Result<String, AccountError> {
    let mut salt = [0u8; 16];
    SystemRandom::new()
        .fill(&mut salt)
        .map_err(|_| AccountError::Hash("no randomness".into()))?;
    let salt = SaltString::encode_b64(&salt).map_err(|e| AccountError::Hash(e.to_string()))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| AccountError::Hash(e.to_string()))
}

fn verify(password: &str, stored: &str) -> bool {
    PasswordHash::new(stored)
        .map(|h| {
            Argon2::default()
                .verify_password(password.as_bytes(), &h)
                .is_ok()
        })
        .unwrap_or(false)
}

/// Runs argon2 (tens of milliseconds, ~19 MiB) off the async threads, in one of the
/// process-wide password slots; the slot is held until the work ends, even when the request
/// that asked for it has gone.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, AccountError> {
    let slot = tokio::time::timeout(PASSWORD_QUEUE_WAIT, PASSWORD_SLOTS.clone().acquire_owned())
        .await
        .map_err(|_| AccountError::Busy)?
        .map_err(|_| AccountError::Busy)?;
    tokio::task::spawn_blocking(move || {
        let out = f();
        drop(slot);
        out
    })
    .await
    .map_err(|e| AccountError::Hash(e.to_string()))
}

/// A generated password that passes the rules (shown once, must be changed at first login).
fn generated_password(name: &str, min_len: usize) -> Result<String, AccountError> {
    loop {
        let candidate = format!("{}-9a", random_token(12)?);
        if check_password(name, &candidate, min_len).is_ok() {
            return Ok(candidate);
        }
    }
}

fn account(row: &sqlx::any::AnyRow) -> Result<Account, AccountError> {
    let role: String = row.try_get("role")?;
    Ok(Account {
        name: row.try_get("name")?,
        role: Role::parse(&role).ok_or(AccountError::Invalid {
            field: "role",
            reason: format!("unknown role {role} in the database"),
        })?,
        domain: row.try_get("domain")?,
        must_change: row.try_get::<i64, _>("must_change")? != 0,
        locked_until: row.try_get("locked_until")?,
        failures: row.try_get("failures")?,
        created_at: row.try_get("created_at")?,
        last_login: row.try_get("last_login")?,
        totp: row.try_get::<i64, _>("totp")? != 0,
    })
}

/// A Unix time as the audit log words it.
fn utc(t: i64) -> String {
    chrono::DateTime::from_timestamp(t, 0).map_or_else(
        || t.to_string(),
        |d| d.format("%Y-%m-%d %H:%M:%S UTC").to_string(),
    )
}

/// The one-time code generator of a secret: RFC 6238's defaults (HMAC-SHA-1, 6 digits, 30 s),
/// which every authenticator app reads, and one step of clock skew either way.
fn totp(secret: &[u8]) -> Result<totp_rs::Totp, AccountError> {
    totp_rs::Builder::new()
        .with_secret(secret.to_vec())
        .build()
        .map_err(|e| AccountError::Hash(format!("one-time code: {e}")))
}

/// The step `code` is valid for at `now`, if it is one of `secret_b32`'s.
fn code_step(secret_b32: &str, code: &str, now: i64) -> Result<Option<i64>, AccountError> {
    let secret = totp_rs::Secret::try_from_base32(secret_b32)
        .map_err(|e| AccountError::Hash(format!("one-time code secret: {e:?}")))?;
    let step = totp(secret.as_ref())?.check(code.trim(), u64::try_from(now).unwrap_or(0));
    Ok(step.and_then(|s| i64::try_from(s).ok()))
}

/// Whether `actor` may create, reset, unlock or delete, from the console, an account of
/// `role` (for `domain`, a per-domain administrator): the system administrator the system
/// administrators, a security administrator of every domain its per-domain delegates. Security
/// and audit administrators are made and reset only at the appliance (`jianmen account`, as
/// root), so no console role can create, or learn the password of, an account that checks it
/// (三权分立).
pub fn may_manage(actor: &Account, role: Role, domain: Option<&str>) -> bool {
    matches!(
        (actor.role, actor.domain.as_deref(), role, domain),
        (Role::System, None, Role::System, None) | (Role::Security, None, Role::Security, Some(_))
    )
}

/// The name a person reads for an account of `role` (for `domain`).
fn kind(role: Role, domain: Option<&str>) -> &'static str {
    match (role, domain) {
        (Role::Security, Some(_)) => "per-domain administrator",
        (Role::System, _) => "system administrator",
        (Role::Security, None) => "security administrator",
        (Role::Audit, _) => "audit administrator",
    }
}

/// The console database's tables that are settings (a backup carries them): the accounts, with
/// their password hashes and second factors; sessions are not, so a restore signs everyone out.
pub const SETTINGS: &[&str] = &["accounts"];

/// The console database, in the data directory.
pub const DATABASE: &str = "console.db";

const ACCOUNT_COLUMNS: &str = "name, role, domain, must_change, locked_until, failures, created_at, \
     last_login, CASE WHEN totp_secret IS NULL THEN 0 ELSE 1 END AS totp";

impl Accounts {
    /// Opens the accounts of `store`: the cluster's, or the node's own file.
    pub async fn open_in(store: &Store, rules: ConsoleConfig) -> Result<Accounts, AccountError> {
        match store.shared() {
            Some(db) => Ok(Self::on(db.clone(), rules)),
            None => Self::open(store.data_dir(), rules).await,
        }
    }

    /// Opens (creating) `data_dir/console.db`.
    pub async fn open(data_dir: &Path, rules: ConsoleConfig) -> Result<Accounts, AccountError> {
        let db = jianmen_mta::store::open_file(&jianmen_mta::db::Database {
            path: &data_dir.join(DATABASE),
            durability: jianmen_mta::db::Durability::PowerLoss,
            readers: 0,
            schema: &[SCHEMA],
            added_columns: &[
                ("accounts", "totp_secret", "TEXT"),
                ("accounts", "totp_pending", "TEXT"),
                ("accounts", "totp_step", "INTEGER NOT NULL DEFAULT 0"),
            ],
            settings: SETTINGS,
        })
        .await?;
        Ok(Self::on(db, rules))
    }

    fn on(db: SharedDb, rules: ConsoleConfig) -> Accounts {
        Accounts {
            db,
            rules,
            attempts: Arc::new(Attempts::new()),
        }
    }

    /// Every account, by name.
    pub async fn list(&self) -> Result<Vec<Account>, AccountError> {
        sqlx::query(&format!(
            "SELECT {ACCOUNT_COLUMNS} FROM accounts ORDER BY name"
        ))
        .fetch_all(self.db.pool())
        .await?
        .iter()
        .map(account)
        .collect()
    }

    /// One account.
    pub async fn get(&self, name: &str) -> Result<Account, AccountError> {
        let row = sqlx::query(&format!(
            "SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE name = $1"
        ))
        .bind(name)
        .fetch_optional(self.db.pool())
        .await?
        .ok_or_else(|| AccountError::NotFound(name.to_owned()))?;
        account(&row)
    }

    /// Creates an account with a generated password, returned once; it must be changed at
    /// first login.
    pub async fn create(
        &self,
        name: &str,
        role: Role,
        domain: Option<&str>,
        now: i64,
    ) -> Result<String, AccountError> {
        if !valid_name(name) {
            return Err(AccountError::Invalid {
                field: "name",
                reason: "2 to 32 of a-z 0-9 . _ -, starting with a letter".into(),
            });
        }
        if let Some(d) = domain
            && (role != Role::Security || !jianmen_mta::config::is_domain_like(d))
        {
            return Err(AccountError::Invalid {
                field: "domain",
                reason: "a per-domain administrator is a security administrator of one domain"
                    .into(),
            });
        }
        let (password, hashed) = self.new_password(name).await?;
        let inserted = insert_account(name, role, domain, &hashed, now)
            .execute(self.db.pool())
            .await?;
        if inserted.rows_affected() == 0 {
            return Err(AccountError::Exists(name.to_owned()));
        }
        Ok(password)
    }

    /// A generated password for `name`, and its hash.
    async fn new_password(&self, name: &str) -> Result<(String, String), AccountError> {
        let password = generated_password(name, self.rules.password_min_length)?;
        let p = password.clone();
        let hashed = blocking(move || hash(&p)).await??;
        Ok((password, hashed))
    }

    /// Gives an account a new generated password (returned once), unlocks it, ends its
    /// sessions and removes its second factor: a reset is how an administrator who lost the
    /// phone gets back in, and the new password must be changed at first sign-in anyway.
    pub async fn reset(&self, name: &str) -> Result<String, AccountError> {
        let password = generated_password(name, self.rules.password_min_length)?;
        let p = password.clone();
        let hashed = blocking(move || hash(&p)).await??;
        let n = sqlx::query(
            "UPDATE accounts SET hash = $1, must_change = 1, failures = 0, locked_until = 0,
             totp_secret = NULL, totp_pending = NULL WHERE name = $2",
        )
        .bind(hashed)
        .bind(name)
        .execute(self.db.pool())
        .await?
        .rows_affected();
        if n == 0 {
            return Err(AccountError::NotFound(name.to_owned()));
        }
        self.end_sessions(name).await?;
        Ok(password)
    }

    /// Lifts a lockout.
    pub async fn unlock(&self, name: &str) -> Result<(), AccountError> {
        let n = sqlx::query("UPDATE accounts SET failures = 0, locked_until = 0 WHERE name = $1")
            .bind(name)
            .execute(self.db.pool())
            .await?
            .rows_affected();
        if n == 0 {
            return Err(AccountError::NotFound(name.to_owned()));
        }
        Ok(())
    }

    /// Deletes an account and its sessions, unless it is the last system, security or audit
    /// administrator: a role nobody holds could not be given back from the console.
    pub async fn delete(&self, name: &str) -> Result<(), AccountError> {
        // Two deletions at once, on this node or another, cannot both see "another one is
        // left": one statement, under the accounts' lock.
        let mut tx = self.db.begin_serialised(Serialised::Accounts).await?;
        let n = sqlx::query(
            "DELETE FROM accounts WHERE name = $1 AND (domain IS NOT NULL OR
               (SELECT COUNT(*) FROM accounts other
                 WHERE other.role = accounts.role AND other.domain IS NULL) > 1)",
        )
        .bind(name)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        tx.commit().await?;
        if n == 0 {
            let kept = self.get(name).await?;
            return Err(AccountError::LastOfRole(
                name.to_owned(),
                kept.role.as_str(),
            ));
        }
        self.end_sessions(name).await
    }

    /// Checks that `actor` may manage the account `name` (see [`may_manage`]); returns it.
    pub async fn managed_by(&self, actor: &Account, name: &str) -> Result<Account, AccountError> {
        let target = self.get(name).await?;
        if !may_manage(actor, target.role, target.domain.as_deref()) {
            return Err(AccountError::NotYours(kind(
                target.role,
                target.domain.as_deref(),
            )));
        }
        Ok(target)
    }

    /// Checks that `actor` may create an account of `role` for `domain`.
    pub fn may_create(
        &self,
        actor: &Account,
        role: Role,
        domain: Option<&str>,
    ) -> Result<(), AccountError> {
        if !may_manage(actor, role, domain) {
            return Err(AccountError::NotYours(kind(role, domain)));
        }
        Ok(())
    }

    async fn end_sessions(&self, name: &str) -> Result<(), AccountError> {
        sqlx::query("DELETE FROM sessions WHERE name = $1")
            .bind(name)
            .execute(self.db.pool())
            .await?;
        Ok(())
    }

    /// Checks a login; on success starts a session. Attempts for one name run one at a time
    /// and count as failures before the password is checked, so parallel attempts check at
    /// most the lockout's number of passwords; a locked account is refused without looking at
    /// the password, and so is a source address with too many recent failures.
    pub async fn login(
        &self,
        name: &str,
        password: &str,
        code: Option<&str>,
        ip: &str,
        now: i64,
    ) -> Result<NewSession, AccountError> {
        if self.attempts.source_blocked(ip, now) {
            return Err(AccountError::TooManyAttempts);
        }
        let checked = {
            let _turn = self.attempts.turn(name).lock().await;
            self.check_password(name, password, code, now).await
        };
        if let Err(AccountError::BadCredentials | AccountError::Locked(_)) = &checked {
            self.attempts.failed(ip, now);
        }
        checked?;
        self.start_session(name, ip, now).await
    }

    /// Whether `ip` has used up its failed sign-ins of any kind (the console's and recipients'
    /// directory sign-ins count together).
    pub fn source_blocked(&self, ip: &str, now: i64) -> bool {
        self.attempts.source_blocked(ip, now)
    }

    /// Counts a sign-in from `ip` made outside the accounts (a recipient's, against the
    /// directory) as failed before it is checked, so parallel attempts cannot all pass
    /// [`Accounts::source_blocked`]; [`Accounts::source_succeeded`] takes it back.
    pub fn source_attempt(&self, ip: &str, now: i64) {
        self.attempts.failed(ip, now);
    }

    /// Takes back the failure [`Accounts::source_attempt`] counted, for an attempt that
    /// succeeded.
    pub fn source_succeeded(&self, ip: &str) {
        self.attempts.refund(ip);
    }

    /// How many passwords sign-ins have checked (argon2id runs) since this store was opened.
    pub fn passwords_checked(&self) -> u64 {
        self.attempts.checked.load(Ordering::Relaxed)
    }

    /// The password check of [`Accounts::login`], run while holding the name's turn.
    async fn check_password(
        &self,
        name: &str,
        password: &str,
        code: Option<&str>,
        now: i64,
    ) -> Result<(), AccountError> {
        let row = sqlx::query(
            "SELECT hash, locked_until, totp_secret, totp_step FROM accounts WHERE name = $1",
        )
        .bind(name)
        .fetch_optional(self.db.pool())
        .await?;
        let Some(row) = row else {
            // Spend the same time as a real check so names cannot be probed by timing.
            let p = password.to_owned();
            self.attempts.checked.fetch_add(1, Ordering::Relaxed);
            blocking(move || verify(&p, dummy_hash())).await?;
            return Err(AccountError::BadCredentials);
        };
        let locked_until: i64 = row.try_get("locked_until")?;
        if locked_until > now {
            return Err(AccountError::Locked(locked_until));
        }
        // Counted before the check: a check cut short (crash, cancelled request) still counts.
        // Counted only while unlocked, in the same statement: another node may have locked the
        // account since the read above.
        let Some(failures) = sqlx::query_scalar::<_, i64>(
            "UPDATE accounts SET failures = failures + 1 WHERE name = $1 AND locked_until <= $2 \
             RETURNING failures",
        )
        .bind(name)
        .bind(now)
        .fetch_optional(self.db.pool())
        .await?
        else {
            let locked_until: i64 =
                sqlx::query_scalar("SELECT locked_until FROM accounts WHERE name = $1")
                    .bind(name)
                    .fetch_one(self.db.pool())
                    .await?;
            return Err(AccountError::Locked(locked_until));
        };
        let stored: String = row.try_get("hash")?;
        let p = password.to_owned();
        self.attempts.checked.fetch_add(1, Ordering::Relaxed);
        if !blocking(move || verify(&p, &stored)).await? {
            return Err(self.failed(name, failures, now).await?);
        }
        // The second factor: until a right code comes, the failure counted above stands, so
        // password-only attempts on such an account still run into the lockout.
        if let Some(secret) = row.try_get::<Option<String>, _>("totp_secret")? {
            let Some(code) = code else {
                return Err(AccountError::CodeNeeded);
            };
            let last: i64 = row.try_get("totp_step")?;
            // A code is taken once: a step at or before the last one used is refused — by the
            // statement that takes it, so the same code sent to two nodes at once is taken by
            // one only.
            let taken = match code_step(&secret, code, now)? {
                Some(step) if step > last => {
                    sqlx::query(
                        "UPDATE accounts SET totp_step = $1 WHERE name = $2 AND totp_step < $1",
                    )
                    .bind(step)
                    .bind(name)
                    .execute(self.db.pool())
                    .await?
                    .rows_affected()
                        == 1
                }
                _ => false,
            };
            if !taken {
                return Err(self.failed(name, failures, now).await?);
            }
        }
        // The success clears the failures while the name's turn is held: cleared later, it would
        // also wipe failures that attempts after it have counted, and let them check more
        // passwords than the lockout allows. Failures other nodes counted meanwhile (the turn is
        // this node's only) stay, and so does a lock they set: only this attempt's count goes.
        sqlx::query(
            "UPDATE accounts SET last_login = $1, \
             failures = CASE WHEN failures = $3 OR failures = 0 THEN 0 ELSE failures - 1 END, \
             locked_until = CASE WHEN failures = $3 THEN 0 ELSE locked_until END \
             WHERE name = $2",
        )
        .bind(now)
        .bind(name)
        .bind(failures)
        .execute(self.db.pool())
        .await?;
        Ok(())
    }

    /// A failed check: locks the account once `failures` reach the limit.
    async fn failed(
        &self,
        name: &str,
        failures: i64,
        now: i64,
    ) -> Result<AccountError, AccountError> {
        if failures >= i64::from(self.rules.lockout_failures) {
            let until = now + i64::from(self.rules.lockout_minutes) * 60;
            sqlx::query("UPDATE accounts SET failures = 0, locked_until = $1 WHERE name = $2")
                .bind(until)
                .bind(name)
                .execute(self.db.pool())
                .await?;
            return Ok(AccountError::Locked(until));
        }
        Ok(AccountError::BadCredentials)
    }

    /// Starts enrolling a second factor: a new secret (160 random bits), kept aside until a
    /// code from it is confirmed; returned in base32 for the authenticator app.
    pub async fn totp_begin(&self, name: &str) -> Result<String, AccountError> {
        let mut secret = [0u8; 20];
        SystemRandom::new()
            .fill(&mut secret)
            .map_err(|_| AccountError::Hash("no randomness".into()))?;
        let b32 = totp_rs::Secret::from(secret).to_base32();
        let n = sqlx::query("UPDATE accounts SET totp_pending = $1 WHERE name = $2")
            .bind(&b32)
            .bind(name)
            .execute(self.db.pool())
            .await?
            .rows_affected();
        if n == 0 {
            return Err(AccountError::NotFound(name.to_owned()));
        }
        Ok(b32)
    }

    /// The secret in `column` (`totp_secret` in force, `totp_pending` being enrolled).
    async fn totp_secret(
        &self,
        name: &str,
        column: &'static str,
    ) -> Result<Option<String>, AccountError> {
        Ok(
            sqlx::query_scalar(&format!("SELECT {column} FROM accounts WHERE name = $1"))
                .bind(name)
                .fetch_optional(self.db.pool())
                .await?
                .flatten(),
        )
    }

    /// Puts the secret being enrolled in force once `code` shows the app has it.
    pub async fn totp_confirm(&self, name: &str, code: &str, now: i64) -> Result<(), AccountError> {
        let Some(pending) = self.totp_secret(name, "totp_pending").await? else {
            return Err(AccountError::Invalid {
                field: "code",
                reason: "start the set-up first".into(),
            });
        };
        let Some(step) = code_step(&pending, code, now)? else {
            return Err(AccountError::Invalid {
                field: "code",
                reason: "that code is not right: check the phone's clock and try the next one"
                    .into(),
            });
        };
        sqlx::query(
            "UPDATE accounts SET totp_secret = totp_pending, totp_pending = NULL, totp_step = $1
             WHERE name = $2",
        )
        .bind(step)
        .bind(name)
        .execute(self.db.pool())
        .await?;
        Ok(())
    }

    /// Removes the second factor, when `code` is a current one of it.
    pub async fn totp_remove(&self, name: &str, code: &str, now: i64) -> Result<(), AccountError> {
        let right = match &self.totp_secret(name, "totp_secret").await? {
            Some(s) => code_step(s, code, now)?.is_some(),
            None => false,
        };
        if !right {
            return Err(AccountError::Invalid {
                field: "code",
                reason: "that code is not right".into(),
            });
        }
        sqlx::query("UPDATE accounts SET totp_secret = NULL, totp_pending = NULL WHERE name = $1")
            .bind(name)
            .execute(self.db.pool())
            .await?;
        Ok(())
    }

    /// Starts the session of a successful sign-in.
    async fn start_session(
        &self,
        name: &str,
        ip: &str,
        now: i64,
    ) -> Result<NewSession, AccountError> {
        let token = random_token(32)?;
        let csrf = random_token(24)?;
        sqlx::query(
            "INSERT INTO sessions (token_hash, name, csrf, created_at, last_seen, ip)
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(digest(&token))
        .bind(name)
        .bind(&csrf)
        .bind(now)
        .bind(now)
        .bind(ip)
        .execute(self.db.pool())
        .await?;
        Ok(NewSession {
            token,
            session: Session {
                account: self.get(name).await?,
                csrf,
            },
        })
    }

    /// The live session a cookie names, refreshed; `None` when unknown, idle too long or
    /// past its maximum age (it is then removed).
    pub async fn session(&self, token: &str, now: i64) -> Result<Option<Session>, AccountError> {
        let key = digest(token);
        let Some(row) = sqlx::query(
            "SELECT name, csrf, created_at, last_seen FROM sessions WHERE token_hash = $1",
        )
        .bind(&key)
        .fetch_optional(self.db.pool())
        .await?
        else {
            return Ok(None);
        };
        let created: i64 = row.try_get("created_at")?;
        let seen: i64 = row.try_get("last_seen")?;
        let idle = i64::from(self.rules.session_idle_minutes) * 60;
        let max = i64::from(self.rules.session_max_hours) * 3600;
        if now - seen > idle || now - created > max {
            self.logout(token).await?;
            return Ok(None);
        }
        // Written when it has moved by a tenth of the idle time (a minute at most), not on every
        // request: a session may end that much early, and the console's pages, each several
        // requests, cost a committed write (an fsync) a minute instead of one each.
        if now - seen >= (idle / 10).min(60) {
            sqlx::query("UPDATE sessions SET last_seen = $1 WHERE token_hash = $2")
                .bind(now)
                .bind(&key)
                .execute(self.db.pool())
                .await?;
        }
        let name: String = row.try_get("name")?;
        Ok(Some(Session {
            account: self.get(&name).await?,
            csrf: row.try_get("csrf")?,
        }))
    }

    /// Ends a session.
    pub async fn logout(&self, token: &str) -> Result<(), AccountError> {
        sqlx::query("DELETE FROM sessions WHERE token_hash = $1")
            .bind(digest(token))
            .execute(self.db.pool())
            .await?;
        Ok(())
    }

    /// Changes a password after checking the current one and the rules; other sessions of
    /// the account end.
    pub async fn change_password(
        &self,
        name: &str,
        current: &str,
        new: &str,
        keep_token: &str,
    ) -> Result<(), AccountError> {
        let stored: String = sqlx::query_scalar("SELECT hash FROM accounts WHERE name = $1")
            .bind(name)
            .fetch_optional(self.db.pool())
            .await?
            .ok_or_else(|| AccountError::NotFound(name.to_owned()))?;
        let c = current.to_owned();
        let old = stored.clone();
        if !blocking(move || verify(&c, &old)).await? {
            return Err(AccountError::BadCredentials);
        }
        check_password(name, new, self.rules.password_min_length)?;
        let n = new.to_owned();
        if blocking(move || verify(&n, &stored)).await? {
            return Err(AccountError::WeakPassword(
                "must differ from the current password".into(),
            ));
        }
        let n = new.to_owned();
        let hashed = blocking(move || hash(&n)).await??;
        sqlx::query("UPDATE accounts SET hash = $1, must_change = 0 WHERE name = $2")
            .bind(hashed)
            .bind(name)
            .execute(self.db.pool())
            .await?;
        sqlx::query("DELETE FROM sessions WHERE name = $1 AND token_hash != $2")
            .bind(name)
            .bind(digest(keep_token))
            .execute(self.db.pool())
            .await?;
        Ok(())
    }

    /// On first start (no accounts at all), creates one account per role with generated
    /// passwords and returns them so they can be shown once. Of nodes starting together on a
    /// new cluster, one creates them; the others return none.
    pub async fn create_initial(
        &self,
        now: i64,
    ) -> Result<Vec<(String, Role, String)>, AccountError> {
        const COUNT: &str = "SELECT COUNT(*) FROM accounts";
        let count: i64 = sqlx::query_scalar(COUNT).fetch_one(self.db.pool()).await?;
        if count > 0 {
            return Ok(Vec::new());
        }
        // Hashed before the lock is taken: argon2 is slow on purpose.
        let mut made = Vec::new();
        for (name, role) in [
            ("sysadmin", Role::System),
            ("secadmin", Role::Security),
            ("auditor", Role::Audit),
        ] {
            let (password, hashed) = self.new_password(name).await?;
            made.push((name.to_owned(), role, password, hashed));
        }
        let mut tx = self.db.begin_serialised(Serialised::Accounts).await?;
        let count: i64 = sqlx::query_scalar(COUNT).fetch_one(&mut *tx).await?;
        if count > 0 {
            return Ok(Vec::new());
        }
        for (name, role, _, hashed) in &made {
            insert_account(name, *role, None, hashed, now)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(made
            .into_iter()
            .map(|(name, role, password, _)| (name, role, password))
            .collect())
    }
}

/// Adds an account whose generated password must be changed at first sign-in, unless the name
/// is taken.
fn insert_account<'q>(
    name: &'q str,
    role: Role,
    domain: Option<&str>,
    hashed: &'q str,
    now: i64,
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>> {
    sqlx::query(
        "INSERT INTO accounts (name, role, domain, hash, must_change, created_at)
         VALUES ($1, $2, $3, $4, 1, $5) ON CONFLICT (name) DO NOTHING",
    )
    .bind(name)
    .bind(role.as_str())
    .bind(domain.map(str::to_ascii_lowercase))
    .bind(hashed)
    .bind(now)
}

/// An argon2id hash of a random string, checked against for unknown user names.
fn dummy_hash() -> &'static str {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DUMMY.get_or_init(|| random_token(16).and_then(|t| hash(&t)).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules() -> ConsoleConfig {
        ConsoleConfig::default()
    }

    #[test]
    fn password_rules() {
        assert!(check_password("alice", "short1A!", 12).is_err());
        assert!(check_password("alice", "alllowercaseletters", 12).is_err());
        assert!(check_password("alice", "Alice-Is-Great-2026", 12).is_err());
        assert!(check_password("alice", "Correct-Horse-9", 12).is_ok());
        assert!(generated_password("bob", 12).is_ok());
    }

    /// Finding 5 of the hardening review: 50 parallel wrong sign-ins checked 24 passwords
    /// instead of 5, and a right password among them signed in and cleared the lock.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn parallel_sign_ins_check_at_most_the_lockout_count_of_passwords() {
        let dir = tempfile::tempdir().unwrap();
        let accounts = Arc::new(Accounts::open(dir.path(), rules()).await.unwrap());
        let initial = accounts.create_initial(1000).await.unwrap();
        let (name, _, password) = initial[1].clone();
        let attempts: Vec<_> = (0..50)
            .map(|i| {
                let (accounts, name) = (accounts.clone(), name.clone());
                let password = if i == 25 {
                    password.clone()
                } else {
                    "Wrong-Password-1".into()
                };
                tokio::spawn(async move {
                    accounts
                        .login(&name, &password, None, &format!("10.0.0.{i}"), 1000)
                        .await
                        .map(|_| ())
                })
            })
            .collect();
        for a in attempts {
            assert!(matches!(
                a.await.unwrap(),
                Ok(()) | Err(AccountError::BadCredentials | AccountError::Locked(_))
            ));
        }
        let lockout = u64::from(rules().lockout_failures);
        // The right password signs in and resets the count once, wherever the scheduler puts
        // it: at most lockout − 1 wrong checks before it, itself, and lockout after it (under
        // QEMU it does come early). Without the per-name turns, 24 were checked.
        assert!(
            accounts.passwords_checked() <= 2 * lockout,
            "{}",
            accounts.passwords_checked()
        );
        assert!(matches!(
            accounts
                .login(&name, &password, None, "10.0.1.1", 1001)
                .await,
            Err(AccountError::Locked(_))
        ));
    }

    #[tokio::test]
    async fn a_session_in_use_is_kept_with_a_write_a_minute() {
        let dir = tempfile::tempdir().unwrap();
        let accounts = Accounts::open(dir.path(), rules()).await.unwrap();
        let (name, _, password) = accounts.create_initial(1000).await.unwrap().swap_remove(0);
        let s = accounts
            .login(&name, &password, None, "127.0.0.1", 1000)
            .await
            .unwrap();
        let last_seen = || async {
            sqlx::query_scalar::<_, i64>("SELECT last_seen FROM sessions")
                .fetch_one(accounts.db.pool())
                .await
                .unwrap()
        };
        // Requests within a minute of the last write do not write.
        assert!(accounts.session(&s.token, 1030).await.unwrap().is_some());
        assert_eq!(last_seen().await, 1000);
        // A request every 50 s for an hour keeps it: the idle time (15 min) counts from the
        // last write, at most a minute old.
        for t in (1050..=4550).step_by(50) {
            assert!(
                accounts.session(&s.token, t).await.unwrap().is_some(),
                "{t}"
            );
        }
        assert!(4550 - last_seen().await < 60);
    }

    /// Two nodes of a cluster whose accounts are in one PostgreSQL database, started at once.
    async fn two_nodes(pg: &jianmen_testkit::postgres::Postgres) -> (Accounts, Accounts) {
        use jianmen_mta::store::{Backend, PostgresTls, StoreConfig};
        pg.create_database("console");
        let section = StoreConfig {
            backend: Backend::Postgres,
            url: Some(pg.url("console")),
            tls: PostgresTls::Off,
            ..StoreConfig::default()
        };
        let node = |name: &'static str| {
            let section = section.clone();
            async move {
                let store = Store::connect(&section, Path::new("/nonexistent"), name)
                    .await
                    .unwrap();
                Accounts::open_in(&store, rules()).await.unwrap()
            }
        };
        tokio::join!(node("a"), node("b"))
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_cluster_shares_accounts_sessions_and_lockouts() {
        let pg = jianmen_testkit::postgres::Postgres::start();
        let (a, b) = two_nodes(&pg).await;
        // Both nodes start on a new cluster at once: the initial accounts are made once, and
        // only the node that made them has their passwords to show.
        let (made_a, made_b) = tokio::join!(a.create_initial(1000), b.create_initial(1000));
        let (made_a, made_b) = (made_a.unwrap(), made_b.unwrap());
        assert_eq!(
            (
                made_a.len().min(made_b.len()),
                made_a.len().max(made_b.len())
            ),
            (0, 3)
        );
        let made = [made_a, made_b].concat();
        let (name, role, password) = made[0].clone();
        assert_eq!(role, Role::System);

        // A session begun on one node is valid on the other.
        let on_a = a
            .login(&name, &password, None, "10.0.0.1", 1000)
            .await
            .unwrap();
        let seen_on_b = b.session(&on_a.token, 1001).await.unwrap().unwrap();
        assert_eq!(seen_on_b.account.name, name);
        assert!(seen_on_b.account.must_change);

        // Failed sign-ins on either node count towards one lockout.
        for i in 0..rules().lockout_failures {
            let node = if i % 2 == 0 { &a } else { &b };
            let wrong = node
                .login(
                    &name,
                    "Wrong-Password-1",
                    None,
                    &format!("10.0.1.{i}"),
                    1002,
                )
                .await;
            // The last one, wherever it lands, locks the account.
            if i + 1 < rules().lockout_failures {
                assert!(
                    matches!(wrong, Err(AccountError::BadCredentials)),
                    "{wrong:?}"
                );
            } else {
                assert!(matches!(wrong, Err(AccountError::Locked(_))), "{wrong:?}");
            }
        }
        let locked = a.login(&name, &password, None, "10.0.2.1", 1003).await;
        assert!(matches!(locked, Err(AccountError::Locked(_))), "{locked:?}");
        // Unlocked on the other node: unlocked everywhere.
        b.unlock(&name).await.unwrap();
        let on_b = b
            .login(&name, &password, None, "10.0.2.2", 1004)
            .await
            .unwrap();

        // A password changed through one node ends the sessions begun on the other.
        a.change_password(&name, &password, "Another-Strong-Pass-7", &on_b.token)
            .await
            .unwrap();
        assert!(b.session(&on_a.token, 1005).await.unwrap().is_none());
        assert!(a.session(&on_b.token, 1005).await.unwrap().is_some());

        // A one-time code sent to both nodes at once signs in on one only.
        let (sec_name, _, sec_password) = made[1].clone();
        let b32 = a.totp_begin(&sec_name).await.unwrap();
        let code_at = |t: i64| {
            let secret = totp_rs::Secret::try_from_base32(&b32).unwrap();
            totp(secret.as_ref())
                .unwrap()
                .generate(t as u64)
                .to_string()
        };
        a.totp_confirm(&sec_name, &code_at(3000), 3000)
            .await
            .unwrap();
        let code = code_at(3060);
        let (on_a, on_b) = tokio::join!(
            a.login(&sec_name, &sec_password, Some(&code), "10.0.3.1", 3060),
            b.login(&sec_name, &sec_password, Some(&code), "10.0.3.2", 3060)
        );
        assert_eq!(
            [on_a.is_ok(), on_b.is_ok()]
                .iter()
                .filter(|ok| **ok)
                .count(),
            1,
            "{on_a:?} {on_b:?}"
        );

        // Of two system administrators deleted at once through different nodes, one stays.
        a.create("sysadmin2", Role::System, None, 1006)
            .await
            .unwrap();
        let (one, other) = tokio::join!(a.delete(&name), b.delete("sysadmin2"));
        assert!(
            matches!(
                (&one, &other),
                (Ok(()), Err(AccountError::LastOfRole(..)))
                    | (Err(AccountError::LastOfRole(..)), Ok(()))
            ),
            "{one:?} {other:?}"
        );
        assert_eq!(
            a.list()
                .await
                .unwrap()
                .iter()
                .filter(|x| x.role == Role::System)
                .count(),
            1
        );
    }

    #[tokio::test]
    async fn a_source_with_too_many_failures_is_refused_without_a_check() {
        let dir = tempfile::tempdir().unwrap();
        let accounts = Accounts::open(dir.path(), rules()).await.unwrap();
        for i in 0..SOURCE_FAILURES {
            assert!(matches!(
                accounts
                    .login(&format!("nobody{i}"), "x", None, "192.0.2.7", 1000)
                    .await,
                Err(AccountError::BadCredentials)
            ));
        }
        let checked = accounts.passwords_checked();
        assert_eq!(checked, u64::from(SOURCE_FAILURES));
        assert!(matches!(
            accounts.login("nobody", "x", None, "192.0.2.7", 1001).await,
            Err(AccountError::TooManyAttempts)
        ));
        assert_eq!(
            accounts.passwords_checked(),
            checked,
            "refused without a check"
        );
        // Other sources are not affected; the source may try again after the window.
        assert!(matches!(
            accounts.login("nobody", "x", None, "192.0.2.8", 1001).await,
            Err(AccountError::BadCredentials)
        ));
        assert!(matches!(
            accounts
                .login("nobody", "x", None, "192.0.2.7", 1000 + SOURCE_WINDOW_SECS)
                .await,
            Err(AccountError::BadCredentials)
        ));
    }

    /// Finding 7 of the hardening review: the system administrator could create a security or
    /// audit account, reset their passwords (and so learn them) and delete the only auditor.
    #[tokio::test]
    async fn no_console_role_makes_or_takes_over_another_roles_account() {
        let dir = tempfile::tempdir().unwrap();
        let accounts = Accounts::open(dir.path(), rules()).await.unwrap();
        accounts.create_initial(1).await.unwrap();
        let sys = accounts.get("sysadmin").await.unwrap();
        let sec = accounts.get("secadmin").await.unwrap();
        let auditor = accounts.get("auditor").await.unwrap();
        for (role, domain) in [
            (Role::Security, None),
            (Role::Audit, None),
            (Role::Security, Some("a.test")),
        ] {
            assert!(matches!(
                accounts.may_create(&sys, role, domain),
                Err(AccountError::NotYours(_))
            ));
        }
        for name in ["secadmin", "auditor"] {
            assert!(matches!(
                accounts.managed_by(&sys, name).await,
                Err(AccountError::NotYours(_))
            ));
        }
        accounts.may_create(&sys, Role::System, None).unwrap();
        accounts
            .may_create(&sec, Role::Security, Some("a.test"))
            .unwrap();
        assert!(accounts.may_create(&sec, Role::Security, None).is_err());
        assert!(accounts.may_create(&sec, Role::System, None).is_err());
        assert!(accounts.may_create(&auditor, Role::Audit, None).is_err());
        assert!(matches!(
            accounts
                .create("mixed", Role::Audit, Some("a.test"), 1)
                .await,
            Err(AccountError::Invalid {
                field: "domain",
                ..
            })
        ));
        accounts
            .create("delegate", Role::Security, Some("a.test"), 1)
            .await
            .unwrap();
        let delegate = accounts.get("delegate").await.unwrap();
        accounts.managed_by(&sec, "delegate").await.unwrap();
        assert!(accounts.managed_by(&delegate, "delegate").await.is_err());
        assert!(accounts.managed_by(&sys, "delegate").await.is_err());

        // The last of a role stays, whoever asks; a second one can go.
        for name in ["sysadmin", "secadmin", "auditor"] {
            assert!(matches!(
                accounts.delete(name).await,
                Err(AccountError::LastOfRole(..))
            ));
        }
        accounts.delete("delegate").await.unwrap();
        accounts
            .create("auditor2", Role::Audit, None, 1)
            .await
            .unwrap();
        accounts.delete("auditor").await.unwrap();
        assert!(matches!(
            accounts.delete("auditor2").await,
            Err(AccountError::LastOfRole(..))
        ));
        assert!(matches!(
            accounts.delete("nobody").await,
            Err(AccountError::NotFound(_))
        ));
    }

    #[tokio::test]
    async fn lockout_after_failures_and_sessions_expire() {
        let dir = tempfile::tempdir().unwrap();
        let accounts = Accounts::open(dir.path(), rules()).await.unwrap();
        let initial = accounts.create_initial(1000).await.unwrap();
        assert_eq!(initial.len(), 3);
        assert!(accounts.create_initial(1000).await.unwrap().is_empty());
        let (name, _, password) = &initial[1];
        for _ in 0..4 {
            assert!(matches!(
                accounts.login(name, "wrong", None, "127.0.0.1", 1000).await,
                Err(AccountError::BadCredentials)
            ));
        }
        assert!(matches!(
            accounts.login(name, "wrong", None, "127.0.0.1", 1000).await,
            Err(AccountError::Locked(until)) if until == 1000 + 30 * 60
        ));
        // Locked: even the right password is refused, until the lock ends.
        assert!(matches!(
            accounts
                .login(name, password, None, "127.0.0.1", 1001)
                .await,
            Err(AccountError::Locked(_))
        ));
        let s = accounts
            .login(name, password, None, "127.0.0.1", 1000 + 30 * 60 + 1)
            .await
            .unwrap();
        assert!(s.session.account.must_change);
        let t = 1000 + 30 * 60 + 1;
        assert!(accounts.session(&s.token, t + 60).await.unwrap().is_some());
        assert!(
            accounts
                .session(&s.token, t + 60 + 16 * 60)
                .await
                .unwrap()
                .is_none()
        );
        assert!(accounts.session("forged", t).await.unwrap().is_none());
        assert!(matches!(
            accounts.login("nobody", "x", None, "127.0.0.1", t).await,
            Err(AccountError::BadCredentials)
        ));
    }

    /// RFC 6238 appendix B: the SHA-1 test secret gives 94287082 at 59 s (8 digits); the six
    /// digits the console takes are its last six.
    #[test]
    fn codes_match_rfc_6238() {
        let t = totp(b"12345678901234567890").unwrap();
        assert_eq!(t.generate(59).to_string(), "287082");
        assert_eq!(t.generate(1111111109).to_string(), "081804");
    }

    #[tokio::test]
    async fn a_second_factor_is_enrolled_then_needed_once_per_code() {
        let dir = tempfile::tempdir().unwrap();
        let accounts = Accounts::open(dir.path(), rules()).await.unwrap();
        let initial = accounts.create_initial(1000).await.unwrap();
        let (name, _, password) = &initial[1];
        let code_at = |b32: &str, t: i64| {
            let secret = totp_rs::Secret::try_from_base32(b32).unwrap();
            totp(secret.as_ref())
                .unwrap()
                .generate(t as u64)
                .to_string()
        };
        let b32 = accounts.totp_begin(name).await.unwrap();
        // Not in force before it is confirmed, and a wrong code does not confirm it.
        assert!(!accounts.get(name).await.unwrap().totp);
        accounts
            .login(name, password, None, "127.0.0.1", 2000)
            .await
            .unwrap();
        assert!(matches!(
            accounts.totp_confirm(name, "000000", 2000).await,
            Err(AccountError::Invalid { field: "code", .. })
        ));
        accounts
            .totp_confirm(name, &code_at(&b32, 2000), 2000)
            .await
            .unwrap();
        assert!(accounts.get(name).await.unwrap().totp);

        // The password alone asks for the code; the confirmed code is used up.
        assert!(matches!(
            accounts
                .login(name, password, None, "127.0.0.1", 2010)
                .await,
            Err(AccountError::CodeNeeded)
        ));
        assert!(matches!(
            accounts
                .login(
                    name,
                    password,
                    Some(&code_at(&b32, 2000)),
                    "127.0.0.1",
                    2010
                )
                .await,
            Err(AccountError::BadCredentials)
        ));
        accounts
            .login(
                name,
                password,
                Some(&code_at(&b32, 2040)),
                "127.0.0.1",
                2040,
            )
            .await
            .unwrap();
        assert!(
            matches!(
                accounts
                    .login(
                        name,
                        password,
                        Some(&code_at(&b32, 2040)),
                        "127.0.0.1",
                        2045
                    )
                    .await,
                Err(AccountError::BadCredentials)
            ),
            "a code is taken once"
        );
        // A right code with a wrong password is still refused.
        assert!(matches!(
            accounts
                .login(name, "wrong", Some(&code_at(&b32, 2070)), "127.0.0.1", 2070)
                .await,
            Err(AccountError::BadCredentials)
        ));
        // Wrong codes count towards the lockout.
        for _ in 0..4 {
            let _ = accounts
                .login(name, password, Some("123456"), "127.0.0.1", 2100)
                .await;
        }
        assert!(matches!(
            accounts
                .login(
                    name,
                    password,
                    Some(&code_at(&b32, 2100)),
                    "127.0.0.1",
                    2100
                )
                .await,
            Err(AccountError::Locked(_))
        ));
        // A reset removes it (the way back for a lost phone).
        let fresh = accounts.reset(name).await.unwrap();
        assert!(!accounts.get(name).await.unwrap().totp);
        accounts
            .login(name, &fresh, None, "127.0.0.1", 2200)
            .await
            .unwrap();
    }
}
