//! The RTSP client subclass: SAT>IP rules on top of gst-rtsp-server.
//!
//! gst-rtsp-server parses requests, manages sessions, transports, RTP and RTCP. This subclass
//! routes SAT>IP URLs (`make_path_from_uri`): a SETUP without session asking for unicast
//! RTP/UDP creates its [`SatipStream`] there and goes to the shared unicast media, later
//! requests of that session follow it, everything else goes to the SAT>IP factory (a media
//! per stream). It refuses bad queries before any stream is built, applies PLAY queries to the
//! running stream, builds the SDP, and finishes every response on the `send-message` signal:
//! SAT>IP error bodies (`text/parameters`), `com.ses.streamID`, `Public`, `RTP-Info`,
//! `Content-Base`, and a direct stream's own `ssrc`.
//!
//! A refusal is decided in a vfunc, stored as a pending [`Answer`] keyed by the request's CSeq,
//! and gst-rtsp-server is made to answer with some error status; `send-message` then replaces
//! that response by the stored answer.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use gst::glib;
use gst::glib::translate::{from_glib, from_glib_none, ToGlibPtr};
use gst::prelude::*;
use gst_rtsp_server::gst_rtsp::{self, RTSPStatusCode};
use gst_rtsp_server::prelude::*;
use gst_rtsp_server::subclass::prelude::*;
use gst_rtsp_server::{RTSPContext, RTSPMedia, RTSPSession};
use gstdvb2ip::proto::satip::{
    parse_transport, Change, Delivery, Query, QueryError, Resource, StreamSpec, Target,
    TransportSpec, ERROR_CONTENT_TYPE,
};

use super::direct::{dest_of, SatipStream, UNICAST_MOUNT};
use super::message::{
    Msg, METHOD_ANNOUNCE, METHOD_DESCRIBE, METHOD_INVALID, METHOD_OPTIONS, METHOD_PAUSE,
    METHOD_PLAY, METHOD_RECORD, METHOD_SETUP, METHOD_TEARDOWN,
};
use super::routing::{base_url, route, uri_host, Route, MAX_PIDS, REFUSED_PATH, SATIP_MOUNT};
use super::sdp::{blocks, sdp_in};
use super::CAT;
use crate::core::Core;
use crate::streams::table::{Entry, StreamTable};

/// The methods of SAT>IP (`Public:`).
pub const PUBLIC: &str = "OPTIONS, DESCRIBE, SETUP, PLAY, TEARDOWN";

/// Seconds after the last session of a connection ended (TEARDOWN or timeout) before the
/// server closes it; gst-rtsp-server closes one second after this count (§3.1: 10 s).
const POST_SESSION_TIMEOUT_S: i32 = 9;

/// A complete answer decided before gst-rtsp-server built its own.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u32,
    pub reason: String,
    pub headers: Vec<(String, String)>,
    /// (Content-Type, body).
    pub body: Option<(String, String)>,
}

impl Answer {
    fn error(e: &QueryError) -> Answer {
        Answer {
            status: u32::from(e.status()),
            reason: e.reason_phrase().into(),
            headers: vec![],
            body: e.body().map(|b| (ERROR_CONTENT_TYPE.to_string(), b)),
        }
    }

    pub fn plain(status: u32, reason: &str) -> Answer {
        Answer {
            status,
            reason: reason.into(),
            headers: vec![],
            body: None,
        }
    }
}

fn status_code(code: u32) -> RTSPStatusCode {
    // SAFETY: any integer is a valid GstRTSPStatusCode (unknown values map to __Unknown).
    unsafe { from_glib(code as i32) }
}

/// The request of `ctx` as a [`Msg`].
fn request_of(ctx: &RTSPContext) -> Option<Msg> {
    let req = ctx.request()?;
    let p: *const gst_rtsp::ffi::GstRTSPMessage = req.to_glib_none().0;
    // SAFETY: the request lives as long as the context, which outlives this call.
    unsafe { Msg::from_ptr(p as *mut _) }
}

/// Method, URI and CSeq of the request being handled.
pub(super) fn current_request() -> Option<(u32, String, Option<String>)> {
    RTSPContext::with_current_context(|ctx| {
        let req = request_of(ctx)?;
        let (m, uri) = req.request_line()?;
        Some((m, uri, req.header("CSeq")))
    })
    .flatten()
}

fn current_has_session() -> bool {
    RTSPContext::with_current_context(|ctx| ctx.session().is_some()).unwrap_or(false)
}

/// The address of the connection of `client`: the peer's (`local == false`) or the server's
/// own end (`local == true`), as text without port.
fn connection_ip(client: &gst_rtsp_server::RTSPClient, local: bool) -> Option<String> {
    let c: *mut gst_rtsp_server::ffi::GstRTSPClient = client.to_glib_none().0;
    // SAFETY: a valid client; the connection (when set) lives as long as the client, and the
    // strings and socket it hands out are borrowed for these calls only.
    unsafe {
        let conn = gst_rtsp_server::ffi::gst_rtsp_client_get_connection(c);
        if conn.is_null() {
            return None;
        }
        if !local {
            let ip = gst_rtsp::ffi::gst_rtsp_connection_get_ip(conn);
            return (!ip.is_null())
                .then(|| std::ffi::CStr::from_ptr(ip).to_string_lossy().into_owned());
        }
        let sock = gst_rtsp::ffi::gst_rtsp_connection_get_read_socket(conn);
        if sock.is_null() {
            return None;
        }
        let sock: gst_rtsp_server::gio::Socket = from_glib_none(sock);
        let addr = sock.local_address().ok()?;
        let addr = addr
            .downcast::<gst_rtsp_server::gio::InetSocketAddress>()
            .ok()?;
        Some(addr.address().to_str().to_string())
    }
}

/// The peer's `address:port` of the connection of `client`.
pub(crate) fn connection_peer(client: &gst_rtsp_server::RTSPClient) -> Option<String> {
    let c: *mut gst_rtsp_server::ffi::GstRTSPClient = client.to_glib_none().0;
    // SAFETY: as in `connection_ip`: the connection lives as long as the client, its socket
    // is borrowed for this call only.
    let sock: gst_rtsp_server::gio::Socket = unsafe {
        let conn = gst_rtsp_server::ffi::gst_rtsp_client_get_connection(c);
        if conn.is_null() {
            return None;
        }
        let sock = gst_rtsp::ffi::gst_rtsp_connection_get_read_socket(conn);
        if sock.is_null() {
            return None;
        }
        from_glib_none(sock)
    };
    let addr = sock
        .remote_address()
        .ok()?
        .downcast::<gst_rtsp_server::gio::InetSocketAddress>()
        .ok()?;
    let ip: std::net::IpAddr = addr.address().to_str().parse().ok()?;
    Some(std::net::SocketAddr::new(ip, addr.port()).to_string())
}

/// Ends session `id` of `pool` as a TEARDOWN would (the web UI's disconnect): its media stop,
/// its frontends are released, a later request naming it gets 454.
pub fn end_session(pool: &gst_rtsp_server::RTSPSessionPool, id: &str) {
    let Some(session) = pool.find(id) else {
        return;
    };
    gst::info!(CAT, "disconnected by an administrator: ending session {id}");
    session.filter(Some(&mut |_, sm| {
        let _ = sm.set_state(gst::State::Null);
        gst_rtsp_server::RTSPFilterResult::Remove
    }));
    let _ = pool.remove(&session);
}

/// References to a connection's socket left, ours included, once gst-rtsp-server 1.22 closed
/// the connection itself (measured: 2; 4 while its connection still holds the socket).
const GST_CLOSED_SOCKET_REFS: u32 = 2;

/// gst-rtsp-server's line buffer: a request line is cut after this many bytes, less one.
const GST_MAX_LINE: usize = 4096;

/// The answer to a request of another RTSP version than 1.0.
const VERSION_NOT_SUPPORTED: &[u8] = b"RTSP/1.0 505 RTSP Version Not Supported\r\n\
Connection: close\r\nContent-Type: text/plain\r\nContent-Length: 27\r\n\r\n\
This server speaks RTSP/1.0";

/// Writes `bytes` to socket `fd` without waiting (what does not fit is dropped).
fn send_now(fd: i32, bytes: &[u8]) {
    // SAFETY: `fd` is an open socket; send only reads `bytes`.
    unsafe {
        libc::send(
            fd,
            bytes.as_ptr().cast(),
            bytes.len(),
            libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
        );
    }
}

/// The socket of a connection whose reading gst-rtsp-server stopped while the peer is still
/// there: a request it could not read. `None` for a peer that closed (end of stream or
/// reset) or a connection gst-rtsp-server closed itself (its socket is closed then).
fn unread_close_fd(sock: &gst_rtsp_server::gio::Socket) -> Option<i32> {
    use gst_rtsp_server::gio::prelude::*;
    if sock.is_closed() {
        return None;
    }
    let fd = std::os::fd::AsRawFd::as_raw_fd(&sock.fd());
    if fd < 0 {
        return None;
    }
    // SAFETY: `fd` is the open socket of `sock`; recv writes at most one byte into `b`.
    unsafe {
        let mut b = [0u8; 1];
        let n = libc::recv(
            fd,
            b.as_mut_ptr().cast(),
            1,
            libc::MSG_PEEK | libc::MSG_DONTWAIT,
        );
        let err = std::io::Error::last_os_error().kind();
        (n > 0 || (n < 0 && err == std::io::ErrorKind::WouldBlock)).then_some(fd)
    }
}

/// Whether the connection of `client` is an RTSP-over-HTTP tunnel (its read source is
/// replaced when the tunnel's halves are joined: no sign of a stopped watch).
fn tunneled(client: &gst_rtsp_server::RTSPClient) -> bool {
    let c: *mut gst_rtsp_server::ffi::GstRTSPClient = client.to_glib_none().0;
    // SAFETY: a valid client; its connection, when set, lives as long as the client.
    unsafe {
        let conn = gst_rtsp_server::ffi::gst_rtsp_client_get_connection(c);
        !conn.is_null() && gst_rtsp::ffi::gst_rtsp_connection_is_tunneled(conn) != 0
    }
}

