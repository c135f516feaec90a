//! Text that comes from the network (the issuer's URLs, codes, names and error descriptions)
//! made safe to print on the person's terminal.

use std::borrow::Cow;
use std::path::Path;

/// Text from the issuer, made safe to print on a terminal: control characters (which could
/// move the cursor or rewrite the prompt) become `?`.
pub(crate) fn printable(text: &str) -> Cow<'_, str> {
    if text.chars().any(char::is_control) {
        Cow::Owned(
            text.chars()
                .map(|c| if c.is_control() { '?' } else { c })
                .collect(),
        )
    } else {
        Cow::Borrowed(text)
    }
}

/// A file or directory name as the person reads it: the one place paths are turned into
/// terminal text (a name can hold control characters too), so that how they are escaped can be
/// changed once for every message.
pub(crate) fn path(path: &Path) -> String {
    printable(&path.to_string_lossy()).into_owned()
}

#[cfg(test)]
mod tests {
    use super::printable;

    #[test]
    fn control_characters_are_replaced() {
        assert_eq!(printable("WDJB-MJHT"), "WDJB-MJHT");
        assert_eq!(printable("a\u{1b}[2Jb\r\n"), "a?[2Jb??");
    }
}
