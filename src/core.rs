//! The server's owned state: one [`Core`] per server, built by `serve` and handed to every
//! front end (RTSP server, client and factories, HTTP, SSDP's description), instead of
//! process-wide registries. Two cores (two servers, each with its own pool) live side by side
//! in one process.
//!
//! * `pool`: the tuner pool its streams lease from. `serve` uses the elements' process-wide
//!   default pool (what gst-launch and `DVB2IP_CONFIG` configure); a test or an embedding
//!   application can give a server a pool of its own. The server's pipelines hand it to the
//!   elements in a `dvb2ip.tuner-pool` `GstContext` ([`Core::pool_context`]).
//! * `streams`: the SAT>IP stream table (stream ids, owners, what serves each stream).
//! * `packers`: the RTP packetizers of its streams, served by one timer thread.
//! * `sessions`: the session count RTSP and HTTP share against `max_sessions`.
//! * `metrics`: its counters (datagrams the direct path could not send).
//! * `config`: the configuration the server runs with.
//! * `recordings`: channels being recorded into the VOD library (`crate::vod::record`).
//! * `limits`: its descriptor budget and connection counts ([`crate::limits`]).
//! * `play`: the browser variants of channels being watched in browsers ([`crate::play`]).
//! * `clients`: the session registry the web UI lists ([`crate::clients`]).
//! * `css`: the CSS channels' servers, for the web UI and metrics ([`crate::ui::css`]).

use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};

use gstdvb2ip::tuners::Pool;

use crate::config::Config;
use crate::rtp::packer::Packers;
use crate::streams::sessions::Sessions;
use crate::streams::table::{StreamTable, Streams};

/// What one server owns; shared by its front ends as `Arc<Core>`.
pub struct Core {
    pub config: Config,
    pub pool: Pool,
    pub streams: StreamTable,
    /// The RTP packetizers of the server's streams and their timer thread.
    pub packers: Packers,
    /// RTSP sessions and HTTP streams counted against `[server] max_sessions`.
    pub sessions: Arc<Sessions>,
    pub metrics: Metrics,
    /// Recordings of channels into the first VOD root.
    pub recordings: crate::vod::record::Recordings,
    /// The pacing thread of the direct VOD sessions, started by the first one ([`Core::vod_pacer`]).
    vod_pacer: std::sync::OnceLock<crate::vod::pacer::Pacer>,
    /// The channel database and its scans (src/scan/service.rs).
    pub scans: Arc<crate::scan::service::Scans>,
    /// Descriptor budget: connection caps and the headroom new work needs.
    pub limits: crate::limits::Limits,
    /// The `[[relay]]` relays and their reports (src/relay).
    pub relays: Arc<crate::relay::Relays>,
    /// The `[[publish]]` mounts, `[[push]]`es and their reports (src/publish).
    pub publishers: Arc<crate::publish::Publishers>,
    /// Browser playback: the channels' shared browser pipelines (src/play).
    pub play: Arc<crate::play::transcode::Players>,
    /// Every client receiving a stream, whatever front end serves it (src/clients.rs).
    pub clients: Arc<crate::clients::Clients>,
    /// The `[[satip_server]]` watches lending remote tuners to `pool` (src/remote_tuners).
    pub remote_tuners: crate::remote_tuners::RemoteTuners,
    /// The CSS channels' running `dvbcsssink`s and their counts (src/ui/css.rs).
    pub css: Arc<crate::ui::css::CssSinks>,
}

/// The server's counters.
#[derive(Debug, Default)]
pub struct Metrics {
    /// RTP/RTCP datagrams of the direct path that could not be sent (socket buffer full, or an
    /// error).
    pub rtp_dropped: Arc<AtomicU64>,
    /// The HTTP server's connections, streams, refusals, timeouts and slow clients dropped.
    pub http: Arc<crate::http::limits::HttpStats>,
}

impl Core {
    /// The one pacing thread of the server's direct VOD sessions (src/vod/pacer.rs), started when
    /// the first one opens.
    pub fn vod_pacer(&self) -> &crate::vod::pacer::Pacer {
        self.vod_pacer.get_or_init(crate::vod::pacer::Pacer::new)
    }

    /// A core serving `config` from `pool` (frontends as `pool` has them configured).
    pub fn new(config: Config, pool: Pool) -> Arc<Core> {
        let sessions = Arc::new(Sessions::new(
            config.server.effective_max_sessions() as usize
        ));
        let scans = crate::scan::service::Scans::new(&config, pool.clone());
        Arc::new(Core {
            clients: Arc::new(crate::ui::clients_for(&config, &scans)),
            css: Arc::default(),
            recordings: crate::vod::record::Recordings::new(pool.clone(), &config),
            vod_pacer: std::sync::OnceLock::new(),
            scans,
            relays: Arc::new(crate::relay::Relays::new(&config)),
            publishers: Arc::new(crate::publish::Publishers::new(&config)),
            play: crate::play::transcode::Players::new(pool.clone()),
            remote_tuners: crate::remote_tuners::RemoteTuners::start(&config, &pool),
            config,
            pool,
            streams: Arc::new(Mutex::new(Streams::default())),
            packers: Packers::default(),
            sessions,
            metrics: Metrics::default(),
            limits: crate::limits::Limits::from_rlimit(),
        })
    }

    /// A core with a tuner pool of its own, built from `config`'s broadcast part, its content
    /// generated.
    pub fn with_own_pool(config: Config) -> anyhow::Result<Arc<Core>> {
        let pool = Pool::new(config.broadcast.clone());
        pool.prepare_content()?;
        Ok(Self::new(config, pool))
    }

    /// The context that hands this core's pool to the elements of a pipeline.
    pub fn pool_context(&self) -> gst::Context {
        gstdvb2ip::tuners::pool_context(&self.pool)
    }
}
