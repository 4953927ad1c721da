//! Other SAT>IP servers found over SSDP lend their tuners (issue 14 item 3,
//! `[ssdp] discover_servers = true`; off by default).
//!
//! On the `[ssdp] interfaces` only (loopback by default), a thread
//! * sends `M-SEARCH` for `urn:ses-com:device:SatIPServer:1` (at start and on each new
//!   interface address, again after 3, 10 and 30 s, then every 5 minutes), from a socket bound
//!   to that address with that interface as the multicast interface, and reads the answers;
//! * listens to `NOTIFY` on 239.255.255.250:1900 (a socket bound to the group address, joined
//!   on those interfaces only, so the advertiser's unicast traffic on port 1900 is untouched);
//! * for each server other than this one (its UUID is ours: ignored) reads the description
//!   named by `LOCATION` (a SAT>IP device whose `UDN` is the announced UUID, with
//!   `X_SATIPCAP`; RTSP on `X-SATIP-RTSP-Port`, 554 without it) and watches it like a
//!   `[[satip_server]]` entry (gst-plugin `tuners/satip_remote.rs`): its tuners join the pool
//!   while it answers;
//! * takes a server's tuners out of the pool (a hotplug removal: their users move or are
//!   told) when it says `ssdp:byebye`, or when `max-age` passes without an announcement or
//!   an answer from it.
//!
//! A server already configured as `[[satip_server]]` is left to that entry. At most
//! [`MAX_SERVERS`] servers are tracked; further ones are ignored with a log line.
//!
//! Deviation: SAT>IP 1.2.2 §3.3.4 says a *server* never multicasts M-SEARCH. A server that
//! borrows tuners is a client of the servers it borrows from (tvheadend and minisatip search
//! the same way), and the search is opt-in.

use std::collections::{BTreeMap, HashMap};
use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use socket2::{Domain, InterfaceIndexOrAddress, Protocol, SockRef, Socket, Type};

use gstdvb2ip::tuners::satip_remote::{RemoteServer, ServerWatch};
use gstdvb2ip::tuners::Pool;

use super::message::{
    parse_message, Message, Nts, MAX_MESSAGE_LEN, SATIP_DEVICE_TYPE, SSDP_MULTICAST_ADDR,
    SSDP_MULTICAST_TTL, SSDP_PORT,
};

/// Gaps between the searches after a start (or a new address); then [`SEARCH_EVERY`].
const SEARCH_GAPS: [Duration; 3] = [
    Duration::from_secs(3),
    Duration::from_secs(7),
    Duration::from_secs(20),
];
const SEARCH_EVERY: Duration = Duration::from_secs(300);
/// Most servers tracked at once.
pub const MAX_SERVERS: usize = 64;
/// First and longest wait before reading a description that could not be read again; the
/// wait doubles in between.
const FETCH_RETRY: Duration = Duration::from_secs(2);
const FETCH_RETRY_MAX: Duration = Duration::from_secs(300);
/// Validity of an announcement without `CACHE-CONTROL` (UPnP's default is none; SAT>IP's
/// servers send 1800).
const DEFAULT_MAX_AGE: u32 = 1800;
/// How often the interfaces and their addresses are read.
const IFACE_POLL: Duration = Duration::from_secs(2);
/// Longest wait for a datagram before the thread looks at its timers.
const TICK: Duration = Duration::from_millis(100);

/// What one SSDP datagram says about a SAT>IP server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Heard {
    /// An `ssdp:alive` NOTIFY (`searched` false) or an answer to our search (true).
    Alive {
        uuid: String,
        location: String,
        max_age: u32,
        searched: bool,
    },
    /// `ssdp:byebye`: the device leaves.
    ByeBye { uuid: String },
}

/// `max-age` of a `CACHE-CONTROL` header in an SSDP datagram.
fn max_age_in(text: &str) -> Option<u32> {
    text.lines()
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("CACHE-CONTROL"))
        .and_then(|(_, v)| {
            v.split(',').find_map(|d| {
                let (k, v) = d.split_once('=')?;
                k.trim()
                    .eq_ignore_ascii_case("max-age")
                    .then(|| v.trim().trim_matches('"').parse().ok())
                    .flatten()
            })
        })
}

