//! The VOD media factory: one media per request (never shared: each client has its own reader,
//! so one client's seek or pause never moves another), reading a file below a VOD root.
//!
//! * `.mjpeg` (the course assignment's movie: 5 ASCII digits of length, then the JPEG):
//!   `filesrc ! mjpegframeparse ! rtpjpegpay` (RTP/JPEG, RFC 2435, payload type 26).
//! * Everything else GStreamer can demux (MPEG-TS incl. our recordings, MP4, MKV/WebM, MP3 …):
//!   `filesrc ! parsebin`, each elementary stream re-payloaded on its own RTP stream
//!   (`rtph264pay`, `rtpmp4gpay`, `rtpmpapay` …), as gst-rtsp-server's URI factory does.
//!
//! MPEG-TS goes this way, per elementary stream, only while `[vod] direct` is off. The reason it
//! once had to (seeking, Scale and RTP-Info need the file's time, which a byte-level MP2T relay
//! only has with an index such as live555's `.tsx`) no longer holds: [`super::ts_file`] finds
//! the key frame at or before an NPT by PCR bisection without an index, and each direct session
//! has its own packetizer whose sequence number and RTP time name RTP-Info. With `[vod] direct`
//! TS files go as they are, one MP2T stream per session and no pipeline
//! ([`super::rtsp_direct`]); this factory keeps every other format and, with `direct` off, TS.
//!
//! Trick play: at a rate other than 1 only key frames leave (a probe on each video payloader
//! drops delta units) and audio is muted; after every flushing seek video starts at a key
//! frame (the random access point the answer's Range names). Reverse rates go by steps of
//! seeks to earlier key frames ([`super::rtsp_reverse`]).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use gst::glib;
use gst::prelude::*;
use gst_rtsp_server::gst_rtsp;
use gst_rtsp_server::prelude::*;
use gst_rtsp_server::subclass::prelude::*;

use super::rtsp::CAT;
use super::rtsp_reverse::{Reverse, Verdict};
use crate::core::Core;

/// Payload type of RTP/JPEG (RFC 3551).
const PT_JPEG: u32 = 26;
/// First dynamic payload type.
const PT_DYNAMIC: u32 = 96;
/// Bytes read for the format check.
const SNIFF_BYTES: usize = 64 * 1024;

/// Whether `file` is an assignment `.mjpeg` movie (by extension).
pub fn is_mjpeg(file: &Path) -> bool {
    file.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("mjpeg"))
}

/// Why a file cannot be served (→ 415 with this text).
pub fn check_format(file: &Path) -> Result<(), String> {
    use std::io::Read;
    let name = file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut data = Vec::with_capacity(SNIFF_BYTES);
    std::fs::File::open(file)
        .and_then(|f| f.take(SNIFF_BYTES as u64).read_to_end(&mut data))
        .map_err(|e| format!("{name}: cannot read: {e}"))?;
    if data.is_empty() {
        return Err(format!("{name}: empty file"));
    }
    if is_mjpeg(file) {
        let len = std::str::from_utf8(data.get(..5).unwrap_or(&[]))
            .ok()
            .filter(|s| s.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|s| s.parse::<usize>().ok());
        return match (len, data.get(5..7)) {
            (Some(n), Some([0xFF, 0xD8])) if n > 2 => Ok(()),
            _ => Err(format!(
                "{name}: not an MJPEG movie (each frame: 5 ASCII digits of length, then a JPEG)"
            )),
        };
    }
    let (caps, _) = gst_base::functions::type_find_helper_for_data(None::<&gst::Object>, &data)
        .map_err(|_| format!("{name}: unknown format (no demuxer recognises it)"))?;
    let media = caps.structure(0).map(|s| s.name().to_string());
    let media = media.unwrap_or_default();
    let readable = gst::ElementFactory::factories_with_type(
        gst::ElementFactoryType::DEMUXER | gst::ElementFactoryType::PARSER,
        gst::Rank::MARGINAL,
    )
    .into_iter()
    .filter(|f| {
        let klass = f.metadata(gst::ELEMENT_METADATA_KLASS).unwrap_or("");
        !klass.contains("Subtitle")
    })
    .any(|f| f.can_sink_any_caps(&caps));
    if readable {
        Ok(())
    } else {
        Err(format!(
            "{name}: {media} is not a format that can be demuxed"
        ))
    }
}

