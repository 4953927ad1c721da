//! The HTTP/1.1 connections of the launcher's HTTP server: the accept loop with its caps and
//! one task per connection that reads request heads (bounded in size and time), answers them
//! through the server's axum [`Router`] and keeps the connection alive between requests for at
//! most the idle timeout.
//!
//! A SAT>IP streaming request (`GET /?<query>`) carries a [`Takeover`]: once its handler
//! started a source whose sink is the connection's [`Writer`], the task writes the response
//! head through the writer and only waits for the client to go away; the data goes from the
//! source's thread to the socket ([`super::fanout`]). No thread is spent per connection.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{self, header, HeaderMap, Method, Request, Response, StatusCode, Version};
use axum::Router;
use futures_util::StreamExt;
use once_cell::sync::Lazy;
use tokio::net::TcpStream;
use tower_service::Service;

use super::fanout::Writer;
use super::limits::{Admission, ConnPermit, Refusal};
use crate::limits::RateLimitedLog;
use crate::ssdp::description::{ConnAddrs, RTSP_PORT_HEADER};

/// Largest request head.
const MAX_HEAD: usize = 16 << 10;
/// Largest request body.
const MAX_BODY: usize = 1 << 20;
/// Most headers of a request.
const MAX_HEADERS: usize = 64;
/// `Retry-After` of a refused connection, seconds.
const RETRY_AFTER: u32 = 5;
/// Refused connections answered politely at once (reading the request, then closing); more are
/// answered with what the socket takes at once and closed.
const MAX_LINGERING: usize = 64;

static ACCEPT_LOG: Lazy<RateLimitedLog> =
    Lazy::new(|| RateLimitedLog::new(Duration::from_secs(10)));
static REFUSE_LOG: Lazy<RateLimitedLog> =
    Lazy::new(|| RateLimitedLog::new(Duration::from_secs(10)));
static LINGERING: AtomicUsize = AtomicUsize::new(0);

/// What the accept loop and its connections share.
pub struct Shared {
    pub app: Router,
    pub admission: Arc<Admission>,
    pub shutdown: tokio::sync::watch::Receiver<bool>,
}

/// Handed to a streaming request's handler in the request's extensions: the connection's
/// socket, and the slot where the handler leaves the stream it started.
#[derive(Clone)]
pub struct Takeover {
    pub sock: Arc<TcpStream>,
    pub peer: SocketAddr,
    pub queue_limit: usize,
    pub stats: Arc<super::limits::HttpStats>,
    /// The server's descriptor budget (a new stream needs headroom).
    pub budget: crate::limits::Limits,
    pub slot: Arc<Mutex<Option<Taken>>>,
}

/// A stream a handler started on a [`Takeover`]: its writer, and whatever must live as long as
/// the stream (the source, the session permit), given back by [`Taken::release`].
pub struct Taken {
    pub writer: Arc<Writer>,
    pub keep: Box<dyn Send>,
    /// Releases `keep` (dropping a source may join its feed: off the async workers).
    pub release: fn(Box<dyn Send>),
}

