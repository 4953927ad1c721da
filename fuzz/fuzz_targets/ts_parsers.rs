//! Fuzz target over the GStreamer-free TS stack: packet reader (resync), packet/adaptation
//! field/PES parsers, PSI section reassembly and table parsers, TEMI af_descriptors, the
//! TimelineTracker and the SPTS filter of `tstimelineparse`.
//!
//! Input layout: byte 0 chooses the chunking of the stream fed to the reader; the rest is the
//! stream (seeded with whole packets from the shared TEMI vectors).

#![no_main]

use libfuzzer_sys::fuzz_target;

use dvb2ip_proto::clock::{PtsUnwrapper, TimelineAnchor};
use dvb2ip_proto::psi::{self, Eit, Nit, Pat, Pmt, Sdt, Section, SectionAssembler, TimeTable};
use dvb2ip_proto::temi::{af_descriptors, parse_af_descriptors, TemiDescriptor};
use dvb2ip_proto::timeline::{TimelineEvent, TimelineTracker};
use dvb2ip_proto::ts::{AdaptationField, PacketView, PesHeader, TsReader};
use gstdvb2ip::tstimelineparse::spts::SptsFilter;

fn tables(data: &[u8]) {
    if let Ok(s) = Section::parse(data) {
        let _ = Pat::parse(&s);
        let _ = Pmt::parse(&s).map(|p| {
            for st in &p.streams {
                let _ = (st.component_tag(), st.has_af_extensions(), st.language());
            }
        });
        let _ = Sdt::parse(&s).map(|t| {
            for svc in &t.services {
                let _ = svc.service_descriptor();
            }
        });
        let _ = Nit::parse(&s);
        let _ = Eit::parse(&s).map(|e| {
            for ev in &e.events {
                let _ = ev.short_event();
            }
        });
        let _ = TimeTable::parse(&s);
    }
    for d in psi::descriptors(data) {
        let _ = d;
    }
}

fuzz_target!(|input: &[u8]| {
    let Some((&mode, data)) = input.split_first() else {
        return;
    };

    // Single-structure parsers on raw bytes.
    let _ = AdaptationField::parse(data.get(..data.len().min(183)).unwrap_or(&[]));
    let _ = PesHeader::parse(data);
    for d in af_descriptors(data) {
        let _ = d.map(TemiDescriptor::parse);
    }
    let _ = parse_af_descriptors(data);
    tables(data);

    // The stream path: reader → packets → tracker, assembler, SPTS filter.
    let chunk = match mode % 4 {
        0 => 188,
        1 => 1 + usize::from(mode >> 2),
        2 => 4096,
        _ => data.len().max(1),
    };
    let mut reader = TsReader::new();
    let mut tracker = TimelineTracker::default();
    let mut filter = SptsFilter::new(u16::from(mode | 1));
    let mut asm = SectionAssembler::new();
    let mut unwrapper = PtsUnwrapper::new();
    let mut out = Vec::new();
    let mut feed = |reader: &mut TsReader| loop {
        match reader.next() {
            Ok(Some(p)) => {
                if let Ok(v) = PacketView::parse(&p.data) {
                    let _ = v.adaptation_field();
                    if v.header.pid == 0 || v.header.pid == 0x11 {
                        for s in asm
                            .push(v.header.pusi, v.header.cc, false, v.payload)
                            .into_iter()
                            .flatten()
                        {
                            tables(&s.data);
                        }
                    }
                }
                for e in tracker.push(&p) {
                    match e {
                        TimelineEvent::Temi(a) => {
                            let _ = unwrapper.unwrap(a.pts);
                            let anchor = TimelineAnchor {
                                pts: a.pts,
                                value: a.media_timestamp,
                                timescale: u64::from(a.timescale),
                                paused: a.paused,
                            };
                            let _ = anchor.value_at(a.pts.wrapping_add(90_000));
                            let _ = anchor.deviation(a.pts, a.media_timestamp);
                        }
                        TimelineEvent::Pts(p) => {
                            let _ = unwrapper.unwrap(p.pts);
                        }
                        _ => {}
                    }
                }
                out.clear();
                filter.push(&p.data, &mut out);
                assert_eq!(out.len() % 188, 0);
            }
            Ok(None) => break,
            Err(_) => continue,
        }
    };
    for c in data.chunks(chunk) {
        reader.push(c);
        feed(&mut reader);
    }
    reader.finish();
    feed(&mut reader);
    let _ = tracker.stats();
});