/// Name GIO gives the pollable source gst-rtsp-server's watch reads a connection with.
const READ_SOURCE_NAME: &str = "GPollableSource";

/// Interval of the sentinel source: it never has anything to do (about 49 days; when it
/// fires, its parent only finds nothing to read).
const SENTINEL_INTERVAL_MS: u64 = u32::MAX as u64;

/// Lives in a child source of gst-rtsp-server's read source of a connection, which GLib
/// destroys with its parent: dropped when the watch stops reading the connection, it has the
/// client look why in its own context (see `on_read_stopped`).
struct ReadStopped {
    client: glib::WeakRef<SatipClient>,
    context: glib::MainContext,
}

impl ReadStopped {
    /// Keeps `self` in the closure that owns it.
    fn held(&self) {}
}

impl Drop for ReadStopped {
    fn drop(&mut self) {
        // Not now: the watch is in the middle of its own teardown (its `closed` signal, when
        // it sends one, comes after this).
        let client = self.client.clone();
        glib::idle_source_new(
            Some("dvb2ip-read-stopped"),
            glib::Priority::DEFAULT,
            move || {
                if let Some(c) = client.upgrade() {
                    c.imp().on_read_stopped();
                }
                glib::ControlFlow::Break
            },
        )
        .attach(Some(&self.context));
    }
}

/// A weak reference to a connection's socket, kept by its client across its threads: it
/// lives as long as gst-rtsp-server's connection holds it, i.e. until gst-rtsp-server closes
/// the connection itself (when the peer closes, a timeout fires or the client is closed), and
/// is still there when the connection only stopped reading on a request it could not read.
pub struct SocketRef(glib::WeakRef<gst_rtsp_server::gio::Socket>);

impl SocketRef {
    fn get(&self) -> Option<gst_rtsp_server::gio::Socket> {
        self.0.upgrade()
    }
}

// SAFETY: GWeakRef is thread-safe; of the GSocket only `g_socket_is_closed` and
// `g_socket_get_fd` are used, which are; the reference count is atomic.
unsafe impl Send for SocketRef {}
// SAFETY: as above; no method takes `&mut`.
unsafe impl Sync for SocketRef {}

/// Key of the address of the client that created a session (a `String` on the session).
const SESSION_OWNER_KEY: &str = "dvb2ip-session-owner";

/// The address of the client that created `session`.
fn session_owner(session: &RTSPSession) -> Option<String> {
    // SAFETY: SESSION_OWNER_KEY only ever holds a String.
    unsafe {
        session
            .data::<String>(SESSION_OWNER_KEY)
            .map(|p| p.as_ref().clone())
    }
}

/// The media a session plays on the SAT>IP mount.
fn session_media(session: &RTSPSession) -> Option<RTSPMedia> {
    let (sm, _) = session.media(SATIP_MOUNT);
    sm.and_then(|sm| sm.media())
}

/// The internal key (in `streams`) of the stream a session plays.
fn session_key(streams: &StreamTable, session: &RTSPSession) -> Option<u64> {
    if let Some(s) = SatipStream::of_session(session) {
        return s.key();
    }
    let media = session_media(session)?;
    streams.lock().unwrap().key_of_media(&media)
}

/// Replaces the `ssrc=` parameter of a `Transport` value.
pub(crate) fn with_ssrc(transport: &str, ssrc: u32) -> String {
    let mut parts: Vec<String> = transport
        .split(';')
        .filter(|p| !p.starts_with("ssrc="))
        .map(str::to_string)
        .collect();
    parts.push(format!("ssrc={ssrc:08X}"));
    parts.join(";")
}

/// The `Transport` header of the request being handled.
fn current_transport_header() -> Option<String> {
    RTSPContext::with_current_context(|ctx| request_of(ctx)?.header("Transport")).flatten()
}

/// Replaces the `Transport` header of the request being handled (only valid before
/// gst-rtsp-server reads it, i.e. from `make_path_from_uri`).
fn set_current_transport_header(value: &str) {
    RTSPContext::with_current_context(|ctx| {
        if let Some(req) = request_of(ctx) {
            req.set_header("Transport", value);
        }
    });
}

/// RTP port and TTL of a free group of the SAT>IP factory's address pool (the address goes
/// back to the pool at once: only its port and TTL are used to complete a client's choice).
fn pool_port_and_ttl(client: &gst_rtsp_server::RTSPClient) -> Option<(u16, u8)> {
    let factory = super::mounts::factory_at(&client.mount_points()?, SATIP_MOUNT)?;
    let pool = factory.address_pool()?;
    let addr = pool
        .acquire_address(
            gst_rtsp_server::RTSPAddressFlags::IPV4
                | gst_rtsp_server::RTSPAddressFlags::MULTICAST
                | gst_rtsp_server::RTSPAddressFlags::EVEN_PORT,
            2,
        )
        .ok()?;
    let p: *const gst_rtsp_server::ffi::GstRTSPAddress = addr.to_glib_none().0;
    // SAFETY: `addr` owns a valid GstRTSPAddress for the duration of these reads.
    let (port, ttl) = unsafe { ((*p).port, (*p).ttl) };
    Some((port, ttl.max(1)))
}

/// Whether an in-session SETUP asks for another transport than the session has (§3.3: the
/// client ports, the delivery, or a named multicast group or port).
fn transport_changes(old: &TransportSpec, new: &TransportSpec) -> bool {
    if old.delivery != new.delivery {
        return true;
    }
    match new.delivery {
        Delivery::Unicast => new.client_port != old.client_port,
        Delivery::Multicast => {
            (new.destination.is_some() && new.destination != old.destination)
                || (new.port.is_some() && new.port != old.port)
        }
        Delivery::Interleaved => new.interleaved.is_some() && new.interleaved != old.interleaved,
    }
}

/// Key of the first error a media's pipeline posted (a `glib::Error` on the media).
const MEDIA_ERROR_KEY: &str = "dvb2ip-media-error";

/// Keeps the first error the pipeline of `media` posts on the media, so that a SETUP whose
/// media could not be prepared says why (see [`reason_503`]). Call from `media-configure`.
pub fn record_media_errors(media: &RTSPMedia) {
    let Some(bus) = media
        .element()
        .parent()
        .and_then(|p| p.downcast::<gst::Pipeline>().ok().and_then(|p| p.bus()))
    else {
        return;
    };
    bus.enable_sync_message_emission();
    let weak = media.downgrade();
    bus.connect_sync_message(Some("error"), move |_, msg| {
        let (Some(media), gst::MessageView::Error(e)) = (weak.upgrade(), msg.view()) else {
            return;
        };
        // SAFETY: MEDIA_ERROR_KEY only ever holds a glib::Error.
        unsafe {
            if media.data::<glib::Error>(MEDIA_ERROR_KEY).is_none() {
                media.set_data(MEDIA_ERROR_KEY, e.error());
            }
        }
    });
}

/// The media of the request being handled (set while gst-rtsp-server answers a SETUP whose
/// media failed to prepare).
fn current_media() -> Option<RTSPMedia> {
    RTSPContext::with_current_context(|ctx| {
        let p: *const gst_rtsp_server::ffi::GstRTSPContext = ctx.to_glib_none().0;
        // SAFETY: a valid context; `media` is NULL or a media it holds a reference to.
        unsafe { from_glib_none((*p).media) }
    })
    .flatten()
}

/// The error [`record_media_errors`] kept for `media`.
fn media_error(media: &RTSPMedia) -> Option<glib::Error> {
    // SAFETY: MEDIA_ERROR_KEY only ever holds a glib::Error.
    unsafe {
        media
            .data::<glib::Error>(MEDIA_ERROR_KEY)
            .map(|e| e.as_ref().clone())
    }
}

/// The body of a 503 gst-rtsp-server answered on its own, from what caused it: a full
/// session table (`No-More: sessions`), the error of the media that could not be prepared
/// (`No-More: frontends` when no frontend was free, otherwise that error's text), or `None`
/// when neither is known (the answer then claims no reason).
fn reason_503(sessions_full: bool, error: Option<&glib::Error>) -> Option<(String, String)> {
    if sessions_full {
        let body = format!("No-More: {}", Resource::Sessions.name());
        return Some((ERROR_CONTENT_TYPE.into(), body));
    }
    let e = error?;
    if e.matches(gst::ResourceError::Busy) {
        let body = format!("No-More: {}", Resource::Frontends.name());
        return Some((ERROR_CONTENT_TYPE.into(), body));
    }
    Some(("text/plain".into(), e.message().to_string()))
}

/// Streams a connection keeps described (DESCRIBE with a query, no SETUP yet); older ones
/// are forgotten.
const MAX_DESCRIBED: usize = 8;

/// The SDP block of a stream a DESCRIBE defined: not tuned, not playing (§4.3).
fn described_block(stream_id: u16, spec: &StreamSpec) -> super::sdp::Block {
    super::sdp::Block {
        stream_id,
        status: gstdvb2ip::satipmapsrc::status_string(Some(spec), None),
        playing: false,
        multicast: None,
    }
}

/// The spec of stream `n` when the connection of the request being handled described it,
/// taken out of that connection's described streams (the factory builds it now).
pub(super) fn take_described_of_current(n: u16) -> Option<StreamSpec> {
    RTSPContext::with_current_context(|ctx| {
        ctx.client()?
            .downcast_ref::<SatipClient>()?
            .imp()
            .take_described(n)
    })
    .flatten()
}

/// Validates a creating query as the factory will use it.
fn check_new(pool: &gstdvb2ip::tuners::Pool, q: &Query) -> Result<StreamSpec, QueryError> {
    let spec = StreamSpec::create(q, MAX_PIDS)?;
    spec.tuning
        .check_capabilities(&gstdvb2ip::satipmapsrc::capabilities_of(pool))?;
    check_pinned_fe(pool, &spec)?;
    Ok(spec)
}

