//! CSS-CII, content identification and other information (digest section 4).
//!
//! * [`CiiMessage`] is one message as it travels: every property is a [`Field`], which tells
//!   an omitted property (unchanged) from one present with `null` (now null) — digest 4.3.
//! * [`CiiState`] is the full state (each property a value or null). A server keeps one and
//!   sends [`CiiState::full_message`] first, then [`CiiState::diff`] on every change; a client
//!   keeps a mirror, starting from [`CiiState::default`] (all null), and merges each received
//!   message with [`CiiState::apply`].
//! * [`CiiMessage::parse`] checks size, JSON syntax and property types (unknown properties
//!   are ignored); [`CiiMessage::validate`] checks the value rules (servers validate before
//!   sending; tolerant clients may skip it).

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::timeline::{TickRate, TimelineSelector};
use super::{from_json, JsonMessageError};

/// The only CII protocol version.
pub const PROTOCOL_VERSION: &str = "1.1";

/// A property in one message: omitted, present with `null`, or present with a value.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Field<T> {
    /// Not in the message: the receiver keeps its previous value.
    #[default]
    Omit,
    /// Present as `null`: the value is now null (unknown or withdrawn).
    Null,
    /// Present with a value.
    Value(T),
}

impl<T> Field<T> {
    /// `None` → `Null`, `Some(v)` → `Value(v)`.
    pub fn from_option(v: Option<T>) -> Self {
        match v {
            None => Self::Null,
            Some(v) => Self::Value(v),
        }
    }

    /// Whether the property is absent (used to skip it when serialising).
    pub fn is_omit(&self) -> bool {
        matches!(self, Self::Omit)
    }

    /// `None` if omitted, `Some(None)` if null, `Some(Some(v))` if a value.
    pub fn as_update(&self) -> Option<Option<&T>> {
        match self {
            Self::Omit => None,
            Self::Null => Some(None),
            Self::Value(v) => Some(Some(v)),
        }
    }

    /// The value, if present and not null.
    pub fn value(&self) -> Option<&T> {
        match self {
            Self::Value(v) => Some(v),
            _ => None,
        }
    }
}

impl<T: Serialize> Serialize for Field<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            // `Omit` is skipped by `skip_serializing_if`; if serialised anyway it is null.
            Self::Omit | Self::Null => s.serialize_none(),
            Self::Value(v) => s.serialize_some(v),
        }
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Field<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // Only called for properties that are present (absent ones take the default, Omit).
        Option::<T>::deserialize(d).map(Self::from_option)
    }
}

/// `contentIdStatus`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ContentIdStatus {
    /// The id will still gain detail (e.g. the event is not known yet).
    Partial,
    /// The id is complete.
    Final,
}

/// One element of a `private` array: an object with a `"type"` URI plus free members.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PrivateData {
    /// URI naming the kind of private data.
    #[serde(rename = "type")]
    pub type_uri: String,
    /// Any other members.
    #[serde(flatten)]
    pub members: serde_json::Map<String, serde_json::Value>,
}

impl PrivateData {
    /// Private data with only a type.
    pub fn new(type_uri: impl Into<String>) -> Self {
        Self {
            type_uri: type_uri.into(),
            members: serde_json::Map::new(),
        }
    }
}

/// `timelineProperties` of a timeline entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TimelineProperties {
    /// Units per tick.
    pub units_per_tick: u64,
    /// Units per second.
    pub units_per_second: u64,
    /// Accuracy in seconds, if stated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accuracy: Option<f64>,
}

/// One `timelines` entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TimelineOption {
    /// The selector a CSS-TS client would ask for.
    pub timeline_selector: String,
    /// Tick rate and accuracy.
    pub timeline_properties: TimelineProperties,
    /// Optional private data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub private: Option<Vec<PrivateData>>,
}

impl TimelineOption {
    /// An entry for `selector` ticking at `rate`, with an optional accuracy (seconds).
    pub fn new(selector: &TimelineSelector, rate: TickRate, accuracy: Option<f64>) -> Self {
        Self {
            timeline_selector: selector.to_string(),
            timeline_properties: TimelineProperties {
                units_per_tick: rate.units_per_tick,
                units_per_second: rate.units_per_second,
                accuracy,
            },
            private: None,
        }
    }

