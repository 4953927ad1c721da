//! The SAT>IP stream table (stream ids, owners, the media serving each stream), URL routing
//! and the SDP of DESCRIBE.

use std::collections::BTreeMap;
use std::sync::Mutex;

use gst::glib;
use gst::prelude::*;
use gstdvb2ip::proto::satip::{
    parse_query, parse_target, Change, Delivery, QueryError, StreamSpec, Target, TransportSpec,
};

use super::direct::SatipStream;
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

/// What serves a stream.
pub enum Backend {
    /// A media of its own (multicast, RTP over RTSP, DESCRIBE with a query): its
    /// `satipmapsrc` and the media.
    Media {
        src: glib::WeakRef<gst::Element>,
        media: glib::WeakRef<gst_rtsp_server::RTSPMedia>,
    },
    /// A unicast RTP/UDP stream on the shared media, owned by its session media.
    Direct(std::sync::Weak<SatipStream>),
}

/// One stream (or one non-owner copy of a stream joined through `stream=N`).
pub struct Entry {
    /// The SAT>IP stream id (`com.ses.streamID`).
    pub stream_id: u16,
    /// A non-owner copy created by a SETUP on `/stream=N` of another session's stream.
    pub joined: bool,
    pub backend: Backend,
    /// Session id of the owner, once its SETUP succeeded.
    pub owner: Option<String>,
    pub playing: bool,
}

impl Entry {
    fn alive(&self) -> bool {
        match &self.backend {
            Backend::Media { src, .. } => src.upgrade().is_some(),
            Backend::Direct(s) => s.strong_count() > 0,
        }
    }

    /// The media of a stream with a media of its own.
    pub fn media(&self) -> Option<gst_rtsp_server::RTSPMedia> {
        match &self.backend {
            Backend::Media { media, .. } => media.upgrade(),
            Backend::Direct(_) => None,
        }
    }

    /// The stream's current spec, read back from what serves it (the source of truth).
    pub fn spec(&self) -> Option<StreamSpec> {
        match &self.backend {
            Backend::Media { src, .. } => {
                let src = src.upgrade()?;
                let req: Option<String> = src.property("request");
                let q = parse_query(&req?).ok()?;
                StreamSpec::create(&q, usize::MAX).ok()
            }
            Backend::Direct(s) => Some(s.upgrade()?.spec()),
        }
    }

    pub fn status(&self) -> Option<String> {
        match &self.backend {
            Backend::Media { src, .. } => src.upgrade().map(|s| s.property::<String>("status")),
            Backend::Direct(s) => Some(s.upgrade()?.status()),
        }
    }

    /// Applies a modified stream (`new`, `change` from [`StreamSpec::apply`]); returns
    /// whether a frontend serves it afterwards. Call without the table locked.
    pub fn update(backend: &Backend, new: StreamSpec, change: Change) -> bool {
        match backend {
            Backend::Media { src, .. } => {
                let Some(src) = src.upgrade() else {
                    return false;
                };
                src.set_property("request", new.canonical_query());
                change != Change::Retune || src.property::<u32>("frontend-number") > 0
            }
            Backend::Direct(s) => s.upgrade().is_some_and(|s| s.update(new, change)),
        }
    }
}

impl Clone for Backend {
    fn clone(&self) -> Self {
        match self {
            Backend::Media { src, media } => Backend::Media {
                src: src.clone(),
                media: media.clone(),
            },
            Backend::Direct(s) => Backend::Direct(s.clone()),
        }
    }
}

#[derive(Default)]
pub struct Streams {
    next_key: u64,
    next_id: u16,
    /// By internal key (the number in the media's bin name `satip-<key>`, or
    /// [`SatipStream::key`]).
    pub entries: BTreeMap<u64, Entry>,
    /// The transport each entry's session got in its SETUP answer (same keys as `entries`).
    pub transports: BTreeMap<u64, TransportSpec>,
}

pub static STREAMS: Lazy<Mutex<Streams>> = Lazy::new(|| Mutex::new(Streams::default()));