/// A pinned `fe` must be able to tune the stream's delivery system: otherwise the value of
/// `fe` is out of range for this query, 403 `Out-of-Range: fe` (§2.9: a value the server
/// cannot serve, not a resource that may free up, which would be 503), issue 16 item 8.
fn check_pinned_fe(pool: &gstdvb2ip::tuners::Pool, spec: &StreamSpec) -> Result<(), QueryError> {
    use gstdvb2ip::proto::satip::{Attr, Reason};
    use gstdvb2ip::proto::tuner_pool::DelSys;
    let Some(fe) = spec.tuning.fe else {
        return Ok(());
    };
    let Some(want) = spec
        .tuning
        .delivery_system
        .dvbsrc_nick()
        .and_then(DelSys::from_nick)
    else {
        return Ok(());
    };
    let numbers = pool.satip_frontends();
    let frontends = pool.frontends();
    let pinned = numbers
        .get(usize::from(fe).wrapping_sub(1))
        .and_then(|n| frontends.get(n.index));
    match pinned {
        Some(f) if !f.delsys.contains(&want) => {
            Err(QueryError::violation(Attr::Fe, Reason::OutOfRange))
        }
        _ => Ok(()),
    }
}

mod imp {
    use super::*;

    #[derive(Default)]
    pub struct SatipClient {
        pub session_timeout: AtomicU32,
        /// (CSeq of the request, answer to send instead of gst-rtsp-server's).
        pending: Mutex<Option<(Option<String>, Answer)>>,
        /// Sessions set up on this connection with RTP over RTSP: they end with it (§3.9).
        interleaved_sessions: Mutex<Vec<String>>,
        /// (CSeq of the SETUP, the unicast stream it creates): attached to the session media
        /// when the SETUP succeeds, dropped (frontend given back) when it fails.
        pending_stream: Mutex<Option<(Option<String>, Arc<SatipStream>)>>,
        /// Sessions of this connection on other mounts (`/ch/<name>`): (session id, stream
        /// id, mount path). A SAT>IP client (VLC's) gets a `com.ses.streamID` for them and
        /// then controls them by `/stream=N`.
        mount_streams: Mutex<Vec<(String, u16, String)>>,
        /// The server's core (stream table, tuner pool), set by [`super::SatipClient::new`].
        pub core: std::sync::OnceLock<Arc<Core>>,
        /// The connection's slot under the RTSP connection cap, given back when it closes.
        pub permit: Mutex<Option<crate::limits::Permit>>,
        /// Streams a DESCRIBE with a query defined on this connection (stream id, spec),
        /// newest last: no pipeline, no frontend until their owner's SETUP (issue 16 item 2).
        pub described: Mutex<Vec<(u16, StreamSpec)>>,
        /// Sessions created on this connection: they end with it when it closes on a request
        /// gst-rtsp-server could not read (issue 16 item 5).
        conn_sessions: Mutex<Vec<String>>,
        /// The connection's socket, kept from `client-connected` to `closed`: gst-rtsp-server
        /// clears the connection's own reference when it closes it.
        pub(super) socket: Mutex<Option<super::SocketRef>>,
        /// The answer to a request gst-rtsp-server could not read went out (400/414): the
        /// connection closes after it.
        unreadable_answered: std::sync::atomic::AtomicBool,
        /// A [`super::ReadStopped`] sentinel watches the connection's read source.
        read_watched: std::sync::atomic::AtomicBool,
        /// The `closed` signal was emitted (by gst-rtsp-server or by
        /// [`Self::close_when_sessions_end`]).
        closed_seen: std::sync::atomic::AtomicBool,
    }

    #[glib::object_subclass]
    impl ObjectSubclass for SatipClient {
        const NAME: &'static str = "Dvb2IpSatipClient";
        type Type = super::SatipClient;
        type ParentType = gst_rtsp_server::RTSPClient;

        fn class_init(klass: &mut Self::Class) {
            // The bindings do not expose this vfunc; gst-rtsp-server's default is none.
            let k = klass as *mut Self::Class as *mut gst_rtsp_server::ffi::GstRTSPClientClass;
            // SAFETY: the class struct of a GstRTSPClient subclass starts with
            // GstRTSPClientClass; this runs once, while the class is initialized.
            unsafe { (*k).tunnel_http_response = Some(tunnel_http_response) };
        }
    }

    /// Time the answer to an HTTP request on the RTSP port has to leave before the connection
    /// closes: gst-rtsp-server queues it on the connection's watch, whose backlog this
    /// subclass cannot see.
    const HTTP_CLOSE_DELAY_MS: u64 = 500;

    /// HTTP on the RTSP port that is not an RTSP-over-HTTP tunnel (gst-rtsp-server answers
    /// 503 and then keeps reading): the connection closes once that answer is out (issue 16
    /// item 8). The close runs from a timeout of the client's own context.
    unsafe extern "C" fn tunnel_http_response(
        client: *mut gst_rtsp_server::ffi::GstRTSPClient,
        _request: *mut gst_rtsp::ffi::GstRTSPMessage,
        response: *mut gst_rtsp::ffi::GstRTSPMessage,
    ) {
        // SAFETY: gst-rtsp-server hands a valid client and response for this call.
        let status = unsafe { Msg::from_ptr(response) }.and_then(|m| m.status());
        if status == Some(200) {
            return;
        }
        // SAFETY: a valid client pointer of this subclass.
        let client: gst_rtsp_server::RTSPClient = unsafe { from_glib_none(client) };
        gst::debug!(
            CAT,
            obj = client,
            "HTTP request on the RTSP port: {status:?}, closing"
        );
        let weak = client.downgrade();
        let source = glib::timeout_source_new(
            std::time::Duration::from_millis(HTTP_CLOSE_DELAY_MS),
            Some("dvb2ip-close-http"),
            glib::Priority::LOW,
            move || {
                if let Some(c) = weak.upgrade() {
                    c.close();
                }
                glib::ControlFlow::Break
            },
        );
        source.attach(Some(&glib::MainContext::ref_thread_default()));
    }

    /// Runs `f` after [`HTTP_CLOSE_DELAY_MS`] on the calling thread's context (the client's):
    /// time for an answer queued on the connection's watch to leave.
    fn close_later(f: impl FnOnce() + Send + 'static) {
        let mut f = Some(f);
        let source = glib::timeout_source_new(
            std::time::Duration::from_millis(HTTP_CLOSE_DELAY_MS),
            Some("dvb2ip-close"),
            glib::Priority::LOW,
            move || {
                if let Some(f) = f.take() {
                    f();
                }
                glib::ControlFlow::Break
            },
        );
        source.attach(Some(&glib::MainContext::ref_thread_default()));
    }

    impl ObjectImpl for SatipClient {
        fn constructed(&self) {
            self.parent_constructed();
            let weak = self.obj().downgrade();
            self.obj().connect("send-message", false, move |args| {
                let client = weak.upgrade()?;
                let ptr: glib::Pointer = args[2].get().ok()?;
                // SAFETY: the signal's second argument is the GstRTSPMessage about to be sent,
                // valid for the duration of the emission.
                if let Some(msg) = unsafe { Msg::from_ptr(ptr as *mut _) } {
                    client.imp().on_send(&msg);
                }
                None
            });
            self.obj().set_post_session_timeout(POST_SESSION_TIMEOUT_S);
            self.obj().connect_closed(|client| client.imp().on_closed());
        }
    }

    impl SatipClient {
        fn core(&self) -> &Arc<Core> {
            self.core.get().expect("set by SatipClient::new")
        }

        /// The address of the SDP origin: the server's end of the connection, else the host of
        /// the request URI (never a client's `user:pass@` text, issue 16 item 8).
        fn sdp_host(&self, uri: Option<&str>) -> String {
            connection_ip(self.obj().upcast_ref(), true)
                .or_else(|| uri.map(uri_host))
                .unwrap_or_else(|| "0.0.0.0".into())
        }

        /// A 454 when the request names a session another address created (issue 16 item 7).
        ///
        /// A session belongs to the address of the client that created it, not to its
        /// connection: a UDP session outlives its RTSP connection (checklist 67) and its client
        /// comes back on a new one. Another address holding the id gets 454 Session Not Found
        /// (the digest's answer for an invalid session, §3.8) for every request, so the id
        /// alone neither modifies, retunes, refreshes nor ends the session. Joiners are
        /// unaffected: a SETUP on `/stream=N` without `Session` makes a session of their own.
        fn foreign_session(&self) -> Option<Answer> {
            let session = RTSPContext::with_current_context(|c| c.session().cloned()).flatten()?;
            let owner = session_owner(&session)?;
            let caller = connection_ip(self.obj().upcast_ref(), false)?;
            (caller != owner).then(|| {
                gst::info!(
                    CAT,
                    imp = self,
                    "{caller} named session {} of {owner}: 454",
                    session.sessionid().unwrap_or_default()
                );
                Answer::plain(454, "Session Not Found")
            })
        }

        /// A 503 `No-More: sessions` (and a rate-limited log line) when descriptors are
        /// running out: new work that opens some (`what`) must wait (issue 16 item 1).
        fn no_headroom(&self, what: &str) -> Option<Answer> {
            let limits = &self.core().limits;
            if limits.headroom_ok() {
                return None;
            }
            limits.refused(&format!(
                "RTSP {what}: {} of {} descriptors open",
                limits.open_fds(),
                limits.nofile()
            ));
            Some(Answer::error(&QueryError::NoMore(vec![Resource::Sessions])))
        }

        /// The spec of stream `n` when a DESCRIBE on this connection defined it.
        pub(super) fn described_spec(&self, n: u16) -> Option<StreamSpec> {
            let d = self.described.lock().unwrap();
            d.iter().find(|(id, _)| *id == n).map(|(_, s)| s.clone())
        }

        /// Takes stream `n` out of the streams this connection described: its owner's SETUP
        /// creates it now.
        pub(super) fn take_described(&self, n: u16) -> Option<StreamSpec> {
            let mut d = self.described.lock().unwrap();
            let i = d.iter().position(|(id, _)| *id == n)?;
            Some(d.remove(i).1)
        }

