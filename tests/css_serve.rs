//! DVB-CSS on a channel mount of the real `dvb2ip serve` binary: a configuration with
//! `[channel.css]` on the "news" channel, an RTSP client playing `/ch/news` (in this process:
//! `rtspsrc ! rtpmp2tdepay ! tstimelineparse`), and our own CSS-CII, CSS-TS and CSS-WC clients
//! over loopback.
//!
//! * CII: the contentId of dvb2ip News, its TEMI timeline, and `wcUrl`/`tsUrl` with the
//!   configured ports and the address the client connected to.
//! * TS: the position the CSS-TS client reports (synchronised over CSS-WC) for the moment a
//!   TEMI anchor reaches the RTSP client matches the anchor's value. The server presents the
//!   CSS branch and sends RTP at the same running time, so the difference is the loopback and
//!   RTP path (milliseconds) plus scheduling; a wrong mapping (base time, latency, tick rate,
//!   timeline) would be seconds off. Hence median |error| ≤ 100 ms and none beyond 1 s; the
//!   precision is measured by `dvb2ip-bench css`, not asserted here.

mod common;

use std::io::{BufRead, BufReader};
use std::ops::ControlFlow;
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Once};
use std::time::{Duration, Instant};

use dvb2ip::css::clients;
use gst::prelude::*;

const TEMI: &str = "urn:dvb:css:timeline:temi:1:1";
const RATE: u64 = 90_000;
const NEWS: &str = "dvb://233a.1002.1201";

fn init() {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        gst::init().unwrap();
        gstdvb2ip::plugin_register_static().unwrap();
    });
}

/// Two free TCP ports (HTTP, CSS-CII) and a free UDP port (CSS-WC), all bound at once so the
/// two TCP ports cannot be the same one handed out twice.
fn free_ports() -> (u16, u16, u16) {
    let tcp = || std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let (http, cii) = (tcp(), tcp());
    let wc = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = |a: std::net::SocketAddr| a.port();
    (
        port(http.local_addr().unwrap()),
        port(cii.local_addr().unwrap()),
        port(wc.local_addr().unwrap()),
    )
}

/// The default configuration with SSDP off, a free HTTP port and CSS on "news".
fn config(http_port: u16, cii_port: u16, wc_port: u16) -> String {
    let text = std::fs::read_to_string(common::repo_file("conf/default.toml")).unwrap();
    let mut out = String::new();
    let mut section = String::new();
    let mut in_news = false;
    for line in text.lines() {
        let t = line.trim();
        if t.starts_with('[') {
            section = t.to_string();
            in_news = false;
        }
        if section == "[server]" && t.starts_with("http_port") {
            out += &format!("http_port = {http_port}\n");
            continue;
        }
        if section == "[ssdp]" && t.starts_with("enabled") {
            out += "enabled = false\n";
            continue;
        }
        out += line;
        out += "\n";
        if section == "[[channel]]" && t == "name = \"news\"" {
            in_news = true;
        }
        if in_news && t.starts_with("query") {
            out += &format!("\n[channel.css]\ncii_port = {cii_port}\nwc_port = {wc_port}\n\n");
            in_news = false;
        }
    }
    assert!(out.contains("[channel.css]"), "news channel found");
    out
}

/// The server process; SIGTERM then kill on drop.
struct Serve(Child);

