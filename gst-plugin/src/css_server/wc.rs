//! The CSS-WC server (UDP): requests answered in `recvmmsg`/`sendmmsg` batches with kernel
//! receive timestamps (see the module documentation of [`crate::css_server`]).

use super::*;
use crate::proto::css::wc;

/// Busy-polling period of the CSS-WC server after its last datagram (see [`WcConfig::busy_poll`]).
pub const DEFAULT_WC_BUSY_POLL: Duration = Duration::from_micros(200);

/// CSS-WC server settings (default: no follow-up, precision and max frequency error from the
/// wall clock, [`DEFAULT_WC_BUSY_POLL`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WcConfig {
    /// Send type-2 responses each followed by a type-3 follow-up with a transmit time read
    /// after the first send completed.
    pub follow_up: bool,
    /// Reported precision (seconds); `None` = the wall clock's.
    pub precision_secs: Option<f64>,
    /// Reported max frequency error (ppm); `None` = the wall clock's.
    pub max_freq_error_ppm: Option<f64>,
    /// After the last datagram, keep polling the socket without sleeping for this long before
    /// blocking. A sleeping thread takes tens of microseconds to wake (more in a VM), which
    /// would dominate the answer time of a client that asks again as soon as it gets a reply;
    /// spinning costs CPU only while clients are active (at most this long per request when
    /// they are not). `Duration::ZERO` blocks at once.
    pub busy_poll: Duration,
}

impl Default for WcConfig {
    fn default() -> Self {
        Self {
            follow_up: false,
            precision_secs: None,
            max_freq_error_ppm: None,
            busy_poll: DEFAULT_WC_BUSY_POLL,
        }
    }
}

/// At most one report per interval, counting the rest.
struct RateLimit {
    every: Duration,
    last: Option<Instant>,
}

impl RateLimit {
    fn ready(&mut self) -> bool {
        let now = Instant::now();
        if self
            .last
            .is_some_and(|l| now.duration_since(l) < self.every)
        {
            return false;
        }
        self.last = Some(now);
        true
    }
}

/// Stops a [`serve_wc`] loop from another thread (wakes it if it is blocked).
#[derive(Debug)]
pub struct WcStop {
    stopped: std::sync::atomic::AtomicBool,
    #[cfg(target_os = "linux")]
    wake: crate::sys::net::WakeFd,
}

impl WcStop {
    /// A stop handle, not yet triggered.
    pub fn new() -> io::Result<Arc<Self>> {
        Ok(Arc::new(Self {
            stopped: std::sync::atomic::AtomicBool::new(false),
            #[cfg(target_os = "linux")]
            wake: crate::sys::net::WakeFd::new()?,
        }))
    }

    /// Ask the server to return; it does within a few milliseconds.
    pub fn stop(&self) {
        self.stopped.store(true, Ordering::SeqCst);
        #[cfg(target_os = "linux")]
        self.wake.signal();
    }

    /// Whether [`WcStop::stop`] was called.
    pub fn is_stopped(&self) -> bool {
        self.stopped.load(Ordering::SeqCst)
    }
}

/// Calls [`WcStop::stop`] when dropped (a cancelled [`run_wc`] future stops its thread).
struct StopOnDrop(Arc<WcStop>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.stop();
    }
}

/// Serve CSS-WC on `socket` until `shutdown` completes.
///
/// The server runs on a dedicated thread (`css-wc`, see [`serve_wc`]); this future only
/// waits for `shutdown` and then for the thread to finish. Dropping the future stops the
/// thread too. Returns `Ok(())` on shutdown.
pub async fn run_wc(
    socket: UdpSocket,
    shared: Arc<Shared>,
    config: WcConfig,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    let socket = socket.into_std()?;
    let stop = WcStop::new()?;
    let guard = StopOnDrop(stop.clone());
    let (done_tx, mut done_rx) = tokio::sync::oneshot::channel::<io::Result<()>>();
    std::thread::Builder::new()
        .name("css-wc".into())
        .spawn(move || {
            let r = serve_wc(&socket, &shared, config, &stop);
            let _ = done_tx.send(r);
        })?;
    tokio::pin!(shutdown);
    tokio::select! {
        _ = &mut shutdown => guard.0.stop(),
        r = &mut done_rx => return r.unwrap_or(Ok(())),
    }
    done_rx.await.unwrap_or(Ok(()))
}

