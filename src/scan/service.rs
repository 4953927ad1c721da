//! The server's channel database and scans ([`Scans`], one per [`crate::core::Core`]): the
//! database of `server.state_dir` (none without one), scans started at start-up
//! (`[scan] on_start`), every `rescan_interval` and through the API, one at a time, on
//! background leases that viewers take back. Listeners hear of every database change (the
//! RTSP channel mounts follow it).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::{Duration, Instant};

use gstdvb2ip::proto::scan::classify::ServiceClass;
use gstdvb2ip::proto::scan::db::ChannelDb;
use gstdvb2ip::proto::scan::export;
use gstdvb2ip::tuners::config::BroadcastConfig;
use gstdvb2ip::tuners::Pool;
use serde::Serialize;

use super::config::{OnStart, ScanSection};
use super::engine::{self, Progress, ScanControl, ScanParams};
use super::store::DbStore;
use crate::config::Config;

type Listener = Box<dyn Fn(&ChannelDb) + Send + Sync>;

/// A service of the database as the server lists it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ChannelEntry {
    pub number: u32,
    pub name: String,
    pub provider: String,
    /// `tv`, `radio`, `data` or `other`.
    #[serde(rename = "type")]
    pub kind: String,
    pub scrambled: bool,
    /// The mux, e.g. `DVB-T2 474.00 MHz PLP 1`.
    pub mux: String,
    /// RTSP mount path (`/ch/<name>`).
    pub mount: String,
    /// SAT>IP query (tuning and PIDs).
    pub query: String,
    /// Seen in the last scan of its mux (false: missed, kept until K misses).
    pub seen: bool,
    /// A `[[channel]]` of the configuration serves this mount instead.
    pub overridden: bool,
}

/// Why a scan could not start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartError {
    /// No state directory: no channel database.
    NoDatabase,
    /// A scan is running.
    Running,
    /// The database could not be read.
    Broken(String),
}

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StartError::NoDatabase => {
                f.write_str("no channel database: set server.state_dir (or serve --state-dir)")
            }
            StartError::Running => f.write_str("a scan is already running"),
            StartError::Broken(e) => f.write_str(e),
        }
    }
}

/// The server's channel database and its scans.
pub struct Scans {
    pool: Pool,
    section: ScanSection,
    broadcast: BroadcastConfig,
    config_channels: Vec<String>,
    store: Option<DbStore>,
    load_error: Option<String>,
    db: RwLock<Arc<ChannelDb>>,
    progress: Mutex<Progress>,
    running: Mutex<Option<Arc<ScanControl>>>,
    listeners: Mutex<Vec<Listener>>,
    service: AtomicBool,
}

impl std::fmt::Debug for Scans {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scans").field("store", &self.store).finish()
    }
}

/// A mount name for a service name: lower-case letters and digits, `-` between words.
pub fn slug(name: &str) -> String {
    let mut s = String::new();
    for c in name.chars() {
        if c.is_ascii_alphanumeric() {
            s.push(c.to_ascii_lowercase());
        } else if !s.ends_with('-') && !s.is_empty() {
            s.push('-');
        }
    }
    let s = s.trim_end_matches('-').to_owned();
    if s.is_empty() {
        "channel".into()
    } else {
        s
    }
}

impl Scans {
    /// The scans of a server running `config` on `pool`; the database is read now.
    pub fn new(config: &Config, pool: Pool) -> Arc<Scans> {
        let store = (!config.server.state_dir.is_empty())
            .then(|| DbStore::in_dir(std::path::Path::new(&config.server.state_dir)));
        let (db, load_error) = match store.as_ref().map(DbStore::load) {
            None => (ChannelDb::new(), None),
            Some(Ok(db)) => (db, None),
            Some(Err(e)) => (ChannelDb::new(), Some(format!("{e:#}"))),
        };
        let services = db.channels().len();
        Arc::new(Scans {
            pool,
            section: config.scan.clone(),
            broadcast: config.broadcast.clone(),
            config_channels: config.channel.iter().map(|c| c.name.clone()).collect(),
            store,
            load_error,
            db: RwLock::new(Arc::new(db)),
            progress: Mutex::new(Progress {
                state: "idle".into(),
                services,
                ..Default::default()
            }),
            running: Mutex::new(None),
            listeners: Mutex::default(),
            service: AtomicBool::new(false),
        })
    }

