//! The `dvb-timeline` and `dvb-service` structures that `tstimelineparse` sends downstream (as
//! serialized custom downstream events) and posts on the bus (as element messages), with typed
//! builders and parsers so that a downstream element (e.g. `dvbcsssink`) or an application can
//! read them back.
//!
//! # `dvb-timeline`
//!
//! | field | type | meaning |
//! |-------|------|---------|
//! | `event` | string | `correlation`, `appeared`, `disappeared`, `paused`, `resumed`, `discontinuity` or `location` |
//! | `selector` | string | `urn:dvb:css:timeline:pts`, `urn:dvb:css:timeline:temi:<tag>:<id>`, or the private `urn:dvb2ip:timeline:temi-pid:<pid>:<id>` when the PID has no component tag |
//! | `type` | string | `pts` or `temi` |
//! | `program` | uint | program_number (0 = not in any PMT) |
//! | `pid` | uint | PID carrying the PTS / the TEMI descriptors |
//! | `timeline-id` | uint | TEMI timeline_id (TEMI only) |
//! | `component-tag` | uint | component tag of the PID, when the PMT gives one |
//! | `tick-rate` | guint64 | ticks per second (90000 for PTS, the TEMI timescale); for a `location` before any timeline descriptor of its timeline, the announcement's timescale, or 0 when not known yet |
//! | `value` | guint64 | timeline position at `pts` (correlations) |
//! | `pts` | guint64 | raw 33-bit PTS (90 kHz) the value belongs to |
//! | `pts-unwrapped` | guint64 | that PTS unwrapped on the program's continuous 64-bit time line |
//! | `running-time` | guint64 (ns) | running time of the buffer holding the anchor packet (absent when the segment is not TIME or the buffer has no timestamp) |
//! | `buffer-pts` | guint64 (ns) | that buffer's PTS (absent if none) |
//! | `presentation-running-time` | guint64 (ns) | running time at which a decoder presents the access unit: the moment the program's STC, locked to the running time of the buffers carrying its PCRs, reads `pts` (absent before the first PCR, or without buffer timestamps) |
//! | `packet-index` | guint64 | 0-based index of the anchor TS packet since start/flush |
//! | `paused`, `discontinuity`, `force-reload` | boolean | TEMI descriptor flags |
//! | `timestamp-bits` | uint | 32 or 64 (TEMI media_timestamp width) |
//! | `conformant` | boolean | false when the descriptor was bound to a later PES (spec 2.3) |
//! | `ntp` | guint64 | NTP timestamp of the descriptor, if present |
//! | `reason` | string | for `discontinuity`: `flagged` (TEMI descriptor flag), `timescale-changed`, `undeclared-jump` (a TEMI value off its extrapolation, also across a time-base splice or while paused), `pcr-discontinuity` (PTS timeline: PCR discontinuity_indicator), `pcr-jump` (PTS timeline: a PCR step backwards or over 1 s forward without it) |
//! | `deviation` | gint64 | for `undeclared-jump`: received − predicted, in ticks |
//! | `url` | string | for `location`: the full TEMI location URL |
//!
//! The correlation says: *the timeline was at `value` for the access unit with PTS `pts`, and
//! the TS packet carrying that PES header arrived in the buffer whose running time is
//! `running-time`*. It is exact on the PTS axis; on the running-time axis `running-time` is as
//! precise as the buffer timestamps (a live source stamps each buffer on arrival, and where the
//! muxer placed the packet varies by tens of milliseconds). `presentation-running-time` is
//! where a decoder shows that access unit: on a straight line with the PTS, the decoder delay
//! PTS − PCR included (see [`crate::proto::clock::StcLock`]).
//!
//! # `dvb-service`
//!
//! `program`/`service-id` (uint), and when known `original-network-id`, `transport-stream-id`
//! (uint), `service-type` (uint), `service-name`, `provider-name`, `network-name` (string),
//! `event-id` (uint, present event of EIT p/f actual), `event-name` (string), `event-start`
//! (gint64, its start in Unix seconds UTC), `event-duration` (uint, seconds), plus
//! `running-time` (guint64 ns) of the buffer where the change was seen.

