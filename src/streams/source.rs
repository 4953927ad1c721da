//! Where a stream's transport stream comes from, as the stream's consumers see it: the unicast
//! RTP packetizer ([`crate::rtsp::direct`]) and the HTTP streamer ([`crate::http::stream`])
//! open a [`Source`] for a SAT>IP stream spec and receive its TS through a [`TsSink`].
//!
//! A tuner subscription ([`super::tuner`]) is the first kind; relays and files on demand are
//! the next: each is a new file implementing [`Source`], chosen in [`open`], with no edit in
//! the consumers.

use std::sync::Arc;

use gstdvb2ip::proto::satip::{Change, QueryError, StreamSpec};
use gstdvb2ip::tuners::Pool;

/// Receives a source's transport stream (whole 188-byte packets, the stream's PIDs only), in
/// the source's own thread: it must not block (queue, or drop and count).
pub trait TsSink: Send + Sync + 'static {
    fn push(&self, buffer: &gst::Buffer);
    /// The source lost what served it for good (say its tuner left the pool and no other
    /// could take the stream over): a consumer that cannot go on without data (HTTP) ends
    /// its stream; an RTSP session goes on and reports no lock.
    fn end(&self, reason: &str) {
        let _ = reason;
    }
}

/// One stream's source. Dropping it stops the stream and frees what served it.
pub trait Source: Send {
    /// What the source serves now.
    fn spec(&self) -> &StreamSpec;
    /// Applies a modified stream (`change` as [`StreamSpec::apply`] gave it); returns whether
    /// the source serves it afterwards.
    fn update(&mut self, new: StreamSpec, change: Change) -> bool;
    /// The SAT>IP status string (`ver=…;src=…;tuner=…;pids=…`).
    fn status(&self) -> String;
}

/// Opens the source serving `spec` (tuners from `pool`) (already checked against the server's capabilities); its TS
/// goes to `sink`, which may be called in this thread for the first data (the caller must not
/// hold anything the sink needs). Without a free frontend: `No-More: frontends`.
pub fn open(
    pool: &Pool,
    spec: StreamSpec,
    sink: Arc<dyn TsSink>,
) -> Result<Box<dyn Source>, QueryError> {
    Ok(Box::new(super::tuner::TunerSource::open(pool, spec, sink)?))
}
