-- The auditor's questions (issue 5): a refresh's audit row now names the groups and grants of
-- the token it minted, which are known only after the rotation, so the issuer writes that row
-- itself once the token is signed. The trigger keeps recording the spent hash (reuse
-- detection stays part of the rotating statement) but no longer writes the audit row.
DROP TRIGGER sessions_refresh_rotated;

CREATE TRIGGER sessions_refresh_rotated AFTER UPDATE OF refresh_hash ON sessions
WHEN NEW.refresh_hash <> OLD.refresh_hash
BEGIN
    INSERT INTO spent_refresh_tokens (token_hash, session_id, spent_at)
        VALUES (OLD.refresh_hash, OLD.id, NEW.refreshed_at);
END;

-- Who obtained tokens for a cluster in a window, and each person's last token: reports scan
-- the token events by cluster and time.
CREATE INDEX audit_events_tokens ON audit_events(event, cluster, at);

-- The auditor page sends a person who is not signed in to the sign-in page and back: the
-- browser session remembers where to (a path of the issuer's own, never a full URL).
ALTER TABLE web_sessions ADD COLUMN return_to TEXT;
