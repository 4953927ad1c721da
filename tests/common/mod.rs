//! Shared helpers for the launcher's end-to-end tests, among them the raw RTSP client ([`rtsp`]).
#![allow(dead_code)]

pub mod browser;
pub mod http;
pub mod netns;
pub mod rtsp;
pub mod serve_child;
pub mod server;

use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};
use std::time::{Duration, Instant};

/// The directory holding `libgstdvb2ip.so` (target/<profile>), next to the test binary's deps/.
pub fn plugin_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test exe");
    let dir = exe
        .parent()
        .and_then(|d| d.parent())
        .expect("target dir")
        .to_path_buf();
    assert!(
        dir.join("libgstdvb2ip.so").exists(),
        "{} has no libgstdvb2ip.so; run `cargo build --workspace` first",
        dir.display()
    );
    dir
}

/// The `dvb2ip` binary built for these tests.
pub fn dvb2ip_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_dvb2ip"))
}

/// A gst-launch-1.0 command with our plugin on the path.
pub fn gst_launch() -> Command {
    let mut c = Command::new("gst-launch-1.0");
    c.env("GST_PLUGIN_PATH", plugin_dir());
    c
}

pub fn repo_file(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(rel)
}

pub fn temp_dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("dvb2ip-test-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// ffprobe's JSON description of programs and streams of `input`.
pub fn ffprobe(input: &str, extra: &[&str]) -> serde_json::Value {
    let out = ffprobe_output(input, extra);
    assert!(
        out.status.success(),
        "ffprobe {input} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("ffprobe JSON")
}

/// [`ffprobe`] of a file that may not be complete yet (a recording still running): `None`
/// while ffprobe cannot read it.
pub fn try_ffprobe(input: &Path) -> Option<serde_json::Value> {
    let out = ffprobe_output(input.to_str()?, &[]);
    out.status
        .success()
        .then(|| serde_json::from_slice(&out.stdout).ok())
        .flatten()
}

fn ffprobe_output(input: &str, extra: &[&str]) -> std::process::Output {
    Command::new("timeout")
        .args([
            "240",
            "ffprobe",
            "-v",
            "error",
            "-print_format",
            "json",
            "-show_programs",
            "-show_streams",
        ])
        .args(extra)
        .arg(input)
        .output()
        .expect("ffprobe runs (apt-get install ffmpeg)")
}

/// Runs `cmd` (typically `gst-launch-1.0 -e …`) with its stdout and stderr in the file `log`
/// until it exits or `done(its output so far)` holds — a content condition, such as "the
/// recording already has what the test checks" — then interrupts it (SIGINT: gst-launch -e
/// turns that into EOS and finishes its files) and waits for it. Fails when neither happens
/// within `limit`: a slow machine takes longer, it does not get less. Its exit status and its
/// output.
pub fn run_until(
    mut cmd: Command,
    log: &Path,
    limit: Duration,
    mut done: impl FnMut(&str) -> bool,
) -> (ExitStatus, String) {
    let out = std::fs::File::create(log).unwrap();
    let mut child = cmd
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .spawn()
        .unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    let text = || String::from_utf8_lossy(&std::fs::read(log).unwrap_or_default()).to_string();
    let end = Instant::now() + limit;
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            return (st, text());
        }
        if done(&text()) {
            break;
        }
        if Instant::now() >= end {
            let _ = child.kill();
            let _ = child.wait();
            let t = text();
            panic!(
                "{cmd:?}: condition not reached within {limit:?}; output ends:\n{}",
                &t[t.floor_char_boundary(t.len().saturating_sub(4000))..]
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    // SAFETY: plain kill(2) on the child we started (and have not reaped).
    unsafe {
        libc::kill(child.id() as libc::pid_t, libc::SIGINT);
    }
    let stop = Instant::now() + Duration::from_secs(60);
    let st = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if Instant::now() >= stop {
            let _ = child.kill();
            break child.wait().unwrap();
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    (st, text())
}

/// (service_name, [codec_type...]) per program.
pub fn programs(v: &serde_json::Value) -> Vec<(String, Vec<String>)> {
    v["programs"]
        .as_array()
        .map(|ps| {
            ps.iter()
                .map(|p| {
                    let name = p["tags"]["service_name"].as_str().unwrap_or("").to_string();
                    let types = p["streams"]
                        .as_array()
                        .map(|s| {
                            s.iter()
                                .map(|s| s["codec_type"].as_str().unwrap_or("").to_string())
                                .collect()
                        })
                        .unwrap_or_default();
                    (name, types)
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Splits a gst-launch description into argv words as a shell would (whitespace outside double
/// quotes), keeping the quotes for gst_parse, which gst-launch-1.0 expects.
pub fn launch_args(desc: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    for c in desc.chars() {
        if c == '"' {
            quoted = !quoted;
        }
        if c.is_whitespace() && !quoted {
            if !cur.is_empty() {
                out.push(std::mem::take(&mut cur));
            }
        } else {
            cur.push(c);
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// For each TEMI anchor (running time ns, value), presented at wall-clock `running time +
/// offset`: |CSS-TS position − value| in ms, from the latest available control timestamp
/// received by then (`cts`: arrival wall-clock ns, CT). Sorted; anchors before any CT skipped.
pub fn ct_errors_ms(
    anchors: &[(u64, u64)],
    cts: &[(u64, gstdvb2ip::proto::css::ts::ControlTimestamp)],
    offset: u64,
    rate: u64,
) -> Vec<f64> {
    let mut errors = Vec::new();
    for &(rt_ns, v) in anchors {
        let w = rt_ns + offset;
        let Some((_, ct)) = cts
            .iter()
            .rev()
            .find(|(arr, c)| *arr <= w && c.is_available())
        else {
            continue;
        };
        let pred = ct
            .content_time_at(w as i64, rate as f64)
            .expect("available");
        errors.push(((pred as f64 - v as f64) / rate as f64 * 1e3).abs());
    }
    errors.sort_by(f64::total_cmp);
    errors
}

/// What our CSS-TS client received while it ran: control timestamps (arrival on the system
/// clock, ns; CT) and how many position estimates it made.
#[derive(Clone, Default)]
pub struct CtLog {
    pub cts:
        std::sync::Arc<std::sync::Mutex<Vec<(u64, gstdvb2ip::proto::css::ts::ControlTimestamp)>>>,
    pub estimates: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

/// Runs our CSS-TS client (`stem`, TEMI `selector` at `rate`, WC server `wc`) against
/// `ts_url` on `rt` for at most `d` (abort the task to stop it earlier), logging into the
/// returned [`CtLog`].
pub fn record_cts(
    rt: &tokio::runtime::Runtime,
    ts_url: &str,
    wc: std::net::SocketAddr,
    stem: &str,
    selector: &str,
    rate: u64,
    d: std::time::Duration,
) -> (tokio::task::JoinHandle<()>, CtLog) {
    use dvb2ip::css::clients::{self, TsReason};
    use gst::prelude::*;
    let log = CtLog::default();
    let l = log.clone();
    let (url, stem, selector) = (ts_url.to_owned(), stem.to_owned(), selector.to_owned());
    let sys = gst::SystemClock::obtain();
    let task = rt.spawn(async move {
        let _ = tokio::time::timeout(
            d,
            clients::ts_client(
                &url,
                wc,
                &stem,
                &selector,
                rate as f64,
                std::time::Duration::from_millis(500),
                move |e| {
                    if let (TsReason::ControlTimestamp(_), Some(ct)) = (e.reason, e.last_ct) {
                        l.cts.lock().unwrap().push((sys.time().nseconds(), ct));
                    }
                    if e.content_time.is_some() {
                        l.estimates
                            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    }
                    std::ops::ControlFlow::Continue(())
                },
            ),
        )
        .await;
    });
    (task, log)
}

/// The `tstimelineparse` correlations of `selector` posted on `bus` until `enough(anchors so
/// far)` holds (checked at least every 100 ms), or at most for `limit` (a slow machine waits
/// longer, it does not get fewer), as (running time ns where a decoder presents the access
/// unit — the PTS on the PCR-locked STC — else the buffer's, value). An error message on the
/// bus fails the test, naming `what`.
pub fn bus_anchors(
    bus: &gst::Bus,
    selector: &str,
    limit: std::time::Duration,
    what: &str,
    mut enough: impl FnMut(&[(u64, u64)]) -> bool,
) -> Vec<(u64, u64)> {
    use gstdvb2ip::tstimelineparse::event::{TimelineEventKind, TimelineInfo};
    let mut anchors = Vec::new();
    let end = std::time::Instant::now() + limit;
    while std::time::Instant::now() < end && !enough(&anchors) {
        let Some(m) = bus.timed_pop(gst::ClockTime::from_mseconds(100)) else {
            continue;
        };
        if let gst::MessageView::Error(e) = m.view() {
            panic!("{what}: {} ({:?})", e.error(), e.debug());
        }
        if let Some(t) = TimelineInfo::from_message(&m) {
            if t.kind == TimelineEventKind::Correlation && t.selector == selector {
                if let (Some(v), Some(r)) = (t.value, t.presentation_time.or(t.running_time)) {
                    anchors.push((r.nseconds(), v));
                }
            }
        }
    }
    anchors
}
