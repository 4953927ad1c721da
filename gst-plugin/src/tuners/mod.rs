//! Tuner pools: real frontends found under /dev/dvb plus emulated ones from the configuration.
//! A [`Pool`] is an object (a handle to its registry); users lease a frontend with
//! [`Pool::lease`] and the [`Lease`] gives it back on drop. Elements use the pool their pipeline
//! hands them in a [`POOL_CONTEXT`] `GstContext` ([`pool_for_element`]), else the process-wide
//! [`Pool::default_pool`] that gst-launch needs; the free functions here act on that one.
//!
//! Allocation rules live in the GStreamer-free [`crate::proto::tuner_pool`]. This module holds
//! the registry and starts or stops the feed of a frontend when its first user comes or its
//! last user goes.
//!
//! The set of frontends changes at run time ([`membership`]: a reloaded configuration, real
//! adapters found or lost by [`hotplug`]); the leases of a frontend that leaves move to another
//! one (`migrate.rs`).

pub mod background;
pub mod config;
pub mod content;
pub(crate) mod emulated;
pub mod feed;
pub(crate) mod hardware;
pub mod hotplug;
pub mod membership;
mod migrate;
pub mod satip_remote;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use once_cell::sync::Lazy;

pub use config::{BroadcastConfig, ConfigError, Faults};
pub use feed::{FeedCounters, FeedSink, PidFilter, TunerStatus};
pub use hardware::HwFrontend;
pub use membership::{MembershipChange, MembershipListener};

use crate::proto::tuner_pool::{
    satip_numbering, DelSys, Grant, Pool as Slots, PoolError, Request, SatipFe, Slot, Transponder,
};
use feed::{Fanout, Subscriber};
use gst::glib;
use gst::prelude::*;

/// What kind of device backs a frontend.
#[derive(Debug, Clone)]
pub enum Backend {
    Emulated(config::AdapterConfig),
    Hardware(hardware::HwFrontend),
    /// A tuner of another SAT>IP server ([`satip_remote`]).
    Remote(satip_remote::RemoteFrontend),
}

/// A frontend of the pool, as listed by [`frontends`].
#[derive(Debug, Clone)]
pub struct FrontendInfo {
    pub index: usize,
    pub adapter: u32,
    pub frontend: u32,
    pub name: String,
    pub delsys: Vec<DelSys>,
    pub emulated: bool,
    pub users: usize,
    pub tuned: Option<Transponder>,
    /// For a tuner of another SAT>IP server: its server, state and counters.
    pub remote: Option<satip_remote::RemoteReport>,
}

struct ActiveFeed {
    fanout: Arc<Fanout>,
    status: Arc<Mutex<TunerStatus>>,
    _backend: ActiveBackend,
}

impl ActiveFeed {
    /// The frontend's status with the TS error counts of what it delivered so far.
    fn status_now(&self) -> TunerStatus {
        let mut st = self.status.lock().unwrap().clone();
        self.fanout.stamp(&mut st);
        st
    }
}

// The backends are held only for their Drop, which stops the frontend.
#[allow(dead_code)]
enum ActiveBackend {
    Emulated(emulated::EmulatedFeed),
    Hardware(hardware::HardwareFeed),
    Remote(satip_remote::RemoteFeed),
}

struct Registry {
    config: BroadcastConfig,
    backends: Vec<Backend>,
    faults: Vec<Arc<Mutex<emulated::FaultState>>>,
    pool: Slots,
    feeds: Vec<Option<Arc<ActiveFeed>>>,
    /// The SAT>IP numbering of the pool's frontends, fixed with the pool.
    satip: Arc<[SatipFe]>,
    /// Unix time when this configuration took effect: the start of the emulator's running
    /// time (services that come and go count from it).
    started_unix_s: i64,
    /// Every live lease, so that a frontend leaving the pool can move its users
    /// ([`membership`]).
    leases: Vec<Weak<LeaseCore>>,
    /// Bumped at each change of the set of frontends.
    generation: u64,
}