use gst::prelude::*;

use crate::proto::clock::Correlation;

/// Structure name of timeline events and messages.
pub const TIMELINE_STRUCTURE: &str = "dvb-timeline";
/// Structure name of service identity events and messages.
pub const SERVICE_STRUCTURE: &str = "dvb-service";

/// What a `dvb-timeline` structure reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimelineEventKind {
    /// A (value, PTS, running time) correlation.
    Correlation,
    /// The timeline became available.
    Appeared,
    /// The timeline is no longer available.
    Disappeared,
    /// The TEMI paused flag went 0 → 1.
    Paused,
    /// The TEMI paused flag went 1 → 0.
    Resumed,
    /// Earlier correlations must not be used any more.
    Discontinuity,
    /// A TEMI location descriptor (URL) for the timeline.
    Location,
}

impl TimelineEventKind {
    /// The `event` field value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Correlation => "correlation",
            Self::Appeared => "appeared",
            Self::Disappeared => "disappeared",
            Self::Paused => "paused",
            Self::Resumed => "resumed",
            Self::Discontinuity => "discontinuity",
            Self::Location => "location",
        }
    }

    /// Parse an `event` field value.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "correlation" => Self::Correlation,
            "appeared" => Self::Appeared,
            "disappeared" => Self::Disappeared,
            "paused" => Self::Paused,
            "resumed" => Self::Resumed,
            "discontinuity" => Self::Discontinuity,
            "location" => Self::Location,
            _ => return None,
        })
    }
}

/// Contents of a `dvb-timeline` structure; see the module documentation for the fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimelineInfo {
    pub kind: TimelineEventKind,
    pub selector: String,
    /// True for TEMI, false for the PTS timeline.
    pub temi: bool,
    pub program: u16,
    pub pid: u16,
    pub timeline_id: Option<u8>,
    pub component_tag: Option<u8>,
    pub tick_rate: u64,
    pub value: Option<u64>,
    pub pts: Option<u64>,
    pub pts_unwrapped: Option<u64>,
    pub running_time: Option<gst::ClockTime>,
    pub buffer_pts: Option<gst::ClockTime>,
    pub presentation_time: Option<gst::ClockTime>,
    pub packet_index: u64,
    pub paused: bool,
    pub discontinuity: bool,
    pub force_reload: bool,
    pub timestamp_bits: Option<u8>,
    pub conformant: bool,
    pub ntp: Option<u64>,
    pub reason: Option<String>,
    pub deviation: Option<i64>,
    pub url: Option<String>,
}

impl TimelineInfo {
    /// A record with only the identity fields set.
    pub fn new(
        kind: TimelineEventKind,
        selector: String,
        temi: bool,
        program: u16,
        pid: u16,
    ) -> Self {
        TimelineInfo {
            kind,
            selector,
            temi,
            program,
            pid,
            timeline_id: None,
            component_tag: None,
            tick_rate: 0,
            value: None,
            pts: None,
            pts_unwrapped: None,
            running_time: None,
            buffer_pts: None,
            presentation_time: None,
            packet_index: 0,
            paused: false,
            discontinuity: false,
            force_reload: false,
            timestamp_bits: None,
            conformant: true,
            ntp: None,
            reason: None,
            deviation: None,
            url: None,
        }
    }