    /// The tick rate `unitsPerSecond / unitsPerTick` (checklist 38); `None` if either is 0.
    pub fn tick_rate(&self) -> Option<TickRate> {
        TickRate::new(
            self.timeline_properties.units_per_tick,
            self.timeline_properties.units_per_second,
        )
    }
}

/// The CII properties, for reporting what changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CiiProperty {
    /// `protocolVersion`
    ProtocolVersion,
    /// `mrsUrl`
    MrsUrl,
    /// `contentId`
    ContentId,
    /// `contentIdStatus`
    ContentIdStatus,
    /// `presentationStatus`
    PresentationStatus,
    /// `wcUrl`
    WcUrl,
    /// `tsUrl`
    TsUrl,
    /// `teUrl`
    TeUrl,
    /// `timelines`
    Timelines,
    /// `private`
    Private,
}

impl CiiProperty {
    /// The JSON property name.
    pub fn name(self) -> &'static str {
        match self {
            Self::ProtocolVersion => "protocolVersion",
            Self::MrsUrl => "mrsUrl",
            Self::ContentId => "contentId",
            Self::ContentIdStatus => "contentIdStatus",
            Self::PresentationStatus => "presentationStatus",
            Self::WcUrl => "wcUrl",
            Self::TsUrl => "tsUrl",
            Self::TeUrl => "teUrl",
            Self::Timelines => "timelines",
            Self::Private => "private",
        }
    }
}

/// One CII message. `CiiMessage::default()` is the empty object `{}`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CiiMessage {
    /// `protocolVersion` (`"1.1"`).
    #[serde(default, skip_serializing_if = "Field::is_omit")]
    pub protocol_version: Field<String>,
    /// `mrsUrl`.
    #[serde(default, skip_serializing_if = "Field::is_omit")]
    pub mrs_url: Field<String>,
    /// `contentId`.
    #[serde(default, skip_serializing_if = "Field::is_omit")]
    pub content_id: Field<String>,
    /// `contentIdStatus`.
    #[serde(default, skip_serializing_if = "Field::is_omit")]
    pub content_id_status: Field<ContentIdStatus>,
    /// `presentationStatus` (space-separated words).
    #[serde(default, skip_serializing_if = "Field::is_omit")]
    pub presentation_status: Field<String>,
    /// `wcUrl` (`udp://host:port`).
    #[serde(default, skip_serializing_if = "Field::is_omit")]
    pub wc_url: Field<String>,
    /// `tsUrl` (`ws://…`).
    #[serde(default, skip_serializing_if = "Field::is_omit")]
    pub ts_url: Field<String>,
    /// `teUrl` (`ws://…`).
    #[serde(default, skip_serializing_if = "Field::is_omit")]
    pub te_url: Field<String>,
    /// `timelines`.
    #[serde(default, skip_serializing_if = "Field::is_omit")]
    pub timelines: Field<Vec<TimelineOption>>,
    /// `private`.
    #[serde(default, skip_serializing_if = "Field::is_omit")]
    pub private: Field<Vec<PrivateData>>,
}

fn invalid(why: impl Into<String>) -> JsonMessageError {
    JsonMessageError::Invalid(why.into())
}

/// RFC 3986 scheme followed by `:`.
fn has_uri_scheme(s: &str) -> bool {
    let Some((scheme, _)) = s.split_once(':') else {
        return false;
    };
    let mut b = scheme.bytes();
    b.next().is_some_and(|c| c.is_ascii_alphabetic())
        && b.all(|c| c.is_ascii_alphanumeric() || matches!(c, b'+' | b'-' | b'.'))
}

