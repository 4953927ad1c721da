//! The browser variant of a channel: one GStreamer pipeline per channel, started by its first
//! browser viewer, shared by all of them, stopped [`LINGER`] after the last one left.
//!
//! `dvbtunersrc` (leasing from the core's tuner pool through its `GstContext`, as the RTSP
//! channel mounts do) → `tsdemux` of the channel's program → per elementary stream:
//! H.264 video and AAC audio are only parsed (no re-encoding); any other video is decoded and
//! encoded with `x264enc` (zerolatency, superfast, a key frame a second), any other audio
//! (MPEG-1 Layer II, AC-3, …) decoded and encoded with `avenc_aac` → `mpegtsmux` → `appsink`,
//! whose buffers go to every viewer's [`TsSink`] (the HTTP connection's writer). A viewer
//! starts at a key frame. What the pipeline adds behind the broadcast is measured on each
//! stream (from the demuxer's output to the muxer's input of the same timestamp).

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use gst::prelude::*;
use gstdvb2ip::tuners::Pool;

use crate::streams::source::TsSink;

/// How long a pipeline outlives its last viewer (a reload of the page finds it running).
pub const LINGER: Duration = Duration::from_secs(3);

/// Feeds a pipeline whose source is `appsrc name=input` (a relay): called once the pipeline is
/// built; what it returns is kept while the pipeline runs (the relay's reader).
pub type Feed = Arc<dyn Fn(&gst_app::AppSrc) -> Result<Box<dyn Send + Sync>, String> + Send + Sync>;

/// What a channel's browser variant is built from.
#[derive(Clone)]
pub struct ChannelInput {
    pub slug: String,
    pub title: String,
    /// `dvbtunersrc …` launch fragment of the channel (or `filesrc …` of a file, `appsrc
    /// name=input …` of a relay).
    pub source: String,
    /// The program to demux (0: the first one).
    pub program: u16,
    /// The source is not live (a file): the output is paced to its timestamps.
    pub paced: bool,
    /// Pushes the TS into `appsrc name=input` (a relay's reader).
    pub feed: Option<Feed>,
}

impl std::fmt::Debug for ChannelInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChannelInput")
            .field("slug", &self.slug)
            .field("source", &self.source)
            .field("program", &self.program)
            .field("paced", &self.paced)
            .field("feed", &self.feed.is_some())
            .finish()
    }
}

/// The browser variants running for one server (owned by its core).
pub struct Players {
    pool: Pool,
    running: Mutex<HashMap<String, Arc<Transcoder>>>,
    /// Pipelines started since the server started.
    pub started_total: AtomicU64,
}

impl std::fmt::Debug for Players {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Players")
            .field("running", &self.running.lock().unwrap().len())
            .finish()
    }
}

/// One channel's state, as `/api/play` shows it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PlayerInfo {
    pub slug: String,
    pub viewers: usize,
    /// How each stream is handled, e.g. `video/x-h264: parsed`, `audio/mpeg: mp2 → aac`.
    pub streams: Vec<String>,
    /// What the pipeline adds behind the broadcast now (worst stream, last second), ms.
    pub latency_ms: Option<f64>,
    /// The largest latency seen since it started, ms.
    pub latency_max_ms: Option<f64>,
    pub uptime_s: f64,
    pub bytes_out_total: u64,
}

struct ViewerSlot {
    id: u64,
    sink: Arc<dyn TsSink>,
    /// Data goes out from the first key frame on.
    started: bool,
}

#[derive(Default)]
struct Latency {
    /// (stream, latency, when measured)
    recent: VecDeque<(usize, Duration, Instant)>,
    max: Option<Duration>,
}

/// One running pipeline.
pub struct Transcoder {
    slug: String,
    pipeline: gst::Pipeline,
    viewers: Mutex<Vec<ViewerSlot>>,
    next_id: AtomicU64,
    streams: Mutex<Vec<String>>,
    latency: Mutex<Latency>,
    started: Instant,
    bytes_out: AtomicU64,
    stopped: std::sync::atomic::AtomicBool,
    /// Its PTS related to the broadcast's (the companion page's mapping, src/companion).
    media: Arc<crate::companion::media::MediaMap>,
    /// What the input's feed keeps while the pipeline runs (a relay's reader).
    fed: Mutex<Option<Box<dyn Send + Sync>>>,
}

