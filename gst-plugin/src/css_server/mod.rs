//! DVB-CSS network servers: CSS-WC (UDP), CSS-CII and CSS-TS (WebSocket).
//!
//! No GStreamer here (STYLE 11): the sink owns a [`Shared`] behind an `Arc`, updates it from
//! `render()`/events through plain method calls ([`Shared::set_cii`],
//! [`Shared::set_timeline`], …) and spawns the three `run_*` futures on the plugin's runtime.
//! Each server follows mini-redis (STYLE 9): the caller binds (port 0 works), the loop selects
//! over accept/receive and `shutdown`, and a `Semaphore` bounds WebSocket connections.
//! All message encoding and maths comes from [`crate::proto::css`].
//!
//! # Wall clock
//!
//! The wall clock is whatever [`WallClock`] the caller gives [`Shared::new`]: the WC server
//! answers with it and every CSS-TS `wallClockTime` is read from it and from the timeline
//! correlations the sink supplies, which must be expressed in the same clock (checklist 16,
//! 80). The sink passes the pipeline clock (`GstSystemClock`, i.e. `CLOCK_MONOTONIC`, in ns) so
//! that correlations built from buffer running times need no conversion; standalone uses
//! take [`MonotonicWallClock`] (`proto::css::clock::monotonic_ns`). Any `Fn() -> u64` is a
//! wall clock too (precision 1 µs, max frequency error 500 ppm unless the trait methods are
//! overridden).
//!
//! # WC receive timestamps
//!
//! The WC server runs on its own thread ([`serve_wc`]; [`run_wc`] wraps it as a future). On
//! Linux the socket gets `SO_TIMESTAMPNS` and requests are read in batches with `recvmmsg`;
//! each request's kernel receive stamp (always `CLOCK_REALTIME`) is turned into an *age* by
//! comparing it with `CLOCK_REALTIME` read once right after `recvmmsg` returns, and its
//! receive timevalue is `wall_clock.now_ns() − age`. This keeps the kernel's accuracy
//! without mixing clock domains, whatever clock the wall clock is. An age outside 0..1 s (the
//! realtime clock was stepped) or a missing stamp falls back to the wall clock read on
//! receipt. The transmit timevalue is read once per batch, right before the `sendmmsg` that
//! sends the answers; with follow-ups enabled the type-3 messages carry a time read after
//! the type-2 batch was sent.

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};
use tokio_tungstenite::tungstenite::{self, http, Message};
use tokio_tungstenite::WebSocketStream;

use crate::proto::css::cii::CiiState;
use crate::proto::css::clock::{self, ClockError, Correlation};
use crate::proto::css::timeline::TickRate;
use crate::proto::css::ts::{self, AptEptLpt, ControlTimestamp, SetupData};
use crate::proto::css::wc::{self, ServerClockInfo, WcError, WC_MESSAGE_LEN};
use crate::proto::css::MAX_JSON_MESSAGE_LEN;

/// Precision (seconds) a [`WallClock`] reports unless it says otherwise.
pub const DEFAULT_WALL_CLOCK_PRECISION_SECS: f64 = 1e-6;

/// Max frequency error (ppm) a [`WallClock`] reports unless it says otherwise (pydvbcss's
/// default, digest 2.4).
pub const DEFAULT_WALL_CLOCK_MAX_FREQ_ERROR_PPM: f64 = 500.0;

/// The TV's wall clock in nanoseconds, shared by the WC and TS servers.
///
/// Must never run backwards (checklist 15). Any `Fn() -> u64 + Send + Sync` implements it.
pub trait WallClock: Send + Sync + 'static {
    /// Current wall clock time (ns, any epoch).
    fn now_ns(&self) -> u64;

    /// Clock precision in seconds, as reported in WC responses (never better than the truth,
    /// checklist 14).
    fn precision_secs(&self) -> f64 {
        DEFAULT_WALL_CLOCK_PRECISION_SECS
    }

    /// Maximum frequency error in ppm, as reported in WC responses.
    fn max_freq_error_ppm(&self) -> f64 {
        DEFAULT_WALL_CLOCK_MAX_FREQ_ERROR_PPM
    }
}

impl<F> WallClock for F
where
    F: Fn() -> u64 + Send + Sync + 'static,
{
    fn now_ns(&self) -> u64 {
        self()
    }
}

/// `proto::css::clock::monotonic_ns` (`CLOCK_MONOTONIC`, process-relative epoch) as a wall
/// clock; precision measured at construction, floored at 1 µs.
#[derive(Debug, Clone, Copy)]
pub struct MonotonicWallClock {
    precision_secs: f64,
}

impl MonotonicWallClock {
    /// Measure the clock's step and build it.
    pub fn new() -> Self {
        Self {
            precision_secs: clock::measure_monotonic_precision(1000)
                .max(DEFAULT_WALL_CLOCK_PRECISION_SECS),
        }
    }
}

impl Default for MonotonicWallClock {
    fn default() -> Self {
        Self::new()
    }
}

impl WallClock for MonotonicWallClock {
    fn now_ns(&self) -> u64 {
        clock::monotonic_ns()
    }

    fn precision_secs(&self) -> f64 {
        self.precision_secs
    }
}

/// What the sink knows about one timeline.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum TimelineState {
    /// Not known yet (e.g. no TEMI descriptor seen): clients that asked for it get no CT
    /// until it is known (digest 5.4).
    Pending,
    /// Known to be unavailable: clients get an unavailable CT.
    Unavailable,
    /// Available: `correlation.parent_ticks` is wall clock ns, `correlation.child_ticks`
    /// timeline ticks, `speed` the timeline speed (0 paused). CTs are sent at the correlation
    /// point, so no rounding is added.
    Available {
        /// Wall clock (parent) ↔ timeline ticks (child).
        correlation: Correlation,
        /// Timeline speed multiplier (finite).
        speed: f64,
    },
}

/// One timeline the server can serve.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TimelineSource {
    /// Tick rate of the timeline (used for the resend threshold of `ts::must_send`).
    pub tick_rate: TickRate,
    /// Current state.
    pub state: TimelineState,
}