/// The payloader for elementary stream `caps`, if any.
fn payloader_for(caps: &gst::CapsRef) -> Option<gst::ElementFactory> {
    let s = caps.structure(0)?;
    let version = s.get::<i32>("mpegversion").ok().or_else(|| {
        // Unfixed caps (a list of versions): the first one.
        s.get::<gst::List>("mpegversion")
            .ok()
            .and_then(|l| l.first().and_then(|v| v.get::<i32>().ok()))
    });
    let name = match (s.name().as_str(), version) {
        ("video/x-h264", _) => Some("rtph264pay"),
        ("video/x-h265", _) => Some("rtph265pay"),
        ("video/mpeg", Some(4)) => Some("rtpmp4vpay"),
        ("video/mpeg", _) => Some("rtpmpvpay"),
        ("audio/mpeg", Some(1)) => Some("rtpmpapay"),
        ("audio/mpeg", Some(2 | 4)) => Some("rtpmp4gpay"),
        ("audio/x-ac3", _) => Some("rtpac3pay"),
        ("video/x-vp8", _) => Some("rtpvp8pay"),
        ("video/x-vp9", _) => Some("rtpvp9pay"),
        ("audio/x-opus", _) => Some("rtpopuspay"),
        ("audio/x-vorbis", _) => Some("rtpvorbispay"),
        ("video/x-theora", _) => Some("rtptheorapay"),
        ("image/jpeg", _) => Some("rtpjpegpay"),
        _ => None,
    };
    if let Some(f) = name.and_then(gst::ElementFactory::find) {
        return Some(f);
    }
    // Anything else a payloader takes as it is (gst-rtsp-server's URI factory does the same).
    let mut list: Vec<gst::ElementFactory> = gst::ElementFactory::factories_with_type(
        gst::ElementFactoryType::PAYLOADER,
        gst::Rank::MARGINAL,
    )
    .into_iter()
    .filter(|f| f.can_sink_any_caps(caps))
    .collect();
    list.sort_by_key(|f| std::cmp::Reverse(f.rank()));
    list.into_iter().next()
}

/// What the trick-play probe of one payloader knows.
#[derive(Default)]
struct TrickState {
    /// The segment's rate is not 1: key frames only (video) or nothing (audio).
    trick: AtomicBool,
    /// Since the last flush no key frame passed (video), or no buffer at the seek target
    /// (audio).
    await_key: AtomicBool,
    /// The current segment (stream time of buffers).
    segment: Mutex<Option<gst::FormattedSegment<gst::ClockTime>>>,
    /// Stream time of the last key frame seen since the last flush (video), ns.
    last_key: Mutex<Option<u64>>,
    /// The last distance seen between two key frames (video), ns; 0 before two were seen.
    gop: AtomicU64,
    /// A flush (seek) happened: the first buffer let through after it restarts the segment.
    flushed: AtomicBool,
}

/// What the probes of one media share about the last seek (stream times in ns, `u64::MAX`
/// for none).
pub struct SeekTarget {
    /// The NPT a seek asked for: video starts at the random access point at or before it.
    pub target: AtomicU64,
    /// Where video started after it (the random access point used).
    pub landed_video: AtomicU64,
    /// Where any stream started after it.
    pub landed_any: AtomicU64,
    /// The media has a video stream: audio starts where video's random access point is.
    has_video: AtomicBool,
    /// Reverse trick play (see [`super::rtsp_reverse`]).
    pub reverse: Arc<Reverse>,
}

impl Default for SeekTarget {
    fn default() -> Self {
        SeekTarget {
            target: AtomicU64::new(u64::MAX),
            landed_video: AtomicU64::new(u64::MAX),
            landed_any: AtomicU64::new(u64::MAX),
            has_video: AtomicBool::new(false),
            reverse: Arc::default(),
        }
    }
}

impl SeekTarget {
    /// A seek to `target` ns (or `u64::MAX`: to wherever the media is) is about to happen.
    pub fn start(&self, target: u64) {
        self.target.store(target, Ordering::SeqCst);
        self.landed_video.store(u64::MAX, Ordering::SeqCst);
        self.landed_any.store(u64::MAX, Ordering::SeqCst);
    }

    /// Whether the media has a video stream (reverse trick play needs one).
    pub fn has_video(&self) -> bool {
        self.has_video.load(Ordering::SeqCst)
    }

    /// Where the last seek landed: video's random access point, else any stream's start.
    pub fn landed(&self) -> Option<u64> {
        [&self.landed_video, &self.landed_any]
            .into_iter()
            .map(|a| a.load(Ordering::SeqCst))
            .find(|&t| t != u64::MAX)
    }

