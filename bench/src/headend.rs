//! `dvb2ip-bench headend`: a hotel headend's mix in one bounded run on loopback (issue 17).
//!
//! One `dvb2ip serve` child on the emulated tuners, its four muxes tuned (one pids=all
//! reference session per mux, whose per-PID tally gives each service's bit rate), then
//! `--clients` clients joining at `--join-rate` per second: four in five are SAT>IP RTP/UDP
//! unicast sessions (SETUP + PLAY of `?<mux>&pids=<PAT,PMT,video,audio>`), one in five SAT>IP
//! HTTP streams of the same kind of query (`GET /?<mux>&pids=…`, each from its own loopback
//! address), client `i` on service `i % services`, the services being every one of the four
//! muxes (from the embedded configuration's channel list and its multiplexes' PMT/video/audio
//! PIDs). After the last join and a second of settling, the server is measured over the hold
//! window (`--seconds`): CPU (% of one core, `/proc/PID/stat`), CPU per thread, threads (and
//! their peak over the whole run), RSS per client over the tuned idle server; per protocol the
//! loss (RTP sequence gaps, of which `rxdrop` were dropped by this process's own sockets, per
//! `/proc/net/udp`; HTTP connections the server closed), TS continuity errors, clients that
//! got nothing, join → first TS byte median/p99 (join = the client starts: RTSP connect or
//! HTTP connect) and, for RTP, PLAY → first datagram; delivered rate per client over its
//! service's rate (min/median).
//!
//! The same RTP sessions (the HTTP clients' slots left out: it has no HTTP streaming) then run
//! against the in-repo gst-rtsp-server baseline ([`crate::satip_baseline`]), one shared media
//! per service mounted at `/hs/<k>`. Finally each target of issue 17 item 2 is printed with
//! met / NOT MET, and a `headend-summary:` line of key=value pairs for tests.

use std::net::{Ipv4Addr, UdpSocket};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

use crate::http::{self as web, HttpClient, HttpCounters};
use crate::satip::{self, proc_cpu_secs, proc_rss_kib, Rtsp, Server, ServerProc};
use crate::satip_rx::{self as rx, PidTally, Receiver, NONE};

/// What `dvb2ip-bench headend` runs.
#[derive(Debug, Clone)]
pub struct Options {
    /// Clients in all (one in five is HTTP).
    pub clients: usize,
    /// Seconds of the measured hold window.
    pub seconds: f64,
    /// Clients joining per second.
    pub join_rate: f64,
    /// Also run the RTP part against the gst-rtsp-server baseline.
    pub baseline: bool,
    /// Record the dvb2ip server with `perf record -g` over the hold window into this directory.
    pub perf: Option<PathBuf>,
    /// Receiving threads of the RTP clients.
    pub rx_threads: usize,
}

/// One service of the mix.
#[derive(Debug, Clone)]
pub struct Service {
    pub name: String,
    /// Index of its mux among the channel list's (0..4).
    pub mux: usize,
    /// The SAT>IP tuning of its mux (no `pids=`).
    pub mux_query: String,
    /// PAT, PMT, video (TV), audio.
    pub pids: String,
}

impl Service {
    fn query(&self) -> String {
        format!("{}&pids={}", self.mux_query, self.pids)
    }
}

/// Every service of the muxes of the embedded configuration's channel list (one channel per
/// mux), with the PIDs its multiplex carries it on; services that come and go are left out.
pub fn services() -> anyhow::Result<Vec<Service>> {
    let cfg = dvb2ip::config::Config::embedded();
    let mut out = Vec::new();
    for (m, ch) in cfg.channel.iter().enumerate() {
        let params: Vec<&str> = ch
            .query
            .trim_start_matches('?')
            .split('&')
            .filter(|p| !p.starts_with("pids="))
            .collect();
        let value = |k: &str| {
            params
                .iter()
                .find_map(|p| p.strip_prefix(k)?.strip_prefix('='))
                .and_then(|v| v.parse::<f64>().ok())
        };
        let freq = value("freq").context("channel query without freq")?;
        let plp = value("plp");
        let mux = cfg
            .broadcast
            .mux
            .iter()
            .find(|x| {
                (x.frequency_khz as f64 / 1000.0 - freq).abs() < 0.5
                    && plp.is_none_or(|p| f64::from(x.stream_id) == p)
            })
            .with_context(|| format!("no emulated mux for channel {}", ch.name))?;
        for s in mux.service.iter().filter(|s| s.on_air.is_none()) {
            let mut pids = vec![0, s.pmt_pid];
            pids.extend(s.video_pid);
            pids.push(s.audio_pid);
            out.push(Service {
                name: s.name.clone(),
                mux: m,
                mux_query: params.join("&"),
                pids: pids
                    .iter()
                    .map(u16::to_string)
                    .collect::<Vec<_>>()
                    .join(","),
            });
        }
    }
    if out.is_empty() {
        bail!("the embedded configuration has no services");
    }
    Ok(out)
}