/// `<scheme>://<host>:<port>…` with a non-empty host and a decimal port 0–65535.
fn has_host_port(s: &str, scheme: &str, path_allowed: bool) -> bool {
    let Some(rest) = s.strip_prefix(scheme) else {
        return false;
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    if !path_allowed && !path.is_empty() {
        return false;
    }
    let Some((host, port)) = authority.rsplit_once(':') else {
        // ws URLs may use the default port
        return path_allowed && !authority.is_empty();
    };
    !host.is_empty()
        && !port.is_empty()
        && port.len() <= 5
        && port.bytes().all(|c| c.is_ascii_digit())
        && port.parse::<u16>().is_ok()
}

/// Checklist 36: one or more non-empty words separated by single spaces, the first `okay`,
/// `transitioning` or `fault`.
pub fn is_valid_presentation_status(s: &str) -> bool {
    let mut words = s.split(' ');
    matches!(words.next(), Some("okay" | "transitioning" | "fault")) && words.all(|w| !w.is_empty())
}

fn validate_private(p: &[PrivateData], what: &str) -> Result<(), JsonMessageError> {
    match p.iter().find(|d| !has_uri_scheme(&d.type_uri)) {
        Some(d) => Err(invalid(format!(
            "{what}: type {:?} is not a URI",
            d.type_uri
        ))),
        None => Ok(()),
    }
}

impl CiiMessage {
    /// Parse a received text message (size, JSON, property types; unknown properties are
    /// ignored). Does not apply [`Self::validate`].
    pub fn parse(text: &str) -> Result<Self, JsonMessageError> {
        from_json(text)
    }

    /// The JSON text: one object, omitted properties left out, nulls written as `null`.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("CII messages have string keys and plain values")
    }

    /// Whether the message carries no property at all (`{}`).
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    /// Check the value rules of digest 4.2 for every present, non-null property.
    pub fn validate(&self) -> Result<(), JsonMessageError> {
        if let Field::Value(v) = &self.protocol_version {
            if v != PROTOCOL_VERSION {
                return Err(invalid(format!("protocolVersion {v:?} is not \"1.1\"")));
            }
        }
        if let Field::Value(v) = &self.presentation_status {
            if !is_valid_presentation_status(v) {
                return Err(invalid(format!("presentationStatus {v:?}")));
            }
        }
        if let Field::Value(v) = &self.wc_url {
            if !has_host_port(v, "udp://", false) {
                return Err(invalid(format!("wcUrl {v:?} is not udp://host:port")));
            }
        }
        for (name, f) in [("tsUrl", &self.ts_url), ("teUrl", &self.te_url)] {
            if let Field::Value(v) = f {
                if !has_host_port(v, "ws://", true) && !has_host_port(v, "wss://", true) {
                    return Err(invalid(format!("{name} {v:?} is not a ws:// URL")));
                }
            }
        }
        for (name, f) in [("mrsUrl", &self.mrs_url), ("contentId", &self.content_id)] {
            if let Field::Value(v) = f {
                if !has_uri_scheme(v) {
                    return Err(invalid(format!("{name} {v:?} is not a URI")));
                }
            }
        }
        if let Field::Value(ts) = &self.timelines {
            for t in ts {
                let p = &t.timeline_properties;
                if t.timeline_selector.is_empty() {
                    return Err(invalid("timelines: empty timelineSelector"));
                }
                if p.units_per_tick == 0 || p.units_per_second == 0 {
                    return Err(invalid(format!(
                        "timelines: {}: units must be > 0",
                        t.timeline_selector
                    )));
                }
                if p.accuracy.is_some_and(|a| !a.is_finite() || a < 0.0) {
                    return Err(invalid(format!(
                        "timelines: {}: accuracy must be a non-negative number",
                        t.timeline_selector
                    )));
                }
                if let Some(p) = &t.private {
                    validate_private(p, "timelines private")?;
                }
            }
        }
        if let Field::Value(p) = &self.private {
            validate_private(p, "private")?;
        }
        Ok(())
    }
}

/// The full CII state: every property a value or null (`None`).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct CiiState {
    /// `protocolVersion`.
    pub protocol_version: Option<String>,
    /// `mrsUrl`.
    pub mrs_url: Option<String>,
    /// `contentId`.
    pub content_id: Option<String>,
    /// `contentIdStatus`.
    pub content_id_status: Option<ContentIdStatus>,
    /// `presentationStatus`.
    pub presentation_status: Option<String>,
    /// `wcUrl`.
    pub wc_url: Option<String>,
    /// `tsUrl`.
    pub ts_url: Option<String>,
    /// `teUrl`.
    pub te_url: Option<String>,
    /// `timelines`.
    pub timelines: Option<Vec<TimelineOption>>,
    /// `private`.
    pub private: Option<Vec<PrivateData>>,
}

