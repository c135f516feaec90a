//! The value readers every section shares: durations written as `90s`/`5m`/`12h`/`30d`, and
//! the small files a config names (CA bundles, secrets), read so that a wrong path fails at
//! start instead of hanging.

use std::ops::RangeInclusive;
use std::path::Path;
use std::time::Duration;

use super::{invalid, ConfigError};

/// Largest secret file read (client secrets and webhook secrets are short).
pub(super) const MAX_SECRET_FILE: u64 = 64 * 1024;

/// Parses `90s`, `5m`, `12h`, `30d` (one unit; a bare number is seconds).
pub fn parse_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    let (num, unit) = match s.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => (&s[..i], &s[i..]),
        None => (s, "s"),
    };
    let n: u64 = num.parse().ok()?;
    let mult = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return None,
    };
    n.checked_mul(mult).map(Duration::from_secs)
}

/// The duration `field` holds, or `default` when it is not given.
pub(super) fn duration_field(
    field: &str,
    value: Option<&str>,
    default: &str,
) -> Result<Duration, ConfigError> {
    let s = value.unwrap_or(default);
    parse_duration(s).ok_or_else(|| {
        invalid(
            field,
            format!("`{s}` is not a duration like 90s, 5m, 12h or 30d"),
        )
    })
}

/// [`duration_field`], refused with `message` outside `range`.
pub(super) fn duration_within(
    field: &str,
    value: Option<&str>,
    default: &str,
    range: RangeInclusive<Duration>,
    message: &str,
) -> Result<Duration, ConfigError> {
    let d = duration_field(field, value, default)?;
    if range.contains(&d) {
        Ok(d)
    } else {
        Err(invalid(field, message))
    }
}

/// Reads a file the config names: a regular file of at most `max` bytes. A device (`/dev/zero`
/// would be read until memory runs out), a FIFO (whose `open` waits for a writer) or a huge
/// file is an error, so a wrong path fails at start with the field's name instead of hanging.
pub(super) fn read_small_file(path: &Path, max: u64) -> std::io::Result<Vec<u8>> {
    use std::io::Read as _;
    if !std::fs::metadata(path)?.is_file() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "not a regular file",
        ));
    }
    let mut bytes = Vec::new();
    std::fs::File::open(path)?
        .take(max + 1)
        .read_to_end(&mut bytes)?;
    if bytes.len() as u64 > max {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("larger than {max} bytes"),
        ));
    }
    Ok(bytes)
}

/// [`read_small_file`] for a text file: bytes that are not UTF-8 are an `InvalidData` error.
pub(super) fn read_small_text(path: &Path, max: u64) -> std::io::Result<String> {
    let bytes = read_small_file(path, max)?;
    String::from_utf8(bytes).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
}
