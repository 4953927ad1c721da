//! The baseline of `dvb2ip-bench satip`: GStreamer's own gst-rtsp-server with *shared* media
//! factories playing the same emulated multiplex through the same tuner pool element, with a
//! plain `tsparse ! rtpmp2tpay` pipeline. Runs as its own process
//! (`dvb2ip-bench satip-baseline-server`) so the bench measures it like the dvb2ip server.
//!
//! Mounts: `/mux` (the whole multiplex) and `/s0`, `/s1`, … (one per PID subset of the
//! bench's distinct mode, filtered by `dvbtunersrc pids=…`), and `/hs/0`, `/hs/1`, … (one per
//! service of `dvb2ip-bench headend`, on every mux) and `/hm/0`, … (one per mux, every PID).

use anyhow::Context;
use gst::glib;
use gst_rtsp_server::prelude::*;

use dvb2ip::config::Config;

/// `dvbtunersrc` tuning of the benchmark multiplex (DVB-T2 474 MHz PLP 0, 20 Mbit/s in the
/// embedded configuration); the SAT>IP side asks for the same with [`SATIP_MUX`].
pub const TUNER: &str = "delsys=dvb-t2 frequency=474000000 bandwidth-hz=8000000 stream-id=0";
/// The same multiplex as a SAT>IP query.
pub const SATIP_MUX: &str = "freq=474&msys=dvbt2&bw=8&plp=0";
/// Frequency of the multiplex in kHz (to find its nominal bitrate in the configuration).
pub const MUX_KHZ: u64 = 474_000;
/// PID subsets of the "distinct" mode; session `i` gets subset `i % len`.
pub const SUBSETS: [&str; 3] = [
    "0,16,17,18,256,257,258",
    "0,16,17,18,512,513,514",
    "0,16,17,18,768,770",
];
/// Mount of the whole multiplex on the baseline server.
pub const MOUNT_ALL: &str = "/mux";

/// Mount of PID subset `i` on the baseline server.
pub fn subset_mount(i: usize) -> String {
    format!("/s{i}")
}

/// The launch line of a baseline media: the emulated mux (or a PID subset of it) packetised by
/// GStreamer's stock elements.
pub fn launch(pids: &str) -> String {
    format!(
        "( dvbtunersrc {TUNER} pids={pids} ! tsparse set-timestamps=true ! rtpmp2tpay name=pay0 pt=33 )"
    )
}

/// Runs the baseline server on 127.0.0.1 (free port, printed as
/// `baseline: serving RTSP on 127.0.0.1:PORT`) until the process is killed.
pub fn run_server() -> anyhow::Result<()> {
    let mut cfg = Config::embedded();
    cfg.broadcast.emulator.hardware = "off".into();
    gst::init()?;
    gstdvb2ip::plugin_register_static().context("registering the dvb2ip elements")?;
    gstdvb2ip::tuners::configure(cfg.broadcast.clone()).map_err(anyhow::Error::msg)?;
    gstdvb2ip::tuners::prepare_content().map_err(anyhow::Error::msg)?;
    let server = gst_rtsp_server::RTSPServer::new();
    server.set_address("127.0.0.1");
    server.set_service("0");
    let mounts = server
        .mount_points()
        .context("RTSP server has mount points")?;
    let mount = |path: &str, pids: &str| {
        let factory = gst_rtsp_server::RTSPMediaFactory::new();
        factory.set_launch(&launch(pids));
        factory.set_shared(true);
        mounts.add_factory(path, factory);
    };
    mount(MOUNT_ALL, "all");
    for (i, pids) in SUBSETS.iter().enumerate() {
        mount(&subset_mount(i), pids);
    }
    // The shared media of `dvb2ip-bench headend`: one per service, one per mux.
    for (path, launch) in crate::headend::baseline_mounts()? {
        let factory = gst_rtsp_server::RTSPMediaFactory::new();
        factory.set_launch(&launch);
        factory.set_shared(true);
        mounts.add_factory(&path, factory);
    }
    let _source = server
        .attach(None)
        .map_err(|e| anyhow::anyhow!("cannot attach the baseline RTSP server: {e}"))?;
    let pool = server
        .session_pool()
        .context("RTSP server has a session pool")?;
    let _cleanup = glib::timeout_add_seconds(1, move || {
        pool.cleanup();
        glib::ControlFlow::Continue
    });
    println!(
        "baseline: serving RTSP on 127.0.0.1:{}",
        server.bound_port()
    );
    glib::MainLoop::new(None, false).run();
    Ok(())
}