    fn note(&self, video: bool, at: Option<gst::ClockTime>) {
        let Some(at) = at else { return };
        let at = at.nseconds();
        let _ = self
            .landed_any
            .compare_exchange(u64::MAX, at, Ordering::SeqCst, Ordering::SeqCst);
        if video {
            let _ = self.landed_video.compare_exchange(
                u64::MAX,
                at,
                Ordering::SeqCst,
                Ordering::SeqCst,
            );
        }
    }

    /// Where audio may start after a seek (stream time, ns): at video's random access point
    /// (none yet: not yet), else at the target (`Some(u64::MAX)`: anywhere).
    fn audio_from(&self) -> Option<u64> {
        if self.has_video.load(Ordering::SeqCst) {
            Some(self.landed_video.load(Ordering::SeqCst)).filter(|&t| t != u64::MAX)
        } else {
            Some(self.target.load(Ordering::SeqCst))
        }
    }
}

/// The kind of stream a probe watches.
#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Audio,
    Video,
    H264,
    H265,
}

/// Longest distance between key frames taken for a GOP, ns.
const MAX_GOP_NS: u64 = 10_000_000_000;

/// After a seek the first buffer let through starts a new segment at `at` (its position, or
/// video's random access point for audio): its running time is 0, so the sinks send it at
/// once instead of waiting out the part the demuxer skipped (it lands seconds before the
/// target). The stream-time mapping stays.
fn restart_segment(pad: &gst::Pad, st: &TrickState, at: gst::ClockTime) {
    let Some(mut seg) = st.segment.lock().unwrap().clone() else {
        return;
    };
    if seg.rate() < 0.0 || seg.start() == Some(at) {
        return;
    }
    let Some(time) = seg.to_stream_time(at) else {
        return;
    };
    seg.set_start(at);
    seg.set_position(at);
    seg.set_time(time);
    gst::trace!(CAT, "segment restarted at {at} (stream time {time})");
    let _ = pad.send_event(gst::event::Segment::new(&seg));
}

/// Whether a key frame at stream time `s` is where video starts after a seek to `target`:
/// the random access point at or before the target (the next one, by the last GOP seen, is
/// after it), else the first one at or after it.
fn key_frame_starts(s: u64, target: u64, gop: u64) -> bool {
    target == u64::MAX || s >= target || (gop > 0 && s.saturating_add(gop) > target)
}

/// Whether a video buffer is not a random access point (parsers may flag the first unit after a
/// seek as a key frame although it is not: for H.264/H.265 the payload says).
fn is_delta(b: &gst::BufferRef, kind: Kind) -> bool {
    let delta = b.flags().contains(gst::BufferFlags::DELTA_UNIT);
    if !delta && matches!(kind, Kind::H264 | Kind::H265) {
        return b
            .map_readable()
            .is_ok_and(|m| !super::rtsp_npt::is_random_access(&m, kind == Kind::H265));
    }
    delta
}