impl Registry {
    fn new(config: BroadcastConfig) -> Self {
        let mut backends = Vec::new();
        let mut slots = Vec::new();
        if config.emulator.hardware == "auto" {
            for hw in hardware::discover(std::path::Path::new("/dev/dvb")) {
                slots.push(Slot {
                    adapter: hw.adapter,
                    frontend: hw.frontend,
                    delsys: hw.delsys.clone(),
                    tuned: None,
                    users: 0,
                    remote: false,
                });
                backends.push(Backend::Hardware(hw));
            }
        }
        let first_emulated = slots.iter().map(|s| s.adapter + 1).max().unwrap_or(0);
        for (i, a) in config.adapter.iter().enumerate() {
            slots.push(Slot {
                adapter: first_emulated + i as u32,
                frontend: 0,
                delsys: a
                    .delsys
                    .iter()
                    .filter_map(|d| DelSys::from_nick(d))
                    .collect(),
                tuned: None,
                users: 0,
                remote: false,
            });
            backends.push(Backend::Emulated(a.clone()));
        }
        let faults = backends
            .iter()
            .map(|b| {
                Arc::new(Mutex::new(emulated::FaultState::new(match b {
                    Backend::Emulated(a) => a.faults.clone(),
                    Backend::Hardware(_) | Backend::Remote(_) => Faults::default(),
                })))
            })
            .collect();
        let n = slots.len();
        let satip = satip_numbering(slots.iter().map(|s| s.delsys.as_slice())).into();
        Self {
            config,
            backends,
            faults,
            pool: Slots::new(slots),
            feeds: vec![None; n],
            satip,
            started_unix_s: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs() as i64)
                .unwrap_or(0),
            leases: Vec::new(),
            generation: 0,
        }
    }

    /// The name of frontend `index`.
    fn name_of(&self, index: usize) -> String {
        match &self.backends[index] {
            Backend::Emulated(a) => a.name.clone(),
            Backend::Hardware(h) => h.name.clone(),
            Backend::Remote(r) => r.name(),
        }
    }

    /// Starts the feed of frontend `index` (just granted, idle until now) tuned to
    /// `transponder`.
    fn start_feed(
        &self,
        index: usize,
        transponder: &Transponder,
        dvbsrc_properties: &[(String, String)],
        counters: &Arc<FeedCounters>,
    ) -> Result<Arc<ActiveFeed>, String> {
        let fanout = Arc::new(Fanout::new(counters.clone()));
        let status = Arc::new(Mutex::new(TunerStatus {
            adapter: self.pool.slots[index].adapter,
            frontend: self.pool.slots[index].frontend,
            name: self.name_of(index),
            transponder: Some(transponder.clone()),
            ..Default::default()
        }));
        let backend = match &self.backends[index] {
            Backend::Emulated(a) => {
                let mux = self
                    .config
                    .mux
                    .iter()
                    .find(|m| {
                        m.transponder()
                            .is_some_and(|t| t.same_transponder(transponder))
                    })
                    .cloned();
                ActiveBackend::Emulated(emulated::EmulatedFeed::start(
                    a.clone(),
                    self.faults[index].clone(),
                    emulated::Reception {
                        mux,
                        network: self.config.mux.clone(),
                        epoch_unix_s: self.started_unix_s,
                        cache_dir: self.config.cache_dir(),
                    },
                    fanout.clone(),
                    status.clone(),
                ))
            }
            Backend::Hardware(h) => ActiveBackend::Hardware(hardware::HardwareFeed::start(
                h,
                dvbsrc_properties,
                fanout.clone(),
                status.clone(),
            )?),
            Backend::Remote(r) => ActiveBackend::Remote(satip_remote::RemoteFeed::start(
                r,
                transponder,
                dvbsrc_properties,
                fanout.clone(),
                status.clone(),
            )?),
        };
        Ok(Arc::new(ActiveFeed {
            fanout,
            status,
            _backend: backend,
        }))
    }
}

