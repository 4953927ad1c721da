//! The server's session registry (`core.clients`): every client receiving a stream, whatever
//! front end serves it. The RTSP client registers a session when its SETUP succeeded
//! (src/rtsp/client.rs), the HTTP streamer an HTTP stream once it started (src/http/stream.rs),
//! the browser players theirs (src/play), and relay, `/live/` and `/vod/` responses wrap their
//! bodies in [`Clients::track_http`].
//! Each entry carries how to tell whether it still runs and how to end it, so the registry needs
//! no hook on every way a session ends: dead entries are dropped when the list is read.
//!
//! The web UI and `GET /api/sessions` list it; `DELETE /api/sessions/<id>` ends one
//! ([`Clients::disconnect`]).

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::Serialize;

/// How a client receives its stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Protocol {
    #[serde(rename = "rtsp/udp")]
    RtspUdp,
    #[serde(rename = "rtsp/tcp")]
    RtspTcp,
    #[serde(rename = "multicast")]
    Multicast,
    #[serde(rename = "http")]
    Http,
}

impl Protocol {
    /// Every protocol, in the order of [`Protocol::index`].
    pub const ALL: [Protocol; 4] = [
        Protocol::RtspUdp,
        Protocol::RtspTcp,
        Protocol::Multicast,
        Protocol::Http,
    ];

    /// Its position in [`Protocol::ALL`].
    fn index(self) -> usize {
        self as usize
    }

    /// The name the API and the metrics use (`rtsp/udp`, …).
    pub fn name(self) -> &'static str {
        match self {
            Protocol::RtspUdp => "rtsp/udp",
            Protocol::RtspTcp => "rtsp/tcp",
            Protocol::Multicast => "multicast",
            Protocol::Http => "http",
        }
    }

    /// The protocol of an RTSP `Transport` value (as the server answered it).
    pub fn of_transport(transport: &str) -> Protocol {
        let t = transport.to_ascii_lowercase();
        if t.contains("interleaved") || t.contains("rtp/avp/tcp") {
            Protocol::RtspTcp
        } else if t.contains("multicast") {
            Protocol::Multicast
        } else {
            Protocol::RtspUdp
        }
    }
}

/// Tells whether a session still runs.
pub type AliveFn = Box<dyn Fn() -> bool + Send + Sync>;
/// Ends a session.
pub type EndFn = Box<dyn Fn() + Send + Sync>;
/// Reads the bytes sent to a client so far (`None`: not known for this session).
pub type BytesFn = Box<dyn Fn() -> Option<u64> + Send + Sync>;
/// Finds the channel name of a request path and SAT>IP query.
pub type LookupFn = Box<dyn Fn(&str, &str) -> Option<String> + Send + Sync>;

/// What a front end tells about a new session.
pub struct NewClient {
    /// Front end's own id (the RTSP session id; `None`: a number is given).
    pub key: Option<String>,
    pub protocol: Protocol,
    /// The client's address and port.
    pub peer: String,
    pub user_agent: String,
    /// The request path (`/`, `/ch/<name>`, `/stream=N`) and SAT>IP query it asked for.
    pub path: String,
    pub query: String,
    pub alive: AliveFn,
    pub end: EndFn,
    pub bytes: Option<BytesFn>,
}

struct Entry {
    c: NewClient,
    channel: Option<String>,
    pids: String,
    started: Instant,
    started_unix_s: u64,
    /// The bytes-sent samples of its bitrate.
    meter: Mutex<Meter>,
    /// The most bytes sent any reading saw (what it adds to the totals when it ends).
    most_bytes: AtomicU64,
}

impl Entry {
    /// Bytes sent now (`None`: not known for this session), noted in `most_bytes`.
    fn bytes(&self) -> Option<u64> {
        let b = self.c.bytes.as_ref().and_then(|b| b())?;
        self.most_bytes.fetch_max(b, Ordering::Relaxed);
        Some(b)
    }
}

