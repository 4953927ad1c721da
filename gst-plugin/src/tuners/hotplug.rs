//! Real adapters joining and leaving at run time (dvb-scan digest §11.4): inotify on `<root>`
//! (for `dvb`), on `<root>/dvb` (for `adapterN`) and on each `adapterN` (for its nodes, with
//! `IN_ATTRIB` for udev's chown/chmod). Watch first, then enumerate.
//!
//! A new `adapterN` is probed once its `frontendM` nodes appear (udev creates them after the
//! directory): a frontend is ready when it opens read-only (never read-write: that would
//! disturb a process tuning it) and answers `FE_GET_INFO` and `DTV_ENUM_DELSYS`, and a demux
//! and a dvr node exist. Not ready yet (`ENOENT`, `EACCES`, `EBUSY`, no node): retried every
//! [`RETRY_INTERVAL`] for [`RETRY_FOR`], then left for the next event. Anything else (say a
//! file that is no DVB device) fails the probe, logged, and nothing joins. A removed
//! `adapterN` or `frontendM` leaves the pool ([`Pool::remove_hardware`]), whose streams move
//! to another frontend (`migrate.rs`).
//!
//! The root is `/dev` by default; tests point it at a directory of their own and give the
//! watcher a probe of their own ([`WatchOptions::probe`]).

use std::collections::{BTreeMap, HashMap};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::hardware::HwFrontend;
use super::Pool;
use crate::proto::tuner_pool::DelSys;
use crate::sys::inotify::{self, Inotify};

pub(crate) static CAT: once_cell::sync::Lazy<gst::DebugCategory> =
    once_cell::sync::Lazy::new(|| {
        gst::DebugCategory::new(
            "dvb2iphotplug",
            gst::DebugColorFlags::empty(),
            Some("dvb2ip tuner hotplug"),
        )
    });

/// How often a frontend that is not ready yet is probed again.
pub const RETRY_INTERVAL: Duration = Duration::from_millis(100);
/// How long a new adapter is probed again before waiting for the next event.
pub const RETRY_FOR: Duration = Duration::from_secs(5);

/// Why a probe gave nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProbeError {
    /// Not ready yet (no frontend node, or one not openable yet): try again soon.
    NotReady(String),
    /// Not a usable frontend: logged, not retried until the next event.
    Failed(String),
}

impl std::fmt::Display for ProbeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ProbeError::NotReady(s) => write!(f, "not ready: {s}"),
            ProbeError::Failed(s) => f.write_str(s),
        }
    }
}

/// Probes adapter directory `dir` (`<root>/dvb/adapterN`, `N` given): its frontends.
pub type Probe = dyn Fn(&Path, u32) -> Result<Vec<HwFrontend>, ProbeError> + Send + Sync;

/// Told about each [`HotplugEvent`] (from the watcher's thread).
pub type OnEvent = dyn Fn(&HotplugEvent) + Send + Sync;

/// What the watcher saw and did, in order (for logs and tests).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HotplugEvent {
    /// `<root>/dvb` is watched (it existed at start or appeared).
    DvbDirectory,
    /// `adapterN` appeared (or was there at start).
    AdapterAppeared(u32),
    /// The probe of `adapterN` found frontends, which joined the pool.
    Joined { adapter: u32, frontends: Vec<u32> },
    /// The probe of `adapterN` failed; nothing joined.
    ProbeFailed { adapter: u32, reason: String },
    /// `adapterN` (all of its frontends, or one) left the pool.
    Left { adapter: u32, frontend: Option<u32> },
}

impl std::fmt::Display for HotplugEvent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HotplugEvent::DvbDirectory => f.write_str("watching the dvb directory"),
            HotplugEvent::AdapterAppeared(n) => write!(f, "adapter{n} appeared"),
            HotplugEvent::Joined { adapter, frontends } => {
                write!(f, "adapter{adapter} joined with frontends {frontends:?}")
            }
            HotplugEvent::ProbeFailed { adapter, reason } => {
                write!(f, "adapter{adapter}: probe failed: {reason}")
            }
            HotplugEvent::Left {
                adapter,
                frontend: None,
            } => write!(f, "adapter{adapter} left"),
            HotplugEvent::Left {
                adapter,
                frontend: Some(fe),
            } => write!(f, "adapter{adapter}/frontend{fe} left"),
        }
    }
}

