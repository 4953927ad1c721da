//! The plugin's one process-wide tokio runtime (STYLE 9): two worker threads named
//! `dvb2ip-rt`, created on first use and shared by every element that runs network tasks
//! (today `dvbcsssink`'s CSS servers). Elements spawn on it in `start()` and wait for their
//! tasks in `stop()`; streaming threads never block on it.

use once_cell::sync::Lazy;

/// The runtime. Never call `block_on` on it from a thread that is itself inside a runtime.
pub static RUNTIME: Lazy<tokio::runtime::Runtime> = Lazy::new(|| {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .worker_threads(2)
        .thread_name("dvb2ip-rt")
        .build()
        .expect("creating the dvb2ip tokio runtime")
});