impl Streams {
    fn gc(&mut self) {
        self.entries.retain(|_, e| e.alive());
        let entries = &self.entries;
        self.transports.retain(|k, _| entries.contains_key(k));
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

    /// The internal key of the entry served by `media`.
    pub fn key_of_media(&self, media: &gst_rtsp_server::RTSPMedia) -> Option<u64> {
        self.entries
            .iter()
            .find(|(_, e)| e.media().as_ref() == Some(media))
            .map(|(k, _)| *k)
    }

    /// The transport of the owner's session of stream `id`, once set up.
    pub fn owner_transport(&mut self, id: u16) -> Option<&TransportSpec> {
        self.gc();
        let key = self
            .entries
            .iter()
            .find(|(_, e)| e.stream_id == id && !e.joined)
            .map(|(k, _)| *k)?;
        self.transports.get(&key)
    }

    pub fn by_media(&mut self, media: &gst_rtsp_server::RTSPMedia) -> Option<&mut Entry> {
        self.entries
            .values_mut()
            .find(|e| e.media().as_ref() == Some(media))
    }
}

/// `satip-<key>` → key.
pub fn key_of_element(name: &str) -> Option<u64> {
    name.strip_prefix("satip-")?.parse().ok()
}

/// The `s=` counts: `SatIPServer:1 <sat>` or `<sat>,<terr>,<cable>`.
fn frontend_counts() -> String {
    // The X_SATIPCAP groups (the same numbering as `fe=`).
    let caps = crate::ssdp::description::caps_from_frontends();
    let sat = caps.dvbs2;
    let terr = caps.dvbt + caps.dvbt2;
    let cable = caps.dvbc + caps.dvbc2;
    if terr == 0 && cable == 0 {
        sat.to_string()
    } else {
        format!("{sat},{terr},{cable}")
    }
}

/// One media block of the SDP (§4.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Block {
    pub stream_id: u16,
    /// The status string (`a=fmtp:33`).
    pub status: String,
    pub playing: bool,
    /// Multicast (group, RTP port, TTL); `None` for unicast streams.
    pub multicast: Option<(std::net::Ipv4Addr, u16, u8)>,
}

/// Multicast group, port and TTL of a transport, if it is a complete multicast one.
pub fn multicast_of(t: &TransportSpec) -> Option<(std::net::Ipv4Addr, u16, u8)> {
    match (t.delivery, t.destination, t.port) {
        (Delivery::Multicast, Some(d), Some((p, _))) => Some((d, p, t.ttl.unwrap_or(1))),
        _ => None,
    }
}

/// SDP of DESCRIBE (§4.2) for the given blocks.
pub fn sdp(server_ip: &str, blocks: &[Block]) -> String {
    let sess = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let mut s = format!(
        "v=0\r\no=- {sess} {sess} IN IP4 {server_ip}\r\ns=SatIPServer:1 {}\r\nt=0 0\r\n",
        frontend_counts()
    );
    for b in blocks {
        // Unicast: port 0 and 0.0.0.0; multicast: the group's RTP port and group/ttl (§4.2).
        let (port, conn) = match b.multicast {
            Some((group, port, ttl)) => (port, format!("{group}/{ttl}")),
            None => (0, "0.0.0.0".to_string()),
        };
        s += &format!(
            "m=video {port} RTP/AVP 33\r\nc=IN IP4 {conn}\r\na=control:stream={}\r\na=fmtp:33 {}\r\na={}\r\n",
            b.stream_id,
            b.status,
            if b.playing { "sendonly" } else { "inactive" }
        );
    }
    s
}

/// The media blocks of every stream (`None`) or of stream `id`.
pub fn blocks(id: Option<u16>) -> Vec<Block> {
    let mut st = STREAMS.lock().unwrap();
    st.gc();
    st.entries
        .iter()
        .filter(|(_, e)| !e.joined && id.is_none_or(|i| i == e.stream_id))
        .filter_map(|(k, e)| {
            Some(Block {
                stream_id: e.stream_id,
                status: e.status()?,
                playing: e.playing,
                multicast: st.transports.get(k).and_then(multicast_of),
            })
        })
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
            &[
                Block {
                    stream_id: 3,
                    status: "ver=1.1;tuner=1,0,0,0,506.00,8,dvbt,,,,,,,;pids=0".into(),
                    playing: true,
                    multicast: None,
                },
                Block {
                    stream_id: 4,
                    status: "ver=1.2;tuner=3,0,0,0,346.00,,dvbc,256qam,6900,,,,;pids=0".into(),
                    playing: false,
                    multicast: Some((std::net::Ipv4Addr::new(239, 1, 0, 2), 5004, 2)),
                },
            ],
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
        // 76: a multicast block names its group/ttl and RTP port.
        assert_eq!(
            &lines[9..12],
            &[
                "m=video 5004 RTP/AVP 33",
                "c=IN IP4 239.1.0.2/2",
                "a=control:stream=4"
            ]
        );
        assert_eq!(lines[13], "a=inactive");
    }
}