/// Everything the WebSocket sessions watch; one `watch` value, so each update wakes every
/// connected client once.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerState {
    /// CII state (`{{host}}`/`{{port}}` placeholders in URLs are substituted per client).
    pub cii: CiiState,
    /// Timelines by exact selector string.
    pub timelines: BTreeMap<String, TimelineSource>,
    /// CSS-CII endpoint switched on (off → upgrades get 403, open sessions close with 1001).
    pub cii_enabled: bool,
    /// CSS-TS endpoint switched on.
    pub ts_enabled: bool,
}

/// Which server an event or setting is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Endpoint {
    /// CSS-WC (UDP).
    Wc,
    /// CSS-CII (WebSocket).
    Cii,
    /// CSS-TS (WebSocket).
    Ts,
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Wc => "CSS-WC",
            Self::Cii => "CSS-CII",
            Self::Ts => "CSS-TS",
        })
    }
}

/// Things the servers report to the optional event hook (for logging by the sink).
#[derive(Debug, Clone)]
pub enum ServerEvent {
    /// WC datagrams that were not well-formed requests were ignored. Reported at most once
    /// per second; `total` counts all of them since start.
    WcIgnored {
        /// Source of the latest one.
        from: SocketAddr,
        /// Why the latest one was ignored.
        error: WcError,
        /// Total ignored so far.
        total: u64,
    },
    /// A WebSocket client completed the upgrade.
    Connected {
        /// CII or TS.
        endpoint: Endpoint,
        /// Client address.
        peer: SocketAddr,
    },
    /// An upgrade was refused with an HTTP status (403, 404, 503).
    Refused {
        /// CII or TS.
        endpoint: Endpoint,
        /// Client address.
        peer: SocketAddr,
        /// HTTP status sent.
        status: u16,
    },
    /// A WebSocket session ended.
    Disconnected {
        /// CII or TS.
        endpoint: Endpoint,
        /// Client address.
        peer: SocketAddr,
    },
    /// A client message could not be used (ignored, or the session closed if oversized).
    BadMessage {
        /// CII or TS.
        endpoint: Endpoint,
        /// Client address.
        peer: SocketAddr,
        /// What was wrong.
        error: String,
    },
    /// A CSS-TS client sent its SetupData.
    Setup {
        /// Client address.
        peer: SocketAddr,
        /// The message.
        setup: SetupData,
    },
    /// A CSS-TS client reported its presentation timing (never answered, digest 5.5).
    AptEptLpt {
        /// Client address.
        peer: SocketAddr,
        /// The message.
        message: AptEptLpt,
    },
}

/// Hook called for every [`ServerEvent`]; called with no lock held, from runtime threads. It
/// must not block.
pub type EventHook = Arc<dyn Fn(&ServerEvent) + Send + Sync>;

/// Counters, as returned by [`Shared::stats`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ServerStats {
    /// WC requests answered.
    pub wc_requests: u64,
    /// WC datagrams ignored (not well-formed requests).
    pub wc_ignored: u64,
    /// WC replies whose kernel receive timestamp was used.
    pub wc_kernel_timestamps: u64,
    /// CII sessions accepted.
    pub cii_sessions: u64,
    /// TS sessions accepted.
    pub ts_sessions: u64,
    /// Upgrades refused with 403.
    pub refused_403: u64,
    /// Upgrades refused with 404.
    pub refused_404: u64,
    /// Upgrades refused with 503.
    pub refused_503: u64,
    /// TCP connections dropped without an answer (too many handshakes in progress).
    pub dropped: u64,
    /// CII messages sent.
    pub cii_messages: u64,
    /// Control timestamps sent.
    pub control_timestamps: u64,
    /// Client messages that could not be used.
    pub bad_messages: u64,
    /// AptEptLpt messages received.
    pub apt_ept_lpt: u64,
}

#[derive(Default)]
struct Counters {
    wc_requests: AtomicU64,
    wc_ignored: AtomicU64,
    wc_kernel_timestamps: AtomicU64,
    cii_sessions: AtomicU64,
    ts_sessions: AtomicU64,
    refused_403: AtomicU64,
    refused_404: AtomicU64,
    refused_503: AtomicU64,
    dropped: AtomicU64,
    cii_messages: AtomicU64,
    control_timestamps: AtomicU64,
    bad_messages: AtomicU64,
    apt_ept_lpt: AtomicU64,
}

fn bump(c: &AtomicU64) -> u64 {
    c.fetch_add(1, Ordering::Relaxed) + 1
}

/// State shared between the sink and the servers. Create with [`Shared::new`]; all methods
/// take `&self` and never block on I/O, so `render()` may call them.
pub struct Shared {
    state: watch::Sender<ServerState>,
    clock: Arc<dyn WallClock>,
    counters: Counters,
    events: Option<EventHook>,
}

