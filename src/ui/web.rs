//! The UI's assets, written for this project and embedded in the binary (no CDN, no
//! framework): `/ui/app.js` renders the live sections of `/` from `GET /api/events`,
//! `/ui/app.css` lays the page out for a desktop or a phone. [`tuners_table`] renders the
//! frontends table of the page's first paint with the script's columns.

use std::fmt::Write;

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

/// The columns of the frontends table, as `renderTuners` in web/app.js heads them.
pub const TUNER_COLUMNS: [&str; 13] = [
    "fe",
    "Name",
    "Kind",
    "Delivery systems",
    "Users",
    "Tuned",
    "Lock",
    "Level",
    "Quality",
    "SNR",
    "BER",
    "CC errors",
    "TEI errors",
];

/// A bar and its percentage, as the script's `bar()` draws it.
fn bar(percent: u32) -> String {
    format!(
        "<span><span class=\"bar\"><span style=\"width: {}%;\"></span></span>{percent}%</span>",
        percent.min(100)
    )
}

/// The signal level as the page shows it: dBm where the frontend gives it, else the percentage.
pub fn level_text(t: &super::Tuner) -> String {
    match (t.signal_dbm, t.level_percent) {
        (Some(dbm), _) => format!("{dbm:.1} dBm"),
        (None, Some(p)) => bar(p),
        (None, None) => "-".into(),
    }
}

/// `x` as JavaScript's `x.toExponential(1)` writes it (`1.2e-5`, `0.0e+0`).
fn exponential(x: f64) -> String {
    let s = format!("{x:.1e}");
    match s.split_once('e') {
        Some((m, e)) if !e.starts_with('-') => format!("{m}e+{e}"),
        _ => s,
    }
}

/// The frontends table (`<table id="frontends">`) with the same columns and cell texts as the
/// script's live rendering, so that the first paint does not change shape at the first update.
pub fn tuners_table(tuners: &[super::Tuner]) -> String {
    use crate::http::status::escape;
    let mut h = String::from("<table id=\"frontends\">\n<tr>");
    for c in TUNER_COLUMNS {
        let _ = write!(h, "<th>{c}</th>");
    }
    h.push_str("</tr>\n");
    let errors = |n: Option<u64>| match n {
        None => "-".to_owned(),
        Some(0) => "0".to_owned(),
        Some(n) => format!("<span class=\"nolock\">{n}</span>"),
    };
    for t in tuners {
        let fe: Vec<String> = t.fe.iter().map(u32::to_string).collect();
        let lock = match t.locked {
            None => "-",
            Some(true) => "<span class=\"locked\">locked</span>",
            Some(false) => "<span class=\"nolock\">no lock</span>",
        };
        let cells = [
            escape(&fe.join(", ")),
            escape(&t.name),
            escape(&format!(
                "{} adapter{}/frontend{}",
                t.kind, t.adapter, t.frontend
            )),
            escape(&t.delivery_systems.join(", ")),
            t.users.to_string(),
            escape(t.tuned.as_deref().unwrap_or("idle")),
            lock.to_owned(),
            level_text(t),
            t.quality_percent.map_or("-".into(), bar),
            t.snr_db.map_or("-".into(), |db| format!("{db:.1} dB")),
            t.ber.map_or("-".into(), exponential),
            errors(t.continuity_errors_total),
            errors(t.transport_errors_total),
        ];
        h.push_str("<tr>");
        for c in cells {
            let _ = write!(h, "<td>{c}</td>");
        }
        h.push_str("</tr>\n");
    }
    h.push_str("</table>\n");
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tuner() -> super::super::Tuner {
        super::super::Tuner {
            fe: vec![1, 3],
            index: 0,
            name: "Combo <S2/T2>".into(),
            adapter: 0,
            frontend: 1,
            delivery_systems: vec!["dvb-s2".into(), "dvb-t2".into()],
            kind: "local",
            users: 1,
            tuned: Some("dvb-s2 11494000 kHz".into()),
            frequency_khz: Some(11_494_000),
            locked: Some(true),
            level_percent: Some(80),
            signal_dbm: Some(-45.0),
            quality_percent: Some(90),
            snr_db: Some(12.5),
            ber: Some(1.5e-5),
            continuity_errors_total: Some(3),
            transport_errors_total: Some(0),
            remote: None,
        }
    }

    #[test]
    fn the_first_paint_has_the_scripts_columns() {
        // The script heads its table with the same names, in the same order.
        let js_head = APP_JS
            .lines()
            .find(|l| l.contains("const head = row(["))
            .expect("renderTuners' head in app.js");
        let listed: Vec<String> = TUNER_COLUMNS.iter().map(|c| format!("\"{c}\"")).collect();
        assert!(js_head.contains(&listed.join(", ")), "{js_head}");

        let t = tuner();
        let h = tuners_table(std::slice::from_ref(&t));
        assert!(
            h.starts_with("<table id=\"frontends\">\n<tr><th>fe</th><th>Name</th><th>Kind</th>")
        );
        assert!(
            h.contains(
                "<tr><td>1, 3</td><td>Combo &lt;S2/T2&gt;</td><td>local adapter0/frontend1</td>\
                 <td>dvb-s2, dvb-t2</td><td>1</td><td>dvb-s2 11494000 kHz</td>\
                 <td><span class=\"locked\">locked</span></td><td>-45.0 dBm</td>\
                 <td><span><span class=\"bar\"><span style=\"width: 90%;\"></span></span>90%</span></td>\
                 <td>12.5 dB</td><td>1.5e-5</td><td><span class=\"nolock\">3</span></td><td>0</td></tr>"
            ),
            "{h}"
        );
        // Without dBm the level is the percentage; an idle frontend has no figures.
        let idle = super::super::Tuner {
            signal_dbm: None,
            locked: None,
            level_percent: None,
            quality_percent: None,
            snr_db: None,
            ber: None,
            continuity_errors_total: None,
            transport_errors_total: None,
            tuned: None,
            ..t.clone()
        };
        let pct = super::super::Tuner {
            signal_dbm: None,
            ber: Some(0.0),
            ..t
        };
        assert!(level_text(&pct).ends_with("80%</span>"));
        let h = tuners_table(&[idle, pct]);
        assert!(
            h.contains("<td>idle</td><td>-</td><td>-</td><td>-</td><td>-</td><td>-</td><td>-</td><td>-</td></tr>"),
            "{h}"
        );
        assert!(h.contains("<td>0.0e+0</td>"), "{h}");
    }
}
