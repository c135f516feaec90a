//! Text from outside a binary, made safe to print on a terminal or in a log line.
//!
//! Both binaries print text they did not write: `KUBERNETES_EXEC_INFO`, kubeconfig names, the
//! issuer's error descriptions, cluster and user names, provider errors, request headers. Raw,
//! such text can move the cursor, recolour or clear the terminal, set its title, forge a log
//! line with a newline, reorder what the reader sees with bidi overrides, or fill the screen
//! with a megabyte. Everything of that kind goes through this module before it is printed:
//! [`escape`] (a `&str`), [`escape_bytes`] (bytes that may not be UTF-8), or
//! the [`Untrusted`] wrapper (anything `Display`, for `format!` and tracing fields). All three
//! are one routine, so one set of rules holds everywhere. JSON written for tools (the
//! issuer's JSON-lines reports and audit export) goes through [`escape_json`], which applies
//! the same rules inside JSON strings without changing the value or the length bound.
//!
//! # Rules
//!
//! - `\n`, `\r`, `\t` print as those two-character escapes; every other C0 control and DEL as
//!   `\xNN` (ESC is `\x1b`); C1 controls (U+0080 to U+009F, which some terminals obey like
//!   ESC sequences; U+009B is CSI) as `\u{9b}`.
//! - Unicode format characters (general category Cf: bidi embeddings, overrides and isolates
//!   U+202A-U+202E and U+2066-U+2069, the marks U+200E/U+200F/U+061C, zero-width characters,
//!   the byte-order mark, soft hyphen, tag characters...), the line and paragraph separators
//!   U+2028/U+2029, and the invisible Hangul fillers print as `\u{202e}`: they can make text
//!   read differently from what it is, or hide part of it.
//! - A byte that is not part of valid UTF-8 prints as `\xNN` (always 0x80 or above, so it
//!   cannot be mistaken for an escaped control).
//! - At most `max` characters of escaped text are printed (an escape is never cut in half);
//!   the rest is replaced by a marker `…[+N bytes]` that says how many bytes of the input were
//!   left out. The output is therefore at most `max` + [`MARKER_MAX`] characters.
//! - Everything else, backslashes included, is printed as it is. So escaping is idempotent:
//!   text escaped twice (a field escaped where it is formatted and again by the log
//!   formatter) reads the same as once. The price is that an escaped `\n` and a literal
//!   backslash-n look alike; the output is for people to read, not to be parsed back.

use std::borrow::Cow;
use std::fmt::{self, Write as _};

/// Bound for a name, an id, a code or one value: user, cluster, context and group names,
/// addresses, user agents, `apiVersion`.
pub const SHORT: usize = 200;

/// Bound for a sentence from outside: an issuer's error description, a provider's error, an
/// error chain, a URL.
pub const LONG: usize = 1000;

/// The longest marker that ends a bounded text (`…[+18446744073709551615 bytes]`).
pub const MARKER_MAX: usize = 32;

/// `text` with control and format characters escaped and at most `max` characters long (plus
/// the marker). Borrows `text` when nothing needed changing.
#[must_use]
pub fn escape(text: &str, max: usize) -> Cow<'_, str> {
    let mut count = 0;
    let clean = text.chars().all(|c| {
        count += 1;
        count <= max && escape_of(c).is_none()
    });
    if clean {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len().min(max.saturating_add(MARKER_MAX)));
    let mut escaper = Escaper::new(&mut out, max);
    // Writing to a String cannot fail.
    let _ = escaper.write_str(text).and_then(|()| escaper.finish());
    Cow::Owned(out)
}

