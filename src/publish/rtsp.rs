//! Publishing over RTSP: ANNOUNCE, SETUP `mode=record`, RECORD into `rtsp://HOST/live/<name>`,
//! and readers' DESCRIBE/SETUP/PLAY of the same URL (spec digest §5).
//!
//! gst-rtsp-server's RECORD factories answer DESCRIBE/PLAY with 405, so a mount has two
//! factories: readers' [`ReadFactory`] at the mount (a media per reader, `appsrc !
//! rtpmp2tpay`, fed by the mount's [`Published`] source), and the publisher's
//! [`RecordFactory`] at [`RECORD_PREFIX`]`<mount>`, where the publisher's requests (ANNOUNCE,
//! SETUP `mode=record`, RECORD, and every request of its session) are routed
//! ([`announce_path`], [`client_path`]). The record media depayloads the announced streams,
//! muxes them into MPEG-TS (an MP2T stream passes as it is) and hands the TS to the source.
//!
//! Who may do what is checked before gst-rtsp-server dispatches a request
//! ([`check_request`], from the server's auth object): publisher requests need a configured
//! publisher's credentials (401 with a Digest challenge, 403 for a disallowed address), a
//! second publisher gets 455; readers need read credentials when the mount lists some, and
//! get 404 while nobody publishes.

use std::cell::RefCell;
use std::sync::{Arc, Mutex};

use gst::glib;
use gst::glib::translate::ToGlibPtr;
use gst::prelude::*;
use gst_rtsp_server::gst_rtsp;
use gst_rtsp_server::prelude::*;
use gst_rtsp_server::subclass::prelude::*;

use super::auth::Refusal;
use super::config::LIVE_PREFIX;
use super::{Mount, CAT};
use crate::core::Core;
use crate::rtsp::message::{Msg, METHOD_ANNOUNCE, METHOD_OPTIONS, METHOD_RECORD, METHOD_SETUP};
use crate::streams::publish::{Claim, Published, Reader, ReaderHandle};

/// Publisher requests go to the record factory mounted under this prefix.
pub const RECORD_PREFIX: &str = "/.record";

/// Bytes an RTSP reader may have queued before its oldest are dropped.
const READER_QUEUE_BYTES: u64 = 16 << 20;

/// Key of the claim/reader on a media's element until the media is configured.
const HOLD_KEY: &str = "dvb2ip-publish-hold";
/// Key of the publisher's [`Watch`] on a record media's element until it is configured.
const WATCH_KEY: &str = "dvb2ip-publish-watch";

/// A publisher whose RTP stops this long (after its first packet) is taken as gone: its
/// mount is free for the next one (a UDP publisher that vanishes sends no TEARDOWN, and its
/// session would otherwise hold the mount until it times out).
pub const PUBLISHER_SILENCE: std::time::Duration = std::time::Duration::from_secs(5);

/// What a record media knows about its publisher: the address of its RTSP connection (UDP
/// media from any other is dropped and counted, checklist 51) and when its RTP last arrived.
struct Watch {
    peer: Option<std::net::IpAddr>,
    last_rtp: Arc<Mutex<Option<std::time::Instant>>>,
}

/// The source address of a datagram `udpsrc` received.
fn sender_ip(b: &gst::BufferRef) -> Option<std::net::IpAddr> {
    use gst_rtsp_server::gio::prelude::*;
    let meta = b.meta::<gst_rtsp_server::gst_net::NetAddressMeta>()?;
    let a = meta
        .addr()
        .downcast::<gst_rtsp_server::gio::InetSocketAddress>()
        .ok()?;
    Some(std::net::IpAddr::from(a.address()))
}

