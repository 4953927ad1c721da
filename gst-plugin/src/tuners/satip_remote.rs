//! Remote SAT>IP tuners: a SAT>IP server (`[[satip_server]]` in the launcher's configuration)
//! lends its tuners to our pool as frontends of the delivery systems its `X_SATIPCAP`
//! announces. The pool uses them only when no local frontend can serve
//! ([`crate::proto::tuner_pool::Slot::remote`]).
//!
//! * A [`ServerWatch`] probes the server (`OPTIONS`): while it answers, its frontends are in the
//!   pool ([`Pool::add_remote`]); when it vanishes (connection refused, no answer) they leave
//!   it like an unplugged adapter ([`Pool::remove_remote`]: their users move or are told), and
//!   they come back when it answers again, probed with a growing backoff.
//! * A [`RemoteFeed`] is one running remote frontend: one thread owns its RTSP connection
//!   (SETUP with the tuning query and the PIDs the pool's subscribers want, PLAY), receives
//!   RTP/UDP on the connection's local address and feeds the TS into the pool like a local
//!   frontend's demux output. PID changes of the subscribers become `PLAY` with
//!   `addpids`/`delpids` (or `pids=`); `OPTIONS` keeps the session alive within its timeout;
//!   lock, level and quality come from the remote's RTCP APP `SES1` reports. A session that
//!   breaks is set up again with backoff while the frontend stays in the pool.
//!
//! Each remote frontend reports its state (idle, starting, live, failed), bytes in, starts,
//! failures and last error ([`RemoteReport`], in [`super::FrontendInfo::remote`]).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream, ToSocketAddrs, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use once_cell::sync::Lazy;

use super::feed::{Fanout, StatusTimer, TunerStatus};
use super::{PidFilter, Pool};
use crate::proto::satip::client::{
    frontends_from_satipcap, parse_tuner_status, pid_change_query, remote_tuning_query,
    rtp_payload, satipcap_in_description, ses1_in_compound, udn_in_description, ResponseHead,
};
use crate::proto::satip::PidSet;
use crate::proto::tuner_pool::{CapGroup, DelSys, Transponder};

static CAT: Lazy<gst::DebugCategory> = Lazy::new(|| {
    gst::DebugCategory::new(
        "dvb2ipremote",
        gst::DebugColorFlags::empty(),
        Some("dvb2ip remote SAT>IP tuners"),
    )
});

/// How long connecting to a remote may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a remote may take to answer a request.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(4);
/// How often a present server is probed.
const PROBE_INTERVAL: Duration = Duration::from_secs(1);
/// First and longest wait before probing an absent server (or setting up a broken session)
/// again; the wait doubles in between.
const BACKOFF_MIN: Duration = Duration::from_millis(500);
const BACKOFF_MAX: Duration = Duration::from_secs(5);
/// How often the subscribers' PID sets are compared with the remote session's.
const PID_POLL: Duration = Duration::from_millis(100);
/// A live session with PIDs that delivers nothing this long is taken as broken.
const DATA_TIMEOUT: Duration = Duration::from_secs(10);

/// Where a remote SAT>IP server is and what it lends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteServer {
    /// `rtsp://host:port/` as configured.
    pub url: String,
    pub host: String,
    pub port: u16,
    /// Frontends as configured (`frontends = "DVBT2-2"`), each with its delivery systems;
    /// `None`: read from `description` each time the server comes (back).
    pub frontends: Option<Vec<Vec<DelSys>>>,
    /// `http://…` of the server's UPnP device description (its `X_SATIPCAP`).
    pub description: Option<String>,
}

