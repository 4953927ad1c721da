//! `dvb2ip-bench http`: N SAT>IP HTTP streaming clients of one ~20 Mbit/s multiplex against
//! N RTP/UDP unicast sessions of the same multiplex, in one run, each against a fresh
//! `dvb2ip serve` process on 127.0.0.1 (the binary beside this one, or `DVB2IP_BENCH_SERVER`).
//!
//! Per point it prints the server's CPU (% of one core), its threads, RSS per client over the
//! tuned idle server, TS continuity errors, connections the server closed early (HTTP) or RTP
//! packets lost, clients that got nothing, request → first TS byte median/p99 and the
//! delivered rate per client; then the server's CPU per thread name over the window
//! (`/proc/PID/task/*/stat`) and the HTTP/RTP CPU ratio against the target (≤ 1.3×).
//!
//! The HTTP clients are this process's: one epoll thread reads every socket (non-blocking),
//! parses the response head, undoes chunked transfer coding when the server uses it, and
//! checks continuity counters over the TS.

use std::collections::BTreeMap;
use std::io::Write;
use std::net::{TcpStream, UdpSocket};
use std::os::fd::AsRawFd;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

use crate::satip::{self, proc_cpu_secs, proc_rss_kib, Server, ServerProc};
use crate::satip_baseline::{MUX_KHZ, SATIP_MUX};
use crate::satip_rx::{self as rx, Receiver, NONE};

/// What `dvb2ip-bench http` runs.
#[derive(Debug, Clone)]
pub struct Options {
    pub clients: usize,
    pub seconds: f64,
    /// Also measure N RTP/UDP sessions of the same mux (the comparison).
    pub rtp: bool,
    /// Record the server with `perf record -g` over each window into this directory and print
    /// the hottest symbols.
    pub perf: Option<std::path::PathBuf>,
    /// HTTP clients send their requests all at once instead of joining one after the other.
    pub burst: bool,
    /// The PIDs every client asks for (`all`, or a list such as one service's).
    pub pids: String,
}

/// One measured point.
#[derive(Debug, Clone, Default)]
struct Point {
    what: &'static str,
    n: usize,
    ok: usize,
    cpu: f64,
    threads: usize,
    /// Most threads seen while clients joined and played (HTTP point).
    threads_peak: usize,
    rss_kib: u64,
    rss_per_client_kib: f64,
    cc: u64,
    /// HTTP: connections the server closed during the run; RTP: packets lost.
    lost: u64,
    silent: usize,
    first_med_ms: f64,
    first_p99_ms: f64,
    rate_min: f64,
    rate_med: f64,
    /// CPU % per thread name over the window, and how many threads have that name.
    per_thread: Vec<(String, usize, f64)>,
    /// The `perf record` data of the window.
    perf: Option<std::path::PathBuf>,
}

// ---- /proc per thread --------------------------------------------------------------------------

/// (name, CPU seconds) of every live thread of `pid`, by thread id.
pub(crate) fn thread_cpu(pid: u32) -> BTreeMap<u32, (String, f64)> {
    // SAFETY: sysconf has no preconditions.
    let tick = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    let mut out = BTreeMap::new();
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return out;
    };
    for e in dir.flatten() {
        let Some(tid) = e.file_name().to_str().and_then(|t| t.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else {
            continue;
        };
        let (Some(open), Some((_, rest))) = (stat.find('('), stat.rsplit_once(')')) else {
            continue;
        };
        let name = stat[open + 1..stat.len() - rest.len() - 1].to_string();
        let f: Vec<&str> = rest.split_whitespace().collect();
        let (Some(u), Some(s)) = (
            f.get(11).and_then(|v| v.parse::<f64>().ok()),
            f.get(12).and_then(|v| v.parse::<f64>().ok()),
        ) else {
            continue;
        };
        out.insert(tid, (name, (u + s) / tick));
    }
    out
}