/// Drops (and counts on `published`) what `udpsrc` receives from another address than `peer`.
fn guard_udpsrc(e: &gst::Element, peer: std::net::IpAddr, published: &Arc<Published>) {
    if e.factory().is_none_or(|f| f.name() != "udpsrc") {
        return;
    }
    let Some(pad) = e.static_pad("src") else {
        return;
    };
    let published = published.clone();
    let peer = peer.to_canonical();
    pad.add_probe(gst::PadProbeType::BUFFER, move |_, info| {
        let Some(gst::PadProbeData::Buffer(b)) = &info.data else {
            return gst::PadProbeReturn::Ok;
        };
        match sender_ip(b) {
            Some(ip) if ip.to_canonical() != peer => {
                published.dropped_foreign();
                gst::debug!(CAT, "{}: dropped a datagram from {ip}", published.mount());
                gst::PadProbeReturn::Drop
            }
            _ => gst::PadProbeReturn::Ok,
        }
    });
}

thread_local! {
    /// The publisher the current request was authenticated as: (user, peer).
    static AUTHED: RefCell<Option<(String, String)>> = const { RefCell::new(None) };
    /// Why the media this thread last tried to construct could not be: (status, reason, body).
    static REFUSED: RefCell<Option<(u32, &'static str, String)>> = const { RefCell::new(None) };
}

/// Whether `uri` (a request URI) is under the publish prefix.
pub fn is_publish(uri: &str) -> bool {
    crate::rtsp::routing::uri_path(uri).starts_with(LIVE_PREFIX)
}

fn request_of(ctx: &gst_rtsp_server::RTSPContext) -> Option<Msg> {
    let req = ctx.request()?;
    let p: *const gst_rtsp::ffi::GstRTSPMessage = req.to_glib_none().0;
    // SAFETY: the request lives as long as the context, which outlives this call.
    unsafe { Msg::from_ptr(p as *mut _) }
}

fn is_record_transport(t: &str) -> bool {
    t.split([';', ','])
        .filter_map(|p| p.trim().split_once('='))
        .any(|(k, v)| {
            k.trim().eq_ignore_ascii_case("mode")
                && v.trim().trim_matches('"').eq_ignore_ascii_case("record")
        })
}

/// The path of an ANNOUNCE of a publish URI (gst-rtsp-server looks its media up through the
/// mount points): the record factory's.
pub fn announce_path(uri: &str) -> Option<String> {
    if !is_publish(uri) {
        return None;
    }
    let method = gst_rtsp_server::RTSPContext::with_current_context(|ctx| {
        request_of(ctx)
            .and_then(|r| r.request_line())
            .map(|(m, _)| m)
    })
    .flatten()?;
    (method == METHOD_ANNOUNCE)
        .then(|| format!("{RECORD_PREFIX}{}", crate::rtsp::routing::uri_path(uri)))
}

/// The path of a publisher's request (RECORD, SETUP `mode=record`, or any request of a
/// session that records): the record factory's. `None` for readers' requests.
pub fn client_path(uri: &str) -> Option<String> {
    if !is_publish(uri) {
        return None;
    }
    let path = format!("{RECORD_PREFIX}{}", crate::rtsp::routing::uri_path(uri));
    gst_rtsp_server::RTSPContext::with_current_context(|ctx| {
        let req = request_of(ctx)?;
        let (method, _) = req.request_line()?;
        let record = method == METHOD_RECORD
            || method == METHOD_ANNOUNCE
            || (method == METHOD_SETUP
                && req
                    .header("Transport")
                    .is_some_and(|t| is_record_transport(&t)))
            || ctx.session().is_some_and(|s| session_has(s, &path));
        record.then(|| path.clone())
    })
    .flatten()
}

/// Whether `session` holds a media at (a prefix of) `path`.
fn session_has(session: &gst_rtsp_server::RTSPSession, path: &str) -> bool {
    let Ok(cpath) = std::ffi::CString::new(path) else {
        return false;
    };
    let mut matched = 0i32;
    // SAFETY: valid session and path; the result is borrowed (transfer none) and not used.
    let sm = unsafe {
        gst_rtsp_server::ffi::gst_rtsp_session_get_media(
            session.to_glib_none().0,
            cpath.as_ptr(),
            &mut matched,
        )
    };
    !sm.is_null()
}

fn method_name(m: gst_rtsp::ffi::GstRTSPMethod) -> String {
    // SAFETY: returns a static string (or NULL for an unknown method).
    let p = unsafe { gst_rtsp::ffi::gst_rtsp_method_as_text(m) };
    if p.is_null() {
        return String::new();
    }
    // SAFETY: a NUL-terminated static string.
    unsafe { std::ffi::CStr::from_ptr(p) }
        .to_string_lossy()
        .into_owned()
}

/// Answers the current request with `status` (headers, text body) and sends it: the request
/// is then not dispatched.
fn answer(
    ctx: &gst_rtsp_server::RTSPContext,
    req: &Msg,
    status: u32,
    reason: &str,
    headers: &[(&str, String)],
    body: Option<&str>,
) {
    let (Some(resp), Some(client)) = (ctx.response(), ctx.client()) else {
        return;
    };
    let p: *const gst_rtsp::ffi::GstRTSPMessage = resp.to_glib_none().0;
    // SAFETY: the context's response, valid during the request.
    let Some(msg) = (unsafe { Msg::from_ptr(p as *mut _) }) else {
        return;
    };
    msg.reset_response(status, reason, Some(req));
    for (k, v) in headers {
        msg.add_header(k, v);
    }
    if let Some(b) = body {
        msg.add_header("Content-Type", "text/plain");
        msg.set_body(b.as_bytes());
    }
    let session: *mut gst_rtsp_server::ffi::GstRTSPSession = ctx
        .session()
        .map_or(std::ptr::null_mut(), |s| s.to_glib_none().0);
    // SAFETY: valid client, session (or NULL) and message; gst does not take ownership.
    unsafe {
        gst_rtsp_server::ffi::gst_rtsp_client_send_message(
            client.to_glib_none().0,
            session,
            msg.as_ptr(),
        );
    }
}

/// The server's check of a request before gst-rtsp-server dispatches it (`auth.check.url`):
/// false when it answered the request itself (401, 403, 404, 455).
pub fn check_request(ctx: &gst_rtsp_server::RTSPContext) -> bool {
    AUTHED.with(|a| a.borrow_mut().take());
    let Some(req) = request_of(ctx) else {
        return true;
    };
    let Some((method, uri)) = req.request_line() else {
        return true;
    };
    if !is_publish(&uri) || method == METHOD_OPTIONS || ctx.session().is_some() {
        return true;
    }
    let Some(client) = ctx
        .client()
        .and_then(|c| c.downcast_ref::<crate::rtsp::client::SatipClient>())
    else {
        return true;
    };
    let core = client.core().clone();
    let path = crate::rtsp::routing::uri_path(&uri);
    let Some(mount) = core.publishers.by_path(path) else {
        // Not configured: no factory, gst-rtsp-server answers 404.
        return true;
    };
    let peer = crate::rtsp::client::connection_peer(client.upcast_ref());
    let peer_ip = peer
        .as_deref()
        .and_then(|p| p.parse::<std::net::SocketAddr>().ok())
        .map(|a| a.ip());
    let publishing = method == METHOD_ANNOUNCE
        || method == METHOD_RECORD
        || (method == METHOD_SETUP
            && req
                .header("Transport")
                .is_some_and(|t| is_record_transport(&t)));
    let users = if publishing {
        &mount.config.publisher
    } else {
        &mount.config.reader
    };
    if publishing && users.is_empty() {
        let why = format!("nobody may publish to {}", mount.published.mount());
        mount.published.refused(&why);
        answer(ctx, &req, 403, "Forbidden", &[], Some(&format!("{why}\n")));
        return false;
    }
    let mut user = String::new();
    if !users.is_empty() {
        let authorization = req.header("Authorization");
        match core.publishers.auth.check(
            users,
            &method_name(method),
            authorization.as_deref(),
            peer_ip,
        ) {
            Ok(u) => user = u,
            Err(Refusal::Unauthorized { stale, why }) => {
                if authorization.is_some() && !stale {
                    gst::warning!(CAT, "{}: 401 to {peer:?}: {why}", mount.published.mount());
                    eprintln!(
                        "dvb2ip: publish {}: 401 to {}: {why}",
                        mount.published.mount(),
                        peer.as_deref().unwrap_or("?")
                    );
                    if publishing {
                        mount.published.refused(&format!("401: {why}"));
                    }
                }
                let headers: Vec<(&str, String)> = core
                    .publishers
                    .auth
                    .challenges(users, stale)
                    .into_iter()
                    .map(|c| ("WWW-Authenticate", c))
                    .collect();
                answer(ctx, &req, 401, "Unauthorized", &headers, None);
                return false;
            }
            Err(Refusal::Forbidden(why)) => {
                if publishing {
                    mount.published.refused(&format!("403: {why}"));
                }
                answer(ctx, &req, 403, "Forbidden", &[], Some(&format!("{why}\n")));
                return false;
            }
            Err(Refusal::BadRequest(why)) => {
                answer(
                    ctx,
                    &req,
                    400,
                    "Bad Request",
                    &[],
                    Some(&format!("{why}\n")),
                );
                return false;
            }
        }
    }
    if method == METHOD_ANNOUNCE {
        if let Some(holder) = mount.published.holder() {
            let why = format!(
                "{} already has a publisher (from {holder})",
                mount.published.mount()
            );
            mount.published.refused(&format!("455: {why}"));
            eprintln!(
                "dvb2ip: publish: 455 to {}: {why}",
                peer.as_deref().unwrap_or("?")
            );
            answer(
                ctx,
                &req,
                455,
                "Method Not Valid in This State",
                &[("Allow", "OPTIONS, DESCRIBE, SETUP, PLAY, TEARDOWN".into())],
                Some(&format!("{why}\n")),
            );
            return false;
        }
    }
    if !publishing && mount.published.holder().is_none() {
        let why = format!("nobody is publishing to {}", mount.published.mount());
        answer(ctx, &req, 404, "Not Found", &[], Some(&format!("{why}\n")));
        return false;
    }
    AUTHED.with(|a| *a.borrow_mut() = Some((user, peer.unwrap_or_default())));
    true
}

/// Finishes the answer to a request on a publish URI whose media could not be constructed:
/// the status and reason the factory gave (415 for an SDP it cannot take, 455 for a mount
/// taken meanwhile, 404 when the publisher left).
pub(crate) fn finish_response(msg: &Msg, request: Option<&Msg>) {
    let Some((status, reason, body)) = REFUSED.with(|c| c.borrow_mut().take()) else {
        return;
    };
    if msg.status().is_some_and(|s| s < 300) {
        return;
    }
    msg.reset_response(status, reason, request);
    msg.add_header("Content-Type", "text/plain");
    msg.set_body(format!("{body}\n").as_bytes());
}

/// Mounts every `[[publish]]` mount of `core` on `mounts`.
pub fn mount(core: &Arc<Core>, mounts: &gst_rtsp_server::RTSPMountPoints) {
    for m in core.publishers.iter() {
        let path = m.published.mount().to_string();
        mounts.add_factory(&path, ReadFactory::new(m.published.clone()));
        mounts.add_factory(
            &format!("{RECORD_PREFIX}{path}"),
            RecordFactory::new(m.clone()),
        );
        gst::info!(CAT, "publish mount {path}");
    }
}

/// The receiving chain of one announced stream: elements after the depayloader (none for
/// MP2T), by RTP encoding name.
fn chain_of(encoding: &str) -> Option<(&'static str, &'static str)> {
    Some(match encoding {
        "MP2T" => ("rtpmp2tdepay", ""),
        "H264" => ("rtph264depay", "h264parse config-interval=-1"),
        "H265" => ("rtph265depay", "h265parse config-interval=-1"),
        "MPV" => ("rtpmpvdepay", "mpegvideoparse"),
        "MPA" => ("rtpmpadepay", "mpegaudioparse"),
        "MPEG4-GENERIC" => ("rtpmp4gdepay", "aacparse"),
        "MP4A-LATM" => ("rtpmp4adepay", "aacparse"),
        "AC3" => ("rtpac3depay", "ac3parse"),
        "OPUS" => ("rtpopusdepay", "opusparse"),
        _ => return None,
    })
}

/// The RTP encoding names of the announced SDP's streams, in order.
fn encodings(sdp: &gst_rtsp_server::gst_sdp::SDPMessageRef) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    for (i, m) in sdp.medias().enumerate() {
        let fmt = m
            .format(0)
            .ok_or_else(|| format!("m= line {i} has no format"))?;
        let mut enc = m
            .attributes()
            .filter(|a| a.key() == "rtpmap")
            .filter_map(|a| a.value().map(str::to_owned))
            .find_map(|v| {
                let (pt, rest) = v.trim().split_once(' ')?;
                (pt == fmt).then(|| rest.split('/').next().unwrap_or("").to_ascii_uppercase())
            });
        if enc.is_none() {
            enc = match fmt {
                "33" => Some("MP2T".into()),
                "14" => Some("MPA".into()),
                "32" => Some("MPV".into()),
                _ => None,
            };
        }
        out.push(enc.ok_or_else(|| format!("stream {i}: payload type {fmt} without rtpmap"))?);
    }
    if out.is_empty() {
        return Err("the SDP has no stream".into());
    }
    Ok(out)
}

