//! A relay: one upstream pull shared by every reader of the relay's mount (RTSP and HTTP),
//! started by the first reader (or at start with `on_demand = false`), closed `close_after`
//! the last reader left, re-pulled with backoff when it drops while readers remain.
//!
//! One supervisor thread per relay owns the pull ([`super::pull::Pull`]): readers, the pull's
//! first data and its errors only change the relay's state and wake the supervisor, which
//! starts and stops pulls outside every lock. The TS goes from the pull's streaming thread
//! through [`Relay::ingest`] to the readers' [`Out`]s, each new reader first getting PAT, PMT
//! and the packets since the last random access point ([`super::ts::TsCache`]).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;

use super::config::{RelaySection, Upstream};
use super::pull::Pull;
use super::ts::{Aligner, TsCache};
use super::CAT;

/// Longest wait between two pulls of a relay that keeps failing while readers remain.
pub const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// What a reader receives the relay's TS through, in the pull's streaming thread: it must not
/// block. Returns false when the reader cannot take more (gone, or too slow): it then gets
/// nothing more (an HTTP stream ends; its handle still counts until dropped).
pub trait Out: Send + Sync + 'static {
    fn push(&self, ts: &[u8]) -> bool;
}

/// The state a relay reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    /// No pull (no reader, on demand).
    Idle,
    /// A pull started and has delivered nothing yet.
    Starting,
    /// The pull delivers.
    Live,
    /// The last reader left; the pull ends after `close_after`.
    Closing,
    /// The last pull failed; the next one is due after the backoff.
    Failed,
}

/// A relay's report (`GET /api/relays`; the web UI and metrics read it through the core).
#[derive(Debug, Clone, Serialize)]
pub struct RelayStatus {
    pub name: String,
    pub mount: String,
    pub source: String,
    pub on_demand: bool,
    pub state: Phase,
    /// Readers attached now (RTSP media and HTTP streams).
    pub readers: usize,
    /// Requests waiting for the pull to start.
    pub waiting: usize,
    /// Pull start → first data of the last start that went live, milliseconds.
    pub start_latency_ms: Option<u64>,
    pub bytes_in: u64,
    pub bytes_out: u64,
    /// Pulls started, pulls ended on purpose (no reader left), pulls failed (could not start,
    /// or dropped).
    pub starts: u64,
    pub stops: u64,
    pub failures: u64,
    /// Why the last pull failed.
    pub last_error: Option<String>,
    /// Started by an operator and not stopped since (pulled without readers).
    pub held: bool,
}

/// Why a reader could not be attached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unavailable {
    pub cause: String,
    /// Seconds until the next attempt (for `Retry-After`).
    pub retry_after: u64,
}

#[derive(Default)]
struct State {
    phase: Option<Phase>,
    readers: usize,
    waiting: usize,
    generation: u64,
    /// The pull delivered its first data (generation).
    live_gen: Option<u64>,
    /// The pull failed (generation, cause).
    failed_gen: Option<(u64, String)>,
    started_at: Option<Instant>,
    close_at: Option<Instant>,
    retry_at: Option<Instant>,
    failures_in_row: u32,
    /// Started by an operator (`POST /api/relays/<name>/start`): pulled without readers until
    /// stopped.
    held: bool,
    /// Failures so far (waiters compare it to learn that the start they wait for failed).
    failures: u64,
    starts: u64,
    stops: u64,
    start_latency: Option<Duration>,
    last_error: Option<String>,
    shutdown: bool,
}

impl State {
    fn phase(&self) -> Phase {
        self.phase.unwrap_or(Phase::Idle)
    }
}

struct Reader {
    id: u64,
    out: Arc<dyn Out>,
    /// Waits for the next random access point before it gets anything.
    waiting_rap: bool,
}

#[derive(Default)]
struct Data {
    generation: u64,
    aligner: Aligner,
    cache: TsCache,
    readers: Vec<Reader>,
    next_id: u64,
    /// Whole TS packets received and not yet fanned out (see [`FANOUT_BYTES`]), the offset of
    /// the first random access point among them, and when the oldest arrived.
    pending: Vec<u8>,
    pending_rap: Option<usize>,
    pending_since: Option<Instant>,
}

