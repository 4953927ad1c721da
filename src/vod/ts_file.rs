//! An MPEG-TS file as the direct (pipeline-free) VOD path reads it: no demuxer, no queue, only
//! what a session needs to send the file's own packets paced by its PCR and to seek.
//!
//! * [`TsFile::open`] probes the file once: the first program's PMT (PAT and PMT packets kept, a
//!   session sends them before its first chunk after every seek), the PCR PID, the video PID,
//!   the first and last PCR (the duration) and the first video PTS (NPT 0).
//! * [`TsFile::seek`] finds the random access point at or before an NPT: a bisection over the
//!   file by PCR, then a scan back to the last video packet that starts a key frame (the
//!   adaptation field's `random_access_indicator`, or an H.264/H.265 IDR/IRAP, SPS or an MPEG-2
//!   sequence header at the start of the PES). It reads a few windows of 64 KiB and keeps
//!   nothing.
//! * [`TsFile::key_frame_after`] finds the next random access point after one (trick play
//!   forward; backward it seeks to just before a key frame's NPT).
//! * [`last_pcr`] gives the PCR a chunk ends with, which is what pacing needs.
//!
//! Measured with `dvb2ip-bench vod-reader` (README, files on demand): what a session of this
//! path costs, against a per-session GStreamer pipeline.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;

use gstdvb2ip::proto::psi::{Pat, Pmt, SectionAssembler};
use gstdvb2ip::proto::ts::{AdaptationField, PacketView, PesHeader, PACKET_SIZE, SYNC_BYTE};

/// PCR ticks per second.
pub const PCR_HZ: u64 = 27_000_000;
/// PCRs wrap here (33-bit base × 300).
pub const PCR_WRAP: u64 = (1 << 33) * 300;
/// The probe looks this far into the file for PAT, PMT, the first PCR and the first video PTS.
const PROBE_BYTES: u64 = 8 << 20;
/// How far a frame's PTS may run ahead of the PCR of its packets, ns.
const PTS_AHEAD_NS: u64 = 1_000_000_000;
/// The next PAT and PMT after a seek are looked for this far on.
const PSI_AHEAD: u64 = 2 << 20;
/// Bytes per read while probing and seeking (whole packets).
const WINDOW: usize = 348 * PACKET_SIZE;
/// A key frame is looked for this far back from a seek's PCR position (whole packets).
const MAX_BACK: u64 = (64 << 20) / PACKET_SIZE as u64 * PACKET_SIZE as u64;

/// Why a file cannot go the direct path.
#[derive(Debug)]
pub enum TsFileError {
    Io(io::Error),
    /// No TS sync in the first bytes.
    NotTs,
    /// No PAT/PMT, or no PCR on the PMT's PCR PID.
    NoProgram,
}

impl std::fmt::Display for TsFileError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TsFileError::Io(e) => write!(f, "{e}"),
            TsFileError::NotTs => f.write_str("no MPEG-TS packet sync"),
            TsFileError::NoProgram => f.write_str("no PAT/PMT with PCRs in the first 8 MiB"),
        }
    }
}

impl From<io::Error> for TsFileError {
    fn from(e: io::Error) -> Self {
        TsFileError::Io(e)
    }
}

/// What the probe found.
#[derive(Debug, Clone)]
pub struct TsInfo {
    pub pmt_pid: u16,
    pub pcr_pid: u16,
    /// The first video stream of the program, and its stream_type.
    pub video: Option<(u16, u8)>,
    /// The PAT and PMT packets first found in the file (whole packets).
    pub psi: Vec<u8>,
    /// Offset of the first packet (after any junk before the first sync).
    pub start: u64,
    /// Offset after the last whole packet.
    pub end: u64,
    /// First PCR, 27 MHz.
    pub first_pcr: u64,
    /// Last PCR minus the first, 27 MHz.
    pub pcr_span: u64,
    /// First video PTS (else first PCR / 300), 90 kHz: NPT 0.
    pub first_pts: u64,
}

