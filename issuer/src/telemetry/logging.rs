//! The one place that sets up logging. `RUST_LOG` wins over the default level;
//! `CREDENTIAL_ISSUER_LOG_FORMAT=json` switches to JSON lines.
//!
//! Log lines carry text from outside: user names, cluster names from request paths, provider
//! error texts, database errors that quote values. In the plain-text format every field value
//! (and the message) is written through [`credential_shared::text`]'s escaper, so no field can
//! end the line early, start a forged one, or put an escape sequence into a terminal that
//! tails the log; this holds for fields added later too, by construction. The JSON format
//! escapes by itself (and fields wrapped in `Untrusted` are escaped before either format sees
//! them). Colours are used only when stderr is a terminal and `NO_COLOR` is not set, so a log
//! file or a journal gets no escape codes at all.

use std::fmt;
use std::io::IsTerminal as _;

use credential_shared::text::{Escaper, LONG};
use tracing::field::{Field, Visit};
use tracing::Subscriber;
use tracing_subscriber::field::RecordFields;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FormatFields, MakeWriter};
use tracing_subscriber::EnvFilter;

use crate::env;

/// Installs the global subscriber (once, from `main`). Logs go to stderr.
pub fn init(default_level: &str) {
    let filter =
        EnvFilter::try_from_env(env::RUST_LOG).unwrap_or_else(|_| EnvFilter::new(default_level));
    let format = if std::env::var(env::LOG_FORMAT).is_ok_and(|v| v.eq_ignore_ascii_case("json")) {
        Format::Json
    } else {
        Format::Text
    };
    let ansi = use_colour(
        std::io::stderr().is_terminal(),
        std::env::var_os(env::NO_COLOR).as_deref(),
    );
    // Fails only when a subscriber is already installed, and then that one stays.
    let _ =
        tracing::subscriber::set_global_default(subscriber(filter, format, ansi, std::io::stderr));
}

/// The two log formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// One line of text per event (`compact`), every field escaped.
    Text,
    /// One JSON object per line.
    Json,
}

/// Whether to colour the log: only on a terminal, and not when `NO_COLOR` is set to anything
/// but the empty string (<https://no-color.org>).
#[must_use]
pub fn use_colour(stderr_is_terminal: bool, no_color: Option<&std::ffi::OsStr>) -> bool {
    stderr_is_terminal && no_color.is_none_or(std::ffi::OsStr::is_empty)
}

/// The subscriber `init` installs, writing to `writer` (tests pass a buffer).
pub fn subscriber<W>(
    filter: EnvFilter,
    format: Format,
    ansi: bool,
    writer: W,
) -> Box<dyn Subscriber + Send + Sync>
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_ansi(ansi);
    match format {
        Format::Json => Box::new(builder.json().flatten_event(true).finish()),
        Format::Text => Box::new(builder.compact().fmt_fields(EscapedFields).finish()),
    }
}

/// Formats fields as tracing-subscriber's default does (the message first, then
/// `name=value`, strings quoted), with each value streamed through the escaper and bounded at
/// [`LONG`] characters.
#[derive(Debug, Clone, Copy, Default)]
struct EscapedFields;

impl<'writer> FormatFields<'writer> for EscapedFields {
    fn format_fields<R: RecordFields>(&self, writer: Writer<'writer>, fields: R) -> fmt::Result {
        let mut visitor = EscapingVisitor {
            writer,
            first: true,
            result: Ok(()),
        };
        fields.record(&mut visitor);
        visitor.result
    }
}

struct EscapingVisitor<'writer> {
    writer: Writer<'writer>,
    first: bool,
    result: fmt::Result,
}

impl EscapingVisitor<'_> {
    fn write(&mut self, field: &Field, value: &dyn fmt::Debug) -> fmt::Result {
        use fmt::Write as _;
        if !std::mem::take(&mut self.first) {
            self.writer.write_char(' ')?;
        }
        let name = field.name();
        if name != "message" {
            write!(self.writer, "{}=", name.trim_start_matches("r#"))?;
        }
        let mut escaper = Escaper::new(&mut self.writer, LONG);
        write!(escaper, "{value:?}")?;
        escaper.finish()
    }
}

