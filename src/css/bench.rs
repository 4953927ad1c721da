//! `dvb2ip bench css`: the DVB-CSS figures.
//!
//! 1. **CSS-WC server throughput**: the plugin's `run_wc` (kernel receive timestamps) on a
//!    current-thread runtime pinned to CPU 0; a load generator pinned to CPU 1 keeps a window
//!    of requests outstanding on several connected UDP sockets (`sendmmsg`/`recvmmsg`) for a
//!    bounded time. Answered requests/s = the server's own counter over the run.
//! 2. **Latency at one outstanding**: one blocking socket, request → reply, bounded count and
//!    time; p50/p99 of the round trip.
//! 3. **WC client dispersion** after 0.5 s, 1 s and 5 s: fresh client runs of exactly that
//!    length against the same server, dispersion read at the end of each run; with
//!    pydvbcss's timing (repeat 1 s, 500 ppm both sides) and with a tuned one.
//! 4. **CSS-TS accuracy**: the TV emulator (emulated tuner → tstimelineparse → dvbcsssink with
//!    `post-messages`) plus our CSS-TS client; for every rendered buffer carrying a TEMI
//!    anchor, the position that the control timestamp in force reports for the moment the
//!    buffer left the sink, minus the anchor's value.

use std::net::{SocketAddr, UdpSocket};
use std::ops::ControlFlow;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use gst::prelude::*;
use gstdvb2ip::dvbcsssink::servers::{self, MonotonicWallClock, Shared, WallClock, WcConfig};
use gstdvb2ip::dvbcsssink::PRESENTED_STRUCTURE;
use gstdvb2ip::proto::css::clock::monotonic_ns;
use gstdvb2ip::proto::css::ts::ControlTimestamp;
use gstdvb2ip::proto::css::wc::{WcMessage, WC_MESSAGE_LEN};

use super::clients::{self, TsReason, WcClientOptions};
use super::tools::{self, TvOptions};

