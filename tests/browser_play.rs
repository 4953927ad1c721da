//! Playback in the browser (`/play/<slug>`, src/play): an emulated channel (H.264 video,
//! MPEG-1 Layer II audio) plays in headless Chromium through mpegts.js from its browser
//! variant (audio re-encoded to AAC), two viewers share one pipeline, and it stops after the
//! last one left; a TS file of the VOD library (H.264/AAC, paced at its own rate) plays the
//! same way. Screenshots land in `target/<profile>/screenshots/`.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::browser::Browser;
use common::serve_child::{free_port, ServeChild};

/// The embedded configuration without SSDP, HTTP on `http_port`, `extra` appended.
fn config(http_port: u16, extra: &str) -> String {
    let text = gstdvb2ip::tuners::config::DEFAULT_CONFIG;
    let ssdp = text.find("[ssdp]").expect("[ssdp]");
    format!(
        "{}{}\n{extra}",
        &text[..ssdp],
        text[ssdp..].replacen("enabled = true", "enabled = false", 1)
    )
    .replacen("http_port = 8875", &format!("http_port = {http_port}"), 1)
}

fn start(tag: &str) -> (std::path::PathBuf, u16, ServeChild) {
    start_with(tag, |_| String::new())
}

/// [`start`] with configuration `extra` made for the test's directory.
fn start_with(
    tag: &str,
    extra: impl FnOnce(&std::path::Path) -> String,
) -> (std::path::PathBuf, u16, ServeChild) {
    let dir = common::temp_dir(tag);
    let http_port = free_port();
    let conf = dir.join("serve.toml");
    let extra = extra(&dir);
    std::fs::write(&conf, config(http_port, &extra)).unwrap();
    let srv = ServeChild::start(&conf, &[]);
    (dir, http_port, srv)
}

fn api(port: u16) -> serde_json::Value {
    let a = common::http::get(port, "/api/play");
    assert_eq!(a.status, 200, "{}", a.head);
    serde_json::from_slice(&a.body).expect("/api/play JSON")
}

