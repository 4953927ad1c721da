//! The tuner-pool source: a SAT>IP stream on a frontend of the pool, without an element (a
//! [`Subscription`]: lease, PID changes without retuning, retune giving the old frontend back
//! first). The feed's thread hands the TS to the stream's [`TsSink`].
//!
//! The pool primes a new subscriber with the feed's latest chunk in the thread that opens the
//! source, which races the feed's own push of the next chunk: [`Feed`] hands the two to the
//! sink in the feed's order (the primed chunk is dropped when the next one came first), so
//! every consumer sees each packet once and in order from its first datagram.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::ThreadId;

use gstdvb2ip::proto::satip::{Change, QueryError, StreamSpec};
use gstdvb2ip::satipmapsrc::Subscription;
use gstdvb2ip::tuners::{FeedSink, Pool, TunerStatus};

use super::source::{Source, TsSink};
use super::CAT;

/// A stream served by a frontend of the tuner pool.
#[derive(Debug)]
pub struct TunerSource {
    sub: Subscription,
}

/// Receives the frontend's feed in the feed's thread (and the pool's priming in the opening
/// thread, see the module documentation).
struct Feed {
    sink: Arc<dyn TsSink>,
    /// While the source opens: the opening thread and whether the feed's thread pushed yet.
    /// Pushes go to the sink under this lock until `opened`, so the primed chunk and the
    /// feed's next one cannot cross.
    opening: Mutex<Opening>,
    opened: AtomicBool,
}

struct Opening {
    thread: Option<ThreadId>,
    fed: bool,
}

impl FeedSink for Feed {
    fn push(&self, buffer: gst::Buffer) {
        if self.opened.load(Ordering::Acquire) {
            return self.sink.push(&buffer);
        }
        let mut o = self.opening.lock().unwrap();
        if o.thread == Some(std::thread::current().id()) {
            if o.fed {
                // The pool's priming, after the feed's newer chunk: already superseded.
                return;
            }
        } else {
            o.fed = true;
        }
        self.sink.push(&buffer);
    }
    fn status(&self, _: &TunerStatus) {}
    fn lock_changed(&self, locked: bool, _: &TunerStatus) {
        gst::debug!(CAT, "tuner source: lock {locked}");
    }
    // A frontend without lock does not end a SAT>IP stream: it goes on without signal.
    fn tune_failed(&self, reason: &str) {
        gst::info!(CAT, "tuner source: no lock: {reason}");
    }
    fn failed(&self, reason: &str) {
        gst::warning!(CAT, "tuner source: frontend failed: {reason}");
        self.sink.end(reason);
    }
    fn frontend_changed(&self, status: &TunerStatus) {
        gst::info!(
            CAT,
            "tuner source: now on adapter{}/frontend{} ({})",
            status.adapter,
            status.frontend,
            status.name
        );
    }
}

impl TunerSource {
    /// Leases a frontend for `spec`; see [`super::source::open`].
    pub fn open(pool: &Pool, spec: StreamSpec, sink: Arc<dyn TsSink>) -> Result<Self, QueryError> {
        let feed = Arc::new(Feed {
            sink,
            opening: Mutex::new(Opening {
                thread: Some(std::thread::current().id()),
                fed: false,
            }),
            opened: AtomicBool::new(false),
        });
        let sub = Subscription::in_pool(pool, spec, feed.clone());
        {
            let mut o = feed.opening.lock().unwrap();
            o.thread = None;
            feed.opened.store(true, Ordering::Release);
        }
        Ok(TunerSource { sub: sub? })
    }
}

impl Source for TunerSource {
    fn spec(&self) -> &StreamSpec {
        self.sub.spec()
    }

    fn update(&mut self, new: StreamSpec, change: Change) -> bool {
        self.sub.update(new, change)
    }

    fn status(&self) -> String {
        self.sub.status()
    }
}