/// The launch line of a record media for the announced `encodings`.
fn record_launch(encodings: &[String]) -> Result<String, String> {
    const SINK: &str =
        "appsink name=sink sync=false async=false max-buffers=256 drop=false emit-signals=false";
    if encodings.len() == 1 && encodings[0] == "MP2T" {
        return Ok(format!("rtpmp2tdepay name=depay0 ! {SINK}"));
    }
    let mut line = format!("mpegtsmux name=mux alignment=7 ! {SINK}");
    for (i, e) in encodings.iter().enumerate() {
        let (depay, parse) = chain_of(e)
            .filter(|(_, p)| !p.is_empty())
            .ok_or_else(|| {
                if e == "MP2T" {
                    "an MP2T stream must be the only stream".to_string()
                } else {
                    format!("stream {i}: RTP encoding {e} is not supported (H264, H265, MPV, MPA, MPEG4-GENERIC, MP4A-LATM, AC3, OPUS, or MP2T alone)")
                }
            })?;
        line.push_str(&format!(" {depay} name=depay{i} ! {parse} ! queue ! mux."));
    }
    Ok(line)
}

/// `n` TS null packets (PID 0x1FFF), which every demuxer skips.
fn null_packets(n: usize) -> Vec<u8> {
    let mut p = [0xffu8; 188];
    p[..4].copy_from_slice(&[0x47, 0x1f, 0xff, 0x10]);
    p.repeat(n)
}

