//! What a relay keeps of its upstream TS so that a new reader decodes at once: the latest PAT
//! and PMT (their packets as received) and the packets since the last random access point of
//! the video stream, and the 188-byte alignment of the upstream's bytes.
//!
//! A random access point is a video PES start whose adaptation field sets
//! `random_access_indicator`, or whose first packet holds a key frame's start (H.264 SPS or
//! IDR, H.265 VPS/SPS/IRAP, MPEG-2 sequence header). A stream where neither is ever found
//! (after [`FALLBACK_AFTER_PES`] video PES) gets the first video PES start after each PAT.

use gstdvb2ip::proto::psi::{Pat, Pmt, SectionAssembler};
use gstdvb2ip::proto::ts::{PacketView, PACKET_SIZE, SYNC_BYTE};

/// Bytes in a TS packet.
pub const PACKET: usize = PACKET_SIZE;

/// Most bytes kept from the last random access point; beyond it a new reader waits for the
/// next one.
pub const MAX_GOP_BYTES: usize = 8 << 20;

/// Video PES starts without any random access point found before the first video PES start
/// after a PAT counts as one.
pub const FALLBACK_AFTER_PES: u32 = 64;

/// Whether the start of a video PES payload (`pes`, from its packet start code) holds a key
/// frame's first NAL unit or header, for the PMT's `stream_type`.
pub fn es_key_frame(stream_type: u8, pes: &[u8]) -> bool {
    if pes.len() < 9 || pes[..3] != [0, 0, 1] {
        return false;
    }
    let es = match pes.get(9 + usize::from(pes[8])..) {
        Some(es) => es,
        None => return false,
    };
    let mut i = 0;
    while i + 3 < es.len() {
        if es[i] == 0 && es[i + 1] == 0 && es[i + 2] == 1 {
            let b = es[i + 3];
            let key = match stream_type {
                0x1B => matches!(b & 0x1F, 5 | 7),
                0x24 => matches!((b >> 1) & 0x3F, 16..=21 | 32 | 33),
                0x01 | 0x02 => b == 0xB3,
                _ => false,
            };
            if key {
                return true;
            }
            i += 3;
        } else {
            i += 1;
        }
    }
    false
}

/// The packets of the last complete section of one PSI PID.
#[derive(Debug, Default)]
struct SectionPackets {
    asm: SectionAssembler,
    collecting: Vec<u8>,
    last: Vec<u8>,
}

impl SectionPackets {
    /// Feeds one packet; returns the sections it completed.
    fn push(&mut self, pkt: &[u8], v: &PacketView<'_>) -> Vec<gstdvb2ip::proto::psi::Section> {
        if v.header.pusi {
            self.collecting.clear();
        }
        self.collecting.extend_from_slice(pkt);
        let disc = v
            .adaptation_field()
            .ok()
            .flatten()
            .is_some_and(|a| a.discontinuity);
        let done: Vec<_> = self
            .asm
            .push(v.header.pusi, v.header.cc, disc, v.payload)
            .into_iter()
            .filter_map(Result::ok)
            .collect();
        if !done.is_empty() {
            self.last = std::mem::take(&mut self.collecting);
        }
        done
    }
}

/// The relay's view of its upstream TS.
#[derive(Debug, Default)]
pub struct TsCache {
    pat: SectionPackets,
    pmt_pid: Option<u16>,
    pmt: SectionPackets,
    video_pid: Option<u16>,
    video_type: u8,
    /// Video PES starts since the last random access point found (saturating).
    pes_without_rap: u32,
    /// The PMT was read and lists no video stream.
    no_video: bool,
    /// A random access point was found by RAI or key-frame inspection.
    rap_seen: bool,
    /// A PAT passed since the last video PES start.
    pat_since_video: bool,
    gop: Vec<u8>,
    gop_valid: bool,
}

impl TsCache {
    /// Forgets everything (a new upstream session).
    pub fn reset(&mut self) {
        *self = TsCache::default();
    }

