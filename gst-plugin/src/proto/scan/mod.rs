//! The GStreamer-free heart of the channel scanner (issue 12): SI readers, service
//! classification, the per-mux table collector, the scan queue with NIT discovery, the channel
//! database, initial tuning files and rasters, and the exporters. Digest:
//! `specs/dvb-scan.md`.
//!
//! Nothing here does I/O or reads a clock: callers feed sections and monotonic milliseconds,
//! and write the bytes the database and exporters return.

pub mod classify;
pub mod collector;
pub mod db;
pub mod delivery;
pub mod export;
#[cfg(test)]
mod fixtures;
pub mod initial;
pub mod mux;
pub mod nit;
pub mod queue;
pub mod sdt;
pub mod session;
pub mod subtable;
pub mod text;
mod text_tables;
