//! Files on demand: the `[vod]` section ([`config`]), the one set of path rules every front end
//! uses to map `/vod/<path>` onto a file under a root ([`path`]), the library listing
//! ([`library`]), the HTTP routes ([`http`]) and recording channels into the library
//! ([`record`]), and the RTSP server of files ([`rtsp`], [`rtsp_npt`]): a pipeline per session
//! for every format ([`rtsp_media`], [`rtsp_reverse`]), and, with `[vod] direct`, TS files as one
//! MP2T stream without a pipeline ([`rtsp_direct`]) on [`ts_file`] (probe, seek to a random
//! access point by PCR), [`pacer`] (one thread pacing every session's file by its PCR, trick play
//! from key frames) and [`trick`] (continuity counters and timestamp rewriting of the reader's
//! packets).

pub mod config;
pub mod http;
pub mod library;
pub mod pacer;
pub mod path;
pub mod record;
pub mod rtsp;
pub mod rtsp_direct;
pub mod rtsp_media;
pub mod rtsp_npt;
pub mod rtsp_reverse;
pub mod trick;
pub mod ts_file;

/// Debug category of the VOD modules (`GST_DEBUG=dvb2ip-vod:5`).
pub(crate) static CAT: once_cell::sync::Lazy<gst::DebugCategory> =
    once_cell::sync::Lazy::new(|| {
        gst::DebugCategory::new(
            "dvb2ip-vod",
            gst::DebugColorFlags::empty(),
            Some("dvb2ip files on demand"),
        )
    });
