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

/// One frontend row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrontendRow {
    /// SAT>IP `fe` numbers (two for a frontend listed in two X_SATIPCAP groups).
    pub fe: Vec<u32>,
    pub name: String,
    pub device: String,
    pub delsys: Vec<String>,
    pub users: usize,
    /// Tuned transponder, e.g. `dvb-t2 474000 kHz`.
    pub tuned: Option<String>,
    /// (locked, level %, quality %) while it runs.
    pub signal: Option<(bool, u32, u32)>,
}

/// The tuner pool now, in pool order.
pub fn frontend_rows(pool: &gstdvb2ip::tuners::Pool) -> Vec<FrontendRow> {
    let numbers = pool.satip_frontends();
    pool.frontends()
        .into_iter()
        .map(|f| FrontendRow {
            fe: numbers
                .iter()
                .enumerate()
                .filter(|(_, n)| n.index == f.index)
                .map(|(i, _)| i as u32 + 1)
                .collect(),
            device: format!("adapter{}/frontend{}", f.adapter, f.frontend)
                + if f.emulated { " (emulated)" } else { "" },
            delsys: f.delsys.iter().map(|d| d.nick().to_owned()).collect(),
            users: f.users,
            tuned: f
                .tuned
                .as_ref()
                .filter(|_| f.users > 0)
                .map(|t| format!("{} {} kHz", t.delsys.nick(), t.frequency_khz)),
            signal: pool
                .frontend_status(f.index)
                .map(|s| (s.locked, s.level, s.quality)),
            name: f.name,
        })
        .collect()
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
        h.push_str(
            "<h2>Frontends</h2>\n<table id=\"frontends\">\n<tr><th>fe</th><th>Name</th><th>Device</th>\
             <th>Delivery systems</th><th>Users</th><th>Tuned</th><th>Lock</th>\
             <th>Level</th><th>Quality</th></tr>\n",
        );
        for f in frontends {
            let fe: Vec<String> = f.fe.iter().map(u32::to_string).collect();
            let (lock, level, quality) = match f.signal {
                Some((l, lv, q)) => (
                    if l { "locked" } else { "no lock" }.to_owned(),
                    format!("{lv}%"),
                    format!("{q}%"),
                ),
                None => ("-".to_owned(), "-".to_owned(), "-".to_owned()),
            };
            let _ = writeln!(
                h,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>\
                 <td>{lock}</td><td>{level}</td><td>{quality}</td></tr>",
                escape(&fe.join(", ")),
                escape(&f.name),
                escape(&f.device),
                escape(&f.delsys.join(", ")),
                f.users,
                escape(f.tuned.as_deref().unwrap_or("idle")),
            );
        }
        h.push_str("</table>\n<h2>Channels</h2>\n<ol id=\"channel-list\">\n");
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
            name: "Combo <S2/T2>".into(),
            device: "adapter0/frontend0".into(),
            delsys: vec!["dvb-s2".into(), "dvb-t2".into()],
            users: 1,
            tuned: Some("dvb-s2 11494000 kHz".into()),
            signal: Some((true, 80, 90)),
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
            "<tr><td>1, 3</td><td>Combo &lt;S2/T2&gt;</td><td>adapter0/frontend0</td>\
             <td>dvb-s2, dvb-t2</td><td>1</td><td>dvb-s2 11494000 kHz</td><td>locked</td>\
             <td>80%</td><td>90%</td></tr>"
        ));
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