fn diff_field<T: Clone + PartialEq>(old: &Option<T>, new: &Option<T>) -> Field<T> {
    if old == new {
        Field::Omit
    } else {
        Field::from_option(new.clone())
    }
}

fn apply_field<T: Clone + PartialEq>(
    slot: &mut Option<T>,
    f: &Field<T>,
    prop: CiiProperty,
    changed: &mut Vec<CiiProperty>,
) {
    if let Some(update) = f.as_update() {
        let update = update.cloned();
        if *slot != update {
            *slot = update;
            changed.push(prop);
        }
    }
}

impl CiiState {
    /// A server's starting state: `protocolVersion` "1.1", everything else null.
    pub fn server_default() -> Self {
        Self {
            protocol_version: Some(PROTOCOL_VERSION.to_owned()),
            ..Self::default()
        }
    }

    /// The first message for a new client: every property, nulls included, and
    /// `protocolVersion` "1.1" even if the state lacks it (checklist 28–30).
    pub fn full_message(&self) -> CiiMessage {
        let mut m = Self::diff_inner(&Self::default(), self, true);
        m.protocol_version = Field::Value(
            self.protocol_version
                .clone()
                .unwrap_or_else(|| PROTOCOL_VERSION.to_owned()),
        );
        m
    }

    /// The update a server sends when its state goes from `prev` to `new`: only the changed
    /// properties, plus `contentIdStatus` whenever `contentId` is sent. `None` when nothing
    /// changed (checklist 32–34).
    pub fn diff(prev: &Self, new: &Self) -> Option<CiiMessage> {
        let m = Self::diff_inner(prev, new, false);
        (!m.is_empty()).then_some(m)
    }

    /// Changed properties (or, with `all`, every property) of `new` relative to `prev`.
    fn diff_inner(prev: &Self, new: &Self, all: bool) -> CiiMessage {
        fn pick<T: Clone + PartialEq>(old: &Option<T>, new: &Option<T>, all: bool) -> Field<T> {
            if all {
                Field::from_option(new.clone())
            } else {
                diff_field(old, new)
            }
        }
        let mut m = CiiMessage {
            protocol_version: pick(&prev.protocol_version, &new.protocol_version, all),
            mrs_url: pick(&prev.mrs_url, &new.mrs_url, all),
            content_id: pick(&prev.content_id, &new.content_id, all),
            content_id_status: pick(&prev.content_id_status, &new.content_id_status, all),
            presentation_status: pick(&prev.presentation_status, &new.presentation_status, all),
            wc_url: pick(&prev.wc_url, &new.wc_url, all),
            ts_url: pick(&prev.ts_url, &new.ts_url, all),
            te_url: pick(&prev.te_url, &new.te_url, all),
            timelines: pick(&prev.timelines, &new.timelines, all),
            private: pick(&prev.private, &new.private, all),
        };
        if !m.content_id.is_omit() && m.content_id_status.is_omit() {
            m.content_id_status = Field::from_option(new.content_id_status);
        }
        m
    }

    /// Merge a received message: omitted properties stay, `null` sets null, values replace.
    /// Returns the properties whose value really changed, in declaration order
    /// (checklist 42–45).
    pub fn apply(&mut self, m: &CiiMessage) -> Vec<CiiProperty> {
        use CiiProperty as P;
        let mut c = Vec::new();
        apply_field(
            &mut self.protocol_version,
            &m.protocol_version,
            P::ProtocolVersion,
            &mut c,
        );
        apply_field(&mut self.mrs_url, &m.mrs_url, P::MrsUrl, &mut c);
        apply_field(&mut self.content_id, &m.content_id, P::ContentId, &mut c);
        apply_field(
            &mut self.content_id_status,
            &m.content_id_status,
            P::ContentIdStatus,
            &mut c,
        );
        apply_field(
            &mut self.presentation_status,
            &m.presentation_status,
            P::PresentationStatus,
            &mut c,
        );
        apply_field(&mut self.wc_url, &m.wc_url, P::WcUrl, &mut c);
        apply_field(&mut self.ts_url, &m.ts_url, P::TsUrl, &mut c);
        apply_field(&mut self.te_url, &m.te_url, P::TeUrl, &mut c);
        apply_field(&mut self.timelines, &m.timelines, P::Timelines, &mut c);
        apply_field(&mut self.private, &m.private, P::Private, &mut c);
        c
    }

