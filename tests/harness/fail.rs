//! Turning an error into a test failure that says what the harness was doing.
//!
//! The workspace denies `unwrap`/`expect`; the harness would otherwise be full of
//! `unwrap_or_else(|e| panic!(...))`. `or_fail("starting etcd")` reads better and keeps the cause.

use std::fmt::Display;

/// `.or_fail(what)`: the value, or a panic saying `what` failed and why.
pub trait OrFail<T> {
    /// Returns the value or panics with "`what`: cause".
    #[track_caller]
    fn or_fail(self, what: impl Display) -> T;
}

impl<T, E: Display> OrFail<T> for Result<T, E> {
    #[track_caller]
    fn or_fail(self, what: impl Display) -> T {
        match self {
            Ok(v) => v,
            Err(e) => panic!("{what}: {e}"),
        }
    }
}

impl<T> OrFail<T> for Option<T> {
    #[track_caller]
    fn or_fail(self, what: impl Display) -> T {
        match self {
            Some(v) => v,
            None => panic!("{what}"),
        }
    }
}
