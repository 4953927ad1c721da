//! Packet surgery of the direct VOD reader ([`super::pacer`]): the continuity counters a session
//! sends ([`Counters`]: never a continuity error inside a session, across seeks and scale
//! changes), the discontinuity_indicator where timestamps jump, and the timestamp shift of a
//! trick-play step (PCR in the adaptation field, PTS/DTS in the PES header), all in place on
//! whole TS packets.

use gstdvb2ip::proto::ts::{
    encode_timestamp, stream_id_has_optional_header, Pcr, PACKET_SIZE, SYNC_BYTE,
};

use super::ts_file::{PCR_HZ, PCR_WRAP};

pub fn pid_of(p: &[u8]) -> u16 {
    (u16::from(p[1] & 0x1F) << 8) | u16::from(p[2])
}

pub fn pusi(p: &[u8]) -> bool {
    p[1] & 0x40 != 0
}

fn has_payload(p: &[u8]) -> bool {
    p[3] & 0x10 != 0
}

/// Where the adaptation field's flags byte is, when the packet has one that is not empty.
fn af_flags_at(p: &[u8]) -> Option<usize> {
    (p[3] & 0x20 != 0 && p[4] > 0 && usize::from(p[4]) < PACKET_SIZE - 4).then_some(5)
}

/// The offset of the PCR field, when the packet carries one.
fn pcr_at(p: &[u8]) -> Option<usize> {
    let f = af_flags_at(p)?;
    (p[f] & 0x10 != 0 && p[4] >= 7).then_some(f + 1)
}

/// The packet's PCR, 27 MHz.
pub fn pcr(p: &[u8]) -> Option<u64> {
    let at = pcr_at(p)?;
    Some(Pcr::parse(&p[at..at + 6])?.to_27mhz())
}

/// Sets the adaptation field's discontinuity_indicator of a packet that carries a PCR (a new
/// time base starts there); `false` when it carries none.
pub fn mark_discontinuity(p: &mut [u8]) -> bool {
    match pcr_at(p) {
        Some(_) => {
            p[5] |= 0x80;
            true
        }
        None => false,
    }
}

/// Adds `delta` (27 MHz, on the PCR circle) to the packet's PCR; returns the new PCR.
pub fn shift_pcr(p: &mut [u8], delta: u64) -> Option<u64> {
    let at = pcr_at(p)?;
    let v = (Pcr::parse(&p[at..at + 6])?.to_27mhz() + delta) % PCR_WRAP;
    let pcr = Pcr {
        base: v / 300,
        extension: (v % 300) as u16,
    };
    p[at..at + 6].copy_from_slice(&pcr.encode());
    Some(v)
}

fn decode_ts(b: &[u8]) -> u64 {
    (u64::from(b[0] >> 1 & 7) << 30)
        | (u64::from(b[1]) << 22)
        | (u64::from(b[2] >> 1) << 15)
        | (u64::from(b[3]) << 7)
        | u64::from(b[4] >> 1)
}

/// The offset of the payload.
pub fn payload_at(p: &[u8]) -> Option<usize> {
    match p[3] & 0x30 {
        0x10 => Some(4),
        0x30 => Some(5 + usize::from(p[4])).filter(|&o| o < PACKET_SIZE),
        _ => None,
    }
}

/// Adds `delta` (90 kHz, mod 2^33) to the PTS and DTS of the PES that starts in `p`; returns
/// the PES's (original) PTS.
pub fn shift_pes_timestamps(p: &mut [u8], delta: u64) -> Option<u64> {
    if !pusi(p) {
        return None;
    }
    let at = payload_at(p)?;
    let pes = &mut p[at..];
    if pes.len() < 9 || pes[..3] != [0, 0, 1] || !stream_id_has_optional_header(pes[3]) {
        return None;
    }
    let n = match pes[7] >> 6 {
        2 => 1,
        3 => 2,
        _ => return None,
    };
    if pes.len() < 9 + 5 * n {
        return None;
    }
    let mut first = None;
    for k in 0..n {
        let f = &mut pes[9 + 5 * k..14 + 5 * k];
        let ts = decode_ts(f);
        first.get_or_insert(ts);
        f.copy_from_slice(&encode_timestamp(f[0] >> 4, (ts + delta) & 0x1_FFFF_FFFF));
    }
    first
}