/// Splits `scheme://host[:port][/…]` into host, port (default `default_port`) and path.
fn split_url(url: &str, scheme: &str, default_port: u16) -> Result<(String, u16, String), String> {
    let rest = url
        .strip_prefix(scheme)
        .and_then(|r| r.strip_prefix("://"))
        .ok_or_else(|| format!("{url:?} does not start with {scheme}://"))?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], rest[i..].to_owned()),
        None => (rest, "/".to_owned()),
    };
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (h, after) = v6
            .split_once(']')
            .ok_or_else(|| format!("{url:?}: unclosed [ in the host"))?;
        (h.to_owned(), after.strip_prefix(':'))
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h.to_owned(), Some(p)),
            None => (authority.to_owned(), None),
        }
    };
    if host.is_empty() {
        return Err(format!("{url:?} has no host"));
    }
    let port = match port {
        Some(p) => p
            .parse::<u16>()
            .ok()
            .filter(|p| *p != 0)
            .ok_or_else(|| format!("{url:?}: {p:?} is not a port"))?,
        None => default_port,
    };
    Ok((host, port, path))
}

impl RemoteServer {
    /// A server from its configuration: the RTSP `url`, and its frontends either as an
    /// `X_SATIPCAP` list or through the `description` URL. Errors name the bad value.
    pub fn new(
        url: &str,
        frontends: Option<&str>,
        description: Option<&str>,
    ) -> Result<RemoteServer, String> {
        let (host, port, _) = split_url(url, "rtsp", 554)?;
        let frontends = frontends
            .map(|f| frontends_from_satipcap(f).map_err(|e| format!("frontends: {e}")))
            .transpose()?;
        if let Some(d) = description {
            split_url(d, "http", 80).map_err(|e| format!("description: {e}"))?;
        }
        if frontends.is_none() && description.is_none() {
            return Err(format!(
                "{url}: give its tuners as frontends = \"DVBS2-2,DVBT2-1\" (X_SATIPCAP) or \
                 the description = \"http://…/desc.xml\" that lists them"
            ));
        }
        Ok(RemoteServer {
            url: format!("rtsp://{}/", host_port(&host, port)),
            host,
            port,
            frontends,
            description: description.map(str::to_owned),
        })
    }

    /// A server found over SSDP: its description at `location` (the `LOCATION` of its
    /// announcement) must be a SAT>IP server's whose `UDN` is `uuid:<uuid>` and whose
    /// `X_SATIPCAP` lists its tuners. RTSP is on the description host, port
    /// `X-SATIP-RTSP-Port` (554 without it). Its tuners are read from the description each
    /// time it comes (back), as for a configured `description`.
    pub fn from_description(location: &str, uuid: &str) -> Result<RemoteServer, String> {
        let (host, _, _) = split_url(location, "http", 80)?;
        let (head, xml) = http_get(location)?;
        if !xml.contains(crate::proto::ssdp::message::SATIP_DEVICE_TYPE) {
            return Err(format!("{location}: not a SAT>IP server's description"));
        }
        match udn_in_description(&xml) {
            Some(udn) if udn.eq_ignore_ascii_case(&format!("uuid:{uuid}")) => {}
            other => {
                return Err(format!(
                    "{location}: its UDN {other:?} is not the announced uuid:{uuid}"
                ))
            }
        }
        let caps = satipcap_in_description(&xml)
            .ok_or_else(|| format!("{location}: the description has no X_SATIPCAP"))?;
        frontends_from_satipcap(caps).map_err(|e| format!("{location}: X_SATIPCAP {e}"))?;
        let port = match head
            .lines()
            .skip(1)
            .filter_map(|l| l.split_once(':'))
            .find(|(k, _)| k.trim().eq_ignore_ascii_case("X-SATIP-RTSP-Port"))
        {
            Some((_, v)) => v
                .trim()
                .parse::<u16>()
                .ok()
                .filter(|p| *p != 0)
                .ok_or_else(|| format!("{location}: X-SATIP-RTSP-Port {:?}", v.trim()))?,
            None => 554,
        };
        RemoteServer::new(
            &format!("rtsp://{}/", host_port(&host, port)),
            None,
            Some(location),
        )
    }

