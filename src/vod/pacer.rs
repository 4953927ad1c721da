//! The pacing thread of the direct VOD path: one thread for every direct session of a server,
//! reading each playing session's file in chunks of whole TS packets and handing them to the
//! session's sink when the file's PCR says they are due (wall clock since the session's last
//! PLAY). A session costs its open file, its position and a few words of state: no pipeline, no
//! queue, no thread; the chunk buffers are the thread's.
//!
//! After a seek ([`Reader::seek`]) a session starts with the file's PAT and PMT, then the
//! random access point [`TsFile::seek`] found, at once; the end of the file or a read error
//! ends its play ([`ChunkSink::end`]) and leaves it paused where it stopped.
//!
//! **Continuity counters** continue what the session sent, on every PID, across seeks, trick
//! play and its end ([`Counters`]): a client never sees a continuity error inside a session.
//! Where the timestamps jump (the first PCR after a seek or after trick play, the first step of
//! a trick-play period) the PCR's packet has the adaptation field's discontinuity_indicator set.
//!
//! **Trick play** ([`Reader::set_scale`], then [`Reader::play`]): at a scale other than 1 the
//! reader sends key frames only, found in the file itself (no index): each step is the PAT and
//! PMT, a PCR packet on the PCR PID, then the packets of one key frame of the video PID (from its
//! PES start to the next PES start on that PID; every other PID is dropped, so audio is mute).
//! Forward it takes key frames after the current position, reverse the ones before it, and it
//! paces them so the media position moves |scale| media seconds per wall second: step k is due
//! when |NPT(k) − NPT(0)| / |scale| has passed since step 0, at most one step per 40 ms
//! (`MIN_STEP`) and never before the previous key frame's own PCR span has passed (key frames
//! closer than that are skipped).
//!
//! **Timestamps in trick play** (as live555 does, the trick stream is a regular 1× stream of
//! key frames): a step's PCRs and its key frame's PTS/DTS are shifted by one offset per step so
//! that its PCR packet reads the period's first PCR plus the wall time since the first step was
//! due. The first key frame of a period keeps its own timestamps (its PCR packet carries the
//! discontinuity_indicator); later ones are stamped at its PTS plus the wall time between them,
//! in both directions: the PTS always increase and the media time is
//! NPT(0) + scale × (PTS − PTS(0)). Back at scale 1 the reader plays on from the last key frame
//! sent, with the PAT and PMT first and the file's own timestamps (discontinuity_indicator on
//! its first PCR). The end of the file (forward) or its first key frame (reverse) ends trick
//! play like normal play: [`ChunkSink::end`] with `None`, paused at the end or at the start.

use std::io;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use gstdvb2ip::proto::ts::PACKET_SIZE;

use super::trick::{self, pid_of, pusi, Counters};
use super::ts_file::{last_pcr, pcr_since, ticks_to_ns, Landing, TsFile, PCR_HZ, PCR_WRAP};

/// Bytes handed over per chunk: 8 RTP packets of 7 TS packets (~4 ms at 20 Mbit/s).
pub const CHUNK: usize = 8 * 7 * 188;
/// How far ahead of its PCR a session's data may leave (the client's jitter buffer absorbs it;
/// it also lets a seek's first frames arrive in a burst).
const LEAD: Duration = Duration::from_millis(40);
/// The thread looks at its sessions at least this often.
const IDLE_WAIT: Duration = Duration::from_millis(100);
/// The largest |scale| trick play applies.
pub const MAX_SCALE: f64 = 16.0;
/// Trick play sends at most one key frame per this much wall time (25 a second).
const MIN_STEP: Duration = Duration::from_millis(40);
/// The PES that normal play left open at a jump are finished from at most this far on.
const TAIL: u64 = 2 << 20;
/// A key frame's packets are looked for at most this far from its start.
const MAX_FRAME: u64 = 16 << 20;
/// When a key frame's first chunk carries no PCR, its PTS is this far ahead of the step's PCR.
const PTS_LEAD_TICKS: u64 = PCR_HZ / 10;

/// The scale [`Reader::set_scale`] applies for a requested one (for a file with video).
pub fn applied_scale(scale: f64) -> f64 {
    if scale.is_nan() {
        1.0
    } else if scale > 0.0 {
        scale.clamp(1.0, MAX_SCALE)
    } else if scale < 0.0 {
        scale.clamp(-MAX_SCALE, -1.0)
    } else {
        1.0
    }
}

