//! Publishing over HTTP (merged into the HTTP server's router):
//!
//! * `GET /live/<name>`: the published TS (`video/mp2t`), starting with PAT, PMT and a random
//!   access point; 404 while nobody publishes; the mount's read credentials (Basic or Digest)
//!   when it lists readers. The stream ends when the publisher leaves.
//! * `GET /api/publishers`: every mount's state, publisher, readers, bytes and counts, and
//!   every push's state.

use std::sync::{Arc, Mutex};

use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};

use super::auth::Refusal;
use super::Publishers;
use crate::core::Core;
use crate::ssdp::description::ConnAddrs;
use crate::streams::publish::Reader;
use crate::streams::sessions::Sessions;

/// Chunks an HTTP reader may have queued before it is dropped as too slow.
const QUEUE: usize = 512;

#[derive(Clone)]
struct Api {
    publishers: Arc<Publishers>,
    sessions: Arc<Sessions>,
    clients: Arc<crate::clients::Clients>,
}

/// The publish routes of `core`.
pub fn router(core: &Core) -> Router {
    Router::new()
        .route("/api/publishers", get(status))
        .route("/live/{*path}", get(stream))
        .with_state(Api {
            publishers: core.publishers.clone(),
            sessions: core.sessions.clone(),
            clients: core.clients.clone(),
        })
}

async fn status(State(api): State<Api>) -> Response {
    Json(serde_json::json!({
        "publishers": api.publishers.status(),
        "pushes": api.publishers.pushes.status(),
    }))
    .into_response()
}

/// Feeds one HTTP reader's queue.
struct ChannelReader(Mutex<Option<tokio::sync::mpsc::Sender<Bytes>>>);

impl Reader for ChannelReader {
    fn push(&self, ts: &[u8]) -> bool {
        // A reader too slow to take the stream is dropped (its queue closes).
        self.0
            .lock()
            .unwrap()
            .as_ref()
            .is_some_and(|tx| tx.try_send(Bytes::copy_from_slice(ts)).is_ok())
    }

    fn end(&self) {
        self.0.lock().unwrap().take();
    }
}

fn plain(code: StatusCode, text: String) -> Response {
    (code, [(header::CONTENT_TYPE, "text/plain")], text).into_response()
}

async fn stream(
    State(api): State<Api>,
    ConnectInfo(addrs): ConnectInfo<ConnAddrs>,
    headers: HeaderMap,
    Path(path): Path<String>,
) -> Response {
    let path = format!("{}{path}", super::config::LIVE_PREFIX);
    let Some(mount) = api.publishers.by_path(&path).cloned() else {
        return plain(
            StatusCode::NOT_FOUND,
            format!("no publish mount at {path}\n"),
        );
    };
    let users = &mount.config.reader;
    if !users.is_empty() {
        let authorization = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        match api
            .publishers
            .auth
            .check(users, "GET", authorization, Some(addrs.remote.ip()))
        {
            Ok(_) => {}
            Err(Refusal::Unauthorized { stale, .. }) => {
                let mut r = plain(StatusCode::UNAUTHORIZED, "credentials needed\n".into());
                for c in api.publishers.auth.challenges(users, stale) {
                    if let Ok(v) = c.parse() {
                        r.headers_mut().append(header::WWW_AUTHENTICATE, v);
                    }
                }
                return r;
            }
            Err(Refusal::Forbidden(why)) => {
                return plain(StatusCode::FORBIDDEN, format!("{why}\n"))
            }
            Err(Refusal::BadRequest(why)) => {
                return plain(StatusCode::BAD_REQUEST, format!("{why}\n"))
            }
        }
    }
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
    let out: Arc<dyn Reader> = Arc::new(ChannelReader(Mutex::new(Some(tx))));
    let reader = match mount.published.attach(out) {
        Ok(r) => r,
        Err(why) => return plain(StatusCode::NOT_FOUND, format!("{why}\n")),
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
    let user_agent = headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let body = api
        .clients
        .track_http(addrs.remote, user_agent, path, Box::pin(body));
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "video/mp2t")
        .header(header::CACHE_CONTROL, "no-cache")
        .body(Body::from_stream(body))
        .unwrap_or_else(|e| plain(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))
}