/// A packet of `pid` with only an adaptation field carrying `pcr` (27 MHz), its
/// discontinuity_indicator set when `discontinuity`. Its counter is the PID's last one (no
/// payload): [`Counters::inject`] sets it.
pub fn pcr_packet(pid: u16, pcr: u64, discontinuity: bool) -> [u8; PACKET_SIZE] {
    let mut p = [0xFFu8; PACKET_SIZE];
    p[..4].copy_from_slice(&[SYNC_BYTE, (pid >> 8) as u8 & 0x1F, pid as u8, 0x20]);
    p[4] = (PACKET_SIZE - 5) as u8;
    p[5] = 0x10 | if discontinuity { 0x80 } else { 0 };
    let pcr = Pcr {
        base: pcr / 300 % (1 << 33),
        extension: (pcr % 300) as u16,
    };
    p[6..12].copy_from_slice(&pcr.encode());
    p
}

/// The continuity counters a session sent, per PID, and how the file's counters map onto them:
/// the file's packets keep their own sequence shifted by a per-PID offset, which is chosen again
/// at the first packet of the PID after a jump (a seek, a trick-play step, the end of trick
/// play) so that it continues what the session sent; until its next PES (or section) start a
/// PID's packets with payload after a jump are dropped, so no PES is glued to one from
/// elsewhere. A few bytes per PID the session sent.
#[derive(Default)]
pub struct Counters(Vec<Cc>);

struct Cc {
    pid: u16,
    /// The last counter sent.
    last: u8,
    /// Added to the file's counters; `None`: chosen at the PID's next file packet.
    delta: Option<u8>,
    /// After a jump: payload is dropped until the PID's next payload unit start.
    wait: bool,
}

impl Counters {
    /// Nothing was sent yet.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// What follows comes from elsewhere in the file.
    pub fn jump(&mut self) {
        for c in &mut self.0 {
            c.delta = None;
            c.wait = true;
        }
    }

    /// The PIDs sent.
    pub fn pids(&self) -> Vec<u16> {
        self.0.iter().map(|c| c.pid).collect()
    }

    /// A packet of the file, in file order since the last jump: its counter continues the
    /// session's. `false`: drop it (after a jump, before its PID's next payload unit start).
    pub fn pass(&mut self, p: &mut [u8]) -> bool {
        let pid = pid_of(p);
        if pid == 0x1FFF {
            return true;
        }
        let cc = p[3] & 0x0F;
        let Some(c) = self.0.iter_mut().find(|c| c.pid == pid) else {
            self.0.push(Cc {
                pid,
                last: cc,
                delta: Some(0),
                wait: false,
            });
            return true;
        };
        let payload = has_payload(p);
        if c.wait {
            if pusi(p) {
                c.wait = false;
            } else if payload {
                return false;
            }
        }
        let last = c.last;
        let delta = *c.delta.get_or_insert_with(|| {
            let want = if payload { last + 1 } else { last };
            want.wrapping_sub(cc) & 0x0F
        });
        let out = (cc + delta) & 0x0F;
        p[3] = (p[3] & 0xF0) | out;
        c.last = out;
        true
    }

