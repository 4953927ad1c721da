//! A feed is what one tuned frontend delivers: one upstream read, fanned out to every
//! subscriber on that transponder. Subscribers with `pids=all` get the very same buffer (no
//! payload copy); subscribers with a PID set get a filtered copy, computed once per distinct set.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::proto::ts_errors::TsErrorCheck;
use crate::proto::tuner_pool::Transponder;

/// How often subscribers get the frontend's status, whatever the backend.
pub const STATUS_INTERVAL: Duration = Duration::from_secs(1);

/// PIDs a subscriber wants.
#[derive(Clone, PartialEq, Eq)]
pub enum PidFilter {
    All,
    Set(Box<[u64; 128]>),
}

impl std::fmt::Debug for PidFilter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PidFilter::All => f.write_str("all"),
            PidFilter::Set(_) => write!(f, "{:?}", self.pids()),
        }
    }
}

impl PidFilter {
    pub fn from_pids(pids: impl IntoIterator<Item = u16>) -> Self {
        let mut b = Box::new([0u64; 128]);
        for p in pids {
            let p = (p & 0x1FFF) as usize;
            b[p / 64] |= 1 << (p % 64);
        }
        PidFilter::Set(b)
    }

    #[inline]
    pub fn contains(&self, pid: u16) -> bool {
        match self {
            PidFilter::All => true,
            PidFilter::Set(b) => {
                let p = (pid & 0x1FFF) as usize;
                b[p / 64] & (1 << (p % 64)) != 0
            }
        }
    }

    pub fn pids(&self) -> Vec<u16> {
        (0..8192u16).filter(|&p| self.contains(p)).collect()
    }

    /// Parses `all`, `8192` (dvbsrc's "everything"), `none`, or a list of PIDs separated by
    /// `,`, `:` or spaces.
    pub fn parse(s: &str) -> Result<PidFilter, String> {
        let t = s.trim();
        if t.eq_ignore_ascii_case("all") || t == "8192" {
            return Ok(PidFilter::All);
        }
        if t.is_empty() || t.eq_ignore_ascii_case("none") {
            return Ok(PidFilter::from_pids([]));
        }
        let mut pids = Vec::new();
        for part in t.split([',', ':', ' ']).filter(|p| !p.is_empty()) {
            let v: u32 = part.parse().map_err(|_| format!("{part:?} is not a PID"))?;
            if v == 8192 {
                return Ok(PidFilter::All);
            }
            if v > 8191 {
                return Err(format!("PID {v} is out of range 0–8191"));
            }
            pids.push(v as u16);
        }
        Ok(PidFilter::from_pids(pids))
    }
}

/// Frontend status as reported to subscribers.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TunerStatus {
    pub adapter: u32,
    pub frontend: u32,
    pub name: String,
    pub transponder: Option<Transponder>,
    pub locked: bool,
    /// Signal level in percent (for real frontends: of the driver's relative 0–65535 scale).
    pub level: u32,
    /// Signal level in dBm, `None` when the frontend gives no figure in dBm (real frontends:
    /// the DVBv5 `DTV_STAT_SIGNAL_STRENGTH` in `FE_SCALE_DECIBEL`; emulated ones: their
    /// configured `signal_dbm`).
    pub signal_dbm: Option<f64>,
    /// Signal quality in percent (for real frontends: the driver's relative SNR, 0–65535).
    pub quality: u32,
    /// Signal-to-noise ratio in dB, `None` when the frontend gives no figure in dB.
    pub snr_db: Option<f64>,
    /// Bit error rate before error correction (0–1), `None` when the frontend gives no rate
    /// (real frontends: from the DVBv5 bit counters, before the inner decoder where the driver
    /// counts there, else after it).
    pub ber: Option<f64>,
    /// TS continuity errors in what the frontend delivered since it was opened
    /// ([`TsErrorCheck`]).
    pub continuity_errors: u64,
    /// TS packets delivered with `transport_error_indicator` set since the frontend was opened.
    pub transport_errors: u64,
}

/// Sends the frontend's last known status to every subscriber once per [`STATUS_INTERVAL`],
/// whether or not the backend learnt anything new; each backend's loop calls [`Self::poll`].
pub(crate) struct StatusTimer {
    next: Instant,
}

impl StatusTimer {
    /// The first status goes out at the first poll.
    pub fn new(now: Instant) -> Self {
        Self { next: now }
    }

    /// Sends the status if it is due; returns when the next one is due.
    pub fn poll(&mut self, now: Instant, status: &Mutex<TunerStatus>, fanout: &Fanout) -> Instant {
        if now >= self.next {
            // Counted from this post, so two posts are never closer than the interval.
            self.next = now + STATUS_INTERVAL;
            let mut st = status.lock().unwrap().clone();
            fanout.stamp(&mut st);
            fanout.status(&st);
        }
        self.next
    }
}

