//! Remote SAT>IP tuners in the pool (issue 14 item 3): each `[[satip_server]]`
//! ([`config::SatipServerSection`]) is watched while the core lives; its tuners join the
//! core's pool while it answers and leave it when it vanishes
//! (gst-plugin `tuners/satip_remote.rs`). Their state and counters are reported with the
//! pool's frontends (`FrontendInfo::remote`, `GET /api/tuners`).

pub mod config;

use gstdvb2ip::tuners::satip_remote::ServerWatch;
use gstdvb2ip::tuners::Pool;

/// The watches of a core's `[[satip_server]]` entries; dropping it takes their tuners out.
#[derive(Debug, Default)]
pub struct RemoteTuners {
    _watches: Vec<ServerWatch>,
}

impl RemoteTuners {
    /// Starts watching every configured server for `pool` (entries were checked with the
    /// configuration; one that still fails is logged and skipped).
    pub fn start(config: &crate::config::Config, pool: &Pool) -> RemoteTuners {
        let mut watches = Vec::new();
        for s in &config.satip_server {
            match s.server() {
                Ok(server) => {
                    watches.push(pool.watch_remote(
                        server,
                        std::sync::Arc::new(|line: &str| eprintln!("dvb2ip: {line}")),
                    ));
                }
                Err(e) => eprintln!("dvb2ip: satip_server {}: {e}", s.url),
            }
        }
        RemoteTuners { _watches: watches }
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