/// Where a direct session's TS goes (the session's packer, in the server). `chunk` and `seeked`
/// are called with the reader locked: they must not call back into it.
pub trait ChunkSink: Send + Sync {
    /// Whole TS packets, in file order. `false`: the session is gone.
    fn chunk(&self, ts: &[u8]) -> bool;
    /// Play stopped at the end of the file (`None`) or on a read error.
    fn end(&self, error: Option<io::Error>);
    /// A seek moved the reader: what follows starts a new play period (called with the reader
    /// locked, so no chunk from before the seek comes after it).
    fn seeked(&self) {}
}

/// One direct session's reader.
pub struct Reader {
    file: TsFile,
    state: Mutex<State>,
    pacer: Weak<Inner>,
}

struct State {
    sink: Arc<dyn ChunkSink>,
    playing: bool,
    /// Next byte to send (in trick play: the last key frame sent).
    offset: u64,
    /// The PAT and PMT that go first (after a jump): after a seek with counters leading into
    /// the file (so a session's first packets are the file's own).
    psi: Option<Vec<u8>>,
    /// The PCR and the instant that anchor pacing (set by the first PCR after PLAY).
    anchor: Option<(u64, Instant)>,
    /// When the next chunk is due.
    due: Instant,
    /// The scale the next [`Reader::play`] applies.
    scale: f64,
    /// The play period is trick play.
    trick: Option<Trick>,
    /// The continuity counters the session sent.
    cc: Counters,
    /// Timestamps jump at the next PCR sent: its packet gets the discontinuity_indicator.
    jumped: bool,
    /// Normal play sent packets since the last jump: some PES may be open.
    open: bool,
    /// The NPT of what was sent last, ns.
    npt: u64,
    /// The key frame the last seek landed on, until play passes it (trick play starts there).
    landing: Option<Landing>,
}

/// A trick-play period.
struct Trick {
    scale: f64,
    /// How the first step is chosen.
    first: First,
    /// The key frame to send next, and when it is due (`None`: not chosen yet).
    next: Option<(Landing, Instant)>,
    /// The first step: when it was due, its NPT and its PCR (27 MHz).
    origin: Option<(Instant, u64, u64)>,
    /// The last key frame sent, when it was due, and the least wall time before the next.
    last: Option<(Landing, Instant, Duration)>,
}

#[derive(Clone, Copy)]
enum First {
    /// The key frame a seek landed on.
    At(Landing),
    /// The first key frame from an NPT in the play direction (forward: at or after it;
    /// reverse: at or before it).
    Near(u64),
    /// The key frame after this one in the play direction (trick play resumed).
    After(Landing),
}

/// The thread's buffers, shared by its sessions.
struct Scratch {
    buf: Vec<u8>,
    out: Vec<u8>,
}

impl Reader {
    /// A reader of `file` for `sink`, paused at the start, served by `pacer`.
    pub fn new(pacer: &Pacer, file: TsFile, sink: Arc<dyn ChunkSink>) -> io::Result<Arc<Reader>> {
        let psi = file.psi_leading_into(file.info.start)?;
        let r = Arc::new(Reader {
            state: Mutex::new(State {
                sink,
                playing: false,
                offset: file.info.start,
                psi: Some(psi),
                anchor: None,
                due: Instant::now(),
                scale: 1.0,
                trick: None,
                cc: Counters::default(),
                jumped: false,
                open: false,
                npt: 0,
                landing: None,
            }),
            file,
            pacer: Arc::downgrade(&pacer.0),
        });
        pacer.0.readers.lock().unwrap().push(Arc::downgrade(&r));
        Ok(r)
    }

    pub fn file(&self) -> &TsFile {
        &self.file
    }

