//! The launcher's one HTTP server on `server.http_port`, started by `serve` whether or not SSDP
//! runs: SAT>IP HTTP streaming and the status page on `/` ([`super::stream`],
//! [`super::status`]), the device description, the M3U channel list and the icons
//! ([`crate::ssdp::description`], which SSDP's `LOCATION` announces), Prometheus metrics on
//! `/metrics` ([`super::metrics`]).
//!
//! The caller binds (so port 0 works and a busy port is a start-up error); the server task
//! stops on the handle's shutdown signal (mini-redis shape), and dropping the handle waits for
//! it, bounded.
//!
//! Connections are served by [`super::conn`] under the limits of [`super::limits`] (`[http]`):
//! a connection cap and a per-address cap sized from the descriptor limit (503 with
//! `Retry-After` beyond them), a request-head timeout and an idle timeout.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::Router;

use super::conn::{accept_loop, Shared};
use super::limits::{Admission, HttpLimits, HttpStats};
use crate::core::Core;
use crate::ssdp::description::{self, DescriptionState};

/// Every route of the HTTP server of `core`.
pub fn router(
    core: &Arc<Core>,
    desc: Arc<DescriptionState>,
    device_id: tokio::sync::watch::Receiver<u8>,
) -> Router {
    let status_page = super::status::StatusPage {
        desc: desc.clone(),
        device_id,
        http: Some(core.metrics.http.clone()),
    };
    let vod = crate::vod::http::router(core, desc.rtsp_port);
    let ui = crate::ui::router(core, desc.clone(), status_page.device_id.clone());
    let app = description::router(desc)
        .merge(vod)
        .merge(super::stream::router(super::stream::StreamState {
            status_page: Some(Arc::new(status_page)),
            pool: core.pool.clone(),
            sessions: Some(core.sessions.clone()),
            clients: Some(core.clients.clone()),
            ..Default::default()
        }))
        .merge(crate::scan::api::router(core.scans.clone()))
        .merge(super::metrics::router(core.clone()))
        .merge(crate::relay::http::router(core))
        .merge(crate::publish::http::router(core))
        .merge(crate::play::router(core))
        .merge(crate::companion::router(core))
        .merge(ui);
    crate::ui::guarded(app, core)
}

/// The running HTTP server: dropping it stops the server (waiting for it, at most 3 s).
pub struct HttpServer {
    shutdown: Option<tokio::sync::watch::Sender<bool>>,
    done: Option<std::sync::mpsc::Receiver<()>>,
    /// The port it listens on (useful when configured as 0).
    pub port: u16,
    /// Its counters (connections, streams, refusals, timeouts, slow clients dropped).
    pub stats: Arc<HttpStats>,
    /// The limits it enforces.
    pub limits: HttpLimits,
}

impl HttpServer {
    /// Signals shutdown and waits (bounded) for the server task to end.
    pub fn stop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(true);
        }
        if let Some(rx) = self.done.take() {
            let _ = rx.recv_timeout(Duration::from_secs(3));
        }
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Binds `bind:port` and serves `app` on `rt` with the default limits
/// ([`HttpLimits::default`]). Bind errors are returned, never panicked on.
pub fn spawn(
    rt: &tokio::runtime::Runtime,
    bind: IpAddr,
    port: u16,
    app: Router,
) -> anyhow::Result<HttpServer> {
    spawn_with(
        rt,
        bind,
        port,
        app,
        HttpLimits::default(),
        crate::limits::Limits::from_rlimit(),
        Arc::default(),
    )
}

/// [`spawn`] with the given limits, its connections counted in `budget` (the core's
/// descriptor budget) and its counters in `stats` (the core's `metrics.http`).
pub fn spawn_with(
    rt: &tokio::runtime::Runtime,
    bind: IpAddr,
    port: u16,
    app: Router,
    limits: HttpLimits,
    budget: crate::limits::Limits,
    stats: Arc<HttpStats>,
) -> anyhow::Result<HttpServer> {
    let _guard = rt.enter();
    let listener = std::net::TcpListener::bind(SocketAddr::new(bind, port))
        .with_context(|| format!("cannot listen for HTTP on {bind}:{port}"))?;
    listener.set_nonblocking(true)?;
    let listener = tokio::net::TcpListener::from_std(listener)?;
    let port = listener.local_addr()?.port();
    let (tx, rx) = tokio::sync::watch::channel(false);
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    let admission = Admission::new(limits, budget, stats.clone());
    let shared = Arc::new(Shared {
        app,
        admission,
        shutdown: rx,
    });
    rt.spawn(async move {
        accept_loop(listener, shared).await;
        let _ = done_tx.send(());
    });
    Ok(HttpServer {
        shutdown: Some(tx),
        done: Some(done_rx),
        port,
        stats,
        limits,
    })
}
