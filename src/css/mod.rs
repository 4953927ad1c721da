//! DVB-CSS tools for the launcher: clients for CSS-WC, CSS-CII and CSS-TS, a standalone CSS-WC
//! server, and the `css` subcommands with the TV emulator (the CSS benchmark, `dvb2ip-bench css`,
//! is in `bench/`). The protocol logic itself lives in the plugin crate's GStreamer-free
//! `proto::css`.

pub mod cli;
pub mod clients;
pub mod tools;

pub use clients::{
    cii_client, ts_client, wc_client, wc_client_with_options, wc_server, ClientError, TsEstimate,
    TsReason, WcClientOptions, WcServer, WcServerStats, WcSummary, WcUpdate,
};
