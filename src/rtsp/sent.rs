//! The bytes an RTSP session's client was sent, for its `bitrate_bps` and `bytes_sent` in the
//! session registry (src/clients.rs): the count of the packer that sends the session's RTP
//! where there is one (SAT>IP streams, relay readers on the direct path), else the RTP the
//! session's streams' payloaders pushed while the session played (`/ch/` channels, files on
//! demand, relay readers over TCP, readers of published streams, multicast).
//!
//! gst-rtsp-server sends a stream's RTP to each of its active transports (UDP, multicast and
//! interleaved TCP alike), and a transport is active while its session plays; so what the
//! payloader pushes while the session is in PLAYING is what that session's client was sent. A
//! shared media (`/ch/`) has one payloader for all its clients: each session counts only its
//! own playing time. The play state is read when the count is read (each listing of the
//! sessions), so a PAUSE or PLAY between two readings is attributed at the second one.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use gst::glib;
use gst::glib::translate::ToGlibPtr;
use gst::prelude::*;
use gst_rtsp_server::prelude::*;
use gst_rtsp_server::{RTSPMedia, RTSPSession, RTSPSessionMedia};

use super::direct::UNICAST_MOUNT;

/// How a session's sent bytes are read.
pub enum Sent {
    /// A packer's own count of what it sent, after `base` bytes counted otherwise.
    Counter { base: u64, c: Arc<AtomicU64> },
    /// What the session's streams' payloaders pushed while it played.
    Streams(StreamsSent),
}

impl Sent {
    fn counter(c: Arc<AtomicU64>) -> Sent {
        Sent::Counter { base: 0, c }
    }

    /// Bytes sent so far.
    pub fn read(&mut self) -> u64 {
        match self {
            Sent::Counter { base, c } => *base + c.load(Ordering::Relaxed),
            Sent::Streams(s) => {
                // A relay reader moves to the direct path at its UDP SETUP; from then on its
                // packer counts (its pipeline's payloader is muted).
                if let Some(c) = s.relay.upgrade().and_then(|m| relay_counter(&m)) {
                    let base = s.read();
                    *self = Sent::Counter { base, c };
                    return self.read();
                }
                s.read()
            }
        }
    }
}

/// The payloader counts of one session media's streams.
struct MediaSent {
    sm: glib::WeakRef<RTSPSessionMedia>,
    counters: Vec<Arc<AtomicU64>>,
    /// Their sum at the last reading.
    last: u64,
}

/// What a session's streams' payloaders pushed while the session played.
pub struct StreamsSent {
    medias: Vec<MediaSent>,
    total: u64,
    /// A relay media (its reader may move to the direct path).
    relay: glib::WeakRef<RTSPMedia>,
}

impl StreamsSent {
    fn read(&mut self) -> u64 {
        for m in &mut self.medias {
            let sum: u64 = m.counters.iter().map(|c| c.load(Ordering::Relaxed)).sum();
            let delta = sum.saturating_sub(m.last);
            m.last = sum;
            if m.sm.upgrade().is_some_and(|sm| playing(&sm)) {
                self.total += delta;
            }
        }
        self.total
    }
}

/// How to read what `session` was sent: `None` while that is not known yet (a unicast SAT>IP
/// stream before its direct stream is attached, a session without streams).
pub fn of_session(session: &RTSPSession) -> Option<Sent> {
    // A unicast RTP/UDP SAT>IP stream: its own packer, once attached (the shared media's
    // `pay0` carries nothing).
    if session.media(UNICAST_MOUNT).0.is_some() {
        return super::factory::sent_counter(session).map(Sent::counter);
    }
    if let Some(c) = super::factory::sent_counter(session) {
        return Some(Sent::counter(c));
    }
    let mut medias = Vec::new();
    let relay = glib::WeakRef::new();
    for sm in session.filter(Some(&mut |_, _| gst_rtsp_server::RTSPFilterResult::Ref)) {
        let Some(media) = sm.media() else { continue };
        // A TS file on the direct VOD path: its session's own packetizer counts.
        if let Some(c) = crate::vod::rtsp_direct::sent_counter(&sm) {
            return Some(Sent::counter(c));
        }
        if let Some(c) = relay_counter(&media) {
            return Some(Sent::counter(c));
        }
        if crate::relay::rtsp_direct::slot_of(&media).is_some() {
            relay.set(Some(&media));
        }
        let counters: Vec<_> = (0..media.n_streams())
            .filter(|i| sm.transport(*i).is_some())
            .filter_map(|i| media.stream(i))
            .filter_map(|s| s.srcpad())
            .map(|pad| pad_counter(&pad))
            .collect();
        if counters.is_empty() {
            continue;
        }
        let last = counters.iter().map(|c| c.load(Ordering::Relaxed)).sum();
        medias.push(MediaSent {
            sm: sm.downgrade(),
            counters,
            last,
        });
    }
    (!medias.is_empty()).then(|| {
        Sent::Streams(StreamsSent {
            medias,
            total: 0,
            relay,
        })
    })
}

/// The direct packer's count of a relay reader on the direct path.
fn relay_counter(media: &RTSPMedia) -> Option<Arc<AtomicU64>> {
    crate::relay::rtsp_direct::sent_counter(media)
}

/// Whether the session media is in PLAYING (its transports active).
fn playing(sm: &RTSPSessionMedia) -> bool {
    // SAFETY: a valid session media; the call only reads its state under its lock.
    let state =
        unsafe { gst_rtsp_server::ffi::gst_rtsp_session_media_get_rtsp_state(sm.to_glib_none().0) };
    state == gst_rtsp_server::gst_rtsp::ffi::GST_RTSP_STATE_PLAYING
}

/// Key of a payloader pad's byte count.
const COUNTER_KEY: &str = "dvb2ip-rtp-sent";

/// The count of the bytes that pass `pad` (RTP packets, headers and payload), counted by a
/// probe installed on first use; one probe per pad whatever the number of sessions.
fn pad_counter(pad: &gst::Pad) -> Arc<AtomicU64> {
    static INSTALL: Mutex<()> = Mutex::new(());
    let _one = INSTALL.lock().unwrap();
    // SAFETY: COUNTER_KEY only ever holds an Arc<AtomicU64> on a pad (set below).
    if let Some(c) = unsafe { pad.data::<Arc<AtomicU64>>(COUNTER_KEY) } {
        // SAFETY: the data lives as long as the pad, which we hold.
        return unsafe { c.as_ref() }.clone();
    }
    let counter = Arc::new(AtomicU64::new(0));
    let c = counter.clone();
    pad.add_probe(
        gst::PadProbeType::BUFFER | gst::PadProbeType::BUFFER_LIST,
        move |_, info| {
            let n = match &info.data {
                Some(gst::PadProbeData::Buffer(b)) => b.size(),
                Some(gst::PadProbeData::BufferList(l)) => l.calculate_size(),
                _ => 0,
            };
            c.fetch_add(n as u64, Ordering::Relaxed);
            gst::PadProbeReturn::Ok
        },
    );
    // SAFETY: see above.
    unsafe { pad.set_data(COUNTER_KEY, counter.clone()) };
    counter
}