    /// Takes in one 188-byte packet; returns whether it starts a random access point.
    pub fn packet(&mut self, pkt: &[u8]) -> bool {
        let Ok(v) = PacketView::parse(pkt) else {
            return false;
        };
        let pid = v.header.pid;
        let mut rap = false;
        if pid == 0 {
            for s in self.pat.push(pkt, &v) {
                if let Ok(pat) = Pat::parse(&s) {
                    let pmt = pat
                        .programs
                        .iter()
                        .find(|p| p.program_number != 0)
                        .map(|p| p.pid);
                    if pmt != self.pmt_pid {
                        self.pmt_pid = pmt;
                        self.pmt = SectionPackets::default();
                    }
                }
            }
            self.pat_since_video = true;
        } else if Some(pid) == self.pmt_pid {
            for s in self.pmt.push(pkt, &v) {
                if let Ok(pmt) = Pmt::parse(&s) {
                    let video = pmt.streams.iter().find(|s| s.is_video());
                    self.video_pid = video.map(|s| s.pid);
                    self.video_type = video.map_or(0, |s| s.stream_type);
                    self.no_video = self.video_pid.is_none();
                }
            }
        } else if Some(pid) == self.video_pid && v.header.pusi {
            let rai = v
                .adaptation_field()
                .ok()
                .flatten()
                .is_some_and(|a| a.random_access);
            let found = rai || es_key_frame(self.video_type, v.payload);
            self.rap_seen |= found;
            rap = found
                || (!self.rap_seen
                    && self.pes_without_rap >= FALLBACK_AFTER_PES
                    && self.pat_since_video);
            self.pes_without_rap = if rap {
                0
            } else {
                self.pes_without_rap.saturating_add(1)
            };
            self.pat_since_video = false;
        }
        if rap {
            self.gop.clear();
            self.gop_valid = true;
        }
        if self.gop_valid {
            if self.gop.len() + PACKET_SIZE > MAX_GOP_BYTES {
                self.gop = Vec::new();
                self.gop_valid = false;
            } else {
                self.gop.extend_from_slice(pkt);
            }
        }
        rap
    }

    /// The latest PAT and PMT packets, once both are known.
    pub fn psi(&self) -> Option<Vec<u8>> {
        if self.pat.last.is_empty() || self.pmt.last.is_empty() {
            return None;
        }
        Some([self.pat.last.as_slice(), self.pmt.last.as_slice()].concat())
    }

    /// What a reader joining now gets first: PAT, PMT and the packets since the last random
    /// access point; PAT and PMT alone for a stream without video. `None`: wait for the next
    /// random access point (then give [`TsCache::psi`] and go on from it).
    pub fn join(&self) -> Option<Vec<u8>> {
        let psi = self.psi()?;
        if self.no_video {
            return Some(psi);
        }
        self.gop_valid
            .then(|| [primed(&psi, &self.gop).as_slice(), &self.gop].concat())
    }
}

/// `psi` (whole packets: the cached PAT and PMT) with continuity counters that lead into
/// `rest` (what the reader gets next): each PSI packet takes the counter just before the next
/// packet of its PID in `rest`, so the reader sees no continuity error where the cached
/// tables meet older copies of them (a PID absent from `rest` keeps its counters).
pub fn primed(psi: &[u8], rest: &[u8]) -> Vec<u8> {
    let mut out = psi.to_vec();
    let pid_of = |p: &[u8]| (u16::from(p[1] & 0x1F) << 8) | u16::from(p[2]);
    let mut done: Vec<u16> = Vec::new();
    let n = out.len() / PACKET;
    for i in 0..n {
        let pid = pid_of(&out[i * PACKET..]);
        if done.contains(&pid) {
            continue;
        }
        done.push(pid);
        let Some(next) = rest
            .chunks_exact(PACKET)
            .find(|p| p[0] == 0x47 && pid_of(p) == pid)
        else {
            continue;
        };
        // The counter the PID's first packet in `rest` expects before it.
        let has_payload = next[3] & 0x10 != 0;
        let mut cc = if has_payload {
            (next[3] & 0x0F).wrapping_sub(1) & 0x0F
        } else {
            next[3] & 0x0F
        };
        // This PID's packets in `psi`, last first, count down to it.
        for j in (i..n).rev() {
            let p = &mut out[j * PACKET..(j + 1) * PACKET];
            if pid_of(p) == pid {
                p[3] = (p[3] & 0xF0) | cc;
                cc = cc.wrapping_sub(1) & 0x0F;
            }
        }
    }
    out
}

/// Cuts a byte stream into whole 188-byte packets (resynchronising on lost sync; RTP headers
/// in front of TS, as `udp://` multicast may carry, are removed).
#[derive(Debug, Default)]
pub struct Aligner {
    rest: Vec<u8>,
}

