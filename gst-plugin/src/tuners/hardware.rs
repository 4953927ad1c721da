//! Real DVB frontends: discovery under /dev/dvb and a feed that wraps `dvbsrc`.
//!
//! The feed runs `dvbsrc pids=8192 ! appsink` in its own pipeline, so that every subscriber on
//! the transponder shares one frontend and one read. dvbsrc's statistics (`dvb-frontend-stats`,
//! posted every `stats-reporting-interval` reads and while tuning: the legacy DVBv3 readings)
//! update the frontend's status; lock changes reach the subscribers at once, and the last known
//! status goes to them once a second through the same [`StatusTimer`] as the emulated
//! frontend's. Once a second, before that status goes out, the feed also reads the DVBv5
//! statistics (`DTV_STAT_*`, [`V5Stats`]) through a read-only open of the frontend device:
//! where the driver gives them they replace the DVBv3 figures (signal in dBm, CNR in dB, BER).

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use gst::glib;
use gst::prelude::*;

use super::feed::{Fanout, StatusTimer, TunerStatus, STATUS_INTERVAL};
use crate::proto::tuner_pool::DelSys;
use crate::sys::dvb;

/// A frontend found under /dev/dvb.
#[derive(Debug, Clone)]
pub struct HwFrontend {
    pub adapter: u32,
    pub frontend: u32,
    pub name: String,
    pub delsys: Vec<DelSys>,
}

/// Name and delivery systems of the frontend device at `path` (`FE_GET_INFO`,
/// `DTV_ENUM_DELSYS`); `None` if it cannot be opened or does not enumerate its systems.
fn probe_frontend(path: &Path) -> Option<(String, Vec<DelSys>)> {
    use std::os::fd::AsFd;
    let f = std::fs::OpenOptions::new().read(true).open(path).ok()?;
    let name = match dvb::frontend_info(f.as_fd()) {
        Ok(info) => info.name,
        Err(_) => path.display().to_string(),
    };
    let delsys = dvb::enum_delsys(f.as_fd())
        .ok()?
        .into_iter()
        .filter_map(DelSys::from_u32)
        .collect();
    Some((name, delsys))
}

/// Lists the frontends under `root` (normally /dev/dvb).
pub fn discover(root: &Path) -> Vec<HwFrontend> {
    let mut out = Vec::new();
    let Ok(adapters) = std::fs::read_dir(root) else {
        return out;
    };
    for a in adapters.flatten() {
        let an = a.file_name().to_string_lossy().to_string();
        let Some(adapter) = an
            .strip_prefix("adapter")
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(fes) = std::fs::read_dir(a.path()) else {
            continue;
        };
        for fe in fes.flatten() {
            let fname = fe.file_name().to_string_lossy().to_string();
            let Some(frontend) = fname
                .strip_prefix("frontend")
                .and_then(|n| n.parse::<u32>().ok())
            else {
                continue;
            };
            if let Some((name, delsys)) = probe_frontend(&fe.path()) {
                if !delsys.is_empty() {
                    out.push(HwFrontend {
                        adapter,
                        frontend,
                        name,
                        delsys,
                    });
                }
            }
        }
    }
    out.sort_by_key(|f| (f.adapter, f.frontend));
    out
}

pub(crate) struct HardwareFeed {
    pipeline: gst::Pipeline,
    stop: Arc<AtomicBool>,
    bus_thread: Option<JoinHandle<()>>,
}

