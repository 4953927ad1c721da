//! CSS-TS, timeline synchronisation (digest section 5).
//!
//! * [`SetupData`] (client → server, first message) and [`stem_matches`] /
//!   [`is_timeline_available`] (digest 5.2).
//! * [`ControlTimestamp`] (server → client): an available CT carries [`Timing`], an
//!   unavailable one only its wall clock time, so "exactly one of contentTime and
//!   timelineSpeedMultiplier is null" cannot be represented (digest 5.3).
//! * [`must_send`]: whether a server must send a new CT to a client (digest 5.4).
//! * [`apply_control_timestamp`]: the client side (pydvbcss `TSClientClockController`,
//!   digest 5.6) on a [`CorrelatedClock`] whose parent is the wall clock.
//! * [`AptEptLpt`] (client → server, digest 5.5).
//!
//! Times: `wallClockTime` is wall clock nanoseconds, `contentTime` timeline ticks, both `i64`
//! carried in JSON as canonical decimal strings (`0` or `-?[1-9][0-9]*`).

use serde::{Deserialize, Serialize};

use super::cii::{Field, PrivateData};
use super::clock::{scale, CorrelatedClock, Correlation, NANOS_TICK_RATE};
use super::{from_json, JsonMessageError};

/// A server sends a new CT when the timeline moved by more than this many ticks relative to
/// the last CT it sent (our rule; the standard's threshold is unknown, digest 5.4).
pub const DEFAULT_RESEND_THRESHOLD_TICKS: f64 = 1.0;

/// A client applies a CT that moves its timeline by more than this (seconds); pydvbcss's
/// default is 0.1 ms.
pub const DEFAULT_CLIENT_CHANGE_THRESHOLD_SECS: f64 = 0.000_1;

fn invalid(why: impl Into<String>) -> JsonMessageError {
    JsonMessageError::Invalid(why.into())
}

/// Parse a canonical decimal integer string: `0`, or an optional `-` then a non-zero digit
/// and more digits. No `+`, leading zeros, `-0`, spaces or exponent; must fit in `i64`.
pub fn parse_int_string(s: &str) -> Option<i64> {
    let digits = s.strip_prefix('-').unwrap_or(s);
    let canonical = s == "0"
        || (!digits.is_empty()
            && !digits.starts_with('0')
            && digits.bytes().all(|b| b.is_ascii_digit()));
    if canonical {
        s.parse().ok()
    } else {
        None
    }
}

fn int_field(s: &str, name: &str) -> Result<i64, JsonMessageError> {
    parse_int_string(s).ok_or_else(|| invalid(format!("{name} {s:?} is not a decimal integer")))
}

/// SetupData, the client's first message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SetupData {
    /// Prefix the server's `contentId` must start with (`""` matches any non-null id).
    pub content_id_stem: String,
    /// Timeline selector, compared as an exact string.
    pub timeline_selector: String,
    /// Optional private data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub private: Option<Vec<PrivateData>>,
}

impl SetupData {
    /// SetupData without private data.
    pub fn new(content_id_stem: impl Into<String>, timeline_selector: impl Into<String>) -> Self {
        Self {
            content_id_stem: content_id_stem.into(),
            timeline_selector: timeline_selector.into(),
            private: None,
        }
    }

    /// Parse a received message; both strings are required (checklist 49).
    pub fn parse(text: &str) -> Result<Self, JsonMessageError> {
        from_json(text)
    }

    /// The JSON text.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("SetupData has string keys and plain values")
    }
}

/// Whether `content_id` starts with `stem` (plain prefix test). A null content id matches
/// nothing; an empty stem matches any non-null id (checklist 51–52).
pub fn stem_matches(content_id: Option<&str>, stem: &str) -> bool {
    content_id.is_some_and(|id| id.starts_with(stem))
}

/// Availability of the timeline for one client: the stem matches the current content id and
/// the server has a timeline for the client's selector (`server_has_selector`, decided by
/// exact string comparison by the caller).
pub fn is_timeline_available(
    content_id: Option<&str>,
    setup: &SetupData,
    server_has_selector: bool,
) -> bool {
    server_has_selector && stem_matches(content_id, &setup.content_id_stem)
}

/// Content time and speed of an available timeline.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Timing {
    /// Timeline position (ticks) at the CT's wall clock time.
    pub content_time: i64,
    /// `timelineSpeedMultiplier`: 1 normal, 0 paused, negative reverse. Must be finite.
    pub speed: f64,
}