/// Feeds one reader's `appsrc`.
struct AppSrcReader(gst_app::AppSrc);

impl Reader for AppSrcReader {
    fn push(&self, ts: &[u8]) -> bool {
        // Refused only while the media stops; a full queue drops its oldest (leaky).
        let _ = self.0.push_buffer(gst::Buffer::from_slice(ts.to_vec()));
        true
    }

    fn end(&self) {
        let _ = self.0.end_of_stream();
    }
}

mod imp {
    use super::*;

    #[derive(Default)]
    pub struct ReadFactory {
        pub published: std::sync::OnceLock<Arc<Published>>,
    }

    #[glib::object_subclass]
    impl ObjectSubclass for ReadFactory {
        const NAME: &'static str = "Dvb2IpPublishReadFactory";
        type Type = super::ReadFactory;
        type ParentType = gst_rtsp_server::RTSPMediaFactory;
    }

    impl ObjectImpl for ReadFactory {
        fn constructed(&self) {
            self.parent_constructed();
            let f = self.obj();
            f.set_shared(false);
            f.set_latency(0);
            f.set_suspend_mode(gst_rtsp_server::RTSPSuspendMode::None);
            f.set_protocols(gst_rtsp::RTSPLowerTrans::UDP | gst_rtsp::RTSPLowerTrans::TCP);
        }
    }