        /// Remembers `answer` for the current request; returns the status for the vfunc.
        /// A relay reader over RTP/UDP goes the direct path (src/relay/rtsp_direct.rs): SETUP
        /// names its packets' SSRC, PLAY their first sequence number and RTP time.
        fn relay_direct(&self, msg: &Msg, uri: &str, method: gst_rtsp::ffi::GstRTSPMethod) {
            use crate::relay::rtsp_direct as direct;
            let path = crate::rtsp::routing::uri_path(uri);
            let Some(mount) = self
                .core()
                .relays
                .by_path(path)
                .map(|r| r.config().mount_path())
            else {
                return;
            };
            match method {
                METHOD_SETUP => {
                    if let (Some(ssrc), Some(t)) = (
                        direct::setup_done(self.core(), &mount),
                        msg.header("Transport"),
                    ) {
                        msg.set_header("Transport", &with_ssrc(&t, ssrc));
                    }
                }
                METHOD_PLAY => {
                    if let (Some((seq, rtptime)), Some(info)) =
                        (direct::play_done(&mount), msg.header("RTP-Info"))
                    {
                        msg.set_header("RTP-Info", &direct::rtp_info(&info, seq, rtptime));
                    }
                }
                METHOD_PAUSE => direct::pause_done(&mount),
                _ => {}
            }
        }

        fn refuse(&self, answer: Answer) -> RTSPStatusCode {
            let cseq = current_request().and_then(|(_, _, c)| c);
            // A replacement 200 still has to stop gst-rtsp-server's own handling.
            let code = if answer.status == 200 {
                RTSPStatusCode::NotFound
            } else {
                status_code(answer.status)
            };
            gst::debug!(
                CAT,
                imp = self,
                "refusing with {} {}",
                answer.status,
                answer.reason
            );
            *self.pending.lock().unwrap() = Some((cseq, answer));
            code
        }

        /// The RTSP connection closed: sessions whose RTP went over it end now, as on TEARDOWN
        /// (checklist 68); UDP sessions live on (checklist 67).
        fn on_closed(&self) {
            self.closed_seen.store(true, Ordering::SeqCst);
            self.permit.lock().unwrap().take();
            self.described.lock().unwrap().clear();
            let mut ids = std::mem::take(&mut *self.interleaved_sessions.lock().unwrap());
            let sock = self.socket.lock().unwrap().take();
            // gst-rtsp-server closed the connection itself (`gst_rtsp_client_close`: a
            // timeout, the HTTP answer, shutdown): its connection dropped its references to the
            // socket, of which one more (a stream's) and ours remain. Its watch stopped on the
            // peer's end or a read error instead: the connection still holds the socket.
            let sock = sock
                .and_then(|s| s.get())
                .filter(|s| s.ref_count() > GST_CLOSED_SOCKET_REFS);
            if let Some(fd) = sock.as_ref().and_then(unread_close_fd) {
                // gst-rtsp-server stopped reading on a request it could not read, but the
                // socket stays open while a session holds the client: the peer would wait
                // forever. Answer (505 when nothing was: gst-rtsp-server 1.22 drops requests
                // of other RTSP versions without one), close the socket, and end the
                // connection's sessions (issue 16 items 5 and 8).
                if !self.unreadable_answered.swap(false, Ordering::SeqCst) {
                    send_now(fd, VERSION_NOT_SUPPORTED);
                }
                // SAFETY: a socket of this connection, still open (gst closes it later).
                unsafe { libc::shutdown(fd, libc::SHUT_RDWR) };
                let own = std::mem::take(&mut *self.conn_sessions.lock().unwrap());
                gst::info!(
                    CAT,
                    imp = self,
                    "unreadable request: connection closed, ending sessions {own:?}"
                );
                ids.extend(own);
            }
            self.end_sessions(ids, "connection closed");
        }

        /// Puts a [`super::ReadStopped`] sentinel on the source gst-rtsp-server reads this
        /// connection with (once; call while it dispatches a request, e.g. from `new_session`).
        ///
        /// gst-rtsp-server 1.22 stops reading a connection on a request it cannot read. On a
        /// request of another RTSP version it sends nothing (`error_full` only logs), and when
        /// the connection has a session with RTP over UDP its watch ends without the `closed`
        /// signal (`client_watch_notify` keeps such sessions): no signal or vfunc reaches this
        /// subclass, the peer would wait for ever (issue 16 item 8). The only trace is the
        /// read source being destroyed, which takes the sentinel with it.
        fn watch_reading(&self) {
            if self.read_watched.swap(true, Ordering::SeqCst) {
                return;
            }
            let read = glib::main_current_source();
            let name = read.as_ref().and_then(|s| s.name());
            let (Some(read), Some(context), true) = (
                read.as_ref(),
                read.as_ref().and_then(|s| s.context()),
                name.as_deref() == Some(READ_SOURCE_NAME),
            ) else {
                gst::warning!(
                    CAT,
                    imp = self,
                    "not dispatched by the connection's read source ({name:?}): an unreadable \
                     request on it waits for the session timeout"
                );
                return;
            };
            let stopped = super::ReadStopped {
                client: self.obj().downgrade(),
                context,
            };
            let sentinel = glib::timeout_source_new(
                std::time::Duration::from_millis(SENTINEL_INTERVAL_MS),
                Some("dvb2ip-read-sentinel"),
                glib::Priority::DEFAULT,
                move || {
                    stopped.held();
                    glib::ControlFlow::Continue
                },
            );
            read.add_child_source(&sentinel);
        }

        /// gst-rtsp-server's watch stopped reading this connection (see [`Self::watch_reading`]):
        /// the peer closed it, gst-rtsp-server closed it, or it could not read a request. In
        /// that last case, when [`Self::on_closed`] did not already answer, answer 505 (the
        /// request that is answered by nothing is one of another RTSP version), close the
        /// connection and end its sessions, as for a request too long to read (issue 16 items 5
        /// and 8).
        pub(super) fn on_read_stopped(&self) {
            if self.unreadable_answered.load(Ordering::SeqCst) {
                // gst-rtsp-server answered it (400/414): `on_send` closes the connection.
                return;
            }
            if tunneled(self.obj().upcast_ref()) {
                return;
            }
            let (sock, fd) = {
                let mut slot = self.socket.lock().unwrap();
                // As in `on_closed`: a socket gst-rtsp-server closed has few references left,
                // a peer that left has nothing more to read.
                let sock = slot
                    .as_ref()
                    .and_then(|s| s.get())
                    .filter(|s| s.ref_count() > GST_CLOSED_SOCKET_REFS);
                let Some(fd) = sock.as_ref().and_then(unread_close_fd) else {
                    drop(slot);
                    self.close_when_sessions_end();
                    return;
                };
                slot.take();
                (sock, fd)
            };
            send_now(fd, VERSION_NOT_SUPPORTED);
            // SAFETY: the connection's socket, still open (`sock` holds it).
            unsafe { libc::shutdown(fd, libc::SHUT_RDWR) };
            let mut ids = std::mem::take(&mut *self.conn_sessions.lock().unwrap());
            for id in std::mem::take(&mut *self.interleaved_sessions.lock().unwrap()) {
                if !ids.contains(&id) {
                    ids.push(id);
                }
            }
            gst::info!(
                CAT,
                imp = self,
                "request gst-rtsp-server could not read: 505, connection closed, ending \
                 sessions {ids:?}"
            );
            self.permit.lock().unwrap().take();
            self.described.lock().unwrap().clear();
            self.end_sessions(ids, "unreadable request");
            self.obj()
                .upcast_ref::<gst_rtsp_server::RTSPClient>()
                .close();
            // 1 (ours) when nothing else keeps the descriptor open.
            gst::debug!(
                CAT,
                imp = self,
                "socket references left: {}",
                sock.as_ref().map_or(0, |s| s.ref_count())
            );
        }

        /// The watch ended without `closed` because UDP sessions outlive the connection
        /// (gst-rtsp-server 1.22's `client_watch_notify` keeps them and does not emit it), and
        /// nothing emits it when they end later: the server would keep this client (and its
        /// connection slot) for good, a leak per client that leaves with a UDP session. Emit
        /// `closed` once the last session is gone, as gst-rtsp-server does for a watch that
        /// ends without sessions.
        ///
        /// gst-rtsp-server's finalize asserts that the client's control timer is gone. That
        /// timer comes back when the last session is removed and `post-session-timeout` is
        /// positive, so it is set to -1 first (it only matters while the connection lives). A
        /// session that went before this runs (a race of microseconds against a session
        /// timeout of seconds) leaves the client as it was rather than risk that assertion.
        fn close_when_sessions_end(&self) {
            if self.closed_seen.load(Ordering::SeqCst) {
                return;
            }
            let obj = self.obj();
            let client = obj.upcast_ref::<gst_rtsp_server::RTSPClient>();
            if client.session_filter(None).is_empty() {
                return;
            }
            client.set_post_session_timeout(-1);
            let Some(pool) = client.session_pool() else {
                return;
            };
            let weak = obj.downgrade();
            let context = glib::MainContext::ref_thread_default();
            let handler: Arc<Mutex<Option<glib::SignalHandlerId>>> = Arc::default();
            let slot = handler.clone();
            let id = pool.connect_session_removed(move |pool, _| {
                // After gst-rtsp-server's own handler has let the session go.
                let (weak, pool, slot) = (weak.clone(), pool.downgrade(), slot.clone());
                glib::idle_source_new(
                    Some("dvb2ip-close-after-sessions"),
                    glib::Priority::DEFAULT,
                    move || {
                        let client = weak.upgrade();
                        let done = client.as_ref().is_none_or(|c| {
                            c.imp().closed_seen.load(Ordering::SeqCst)
                                || c.upcast_ref::<gst_rtsp_server::RTSPClient>()
                                    .session_filter(None)
                                    .is_empty()
                        });
                        if !done {
                            return glib::ControlFlow::Break;
                        }
                        if let (Some(p), Some(id)) = (pool.upgrade(), slot.lock().unwrap().take()) {
                            p.disconnect(id);
                        }
                        if let Some(c) = client {
                            if !c.imp().closed_seen.load(Ordering::SeqCst) {
                                gst::info!(
                                    CAT,
                                    obj = c,
                                    "connection gone and its last session ended: closed"
                                );
                                c.emit_by_name::<()>("closed", &[]);
                            }
                        }
                        glib::ControlFlow::Break
                    },
                )
                .attach(Some(&context));
            });
            *handler.lock().unwrap() = Some(id);
        }

