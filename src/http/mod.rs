//! HTTP side of the server: SAT>IP HTTP streaming (`stream`) and the presentation page
//! (`status`) on `/`.

pub mod status;
pub mod stream;
