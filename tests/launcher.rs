//! The launcher end to end: `dvb2ip serve` on loopback with real clients, and CLI errors.

mod common;

use std::process::Command;
use std::time::Duration;

use dvb2ip::config::Config;
use dvb2ip::serve;
use gst::glib;

fn start_server() -> (serve::Server, glib::MainLoop) {
    let cfg = Config::embedded();
    // The tuner pool is per process: configure it once for every test of this file.
    static INIT: std::sync::Once = std::sync::Once::new();
    INIT.call_once(|| serve::init(&cfg).unwrap());
    let server = serve::start(
        &cfg,
        &serve::ServeOptions {
            rtsp_port: Some(0),
            bind: None,
        },
    )
    .unwrap();
    let ml = glib::MainLoop::new(None, false);
    let ml2 = ml.clone();
    std::thread::spawn(move || ml2.run());
    (server, ml)
}

#[test]
fn serve_channel_mounts_play_in_ffprobe_and_rtspsrc() {
    let (server, ml) = start_server();
    assert_eq!(
        server.bind.to_string(),
        "127.0.0.1",
        "default config must bind loopback"
    );
    let port = server.rtsp_port;
    let v = common::ffprobe(
        &format!("rtsp://127.0.0.1:{port}/ch/news"),
        &["-rtsp_transport", "udp"],
    );
    let progs = common::programs(&v);
    let news = progs
        .iter()
        .find(|(n, _)| n == "dvb2ip News")
        .unwrap_or_else(|| panic!("{progs:?}"));
    assert!(
        news.1.contains(&"video".to_string()) && news.1.contains(&"audio".to_string()),
        "{news:?}"
    );

    // rtspsrc (GStreamer's RTSP client) records until the file names the service (a slow
    // machine takes longer).
    let dir = common::temp_dir("rtspsrc");
    let mut cmd = Command::new("gst-launch-1.0");
    cmd.arg("-e").args(common::launch_args(&format!(
        "rtspsrc location=rtsp://127.0.0.1:{port}/ch/one latency=200 ! rtpmp2tdepay ! filesink location={}",
        dir.join("one.ts").display()
    )));
    let one_hd = |v: &serde_json::Value| {
        common::programs(v)
            .iter()
            .any(|(n, _)| n == "dvb2ip One HD")
    };
    let (_, text) = common::run_until(cmd, &dir.join("log"), Duration::from_secs(240), |_| {
        common::try_ffprobe(&dir.join("one.ts")).is_some_and(|v| one_hd(&v))
    });
    assert!(
        !text.contains("ERROR") && !text.contains("erroneous"),
        "{text}"
    );
    assert!(dir.join("one.ts").exists(), "no recording: {text}");
    let v = common::ffprobe(dir.join("one.ts").to_str().unwrap(), &[]);
    assert!(one_hd(&v), "{:?}", common::programs(&v));
    ml.quit();
    // Sessions gone: tuners are released once the server drops its media.
    drop(server);
}

#[test]
fn check_config_names_file_and_line() {
    let dir = common::temp_dir("cfg");
    let f = dir.join("bad.toml");
    std::fs::write(&f, "[server]\nbind = \"127.0.0.1\"\n\n[[channel]]\nname = \"x\"\nquery = \"freq=506&msys=dvbq\"\n").unwrap();
    let out = Command::new(common::dvb2ip_bin())
        .arg("check-config")
        .arg(&f)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&format!("{}:5:", f.display())), "{err}");
    assert!(err.contains("msys"), "{err}");
    let out = Command::new(common::dvb2ip_bin())
        .arg("check-config")
        .arg(common::repo_file("conf/default.toml"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn check_config_and_serve_refuse_a_location_nobody_listens_on() {
    // HTTP (the description) on loopback only, announced on eth0: every LOCATION would name
    // an eth0 address where nothing listens.
    let dir = common::temp_dir("cfg-location");
    let f = dir.join("lan.toml");
    std::fs::write(
        &f,
        "[server]\nbind = \"127.0.0.1\"\nrtsp_port = 0\n\n[ssdp]\ninterfaces = [\"eth0\"]\n",
    )
    .unwrap();
    for args in [
        vec!["check-config".to_owned(), f.display().to_string()],
        vec![
            "serve".to_owned(),
            "--config".to_owned(),
            f.display().to_string(),
        ],
    ] {
        let out = Command::new(common::dvb2ip_bin())
            .args(&args)
            .output()
            .unwrap();
        assert!(!out.status.success(), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains(&format!("{}:2:", f.display())),
            "{args:?}: {err}"
        );
        assert!(
            err.contains("server.bind 127.0.0.1") && err.contains("\"eth0\""),
            "{args:?}: {err}"
        );
        assert!(err.contains("bind = \"0.0.0.0\""), "{args:?}: {err}");
    }
}

#[test]
fn serve_refuses_a_busy_port_with_a_clear_message() {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let out = Command::new(common::dvb2ip_bin())
        .args(["serve", "--rtsp-port", &port.to_string()])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("127.0.0.1:{port}")) && err.contains("--rtsp-port"),
        "{err}"
    );
}

#[test]
fn channel_list_entries_are_playable_satip_urls() {
    let (server, ml) = start_server();
    let mut cfg = Config::embedded();
    cfg.server.http_port = 0;
    let state = common::temp_dir("m3u-state");
    cfg.ssdp.state_dir = state.display().to_string();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let ssdp = serve::spawn_network(&rt, &cfg, &server).expect("ssdp + http");
    let out = Command::new("curl")
        .args([
            "-s",
            "-m",
            "10",
            &format!("http://127.0.0.1:{}/channels.m3u", ssdp.http.port),
        ])
        .output()
        .expect("curl");
    let m3u = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(m3u.starts_with("#EXTM3U"), "{m3u}");
    let url = m3u
        .lines()
        .find(|l| l.starts_with("rtsp://"))
        .expect("an rtsp:// entry")
        .trim()
        .to_string();
    assert!(
        url.contains(&format!(":{}/?", server.rtsp_port)) && url.contains("msys=dvbt2"),
        "{url}"
    );
    let v = common::ffprobe(&url, &["-rtsp_transport", "udp"]);
    let progs = common::programs(&v);
    assert!(
        progs
            .iter()
            .any(|(n, t)| n == "dvb2ip One HD" && t.contains(&"video".to_string())),
        "{progs:?}"
    );
    drop(ssdp);
    ml.quit();
    drop(server);
}