impl HardwareFeed {
    /// Starts `dvbsrc` with `props` (dvbsrc property name → value as string).
    pub fn start(
        hw: &HwFrontend,
        props: &[(String, String)],
        fanout: Arc<Fanout>,
        status: Arc<Mutex<TunerStatus>>,
    ) -> Result<Self, String> {
        let src = gst::ElementFactory::make("dvbsrc")
            .property("adapter", hw.adapter as i32)
            .property("frontend", hw.frontend as i32)
            .property("pids", "8192")
            .build()
            .map_err(|_| {
                "dvbsrc is not available (install gstreamer1.0-plugins-bad)".to_string()
            })?;
        for (k, v) in props {
            let pspec = src
                .find_property(k)
                .ok_or_else(|| format!("dvbsrc has no property {k:?}"))?;
            let value = glib::Value::deserialize_with_pspec(v, &pspec)
                .map_err(|_| format!("dvbsrc does not accept {v:?} for property {k:?}"))?;
            src.set_property_from_value(k, &value);
        }
        let sink = gst_app::AppSink::builder()
            .sync(false)
            .max_buffers(64)
            .drop(true)
            .build();
        let pipeline =
            gst::Pipeline::with_name(&format!("dvb2ip-hw{}-{}", hw.adapter, hw.frontend));
        pipeline
            .add_many([&src, sink.upcast_ref()])
            .map_err(|e| e.to_string())?;
        src.link(&sink).map_err(|e| e.to_string())?;
        let f2 = fanout.clone();
        sink.set_callbacks(
            gst_app::AppSinkCallbacks::builder()
                .new_sample(move |s| {
                    let sample = s.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                    if let Some(b) = sample.buffer() {
                        if let Ok(m) = b.map_readable() {
                            let whole = m.len() / 188 * 188;
                            f2.distribute(m[..whole].to_vec());
                        }
                    }
                    Ok(gst::FlowSuccess::Ok)
                })
                .build(),
        );
        pipeline
            .set_state(gst::State::Playing)
            .map_err(|e| format!("dvbsrc failed to start: {e}"))?;
        let stop = Arc::new(AtomicBool::new(false));
        let bus = pipeline.bus().expect("pipeline has a bus");
        let stop2 = stop.clone();
        let no_lock = format!(
            "no lock on {}",
            status
                .lock()
                .unwrap()
                .transponder
                .as_ref()
                .map(|t| t.to_string())
                .unwrap_or_default()
        );
        let device = format!("/dev/dvb/adapter{}/frontend{}", hw.adapter, hw.frontend);
        let bus_thread = std::thread::Builder::new()
            .name(format!("dvb2ip-hw{}", hw.adapter))
            .spawn(move || {
                let mut timer = StatusTimer::new(Instant::now());
                let mut v5 = V5Stats::open(Path::new(&device));
                let mut next_v5 = Instant::now();
                while !stop2.load(Ordering::Relaxed) {
                    let now = Instant::now();
                    if !status.lock().unwrap().locked {
                        fanout.check_deadlines(now, &no_lock);
                    }
                    if now >= next_v5 {
                        next_v5 = now + STATUS_INTERVAL;
                        v5.read();
                        v5.apply(&mut status.lock().unwrap());
                    }
                    let next = timer.poll(now, &status, &fanout);
                    // Wake for the next status, and at least every 200 ms to see `stop`.
                    let wait = next
                        .saturating_duration_since(now)
                        .min(Duration::from_millis(200));
                    let Some(msg) =
                        bus.timed_pop(gst::ClockTime::from_nseconds(wait.as_nanos() as u64))
                    else {
                        continue;
                    };
                    match msg.view() {
                        gst::MessageView::Element(e) => {
                            let Some(s) = e.structure() else { continue };
                            if s.name() != "dvb-frontend-stats" {
                                continue;
                            }
                            let stats = FrontendStats::from_structure(s);
                            let (changed, st) = {
                                let mut st = status.lock().unwrap();
                                let changed = st.locked != stats.lock;
                                stats.apply(&mut st);
                                v5.apply(&mut st);
                                (changed, st.clone())
                            };
                            if changed {
                                fanout.lock_changed(st.locked, &st);
                            }
                        }
                        gst::MessageView::Error(e) => {
                            fanout.failed(&format!("dvbsrc: {} ({:?})", e.error(), e.debug()));
                        }
                        _ => {}
                    }
                }
            })
            .expect("spawn bus thread");
        Ok(Self {
            pipeline,
            stop,
            bus_thread: Some(bus_thread),
        })
    }
}

