//! `dvb2ip serve`: the RTSP server (gst-rtsp-server on the glib main loop) with one mount per
//! configured channel, fed by `dvbtunersrc` from the process-wide tuner pool.

use std::net::{IpAddr, SocketAddr, TcpListener};
use std::sync::Arc;

use anyhow::{bail, Context};
use gst::glib;
use gst_rtsp_server::prelude::*;

use crate::channels;
use crate::config::Config;
use crate::core::Core;

/// The launch fragment of a channel mount (`pipelines/channel-rtsp.launch`).
pub const CHANNEL_LAUNCH: &str = include_str!("../pipelines/channel-rtsp.launch");

static CAT: once_cell::sync::Lazy<gst::DebugCategory> = once_cell::sync::Lazy::new(|| {
    gst::DebugCategory::new(
        "dvb2ip",
        gst::DebugColorFlags::empty(),
        Some("dvb2ip launcher"),
    )
});

/// Options that override the configuration file.
#[derive(Debug, Clone, Default)]
pub struct ServeOptions {
    pub rtsp_port: Option<u16>,
    pub bind: Option<String>,
}

/// A running server, attached to the default main context.
pub struct Server {
    /// What it serves from (pool, stream table, configuration), shared with its front ends.
    pub core: Arc<Core>,
    pub rtsp: gst_rtsp_server::RTSPServer,
    pub rtsp_port: u16,
    pub bind: IpAddr,
    source_id: Option<glib::SourceId>,
    cleanup_id: Option<glib::SourceId>,
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(id) = self.source_id.take() {
            id.remove();
        }
        if let Some(id) = self.cleanup_id.take() {
            id.remove();
        }
    }
}

/// Registers the plugin, configures the tuner pool and generates content. Call once.
pub fn init(cfg: &Config) -> anyhow::Result<()> {
    gst::init()?;
    gstdvb2ip::plugin_register_static().context("registering the dvb2ip elements")?;
    gstdvb2ip::tuners::configure(cfg.broadcast.clone()).map_err(anyhow::Error::msg)?;
    gstdvb2ip::tuners::prepare_content().map_err(anyhow::Error::msg)?;
    Ok(())
}

/// Builds and attaches the RTSP server on the elements' default tuner pool (configured by
/// [`init`]). Port 0 picks a free port.
pub fn start(cfg: &Config, opts: &ServeOptions) -> anyhow::Result<Server> {
    start_with(
        Core::new(cfg.clone(), gstdvb2ip::tuners::Pool::default_pool().clone()),
        opts,
    )
}

