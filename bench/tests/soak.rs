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

mod common;

use std::time::Duration;

/// Longest the whole run may take: server start (content generation on a cold cache), 1.5 min
/// of load, then leaving, session expiry, shutdown.
const BOUND: Duration = Duration::from_secs(480);

#[test]
fn short_soak_keeps_stayers_clean_and_releases_every_frontend() {
    let run = common::run_bench(
        &[
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
        ],
        BOUND,
    );
    let report = &run.report;
    let status = run.status;
    let num = |k: &str| run.num("soak", k) as i64;
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