/// Mount of service `k` on the baseline server.
pub fn baseline_mount(k: usize) -> String {
    format!("/hs/{k}")
}

/// Mount of mux `m` (every PID: the reference session) on the baseline server.
fn baseline_mux_mount(m: usize) -> String {
    format!("/hm/{m}")
}

/// Launch line of a SAT>IP query on the baseline server: the same tuner pool element with the
/// query's tuning and PIDs, packetised by GStreamer's stock elements (as
/// [`crate::satip_baseline::launch`]).
fn baseline_launch(query: &str) -> anyhow::Result<String> {
    let (_, source) = dvb2ip::channels::tuning_for_query(query).map_err(anyhow::Error::msg)?;
    Ok(format!(
        "( {source} ! tsparse set-timestamps=true ! rtpmp2tpay name=pay0 pt=33 )"
    ))
}

/// The baseline server's mounts of the mix (path, launch line): one per service and one per
/// mux with every PID.
pub fn baseline_mounts() -> anyhow::Result<Vec<(String, String)>> {
    let svcs = services()?;
    let mut out = Vec::new();
    for (k, s) in svcs.iter().enumerate() {
        out.push((baseline_mount(k), baseline_launch(&s.query())?));
    }
    for m in 0..=svcs.iter().map(|s| s.mux).max().unwrap_or(0) {
        let s = svcs.iter().find(|s| s.mux == m).context("mux service")?;
        out.push((
            baseline_mux_mount(m),
            baseline_launch(&format!("{}&pids=all", s.mux_query))?,
        ));
    }
    Ok(out)
}

/// Whether client `i` is an HTTP client (one in five).
fn is_http(i: usize) -> bool {
    i % 5 == 4
}

// ---- measurement helpers ------------------------------------------------------------------------

/// `Udp: RcvbufErrors` of `/proc/net/snmp` (every UDP socket of the machine).
fn udp_rcvbuf_errors() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/net/snmp").ok()?;
    let mut lines = text.lines().filter(|l| l.starts_with("Udp:"));
    let (names, values) = (lines.next()?, lines.next()?);
    let k = names.split_whitespace().position(|n| n == "RcvbufErrors")?;
    values.split_whitespace().nth(k)?.parse().ok()
}

/// Raises this process's soft descriptor limit to the hard one.
fn raise_nofile() {
    // SAFETY: getrlimit/setrlimit on a local struct.
    unsafe {
        let mut r: libc::rlimit = std::mem::zeroed();
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) == 0 && r.rlim_cur < r.rlim_max {
            r.rlim_cur = r.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &r);
        }
    }
}

fn spawn_perf(pid: u32, seconds: f64, data: &std::path::Path) -> Option<std::process::Child> {
    std::process::Command::new("perf")
        .args([
            "record",
            "-g",
            "-F",
            "499",
            "-q",
            "-p",
            &pid.to_string(),
            "-o",
        ])
        .arg(data)
        .args(["--", "sleep", &format!("{seconds}")])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .map_err(|e| eprintln!("perf record: {e} (install linux-perf)"))
        .ok()
}

fn print_perf(data: &std::path::Path) {
    println!("  perf (self time, top symbols; {}):", data.display());
    let out = std::process::Command::new("perf")
        .args([
            "report",
            "--stdio",
            "--no-children",
            "-g",
            "none",
            "--percent-limit",
            "1",
            "--sort",
            "symbol",
            "-i",
        ])
        .arg(data)
        .output();
    match out {
        Ok(o) => {
            for l in String::from_utf8_lossy(&o.stdout)
                .lines()
                .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
                .take(20)
            {
                println!("    {l}");
            }
        }
        Err(e) => println!("    perf report: {e}"),
    }
}

