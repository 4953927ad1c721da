//! The SAT>IP stream table (stream ids, owners, the media serving each stream), URL routing
//! and the SDP of DESCRIBE.

use std::collections::BTreeMap;
use std::sync::Mutex;

use gst::glib;
use gst::prelude::*;
use gstdvb2ip::proto::satip::{parse_query, parse_target, QueryError, StreamSpec, Target};
use gstdvb2ip::proto::tuner_pool::DelSys;
use once_cell::sync::Lazy;

/// Mount of the SAT>IP factory; every SAT>IP URL maps to this path.
pub const SATIP_MOUNT: &str = "/satip";
/// Path for refused requests: no factory is mounted there, so gst-rtsp-server answers 404,
/// which the client subclass then replaces with the real answer.
pub const REFUSED_PATH: &str = "/refused";
/// Named channel mounts live under this prefix; everything else is SAT>IP.
pub const CHANNEL_PREFIX: &str = "/ch/";
/// Most PIDs in one stream.
pub const MAX_PIDS: usize = gstdvb2ip::proto::satip::DEFAULT_MAX_PIDS;

/// How a request URI is served.
pub enum Route {
    /// Not SAT>IP (a `/ch/<name>` mount): gst-rtsp-server's defaults apply.
    Other,
    /// A SAT>IP URL: parsed, or refused (400/403/414).
    Satip(Result<Target, QueryError>),
}

/// The path part of an RTSP URI (`rtsp://h:p/a/b?q` → `/a/b`).
pub fn uri_path(uri: &str) -> &str {
    let rest = match uri.find("://") {
        Some(i) => {
            let after = &uri[i + 3..];
            match after.find(['/', '?']) {
                Some(j) => &after[j..],
                None => "",
            }
        }
        None => uri,
    };
    rest.split('?').next().unwrap_or("")
}

