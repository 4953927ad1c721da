//! `dvb2ip-bench relay`: an edge relaying one ~20 Mbit/s multiplex to N RTSP readers, against
//! N readers of a local tuner, on the same build in the same run.
//!
//! Two `dvb2ip serve` processes on 127.0.0.1: the *origin* (the embedded emulated tuners) and
//! the *edge*, whose `[[relay]]` entries pull the origin's multiplex
//! (`rtsp://origin/?<mux>&pids=all`, the same stream the local readers get). Phases, one after
//! the other:
//!
//! 1. `local`: N SAT>IP RTP/UDP sessions (`pids=all`) on the origin: the origin's CPU.
//! 2. `cold`: K times, the first reader of an idle relay (`close_after` 0.5 s, waiting for the
//!    pull to close between tries): DESCRIBE (which starts the pull) and PLAY → first packet.
//! 3. `warm`: K times, a reader of a relay whose pull is up (a reader in its grace period).
//! 4. `relay`: N RTSP readers (DESCRIBE, SETUP RTP/UDP, PLAY) of the warm relay: the edge's
//!    CPU, and the origin's RTSP sessions (the relay's one upstream).
//!
//! Loss and continuity errors are counted per reader as in `satip`. Target: the edge's CPU
//! with N relay readers at most 1.1 times the origin's with N local readers.

use std::net::{TcpStream, UdpSocket};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

use crate::satip::{
    percentile, proc_cpu_secs, proc_rss_kib, rtp_pair, setup, Client, Server, ServerProc, SETTLE,
    WARM_UP,
};
use crate::satip_baseline::SATIP_MUX;
use crate::satip_rx::{self as rx, Receiver, NONE};

/// What `dvb2ip-bench relay` runs.
#[derive(Debug, Clone)]
pub struct Options {
    pub readers: usize,
    pub seconds: f64,
    /// Cold and warm first-reader tries.
    pub tries: usize,
    pub rx_threads: usize,
}

/// The relay measured with N readers (its pull stays up: a long grace).
const WARM: &str = "warm";
/// The relay whose pull closes soon after its reader leaves.
const COLD: &str = "cold";
/// Longest wait for a relay or session state.
const STATE_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest wait for an answer from the edge: a cold relay's DESCRIBE legitimately waits for
/// the pull up to the relay's `start_timeout` (10 s by default), longer than the satip bench's
/// 5 s (a debug build on a loaded machine took over 5 s once, failing the run).
const RELAY_RTSP_TIMEOUT: Duration = Duration::from_secs(15);
/// Longest wait for a reader's first packet.
const FIRST_TIMEOUT: Duration = Duration::from_secs(15);

/// What one phase of N readers measured.
#[derive(Debug, Default)]
struct Load {
    n: usize,
    ok: usize,
    cpu: f64,
    rss_per_reader_kib: f64,
    lost: u64,
    /// Datagrams this process's own sockets dropped (counted in `lost` too).
    rx_drops: u64,
    cc: u64,
    silent: usize,
    first_med_ms: f64,
    first_p99_ms: f64,
    rate_min: f64,
    rate_med: f64,
    errors: Vec<String>,
}

/// `GET path` on 127.0.0.1:`port` as JSON.
fn get_json(port: u16, path: &str) -> anyhow::Result<serde_json::Value> {
    use std::io::{Read, Write};
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )?;
    let mut text = String::new();
    s.read_to_string(&mut text)?;
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b)
        .with_context(|| format!("GET {path}: no body"))?;
    serde_json::from_str(body).with_context(|| format!("GET {path}: {body:.200}"))
}

/// The `/api/relays` report of relay `name` on the edge, and the server's RTSP sessions.
fn relay_state(edge: &ServerProc, name: &str) -> anyhow::Result<(String, u64)> {
    let v = get_json(edge.http_port, "/api/relays")?;
    let r = v["relays"]
        .as_array()
        .and_then(|a| a.iter().find(|r| r["name"] == name))
        .with_context(|| format!("no relay {name} in {v}"))?;
    Ok((
        r["state"].as_str().unwrap_or("?").to_string(),
        r["readers"].as_u64().unwrap_or(0),
    ))
}

/// RTSP sessions `server` holds.
fn rtsp_sessions(server: &ServerProc) -> anyhow::Result<u64> {
    get_json(server.http_port, "/api/relays")?["rtsp_sessions"]
        .as_u64()
        .context("rtsp_sessions")
}