// ---- one run ------------------------------------------------------------------------------------

/// Figures of one protocol's clients.
#[derive(Debug, Clone, Default)]
struct Part {
    n: usize,
    ok: usize,
    /// RTP: packets lost (sequence gaps); HTTP: connections the server closed.
    lost: u64,
    /// RTP: of `lost`, datagrams dropped by this process's own sockets.
    rxdrop: u64,
    cc: u64,
    silent: usize,
    join_ms: Vec<f64>,
    play_ms: Vec<f64>,
    ratios: Vec<f64>,
    rates: Vec<f64>,
}

/// Figures of one server's run.
#[derive(Debug, Clone, Default)]
struct Run {
    name: &'static str,
    rtp: Part,
    http: Part,
    cpu: f64,
    gen_cpu: f64,
    threads: usize,
    threads_peak: usize,
    rss_idle_kib: u64,
    rss_kib: u64,
    rss_per_client_kib: f64,
    snmp_rcvbuf_errors: u64,
    join_late_ms: f64,
    per_thread: Vec<(String, usize, f64)>,
    errors: Vec<String>,
    perf: Option<PathBuf>,
    /// Each service's rate over the window (bit/s).
    rates: Vec<Option<f64>>,
}

impl Run {
    fn clients(&self) -> usize {
        self.rtp.ok + self.http.ok
    }
    fn all_join_ms(&self) -> Vec<f64> {
        let mut v: Vec<f64> = self
            .rtp
            .join_ms
            .iter()
            .chain(&self.http.join_ms)
            .copied()
            .collect();
        v.sort_by(f64::total_cmp);
        v
    }
}

fn sorted(v: &[f64]) -> Vec<f64> {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    v
}

/// SETUP of a dvb2ip SAT>IP unicast session of `query` to `rtp`.
fn dvb2ip_setup(port: u16, query: &str, rtp: &UdpSocket) -> anyhow::Result<satip::Client> {
    let mut rtsp = Rtsp::connect(port)?;
    let tr = satip::transport(rtp)?;
    let r = rtsp.request(
        "SETUP",
        &format!("rtsp://127.0.0.1:{port}/?{query}"),
        &[("Transport", &tr)],
    )?;
    let sid = r.header("com.ses.streamID").unwrap_or("0").to_string();
    Ok(satip::Client {
        rtsp,
        play_url: format!("rtsp://127.0.0.1:{port}/stream={sid}"),
    })
}

