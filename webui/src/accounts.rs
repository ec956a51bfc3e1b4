//! Console accounts under 等保 2.0 rules: three built-in roles that no account can combine
//! (an account has exactly one [`Role`]), argon2id password hashes, complexity rules, lockout
//! after repeated failures, forced change of generated passwords, and sessions that end when
//! idle. Session tokens are stored only as SHA-256 digests.

use std::path::Path;

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use base64::Engine;
use ring::rand::{SecureRandom, SystemRandom};
use serde::{Deserialize, Serialize};
use sqlx::{Row, SqlitePool};

use jianmen_mta::config::ConsoleConfig;

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
    /// Too many failures; try again after this Unix time.
    #[error("account locked until {0}")]
    Locked(i64),
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

/// The account database (`data_dir/console.db`).
#[derive(Clone)]
pub struct Accounts {
    pool: SqlitePool,
    rules: ConsoleConfig,
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

/// Runs argon2 (tens of milliseconds) off the async threads.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, AccountError> {
    tokio::task::spawn_blocking(f)
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

fn account(row: &sqlx::sqlite::SqliteRow) -> Result<Account, AccountError> {
    let role: String = row.try_get("role")?;
    Ok(Account {
        name: row.try_get("name")?,
        role: Role::parse(&role).ok_or(AccountError::Invalid {
            field: "role",
            reason: format!("unknown role {role} in the database"),
        })?,
        domain: row.try_get("domain")?,
        must_change: row.try_get("must_change")?,
        locked_until: row.try_get("locked_until")?,
        failures: row.try_get("failures")?,
        created_at: row.try_get("created_at")?,
        last_login: row.try_get("last_login")?,
    })
}

const ACCOUNT_COLUMNS: &str =
    "name, role, domain, must_change, locked_until, failures, created_at, last_login";

impl Accounts {
    /// Opens (creating) `data_dir/console.db`.
    pub async fn open(data_dir: &Path, rules: ConsoleConfig) -> Result<Accounts, AccountError> {
        let pool = jianmen_mta::db::Database {
            path: &data_dir.join("console.db"),
            durability: jianmen_mta::db::Durability::PowerLoss,
            readers: 0,
            schema: &[SCHEMA],
            added_columns: &[],
        }
        .open()
        .await?
        .writer;
        Ok(Accounts { pool, rules })
    }

    /// Every account, by name.
    pub async fn list(&self) -> Result<Vec<Account>, AccountError> {
        sqlx::query(&format!(
            "SELECT {ACCOUNT_COLUMNS} FROM accounts ORDER BY name"
        ))
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(account)
        .collect()
    }

    /// One account.
    pub async fn get(&self, name: &str) -> Result<Account, AccountError> {
        let row = sqlx::query(&format!(
            "SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE name = ?"
        ))
        .bind(name)
        .fetch_optional(&self.pool)
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
        let password = generated_password(name, self.rules.password_min_length)?;
        let p = password.clone();
        let hashed = blocking(move || hash(&p)).await??;
        let inserted = sqlx::query(
            "INSERT OR IGNORE INTO accounts (name, role, domain, hash, must_change, created_at)
             VALUES (?, ?, ?, ?, 1, ?)",
        )
        .bind(name)
        .bind(role.as_str())
        .bind(domain.map(str::to_ascii_lowercase))
        .bind(hashed)
        .bind(now)
        .execute(&self.pool)
        .await?;
        if inserted.rows_affected() == 0 {
            return Err(AccountError::Exists(name.to_owned()));
        }
        Ok(password)
    }

    /// Gives an account a new generated password (returned once), unlocks it and ends its
    /// sessions.
    pub async fn reset(&self, name: &str) -> Result<String, AccountError> {
        let password = generated_password(name, self.rules.password_min_length)?;
        let p = password.clone();
        let hashed = blocking(move || hash(&p)).await??;
        let n = sqlx::query(
            "UPDATE accounts SET hash = ?, must_change = 1, failures = 0, locked_until = 0
             WHERE name = ?",
        )
        .bind(hashed)
        .bind(name)
        .execute(&self.pool)
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
        let n = sqlx::query("UPDATE accounts SET failures = 0, locked_until = 0 WHERE name = ?")
            .bind(name)
            .execute(&self.pool)
            .await?
            .rows_affected();
        if n == 0 {
            return Err(AccountError::NotFound(name.to_owned()));
        }
        Ok(())
    }

    /// Deletes an account and its sessions.
    pub async fn delete(&self, name: &str) -> Result<(), AccountError> {
        let n = sqlx::query("DELETE FROM accounts WHERE name = ?")
            .bind(name)
            .execute(&self.pool)
            .await?
            .rows_affected();
        if n == 0 {
            return Err(AccountError::NotFound(name.to_owned()));
        }
        Ok(())
    }