/// Errors of the pool's own API (leasing has [`LeaseError`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PoolApiError {
    /// [`Pool::configure`] while frontends are leased.
    InUse,
    /// No frontend at this adapter number.
    NoAdapter(u32),
    /// The frontend at this adapter number is real hardware (faults are emulated only).
    NotEmulated(u32),
    /// Generating the content of an emulated mux failed.
    Content { mux: String, reason: String },
}

impl std::fmt::Display for PoolApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PoolApiError::InUse => {
                f.write_str("cannot reconfigure the tuner pool while frontends are in use")
            }
            PoolApiError::NoAdapter(a) => write!(f, "no adapter {a}"),
            PoolApiError::NotEmulated(a) => write!(f, "adapter {a} is not emulated"),
            PoolApiError::Content { mux, reason } => write!(f, "mux {mux:?}: {reason}"),
        }
    }
}

impl std::error::Error for PoolApiError {}

/// A tuner pool: frontends, their feeds and who uses them. Cheap to clone (a handle).
///
/// The elements use the process-wide [`Pool::default_pool`] (gst-launch has nothing else to
/// give them) unless their pipeline hands them another one in a [`pool_context`]; a server can
/// own its pool ([`Pool::new`]) and two pools live side by side in one process.
#[derive(Clone, glib::Boxed)]
#[boxed_type(name = "GstDvb2IpTunerPool")]
pub struct Pool(Arc<PoolShared>);

struct PoolShared {
    /// `None` until the default pool is first used or configured.
    registry: Mutex<Option<Registry>>,
    /// Kept across reconfigurations.
    counters: Arc<FeedCounters>,
    /// Told about every change of the set of frontends ([`Pool::on_membership_change`]).
    listeners: membership::Listeners,
    /// Background (preemptible) leases ([`background`]).
    background: background::Holders,
}

impl PoolShared {
    fn new(registry: Option<Registry>) -> Arc<Self> {
        Arc::new(PoolShared {
            registry: Mutex::new(registry),
            counters: Arc::default(),
            listeners: Default::default(),
            background: Default::default(),
        })
    }
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Pool").field(&Arc::as_ptr(&self.0)).finish()
    }
}

impl PartialEq for Pool {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

static DEFAULT_POOL: Lazy<Pool> = Lazy::new(|| Pool(PoolShared::new(None)));
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// `GstContext` type carrying a [`Pool`] to the elements (field [`POOL_CONTEXT_FIELD`]).
pub const POOL_CONTEXT: &str = "dvb2ip.tuner-pool";
/// The structure field of a [`POOL_CONTEXT`] context holding the pool.
pub const POOL_CONTEXT_FIELD: &str = "pool";

/// A context handing `pool` to the elements of a pipeline (`set_context` on the pipeline, a
/// bin or a media's element; elements added later get it from their bin).
pub fn pool_context(pool: &Pool) -> gst::Context {
    let mut ctx = gst::Context::new(POOL_CONTEXT, true);
    ctx.get_mut()
        .expect("new context is writable")
        .structure_mut()
        .set(POOL_CONTEXT_FIELD, pool.clone());
    ctx
}

/// The pool a [`POOL_CONTEXT`] context carries.
pub fn pool_of_context(ctx: &gst::ContextRef) -> Option<Pool> {
    if ctx.context_type() != POOL_CONTEXT {
        return None;
    }
    ctx.structure().get::<Pool>(POOL_CONTEXT_FIELD).ok()
}

/// The pool an element was given through a [`POOL_CONTEXT`] context: asks its parents
/// (need-context, answered by a bin holding one) when it has none yet; else the default pool.
pub fn pool_for_element(element: &gst::Element, held: &Mutex<Option<Pool>>) -> Pool {
    if let Some(p) = held.lock().unwrap().clone() {
        return p;
    }
    let msg = gst::message::NeedContext::builder(POOL_CONTEXT)
        .src(element)
        .build();
    // Bins answer synchronously by setting their context on the element (set_context).
    let _ = element.post_message(msg);
    held.lock()
        .unwrap()
        .clone()
        .unwrap_or_else(|| Pool::default_pool().clone())
}

impl Pool {
    /// A pool of its own with `config` (real frontends too when `[emulator] hardware`).
    pub fn new(config: BroadcastConfig) -> Pool {
        Pool(PoolShared::new(Some(Registry::new(config))))
    }