/// The readers get the TS in chunks of at least this many bytes (40 RTP packets' worth, within
/// one segmented send's 48) or [`FANOUT_DELAY`] after the oldest byte arrived: an RTSP
/// upstream delivers one RTP packet (7 TS packets) at a time, and handing each to every reader
/// cost a send per reader per packet (200 readers of a 20 Mbit/s relay could not keep up); a
/// chunk leaves each direct reader in one segmented send. The send per reader per chunk is
/// what a relay's readers cost (`dvb2ip-bench relay`): 20 ms chunks halve it against 10 ms
/// ones, for 10 ms more delay behind the upstream.
const FANOUT_BYTES: usize = 40 * 7 * super::ts::PACKET;
/// See [`FANOUT_BYTES`]: the most a chunk waits (checked when data arrives).
const FANOUT_DELAY: Duration = Duration::from_millis(20);

/// One `[[relay]]`.
pub struct Relay {
    cfg: RelaySection,
    upstream: Upstream,
    state: Mutex<State>,
    cond: Condvar,
    data: Mutex<Data>,
    bytes_in: AtomicU64,
    bytes_out: AtomicU64,
}

/// A reader attached to a relay; dropping it detaches it (the last one starts the close).
pub struct ReaderHandle {
    relay: Arc<Relay>,
    id: u64,
}

impl Drop for ReaderHandle {
    fn drop(&mut self) {
        self.relay.detach(self.id);
    }
}

impl ReaderHandle {
    /// The relay read.
    pub fn relay(&self) -> &Arc<Relay> {
        &self.relay
    }
}

impl std::fmt::Debug for ReaderHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ReaderHandle({}#{})", self.relay.name(), self.id)
    }
}

impl Relay {
    fn new(cfg: RelaySection) -> Result<Arc<Relay>, String> {
        let upstream = cfg.upstream()?;
        Ok(Arc::new(Relay {
            cfg,
            upstream,
            state: Mutex::default(),
            cond: Condvar::new(),
            data: Mutex::default(),
            bytes_in: AtomicU64::new(0),
            bytes_out: AtomicU64::new(0),
        }))
    }

    pub fn name(&self) -> &str {
        &self.cfg.name
    }

    pub fn config(&self) -> &RelaySection {
        &self.cfg
    }

    pub fn upstream(&self) -> Upstream {
        self.upstream.clone()
    }

    /// Attaches a reader: starts the pull if needed and waits (at most `start_timeout`) until
    /// it delivers; a pending close is cancelled. `Err` when the upstream cannot start.
    pub fn attach(self: &Arc<Self>, out: Arc<dyn Out>) -> Result<ReaderHandle, Unavailable> {
        let timeout = self.cfg.start_timeout();
        let deadline = Instant::now() + timeout;
        let mut st = self.state.lock().unwrap();
        if st.phase() == Phase::Failed {
            if let Some(at) = st
                .retry_at
                .filter(|at| *at > Instant::now() && st.readers == 0)
            {
                return Err(Unavailable {
                    cause: st.last_error.clone().unwrap_or_default(),
                    retry_after: secs_ceil(at - Instant::now()),
                });
            }
        }
        let failures = st.failures;
        st.waiting += 1;
        self.cond.notify_all();
        let result = loop {
            if st.shutdown {
                break Err(Unavailable {
                    cause: "the server is shutting down".into(),
                    retry_after: 1,
                });
            }
            if matches!(st.phase(), Phase::Live | Phase::Closing) {
                break Ok(());
            }
            if st.failures != failures {
                break Err(Unavailable {
                    cause: st.last_error.clone().unwrap_or_default(),
                    retry_after: st.retry_at.map_or(1, |at| {
                        secs_ceil(at.saturating_duration_since(Instant::now()))
                    }),
                });
            }
            let now = Instant::now();
            if now >= deadline {
                break Err(Unavailable {
                    cause: format!(
                        "no data from {} within start_timeout ({:.1} s)",
                        self.cfg.source,
                        timeout.as_secs_f64()
                    ),
                    retry_after: 1,
                });
            }
            st = self.cond.wait_timeout(st, deadline - now).unwrap().0;
        };
        st.waiting -= 1;
        if result.is_ok() {
            st.readers += 1;
            if st.phase() == Phase::Closing {
                st.phase = Some(Phase::Live);
                st.close_at = None;
                gst::info!(
                    CAT,
                    "relay {}: close cancelled by a new reader",
                    self.name()
                );
            }
        }
        self.cond.notify_all();
        drop(st);
        if let Err(e) = &result {
            gst::warning!(
                CAT,
                "relay {}: cannot serve a reader: {}",
                self.name(),
                e.cause
            );
            return Err(e.clone());
        }
        let id = self.subscribe(out);
        Ok(ReaderHandle {
            relay: self.clone(),
            id,
        })
    }