    async fn end_sessions(&self, name: &str) -> Result<(), AccountError> {
        sqlx::query("DELETE FROM sessions WHERE name = ?")
            .bind(name)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Checks a login; on success starts a session. Failures count towards the lockout; a
    /// locked account is refused without looking at the password.
    pub async fn login(
        &self,
        name: &str,
        password: &str,
        ip: &str,
        now: i64,
    ) -> Result<NewSession, AccountError> {
        let row = sqlx::query("SELECT hash, locked_until FROM accounts WHERE name = ?")
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
        let Some(row) = row else {
            // Spend the same time as a real check so names cannot be probed by timing.
            let p = password.to_owned();
            blocking(move || verify(&p, dummy_hash())).await?;
            return Err(AccountError::BadCredentials);
        };
        let locked_until: i64 = row.try_get("locked_until")?;
        if locked_until > now {
            return Err(AccountError::Locked(locked_until));
        }
        let stored: String = row.try_get("hash")?;
        let p = password.to_owned();
        if !blocking(move || verify(&p, &stored)).await? {
            let failures: i64 = sqlx::query_scalar(
                "UPDATE accounts SET failures = failures + 1 WHERE name = ? RETURNING failures",
            )
            .bind(name)
            .fetch_one(&self.pool)
            .await?;
            if failures >= i64::from(self.rules.lockout_failures) {
                let until = now + i64::from(self.rules.lockout_minutes) * 60;
                sqlx::query("UPDATE accounts SET failures = 0, locked_until = ? WHERE name = ?")
                    .bind(until)
                    .bind(name)
                    .execute(&self.pool)
                    .await?;
                return Err(AccountError::Locked(until));
            }
            return Err(AccountError::BadCredentials);
        }
        sqlx::query(
            "UPDATE accounts SET failures = 0, locked_until = 0, last_login = ? WHERE name = ?",
        )
        .bind(now)
        .bind(name)
        .execute(&self.pool)
        .await?;
        let token = random_token(32)?;
        let csrf = random_token(24)?;
        sqlx::query(
            "INSERT INTO sessions (token_hash, name, csrf, created_at, last_seen, ip)
             VALUES (?, ?, ?, ?, ?, ?)",
        )
        .bind(digest(&token))
        .bind(name)
        .bind(&csrf)
        .bind(now)
        .bind(now)
        .bind(ip)
        .execute(&self.pool)
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
            "SELECT name, csrf, created_at, last_seen FROM sessions WHERE token_hash = ?",
        )
        .bind(&key)
        .fetch_optional(&self.pool)
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
        sqlx::query("UPDATE sessions SET last_seen = ? WHERE token_hash = ?")
            .bind(now)
            .bind(&key)
            .execute(&self.pool)
            .await?;
        let name: String = row.try_get("name")?;
        Ok(Some(Session {
            account: self.get(&name).await?,
            csrf: row.try_get("csrf")?,
        }))
    }

    /// Ends a session.
    pub async fn logout(&self, token: &str) -> Result<(), AccountError> {
        sqlx::query("DELETE FROM sessions WHERE token_hash = ?")
            .bind(digest(token))
            .execute(&self.pool)
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
        let stored: String = sqlx::query_scalar("SELECT hash FROM accounts WHERE name = ?")
            .bind(name)
            .fetch_optional(&self.pool)
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
        sqlx::query("UPDATE accounts SET hash = ?, must_change = 0 WHERE name = ?")
            .bind(hashed)
            .bind(name)
            .execute(&self.pool)
            .await?;
        sqlx::query("DELETE FROM sessions WHERE name = ? AND token_hash != ?")
            .bind(name)
            .bind(digest(keep_token))
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// On first start (no accounts at all), creates one account per role with generated
    /// passwords and returns them so they can be shown once.
    pub async fn create_initial(
        &self,
        now: i64,
    ) -> Result<Vec<(String, Role, String)>, AccountError> {
        let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM accounts")
            .fetch_one(&self.pool)
            .await?;
        if count > 0 {
            return Ok(Vec::new());
        }
        let mut out = Vec::new();
        for (name, role) in [
            ("sysadmin", Role::System),
            ("secadmin", Role::Security),
            ("auditor", Role::Audit),
        ] {
            let password = self.create(name, role, None, now).await?;
            out.push((name.to_owned(), role, password));
        }
        Ok(out)
    }
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
                accounts.login(name, "wrong", "127.0.0.1", 1000).await,
                Err(AccountError::BadCredentials)
            ));
        }
        assert!(matches!(
            accounts.login(name, "wrong", "127.0.0.1", 1000).await,
            Err(AccountError::Locked(until)) if until == 1000 + 30 * 60
        ));
        // Locked: even the right password is refused, until the lock ends.
        assert!(matches!(
            accounts.login(name, password, "127.0.0.1", 1001).await,
            Err(AccountError::Locked(_))
        ));
        let s = accounts
            .login(name, password, "127.0.0.1", 1000 + 30 * 60 + 1)
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
            accounts.login("nobody", "x", "127.0.0.1", t).await,
            Err(AccountError::BadCredentials)
        ));
    }
}
