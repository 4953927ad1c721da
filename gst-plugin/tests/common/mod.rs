//! What the element tests share: GStreamer and the plugin registered once, the default tuner
//! pool on the embedded emulated configuration, tuner pools of a test's own, and scratch
//! directories.
//!
//! The elements fall back to the process-wide default pool, as they must under gst-launch.
//! Tests that drive a pool (fault knobs, lock times, busy frontends, status messages) make
//! their own with [`own_pool`] and hand it to their pipelines in a `dvb2ip.tuner-pool`
//! context ([`use_pool`]), so they run in parallel without a lock.

#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::Once;

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

/// A tuner pool of the test's own on `config` with real adapters off and its content
/// generated (made once per cache directory, reused after). A test hands it to its pipelines
/// with [`use_pool`], sets fault knobs and reads frontends on it, and so shares no state with
/// the other tests of its binary.
pub fn own_pool_with(mut config: tuners::BroadcastConfig) -> tuners::Pool {
    init();
    config.emulator.hardware = "off".into();
    let pool = tuners::Pool::new(config);
    pool.prepare_content().expect("content");
    pool
}

/// [`own_pool_with`] the embedded emulated configuration.
pub fn own_pool() -> tuners::Pool {
    own_pool_with(tuners::BroadcastConfig::embedded())
}

/// Hands `pool` to the elements of `pipeline` in a `dvb2ip.tuner-pool` context (before it
/// leaves NULL: the elements ask for the context when they first need a pool).
pub fn use_pool(pipeline: &gst::Pipeline, pool: &tuners::Pool) {
    use gst::prelude::*;
    pipeline.set_context(&tuners::pool_context(pool));
}

/// An empty directory `dvb2ip-<binary>-<tag>-<pid>` under the system's temporary directory.
pub fn temp_dir(binary: &str, tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("dvb2ip-{binary}-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}
