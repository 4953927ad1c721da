//! Fuzz target over what a relay reads from its upstream (bytes from the network): the
//! 188-byte aligner (TCP/HTTP byte streams and UDP datagrams, RTP-wrapped or not), the TS
//! cache that keeps PAT, PMT and the packets since the last random access point, and the key
//! frame test on PES starts. Whatever comes in, the aligner emits whole packets that start
//! with the sync byte, and a joining reader is handed whole packets starting with the PAT.
//!
//! Input layout: byte 0 chooses datagrams or a byte stream and the chunk size; byte 1 is a
//! stream type for the key-frame test; the rest is the upstream.

#![no_main]

use libfuzzer_sys::fuzz_target;

use dvb2ip::relay::ts::{es_key_frame, Aligner, TsCache, PACKET};

fuzz_target!(|input: &[u8]| {
    let [mode, stream_type, data @ ..] = input else {
        return;
    };
    let _ = es_key_frame(*stream_type, data);
    let chunk = usize::from(mode % 64) * 7 + 1;
    let mut aligner = Aligner::default();
    let mut cache = TsCache::default();
    let mut out = Vec::new();
    for piece in data.chunks(chunk) {
        out.clear();
        if mode & 0x80 != 0 {
            aligner.push_datagram(piece, &mut out);
        } else {
            aligner.push(piece, &mut out);
        }
        assert_eq!(out.len() % PACKET, 0);
        for pkt in out.chunks(PACKET) {
            assert_eq!(pkt[0], 0x47);
            cache.packet(pkt);
        }
        if let Some(psi) = cache.psi() {
            assert!(!psi.is_empty() && psi.len() % PACKET == 0);
        }
        if let Some(join) = cache.join() {
            assert!(!join.is_empty() && join.len() % PACKET == 0);
            // The first packet is the PAT's (PID 0).
            assert_eq!(join[1] & 0x1F, 0);
            assert_eq!(join[2], 0);
        }
    }
});
