//! Fuzz target over the SSDP datagram parser (M-SEARCH, NOTIFY, search responses) and what the
//! advertiser derives from a parsed message: its targets for our UUID, the MX delay, the
//! sender's UUID and the checks for multicast and unicast reception.

#![no_main]

use libfuzzer_sys::fuzz_target;

use dvb2ip_proto::ssdp::message::{parse_message, usn_uuid, Message};

const OURS: &str = "6f7c2a1e-1d2b-4c3d-9e8f-0123456789ab";

fuzz_target!(|data: &[u8]| {
    let Ok(m) = parse_message(data) else {
        return;
    };
    let _ = m.sender_uuid();
    match &m {
        Message::Search(s) => {
            let _ = s.targets(OURS);
            let _ = s.check(true);
            let _ = s.check(false);
            // The answer is delayed by at most MX seconds, bounded by the advertiser.
            let _ = s.max_delay_ms();
        }
        Message::Notify(n) => {
            let _ = n.uuid();
        }
        Message::Response(r) => {
            if let Some(usn) = &r.usn {
                let _ = usn_uuid(usn);
            }
        }
    }
});
