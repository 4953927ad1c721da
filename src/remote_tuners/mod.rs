//! Remote SAT>IP tuners in the pool (issue 14 item 3): each `[[satip_server]]`
//! ([`config::SatipServerSection`]) is watched while the core lives; its tuners join the
//! core's pool while it answers and leave it when it vanishes
//! (gst-plugin `tuners/satip_remote.rs`). Their state and counters are reported with the
//! pool's frontends (`FrontendInfo::remote`, `GET /api/tuners`).

pub mod config;

use std::sync::{Arc, Mutex};

use gstdvb2ip::tuners::satip_remote::ServerWatch;
use gstdvb2ip::tuners::Pool;

use config::SatipServerSection;

/// The watches of a core's `[[satip_server]]` entries; dropping the last clone takes their
/// tuners out. `SIGHUP` applies a changed list ([`RemoteTuners::apply`]).
#[derive(Debug, Clone)]
pub struct RemoteTuners {
    pool: Pool,
    watches: Arc<Mutex<Vec<(SatipServerSection, ServerWatch)>>>,
}

fn watch(pool: &Pool, s: &SatipServerSection) -> Option<ServerWatch> {
    match s.server() {
        Ok(server) => {
            Some(pool.watch_remote(server, Arc::new(|line: &str| eprintln!("dvb2ip: {line}"))))
        }
        Err(e) => {
            eprintln!("dvb2ip: satip_server {}: {e}", s.url);
            None
        }
    }
}

impl RemoteTuners {
    /// Starts watching every configured server for `pool` (entries were checked with the
    /// configuration; one that still fails is logged and skipped).
    pub fn start(config: &crate::config::Config, pool: &Pool) -> RemoteTuners {
        let watches = config
            .satip_server
            .iter()
            .filter_map(|s| watch(pool, s).map(|w| (s.clone(), w)))
            .collect();
        RemoteTuners {
            pool: pool.clone(),
            watches: Arc::new(Mutex::new(watches)),
        }
    }

    /// Applies `config`'s `[[satip_server]]` list (a reload): entries gone stop (their tuners
    /// leave the pool, their users move or are told), new ones start, changed ones restart
    /// (stop, then start), unchanged ones go on untouched. A summary for the log, `None` when
    /// nothing started or stopped (a reload then logs one line, as without remote tuners).
    pub fn apply(&self, config: &crate::config::Config) -> Option<String> {
        let mut w = self.watches.lock().unwrap();
        let (kept, gone): (Vec<_>, Vec<_>) = std::mem::take(&mut *w)
            .into_iter()
            .partition(|(s, _)| config.satip_server.contains(s));
        let stopped: Vec<String> = gone.iter().map(|(s, _)| s.url.clone()).collect();
        // Their threads joined, their tuners out, before anything starts in their place.
        drop(gone);
        *w = kept;
        let mut started = Vec::new();
        for s in &config.satip_server {
            if w.iter().any(|(k, _)| k == s) {
                continue;
            }
            if let Some(watch) = watch(&self.pool, s) {
                started.push(s.url.clone());
                w.push((s.clone(), watch));
            }
        }
        if started.is_empty() && stopped.is_empty() {
            return None;
        }
        Some(format!(
            "satip_server: started {started:?}, stopped {stopped:?}, {} unchanged",
            w.len() - started.len()
        ))
    }
}

/// A remote tuner's report as `GET /api/tuners` shows it.
#[derive(Debug, Clone, serde::Serialize, PartialEq, Eq)]
pub struct RemoteTuner {
    /// `rtsp://host:port/` of its server.
    pub server: String,
    /// `idle`, `starting`, `live` or `failed`.
    pub state: &'static str,
    pub bytes_in: u64,
    /// Sessions set up on the server (retries included) and sessions that failed.
    pub starts: u64,
    pub failures: u64,
    pub last_error: Option<String>,
}

impl From<&gstdvb2ip::tuners::satip_remote::RemoteReport> for RemoteTuner {
    fn from(r: &gstdvb2ip::tuners::satip_remote::RemoteReport) -> Self {
        RemoteTuner {
            server: r.server.clone(),
            state: r.state.name(),
            bytes_in: r.bytes_in,
            starts: r.starts,
            failures: r.failures,
            last_error: r.last_error.clone(),
        }
    }
}
