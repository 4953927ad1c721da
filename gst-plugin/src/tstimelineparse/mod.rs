//! `tstimelineparse`: a pass-through analyser of MPEG-2 transport streams that exports the PTS
//! timeline and every TEMI timeline of each program, plus the service identity, and can cut one
//! program out of a multiplex (SPTS filter).
//!
//! ```text
//! gst-launch-1.0 dvbtunersrc delsys=dvb-t frequency=506000000 ! tstimelineparse ! fakesink -m
//! gst-launch-1.0 filesrc location=mux.ts ! tstimelineparse program-number=4609 ! filesink location=one.ts
//! ```
//!
//! * For each timeline anchor (a PES header with a PTS on the program's PTS PID, or a TEMI
//!   timeline descriptor bound to the PTS of the PES starting in the same packet) it pushes a
//!   serialized custom downstream event *before* the buffer holding the anchor packet, and posts
//!   an element message; both carry a `dvb-timeline` structure ([`event::TimelineInfo`]).
//!   Timeline changes (appeared, disappeared, paused, resumed, discontinuity) travel the same
//!   way, in front of the buffer where they were detected.
//! * Service identity (ONID, TSID, service id, names, present event id) goes out as
//!   `dvb-service` ([`event::ServiceIdentity`]) whenever it changes.
//! * The `timelines` property lists what is available now; `stats` counts packets and errors.
//!   Errors (lost sync, CC, malformed fields, bad sections) are also reported as bus warnings, at
//!   most one per second.
//! * With `program-number` ≠ 0 it only reports that program and outputs an SPTS; see
//!   [`spts`] for what is kept.
//!
//! TEMI timelines whose PID has a component tag (stream_identifier_descriptor) get the DVB-CSS
//! selector `urn:dvb:css:timeline:temi:<component_tag>:<timeline_id>`; otherwise the private
//! `urn:dvb2ip:timeline:temi-pid:<pid>:<timeline_id>`
//! ([`crate::proto::css::timeline::PRIVATE_TEMI_PID_PREFIX`]).

use gst::glib;
use gst::prelude::*;

pub mod event;
mod imp;
pub mod spts;

glib::wrapper! {
    pub struct TsTimelineParse(ObjectSubclass<imp::TsTimelineParse>) @extends gst_base::BaseTransform, gst::Element, gst::Object;
}

pub fn register(plugin: &gst::Plugin) -> Result<(), glib::BoolError> {
    gst::Element::register(
        Some(plugin),
        "tstimelineparse",
        gst::Rank::NONE,
        TsTimelineParse::static_type(),
    )
}
