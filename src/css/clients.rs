//! DVB-CSS clients (CSS-WC, CSS-CII, CSS-TS) and a standalone CSS-WC server, for the
//! launcher's command-line tools.
//!
//! Everything here is tokio I/O around the GStreamer-free `proto::css` of the plugin crate:
//! message encoding, the LowestDispersionCandidate algorithm, CII merging and CT application
//! all come from there.
//!
//! The local clock of every client is `proto::css::clock::monotonic_ns` (`CLOCK_MONOTONIC`,
//! nanoseconds). Callbacks return [`ControlFlow`]: `Break` ends the client early (the
//! WebSocket clients then close the connection cleanly).

use gstdvb2ip::proto::css as css_proto;

use std::fmt;
use std::future::Future;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::ops::ControlFlow;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::net::UdpSocket;
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::{self, Message};

use css_proto::cii::{CiiMessage, CiiProperty, CiiState};
use css_proto::clock::{self, CorrelatedClock, NANOS_TICK_RATE};
use css_proto::ts::{self, ControlTimestamp, CtEffect, SetupData};
use css_proto::wc::{self, Candidate, Exchange, LowestDispersionCandidate, ServerClockInfo};

/// Why a client could not run.
#[derive(Debug)]
pub enum ClientError {
    /// Socket error (bind, connect, send).
    Io(io::Error),
    /// WebSocket connect or protocol error; a refused upgrade is
    /// `WebSocket(tungstenite::Error::Http(response))` with the HTTP status (403, 404, 503).
    WebSocket(tungstenite::Error),
    /// A bad argument (e.g. a tick rate that is not finite and > 0).
    InvalidArgument(String),
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Io(e) => write!(f, "I/O error: {e}"),
            Self::WebSocket(tungstenite::Error::Http(r)) => {
                write!(f, "WebSocket upgrade refused: HTTP {}", r.status())
            }
            Self::WebSocket(e) => write!(f, "WebSocket error: {e}"),
            Self::InvalidArgument(e) => write!(f, "invalid argument: {e}"),
        }
    }
}

impl std::error::Error for ClientError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Io(e) => Some(e),
            Self::WebSocket(e) => Some(e),
            Self::InvalidArgument(_) => None,
        }
    }
}

impl From<io::Error> for ClientError {
    fn from(e: io::Error) -> Self {
        Self::Io(e)
    }
}

impl From<tungstenite::Error> for ClientError {
    fn from(e: tungstenite::Error) -> Self {
        Self::WebSocket(e)
    }
}

fn secs(s: f64) -> Duration {
    Duration::try_from_secs_f64(s).unwrap_or(Duration::ZERO)
}

// ---------------------------------------------------------------------------------------------
// CSS-WC client
// ---------------------------------------------------------------------------------------------

/// Timing of the WC client: a fast start (a request every 50 ms for 2 s), then pydvbcss's
/// timing with a back-off (see `proto::css::wc::LowestDispersionCandidate::next_request_delay`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WcClientOptions {
    /// Longest delay after an adopted candidate (seconds).
    pub repeat_secs: f64,
    /// Reply timeout, also the delay after a timeout or rejected candidate (seconds).
    pub timeout_secs: f64,
    /// Local clock max frequency error (ppm).
    pub client_max_freq_error_ppm: f64,
    /// Length of the fast start (seconds; 0 = pydvbcss's schedule from the first request).
    pub fast_start_secs: f64,
    /// Request interval during the fast start (seconds).
    pub fast_repeat_secs: f64,
}

impl Default for WcClientOptions {
    fn default() -> Self {
        Self {
            repeat_secs: wc::DEFAULT_REPEAT_SECS,
            timeout_secs: wc::DEFAULT_TIMEOUT_SECS,
            client_max_freq_error_ppm: wc::DEFAULT_CLIENT_MAX_FREQ_ERROR_PPM,
            fast_start_secs: wc::DEFAULT_FAST_START_SECS,
            fast_repeat_secs: wc::DEFAULT_FAST_REPEAT_SECS,
        }
    }
}

/// The outcome of one request/reply exchange.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WcUpdate {
    /// Local clock (ns) when the exchange ended.
    pub client_ns: u64,
    /// The best reply as a measurement; `None` after a timeout.
    pub candidate: Option<Candidate>,
    /// The candidate was adopted (its dispersion was the lowest so far).
    pub adopted: bool,
    /// Estimated `server wall clock − local clock` (ns) at `client_ns`, once synchronised.
    pub offset_ns: Option<f64>,
    /// Dispersion of the estimate at `client_ns` (seconds; infinite before the first).
    pub dispersion_secs: f64,
    /// Exchanges so far (including this one).
    pub exchanges: u64,
    /// Exchanges that got no usable reply.
    pub timeouts: u64,
    /// Datagrams discarded as not a reply (wrong length, version or type).
    pub ignored_datagrams: u64,
}

/// Final state of a WC client run.
#[derive(Debug, Clone)]
pub struct WcSummary {
    /// The algorithm state: `estimate.wall_clock_at(clock::monotonic_ns())` gives the
    /// server's wall clock.
    pub estimate: LowestDispersionCandidate,
    /// Exchanges made.
    pub exchanges: u64,
    /// Candidates adopted.
    pub adopted: u64,
    /// Exchanges without a usable reply.
    pub timeouts: u64,
    /// Datagrams discarded.
    pub ignored_datagrams: u64,
}