/// What `data` says about a SAT>IP server other than the one with `own_uuid`; `None` for
/// anything else (searches, other device types, our own messages, malformed datagrams).
pub fn heard(data: &[u8], own_uuid: &str) -> Option<Heard> {
    let msg = parse_message(data).ok()?;
    let uuid = msg.sender_uuid()?.to_owned();
    if uuid.eq_ignore_ascii_case(own_uuid) {
        return None;
    }
    let http = |l: &Option<String>| l.clone().filter(|l| l.starts_with("http://"));
    match msg {
        Message::Notify(n) if n.nts == Nts::ByeBye => Some(Heard::ByeBye { uuid }),
        Message::Notify(n) if n.nt.eq_ignore_ascii_case(SATIP_DEVICE_TYPE) => Some(Heard::Alive {
            uuid,
            location: http(&n.location)?,
            max_age: n.max_age.unwrap_or(DEFAULT_MAX_AGE),
            searched: false,
        }),
        Message::Response(r)
            if r.status == 200
                && r.st
                    .as_deref()
                    .is_some_and(|st| st.eq_ignore_ascii_case(SATIP_DEVICE_TYPE)) =>
        {
            let text = std::str::from_utf8(data).ok()?;
            Some(Heard::Alive {
                uuid,
                location: http(&r.location)?,
                max_age: max_age_in(text).unwrap_or(DEFAULT_MAX_AGE),
                searched: true,
            })
        }
        _ => None,
    }
}

/// The M-SEARCH for SAT>IP servers.
pub fn search_message(user_agent: &str) -> String {
    format!(
        "M-SEARCH * HTTP/1.1\r\nHOST: {SSDP_MULTICAST_ADDR}:{SSDP_PORT}\r\n\
         MAN: \"ssdp:discover\"\r\nMX: 2\r\nST: {SATIP_DEVICE_TYPE}\r\n\
         USER-AGENT: {user_agent}\r\n\r\n"
    )
}

/// Searching for servers and keeping their tuners in the pool; dropping it stops the search
/// and takes their tuners out.
pub struct Discovery {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Discovery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Discovery")
            .field("running", &self.thread.is_some())
            .finish()
    }
}

impl Drop for Discovery {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Starts discovery for `pool` when `[ssdp] discover_servers` is on (nothing otherwise);
/// `own_uuid` is this server's, whose messages are ignored.
pub fn start(cfg: &crate::config::Config, own_uuid: &str, pool: &Pool) -> Discovery {
    let stop = Arc::new(AtomicBool::new(false));
    if !cfg.ssdp.discover_servers {
        return Discovery { stop, thread: None };
    }
    let configured = cfg
        .satip_server
        .iter()
        .filter_map(|s| s.server().ok())
        .map(|s| s.url)
        .collect();
    let finder = Finder {
        interfaces: cfg.ssdp.interfaces.clone(),
        own_uuid: own_uuid.to_owned(),
        pool: pool.clone(),
        configured,
        user_agent: super::server_string(),
        stop: stop.clone(),
    };
    eprintln!(
        "dvb2ip: ssdp: searching {:?} for SAT>IP servers to borrow tuners from",
        cfg.ssdp.interfaces
    );
    let thread = std::thread::Builder::new()
        .name("dvb2ip-ssdp-find".into())
        .spawn(move || finder.run())
        .expect("spawn the SSDP discovery thread");
    Discovery {
        stop,
        thread: Some(thread),
    }
}

struct Finder {
    interfaces: Vec<String>,
    own_uuid: String,
    pool: Pool,
    /// RTSP URLs of the `[[satip_server]]` entries.
    configured: Vec<String>,
    user_agent: String,
    stop: Arc<AtomicBool>,
}

/// A server heard of.
struct Known {
    location: String,
    expires: Instant,
    /// Its RTSP URL and the watch lending its tuners, once its description was read.
    watch: Option<(String, ServerWatch)>,
    fetching: bool,
    /// When its description may be read again after a failure, and the wait after the next.
    retry: Option<(Instant, Duration)>,
    /// Not ours to watch (a `[[satip_server]]`, or lent by another uuid): until it moves.
    skip: bool,
}

impl Known {
    /// Whether its description should be read now.
    fn due(&self, now: Instant) -> bool {
        !self.skip
            && !self.fetching
            && self.watch.is_none()
            && self.retry.is_none_or(|(t, _)| now >= t)
    }

