//! The UI's assets, written for this project and embedded in the binary (no CDN, no
//! framework): `/ui/app.js` renders the live sections of `/` from `GET /api/events`,
//! `/ui/app.css` lays the page out for a desktop or a phone.

use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;

/// The script.
pub const APP_JS: &str = include_str!("web/app.js");
/// The style sheet.
pub const APP_CSS: &str = include_str!("web/app.css");

/// `/ui/app.js` and `/ui/app.css`.
pub fn router() -> Router {
    Router::new()
        .route(
            "/ui/app.js",
            get(|| async {
                (
                    [
                        (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
                        (header::CACHE_CONTROL, "no-cache"),
                    ],
                    APP_JS,
                )
                    .into_response()
            }),
        )
        .route(
            "/ui/app.css",
            get(|| async {
                (
                    [
                        (header::CONTENT_TYPE, "text/css; charset=utf-8"),
                        (header::CACHE_CONTROL, "no-cache"),
                    ],
                    APP_CSS,
                )
                    .into_response()
            }),
        )
}

/// The live sections the page's first paint carries before the frontends table (filled by
/// the script).
pub const LIVE_SECTIONS: &str = "<section id=\"server\"><h2>Server</h2>\
<dl id=\"server-facts\"><dt>Live updates</dt><dd>need JavaScript</dd></dl></section>\n\
<section id=\"sessions\"><h2>Sessions</h2><div class=\"scroll\"><table id=\"sessions-table\">\
<thead><tr><th>Client</th><th>Protocol</th><th>User agent</th><th>Channel</th><th>PIDs</th>\
<th>Bitrate</th><th>Duration</th><th></th></tr></thead><tbody id=\"sessions-body\"></tbody>\
</table></div></section>\n\
<section id=\"scan\"><h2>Scan</h2><div id=\"scan-state\"></div>\
<button id=\"scan-start\" type=\"button\">Start scan</button> \
<button id=\"scan-stop\" type=\"button\">Stop</button></section>\n";

/// The sections after the channel list.
pub const LATER_SECTIONS: &str = "<section id=\"live-channels\" hidden><h2>Channel list</h2>\
<div class=\"scroll\"><table><thead><tr><th>No.</th><th>Name</th><th>Provider</th><th>Type</th>\
<th></th></tr></thead><tbody id=\"lineup-body\"></tbody></table></div></section>\n\
<section id=\"recordings\"><h2>Recordings</h2><div class=\"scroll\"><table>\
<thead><tr><th>File</th><th>Channel</th><th>State</th><th>Recorded</th><th>Size</th><th></th></tr>\
</thead><tbody id=\"recordings-body\"></tbody></table></div></section>\n\
<section id=\"vod\"><h2>Library</h2><p><a href=\"/vod/\">Files on demand (/vod/)</a></p>\
<div class=\"scroll\"><table><thead><tr><th>File</th><th>Size</th><th>Duration</th><th></th></tr>\
</thead><tbody id=\"vod-body\"></tbody></table></div></section>\n\
<section id=\"relays\"><h2>Relays</h2><div class=\"scroll\"><table><thead><tr><th>Name</th>\
<th>Source</th><th>State</th><th>Readers</th><th>In</th><th>Out</th><th>Starts</th><th>Failures</th>\
<th></th></tr></thead><tbody id=\"relays-body\"></tbody></table></div></section>\n\
<section id=\"publishers\"><h2>Publishers</h2><div class=\"scroll\"><table><thead><tr><th>Mount</th>\
<th>State</th><th>Publisher</th><th>Readers</th><th>In</th><th>Out</th><th>Starts</th><th>Stops</th>\
<th>Refused</th><th>Start latency</th><th>Live for</th></tr></thead><tbody id=\"publishers-body\">\
</tbody></table></div><h3>Pushes</h3><div class=\"scroll\"><table><thead><tr><th>Name</th>\
<th>Source</th><th>Target</th><th>State</th><th>Out</th><th>Starts</th><th>Failures</th></tr>\
</thead><tbody id=\"pushes-body\"></tbody></table></div></section>\n\
<section id=\"css\"><h2>DVB-CSS</h2><div class=\"scroll\"><table><thead><tr><th>Channel</th>\
<th>contentId</th><th>Timelines</th><th>Companions</th><th>WC requests</th><th>Endpoints</th></tr>\
</thead><tbody id=\"css-body\"></tbody></table></div></section>\n";