/// Serve CSS-WC on `socket` on the calling thread until `stop` is triggered.
///
/// Answers every well-formed request (type 0) to its source address; ignores anything else
/// (counted in [`ServerStats::wc_ignored`], reported through the event hook at most once a
/// second) and keeps serving (checklist 1–4). Receive errors (e.g. ICMP port unreachable
/// from an earlier reply) are skipped.
///
/// On Linux requests are read in batches with `recvmmsg` and answered with one `sendmmsg`
/// per batch. Each request keeps its own kernel receive stamp (`SO_TIMESTAMPNS`, see the
/// module documentation); the transmit time is read once per batch, right before
/// `sendmmsg`. With follow-ups, the type-3 messages carry a time read after the type-2
/// batch was sent. Between batches the thread polls the socket for
/// [`WcConfig::busy_poll`], then blocks in `poll(2)` until a datagram or `stop` arrives.
pub fn serve_wc(
    socket: &std::net::UdpSocket,
    shared: &Shared,
    config: WcConfig,
    stop: &WcStop,
) -> io::Result<()> {
    let clock = shared.wall_clock();
    let info = ServerClockInfo::from_secs_ppm(
        config
            .precision_secs
            .unwrap_or_else(|| clock.precision_secs()),
        config
            .max_freq_error_ppm
            .unwrap_or_else(|| clock.max_freq_error_ppm()),
    );
    let limiter = RateLimit {
        every: Duration::from_secs(1),
        last: None,
    };
    #[cfg(target_os = "linux")]
    return mmsg::serve(socket, shared, config, info, limiter, stop);
    #[cfg(not(target_os = "linux"))]
    return portable::serve(socket, shared, config, info, limiter, stop);
}

/// Count an ignored datagram and report it (rate-limited).
fn wc_ignored(shared: &Shared, limiter: &mut RateLimit, from: SocketAddr, error: WcError) {
    let total = bump(&shared.counters.wc_ignored);
    if limiter.ready() {
        shared.emit(ServerEvent::WcIgnored { from, error, total });
    }
}

/// Maximum believable age of a datagram (ns); beyond it the realtime clock probably stepped
/// and the kernel stamp is not used.
const MAX_STAMP_AGE_NS: u64 = 1_000_000_000;

/// The WC server loop for systems without `recvmmsg`: one datagram at a time.
#[cfg(not(target_os = "linux"))]
mod portable {
    use super::*;

    pub(super) fn serve(
        socket: &std::net::UdpSocket,
        shared: &Shared,
        config: WcConfig,
        info: ServerClockInfo,
        mut limiter: RateLimit,
        stop: &WcStop,
    ) -> io::Result<()> {
        socket.set_nonblocking(false)?;
        socket.set_read_timeout(Some(Duration::from_millis(50)))?;
        let mut buf = [0u8; 2 * WC_MESSAGE_LEN];
        while !stop.is_stopped() {
            let Ok((len, src)) = socket.recv_from(&mut buf) else {
                continue;
            };
            let receive_ns = shared.wall_clock_ns();
            let mut response = match wc::respond_bytes(
                &buf[..len],
                receive_ns,
                receive_ns,
                info,
                config.follow_up,
            ) {
                Ok(r) => r,
                Err(e) => {
                    wc_ignored(shared, &mut limiter, src, e);
                    continue;
                }
            };
            bump(&shared.counters.wc_requests);
            wc::stamp_transmit(&mut response, shared.wall_clock_ns());
            if socket.send_to(&response, src).is_ok() && config.follow_up {
                wc::make_follow_up(&mut response, shared.wall_clock_ns());
                let _ = socket.send_to(&response, src);
            }
        }
        Ok(())
    }
}

/// The Linux WC server loop: `recvmmsg`/`sendmmsg` batches with kernel receive stamps.
#[cfg(target_os = "linux")]
mod mmsg {
    use super::*;
    use crate::sys::net::{self, ReplyBatch};
    use std::os::fd::AsFd;

    /// Receive buffer per datagram: larger than a message so oversized ones are seen as such.
    const BUF_LEN: usize = 2 * WC_MESSAGE_LEN;

