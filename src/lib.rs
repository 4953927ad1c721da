//! The `dvb2ip` launcher as a library: configuration, the RTSP server, SSDP, tools.

pub mod channels;
pub mod clients;
pub mod companion;
pub mod config;
pub mod core;
pub mod css;
pub mod http;
pub mod limits;
pub mod play;
pub mod publish;
pub mod relay;
pub mod reload;
pub mod remote_tuners;
pub mod rtp;
pub mod rtsp;
pub mod scan;
pub mod serve;
pub mod ssdp;
pub mod streams;
pub mod ui;
pub mod vod;
