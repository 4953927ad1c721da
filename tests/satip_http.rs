//! SAT>IP HTTP streaming (`src/http/stream.rs`) with curl on 127.0.0.1, and `satipmapsrc`
//! used directly in gst-launch.
//!
//! Each HTTP test runs its own server over a tuner pool of its own (a `Core` each), so the
//! tests run side by side without a global lock.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use dvb2ip::config::Config;
use dvb2ip::core::Core;
use dvb2ip::http::stream::{router, StreamState};
use gstdvb2ip::tuners::Pool;

/// Registers the plugin and configures the elements' default pool, once.
fn init() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| dvb2ip::serve::init(&Config::embedded()).expect("init"));
}

/// The streaming routes on 127.0.0.1 (a free port) over a tuner pool of the test's own, so
/// tests run side by side; stopped when dropped.
struct Http {
    port: u16,
    pool: Pool,
    _server: dvb2ip::http::server::HttpServer,
    _rt: tokio::runtime::Runtime,
}

fn http_server() -> Http {
    init();
    let core = Core::with_own_pool(Config::embedded()).expect("core");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let server = dvb2ip::http::server::spawn(
        &rt,
        "127.0.0.1".parse().unwrap(),
        0,
        router(StreamState {
            pool: core.pool.clone(),
            ..Default::default()
        }),
    )
    .expect("http");
    Http {
        port: server.port,
        pool: core.pool.clone(),
        _server: server,
        _rt: rt,
    }
}

fn in_use(pool: &Pool) -> usize {
    pool.frontends().iter().filter(|f| f.users > 0).count()
}