/// Builds and attaches the RTSP server of `core` (its configuration, its tuner pool). Port 0
/// picks a free port.
pub fn start_with(core: Arc<Core>, opts: &ServeOptions) -> anyhow::Result<Server> {
    let cfg = &core.config;
    if let Some(e) = core.scans.load_error() {
        bail!("{e}");
    }
    let bind: IpAddr = opts
        .bind
        .as_deref()
        .unwrap_or(&cfg.server.bind)
        .parse()
        .context("bind address")?;
    let port = opts.rtsp_port.unwrap_or(cfg.server.rtsp_port);
    // Probe the port first so the user gets a clear message rather than a generic failure.
    if port != 0 {
        if let Err(e) = TcpListener::bind(SocketAddr::new(bind, port)) {
            bail!(
                "cannot listen for RTSP on {bind}:{port}: {e}. Port 554 needs root (or CAP_NET_BIND_SERVICE) \
                 and must be free; choose another with --rtsp-port PORT (e.g. --rtsp-port 8554)"
            );
        }
    }
    // SAT>IP URLs go to the SAT>IP factory (src/rtsp); named channels stay plain mounts.
    let server = crate::rtsp::build(&core, cfg.server.session_timeout.max(1));
    // Multicast groups come from the range of the stored DEVICE ID ([`follow_device_id`]
    // moves them when discovery settles on another).
    crate::rtsp::server::configure(&server, cfg, crate::ssdp::initial_device_id(cfg));
    server.set_address(&bind.to_string());
    server.set_service(&port.to_string());
    let mounts = server
        .mount_points()
        .context("RTSP server has mount points")?;
    for ch in &cfg.channel {
        let (_, mut source) = channels::tuning_for_query(&ch.query)
            .map_err(|e| anyhow::anyhow!("channel {:?}: {e}", ch.name))?;
        if let Some(css) = &ch.css {
            // DVB-CSS on the same stream while the channel plays (src/channels.rs).
            let program = channels::channel_program(&ch.query, &cfg.broadcast);
            source += &css.branch(&bind.to_string(), program);
        }
        let factory = gst_rtsp_server::RTSPMediaFactory::new();
        factory.set_launch(CHANNEL_LAUNCH.trim().replace("{source}", &source).as_str());
        factory.set_shared(true);
        // A CSS channel's TV pauses with its RTSP client: its pipeline stays (PAUSED), so that
        // dvbcsssink keeps its CSS servers and announces speed 0 (src/companion, issue 18).
        factory.set_suspend_mode(if ch.css.is_some() {
            gst_rtsp_server::RTSPSuspendMode::None
        } else {
            gst_rtsp_server::RTSPSuspendMode::Reset
        });
        factory.set_latency(0);
        // The channel's dvbtunersrc leases from the core's pool.
        let ctx = core.pool_context();
        let css = ch
            .css
            .is_some()
            .then(|| (core.css.clone(), ch.name.clone()));
        factory.connect_media_configure(move |_, media| {
            media.element().set_context(&ctx);
            // The web UI and metrics read the channel's CSS servers (src/ui/css.rs).
            if let Some((sinks, name)) = &css {
                sinks.watch(name, media);
            }
        });
        mounts.add_factory(&format!("/ch/{}", ch.name), factory);
        gst::info!(CAT, "mounted /ch/{} -> {}", ch.name, source);
    }
    // Every service of the channel database, following rescans (src/scan/mounts.rs).
    crate::scan::mounts::attach(&core, &mounts);
    // `[[relay]]` mounts, /relay/<name> (src/relay).
    crate::relay::rtsp::mount(&core, &mounts);
    // `[[publish]]` mounts, /live/<name> (src/publish).
    crate::publish::rtsp::mount(&core, &mounts);
    let source_id = server
        .attach(None)
        .map_err(|e| anyhow::anyhow!("cannot attach the RTSP server on {bind}:{port}: {e}"))?;
    let rtsp_port = server.bound_port() as u16;
    // `[[push]]`es read this server's mounts on its own RTSP port (src/publish/push.rs).
    core.publishers.pushes.start(bind, rtsp_port);
    // RTSP sessions and HTTP streams share `max_sessions` (src/streams/sessions.rs).
    if let Some(pool) = server.session_pool() {
        core.sessions
            .set_rtsp_count(Box::new(move || pool.n_sessions() as usize));
    }
    // Expired sessions (no request and no RTCP for the timeout) are reaped every second.
    let pool = server
        .session_pool()
        .context("RTSP server has a session pool")?;
    let cleanup_id = glib::timeout_add_seconds(1, move || {
        pool.cleanup();
        glib::ControlFlow::Continue
    });
    Ok(Server {
        core,
        rtsp: server.upcast(),
        cleanup_id: Some(cleanup_id),
        rtsp_port,
        bind,
        source_id: Some(source_id),
    })
}

/// The network front ends beside RTSP: the HTTP server (always) and SSDP discovery (when
/// `[ssdp] enabled`). Dropping it sends the byebye set first, then stops HTTP.
pub struct Network {
    /// Discovery (inert with SSDP off); declared first so it is dropped first.
    pub ssdp: crate::ssdp::Ssdp,
    /// Streaming, description, channel list and status page on `server.http_port`.
    pub http: crate::http::server::HttpServer,
    /// The DEVICE ID in use: the stored one at start, then each settled one.
    pub device_id: tokio::sync::watch::Receiver<u8>,
    /// Keeps X_SATIPCAP, CONFIGID and the SSDP announcements following the tuner set.
    pub tuner_set: gstdvb2ip::tuners::MembershipListener,
    /// Other SAT>IP servers found over SSDP lending their tuners (`[ssdp] discover_servers`).
    pub discovery: crate::ssdp::discovery::Discovery,
}

