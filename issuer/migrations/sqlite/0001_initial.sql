-- Initial schema. Times are Unix seconds (UTC). Secrets (device codes, user codes, refresh
-- tokens, web session ids) are stored only as SHA-256 hex digests.
CREATE TABLE users (
    id            TEXT PRIMARY KEY,
    username      TEXT NOT NULL UNIQUE,
    email         TEXT,
    password_hash TEXT,
    disabled_at   INTEGER,
    created_at    INTEGER NOT NULL
);

CREATE TABLE user_groups (
    user_id    TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    group_name TEXT NOT NULL,
    PRIMARY KEY (user_id, group_name)
);

CREATE TABLE device_codes (
    id               TEXT PRIMARY KEY,
    device_code_hash TEXT NOT NULL UNIQUE,
    user_code_hash   TEXT NOT NULL UNIQUE,
    client_id        TEXT NOT NULL,
    cluster          TEXT NOT NULL,
    scope            TEXT,
    client_addr      TEXT NOT NULL,
    created_at       INTEGER NOT NULL,
    expires_at       INTEGER NOT NULL,
    interval_secs    INTEGER NOT NULL,
    last_poll_at     INTEGER,
    status           TEXT NOT NULL,
    user_id          TEXT REFERENCES users(id),
    decided_at       INTEGER
);
CREATE INDEX device_codes_expires ON device_codes(expires_at);

-- A login session holds its one live refresh token (hashed). Rotation is a single
-- conditional UPDATE of refresh_hash; the trigger below records the spent hash (for reuse
-- detection) and the audit row in the same statement, so a refresh is one atomic write.
CREATE TABLE sessions (
    id               TEXT PRIMARY KEY,
    user_id          TEXT NOT NULL REFERENCES users(id),
    client_id        TEXT NOT NULL,
    cluster          TEXT NOT NULL,
    created_at       INTEGER NOT NULL,
    expires_at       INTEGER NOT NULL,
    refresh_hash     TEXT NOT NULL UNIQUE,
    refreshed_at     INTEGER,
    last_client_addr TEXT,
    last_request_id  TEXT,
    revoked_at       INTEGER,
    revoke_reason    TEXT
);
CREATE INDEX sessions_user ON sessions(user_id);

-- WITHOUT ROWID: the hash is the key, so each spent token costs one B-tree insert.
CREATE TABLE spent_refresh_tokens (
    token_hash TEXT PRIMARY KEY,
    session_id TEXT NOT NULL REFERENCES sessions(id),
    spent_at   INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE web_sessions (
    id_hash    TEXT PRIMARY KEY,
    csrf_token TEXT NOT NULL,
    user_id    TEXT REFERENCES users(id),
    device_id  TEXT REFERENCES device_codes(id),
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);

CREATE TABLE rate_limits (
    key          TEXT PRIMARY KEY,
    window_start INTEGER NOT NULL,
    count        INTEGER NOT NULL
);

CREATE TABLE audit_events (
    seq         INTEGER PRIMARY KEY,
    at          INTEGER NOT NULL,
    event       TEXT NOT NULL,
    actor       TEXT,
    subject     TEXT,
    cluster     TEXT,
    client_addr TEXT,
    request_id  TEXT,
    detail      TEXT
);

CREATE TRIGGER sessions_refresh_rotated AFTER UPDATE OF refresh_hash ON sessions
WHEN NEW.refresh_hash <> OLD.refresh_hash
BEGIN
    INSERT INTO spent_refresh_tokens (token_hash, session_id, spent_at)
        VALUES (OLD.refresh_hash, OLD.id, NEW.refreshed_at);
    INSERT INTO audit_events (at, event, subject, cluster, client_addr, request_id)
        VALUES (NEW.refreshed_at, 'refresh', NEW.user_id, NEW.cluster, NEW.last_client_addr, NEW.last_request_id);
END;
