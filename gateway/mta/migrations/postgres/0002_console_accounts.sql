-- The console's accounts and sessions, shared so that an administrator signs in once for the
-- whole cluster and a lockout or a reset holds on every node. Flags are 0/1 integers, as in
-- the SQLite files, so the same queries read both.
CREATE TABLE accounts (
    name TEXT PRIMARY KEY,
    role TEXT NOT NULL,
    domain TEXT,
    hash TEXT NOT NULL,
    must_change BIGINT NOT NULL,
    failures BIGINT NOT NULL DEFAULT 0,
    locked_until BIGINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL,
    last_login BIGINT,
    totp_secret TEXT,
    totp_pending TEXT,
    totp_step BIGINT NOT NULL DEFAULT 0
);

CREATE TABLE sessions (
    token_hash TEXT PRIMARY KEY,
    name TEXT NOT NULL REFERENCES accounts (name) ON DELETE CASCADE,
    csrf TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    last_seen BIGINT NOT NULL,
    ip TEXT NOT NULL
);

CREATE INDEX sessions_name ON sessions (name);
