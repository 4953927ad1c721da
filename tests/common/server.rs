//! A test's own `dvb2ip` server in the test process: its own core and tuner pool on a free
//! port, torn down when dropped.

use std::sync::{Arc, Once};
use std::time::{Duration, Instant};

use dvb2ip::config::Config;
use dvb2ip::core::Core;
use dvb2ip::serve;
use gst::glib;
use gstdvb2ip::tuners::Pool;

/// Process setup, once: the plugin registered, the default pool configured, and the glib main
/// loop the RTSP servers attach to.
pub fn init() {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        serve::init(&Config::embedded()).expect("init");
        std::thread::spawn(|| glib::MainLoop::new(None, false).run());
    });
}

/// A test's own server: its own [`Core`] with a tuner pool of its own, on a free port. Dropping
/// it tears its sessions down (their pipelines stop, their frontends are released) and
/// detaches the server, so tests run side by side without sharing a frontend.
pub struct Srv {
    server: Option<serve::Server>,
    pub port: u16,
}

impl Srv {
    /// The embedded configuration with sessions that time out after `session_timeout` s.
    pub fn new(session_timeout: u32) -> Srv {
        let mut cfg = Config::embedded();
        cfg.server.session_timeout = session_timeout;
        Srv::with_config(&cfg)
    }

    pub fn with_config(cfg: &Config) -> Srv {
        init();
        let core = Core::with_own_pool(cfg.clone()).expect("core with its own pool");
        let server = serve::start_with(
            core,
            &serve::ServeOptions {
                rtsp_port: Some(0),
                bind: None,
            },
        )
        .expect("server starts");
        Srv {
            port: server.rtsp_port,
            server: Some(server),
        }
    }

    pub fn core(&self) -> &Arc<Core> {
        &self.server.as_ref().expect("running").core
    }

    /// The test's tuner pool.
    pub fn pool(&self) -> &Pool {
        &self.core().pool
    }

    /// Sessions the RTSP server holds.
    pub fn rtsp_sessions(&self) -> u32 {
        use gst_rtsp_server::prelude::*;
        self.server
            .as_ref()
            .and_then(|s| s.rtsp.session_pool())
            .map_or(0, |p| p.n_sessions())
    }

    /// Client connections the RTSP server keeps (gst-rtsp-server's client list).
    pub fn rtsp_clients(&self) -> usize {
        use gst_rtsp_server::prelude::*;
        self.server
            .as_ref()
            .map_or(0, |s| s.rtsp.client_filter(None).len())
    }

    /// Frontends (pool index) in use and their user counts.
    pub fn in_use(&self) -> Vec<(usize, usize)> {
        self.pool()
            .frontends()
            .iter()
            .filter(|f| f.users > 0)
            .map(|f| (f.index, f.users))
            .collect()
    }

    /// Waits (bounded) until no frontend of the test's pool is in use. The bound is past the
    /// 60 s session timeout: a client whose TEARDOWN is lost (gst-launch's rtspsrc waits only
    /// 100 ms for it by default, VLC may exit first on a loaded machine) is reaped by the
    /// timeout.
    pub fn wait_all_free(&self) {
        let deadline = Instant::now() + Duration::from_secs(90);
        while self.pool().frontends().iter().any(|f| f.users > 0) {
            assert!(Instant::now() < deadline, "frontends still in use");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Srv {
    fn drop(&mut self) {
        use gst_rtsp_server::prelude::*;
        let Some(server) = self.server.take() else {
            return;
        };
        // As `serve::run` does at shutdown: every session torn down, so its pipeline stops and
        // its frontend is released; then the server is detached.
        if let Some(pool) = server.rtsp.session_pool() {
            pool.filter(Some(&mut |_, _| gst_rtsp_server::RTSPFilterResult::Remove));
        }
        drop(server);
    }
}
