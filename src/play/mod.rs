//! Playback in the browser: `GET /play/<slug>` is a page whose `<video>` plays the channel with
//! mpegts.js (vendored under `assets/vendor/mpegts.js`, embedded, served on `/play/assets/…`)
//! from `GET /play/<slug>.ts`, the channel's browser variant ([`transcode`]): one program in
//! a TS whose video is H.264 and audio AAC (re-encoded only where the broadcast carries
//! something else, as our emulated channels' MPEG-1 Layer II audio), one pipeline per channel
//! shared by all its browser viewers. `GET /api/play` shows the running pipelines.
//!
//! Channels are the configuration's `[[channel]]`s and the channel database's services, by
//! the name of their `/ch/<name>` RTSP mount; relays play as `/play/relay~<name>` (a reader of
//! the relay feeds the pipeline) and TS files of the VOD library as `/play/vod~<hex of the
//! path>` (read at their own pace), through the same pipelines. Browser streams count against
//! `[server] max_sessions` like HTTP streams.

pub mod transcode;

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use crate::core::Core;
use crate::http::conn::{Taken, Takeover};
use crate::http::fanout::Writer;
use crate::streams::source::TsSink;
use transcode::ChannelInput;

const MPEGTS_JS: &str = include_str!("assets/vendor/mpegts.js/mpegts.js");
const MPEGTS_LICENSE: &str = include_str!("assets/vendor/mpegts.js/LICENSE");
const PAGE: &str = include_str!("assets/play.html");

/// Whether `path` is a browser stream (`/play/<slug>.ts`), which the HTTP connection hands
/// over to a writer as it does SAT>IP streams ([`crate::http::conn`]).
pub fn is_stream_path(path: &str) -> bool {
    path.strip_prefix("/play/")
        .is_some_and(|p| p.ends_with(".ts") && !p.contains('/'))
}

/// The routes of playback in the browser on `core`.
pub fn router(core: &Arc<Core>) -> Router {
    Router::new()
        .route("/play/assets/vendor/mpegts.js/mpegts.js", get(script))
        .route("/play/assets/vendor/mpegts.js/LICENSE", get(license))
        .route("/play/{name}", get(play))
        .route("/api/play", get(api))
        .with_state(core.clone())
}

async fn script() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "max-age=86400"),
        ],
        MPEGTS_JS,
    )
        .into_response()
}

async fn license() -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        MPEGTS_LICENSE,
    )
        .into_response()
}

async fn api(State(core): State<Arc<Core>>) -> Response {
    let p = &core.play;
    axum::Json(serde_json::json!({
        "pipelines_running": p.running(),
        "pipelines_started_total": p.started_total.load(std::sync::atomic::Ordering::Relaxed),
        "channels": p.info(),
    }))
    .into_response()
}

/// The channel called `slug`: a `[[channel]]` or a service of the channel database.
pub fn find_channel(core: &Core, slug: &str) -> Option<ChannelInput> {
    let (title, query) = if let Some(c) = core.config.channel.iter().find(|c| c.name == slug) {
        let title = if c.title.is_empty() {
            &c.name
        } else {
            &c.title
        };
        (title.clone(), c.query.clone())
    } else {
        let mount = format!("{}{slug}", crate::rtsp::routing::CHANNEL_PREFIX);
        let c = core
            .scans
            .channels()
            .into_iter()
            .find(|c| c.mount == mount && !c.overridden)?;
        (c.name, c.query)
    };
    let (_, source) = crate::channels::tuning_for_query(&query).ok()?;
    Some(ChannelInput {
        slug: slug.to_string(),
        title,
        source,
        program: crate::channels::channel_program(&query, &core.config.broadcast),
        paced: false,
        feed: None,
    })
}

/// Prefix of a relay's player name: `/play/relay~<name>`.
pub const RELAY_PREFIX: &str = "relay~";
/// Prefix of a VOD file's player name: `/play/vod~<hex of its path relative to its root>`
/// (hex keeps `/` and a `.ts` ending out of the name).
pub const VOD_PREFIX: &str = "vod~";

/// The player name of the VOD file at `relative`.
pub fn vod_slug(relative: &str) -> String {
    let hex: String = relative.bytes().map(|b| format!("{b:02x}")).collect();
    format!("{VOD_PREFIX}{hex}")
}

fn unhex(s: &str) -> Option<String> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    let bytes: Option<Vec<u8>> = (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect();
    String::from_utf8(bytes?).ok()
}

