//! The SSDP advertiser (SAT>IP digest §8.2–8.6): one UDP socket on port 1900, joined to
//! 239.255.255.250 on the configured interfaces only.
//!
//! * alive sets at start, for every new address, after a DEVICE ID change and on a randomised
//!   schedule below max-age/2; after a CONFIGID change (the tuner set changed) the byebye sets
//!   with the old CONFIGID, then the alive sets with the new one and a new BOOTID
//!   ([`config_change`]); byebye sets on shutdown and for vanished addresses, always
//!   from an address of the interface (when the only one vanished, from the next one it
//!   gets, before the new alive set); a new BOOTID for each first announcement after a
//!   byebye, on a new interface or with a new DEVICE ID;
//! * unicast answers to M-SEARCH after a random delay within `MX`, with `LOCATION` naming the
//!   address of the interface the search came in on (`IP_PKTINFO`);
//! * the DEVICE ID procedure through [`DeviceIdNegotiator`] (yield while joining, defend once
//!   settled), ids and BOOTID persisted through [`StateStore`];
//! * interfaces polled with `getifaddrs` every `poll_interval`;
//! * bounded work: oversized or malformed datagrams are dropped with a rate-limited log line,
//!   answers, DEVICE ID acknowledgements and defences share one per-second budget, the queue
//!   of delayed answers and the table of defended addresses are bounded, a new DEVICE ID is
//!   announced at most once per [`YIELD_ANNOUNCE_INTERVAL`], and log lines about peers'
//!   traffic are rate-limited.
//!
//! Every datagram leaves with an explicit outgoing interface (`IP_PKTINFO` on `sendmsg`) that
//! is one of the configured, currently present interfaces; nothing is ever sent elsewhere.

use std::collections::{BTreeMap, HashMap};
use std::io::{self, IoSlice, IoSliceMut};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use nix::sys::socket::{
    recvmsg, sendmsg, setsockopt, sockopt, ControlMessage, ControlMessageOwned, MsgFlags,
    SockaddrIn,
};
use socket2::{Domain, InterfaceIndexOrAddress, Protocol, SockRef, Socket, Type};
use tokio::io::Interest;
use tokio::net::UdpSocket;
use tokio::sync::watch;

use super::message::{
    alive_set, byebye_set, defend_search, next_boot_id, parse_message, search_refusal,
    search_response, DeviceIdNegotiator, Identity, Message, Notify, Nt, Nts, SearchRequest,
    SearchVerdict, MAX_MESSAGE_LEN, SSDP_MULTICAST_ADDR, SSDP_MULTICAST_TTL,
};
use super::{PersistentState, StateStore};

/// Most delayed answers waiting at once.
pub const MAX_PENDING: usize = 256;
/// Minimum time between two defences sent to the same address.
const DEFEND_INTERVAL: Duration = Duration::from_secs(1);
/// Most addresses remembered for [`DEFEND_INTERVAL`] (further offenders wait).
const MAX_DEFENDED: usize = 256;
/// Minimum time between an announcement and the announcement of a new DEVICE ID that
/// replaces it: each announced id can be given up at most once, so a flood of conflicting
/// searches moves the id by at most one step per interval (a defender answers within 1 s).
const YIELD_ANNOUNCE_INTERVAL: Duration = Duration::from_secs(1);
/// How long a source address of ours still counts as ours (our looped-back multicast).
const OWN_SRC_MEMORY: Duration = Duration::from_secs(5);
/// Most recent source addresses remembered.
const MAX_OWN_SRC: usize = 32;
/// Minimum time between two re-announcements caused by a spoofed byebye.
const SPOOF_REANNOUNCE_INTERVAL: Duration = Duration::from_secs(10);
/// Minimum time between two log lines about ignored input.
const LOG_INTERVAL: Duration = Duration::from_secs(10);

/// Advertiser settings (built by [`super::spawn`] from `[ssdp]` and the description).
#[derive(Debug, Clone)]
pub struct SsdpConfig {
    /// Interface names to announce and answer on.
    pub interfaces: Vec<String>,
    /// UDP port to listen on (1900).
    pub port: u16,
    /// Port of the description endpoint (LOCATION).
    pub http_port: u16,
    /// Path of the description (`/desc.xml`).
    pub desc_path: String,
    /// `SERVER` / `USER-AGENT` value.
    pub server: String,
    /// `CACHE-CONTROL: max-age`.
    pub max_age: u32,
    /// `CONFIGID.UPNP.ORG` (= description `configId`).
    pub config_id: u32,
    /// UUID, BOOTID (already increased for this start) and stored DEVICE ID.
    pub state: PersistentState,
    /// Where settled DEVICE IDs and increased BOOTIDs are written; `None` keeps them in memory.
    pub store: Option<StateStore>,
    /// How often interfaces and addresses are polled.
    pub poll_interval: Duration,
    /// Most M-SEARCH answers per second.
    pub max_replies_per_sec: u32,
    /// Receives every settled DEVICE ID (the multicast range follows it).
    pub settled_id: Option<watch::Sender<u8>>,
    /// New CONFIGIDs (the description changed: the tuner set did); `config_id` is the first.
    pub config_ids: Option<watch::Receiver<u32>>,
}

/// The SSDP socket: `0.0.0.0:port` with address reuse, `IP_PKTINFO`, multicast TTL 2, no
/// group joined yet (the advertiser joins per configured interface).
pub fn bind_socket(port: u16) -> io::Result<std::net::UdpSocket> {
    let s = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
    s.set_reuse_address(true)?;
    s.set_nonblocking(true)?;
    s.set_multicast_ttl_v4(SSDP_MULTICAST_TTL)?;
    s.set_multicast_loop_v4(true)?;
    // Only groups this socket joined, on the interfaces it joined them on.
    s.set_multicast_all_v4(false)?;
    setsockopt(&s, sockopt::Ipv4PacketInfo, &true).map_err(io::Error::from)?;
    s.bind(&SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, port).into())?;
    Ok(s.into())
}