    impl RTSPMediaFactoryImpl for ReadFactory {
        fn create_element(&self, _url: &gst_rtsp::RTSPUrl) -> Option<gst::Element> {
            let published = self.published.get()?.clone();
            REFUSED.with(|c| c.borrow_mut().take());
            let bin = gst::Bin::builder().name("live").build();
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
                .ok()?;
            bin.add_many([src.upcast_ref(), &pay]).ok()?;
            src.link(&pay).ok()?;
            // Null packets first: gst-rtsp-server prepares the media (DESCRIBE) in the
            // connections' main loop and waits for data to reach its sinks; a publisher sending
            // over TCP is read in that same loop, so the media must not wait for its data.
            let _ = src.push_buffer(gst::Buffer::from_slice(null_packets(7)));
            match published.attach(Arc::new(AppSrcReader(src))) {
                Ok(reader) => {
                    // SAFETY: HOLD_KEY only ever holds a ReaderHandle on a read media.
                    unsafe { bin.set_data(HOLD_KEY, reader) };
                    Some(bin.upcast())
                }
                Err(why) => {
                    REFUSED.with(|c| *c.borrow_mut() = Some((404, "Not Found", why)));
                    None
                }
            }
        }

        fn media_configure(&self, media: &gst_rtsp_server::RTSPMedia) {
            self.parent_media_configure(media);
            // SAFETY: HOLD_KEY only ever holds a ReaderHandle on a read media.
            let reader: Option<ReaderHandle> = unsafe { media.element().steal_data(HOLD_KEY) };
            let slot = Arc::new(Mutex::new(reader));
            let s = slot.clone();
            media.connect_unprepared(move |_| {
                s.lock().unwrap().take();
            });
            // SAFETY: the key only ever holds this type on a media.
            unsafe { media.set_data(HOLD_KEY, slot) };
        }
    }

