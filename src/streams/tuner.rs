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

impl Feed {
    /// The feed of a source this thread is opening.
    fn opening(sink: Arc<dyn TsSink>) -> Feed {
        Feed {
            sink,
            opening: Mutex::new(Opening {
                thread: Some(std::thread::current().id()),
                fed: false,
            }),
            opened: AtomicBool::new(false),
        }
    }

    /// The source is open: pushes go straight to the sink.
    fn opened(&self) {
        let mut o = self.opening.lock().unwrap();
        o.thread = None;
        self.opened.store(true, Ordering::Release);
    }
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
        let feed = Arc::new(Feed::opening(sink));
        let sub = Subscription::in_pool(pool, spec, feed.clone());
        feed.opened();
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Records the first byte of every buffer pushed.
    #[derive(Default)]
    struct Record(Mutex<Vec<u8>>);

    impl TsSink for Record {
        fn push(&self, buffer: &gst::Buffer) {
            let m = buffer.map_readable().unwrap();
            self.0.lock().unwrap().push(m[0]);
        }
    }

    fn buf(tag: u8) -> gst::Buffer {
        gst::Buffer::from_slice([tag; 188])
    }

    fn pushed_by_feed_thread(feed: &Arc<Feed>, tag: u8) {
        let f = feed.clone();
        std::thread::spawn(move || f.push(buf(tag))).join().unwrap();
    }

    #[test]
    fn priming_after_the_feeds_newer_chunk_is_dropped() {
        gst::init().unwrap();
        let rec = Arc::new(Record::default());
        let feed = Arc::new(Feed::opening(rec.clone()));
        // The feed's thread pushes chunk 2 before the opening thread primes with chunk 1.
        pushed_by_feed_thread(&feed, 2);
        feed.push(buf(1));
        feed.opened();
        pushed_by_feed_thread(&feed, 3);
        assert_eq!(*rec.0.lock().unwrap(), vec![2, 3]);
    }

    #[test]
    fn priming_before_the_feed_goes_first() {
        gst::init().unwrap();
        let rec = Arc::new(Record::default());
        let feed = Arc::new(Feed::opening(rec.clone()));
        feed.push(buf(1));
        pushed_by_feed_thread(&feed, 2);
        feed.opened();
        pushed_by_feed_thread(&feed, 3);
        // After opening, the opening thread's pushes (a PID change's priming) pass as well.
        feed.push(buf(4));
        assert_eq!(*rec.0.lock().unwrap(), vec![1, 2, 3, 4]);
    }
}
