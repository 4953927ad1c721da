//! Recording a channel into the VOD library (`src/vod/record.rs`): the HTTP API on the server's
//! own HTTP listener, and `dvb2ip serve --record`. The recorded files are checked with ffprobe
//! (duration, the channel's programme) and served back by `/vod/`.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use dvb2ip::config::Config;
use dvb2ip::core::Core;
use dvb2ip::serve;
use serde_json::Value;

/// A server with its own core and pool, HTTP on a free port, VOD root `root` (none: VOD off).
struct Server {
    http_port: u16,
    core: std::sync::Arc<Core>,
    _network: serve::Network,
    _server: serve::Server,
    _rt: tokio::runtime::Runtime,
}

fn server(tag: &str, root: Option<&Path>) -> Server {
    common::server::init();
    let state = common::temp_dir(&format!("vod-record-state-{tag}"));
    let mut cfg = Config::embedded();
    cfg.ssdp.enabled = false;
    cfg.server.http_port = 0;
    cfg.ssdp.state_dir = state.display().to_string();
    cfg.vod.roots = root.map(|r| vec![r.to_path_buf()]).unwrap_or_default();
    let core = Core::with_own_pool(cfg.clone()).expect("core");
    let server = serve::start_with(
        core.clone(),
        &serve::ServeOptions {
            rtsp_port: Some(0),
            bind: None,
        },
    )
    .expect("rtsp server");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let network = serve::spawn_network(&rt, &cfg, &server).expect("http");
    Server {
        http_port: network.http.port,
        core,
        _network: network,
        _server: server,
        _rt: rt,
    }
}

/// `curl -X method` with an optional JSON body: (status, body).
fn curl(port: u16, method: &str, path: &str, json: Option<&str>) -> (u32, Vec<u8>) {
    let mut cmd = Command::new("curl");
    cmd.args([
        "-s",
        "--max-time",
        "60",
        "-X",
        method,
        "-w",
        "\n%{http_code}",
    ]);
    if let Some(j) = json {
        cmd.args(["-H", "Content-Type: application/json", "--data-binary", j]);
    }
    let out = cmd
        .arg(format!("http://127.0.0.1:{port}{path}"))
        .output()
        .expect("curl runs");
    assert!(out.status.success(), "curl {path}: {out:?}");
    let mut body = out.stdout;
    let nl = body.iter().rposition(|b| *b == b'\n').expect("status line");
    let status = String::from_utf8_lossy(&body[nl + 1..])
        .parse()
        .unwrap_or(0);
    body.truncate(nl);
    (status, body)
}

fn api(port: u16, method: &str, path: &str, json: Option<&str>) -> (u32, Value) {
    let (status, body) = curl(port, method, path, json);
    let v = serde_json::from_slice(&body)
        .unwrap_or_else(|e| panic!("{method} {path}: {e}: {}", String::from_utf8_lossy(&body)));
    (status, v)
}