/// CPU % per thread name between two [`thread_cpu`] samples over `dt` seconds, busiest first.
pub(crate) fn per_thread(
    a: &BTreeMap<u32, (String, f64)>,
    b: &BTreeMap<u32, (String, f64)>,
    dt: f64,
) -> Vec<(String, usize, f64)> {
    let mut by_name: BTreeMap<String, (usize, f64)> = BTreeMap::new();
    for (tid, (name, cpu)) in b {
        let before = a.get(tid).map_or(0.0, |x| x.1);
        // Thread names end in a number per instance (e.g. `tokio-runtime-w`): group them.
        let key = name
            .trim_end_matches(|c: char| c.is_ascii_digit())
            .to_string();
        let e = by_name.entry(key).or_default();
        e.0 += 1;
        e.1 += (cpu - before) / dt * 100.0;
    }
    let mut v: Vec<_> = by_name.into_iter().map(|(k, (n, c))| (k, n, c)).collect();
    v.sort_by(|x, y| y.2.total_cmp(&x.2));
    v
}

pub(crate) fn proc_threads(pid: u32) -> usize {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Threads:"))
                .and_then(|v| v.trim().parse().ok())
        })
        .unwrap_or(0)
}

// ---- HTTP clients ------------------------------------------------------------------------------

/// One HTTP client's counters (written by the receiving thread only).
#[derive(Default)]
pub(crate) struct HttpCounters {
    pub(crate) bytes: AtomicU64,
    pub(crate) cc_errors: AtomicU64,
    pub(crate) first_ns: AtomicU64,
    pub(crate) closed: AtomicBool,
    pub(crate) status: AtomicU64,
}

/// Where a client's parser is.
pub(crate) enum Phase {
    Head(Vec<u8>),
    Body {
        chunked: bool,
        /// Bytes left in the current chunk (chunked coding).
        chunk_left: usize,
        /// A chunk-size line being read.
        line: Vec<u8>,
        /// TS bytes not yet forming a whole packet.
        carry: Vec<u8>,
    },
}

pub(crate) struct HttpClient {
    sock: TcpStream,
    phase: Phase,
    cc: Box<[u8]>,
}

impl HttpClient {
    /// A client whose request was sent on `sock` (its answer not read yet).
    pub(crate) fn new(sock: TcpStream) -> HttpClient {
        HttpClient {
            sock,
            phase: Phase::Head(Vec::new()),
            cc: vec![0xff; 8192].into_boxed_slice(),
        }
    }

    /// Takes `data` read from the socket; returns TS bytes and CC errors.
    fn take(&mut self, mut data: &[u8], c: &HttpCounters) -> (u64, u64) {
        let (mut ts_bytes, mut cc_err) = (0u64, 0u64);
        loop {
            match &mut self.phase {
                Phase::Head(h) => {
                    h.extend_from_slice(data);
                    let Some(end) = h.windows(4).position(|w| w == b"\r\n\r\n") else {
                        return (0, 0);
                    };
                    let head = String::from_utf8_lossy(&h[..end]).to_ascii_lowercase();
                    let status = head
                        .split_whitespace()
                        .nth(1)
                        .and_then(|s| s.parse().ok())
                        .unwrap_or(0);
                    c.status.store(status, Ordering::Relaxed);
                    let chunked = head.contains("transfer-encoding: chunked");
                    let rest = h[end + 4..].to_vec();
                    self.phase = Phase::Body {
                        chunked,
                        chunk_left: 0,
                        line: Vec::new(),
                        carry: Vec::new(),
                    };
                    let (b, e) = self.take(&rest, c);
                    return (ts_bytes + b, cc_err + e);
                }
                Phase::Body {
                    chunked,
                    chunk_left,
                    line,
                    carry,
                } => {
                    if data.is_empty() {
                        return (ts_bytes, cc_err);
                    }
                    let payload: &[u8] = if !*chunked {
                        let d = data;
                        data = &[];
                        d
                    } else if *chunk_left > 0 {
                        let n = (*chunk_left).min(data.len());
                        let d = &data[..n];
                        *chunk_left -= n;
                        data = &data[n..];
                        d
                    } else {
                        // A size line (after the CRLF that ends the previous chunk).
                        let Some(nl) = data.iter().position(|&b| b == b'\n') else {
                            line.extend_from_slice(data);
                            return (ts_bytes, cc_err);
                        };
                        line.extend_from_slice(&data[..nl]);
                        data = &data[nl + 1..];
                        let text = String::from_utf8_lossy(line).trim().to_string();
                        line.clear();
                        if text.is_empty() {
                            continue;
                        }
                        *chunk_left =
                            usize::from_str_radix(text.split(';').next().unwrap_or("0").trim(), 16)
                                .unwrap_or(0);
                        continue;
                    };
                    ts_bytes += payload.len() as u64;
                    carry.extend_from_slice(payload);
                    let whole = carry.len() / 188 * 188;
                    cc_err += rx::check_ts(&carry[..whole], &mut self.cc, None);
                    carry.drain(..whole);
                }
            }
        }
    }
}