    /// Moves to the random access point at or before `npt_ns`; returns where that is. Playing
    /// goes on from there at once (in trick play: from that key frame on).
    pub fn seek(&self, npt_ns: u64) -> io::Result<Landing> {
        let landing = self.file.seek(npt_ns)?;
        let psi = self.file.psi_leading_into(landing.offset)?;
        let mut st = self.state.lock().unwrap();
        self.leave(&mut st);
        st.sink.seeked();
        st.offset = landing.offset;
        st.psi = Some(psi);
        st.anchor = None;
        st.due = Instant::now();
        // The time line jumps if anything was sent before.
        st.jumped = !st.cc.is_empty();
        st.npt = landing.npt_ns;
        st.landing = Some(landing);
        if let Some(t) = &mut st.trick {
            *t = Trick::new(t.scale, First::At(landing));
        }
        drop(st);
        self.wake();
        Ok(landing)
    }

    /// Plays from the current position (after PAUSE: where it stopped) at the scale last set
    /// ([`Reader::set_scale`]). Trick play starts at the key frame of the last seek, else goes
    /// on after the last key frame it sent, else starts from the current position; normal play
    /// after trick play starts at the last key frame sent.
    pub fn play(&self) {
        let mut st = self.state.lock().unwrap();
        let was_trick = st.trick.is_some();
        let last_key = st.trick.take().and_then(|t| t.last).map(|(l, ..)| l);
        if st.scale != 1.0 {
            if !was_trick {
                self.leave(&mut st);
            }
            let first = match (st.landing, last_key) {
                (Some(l), _) => First::At(l),
                (None, Some(l)) => First::After(l),
                (None, None) => First::Near(st.npt),
            };
            st.trick = Some(Trick::new(st.scale, first));
        } else if let (None, Some(l)) = (st.landing, last_key) {
            self.leave(&mut st);
            st.offset = l.offset;
            st.npt = l.npt_ns;
            st.psi = Some(self.file.info.psi.clone());
            st.jumped = true;
            st.landing = Some(l);
        }
        st.playing = true;
        st.anchor = None;
        st.due = Instant::now();
        drop(st);
        self.wake();
    }

    /// Sets the trick-play scale the next [`Reader::play`] applies (RTSP `Scale`); returns the
    /// scale that will be applied: 1 is normal play; |scale| is clamped to [`MAX_SCALE`];
    /// 0 < scale < 1 (slow motion, which key frames cannot show) becomes 1 and -1 < scale < 0
    /// becomes -1; NaN becomes 1; a file without video plays at 1. At any other scale than 1
    /// the reader sends key frames only (see the module documentation).
    pub fn set_scale(&self, scale: f64) -> f64 {
        let applied = if self.file.info.video.is_some() {
            applied_scale(scale)
        } else {
            1.0
        };
        self.state.lock().unwrap().scale = applied;
        applied
    }

    /// The NPT (ns since the file's first video PTS, as [`TsFile::seek`] counts) of what was
    /// sent last: the last key frame in trick play, the PCR-derived position in normal play
    /// (not before the key frame play started at), the landing of the last seek before
    /// anything was sent.
    pub fn position_ns(&self) -> u64 {
        self.state.lock().unwrap().npt
    }

    pub fn pause(&self) {
        self.state.lock().unwrap().playing = false;
    }

    pub fn is_playing(&self) -> bool {
        self.state.lock().unwrap().playing
    }

    /// The position of the next byte to send (in trick play: of the last key frame sent).
    pub fn offset(&self) -> u64 {
        self.state.lock().unwrap().offset
    }

    fn wake(&self) {
        if let Some(p) = self.pacer.upgrade() {
            *p.kicked.lock().unwrap() = true;
            p.wake.notify_one();
        }
    }

    /// The PAT and PMT `psi`, counters continuing the session's, into `out`.
    fn put_psi(st: &mut State, psi: &[u8], out: &mut Vec<u8>) {
        let from = out.len();
        out.extend_from_slice(psi);
        for p in out[from..].chunks_exact_mut(PACKET_SIZE) {
            st.cc.inject(p);
        }
    }