    /// Attaches a reader without waiting for the pull (a reader that already holds one,
    /// moving to another path): it counts at once (a pending close is cancelled) and gets
    /// data from PAT, PMT and a random access point as [`Relay::attach`]'s does.
    pub fn attach_now(self: &Arc<Self>, out: Arc<dyn Out>) -> ReaderHandle {
        let mut st = self.state.lock().unwrap();
        st.readers += 1;
        if st.phase() == Phase::Closing {
            st.phase = Some(Phase::Live);
            st.close_at = None;
        }
        self.cond.notify_all();
        drop(st);
        let id = self.subscribe(out);
        ReaderHandle {
            relay: self.clone(),
            id,
        }
    }

    /// Enters `out` among the receivers of the TS: what it needs to decode at once goes out
    /// now, or from the next random access point.
    fn subscribe(&self, out: Arc<dyn Out>) -> u64 {
        let mut d = self.data.lock().unwrap();
        d.next_id += 1;
        let id = d.next_id;
        // What is pending is in the cache already: the others get it first, so the newcomer
        // gets each packet once (from the cache) and then what arrives next.
        self.fan_out(&mut d);
        let first = d.cache.join();
        // Pushed under the data lock, as `ingest` does: the reader gets every later packet
        // after these, in order.
        if let Some(first) = &first {
            self.bytes_out
                .fetch_add(first.len() as u64, Ordering::Relaxed);
            if !out.push(first) {
                return id;
            }
        }
        d.readers.push(Reader {
            id,
            out,
            waiting_rap: first.is_none(),
        });
        id
    }

    fn detach(&self, id: u64) {
        self.data.lock().unwrap().readers.retain(|r| r.id != id);
        let mut st = self.state.lock().unwrap();
        st.readers = st.readers.saturating_sub(1);
        if st.readers == 0 {
            gst::info!(CAT, "relay {}: last reader left", self.name());
        }
        self.cond.notify_all();
    }

    /// TS from pull `generation` (bytes, or one datagram when `datagram`).
    pub fn ingest(&self, generation: u64, bytes: &[u8], datagram: bool) {
        self.bytes_in
            .fetch_add(bytes.len() as u64, Ordering::Relaxed);
        let mut batch = Vec::with_capacity(bytes.len());
        {
            let mut d = self.data.lock().unwrap();
            if d.generation != generation {
                return;
            }
            if datagram {
                d.aligner.push_datagram(bytes, &mut batch);
            } else {
                d.aligner.push(bytes, &mut batch);
            }
            if batch.is_empty() {
                return;
            }
            let base = d.pending.len();
            for (i, p) in batch.chunks(super::ts::PACKET).enumerate() {
                if d.cache.packet(p) && d.pending_rap.is_none() {
                    d.pending_rap = Some(base + i * super::ts::PACKET);
                }
            }
            let now = Instant::now();
            let since = *d.pending_since.get_or_insert(now);
            d.pending.extend_from_slice(&batch);
            if d.pending.len() >= FANOUT_BYTES || now.duration_since(since) >= FANOUT_DELAY {
                self.fan_out(&mut d);
            }
        }
        let mut st = self.state.lock().unwrap();
        if st.live_gen != Some(generation) && st.generation == generation {
            st.live_gen = Some(generation);
            self.cond.notify_all();
        }
    }

