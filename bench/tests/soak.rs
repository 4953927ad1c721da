//! The short soak CI runs: `dvb2ip-bench soak` for 1.5 minutes with a few clients of each kind
//! (RTP and HTTP stayers and churners, some killed, CSS clients, the DVB-C frontend losing
//! lock every 15 s) against a `dvb2ip serve` child on loopback, and the invariants that do not
//! depend on timing, read from the bench's `soak-summary:` line:
//! 0 RTP loss and 0 CC errors on the stayers, every stayer (RTP, HTTP, CSS) set up and alive
//! to the end, the lock-loss stayers' sessions surviving, every frontend released once the
//! clients left, the server alive to the end and exiting cleanly on SIGTERM, its descriptor
//! count back near idle. RSS/fd slopes are printed by the bench, not asserted.
//!
//! The server is the `dvb2ip` binary beside `dvb2ip-bench` (cargo builds both into the same
//! target directory when the workspace's tests are built).

use std::collections::HashMap;
use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Longest the whole run may take: server start (content generation on a cold cache), 1.5 min
/// of load, then leaving, session expiry, shutdown.
const BOUND: Duration = Duration::from_secs(480);

#[test]
fn short_soak_keeps_stayers_clean_and_releases_every_frontend() {
    let bench = env!("CARGO_BIN_EXE_dvb2ip-bench");
    let server = std::path::Path::new(bench).with_file_name("dvb2ip");
    assert!(
        server.is_file(),
        "{} not built: build the workspace (cargo build --workspace) or run `cargo test --workspace`",
        server.display()
    );
    let mut child = Command::new(bench)
        .args([
            "soak",
            "--minutes",
            "1.5",
            "--rtp",
            "6",
            "--http",
            "2",
            "--css",
            "2",
            "--seed",
            "1",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("dvb2ip-bench starts");
    let mut out = child.stdout.take().expect("stdout");
    let mut err = child.stderr.take().expect("stderr");
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let end = Instant::now() + BOUND;
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait for dvb2ip-bench") {
            break Some(s);
        }
        if Instant::now() >= end {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let stdout = reader.join().unwrap_or_default();
    let stderr = err_reader.join().unwrap_or_default();
    let report = format!("--- stdout\n{stdout}\n--- stderr\n{stderr}");
    assert!(
        status.is_some(),
        "the soak did not end within {BOUND:?}\n{report}"
    );
    let summary: HashMap<&str, &str> = stdout
        .lines()
        .find_map(|l| l.strip_prefix("soak-summary: "))
        .unwrap_or_else(|| panic!("no soak-summary line\n{report}"))
        .split_whitespace()
        .filter_map(|kv| kv.split_once('='))
        .collect();
    let num = |k: &str| -> i64 {
        summary
            .get(k)
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("soak-summary without {k}\n{report}"))
    };
    // 3 RTP stayers (one on the lock-loss mux), 1 HTTP stayer, 1 CSS stayer.
    assert_eq!(num("stayers"), 3, "{report}");
    assert_eq!(num("stayers_ok"), num("stayers"), "{report}");
    assert_eq!(num("stayer_lost"), 0, "{report}");
    assert_eq!(num("stayer_cc"), 0, "{report}");
    assert_eq!(num("css_stayers"), 1, "{report}");
    assert_eq!(num("css_stayers_ok"), 1, "{report}");
    assert_eq!(num("lockloss_stayers"), 1, "{report}");
    assert_eq!(num("lockloss_ok"), 1, "{report}");
    assert!(num("churn_sessions") > 0, "{report}");
    assert_eq!(num("frontends_in_use"), 0, "{report}");
    assert_eq!(num("server_ok"), 1, "{report}");
    assert!(num("fd_end") >= 0, "{report}");
    assert!(num("fd_end") <= num("fd_idle") + 8, "{report}");
    assert_eq!(num("hard_targets_met"), 1, "{report}");
    assert!(
        status.is_some_and(|s| s.success()),
        "dvb2ip-bench soak failed\n{report}"
    );
}