    /// The process-wide pool of elements given no other: configured on first use from
    /// `$DVB2IP_CONFIG` or the embedded default, or by [`Pool::configure`].
    pub fn default_pool() -> &'static Pool {
        &DEFAULT_POOL
    }

    fn with_registry<R>(&self, f: impl FnOnce(&mut Registry) -> R) -> R {
        let mut g = self.0.registry.lock().unwrap();
        let reg = g.get_or_insert_with(|| Registry::new(default_config()));
        f(reg)
    }

    /// Replaces the pool's configuration. Fails while any frontend is leased.
    pub fn configure(&self, config: BroadcastConfig) -> Result<(), PoolApiError> {
        let mut g = self.0.registry.lock().unwrap();
        if let Some(reg) = g.as_ref() {
            if reg.pool.slots.iter().any(|s| s.users > 0) {
                return Err(PoolApiError::InUse);
            }
        }
        *g = Some(Registry::new(config));
        Ok(())
    }

    /// What the pool's feeds have carried and copied so far.
    pub fn counters(&self) -> &FeedCounters {
        &self.0.counters
    }

    /// The current configuration.
    pub fn current_config(&self) -> BroadcastConfig {
        self.with_registry(|r| r.config.clone())
    }

    /// Every frontend of the pool.
    pub fn frontends(&self) -> Vec<FrontendInfo> {
        self.with_registry(|r| {
            r.pool
                .slots
                .iter()
                .enumerate()
                .map(|(i, s)| FrontendInfo {
                    index: i,
                    adapter: s.adapter,
                    frontend: s.frontend,
                    name: r.name_of(i),
                    delsys: s.delsys.clone(),
                    emulated: matches!(r.backends[i], Backend::Emulated(_)),
                    users: s.users,
                    tuned: s.tuned.clone(),
                    remote: match &r.backends[i] {
                        Backend::Remote(f) => Some(f.report()),
                        _ => None,
                    },
                })
                .collect()
        })
    }

    /// The SAT>IP frontend numbers of the pool: `fe=n` is entry `n - 1`, in X_SATIPCAP order
    /// ([`satip_numbering`]). X_SATIPCAP, the `fe=` mapping and the reported `tuner=` all use
    /// it. Computed once with the pool (status strings ask for it several times a second per
    /// stream).
    pub fn satip_frontends(&self) -> Arc<[SatipFe]> {
        self.with_registry(|r| r.satip.clone())
    }

    /// Signal status of pool frontend `index` while it runs (lock, level, quality, TS errors
    /// since it was opened); `None` when it is idle or does not exist.
    pub fn frontend_status(&self, index: usize) -> Option<TunerStatus> {
        self.with_registry(|r| r.feeds.get(index)?.as_ref().map(|f| f.status_now()))
    }

    /// Unix time (s) when the pool's current configuration took effect: the start of the
    /// emulator's running time, from which services that come and go count their periods.
    pub fn started_unix_s(&self) -> i64 {
        self.with_registry(|r| r.started_unix_s)
    }