/// A Control Timestamp.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ControlTimestamp {
    /// Wall clock (ns) the CT refers to (never null).
    pub wall_clock_time: i64,
    /// `None` when the timeline is unavailable.
    pub timing: Option<Timing>,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct CtWire {
    #[serde(default)]
    content_time: Field<String>,
    #[serde(default)]
    wall_clock_time: Field<String>,
    #[serde(default)]
    timeline_speed_multiplier: Field<f64>,
}

impl ControlTimestamp {
    /// An available CT.
    pub fn available(wall_clock_time: i64, content_time: i64, speed: f64) -> Self {
        Self {
            wall_clock_time,
            timing: Some(Timing {
                content_time,
                speed,
            }),
        }
    }

    /// An unavailable CT issued at `wall_clock_time`.
    pub fn unavailable(wall_clock_time: i64) -> Self {
        Self {
            wall_clock_time,
            timing: None,
        }
    }

    /// The CT for `timeline` (a clock whose parent is the wall clock) at wall clock time
    /// `wall_ns`: the content time is computed exactly for that wall time and rounded once.
    pub fn from_clock(timeline: &CorrelatedClock, wall_ns: i64) -> Self {
        Self::available(wall_ns, timeline.from_parent(wall_ns), timeline.speed())
    }

    /// Whether the timeline is available.
    pub fn is_available(&self) -> bool {
        self.timing.is_some()
    }

    /// Timeline position (ticks, rounded) at wall clock `wall_ns` for a timeline of
    /// `tick_rate` ticks per second: `contentTime + (W − wallClockTime) × speed × rate / 1e9`.
    pub fn content_time_at(&self, wall_ns: i64, tick_rate: f64) -> Option<i64> {
        let t = self.timing?;
        let delta = i128::from(wall_ns) - i128::from(self.wall_clock_time);
        Some(
            t.content_time
                .saturating_add(scale(delta, t.speed * tick_rate, NANOS_TICK_RATE)),
        )
    }

    /// The correlation (parent: wall clock ns, child: content ticks) and speed a client
    /// applies; `None` when unavailable.
    pub fn correlation(&self) -> Option<(Correlation, f64)> {
        let t = self.timing?;
        Some((
            Correlation::new(self.wall_clock_time, t.content_time),
            t.speed,
        ))
    }

    /// Equal for suppression purposes: same three values, or both unavailable whatever their
    /// wall clock times (checklist 64–65).
    pub fn same_as(&self, other: &Self) -> bool {
        match (self.timing, other.timing) {
            (None, None) => true,
            (Some(a), Some(b)) => a == b && self.wall_clock_time == other.wall_clock_time,
            _ => false,
        }
    }

    /// Parse a received CT. All three properties must be present; contentTime and
    /// timelineSpeedMultiplier are both null or both set; integers are canonical strings.
    pub fn parse(text: &str) -> Result<Self, JsonMessageError> {
        let w: CtWire = from_json(text)?;
        let wall = match &w.wall_clock_time {
            Field::Value(s) => int_field(s, "wallClockTime")?,
            Field::Null => return Err(invalid("wallClockTime is null")),
            Field::Omit => return Err(invalid("wallClockTime missing")),
        };
        if w.content_time.is_omit() || w.timeline_speed_multiplier.is_omit() {
            return Err(invalid("contentTime or timelineSpeedMultiplier missing"));
        }
        match (&w.content_time, &w.timeline_speed_multiplier) {
            (Field::Value(ct), Field::Value(speed)) => {
                if !speed.is_finite() {
                    return Err(invalid("timelineSpeedMultiplier is not finite"));
                }
                Ok(Self::available(wall, int_field(ct, "contentTime")?, *speed))
            }
            (Field::Null, Field::Null) => Ok(Self::unavailable(wall)),
            _ => Err(invalid(
                "exactly one of contentTime and timelineSpeedMultiplier is null",
            )),
        }
    }

    /// The JSON text, always with all three properties. Fails only for a non-finite speed,
    /// which JSON cannot carry.
    pub fn to_json(&self) -> Result<String, JsonMessageError> {
        let w = match self.timing {
            Some(t) if !t.speed.is_finite() => {
                return Err(invalid("timelineSpeedMultiplier is not finite"))
            }
            Some(t) => CtWire {
                content_time: Field::Value(t.content_time.to_string()),
                wall_clock_time: Field::Value(self.wall_clock_time.to_string()),
                timeline_speed_multiplier: Field::Value(t.speed),
            },
            None => CtWire {
                content_time: Field::Null,
                wall_clock_time: Field::Value(self.wall_clock_time.to_string()),
                timeline_speed_multiplier: Field::Null,
            },
        };
        Ok(serde_json::to_string(&w).expect("CT has string keys and plain values"))
    }
}