/// Drops what a client must not get: at a rate other than 1 every delta unit (video) or every
/// buffer (audio); after a flushing seek what comes before the random access point at or
/// before the target (video), or before that point (audio).
fn add_trick_probe(pay: &gst::Element, kind: Kind, target: &Arc<SeekTarget>) {
    let Some(sink) = pay.static_pad("sink") else {
        return;
    };
    let video = kind != Kind::Audio;
    let target = target.clone();
    if video {
        target.has_video.store(true, Ordering::SeqCst);
    }
    let eos = target.reverse.add_pad(&sink, video);
    let st = Arc::new(TrickState::default());
    st.await_key.store(video, Ordering::SeqCst);
    let check = Arc::new(
        move |pad: &gst::Pad, info: &mut gst::PadProbeInfo| -> gst::PadProbeReturn {
            if target.reverse.active() {
                let verdict = if let Some(gst::PadProbeData::Buffer(b)) = &info.data {
                    let delta = video && is_delta(b, kind);
                    let awaiting = st.await_key.load(Ordering::SeqCst);
                    target.reverse.on_buffer(video, &eos, delta, awaiting, info)
                } else if let Some(gst::PadProbeData::Event(ev)) = &info.data {
                    target.reverse.on_event(video, &eos, ev)
                } else if let Some(gst::PadProbeData::BufferList(_)) = &info.data {
                    Verdict::Drop
                } else {
                    Verdict::Normal
                };
                match verdict {
                    Verdict::Eos => {
                        let _ = pad.send_event(gst::event::Eos::new());
                        return gst::PadProbeReturn::Drop;
                    }
                    Verdict::Drop => {
                        // A flush of a step's seek took the pad's segment (pads drop the sticky
                        // segment before probes see the flush): the demuxer's new one is
                        // replaced by the one the payloader has.
                        let segment = matches!(
                            &info.data,
                            Some(gst::PadProbeData::Event(ev))
                                if ev.type_() == gst::EventType::Segment
                        );
                        let kept = st.segment.lock().unwrap().clone();
                        if let (true, Some(seg)) = (segment, kept) {
                            info.data =
                                Some(gst::PadProbeData::Event(gst::event::Segment::new(&seg)));
                            return gst::PadProbeReturn::Ok;
                        }
                        return gst::PadProbeReturn::Drop;
                    }
                    Verdict::Pass => return gst::PadProbeReturn::Ok,
                    Verdict::Normal => {}
                }
            }
            match &info.data {
                Some(gst::PadProbeData::Event(ev)) => match ev.view() {
                    gst::EventView::Segment(s) => {
                        let rate = s.segment().rate() * s.segment().applied_rate();
                        st.trick.store((rate - 1.0).abs() > 1e-6, Ordering::SeqCst);
                        *st.segment.lock().unwrap() =
                            s.segment().downcast_ref::<gst::ClockTime>().cloned();
                    }
                    gst::EventView::FlushStop(_) => {
                        gst::trace!(CAT, "flush-stop: waiting for the seek target");
                        st.await_key.store(true, Ordering::SeqCst);
                        st.flushed.store(true, Ordering::SeqCst);
                        *st.last_key.lock().unwrap() = None;
                    }
                    _ => {}
                },
                Some(gst::PadProbeData::Buffer(b)) => {
                    let trick = st.trick.load(Ordering::SeqCst);
                    let seg = st.segment.lock().unwrap().clone();
                    let stream_time = seg
                        .as_ref()
                        .zip(b.pts())
                        .and_then(|(s, pts)| s.to_stream_time(pts));
                    let awaiting = st.await_key.load(Ordering::SeqCst);
                    if !video {
                        if trick {
                            return gst::PadProbeReturn::Drop;
                        }
                        if !awaiting {
                            return gst::PadProbeReturn::Ok;
                        }
                        // Nothing before where video starts (or before the target).
                        let Some(from) = target.audio_from() else {
                            return gst::PadProbeReturn::Drop;
                        };
                        if from != u64::MAX && stream_time.is_none_or(|s| s.nseconds() < from) {
                            return gst::PadProbeReturn::Drop;
                        }
                        if st.await_key.swap(false, Ordering::SeqCst) {
                            target.note(false, stream_time);
                            let at = match (from, &seg) {
                                (u64::MAX, _) | (_, None) => b.pts(),
                                (f, Some(seg)) => seg
                                    .position_from_stream_time(gst::ClockTime::from_nseconds(f))
                                    .or(b.pts()),
                            };
                            if let Some(at) = at.filter(|&a| b.pts().is_none_or(|p| a <= p)) {
                                restart_segment(pad, &st, at);
                            }
                        }
                        return gst::PadProbeReturn::Ok;
                    }
                    let delta = is_delta(b, kind);
                    gst::trace!(
                        CAT,
                        "video buffer pts {:?} delta {delta} trick {trick} await {awaiting}",
                        b.pts(),
                    );
                    if delta {
                        return if trick || awaiting {
                            gst::PadProbeReturn::Drop
                        } else {
                            gst::PadProbeReturn::Ok
                        };
                    }
                    // A key frame: the GOP (stream time between key frames) as seen.
                    if let Some(s) = stream_time.map(|s| s.nseconds()) {
                        let prev = st.last_key.lock().unwrap().replace(s);
                        if let Some(gop) =
                            prev.filter(|&p| s > p && s - p < MAX_GOP_NS).map(|p| s - p)
                        {
                            st.gop.store(gop, Ordering::SeqCst);
                        }
                    }
                    if !awaiting {
                        return gst::PadProbeReturn::Ok;
                    }
                    let t = target.target.load(Ordering::SeqCst);
                    let starts = match stream_time {
                        Some(s) => key_frame_starts(s.nseconds(), t, st.gop.load(Ordering::SeqCst)),
                        None => t == u64::MAX,
                    };
                    if !starts {
                        return gst::PadProbeReturn::Drop;
                    }
                    if st.await_key.swap(false, Ordering::SeqCst) {
                        target.note(true, stream_time);
                        if st.flushed.swap(false, Ordering::SeqCst) {
                            if let Some(pts) = b.pts() {
                                restart_segment(pad, &st, pts);
                            }
                        }
                        if target.reverse.active() {
                            let seg = st.segment.lock().unwrap().clone();
                            let time = seg
                                .as_ref()
                                .zip(b.pts())
                                .and_then(|(s, pts)| s.to_stream_time(pts));
                            target.reverse.landed(pad, seg, time, b.pts());
                        }
                    }
                }
                Some(gst::PadProbeData::BufferList(_))
                    if st.trick.load(Ordering::SeqCst) || st.await_key.load(Ordering::SeqCst) =>
                {
                    return gst::PadProbeReturn::Drop;
                }
                _ => {}
            }
            gst::PadProbeReturn::Ok
        },
    );
    let events = check.clone();
    sink.add_probe(
        gst::PadProbeType::EVENT_DOWNSTREAM | gst::PadProbeType::EVENT_FLUSH,
        move |pad, info| match events(pad, info) {
            // Dropped as buffers are (below).
            gst::PadProbeReturn::Drop => {
                info.data.take();
                gst::PadProbeReturn::Handled
            }
            _ => gst::PadProbeReturn::Ok,
        },
    );
    sink.add_probe(
        gst::PadProbeType::BUFFER | gst::PadProbeType::BUFFER_LIST,
        move |pad, info| match check(pad, info) {
            // Dropped by taking the data and reporting it handled: a Drop answer with the
            // data still in the probe info makes GStreamer 1.22 unref NULL (CRITICAL).
            gst::PadProbeReturn::Drop => {
                info.data.take();
                gst::PadProbeReturn::Handled
            }
            r => r,
        },
    );
}

