//! SAT>IP HTTP streaming (§7.1): `GET /?<query>` answers `200 video/MP2T` and streams the raw
//! TS of the stream's [`Source`] (a tuner-pool subscription, as the unicast RTP path uses)
//! until the client closes the connection, which frees the frontend.
//! Bad queries get 400/403 with the `Check-Syntax:`/`Out-of-Range:` body, no free frontend 503
//! `No-More: frontends`, a stream beyond `[server] max_sessions` (RTSP sessions and HTTP
//! streams together) 503 `No-More: sessions`.
//!
//! The handler only starts the source: its sink is the connection's [`Writer`], which the
//! connection ([`super::conn`]) hands over in a [`Takeover`]; the TS goes from the source's
//! thread to the socket ([`super::fanout`]) with no thread or task per client.

use std::sync::Arc;

use super::conn::{Taken, Takeover};
use super::fanout::Writer;
use super::status::StatusPage;
use crate::streams::sessions::{OwnedSessionPermit, Sessions};
use crate::streams::source::{self, Source, TsSink};
use axum::body::Body;
use axum::extract::{RawQuery, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use gstdvb2ip::proto::satip::{
    parse_query, QueryError, Resource, StreamSpec, DEFAULT_MAX_PIDS, ERROR_CONTENT_TYPE,
};
use gstdvb2ip::tuners::Pool;

/// Settings of the streaming routes.
#[derive(Debug, Clone)]
pub struct StreamState {
    /// Most PIDs per stream.
    pub max_pids: usize,
    /// Answers `GET /` without a query (else that is a 400 like any bad query).
    pub status_page: Option<Arc<StatusPage>>,
    /// The tuner pool streams lease from (the server core's).
    pub pool: Pool,
    /// The server's session count: an HTTP stream takes a place among `max_sessions` (none:
    /// unlimited).
    pub sessions: Option<Arc<Sessions>>,
    /// The session registry the web UI lists (src/clients.rs).
    pub clients: Option<Arc<crate::clients::Clients>>,
}

impl Default for StreamState {
    fn default() -> Self {
        Self {
            max_pids: DEFAULT_MAX_PIDS,
            status_page: None,
            pool: Pool::default_pool().clone(),
            sessions: None,
            clients: None,
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

/// Runs `f` on tokio's blocking pool, at most [`BLOCKING_AT_ONCE`] at a time, so that many
/// clients joining or leaving at once do not each get a thread.
pub async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Option<T> {
    let _permit = BLOCKING.acquire().await.ok()?;
    tokio::task::spawn_blocking(f).await.ok()
}

/// Blocking operations (leasing or releasing a frontend, reading the pool) at once.
pub const BLOCKING_AT_ONCE: usize = 2;
static BLOCKING: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(BLOCKING_AT_ONCE);

/// What a running stream holds: its source and its place among the sessions.
struct Held {
    _source: Box<dyn Source>,
    _permit: Option<OwnedSessionPermit>,
}

/// Gives a stream's source back: the last user of a frontend stops its feed (joins its
/// thread), so off the async workers.
fn release(keep: Box<dyn Send>) {
    match tokio::runtime::Handle::try_current() {
        Ok(rt) => {
            rt.spawn(blocking(move || drop(keep)));
        }
        Err(_) => drop(keep),
    }
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
        let rows = blocking(move || super::status::frontend_rows(&pool))
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
    if req.method() == axum::http::Method::HEAD {
        // The head a GET would get, without leasing a frontend.
        return stream_head(Body::empty());
    }
    let Some(takeover) = req.extensions().get::<Takeover>().cloned() else {
        // Only dvb2ip's own connections (`super::conn`) can hand a socket over.
        return (
            StatusCode::NOT_IMPLEMENTED,
            "HTTP streaming needs the dvb2ip HTTP server",
        )
            .into_response();
    };
    if !takeover.budget.headroom_ok() {
        takeover.budget.refused("HTTP stream");
        return error_response(&QueryError::NoMore(vec![Resource::Sessions]));
    }
    let permit = match &st.sessions {
        Some(s) => match s.try_admit_http() {
            Some(p) => Some(p),
            None => return error_response(&QueryError::NoMore(vec![Resource::Sessions])),
        },
        None => None,
    };
    let writer = Writer::new(
        takeover.sock.clone(),
        takeover.peer,
        takeover.queue_limit,
        takeover.stats.clone(),
    );
    // Leasing a frontend is synchronous and quick (emulated or dvbsrc open).
    let pool = st.pool.clone();
    let sink: Arc<dyn TsSink> = writer.clone();
    let w = writer.clone();
    let started = blocking(move || w.opening(|| source::open(&pool, spec, sink))).await;
    let src = match started {
        Some(Ok(s)) => s,
        Some(Err(e)) => return error_response(&e),
        None => return StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    };
    if let Some(c) = &st.clients {
        let (alive, end) = (Arc::downgrade(&writer), Arc::downgrade(&writer));
        let sent = Arc::downgrade(&writer);
        c.register(crate::clients::NewClient {
            key: None,
            protocol: crate::clients::Protocol::Http,
            peer: takeover.peer.to_string(),
            user_agent: user_agent(&req),
            path: "/".into(),
            query: query.clone(),
            alive: Box::new(move || alive.upgrade().is_some_and(|w| w.closed_reason().is_none())),
            end: Box::new(move || end.upgrade().into_iter().for_each(|w| w.close())),
            bytes: Some(Box::new(move || sent.upgrade().map(|w| w.sent()))),
        });
    }
    *takeover.slot.lock().unwrap() = Some(Taken {
        writer,
        keep: Box::new(Held {
            _source: src,
            _permit: permit,
        }),
        release,
    });
    stream_head(Body::empty())
}

/// The request's `User-Agent` ("" when none).
fn user_agent(req: &axum::extract::Request) -> String {
    req.headers()
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

/// The answer that starts a stream (its TS follows on the connection).
fn stream_head(body: Body) -> Response {
    (
        [
            (header::CONTENT_TYPE, "video/MP2T"),
            (header::CONNECTION, "close"),
        ],
        body,
    )
        .into_response()
}
