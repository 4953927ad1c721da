//! Channel scanning in the launcher: the engine on the tuner pool ([`engine`]), the channel
//! database file ([`store`]), `dvb2ip scan` ([`cli`]), the server's scans and database
//! ([`service`], a field of [`crate::core::Core`]), its HTTP API ([`api`]) and RTSP channel
//! mounts ([`mounts`]), and the `[scan]` configuration ([`config`]). The pure parts (tables,
//! queue, database rules, exporters) are `proto::scan`.

pub mod api;
pub mod cli;
pub mod config;
pub mod engine;
pub mod mounts;
pub mod service;
pub mod store;

pub(crate) static CAT: once_cell::sync::Lazy<gst::DebugCategory> =
    once_cell::sync::Lazy::new(|| {
        gst::DebugCategory::new(
            "dvb2ip-scan",
            gst::DebugColorFlags::empty(),
            Some("dvb2ip channel scan"),
        )
    });