/// What a subscriber receives. Implementations must not block.
pub trait FeedSink: Send + Sync {
    fn push(&self, buffer: gst::Buffer);
    fn status(&self, status: &TunerStatus);
    fn lock_changed(&self, locked: bool, status: &TunerStatus);
    /// The frontend did not lock within the subscriber's tuning timeout.
    fn tune_failed(&self, reason: &str);
    /// The feed hit an unrecoverable error (e.g. the device vanished).
    fn failed(&self, reason: &str);
    /// The lease moved to another frontend (its own left the pool): `status` is the new one's.
    /// The TS continues from another feed: its first buffer is flagged `DISCONT` (continuity
    /// counters, PCR and version numbers restart).
    fn frontend_changed(&self, status: &TunerStatus) {
        let _ = status;
    }
}

pub(crate) struct Subscriber {
    pub id: u64,
    pub filter: Arc<Mutex<PidFilter>>,
    pub sink: Arc<dyn FeedSink>,
    /// Monotonic deadline for lock, `None` once locked or when no timeout applies.
    pub lock_deadline: Mutex<Option<std::time::Instant>>,
}

/// Counters of a tuner pool's feeds over its life ([`super::Pool::counters`]).
#[derive(Debug, Default)]
pub struct FeedCounters {
    pub bytes_in: AtomicU64,
    pub bytes_copied: AtomicU64,
    pub buffers_out: AtomicU64,
}

/// The subscriber list of one feed.
pub(crate) struct Fanout {
    /// The pool's counters.
    counters: Arc<FeedCounters>,
    /// TS errors in what this feed delivered (written by the feed's thread only).
    check: Mutex<TsErrorCheck>,
    /// [`TsErrorCheck`]'s counts, for readers: `(continuity, transport)`.
    errors: (AtomicU64, AtomicU64),
    subs: Mutex<Vec<Arc<Subscriber>>>,
    /// The most recent chunk (all PIDs), handed to a subscriber as it joins so its first
    /// packets arrive at once rather than at the next play-out tick.
    last: Mutex<Option<gst::Buffer>>,
    /// Subscribers moved here from another frontend: their next buffer is flagged `DISCONT`.
    discont: Mutex<Vec<u64>>,
}

/// Copies the packets of `data` whose PID passes `filter`.
fn filter_packets(data: &[u8], filter: &PidFilter, counters: &FeedCounters) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() / 4);
    for p in data.chunks_exact(188) {
        let pid = ((p[1] as u16 & 0x1F) << 8) | p[2] as u16;
        if filter.contains(pid) {
            out.extend_from_slice(p);
        }
    }
    counters
        .bytes_copied
        .fetch_add(out.len() as u64, Ordering::Relaxed);
    out
}

impl Fanout {
    /// An empty fan-out counting into `counters`.
    pub fn new(counters: Arc<FeedCounters>) -> Self {
        Fanout {
            counters,
            check: Mutex::default(),
            errors: Default::default(),
            subs: Mutex::default(),
            last: Mutex::default(),
            discont: Mutex::default(),
        }
    }

    /// Fills in `st`'s TS error counts: what this feed delivered so far.
    pub fn stamp(&self, st: &mut TunerStatus) {
        st.continuity_errors = self.errors.0.load(Ordering::Relaxed);
        st.transport_errors = self.errors.1.load(Ordering::Relaxed);
    }

    /// Adds a subscriber that comes from another frontend's feed: its next buffer is flagged
    /// `DISCONT`. Returns what [`Fanout::add`] returns.
    pub fn add_moved(&self, s: Arc<Subscriber>) -> Option<gst::Buffer> {
        self.discont.lock().unwrap().push(s.id);
        self.add(s)
    }

    /// `buf`, flagged `DISCONT` when it is the first for subscriber `id` after a move.
    fn mark(&self, id: u64, buf: gst::Buffer) -> gst::Buffer {
        let mut d = self.discont.lock().unwrap();
        if d.is_empty() {
            return buf;
        }
        let Some(pos) = d.iter().position(|x| *x == id) else {
            return buf;
        };
        d.swap_remove(pos);
        drop(d);
        let mut buf = buf;
        buf.make_mut().set_flags(gst::BufferFlags::DISCONT);
        buf
    }

    /// Adds a subscriber; returns the chunk it starts after (the most recent one no push to it
    /// includes: subscribers and the most recent chunk change together in
    /// [`Fanout::distribute`]), for [`Fanout::prime`].
    pub fn add(&self, s: Arc<Subscriber>) -> Option<gst::Buffer> {
        let mut subs = self.subs.lock().unwrap();
        subs.push(s);
        self.last.lock().unwrap().clone()
    }