/// Sessions and bytes sent of one protocol, for the metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProtocolTotals {
    pub protocol: Protocol,
    /// Sessions running now.
    pub sessions: usize,
    /// Bytes sent to its sessions since the server started (ended sessions included; never
    /// decreases).
    pub bytes_sent: u64,
}

/// Span of the sliding window `bitrate_bps` is measured over.
pub const BITRATE_WINDOW: Duration = Duration::from_secs(3);
/// Shortest span a bitrate is given for (a session just registered has none yet).
const BITRATE_MIN_SPAN: Duration = Duration::from_millis(500);
/// Samples closer together than this are not kept (many readers in one second).
const SAMPLE_EVERY: Duration = Duration::from_millis(200);

/// A session's bitrate over a sliding window: samples of its byte count taken whenever the
/// registry is read (every UI client and `/api/sessions` read), the oldest dropped once a
/// newer one spans the window. Without readers for a while, the first reading averages since
/// the previous one (or since the session started).
#[derive(Debug)]
pub struct Meter {
    samples: VecDeque<(Instant, u64)>,
}

impl Meter {
    /// A meter whose first sample is `bytes` at `now`.
    pub fn new(now: Instant, bytes: u64) -> Meter {
        Meter {
            samples: VecDeque::from([(now, bytes)]),
        }
    }

    /// Notes `bytes` sent by `now`; the bits per second over the window ending now (`None`
    /// while the samples span less than half a second).
    pub fn sample(&mut self, now: Instant, bytes: u64) -> Option<u64> {
        if self
            .samples
            .back()
            .is_none_or(|(t, _)| now.saturating_duration_since(*t) >= SAMPLE_EVERY)
        {
            self.samples.push_back((now, bytes));
        }
        // Keep one sample at or beyond the window's start: the oldest goes when the next one
        // already spans the whole window.
        while self.samples.len() > 2
            && now.saturating_duration_since(self.samples[1].0) >= BITRATE_WINDOW
        {
            self.samples.pop_front();
        }
        let (t0, b0) = *self.samples.front()?;
        let span = now.saturating_duration_since(t0);
        (span >= BITRATE_MIN_SPAN)
            .then(|| (bytes.saturating_sub(b0) as f64 * 8.0 / span.as_secs_f64()) as u64)
    }
}

/// One session as the API lists it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct SessionInfo {
    pub id: String,
    pub protocol: Protocol,
    pub client_address: String,
    pub client_port: u16,
    pub user_agent: String,
    pub channel: Option<String>,
    pub path: String,
    pub query: String,
    /// PIDs asked for (`all`, `none` or a comma list).
    pub pids: String,
    /// Bits per second sent over the last [`BITRATE_WINDOW`] (3 s; RTP headers and payload,
    /// or the HTTP response's bytes). `None`: not measured for this kind of session, or too
    /// soon after it started.
    pub bitrate_bps: Option<u64>,
    pub bytes_sent: Option<u64>,
    pub duration_s: u64,
    pub started_unix_s: u64,
}

/// The registry (see the module documentation).
pub struct Clients {
    next: AtomicU64,
    map: Mutex<BTreeMap<String, Arc<Entry>>>,
    lookup: LookupFn,
    /// Entries at which [`Clients::register`] forgets the ended ones (twice the live count
    /// of the last time, at least [`PRUNE_MIN`]), so a server nobody lists keeps no more than
    /// twice its sessions.
    prune_at: std::sync::atomic::AtomicUsize,
    /// Bytes sent to ended sessions, by [`Protocol::index`].
    ended_bytes: [AtomicU64; 4],
}

/// The smallest registry size at which ended sessions are forgotten on registration.
const PRUNE_MIN: usize = 64;

impl std::fmt::Debug for Clients {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Clients")
            .field("len", &self.map.lock().unwrap().len())
            .finish()
    }
}