/// Whether decodebin should plug more for `caps`: yes until the stream is parsed (a demuxer's
/// or parser's output, `parsed`/`framed`), then no when a payloader takes it.
fn keep_plugging(caps: &gst::CapsRef) -> bool {
    let Some(s) = caps.structure(0) else {
        return true;
    };
    let parsed =
        s.get::<bool>("parsed").unwrap_or(false) || s.get::<bool>("framed").unwrap_or(false);
    let has_parser = || {
        gst::ElementFactory::factories_with_type(
            gst::ElementFactoryType::DEMUXER | gst::ElementFactoryType::PARSER,
            gst::Rank::MARGINAL,
        )
        .into_iter()
        .any(|f| f.can_sink_all_caps(caps))
    };
    if !parsed && has_parser() {
        return true;
    }
    payloader_for(caps).is_none()
}

/// The kind of stream `caps` are.
fn kind_of(caps: &gst::CapsRef) -> Kind {
    match caps.structure(0).map(|s| s.name().as_str()) {
        Some("video/x-h264") => Kind::H264,
        Some("video/x-h265") => Kind::H265,
        Some(n) if n.starts_with("video/") || n == "image/jpeg" => Kind::Video,
        _ => Kind::Audio,
    }
}

/// A parsebin pad: its payloader inside `dynpay` (ghosted out as the media's next stream), or a
/// fakesink for a stream no payloader takes (subtitles, teletext, data).
fn plug_stream(dynpay: &gst::Bin, pad: &gst::Pad, next_pt: &AtomicU32, target: &Arc<SeekTarget>) {
    let caps = pad.current_caps().unwrap_or_else(|| pad.query_caps(None));
    let Some(factory) = payloader_for(&caps) else {
        gst::info!(CAT, "no RTP payloader for {caps}: stream left out");
        if let Ok(sink) = gst::ElementFactory::make("fakesink")
            .property("sync", false)
            .property("async", false)
            .build()
        {
            let _ = dynpay.add(&sink);
            let _ = sink.sync_state_with_parent();
            if let Some(p) = sink.static_pad("sink") {
                let _ = pad.link(&p);
            }
        }
        return;
    };
    let pt = if factory.name() == "rtpjpegpay" {
        PT_JPEG
    } else {
        next_pt.fetch_add(1, Ordering::SeqCst)
    };
    let Ok(pay) = factory.create().name(format!("pay_{}", pad.name())).build() else {
        gst::warning!(CAT, "cannot create {}", factory.name());
        return;
    };
    pay.set_property("pt", pt);
    if pay.has_property("config-interval") {
        // SPS/PPS before every key frame: a client joining after a seek decodes at once.
        pay.set_property_from_str("config-interval", "-1");
    }
    add_trick_probe(&pay, kind_of(&caps), target);
    if dynpay.add(&pay).is_err() {
        return;
    }
    let _ = pay.sync_state_with_parent();
    let (Some(sink), Some(src)) = (pay.static_pad("sink"), pay.static_pad("src")) else {
        return;
    };
    if pad.link(&sink).is_err() {
        // The stream's format is fixed already (AAC in ADTS): a parser of our own converts it
        // to what the payloader takes (raw AAC for rtpmp4gpay).
        let parser = gst::ElementFactory::factories_with_type(
            gst::ElementFactoryType::PARSER,
            gst::Rank::MARGINAL,
        )
        .into_iter()
        .find(|f| f.can_sink_any_caps(&caps) && f.can_src_any_caps(&sink.pad_template_caps()))
        .and_then(|f| f.create().build().ok());
        let linked = parser.is_some_and(|parser| {
            dynpay.add(&parser).is_ok()
                && parser.sync_state_with_parent().is_ok()
                && parser
                    .static_pad("sink")
                    .is_some_and(|p| pad.link(&p).is_ok())
                && parser.link(&pay).is_ok()
        });
        if !linked {
            gst::warning!(CAT, "cannot link {caps} to {}", factory.name());
            return;
        }
    }
    let Ok(ghost) = gst::GhostPad::builder_with_target(&src).map(|b| b.name(pad.name()).build())
    else {
        return;
    };
    let _ = ghost.set_active(true);
    let _ = dynpay.add_pad(&ghost);
    gst::debug!(CAT, "stream {caps} → {} pt {pt}", factory.name());
}

