-- Time-bound grants of a role in a cluster (issue 5). A grant is for a user or a group;
-- `namespaces` is a comma-separated list of DNS-1123 labels, empty for a cluster-wide grant.
CREATE TABLE grants (
    id            TEXT PRIMARY KEY,
    username      TEXT,
    group_name    TEXT,
    cluster       TEXT NOT NULL,
    namespaces    TEXT NOT NULL DEFAULT '',
    role          TEXT NOT NULL,
    starts_at     INTEGER NOT NULL,
    ends_at       INTEGER NOT NULL,
    reason        TEXT,
    created_by    TEXT NOT NULL,
    created_at    INTEGER NOT NULL,
    approved_by   TEXT,
    request_id    TEXT,
    revoked_at    INTEGER,
    revoked_by    TEXT,
    revoke_reason TEXT,
    CHECK ((username IS NULL) <> (group_name IS NULL)),
    CHECK (ends_at > starts_at)
);
CREATE INDEX grants_by_cluster ON grants (cluster, ends_at);
CREATE INDEX grants_by_user ON grants (username);

-- A counter bumped by every change that can change the set of active grants (a grant
-- written, an account disabled). The server polls it every second, so changes made by the
-- admin CLI, another process, reach the clusters within seconds.
CREATE TABLE grants_epoch (
    id      INTEGER PRIMARY KEY CHECK (id = 1),
    version INTEGER NOT NULL
);
INSERT INTO grants_epoch (id, version) VALUES (1, 0);
CREATE TRIGGER grants_epoch_insert AFTER INSERT ON grants
BEGIN UPDATE grants_epoch SET version = version + 1 WHERE id = 1; END;
CREATE TRIGGER grants_epoch_update AFTER UPDATE ON grants
BEGIN UPDATE grants_epoch SET version = version + 1 WHERE id = 1; END;
CREATE TRIGGER grants_epoch_delete AFTER DELETE ON grants
BEGIN UPDATE grants_epoch SET version = version + 1 WHERE id = 1; END;
CREATE TRIGGER grants_epoch_user AFTER UPDATE OF disabled_at ON users
BEGIN UPDATE grants_epoch SET version = version + 1 WHERE id = 1; END;
