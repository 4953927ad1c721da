//! Timeline selectors (digest 6.1) and tick rates.
//!
//! Selectors are compared as exact strings on the wire (checklist 77). [`TimelineSelector`]
//! parses only the canonical spelling of each known form (decimal numbers without sign or
//! leading zeros); anything else is kept verbatim as [`TimelineSelector::Other`], so
//! `parse(s).to_string() == s` for every string `s`.

use std::fmt;
use std::str::FromStr;

/// The PTS timeline of the service (90 kHz).
pub const PTS_SELECTOR: &str = "urn:dvb:css:timeline:pts";

/// Prefix of TEMI selectors: `urn:dvb:css:timeline:temi:<component_tag>:<timeline_id>`.
pub const TEMI_PREFIX: &str = "urn:dvb:css:timeline:temi:";

/// Prefix of MPEG-DASH period-relative selectors:
/// `urn:dvb:css:timeline:mpd:period:rel:<ticks_per_second>[:<period_id>]`.
pub const MPD_PERIOD_REL_PREFIX: &str = "urn:dvb:css:timeline:mpd:period:rel:";

/// ISO BMFF composition time timeline.
pub const CT_SELECTOR: &str = "urn:dvb:css:timeline:ct";

/// **Private to dvb2ip**: prefix of selectors for TEMI timelines carried on a PID whose
/// elementary stream has no `stream_identifier_descriptor` (so no component tag to name it
/// by): `urn:dvb2ip:timeline:temi-pid:<pid>:<timeline_id>`, both decimal without padding,
/// `pid` 0–8191. Standard clients will not ask for it; it lets our own tools and CII
/// `timelines` lists still name such timelines.
pub const PRIVATE_TEMI_PID_PREFIX: &str = "urn:dvb2ip:timeline:temi-pid:";

/// Ticks per second of the PTS timeline.
pub const PTS_TICKS_PER_SECOND: u64 = 90_000;

/// A tick rate as CII expresses it: `units_per_second / units_per_tick` ticks per second.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TickRate {
    /// Units per tick (≥ 1).
    pub units_per_tick: u64,
    /// Units per second (≥ 1).
    pub units_per_second: u64,
}

impl TickRate {
    /// The PTS rate: 90000 / 1.
    pub const PTS: Self = Self {
        units_per_tick: 1,
        units_per_second: PTS_TICKS_PER_SECOND,
    };

    /// A whole number of ticks per second; `None` for 0.
    pub const fn per_second(ticks: u64) -> Option<Self> {
        if ticks == 0 {
            None
        } else {
            Some(Self {
                units_per_tick: 1,
                units_per_second: ticks,
            })
        }
    }

    /// `units_per_second / units_per_tick`; `None` if either is 0.
    pub const fn new(units_per_tick: u64, units_per_second: u64) -> Option<Self> {
        if units_per_tick == 0 || units_per_second == 0 {
            None
        } else {
            Some(Self {
                units_per_tick,
                units_per_second,
            })
        }
    }

    /// Ticks per second as `f64` (checklist 38).
    pub fn ticks_per_second(&self) -> f64 {
        self.units_per_second as f64 / self.units_per_tick as f64
    }
}

/// A parsed timeline selector.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum TimelineSelector {
    /// `urn:dvb:css:timeline:pts`.
    Pts,
    /// `urn:dvb:css:timeline:temi:<component_tag>:<timeline_id>`.
    Temi {
        /// Component tag of the elementary stream carrying the TEMI descriptors.
        component_tag: u8,
        /// TEMI timeline id.
        timeline_id: u8,
    },
    /// Private: `urn:dvb2ip:timeline:temi-pid:<pid>:<timeline_id>` ([`PRIVATE_TEMI_PID_PREFIX`]).
    TemiPid {
        /// PID carrying the TEMI descriptors (0–8191).
        pid: u16,
        /// TEMI timeline id.
        timeline_id: u8,
    },
    /// `urn:dvb:css:timeline:mpd:period:rel:<ticks_per_second>[:<period_id>]`.
    MpdPeriodRel {
        /// Tick rate named in the selector (≥ 1).
        ticks_per_second: u64,
        /// Period id, or `None` for the current period.
        period_id: Option<String>,
    },
    /// `urn:dvb:css:timeline:ct`.
    Ct,
    /// Any other string: a private or unknown selector (or a non-canonical spelling of a
    /// known one), kept verbatim.
    Other(String),
}