/// dvbsrc's `dvb-frontend-stats` message: the legacy (DVBv3) frontend readings.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct FrontendStats {
    lock: bool,
    /// FE_READ_SIGNAL_STRENGTH: 16 bits, by convention relative (0–65535).
    signal: u16,
    /// FE_READ_SNR: 16 bits whose scale the driver chooses; by convention relative (0–65535).
    snr: u16,
}

impl FrontendStats {
    /// Reads the message's fields; a missing or odd field reads as 0 / unlocked.
    pub fn from_structure(s: &gst::StructureRef) -> Self {
        let u16_field = |name| s.get::<i32>(name).unwrap_or(0).clamp(0, 0xFFFF) as u16;
        Self {
            lock: s.get::<bool>("lock").unwrap_or(false),
            signal: u16_field("signal"),
            snr: u16_field("snr"),
        }
    }

    /// Updates `st`: signal strength and SNR become the level and quality percentages of their
    /// 0–65535 range. dvbsrc gives no SNR in dB and its BER (FE_READ_BER) is a driver-specific
    /// count, not a rate, so `snr_db` and `ber` stay unknown.
    pub fn apply(&self, st: &mut TunerStatus) {
        let percent = |v: u16| (v as u32 * 100 + 0x7FFF) / 0xFFFF;
        st.locked = self.lock;
        st.level = percent(self.signal);
        st.quality = percent(self.snr);
        st.snr_db = None;
        st.ber = None;
    }
}

/// The DVBv5 statistics of a running frontend ([`dvb::frontend_stats`]), read through a
/// read-only open of its device (the kernel allows any number of those beside dvbsrc's
/// read-write one, and `FE_GET_PROPERTY` is a read request). A driver without them (or a
/// device that cannot be opened) leaves the DVBv3 figures alone.
pub(crate) struct V5Stats {
    device: Option<std::fs::File>,
    figures: V5Figures,
    ber: BerMeter,
}

impl V5Stats {
    pub fn open(device: &Path) -> Self {
        use std::os::unix::fs::OpenOptionsExt;
        let device = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(device)
            .ok();
        Self {
            device,
            figures: V5Figures::default(),
            ber: BerMeter::default(),
        }
    }

    /// Asks the driver for its statistics; on failure the figures become unknown.
    pub fn read(&mut self) {
        use std::os::fd::AsFd;
        let stats = self
            .device
            .as_ref()
            .and_then(|d| dvb::frontend_stats(d.as_fd()).ok());
        self.figures = match stats {
            Some(s) => V5Figures::new(&s, &mut self.ber),
            None => V5Figures::default(),
        };
    }

    pub fn apply(&self, st: &mut TunerStatus) {
        self.figures.apply(st);
    }
}

/// What the DVBv5 statistics say, by the scale the driver chose: `None` where it gave nothing
/// in that scale.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct V5Figures {
    /// `DTV_STAT_SIGNAL_STRENGTH` in `FE_SCALE_DECIBEL`.
    signal_dbm: Option<f64>,
    /// `DTV_STAT_SIGNAL_STRENGTH` in `FE_SCALE_RELATIVE`.
    level: Option<u32>,
    /// `DTV_STAT_CNR` in `FE_SCALE_DECIBEL`.
    snr_db: Option<f64>,
    /// `DTV_STAT_CNR` in `FE_SCALE_RELATIVE`.
    quality: Option<u32>,
    /// From the bit counters ([`BerMeter`]).
    ber: Option<f64>,
}

impl V5Figures {
    pub fn new(s: &dvb::FrontendStatsV5, ber: &mut BerMeter) -> Self {
        Self {
            signal_dbm: s.signal.decibels(),
            level: s.signal.percent(),
            snr_db: s.cnr.decibels(),
            quality: s.cnr.percent(),
            ber: ber.update(s),
        }
    }

