//! Fuzz target over the SAT>IP request URI and query parser (RTSP and HTTP requests): target
//! parsing, tuning resolution, and creating/applying a stream from the query, as a SETUP, a PLAY
//! and an HTTP GET do. Checks that an accepted stream respects the PID limit.
//!
//! Input: the request URI as bytes (lossy UTF-8, as the servers see it after decoding).

#![no_main]

use libfuzzer_sys::fuzz_target;

use dvb2ip_proto::satip::pids::PidSet;
use dvb2ip_proto::satip::query::{parse_query, parse_target};
use dvb2ip_proto::satip::stream::StreamSpec;

const MAX_PIDS: usize = 32;

fn count(p: &PidSet) -> usize {
    match p {
        PidSet::Set(s) => {
            assert!(!s.is_empty(), "an explicit PID list is never empty");
            s.len()
        }
        _ => 0,
    }
}

fuzz_target!(|input: &[u8]| {
    let uri = String::from_utf8_lossy(input);
    if let Ok(t) = parse_target(&uri) {
        let _ = t.query.tuning.resolve();
        if let Ok(spec) = StreamSpec::create(&t.query, MAX_PIDS) {
            assert!(count(&spec.pids) <= MAX_PIDS);
            // A second request on the same stream (PLAY with addpids/delpids or a retune).
            if let Ok((next, _change)) = spec.apply(&t.query, MAX_PIDS) {
                assert!(count(&next.pids) <= MAX_PIDS);
            }
        }
    }
    if let Some((_, q)) = uri.split_once('?') {
        if let Ok(q) = parse_query(q) {
            let _ = q.tuning.merge(&q.tuning).resolve();
        }
    }
});
