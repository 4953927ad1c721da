//! The descriptor budget of a server (issue 16 item 1): the process never runs out of file
//! descriptors, because GLib aborts when it cannot create a `GWakeup` (every media's main
//! context needs one) and `accept` failing with `EMFILE` makes a listener spin.
//!
//! * [`raise_nofile`] raises the soft `RLIMIT_NOFILE` to the hard one at start (`serve`,
//!   `css tv`).
//! * [`Limits::from_rlimit`] splits the soft limit: a reserve for pipelines, sockets of streams
//!   and the process itself, and the rest as connection caps for the RTSP, HTTP and CSS front
//!   ends ([`Kind`]).
//! * [`Limits::try_admit`] admits one connection of a kind while it is below its cap and the
//!   process has descriptors to spare; the [`Permit`] it hands out gives the slot back when
//!   dropped (keep it with the connection).
//! * [`Limits::headroom_ok`] says whether new work that opens descriptors (a pipeline, a
//!   stream's sockets, a frontend) may start; refuse it (RTSP/HTTP 503) otherwise.
//! * [`RateLimitedLog`]: one log line per interval for refusals, with the count of those not
//!   logged.
//!
//! Counting is cheap: connections are counted by their permits, and the process's open
//! descriptors (`/proc/self/fd`) are read at most every [`FD_SCAN_INTERVAL`]; in between, the
//! last count plus the connections admitted since is the estimate.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How often the open descriptors are counted at most.
pub const FD_SCAN_INTERVAL: Duration = Duration::from_millis(200);

/// The smallest reserve kept for pipelines and the process, whatever the limit.
const MIN_RESERVE: usize = 128;

/// Free descriptors below which no new work (pipeline, stream) starts, at least.
const MIN_HEADROOM: usize = 32;

/// Free descriptors below which no connection is admitted, whatever its kind's cap.
const ADMIT_SPARE: usize = 16;

/// A front end whose connections are counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// RTSP control connections.
    Rtsp,
    /// HTTP connections (streaming, description, status page).
    Http,
    /// CSS-CII/TS WebSocket connections.
    Css,
}

impl Kind {
    /// Every kind, in cap order.
    pub const ALL: [Kind; 3] = [Kind::Rtsp, Kind::Http, Kind::Css];

    fn index(self) -> usize {
        match self {
            Kind::Rtsp => 0,
            Kind::Http => 1,
            Kind::Css => 2,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Kind::Rtsp => "RTSP",
            Kind::Http => "HTTP",
            Kind::Css => "CSS",
        }
    }
}

/// Raises the soft `RLIMIT_NOFILE` to the hard limit; returns (soft, hard) as they are now.
pub fn raise_nofile() -> std::io::Result<(u64, u64)> {
    let mut rl = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read/write the struct passed.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut rl) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        if rl.rlim_cur < rl.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: rl.rlim_max,
                rlim_max: rl.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            rl = raised;
        }
    }
    Ok((rl.rlim_cur, rl.rlim_max))
}

/// The soft `RLIMIT_NOFILE` (`None` when it cannot be read or is unlimited).
fn soft_nofile() -> Option<usize> {
    let mut rl = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit only writes the struct passed.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut rl) } != 0
        || rl.rlim_cur == libc::RLIM_INFINITY
    {
        return None;
    }
    usize::try_from(rl.rlim_cur).ok()
}

/// Open descriptors of this process (`/proc/self/fd`, less the one that reads it).
pub fn count_open_fds() -> Option<usize> {
    let n = std::fs::read_dir("/proc/self/fd").ok()?.count();
    Some(n.saturating_sub(1))
}

/// The descriptor budget and connection counts of a server; clones share the counts.
#[derive(Clone)]
pub struct Limits {
    inner: Arc<Inner>,
}

struct Inner {
    nofile: usize,
    reserve: usize,
    headroom: usize,
    caps: [usize; 3],
    live: [AtomicUsize; 3],
    /// Connections admitted in total (all kinds) since start: with `scan` gives the estimate.
    admitted: AtomicUsize,
    scan: Mutex<Scan>,
    refusals: RateLimitedLog,
}

#[derive(Clone, Copy)]
struct Scan {
    at: Option<Instant>,
    open: usize,
    /// `admitted` when `open` was counted.
    admitted: usize,
}

impl std::fmt::Debug for Limits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Limits")
            .field("nofile", &self.inner.nofile)
            .field("reserve", &self.inner.reserve)
            .field("headroom", &self.inner.headroom)
            .field("caps", &self.inner.caps)
            .finish()
    }
}

