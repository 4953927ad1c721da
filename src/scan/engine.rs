//! The scan engine on the tuner pool: `proto::scan`'s [`ScanSession`] (queue, collectors,
//! database rules) driven by real leases. Each mux is tuned through a background lease
//! ([`Pool::lease_background`]): on a frontend already on that transponder, else on a free
//! one that supports its delivery system, one mux per frontend, on every free frontend at once
//! (or at most `frontends`). A viewer who needs the frontend takes it back; the mux goes back
//! to the queue with no attempt or miss counted. The TS of each lease feeds its mux's
//! collector; finished muxes update the [`ChannelDb`], which is handed to `on_db` after each
//! (the caller writes it). A stop request ends the scan at once, keeping every finished mux.

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use gstdvb2ip::proto::satip::{DeliverySystem, Family, Polarisation};
use gstdvb2ip::proto::scan::collector::{FrontendStatus, Verdict};
use gstdvb2ip::proto::scan::db::ChannelDb;
use gstdvb2ip::proto::scan::mux::{blank_tuning, Mux};
use gstdvb2ip::proto::scan::queue::Origin;
use gstdvb2ip::proto::scan::session::{Event, ScanConfig, ScanSession};
use gstdvb2ip::proto::tuner_pool::PoolError;
use gstdvb2ip::proto::tuner_pool::{DelSys, Transponder};
use gstdvb2ip::tuners::config::MuxConfig;
use gstdvb2ip::tuners::{
    FeedSink, FrontendInfo, Lease, LeaseError, LeaseRequest, Pool, TunerStatus,
};
use serde::Serialize;

/// What one scan is given.
#[derive(Debug, Clone)]
pub struct ScanParams {
    /// Budgets, retries, discovery, miss counting.
    pub config: ScanConfig,
    /// Muxes to scan besides the database's known ones.
    pub initial: Vec<Mux>,
    /// Where `initial` came from (a raster's silent frequencies are not retried).
    pub origin: Origin,
    /// At most this many frontends at once (`None`: every free one).
    pub frontends: Option<usize>,
}

/// Progress of a scan, as the CLI prints it and the API serves it.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct Progress {
    /// `idle`, `running`, `stopping`, `finished`, `stopped`, `failed`.
    pub state: String,
    /// Muxes finished.
    pub muxes_done: usize,
    /// Muxes known to this scan (grows as NITs announce more).
    pub muxes_total: usize,
    /// Services in the database.
    pub services: usize,
    /// Muxes being scanned now (labels).
    pub current: Vec<String>,
    /// Muxes found / partial / failed in this scan.
    pub found: usize,
    pub partial: usize,
    pub failed: usize,
    /// Times a viewer took a frontend back.
    pub preempted: usize,
    /// Milliseconds since the scan started.
    pub elapsed_ms: u64,
    /// Why the last scan failed, if it did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Something that happened in a scan (for progress output).
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum ScanEvent {
    /// A mux is being tuned.
    Tune { mux: String, frontend: String },
    /// A mux did not lock and is queued again.
    Retry { mux: String, attempt: u32 },
    /// A viewer took the frontend; the mux is queued again.
    Preempted { mux: String },
    /// A mux is finished.
    MuxDone {
        mux: String,
        verdict: String,
        services: usize,
        added: usize,
        dropped: usize,
        discovered: Vec<String>,
    },
}

/// Shared with whoever may stop a scan.
#[derive(Debug, Default)]
pub struct ScanControl {
    stop: AtomicBool,
    wake: Mutex<Option<mpsc::Sender<Msg>>>,
}

impl ScanControl {
    pub fn new() -> Arc<ScanControl> {
        Arc::default()
    }

    /// Asks the scan to stop (it ends within its next wake-up, at most ~100 ms).
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Release);
        if let Some(tx) = self.wake.lock().unwrap().as_ref() {
            let _ = tx.send(Msg::Wake);
        }
    }

    pub fn is_stopped(&self) -> bool {
        self.stop.load(Ordering::Acquire)
    }
}

/// How a scan ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// Stopped before the queue was empty.
    pub stopped: bool,
    pub progress: Progress,
}

#[derive(Debug)]
enum Msg {
    Data(u64, gst::Buffer),
    Lock(u64, bool),
    Signal(u64),
    Revoked(u64),
    Wake,
}