/// Starts the HTTP server on `bind:server.http_port` and, when enabled, SSDP announcing it,
/// on `rt`; the server's default multicast range follows the DEVICE ID discovery settles on.
/// Call after [`init`] (X_SATIPCAP reads the tuner pool).
pub fn spawn_network(
    rt: &tokio::runtime::Runtime,
    cfg: &Config,
    server: &Server,
) -> anyhow::Result<Network> {
    crate::ssdp::check_locations(cfg, server.bind)?;
    let identity = crate::ssdp::Identity::load(cfg)?;
    let mut desc = crate::ssdp::description::DescriptionState::for_config(
        cfg,
        &server.core.pool,
        &identity.state.uuid,
        server.rtsp_port,
    );
    // The channel database's services after the configured channels (src/scan).
    let scans = Arc::downgrade(&server.core.scans);
    desc.more_channels = Some(crate::ssdp::description::MoreChannels(Arc::new(
        move || {
            scans
                .upgrade()
                .map(|s| crate::scan::service::description_channels(&s))
                .unwrap_or_default()
        },
    )));
    let desc = Arc::new(desc);
    // The tuner set changes (hotplug, reload): X_SATIPCAP and CONFIGID follow, and SSDP
    // announces the new CONFIGID.
    let (config_tx, config_rx) = tokio::sync::watch::channel(desc.config_id());
    let tuner_set = {
        let desc = desc.clone();
        server.core.pool.on_membership_change(move |change| {
            let caps = crate::ssdp::description::caps_from_numbering(&change.satip);
            if let Some(id) = desc.set_caps(caps) {
                eprintln!("dvb2ip: tuners changed: X_SATIPCAP {caps}, CONFIGID {id}");
                config_tx.send_replace(id);
            }
        })
    };
    let (id_tx, id_rx) = tokio::sync::watch::channel(identity.state.device_id);
    let http = crate::http::server::spawn_with(
        rt,
        server.bind,
        cfg.server.http_port,
        crate::http::server::router(&server.core, desc, id_rx.clone()),
        crate::http::limits::HttpLimits::resolve(&cfg.http, server.core.limits.nofile() as u64),
        server.core.limits.clone(),
        server.core.metrics.http.clone(),
    )?;
    let ssdp = crate::ssdp::spawn(rt, cfg, &identity, http.port, config_rx, id_tx)?;
    follow_device_id(rt, cfg, server, id_rx.clone());
    let discovery = crate::ssdp::discovery::start(cfg, &identity.state.uuid, &server.core.pool);
    Ok(Network {
        discovery,
        ssdp,
        http,
        device_id: id_rx,
        tuner_set,
    })
}

/// Keeps the server's default multicast range on `239.<DEVICEID>.0.0/16` of the DEVICE ID
/// discovery settles on ([`Network::device_id`]), on `rt`, for as long as discovery runs.
pub fn follow_device_id(
    rt: &tokio::runtime::Runtime,
    cfg: &Config,
    server: &Server,
    mut ids: tokio::sync::watch::Receiver<u8>,
) {
    let cfg = cfg.clone();
    let rtsp = server.rtsp.clone();
    let mut current = crate::ssdp::initial_device_id(&cfg);
    rt.spawn(async move {
        loop {
            let id = *ids.borrow_and_update();
            if id != current {
                current = id;
                crate::rtsp::server::set_device_id(&rtsp, &cfg, id);
            }
            if ids.changed().await.is_err() {
                break;
            }
        }
    });
}

/// What to try next, printed at start (`http_port`: where the HTTP server listens).
pub fn banner(cfg: &Config, server: &Server, http_port: u16) -> String {
    let host = match server.bind {
        IpAddr::V4(a) if a.is_unspecified() => "127.0.0.1".to_string(),
        IpAddr::V6(a) if a.is_unspecified() => "[::1]".to_string(),
        IpAddr::V6(a) => format!("[{a}]"),
        a => a.to_string(),
    };
    let mut s = format!(
        "dvb2ip: serving RTSP on {}:{}\n",
        server.bind, server.rtsp_port
    );
    for f in server.core.pool.frontends() {
        let ds: Vec<&str> = f.delsys.iter().map(|d| d.nick()).collect();
        s += &format!(
            "  frontend adapter{}/frontend{}: {} [{}]{}\n",
            f.adapter,
            f.frontend,
            f.name,
            ds.join(","),
            if f.emulated { " (emulated)" } else { "" }
        );
    }
    s += "Try next:\n";
    s += &format!(
        "  ffprobe 'satip://{host}:{}/?freq=506&msys=dvbt&bw=8&pids=0,16,17,256,257,258'   # SAT>IP query\n",
        server.rtsp_port
    );
    s += &format!(
        "  curl -o news.ts 'http://{host}:{}/?freq=506&msys=dvbt&bw=8&pids=0,16,17,256,257,258'   # HTTP streaming\n",
        http_port
    );
    s += &format!(
        "  curl http://{host}:{}/channels.m3u   # channel list (also /desc.xml)\n",
        http_port
    );
    s += &format!("  curl http://{host}:{}/   # status page\n", http_port);
    for ch in &cfg.channel {
        s += &format!(
            "  ffprobe rtsp://{host}:{}/ch/{}    # {}\n",
            server.rtsp_port, ch.name, ch.title
        );
    }
    for ch in &cfg.channel {
        if let Some(css) = &ch.css {
            let (cii, ts, wc) = css.urls(&server.bind.to_string());
            s += &format!(
                "  DVB-CSS of /ch/{} while it plays: CSS-CII {cii}  CSS-TS {ts}  CSS-WC {wc}\n",
                ch.name
            );
            s += &format!("    dvb2ip css cii-client {cii}\n");
        }
    }
    if let Some(ch) = cfg.channel.first() {
        s += &format!("  vlc rtsp://{host}:{}/ch/{}\n", server.rtsp_port, ch.name);
        s += &format!(
            "  gst-launch-1.0 rtspsrc location=rtsp://{host}:{}/ch/{} ! rtpmp2tdepay ! tsdemux ! fakesink\n",
            server.rtsp_port, ch.name
        );
    }
    s += "Stop with Ctrl-C.\n";
    s
}

