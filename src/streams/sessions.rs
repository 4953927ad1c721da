//! One session count for every front end: RTSP sessions (gst-rtsp-server's session pool,
//! read through a hook the RTSP server installs) and HTTP streams (counted here) share
//! `[server] max_sessions`. A front end asks [`Sessions::try_admit`] before it starts a new
//! stream and holds the [`OwnedSessionPermit`] for the stream's life.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};

/// Reads the number of RTSP sessions.
pub type CountFn = Box<dyn Fn() -> usize + Send + Sync>;

/// The server's session count and limit (owned by its [`crate::core::Core`]).
pub struct Sessions {
    max: usize,
    http: AtomicUsize,
    rtsp: OnceLock<CountFn>,
    /// Serializes admissions, so two front ends cannot both take the last place.
    admit: Mutex<()>,
}

impl std::fmt::Debug for Sessions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sessions")
            .field("max", &self.max)
            .field("http", &self.http)
            .finish()
    }
}

/// An admitted HTTP stream; dropping it gives its place back.
#[derive(Debug)]
pub struct OwnedSessionPermit(std::sync::Arc<Sessions>);

impl Sessions {
    /// A count allowing `max` sessions (0: unlimited).
    pub fn new(max: usize) -> Sessions {
        Sessions {
            max,
            http: AtomicUsize::new(0),
            rtsp: OnceLock::new(),
            admit: Mutex::new(()),
        }
    }

    /// The limit (0: unlimited).
    pub fn max(&self) -> usize {
        self.max
    }

    /// Installs the RTSP server's session count (once; later calls are ignored).
    pub fn set_rtsp_count(&self, f: CountFn) {
        let _ = self.rtsp.set(f);
    }

    /// HTTP streams running now.
    pub fn http(&self) -> usize {
        self.http.load(Ordering::Relaxed)
    }

    /// RTSP sessions now (0 without an RTSP server).
    pub fn rtsp(&self) -> usize {
        self.rtsp.get().map_or(0, |f| f())
    }

    /// Every session now.
    pub fn total(&self) -> usize {
        self.http() + self.rtsp()
    }

    /// Whether one more session would exceed the limit.
    pub fn full(&self) -> bool {
        self.max > 0 && self.total() >= self.max
    }

    /// Admits one more HTTP stream unless the limit is reached.
    pub fn try_admit_http(self: &std::sync::Arc<Self>) -> Option<OwnedSessionPermit> {
        let _g = self.admit.lock().unwrap();
        if self.full() {
            return None;
        }
        self.http.fetch_add(1, Ordering::Relaxed);
        Some(OwnedSessionPermit(self.clone()))
    }
}

impl Drop for OwnedSessionPermit {
    fn drop(&mut self) {
        self.0.http.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn http_and_rtsp_share_the_limit() {
        let s = Arc::new(Sessions::new(3));
        let rtsp = Arc::new(AtomicUsize::new(1));
        let r = rtsp.clone();
        s.set_rtsp_count(Box::new(move || r.load(Ordering::Relaxed)));
        let a = s.try_admit_http().unwrap();
        let _b = s.try_admit_http().unwrap();
        assert!(s.try_admit_http().is_none());
        assert!(s.full());
        drop(a);
        assert!(!s.full());
        rtsp.store(2, Ordering::Relaxed);
        assert!(s.try_admit_http().is_none());
        let unlimited = Arc::new(Sessions::new(0));
        assert!((0..100).all(|_| unlimited.try_admit_http().is_some()));
    }
}
