//! Fuzz target over the channel files the scanner reads: DVBv5 initial tuning files (Debian's
//! dtv-scan-tables format) and the stored channel database, which must round-trip once read.

#![no_main]

use libfuzzer_sys::fuzz_target;

use dvb2ip_proto::scan::db::ChannelDb;
use dvb2ip_proto::scan::initial::parse_dvbv5;

fuzz_target!(|input: &[u8]| {
    let Some((&which, data)) = input.split_first() else {
        return;
    };
    if which & 1 == 0 {
        let _ = parse_dvbv5(&String::from_utf8_lossy(data));
    } else if let Ok(db) = ChannelDb::from_bytes(data) {
        let again = ChannelDb::from_bytes(&db.to_bytes()).expect("a stored database reads back");
        assert_eq!(again.to_bytes(), db.to_bytes());
        let _ = db.channels();
        let _ = db.known_muxes();
    }
});