/// Accepts connections until shutdown.
pub async fn accept_loop(listener: tokio::net::TcpListener, shared: Arc<Shared>) {
    let mut shutdown = shared.shutdown.clone();
    loop {
        let accepted = tokio::select! {
            r = listener.accept() => r,
            _ = shutdown.wait_for(|s| *s) => return,
        };
        let (sock, peer) = match accepted {
            Ok(x) => x,
            Err(e) => {
                // Out of descriptors (or a connection reset before it was accepted): refuse by
                // not accepting for a moment; connections closing make room.
                log(&ACCEPT_LOG, format!("cannot accept a connection: {e}"));
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        match shared.admission.try_admit(peer.ip()) {
            Ok(permit) => {
                tokio::spawn(serve(sock, peer, permit, shared.clone()));
            }
            Err(r) => refuse(sock, peer, r),
        }
    }
}

/// Prints `line` through `limiter` (at most one line per interval, with the count of those held
/// back).
pub(crate) fn log(limiter: &RateLimitedLog, line: String) {
    limiter.log(|skipped| {
        if skipped > 0 {
            eprintln!("dvb2ip: http: {line} ({skipped} more like it not shown)");
        } else {
            eprintln!("dvb2ip: http: {line}");
        }
    });
}

/// A `503` head with `reason` as body.
fn unavailable(reason: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\nRetry-After: {RETRY_AFTER}\r\n\
         Connection: close\r\nContent-Length: {}\r\n\r\n{reason}",
        reason.len()
    )
    .into_bytes()
}

/// Answers a refused connection 503 and closes it.
fn refuse(sock: TcpStream, peer: SocketAddr, why: Refusal) {
    log(
        &REFUSE_LOG,
        format!("refused a connection from {peer}: {}", why.reason()),
    );
    let answer = unavailable(why.reason());
    if LINGERING.fetch_add(1, Ordering::Relaxed) >= MAX_LINGERING {
        LINGERING.fetch_sub(1, Ordering::Relaxed);
        let _ = sock.try_write(&answer);
        return;
    }
    tokio::spawn(async move {
        // Read what the client sent first, so closing does not reset the connection before
        // the answer is read; all of it bounded in time.
        let mut scratch = [0u8; 4096];
        let _ = tokio::time::timeout(Duration::from_millis(200), sock.readable()).await;
        let _ = sock.try_read(&mut scratch);
        let _ = tokio::time::timeout(Duration::from_secs(1), write_all(&sock, &answer)).await;
        let std = sock.into_std();
        if let Ok(s) = std {
            let _ = s.shutdown(std::net::Shutdown::Write);
            let sock = TcpStream::from_std(s);
            if let Ok(sock) = sock {
                let _ = tokio::time::timeout(Duration::from_millis(500), async {
                    loop {
                        if sock.readable().await.is_err() {
                            return;
                        }
                        match sock.try_read(&mut scratch) {
                            Ok(0) => return,
                            Err(e) if e.kind() != std::io::ErrorKind::WouldBlock => return,
                            _ => {}
                        }
                    }
                })
                .await;
            }
        }
        LINGERING.fetch_sub(1, Ordering::Relaxed);
    });
}

async fn write_all(sock: &TcpStream, mut data: &[u8]) -> std::io::Result<()> {
    while !data.is_empty() {
        sock.writable().await?;
        match sock.try_write(data) {
            Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
            Ok(n) => data = &data[n..],
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Reads more into `buf`; `Ok(0)` at the end of the stream.
async fn read_some(sock: &TcpStream, buf: &mut Vec<u8>) -> std::io::Result<usize> {
    let mut chunk = [0u8; 4096];
    loop {
        sock.readable().await?;
        match sock.try_read(&mut chunk) {
            Ok(n) => {
                buf.extend_from_slice(&chunk[..n]);
                return Ok(n);
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
    }
}

/// Why no request came.
enum NoRequest {
    /// The client closed (or the connection failed) between requests.
    Closed,
    /// Nothing came within the idle timeout.
    Idle,
    /// A head was started and not finished in time.
    HeadTimeout,
    /// An answer to send before closing.
    Answer(StatusCode, &'static str),
}

/// A parsed request head and the length of the head in the buffer.
struct Head {
    req: Request<Body>,
    len: usize,
    content_length: usize,
}

fn parse_head(buf: &[u8]) -> Result<Option<Head>, NoRequest> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut r = httparse::Request::new(&mut headers);
    let bad = |why| NoRequest::Answer(StatusCode::BAD_REQUEST, why);
    let len = match r.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) if buf.len() >= MAX_HEAD => {
            return Err(NoRequest::Answer(
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                "request head too large",
            ))
        }
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => {
            return Err(NoRequest::Answer(
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                "too many header fields",
            ))
        }
        Err(_) => return Err(bad("malformed request")),
    };
    let version = match r.version {
        Some(0) => Version::HTTP_10,
        Some(1) => Version::HTTP_11,
        _ => {
            return Err(NoRequest::Answer(
                StatusCode::HTTP_VERSION_NOT_SUPPORTED,
                "HTTP/1.0 or HTTP/1.1 only",
            ))
        }
    };
    let method = Method::from_bytes(r.method.unwrap_or("").as_bytes())
        .map_err(|_| bad("malformed method"))?;
    let uri: http::Uri = r
        .path
        .unwrap_or("")
        .parse()
        .map_err(|_| bad("malformed request target"))?;
    let mut builder = Request::builder().method(method).uri(uri).version(version);
    let mut content_length = 0usize;
    for h in r.headers.iter() {
        if h.name.eq_ignore_ascii_case("transfer-encoding") {
            return Err(NoRequest::Answer(
                StatusCode::NOT_IMPLEMENTED,
                "chunked request bodies are not supported",
            ));
        }
        if h.name.eq_ignore_ascii_case("content-length") {
            content_length = std::str::from_utf8(h.value)
                .ok()
                .and_then(|v| v.trim().parse().ok())
                .ok_or_else(|| bad("malformed Content-Length"))?;
            if content_length > MAX_BODY {
                return Err(NoRequest::Answer(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "request body too large",
                ));
            }
        }
        builder = builder.header(h.name, h.value);
    }
    let req = builder
        .body(Body::empty())
        .map_err(|_| bad("malformed header field"))?;
    Ok(Some(Head {
        req,
        len,
        content_length,
    }))
}

/// Waits for the next request: its first byte within `first_wait`, the whole head within the
/// header timeout from then; then its body.
async fn next_request(
    sock: &TcpStream,
    buf: &mut Vec<u8>,
    first_wait: Duration,
    header_timeout: Duration,
) -> Result<Request<Body>, NoRequest> {
    if buf.is_empty() {
        match tokio::time::timeout(first_wait, read_some(sock, buf)).await {
            Err(_) => return Err(NoRequest::Idle),
            Ok(Ok(0)) | Ok(Err(_)) => return Err(NoRequest::Closed),
            Ok(Ok(_)) => {}
        }
    }
    let deadline = tokio::time::Instant::now() + header_timeout;
    let head = loop {
        if let Some(h) = parse_head(buf)? {
            break h;
        }
        match tokio::time::timeout_at(deadline, read_some(sock, buf)).await {
            Err(_) => return Err(NoRequest::HeadTimeout),
            Ok(Ok(0)) | Ok(Err(_)) => return Err(NoRequest::Closed),
            Ok(Ok(_)) => {}
        }
    };
    let Head {
        mut req,
        len,
        content_length,
    } = head;
    buf.drain(..len);
    if content_length > 0 {
        let expects = req
            .headers()
            .get(header::EXPECT)
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
        if expects && buf.is_empty() {
            let _ = write_all(sock, b"HTTP/1.1 100 Continue\r\n\r\n").await;
        }
        while buf.len() < content_length {
            match tokio::time::timeout_at(deadline, read_some(sock, buf)).await {
                Err(_) => return Err(NoRequest::HeadTimeout),
                Ok(Ok(0)) | Ok(Err(_)) => return Err(NoRequest::Closed),
                Ok(Ok(_)) => {}
            }
        }
        let body: Vec<u8> = buf.drain(..content_length).collect();
        *req.body_mut() = Body::from(body);
    }
    Ok(req)
}

/// Whether the connection stays open after answering `req`.
fn keep_alive(version: Version, req: &HeaderMap, resp: &HeaderMap) -> bool {
    let says = |h: &HeaderMap, what: &str| {
        h.get_all(header::CONNECTION).iter().any(|v| {
            v.to_str()
                .is_ok_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(what)))
        })
    };
    if says(req, "close") || says(resp, "close") {
        return false;
    }
    version == Version::HTTP_11 || says(req, "keep-alive")
}

/// The response head: status line, the response's headers (the names of
/// [`RTSP_PORT_HEADER`] in their exact case) and `extra` lines.
fn head_bytes(
    version: Version,
    status: StatusCode,
    headers: &HeaderMap,
    extra: &[String],
) -> Vec<u8> {
    let mut h = Vec::with_capacity(256);
    let v = if version == Version::HTTP_10 {
        "HTTP/1.0"
    } else {
        "HTTP/1.1"
    };
    h.extend_from_slice(
        format!(
            "{v} {} {}\r\n",
            status.as_u16(),
            status.canonical_reason().unwrap_or("")
        )
        .as_bytes(),
    );
    for (name, value) in headers {
        let name = name.as_str();
        if name.eq_ignore_ascii_case(RTSP_PORT_HEADER) {
            h.extend_from_slice(RTSP_PORT_HEADER.as_bytes());
        } else {
            h.extend_from_slice(name.as_bytes());
        }
        h.extend_from_slice(b": ");
        h.extend_from_slice(value.as_bytes());
        h.extend_from_slice(b"\r\n");
    }
    for e in extra {
        h.extend_from_slice(e.as_bytes());
        h.extend_from_slice(b"\r\n");
    }
    h.extend_from_slice(b"\r\n");
    h
}

/// A short plain-text answer that closes the connection.
fn plain(status: StatusCode, body: &str) -> Vec<u8> {
    let mut h = HeaderMap::new();
    h.insert(header::CONTENT_TYPE, "text/plain".parse().unwrap());
    let mut out = head_bytes(
        Version::HTTP_11,
        status,
        &h,
        &[
            "Connection: close".into(),
            format!("Content-Length: {}", body.len()),
        ],
    );
    out.extend_from_slice(body.as_bytes());
    out
}

/// Writes `resp` (its body streamed: with its length when known, chunked on HTTP/1.1
/// otherwise, else up to the close); returns whether the connection may stay open. Every
/// write must progress within `idle`.
async fn write_response(
    sock: &TcpStream,
    version: Version,
    head_only: bool,
    keep: bool,
    resp: Response<Body>,
    idle: Duration,
) -> bool {
    let (mut parts, body) = resp.into_parts();
    let no_body = head_only
        || parts.status.is_informational()
        || parts.status == StatusCode::NO_CONTENT
        || parts.status == StatusCode::NOT_MODIFIED;
    let known = parts.headers.contains_key(header::CONTENT_LENGTH);
    let hint = axum::body::HttpBody::size_hint(&body).exact();
    let mut extra = Vec::new();
    let mut keep = keep;
    let chunked = !no_body && !known && hint.is_none() && version == Version::HTTP_11;
    if !known {
        if let Some(n) = hint {
            extra.push(format!("Content-Length: {n}"));
        } else if chunked {
            extra.push("Transfer-Encoding: chunked".into());
        } else if !no_body {
            keep = false;
        }
    }
    parts.headers.remove(header::CONNECTION);
    if !keep {
        extra.push("Connection: close".into());
    } else if version == Version::HTTP_10 {
        extra.push("Connection: keep-alive".into());
    }
    let head = head_bytes(version, parts.status, &parts.headers, &extra);
    let w = |data: Vec<u8>| async move {
        matches!(
            tokio::time::timeout(idle, write_all(sock, &data)).await,
            Ok(Ok(()))
        )
    };
    if no_body {
        return w(head).await && keep;
    }
    // Server-sent events (the web UI's live updates) go out as they come.
    let events = parts
        .headers
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"));
    let mut out = head;
    let mut data = body.into_data_stream();
    loop {
        let next = tokio::time::timeout(idle, data.next()).await;
        let chunk = match next {
            Ok(Some(Ok(c))) => c,
            Ok(None) => break,
            // A body that fails or stalls ends the connection.
            Ok(Some(Err(_))) | Err(_) => {
                let _ = w(out).await;
                return false;
            }
        };
        if chunk.is_empty() {
            continue;
        }
        if chunked {
            out.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
            out.extend_from_slice(&chunk);
            out.extend_from_slice(b"\r\n");
        } else {
            out.extend_from_slice(&chunk);
        }
        if (events || out.len() >= 16 << 10) && !w(std::mem::take(&mut out)).await {
            return false;
        }
    }
    if chunked {
        out.extend_from_slice(b"0\r\n\r\n");
    }
    w(out).await && keep
}

/// Serves one connection.
async fn serve(sock: TcpStream, peer: SocketAddr, permit: ConnPermit, shared: Arc<Shared>) {
    let _ = sock.set_nodelay(true);
    let local = sock.local_addr().unwrap_or(peer);
    let sock = Arc::new(sock);
    let mut shutdown = shared.shutdown.clone();
    tokio::select! {
        _ = serve_requests(&sock, peer, local, &shared) => {}
        _ = shutdown.wait_for(|s| *s) => {}
    }
    drop(permit);
}

async fn serve_requests(
    sock: &Arc<TcpStream>,
    peer: SocketAddr,
    local: SocketAddr,
    shared: &Shared,
) {
    let limits = shared.admission.limits;
    let stats = &shared.admission.stats;
    let mut buf = Vec::new();
    // The first request must come within the header timeout; later ones within the idle one.
    let mut first_wait = limits.header_timeout;
    loop {
        let req = next_request(sock, &mut buf, first_wait, limits.header_timeout).await;
        let mut req = match req {
            Ok(r) => r,
            Err(NoRequest::Closed) => return,
            Err(NoRequest::Idle) => {
                stats.timed_out.fetch_add(1, Ordering::Relaxed);
                return;
            }
            Err(NoRequest::HeadTimeout) => {
                stats.timed_out.fetch_add(1, Ordering::Relaxed);
                let answer = plain(
                    StatusCode::REQUEST_TIMEOUT,
                    "request head not received in time",
                );
                let _ =
                    tokio::time::timeout(Duration::from_secs(1), write_all(sock, &answer)).await;
                return;
            }
            Err(NoRequest::Answer(status, why)) => {
                let answer = plain(status, why);
                let _ =
                    tokio::time::timeout(Duration::from_secs(1), write_all(sock, &answer)).await;
                return;
            }
        };
        first_wait = limits.idle_timeout;
        let version = req.version();
        let head_only = req.method() == Method::HEAD;
        let req_headers = req.headers().clone();
        req.extensions_mut().insert(ConnectInfo(ConnAddrs {
            local,
            remote: peer,
        }));
        let streaming = req.method() == Method::GET
            && ((req.uri().path() == "/" && req.uri().query().is_some_and(|q| !q.is_empty()))
                || crate::play::is_stream_path(req.uri().path()));
        let slot = Arc::new(Mutex::new(None));
        if streaming {
            req.extensions_mut().insert(Takeover {
                sock: sock.clone(),
                peer,
                queue_limit: limits.stream_queue_bytes,
                stats: stats.clone(),
                budget: shared.admission.budget().clone(),
                slot: slot.clone(),
            });
        }
        let mut app = shared.app.clone();
        let resp = match app.call(req).await {
            Ok(r) => r,
            Err(e) => match e {},
        };
        let taken = slot.lock().unwrap().take();
        if let Some(taken) = taken {
            stream(sock, version, resp, taken, stats).await;
            return;
        }
        let keep = keep_alive(version, &req_headers, resp.headers());
        if !write_response(sock, version, head_only, keep, resp, limits.idle_timeout).await {
            return;
        }
    }
}

/// A stream running on a connection: stops the writer and gives the stream's resources back
/// when dropped (also when the connection's task is cancelled at shutdown).
struct Running<'a> {
    taken: Option<Taken>,
    stats: &'a super::limits::HttpStats,
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        if let Some(t) = self.taken.take() {
            t.writer.close();
            self.stats.streams.fetch_sub(1, Ordering::Relaxed);
            (t.release)(t.keep);
        }
    }
}

/// Runs a stream a handler started: the head through the writer, then waits until the client
/// closes or the writer stops, and gives the stream's resources back.
async fn stream(
    sock: &TcpStream,
    version: Version,
    resp: Response<Body>,
    taken: Taken,
    stats: &super::limits::HttpStats,
) {
    let (mut parts, _) = resp.into_parts();
    parts.headers.remove(header::CONNECTION);
    parts.headers.remove(header::CONTENT_LENGTH);
    let head = head_bytes(
        version,
        parts.status,
        &parts.headers,
        &["Connection: close".into()],
    );
    stats.streams.fetch_add(1, Ordering::Relaxed);
    let writer = taken.writer.clone();
    let _running = Running {
        taken: Some(taken),
        stats,
    };
    writer.start(head);
    let mut scratch = [0u8; 1024];
    loop {
        tokio::select! {
            r = sock.readable() => {
                if r.is_err() {
                    break;
                }
                match sock.try_read(&mut scratch) {
                    Ok(0) => break,
                    Ok(_) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                    Err(_) => break,
                }
            }
            _ = writer.closed.notified() => break,
        }
    }
}
