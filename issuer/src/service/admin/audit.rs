//! `audit verify` and `audit export`, and the sealing that chains what an admin command wrote
//! into the audit trail's hash chain.

use credential_shared::text::escape_json;
use time::OffsetDateTime;

use super::Error;
use crate::domain::audit_chain::{self, Record, Summary, Verifier};
use crate::store::{AuditFilter, Store};

/// Events read per page when walking the audit trail.
const AUDIT_PAGE: u32 = 5000;

/// Links every audit event not chained yet (the server does this every second; admin
/// commands do it for what they wrote, so the trail is complete even with no server running).
pub async fn seal_audit_trail(store: &Store) -> Result<(), Error> {
    while store.seal_audit(AUDIT_PAGE).await? > 0 {}
    Ok(())
}

/// As [`seal_audit_trail`] after an admin command, where the command itself has succeeded:
/// if the database is busy the running server chains the events within a second, so this only
/// warns.
pub async fn seal_audit_trail_after_command(store: &Store) {
    if let Err(e) = seal_audit_trail(store).await {
        tracing::warn!(error = %e, "could not chain the new audit events now; a running issuer will");
    }
}

/// Checks the whole audit trail's hash chain, page by page.
pub async fn audit_verify(store: &Store, expect_head: Option<&str>) -> Result<Summary, Error> {
    let expect = expect_head
        .map(|h| audit_chain::parse_head(h).ok_or_else(|| Error::Head(h.to_owned())))
        .transpose()?;
    let mut verifier = Verifier::new(expect);
    walk(store, &AuditFilter::default(), |r| Ok(verifier.push(&r)?)).await?;
    Ok(verifier.finish()?)
}

/// Writes the events matching `filter` as JSON lines; returns how many.
pub async fn audit_export(
    store: &Store,
    filter: &AuditFilter,
    out: &mut impl std::io::Write,
) -> Result<u64, Error> {
    let mut n = 0;
    walk(store, filter, |r| {
        let time = OffsetDateTime::from_unix_timestamp(r.at)
            .ok()
            .and_then(|t| {
                t.format(&time::format_description::well_known::Rfc3339)
                    .ok()
            });
        let mut v = serde_json::to_value(&r).unwrap_or_default();
        if let (Some(obj), Some(time)) = (v.as_object_mut(), time) {
            obj.insert("time".into(), time.into());
        }
        // As JSON escapes, plus what a terminal would obey that JSON leaves raw.
        let json = v.to_string();
        out.write_all(escape_json(&json).as_bytes())
            .and_then(|()| out.write_all(b"\n"))
            .map_err(Error::Output)?;
        n += 1;
        Ok(())
    })
    .await?;
    out.flush().map_err(Error::Output)?;
    Ok(n)
}

/// Calls `each` with every event matching `filter`, oldest first, reading them page by page.
async fn walk(
    store: &Store,
    filter: &AuditFilter,
    mut each: impl FnMut(Record) -> Result<(), Error>,
) -> Result<(), Error> {
    let mut after = 0;
    loop {
        let page = store.audit_page(after, AUDIT_PAGE, filter).await?;
        let Some(last) = page.last() else {
            return Ok(());
        };
        after = last.seq;
        for r in page {
            each(r)?;
        }
    }
}
