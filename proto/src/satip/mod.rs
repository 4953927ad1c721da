//! SAT>IP query parsing, validation and normalisation (spec digest `satip.md` §2, §4.3, §4.4,
//! §6.1, §7.2, §10.2), plus the tuner status string, the RTCP APP `SES1` packet and the extended
//! M3U channel list.
//!
//! Pure code: std only, never `gst`/`glib`, never panics on any input.
//!
//! Flow for a request URI:
//!
//! 1. [`parse_target`] splits `rtsp://host/stream=3?query` into the stream id and a [`Query`].
//!    Syntax errors (bad path, missing `=`, duplicated attribute) are 400 `Check-Syntax:`.
//! 2. [`parse_query`] turns the query into typed values. Values are case-insensitive, names are
//!    case-sensitive, unknown attributes and empty pairs are ignored. Values that are not
//!    understood are collected and reported together as 403 `Out-of-Range: a b`.
//! 3. [`StreamSpec::create`] (SETUP creating a stream) or [`StreamSpec::apply`] (PLAY or
//!    in-session SETUP on an existing stream) merges the query, applies the defaults of §2.7,
//!    checks the values against the delivery system and yields a resolved [`Tuning`] plus a
//!    [`PidSet`], and for `apply` whether this is a retune or a PID change only.
//! 4. [`Tuning::check_capabilities`] checks the request against what the server has (403 `msys`,
//!    403 `fe`).
//!
//! Units used by [`Tuning`] follow GStreamer's `dvbsrc`: `frequency` is kHz for satellite and Hz
//! for terrestrial and cable, `symbol_rate` is kSym/s (dvbsrc `symbol-rate` is in kBd),
//! `bandwidth_hz` is Hz (dvbsrc `bandwidth-hz`).
//!
//! One file per part, all re-exported here (`proto::satip::X` is the path to use): [`attrs`]
//! (attribute names, errors), [`values`], [`pids`], [`query`], [`tuning`], [`stream`],
//! [`status`] (§4.3, §4.4), [`rtcp`] (§6.1), [`m3u`] (§7.2), [`transport`] (§3.4).

use std::collections::BTreeSet;
use std::fmt;

/// Longest query (bytes, after `?`) we accept; longer ones get 414.
pub const MAX_QUERY_LEN: usize = 8192;
/// Highest valid PID.
pub const MAX_PID: u16 = 8191;
/// Default per-stream PID filter limit ([MS] uses 128 per tuner); beyond it: 503 `No-More: pids`.
pub const DEFAULT_MAX_PIDS: usize = 128;
/// Content type of 400/403/503 bodies.
pub const ERROR_CONTENT_TYPE: &str = "text/parameters";

pub mod attrs;
pub mod client;
pub mod m3u;
mod num;
pub mod pids;
pub mod query;
pub mod rtcp;
pub mod status;
pub mod stream;
pub mod transport;
pub mod tuning;
pub mod values;

pub use attrs::*;
pub use m3u::*;
use num::*;
pub use pids::*;
pub use query::*;
pub use rtcp::*;
pub use status::*;
pub use stream::*;
pub use transport::*;
pub use tuning::*;
pub use values::*;

#[cfg(test)]
mod test_util {
    use super::*;

    pub(super) const SAT_Q: &str = "?src=1&freq=11494&pol=h&ro=0.35&msys=dvbs2&mtype=8psk&plts=on&sr=22000&fec=23&pids=0,17,18,5100";

    pub(super) const TER_Q: &str =
        "?freq=538&bw=8&msys=dvbt&tmode=8k&mtype=64qam&gi=14&fec=23&pids=0,16,17,18";

    pub(super) const CAB_Q: &str =
        "?freq=474&msys=dvbc&mtype=256qam&sr=6900&specinv=0&pids=0,16,17";

    pub(super) const C2_Q: &str = "?freq=650.5&bw=8&msys=dvbc2&c2tft=0&ds=0&plp=0&pids=0";

    pub(super) fn spec(q: &str) -> StreamSpec {
        StreamSpec::create(&parse_query(q).expect("query parses"), DEFAULT_MAX_PIDS)
            .expect("stream spec")
    }

    pub(super) fn err(q: &str) -> QueryError {
        match parse_query(q).and_then(|q| StreamSpec::create(&q, DEFAULT_MAX_PIDS)) {
            Ok(s) => panic!("expected an error for {q}, got {s:?}"),
            Err(e) => e,
        }
    }

    pub(super) fn pids(list: &[u16]) -> PidSet {
        PidSet::from_pids(list.iter().copied())
    }

    pub(super) fn locked(level: u8, quality: u8) -> SignalStatus {
        SignalStatus {
            level,
            lock: true,
            quality,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::test_util::*;
    use super::*;

    /// Deterministic pseudo-random inputs: nothing may panic.
    #[test]
    fn never_panics_on_garbage() {
        let alphabet: Vec<char> = "=&?%/,.0123456789abcdefpidsrcfreqmsysdvbs2-:*all none\u{e9}\r\n"
            .chars()
            .collect();
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        for _ in 0..4000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let len = (x % 40) as usize;
            let mut s = String::new();
            let mut y = x;
            for _ in 0..len {
                y = y.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                s.push(alphabet[(y >> 33) as usize % alphabet.len()]);
            }
            let _ = parse_target(&s);
            if let Ok(q) = parse_query(&s) {
                if let Ok(sp) = StreamSpec::create(&q, DEFAULT_MAX_PIDS) {
                    let _ = status_string(1, SignalStatus::default(), Some(&sp.tuning), &sp.pids);
                    let _ = sp.apply(&q, DEFAULT_MAX_PIDS);
                }
            }
            let _ = decode_rtcp_app_ses1(s.as_bytes());
        }
        for i in 0..=SAT_Q.len() {
            if let Some(prefix) = SAT_Q.get(..i) {
                let _ = parse_target(prefix).map(|t| t.query.tuning.resolve());
            }
        }
        let _ = parse_query("freq=99999999999999999999&sr=99999999999&bw=999999999999.999&src=300");
    }
}