/// A browser viewer of a channel: dropping it leaves (the last one stops the pipeline after
/// [`LINGER`]).
pub struct Viewer {
    tc: Arc<Transcoder>,
    id: u64,
    players: Weak<Players>,
}

impl Drop for Viewer {
    fn drop(&mut self) {
        let empty = {
            let mut v = self.tc.viewers.lock().unwrap();
            v.retain(|s| s.id != self.id);
            v.is_empty()
        };
        if empty {
            let tc = self.tc.clone();
            let players = self.players.clone();
            let _ = std::thread::Builder::new()
                .name("play-linger".into())
                .spawn(move || {
                    std::thread::sleep(LINGER);
                    if let Some(p) = players.upgrade() {
                        p.stop_if_idle(&tc);
                    } else {
                        tc.stop();
                    }
                });
        }
    }
}

impl Players {
    pub fn new(pool: Pool) -> Arc<Players> {
        Arc::new(Players {
            pool,
            running: Mutex::default(),
            started_total: AtomicU64::new(0),
        })
    }

    /// Pipelines running now.
    pub fn running(&self) -> usize {
        self.running.lock().unwrap().len()
    }

    /// Every running channel's state.
    pub fn info(&self) -> Vec<PlayerInfo> {
        let list: Vec<Arc<Transcoder>> = self.running.lock().unwrap().values().cloned().collect();
        let mut out: Vec<PlayerInfo> = list.iter().map(|t| t.info()).collect();
        out.sort_by(|a, b| a.slug.cmp(&b.slug));
        out
    }

    /// Adds `sink` as a viewer of `input`'s browser variant, starting its pipeline if none
    /// runs.
    pub fn join(
        self: &Arc<Self>,
        input: &ChannelInput,
        sink: Arc<dyn TsSink>,
    ) -> Result<Viewer, String> {
        let mut running = self.running.lock().unwrap();
        let tc = match running.get(&input.slug) {
            Some(t) if !t.stopped.load(Ordering::Relaxed) => t.clone(),
            _ => {
                let t = Transcoder::start(self, input)?;
                self.started_total.fetch_add(1, Ordering::Relaxed);
                running.insert(input.slug.clone(), t.clone());
                t
            }
        };
        let id = tc.next_id.fetch_add(1, Ordering::Relaxed);
        tc.viewers.lock().unwrap().push(ViewerSlot {
            id,
            sink,
            started: false,
        });
        drop(running);
        Ok(Viewer {
            tc,
            id,
            players: Arc::downgrade(self),
        })
    }

    /// How the running browser variant of `slug` relates to the broadcast's PTS.
    pub fn media(&self, slug: &str) -> Option<crate::companion::media::MediaInfo> {
        let running = self.running.lock().unwrap();
        running
            .get(slug)
            .filter(|t| !t.stopped.load(Ordering::Relaxed))
            .map(|t| t.media.info())
    }

    fn stop_if_idle(&self, tc: &Arc<Transcoder>) {
        let mut running = self.running.lock().unwrap();
        if !tc.viewers.lock().unwrap().is_empty() {
            return;
        }
        if running.get(&tc.slug).is_some_and(|t| Arc::ptr_eq(t, tc)) {
            running.remove(&tc.slug);
        }
        drop(running);
        tc.stop();
    }

    /// Forgets a failed pipeline (its viewers were ended).
    fn failed(&self, tc: &Arc<Transcoder>) {
        let mut running = self.running.lock().unwrap();
        if running.get(&tc.slug).is_some_and(|t| Arc::ptr_eq(t, tc)) {
            running.remove(&tc.slug);
        }
        drop(running);
        tc.stop();
    }
}

const QUEUE: &str = "queue max-size-time=0 max-size-buffers=0 max-size-bytes=0";
const X264: &str = "videoconvert ! x264enc tune=zerolatency speed-preset=superfast key-int-max=25 \
                    bitrate=2500 ! video/x-h264,profile=main ! h264parse config-interval=-1";
const AAC: &str = "audioconvert ! audioresample ! audio/x-raw,rate=48000 ! \
                   avenc_aac bitrate=128000 ! aacparse ! capsfilter caps=audio/mpeg,stream-format=adts";

