-- Local accounts: expiry, second factor (TOTP), single-use invitations. PostgreSQL dialect of
-- sqlite/0002_accounts.sql.
ALTER TABLE users ADD COLUMN expires_at BIGINT;
ALTER TABLE users ADD COLUMN totp_secret_sealed TEXT;
ALTER TABLE users ADD COLUMN totp_last_step BIGINT;

CREATE TABLE invitations (
    id               TEXT PRIMARY KEY,
    token_hash       TEXT NOT NULL UNIQUE,
    user_id          TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created_by       TEXT NOT NULL,
    created_at       BIGINT NOT NULL,
    expires_at       BIGINT NOT NULL,
    used_at          BIGINT,
    revoked_at       BIGINT,
    totp_seed_sealed TEXT
);
CREATE INDEX invitations_user ON invitations(user_id);

ALTER TABLE web_sessions ADD COLUMN pending_user_id TEXT REFERENCES users(id) ON DELETE CASCADE;
ALTER TABLE web_sessions ADD COLUMN pending_until BIGINT;
