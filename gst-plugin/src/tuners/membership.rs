//! The set of frontends changes while the pool runs: emulated adapters follow a reloaded
//! configuration ([`Pool::reconfigure`]), real ones come and go with their device nodes
//! ([`Pool::add_hardware`], [`Pool::remove_hardware`], driven by [`super::hotplug`]).
//!
//! A frontend that stays keeps its adapter number, its users and its running feed (its pool
//! index may change: the pool stays in hardware-then-configuration order, which is also the
//! SAT>IP numbering's). The users of a frontend that leaves move to another one
//! (`migrate.rs`). Listeners ([`Pool::on_membership_change`]) hear of every change
//! after the fact, outside the pool's lock: the launcher recomputes X_SATIPCAP and CONFIGID
//! there and re-announces over SSDP.

use std::sync::{Arc, Mutex, Weak};

use super::config::{AdapterConfig, BroadcastConfig};
use super::{emulated, hardware, migrate, Backend, Pool, Registry};
use crate::proto::tuner_pool::{satip_numbering, Pool as Slots, SatipFe, Slot};

type Listener = dyn Fn(&MembershipChange) + Send + Sync;

/// The listeners of a pool.
#[derive(Default)]
pub(crate) struct Listeners {
    next: std::sync::atomic::AtomicU64,
    list: Mutex<Vec<(u64, Arc<Listener>)>>,
}

/// One frontend that joined or left.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub adapter: u32,
    pub frontend: u32,
    pub name: String,
    pub emulated: bool,
}

/// What a change of the set of frontends did.
#[derive(Debug, Clone, Default)]
pub struct MembershipChange {
    pub added: Vec<Member>,
    pub removed: Vec<Member>,
    /// Leases that moved to another frontend: (old adapter/frontend, new adapter/frontend).
    pub moved: Vec<((u32, u32), (u32, u32))>,
    /// Leases left without a frontend by this change (they carry lock=0 until one joins).
    pub orphaned: usize,
    /// Leases without a frontend that got one back.
    pub resumed: usize,
    /// The pool's SAT>IP numbering after the change (X_SATIPCAP follows it).
    pub satip: Arc<[SatipFe]>,
    /// [`Pool::membership_generation`] after the change.
    pub generation: u64,
}

impl MembershipChange {
    /// Whether the set of frontends changed.
    pub fn changed(&self) -> bool {
        !self.added.is_empty() || !self.removed.is_empty()
    }
}

impl std::fmt::Display for MembershipChange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let list = |v: &[Member]| {
            v.iter()
                .map(|m| format!("adapter{}/frontend{} {:?}", m.adapter, m.frontend, m.name))
                .collect::<Vec<_>>()
                .join(", ")
        };
        write!(
            f,
            "added [{}], removed [{}], {} lease(s) moved, {} without a frontend, {} resumed",
            list(&self.added),
            list(&self.removed),
            self.moved.len(),
            self.orphaned,
            self.resumed
        )
    }
}

/// Keeps a membership listener registered; dropping it unregisters it.
pub struct MembershipListener {
    pool: Weak<super::PoolShared>,
    id: u64,
}

impl std::fmt::Debug for MembershipListener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("MembershipListener").field(&self.id).finish()
    }
}

impl Drop for MembershipListener {
    fn drop(&mut self) {
        if let Some(p) = self.pool.upgrade() {
            p.listeners
                .list
                .lock()
                .unwrap()
                .retain(|(i, _)| *i != self.id);
        }
    }
}

/// What identifies a frontend across changes: an emulated adapter by name and delivery
/// systems, a real one by its device numbers.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Key {
    Emulated(String, Vec<String>),
    Hardware(u32, u32),
    /// Server URL and position on it.
    Remote(String, u32),
}

fn key(b: &Backend) -> Key {
    match b {
        Backend::Emulated(a) => Key::Emulated(a.name.clone(), a.delsys.clone()),
        Backend::Hardware(h) => Key::Hardware(h.adapter, h.frontend),
        Backend::Remote(r) => Key::Remote(r.server.url.clone(), r.position),
    }
}