/// Hands clients to a running [`http_rx_loop`] (its [`Joining`] end) and wakes it.
pub(crate) struct Joiner {
    tx: std::sync::mpsc::Sender<(usize, HttpClient)>,
    wake: Arc<std::os::fd::OwnedFd>,
}

/// The [`http_rx_loop`] end of a [`Joiner`].
pub(crate) struct Joining {
    rx: std::sync::mpsc::Receiver<(usize, HttpClient)>,
    wake: Arc<std::os::fd::OwnedFd>,
}

/// A channel of late clients to an [`http_rx_loop`].
pub(crate) fn joining() -> std::io::Result<(Joiner, Joining)> {
    // SAFETY: eventfd has no preconditions; the descriptor is owned from here on.
    let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    let wake =
        Arc::new(unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) });
    let (tx, rx) = std::sync::mpsc::channel();
    Ok((
        Joiner {
            tx,
            wake: wake.clone(),
        },
        Joining { rx, wake },
    ))
}

impl Joiner {
    /// Client `k` (its index in the loop's counters, its socket non-blocking) joins the loop.
    pub(crate) fn join(&self, k: usize, c: HttpClient) {
        if self.tx.send((k, c)).is_ok() {
            let one = 1u64.to_ne_bytes();
            // SAFETY: an 8-byte write to the eventfd this joiner keeps open.
            unsafe { libc::write(self.wake.as_raw_fd(), one.as_ptr().cast(), 8) };
        }
    }
}

/// Index of the [`Joining`] wake-up in the loop's epoll set.
const WAKE: u64 = u64::MAX;