/// A connected UDP socket plus the algorithm.
struct WcEngine {
    socket: UdpSocket,
    algo: LowestDispersionCandidate,
    exchanges: u64,
    adopted: u64,
    timeouts: u64,
    ignored: u64,
}

/// Receive one datagram on a connected socket: `(length, t4)` with `t4` the local clock
/// (`clock::monotonic_ns`) when the datagram arrived. On Linux the kernel's receive stamp
/// (`SO_TIMESTAMPNS`, `CLOCK_REALTIME`) is turned into an age against `CLOCK_REALTIME` read
/// right after the receive, so the time this task took to be woken up is not counted in the
/// round trip (and hence in the dispersion); otherwise, or without a believable stamp, `t4` is
/// the clock read after the receive.
async fn recv_stamped(socket: &UdpSocket, buf: &mut [u8]) -> io::Result<(usize, u64)> {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsFd;
        let fd = socket.as_fd();
        let (n, stamp) = socket
            .async_io(tokio::io::Interest::READABLE, || rx_stamp::recv(fd, buf))
            .await?;
        let now = clock::monotonic_ns();
        let age = stamp
            .zip(rx_stamp::realtime_ns())
            .and_then(|(k, rt)| rt.checked_sub(k))
            .filter(|a| *a < 1_000_000_000);
        Ok((n, now.saturating_sub(age.unwrap_or(0))))
    }
    #[cfg(not(target_os = "linux"))]
    {
        let n = socket.recv(buf).await?;
        Ok((n, clock::monotonic_ns()))
    }
}

/// `SO_TIMESTAMPNS` receive for [`recv_stamped`] (the plugin's safe syscall wrappers).
#[cfg(target_os = "linux")]
mod rx_stamp {
    pub(super) use gstdvb2ip::sys::net::{enable_rx_timestamps as enable, recv_stamped as recv};
    pub(super) use gstdvb2ip::sys::realtime_ns;
}

/// Bind on loopback for a loopback server, on the unspecified address otherwise.
fn local_bind_for(server: SocketAddr) -> SocketAddr {
    let ip = match server.ip() {
        IpAddr::V4(v4) if v4.is_loopback() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        IpAddr::V6(v6) if v6.is_loopback() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
    };
    SocketAddr::new(ip, 0)
}

impl WcEngine {
    async fn new(server: SocketAddr, options: WcClientOptions) -> io::Result<Self> {
        let socket = UdpSocket::bind(local_bind_for(server)).await?;
        // Connected: the kernel only delivers datagrams from exactly `server` (digest 2.4).
        socket.connect(server).await?;
        #[cfg(target_os = "linux")]
        // Refused only means no kernel stamps: the arrival time is read instead.
        let _ = rx_stamp::enable(std::os::fd::AsFd::as_fd(&socket));
        let precision = clock::measure_monotonic_precision(1000);
        let algo = LowestDispersionCandidate::new(precision, options.client_max_freq_error_ppm)
            .with_timing(options.repeat_secs, options.timeout_secs)
            .with_fast_start(options.fast_start_secs, options.fast_repeat_secs);
        Ok(Self {
            socket,
            algo,
            exchanges: 0,
            adopted: 0,
            timeouts: 0,
            ignored: 0,
        })
    }

    /// One request, replies until a good one or the timeout, then offer the best.
    async fn exchange(&mut self) -> WcUpdate {
        let (mut ex, request) = Exchange::start(clock::monotonic_ns());
        let deadline = Instant::now() + secs(self.algo.timeout_secs());
        if self.socket.send(&request).await.is_ok() {
            let mut buf = [0u8; 2 * wc::WC_MESSAGE_LEN];
            while !ex.is_done() {
                match tokio::time::timeout_at(deadline, recv_stamped(&self.socket, &mut buf)).await
                {
                    Ok(Ok((n, t4))) => {
                        if ex.on_datagram(&buf[..n], t4).is_err() {
                            self.ignored += 1;
                        }
                    }
                    // ICMP unreachable or similar: nothing more will come for this request.
                    Ok(Err(_)) => break,
                    Err(_) => break,
                }
            }
        }
        let now = clock::monotonic_ns();
        let candidate = ex.best();
        let adopted = candidate.is_some_and(|c| self.algo.offer(&c, now));
        self.exchanges += 1;
        if candidate.is_none() {
            self.timeouts += 1;
        }
        if adopted {
            self.adopted += 1;
        }
        WcUpdate {
            client_ns: now,
            candidate,
            adopted,
            offset_ns: self.algo.wall_clock_at(now).map(|w| w as f64 - now as f64),
            dispersion_secs: self.algo.dispersion_at(now),
            exchanges: self.exchanges,
            timeouts: self.timeouts,
            ignored_datagrams: self.ignored,
        }
    }

    fn delay_after(&mut self, update: &WcUpdate) -> Duration {
        secs(
            self.algo
                .next_request_delay(update.adopted, update.client_ns),
        )
    }

    fn summary(self) -> WcSummary {
        WcSummary {
            estimate: self.algo,
            exchanges: self.exchanges,
            adopted: self.adopted,
            timeouts: self.timeouts,
            ignored_datagrams: self.ignored,
        }
    }
}

