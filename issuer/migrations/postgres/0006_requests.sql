-- Just-in-time access requests. PostgreSQL dialect of sqlite/0006_requests.sql.
CREATE TABLE access_requests (
    id            TEXT PRIMARY KEY,
    requester     TEXT NOT NULL,
    cluster       TEXT NOT NULL,
    role          TEXT NOT NULL,
    namespaces    TEXT NOT NULL DEFAULT '',
    reason        TEXT,
    duration_secs BIGINT NOT NULL CHECK (duration_secs > 0),
    created_at    BIGINT NOT NULL,
    expires_at    BIGINT NOT NULL,
    status        TEXT NOT NULL CHECK (status IN ('pending', 'approved', 'denied', 'expired', 'cancelled')),
    decided_by    TEXT,
    comment       TEXT,
    decided_at    BIGINT,
    grant_id      TEXT REFERENCES grants (id) DEFERRABLE INITIALLY DEFERRED,
    client_addr   TEXT
);
CREATE INDEX access_requests_by_requester ON access_requests (requester, created_at);
CREATE INDEX access_requests_pending ON access_requests (status, expires_at);
