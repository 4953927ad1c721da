//! A SAT>IP stream on the tuner pool without an element: what `satipmapsrc` does with its
//! inner `dvbtunersrc` (lease a frontend for the query's tuning and PID set, change PIDs
//! without retuning, retune releasing the old frontend first, report the status string),
//! for servers that take the feed in Rust (the SAT>IP RTSP server's unicast streams).

use std::sync::Arc;

use crate::proto::satip::{Attr, Change, QueryError, Reason, Resource, StreamSpec};
use crate::proto::tuner_pool::PoolError;
use crate::tuners::{FeedSink, Lease, LeaseError, Pool};

static CAT: once_cell::sync::Lazy<gst::DebugCategory> = once_cell::sync::Lazy::new(|| {
    gst::DebugCategory::new(
        "satipstream",
        gst::DebugColorFlags::empty(),
        Some("SAT>IP stream on the tuner pool"),
    )
});

/// One stream's use of the tuner pool. Dropping it gives the frontend back.
pub struct Subscription {
    pool: Pool,
    spec: StreamSpec,
    /// `None` while untuned (a retune found no frontend).
    lease: Option<Lease>,
    sink: Arc<dyn FeedSink>,
}

impl std::fmt::Debug for Subscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscription")
            .field("spec", &self.spec.canonical_query())
            .field("lease", &self.lease)
            .finish()
    }
}

/// Leases a frontend for `spec`; the feed goes to `sink`, which is called in this thread for
/// the first data (the caller must not hold anything the sink needs).
/// A failure is answered with its real cause: every frontend busy is `No-More: frontends`, a
/// delivery system or pinned frontend the pool lacks is 403 `Out-of-Range: msys`/`fe`, and
/// anything else (a tuning the elements refuse, a device that fails to open) is 503
/// `Unavailable: <cause>`.
fn lease(pool: &Pool, spec: &StreamSpec, sink: &Arc<dyn FeedSink>) -> Result<Lease, QueryError> {
    let props =
        super::dvbtunersrc_properties_in(pool, &spec.tuning).map_err(QueryError::Unavailable)?;
    let props: Vec<(&str, String)> = props.into_iter().collect();
    let req = crate::dvbtunersrc::lease_request(&props, &spec.pids.to_string())
        .map_err(QueryError::Unavailable)?;
    pool.lease(req, sink.clone()).map_err(|e| match e {
        LeaseError::Pool(PoolError::Busy) => QueryError::NoMore(vec![Resource::Frontends]),
        LeaseError::Pool(PoolError::Unsupported(_)) => {
            QueryError::violation(Attr::Msys, Reason::Unsupported)
        }
        LeaseError::Pool(PoolError::NoSuchFrontend { .. }) => {
            QueryError::violation(Attr::Fe, Reason::Unsupported)
        }
        LeaseError::Backend(text) => QueryError::Unavailable(text),
    })
}

impl Subscription {
    /// [`Subscription::in_pool`] of the default pool.
    pub fn new(spec: StreamSpec, sink: Arc<dyn FeedSink>) -> Result<Self, QueryError> {
        Self::in_pool(Pool::default_pool(), spec, sink)
    }

    /// Leases a frontend of `pool` for `spec` (already checked against the pool's
    /// capabilities). Without a free frontend: `No-More: frontends`; other failures as
    /// [`lease`] maps them.
    pub fn in_pool(
        pool: &Pool,
        spec: StreamSpec,
        sink: Arc<dyn FeedSink>,
    ) -> Result<Self, QueryError> {
        match lease(pool, &spec, &sink) {
            Ok(l) => Ok(Subscription {
                pool: pool.clone(),
                spec,
                lease: Some(l),
                sink,
            }),
            Err(e) => {
                gst::info!(CAT, "no frontend for {}: {e}", spec.canonical_query());
                Err(e)
            }
        }
    }

    pub fn spec(&self) -> &StreamSpec {
        &self.spec
    }

    /// Applies a modified stream (`change` as [`StreamSpec::apply`] gave it): new PIDs on
    /// the same frontend, or a retune that gives the old frontend back before leasing one for
    /// `new`. Returns whether a frontend serves the stream afterwards.
    pub fn update(&mut self, new: StreamSpec, change: Change) -> bool {
        let old = std::mem::replace(&mut self.spec, new);
        match (change, &self.lease) {
            (Change::Unchanged, _) => {}
            (Change::Pids, Some(l)) => {
                match crate::tuners::PidFilter::parse(&self.spec.pids.to_string()) {
                    Ok(f) => l.set_pids(f),
                    Err(e) => gst::warning!(CAT, "pids {}: {e}", self.spec.pids),
                }
            }
            (Change::Pids | Change::Retune, _) => {
                gst::info!(
                    CAT,
                    "retune {} -> {}",
                    old.canonical_query(),
                    self.spec.canonical_query()
                );
                drop(self.lease.take());
                match lease(&self.pool, &self.spec, &self.sink) {
                    Ok(l) => self.lease = Some(l),
                    Err(e) => gst::info!(
                        CAT,
                        "no frontend for {}: {e}; untuned until the next request",
                        self.spec.canonical_query()
                    ),
                }
            }
        }
        self.lease.is_some()
    }

    /// SAT>IP `fe` number of the frontend serving the stream, 0 when none.
    pub fn frontend_number(&self) -> u32 {
        self.lease.as_ref().map_or(0, |l| {
            super::fe_number_in(&self.pool, l.index(), &self.spec.tuning)
        })
    }

    /// The SAT>IP status string.
    pub fn status(&self) -> String {
        let tuned = self.lease.as_ref().map(|l| {
            let st = l.status();
            super::Tuned {
                fe: super::fe_number_in(&self.pool, l.index(), &self.spec.tuning),
                locked: st.locked,
                level: st.level,
                quality: st.quality,
            }
        });
        super::status_string(Some(&self.spec), tuned)
    }
}