/// Binds port `cfg.port` and runs until `shutdown` turns true.
pub async fn run(cfg: SsdpConfig, shutdown: watch::Receiver<bool>) -> io::Result<()> {
    let socket = bind_socket(cfg.port)?;
    run_with_socket(cfg, socket, shutdown).await
}

// ---------------------------------------------------------------------------------------------
// Pure helpers (unit tested)
// ---------------------------------------------------------------------------------------------

/// What goes out when the description changes (UPnP DA 1.1 §1.2.2: a device whose description
/// changes leaves and joins again): the byebye set under the old identity, then the alive set
/// under the new one (new CONFIGID, and the new BOOTID of a first announcement after a
/// byebye).
pub fn config_change(old: &Identity, new: &Identity) -> Vec<String> {
    let mut out = byebye_set(old).to_vec();
    out.extend(alive_set(new));
    out
}

/// Small xorshift generator for delays and schedules (not for secrets).
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed | 1)
    }

    pub fn from_entropy() -> Self {
        Rng::new(u64::from_ne_bytes(super::random_bytes()))
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    /// Uniform in `lo..=hi` (`lo` when `hi <= lo`).
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        if hi <= lo {
            return lo;
        }
        lo + self.next_u64() % (hi - lo + 1)
    }
}

/// Delay before the next refresh of the alive set: uniform in `[max_age/4, max_age/2)`
/// (at least 1 s), so every advertisement is renewed at least twice before it expires.
pub fn refresh_interval(max_age: u32, rng: &mut Rng) -> Duration {
    let half_ms = u64::from(max_age) * 500;
    let lo = (half_ms / 2).max(1000);
    let hi = half_ms.saturating_sub(1).max(lo);
    Duration::from_millis(rng.range(lo, hi))
}

/// Delay of one M-SEARCH answer: uniform in `0..=max_delay_ms` (`MX`, capped at 5 s).
pub fn answer_delay(search: &SearchRequest, rng: &mut Rng) -> Duration {
    Duration::from_millis(rng.range(0, search.max_delay_ms()))
}

/// Token bucket bounding the answers per second.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    rate: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    pub fn new(per_sec: u32, now: Instant) -> Self {
        let rate = f64::from(per_sec.max(1));
        TokenBucket {
            rate,
            tokens: rate,
            last: now,
        }
    }

    /// Takes one token if available.
    pub fn take(&mut self, now: Instant) -> bool {
        let dt = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + dt * self.rate).min(self.rate);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// At most one log line per [`LOG_INTERVAL`], counting what was suppressed.
#[derive(Debug, Default)]
struct RateLog {
    last: Option<Instant>,
    suppressed: u64,
}

impl RateLog {
    /// The line to print now, if any (`what` is only called when it is).
    fn line(&mut self, now: Instant, what: impl FnOnce() -> String) -> Option<String> {
        match self.last {
            Some(t) if now.saturating_duration_since(t) < LOG_INTERVAL => {
                self.suppressed += 1;
                None
            }
            _ => {
                let extra = if self.suppressed > 0 {
                    format!(" ({} similar suppressed)", self.suppressed)
                } else {
                    String::new()
                };
                self.last = Some(now);
                self.suppressed = 0;
                Some(format!("dvb2ip: ssdp: {}{extra}", what()))
            }
        }
    }

    fn log(&mut self, now: Instant, what: impl FnOnce() -> String) {
        if let Some(l) = self.line(now, what) {
            eprintln!("{l}");
        }
    }
}

/// Per-address rate limit with a bounded memory: at most one event per `interval` for each
/// address, and at most `cap` addresses remembered. When the table is full of addresses
/// seen within `interval`, new addresses are refused (the work is dropped, not the limit).
#[derive(Debug)]
struct PerPeerLimit {
    last: HashMap<Ipv4Addr, Instant>,
    interval: Duration,
    cap: usize,
}

impl PerPeerLimit {
    fn new(interval: Duration, cap: usize) -> Self {
        PerPeerLimit {
            last: HashMap::new(),
            interval,
            cap,
        }
    }

    /// Whether `ip` may have its event now; records it when so.
    fn allow(&mut self, ip: Ipv4Addr, now: Instant) -> bool {
        let interval = self.interval;
        if self
            .last
            .get(&ip)
            .is_some_and(|t| now.saturating_duration_since(*t) < interval)
        {
            return false;
        }
        if self.last.len() >= self.cap && !self.last.contains_key(&ip) {
            self.expire(now);
            if self.last.len() >= self.cap {
                return false;
            }
        }
        self.last.insert(ip, now);
        true
    }

    /// Forgets addresses whose interval is over.
    fn expire(&mut self, now: Instant) {
        let interval = self.interval;
        self.last
            .retain(|_, t| now.saturating_duration_since(*t) < interval);
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.last.len()
    }
}

/// One IPv4 address of an interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct IfAddr {
    pub addr: Ipv4Addr,
    pub prefix: u8,
}

impl IfAddr {
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        let mask = if self.prefix == 0 {
            0
        } else {
            u32::MAX << (32 - u32::from(self.prefix.min(32)))
        };
        u32::from(self.addr) & mask == u32::from(ip) & mask
    }
}

/// A configured interface as found by a poll.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IfInfo {
    pub name: String,
    pub index: u32,
    pub addrs: Vec<IfAddr>,
}