    /// A packet the reader adds (the PAT and PMT after a jump, a trick step's PCR): it
    /// continues the session's counter, and the PID's next file packet continues it.
    pub fn inject(&mut self, p: &mut [u8]) {
        let pid = pid_of(p);
        let payload = has_payload(p);
        match self.0.iter_mut().find(|c| c.pid == pid) {
            None => self.0.push(Cc {
                pid,
                last: p[3] & 0x0F,
                delta: None,
                wait: false,
            }),
            Some(c) => {
                let out = if payload { (c.last + 1) & 0x0F } else { c.last };
                p[3] = (p[3] & 0xF0) | out;
                c.last = out;
                c.delta = None;
            }
        }
    }
}

/// ns to 27 MHz ticks (for wall-clock spans).
pub fn wall_ticks(d: std::time::Duration) -> u64 {
    (d.as_nanos() * u128::from(PCR_HZ) / 1_000_000_000) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A packet with payload (a payload unit start when `start`), or with only an adaptation
    /// field.
    fn pkt(pid: u16, cc: u8, payload: bool, start: bool) -> [u8; PACKET_SIZE] {
        let mut p = [0xFFu8; PACKET_SIZE];
        let afc = if payload { 0x10 } else { 0x20 };
        let pusi = if start { 0x40 } else { 0 };
        p[..4].copy_from_slice(&[SYNC_BYTE, pusi | (pid >> 8) as u8, pid as u8, afc | cc]);
        if !payload {
            p[4] = 183;
            p[5] = 0;
        }
        p
    }

    #[test]
    fn counters_continue_across_jumps_and_injected_packets() {
        let mut c = Counters::default();
        let mut out = vec![];
        let mut send = |c: &mut Counters, mut p: [u8; PACKET_SIZE], inject: bool| {
            if inject {
                c.inject(&mut p);
            } else if !c.pass(&mut p) {
                return;
            }
            out.push((pid_of(&p), p[3] & 0x0F, has_payload(&p)));
        };
        send(&mut c, pkt(0x100, 7, true, true), false);
        send(&mut c, pkt(0x100, 8, true, false), false);
        c.jump();
        // Dropped: the rest of a PES from elsewhere.
        send(&mut c, pkt(0x100, 2, true, false), false);
        send(&mut c, pkt(0x100, 3, true, true), false);
        send(&mut c, pkt(0x100, 4, true, false), false);
        send(&mut c, pkt(0x100, 0, false, false), true);
        send(&mut c, pkt(0x100, 5, true, false), false);
        send(&mut c, pkt(0, 9, true, true), true);
        send(&mut c, pkt(0, 2, true, true), false);
        assert_eq!(
            out,
            [
                (0x100, 7, true),
                (0x100, 8, true),
                (0x100, 9, true),
                (0x100, 10, true),
                (0x100, 10, false),
                (0x100, 11, true),
                (0, 9, true),
                (0, 10, true),
            ]
        );
    }

    #[test]
    fn timestamps_shift_in_place() {
        let mut p = pcr_packet(0x100, 27_000_000 * 5 + 7, false);
        assert_eq!(pcr(&p), Some(27_000_000 * 5 + 7));
        assert_eq!(shift_pcr(&mut p, 300), Some(27_000_000 * 5 + 307));
        assert!(mark_discontinuity(&mut p));
        assert_eq!(p[5] & 0x80, 0x80);
        // A PES start with PTS and DTS.
        let mut q = [0xFFu8; PACKET_SIZE];
        q[..4].copy_from_slice(&[SYNC_BYTE, 0x41, 0x00, 0x10]);
        q[4..13].copy_from_slice(&[0, 0, 1, 0xE0, 0, 0, 0x80, 0xC0, 10]);
        q[13..18].copy_from_slice(&encode_timestamp(3, 9000));
        q[18..23].copy_from_slice(&encode_timestamp(1, 6000));
        assert_eq!(shift_pes_timestamps(&mut q, 90), Some(9000));
        assert_eq!(decode_ts(&q[13..18]), 9090);
        assert_eq!(decode_ts(&q[18..23]), 6090);
        assert_eq!(q[13] >> 4, 3);
    }

    /// Trick play of the direct reader on a real H.264/AAC TS (ffmpeg's clock movie).
    mod reader {
        use super::*;
        use crate::vod::pacer::{ChunkSink, Pacer, Reader};
        use crate::vod::ts_file::{is_random_access, pts_of, TsFile};
        use std::collections::HashMap;
        use std::io;
        use std::path::PathBuf;
        use std::sync::{Arc, Condvar, Mutex};
        use std::time::{Duration, Instant};

        /// 20 s, 25 frames/s, a key frame every second (no B frames), AAC audio: made once in
        /// the shared cache.
        fn movie() -> PathBuf {
            static MAKING: Mutex<()> = Mutex::new(());
            let _one = MAKING.lock().unwrap_or_else(|e| e.into_inner());
            let dir = std::env::var_os("DVB2IP_CACHE_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(|| std::env::temp_dir().join("dvb2ip-cache"))
                .join("vod");
            std::fs::create_dir_all(&dir).unwrap();
            let path = dir.join("trick-clock20.ts");
            if !path.exists() {
                let tmp = dir.join(format!(".trick-clock20.ts.{}", std::process::id()));
                let st = std::process::Command::new("ffmpeg")
                    .args(["-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i"])
                    .arg("nullsrc=s=160x120:r=25:d=20,geq=lum='4*T':cb=128:cr=128,format=yuv420p")
                    .args([
                        "-f",
                        "lavfi",
                        "-i",
                        "sine=frequency=440:sample_rate=48000:duration=20",
                    ])
                    .args(["-c:v", "libx264", "-preset", "ultrafast", "-g", "25"])
                    .args(["-keyint_min", "25", "-sc_threshold", "0", "-bf", "0"])
                    .args(["-c:a", "aac", "-b:a", "64k", "-f", "mpegts"])
                    .arg(&tmp)
                    .status()
                    .expect("run ffmpeg");
                assert!(st.success(), "ffmpeg made the movie");
                std::fs::rename(&tmp, &path).unwrap();
            }
            path
        }

        #[test]
        fn ffmpegs_key_frames_carry_their_parameter_sets() {
            // libx264 in MPEG-TS repeats SPS/PPS at every key frame: such files go the direct path.
            let f = TsFile::open(&movie()).unwrap();
            assert!(f.key_frames_carry_parameter_sets().unwrap());
        }

        /// The bytes, and where each chunk starts in them and when it arrived.
        type Got = (Vec<u8>, Vec<(usize, Instant)>);

        /// Keeps what a reader hands over, with the arrival time of every chunk.
        #[derive(Default)]
        struct Keep {
            got: Mutex<Got>,
            ended: Mutex<usize>,
            done: Condvar,
        }

        impl ChunkSink for Keep {
            fn chunk(&self, ts: &[u8]) -> bool {
                let mut g = self.got.lock().unwrap();
                let at = g.0.len();
                g.0.extend_from_slice(ts);
                g.1.push((at, Instant::now()));
                self.done.notify_all();
                true
            }
            fn end(&self, error: Option<io::Error>) {
                assert!(error.is_none(), "{error:?}");
                *self.ended.lock().unwrap() += 1;
                self.done.notify_all();
            }
        }

        impl Keep {
            /// Waits (bounded) for the `n`th end of play.
            fn wait_end(&self, n: usize) {
                let g = self.ended.lock().unwrap();
                let (g, _) = self
                    .done
                    .wait_timeout_while(g, Duration::from_secs(30), |e| *e < n)
                    .unwrap();
                assert_eq!(*g, n, "play ended");
            }

            /// Waits (bounded) until `ok` holds for what arrived.
            fn wait_for(&self, what: &str, ok: impl Fn(&[u8]) -> bool) {
                let g = self.got.lock().unwrap();
                let (g, _) = self
                    .done
                    .wait_timeout_while(g, Duration::from_secs(30), |g| !ok(&g.0))
                    .unwrap();
                assert!(ok(&g.0), "waiting for {what}");
            }

            fn bytes(&self) -> Vec<u8> {
                self.got.lock().unwrap().0.clone()
            }

            /// When the byte at `at` arrived.
            fn arrival(&self, at: usize) -> Instant {
                let g = self.got.lock().unwrap();
                g.1.iter().rev().find(|(o, _)| *o <= at).unwrap().1
            }
        }

        /// A frame of the video PID as sent: where it starts in the output, its PES PTS as
        /// sent and a hash of its elementary stream bytes (what identifies it in the file).
        #[derive(Debug, Clone, Copy)]
        struct Frame {
            at: usize,
            pts: u64,
            es: u64,
        }

        fn frames(ts: &[u8], video: u16) -> Vec<Frame> {
            use std::hash::{Hash, Hasher};
            let mut out: Vec<(Frame, std::collections::hash_map::DefaultHasher)> = vec![];
            for (i, p) in ts.chunks_exact(PACKET_SIZE).enumerate() {
                if pid_of(p) != video {
                    continue;
                }
                let Some(mut at) = payload_at(p) else {
                    continue;
                };
                if pusi(p) {
                    let pts = pts_of(p).expect("a PES with a PTS");
                    at += 9 + usize::from(p[at + 8]);
                    let f = Frame {
                        at: i * PACKET_SIZE,
                        pts,
                        es: 0,
                    };
                    out.push((f, Default::default()));
                }
                if let Some((_, h)) = out.last_mut() {
                    p[at..].hash(h);
                }
            }
            out.into_iter()
                .map(|(f, h)| Frame {
                    es: h.finish(),
                    ..f
                })
                .collect()
        }

        /// The file's frames by their ES hash: (NPT, key frame).
        fn index(f: &TsFile, path: &std::path::Path) -> HashMap<u64, (u64, bool)> {
            let data = std::fs::read(path).unwrap();
            let (video, st) = f.info.video.unwrap();
            let starts: Vec<usize> = data
                .chunks_exact(PACKET_SIZE)
                .enumerate()
                .filter(|(_, p)| pid_of(p) == video && pusi(p))
                .map(|(i, _)| i * PACKET_SIZE)
                .collect();
            frames(&data, video)
                .iter()
                .zip(&starts)
                .map(|(fr, &at)| {
                    let key = is_random_access(&data[at..at + PACKET_SIZE], video, st);
                    (fr.es, (f.npt_of_pts(Some(fr.pts)), key))
                })
                .collect()
        }

        /// Every PID's continuity counters in `ts` (ISO 13818-1 2.4.3.3): payload packets count
        /// up by one, packets without payload repeat the last counter. Returns the errors.
        fn cc_errors(ts: &[u8]) -> Vec<String> {
            let mut last: HashMap<u16, u8> = HashMap::new();
            let mut errors = vec![];
            for (i, p) in ts.chunks_exact(PACKET_SIZE).enumerate() {
                assert_eq!(p[0], SYNC_BYTE, "packet {i} in sync");
                let (pid, cc) = (pid_of(p), p[3] & 0x0F);
                if pid == 0x1FFF {
                    continue;
                }
                if let Some(&l) = last.get(&pid) {
                    let want = if has_payload(p) { (l + 1) & 0x0F } else { l };
                    if cc != want {
                        errors.push(format!("packet {i} PID {pid:#x}: cc {cc}, want {want}"));
                    }
                }
                last.insert(pid, cc);
            }
            errors
        }

        fn open() -> (TsFile, HashMap<u64, (u64, bool)>) {
            let path = movie();
            let f = TsFile::open(&path).unwrap();
            let idx = index(&f, &path);
            (f, idx)
        }

        /// The output of a trick-play run, its frames with their NPTs, the media seconds per
        /// wall second, and the reader.
        type TrickRun = (Vec<u8>, Vec<(Frame, u64)>, f64, Arc<Reader>);

        /// Runs trick play at `scale` from a seek to `from_s` until it ends; returns the
        /// output, the NPTs of its frames (all key frames of the file) and the media seconds
        /// per wall second.
        fn trick_run(scale: f64, from_s: u64) -> TrickRun {
            let (f, idx) = open();
            let video = f.info.video.unwrap().0;
            let pacer = Pacer::new();
            let sink = Arc::new(Keep::default());
            let r = Reader::new(&pacer, f, sink.clone()).unwrap();
            let l = r.seek(from_s * 1_000_000_000).unwrap();
            assert_eq!(l.npt_ns, from_s * 1_000_000_000);
            assert_eq!(r.set_scale(scale), scale);
            r.play();
            sink.wait_end(1);
            assert!(!r.is_playing());
            let ts = sink.bytes();
            let got: Vec<(Frame, u64)> = frames(&ts, video)
                .into_iter()
                .map(|fr| {
                    let (npt, key) = *idx.get(&fr.es).expect("a frame of the file");
                    assert!(key, "only key frames: {fr:?} at {npt} ns");
                    (fr, npt)
                })
                .collect();
            assert!(got.len() >= 2, "{got:?}");
            let (a, b) = (got[0], got[got.len() - 1]);
            let wall = sink.arrival(b.0.at) - sink.arrival(a.0.at);
            let rate = b.1.abs_diff(a.1) as f64 / wall.as_nanos() as f64;
            println!(
                "scale {scale}: {} key frames, {:.1} s of media in {:.2} s: {rate:.2} media s per s",
                got.len(),
                b.1.abs_diff(a.1) as f64 / 1e9,
                wall.as_secs_f64()
            );
            (ts, got, rate, r)
        }

        /// PIDs present in `ts`.
        fn pids(ts: &[u8]) -> Vec<u16> {
            let mut v: Vec<u16> = ts.chunks_exact(PACKET_SIZE).map(pid_of).collect();
            v.sort_unstable();
            v.dedup();
            v
        }

        #[test]
        fn scale_4_sends_later_key_frames_only_about_4_times_as_fast() {
            let (ts, got, rate, r) = trick_run(4.0, 2);
            let info = &r.file().info;
            assert_eq!(got[0].1, 2_000_000_000, "starts at the seek's key frame");
            for w in got.windows(2) {
                assert!(w[1].1 > w[0].1, "forward: {:?} then {:?}", w[0], w[1]);
                assert!(w[1].0.pts > w[0].0.pts, "PTS increase");
            }
            assert_eq!(
                got.last().unwrap().1,
                19_000_000_000,
                "up to the last key frame"
            );
            assert!(rate > 1.0 && rate < 4.0 * 1.25, "about 4× ({rate:.2})");
            let video = info.video.unwrap().0;
            assert_eq!(pids(&ts), [0, video, info.pmt_pid], "audio muted");
            assert_eq!(cc_errors(&ts), Vec::<String>::new());
            // Ends like normal play: paused at the end.
            assert_eq!(r.offset(), info.end);
            assert!(r.position_ns() >= 19_000_000_000);
        }

        #[test]
        fn scale_minus_4_goes_backwards_and_ends_at_the_start() {
            let (ts, got, rate, r) = trick_run(-4.0, 15);
            assert_eq!(got[0].1, 15_000_000_000);
            for w in got.windows(2) {
                assert!(w[1].1 < w[0].1, "reverse: {:?} then {:?}", w[0], w[1]);
                assert!(w[1].0.pts > w[0].0.pts, "PTS increase");
            }
            assert_eq!(got.last().unwrap().1, 0, "down to the first key frame");
            assert!(rate > 1.0 && rate < 4.0 * 1.25, "about 4× ({rate:.2})");
            assert_eq!(cc_errors(&ts), Vec::<String>::new());
            assert_eq!(r.position_ns(), 0, "at the start");
            assert_eq!(r.offset(), r.file().info.start);
        }

        #[test]
        fn counters_continue_across_seeks_and_scale_changes_and_scale_1_resumes() {
            let (f, idx) = open();
            let info = f.info.clone();
            let video = info.video.unwrap().0;
            let pacer = Pacer::new();
            let sink = Arc::new(Keep::default());
            let r = Reader::new(&pacer, f, sink.clone()).unwrap();
            // Normal play by the file's own PTS (the clock movie repeats pictures, so only key
            // frames are told apart by their bytes); trick play by the key frames' bytes.
            let npts = |ts: &[u8]| -> Vec<u64> {
                frames(ts, video)
                    .iter()
                    .map(|fr| r.file().npt_of_pts(Some(fr.pts)))
                    .collect()
            };
            let keys = |ts: &[u8]| -> Vec<u64> {
                frames(ts, video)
                    .iter()
                    .map(|fr| {
                        let (npt, key) = idx[&fr.es];
                        assert!(key, "a key frame");
                        npt
                    })
                    .collect()
            };
            // Normal play for a while, then PAUSE.
            r.play();
            sink.wait_for("1 s of normal play", |ts| {
                npts(ts).last().is_some_and(|&n| n >= 1_000_000_000)
            });
            r.pause();
            let normal = sink.bytes().len();
            // Scale 8 from there: a few key frames, then PAUSE.
            assert_eq!(r.set_scale(8.0), 8.0);
            r.play();
            sink.wait_for("3 key frames at scale 8", |ts| {
                frames(&ts[normal..], video).len() >= 3
            });
            r.pause();
            let trick = sink.bytes();
            let sent = frames(&trick[normal..], video);
            let fast = keys(&trick[normal..]);
            assert!(fast.windows(2).all(|w| w[1] > w[0]), "{fast:?}");
            let last = idx[&sent.last().unwrap().es];
            assert_eq!(
                r.position_ns(),
                last.0,
                "the position is the last key frame sent"
            );
            // Back to scale 1: PAT, PMT, then that key frame with the file's own timestamps.
            assert_eq!(r.set_scale(1.0), 1.0);
            r.play();
            let at = trick.len();
            sink.wait_for("normal play after trick play", |ts| {
                frames(&ts[at..], video).len() >= 5
            });
            r.pause();
            let resumed = sink.bytes();
            let head: Vec<u16> = resumed[at..at + info.psi.len()]
                .chunks_exact(PACKET_SIZE)
                .map(pid_of)
                .collect();
            assert_eq!(head[..2], [0, info.pmt_pid], "PAT and PMT first");
            let after = npts(&resumed[at..]);
            assert_eq!(after[0], last.0, "resumes at the last key frame sent");
            assert!(after.windows(2).all(|w| w[1] > w[0]), "{after:?}");
            let kf = frames(&resumed[at..], video)[0];
            assert_eq!(kf.es, sent.last().unwrap().es, "the same key frame");
            let file_pts = (info.first_pts + last.0 * 9 / 100_000) % (1 << 33);
            assert_eq!(kf.pts, file_pts, "the file's own PTS again");
            // A seek with reverse trick play, then a seek in normal play.
            let l = r.seek(12_000_000_000).unwrap();
            assert_eq!(r.set_scale(-2.0), -2.0);
            r.play();
            let at = resumed.len();
            sink.wait_for("3 key frames at scale -2", |ts| {
                frames(&ts[at..], video).len() >= 3
            });
            r.pause();
            let back = keys(&sink.bytes()[at..]);
            assert_eq!(back[0], l.npt_ns);
            assert!(back.windows(2).all(|w| w[1] < w[0]), "{back:?}");
            let at = sink.bytes().len();
            // The last seek plays to the end of the file (so the session's output ends where
            // the file does, with no PES cut short).
            r.seek(18_500_000_000).unwrap();
            assert_eq!(r.set_scale(1.0), 1.0);
            r.play();
            sink.wait_end(1);
            let all = sink.bytes();
            assert_eq!(npts(&all[at..])[0], 18_000_000_000);
            assert_eq!(
                cc_errors(&all),
                Vec::<String>::new(),
                "no CC error in the session"
            );
            // Where the time line jumped, the PCR's packet says so.
            let marked = all
                .chunks_exact(PACKET_SIZE)
                .filter(|p| pcr(p).is_some() && p[5] & 0x80 != 0)
                .count();
            assert_eq!(marked, 4, "trick play twice, back to 1, the seek");
            assert!(r.position_ns() > 18_500_000_000, "{}", r.position_ns());
            // ffmpeg reads the whole session (normal play, trick play both ways, seeks).
            let out =
                std::env::temp_dir().join(format!("dvb2ip-trick-{}-mix.ts", std::process::id()));
            std::fs::write(&out, &all).unwrap();
            let decode = std::process::Command::new("ffmpeg")
                .args(["-nostdin", "-v", "error", "-i"])
                .arg(&out)
                .args(["-f", "null", "-"])
                .output()
                .expect("run ffmpeg");
            std::fs::remove_file(&out).unwrap();
            let errors = String::from_utf8_lossy(&decode.stderr);
            assert!(
                decode.status.success() && errors.trim().is_empty(),
                "ffmpeg: {errors}"
            );
        }

        /// ffmpeg reads the trick streams of Scale 4 and -4 as written to files: no error,
        /// only key frames, PTS increasing.
        #[test]
        fn ffmpeg_decodes_trick_play_output_without_errors() {
            for (scale, from) in [(4.0, 0u64), (-4.0, 19)] {
                let (ts, ..) = trick_run(scale, from);
                let out = std::env::temp_dir()
                    .join(format!("dvb2ip-trick-{}-{scale}.ts", std::process::id()));
                std::fs::write(&out, &ts).unwrap();
                let probe = std::process::Command::new("ffprobe")
                    .args(["-v", "error", "-select_streams", "v", "-show_frames"])
                    .args([
                        "-show_entries",
                        "frame=key_frame,pict_type,pts",
                        "-of",
                        "csv",
                    ])
                    .arg(&out)
                    .output()
                    .expect("run ffprobe");
                let decode = std::process::Command::new("ffmpeg")
                    .args(["-nostdin", "-v", "error", "-i"])
                    .arg(&out)
                    .args(["-f", "null", "-"])
                    .output()
                    .expect("run ffmpeg");
                std::fs::remove_file(&out).unwrap();
                let text = String::from_utf8_lossy(&probe.stdout);
                let errors = String::from_utf8_lossy(&probe.stderr);
                println!("scale {scale}: ffprobe:\n{text}{errors}");
                println!("scale {scale}: ffmpeg -f null: {:?}", decode.status);
                assert!(
                    probe.status.success() && errors.trim().is_empty(),
                    "{errors}"
                );
                let decode_errors = String::from_utf8_lossy(&decode.stderr);
                assert!(
                    decode.status.success() && decode_errors.trim().is_empty(),
                    "scale {scale}: ffmpeg: {decode_errors}"
                );
                let frames: Vec<(bool, String, i64)> = text
                    .lines()
                    .filter(|l| l.starts_with("frame,"))
                    .map(|l| {
                        let f: Vec<&str> = l.split(',').collect();
                        (f[1] == "1", f[3].to_string(), f[2].parse().unwrap())
                    })
                    .collect();
                assert!(frames.len() >= 4, "{text}");
                assert!(frames.iter().all(|f| f.0 && f.1 == "I"), "key frames only");
                assert!(frames.windows(2).all(|w| w[1].2 > w[0].2), "PTS increase");
            }
        }
    }
}