/// Runs the mix against `kind`; `rates` gets each service's rate (bit/s) over the hold
/// window, measured on the per-mux pids=all reference sessions.
fn run_mix(
    kind: Server,
    opts: &Options,
    svcs: &[Service],
    rates: &mut Vec<Option<f64>>,
    dir: &std::path::Path,
) -> anyhow::Result<Run> {
    let n = opts.clients;
    let muxes = svcs.iter().map(|s| s.mux).max().unwrap_or(0) + 1;
    let server = ServerProc::spawn_with(
        kind,
        dir,
        n + muxes + 16,
        &[("server", "session_timeout", 3600.into())],
    )?;
    let pid = server.pid();
    let port = server.port;
    let mut run = Run {
        name: match kind {
            Server::Dvb2ip => "dvb2ip",
            Server::Baseline => "baseline",
        },
        ..Default::default()
    };
    // Warm-up: every mux tuned by a played pids=all reference session, whose per-PID tally
    // over the hold window gives the services' rates; on the baseline, each service's shared
    // media prepared as well (SETUP without PLAY, as `satip` does).
    let mut refs: Vec<(satip::Client, UdpSocket, UdpSocket, Option<Receiver>)> = Vec::new();
    let mut warm = Vec::new();
    for m in 0..muxes {
        let s = svcs.iter().find(|s| s.mux == m).context("mux service")?;
        let (a, b) = satip::rtp_pair()?;
        let mut c = match kind {
            Server::Dvb2ip => dvb2ip_setup(port, &format!("{}&pids=all", s.mux_query), &a),
            Server::Baseline => satip::setup(kind, port, "all", &baseline_mux_mount(m), &a),
        }
        .context("reference SETUP")?;
        let r = Receiver::start(std::slice::from_ref(&a), 1, None)?;
        let url = c.play_url.clone();
        c.rtsp
            .request("PLAY", &url, &[])
            .context("reference PLAY")?;
        refs.push((c, a, b, Some(r)));
    }
    if kind == Server::Baseline {
        for (k, s) in svcs.iter().enumerate() {
            let (a, b) = satip::rtp_pair()?;
            let c = satip::setup(kind, port, &s.pids, &baseline_mount(k), &a)
                .with_context(|| format!("baseline warm-up SETUP of {}", s.name))?;
            warm.push((c, a, b));
        }
    }
    std::thread::sleep(satip::WARM_UP);
    run.rss_idle_kib = proc_rss_kib(pid).unwrap_or(0);

    // The clients' sockets and receivers.
    let rtp_idx: Vec<usize> = (0..n).filter(|&i| !is_http(i)).collect();
    let http_idx: Vec<usize> = (0..n).filter(|&i| is_http(i)).collect();
    let mut socks = Vec::with_capacity(rtp_idx.len());
    for _ in &rtp_idx {
        socks.push(satip::rtp_pair()?);
    }
    let rtp_socks: Vec<UdpSocket> = socks
        .iter()
        .map(|(a, _)| a.try_clone())
        .collect::<Result<_, _>>()?;
    let receiver = Receiver::start(&rtp_socks, opts.rx_threads, None)?;
    let epoch = receiver.epoch;
    let http_on = kind == Server::Dvb2ip && !http_idx.is_empty();
    let counters: Arc<Vec<HttpCounters>> = Arc::new(
        (0..http_idx.len())
            .map(|_| HttpCounters {
                first_ns: AtomicU64::new(NONE),
                ..Default::default()
            })
            .collect(),
    );
    let stop_http = Arc::new(AtomicBool::new(false));
    let (joiner, http_thread) = if http_on {
        let (joiner, joining) = web::joining()?;
        let (c, s) = (counters.clone(), stop_http.clone());
        let t = std::thread::Builder::new()
            .name("bench-http-rx".into())
            .spawn(move || web::http_rx_loop(Vec::new(), Some(joining), c, s, epoch))?;
        (Some(joiner), Some(t))
    } else {
        (None, None)
    };
    // The server's thread count, sampled every 10 ms from the first join to the end.
    let peak = Arc::new(AtomicU64::new(0));
    let sampling = Arc::new(AtomicBool::new(true));
    let sampler = {
        let (peak, sampling) = (peak.clone(), sampling.clone());
        std::thread::spawn(move || {
            while sampling.load(Ordering::Relaxed) {
                peak.fetch_max(web::proc_threads(pid) as u64, Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(10));
            }
        })
    };
    let snmp0 = udp_rcvbuf_errors();

    // Joins, one every 1/join_rate s (the baseline skips the HTTP clients' slots).
    let now_ns = || epoch.elapsed().as_nanos() as u64;
    let mut rtp_join = vec![NONE; rtp_idx.len()];
    let mut rtp_play = vec![NONE; rtp_idx.len()];
    let mut http_join = vec![NONE; http_idx.len()];
    let mut joined: Vec<Option<satip::Client>> = (0..rtp_idx.len()).map(|_| None).collect();
    let (mut r, mut h) = (0usize, 0usize);
    let start = Instant::now();
    let slot = Duration::from_secs_f64(1.0 / opts.join_rate);
    let mut late = Duration::ZERO;
    for i in 0..n {
        let at = start + slot * i as u32;
        let now = Instant::now();
        if at > now {
            std::thread::sleep(at - now);
        } else {
            late = late.max(now - at);
        }
        let svc = &svcs[i % svcs.len()];
        if is_http(i) {
            let k = h;
            h += 1;
            let Some(j) = &joiner else { continue };
            http_join[k] = now_ns();
            let from = Ipv4Addr::new(127, 1, (k / 250) as u8, (k % 250) as u8 + 1);
            match web::http_get(from, server.http_port, &svc.query()) {
                Ok(s) => {
                    if let Err(e) = s.set_nonblocking(true) {
                        run.errors.push(format!("HTTP client {k}: {e}"));
                        continue;
                    }
                    j.join(k, HttpClient::new(s));
                }
                Err(e) => run.errors.push(format!("HTTP client {k}: {e:#}")),
            }
        } else {
            let k = r;
            r += 1;
            rtp_join[k] = now_ns();
            let setup = match kind {
                Server::Dvb2ip => dvb2ip_setup(port, &svc.query(), &socks[k].0),
                Server::Baseline => satip::setup(
                    kind,
                    port,
                    &svc.pids,
                    &baseline_mount(i % svcs.len()),
                    &socks[k].0,
                ),
            };
            let mut c = match setup {
                Ok(c) => c,
                Err(e) => {
                    run.errors.push(format!("RTP client {k}: SETUP: {e:#}"));
                    continue;
                }
            };
            rtp_play[k] = now_ns();
            let url = c.play_url.clone();
            if let Err(e) = c.rtsp.request("PLAY", &url, &[]) {
                run.errors.push(format!("RTP client {k}: PLAY: {e:#}"));
                continue;
            }
            joined[k] = Some(c);
        }
    }
    run.join_late_ms = late.as_secs_f64() * 1e3;
    std::thread::sleep(satip::SETTLE);

    // The hold window.
    let rtp_bytes = || -> Vec<u64> {
        receiver
            .sessions
            .iter()
            .map(|s| s.bytes.load(Ordering::Relaxed))
            .collect()
    };
    let http_bytes = || -> Vec<u64> {
        counters
            .iter()
            .map(|c| c.bytes.load(Ordering::Relaxed))
            .collect()
    };
    let perf_data = match (&opts.perf, kind) {
        (Some(d), Server::Dvb2ip) => {
            std::fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
            let data = d.join("headend.perf.data");
            spawn_perf(pid, opts.seconds, &data).map(|c| (c, data))
        }
        _ => None,
    };
    // The reference sessions' tallies cover the window.
    for (_, sock, _, r) in refs.iter_mut() {
        if let Some(old) = r.take() {
            old.stop();
        }
        *r = Some(Receiver::start(std::slice::from_ref(sock), 1, Some(0))?);
    }
    let me = std::process::id();
    let (cpu0, gen0, thr0, rb0, hb0, t0) = (
        proc_cpu_secs(pid),
        proc_cpu_secs(me),
        web::thread_cpu(pid),
        rtp_bytes(),
        http_bytes(),
        Instant::now(),
    );
    std::thread::sleep(Duration::from_secs_f64(opts.seconds));
    let (cpu1, gen1, thr1, rb1, hb1, dt) = (
        proc_cpu_secs(pid),
        proc_cpu_secs(me),
        web::thread_cpu(pid),
        rtp_bytes(),
        http_bytes(),
        t0.elapsed().as_secs_f64(),
    );
    if let Some((mut child, data)) = perf_data {
        let _ = child.wait();
        run.perf = Some(data);
    }
    match (cpu0, cpu1) {
        (Some(a), Some(b)) => run.cpu = (b - a) / dt * 100.0,
        _ => run.errors.push("server process vanished".into()),
    }
    if let (Some(a), Some(b)) = (gen0, gen1) {
        run.gen_cpu = (b - a) / dt * 100.0;
    }
    run.per_thread = web::per_thread(&thr0, &thr1, dt);
    run.threads = web::proc_threads(pid);
    run.rss_kib = proc_rss_kib(pid).unwrap_or(0);
    sampling.store(false, Ordering::Relaxed);
    let _ = sampler.join();
    run.threads_peak = (peak.load(Ordering::Relaxed) as usize).max(run.threads);
    stop_http.store(true, Ordering::Relaxed);
    if let Some(t) = http_thread {
        let _ = t.join();
    }
    let sessions = receiver.sessions.clone();
    receiver.stop();
    let ports: Vec<u16> = rtp_socks
        .iter()
        .filter_map(|s| s.local_addr().ok().map(|a| a.port()))
        .collect();
    run.rtp.rxdrop = rx::socket_drops(&ports);
    if let (Some(a), Some(b)) = (snmp0, udp_rcvbuf_errors()) {
        run.snmp_rcvbuf_errors = b.saturating_sub(a);
    }
    let tallies: Vec<Option<PidTally>> = refs
        .into_iter()
        .map(|(_, _, _, r)| r.and_then(Receiver::stop))
        .collect();
    *rates = svcs
        .iter()
        .map(|s| {
            let pids: Vec<u16> = s.pids.split(',').filter_map(|p| p.parse().ok()).collect();
            tallies.get(s.mux)?.as_ref()?.rate_of(&pids)
        })
        .collect();
    run.rates = rates.clone();

    // Per client.
    run.rtp.n = rtp_idx.len();
    for (k, &i) in rtp_idx.iter().enumerate() {
        if joined[k].is_none() {
            continue;
        }
        let s = &sessions[k];
        run.rtp.ok += 1;
        run.rtp.lost += s.lost.load(Ordering::Relaxed);
        run.rtp.cc += s.cc_errors.load(Ordering::Relaxed);
        let first = s.first_ns.load(Ordering::Relaxed);
        if first == NONE {
            run.rtp.silent += 1;
            continue;
        }
        run.rtp
            .join_ms
            .push(first.saturating_sub(rtp_join[k]) as f64 / 1e6);
        run.rtp
            .play_ms
            .push(first.saturating_sub(rtp_play[k]) as f64 / 1e6);
        let rate = (rb1[k] - rb0[k]) as f64 * 8.0 / dt;
        run.rtp.rates.push(rate / 1e6);
        if let Some(Some(e)) = rates.get(i % svcs.len()) {
            run.rtp.ratios.push(rate / e);
        }
    }
    if kind == Server::Dvb2ip {
        run.http.n = http_idx.len();
    }
    for (k, &i) in http_idx.iter().enumerate() {
        if !http_on {
            break;
        }
        let c = &counters[k];
        if c.status.load(Ordering::Relaxed) == 200 {
            run.http.ok += 1;
        }
        run.http.cc += c.cc_errors.load(Ordering::Relaxed);
        if c.closed.load(Ordering::Relaxed) {
            run.http.lost += 1;
        }
        let first = c.first_ns.load(Ordering::Relaxed);
        if first == NONE {
            run.http.silent += 1;
            continue;
        }
        run.http
            .join_ms
            .push(first.saturating_sub(http_join[k]) as f64 / 1e6);
        let rate = (hb1[k] - hb0[k]) as f64 * 8.0 / dt;
        run.http.rates.push(rate / 1e6);
        if let Some(Some(e)) = rates.get(i % svcs.len()) {
            run.http.ratios.push(rate / e);
        }
    }
    run.rss_per_client_kib =
        run.rss_kib.saturating_sub(run.rss_idle_kib) as f64 / run.clients().max(1) as f64;

    // TEARDOWN without waiting for answers; stopping the server ends the rest.
    for c in joined.iter_mut().flatten() {
        let url = c.play_url.clone();
        let _ = c.rtsp.send("TEARDOWN", &url, &[]);
    }
    drop(joined);
    drop(warm);
    drop(server);
    Ok(run)
}