    /// The structure.
    pub fn to_structure(&self) -> gst::Structure {
        let mut b = gst::Structure::builder(TIMELINE_STRUCTURE)
            .field("event", self.kind.as_str())
            .field("selector", self.selector.as_str())
            .field("type", if self.temi { "temi" } else { "pts" })
            .field("program", u32::from(self.program))
            .field("pid", u32::from(self.pid))
            .field_if_some("timeline-id", self.timeline_id.map(u32::from))
            .field_if_some("component-tag", self.component_tag.map(u32::from))
            .field("tick-rate", self.tick_rate)
            .field_if_some("value", self.value)
            .field_if_some("pts", self.pts)
            .field_if_some("pts-unwrapped", self.pts_unwrapped)
            .field_if_some("running-time", self.running_time.map(|t| t.nseconds()))
            .field_if_some("buffer-pts", self.buffer_pts.map(|t| t.nseconds()))
            .field_if_some(
                "presentation-running-time",
                self.presentation_time.map(|t| t.nseconds()),
            )
            .field("packet-index", self.packet_index)
            .field("paused", self.paused)
            .field("discontinuity", self.discontinuity)
            .field("force-reload", self.force_reload)
            .field_if_some("timestamp-bits", self.timestamp_bits.map(u32::from))
            .field("conformant", self.conformant)
            .field_if_some("ntp", self.ntp)
            .field_if_some("deviation", self.deviation);
        if let Some(r) = &self.reason {
            b = b.field("reason", r.as_str());
        }
        if let Some(u) = &self.url {
            b = b.field("url", u.as_str());
        }
        b.build()
    }

    /// Parse a `dvb-timeline` structure; `None` for any other structure or a malformed one.
    pub fn from_structure(s: &gst::StructureRef) -> Option<Self> {
        if s.name() != TIMELINE_STRUCTURE {
            return None;
        }
        let u8_of = |name: &str| {
            s.get_optional::<u32>(name)
                .ok()
                .flatten()
                .and_then(|v| u8::try_from(v).ok())
        };
        let u64_of = |name: &str| s.get_optional::<u64>(name).ok().flatten();
        let str_of = |name: &str| s.get_optional::<String>(name).ok().flatten();
        let bool_of = |name: &str| s.get_optional::<bool>(name).ok().flatten().unwrap_or(false);
        Some(TimelineInfo {
            kind: TimelineEventKind::parse(s.get::<&str>("event").ok()?)?,
            selector: s.get::<String>("selector").ok()?,
            temi: s.get::<&str>("type").ok()? == "temi",
            program: u16::try_from(s.get::<u32>("program").ok()?).ok()?,
            pid: u16::try_from(s.get::<u32>("pid").ok()?).ok()?,
            timeline_id: u8_of("timeline-id"),
            component_tag: u8_of("component-tag"),
            tick_rate: s.get::<u64>("tick-rate").ok()?,
            value: u64_of("value"),
            pts: u64_of("pts"),
            pts_unwrapped: u64_of("pts-unwrapped"),
            running_time: u64_of("running-time").map(gst::ClockTime::from_nseconds),
            buffer_pts: u64_of("buffer-pts").map(gst::ClockTime::from_nseconds),
            presentation_time: u64_of("presentation-running-time")
                .map(gst::ClockTime::from_nseconds),
            packet_index: u64_of("packet-index").unwrap_or(0),
            paused: bool_of("paused"),
            discontinuity: bool_of("discontinuity"),
            force_reload: bool_of("force-reload"),
            timestamp_bits: u8_of("timestamp-bits"),
            conformant: s
                .get_optional::<bool>("conformant")
                .ok()
                .flatten()
                .unwrap_or(true),
            ntp: u64_of("ntp"),
            reason: str_of("reason"),
            deviation: s.get_optional::<i64>("deviation").ok().flatten(),
            url: str_of("url"),
        })
    }

    /// For a correlation with a running time: the DVB-CSS style correlation (reference clock
    /// = pipeline running time), speed 0 when paused.
    pub fn correlation(&self) -> Option<Correlation> {
        if self.kind != TimelineEventKind::Correlation || self.tick_rate == 0 {
            return None;
        }
        Some(Correlation {
            timeline_ticks: self.value?,
            tick_rate: self.tick_rate,
            reference_ns: self.running_time?.nseconds(),
            speed: if self.paused { 0.0 } else { 1.0 },
        })
    }
}

/// Contents of a `dvb-service` structure.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ServiceIdentity {
    pub service_id: u16,
    pub original_network_id: Option<u16>,
    pub transport_stream_id: Option<u16>,
    pub service_type: Option<u8>,
    pub service_name: Option<String>,
    pub provider_name: Option<String>,
    pub network_name: Option<String>,
    pub event_id: Option<u16>,
    pub event_name: Option<String>,
    /// Start of the present event, Unix seconds (UTC).
    pub event_start: Option<i64>,
    /// Duration of the present event, seconds.
    pub event_duration: Option<u32>,
    pub running_time: Option<gst::ClockTime>,
}

