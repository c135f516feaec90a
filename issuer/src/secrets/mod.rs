//! What must never leak, and the code that handles it: the redacted [`secret::Secret`] string,
//! encryption at rest ([`seal`]), password hashing ([`password`]), the TOTP second factor
//! ([`totp`]) and crash-safe private files (`private_file`). Depends on nothing else of the
//! crate: every layer above may use it.

pub mod password;
pub(crate) mod private_file;
pub mod seal;
pub mod secret;
pub mod totp;