    fn failed(&mut self, now: Instant) {
        let wait = self.retry.map_or(FETCH_RETRY, |(_, w)| w);
        self.retry = Some((now + wait, (wait * 2).min(FETCH_RETRY_MAX)));
    }
}

type Fetched = (String, String, Result<RemoteServer, String>);

/// The sockets on the configured interfaces.
struct Sockets {
    /// NOTIFYs: bound to 239.255.255.250:1900, joined on the interfaces (by index).
    listen: Option<UdpSocket>,
    joined: Vec<u32>,
    /// Searches and their answers: one per interface address.
    search: BTreeMap<(u32, Ipv4Addr), UdpSocket>,
}

fn listen_socket() -> std::io::Result<UdpSocket> {
    let s = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
    s.set_reuse_address(true)?;
    s.set_multicast_all_v4(false)?;
    s.bind(&SocketAddrV4::new(SSDP_MULTICAST_ADDR, SSDP_PORT).into())?;
    let s: UdpSocket = s.into();
    s.set_read_timeout(Some(TICK))?;
    Ok(s)
}

fn search_socket(addr: Ipv4Addr) -> std::io::Result<UdpSocket> {
    let s = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
    s.set_multicast_if_v4(&addr)?;
    s.set_multicast_ttl_v4(SSDP_MULTICAST_TTL)?;
    s.set_multicast_loop_v4(true)?;
    s.set_multicast_all_v4(false)?;
    s.bind(&SocketAddrV4::new(addr, 0).into())?;
    s.set_nonblocking(true)?;
    Ok(s.into())
}

impl Finder {
    fn log(&self, line: &str) {
        eprintln!("dvb2ip: ssdp: {line}");
    }

    fn run(self) {
        let mut socks = Sockets {
            listen: match listen_socket() {
                Ok(s) => Some(s),
                Err(e) => {
                    self.log(&format!(
                        "cannot listen for NOTIFY on {SSDP_MULTICAST_ADDR}:{SSDP_PORT}: {e}; \
                         servers are found by searching only"
                    ));
                    None
                }
            },
            joined: Vec::new(),
            search: BTreeMap::new(),
        };
        let mut known: HashMap<String, Known> = HashMap::new();
        let (tx, rx) = mpsc::channel::<Fetched>();
        let mut next_poll = Instant::now();
        let mut next_search: Option<Instant> = None;
        let mut gaps = SEARCH_GAPS.iter();
        let mut buf = vec![0u8; MAX_MESSAGE_LEN + 1];
        let mut full_logged = false;
        while !self.stop.load(Ordering::Relaxed) {
            let now = Instant::now();
            if now >= next_poll {
                next_poll = now + IFACE_POLL;
                if self.poll_interfaces(&mut socks) {
                    // A new address: search there now, then on the schedule again.
                    next_search = Some(now);
                    gaps = SEARCH_GAPS.iter();
                }
            }
            if next_search.is_some_and(|t| now >= t) {
                let m = search_message(&self.user_agent);
                for ((_, addr), s) in &socks.search {
                    let to = SocketAddrV4::new(SSDP_MULTICAST_ADDR, SSDP_PORT);
                    if let Err(e) = s.send_to(m.as_bytes(), to) {
                        self.log(&format!("cannot search from {addr}: {e}"));
                    }
                }
                next_search = Some(now + gaps.next().copied().unwrap_or(SEARCH_EVERY));
            }
            let mut heard_now = Vec::new();
            match &socks.listen {
                Some(l) => {
                    if let Ok(n) = l.recv(&mut buf) {
                        heard_now.extend(buf.get(..n.min(MAX_MESSAGE_LEN)).and_then(|d| {
                            (n <= MAX_MESSAGE_LEN)
                                .then(|| heard(d, &self.own_uuid))
                                .flatten()
                        }));
                    }
                }
                None => std::thread::sleep(TICK),
            }
            for s in socks.search.values() {
                while let Ok(n) = s.recv(&mut buf) {
                    if n <= MAX_MESSAGE_LEN {
                        heard_now.extend(heard(&buf[..n], &self.own_uuid));
                    }
                }
            }
            for h in heard_now {
                self.on_heard(h, &mut known, &tx, &mut full_logged);
            }
            while let Ok((uuid, location, r)) = rx.try_recv() {
                self.on_fetched(&uuid, &location, r, &mut known);
            }
            let now = Instant::now();
            for (uuid, k) in known.iter_mut() {
                if k.retry.is_some() && k.due(now) {
                    self.fetch(uuid, k, "is read again", &tx);
                }
            }
            let expired: Vec<String> = known
                .iter()
                .filter(|(_, k)| k.expires <= now)
                .map(|(u, _)| u.clone())
                .collect();
            for uuid in expired {
                if let Some(k) = known.remove(&uuid) {
                    if k.watch.is_some() {
                        self.log(&format!(
                            "SAT>IP server uuid:{uuid}: max-age passed without an announcement: \
                             its tuners leave the pool"
                        ));
                    }
                }
            }
        }
        // Dropping the watches takes their tuners out.
        known.clear();
    }

