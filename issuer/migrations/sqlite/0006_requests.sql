-- Just-in-time access requests (issue 5). A request is filed by a person for a role in a
-- cluster; an approver (or, for a self-approvable break-glass role, the requester) decides it.
-- Approval writes the grant in the same transaction (`grant_id`). `namespaces` is a
-- comma-separated list of DNS-1123 labels, empty for a cluster-wide request.
CREATE TABLE access_requests (
    id            TEXT PRIMARY KEY,
    requester     TEXT NOT NULL,
    cluster       TEXT NOT NULL,
    role          TEXT NOT NULL,
    namespaces    TEXT NOT NULL DEFAULT '',
    reason        TEXT,
    duration_secs INTEGER NOT NULL CHECK (duration_secs > 0),
    created_at    INTEGER NOT NULL,
    expires_at    INTEGER NOT NULL,
    status        TEXT NOT NULL CHECK (status IN ('pending', 'approved', 'denied', 'expired', 'cancelled')),
    decided_by    TEXT,
    comment       TEXT,
    decided_at    INTEGER,
    grant_id      TEXT REFERENCES grants (id) DEFERRABLE INITIALLY DEFERRED,
    client_addr   TEXT
);
CREATE INDEX access_requests_by_requester ON access_requests (requester, created_at);
CREATE INDEX access_requests_pending ON access_requests (status, expires_at);