/// Settings of a [`Watcher`].
#[derive(Clone)]
pub struct WatchOptions {
    /// The directory holding `dvb` (`/dev`).
    pub root: PathBuf,
    /// How an adapter is probed ([`probe_adapter`] by default).
    pub probe: Arc<Probe>,
    /// Told about each [`HotplugEvent`] (from the watcher's thread).
    pub on_event: Option<Arc<OnEvent>>,
}

impl Default for WatchOptions {
    fn default() -> Self {
        Self {
            root: PathBuf::from("/dev"),
            probe: Arc::new(probe_adapter),
            on_event: None,
        }
    }
}

impl std::fmt::Debug for WatchOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WatchOptions")
            .field("root", &self.root)
            .finish()
    }
}

/// The running watcher; dropping it stops its thread.
#[derive(Debug)]
pub struct Watcher {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for Watcher {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Pool {
    /// Starts watching `opts.root` for DVB adapters: they join and leave this pool as their
    /// device nodes come and go. Real frontends in the pool that are not under the root leave
    /// at once. Fails when the root cannot be watched.
    pub fn watch_devices(&self, opts: WatchOptions) -> io::Result<Watcher> {
        let ino = Inotify::new()?;
        let mut w = WatchState {
            pool: self.clone(),
            root_wd: ino.add_watch(&opts.root, DIR_MASK)?,
            ino,
            dvb_wd: None,
            adapters: HashMap::new(),
            pending: BTreeMap::new(),
            opts,
        };
        // Watch first, then enumerate.
        w.watch_dvb();
        let present: Vec<u32> = w.adapters.values().copied().collect();
        for (a, f) in w.pool.hardware_frontends() {
            if !present.contains(&a) {
                w.pool.remove_hardware(a, Some(f));
            }
        }
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = stop.clone();
        let thread = std::thread::Builder::new()
            .name("dvb2ip-hotplug".into())
            .spawn(move || w.run(&stop2))?;
        Ok(Watcher {
            stop,
            thread: Some(thread),
        })
    }
}

const DIR_MASK: u32 = inotify::IN_CREATE
    | inotify::IN_DELETE
    | inotify::IN_MOVED_TO
    | inotify::IN_MOVED_FROM
    | inotify::IN_DELETE_SELF
    | inotify::IN_MOVE_SELF;
const ADAPTER_MASK: u32 = DIR_MASK | inotify::IN_ATTRIB;

/// A probe due for an adapter.
struct Pending {
    /// Give up retrying (until the next event) after this.
    until: Instant,
    next: Instant,
}

struct WatchState {
    pool: Pool,
    ino: Inotify,
    opts: WatchOptions,
    root_wd: i32,
    dvb_wd: Option<i32>,
    /// Watch descriptor → adapter number.
    adapters: HashMap<i32, u32>,
    pending: BTreeMap<u32, Pending>,
}

fn adapter_number(name: &std::ffi::OsStr) -> Option<u32> {
    name.to_str()?.strip_prefix("adapter")?.parse().ok()
}

fn frontend_number(name: &std::ffi::OsStr) -> Option<u32> {
    name.to_str()?.strip_prefix("frontend")?.parse().ok()
}

impl WatchState {
    fn dvb_dir(&self) -> PathBuf {
        self.opts.root.join("dvb")
    }

    fn event(&self, e: HotplugEvent) {
        match &e {
            HotplugEvent::ProbeFailed { .. } => gst::warning!(CAT, "{e}"),
            _ => gst::info!(CAT, "{e}"),
        }
        if let Some(f) = &self.opts.on_event {
            f(&e);
        }
    }

    /// Watches `<root>/dvb` when it exists and every adapter in it.
    fn watch_dvb(&mut self) {
        if self.dvb_wd.is_some() {
            return;
        }
        let dir = self.dvb_dir();
        let Ok(wd) = self.ino.add_watch(&dir, DIR_MASK) else {
            return;
        };
        self.dvb_wd = Some(wd);
        self.event(HotplugEvent::DvbDirectory);
        let mut found: Vec<u32> = std::fs::read_dir(&dir)
            .map(|rd| {
                rd.flatten()
                    .filter_map(|e| adapter_number(&e.file_name()))
                    .collect()
            })
            .unwrap_or_default();
        found.sort_unstable();
        for n in found {
            self.adapter_appeared(n);
        }
    }