/// Run pydvbcss's LowestDispersionCandidate algorithm against the CSS-WC server at `addr`
/// for `duration` (default timing), calling `on_update` after every exchange.
pub async fn wc_client<F>(
    addr: SocketAddr,
    duration: Duration,
    on_update: F,
) -> Result<WcSummary, ClientError>
where
    F: FnMut(&WcUpdate) -> ControlFlow<()>,
{
    wc_client_with_options(addr, duration, WcClientOptions::default(), on_update).await
}

/// [`wc_client`] with explicit timing.
pub async fn wc_client_with_options<F>(
    addr: SocketAddr,
    duration: Duration,
    options: WcClientOptions,
    mut on_update: F,
) -> Result<WcSummary, ClientError>
where
    F: FnMut(&WcUpdate) -> ControlFlow<()>,
{
    let mut engine = WcEngine::new(addr, options).await?;
    let end = Instant::now() + duration;
    loop {
        let update = engine.exchange().await;
        if on_update(&update).is_break() {
            break;
        }
        let next = Instant::now() + engine.delay_after(&update);
        if next >= end {
            tokio::time::sleep_until(end).await;
            break;
        }
        tokio::time::sleep_until(next).await;
    }
    Ok(engine.summary())
}

// ---------------------------------------------------------------------------------------------
// Standalone CSS-WC server
// ---------------------------------------------------------------------------------------------

/// Counters of a [`WcServer`] run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WcServerStats {
    /// Requests answered.
    pub answered: u64,
    /// Datagrams ignored (not a well-formed request).
    pub ignored: u64,
}

/// A simple CSS-WC server on `proto::css::clock::monotonic_ns` (timestamps read on receipt,
/// no kernel timestamps; the plugin's `dvbcsssink` server is the precise one). Reports the
/// measured clock precision (at least 1 µs) and 500 ppm.
#[derive(Debug)]
pub struct WcServer {
    socket: UdpSocket,
    follow_up: bool,
    info: ServerClockInfo,
}

impl WcServer {
    /// Bind to `addr` (port 0 picks one); with `follow_up`, every response is a type 2
    /// followed by a type 3.
    pub async fn bind(addr: SocketAddr, follow_up: bool) -> io::Result<Self> {
        let socket = UdpSocket::bind(addr).await?;
        let precision = clock::measure_monotonic_precision(1000).max(1e-6);
        Ok(Self {
            socket,
            follow_up,
            info: ServerClockInfo::from_secs_ppm(precision, wc::DEFAULT_CLIENT_MAX_FREQ_ERROR_PPM),
        })
    }

    /// The bound address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.socket.local_addr()
    }

    /// Serve until `shutdown` completes. Malformed datagrams are counted and ignored.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> io::Result<WcServerStats> {
        let mut stats = WcServerStats::default();
        let mut buf = [0u8; 2 * wc::WC_MESSAGE_LEN];
        tokio::pin!(shutdown);
        loop {
            let received = tokio::select! {
                _ = &mut shutdown => return Ok(stats),
                r = self.socket.recv_from(&mut buf) => r,
            };
            let receive_ns = clock::monotonic_ns();
            let Ok((n, src)) = received else {
                tokio::time::sleep(Duration::from_millis(1)).await;
                continue;
            };
            let transmit_ns = clock::monotonic_ns();
            match wc::respond(
                &buf[..n],
                receive_ns,
                transmit_ns,
                self.info,
                self.follow_up,
            ) {
                Ok(response) => {
                    stats.answered += 1;
                    if self.socket.send_to(&response.encode(), src).await.is_ok() && self.follow_up
                    {
                        let fu = wc::follow_up(&response, clock::monotonic_ns());
                        let _ = self.socket.send_to(&fu.encode(), src).await;
                    }
                }
                Err(_) => stats.ignored += 1,
            }
        }
    }
}

/// Bind a [`WcServer`] on `bind` and serve until `shutdown` completes.
pub async fn wc_server(
    bind: SocketAddr,
    follow_up: bool,
    shutdown: impl Future<Output = ()>,
) -> io::Result<WcServerStats> {
    WcServer::bind(bind, follow_up).await?.run(shutdown).await
}

// ---------------------------------------------------------------------------------------------
// CSS-CII client
// ---------------------------------------------------------------------------------------------

/// Connect to the CSS-CII server at `url` (`ws://…`) and call `on_message(message, state,
/// changed)` for every CII message: `state` is the client's mirror after merging (starting
/// all null, omitted = unchanged, null = now null) and `changed` the properties whose value
/// really changed. Unparseable messages are skipped. Returns the final state when the server
/// closes the connection or the callback breaks.
pub async fn cii_client<F>(url: &str, mut on_message: F) -> Result<CiiState, ClientError>
where
    F: FnMut(&CiiMessage, &CiiState, &[CiiProperty]) -> ControlFlow<()>,
{
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await?;
    let mut state = CiiState::default();
    while let Some(m) = ws.next().await {
        let text = match m {
            Ok(Message::Text(t)) => t,
            Ok(Message::Close(_)) | Err(_) => break,
            Ok(_) => continue,
        };
        let Ok(message) = CiiMessage::parse(text.as_str()) else {
            continue;
        };
        let changed = state.apply(&message);
        if on_message(&message, &state, &changed).is_break() {
            close_gracefully(&mut ws).await;
            break;
        }
    }
    Ok(state)
}

