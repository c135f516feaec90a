//! A person as an upstream OpenID provider describes them, after the ID token was verified:
//! what sign-in, the store's upstream sessions and policy read.

/// Who the provider says the person is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// `iss`.
    pub issuer: String,
    /// `sub`, stable at the provider.
    pub subject: String,
    /// From the configured username claim.
    pub username: String,
    /// `email`, when given.
    pub email: Option<String>,
    /// `email_verified`, when given.
    pub email_verified: Option<bool>,
    /// From the configured groups claim; names that cannot be group names are left out.
    pub groups: Vec<String>,
}
