//! Fuzz target over what a remote SAT>IP server sends to our client (src/remote_tuners,
//! gst-plugin's satip_remote): RTSP response heads, RTP packets, compound RTCP with APP SES1
//! reports and their `tuner=` status, and the X_SATIPCAP of a UPnP description. Whatever
//! comes in, the parsers return a value or an error, never a panic.
//!
//! Input layout: byte 0 picks the parser; the rest is its input.

#![no_main]

use libfuzzer_sys::fuzz_target;

use dvb2ip_proto::satip::client::{
    frontends_from_satipcap, parse_tuner_status, rtp_payload, satipcap_in_description,
    ses1_in_compound, ResponseHead,
};

fuzz_target!(|input: &[u8]| {
    let [which, data @ ..] = input else {
        return;
    };
    let text = String::from_utf8_lossy(data);
    match which % 5 {
        0 => {
            if let Ok(h) = ResponseHead::parse(&text) {
                let _ = h.header("Session");
                let _ = h.header("com.ses.streamID");
            }
        }
        1 => {
            if let Some(p) = rtp_payload(data) {
                assert!(p.len() <= data.len());
            }
        }
        2 => {
            if let Some(status) = ses1_in_compound(data) {
                let _ = parse_tuner_status(&status);
            }
        }
        3 => {
            let _ = parse_tuner_status(&text);
        }
        _ => {
            if let Some(caps) = satipcap_in_description(&text) {
                let _ = frontends_from_satipcap(caps);
            }
            let _ = frontends_from_satipcap(&text);
        }
    }
});