impl TsInfo {
    /// The file's duration by its PCRs, ns.
    pub fn duration_ns(&self) -> u64 {
        ticks_to_ns(self.pcr_span)
    }
}

/// Where a seek landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Landing {
    /// File offset of the random access point (a packet boundary).
    pub offset: u64,
    /// Its NPT (the key frame's PTS since the first video PTS), ns.
    pub npt_ns: u64,
}

/// A TS file opened for the direct path.
pub struct TsFile {
    file: File,
    pub info: TsInfo,
}

/// 27 MHz ticks to ns.
pub fn ticks_to_ns(t: u64) -> u64 {
    (u128::from(t) * 1_000 / 27) as u64
}

/// ns to 27 MHz ticks.
pub fn ns_to_ticks(ns: u64) -> u64 {
    (u128::from(ns) * 27 / 1_000) as u64
}

/// `pcr - base` on the PCR circle.
pub fn pcr_since(pcr: u64, base: u64) -> u64 {
    (pcr + PCR_WRAP - base % PCR_WRAP) % PCR_WRAP
}

/// The PCR of a packet, if it carries one.
fn pcr_of(pkt: &[u8]) -> Option<(u16, u64)> {
    let v = PacketView::parse(pkt).ok()?;
    let af = AdaptationField::parse(v.adaptation_field_bytes?).ok()?;
    Some((v.header.pid, af.pcr?.to_27mhz()))
}

/// The last PCR on `pid` in `chunk` (whole packets).
pub fn last_pcr(chunk: &[u8], pid: u16) -> Option<u64> {
    chunk
        .chunks_exact(PACKET_SIZE)
        .rev()
        .filter(|p| p[0] == SYNC_BYTE && pid_of(p) == pid)
        .find_map(|p| pcr_of(p).map(|(_, pcr)| pcr))
}

fn pid_of(p: &[u8]) -> u16 {
    (u16::from(p[1] & 0x1F) << 8) | u16::from(p[2])
}

/// Whether the ES bytes of a key frame hold the stream's parameter sets before its first
/// picture (H.264: SPS before a slice; H.265: SPS before a VCL unit; MPEG-1/2 video: a sequence
/// header before the picture start code).
fn parameter_sets_before_picture(stream_type: u8, es: &[u8]) -> bool {
    let mut i = 0;
    while i + 3 < es.len() {
        if es[i] == 0 && es[i + 1] == 0 && es[i + 2] == 1 {
            let b = es[i + 3];
            match stream_type {
                0x1B => match b & 0x1F {
                    7 => return true,
                    1..=5 => return false,
                    _ => {}
                },
                0x24 => match (b >> 1) & 0x3F {
                    33 => return true,
                    0..=31 => return false,
                    _ => {}
                },
                _ => match b {
                    0xB3 => return true,
                    0x00 => return false,
                    _ => {}
                },
            }
            i += 3;
        } else {
            i += 1;
        }
    }
    false
}

/// Whether the ES bytes at the start of a PES begin a key frame of `stream_type`.
fn es_starts_key_frame(stream_type: u8, es: &[u8]) -> bool {
    let mut i = 0;
    while i + 3 < es.len() {
        if es[i] == 0 && es[i + 1] == 0 && es[i + 2] == 1 {
            let b = es[i + 3];
            let hit = match stream_type {
                // H.264: IDR (5) or SPS (7).
                0x1B => matches!(b & 0x1F, 5 | 7),
                // H.265: IRAP (16..=23) or VPS/SPS (32, 33).
                0x24 => matches!((b >> 1) & 0x3F, 16..=23 | 32 | 33),
                // MPEG-1/2 video: sequence header.
                0x01 | 0x02 => b == 0xB3,
                _ => false,
            };
            if hit {
                return true;
            }
            i += 3;
        } else {
            i += 1;
        }
    }
    false
}

