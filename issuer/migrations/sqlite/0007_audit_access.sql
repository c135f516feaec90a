-- The auditor's questions (issue 5). A refresh's audit row now names its account and the
-- groups and grants of the token it mints: the issuer computes them before the rotation and
-- the rotating UPDATE stores them in `last_token_detail`, which the trigger copies into the
-- audit row. So the row is still written by the rotating statement itself (a refresh cannot
-- happen without it) and costs no write of its own.
ALTER TABLE sessions ADD COLUMN last_token_detail TEXT;

DROP TRIGGER sessions_refresh_rotated;

CREATE TRIGGER sessions_refresh_rotated AFTER UPDATE OF refresh_hash ON sessions
WHEN NEW.refresh_hash <> OLD.refresh_hash
BEGIN
    INSERT INTO spent_refresh_tokens (token_hash, session_id, spent_at)
        VALUES (OLD.refresh_hash, OLD.id, NEW.refreshed_at);
    INSERT INTO audit_events (at, event, actor, subject, cluster, client_addr, request_id, detail)
        VALUES (NEW.refreshed_at, 'refresh', (SELECT username FROM users WHERE id = NEW.user_id),
                NEW.user_id, NEW.cluster, NEW.last_client_addr, NEW.last_request_id,
                NEW.last_token_detail);
END;

-- Who obtained tokens for a cluster in a window, and each person's last token: reports scan
-- the token events by cluster and time.
CREATE INDEX audit_events_tokens ON audit_events(event, cluster, at);

-- The auditor page sends a person who is not signed in to the sign-in page and back: the
-- browser session remembers where to (a path of the issuer's own, never a full URL).
ALTER TABLE web_sessions ADD COLUMN return_to TEXT;