/// Reads every client until `stop`: `clients` (client `k` counts in `counters[k]`), and those
/// a [`Joiner`] sends later.
pub(crate) fn http_rx_loop(
    clients: Vec<HttpClient>,
    joining: Option<Joining>,
    counters: Arc<Vec<HttpCounters>>,
    stop: Arc<AtomicBool>,
    epoch: Instant,
) {
    // SAFETY: epoll on descriptors `clients` keeps open until the end of this function.
    let ep = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
    if ep < 0 {
        return;
    }
    let mut clients: Vec<Option<HttpClient>> = clients.into_iter().map(Some).collect();
    let add = |clients: &mut Vec<Option<HttpClient>>, k: usize, c: HttpClient| {
        let mut ev = libc::epoll_event {
            events: libc::EPOLLIN as u32,
            u64: k as u64,
        };
        unsafe { libc::epoll_ctl(ep, libc::EPOLL_CTL_ADD, c.sock.as_raw_fd(), &mut ev) };
        if clients.len() <= k {
            clients.resize_with(k + 1, || None);
        }
        clients[k] = Some(c);
    };
    for k in 0..clients.len() {
        if let Some(c) = clients[k].take() {
            add(&mut clients, k, c);
        }
    }
    if let Some(j) = &joining {
        let mut ev = libc::epoll_event {
            events: libc::EPOLLIN as u32,
            u64: WAKE,
        };
        unsafe { libc::epoll_ctl(ep, libc::EPOLL_CTL_ADD, j.wake.as_raw_fd(), &mut ev) };
    }
    let mut buf = vec![0u8; 256 << 10];
    let mut events = vec![libc::epoll_event { events: 0, u64: 0 }; 256];
    while !stop.load(Ordering::Relaxed) {
        let n = unsafe { libc::epoll_wait(ep, events.as_mut_ptr(), events.len() as i32, 50) };
        if n <= 0 {
            continue;
        }
        let now = epoch.elapsed().as_nanos() as u64;
        for ev in &events[..n as usize] {
            if ev.u64 == WAKE {
                if let Some(j) = &joining {
                    let mut v = [0u8; 8];
                    unsafe { libc::read(j.wake.as_raw_fd(), v.as_mut_ptr().cast(), 8) };
                    while let Ok((k, c)) = j.rx.try_recv() {
                        add(&mut clients, k, c);
                    }
                }
                continue;
            }
            let k = ev.u64 as usize;
            let c = &counters[k];
            let Some(cl) = clients.get_mut(k).and_then(Option::as_mut) else {
                continue;
            };
            let got = unsafe {
                libc::recv(
                    cl.sock.as_raw_fd(),
                    buf.as_mut_ptr().cast(),
                    buf.len(),
                    libc::MSG_DONTWAIT,
                )
            };
            if got == 0
                || (got < 0 && std::io::Error::last_os_error().raw_os_error() != Some(libc::EAGAIN))
            {
                c.closed.store(true, Ordering::Relaxed);
                unsafe {
                    libc::epoll_ctl(
                        ep,
                        libc::EPOLL_CTL_DEL,
                        cl.sock.as_raw_fd(),
                        std::ptr::null_mut(),
                    )
                };
                continue;
            }
            if got < 0 {
                continue;
            }
            let (b, e) = cl.take(&buf[..got as usize], c);
            if b > 0 {
                if c.first_ns.load(Ordering::Relaxed) == NONE {
                    c.first_ns.store(now, Ordering::Relaxed);
                }
                c.bytes.fetch_add(b, Ordering::Relaxed);
            }
            if e > 0 {
                c.cc_errors.fetch_add(e, Ordering::Relaxed);
            }
        }
    }
    unsafe { libc::close(ep) };
}

// ---- points ------------------------------------------------------------------------------------

/// Samples the server over the window: CPU, per-thread CPU, threads, RSS (and a `perf`
/// profile when asked).
struct Window {
    cpu0: Option<f64>,
    threads0: BTreeMap<u32, (String, f64)>,
    t0: Instant,
    perf: Option<(std::process::Child, std::path::PathBuf)>,
}

impl Window {
    fn start(pid: u32, seconds: f64, perf: Option<std::path::PathBuf>) -> Window {
        let perf = perf.and_then(|data| {
            let child = std::process::Command::new("perf")
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
                .arg(&data)
                .args(["--", "sleep", &format!("{seconds}")])
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .map_err(|e| eprintln!("perf record: {e} (install linux-perf)"))
                .ok()?;
            Some((child, data))
        });
        Window {
            cpu0: proc_cpu_secs(pid),
            threads0: thread_cpu(pid),
            t0: Instant::now(),
            perf,
        }
    }

    fn finish(self, pid: u32, p: &mut Point) -> f64 {
        let dt = self.t0.elapsed().as_secs_f64();
        if let Some((mut child, data)) = self.perf {
            let _ = child.wait();
            p.perf = Some(data);
        }
        if let (Some(a), Some(b)) = (self.cpu0, proc_cpu_secs(pid)) {
            p.cpu = (b - a) / dt * 100.0;
        }
        p.per_thread = per_thread(&self.threads0, &thread_cpu(pid), dt);
        p.threads = proc_threads(pid);
        p.rss_kib = proc_rss_kib(pid).unwrap_or(0);
        dt
    }
}