    /// Hands what is pending to every reader (a reader waiting for a random access point gets
    /// PAT, PMT and the packets from the first one, if there is one).
    fn fan_out(&self, d: &mut Data) {
        let batch = std::mem::take(&mut d.pending);
        let first_rap = d.pending_rap.take();
        d.pending_since = None;
        if batch.is_empty() {
            d.pending = batch;
            return;
        }
        let psi = d.cache.psi();
        let mut outs: Vec<(Arc<dyn Out>, Vec<u8>)> = Vec::new();
        for r in &mut d.readers {
            if !r.waiting_rap {
                outs.push((r.out.clone(), Vec::new()));
            } else if let (Some(at), Some(psi)) = (first_rap, psi.as_ref()) {
                r.waiting_rap = false;
                let psi = super::ts::primed(psi, &batch[at..]);
                outs.push((r.out.clone(), [psi.as_slice(), &batch[at..]].concat()));
            }
        }
        // Pushed under the data lock: a reader joining sees every packet exactly once, in
        // order. `Out::push` never blocks (it queues or drops).
        let mut gone = Vec::new();
        for (out, own) in &outs {
            let bytes: &[u8] = if own.is_empty() { &batch } else { own };
            self.bytes_out
                .fetch_add(bytes.len() as u64, Ordering::Relaxed);
            if !out.push(bytes) {
                gst::info!(CAT, "relay {}: a reader is gone or too slow", self.cfg.name);
                gone.push(Arc::as_ptr(out));
            }
        }
        if !gone.is_empty() {
            d.readers.retain(|r| {
                !gone
                    .iter()
                    .any(|g| std::ptr::addr_eq(*g, Arc::as_ptr(&r.out)))
            });
        }
        // The buffer's allocation is kept for the next chunk.
        let mut batch = batch;
        batch.clear();
        d.pending = batch;
    }

    /// The pull of `generation` failed or ended.
    pub fn pull_failed(&self, generation: u64, why: String) {
        let mut st = self.state.lock().unwrap();
        if st.generation == generation && st.failed_gen.is_none() {
            st.failed_gen = Some((generation, why));
            self.cond.notify_all();
        }
    }

    /// An operator's start (`true`: the pull starts now and stays up without readers) or stop
    /// (`false`: no longer held; without readers the pull closes now, not after
    /// `close_after`; readers, and `on_demand = false`, still keep it).
    pub fn hold(&self, on: bool) {
        let mut st = self.state.lock().unwrap();
        st.held = on;
        if !on && st.readers == 0 && st.waiting == 0 && self.cfg.on_demand {
            match st.phase() {
                Phase::Live => {
                    st.phase = Some(Phase::Closing);
                    st.close_at = Some(Instant::now());
                }
                Phase::Closing => st.close_at = Some(Instant::now()),
                _ => {}
            }
        }
        gst::info!(
            CAT,
            "relay {}: {} by an operator",
            self.name(),
            if on { "started" } else { "stopped" }
        );
        self.cond.notify_all();
    }

    /// Readers attached now.
    pub fn readers(&self) -> usize {
        self.state.lock().unwrap().readers
    }

    pub fn status(&self) -> RelayStatus {
        let st = self.state.lock().unwrap();
        RelayStatus {
            name: self.cfg.name.clone(),
            mount: self.cfg.mount_path(),
            source: self.cfg.source.clone(),
            on_demand: self.cfg.on_demand,
            state: st.phase(),
            readers: st.readers,
            waiting: st.waiting,
            start_latency_ms: st.start_latency.map(|d| d.as_millis() as u64),
            bytes_in: self.bytes_in.load(Ordering::Relaxed),
            bytes_out: self.bytes_out.load(Ordering::Relaxed),
            starts: st.starts,
            stops: st.stops,
            failures: st.failures,
            last_error: st.last_error.clone(),
            held: st.held,
        }
    }