    /// Sends `last` (what [`Fanout::add`] returned) to a subscriber that just joined.
    pub fn prime(&self, s: &Subscriber, last: Option<gst::Buffer>) {
        let Some(last) = last else {
            return;
        };
        let filter = s.filter.lock().unwrap().clone();
        let buf = match filter {
            PidFilter::All => Some(last),
            set => {
                let map = last.map_readable().expect("readable buffer");
                let out = filter_packets(map.as_slice(), &set, &self.counters);
                (!out.is_empty()).then(|| gst::Buffer::from_mut_slice(out))
            }
        };
        if let Some(b) = buf {
            s.sink.push(self.mark(s.id, b));
        }
    }

    pub fn remove(&self, id: u64) {
        self.subs.lock().unwrap().retain(|s| s.id != id);
        self.discont.lock().unwrap().retain(|x| *x != id);
    }

    pub fn snapshot(&self) -> Vec<Arc<Subscriber>> {
        self.subs.lock().unwrap().clone()
    }

    /// Sends one chunk of whole TS packets to every subscriber.
    pub fn distribute(&self, chunk: Vec<u8>) {
        let all = gst::Buffer::from_mut_slice(chunk);
        // The subscribers that get this chunk and the chunk a joiner is primed with change
        // together: a joiner gets every chunk once (primed with the last one it misses).
        let subs = {
            let subs = self.subs.lock().unwrap();
            *self.last.lock().unwrap() = Some(all.clone());
            subs.clone()
        };
        self.counters
            .bytes_in
            .fetch_add(all.size() as u64, Ordering::Relaxed);
        let map = all.map_readable().expect("fresh buffer is readable");
        let data = map.as_slice();
        {
            let mut check = self.check.lock().unwrap();
            let before = (check.continuity_errors, check.transport_errors);
            check.scan(data);
            if (check.continuity_errors, check.transport_errors) != before {
                self.errors
                    .0
                    .store(check.continuity_errors, Ordering::Relaxed);
                self.errors
                    .1
                    .store(check.transport_errors, Ordering::Relaxed);
            }
        }
        let mut filtered: Vec<(PidFilter, Option<gst::Buffer>)> = Vec::new();
        let mut pushes: Vec<(Arc<Subscriber>, gst::Buffer)> = Vec::with_capacity(subs.len());
        for s in subs {
            // Compared in place: a set is copied once per distinct set, not per subscriber.
            let buf = {
                let f = s.filter.lock().unwrap();
                match &*f {
                    PidFilter::All => Some(all.clone()),
                    set => {
                        if let Some((_, b)) = filtered.iter().find(|(k, _)| k == set) {
                            b.clone()
                        } else {
                            let out = filter_packets(data, set, &self.counters);
                            let b = (!out.is_empty()).then(|| gst::Buffer::from_mut_slice(out));
                            filtered.push((set.clone(), b.clone()));
                            b
                        }
                    }
                }
            };
            if let Some(b) = buf {
                pushes.push((s, b));
            }
        }
        drop(map);
        self.counters
            .buffers_out
            .fetch_add(pushes.len() as u64, Ordering::Relaxed);
        for (s, b) in pushes {
            s.sink.push(self.mark(s.id, b));
        }
    }

    pub fn status(&self, st: &TunerStatus) {
        for s in self.snapshot() {
            s.sink.status(st);
        }
    }

    pub fn lock_changed(&self, locked: bool, st: &TunerStatus) {
        for s in self.snapshot() {
            if locked {
                *s.lock_deadline.lock().unwrap() = None;
            }
            s.sink.lock_changed(locked, st);
        }
    }

    /// Pushes every pending lock deadline back by `by` (time spent generating content).
    pub fn extend_deadlines(&self, by: std::time::Duration) {
        for s in self.snapshot() {
            if let Some(d) = s.lock_deadline.lock().unwrap().as_mut() {
                *d += by;
            }
        }
    }

    /// Reports subscribers whose lock deadline passed.
    pub fn check_deadlines(&self, now: std::time::Instant, reason: &str) {
        for s in self.snapshot() {
            let expired = {
                let mut d = s.lock_deadline.lock().unwrap();
                match *d {
                    Some(t) if now >= t => {
                        *d = None;
                        true
                    }
                    _ => false,
                }
            };
            if expired {
                s.sink.tune_failed(reason);
            }
        }
    }

    pub fn failed(&self, reason: &str) {
        for s in self.snapshot() {
            s.sink.failed(reason);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pid_filter_parsing() {
        assert_eq!(PidFilter::parse("all").unwrap(), PidFilter::All);
        assert_eq!(PidFilter::parse("8192").unwrap(), PidFilter::All);
        assert_eq!(
            PidFilter::parse("0,16:17 256").unwrap().pids(),
            vec![0, 16, 17, 256]
        );
        assert_eq!(PidFilter::parse("none").unwrap().pids(), Vec::<u16>::new());
        assert!(PidFilter::parse("9000").unwrap_err().contains("9000"));
        assert!(PidFilter::parse("abc").is_err());
    }
}