fn wait_all_free(pool: &Pool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while in_use(pool) > 0 {
        assert!(Instant::now() < deadline, "frontend not released");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// curl until the body has more than `bytes` bytes (then the test closes the connection) or
/// curl ends by itself, at most 120 s (a slow machine takes longer, it does not get less):
/// (HTTP status, headers, body).
fn curl(http: &Http, path_and_query: &str, bytes: usize) -> (u32, String, Vec<u8>) {
    curl_at(http.port, path_and_query, bytes)
}

/// [`curl`] on the server at 127.0.0.1:`port`.
fn curl_at(port: u16, path_and_query: &str, bytes: usize) -> (u32, String, Vec<u8>) {
    // A directory per call: tests run side by side.
    static CALLS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = common::temp_dir(&format!("satip-http-{n}"));
    let body = dir.join("body");
    let mut cmd = Command::new("curl");
    cmd.args(["-s", "-D", "-", "--max-time", "120", "-o"])
        .arg(&body)
        .arg(format!("http://127.0.0.1:{port}{path_and_query}"));
    let (_, out) = common::run_until(cmd, &dir.join("headers"), Duration::from_secs(120), |_| {
        std::fs::metadata(&body).is_ok_and(|m| m.len() as usize > bytes)
    });
    let headers = out;
    let status = headers
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, headers, std::fs::read(&body).unwrap_or_default())
}

#[test]
fn checklist_100_101_curl_gets_ts_and_closing_frees_the_frontend() {
    let h = http_server();
    let (status, headers, body) = curl(
        &h,
        "/?freq=506&msys=dvbt&bw=8&pids=0,16,17,18,256,257,258",
        188 * 100,
    );
    assert_eq!(status, 200, "{headers}");
    assert!(
        headers
            .to_ascii_lowercase()
            .contains("content-type: video/mp2t"),
        "{headers}"
    );
    assert!(body.len() > 188 * 100, "{} bytes", body.len());
    let whole = &body[..body.len() / 188 * 188];
    assert!(
        whole.chunks(188).all(|p| p[0] == 0x47),
        "raw TS, no RTP header"
    );
    let pids: std::collections::BTreeSet<u16> = whole
        .chunks(188)
        .map(|p| (u16::from(p[1] & 0x1f) << 8) | u16::from(p[2]))
        .collect();
    assert!(
        pids.is_subset(&[0, 16, 17, 18, 256, 257, 258].into()) && pids.contains(&257),
        "{pids:?}"
    );
    // 101: curl closed the connection (interrupted): the frontend is released.
    wait_all_free(&h.pool);
}

/// `serve` starts the HTTP server on its own: with `[ssdp] enabled = false` streaming, the
/// description, the channel list and the status page all answer on `server.http_port`, and
/// nothing of SSDP's runs or is written.
#[test]
fn http_serves_streaming_description_m3u_and_status_page_with_ssdp_off() {
    init();
    let state = common::temp_dir("http-without-ssdp");
    let mut cfg = Config::embedded();
    cfg.ssdp.enabled = false;
    cfg.server.http_port = 0;
    cfg.ssdp.state_dir = state.display().to_string();
    let core = Core::with_own_pool(cfg.clone()).expect("core");
    let pool = core.pool.clone();
    let server = dvb2ip::serve::start_with(
        core,
        &dvb2ip::serve::ServeOptions {
            rtsp_port: Some(0),
            bind: None,
        },
    )
    .expect("rtsp server");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let network = dvb2ip::serve::spawn_network(&rt, &cfg, &server).expect("http without ssdp");
    assert!(network.ssdp.state_file.is_none(), "SSDP stays off");
    let port = network.http.port;
    assert_ne!(port, 0);

    let (status, headers, body) = curl_at(port, "/desc.xml", usize::MAX);
    assert_eq!(status, 200, "{headers}");
    let xml = String::from_utf8_lossy(&body);
    assert!(
        xml.contains("<deviceType>urn:ses-com:device:SatIPServer:1</deviceType>"),
        "{xml}"
    );

    let (status, headers, body) = curl_at(port, "/channels.m3u", usize::MAX);
    assert_eq!(status, 200, "{headers}");
    let m3u = String::from_utf8_lossy(&body);
    assert!(m3u.starts_with("#EXTM3U"), "{m3u}");
    assert!(
        m3u.contains(&format!("rtsp://127.0.0.1:{}/?", server.rtsp_port)),
        "{m3u}"
    );

    let (status, headers, body) = curl_at(port, "/", usize::MAX);
    assert_eq!(status, 200, "{headers}");
    assert!(
        headers
            .to_ascii_lowercase()
            .contains("content-type: text/html"),
        "{headers}"
    );
    let page = String::from_utf8_lossy(&body);
    assert!(page.contains("<h2>Frontends</h2>"), "{page}");

    let (status, headers, body) =
        curl_at(port, "/?freq=506&msys=dvbt&bw=8&pids=0,16,17", 188 * 100);
    assert_eq!(status, 200, "{headers}");
    assert!(
        headers
            .to_ascii_lowercase()
            .contains("content-type: video/mp2t"),
        "{headers}"
    );
    assert!(body.len() > 188 * 100, "{} bytes", body.len());
    assert!(body[..body.len() / 188 * 188]
        .chunks(188)
        .all(|p| p[0] == 0x47));
    wait_all_free(&pool);
    drop(network);
    drop(server);
    assert!(
        !state.join("ssdp.json").exists(),
        "no SSDP state written with SSDP off"
    );
}

#[test]
fn checklist_102_bad_value_gets_403_out_of_range() {
    let h = http_server();
    let (status, headers, body) = curl(&h, "/?freq=506&msys=dvbt&bw=9&pids=0", usize::MAX);
    assert_eq!(status, 403, "{headers}");
    assert_eq!(String::from_utf8_lossy(&body), "Out-of-Range: bw");
    assert!(headers.contains("text/parameters"), "{headers}");
    assert_eq!(in_use(&h.pool), 0);
}

#[test]
fn http_busy_gets_503_no_more_frontends() {
    let h = http_server();
    // Hold both DVB-T/T2 frontends with two long-running curls.
    let port = h.port;
    let mut holders: Vec<std::process::Child> = [
        "freq=506&msys=dvbt&bw=8&pids=0",
        "freq=474&msys=dvbt2&bw=8&plp=0&pids=0",
    ]
    .iter()
    .map(|q| {
        Command::new("curl")
            .args(["-s", "-o", "/dev/null", "--max-time", "600"])
            .arg(format!("http://127.0.0.1:{port}/?{q}"))
            .spawn()
            .unwrap()
    })
    .collect();
    let deadline = Instant::now() + Duration::from_secs(120);
    while in_use(&h.pool) < 2 {
        assert!(Instant::now() < deadline, "holders did not tune");
        std::thread::sleep(Duration::from_millis(50));
    }
    let (status, headers, body) = curl(&h, "/?freq=522&msys=dvbt&bw=8&pids=0", usize::MAX);
    assert_eq!(status, 503, "{headers}");
    assert_eq!(String::from_utf8_lossy(&body), "No-More: frontends");
    for holder in &mut holders {
        let _ = holder.kill();
        let _ = holder.wait();
    }
    wait_all_free(&h.pool);
}

#[test]
fn satipmapsrc_records_one_service_by_query_in_gst_launch() {
    let dir = common::temp_dir("satipmapsrc-launch");
    let file = dir.join("news-satip.ts");
    let desc = std::fs::read_to_string(common::repo_file("pipelines/satip-record.launch")).unwrap();
    let mut cmd = Command::new("gst-launch-1.0");
    cmd.env("GST_PLUGIN_PATH", common::plugin_dir())
        .current_dir(&dir)
        .arg("-e")
        .args(common::launch_args(desc.trim()));
    let has_news =
        |v: &serde_json::Value| common::programs(v).iter().any(|(n, _)| n == "dvb2ip News");
    // Recorded until the file names the service (a slow machine takes longer).
    let (_, text) = common::run_until(cmd, &dir.join("log"), Duration::from_secs(240), |_| {
        common::try_ffprobe(&file).is_some_and(|v| has_news(&v))
    });
    assert!(!text.contains("ERROR"), "{text}");
    let v = common::ffprobe(file.to_str().unwrap(), &[]);
    let progs = common::programs(&v);
    assert!(progs.iter().any(|(n, _)| n == "dvb2ip News"), "{progs:?}");

    // An invalid query names the parameter and the reason.
    let out = Command::new("timeout")
        .args(["20", "gst-launch-1.0"])
        .env("GST_PLUGIN_PATH", common::plugin_dir())
        .args(common::launch_args(
            "satipmapsrc request=\"freq=506&msys=dvbt&pol=x&pids=0,9000\" ! fakesink",
        ))
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stderr).to_string() + &String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success());
    assert!(
        text.contains("parameter 'pol': malformed value")
            && text.contains("parameter 'pids': value out of range"),
        "{text}"
    );
}

