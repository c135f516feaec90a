//! `[notifications]`: the chat webhook told about access requests and decisions, and the
//! HMAC key that signs what is sent to it.

use std::path::Path;

use url::Url;

use super::values::{read_small_text, MAX_SECRET_FILE};
use super::{invalid, ConfigError, FileNotifications};
use crate::secrets::secret::Secret;

/// `[notifications]`: the chat webhook told about requests and decisions.
#[derive(Debug, Clone)]
pub struct Notifications {
    /// Where to POST (http or https).
    pub webhook_url: Url,
    /// HMAC-SHA256 key for the `X-Credential-Signature` header, read at start.
    pub webhook_secret: Option<Secret>,
}

/// `[notifications]`, checked; `None` when no webhook is configured.
pub(super) fn notifications(
    file: Option<FileNotifications>,
) -> Result<Option<Notifications>, ConfigError> {
    let Some(n) = file else { return Ok(None) };
    let Some(url) = n.webhook_url else {
        if n.webhook_secret_file.is_some() {
            return Err(invalid(
                "notifications.webhook_secret_file",
                "needs notifications.webhook_url",
            ));
        }
        return Ok(None);
    };
    let webhook_url = Url::parse(&url)
        .map_err(|e| invalid("notifications.webhook_url", format!("not a URL: {e}")))?;
    if !matches!(webhook_url.scheme(), "http" | "https") || webhook_url.host().is_none() {
        return Err(invalid(
            "notifications.webhook_url",
            "must be an http or https URL",
        ));
    }
    let webhook_secret = n
        .webhook_secret_file
        .map(|path| webhook_secret(&path))
        .transpose()?;
    Ok(Some(Notifications {
        webhook_url,
        webhook_secret,
    }))
}

/// The HMAC key in `webhook_secret_file`: text of at least 16 characters, surrounding white
/// space ignored.
fn webhook_secret(path: &Path) -> Result<Secret, ConfigError> {
    let text = read_small_text(path, MAX_SECRET_FILE).map_err(|e| {
        invalid(
            "notifications.webhook_secret_file",
            format!("cannot read {}: {e}", path.display()),
        )
    })?;
    let text = text.trim();
    if text.len() < 16 {
        return Err(invalid(
            "notifications.webhook_secret_file",
            "the secret must be at least 16 characters",
        ));
    }
    Ok(Secret::new(text.to_owned()))
}
