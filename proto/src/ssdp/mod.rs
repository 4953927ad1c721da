//! SSDP/UPnP discovery messages (SAT>IP digest §8): building, parsing and the DEVICE ID state
//! machine. The sockets live in the launcher's `ssdp` module.

pub mod message;
