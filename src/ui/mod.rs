//! The operators' web UI on `/` and the JSON API behind it (issue 15 items 1 and 2).
//!
//! * `/` is the presentation page of [`crate::http::status`] (server-rendered: device, DEVICE
//!   ID, frontends, channels with their `rtsp://` URLs), which loads `/ui/app.css` and
//!   `/ui/app.js` ([`web`], embedded in the binary). The script renders the live sections from
//!   `GET /api/events`, server-sent events carrying one [`Snapshot`] a second.
//! * `GET /api/status`, `/api/tuners`, `/api/sessions`, `/api/lineup`, `/api/vod`
//!   ([`panels`]), `/api/css` ([`css`]): JSON with units in the field names;
//!   `DELETE /api/sessions/<id>` ends a session ([`crate::clients`]). Relays, scans and
//!   recordings have their API in their own modules; the live updates carry them too.
//! * Actions (every POST/PUT/PATCH/DELETE under `/api/`, other modules' too) pass
//!   [`auth::guard`] first: an administrator, and no cross-site request.

pub mod auth;
pub mod config;
pub mod css;
pub mod panels;
pub mod web;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;

use crate::clients::Clients;
use crate::core::Core;
use crate::ssdp::description::{ConnAddrs, DescriptionState};

/// One frontend as `GET /api/tuners` lists it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Tuner {
    /// SAT>IP `fe` numbers.
    pub fe: Vec<u32>,
    pub index: usize,
    pub name: String,
    pub adapter: u32,
    pub frontend: u32,
    pub delivery_systems: Vec<String>,
    /// `emulated`, `local` (a DVB device of this machine) or `remote` (a tuner of another
    /// SAT>IP server, `[[satip_server]]`).
    pub kind: &'static str,
    pub users: usize,
    /// Tuned transponder while in use, e.g. `dvb-t2 474000 kHz`.
    pub tuned: Option<String>,
    pub frequency_khz: Option<u64>,
    pub locked: Option<bool>,
    pub level_percent: Option<u32>,
    /// Signal level in dBm where the frontend gives it (a DVB driver's DVBv5 statistics, an
    /// emulated frontend's `signal_dbm`), else `None`: remote SAT>IP tuners report a level on
    /// 0–255 only (shown in `level_percent`).
    pub signal_dbm: Option<f64>,
    pub quality_percent: Option<u32>,
    pub snr_db: Option<f64>,
    pub ber: Option<f64>,
    /// TS continuity errors (per PID, ISO/IEC 13818-1) in what the frontend delivered since it
    /// was opened; `None` while idle.
    pub continuity_errors_total: Option<u64>,
    /// TS packets with `transport_error_indicator` set since the frontend was opened; `None`
    /// while idle.
    pub transport_errors_total: Option<u64>,
    /// A remote tuner's server, state and counters (src/remote_tuners).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remote: Option<crate::remote_tuners::RemoteTuner>,
}

/// One channel as `GET /api/lineup` lists it: configured ones first, then the database's.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct LineupChannel {
    pub number: u32,
    pub name: String,
    pub provider: String,
    /// `tv`, `radio`, `data`, `other`, or "" for a configured channel.
    #[serde(rename = "type")]
    pub kind: String,
    /// The `/ch/<slug>` mount and `/play/<slug>` page name.
    pub slug: String,
    /// SAT>IP query (tuning and PIDs).
    pub query: String,
    /// `config` or `database`.
    pub origin: &'static str,
}

/// Every channel the server knows now.
pub fn lineup(
    config: &crate::config::Config,
    scans: &crate::scan::service::Scans,
) -> Vec<LineupChannel> {
    let mut v: Vec<LineupChannel> = config
        .channel
        .iter()
        .enumerate()
        .map(|(i, c)| LineupChannel {
            number: u32::try_from(i + 1).unwrap_or(u32::MAX),
            name: if c.title.is_empty() {
                c.name.clone()
            } else {
                c.title.clone()
            },
            provider: String::new(),
            kind: String::new(),
            slug: c.name.clone(),
            query: c.query.trim_start_matches('?').to_owned(),
            origin: "config",
        })
        .collect();
    v.extend(
        scans
            .channels()
            .into_iter()
            .filter(|c| !c.overridden)
            .map(|c| LineupChannel {
                number: c.number,
                slug: c.mount.trim_start_matches("/ch/").to_owned(),
                name: c.name,
                provider: c.provider,
                kind: c.kind,
                query: c.query.trim_start_matches('?').to_owned(),
                origin: "database",
            }),
    );
    v
}

