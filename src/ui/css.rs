//! The DVB-CSS side of the configured channels (`[channel.css]`) for the web UI, `GET /api/css`
//! and `/metrics`: each playing CSS channel's `dvbcsssink` (found when the channel's media is
//! configured, src/serve.rs) is read through its `stats` property: the contentId it announces,
//! the timelines it serves, the CSS-CII/CSS-TS sessions open now and the CSS-WC requests it
//! answered. Counts of media that ended are kept, so the WC total only grows.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use gst::glib;
use gst::prelude::*;
use gst_rtsp_server::prelude::*;
use serde::Serialize;

/// One CSS channel as `GET /api/css` lists it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct CssChannel {
    /// The configured channel's name (its mount is `/ch/<name>`).
    pub name: String,
    pub mount: String,
    pub cii_url: String,
    pub ts_url: String,
    pub wc_url: String,
    /// The channel's media runs (a client plays it): the servers listen.
    pub playing: bool,
    /// The contentId CSS-CII announces now.
    pub content_id: Option<String>,
    /// Timeline selectors served now.
    pub timelines: Vec<String>,
    /// CSS-CII and CSS-TS WebSocket sessions open now (a companion usually holds one of each).
    pub companion_connections: u32,
    /// CSS-WC requests answered for this channel since the server started.
    pub wc_requests_total: u64,
}

/// What one sink reported last.
#[derive(Debug, Clone, Default, PartialEq)]
struct SinkStats {
    content_id: String,
    timelines: Vec<String>,
    connections: u32,
    wc_requests: u64,
}

fn read(sink: &gst::Element) -> SinkStats {
    let s = sink.property::<gst::Structure>("stats");
    SinkStats {
        content_id: s.get("content-id").unwrap_or_default(),
        timelines: s
            .get::<String>("timelines")
            .unwrap_or_default()
            .split(',')
            .filter(|t| !t.is_empty())
            .map(str::to_owned)
            .collect(),
        connections: s.get("connections").unwrap_or(0),
        wc_requests: s.get("wc-requests").unwrap_or(0),
    }
}

/// The live sinks of the server's CSS channels (owned by the core).
#[derive(Default)]
pub struct CssSinks {
    live: Mutex<Vec<(String, glib::WeakRef<gst::Element>)>>,
    /// WC requests of media that ended, by channel.
    ended: Mutex<std::collections::BTreeMap<String, u64>>,
    ended_total: AtomicU64,
}

impl CssSinks {
    /// Notes the `dvbcsssink` (named `css`) of `channel`'s new `media`; its counts are kept
    /// when the media is unprepared.
    pub fn watch(self: &Arc<Self>, channel: &str, media: &gst_rtsp_server::RTSPMedia) {
        let Some(sink) = media
            .element()
            .downcast_ref::<gst::Bin>()
            .and_then(|b| b.by_name("css"))
        else {
            return;
        };
        self.live
            .lock()
            .unwrap()
            .push((channel.to_owned(), sink.downgrade()));
        let (me, weak, name) = (Arc::downgrade(self), sink.downgrade(), channel.to_owned());
        media.connect_unprepared(move |_| {
            if let (Some(me), Some(sink)) = (me.upgrade(), weak.upgrade()) {
                me.retire(&name, &sink);
            }
        });
    }

    /// A media ended: its sink's totals move to the ended counts.
    fn retire(&self, channel: &str, sink: &gst::Element) {
        let mut live = self.live.lock().unwrap();
        let before = live.len();
        live.retain(|(_, w)| w.upgrade().is_some_and(|s| &s != sink));
        if live.len() == before {
            return;
        }
        drop(live);
        let n = read(sink).wc_requests;
        *self
            .ended
            .lock()
            .unwrap()
            .entry(channel.to_owned())
            .or_default() += n;
        self.ended_total.fetch_add(n, Ordering::Relaxed);
    }

    /// The sinks running now, by channel.
    fn running(&self) -> Vec<(String, gst::Element)> {
        let mut live = self.live.lock().unwrap();
        live.retain(|(_, w)| w.upgrade().is_some());
        live.iter()
            .filter_map(|(n, w)| Some((n.clone(), w.upgrade()?)))
            .collect()
    }

    /// CSS-WC requests answered by every CSS channel since the server started.
    pub fn wc_requests_total(&self) -> u64 {
        self.ended_total.load(Ordering::Relaxed)
            + self
                .running()
                .iter()
                .map(|(_, s)| read(s).wc_requests)
                .sum::<u64>()
    }

    /// Every configured CSS channel of `config` with what its servers do now.
    pub fn channels(&self, config: &crate::config::Config) -> Vec<CssChannel> {
        let running = self.running();
        let ended = self.ended.lock().unwrap().clone();
        config
            .channel
            .iter()
            .filter_map(|ch| {
                let css = ch.css.as_ref()?;
                let (cii_url, ts_url, wc_url) = css.urls(&config.server.bind);
                let stats: Vec<SinkStats> = running
                    .iter()
                    .filter(|(n, _)| *n == ch.name)
                    .map(|(_, s)| read(s))
                    .collect();
                let first = stats.first().cloned().unwrap_or_default();
                Some(CssChannel {
                    name: ch.name.clone(),
                    mount: format!("/ch/{}", ch.name),
                    cii_url,
                    ts_url,
                    wc_url,
                    playing: !stats.is_empty(),
                    content_id: (!first.content_id.is_empty()).then_some(first.content_id),
                    timelines: first.timelines,
                    companion_connections: stats.iter().map(|s| s.connections).sum(),
                    wc_requests_total: ended.get(&ch.name).copied().unwrap_or(0)
                        + stats.iter().map(|s| s.wc_requests).sum::<u64>(),
                })
            })
            .collect()
    }
}
