//! A short headend mix as a test: `dvb2ip-bench headend --clients 60 --seconds 3 --no-baseline`
//! (48 RTP/UDP and 12 HTTP single-service clients over the four emulated muxes, joining at
//! 50/s) against a `dvb2ip serve` child on loopback, and what does not depend on timing, read
//! from the bench's `headend-summary:` line: the run completes, every client plays and gets
//! data, the HTTP streams have no CC error and none was closed by the server, the RTP sessions
//! neither (unless this process's own sockets dropped datagrams, which the bench counts apart),
//! and the figures are sane (CPU, threads and rates measured, rates near the services'). The
//! issue's targets (CPU, RSS, threads, join latency) are the bench's to print, not asserted.
//!
//! The server is the `dvb2ip` binary beside `dvb2ip-bench` (cargo builds both into the same
//! target directory when the workspace's tests are built).

mod common;

use std::time::Duration;

/// Longest the whole run may take: server start (content generation on a cold cache), warm-up,
/// 1.2 s of joins, settling, 3 s of hold, shutdown.
const BOUND: Duration = Duration::from_secs(300);

#[test]
fn short_headend_mix_plays_every_client_cleanly() {
    let run = common::run_bench(
        &[
            "headend",
            "--clients",
            "60",
            "--seconds",
            "3",
            "--no-baseline",
        ],
        BOUND,
    );
    let report = &run.report;
    let status = run.status;
    assert!(
        status.is_some_and(|s| s.success()),
        "dvb2ip-bench headend failed\n{report}"
    );
    let num = |k: &str| run.num("headend", k);
    assert_eq!(num("clients"), 60.0, "{report}");
    assert_eq!(num("rtp"), 48.0, "{report}");
    assert_eq!(num("http"), 12.0, "{report}");
    assert_eq!(num("rtp_ok"), num("rtp"), "{report}");
    assert_eq!(num("http_ok"), num("http"), "{report}");
    assert_eq!(num("silent"), 0.0, "{report}");
    assert_eq!(num("http_closed"), 0.0, "{report}");
    assert_eq!(num("http_cc"), 0.0, "{report}");
    if num("rtp_rxdrop") == 0.0 {
        assert_eq!(num("rtp_lost"), 0.0, "{report}");
        assert_eq!(num("rtp_cc"), 0.0, "{report}");
    }
    assert!(num("cpu") > 0.0, "{report}");
    assert!(num("threads") > 0.0, "{report}");
    assert!(num("threads_peak") >= num("threads"), "{report}");
    assert!(num("join_med_ms") >= 0.0, "{report}");
    assert!(num("join_p99_ms") >= num("join_med_ms"), "{report}");
    // Every client is measured against its service's rate: a client getting a small part of
    // it (or several times it) would mean a wrong PID set or a broken stream.
    assert!(
        num("ratio_min") > 0.3 && num("ratio_med") > 0.7 && num("ratio_med") < 1.5,
        "{report}"
    );
}
