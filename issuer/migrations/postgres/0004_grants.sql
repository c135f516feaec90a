-- Time-bound grants of a role in a cluster. PostgreSQL dialect of sqlite/0004_grants.sql.
CREATE TABLE grants (
    id            TEXT PRIMARY KEY,
    username      TEXT,
    group_name    TEXT,
    cluster       TEXT NOT NULL,
    namespaces    TEXT NOT NULL DEFAULT '',
    role          TEXT NOT NULL,
    starts_at     BIGINT NOT NULL,
    ends_at       BIGINT NOT NULL,
    reason        TEXT,
    created_by    TEXT NOT NULL,
    created_at    BIGINT NOT NULL,
    approved_by   TEXT,
    request_id    TEXT,
    revoked_at    BIGINT,
    revoked_by    TEXT,
    revoke_reason TEXT,
    CHECK ((username IS NULL) <> (group_name IS NULL)),
    CHECK (ends_at > starts_at)
);
CREATE INDEX grants_by_cluster ON grants (cluster, ends_at);
CREATE INDEX grants_by_user ON grants (username);

-- Bumped by every change that can change the set of active grants; every replica polls it.
CREATE TABLE grants_epoch (
    id      BIGINT PRIMARY KEY CHECK (id = 1),
    version BIGINT NOT NULL
);
INSERT INTO grants_epoch (id, version) VALUES (1, 0);
CREATE FUNCTION grants_epoch_bump() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE grants_epoch SET version = version + 1 WHERE id = 1;
    RETURN NULL;
END;
$$;
CREATE TRIGGER grants_epoch_change AFTER INSERT OR UPDATE OR DELETE ON grants
FOR EACH STATEMENT EXECUTE FUNCTION grants_epoch_bump();
CREATE TRIGGER grants_epoch_user AFTER UPDATE OF disabled_at ON users
FOR EACH STATEMENT EXECUTE FUNCTION grants_epoch_bump();
