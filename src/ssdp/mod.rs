//! SSDP/UPnP discovery (SAT>IP digest §8). `message` is GStreamer-free.

pub mod message;