        /// Registers the current session in the core's session registry (`core.clients`) after
        /// a successful SETUP, or a PLAY with a query (which may change PIDs or channel).
        fn register_client(&self, msg: &Msg, uri: &str, method: u32, request: Option<&Msg>) {
            let query = uri.split_once('?').map_or("", |(_, q)| q);
            if method == METHOD_PLAY && query.is_empty() {
                return;
            }
            let Some(session) =
                RTSPContext::with_current_context(|c| c.session().cloned()).flatten()
            else {
                return;
            };
            let (Some(id), Some(pool)) = (
                session.sessionid().map(|s| s.to_string()),
                self.obj().session_pool(),
            ) else {
                return;
            };
            let (alive_pool, end_pool) = (pool.downgrade(), pool.downgrade());
            let (alive_id, end_id) = (id.clone(), id.clone());
            // Found on first reading (a direct stream is attached after this SETUP's answer).
            let (bytes_pool, bytes_id) = (pool.downgrade(), id.clone());
            let sent = Mutex::new(None::<crate::rtsp::sent::Sent>);
            self.core().clients.register(crate::clients::NewClient {
                key: Some(id),
                protocol: crate::clients::Protocol::of_transport(
                    &msg.header("Transport").unwrap_or_default(),
                ),
                peer: connection_peer(self.obj().upcast_ref()).unwrap_or_default(),
                user_agent: request
                    .and_then(|r| r.header("User-Agent"))
                    .unwrap_or_default(),
                path: crate::rtsp::routing::uri_path(uri).to_owned(),
                query: query.to_owned(),
                alive: Box::new(move || {
                    alive_pool
                        .upgrade()
                        .is_some_and(|p| p.find(&alive_id).is_some())
                }),
                end: Box::new(move || {
                    if let Some(p) = end_pool.upgrade() {
                        end_session(&p, &end_id);
                    }
                }),
                bytes: Some(Box::new(move || {
                    let mut sent = sent.lock().unwrap();
                    if sent.is_none() {
                        let session = bytes_pool.upgrade().and_then(|p| p.find(&bytes_id))?;
                        // Not known yet (a direct stream not attached): nothing sent yet.
                        let Some(found) = crate::rtsp::sent::of_session(&session) else {
                            return Some(0);
                        };
                        *sent = Some(found);
                    }
                    sent.as_mut().map(crate::rtsp::sent::Sent::read)
                })),
            });
        }

        /// Ends the sessions `ids` (their pipelines stop, frontends are released).
        fn end_sessions(&self, ids: Vec<String>, why: &str) {
            let Some(pool) = self.obj().session_pool() else {
                return;
            };
            for id in ids {
                let Some(session) = pool.find(&id) else {
                    continue;
                };
                gst::info!(CAT, imp = self, "{why}: ending session {id}");
                session.filter(Some(&mut |_, sm| {
                    let _ = sm.set_state(gst::State::Null);
                    gst_rtsp_server::RTSPFilterResult::Remove
                }));
                let _ = pool.remove(&session);
            }
        }

        /// SAT>IP rules of a SETUP's `Transport` (§3.3, §3.4, §3.7): 461 for what SAT>IP does
        /// not have, 503 `No-More: sessions` when the table is full, 455 for a multicast join of
        /// a unicast stream and for transport changes of a playing stream. Completes a
        /// multicast request that names a group but no port or TTL.
        fn check_setup_transport(&self, t: &Target, has_session: bool) -> Option<Answer> {
            // No header: gst-rtsp-server answers 461 (checklist 35).
            let raw = current_transport_header()?;
            let mut spec = match parse_transport(&raw) {
                Ok(s) => s,
                Err(e) => {
                    gst::debug!(CAT, imp = self, "Transport {raw:?}: {e}");
                    return Some(Answer::plain(u32::from(e.status()), e.reason_phrase()));
                }
            };
            if spec.delivery == Delivery::Unicast
                && spec
                    .client_port
                    .is_some_and(|(rtp, rtcp)| rtp == 0 || rtcp == 0)
            {
                // Port 0 is no destination: nothing could be sent (issue 16 item 8).
                gst::debug!(CAT, imp = self, "Transport {raw:?}: client port 0");
                return Some(Answer::plain(461, "Unsupported Transport"));
            }
            if !has_session {
                if let Some(pool) = self.obj().session_pool() {
                    // HTTP streams take places among `max_sessions` too.
                    let max = pool.max_sessions();
                    let http = self.core().sessions.http() as u32;
                    if max > 0 && pool.n_sessions() + http >= max {
                        return Some(Answer::error(&QueryError::NoMore(vec![Resource::Sessions])));
                    }
                }
            }
            let not_valid = || Some(Answer::plain(455, "Method Not Valid in This State"));
            match (t.stream, has_session) {
                (Some(n), false) if spec.delivery == Delivery::Multicast => {
                    let owner = self
                        .core()
                        .streams
                        .lock()
                        .unwrap()
                        .owner_transport(n)
                        .map(|o| o.delivery);
                    if matches!(owner, Some(Delivery::Unicast | Delivery::Interleaved)) {
                        return not_valid();
                    }
                }
                (_, true) => {
                    let session =
                        RTSPContext::with_current_context(|c| c.session().cloned()).flatten();
                    let direct = session.as_ref().and_then(SatipStream::of_session);
                    if direct.is_some() && spec.delivery != Delivery::Unicast {
                        // A unicast RTP/UDP stream has no pipeline for other transports.
                        return not_valid();
                    }
                    if let Some(key) = session
                        .as_ref()
                        .and_then(|s| session_key(&self.core().streams, s))
                    {
                        let key = Some(key);
                        let st = self.core().streams.lock().unwrap();
                        let playing = key
                            .and_then(|k| st.entries.get(&k))
                            .is_some_and(|e| e.playing);
                        let changes = key
                            .and_then(|k| st.transports.get(&k))
                            .is_some_and(|old| transport_changes(old, &spec));
                        if playing && changes {
                            return not_valid();
                        }
                    }
                }
                _ => {}
            }
            if spec.delivery == Delivery::Multicast
                && spec.destination.is_some()
                && (spec.port.is_none() || spec.ttl.is_none())
            {
                if let Some((port, ttl)) = pool_port_and_ttl(self.obj().upcast_ref()) {
                    spec.port.get_or_insert((port, port.saturating_add(1)));
                    spec.ttl.get_or_insert(ttl);
                    set_current_transport_header(&spec.to_header());
                }
            }
            None
        }

        /// A successful SETUP of another mount (`/ch/<name>`): answers as a SAT>IP server
        /// would, with a `com.ses.streamID` that `/stream=N` then names for this session.
        fn on_mount_setup(&self, msg: &Msg, uri: &str) {
            let Some(session) =
                RTSPContext::with_current_context(|c| c.session().cloned()).flatten()
            else {
                return;
            };
            let Some(id) = session.sessionid().map(|s| s.to_string()) else {
                return;
            };
            let Some(mount) = self.obj().mount_points().and_then(|m| {
                crate::rtsp::mounts::mount_of(&m, crate::rtsp::routing::uri_path(uri))
            }) else {
                return;
            };
            let pool = self.obj().session_pool();
            let mut streams = self.mount_streams.lock().unwrap();
            streams.retain(|(s, _, _)| pool.as_ref().is_some_and(|p| p.find(s).is_some()));
            let stream_id = match streams.iter().find(|(s, _, m)| *s == id && *m == mount) {
                Some((_, n, _)) => *n,
                None => {
                    let n = self.core().streams.lock().unwrap().allocate_id();
                    streams.push((id, n, mount));
                    n
                }
            };
            msg.set_header("com.ses.streamID", &stream_id.to_string());
        }

        /// The mount a `/stream=N` request of the current session names, when `N` is a
        /// stream id [`Self::on_mount_setup`] gave that session.
        fn mount_stream_path(&self, n: u16) -> Option<String> {
            let id = RTSPContext::with_current_context(|c| {
                c.session()
                    .and_then(|s| s.sessionid())
                    .map(|s| s.to_string())
            })
            .flatten()?;
            self.mount_streams
                .lock()
                .unwrap()
                .iter()
                .find(|(s, m, _)| *s == id && *m == n)
                .map(|(_, _, path)| path.clone())
        }