impl Visit for EscapingVisitor<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            // The message is text, not a quoted string.
            self.record_debug(field, &format_args!("{value}"));
        } else {
            self.record_debug(field, &value);
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if self.result.is_ok() {
            self.result = self.write(field, value);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex, PoisonError};

    use credential_shared::text::Untrusted;

    use super::*;

    /// A `MakeWriter` that collects everything in memory.
    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Buffer {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'w> MakeWriter<'w> for Buffer {
        type Writer = Self;

        fn make_writer(&'w self) -> Self {
            self.clone()
        }
    }

    /// What `log` writes through the subscriber of `format`.
    fn capture(format: Format, ansi: bool, log: impl FnOnce()) -> String {
        let buffer = Buffer::default();
        let sub = subscriber(EnvFilter::new("info"), format, ansi, buffer.clone());
        tracing::subscriber::with_default(sub, log);
        let bytes = buffer
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        String::from_utf8(bytes).unwrap_or_else(|e| panic!("log is not UTF-8: {e}"))
    }

    const FORGED: &str =
        "bob\n2026-01-01T00:00:00.000000Z  INFO credential_issuer: signed in user=admin\x1b[2K";

    #[test]
    fn a_newline_in_a_field_cannot_forge_a_line() {
        let text = capture(Format::Text, false, || {
            // Raw (as a handler might write it), wrapped, as a string, in a span, as an error.
            let span = tracing::info_span!("request", client = %FORGED);
            let _in = span.enter();
            let err = std::io::Error::other(FORGED);
            tracing::info!(user = %FORGED, agent = FORGED, error = %err, "signed in");
            tracing::info!(user = %Untrusted::new(FORGED), "signed in");
            tracing::warn!("{FORGED}");
        });
        assert_eq!(text.lines().count(), 3, "{text}");
        assert!(!text.contains('\x1b'), "{text}");
        assert!(
            text.contains(r"user=bob\n2026-01-01T00:00:00.000000Z"),
            "{text}"
        );
        // Strings keep their quotes (Debug already escaped the newline; escaping again
        // changes nothing).
        assert!(text.contains(r#"agent="bob\n2026"#), "{text}");
        assert!(text.contains(r"client=bob\n2026"), "{text}");
        assert!(text.contains(r"error=bob\n"), "{text}");
    }

    #[test]
    fn fields_are_bounded() {
        let big = "\u{202e}".repeat(1 << 20);
        let text = capture(Format::Text, false, || {
            tracing::info!(user = %big, "signed in");
        });
        assert_eq!(text.lines().count(), 1);
        assert!(text.len() < 2 * LONG, "{} bytes", text.len());
        assert!(text.contains(r"\u{202e}…[+"), "{text}");
    }

    #[test]
    fn json_lines_stay_one_line_per_event() {
        let text = capture(Format::Json, false, || {
            tracing::info!(user = %FORGED, "signed in");
            tracing::info!(user = %Untrusted::new(FORGED), "signed in");
        });
        assert_eq!(text.lines().count(), 2, "{text}");
        for line in text.lines() {
            let v: serde_json::Value =
                serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
            assert!(v["user"].as_str().is_some_and(|u| u.starts_with("bob")));
        }
        assert!(!text.contains('\x1b'), "{text}");
    }

    #[test]
    fn colour_only_on_a_terminal_without_no_color() {
        use std::ffi::OsStr;
        assert!(use_colour(true, None));
        assert!(use_colour(true, Some(OsStr::new(""))));
        assert!(!use_colour(true, Some(OsStr::new("1"))));
        assert!(!use_colour(false, None));
        let plain = capture(Format::Text, false, || tracing::warn!("careful"));
        assert!(!plain.contains('\x1b'), "{plain}");
        let coloured = capture(Format::Text, true, || tracing::warn!("careful"));
        assert!(coloured.contains("\x1b["), "{coloured}");
    }
}