    fn adapter_appeared(&mut self, n: u32) {
        if self.adapters.values().any(|a| *a == n) {
            return;
        }
        let dir = self.dvb_dir().join(format!("adapter{n}"));
        match self.ino.add_watch(&dir, ADAPTER_MASK) {
            Ok(wd) => {
                self.adapters.insert(wd, n);
                self.event(HotplugEvent::AdapterAppeared(n));
                self.schedule(n);
            }
            Err(e) => gst::info!(CAT, "cannot watch {}: {e}", dir.display()),
        }
    }

    fn schedule(&mut self, n: u32) {
        let now = Instant::now();
        self.pending.insert(
            n,
            Pending {
                until: now + RETRY_FOR,
                next: now,
            },
        );
    }

    fn adapter_left(&mut self, n: u32) {
        self.pending.remove(&n);
        let wds: Vec<i32> = self
            .adapters
            .iter()
            .filter(|(_, a)| **a == n)
            .map(|(w, _)| *w)
            .collect();
        for wd in wds {
            self.adapters.remove(&wd);
            let _ = self.ino.rm_watch(wd);
        }
        self.pool.remove_hardware(n, None);
        self.event(HotplugEvent::Left {
            adapter: n,
            frontend: None,
        });
    }

    fn dvb_left(&mut self) {
        if let Some(wd) = self.dvb_wd.take() {
            let _ = self.ino.rm_watch(wd);
        }
        let all: Vec<u32> = self.adapters.values().copied().collect();
        for n in all {
            self.adapter_left(n);
        }
    }

    fn on_event(&mut self, e: &inotify::Event) {
        let created = e.mask & (inotify::IN_CREATE | inotify::IN_MOVED_TO) != 0;
        let deleted = e.mask & (inotify::IN_DELETE | inotify::IN_MOVED_FROM) != 0;
        if e.wd == self.root_wd {
            if e.name == "dvb" {
                if created {
                    self.watch_dvb();
                } else if deleted {
                    self.dvb_left();
                }
            }
        } else if Some(e.wd) == self.dvb_wd {
            if e.mask & (inotify::IN_DELETE_SELF | inotify::IN_MOVE_SELF) != 0 {
                self.dvb_left();
            } else if let Some(n) = adapter_number(&e.name) {
                if created {
                    self.adapter_appeared(n);
                } else if deleted {
                    self.adapter_left(n);
                }
            }
        } else if let Some(&n) = self.adapters.get(&e.wd) {
            if e.mask & inotify::IN_IGNORED != 0 {
                // The adapter directory went away (its deletion reaches us from the dvb
                // directory too).
                self.adapters.remove(&e.wd);
                return;
            }
            let node = e.name.to_str().unwrap_or("");
            if deleted {
                if let Some(fe) = frontend_number(&e.name) {
                    self.pending.remove(&n);
                    self.pool.remove_hardware(n, Some(fe));
                    self.event(HotplugEvent::Left {
                        adapter: n,
                        frontend: Some(fe),
                    });
                }
            } else if ["frontend", "demux", "dvr"]
                .iter()
                .any(|p| node.starts_with(p))
            {
                // A node appeared or udev changed its owner or mode: probe (again).
                let joined = self
                    .pool
                    .hardware_frontends()
                    .iter()
                    .any(|(a, f)| *a == n && Some(*f) == frontend_number(&e.name));
                if !joined {
                    self.schedule(n);
                }
            }
        }
    }

    fn probe_due(&mut self) {
        let now = Instant::now();
        let due: Vec<u32> = self
            .pending
            .iter()
            .filter(|(_, p)| p.next <= now)
            .map(|(n, _)| *n)
            .collect();
        for n in due {
            let dir = self.dvb_dir().join(format!("adapter{n}"));
            match (self.opts.probe)(&dir, n) {
                Ok(fes) if !fes.is_empty() => {
                    self.pending.remove(&n);
                    let numbers: Vec<u32> = fes.iter().map(|f| f.frontend).collect();
                    let change = self.pool.add_hardware(fes);
                    gst::info!(CAT, "adapter{n}: {change}");
                    self.event(HotplugEvent::Joined {
                        adapter: n,
                        frontends: numbers,
                    });
                }
                Ok(_) => self.retry_or_give_up(n, now, "no frontend node yet".into()),
                Err(ProbeError::NotReady(why)) => self.retry_or_give_up(n, now, why),
                Err(ProbeError::Failed(reason)) => {
                    self.pending.remove(&n);
                    self.event(HotplugEvent::ProbeFailed { adapter: n, reason });
                }
            }
        }
    }