fn member(slot: &Slot, b: &Backend) -> Member {
    Member {
        adapter: slot.adapter,
        frontend: slot.frontend,
        name: match b {
            Backend::Emulated(a) => a.name.clone(),
            Backend::Hardware(h) => h.name.clone(),
            Backend::Remote(r) => r.name(),
        },
        emulated: matches!(b, Backend::Emulated(_)),
    }
}

fn slot_delsys(b: &Backend) -> Vec<crate::proto::tuner_pool::DelSys> {
    match b {
        Backend::Emulated(a) => a
            .delsys
            .iter()
            .filter_map(|d| crate::proto::tuner_pool::DelSys::from_nick(d))
            .collect(),
        Backend::Hardware(h) => h.delsys.clone(),
        Backend::Remote(r) => r.delsys.clone(),
    }
}

impl Pool {
    /// Applies a new configuration while frontends are in use: emulated adapters that are no
    /// longer configured leave the pool (their users move, see `migrate.rs`), new ones
    /// join, the others stay as they run (their lock time, signal figures and fault knobs
    /// take the new values from their next tuning; faults at once). Multiplexes and the cache
    /// directory apply to the next tuning. Real adapters are left alone (they follow their
    /// device nodes, [`super::hotplug`]).
    pub fn reconfigure(&self, config: BroadcastConfig) -> MembershipChange {
        self.apply(|reg| {
            let hw: Vec<Backend> = reg
                .backends
                .iter()
                .filter(|b| matches!(b, Backend::Hardware(_)))
                .cloned()
                .collect();
            let emu = config.adapter.iter().cloned().map(Backend::Emulated);
            let remote = remotes(reg, None);
            (
                hw.into_iter().chain(emu).chain(remote).collect(),
                Some(config),
            )
        })
    }

    /// Real frontends joining the pool (a new adapter probed); one already in the pool is
    /// updated in place.
    pub fn add_hardware(&self, frontends: Vec<hardware::HwFrontend>) -> MembershipChange {
        self.apply(|reg| {
            let mut hw: Vec<hardware::HwFrontend> = reg
                .backends
                .iter()
                .filter_map(|b| match b {
                    Backend::Hardware(h) => Some(h.clone()),
                    Backend::Emulated(_) | Backend::Remote(_) => None,
                })
                .filter(|h| {
                    !frontends
                        .iter()
                        .any(|n| (n.adapter, n.frontend) == (h.adapter, h.frontend))
                })
                .collect();
            hw.extend(frontends);
            hw.sort_by_key(|h| (h.adapter, h.frontend));
            (with_emulated(reg, hw), None)
        })
    }

    /// Real frontends of `adapter` (all of them, or only `frontend`) leaving the pool.
    pub fn remove_hardware(&self, adapter: u32, frontend: Option<u32>) -> MembershipChange {
        self.apply(|reg| {
            let hw: Vec<hardware::HwFrontend> = reg
                .backends
                .iter()
                .filter_map(|b| match b {
                    Backend::Hardware(h) => Some(h.clone()),
                    Backend::Emulated(_) | Backend::Remote(_) => None,
                })
                .filter(|h| h.adapter != adapter || frontend.is_some_and(|f| f != h.frontend))
                .collect();
            (with_emulated(reg, hw), None)
        })
    }

    /// The real adapters (adapter, frontend) in the pool now.
    pub fn hardware_frontends(&self) -> Vec<(u32, u32)> {
        self.with_registry(|r| {
            r.backends
                .iter()
                .filter_map(|b| match b {
                    Backend::Hardware(h) => Some((h.adapter, h.frontend)),
                    Backend::Emulated(_) | Backend::Remote(_) => None,
                })
                .collect()
        })
    }

