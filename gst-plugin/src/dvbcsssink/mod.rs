//! `dvbcsssink`: serves DVB-CSS (CSS-CII, CSS-TS, CSS-WC) for the transport stream it
//! presents, as an HbbTV 2 TV does for companion screens.
//!
//! ```text
//! gst-launch-1.0 dvbtunersrc delsys=dvb-t frequency=506000000 ! tstimelineparse program-number=4609 ! dvbcsssink
//! ```
//!
//! * Place it where the stream is presented (`sync=true`, the default): a buffer "is
//!   presented" when the sink renders it, at clock time `running time + base time + latency
//!   + ts-offset`.
//! * **Endpoints** (the digest's and pydvbcss's conventions): `ws://HOST:7681/cii`,
//!   `ws://HOST:7681/ts` (one HTTP server when `ts-port` equals `cii-port`, the default) and
//!   `udp://HOST:6677`. Ports are properties; 0 picks a free port and the bound port is
//!   written back and notified. The CII `tsUrl`/`wcUrl` carry `{{host}}`, replaced per client
//!   by the address of the interface its CII connection came in on.
//! * **Wall clock**: GStreamer's system clock (`CLOCK_MONOTONIC`, ns), which is the pipeline
//!   clock unless the application selects another one; in that case times are converted
//!   through simultaneous readings of both clocks. The CSS-WC server answers with this clock
//!   and every CSS-TS `wallClockTime` is on it.
//! * **contentId** comes from the `dvb-service` events of `tstimelineparse`:
//!   `dvb://onid.tsid.sid` (hex) with `contentIdStatus` `partial` (the event's start and
//!   duration, needed for the `final` form, are not in the event), or the `content-id`
//!   property. A new service is a channel change: all timelines are withdrawn until the new
//!   service's timelines are seen.
//! * **Timelines** come from the `dvb-timeline` events (PTS and every TEMI timeline). Each
//!   is kept as a line from running time to timeline ticks (see [`lines`]); the CSS
//!   servers are [`crate::css_server`]; when the buffer
//!   that carried an anchor which moved the line is rendered, the line is published as
//!   `(wall clock of that buffer's presentation, timeline value)` with the speed.
//! * **Control timestamps** follow every change: pause (speed 0 at the paused position),
//!   play (speed 1 with the new base time), TEMI paused flag, discontinuities, seeks and
//!   flushes (unavailable until the next anchor), channel change, timeline gone and EOS
//!   (unavailable).
//! * **presentationStatus**: `transitioning` from start (and after a channel change) until
//!   a buffer is rendered, then `okay`; the `presentation-status` property overrides it.
//! * With `post-messages`, a `dvb-css-presented` element message is posted for every
//!   rendered buffer that carried timeline anchors: `selector`, `value`, `tick-rate` and
//!   `wall-clock` (ns, read right after the clock wait), so applications can check what
//!   clients are told against what was presented.

use gst::glib;
use gst::prelude::*;

mod imp;
/// Former name of [`crate::css_server`], kept so that code written against it still builds.
#[doc(hidden)]
pub use crate::css_server as servers;
/// The timeline lines (moved to the protocol crate; this path stays valid).
pub use crate::proto::css::lines;

/// Structure name of the `post-messages` element messages.
pub const PRESENTED_STRUCTURE: &str = "dvb-css-presented";

glib::wrapper! {
    pub struct DvbCssSink(ObjectSubclass<imp::DvbCssSink>) @extends gst_base::BaseSink, gst::Element, gst::Object;
}

pub fn register(plugin: &gst::Plugin) -> Result<(), glib::BoolError> {
    gst::Element::register(
        Some(plugin),
        "dvbcsssink",
        gst::Rank::NONE,
        DvbCssSink::static_type(),
    )
}
