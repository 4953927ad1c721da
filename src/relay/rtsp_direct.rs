//! RTP/UDP readers of a relay go the direct path, as unicast SAT>IP streams do
//! ([`crate::rtsp::direct`]): the relay's TS goes from the pull's thread into the reader's own
//! [`Packer`] and from there to the client through [`UdpDest`] (GSO sends, RTCP from the
//! packers' timer thread), not through the reader's `appsrc ! rtpmp2tpay` pipeline.
//!
//! The reader's media is still built per reader at DESCRIBE (it answers the SDP and holds the
//! session's sockets, and a TCP-interleaved reader keeps using its pipeline). When a SETUP over
//! UDP succeeds, the pipeline's reader is muted (it copies nothing more) and what it had queued
//! is dropped; at PLAY a new reader is attached on the direct path, which starts with PAT, PMT
//! and a random access point like every relay reader, and the pipeline's reader is let go.
//! Measured with `dvb2ip-bench relay` (README): before this, 20 relay readers cost the edge
//! 105 % of a core against 6.5 % for 20 readers of a local tuner, with continuity errors.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};

use gst::prelude::*;
use gst_rtsp_server::prelude::*;

use super::source::{Out, ReaderHandle};
use crate::core::Core;
use crate::rtp::packer::Packer;
use crate::rtp::udp::UdpDest;

/// What a relay media keeps of its reader (on the media, cleared when it is unprepared).
#[derive(Default)]
pub struct Slot {
    /// The reader feeding the media's `appsrc` (from DESCRIBE until the direct path plays).
    pub pipeline: Option<ReaderHandle>,
    /// Set: the pipeline's reader copies nothing into the `appsrc`.
    pub muted: Arc<AtomicBool>,
    /// The direct path, after a SETUP over UDP.
    direct: Option<Direct>,
}

impl Slot {
    pub fn new(pipeline: ReaderHandle, muted: Arc<AtomicBool>) -> Slot {
        Slot {
            pipeline: Some(pipeline),
            muted,
            direct: None,
        }
    }
}

struct Direct {
    packer: Arc<Mutex<Packer>>,
    /// The reader on the direct path (from the first PLAY).
    reader: Option<ReaderHandle>,
}

/// Feeds a direct reader's packer in the pull's thread.
struct PackerOut(Weak<Mutex<Packer>>);

impl Out for PackerOut {
    fn push(&self, ts: &[u8]) -> bool {
        match self.0.upgrade() {
            Some(p) => {
                // Paused: dropped (a live relay resumes at the live edge).
                p.lock().unwrap().feed_slice(ts);
                true
            }
            None => false,
        }
    }
}

/// The slot of a relay media, if it is one.
pub fn slot_of(media: &gst_rtsp_server::RTSPMedia) -> Option<Arc<Mutex<Slot>>> {
    // SAFETY: super::rtsp::READER_KEY only ever holds an Arc<Mutex<Slot>> on a media.
    unsafe {
        media
            .data::<Arc<Mutex<Slot>>>(super::rtsp::READER_KEY)
            .map(|p| p.as_ref().clone())
    }
}

/// The RTP byte count of a relay reader on the direct path (`None` off it), for its session's
/// bitrate (src/rtsp/sent.rs).
pub fn sent_counter(
    media: &gst_rtsp_server::RTSPMedia,
) -> Option<Arc<std::sync::atomic::AtomicU64>> {
    let slot = slot_of(media)?;
    let slot = slot.lock().unwrap();
    let d = slot.direct.as_ref()?;
    let c = d.packer.lock().unwrap().sent_counter();
    Some(c)
}

/// The session media of the current request on the relay at `mount`.
fn session_media(mount: &str) -> Option<gst_rtsp_server::RTSPSessionMedia> {
    let session =
        gst_rtsp_server::RTSPContext::with_current_context(|c| c.session().cloned()).flatten()?;
    session.media(mount).0
}