/// The configured interfaces that exist and are up, with their IPv4 addresses (possibly
/// none), keyed by index.
pub fn scan_interfaces(names: &[String]) -> io::Result<BTreeMap<u32, IfInfo>> {
    use nix::net::if_::InterfaceFlags;
    let mut out: BTreeMap<u32, IfInfo> = BTreeMap::new();
    for ia in nix::ifaddrs::getifaddrs().map_err(io::Error::from)? {
        if !names.contains(&ia.interface_name) || !ia.flags.contains(InterfaceFlags::IFF_UP) {
            continue;
        }
        let Ok(index) = nix::net::if_::if_nametoindex(ia.interface_name.as_str()) else {
            continue;
        };
        // Every up interface is listed, with or without IPv4 addresses.
        let e = out.entry(index).or_insert_with(|| IfInfo {
            name: ia.interface_name.clone(),
            index,
            addrs: Vec::new(),
        });
        let Some(addr) = ia.address.as_ref().and_then(|a| a.as_sockaddr_in()) else {
            continue;
        };
        let prefix = ia
            .netmask
            .as_ref()
            .and_then(|m| m.as_sockaddr_in())
            .map(|m| u32::from(m.ip()).leading_ones() as u8)
            .unwrap_or(32);
        let a = IfAddr {
            addr: addr.ip(),
            prefix,
        };
        if !e.addrs.contains(&a) {
            e.addrs.push(a);
        }
    }
    for e in out.values_mut() {
        e.addrs.sort();
    }
    Ok(out)
}

/// The address to name in LOCATION for a peer at `peer` reaching us on `iface`: the address
/// whose subnet holds the peer, else `hint` (the packet's local address) if it is one of the
/// interface's, else the first.
pub fn location_addr(iface: &IfInfo, peer: Ipv4Addr, hint: Option<Ipv4Addr>) -> Option<Ipv4Addr> {
    iface
        .addrs
        .iter()
        .find(|a| a.contains(peer))
        .map(|a| a.addr)
        .or_else(|| hint.filter(|h| iface.addrs.iter().any(|a| a.addr == *h)))
        .or_else(|| iface.addrs.first().map(|a| a.addr))
}

// ---------------------------------------------------------------------------------------------
// The task
// ---------------------------------------------------------------------------------------------

/// A received datagram with its `IP_PKTINFO`.
struct Datagram {
    len: usize,
    truncated: bool,
    from: SocketAddrV4,
    ifindex: u32,
    /// Local address the kernel would answer from (`ipi_spec_dst`).
    local: Option<Ipv4Addr>,
    /// Destination address of the IP header (`ipi_addr`).
    dst: Option<Ipv4Addr>,
}

struct Pending {
    due: Instant,
    to: SocketAddrV4,
    ifindex: u32,
    from: Ipv4Addr,
    data: String,
}

struct Advertiser {
    cfg: SsdpConfig,
    sock: UdpSocket,
    ifaces: BTreeMap<u32, IfInfo>,
    joined: BTreeMap<u32, String>,
    neg: DeviceIdNegotiator,
    boot_id: u32,
    epoch: Instant,
    rng: Rng,
    bucket: TokenBucket,
    pending: Vec<Pending>,
    defended: PerPeerLimit,
    last_spoof_reannounce: Option<Instant>,
    /// When the last announcement that (re)started the DEVICE ID window went out.
    last_announce: Option<Instant>,
    /// A new DEVICE ID waiting for its announcement (at most [`YIELD_ANNOUNCE_INTERVAL`]
    /// after the previous one).
    yield_due: Option<Instant>,
    /// Something went out with the current BOOTID: the next first announcement (after a
    /// byebye, on a new interface, with a new DEVICE ID) needs a new one.
    boot_id_used: bool,
    /// Interfaces (by name) whose announcements still owe a byebye: their address vanished
    /// with no other to send it from; it goes out from the next address they get.
    owed_byebye: std::collections::BTreeSet<String>,
    /// Addresses we recently sent from, to recognise our own looped-back multicast.
    own_src: Vec<(Ipv4Addr, Instant)>,
    bad_log: RateLog,
    flood_log: RateLog,
    send_log: RateLog,
    id_log: RateLog,
    defend_log: RateLog,
}

/// Runs on an already bound socket (see [`bind_socket`]) until `shutdown` turns true, then
/// sends the byebye sets.
pub async fn run_with_socket(
    cfg: SsdpConfig,
    socket: std::net::UdpSocket,
    mut shutdown: watch::Receiver<bool>,
) -> io::Result<()> {
    socket.set_nonblocking(true)?;
    let sock = UdpSocket::from_std(socket)?;
    let now = Instant::now();
    let mut rng = Rng::from_entropy();
    let first_refresh = refresh_interval(cfg.max_age, &mut rng);
    let mut a = Advertiser {
        neg: DeviceIdNegotiator::new(cfg.state.device_id),
        boot_id: cfg.state.boot_id,
        bucket: TokenBucket::new(cfg.max_replies_per_sec, now),
        cfg,
        sock,
        ifaces: BTreeMap::new(),
        joined: BTreeMap::new(),
        epoch: now,
        rng,
        pending: Vec::new(),
        defended: PerPeerLimit::new(DEFEND_INTERVAL, MAX_DEFENDED),
        last_spoof_reannounce: None,
        last_announce: None,
        yield_due: None,
        boot_id_used: false,
        owed_byebye: Default::default(),
        own_src: Vec::new(),
        bad_log: RateLog::default(),
        flood_log: RateLog::default(),
        send_log: RateLog::default(),
        id_log: RateLog::default(),
        defend_log: RateLog::default(),
    };
    let mut poll = tokio::time::interval(a.cfg.poll_interval);
    poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut housekeeping = tokio::time::interval(Duration::from_millis(250));
    housekeeping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut next_refresh = tokio::time::Instant::now() + first_refresh;
    let mut buf = vec![0u8; MAX_MESSAGE_LEN + 1];
    let mut config_ids = a.cfg.config_ids.take();

    loop {
        let next_due = a
            .pending
            .iter()
            .map(|p| p.due)
            .min()
            .map(tokio::time::Instant::from_std);
        tokio::select! {
            r = shutdown.wait_for(|s| *s) => {
                let _ = r;
                break;
            }
            _ = poll.tick() => a.poll_interfaces(),
            r = async {
                match config_ids.as_mut() {
                    Some(rx) => rx.changed().await,
                    None => std::future::pending().await,
                }
            } => match r {
                Ok(()) => {
                    let id = config_ids.as_mut().map(|rx| *rx.borrow_and_update());
                    if let Some(id) = id {
                        a.config_changed(id);
                    }
                }
                // The description is gone (shutting down): keep the last CONFIGID.
                Err(_) => config_ids = None,
            },
            _ = housekeeping.tick() => a.housekeeping(),
            _ = tokio::time::sleep_until(next_refresh) => {
                if a.yield_due.is_some() {
                    // The new DEVICE ID goes out with this refresh (once, with its BOOTID).
                    a.rejoin("new DEVICEID");
                } else {
                    a.announce_all("refresh");
                }
                next_refresh = tokio::time::Instant::now()
                    + refresh_interval(a.cfg.max_age, &mut a.rng);
            }
            _ = async {
                match next_due {
                    Some(t) => tokio::time::sleep_until(t).await,
                    None => std::future::pending().await,
                }
            } => a.send_due(),
            r = a.sock.readable() => {
                r?;
                // One datagram per turn.
                let fd = a.sock.as_raw_fd();
                match a.sock.try_io(Interest::READABLE, || recv_datagram(fd, &mut buf)) {
                    Ok(d) => a.on_datagram(&buf, d),
                    Err(e) if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                    ) => {}
                    Err(e) => {
                        let now = Instant::now();
                        a.bad_log.log(now, || format!("receive error: {e}"));
                    }
                }
            }
        }
    }
    a.byebye_all();
    a.persist();
    Ok(())
}

