//! `GET /metrics` of a running `dvb2ip serve`: the Prometheus text format as `promtool check
//! metrics` (Debian package `prometheus`) reads it, with the figures of what the server does
//! (an HTTP stream on a locked frontend), and no client address in it.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::serve_child::{free_port, ServeChild};

/// The embedded configuration without SSDP, HTTP on `http_port`, DVB-CSS on "news", and an
/// on-demand relay of a port nothing listens on.
fn config(http_port: u16) -> String {
    let text = gstdvb2ip::tuners::config::DEFAULT_CONFIG;
    let ssdp = text.find("[ssdp]").expect("[ssdp]");
    format!(
        "{}{}",
        &text[..ssdp],
        text[ssdp..].replacen("enabled = true", "enabled = false", 1)
    )
    .replacen("http_port = 8875", &format!("http_port = {http_port}"), 1)
    .replacen(
        "# css = true",
        &format!(
            "[channel.css]\ncii_port = {}\nwc_port = {}",
            free_port(),
            std::net::UdpSocket::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port()
        ),
        1,
    ) + &format!(
        "\n[[relay]]\nname = \"nowhere\"\nsource = \"rtsp://127.0.0.1:{}/ch/none\"\n",
        free_port()
    )
}

/// The value of the sample `name` (with its labels, as written) in `text`.
fn sample(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
}

/// `promtool check metrics` on `text`: its exit status and output.
fn promtool(text: &str) -> (bool, String) {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool not found: install the Debian package `prometheus`");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let msg =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), msg)
}

/// Polls `/metrics` (bounded) until `ok` holds for it; returns that exposition.
fn metrics_until(port: u16, what: &str, ok: impl Fn(&str) -> bool) -> String {
    let end = Instant::now() + Duration::from_secs(60);
    loop {
        let a = common::http::get(port, "/metrics");
        assert_eq!(a.status, 200, "{}", a.head);
        assert!(
            a.head
                .to_ascii_lowercase()
                .contains("content-type: text/plain; version=0.0.4"),
            "{}",
            a.head
        );
        let text = a.text();
        if ok(&text) {
            return text;
        }
        assert!(Instant::now() < end, "{what}: {text}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn metrics_pass_promtool_and_follow_an_http_stream() {
    let dir = common::temp_dir("metrics");
    let http_port = free_port();
    let conf = dir.join("serve.toml");
    std::fs::write(&conf, config(http_port)).unwrap();
    let _srv = ServeChild::start(&conf, &[]);

    // Idle: well-formed, no session, nothing tuned.
    let idle = metrics_until(http_port, "idle metrics", |t| {
        sample(t, "dvb2ip_sessions{protocol=\"http\"}") == Some(0.0)
    });
    let (ok, msg) = promtool(&idle);
    assert!(ok, "promtool check metrics: {msg}\n{idle}");
    assert_eq!(
        sample(&idle, "dvb2ip_build_info{version=\"0.1.0\"}"),
        Some(1.0)
    );
    assert!(sample(&idle, "process_resident_memory_bytes").unwrap() > 0.0);
    assert!(sample(&idle, "process_open_fds").unwrap() > 0.0);
    assert!(
        idle.contains("dvb2ip_frontend_info{frontend=\"0\","),
        "{idle}"
    );
    assert_eq!(
        sample(
            &idle,
            "dvb2ip_relay_state{relay=\"nowhere\",state=\"idle\"}"
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(&idle, "dvb2ip_relay_starts_total{relay=\"nowhere\"}"),
        Some(0.0)
    );
    // The CSS channel's servers (not playing: none answered yet).
    assert_eq!(
        sample(&idle, "dvb2ip_css_wc_requests_total{channel=\"news\"}"),
        Some(0.0),
        "{idle}"
    );
    assert_eq!(
        sample(&idle, "dvb2ip_css_companion_connections{channel=\"news\"}"),
        Some(0.0),
        "{idle}"
    );

    // An HTTP stream of the first channel of the list.
    let m3u = common::http::get(http_port, "/channels.m3u").text();
    let query = m3u
        .lines()
        .find_map(|l| l.split_once("/?").map(|(_, q)| q.trim().to_owned()))
        .unwrap_or_else(|| panic!("a channel URL in {m3u}"));
    let mut stream = TcpStream::connect(("127.0.0.1", http_port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    write!(stream, "GET /?{query} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").unwrap();
    let mut buf = vec![0u8; 64 * 1024];
    let mut got = 0;
    while got < 188 * 100 {
        let n = stream.read(&mut buf).unwrap();
        assert!(n > 0, "the HTTP stream ended");
        got += n;
    }
    let busy = metrics_until(http_port, "a stream on a locked frontend", |t| {
        sample(t, "dvb2ip_sessions{protocol=\"http\"}") == Some(1.0)
            && sample(t, "dvb2ip_http_streams") == Some(1.0)
            && t.lines()
                .any(|l| l.starts_with("dvb2ip_frontend_locked{") && l.ends_with(" 1"))
            && sample(t, "dvb2ip_tuner_received_bytes_total").unwrap_or(0.0) > 0.0
    });
    let (ok, msg) = promtool(&busy);
    assert!(ok, "promtool check metrics: {msg}\n{busy}");
    assert!(
        busy.lines()
            .any(|l| l.starts_with("dvb2ip_frontend_signal_level_percent{")),
        "{busy}"
    );
    // The signal in dBm of the tuned frontend (the emulated default, -45 dBm): a gauge for the
    // frontends that report one, so none while idle.
    let dbm: Vec<&str> = busy
        .lines()
        .filter(|l| l.starts_with("dvb2ip_frontend_signal_level_dbm{"))
        .collect();
    assert!(
        !dbm.is_empty() && dbm.iter().all(|l| l.ends_with("} -45")),
        "{dbm:?}\n{busy}"
    );
    assert!(
        busy.contains("# TYPE dvb2ip_frontend_signal_level_dbm gauge"),
        "{busy}"
    );
    assert!(
        !idle.contains("\ndvb2ip_frontend_signal_level_dbm{"),
        "{idle}"
    );
    // The TS error counters of the tuned frontend: the emulated mux is clean (no faults set).
    for name in [
        "dvb2ip_tuner_continuity_errors_total{",
        "dvb2ip_tuner_transport_errors_total{",
    ] {
        let lines: Vec<&str> = busy.lines().filter(|l| l.starts_with(name)).collect();
        assert!(!lines.is_empty(), "{name} in {busy}");
        assert!(lines.iter().all(|l| l.ends_with(" 0")), "{lines:?}");
    }
    // Bounded labels: no client address anywhere.
    assert!(!busy.contains("127.0.0.1"), "{busy}");

    // The stream ends: the session count follows.
    drop(stream);
    metrics_until(http_port, "the stream's end", |t| {
        sample(t, "dvb2ip_sessions{protocol=\"http\"}") == Some(0.0)
    });
    let _ = std::fs::remove_dir_all(&dir);
}
