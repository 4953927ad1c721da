//! The SAT>IP media factory: one media per stream (multicast, RTP over RTSP, a stream a
//! DESCRIBE defined), `satipmapsrc ! appsink` feeding our own RTP/MP2T packetizer
//! ([`crate::rtp::packer`] behind `pay0`, [`super::pay`]), with the RTCP APP `SES1` status
//! packet appended to every compound RTCP packet ([`crate::rtp::rtcp`]). After a unicast UDP
//! SETUP the stream moves to the direct path ([`setup_done`]).

use std::sync::{Arc, Mutex};

use gst::glib;
use gst::prelude::*;
use gst_rtsp_server::gst_rtsp;
use gst_rtsp_server::prelude::*;
use gst_rtsp_server::subclass::prelude::*;
use gstdvb2ip::proto::satip::{parse_query, StreamSpec};

use super::pay;
use super::routing::{route, Route, MAX_PIDS};
use super::CAT;
use crate::core::Core;
use crate::rtp::packer::Packer;
use crate::rtp::rtcp;
use crate::rtp::udp::UdpDest;
use crate::streams::table::{key_of_element, Backend, Entry};

mod imp {
    use super::*;

    #[derive(Default)]
    pub struct SatipFactory {
        /// The server's core (stream table, tuner pool), set by [`super::SatipFactory::new`].
        pub core: std::sync::OnceLock<Arc<Core>>,
    }

    impl SatipFactory {
        fn core(&self) -> &Arc<Core> {
            self.core.get().expect("set by SatipFactory::new")
        }
    }

    #[glib::object_subclass]
    impl ObjectSubclass for SatipFactory {
        const NAME: &'static str = "Dvb2IpSatipFactory";
        type Type = super::SatipFactory;
        type ParentType = gst_rtsp_server::RTSPMediaFactory;
    }

    impl ObjectImpl for SatipFactory {
        fn constructed(&self) {
            self.parent_constructed();
            let f = self.obj();
            // Each SAT>IP stream is its own media; frontends are shared by the tuner pool.
            super::configure_satip_factory(
                f.upcast_ref(),
                false,
                gst_rtsp::RTSPLowerTrans::UDP | gst_rtsp::RTSPLowerTrans::TCP,
            );
        }
    }

    impl RTSPMediaFactoryImpl for SatipFactory {
        fn create_element(&self, url: &gst_rtsp::RTSPUrl) -> Option<gst::Element> {
            let uri = url.request_uri();
            let Route::Satip(Ok(target)) = route(&uri) else {
                return None;
            };
            let (request, stream_id, joined) = match target.stream {
                None if target.has_query => {
                    let spec = StreamSpec::create(&target.query, MAX_PIDS).ok()?;
                    let id = self.core().streams.lock().unwrap().allocate_id();
                    (spec.canonical_query(), id, false)
                }
                Some(n) => match crate::rtsp::client::take_described_of_current(n) {
                    // The owner's SETUP of a stream its connection described (issue 16 item 2).
                    Some(spec) => (spec.canonical_query(), n, false),
                    None => {
                        let mut st = self.core().streams.lock().unwrap();
                        let spec = st.owner_entry(n)?.spec()?;
                        (spec.canonical_query(), n, true)
                    }
                },
                None => return None,
            };
            let src = gst::ElementFactory::make("satipmapsrc")
                .name("satip")
                .build()
                .ok()?;
            // The server's pool, before the request is checked against it.
            src.set_context(&self.core().pool_context());
            src.set_property("request", &request);
            let (tsink, pay) = pay::packetizer(&src, &self.core().packers);
            let key = self.core().streams.lock().unwrap().insert(Entry {
                stream_id,
                joined,
                backend: Backend::Media {
                    src: src.downgrade(),
                    media: glib::WeakRef::new(),
                },
                owner: None,
                playing: false,
            });
            let bin = gst::Bin::builder().name(format!("satip-{key}")).build();
            bin.add_many([&src, tsink.upcast_ref(), pay.upcast_ref()])
                .ok()?;
            src.link(&tsink).ok()?;
            gst::info!(
                CAT,
                "stream {stream_id}{}: {request}",
                if joined { " (joined)" } else { "" }
            );
            Some(bin.upcast())
        }