/// A streaming request from local address `from` (one address per client, as the rooms of a
/// headend have: the server caps connections per address).
pub(crate) fn http_get(
    from: std::net::Ipv4Addr,
    port: u16,
    query: &str,
) -> anyhow::Result<TcpStream> {
    let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)?;
    s.bind(&std::net::SocketAddr::from((from, 0)).into())
        .with_context(|| format!("binding {from}"))?;
    s.connect(&std::net::SocketAddr::from((std::net::Ipv4Addr::LOCALHOST, port)).into())
        .context("HTTP connect")?;
    let s: TcpStream = s.into();
    s.set_nodelay(true)?;
    let _ = socket2::SockRef::from(&s).set_recv_buffer_size(1 << 20);
    (&s).write_all(
        format!(
            "GET /?{query} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUser-Agent: dvb2ip-bench\r\n\r\n"
        )
        .as_bytes(),
    )?;
    Ok(s)
}

fn finish_rates(p: &mut Point, firsts: &mut [f64], rates: &mut [f64]) {
    firsts.sort_by(f64::total_cmp);
    rates.sort_by(f64::total_cmp);
    p.first_med_ms = satip::percentile(firsts, 0.5);
    p.first_p99_ms = satip::percentile(firsts, 0.99);
    p.rate_min = rates.first().copied().unwrap_or(f64::NAN);
    p.rate_med = satip::percentile(rates, 0.5);
}