/// All figures of one run.
#[derive(Debug, Clone, Default)]
pub struct CssBenchResult {
    pub wc_requests_per_s: f64,
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

/// A WC server of the plugin on its own pinned thread.
struct WcUnderTest {
    addr: SocketAddr,
    shared: Arc<Shared>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// A wall clock reporting a chosen max frequency error.
struct Mono {
    inner: MonotonicWallClock,
    ppm: f64,
}

impl WallClock for Mono {
    fn now_ns(&self) -> u64 {
        self.inner.now_ns()
    }
    fn precision_secs(&self) -> f64 {
        self.inner.precision_secs()
    }
    fn max_freq_error_ppm(&self) -> f64 {
        self.ppm
    }
}

impl WcUnderTest {
    fn start(cpu: Option<usize>, ppm: f64) -> anyhow::Result<Self> {
        let shared = Shared::new(Mono {
            inner: MonotonicWallClock::new(),
            ppm,
        });
        let sock = UdpSocket::bind("127.0.0.1:0")?;
        sock.set_nonblocking(true)?;
        let _ = socket2::SockRef::from(&sock).set_recv_buffer_size(4 << 20);
        let addr = sock.local_addr()?;
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let sh = shared.clone();
        let thread = std::thread::Builder::new()
            .name("css-wc-bench".into())
            .spawn(move || {
                if let Some(c) = cpu {
                    pin_to_cpu(c);
                }
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("runtime");
                rt.block_on(async move {
                    let sock = tokio::net::UdpSocket::from_std(sock).expect("tokio socket");
                    let stop = async {
                        let _ = rx.await;
                    };
                    let _ = servers::run_wc(sock, sh, WcConfig::default(), stop).await;
                });
            })?;
        Ok(Self {
            addr,
            shared,
            stop: Some(tx),
            thread: Some(thread),
        })
    }
}

impl Drop for WcUnderTest {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Load generator: `sockets` connected sockets, `window` requests outstanding on each,
/// batches through sendmmsg/recvmmsg; runs for `seconds`. Returns replies received.
fn generate_load(server: SocketAddr, seconds: f64, sockets: usize, window: usize) -> u64 {
    use std::os::fd::AsRawFd;
    const BATCH: usize = 32;
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
    let mut outstanding = vec![0usize; socks.len()];
    let mut last_reply = vec![Instant::now(); socks.len()];
    let mut replies = 0u64;
    let mut rbufs = [[0u8; WC_MESSAGE_LEN * 2]; BATCH];
    let end = Instant::now() + Duration::from_secs_f64(seconds);
    while Instant::now() < end {
        for (i, s) in socks.iter().enumerate() {
            let fd = s.as_raw_fd();
            // send up to the window
            let want = window.saturating_sub(outstanding[i]).min(BATCH);
            if want > 0 {
                let mut iov: Vec<libc::iovec> = (0..want)
                    .map(|_| libc::iovec {
                        iov_base: req.as_ptr() as *mut libc::c_void,
                        iov_len: req.len(),
                    })
                    .collect();
                // SAFETY: zeroed mmsghdr is valid; each points at a live iovec.
                let mut msgs: Vec<libc::mmsghdr> = iov
                    .iter_mut()
                    .map(|v| {
                        let mut m: libc::mmsghdr = unsafe { std::mem::zeroed() };
                        m.msg_hdr.msg_iov = v;
                        m.msg_hdr.msg_iovlen = 1;
                        m
                    })
                    .collect();
                // SAFETY: msgs/iov live across the call; lengths match.
                let n = unsafe {
                    libc::sendmmsg(fd, msgs.as_mut_ptr(), want as u32, libc::MSG_DONTWAIT)
                };
                if n > 0 {
                    outstanding[i] += n as usize;
                }
            }
            // receive what is there
            let mut iov: Vec<libc::iovec> = rbufs
                .iter_mut()
                .map(|b| libc::iovec {
                    iov_base: b.as_mut_ptr().cast(),
                    iov_len: b.len(),
                })
                .collect();
            let mut msgs: Vec<libc::mmsghdr> = iov
                .iter_mut()
                .map(|v| {
                    // SAFETY: as above.
                    let mut m: libc::mmsghdr = unsafe { std::mem::zeroed() };
                    m.msg_hdr.msg_iov = v;
                    m.msg_hdr.msg_iovlen = 1;
                    m
                })
                .collect();
            // SAFETY: buffers live across the call.
            let n = unsafe {
                libc::recvmmsg(
                    fd,
                    msgs.as_mut_ptr(),
                    BATCH as u32,
                    libc::MSG_DONTWAIT,
                    std::ptr::null_mut(),
                )
            };
            if n > 0 {
                replies += n as u64;
                outstanding[i] = outstanding[i].saturating_sub(n as usize);
                last_reply[i] = Instant::now();
            } else if outstanding[i] > 0 && last_reply[i].elapsed() > Duration::from_millis(20) {
                // requests or replies were dropped: refill the window
                outstanding[i] = 0;
                last_reply[i] = Instant::now();
            }
        }
    }
    replies
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn wc_latency(server: SocketAddr, max_count: usize, max_secs: f64) -> anyhow::Result<Vec<f64>> {
    let s = UdpSocket::bind("127.0.0.1:0")?;
    s.connect(server)?;
    s.set_read_timeout(Some(Duration::from_millis(200)))?;
    let mut buf = [0u8; 64];
    let mut rtts = Vec::with_capacity(max_count);
    let end = Instant::now() + Duration::from_secs_f64(max_secs);
    let mut seq = 0u64;
    while rtts.len() < max_count && Instant::now() < end {
        seq += 1;
        let req = WcMessage::request(seq).encode();
        let t0 = Instant::now();
        s.send(&req)?;
        while let Ok(n) = s.recv(&mut buf) {
            let Ok(m) = WcMessage::decode(&buf[..n]) else {
                continue;
            };
            if m.originate.to_ns() == seq {
                rtts.push(t0.elapsed().as_secs_f64() * 1e6);
                break;
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
    let mut presented: Vec<(u64, u64)> = Vec::new();
    let end = Instant::now() + Duration::from_secs_f64(seconds);
    while Instant::now() < end {
        let Some(m) = bus.timed_pop(gst::ClockTime::from_mseconds(100)) else {
            continue;
        };
        if let gst::MessageView::Element(e) = m.view() {
            if let Some(s) = e.structure().filter(|s| s.name() == PRESENTED_STRUCTURE) {
                if s.get::<&str>("selector").ok() == Some(SELECTOR) {
                    if let (Ok(v), Ok(w)) = (s.get::<u64>("value"), s.get::<u64>("wall-clock")) {
                        presented.push((w, v));
                    }
                }
            }
        }
    }
    let _ = rt.block_on(client);
    drop(tv);
    let cts = cts.lock().unwrap().clone();
    let first = cts.iter().find(|(_, c)| c.is_available()).map(|(t, _)| *t);
    let mut errors = Vec::new();
    for (w, v) in presented {
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
    let server = WcUnderTest::start(Some(0), 500.0)?;
    let addr = server.addr;
    let before = server.shared.stats().wc_requests;
    let t0 = Instant::now();
    let gen = std::thread::spawn(move || {
        if two {
            pin_to_cpu(1);
        }
        generate_load(addr, seconds, 8, 64)
    });
    let replies = gen
        .join()
        .map_err(|_| anyhow::anyhow!("load generator panicked"))?;
    let elapsed = t0.elapsed().as_secs_f64();
    let answered = server.shared.stats().wc_requests - before;
    r.wc_requests_per_s = answered as f64 / elapsed;
    println!(
        "CSS-WC throughput (one core, 8 sockets x 64 outstanding, {elapsed:.1} s): {:.0} requests/s answered ({} replies received)   target >= 500000",
        r.wc_requests_per_s, replies
    );

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
            "pydvbcss timing (repeat 1 s, timeout 0.2 s, 500 ppm client and server)",
            500.0,
            WcClientOptions::default(),
        ),
        (
            "tuned (repeat 0.1 s, timeout 0.1 s, 50 ppm client and server)",
            50.0,
            WcClientOptions {
                repeat_secs: 0.1,
                timeout_secs: 0.1,
                client_max_freq_error_ppm: 50.0,
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
