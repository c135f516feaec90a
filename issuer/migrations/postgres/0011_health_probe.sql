-- The issuer checks every second that it can still write (a full disk fails only writes, and a
-- process that stopped serving because of one must notice by itself when there is room again):
-- each process updates its own row here in a transaction of its own. Rows are tiny and kept
-- one per process id; upkeep removes those not written for a day.
CREATE TABLE health_probe (
    process TEXT PRIMARY KEY,
    written_at BIGINT NOT NULL
);
