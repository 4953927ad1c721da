//! `mjpegframeparse`: splits the networking course assignment's `.mjpeg` movie files (each frame
//! is 5 ASCII digits giving the JPEG's length in bytes, then the JPEG) into timestamped JPEG
//! frames, so they can be decoded, muxed or sent as RTP JPEG (RFC 2435).
//!
//! ```text
//! gst-launch-1.0 filesrc location=movie.mjpeg ! mjpegframeparse ! jpegdec ! autovideosink
//! gst-launch-1.0 filesrc location=movie.mjpeg ! mjpegframeparse framerate=20/1 ! rtpjpegpay ! udpsink host=127.0.0.1 port=5004
//! ```
//!
//! * The file carries no timing: frame *n* gets PTS = DTS = n / `framerate` and a one-frame
//!   duration. Every frame is a key frame (no `DELTA_UNIT` flag).
//! * Output caps are `image/jpeg, parsed=true, width, height, framerate`, with the size read from
//!   each JPEG's SOF marker (new caps when it changes).
//! * Pulling from a seekable source (`filesrc` directly upstream), it indexes every frame start
//!   first (7 bytes read per frame), so duration and position queries, TIME↔BYTES conversion
//!   and TIME seeks are exact: a seek to *t* restarts at frame ⌊t·framerate⌋. Pushed data
//!   (e.g. behind a `queue`) is indexed as it goes.
//! * Damaged input (length not 5 digits, length 0, data not starting with the JPEG SOI marker,
//!   a frame cut short by the end of the file, a JPEG without SOF) stops the stream with a
//!   `StreamError::Format` bus error naming the byte offset of the frame
//!   ([`crate::proto::mjpeg::MjpegError`]).
//!
//! Sink caps are `video/x-mjpeg-framed`; `filesrc` sends no caps at all, which is also accepted.

use gst::glib;
use gst::prelude::*;

mod imp;

glib::wrapper! {
    pub struct MjpegFrameParse(ObjectSubclass<imp::MjpegFrameParse>) @extends gst_base::BaseParse, gst::Element, gst::Object;
}

/// Caps name of the raw `.mjpeg` file stream on the sink pad.
pub const SINK_CAPS_NAME: &str = "video/x-mjpeg-framed";

pub fn register(plugin: &gst::Plugin) -> Result<(), glib::BoolError> {
    gst::Element::register(
        Some(plugin),
        "mjpegframeparse",
        gst::Rank::NONE,
        MjpegFrameParse::static_type(),
    )
}