impl Limits {
    /// The budget of the process's current soft `RLIMIT_NOFILE` (call [`raise_nofile`] first);
    /// an unlimited or unreadable limit counts as 1,048,576.
    pub fn from_rlimit() -> Limits {
        Limits::with_nofile(soft_nofile().unwrap_or(1 << 20))
    }

    /// The budget of a process allowed `nofile` descriptors: a reserve of a quarter (at least
    /// 128, at most half) for pipelines, streams and the process; the rest split into
    /// connection caps, 1/2 RTSP, 1/3 HTTP, 1/6 CSS. New work stops when fewer than a
    /// sixteenth (at least 32) are free.
    pub fn with_nofile(nofile: usize) -> Limits {
        let reserve = (nofile / 4).max(MIN_RESERVE).min(nofile / 2);
        let budget = nofile - reserve;
        let rtsp = budget / 2;
        let http = budget / 3;
        let css = budget - rtsp - http;
        Limits {
            inner: Arc::new(Inner {
                nofile,
                reserve,
                headroom: (nofile / 16).max(MIN_HEADROOM),
                caps: [rtsp.max(1), http.max(1), css.max(1)],
                live: Default::default(),
                admitted: AtomicUsize::new(0),
                scan: Mutex::new(Scan {
                    at: None,
                    open: 0,
                    admitted: 0,
                }),
                refusals: RateLimitedLog::new(Duration::from_secs(10)),
            }),
        }
    }

    /// The soft descriptor limit the budget was made for.
    pub fn nofile(&self) -> usize {
        self.inner.nofile
    }

    /// The connection cap of `kind`.
    pub fn cap(&self, kind: Kind) -> usize {
        self.inner.caps[kind.index()]
    }

    /// Connections of `kind` holding a permit now.
    pub fn live(&self, kind: Kind) -> usize {
        self.inner.live[kind.index()].load(Ordering::SeqCst)
    }

    /// Admits one connection of `kind`: `None` when the kind is at its cap or the process is
    /// nearly out of descriptors (close the connection at once, or answer 503 and close). The
    /// permit holds the slot until dropped.
    pub fn try_admit(&self, kind: Kind) -> Option<Permit> {
        let live = &self.inner.live[kind.index()];
        let cap = self.inner.caps[kind.index()];
        if live
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                (n < cap).then_some(n + 1)
            })
            .is_err()
        {
            self.refused(&format!(
                "{} connections at their cap of {cap}",
                kind.name()
            ));
            return None;
        }
        let permit = Permit {
            limits: self.clone(),
            kind,
        };
        if self.open_fds() + ADMIT_SPARE > self.inner.nofile {
            self.refused(&format!(
                "{} connection: {} of {} descriptors open",
                kind.name(),
                self.open_fds(),
                self.inner.nofile
            ));
            return None;
        }
        self.inner.admitted.fetch_add(1, Ordering::SeqCst);
        Some(permit)
    }

    /// Whether new work that opens descriptors (a pipeline, a stream, a frontend) may start:
    /// more than the headroom is free. When `false`, refuse with 503 (see
    /// [`Limits::refused`] for the log line).
    pub fn headroom_ok(&self) -> bool {
        self.open_fds() + self.inner.headroom <= self.inner.nofile
    }

    /// The open descriptors as last counted plus the connections admitted since (counted
    /// again when the count is older than [`FD_SCAN_INTERVAL`], or when the estimate comes
    /// near the limit: pipelines open descriptors the estimate does not see).
    pub fn open_fds(&self) -> usize {
        let estimate = self.scan(false);
        if estimate + 2 * self.inner.headroom > self.inner.nofile {
            self.scan(true)
        } else {
            estimate
        }
    }

    fn scan(&self, now: bool) -> usize {
        let admitted = self.inner.admitted.load(Ordering::SeqCst);
        let mut scan = self.inner.scan.lock().unwrap();
        let stale = now || scan.at.is_none_or(|t| t.elapsed() >= FD_SCAN_INTERVAL);
        if stale {
            if let Some(open) = count_open_fds() {
                *scan = Scan {
                    at: Some(Instant::now()),
                    open,
                    admitted,
                };
            }
        }
        scan.open + admitted.saturating_sub(scan.admitted)
    }

    /// Logs a refusal (`what` was refused) at most once per 10 s, with the number of refusals
    /// not logged since.
    pub fn refused(&self, what: &str) {
        let nofile = self.inner.nofile;
        self.inner.refusals.log(|skipped| {
            let more = if skipped > 0 {
                format!(" ({skipped} more refusals since the last line)")
            } else {
                String::new()
            };
            let line =
                format!("dvb2ip: refusing new work: {what}; descriptor limit {nofile}{more}");
            gst::warning!(CAT, "{line}");
            eprintln!("{line}");
        });
    }
}