        fn media_configure(&self, media: &gst_rtsp_server::RTSPMedia) {
            self.parent_media_configure(media);
            // A media that cannot be prepared answers 503 with its real reason.
            crate::rtsp::client::record_media_errors(media);
            let element = media.element();
            let Some(key) = key_of_element(&element.name()) else {
                return;
            };
            let streams = self.core().streams.clone();
            if let Some(Backend::Media { media: m, .. }) = streams
                .lock()
                .unwrap()
                .entries
                .get_mut(&key)
                .map(|e| &mut e.backend)
            {
                m.set(Some(media));
            }
            media.connect_unprepared(move |m| {
                end_direct(m);
                streams.lock().unwrap().entries.remove(&key);
            });
            media.connect_prepared(hook_rtcp);
        }
    }
}

/// Makes every RTCP compound of `media` carry the APP `SES1` status packet and sets the report
/// interval. Idempotent; called when the media is prepared and again when a SETUP succeeds
/// (the `prepared` signal can come after the first RTCP report).
pub fn hook_rtcp(media: &gst_rtsp_server::RTSPMedia) {
    let src = media
        .element()
        .downcast_ref::<gst::Bin>()
        .and_then(|b| b.by_name("satip"));
    let Some(src) = src else { return };
    for i in 0..media.n_streams() {
        let Some(sess) = media.stream(i).and_then(|s| s.rtpsession()) else {
            continue;
        };
        gst::debug!(CAT, "hooking RTCP of stream {i}");
        let src_weak = src.downgrade();
        rtcp::hook_session(&sess, move || {
            src_weak
                .upgrade()
                .map(|src| src.property::<String>("status"))
        });
    }
}

/// Quiets rtpbin's own RTCP on every stream of `media`: the packer sends RTCP itself.
pub(crate) fn quiet_rtcp(media: &gst_rtsp_server::RTSPMedia) {
    for i in 0..media.n_streams() {
        if let Some(sess) = media.stream(i).and_then(|s| s.rtpsession()) {
            rtcp::quiet(&sess);
        }
    }
}

/// Drops every RTP packet `media`'s rtpbin would send on its first stream: for media whose
/// sessions' packets leave from a packer instead (the shared unicast media, relay readers on
/// the direct path). Returns false when the media has no rtpbin send pad.
pub(crate) fn drop_rtp_output(media: &gst_rtsp_server::RTSPMedia) -> bool {
    let rtpbin = media
        .element()
        .parent()
        .and_downcast::<gst::Bin>()
        .and_then(|p| {
            p.iterate_elements()
                .into_iter()
                .flatten()
                .find(|e| e.factory().is_some_and(|f| f.name() == "rtpbin"))
        });
    match rtpbin.and_then(|r| r.static_pad("send_rtp_src_0")) {
        Some(pad) => {
            pad.add_probe(
                gst::PadProbeType::BUFFER | gst::PadProbeType::BUFFER_LIST,
                |_, _| gst::PadProbeReturn::Drop,
            );
            true
        }
        None => false,
    }
}

/// The settings every SAT>IP media factory shares: no stop on disconnect, no latency, no
/// suspend, AVP; `shared` and the lower transports differ.
pub(crate) fn configure_satip_factory(
    f: &gst_rtsp_server::RTSPMediaFactory,
    shared: bool,
    protocols: gst_rtsp::RTSPLowerTrans,
) {
    f.set_shared(shared);
    f.set_stop_on_disconnect(false);
    f.set_latency(0);
    f.set_suspend_mode(gst_rtsp_server::RTSPSuspendMode::None);
    f.set_profiles(gst_rtsp::RTSPProfile::AVP);
    f.set_protocols(protocols);
}

/// The packer of a SAT>IP media.
fn packer_of(media: &gst_rtsp_server::RTSPMedia) -> Option<Arc<Mutex<Packer>>> {
    media
        .element()
        .downcast_ref::<gst::Bin>()
        .and_then(|b| b.by_name("pay0"))
        .and_then(|pay| pay::packer_of(&pay))
}

