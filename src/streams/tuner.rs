//! The tuner-pool source: a SAT>IP stream on a frontend of the pool, without an element (a
//! [`Subscription`]: lease, PID changes without retuning, retune giving the old frontend back
//! first). The feed's thread hands the TS to the stream's [`TsSink`].

use std::sync::Arc;

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

/// Receives the frontend's feed in the feed's thread.
struct Feed(Arc<dyn TsSink>);

impl FeedSink for Feed {
    fn push(&self, buffer: gst::Buffer) {
        self.0.push(&buffer);
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
        self.0.end(reason);
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
        let feed: Arc<dyn FeedSink> = Arc::new(Feed(sink));
        Ok(TunerSource {
            sub: Subscription::in_pool(pool, spec, feed)?,
        })
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
