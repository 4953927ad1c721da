//! The RTSP server subclass: hands out [`SatipClient`]s carrying the session settings, and
//! applies the `[server]`/`[multicast]` configuration (session limit, multicast address pool).

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use gst::glib;
use gst::glib::translate::ToGlibPtr;
use gst_rtsp_server::gst_rtsp;
use gst_rtsp_server::prelude::*;
use gst_rtsp_server::subclass::prelude::*;

use super::client::SatipClient;
use super::routing::SATIP_MOUNT;
use super::CAT;
use crate::core::Core;

mod imp {
    use super::*;

    #[derive(Default)]
    pub struct SatipServer {
        pub session_timeout: AtomicU32,
        /// The core its clients serve, set by [`super::SatipServer::new`].
        pub core: std::sync::OnceLock<Arc<Core>>,
    }

    #[glib::object_subclass]
    impl ObjectSubclass for SatipServer {
        const NAME: &'static str = "Dvb2IpSatipServer";
        type Type = super::SatipServer;
        type ParentType = gst_rtsp_server::RTSPServer;
    }

    impl ObjectImpl for SatipServer {}

    impl RTSPServerImpl for SatipServer {
        fn create_client(&self) -> Option<gst_rtsp_server::RTSPClient> {
            let server = self.obj();
            let core = self.core.get().expect("set by SatipServer::new").clone();
            // Beyond the RTSP connection cap, or with descriptors running out: the accepted
            // connection gets a 503 and is closed at once (gst-rtsp-server frees the
            // connection of a client that was not created), issue 16 item 1.
            let Some(permit) = core.limits.try_admit(crate::limits::Kind::Rtsp) else {
                refuse_connection();
                return None;
            };
            let client = SatipClient::new(core, self.session_timeout.load(Ordering::Relaxed));
            client.hold_permit(permit);
            // As the default implementation does.
            client.set_session_pool(server.session_pool().as_ref());
            client.set_mount_points(server.mount_points().as_ref());
            // Without an auth object gst-rtsp-server ignores a client's own multicast group,
            // port and TTL (checklist 43); this one allows everything, as no auth does.
            match server.auth() {
                Some(auth) => client.set_auth(Some(&auth)),
                None => client.set_auth(Some(&*OPEN_AUTH)),
            }
            client.set_thread_pool(server.thread_pool().as_ref());
            Some(client.upcast())
        }
    }
}

/// Answers the connection being accepted (the current context's) with a 503 before it is
/// closed, without waiting: a client that cannot be served learns why.
fn refuse_connection() {
    const ANSWER: &[u8] =
        b"RTSP/1.0 503 Service Unavailable\r\nConnection: close\r\nContent-Length: 0\r\n\r\n";
    gst_rtsp_server::RTSPContext::with_current_context(|ctx| {
        let p: *const gst_rtsp_server::ffi::GstRTSPContext = ctx.to_glib_none().0;
        // SAFETY: a valid context; `conn` is NULL or the connection being accepted, which
        // gst-rtsp-server frees only after `create_client` returns.
        unsafe {
            let conn = (*p).conn;
            if conn.is_null() {
                return;
            }
            let sock = gst_rtsp::ffi::gst_rtsp_connection_get_write_socket(conn);
            if sock.is_null() {
                return;
            }
            let fd = gst_rtsp_server::gio::ffi::g_socket_get_fd(sock);
            libc::send(
                fd,
                ANSWER.as_ptr().cast(),
                ANSWER.len(),
                libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
            );
        }
    });
}

mod auth_imp {
    use super::*;

    /// Allows every check, including `auth.check.transport.client-settings`.
    #[derive(Default)]
    pub struct OpenAuth {}

    #[glib::object_subclass]
    impl ObjectSubclass for OpenAuth {
        const NAME: &'static str = "Dvb2IpOpenAuth";
        type Type = super::OpenAuth;
        type ParentType = gst_rtsp_server::RTSPAuth;
    }

    impl ObjectImpl for OpenAuth {}

    impl RTSPAuthImpl for OpenAuth {
        fn authenticate(&self, _ctx: &gst_rtsp_server::RTSPContext) -> bool {
            true
        }

        fn check(&self, ctx: &gst_rtsp_server::RTSPContext, check: &glib::GString) -> bool {
            // Publish mounts check credentials (src/publish/rtsp.rs); false: already answered.
            if check.as_str() == "auth.check.url" {
                return crate::publish::rtsp::check_request(ctx);
            }
            true
        }
    }
}

