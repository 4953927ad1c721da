//! On-demand relays between servers (`[[relay]]`, issue 14 items 1 and 4).
//!
//! * `config`: the `[[relay]]` section.
//! * `source`: a relay — one upstream pull shared by all its readers, its state machine
//!   (idle, starting, live, closing, failed) and its report; `Relays`, owned by the core.
//! * `pull`: the upstream session, a GStreamer pipeline (`rtspsrc`, `souphttpsrc`, `udpsrc`).
//! * `ts`: PAT/PMT and random-access-point keeping so new readers decode at once.
//! * `rtsp`: the RTSP front end (`rtsp://HOST/relay/<name>`).
//! * `rtsp_direct`: RTP/UDP readers of a relay on the direct path (a packer each, no pipeline).
//! * `http`: the HTTP front end (`http://HOST:PORT/relay/<name>`) and `GET /api/relays`.

pub mod config;
pub mod http;
pub mod pull;
pub mod rtsp;
pub mod rtsp_direct;
pub mod source;
pub mod ts;

pub use source::{Relay, RelayStatus, Relays};

pub(crate) static CAT: once_cell::sync::Lazy<gst::DebugCategory> =
    once_cell::sync::Lazy::new(|| {
        gst::DebugCategory::new(
            "dvb2ip-relay",
            gst::DebugColorFlags::empty(),
            Some("dvb2ip relays"),
        )
    });
