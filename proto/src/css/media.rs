//! Relating a re-encoded copy of a broadcast to the broadcast's PTS: what the companion page
//! needs to map its `<video>`'s media time onto the TV's timelines.
//!
//! The browser variant of a channel is demuxed, transcoded and muxed again; every stage keeps
//! timestamps, but the demuxer turns the broadcast PTS into running time (its own origin) and
//! the muxer writes running time plus a constant of its own. Both offsets are measured, not
//! assumed:
//!
//! * demuxer: each video access unit the demuxer outputs starts with the first bytes of its
//!   PES payload. [`pes_starts`] reads, from the TS going in, every video PES start's PTS and a
//!   key of its first [`PREFIX_LEN`] payload bytes ([`prefix_key`]); the demuxer's output
//!   buffer with the same key (and running time `rt`) gives `broadcast PTS − rt` exactly
//!   ([`PtsIndex`]).
//! * muxer: the first video PES PTS it writes against the running time of the buffers going
//!   in tells which of the known constants it adds ([`mux_base`]: 0, or one hour as
//!   GStreamer's `mpegtsmux` does).
//!
//! Together: broadcast PTS = muxed PTS + [`pts_shift`] (mod 2^33), which the page applies to
//! what mpegts.js makes of the muxed PTS.

/// Payload bytes of a PES start that identify it.
pub const PREFIX_LEN: usize = 48;

/// PTS/PCR base wrap (2^33 ticks of 90 kHz).
pub const PTS_WRAP: u64 = 1 << 33;

/// The constants a TS muxer may add to running time (ticks): none, or one hour
/// (`TS_MUX_CLOCK_BASE` of GStreamer's `mpegtsmux`).
pub const MUX_BASES: [u64; 2] = [0, 3600 * 90_000];

/// One PES start found in a TS packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PesStart {
    pub pid: u16,
    pub stream_id: u8,
    /// The 33-bit PTS, if the header has one.
    pub pts: Option<u64>,
    /// [`prefix_key`] of the payload, if the packet holds [`PREFIX_LEN`] payload bytes.
    pub key: Option<u64>,
}