glib::wrapper! {
    /// The server's access policy: none (every request allowed), but unlike a server without
    /// any auth object it lets clients choose their multicast group, port and TTL (§3.4).
    pub struct OpenAuth(ObjectSubclass<auth_imp::OpenAuth>) @extends gst_rtsp_server::RTSPAuth;
}

static OPEN_AUTH: once_cell::sync::Lazy<OpenAuth> = once_cell::sync::Lazy::new(glib::Object::new);

glib::wrapper! {
    pub struct SatipServer(ObjectSubclass<imp::SatipServer>) @extends gst_rtsp_server::RTSPServer;
}

impl SatipServer {
    /// A server of `core` whose sessions time out after `session_timeout` seconds without a
    /// request.
    pub fn new(core: Arc<Core>, session_timeout: u32) -> Self {
        let s: Self = glib::Object::new();
        let _ = s.imp().core.set(core);
        s.connect_client_connected(|_, client| {
            if let Some(c) = client.downcast_ref::<SatipClient>() {
                c.remember_socket();
            }
        });
        s.imp()
            .session_timeout
            .store(session_timeout, Ordering::Relaxed);
        s
    }
}

/// Applies the configuration to a server built by [`super::build`]: the session limit
/// (`[server] max_sessions`, 503 `No-More: sessions` beyond it) and multicast streams
/// (`[multicast]`: an address pool of `239.<device_id>.0.0/16` or the configured range, the
/// TTL, the interface) on the SAT>IP factory.
pub fn configure(
    server: &impl IsA<gst_rtsp_server::RTSPServer>,
    cfg: &crate::config::Config,
    device_id: u8,
) {
    let server = server.as_ref();
    if let Some(pool) = server.session_pool() {
        // 0 = unlimited for gst-rtsp-server; keep at least one session.
        pool.set_max_sessions(cfg.server.effective_max_sessions().max(1));
    }
    let Some(factory) = server
        .mount_points()
        .and_then(|m| super::mounts::factory_at(&m, SATIP_MOUNT))
    else {
        return;
    };
    let mut protocols = gst_rtsp::RTSPLowerTrans::UDP | gst_rtsp::RTSPLowerTrans::TCP;
    let mc = &cfg.multicast;
    if mc.enabled {
        match multicast_pool(cfg, device_id) {
            Ok(pool) => {
                factory.set_address_pool(Some(&pool));
                factory.set_max_mcast_ttl(u32::from(mc.max_ttl));
                factory.set_multicast_iface(Some(mc.interface.trim()).filter(|i| !i.is_empty()));
                protocols |= gst_rtsp::RTSPLowerTrans::UDP_MCAST;
            }
            Err(e) => gst::warning!(CAT, "multicast disabled: {e}"),
        }
    }
    factory.set_protocols(protocols);
}

/// Follows a new DEVICE ID: streams set up from now on get groups of
/// `239.<device_id>.0.0/16`; running ones keep theirs. Nothing changes when multicast is off
/// or `[multicast] addresses` names the range.
pub fn set_device_id(
    server: &impl IsA<gst_rtsp_server::RTSPServer>,
    cfg: &crate::config::Config,
    device_id: u8,
) {
    if !cfg.multicast.enabled || !cfg.multicast.addresses.trim().is_empty() {
        return;
    }
    let Some(factory) = server
        .as_ref()
        .mount_points()
        .and_then(|m| super::mounts::factory_at(&m, SATIP_MOUNT))
    else {
        return;
    };
    if factory.address_pool().is_none() {
        return;
    }
    match multicast_pool(cfg, device_id) {
        Ok(pool) => factory.set_address_pool(Some(&pool)),
        Err(e) => gst::warning!(CAT, "multicast range of DEVICE ID {device_id}: {e}"),
    }
}

/// The address pool of multicast groups (`[multicast] addresses`/`ports`/`ttl`, or the range
/// of `device_id`).
fn multicast_pool(
    cfg: &crate::config::Config,
    device_id: u8,
) -> Result<gst_rtsp_server::RTSPAddressPool, String> {
    let mc = &cfg.multicast;
    let (first, last) = mc.address_range(device_id)?;
    let (pmin, pmax) = mc.port_range()?;
    let pool = gst_rtsp_server::RTSPAddressPool::new();
    pool.add_range(&first.to_string(), &last.to_string(), pmin, pmax, mc.ttl)
        .map_err(|e| format!("address range {first}-{last} ports {pmin}-{pmax}: {e}"))?;
    gst::info!(
        CAT,
        "multicast groups {first}-{last}, ports {pmin}-{pmax}, ttl {}",
        mc.ttl
    );
    Ok(pool)
}