    /// The tick rate of the timeline named `selector` in `timelines`, if listed.
    pub fn timeline_tick_rate(&self, selector: &str) -> Option<TickRate> {
        self.timelines
            .as_ref()?
            .iter()
            .find(|t| t.timeline_selector == selector)?
            .tick_rate()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    /// Digest 4.2 example first message.
    const SPEC_FIRST: &str = r#"{"protocolVersion": "1.1",
 "contentId": "dvb://2174.0004.10bf;5c1e~20240301T1830Z--PT00H30M",
 "contentIdStatus": "final",
 "presentationStatus": "okay",
 "wcUrl": "udp://192.0.2.10:6677",
 "tsUrl": "ws://192.0.2.10:7681/ts",
 "timelines": [
   {"timelineSelector": "urn:dvb:css:timeline:pts",
    "timelineProperties": {"unitsPerTick": 1, "unitsPerSecond": 90000}}]}"#;

    fn spec_state() -> CiiState {
        CiiState {
            protocol_version: Some("1.1".into()),
            content_id: Some("dvb://2174.0004.10bf;5c1e~20240301T1830Z--PT00H30M".into()),
            content_id_status: Some(ContentIdStatus::Final),
            presentation_status: Some("okay".into()),
            wc_url: Some("udp://192.0.2.10:6677".into()),
            ts_url: Some("ws://192.0.2.10:7681/ts".into()),
            timelines: Some(vec![TimelineOption::new(
                &TimelineSelector::Pts,
                TickRate::PTS,
                None,
            )]),
            ..CiiState::default()
        }
    }

    fn as_value(m: &CiiMessage) -> Value {
        serde_json::from_str(&m.to_json()).unwrap()
    }

    #[test]
    fn spec_example_parses_validates_and_applies() {
        let m = CiiMessage::parse(SPEC_FIRST).unwrap();
        m.validate().unwrap();
        assert!(m.mrs_url.is_omit());
        let mut mirror = CiiState::default();
        let changed = mirror.apply(&m);
        assert_eq!(mirror, spec_state());
        assert_eq!(changed.len(), 7);
        assert_eq!(
            mirror.timeline_tick_rate("urn:dvb:css:timeline:pts"),
            Some(TickRate::PTS)
        );
        // re-serialising gives the same JSON value as the spec text
        let want: Value = serde_json::from_str(SPEC_FIRST).unwrap();
        assert_eq!(as_value(&m), want);
    }

    #[test]
    fn spec_example_update_after_channel_change() {
        let before = spec_state();
        let after = CiiState {
            content_id: Some("dvb://2174.0004.10c0".into()),
            content_id_status: Some(ContentIdStatus::Partial),
            ..before.clone()
        };
        let u = CiiState::diff(&before, &after).unwrap();
        assert_eq!(
            u.to_json(),
            r#"{"contentId":"dvb://2174.0004.10c0","contentIdStatus":"partial"}"#
        );
    }

    #[test]
    fn checklist_29_30_first_message_is_complete() {
        let m = CiiState::default().full_message();
        assert_eq!(m.protocol_version, Field::Value("1.1".into()));
        let v = as_value(&spec_state().full_message());
        let obj = v.as_object().unwrap();
        for p in [
            "protocolVersion",
            "mrsUrl",
            "contentId",
            "contentIdStatus",
            "presentationStatus",
            "wcUrl",
            "tsUrl",
            "teUrl",
            "timelines",
            "private",
        ] {
            assert!(obj.contains_key(p), "{p}");
        }
        assert_eq!(obj["mrsUrl"], Value::Null);
        assert_eq!(obj["contentIdStatus"], "final");
        // a client mirror fed the first message equals the server state
        let mut mirror = CiiState::default();
        mirror.apply(&spec_state().full_message());
        assert_eq!(mirror, spec_state());
    }

    #[test]
    fn checklist_31_message_is_one_json_object() {
        let v = as_value(&spec_state().full_message());
        assert!(v.is_object());
        assert_eq!(CiiMessage::default().to_json(), "{}");
    }

