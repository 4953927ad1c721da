//! GStreamer-free SPTS filter: cuts one program out of a multiplex.
//!
//! What goes out, packet by packet (everything else is dropped, including null packets):
//!
//! | PID | output |
//! |-----|--------|
//! | PAT (0x0000) | rewritten: same transport_stream_id and version, only the chosen program (plus the network PID entry if the input has one), new CRC; one packet per received PAT |
//! | the program's PMT PID | unchanged packets |
//! | its elementary PIDs and PCR PID (from the PMT) | unchanged packets |
//! | NIT (0x0010) | unchanged packets (network description, not per service) |
//! | SDT/BAT (0x0011) | SDT actual rewritten to the chosen service's entry only (section 0 of 0, same version, new CRC); SDT other and BAT dropped |
//! | EIT (0x0012) | only EIT actual sections (p/f 0x4E and schedule 0x50–0x5F) of the chosen service, unchanged, re-packetised; EIT other dropped |
//! | TDT/TOT (0x0014) | unchanged packets |
//! | CAT, EMM/ECM and every other PID | dropped |
//!
//! Sections we rewrite go out on their own continuity counter, one section per packet run with
//! pointer_field 0 and 0xFF stuffing. Until the PAT and PMT have been seen nothing but
//! NIT/TDT/TOT can go out (the ES PIDs are unknown).

use crate::proto::crc::crc32_mpeg2;
use crate::proto::psi::{self, table_id, Pat, Pmt, Section, SectionAssembler};
use crate::proto::si::{self, SectionPacketizer};
use crate::proto::ts::{PacketView, PACKET_SIZE};

/// Per-PID forwarding decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route {
    Drop,
    /// Forward the packet unchanged.
    Pass,
    /// The PMT PID: forward unchanged and parse.
    Pmt,
}

/// Cuts one program out of a multiplex; see the module documentation.
#[derive(Debug)]
pub struct SptsFilter {
    program: u16,
    routes: Vec<Route>,
    pat_asm: SectionAssembler,
    pmt_asm: SectionAssembler,
    sdt_asm: SectionAssembler,
    eit_asm: SectionAssembler,
    pat_out: SectionPacketizer,
    sdt_out: SectionPacketizer,
    eit_out: SectionPacketizer,
    pmt_pid: Option<u16>,
    es_pids: Vec<u16>,
    /// Sections that failed (CRC, continuity...).
    pub section_errors: u64,
}

impl SptsFilter {
    /// A filter keeping `program` (≠ 0).
    pub fn new(program: u16) -> Self {
        let mut routes = vec![Route::Drop; 8192];
        routes[usize::from(psi::pid::NIT)] = Route::Pass;
        routes[usize::from(psi::pid::TDT)] = Route::Pass;
        SptsFilter {
            program,
            routes,
            pat_asm: SectionAssembler::new(),
            pmt_asm: SectionAssembler::new(),
            sdt_asm: SectionAssembler::new(),
            eit_asm: SectionAssembler::new(),
            pat_out: SectionPacketizer::new(si::PID_PAT),
            sdt_out: SectionPacketizer::new(si::PID_SDT),
            eit_out: SectionPacketizer::new(si::PID_EIT),
            pmt_pid: None,
            es_pids: Vec::new(),
            section_errors: 0,
        }
    }

    /// The program kept.
    pub fn program(&self) -> u16 {
        self.program
    }

    /// PIDs currently forwarded unchanged (PMT, ES, PCR, NIT, TDT/TOT), sorted.
    pub fn passed_pids(&self) -> Vec<u16> {
        (0u16..8192)
            .filter(|&p| self.routes[usize::from(p)] != Route::Drop)
            .collect()
    }

    /// Forget the PSI learnt (after a flush); output continuity counters keep counting.
    pub fn reset(&mut self) {
        let (p, s, e, errors) = (
            self.pat_out.cc,
            self.sdt_out.cc,
            self.eit_out.cc,
            self.section_errors,
        );
        *self = SptsFilter::new(self.program);
        self.pat_out.cc = p;
        self.sdt_out.cc = s;
        self.eit_out.cc = e;
        self.section_errors = errors;
    }

    /// Filter one 188-byte packet, appending what goes out to `out`.
    pub fn push(&mut self, pkt: &[u8], out: &mut Vec<u8>) {
        let Some(pkt) = pkt.get(..PACKET_SIZE) else {
            return;
        };
        let pid = (u16::from(pkt[1] & 0x1F) << 8) | u16::from(pkt[2]);
        match pid {
            psi::pid::PAT => self.on_si(pid, pkt, out),
            psi::pid::SDT | psi::pid::EIT => self.on_si(pid, pkt, out),
            _ => match self.routes[usize::from(pid)] {
                Route::Drop => {}
                Route::Pass => out.extend_from_slice(pkt),
                Route::Pmt => {
                    out.extend_from_slice(pkt);
                    self.on_si(pid, pkt, out);
                }
            },
        }
    }

