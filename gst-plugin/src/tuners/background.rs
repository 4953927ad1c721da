//! Background leases: a frontend taken at the lowest priority (a channel scan, digest
//! `dvb-scan.md` §9.5). A background lease takes a free frontend or joins one already on its
//! transponder, like any lease; but when a viewer's lease finds no free frontend, a frontend
//! whose every user is a background lease is taken from them: their subscriptions end at once
//! (nothing more reaches their sinks), the frontend is retuned for the viewer, and each holder
//! gets its revoke notice (called after the pool's lock is released; it must not block). The
//! holder then drops its [`Lease`] (which gives nothing back twice) and tries that mux later.
//!
//! Hooks in `mod.rs`: [`preempt`] when a viewer's request finds every frontend busy (its
//! [`Revoked`] is dropped after the registry lock), [`register`] for a new background lease,
//! and [`release_on_drop`] in [`Lease`]'s drop.
//!
//! On real hardware the revoked frontend's old feed stops only when its holders drop their
//! leases (the scan does so as soon as it gets the notice); until then a new `dvbsrc` on the
//! same device may find it busy.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};

use super::{lease_with, FeedSink, Lease, LeaseCore, LeaseError, LeaseRequest, Pool, Registry};
use crate::proto::tuner_pool::{DelSys, Request};

/// What is called when a background lease is revoked (from the viewer's thread; must not
/// block).
pub type RevokeNotice = Box<dyn Fn() + Send + Sync>;

/// One background lease, as the pool tracks it.
pub struct Holder {
    /// The lease; its frontend can change (a frontend that leaves the pool moves its leases).
    core: Weak<LeaseCore>,
    /// Its subscriber on the frontend's feed.
    sub_id: u64,
    revoked: AtomicBool,
    notice: RevokeNotice,
}

impl std::fmt::Debug for Holder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Holder")
            .field("index", &self.index())
            .field("revoked", &self.revoked.load(Ordering::Relaxed))
            .finish()
    }
}

/// The background leases of a pool.
#[derive(Default)]
pub(super) struct Holders(Mutex<Vec<Arc<Holder>>>);

impl Pool {
    /// Leases a frontend for `req` at background priority (see the module documentation): a
    /// viewer's lease that finds no free frontend takes it back, and `on_revoke` is called.
    /// A background request never takes a frontend from anyone.
    pub fn lease_background(
        &self,
        req: LeaseRequest,
        sink: Arc<dyn FeedSink>,
        on_revoke: impl Fn() + Send + Sync + 'static,
    ) -> Result<Lease, LeaseError> {
        let notice: RevokeNotice = Box::new(on_revoke);
        lease_with(self, req, sink, Some(notice))
    }

    /// How many background leases the pool holds now.
    pub fn background_leases(&self) -> usize {
        self.0.background.0.lock().unwrap().len()
    }
}

impl Lease {
    /// Whether this is a background lease a viewer took the frontend from.
    pub fn is_revoked(&self) -> bool {
        self.background
            .as_ref()
            .is_some_and(|h| h.revoked.load(Ordering::Acquire))
    }

    /// Whether this is a background lease.
    pub fn is_background(&self) -> bool {
        self.background.is_some()
    }
}

/// Registers a new background lease on frontend `index` (called under the registry lock).
impl Holder {
    /// Pool index of the lease's frontend now; `None` when it has none (or is gone).
    fn index(&self) -> Option<usize> {
        self.core.upgrade()?.state.lock().unwrap().index
    }
}

pub(super) fn register(
    pool: &Pool,
    core: &Arc<LeaseCore>,
    sub_id: u64,
    notice: RevokeNotice,
) -> Arc<Holder> {
    let h = Arc::new(Holder {
        core: Arc::downgrade(core),
        sub_id,
        revoked: AtomicBool::new(false),
        notice,
    });
    pool.0.background.0.lock().unwrap().push(h.clone());
    h
}

/// Called from [`Lease`]'s drop under the registry lock: forgets the holder and says whether
/// the lease still holds its use of the frontend (false once revoked: already given back).
pub(super) fn release_on_drop(pool: &Pool, h: &Arc<Holder>) -> bool {
    pool.0
        .background
        .0
        .lock()
        .unwrap()
        .retain(|x| !Arc::ptr_eq(x, h));
    !h.revoked.load(Ordering::Acquire)
}

/// Background leases a viewer took, and their frontend's old feed: dropped after the registry
/// lock, it drops the feed (it stops once the holders let go too) and calls each notice.
#[derive(Default)]
pub(super) struct Revoked {
    holders: Vec<Arc<Holder>>,
    feed: Option<Arc<super::ActiveFeed>>,
}

impl Drop for Revoked {
    fn drop(&mut self) {
        drop(self.feed.take());
        for h in self.holders.drain(..) {
            (h.notice)();
        }
    }
}

/// A viewer's request `req` found every frontend busy: takes a frontend whose every user is a
/// background lease and that can serve `req` (its subscribers are removed, its uses given
/// back, its feed taken out of the registry). The holders are told when the result is
/// dropped (after the registry lock); empty when no frontend qualifies.
pub(super) fn preempt(pool: &Pool, reg: &mut Registry, req: &Request) -> Revoked {
    let holders = pool.0.background.0.lock().unwrap().clone();
    let delsys: DelSys = req.transponder.delsys;
    let candidate = (0..reg.pool.slots.len()).find(|&i| {
        let s = &reg.pool.slots[i];
        let bg = holders
            .iter()
            .filter(|h| h.index() == Some(i) && !h.revoked.load(Ordering::Acquire))
            .count();
        s.users > 0
            && bg == s.users
            && s.delsys.contains(&delsys)
            && req.adapter.is_none_or(|a| a == s.adapter)
            && req.frontend.is_none_or(|f| f == s.frontend)
    });
    let Some(i) = candidate else {
        return Revoked::default();
    };
    let mut taken = Vec::new();
    for h in holders.iter().filter(|h| h.index() == Some(i)) {
        if h.revoked.swap(true, Ordering::AcqRel) {
            continue;
        }
        // The lease is left without a frontend, and out of the leases a freed frontend resumes
        // (its Drop then releases nothing).
        if let Some(core) = h.core.upgrade() {
            let mut st = core.state.lock().unwrap();
            if let Some(feed) = st.feed.take() {
                feed.fanout.remove(h.sub_id);
            }
            st.index = None;
            drop(st);
            reg.leases
                .retain(|w| w.strong_count() > 0 && !std::ptr::eq(w.as_ptr(), &*core));
        }
        reg.pool.release(i);
        taken.push(h.clone());
    }
    pool.0
        .background
        .0
        .lock()
        .unwrap()
        .retain(|x| !taken.iter().any(|t| Arc::ptr_eq(t, x)));
    let feed = if reg.pool.slots[i].users == 0 {
        reg.feeds[i].take()
    } else {
        None
    };
    Revoked {
        holders: taken,
        feed,
    }
}