    /// Puts the figures the driver gave over the DVBv3 ones in `st`. `signal_dbm` is set
    /// either way (only DVBv5 gives dBm); the others stay as DVBv3 left them where DVBv5 has
    /// nothing.
    pub fn apply(&self, st: &mut TunerStatus) {
        st.signal_dbm = self.signal_dbm;
        if let Some(l) = self.level {
            st.level = l;
        }
        if let Some(q) = self.quality {
            st.quality = q;
        }
        if self.snr_db.is_some() {
            st.snr_db = self.snr_db;
        }
        if self.ber.is_some() {
            st.ber = self.ber;
        }
    }
}

/// The bit error ratio from the DVBv5 bit counters: errors over bits between two readings,
/// before the inner decoder (`DTV_STAT_PRE_*`) where the driver counts them, else after it
/// (`DTV_STAT_POST_*`). The first reading, or one after the driver reset its counters, gives
/// the ratio of the counts so far; a reading with no new bits keeps the last ratio.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct BerMeter {
    /// Pre-FEC counts?, errors, bits of the last reading.
    last: Option<(bool, u64, u64)>,
    ber: Option<f64>,
}

impl BerMeter {
    pub fn update(&mut self, s: &dvb::FrontendStatsV5) -> Option<f64> {
        let pre = s.pre_error_bits.count().zip(s.pre_total_bits.count());
        let post = s.post_error_bits.count().zip(s.post_total_bits.count());
        let Some((is_pre, (err, bits))) =
            pre.map(|c| (true, c)).or_else(|| post.map(|c| (false, c)))
        else {
            *self = Self::default();
            return None;
        };
        let ratio = |e: u64, b: u64| (b > 0).then(|| (e as f64 / b as f64).min(1.0));
        self.ber = match self.last {
            Some((p, e0, b0)) if p == is_pre && bits == b0 && err == e0 => self.ber,
            Some((p, e0, b0)) if p == is_pre && bits > b0 && err >= e0 => {
                ratio(err - e0, bits - b0)
            }
            _ => ratio(err, bits),
        };
        self.last = Some((is_pre, err, bits));
        self.ber
    }
}

impl Drop for HardwareFeed {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = self.pipeline.set_state(gst::State::Null);
        if let Some(t) = self.bus_thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frontend_stats_become_percentages_without_inventing_db_or_a_rate() {
        gst::init().unwrap();
        let s = gst::Structure::builder("dvb-frontend-stats")
            .field("status", 0x1f)
            .field("signal", 0xFFFF)
            .field("snr", 0x8000)
            .field("ber", 1234)
            .field("unc", 0)
            .field("lock", true)
            .build();
        let mut st = TunerStatus {
            snr_db: Some(3.0),
            ber: Some(0.5),
            ..Default::default()
        };
        FrontendStats::from_structure(&s).apply(&mut st);
        assert!(st.locked);
        assert_eq!((st.level, st.quality), (100, 50));
        assert_eq!((st.snr_db, st.ber), (None, None));
        // Garbage does not panic and reads as no signal.
        let bad = gst::Structure::builder("dvb-frontend-stats")
            .field("signal", -5)
            .field("snr", "x")
            .build();
        FrontendStats::from_structure(&bad).apply(&mut st);
        assert!(!st.locked);
        assert_eq!((st.level, st.quality), (0, 0));
    }

    fn counters(pre: Option<(u64, u64)>, post: Option<(u64, u64)>) -> dvb::FrontendStatsV5 {
        let c = |v: Option<(u64, u64)>, i: usize| {
            v.map(|v| dvb::Stat::Counter([v.0, v.1][i]))
                .unwrap_or_default()
        };
        dvb::FrontendStatsV5 {
            pre_error_bits: c(pre, 0),
            pre_total_bits: c(pre, 1),
            post_error_bits: c(post, 0),
            post_total_bits: c(post, 1),
            ..Default::default()
        }
    }

