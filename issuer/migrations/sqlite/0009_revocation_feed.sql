-- Every replica asks each second which sessions were revoked and which accounts disabled since
-- it last looked (`Store::revoked_since`), to drop them from its webhook cache at once: these
-- partial indexes keep that question cheap however many sessions there are.
CREATE INDEX sessions_revoked_at ON sessions (revoked_at) WHERE revoked_at IS NOT NULL;
CREATE INDEX users_disabled_at ON users (disabled_at) WHERE disabled_at IS NOT NULL;
