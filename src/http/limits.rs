//! The HTTP server's resource limits (`[http]` in the configuration) and their admission
//! bookkeeping: a cap on open connections and on connections per client address, a timeout for
//! a request head to arrive and one for an idle keep-alive connection. The connection cap is
//! the HTTP share of the server's descriptor budget ([`crate::limits::Limits`], `Kind::Http`),
//! so a box whose limit is raised for a headend gets room for more clients without a
//! configuration change; `[http] max_connections` lowers it.
//!
//! A connection beyond a cap is answered `503 Service Unavailable` with `Retry-After` and a
//! reason in the body, then closed (`super::conn`).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Deserialize;

use crate::limits::{Kind, Limits, Permit};

/// `[http]`: limits of the HTTP server. Caps of 0 are sized from the descriptor limit.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct HttpSection {
    /// Most open HTTP connections (idle, requesting or streaming); 0: the HTTP share of the
    /// descriptor budget ([`crate::limits::Limits::cap`]), which also bounds a larger value.
    pub max_connections: usize,
    /// Most open connections from one client address; 0: 32 (at most `max_connections`).
    pub max_per_address: usize,
    /// Seconds a client has to send a whole request head once it connected or started one.
    pub header_timeout: u64,
    /// Seconds a keep-alive connection may stay idle between requests.
    pub idle_timeout: u64,
    /// Most bytes queued for a streaming client that does not keep up before it is dropped.
    pub stream_queue_bytes: usize,
}

impl Default for HttpSection {
    fn default() -> Self {
        HttpSection {
            max_connections: 0,
            max_per_address: 0,
            header_timeout: 10,
            idle_timeout: 15,
            stream_queue_bytes: 1 << 20,
        }
    }
}

/// The soft `RLIMIT_NOFILE` of the process (1024 when it cannot be read).
pub fn fd_limit() -> u64 {
    let mut r = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes the struct it is given, nothing else.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) } != 0 {
        return 1024;
    }
    r.rlim_cur
}

/// The session limit `max_sessions = 0` stands for with `nofile` descriptors: a unicast RTP
/// session holds about three (its RTSP connection, RTP and RTCP sockets), an HTTP stream one;
/// the RTSP and HTTP connection caps of the budget divided by three, between 8 and 4096.
pub fn auto_max_sessions(nofile: u64) -> u32 {
    let l = Limits::with_nofile(usize::try_from(nofile).unwrap_or(usize::MAX).min(1 << 24));
    ((l.cap(Kind::Rtsp) + l.cap(Kind::Http)) / 3).clamp(8, 4096) as u32
}

/// The limits in force, resolved against the descriptor limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpLimits {
    pub max_connections: usize,
    pub max_per_address: usize,
    pub header_timeout: Duration,
    pub idle_timeout: Duration,
    pub stream_queue_bytes: usize,
}

impl HttpLimits {
    /// `section` with caps of 0 sized from the budget of `nofile` descriptors.
    pub fn resolve(section: &HttpSection, nofile: u64) -> HttpLimits {
        let budget =
            Limits::with_nofile(usize::try_from(nofile).unwrap_or(usize::MAX).min(1 << 24));
        let cap = budget.cap(Kind::Http);
        let max_connections = match section.max_connections {
            0 => cap,
            n => n.min(cap),
        };
        let max_per_address = match section.max_per_address {
            0 => 32,
            n => n,
        }
        .min(max_connections);
        HttpLimits {
            max_connections,
            max_per_address,
            header_timeout: Duration::from_secs(section.header_timeout.max(1)),
            idle_timeout: Duration::from_secs(section.idle_timeout.max(1)),
            stream_queue_bytes: section.stream_queue_bytes.max(64 << 10),
        }
    }
}

impl Default for HttpLimits {
    /// The defaults for the process's current descriptor limit.
    fn default() -> Self {
        HttpLimits::resolve(&HttpSection::default(), fd_limit())
    }
}