    #[test]
    fn checklist_32_update_has_changed_properties_only() {
        let a = spec_state();
        let b = CiiState {
            presentation_status: Some("transitioning".into()),
            ts_url: None,
            ..a.clone()
        };
        let u = CiiState::diff(&a, &b).unwrap();
        assert_eq!(
            as_value(&u),
            json!({"presentationStatus": "transitioning", "tsUrl": null})
        );
        let mut mirror = a.clone();
        let changed = mirror.apply(&u);
        assert_eq!(mirror, b);
        assert_eq!(
            changed,
            vec![CiiProperty::PresentationStatus, CiiProperty::TsUrl]
        );
        // timelines change: whole array
        let c = CiiState {
            timelines: Some(vec![]),
            ..a.clone()
        };
        assert_eq!(
            as_value(&CiiState::diff(&a, &c).unwrap()),
            json!({"timelines": []})
        );
    }

    #[test]
    fn checklist_33_content_id_carries_status() {
        let a = spec_state();
        let b = CiiState {
            content_id: Some("dvb://1.2.3".into()),
            ..a.clone()
        };
        let u = CiiState::diff(&a, &b).unwrap();
        assert_eq!(
            as_value(&u),
            json!({"contentId": "dvb://1.2.3", "contentIdStatus": "final"})
        );
        let c = CiiState {
            content_id: None,
            content_id_status: None,
            ..a.clone()
        };
        assert_eq!(
            as_value(&CiiState::diff(&a, &c).unwrap()),
            json!({"contentId": null, "contentIdStatus": null})
        );
    }

    #[test]
    fn checklist_34_no_message_when_nothing_changed() {
        assert_eq!(CiiState::diff(&spec_state(), &spec_state()), None);
        assert_eq!(
            CiiState::diff(&CiiState::default(), &CiiState::default()),
            None
        );
    }