impl Drop for Serve {
    fn drop(&mut self) {
        // SAFETY: plain kill(2) on the child we started.
        unsafe {
            libc::kill(self.0.id() as libc::pid_t, libc::SIGTERM);
        }
        let end = Instant::now() + Duration::from_secs(10);
        while Instant::now() < end {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn serve_channel_with_css_serves_cii_ts_wc_for_what_it_streams() {
    init();
    let (http_port, cii_port, wc_port) = free_ports();
    let dir = common::temp_dir("css-serve");
    let conf = dir.join("css.toml");
    std::fs::write(&conf, config(http_port, cii_port, wc_port)).unwrap();
    let check = Command::new(common::dvb2ip_bin())
        .arg("check-config")
        .arg(&conf)
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );

    let mut child = Command::new(common::dvb2ip_bin())
        .args(["serve", "--rtsp-port", "0", "--config"])
        .arg(&conf)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("dvb2ip serve starts");
    let stdout = child.stdout.take().unwrap();
    let server = Serve(child);
    // The banner: RTSP port and the CSS URLs of the channel.
    let (tx, rx) = mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut rtsp_port = None;
    let mut css_line = None;
    let end = Instant::now() + Duration::from_secs(120);
    while (rtsp_port.is_none() || css_line.is_none()) && Instant::now() < end {
        let Ok(line) = rx.recv_timeout(Duration::from_secs(1)) else {
            continue;
        };
        if let Some(p) = line.strip_prefix("dvb2ip: serving RTSP on 127.0.0.1:") {
            rtsp_port = p.trim().parse::<u16>().ok();
        }
        if line.contains("DVB-CSS of /ch/news") {
            css_line = Some(line);
        }
    }
    let rtsp_port = rtsp_port.expect("banner names the RTSP port");
    let css_line = css_line.expect("banner names the CSS URLs");
    let cii_url = format!("ws://127.0.0.1:{cii_port}/cii");
    let ts_url = format!("ws://127.0.0.1:{cii_port}/ts");
    let wc_url = format!("udp://127.0.0.1:{wc_port}");
    for u in [&cii_url, &ts_url, &wc_url] {
        assert!(css_line.contains(u.as_str()), "{css_line}");
    }

    // An RTSP client plays the channel and reads its timelines.
    let client = gst::parse::launch(&format!(
        "rtspsrc location=rtsp://127.0.0.1:{rtsp_port}/ch/news latency=100 protocols=udp ! \
         rtpmp2tdepay ! tstimelineparse ! fakesink sync=false"
    ))
    .unwrap()
    .downcast::<gst::Pipeline>()
    .unwrap();
    client.set_state(gst::State::Playing).unwrap();

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();

    // CII: the servers come up when the channel's media is prepared.
    let cii = rt.block_on(async {
        let end = tokio::time::Instant::now() + Duration::from_secs(120);
        loop {
            let r = tokio::time::timeout(
                Duration::from_secs(10),
                clients::cii_client(&cii_url, |_, state, _| {
                    let temi = state
                        .timelines
                        .as_ref()
                        .is_some_and(|t| t.iter().any(|t| t.timeline_selector == TEMI));
                    if state.content_id.is_some() && temi {
                        ControlFlow::Break(())
                    } else {
                        ControlFlow::Continue(())
                    }
                }),
            )
            .await;
            let ready = |s: &gstdvb2ip::proto::css::cii::CiiState| {
                s.content_id.is_some()
                    && s.timelines
                        .as_ref()
                        .is_some_and(|t| t.iter().any(|t| t.timeline_selector == TEMI))
            };
            // Between DESCRIBE and PLAY the media may be suspended (servers down, sessions
            // closed): connect again until a session got everything.
            match r {
                Ok(Ok(state)) if ready(&state) => return state,
                _ if tokio::time::Instant::now() < end => {
                    tokio::time::sleep(Duration::from_millis(200)).await
                }
                r => panic!("no CII from {cii_url}: {r:?}"),
            }
        }
    });
    // The service (partial), or with its present event once EIT p/f was seen (final).
    let id = cii.content_id.clone().unwrap();
    assert!(id == NEWS || id.starts_with(&format!("{NEWS};")), "{id}");
    assert_eq!(cii.wc_url.as_deref(), Some(wc_url.as_str()));
    assert_eq!(cii.ts_url.as_deref(), Some(ts_url.as_str()));
    let temi = cii
        .timelines
        .as_ref()
        .unwrap()
        .iter()
        .find(|t| t.timeline_selector == TEMI)
        .cloned()
        .expect("TEMI timeline offered");
    assert_eq!(
        temi.timeline_properties.units_per_second / temi.timeline_properties.units_per_tick,
        RATE
    );

    // CSS-WC answers on the configured port.
    let wc = dvb2ip::css::tools::parse_wc_addr(&wc_url).unwrap();
    let summary = rt
        .block_on(clients::wc_client(wc, Duration::from_millis(500), |_| {
            ControlFlow::Continue(())
        }))
        .expect("WC client");
    assert!(summary.adopted > 0, "{summary:?}");

    // CSS-TS while the RTSP client reads the TEMI anchors, until 20 anchors can be compared
    // with a control timestamp (a slow machine takes longer, bounded at 240 s).
    let (ts_task, log) =
        common::record_cts(&rt, &ts_url, wc, NEWS, TEMI, RATE, Duration::from_secs(240));
    let bus = client.bus().unwrap();
    let anchors = common::bus_anchors(&bus, TEMI, Duration::from_secs(240), "RTSP client", |a| {
        // The base time is the client's once it plays (anchors arrive only then).
        let base = client.base_time().map_or(0, |b| b.nseconds());
        common::ct_errors_ms(a, &log.cts.lock().unwrap(), base, RATE).len() >= 20
    });
    ts_task.abort();
    let _ = rt.block_on(ts_task);
    let base = client.base_time().expect("base time").nseconds();
    client.set_state(gst::State::Null).unwrap();
    drop(server);

    let cts = log.cts.lock().unwrap().clone();
    assert!(
        cts.iter().any(|(_, c)| c.is_available()),
        "an available control timestamp: {cts:?}"
    );
    let errors = common::ct_errors_ms(&anchors, &cts, base, RATE);
    assert!(errors.len() >= 20, "anchors compared: {}", errors.len());
    let median = errors[errors.len() / 2];
    let max = *errors.last().unwrap();
    eprintln!(
        "{} anchors over RTSP: |CSS-TS position − TEMI value| median {median:.3} ms, max {max:.3} ms",
        errors.len()
    );
    // The error here is mostly the RTSP client's own delay (its jitter buffer and when its
    // first packets arrived, 40–60 ms on a quiet machine, over 100 ms on a loaded CI
    // machine), not the server's: the accuracy figure is the benchmark's (`dvb2ip-bench css`,
    // max ≤ 1 ms) and `css_tv.rs` checks it in one pipeline. What this test catches is a
    // CSS-TS that reports another timeline position: a wrong selector, units, loop point or
    // channel is off by seconds.
    assert!(median <= 500.0, "median {median} ms");
    assert!(max <= 1000.0, "max {max} ms");
}