/// The HTTP server's counters (read by the status page and tests).
#[derive(Debug, Default)]
pub struct HttpStats {
    /// Connections open now.
    pub open: AtomicUsize,
    /// Streams running now.
    pub streams: AtomicUsize,
    /// Connections answered 503 at the connection cap.
    pub refused_cap: AtomicU64,
    /// Connections answered 503 at the per-address cap.
    pub refused_address: AtomicU64,
    /// Connections closed because a request head did not arrive in time or the connection
    /// stayed idle too long.
    pub timed_out: AtomicU64,
    /// Streaming clients dropped because they did not keep up (their queue was full).
    pub slow_dropped: AtomicU64,
}

impl HttpStats {
    /// The counters as `<dt>`/`<dd>` lines of the status page (`<dd>` ids name them).
    pub fn html(&self) -> String {
        let n = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let rows = [
            (
                "connections",
                "Connections open",
                self.open.load(Ordering::Relaxed) as u64,
            ),
            (
                "streams",
                "Streams",
                self.streams.load(Ordering::Relaxed) as u64,
            ),
            (
                "slow-dropped",
                "Slow clients dropped",
                n(&self.slow_dropped),
            ),
            (
                "refused-cap",
                "Refused at the connection cap",
                n(&self.refused_cap),
            ),
            (
                "refused-address",
                "Refused at the per-address cap",
                n(&self.refused_address),
            ),
            (
                "timed-out",
                "Closed by the head or idle timeout",
                n(&self.timed_out),
            ),
        ];
        rows.iter()
            .map(|(id, what, v)| format!("<dt>{what}</dt><dd id=\"http-{id}\">{v}</dd>\n"))
            .collect()
    }
}

/// Why a connection is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The server holds `max_connections` connections.
    Connections,
    /// The client's address holds `max_per_address` connections.
    PerAddress,
}

impl Refusal {
    /// The body of the 503 answer.
    pub fn reason(self) -> &'static str {
        match self {
            Refusal::Connections => "No-More: connections (the server's HTTP connection limit)",
            Refusal::PerAddress => "No-More: connections (this address's HTTP connection limit)",
        }
    }
}

/// Admission of connections: the open count in total and per address, and a connection
/// permit of the server's descriptor budget.
#[derive(Debug)]
pub struct Admission {
    pub limits: HttpLimits,
    pub stats: Arc<HttpStats>,
    budget: Limits,
    per_address: Mutex<HashMap<IpAddr, usize>>,
}

/// An admitted connection; dropping it gives its place back.
#[derive(Debug)]
pub struct ConnPermit {
    admission: Arc<Admission>,
    addr: IpAddr,
    _budget: Permit,
}

impl Admission {
    /// Admission under `limits`, taking connection permits of `budget` (the server core's).
    pub fn new(limits: HttpLimits, budget: Limits, stats: Arc<HttpStats>) -> Arc<Admission> {
        Arc::new(Admission {
            limits,
            stats,
            budget,
            per_address: Mutex::new(HashMap::new()),
        })
    }

    /// The descriptor budget the connections count against.
    pub fn budget(&self) -> &Limits {
        &self.budget
    }

    /// Admits a connection from `addr`, or says why not (and counts the refusal).
    pub fn try_admit(self: &Arc<Self>, addr: IpAddr) -> Result<ConnPermit, Refusal> {
        let addr = addr.to_canonical();
        let mut map = self.per_address.lock().unwrap();
        let mut budget = None;
        let refusal = if self.stats.open.load(Ordering::Relaxed) >= self.limits.max_connections {
            Some(Refusal::Connections)
        } else if map.get(&addr).copied().unwrap_or(0) >= self.limits.max_per_address {
            Some(Refusal::PerAddress)
        } else {
            // At the HTTP cap, or the process is nearly out of descriptors.
            budget = self.budget.try_admit(Kind::Http);
            budget.is_none().then_some(Refusal::Connections)
        };
        if let Some(r) = refusal {
            let counter = match r {
                Refusal::Connections => &self.stats.refused_cap,
                Refusal::PerAddress => &self.stats.refused_address,
            };
            counter.fetch_add(1, Ordering::Relaxed);
            return Err(r);
        }
        let Some(budget) = budget else {
            return Err(Refusal::Connections);
        };
        *map.entry(addr).or_insert(0) += 1;
        self.stats.open.fetch_add(1, Ordering::Relaxed);
        Ok(ConnPermit {
            admission: self.clone(),
            addr,
            _budget: budget,
        })
    }
}