fn recv_datagram(fd: std::os::fd::RawFd, buf: &mut [u8]) -> io::Result<Datagram> {
    let mut iov = [IoSliceMut::new(buf)];
    let mut cmsg = nix::cmsg_space!(libc::in_pktinfo);
    let msg = recvmsg::<SockaddrIn>(
        fd,
        &mut iov,
        Some(&mut cmsg),
        MsgFlags::MSG_TRUNC | MsgFlags::MSG_DONTWAIT,
    )
    .map_err(io::Error::from)?;
    let from = msg
        .address
        .map(|a| SocketAddrV4::new(a.ip(), a.port()))
        .unwrap_or_else(|| SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0));
    let mut d = Datagram {
        len: msg.bytes,
        truncated: msg.flags.contains(MsgFlags::MSG_TRUNC),
        from,
        ifindex: 0,
        local: None,
        dst: None,
    };
    if let Ok(cmsgs) = msg.cmsgs() {
        for c in cmsgs {
            if let ControlMessageOwned::Ipv4PacketInfo(pi) = c {
                d.ifindex = u32::try_from(pi.ipi_ifindex).unwrap_or(0);
                d.local = Some(Ipv4Addr::from(u32::from_be(pi.ipi_spec_dst.s_addr)));
                d.dst = Some(Ipv4Addr::from(u32::from_be(pi.ipi_addr.s_addr)));
            }
        }
    }
    Ok(d)
}

impl Advertiser {
    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn identity(&self, location_ip: Ipv4Addr) -> Identity {
        Identity {
            uuid: self.cfg.state.uuid.clone(),
            location: format!(
                "http://{location_ip}:{}{}",
                self.cfg.http_port, self.cfg.desc_path
            ),
            server: self.cfg.server.clone(),
            max_age: self.cfg.max_age,
            boot_id: self.boot_id,
            config_id: self.cfg.config_id,
            device_id: Some(self.neg.device_id()),
            search_port: (self.cfg.port != super::message::SSDP_PORT).then_some(self.cfg.port),
        }
    }

    fn persist(&mut self) {
        let Some(store) = &self.cfg.store else { return };
        let mut s = self.cfg.state.clone();
        s.boot_id = self.boot_id;
        if self.neg.is_settled() {
            s.device_id = self.neg.device_id();
            if let Some(tx) = &self.cfg.settled_id {
                tx.send_if_modified(|id| std::mem::replace(id, s.device_id) != s.device_id);
            }
        }
        if let Err(e) = store.save(&s) {
            eprintln!("dvb2ip: ssdp: cannot store {}: {e}", store.path().display());
        } else {
            self.cfg.state = s;
        }
    }

    /// Sends one datagram out of `ifindex` (which must be a configured, present interface)
    /// from `src` (one of its addresses; never `0.0.0.0`, which receivers drop).
    fn send(&mut self, data: &[u8], to: SocketAddrV4, ifindex: u32, src: Ipv4Addr) {
        if !self.ifaces.contains_key(&ifindex) || src.is_unspecified() {
            return;
        }
        let now = Instant::now();
        self.own_src
            .retain(|(a, t)| *a != src && now.saturating_duration_since(*t) < OWN_SRC_MEMORY);
        if self.own_src.len() >= MAX_OWN_SRC {
            self.own_src.remove(0);
        }
        self.own_src.push((src, now));
        let pi = libc::in_pktinfo {
            ipi_ifindex: i32::try_from(ifindex).unwrap_or(0),
            ipi_spec_dst: libc::in_addr {
                s_addr: u32::from(src).to_be(),
            },
            ipi_addr: libc::in_addr { s_addr: 0 },
        };
        let dest = SockaddrIn::from(to);
        let r = sendmsg(
            self.sock.as_raw_fd(),
            &[IoSlice::new(data)],
            &[ControlMessage::Ipv4PacketInfo(&pi)],
            MsgFlags::MSG_DONTWAIT,
            Some(&dest),
        );
        if let Err(e) = r {
            let now = Instant::now();
            let name = self.ifaces.get(&ifindex).map(|i| i.name.clone());
            self.send_log.log(now, || {
                format!(
                    "cannot send to {to} on {}: {e}{}",
                    name.as_deref().unwrap_or("?"),
                    if name.as_deref() == Some("lo") {
                        " (loopback needs `ip link set lo multicast on`)"
                    } else {
                        ""
                    }
                )
            });
        }
    }

