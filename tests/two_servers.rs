//! Two independent servers in one process: each `Core` owns its tuner pool and stream table,
//! listens on its own ports, and serves its own tuners, over HTTP (description, status page,
//! streaming), over RTSP's direct unicast path, and in a channel mount's gst-rtsp-server media
//! (whose `dvbtunersrc` gets the core's pool in a `dvb2ip.tuner-pool` context). The elements'
//! process-wide default pool stays untouched.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use dvb2ip::config::Config;
use dvb2ip::core::Core;
use dvb2ip::serve;
use gst::glib;
use gst::prelude::*;
use gstdvb2ip::tuners::Pool;

fn in_use(pool: &Pool) -> usize {
    pool.frontends().iter().filter(|f| f.users > 0).count()
}

/// Waits (at most 60 s; a slow machine takes longer, it does not get less) until `cond`.
fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !cond() {
        assert!(Instant::now() < deadline, "{what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

struct Running {
    server: serve::Server,
    network: serve::Network,
}

fn start(cfg: Config, rt: &tokio::runtime::Runtime) -> Running {
    let mut cfg = cfg;
    cfg.ssdp.enabled = false;
    cfg.server.http_port = 0;
    let core = Core::with_own_pool(cfg.clone()).expect("core with its own pool");
    let server = serve::start_with(
        core,
        &serve::ServeOptions {
            rtsp_port: Some(0),
            bind: None,
        },
    )
    .expect("server");
    let network = serve::spawn_network(rt, &cfg, &server).expect("http");
    Running { server, network }
}

fn curl(port: u16, path: &str) -> String {
    let out = Command::new("curl")
        .args(["-s", "-m", "30"])
        .arg(format!("http://127.0.0.1:{port}{path}"))
        .output()
        .expect("curl");
    String::from_utf8_lossy(&out.stdout).to_string()
}

/// An in-process `rtspsrc` on `url` into an appsink, playing until dropped.
struct Player {
    pipeline: gst::Pipeline,
    sink: gst_app::AppSink,
}

impl Player {
    fn new(url: &str) -> Player {
        let pipeline = gst::parse::launch(&format!(
            "rtspsrc location=\"{url}\" protocols=udp latency=0 ! appsink name=sink sync=false"
        ))
        .unwrap()
        .downcast::<gst::Pipeline>()
        .unwrap();
        let sink = pipeline
            .by_name("sink")
            .unwrap()
            .downcast::<gst_app::AppSink>()
            .unwrap();
        pipeline.set_state(gst::State::Playing).unwrap();
        Player { pipeline, sink }
    }

    fn wait_data(&self, what: &str) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while self
            .sink
            .try_pull_sample(gst::ClockTime::from_mseconds(200))
            .is_none()
        {
            assert!(Instant::now() < deadline, "{what}: no RTP data");
        }
    }
}

impl Drop for Player {
    fn drop(&mut self) {
        let _ = self.pipeline.set_state(gst::State::Null);
    }
}

#[test]
fn two_servers_in_one_process_serve_their_own_tuners() {
    serve::init(&Config::embedded()).expect("init");
    let ml = glib::MainLoop::new(None, false);
    let ml2 = ml.clone();
    let main_thread = std::thread::spawn(move || ml2.run());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();

    // A: the embedded configuration. B: one DVB-T/T2 frontend of its own name.
    let a = start(Config::embedded(), &rt);
    let mut cfg_b = Config::embedded();
    cfg_b.broadcast.adapter.truncate(1);
    cfg_b.broadcast.adapter[0].name = "Second server DVB-T/T2".into();
    let b = start(cfg_b, &rt);
    let (pa, pb) = (&a.server.core.pool, &b.server.core.pool);
    let default = Pool::default_pool();
    assert_ne!(pa, pb);
    assert_ne!(a.server.rtsp_port, b.server.rtsp_port);
    assert_ne!(a.network.http.port, b.network.http.port);
    assert_eq!(pa.frontends().len(), 4);
    assert_eq!(pb.frontends().len(), 1);

    // Each description announces its own frontends; each status page lists its own.
    let desc_a = curl(a.network.http.port, "/desc.xml");
    let desc_b = curl(b.network.http.port, "/desc.xml");
    assert!(desc_a.contains("DVBS2-1"), "{desc_a}");
    assert!(!desc_b.contains("DVBS2"), "{desc_b}");
    assert!(desc_b.contains(">DVBT2-1<"), "{desc_b}");
    let page_b = curl(b.network.http.port, "/");
    assert!(page_b.contains("Second server DVB-T/T2"), "{page_b}");
    assert!(!page_b.contains("Emulated DVB-C"), "{page_b}");
    let page_a = curl(a.network.http.port, "/");
    assert!(page_a.contains("Emulated DVB-C"), "{page_a}");

    // HTTP streaming from B leases from B's pool only.
    let mut holder = Command::new("curl")
        .args(["-s", "-o", "/dev/null", "--max-time", "120"])
        .arg(format!(
            "http://127.0.0.1:{}/?freq=506&msys=dvbt&bw=8&pids=0,16,17",
            b.network.http.port
        ))
        .spawn()
        .unwrap();
    wait_until("B's HTTP stream tunes B's frontend", || in_use(pb) == 1);
    assert_eq!(in_use(pa), 0, "A's pool untouched");
    assert_eq!(in_use(default), 0, "default pool untouched");
    let _ = holder.kill();
    let _ = holder.wait();
    wait_until("B's frontend released", || in_use(pb) == 0);

    // SAT>IP over RTSP (direct unicast path) on B.
    let p = Player::new(&format!(
        "rtsp://127.0.0.1:{}/?freq=506&msys=dvbt&bw=8&pids=0,16,17",
        b.server.rtsp_port
    ));
    p.wait_data("SAT>IP RTSP on B");
    assert_eq!(in_use(pb), 1);
    assert_eq!(in_use(pa), 0);
    assert_eq!(in_use(default), 0);
    drop(p);
    wait_until("B's frontend released after RTSP", || in_use(pb) == 0);

    // A channel mount of A: a gst-rtsp-server media whose dvbtunersrc gets A's pool.
    let p = Player::new(&format!("rtsp://127.0.0.1:{}/ch/news", a.server.rtsp_port));
    p.wait_data("channel mount on A");
    assert_eq!(in_use(pa), 1);
    assert_eq!(in_use(pb), 0);
    assert_eq!(in_use(default), 0);
    drop(p);

    drop(a);
    drop(b);
    ml.quit();
    let _ = main_thread.join();
}
