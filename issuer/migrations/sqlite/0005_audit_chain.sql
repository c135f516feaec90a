-- The audit trail becomes tamper-evident (issue 5): every event is linked to the one before it
-- by a SHA-256 hash chain that the issuer fills in shortly after the row is written (rows are
-- inserted by handlers and by triggers, so the chain is sealed by one background task in `seq`
-- order rather than at insert time). Columns for the access-policy fields an auditor asks for.
ALTER TABLE audit_events ADD COLUMN namespace TEXT;
ALTER TABLE audit_events ADD COLUMN role TEXT;
ALTER TABLE audit_events ADD COLUMN reason TEXT;
ALTER TABLE audit_events ADD COLUMN approver TEXT;
ALTER TABLE audit_events ADD COLUMN hash TEXT;

CREATE INDEX audit_events_at ON audit_events(at);

-- Append-only inside the database too: no row is deleted, and a row is changed only to set its
-- hash once. (Someone with the database file can drop these triggers; the chain is what
-- detects that: `credential-issuer audit verify`.)
CREATE TRIGGER audit_events_no_delete BEFORE DELETE ON audit_events
BEGIN
    SELECT RAISE(ABORT, 'audit events are append-only');
END;

CREATE TRIGGER audit_events_no_update BEFORE UPDATE ON audit_events
WHEN OLD.hash IS NOT NULL
    OR NEW.seq IS NOT OLD.seq OR NEW.at IS NOT OLD.at OR NEW.event IS NOT OLD.event
    OR NEW.actor IS NOT OLD.actor OR NEW.subject IS NOT OLD.subject
    OR NEW.cluster IS NOT OLD.cluster OR NEW.namespace IS NOT OLD.namespace
    OR NEW.role IS NOT OLD.role OR NEW.reason IS NOT OLD.reason
    OR NEW.approver IS NOT OLD.approver OR NEW.client_addr IS NOT OLD.client_addr
    OR NEW.request_id IS NOT OLD.request_id OR NEW.detail IS NOT OLD.detail
BEGIN
    SELECT RAISE(ABORT, 'audit events are append-only');
END;
