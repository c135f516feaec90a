//! What the command line writes: lines for the operator and reports on stdout, errors on
//! stderr. Text from outside (names from the database, a provider or a cluster) is escaped
//! before it reaches the terminal.

use std::io::Write as _;

use credential_shared::text::{Untrusted, LONG};

use crate::cli::Error;

/// Writes a line for the operator on stdout (the CLI's output, not a log).
#[expect(clippy::print_stdout, reason = "command output for the operator")]
pub fn say(line: &str) {
    println!("{line}");
}

/// Writes text to stdout as is (reports end their own lines).
pub fn print_report(text: &str) -> Result<(), Error> {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .map_err(Error::WriteReport)
}

/// Writes `error: ...` on stderr: the error with its causes (`{:#}`), escaped and bounded,
/// since the chain can quote names from the database, a provider or a cluster.
pub fn print_error(e: &impl std::fmt::Display) {
    eprintln!(
        "error: {}",
        Untrusted::bounded(format_args!("{e:#}"), 2 * LONG)
    );
}
