//! HTTP files on demand: `/vod/` lists the library (HTML; M3U at `/vod/?format=m3u` and
//! `/vod.m3u`), `GET`/`HEAD /vod/<path>` serves a file with byte ranges, and the recording API
//! (`/api/recordings`, [`super::record`]).
//!
//! Ranges: one `bytes=` range (`a-b`, `a-`, `-n`) gets `206` with `Content-Range`; an
//! unsatisfiable one `416` with `Content-Range: bytes */<size>`; a syntactically invalid
//! header, another unit, several ranges (`bytes=0-1,5-6`) or any `If-Range` (we send no
//! validators) get the whole file with `200`. Every answer carries `Accept-Ranges: bytes`.
//! Files are streamed in 64 KiB reads, never loaded whole.
//!
//! Every refusal of the path rules ([`super::path::resolve`]), and `/vod/…` with VOD off,
//! gets the same `404` with the same body as a missing file.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, Path as UrlPath, Query, Request, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use tokio::io::{AsyncReadExt, AsyncSeekExt};

use super::library::{self, Entry};
use super::path::{encode_path, resolve};
use super::record::{RecordRequest, Recordings};
use crate::http::status::escape;
use crate::ssdp::description::ConnAddrs;

/// The body of every `404` under `/vod/`.
pub const NOT_FOUND_BODY: &str = "404 Not Found\n";

/// Bytes per read while streaming a file.
const CHUNK: usize = 64 * 1024;

/// What the VOD routes serve.
#[derive(Clone)]
pub struct VodState {
    pub roots: Arc<Vec<PathBuf>>,
    /// The RTSP port for `rtsp://` URLs in the M3U list.
    pub rtsp_port: u16,
    /// The server's recordings (the core's).
    pub recordings: Recordings,
    /// The session registry: downloads are listed while they are sent.
    pub clients: Arc<crate::clients::Clients>,
}

/// The VOD and recording routes of `core`, RTSP URLs naming `rtsp_port`.
pub fn router(core: &crate::core::Core, rtsp_port: u16) -> Router {
    routes(VodState {
        roots: Arc::new(core.config.vod.roots.clone()),
        rtsp_port,
        recordings: core.recordings.clone(),
        clients: core.clients.clone(),
    })
}

/// The routes over `state`.
pub fn routes(state: VodState) -> Router {
    Router::new()
        .route("/vod", get(redirect))
        .route("/vod/", get(listing))
        .route("/vod.m3u", get(m3u_listing))
        .route("/vod/{*path}", get(file))
        .route(
            "/api/recordings",
            get(list_recordings).post(start_recording),
        )
        .route(
            "/api/recordings/{id}",
            get(one_recording).delete(stop_recording),
        )
        .with_state(state)
}

fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        [
            (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        NOT_FOUND_BODY,
    )
        .into_response()
}

async fn redirect() -> Response {
    (
        StatusCode::PERMANENT_REDIRECT,
        [(header::LOCATION, "/vod/")],
    )
        .into_response()
}

/// The library, off the async workers.
async fn entries(roots: &Arc<Vec<PathBuf>>) -> Vec<Entry> {
    let roots = roots.clone();
    tokio::task::spawn_blocking(move || library::list(&roots))
        .await
        .unwrap_or_default()
}

/// `host[:port]` as a URL authority.
fn authority(ip: IpAddr, port: u16) -> String {
    match ip {
        IpAddr::V6(a) => format!("[{a}]:{port}"),
        a => format!("{a}:{port}"),
    }
}

/// The address and port the client reached us on (the connection's, else `Host`).
fn local_addr(req: &Request) -> SocketAddr {
    if let Some(ConnectInfo(c)) = req.extensions().get::<ConnectInfo<ConnAddrs>>() {
        return SocketAddr::new(c.local.ip().to_canonical(), c.local.port());
    }
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("");
    host.parse::<SocketAddr>()
        .unwrap_or_else(|_| SocketAddr::new(crate::ssdp::description::local_host(req), 80))
}

#[derive(serde::Deserialize)]
struct ListQuery {
    format: Option<String>,
}

