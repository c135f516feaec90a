-- Local accounts: expiry, second factor (TOTP), single-use invitations. (issue 4)
-- Secrets the issuer must read back (TOTP seeds) are sealed with AES-256-GCM (seal.rs); the
-- invitation token is stored only as its SHA-256.

-- An account past expires_at cannot sign in and its sessions cannot be refreshed.
ALTER TABLE users ADD COLUMN expires_at INTEGER;
-- Sealed base32 TOTP seed (context `totp:<user id>`), and the last time step a code was
-- accepted for (a code works once).
ALTER TABLE users ADD COLUMN totp_secret_sealed TEXT;
ALTER TABLE users ADD COLUMN totp_last_step INTEGER;

CREATE TABLE invitations (
    id               TEXT PRIMARY KEY,
    token_hash       TEXT NOT NULL UNIQUE,
    user_id          TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created_by       TEXT NOT NULL,
    created_at       INTEGER NOT NULL,
    expires_at       INTEGER NOT NULL,
    used_at          INTEGER,
    revoked_at       INTEGER,
    -- Sealed TOTP seed (context `invite:<id>`), generated when the link is first opened.
    totp_seed_sealed TEXT
);
CREATE INDEX invitations_user ON invitations(user_id);

-- Two-step sign-in: after a correct password, a browser session waits for the TOTP code of
-- pending_user_id until pending_until; user_id is set only once the code is right.
ALTER TABLE web_sessions ADD COLUMN pending_user_id TEXT REFERENCES users(id) ON DELETE CASCADE;
ALTER TABLE web_sessions ADD COLUMN pending_until INTEGER;