/// The media element for `file`.
pub fn build_element(file: &Path, target: &Arc<SeekTarget>) -> Option<gst::Element> {
    let location = file.to_string_lossy().into_owned();
    let src = gst::ElementFactory::make("filesrc")
        .name("vodsrc")
        .property("location", &location)
        .build()
        .ok()?;
    if is_mjpeg(file) {
        let bin = gst::Bin::builder().name("vod").build();
        let parse = gst::ElementFactory::make("mjpegframeparse").build().ok()?;
        let pay = gst::ElementFactory::make("rtpjpegpay")
            .name("pay0")
            .property("pt", PT_JPEG)
            .build()
            .ok()?;
        add_trick_probe(&pay, Kind::Video, target);
        bin.add_many([&src, &parse, &pay]).ok()?;
        gst::Element::link_many([&src, &parse, &pay]).ok()?;
        return Some(bin.upcast());
    }
    let top = gst::Bin::builder().name("vod").build();
    // gst-rtsp-server makes a stream of each pad `dynpay0` adds, until its no-more-pads.
    // decodebin stops at parsed elementary streams a payloader takes (as the URI factory's
    // uridecodebin does) and, unlike parsebin, signals no-more-pads.
    let dynpay = gst::Bin::builder().name("dynpay0").build();
    let parse = gst::ElementFactory::make("decodebin").build().ok()?;
    dynpay.add_many([&src, &parse]).ok()?;
    src.link(&parse).ok()?;
    parse.connect("autoplug-continue", false, |args| {
        let caps = args.get(2).and_then(|v| v.get::<gst::Caps>().ok());
        Some(caps.is_none_or(|c| keep_plugging(&c)).to_value())
    });
    let next_pt = Arc::new(AtomicU32::new(PT_DYNAMIC));
    let weak = dynpay.downgrade();
    let target = target.clone();
    parse.connect_pad_added(move |_, pad| {
        if let Some(dynpay) = weak.upgrade() {
            plug_stream(&dynpay, pad, &next_pt, &target);
        }
    });
    let weak = dynpay.downgrade();
    parse.connect_no_more_pads(move |_| {
        if let Some(dynpay) = weak.upgrade() {
            dynpay.no_more_pads();
        }
    });
    top.add(&dynpay).ok()?;
    Some(top.upcast())
}

/// The payloaders of a VOD media (`pay0`, `pay_src_N`).
fn payloaders(media: &gst_rtsp_server::RTSPMedia) -> Vec<gst::Element> {
    let Some(bin) = media.element().downcast::<gst::Bin>().ok() else {
        return vec![];
    };
    bin.iterate_recurse()
        .into_iter()
        .flatten()
        .filter(|e| e.name().starts_with("pay"))
        .collect()
}

/// Where the reader of `media` is (stream time), asked upstream of its payloaders.
pub fn reader_position(media: &gst_rtsp_server::RTSPMedia) -> Option<gst::ClockTime> {
    payloaders(media)
        .iter()
        .filter_map(|p| p.static_pad("sink"))
        .find_map(|p| p.peer_query_position::<gst::ClockTime>())
}