/// Polls recording `id` until `cond` holds on its JSON, at most `limit`.
fn wait_for(port: u16, id: u64, limit: Duration, cond: impl Fn(&Value) -> bool) -> Value {
    let end = Instant::now() + limit;
    loop {
        let (s, v) = api(port, "GET", &format!("/api/recordings/{id}"), None);
        assert_eq!(s, 200, "{v}");
        if cond(&v) {
            return v;
        }
        assert!(
            Instant::now() < end,
            "recording {id}: condition not reached: {v}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn wait_frontends_free(core: &Core) {
    let end = Instant::now() + Duration::from_secs(60);
    while core.pool.frontends().iter().any(|f| f.users > 0) {
        assert!(Instant::now() < end, "frontend not released");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The files of `dir` (hidden ones too).
fn files(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

fn duration_of(probe: &Value) -> f64 {
    probe["format"]["duration"]
        .as_str()
        .and_then(|d| d.parse().ok())
        .unwrap_or_else(|| panic!("no duration: {probe}"))
}

/// The programme of channel "news" with video and audio.
fn assert_news_programme(probe: &Value) {
    let progs = common::programs(probe);
    let news = progs
        .iter()
        .find(|(n, _)| n == "dvb2ip News")
        .unwrap_or_else(|| panic!("{progs:?}"));
    assert!(
        news.1.contains(&"video".to_string()) && news.1.contains(&"audio".to_string()),
        "{news:?}"
    );
}

#[test]
fn recording_a_channel_for_a_duration_becomes_a_seekable_file() {
    let root = common::temp_dir("vod-record-duration");
    let s = server("duration", Some(&root));
    let (status, v) = api(
        s.http_port,
        "POST",
        "/api/recordings",
        Some(r#"{"channel": "news", "duration_s": 6}"#),
    );
    assert_eq!(status, 201, "{v}");
    let id = v["id"].as_u64().unwrap();
    let file = v["file"].as_str().unwrap().to_string();
    assert!(file.starts_with("news-") && file.ends_with(".ts"), "{file}");
    assert_eq!(v["state"], "recording");

    // While it records: data arrives in a hidden part file, which the library neither lists
    // nor serves.
    wait_for(s.http_port, id, Duration::from_secs(60), |v| {
        v["bytes"].as_u64().unwrap_or(0) > 188 * 100
    });
    let on_disk = files(&root);
    assert_eq!(on_disk, vec![format!(".{}.part", file)], "{on_disk:?}");
    let (st, listing) = curl(s.http_port, "GET", "/vod/", None);
    assert_eq!(st, 200);
    assert!(
        !String::from_utf8_lossy(&listing).contains(".ts"),
        "listed while recording"
    );
    let url = v["url"].as_str().unwrap().to_string();
    assert_eq!(curl(s.http_port, "GET", &url, None).0, 404);
    let (_, list) = api(s.http_port, "GET", "/api/recordings", None);
    assert_eq!(list.as_array().map(|a| a.len()), Some(1), "{list}");

    // The duration ends it: final name, frontend given back.
    let done = wait_for(s.http_port, id, Duration::from_secs(120), |v| {
        v["state"] != "recording"
    });
    assert_eq!(done["state"], "done", "{done}");
    assert_eq!(files(&root), vec![file.clone()]);
    wait_frontends_free(&s.core);
    let elapsed = done["elapsed_s"].as_f64().unwrap();
    assert!((6.0..60.0).contains(&elapsed), "{done}");

    // Served by /vod/ byte for byte, listed, and ffprobe (over HTTP, seeking with ranges)
    // finds the channel's programme and a duration of about the recorded time.
    let bytes = std::fs::read(root.join(&file)).unwrap();
    assert_eq!(done["bytes"].as_u64(), Some(bytes.len() as u64));
    assert!(
        bytes.len().is_multiple_of(188) && bytes[0] == 0x47,
        "whole TS packets"
    );
    let (st, served) = curl(s.http_port, "GET", &url, None);
    assert_eq!(st, 200);
    assert!(served == bytes, "served bytes differ from the file");
    let (_, listing) = curl(s.http_port, "GET", "/vod/", None);
    assert!(String::from_utf8_lossy(&listing).contains(&format!(">{file}</a>")));
    let probe = common::ffprobe(
        &format!("http://127.0.0.1:{}{url}", s.http_port),
        &["-show_format"],
    );
    assert_news_programme(&probe);
    let d = duration_of(&probe);
    println!(
        "recorded 6 s: {} bytes, ffprobe duration {d:.2} s",
        bytes.len()
    );
    assert!((3.0..=9.0).contains(&d), "duration {d} for a 6 s recording");
    // A player seeking into it over HTTP decodes a frame there.
    let out = Command::new("timeout")
        .args(["120", "ffmpeg", "-v", "error", "-ss", "3", "-i"])
        .arg(format!("http://127.0.0.1:{}{url}", s.http_port))
        .args(["-frames:v", "1", "-f", "null", "-"])
        .output()
        .expect("ffmpeg runs");
    assert!(out.status.success(), "ffmpeg -ss 3: {out:?}");
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn delete_stops_a_recording_and_the_api_refuses_bad_requests() {
    let root = common::temp_dir("vod-record-stop");
    let s = server("stop", Some(&root));
    let p = s.http_port;
    let news = "freq=506&msys=dvbt&bw=8&pids=0,16,17,18,20,256,257,258";
    let (status, v) = api(
        p,
        "POST",
        "/api/recordings",
        Some(&format!(r#"{{"query": "{news}", "name": "My show (1)"}}"#)),
    );
    assert_eq!(status, 201, "{v}");
    let id = v["id"].as_u64().unwrap();
    assert_eq!(v["file"], "My show (1).ts");
    assert_eq!(v["url"], "/vod/My%20show%20%281%29.ts");
    assert_eq!(v["duration_s"], Value::Null);
    wait_for(p, id, Duration::from_secs(60), |v| {
        v["bytes"].as_u64().unwrap_or(0) > 188 * 2000
    });

    // Refusals, with a reason, while it runs.
    for (body, want) in [
        (r#"{"name": "My show (1)", "channel": "news"}"#, 409),
        (r#"{"channel": "nosuch"}"#, 404),
        (r#"{"channel": "news", "query": "freq=506"}"#, 400),
        (r#"{}"#, 400),
        (r#"{"channel": "news", "duration_s": 0}"#, 400),
        (r#"{"channel": "news", "name": "../escape"}"#, 400),
        (r#"{"channel": "news", "name": ".hidden"}"#, 400),
        (r#"{"query": "freq=506&msys=dvbt&bw=8&pids=0,9000"}"#, 403),
        (r#"{"query": "freq=abc&msys=dvbt"}"#, 403),
        (r#"{"channel": "news", "colour": "red"}"#, 400),
        (r#"not json"#, 400),
    ] {
        let (st, v) = api(p, "POST", "/api/recordings", Some(body));
        assert_eq!(st, want, "{body}: {v}");
        assert!(
            v["error"].as_str().is_some_and(|e| !e.is_empty()),
            "{body}: {v}"
        );
    }
    assert_eq!(api(p, "DELETE", "/api/recordings/999", None).0, 404);
    assert_eq!(api(p, "GET", "/api/recordings/x", None).0, 404);

    let (st, v) = api(p, "DELETE", &format!("/api/recordings/{id}"), None);
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["state"], "done", "{v}");
    assert_eq!(files(&root), vec!["My show (1).ts".to_string()]);
    wait_frontends_free(&s.core);
    let bytes = std::fs::read(root.join("My show (1).ts")).unwrap();
    assert_eq!(v["bytes"].as_u64(), Some(bytes.len() as u64));
    assert!(bytes.len() > 188 * 2000);
    // A player's seek into it.
    let dir = common::temp_dir("vod-record-range");
    let out = Command::new("curl")
        .args(["-s", "-r", "1880-", "-o"])
        .arg(dir.join("part"))
        .arg(format!("http://127.0.0.1:{p}/vod/My%20show%20%281%29.ts"))
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(std::fs::read(dir.join("part")).unwrap() == bytes[1880..]);
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn without_a_vod_root_recording_is_refused() {
    let s = server("off", None);
    let (st, v) = api(
        s.http_port,
        "POST",
        "/api/recordings",
        Some(r#"{"channel": "news"}"#),
    );
    assert_eq!(st, 409, "{v}");
    assert!(v["error"].as_str().unwrap().contains("[vod]"), "{v}");
    assert!(s.core.pool.frontends().iter().all(|f| f.users == 0));
}

/// The embedded configuration for the binary: HTTP on a free port, SSDP off, VOD root `root`.
fn config_file(dir: &Path, root: &Path) -> PathBuf {
    let text = gstdvb2ip::tuners::config::DEFAULT_CONFIG;
    let ssdp = text.find("[ssdp]").unwrap();
    let mut t = text[..ssdp].replace("http_port = 8875", "http_port = 0");
    t += &text[ssdp..]
        .replacen("enabled = true", "enabled = false", 1)
        .replacen(
            "state_dir = \"\"",
            &format!("state_dir = {:?}", dir.join("state")),
            1,
        );
    t += &format!("\n[vod]\nroots = [{root:?}]\n");
    let f = dir.join("dvb2ip.toml");
    std::fs::write(&f, t).unwrap();
    f
}

#[test]
fn serve_record_flag_records_until_shutdown() {
    let dir = common::temp_dir("vod-record-cli");
    let root = dir.join("media");
    std::fs::create_dir_all(&root).unwrap();
    let conf = config_file(&dir, &root);
    // Refused before anything starts: a bad duration, an unknown channel.
    let out = Command::new(common::dvb2ip_bin())
        .args([
            "serve",
            "--rtsp-port",
            "0",
            "--record",
            "news:0",
            "--config",
        ])
        .arg(&conf)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("seconds"),
        "{out:?}"
    );
    let out = Command::new("timeout")
        .args(["120"])
        .arg(common::dvb2ip_bin())
        .args([
            "serve",
            "--rtsp-port",
            "0",
            "--record",
            "nosuch",
            "--config",
        ])
        .arg(&conf)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no channel \"nosuch\""),
        "{out:?}"
    );

    // Records from the start until SIGINT, then the file is final.
    let mut cmd = Command::new(common::dvb2ip_bin());
    cmd.args(["serve", "--rtsp-port", "0", "--record", "news", "--config"])
        .arg(&conf);
    let part_big = || {
        std::fs::read_dir(&root).unwrap().flatten().any(|e| {
            e.file_name().to_string_lossy().ends_with(".part")
                && e.metadata().is_ok_and(|m| m.len() > 188 * 4000)
        })
    };
    let (status, log) = common::run_until(cmd, &dir.join("log"), Duration::from_secs(120), |_| {
        part_big()
    });
    assert!(status.success(), "{log}");
    assert!(log.contains("dvb2ip: recording news to news-"), "{log}");
    let names = files(&root);
    assert_eq!(names.len(), 1, "{names:?}");
    assert!(
        names[0].starts_with("news-") && names[0].ends_with(".ts"),
        "{names:?}"
    );
    let probe = common::ffprobe(root.join(&names[0]).to_str().unwrap(), &["-show_format"]);
    assert_news_programme(&probe);
    println!(
        "serve --record news: ffprobe duration {:.2} s",
        duration_of(&probe)
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// Starting and stopping recordings are the web UI's administrator actions (src/ui/auth.rs):
/// a client on another address (here the server's own veth address in a namespace the test
/// creates), with no administrator password configured, gets 403 and starts nothing, while
/// the recordings and the library stay readable.
#[test]
fn recording_actions_need_an_administrator_off_loopback() {
    let ns = common::netns::Netns::new("vodrec", "api");
    ns.ip(&["link", "add", "v0", "type", "veth", "peer", "name", "v1"]);
    ns.ip(&["addr", "add", "10.214.9.1/24", "dev", "v0"]);
    ns.ip(&["link", "set", "v0", "up"]);
    ns.ip(&["link", "set", "v1", "up"]);
    let root = common::temp_dir("vod-record-lan");
    std::fs::write(root.join("a.ts"), [0x47u8; 188]).unwrap();
    let mut cfg = Config::embedded();
    cfg.vod.roots = vec![root.clone()];
    let core = Core::new(
        cfg.clone(),
        gstdvb2ip::tuners::Pool::new(cfg.broadcast.clone()),
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let router = dvb2ip::ui::guarded(dvb2ip::vod::http::router(&core, 554), &core);
    // The listener is made inside the namespace.
    let server = ns.enter(|| {
        dvb2ip::http::server::spawn(&rt, "10.214.9.1".parse().unwrap(), 0, router).expect("http")
    });
    let curl = |method: &str, path: &str| {
        let out = ns
            .exec("curl")
            .args([
                "-s",
                "--max-time",
                "30",
                "-X",
                method,
                "-w",
                "\n%{http_code}",
            ])
            .args(["--data-binary", r#"{"channel": "news"}"#])
            .arg(format!("http://10.214.9.1:{}{path}", server.port))
            .output()
            .expect("curl in the namespace");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    for (method, path) in [("POST", "/api/recordings"), ("DELETE", "/api/recordings/1")] {
        let a = curl(method, path);
        assert!(
            a.ends_with("\n403") && a.contains("admin_password_hash"),
            "{method} {path}: {a}"
        );
    }
    let a = curl("GET", "/api/recordings");
    assert!(a.ends_with("[]\n200"), "{a}");
    assert!(curl("GET", "/api/recordings/1").ends_with("\n404"));
    assert!(core.recordings.list().is_empty());
    assert_eq!(files(&root), vec!["a.ts".to_string()]);
    assert!(curl("GET", "/vod/").ends_with("\n200"));
    drop(server);
    let _ = std::fs::remove_dir_all(&root);
}
