//! Moving leases when their frontend leaves the pool (SAT>IP digest §4.3, dvb-scan digest
//! §11.4): each lease of a frontend that left is granted another one by the usual rules (one
//! already on the transponder, else a free one that tunes its delivery system) without its
//! holder doing anything: the [`super::Lease`] stays valid, the same [`FeedSink`] keeps
//! receiving (the first buffer from the new feed is flagged `DISCONT`, and the sink hears
//! `frontend_changed`), and [`super::Lease::status`] reports the new frontend.
//!
//! When no frontend can take it the lease is left without one: its status says unlocked and
//! its sink gets `lock_changed(false)` then `failed` (an HTTP stream ends there; an RTSP
//! session goes on without signal). Such leases get a frontend back at the next change of
//! the set of frontends that offers one, or when a lease's end frees one ([`resume`]).

use std::sync::{Arc, Weak};
use std::time::Instant;

use super::feed::{FeedCounters, FeedSink, Subscriber, TunerStatus};
use super::membership::MembershipChange;
use super::{ActiveFeed, LeaseCore, Registry};
use crate::proto::tuner_pool::{Grant, Request};

use super::hotplug::CAT;

/// What the sinks of moved leases are told once the pool is unlocked.
#[derive(Default)]
pub(super) struct Notes(Vec<Note>);

enum Note {
    /// Now served by `feed`, whose status was `status` when the lease moved.
    Moved {
        sub: Arc<Subscriber>,
        feed: Arc<ActiveFeed>,
        status: TunerStatus,
        /// The chunk it joined after ([`super::feed::Fanout::add`]), sent once it is told.
        last: Option<gst::Buffer>,
    },
    /// Left without a frontend.
    Orphaned {
        sink: Arc<dyn FeedSink>,
        status: TunerStatus,
        reason: String,
    },
}

impl Notes {
    /// Tells the sinks (call without the registry lock: sinks may call back into the pool).
    pub(super) fn deliver(self) {
        for n in self.0 {
            match n {
                Note::Moved {
                    sub,
                    feed,
                    status,
                    last,
                } => {
                    sub.sink.frontend_changed(&status);
                    sub.sink.lock_changed(status.locked, &status);
                    if status.locked {
                        feed.fanout.prime(&sub, last);
                    }
                }
                Note::Orphaned {
                    sink,
                    status,
                    reason,
                } => {
                    sink.lock_changed(false, &status);
                    sink.failed(&reason);
                }
            }
        }
    }
}

/// After the registry was rebuilt (`remap`: old pool index → new one, `None` for frontends
/// that left): renumbers the leases that stay, moves those whose frontend left, and gives a
/// frontend back to leases that had none when one can serve them. Counts into `change`.
pub(super) fn after_change(
    reg: &mut Registry,
    remap: &[Option<usize>],
    counters: &Arc<FeedCounters>,
    change: &mut MembershipChange,
) -> Notes {
    reg.leases.retain(|w| w.strong_count() > 0);
    let leases: Vec<Arc<LeaseCore>> = reg.leases.iter().filter_map(Weak::upgrade).collect();
    // (lease, it had no frontend before this change)
    let mut homeless = Vec::new();
    for l in &leases {
        let mut st = l.state.lock().unwrap();
        match st.index {
            Some(i) => match remap.get(i).copied().flatten() {
                Some(n) => st.index = Some(n),
                None => {
                    if let Some(f) = st.feed.take() {
                        f.fanout.remove(l.sub.id);
                    }
                    st.index = None;
                    st.shared = false;
                    homeless.push((l.clone(), false));
                }
            },
            None => homeless.push((l.clone(), true)),
        }
    }
    let mut notes = Notes::default();
    for (l, was_homeless) in homeless {
        let from = {
            let st = l.state.lock().unwrap();
            (st.info.0, st.info.1)
        };
        match place(reg, &l, counters) {
            Ok((feed, status, last)) => {
                gst::info!(
                    CAT,
                    "lease on {} moved from adapter{}/frontend{} to adapter{}/frontend{}",
                    l.transponder,
                    from.0,
                    from.1,
                    status.adapter,
                    status.frontend
                );
                if was_homeless {
                    change.resumed += 1;
                } else {
                    change.moved.push((from, (status.adapter, status.frontend)));
                }
                notes.0.push(Note::Moved {
                    sub: l.sub.clone(),
                    feed,
                    status,
                    last,
                });
            }
            Err(why) if !was_homeless => {
                let reason = format!(
                    "adapter{}/frontend{} left the pool and no other frontend can tune {}: {why}",
                    from.0, from.1, l.transponder
                );
                gst::warning!(CAT, "{reason}");
                change.orphaned += 1;
                let st = l.state.lock().unwrap();
                notes.0.push(Note::Orphaned {
                    sink: l.sub.sink.clone(),
                    status: TunerStatus {
                        adapter: st.info.0,
                        frontend: st.info.1,
                        name: st.info.2.clone(),
                        transponder: Some(l.transponder.clone()),
                        ..Default::default()
                    },
                    reason,
                });
            }
            Err(_) => {}
        }
    }
    notes
}

/// Gives a frontend to the leases that have none, where one can serve them (a frontend was
/// released).
pub(super) fn resume(reg: &mut Registry, counters: &Arc<FeedCounters>) -> Notes {
    let homeless = reg
        .leases
        .iter()
        .filter_map(Weak::upgrade)
        .any(|l| l.state.lock().unwrap().index.is_none());
    if !homeless {
        return Notes::default();
    }
    let same: Vec<Option<usize>> = (0..reg.pool.slots.len()).map(Some).collect();
    after_change(reg, &same, counters, &mut MembershipChange::default())
}

/// Grants lease `l` a frontend (any that can tune its transponder), starting its feed if it
/// was idle, and subscribes it there.
fn place(
    reg: &mut Registry,
    l: &Arc<LeaseCore>,
    counters: &Arc<FeedCounters>,
) -> Result<(Arc<ActiveFeed>, TunerStatus, Option<gst::Buffer>), String> {
    let grant = reg
        .pool
        .acquire(&Request {
            transponder: l.transponder.clone(),
            adapter: None,
            frontend: None,
        })
        .map_err(|e| e.to_string())?;
    let i = grant.index();
    let feed = match (grant, reg.feeds[i].clone()) {
        (Grant::Shared(_), Some(f)) => f,
        _ => match reg.start_feed(i, &l.transponder, &l.dvbsrc_properties, counters) {
            Ok(f) => {
                reg.feeds[i] = Some(f.clone());
                f
            }
            Err(e) => {
                reg.pool.release(i);
                return Err(e);
            }
        },
    };
    let status = feed.status.lock().unwrap().clone();
    *l.sub.lock_deadline.lock().unwrap() =
        (!status.locked).then(|| Instant::now() + l.tuning_timeout);
    let last = feed.fanout.add_moved(l.sub.clone());
    let mut st = l.state.lock().unwrap();
    st.index = Some(i);
    st.shared = matches!(grant, Grant::Shared(_));
    st.feed = Some(feed.clone());
    st.info = (
        reg.pool.slots[i].adapter,
        reg.pool.slots[i].frontend,
        reg.name_of(i),
    );
    Ok((feed, status, last))
}
