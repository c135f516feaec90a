-- Several issuer replicas on one database (issue 6).
--
-- The leader lease: the replica holding the row named 'leader' runs the grant reconciler and
-- the audit sealer. It is taken, renewed and taken over by one upsert whose WHERE admits only
-- the holder itself or anyone once `expires_at` (unix seconds) has passed.
CREATE TABLE leases (
    name TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    expires_at BIGINT NOT NULL,
    acquired_at BIGINT NOT NULL
);

-- Signing keys shared by every replica (`[signing] keys = "database"`): the PKCS#8 DER, sealed
-- with the encryption key (seal.rs) under a context naming the row's kid and created_at, so a
-- sealed key copied into another row does not open. The newest by (created_at, kid) signs.
CREATE TABLE signing_keys (
    kid TEXT PRIMARY KEY,
    created_at BIGINT NOT NULL,
    sealed_key BLOB NOT NULL
);