fn http_point(
    n: usize,
    seconds: f64,
    dir: &Path,
    perf: Option<std::path::PathBuf>,
    burst: bool,
    pids: &str,
) -> anyhow::Result<Point> {
    let server = ServerProc::spawn(Server::Dvb2ip, dir, n + 8)?;
    let port = server.http_port;
    // Warm-up: a client of PAT only tunes the mux.
    let warm = http_get(
        std::net::Ipv4Addr::LOCALHOST,
        port,
        &format!("{SATIP_MUX}&pids=0"),
    )?;
    std::thread::sleep(satip::WARM_UP);
    let idle_rss = proc_rss_kib(server.pid()).unwrap_or(0);
    let epoch = Instant::now();
    let counters: Arc<Vec<HttpCounters>> = Arc::new(
        (0..n)
            .map(|_| HttpCounters {
                first_ns: AtomicU64::new(NONE),
                ..Default::default()
            })
            .collect(),
    );
    let mut clients = Vec::with_capacity(n);
    let mut sent_ns = vec![NONE; n];
    let mut p = Point {
        what: "HTTP",
        n,
        ..Default::default()
    };
    // The server's thread count, sampled every 10 ms while clients join and play.
    let peak = Arc::new(AtomicU64::new(0));
    let sampling = Arc::new(AtomicBool::new(true));
    let sampler = {
        let (peak, sampling, pid) = (peak.clone(), sampling.clone(), server.pid());
        std::thread::spawn(move || {
            while sampling.load(Ordering::Relaxed) {
                peak.fetch_max(proc_threads(pid) as u64, Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(10));
            }
        })
    };
    let connect = |i: usize| -> anyhow::Result<HttpClient> {
        let from = std::net::Ipv4Addr::new(127, 1, (i / 250) as u8, (i % 250) as u8 + 1);
        let s = http_get(from, port, &format!("{SATIP_MUX}&pids={pids}"))
            .with_context(|| format!("client {i}"))?;
        s.set_read_timeout(Some(satip::RTSP_TIMEOUT))?;
        Ok(HttpClient {
            sock: s,
            phase: Phase::Head(Vec::new()),
            cc: vec![0xff; 8192].into_boxed_slice(),
        })
    };
    // Reads a client until its first TS byte (bounded).
    let first_byte = |cl: &mut HttpClient, c: &HttpCounters| -> anyhow::Result<()> {
        let mut buf = vec![0u8; 64 << 10];
        while c.first_ns.load(Ordering::Relaxed) == NONE && !c.closed.load(Ordering::Relaxed) {
            match std::io::Read::read(&mut cl.sock, &mut buf) {
                Ok(0) | Err(_) => c.closed.store(true, Ordering::Relaxed),
                Ok(got) => {
                    let (b, e) = cl.take(&buf[..got], c);
                    c.cc_errors.fetch_add(e, Ordering::Relaxed);
                    if b > 0 {
                        c.bytes.fetch_add(b, Ordering::Relaxed);
                        c.first_ns
                            .store(epoch.elapsed().as_nanos() as u64, Ordering::Relaxed);
                    }
                }
            }
        }
        cl.sock.set_nonblocking(true)?;
        Ok(())
    };
    if burst {
        // Every request at once; first bytes read afterwards (join latency not measured).
        for (i, sent) in sent_ns.iter_mut().enumerate() {
            *sent = epoch.elapsed().as_nanos() as u64;
            clients.push(connect(i)?);
        }
        for (i, cl) in clients.iter_mut().enumerate() {
            first_byte(cl, &counters[i])?;
        }
    } else {
        // Joins are sequential, as the RTP point's PLAYs: each client waits for its first TS
        // byte before the next one joins.
        for (i, sent) in sent_ns.iter_mut().enumerate() {
            *sent = epoch.elapsed().as_nanos() as u64;
            let mut cl = connect(i)?;
            first_byte(&mut cl, &counters[i])?;
            clients.push(cl);
        }
    }
    let stop = Arc::new(AtomicBool::new(false));
    let rx_thread = {
        let (c, s) = (counters.clone(), stop.clone());
        std::thread::Builder::new()
            .name("bench-http-rx".into())
            .spawn(move || http_rx_loop(clients, None, c, s, epoch))?
    };
    std::thread::sleep(satip::SETTLE);
    let pid = server.pid();
    let bytes = || -> Vec<u64> {
        counters
            .iter()
            .map(|c| c.bytes.load(Ordering::Relaxed))
            .collect()
    };
    let b0 = bytes();
    let closed0 = counters
        .iter()
        .filter(|c| c.closed.load(Ordering::Relaxed))
        .count();
    let w = Window::start(pid, seconds, perf);
    std::thread::sleep(Duration::from_secs_f64(seconds));
    let b1 = bytes();
    let dt = w.finish(pid, &mut p);
    stop.store(true, Ordering::Relaxed);
    let _ = rx_thread.join();
    sampling.store(false, Ordering::Relaxed);
    let _ = sampler.join();
    p.threads_peak = peak.load(Ordering::Relaxed) as usize;
    let mut firsts = Vec::new();
    let mut rates = Vec::new();
    for (i, c) in counters.iter().enumerate() {
        let ok = c.status.load(Ordering::Relaxed) == 200;
        p.ok += usize::from(ok);
        p.cc += c.cc_errors.load(Ordering::Relaxed);
        let first = c.first_ns.load(Ordering::Relaxed);
        if first == NONE {
            p.silent += 1;
        } else {
            firsts.push(first.saturating_sub(sent_ns[i]) as f64 / 1e6);
        }
        rates.push((b1[i] - b0[i]) as f64 * 8.0 / dt / 1e6);
    }
    let closed = counters
        .iter()
        .filter(|c| c.closed.load(Ordering::Relaxed))
        .count();
    p.lost = closed as u64;
    if closed0 > 0 {
        eprintln!("  {closed0} HTTP clients were closed before the window");
    }
    p.rss_per_client_kib = p.rss_kib.saturating_sub(idle_rss) as f64 / n.max(1) as f64;
    finish_rates(&mut p, &mut firsts, &mut rates);
    drop(warm);
    drop(server);
    Ok(p)
}