    #[test]
    fn v5_figures_in_db_replace_the_v3_percentages_where_given() {
        gst::init().unwrap();
        let v3 = gst::Structure::builder("dvb-frontend-stats")
            .field("signal", 0x8000)
            .field("snr", 0x4000)
            .field("lock", true)
            .build();
        // A demodulator giving the signal in dBm and the CNR in dB (e.g. Si2168, cxd2841er).
        let stats = dvb::FrontendStatsV5 {
            signal: dvb::Stat::Decibel(-45_250),
            cnr: dvb::Stat::Decibel(27_500),
            ..counters(Some((12, 1_000_000)), Some((0, 900_000)))
        };
        let mut meter = BerMeter::default();
        let f = V5Figures::new(&stats, &mut meter);
        let mut st = TunerStatus::default();
        FrontendStats::from_structure(&v3).apply(&mut st);
        f.apply(&mut st);
        assert_eq!(st.signal_dbm, Some(-45.25));
        assert_eq!(st.snr_db, Some(27.5));
        // The percentages stay DVBv3's: the driver gave none in the relative scale.
        assert_eq!((st.level, st.quality), (50, 25));
        // Pre-FEC counters are preferred to post-FEC ones.
        assert_eq!(st.ber, Some(12e-6));

        // A driver giving relative figures only: percentages from DVBv5, no dBm or dB.
        let stats = dvb::FrontendStatsV5 {
            signal: dvb::Stat::Relative(0xFFFF),
            cnr: dvb::Stat::Relative(0xCCCC),
            ..Default::default()
        };
        let f = V5Figures::new(&stats, &mut BerMeter::default());
        FrontendStats::from_structure(&v3).apply(&mut st);
        f.apply(&mut st);
        assert_eq!((st.level, st.quality), (100, 80));
        assert_eq!((st.signal_dbm, st.snr_db, st.ber), (None, None, None));

        // A driver without DVBv5 statistics (or a failed read): DVBv3's figures as they were.
        FrontendStats::from_structure(&v3).apply(&mut st);
        st.signal_dbm = Some(-50.0);
        V5Figures::default().apply(&mut st);
        assert_eq!((st.level, st.quality), (50, 25));
        assert_eq!((st.signal_dbm, st.snr_db, st.ber), (None, None, None));
    }

    #[test]
    fn ber_is_taken_between_readings_of_the_counters() {
        let mut m = BerMeter::default();
        // No counters: unknown.
        assert_eq!(m.update(&counters(None, None)), None);
        // First reading: the ratio so far; no bits yet is unknown.
        assert_eq!(m.update(&counters(Some((0, 0)), None)), None);
        assert_eq!(m.update(&counters(Some((10, 1_000)), None)), Some(0.01));
        // Then between readings: 5 errors in the next 10 000 bits.
        assert_eq!(m.update(&counters(Some((15, 11_000)), None)), Some(5e-4));
        // No new bits since the last reading: the last ratio stays.
        assert_eq!(m.update(&counters(Some((15, 11_000)), None)), Some(5e-4));
        // The driver reset its counters (a new tune): the ratio of the new counts.
        assert_eq!(m.update(&counters(Some((1, 500)), None)), Some(0.002));
        // Only post-FEC counters: those, started afresh.
        assert_eq!(m.update(&counters(None, Some((2, 4_000)))), Some(5e-4));
        assert_eq!(m.update(&counters(None, Some((2, 8_000)))), Some(0.0));
        // Counters gone: unknown.
        assert_eq!(m.update(&counters(None, None)), None);
    }

    #[test]
    fn v5_stats_of_a_missing_device_leave_v3_alone() {
        let mut v5 = V5Stats::open(Path::new("/nonexistent/dvb/adapter0/frontend0"));
        v5.read();
        let mut st = TunerStatus {
            level: 40,
            snr_db: None,
            ..Default::default()
        };
        v5.apply(&mut st);
        assert_eq!((st.level, st.signal_dbm), (40, None));
        // A device that is no frontend (ENOTTY) reads as no statistics too.
        let mut v5 = V5Stats::open(Path::new("/dev/null"));
        v5.read();
        v5.apply(&mut st);
        assert_eq!((st.level, st.signal_dbm), (40, None));
    }

    #[test]
    fn discover_without_dev_dvb_is_empty() {
        assert!(discover(Path::new("/nonexistent/dvb")).is_empty());
    }
}