async fn listing(State(st): State<VodState>, Query(q): Query<ListQuery>, req: Request) -> Response {
    match q.format.as_deref() {
        Some("m3u") => m3u_response(&st, local_addr(&req)).await,
        None | Some("html") => {
            let local = local_addr(&req);
            drop(req);
            let list = entries(&st.roots).await;
            (
                [
                    (header::CONTENT_TYPE, "text/html; charset=utf-8"),
                    (header::CACHE_CONTROL, "no-cache"),
                ],
                html(&list, &authority(local.ip(), st.rtsp_port)),
            )
                .into_response()
        }
        Some(other) => (
            StatusCode::BAD_REQUEST,
            format!("format={other:?} is not html or m3u\n"),
        )
            .into_response(),
    }
}

async fn m3u_listing(State(st): State<VodState>, req: Request) -> Response {
    m3u_response(&st, local_addr(&req)).await
}

async fn m3u_response(st: &VodState, local: SocketAddr) -> Response {
    let list = entries(&st.roots).await;
    (
        [
            (header::CONTENT_TYPE, "audio/x-mpegurl; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        m3u(
            &list,
            &authority(local.ip(), st.rtsp_port),
            &authority(local.ip(), local.port()),
        ),
    )
        .into_response()
}

/// The library as an HTML page: one link per file, with its RTSP URL (`rtsp_authority`).
pub fn html(list: &[Entry], rtsp_authority: &str) -> String {
    let mut s = String::from(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>dvb2ip files on demand</title></head>\n\
         <body><h1>Files on demand</h1>\n<p><a href=\"/vod.m3u\">M3U playlist</a></p>\n<ul>\n",
    );
    if list.is_empty() {
        s += "</ul>\n<p>No files.</p>\n";
    }
    for e in list {
        let enc = encode_path(&e.relative);
        s += &format!(
            "<li><a href=\"/vod/{}\">{}</a> ({} bytes, <a href=\"rtsp://{}/vod/{}\">RTSP</a>)</li>\n",
            escape(&enc),
            escape(&e.relative),
            e.size,
            escape(rtsp_authority),
            escape(&enc),
        );
    }
    if !list.is_empty() {
        s += "</ul>\n";
    }
    s += "</body></html>\n";
    s
}

/// The library as an extended M3U: each file twice, as RTSP then HTTP URL.
pub fn m3u(list: &[Entry], rtsp_authority: &str, http_authority: &str) -> String {
    let mut s = String::from("#EXTM3U\n");
    for e in list {
        let enc = encode_path(&e.relative);
        // Line breaks cannot come from a listable name, but a title must stay on its line.
        let title: String = e
            .relative
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect();
        s += &format!("#EXTINF:-1,{title}\nrtsp://{rtsp_authority}/vod/{enc}\n");
        s += &format!("#EXTINF:-1,{title} (HTTP)\nhttp://{http_authority}/vod/{enc}\n");
    }
    s
}

/// What a `Range` header asks of a file of `size` bytes.
#[derive(Debug, PartialEq, Eq)]
pub enum RangeAnswer {
    /// No (usable) range: the whole file, 200.
    Full,
    /// Bytes `start..=end`, 206.
    Partial { start: u64, end: u64 },
    /// 416.
    Unsatisfiable,
}

/// Interprets a `Range` header value (RFC 9110 §14): one range served, several or invalid ones
/// answered with the whole file.
pub fn parse_range(value: Option<&str>, size: u64) -> RangeAnswer {
    let Some(v) = value else {
        return RangeAnswer::Full;
    };
    let Some(spec) = v.trim().strip_prefix("bytes=") else {
        return RangeAnswer::Full;
    };
    if spec.contains(',') {
        return RangeAnswer::Full;
    }
    let Some((a, b)) = spec.trim().split_once('-') else {
        return RangeAnswer::Full;
    };
    let (a, b) = (a.trim(), b.trim());
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|c| c.is_ascii_digit());
    if a.is_empty() {
        // Suffix: the last n bytes.
        if !digits(b) {
            return RangeAnswer::Full;
        }
        let Ok(n) = b.parse::<u64>() else {
            return RangeAnswer::Full;
        };
        if n == 0 || size == 0 {
            return RangeAnswer::Unsatisfiable;
        }
        return RangeAnswer::Partial {
            start: size.saturating_sub(n),
            end: size - 1,
        };
    }
    if !digits(a) || !(b.is_empty() || digits(b)) {
        return RangeAnswer::Full;
    }
    let Ok(start) = a.parse::<u64>() else {
        // More digits than u64: past any end.
        return RangeAnswer::Unsatisfiable;
    };
    let end = if b.is_empty() {
        u64::MAX
    } else {
        b.parse::<u64>().unwrap_or(u64::MAX)
    };
    if end < start {
        return RangeAnswer::Full;
    }
    if start >= size {
        return RangeAnswer::Unsatisfiable;
    }
    RangeAnswer::Partial {
        start,
        end: end.min(size - 1),
    }
}