/// Callbacks run once when a media's reading fails for good (the sessions on it end).
type Fatal = Box<dyn FnOnce() + Send>;

/// What the factory keeps on each media.
#[derive(Default)]
pub struct MediaState {
    /// The file read.
    pub file: PathBuf,
    /// End of file reached (and not left by a seek since).
    pub at_end: AtomicBool,
    /// Where the pending seek goes (see [`SeekTarget`]).
    pub target: Arc<SeekTarget>,
    /// The rate of the last PLAY (its Scale as applied).
    pub rate: Mutex<f64>,
    on_fatal: Mutex<Vec<Fatal>>,
    failed: AtomicBool,
}

/// Key of the [`MediaState`] on a media.
const STATE_KEY: &str = "dvb2ip-vod-state";

/// The VOD state of `media`, if it is a VOD media.
pub fn state_of(media: &gst_rtsp_server::RTSPMedia) -> Option<Arc<MediaState>> {
    // SAFETY: STATE_KEY only ever holds an Arc<MediaState>.
    unsafe {
        media
            .data::<Arc<MediaState>>(STATE_KEY)
            .map(|p| p.as_ref().clone())
    }
}

impl MediaState {
    /// Runs `f` when the media's reading fails (immediately if it already has).
    pub fn on_fatal(&self, f: impl FnOnce() + Send + 'static) {
        if self.failed.load(Ordering::SeqCst) {
            f();
            return;
        }
        self.on_fatal.lock().unwrap().push(Box::new(f));
    }
}

/// End of file: the position stays at the end, rtpbin has sent RTCP BYE (on EOS). A read
/// error: logged, EOS pushed into every payloader so that the clients get RTCP BYE, then the
/// sessions end.
fn watch_media(media: &gst_rtsp_server::RTSPMedia, state: &Arc<MediaState>) {
    let Some(bus) = media
        .element()
        .parent()
        .and_then(|p| p.downcast::<gst::Pipeline>().ok())
        .and_then(|p| p.bus())
    else {
        return;
    };
    bus.enable_sync_message_emission();
    let weak = media.downgrade();
    let state = state.clone();
    bus.connect_sync_message(None, move |_, msg| match msg.view() {
        gst::MessageView::Eos(_) if state.target.reverse.active() => {
            // Reverse play reached the start (rtsp_reverse logged it): the next PLAY seeks.
            state.at_end.store(false, Ordering::SeqCst);
        }
        gst::MessageView::Eos(_) if !state.at_end.swap(true, Ordering::SeqCst) => {
            gst::info!(
                CAT,
                "{}: end of file, RTCP BYE sent, session paused at the end",
                state.file.display()
            );
        }
        gst::MessageView::Error(e) => {
            if state.failed.swap(true, Ordering::SeqCst) {
                return;
            }
            gst::error!(
                CAT,
                "{}: read error, ending its session: {} ({})",
                state.file.display(),
                e.error(),
                e.debug().unwrap_or_default()
            );
            let Some(media) = weak.upgrade() else { return };
            let state = state.clone();
            // Not from the failing streaming thread: EOS into each payloader makes rtpbin send
            // BYE, then the sessions go.
            std::thread::spawn(move || {
                for pay in payloaders(&media) {
                    if let Some(sink) = pay.static_pad("sink") {
                        let _ = sink.send_event(gst::event::Eos::new());
                    }
                }
                std::thread::sleep(std::time::Duration::from_millis(300));
                for f in std::mem::take(&mut *state.on_fatal.lock().unwrap()) {
                    f();
                }
            });
        }
        _ => {}
    });
}

mod media_imp {
    use super::*;

    /// A VOD media: gst-rtsp-server's, with the file's duration as the end of its range (it
    /// takes the end from the segment, which `tsdemux` leaves open) and the SDP's range from 0.
    #[derive(Default)]
    pub struct VodMedia {}

    #[glib::object_subclass]
    impl ObjectSubclass for VodMedia {
        const NAME: &'static str = "Dvb2IpVodMedia";
        type Type = super::VodMedia;
        type ParentType = gst_rtsp_server::RTSPMedia;
    }

    impl ObjectImpl for VodMedia {}

    impl VodMedia {
        /// The file's duration, asked upstream of a payloader (before SETUP the pipeline has
        /// no sinks to ask).
        fn duration(&self) -> Option<gst::ClockTime> {
            payloaders(self.obj().upcast_ref())
                .iter()
                .filter_map(|p| p.static_pad("sink"))
                .find_map(|p| p.peer_query_duration::<gst::ClockTime>())
        }
    }

