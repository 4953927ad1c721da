//! GStreamer-free protocol code: bytes or numbers in, bytes or numbers out.
//!
//! This crate (`dvb2ip-proto`) has no `gst`, `glib` or `gstreamer-*` dependency, so its purity
//! is checked by the compiler. The plugin re-exports it as `gstdvb2ip::proto`. Time is plain
//! integers with explicit units (90 kHz ticks, 27 MHz ticks, nanoseconds).

pub mod clock;
pub mod crc;
pub mod css;
pub mod mjpeg;
pub mod mux;
pub mod psi;
pub mod rtp;
pub mod satip;
pub mod scan;
pub mod si;
pub mod ssdp;
pub mod temi;
pub mod timeline;
pub mod ts;
pub mod ts_errors;
pub mod tuner_pool;
#[doc(hidden)]
pub mod vectors;