// ---- output -------------------------------------------------------------------------------------

fn med_p99(v: &[f64]) -> String {
    let v = sorted(v);
    if v.is_empty() {
        return "-".into();
    }
    format!(
        "{:.2}/{:.2}",
        satip::percentile(&v, 0.5),
        satip::percentile(&v, 0.99)
    )
}

fn min_med(v: &[f64]) -> String {
    let v = sorted(v);
    match v.first() {
        None => "-".into(),
        Some(m) => format!("{m:.3}/{:.3}", satip::percentile(&v, 0.5)),
    }
}

fn header() -> String {
    format!(
        "{:>16} {:>5} {:>5} {:>8} {:>7} {:>6} {:>6} {:>17} {:>17} {:>15} {:>15}",
        "",
        "N",
        "ok",
        "lost",
        "rxdrop",
        "cc_err",
        "silent",
        "join_ms med/p99",
        "play_ms med/p99",
        "Mbit/s min/med",
        "rate/svc min/med"
    )
}

fn row(name: &str, p: &Part) -> String {
    format!(
        "{:>16} {:>5} {:>5} {:>8} {:>7} {:>6} {:>6} {:>17} {:>17} {:>15} {:>15}",
        name,
        p.n,
        p.ok,
        p.lost,
        p.rxdrop,
        p.cc,
        p.silent,
        med_p99(&p.join_ms),
        med_p99(&p.play_ms),
        min_med(&p.rates),
        min_med(&p.ratios),
    )
}