    /// What follows comes from elsewhere in the file (called before the offset moves): the PES
    /// that normal play left open are finished now (each PID's packets from where it stopped
    /// up to its next PES start, so a client never gets a PES cut short or glued to one from
    /// elsewhere, and the old play period is whole before a seek's [`ChunkSink::seeked`]);
    /// then the counters jump (a PID's packets after a jump wait for its next PES start).
    fn leave(&self, st: &mut State) {
        if st.trick.is_none() && std::mem::take(&mut st.open) {
            let mut open = st.cc.pids();
            let mut buf = vec![0u8; CHUNK];
            let mut out = Vec::with_capacity(CHUNK);
            let from = st.offset;
            let mut off = from;
            while !open.is_empty() && off < from + TAIL {
                let Ok(n) = self.file.read_at(&mut buf, off) else {
                    break;
                };
                if n == 0 {
                    break;
                }
                out.clear();
                for p in buf[..n].chunks_exact_mut(PACKET_SIZE) {
                    let pid = pid_of(p);
                    if !open.contains(&pid) {
                        continue;
                    }
                    if pusi(p) {
                        open.retain(|q| *q != pid);
                    } else if st.cc.pass(p) {
                        out.extend_from_slice(p);
                    }
                }
                if !out.is_empty() && !st.sink.chunk(&out) {
                    st.playing = false;
                    break;
                }
                off += n as u64;
            }
        }
        st.cc.jump();
    }

    /// Stops play with `error` (`None`: the end).
    fn stop(&self, mut st: MutexGuard<State>, error: Option<io::Error>) -> Option<Instant> {
        st.playing = false;
        let sink = st.sink.clone();
        drop(st);
        sink.end(error);
        None
    }

    /// The pacer's work on this reader at `now`: sends what is due; returns when to look again
    /// (`None`: not playing).
    fn serve(&self, now: Instant, scratch: &mut Scratch) -> Option<Instant> {
        let mut st = self.state.lock().unwrap();
        if st.trick.is_some() {
            return self.serve_trick(st, now, scratch);
        }
        let pcr_pid = self.file.info.pcr_pid;
        // At most a few chunks per visit, so one session cannot hold up the others.
        for _ in 0..16 {
            if !st.playing {
                return None;
            }
            if st.due > now + LEAD {
                return Some(st.due - LEAD);
            }
            if let Some(psi) = st.psi.take() {
                scratch.out.clear();
                Self::put_psi(&mut st, &psi, &mut scratch.out);
                if !scratch.out.is_empty() && !st.sink.chunk(&scratch.out) {
                    st.playing = false;
                    return None;
                }
            }
            let buf = &mut scratch.buf;
            let n = match self.file.read_at(buf, st.offset) {
                Ok(0) => return self.stop(st, None),
                Ok(n) => n,
                Err(e) => return self.stop(st, Some(e)),
            };
            // Counters continued; after a jump, a PID's packets before its next PES start
            // dropped (the kept packets move up).
            let mut kept = 0;
            for i in 0..n / PACKET_SIZE {
                let at = i * PACKET_SIZE;
                let p = &mut buf[at..at + PACKET_SIZE];
                if !st.cc.pass(p) {
                    continue;
                }
                if st.jumped && pid_of(p) == pcr_pid && trick::mark_discontinuity(p) {
                    st.jumped = false;
                }
                buf.copy_within(at..at + PACKET_SIZE, kept);
                kept += PACKET_SIZE;
            }
            st.offset += n as u64;
            st.landing = None;
            st.open = true;
            if kept > 0 && !st.sink.chunk(&buf[..kept]) {
                st.playing = false;
                return None;
            }
            if let Some(pcr) = last_pcr(&buf[..kept], pcr_pid) {
                st.npt = st.npt.max(self.file.npt_of_pcr(pcr));
                let (base, at) = *st.anchor.get_or_insert((pcr, now));
                let since = pcr_since(pcr, base);
                // A PCR far off (a discontinuity in the file) re-anchors.
                if since > PCR_HZ * 10 {
                    st.anchor = Some((pcr, now));
                    st.due = now;
                } else {
                    st.due = at + Duration::from_nanos(ticks_to_ns(since));
                }
            }
        }
        Some(st.due.checked_sub(LEAD).unwrap_or(st.due).max(now))
    }