        /// Finishes a response about to be sent (see the module comment).
        fn on_send(&self, msg: &Msg) {
            let Some((method, uri, cseq, request_ptr)) = RTSPContext::with_current_context(|ctx| {
                let req = request_of(ctx)?;
                let (m, uri) = req.request_line()?;
                Some((m, uri, req.header("CSeq"), req.as_ptr()))
            })
            .flatten() else {
                return;
            };
            // SAFETY: the request outlives the response being sent.
            let request = unsafe { Msg::from_ptr(request_ptr) };
            // A request gst-rtsp-server could not read (its parser keeps 4,095 bytes of URI
            // and stops there; headers unread, so no CSeq): it answers 400 without a reason
            // and stops reading the connection, which then closes (see `on_closed`). Say why
            // (issue 16 items 5 and 8).
            if msg.status() == Some(400) && cseq.is_none() {
                self.unreadable_answered.store(true, Ordering::SeqCst);
                // The line buffer holds `METHOD URI RTSP/1.0` in 4,095 bytes: a URI this long
                // was cut.
                let (status, reason, body) = if uri.len() + 20 >= GST_MAX_LINE {
                    (
                        414,
                        "Request-URI Too Long",
                        format!("Request line longer than {} bytes", GST_MAX_LINE - 1),
                    )
                } else {
                    (400, "Bad Request", "Malformed request line".to_string())
                };
                msg.reset_response(status, reason, None);
                msg.set_header("Connection", "close");
                msg.add_header("Content-Type", "text/plain");
                msg.set_body(body.as_bytes());
                // With a session the connection would stay open without being read (a session
                // keeps the client): close it once the answer is out, ending its sessions.
                let weak = self.obj().downgrade();
                close_later(move || {
                    if let Some(c) = weak.upgrade() {
                        let own = std::mem::take(&mut *c.imp().conn_sessions.lock().unwrap());
                        c.imp().end_sessions(own, "unreadable request");
                        // The peer sees the end of the stream now (closing the client only
                        // drops gst-rtsp-server's reference to the socket).
                        if let Some(sock) = c.imp().socket.lock().unwrap().take() {
                            if let Some(fd) = sock.get().as_ref().and_then(unread_close_fd) {
                                // SAFETY: the connection's socket, still open.
                                unsafe { libc::shutdown(fd, libc::SHUT_RDWR) };
                            }
                        }
                        c.upcast_ref::<gst_rtsp_server::RTSPClient>().close();
                    }
                });
                return;
            }
            // A method gst-rtsp-server does not know (it answers 400), or ANNOUNCE/RECORD on a
            // SAT>IP URL (it answers 400 or 454 on its own checks): 501 with `Public` (§3.3).
            let satip = matches!(route(&uri), Route::Satip(_));
            if method == METHOD_INVALID
                || (satip && matches!(method, METHOD_ANNOUNCE | METHOD_RECORD))
            {
                self.pending.lock().unwrap().take();
                msg.reset_response(501, "Not Implemented", request.as_ref());
                msg.set_header("Public", PUBLIC);
                return;
            }
            // A unicast stream created for this SETUP: kept only if the SETUP succeeds.
            let new_stream = if method == METHOD_SETUP {
                match self.pending_stream.lock().unwrap().take() {
                    Some((c, s)) if c == cseq => Some(s),
                    _ => None,
                }
            } else {
                None
            };
            let pending = {
                let mut p = self.pending.lock().unwrap();
                match p.take() {
                    Some((c, a)) if c == cseq => Some(a),
                    Some(other) => {
                        // Not for this request: drop it (stale).
                        drop(other);
                        None
                    }
                    None => None,
                }
            };
            if let Some(a) = pending {
                msg.reset_response(a.status, &a.reason, request.as_ref());
                for (k, v) in &a.headers {
                    msg.add_header(k, v);
                }
                if a.status == 501 || a.status == 405 {
                    msg.set_header(
                        if a.status == 501 { "Public" } else { "Allow" },
                        if a.status == 501 {
                            PUBLIC
                        } else {
                            "OPTIONS, DESCRIBE"
                        },
                    );
                }
                if let Some((ct, body)) = &a.body {
                    msg.add_header("Content-Type", ct);
                    msg.set_body(body.as_bytes());
                }
                return;
            }
            if matches!(method, METHOD_SETUP | METHOD_PLAY) && msg.status() == Some(200) {
                self.register_client(msg, &uri, method, request.as_ref());
            }
            if crate::vod::rtsp::is_vod(&uri) {
                let media = current_media();
                let error = media.as_ref().and_then(media_error);
                crate::vod::rtsp::finish_response(
                    &*self.obj(),
                    msg,
                    request.as_ref(),
                    method,
                    media.as_ref(),
                    error,
                );
                return;
            }
            // VLC's SAT>IP client controls a relay session it set up without DESCRIBE by the
            // `/stream=N` its SETUP answer named: the relay mount's.
            let uri = crate::rtsp::routing::uri_path(&uri)
                .strip_prefix("/stream=")
                .and_then(|n| n.parse().ok())
                .and_then(|n| self.mount_stream_path(n))
                .filter(|path| crate::relay::rtsp::is_relay(path))
                .unwrap_or(uri);
            if crate::relay::rtsp::is_relay(&uri) {
                // An upstream that cannot start: 503 with Retry-After (src/relay/rtsp.rs).
                crate::relay::rtsp::finish_response(msg, request.as_ref());
                if msg.status() == Some(200) {
                    self.relay_direct(msg, &uri, method);
                }
            }
            if crate::publish::rtsp::is_publish(&uri) {
                // A media the publish factories refused: their status (src/publish/rtsp.rs).
                crate::publish::rtsp::finish_response(msg, request.as_ref());
            }
            if !matches!(route(&uri), Route::Satip(_)) {
                if method == METHOD_SETUP && msg.status() == Some(200) {
                    self.on_mount_setup(msg, &uri);
                }
                return;
            }
            if request.as_ref().is_some_and(Msg::is_rtsp2) {
                // gst-rtsp-server speaks RTSP/2.0 too; SAT>IP is RTSP/1.0 only.
                msg.reset_response(505, "RTSP Version Not Supported", request.as_ref());
                return;
            }
            let status = msg.status().unwrap_or(0);
            let no_session = request
                .as_ref()
                .is_some_and(|r| r.header("Session").is_none());
            let at_root = matches!(route(&uri), Route::Satip(Ok(ref t)) if t.stream.is_none());
            match (method, status) {
                // PLAY/TEARDOWN on the root URI without a session (§3.3, checklist 56).
                (METHOD_PLAY | METHOD_TEARDOWN, 454) if no_session && at_root => {
                    msg.reset_response(405, "Method Not Allowed", request.as_ref());
                    msg.set_header("Allow", "OPTIONS, DESCRIBE");
                }
                // The connection stays open for a new SETUP; it is closed 10 s after the last
                // session ended (§3.1, checklist 64).
                (METHOD_TEARDOWN, 200) => msg.remove_header("Connection"),
                (_, 503) if msg.header("Content-Type").is_none() => {
                    let http = self.core().sessions.http() as u32;
                    let sessions_full = self.obj().session_pool().is_some_and(|p| {
                        p.max_sessions() > 0 && p.n_sessions() + http >= p.max_sessions()
                    });
                    let error = current_media().as_ref().and_then(media_error);
                    match reason_503(sessions_full && no_session, error.as_ref()) {
                        Some((ct, body)) => {
                            msg.add_header("Content-Type", &ct);
                            msg.set_body(body.as_bytes());
                        }
                        None => gst::warning!(CAT, imp = self, "503 of unknown cause"),
                    }
                }
                (_, 501) => msg.set_header("Public", PUBLIC),
                (METHOD_OPTIONS, 200) => msg.set_header("Public", PUBLIC),
                (METHOD_DESCRIBE, 200) => msg.set_header("Content-Base", &base_url(&uri)),
                (METHOD_SETUP, 200) => {
                    let session =
                        RTSPContext::with_current_context(|c| c.session().cloned()).flatten();
                    let Some(session) = session else { return };
                    if let (Some(s), (Some(sm), _)) = (new_stream, session.media(UNICAST_MOUNT)) {
                        SatipStream::attach(s, &sm);
                    }
                    let key = if let (Some(sm), _) = session.media(UNICAST_MOUNT) {
                        let Some(stream) = SatipStream::of_session_media(&sm) else {
                            return;
                        };
                        stream.setup_done(dest_of(&sm, self.core()));
                        if let Some(t) = msg.header("Transport") {
                            msg.set_header("Transport", &with_ssrc(&t, stream.ssrc()));
                        }
                        stream.key()
                    } else {
                        let Some(media) = session_media(&session) else {
                            return;
                        };
                        crate::rtsp::factory::hook_rtcp(&media);
                        if let Some(t) = session.media(SATIP_MOUNT).0.and_then(|sm| sm.transport(0))
                        {
                            crate::rtsp::factory::setup_done(self.core(), &media, &t);
                        }
                        self.core().streams.lock().unwrap().key_of_media(&media)
                    };
                    let transport = msg
                        .header("Transport")
                        .and_then(|t| parse_transport(&t).ok());
                    if let (Some(t), Some(id)) = (&transport, session.sessionid()) {
                        if t.delivery == Delivery::Interleaved {
                            let mut ids = self.interleaved_sessions.lock().unwrap();
                            if !ids.iter().any(|i| i == id.as_str()) {
                                ids.push(id.to_string());
                            }
                        }
                    }
                    let Some(key) = key else { return };
                    let mut st = self.core().streams.lock().unwrap();
                    if let Some(t) = transport {
                        st.transports.insert(key, t);
                    }
                    if let Some(e) = st.entries.get_mut(&key) {
                        if e.owner.is_none() && !e.joined {
                            e.owner = session.sessionid().map(|s| s.to_string());
                        }
                        msg.set_header("com.ses.streamID", &e.stream_id.to_string());
                    }
                }
                (METHOD_PLAY, 200) => {
                    let session =
                        RTSPContext::with_current_context(|c| c.session().cloned()).flatten();
                    let Some(session) = session else { return };
                    let (key, suffix) = if let Some(stream) = SatipStream::of_session(&session) {
                        let (seq, rtptime) = stream.play_done();
                        (stream.key(), format!(";seq={seq};rtptime={rtptime}"))
                    } else {
                        let Some(media) = session_media(&session) else {
                            return;
                        };
                        crate::rtsp::factory::play_done(&media);
                        let suffix = msg
                            .header("RTP-Info")
                            .and_then(|r| r.find(";seq=").map(|i| r[i..].to_string()))
                            .unwrap_or_default();
                        (
                            self.core().streams.lock().unwrap().key_of_media(&media),
                            suffix,
                        )
                    };
                    let mut st = self.core().streams.lock().unwrap();
                    if let Some(e) = key.and_then(|k| st.entries.get_mut(&k)) {
                        e.playing = true;
                        msg.set_header(
                            "RTP-Info",
                            &format!("url={}stream={}{suffix}", base_url(&uri), e.stream_id),
                        );
                    }
                }
                _ => {}
            }
        }