async fn close_gracefully<S>(ws: &mut tokio_tungstenite::WebSocketStream<S>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let closing = async {
        if ws.close(None).await.is_ok() {
            while let Some(Ok(_)) = ws.next().await {}
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(1), closing).await;
}

// ---------------------------------------------------------------------------------------------
// CSS-TS client
// ---------------------------------------------------------------------------------------------

/// Why [`ts_client`] reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TsReason {
    /// A control timestamp arrived (with what it did to the timeline clock).
    ControlTimestamp(CtEffect),
    /// The report interval passed.
    Periodic,
    /// The TS connection closed; the timeline is now unavailable. Last report.
    Closed,
}

/// The client's view of the timeline at one moment.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TsEstimate {
    /// Why this report.
    pub reason: TsReason,
    /// Local clock (ns) the estimate is for.
    pub client_ns: u64,
    /// Estimated server wall clock (ns), once CSS-WC has synchronised.
    pub wall_clock_ns: Option<i64>,
    /// Dispersion of the wall clock estimate (seconds; infinite before synchronisation).
    pub wall_dispersion_secs: f64,
    /// The timeline is available (last CT available and the connection open).
    pub available: bool,
    /// Timeline speed, when available.
    pub speed: Option<f64>,
    /// Estimated timeline position (ticks) now, when available and synchronised.
    pub content_time: Option<i64>,
    /// The last control timestamp received.
    pub last_ct: Option<ControlTimestamp>,
    /// Control timestamps received so far.
    pub control_timestamps: u64,
}

/// Aborts a task when dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

async fn wc_background(mut engine: WcEngine, tx: watch::Sender<Option<LowestDispersionCandidate>>) {
    while !tx.is_closed() {
        let update = engine.exchange().await;
        if update.adopted {
            tx.send_replace(Some(engine.algo.clone()));
        }
        tokio::time::sleep(engine.delay_after(&update)).await;
    }
}