    /// [`Reader::serve`] in trick play.
    fn serve_trick(
        &self,
        mut st: MutexGuard<State>,
        now: Instant,
        scratch: &mut Scratch,
    ) -> Option<Instant> {
        for _ in 0..4 {
            if !st.playing {
                return None;
            }
            let t = st.trick.as_mut().expect("trick play");
            let (key, due) = match t.next {
                Some(next) => next,
                None => match self.choose(t) {
                    Ok(Some(l)) => {
                        let next = (l, t.due_of(&l, now));
                        t.next = Some(next);
                        next
                    }
                    Ok(None) => return self.trick_end(st),
                    Err(e) => return self.stop(st, Some(e)),
                },
            };
            if due > now + LEAD {
                return Some(due - LEAD);
            }
            t.next = None;
            match self.send_step(&mut st, key, due, scratch) {
                Ok(true) => {}
                Ok(false) => {
                    st.playing = false;
                    return None;
                }
                Err(e) => return self.stop(st, Some(e)),
            }
        }
        Some(now)
    }

    /// The key frame trick play sends next (`None`: none is left in the play direction).
    fn choose(&self, t: &Trick) -> io::Result<Option<Landing>> {
        let f = &self.file;
        let forward = t.scale > 0.0;
        // The key frame before `l` (reverse).
        let before = |l: &Landing| -> io::Result<Option<Landing>> {
            if l.npt_ns == 0 {
                return Ok(None);
            }
            let c = f.seek(l.npt_ns - 1)?;
            Ok((c.offset < l.offset).then_some(c))
        };
        let Some((last, due, gap)) = t.last else {
            return match t.first {
                First::At(l) => Ok(Some(l)),
                First::Near(npt) => {
                    let l = f.seek(npt)?;
                    if forward && l.npt_ns < npt {
                        f.key_frame_after(l.offset)
                    } else {
                        Ok(Some(l))
                    }
                }
                First::After(l) if forward => f.key_frame_after(l.offset),
                First::After(l) => before(&l),
            };
        };
        // Where the media should be when the next step may go at the earliest.
        let (w0, p0, _) = t.origin.expect("a step was sent");
        let wall = (due + gap).saturating_duration_since(w0);
        let media = (wall.as_nanos() as f64 * t.scale.abs()) as u64;
        if forward {
            let c = f.seek(p0 + media)?;
            if c.offset > last.offset && c.npt_ns > last.npt_ns {
                Ok(Some(c))
            } else {
                f.key_frame_after(last.offset)
            }
        } else {
            let c = f.seek(p0.saturating_sub(media))?;
            if c.offset < last.offset && c.npt_ns < last.npt_ns {
                Ok(Some(c))
            } else {
                before(&last)
            }
        }
    }