    /// Changes the fault knobs of the emulated frontend at `adapter` while it runs (packet
    /// drops, bit errors, lock loss and table loss at once; a lock failure from the next tune
    /// on). Their random draws restart from `faults.seed` when it is set.
    pub fn set_faults(&self, adapter: u32, faults: Faults) -> Result<(), PoolApiError> {
        self.with_registry(|r| {
            let i = r
                .pool
                .slots
                .iter()
                .position(|s| s.adapter == adapter)
                .ok_or(PoolApiError::NoAdapter(adapter))?;
            if !matches!(r.backends[i], Backend::Emulated(_)) {
                return Err(PoolApiError::NotEmulated(adapter));
            }
            *r.faults[i].lock().unwrap() = emulated::FaultState::new(faults);
            Ok(())
        })
    }

    /// Generates the content of every configured multiplex now (the launcher does this at
    /// start so the first client does not wait).
    pub fn prepare_content(&self) -> Result<(), PoolApiError> {
        let cfg = self.current_config();
        let dir = cfg.cache_dir();
        for m in &cfg.mux {
            emulated::build_spec(m, &cfg.mux, &dir, 0).map_err(|reason| PoolApiError::Content {
                mux: m.name.clone(),
                reason,
            })?;
        }
        Ok(())
    }
}

/// The configuration used when nobody called [`configure`]: the file named by `$DVB2IP_CONFIG`
/// if set and valid (a broken one is reported on stderr and the embedded default is used), else
/// the embedded default.
fn default_config() -> BroadcastConfig {
    if let Some(p) = std::env::var_os("DVB2IP_CONFIG") {
        match BroadcastConfig::load(std::path::Path::new(&p)) {
            Ok(c) => return c,
            Err(e) => eprintln!("dvb2ip: ignoring DVB2IP_CONFIG: {e}"),
        }
    }
    BroadcastConfig::embedded()
}

/// [`Pool::configure`] of the default pool.
pub fn configure(config: BroadcastConfig) -> Result<(), PoolApiError> {
    Pool::default_pool().configure(config)
}

/// [`Pool::current_config`] of the default pool.
pub fn current_config() -> BroadcastConfig {
    Pool::default_pool().current_config()
}

/// [`Pool::frontends`] of the default pool.
pub fn frontends() -> Vec<FrontendInfo> {
    Pool::default_pool().frontends()
}

/// [`Pool::satip_frontends`] of the default pool.
pub fn satip_frontends() -> Arc<[SatipFe]> {
    Pool::default_pool().satip_frontends()
}

/// [`Pool::frontend_status`] of the default pool.
pub fn frontend_status(index: usize) -> Option<TunerStatus> {
    Pool::default_pool().frontend_status(index)
}

/// [`Pool::set_faults`] of the default pool.
pub fn set_faults(adapter: u32, faults: Faults) -> Result<(), PoolApiError> {
    Pool::default_pool().set_faults(adapter, faults)
}

/// [`Pool::prepare_content`] of the default pool.
pub fn prepare_content() -> Result<(), PoolApiError> {
    Pool::default_pool().prepare_content()
}

/// The multiplexer description of an emulated mux, generating its content if needed;
/// `network` is every configured mux (what its NIT announces). Services that come and go
/// count their periods from the Unix epoch here.
pub fn mux_spec(
    m: &config::MuxConfig,
    network: &[config::MuxConfig],
    cache_dir: &std::path::Path,
) -> Result<crate::proto::mux::MuxSpec, String> {
    emulated::build_spec(m, network, cache_dir, 0)
}

/// What a lease asks for.
#[derive(Debug, Clone)]
pub struct LeaseRequest {
    pub transponder: Transponder,
    pub adapter: Option<u32>,
    pub frontend: Option<u32>,
    pub pids: PidFilter,
    /// Give up when no lock within this time (reported through `FeedSink::tune_failed`).
    pub tuning_timeout: Duration,
    /// Extra `dvbsrc` properties (name, value) for hardware frontends.
    pub dvbsrc_properties: Vec<(String, String)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeaseError {
    Pool(PoolError),
    Backend(String),
}

impl std::fmt::Display for LeaseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LeaseError::Pool(e) => e.fmt(f),
            LeaseError::Backend(e) => f.write_str(e),
        }
    }
}