/// The TS in an RTP packet (PT 33), if `d` is one.
fn rtp_payload(d: &[u8]) -> Option<&[u8]> {
    if d.len() < 12 || d[0] >> 6 != 2 || d[1] & 0x7F != 33 {
        return None;
    }
    let mut off = 12 + 4 * usize::from(d[0] & 0x0F);
    if d[0] & 0x10 != 0 {
        let ext = d.get(off + 2..off + 4)?;
        off += 4 + 4 * usize::from(u16::from_be_bytes([ext[0], ext[1]]));
    }
    d.get(off..)
}

impl Aligner {
    pub fn reset(&mut self) {
        self.rest.clear();
    }

    /// One datagram of `udp://`: TS, possibly in RTP.
    pub fn push_datagram(&mut self, d: &[u8], out: &mut Vec<u8>) {
        match (d.first(), rtp_payload(d)) {
            (Some(&SYNC_BYTE), _) | (_, None) => self.push(d, out),
            (_, Some(p)) => self.push(p, out),
        }
    }

    /// Appends the whole packets of `data` (and what was left from before) to `out`.
    pub fn push(&mut self, data: &[u8], out: &mut Vec<u8>) {
        if self.rest.is_empty() && data.len().is_multiple_of(PACKET_SIZE) && synced(data) {
            out.extend_from_slice(data);
            return;
        }
        self.rest.extend_from_slice(data);
        let mut i = 0;
        while i + PACKET_SIZE <= self.rest.len() {
            if self.rest[i] == SYNC_BYTE
                && self
                    .rest
                    .get(i + PACKET_SIZE)
                    .is_none_or(|&b| b == SYNC_BYTE)
            {
                out.extend_from_slice(&self.rest[i..i + PACKET_SIZE]);
                i += PACKET_SIZE;
            } else {
                i += 1;
            }
        }
        self.rest.drain(..i);
    }
}

fn synced(data: &[u8]) -> bool {
    data.chunks(PACKET_SIZE).all(|p| p[0] == SYNC_BYTE)
}

#[cfg(test)]
mod tests {

    #[test]
    fn primed_psi_counters_lead_into_what_follows() {
        let pkt = |pid: u16, cc: u8| {
            let mut p = vec![0xFFu8; PACKET];
            p[0] = 0x47;
            p[1] = 0x40 | (pid >> 8) as u8;
            p[2] = pid as u8;
            p[3] = 0x10 | cc;
            p
        };
        // Cached PAT (cc 9) and a two-packet PMT (cc 3, 4); what follows has PAT cc 6 and
        // PMT cc 1: the primed copies become PAT 5, PMT 15 and 0.
        let psi = [pkt(0, 9), pkt(0x100, 3), pkt(0x100, 4)].concat();
        let rest = [pkt(0x200, 0), pkt(0, 6), pkt(0x100, 1)].concat();
        let out = primed(&psi, &rest);
        let ccs: Vec<u8> = out.chunks(PACKET).map(|p| p[3] & 0x0F).collect();
        assert_eq!(ccs, vec![5, 15, 0]);
        // A PID absent from what follows keeps its counters.
        let out = primed(&psi, &[pkt(0x200, 0)].concat());
        assert_eq!(out, psi);
    }
    use super::*;
    use gstdvb2ip::proto::crc::crc32_mpeg2;

    fn packet(pid: u16, pusi: bool, cc: u8, af: Option<u8>, payload: &[u8]) -> Vec<u8> {
        let mut p = vec![
            SYNC_BYTE,
            (u8::from(pusi) << 6) | (pid >> 8) as u8,
            pid as u8,
            0,
        ];
        match af {
            Some(flags) => {
                p[3] = 0x30 | (cc & 0xF);
                p.push(1);
                p.push(flags);
            }
            None => p[3] = 0x10 | (cc & 0xF),
        }
        p.extend_from_slice(payload);
        p.resize(PACKET_SIZE, 0xFF);
        p
    }

    fn section(table_id: u8, ext: u16, body: &[u8]) -> Vec<u8> {
        let len = body.len() + 5 + 4;
        let mut s = vec![
            table_id,
            0xB0 | (len >> 8) as u8,
            len as u8,
            (ext >> 8) as u8,
            ext as u8,
            0xC1,
            0,
            0,
        ];
        s.extend_from_slice(body);
        let crc = crc32_mpeg2(&s);
        s.extend_from_slice(&crc.to_be_bytes());
        let mut p = vec![0];
        p.extend(s);
        p
    }

