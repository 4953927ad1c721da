//! `dvb2ip-bench css`: the DVB-CSS figures.
//!
//! 1. **CSS-WC server throughput**: the plugin's `serve_wc` (recvmmsg/sendmmsg, kernel receive
//!    timestamps) on a thread pinned to CPU 0; a load generator pinned to CPU 1 keeps a window
//!    of requests outstanding on several connected UDP sockets (GSO sends, `recvmmsg`) for a
//!    bounded time. Answered requests/s = the server's own counter over the run; also per
//!    CPU-second of the server thread, which is what one core does when it is not shared.
//! 2. **Latency at one outstanding**: one socket polled without sleeping, request → reply,
//!    bounded count and time; p50/p99 of the round trip.
//! 3. **WC client dispersion** after 0.5 s, 1 s and 5 s: fresh client runs of exactly that
//!    length against the same server, dispersion read at the end of each run; with the
//!    defaults, with pydvbcss's timing and with a tuned one.
//! 4. **CSS-TS accuracy**: the TV emulator (emulated tuner → tstimelineparse → dvbcsssink with
//!    `post-messages`) plus our CSS-TS client; for every TEMI anchor, the position that the
//!    control timestamp in force reports for the moment the sink presented it, minus the
//!    anchor's value. The sink presents an anchor when the pipeline clock reaches its PES PTS
//!    on the program's PCR-locked clock (a decoder's presentation time): the error includes
//!    the wake-up latency of that clock wait, the CT line and the WC-mapped wall clock.

use std::net::{SocketAddr, UdpSocket};
use std::ops::ControlFlow;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use gst::prelude::*;
use gstdvb2ip::css_server::{MonotonicWallClock, Shared, WallClock, WcConfig, WcStop};
use gstdvb2ip::dvbcsssink::PRESENTED_STRUCTURE;
use gstdvb2ip::proto::css::clock::monotonic_ns;
use gstdvb2ip::proto::css::ts::ControlTimestamp;
use gstdvb2ip::proto::css::wc::{WcMessage, WC_MESSAGE_LEN};

use dvb2ip::css::clients::{self, TsReason, WcClientOptions};
use dvb2ip::css::tools::{self, TvOptions};

/// All figures of one run.
#[derive(Debug, Clone, Default)]
pub struct CssBenchResult {
    pub wc_requests_per_s: f64,
    /// Answered requests per second of CPU time of the server thread.
    pub wc_requests_per_cpu_s: Option<f64>,
    pub wc_p50_us: f64,
    pub wc_p99_us: f64,
    /// (label, [dispersion ms after 0.5 s, 1 s, 5 s]).
    pub dispersion_ms: Vec<(String, [f64; 3])>,
    pub ts_samples: usize,
    pub ts_control_timestamps: usize,
    pub ts_median_abs_error_ms: f64,
    pub ts_p99_abs_error_ms: f64,
    pub ts_max_abs_error_ms: f64,
}

fn pin_to_cpu(cpu: usize) -> bool {
    // SAFETY: a zeroed cpu_set_t is valid; CPU_SET stays within it for cpu < CPU_SETSIZE.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) == 0
    }
}