async fn file(
    State(st): State<VodState>,
    method: Method,
    headers: HeaderMap,
    req: Request,
) -> Response {
    // The still percent-encoded path: axum's extractor would decode it.
    let Some(encoded) = req.uri().path().strip_prefix("/vod/") else {
        return not_found();
    };
    let encoded = encoded.to_owned();
    let roots = st.roots.clone();
    let found = tokio::task::spawn_blocking(move || resolve(&roots, &encoded)).await;
    let Ok(Ok(found)) = found else {
        return not_found();
    };
    let Ok(mut f) = tokio::fs::File::open(&found.file).await else {
        gst::info!(super::CAT, "vod: cannot open {:?}", found.file);
        return not_found();
    };
    let Ok(meta) = f.metadata().await else {
        return not_found();
    };
    let size = meta.len();
    let range = if headers.contains_key(header::IF_RANGE) {
        None
    } else {
        headers.get(header::RANGE).and_then(|v| v.to_str().ok())
    };
    let ctype = library::content_type(&found.relative);
    let (status, start, len) = match parse_range(range, size) {
        RangeAnswer::Full => (StatusCode::OK, 0, size),
        RangeAnswer::Partial { start, end } => {
            (StatusCode::PARTIAL_CONTENT, start, end - start + 1)
        }
        RangeAnswer::Unsatisfiable => {
            return (
                StatusCode::RANGE_NOT_SATISFIABLE,
                [
                    (header::CONTENT_RANGE, format!("bytes */{size}")),
                    (header::ACCEPT_RANGES, "bytes".into()),
                    (header::CONTENT_TYPE, "text/plain; charset=utf-8".into()),
                ],
                format!("416 Range Not Satisfiable: the file has {size} bytes\n"),
            )
                .into_response();
        }
    };
    let mut resp = Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, ctype)
        .header(header::ACCEPT_RANGES, "bytes")
        .header(header::CONTENT_LENGTH, len.to_string());
    if status == StatusCode::PARTIAL_CONTENT {
        resp = resp.header(
            header::CONTENT_RANGE,
            format!("bytes {}-{}/{size}", start, start + len - 1),
        );
    }
    if method == Method::HEAD || len == 0 {
        return resp.body(Body::empty()).unwrap_or_else(|_| not_found());
    }
    if start > 0 && f.seek(std::io::SeekFrom::Start(start)).await.is_err() {
        return not_found();
    }
    let path = found.file.clone();
    let body = futures_util::stream::unfold((f, len, path), |(mut f, left, path)| async move {
        if left == 0 {
            return None;
        }
        let mut buf = vec![0u8; CHUNK.min(left as usize)];
        match f.read(&mut buf).await {
            Ok(0) => {
                // Shorter than at the start: the connection ends early, the client sees it.
                gst::info!(super::CAT, "vod: {path:?} shrank while being served");
                None
            }
            Ok(n) => {
                buf.truncate(n);
                Some((
                    Ok::<Bytes, std::io::Error>(Bytes::from(buf)),
                    (f, left - n as u64, path),
                ))
            }
            Err(e) => {
                gst::warning!(super::CAT, "vod: read error in {path:?}: {e}");
                Some((Err(e), (f, 0, path)))
            }
        }
    });
    // Listed in /api/sessions while it is sent (and ended by its disconnect action).
    let body: crate::clients::StreamBody = Box::pin(body);
    let body = match req
        .extensions()
        .get::<axum::extract::ConnectInfo<crate::ssdp::description::ConnAddrs>>()
    {
        Some(c) => st.clients.track_http(
            c.0.remote,
            headers
                .get(header::USER_AGENT)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned(),
            req.uri().path().to_owned(),
            body,
        ),
        None => body,
    };
    resp.body(Body::from_stream(body))
        .unwrap_or_else(|_| not_found())
}

// ---- recordings: reading is open as the UI's other lists are; starting and stopping are
// actions, which the UI's guard (src/ui/auth.rs) lets through only for an administrator
// (the password, or loopback) and never cross-site ----

fn api_error(status: StatusCode, message: String) -> Response {
    (status, Json(serde_json::json!({ "error": message }))).into_response()
}