/// Whether a server must send `new` to a client whose last sent CT is `prev` (digest 5.4):
/// always for the first CT; on a change of availability or speed; when both are available
/// at the same speed, if `new`'s content time differs by more than `threshold_ticks` from
/// where `prev` puts the timeline at `new`'s wall clock time. Never for two unavailable CTs.
///
/// An unusable `tick_rate` (not finite and > 0) falls back to sending on any difference.
pub fn must_send(
    prev: Option<&ControlTimestamp>,
    new: &ControlTimestamp,
    tick_rate: f64,
    threshold_ticks: f64,
) -> bool {
    let Some(prev) = prev else {
        return true;
    };
    match (prev.timing, new.timing) {
        (None, None) => false,
        (Some(_), None) | (None, Some(_)) => true,
        (Some(p), Some(n)) => {
            if p.speed != n.speed {
                return true;
            }
            if !(tick_rate.is_finite() && tick_rate > 0.0) {
                return !prev.same_as(new);
            }
            match prev.content_time_at(new.wall_clock_time, tick_rate) {
                Some(predicted) => {
                    let diff = (i128::from(n.content_time) - i128::from(predicted)).unsigned_abs();
                    diff as f64 > threshold_ticks
                }
                None => true,
            }
        }
    }
}

/// What applying a CT did to a client's timeline clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CtEffect {
    /// Correlation and speed were replaced (one atomic change).
    pub timing_changed: bool,
    /// The speed changed (implies `timing_changed`).
    pub speed_changed: bool,
    /// The clock went from unavailable to available.
    pub became_available: bool,
    /// The clock went from available to unavailable.
    pub became_unavailable: bool,
}

/// Client side (pydvbcss `TSClientClockController`): apply `ct` to `timeline`, a clock whose
/// parent is the wall clock (ns) and whose tick rate is the timeline's. An available CT's
/// correlation and speed are applied together, and only if the speed changed or the change
/// exceeds `threshold_secs` (or the clock was unavailable); then availability follows the CT.
/// On connection close the caller marks the clock unavailable (`set_available(false)`).
pub fn apply_control_timestamp(
    timeline: &mut CorrelatedClock,
    ct: &ControlTimestamp,
    threshold_secs: f64,
) -> CtEffect {
    let was_available = timeline.own_availability();
    let mut effect = CtEffect::default();
    if let Some((corr, speed)) = ct.correlation() {
        let speed_changed = speed != timeline.speed();
        let significant = !was_available
            || speed_changed
            || timeline.is_change_significant(&corr, speed, threshold_secs);
        if significant && timeline.set_correlation_and_speed(corr, speed).is_ok() {
            effect.timing_changed = true;
            effect.speed_changed = speed_changed;
        }
    }
    let now_available = ct.is_available();
    timeline.set_available(now_available);
    effect.became_available = now_available && !was_available;
    effect.became_unavailable = !now_available && was_available;
    effect
}

/// A wall clock time in AptEptLpt, which may be an infinity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WallTime {
    /// Wall clock nanoseconds.
    Nanos(i64),
    /// `"minusinfinity"` (only in `earliest`).
    MinusInfinity,
    /// `"plusinfinity"` (only in `latest`).
    PlusInfinity,
}

impl WallTime {
    fn to_wire(self) -> String {
        match self {
            Self::Nanos(n) => n.to_string(),
            Self::MinusInfinity => "minusinfinity".into(),
            Self::PlusInfinity => "plusinfinity".into(),
        }
    }
}

/// One timestamp in AptEptLpt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PresentationTimestamp {
    /// Timeline ticks (never null).
    pub content_time: i64,
    /// Wall clock time, possibly infinite.
    pub wall_clock_time: WallTime,
}

/// AptEptLpt: the client's actual, earliest and latest presentation timestamps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AptEptLpt {
    /// Actual presentation (finite), optional.
    pub actual: Option<PresentationTimestamp>,
    /// Earliest possible presentation; wall time finite or minus infinity.
    pub earliest: PresentationTimestamp,
    /// Latest possible presentation; wall time finite or plus infinity.
    pub latest: PresentationTimestamp,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct TsWire {
    content_time: String,
    wall_clock_time: String,
}

