//! What the element tests share: GStreamer and the plugin registered once, the default tuner
//! pool on the embedded emulated configuration, one lock for tests that drive that pool, and
//! scratch directories.
//!
//! The elements fall back to the process-wide default pool, as they must under gst-launch;
//! tests of that behaviour (fault knobs, lock times, busy frontends, status messages) change
//! the default pool's state and take [`default_pool`] so they run one at a time. A test with a
//! pool of its own hands it to the pipeline in a `dvb2ip.tuner-pool` context
//! (`dvbtunersrc.rs`: `a_pool_handed_in_a_context_serves_the_pipeline`) and needs no lock.

#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard, Once};

use gstdvb2ip::tuners;

/// `gst::init()` and the dvb2ip elements, once per test binary.
pub fn init() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        gst::init().unwrap();
        gstdvb2ip::plugin_register_static().expect("register plugin");
    });
}

/// [`init`], then the default pool on the embedded emulated configuration with its content
/// generated (made once per cache directory, reused after).
pub fn init_emulated() {
    static ONCE: Once = Once::new();
    init();
    ONCE.call_once(|| {
        tuners::configure(tuners::BroadcastConfig::embedded()).unwrap();
        tuners::prepare_content().expect("content");
    });
}

/// Exclusive use of the default pool (see the module documentation), emulated and with every
/// emulated frontend's fault knobs back at their defaults.
pub fn default_pool() -> MutexGuard<'static, ()> {
    static DEFAULT_POOL: Mutex<()> = Mutex::new(());
    let g = DEFAULT_POOL.lock().unwrap_or_else(|e| e.into_inner());
    init_emulated();
    for f in tuners::frontends() {
        if f.emulated {
            tuners::set_faults(f.adapter, tuners::Faults::default()).unwrap();
        }
    }
    g
}

/// An empty directory `dvb2ip-<binary>-<tag>-<pid>` under the system's temporary directory.
pub fn temp_dir(binary: &str, tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("dvb2ip-{binary}-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}
