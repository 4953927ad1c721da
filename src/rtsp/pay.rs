//! `pay0` of the SAT>IP medias for gst-rtsp-server: a [`SatipPay`] bin around the appsrc a
//! [`Packer`] sends through ([`packetizer`]: `appsink name=tsink` takes the TS of the media's
//! `satipmapsrc`), or, on the shared unicast media, an idle one ([`idle_pay0`]).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;
use gstdvb2ip::proto::rtp::rtp_header;

use crate::rtp::packer::{Packer, Packers, StatusFn};

/// Bytes the `pay0` appsrc may queue (oldest dropped first): 100 ms of a 20 Mbit/s mux.
const PAY_QUEUE_BYTES: u64 = 256 * 1024;

mod imp {
    use super::*;

    /// `pay0` for gst-rtsp-server: a bin around the packetizer's appsrc that also answers
    /// the `pt` property gst-rtsp-server reads from payloaders.
    #[derive(Default)]
    pub struct SatipPay {
        pub(crate) packer: std::sync::OnceLock<Arc<Mutex<Packer>>>,
    }

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
                    vec![
                        glib::ParamSpecUInt::builder("pt")
                            .nick("Payload type")
                            .blurb("RTP payload type of the SAT>IP stream (always 33, MP2T)")
                            .minimum(33)
                            .maximum(33)
                            .default_value(33)
                            .read_only()
                            .build(),
                        // Read by gst-rtsp-server for RTP-Info when no buffer waits at its
                        // block (a later PLAY).
                        glib::ParamSpecUInt::builder("seqnum")
                            .nick("Sequence number")
                            .blurb("Sequence number of the next RTP packet")
                            .maximum(u32::from(u16::MAX))
                            .read_only()
                            .build(),
                        glib::ParamSpecUInt::builder("timestamp")
                            .nick("Timestamp")
                            .blurb("RTP timestamp of the next RTP packet")
                            .read_only()
                            .build(),
                    ]
                });
            PROPS.as_ref()
        }

        fn property(&self, _id: usize, pspec: &glib::ParamSpec) -> glib::Value {
            let info = || {
                self.packer
                    .get()
                    .map(|p| p.lock().unwrap().rtp_info())
                    .unwrap_or_default()
            };
            match pspec.name() {
                "seqnum" => u32::from(info().0).to_value(),
                "timestamp" => info().1.to_value(),
                _ => 33u32.to_value(),
            }
        }
    }

    impl GstObjectImpl for SatipPay {}
    impl ElementImpl for SatipPay {}
    impl BinImpl for SatipPay {}
}

glib::wrapper! {
    /// `pay0` of the SAT>IP media.
    pub struct SatipPay(ObjectSubclass<imp::SatipPay>) @extends gst::Bin, gst::Element, gst::Object;
}

/// `appsink name=tsink` (TS in) and `pay0` (a [`SatipPay`] bin around the RTP appsrc) around
/// one [`Packer`], registered with the timer thread.
pub fn packetizer(src: &gst::Element, packers: &Packers) -> (gst_app::AppSink, SatipPay) {
    let caps = rtp_caps();
    // gst-rtsp-server blocks the stream between SETUP and PLAY; only the newest data needs
    // to wait there, and a playing stream drains at once.
    let pay = gstdvb2ip::live_appsrc("rtpsrc", &caps, PAY_QUEUE_BYTES);
    let tsink = gst_app::AppSink::builder()
        .name("tsink")
        .sync(false)
        .async_(false)
        .build();
    let src = src.downgrade();
    let status: StatusFn = Arc::new(move || src.upgrade().map(|s| s.property::<String>("status")));
    let packer = Arc::new(Mutex::new(Packer::with_pay0(&pay, status)));
    let p = packer.clone();
    tsink.set_callbacks(
        gst_app::AppSinkCallbacks::builder()
            .new_sample(move |sink| {
                let sample = sink.pull_sample().map_err(|_| gst::FlowError::Flushing)?;
                if let Some(buf) = sample.buffer() {
                    // On the direct path the tuner's tap delivers; before PLAY nothing is sent.
                    p.lock().unwrap().take_from_pipeline(buf);
                }
                Ok(gst::FlowSuccess::Ok)
            })
            .build(),
    );
    // A direct stream's RTP never goes through gst-rtsp-server: what pay0 still holds from
    // before SETUP is dropped. What passes is noted (see `ProbeState`).
    let probe = packer.lock().unwrap().probe();
    pay.static_pad("src").expect("appsrc src").add_probe(
        gst::PadProbeType::BUFFER,
        move |_, info| {
            if probe.direct.load(Ordering::SeqCst) {
                return gst::PadProbeReturn::Drop;
            }
            if let Some(gst::PadProbeData::Buffer(b)) = &info.data {
                let mut seq = [0u8; 2];
                if b.copy_to_slice(2, &mut seq).is_ok() {
                    probe
                        .passed_seq
                        .store(u32::from(u16::from_be_bytes(seq)), Ordering::SeqCst);
                }
            }
            gst::PadProbeReturn::Ok
        },
    );
    packers.register(&packer);
    let bin: SatipPay = glib::Object::builder().property("name", "pay0").build();
    bin.add(&pay).expect("add appsrc");
    let ghost =
        gst::GhostPad::with_target(&pay.static_pad("src").expect("appsrc src")).expect("ghost pad");
    bin.add_pad(&ghost).expect("add ghost pad");
    let _ = bin.imp().packer.set(packer);
    (tsink, bin)
}

/// Caps of the SAT>IP RTP stream.
fn rtp_caps() -> gst::Caps {
    gst::Caps::builder("application/x-rtp")
        .field("media", "video")
        .field("clock-rate", 90000i32)
        .field("encoding-name", "MP2T")
        .field("payload", 33i32)
        .build()
}

/// `pay0` of the shared unicast media: one empty RTP packet, so gst-rtsp-server can prepare
/// the media, then nothing (the streams' packets go the direct path).
pub fn idle_pay0() -> SatipPay {
    let pay = gstdvb2ip::live_appsrc("rtpsrc", &rtp_caps(), 4096);
    let primed = AtomicBool::new(false);
    pay.set_callbacks(
        gst_app::AppSrcCallbacks::builder()
            .need_data(move |src, _| {
                if !primed.swap(true, Ordering::SeqCst) {
                    let _ =
                        src.push_buffer(gst::Buffer::from_mut_slice(rtp_header(0, 0, 0).to_vec()));
                }
            })
            .build(),
    );
    let bin: SatipPay = glib::Object::builder().property("name", "pay0").build();
    bin.add(&pay).expect("add appsrc");
    let ghost =
        gst::GhostPad::with_target(&pay.static_pad("src").expect("appsrc src")).expect("ghost pad");
    bin.add_pad(&ghost).expect("add ghost pad");
    bin
}

/// The packer behind a `pay0` built by [`packetizer`].
pub fn packer_of(pay: &gst::Element) -> Option<Arc<Mutex<Packer>>> {
    let pay = pay.downcast_ref::<SatipPay>()?;
    pay.imp().packer.get().cloned()
}