    /// The supervisor: starts, keeps and stops the pull (module comment).
    fn supervise(self: Arc<Self>) {
        let mut pull: Option<Pull> = None;
        let mut st = self.state.lock().unwrap();
        loop {
            let now = Instant::now();
            if st.shutdown {
                drop(st);
                drop(pull.take());
                return;
            }
            let wanted = !self.cfg.on_demand || st.held || st.readers > 0 || st.waiting > 0;
            let mut stop = false;
            let mut start = false;
            match st.phase() {
                Phase::Idle => start = wanted,
                Phase::Failed => {
                    start = wanted && st.retry_at.is_none_or(|at| now >= at);
                }
                Phase::Starting => {
                    let timed_out = st
                        .started_at
                        .is_some_and(|t| now >= t + self.cfg.start_timeout());
                    if let Some((_, why)) = st.failed_gen.take() {
                        self.fail(&mut st, why);
                        stop = true;
                    } else if st.live_gen == Some(st.generation) {
                        let latency = st.started_at.map(|t| now - t);
                        st.start_latency = latency;
                        st.phase = Some(Phase::Live);
                        st.failures_in_row = 0;
                        gst::info!(
                            CAT,
                            "relay {}: live after {:?}",
                            self.name(),
                            latency.unwrap_or_default()
                        );
                        self.cond.notify_all();
                        continue;
                    } else if timed_out {
                        let why = format!(
                            "no data from {} within start_timeout ({:.1} s)",
                            self.cfg.source, self.cfg.start_timeout
                        );
                        self.fail(&mut st, why);
                        stop = true;
                    } else if !wanted {
                        st.phase = Some(Phase::Idle);
                        st.stops += 1;
                        stop = true;
                    }
                }
                Phase::Live => {
                    if let Some((_, why)) = st.failed_gen.take() {
                        self.fail(&mut st, format!("upstream dropped: {why}"));
                        stop = true;
                    } else if !wanted {
                        st.phase = Some(Phase::Closing);
                        st.close_at = Some(now + self.cfg.close_after());
                        gst::info!(
                            CAT,
                            "relay {}: closing in {:.1} s",
                            self.name(),
                            self.cfg.close_after
                        );
                        continue;
                    }
                }
                Phase::Closing => {
                    if let Some((_, why)) = st.failed_gen.take() {
                        self.fail(&mut st, format!("upstream dropped: {why}"));
                        stop = true;
                    } else if wanted {
                        st.phase = Some(Phase::Live);
                        st.close_at = None;
                    } else if st.close_at.is_none_or(|at| now >= at) {
                        st.phase = Some(Phase::Idle);
                        st.close_at = None;
                        st.stops += 1;
                        stop = true;
                        gst::info!(CAT, "relay {}: closed (no reader left)", self.name());
                        eprintln!(
                            "dvb2ip: relay {}: upstream closed (no reader left)",
                            self.name()
                        );
                    }
                }
            }
            if stop {
                // A new generation: late data and errors of the old pull are ignored.
                st.generation += 1;
                let generation = st.generation;
                drop(st);
                self.data.lock().unwrap().generation = generation;
                drop(pull.take());
                st = self.state.lock().unwrap();
                continue;
            }
            if start {
                st.generation += 1;
                let generation = st.generation;
                st.phase = Some(Phase::Starting);
                st.started_at = Some(now);
                st.live_gen = None;
                st.failed_gen = None;
                st.starts += 1;
                drop(st);
                {
                    let mut d = self.data.lock().unwrap();
                    d.generation = generation;
                    d.aligner.reset();
                    d.cache.reset();
                    d.pending.clear();
                    d.pending_rap = None;
                    d.pending_since = None;
                    // Every reader waits for a random access point of the new session.
                    for r in &mut d.readers {
                        r.waiting_rap = true;
                    }
                }
                gst::info!(CAT, "relay {}: pulling {}", self.name(), self.cfg.source);
                let started = Pull::start(&self, generation);
                st = self.state.lock().unwrap();
                match started {
                    Ok(p) => pull = Some(p),
                    Err(why) => {
                        if st.generation == generation && st.failed_gen.is_none() {
                            st.failed_gen = Some((generation, why));
                        }
                    }
                }
                continue;
            }
            // Sleep until something changes or the next deadline.
            let next = match st.phase() {
                Phase::Starting => st.started_at.map(|t| t + self.cfg.start_timeout()),
                Phase::Closing => st.close_at,
                Phase::Failed if wanted => st.retry_at,
                _ => None,
            };
            let wait = next
                .map(|t| t.saturating_duration_since(Instant::now()))
                .unwrap_or(Duration::from_secs(3600))
                .max(Duration::from_millis(1));
            st = self.cond.wait_timeout(st, wait).unwrap().0;
        }
    }

