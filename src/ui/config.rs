//! `[ui]`: who may act through the web UI and the JSON API (src/ui/auth.rs).
//!
//! ```toml
//! [ui]
//! # `dvb2ip hash-password` prints one; "" = no password: actions from loopback only.
//! admin_password_hash = "pbkdf2-sha256$600000$<salt>$<hash>"
//! # Requests from this machine act without the password.
//! allow_loopback = true
//! ```

use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UiSection {
    /// The administrator's password, salted and hashed ([`super::auth::hash_password`]).
    #[serde(default)]
    pub admin_password_hash: String,
    /// Loopback peers act without the password.
    #[serde(default = "yes")]
    pub allow_loopback: bool,
}

fn yes() -> bool {
    true
}

impl Default for UiSection {
    fn default() -> Self {
        Self {
            admin_password_hash: String::new(),
            allow_loopback: true,
        }
    }
}

impl UiSection {
    /// Whether the hash is one [`super::auth::verify_password`] can check.
    pub fn check(&self) -> Result<(), String> {
        if self.admin_password_hash.is_empty()
            || super::auth::PasswordHash::parse(&self.admin_password_hash).is_some()
        {
            Ok(())
        } else {
            Err(
                "ui.admin_password_hash is not a hash `dvb2ip hash-password` printed \
                 (pbkdf2-sha256$<iterations>$<salt>$<hash>)"
                    .into(),
            )
        }
    }

    /// The line of `admin_password_hash` in `text`.
    pub fn line_of(text: &str) -> Option<usize> {
        text.lines()
            .position(|l| l.trim_start().starts_with("admin_password_hash"))
            .map(|i| i + 1)
    }
}