fn wait_for(what: &str, mut f: impl FnMut() -> anyhow::Result<bool>) -> anyhow::Result<()> {
    let deadline = Instant::now() + STATE_TIMEOUT;
    loop {
        if f()? {
            return Ok(());
        }
        if Instant::now() >= deadline {
            bail!("{what}: not within {STATE_TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A reader of a relay mount: DESCRIBE, SETUP; returns it with its sockets.
fn relay_reader(edge: &ServerProc, name: &str) -> anyhow::Result<(Client, UdpSocket, UdpSocket)> {
    let (rtp, rtcp) = rtp_pair()?;
    let c = crate::satip::setup_with_timeout(
        RELAY_RTSP_TIMEOUT,
        Server::Baseline,
        edge.port,
        "",
        &format!("/relay/{name}"),
        &rtp,
    )?;
    Ok((c, rtp, rtcp))
}

/// One first reader: (DESCRIBE + SETUP time, PLAY → first datagram), then TEARDOWN.
fn first_reader(edge: &ServerProc, name: &str) -> anyhow::Result<(f64, f64)> {
    let t = Instant::now();
    let (mut c, rtp, _rtcp) = relay_reader(edge, name)?;
    let setup_ms = t.elapsed().as_secs_f64() * 1e3;
    rtp.set_read_timeout(Some(FIRST_TIMEOUT))?;
    let url = c.play_url.clone();
    let t = Instant::now();
    c.rtsp.request("PLAY", &url, &[])?;
    let mut buf = [0u8; 2048];
    rtp.recv(&mut buf)
        .with_context(|| format!("first packet of /relay/{name}"))?;
    let play_ms = t.elapsed().as_secs_f64() * 1e3;
    let _ = c.rtsp.request("TEARDOWN", &url, &[]);
    Ok((setup_ms, play_ms))
}

/// Sets up and plays `n` readers made by `make`, measures `server` for `seconds`.
fn load(
    server: &ServerProc,
    n: usize,
    opts: &Options,
    mut make: impl FnMut(&UdpSocket) -> anyhow::Result<Client>,
) -> anyhow::Result<(Load, Vec<Client>)> {
    let idle_rss = proc_rss_kib(server.pid()).unwrap_or(0);
    let socks: Vec<(UdpSocket, UdpSocket)> =
        (0..n).map(|_| rtp_pair()).collect::<Result<_, _>>()?;
    let rtp: Vec<UdpSocket> = socks
        .iter()
        .map(|(a, _)| a.try_clone())
        .collect::<Result<_, _>>()?;
    let receiver = Receiver::start(&rtp, opts.rx_threads, None)?;
    let mut l = Load {
        n,
        ..Default::default()
    };
    let mut clients = Vec::with_capacity(n);
    let mut play_ns = Vec::with_capacity(n);
    for (i, (sock, _)) in socks.iter().enumerate() {
        match make(sock).and_then(|mut c| {
            let url = c.play_url.clone();
            let at = receiver.now_ns();
            c.rtsp.request("PLAY", &url, &[])?;
            Ok((c, at))
        }) {
            Ok((c, at)) => {
                clients.push(Some(c));
                play_ns.push(at);
            }
            Err(e) => {
                l.errors.push(format!("reader {i}: {e:#}"));
                clients.push(None);
                play_ns.push(NONE);
            }
        }
    }
    std::thread::sleep(SETTLE);
    let pid = server.pid();
    let c = &receiver.sessions;
    let bytes = || -> Vec<u64> { c.iter().map(|s| s.bytes.load(Ordering::Relaxed)).collect() };
    let (cpu0, b0, t0) = (proc_cpu_secs(pid), bytes(), Instant::now());
    std::thread::sleep(Duration::from_secs_f64(opts.seconds));
    let (cpu1, b1, dt) = (proc_cpu_secs(pid), bytes(), t0.elapsed().as_secs_f64());
    let rss = proc_rss_kib(pid).unwrap_or(0);
    let sessions = receiver.sessions.clone();
    receiver.stop();
    let ports: Vec<u16> = rtp
        .iter()
        .filter_map(|s| s.local_addr().ok().map(|a| a.port()))
        .collect();
    l.rx_drops = rx::socket_drops(&ports);
    if let (Some(a), Some(b)) = (cpu0, cpu1) {
        l.cpu = (b - a) / dt * 100.0;
    }
    let ok: Vec<usize> = (0..n).filter(|&i| clients[i].is_some()).collect();
    l.ok = ok.len();
    l.rss_per_reader_kib = rss.saturating_sub(idle_rss) as f64 / l.ok.max(1) as f64;
    let (mut firsts, mut rates) = (Vec::new(), Vec::new());
    for &i in &ok {
        let s = &sessions[i];
        l.lost += s.lost.load(Ordering::Relaxed);
        l.cc += s.cc_errors.load(Ordering::Relaxed);
        match s.first_ns.load(Ordering::Relaxed) {
            NONE => l.silent += 1,
            f => firsts.push(f.saturating_sub(play_ns[i]) as f64 / 1e6),
        }
        rates.push((b1[i] - b0[i]) as f64 * 8.0 / dt / 1e6);
    }
    firsts.sort_by(f64::total_cmp);
    rates.sort_by(f64::total_cmp);
    l.first_med_ms = percentile(&firsts, 0.5);
    l.first_p99_ms = percentile(&firsts, 0.99);
    l.rate_min = rates.first().copied().unwrap_or(f64::NAN);
    l.rate_med = percentile(&rates, 0.5);
    Ok((l, clients.into_iter().flatten().collect()))
}

fn teardown_all(clients: Vec<Client>) {
    for mut c in clients {
        let url = c.play_url.clone();
        let _ = c.rtsp.send("TEARDOWN", &url, &[]);
    }
}

fn row(name: &str, l: &Load) -> String {
    format!(
        "{name:<28} {:>4}/{:<4} {:>6.1} {:>9.1} {:>7} {:>6} {:>6} {:>6} {:>15} {:>17}",
        l.ok,
        l.n,
        l.cpu,
        l.rss_per_reader_kib,
        l.lost,
        l.rx_drops,
        l.cc,
        l.silent,
        format!("{:.2}/{:.2}", l.first_med_ms, l.first_p99_ms),
        format!("{:.2}/{:.2}", l.rate_min, l.rate_med),
    )
}

fn med(v: &mut [f64]) -> String {
    v.sort_by(f64::total_cmp);
    if v.is_empty() {
        return "-".into();
    }
    format!(
        "median {:.2} ms (min {:.2}, max {:.2}, {} tries)",
        percentile(v, 0.5),
        v[0],
        v[v.len() - 1],
        v.len()
    )
}

fn verdict(ok: bool) -> &'static str {
    if ok {
        "met"
    } else {
        "NOT met"
    }
}

pub fn run(opts: &Options) -> anyhow::Result<()> {
    if opts.readers == 0 || opts.tries == 0 {
        bail!("--readers and --tries must be positive");
    }
    if !(opts.seconds > 0.0 && opts.seconds <= 600.0) {
        bail!("--seconds must be in (0, 600]");
    }
    let dir = std::env::temp_dir().join(format!("dvb2ip-bench-relay-{}", std::process::id()));
    let n = opts.readers;
    let origin_table = crate::satip::server_table_with(Some(n + 16), &[])?;
    let origin = ServerProc::spawn_table(&dir.join("origin"), &origin_table)?;
    let source = format!("rtsp://127.0.0.1:{}/?{SATIP_MUX}&pids=all", origin.port);
    let mut edge_table = crate::satip::server_table_with(Some(n + 16), &[])?;
    let relays: Vec<toml::Value> = [(WARM, 3600.0), (COLD, 0.5)]
        .iter()
        .map(|(name, close_after)| {
            let mut r = toml::Table::new();
            r.insert("name".into(), (*name).into());
            r.insert("source".into(), source.clone().into());
            r.insert("close_after".into(), (*close_after).into());
            toml::Value::Table(r)
        })
        .collect();
    edge_table.insert("relay".into(), toml::Value::Array(relays));
    let edge = ServerProc::spawn_table(&dir.join("edge"), &edge_table)?;
    println!(
        "dvb2ip-bench relay: {n} readers of one multiplex ({SATIP_MUX}, pids=all), RTP/UDP on 127.0.0.1, {} s windows, {} build, {} CPUs",
        opts.seconds,
        if cfg!(debug_assertions) { "debug" } else { "release" },
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!(
        "origin: dvb2ip serve (emulated tuners), RTSP port {}; edge: dvb2ip serve with [[relay]] {WARM} and {COLD} <- {source}",
        origin.port
    );

    // 1. N readers of the origin's local tuner (a warm-up session tunes the mux first).
    let (warm_rtp, _warm_rtcp) = rtp_pair()?;
    let warm = setup(Server::Dvb2ip, origin.port, "0", "", &warm_rtp).context("warm-up SETUP")?;
    std::thread::sleep(WARM_UP);
    let port = origin.port;
    let (local, clients) = load(&origin, n, opts, |rtp| {
        setup(Server::Dvb2ip, port, "all", "", rtp)
    })?;
    teardown_all(clients);
    teardown_all(vec![warm]);
    wait_for("the origin's local sessions end", || {
        Ok(rtsp_sessions(&origin)? == 0)
    })?;

    // 2. Cold first readers: each starts the pull (DESCRIBE waits for the upstream).
    let (mut cold_setup, mut cold_play) = (Vec::new(), Vec::new());
    for _ in 0..opts.tries {
        wait_for("the cold relay is idle", || {
            Ok(relay_state(&edge, COLD)?.0 == "idle")
        })?;
        let (s, p) = first_reader(&edge, COLD)?;
        cold_setup.push(s);
        cold_play.push(p);
    }
    // 3. Warm first readers: the pull is up, in its grace period.
    let (mut warm_setup, mut warm_play) = (Vec::new(), Vec::new());
    first_reader(&edge, WARM)?;
    for _ in 0..opts.tries {
        wait_for("the warm relay has no reader", || {
            Ok(relay_state(&edge, WARM)?.1 == 0)
        })?;
        let (s, p) = first_reader(&edge, WARM)?;
        warm_setup.push(s);
        warm_play.push(p);
    }

    // 4. N readers of the warm relay on the edge.
    let before = rtsp_sessions(&origin)?;
    let edge_ref = &edge;
    let (relayed, clients) = load(&edge, n, opts, |rtp| {
        setup(
            Server::Baseline,
            edge_ref.port,
            "",
            &format!("/relay/{WARM}"),
            rtp,
        )
    })?;
    let upstream = rtsp_sessions(&origin)?;
    let origin_cpu_idle = {
        let pid = origin.pid();
        let (a, t) = (proc_cpu_secs(pid), Instant::now());
        std::thread::sleep(Duration::from_secs(1));
        match (a, proc_cpu_secs(pid)) {
            (Some(a), Some(b)) => (b - a) / t.elapsed().as_secs_f64() * 100.0,
            _ => f64::NAN,
        }
    };
    teardown_all(clients);

    println!();
    println!(
        "{:<28} {:>9} {:>6} {:>9} {:>7} {:>6} {:>6} {:>6} {:>15} {:>17}",
        "phase",
        "ok/N",
        "cpu%",
        "KiB/rdr",
        "lost",
        "rxdrop",
        "cc_err",
        "silent",
        "first_ms med/p99",
        "Mbit/s/rdr min/med"
    );
    println!("{}", row("local tuner (origin)", &local));
    println!("{}", row("relay (edge)", &relayed));
    for e in local.errors.iter().chain(&relayed.errors).take(5) {
        println!("      error: {e}");
    }
    println!(
        "origin while the edge served {n} readers: {upstream} RTSP session(s) (was {before} before them), {origin_cpu_idle:.1} % CPU"
    );
    println!(
        "cold relay, first reader: DESCRIBE+SETUP {}",
        med(&mut cold_setup)
    );
    println!(
        "cold relay, first reader: PLAY -> first packet {}",
        med(&mut cold_play)
    );
    println!(
        "warm relay, first reader: DESCRIBE+SETUP {}",
        med(&mut warm_setup)
    );
    println!(
        "warm relay, first reader: PLAY -> first packet {}",
        med(&mut warm_play)
    );
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        percentile(v, 0.5)
    };
    println!(
        "relay-summary: readers={n} local_ok={} relay_ok={} silent={} upstream_sessions={upstream} lost={} rxdrop={} cc={} local_cpu={:.2} relay_cpu={:.2} cold_play_ms={:.3} warm_play_ms={:.3}",
        local.ok,
        relayed.ok,
        local.silent + relayed.silent,
        local.lost + relayed.lost,
        local.rx_drops + relayed.rx_drops,
        local.cc + relayed.cc,
        local.cpu,
        relayed.cpu,
        median(&mut cold_play),
        median(&mut warm_play),
    );
    let ratio = relayed.cpu / local.cpu;
    println!();
    println!("targets:");
    println!(
        "  edge CPU with {n} relay readers <= 1.1 x origin CPU with {n} local readers: {:.1} % vs {:.1} % (ratio {ratio:.2}): {}",
        relayed.cpu,
        local.cpu,
        verdict(ratio <= 1.1)
    );
    println!(
        "  one upstream session for every reader: {upstream}: {}",
        verdict(upstream == 1)
    );
    let clean = [&local, &relayed]
        .iter()
        .all(|l| l.lost == 0 && l.cc == 0 && l.silent == 0 && l.ok == l.n);
    println!(
        "  0 loss, 0 CC errors, no silent or failed reader: {}",
        verdict(clean)
    );
    drop(edge);
    drop(origin);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
