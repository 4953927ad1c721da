//! The companion screen in a browser (issue 18): `GET /companion/<channel>` is a page that
//! plays a CSS-enabled channel's browser stream ([`crate::play`], mpegts.js) in sync with the
//! channel's DVB-CSS "TV" (the `dvbcsssink` of its RTSP mount); `GET /companion` lists them,
//! and `GET /companion/tv?cii=ws://…/cii[&wcws=ws://…/wc]&channel=<name>` runs the same page
//! against any DVB-CSS TV ("TV mode", e.g. `dvb2ip css tv`). `GET /companion/channels.json`
//! names each channel's service as a contentId stem, so that the page follows a channel change
//! of the TV to this server's channel of the new contentId.
//!
//! The page (assets/companion.js, embedded) opens CSS-CII, follows CSS-TS (the TEMI timeline
//! when the TV offers one, else PTS; the PTS timeline as well, to map media time), keeps the
//! TV's wall clock over the wall clock WebSocket extension (`ws://…/wc`, beside `/cii` and
//! `/ts`, see `gstdvb2ip::css_server::run_cii_ts`) with pydvbcss's lowest-dispersion rule, and
//! steers its `<video>`: a seek when more than 0.25 s off, a playbackRate nudge when closer
//! (never back to exactly 1: in Chrome each switch between rate 1 and another rate slips the
//! media clock by about one audio buffer, measured; see the README).
//!
//! # Media time ↔ broadcast PTS
//!
//! The browser stream is transcoded, and both tsdemux and mpegtsmux re-stamp. The pipeline
//! measures the relation exactly ([`media`]): broadcast PTS = muxed PTS + shift, published on
//! `GET /companion/<channel>/media.json`. mpegts.js turns muxed PTS into media time by
//! subtracting its own base (and corrections); the page reads the original timestamp of the
//! samples it remuxed (mpegts.js 1.8.2's remuxer segment list, `originalDts` against `dts`,
//! reached through the player's private fields with `enableWorker: false`), so media time →
//! muxed PTS → broadcast PTS → (PTS and TEMI control timestamps at one wall clock instant) →
//! position on the followed timeline.

pub mod media;

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use crate::core::Core;

const PAGE: &str = include_str!("assets/companion.html");
const SCRIPT: &str = include_str!("assets/companion.js");

/// The routes of the companion page on `core`.
pub fn router(core: &Arc<Core>) -> Router {
    Router::new()
        .route("/companion", get(index))
        .route("/companion/", get(index))
        .route("/companion/assets/companion.js", get(script))
        .route("/companion/channels.json", get(channels_json))
        .route("/companion/{name}", get(page))
        .route("/companion/{name}/media.json", get(media_json))
        .with_state(core.clone())
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

/// JSON safe inside a `<script>` element.
fn script_json(v: &serde_json::Value) -> String {
    v.to_string().replace('<', "\\u003c")
}

fn html(body: String) -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

async fn script() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        SCRIPT,
    )
        .into_response()
}

/// The CSS-enabled channels: (name, title, CII port, bind address of its CSS servers or "").
fn css_channels(core: &Core) -> Vec<(String, String, u16, String)> {
    core.config
        .channel
        .iter()
        .filter_map(|c| {
            let css = c.css.as_ref()?;
            let title = if c.title.is_empty() {
                c.name.clone()
            } else {
                c.title.clone()
            };
            Some((
                c.name.clone(),
                title,
                css.cii_port,
                css.bind.trim().to_string(),
            ))
        })
        .collect()
}