    #[test]
    fn checklist_35_content_id_status_values() {
        assert!(CiiMessage::parse(r#"{"contentIdStatus":"partial"}"#).is_ok());
        assert!(CiiMessage::parse(r#"{"contentIdStatus":"final"}"#).is_ok());
        assert_eq!(
            CiiMessage::parse(r#"{"contentIdStatus":null}"#)
                .unwrap()
                .content_id_status,
            Field::Null
        );
        for bad in [r#""Final""#, r#""done""#, "1", r#""""#] {
            let t = format!(r#"{{"contentIdStatus":{bad}}}"#);
            assert!(CiiMessage::parse(&t).is_err(), "{t}");
        }
    }

    #[test]
    fn checklist_36_presentation_status_words() {
        for ok in ["okay", "transitioning", "fault", "okay ext", "fault a b"] {
            assert!(is_valid_presentation_status(ok), "{ok}");
        }
        for bad in ["", "ok", "okay  ext", "okay ", " okay", "OKAY", "x okay"] {
            assert!(!is_valid_presentation_status(bad), "{bad:?}");
            let m = CiiMessage {
                presentation_status: Field::Value(bad.into()),
                ..Default::default()
            };
            assert!(m.validate().is_err());
        }
    }

    #[test]
    fn checklist_37_timeline_entries() {
        let ok = r#"{"timelines":[{"timelineSelector":"urn:x","timelineProperties":
            {"unitsPerTick":1001,"unitsPerSecond":30000,"accuracy":0.01},
            "private":[{"type":"urn:y","z":1}]}]}"#;
        let m = CiiMessage::parse(ok).unwrap();
        m.validate().unwrap();
        let t = &m.timelines.value().unwrap()[0];
        assert_eq!(t.timeline_properties.accuracy, Some(0.01));
        for bad in [
            r#"{"timelines":[{"timelineProperties":{"unitsPerTick":1,"unitsPerSecond":1}}]}"#,
            r#"{"timelines":[{"timelineSelector":"urn:x"}]}"#,
            r#"{"timelines":[{"timelineSelector":"urn:x","timelineProperties":{"unitsPerSecond":1}}]}"#,
            r#"{"timelines":[{"timelineSelector":"urn:x","timelineProperties":{"unitsPerTick":1.5,"unitsPerSecond":1}}]}"#,
            r#"{"timelines":[{"timelineSelector":"urn:x","timelineProperties":{"unitsPerTick":-1,"unitsPerSecond":1}}]}"#,
            r#"{"timelines":[{"timelineSelector":"urn:x","timelineProperties":{"unitsPerTick":1,"unitsPerSecond":1,"accuracy":"1"}}]}"#,
            r#"{"timelines":{"timelineSelector":"urn:x"}}"#,
        ] {
            assert!(CiiMessage::parse(bad).is_err(), "{bad}");
        }
        let zero = r#"{"timelines":[{"timelineSelector":"urn:x","timelineProperties":{"unitsPerTick":0,"unitsPerSecond":1}}]}"#;
        assert!(CiiMessage::parse(zero).unwrap().validate().is_err());
        // accuracy omitted when None
        let o = TimelineOption::new(&TimelineSelector::Pts, TickRate::PTS, None);
        assert_eq!(
            serde_json::to_string(&o).unwrap(),
            r#"{"timelineSelector":"urn:dvb:css:timeline:pts","timelineProperties":{"unitsPerTick":1,"unitsPerSecond":90000}}"#
        );
        let o = TimelineOption::new(&TimelineSelector::Pts, TickRate::PTS, Some(f64::NAN));
        let m = CiiMessage {
            timelines: Field::Value(vec![o]),
            ..Default::default()
        };
        assert!(m.validate().is_err());
    }

    #[test]
    fn checklist_38_tick_rate_from_entry() {
        let m = CiiMessage::parse(
            r#"{"timelines":[{"timelineSelector":"urn:dvb:css:timeline:temi:1:1","timelineProperties":{"unitsPerTick":2,"unitsPerSecond":1000}}]}"#,
        )
        .unwrap();
        let mut s = CiiState::default();
        s.apply(&m);
        let r = s
            .timeline_tick_rate("urn:dvb:css:timeline:temi:1:1")
            .unwrap();
        assert_eq!(r.ticks_per_second(), 500.0);
        assert_eq!(s.timeline_tick_rate("urn:dvb:css:timeline:pts"), None);
    }

    #[test]
    fn checklist_39_private_elements_have_type() {
        let m =
            CiiMessage::parse(r#"{"private":[{"type":"urn:a:b","x":[1,2],"y":null}]}"#).unwrap();
        m.validate().unwrap();
        let p = &m.private.value().unwrap()[0];
        assert_eq!(p.type_uri, "urn:a:b");
        assert_eq!(p.members.len(), 2);
        assert_eq!(
            as_value(&m),
            json!({"private":[{"type":"urn:a:b","x":[1,2],"y":null}]})
        );
        for bad in [
            r#"{"private":[{"x":1}]}"#,
            r#"{"private":[{"type":1}]}"#,
            r#"{"private":[1]}"#,
        ] {
            assert!(CiiMessage::parse(bad).is_err(), "{bad}");
        }
        let m = CiiMessage::parse(r#"{"private":[{"type":"not a uri"}]}"#).unwrap();
        assert!(m.validate().is_err());
        assert!(CiiMessage {
            private: Field::Value(vec![PrivateData::new("urn:ok")]),
            ..Default::default()
        }
        .validate()
        .is_ok());
    }

    #[test]
    fn checklist_40_url_forms() {
        let with = |wc: &str, ts: &str| CiiMessage {
            wc_url: Field::Value(wc.into()),
            ts_url: Field::Value(ts.into()),
            te_url: Field::Value(ts.into()),
            ..Default::default()
        };
        assert!(with("udp://192.0.2.1:6677", "ws://192.0.2.1:7681/ts")
            .validate()
            .is_ok());
        assert!(with("udp://tv.local:6677", "ws://tv.local/ts")
            .validate()
            .is_ok());
        assert!(with("udp://[::1]:6677", "wss://h:1/").validate().is_ok());
        for (wc, ts) in [
            ("udp://1.2.3.4", "ws://h:1/ts"),
            ("udp://1.2.3.4:", "ws://h:1/ts"),
            ("udp://:6677", "ws://h:1/ts"),
            ("udp://1.2.3.4:70000", "ws://h:1/ts"),
            ("udp://1.2.3.4:6677/x", "ws://h:1/ts"),
            ("tcp://1.2.3.4:6677", "ws://h:1/ts"),
            ("udp://1.2.3.4:6677", "http://h:1/ts"),
            ("udp://1.2.3.4:6677", "ws://"),
            ("udp://1.2.3.4:6677", "ws://h:x/ts"),
        ] {
            assert!(with(wc, ts).validate().is_err(), "{wc} {ts}");
        }
    }

    #[test]
    fn checklist_42_omitted_property_unchanged() {
        let mut s = spec_state();
        let changed = s.apply(&CiiMessage::parse(r#"{"presentationStatus":"okay"}"#).unwrap());
        assert!(changed.is_empty()); // same value: no real change
        assert_eq!(s, spec_state());
        s.apply(&CiiMessage::parse("{}").unwrap());
        assert_eq!(s, spec_state());
    }

    #[test]
    fn checklist_43_null_property_becomes_null() {
        let mut s = spec_state();
        let changed = s
            .apply(&CiiMessage::parse(r#"{"tsUrl":null,"timelines":null,"mrsUrl":null}"#).unwrap());
        assert_eq!(s.ts_url, None);
        assert_eq!(s.timelines, None);
        assert_eq!(changed, vec![CiiProperty::TsUrl, CiiProperty::Timelines]);
        assert_eq!(CiiProperty::TsUrl.name(), "tsUrl");
    }

    #[test]
    fn checklist_44_client_starts_all_null() {
        let s = CiiState::default();
        assert_eq!(s.protocol_version, None);
        assert_eq!(s.content_id, None);
        assert_eq!(s.timelines, None);
        assert_eq!(s.private, None);
        assert_eq!(
            CiiState::server_default().protocol_version.as_deref(),
            Some("1.1")
        );
    }

    #[test]
    fn checklist_45_unknown_properties_ignored() {
        let m =
            CiiMessage::parse(r#"{"contentId":"dvb://1.1.1","futureThing":{"a":[1]},"x":null}"#)
                .unwrap();
        assert_eq!(m.content_id, Field::Value("dvb://1.1.1".into()));
        assert_eq!(as_value(&m), json!({"contentId":"dvb://1.1.1"}));
    }

    #[test]
    fn malformed_and_wrongly_typed_messages_are_errors() {
        for bad in [
            "",
            "{",
            "[]",
            "null",
            r#"{"contentId": 5}"#,
            r#"{"protocolVersion": 1.1}"#,
            r#"{"contentId": "a", "contentId": "b"}"#,
            "{\"contentId\": \"\u{0}\"",
        ] {
            assert!(CiiMessage::parse(bad).is_err(), "{bad:?}");
        }
        let m = CiiMessage::parse(r#"{"protocolVersion":"1.0"}"#).unwrap();
        assert!(m.validate().is_err());
        let m = CiiMessage::parse(r#"{"contentId":"no scheme"}"#).unwrap();
        assert!(m.validate().is_err());
        let big = format!(
            r#"{{"contentId":"{}"}}"#,
            "a".repeat(super::super::MAX_JSON_MESSAGE_LEN)
        );
        assert!(matches!(
            CiiMessage::parse(&big),
            Err(JsonMessageError::TooLarge { .. })
        ));
    }

    #[test]
    fn field_helpers() {
        assert_eq!(Field::from_option(Some(1)), Field::Value(1));
        assert_eq!(Field::<i32>::from_option(None), Field::Null);
        assert_eq!(Field::<i32>::Omit.as_update(), None);
        assert_eq!(Field::<i32>::Null.as_update(), Some(None));
        assert_eq!(Field::Value(3).as_update(), Some(Some(&3)));
        assert_eq!(Field::Value(3).value(), Some(&3));
        assert_eq!(serde_json::to_string(&Field::<i32>::Omit).unwrap(), "null");
    }

    #[test]
    fn diff_then_apply_reproduces_state() {
        let states = [
            CiiState::default(),
            spec_state(),
            CiiState {
                private: Some(vec![PrivateData::new("urn:p")]),
                mrs_url: Some("http://mrs.example/".into()),
                te_url: Some("ws://h:1/te".into()),
                ..spec_state()
            },
            CiiState::server_default(),
        ];
        for a in &states {
            for b in &states {
                let mut mirror = a.clone();
                if let Some(u) = CiiState::diff(a, b) {
                    let text = u.to_json();
                    mirror.apply(&CiiMessage::parse(&text).unwrap());
                }
                assert_eq!(&mirror, b);
            }
        }
    }
}