/// PIDs seen on `sink` until `want` holds for the PIDs of 30 consecutive buffers.
fn pids_until(
    sink: &gst_app::AppSink,
    want: &dyn Fn(&std::collections::BTreeSet<u16>) -> bool,
) -> std::collections::BTreeSet<u16> {
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut window: Vec<std::collections::BTreeSet<u16>> = Vec::new();
    loop {
        assert!(Instant::now() < deadline, "condition not reached");
        let Some(s) = sink.try_pull_sample(gst::ClockTime::from_seconds(5)) else {
            continue;
        };
        let map = s.buffer().unwrap().map_readable().unwrap();
        window.push(
            map.chunks(188)
                .map(|p| (u16::from(p[1] & 0x1f) << 8) | u16::from(p[2]))
                .collect(),
        );
        if window.len() > 30 {
            window.remove(0);
        }
        let all = window.iter().flatten().copied().collect();
        if window.len() == 30 && want(&all) {
            return all;
        }
    }
}

#[test]
fn satipmapsrc_live_pid_changes_and_retune_release_the_old_frontend() {
    use gst::prelude::*;
    // The elements' default pool: no other test of this file uses it.
    init();
    let default = Pool::default_pool();
    wait_all_free(default);
    let pipeline = gst::Pipeline::new();
    let src = gst::ElementFactory::make("satipmapsrc")
        .property("request", "freq=506&msys=dvbt&bw=8&pids=0,17")
        .build()
        .unwrap();
    let sink = gst_app::AppSink::builder().sync(false).build();
    pipeline.add_many([&src, sink.upcast_ref()]).unwrap();
    src.link(&sink).unwrap();
    pipeline.set_state(gst::State::Playing).unwrap();
    assert_eq!(
        src.property::<Option<String>>("request").as_deref(),
        Some("src=1&freq=506&msys=dvbt&bw=8&pids=0,17")
    );
    let got = pids_until(&sink, &|p| p.contains(&0));
    assert!(got.is_subset(&[0, 17].into()), "{got:?}");
    let fe_before: u32 = src.property("frontend-number");
    assert!(fe_before > 0);
    // Live PID change: no retune, same frontend.
    src.set_property("request", "addpids=256&delpids=17");
    let got = pids_until(&sink, &|p| p.contains(&256) && !p.contains(&17));
    assert!(got.is_subset(&[0, 256].into()), "{got:?}");
    assert_eq!(src.property::<u32>("frontend-number"), fe_before);
    let status: String = src.property("status");
    assert!(status.ends_with(";pids=0,256"), "{status}");
    // An invalid live change is refused and changes nothing.
    src.set_property("request", "pids=9000");
    assert!(src
        .property::<Option<String>>("request")
        .unwrap()
        .ends_with("pids=0,256"));
    // Retune to another transponder: the old frontend is given back.
    src.set_property("request", "freq=474&msys=dvbt2&bw=8&plp=0&pids=0,256");
    assert_eq!(in_use(default), 1, "old frontend released");
    let status: String = src.property("status");
    assert!(status.contains(",474.00,8,dvbt2,"), "{status}");
    let got = pids_until(&sink, &|p| p.contains(&0) && p.contains(&256));
    assert!(got.is_subset(&[0, 256].into()), "{got:?}");
    pipeline.set_state(gst::State::Null).unwrap();
    wait_all_free(default);
}
