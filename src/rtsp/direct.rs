//! Unicast RTP/UDP SAT>IP streams without a pipeline of their own.
//!
//! gst-rtsp-server still handles their RTSP side: sessions, SETUP answers (`server_port`),
//! keep-alive, timeouts and TEARDOWN, on one shared media ([`UnicastFactory`], mounted at
//! [`UNICAST_MOUNT`]) whose pipeline is an idle `pay0`: every unicast session's transport
//! lives on that media's single stream, and its RTP/RTCP sockets are the ones the streams'
//! packets leave from. Each stream is a [`SatipStream`]: a stream [`Source`] (a tuner-pool
//! subscription today) whose TS goes straight into the stream's packetizer and from there to
//! the client through [`UdpDest`] (RTCP SR + SDES + APP `SES1` from the timer thread). A stream belongs to its
//! session media (dropped with it: TEARDOWN, session timeout), so it costs no thread and no
//! GStreamer object of its own.

use std::sync::{Arc, Mutex, OnceLock};

use gst::glib;
use gst::prelude::*;
use gst_rtsp_server::gst_rtsp;
use gst_rtsp_server::prelude::*;
use gst_rtsp_server::subclass::prelude::*;
use gstdvb2ip::proto::satip::{Change, QueryError, StreamSpec};

use super::factory::{configure_satip_factory, drop_rtp_output, quiet_rtcp};
use super::pay::idle_pay0;
use super::CAT;
use crate::core::Core;
use crate::rtp::packer::Packer;
use crate::rtp::udp::UdpDest;
use crate::streams::source::{self, Source, TsSink};
use crate::streams::table::{Backend, Entry, Served};

/// Mount of the shared media of unicast RTP/UDP streams (internal: the client subclass routes
/// SAT>IP URLs of such sessions there). Not a prefix of [`super::routing::SATIP_MOUNT`]'s
/// paths, nor they of it: gst-rtsp-server matches session media paths by prefix.
pub const UNICAST_MOUNT: &str = "/unicast";

/// Key of the [`SatipStream`] on its `RTSPSessionMedia`.
const STREAM_KEY: &str = "dvb2ip-stream";

/// One unicast RTP/UDP SAT>IP stream (or a non-owner's copy of one).
pub struct SatipStream {
    /// Key in the core's stream table.
    key: OnceLock<u64>,
    source: Mutex<Box<dyn Source>>,
    packer: Arc<Mutex<Packer>>,
}

/// Receives the source's TS in the source's thread (the frontend's feed thread).
struct Sink {
    packer: std::sync::Weak<Mutex<Packer>>,
}

impl TsSink for Sink {
    fn push(&self, buffer: &gst::Buffer) {
        if let Some(p) = self.packer.upgrade() {
            p.lock().unwrap().feed(buffer, true);
        }
    }
}

impl SatipStream {
    /// Leases a frontend for `spec` and enters the stream in the table (`No-More: frontends`
    /// when none is free). Must not be called with the stream table locked.
    pub fn create(
        core: &Core,
        spec: StreamSpec,
        stream_id: u16,
        joined: bool,
    ) -> Result<Arc<Self>, QueryError> {
        let packer = Arc::new(Mutex::new(Packer::detached()));
        let sink: Arc<dyn TsSink> = Arc::new(Sink {
            packer: Arc::downgrade(&packer),
        });
        let request = spec.canonical_query();
        let source = source::open(&core.pool, spec, sink)?;
        let s = Arc::new(SatipStream {
            key: OnceLock::new(),
            source: Mutex::new(source),
            packer,
        });
        let weak = Arc::downgrade(&s);
        s.packer
            .lock()
            .unwrap()
            .set_status_fn(Arc::new(move || weak.upgrade().map(|s| s.status())));
        core.packers.register(&s.packer);
        let served: std::sync::Weak<SatipStream> = Arc::downgrade(&s);
        let served: std::sync::Weak<dyn Served> = served;
        let key = core.streams.lock().unwrap().insert(Entry {
            stream_id,
            joined,
            backend: Backend::Direct(served),
            owner: None,
            playing: false,
        });
        let _ = s.key.set(key);
        gst::info!(
            CAT,
            "stream {stream_id}{} (direct): {request}",
            if joined { " (joined)" } else { "" }
        );
        Ok(s)
    }

    pub fn key(&self) -> Option<u64> {
        self.key.get().copied()
    }

    pub fn spec(&self) -> StreamSpec {
        self.source.lock().unwrap().spec().clone()
    }

    pub fn status(&self) -> String {
        self.source.lock().unwrap().status()
    }

    /// Applies a modified stream; returns whether a frontend serves it afterwards.
    pub fn update(&self, new: StreamSpec, change: Change) -> bool {
        self.source.lock().unwrap().update(new, change)
    }

    /// After a successful SETUP: where the packets go (again, after an in-session SETUP).
    pub fn setup_done(&self, dest: Option<UdpDest>) {
        if dest.is_none() {
            gst::warning!(CAT, "direct stream without a unicast UDP destination");
        }
        let mut p = self.packer.lock().unwrap();
        let playing = p.is_playing();
        p.set_direct(dest);
        if playing {
            p.set_playing();
        }
    }

