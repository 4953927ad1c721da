//! SAT>IP HTTP streaming (§7.1): `GET /?<query>` answers `200 video/MP2T` and streams the raw
//! TS of the stream's [`Source`] (a tuner-pool subscription, as the unicast RTP path uses)
//! until the client closes the connection, which frees the frontend, or the source ends (its
//! tuner left the pool and no other could take the stream over: the body ends).
//! Bad queries get 400/403 with the `Check-Syntax:`/`Out-of-Range:` body, no free frontend 503
//! `No-More: frontends`.

use std::convert::Infallible;
use std::sync::Arc;

use super::status::StatusPage;
use crate::streams::source::{self, Source, TsSink};
use axum::body::{Body, Bytes};
use axum::extract::{RawQuery, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use gstdvb2ip::proto::satip::{
    parse_query, QueryError, StreamSpec, DEFAULT_MAX_PIDS, ERROR_CONTENT_TYPE,
};
use gstdvb2ip::tuners::Pool;

/// Buffers (of up to a few dozen TS packets each) queued per client before data is dropped.
const QUEUE_BUFFERS: usize = 512;

/// Settings of the streaming routes.
#[derive(Debug, Clone)]
pub struct StreamState {
    /// Most PIDs per stream.
    pub max_pids: usize,
    /// Answers `GET /` without a query (else that is a 400 like any bad query).
    pub status_page: Option<Arc<StatusPage>>,
    /// The tuner pool streams lease from (the server core's).
    pub pool: Pool,
}

impl Default for StreamState {
    fn default() -> Self {
        Self {
            max_pids: DEFAULT_MAX_PIDS,
            status_page: None,
            pool: Pool::default_pool().clone(),
        }
    }
}

/// `GET /?<query>`: HTTP streaming of a SAT>IP query; `GET /` the status page.
pub fn router(state: StreamState) -> Router {
    Router::new().route("/", get(stream)).with_state(state)
}

fn error_response(e: &QueryError) -> Response {
    let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::BAD_REQUEST);
    match e.body() {
        Some(body) => (status, [(header::CONTENT_TYPE, ERROR_CONTENT_TYPE)], body).into_response(),
        None => status.into_response(),
    }
}

/// Gives the source back when the response body (hence the connection) goes away.
struct SourceGuard(Option<Box<dyn Source>>);

impl Drop for SourceGuard {
    fn drop(&mut self) {
        if let Some(src) = self.0.take() {
            // The last user of a frontend stops its feed (joins its thread): keep that off
            // the async workers.
            std::thread::spawn(move || drop(src));
        }
    }
}

/// Queues the source's TS for the response body, in the source's thread: a client that
/// does not keep up loses data rather than holding up the feed. `None` once the source ended
/// ([`TsSink::end`]): the body ends after what is queued.
struct Queue(std::sync::Mutex<Option<tokio::sync::mpsc::Sender<Bytes>>>);

impl TsSink for Queue {
    fn push(&self, buffer: &gst::Buffer) {
        let Some(tx) = self.0.lock().unwrap().clone() else {
            return;
        };
        if let Ok(map) = buffer.map_readable() {
            // Full: dropped; closed: the body is gone and the guard gives the source back.
            let _ = tx.try_send(Bytes::copy_from_slice(map.as_slice()));
        }
    }

    fn end(&self, reason: &str) {
        if self.0.lock().unwrap().take().is_some() {
            eprintln!("dvb2ip: http: stream ends: {reason}");
        }
    }
}

fn start_source(
    pool: &Pool,
    spec: StreamSpec,
) -> Result<(Box<dyn Source>, tokio::sync::mpsc::Receiver<Bytes>), QueryError> {
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(QUEUE_BUFFERS);
    let src = source::open(pool, spec, Arc::new(Queue(std::sync::Mutex::new(Some(tx)))))?;
    Ok((src, rx))
}

async fn stream(
    State(st): State<StreamState>,
    RawQuery(query): RawQuery,
    req: axum::extract::Request,
) -> Response {
    let query = query.unwrap_or_default();
    if let (true, Some(page)) = (query.is_empty(), &st.status_page) {
        let host = crate::ssdp::description::local_host(&req);
        // Reading the pool takes its lock briefly; keep it off the async workers anyway.
        let pool = st.pool.clone();
        let rows = tokio::task::spawn_blocking(move || super::status::frontend_rows(&pool))
            .await
            .unwrap_or_default();
        return (
            [
                (header::CONTENT_TYPE, "text/html; charset=utf-8"),
                (header::CACHE_CONTROL, "no-cache"),
            ],
            page.html(host, &rows),
        )
            .into_response();
    }
    let spec = parse_query(&query)
        .and_then(|q| StreamSpec::create(&q, st.max_pids))
        .and_then(|s| {
            s.tuning
                .check_capabilities(&gstdvb2ip::satipmapsrc::capabilities_of(&st.pool))?;
            Ok(s)
        });
    let spec = match spec {
        Ok(s) => s,
        Err(e) => return error_response(&e),
    };
    // Leasing a frontend is synchronous and quick (emulated or dvbsrc open).
    let pool = st.pool.clone();
    let started = tokio::task::spawn_blocking(move || start_source(&pool, spec)).await;
    let (src, rx) = match started {
        Ok(Ok(x)) => x,
        Ok(Err(e)) => return error_response(&e),
        Err(_) => return StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    };
    let guard = SourceGuard(Some(src));
    let body = futures_util::stream::unfold((rx, guard), |(mut rx, guard)| async move {
        rx.recv()
            .await
            .map(|b| (Ok::<Bytes, Infallible>(b), (rx, guard)))
    });
    (
        [
            (header::CONTENT_TYPE, "video/MP2T"),
            (header::CONNECTION, "close"),
        ],
        Body::from_stream(body),
    )
        .into_response()
}