    fn multicast_dest(&self) -> SocketAddrV4 {
        SocketAddrV4::new(SSDP_MULTICAST_ADDR, self.cfg.port)
    }

    fn announce_addr(&mut self, ifindex: u32, addr: Ipv4Addr) {
        let set = alive_set(&self.identity(addr));
        let dest = self.multicast_dest();
        for m in &set {
            self.send(m.as_bytes(), dest, ifindex, addr);
        }
        self.boot_id_used = true;
    }

    fn announce_all(&mut self, why: &str) {
        let targets: Vec<(u32, Ipv4Addr)> = self
            .ifaces
            .values()
            .flat_map(|i| i.addrs.iter().map(move |a| (i.index, a.addr)))
            .collect();
        for (idx, addr) in &targets {
            self.announce_addr(*idx, *addr);
        }
        // A periodic refresh does not restart the DEVICE ID settle window.
        if !targets.is_empty() && why != "refresh" {
            let now = self.now_ms();
            self.neg.announced(now);
            self.last_announce = Some(Instant::now());
            {
                eprintln!(
                    "dvb2ip: ssdp: announced ({why}) DEVICEID {} BOOTID {} on {:?}",
                    self.neg.device_id(),
                    self.boot_id,
                    targets.iter().map(|t| t.1).collect::<Vec<_>>()
                );
            }
        }
    }

    /// The byebye set out of `ifindex`, from `src`, one of its addresses. Byebye carries no
    /// LOCATION and no DEVICEID: one set per interface suffices.
    fn byebye_iface(&mut self, ifindex: u32, src: Ipv4Addr) {
        let set = byebye_set(&self.identity(src));
        let dest = self.multicast_dest();
        for m in &set {
            self.send(m.as_bytes(), dest, ifindex, src);
        }
    }

    fn byebye_all(&mut self) {
        let targets: Vec<(u32, Ipv4Addr)> = self
            .ifaces
            .values()
            .filter_map(|i| i.addrs.first().map(|a| (i.index, a.addr)))
            .collect();
        for (i, src) in targets {
            self.byebye_iface(i, src);
        }
    }

    /// The description changed (CONFIGID `id`): byebye with the old CONFIGID on every
    /// interface, then join again with the new one ([`config_change`]).
    fn config_changed(&mut self, id: u32) {
        if id == self.cfg.config_id {
            return;
        }
        eprintln!(
            "dvb2ip: ssdp: CONFIGID {} -> {id}: byebye, then announcing again",
            self.cfg.config_id
        );
        self.byebye_all();
        self.cfg.config_id = id;
        self.rejoin("new CONFIGID");
    }

    /// A first announcement after a byebye, on a new interface or with a new DEVICE ID:
    /// increase BOOTID (UPnP DA 1.1 §1.2.2, digest §8.6/§13), store it, then send the alive
    /// sets on every address.
    fn rejoin(&mut self, why: &str) {
        self.yield_due = None;
        if self.boot_id_used {
            self.boot_id = next_boot_id(self.boot_id);
            self.boot_id_used = false;
            self.persist();
        }
        self.announce_all(why);
    }

    /// After giving up our DEVICE ID: announce the new one now, or once
    /// [`YIELD_ANNOUNCE_INTERVAL`] has passed since the previous announcement.
    fn schedule_new_id(&mut self, now: Instant) {
        let due = self
            .last_announce
            .map_or(now, |t| (t + YIELD_ANNOUNCE_INTERVAL).max(now));
        if due <= now {
            self.rejoin("new DEVICEID");
        } else {
            self.yield_due = Some(due);
        }
    }

    /// Whether `ip` is (or was a moment ago) one of our source addresses.
    fn is_own_src(&self, ip: Ipv4Addr) -> bool {
        let now = Instant::now();
        self.ifaces
            .values()
            .any(|i| i.addrs.iter().any(|a| a.addr == ip))
            || self
                .own_src
                .iter()
                .any(|(a, t)| *a == ip && now.saturating_duration_since(*t) < OWN_SRC_MEMORY)
    }

