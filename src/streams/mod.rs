//! The launcher's streams: the SAT>IP stream table (`table`).

// Until the table stops naming the unicast stream type (next commit).
pub(crate) use crate::rtsp::direct;

pub mod table;
