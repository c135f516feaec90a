-- Machine identities (issue 16). A CI workload rule of the configuration (`workload:<name>`) and
-- a registered machine client (`machine:<name>`) are accounts of their own kind, so that their
-- sessions, disabling, end dates, grants and reports are the people's: one revocation path.
-- Person names cannot contain `:`, so the two can never be confused.
ALTER TABLE users ADD COLUMN kind TEXT NOT NULL DEFAULT 'person';

-- The public key of a registered machine (the uncompressed P-256 point, base64url) and the
-- clusters it may get tokens for (comma-separated names). The issuer never holds its secret.
CREATE TABLE machine_keys (
    user_id    TEXT PRIMARY KEY REFERENCES users(id) ON DELETE CASCADE,
    public_key TEXT NOT NULL,
    clusters   TEXT NOT NULL,
    rotated_at BIGINT NOT NULL
);

-- Single-use `jti`s of the tokens the machine grants accept (CI platforms' identity tokens,
-- machine client assertions), kept until the token expires. The primary key makes the
-- reservation atomic across replicas: the second insert of a pair fails.
CREATE TABLE used_jtis (
    issuer     TEXT NOT NULL,
    jti        TEXT NOT NULL,
    expires_at BIGINT NOT NULL,
    PRIMARY KEY (issuer, jti)
);
CREATE INDEX used_jtis_expires_at ON used_jtis (expires_at);