/// Canonical unsigned decimal: `0` or a non-zero digit followed by digits.
fn canonical_decimal<T: FromStr>(s: &str) -> Option<T> {
    let ok =
        !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) && (s == "0" || !s.starts_with('0'));
    if ok {
        s.parse().ok()
    } else {
        None
    }
}

fn two_numbers<A: FromStr, B: FromStr>(s: &str) -> Option<(A, B)> {
    let (a, b) = s.split_once(':')?;
    Some((canonical_decimal(a)?, canonical_decimal(b)?))
}

impl TimelineSelector {
    /// Parse a selector; never fails (unknown forms become [`TimelineSelector::Other`]).
    pub fn parse(s: &str) -> Self {
        Self::parse_known(s).unwrap_or_else(|| Self::Other(s.to_owned()))
    }

    fn parse_known(s: &str) -> Option<Self> {
        if s == PTS_SELECTOR {
            return Some(Self::Pts);
        }
        if s == CT_SELECTOR {
            return Some(Self::Ct);
        }
        if let Some(rest) = s.strip_prefix(TEMI_PREFIX) {
            let (component_tag, timeline_id) = two_numbers(rest)?;
            return Some(Self::Temi {
                component_tag,
                timeline_id,
            });
        }
        if let Some(rest) = s.strip_prefix(PRIVATE_TEMI_PID_PREFIX) {
            let (pid, timeline_id): (u16, u8) = two_numbers(rest)?;
            return (pid <= 0x1fff).then_some(Self::TemiPid { pid, timeline_id });
        }
        if let Some(rest) = s.strip_prefix(MPD_PERIOD_REL_PREFIX) {
            let (rate, period_id) = match rest.split_once(':') {
                Some((r, p)) if !p.is_empty() => (r, Some(p.to_owned())),
                Some(_) => return None,
                None => (rest, None),
            };
            let ticks_per_second: u64 = canonical_decimal(rate)?;
            return (ticks_per_second > 0).then_some(Self::MpdPeriodRel {
                ticks_per_second,
                period_id,
            });
        }
        None
    }

    /// The tick rate implied by the selector itself: 90 kHz for PTS, the named rate for MPD.
    /// `None` when it comes from the stream (TEMI timescale, ISO BMFF track timescale) or is
    /// unknown.
    pub fn tick_rate(&self) -> Option<TickRate> {
        match self {
            Self::Pts => Some(TickRate::PTS),
            Self::MpdPeriodRel {
                ticks_per_second, ..
            } => TickRate::per_second(*ticks_per_second),
            _ => None,
        }
    }
}

impl FromStr for TimelineSelector {
    type Err = std::convert::Infallible;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Self::parse(s))
    }
}