/// `rtsp://host:port/` of a request URI (the SAT>IP Content-Base).
pub fn base_url(uri: &str) -> String {
    match uri.find("://") {
        Some(i) => {
            let after = &uri[i + 3..];
            let host = after.split(['/', '?']).next().unwrap_or("");
            format!("{}://{host}/", &uri[..i])
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
    if path.starts_with(CHANNEL_PREFIX) {
        return Route::Other;
    }
    Route::Satip(parse_target(uri))
}

/// One stream (or one non-owner copy of a stream joined through `stream=N`).
pub struct Entry {
    /// The SAT>IP stream id (`com.ses.streamID`).
    pub stream_id: u16,
    /// A non-owner copy created by a SETUP on `/stream=N` of another session's stream.
    pub joined: bool,
    /// The `satipmapsrc` of the media.
    pub src: glib::WeakRef<gst::Element>,
    pub media: glib::WeakRef<gst_rtsp_server::RTSPMedia>,
    /// Session id of the owner, once its SETUP succeeded.
    pub owner: Option<String>,
    pub playing: bool,
}

impl Entry {
    /// The stream's current spec, read back from its element (the source of truth).
    pub fn spec(&self) -> Option<StreamSpec> {
        let src = self.src.upgrade()?;
        let req: Option<String> = src.property("request");
        let q = parse_query(&req?).ok()?;
        StreamSpec::create(&q, usize::MAX).ok()
    }

    pub fn status(&self) -> Option<String> {
        self.src.upgrade().map(|s| s.property::<String>("status"))
    }
}

#[derive(Default)]
pub struct Streams {
    next_key: u64,
    next_id: u16,
    /// By internal key (the number in the media's bin name `satip-<key>`).
    pub entries: BTreeMap<u64, Entry>,
}

pub static STREAMS: Lazy<Mutex<Streams>> = Lazy::new(|| Mutex::new(Streams::default()));

impl Streams {
    fn gc(&mut self) {
        self.entries.retain(|_, e| e.src.upgrade().is_some());
    }

    /// A free stream id (1..=65535).
    pub fn allocate_id(&mut self) -> u16 {
        self.gc();
        for _ in 0..=u16::MAX {
            self.next_id = self.next_id.checked_add(1).unwrap_or(1);
            let id = self.next_id;
            if !self
                .entries
                .values()
                .any(|e| e.stream_id == id && !e.joined)
            {
                return id;
            }
        }
        1
    }

    pub fn insert(&mut self, entry: Entry) -> u64 {
        self.next_key += 1;
        self.entries.insert(self.next_key, entry);
        self.next_key
    }

    pub fn exists(&mut self, id: u16) -> bool {
        self.gc();
        self.entries
            .values()
            .any(|e| e.stream_id == id && !e.joined)
    }

    /// Whether any stream or joined copy has this id (PLAY/TEARDOWN of a joined session
    /// outlive the owner's stream).
    pub fn exists_any(&mut self, id: u16) -> bool {
        self.gc();
        self.entries.values().any(|e| e.stream_id == id)
    }

    pub fn owner_entry(&mut self, id: u16) -> Option<&Entry> {
        self.gc();
        self.entries
            .values()
            .find(|e| e.stream_id == id && !e.joined)
    }

    pub fn by_media(&mut self, media: &gst_rtsp_server::RTSPMedia) -> Option<&mut Entry> {
        self.entries
            .values_mut()
            .find(|e| e.media.upgrade().as_ref() == Some(media))
    }
}

/// `satip-<key>` → key.
pub fn key_of_element(name: &str) -> Option<u64> {
    name.strip_prefix("satip-")?.parse().ok()
}

/// The `s=` counts: `SatIPServer:1 <sat>` or `<sat>,<terr>,<cable>`.
fn frontend_counts() -> String {
    let fes = gstdvb2ip::tuners::frontends();
    let count = |f: fn(DelSys) -> bool| {
        fes.iter()
            .filter(|x| x.delsys.iter().any(|d| f(*d)))
            .count()
    };
    let sat = count(DelSys::is_satellite);
    let terr = count(DelSys::is_terrestrial);
    let cable = count(DelSys::is_cable);
    if terr == 0 && cable == 0 {
        sat.to_string()
    } else {
        format!("{sat},{terr},{cable}")
    }
}

/// SDP of DESCRIBE (§4.2) for the given (stream id, status, playing) blocks.
pub fn sdp(server_ip: &str, blocks: &[(u16, String, bool)]) -> String {
    let sess = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let mut s = format!(
        "v=0\r\no=- {sess} {sess} IN IP4 {server_ip}\r\ns=SatIPServer:1 {}\r\nt=0 0\r\n",
        frontend_counts()
    );
    for (id, status, playing) in blocks {
        s += &format!(
            "m=video 0 RTP/AVP 33\r\nc=IN IP4 0.0.0.0\r\na=control:stream={id}\r\na=fmtp:33 {status}\r\na={}\r\n",
            if *playing { "sendonly" } else { "inactive" }
        );
    }
    s
}

/// The media blocks of every stream (`None`) or of stream `id`.
pub fn blocks(id: Option<u16>) -> Vec<(u16, String, bool)> {
    let mut st = STREAMS.lock().unwrap();
    st.gc();
    st.entries
        .values()
        .filter(|e| !e.joined && id.is_none_or(|i| i == e.stream_id))
        .filter_map(|e| Some((e.stream_id, e.status()?, e.playing)))
        .collect()
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
        assert_eq!(uri_path("rtsp://h:1?src=1"), "");
        assert!(matches!(route("rtsp://h/ch/news"), Route::Other));
        assert!(matches!(
            route("rtsp://h/?src=1&freq=506&msys=dvbt"),
            Route::Satip(Ok(_))
        ));
        assert!(matches!(route("rtsp://h/strem=1"), Route::Satip(Err(_))));
    }

    #[test]
    fn sdp_layout() {
        let s = sdp(
            "10.0.0.5",
            &[(
                3,
                "ver=1.1;tuner=1,0,0,0,506.00,8,dvbt,,,,,,,;pids=0".into(),
                true,
            )],
        );
        let lines: Vec<&str> = s.split("\r\n").collect();
        assert_eq!(lines[0], "v=0");
        assert!(lines[1].starts_with("o=- ") && lines[1].ends_with(" IN IP4 10.0.0.5"));
        assert!(lines[2].starts_with("s=SatIPServer:1 "));
        assert_eq!(lines[3], "t=0 0");
        assert_eq!(
            &lines[4..9],
            &[
                "m=video 0 RTP/AVP 33",
                "c=IN IP4 0.0.0.0",
                "a=control:stream=3",
                "a=fmtp:33 ver=1.1;tuner=1,0,0,0,506.00,8,dvbt,,,,,,,;pids=0",
                "a=sendonly"
            ]
        );
    }
}
