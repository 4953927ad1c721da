//! The GStreamer-free heart of the channel scanner (issue 12): SI readers, service
//! classification, the per-mux table collector, the scan queue with NIT discovery, the channel
//! database, initial tuning files and rasters, and the exporters. Digest:
//! `specs/dvb-scan.md`.
//!
//! Nothing here does I/O or reads a clock: callers feed sections and monotonic milliseconds,
//! and write the bytes the database and exporters return.

pub mod classify;
pub mod collector;
pub mod db;
pub mod delivery;
pub mod export;
#[cfg(test)]
mod fixtures;
pub mod initial;
pub mod mux;
pub mod nit;
pub mod queue;
pub mod sdt;
pub mod session;
pub mod subtable;
pub mod text;
mod text_tables;

#[cfg(test)]
mod robustness {
    //! Bad input never panics: random bytes through every reader.

    use super::*;

    #[test]
    fn random_bytes_never_panic() {
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for round in 0..20_000 {
            let len = (next() % 64) as usize;
            let mut b: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            // Bias some rounds towards plausible descriptor loops.
            if round % 2 == 0 && b.len() > 2 {
                b[0] = [0x43, 0x44, 0x5A, 0x7F, 0x79, 0x62, 0x83, 0x87, 0x88, 0x5F][round % 10];
                b[1] = (b.len() - 2) as u8;
                if b[0] == 0x7F && b.len() > 2 {
                    b[2] = 0x04;
                }
            }
            let _ = text::decode(&b);
            let d = delivery::Delivery::from_descriptors(&b);
            let _ = d.to_mux(None);
            let _ = nit::lcns_in_loop(&b, &nit::LcnOptions::default());
            let _ = nit::lcns_in_loop(
                &[&[0x5F, 0x04, 0, 0, 0, 0x29][..], &b[..]].concat(),
                &nit::LcnOptions {
                    country: Some(*b"NOR"),
                },
            );
            let _ = sdt::service_descriptor(&b);
            let _ = classify::es_kind(b.first().copied().unwrap_or(6), &b);
            let _ = initial::parse_dvbv5(&String::from_utf8_lossy(&b));
            let _ = initial::parse_transponder_list(&String::from_utf8_lossy(&b), 192);
            let _ = db::ChannelDb::from_bytes(&b);
        }
    }
}