    /// `rtsp://host:port` without a path, for request URIs.
    fn base(&self) -> String {
        format!("rtsp://{}", host_port(&self.host, self.port))
    }

    fn addr(&self) -> Result<SocketAddr, String> {
        (self.host.as_str(), self.port)
            .to_socket_addrs()
            .map_err(|e| format!("{}: {e}", self.host))?
            .next()
            .ok_or_else(|| format!("{}: no address", self.host))
    }

    /// The frontends it lends now: as configured, else from its description.
    fn lent_frontends(&self) -> Result<Vec<Vec<DelSys>>, String> {
        if let Some(f) = &self.frontends {
            return Ok(f.clone());
        }
        let url = self.description.as_deref().unwrap_or_default();
        let (_, xml) = http_get(url)?;
        let caps = satipcap_in_description(&xml)
            .ok_or_else(|| format!("{url}: the description has no X_SATIPCAP"))?;
        frontends_from_satipcap(caps).map_err(|e| format!("{url}: X_SATIPCAP {e}"))
    }
}

fn host_port(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// A small blocking `GET` (the description of a SAT>IP server): head and body as text.
fn http_get(url: &str) -> Result<(String, String), String> {
    let (host, port, path) = split_url(url, "http", 80)?;
    let addr = (host.as_str(), port)
        .to_socket_addrs()
        .map_err(|e| format!("{url}: {e}"))?
        .next()
        .ok_or_else(|| format!("{url}: no address"))?;
    let mut s =
        TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT).map_err(|e| format!("{url}: {e}"))?;
    s.set_read_timeout(Some(ANSWER_TIMEOUT)).ok();
    s.set_write_timeout(Some(ANSWER_TIMEOUT)).ok();
    write!(
        s,
        "GET {path} HTTP/1.0\r\nHost: {}\r\nConnection: close\r\n\r\n",
        host_port(&host, port)
    )
    .map_err(|e| format!("{url}: {e}"))?;
    let mut body = Vec::new();
    s.take(1 << 20)
        .read_to_end(&mut body)
        .map_err(|e| format!("{url}: {e}"))?;
    let text = String::from_utf8_lossy(&body).into_owned();
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| format!("{url}: no HTTP answer"))?;
    let status = head.split_whitespace().nth(1).unwrap_or_default();
    if status != "200" {
        return Err(format!(
            "{url}: HTTP {}",
            head.lines().next().unwrap_or_default()
        ));
    }
    Ok((head.to_owned(), body.to_owned()))
}

/// What a remote frontend is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RemoteState {
    /// Not in use.
    #[default]
    Idle,
    /// Setting up its session on the remote (or waiting to retry).
    Starting,
    /// Receiving.
    Live,
    /// Its last session failed (`last_error`); set up again with backoff while in use.
    Failed,
}

impl RemoteState {
    pub fn name(self) -> &'static str {
        match self {
            RemoteState::Idle => "idle",
            RemoteState::Starting => "starting",
            RemoteState::Live => "live",
            RemoteState::Failed => "failed",
        }
    }
}

/// The counters of one remote frontend, kept across its sessions.
#[derive(Debug, Default)]
pub struct RemoteStats {
    bytes_in: AtomicU64,
    starts: AtomicU64,
    failures: AtomicU64,
    state: Mutex<(RemoteState, Option<String>)>,
}

impl RemoteStats {
    fn set(&self, state: RemoteState) {
        self.state.lock().unwrap().0 = state;
    }

    fn fail(&self, error: &str) {
        self.failures.fetch_add(1, Ordering::Relaxed);
        *self.state.lock().unwrap() = (RemoteState::Failed, Some(error.to_owned()));
    }
}

/// A remote frontend's report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteReport {
    /// `rtsp://host:port/` of its server.
    pub server: String,
    /// Its position among the server's frontends (0-based).
    pub position: u32,
    pub state: RemoteState,
    pub bytes_in: u64,
    /// Sessions set up (including retries) and sessions that failed.
    pub starts: u64,
    pub failures: u64,
    pub last_error: Option<String>,
}