/// `key=value` of a query.
fn param<'a>(query: &'a str, key: &str) -> Option<&'a str> {
    query
        .trim_start_matches('?')
        .split('&')
        .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
}

fn pid_set(query: &str) -> Vec<u32> {
    param(query, "pids")
        .map(|p| p.split(',').filter_map(|x| x.trim().parse().ok()).collect())
        .unwrap_or_default()
}

/// The channel a request (path and query) plays: a `/ch/<slug>` mount by its slug, a SAT>IP
/// query by its frequency and the most PIDs in common beyond the SI tables (0–31).
pub fn channel_of(channels: &[LineupChannel], path: &str, query: &str) -> Option<String> {
    if let Some(slug) = path.strip_prefix("/ch/") {
        let slug = slug.split('/').next().unwrap_or(slug);
        return channels
            .iter()
            .find(|c| c.slug == slug)
            .map(|c| c.name.clone());
    }
    let freq: f64 = param(query, "freq")?.parse().ok()?;
    let pids = pid_set(query);
    channels
        .iter()
        .filter(|c| {
            param(&c.query, "freq")
                .and_then(|f| f.parse::<f64>().ok())
                .is_some_and(|f| (f - freq).abs() < 0.5)
                && param(&c.query, "msys") == param(query, "msys").or(param(&c.query, "msys"))
        })
        .map(|c| {
            let theirs = pid_set(&c.query);
            let common = pids
                .iter()
                .filter(|p| **p > 31 && theirs.contains(p))
                .count();
            (common, c)
        })
        .filter(|(n, _)| *n > 0)
        .max_by_key(|(n, c)| (*n, std::cmp::Reverse(c.number)))
        .map(|(_, c)| c.name.clone())
}

/// The session registry of a core running `config` with `scans`.
pub fn clients_for(
    config: &crate::config::Config,
    scans: &Arc<crate::scan::service::Scans>,
) -> Clients {
    let config = config.clone();
    let scans = scans.clone();
    Clients::new(Box::new(move |path, query| {
        channel_of(&lineup(&config, &scans), path, query)
    }))
}

/// The tuner pool now.
pub fn tuners(pool: &gstdvb2ip::tuners::Pool) -> Vec<Tuner> {
    let numbers = pool.satip_frontends();
    pool.frontends()
        .into_iter()
        .map(|f| {
            let st = pool.frontend_status(f.index);
            let tuned = f.tuned.as_ref().filter(|_| f.users > 0);
            Tuner {
                fe: numbers
                    .iter()
                    .enumerate()
                    .filter(|(_, n)| n.index == f.index)
                    .map(|(i, _)| i as u32 + 1)
                    .collect(),
                index: f.index,
                adapter: f.adapter,
                frontend: f.frontend,
                delivery_systems: f.delsys.iter().map(|d| d.nick().to_owned()).collect(),
                kind: if f.remote.is_some() {
                    "remote"
                } else if f.emulated {
                    "emulated"
                } else {
                    "local"
                },
                remote: f.remote.as_ref().map(Into::into),
                users: f.users,
                tuned: tuned.map(|t| format!("{} {} kHz", t.delsys.nick(), t.frequency_khz)),
                frequency_khz: tuned.map(|t| t.frequency_khz),
                locked: st.as_ref().map(|s| s.locked),
                level_percent: st.as_ref().map(|s| s.level),
                signal_dbm: st.as_ref().and_then(|s| s.signal_dbm),
                quality_percent: st.as_ref().map(|s| s.quality),
                snr_db: st.as_ref().and_then(|s| s.snr_db),
                ber: st.as_ref().and_then(|s| s.ber),
                continuity_errors_total: st.as_ref().map(|s| s.continuity_errors),
                transport_errors_total: st.as_ref().map(|s| s.transport_errors),
                name: f.name,
            }
        })
        .collect()
}