fn print_run(r: &Run) {
    println!();
    println!(
        "== {}: server CPU {:.1} % of one core (load generator {:.1} %), threads {} (peak {}), RSS {:.1} MiB idle -> {:.1} MiB, {:.1} KiB per client ==",
        r.name,
        r.cpu,
        r.gen_cpu,
        r.threads,
        r.threads_peak,
        r.rss_idle_kib as f64 / 1024.0,
        r.rss_kib as f64 / 1024.0,
        r.rss_per_client_kib
    );
    println!("{}", header());
    println!("{}", row(&format!("{} RTP/UDP", r.name), &r.rtp));
    if r.http.n > 0 {
        println!("{}", row(&format!("{} HTTP", r.name), &r.http));
    }
    let rates: Vec<String> = r
        .rates
        .iter()
        .map(|x| x.map_or("?".into(), |x| format!("{:.2}", x / 1e6)))
        .collect();
    println!(
        "  service rates over the window (Mbit/s, reference pids=all sessions): {}",
        rates.join(" ")
    );
    let top: Vec<String> = r
        .per_thread
        .iter()
        .filter(|t| t.2 >= 0.5)
        .take(10)
        .map(|(name, count, cpu)| format!("{name}×{count} {cpu:.1}%"))
        .collect();
    println!("  server CPU by thread: {}", top.join(", "));
    println!(
        "  UDP receive-buffer errors on this machine over the run (/proc/net/snmp): {}; joins at most {:.1} ms behind schedule",
        r.snmp_rcvbuf_errors, r.join_late_ms
    );
    for e in r.errors.iter().take(5) {
        println!("  error: {e}");
    }
    if r.errors.len() > 5 {
        println!("  ... {} errors in all", r.errors.len());
    }
    if let Some(d) = &r.perf {
        print_perf(d);
    }
}

