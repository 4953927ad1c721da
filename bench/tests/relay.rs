//! A short relay benchmark as a test: `dvb2ip-bench relay --readers 4 --seconds 1 --tries 1`
//! (an origin and an edge `dvb2ip serve` on loopback; four readers of the origin's tuner, a
//! cold and a warm first reader of a relay, four readers of the relay), and what does not
//! depend on timing, read from the bench's `relay-summary:` line: every reader of both phases
//! plays and gets data, the relay's readers share one upstream session, no continuity error
//! (nor loss, unless this process's own sockets dropped datagrams). The CPU ratio is the
//! bench's to print.

mod common;

use std::time::Duration;

/// Two server starts (content generation on a cold cache), two 1 s windows, the tries.
const BOUND: Duration = Duration::from_secs(300);

#[test]
fn short_relay_bench_shares_one_upstream_and_plays_every_reader() {
    let run = common::run_bench(
        &["relay", "--readers", "4", "--seconds", "1", "--tries", "1"],
        BOUND,
    );
    let report = &run.report;
    assert!(
        run.status.is_some_and(|s| s.success()),
        "dvb2ip-bench relay failed\n{report}"
    );
    let num = |k: &str| run.num("relay", k);
    assert_eq!(num("readers"), 4.0, "{report}");
    assert_eq!(num("local_ok"), 4.0, "{report}");
    assert_eq!(num("relay_ok"), 4.0, "{report}");
    assert_eq!(num("silent"), 0.0, "{report}");
    assert_eq!(num("upstream_sessions"), 1.0, "{report}");
    if num("rxdrop") == 0.0 {
        assert_eq!(num("lost"), 0.0, "{report}");
        assert_eq!(num("cc"), 0.0, "{report}");
    }
    assert!(
        num("cold_play_ms") > 0.0 && num("warm_play_ms") > 0.0,
        "{report}"
    );
    assert!(num("local_cpu") > 0.0 && num("relay_cpu") > 0.0, "{report}");
}
