//! Real DVB frontends: discovery under /dev/dvb and a feed that wraps `dvbsrc`.
//!
//! The feed runs `dvbsrc pids=8192 ! appsink` in its own pipeline, so that every subscriber on
//! the transponder shares one frontend and one read, and forwards dvbsrc's lock and statistics
//! (`dvb-frontend-stats`) to the subscribers.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use gst::prelude::*;

use super::feed::{Fanout, TunerStatus};
use crate::proto::tuner_pool::DelSys;

/// A frontend found under /dev/dvb.
#[derive(Debug, Clone)]
pub struct HwFrontend {
    pub adapter: u32,
    pub frontend: u32,
    pub name: String,
    pub delsys: Vec<DelSys>,
}

// linux/dvb/frontend.h
const DTV_ENUM_DELSYS: u32 = 44;
const FE_GET_INFO: libc::c_ulong = 0x80a8_6f3d; // _IOR('o', 61, struct dvb_frontend_info), 168 bytes
const FE_GET_PROPERTY: libc::c_ulong = 0x8010_6f53; // _IOR('o', 83, struct dtv_properties)

#[repr(C, packed)]
struct DtvProperty {
    cmd: u32,
    reserved: [u32; 3],
    // union { __u32 data; struct dtv_stats st; struct { __u8 data[32]; __u32 len; __u32 reserved1[3]; void *reserved2; } buffer; }
    buffer_data: [u8; 32],
    buffer_len: u32,
    buffer_reserved1: [u32; 3],
    buffer_reserved2: *mut libc::c_void,
    result: i32,
}

#[repr(C)]
struct DtvProperties {
    num: u32,
    props: *mut DtvProperty,
}

fn probe_frontend(path: &Path) -> Option<(String, Vec<DelSys>)> {
    use std::os::fd::AsRawFd;
    let f = std::fs::OpenOptions::new().read(true).open(path).ok()?;
    let fd = f.as_raw_fd();
    let mut info = [0u8; 168];
    // SAFETY: FE_GET_INFO writes a struct dvb_frontend_info (168 bytes) into `info`.
    let name = if unsafe { libc::ioctl(fd, FE_GET_INFO, info.as_mut_ptr()) } == 0 {
        let end = info[..128].iter().position(|&b| b == 0).unwrap_or(128);
        String::from_utf8_lossy(&info[..end]).into_owned()
    } else {
        path.display().to_string()
    };
    let mut prop = DtvProperty {
        cmd: DTV_ENUM_DELSYS,
        reserved: [0; 3],
        buffer_data: [0; 32],
        buffer_len: 0,
        buffer_reserved1: [0; 3],
        buffer_reserved2: std::ptr::null_mut(),
        result: 0,
    };
    let mut props = DtvProperties {
        num: 1,
        props: &mut prop,
    };
    // SAFETY: FE_GET_PROPERTY reads `num` properties from `props` and fills their buffers.
    if unsafe { libc::ioctl(fd, FE_GET_PROPERTY, &mut props) } != 0 {
        return None;
    }
    let len = (prop.buffer_len as usize).min(32);
    let data = prop.buffer_data;
    let delsys = data[..len]
        .iter()
        .filter_map(|&d| DelSys::from_u32(d as u32))
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
            if src.find_property(k).is_none() {
                return Err(format!("dvbsrc has no property {k:?}"));
            }
            src.set_property_from_str(k, v);
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
        let bus_thread = std::thread::Builder::new()
            .name(format!("dvb2ip-hw{}", hw.adapter))
            .spawn(move || {
                while !stop2.load(Ordering::Relaxed) {
                    let Some(msg) = bus.timed_pop(gst::ClockTime::from_mseconds(200)) else {
                        continue;
                    };
                    match msg.view() {
                        gst::MessageView::Element(e) => {
                            let Some(s) = e.structure() else { continue };
                            if s.name() == "dvb-frontend-stats" {
                                let locked = s.get::<bool>("lock").unwrap_or(false);
                                let (changed, st) = {
                                    let mut st = status.lock().unwrap();
                                    let changed = st.locked != locked;
                                    st.locked = locked;
                                    st.level = (s.get::<i32>("signal").unwrap_or(0).max(0) as u32
                                        * 100)
                                        / 0xFFFF;
                                    st.quality = (s.get::<i32>("snr").unwrap_or(0).max(0) as u32
                                        * 100)
                                        / 0xFFFF;
                                    st.snr_db = s.get::<i32>("snr").unwrap_or(0) as f64 / 1000.0;
                                    st.ber = s.get::<i32>("ber").unwrap_or(0) as f64 * 1e-9;
                                    (changed, st.clone())
                                };
                                if changed {
                                    fanout.lock_changed(locked, &st);
                                }
                                fanout.status(&st);
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
    fn ioctl_struct_sizes_match_the_kernel_abi() {
        assert_eq!(std::mem::size_of::<DtvProperty>(), 76);
        assert_eq!(std::mem::size_of::<DtvProperties>(), 16);
    }

    #[test]
    fn discover_without_dev_dvb_is_empty() {
        assert!(discover(Path::new("/nonexistent/dvb")).is_empty());
    }
}