    /// Reads the configured interfaces; joins and searches on new ones. True when an address
    /// appeared.
    fn poll_interfaces(&self, socks: &mut Sockets) -> bool {
        let found = match super::advertiser::scan_interfaces(&self.interfaces) {
            Ok(f) => f,
            Err(e) => {
                self.log(&format!("cannot list interfaces: {e}"));
                return false;
            }
        };
        if let Some(l) = &socks.listen {
            let sock = SockRef::from(l);
            socks.joined.retain(|idx| {
                found.contains_key(idx) || {
                    let _ = sock.leave_multicast_v4_n(
                        &SSDP_MULTICAST_ADDR,
                        &InterfaceIndexOrAddress::Index(*idx),
                    );
                    false
                }
            });
            for (idx, info) in &found {
                if socks.joined.contains(idx) {
                    continue;
                }
                match sock.join_multicast_v4_n(
                    &SSDP_MULTICAST_ADDR,
                    &InterfaceIndexOrAddress::Index(*idx),
                ) {
                    Ok(()) => socks.joined.push(*idx),
                    Err(e) if e.raw_os_error() == Some(libc::EADDRINUSE) => socks.joined.push(*idx),
                    Err(e) => self.log(&format!(
                        "cannot join {SSDP_MULTICAST_ADDR} on {}: {e}",
                        info.name
                    )),
                }
            }
        }
        let now: Vec<(u32, Ipv4Addr)> = found
            .values()
            .flat_map(|i| i.addrs.iter().map(move |a| (i.index, a.addr)))
            .collect();
        socks.search.retain(|k, _| now.contains(k));
        let mut added = false;
        for k in now {
            if socks.search.contains_key(&k) {
                continue;
            }
            match search_socket(k.1) {
                Ok(s) => {
                    socks.search.insert(k, s);
                    added = true;
                }
                Err(e) => self.log(&format!("cannot search from {}: {e}", k.1)),
            }
        }
        added
    }

