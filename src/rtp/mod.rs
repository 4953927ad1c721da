//! RTP out of the launcher without GStreamer in the way.
//!
//! * `packer`: the RTP/MP2T packetizer of a SAT>IP stream and the one timer thread of all
//!   packers (partial flushes, empty packets in silences, the direct path's RTCP).
//! * `rtcp`: the compound RTCP packet with APP `SES1`, and the hook that appends APP `SES1` to
//!   rtpbin's RTCP on gst-rtsp-server's path.
//! * `udp`: the direct UDP path of unicast streams (one `sendmsg` with UDP GSO per chunk).

pub mod packer;
pub mod rtcp;
pub mod udp;

pub(crate) static CAT: once_cell::sync::Lazy<gst::DebugCategory> =
    once_cell::sync::Lazy::new(|| {
        gst::DebugCategory::new(
            "dvb2ip-rtp",
            gst::DebugColorFlags::empty(),
            Some("dvb2ip RTP packetizer and RTCP"),
        )
    });
