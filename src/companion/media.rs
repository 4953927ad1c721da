//! The browser variant's PTS related to the broadcast's, measured in its pipeline
//! (`dvb2ip_proto::css::media` has the maths): the companion page adds [`MediaMap::shift_at`]
//! to the muxed PTS that mpegts.js turned into `video.currentTime` to get the broadcast PTS
//! the TV's PTS timeline counts.
//!
//! Probes: the TS going into `tsdemux` (video PES starts: PTS and payload key), each video
//! access unit coming out of it (its key finds its broadcast PTS; its running time gives the
//! demuxer's shift) and the TS coming out of `mpegtsmux` (its first video PTS tells the
//! muxer's constant). A broadcast discontinuity changes the shift; the map keeps the recent
//! changes with the muxed PTS from which each applies, so a page behind live still uses the
//! shift of what it shows.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use gst::prelude::*;
use gstdvb2ip::proto::css::media::{self, PtsIndex};

/// Shift changes kept (a page is at most a few seconds behind the newest).
const SEGMENTS: usize = 16;

#[derive(Debug, Default)]
struct Inner {
    index: PtsIndex,
    /// broadcast PTS − demuxer running time (ticks), latest.
    demux_shift: Option<i64>,
    /// Running time (ns) of the latest demuxed video access unit.
    last_rt_ns: Option<u64>,
    /// The muxer's constant, once seen.
    mux_base: Option<u64>,
    /// (muxed PTS from which it applies, shift), oldest first.
    segments: VecDeque<(u64, u64)>,
    matched: u64,
    unmatched: u64,
}

/// The measured relation of one browser pipeline (shared with its probes).
#[derive(Debug, Default)]
pub struct MediaMap {
    inner: Mutex<Inner>,
}

/// What `/companion/<channel>/media.json` shows.
#[derive(Debug, Clone, serde::Serialize)]
pub struct MediaInfo {
    /// broadcast PTS − muxed PTS (ticks, mod 2^33) now; None until measured.
    pub pts_shift: Option<u64>,
    /// `[muxed PTS from which it applies, shift]`, oldest first.
    pub segments: Vec<[u64; 2]>,
    pub mux_base: Option<u64>,
    /// Access units whose broadcast PTS was found, and not found.
    pub matched: u64,
    pub unmatched: u64,
}

impl MediaMap {
    /// The probes on `pipeline`'s `demux` (tsdemux) and `mux` (mpegtsmux).
    pub fn attach(pipeline: &gst::Pipeline) -> Arc<MediaMap> {
        let map = Arc::new(MediaMap::default());
        let (Some(demux), Some(mux)) = (pipeline.by_name("demux"), pipeline.by_name("mux")) else {
            return map;
        };
        if let Some(sink) = demux.static_pad("sink") {
            let m = Arc::downgrade(&map);
            sink.add_probe(gst::PadProbeType::BUFFER, move |_, info| {
                if let (Some(m), Some(buf)) = (m.upgrade(), info.buffer()) {
                    if let Ok(data) = buf.map_readable() {
                        let starts = media::pes_starts(&data);
                        if !starts.is_empty() {
                            m.inner.lock().unwrap().index.add(&starts);
                        }
                    }
                }
                gst::PadProbeReturn::Ok
            });
        }
        let m = Arc::downgrade(&map);
        demux.connect_pad_added(move |_, pad| {
            if !pad.name().starts_with("video") {
                return;
            }
            let m = m.clone();
            pad.add_probe(gst::PadProbeType::BUFFER, move |pad, info| {
                let (Some(m), Some(buf)) = (m.upgrade(), info.buffer()) else {
                    return gst::PadProbeReturn::Ok;
                };
                let Some(pts) = buf.pts() else {
                    return gst::PadProbeReturn::Ok;
                };
                let rt = pad
                    .sticky_event::<gst::event::Segment>(0)
                    .and_then(|e| {
                        e.segment()
                            .downcast_ref::<gst::format::Time>()
                            .and_then(|s| s.to_running_time(pts))
                    })
                    .unwrap_or(pts)
                    .nseconds();
                if let Ok(data) = buf.map_readable() {
                    m.demuxed(&data, rt);
                }
                gst::PadProbeReturn::Ok
            });
        });
        if let Some(src) = mux.static_pad("src") {
            let m = Arc::downgrade(&map);
            src.add_probe(
                gst::PadProbeType::BUFFER | gst::PadProbeType::BUFFER_LIST,
                move |_, info| {
                    let Some(m) = m.upgrade() else {
                        return gst::PadProbeReturn::Remove;
                    };
                    if m.inner.lock().unwrap().mux_base.is_some() {
                        return gst::PadProbeReturn::Remove;
                    }
                    let mut check = |b: &gst::BufferRef| {
                        if let Ok(data) = b.map_readable() {
                            m.muxed(&data);
                        }
                    };
                    match &info.data {
                        Some(gst::PadProbeData::Buffer(b)) => check(b),
                        Some(gst::PadProbeData::BufferList(l)) => l.iter().for_each(&mut check),
                        _ => {}
                    }
                    gst::PadProbeReturn::Ok
                },
            );
        }
        map
    }

    fn demuxed(&self, data: &[u8], rt_ns: u64) {
        let mut st = self.inner.lock().unwrap();
        st.last_rt_ns = Some(rt_ns);
        let Some(broadcast) = st.index.lookup(data) else {
            st.unmatched += 1;
            return;
        };
        st.matched += 1;
        let shift = media::pts_diff(broadcast, media::ns_to_ticks(rt_ns) % media::PTS_WRAP);
        // Rounding of the ns conversion: a tick either way is the same shift.
        if st.demux_shift.is_some_and(|s| (s - shift).abs() <= 2) {
            return;
        }
        st.demux_shift = Some(shift);
        if let Some(base) = st.mux_base {
            let from = (media::ns_to_ticks(rt_ns) + base) % media::PTS_WRAP;
            st.push_segment(from, media::pts_shift(shift, base));
        }
    }

    fn muxed(&self, data: &[u8]) {
        let mut st = self.inner.lock().unwrap();
        let Some(rt) = st.last_rt_ns else { return };
        let Some(pts) = media::pes_starts(data).into_iter().find_map(|s| s.pts) else {
            return;
        };
        if let Some(base) = media::mux_base(pts, rt) {
            st.mux_base = Some(base);
            if let Some(shift) = st.demux_shift {
                st.push_segment(0, media::pts_shift(shift, base));
            }
        }
    }

    /// The relation now.
    pub fn info(&self) -> MediaInfo {
        let st = self.inner.lock().unwrap();
        MediaInfo {
            pts_shift: st.segments.back().map(|s| s.1),
            segments: st.segments.iter().map(|&(a, b)| [a, b]).collect(),
            mux_base: st.mux_base,
            matched: st.matched,
            unmatched: st.unmatched,
        }
    }
}

impl Inner {
    fn push_segment(&mut self, from: u64, shift: u64) {
        self.segments.push_back((from, shift));
        while self.segments.len() > SEGMENTS {
            self.segments.pop_front();
        }
    }
}