    /// Whether the server has a channel database (a state directory).
    pub fn enabled(&self) -> bool {
        self.store.is_some()
    }

    /// Why the stored database could not be read (it names the file).
    pub fn load_error(&self) -> Option<&str> {
        self.load_error.as_deref()
    }

    /// The database now.
    pub fn db(&self) -> Arc<ChannelDb> {
        self.db.read().unwrap().clone()
    }

    pub fn progress(&self) -> Progress {
        self.progress.lock().unwrap().clone()
    }

    pub fn is_running(&self) -> bool {
        self.running.lock().unwrap().is_some()
    }

    /// Calls `f` after every database change (from the scan's thread; keep it short).
    pub fn on_change(&self, f: impl Fn(&ChannelDb) + Send + Sync + 'static) {
        self.listeners.lock().unwrap().push(Box::new(f));
    }

    fn publish(&self, db: &ChannelDb) {
        *self.db.write().unwrap() = Arc::new(db.clone());
        for l in self.listeners.lock().unwrap().iter() {
            l(db);
        }
    }

    /// The database's services in number order, with their mounts.
    pub fn channels(&self) -> Vec<ChannelEntry> {
        let db = self.db();
        let mut taken: Vec<String> = self.config_channels.clone();
        let mut out = Vec::new();
        for c in db.channels() {
            let s = c.service;
            let name = c.name();
            let base = slug(&name);
            let overridden = self.config_channels.contains(&base);
            let mut mount = base.clone();
            if !overridden {
                let mut n = 2;
                while taken.contains(&mount) {
                    mount = format!("{base}-{n}");
                    n += 1;
                }
                taken.push(mount.clone());
            }
            out.push(ChannelEntry {
                number: s.number,
                name,
                provider: s.provider.clone().unwrap_or_default(),
                kind: match s.class {
                    ServiceClass::Tv => "tv",
                    ServiceClass::Radio => "radio",
                    ServiceClass::Data => "data",
                    ServiceClass::Other => "other",
                }
                .into(),
                scrambled: s.scrambled,
                mux: c.mux.mux.label(),
                mount: format!("/ch/{mount}"),
                query: export::satip_query(&c),
                seen: s.misses == 0,
                overridden,
            });
        }
        out
    }

    /// Starts a scan in a thread of its own (known muxes, else the configured initial list).
    pub fn start(self: &Arc<Self>) -> Result<(), StartError> {
        let Some(store) = self.store.clone() else {
            return Err(StartError::NoDatabase);
        };
        if let Some(e) = &self.load_error {
            return Err(StartError::Broken(e.clone()));
        }
        let control = {
            let mut r = self.running.lock().unwrap();
            if r.is_some() {
                return Err(StartError::Running);
            }
            let c = ScanControl::new();
            *r = Some(c.clone());
            c
        };
        let db = (*self.db()).clone();
        {
            let mut p = self.progress.lock().unwrap();
            *p = Progress {
                state: "running".into(),
                services: db.channels().len(),
                ..Default::default()
            };
        }
        let me = self.clone();
        let spawned = std::thread::Builder::new()
            .name("dvb2ip-scan".into())
            .spawn(move || {
                let r = me.run_one(db, &store, &control);
                let mut p = me.progress.lock().unwrap();
                match r {
                    Ok(done) => *p = done,
                    Err(e) => {
                        gst::warning!(super::CAT, "scan failed: {e:#}");
                        p.state = "failed".into();
                        p.current.clear();
                        p.error = Some(format!("{e:#}"));
                    }
                }
                drop(p);
                *me.running.lock().unwrap() = None;
            });
        if spawned.is_err() {
            *self.running.lock().unwrap() = None;
            return Err(StartError::Broken("cannot start the scan thread".into()));
        }
        Ok(())
    }

