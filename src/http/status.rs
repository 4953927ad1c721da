//! The presentation page (`presentationURL` `/` of the device description, SAT>IP digest
//! §8.7): `GET /` without a SAT>IP query answers a small HTML status page with the device,
//! its DEVICE ID, the frontends (fe numbers, delivery systems, users, signal) and the
//! channels with their `rtsp://` URLs. `GET /?<query>` stays HTTP streaming (`stream`).

use std::fmt::Write;
use std::net::IpAddr;
use std::sync::Arc;

use crate::ssdp::description::{DescriptionState, DESC_PATH, M3U_PATH};

/// What the page shows besides the live tuner pool.
#[derive(Debug, Clone)]
pub struct StatusPage {
    pub desc: Arc<DescriptionState>,
    /// The DEVICE ID in use (`crate::ssdp::Ssdp::device_id`).
    pub device_id: tokio::sync::watch::Receiver<u8>,
    /// The HTTP server's counters, shown when given.
    pub http: Option<Arc<super::limits::HttpStats>>,
}

/// `s` with `& < > " '` escaped, for HTML text and attribute values.
pub fn escape(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

/// One frontend row: the tuner as `GET /api/tuners` lists it.
pub type FrontendRow = crate::ui::Tuner;

/// The tuner pool now, in pool order.
pub fn frontend_rows(pool: &gstdvb2ip::tuners::Pool) -> Vec<FrontendRow> {
    crate::ui::tuners(pool)
}

impl StatusPage {
    /// The page, with URLs on `host` (the address the request came in on).
    pub fn html(&self, host: IpAddr, frontends: &[FrontendRow]) -> String {
        let d = self.desc.description();
        let host = match host {
            IpAddr::V6(a) => format!("[{a}]"),
            IpAddr::V4(a) => a.to_string(),
        };
        let name = escape(&d.friendly_name);
        let mut h = String::new();
        let _ = write!(
            h,
            "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
             <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
             <link rel=\"stylesheet\" href=\"/ui/app.css\">\n\
             <script src=\"/ui/app.js\" defer></script>\n\
             <title>{name}</title>\n</head>\n<body data-rtsp-port=\"{}\">\n<h1>{name}</h1>\n\
             <p id=\"conn\">static</p><p id=\"ui-note\" class=\"muted\"></p>\n<dl>\n\
             <dt>Model</dt><dd>{} {}</dd>\n<dt>UUID</dt><dd>{}</dd>\n\
             <dt>DEVICE ID</dt><dd id=\"device-id\">{}</dd>\n\
             <dt>Capabilities</dt><dd>{}</dd>\n\
             <dt>Description</dt><dd><a href=\"{DESC_PATH}\">{DESC_PATH}</a></dd>\n\
             <dt>Channel list</dt><dd><a href=\"{M3U_PATH}\">{M3U_PATH}</a></dd>\n</dl>\n",
            self.desc.rtsp_port,
            escape(&d.model_name),
            escape(d.model_number.as_deref().unwrap_or("")),
            escape(&d.uuid),
            *self.device_id.borrow(),
            escape(&d.caps.to_string()),
        );
        if let Some(st) = &self.http {
            let _ = writeln!(h, "<h2>HTTP</h2>\n<dl id=\"http\">\n{}</dl>", st.html());
        }
        h.push_str(crate::ui::web::LIVE_SECTIONS);
        // The same columns as the script's live table (src/ui/web.rs).
        h.push_str("<h2>Frontends</h2>\n");
        h.push_str(&crate::ui::web::tuners_table(frontends));
        h.push_str("<h2>Channels</h2>\n<ol id=\"channel-list\">\n");
        for n in &self.desc.all_channels() {
            let c = &n.channel;
            let url = format!(
                "rtsp://{host}:{}/?{}",
                self.desc.rtsp_port,
                c.query.trim_start_matches('?')
            );
            let url = escape(&url);
            // Database channels carry their number and detail; configured ones their place.
            let (li, detail) = if n.detail.is_empty() {
                ("<li>".to_owned(), String::new())
            } else {
                (
                    format!("<li value=\"{}\">", n.number),
                    format!(" ({})", escape(&n.detail)),
                )
            };
            let _ = writeln!(
                h,
                "{li}{}{detail} <a href=\"{url}\">{url}</a></li>",
                escape(&c.title)
            );
        }
        h.push_str("</ol>\n");
        h.push_str(crate::ui::web::LATER_SECTIONS);
        h.push_str("</body>\n</html>\n");
        h
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ssdp::description::Channel;
    use crate::ssdp::message::SatipCaps;

    #[test]
    fn page_escapes_and_lists_everything() {
        let desc = Arc::new(DescriptionState::new(
            "3f2a9c10-5b7e-4d21-9a0c-00155d0a0b0c",
            "Living <room> & \"TV\"",
            SatipCaps {
                dvbs2: 1,
                ..SatipCaps::default()
            },
            8554,
            vec![Channel {
                title: "A&B <HD>".into(),
                query: "freq=506&msys=dvbt&pids=0".into(),
            }],
        ));
        let page = StatusPage {
            desc,
            device_id: tokio::sync::watch::channel(7).1,
            http: None,
        };
        let rows = vec![FrontendRow {
            fe: vec![1, 3],
            index: 0,
            name: "Combo <S2/T2>".into(),
            adapter: 0,
            frontend: 0,
            delivery_systems: vec!["dvb-s2".into(), "dvb-t2".into()],
            kind: "local",
            users: 1,
            tuned: Some("dvb-s2 11494000 kHz".into()),
            frequency_khz: Some(11_494_000),
            locked: Some(true),
            level_percent: Some(80),
            signal_dbm: None,
            quality_percent: Some(90),
            snr_db: None,
            ber: None,
            continuity_errors_total: Some(0),
            transport_errors_total: Some(0),
            remote: None,
        }];
        let h = page.html("10.0.0.5".parse().unwrap(), &rows);
        assert!(h.starts_with("<!DOCTYPE html>"), "{h}");
        assert!(
            h.contains("<h1>Living &lt;room&gt; &amp; &quot;TV&quot;</h1>"),
            "{h}"
        );
        assert!(!h.contains("<room>"));
        assert!(h.contains("<dd id=\"device-id\">7</dd>"), "{h}");
        assert!(h.contains("<dd>DVBS2-1</dd>"), "{h}");
        assert!(h.contains("<a href=\"/desc.xml\">"), "{h}");
        assert!(h.contains("<a href=\"/channels.m3u\">"), "{h}");
        assert!(h.contains(
            "<tr><td>1, 3</td><td>Combo &lt;S2/T2&gt;</td><td>local adapter0/frontend0</td>\
             <td>dvb-s2, dvb-t2</td><td>1</td><td>dvb-s2 11494000 kHz</td>\
             <td><span class=\"locked\">locked</span></td>\
             <td><span><span class=\"bar\"><span style=\"width: 80%;\"></span></span>80%</span></td>\
             <td><span><span class=\"bar\"><span style=\"width: 90%;\"></span></span>90%</span></td>\
             <td>-</td><td>-</td><td>0</td><td>0</td></tr>"
        ), "{h}");
        assert!(
            h.contains(
                "<li>A&amp;B &lt;HD&gt; <a href=\"rtsp://10.0.0.5:8554/?freq=506&amp;msys=dvbt&amp;pids=0\">"
            ),
            "{h}"
        );
        let v6 = page.html("::1".parse().unwrap(), &[]);
        assert!(v6.contains("rtsp://[::1]:8554/?"), "{v6}");
        assert_eq!(escape("'"), "&#39;");
    }
}