impl std::error::Error for LeaseError {}

/// A frontend in use; dropping it unsubscribes and, for the last user, stops the frontend.
/// When its frontend leaves the pool ([`membership`]) the lease moves to another frontend that
/// tunes the same transponder, or is left without one (`status()` then says unlocked) until
/// one joins.
pub struct Lease {
    pool: Pool,
    core: Arc<LeaseCore>,
    /// Set for a background lease ([`Pool::lease_background`]).
    background: Option<Arc<background::Holder>>,
}

/// The part of a lease the pool reaches too (to move it).
pub(crate) struct LeaseCore {
    sub: Arc<Subscriber>,
    transponder: Transponder,
    tuning_timeout: Duration,
    dvbsrc_properties: Vec<(String, String)>,
    state: Mutex<LeaseState>,
}

/// Where a lease is served now. Lock order: the registry, then this.
pub(crate) struct LeaseState {
    /// Pool index of its frontend; `None` while no frontend serves it.
    index: Option<usize>,
    shared: bool,
    feed: Option<Arc<ActiveFeed>>,
    /// Adapter, frontend and name of its (last) frontend.
    info: (u32, u32, String),
}

impl std::fmt::Debug for Lease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let st = self.core.state.lock().unwrap();
        f.debug_struct("Lease")
            .field("index", &st.index)
            .field("shared", &st.shared)
            .finish()
    }
}

impl Lease {
    /// Changes the PIDs this subscriber receives, without retuning.
    pub fn set_pids(&self, pids: PidFilter) {
        *self.core.sub.filter.lock().unwrap() = pids;
    }

    /// The status of the frontend serving the lease; unlocked (level and quality 0) while no
    /// frontend serves it.
    pub fn status(&self) -> TunerStatus {
        let (feed, info) = {
            let st = self.core.state.lock().unwrap();
            (st.feed.clone(), st.info.clone())
        };
        match feed {
            Some(f) => f.status_now(),
            None => TunerStatus {
                adapter: info.0,
                frontend: info.1,
                name: info.2,
                transponder: Some(self.core.transponder.clone()),
                ..Default::default()
            },
        }
    }

    pub fn adapter(&self) -> u32 {
        self.core.state.lock().unwrap().info.0
    }

    pub fn frontend(&self) -> u32 {
        self.core.state.lock().unwrap().info.1
    }

    pub fn frontend_name(&self) -> String {
        self.core.state.lock().unwrap().info.2.clone()
    }

    /// True when the frontend was already tuned for another user.
    pub fn is_shared(&self) -> bool {
        self.core.state.lock().unwrap().shared
    }

    /// Index of the frontend in [`frontends`]; `usize::MAX` while no frontend serves the
    /// lease (see [`Lease::frontend_index`]).
    pub fn index(&self) -> usize {
        self.frontend_index().unwrap_or(usize::MAX)
    }

    /// Index of the frontend in [`frontends`], `None` while no frontend serves the lease (its
    /// own left the pool and no other could take it over).
    pub fn frontend_index(&self) -> Option<usize> {
        self.core.state.lock().unwrap().index
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        let (stopped, notes) = {
            let mut g = self.pool.0.registry.lock().unwrap();
            let mut st = self.core.state.lock().unwrap();
            if let Some(f) = st.feed.take() {
                f.fanout.remove(self.core.sub.id);
            }
            let index = st.index.take();
            drop(st);
            let Some(reg) = g.as_mut() else { return };
            reg.leases
                .retain(|w| w.strong_count() > 0 && !std::ptr::eq(w.as_ptr(), &*self.core));
            match index {
                Some(i) if reg.pool.release(i) => {
                    let stopped = reg.feeds[i].take();
                    // A frontend became free: leases left without one may take it.
                    (stopped, migrate::resume(reg, &self.pool.0.counters))
                }
                _ => (None, Default::default()),
            }
        };
        // The feed stops (joins its thread) outside the registry lock, before a lease that
        // takes its frontend over is told.
        drop(stopped);
        notes.deliver();
        if let Some(h) = &self.background {
            background::release_on_drop(&self.pool, h);
        }
    }
}