    fn run_one(
        &self,
        db: ChannelDb,
        store: &DbStore,
        control: &ScanControl,
    ) -> anyhow::Result<Progress> {
        let (initial, origin) = self.section.initial_muxes(&self.broadcast, &db)?;
        let params = ScanParams {
            config: self.section.scan_config(),
            initial,
            origin,
            frontends: (self.section.frontends > 0).then_some(self.section.frontends),
        };
        let (db, outcome) = engine::run(
            &self.pool,
            db,
            params,
            control,
            &mut |db| {
                store.save(db)?;
                self.publish(db);
                Ok(())
            },
            &mut |e, p| {
                gst::info!(super::CAT, "scan: {e:?}");
                *self.progress.lock().unwrap() = p.clone();
            },
        )?;
        store.save(&db)?;
        self.publish(&db);
        Ok(outcome.progress)
    }

    /// Stops a running scan; returns whether one was running.
    pub fn stop(&self) -> bool {
        match self.running.lock().unwrap().as_ref() {
            Some(c) => {
                c.stop();
                self.progress.lock().unwrap().state = "stopping".into();
                true
            }
            None => false,
        }
    }

    /// Waits (at most `timeout`) until no scan runs; returns whether none does.
    pub fn wait_idle(&self, timeout: Duration) -> bool {
        let end = Instant::now() + timeout;
        while self.is_running() {
            if Instant::now() >= end {
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        true
    }

    /// The server's scanning: a scan now when `[scan] on_start` asks for one, and one every
    /// `rescan_interval` seconds. Once per server; nothing without a database.
    pub fn start_service(self: &Arc<Self>) {
        if !self.enabled() || self.service.swap(true, Ordering::AcqRel) {
            return;
        }
        let now = match self.section.on_start {
            OnStart::Always => true,
            OnStart::IfEmpty => self.db().is_empty(),
            OnStart::Never => false,
        };
        if now {
            if let Err(e) = self.start() {
                gst::warning!(super::CAT, "scan at start: {e}");
            }
        }
        let interval = self.section.rescan_interval;
        if interval == 0 {
            return;
        }
        let weak: Weak<Scans> = Arc::downgrade(self);
        let _ = std::thread::Builder::new()
            .name("dvb2ip-rescan".into())
            .spawn(move || {
                let mut next = Instant::now() + Duration::from_secs(interval);
                loop {
                    std::thread::sleep(Duration::from_secs(1));
                    let Some(me) = weak.upgrade() else { return };
                    if Instant::now() >= next {
                        next = Instant::now() + Duration::from_secs(interval);
                        if let Err(e) = me.start() {
                            gst::info!(super::CAT, "periodic rescan: {e}");
                        }
                    }
                }
            });
    }

    /// Names of the `[[channel]]` mounts (they override database channels of that name).
    pub fn config_channel_names(&self) -> &[String] {
        &self.config_channels
    }
}

/// The database's services for the M3U list and the status page (not those a `[[channel]]`
/// overrides): number, name, SAT>IP query, and provider, type and scrambling as detail.
pub fn description_channels(scans: &Scans) -> Vec<crate::ssdp::description::NumberedChannel> {
    scans
        .channels()
        .into_iter()
        .filter(|c| !c.overridden)
        .map(|c| crate::ssdp::description::NumberedChannel {
            number: c.number,
            detail: format!(
                "{}{}{}, {}",
                c.provider,
                if c.provider.is_empty() { "" } else { ", " },
                c.kind,
                if c.scrambled { "scrambled" } else { "free" }
            ),
            channel: crate::ssdp::description::Channel {
                title: c.name,
                query: c.query,
            },
        })
        .collect()
}
