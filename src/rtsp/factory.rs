//! The SAT>IP media factory: one media per stream, `satipmapsrc ! appsink` feeding our own
//! RTP/MP2T packetizer (`appsrc name=pay0`, PT 33, 7×188 bytes, empty packets when idle),
//! with the RTCP APP `SES1` status packet appended to every compound RTCP packet.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gst::glib;
use gst::prelude::*;
use gst_rtsp_server::gst_rtsp;
use gst_rtsp_server::prelude::*;
use gst_rtsp_server::subclass::prelude::*;
use gstdvb2ip::proto::satip::{encode_rtcp_app_ses1, parse_query, StreamSpec};

use super::streams::{key_of_element, Entry, Route, MAX_PIDS, STREAMS};
use super::CAT;

/// RTCP report interval asked from rtpbin: SAT>IP wants ~5 reports per second.
const RTCP_INTERVAL_NS: u64 = 130_000_000;

mod imp {
    use super::*;

    #[derive(Default)]
    pub struct SatipFactory {}

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
            f.set_shared(false);
            f.set_stop_on_disconnect(false);
            f.set_latency(0);
            f.set_suspend_mode(gst_rtsp_server::RTSPSuspendMode::None);
            f.set_profiles(gst_rtsp::RTSPProfile::AVP);
            f.set_protocols(gst_rtsp::RTSPLowerTrans::UDP | gst_rtsp::RTSPLowerTrans::TCP);
        }
    }

    impl RTSPMediaFactoryImpl for SatipFactory {
        fn create_element(&self, url: &gst_rtsp::RTSPUrl) -> Option<gst::Element> {
            let uri = url.request_uri();
            let Route::Satip(Ok(target)) = super::super::streams::route(&uri) else {
                return None;
            };
            let (request, stream_id, joined) = match target.stream {
                None if target.has_query => {
                    let spec = StreamSpec::create(&target.query, MAX_PIDS).ok()?;
                    let id = STREAMS.lock().unwrap().allocate_id();
                    (spec.canonical_query(), id, false)
                }
                Some(n) => {
                    let mut st = STREAMS.lock().unwrap();
                    let spec = st.owner_entry(n)?.spec()?;
                    (spec.canonical_query(), n, true)
                }
                None => return None,
            };
            let src = gst::ElementFactory::make("satipmapsrc")
                .name("satip")
                .property("request", &request)
                .build()
                .ok()?;
            let (tsink, pay) = packetizer();
            let key = STREAMS.lock().unwrap().insert(Entry {
                stream_id,
                joined,
                src: src.downgrade(),
                media: glib::WeakRef::new(),
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
            let element = media.element();
            let Some(key) = key_of_element(&element.name()) else {
                return;
            };
            if let Some(e) = STREAMS.lock().unwrap().entries.get_mut(&key) {
                e.media.set(Some(media));
            }
            media.connect_unprepared(move |_| {
                STREAMS.lock().unwrap().entries.remove(&key);
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
        // SAFETY: the key is only ever used with a `bool`.
        unsafe {
            if sess.data::<bool>("dvb2ip-ses1").is_some() {
                continue;
            }
            sess.set_data("dvb2ip-ses1", true);
        }
        gst::debug!(CAT, "hooking RTCP of stream {i}");
        let src_weak = src.downgrade();
        sess.connect("on-sending-rtcp", false, move |args| {
            gst::trace!(CAT, "on-sending-rtcp");
            if let Some(src) = src_weak.upgrade() {
                let status: String = src.property("status");
                // SAFETY: arg 1 is the GstBuffer being built (boxed, not ref'd by us, so
                // still writable).
                unsafe { append_app(&args[1], &status) };
            }
            Some(false.to_value())
        });
        // After connecting: changing the interval wakes the RTCP thread, which may send at once.
        if sess.find_property("rtcp-min-interval").is_some() {
            sess.set_property("rtcp-min-interval", RTCP_INTERVAL_NS);
        }
    }
}

mod pay_imp {
    use super::*;

    /// `pay0` for gst-rtsp-server: a bin around the packetizer's appsrc that also answers
    /// the `pt` property gst-rtsp-server reads from payloaders.
    #[derive(Default)]
    pub struct SatipPay {}

    #[glib::object_subclass]
    impl ObjectSubclass for SatipPay {
        const NAME: &'static str = "Dvb2IpSatipPay";
        type Type = super::SatipPay;
        type ParentType = gst::Bin;
    }

    impl ObjectImpl for SatipPay {
        fn properties() -> &'static [glib::ParamSpec] {
            static PROPS: once_cell::sync::Lazy<Vec<glib::ParamSpec>> =
                once_cell::sync::Lazy::new(|| {
                    vec![glib::ParamSpecUInt::builder("pt")
                        .nick("Payload type")
                        .blurb("RTP payload type of the SAT>IP stream (always 33, MP2T)")
                        .minimum(33)
                        .maximum(33)
                        .default_value(33)
                        .read_only()
                        .build()]
                });
            PROPS.as_ref()
        }

        fn property(&self, _id: usize, _pspec: &glib::ParamSpec) -> glib::Value {
            33u32.to_value()
        }
    }

    impl GstObjectImpl for SatipPay {}
    impl ElementImpl for SatipPay {}
    impl BinImpl for SatipPay {}
}

glib::wrapper! {
    pub struct SatipPay(ObjectSubclass<pay_imp::SatipPay>) @extends gst::Bin, gst::Element, gst::Object;
}

/// TS packets per RTP packet (§5).
const TS_PER_RTP: usize = 7;
/// An empty RTP packet goes out after this long without any packet (§5, checklist 89).
const IDLE_EMPTY: Duration = Duration::from_millis(100);
/// A partly filled RTP packet goes out after this long (low-rate PID sets).
const PARTIAL_FLUSH: Duration = Duration::from_millis(20);

/// RTP/MP2T packetizer of one stream: sequence numbers run on across retunes and PID
/// changes, and empty RTP packets fill silences (no signal, `pids=none`), which also lets
/// gst-rtsp-server prepare a media whose frontend has no signal.
struct Packer {
    seq: u16,
    ssrc: u32,
    start: Instant,
    pending: Vec<u8>,
    last_push: Instant,
}

impl Packer {
    fn new() -> Self {
        // Random enough for SSRC and initial sequence number (RFC 3550 wants them random).
        let mut h = std::collections::hash_map::DefaultHasher::new();
        std::hash::Hash::hash(
            &(Instant::now(), std::process::id(), &h as *const _ as usize),
            &mut h,
        );
        let r = std::hash::Hasher::finish(&h);
        let now = Instant::now();
        Packer {
            seq: r as u16,
            ssrc: (r >> 32) as u32,
            start: now,
            pending: Vec::with_capacity(TS_PER_RTP * 188 * 2),
            last_push: now,
        }
    }

    /// Pushes one RTP packet carrying `n` bytes of `pending` (0 = empty packet).
    /// Called with the packer locked so sequence numbers leave in order; appsrc is
    /// non-blocking, so the lock is held only for a queue insertion.
    fn push(&mut self, appsrc: &gst_app::AppSrc, n: usize) {
        let ts = (self.start.elapsed().as_nanos() * 9 / 100_000) as u32;
        let mut data = Vec::with_capacity(12 + n);
        data.extend_from_slice(&[0x80, 33]);
        data.extend_from_slice(&self.seq.to_be_bytes());
        data.extend_from_slice(&ts.to_be_bytes());
        data.extend_from_slice(&self.ssrc.to_be_bytes());
        data.extend(self.pending.drain(..n));
        self.seq = self.seq.wrapping_add(1);
        self.last_push = Instant::now();
        let _ = appsrc.push_buffer(gst::Buffer::from_mut_slice(data));
    }
}

/// `appsink name=tsink` (TS in) and `pay0` (a [`SatipPay`] bin around the RTP appsrc) around
/// one [`Packer`], plus
/// the idle timer thread that lives as long as the appsrc.
fn packetizer() -> (gst_app::AppSink, SatipPay) {
    let caps = gst::Caps::builder("application/x-rtp")
        .field("media", "video")
        .field("clock-rate", 90000i32)
        .field("encoding-name", "MP2T")
        .field("payload", 33i32)
        .build();
    let pay = gst_app::AppSrc::builder()
        .name("rtpsrc")
        .caps(&caps)
        .is_live(true)
        .format(gst::Format::Time)
        .do_timestamp(true)
        .stream_type(gst_app::AppStreamType::Stream)
        .max_bytes(4 * 1024 * 1024)
        .leaky_type(gst_app::AppLeakyType::Downstream)
        .block(false)
        .build();
    let tsink = gst_app::AppSink::builder()
        .name("tsink")
        .sync(false)
        .async_(false)
        .build();
    let packer = Arc::new(Mutex::new(Packer::new()));
    let weak = pay.downgrade();
    let p = packer.clone();
    tsink.set_callbacks(
        gst_app::AppSinkCallbacks::builder()
            .new_sample(move |sink| {
                let sample = sink.pull_sample().map_err(|_| gst::FlowError::Flushing)?;
                let Some(appsrc) = weak.upgrade() else {
                    return Err(gst::FlowError::Flushing);
                };
                if let Some(buf) = sample.buffer() {
                    if let Ok(map) = buf.map_readable() {
                        let mut p = p.lock().unwrap();
                        p.pending.extend_from_slice(map.as_slice());
                        while p.pending.len() >= TS_PER_RTP * 188 {
                            p.push(&appsrc, TS_PER_RTP * 188);
                        }
                    }
                }
                Ok(gst::FlowSuccess::Ok)
            })
            .build(),
    );
    let weak = pay.downgrade();
    std::thread::Builder::new()
        .name("satip-idle".into())
        .spawn(move || loop {
            std::thread::sleep(PARTIAL_FLUSH);
            let Some(appsrc) = weak.upgrade() else { break };
            let mut p = packer.lock().unwrap();
            let idle = p.last_push.elapsed();
            if !p.pending.is_empty() && idle >= PARTIAL_FLUSH {
                let n = p.pending.len() / 188 * 188;
                p.push(&appsrc, n);
            } else if idle >= IDLE_EMPTY {
                p.push(&appsrc, 0);
            }
        })
        .expect("spawn idle thread");
    let bin: SatipPay = glib::Object::builder().property("name", "pay0").build();
    bin.add(&pay).expect("add appsrc");
    let ghost =
        gst::GhostPad::with_target(&pay.static_pad("src").expect("appsrc src")).expect("ghost pad");
    bin.add_pad(&ghost).expect("add ghost pad");
    (tsink, bin)
}

/// Appends the SAT>IP APP `SES1` packet to the compound RTCP buffer in `value`.
///
/// # Safety
/// `value` must hold the `GstBuffer*` of rtpsession's `on-sending-rtcp` signal.
unsafe fn append_app(value: &glib::Value, status: &str) {
    use glib::translate::ToGlibPtr;
    let gvalue: *const glib::gobject_ffi::GValue = value.to_glib_none().0;
    let buf = glib::gobject_ffi::g_value_get_boxed(gvalue) as *mut gst::ffi::GstBuffer;
    if buf.is_null() {
        return;
    }
    let mut rtcp: gst_rtp::ffi::GstRTCPBuffer = std::mem::zeroed();
    if gst_rtp::ffi::gst_rtcp_buffer_map(buf, gst::ffi::GST_MAP_READWRITE, &mut rtcp) == 0 {
        gst::warning!(CAT, "cannot map the RTCP buffer to add APP SES1");
        return;
    }
    // SSRC of the first packet (SR or RR) of the compound.
    let ssrc = if rtcp.map.size >= 8 {
        let d = std::slice::from_raw_parts(rtcp.map.data, 8);
        u32::from_be_bytes([d[4], d[5], d[6], d[7]])
    } else {
        0
    };
    let app = encode_rtcp_app_ses1(ssrc, status);
    let mut packet: gst_rtp::ffi::GstRTCPPacket = std::mem::zeroed();
    if gst_rtp::ffi::gst_rtcp_buffer_add_packet(
        &mut rtcp,
        gst_rtp::ffi::GST_RTCP_TYPE_APP,
        &mut packet,
    ) != 0
    {
        gst::trace!(CAT, "adding APP SES1 ({} bytes)", app.len());
        gst_rtp::ffi::gst_rtcp_packet_app_set_subtype(&mut packet, 0);
        gst_rtp::ffi::gst_rtcp_packet_app_set_ssrc(&mut packet, ssrc);
        gst_rtp::ffi::gst_rtcp_packet_app_set_name(&mut packet, c"SES1".as_ptr());
        let data = &app[12..];
        if gst_rtp::ffi::gst_rtcp_packet_app_set_data_length(&mut packet, (data.len() / 4) as u16)
            != 0
        {
            let dst = gst_rtp::ffi::gst_rtcp_packet_app_get_data(&mut packet);
            if !dst.is_null() {
                std::ptr::copy_nonoverlapping(data.as_ptr(), dst, data.len());
            }
        }
    }
    gst_rtp::ffi::gst_rtcp_buffer_unmap(&mut rtcp);
}

glib::wrapper! {
    pub struct SatipFactory(ObjectSubclass<imp::SatipFactory>) @extends gst_rtsp_server::RTSPMediaFactory;
}

impl Default for SatipFactory {
    fn default() -> Self {
        glib::Object::new()
    }
}

/// Checks a creating query as the factory will (used before a media is built).
pub fn check_new_stream(query: &str) -> Result<StreamSpec, gstdvb2ip::proto::satip::QueryError> {
    let q = parse_query(query)?;
    let spec = StreamSpec::create(&q, MAX_PIDS)?;
    spec.tuning
        .check_capabilities(&gstdvb2ip::satipmapsrc::pool_capabilities())?;
    Ok(spec)
}
