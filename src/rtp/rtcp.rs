//! RTCP of SAT>IP streams: the compound packet the packetizer sends itself on the direct path
//! (SR, SDES CNAME, APP `SES1`, [`compound`]), and, on gst-rtsp-server's path, the APP `SES1`
//! packet appended to every compound rtpbin sends ([`hook_session`]) and the report interval
//! ([`set_interval`], [`quiet`]).

use gst::glib;
use gst::prelude::*;
use gstdvb2ip::proto::rtp::{ntp_timestamp, push_sdes_cname, push_sender_report};
use gstdvb2ip::proto::satip::encode_rtcp_app_ses1;

use super::CAT;

/// RTCP report interval asked from rtpbin: SAT>IP wants ~5 reports per second.
pub const INTERVAL_NS: u64 = 130_000_000;

/// The direct path's compound RTCP packet: SR (`packets`/`octets` sent so far, `rtp_time`
/// now), SDES CNAME `cname`, APP `SES1` with `status`.
pub fn compound(
    ssrc: u32,
    rtp_time: u32,
    packets: u32,
    octets: u32,
    cname: &str,
    status: &str,
) -> Vec<u8> {
    let unix = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let mut out = Vec::with_capacity(256);
    push_sender_report(
        &mut out,
        ssrc,
        ntp_timestamp(unix.as_nanos()),
        rtp_time,
        packets,
        octets,
    );
    push_sdes_cname(&mut out, ssrc, cname);
    out.extend_from_slice(&encode_rtcp_app_ses1(ssrc, status));
    out
}

/// Makes every RTCP compound rtpbin's session `sess` sends carry the APP `SES1` packet with
/// the status `status()` reads, and sets the report interval. Idempotent.
pub fn hook_session(
    sess: &glib::Object,
    status: impl Fn() -> Option<String> + Send + Sync + 'static,
) {
    // SAFETY: the key is only ever used with a `bool`.
    unsafe {
        if sess.data::<bool>("dvb2ip-ses1").is_some() {
            return;
        }
        sess.set_data("dvb2ip-ses1", true);
    }
    sess.connect("on-sending-rtcp", false, move |args| {
        gst::trace!(CAT, "on-sending-rtcp");
        if let Some(status) = status() {
            // SAFETY: arg 1 is the GstBuffer being built (boxed, not ref'd by us, so
            // still writable).
            unsafe { append_app(&args[1], &status) };
        }
        Some(false.to_value())
    });
    // After connecting: changing the interval wakes the RTCP thread, which may send at once.
    set_interval(sess, INTERVAL_NS);
}

/// Sets rtpbin's RTCP interval of an RTP session (where the property exists).
pub fn set_interval(sess: &glib::Object, ns: u64) {
    if sess.find_property("rtcp-min-interval").is_some() {
        sess.set_property("rtcp-min-interval", ns);
    }
}

/// Quiets rtpbin's own RTCP on session `sess`: the packetizer sends RTCP itself.
pub fn quiet(sess: &glib::Object) {
    set_interval(sess, RTCP_QUIET_NS);
}

/// rtpbin's RTCP interval while the packer sends RTCP itself: effectively never.
const RTCP_QUIET_NS: u64 = 24 * 3600 * 1_000_000_000;

/// Appends the SAT>IP APP `SES1` packet to the compound RTCP buffer in `value`.
///
/// # Safety
/// `value` must hold the `GstBuffer*` of rtpsession's `on-sending-rtcp` signal.
unsafe fn append_app(value: &glib::Value, status: &str) {
    use glib::translate::ToGlibPtr;
    let gvalue: *const glib::gobject_ffi::GValue = value.to_glib_none().0;
    let buf = glib::gobject_ffi::g_value_get_boxed(gvalue) as *mut gst::ffi::GstBuffer;
    if buf.is_null() {
        return;
    }
    let mut rtcp: gst_rtp::ffi::GstRTCPBuffer = std::mem::zeroed();
    if gst_rtp::ffi::gst_rtcp_buffer_map(buf, gst::ffi::GST_MAP_READWRITE, &mut rtcp) == 0 {
        gst::warning!(CAT, "cannot map the RTCP buffer to add APP SES1");
        return;
    }
    // SSRC of the first packet (SR or RR) of the compound.
    let ssrc = if rtcp.map.size >= 8 {
        let d = std::slice::from_raw_parts(rtcp.map.data, 8);
        u32::from_be_bytes([d[4], d[5], d[6], d[7]])
    } else {
        0
    };
    let app = encode_rtcp_app_ses1(ssrc, status);
    let mut packet: gst_rtp::ffi::GstRTCPPacket = std::mem::zeroed();
    if gst_rtp::ffi::gst_rtcp_buffer_add_packet(
        &mut rtcp,
        gst_rtp::ffi::GST_RTCP_TYPE_APP,
        &mut packet,
    ) != 0
    {
        gst::trace!(CAT, "adding APP SES1 ({} bytes)", app.len());
        gst_rtp::ffi::gst_rtcp_packet_app_set_subtype(&mut packet, 0);
        gst_rtp::ffi::gst_rtcp_packet_app_set_ssrc(&mut packet, ssrc);
        gst_rtp::ffi::gst_rtcp_packet_app_set_name(&mut packet, c"SES1".as_ptr());
        let data = &app[12..];
        if gst_rtp::ffi::gst_rtcp_packet_app_set_data_length(&mut packet, (data.len() / 4) as u16)
            != 0
        {
            let dst = gst_rtp::ffi::gst_rtcp_packet_app_get_data(&mut packet);
            if !dst.is_null() {
                std::ptr::copy_nonoverlapping(data.as_ptr(), dst, data.len());
            }
        }
    }
    gst_rtp::ffi::gst_rtcp_buffer_unmap(&mut rtcp);
}
