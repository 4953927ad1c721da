//! Relays over RTSP: `rtsp://HOST/relay/<name>`.
//!
//! Each relay is mounted with a [`RelayFactory`] that builds a small media per reader
//! (`appsrc ! rtpmp2tpay`), fed by the relay's one upstream pull ([`super::source::Relay`]).
//! The reader is attached while gst-rtsp-server constructs the media (DESCRIBE, or a SETUP
//! without DESCRIBE), which waits up to `start_timeout` for the pull; it is detached when the
//! media is unprepared (TEARDOWN, session timeout, connection closed). A media per reader
//! lets every reader start with PAT, PMT and a random access point.
//!
//! An upstream that cannot start: the factory builds nothing and the answer (gst-rtsp-server's
//! own) becomes 503 with `Retry-After` and the cause ([`finish_response`]). ANNOUNCE and
//! RECORD never start a pull: 405 with `Allow`.

use std::cell::RefCell;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use gst::glib;
use gst::prelude::*;
use gst_rtsp_server::gst_rtsp;
use gst_rtsp_server::prelude::*;
use gst_rtsp_server::subclass::prelude::*;

use super::config::RELAY_PREFIX;
use super::rtsp_direct::Slot;
use super::source::{Out, ReaderHandle, Relay, Unavailable};
use super::CAT;
use crate::core::Core;
use crate::rtsp::client::Answer;
use crate::rtsp::message::Msg;
use crate::vod::rtsp_npt::{Npt, RangeReq};

/// Key of the reader on a media's element until the media is configured (a [`ReaderHandle`]
/// and its mute flag), then of the media's [`Slot`].
pub(super) const READER_KEY: &str = "dvb2ip-relay-reader";

/// Bytes an RTSP reader may have queued before its oldest are dropped.
const READER_QUEUE_BYTES: u64 = 16 << 20;

/// Why a relay media was not constructed.
enum Refusal {
    /// The upstream could not start: 503.
    Unavailable(Unavailable),
    /// ANNOUNCE or RECORD: a relay mount only plays (405).
    NotAllowed,
}

/// The methods of a relay mount (`Allow` of a 405).
const ALLOW: &str = "OPTIONS, DESCRIBE, SETUP, PLAY, PAUSE, GET_PARAMETER, TEARDOWN";

thread_local! {
    /// Why the relay media this thread last tried to construct could not be (read when the
    /// answer is sent, in the same thread).
    static REFUSED: RefCell<Option<Refusal>> = const { RefCell::new(None) };
}

/// The method of the request being handled.
fn current_method() -> Option<gst_rtsp::ffi::GstRTSPMethod> {
    use gst::glib::translate::ToGlibPtr;
    gst_rtsp_server::RTSPContext::with_current_context(|ctx| {
        let req = ctx.request()?;
        let p: *const gst_rtsp::ffi::GstRTSPMessage = req.to_glib_none().0;
        // SAFETY: the request lives as long as the context, which outlives this call.
        let msg = unsafe { Msg::from_ptr(p as *mut _) }?;
        msg.request_line().map(|(m, _)| m)
    })
    .flatten()
}

/// Whether `uri` (a request URI) is under the relay prefix.
pub fn is_relay(uri: &str) -> bool {
    crate::rtsp::routing::uri_path(uri).starts_with(RELAY_PREFIX)
}

/// Mounts every relay of `core` on `mounts` and starts the relays' supervisors.
pub fn mount(core: &Arc<Core>, mounts: &gst_rtsp_server::RTSPMountPoints) {
    for relay in core.relays.iter() {
        let path = relay.config().mount_path();
        mounts.add_factory(&path, RelayFactory::new(relay.clone()));
        gst::info!(CAT, "mounted {path} -> {}", relay.config().source);
    }
    core.relays.start();
}