/// A key of the first [`PREFIX_LEN`] bytes of `payload` (FNV-1a, 64 bit); `None` if shorter.
pub fn prefix_key(payload: &[u8]) -> Option<u64> {
    let p = payload.get(..PREFIX_LEN)?;
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in p {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    Some(h)
}

/// The 33-bit timestamp of a PES header's 5 PTS/DTS bytes.
pub fn parse_timestamp(b: &[u8]) -> Option<u64> {
    let b = b.get(..5)?;
    Some(
        (u64::from(b[0] >> 1) & 0x07) << 30
            | u64::from(b[1]) << 22
            | (u64::from(b[2]) >> 1) << 15
            | u64::from(b[3]) << 7
            | u64::from(b[4]) >> 1,
    )
}

/// The video PES starts (stream ids 0xE0–0xEF) in 188-byte aligned TS `data`; packets that
/// are not (sync byte missing, short, no payload) are skipped.
pub fn pes_starts(data: &[u8]) -> Vec<PesStart> {
    let mut out = Vec::new();
    for p in data.chunks_exact(188) {
        if p[0] != 0x47 || p[1] & 0x40 == 0 {
            continue;
        }
        let pid = (u16::from(p[1] & 0x1f) << 8) | u16::from(p[2]);
        let afc = (p[3] >> 4) & 0x3;
        let mut i = 4;
        if afc & 0x2 != 0 {
            i += 1 + usize::from(p[4]);
        }
        if afc & 0x1 == 0 || i + 9 > 188 {
            continue;
        }
        let pes = &p[i..];
        if pes[..3] != [0, 0, 1] || !(0xE0..=0xEF).contains(&pes[3]) {
            continue;
        }
        let flags = pes[7];
        let header_len = usize::from(pes[8]);
        let pts = if flags & 0x80 != 0 {
            parse_timestamp(&pes[9..])
        } else {
            None
        };
        let key = pes.get(9 + header_len..).and_then(prefix_key);
        out.push(PesStart {
            pid,
            stream_id: pes[3],
            pts,
            key,
        });
    }
    out
}

/// `a − b` modulo 2^33, as the signed difference of smallest magnitude.
pub fn pts_diff(a: u64, b: u64) -> i64 {
    let d = (a.wrapping_sub(b)) % PTS_WRAP;
    if d >= PTS_WRAP / 2 {
        d as i64 - PTS_WRAP as i64
    } else {
        d as i64
    }
}

/// Nanoseconds of running time as 90 kHz ticks (rounded down, as `mpegtsmux` does).
pub fn ns_to_ticks(ns: u64) -> u64 {
    (u128::from(ns) * 9 / 100_000) as u64
}

/// Which of [`MUX_BASES`] a muxer added, from a PTS it wrote (`out_pts`) and the running time
/// of a buffer that went in around then (`in_rt_ns`): the nearest one, if within 10 s.
pub fn mux_base(out_pts: u64, in_rt_ns: u64) -> Option<u64> {
    let d = pts_diff(out_pts, ns_to_ticks(in_rt_ns) % PTS_WRAP);
    MUX_BASES
        .iter()
        .copied()
        .min_by_key(|b| (d - *b as i64).unsigned_abs())
        .filter(|b| (d - *b as i64).unsigned_abs() < 10 * 90_000)
}

/// broadcast PTS − muxed PTS (mod 2^33, in `0..2^33`): `demux_shift` is broadcast PTS −
/// demuxer running time (ticks, from [`PtsIndex::lookup`]), `mux` the muxer's base.
pub fn pts_shift(demux_shift: i64, mux: u64) -> u64 {
    (demux_shift - mux as i64).rem_euclid(PTS_WRAP as i64) as u64
}

/// Recent video PES starts by payload key, to find the broadcast PTS of a demuxed access unit.
#[derive(Debug, Default, Clone)]
pub struct PtsIndex {
    /// (key, pts), oldest first; a key seen twice with different PTS is dropped.
    recent: std::collections::VecDeque<(u64, u64)>,
}

impl PtsIndex {
    /// Entries kept (a few seconds of video).
    pub const CAPACITY: usize = 512;

    /// Remember the PES starts of a TS buffer going into the demuxer.
    pub fn add(&mut self, starts: &[PesStart]) {
        for s in starts {
            if let (Some(k), Some(pts)) = (s.key, s.pts) {
                self.recent.push_back((k, pts));
            }
        }
        while self.recent.len() > Self::CAPACITY {
            self.recent.pop_front();
        }
    }

    /// The broadcast PTS of the access unit whose data starts with `data`, if exactly one
    /// remembered PES start (or several with the same PTS) had that prefix.
    pub fn lookup(&self, data: &[u8]) -> Option<u64> {
        let k = prefix_key(data)?;
        let mut found = None;
        for &(key, pts) in &self.recent {
            if key == k {
                match found {
                    None => found = Some(pts),
                    Some(p) if p == pts => {}
                    Some(_) => return None,
                }
            }
        }
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode_ts(pts: u64) -> [u8; 5] {
        [
            0x21 | (((pts >> 30) as u8 & 0x07) << 1),
            (pts >> 22) as u8,
            (((pts >> 15) as u8) << 1) | 1,
            (pts >> 7) as u8,
            ((pts as u8) << 1) | 1,
        ]
    }

    fn packet(pid: u16, stream_id: u8, pts: u64, payload: &[u8], adaptation: usize) -> Vec<u8> {
        let mut p = vec![0x47, 0x40 | (pid >> 8) as u8, pid as u8];
        if adaptation > 0 {
            p.push(0x30);
            p.push((adaptation - 1) as u8);
            p.extend(std::iter::repeat_n(0xff, adaptation - 1));
        } else {
            p.push(0x10);
        }
        p.extend([0, 0, 1, stream_id, 0, 0, 0x80, 0x80, 5]);
        p.extend(encode_ts(pts));
        p.extend(payload);
        p.resize(188, 0xaa);
        p
    }

    #[test]
    fn finds_video_pes_starts_with_pts_and_key() {
        let payload: Vec<u8> = (0..100u8).collect();
        let mut ts = packet(0x100, 0xE0, 0x1_2345_6789, &payload, 0);
        ts.extend(packet(0x101, 0xC0, 5, &payload, 0)); // audio: ignored
        ts.extend(packet(0x100, 0xE0, 7, &payload, 8));
        let mut cont = ts[..188].to_vec();
        cont[1] &= !0x40; // no PUSI: ignored
        ts.extend(cont);
        let s = pes_starts(&ts);
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].pid, 0x100);
        assert_eq!(s[0].pts, Some(0x1_2345_6789));
        assert_eq!(s[1].pts, Some(7));
        assert_eq!(s[0].key, prefix_key(&payload));
        assert!(s[0].key.is_some());
        // an access unit starting with the payload maps to its PTS
        let mut idx = PtsIndex::default();
        idx.add(&s[..1]);
        let mut au = payload.clone();
        au.extend([1, 2, 3]);
        assert_eq!(idx.lookup(&au), Some(0x1_2345_6789));
        assert_eq!(idx.lookup(&au[1..]), None);
        assert_eq!(idx.lookup(&au[..10]), None);
        // the same prefix with two PTS is ambiguous
        idx.add(&s[1..]);
        assert_eq!(idx.lookup(&au), None);
    }

    #[test]
    fn mux_base_and_shift() {
        // mpegtsmux: running time 10 s + one hour
        let rt = 10_000_000_000;
        assert_eq!(
            mux_base(10 * 90_000 + 3600 * 90_000 + 3, rt),
            Some(3600 * 90_000)
        );
        assert_eq!(mux_base(10 * 90_000 + 1800, rt), Some(0));
        assert_eq!(mux_base(10 * 90_000 + 1800 * 90_000, rt), None);
        assert_eq!(ns_to_ticks(1_000_000_000), 90_000);
        // broadcast PTS 100 at running time 0 → demux shift 100; muxer adds one hour
        let shift = pts_shift(100, 3600 * 90_000);
        let muxed = 3600 * 90_000;
        assert_eq!((muxed + shift) % PTS_WRAP, 100);
        assert_eq!(pts_diff(5, PTS_WRAP - 5), 10);
        assert_eq!(pts_diff(PTS_WRAP - 5, 5), -10);
    }
}