/// How a demuxed stream of these caps is handled: (description, launch of its branch). None:
/// not playable in a browser nor decodable here (it goes to a fakesink).
fn branch_for(caps: &gst::CapsRef) -> Option<(String, String)> {
    let s = caps.structure(0)?;
    let name = s.name().as_str();
    let version = s.get::<i32>("mpegversion").unwrap_or(0);
    let (what, launch) = match name {
        "video/x-h264" => ("parsed", "h264parse config-interval=-1".to_string()),
        "video/mpeg" if version == 1 || version == 2 => (
            "MPEG-2 decoded → x264enc",
            format!("mpegvideoparse ! avdec_mpeg2video ! {X264}"),
        ),
        "video/x-h265" => (
            "HEVC decoded → x264enc",
            format!("h265parse ! avdec_h265 ! {X264}"),
        ),
        "audio/mpeg" if version == 2 || version == 4 => ("AAC parsed", "aacparse".to_string()),
        "audio/mpeg" if version == 1 => (
            "MPEG-1 audio decoded → avenc_aac",
            format!("mpegaudioparse ! mpg123audiodec ! {AAC}"),
        ),
        "audio/x-ac3" | "audio/ac3" => (
            "AC-3 decoded → avenc_aac",
            format!("ac3parse ! avdec_ac3 ! {AAC}"),
        ),
        "audio/x-eac3" => (
            "E-AC-3 decoded → avenc_aac",
            format!("ac3parse ! avdec_eac3 ! {AAC}"),
        ),
        _ => return None,
    };
    Some((format!("{name}: {what}"), format!("{QUEUE} ! {launch}")))
}

impl Transcoder {
    fn start(players: &Arc<Players>, input: &ChannelInput) -> Result<Arc<Transcoder>, String> {
        let program = if input.program == 0 {
            -1
        } else {
            i32::from(input.program)
        };
        let launch = format!(
            "{} ! tsdemux name=demux program-number={program} \
             mpegtsmux name=mux ! appsink name=out sync={} max-buffers=500 drop=true",
            input.source, input.paced
        );
        let pipeline = gst::parse::launch(&launch)
            .map_err(|e| format!("cannot build the browser pipeline: {e}"))?
            .downcast::<gst::Pipeline>()
            .map_err(|_| "the browser pipeline is not a pipeline".to_string())?;
        pipeline.set_context(&gstdvb2ip::tuners::pool_context(&players.pool));
        let tc = Arc::new(Transcoder {
            slug: input.slug.clone(),
            pipeline: pipeline.clone(),
            viewers: Mutex::default(),
            next_id: AtomicU64::new(0),
            streams: Mutex::default(),
            latency: Mutex::default(),
            started: Instant::now(),
            bytes_out: AtomicU64::new(0),
            stopped: Default::default(),
            media: crate::companion::media::MediaMap::attach(&pipeline),
            fed: Mutex::default(),
        });
        let demux = pipeline.by_name("demux").expect("named in the launch");
        let mux = pipeline.by_name("mux").expect("named in the launch");
        let sink = pipeline
            .by_name("out")
            .expect("named in the launch")
            .downcast::<gst_app::AppSink>()
            .map_err(|_| "out is not an appsink".to_string())?;
        let weak = Arc::downgrade(&tc);
        sink.set_callbacks(
            gst_app::AppSinkCallbacks::builder()
                .new_sample(move |s| {
                    let sample = s.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                    if let (Some(tc), Some(buf)) = (weak.upgrade(), sample.buffer_owned()) {
                        tc.fan_out(&buf);
                    }
                    Ok(gst::FlowSuccess::Ok)
                })
                .build(),
        );
        let weak = Arc::downgrade(&tc);
        let have = Arc::new(Mutex::new((false, false)));
        demux.connect_pad_added(move |_, pad| {
            let Some(tc) = weak.upgrade() else { return };
            let caps = pad.current_caps().unwrap_or_else(|| pad.query_caps(None));
            let name = caps
                .structure(0)
                .map(|s| s.name().to_string())
                .unwrap_or_default();
            let kind = if name.starts_with("video/") {
                0
            } else if name.starts_with("audio/") {
                1
            } else {
                2
            };
            let take = {
                let mut h = have.lock().unwrap();
                match kind {
                    0 if !h.0 => {
                        h.0 = true;
                        true
                    }
                    1 if !h.1 => {
                        h.1 = true;
                        true
                    }
                    _ => false,
                }
            };
            let branch = if take { branch_for(&caps) } else { None };
            if let Err(e) = tc.link_branch(pad, &mux, branch) {
                eprintln!("dvb2ip: play {}: stream dropped: {e}", tc.slug);
                let _ = tc.link_branch(pad, &mux, None);
            }
        });
        let weak_tc = Arc::downgrade(&tc);
        let weak_players = Arc::downgrade(players);
        pipeline
            .bus()
            .expect("a pipeline has a bus")
            .set_sync_handler(move |_, msg| {
                let reason = match msg.view() {
                    gst::MessageView::Error(e) => Some(format!(
                        "{}: {}",
                        msg.src().map(|s| s.name().to_string()).unwrap_or_default(),
                        e.error()
                    )),
                    // A file played to its end.
                    gst::MessageView::Eos(_) => Some("end of stream".to_string()),
                    _ => None,
                };
                if let Some(reason) = reason {
                    if let Some(tc) = weak_tc.upgrade() {
                        if !tc.stopped.load(Ordering::Relaxed) {
                            eprintln!("dvb2ip: play {}: pipeline failed: {reason}", tc.slug);
                            let sinks: Vec<_> = tc
                                .viewers
                                .lock()
                                .unwrap()
                                .iter()
                                .map(|v| v.sink.clone())
                                .collect();
                            for s in sinks {
                                s.end(&reason);
                            }
                            let players = weak_players.clone();
                            let _ = std::thread::Builder::new()
                                .name("play-failed".into())
                                .spawn(move || match players.upgrade() {
                                    Some(p) => p.failed(&tc),
                                    None => tc.stop(),
                                });
                        }
                    }
                }
                gst::BusSyncReply::Drop
            });
        if let Some(feed) = &input.feed {
            let src = pipeline
                .by_name("input")
                .and_then(|e| e.downcast::<gst_app::AppSrc>().ok())
                .ok_or("the browser pipeline has no appsrc named input")?;
            *tc.fed.lock().unwrap() = Some(feed(&src)?);
        }
        if let Err(e) = pipeline.set_state(gst::State::Playing) {
            let _ = pipeline.set_state(gst::State::Null);
            return Err(format!("cannot start the browser pipeline: {e}"));
        }
        eprintln!(
            "dvb2ip: play {}: browser pipeline started ({})",
            input.slug, input.source
        );
        Ok(tc)
    }