/// The `pids=` value of a query (`all` when none is given).
fn pids_of(query: &str) -> String {
    query
        .trim_start_matches('?')
        .split('&')
        .find_map(|kv| kv.strip_prefix("pids="))
        .map(str::to_owned)
        .unwrap_or_else(|| "all".into())
}

/// `addr:port` split (IPv6 in brackets or not).
fn split_peer(peer: &str) -> (String, u16) {
    match peer.parse::<std::net::SocketAddr>() {
        Ok(a) => (a.ip().to_canonical().to_string(), a.port()),
        Err(_) => (peer.to_owned(), 0),
    }
}

impl Clients {
    /// An empty registry naming channels with `lookup`.
    pub fn new(lookup: LookupFn) -> Clients {
        Clients {
            next: AtomicU64::new(1),
            map: Mutex::new(BTreeMap::new()),
            lookup,
            prune_at: std::sync::atomic::AtomicUsize::new(PRUNE_MIN),
            ended_bytes: Default::default(),
        }
    }

    /// Registers (or, for a known `key`, replaces) a session; returns its id.
    pub fn register(&self, c: NewClient) -> String {
        let id = match &c.key {
            Some(k) => format!("rtsp-{k}"),
            None => format!("http-{}", self.next.fetch_add(1, Ordering::Relaxed)),
        };
        let channel = (self.lookup)(&c.path, &c.query);
        let pids = if c.query.is_empty() && c.path.starts_with("/ch/") {
            "channel".into()
        } else {
            pids_of(&c.query)
        };
        let now = Instant::now();
        let mut map = self.map.lock().unwrap();
        let (started, started_unix_s) = match map.get(&id) {
            // A PLAY or SETUP again on the same session keeps its start.
            Some(old) => (old.started, old.started_unix_s),
            None => (
                now,
                SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs()),
            ),
        };
        let first = c.bytes.as_ref().and_then(|b| b()).unwrap_or(0);
        map.insert(
            id.clone(),
            Arc::new(Entry {
                c,
                channel,
                pids,
                started,
                started_unix_s,
                meter: Mutex::new(Meter::new(now, first)),
                most_bytes: AtomicU64::new(first),
            }),
        );
        let len = map.len();
        drop(map);
        if len >= self.prune_at.load(Ordering::Relaxed) {
            let live = self.live().len();
            self.prune_at
                .store((live * 2).max(PRUNE_MIN), Ordering::Relaxed);
        }
        id
    }

    /// Entries held, ended ones included until they are forgotten.
    pub fn held(&self) -> usize {
        self.map.lock().unwrap().len()
    }

    /// The entries still running (the others are forgotten now).
    fn live(&self) -> Vec<(String, Arc<Entry>)> {
        let all: Vec<(String, Arc<Entry>)> = self
            .map
            .lock()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        // `alive` may take other locks (the RTSP session pool): called without ours.
        let (live, dead): (Vec<_>, Vec<_>) = all.into_iter().partition(|(_, e)| (e.c.alive)());
        if !dead.is_empty() {
            let mut map = self.map.lock().unwrap();
            for (k, e) in dead {
                if map.get(&k).is_some_and(|now| Arc::ptr_eq(now, &e)) {
                    map.remove(&k);
                    self.ended(&e);
                }
            }
        }
        live
    }

    /// The running sessions, oldest first.
    pub fn list(&self) -> Vec<SessionInfo> {
        let now = Instant::now();
        let mut v: Vec<SessionInfo> = self
            .live()
            .into_iter()
            .map(|(id, e)| {
                let (address, port) = split_peer(&e.c.peer);
                let bytes = e.bytes();
                let bitrate = bytes.and_then(|b| e.meter.lock().unwrap().sample(now, b));
                SessionInfo {
                    id,
                    protocol: e.c.protocol,
                    client_address: address,
                    client_port: port,
                    user_agent: e.c.user_agent.clone(),
                    channel: e.channel.clone(),
                    path: e.c.path.clone(),
                    query: e.c.query.clone(),
                    pids: e.pids.clone(),
                    bitrate_bps: bitrate,
                    bytes_sent: bytes,
                    duration_s: now.duration_since(e.started).as_secs(),
                    started_unix_s: e.started_unix_s,
                }
            })
            .collect();
        v.sort_by(|a, b| (a.started_unix_s, &a.id).cmp(&(b.started_unix_s, &b.id)));
        v
    }

    /// Sessions running now, by protocol.
    pub fn count(&self) -> usize {
        self.live().len()
    }

    /// An entry leaves the registry: its bytes join its protocol's total.
    fn ended(&self, e: &Entry) {
        self.ended_bytes[e.c.protocol.index()]
            .fetch_add(e.most_bytes.load(Ordering::Relaxed), Ordering::Relaxed);
    }

    /// Per protocol: sessions running and bytes sent since the server started.
    pub fn totals(&self) -> Vec<ProtocolTotals> {
        let live = self.live();
        Protocol::ALL
            .iter()
            .map(|&protocol| {
                let mine = live.iter().filter(|(_, e)| e.c.protocol == protocol);
                let running: u64 = mine
                    .clone()
                    .map(|(_, e)| {
                        e.bytes();
                        e.most_bytes.load(Ordering::Relaxed)
                    })
                    .sum();
                ProtocolTotals {
                    protocol,
                    sessions: mine.count(),
                    bytes_sent: self.ended_bytes[protocol.index()].load(Ordering::Relaxed)
                        + running,
                }
            })
            .collect()
    }

    /// Ends session `id`; false when no such session runs.
    pub fn disconnect(&self, id: &str) -> bool {
        let entry = self.map.lock().unwrap().get(id).cloned();
        let Some(e) = entry else {
            return false;
        };
        if !(e.c.alive)() {
            if let Some(e) = self.map.lock().unwrap().remove(id) {
                self.ended(&e);
            }
            return false;
        }
        (e.c.end)();
        e.bytes();
        if let Some(e) = self.map.lock().unwrap().remove(id) {
            self.ended(&e);
        }
        true
    }
}