impl fmt::Debug for Shared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Shared")
            .field("state", &*self.state.borrow())
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl Shared {
    /// Start with CII [`CiiState::server_default`], no timelines, both endpoints enabled.
    pub fn new(clock: impl WallClock) -> Arc<Self> {
        Self::build(Arc::new(clock), None)
    }

    /// As [`Shared::new`], with an event hook.
    pub fn with_events(clock: impl WallClock, events: EventHook) -> Arc<Self> {
        Self::build(Arc::new(clock), Some(events))
    }

    fn build(clock: Arc<dyn WallClock>, events: Option<EventHook>) -> Arc<Self> {
        Arc::new(Self {
            state: watch::Sender::new(ServerState {
                cii: CiiState::server_default(),
                timelines: BTreeMap::new(),
                cii_enabled: true,
                ts_enabled: true,
            }),
            clock,
            counters: Counters::default(),
            events,
        })
    }

    /// The wall clock now (ns).
    pub fn wall_clock_ns(&self) -> u64 {
        self.clock.now_ns()
    }

    /// The wall clock.
    pub fn wall_clock(&self) -> &dyn WallClock {
        &*self.clock
    }

    /// A copy of the current state.
    pub fn state(&self) -> ServerState {
        self.state.borrow().clone()
    }

    /// A copy of the current CII state.
    pub fn cii(&self) -> CiiState {
        self.state.borrow().cii.clone()
    }

    /// Replace the CII state; clients get a diff if anything changed. Validate the state
    /// (`CiiState::full_message().validate()`) before, if it comes from configuration.
    pub fn set_cii(&self, cii: CiiState) {
        self.state.send_if_modified(|s| {
            if s.cii == cii {
                return false;
            }
            s.cii = cii;
            true
        });
    }

    /// Modify the CII state in place; clients get a diff if anything changed.
    pub fn update_cii(&self, f: impl FnOnce(&mut CiiState)) {
        self.state.send_if_modified(|s| {
            let before = s.cii.clone();
            f(&mut s.cii);
            s.cii != before
        });
    }

    /// Set a timeline: `Some(correlation)` (parent wall clock ns, child ticks at `tick_rate`)
    /// makes it available at `speed`; `None` makes it known but unavailable. Clients are sent
    /// a CT when `ts::must_send` says so. Fails for a non-finite speed.
    pub fn set_timeline(
        &self,
        selector: &str,
        tick_rate: TickRate,
        correlation: Option<Correlation>,
        speed: f64,
    ) -> Result<(), ClockError> {
        let state = match correlation {
            Some(correlation) => {
                if !speed.is_finite() {
                    return Err(ClockError::InvalidSpeed(speed));
                }
                TimelineState::Available { correlation, speed }
            }
            None => TimelineState::Unavailable,
        };
        self.set_timeline_state(selector, tick_rate, state);
        Ok(())
    }

    /// Set a timeline's state directly (e.g. [`TimelineState::Pending`]).
    pub fn set_timeline_state(&self, selector: &str, tick_rate: TickRate, state: TimelineState) {
        let src = TimelineSource { tick_rate, state };
        self.state.send_if_modified(|s| {
            if s.timelines.get(selector) == Some(&src) {
                return false;
            }
            s.timelines.insert(selector.to_owned(), src);
            true
        });
    }

    /// Forget a timeline: clients that asked for it get an unavailable CT.
    pub fn remove_timeline(&self, selector: &str) {
        self.state
            .send_if_modified(|s| s.timelines.remove(selector).is_some());
    }

    /// Switch an endpoint on or off (WC is always on while its server runs).
    pub fn set_enabled(&self, endpoint: Endpoint, enabled: bool) {
        self.state.send_if_modified(|s| {
            let slot = match endpoint {
                Endpoint::Cii => &mut s.cii_enabled,
                Endpoint::Ts => &mut s.ts_enabled,
                Endpoint::Wc => return false,
            };
            let changed = *slot != enabled;
            *slot = enabled;
            changed
        });
    }

    fn is_enabled(&self, endpoint: Endpoint) -> bool {
        let s = self.state.borrow();
        match endpoint {
            Endpoint::Cii => s.cii_enabled,
            Endpoint::Ts => s.ts_enabled,
            Endpoint::Wc => true,
        }
    }

    /// Counters so far.
    pub fn stats(&self) -> ServerStats {
        let c = &self.counters;
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        ServerStats {
            wc_requests: g(&c.wc_requests),
            wc_ignored: g(&c.wc_ignored),
            wc_kernel_timestamps: g(&c.wc_kernel_timestamps),
            cii_sessions: g(&c.cii_sessions),
            ts_sessions: g(&c.ts_sessions),
            refused_403: g(&c.refused_403),
            refused_404: g(&c.refused_404),
            refused_503: g(&c.refused_503),
            dropped: g(&c.dropped),
            cii_messages: g(&c.cii_messages),
            control_timestamps: g(&c.control_timestamps),
            bad_messages: g(&c.bad_messages),
            apt_ept_lpt: g(&c.apt_ept_lpt),
        }
    }

    fn emit(&self, event: ServerEvent) {
        if let Some(hook) = &self.events {
            hook(&event);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// CSS-WC
// ---------------------------------------------------------------------------------------------

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

// ---------------------------------------------------------------------------------------------
// WebSocket servers (CSS-CII, CSS-TS)
// ---------------------------------------------------------------------------------------------

/// Settings of one WebSocket endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WsConfig {
    /// Request path served (exact match, query ignored); other paths get 404.
    pub path: String,
    /// Open sessions at most; further upgrades get 503.
    pub max_connections: usize,
    /// Handshakes (including refusals) in progress at most; further TCP connections are
    /// closed without an answer.
    pub max_pending_handshakes: usize,
    /// Largest client message (bytes); a larger one closes the session with 1009.
    pub max_message_len: usize,
    /// Time allowed for the HTTP upgrade.
    pub handshake_timeout: Duration,
    /// Time allowed for one send to a client before the session is dropped.
    pub send_timeout: Duration,
}

impl WsConfig {
    /// Defaults for `path`: 32 sessions, 16 pending handshakes,
    /// [`MAX_JSON_MESSAGE_LEN`], 5 s handshake and send timeouts.
    pub fn new(path: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            max_connections: 32,
            max_pending_handshakes: 16,
            max_message_len: MAX_JSON_MESSAGE_LEN,
            handshake_timeout: Duration::from_secs(5),
            send_timeout: Duration::from_secs(5),
        }
    }

    /// `/cii` (pydvbcss's example path).
    pub fn cii() -> Self {
        Self::new("/cii")
    }

    /// `/ts`.
    pub fn ts() -> Self {
        Self::new("/ts")
    }
}

/// Serve CSS-CII on `listener` until `shutdown` completes; then open sessions are closed with
/// 1001 and the function returns once they are gone (at most about 2 s).
///
/// Each client gets the full state on connect, then [`CiiState::diff`]s when it changes;
/// `{{host}}`/`{{port}}` in `wcUrl`, `tsUrl` and `teUrl` become the local address/port of
/// that client's connection. Client messages are ignored.
pub async fn run_cii(
    listener: TcpListener,
    shared: Arc<Shared>,
    config: WsConfig,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    run_ws(listener, shared, config, shutdown, Endpoint::Cii).await
}

/// Serve CSS-TS on `listener` until `shutdown` completes (see [`run_cii`] for the
/// connection handling).
///
/// A session waits for a SetupData (unparseable messages before it are ignored), then sends
/// control timestamps whenever `ts::must_send` says so; later messages are parsed as
/// AptEptLpt, reported through the event hook and never answered.
pub async fn run_ts(
    listener: TcpListener,
    shared: Arc<Shared>,
    config: WsConfig,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    run_ws(listener, shared, config, shutdown, Endpoint::Ts).await
}

/// Serve CSS-CII and CSS-TS on one listener (pydvbcss's convention: `ws://host:7681/cii` and
/// `ws://host:7681/ts`), routing each upgrade by its request path (`cii.path`, `ts.path`);
/// other paths get 404. Each endpoint keeps its own connection limit; the handshake limits
/// and timeout are `cii`'s, the message size limit the larger of the two.
pub async fn run_cii_ts(
    listener: TcpListener,
    shared: Arc<Shared>,
    cii: WsConfig,
    ts: WsConfig,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    run_routes(
        listener,
        shared,
        vec![(Endpoint::Cii, cii), (Endpoint::Ts, ts)],
        shutdown,
    )
    .await
}

async fn run_ws(
    listener: TcpListener,
    shared: Arc<Shared>,
    config: WsConfig,
    shutdown: impl Future<Output = ()>,
    endpoint: Endpoint,
) -> io::Result<()> {
    run_routes(listener, shared, vec![(endpoint, config)], shutdown).await
}

/// One path served by a WebSocket listener.
struct Route {
    endpoint: Endpoint,
    config: Arc<WsConfig>,
    sessions: Arc<Semaphore>,
}

/// Limits applied before the request path is known.
#[derive(Debug, Clone, Copy)]
struct HandshakeLimits {
    max_message_len: usize,
    handshake_timeout: Duration,
}

async fn run_routes(
    listener: TcpListener,
    shared: Arc<Shared>,
    routes: Vec<(Endpoint, WsConfig)>,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    let first = routes
        .first()
        .map(|(_, c)| c.clone())
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no WebSocket route"))?;
    let limits = HandshakeLimits {
        max_message_len: routes
            .iter()
            .map(|(_, c)| c.max_message_len)
            .max()
            .unwrap_or(first.max_message_len),
        handshake_timeout: first.handshake_timeout,
    };
    let routes: Arc<Vec<Route>> = Arc::new(
        routes
            .into_iter()
            .map(|(endpoint, config)| Route {
                endpoint,
                sessions: Arc::new(Semaphore::new(config.max_connections)),
                config: Arc::new(config),
            })
            .collect(),
    );
    let pending = Arc::new(Semaphore::new(first.max_pending_handshakes.max(1)));
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut tasks = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(a) => a,
                    Err(_) => {
                        // EMFILE and the like: back off instead of spinning.
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let Ok(handshake_permit) = pending.clone().try_acquire_owned() else {
                    bump(&shared.counters.dropped);
                    drop(stream);
                    continue;
                };
                tasks.spawn(connection(
                    stream,
                    peer,
                    shared.clone(),
                    routes.clone(),
                    limits,
                    handshake_permit,
                    stop_rx.clone(),
                ));
            }
        }
    }
    let _ = stop_tx.send(true);
    let drained = async { while tasks.join_next().await.is_some() {} };
    if tokio::time::timeout(Duration::from_secs(2), drained)
        .await
        .is_err()
    {
        tasks.abort_all();
    }
    Ok(())
}

