//! `dvb2ip bench satip`: N concurrent SAT>IP RTP/UDP unicast sessions on one emulated
//! ~20 Mbit/s multiplex, served in-process on 127.0.0.1 and received by loopback clients.
//!
//! Per N it prints: server CPU (% of one core, every thread of the process except the
//! receivers' `bench-rx` threads), process RSS, packet loss (RTP sequence gaps), TS continuity
//! errors, PLAY→first-packet latency (median, p99) and the bitrate delivered per session.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{TcpStream, UdpSocket};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use gst::glib;

use crate::config::Config;
use crate::serve;

/// DVB-T2 474 MHz, 20 Mbit/s in the embedded configuration.
const MUX: &str = "freq=474&msys=dvbt2&bw=8&plp=0";
/// PID subsets used in the "distinct" mode (session i gets subset i % len).
const SUBSETS: [&str; 3] = [
    "0,16,17,18,256,257,258",
    "0,16,17,18,512,513,514",
    "0,16,17,18,768,770",
];

#[derive(Default, Clone)]
struct RxStats {
    packets: u64,
    bytes: u64,
    lost: u64,
    cc_errors: u64,
    first: Option<Duration>,
}

fn rtsp(s: &mut TcpStream, req: &str) -> anyhow::Result<String> {
    s.write_all(req.as_bytes())?;
    let mut buf = Vec::new();
    let mut b = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        if s.read(&mut b)? == 0 {
            bail!("connection closed");
        }
        buf.push(b[0]);
    }
    let head = String::from_utf8_lossy(&buf).to_string();
    if !head.starts_with("RTSP/1.0 200") {
        bail!("{}", head.lines().next().unwrap_or(""));
    }
    Ok(head)
}

fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim().eq_ignore_ascii_case(name).then_some(v.trim())
    })
}

