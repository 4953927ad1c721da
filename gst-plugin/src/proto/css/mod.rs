//! DVB-CSS (ETSI TS 103 286-2, HbbTV 2 companion screen synchronisation) protocol logic.
//!
//! GStreamer-free and I/O-free: bytes, JSON text and numbers in, bytes, JSON text and numbers
//! out. The servers and clients that own sockets live elsewhere and call into these modules.
//! Nothing here reads the system clock except [`clock::monotonic_ns`], which exists for
//! callers; every model takes the current time as an argument.
//!
//! | module | protocol part |
//! |--------|---------------|
//! | [`wc`] | CSS-WC 32-byte messages, measurement maths, lowest-dispersion client algorithm, server replies |
//! | [`clock`] | correlations, correlated and tunable clocks, dispersion, change size |
//! | [`cii`] | CSS-CII JSON messages, omitted-versus-null, state diff and merge |
//! | [`ts`] | CSS-TS SetupData, Control Timestamp, AptEptLpt, stem matching, "must send" rule |
//! | [`timeline`] | timeline selectors and their tick rates |
//! | [`contentid`] | DVB `dvb://` content identifiers |
//!
//! Units: wall clock and system times are nanoseconds; timeline positions are ticks of the
//! timeline's own rate; error bounds and dispersions are seconds (`f64`), as in pydvbcss.

use std::fmt;

pub mod cii;
pub mod clock;
pub mod contentid;
pub mod timeline;
pub mod ts;
pub mod wc;

/// Largest CSS-CII / CSS-TS JSON text message (bytes) that we parse.
///
/// Servers must refuse (drop, and may close on) larger WebSocket messages before parsing; the
/// `parse` functions in [`cii`] and [`ts`] enforce the same limit. Real messages are well under
/// 4 KiB; 64 KiB leaves room for many `timelines` entries and `private` data.
pub const MAX_JSON_MESSAGE_LEN: usize = 64 * 1024;

/// Why a CSS-CII or CSS-TS JSON message could not be used.
#[derive(Debug)]
pub enum JsonMessageError {
    /// The text is longer than [`MAX_JSON_MESSAGE_LEN`].
    TooLarge {
        /// Length of the offered text in bytes.
        len: usize,
    },
    /// Not JSON, not an object, or a property has the wrong JSON type or a missing member.
    Malformed(serde_json::Error),
    /// Well-formed JSON that breaks a DVB-CSS rule (the string says which).
    Invalid(String),
}

impl fmt::Display for JsonMessageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TooLarge { len } => write!(
                f,
                "message of {len} bytes exceeds the {MAX_JSON_MESSAGE_LEN}-byte limit"
            ),
            Self::Malformed(e) => write!(f, "malformed message: {e}"),
            Self::Invalid(why) => write!(f, "invalid message: {why}"),
        }
    }
}

impl std::error::Error for JsonMessageError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Malformed(e) => Some(e),
            _ => None,
        }
    }
}

impl From<serde_json::Error> for JsonMessageError {
    fn from(e: serde_json::Error) -> Self {
        Self::Malformed(e)
    }
}

/// Size check plus `serde_json::from_str`, shared by the message parsers.
pub(crate) fn from_json<'a, T: serde::Deserialize<'a>>(text: &'a str) -> Result<T, JsonMessageError> {
    if text.len() > MAX_JSON_MESSAGE_LEN {
        return Err(JsonMessageError::TooLarge { len: text.len() });
    }
    Ok(serde_json::from_str(text)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oversized_text_is_rejected_before_parsing() {
        let text = " ".repeat(MAX_JSON_MESSAGE_LEN + 1);
        let r: Result<serde_json::Value, _> = from_json(&text);
        assert!(matches!(r, Err(JsonMessageError::TooLarge { len }) if len == MAX_JSON_MESSAGE_LEN + 1));
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_stack_overflow() {
        let text = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
        let r: Result<serde_json::Value, _> = from_json(&text);
        assert!(matches!(r, Err(JsonMessageError::Malformed(_))));
    }

    #[test]
    fn errors_display() {
        let e = from_json::<serde_json::Value>("{").unwrap_err();
        assert!(e.to_string().starts_with("malformed message"));
        assert!(std::error::Error::source(&e).is_some());
        assert!(JsonMessageError::Invalid("x".into()).to_string().contains('x'));
    }
}
