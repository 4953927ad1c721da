//! DVB-CSS network servers: CSS-WC (UDP), CSS-CII and CSS-TS (WebSocket), for `dvbcsssink`
//! and for anything else that serves companion screens (the launcher's `css` tools, tests,
//! benchmarks).
//!
//! No GStreamer here (STYLE 11). The owner keeps a [`Shared`] behind an `Arc`, updates it
//! through plain method calls ([`Shared::set_cii`], [`Shared::set_timeline`], …) and runs the
//! servers on a tokio runtime: [`run_wc`] (or [`serve_wc`] on a thread of its own, stopped
//! with a [`WcStop`]), [`run_cii`], [`run_ts`] or [`run_cii_ts`] (both on one listener).
//! Each server follows mini-redis (STYLE 9): the caller binds (port 0 works), the loop selects
//! over accept/receive and `shutdown`, and a `Semaphore` bounds WebSocket connections.
//! All message encoding and maths comes from [`crate::proto::css`]; the syscalls of the WC
//! server (batches, receive timestamps) from [`crate::sys::net`].
//!
//! * `wc.rs`: the CSS-WC server ([`WcConfig`], [`run_wc`], [`serve_wc`], [`WcStop`]).
//! * `ws.rs`: the WebSocket servers ([`WsConfig`], [`run_cii`], [`run_ts`], [`run_cii_ts`],
//!   [`substitute_host`], [`control_timestamp_for`]).
//! * here: the state they share ([`Shared`], [`ServerState`], [`TimelineSource`]), the wall
//!   clock ([`WallClock`], [`MonotonicWallClock`]), events ([`ServerEvent`]) and counters
//!   ([`ServerStats`]).
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
use crate::proto::css::wc::{ServerClockInfo, WcError, WC_MESSAGE_LEN};
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
    /// Wall clock over WebSocket: the CSS-WC exchange in binary WebSocket messages, for
    /// browsers (a dvb2ip extension, not part of DVB-CSS; see [`run_cii_ts`]).
    WcWs,
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Wc => "CSS-WC",
            Self::Cii => "CSS-CII",
            Self::Ts => "CSS-TS",
            Self::WcWs => "WC-over-WebSocket",
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
    /// WC requests answered over WebSocket (the extension).
    pub wc_ws_requests: u64,
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
    wc_ws_requests: AtomicU64,
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
                Endpoint::Wc | Endpoint::WcWs => return false,
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
            Endpoint::Wc | Endpoint::WcWs => true,
        }
    }

    /// CSS-CII and CSS-TS WebSocket sessions open now.
    pub fn connections(&self) -> usize {
        self.state.receiver_count()
    }

    /// Counters so far.
    pub fn stats(&self) -> ServerStats {
        let c = &self.counters;
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        ServerStats {
            wc_requests: g(&c.wc_requests),
            wc_ws_requests: g(&c.wc_ws_requests),
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

mod wc;
mod ws;

pub use wc::*;
pub use ws::*;

#[cfg(test)]
mod test_util {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::sync::oneshot;
    use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

    pub(super) const PTS: &str = "urn:dvb:css:timeline:pts";
    pub(super) const SERVICE: &str = "dvb://233a.1004.1044";
    pub(super) const LOOPBACK: &str = "127.0.0.1:0";
    pub(super) const STEP: Duration = Duration::from_secs(5);

    pub(super) type Ws = WebSocketStream<tokio_tungstenite::MaybeTlsStream<TcpStream>>;

    /// A server task plus the means to stop it.
    pub(super) struct Running {
        pub(super) addr: SocketAddr,
        pub(super) stop: Option<oneshot::Sender<()>>,
        pub(super) task: tokio::task::JoinHandle<io::Result<()>>,
    }

    impl Running {
        pub(super) async fn stop(mut self) {
            let _ = self.stop.take().expect("stopped once").send(());
            tokio::time::timeout(STEP, self.task)
                .await
                .expect("server stops")
                .expect("no panic")
                .expect("clean exit");
        }
    }

    pub(super) fn stopper() -> (oneshot::Sender<()>, impl Future<Output = ()>) {
        let (tx, rx) = oneshot::channel::<()>();
        (tx, async move {
            let _ = rx.await;
        })
    }

    pub(super) async fn start_wc(shared: &Arc<Shared>, config: WcConfig) -> Running {
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

    pub(super) async fn start_ws(
        shared: &Arc<Shared>,
        endpoint: Endpoint,
        config: WsConfig,
    ) -> Running {
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

    pub(super) fn shared() -> Arc<Shared> {
        Shared::new(MonotonicWallClock::new())
    }

    pub(super) async fn connect(addr: SocketAddr, path: &str) -> Ws {
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
    pub(super) async fn next_text(ws: &mut Ws) -> String {
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
    pub(super) async fn assert_quiet(ws: &mut Ws, d: Duration) {
        if let Ok(m) = tokio::time::timeout(d, ws.next()).await {
            panic!("unexpected {m:?}");
        }
    }

    /// The close code the server sends, waiting up to `STEP`.
    pub(super) async fn close_code(ws: &mut Ws) -> Option<CloseCode> {
        loop {
            match tokio::time::timeout(STEP, ws.next()).await.expect("closes") {
                Some(Ok(Message::Close(f))) => return f.map(|f| f.code),
                Some(Ok(_)) => {}
                Some(Err(_)) | None => return None,
            }
        }
    }

    pub(super) async fn http_status(addr: SocketAddr, path: &str) -> u16 {
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::css_server::test_util::*;

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