/// CPU seconds (user+system) of every thread not named `bench-rx*`.
fn server_cpu_secs() -> f64 {
    let tick = 100.0; // USER_HZ on Linux.
    let mut total = 0.0;
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return 0.0;
    };
    for t in tasks.flatten() {
        let comm = std::fs::read_to_string(t.path().join("comm")).unwrap_or_default();
        if comm.starts_with("bench-rx") {
            continue;
        }
        let stat = std::fs::read_to_string(t.path().join("stat")).unwrap_or_default();
        // Fields after the ")" of comm: state is field 3; utime 14, stime 15.
        let Some(rest) = stat.rsplit_once(')').map(|x| x.1) else {
            continue;
        };
        let f: Vec<&str> = rest.split_whitespace().collect();
        let ut: f64 = f.get(11).and_then(|v| v.parse().ok()).unwrap_or(0.0);
        let st: f64 = f.get(12).and_then(|v| v.parse().ok()).unwrap_or(0.0);
        total += (ut + st) / tick;
    }
    total
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// Receives one session's RTP until `stop`; counts packets, sequence gaps and CC errors.
fn receive(sock: UdpSocket, play_at: Instant, stop: Instant) -> RxStats {
    let mut st = RxStats::default();
    let mut buf = [0u8; 2048];
    let mut last_seq: Option<u16> = None;
    let mut cc: HashMap<u16, u8> = HashMap::new();
    let _ = sock.set_read_timeout(Some(Duration::from_millis(200)));
    while Instant::now() < stop {
        let Ok(n) = sock.recv(&mut buf) else { continue };
        if n < 12 {
            continue;
        }
        if st.first.is_none() {
            st.first = Some(play_at.elapsed());
        }
        let seq = u16::from_be_bytes([buf[2], buf[3]]);
        if let Some(l) = last_seq {
            st.lost += u64::from(seq.wrapping_sub(l).wrapping_sub(1));
        }
        last_seq = Some(seq);
        st.packets += 1;
        st.bytes += (n - 12) as u64;
        for p in buf[12..n].chunks_exact(188) {
            let pid = (u16::from(p[1] & 0x1f) << 8) | u16::from(p[2]);
            if pid == 0x1fff || p[3] & 0x10 == 0 {
                continue;
            }
            let c = p[3] & 0x0f;
            if let Some(&l) = cc.get(&pid) {
                if c != (l + 1) & 0x0f && c != l {
                    st.cc_errors += 1;
                }
            }
            cc.insert(pid, c);
        }
    }
    st
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// Runs the benchmark for each session count; `distinct` gives sessions different PID subsets
/// instead of `pids=all`.
pub fn run(sessions: &[usize], seconds: f64, distinct: bool) -> anyhow::Result<()> {
    let mut cfg = Config::embedded();
    cfg.server.session_timeout = 60;
    serve::init(&cfg)?;
    let server = serve::start(
        &cfg,
        &serve::ServeOptions {
            rtsp_port: Some(0),
            bind: Some("127.0.0.1".into()),
        },
    )?;
    let port = server.rtsp_port;
    std::thread::spawn(|| glib::MainLoop::new(None, false).run());
    println!(
        "SAT>IP RTP/UDP unicast on 127.0.0.1, mux {MUX} (~20 Mbit/s), pids={}, {seconds} s per point",
        if distinct { "distinct subsets" } else { "all" }
    );
    println!("sessions  cpu%   rss_MiB  rss_KiB/session  lost  cc_err  first_pkt_ms(med/p99)  Mbit/s/session(min/avg)");
    let base_rss = rss_kib();
    for &n in sessions {
        let mut ctl = Vec::new();
        let mut socks = Vec::new();
        for i in 0..n {
            let (rtp, _rtcp) = loop {
                let a = UdpSocket::bind("127.0.0.1:0")?;
                let p = a.local_addr()?.port();
                if p % 2 == 0 && p < u16::MAX {
                    if let Ok(b) = UdpSocket::bind(("127.0.0.1", p + 1)) {
                        break (a, b);
                    }
                }
            };
            let _ = socket2::SockRef::from(&rtp).set_recv_buffer_size(4 << 20);
            let p = rtp.local_addr()?.port();
            let pids = if distinct {
                SUBSETS[i % SUBSETS.len()]
            } else {
                "all"
            };
            let mut s = TcpStream::connect(("127.0.0.1", port))?;
            let head = rtsp(
                &mut s,
                &format!(
                    "SETUP rtsp://127.0.0.1:{port}/?{MUX}&pids={pids} RTSP/1.0\r\nCSeq: 1\r\nTransport: RTP/AVP;unicast;client_port={p}-{}\r\n\r\n",
                    p + 1
                ),
            )
            .with_context(|| format!("SETUP of session {i}"))?;
            let sess = header(&head, "Session")
                .and_then(|v| v.split(';').next())
                .unwrap_or("")
                .to_string();
            let sid = header(&head, "com.ses.streamID").unwrap_or("0").to_string();
            if std::env::var_os("DVB2IP_BENCH_VERBOSE").is_some() {
                eprintln!(
                    "setup {i}: stream {sid} session {sess} client_port {p} transport {:?}",
                    header(&head, "Transport")
                );
            }
            ctl.push((s, sess, sid));
            socks.push((rtp, _rtcp));
        }
        let cpu0 = server_cpu_secs();
        let t0 = Instant::now();
        let stop = t0 + Duration::from_secs_f64(seconds);
        let mut rx = Vec::new();
        for ((s, sess, sid), (rtp, rtcp)) in ctl.iter_mut().zip(socks) {
            let play_at = Instant::now();
            rx.push(
                std::thread::Builder::new()
                    .name("bench-rx".into())
                    .spawn(move || {
                        let _keep = rtcp;
                        receive(rtp, play_at, stop)
                    })?,
            );
            rtsp(
                s,
                &format!(
                    "PLAY rtsp://127.0.0.1:{port}/stream={sid} RTSP/1.0\r\nCSeq: 2\r\nSession: {sess}\r\n\r\n"
                ),
            )?;
        }
        let stats: Vec<RxStats> = rx.into_iter().filter_map(|h| h.join().ok()).collect();
        let wall = t0.elapsed().as_secs_f64();
        let cpu = (server_cpu_secs() - cpu0) / wall * 100.0;
        let rss = rss_kib();
        for (s, sess, sid) in ctl.iter_mut() {
            let _ = rtsp(
                s,
                &format!(
                    "TEARDOWN rtsp://127.0.0.1:{port}/stream={sid} RTSP/1.0\r\nCSeq: 3\r\nSession: {sess}\r\n\r\n"
                ),
            );
        }
        if std::env::var_os("DVB2IP_BENCH_VERBOSE").is_some() {
            for (i, s) in stats.iter().enumerate() {
                eprintln!(
                    "session {i}: {} packets, {} bytes, first {:?}",
                    s.packets, s.bytes, s.first
                );
            }
        }
        let mut firsts: Vec<Duration> = stats.iter().filter_map(|s| s.first).collect();
        firsts.sort();
        let lost: u64 = stats.iter().map(|s| s.lost).sum();
        let cc: u64 = stats.iter().map(|s| s.cc_errors).sum();
        let rates: Vec<f64> = stats
            .iter()
            .map(|s| s.bytes as f64 * 8.0 / seconds / 1e6)
            .collect();
        let min = rates.iter().copied().fold(f64::INFINITY, f64::min);
        let avg = rates.iter().sum::<f64>() / rates.len().max(1) as f64;
        println!(
            "{n:>8}  {cpu:>5.1}  {:>7.1}  {:>15}  {lost:>4}  {cc:>6}  {:>9.1}/{:<9.1}  {min:.2}/{avg:.2}",
            rss as f64 / 1024.0,
            rss.saturating_sub(base_rss) / n.max(1) as u64,
            percentile(&firsts, 0.5).as_secs_f64() * 1000.0,
            percentile(&firsts, 0.99).as_secs_f64() * 1000.0,
        );
        // Let the pool release every frontend before the next point.
        let deadline = Instant::now() + Duration::from_secs(30);
        while gstdvb2ip::tuners::frontends().iter().any(|f| f.users > 0)
            && Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    drop(server);
    Ok(())
}