    /// Records a failed pull and schedules the next (backoff doubling from 1 s).
    fn fail(&self, st: &mut State, why: String) {
        st.failures += 1;
        st.failures_in_row += 1;
        let backoff = Duration::from_secs(1u64 << st.failures_in_row.min(5).saturating_sub(1))
            .min(MAX_BACKOFF);
        st.retry_at = Some(Instant::now() + backoff);
        st.phase = Some(Phase::Failed);
        st.close_at = None;
        gst::warning!(
            CAT,
            "relay {}: {why}; next pull in {backoff:?}",
            self.name()
        );
        eprintln!(
            "dvb2ip: relay {}: upstream {} failed: {why} (next attempt in {} s, {} reader(s) kept)",
            self.name(),
            self.cfg.source,
            backoff.as_secs(),
            st.readers
        );
        st.last_error = Some(why);
        self.cond.notify_all();
    }

    fn shutdown(&self) {
        self.state.lock().unwrap().shutdown = true;
        self.cond.notify_all();
    }
}

fn secs_ceil(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

/// The relays of a server (its `[[relay]]` list), owned by the core.
pub struct Relays {
    list: Vec<Arc<Relay>>,
    started: std::sync::Once,
}

impl Relays {
    /// The relays `cfg` lists (not pulling yet: see [`Relays::start`]).
    pub fn new(cfg: &crate::config::Config) -> Relays {
        Relays {
            list: cfg
                .relay
                .iter()
                .filter_map(|r| match Relay::new(r.clone()) {
                    Ok(r) => Some(r),
                    Err(e) => {
                        gst::error!(CAT, "relay {}: {e}", r.name);
                        None
                    }
                })
                .collect(),
            started: std::sync::Once::new(),
        }
    }

    /// Starts the relays' supervisors (relays with `on_demand = false` begin pulling). Once.
    pub fn start(&self) {
        self.started.call_once(|| {
            for r in &self.list {
                let r = r.clone();
                let name = format!("relay-{}", r.name());
                if let Err(e) = std::thread::Builder::new()
                    .name(name)
                    .spawn(move || r.supervise())
                {
                    gst::error!(CAT, "cannot start a relay supervisor: {e}");
                }
            }
        });
    }

    pub fn iter(&self) -> impl Iterator<Item = &Arc<Relay>> {
        self.list.iter()
    }

    /// The relay mounted at `path` (an RTSP or HTTP path; a control suffix such as
    /// `/stream=0` after the mount is allowed).
    pub fn by_path(&self, path: &str) -> Option<&Arc<Relay>> {
        let path = path.trim_end_matches('/');
        self.list.iter().find(|r| {
            let m = r.cfg.mount_path();
            path == m
                || path
                    .strip_prefix(&m)
                    .is_some_and(|rest| rest.starts_with('/'))
        })
    }

    pub fn status(&self) -> Vec<RelayStatus> {
        self.list.iter().map(|r| r.status()).collect()
    }
}

impl Drop for Relays {
    fn drop(&mut self) {
        for r in &self.list {
            r.shutdown();
        }
    }
}