    impl RTSPMediaImpl for VodMedia {
        fn query_stop(&self) -> Option<gst::ClockTime> {
            self.parent_query_stop().or_else(|| self.duration())
        }

        fn setup_sdp(
            &self,
            sdp: &mut gst_rtsp_server::gst_sdp::SDPMessageRef,
            info: &gst_rtsp_server::subclass::SDPInfo,
        ) -> Result<(), gst::LoggableError> {
            self.parent_setup_sdp(sdp, info)?;
            let Some(d) = self.query_stop().or_else(|| self.duration()) else {
                gst::debug!(CAT, imp = self, "no duration for the SDP range");
                return Ok(());
            };
            gst::debug!(CAT, imp = self, "SDP range npt=0-{d}");
            let value = format!("npt=0-{:.3}", d.nseconds() as f64 / 1e9);
            let idx = (0..sdp.attributes_len())
                .find(|&i| sdp.attribute(i).is_some_and(|a| a.key() == "range"));
            let attr = gst_rtsp_server::gst_sdp::SDPAttribute::new("range", Some(&value));
            match idx {
                Some(i) => {
                    let _ = sdp.replace_attribute(i, attr);
                }
                None => sdp.add_attribute("range", Some(&value)),
            }
            Ok(())
        }
    }
}

glib::wrapper! {
    /// The media of a VOD request (see [`media_imp::VodMedia`]).
    pub struct VodMedia(ObjectSubclass<media_imp::VodMedia>) @extends gst_rtsp_server::RTSPMedia;
}

mod imp {
    use super::*;

    #[derive(Default)]
    pub struct VodFactory {
        pub core: std::sync::OnceLock<Arc<Core>>,
    }

    #[glib::object_subclass]
    impl ObjectSubclass for VodFactory {
        const NAME: &'static str = "Dvb2IpVodFactory";
        type Type = super::VodFactory;
        type ParentType = gst_rtsp_server::RTSPMediaFactory;
    }

    impl ObjectImpl for VodFactory {
        fn constructed(&self) {
            self.parent_constructed();
            let f = self.obj();
            f.set_shared(false);
            f.set_eos_shutdown(false);
            f.set_suspend_mode(gst_rtsp_server::RTSPSuspendMode::None);
            f.set_profiles(gst_rtsp::RTSPProfile::AVP);
            f.set_protocols(gst_rtsp::RTSPLowerTrans::UDP | gst_rtsp::RTSPLowerTrans::TCP);
            f.set_transport_mode(gst_rtsp_server::RTSPTransportMode::PLAY);
            f.set_do_retransmission(false);
            f.set_media_gtype(super::VodMedia::static_type());
        }
    }

    impl RTSPMediaFactoryImpl for VodFactory {
        fn create_element(&self, url: &gst_rtsp::RTSPUrl) -> Option<gst::Element> {
            let core = self.core.get()?;
            let uri = url.request_uri();
            let file = match super::super::rtsp::resolve_uri(core, &uri) {
                Ok(r) => r.file,
                Err(_) => return None,
            };
            gst::info!(CAT, "new reader of {}", file.display());
            let target = Arc::new(SeekTarget::default());
            let element = build_element(&file, &target)?;
            // SAFETY: STATE_KEY only ever holds an Arc<MediaState>.
            unsafe {
                element.set_data(
                    STATE_KEY,
                    Arc::new(MediaState {
                        target,
                        rate: Mutex::new(1.0),
                        file,
                        ..Default::default()
                    }),
                )
            };
            Some(element)
        }

        fn media_configure(&self, media: &gst_rtsp_server::RTSPMedia) {
            self.parent_media_configure(media);
            crate::rtsp::client::record_media_errors(media);
            // SAFETY: STATE_KEY only ever holds an Arc<MediaState>.
            let state = unsafe { media.element().steal_data::<Arc<MediaState>>(STATE_KEY) };
            if let Some(state) = state {
                watch_media(media, &state);
                // SAFETY: as above.
                unsafe { media.set_data(STATE_KEY, state) };
            }
        }
    }
}

glib::wrapper! {
    /// The factory mounted at every VOD file's path: a new media (reader) per request.
    pub struct VodFactory(ObjectSubclass<imp::VodFactory>) @extends gst_rtsp_server::RTSPMediaFactory;
}

impl VodFactory {
    pub fn new(core: Arc<Core>) -> Self {
        let f: Self = glib::Object::new();
        let _ = f.imp().core.set(core);
        f
    }
}