/// Finishes the answer to a request on a relay mount: a media that could not be constructed
/// because the upstream could not start is a 503 with `Retry-After` and the cause.
pub(crate) fn finish_response(msg: &Msg, request: Option<&Msg>) {
    let Some(refusal) = REFUSED.with(|c| c.borrow_mut().take()) else {
        return;
    };
    if !matches!(msg.status(), Some(400 | 404 | 405 | 500 | 501 | 503)) {
        return;
    }
    let u = match refusal {
        Refusal::NotAllowed => {
            msg.reset_response(405, "Method Not Allowed", request);
            msg.set_header("Allow", ALLOW);
            return;
        }
        Refusal::Unavailable(u) => u,
    };
    msg.reset_response(503, "Service Unavailable", request);
    msg.set_header("Retry-After", &u.retry_after.max(1).to_string());
    msg.add_header("Content-Type", "text/plain");
    msg.set_body(format!("relay upstream unavailable: {}", u.cause).as_bytes());
}

/// Feeds one reader's `appsrc` (unless muted: the reader went the direct path).
struct AppSrcOut(gst_app::AppSrc, Arc<AtomicBool>);

impl Out for AppSrcOut {
    fn push(&self, ts: &[u8]) -> bool {
        if self.1.load(Ordering::Relaxed) {
            return true;
        }
        // Refused only while the media stops (its reader is detached then); a full queue
        // drops its oldest buffers (leaky).
        let _ = self.0.push_buffer(gst::Buffer::from_slice(ts.to_vec()));
        true
    }
}

mod imp {
    use super::*;

    #[derive(Default)]
    pub struct RelayFactory {
        pub relay: std::sync::OnceLock<Arc<Relay>>,
    }

    #[glib::object_subclass]
    impl ObjectSubclass for RelayFactory {
        const NAME: &'static str = "Dvb2IpRelayFactory";
        type Type = super::RelayFactory;
        type ParentType = gst_rtsp_server::RTSPMediaFactory;
    }

    impl ObjectImpl for RelayFactory {
        fn constructed(&self) {
            self.parent_constructed();
            let f = self.obj();
            // A media per reader (each starts at a random access point), live.
            f.set_shared(false);
            f.set_latency(0);
            f.set_suspend_mode(gst_rtsp_server::RTSPSuspendMode::None);
            f.set_protocols(gst_rtsp::RTSPLowerTrans::UDP | gst_rtsp::RTSPLowerTrans::TCP);
        }
    }

    impl RTSPMediaFactoryImpl for RelayFactory {
        fn create_element(&self, _url: &gst_rtsp::RTSPUrl) -> Option<gst::Element> {
            let relay = self.relay.get()?.clone();
            REFUSED.with(|c| c.borrow_mut().take());
            if matches!(
                current_method(),
                Some(crate::rtsp::message::METHOD_ANNOUNCE | crate::rtsp::message::METHOD_RECORD)
            ) {
                // Never starts a pull; answered 405 (`finish_response`).
                REFUSED.with(|c| *c.borrow_mut() = Some(Refusal::NotAllowed));
                return None;
            }
            let bin = gst::Bin::builder().name("relay").build();
            let src = gst_app::AppSrc::builder()
                .name("src")
                .is_live(true)
                .format(gst::Format::Time)
                .do_timestamp(true)
                .max_bytes(READER_QUEUE_BYTES)
                .caps(
                    &gst::Caps::builder("video/mpegts")
                        .field("systemstream", true)
                        .field("packetsize", 188i32)
                        .build(),
                )
                .build();
            src.set_leaky_type(gst_app::AppLeakyType::Downstream);
            let pay = gst::ElementFactory::make("rtpmp2tpay")
                .name("pay0")
                .property("pt", 33u32)
                .build()
                .map_err(|e| gst::error!(CAT, "relay {}: {e}", relay.name()))
                .ok()?;
            bin.add_many([src.upcast_ref(), &pay]).ok()?;
            src.link(&pay).ok()?;
            let muted = Arc::new(AtomicBool::new(false));
            let out: Arc<dyn Out> = Arc::new(AppSrcOut(src, muted.clone()));
            match relay.attach(out) {
                Ok(reader) => {
                    // SAFETY: READER_KEY only ever holds this type on the element.
                    unsafe { bin.set_data(READER_KEY, (reader, muted)) };
                    Some(bin.upcast())
                }
                Err(u) => {
                    eprintln!(
                        "dvb2ip: relay {}: 503 to an RTSP reader: {}",
                        relay.name(),
                        u.cause
                    );
                    REFUSED.with(|c| *c.borrow_mut() = Some(Refusal::Unavailable(u)));
                    None
                }
            }
        }

