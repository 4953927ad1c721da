//! GStreamer-free protocol code: bytes or numbers in, bytes or numbers out.
//!
//! Rule: nothing below this module imports `gst` or `glib` (CI greps for it). Time is plain
//! integers with explicit units (90 kHz ticks, 27 MHz ticks, nanoseconds).

pub mod crc;
pub mod mux;
pub mod si;
pub mod tuner_pool;
pub mod css;
pub mod clock;
pub mod psi;
pub mod temi;
pub mod timeline;
pub mod ts;