/// Whether a packet of the video PID starts a key frame.
pub(crate) fn is_random_access(pkt: &[u8], video_pid: u16, stream_type: u8) -> bool {
    let Ok(v) = PacketView::parse(pkt) else {
        return false;
    };
    if v.header.pid != video_pid || !v.header.pusi {
        return false;
    }
    let rai = v
        .adaptation_field_bytes
        .and_then(|b| AdaptationField::parse(b).ok())
        .is_some_and(|af| af.random_access);
    rai || PesHeader::parse(v.payload)
        .ok()
        .and_then(|h| v.payload.get(h.payload_offset..))
        .is_some_and(|es| es_starts_key_frame(stream_type, es))
}

/// The PTS of a PES starting in `pkt`.
pub(crate) fn pts_of(pkt: &[u8]) -> Option<u64> {
    let v = PacketView::parse(pkt).ok()?;
    if !v.header.pusi {
        return None;
    }
    PesHeader::parse(v.payload).ok()?.pts
}

impl TsFile {
    /// Opens and probes `path`.
    pub fn open(path: &Path) -> Result<TsFile, TsFileError> {
        let file = File::open(path)?;
        let info = probe(&file)?;
        Ok(TsFile { file, info })
    }

    /// Reads whole packets at `offset` into `buf` (its length rounded down to packets); returns
    /// the bytes read (0 at the end).
    pub fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        let want = (buf.len() / PACKET_SIZE * PACKET_SIZE)
            .min(self.info.end.saturating_sub(offset) as usize);
        let mut got = 0;
        while got < want {
            match self.file.read_at(&mut buf[got..want], offset + got as u64) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(got / PACKET_SIZE * PACKET_SIZE)
    }

    /// The first PCR on the PCR PID at or after `offset` (a packet boundary), with its
    /// packet's offset, looking at most `limit` bytes.
    fn pcr_from(&self, offset: u64, limit: u64, buf: &mut [u8]) -> io::Result<Option<(u64, u64)>> {
        let mut off = offset;
        while off < self.info.end && off - offset < limit {
            let n = self.read_at(buf, off)?;
            if n == 0 {
                break;
            }
            for (i, p) in buf[..n].chunks_exact(PACKET_SIZE).enumerate() {
                if let Some((pid, pcr)) = pcr_of(p) {
                    if pid == self.info.pcr_pid {
                        return Ok(Some((off + (i * PACKET_SIZE) as u64, pcr)));
                    }
                }
            }
            off += n as u64;
        }
        Ok(None)
    }

    /// The offset of the first packet whose PCR is more than `npt_ns` past the first PCR (the
    /// end of the file when none is).
    fn offset_after(&self, npt_ns: u64, buf: &mut [u8]) -> io::Result<u64> {
        let target = ns_to_ticks(npt_ns);
        let packet = PACKET_SIZE as u64;
        let (mut lo, mut hi) = (0u64, (self.info.end - self.info.start) / packet);
        // The PCR found from packet `lo` on is at or before the target (or lo = 0); the one
        // from `hi` on is after it (or hi = the end).
        while hi - lo > (WINDOW / PACKET_SIZE) as u64 {
            let mid = lo + (hi - lo) / 2;
            let at = self.info.start + mid * packet;
            match self.pcr_from(at, (hi - mid) * packet, buf)? {
                Some((_, pcr)) if pcr_since(pcr, self.info.first_pcr) <= target => lo = mid,
                _ => hi = mid,
            }
        }
        // Packet by packet from `lo`.
        let mut off = self.info.start + lo * packet;
        while off < self.info.end {
            let n = self.read_at(buf, off)?;
            if n == 0 {
                break;
            }
            for (i, p) in buf[..n].chunks_exact(PACKET_SIZE).enumerate() {
                match pcr_of(p) {
                    Some((pid, pcr))
                        if pid == self.info.pcr_pid
                            && pcr_since(pcr, self.info.first_pcr) > target =>
                    {
                        return Ok(off + (i * PACKET_SIZE) as u64);
                    }
                    _ => {}
                }
            }
            off += n as u64;
        }
        Ok(self.info.end)
    }