/// Synchronise with the CSS-WC server at `wc_addr` (in the background, default timing),
/// open the CSS-TS connection `ws_url`, send SetupData(`content_id_stem`,
/// `timeline_selector`), and follow the timeline (`tick_rate` ticks per second, e.g. 90000
/// for PTS) with pydvbcss's CT rules. `on_estimate` is called for every CT, every
/// `report_interval`, and once more when the connection closes. Returns the last estimate.
pub async fn ts_client<F>(
    ws_url: &str,
    wc_addr: SocketAddr,
    content_id_stem: &str,
    timeline_selector: &str,
    tick_rate: f64,
    report_interval: Duration,
    mut on_estimate: F,
) -> Result<TsEstimate, ClientError>
where
    F: FnMut(&TsEstimate) -> ControlFlow<()>,
{
    let mut timeline = CorrelatedClock::new(NANOS_TICK_RATE, tick_rate)
        .map_err(|e| ClientError::InvalidArgument(e.to_string()))?;
    if report_interval.is_zero() {
        return Err(ClientError::InvalidArgument(
            "report interval must be > 0".into(),
        ));
    }
    timeline.set_available(false);
    let engine = WcEngine::new(wc_addr, WcClientOptions::default()).await?;
    let (wc_tx, wc_rx) = watch::channel(None);
    let _wc_task = AbortOnDrop(tokio::spawn(wc_background(engine, wc_tx)));

    let (mut ws, _) = tokio_tungstenite::connect_async(ws_url).await?;
    let setup = SetupData::new(content_id_stem, timeline_selector);
    ws.send(Message::text(setup.to_json())).await?;

    let mut ticker = tokio::time::interval(report_interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut last_ct = None;
    let mut count = 0u64;
    loop {
        let reason = tokio::select! {
            _ = ticker.tick() => TsReason::Periodic,
            m = ws.next() => match m {
                Some(Ok(Message::Text(text))) => {
                    let Ok(ct) = ControlTimestamp::parse(text.as_str()) else {
                        continue;
                    };
                    let effect = ts::apply_control_timestamp(
                        &mut timeline,
                        &ct,
                        ts::DEFAULT_CLIENT_CHANGE_THRESHOLD_SECS,
                    );
                    last_ct = Some(ct);
                    count += 1;
                    TsReason::ControlTimestamp(effect)
                }
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => {
                    timeline.set_available(false);
                    TsReason::Closed
                }
                Some(Ok(_)) => continue,
            },
        };
        let client_ns = clock::monotonic_ns();
        let (wall_clock_ns, wall_dispersion_secs) = match &*wc_rx.borrow() {
            Some(algo) => (algo.wall_clock_at(client_ns), algo.dispersion_at(client_ns)),
            None => (None, f64::INFINITY),
        };
        let available = timeline.own_availability();
        let estimate = TsEstimate {
            reason,
            client_ns,
            wall_clock_ns,
            wall_dispersion_secs,
            available,
            speed: available.then(|| timeline.speed()),
            content_time: wall_clock_ns
                .filter(|_| available)
                .map(|w| timeline.from_parent(w)),
            last_ct,
            control_timestamps: count,
        };
        if reason == TsReason::Closed {
            let _ = on_estimate(&estimate);
            return Ok(estimate);
        }
        if on_estimate(&estimate).is_break() {
            close_gracefully(&mut ws).await;
            return Ok(estimate);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use css_proto::cii::{ContentIdStatus, TimelineOption};
    use css_proto::clock::Correlation;
    use css_proto::timeline::{TickRate, TimelineSelector};
    use css_proto::wc::{MessageType, Timevalue, WcMessage};
    use gstdvb2ip::css_server::{self as servers, MonotonicWallClock, Shared, WcConfig, WsConfig};
    use std::sync::Arc;
    use tokio::net::TcpListener;
    use tokio::sync::oneshot;

    const PTS: &str = "urn:dvb:css:timeline:pts";
    const SERVICE: &str = "dvb://233a.1004.1044";
    const LOOPBACK: &str = "127.0.0.1:0";
    /// Bound of every wait: generous, a loaded machine takes longer, it does not get less.
    const LIMIT: Duration = Duration::from_secs(60);

    struct Stop(Option<oneshot::Sender<()>>);

    impl Stop {
        fn pair() -> (Self, impl Future<Output = ()>) {
            let (tx, rx) = oneshot::channel::<()>();
            (Self(Some(tx)), async move {
                let _ = rx.await;
            })
        }

        fn fire(&mut self) {
            if let Some(tx) = self.0.take() {
                let _ = tx.send(());
            }
        }
    }

    /// WC, CII and TS servers of the plugin on loopback.
    struct Tv {
        shared: Arc<Shared>,
        wc: SocketAddr,
        cii: SocketAddr,
        ts: SocketAddr,
        stops: Vec<Stop>,
        tasks: Vec<tokio::task::JoinHandle<io::Result<()>>>,
    }

    impl Tv {
        async fn start(follow_up: bool, max_connections: usize) -> Self {
            let shared = Shared::new(MonotonicWallClock::new());
            let udp = UdpSocket::bind(LOOPBACK).await.unwrap();
            let cii_l = TcpListener::bind(LOOPBACK).await.unwrap();
            let ts_l = TcpListener::bind(LOOPBACK).await.unwrap();
            let (wc, cii, ts) = (
                udp.local_addr().unwrap(),
                cii_l.local_addr().unwrap(),
                ts_l.local_addr().unwrap(),
            );
            shared.set_cii(CiiState {
                content_id: Some(SERVICE.into()),
                content_id_status: Some(ContentIdStatus::Partial),
                presentation_status: Some("okay".into()),
                wc_url: Some(format!("udp://{{{{host}}}}:{}", wc.port())),
                ts_url: Some(format!("ws://{{{{host}}}}:{}/ts", ts.port())),
                timelines: Some(vec![TimelineOption::new(
                    &TimelineSelector::Pts,
                    TickRate::PTS,
                    None,
                )]),
                ..CiiState::server_default()
            });
            let (s1, f1) = Stop::pair();
            let (s2, f2) = Stop::pair();
            let (s3, f3) = Stop::pair();
            let wc_cfg = WcConfig {
                follow_up,
                ..WcConfig::default()
            };
            let mut cii_cfg = WsConfig::cii();
            cii_cfg.max_connections = max_connections;
            let mut ts_cfg = WsConfig::ts();
            ts_cfg.max_connections = max_connections;
            ts_cfg.max_message_len = 4096;
            let tasks = vec![
                tokio::spawn(servers::run_wc(udp, shared.clone(), wc_cfg, f1)),
                tokio::spawn(servers::run_cii(cii_l, shared.clone(), cii_cfg, f2)),
                tokio::spawn(servers::run_ts(ts_l, shared.clone(), ts_cfg, f3)),
            ];
            Self {
                shared,
                wc,
                cii,
                ts,
                stops: vec![s1, s2, s3],
                tasks,
            }
        }

        async fn stop(mut self) {
            for s in &mut self.stops {
                s.fire();
            }
            for t in self.tasks {
                tokio::time::timeout(LIMIT, t)
                    .await
                    .expect("servers stop")
                    .expect("no panic")
                    .expect("clean exit");
            }
        }
    }

    async fn bounded<T>(f: impl Future<Output = T>) -> T {
        tokio::time::timeout(LIMIT, f)
            .await
            .expect("finished in time")
    }

    // ----- WC -----

    #[tokio::test]
    async fn wc_client_converges_against_plugin_server_with_follow_up() {
        let tv = Tv::start(true, 8).await;
        let mut updates = Vec::new();
        // Until the first adopted exchange (checklist 27's "under 2 ms within 1 s" is a
        // figure of `dvb2ip-bench css`, which measures the dispersion; printed here).
        let summary = bounded(wc_client(tv.wc, LIMIT, |u| {
            updates.push(*u);
            if u.adopted {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        }))
        .await
        .unwrap();
        let first = updates.first().expect("one exchange");
        assert!(first.adopted);
        assert!(
            first.dispersion_secs.is_finite() && first.dispersion_secs > 0.0,
            "{first:?}"
        );
        eprintln!("first WC dispersion {:.3} ms", first.dispersion_secs * 1e3);
        // same clock on both sides: the offset is within the round trip
        let c = first.candidate.unwrap();
        assert!(first.offset_ns.unwrap().abs() <= c.rtt_ns() as f64 / 2.0 + 1_000.0);
        assert_eq!(summary.timeouts, 0);
        assert_eq!(summary.ignored_datagrams, 0);
        assert!(summary
            .estimate
            .wall_clock_at(clock::monotonic_ns())
            .is_some());
        tv.stop().await;
    }

    #[tokio::test]
    async fn wc_client_against_standalone_server_and_malformed_datagrams() {
        let server = WcServer::bind(LOOPBACK.parse().unwrap(), false)
            .await
            .unwrap();
        let addr = server.local_addr().unwrap();
        let (mut stop, shutdown) = Stop::pair();
        let task = tokio::spawn(server.run(shutdown));
        // garbage first: the server must keep serving
        let junk = UdpSocket::bind(LOOPBACK).await.unwrap();
        for b in [&b""[..], b"x", &[0u8; 33], &[1u8; 32]] {
            junk.send_to(b, addr).await.unwrap();
        }
        let options = WcClientOptions {
            repeat_secs: 0.05,
            ..WcClientOptions::default()
        };
        // Three exchanges, however long a loaded machine takes for them.
        let mut n = 0;
        let summary = bounded(wc_client_with_options(
            addr,
            Duration::from_secs(60),
            options,
            |_| {
                n += 1;
                if n < 3 {
                    ControlFlow::Continue(())
                } else {
                    ControlFlow::Break(())
                }
            },
        ))
        .await
        .unwrap();
        assert_eq!(summary.exchanges, 3, "{summary:?}");
        assert!(summary.adopted >= 1);
        let dispersion = summary.estimate.dispersion_at(clock::monotonic_ns());
        assert!(dispersion.is_finite(), "{summary:?}");
        eprintln!("WC dispersion after 3 exchanges {:.3} ms", dispersion * 1e3);
        stop.fire();
        let stats = bounded(task).await.unwrap().unwrap();
        assert_eq!(stats.ignored, 4);
        assert_eq!(stats.answered, summary.exchanges);
        // The server handled the junk (counted above) before it stopped, and any answer to it
        // would be queued on the junk socket by now: there is none.
        let mut reply_to_junk = [0u8; 64];
        assert!(
            junk.try_recv_from(&mut reply_to_junk).is_err(),
            "the server answered junk"
        );
    }

    /// A hand-written server that answers each request with junk, a request, a reply to
    /// another request, a type 2 and then a type 3 with a later transmit time; with
    /// `follow_up == false` only the junk and the type 2.
    async fn fake_server(sock: UdpSocket, follow_up: bool) {
        let mut buf = [0u8; 64];
        loop {
            let Ok((n, src)) = sock.recv_from(&mut buf).await else {
                return;
            };
            let Ok(req) = WcMessage::decode_request(&buf[..n]) else {
                continue;
            };
            let base = WcMessage {
                message_type: MessageType::ResponseWithFollowUp,
                precision: -20,
                max_freq_error: 256,
                originate: req.originate,
                receive: Timevalue::from_ns(5_000_000_000),
                transmit: Timevalue::from_ns(5_000_001_000),
            };
            let other = WcMessage {
                message_type: MessageType::FollowUp,
                originate: Timevalue::from_ns(1),
                ..base
            };
            let _ = sock.send_to(&[0u8; 31], src).await;
            let _ = sock.send_to(&[9u8; 32], src).await;
            let _ = sock.send_to(&WcMessage::request(1).encode(), src).await;
            let _ = sock.send_to(&other.encode(), src).await;
            let _ = sock.send_to(&base.encode(), src).await;
            if follow_up {
                let fu = wc::follow_up(&base, 5_000_002_000);
                let _ = sock.send_to(&fu.encode(), src).await;
            }
        }
    }

    #[tokio::test]
    async fn wc_client_uses_follow_up_and_ignores_bad_replies() {
        for follow_up in [true, false] {
            let sock = UdpSocket::bind(LOOPBACK).await.unwrap();
            let addr = sock.local_addr().unwrap();
            let server = AbortOnDrop(tokio::spawn(fake_server(sock, follow_up)));
            let mut first = None;
            let summary = bounded(wc_client(addr, LIMIT, |u| {
                first.get_or_insert(*u);
                ControlFlow::Break(())
            }))
            .await
            .unwrap();
            let u = first.unwrap();
            let c = u.candidate.expect("a candidate");
            // type 3 (rank 4) beats type 2; a lone type 2 is used (checklist 21)
            let t3 = if follow_up {
                5_000_002_000
            } else {
                5_000_001_000
            };
            assert_eq!(c.t3, t3);
            assert_eq!(c.t2, 5_000_000_000);
            assert!(u.adopted);
            // junk, version 9 and the type-0 message are discarded (checklist 22)
            assert_eq!(summary.ignored_datagrams, 3);
            drop(server);
        }
    }

    #[tokio::test]
    async fn wc_client_times_out_against_silence() {
        let silent = UdpSocket::bind(LOOPBACK).await.unwrap();
        let addr = silent.local_addr().unwrap();
        let options = WcClientOptions {
            timeout_secs: 0.05,
            ..WcClientOptions::default()
        };
        let mut n = 0;
        let summary = bounded(wc_client_with_options(
            addr,
            Duration::from_secs(60),
            options,
            |u| {
                assert!(u.candidate.is_none() && u.dispersion_secs.is_infinite());
                n += 1;
                if n < 2 {
                    ControlFlow::Continue(())
                } else {
                    ControlFlow::Break(())
                }
            },
        ))
        .await
        .unwrap();
        assert_eq!(summary.timeouts, 2);
        assert_eq!(summary.adopted, 0);
    }

    // ----- CII -----

    #[tokio::test]
    async fn cii_client_gets_full_state_then_incremental_updates() {
        let tv = Tv::start(false, 8).await;
        let shared = tv.shared.clone();
        let mut seen: Vec<(CiiMessage, Vec<CiiProperty>)> = Vec::new();
        let url = format!("ws://{}/cii", tv.cii);
        let state = bounded(cii_client(&url, |m, state, changed| {
            seen.push((m.clone(), changed.to_vec()));
            match seen.len() {
                1 => {
                    assert_eq!(state.protocol_version.as_deref(), Some("1.1"));
                    shared.update_cii(|c| {
                        c.content_id = Some(format!("{SERVICE};363a~20130218T0915Z--PT00H45M"));
                        c.content_id_status = Some(ContentIdStatus::Final);
                    });
                }
                2 => shared.update_cii(|c| {
                    c.presentation_status = Some("transitioning".into());
                    c.timelines = None;
                }),
                _ => return ControlFlow::Break(()),
            }
            ControlFlow::Continue(())
        }))
        .await
        .unwrap();
        assert_eq!(seen.len(), 3);
        assert_eq!(
            seen[1].1,
            [CiiProperty::ContentId, CiiProperty::ContentIdStatus]
        );
        assert!(seen[1].0.presentation_status.is_omit());
        assert_eq!(
            seen[2].1,
            [CiiProperty::PresentationStatus, CiiProperty::Timelines]
        );
        // {{host}} became the address the client connected to
        assert_eq!(
            state.wc_url,
            Some(format!("udp://127.0.0.1:{}", tv.wc.port()))
        );
        assert_eq!(state.timelines, None);
        assert_eq!(state.content_id_status, Some(ContentIdStatus::Final));
        assert_eq!(tv.shared.stats().cii_messages, 3);
        tv.stop().await;
    }

    #[tokio::test]
    async fn cii_client_returns_when_server_stops() {
        let tv = Tv::start(false, 8).await;
        let url = format!("ws://{}/cii", tv.cii);
        let client =
            tokio::spawn(
                async move { cii_client(&url, |_, _, _| ControlFlow::Continue(())).await },
            );
        // Until the first CII message went out (bounded).
        bounded(async {
            while tv.shared.stats().cii_messages == 0 {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await;
        tv.stop().await;
        let state = bounded(client).await.unwrap().unwrap();
        assert_eq!(state.content_id.as_deref(), Some(SERVICE));
    }

    // ----- TS -----

    #[tokio::test]
    async fn ts_client_follows_unavailable_available_paused_closed() {
        let tv = Tv::start(true, 8).await;
        let shared = tv.shared.clone();
        let (mut stop_ts, stop_ts_rx) = Stop::pair();
        let ts_task = tv.tasks.len() - 1;
        let mut phase = 0;
        let mut start_wall = 0i64;
        let url = format!("ws://{}/ts", tv.ts);
        let mut log = Vec::new();
        let client = ts_client(
            &url,
            tv.wc,
            "dvb://233a",
            PTS,
            90_000.0,
            Duration::from_millis(20),
            |e| {
                log.push(*e);
                match (phase, e.reason) {
                    (0, TsReason::ControlTimestamp(_)) => {
                        assert!(!e.available, "no timeline yet");
                        start_wall = shared.wall_clock_ns() as i64;
                        let c = Correlation::new(start_wall, 0);
                        shared
                            .set_timeline(PTS, TickRate::PTS, Some(c), 1.0)
                            .unwrap();
                        phase = 1;
                    }
                    (1, TsReason::ControlTimestamp(effect)) => {
                        assert!(effect.became_available && effect.timing_changed);
                        phase = 2;
                    }
                    (2, TsReason::Periodic) if e.content_time.is_some() => {
                        // The position runs from the correlation at 90 kHz: at the estimate's
                        // time (after the start, before now) it was past 0 and not ahead of
                        // (now − start) × 90 kHz by more than the estimate's own error bound.
                        // How close it is (a few ms) is `dvb2ip-bench css`'s figure.
                        let now = clock::monotonic_ns() as i64;
                        let expected = (now - start_wall) as f64 * 90_000.0 / 1e9;
                        let got = e.content_time.unwrap() as f64;
                        assert!(e.wall_dispersion_secs.is_finite(), "{e:?}");
                        let slack = e.wall_dispersion_secs * 90_000.0 + 180.0;
                        assert!(got >= 0.0 && got <= expected + slack, "{got} vs {expected}");
                        eprintln!(
                            "TS position {:.2} ms behind the wall clock, dispersion {:.3} ms",
                            (expected - got) / 90.0,
                            e.wall_dispersion_secs * 1e3
                        );
                        let pause_wall = shared.wall_clock_ns() as i64;
                        let at = Correlation::new(pause_wall, e.content_time.unwrap());
                        shared
                            .set_timeline(PTS, TickRate::PTS, Some(at), 0.0)
                            .unwrap();
                        phase = 3;
                    }
                    (3, TsReason::ControlTimestamp(effect)) => {
                        assert!(effect.speed_changed);
                        assert_eq!(e.speed, Some(0.0));
                        phase = 4;
                    }
                    (4, TsReason::Periodic) => {
                        // paused: the position stays put
                        assert_eq!(
                            e.content_time,
                            e.last_ct.unwrap().timing.map(|t| t.content_time)
                        );
                        stop_ts.fire();
                        phase = 5;
                    }
                    (5, TsReason::Closed) => {
                        assert!(!e.available && e.content_time.is_none());
                        phase = 6;
                    }
                    _ => {}
                }
                ControlFlow::Continue(())
            },
        );
        // The TS server is stopped from inside the callback: forward that to the real one.
        let Tv {
            shared: tv_shared,
            mut stops,
            mut tasks,
            ..
        } = tv;
        let forward = async move {
            stop_ts_rx.await;
            stops[2].fire();
            stops
        };
        let (last, stops) = bounded(async { tokio::join!(client, forward) }).await;
        let last = last.unwrap();
        assert_eq!(phase, 6, "{log:#?}");
        assert_eq!(last.reason, TsReason::Closed);
        assert!(last.control_timestamps >= 3);
        let ts_handle = tasks.remove(ts_task);
        bounded(ts_handle).await.unwrap().unwrap();
        for mut s in stops {
            s.fire();
        }
        for t in tasks {
            bounded(t).await.unwrap().unwrap();
        }
        assert!(tv_shared.stats().control_timestamps >= 3);
    }

    #[tokio::test]
    async fn malformed_and_oversized_json_never_break_the_servers() {
        let tv = Tv::start(false, 8).await;
        // TS: junk and a non-object before SetupData are ignored, then SetupData works.
        let (mut a, _) = tokio_tungstenite::connect_async(format!("ws://{}/ts", tv.ts))
            .await
            .unwrap();
        for junk in ["", "{", "[1,2]", "{\"contentIdStem\":1}", "\u{0}"] {
            a.send(Message::text(junk)).await.unwrap();
        }
        a.send(Message::binary(vec![0u8; 10])).await.unwrap();
        a.send(Message::text(SetupData::new("", PTS).to_json()))
            .await
            .unwrap();
        let m = bounded(a.next()).await.unwrap().unwrap();
        assert!(!ControlTimestamp::parse(m.to_text().unwrap())
            .unwrap()
            .is_available());
        // oversized: closed with 1009
        let (mut b, _) = tokio_tungstenite::connect_async(format!("ws://{}/ts", tv.ts))
            .await
            .unwrap();
        let _ = b.send(Message::text(" ".repeat(10_000))).await;
        let code = loop {
            match bounded(b.next()).await {
                Some(Ok(Message::Close(f))) => break f.map(|f| f.code),
                Some(Ok(_)) => {}
                _ => break None,
            }
        };
        assert_eq!(
            code,
            Some(tungstenite::protocol::frame::coding::CloseCode::Size)
        );
        // CII: junk from the client is ignored
        let (mut c, _) = tokio_tungstenite::connect_async(format!("ws://{}/cii", tv.cii))
            .await
            .unwrap();
        bounded(c.next()).await.unwrap().unwrap();
        c.send(Message::text("{\"contentId\": [")).await.unwrap();
        tv.shared
            .update_cii(|s| s.presentation_status = Some("fault".into()));
        let m = bounded(c.next()).await.unwrap().unwrap();
        assert_eq!(m.to_text().unwrap(), r#"{"presentationStatus":"fault"}"#);
        // the first TS client is still connected and served
        tv.shared
            .set_timeline(PTS, TickRate::PTS, Some(Correlation::new(1, 2)), 1.0)
            .unwrap();
        let m = bounded(a.next()).await.unwrap().unwrap();
        assert_eq!(
            ControlTimestamp::parse(m.to_text().unwrap()).unwrap(),
            ControlTimestamp::available(1, 2, 1.0)
        );
        assert!(tv.shared.stats().bad_messages >= 6);
        tv.stop().await;
    }

    #[tokio::test]
    async fn connection_flood_gets_503_and_recovers() {
        let tv = Tv::start(false, 3).await;
        let url = format!("ws://{}/cii", tv.cii);
        let mut open = Vec::new();
        for _ in 0..3 {
            let (mut ws, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
            bounded(ws.next()).await.unwrap().unwrap();
            open.push(ws);
        }
        // 40 more, 4 at a time (the handshakes one address may have pending; more at once
        // are closed unanswered): every answered one is a 503, none crashes anything
        let mut refused = 0;
        for _ in 0..10 {
            let attempts: Vec<_> = (0..4)
                .map(|_| tokio_tungstenite::connect_async(url.clone()))
                .collect();
            for r in futures_util::future::join_all(attempts).await {
                match r {
                    Err(tungstenite::Error::Http(resp)) => {
                        assert_eq!(resp.status(), 503);
                        refused += 1;
                    }
                    // dropped while too many handshakes were pending
                    Err(_) => {}
                    Ok(_) => panic!("accepted beyond the limit"),
                }
            }
        }
        assert!(refused >= 30, "{refused}");
        let err = cii_client(&url, |_, _, _| ControlFlow::Continue(()))
            .await
            .unwrap_err();
        assert!(err.to_string().contains("503"), "{err}");
        // the TS endpoint has its own limit
        let (mut t, _) = tokio_tungstenite::connect_async(format!("ws://{}/ts", tv.ts))
            .await
            .unwrap();
        t.close(None).await.unwrap();
        // free one CII slot: a new client gets in
        let mut first = open.remove(0);
        first.close(None).await.unwrap();
        drop(first);
        let mut got = None;
        for _ in 0..50 {
            match tokio_tungstenite::connect_async(&url).await {
                Ok((ws, _)) => {
                    got = Some(ws);
                    break;
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        }
        let mut ws = got.expect("a slot frees up");
        assert!(bounded(ws.next()).await.unwrap().is_ok());
        let st = tv.shared.stats();
        assert!(st.refused_503 >= 31);
        assert_eq!(st.cii_sessions, 4);
        tv.stop().await;
    }
}