/// The server facts of `GET /api/status`.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Status {
    pub friendly_name: String,
    pub uuid: String,
    pub device_id: u8,
    pub version: &'static str,
    pub uptime_s: u64,
    /// Share of one core used since the previous reading (`None` at the first).
    pub cpu_percent: Option<f64>,
    pub cpu_seconds_total: f64,
    pub rss_bytes: u64,
    pub threads: u64,
    /// `rtsp://…` and `http://…` of the server's listeners.
    pub bound: Vec<String>,
    pub tuners: usize,
    pub tuners_in_use: usize,
    pub sessions: usize,
    pub sessions_rtsp: usize,
    pub sessions_http: usize,
    pub max_sessions: usize,
    pub channels: usize,
}

/// What one live update carries (`GET /api/events`).
#[derive(Debug, Clone, Serialize)]
pub struct Snapshot {
    /// When the snapshot was taken, milliseconds since 1970 (UTC): the page's update latency
    /// is its arrival time minus this.
    pub taken_unix_ms: u64,
    pub status: Status,
    pub tuners: Vec<Tuner>,
    pub sessions: Vec<crate::clients::SessionInfo>,
    pub scan: serde_json::Value,
    /// As `GET /api/relays` lists them, with `play_url`.
    pub relays: Vec<panels::UiRelay>,
    /// As `GET /api/publishers` lists them (`publishers`, `pushes`).
    pub publishers: Vec<crate::streams::publish::PublishStatus>,
    pub pushes: Vec<crate::publish::push::PushStatus>,
    /// As `GET /api/recordings` lists them.
    pub recordings: Vec<crate::vod::record::RecordingInfo>,
    /// As `GET /api/css` lists them.
    pub css: Vec<css::CssChannel>,
    /// Files in the VOD library (the page reloads `GET /api/vod` when this changes).
    pub vod_files: usize,
}

/// Milliseconds since 1970 now.
pub fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// The UI routes' state.
#[derive(Clone)]
pub struct Ui {
    core: Arc<Core>,
    desc: Arc<DescriptionState>,
    device_id: tokio::sync::watch::Receiver<u8>,
    started: Instant,
    /// (when, CPU seconds) of the last reading, for `cpu_percent`.
    cpu: Arc<Mutex<Option<(Instant, f64)>>>,
    /// The VOD library's listing (cached).
    library: Arc<panels::Library>,
    /// Recordings running at the last snapshot (one ending adds a file to the library).
    recording: Arc<std::sync::atomic::AtomicUsize>,
}

/// (CPU seconds, resident bytes, threads) of this process from `/proc/self/stat`.
fn process() -> (f64, u64, u64) {
    // SAFETY: sysconf only reads configuration values.
    let (ticks, page) = unsafe {
        (
            libc::sysconf(libc::_SC_CLK_TCK) as f64,
            libc::sysconf(libc::_SC_PAGESIZE) as u64,
        )
    };
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return (0.0, 0, 0);
    };
    let Some((_, rest)) = stat.rsplit_once(')') else {
        return (0.0, 0, 0);
    };
    let f: Vec<&str> = rest.split_whitespace().collect();
    let at = |n: usize| {
        f.get(n - 3)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    (
        (at(14) + at(15)) as f64 / ticks.max(1.0),
        at(24) * page,
        at(20),
    )
}

impl Ui {
    fn status(&self, http_local: Option<std::net::SocketAddr>, tuners: &[Tuner]) -> Status {
        let d = self.desc.description();
        let (cpu_s, rss, threads) = process();
        let now = Instant::now();
        let cpu_percent = {
            let mut last = self.cpu.lock().unwrap();
            let p = last.and_then(|(t, c)| {
                let dt = now.duration_since(t).as_secs_f64();
                (dt > 0.2).then(|| ((cpu_s - c) / dt * 1000.0).round() / 10.0)
            });
            if last.is_none_or(|(t, _)| now.duration_since(t) > Duration::from_millis(200)) {
                *last = Some((now, cpu_s));
            }
            p
        };
        let cfg = &self.core.config.server;
        let http_port = http_local.map_or(cfg.http_port, |a| a.port());
        let bind = match cfg.bind.parse::<std::net::IpAddr>() {
            Ok(std::net::IpAddr::V6(a)) => format!("[{a}]"),
            _ => cfg.bind.clone(),
        };
        let s = &self.core.sessions;
        Status {
            friendly_name: d.friendly_name.clone(),
            uuid: d.uuid.clone(),
            device_id: *self.device_id.borrow(),
            version: env!("CARGO_PKG_VERSION"),
            uptime_s: self.started.elapsed().as_secs(),
            cpu_percent,
            cpu_seconds_total: cpu_s,
            rss_bytes: rss,
            threads,
            bound: vec![
                format!("rtsp://{bind}:{}", self.desc.rtsp_port),
                format!("http://{bind}:{http_port}"),
            ],
            tuners: tuners.len(),
            tuners_in_use: tuners.iter().filter(|t| t.users > 0).count(),
            sessions: s.total(),
            sessions_rtsp: s.rtsp(),
            sessions_http: s.http(),
            max_sessions: s.max(),
            channels: self.desc.all_channels().len(),
        }
    }

