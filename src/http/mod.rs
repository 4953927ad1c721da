//! HTTP side of the server, one listener on `server.http_port` ([`server`]), started by
//! `serve` with or without SSDP: SAT>IP HTTP streaming (`stream`), the presentation page
//! (`status`) on `/`, and the description and channel list of `crate::ssdp::description`.

pub mod conn;
pub mod fanout;
pub mod limits;
pub mod metrics;
pub mod server;
pub mod status;
pub mod stream;