    /// Sends one trick-play step: the PAT and PMT, a PCR packet, the key frame at `key` (its
    /// timestamps shifted onto the period's 1× time line). `false`: the session is gone.
    fn send_step(
        &self,
        st: &mut State,
        key: Landing,
        due: Instant,
        scratch: &mut Scratch,
    ) -> io::Result<bool> {
        let info = &self.file.info;
        let video = info.video.map(|(pid, _)| pid).unwrap_or(info.pcr_pid);
        let Scratch { buf, out } = scratch;
        // The key frame's own PCR: the first on the PCR PID among its packets in the first
        // chunk; else one PTS_LEAD_TICKS before its PTS.
        let n = self.file.read_at(buf, key.offset)?;
        let own = buf[..n]
            .chunks_exact(PACKET_SIZE)
            .filter(|p| pid_of(p) == video)
            .enumerate()
            .take_while(|(i, p)| *i == 0 || !pusi(p))
            .filter(|(_, p)| pid_of(p) == info.pcr_pid)
            .find_map(|(_, p)| trick::pcr(p));
        let reference = own.unwrap_or_else(|| {
            let pts = (info.first_pts + key.npt_ns * 9 / 100_000) % (1 << 33);
            (pts * 300 + PCR_WRAP - PTS_LEAD_TICKS) % PCR_WRAP
        });
        let t = st.trick.as_mut().expect("trick play");
        let first = t.origin.is_none();
        let (w0, _, o0) = *t.origin.get_or_insert((due, key.npt_ns, reference));
        let o = (o0 + trick::wall_ticks(due.saturating_duration_since(w0))) % PCR_WRAP;
        let delta = (o + PCR_WRAP - reference) % PCR_WRAP;
        let delta = delta - delta % 300;
        let step_pcr = (reference + delta) % PCR_WRAP;
        st.cc.jump();
        out.clear();
        Self::put_psi(st, &info.psi, out);
        let mut pcr = trick::pcr_packet(info.pcr_pid, step_pcr, first);
        st.cc.inject(&mut pcr);
        out.extend_from_slice(&pcr);
        let mut last_pcr = step_pcr;
        let (mut off, mut started) = (key.offset, false);
        'frame: while off < key.offset + MAX_FRAME {
            let n = self.file.read_at(buf, off)?;
            if n == 0 {
                break;
            }
            for p in buf[..n].chunks_exact_mut(PACKET_SIZE) {
                if pid_of(p) != video {
                    continue;
                }
                if started && pusi(p) {
                    break 'frame;
                }
                started = true;
                trick::shift_pes_timestamps(p, delta / 300);
                if let Some(v) = trick::shift_pcr(p, delta) {
                    last_pcr = v;
                }
                if !st.cc.pass(p) {
                    continue;
                }
                out.extend_from_slice(p);
                if out.len() >= CHUNK {
                    if !st.sink.chunk(out) {
                        return Ok(false);
                    }
                    out.clear();
                }
            }
            off += n as u64;
        }
        if !out.is_empty() && !st.sink.chunk(out) {
            return Ok(false);
        }
        let span = Duration::from_nanos(ticks_to_ns(pcr_since(last_pcr, step_pcr)));
        let gap = MIN_STEP.max(span + Duration::from_millis(1));
        let t = st.trick.as_mut().expect("trick play");
        t.last = Some((key, due, gap));
        st.offset = key.offset;
        st.npt = key.npt_ns;
        st.landing = None;
        st.jumped = false;
        Ok(true)
    }

    /// Trick play found no key frame left: play ends, paused at the end of the file (forward)
    /// or at its start (reverse).
    fn trick_end(&self, mut st: MutexGuard<State>) -> Option<Instant> {
        let t = st.trick.take().expect("trick play");
        st.landing = None;
        if t.scale > 0.0 {
            st.offset = self.file.info.end;
            st.npt = st.npt.max(self.file.info.duration_ns());
            st.psi = None;
        } else {
            self.leave(&mut st);
            st.offset = self.file.info.start;
            st.npt = 0;
            st.psi = Some(self.file.info.psi.clone());
            st.jumped = true;
        }
        self.stop(st, None)
    }
}

impl Trick {
    fn new(scale: f64, first: First) -> Trick {
        Trick {
            scale,
            first,
            next: None,
            origin: None,
            last: None,
        }
    }

    /// When the step of key frame `l` is due: |scale| media seconds per wall second since
    /// the first step, and not before the last step's gap has passed.
    fn due_of(&self, l: &Landing, now: Instant) -> Instant {
        match (self.origin, self.last) {
            (Some((w0, p0, _)), Some((_, due, gap))) => {
                let wall = l.npt_ns.abs_diff(p0) as f64 / self.scale.abs();
                (w0 + Duration::from_nanos(wall as u64)).max(due + gap)
            }
            _ => now,
        }
    }
}

/// The pacing thread of a server's direct VOD sessions (started with the first reader, ended
/// once the last handle is gone).
#[derive(Clone)]
pub struct Pacer(Arc<Inner>);

struct Inner {
    readers: Mutex<Vec<Weak<Reader>>>,
    wake: Condvar,
    /// Set by [`Reader::wake`] (a seek or PLAY), cleared by the thread before it looks.
    kicked: Mutex<bool>,
}

impl Default for Pacer {
    fn default() -> Self {
        Self::new()
    }
}

impl Pacer {
    pub fn new() -> Pacer {
        let inner = Arc::new(Inner {
            readers: Mutex::new(Vec::new()),
            wake: Condvar::new(),
            kicked: Mutex::new(false),
        });
        let weak = Arc::downgrade(&inner);
        std::thread::Builder::new()
            .name("vod-pacer".into())
            .spawn(move || run(weak))
            .expect("spawn the VOD pacing thread");
        Pacer(inner)
    }

