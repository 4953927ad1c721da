//! The launcher's streams, apart from the front ends that serve them.
//!
//! * `table`: the SAT>IP stream table (stream ids, owners, what serves each stream).
//! * `sessions`: the session count RTSP sessions and HTTP streams share (`max_sessions`).
//! * `source`: the stream-source abstraction the unicast RTP packetizer and the HTTP streamer
//!   consume; one file per source kind: `tuner` (a tuner-pool subscription) today, relays and
//!   files next.

pub mod publish;
pub mod sessions;
pub mod source;
pub mod table;
pub mod tuner;

pub(crate) static CAT: once_cell::sync::Lazy<gst::DebugCategory> =
    once_cell::sync::Lazy::new(|| {
        gst::DebugCategory::new(
            "dvb2ip-streams",
            gst::DebugColorFlags::empty(),
            Some("dvb2ip stream sources"),
        )
    });
