//! The WebSocket servers: CSS-CII and CSS-TS, on one HTTP listener or two.

use super::*;

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
    /// Handshakes in progress from one address at most; further TCP connections from it are
    /// closed without an answer, so silent connections of one client cannot hold every
    /// handshake slot (issue 16 item 6).
    pub max_pending_per_address: usize,
    /// Largest client message (bytes); a larger one closes the session with 1009.
    pub max_message_len: usize,
    /// Time allowed for the HTTP upgrade.
    pub handshake_timeout: Duration,
    /// Time allowed for one send to a client before the session is dropped.
    pub send_timeout: Duration,
}

impl WsConfig {
    /// Defaults for `path`: 32 sessions, 64 pending handshakes of which 4 per address,
    /// [`MAX_JSON_MESSAGE_LEN`], 3 s handshake and 5 s send timeouts.
    pub fn new(path: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            max_connections: 32,
            max_pending_handshakes: 64,
            max_pending_per_address: 4,
            max_message_len: MAX_JSON_MESSAGE_LEN,
            handshake_timeout: Duration::from_secs(3),
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

    /// `/wc`: wall clock over WebSocket (the extension, see [`run_cii_ts`]).
    pub fn wc_ws() -> Self {
        Self::new(WC_WS_PATH)
    }
}

/// Path of the wall clock over WebSocket on the CII listener (beside `/cii` and `/ts`).
pub const WC_WS_PATH: &str = "/wc";

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
    let wc_ws = WsConfig {
        max_connections: config.max_connections,
        ..WsConfig::wc_ws()
    };
    run_routes(
        listener,
        shared,
        vec![(Endpoint::Cii, config), (Endpoint::WcWs, wc_ws)],
        shutdown,
    )
    .await
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
///
/// The CII listener ([`run_cii`] too) also serves the wall clock over WebSocket on
/// [`WC_WS_PATH`] (`ws://host:7681/wc`), a dvb2ip extension for browsers, which cannot send
/// UDP: each binary message is one 32-byte CSS-WC request (digest 2.1, type 0) and is answered
/// by one binary 32-byte type-1 response built exactly as the UDP server builds it
/// ([`crate::proto::css::wc::respond_bytes`]: originate echoed, receive time read when the
/// message was read, transmit time read right before sending); malformed requests are
/// ignored. Text messages are ignored. The client keeps its lowest-dispersion candidate as a
/// CSS-WC client does; the extra WebSocket framing and event-loop delays widen the round trip
/// and so the dispersion, nothing else.
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
        vec![
            (Endpoint::Cii, cii.clone()),
            (Endpoint::Ts, ts),
            (
                Endpoint::WcWs,
                WsConfig {
                    max_connections: cii.max_connections,
                    ..WsConfig::wc_ws()
                },
            ),
        ],
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
    let per_address = Arc::new(PendingByAddress {
        max: first.max_pending_per_address.max(1),
        counts: std::sync::Mutex::new(BTreeMap::new()),
    });
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
                let Some(address_permit) = per_address.try_acquire(peer.ip()) else {
                    bump(&shared.counters.dropped);
                    drop(stream);
                    continue;
                };
                let Ok(handshake_permit) = pending.clone().try_acquire_owned() else {
                    bump(&shared.counters.dropped);
                    drop(stream);
                    continue;
                };
                let handshake_permit = (handshake_permit, address_permit);
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

/// Handshakes in progress per peer address.
struct PendingByAddress {
    max: usize,
    counts: std::sync::Mutex<BTreeMap<IpAddr, usize>>,
}

impl PendingByAddress {
    /// A slot for one more handshake from `ip`, or `None` when it has `max` in progress.
    fn try_acquire(self: &Arc<Self>, ip: IpAddr) -> Option<AddressPermit> {
        let mut counts = self.counts.lock().unwrap();
        let n = counts.entry(ip).or_insert(0);
        if *n >= self.max {
            return None;
        }
        *n += 1;
        Some(AddressPermit {
            pending: self.clone(),
            ip,
        })
    }
}

/// One handshake slot of an address, given back when dropped.
struct AddressPermit {
    pending: Arc<PendingByAddress>,
    ip: IpAddr,
}

impl Drop for AddressPermit {
    fn drop(&mut self) {
        let mut counts = self.pending.counts.lock().unwrap();
        if let Some(n) = counts.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                counts.remove(&self.ip);
            }
        }
    }
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
    handshake_permit: (OwnedSemaphorePermit, AddressPermit),
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
        Endpoint::WcWs => session.run_wc_ws(stop).await,
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
    Binary(Vec<u8>),
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
            Some(Ok(Message::Binary(b))) => Incoming::Binary(b.to_vec()),
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
                    Incoming::Text(_) | Incoming::Binary(_) | Incoming::Other => {}
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
                    Incoming::Other | Incoming::Binary(_) => {}
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

    /// The wall clock over WebSocket (see [`run_cii_ts`]): one binary response per binary
    /// request, as the UDP server answers.
    async fn run_wc_ws(&mut self, mut stop: watch::Receiver<bool>) {
        let clock = self.shared.wall_clock();
        let info =
            ServerClockInfo::from_secs_ppm(clock.precision_secs(), clock.max_freq_error_ppm());
        loop {
            tokio::select! {
                _ = wait_stop(&mut stop) => return self.close(CloseCode::Away).await,
                m = self.ws.next() => {
                    let receive_ns = self.shared.wall_clock_ns();
                    match self.classify(m) {
                        Incoming::Closed => return,
                        Incoming::TooLarge => return self.close(CloseCode::Size).await,
                        Incoming::Text(_) | Incoming::Other => {}
                        Incoming::Binary(request) => {
                            let transmit_ns = self.shared.wall_clock_ns();
                            match crate::proto::css::wc::respond_bytes(&request, receive_ns, transmit_ns, info, false) {
                                Ok(reply) => {
                                    let sent = tokio::time::timeout(
                                        self.send_timeout,
                                        self.ws.send(Message::binary(reply.to_vec())),
                                    )
                                    .await;
                                    if !matches!(sent, Ok(Ok(()))) {
                                        return;
                                    }
                                    bump(&self.shared.counters.wc_ws_requests);
                                }
                                Err(e) => self.bad_message(format!("expected a CSS-WC request: {e}")),
                            }
                        }
                    }
                }
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
    use crate::css_server::test_util::*;
    use crate::proto::css::cii::{CiiMessage, ContentIdStatus, TimelineOption};
    use crate::proto::css::timeline::TimelineSelector;
    use tokio::io::AsyncWriteExt;
    use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

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
        // The slot frees once the server has seen the close: retry (bounded generously) until
        // a connection is accepted, and print how long that took.
        let t0 = Instant::now();
        let mut c = loop {
            match tokio_tungstenite::connect_async(format!("ws://{}/cii", server.addr)).await {
                Ok((ws, _)) => break ws,
                Err(e) => {
                    assert!(
                        t0.elapsed() < Duration::from_secs(30),
                        "slot not freed within 30 s: {e}"
                    );
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        };
        println!("slot freed after {:?}", t0.elapsed());
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

    // ----- WC over WebSocket (extension) -----

    #[tokio::test]
    async fn wc_over_websocket_answers_like_udp() {
        use crate::proto::css::wc::{Candidate, Exchange, MessageType, WcMessage};
        let shared = shared();
        let listener = TcpListener::bind(LOOPBACK).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, sd) = stopper();
        let task = tokio::spawn(run_cii_ts(
            listener,
            shared.clone(),
            WsConfig::cii(),
            WsConfig::ts(),
            sd,
        ));
        let mut ws = connect(addr, WC_WS_PATH).await;
        // garbage and text are ignored, the session stays
        ws.send(Message::binary(vec![1u8, 2, 3])).await.unwrap();
        ws.send(Message::text("hello")).await.unwrap();
        for _ in 0..3 {
            let t1 = clock::monotonic_ns();
            let (mut ex, request) = Exchange::start(t1);
            ws.send(Message::binary(request.to_vec())).await.unwrap();
            let reply = loop {
                let m = tokio::time::timeout(STEP, ws.next())
                    .await
                    .unwrap()
                    .unwrap()
                    .unwrap();
                if let Message::Binary(b) = m {
                    break b;
                }
            };
            let t4 = clock::monotonic_ns();
            let msg = WcMessage::decode_reply(&reply).unwrap();
            assert_eq!(msg.message_type, MessageType::Response);
            ex.on_datagram(&reply, t4).unwrap();
            let c: Candidate = ex.best().unwrap();
            // same clock on both sides: the offset is within the round trip
            assert!(
                c.offset_ns().abs() <= c.rtt_ns().max(0) as f64 + 1e6,
                "{c:?}"
            );
            assert!(c.t2 <= c.t3);
        }
        assert_eq!(shared.stats().wc_ws_requests, 3);
        assert_eq!(shared.stats().bad_messages, 1);
        // CII and TS still served on the same listener
        let mut cii = connect(addr, "/cii").await;
        next_text(&mut cii).await;
        let _ = tx.send(());
        tokio::time::timeout(STEP, task)
            .await
            .unwrap()
            .unwrap()
            .unwrap();
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
}
