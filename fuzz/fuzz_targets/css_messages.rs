//! Fuzz target over the DVB-CSS message parsers: CSS-CII and CSS-TS JSON messages (CII,
//! setup-data, control timestamps, actual/earliest/latest presentation timestamps), DVB content
//! ids and timeline selectors, and CSS-WC datagrams with the server's reply to them.
//!
//! Input: byte 0 picks the parser; the rest is the message.

#![no_main]

use libfuzzer_sys::fuzz_target;

use dvb2ip_proto::css::cii::CiiMessage;
use dvb2ip_proto::css::contentid::DvbContentId;
use dvb2ip_proto::css::timeline::TimelineSelector;
use dvb2ip_proto::css::ts::{AptEptLpt, ControlTimestamp, SetupData};
use dvb2ip_proto::css::wc::WcMessage;

fuzz_target!(|input: &[u8]| {
    let Some((&which, data)) = input.split_first() else {
        return;
    };
    let text = String::from_utf8_lossy(data);
    match which % 7 {
        0 => {
            if let Ok(m) = CiiMessage::parse(&text) {
                let _ = m.validate();
                let _ = serde_json::to_string(&m);
            }
        }
        1 => {
            let _ = SetupData::parse(&text);
        }
        2 => {
            let _ = ControlTimestamp::parse(&text);
        }
        3 => {
            let _ = AptEptLpt::parse(&text);
        }
        4 => {
            if let Ok(id) = DvbContentId::parse(&text) {
                let _ = id.to_string();
            }
        }
        5 => {
            let _ = TimelineSelector::parse(&text);
        }
        _ => {
            let _ = WcMessage::decode(data);
            let _ = WcMessage::decode_request(data);
            let _ = WcMessage::decode_reply(data);
        }
    }
});