    fn on_si(&mut self, pid: u16, pkt: &[u8], out: &mut Vec<u8>) {
        let Ok(view) = PacketView::parse(pkt) else {
            return;
        };
        let h = view.header;
        if h.tei || !h.has_payload() || h.scrambling != 0 {
            return;
        }
        let disc = view
            .adaptation_field()
            .ok()
            .flatten()
            .is_some_and(|a| a.discontinuity);
        let asm = match pid {
            psi::pid::PAT => &mut self.pat_asm,
            psi::pid::SDT => &mut self.sdt_asm,
            psi::pid::EIT => &mut self.eit_asm,
            _ => &mut self.pmt_asm,
        };
        for r in asm.push(h.pusi, h.cc, disc, view.payload) {
            match r {
                Ok(s) => self.on_section(pid, &s, out),
                Err(_) => self.section_errors += 1,
            }
        }
    }

    fn on_section(&mut self, pid: u16, s: &Section, out: &mut Vec<u8>) {
        let tid = s.header.table_id;
        match pid {
            psi::pid::PAT if tid == table_id::PAT && s.header.current_next => match Pat::parse(s) {
                Ok(pat) => self.on_pat(&pat, out),
                Err(_) => self.section_errors += 1,
            },
            psi::pid::SDT if tid == table_id::SDT_ACTUAL => self.on_sdt(s, out),
            psi::pid::EIT
                if (tid == table_id::EIT_PF_ACTUAL || (0x50..=0x5F).contains(&tid))
                    && s.header.table_id_extension == self.program =>
            {
                self.eit_out.packetize(&s.data, out);
            }
            _ if Some(pid) == self.pmt_pid && tid == table_id::PMT && s.header.current_next => {
                match Pmt::parse(s) {
                    Ok(pmt) if pmt.program_number == self.program => self.on_pmt(&pmt),
                    Ok(_) => {}
                    Err(_) => self.section_errors += 1,
                }
            }
            _ => {}
        }
    }

    fn on_pat(&mut self, pat: &Pat, out: &mut Vec<u8>) {
        let mut entries = Vec::new();
        if let Some(n) = pat.network_pid {
            entries.push(si::PatEntry {
                program_number: 0,
                pid: n,
            });
        }
        let pmt_pid = pat
            .programs
            .iter()
            .find(|e| e.program_number == self.program)
            .map(|e| e.pid);
        if let Some(p) = pmt_pid {
            entries.push(si::PatEntry {
                program_number: self.program,
                pid: p,
            });
        }
        if pmt_pid != self.pmt_pid {
            self.set_pmt_pid(pmt_pid);
        }
        let section = si::pat(pat.transport_stream_id, pat.version, &entries);
        self.pat_out.packetize(&section, out);
    }

    fn set_pmt_pid(&mut self, pmt_pid: Option<u16>) {
        if let Some(old) = self.pmt_pid {
            self.set_route(old, Route::Drop);
        }
        for p in std::mem::take(&mut self.es_pids) {
            self.set_route(p, Route::Drop);
        }
        self.pmt_asm.reset();
        self.pmt_pid = pmt_pid;
        if let Some(p) = pmt_pid {
            self.set_route(p, Route::Pmt);
        }
    }

    fn set_route(&mut self, pid: u16, route: Route) {
        // SI PIDs keep their own handling.
        if matches!(
            pid,
            psi::pid::PAT | psi::pid::NIT | psi::pid::SDT | psi::pid::EIT | psi::pid::TDT
        ) {
            return;
        }
        if let Some(r) = self.routes.get_mut(usize::from(pid)) {
            *r = route;
        }
    }

    fn on_pmt(&mut self, pmt: &Pmt) {
        for p in std::mem::take(&mut self.es_pids) {
            if Some(p) != self.pmt_pid {
                self.set_route(p, Route::Drop);
            }
        }
        let mut pids: Vec<u16> = pmt.streams.iter().map(|s| s.pid).collect();
        if pmt.pcr_pid != 0x1FFF {
            pids.push(pmt.pcr_pid);
        }
        pids.sort_unstable();
        pids.dedup();
        for &p in &pids {
            if Some(p) != self.pmt_pid {
                self.set_route(p, Route::Pass);
            }
        }
        self.es_pids = pids;
    }

