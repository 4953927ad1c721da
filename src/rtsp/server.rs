//! The RTSP server subclass: hands out [`SatipClient`]s carrying the session settings.

use std::sync::atomic::{AtomicU32, Ordering};

use gst::glib;
use gst_rtsp_server::prelude::*;
use gst_rtsp_server::subclass::prelude::*;

use super::client::SatipClient;

mod imp {
    use super::*;

    #[derive(Default)]
    pub struct SatipServer {
        pub session_timeout: AtomicU32,
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
            let client = SatipClient::new(self.session_timeout.load(Ordering::Relaxed));
            // As the default implementation does.
            client.set_session_pool(server.session_pool().as_ref());
            client.set_mount_points(server.mount_points().as_ref());
            client.set_auth(server.auth().as_ref());
            client.set_thread_pool(server.thread_pool().as_ref());
            Some(client.upcast())
        }
    }
}

glib::wrapper! {
    pub struct SatipServer(ObjectSubclass<imp::SatipServer>) @extends gst_rtsp_server::RTSPServer;
}

impl SatipServer {
    /// A server whose sessions time out after `session_timeout` seconds without a request.
    pub fn new(session_timeout: u32) -> Self {
        let s: Self = glib::Object::new();
        s.imp()
            .session_timeout
            .store(session_timeout, Ordering::Relaxed);
        s
    }
}
