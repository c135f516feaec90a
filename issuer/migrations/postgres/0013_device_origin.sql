-- What the consent page shows about where a device authorization came from, so that a person
-- can tell a code they started from one an attacker started and sent them (device-code
-- phishing, RFC 8628 section 5.4). The requesting address and the time were stored from the
-- start (`client_addr`, `created_at`); the User-Agent the client sent is added here, cut to
-- 256 characters and stored as given (it is escaped where it is shown). NULL: none was sent,
-- or the row is older than this migration.
ALTER TABLE device_codes ADD COLUMN user_agent TEXT;
