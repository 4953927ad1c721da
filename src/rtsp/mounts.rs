//! Mount points that route every SAT>IP URL (`/`, `/?query`, `/stream=N[?query]`) to the one
//! SAT>IP factory and leave `/ch/<name>` to the channel factories.

use gst::glib;
use gst::prelude::*;
use gst_rtsp_server::subclass::prelude::*;

use super::routing::{route, Route, REFUSED_PATH, SATIP_MOUNT};

mod imp {
    use super::*;

    #[derive(Default)]
    pub struct SatipMounts {}

    #[glib::object_subclass]
    impl ObjectSubclass for SatipMounts {
        const NAME: &'static str = "Dvb2IpSatipMounts";
        type Type = super::SatipMounts;
        type ParentType = gst_rtsp_server::RTSPMountPoints;
    }

    impl ObjectImpl for SatipMounts {}

    impl RTSPMountPointsImpl for SatipMounts {
        fn make_path(&self, url: &gst_rtsp_server::gst_rtsp::RTSPUrl) -> Option<glib::GString> {
            // A DESCRIBE of a file on demand: its own mount (src/vod/rtsp.rs).
            if let Some(path) = crate::vod::rtsp::describe_path(url) {
                return path;
            }
            // An ANNOUNCE of a publish mount: the publisher's record factory (src/publish/rtsp.rs).
            if let Some(path) = crate::publish::rtsp::announce_path(&url.request_uri()) {
                return Some(path.into());
            }
            match route(&url.request_uri()) {
                Route::Other => self.parent_make_path(url),
                // gst-rtsp-server looks the media of an ANNOUNCE up here, not through the
                // client's path: SAT>IP has no recording, so none is found (no factory builds
                // a media it cannot make) and the client answers 501.
                Route::Satip(Ok(_))
                    if crate::rtsp::client::current_request().is_some_and(|(m, _, _)| {
                        matches!(
                            m,
                            crate::rtsp::message::METHOD_ANNOUNCE
                                | crate::rtsp::message::METHOD_RECORD
                        )
                    }) =>
                {
                    Some(REFUSED_PATH.into())
                }
                Route::Satip(Ok(_)) => Some(SATIP_MOUNT.into()),
                Route::Satip(Err(_)) => Some(REFUSED_PATH.into()),
            }
        }
    }
}

glib::wrapper! {
    pub struct SatipMounts(ObjectSubclass<imp::SatipMounts>) @extends gst_rtsp_server::RTSPMountPoints;
}

impl Default for SatipMounts {
    fn default() -> Self {
        glib::Object::new()
    }
}

/// The mount point `path` falls under (`/ch/one` for `/ch/one/stream=0`), if any.
pub fn mount_of(mounts: &impl IsA<gst_rtsp_server::RTSPMountPoints>, path: &str) -> Option<String> {
    use gst::glib::translate::{from_glib_full, ToGlibPtr};
    let mut matched = 0i32;
    // SAFETY: valid mount points and path; the result is a new reference or NULL.
    let factory: Option<gst_rtsp_server::RTSPMediaFactory> = unsafe {
        from_glib_full(gst_rtsp_server::ffi::gst_rtsp_mount_points_match(
            mounts.as_ref().to_glib_none().0,
            path.to_glib_none().0,
            &mut matched,
        ))
    };
    factory?;
    path.get(..usize::try_from(matched).ok()?)
        .map(str::to_owned)
}

/// The factory mounted at `path`, if any (the bindings' `match_` assumes one exists).
pub fn factory_at(
    mounts: &impl IsA<gst_rtsp_server::RTSPMountPoints>,
    path: &str,
) -> Option<gst_rtsp_server::RTSPMediaFactory> {
    use gst::glib::translate::{from_glib_full, ToGlibPtr};
    let mut matched = 0i32;
    // SAFETY: valid mount points and path; the result is a new reference or NULL.
    unsafe {
        from_glib_full(gst_rtsp_server::ffi::gst_rtsp_mount_points_match(
            mounts.as_ref().to_glib_none().0,
            path.to_glib_none().0,
            &mut matched,
        ))
    }
}