/// Like [`escape`], for bytes that may not be UTF-8 (an environment variable, a
/// file, a response body): invalid bytes print as `\xNN`.
#[must_use]
pub fn escape_bytes(bytes: &[u8], max: usize) -> Cow<'_, str> {
    if let Ok(text) = std::str::from_utf8(bytes) {
        return escape(text, max);
    }
    let mut out = String::with_capacity(bytes.len().min(max.saturating_add(MARKER_MAX)));
    let mut escaper = Escaper::new(&mut out, max);
    for chunk in bytes.utf8_chunks() {
        let _ = escaper.write_str(chunk.valid());
        for &b in chunk.invalid() {
            let _ = escaper.invalid_byte(b);
        }
    }
    let _ = escaper.finish();
    Cow::Owned(out)
}

/// JSON text (as `serde_json` writes it) with the characters of these rules that JSON leaves
/// raw (C1 controls, format characters, U+2028/U+2029; JSON itself escapes C0 controls in
/// strings) written as `\uXXXX` escapes instead. A parser reads the same value; a terminal
/// showing the text obeys nothing in it. Not bounded: an export must be complete. For valid
/// JSON only, where such characters can stand only inside strings (the whitespace `\t`, `\n`,
/// `\r` between tokens is left alone).
#[must_use]
pub fn escape_json(json: &str) -> Cow<'_, str> {
    let needs = |c: char| !matches!(c, '\t' | '\n' | '\r') && escape_of(c).is_some();
    if !json.chars().any(needs) {
        return Cow::Borrowed(json);
    }
    let mut out = String::with_capacity(json.len() + 32);
    for c in json.chars() {
        if needs(c) {
            let mut units = [0; 2];
            for unit in c.encode_utf16(&mut units) {
                let _ = write!(out, "\\u{unit:04x}");
            }
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// A value from outside, displayed escaped and bounded by the rules of this module: for
/// `format!` arguments and tracing fields (`user = %Untrusted::new(&name)`). It formats the
/// value into the escaper directly, without an intermediate `String` (unless a width is
/// asked for, as in `{:<20}`, which pads the escaped text).
#[derive(Clone, Copy)]
pub struct Untrusted<T> {
    value: T,
    max: usize,
}

impl<T: fmt::Display> Untrusted<T> {
    /// A name-sized value, bounded at [`SHORT`] characters.
    pub const fn new(value: T) -> Self {
        Self { value, max: SHORT }
    }

    /// A sentence-sized value (an error description or chain), bounded at [`LONG`].
    pub const fn long(value: T) -> Self {
        Self { value, max: LONG }
    }

    /// A value bounded at `max` characters.
    pub const fn bounded(value: T, max: usize) -> Self {
        Self { value, max }
    }
}

impl<T: fmt::Display> fmt::Display for Untrusted<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if f.width().is_some() || f.precision().is_some() {
            let mut text = String::new();
            write_escaped(&mut text, &self.value, self.max)?;
            return f.pad(&text);
        }
        write_escaped(f, &self.value, self.max)
    }
}

impl<T: fmt::Display> fmt::Debug for Untrusted<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_char('"')?;
        write_escaped(f, &self.value, self.max)?;
        f.write_char('"')
    }
}

/// Formats `value` into `out` escaped, at most `max` characters plus the marker.
fn write_escaped<W: fmt::Write + ?Sized>(
    out: &mut W,
    value: &impl fmt::Display,
    max: usize,
) -> fmt::Result {
    let mut escaper = Escaper::new(out, max);
    write!(escaper, "{value}")?;
    escaper.finish()
}

/// The one escaping routine: a `fmt::Write` that escapes what is written through it, stops
/// after `max` characters and counts what it left out; [`Escaper::finish`] adds the marker.
/// Public so that a log formatter can stream field values through it.
pub struct Escaper<'w, W: fmt::Write + ?Sized> {
    out: &'w mut W,
    /// Characters still allowed.
    left: usize,
    /// Input bytes left out so far.
    omitted: usize,
}

impl<W: fmt::Write + ?Sized> fmt::Debug for Escaper<'_, W> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Escaper")
            .field("left", &self.left)
            .field("omitted", &self.omitted)
            .finish_non_exhaustive()
    }
}