impl Drop for ConnPermit {
    fn drop(&mut self) {
        let mut map = self.admission.per_address.lock().unwrap();
        if let Some(n) = map.get_mut(&self.addr) {
            *n -= 1;
            if *n == 0 {
                map.remove(&self.addr);
            }
        }
        self.admission.stats.open.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_follow_the_descriptor_limit() {
        let l = HttpLimits::resolve(&HttpSection::default(), 1024);
        assert_eq!(l.max_connections, Limits::with_nofile(1024).cap(Kind::Http));
        assert_eq!(l.max_per_address, 32);
        let l = HttpLimits::resolve(&HttpSection::default(), 65536);
        assert_eq!(
            l.max_connections,
            Limits::with_nofile(65536).cap(Kind::Http)
        );
        assert!(l.max_connections > 10_000);
        // 1024: RTSP 384 + HTTP 256 connections, three descriptors a session.
        assert_eq!(auto_max_sessions(1024), 213);
        assert_eq!(auto_max_sessions(1 << 20), 4096);
        assert_eq!(auto_max_sessions(100), 13);
        assert_eq!(auto_max_sessions(30), 8, "at least 8");
        let s = HttpSection {
            max_connections: 10,
            max_per_address: 50,
            ..Default::default()
        };
        let l = HttpLimits::resolve(&s, 1024);
        assert_eq!((l.max_connections, l.max_per_address), (10, 10));
    }

    /// The README's headend example is a valid configuration with the limits it describes.
    #[test]
    fn readme_headend_example_parses() {
        let readme = include_str!("../../README.md");
        let start = readme
            .find("    # /etc/dvb2ip.toml")
            .expect("headend example in the README");
        let toml: String = readme[start..]
            .lines()
            .skip(1)
            .take_while(|l| l.starts_with("    ") || l.is_empty())
            .map(|l| l.strip_prefix("    ").unwrap_or(l).to_owned() + "\n")
            .collect();
        let c = crate::config::Config::parse("README.md", &toml).expect("the example parses");
        assert_eq!(c.server.max_sessions, 0);
        assert_eq!(c.http.max_per_address, 8);
        let l = HttpLimits::resolve(&c.http, 65536);
        assert_eq!((l.max_connections, l.max_per_address), (16384, 8));
        assert_eq!(auto_max_sessions(65536), 4096);
    }

    #[test]
    fn admission_counts_total_and_per_address() {
        let a = Admission::new(
            HttpLimits {
                max_connections: 3,
                max_per_address: 2,
                ..HttpLimits::resolve(&HttpSection::default(), 1024)
            },
            Limits::with_nofile(1 << 20),
            Arc::default(),
        );
        let x: IpAddr = "10.0.0.1".parse().unwrap();
        let y: IpAddr = "::ffff:10.0.0.2".parse().unwrap();
        let p1 = a.try_admit(x).unwrap();
        let _p2 = a.try_admit(x).unwrap();
        assert_eq!(a.try_admit(x).unwrap_err(), Refusal::PerAddress);
        let _p3 = a.try_admit(y).unwrap();
        assert_eq!(
            a.try_admit("10.0.0.2".parse().unwrap()).unwrap_err(),
            Refusal::Connections
        );
        drop(p1);
        assert!(a.try_admit(x).is_ok());
        assert_eq!(a.stats.refused_address.load(Ordering::Relaxed), 1);
        assert_eq!(a.stats.refused_cap.load(Ordering::Relaxed), 1);
        assert_eq!(a.stats.open.load(Ordering::Relaxed), 2);
    }
}