        fn media_configure(&self, media: &gst_rtsp_server::RTSPMedia) {
            self.parent_media_configure(media);
            // The reader lives until the media is unprepared (or dropped).
            // SAFETY: READER_KEY only ever holds this type on the element.
            let reader: Option<(ReaderHandle, Arc<AtomicBool>)> =
                unsafe { media.element().steal_data(READER_KEY) };
            let slot = Arc::new(Mutex::new(match reader {
                Some((reader, muted)) => Slot::new(reader, muted),
                None => Slot::default(),
            }));
            let s = slot.clone();
            media.connect_unprepared(move |_| {
                // The readers (pipeline and direct) and the packer go with the media.
                let old = std::mem::take(&mut *s.lock().unwrap());
                drop(old);
            });
            // SAFETY: the key only ever holds this type.
            unsafe { media.set_data(READER_KEY, slot) };
        }
    }
}

/// Checks a PLAY's `Range` on a relay mount (checklist 40): a relay is live, so only "from
/// now" may be asked: no header, `npt=0-` (FFmpeg's `npt=0.000-`), `npt=now-`, `npt=-`.
/// A real seek (a start after 0, an end, or a `clock=`/`smpte=` position) is 456 Header
/// Field Not Valid for Resource; a malformed value is 400. Both name the header.
pub fn check_play_range(range: Option<&str>) -> Result<(), Answer> {
    let Some(value) = range else {
        return Ok(());
    };
    let refuse = |status: u32, reason: &str, why: String| Answer {
        status,
        reason: reason.into(),
        headers: vec![],
        body: Some(("text/plain".into(), why)),
    };
    match crate::vod::rtsp_npt::parse_range(value) {
        Ok(RangeReq::Npt(Npt {
            start: None | Some(0.0),
            end: None,
        })) => Ok(()),
        Ok(_) => Err(refuse(
            456,
            "Header Field Not Valid for Resource",
            format!("Range {value:?}: a relay is live and cannot seek; ask npt=0- or npt=now-"),
        )),
        Err(e) => Err(refuse(400, "Bad Request", format!("Range: {e}"))),
    }
}

glib::wrapper! {
    /// The factory of one relay's mount: a media per reader, fed by the relay's one pull.
    pub struct RelayFactory(ObjectSubclass<imp::RelayFactory>) @extends gst_rtsp_server::RTSPMediaFactory;
}

impl RelayFactory {
    pub fn new(relay: Arc<Relay>) -> Self {
        let f: Self = glib::Object::new();
        let _ = f.imp().relay.set(relay);
        f
    }
}

#[cfg(test)]
mod tests {
    use super::check_play_range;

    #[test]
    fn a_relay_plays_from_now_and_refuses_real_seeks() {
        for ok in [
            None,
            Some("npt=0-"),
            Some("npt=0.000-"),
            Some("npt=now-"),
            Some("npt=-"),
        ] {
            assert!(check_play_range(ok).is_ok(), "{ok:?}");
        }
        for seek in [
            "npt=600-",
            "npt=0-30",
            "npt=0:10:00-",
            "clock=20261207T100000Z-",
            "smpte=0:10:00-",
        ] {
            let a = check_play_range(Some(seek)).unwrap_err();
            assert_eq!(a.status, 456, "{seek}");
            assert!(a.body.unwrap().1.contains(seek), "{seek}");
        }
        assert_eq!(check_play_range(Some("npt=abc-")).unwrap_err().status, 400);
    }
}
