#![allow(unused_doc_comments)]
//! dvb2ip GStreamer plugin: a DVB tuner pool with emulated frontends (`dvbtunersrc`), SAT>IP
//! request mapping, TS timeline export and DVB-CSS serving.
//!
//! The launcher and tests link the rlib and call [`plugin_register_static`].

use gst::glib;

pub mod css_server;
pub mod dvbcsssink;
pub mod dvbtunersrc;
pub mod mjpegframeparse;
pub mod runtime;
pub mod satipmapsrc;
pub mod sys;
pub mod tstimelineparse;
pub mod tuners;

/// The GStreamer-free protocol crate, under the path the elements and the launcher use.
pub use dvb2ip_proto as proto;

/// `video/mpegts, systemstream=true, packetsize=188`: what our sources output and filters take.
pub(crate) fn mpegts_caps() -> gst::Caps {
    gst::Caps::builder("video/mpegts")
        .field("systemstream", true)
        .field("packetsize", 188i32)
        .build()
}

/// An always-present pad template.
pub(crate) fn always_template(
    name: &str,
    direction: gst::PadDirection,
    caps: &gst::Caps,
) -> gst::PadTemplate {
    gst::PadTemplate::new(name, direction, gst::PadPresence::Always, caps)
        .expect("valid pad template")
}

/// A live, non-blocking appsrc in TIME format that timestamps what is pushed and drops the
/// oldest data beyond `max_bytes` (a slow consumer never blocks the producer).
pub fn live_appsrc(name: &str, caps: &gst::Caps, max_bytes: u64) -> gst_app::AppSrc {
    gst_app::AppSrc::builder()
        .name(name)
        .caps(caps)
        .is_live(true)
        .format(gst::Format::Time)
        .do_timestamp(true)
        .stream_type(gst_app::AppStreamType::Stream)
        .max_bytes(max_bytes)
        .leaky_type(gst_app::AppLeakyType::Downstream)
        .block(false)
        .build()
}

fn plugin_init(plugin: &gst::Plugin) -> Result<(), glib::BoolError> {
    dvbcsssink::register(plugin)?;
    dvbtunersrc::register(plugin)?;
    mjpegframeparse::register(plugin)?;
    satipmapsrc::register(plugin)?;
    tstimelineparse::register(plugin)?;
    Ok(())
}

gst::plugin_define!(
    dvb2ip,
    env!("CARGO_PKG_DESCRIPTION"),
    plugin_init,
    concat!(env!("CARGO_PKG_VERSION"), "-", env!("COMMIT_ID")),
    "MPL",
    env!("CARGO_PKG_NAME"),
    env!("CARGO_PKG_NAME"),
    env!("CARGO_PKG_REPOSITORY"),
    env!("BUILD_REL_DATE")
);
