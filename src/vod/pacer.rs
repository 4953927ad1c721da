//! The pacing thread of the direct VOD path: one thread for every direct session of a server,
//! reading each playing session's file in chunks of whole TS packets and handing them to the
//! session's sink when the file's PCR says they are due (wall clock since the session's last
//! PLAY). A session costs its open file, its position and a few words of state: no pipeline, no
//! queue, no thread; the chunk buffer is the thread's.
//!
//! After a seek ([`Reader::seek`]) a session starts with the file's PAT and PMT, then the
//! random access point [`TsFile::seek`] found, at once; the end of the file or a read error
//! ends its play ([`ChunkSink::end`]) and leaves it paused where it stopped.

use std::io;
use std::sync::{Arc, Condvar, Mutex, Weak};
use std::time::{Duration, Instant};

use super::ts_file::{last_pcr, pcr_since, ticks_to_ns, Landing, TsFile};

/// Bytes handed over per chunk: 8 RTP packets of 7 TS packets (~4 ms at 20 Mbit/s).
pub const CHUNK: usize = 8 * 7 * 188;
/// How far ahead of its PCR a session's data may leave (the client's jitter buffer absorbs it;
/// it also lets a seek's first frames arrive in a burst).
const LEAD: Duration = Duration::from_millis(40);
/// The thread looks at its sessions at least this often.
const IDLE_WAIT: Duration = Duration::from_millis(100);

/// The largest |scale| trick play applies.
pub const MAX_SCALE: f64 = 16.0;

/// The scale [`Reader::set_scale`] applies for a requested one.
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
    /// Next byte to send.
    offset: u64,
    /// The PAT and PMT that go first (after a seek), with counters leading into the file.
    psi: Option<Vec<u8>>,
    /// The PCR and the instant that anchor pacing (set by the first PCR after PLAY).
    anchor: Option<(u64, Instant)>,
    /// When the next chunk is due.
    due: Instant,
    /// The scale the next [`Reader::play`] applies.
    scale: f64,
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
    /// goes on from there at once.
    pub fn seek(&self, npt_ns: u64) -> io::Result<Landing> {
        let landing = self.file.seek(npt_ns)?;
        let psi = self.file.psi_leading_into(landing.offset)?;
        let mut st = self.state.lock().unwrap();
        st.sink.seeked();
        st.offset = landing.offset;
        st.psi = Some(psi);
        st.anchor = None;
        st.due = Instant::now();
        drop(st);
        self.wake();
        Ok(landing)
    }

    /// Plays from the current position (after PAUSE: where it stopped).
    pub fn play(&self) {
        let mut st = self.state.lock().unwrap();
        st.playing = true;
        st.anchor = None;
        st.due = Instant::now();
        drop(st);
        self.wake();
    }

    /// Sets the trick-play scale the next [`Reader::play`] applies (RTSP `Scale`); returns the
    /// scale that will be applied: 1 is normal play; |scale| is clamped to [`MAX_SCALE`];
    /// 0 < scale < 1 (slow motion, which key frames cannot show) becomes 1 and -1 < scale < 0
    /// becomes -1; NaN becomes 1. At any other scale than 1 the reader sends key frames only
    /// (see the module documentation).
    pub fn set_scale(&self, scale: f64) -> f64 {
        let applied = applied_scale(scale);
        self.state.lock().unwrap().scale = applied;
        applied
    }

    /// The NPT (ns since the file's first video PTS, as [`TsFile::seek`] counts) of what was
    /// sent last: the last key frame in trick play, the PCR-derived position in normal play,
    /// the landing of the last seek before anything was sent.
    pub fn position_ns(&self) -> u64 {
        let st = self.state.lock().unwrap();
        st.anchor
            .map(|(pcr, _)| self.file.npt_of_pcr(pcr))
            .unwrap_or(0)
    }

    pub fn pause(&self) {
        self.state.lock().unwrap().playing = false;
    }

    pub fn is_playing(&self) -> bool {
        self.state.lock().unwrap().playing
    }

    /// The position of the next byte to send.
    pub fn offset(&self) -> u64 {
        self.state.lock().unwrap().offset
    }

    fn wake(&self) {
        if let Some(p) = self.pacer.upgrade() {
            *p.kicked.lock().unwrap() = true;
            p.wake.notify_one();
        }
    }

    /// The pacer's work on this reader at `now`: sends what is due; returns when to look again
    /// (`None`: not playing).
    fn serve(&self, now: Instant, buf: &mut [u8]) -> Option<Instant> {
        let mut st = self.state.lock().unwrap();
        // At most a few chunks per visit, so one session cannot hold up the others.
        for _ in 0..16 {
            if !st.playing {
                return None;
            }
            if st.due > now + LEAD {
                return Some(st.due - LEAD);
            }
            if let Some(psi) = st.psi.take() {
                if !psi.is_empty() && !st.sink.chunk(&psi) {
                    st.playing = false;
                    return None;
                }
            }
            let n = match self.file.read_at(buf, st.offset) {
                Ok(0) => {
                    st.playing = false;
                    let sink = st.sink.clone();
                    drop(st);
                    sink.end(None);
                    return None;
                }
                Ok(n) => n,
                Err(e) => {
                    st.playing = false;
                    let sink = st.sink.clone();
                    drop(st);
                    sink.end(Some(e));
                    return None;
                }
            };
            st.offset += n as u64;
            if !st.sink.chunk(&buf[..n]) {
                st.playing = false;
                return None;
            }
            if let Some(pcr) = last_pcr(&buf[..n], self.file.info.pcr_pid) {
                let (base, at) = *st.anchor.get_or_insert((pcr, now));
                let since = pcr_since(pcr, base);
                // A PCR far off (a discontinuity in the file) re-anchors.
                if since > super::ts_file::PCR_HZ * 10 {
                    st.anchor = Some((pcr, now));
                    st.due = now;
                } else {
                    st.due = at + Duration::from_nanos(ticks_to_ns(since));
                }
            }
        }
        Some(st.due.checked_sub(LEAD).unwrap_or(st.due).max(now))
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
    let mut buf = vec![0u8; CHUNK];
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
            if let Some(at) = r.serve(now, &mut buf) {
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