/// A launch-string value in double quotes.
fn quoted(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// A relay's reader pushing into the browser pipeline's `appsrc`.
struct AppSrcOut(gst_app::AppSrc);

impl crate::relay::source::Out for AppSrcOut {
    fn push(&self, ts: &[u8]) -> bool {
        self.0
            .push_buffer(gst::Buffer::from_mut_slice(ts.to_vec()))
            .is_ok()
    }
}

/// What `/play/<name>` plays: a channel, a relay (`relay~<name>`) or a file of the VOD library
/// (`vod~<hex path>`).
pub fn find_input(core: &Core, name: &str) -> Option<ChannelInput> {
    if let Some(relay) = name.strip_prefix(RELAY_PREFIX) {
        let relay = core.relays.iter().find(|r| r.name() == relay)?.clone();
        let title = format!("relay {}", relay.name());
        let feed: transcode::Feed = Arc::new(move |src: &gst_app::AppSrc| {
            let out: Arc<dyn crate::relay::source::Out> = Arc::new(AppSrcOut(src.clone()));
            relay
                .attach(out)
                .map(|h| Box::new(h) as Box<dyn Send + Sync>)
                .map_err(|u| format!("relay unavailable: {}", u.cause))
        });
        return Some(ChannelInput {
            slug: name.to_string(),
            title,
            source: "appsrc name=input is-live=true do-timestamp=true format=time \
                     max-bytes=8000000 caps=\"video/mpegts,systemstream=(boolean)true,packetsize=(int)188\""
                .into(),
            program: 0,
            paced: false,
            feed: Some(feed),
        });
    }
    if let Some(hex) = name.strip_prefix(VOD_PREFIX) {
        let relative = unhex(hex)?;
        let encoded = crate::vod::path::encode_path(&relative);
        let found = crate::vod::path::resolve(&core.config.vod.roots, &encoded).ok()?;
        if crate::vod::library::content_type(&found.relative) != "video/mp2t" {
            return None;
        }
        return Some(ChannelInput {
            slug: name.to_string(),
            title: found.relative.clone(),
            source: format!("filesrc location={}", quoted(&found.file.to_string_lossy())),
            program: 0,
            paced: true,
            feed: None,
        });
    }
    find_channel(core, name)
}

fn not_found(slug: &str) -> Response {
    (
        StatusCode::NOT_FOUND,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        format!("no channel {slug:?}: not a [[channel]] of the configuration, a service of the channel database, a relay (relay~<name>) nor a TS file of the library (vod~<hex path>)\n"),
    )
        .into_response()
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

async fn play(
    State(core): State<Arc<Core>>,
    Path(name): Path<String>,
    req: axum::extract::Request,
) -> Response {
    if let Some(slug) = name.strip_suffix(".ts") {
        return stream(core, slug, req).await;
    }
    let Some(ch) = find_input(&core, &name) else {
        return not_found(&name);
    };
    // The stream's path goes into the script as a JSON string (no `<` that could end it).
    let page = PAGE.replace("{title}", &escape(&ch.title)).replace(
        "{stream_json}",
        &serde_json::to_string(&format!("/play/{}.ts", ch.slug))
            .unwrap_or_default()
            .replace('<', "\\u003c"),
    );
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        page,
    )
        .into_response()
}

/// What a browser stream holds: its place among the viewers and among the sessions.
struct Held {
    _viewer: transcode::Viewer,
    _permit: Option<crate::streams::sessions::OwnedSessionPermit>,
}

fn release(keep: Box<dyn Send>) {
    // Leaving may stop a pipeline later (its own thread); dropping here does not block.
    drop(keep);
}

fn unavailable(reason: &str) -> Response {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        [
            (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
            (header::RETRY_AFTER, "5"),
        ],
        format!("{reason}\n"),
    )
        .into_response()
}

async fn stream(core: Arc<Core>, slug: &str, req: axum::extract::Request) -> Response {
    let Some(ch) = find_input(&core, slug) else {
        return not_found(slug);
    };
    let head = [
        (header::CONTENT_TYPE, "video/MP2T"),
        (header::CACHE_CONTROL, "no-cache"),
        (header::CONNECTION, "close"),
    ];
    if req.method() == axum::http::Method::HEAD {
        return head.into_response();
    }
    let Some(takeover) = req.extensions().get::<Takeover>().cloned() else {
        return (
            StatusCode::NOT_IMPLEMENTED,
            "browser streams need the dvb2ip HTTP server",
        )
            .into_response();
    };
    if !takeover.budget.headroom_ok() {
        takeover.budget.refused("browser stream");
        return unavailable("no more sessions: descriptor budget reached");
    }
    let Some(permit) = core.sessions.try_admit_http() else {
        return unavailable("no more sessions: [server] max_sessions reached");
    };
    let writer = Writer::new(
        takeover.sock.clone(),
        takeover.peer,
        takeover.queue_limit,
        takeover.stats.clone(),
    );
    let sink: Arc<dyn TsSink> = writer.clone();
    let players = core.play.clone();
    // Starting a pipeline leases a frontend: off the async workers.
    let joined = crate::http::stream::blocking(move || players.join(&ch, sink)).await;
    let viewer = match joined {
        Some(Ok(v)) => v,
        Some(Err(e)) => {
            eprintln!("dvb2ip: play {slug}: {e}");
            return unavailable(&e);
        }
        None => return StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    };
    // Listed in /api/sessions while it runs; its disconnect closes the connection.
    let (alive, end, sent) = (
        Arc::downgrade(&writer),
        Arc::downgrade(&writer),
        Arc::downgrade(&writer),
    );
    core.clients.register(crate::clients::NewClient {
        key: None,
        protocol: crate::clients::Protocol::Http,
        peer: takeover.peer.to_string(),
        user_agent: req
            .headers()
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned(),
        path: req.uri().path().to_owned(),
        query: String::new(),
        alive: Box::new(move || alive.upgrade().is_some_and(|w| w.closed_reason().is_none())),
        end: Box::new(move || end.upgrade().into_iter().for_each(|w| w.close())),
        bytes: Some(Box::new(move || sent.upgrade().map(|w| w.sent()))),
    });
    *takeover.slot.lock().unwrap() = Some(Taken {
        writer,
        keep: Box::new(Held {
            _viewer: viewer,
            _permit: Some(permit),
        }),
        release,
    });
    head.into_response()
}