fn verdict(ok: bool) -> &'static str {
    if ok {
        "met"
    } else {
        "NOT MET"
    }
}

/// Prints the targets of issue 17 item 2 for the dvb2ip run and the summary line.
fn print_targets(r: &Run, n: usize) {
    let join = r.all_join_ms();
    let join_med = satip::percentile(&join, 0.5);
    let join_p99 = satip::percentile(&join, 0.99);
    // Loss the server caused: sequence gaps not explained by this process's socket drops.
    let server_lost = r.rtp.lost.saturating_sub(r.rtp.rxdrop);
    let clean = r.clients() == n
        && r.rtp.silent + r.http.silent == 0
        && server_lost == 0
        && r.http.lost == 0
        && r.rtp.cc + r.http.cc == 0;
    println!();
    println!("targets (issue 17 item 2, dvb2ip):");
    println!(
        "  0 loss and 0 CC errors for all {n} clients: {} [{} of {n} playing; RTP lost {} of which {} dropped by the receiver's own sockets; HTTP closed {}; CC RTP {} / HTTP {}; silent {}]",
        verdict(clean),
        r.clients(),
        r.rtp.lost,
        r.rtp.rxdrop,
        r.http.lost,
        r.rtp.cc,
        r.http.cc,
        r.rtp.silent + r.http.silent
    );
    println!(
        "  server CPU <= 100 % of one core: {} ({:.1} %)",
        verdict(r.cpu <= 100.0),
        r.cpu
    );
    println!(
        "  RSS <= 32 KiB per client: {} ({:.1} KiB)",
        verdict(r.rss_per_client_kib <= 32.0),
        r.rss_per_client_kib
    );
    println!(
        "  threads < 32 whatever the client count: {} ({} in the window, peak {})",
        verdict(r.threads_peak < 32),
        r.threads,
        r.threads_peak
    );
    println!(
        "  join -> first packet median <= 5 ms (muxes tuned): {} (median {join_med:.2} ms, p99 {join_p99:.2} ms)",
        verdict(join_med <= 5.0)
    );
    let ratios = sorted(&[r.rtp.ratios.clone(), r.http.ratios.clone()].concat());
    println!(
        "headend-summary: clients={n} rtp={} http={} rtp_ok={} http_ok={} rtp_lost={} rtp_rxdrop={} http_closed={} rtp_cc={} http_cc={} silent={} cpu={:.1} threads={} threads_peak={} rss_per_client_kib={:.1} join_med_ms={:.2} join_p99_ms={:.2} ratio_min={:.3} ratio_med={:.3} clean={}",
        r.rtp.n,
        r.http.n,
        r.rtp.ok,
        r.http.ok,
        r.rtp.lost,
        r.rtp.rxdrop,
        r.http.lost,
        r.rtp.cc,
        r.http.cc,
        r.rtp.silent + r.http.silent,
        r.cpu,
        r.threads,
        r.threads_peak,
        r.rss_per_client_kib,
        join_med,
        join_p99,
        ratios.first().copied().unwrap_or(f64::NAN),
        satip::percentile(&ratios, 0.5),
        u8::from(clean)
    );
}