    fn on_heard(
        &self,
        h: Heard,
        known: &mut HashMap<String, Known>,
        tx: &mpsc::Sender<Fetched>,
        full_logged: &mut bool,
    ) {
        match h {
            Heard::ByeBye { uuid } => {
                if let Some(k) = known.remove(&uuid) {
                    if k.watch.is_some() {
                        self.log(&format!(
                            "SAT>IP server uuid:{uuid} said byebye: its tuners leave the pool"
                        ));
                    }
                }
            }
            Heard::Alive {
                uuid,
                location,
                max_age,
                searched,
            } => {
                let now = Instant::now();
                if !known.contains_key(&uuid) && known.len() >= MAX_SERVERS {
                    if !*full_logged {
                        *full_logged = true;
                        self.log(&format!(
                            "{MAX_SERVERS} SAT>IP servers known: uuid:{uuid} at {location} ignored"
                        ));
                    }
                    return;
                }
                let k = known.entry(uuid.clone()).or_insert_with(|| Known {
                    location: location.clone(),
                    expires: now,
                    watch: None,
                    fetching: false,
                    retry: None,
                    skip: false,
                });
                k.expires = now + Duration::from_secs(u64::from(max_age.max(1)));
                if k.location != location {
                    // It moved: read the new description (the old address's watch goes).
                    k.location = location;
                    k.retry = None;
                    k.skip = false;
                    k.watch = None;
                }
                if k.due(now) {
                    let how = if searched {
                        "answered our search"
                    } else {
                        "announced itself"
                    };
                    self.fetch(&uuid, k, how, tx);
                }
            }
        }
    }

    /// Reads `k`'s description on a thread of its own; the result comes back over `tx`.
    fn fetch(&self, uuid: &str, k: &mut Known, how: &str, tx: &mpsc::Sender<Fetched>) {
        k.fetching = true;
        let (uuid, location) = (uuid.to_owned(), k.location.clone());
        self.log(&format!(
            "SAT>IP server uuid:{uuid} {how} at {location}: reading its description"
        ));
        let tx = tx.clone();
        std::thread::spawn(move || {
            let r = RemoteServer::from_description(&location, &uuid);
            let _ = tx.send((uuid, location, r));
        });
    }