/// One connection slot of a [`Kind`], given back when dropped.
pub struct Permit {
    limits: Limits,
    kind: Kind,
}

impl Permit {
    pub fn kind(&self) -> Kind {
        self.kind
    }
}

impl std::fmt::Debug for Permit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Permit({})", self.kind.name())
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.limits.inner.live[self.kind.index()].fetch_sub(1, Ordering::SeqCst);
    }
}

/// A log line at most once per interval; the calls in between are counted and reported with
/// the next line.
pub struct RateLimitedLog {
    interval: Duration,
    last: Mutex<Option<Instant>>,
    skipped: AtomicU64,
}

impl RateLimitedLog {
    pub fn new(interval: Duration) -> Self {
        RateLimitedLog {
            interval,
            last: Mutex::new(None),
            skipped: AtomicU64::new(0),
        }
    }

    /// Calls `emit(skipped)` when the last line is older than the interval (or there was
    /// none), `skipped` being the calls not logged since; otherwise only counts this call.
    /// Returns whether it logged.
    pub fn log(&self, emit: impl FnOnce(u64)) -> bool {
        let mut last = self.last.lock().unwrap();
        if last.is_some_and(|t| t.elapsed() < self.interval) {
            self.skipped.fetch_add(1, Ordering::Relaxed);
            return false;
        }
        *last = Some(Instant::now());
        drop(last);
        emit(self.skipped.swap(0, Ordering::Relaxed));
        true
    }
}

static CAT: once_cell::sync::Lazy<gst::DebugCategory> = once_cell::sync::Lazy::new(|| {
    gst::DebugCategory::new(
        "dvb2ip-limits",
        gst::DebugColorFlags::empty(),
        Some("dvb2ip descriptor budget"),
    )
});

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budget_of_1024_descriptors() {
        let l = Limits::with_nofile(1024);
        assert_eq!(l.inner.reserve, 256);
        assert_eq!(l.cap(Kind::Rtsp), 384);
        assert_eq!(l.cap(Kind::Http), 256);
        assert_eq!(l.cap(Kind::Css), 128);
        assert_eq!(l.inner.headroom, 64);
        let total: usize = Kind::ALL.iter().map(|k| l.cap(*k)).sum();
        assert!(total + l.inner.reserve <= 1024);
        // A small limit keeps at least half for the reserve.
        let small = Limits::with_nofile(200);
        assert_eq!(small.inner.reserve, 100);
    }

    #[test]
    fn permits_count_and_give_back() {
        let l = Limits::with_nofile(1 << 20);
        let cap = l.cap(Kind::Css);
        let permits: Vec<Permit> = (0..cap).map(|_| l.try_admit(Kind::Css).unwrap()).collect();
        assert_eq!(l.live(Kind::Css), cap);
        assert!(l.try_admit(Kind::Css).is_none(), "beyond the cap");
        // Other kinds have their own caps.
        assert!(l.try_admit(Kind::Rtsp).is_some());
        drop(permits);
        assert_eq!(l.live(Kind::Css), 0);
        assert!(l.try_admit(Kind::Css).is_some());
        assert!(l.headroom_ok());
    }

    #[test]
    fn no_headroom_when_the_limit_is_reached() {
        // A limit below what the test process has open already.
        let open = count_open_fds().unwrap();
        let l = Limits::with_nofile(open);
        assert!(!l.headroom_ok());
        assert!(l.try_admit(Kind::Rtsp).is_none());
        assert_eq!(
            l.live(Kind::Rtsp),
            0,
            "a refused permit gives its slot back"
        );
    }

    #[test]
    fn rate_limited_log_counts_what_it_skips() {
        let log = RateLimitedLog::new(Duration::from_secs(3600));
        let mut lines = vec![];
        assert!(log.log(|s| lines.push(s)));
        assert!(!log.log(|s| lines.push(s)));
        assert!(!log.log(|s| lines.push(s)));
        assert_eq!(lines, vec![0]);
        let log = RateLimitedLog::new(Duration::ZERO);
        assert!(log.log(|s| lines.push(s)));
        assert!(log.log(|s| lines.push(s)));
        assert_eq!(lines, vec![0, 0, 0]);
    }
}
