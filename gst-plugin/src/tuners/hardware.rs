//! Real DVB frontends: discovery under /dev/dvb and a feed that wraps `dvbsrc`.
//!
//! The feed runs `dvbsrc pids=8192 ! appsink` in its own pipeline, so that every subscriber on
//! the transponder shares one frontend and one read. dvbsrc's statistics (`dvb-frontend-stats`,
//! posted every `stats-reporting-interval` reads and while tuning) update the frontend's status;
//! lock changes reach the subscribers at once, and the last known status goes to them once a
//! second through the same [`StatusTimer`] as the emulated frontend's.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use gst::glib;
use gst::prelude::*;

use super::feed::{Fanout, StatusTimer, TunerStatus};
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
        let bus_thread = std::thread::Builder::new()
            .name(format!("dvb2ip-hw{}", hw.adapter))
            .spawn(move || {
                let mut timer = StatusTimer::new(Instant::now());
                while !stop2.load(Ordering::Relaxed) {
                    let now = Instant::now();
                    if !status.lock().unwrap().locked {
                        fanout.check_deadlines(now, &no_lock);
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

    #[test]
    fn discover_without_dev_dvb_is_empty() {
        assert!(discover(Path::new("/nonexistent/dvb")).is_empty());
    }
}
