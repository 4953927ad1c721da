//! SAT>IP over RTSP on gst-rtsp-server: a server/client/mount-points/factory subclass set.
//!
//! SAT>IP URLs (`rtsp://host/?query`, `/stream=N[?query]`) of sessions with unicast RTP/UDP
//! are routed to the one shared media of [`direct::UnicastFactory`] (mounted at
//! [`direct::UNICAST_MOUNT`]), their streams having no pipeline of their own; every other
//! SAT>IP URL (multicast, RTP over RTSP, DESCRIBE) goes to the factory mounted at
//! [`routing::SATIP_MOUNT`], a media per stream. Named channels stay plain factories under
//! `/ch/`.

pub mod client;
pub mod direct;
pub mod factory;
pub(crate) mod message;
pub mod mounts;
pub mod pay;
pub mod routing;
pub mod sdp;
pub mod sent;
pub mod server;

use std::sync::Arc;

use gst_rtsp_server::prelude::*;

use crate::core::Core;

pub use server::SatipServer;

pub(crate) static CAT: once_cell::sync::Lazy<gst::DebugCategory> =
    once_cell::sync::Lazy::new(|| {
        gst::DebugCategory::new(
            "dvb2ip-rtsp",
            gst::DebugColorFlags::empty(),
            Some("dvb2ip SAT>IP RTSP server"),
        )
    });

/// Default unicast session timeout (seconds) advertised in `Session: id;timeout=60`.
pub const DEFAULT_SESSION_TIMEOUT: u32 = 60;

/// The RTSP listener's backlog.
pub const LISTEN_BACKLOG: i32 = 256;

/// A SAT>IP RTSP server of `core` with its mount points and the SAT>IP factory mounted; add channel
/// mounts to `server.mount_points()`, then attach it.
pub fn build(core: &Arc<Core>, session_timeout: u32) -> SatipServer {
    let server = SatipServer::new(core.clone(), session_timeout);
    // gst-rtsp-server listens with a backlog of 5: in a burst of connections (a flood the
    // connection cap refuses, or many clients at once) the kernel then drops SYNs and clients
    // wait seconds for their retry.
    server.set_backlog(LISTEN_BACKLOG);
    let mounts = mounts::SatipMounts::default();
    mounts.add_factory(
        routing::SATIP_MOUNT,
        factory::SatipFactory::new(core.clone()),
    );
    mounts.add_factory(direct::UNICAST_MOUNT, direct::UnicastFactory::default());
    server.set_mount_points(Some(&mounts));
    server
}

/// Number of SAT>IP streams of `core` that currently exist (owners' streams, not joined
/// copies).
pub fn stream_count(core: &Core) -> usize {
    sdp::blocks(core, None).len()
}