    /// The tuners of remote SAT>IP server `url` joining the pool (after every local frontend;
    /// the pool takes them only when no local one can serve); those it had lent before are
    /// replaced.
    pub fn add_remote(
        &self,
        url: &str,
        frontends: Vec<super::satip_remote::RemoteFrontend>,
    ) -> MembershipChange {
        self.apply(|reg| {
            let local = reg
                .backends
                .iter()
                .filter(|b| !matches!(b, Backend::Remote(_)))
                .cloned();
            let others = remotes(reg, Some(url));
            let new = frontends.into_iter().map(Backend::Remote);
            (local.chain(others).chain(new).collect(), None)
        })
    }

    /// The tuners of remote SAT>IP server `url` leaving the pool (it vanished): their users
    /// move to another frontend, or are told, as for an unplugged adapter.
    pub fn remove_remote(&self, url: &str) -> MembershipChange {
        self.apply(|reg| {
            let keep = reg
                .backends
                .iter()
                .filter(|b| match b {
                    Backend::Remote(r) => r.server.url != url,
                    _ => true,
                })
                .cloned()
                .collect();
            (keep, None)
        })
    }

    /// How many tuners remote SAT>IP server `url` lends the pool now.
    pub fn remote_frontends(&self, url: &str) -> usize {
        self.with_registry(|r| {
            r.backends
                .iter()
                .filter(|b| matches!(b, Backend::Remote(f) if f.server.url == url))
                .count()
        })
    }

    /// Counts the changes of the set of frontends (0 for the pool as first built).
    pub fn membership_generation(&self) -> u64 {
        self.with_registry(|r| r.generation)
    }

    /// Calls `f` after each change of the set of frontends (outside the pool's lock, in the
    /// thread that made the change), for as long as the returned guard lives.
    pub fn on_membership_change(
        &self,
        f: impl Fn(&MembershipChange) + Send + Sync + 'static,
    ) -> MembershipListener {
        let l = &self.0.listeners;
        let id = l.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        l.list.lock().unwrap().push((id, Arc::new(f)));
        MembershipListener {
            pool: Arc::downgrade(&self.0),
            id,
        }
    }