async fn list_recordings(State(st): State<VodState>) -> Response {
    Json(st.recordings.list()).into_response()
}

async fn one_recording(State(st): State<VodState>, UrlPath(id): UrlPath<String>) -> Response {
    match id.parse::<u64>().ok().and_then(|id| st.recordings.get(id)) {
        Some(info) => Json(info).into_response(),
        None => api_error(StatusCode::NOT_FOUND, format!("no recording {id:?}")),
    }
}

async fn start_recording(State(st): State<VodState>, req: Request) -> Response {
    let body = match axum::body::to_bytes(req.into_body(), 64 * 1024).await {
        Ok(b) => b,
        Err(e) => return api_error(StatusCode::BAD_REQUEST, format!("body: {e}")),
    };
    let request: RecordRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            return api_error(
                StatusCode::BAD_REQUEST,
                format!(
                    "expected JSON {{\"channel\" or \"query\", \"duration_s\", \"name\"}}: {e}"
                ),
            )
        }
    };
    let recs = st.recordings.clone();
    match tokio::task::spawn_blocking(move || recs.start(request)).await {
        Ok(Ok(info)) => (StatusCode::CREATED, Json(info)).into_response(),
        Ok(Err(e)) => api_error(
            StatusCode::from_u16(e.status()).unwrap_or(StatusCode::BAD_REQUEST),
            e.to_string(),
        ),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

async fn stop_recording(State(st): State<VodState>, UrlPath(id): UrlPath<String>) -> Response {
    let Ok(id) = id.parse::<u64>() else {
        return api_error(StatusCode::NOT_FOUND, format!("no recording {id:?}"));
    };
    let recs = st.recordings.clone();
    match tokio::task::spawn_blocking(move || recs.stop(id)).await {
        Ok(Some(info)) => Json(info).into_response(),
        Ok(None) => api_error(StatusCode::NOT_FOUND, format!("no recording {id}")),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        use RangeAnswer::*;
        let p = |s, e| Partial { start: s, end: e };
        assert_eq!(parse_range(None, 100), Full);
        assert_eq!(parse_range(Some("bytes=0-9"), 100), p(0, 9));
        assert_eq!(parse_range(Some("bytes=90-"), 100), p(90, 99));
        assert_eq!(parse_range(Some("bytes=90-1000"), 100), p(90, 99));
        assert_eq!(parse_range(Some("bytes=-10"), 100), p(90, 99));
        assert_eq!(parse_range(Some("bytes=-1000"), 100), p(0, 99));
        assert_eq!(parse_range(Some("bytes=99-99"), 100), p(99, 99));
        assert_eq!(parse_range(Some("bytes=100-"), 100), Unsatisfiable);
        assert_eq!(parse_range(Some("bytes=100-200"), 100), Unsatisfiable);
        assert_eq!(parse_range(Some("bytes=-0"), 100), Unsatisfiable);
        assert_eq!(parse_range(Some("bytes=0-"), 0), Unsatisfiable);
        assert_eq!(
            parse_range(Some("bytes=99999999999999999999999-"), 100),
            Unsatisfiable
        );
        for bad in [
            "bytes=5-2",
            "bytes=a-b",
            "bytes=-",
            "items=0-1",
            "bytes=0-1,5-6",
            "bytes=1",
        ] {
            assert_eq!(parse_range(Some(bad), 100), Full, "{bad}");
        }
    }

    #[test]
    fn listings_escape_and_encode() {
        let list = vec![Entry {
            relative: "a <b>&\"c\".ts".into(),
            root: 0,
            size: 5,
        }];
        let h = html(&list, "127.0.0.1:554");
        assert!(h.contains("a &lt;b&gt;&amp;&quot;c&quot;.ts"), "{h}");
        assert!(h.contains("href=\"/vod/a%20%3Cb%3E%26%22c%22.ts\""), "{h}");
        let m = m3u(&list, "127.0.0.1:554", "127.0.0.1:8875");
        assert!(m.starts_with("#EXTM3U\n"));
        assert!(
            m.contains("\nrtsp://127.0.0.1:554/vod/a%20%3Cb%3E%26%22c%22.ts\n"),
            "{m}"
        );
        assert!(
            m.contains("\nhttp://127.0.0.1:8875/vod/a%20%3Cb%3E%26%22c%22.ts\n"),
            "{m}"
        );
    }
}