    /// The random access point at or before `npt_ns` (the first one of the file when none is
    /// before it; the PCR position itself when the file has no video).
    pub fn seek(&self, npt_ns: u64) -> io::Result<Landing> {
        let mut buf = vec![0u8; WINDOW];
        let Some((video, stream_type)) = self.info.video else {
            let at = self.offset_after(npt_ns, &mut buf)?;
            return Ok(Landing {
                offset: at.saturating_sub(PACKET_SIZE as u64).max(self.info.start),
                npt_ns: npt_ns.min(self.info.duration_ns()),
            });
        };
        // A frame's PTS runs ahead of the PCR around its packets: look from a little later,
        // and take the last key frame whose PTS is at or before the target.
        let at = self.offset_after(npt_ns + PTS_AHEAD_NS, &mut buf)?;
        // Back from `at`, window by window. `at` and `start` are packet boundaries, and so are
        // `floor`, `end` and `from`.
        let mut end = at;
        let floor = self.info.start.max(at.saturating_sub(MAX_BACK));
        while end > floor {
            let from = end.saturating_sub(WINDOW as u64).max(floor);
            let n = self.read_at(&mut buf[..(end - from) as usize], from)?;
            let hit = buf[..n]
                .chunks_exact(PACKET_SIZE)
                .enumerate()
                .rev()
                .filter(|(_, p)| is_random_access(p, video, stream_type))
                .map(|(i, p)| (i, self.npt_of_pts(pts_of(p))))
                .find(|(_, npt)| *npt <= npt_ns);
            if let Some((i, npt)) = hit {
                return Ok(Landing {
                    offset: from + (i * PACKET_SIZE) as u64,
                    npt_ns: npt,
                });
            }
            end = from;
        }
        let at = floor;
        // None before it: the first one after.
        let mut off = at;
        while off < self.info.end {
            let n = self.read_at(&mut buf, off)?;
            if n == 0 {
                break;
            }
            let hit = buf[..n]
                .chunks_exact(PACKET_SIZE)
                .enumerate()
                .find(|(_, p)| is_random_access(p, video, stream_type));
            if let Some((i, p)) = hit {
                return Ok(Landing {
                    offset: off + (i * PACKET_SIZE) as u64,
                    npt_ns: self.npt_of_pts(pts_of(p)),
                });
            }
            off += n as u64;
        }
        Ok(Landing {
            offset: at,
            npt_ns: npt_ns.min(self.info.duration_ns()),
        })
    }

    /// Whether a key frame in the middle of the file carries its parameter sets (H.264 SPS,
    /// H.265 SPS, an MPEG-2 sequence header) ahead of its first picture. A decoder joining
    /// at a seek needs them; a file whose muxer sent them only once cannot be joined mid-file
    /// from its own bytes. Files without
    /// video, or with a codec this does not know, count as carrying them.
    pub fn key_frames_carry_parameter_sets(&self) -> io::Result<bool> {
        let Some((video, stream_type)) = self.info.video else {
            return Ok(true);
        };
        if !matches!(stream_type, 0x01 | 0x02 | 0x1B | 0x24) {
            return Ok(true);
        }
        let landing = self.seek(self.info.duration_ns() / 2)?;
        let mut buf = vec![0u8; WINDOW];
        let n = self.read_at(&mut buf, landing.offset)?;
        // The key frame's elementary stream bytes, up to the next PES start on its PID.
        let mut es = Vec::new();
        for (i, p) in buf[..n].chunks_exact(PACKET_SIZE).enumerate() {
            let Ok(v) = PacketView::parse(p) else {
                continue;
            };
            if v.header.pid != video {
                continue;
            }
            if v.header.pusi {
                if i > 0 {
                    break;
                }
                match PesHeader::parse(v.payload) {
                    Ok(h) => es.extend_from_slice(v.payload.get(h.payload_offset..).unwrap_or(&[])),
                    Err(_) => return Ok(false),
                }
            } else if !es.is_empty() {
                es.extend_from_slice(v.payload);
            }
        }
        Ok(parameter_sets_before_picture(stream_type, &es))
    }

