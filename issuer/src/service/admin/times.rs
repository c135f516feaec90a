//! The times admin commands read (`--from`, `--until`, `--since`) and print.

use time::OffsetDateTime;

use super::Error;

/// `2026-12-31 18:00:00Z`.
#[must_use]
pub fn format_time(t: OffsetDateTime) -> String {
    let format =
        time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second]Z");
    t.to_offset(time::UtcOffset::UTC)
        .format(&format)
        .unwrap_or_else(|_| t.unix_timestamp().to_string())
}

/// Reads `--from`/`--until`: RFC 3339 (`2026-12-31T18:00:00Z`), or a date (`2026-12-31`),
/// which means the start of that day (UTC) for `--from` and its end for `--until`.
pub fn parse_time(flag: &'static str, s: &str, end_of_day: bool) -> Result<OffsetDateTime, Error> {
    let bad = || Error::Time {
        flag,
        message: format!("`{s}` is not a time like 2026-12-31 or 2026-12-31T18:00:00Z"),
    };
    if let Ok(t) = OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339) {
        return Ok(t);
    }
    let format = time::macros::format_description!("[year]-[month]-[day]");
    let date = time::Date::parse(s, &format).map_err(|_| bad())?;
    let start = date.midnight().assume_utc();
    Ok(if end_of_day {
        start + time::Duration::days(1)
    } else {
        start
    })
}