    /// Everything a live update shows (reads the pool and the RTSP session pool: call off
    /// the async workers).
    fn snapshot(&self, http_local: Option<std::net::SocketAddr>) -> Snapshot {
        let taken_unix_ms = unix_ms();
        let tuners = tuners(&self.core.pool);
        let scans = &self.core.scans;
        let recordings = self.core.recordings.list();
        let running = recordings.iter().filter(|r| r.state == "recording").count();
        if self
            .recording
            .swap(running, std::sync::atomic::Ordering::Relaxed)
            > running
        {
            self.library.invalidate();
        }
        Snapshot {
            taken_unix_ms,
            status: self.status(http_local, &tuners),
            sessions: self.core.clients.list(),
            scan: serde_json::json!({
                "enabled": scans.enabled(),
                "running": scans.is_running(),
                "progress": scans.progress(),
            }),
            tuners,
            relays: panels::relays(&self.core.relays),
            publishers: self.core.publishers.status(),
            pushes: self.core.publishers.pushes.status(),
            recordings,
            css: self.core.css.channels(&self.core.config),
            vod_files: self.library.list(&self.core.config.vod.roots).len(),
        }
    }
}

/// The UI's routes (merged into the HTTP server's router; `/` itself stays with
/// [`crate::http::stream`], which renders the page's first paint).
pub fn router(
    core: &Arc<Core>,
    desc: Arc<DescriptionState>,
    device_id: tokio::sync::watch::Receiver<u8>,
) -> Router {
    let ui = Ui {
        core: core.clone(),
        desc,
        device_id,
        started: Instant::now(),
        cpu: Arc::default(),
        library: Arc::default(),
        recording: Arc::default(),
    };
    Router::new()
        .route("/api/status", get(status))
        .route("/api/tuners", get(get_tuners))
        .route("/api/sessions", get(sessions))
        .route("/api/sessions/{id}", get(session).delete(disconnect))
        .route("/api/lineup", get(get_lineup))
        .route("/api/vod", get(vod))
        .route("/api/css", get(get_css))
        .route("/api/events", get(events))
        .with_state(ui)
        .merge(web::router())
}

/// Wraps `app` so that its actions need an administrator ([`auth::guard`]).
pub fn guarded(app: Router, core: &Arc<Core>) -> Router {
    app.layer(axum::middleware::from_fn_with_state(
        Arc::new(core.config.ui.clone()),
        auth::guard,
    ))
}

type Local = Option<axum::Extension<ConnectInfo<ConnAddrs>>>;

fn local(c: Local) -> Option<std::net::SocketAddr> {
    c.map(|axum::Extension(ConnectInfo(a))| a.local)
}

