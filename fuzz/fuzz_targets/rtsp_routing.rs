//! Fuzz target over the launcher's RTSP request handling above gst-rtsp-server: routing of a
//! request URI (SAT>IP, `/ch/`, refused), and the path, base URL and host taken from it for the
//! answers (no `user:pass@` may survive into them).

#![no_main]

use libfuzzer_sys::fuzz_target;

use dvb2ip::rtsp::routing::{base_url, route, uri_host, uri_path};

fuzz_target!(|input: &[u8]| {
    let uri = String::from_utf8_lossy(input);
    let _ = route(&uri);
    let _ = uri_path(&uri);
    // The Content-Base and the SDP origin are built from these: credentials never reach them.
    let base = base_url(&uri);
    assert!(!base.contains('@'), "{uri:?} -> {base:?}");
    assert!(base.ends_with('/'));
    let host = uri_host(&uri);
    assert!(!host.contains('@'), "{uri:?} -> {host:?}");
});