/// Waits (bounded) until `f` holds for `/api/play`; returns that answer.
fn wait_api(port: u16, what: &str, f: impl Fn(&serde_json::Value) -> bool) -> serde_json::Value {
    let end = Instant::now() + Duration::from_secs(30);
    loop {
        let v = api(port);
        if f(&v) {
            return v;
        }
        assert!(Instant::now() < end, "{what} within 30 s: last {v}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// CPU seconds (user + system) the process `pid` used so far.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = f[11].parse::<f64>().unwrap() + f[12].parse::<f64>().unwrap();
    // SAFETY: sysconf has no preconditions.
    ticks / unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64
}

#[test]
fn a_channel_plays_in_chromium_and_its_viewers_share_one_pipeline() {
    let (dir, port, srv) = start("browser-play");
    let b = Browser::start();
    b.goto(&format!("http://127.0.0.1:{port}/play/one"));
    let video = "document.getElementById('video')";
    let first = b.wait_for(
        &format!("{video}.currentTime > 0 && {video}.currentTime"),
        Duration::from_secs(60),
    );
    let t0 = first.as_f64().unwrap();
    b.wait_for(
        &format!("{video}.currentTime >= {} && {video}.currentTime", t0 + 3.0),
        Duration::from_secs(60),
    );
    let audio = b.wait_for(
        &format!("{video}.webkitAudioDecodedByteCount > 0 && {video}.webkitAudioDecodedByteCount"),
        Duration::from_secs(10),
    );
    let ahead = b.eval(&format!(
        "(function(v){{const b=v.buffered;return b.length?b.end(b.length-1)-v.currentTime:0}})({video})"
    ));
    let shot = b.screenshot("play-one");
    eprintln!(
        "play: currentTime advanced from {t0:.2} s by ≥ 3 s; audio decoded {audio} bytes; \
         player buffer ahead of currentTime {ahead} s; screenshot {}",
        shot.display()
    );
    let errors = b.console_errors();
    assert!(errors.is_empty(), "console errors: {errors:?}");
    assert_eq!(
        b.eval("document.getElementById('error').textContent"),
        serde_json::json!("")
    );

    // A second client of the same channel's browser stream: the same pipeline serves it.
    let mut second = TcpStream::connect(("127.0.0.1", port)).unwrap();
    second
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    write!(
        second,
        "GET /play/one.ts HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut buf = vec![0u8; 64 * 1024];
    let mut got = 0;
    while got < 188 * 100 {
        let n = second.read(&mut buf).unwrap();
        assert!(n > 0, "the second viewer's stream ended");
        got += n;
    }
    let v = wait_api(port, "two viewers", |v| {
        v["channels"][0]["viewers"] == serde_json::json!(2)
    });
    assert_eq!(v["pipelines_running"], serde_json::json!(1), "{v}");
    assert_eq!(v["pipelines_started_total"], serde_json::json!(1), "{v}");
    // CPU of the whole server while one channel is served to two browser viewers.
    let (c0, w0) = (cpu_seconds(srv.child.id()), Instant::now());
    std::thread::sleep(Duration::from_secs(5));
    let cpu = (cpu_seconds(srv.child.id()) - c0) / w0.elapsed().as_secs_f64();
    let v = api(port);
    eprintln!(
        "play: server CPU {:.1} % of a core (one channel, two viewers); pipeline {}",
        cpu * 100.0,
        v["channels"][0]
    );

    // Both leave: the pipeline stops.
    b.goto("about:blank");
    drop(second);
    let v = wait_api(port, "the pipeline stopped", |v| {
        v["pipelines_running"] == serde_json::json!(0)
    });
    assert_eq!(v["pipelines_started_total"], serde_json::json!(1), "{v}");
    drop(srv);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_browser_stream_is_h264_and_aac_and_unknown_channels_404() {
    let (dir, port, srv) = start("browser-play-ts");
    let v = common::ffprobe(&format!("http://127.0.0.1:{port}/play/news.ts"), &[]);
    let codecs: Vec<&str> = v["streams"]
        .as_array()
        .expect("streams")
        .iter()
        .filter_map(|s| s["codec_name"].as_str())
        .collect();
    assert!(codecs.contains(&"h264"), "{codecs:?}");
    assert!(codecs.contains(&"aac"), "{codecs:?}");
    assert!(!codecs.contains(&"mp2"), "Layer II re-encoded: {codecs:?}");
    let a = common::http::get(port, "/play/nosuch");
    assert_eq!(a.status, 404, "{}", a.head);
    assert!(a.text().contains("no channel \"nosuch\""), "{}", a.text());
    let a = common::http::get(port, "/play/nosuch.ts");
    assert_eq!(a.status, 404, "{}", a.head);
    let a = common::http::get(port, "/play/assets/vendor/mpegts.js/mpegts.js");
    assert_eq!(a.status, 200, "{}", a.head);
    assert!(a.text().contains("mpegts"), "the vendored player");
    drop(srv);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_library_file_plays_in_chromium() {
    let (dir, port, srv) = start_with("browser-play-vod", |dir| {
        let vod = dir.join("vod");
        std::fs::create_dir_all(&vod).unwrap();
        std::fs::copy(
            common::repo_file("../shared/media/temi_a_single_timeline.ts"),
            vod.join("clip.ts"),
        )
        .expect("test media (../shared/media)");
        format!("[vod]\nroots = [{:?}]\n", vod.to_str().unwrap())
    });
    // The library lists the file with its player's page.
    let a = common::http::get(port, "/api/vod");
    assert_eq!(a.status, 200, "{}", a.head);
    let list: serde_json::Value = serde_json::from_slice(&a.body).unwrap();
    let play = list[0]["play_url"]
        .as_str()
        .unwrap_or_else(|| panic!("a play_url in {list}"))
        .to_owned();
    let duration = list[0]["duration_s"].as_f64().unwrap_or(0.0);
    assert!((9.0..=11.0).contains(&duration), "10 s of media: {list}");
    let b = Browser::start();
    b.goto(&format!("http://127.0.0.1:{port}{play}"));
    let video = "document.getElementById('video')";
    let first = b.wait_for(
        &format!("{video}.currentTime > 0 && {video}.currentTime"),
        Duration::from_secs(60),
    );
    let t0 = first.as_f64().unwrap();
    let v = wait_api(port, "the file's pipeline", |v| {
        v["channels"][0]["slug"]
            .as_str()
            .is_some_and(|s| s.starts_with("vod~"))
    });
    let streams = v["channels"][0]["streams"].to_string();
    assert!(streams.contains("video/x-h264: parsed"), "{v}");
    b.wait_for(
        &format!("{video}.currentTime >= {} && {video}.currentTime", t0 + 3.0),
        Duration::from_secs(30),
    );
    b.wait_for(
        &format!("{video}.webkitAudioDecodedByteCount > 0"),
        Duration::from_secs(10),
    );
    b.screenshot("play-vod");
    let errors = b.console_errors();
    assert!(errors.is_empty(), "console errors: {errors:?}");
    b.goto("about:blank");
    wait_api(port, "the pipeline stopped", |v| {
        v["pipelines_running"] == serde_json::json!(0)
    });
    drop(srv);
    let _ = std::fs::remove_dir_all(&dir);
}