/// Runs the server until SIGINT/SIGTERM.
pub fn run(cfg: Config, opts: ServeOptions) -> anyhow::Result<()> {
    run_from(cfg, opts, None)
}

/// Runs the server until SIGINT/SIGTERM; `SIGHUP` reloads `config_file` (the file `cfg` came
/// from), see [`crate::reload`]. With `[emulator] hardware = "auto"` real adapters join and
/// leave as /dev/dvb changes.
pub fn run_from(
    cfg: Config,
    opts: ServeOptions,
    config_file: Option<std::path::PathBuf>,
) -> anyhow::Result<()> {
    // Every stream has a few streaming threads; without a cap glibc gives busy threads
    // their own malloc arenas (up to 8 per core), which keep freed memory resident.
    // SAFETY: mallopt only tunes the allocator (thread-safe), before any stream starts.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
    // Connections and pipelines need descriptors: the soft limit up to the hard one, and the
    // budget of `crate::limits` keeps every cap below it (issue 16 item 1).
    match crate::limits::raise_nofile() {
        Ok((soft, _)) => gst::info!(CAT, "descriptor limit {soft}"),
        Err(e) => eprintln!("dvb2ip: cannot raise the descriptor limit: {e}"),
    }
    init(&cfg)?;
    let main_loop = glib::MainLoop::new(None, false);
    let server = start(&cfg, &opts)?;
    // The launcher's own tokio runtime (SSDP and HTTP live here too) waits for the signals.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        // HTTP streams lease and release frontends on the blocking pool (a few at a time):
        // bounded, so clients coming and going never add threads.
        .max_blocking_threads(4)
        .thread_name("dvb2ip-launcher")
        .enable_all()
        .build()
        .context("tokio runtime")?;
    // Real adapters follow /dev/dvb.
    let _watcher = (cfg.broadcast.emulator.hardware == "auto")
        .then(|| {
            server
                .core
                .pool
                .watch_devices(gstdvb2ip::tuners::hotplug::WatchOptions {
                    on_event: Some(Arc::new(|e: &gstdvb2ip::tuners::hotplug::HotplugEvent| {
                        eprintln!("dvb2ip: hotplug: {e}")
                    })),
                    ..Default::default()
                })
                .map_err(|e| eprintln!("dvb2ip: hotplug: cannot watch /dev: {e}"))
                .ok()
        })
        .flatten();
    if let Some(path) = config_file {
        let mut reloader = crate::reload::Reloader::new(&path)
            .with_remote_tuners(server.core.remote_tuners.clone());
        let pool = server.core.pool.clone();
        let mut hup = {
            let _rt = rt.enter();
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
                .context("SIGHUP handler")?
        };
        rt.spawn(async move {
            while hup.recv().await.is_some() {
                eprintln!("dvb2ip: SIGHUP: reloading {}", path.display());
                let pool = pool.clone();
                // Frontends start and stop (threads joined): off the async workers.
                reloader = match tokio::task::spawn_blocking(move || {
                    reloader.reload_and_report(&pool);
                    reloader
                })
                .await
                {
                    Ok(r) => r,
                    Err(_) => break,
                };
            }
        });
    }
    let ml = main_loop.clone();
    rt.spawn(async move {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending::<()>().await } } => {}
        }
        glib::MainContext::default().invoke(move || ml.quit());
    });
    // HTTP (streaming, /desc.xml, /channels.m3u, status page) and SSDP; dropped last: byebye.
    let network = spawn_network(&rt, &cfg, &server)?;
    print!("{}", banner(&cfg, &server, network.http.port));
    print!("{}", crate::vod::record::start_at_start(&server.core)?);
    // Scan at start when the channel database is empty, rescan periodically (src/scan).
    server.core.scans.start_service();
    main_loop.run();
    eprintln!("dvb2ip: shutting down");
    // A running scan stops; every mux it finished is in the database already.
    server.core.scans.stop();
    server
        .core
        .scans
        .wait_idle(std::time::Duration::from_secs(3));
    // Tear down every session so their pipelines stop and the tuners are released.
    if let Some(pool) = server.rtsp.session_pool() {
        pool.filter(Some(&mut |_, _| gst_rtsp_server::RTSPFilterResult::Remove));
    }
    server.core.recordings.stop_all();
    drop(server);
    drop(network);
    Ok(())
}