impl<'w, W: fmt::Write + ?Sized> Escaper<'w, W> {
    /// Escapes into `out`, at most `max` characters.
    pub fn new(out: &'w mut W, max: usize) -> Self {
        Self {
            out,
            left: max,
            omitted: 0,
        }
    }

    /// Writes the marker if anything was left out. Call once, at the end.
    pub fn finish(self) -> fmt::Result {
        if self.omitted > 0 {
            write!(self.out, "…[+{} bytes]", self.omitted)?;
        }
        Ok(())
    }

    /// A byte that is not UTF-8: `\xNN`.
    fn invalid_byte(&mut self, b: u8) -> fmt::Result {
        self.emit(1, 4, |out| write!(out, "\\x{b:02x}"))
    }

    /// Writes one input unit of `input_len` bytes that prints as `width` characters, if it
    /// fits; once one does not, everything after it is only counted.
    fn emit(
        &mut self,
        input_len: usize,
        width: usize,
        write: impl FnOnce(&mut W) -> fmt::Result,
    ) -> fmt::Result {
        if self.omitted > 0 || width > self.left {
            self.omitted += input_len;
            return Ok(());
        }
        self.left -= width;
        write(self.out)
    }
}

impl<W: fmt::Write + ?Sized> fmt::Write for Escaper<'_, W> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        if self.omitted > 0 {
            self.omitted += s.len();
            return Ok(());
        }
        // Copy runs of plain characters in one call; stop at each one that needs escaping.
        let mut plain_start = 0;
        let mut plain_chars = 0;
        for (i, c) in s.char_indices() {
            let escape = escape_of(c);
            if escape.is_none() && plain_chars < self.left {
                plain_chars += 1;
                continue;
            }
            self.left -= plain_chars;
            self.out.write_str(&s[plain_start..i])?;
            plain_chars = 0;
            plain_start = i + c.len_utf8();
            match escape {
                Some(e) => self.emit(c.len_utf8(), e.width(), |out| e.write(out))?,
                None => self.emit(c.len_utf8(), 1, |out| out.write_char(c))?,
            }
            if self.omitted > 0 {
                self.omitted += s.len() - plain_start;
                return Ok(());
            }
        }
        self.left -= plain_chars;
        self.out.write_str(&s[plain_start..])
    }
}

/// How a character that must not reach the terminal raw is printed.
#[derive(Clone, Copy)]
enum Escape {
    /// `\n`, `\r`, `\t`.
    Short(char),
    /// `\x1b`: C0 controls and DEL.
    Hex(u8),
    /// `\u{9b}`: C1 controls and format characters.
    Unicode(u32),
}

impl Escape {
    /// Characters it prints as.
    fn width(self) -> usize {
        match self {
            Self::Short(_) => 2,
            Self::Hex(_) => 4,
            // `\u{` + hex digits + `}`
            Self::Unicode(n) => 4 + hex_digits(n),
        }
    }

    fn write<W: fmt::Write + ?Sized>(self, out: &mut W) -> fmt::Result {
        match self {
            Self::Short(c) => write!(out, "\\{c}"),
            Self::Hex(b) => write!(out, "\\x{b:02x}"),
            Self::Unicode(n) => write!(out, "\\u{{{n:x}}}"),
        }
    }
}

fn hex_digits(n: u32) -> usize {
    let mut digits = 1;
    let mut rest = n >> 4;
    while rest > 0 {
        digits += 1;
        rest >>= 4;
    }
    digits
}

/// `None` for a character that may be printed as it is.
fn escape_of(c: char) -> Option<Escape> {
    let n = u32::from(c);
    match c {
        '\n' => Some(Escape::Short('n')),
        '\r' => Some(Escape::Short('r')),
        '\t' => Some(Escape::Short('t')),
        '\0'..='\x1f' | '\x7f' => u8::try_from(n).ok().map(Escape::Hex),
        '\u{80}'..='\u{9f}' => Some(Escape::Unicode(n)),
        _ if n < 0xa0 => None,
        _ if is_spoofing(n) => Some(Escape::Unicode(n)),
        _ => None,
    }
}