#[derive(Serialize, Deserialize)]
struct AelWire {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    actual: Option<TsWire>,
    earliest: TsWire,
    latest: TsWire,
}

fn ts_from_wire(
    w: &TsWire,
    name: &str,
    infinity: Option<(&str, WallTime)>,
) -> Result<PresentationTimestamp, JsonMessageError> {
    let content_time = int_field(&w.content_time, "contentTime")?;
    let wall_clock_time = match infinity {
        Some((word, inf)) if w.wall_clock_time == word => inf,
        _ => WallTime::Nanos(parse_int_string(&w.wall_clock_time).ok_or_else(|| {
            invalid(format!(
                "{name}.wallClockTime {:?} not allowed",
                w.wall_clock_time
            ))
        })?),
    };
    Ok(PresentationTimestamp {
        content_time,
        wall_clock_time,
    })
}

impl AptEptLpt {
    /// Parse a received message: `earliest` and `latest` required, `actual` optional;
    /// only `earliest` may say `"minusinfinity"` and only `latest` `"plusinfinity"`.
    pub fn parse(text: &str) -> Result<Self, JsonMessageError> {
        let w: AelWire = from_json(text)?;
        Ok(Self {
            actual: w
                .actual
                .as_ref()
                .map(|a| ts_from_wire(a, "actual", None))
                .transpose()?,
            earliest: ts_from_wire(
                &w.earliest,
                "earliest",
                Some(("minusinfinity", WallTime::MinusInfinity)),
            )?,
            latest: ts_from_wire(
                &w.latest,
                "latest",
                Some(("plusinfinity", WallTime::PlusInfinity)),
            )?,
        })
    }

    /// Check the infinity rules (for messages built in code).
    pub fn validate(&self) -> Result<(), JsonMessageError> {
        if self
            .actual
            .is_some_and(|a| !matches!(a.wall_clock_time, WallTime::Nanos(_)))
        {
            return Err(invalid("actual.wallClockTime must be finite"));
        }
        if self.earliest.wall_clock_time == WallTime::PlusInfinity {
            return Err(invalid("earliest.wallClockTime cannot be plusinfinity"));
        }
        if self.latest.wall_clock_time == WallTime::MinusInfinity {
            return Err(invalid("latest.wallClockTime cannot be minusinfinity"));
        }
        Ok(())
    }

