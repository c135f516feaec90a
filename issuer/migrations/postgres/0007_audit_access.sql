-- Refresh audit rows name the account and the minted token's groups and grants. PostgreSQL
-- dialect of sqlite/0007_audit_access.sql.
ALTER TABLE sessions ADD COLUMN last_token_detail TEXT;

CREATE OR REPLACE FUNCTION sessions_refresh_rotated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO spent_refresh_tokens (token_hash, session_id, spent_at)
        VALUES (OLD.refresh_hash, OLD.id, NEW.refreshed_at);
    INSERT INTO audit_events (at, event, actor, subject, cluster, client_addr, request_id, detail)
        VALUES (NEW.refreshed_at, 'refresh', (SELECT username FROM users WHERE id = NEW.user_id),
                NEW.user_id, NEW.cluster, NEW.last_client_addr, NEW.last_request_id,
                NEW.last_token_detail);
    RETURN NULL;
END;
$$;

CREATE INDEX audit_events_tokens ON audit_events(event, cluster, at);

ALTER TABLE web_sessions ADD COLUMN return_to TEXT;