/// An HTTP response body that streams: listed in the registry while it is sent, its bytes
/// counted, ended by [`Clients::disconnect`] (the body finishes, the connection closes).
pub type StreamBody = std::pin::Pin<
    Box<dyn futures_util::Stream<Item = Result<axum::body::Bytes, std::io::Error>> + Send>,
>;

/// The shared state of one tracked HTTP body.
#[derive(Default)]
struct Tracked {
    sent: AtomicU64,
    /// Set by `end` (the disconnect action).
    ended: std::sync::atomic::AtomicBool,
    /// Set when the body is dropped (the connection closed) or finished.
    done: std::sync::atomic::AtomicBool,
    wake: tokio::sync::Notify,
}

/// Marks the body done when it is dropped.
struct DoneOnDrop(Arc<Tracked>);

impl Drop for DoneOnDrop {
    fn drop(&mut self) {
        self.0.done.store(true, Ordering::Relaxed);
    }
}

impl Clients {
    /// Registers an HTTP stream that `body` sends to `peer` (a relay, a `/live/` mount, a file
    /// download, a browser player's stream) and returns the body to answer with: it counts the
    /// bytes sent (`bitrate_bps`, `bytes_sent`) and ends when the session is disconnected.
    pub fn track_http(
        &self,
        peer: std::net::SocketAddr,
        user_agent: String,
        path: String,
        body: StreamBody,
    ) -> StreamBody {
        use futures_util::StreamExt;
        let t = Arc::new(Tracked::default());
        let (alive, end, sent) = (t.clone(), t.clone(), t.clone());
        self.register(NewClient {
            key: None,
            protocol: Protocol::Http,
            peer: peer.to_string(),
            user_agent,
            path,
            query: String::new(),
            alive: Box::new(move || {
                !alive.done.load(Ordering::Relaxed) && !alive.ended.load(Ordering::Relaxed)
            }),
            end: Box::new(move || {
                end.ended.store(true, Ordering::Relaxed);
                end.wake.notify_one();
            }),
            bytes: Some(Box::new(move || Some(sent.sent.load(Ordering::Relaxed)))),
        });
        let guard = DoneOnDrop(t);
        // A disconnect ends the body with an error, so that the server closes the connection
        // (a body that just finishes would leave a kept-alive connection open).
        let cut = || std::io::Error::other("session disconnected");
        Box::pin(futures_util::stream::unfold(
            Some((body, guard)),
            move |state| async move {
                let (mut body, guard) = state?;
                let t = guard.0.clone();
                if t.ended.load(Ordering::Relaxed) {
                    return Some((Err(cut()), None));
                }
                let item = tokio::select! {
                    item = body.next() => item?,
                    _ = t.wake.notified() => return Some((Err(cut()), None)),
                };
                if let Ok(b) = &item {
                    t.sent.fetch_add(b.len() as u64, Ordering::Relaxed);
                }
                Some((item, Some((body, guard))))
            },
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicBool;

    #[test]
    fn registers_lists_and_ends() {
        let clients = Clients::new(Box::new(|path, query| {
            (path == "/ch/one" || query.contains("freq=474")).then(|| "One".to_owned())
        }));
        let alive = Arc::new(AtomicBool::new(true));
        let (a, b) = (alive.clone(), alive.clone());
        let id = clients.register(NewClient {
            key: Some("abc".into()),
            protocol: Protocol::of_transport("RTP/AVP;unicast;client_port=5000-5001"),
            peer: "127.0.0.1:40000".into(),
            user_agent: "test/1".into(),
            path: "/".into(),
            query: "freq=474&pids=0,256".into(),
            alive: Box::new(move || a.load(Ordering::SeqCst)),
            end: Box::new(move || b.store(false, Ordering::SeqCst)),
            bytes: Some(Box::new(|| Some(1000))),
        });
        assert_eq!(id, "rtsp-abc");
        let l = clients.list();
        assert_eq!(l.len(), 1);
        assert_eq!(l[0].protocol, Protocol::RtspUdp);
        assert_eq!(l[0].client_address, "127.0.0.1");
        assert_eq!(l[0].client_port, 40000);
        assert_eq!(l[0].channel.as_deref(), Some("One"));
        assert_eq!(l[0].pids, "0,256");
        assert_eq!(l[0].bytes_sent, Some(1000));
        assert!(!clients.disconnect("rtsp-nope"));
        assert!(clients.disconnect("rtsp-abc"));
        assert!(!alive.load(Ordering::SeqCst));
        assert!(clients.list().is_empty());
        assert_eq!(
            Protocol::of_transport("RTP/AVP/TCP;interleaved=0-1"),
            Protocol::RtspTcp
        );
        assert_eq!(
            Protocol::of_transport("RTP/AVP;multicast;destination=239.0.0.1"),
            Protocol::Multicast
        );
        let json = serde_json::to_value(Protocol::Http).unwrap();
        assert_eq!(json, "http");
    }

    #[test]
    fn totals_by_protocol_never_decrease_when_sessions_end() {
        let clients = Clients::new(Box::new(|_, _| None));
        let sent = Arc::new(AtomicU64::new(0));
        let alive = Arc::new(AtomicBool::new(true));
        let client = |key: &str, protocol, sent: &Arc<AtomicU64>, alive: &Arc<AtomicBool>| {
            let (s, a) = (sent.clone(), alive.clone());
            NewClient {
                key: Some(key.into()),
                protocol,
                peer: String::new(),
                user_agent: String::new(),
                path: "/".into(),
                query: String::new(),
                alive: Box::new(move || a.load(Ordering::SeqCst)),
                end: Box::new(|| {}),
                bytes: Some(Box::new(move || Some(s.load(Ordering::SeqCst)))),
            }
        };
        clients.register(client("a", Protocol::RtspTcp, &sent, &alive));
        let other = Arc::new(AtomicU64::new(7));
        let stays = Arc::new(AtomicBool::new(true));
        clients.register(client("b", Protocol::Http, &other, &stays));
        sent.store(1000, Ordering::SeqCst);
        let t = clients.totals();
        assert_eq!(t.len(), 4);
        let tcp =
            |t: &[ProtocolTotals]| *t.iter().find(|p| p.protocol.name() == "rtsp/tcp").unwrap();
        assert_eq!(tcp(&t).sessions, 1);
        assert_eq!(tcp(&t).bytes_sent, 1000);
        assert_eq!(t[Protocol::Http.index()].bytes_sent, 7);
        // It ends (its count no longer readable): its bytes stay in the total.
        alive.store(false, Ordering::SeqCst);
        sent.store(0, Ordering::SeqCst);
        let t = clients.totals();
        assert_eq!((tcp(&t).sessions, tcp(&t).bytes_sent), (0, 1000));
        // Another one adds to it; a disconnected one too.
        let more = Arc::new(AtomicU64::new(500));
        let up = Arc::new(AtomicBool::new(true));
        clients.register(client("c", Protocol::RtspTcp, &more, &up));
        assert_eq!(tcp(&clients.totals()).bytes_sent, 1500);
        assert!(clients.disconnect("rtsp-c"));
        assert_eq!(tcp(&clients.totals()).bytes_sent, 1500);
        assert_eq!(clients.totals()[Protocol::Http.index()].sessions, 1);
    }

    #[test]
    fn bitrate_over_a_sliding_window() {
        let t = Instant::now();
        let at = |ms: u64| t + Duration::from_millis(ms);
        let mut m = Meter::new(t, 0);
        assert_eq!(m.sample(at(100), 1_000), None, "too soon");
        // 1 Mbit/s for 4 s: 125,000 bytes a second.
        for i in 1..=8u64 {
            let r = m.sample(at(i * 500), i * 62_500);
            assert_eq!(r, Some(1_000_000), "at {} ms", i * 500);
        }
        // Then 2 Mbit/s: the window forgets the first rate within its span.
        let mut bytes = 8 * 62_500;
        let mut last = None;
        for i in 9..=16u64 {
            bytes += 125_000;
            last = m.sample(at(i * 500), bytes);
        }
        assert_eq!(last, Some(2_000_000));
        assert!(m.samples.len() <= 8, "{} samples", m.samples.len());
        // Many readers at once do not pile samples up.
        for _ in 0..100 {
            m.sample(at(8_010), bytes);
        }
        assert!(m.samples.len() <= 9, "{} samples", m.samples.len());
    }

    #[test]
    fn ended_sessions_are_forgotten_without_anyone_listing() {
        let clients = Clients::new(Box::new(|_, _| None));
        let live = Arc::new(AtomicBool::new(true));
        let l = live.clone();
        clients.register(NewClient {
            key: Some("stays".into()),
            protocol: Protocol::Http,
            peer: String::new(),
            user_agent: String::new(),
            path: "/".into(),
            query: String::new(),
            alive: Box::new(move || l.load(Ordering::SeqCst)),
            end: Box::new(|| {}),
            bytes: None,
        });
        // 10,000 sessions that come and go, and nobody reads the list.
        for i in 0..10_000 {
            clients.register(NewClient {
                key: Some(format!("s{i}")),
                protocol: Protocol::RtspUdp,
                peer: String::new(),
                user_agent: String::new(),
                path: "/".into(),
                query: String::new(),
                alive: Box::new(|| false),
                end: Box::new(|| {}),
                bytes: None,
            });
            assert!(clients.held() <= PRUNE_MIN, "{} held", clients.held());
        }
        assert_eq!(clients.list().len(), 1);
        assert!(live.load(Ordering::SeqCst));
    }
}
