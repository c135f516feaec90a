-- The tamper-evident audit trail. PostgreSQL dialect of sqlite/0005_audit_chain.sql.
ALTER TABLE audit_events ADD COLUMN namespace TEXT;
ALTER TABLE audit_events ADD COLUMN role TEXT;
ALTER TABLE audit_events ADD COLUMN reason TEXT;
ALTER TABLE audit_events ADD COLUMN approver TEXT;
ALTER TABLE audit_events ADD COLUMN hash TEXT;

CREATE INDEX audit_events_at ON audit_events(at);

-- Append-only inside the database too: no row is deleted, and a row is changed only to set its
-- hash once. (A database owner can drop these triggers; the chain is what detects that.)
CREATE FUNCTION audit_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit events are append-only';
END;
$$;
CREATE TRIGGER audit_events_no_delete BEFORE DELETE ON audit_events
FOR EACH ROW EXECUTE FUNCTION audit_events_append_only();
CREATE TRIGGER audit_events_no_truncate BEFORE TRUNCATE ON audit_events
FOR EACH STATEMENT EXECUTE FUNCTION audit_events_append_only();
CREATE TRIGGER audit_events_no_update BEFORE UPDATE ON audit_events
FOR EACH ROW WHEN (
    OLD.hash IS NOT NULL
    OR NEW.seq IS DISTINCT FROM OLD.seq OR NEW.at IS DISTINCT FROM OLD.at
    OR NEW.event IS DISTINCT FROM OLD.event
    OR NEW.actor IS DISTINCT FROM OLD.actor OR NEW.subject IS DISTINCT FROM OLD.subject
    OR NEW.cluster IS DISTINCT FROM OLD.cluster OR NEW.namespace IS DISTINCT FROM OLD.namespace
    OR NEW.role IS DISTINCT FROM OLD.role OR NEW.reason IS DISTINCT FROM OLD.reason
    OR NEW.approver IS DISTINCT FROM OLD.approver OR NEW.client_addr IS DISTINCT FROM OLD.client_addr
    OR NEW.request_id IS DISTINCT FROM OLD.request_id OR NEW.detail IS DISTINCT FROM OLD.detail
    OR NEW.written_at IS DISTINCT FROM OLD.written_at
)
EXECUTE FUNCTION audit_events_append_only();