fn ncpus() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// A WC server of the plugin ([`gstdvb2ip::css_server::serve_wc`]) on its own thread, optionally pinned.
struct WcUnderTest {
    addr: SocketAddr,
    shared: Arc<Shared>,
    stop: Arc<WcStop>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// A wall clock reporting a chosen max frequency error.
struct Mono {
    inner: MonotonicWallClock,
    ppm: Option<f64>,
}

impl WallClock for Mono {
    fn now_ns(&self) -> u64 {
        self.inner.now_ns()
    }
    fn precision_secs(&self) -> f64 {
        self.inner.precision_secs()
    }
    fn max_freq_error_ppm(&self) -> f64 {
        self.ppm.unwrap_or_else(|| self.inner.max_freq_error_ppm())
    }
}

impl WcUnderTest {
    /// `ppm`: the max frequency error to report (`None` = the wall clock's own).
    fn start(cpu: Option<usize>, ppm: Option<f64>) -> anyhow::Result<Self> {
        let shared = Shared::new(Mono {
            inner: MonotonicWallClock::new(),
            ppm,
        });
        let sock = UdpSocket::bind("127.0.0.1:0")?;
        let _ = socket2::SockRef::from(&sock).set_recv_buffer_size(4 << 20);
        let addr = sock.local_addr()?;
        let stop = WcStop::new()?;
        let (sh, st) = (shared.clone(), stop.clone());
        let thread = std::thread::Builder::new()
            .name("css-wc-bench".into())
            .spawn(move || {
                if let Some(c) = cpu {
                    pin_to_cpu(c);
                }
                let _ = gstdvb2ip::css_server::serve_wc(&sock, &sh, WcConfig::default(), &st);
            })?;
        Ok(Self {
            addr,
            shared,
            stop,
            thread: Some(thread),
        })
    }
}

impl WcUnderTest {
    /// CPU time (s) the server thread has used so far.
    fn cpu_secs(&self) -> Option<f64> {
        use std::os::unix::thread::JoinHandleExt;
        let t = self.thread.as_ref()?.as_pthread_t();
        let mut id: libc::clockid_t = 0;
        // SAFETY: `t` is a live thread (joined only on drop); `id` is written by the call.
        if unsafe { libc::pthread_getcpuclockid(t, &mut id) } != 0 {
            return None;
        }
        cpu_secs_of(id)
    }
}

impl Drop for WcUnderTest {
    fn drop(&mut self) {
        self.stop.stop();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// `SOL_UDP` and its `UDP_SEGMENT` option (linux/udp.h; not in every libc version).
const SOL_UDP: libc::c_int = 17;
const UDP_SEGMENT: libc::c_int = 103;

/// Load generator: `sockets` connected sockets, `window` requests outstanding on each; runs
/// for `seconds`. Returns replies received and the CPU time (s) the generator used.
///
/// To leave the server's core all the work it can take, the generator spends as little as it
/// can per request on its own core: each socket sends its requests as one UDP GSO message
/// (`UDP_SEGMENT` of 32 bytes, split by the kernel into separate 32-byte datagrams before they
/// reach the server's socket, so the server sees ordinary requests) and receives replies with
/// `recvmmsg`. Its sockets do *not* enable `UDP_GRO`: replies the server sends as one GSO
/// message are split into datagrams on delivery, on the server's core, as for any client.
/// Without GSO it falls back to `sendmmsg`.
fn generate_load(
    server: SocketAddr,
    seconds: f64,
    sockets: usize,
    window: usize,
) -> (u64, Option<f64>) {
    let cpu0 = thread_cpu_secs();
    use std::os::fd::AsRawFd;
    const BATCH: usize = 64;
    const RBUFS: usize = BATCH;
    const RBUF_LEN: usize = 2 * WC_MESSAGE_LEN;
    let socks: Vec<UdpSocket> = (0..sockets)
        .filter_map(|_| {
            let s = UdpSocket::bind("127.0.0.1:0").ok()?;
            s.connect(server).ok()?;
            s.set_nonblocking(true).ok()?;
            let _ = socket2::SockRef::from(&s).set_recv_buffer_size(1 << 20);
            Some(s)
        })
        .collect();
    let req = WcMessage::request(1).encode();
    let reqs: Vec<u8> = req
        .iter()
        .copied()
        .cycle()
        .take(BATCH * WC_MESSAGE_LEN)
        .collect();
    let mut outstanding = vec![0usize; socks.len()];
    let mut last_reply = vec![Instant::now(); socks.len()];
    let mut replies = 0u64;
    let mut gso = true;
    // Headers and buffers are allocated once; the vectors are never resized, so the
    // pointers stay valid.
    let mut send_iov: Vec<libc::iovec> = (0..BATCH)
        .map(|i| libc::iovec {
            iov_base: reqs[i * WC_MESSAGE_LEN..].as_ptr() as *mut libc::c_void,
            iov_len: WC_MESSAGE_LEN,
        })
        .collect();
    let mut rbufs = vec![[0u8; RBUF_LEN]; RBUFS];
    let mut recv_iov: Vec<libc::iovec> = rbufs
        .iter_mut()
        .map(|b| libc::iovec {
            iov_base: b.as_mut_ptr().cast(),
            iov_len: b.len(),
        })
        .collect();
    let headers = |iov: &mut Vec<libc::iovec>| -> Vec<libc::mmsghdr> {
        iov.iter_mut()
            .map(|v| {
                // SAFETY: an all-zero mmsghdr is valid; it is aimed at a live iovec.
                let mut m: libc::mmsghdr = unsafe { std::mem::zeroed() };
                m.msg_hdr.msg_iov = v;
                m.msg_hdr.msg_iovlen = 1;
                m
            })
            .collect()
    };
    let mut send_msgs = headers(&mut send_iov);
    let mut recv_msgs = headers(&mut recv_iov);
    let mut gso_iov = libc::iovec {
        iov_base: reqs.as_ptr() as *mut libc::c_void,
        iov_len: 0,
    };
    let mut gso_control = [0u64; 4];
    let end = Instant::now() + Duration::from_secs_f64(seconds);
    let mut rounds = 0u32;
    loop {
        rounds = rounds.wrapping_add(1);
        if rounds.is_multiple_of(64) && Instant::now() >= end {
            break;
        }
        for (i, s) in socks.iter().enumerate() {
            let fd = s.as_raw_fd();
            let want = window.saturating_sub(outstanding[i]).min(BATCH);
            if want > 1 && gso {
                gso_iov.iov_len = want * WC_MESSAGE_LEN;
                // SAFETY: all-zero msghdr is valid; it points at the live iovec and control
                // buffer (CMSG_SPACE(2) = 24 bytes ≤ 32) filled in below.
                let n = unsafe {
                    let mut h: libc::msghdr = std::mem::zeroed();
                    h.msg_iov = &mut gso_iov;
                    h.msg_iovlen = 1;
                    h.msg_control = gso_control.as_mut_ptr().cast();
                    h.msg_controllen = libc::CMSG_SPACE(2) as _;
                    let c = libc::CMSG_FIRSTHDR(&h);
                    (*c).cmsg_level = SOL_UDP;
                    (*c).cmsg_type = UDP_SEGMENT;
                    (*c).cmsg_len = libc::CMSG_LEN(2) as _;
                    std::ptr::write_unaligned(
                        libc::CMSG_DATA(c).cast::<u16>(),
                        WC_MESSAGE_LEN as u16,
                    );
                    libc::sendmsg(fd, &h, libc::MSG_DONTWAIT)
                };
                if n > 0 {
                    outstanding[i] += n as usize / WC_MESSAGE_LEN;
                } else if std::io::Error::last_os_error().kind() != std::io::ErrorKind::WouldBlock {
                    gso = false;
                }
            } else if want > 0 {
                // SAFETY: headers point at live iovecs over `reqs`.
                let n = unsafe {
                    libc::sendmmsg(fd, send_msgs.as_mut_ptr(), want as u32, libc::MSG_DONTWAIT)
                };
                if n > 0 {
                    outstanding[i] += n as usize;
                }
            }
            // SAFETY: headers point at live receive buffers.
            let n = unsafe {
                libc::recvmmsg(
                    fd,
                    recv_msgs.as_mut_ptr(),
                    RBUFS as u32,
                    libc::MSG_DONTWAIT,
                    std::ptr::null_mut(),
                )
            };
            if n > 0 {
                let got: usize = recv_msgs[..n as usize]
                    .iter()
                    .map(|m| m.msg_len as usize / WC_MESSAGE_LEN)
                    .sum();
                replies += got as u64;
                outstanding[i] = outstanding[i].saturating_sub(got);
                last_reply[i] = Instant::now();
            } else if outstanding[i] > 0 && last_reply[i].elapsed() > Duration::from_millis(20) {
                // requests or replies were dropped: refill the window
                outstanding[i] = 0;
                last_reply[i] = Instant::now();
            }
        }
    }
    (replies, thread_cpu_secs().zip(cpu0).map(|(a, b)| a - b))
}

/// CPU time (s) of the calling thread.
fn thread_cpu_secs() -> Option<f64> {
    cpu_secs_of(libc::CLOCK_THREAD_CPUTIME_ID)
}

fn cpu_secs_of(id: libc::clockid_t) -> Option<f64> {
    // SAFETY: zeroed timespec is valid; clock_gettime only writes it.
    let mut ts: libc::timespec = unsafe { std::mem::zeroed() };
    // SAFETY: valid clock id and pointer.
    if unsafe { libc::clock_gettime(id, &mut ts) } != 0 {
        return None;
    }
    Some(ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// Round trips at one outstanding request. The client polls its socket without sleeping, so
/// what is measured is the server's answer time plus the loopback path, not the client's own
/// wake-up latency.
fn wc_latency(server: SocketAddr, max_count: usize, max_secs: f64) -> anyhow::Result<Vec<f64>> {
    let s = UdpSocket::bind("127.0.0.1:0")?;
    s.connect(server)?;
    s.set_nonblocking(true)?;
    let mut buf = [0u8; 64];
    let mut rtts = Vec::with_capacity(max_count);
    let end = Instant::now() + Duration::from_secs_f64(max_secs);
    let mut seq = 0u64;
    while rtts.len() < max_count && Instant::now() < end {
        seq += 1;
        let req = WcMessage::request(seq).encode();
        let t0 = Instant::now();
        s.send(&req)?;
        let give_up = t0 + Duration::from_millis(200);
        loop {
            match s.recv(&mut buf) {
                Ok(n) => {
                    if WcMessage::decode(&buf[..n]).is_ok_and(|m| m.originate.to_ns() == seq) {
                        rtts.push(t0.elapsed().as_secs_f64() * 1e6);
                        break;
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    if Instant::now() > give_up {
                        break;
                    }
                    std::hint::spin_loop();
                }
                Err(_) => break,
            }
        }
    }
    // warm-up
    let skip = rtts.len().min(100);
    let mut v = rtts.split_off(skip);
    v.sort_by(f64::total_cmp);
    Ok(v)
}

fn dispersion_after(
    rt: &tokio::runtime::Runtime,
    server: SocketAddr,
    options: WcClientOptions,
) -> anyhow::Result<[f64; 3]> {
    let mut out = [0.0; 3];
    for (i, secs) in [0.5, 1.0, 5.0].into_iter().enumerate() {
        let summary = rt.block_on(clients::wc_client_with_options(
            server,
            Duration::from_secs_f64(secs),
            options,
            |_| ControlFlow::Continue(()),
        ))?;
        out[i] = summary.estimate.dispersion_at(monotonic_ns()) * 1e3;
    }
    Ok(out)
}

/// CSS-TS accuracy against the TV emulator; returns (|errors| ms sorted, CT count).
fn ts_accuracy(rt: &tokio::runtime::Runtime, seconds: f64) -> anyhow::Result<(Vec<f64>, usize)> {
    const SELECTOR: &str = "urn:dvb:css:timeline:temi:1:1";
    const RATE: u64 = 90_000;
    let o = TvOptions {
        cii_port: 0,
        wc_port: 0,
        post_messages: true,
        ..TvOptions::default()
    };
    let tv = tools::start_tv(&o)?;
    let wc = tools::parse_wc_addr(&tv.urls.wc)?;
    let sys = gst::SystemClock::obtain();
    let cts: Arc<Mutex<Vec<(u64, ControlTimestamp)>>> = Arc::default();
    let c2 = cts.clone();
    let ts_url = tv.urls.ts.clone();
    let client = rt.spawn(async move {
        let _ = tokio::time::timeout(
            Duration::from_secs_f64(seconds),
            clients::ts_client(
                &ts_url,
                wc,
                "",
                SELECTOR,
                RATE as f64,
                Duration::from_secs(1),
                move |e| {
                    if let (TsReason::ControlTimestamp(_), Some(ct)) = (e.reason, e.last_ct) {
                        c2.lock().unwrap().push((sys.time().nseconds(), ct));
                    }
                    ControlFlow::Continue(())
                },
            ),
        )
        .await;
    });
    let bus = tv.pipeline.bus().context("bus")?;
    let mut presented: Vec<(u64, u64, Option<u64>)> = Vec::new();
    let end = Instant::now() + Duration::from_secs_f64(seconds);
    while Instant::now() < end {
        let Some(m) = bus.timed_pop(gst::ClockTime::from_mseconds(100)) else {
            continue;
        };
        if let gst::MessageView::Element(e) = m.view() {
            if let Some(s) = e.structure().filter(|s| s.name() == PRESENTED_STRUCTURE) {
                if s.get::<&str>("selector").ok() == Some(SELECTOR) {
                    if let (Ok(v), Ok(w)) = (s.get::<u64>("value"), s.get::<u64>("wall-clock")) {
                        presented.push((w, v, s.get::<u64>("running-time").ok()));
                    }
                }
            }
        }
    }
    let _ = rt.block_on(client);
    let base = tv.pipeline.base_time().map_or(0, |b| b.nseconds());
    let mut q = gst::query::Latency::new();
    let latency = if tv.pipeline.query(&mut q) {
        q.result().1.nseconds()
    } else {
        0
    };
    drop(tv);
    let cts = cts.lock().unwrap().clone();
    let first = cts.iter().find(|(_, c)| c.is_available()).map(|(t, _)| *t);
    let mut errors = Vec::new();
    if std::env::var_os("DVB2IP_BENCH_DEBUG").is_some() {
        for (w, v, r) in &presented {
            let due = r.map(|r| r + base + latency);
            let ct = cts.iter().rev().find(|(arr, _)| arr <= w).map(|c| c.1);
            let pred = ct.and_then(|c| c.content_time_at(*w as i64, RATE as f64));
            eprintln!(
                "w {w} v {v} render-late {:?} us  err {:?} ms",
                due.map(|d| (*w as i64 - d as i64) / 1000),
                pred.map(|p| (p as f64 - *v as f64) / RATE as f64 * 1e3)
            );
        }
    }
    for (w, v, _) in presented {
        // skip the first second after the first CT (client and line settling)
        if first.is_none_or(|f| w < f + 1_000_000_000) {
            continue;
        }
        let Some((_, ct)) = cts.iter().rev().find(|(arr, _)| *arr <= w) else {
            continue;
        };
        let Some(pred) = ct.content_time_at(w as i64, RATE as f64) else {
            continue;
        };
        let err_ms = (pred as f64 - v as f64) / RATE as f64 * 1e3;
        errors.push(err_ms.abs());
    }
    errors.sort_by(f64::total_cmp);
    Ok((errors, cts.len()))
}

/// `dvb2ip-bench css`: starts GStreamer and the elements the TV emulator needs, then [`run`].
pub fn run_css(seconds: f64) -> anyhow::Result<CssBenchResult> {
    tools::init_tv()?;
    run(seconds)
}

/// Run everything and print the figures.
pub fn run(seconds: f64) -> anyhow::Result<CssBenchResult> {
    let mut r = CssBenchResult::default();
    let two = ncpus() >= 2;
    println!(
        "CSS bench: {} CPUs; server pinned to CPU 0{}",
        ncpus(),
        if two { ", load generator to CPU 1" } else { "" }
    );

    // 1. throughput
    let server = WcUnderTest::start(Some(0), None)?;
    let addr = server.addr;
    let before = server.shared.stats().wc_requests;
    let cpu_before = server.cpu_secs();
    let t0 = Instant::now();
    let gen = std::thread::spawn(move || {
        if two {
            pin_to_cpu(1);
        }
        generate_load(addr, seconds, 8, 64)
    });
    let (replies, gen_cpu) = gen
        .join()
        .map_err(|_| anyhow::anyhow!("load generator panicked"))?;
    let elapsed = t0.elapsed().as_secs_f64();
    let answered = server.shared.stats().wc_requests - before;
    let cpu = server.cpu_secs().zip(cpu_before).map(|(a, b)| a - b);
    r.wc_requests_per_s = answered as f64 / elapsed;
    r.wc_requests_per_cpu_s = cpu.filter(|c| *c > 0.0).map(|c| answered as f64 / c);
    println!(
        "CSS-WC throughput (one core, 8 sockets x 64 outstanding, {elapsed:.1} s): {:.0} requests/s answered ({} replies received)   target >= 500000",
        r.wc_requests_per_s, replies
    );
    if let (Some(c), Some(per)) = (cpu, r.wc_requests_per_cpu_s) {
        println!(
            "  server thread CPU time {c:.2} s of {elapsed:.1} s ({:.0} %): {per:.0} requests per CPU-second (what one core does when it is not shared); load generator CPU {}",
            c / elapsed * 100.0,
            gen_cpu.map_or("unknown".into(), |g| format!("{g:.2} s ({:.0} %)", g / elapsed * 100.0))
        );
    }

    // 2. latency at one outstanding
    let lat = {
        let a = server.addr;
        std::thread::spawn(move || {
            if two {
                pin_to_cpu(1);
            }
            wc_latency(a, 50_000, 5.0)
        })
        .join()
        .map_err(|_| anyhow::anyhow!("latency client panicked"))??
    };
    r.wc_p50_us = percentile(&lat, 0.5);
    r.wc_p99_us = percentile(&lat, 0.99);
    println!(
        "CSS-WC latency, one outstanding ({} requests): p50 {:.1} us, p99 {:.1} us   target p99 <= 50 us",
        lat.len(),
        r.wc_p50_us,
        r.wc_p99_us
    );
    drop(server);

    // 3. dispersion
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    for (label, ppm, options) in [
        (
            "defaults (every 50 ms for 2 s, then backing off to 1 s; timeout 0.2 s; 500 ppm client, server's own)",
            None,
            WcClientOptions::default(),
        ),
        (
            "pydvbcss timing (repeat 1 s from the start, timeout 0.2 s, 500 ppm client and server)",
            Some(500.0),
            WcClientOptions {
                fast_start_secs: 0.0,
                ..WcClientOptions::default()
            },
        ),
        (
            "tuned (repeat 0.1 s, timeout 0.1 s, 50 ppm client and server)",
            Some(50.0),
            WcClientOptions {
                repeat_secs: 0.1,
                timeout_secs: 0.1,
                client_max_freq_error_ppm: 50.0,
                ..WcClientOptions::default()
            },
        ),
    ] {
        let server = WcUnderTest::start(None, ppm)?;
        let d = dispersion_after(&rt, server.addr, options)?;
        println!(
            "WC client dispersion, {label}: after 0.5 s {:.3} ms, 1 s {:.3} ms, 5 s {:.3} ms   target <= 0.2 ms after 1 s",
            d[0], d[1], d[2]
        );
        r.dispersion_ms.push((label.to_owned(), d));
    }

    // 4. CSS-TS accuracy
    let (errors, n_ct) = ts_accuracy(&rt, 8.0)?;
    r.ts_samples = errors.len();
    r.ts_control_timestamps = n_ct;
    r.ts_median_abs_error_ms = percentile(&errors, 0.5);
    r.ts_p99_abs_error_ms = percentile(&errors, 0.99);
    r.ts_max_abs_error_ms = errors.last().copied().unwrap_or(f64::NAN);
    println!(
        "CSS-TS accuracy (TEMI 90 kHz, emulated tuner, {} anchors, {} CTs): |error| median {:.3} ms, p99 {:.3} ms, max {:.3} ms   target <= 1 ms",
        r.ts_samples,
        r.ts_control_timestamps,
        r.ts_median_abs_error_ms,
        r.ts_p99_abs_error_ms,
        r.ts_max_abs_error_ms
    );
    Ok(r)
}