/// The RTP byte count of a session's stream (its direct stream's packer, else its media's),
/// for the session's bitrate in the web UI; `None` while a direct stream is not attached yet.
pub fn sent_counter(
    session: &gst_rtsp_server::RTSPSession,
) -> Option<Arc<std::sync::atomic::AtomicU64>> {
    // A unicast RTP/UDP stream: its own packer, once attached (the shared media's `pay0`
    // carries nothing).
    if let (Some(sm), _) = session.media(super::direct::UNICAST_MOUNT) {
        return super::direct::SatipStream::of_session_media(&sm).map(|s| s.sent_counter());
    }
    session
        .filter(Some(&mut |_, _| gst_rtsp_server::RTSPFilterResult::Ref))
        .iter()
        .find_map(|sm| sm.media().and_then(|m| packer_of(&m)))
        .map(|p| p.lock().unwrap().sent_counter())
}

/// The media's `satipmapsrc` (named `satip` in the bin [`SatipFactory`] builds).
fn satip_of(media: &gst_rtsp_server::RTSPMedia) -> Option<gstdvb2ip::satipmapsrc::SatIpMapSrc> {
    media
        .element()
        .downcast_ref::<gst::Bin>()
        .and_then(|b| b.by_name("satip"))
        .and_then(|s| s.downcast::<gstdvb2ip::satipmapsrc::SatIpMapSrc>().ok())
}

/// After a successful SETUP: a unicast UDP stream moves to the direct path. From now on the
/// tuner hands its buffers to the packer in the feed's thread (no appsrc, no thread hop per
/// stream), nothing enters gst-rtsp-server's RTP path, and rtpbin's own RTCP is quieted (the
/// packer sends SR + SDES + APP itself). Nothing reaches the client before [`play_done`].
/// TCP-interleaved and multicast streams stay on gst-rtsp-server's path.
pub fn setup_done(
    core: &Core,
    media: &gst_rtsp_server::RTSPMedia,
    transport: &gst_rtsp_server::RTSPStreamTransport,
) {
    let Some(packer) = packer_of(media) else {
        return;
    };
    let Some(dest) = UdpDest::of_transport(media, transport, &core.metrics.rtp_dropped) else {
        return;
    };
    packer.lock().unwrap().set_direct(Some(dest));
    match satip_of(media) {
        Some(satip) => {
            let packer = Arc::downgrade(&packer);
            satip.set_tap(Some(Arc::new(move |buf: &gst::Buffer| {
                packer
                    .upgrade()
                    .is_some_and(|p| p.lock().unwrap().feed(buf, false))
            })));
        }
        None => gst::warning!(CAT, "no tuner in the SAT>IP media: its RTP stays silent"),
    }
    quiet_rtcp(media);
}

/// After a successful PLAY: the stream starts sending. A direct stream's packets leave from the
/// feed's thread only (the next tuner buffer, preceded by the newest one kept since SETUP):
/// sends of one stream from two threads can overtake each other on the way to the client.
pub fn play_done(media: &gst_rtsp_server::RTSPMedia) {
    if let Some(packer) = packer_of(media) {
        packer.lock().unwrap().set_playing();
    }
}

/// The media is going away: stop the direct path.
fn end_direct(media: &gst_rtsp_server::RTSPMedia) {
    if let Some(satip) = satip_of(media) {
        satip.set_tap(None);
    }
    if let Some(packer) = packer_of(media) {
        packer.lock().unwrap().set_direct(None);
    }
}

glib::wrapper! {
    pub struct SatipFactory(ObjectSubclass<imp::SatipFactory>) @extends gst_rtsp_server::RTSPMediaFactory;
}

impl SatipFactory {
    /// The SAT>IP factory of the server owning `core`.
    pub fn new(core: Arc<Core>) -> Self {
        let f: Self = glib::Object::new();
        let _ = f.imp().core.set(core);
        f
    }
}

/// Checks a creating query as the factory will (used before a media is built).
pub fn check_new_stream(
    pool: &gstdvb2ip::tuners::Pool,
    query: &str,
) -> Result<StreamSpec, gstdvb2ip::proto::satip::QueryError> {
    let q = parse_query(query)?;
    let spec = StreamSpec::create(&q, MAX_PIDS)?;
    spec.tuning
        .check_capabilities(&gstdvb2ip::satipmapsrc::capabilities_of(pool))?;
    Ok(spec)
}
