//! DVB-CSS tools for the launcher: clients for CSS-WC, CSS-CII and CSS-TS and a standalone
//! CSS-WC server, used by the command-line subcommands. The protocol logic itself lives in the
//! plugin crate's GStreamer-free `proto::css`.

pub mod clients;

pub use clients::{
    cii_client, ts_client, wc_client, wc_client_with_options, wc_server, ClientError, TsEstimate,
    TsReason, WcClientOptions, WcServer, WcServerStats, WcSummary, WcUpdate,
};