impl fmt::Display for TimelineSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Pts => f.write_str(PTS_SELECTOR),
            Self::Temi {
                component_tag,
                timeline_id,
            } => write!(f, "{TEMI_PREFIX}{component_tag}:{timeline_id}"),
            Self::TemiPid { pid, timeline_id } => {
                write!(f, "{PRIVATE_TEMI_PID_PREFIX}{pid}:{timeline_id}")
            }
            Self::MpdPeriodRel {
                ticks_per_second,
                period_id: None,
            } => write!(f, "{MPD_PERIOD_REL_PREFIX}{ticks_per_second}"),
            Self::MpdPeriodRel {
                ticks_per_second,
                period_id: Some(p),
            } => write!(f, "{MPD_PERIOD_REL_PREFIX}{ticks_per_second}:{p}"),
            Self::Ct => f.write_str(CT_SELECTOR),
            Self::Other(s) => f.write_str(s),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checklist_75_pts_selector_and_rate() {
        assert_eq!(
            TimelineSelector::parse("urn:dvb:css:timeline:pts"),
            TimelineSelector::Pts
        );
        assert_eq!(
            TimelineSelector::Pts.to_string(),
            "urn:dvb:css:timeline:pts"
        );
        let r = TimelineSelector::Pts.tick_rate().unwrap();
        assert_eq!((r.units_per_tick, r.units_per_second), (1, 90_000));
        assert_eq!(r.ticks_per_second(), 90_000.0);
    }

    #[test]
    fn checklist_76_temi_selectors_decimal() {
        let s = TimelineSelector::parse("urn:dvb:css:timeline:temi:1:1");
        assert_eq!(
            s,
            TimelineSelector::Temi {
                component_tag: 1,
                timeline_id: 1
            }
        );
        let s = TimelineSelector::Temi {
            component_tag: 255,
            timeline_id: 0,
        };
        assert_eq!(s.to_string(), "urn:dvb:css:timeline:temi:255:0");
        assert_eq!(s.tick_rate(), None); // the TEMI timescale decides
        for bad in [
            "temi:256:1",
            "temi:01:1",
            "temi:1:+1",
            "temi:1",
            "temi:1:1:1",
            "temi::1",
            "temi:0x1:1",
        ] {
            let full = format!("urn:dvb:css:timeline:{bad}");
            assert_eq!(
                TimelineSelector::parse(&full),
                TimelineSelector::Other(full.clone())
            );
        }
    }

    #[test]
    fn checklist_77_selectors_compare_as_exact_strings() {
        // non-canonical spellings are not the same selector
        for s in [
            "URN:DVB:CSS:TIMELINE:PTS",
            "urn:dvb:css:timeline:pts ",
            "urn:dvb:css:timeline:temi:01:1",
            "urn:pydvbcss:sporadic",
            "",
        ] {
            assert_eq!(
                TimelineSelector::parse(s),
                TimelineSelector::Other(s.to_owned())
            );
            assert_eq!(TimelineSelector::parse(s).to_string(), s);
        }
    }

    #[test]
    fn private_temi_pid_form() {
        let s = TimelineSelector::parse("urn:dvb2ip:timeline:temi-pid:8191:3");
        assert_eq!(
            s,
            TimelineSelector::TemiPid {
                pid: 8191,
                timeline_id: 3
            }
        );
        assert_eq!(s.to_string(), "urn:dvb2ip:timeline:temi-pid:8191:3");
        assert!(matches!(
            TimelineSelector::parse("urn:dvb2ip:timeline:temi-pid:8192:3"),
            TimelineSelector::Other(_)
        ));
    }

    #[test]
    fn mpd_and_ct_forms() {
        let s = TimelineSelector::parse("urn:dvb:css:timeline:mpd:period:rel:1000");
        assert_eq!(
            s,
            TimelineSelector::MpdPeriodRel {
                ticks_per_second: 1000,
                period_id: None
            }
        );
        assert_eq!(s.tick_rate(), TickRate::per_second(1000));
        let s = TimelineSelector::parse("urn:dvb:css:timeline:mpd:period:rel:25:p1:x");
        assert_eq!(
            s,
            TimelineSelector::MpdPeriodRel {
                ticks_per_second: 25,
                period_id: Some("p1:x".into())
            }
        );
        assert_eq!(s.to_string(), "urn:dvb:css:timeline:mpd:period:rel:25:p1:x");
        for bad in ["0", "25:", "", "1e3"] {
            let full = format!("{MPD_PERIOD_REL_PREFIX}{bad}");
            assert!(matches!(
                TimelineSelector::parse(&full),
                TimelineSelector::Other(_)
            ));
        }
        assert_eq!(
            TimelineSelector::parse("urn:dvb:css:timeline:ct"),
            TimelineSelector::Ct
        );
        assert_eq!(TimelineSelector::Ct.tick_rate(), None);
    }

    #[test]
    fn display_parse_round_trip_on_all_variants() {
        for s in [
            TimelineSelector::Pts,
            TimelineSelector::Ct,
            TimelineSelector::Temi {
                component_tag: 0,
                timeline_id: 255,
            },
            TimelineSelector::TemiPid {
                pid: 0,
                timeline_id: 0,
            },
            TimelineSelector::MpdPeriodRel {
                ticks_per_second: u64::MAX,
                period_id: Some("a".into()),
            },
            TimelineSelector::Other("urn:x".into()),
        ] {
            assert_eq!(s.to_string().parse::<TimelineSelector>().unwrap(), s);
        }
    }

    #[test]
    fn checklist_38_tick_rate_from_units() {
        let r = TickRate::new(1001, 30_000).unwrap();
        assert!((r.ticks_per_second() - 29.970_029_97).abs() < 1e-6);
        assert_eq!(TickRate::new(0, 1), None);
        assert_eq!(TickRate::new(1, 0), None);
        assert_eq!(TickRate::per_second(0), None);
    }
}