        /// Applies a modifying query (PLAY or in-session SETUP) to the session's stream.
        fn apply_query(&self, session: &RTSPSession, t: &Target) -> RTSPStatusCode {
            let Some(key) = session_key(&self.core().streams, session) else {
                return RTSPStatusCode::Ok;
            };
            let (backend, spec, stream_id, joined) = {
                let st = self.core().streams.lock().unwrap();
                let Some(e) = st.entries.get(&key) else {
                    return RTSPStatusCode::Ok;
                };
                (e.backend.clone(), e.spec(), e.stream_id, e.joined)
            };
            if let Some(n) = t.stream {
                if n != stream_id {
                    return self.refuse(Answer::plain(404, "Not Found"));
                }
            }
            if !t.has_query || t.query.is_empty() {
                return RTSPStatusCode::Ok;
            }
            let Some(spec) = spec else {
                return RTSPStatusCode::Ok;
            };
            if joined {
                // Only the owner may modify a stream (§3.2).
                return self.refuse(Answer::plain(403, "Forbidden"));
            }
            let (new, change) = match spec.apply(&t.query, MAX_PIDS).and_then(|(n, c)| {
                if c == Change::Retune {
                    n.tuning
                        .check_capabilities(&gstdvb2ip::satipmapsrc::capabilities_of(
                            &self.core().pool,
                        ))?;
                }
                Ok((n, c))
            }) {
                Ok(x) => x,
                Err(e) => return self.refuse(Answer::error(&e)),
            };
            if change == Change::Unchanged {
                return RTSPStatusCode::Ok;
            }
            gst::info!(
                CAT,
                imp = self,
                "stream {stream_id}: {:?} -> {}",
                change,
                new.canonical_query()
            );
            if !Entry::update(&backend, new, change) && change == Change::Retune {
                return self.refuse(Answer::error(&QueryError::NoMore(vec![
                    Resource::Frontends,
                ])));
            }
            RTSPStatusCode::Ok
        }

        /// A SETUP without a session asks for unicast RTP/UDP: creates its stream (a new one,
        /// or a non-owner copy of stream `n`) without a pipeline, for the shared media.
        fn create_direct(&self, t: &Target) -> Result<(), Answer> {
            let cseq = current_request().and_then(|(_, _, c)| c);
            if let Some((c, _)) = &*self.pending_stream.lock().unwrap() {
                if *c == cseq {
                    return Ok(());
                }
            }
            let described = t
                .stream
                .and_then(|n| self.take_described(n).map(|s| (s, n)));
            let (spec, id, joined) = match t.stream {
                // The owner's SETUP of a stream this connection described (§3.10).
                Some(_) if described.is_some() => {
                    let (spec, n) = described.expect("checked");
                    (spec, n, false)
                }
                Some(n) => {
                    let spec = self
                        .core()
                        .streams
                        .lock()
                        .unwrap()
                        .owner_entry(n)
                        .and_then(Entry::spec)
                        .ok_or_else(|| Answer::plain(404, "Not Found"))?;
                    (spec, n, true)
                }
                None => {
                    let spec =
                        check_new(&self.core().pool, &t.query).map_err(|e| Answer::error(&e))?;
                    (
                        spec,
                        self.core().streams.lock().unwrap().allocate_id(),
                        false,
                    )
                }
            };
            let stream = SatipStream::create(self.core(), spec, id, joined)
                .map_err(|e| Answer::error(&e))?;
            *self.pending_stream.lock().unwrap() = Some((cseq, stream));
            Ok(())
        }

        /// 501 for methods SAT>IP does not have, on SAT>IP URLs.
        fn not_implemented(&self, ctx: &RTSPContext) -> Option<RTSPStatusCode> {
            let uri = request_of(ctx)?.request_line()?.1;
            matches!(route(&uri), Route::Satip(_))
                .then(|| self.refuse(Answer::plain(501, "Not Implemented")))
        }
    }

    impl RTSPClientImpl for SatipClient {
        fn make_path_from_uri(&self, url: &gst_rtsp::RTSPUrl) -> Option<glib::GString> {
            let uri = url.request_uri();
            if let Some(a) = self.foreign_session() {
                self.refuse(a);
                return Some(REFUSED_PATH.into());
            }
            // A SETUP that makes a session builds a pipeline or takes a frontend: only with
            // descriptors to spare (issue 16 item 1).
            let method = current_request().map(|(m, _, _)| m).unwrap_or(0);
            if method == METHOD_SETUP && !current_has_session() {
                if let Some(a) = self.no_headroom("SETUP") {
                    self.refuse(a);
                    return Some(REFUSED_PATH.into());
                }
            }
            // A publisher's request: the record factory of its mount (src/publish/rtsp.rs).
            if let Some(path) = crate::publish::rtsp::client_path(&uri) {
                return Some(path.into());
            }
            if crate::vod::rtsp::is_vod(&uri) {
                // A file on demand: its own mount; DESCRIBE and a first SETUP check the format.
                let check = method == METHOD_SETUP && !current_has_session();
                return match crate::vod::rtsp::make_path(&*self.obj(), self.core(), &uri, check) {
                    Ok(path) => Some(path.into()),
                    Err(a) => {
                        self.refuse(a);
                        Some(REFUSED_PATH.into())
                    }
                };
            }
            let t = match route(&uri) {
                Route::Other => return self.parent_make_path_from_uri(url),
                Route::Satip(Err(e)) => {
                    self.refuse(Answer::error(&e));
                    return Some(REFUSED_PATH.into());
                }
                Route::Satip(Ok(t)) => t,
            };
            // `/stream=N` of a session on another mount (a SAT>IP client playing /ch/<name>).
            if let (Some(n), false) = (t.stream, t.has_query) {
                if let Some(path) = self.mount_stream_path(n) {
                    return Some(path.into());
                }
            }
            if matches!(method, METHOD_ANNOUNCE | METHOD_RECORD) {
                // Never reaches the SAT>IP factory (gst-rtsp-server's record path logs
                // CRITICALs on it); `on_send` answers 501.
                self.refuse(Answer::plain(501, "Not Implemented"));
                return Some(REFUSED_PATH.into());
            }
            let has_session = current_has_session();
            // A stream this connection described: not in the table until its SETUP.
            let described_here = t
                .stream
                .is_some_and(|n| !has_session && self.described_spec(n).is_some());
            let refused = match (method, t.stream) {
                _ if described_here => None,
                (METHOD_SETUP, None) if !t.has_query && !has_session => {
                    Some(Answer::plain(405, "Method Not Allowed"))
                }
                (METHOD_SETUP, None) if t.has_query && !has_session => {
                    check_new(&self.core().pool, &t.query)
                        .err()
                        .map(|e| Answer::error(&e))
                }
                (METHOD_SETUP, Some(n)) if !self.core().streams.lock().unwrap().exists(n) => {
                    Some(Answer::plain(404, "Not Found"))
                }
                (_, Some(n)) if !self.core().streams.lock().unwrap().exists_any(n) => {
                    Some(Answer::plain(404, "Not Found"))
                }
                _ => None,
            };
            let refused = match refused {
                None if method == METHOD_SETUP => self.check_setup_transport(&t, has_session),
                // TEARDOWN of another stream than the session's: 404 (§3.3, [TVH]), and the
                // caller's own session goes on (issue 16 item 7).
                None if method == METHOD_TEARDOWN && has_session => t.stream.and_then(|n| {
                    let session =
                        RTSPContext::with_current_context(|c| c.session().cloned()).flatten()?;
                    let streams = &self.core().streams;
                    let key = session_key(streams, &session)?;
                    let own = streams.lock().unwrap().entries.get(&key)?.stream_id;
                    (own != n).then(|| Answer::plain(404, "Not Found"))
                }),
                r => r,
            };
            let unicast = || {
                current_transport_header()
                    .and_then(|raw| parse_transport(&raw).ok())
                    .is_some_and(|s| s.delivery == Delivery::Unicast)
            };
            // A stream a DESCRIBE defined (a media without owner yet) is set up on its own
            // media: gst-rtsp-server hands that media to a SETUP on the same connection.
            let described = |n: u16| {
                self.core()
                    .streams
                    .lock()
                    .unwrap()
                    .owner_entry(n)
                    .is_some_and(|e| e.owner.is_none() && e.media().is_some())
            };
            let refused = match refused {
                None if method == METHOD_SETUP
                    && !has_session
                    && unicast()
                    && !t.stream.is_some_and(described) =>
                {
                    match self.create_direct(&t) {
                        Ok(()) => return Some(UNICAST_MOUNT.into()),
                        Err(a) => Some(a),
                    }
                }
                r => r,
            };
            if let Some(a) = refused {
                self.refuse(a);
                return Some(REFUSED_PATH.into());
            }
            let direct = has_session
                && RTSPContext::with_current_context(|c| {
                    c.session().and_then(SatipStream::of_session).is_some()
                })
                .unwrap_or(false);
            Some(if direct { UNICAST_MOUNT } else { SATIP_MOUNT }.into())
        }

        /// Keep gst-rtsp-server's error codes: the bindings' default (no parent vfunc in C)
        /// would turn every error into 200 OK.
        fn adjust_error_code(
            &self,
            _ctx: &RTSPContext,
            status_code: RTSPStatusCode,
        ) -> RTSPStatusCode {
            status_code
        }

        fn new_session(&self, session: &RTSPSession) {
            if let Some(id) = session.sessionid() {
                let mut ids = self.conn_sessions.lock().unwrap();
                ids.retain(|i| {
                    self.obj()
                        .session_pool()
                        .is_some_and(|p| p.find(i).is_some())
                });
                ids.push(id.to_string());
            }
            if let Some(ip) = connection_ip(self.obj().upcast_ref(), false) {
                // SAFETY: SESSION_OWNER_KEY only ever holds a String.
                unsafe { session.set_data(SESSION_OWNER_KEY, ip) };
            }
            let t = self.session_timeout.load(Ordering::Relaxed);
            session.set_timeout(t);
            session.set_timeout_always_visible(true);
            self.watch_reading();
            self.parent_new_session(session);
        }