    #[derive(Default)]
    pub struct RecordFactory {
        pub mount: std::sync::OnceLock<Arc<Mount>>,
    }

    #[glib::object_subclass]
    impl ObjectSubclass for RecordFactory {
        const NAME: &'static str = "Dvb2IpPublishRecordFactory";
        type Type = super::RecordFactory;
        type ParentType = gst_rtsp_server::RTSPMediaFactory;
    }

    impl ObjectImpl for RecordFactory {
        fn constructed(&self) {
            self.parent_constructed();
            let f = self.obj();
            f.set_transport_mode(gst_rtsp_server::RTSPTransportMode::RECORD);
            f.set_shared(false);
            f.set_latency(200);
            f.set_suspend_mode(gst_rtsp_server::RTSPSuspendMode::None);
            f.set_protocols(gst_rtsp::RTSPLowerTrans::UDP | gst_rtsp::RTSPLowerTrans::TCP);
        }
    }

    impl RTSPMediaFactoryImpl for RecordFactory {
        fn create_element(&self, _url: &gst_rtsp::RTSPUrl) -> Option<gst::Element> {
            let mount = self.mount.get()?.clone();
            REFUSED.with(|c| c.borrow_mut().take());
            let refuse = |status, reason, why: String| {
                gst::warning!(CAT, "{}: {status} {why}", mount.published.mount());
                eprintln!(
                    "dvb2ip: publish {}: {status}: {why}",
                    mount.published.mount()
                );
                REFUSED.with(|c| *c.borrow_mut() = Some((status, reason, why)));
                None
            };
            let Some((user, peer)) = AUTHED.with(|a| a.borrow().clone()) else {
                return refuse(401, "Unauthorized", "not authenticated".into());
            };
            // The announced SDP: the body of the current request.
            let body = gst_rtsp_server::RTSPContext::with_current_context(|ctx| {
                request_of(ctx).map(|r| r.body())
            })
            .flatten()
            .unwrap_or_default();
            let sdp = match gst_rtsp_server::gst_sdp::SDPMessage::parse_buffer(&body) {
                Ok(s) => s,
                Err(_) => return refuse(400, "Bad Request", "the SDP cannot be parsed".into()),
            };
            let line = match encodings(&sdp).and_then(|e| record_launch(&e)) {
                Ok(l) => l,
                Err(why) => return refuse(415, "Unsupported Media Type", why),
            };
            let bin = match gst::parse::bin_from_description(&line, false) {
                Ok(b) => b,
                Err(e) => {
                    return refuse(
                        415,
                        "Unsupported Media Type",
                        format!("cannot receive these streams ({line}): {e}"),
                    )
                }
            };
            let claim = match mount.published.claim(&peer, &user) {
                Ok(c) => c,
                Err(why) => return refuse(455, "Method Not Valid in This State", why),
            };
            let slot: Arc<Mutex<Option<Claim>>> = Arc::new(Mutex::new(Some(claim)));
            let sink = bin
                .by_name("sink")
                .and_then(|s| s.downcast::<gst_app::AppSink>().ok())?;
            let feed = slot.clone();
            sink.set_callbacks(
                gst_app::AppSinkCallbacks::builder()
                    .new_sample(move |s| {
                        let sample = s.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                        let guard = feed.lock().unwrap();
                        let Some(claim) = guard.as_ref() else {
                            return Err(gst::FlowError::Flushing);
                        };
                        if let Some(b) = sample.buffer() {
                            if let Ok(m) = b.map_readable() {
                                claim.ingest(&m);
                            }
                        }
                        if let Some(list) = sample.buffer_list() {
                            for b in list.iter() {
                                if let Ok(m) = b.map_readable() {
                                    claim.ingest(&m);
                                }
                            }
                        }
                        Ok(gst::FlowSuccess::Ok)
                    })
                    .build(),
            );
            gst::info!(CAT, "{}: receiving {line}", mount.published.mount());
            // RTP reaching the depayloaders is the publisher's sign of life.
            let last_rtp = Arc::new(Mutex::new(None));
            for i in 0.. {
                let Some(pad) = bin
                    .by_name(&format!("depay{i}"))
                    .and_then(|d| d.static_pad("sink"))
                else {
                    break;
                };
                let last = last_rtp.clone();
                pad.add_probe(
                    gst::PadProbeType::BUFFER | gst::PadProbeType::BUFFER_LIST,
                    move |_, _| {
                        *last.lock().unwrap() = Some(std::time::Instant::now());
                        gst::PadProbeReturn::Ok
                    },
                );
            }
            let watch = Watch {
                peer: peer.parse::<std::net::SocketAddr>().ok().map(|a| a.ip()),
                last_rtp,
            };
            // SAFETY: HOLD_KEY only ever holds this type on a record media.
            unsafe { bin.set_data(HOLD_KEY, slot) };
            // SAFETY: WATCH_KEY only ever holds a Watch on a record media.
            unsafe { bin.set_data(WATCH_KEY, watch) };
            Some(bin.upcast())
        }