    /// Links a demuxed pad to its branch into the muxer (or to a fakesink).
    fn link_branch(
        self: &Arc<Self>,
        pad: &gst::Pad,
        mux: &gst::Element,
        branch: Option<(String, String)>,
    ) -> Result<(), String> {
        let pipeline = &self.pipeline;
        let Some((what, launch)) = branch else {
            let fake = gst::ElementFactory::make("fakesink")
                .property("sync", false)
                .property("async", false)
                .build()
                .map_err(|e| e.to_string())?;
            pipeline.add(&fake).map_err(|e| e.to_string())?;
            let _ = fake.sync_state_with_parent();
            let sinkpad = fake.static_pad("sink").expect("fakesink has a sink pad");
            pad.link(&sinkpad).map_err(|e| e.to_string())?;
            return Ok(());
        };
        let bin =
            gst::parse::bin_from_description(&launch, true).map_err(|e| format!("{what}: {e}"))?;
        pipeline.add(&bin).map_err(|e| e.to_string())?;
        let bin_src = bin.static_pad("src").ok_or("branch without a source pad")?;
        let bin_sink = bin.static_pad("sink").ok_or("branch without a sink pad")?;
        let mux_pad = mux
            .request_pad_simple("sink_%d")
            .ok_or("mpegtsmux gave no pad")?;
        if let Err(e) = bin_src.link(&mux_pad) {
            // An unlinked muxer pad would hold the muxer back: give it back.
            mux.release_request_pad(&mux_pad);
            let _ = pipeline.remove(&bin);
            return Err(format!("{what}: linking to mpegtsmux: {e}"));
        }
        bin.sync_state_with_parent()
            .map_err(|e| format!("{what}: {e}"))?;
        pad.link(&bin_sink)
            .map_err(|e| format!("{what}: linking from tsdemux: {e}"))?;
        let index = {
            let mut s = self.streams.lock().unwrap();
            s.push(what.clone());
            s.len() - 1
        };
        eprintln!("dvb2ip: play {}: {what}", self.slug);
        // Latency: when each timestamp left the demuxer, and when it reached the muxer.
        let entered: Arc<Mutex<VecDeque<(gst::ClockTime, Instant)>>> = Arc::default();
        let e = entered.clone();
        pad.add_probe(gst::PadProbeType::BUFFER, move |_, info| {
            if let Some(pts) = info.buffer().and_then(|b| b.pts()) {
                let mut q = e.lock().unwrap();
                q.push_back((pts, Instant::now()));
                while q.len() > 2000 {
                    q.pop_front();
                }
            }
            gst::PadProbeReturn::Ok
        });
        let weak = Arc::downgrade(self);
        bin_src.add_probe(gst::PadProbeType::BUFFER, move |_, info| {
            let Some(pts) = info.buffer().and_then(|b| b.pts()) else {
                return gst::PadProbeReturn::Ok;
            };
            let now = Instant::now();
            let took = {
                let mut q = entered.lock().unwrap();
                // The latest input at or before this timestamp made it.
                let mut found = None;
                while let Some(&(p, t)) = q.front() {
                    if p > pts {
                        break;
                    }
                    found = Some(t);
                    q.pop_front();
                }
                if let Some(t) = found {
                    // Keep it for the next output of the same input (audio frames differ).
                    q.push_front((pts, t));
                }
                found.map(|t| now - t)
            };
            if let (Some(d), Some(tc)) = (took, weak.upgrade()) {
                let mut l = tc.latency.lock().unwrap();
                l.recent.push_back((index, d, now));
                while l
                    .recent
                    .front()
                    .is_some_and(|(_, _, t)| now - *t > Duration::from_secs(1))
                {
                    l.recent.pop_front();
                }
                // The first second includes start-up (lease, lock, first key frame).
                if tc.started.elapsed() > Duration::from_secs(5) {
                    l.max = Some(l.max.map_or(d, |m| m.max(d)));
                }
            }
            gst::PadProbeReturn::Ok
        });
        Ok(())
    }

