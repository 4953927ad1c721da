//! Relays over HTTP (merged into the HTTP server's router):
//!
//! * `GET /relay/<name>`: the relay's TS (`video/mp2t`), starting with PAT, PMT and a random
//!   access point; the first reader starts the pull and waits up to `start_timeout`; an
//!   upstream that cannot start gets 503 with `Retry-After` and the cause.
//! * `GET /api/relays`: every relay's state, readers, start latency, bytes in/out and
//!   start/stop/failure counts, with the server's RTSP session and HTTP stream counts.
//! * `POST /api/relays/<name>/start`, `POST /api/relays/<name>/stop`: an operator's start
//!   (the pull starts and stays up without readers) and stop (no longer held: without readers
//!   it closes at once); an administrator's action ([`crate::ui::guarded`]). Answered with the
//!   relay's report; an unknown name is 404.

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};

use super::source::{Out, Relays};
use crate::core::Core;
use crate::streams::sessions::Sessions;

/// Chunks an HTTP reader may have queued before it is dropped as too slow.
const QUEUE: usize = 512;

#[derive(Clone)]
struct Api {
    relays: Arc<Relays>,
    sessions: Arc<Sessions>,
    clients: Arc<crate::clients::Clients>,
}

/// The relay routes of `core`.
pub fn router(core: &Core) -> Router {
    Router::new()
        .route("/api/relays", get(status))
        .route("/api/relays/{name}/{action}", post(hold))
        .route("/relay/{*path}", get(stream))
        .with_state(Api {
            relays: core.relays.clone(),
            sessions: core.sessions.clone(),
            clients: core.clients.clone(),
        })
}

async fn status(State(api): State<Api>) -> Response {
    Json(serde_json::json!({
        "relays": api.relays.status(),
        "rtsp_sessions": api.sessions.rtsp(),
        "http_streams": api.sessions.http(),
    }))
    .into_response()
}

async fn hold(State(api): State<Api>, Path((name, action)): Path<(String, String)>) -> Response {
    let on =
        match action.as_str() {
            "start" => true,
            "stop" => false,
            _ => return (
                StatusCode::NOT_FOUND,
                Json(
                    serde_json::json!({ "error": format!("no action {action:?}: start or stop") }),
                ),
            )
                .into_response(),
        };
    let Some(relay) = api.relays.iter().find(|r| r.name() == name) else {
        return (
            StatusCode::NOT_FOUND,
            Json(serde_json::json!({ "error": format!("no relay {name:?}") })),
        )
            .into_response();
    };
    relay.hold(on);
    Json(relay.status()).into_response()
}

/// Feeds one HTTP reader's queue.
struct ChannelOut(tokio::sync::mpsc::Sender<Bytes>);

impl Out for ChannelOut {
    fn push(&self, ts: &[u8]) -> bool {
        // A reader too slow to take the stream is dropped (its queue closes).
        self.0.try_send(Bytes::copy_from_slice(ts)).is_ok()
    }
}

fn plain(code: StatusCode, text: String) -> Response {
    (code, [(header::CONTENT_TYPE, "text/plain")], text).into_response()
}

async fn stream(
    State(api): State<Api>,
    Path(path): Path<String>,
    headers: axum::http::HeaderMap,
    conn: Option<axum::Extension<axum::extract::ConnectInfo<crate::ssdp::description::ConnAddrs>>>,
) -> Response {
    let path = format!("{}{path}", super::config::RELAY_PREFIX);
    let Some(relay) = api.relays.by_path(&path).cloned() else {
        return plain(StatusCode::NOT_FOUND, format!("no relay at {path}\n"));
    };
    // HTTP streams and RTSP sessions share `[server] max_sessions`.
    let Some(permit) = api.sessions.try_admit_http() else {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            [
                (header::CONTENT_TYPE, "text/plain"),
                (header::RETRY_AFTER, "5"),
            ],
            "No-More: sessions\n",
        )
            .into_response();
    };
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(QUEUE);
    let out: Arc<dyn Out> = Arc::new(ChannelOut(tx));
    let name = relay.name().to_string();
    let attached = tokio::task::spawn_blocking(move || relay.attach(out)).await;
    let reader = match attached {
        Ok(Ok(r)) => r,
        Ok(Err(u)) => {
            eprintln!("dvb2ip: relay {name}: 503 to an HTTP reader: {}", u.cause);
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                [
                    (header::CONTENT_TYPE, "text/plain".to_string()),
                    (header::RETRY_AFTER, u.retry_after.max(1).to_string()),
                ],
                format!("relay upstream unavailable: {}\n", u.cause),
            )
                .into_response();
        }
        Err(e) => {
            return plain(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("relay {name}: {e}\n"),
            )
        }
    };
    // The reader stays attached while the body is being sent: dropped with it when the
    // connection ends.
    let body = futures_util::stream::unfold(
        (rx, reader, permit),
        |(mut rx, reader, permit)| async move {
            let chunk = rx.recv().await?;
            Some((Ok::<Bytes, std::io::Error>(chunk), (rx, reader, permit)))
        },
    );
    // Listed in /api/sessions while it is sent (and ended by its disconnect action).
    let body: crate::clients::StreamBody = Box::pin(body);
    let body = match conn {
        Some(axum::Extension(axum::extract::ConnectInfo(c))) => api.clients.track_http(
            c.remote,
            headers
                .get(header::USER_AGENT)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned(),
            path,
            body,
        ),
        None => body,
    };
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "video/mp2t")
        .header(header::CACHE_CONTROL, "no-cache")
        .body(Body::from_stream(body))
        .unwrap_or_else(|e| plain(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))
}