/// Runs the mix against dvb2ip, then (with `baseline`) its RTP part against the baseline.
pub fn run(opts: &Options) -> anyhow::Result<()> {
    if opts.clients == 0 {
        bail!("--clients must be positive");
    }
    if !(opts.seconds > 0.0 && opts.seconds <= 600.0) {
        bail!("--seconds must be in (0, 600]");
    }
    if !(opts.join_rate > 0.0 && opts.join_rate <= 10_000.0) {
        bail!("--join-rate must be in (0, 10000]");
    }
    raise_nofile();
    let svcs = services()?;
    let n_http = (0..opts.clients).filter(|&i| is_http(i)).count();
    println!(
        "dvb2ip-bench headend: {} clients ({} RTP/UDP unicast, {n_http} HTTP) joining at {}/s over {} services of {} muxes, {} s hold, {} CPUs, {} build",
        opts.clients,
        opts.clients - n_http,
        opts.join_rate,
        svcs.len(),
        svcs.iter().map(|s| s.mux).max().unwrap_or(0) + 1,
        opts.seconds,
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        if cfg!(debug_assertions) { "debug" } else { "release" },
    );
    for (k, s) in svcs.iter().enumerate() {
        println!("  service {k}: {} ?{}", s.name, s.query());
    }
    let dir = std::env::temp_dir().join(format!("dvb2ip-bench-headend-{}", std::process::id()));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let started = Instant::now();
    let mut rates = Vec::new();
    let ours = run_mix(Server::Dvb2ip, opts, &svcs, &mut rates, &dir);
    let base = if opts.baseline {
        Some(run_mix(Server::Baseline, opts, &svcs, &mut rates, &dir))
    } else {
        None
    };
    let _ = std::fs::remove_dir_all(&dir);
    let ours = ours?;
    print_run(&ours);
    match base {
        Some(Ok(b)) => {
            print_run(&b);
            println!(
                "  dvb2ip vs baseline, RTP part: CPU {:.1} % (with HTTP) vs {:.1} %; threads {} vs {}; KiB/client {:.1} vs {:.1}",
                ours.cpu,
                b.cpu,
                ours.threads_peak,
                b.threads_peak,
                ours.rss_per_client_kib,
                b.rss_per_client_kib
            );
        }
        Some(Err(e)) => println!("baseline run failed: {e:#}"),
        None => {}
    }
    println!();
    println!(
        "columns: join_ms = client starts (RTSP/HTTP connect) -> first TS byte; play_ms = PLAY sent -> first datagram; lost = RTP packets never received (rxdrop of them dropped by this process's sockets), HTTP connections the server closed;"
    );
    println!(
        "         rate/svc = delivered rate over the hold window / the service's rate on its mux's pids=all reference session over the same window"
    );
    print_targets(&ours, opts.clients);
    println!("total run time {:.0} s", started.elapsed().as_secs_f64());
    Ok(())
}
