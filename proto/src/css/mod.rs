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
//! | [`lines`] | `dvbcsssink`'s timeline lines: running time → ticks, when an anchor moves them |
//! | [`media`] | a re-encoded copy's PTS related to the broadcast's (the companion page's mapping) |
//!
//! Units: wall clock and system times are nanoseconds; timeline positions are ticks of the
//! timeline's own rate; error bounds and dispersions are seconds (`f64`), as in pydvbcss.

use std::fmt;

pub mod cii;
pub mod clock;
pub mod contentid;
pub mod lines;
pub mod media;
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

/// Size check, "must be a JSON object" check, then `serde_json::from_str`; shared by the
/// message parsers. (serde's derived structs would also accept a JSON array positionally.)
pub(crate) fn from_json<'a, T: serde::Deserialize<'a>>(
    text: &'a str,
) -> Result<T, JsonMessageError> {
    if text.len() > MAX_JSON_MESSAGE_LEN {
        return Err(JsonMessageError::TooLarge { len: text.len() });
    }
    if !text.trim_start().starts_with('{') {
        return Err(JsonMessageError::Invalid("not a JSON object".into()));
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
        assert!(
            matches!(r, Err(JsonMessageError::TooLarge { len }) if len == MAX_JSON_MESSAGE_LEN + 1)
        );
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_stack_overflow() {
        let text = format!("{}{}", "{\"a\":[".repeat(5_000), "]}".repeat(5_000));
        let r: Result<serde_json::Value, _> = from_json(&text);
        assert!(matches!(r, Err(JsonMessageError::Malformed(_))));
    }

    /// Truncations and single-character substitutions of valid messages never panic any
    /// parser or validator.
    #[test]
    fn mutated_messages_never_panic() {
        let samples = [
            r#"{"protocolVersion":"1.1","contentId":"dvb://233a.1004.1044;363a~20130218T0915Z--PT00H45M","contentIdStatus":"final","presentationStatus":"okay","wcUrl":"udp://192.0.2.10:6677","tsUrl":"ws://192.0.2.10:7681/ts","timelines":[{"timelineSelector":"urn:dvb:css:timeline:pts","timelineProperties":{"unitsPerTick":1,"unitsPerSecond":90000,"accuracy":0.5}}],"private":[{"type":"urn:x","a":1}]}"#,
            r#"{"contentIdStem":"dvb://233a","timelineSelector":"urn:dvb:css:timeline:temi:1:1"}"#,
            r#"{"contentTime":"1234567","wallClockTime":"98765432100000","timelineSpeedMultiplier":1.0}"#,
            r#"{"actual":{"contentTime":"10","wallClockTime":"20"},"earliest":{"contentTime":"10","wallClockTime":"minusinfinity"},"latest":{"contentTime":"10","wallClockTime":"plusinfinity"}}"#,
        ];
        let run = |t: &str| {
            if let Ok(m) = cii::CiiMessage::parse(t) {
                let _ = m.validate();
                let mut s = cii::CiiState::default();
                s.apply(&m);
                let _ = cii::CiiState::diff(&cii::CiiState::default(), &s);
                if let Some(id) = m.content_id.value() {
                    let _ = contentid::DvbContentId::parse(id);
                }
            }
            if let Ok(s) = ts::SetupData::parse(t) {
                let _ = timeline::TimelineSelector::parse(&s.timeline_selector);
            }
            if let Ok(c) = ts::ControlTimestamp::parse(t) {
                let _ = c.to_json();
            }
            if let Ok(a) = ts::AptEptLpt::parse(t) {
                let _ = a.to_json();
            }
        };
        for text in samples {
            let chars: Vec<char> = text.chars().collect();
            for i in 0..chars.len() {
                run(&chars[..i].iter().collect::<String>());
                for r in ['"', '{', '}', '[', ':', ',', '0', '-', 'n', ' ', '\\', 'é'] {
                    let mut m = chars.clone();
                    m[i] = r;
                    run(&m.iter().collect::<String>());
                }
            }
        }
    }

    #[test]
    fn non_objects_are_rejected() {
        for t in ["[]", "1", "\"x\"", "null", ""] {
            assert!(matches!(
                from_json::<serde_json::Value>(t),
                Err(JsonMessageError::Invalid(_))
            ));
        }
    }

    #[test]
    fn errors_display() {
        let e = from_json::<serde_json::Value>("{").unwrap_err();
        assert!(e.to_string().starts_with("malformed message"));
        assert!(std::error::Error::source(&e).is_some());
        assert!(JsonMessageError::Invalid("x".into())
            .to_string()
            .contains('x'));
    }
}