    fn pat() -> Vec<u8> {
        packet(0, true, 0, None, &section(0, 1, &[0, 1, 0xE1, 0x00]))
    }

    fn pmt() -> Vec<u8> {
        // PCR PID 0x101, no program info, H.264 on 0x101, MPEG audio on 0x102.
        let body = [
            0xE1, 0x01, 0xF0, 0x00, 0x1B, 0xE1, 0x01, 0xF0, 0x00, 0x03, 0xE1, 0x02, 0xF0, 0x00,
        ];
        packet(0x100, true, 0, None, &section(2, 1, &body))
    }

    #[test]
    fn a_joining_reader_gets_pat_pmt_then_the_last_key_frame() {
        let mut c = TsCache::default();
        assert!(!c.packet(&pat()));
        assert!(!c.packet(&pmt()));
        assert_eq!(c.join(), None, "no random access point yet");
        // A key frame (RAI), a continuation, an audio packet, a non-key frame.
        assert!(c.packet(&packet(0x101, true, 0, Some(0x40), &[0, 0, 1, 0xE0])));
        assert!(!c.packet(&packet(0x101, false, 1, None, &[1])));
        assert!(!c.packet(&packet(0x102, true, 0, None, &[0, 0, 1, 0xC0])));
        assert!(
            !c.packet(&pat()),
            "RAI seen: a PAT no longer makes the next PES a RAP"
        );
        assert!(!c.packet(&packet(0x101, true, 2, None, &[0, 0, 1, 0xE0])));
        let j = c.join().unwrap();
        assert_eq!(j.len() % PACKET_SIZE, 0);
        let pids: Vec<u16> = j
            .chunks(PACKET_SIZE)
            .map(|p| PacketView::parse(p).unwrap().header.pid)
            .collect();
        assert_eq!(pids, [0, 0x100, 0x101, 0x101, 0x102, 0, 0x101]);
        assert_eq!(c.psi().unwrap(), [pat(), pmt()].concat());
    }

    /// A PES start of H.264 with the NAL unit types `nals`.
    fn h264_pes(nals: &[u8]) -> Vec<u8> {
        let mut p = vec![0, 0, 1, 0xE0, 0, 0, 0x80, 0x80, 5, 0x21, 0, 1, 0, 1];
        for n in nals {
            p.extend_from_slice(&[0, 0, 0, 1, *n, 0x42]);
        }
        p
    }

    #[test]
    fn without_rai_a_key_frame_is_found_in_the_video() {
        let mut c = TsCache::default();
        c.packet(&pat());
        c.packet(&pmt());
        assert!(!c.packet(&packet(0x101, true, 0, None, &h264_pes(&[9, 1]))));
        assert!(c.packet(&packet(0x101, true, 1, None, &h264_pes(&[9, 7, 8, 5]))));
        c.packet(&pat());
        assert!(!c.packet(&packet(0x101, true, 2, None, &h264_pes(&[9, 1]))));
    }

    #[test]
    fn without_rai_or_key_frames_the_video_start_after_a_pat_is_the_access_point() {
        let mut c = TsCache::default();
        c.packet(&pat());
        c.packet(&pmt());
        let mut cc = 0;
        let mut pes = |c: &mut TsCache| {
            cc += 1;
            c.packet(&packet(0x101, true, cc, None, &[0, 0, 1, 0xE0]))
        };
        for _ in 0..FALLBACK_AFTER_PES {
            assert!(!pes(&mut c));
        }
        assert!(!pes(&mut c), "no PAT since the last video PES start");
        c.packet(&pat());
        assert!(pes(&mut c));
        assert!(!pes(&mut c));
    }

    #[test]
    fn aligner_resyncs_and_unwraps_rtp() {
        let mut a = Aligner::default();
        let mut out = Vec::new();
        let two = [pat(), pmt()].concat();
        a.push(&[0x12, 0x34], &mut out);
        a.push(&two[..100], &mut out);
        a.push(&two[100..], &mut out);
        assert_eq!(out, two);
        let mut rtp = vec![0x80, 33, 0, 1, 0, 0, 0, 0, 1, 2, 3, 4];
        rtp.extend_from_slice(&two);
        let mut out = Vec::new();
        Aligner::default().push_datagram(&rtp, &mut out);
        assert_eq!(out, two);
    }
}
