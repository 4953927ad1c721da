//! `dvb2ip-bench ui`: what the web UI and `/metrics` cost the server (issue 15's benchmark).
//!
//! One `dvb2ip serve` on loopback plays N SAT>IP RTP/UDP sessions (the `satip` benchmark's
//! clients and receiver, one service's PIDs each by default). Its CPU is measured over
//! alternating windows of the same length: *quiet* (the sessions only) and *watched* (M web
//! UI clients on `GET /api/events`, the live updates the page renders, and `/metrics`
//! scraped once a second). The extra CPU of the UI is watched − quiet (mean of the quiet
//! windows before and after, so drift cancels); the page's update latency is each update's
//! arrival time minus its `taken_unix_ms` (the server's clock, same machine). Bounded: the
//! windows are `--seconds` long, every request has a timeout.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;

use crate::satip::{self, proc_cpu_secs, Server, ServerProc};
use crate::satip_baseline::SUBSETS;
use crate::satip_rx::Receiver;

/// The target: the UI and metrics cost at most this share of one core.
const TARGET_PERCENT: f64 = 2.0;

#[derive(Debug, Clone, clap::Args)]
pub struct Options {
    /// RTP/UDP sessions playing.
    #[arg(long, default_value_t = 200)]
    pub sessions: usize,
    /// Web UI clients on /api/events.
    #[arg(long, default_value_t = 10)]
    pub ui_clients: usize,
    /// Seconds of each measured window.
    #[arg(long, default_value_t = 10.0)]
    pub seconds: f64,
    /// PIDs of each session: `subset` (one service's PIDs, the three services in turn) or
    /// `all` (the whole ~20 Mbit/s multiplex).
    #[arg(long, default_value = "subset")]
    pub pids: String,
}

/// Milliseconds since 1970 (the clock `taken_unix_ms` is read from).
fn unix_ms() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
}

/// The `taken_unix_ms` of every complete server-sent event in `buf` (consumed).
fn take_events(buf: &mut Vec<u8>) -> Vec<f64> {
    let mut out = Vec::new();
    while let Some(end) = buf.windows(2).position(|w| w == b"\n\n") {
        let event: Vec<u8> = buf.drain(..end + 2).collect();
        let text = String::from_utf8_lossy(&event);
        if let Some(v) = text
            .split_once("\"taken_unix_ms\":")
            .and_then(|(_, r)| r.split(|c: char| !c.is_ascii_digit()).next())
            .and_then(|d| d.parse::<f64>().ok())
        {
            out.push(v);
        }
    }
    out
}