        fn create_sdp(&self, media: &RTSPMedia) -> Option<gst_rtsp_server::gst_sdp::SDPMessage> {
            let block = {
                let mut st = self.core().streams.lock().unwrap();
                let multicast = st
                    .key_of_media(media)
                    .and_then(|k| st.transports.get(&k))
                    .and_then(super::super::sdp::multicast_of);
                match st.by_media(media) {
                    Some(e) => super::super::sdp::Block {
                        stream_id: e.stream_id,
                        status: e.status()?,
                        playing: e.playing,
                        multicast,
                    },
                    None => {
                        drop(st);
                        return self.parent_create_sdp(media);
                    }
                }
            };
            let host = self.sdp_host(current_request().map(|(_, u, _)| u).as_deref());
            let text = sdp_in(&self.core().pool, &host, &[block]);
            gst_rtsp_server::gst_sdp::SDPMessage::parse_buffer(text.as_bytes()).ok()
        }

        fn pre_options_request(&self, ctx: &RTSPContext) -> RTSPStatusCode {
            if let Some(a) = self.foreign_session() {
                // Answered 200 by gst-rtsp-server, replaced in `send-message` (see below).
                self.refuse(a);
                return RTSPStatusCode::Ok;
            }
            if let Some(Route::Satip(Err(e))) = request_of(ctx)
                .and_then(|r| r.request_line())
                .map(|(_, u)| route(&u))
            {
                // Never fail OPTIONS here: gst-rtsp-server 1.22 frees its on-stack response
                // on that path (`handle_options_request`, sig_failed). Let it answer 200 and
                // replace that answer in `send-message`.
                self.refuse(Answer::error(&e));
                return RTSPStatusCode::Ok;
            }
            self.parent_pre_options_request(ctx)
        }

        fn pre_describe_request(&self, ctx: &RTSPContext) -> RTSPStatusCode {
            let Some(req) = request_of(ctx) else {
                return self.parent_pre_describe_request(ctx);
            };
            let Some((_, uri)) = req.request_line() else {
                return self.parent_pre_describe_request(ctx);
            };
            if crate::vod::rtsp::is_vod(&uri) {
                // 404 for every path the rules refuse, 415 for a file no demuxer reads.
                return match crate::vod::rtsp::make_path(&*self.obj(), self.core(), &uri, true) {
                    Ok(_) => self.parent_pre_describe_request(ctx),
                    Err(a) => self.refuse(a),
                };
            }
            let t = match route(&uri) {
                Route::Other => {
                    // A channel's DESCRIBE builds its pipeline (issue 16 item 1).
                    if let Some(a) = self.no_headroom("DESCRIBE") {
                        return self.refuse(a);
                    }
                    return self.parent_pre_describe_request(ctx);
                }
                Route::Satip(Err(e)) => return self.refuse(Answer::error(&e)),
                Route::Satip(Ok(t)) => t,
            };
            if let Some(accept) = req.header("Accept") {
                if !accept
                    .split(',')
                    .any(|a| a.trim().eq_ignore_ascii_case("application/sdp"))
                {
                    return self.refuse(Answer::plain(406, "Not Acceptable"));
                }
            }
            let b = if t.stream.is_none() && t.has_query {
                // A describing DESCRIBE defines a stream (§3.10): its SDP comes from the query
                // alone, without a pipeline or a frontend; the owner's SETUP on this
                // connection creates it (issue 16 item 2).
                let spec = match check_new(&self.core().pool, &t.query) {
                    Ok(s) => s,
                    Err(e) => return self.refuse(Answer::error(&e)),
                };
                let id = self.core().streams.lock().unwrap().allocate_id();
                let block = described_block(id, &spec);
                let mut d = self.described.lock().unwrap();
                if d.len() >= MAX_DESCRIBED {
                    d.remove(0);
                }
                d.push((id, spec));
                vec![block]
            } else {
                let mut b = blocks(self.core(), t.stream);
                if let (true, Some(n)) = (b.is_empty(), t.stream) {
                    if let Some(spec) = self.described_spec(n) {
                        b.push(described_block(n, &spec));
                    }
                }
                b
            };
            if b.is_empty() {
                return self.refuse(Answer::plain(404, "Not Found"));
            }
            let body = sdp_in(&self.core().pool, &self.sdp_host(Some(&uri)), &b);
            self.refuse(Answer {
                status: 200,
                reason: "OK".into(),
                headers: vec![("Content-Base".into(), base_url(&uri))],
                body: Some(("application/sdp".into(), body)),
            })
        }

        fn pre_setup_request(&self, ctx: &RTSPContext) -> RTSPStatusCode {
            let uri = request_of(ctx)
                .and_then(|r| r.request_line())
                .map(|(_, u)| u);
            if let (Some(Route::Satip(Ok(t))), Some(session)) =
                (uri.as_deref().map(route), ctx.session())
            {
                if t.has_query && session_key(&self.core().streams, session).is_some() {
                    return self.apply_query(session, &t);
                }
            }
            self.parent_pre_setup_request(ctx)
        }

        fn pre_play_request(&self, ctx: &RTSPContext) -> RTSPStatusCode {
            let uri = request_of(ctx)
                .and_then(|r| r.request_line())
                .map(|(_, u)| u);
            if let (Some(req), true) = (
                request_of(ctx),
                uri.as_deref().is_some_and(crate::vod::rtsp::is_vod),
            ) {
                // Range bounds (457), Scale (400 for 0) before gst-rtsp-server seeks.
                return match crate::vod::rtsp::pre_play(current_media().as_ref(), &req) {
                    Ok(()) => self.parent_pre_play_request(ctx),
                    Err(a) => self.refuse(a),
                };
            }
            if uri.as_deref().is_some_and(crate::relay::rtsp::is_relay) {
                let range = request_of(ctx).and_then(|r| r.header("Range"));
                if let Err(a) = crate::relay::rtsp::check_play_range(range.as_deref()) {
                    return self.refuse(a);
                }
            }
            if let (Some(Route::Satip(Ok(t))), Some(session)) =
                (uri.as_deref().map(route), ctx.session())
            {
                return self.apply_query(session, &t);
            }
            self.parent_pre_play_request(ctx)
        }

        /// The PLAY answer is queued: a direct VOD session starts sending after it.
        fn play_request(&self, ctx: &RTSPContext) {
            crate::vod::rtsp_direct::play_request();
            self.parent_play_request(ctx);
        }

        fn pre_pause_request(&self, ctx: &RTSPContext) -> RTSPStatusCode {
            self.not_implemented(ctx)
                .unwrap_or_else(|| self.parent_pre_pause_request(ctx))
        }

        fn pre_get_parameter_request(&self, ctx: &RTSPContext) -> RTSPStatusCode {
            self.not_implemented(ctx)
                .unwrap_or_else(|| self.parent_pre_get_parameter_request(ctx))
        }

        fn pre_set_parameter_request(&self, ctx: &RTSPContext) -> RTSPStatusCode {
            self.not_implemented(ctx)
                .unwrap_or_else(|| self.parent_pre_set_parameter_request(ctx))
        }

        fn pre_announce_request(&self, ctx: &RTSPContext) -> RTSPStatusCode {
            self.not_implemented(ctx)
                .unwrap_or_else(|| self.parent_pre_announce_request(ctx))
        }

        fn pre_record_request(&self, ctx: &RTSPContext) -> RTSPStatusCode {
            self.not_implemented(ctx)
                .unwrap_or_else(|| self.parent_pre_record_request(ctx))
        }
    }
}

glib::wrapper! {
    pub struct SatipClient(ObjectSubclass<imp::SatipClient>) @extends gst_rtsp_server::RTSPClient;
}

impl SatipClient {
    /// Keeps the connection's socket (call once the connection is set: `client-connected`).
    pub fn remember_socket(&self) {
        let c: *mut gst_rtsp_server::ffi::GstRTSPClient = self
            .upcast_ref::<gst_rtsp_server::RTSPClient>()
            .to_glib_none()
            .0;
        // SAFETY: a valid client; its connection, when set, has its read socket.
        let sock: Option<gst_rtsp_server::gio::Socket> = unsafe {
            let conn = gst_rtsp_server::ffi::gst_rtsp_client_get_connection(c);
            if conn.is_null() {
                return;
            }
            from_glib_none(gst_rtsp::ffi::gst_rtsp_connection_get_read_socket(conn))
        };
        *self.imp().socket.lock().unwrap() = sock.map(|s| SocketRef(s.downgrade()));
    }

    /// Keeps `permit` (the connection's slot under the RTSP cap) until the connection closes.
    pub fn hold_permit(&self, permit: crate::limits::Permit) {
        *self.imp().permit.lock().unwrap() = Some(permit);
    }

    /// The core this client serves.
    pub fn core(&self) -> &Arc<Core> {
        self.imp().core.get().expect("set by SatipClient::new")
    }

    pub fn new(core: Arc<Core>, session_timeout: u32) -> Self {
        let c: Self = glib::Object::new();
        let _ = c.imp().core.set(core);
        c.imp()
            .session_timeout
            .store(session_timeout, Ordering::Relaxed);
        c
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_503_says_its_real_reason() {
        let sessions = reason_503(true, None).unwrap();
        assert_eq!(
            sessions,
            (ERROR_CONTENT_TYPE.into(), "No-More: sessions".into())
        );
        let busy = glib::Error::new(gst::ResourceError::Busy, "No frontend free for 506 MHz");
        assert_eq!(
            reason_503(false, Some(&busy)).unwrap(),
            (ERROR_CONTENT_TYPE.into(), "No-More: frontends".into())
        );
        // Another failure is not passed off as busy frontends: its own text is the body.
        let open = glib::Error::new(
            gst::ResourceError::OpenRead,
            "Cannot open frontend for 506 MHz: permission denied",
        );
        assert_eq!(
            reason_503(false, Some(&open)).unwrap(),
            (
                "text/plain".into(),
                "Cannot open frontend for 506 MHz: permission denied".into()
            )
        );
        assert_eq!(reason_503(false, None), None);
    }
}