    /// Hands one muxed buffer to every viewer (each from its first key frame on).
    fn fan_out(&self, buf: &gst::Buffer) {
        self.bytes_out
            .fetch_add(buf.size() as u64, Ordering::Relaxed);
        let key = !buf.flags().contains(gst::BufferFlags::DELTA_UNIT);
        let sinks: Vec<Arc<dyn TsSink>> = {
            let mut v = self.viewers.lock().unwrap();
            v.iter_mut()
                .filter_map(|s| {
                    s.started |= key;
                    s.started.then(|| s.sink.clone())
                })
                .collect()
        };
        for s in sinks {
            s.push(buf);
        }
    }

    fn info(&self) -> PlayerInfo {
        let l = self.latency.lock().unwrap();
        let now = Instant::now();
        let latency = l
            .recent
            .iter()
            .filter(|(_, _, t)| now - *t <= Duration::from_secs(1))
            .map(|(_, d, _)| *d)
            .max();
        PlayerInfo {
            slug: self.slug.clone(),
            viewers: self.viewers.lock().unwrap().len(),
            streams: self.streams.lock().unwrap().clone(),
            latency_ms: latency.map(|d| d.as_secs_f64() * 1000.0),
            latency_max_ms: l.max.map(|d| d.as_secs_f64() * 1000.0),
            uptime_s: self.started.elapsed().as_secs_f64(),
            bytes_out_total: self.bytes_out.load(Ordering::Relaxed),
        }
    }

    /// Stops the pipeline (frees its frontend lease).
    fn stop(&self) {
        if self.stopped.swap(true, Ordering::Relaxed) {
            return;
        }
        let _ = self.pipeline.set_state(gst::State::Null);
        drop(self.fed.lock().unwrap().take());
        let max = self.latency.lock().unwrap().max;
        eprintln!(
            "dvb2ip: play {}: browser pipeline stopped after {:.1} s (largest latency {})",
            self.slug,
            self.started.elapsed().as_secs_f64(),
            max.map_or("-".into(), |d| format!("{} ms", d.as_millis()))
        );
    }
}

impl Drop for Transcoder {
    fn drop(&mut self) {
        if !self.stopped.load(Ordering::Relaxed) {
            let _ = self.pipeline.set_state(gst::State::Null);
        }
    }
}