/// Unicode format characters (general category Cf, Unicode 15.1), the line and paragraph
/// separators (Zl, Zp) and the invisible Hangul fillers: characters that reorder, hide or
/// break text without looking like anything.
fn is_spoofing(n: u32) -> bool {
    matches!(
        n,
        0xad
            | 0x600..=0x605
            | 0x61c
            | 0x6dd
            | 0x70f
            | 0x890..=0x891
            | 0x8e2
            | 0x115f..=0x1160
            | 0x180e
            | 0x200b..=0x200f
            | 0x2028..=0x202e
            | 0x2060..=0x206f
            | 0x3164
            | 0xfeff
            | 0xffa0
            | 0xfff9..=0xfffb
            | 0x110bd
            | 0x110cd
            | 0x13430..=0x1343f
            | 0x1bca0..=0x1bca3
            | 0x1d173..=0x1d17a
            | 0xe0001
            | 0xe0020..=0xe007f
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Escapes `input` (bytes, so that invalid UTF-8 can be given) with bound `max` and
    /// compares with `want`; also checks the `&str` entry point and the wrapper agree with the
    /// bytes one, and that escaping again changes nothing.
    fn check(input: &[u8], max: usize, want: &str) {
        let got = escape_bytes(input, max);
        assert_eq!(got, want, "input {input:?}");
        if let Ok(text) = std::str::from_utf8(input) {
            assert_eq!(escape(text, max), want, "str entry point");
            assert_eq!(Untrusted::bounded(text, max).to_string(), want, "wrapper");
        }
        assert_eq!(escape(&got, max + MARKER_MAX), got, "not idempotent");
        assert!(got.chars().count() <= max + MARKER_MAX, "not bounded");
        assert!(
            !got.chars()
                .any(|c| c.is_control() || is_spoofing(u32::from(c))),
            "raw control left in {got:?}"
        );
    }

    #[test]
    fn escapes_and_bounds() {
        for (input, max, want) in [
            // Plain text, non-ASCII letters and emoji pass; backslashes too.
            (&b"alice"[..], SHORT, "alice"),
            ("Zoë 東京 🚀".as_bytes(), SHORT, "Zoë 東京 🚀"),
            (br"C:\Users\a", SHORT, r"C:\Users\a"),
            (b"", SHORT, ""),
            // C0 controls, ESC sequences, DEL, log forging.
            (b"a\x1b[31mred\x1b[0m", SHORT, r"a\x1b[31mred\x1b[0m"),
            (b"\x1b]0;pwned\x07", SHORT, r"\x1b]0;pwned\x07"),
            (
                b"bob\n2026-01-01T00:00:00Z INFO admin signed in",
                SHORT,
                r"bob\n2026-01-01T00:00:00Z INFO admin signed in",
            ),
            (b"a\rb\tc\0d\x7f", SHORT, r"a\rb\tc\x00d\x7f"),
            // C1 controls: CSI and NEL as characters.
            ("x\u{9b}2Jy\u{85}".as_bytes(), SHORT, r"x\u{9b}2Jy\u{85}"),
            // Bidi overrides and isolates, zero-width and other format characters.
            (
                "file\u{202e}gpj.exe".as_bytes(),
                SHORT,
                r"file\u{202e}gpj.exe",
            ),
            (
                "\u{2066}\u{2067}\u{2068}\u{2069}\u{202a}".as_bytes(),
                SHORT,
                r"\u{2066}\u{2067}\u{2068}\u{2069}\u{202a}",
            ),
            (
                "ad\u{200b}min\u{feff}\u{2028}\u{e0041}".as_bytes(),
                SHORT,
                r"ad\u{200b}min\u{feff}\u{2028}\u{e0041}",
            ),
            // Bytes that are not UTF-8, alone and between valid text.
            (b"\xff", SHORT, r"\xff"),
            (b"ok\xc3(\xe2\x82z", SHORT, r"ok\xc3(\xe2\x82z"),
            // Bounds: plain text, an escape never cut in half, the marker counts input bytes.
            (b"abcdefgh", 5, "abcde…[+3 bytes]"),
            (b"abcd\x1b[0m", 5, r"abcd…[+4 bytes]"),
            (b"ab\x1bcd", 6, r"ab\x1b…[+2 bytes]"),
            ("ééé".as_bytes(), 2, "éé…[+2 bytes]"),
            (b"\xff\xff\xff", 8, r"\xff\xff…[+1 bytes]"),
            (b"abc", 0, "…[+3 bytes]"),
        ] {
            check(input, max, want);
        }
    }

    #[test]
    fn a_megabyte_is_bounded() {
        let mut big = b"\x1b[2J".repeat(1000);
        big.extend(std::iter::repeat_n(b'A', 1 << 20));
        big.push(0xff);
        // 28 escaped `ESC [2J` are 196 characters; one more `\x1b` fills the 200.
        let want = format!(
            r"{}\x1b…[+{} bytes]",
            r"\x1b[2J".repeat(28),
            big.len() - 28 * 4 - 1
        );
        check(&big, SHORT, &want);
        // The wrapper streams: a megabyte through it is bounded the same way.
        let text = "\u{202e}".repeat(1 << 19);
        let got = Untrusted::long(&text).to_string();
        let marker = format!("…[+{} bytes]", text.len() - 125 * 3);
        assert_eq!(got, format!("{}{marker}", r"\u{202e}".repeat(125)));
    }

    #[test]
    fn clean_text_is_borrowed() {
        assert!(matches!(escape("alice", SHORT), Cow::Borrowed(_)));
        assert!(matches!(escape("a\nb", SHORT), Cow::Owned(_)));
        assert!(matches!(escape("abc", 2), Cow::Owned(_)));
    }

    #[test]
    fn json_keeps_its_value_and_loses_what_a_terminal_obeys() {
        for value in [
            "plain",
            "a\u{1b}[31m\nb",
            "x\u{9b}2J\u{202e}\u{2028}",
            "tag \u{e0041} and \u{200b}",
        ] {
            let json = serde_json::json!({ "user": value }).to_string();
            let safe = escape_json(&json);
            let back: serde_json::Value =
                serde_json::from_str(&safe).unwrap_or_else(|e| panic!("{e}: {safe}"));
            assert_eq!(back["user"], value);
            assert!(!safe.chars().any(char::is_control), "{safe}");
            assert!(!safe.chars().any(|c| is_spoofing(u32::from(c))), "{safe}");
        }
        assert_eq!(
            escape_json("{\"a\":\"\u{202e}\u{e0041}\"}"),
            r#"{"a":"\u202e\udb40\udc41"}"#
        );
        let pretty = "{\n\t\"a\": 1\r\n}";
        assert!(matches!(escape_json(pretty), Cow::Borrowed(_)));
    }

    /// A `Display` that writes itself in three pieces.
    struct Pieces;

    impl fmt::Display for Pieces {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("abc")?;
            f.write_str("\x1b")?;
            f.write_str("def")
        }
    }

    #[test]
    fn the_wrapper_pads_quotes_and_formats_any_display() {
        let name = "a\nb";
        assert_eq!(format!("[{:<6}]", Untrusted::new(name)), r"[a\nb  ]");
        assert_eq!(format!("{:?}", Untrusted::new(name)), r#""a\nb""#);
        let err = std::io::Error::other("disk \x1b[5mfull");
        assert_eq!(Untrusted::long(&err).to_string(), r"disk \x1b[5mfull");
        // A value written in several pieces is bounded as a whole.
        assert_eq!(Untrusted::bounded(Pieces, 6).to_string(), r"abc…[+4 bytes]");
        assert_eq!(
            Untrusted::bounded(Pieces, 7).to_string(),
            r"abc\x1b…[+3 bytes]"
        );
    }
}