fn rtp_point(
    n: usize,
    seconds: f64,
    dir: &Path,
    perf: Option<std::path::PathBuf>,
    pids: &str,
) -> anyhow::Result<Point> {
    let server = ServerProc::spawn(Server::Dvb2ip, dir, n + 8)?;
    let port = server.port;
    let (wrtp, _wrtcp) = satip::rtp_pair()?;
    let warm = satip::setup(Server::Dvb2ip, port, "0", "", &wrtp).context("warm-up SETUP")?;
    std::thread::sleep(satip::WARM_UP);
    let idle_rss = proc_rss_kib(server.pid()).unwrap_or(0);
    let mut socks = Vec::with_capacity(n);
    for _ in 0..n {
        socks.push(satip::rtp_pair()?);
    }
    let rtp: Vec<UdpSocket> = socks
        .iter()
        .map(|(a, _)| a.try_clone())
        .collect::<Result<_, _>>()?;
    let receiver = Receiver::start(&rtp, 1, None)?;
    let mut clients = Vec::with_capacity(n);
    for (i, (s, _)) in socks.iter().enumerate() {
        clients.push(
            satip::setup(Server::Dvb2ip, port, pids, "", s)
                .with_context(|| format!("SETUP of session {i}"))?,
        );
    }
    let mut play_ns = vec![NONE; n];
    for (i, c) in clients.iter_mut().enumerate() {
        play_ns[i] = receiver.now_ns();
        let url = c.play_url.clone();
        c.rtsp
            .request("PLAY", &url, &[])
            .with_context(|| format!("PLAY of session {i}"))?;
    }
    std::thread::sleep(satip::SETTLE);
    let pid = server.pid();
    let sessions = receiver.sessions.clone();
    let bytes = || -> Vec<u64> {
        sessions
            .iter()
            .map(|s| s.bytes.load(Ordering::Relaxed))
            .collect()
    };
    let mut p = Point {
        what: "RTP/UDP",
        n,
        ok: n,
        ..Default::default()
    };
    let b0 = bytes();
    let w = Window::start(pid, seconds, perf);
    std::thread::sleep(Duration::from_secs_f64(seconds));
    let b1 = bytes();
    let dt = w.finish(pid, &mut p);
    receiver.stop();
    let mut firsts = Vec::new();
    let mut rates = Vec::new();
    for (i, s) in sessions.iter().enumerate() {
        p.lost += s.lost.load(Ordering::Relaxed);
        p.cc += s.cc_errors.load(Ordering::Relaxed);
        let first = s.first_ns.load(Ordering::Relaxed);
        if first == NONE {
            p.silent += 1;
        } else {
            firsts.push(first.saturating_sub(play_ns[i]) as f64 / 1e6);
        }
        rates.push((b1[i] - b0[i]) as f64 * 8.0 / dt / 1e6);
    }
    p.rss_per_client_kib = p.rss_kib.saturating_sub(idle_rss) as f64 / n.max(1) as f64;
    finish_rates(&mut p, &mut firsts, &mut rates);
    for c in clients.iter_mut() {
        let url = c.play_url.clone();
        let _ = c.rtsp.send("TEARDOWN", &url, &[]);
    }
    drop(clients);
    drop(warm);
    drop(server);
    Ok(p)
}

// ---- output ------------------------------------------------------------------------------------

fn header() -> String {
    format!(
        "{:>8} {:>5} {:>5} {:>6} {:>8} {:>8} {:>10} {:>6} {:>6} {:>6} {:>17} {:>19}",
        "",
        "N",
        "ok",
        "cpu%",
        "thr/peak",
        "rss_MiB",
        "KiB/client",
        "cc_err",
        "lost",
        "silent",
        "first_ms med/p99",
        "Mbit/s/client min/med"
    )
}

fn row(p: &Point) -> String {
    format!(
        "{:>8} {:>5} {:>5} {:>6.1} {:>8} {:>8.1} {:>10.1} {:>6} {:>6} {:>6} {:>17} {:>19}",
        p.what,
        p.n,
        p.ok,
        p.cpu,
        if p.threads_peak > 0 {
            format!("{}/{}", p.threads, p.threads_peak)
        } else {
            p.threads.to_string()
        },
        p.rss_kib as f64 / 1024.0,
        p.rss_per_client_kib,
        p.cc,
        p.lost,
        p.silent,
        format!("{:.2}/{:.2}", p.first_med_ms, p.first_p99_ms),
        format!("{:.2}/{:.2}", p.rate_min, p.rate_med),
    )
}

