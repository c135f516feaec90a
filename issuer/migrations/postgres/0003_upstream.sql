-- Upstream OpenID Connect identities and sessions. PostgreSQL dialect of sqlite/0003_upstream.sql.
CREATE TABLE upstream_logins (
    state_hash       TEXT PRIMARY KEY,
    provider         TEXT NOT NULL,
    web_session_hash TEXT NOT NULL,
    nonce_sealed     TEXT NOT NULL,
    verifier_sealed  TEXT NOT NULL,
    created_at       BIGINT NOT NULL,
    expires_at       BIGINT NOT NULL
);
CREATE INDEX upstream_logins_expires ON upstream_logins(expires_at);

CREATE TABLE upstream_identities (
    issuer        TEXT NOT NULL,
    subject       TEXT NOT NULL,
    provider      TEXT NOT NULL,
    user_id       TEXT NOT NULL UNIQUE REFERENCES users(id) ON DELETE CASCADE,
    created_at    BIGINT NOT NULL,
    last_login_at BIGINT NOT NULL,
    PRIMARY KEY (issuer, subject)
);

CREATE TABLE upstream_grants (
    device_id      TEXT PRIMARY KEY REFERENCES device_codes(id) ON DELETE CASCADE,
    provider       TEXT NOT NULL,
    refresh_sealed TEXT NOT NULL
);

CREATE TABLE upstream_sessions (
    session_id     TEXT PRIMARY KEY REFERENCES sessions(id) ON DELETE CASCADE,
    provider       TEXT NOT NULL,
    refresh_sealed TEXT NOT NULL,
    checked_at     BIGINT NOT NULL
);