    /// Rebuilds the frontend list as `desired` computes it (the frontends wanted, in pool
    /// order, and maybe a new configuration), moves the users of frontends that left, then
    /// tells the listeners.
    fn apply(
        &self,
        desired: impl FnOnce(&Registry) -> (Vec<Backend>, Option<BroadcastConfig>),
    ) -> MembershipChange {
        let mut g = self.0.registry.lock().unwrap();
        let reg = g.get_or_insert_with(|| Registry::new(super::default_config()));
        let (wanted, config) = desired(reg);
        let old_backends = std::mem::take(&mut reg.backends);
        let old_faults = std::mem::take(&mut reg.faults);
        let old_feeds = std::mem::take(&mut reg.feeds);
        let old_slots = std::mem::take(&mut reg.pool.slots);
        let mut taken = vec![false; old_backends.len()];
        // Old index → new index, for the frontends that stay.
        let mut remap: Vec<Option<usize>> = vec![None; old_backends.len()];
        let mut change = MembershipChange::default();
        let mut slots = Vec::with_capacity(wanted.len());
        let mut faults = Vec::with_capacity(wanted.len());
        let mut feeds = Vec::with_capacity(wanted.len());
        let mut backends = Vec::with_capacity(wanted.len());
        let mut fresh = Vec::new();
        for b in wanted {
            let k = key(&b);
            let old = (0..old_backends.len()).find(|&i| !taken[i] && key(&old_backends[i]) == k);
            match old {
                Some(i) => {
                    taken[i] = true;
                    remap[i] = Some(backends.len());
                    let f = old_faults[i].clone();
                    if let (Backend::Emulated(was), Backend::Emulated(now)) = (&old_backends[i], &b)
                    {
                        if was.faults != now.faults {
                            *f.lock().unwrap() = emulated::FaultState::new(now.faults.clone());
                        }
                    }
                    slots.push(old_slots[i].clone());
                    faults.push(f);
                    feeds.push(old_feeds[i].clone());
                }
                None => {
                    fresh.push(backends.len());
                    slots.push(Slot {
                        adapter: match &b {
                            Backend::Hardware(h) => h.adapter,
                            Backend::Emulated(_) | Backend::Remote(_) => u32::MAX,
                        },
                        frontend: match &b {
                            Backend::Hardware(h) => h.frontend,
                            Backend::Emulated(_) | Backend::Remote(_) => 0,
                        },
                        delsys: slot_delsys(&b),
                        tuned: None,
                        users: 0,
                        remote: matches!(b, Backend::Remote(_)),
                    });
                    faults.push(Arc::new(Mutex::new(emulated::FaultState::new(match &b {
                        Backend::Emulated(a) => a.faults.clone(),
                        Backend::Hardware(_) | Backend::Remote(_) => Default::default(),
                    }))));
                    feeds.push(None);
                }
            }
            backends.push(b);
        }
        // New emulated adapters take the lowest numbers free above the real adapters (those
        // numbers are what `adapter=` pins and the status page show).
        let base = slots
            .iter()
            .zip(&backends)
            .filter(|(_, b)| matches!(b, Backend::Hardware(_)))
            .map(|(s, _)| s.adapter + 1)
            .max()
            .unwrap_or(0);
        for &i in &fresh {
            if slots[i].adapter == u32::MAX {
                let n = (base..)
                    .find(|n| !slots.iter().any(|s| s.adapter == *n))
                    .expect("a free adapter number");
                slots[i].adapter = n;
            }
            change.added.push(member(&slots[i], &backends[i]));
        }
        // Frontends that left: their feeds stop once the registry is unlocked.
        let mut stopped = Vec::new();
        for (i, t) in taken.iter().enumerate() {
            if !t {
                change.removed.push(member(&old_slots[i], &old_backends[i]));
                stopped.extend(old_feeds[i].clone());
            }
        }
        reg.backends = backends;
        reg.faults = faults;
        reg.feeds = feeds;
        reg.satip = satip_numbering(slots.iter().map(|s| s.delsys.as_slice())).into();
        reg.pool = Slots::new(slots);
        if let Some(c) = config {
            reg.config = c;
        }
        if change.changed() {
            reg.generation += 1;
        }
        let notes = migrate::after_change(reg, &remap, &self.0.counters, &mut change);
        change.satip = reg.satip.clone();
        change.generation = reg.generation;
        drop(g);
        drop(stopped);
        notes.deliver();
        if change.changed() || change.resumed > 0 {
            let listeners: Vec<Arc<Listener>> = self
                .0
                .listeners
                .list
                .lock()
                .unwrap()
                .iter()
                .map(|(_, l)| l.clone())
                .collect();
            for l in listeners {
                l(&change);
            }
        }
        change
    }
}

/// The real frontends `hw` followed by the configured emulated adapters of `reg`, in their
/// configuration order.
fn with_emulated(reg: &Registry, hw: Vec<hardware::HwFrontend>) -> Vec<Backend> {
    let emu: Vec<AdapterConfig> = reg
        .backends
        .iter()
        .filter_map(|b| match b {
            Backend::Emulated(a) => Some(a.clone()),
            Backend::Hardware(_) | Backend::Remote(_) => None,
        })
        .collect();
    hw.into_iter()
        .map(Backend::Hardware)
        .chain(emu.into_iter().map(Backend::Emulated))
        .chain(remotes(reg, None))
        .collect()
}

/// The remote frontends of `reg`, except those of server `except`.
fn remotes(reg: &Registry, except: Option<&str>) -> Vec<Backend> {
    reg.backends
        .iter()
        .filter(|b| match b {
            Backend::Remote(r) => except != Some(r.server.url.as_str()),
            _ => false,
        })
        .cloned()
        .collect()
}