/// Runs the HTTP point and (with `rtp`) the RTP point, and prints both with the comparison.
pub fn run(opts: &Options) -> anyhow::Result<()> {
    if opts.clients == 0 {
        bail!("--clients must be positive");
    }
    if !(opts.seconds > 0.0 && opts.seconds <= 600.0) {
        bail!("--seconds must be in (0, 600]");
    }
    let mux_rate = gstdvb2ip::tuners::config::BroadcastConfig::embedded()
        .mux
        .iter()
        .find(|m| m.frequency_khz == MUX_KHZ)
        .map(|m| m.bitrate as f64)
        .context("benchmark mux in the embedded configuration")?;
    let dir = std::env::temp_dir().join(format!("dvb2ip-bench-http-{}", std::process::id()));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    println!(
        "dvb2ip-bench http: {} HTTP clients (pids={}) vs {} RTP/UDP sessions of mux {SATIP_MUX} ({:.1} Mbit/s nominal), {} s each, {} CPUs, server {}",
        opts.clients,
        opts.pids,
        if opts.rtp { opts.clients } else { 0 },
        mux_rate / 1e6,
        opts.seconds,
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        std::env::var("DVB2IP_BENCH_SERVER").unwrap_or_else(|_| "dvb2ip beside this binary".into()),
    );
    let mut points = Vec::new();
    let perf_file = |what: &str| {
        opts.perf
            .as_ref()
            .map(|d| d.join(format!("{what}.perf.data")))
    };
    if let Some(d) = &opts.perf {
        std::fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
    }
    match http_point(
        opts.clients,
        opts.seconds,
        &dir,
        perf_file("http"),
        opts.burst,
        &opts.pids,
    ) {
        Ok(p) => points.push(p),
        Err(e) => println!("HTTP point failed: {e:#}"),
    }
    if opts.rtp {
        match rtp_point(
            opts.clients,
            opts.seconds,
            &dir,
            perf_file("rtp"),
            &opts.pids,
        ) {
            Ok(p) => points.push(p),
            Err(e) => println!("RTP point failed: {e:#}"),
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    println!("{}", header());
    for p in &points {
        println!("{}", row(p));
    }
    for p in &points {
        let top: Vec<String> = p
            .per_thread
            .iter()
            .filter(|t| t.2 >= 0.5)
            .take(8)
            .map(|(name, count, cpu)| format!("{name}×{count} {cpu:.1}%"))
            .collect();
        println!("  {} server CPU by thread: {}", p.what, top.join(", "));
    }
    for p in &points {
        let Some(data) = &p.perf else { continue };
        println!(
            "  {} perf (self time, top symbols; {}):",
            p.what,
            data.display()
        );
        let out = std::process::Command::new("perf")
            .args([
                "report",
                "--stdio",
                "--no-children",
                "-g",
                "none",
                "--percent-limit",
                "1.5",
            ])
            .args(["--sort", "comm,dso,sym", "-i"])
            .arg(data)
            .output();
        match out {
            Ok(o) => {
                for l in String::from_utf8_lossy(&o.stdout)
                    .lines()
                    .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
                    .take(16)
                {
                    println!("    {l}");
                }
            }
            Err(e) => println!("    perf report: {e}"),
        }
    }
    println!(
        "columns: cpu% = server process, % of one core; KiB/client = RSS over the tuned idle server / clients; lost = HTTP connections the server closed, RTP packets lost;"
    );
    println!(
        "         first_ms = request (GET / PLAY) sent -> first TS byte; Mbit/s/client = delivered TS rate over the window"
    );
    if let [h, r] = points.as_slice() {
        let ratio = h.cpu / r.cpu;
        println!(
            "HTTP/RTP CPU ratio {ratio:.2} (target <= 1.30: {}); HTTP threads (peak) {} vs RTP {} (target < 32: {}); cc errors {} / {}, lost {} / {}",
            if ratio <= 1.3 { "met" } else { "NOT met" },
            h.threads.max(h.threads_peak),
            r.threads,
            if h.threads.max(h.threads_peak) < 32 {
                "met"
            } else {
                "NOT met"
            },
            h.cc,
            r.cc,
            h.lost,
            r.lost,
        );
    }
    Ok(())
}