    /// The first random access point after the packet at `offset` (`None`: none until the
    /// end of the file).
    pub fn key_frame_after(&self, offset: u64) -> io::Result<Option<Landing>> {
        let Some((video, stream_type)) = self.info.video else {
            return Ok(None);
        };
        let mut buf = vec![0u8; WINDOW];
        let mut off = offset + PACKET_SIZE as u64;
        while off < self.info.end {
            let n = self.read_at(&mut buf, off)?;
            if n == 0 {
                break;
            }
            let hit = buf[..n]
                .chunks_exact(PACKET_SIZE)
                .enumerate()
                .find(|(_, p)| is_random_access(p, video, stream_type));
            if let Some((i, p)) = hit {
                return Ok(Some(Landing {
                    offset: off + (i * PACKET_SIZE) as u64,
                    npt_ns: self.npt_of_pts(pts_of(p)),
                }));
            }
            off += n as u64;
        }
        Ok(None)
    }

    /// The file's PAT and PMT packets with continuity counters that lead into what follows
    /// `offset` (the next PAT and PMT of the file, looked for up to 2 MiB on), so a client sees
    /// no continuity error where they meet.
    pub fn psi_leading_into(&self, offset: u64) -> io::Result<Vec<u8>> {
        let pids = [0u16, self.info.pmt_pid];
        let mut buf = vec![0u8; WINDOW];
        // The first packet of each PSI PID at or after `offset`.
        let mut next: Vec<[u8; PACKET_SIZE]> = vec![];
        let mut found: Vec<u16> = vec![];
        let mut off = offset;
        while off < self.info.end && off - offset < PSI_AHEAD && found.len() < pids.len() {
            let n = self.read_at(&mut buf, off)?;
            if n == 0 {
                break;
            }
            for p in buf[..n].chunks_exact(PACKET_SIZE) {
                let pid = pid_of(p);
                if pids.contains(&pid) && !found.contains(&pid) {
                    found.push(pid);
                    next.push(p.try_into().unwrap_or([0; PACKET_SIZE]));
                }
            }
            off += n as u64;
        }
        Ok(crate::relay::ts::primed(&self.info.psi, &next.concat()))
    }

    /// The NPT of a PCR (27 MHz): the PTS a frame shown at that PCR has, since the first
    /// video PTS (0 when before it).
    pub fn npt_of_pcr(&self, pcr: u64) -> u64 {
        self.npt_of_pts(Some(pcr / 300))
    }

    pub(crate) fn npt_of_pts(&self, pts: Option<u64>) -> u64 {
        let pts = pts.unwrap_or(self.info.first_pts);
        let d = (pts + (1 << 33) - self.info.first_pts) % (1 << 33);
        // A PTS a little before the first one (reordered frames) counts as 0.
        let d = if d > 1 << 32 { 0 } else { d };
        (u128::from(d) * 1_000_000_000 / 90_000) as u64
    }
}

/// The offset of the first packet: three syncs 188 bytes apart.
fn sync_offset(head: &[u8]) -> Option<usize> {
    (0..PACKET_SIZE.min(head.len())).find(|&o| {
        (0..3).all(|k| head.get(o + k * PACKET_SIZE) == Some(&SYNC_BYTE))
            || (head.len() < o + 3 * PACKET_SIZE
                && head.get(o) == Some(&SYNC_BYTE)
                && head.len() >= o + PACKET_SIZE)
    })
}