/// One UI client: reads `/api/events` until `stop`, noting each update's latency (ms).
fn ui_client(
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    latencies: Arc<Mutex<Vec<f64>>>,
) -> anyhow::Result<()> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    s.set_read_timeout(Some(Duration::from_millis(500)))?;
    write!(
        s,
        "GET /api/events HTTP/1.1\r\nHost: {addr}\r\nAccept: text/event-stream\r\n\r\n"
    )?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 64 * 1024];
    while !stop.load(Ordering::Relaxed) {
        match s.read(&mut chunk) {
            Ok(0) => anyhow::bail!("the server closed /api/events"),
            Ok(n) => {
                let now = unix_ms();
                buf.extend_from_slice(&chunk[..n]);
                let taken = take_events(&mut buf);
                latencies
                    .lock()
                    .unwrap()
                    .extend(taken.into_iter().map(|t| (now - t).max(0.0)));
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// Scrapes `/metrics` once a second until `stop`; counts the scrapes.
fn scraper(addr: SocketAddr, stop: Arc<AtomicBool>, scrapes: Arc<AtomicU64>) {
    while !stop.load(Ordering::Relaxed) {
        let t = Instant::now();
        if let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_secs(5)) {
            let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
            if write!(
                s,
                "GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
            )
            .is_ok()
            {
                let mut body = Vec::new();
                if s.read_to_end(&mut body).is_ok() && body.starts_with(b"HTTP/1.1 200") {
                    scrapes.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        std::thread::sleep(Duration::from_secs(1).saturating_sub(t.elapsed()));
    }
}

/// CPU share (percent of one core) of process `pid` over `window`.
fn cpu_over(pid: u32, window: Duration) -> anyhow::Result<f64> {
    let (c0, t0) = (proc_cpu_secs(pid).context("server CPU")?, Instant::now());
    std::thread::sleep(window);
    let (c1, dt) = (
        proc_cpu_secs(pid).context("server CPU")?,
        t0.elapsed().as_secs_f64(),
    );
    Ok((c1 - c0) / dt * 100.0)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    satip::percentile(sorted, p)
}

pub fn run(opts: &Options) -> anyhow::Result<()> {
    let dir = std::env::temp_dir().join(format!("dvb2ip-bench-ui-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let server = ServerProc::spawn(Server::Dvb2ip, &dir, opts.sessions + 8)?;
    let http: SocketAddr = (Ipv4Addr::LOCALHOST, server.http_port).into();
    let window = Duration::from_secs_f64(opts.seconds.max(1.0));

    // The sessions, received and checked by the satip benchmark's receiver.
    let mut socks = Vec::with_capacity(opts.sessions);
    for _ in 0..opts.sessions {
        socks.push(satip::rtp_pair()?);
    }
    let rtp: Vec<UdpSocket> = socks
        .iter()
        .map(|(a, _)| a.try_clone())
        .collect::<Result<_, _>>()?;
    let receiver = Receiver::start(&rtp, 1, None)?;
    let mut clients = Vec::with_capacity(opts.sessions);
    for (i, (rtp, _)) in socks.iter().enumerate() {
        let pids = if opts.pids == "all" {
            "all"
        } else {
            SUBSETS[i % SUBSETS.len()]
        };
        let mut c = satip::setup(Server::Dvb2ip, server.port, pids, "", rtp)
            .with_context(|| format!("SETUP of session {i}"))?;
        let url = c.play_url.clone();
        c.rtsp
            .request("PLAY", &url, &[])
            .with_context(|| format!("PLAY of session {i}"))?;
        clients.push(c);
    }
    std::thread::sleep(satip::SETTLE * 3);
    let pid = server.pid();
    println!(
        "ui: {} RTP/UDP sessions playing ({}), windows of {:.0} s",
        opts.sessions,
        if opts.pids == "all" {
            "pids=all"
        } else {
            "one service each"
        },
        window.as_secs_f64()
    );

    let quiet1 = cpu_over(pid, window)?;
    // Watched: UI clients and the scraper.
    let stop = Arc::new(AtomicBool::new(false));
    let latencies = Arc::new(Mutex::new(Vec::new()));
    let scrapes = Arc::new(AtomicU64::new(0));
    let mut threads = Vec::new();
    for _ in 0..opts.ui_clients {
        let (stop, lat) = (stop.clone(), latencies.clone());
        threads.push(std::thread::spawn(move || {
            if let Err(e) = ui_client(http, stop, lat) {
                eprintln!("ui: a UI client failed: {e:#}");
            }
        }));
    }
    let (st, sc) = (stop.clone(), scrapes.clone());
    threads.push(std::thread::spawn(move || scraper(http, st, sc)));
    // Let the clients connect and get their first update before measuring.
    std::thread::sleep(Duration::from_secs(2));
    latencies.lock().unwrap().clear();
    let s0 = scrapes.load(Ordering::Relaxed);
    let watched = cpu_over(pid, window)?;
    let scraped = scrapes.load(Ordering::Relaxed) - s0;
    let mut lat = std::mem::take(&mut *latencies.lock().unwrap());
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        let _ = t.join();
    }
    std::thread::sleep(Duration::from_secs(1));
    let quiet2 = cpu_over(pid, window)?;

    let c = &receiver.sessions;
    let received: u64 = c.iter().map(|s| s.bytes.load(Ordering::Relaxed)).sum();
    drop(clients);
    receiver.stop();
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);

    lat.sort_by(f64::total_cmp);
    let quiet = (quiet1 + quiet2) / 2.0;
    let extra = watched - quiet;
    println!("  server CPU: quiet {quiet1:.1} % / {quiet2:.1} % of a core, watched {watched:.1} %");
    println!(
        "  extra CPU for {} UI clients + /metrics once a second ({scraped} scrapes): {extra:+.2} % of a core (target <= {TARGET_PERCENT} %): {}",
        opts.ui_clients,
        if extra <= TARGET_PERCENT { "met" } else { "MISSED" }
    );
    if lat.is_empty() {
        println!("  update latency: no updates received");
    } else {
        println!(
            "  update latency (taken -> received) over {} updates: median {:.1} ms, p99 {:.1} ms, max {:.1} ms",
            lat.len(),
            percentile(&lat, 0.5),
            percentile(&lat, 0.99),
            lat[lat.len() - 1]
        );
    }
    println!(
        "  RTP received by the clients: {:.1} MB",
        received as f64 / 1e6
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_cut_at_blank_lines() {
        let mut b =
            b"event: snapshot\ndata: {\"taken_unix_ms\":1700000000123,\"x\":1}\n\nevent: snap"
                .to_vec();
        assert_eq!(take_events(&mut b), vec![1_700_000_000_123.0]);
        assert_eq!(b, b"event: snap");
    }
}
