-- Indexes for what every replica asks often.
--
-- Each second every replica asks which sessions were revoked and which accounts disabled since
-- it last looked (`Store::revoked_since`), to drop them from its webhook cache at once: these
-- partial indexes keep that question cheap however many sessions there are.
CREATE INDEX sessions_revoked_at ON sessions (revoked_at) WHERE revoked_at IS NOT NULL;
CREATE INDEX users_disabled_at ON users (disabled_at) WHERE disabled_at IS NOT NULL;

-- The sealer (every second, on the leader) and `audit verify` ask for the chain's head, the
-- newest sealed event: without this index that walks back over every event not sealed yet.
CREATE INDEX audit_events_sealed ON audit_events (seq) WHERE hash IS NOT NULL;