fn error_response(status: http::StatusCode) -> ErrorResponse {
    let mut r = ErrorResponse::new(Some(
        status.canonical_reason().unwrap_or("refused").to_owned(),
    ));
    *r.status_mut() = status;
    r
}

// The callback's `Result<Response, ErrorResponse>` is tungstenite's `Callback` signature.
#[allow(clippy::result_large_err)]
async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    shared: Arc<Shared>,
    routes: Arc<Vec<Route>>,
    limits: HandshakeLimits,
    handshake_permit: OwnedSemaphorePermit,
    stop: watch::Receiver<bool>,
) {
    let _ = stream.set_nodelay(true);
    let local = stream.local_addr().ok();
    let mut refused: Option<(Endpoint, http::StatusCode)> = None;
    let mut accepted: Option<(Endpoint, Arc<WsConfig>, OwnedSemaphorePermit)> = None;
    let callback = |req: &Request, resp: Response| -> Result<Response, ErrorResponse> {
        let route = routes.iter().find(|r| req.uri().path() == r.config.path);
        let status = match route {
            None => Some((routes[0].endpoint, http::StatusCode::NOT_FOUND)),
            Some(r) if !shared.is_enabled(r.endpoint) => {
                Some((r.endpoint, http::StatusCode::FORBIDDEN))
            }
            Some(r) => match r.sessions.clone().try_acquire_owned() {
                Ok(permit) => {
                    accepted = Some((r.endpoint, r.config.clone(), permit));
                    None
                }
                Err(_) => Some((r.endpoint, http::StatusCode::SERVICE_UNAVAILABLE)),
            },
        };
        match status {
            Some(s) => {
                refused = Some(s);
                Err(error_response(s.1))
            }
            None => Ok(resp),
        }
    };
    let ws_config = WebSocketConfig::default()
        .max_message_size(Some(limits.max_message_len))
        .max_frame_size(Some(limits.max_message_len));
    let handshake =
        tokio_tungstenite::accept_hdr_async_with_config(stream, callback, Some(ws_config));
    let result = tokio::time::timeout(limits.handshake_timeout, handshake).await;
    drop(handshake_permit);
    if let Some((endpoint, status)) = refused {
        let c = &shared.counters;
        bump(match status {
            http::StatusCode::FORBIDDEN => &c.refused_403,
            http::StatusCode::NOT_FOUND => &c.refused_404,
            _ => &c.refused_503,
        });
        shared.emit(ServerEvent::Refused {
            endpoint,
            peer,
            status: status.as_u16(),
        });
        return;
    }
    let (Ok(Ok(ws)), Some((endpoint, config, session_permit))) = (result, accepted) else {
        return;
    };
    shared.emit(ServerEvent::Connected { endpoint, peer });
    let mut session = Session {
        ws,
        peer,
        shared: shared.clone(),
        endpoint,
        send_timeout: config.send_timeout,
    };
    match endpoint {
        Endpoint::Cii => {
            bump(&shared.counters.cii_sessions);
            session.run_cii(local, stop).await;
        }
        _ => {
            bump(&shared.counters.ts_sessions);
            session.run_ts(stop).await;
        }
    }
    drop(session_permit);
    shared.emit(ServerEvent::Disconnected { endpoint, peer });
}