fn probe(file: &File) -> Result<TsInfo, TsFileError> {
    let len = file.metadata()?.len();
    let mut buf = vec![0u8; WINDOW];
    let n = file.read_at(&mut buf, 0)?;
    let start = sync_offset(&buf[..n]).ok_or(TsFileError::NotTs)? as u64;
    let end = start + (len - start) / PACKET_SIZE as u64 * PACKET_SIZE as u64;
    let mut pat = SectionAssembler::new();
    let mut pmt = SectionAssembler::new();
    let (mut pat_pkt, mut pmt_pkts): (Vec<u8>, Vec<u8>) = (vec![], vec![]);
    let mut pmt_pid = None;
    let mut program: Option<Pmt> = None;
    // First PCR per PID (the PMT may come after the first PCRs).
    let mut first_pcrs: Vec<(u16, u64)> = vec![];
    let mut first_video_pts = None;
    let mut off = start;
    while off < end.min(start + PROBE_BYTES) {
        let n = file.read_at(&mut buf, off)?;
        let n = n / PACKET_SIZE * PACKET_SIZE;
        if n == 0 {
            break;
        }
        for p in buf[..n].chunks_exact(PACKET_SIZE) {
            let Ok(v) = PacketView::parse(p) else {
                continue;
            };
            let pid = v.header.pid;
            if let Some((pid, pcr)) = pcr_of(p) {
                if !first_pcrs.iter().any(|(q, _)| *q == pid) {
                    first_pcrs.push((pid, pcr));
                }
            }
            if pid == 0 && pmt_pid.is_none() {
                pat_pkt.clear();
                pat_pkt.extend_from_slice(p);
                for s in pat
                    .push(v.header.pusi, v.header.cc, false, v.payload)
                    .into_iter()
                    .flatten()
                {
                    if let Ok(t) = Pat::parse(&s) {
                        pmt_pid = t
                            .programs
                            .iter()
                            .find(|e| e.program_number != 0)
                            .map(|e| e.pid);
                    }
                }
            } else if Some(pid) == pmt_pid && program.is_none() {
                if v.header.pusi {
                    pmt_pkts.clear();
                }
                pmt_pkts.extend_from_slice(p);
                for s in pmt
                    .push(v.header.pusi, v.header.cc, false, v.payload)
                    .into_iter()
                    .flatten()
                {
                    if let Ok(t) = Pmt::parse(&s) {
                        program = Some(t);
                    }
                }
            } else if let Some(pm) = &program {
                if first_video_pts.is_none()
                    && pm.streams.iter().any(|s| s.pid == pid && s.is_video())
                {
                    first_video_pts = pts_of(p);
                }
            }
        }
        let have_pcr = program
            .as_ref()
            .is_some_and(|pm| first_pcrs.iter().any(|(q, _)| *q == pm.pcr_pid));
        let has_video = program
            .as_ref()
            .is_some_and(|pm| pm.streams.iter().any(|s| s.is_video()));
        if have_pcr && (first_video_pts.is_some() || !has_video) {
            break;
        }
        off += n as u64;
    }
    let pm = program.ok_or(TsFileError::NoProgram)?;
    let pmt_pid = pmt_pid.ok_or(TsFileError::NoProgram)?;
    let first_pcr = first_pcrs
        .iter()
        .find(|(q, _)| *q == pm.pcr_pid)
        .map(|(_, p)| *p)
        .ok_or(TsFileError::NoProgram)?;
    // The last PCR: back from the end, window by window.
    let mut last = None;
    let mut to = end;
    while last.is_none() && to > start && end - to < PROBE_BYTES {
        // `to` and `start` are packet boundaries, WINDOW whole packets.
        let from = to.saturating_sub(WINDOW as u64).max(start);
        let n = file.read_at(&mut buf[..(to - from) as usize], from)?;
        last = last_pcr(&buf[..n / PACKET_SIZE * PACKET_SIZE], pm.pcr_pid);
        to = from;
    }
    let video = pm
        .streams
        .iter()
        .find(|s| s.is_video())
        .map(|s| (s.pid, s.stream_type));
    let mut psi = pat_pkt;
    psi.extend_from_slice(&pmt_pkts);
    Ok(TsInfo {
        pmt_pid,
        pcr_pid: pm.pcr_pid,
        video,
        psi,
        start,
        end,
        first_pcr,
        pcr_span: pcr_since(last.unwrap_or(first_pcr), first_pcr),
        first_pts: first_video_pts.unwrap_or(first_pcr / 300),
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use gstdvb2ip::proto::crc::crc32_mpeg2;
    use gstdvb2ip::proto::ts::{encode_timestamp, Pcr};

    const VIDEO: u16 = 0x100;
    const PMT: u16 = 0x1000;

    fn section_packet(pid: u16, table: &[u8], cc: u8) -> Vec<u8> {
        let mut sec = table.to_vec();
        let crc = crc32_mpeg2(&sec);
        sec.extend_from_slice(&crc.to_be_bytes());
        let mut p = vec![
            0x47,
            0x40 | (pid >> 8) as u8,
            pid as u8,
            0x10 | (cc & 15),
            0,
        ];
        p.extend_from_slice(&sec);
        p.resize(PACKET_SIZE, 0xFF);
        p
    }

    fn pat(cc: u8) -> Vec<u8> {
        let pmt = [0xE0 | (PMT >> 8) as u8, PMT as u8];
        section_packet(
            0,
            &[0, 0xB0, 13, 0, 1, 0xC1, 0, 0, 0, 1, pmt[0], pmt[1]],
            cc,
        )
    }

    fn pmt(cc: u8) -> Vec<u8> {
        // PCR on the video PID; one H.264 stream.
        let v = [0xE0 | (VIDEO >> 8) as u8, VIDEO as u8];
        section_packet(
            PMT,
            &[
                2, 0xB0, 18, 0, 1, 0xC1, 0, 0, v[0], v[1], 0xF0, 0, 0x1B, v[0], v[1], 0xF0, 0,
            ],
            cc,
        )
    }

    /// A video packet at `t_ms`: PCR always, a PES start (IDR or not) when `pes`.
    fn video(t_ms: u64, pes: Option<bool>, cc: u8) -> Vec<u8> {
        let pusi = if pes.is_some() { 0x40 } else { 0 };
        let mut p = vec![
            0x47,
            pusi | (VIDEO >> 8) as u8,
            VIDEO as u8,
            0x30 | (cc & 15),
        ];
        let rai = if pes == Some(true) { 0x40 } else { 0 };
        let pcr = Pcr {
            base: 90 * (1000 + t_ms),
            extension: 0,
        };
        p.extend_from_slice(&[7, 0x10 | rai]);
        p.extend_from_slice(&pcr.encode());
        if let Some(idr) = pes {
            p.extend_from_slice(&[0, 0, 1, 0xE0, 0, 0, 0x80, 0x80, 5]);
            p.extend_from_slice(&encode_timestamp(2, 90 * (1100 + t_ms)));
            p.extend_from_slice(&[0, 0, 0, 1, if idr { 0x65 } else { 0x41 }]);
        }
        p.resize(PACKET_SIZE, 0xAB);
        p
    }

    /// 20 s: PAT/PMT every 100 ms, a packet every 10 ms, a frame every 40 ms, a key frame
    /// every second.
    pub(crate) fn file(name: &str) -> std::path::PathBuf {
        let mut data = vec![];
        for i in 0..2000u64 {
            let t = i * 10;
            if t % 100 == 0 {
                data.extend(pat((t / 100) as u8));
                data.extend(pmt((t / 100) as u8));
            }
            let pes = (t % 40 == 0).then_some(t % 1000 == 0);
            data.extend(video(t, pes, i as u8));
        }
        let path =
            std::env::temp_dir().join(format!("dvb2ip-tsfile-{}-{name}.ts", std::process::id()));
        std::fs::write(&path, data).unwrap();
        path
    }

    #[test]
    fn parameter_sets_are_found_only_before_the_first_picture() {
        let nal = |t: u8| [0u8, 0, 0, 1, t];
        let es = |units: &[u8]| units.iter().flat_map(|t| nal(*t)).collect::<Vec<u8>>();
        // H.264: AUD, SPS, PPS, IDR: yes; AUD, IDR: no; SEI, slice, then SPS (next frame): no.
        assert!(parameter_sets_before_picture(
            0x1B,
            &es(&[0x09, 0x67, 0x68, 0x65])
        ));
        assert!(!parameter_sets_before_picture(0x1B, &es(&[0x09, 0x65])));
        assert!(!parameter_sets_before_picture(
            0x1B,
            &es(&[0x06, 0x41, 0x67])
        ));
        // H.265: VPS (32), SPS (33): yes; IDR_W_RADL (19) first: no.
        assert!(parameter_sets_before_picture(0x24, &es(&[64, 66, 68, 38])));
        assert!(!parameter_sets_before_picture(0x24, &es(&[38, 66])));
        // MPEG-2: sequence header, then picture: yes; GOP header then picture: no.
        assert!(parameter_sets_before_picture(
            0x02,
            &es(&[0xB3, 0xB8, 0x00])
        ));
        assert!(!parameter_sets_before_picture(0x02, &es(&[0xB8, 0x00])));
        assert!(!parameter_sets_before_picture(0x1B, &[]));
    }

    #[test]
    fn key_frames_with_and_without_parameter_sets_are_told_apart() {
        // The synthetic file's key frames are a bare IDR slice: no decoder can join there.
        let path = file("params");
        assert!(!TsFile::open(&path)
            .unwrap()
            .key_frames_carry_parameter_sets()
            .unwrap());
        std::fs::remove_file(path).ok();
        // The third-party vectors repeat SPS and PPS at every IDR.
        let dir = gstdvb2ip::proto::vectors::media_dir();
        for name in ["temi_a_single_timeline.ts", "temi_d_two_programs.ts"] {
            let f = TsFile::open(&dir.join(name)).unwrap();
            assert!(f.key_frames_carry_parameter_sets().unwrap(), "{name}");
        }
    }

    #[test]
    fn probe_finds_program_duration_and_start() {
        let path = file("probe");
        let f = TsFile::open(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        assert_eq!(f.info.pcr_pid, VIDEO);
        assert_eq!(f.info.video, Some((VIDEO, 0x1B)));
        assert_eq!(f.info.psi.len(), 2 * PACKET_SIZE);
        assert_eq!(f.info.duration_ns(), 19_990_000_000);
        assert_eq!(f.info.first_pts, 90 * 1100);
    }

    #[test]
    fn seek_lands_on_the_key_frame_at_or_before_the_target() {
        let path = file("seek");
        let f = TsFile::open(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        for (want_ms, key_s) in [(0u64, 0u64), (999, 0), (1000, 1), (7500, 7), (19_990, 19)] {
            let l = f.seek(want_ms * 1_000_000).unwrap();
            assert_eq!(l.npt_ns, key_s * 1_000_000_000, "seek to {want_ms} ms");
            let mut p = [0u8; PACKET_SIZE];
            f.read_at(&mut p, l.offset).unwrap();
            assert!(
                is_random_access(&p, VIDEO, 0x1B),
                "seek to {want_ms} ms: {l:?}"
            );
        }
    }

    #[test]
    fn psi_takes_the_counters_that_lead_into_the_file() {
        let path = file("psi");
        let f = TsFile::open(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        // Make the PSI's counters differ from the file's next ones, as after a seek.
        let l = f.seek(7_000_000_000).unwrap();
        let psi = f.psi_leading_into(l.offset).unwrap();
        let mut buf = vec![0u8; 64 * PACKET_SIZE];
        let n = f.read_at(&mut buf, l.offset).unwrap();
        for pid in [0u16, PMT] {
            let cc = |p: &[u8]| p[3] & 0x0F;
            let ours = psi
                .chunks_exact(PACKET_SIZE)
                .find(|p| pid_of(p) == pid)
                .unwrap();
            let next = buf[..n]
                .chunks_exact(PACKET_SIZE)
                .find(|p| pid_of(p) == pid)
                .unwrap();
            assert_eq!((cc(ours) + 1) & 0x0F, cc(next), "PID {pid}");
        }
    }

    #[test]
    fn a_file_that_is_not_ts_is_refused() {
        let path =
            std::env::temp_dir().join(format!("dvb2ip-tsfile-{}-junk.ts", std::process::id()));
        std::fs::write(&path, vec![0u8; 4096]).unwrap();
        let r = TsFile::open(&path);
        std::fs::remove_file(&path).unwrap();
        assert!(matches!(r, Err(TsFileError::NotTs)), "{:?}", r.err());
    }
}