/// The feed of one scan lease into the engine's channel (never blocks).
struct JobSink {
    job: u64,
    tx: Mutex<mpsc::Sender<Msg>>,
}

impl FeedSink for JobSink {
    fn push(&self, buffer: gst::Buffer) {
        let _ = self.tx.lock().unwrap().send(Msg::Data(self.job, buffer));
    }
    fn status(&self, st: &TunerStatus) {
        // A signal level while tuning: SIGNAL/CARRIER, so the collector waits for the lock.
        if st.level > 0 && !st.locked {
            let _ = self.tx.lock().unwrap().send(Msg::Signal(self.job));
        }
    }
    fn lock_changed(&self, locked: bool, _: &TunerStatus) {
        let _ = self.tx.lock().unwrap().send(Msg::Lock(self.job, locked));
    }
    fn tune_failed(&self, _: &str) {}
    fn failed(&self, _: &str) {}
}

/// The pool's view of a scan mux; `None` when the pool has no such delivery system.
pub fn transponder_of(m: &Mux) -> Option<Transponder> {
    let t = &m.tuning;
    let delsys = DelSys::from_nick(t.delivery_system.dvbsrc_nick()?)?;
    let sat = t.family() == Family::Satellite;
    Some(Transponder {
        delsys,
        frequency_khz: u64::from(t.freq_khz()),
        polarisation: t.polarisation.map(|p| match p {
            Polarisation::Horizontal => gstdvb2ip::proto::tuner_pool::Polarisation::Horizontal,
            Polarisation::Vertical => gstdvb2ip::proto::tuner_pool::Polarisation::Vertical,
            Polarisation::CircularLeft => gstdvb2ip::proto::tuner_pool::Polarisation::CircularLeft,
            Polarisation::CircularRight => {
                gstdvb2ip::proto::tuner_pool::Polarisation::CircularRight
            }
        }),
        symbol_rate_ksym: if t.family() == Family::Terrestrial {
            0
        } else {
            t.symbol_rate.unwrap_or(0)
        },
        bandwidth_hz: if sat || t.family() != Family::Terrestrial {
            0
        } else {
            t.bandwidth_hz.unwrap_or(0)
        },
        stream_id: t.stream_id().map_or(-1, i32::from),
    })
}

/// The scanner's view of an emulated mux of the configuration (its initial tuning entry).
pub fn mux_of_config(m: &MuxConfig) -> Option<Mux> {
    let (msys, freq) = match m.delsys.as_str() {
        "dvb-t" => (DeliverySystem::DvbT, m.frequency_khz * 1000),
        "dvb-t2" => (DeliverySystem::DvbT2, m.frequency_khz * 1000),
        "dvb-c" | "dvb-c-a" => (DeliverySystem::DvbC, m.frequency_khz * 1000),
        "dvb-s" => (DeliverySystem::DvbS, m.frequency_khz),
        "dvb-s2" => (DeliverySystem::DvbS2, m.frequency_khz),
        _ => return None,
    };
    let mut t = blank_tuning(msys, u32::try_from(freq).ok()?);
    match msys {
        DeliverySystem::DvbT2 => t.plp = Some(u8::try_from(m.stream_id.max(0)).ok()?),
        DeliverySystem::DvbT => {}
        DeliverySystem::DvbC => t.symbol_rate = Some(m.symbol_rate_ksym),
        _ => {
            t.symbol_rate = Some(m.symbol_rate_ksym);
            t.polarisation =
                m.polarisation
                    .as_deref()
                    .and_then(|p| match p.to_ascii_lowercase().as_str() {
                        "h" => Some(Polarisation::Horizontal),
                        "v" => Some(Polarisation::Vertical),
                        "l" => Some(Polarisation::CircularLeft),
                        "r" => Some(Polarisation::CircularRight),
                        _ => None,
                    });
        }
    }
    if m.bandwidth_hz != 0 && matches!(msys, DeliverySystem::DvbT | DeliverySystem::DvbT2) {
        t.bandwidth_hz = Some(m.bandwidth_hz);
    }
    Some(Mux::new(t))
}