/// One tuner of a remote server, as a member of the pool.
#[derive(Debug, Clone)]
pub struct RemoteFrontend {
    pub server: Arc<RemoteServer>,
    /// Its position among the server's frontends (0-based).
    pub position: u32,
    pub delsys: Vec<DelSys>,
    pub stats: Arc<RemoteStats>,
}

impl RemoteFrontend {
    /// `SAT>IP 127.0.0.1:8554 #1 DVBT2`.
    pub fn name(&self) -> String {
        let groups: Vec<&str> = CapGroup::of_frontend(&self.delsys)
            .iter()
            .map(|g| g.name())
            .collect();
        format!(
            "SAT>IP {} #{} {}",
            host_port(&self.server.host, self.server.port),
            self.position + 1,
            groups.join("/")
        )
    }

    pub fn report(&self) -> RemoteReport {
        let (state, last_error) = self.stats.state.lock().unwrap().clone();
        RemoteReport {
            server: self.server.url.clone(),
            position: self.position,
            state,
            bytes_in: self.stats.bytes_in.load(Ordering::Relaxed),
            starts: self.stats.starts.load(Ordering::Relaxed),
            failures: self.stats.failures.load(Ordering::Relaxed),
            last_error,
        }
    }
}

/// A running remote frontend: its thread stops (tearing the remote session down) on drop.
pub(crate) struct RemoteFeed {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl RemoteFeed {
    /// Starts receiving `transponder` from `fe` into `fanout`. Fails at once only when the
    /// transponder cannot be written as a SAT>IP query.
    pub fn start(
        fe: &RemoteFrontend,
        transponder: &Transponder,
        dvbsrc_properties: &[(String, String)],
        fanout: Arc<Fanout>,
        status: Arc<Mutex<TunerStatus>>,
    ) -> Result<RemoteFeed, String> {
        let query = remote_tuning_query(transponder, dvbsrc_properties)
            .map_err(|e| format!("remote tuner {}: {e}", fe.name()))?;
        let stop = Arc::new(AtomicBool::new(false));
        let run = Run {
            fe: fe.clone(),
            query,
            fanout,
            status,
            stop: stop.clone(),
        };
        fe.stats.set(RemoteState::Starting);
        let thread = std::thread::Builder::new()
            .name(format!("dvb2ip-remote{}", fe.position))
            .spawn(move || run.run())
            .map_err(|e| format!("cannot start a thread for {}: {e}", fe.name()))?;
        Ok(RemoteFeed {
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for RemoteFeed {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The PIDs the feed's subscribers want together.
fn wanted_pids(fanout: &Fanout) -> PidSet {
    let mut set = std::collections::BTreeSet::new();
    for s in fanout.snapshot() {
        match &*s.filter.lock().unwrap() {
            PidFilter::All => return PidSet::All,
            f => set.extend(f.pids()),
        }
    }
    PidSet::from_pids(set)
}

/// One RTSP control connection (requests and their answers, in turn).
struct Rtsp {
    reader: BufReader<TcpStream>,
    stream: TcpStream,
    cseq: u32,
}

impl Rtsp {
    fn connect(addr: SocketAddr) -> Result<Rtsp, String> {
        let stream = TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT)
            .map_err(|e| format!("{addr}: {e}"))?;
        stream.set_read_timeout(Some(ANSWER_TIMEOUT)).ok();
        stream.set_write_timeout(Some(ANSWER_TIMEOUT)).ok();
        stream.set_nodelay(true).ok();
        let reader = BufReader::new(
            stream
                .try_clone()
                .map_err(|e| format!("{addr}: cannot clone the socket: {e}"))?,
        );
        Ok(Rtsp {
            reader,
            stream,
            cseq: 0,
        })
    }

    /// Sends a request and reads its answer; anything but 200 is an error naming it.
    fn request(
        &mut self,
        method: &str,
        uri: &str,
        headers: &[(&str, &str)],
    ) -> Result<ResponseHead, String> {
        self.cseq += 1;
        let mut req = format!(
            "{method} {uri} RTSP/1.0\r\nCSeq: {}\r\nUser-Agent: dvb2ip\r\n",
            self.cseq
        );
        for (k, v) in headers {
            req += &format!("{k}: {v}\r\n");
        }
        req += "\r\n";
        self.stream
            .write_all(req.as_bytes())
            .map_err(|e| format!("{method}: {e}"))?;
        let mut head = String::new();
        loop {
            let mut line = String::new();
            let n = self
                .reader
                .read_line(&mut line)
                .map_err(|e| format!("{method}: {e}"))?;
            if n == 0 {
                return Err(format!("{method}: the remote closed the connection"));
            }
            if line.trim().is_empty() {
                if head.is_empty() {
                    continue;
                }
                break;
            }
            if head.len() > 16 * 1024 {
                return Err(format!("{method}: answer head too long"));
            }
            head += &line;
        }
        let resp = ResponseHead::parse(head.trim_end()).map_err(|e| format!("{method}: {e}"))?;
        let mut body = vec![0u8; resp.content_length().min(1 << 20)];
        self.reader
            .read_exact(&mut body)
            .map_err(|e| format!("{method}: {e}"))?;
        if resp.status != 200 {
            let why = resp.header("X-SATIP-RTSP-Info").unwrap_or_default();
            return Err(format!(
                "{method} {uri}: {} {} {why}",
                resp.status, resp.reason
            ));
        }
        Ok(resp)
    }
}

/// Binds an RTP socket on an even port and the RTCP socket on the next one, on `ip`.
fn bind_pair(ip: IpAddr) -> Result<(UdpSocket, UdpSocket), String> {
    for _ in 0..64 {
        let rtp = UdpSocket::bind((ip, 0)).map_err(|e| format!("UDP on {ip}: {e}"))?;
        let port = rtp.local_addr().map_err(|e| e.to_string())?.port();
        if port % 2 != 0 || port == u16::MAX {
            continue;
        }
        if let Ok(rtcp) = UdpSocket::bind((ip, port + 1)) {
            return Ok((rtp, rtcp));
        }
    }
    Err(format!("no free pair of UDP ports on {ip}"))
}

/// A remote session's thread.
struct Run {
    fe: RemoteFrontend,
    query: String,
    fanout: Arc<Fanout>,
    status: Arc<Mutex<TunerStatus>>,
    stop: Arc<AtomicBool>,
}

impl Run {
    fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    fn run(self) {
        let mut backoff = BACKOFF_MIN;
        let mut timer = StatusTimer::new(Instant::now());
        while !self.stopped() {
            self.fe.stats.starts.fetch_add(1, Ordering::Relaxed);
            self.fe.stats.set(RemoteState::Starting);
            let began = Instant::now();
            match self.session(&mut timer) {
                Ok(()) => break,
                Err(e) => {
                    gst::warning!(CAT, "{}: {e}", self.fe.name());
                    self.fe.stats.fail(&e);
                    self.unlock();
                    // A session that ran a while starts the backoff afresh.
                    if began.elapsed() > BACKOFF_MAX * 2 {
                        backoff = BACKOFF_MIN;
                    }
                    let until = Instant::now() + backoff;
                    while !self.stopped() && Instant::now() < until {
                        let now = Instant::now();
                        timer.poll(now, &self.status, &self.fanout);
                        self.fanout
                            .check_deadlines(now, &format!("remote tuner failed: {e}"));
                        std::thread::sleep(Duration::from_millis(50));
                    }
                    backoff = (backoff * 2).min(BACKOFF_MAX);
                }
            }
        }
        self.fe.stats.set(RemoteState::Idle);
    }

    fn unlock(&self) {
        let st = {
            let mut s = self.status.lock().unwrap();
            if !s.locked {
                return;
            }
            s.locked = false;
            s.quality = 0;
            s.clone()
        };
        self.fanout.lock_changed(false, &st);
    }

    /// Applies a lock state and signal figures; tells the subscribers when lock changes.
    fn signal(&self, locked: bool, level: Option<u32>, quality: Option<u32>) {
        let changed = {
            let mut s = self.status.lock().unwrap();
            if let Some(l) = level {
                s.level = l;
            }
            if let Some(q) = quality {
                s.quality = q;
            }
            let changed = s.locked != locked;
            s.locked = locked;
            changed.then(|| s.clone())
        };
        if let Some(st) = changed {
            self.fanout.lock_changed(locked, &st);
        }
    }

    /// One session on the remote, until stopped (`Ok`) or broken (`Err`).
    fn session(&self, timer: &mut StatusTimer) -> Result<(), String> {
        // The first subscriber joins right after the feed starts: ask for its PIDs at once.
        let wait = Instant::now() + Duration::from_millis(300);
        while self.fanout.snapshot().is_empty() && Instant::now() < wait && !self.stopped() {
            std::thread::sleep(Duration::from_millis(5));
        }
        let server = &self.fe.server;
        let mut rtsp = Rtsp::connect(server.addr()?)?;
        let local = rtsp
            .stream
            .local_addr()
            .map_err(|e| format!("local address: {e}"))?
            .ip();
        let (rtp, rtcp) = bind_pair(local)?;
        let port = rtp.local_addr().map_err(|e| e.to_string())?.port();
        rtp.set_read_timeout(Some(Duration::from_millis(20)))
            .map_err(|e| e.to_string())?;
        rtcp.set_nonblocking(true).map_err(|e| e.to_string())?;
        let mut pids = wanted_pids(&self.fanout);
        let transport = format!("RTP/AVP;unicast;client_port={port}-{}", port + 1);
        let setup = rtsp.request(
            "SETUP",
            &format!("{}/?{}&pids={pids}", server.base(), self.query),
            &[("Transport", &transport)],
        )?;
        let (session, timeout) = setup
            .session()
            .ok_or("SETUP: the answer has no Session header")?;
        let stream = setup
            .stream_id()
            .ok_or("SETUP: the answer has no com.ses.streamID header")?;
        let uri = format!("{}/stream={stream}", server.base());
        let hdr = [("Session", session.as_str())];
        let result = self.stream(
            &mut rtsp, &uri, &hdr, timeout, &rtp, &rtcp, &mut pids, timer,
        );
        // Stopped or broken: leave the remote session (best effort; a dead remote times out).
        rtsp.stream
            .set_read_timeout(Some(Duration::from_secs(1)))
            .ok();
        let _ = rtsp.request("TEARDOWN", &uri, &hdr);
        result
    }

    #[allow(clippy::too_many_arguments)]
    fn stream(
        &self,
        rtsp: &mut Rtsp,
        uri: &str,
        hdr: &[(&str, &str)],
        timeout: Option<u32>,
        rtp: &UdpSocket,
        rtcp: &UdpSocket,
        pids: &mut PidSet,
        timer: &mut StatusTimer,
    ) -> Result<(), String> {
        rtsp.request("PLAY", uri, hdr)?;
        gst::info!(
            CAT,
            "{}: playing {uri}?{} pids={pids}",
            self.fe.name(),
            self.query
        );
        // Keep-alive at half the session timeout (60 s when the remote gives none).
        let keepalive =
            Duration::from_secs(u64::from(timeout.unwrap_or(60).max(2)) / 2).max(PID_POLL);
        let mut next_keepalive = Instant::now() + keepalive;
        let mut next_pid_poll = Instant::now() + PID_POLL;
        let mut last_data = Instant::now();
        let mut ses1_seen = false;
        let mut buf = vec![0u8; 65536];
        let mut chunk: Vec<u8> = Vec::with_capacity(64 * 1316);
        while !self.stopped() {
            // RTP: one datagram (waiting briefly), then what else is queued.
            chunk.clear();
            match rtp.recv(&mut buf) {
                Ok(n) => {
                    extend_ts(&mut chunk, &buf[..n]);
                    rtp.set_nonblocking(true).ok();
                    for _ in 0..64 {
                        match rtp.recv(&mut buf) {
                            Ok(n) => extend_ts(&mut chunk, &buf[..n]),
                            Err(_) => break,
                        }
                    }
                    rtp.set_nonblocking(false).ok();
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                Err(e) => return Err(format!("RTP: {e}")),
            }
            let now = Instant::now();
            if !chunk.is_empty() {
                last_data = now;
                self.fe
                    .stats
                    .bytes_in
                    .fetch_add(chunk.len() as u64, Ordering::Relaxed);
                if !ses1_seen {
                    // No status from the remote yet: data means lock.
                    self.signal(true, None, None);
                }
                self.fe.stats.set(RemoteState::Live);
                self.fanout.distribute(std::mem::take(&mut chunk));
                chunk.reserve(64 * 1316);
            }
            // RTCP: the remote's status reports.
            while let Ok(n) = rtcp.recv(&mut buf) {
                if let Some((_, sig)) = ses1_in_compound(&buf[..n])
                    .as_deref()
                    .and_then(parse_tuner_status)
                {
                    ses1_seen = true;
                    self.signal(
                        sig.lock,
                        // Level 0..240 is 0..100 % (as our own SES1 and [TVH]).
                        Some(((u32::from(sig.level) * 100 + 120) / 240).min(100)),
                        Some((u32::from(sig.quality) * 100 + 7) / 15),
                    );
                }
            }
            if now >= next_pid_poll {
                next_pid_poll = now + PID_POLL;
                let want = wanted_pids(&self.fanout);
                if let Some(change) = pid_change_query(pids, &want) {
                    rtsp.request("PLAY", &format!("{uri}?{change}"), hdr)?;
                    gst::debug!(CAT, "{}: {change}", self.fe.name());
                    *pids = want;
                    last_data = now;
                }
            }
            if now >= next_keepalive {
                next_keepalive = now + keepalive;
                rtsp.request("OPTIONS", uri, hdr)?;
            }
            if *pids != PidSet::None && now.duration_since(last_data) > DATA_TIMEOUT {
                return Err(format!(
                    "no data from the remote for {} s",
                    DATA_TIMEOUT.as_secs()
                ));
            }
            timer.poll(now, &self.status, &self.fanout);
            self.fanout
                .check_deadlines(now, "no lock from the remote tuner");
        }
        Ok(())
    }
}

/// Appends the whole TS packets of an RTP packet's payload.
fn extend_ts(chunk: &mut Vec<u8>, pkt: &[u8]) {
    if let Some(p) = rtp_payload(pkt) {
        let whole = p.len() - p.len() % 188;
        chunk.extend_from_slice(&p[..whole]);
    }
}

/// What a [`ServerWatch`] says happened (for the launcher's log).
pub type WatchEvents = Arc<dyn Fn(&str) + Send + Sync>;

/// Keeps a remote server's tuners in a pool while the server answers; stops (and takes them
/// out) on drop.
pub struct ServerWatch {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for ServerWatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerWatch").finish_non_exhaustive()
    }
}

impl Drop for ServerWatch {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Whether the server answers RTSP `OPTIONS` now.
fn probe(server: &RemoteServer) -> Result<(), String> {
    let mut c = Rtsp::connect(server.addr()?)?;
    c.request("OPTIONS", &server.url, &[])?;
    Ok(())
}

impl Pool {
    /// Watches `server`: its tuners join this pool while it answers and leave it when it
    /// vanishes; `events` hears of each change.
    pub fn watch_remote(&self, server: RemoteServer, events: WatchEvents) -> ServerWatch {
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = stop.clone();
        let pool = self.clone();
        let server = Arc::new(server);
        let thread = std::thread::Builder::new()
            .name("dvb2ip-remote-watch".into())
            .spawn(move || watch(pool, server, events, stop2))
            .expect("spawn the remote tuner watch thread");
        ServerWatch {
            stop,
            thread: Some(thread),
        }
    }
}

fn watch(pool: Pool, server: Arc<RemoteServer>, events: WatchEvents, stop: Arc<AtomicBool>) {
    let mut backoff = BACKOFF_MIN;
    let mut last_error: Option<String> = None;
    while !stop.load(Ordering::Relaxed) {
        let present = pool.remote_frontends(&server.url) > 0;
        let wait = match probe(&server).and_then(|()| {
            if present {
                Ok(None)
            } else {
                server.lent_frontends().map(Some)
            }
        }) {
            Ok(Some(delsys)) => {
                let n = delsys.len();
                let fes = delsys
                    .into_iter()
                    .enumerate()
                    .map(|(i, d)| RemoteFrontend {
                        server: server.clone(),
                        position: i as u32,
                        delsys: d,
                        stats: Arc::default(),
                    })
                    .collect();
                let change = pool.add_remote(&server.url, fes);
                events(&format!(
                    "remote SAT>IP server {} is here: {n} tuner(s) join the pool ({change})",
                    server.url
                ));
                last_error = None;
                backoff = BACKOFF_MIN;
                PROBE_INTERVAL
            }
            Ok(None) => PROBE_INTERVAL,
            Err(e) => {
                if present {
                    let change = pool.remove_remote(&server.url);
                    events(&format!(
                        "remote SAT>IP server {} is gone ({e}): its tuners leave the pool ({change})",
                        server.url
                    ));
                    backoff = BACKOFF_MIN;
                } else if last_error.as_deref() != Some(e.as_str()) {
                    events(&format!(
                        "remote SAT>IP server {} is not available: {e}",
                        server.url
                    ));
                }
                last_error = Some(e);
                let w = backoff;
                backoff = (backoff * 2).min(BACKOFF_MAX);
                w
            }
        };
        let until = Instant::now() + wait;
        while !stop.load(Ordering::Relaxed) && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(25));
        }
    }
    if pool.remote_frontends(&server.url) > 0 {
        pool.remove_remote(&server.url);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_configuration() {
        let s = RemoteServer::new("rtsp://127.0.0.1:8554/", Some("DVBT2-2"), None).unwrap();
        assert_eq!((s.host.as_str(), s.port), ("127.0.0.1", 8554));
        assert_eq!(s.url, "rtsp://127.0.0.1:8554/");
        assert_eq!(s.frontends.as_ref().map(Vec::len), Some(2));
        let s = RemoteServer::new(
            "rtsp://tuners.lan",
            None,
            Some("http://tuners.lan:8875/desc.xml"),
        )
        .unwrap();
        assert_eq!(s.port, 554);
        assert_eq!(s.url, "rtsp://tuners.lan:554/");
        assert!(RemoteServer::new("http://x/", Some("DVBT-1"), None)
            .unwrap_err()
            .contains("rtsp://"));
        assert!(RemoteServer::new("rtsp://x:0/", Some("DVBT-1"), None).is_err());
        assert!(RemoteServer::new("rtsp://x/", None, None)
            .unwrap_err()
            .contains("frontends"));
        assert!(RemoteServer::new("rtsp://x/", Some("DVBX-1"), None)
            .unwrap_err()
            .contains("DVBX"));
        assert!(RemoteServer::new("rtsp://x/", None, Some("ftp://x/"))
            .unwrap_err()
            .contains("description"));
        let v6 = RemoteServer::new("rtsp://[::1]:9000/", Some("DVBT-1"), None).unwrap();
        assert_eq!(v6.url, "rtsp://[::1]:9000/");
    }
}
