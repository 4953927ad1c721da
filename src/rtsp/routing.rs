//! SAT>IP URL routing: which requests are SAT>IP (everything but the `/ch/` channel mounts),
//! the mounts they go to, and the parts of a request URI the answers need.

use gstdvb2ip::proto::satip::{parse_target, QueryError, Target};

/// Mount of the SAT>IP factory; every SAT>IP URL maps to this path.
pub const SATIP_MOUNT: &str = "/satip";
/// Path for refused requests: no factory is mounted there, so gst-rtsp-server answers 404,
/// which the client subclass then replaces with the real answer.
pub const REFUSED_PATH: &str = "/refused";
/// Named channel mounts live under this prefix; with files on demand (`/vod/`), everything
/// else is SAT>IP.
pub const CHANNEL_PREFIX: &str = "/ch/";
/// Most PIDs in one stream.
pub const MAX_PIDS: usize = gstdvb2ip::proto::satip::DEFAULT_MAX_PIDS;

/// How a request URI is served.
pub enum Route {
    /// Not SAT>IP (a `/ch/<name>` mount, a `/vod/<path>` file): gst-rtsp-server's defaults
    /// apply.
    Other,
    /// A SAT>IP URL: parsed, or refused (400/403/414).
    Satip(Result<Target, QueryError>),
}

/// The path part of an RTSP URI (`rtsp://h:p/a/b?q` → `/a/b`).
pub fn uri_path(uri: &str) -> &str {
    let rest = match split_scheme(uri) {
        Some((_, after)) => match after.find(['/', '?']) {
            Some(j) => &after[j..],
            None => "",
        },
        None => uri,
    };
    rest.split('?').next().unwrap_or("")
}

/// The scheme and what follows `://` of an absolute URI; `None` for a path, also one that holds
/// `://` further on (`/a/x://h` is a path, not a URI of scheme `/a/x`).
fn split_scheme(uri: &str) -> Option<(&str, &str)> {
    let (scheme, rest) = uri.split_once("://")?;
    let mut chars = scheme.chars();
    let valid = chars.next()?.is_ascii_alphabetic()
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    valid.then_some((scheme, rest))
}

/// `rtsp://host:port/` of a request URI (the SAT>IP Content-Base), without any `user:pass@`.
pub fn base_url(uri: &str) -> String {
    match split_scheme(uri) {
        Some((scheme, after)) => {
            let authority = after.split(['/', '?']).next().unwrap_or("");
            let host = authority.rsplit('@').next().unwrap_or("");
            format!("{scheme}://{host}/")
        }
        None => "rtsp://127.0.0.1/".to_string(),
    }
}

/// Host part (without port) of a request URI.
pub fn uri_host(uri: &str) -> String {
    let base = base_url(uri);
    let hostport = base
        .split("://")
        .nth(1)
        .unwrap_or("")
        .trim_end_matches('/')
        .to_string();
    if let Some(rest) = hostport.strip_prefix('[') {
        return rest.split(']').next().unwrap_or("").to_string();
    }
    hostport.split(':').next().unwrap_or("").to_string()
}

pub fn route(uri: &str) -> Route {
    let path = uri_path(uri);
    if path.starts_with(CHANNEL_PREFIX)
        || crate::vod::rtsp::is_vod(uri)
        || crate::relay::rtsp::is_relay(uri)
        || crate::publish::rtsp::is_publish(uri)
    {
        return Route::Other;
    }
    Route::Satip(parse_target(uri))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uri_helpers() {
        let u = "rtsp://127.0.0.1:8554/stream=3?addpids=18";
        assert_eq!(uri_path(u), "/stream=3");
        assert_eq!(base_url(u), "rtsp://127.0.0.1:8554/");
        assert_eq!(uri_host(u), "127.0.0.1");
        assert_eq!(uri_host("rtsp://[::1]:554/"), "::1");
        assert_eq!(uri_host("rtsp://u:p@10.0.0.5:554/?src=1"), "10.0.0.5");
        assert_eq!(base_url("rtsp://u:p@10.0.0.5:554/"), "rtsp://10.0.0.5:554/");
        assert_eq!(uri_path("rtsp://h:1?src=1"), "");
        assert!(matches!(route("rtsp://h/ch/news"), Route::Other));
        assert!(matches!(route("rtsp://h/vod/x.ts/stream=0"), Route::Other));
        assert!(matches!(
            route("rtsp://h/?src=1&freq=506&msys=dvbt"),
            Route::Satip(Ok(_))
        ));
        assert!(matches!(route("rtsp://h/strem=1"), Route::Satip(Err(_))));
    }

    #[test]
    fn a_path_holding_a_scheme_separator_is_a_path() {
        // Found by the rtsp_routing fuzz target: the text before `://` was taken as the scheme.
        let u = "/@/\u{3bba}://;;(";
        assert_eq!(base_url(u), "rtsp://127.0.0.1/");
        assert_eq!(uri_path(u), u);
        assert_eq!(uri_host(u), "127.0.0.1");
    }
}
