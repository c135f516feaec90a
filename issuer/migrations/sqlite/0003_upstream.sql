-- Upstream OpenID Connect identities and sessions. (issue 4)

-- A login started at a provider and not yet back: looked up by the hash of `state`, bound to
-- the browser session that started it, single use (deleted when the callback arrives). The
-- nonce and the PKCE verifier must be read back, so they are sealed (AES-GCM, context
-- `upstream-login:<state hash>`).
CREATE TABLE upstream_logins (
    state_hash       TEXT PRIMARY KEY,
    provider         TEXT NOT NULL,
    web_session_hash TEXT NOT NULL,
    nonce_sealed     TEXT NOT NULL,
    verifier_sealed  TEXT NOT NULL,
    created_at       INTEGER NOT NULL,
    expires_at       INTEGER NOT NULL
);
CREATE INDEX upstream_logins_expires ON upstream_logins(expires_at);

-- Which provider account (iss, sub) is which user. Users are created on first sign-in.
CREATE TABLE upstream_identities (
    issuer        TEXT NOT NULL,
    subject       TEXT NOT NULL,
    provider      TEXT NOT NULL,
    user_id       TEXT NOT NULL UNIQUE REFERENCES users(id) ON DELETE CASCADE,
    created_at    INTEGER NOT NULL,
    last_login_at INTEGER NOT NULL,
    PRIMARY KEY (issuer, subject)
);

-- The provider's refresh token between the browser's approval and the device-code redemption
-- (sealed, context `upstream-device:<device id>`).
CREATE TABLE upstream_grants (
    device_id      TEXT PRIMARY KEY REFERENCES device_codes(id) ON DELETE CASCADE,
    provider       TEXT NOT NULL,
    refresh_sealed TEXT NOT NULL
);

-- The provider's refresh token of a login session (sealed, context `upstream-session:<id>`),
-- replaced whenever the provider rotates it.
CREATE TABLE upstream_sessions (
    session_id     TEXT PRIMARY KEY REFERENCES sessions(id) ON DELETE CASCADE,
    provider       TEXT NOT NULL,
    refresh_sealed TEXT NOT NULL,
    checked_at     INTEGER NOT NULL
);