    pub(super) fn serve(
        socket: &std::net::UdpSocket,
        shared: &Shared,
        config: WcConfig,
        info: ServerClockInfo,
        mut limiter: RateLimit,
        stop: &WcStop,
    ) -> io::Result<()> {
        // Blocking sends (loopback and LAN sends complete at once); receives never block.
        socket.set_nonblocking(false)?;
        let fd = socket.as_fd();
        let stamps = net::enable_rx_timestamps(fd);
        let mut b = ReplyBatch::<BUF_LEN, WC_MESSAGE_LEN>::new();
        let mut idle_since: Option<Instant> = None;
        let mut errors_in_a_row = 0u32;
        let mut gso = true;
        loop {
            if stop.is_stopped() {
                return Ok(());
            }
            let n = match b.recv(fd) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    let since = *idle_since.get_or_insert_with(Instant::now);
                    if since.elapsed() < config.busy_poll {
                        std::hint::spin_loop();
                    } else {
                        if net::wait_readable(fd, &stop.wake) {
                            return Ok(());
                        }
                        idle_since = None;
                    }
                    continue;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => {
                    // ECONNREFUSED and friends are per-datagram; avoid a hot loop on
                    // anything persistent.
                    errors_in_a_row += 1;
                    if errors_in_a_row > 16 {
                        std::thread::sleep(Duration::from_millis(1));
                    }
                    continue;
                }
            };
            errors_in_a_row = 0;
            idle_since = None;
            // One reading of both clocks turns every kernel stamp of the batch into an age.
            let realtime_now = if stamps {
                crate::sys::realtime_ns()
            } else {
                None
            };
            let wall_now = shared.wall_clock_ns();
            let mut answered = 0;
            let mut kernel = 0;
            for i in 0..n {
                let request = match b.datagram(i) {
                    Ok(d) => d,
                    Err(len) => {
                        let src = b.source(i);
                        wc_ignored(shared, &mut limiter, src, WcError::WrongLength(len));
                        continue;
                    }
                };
                let age = match (b.stamp(i), realtime_now) {
                    (Some(k), Some(now)) => now.checked_sub(k).filter(|a| *a <= MAX_STAMP_AGE_NS),
                    _ => None,
                };
                if age.is_some() {
                    kernel += 1;
                }
                let receive_ns = wall_now.saturating_sub(age.unwrap_or(0));
                match wc::respond_bytes(request, receive_ns, receive_ns, info, config.follow_up) {
                    Ok(r) => {
                        b.set_reply(answered, r, i);
                        answered += 1;
                    }
                    Err(e) => {
                        let src = b.source(i);
                        wc_ignored(shared, &mut limiter, src, e);
                    }
                }
            }
            if answered == 0 {
                continue;
            }
            shared
                .counters
                .wc_requests
                .fetch_add(answered as u64, Ordering::Relaxed);
            shared
                .counters
                .wc_kernel_timestamps
                .fetch_add(kernel, Ordering::Relaxed);
            // As late as possible: the last thing before the send.
            let transmit_ns = shared.wall_clock_ns();
            for r in b.replies_mut(answered) {
                wc::stamp_transmit(r, transmit_ns);
            }
            b.send(fd, answered, &mut gso);
            if config.follow_up {
                let t = shared.wall_clock_ns();
                for r in b.replies_mut(answered) {
                    wc::make_follow_up(r, t);
                }
                b.send(fd, answered, &mut gso);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::css_server::test_util::*;
    use crate::proto::css::wc::{MessageType, Timevalue, WcMessage};

    /// How long a test waits for an answer that must come (generous: a loaded machine is slow,
    /// never wrong).
    const ANSWER_WAIT: Duration = Duration::from_secs(30);

    /// Sends `req` and waits for `expected` datagrams (each within [`ANSWER_WAIT`]), all from
    /// the server (checklist 5). That nothing more comes is checked through the server's
    /// counters (and the order of answers on loopback), not a quiet window.
    async fn wc_exchange(
        sock: &UdpSocket,
        server: SocketAddr,
        req: &[u8],
        expected: usize,
    ) -> Vec<Vec<u8>> {
        let t0 = Instant::now();
        sock.send_to(req, server).await.unwrap();
        let mut out = Vec::new();
        let mut buf = [0u8; 256];
        while out.len() < expected {
            let (n, from) = tokio::time::timeout(ANSWER_WAIT, sock.recv_from(&mut buf))
                .await
                .expect("the WC server answers")
                .unwrap();
            assert_eq!(from, server, "checklist 5");
            out.push(buf[..n].to_vec());
        }
        println!("{expected} WC answer(s) after {:?}", t0.elapsed());
        out
    }

    #[tokio::test]
    async fn wc_answers_requests_and_echoes_originate() {
        let shared = shared();
        let server = start_wc(&shared, WcConfig::default()).await;
        let sock = UdpSocket::bind(LOOPBACK).await.unwrap();
        let mut req = WcMessage::request(0).encode();
        // originate nanos word ≥ 1e9 must come back bit for bit (checklist 6)
        req[8..16].copy_from_slice(&[0x12, 0x34, 0x56, 0x78, 0xff, 0xff, 0xff, 0xff]);
        let before = shared.wall_clock_ns();
        let replies = wc_exchange(&sock, server.addr, &req, 1).await;
        let after = shared.wall_clock_ns();
        assert_eq!(replies.len(), 1);
        let r = &replies[0];
        assert_eq!(r.len(), 32);
        assert_eq!(&r[8..16], &req[8..16]);
        assert_eq!(r[0], 0);
        assert_eq!(r[1], 1, "checklist 7");
        assert_eq!(r[3], 0, "checklist 8");
        let m = WcMessage::decode(r).unwrap();
        assert!(m.receive.nanos < 1_000_000_000 && m.transmit.nanos < 1_000_000_000);
        let (rx, tx) = (m.receive.to_ns(), m.transmit.to_ns());
        assert!(rx <= tx, "checklist 10");
        // checklist 11/16: same clock, within the exchange
        assert!(before <= rx && tx <= after, "{before} {rx} {tx} {after}");
        assert_eq!(m.max_freq_error, 500 * 256);
        assert!(m.precision_secs() >= shared.wall_clock().precision_secs());
        server.stop().await;
        let st = shared.stats();
        assert_eq!(st.wc_requests, 1);
        #[cfg(target_os = "linux")]
        assert_eq!(st.wc_kernel_timestamps, 1);
    }

    #[tokio::test]
    async fn wc_follow_up() {
        let shared = shared();
        let cfg = WcConfig {
            follow_up: true,
            precision_secs: Some(0.001),
            max_freq_error_ppm: Some(50.0),
            ..WcConfig::default()
        };
        let server = start_wc(&shared, cfg).await;
        let sock = UdpSocket::bind(LOOPBACK).await.unwrap();
        let req = WcMessage::request(123_456_789).encode();
        let replies = wc_exchange(&sock, server.addr, &req, 2).await;
        assert_eq!(replies.len(), 2, "checklist 17");
        let a = WcMessage::decode(&replies[0]).unwrap();
        let b = WcMessage::decode(&replies[1]).unwrap();
        assert_eq!(a.message_type, MessageType::ResponseWithFollowUp);
        assert_eq!(b.message_type, MessageType::FollowUp);
        assert_eq!(
            (a.originate, a.receive),
            (b.originate, b.receive),
            "checklist 18"
        );
        assert!(b.transmit.to_ns() >= a.transmit.to_ns(), "checklist 19");
        assert_eq!(a.precision, -9);
        assert_eq!(a.max_freq_error, 12800);
        assert_eq!(a.originate, Timevalue::from_ns(123_456_789));
        server.stop().await;
    }

    #[tokio::test]
    async fn wc_ignores_malformed_and_keeps_serving() {
        let events = Arc::new(AtomicU64::new(0));
        let ev = events.clone();
        let shared = Shared::with_events(
            MonotonicWallClock::new(),
            Arc::new(move |e: &ServerEvent| {
                if matches!(e, ServerEvent::WcIgnored { .. }) {
                    ev.fetch_add(1, Ordering::Relaxed);
                }
            }),
        );
        let server = start_wc(&shared, WcConfig::default()).await;
        let sock = UdpSocket::bind(LOOPBACK).await.unwrap();
        let good = WcMessage::request(5).encode();
        let mut bad: Vec<Vec<u8>> = vec![
            vec![],
            vec![0],
            good[..31].to_vec(),
            [&good[..], &[0u8]].concat(),
            vec![0u8; 100],
        ];
        for v in [1u8, 255] {
            let mut b = good;
            b[0] = v;
            bad.push(b.to_vec());
        }
        for t in 1u8..=255 {
            let mut b = good;
            b[1] = t;
            bad.push(b.to_vec());
        }
        // The server answers before the garbage: it is running. The garbage (about the size
        // of a default socket buffer) goes in paced chunks so that a busy machine does not
        // overflow the buffer (UDP drops silently, which would be no test of the server).
        assert_eq!(wc_exchange(&sock, server.addr, &good, 1).await.len(), 1);
        for chunk in bad.chunks(16) {
            for b in chunk {
                sock.send_to(b, server.addr).await.unwrap();
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        // None of them is answered, and a good request still is (checklist 1–4): the server
        // handles datagrams in order, so the next datagram to arrive is the answer to it.
        let replies = wc_exchange(&sock, server.addr, &good, 1).await;
        assert_eq!(WcMessage::decode(&replies[0]).unwrap().originate.to_ns(), 5);
        server.stop().await;
        let st = shared.stats();
        assert_eq!(st.wc_ignored, bad.len() as u64);
        assert_eq!(
            st.wc_requests, 2,
            "only the two good requests were answered"
        );
        // rate-limited: one report for the burst
        assert_eq!(events.load(Ordering::Relaxed), 1);
    }

    #[tokio::test]
    async fn wc_custom_wall_clock() {
        let shared = Shared::new(|| 7_000_000_123u64);
        let server = start_wc(&shared, WcConfig::default()).await;
        let sock = UdpSocket::bind(LOOPBACK).await.unwrap();
        let replies = wc_exchange(&sock, server.addr, &WcMessage::request(1).encode(), 1).await;
        let m = WcMessage::decode(&replies[0]).unwrap();
        assert_eq!(m.transmit.to_ns(), 7_000_000_123);
        assert!(m.receive.to_ns() <= 7_000_000_123);
        assert_eq!(m.precision, wc::encode_precision(1e-6));
        server.stop().await;
    }
}