    fn on_sdt(&mut self, s: &Section, out: &mut Vec<u8>) {
        // Walk the raw service loop so flags and descriptors are kept bit-exact.
        let body = s.body();
        let Some(head) = body.get(..3) else {
            self.section_errors += 1;
            return;
        };
        let mut pos = 3;
        while let Some(entry) = body.get(pos..pos + 5) {
            let service_id = u16::from_be_bytes([entry[0], entry[1]]);
            let len = usize::from(u16::from_be_bytes([entry[3], entry[4]]) & 0x0FFF);
            let Some(whole) = body.get(pos..pos + 5 + len) else {
                self.section_errors += 1;
                return;
            };
            if service_id == self.program {
                let mut new_body = head.to_vec();
                new_body.extend_from_slice(whole);
                let section = si::long_section(
                    table_id::SDT_ACTUAL,
                    s.header.table_id_extension,
                    s.header.version,
                    0,
                    0,
                    &new_body,
                );
                debug_assert_eq!(crc32_mpeg2(&section), 0);
                self.sdt_out.packetize(&section, out);
                return;
            }
            pos += 5 + len;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::psi::SectionAssembler;

    fn packets(pid: u16, section: &[u8], cc: &mut u8) -> Vec<u8> {
        let mut p = SectionPacketizer::new(pid);
        p.cc = *cc;
        let mut out = Vec::new();
        p.packetize(section, &mut out);
        *cc = p.cc;
        out
    }

    fn es_packet(pid: u16) -> Vec<u8> {
        let mut p = vec![0x47, (pid >> 8) as u8, pid as u8, 0x10];
        p.resize(188, 0xAA);
        p
    }

    fn sections_of(pid: u16, ts: &[u8]) -> Vec<Section> {
        let mut a = SectionAssembler::new();
        let mut out = Vec::new();
        for p in ts.chunks_exact(188) {
            let v = PacketView::parse(p).unwrap();
            if v.header.pid == pid {
                for s in a.push(v.header.pusi, v.header.cc, false, v.payload) {
                    out.push(s.unwrap());
                }
            }
        }
        out
    }

    #[test]
    fn keeps_one_program_and_rewrites_pat_and_sdt() {
        let mut cc = 0;
        let mut input = Vec::new();
        let pat = si::pat(
            7,
            3,
            &[
                si::PatEntry {
                    program_number: 0,
                    pid: 0x10,
                },
                si::PatEntry {
                    program_number: 1,
                    pid: 0x100,
                },
                si::PatEntry {
                    program_number: 2,
                    pid: 0x200,
                },
            ],
        );
        input.extend(packets(0, &pat, &mut cc));
        for (prog, pmt_pid, es) in [(1u16, 0x100u16, 0x101u16), (2, 0x200, 0x201)] {
            let pmt = si::pmt(
                prog,
                0,
                es,
                &[],
                &[si::PmtStream {
                    stream_type: 0x1B,
                    pid: es,
                    descriptors: vec![],
                }],
            );
            let mut c = 0;
            input.extend(packets(pmt_pid, &pmt, &mut c));
        }
        let sdt = si::sdt_actual(
            7,
            9,
            1,
            &[
                si::SdtService {
                    service_id: 1,
                    eit_present_following: true,
                    running_status: 4,
                    descriptors: si::service_descriptor(1, "P", "One"),
                },
                si::SdtService {
                    service_id: 2,
                    eit_present_following: true,
                    running_status: 4,
                    descriptors: si::service_descriptor(1, "P", "Two"),
                },
            ],
        );
        let mut c = 0;
        input.extend(packets(0x11, &sdt, &mut c));
        for pid in [0x101, 0x201, 0x1FFF, 0x101] {
            input.extend(es_packet(pid));
        }

        let mut f = SptsFilter::new(2);
        let mut out = Vec::new();
        for p in input.chunks_exact(188) {
            f.push(p, &mut out);
        }
        assert_eq!(f.section_errors, 0);
        let pids: Vec<u16> = out
            .chunks_exact(188)
            .map(|p| (u16::from(p[1] & 0x1F) << 8) | u16::from(p[2]))
            .collect();
        assert_eq!(pids, vec![0, 0x200, 0x11, 0x201]);
        let pats = sections_of(0, &out);
        let pat = Pat::parse(&pats[0]).unwrap();
        assert_eq!(pat.transport_stream_id, 7);
        assert_eq!(pat.version, 3);
        assert_eq!(pat.network_pid, Some(0x10));
        assert_eq!(pat.programs.len(), 1);
        assert_eq!(pat.programs[0].program_number, 2);
        let sdts = sections_of(0x11, &out);
        let sdt = psi::Sdt::parse(&sdts[0]).unwrap();
        assert_eq!(sdt.services.len(), 1);
        assert_eq!(sdt.services[0].service_id, 2);
        assert_eq!(sdt.original_network_id, 9);
        assert_eq!(f.passed_pids(), vec![0x10, 0x14, 0x200, 0x201]);
    }

    #[test]
    fn garbage_never_panics() {
        let mut f = SptsFilter::new(1);
        let mut out = Vec::new();
        let mut x = 0x1234_5678u32;
        for _ in 0..2000 {
            let mut p = [0u8; 188];
            for b in p.iter_mut() {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                *b = x as u8;
            }
            p[0] = 0x47;
            p[1] &= 0x1F;
            p[1] |= (x as u8) & 0x40;
            if x & 1 == 0 {
                p[2] = (x >> 8) as u8 % 0x20;
                p[1] &= 0xE0;
            }
            f.push(&p, &mut out);
        }
        f.push(&[0x47, 0], &mut out);
    }
}