    fn poll_interfaces(&mut self) {
        let found = match scan_interfaces(&self.cfg.interfaces) {
            Ok(f) => f,
            Err(e) => {
                let now = Instant::now();
                self.send_log
                    .log(now, || format!("cannot list interfaces: {e}"));
                return;
            }
        };
        // Interfaces gone (or down): nothing can be sent there any more. What was announced
        // there is said goodbye to from the first address the interface has again.
        let gone: Vec<u32> = self
            .ifaces
            .keys()
            .filter(|k| !found.contains_key(k))
            .copied()
            .collect();
        for idx in gone {
            if let Some(i) = self.ifaces.remove(&idx) {
                eprintln!("dvb2ip: ssdp: interface {} gone or down", i.name);
                if !i.addrs.is_empty() {
                    self.owed_byebye.insert(i.name);
                }
            }
            if self.joined.remove(&idx).is_some() {
                let _ = SockRef::from(&self.sock).leave_multicast_v4_n(
                    &SSDP_MULTICAST_ADDR,
                    &InterfaceIndexOrAddress::Index(idx),
                );
            }
        }
        let mut new_addrs = Vec::new();
        let mut byebyes = Vec::new();
        let mut rejoin = false;
        for (idx, info) in found {
            if !self.joined.contains_key(&idx) {
                match SockRef::from(&self.sock)
                    .join_multicast_v4_n(&SSDP_MULTICAST_ADDR, &InterfaceIndexOrAddress::Index(idx))
                {
                    Ok(()) => {
                        self.joined.insert(idx, info.name.clone());
                    }
                    Err(e) if e.raw_os_error() == Some(libc::EADDRINUSE) => {
                        self.joined.insert(idx, info.name.clone());
                    }
                    Err(e) => {
                        let now = Instant::now();
                        let n = info.name.clone();
                        self.send_log.log(now, || {
                            format!("cannot join {SSDP_MULTICAST_ADDR} on {n}: {e}")
                        });
                    }
                }
            }
            let old = self
                .ifaces
                .get(&idx)
                .map(|i| i.addrs.clone())
                .unwrap_or_default();
            let vanished: Vec<Ipv4Addr> = old
                .iter()
                .filter(|a| !info.addrs.contains(a))
                .map(|a| a.addr)
                .collect();
            let added: Vec<IfAddr> = info
                .addrs
                .iter()
                .filter(|a| !old.contains(a))
                .copied()
                .collect();
            self.ifaces.insert(idx, info.clone());
            let owed = !vanished.is_empty() || self.owed_byebye.contains(&info.name);
            let now_addrs: Vec<Ipv4Addr> = info.addrs.iter().map(|a| a.addr).collect();
            match (owed, info.addrs.first()) {
                (true, Some(src)) => {
                    eprintln!(
                        "dvb2ip: ssdp: {} lost {vanished:?}: byebye from {}, then announcing {now_addrs:?}",
                        info.name, src.addr
                    );
                    self.owed_byebye.remove(&info.name);
                    byebyes.push((idx, src.addr));
                    rejoin = true;
                }
                (true, None) => {
                    if self.owed_byebye.insert(info.name.clone()) {
                        eprintln!(
                            "dvb2ip: ssdp: {} lost {vanished:?} and has no address left: byebye \
                             when it gets one",
                            info.name
                        );
                    }
                }
                (false, _) => {
                    // A first address after something went out with this BOOTID: a new
                    // UPnP-enabled interface, so a new BOOTID.
                    if old.is_empty() && !added.is_empty() && self.boot_id_used {
                        rejoin = true;
                    }
                    new_addrs.extend(added.iter().map(|a| (idx, a.addr)));
                }
            }
        }
        // Goodbye with the BOOTID the old announcements carried, then join again.
        for (idx, src) in byebyes {
            self.byebye_iface(idx, src);
        }
        if rejoin || (self.yield_due.is_some() && !new_addrs.is_empty()) {
            self.rejoin("address change");
        } else if !new_addrs.is_empty() {
            new_addrs.dedup();
            for (idx, addr) in &new_addrs {
                self.announce_addr(*idx, *addr);
            }
            let now = self.now_ms();
            self.neg.announced(now);
            self.last_announce = Some(Instant::now());
            eprintln!(
                "dvb2ip: ssdp: announced DEVICEID {} BOOTID {} on {:?}",
                self.neg.device_id(),
                self.boot_id,
                new_addrs.iter().map(|t| t.1).collect::<Vec<_>>()
            );
        }
    }

    fn housekeeping(&mut self) {
        let now_ms = self.now_ms();
        if let Some(id) = self.neg.poll(now_ms) {
            eprintln!("dvb2ip: ssdp: DEVICEID {id} settled");
            self.persist();
        }
        let now = Instant::now();
        if self.yield_due.is_some_and(|t| t <= now) {
            self.rejoin("new DEVICEID");
        }
        self.defended.expire(now);
    }

    fn send_due(&mut self) {
        let now = Instant::now();
        let (due, keep): (Vec<Pending>, Vec<Pending>) = std::mem::take(&mut self.pending)
            .into_iter()
            .partition(|p| p.due <= now);
        self.pending = keep;
        for p in due {
            self.send(p.data.as_bytes(), p.to, p.ifindex, p.from);
        }
    }

    fn ignore_bad(&mut self, from: SocketAddrV4, why: String) {
        let now = Instant::now();
        self.bad_log
            .log(now, || format!("ignored datagram from {from}: {why}"));
    }

    fn on_datagram(&mut self, buf: &[u8], d: Datagram) {
        // Only the configured interfaces exist for us.
        let Some(iface) = self.ifaces.get(&d.ifindex).cloned() else {
            return;
        };
        if d.truncated || d.len > MAX_MESSAGE_LEN {
            self.ignore_bad(d.from, format!("oversized ({} bytes)", d.len));
            return;
        }
        let Some(data) = buf.get(..d.len) else { return };
        let msg = match parse_message(data) {
            Ok(m) => m,
            Err(e) => {
                self.ignore_bad(d.from, e.to_string());
                return;
            }
        };
        let multicast = d.dst.is_some_and(|a| a.is_multicast());
        match msg {
            Message::Search(s) => self.on_search(&iface, &d, s, multicast),
            Message::Notify(n) => self.on_notify(&iface, &d, n),
            // Answers to searches we never multicast; the acknowledgement of a defence.
            Message::Response(_) => {}
        }
    }

    fn on_search(&mut self, iface: &IfInfo, d: &Datagram, s: SearchRequest, multicast: bool) {
        if let Err(e) = s.check(multicast) {
            self.ignore_bad(d.from, e.to_string());
            return;
        }
        let targets = s.targets(&self.cfg.state.uuid);
        if targets.is_empty() || d.from.port() == 0 || d.from.ip().is_unspecified() {
            return;
        }
        let Some(loc) = location_addr(iface, *d.from.ip(), d.local) else {
            return;
        };
        let now = Instant::now();
        let verdict = self.neg.on_search(s.device_id, self.now_ms());
        match verdict {
            SearchVerdict::Answer { device_id } => {
                let id = self.identity(loc);
                for t in targets {
                    if self.pending.len() >= MAX_PENDING || !self.bucket.take(now) {
                        let from = d.from;
                        self.flood_log.log(now, || {
                            format!("too many searches (last from {from}): answers dropped")
                        });
                        return;
                    }
                    let delay = if device_id.is_some() {
                        Duration::ZERO
                    } else {
                        answer_delay(&s, &mut self.rng)
                    };
                    let date = super::message::http_date(
                        std::time::SystemTime::now()
                            .duration_since(std::time::UNIX_EPOCH)
                            .map(|d| d.as_secs())
                            .unwrap_or(0),
                    );
                    self.pending.push(Pending {
                        due: now + delay,
                        to: d.from,
                        ifindex: iface.index,
                        from: loc,
                        data: search_response(&id, t, Some(&date), device_id),
                    });
                }
            }
            SearchVerdict::Yield { old_id, new_id } => {
                // §8.6 step 3: acknowledge with the clashing id (an answer like any other,
                // so charged to the same bucket), then announce id + 1 with a new BOOTID.
                // The negotiator yields only an announced id, and the new one is announced
                // no sooner than YIELD_ANNOUNCE_INTERVAL after the last announcement: a
                // flood moves the id at most one step per interval.
                let ack = search_response(&self.identity(loc), Nt::DeviceType, None, Some(old_id));
                if self.bucket.take(now) {
                    self.send(ack.as_bytes(), d.from, iface.index, loc);
                }
                let from = d.from;
                self.id_log.log(now, || {
                    format!(
                        "DEVICEID {old_id} is taken (defended by {}): switching to {new_id}",
                        from.ip()
                    )
                });
                self.schedule_new_id(now);
            }
            SearchVerdict::Refuse { device_id } => {
                if self.bucket.take(now) {
                    let r = search_refusal(&self.identity(loc), device_id);
                    self.send(r.as_bytes(), d.from, iface.index, loc);
                }
            }
        }
    }