fn lease_request(pool: &Pool, m: &Mux, fe: &FrontendInfo) -> Result<LeaseRequest, String> {
    let mut props = gstdvb2ip::satipmapsrc::dvbtunersrc_properties_in(pool, &m.tuning)?;
    props.push(("adapter", fe.adapter.to_string()));
    props.push(("frontend", fe.frontend.to_string()));
    let props: Vec<(&str, String)> = props.into_iter().collect();
    let mut req = gstdvb2ip::dvbtunersrc::lease_request(&props, "all")?;
    // The collector's budgets decide when a mux without lock is given up.
    req.tuning_timeout = Duration::from_secs(600);
    Ok(req)
}

fn can_tune(f: &FrontendInfo, t: &Option<Transponder>) -> bool {
    let Some(t) = t else { return false };
    f.delsys.contains(&t.delsys)
        && (f.users == 0 || f.tuned.as_ref().is_some_and(|x| x.same_transponder(t)))
}

struct Running {
    label: String,
    index: Option<usize>,
    _lease: Option<Lease>,
}

/// Runs one scan on `pool`, starting from `db` (its known muxes are rescanned first). After
/// each finished mux `on_db` gets the database; `on_event` and `on_progress` follow the scan.
/// Returns the database and how the scan ended.
pub fn run(
    pool: &Pool,
    mut db: ChannelDb,
    params: ScanParams,
    control: &ScanControl,
    on_db: &mut dyn FnMut(&ChannelDb) -> anyhow::Result<()>,
    on_event: &mut dyn FnMut(&ScanEvent, &Progress),
) -> anyhow::Result<(ChannelDb, Outcome)> {
    let t0 = Instant::now();
    let now = || t0.elapsed().as_millis() as u64;
    let (tx, rx) = mpsc::channel::<Msg>();
    *control.wake.lock().unwrap() = Some(tx.clone());
    // Muxes no frontend of the pool can tune are left out (with hardware absent, say).
    let pool_delsys: HashSet<DelSys> = pool
        .frontends()
        .iter()
        .flat_map(|f| f.delsys.clone())
        .collect();
    let supported = |m: &Mux| transponder_of(m).is_some_and(|t| pool_delsys.contains(&t.delsys));
    let initial: Vec<Mux> = params.initial.into_iter().filter(supported).collect();
    let mut session = ScanSession::new(params.config, &db, initial, params.origin);
    let limit = params.frontends.filter(|n| *n > 0).unwrap_or(usize::MAX);
    let mut running: BTreeMap<u64, Running> = BTreeMap::new();
    let mut progress = Progress {
        state: "running".into(),
        services: db.channels().len(),
        ..Default::default()
    };
    let update = |p: &mut Progress, s: &ScanSession, running: &BTreeMap<u64, Running>| {
        let (done, total) = s.progress();
        p.muxes_done = done;
        p.muxes_total = total;
        p.current = running.values().map(|r| r.label.clone()).collect();
        p.elapsed_ms = t0.elapsed().as_millis() as u64;
    };
    let mut stopped = false;
    loop {
        if control.is_stopped() {
            session.cancel();
            stopped = true;
            break;
        }
        // Start muxes on free frontends.
        while running.len() < limit {
            let fes = pool.frontends();
            let ours: HashSet<usize> = running.values().filter_map(|r| r.index).collect();
            let free: Vec<u32> = fes
                .iter()
                .filter(|f| !ours.contains(&f.index))
                .map(|f| f.index as u32)
                .collect();
            // A mux no frontend of the pool supports (announced by a NIT) is "started" on any
            // free one: its lease fails, and it ends as a mux without signal.
            let Some((job, mux, fe)) = session.start_next(now(), &free, |i, m| {
                !supported(m)
                    || fes
                        .get(i as usize)
                        .is_some_and(|f| can_tune(f, &transponder_of(m)))
            }) else {
                break;
            };
            let fe = &fes[fe as usize];
            let label = mux.label();
            let sink = Arc::new(JobSink {
                job,
                tx: Mutex::new(tx.clone()),
            });
            let revoke_tx = Mutex::new(tx.clone());
            let lease = lease_request(pool, &mux, fe)
                .map_err(LeaseError::Backend)
                .and_then(|req| {
                    pool.lease_background(req, sink, move || {
                        let _ = revoke_tx.lock().unwrap().send(Msg::Revoked(job));
                    })
                });
            match lease {
                Ok(l) => {
                    let frontend = format!("adapter{}/frontend{}", l.adapter(), l.frontend());
                    running.insert(
                        job,
                        Running {
                            label: label.clone(),
                            index: Some(l.index()),
                            _lease: Some(l),
                        },
                    );
                    update(&mut progress, &session, &running);
                    on_event(
                        &ScanEvent::Tune {
                            mux: label,
                            frontend,
                        },
                        &progress,
                    );
                }
                Err(LeaseError::Pool(PoolError::Busy)) => {
                    // Taken meanwhile (a viewer): try again later.
                    gst::info!(super::CAT, "scan: no free frontend for {label}");
                    session.preempt(job);
                    break;
                }
                Err(e) => {
                    // The frontend cannot tune it (a device error, a tuning the element
                    // refuses): the mux gets no signal, so its collector fails it after the
                    // no-signal budget and the queue retries it as any mux that did not lock.
                    gst::warning!(super::CAT, "scan: {label} on {}: {e}", fe.name);
                    running.insert(
                        job,
                        Running {
                            label,
                            index: Some(fe.index),
                            _lease: None,
                        },
                    );
                }
            }
        }
        if session.is_finished() {
            break;
        }
        // Wait for data or the next deadline (at most 100 ms: frontends may have come free).
        let t = now();
        let wake = session.next_wake_ms(t).unwrap_or(t + 100).min(t + 100);
        let mut first = rx.recv_timeout(Duration::from_millis(wake.saturating_sub(t).max(1)));
        loop {
            let msg = match first {
                Ok(m) => m,
                Err(_) => break,
            };
            let t = now();
            match msg {
                Msg::Data(job, buf) => {
                    if let (Some(c), Ok(map)) = (session.collector(job), buf.map_readable()) {
                        for p in map.as_slice().chunks_exact(188) {
                            c.push_packet(t, p);
                        }
                    }
                }
                Msg::Lock(job, locked) => {
                    if let Some(c) = session.collector(job) {
                        c.frontend_status(
                            t,
                            FrontendStatus {
                                signal: locked,
                                carrier: locked,
                                lock: locked,
                            },
                        );
                    }
                }
                Msg::Signal(job) => {
                    if let Some(c) = session.collector(job) {
                        c.frontend_status(
                            t,
                            FrontendStatus {
                                signal: true,
                                carrier: true,
                                lock: false,
                            },
                        );
                    }
                }
                Msg::Revoked(job) => {
                    if let Some(r) = running.remove(&job) {
                        session.preempt(job);
                        progress.preempted += 1;
                        update(&mut progress, &session, &running);
                        on_event(&ScanEvent::Preempted { mux: r.label }, &progress);
                    }
                }
                Msg::Wake => {}
            }
            first = rx.try_recv().map_err(|_| mpsc::RecvTimeoutError::Timeout);
        }
        for e in session.poll(now(), &mut db) {
            match e {
                Event::Retry { job, mux, attempt } => {
                    running.remove(&job);
                    update(&mut progress, &session, &running);
                    on_event(
                        &ScanEvent::Retry {
                            mux: mux.label(),
                            attempt,
                        },
                        &progress,
                    );
                }
                Event::MuxDone {
                    job,
                    mux,
                    verdict,
                    applied,
                    discovered,
                    ..
                } => {
                    running.remove(&job);
                    match verdict {
                        Verdict::Found => progress.found += 1,
                        Verdict::Partial => progress.partial += 1,
                        Verdict::Failed => progress.failed += 1,
                    }
                    on_db(&db)?;
                    let services = db
                        .services
                        .iter()
                        .filter(|s| {
                            db.mux_of(s).is_some_and(|m| m.mux.same_transponder(&mux))
                                && s.misses == 0
                        })
                        .count();
                    progress.services = db.channels().len();
                    update(&mut progress, &session, &running);
                    on_event(
                        &ScanEvent::MuxDone {
                            mux: mux.label(),
                            verdict: format!("{verdict:?}").to_lowercase(),
                            services,
                            added: applied.added.len(),
                            dropped: applied.dropped.len(),
                            discovered: discovered.iter().map(Mux::label).collect(),
                        },
                        &progress,
                    );
                }
            }
        }
    }
    *control.wake.lock().unwrap() = None;
    // Leases go back before the caller hears of the end.
    running.clear();
    progress.state = if stopped { "stopped" } else { "finished" }.into();
    progress.services = db.channels().len();
    update(&mut progress, &session, &running);
    Ok((db, Outcome { stopped, progress }))
}