impl ServiceIdentity {
    /// The structure.
    pub fn to_structure(&self) -> gst::Structure {
        let mut b = gst::Structure::builder(SERVICE_STRUCTURE)
            .field("program", u32::from(self.service_id))
            .field("service-id", u32::from(self.service_id))
            .field_if_some(
                "original-network-id",
                self.original_network_id.map(u32::from),
            )
            .field_if_some(
                "transport-stream-id",
                self.transport_stream_id.map(u32::from),
            )
            .field_if_some("service-type", self.service_type.map(u32::from))
            .field_if_some("event-id", self.event_id.map(u32::from))
            .field_if_some("event-start", self.event_start)
            .field_if_some("event-duration", self.event_duration)
            .field_if_some("running-time", self.running_time.map(|t| t.nseconds()));
        for (k, v) in [
            ("service-name", &self.service_name),
            ("provider-name", &self.provider_name),
            ("network-name", &self.network_name),
            ("event-name", &self.event_name),
        ] {
            if let Some(v) = v {
                b = b.field(k, v.as_str());
            }
        }
        b.build()
    }

    /// Parse a `dvb-service` structure.
    pub fn from_structure(s: &gst::StructureRef) -> Option<Self> {
        if s.name() != SERVICE_STRUCTURE {
            return None;
        }
        let u16_of = |name: &str| {
            s.get_optional::<u32>(name)
                .ok()
                .flatten()
                .and_then(|v| u16::try_from(v).ok())
        };
        let str_of = |name: &str| s.get_optional::<String>(name).ok().flatten();
        Some(ServiceIdentity {
            service_id: u16_of("service-id")?,
            original_network_id: u16_of("original-network-id"),
            transport_stream_id: u16_of("transport-stream-id"),
            service_type: u16_of("service-type").and_then(|v| u8::try_from(v).ok()),
            service_name: str_of("service-name"),
            provider_name: str_of("provider-name"),
            network_name: str_of("network-name"),
            event_id: u16_of("event-id"),
            event_name: str_of("event-name"),
            event_start: s.get_optional::<i64>("event-start").ok().flatten(),
            event_duration: s.get_optional::<u32>("event-duration").ok().flatten(),
            running_time: s
                .get_optional::<u64>("running-time")
                .ok()
                .flatten()
                .map(gst::ClockTime::from_nseconds),
        })
    }
}

/// The event and message forms of a structure type with `to_structure`/`from_structure`:
/// a serialized custom downstream event and an element message.
macro_rules! carried_as_event_and_message {
    ($t:ty, $name:literal) => {
        impl $t {
            #[doc = concat!("A serialized custom downstream event carrying the `", $name, "` structure.")]
            pub fn to_event(&self) -> gst::Event {
                gst::event::CustomDownstream::new(self.to_structure())
            }

            #[doc = concat!("Parse a `", $name, "` custom downstream event.")]
            pub fn from_event(e: &gst::EventRef) -> Option<Self> {
                if e.type_() != gst::EventType::CustomDownstream {
                    return None;
                }
                e.structure().and_then(Self::from_structure)
            }

            #[doc = concat!("An element message carrying the `", $name, "` structure, from `src`.")]
            pub fn to_message(&self, src: &impl IsA<gst::Object>) -> gst::Message {
                gst::message::Element::builder(self.to_structure())
                    .src(src)
                    .build()
            }

            #[doc = concat!("Parse a `", $name, "` element message.")]
            pub fn from_message(m: &gst::MessageRef) -> Option<Self> {
                match m.view() {
                    gst::MessageView::Element(e) => e.structure().and_then(Self::from_structure),
                    _ => None,
                }
            }
        }
    };
}

carried_as_event_and_message!(TimelineInfo, "dvb-timeline");
carried_as_event_and_message!(ServiceIdentity, "dvb-service");