    /// After a successful PLAY: sequence number and RTP time of the first packet, then the
    /// stream plays: the newest tuner data kept since SETUP leaves at once, the rest from the
    /// feed's thread (both under the packer's lock, on one socket, so in order).
    pub fn play_done(&self) -> (u16, u32) {
        let mut p = self.packer.lock().unwrap();
        let info = p.rtp_info();
        p.set_playing();
        p.flush_kept();
        info
    }

    pub fn ssrc(&self) -> u32 {
        self.packer.lock().unwrap().ssrc()
    }

    /// The count of RTP bytes sent to the client (see [`Packer::sent_counter`]).
    pub fn sent_counter(&self) -> Arc<std::sync::atomic::AtomicU64> {
        self.packer.lock().unwrap().sent_counter()
    }

    /// Attaches `stream` to a session media: it lives as long as that does.
    pub fn attach(stream: Arc<SatipStream>, sm: &gst_rtsp_server::RTSPSessionMedia) {
        // SAFETY: the key is only ever used with an `Arc<SatipStream>`.
        unsafe { sm.set_data(STREAM_KEY, stream) };
    }

    /// The stream attached to a session media.
    pub fn of_session_media(sm: &gst_rtsp_server::RTSPSessionMedia) -> Option<Arc<SatipStream>> {
        // SAFETY: see `attach`.
        unsafe {
            sm.data::<Arc<SatipStream>>(STREAM_KEY)
                .map(|p| p.as_ref().clone())
        }
    }

    /// The stream of a session on the unicast mount.
    pub fn of_session(session: &gst_rtsp_server::RTSPSession) -> Option<Arc<SatipStream>> {
        let (sm, _) = session.media(UNICAST_MOUNT);
        sm.as_ref().and_then(Self::of_session_media)
    }
}

impl Served for SatipStream {
    fn spec(&self) -> StreamSpec {
        SatipStream::spec(self)
    }
    fn status(&self) -> String {
        SatipStream::status(self)
    }
    fn update(&self, new: StreamSpec, change: Change) -> bool {
        SatipStream::update(self, new, change)
    }
}

impl Drop for SatipStream {
    fn drop(&mut self) {
        // Stop sending now; the subscription gives the frontend back after this.
        if let Ok(mut p) = self.packer.lock() {
            p.set_direct(None);
        }
        gst::debug!(CAT, "direct stream {:?} ends", self.key.get());
    }
}

/// The unicast destination of the session media's transport on the shared media.
pub fn dest_of(sm: &gst_rtsp_server::RTSPSessionMedia, core: &Core) -> Option<UdpDest> {
    let media = sm.media()?;
    let trans = sm.transport(0)?;
    UdpDest::of_transport(&media, &trans, &core.metrics.rtp_dropped)
}

mod imp {
    use super::*;

    #[derive(Default)]
    pub struct UnicastFactory {}

    #[glib::object_subclass]
    impl ObjectSubclass for UnicastFactory {
        const NAME: &'static str = "Dvb2IpSatipUnicastFactory";
        type Type = super::UnicastFactory;
        type ParentType = gst_rtsp_server::RTSPMediaFactory;
    }

    impl ObjectImpl for UnicastFactory {
        fn constructed(&self) {
            self.parent_constructed();
            let f = self.obj();
            configure_satip_factory(f.upcast_ref(), true, gst_rtsp::RTSPLowerTrans::UDP);
        }
    }

    impl RTSPMediaFactoryImpl for UnicastFactory {
        /// One media for every URL.
        fn gen_key(&self, _url: &gst_rtsp::RTSPUrl) -> Option<glib::GString> {
            Some(UNICAST_MOUNT.into())
        }

        fn create_element(&self, _url: &gst_rtsp::RTSPUrl) -> Option<gst::Element> {
            let bin = gst::Bin::builder().name("unicast").build();
            bin.add(&idle_pay0()).ok()?;
            Some(bin.upcast())
        }

        fn media_configure(&self, media: &gst_rtsp_server::RTSPMedia) {
            self.parent_media_configure(media);
            media.connect_prepared(quiet);
        }
    }
}

/// The shared media sends nothing itself: its one packet (for preparing) is dropped before
/// it could reach a client, and rtpbin's RTCP is quieted (each stream sends its own).
fn quiet(media: &gst_rtsp_server::RTSPMedia) {
    quiet_rtcp(media);
    if !drop_rtp_output(media) {
        gst::warning!(CAT, "shared unicast media: no rtpbin send pad to quiet");
    }
    gst::info!(CAT, "shared unicast media prepared");
}

glib::wrapper! {
    /// The factory of the media all unicast RTP/UDP SAT>IP sessions share.
    pub struct UnicastFactory(ObjectSubclass<imp::UnicastFactory>) @extends gst_rtsp_server::RTSPMediaFactory;
}

impl Default for UnicastFactory {
    fn default() -> Self {
        glib::Object::new()
    }
}