        fn media_configure(&self, media: &gst_rtsp_server::RTSPMedia) {
            self.parent_media_configure(media);
            // SAFETY: HOLD_KEY only ever holds this type on a record media.
            let slot: Option<Arc<Mutex<Option<Claim>>>> =
                unsafe { media.element().steal_data(HOLD_KEY) };
            let Some(slot) = slot else {
                return;
            };
            // The publisher leaves with its media: TEARDOWN, connection closed, timeout.
            let s = slot.clone();
            media.connect_unprepared(move |_| {
                s.lock().unwrap().take();
            });
            // SAFETY: WATCH_KEY only ever holds a Watch on a record media.
            let watch: Option<Watch> = unsafe { media.element().steal_data(WATCH_KEY) };
            if let (Some(watch), Some(mount)) = (watch, self.mount.get()) {
                // UDP media only from the RTSP peer: the media's udpsrcs (made now or at
                // SETUP) drop and count anything else.
                if let (Some(peer), Some(pipeline)) = (
                    watch.peer,
                    media
                        .element()
                        .parent()
                        .and_then(|p| p.downcast::<gst::Bin>().ok()),
                ) {
                    let published = mount.published.clone();
                    for e in pipeline.iterate_recurse().into_iter().flatten() {
                        guard_udpsrc(&e, peer, &published);
                    }
                    pipeline.connect_deep_element_added(move |_, _, e| {
                        guard_udpsrc(e, peer, &published)
                    });
                }
                // A publisher silent for PUBLISHER_SILENCE is gone: its claim ends.
                let (s, last, name) = (
                    slot.clone(),
                    watch.last_rtp,
                    mount.published.mount().to_owned(),
                );
                std::thread::Builder::new()
                    .name("dvb2ip-publish-watch".into())
                    .spawn(move || loop {
                        std::thread::sleep(std::time::Duration::from_millis(250));
                        let mut claim = s.lock().unwrap();
                        if claim.is_none() {
                            return;
                        }
                        let silent = last.lock().unwrap().is_some_and(|t: std::time::Instant| {
                            t.elapsed() >= PUBLISHER_SILENCE
                        });
                        if silent {
                            let c = claim.take();
                            drop(claim);
                            eprintln!(
                                "dvb2ip: publish {name}: no RTP from the publisher for {} s: it is gone, the mount is free",
                                PUBLISHER_SILENCE.as_secs()
                            );
                            drop(c);
                            return;
                        }
                    })
                    .ok();
            }
            // SAFETY: the key only ever holds this type on a media.
            unsafe { media.set_data(HOLD_KEY, slot) };
        }
    }
}