    fn on_fetched(
        &self,
        uuid: &str,
        location: &str,
        r: Result<RemoteServer, String>,
        known: &mut HashMap<String, Known>,
    ) {
        // Checked before borrowing `known` mutably.
        let taken_by = |url: &str, known: &HashMap<String, Known>| {
            known
                .iter()
                .find(|(u, k)| *u != uuid && k.watch.as_ref().is_some_and(|(w, _)| w == url))
                .map(|(u, _)| u.clone())
        };
        let server = match r {
            Ok(s) => s,
            Err(e) => {
                if let Some(k) = known.get_mut(uuid) {
                    k.fetching = false;
                    if k.location == location {
                        let now = Instant::now();
                        k.failed(now);
                        let wait = k.retry.map(|(t, _)| t - now).unwrap_or_default();
                        self.log(&format!(
                            "SAT>IP server uuid:{uuid} not used: {e} (read again in {} s)",
                            wait.as_secs()
                        ));
                    } else {
                        // It moved meanwhile: read the new description now.
                        k.retry = Some((Instant::now(), FETCH_RETRY));
                    }
                }
                return;
            }
        };
        let other = taken_by(&server.url, known);
        let Some(k) = known.get_mut(uuid) else {
            // It said byebye (or expired) meanwhile.
            return;
        };
        k.fetching = false;
        if k.location != location {
            // It moved meanwhile: read the new description now.
            k.retry = Some((Instant::now(), FETCH_RETRY));
            return;
        }
        k.retry = None;
        if self.configured.contains(&server.url) {
            k.skip = true;
            self.log(&format!(
                "SAT>IP server uuid:{uuid} is {}, a [[satip_server]] already: left to that entry",
                server.url
            ));
            return;
        }
        if let Some(other) = other {
            k.skip = true;
            self.log(&format!(
                "SAT>IP server uuid:{uuid} is {}, which uuid:{other} lends already: ignored",
                server.url
            ));
            return;
        }
        let url = server.url.clone();
        self.log(&format!(
            "SAT>IP server uuid:{uuid} is {url}: its tuners join the pool while it answers"
        ));
        let watch = self
            .pool
            .watch_remote(server, Arc::new(|line: &str| eprintln!("dvb2ip: {line}")));
        k.watch = Some((url, watch));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const THEM: &str = "3f2a9c10-5b7e-4d21-9a0c-00155d0a0b0c";
    const US: &str = "11111111-2222-4333-8444-555555555555";

    fn notify(nts: &str, nt: &str, uuid: &str) -> String {
        let usn = if nt.starts_with("uuid:") {
            format!("uuid:{uuid}")
        } else {
            format!("uuid:{uuid}::{nt}")
        };
        format!(
            "NOTIFY * HTTP/1.1\r\nHOST: 239.255.255.250:1900\r\nCACHE-CONTROL: max-age=120\r\n\
             LOCATION: http://10.0.0.5:8875/desc.xml\r\nNT: {nt}\r\nNTS: {nts}\r\n\
             SERVER: Linux/6.1 UPnP/1.1 x/1\r\nUSN: {usn}\r\nBOOTID.UPNP.ORG: 1\r\n\
             CONFIGID.UPNP.ORG: 0\r\n\r\n"
        )
    }

    #[test]
    fn alive_byebye_and_answers_of_other_servers_are_heard() {
        assert_eq!(
            heard(notify("ssdp:alive", SATIP_DEVICE_TYPE, THEM).as_bytes(), US),
            Some(Heard::Alive {
                uuid: THEM.into(),
                location: "http://10.0.0.5:8875/desc.xml".into(),
                max_age: 120,
                searched: false,
            })
        );
        // The rootdevice and uuid NOTIFYs of the set add nothing; their byebye counts.
        assert_eq!(
            heard(notify("ssdp:alive", "upnp:rootdevice", THEM).as_bytes(), US),
            None
        );
        assert_eq!(
            heard(
                notify("ssdp:byebye", "upnp:rootdevice", THEM).as_bytes(),
                US
            ),
            Some(Heard::ByeBye { uuid: THEM.into() })
        );
        let answer = format!(
            "HTTP/1.1 200 OK\r\nCACHE-CONTROL: max-age=1800\r\nEXT:\r\n\
             LOCATION: http://10.0.0.5:8875/desc.xml\r\nSERVER: Linux/6.1 UPnP/1.1 x/1\r\n\
             ST: {SATIP_DEVICE_TYPE}\r\nUSN: uuid:{THEM}::{SATIP_DEVICE_TYPE}\r\n\r\n"
        );
        assert_eq!(
            heard(answer.as_bytes(), US),
            Some(Heard::Alive {
                uuid: THEM.into(),
                location: "http://10.0.0.5:8875/desc.xml".into(),
                max_age: 1800,
                searched: true,
            })
        );
    }

    #[test]
    fn our_own_messages_searches_and_other_devices_are_not() {
        assert_eq!(
            heard(notify("ssdp:alive", SATIP_DEVICE_TYPE, US).as_bytes(), US),
            None
        );
        assert_eq!(
            heard(notify("ssdp:byebye", SATIP_DEVICE_TYPE, US).as_bytes(), US),
            None
        );
        assert_eq!(
            heard(
                notify(
                    "ssdp:alive",
                    "urn:schemas-upnp-org:device:MediaServer:1",
                    THEM
                )
                .as_bytes(),
                US
            ),
            None
        );
        assert_eq!(heard(search_message("t").as_bytes(), US), None);
        assert_eq!(heard(b"garbage", US), None);
        let ftp = notify("ssdp:alive", SATIP_DEVICE_TYPE, THEM)
            .replace("http://10.0.0.5", "ftp://10.0.0.5");
        assert_eq!(heard(ftp.as_bytes(), US), None);
    }

    #[test]
    fn max_age_of_an_answer() {
        assert_eq!(
            max_age_in("HTTP/1.1 200 OK\r\ncache-control: no-cache, max-age = 60\r\n"),
            Some(60)
        );
        assert_eq!(max_age_in("HTTP/1.1 200 OK\r\nEXT:\r\n"), None);
    }
}