async fn wait_stop(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

/// Replace `{{host}}`/`{{port}}` in the URL properties with the local address of a client's
/// connection (IPv6 in brackets, IPv4-mapped addresses as IPv4).
pub fn substitute_host(cii: &CiiState, local: Option<SocketAddr>) -> CiiState {
    let mut c = cii.clone();
    let Some(local) = local else {
        return c;
    };
    let host = match local.ip() {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => format!("[{v6}]"),
        },
    };
    let port = local.port().to_string();
    for url in [&mut c.wc_url, &mut c.ts_url, &mut c.te_url]
        .into_iter()
        .flatten()
    {
        if url.contains("{{") {
            *url = url.replace("{{host}}", &host).replace("{{port}}", &port);
        }
    }
    c
}

/// What happened to the incoming side of a session.
enum Incoming {
    Text(String),
    Other,
    Closed,
    TooLarge,
}

struct Session {
    ws: WebSocketStream<TcpStream>,
    peer: SocketAddr,
    shared: Arc<Shared>,
    endpoint: Endpoint,
    send_timeout: Duration,
}

impl Session {
    fn classify(&self, m: Option<Result<Message, tungstenite::Error>>) -> Incoming {
        match m {
            Some(Ok(Message::Text(t))) => Incoming::Text(t.as_str().to_owned()),
            Some(Ok(Message::Close(_))) | None => Incoming::Closed,
            Some(Ok(_)) => Incoming::Other,
            Some(Err(tungstenite::Error::Capacity(e))) => {
                self.bad_message(e.to_string());
                Incoming::TooLarge
            }
            Some(Err(_)) => Incoming::Closed,
        }
    }

    fn bad_message(&self, error: String) {
        bump(&self.shared.counters.bad_messages);
        self.shared.emit(ServerEvent::BadMessage {
            endpoint: self.endpoint,
            peer: self.peer,
            error,
        });
    }

    /// Send one text message; `false` if the session is dead or too slow.
    async fn send(&mut self, text: String) -> bool {
        matches!(
            tokio::time::timeout(self.send_timeout, self.ws.send(Message::text(text))).await,
            Ok(Ok(()))
        )
    }

    /// Close with `code`, then wait briefly for the client's close reply.
    async fn close(&mut self, code: CloseCode) {
        let frame = CloseFrame {
            code,
            reason: "".into(),
        };
        let closing = async {
            if self.ws.close(Some(frame)).await.is_ok() {
                while let Some(Ok(_)) = self.ws.next().await {}
            }
        };
        let _ = tokio::time::timeout(Duration::from_secs(1), closing).await;
    }

    async fn run_cii(&mut self, local: Option<SocketAddr>, mut stop: watch::Receiver<bool>) {
        let mut rx = self.shared.state.subscribe();
        let (enabled, mut last) = {
            let s = rx.borrow_and_update();
            (s.cii_enabled, substitute_host(&s.cii, local))
        };
        if !enabled || *stop.borrow() {
            return self.close(CloseCode::Away).await;
        }
        if !self.send(last.full_message().to_json()).await {
            return;
        }
        bump(&self.shared.counters.cii_messages);
        loop {
            tokio::select! {
                _ = wait_stop(&mut stop) => return self.close(CloseCode::Away).await,
                changed = rx.changed() => {
                    let next = changed.ok().and_then(|()| {
                        let s = rx.borrow_and_update();
                        s.cii_enabled.then(|| substitute_host(&s.cii, local))
                    });
                    let Some(next) = next else {
                        return self.close(CloseCode::Away).await;
                    };
                    if let Some(diff) = CiiState::diff(&last, &next) {
                        if !self.send(diff.to_json()).await {
                            return;
                        }
                        bump(&self.shared.counters.cii_messages);
                    }
                    last = next;
                }
                m = self.ws.next() => match self.classify(m) {
                    Incoming::Closed => return,
                    Incoming::TooLarge => return self.close(CloseCode::Size).await,
                    // Checklist 46: anything the client sends is ignored.
                    Incoming::Text(_) | Incoming::Other => {}
                },
            }
        }
    }

    async fn run_ts(&mut self, mut stop: watch::Receiver<bool>) {
        let mut rx = self.shared.state.subscribe();
        let mut setup: Option<SetupData> = None;
        let mut last: Option<ControlTimestamp> = None;
        loop {
            tokio::select! {
                _ = wait_stop(&mut stop) => return self.close(CloseCode::Away).await,
                changed = rx.changed() => {
                    let enabled = changed.is_ok() && rx.borrow_and_update().ts_enabled;
                    if !enabled {
                        return self.close(CloseCode::Away).await;
                    }
                    if let Some(s) = &setup {
                        if !self.update_ts(&rx, s, &mut last).await {
                            return;
                        }
                    }
                }
                m = self.ws.next() => match self.classify(m) {
                    Incoming::Closed => return,
                    Incoming::TooLarge => return self.close(CloseCode::Size).await,
                    Incoming::Other => {}
                    Incoming::Text(text) if setup.is_none() => match SetupData::parse(&text) {
                        Ok(s) => {
                            self.shared.emit(ServerEvent::Setup { peer: self.peer, setup: s.clone() });
                            if !self.update_ts(&rx, &s, &mut last).await {
                                return;
                            }
                            setup = Some(s);
                        }
                        Err(e) => self.bad_message(format!("expected SetupData: {e}")),
                    },
                    Incoming::Text(text) => match AptEptLpt::parse(&text) {
                        Ok(message) => {
                            bump(&self.shared.counters.apt_ept_lpt);
                            self.shared.emit(ServerEvent::AptEptLpt { peer: self.peer, message });
                        }
                        Err(e) => self.bad_message(format!("expected AptEptLpt: {e}")),
                    },
                },
            }
        }
    }

    /// Send a CT if the current state calls for one; `false` if the session died.
    async fn update_ts(
        &mut self,
        rx: &watch::Receiver<ServerState>,
        setup: &SetupData,
        last: &mut Option<ControlTimestamp>,
    ) -> bool {
        let wall = i64::try_from(self.shared.wall_clock_ns()).unwrap_or(i64::MAX);
        let next = control_timestamp_for(&rx.borrow(), setup, wall);
        let Some((ct, rate)) = next else {
            return true;
        };
        if !ts::must_send(last.as_ref(), &ct, rate, ts::DEFAULT_RESEND_THRESHOLD_TICKS) {
            return true;
        }
        let Ok(json) = ct.to_json() else {
            return true;
        };
        if !self.send(json).await {
            return false;
        }
        bump(&self.shared.counters.control_timestamps);
        *last = Some(ct);
        true
    }
}