/// [`Pool::lease`] on the default pool.
pub fn lease(req: LeaseRequest, sink: Arc<dyn FeedSink>) -> Result<Lease, LeaseError> {
    Pool::default_pool().lease(req, sink)
}

impl Pool {
    /// Leases a frontend for `req`; `sink` receives the stream and status.
    pub fn lease(&self, req: LeaseRequest, sink: Arc<dyn FeedSink>) -> Result<Lease, LeaseError> {
        lease_from(self, req, sink)
    }
}

fn lease_from(
    pool: &Pool,
    req: LeaseRequest,
    sink: Arc<dyn FeedSink>,
) -> Result<Lease, LeaseError> {
    lease_with(pool, req, sink, None)
}

/// A lease; a background one with `background` (its revoke notice).
fn lease_with(
    pool: &Pool,
    req: LeaseRequest,
    sink: Arc<dyn FeedSink>,
    background: Option<background::RevokeNotice>,
) -> Result<Lease, LeaseError> {
    // Background leases taken for this one: told once the registry lock is released (declared
    // first, dropped last, whichever way this returns).
    let mut revoked = background::Revoked::default();
    let mut g = pool.0.registry.lock().unwrap();
    let reg = g.get_or_insert_with(|| Registry::new(default_config()));
    let request = Request {
        transponder: req.transponder.clone(),
        adapter: req.adapter,
        frontend: req.frontend,
    };
    // A viewer finding every frontend busy takes one that only background leases use.
    let grant = match reg.pool.acquire(&request) {
        Err(PoolError::Busy) if background.is_none() => {
            revoked = background::preempt(pool, reg, &request);
            reg.pool.acquire(&request)
        }
        r => r,
    }
    .map_err(LeaseError::Pool)?;
    let index = grant.index();
    let (adapter, frontend) = (
        reg.pool.slots[index].adapter,
        reg.pool.slots[index].frontend,
    );
    let name = reg.name_of(index);
    let feed = match (grant, reg.feeds[index].clone()) {
        (Grant::Shared(_), Some(f)) => f,
        _ => match reg.start_feed(
            index,
            &req.transponder,
            &req.dvbsrc_properties,
            &pool.0.counters,
        ) {
            Ok(f) => {
                reg.feeds[index] = Some(f.clone());
                f
            }
            Err(e) => {
                reg.pool.release(index);
                return Err(LeaseError::Backend(e));
            }
        },
    };
    let locked = feed.status.lock().unwrap().locked;
    let sub = Arc::new(Subscriber {
        id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
        filter: Arc::new(Mutex::new(req.pids)),
        sink: sink.clone(),
        lock_deadline: Mutex::new((!locked).then(|| Instant::now() + req.tuning_timeout)),
    });
    let last = feed.fanout.add(sub.clone());
    let st = feed.status.lock().unwrap().clone();
    let core = Arc::new(LeaseCore {
        sub: sub.clone(),
        transponder: req.transponder,
        tuning_timeout: req.tuning_timeout,
        dvbsrc_properties: req.dvbsrc_properties,
        state: Mutex::new(LeaseState {
            index: Some(index),
            shared: matches!(grant, Grant::Shared(_)),
            feed: Some(feed.clone()),
            info: (adapter, frontend, name),
        }),
    });
    reg.leases.retain(|w| w.strong_count() > 0);
    reg.leases.push(Arc::downgrade(&core));
    let background = background.map(|n| background::register(pool, &core, sub.id, n));
    drop(g);
    drop(revoked);
    if st.locked {
        sink.lock_changed(true, &st);
        feed.fanout.prime(&sub, last);
    }
    Ok(Lease {
        pool: pool.clone(),
        core,
        background,
    })
}