    fn retry_or_give_up(&mut self, n: u32, now: Instant, why: String) {
        let Some(p) = self.pending.get_mut(&n) else {
            return;
        };
        if now >= p.until {
            self.pending.remove(&n);
            gst::info!(
                CAT,
                "adapter{n}: not ready after {RETRY_FOR:?} ({why}); waiting for the next event"
            );
        } else {
            p.next = now + RETRY_INTERVAL;
        }
    }

    fn run(mut self, stop: &AtomicBool) {
        while !stop.load(Ordering::Relaxed) {
            match self.ino.read_events(RETRY_INTERVAL) {
                Ok(events) => {
                    for e in &events {
                        if e.mask & inotify::IN_Q_OVERFLOW != 0 {
                            gst::warning!(CAT, "inotify queue overflow: enumerating again");
                            let known: Vec<u32> = self.adapters.values().copied().collect();
                            for n in known {
                                self.schedule(n);
                            }
                            continue;
                        }
                        self.on_event(e);
                    }
                }
                Err(e) => {
                    gst::error!(CAT, "inotify: {e}; hotplug stops");
                    return;
                }
            }
            self.probe_due();
        }
    }
}

/// The real probe of adapter directory `dir`: each `frontendM` (M < 32) opened read-only,
/// asked `FE_GET_INFO` and `DTV_ENUM_DELSYS`, with a `demuxM`/`dvrM` (or `demux0`/`dvr0`)
/// beside it. No frontend node (yet), or one that cannot be opened yet, is
/// [`ProbeError::NotReady`]; a node that is no DVB frontend is [`ProbeError::Failed`].
pub fn probe_adapter(dir: &Path, adapter: u32) -> Result<Vec<HwFrontend>, ProbeError> {
    use std::os::fd::AsFd;
    let mut out = Vec::new();
    let mut not_ready = None;
    let mut failed = None;
    for m in 0..32u32 {
        let path = dir.join(format!("frontend{m}"));
        if !path.exists() {
            continue;
        }
        let has = |kind: &str| {
            dir.join(format!("{kind}{m}")).exists() || dir.join(format!("{kind}0")).exists()
        };
        if !has("demux") || !has("dvr") {
            not_ready = Some(format!("{}: no demux/dvr node yet", path.display()));
            continue;
        }
        let f = match std::fs::OpenOptions::new().read(true).open(&path) {
            Ok(f) => f,
            Err(e)
                if matches!(
                    e.raw_os_error(),
                    Some(libc::ENOENT | libc::EACCES | libc::EBUSY | libc::EPERM)
                ) =>
            {
                not_ready = Some(format!("{}: {e}", path.display()));
                continue;
            }
            Err(e) => {
                failed = Some(format!("{}: {e}", path.display()));
                continue;
            }
        };
        let info = match crate::sys::dvb::frontend_info(f.as_fd()) {
            Ok(i) => i,
            Err(e) => {
                failed = Some(format!(
                    "{}: not a DVB frontend (FE_GET_INFO: {e})",
                    path.display()
                ));
                continue;
            }
        };
        let delsys: Vec<DelSys> = match crate::sys::dvb::enum_delsys(f.as_fd()) {
            Ok(d) => d.into_iter().filter_map(DelSys::from_u32).collect(),
            Err(e) => {
                failed = Some(format!("{}: DTV_ENUM_DELSYS: {e}", path.display()));
                continue;
            }
        };
        if delsys.is_empty() {
            failed = Some(format!("{}: lists no delivery system", path.display()));
            continue;
        }
        out.push(HwFrontend {
            adapter,
            frontend: m,
            name: info.name,
            delsys,
        });
    }
    if !out.is_empty() {
        return Ok(out);
    }
    if let Some(f) = failed {
        return Err(ProbeError::Failed(f));
    }
    Err(ProbeError::NotReady(not_ready.unwrap_or_else(|| {
        format!("{}: no frontend node yet", dir.display())
    })))
}
