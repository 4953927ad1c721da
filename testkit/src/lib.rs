//! Helpers shared by the launcher's tests (`tests/common`) and the benchmarks (`bench/`).
//!
//! - [`rtsp`]: one raw RTSP/1.0 client, byte-level, over one blocking TCP connection.

pub mod rtsp;