async fn index(State(core): State<Arc<Core>>) -> Response {
    let mut items = String::new();
    for (name, title, port, _) in css_channels(&core) {
        items += &format!(
            "<li><a href=\"/companion/{n}\">{t}</a> <small>(CSS-CII port {port}; the TV is the RTSP mount /ch/{n})</small></li>\n",
            n = escape(&name),
            t = escape(&title)
        );
    }
    if items.is_empty() {
        items = "<li>No channel has DVB-CSS: add <code>css = true</code> to a <code>[[channel]]</code>.</li>".into();
    }
    let body = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>Companion screens – dvb2ip</title>\
         <style>body{{font-family:system-ui,sans-serif;background:#111;color:#eee;padding:1rem}}a{{color:#8cf}}input{{width:28rem}}</style>\
         </head><body><h1>Companion screens</h1>\
         <p>Each page plays its channel in this browser in sync with the channel's DVB-CSS TV.</p>\
         <ul id=\"channels\">{items}</ul>\
         <h2>TV mode</h2><p>Against any DVB-CSS TV (e.g. <code>dvb2ip css tv</code>): its CSS-CII URL, \
         optionally a wall clock WebSocket URL (dvb2ip's extension; without it the page times by CII/TS only), \
         and the channel of this server to play.</p>\
         <form action=\"/companion/tv\" method=\"get\">\
         <p><label>CSS-CII <input name=\"cii\" placeholder=\"ws://192.0.2.1:7681/cii\"></label></p>\
         <p><label>WC over WebSocket <input name=\"wcws\" placeholder=\"ws://192.0.2.1:7681/wc (optional)\"></label></p>\
         <p><label>Channel <input name=\"channel\" placeholder=\"news\"></label></p>\
         <p><button>Open</button></p></form>\
         <p><a href=\"/\">Back</a></p></body></html>"
    );
    html(body)
}

fn not_found(what: String) -> Response {
    (
        StatusCode::NOT_FOUND,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        what,
    )
        .into_response()
}

async fn page(State(core): State<Arc<Core>>, Path(name): Path<String>) -> Response {
    let channels = css_channels(&core);
    let config = if name == "tv" {
        // Everything else comes from the query (read by the page).
        serde_json::json!({ "mode": "tv" })
    } else {
        let Some((name, title, port, bind)) = channels.iter().find(|c| c.0 == name).cloned() else {
            return not_found(format!(
                "no CSS channel {name:?}: /companion lists the [[channel]]s with css\n"
            ));
        };
        if port == 0 {
            return not_found(format!(
                "channel {name:?}: css.cii_port is 0 (picked when the channel starts), so the page cannot know it; configure a port\n"
            ));
        }
        // An unspecified or loopback bind address: the host the browser reached us by.
        let host = match bind.parse::<std::net::IpAddr>() {
            Ok(a) if !a.is_unspecified() && !a.is_loopback() => Some(match a {
                std::net::IpAddr::V6(a) => format!("[{a}]"),
                a => a.to_string(),
            }),
            _ => None,
        };
        serde_json::json!({
            "mode": "companion",
            "channel": name,
            "title": title,
            "ciiHost": host,
            "ciiPort": port,
        })
    };
    let title = config["title"].as_str().unwrap_or("TV mode").to_string();
    html(
        PAGE.replace("{title}", &escape(&title))
            .replace("{config_json}", &script_json(&config)),
    )
}

async fn media_json(State(core): State<Arc<Core>>, Path(name): Path<String>) -> Response {
    if crate::play::find_channel(&core, &name).is_none() {
        return not_found(format!("no channel {name:?}\n"));
    }
    let body = match core.play.media(&name) {
        Some(info) => serde_json::json!({ "running": true, "media": info }),
        None => serde_json::json!({ "running": false }),
    };
    ([(header::CACHE_CONTROL, "no-cache")], axum::Json(body)).into_response()
}

/// Each channel's service as a contentId stem, `dvb://onid.tsid.sid` (hex), where the
/// broadcast configuration names it: the page switches its stream to the channel of the TV's
/// new contentId (a channel change of the TV).
async fn channels_json(State(core): State<Arc<Core>>) -> Response {
    let b = &core.config.broadcast;
    let list: Vec<serde_json::Value> = core
        .config
        .channel
        .iter()
        .filter_map(|c| {
            let sid = crate::channels::channel_program(&c.query, b);
            let mux = b
                .mux
                .iter()
                .find(|m| sid != 0 && m.service.iter().any(|s| s.service_id == sid))?;
            Some(serde_json::json!({
                "name": c.name,
                "contentIdStem": format!(
                    "dvb://{:x}.{:x}.{:x}",
                    mux.original_network_id, mux.transport_stream_id, sid
                ),
            }))
        })
        .collect();
    (
        [(header::CACHE_CONTROL, "no-cache")],
        axum::Json(serde_json::json!({ "channels": list })),
    )
        .into_response()
}