/// The CT a client with `setup` should have now (`wall_now` = wall clock ns), with the
/// timeline's tick rate (ticks/s, NaN if unknown); `None` while the timeline is
/// [`TimelineState::Pending`] (nothing to send yet).
pub fn control_timestamp_for(
    state: &ServerState,
    setup: &SetupData,
    wall_now: i64,
) -> Option<(ControlTimestamp, f64)> {
    let src = state.timelines.get(&setup.timeline_selector);
    let rate = src.map_or(f64::NAN, |s| s.tick_rate.ticks_per_second());
    let unavailable = Some((ControlTimestamp::unavailable(wall_now), rate));
    if !ts::is_timeline_available(state.cii.content_id.as_deref(), setup, src.is_some()) {
        return unavailable;
    }
    match src?.state {
        TimelineState::Pending => None,
        TimelineState::Unavailable => unavailable,
        TimelineState::Available { correlation, speed } => Some((
            ControlTimestamp::available(correlation.parent_ticks, correlation.child_ticks, speed),
            rate,
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::css::cii::{CiiMessage, ContentIdStatus, TimelineOption};
    use crate::proto::css::timeline::TimelineSelector;
    use crate::proto::css::wc::{MessageType, Timevalue, WcMessage};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::sync::oneshot;
    use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

    const PTS: &str = "urn:dvb:css:timeline:pts";
    const SERVICE: &str = "dvb://233a.1004.1044";
    const LOOPBACK: &str = "127.0.0.1:0";
    const STEP: Duration = Duration::from_secs(5);

    type Ws = WebSocketStream<tokio_tungstenite::MaybeTlsStream<TcpStream>>;

    /// A server task plus the means to stop it.
    struct Running {
        addr: SocketAddr,
        stop: Option<oneshot::Sender<()>>,
        task: tokio::task::JoinHandle<io::Result<()>>,
    }

    impl Running {
        async fn stop(mut self) {
            let _ = self.stop.take().expect("stopped once").send(());
            tokio::time::timeout(STEP, self.task)
                .await
                .expect("server stops")
                .expect("no panic")
                .expect("clean exit");
        }
    }

    fn stopper() -> (oneshot::Sender<()>, impl Future<Output = ()>) {
        let (tx, rx) = oneshot::channel::<()>();
        (tx, async move {
            let _ = rx.await;
        })
    }

    async fn start_wc(shared: &Arc<Shared>, config: WcConfig) -> Running {
        let socket = UdpSocket::bind(LOOPBACK).await.unwrap();
        let addr = socket.local_addr().unwrap();
        let (tx, sd) = stopper();
        let task = tokio::spawn(run_wc(socket, shared.clone(), config, sd));
        Running {
            addr,
            stop: Some(tx),
            task,
        }
    }

    async fn start_ws(shared: &Arc<Shared>, endpoint: Endpoint, config: WsConfig) -> Running {
        let listener = TcpListener::bind(LOOPBACK).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, sd) = stopper();
        let task = match endpoint {
            Endpoint::Cii => tokio::spawn(run_cii(listener, shared.clone(), config, sd)),
            _ => tokio::spawn(run_ts(listener, shared.clone(), config, sd)),
        };
        Running {
            addr,
            stop: Some(tx),
            task,
        }
    }

    fn shared() -> Arc<Shared> {
        Shared::new(MonotonicWallClock::new())
    }

    async fn connect(addr: SocketAddr, path: &str) -> Ws {
        let (ws, _) = tokio::time::timeout(
            STEP,
            tokio_tungstenite::connect_async(format!("ws://{addr}{path}")),
        )
        .await
        .unwrap()
        .unwrap();
        ws
    }

    /// Next text message, or panic after `STEP`.
    async fn next_text(ws: &mut Ws) -> String {
        loop {
            let m = tokio::time::timeout(STEP, ws.next())
                .await
                .expect("message in time")
                .expect("stream open")
                .expect("no error");
            if let Message::Text(t) = m {
                return t.as_str().to_owned();
            }
        }
    }

    /// Nothing arrives within `d` (the connection stays open).
    async fn assert_quiet(ws: &mut Ws, d: Duration) {
        if let Ok(m) = tokio::time::timeout(d, ws.next()).await {
            panic!("unexpected {m:?}");
        }
    }

    /// The close code the server sends, waiting up to `STEP`.
    async fn close_code(ws: &mut Ws) -> Option<CloseCode> {
        loop {
            match tokio::time::timeout(STEP, ws.next()).await.expect("closes") {
                Some(Ok(Message::Close(f))) => return f.map(|f| f.code),
                Some(Ok(_)) => {}
                Some(Err(_)) | None => return None,
            }
        }
    }

    async fn http_status(addr: SocketAddr, path: &str) -> u16 {
        let mut s = TcpStream::connect(addr).await.unwrap();
        let req = format!(
            "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        );
        s.write_all(req.as_bytes()).await.unwrap();
        let mut buf = vec![0u8; 1024];
        let n = tokio::time::timeout(STEP, s.read(&mut buf))
            .await
            .unwrap()
            .unwrap();
        let head = String::from_utf8_lossy(&buf[..n]);
        head.split(' ').nth(1).unwrap().parse().unwrap()
    }

    // ----- WC -----

    async fn wc_exchange(sock: &UdpSocket, server: SocketAddr, req: &[u8]) -> Vec<Vec<u8>> {
        sock.send_to(req, server).await.unwrap();
        let mut out = Vec::new();
        let mut buf = [0u8; 256];
        while let Ok(Ok((n, from))) =
            tokio::time::timeout(Duration::from_millis(200), sock.recv_from(&mut buf)).await
        {
            assert_eq!(from, server, "checklist 5");
            out.push(buf[..n].to_vec());
        }
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
        let replies = wc_exchange(&sock, server.addr, &req).await;
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
        let replies = wc_exchange(&sock, server.addr, &req).await;
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
        assert_eq!(wc_exchange(&sock, server.addr, &good).await.len(), 1);
        for chunk in bad.chunks(16) {
            for b in chunk {
                sock.send_to(b, server.addr).await.unwrap();
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        // None of them is answered, and a good request still is (checklist 1–4).
        let replies = wc_exchange(&sock, server.addr, &good).await;
        assert_eq!(replies.len(), 1);
        assert_eq!(WcMessage::decode(&replies[0]).unwrap().originate.to_ns(), 5);
        server.stop().await;
        assert_eq!(shared.stats().wc_ignored, bad.len() as u64);
        // rate-limited: one report for the burst
        assert_eq!(events.load(Ordering::Relaxed), 1);
    }

    #[tokio::test]
    async fn wc_custom_wall_clock() {
        let shared = Shared::new(|| 7_000_000_123u64);
        let server = start_wc(&shared, WcConfig::default()).await;
        let sock = UdpSocket::bind(LOOPBACK).await.unwrap();
        let replies = wc_exchange(&sock, server.addr, &WcMessage::request(1).encode()).await;
        let m = WcMessage::decode(&replies[0]).unwrap();
        assert_eq!(m.transmit.to_ns(), 7_000_000_123);
        assert!(m.receive.to_ns() <= 7_000_000_123);
        assert_eq!(m.precision, wc::encode_precision(1e-6));
        server.stop().await;
    }

    // ----- CII -----

    fn sample_cii() -> CiiState {
        CiiState {
            content_id: Some(SERVICE.into()),
            content_id_status: Some(ContentIdStatus::Partial),
            presentation_status: Some("okay".into()),
            wc_url: Some("udp://{{host}}:6677".into()),
            ts_url: Some("ws://{{host}}:{{port}}/ts".into()),
            timelines: Some(vec![TimelineOption::new(
                &TimelineSelector::Pts,
                TickRate::PTS,
                None,
            )]),
            ..CiiState::server_default()
        }
    }

    #[tokio::test]
    async fn cii_full_then_diffs() {
        let shared = shared();
        shared.set_cii(sample_cii());
        let server = start_ws(&shared, Endpoint::Cii, WsConfig::cii()).await;
        let mut ws = connect(server.addr, "/cii").await;
        let first = next_text(&mut ws).await;
        let v: serde_json::Value = serde_json::from_str(&first).unwrap();
        assert_eq!(v["protocolVersion"], "1.1");
        assert_eq!(v["contentId"], SERVICE);
        assert_eq!(v["wcUrl"], "udp://127.0.0.1:6677");
        assert_eq!(
            v["tsUrl"],
            format!("ws://127.0.0.1:{}/ts", server.addr.port())
        );
        assert!(v["mrsUrl"].is_null() && v.get("mrsUrl").is_some());
        // client messages are ignored, connection stays (checklist 46); no change → quiet
        ws.send(Message::text("{\"hello\":1}")).await.unwrap();
        ws.send(Message::text("garbage")).await.unwrap();
        shared.set_cii(sample_cii());
        assert_quiet(&mut ws, Duration::from_millis(200)).await;
        shared.update_cii(|c| {
            c.content_id = Some(format!("{SERVICE};363a~20130218T0915Z--PT00H45M"));
            c.content_id_status = Some(ContentIdStatus::Final);
        });
        let d: serde_json::Value = serde_json::from_str(&next_text(&mut ws).await).unwrap();
        let keys: Vec<_> = d.as_object().unwrap().keys().cloned().collect();
        assert_eq!(keys, ["contentId", "contentIdStatus"]);
        shared.update_cii(|c| c.ts_url = None);
        let d = CiiMessage::parse(&next_text(&mut ws).await).unwrap();
        assert_eq!(
            d,
            CiiMessage {
                ts_url: crate::proto::css::cii::Field::Null,
                ..Default::default()
            }
        );
        // switching the endpoint off closes with 1001 and refuses new upgrades with 403
        shared.set_enabled(Endpoint::Cii, false);
        assert_eq!(close_code(&mut ws).await, Some(CloseCode::Away));
        assert_eq!(http_status(server.addr, "/cii").await, 403);
        shared.set_enabled(Endpoint::Cii, true);
        let mut ws2 = connect(server.addr, "/cii").await;
        next_text(&mut ws2).await;
        server.stop().await;
        let st = shared.stats();
        assert_eq!((st.cii_sessions, st.refused_403), (2, 1));
    }

    #[tokio::test]
    async fn ws_refusals_404_503_and_shutdown_1001() {
        let shared = shared();
        let mut cfg = WsConfig::cii();
        cfg.max_connections = 2;
        let server = start_ws(&shared, Endpoint::Cii, cfg).await;
        assert_eq!(http_status(server.addr, "/nope").await, 404);
        let mut a = connect(server.addr, "/cii").await;
        let mut b = connect(server.addr, "/cii?x=1").await;
        next_text(&mut a).await;
        next_text(&mut b).await;
        for _ in 0..5 {
            assert_eq!(http_status(server.addr, "/cii").await, 503);
        }
        let r = tokio_tungstenite::connect_async(format!("ws://{}/cii", server.addr)).await;
        match r {
            Err(tungstenite::Error::Http(resp)) => assert_eq!(resp.status(), 503),
            other => panic!("{other:?}"),
        }
        // freeing a slot lets the next client in
        a.close(None).await.unwrap();
        drop(a);
        let mut c = None;
        for _ in 0..50 {
            match tokio_tungstenite::connect_async(format!("ws://{}/cii", server.addr)).await {
                Ok((ws, _)) => {
                    c = Some(ws);
                    break;
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        }
        let mut c = c.expect("slot freed");
        next_text(&mut c).await;
        // garbage instead of HTTP: the server survives
        let mut raw = TcpStream::connect(server.addr).await.unwrap();
        raw.write_all(b"\x00\x01garbage\r\n\r\n").await.unwrap();
        drop(raw);
        let (tx, sd) = (server.stop, server.task);
        let _ = tx.expect("armed").send(());
        assert_eq!(close_code(&mut b).await, Some(CloseCode::Away));
        assert_eq!(close_code(&mut c).await, Some(CloseCode::Away));
        tokio::time::timeout(STEP, sd)
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        let st = shared.stats();
        assert_eq!(st.refused_404, 1);
        assert!(st.refused_503 >= 6);
    }

    // ----- TS -----

    fn setup(stem: &str, selector: &str) -> String {
        SetupData::new(stem, selector).to_json()
    }

    async fn next_ct(ws: &mut Ws) -> ControlTimestamp {
        ControlTimestamp::parse(&next_text(ws).await).unwrap()
    }

    #[tokio::test]
    async fn ts_transitions() {
        let shared = shared();
        shared.set_cii(sample_cii());
        let server = start_ws(&shared, Endpoint::Ts, WsConfig::ts()).await;
        let mut ws = connect(server.addr, "/ts").await;
        // garbage before SetupData is ignored (connection stays open)
        ws.send(Message::text("not json")).await.unwrap();
        ws.send(Message::text(setup(SERVICE, PTS))).await.unwrap();
        // no timeline yet → unavailable
        let ct = next_ct(&mut ws).await;
        assert!(!ct.is_available());
        // a second unavailable state is not repeated (checklist 65)
        shared.set_timeline(PTS, TickRate::PTS, None, 1.0).unwrap();
        assert_quiet(&mut ws, Duration::from_millis(150)).await;
        // available
        let c = Correlation::new(1_000_000_000, 90_000);
        shared
            .set_timeline(PTS, TickRate::PTS, Some(c), 1.0)
            .unwrap();
        let ct = next_ct(&mut ws).await;
        assert_eq!(ct, ControlTimestamp::available(1_000_000_000, 90_000, 1.0));
        // same line, new point: nothing sent (checklist 64)
        let c2 = Correlation::new(2_000_000_000, 180_000);
        shared
            .set_timeline(PTS, TickRate::PTS, Some(c2), 1.0)
            .unwrap();
        assert_quiet(&mut ws, Duration::from_millis(150)).await;
        // paused (checklist 61)
        shared
            .set_timeline(PTS, TickRate::PTS, Some(c2), 0.0)
            .unwrap();
        let ct = next_ct(&mut ws).await;
        assert_eq!(ct, ControlTimestamp::available(2_000_000_000, 180_000, 0.0));
        // seek (checklist 62)
        let c3 = Correlation::new(2_000_000_000, 900_000);
        shared
            .set_timeline(PTS, TickRate::PTS, Some(c3), 0.0)
            .unwrap();
        assert_eq!(next_ct(&mut ws).await.timing.unwrap().content_time, 900_000);
        // AptEptLpt accepted, never answered (checklist 68)
        let ael = r#"{"earliest":{"contentTime":"1","wallClockTime":"minusinfinity"},"latest":{"contentTime":"1","wallClockTime":"plusinfinity"}}"#;
        ws.send(Message::text(ael)).await.unwrap();
        ws.send(Message::text("{bad")).await.unwrap();
        assert_quiet(&mut ws, Duration::from_millis(150)).await;
        // content change → stem no longer matches → unavailable (checklist 63)
        shared.update_cii(|c| c.content_id = Some("dvb://1.2.3".into()));
        assert!(!next_ct(&mut ws).await.is_available());
        shared.update_cii(|c| c.content_id = Some(SERVICE.into()));
        assert!(next_ct(&mut ws).await.is_available());
        // removed → unavailable
        shared.remove_timeline(PTS);
        assert!(!next_ct(&mut ws).await.is_available());
        server.stop().await;
        let st = shared.stats();
        assert_eq!(st.apt_ept_lpt, 1);
        assert_eq!(st.bad_messages, 2);
    }

    #[tokio::test]
    async fn ts_pending_and_unknown_selector() {
        let shared = shared();
        shared.set_cii(sample_cii());
        shared.set_timeline_state(PTS, TickRate::PTS, TimelineState::Pending);
        let server = start_ws(&shared, Endpoint::Ts, WsConfig::ts()).await;
        let mut pending = connect(server.addr, "/ts").await;
        pending.send(Message::text(setup("", PTS))).await.unwrap();
        let mut unknown = connect(server.addr, "/ts").await;
        unknown
            .send(Message::text(setup("", "urn:x:nothing")))
            .await
            .unwrap();
        assert!(!next_ct(&mut unknown).await.is_available(), "checklist 53");
        assert_quiet(&mut pending, Duration::from_millis(200)).await;
        let c = Correlation::new(5, 6);
        shared
            .set_timeline(PTS, TickRate::PTS, Some(c), 1.0)
            .unwrap();
        assert_eq!(
            next_ct(&mut pending).await,
            ControlTimestamp::available(5, 6, 1.0)
        );
        assert_quiet(&mut unknown, Duration::from_millis(100)).await;
        server.stop().await;
    }

    #[tokio::test]
    async fn ts_oversized_message_closes_with_1009() {
        let shared = shared();
        let mut cfg = WsConfig::ts();
        cfg.max_message_len = 1024;
        let server = start_ws(&shared, Endpoint::Ts, cfg).await;
        let mut ws = connect(server.addr, "/ts").await;
        let _ = ws.send(Message::text("x".repeat(4096))).await;
        assert_eq!(close_code(&mut ws).await, Some(CloseCode::Size));
        // the server still serves
        let mut ws = connect(server.addr, "/ts").await;
        ws.send(Message::text(setup("", PTS))).await.unwrap();
        assert!(!next_ct(&mut ws).await.is_available());
        server.stop().await;
    }

    #[test]
    fn host_substitution() {
        let c = sample_cii();
        let v6: SocketAddr = "[::1]:7681".parse().unwrap();
        let s = substitute_host(&c, Some(v6));
        assert_eq!(s.wc_url.as_deref(), Some("udp://[::1]:6677"));
        assert_eq!(s.ts_url.as_deref(), Some("ws://[::1]:7681/ts"));
        let mapped: SocketAddr = "[::ffff:192.0.2.1]:80".parse().unwrap();
        let s = substitute_host(&c, Some(mapped));
        assert_eq!(s.wc_url.as_deref(), Some("udp://192.0.2.1:6677"));
        assert_eq!(substitute_host(&c, None), c);
    }

    #[test]
    fn shared_updates_notify_only_on_change() {
        let shared = shared();
        let mut rx = shared.state.subscribe();
        rx.borrow_and_update();
        shared.set_cii(CiiState::server_default());
        shared.set_enabled(Endpoint::Ts, true);
        shared.remove_timeline(PTS);
        assert!(!rx.has_changed().unwrap());
        shared.set_timeline(PTS, TickRate::PTS, None, 1.0).unwrap();
        assert!(rx.has_changed().unwrap());
        assert!(shared
            .set_timeline(PTS, TickRate::PTS, Some(Correlation::new(0, 0)), f64::NAN)
            .is_err());
    }
}