async fn off_thread<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, Response> {
    crate::http::stream::blocking(f)
        .await
        .ok_or_else(|| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

async fn status(State(ui): State<Ui>, c: Local) -> Response {
    let l = local(c);
    match off_thread(move || {
        let t = tuners(&ui.core.pool);
        ui.status(l, &t)
    })
    .await
    {
        Ok(s) => Json(s).into_response(),
        Err(r) => r,
    }
}

async fn get_tuners(State(ui): State<Ui>) -> Response {
    match off_thread(move || tuners(&ui.core.pool)).await {
        Ok(t) => Json(t).into_response(),
        Err(r) => r,
    }
}

async fn sessions(State(ui): State<Ui>) -> Response {
    match off_thread(move || ui.core.clients.list()).await {
        Ok(s) => Json(s).into_response(),
        Err(r) => r,
    }
}

fn not_found(id: &str) -> Response {
    (
        StatusCode::NOT_FOUND,
        Json(serde_json::json!({ "error": format!("no session {id}") })),
    )
        .into_response()
}

async fn session(State(ui): State<Ui>, Path(id): Path<String>) -> Response {
    let want = id.clone();
    match off_thread(move || ui.core.clients.list().into_iter().find(|s| s.id == want)).await {
        Ok(Some(s)) => Json(s).into_response(),
        Ok(None) => not_found(&id),
        Err(r) => r,
    }
}

async fn disconnect(State(ui): State<Ui>, Path(id): Path<String>) -> Response {
    let which = id.clone();
    match off_thread(move || ui.core.clients.disconnect(&which)).await {
        Ok(true) => Json(serde_json::json!({ "disconnected": id })).into_response(),
        Ok(false) => not_found(&id),
        Err(r) => r,
    }
}

async fn get_lineup(State(ui): State<Ui>) -> Response {
    match off_thread(move || lineup(&ui.core.config, &ui.core.scans)).await {
        Ok(l) => Json(l).into_response(),
        Err(r) => r,
    }
}

async fn vod(State(ui): State<Ui>) -> Response {
    match off_thread(move || ui.library.list(&ui.core.config.vod.roots)).await {
        Ok(l) => Json(&*l).into_response(),
        Err(r) => r,
    }
}

async fn get_css(State(ui): State<Ui>) -> Response {
    match off_thread(move || ui.core.css.channels(&ui.core.config)).await {
        Ok(l) => Json(l).into_response(),
        Err(r) => r,
    }
}

/// Seconds between two live updates.
pub const UPDATE_INTERVAL: Duration = Duration::from_secs(1);

/// `GET /api/events`: a [`Snapshot`] now and then every [`UPDATE_INTERVAL`], as server-sent
/// events (`event: snapshot`), until the client goes.
async fn events(State(ui): State<Ui>, c: Local) -> Response {
    let l = local(c);
    let stream = futures_util::stream::unfold((ui, true), move |(ui, first)| async move {
        if !first {
            tokio::time::sleep(UPDATE_INTERVAL).await;
        }
        let u = ui.clone();
        let snap = crate::http::stream::blocking(move || u.snapshot(l)).await?;
        let json = serde_json::to_string(&snap).unwrap_or_else(|_| "{}".into());
        let chunk = format!("event: snapshot\ndata: {json}\n\n");
        Some((Ok::<_, std::convert::Infallible>(chunk), (ui, false)))
    });
    (
        [
            (header::CONTENT_TYPE, "text/event-stream"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        axum::body::Body::from_stream(stream),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ch(number: u32, name: &str, slug: &str, query: &str) -> LineupChannel {
        LineupChannel {
            number,
            name: name.into(),
            provider: String::new(),
            kind: String::new(),
            slug: slug.into(),
            query: query.into(),
            origin: "config",
        }
    }

    #[test]
    fn channels_are_found_by_mount_or_query() {
        let l = vec![
            ch(1, "One", "one", "freq=474&msys=dvbt2&pids=0,16,256,257"),
            ch(2, "Two", "two", "freq=474&msys=dvbt2&pids=0,16,512,513"),
            ch(3, "News", "news", "freq=506&msys=dvbt&pids=0,256"),
        ];
        assert_eq!(channel_of(&l, "/ch/two", "").as_deref(), Some("Two"));
        assert_eq!(channel_of(&l, "/ch/none", ""), None);
        assert_eq!(
            channel_of(&l, "/", "freq=474&msys=dvbt2&pids=0,512").as_deref(),
            Some("Two")
        );
        assert_eq!(
            channel_of(&l, "/", "src=1&freq=506.0&msys=dvbt&pids=0,16,256").as_deref(),
            Some("News")
        );
        assert_eq!(channel_of(&l, "/", "freq=474&msys=dvbt2&pids=0,16"), None);
        assert_eq!(channel_of(&l, "/", "freq=474&msys=dvbs2&pids=256"), None);
    }
}
