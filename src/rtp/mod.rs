//! RTP out of the launcher without GStreamer in the way: the direct UDP path of unicast
//! streams (`udp`).

pub mod udp;

pub(crate) static CAT: once_cell::sync::Lazy<gst::DebugCategory> =
    once_cell::sync::Lazy::new(|| {
        gst::DebugCategory::new(
            "dvb2ip-rtp",
            gst::DebugColorFlags::empty(),
            Some("dvb2ip RTP packetizer and RTCP"),
        )
    });