    /// The JSON text (after [`Self::validate`]).
    pub fn to_json(&self) -> Result<String, JsonMessageError> {
        self.validate()?;
        let wire = |t: &PresentationTimestamp| TsWire {
            content_time: t.content_time.to_string(),
            wall_clock_time: t.wall_clock_time.to_wire(),
        };
        let w = AelWire {
            actual: self.actual.as_ref().map(wire),
            earliest: wire(&self.earliest),
            latest: wire(&self.latest),
        };
        Ok(serde_json::to_string(&w).expect("AptEptLpt has string keys and plain values"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    const CT_AVAILABLE: &str = r#"{"contentTime": "1234567", "wallClockTime": "98765432100000", "timelineSpeedMultiplier": 1.0}"#;
    const CT_UNAVAILABLE: &str = r#"{"contentTime": null, "wallClockTime": "98765999000000", "timelineSpeedMultiplier": null}"#;

    fn v(s: &str) -> Value {
        serde_json::from_str(s).unwrap()
    }

    #[test]
    fn spec_ct_examples_round_trip() {
        let a = ControlTimestamp::parse(CT_AVAILABLE).unwrap();
        assert_eq!(
            a,
            ControlTimestamp::available(98_765_432_100_000, 1_234_567, 1.0)
        );
        assert_eq!(v(&a.to_json().unwrap()), v(CT_AVAILABLE));
        let u = ControlTimestamp::parse(CT_UNAVAILABLE).unwrap();
        assert_eq!(u, ControlTimestamp::unavailable(98_765_999_000_000));
        assert_eq!(v(&u.to_json().unwrap()), v(CT_UNAVAILABLE));
        assert_eq!(
            u.to_json().unwrap(),
            r#"{"contentTime":null,"wallClockTime":"98765999000000","timelineSpeedMultiplier":null}"#
        );
    }

    #[test]
    fn checklist_49_setup_data_requires_both_strings() {
        let s = SetupData::parse(
            r#"{"contentIdStem":"dvb://233a","timelineSelector":"urn:dvb:css:timeline:pts"}"#,
        )
        .unwrap();
        assert_eq!(s, SetupData::new("dvb://233a", "urn:dvb:css:timeline:pts"));
        assert_eq!(SetupData::parse(&s.to_json()).unwrap(), s);
        let p = SetupData::parse(
            r#"{"contentIdStem":"","timelineSelector":"x","private":[{"type":"urn:a"}]}"#,
        )
        .unwrap();
        assert_eq!(p.private.unwrap()[0].type_uri, "urn:a");
        for bad in [
            r#"{"contentIdStem":"dvb://233a"}"#,
            r#"{"timelineSelector":"urn:dvb:css:timeline:pts"}"#,
            r#"{"contentIdStem":null,"timelineSelector":"x"}"#,
            r#"{"contentIdStem":1,"timelineSelector":"x"}"#,
            r#"["", "x"]"#,
            "",
            "{",
        ] {
            assert!(SetupData::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn checklist_51_availability_needs_stem_and_selector() {
        let s = SetupData::new("dvb://233a.1004.1044", "urn:dvb:css:timeline:pts");
        let id = Some("dvb://233a.1004.1044;363a~20130218T0915Z--PT00H45M");
        assert!(is_timeline_available(id, &s, true));
        assert!(!is_timeline_available(id, &s, false));
        assert!(!is_timeline_available(
            Some("dvb://233a.1004.1045"),
            &s,
            true
        ));
        assert!(!is_timeline_available(None, &s, true));
        assert!(stem_matches(Some("dvb://233a.1"), "dvb://233a"));
        assert!(!stem_matches(Some("DVB://233a.1"), "dvb://233a"));
    }

    #[test]
    fn checklist_52_empty_stem_matches_any_non_null_id() {
        assert!(stem_matches(Some("anything"), ""));
        assert!(stem_matches(Some(""), ""));
        assert!(!stem_matches(None, ""));
    }

    #[test]
    fn checklist_53_no_timeline_gives_unavailable_ct() {
        let j = ControlTimestamp::unavailable(5).to_json().unwrap();
        assert_eq!(
            v(&j),
            json!({"contentTime": null, "wallClockTime": "5", "timelineSpeedMultiplier": null})
        );
    }

    #[test]
    fn checklist_54_56_57_all_three_properties_and_null_pairing() {
        for ct in [
            ControlTimestamp::available(0, -5, 0.0),
            ControlTimestamp::unavailable(-1),
        ] {
            let j = v(&ct.to_json().unwrap());
            let o = j.as_object().unwrap();
            assert_eq!(o.len(), 3);
            assert!(o["wallClockTime"].is_string());
            assert_eq!(
                o["contentTime"].is_null(),
                o["timelineSpeedMultiplier"].is_null()
            );
        }
        for bad in [
            r#"{"contentTime":"1","wallClockTime":"2"}"#,
            r#"{"contentTime":"1","timelineSpeedMultiplier":1}"#,
            r#"{"wallClockTime":"2","timelineSpeedMultiplier":1}"#,
            r#"{"contentTime":null,"wallClockTime":null,"timelineSpeedMultiplier":null}"#,
            r#"{"contentTime":"1","wallClockTime":"2","timelineSpeedMultiplier":null}"#,
            r#"{"contentTime":null,"wallClockTime":"2","timelineSpeedMultiplier":1}"#,
        ] {
            assert!(ControlTimestamp::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn checklist_55_decimal_strings() {
        assert_eq!(parse_int_string("0"), Some(0));
        assert_eq!(parse_int_string("-1"), Some(-1));
        assert_eq!(parse_int_string("9223372036854775807"), Some(i64::MAX));
        assert_eq!(parse_int_string("-9223372036854775808"), Some(i64::MIN));
        for bad in [
            "",
            "-",
            "-0",
            "+1",
            "01",
            "00",
            " 1",
            "1 ",
            "1e3",
            "1.0",
            "0x1",
            "9223372036854775808",
            "١",
        ] {
            assert_eq!(parse_int_string(bad), None, "{bad:?}");
        }
        assert!(ControlTimestamp::parse(
            r#"{"contentTime":1,"wallClockTime":"2","timelineSpeedMultiplier":1}"#
        )
        .is_err());
        assert!(ControlTimestamp::parse(
            r#"{"contentTime":"01","wallClockTime":"2","timelineSpeedMultiplier":1}"#
        )
        .is_err());
        let j = ControlTimestamp::available(-98, i64::MIN, 1.0)
            .to_json()
            .unwrap();
        assert_eq!(
            j,
            r#"{"contentTime":"-9223372036854775808","wallClockTime":"-98","timelineSpeedMultiplier":1.0}"#
        );
    }

    #[test]
    fn checklist_58_speed_is_a_number() {
        let j = v(&ControlTimestamp::available(1, 2, 0.0).to_json().unwrap());
        assert!(j["timelineSpeedMultiplier"].is_number());
        assert_eq!(j["timelineSpeedMultiplier"], 0.0);
        let c = ControlTimestamp::parse(
            r#"{"contentTime":"1","wallClockTime":"2","timelineSpeedMultiplier":-2}"#,
        )
        .unwrap();
        assert_eq!(c.timing.unwrap().speed, -2.0);
        assert!(ControlTimestamp::parse(
            r#"{"contentTime":"1","wallClockTime":"2","timelineSpeedMultiplier":"1"}"#
        )
        .is_err());
        assert!(ControlTimestamp::parse(
            r#"{"contentTime":"1","wallClockTime":"2","timelineSpeedMultiplier":1e999}"#
        )
        .is_err());
        assert!(ControlTimestamp::available(1, 2, f64::NAN)
            .to_json()
            .is_err());
        assert!(ControlTimestamp::available(1, 2, f64::INFINITY)
            .to_json()
            .is_err());
    }

    const PTS: f64 = 90_000.0;

    #[test]
    fn checklist_59_first_ct_is_always_sent() {
        assert!(must_send(None, &ControlTimestamp::unavailable(1), PTS, 1.0));
        assert!(must_send(
            None,
            &ControlTimestamp::available(1, 2, 1.0),
            PTS,
            1.0
        ));
    }

    #[test]
    fn checklist_60_availability_change_is_sent() {
        let a = ControlTimestamp::available(0, 0, 1.0);
        let u = ControlTimestamp::unavailable(0);
        assert!(must_send(Some(&a), &u, PTS, 1.0));
        assert!(must_send(Some(&u), &a, PTS, 1.0));
    }

    #[test]
    fn checklist_61_speed_change_is_sent() {
        let play = ControlTimestamp::available(0, 0, 1.0);
        let pause = ControlTimestamp::available(1_000_000_000, 90_000, 0.0);
        assert!(must_send(Some(&play), &pause, PTS, 1.0));
        assert!(must_send(Some(&pause), &play, PTS, 1.0));
        let ff = ControlTimestamp::available(1_000_000_000, 90_000, 2.0);
        assert!(must_send(Some(&play), &ff, PTS, 1.0));
    }

    #[test]
    fn checklist_62_jump_is_sent_but_consistent_rebase_is_not() {
        let a = ControlTimestamp::available(0, 0, 1.0);
        // the same timing, re-based one second later
        let same = ControlTimestamp::available(1_000_000_000, 90_000, 1.0);
        assert!(!must_send(
            Some(&a),
            &same,
            PTS,
            DEFAULT_RESEND_THRESHOLD_TICKS
        ));
        // rounding noise of 1 tick is not a change
        let noise = ControlTimestamp::available(1_000_000_000, 90_001, 1.0);
        assert!(!must_send(
            Some(&a),
            &noise,
            PTS,
            DEFAULT_RESEND_THRESHOLD_TICKS
        ));
        // 2 ticks and a seek are
        let drift = ControlTimestamp::available(1_000_000_000, 90_002, 1.0);
        assert!(must_send(
            Some(&a),
            &drift,
            PTS,
            DEFAULT_RESEND_THRESHOLD_TICKS
        ));
        let seek = ControlTimestamp::available(1_000_000_000, 0, 1.0);
        assert!(must_send(
            Some(&a),
            &seek,
            PTS,
            DEFAULT_RESEND_THRESHOLD_TICKS
        ));
        // paused: any content time change is a jump
        let p = ControlTimestamp::available(0, 500, 0.0);
        assert!(!must_send(
            Some(&p),
            &ControlTimestamp::available(9_000_000_000, 500, 0.0),
            PTS,
            1.0
        ));
        assert!(must_send(
            Some(&p),
            &ControlTimestamp::available(9_000_000_000, 900, 0.0),
            PTS,
            1.0
        ));
        // bad tick rate: fall back to exact comparison
        assert!(must_send(Some(&a), &same, f64::NAN, 1.0));
        assert!(!must_send(Some(&a), &a, 0.0, 1.0));
    }

    #[test]
    fn checklist_63_content_change_re_evaluates_stem() {
        // a client whose stem no longer matches is sent an unavailable CT
        let s = SetupData::new("dvb://1.2.3", "urn:dvb:css:timeline:pts");
        let before = ControlTimestamp::available(0, 0, 1.0);
        let avail = is_timeline_available(Some("dvb://1.2.4"), &s, true);
        assert!(!avail);
        let now = ControlTimestamp::unavailable(10);
        assert!(must_send(Some(&before), &now, PTS, 1.0));
    }

    #[test]
    fn checklist_64_identical_ct_not_repeated() {
        let a = ControlTimestamp::available(7, 8, 1.0);
        assert!(a.same_as(&a));
        assert!(!must_send(Some(&a), &a, PTS, 1.0));
        assert!(!must_send(Some(&a), &a, PTS, 0.0));
    }

    #[test]
    fn checklist_65_two_unavailable_cts_are_one() {
        let u1 = ControlTimestamp::unavailable(1);
        let u2 = ControlTimestamp::unavailable(999_999);
        assert!(u1.same_as(&u2));
        assert!(!must_send(Some(&u1), &u2, PTS, 1.0));
    }

    #[test]
    fn checklist_66_position_formula() {
        let c = ControlTimestamp::available(1_000_000_000, 1_000, 1.0);
        assert_eq!(c.content_time_at(2_000_000_000, PTS), Some(91_000));
        assert_eq!(c.content_time_at(0, PTS), Some(-89_000));
        let c = ControlTimestamp::available(0, 1_000, 0.5);
        assert_eq!(c.content_time_at(2_000_000_000, 1000.0), Some(2_000));
        assert_eq!(
            ControlTimestamp::unavailable(0).content_time_at(1, PTS),
            None
        );
        // exact construction from a clock: one rounding
        let mut clock = CorrelatedClock::new(1e9, 1000.0).unwrap();
        clock.set_correlation(Correlation::new(0, 0));
        let ct = ControlTimestamp::from_clock(&clock, 1_499_999);
        assert_eq!(ct, ControlTimestamp::available(1_499_999, 1, 1.0));
        let ct = ControlTimestamp::from_clock(&clock, 1_500_000);
        assert_eq!(ct.timing.unwrap().content_time, 2);
    }

    #[test]
    fn checklist_69_70_apt_ept_lpt() {
        let text = r#"{"actual":{"contentTime":"10","wallClockTime":"20"},
            "earliest":{"contentTime":"10","wallClockTime":"minusinfinity"},
            "latest":{"contentTime":"10","wallClockTime":"plusinfinity"}}"#;
        let m = AptEptLpt::parse(text).unwrap();
        assert_eq!(
            m.actual,
            Some(PresentationTimestamp {
                content_time: 10,
                wall_clock_time: WallTime::Nanos(20)
            })
        );
        assert_eq!(m.earliest.wall_clock_time, WallTime::MinusInfinity);
        assert_eq!(m.latest.wall_clock_time, WallTime::PlusInfinity);
        assert_eq!(v(&m.to_json().unwrap()), v(text));
        assert_eq!(AptEptLpt::parse(&m.to_json().unwrap()).unwrap(), m);

        let no_actual = r#"{"earliest":{"contentTime":"1","wallClockTime":"2"},"latest":{"contentTime":"3","wallClockTime":"4"}}"#;
        let m = AptEptLpt::parse(no_actual).unwrap();
        assert_eq!(m.actual, None);
        assert_eq!(m.to_json().unwrap(), no_actual);

        for bad in [
            r#"{"latest":{"contentTime":"1","wallClockTime":"2"}}"#,
            r#"{"earliest":{"contentTime":"1","wallClockTime":"2"}}"#,
            r#"{"earliest":{"contentTime":"1","wallClockTime":"plusinfinity"},"latest":{"contentTime":"1","wallClockTime":"2"}}"#,
            r#"{"earliest":{"contentTime":"1","wallClockTime":"2"},"latest":{"contentTime":"1","wallClockTime":"minusinfinity"}}"#,
            r#"{"actual":{"contentTime":"1","wallClockTime":"plusinfinity"},"earliest":{"contentTime":"1","wallClockTime":"2"},"latest":{"contentTime":"1","wallClockTime":"2"}}"#,
            r#"{"earliest":{"contentTime":null,"wallClockTime":"2"},"latest":{"contentTime":"1","wallClockTime":"2"}}"#,
            r#"{"earliest":{"contentTime":"1","wallClockTime":"infinity"},"latest":{"contentTime":"1","wallClockTime":"2"}}"#,
            r#"{"earliest":{"contentTime":"1","wallClockTime":2},"latest":{"contentTime":"1","wallClockTime":"2"}}"#,
        ] {
            assert!(AptEptLpt::parse(bad).is_err(), "{bad}");
        }
        let wrong = AptEptLpt {
            actual: None,
            earliest: PresentationTimestamp {
                content_time: 0,
                wall_clock_time: WallTime::PlusInfinity,
            },
            latest: PresentationTimestamp {
                content_time: 0,
                wall_clock_time: WallTime::Nanos(0),
            },
        };
        assert!(wrong.to_json().is_err());
    }

    #[test]
    fn checklist_71_unparseable_messages_are_errors_not_panics() {
        for bad in [
            "",
            "{",
            "[1]",
            "\u{0}",
            "{\"a\":",
            "nul",
            "{}",
            "{\"earliest\":[]}",
        ] {
            assert!(AptEptLpt::parse(bad).is_err());
            assert!(SetupData::parse(bad).is_err());
            assert!(ControlTimestamp::parse(bad).is_err());
        }
        let big = " ".repeat(super::super::MAX_JSON_MESSAGE_LEN + 1);
        assert!(matches!(
            SetupData::parse(&big),
            Err(JsonMessageError::TooLarge { .. })
        ));
    }

    fn client_clock() -> CorrelatedClock {
        let mut c = CorrelatedClock::new(1e9, PTS).unwrap();
        c.set_available(false);
        c
    }

    #[test]
    fn checklist_72_client_applies_ct_atomically() {
        let mut c = client_clock();
        let ct = ControlTimestamp::available(1_000_000_000, 90_000, 1.0);
        let e = apply_control_timestamp(&mut c, &ct, DEFAULT_CLIENT_CHANGE_THRESHOLD_SECS);
        assert!(e.timing_changed && e.became_available && !e.became_unavailable);
        assert_eq!(c.correlation(), Correlation::new(1_000_000_000, 90_000));
        assert_eq!(c.from_parent(2_000_000_000), 180_000);

        // a consistent re-base is ignored
        let same = ControlTimestamp::available(3_000_000_000, 270_000, 1.0);
        let e = apply_control_timestamp(&mut c, &same, DEFAULT_CLIENT_CHANGE_THRESHOLD_SECS);
        assert_eq!(e, CtEffect::default());
        assert_eq!(c.correlation(), Correlation::new(1_000_000_000, 90_000));

        // a pause changes correlation and speed in one step
        let pause = ControlTimestamp::available(3_000_000_000, 270_000, 0.0);
        let e = apply_control_timestamp(&mut c, &pause, DEFAULT_CLIENT_CHANGE_THRESHOLD_SECS);
        assert!(e.timing_changed && e.speed_changed);
        assert_eq!(c.speed(), 0.0);
        assert_eq!(c.from_parent(9_000_000_000), 270_000);

        // a 1 ms jump at speed 1 exceeds the 0.1 ms threshold
        let play = ControlTimestamp::available(4_000_000_000, 270_000, 1.0);
        apply_control_timestamp(&mut c, &play, DEFAULT_CLIENT_CHANGE_THRESHOLD_SECS);
        let jump = ControlTimestamp::available(4_000_000_000, 270_090, 1.0);
        let e = apply_control_timestamp(&mut c, &jump, DEFAULT_CLIENT_CHANGE_THRESHOLD_SECS);
        assert!(e.timing_changed && !e.speed_changed);
    }

    #[test]
    fn checklist_73_unavailable_ct_and_close_make_clock_unavailable() {
        let mut c = client_clock();
        apply_control_timestamp(&mut c, &ControlTimestamp::available(0, 0, 1.0), 0.0);
        let e = apply_control_timestamp(&mut c, &ControlTimestamp::unavailable(5), 0.0);
        assert!(e.became_unavailable && !e.timing_changed);
        assert!(!c.is_available(true));
        let e = apply_control_timestamp(&mut c, &ControlTimestamp::unavailable(6), 0.0);
        assert_eq!(e, CtEffect::default());
        // on close the caller does this
        apply_control_timestamp(&mut c, &ControlTimestamp::available(0, 0, 1.0), 0.0);
        c.set_available(false);
        assert!(!c.is_available(true));
    }
}