glib::wrapper! {
    /// Readers of a publish mount: a media per reader, fed by the mount's published source.
    pub struct ReadFactory(ObjectSubclass<imp::ReadFactory>) @extends gst_rtsp_server::RTSPMediaFactory;
}

impl ReadFactory {
    pub fn new(published: Arc<Published>) -> Self {
        let f: Self = glib::Object::new();
        let _ = f.imp().published.set(published);
        f
    }
}

glib::wrapper! {
    /// The publisher of a mount: a RECORD media receiving the announced streams.
    pub struct RecordFactory(ObjectSubclass<imp::RecordFactory>) @extends gst_rtsp_server::RTSPMediaFactory;
}

impl RecordFactory {
    pub fn new(mount: Arc<Mount>) -> Self {
        let f: Self = glib::Object::new();
        let _ = f.imp().mount.set(mount);
        f
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_transports_and_launch_lines() {
        assert!(is_record_transport(
            "RTP/AVP/UDP;unicast;client_port=5000-5001;mode=record"
        ));
        assert!(is_record_transport(
            "RTP/AVP/TCP;unicast;interleaved=0-1;mode=\"RECORD\""
        ));
        assert!(!is_record_transport(
            "RTP/AVP;unicast;client_port=5000-5001"
        ));
        assert!(is_publish("rtsp://h:1/live/x/streamid=0"));
        assert!(!is_publish("rtsp://h:1/ch/x"));
        let l = record_launch(&["H264".into(), "MPEG4-GENERIC".into()]).unwrap();
        assert!(l.contains("rtph264depay name=depay0"));
        assert!(l.contains("rtpmp4gdepay name=depay1"));
        assert!(record_launch(&["MP2T".into()])
            .unwrap()
            .starts_with("rtpmp2tdepay name=depay0"));
        assert!(record_launch(&["MP2T".into(), "H264".into()]).is_err());
        assert!(record_launch(&["VP8".into()]).unwrap_err().contains("VP8"));
    }
}
