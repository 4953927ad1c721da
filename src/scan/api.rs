//! The scan API the web UI uses (merged into the HTTP server's router):
//!
//! * `GET /api/scan`: state and progress (`state`, `muxes_done`, `muxes_total`, `services`,
//!   `current`, …) as JSON;
//! * `POST /api/scan/start`: starts a scan (202; 409 while one runs; 503 without a database);
//! * `POST /api/scan/stop`: stops the running scan (200; 409 when none runs);
//! * `GET /api/channels`: the database's services (number, name, provider, type, scrambled,
//!   mux, mount, query).

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};

use super::service::{Scans, StartError};

/// The routes of `scans`.
pub fn router(scans: Arc<Scans>) -> Router {
    Router::new()
        .route("/api/scan", get(status))
        .route("/api/scan/start", post(start))
        .route("/api/scan/stop", post(stop))
        .route("/api/channels", get(channels))
        .with_state(scans)
}

fn error(code: StatusCode, message: &str) -> Response {
    (code, Json(serde_json::json!({ "error": message }))).into_response()
}

async fn status(State(s): State<Arc<Scans>>) -> Response {
    let p = s.progress();
    Json(serde_json::json!({
        "enabled": s.enabled(),
        "running": s.is_running(),
        "progress": p,
    }))
    .into_response()
}

async fn start(State(s): State<Arc<Scans>>) -> Response {
    match s.start() {
        Ok(()) => (
            StatusCode::ACCEPTED,
            Json(serde_json::json!({ "started": true })),
        )
            .into_response(),
        Err(e @ StartError::Running) => error(StatusCode::CONFLICT, &e.to_string()),
        Err(e) => error(StatusCode::SERVICE_UNAVAILABLE, &e.to_string()),
    }
}

async fn stop(State(s): State<Arc<Scans>>) -> Response {
    if s.stop() {
        Json(serde_json::json!({ "stopping": true })).into_response()
    } else {
        error(StatusCode::CONFLICT, "no scan is running")
    }
}

async fn channels(State(s): State<Arc<Scans>>) -> Response {
    Json(s.channels()).into_response()
}
