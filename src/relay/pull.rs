//! The upstream pull of a relay: a GStreamer pipeline per upstream session (`rtspsrc !
//! rtpmp2tdepay`, `souphttpsrc`, `udpsrc`) into an appsink whose samples go to the relay's
//! [`super::source::Relay::ingest`]; errors and end of stream go to the relay's supervisor.

use std::sync::{Arc, Weak};

use gst::prelude::*;

use super::config::Upstream;
use super::source::Relay;
use super::CAT;

/// One upstream session; stopping it (or dropping it) ends the session upstream (RTSP
/// TEARDOWN, HTTP connection closed, multicast group left).
pub struct Pull {
    pipeline: gst::Pipeline,
}

fn quoted(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// The launch line of a pull from `up`.
pub fn launch_line(up: &Upstream) -> String {
    let sink =
        "appsink name=sink sync=false async=false max-buffers=64 drop=false emit-signals=false";
    match up {
        Upstream::Rtsp(url) => format!(
            "rtspsrc location={} latency=0 protocols=tcp do-rtcp=true teardown-timeout=1000000000 ! rtpmp2tdepay ! {sink}",
            quoted(url)
        ),
        Upstream::Http(url) => format!(
            "souphttpsrc location={} is-live=true do-timestamp=false retries=0 timeout=15 ! {sink}",
            quoted(url)
        ),
        Upstream::Udp { group, port } => format!(
            "udpsrc address={group} port={port} buffer-size=4194304 ! {sink}"
        ),
    }
}

impl Pull {
    /// Starts a pull of `relay`'s upstream, generation `generation` (events of older pulls
    /// are ignored). Errors building or starting the pipeline are returned as text.
    pub fn start(relay: &Arc<Relay>, generation: u64) -> Result<Pull, String> {
        let up = relay.upstream();
        let line = launch_line(&up);
        let pipeline = gst::parse::launch(&line)
            .map_err(|e| format!("cannot build the pull ({line}): {e}"))?
            .downcast::<gst::Pipeline>()
            .map_err(|_| "the pull is not a pipeline".to_string())?;
        let sink = pipeline
            .by_name("sink")
            .and_then(|s| s.downcast::<gst_app::AppSink>().ok())
            .ok_or_else(|| "the pull has no appsink".to_string())?;
        let weak: Weak<Relay> = Arc::downgrade(relay);
        let datagrams = matches!(up, Upstream::Udp { .. });
        sink.set_callbacks(
            gst_app::AppSinkCallbacks::builder()
                .new_sample(move |s| {
                    let sample = s.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                    let Some(relay) = weak.upgrade() else {
                        return Err(gst::FlowError::Flushing);
                    };
                    if let Some(list) = sample.buffer_list() {
                        for b in list.iter() {
                            if let Ok(m) = b.map_readable() {
                                relay.ingest(generation, &m, datagrams);
                            }
                        }
                    }
                    if let Some(b) = sample.buffer() {
                        if let Ok(m) = b.map_readable() {
                            relay.ingest(generation, &m, datagrams);
                        }
                    }
                    Ok(gst::FlowSuccess::Ok)
                })
                .build(),
        );
        let bus = pipeline
            .bus()
            .ok_or_else(|| "the pull has no bus".to_string())?;
        let weak: Weak<Relay> = Arc::downgrade(relay);
        bus.set_sync_handler(move |_, msg| {
            let why = match msg.view() {
                gst::MessageView::Error(e) => Some(format!(
                    "{}{}",
                    e.error(),
                    e.debug()
                        .map(|d| format!(" ({})", d.lines().last().unwrap_or("")))
                        .unwrap_or_default()
                )),
                gst::MessageView::Eos(_) => Some("the upstream ended its stream".to_string()),
                _ => None,
            };
            if let (Some(why), Some(relay)) = (why, weak.upgrade()) {
                relay.pull_failed(generation, why);
            }
            gst::BusSyncReply::Drop
        });
        gst::debug!(CAT, "{}: pulling: {line}", relay.name());
        if let Err(e) = pipeline.set_state(gst::State::Playing) {
            let _ = pipeline.set_state(gst::State::Null);
            return Err(format!("cannot start the pull: {e}"));
        }
        Ok(Pull { pipeline })
    }

    /// Ends the upstream session (waits for the pipeline to stop).
    pub fn stop(self) {
        drop(self);
    }
}

impl Drop for Pull {
    fn drop(&mut self) {
        if let Some(bus) = self.pipeline.bus() {
            bus.unset_sync_handler();
        }
        let _ = self.pipeline.set_state(gst::State::Null);
    }
}
