//! GStreamer-free protocol code: bytes or numbers in, bytes or numbers out.
//!
//! Rule: nothing below this module imports `gst` or `glib` (CI greps for it). Time is plain
//! integers with explicit units (90 kHz ticks, 27 MHz ticks, nanoseconds).

pub mod clock;
pub mod crc;
pub mod css;
pub mod mux;
pub mod psi;
pub mod rtp;
pub mod satip;
pub mod scan;
pub mod si;
pub mod temi;
pub mod timeline;
pub mod ts;
pub mod tuner_pool;
#[doc(hidden)]
pub mod vectors;
