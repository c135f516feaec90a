-- A retry of a refresh whose answer was lost (a crash, a dropped connection) presents the
-- previous refresh token again. For `refresh_retry_grace` after a rotation the session keeps
-- that previous token's hash and its successor, sealed with the encryption key and bound to the
-- previous hash, so the retry gets the same successor back instead of revoking the session.
-- Both are replaced at the next rotation: once the successor was used, the previous token is
-- plain reuse again.
ALTER TABLE sessions ADD COLUMN previous_refresh_hash TEXT;
ALTER TABLE sessions ADD COLUMN successor_sealed TEXT;
CREATE INDEX sessions_previous_refresh_hash ON sessions (previous_refresh_hash) WHERE previous_refresh_hash IS NOT NULL;
