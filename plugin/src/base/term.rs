//! File and directory names as the person reads them: the one place the plugin turns a path
//! into terminal text (a name can hold control characters too), through `shared::text`.

use std::path::Path;

use credential_shared::text;

/// `path` escaped and bounded for a terminal or an error message.
pub(crate) fn path(path: &Path) -> String {
    text::escape(&path.to_string_lossy(), text::LONG).into_owned()
}

#[cfg(test)]
mod tests {
    use super::path;

    #[test]
    fn control_characters_in_paths_are_escaped() {
        assert_eq!(path(Path::new("/home/a/x.json")), "/home/a/x.json");
        assert_eq!(path(Path::new("/tmp/a\u{1b}[2J\nb")), "/tmp/a\\x1b[2J\\nb");
    }

    use std::path::Path;
}