    fn on_notify(&mut self, iface: &IfInfo, d: &Datagram, n: Notify) {
        let uuid = self.cfg.state.uuid.clone();
        let Some(theirs) = n.uuid().map(str::to_owned) else {
            return;
        };
        if d.from.ip().is_unspecified() {
            return;
        }
        if theirs.eq_ignore_ascii_case(&uuid) {
            // Our own multicast comes back (IP_MULTICAST_LOOP): ignore it.
            if n.nts == Nts::ByeBye && !self.is_own_src(*d.from.ip()) {
                // Someone says goodbye in our name: tell everyone we are still here.
                let now = Instant::now();
                let from = d.from;
                self.bad_log
                    .log(now, || format!("spoofed byebye for our UUID from {from}"));
                let recent = self
                    .last_spoof_reannounce
                    .is_some_and(|t| now.saturating_duration_since(t) < SPOOF_REANNOUNCE_INTERVAL);
                if !recent {
                    self.last_spoof_reannounce = Some(now);
                    self.announce_all("spoofed byebye");
                }
            }
            return;
        }
        if let Some(def) = self.neg.on_notify(&n, &uuid) {
            // One defence per address per DEFEND_INTERVAL (at most MAX_DEFENDED addresses
            // remembered), each charged to the answer bucket, each log line rate-limited.
            let now = Instant::now();
            let ip = *d.from.ip();
            if def.port == 0 || !self.defended.allow(ip, now) {
                return;
            }
            let Some(loc) = location_addr(iface, ip, d.local) else {
                return;
            };
            if !self.bucket.take(now) {
                self.flood_log.log(now, || {
                    format!("too many DEVICEID conflicts (last from {ip}): defences dropped")
                });
                return;
            }
            let target = SocketAddrV4::new(ip, def.port);
            self.defend_log.log(now, || {
                format!("{ip} announces our DEVICEID {}: defending", def.device_id)
            });
            let m = defend_search(&target.to_string(), &self.cfg.server, def.device_id);
            self.send(m.as_bytes(), target, iface.index, loc);
            return;
        }
        // [OURS] Two servers joining at once with the same id: neither is settled, so
        // neither defends. The one with the greater UUID yields, as if defended.
        if !self.neg.is_settled()
            && n.nts == Nts::Alive
            && n.device_id == Some(self.neg.device_id())
            && theirs.to_ascii_lowercase() < uuid.to_ascii_lowercase()
        {
            let now_ms = self.now_ms();
            if let SearchVerdict::Yield { old_id, new_id } =
                self.neg.on_search(Some(self.neg.device_id()), now_ms)
            {
                let now = Instant::now();
                let from = d.from;
                self.id_log.log(now, || {
                    format!(
                        "{} (joining too) announces DEVICEID {old_id}: switching to {new_id}",
                        from.ip()
                    )
                });
                self.schedule_new_id(now);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_configid_change_says_byebye_then_alive_with_the_new_configid() {
        let old = Identity {
            uuid: "3f2a9c10-5b7e-4d21-9a0c-00155d0a0b0c".into(),
            location: "http://10.0.0.2:8875/desc.xml".into(),
            server: "Linux/6.1 UPnP/1.1 dvb2ip/0.1".into(),
            max_age: 1800,
            boot_id: 7,
            config_id: 1234,
            device_id: Some(1),
            search_port: None,
        };
        let new = Identity {
            boot_id: next_boot_id(7),
            config_id: 5678,
            ..old.clone()
        };
        let msgs = config_change(&old, &new);
        assert_eq!(msgs.len(), 6);
        let header = |m: &str, h: &str| {
            m.lines()
                .find_map(|l| l.strip_prefix(&format!("{h}: ")).map(str::to_owned))
                .unwrap_or_else(|| panic!("no {h} in {m}"))
        };
        for m in &msgs[..3] {
            assert_eq!(header(m, "NTS"), "ssdp:byebye");
            assert_eq!(header(m, "CONFIGID.UPNP.ORG"), "1234");
            assert_eq!(header(m, "BOOTID.UPNP.ORG"), "7");
        }
        for m in &msgs[3..] {
            assert_eq!(header(m, "NTS"), "ssdp:alive");
            assert_eq!(header(m, "CONFIGID.UPNP.ORG"), "5678");
            assert_eq!(header(m, "BOOTID.UPNP.ORG"), "8");
        }
        // The same three NT values leave and come back.
        let nts = |ms: &[String]| ms.iter().map(|m| header(m, "NT")).collect::<Vec<_>>();
        assert_eq!(nts(&msgs[..3]), nts(&msgs[3..]));
    }

    #[test]
    fn checklist_111_refresh_before_half_max_age() {
        let mut rng = Rng::new(42);
        for max_age in [4u32, 10, 60, 1800, 86_400] {
            for _ in 0..1000 {
                let d = refresh_interval(max_age, &mut rng);
                assert!(
                    d < Duration::from_millis(u64::from(max_age) * 500) || max_age < 4,
                    "{max_age}: {d:?}"
                );
                assert!(d >= Duration::from_secs(1));
            }
        }
        // Randomised: not always the same interval.
        let a: Vec<Duration> = (0..10).map(|_| refresh_interval(1800, &mut rng)).collect();
        assert!(a.windows(2).any(|w| w[0] != w[1]));
    }

    #[test]
    fn answer_delay_within_mx() {
        let mut rng = Rng::new(7);
        let mut s = SearchRequest {
            host: None,
            mx: Some(2),
            st: "ssdp:all".into(),
            user_agent: None,
            device_id: None,
        };
        for _ in 0..1000 {
            assert!(answer_delay(&s, &mut rng) <= Duration::from_secs(2));
        }
        s.mx = Some(120);
        for _ in 0..1000 {
            assert!(
                answer_delay(&s, &mut rng) <= Duration::from_secs(5),
                "MX capped"
            );
        }
        s.mx = None;
        assert_eq!(answer_delay(&s, &mut rng), Duration::ZERO);
    }

    #[test]
    fn token_bucket_bounds_bursts() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(10, t0);
        let burst = (0..100).filter(|_| b.take(t0)).count();
        assert_eq!(burst, 10);
        let later = t0 + Duration::from_millis(500);
        let refill = (0..100).filter(|_| b.take(later)).count();
        assert!((4..=6).contains(&refill), "{refill}");
    }

    #[test]
    fn rate_log_bounds_lines_of_a_flood() {
        let t0 = Instant::now();
        let mut l = RateLog::default();
        let mut calls = 0;
        // 10 000 events over 30 s (one every 3 ms): one line per LOG_INTERVAL.
        let lines: Vec<String> = (0..10_000u64)
            .filter_map(|i| {
                l.line(t0 + Duration::from_millis(i * 3), || {
                    calls += 1;
                    format!("event {i}")
                })
            })
            .collect();
        assert_eq!(lines.len(), 3, "{lines:?}");
        assert_eq!(calls, 3, "the text is only built for printed lines");
        assert_eq!(lines[0], "dvb2ip: ssdp: event 0");
        // Each later line counts what was suppressed since the previous one.
        let suppressed: u64 = lines[1..]
            .iter()
            .map(|s| {
                let n = s.rsplit_once(" (").unwrap().1;
                n.split(' ').next().unwrap().parse::<u64>().unwrap()
            })
            .sum();
        assert!(suppressed > 6_000, "{lines:?}");
    }

    #[test]
    fn per_peer_limit_is_bounded() {
        let t0 = Instant::now();
        let mut p = PerPeerLimit::new(Duration::from_secs(1), 8);
        let ip = |i: u32| Ipv4Addr::from(0x7f00_0000 + i);
        // 200 addresses at once: 8 remembered and allowed, the rest refused.
        let allowed = (0..200).filter(|i| p.allow(ip(*i), t0)).count();
        assert_eq!(allowed, 8);
        assert_eq!(p.len(), 8);
        // The same address again within the interval: refused.
        assert!(!p.allow(ip(0), t0 + Duration::from_millis(500)));
        // After the interval the table makes room again.
        let t1 = t0 + Duration::from_secs(1);
        let allowed = (200..400).filter(|i| p.allow(ip(*i), t1)).count();
        assert_eq!(allowed, 8);
        assert!(p.len() <= 8);
        assert!(p.allow(ip(0), t1 + Duration::from_secs(1)));
        p.expire(t1 + Duration::from_secs(10));
        assert_eq!(p.len(), 0);
    }

    #[test]
    fn location_prefers_the_peer_subnet() {
        let iface = IfInfo {
            name: "veth0".into(),
            index: 3,
            addrs: vec![
                IfAddr {
                    addr: Ipv4Addr::new(10, 1, 0, 2),
                    prefix: 24,
                },
                IfAddr {
                    addr: Ipv4Addr::new(10, 2, 0, 2),
                    prefix: 24,
                },
            ],
        };
        assert_eq!(
            location_addr(&iface, Ipv4Addr::new(10, 2, 0, 9), None),
            Some(Ipv4Addr::new(10, 2, 0, 2))
        );
        assert_eq!(
            location_addr(
                &iface,
                Ipv4Addr::new(192, 0, 2, 1),
                Some(Ipv4Addr::new(10, 2, 0, 2))
            ),
            Some(Ipv4Addr::new(10, 2, 0, 2))
        );
        assert_eq!(
            location_addr(
                &iface,
                Ipv4Addr::new(192, 0, 2, 1),
                Some(Ipv4Addr::new(192, 0, 2, 7))
            ),
            Some(Ipv4Addr::new(10, 1, 0, 2))
        );
        let empty = IfInfo {
            addrs: Vec::new(),
            ..iface
        };
        assert_eq!(location_addr(&empty, Ipv4Addr::LOCALHOST, None), None);
        assert!(IfAddr {
            addr: Ipv4Addr::new(127, 0, 0, 1),
            prefix: 8
        }
        .contains(Ipv4Addr::new(127, 9, 9, 9)));
        assert!(IfAddr {
            addr: Ipv4Addr::new(1, 2, 3, 4),
            prefix: 0
        }
        .contains(Ipv4Addr::new(9, 9, 9, 9)));
    }

    #[test]
    fn scan_lists_only_configured_interfaces() {
        let found = scan_interfaces(&["no-such-if0".to_owned()]).unwrap();
        assert!(found.is_empty());
        let lo = scan_interfaces(&["lo".to_owned()]).unwrap();
        for i in lo.values() {
            assert_eq!(i.name, "lo");
            assert!(i.addrs.iter().all(|a| a.addr.is_loopback()));
        }
    }
}