    /// Live readers.
    pub fn len(&self) -> usize {
        self.0
            .readers
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.strong_count() > 0)
            .count()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn run(inner: Weak<Inner>) {
    let mut scratch = Scratch {
        buf: vec![0u8; CHUNK],
        out: Vec::with_capacity(2 * CHUNK),
    };
    loop {
        let Some(inner) = inner.upgrade() else {
            return;
        };
        *inner.kicked.lock().unwrap() = false;
        let live: Vec<Arc<Reader>> = {
            let mut all = inner.readers.lock().unwrap();
            all.retain(|w| w.strong_count() > 0);
            all.iter().filter_map(Weak::upgrade).collect()
        };
        let now = Instant::now();
        let mut next = now + IDLE_WAIT;
        for r in &live {
            if let Some(at) = r.serve(now, &mut scratch) {
                next = next.min(at);
            }
        }
        drop(live);
        let wait = next.saturating_duration_since(Instant::now());
        let kicked = inner.kicked.lock().unwrap();
        if !wait.is_zero() && !*kicked {
            let _ = inner.wake.wait_timeout(kicked, wait);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gstdvb2ip::proto::ts::PACKET_SIZE;

    /// Keeps what a reader hands over.
    #[derive(Default)]
    struct Keep {
        got: Mutex<Vec<u8>>,
        ended: Mutex<Option<Option<io::ErrorKind>>>,
        done: Condvar,
    }

    impl ChunkSink for Keep {
        fn chunk(&self, ts: &[u8]) -> bool {
            self.got.lock().unwrap().extend_from_slice(ts);
            true
        }
        fn end(&self, error: Option<io::Error>) {
            *self.ended.lock().unwrap() = Some(error.map(|e| e.kind()));
            self.done.notify_all();
        }
        fn seeked(&self) {
            self.got.lock().unwrap().clear();
        }
    }

    impl Keep {
        /// Waits (bounded) for the end of play.
        fn wait_end(&self) -> Option<Option<io::ErrorKind>> {
            let g = self.ended.lock().unwrap();
            let (g, _) = self
                .done
                .wait_timeout_while(g, Duration::from_secs(10), |e| e.is_none())
                .unwrap();
            *g
        }
    }

    #[test]
    fn after_a_seek_the_psi_then_the_file_from_the_key_frame_to_the_end() {
        let path = super::super::ts_file::tests::file("pacer");
        let file = TsFile::open(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        let (psi_len, end) = (file.info.psi.len(), file.info.end);
        let whole = {
            let mut b = vec![0u8; end as usize];
            let n = file.read_at(&mut b, 0).unwrap();
            b.truncate(n);
            b
        };
        let pacer = Pacer::new();
        let sink = Arc::new(Keep::default());
        let r = Reader::new(&pacer, file, sink.clone()).unwrap();
        assert_eq!(pacer.len(), 1);
        // The last key frame of the 20 s file is at 19 s: about a second of play.
        let l = r.seek(19_500_000_000).unwrap();
        assert_eq!(l.npt_ns, 19_000_000_000);
        r.play();
        assert_eq!(sink.wait_end(), Some(None), "end of file reached");
        assert!(!r.is_playing());
        assert_eq!(r.offset(), end);
        let got = sink.got.lock().unwrap();
        let pid = |p: &[u8]| (u16::from(p[1] & 0x1F) << 8) | u16::from(p[2]);
        let head: Vec<u16> = got[..psi_len].chunks_exact(PACKET_SIZE).map(pid).collect();
        assert_eq!(head, [0, 0x1000], "PAT and PMT first");
        assert_eq!(
            &got[psi_len..],
            &whole[l.offset as usize..],
            "then the file"
        );
        drop(got);
        drop(r);
        // The pacing thread lets its last handle go after its current pass (bounded wait).
        let until = Instant::now() + Duration::from_secs(10);
        while !pacer.is_empty() && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(pacer.is_empty(), "a dropped reader leaves the pacer");
    }

    #[test]
    fn a_reader_reads_nothing_before_play_and_plays_on_after_pause() {
        let path = super::super::ts_file::tests::file("pause");
        let file = TsFile::open(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        let end = file.info.end;
        let pacer = Pacer::new();
        let sink = Arc::new(Keep::default());
        let r = Reader::new(&pacer, file, sink.clone()).unwrap();
        let l = r.seek(18_000_000_000).unwrap();
        assert_eq!(r.offset(), l.offset, "nothing read before PLAY");
        r.play();
        r.pause();
        assert!(!r.is_playing());
        r.play();
        assert_eq!(sink.wait_end(), Some(None));
        assert_eq!(r.offset(), end);
    }
}
