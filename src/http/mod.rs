//! HTTP side of the server: SAT>IP HTTP streaming (`stream`).

pub mod stream;