/// After a SETUP answered 200: a UDP transport moves the reader to the direct path. Returns
/// the SSRC its packets carry (for the answer's `Transport`), `None` for other transports.
pub fn setup_done(core: &Core, mount: &str) -> Option<u32> {
    let sm = session_media(mount)?;
    let media = sm.media()?;
    let trans = sm.transport(0)?;
    let dest = UdpDest::of_transport(&media, &trans, &core.metrics.rtp_dropped)?;
    let slot = slot_of(&media)?;
    let mut slot = slot.lock().unwrap();
    if let Some(d) = &slot.direct {
        // A SETUP again in the session: the new destination.
        d.packer.lock().unwrap().set_direct(Some(dest));
        return Some(d.packer.lock().unwrap().ssrc());
    }
    slot.muted.store(true, Ordering::SeqCst);
    // What the appsrc already queued never leaves through the pipeline.
    let src = media
        .element()
        .downcast_ref::<gst::Bin>()
        .and_then(|b| b.by_name("src"))
        .and_then(|e| e.static_pad("src"));
    if let Some(pad) = src {
        pad.add_probe(
            gst::PadProbeType::BUFFER | gst::PadProbeType::BUFFER_LIST,
            |_, _| gst::PadProbeReturn::Drop,
        );
    }
    // Nor what rtpmp2tpay already made of it (the shared unicast media does the same).
    crate::rtsp::factory::drop_rtp_output(&media);
    crate::rtsp::factory::quiet_rtcp(&media);
    let mut packer = Packer::detached();
    packer.set_direct(Some(dest));
    let ssrc = packer.ssrc();
    let packer = Arc::new(Mutex::new(packer));
    core.packers.register(&packer);
    slot.direct = Some(Direct {
        packer,
        reader: None,
    });
    Some(ssrc)
}

/// After a PLAY answered 200: the direct reader starts (or resumes). Returns the sequence
/// number and RTP time of its first packet (for `RTP-Info`), `None` off the direct path.
pub fn play_done(mount: &str) -> Option<(u16, u32)> {
    let media = session_media(mount)?.media()?;
    let slot = slot_of(&media)?;
    let mut slot = slot.lock().unwrap();
    let relay = slot.pipeline.as_ref().map(|r| r.relay().clone());
    let d = slot.direct.as_mut()?;
    let info = {
        let mut p = d.packer.lock().unwrap();
        p.set_playing();
        p.rtp_info()
    };
    if d.reader.is_none() {
        let relay = relay?;
        let out: Arc<dyn Out> = Arc::new(PackerOut(Arc::downgrade(&d.packer)));
        d.reader = Some(relay.attach_now(out));
        // Attached first, so the relay never sees its reader count drop to 0 here.
        slot.pipeline.take();
    }
    Some(info)
}

/// After a PAUSE answered 200: the direct reader stops sending (it stays a reader).
pub fn pause_done(mount: &str) {
    let Some(media) = session_media(mount).and_then(|sm| sm.media()) else {
        return;
    };
    if let Some(slot) = slot_of(&media) {
        if let Some(d) = &slot.lock().unwrap().direct {
            d.packer.lock().unwrap().set_paused();
        }
    }
}

/// `RTP-Info` of a PLAY with the direct reader's sequence number and RTP time.
pub fn rtp_info(value: &str, seq: u16, rtptime: u32) -> String {
    value
        .split(',')
        .map(|entry| {
            let mut parts: Vec<String> = entry
                .split(';')
                .filter(|p| {
                    let p = p.trim_start();
                    !p.starts_with("seq=") && !p.starts_with("rtptime=")
                })
                .map(str::to_string)
                .collect();
            parts.push(format!("seq={seq}"));
            parts.push(format!("rtptime={rtptime}"));
            parts.join(";")
        })
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::rtp_info;

    #[test]
    fn rtp_info_carries_the_direct_readers_numbers() {
        assert_eq!(
            rtp_info("url=rtsp://h/relay/x/stream=0;seq=17;rtptime=99", 5, 6),
            "url=rtsp://h/relay/x/stream=0;seq=5;rtptime=6"
        );
        assert_eq!(
            rtp_info("url=rtsp://h/relay/x/stream=0", 1, 2),
            "url=rtsp://h/relay/x/stream=0;seq=1;rtptime=2"
        );
    }
}
