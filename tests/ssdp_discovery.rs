//! SAT>IP discovery end to end (satip.md §8, checklist 103–120): the real `dvb2ip serve`
//! binary inside network namespaces this test creates (veth pairs on a bridge that lives in a
//! namespace of its own), with raw SSDP clients, `gssdp-discover` and curl in other
//! namespaces. Nothing is sent outside those namespaces; they are deleted by Drop guards.
//!
//! Needs root, `ip` (iproute2), `curl` and `gssdp-discover` (Debian gupnp-tools).

use std::io::IoSliceMut;
use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use dvb2ip::ssdp::message::{parse_message, Message, Nts};

mod common;
use common::netns::{run, Netns};

const GROUP: Ipv4Addr = Ipv4Addr::new(239, 255, 255, 250);
const URN: &str = "urn:ses-com:device:SatIPServer:1";
/// Subnet used inside the test namespaces only.
const NET: [u8; 3] = [10, 213, 0];

fn host_ip(i: u8) -> Ipv4Addr {
    Ipv4Addr::new(NET[0], NET[1], NET[2], i)
}

// ---------------------------------------------------------------------------------------------
// Namespaces
// ---------------------------------------------------------------------------------------------

/// Namespace names of this test binary start with this.
const PREFIX: &str = "d2issdp";

static SEQ: AtomicUsize = AtomicUsize::new(0);

/// Hosts on one bridge: host i has `eth0` with 10.213.0.(i+1)/24. Dropped in reverse order:
/// hosts first, the bridge namespace last.
struct Lan {
    hosts: Vec<Netns>,
    bridge: Netns,
}

impl Lan {
    fn new(tag: &str, n: usize) -> Lan {
        let bridge = Netns::new(PREFIX, &format!("{tag}-br"));
        bridge.ip(&["link", "add", "br0", "type", "bridge"]);
        bridge.ip(&[
            "link",
            "set",
            "br0",
            "type",
            "bridge",
            "mcast_snooping",
            "0",
        ]);
        bridge.ip(&["link", "set", "br0", "up"]);
        let mut lan = Lan {
            hosts: Vec::new(),
            bridge,
        };
        for i in 0..n {
            let h = Netns::new(PREFIX, &format!("{tag}-h{i}"));
            lan.hosts.push(h);
            lan.plug(i, "eth0", Some(host_ip(i as u8 + 1)));
        }
        lan
    }

    /// Adds interface `ifname` to host `i`, bridged, with an optional address.
    fn plug(&self, i: usize, ifname: &str, addr: Option<Ipv4Addr>) {
        let h = &self.hosts[i];
        let peer = format!("p{i}{}", ifname.trim_start_matches("eth"));
        h.ip(&[
            "link",
            "add",
            ifname,
            "type",
            "veth",
            "peer",
            "name",
            &peer,
            "netns",
            &self.bridge.name,
        ]);
        self.bridge
            .ip(&["link", "set", &peer, "master", "br0", "up"]);
        if let Some(a) = addr {
            h.ip(&["addr", "add", &format!("{a}/24"), "dev", ifname]);
        }
        h.ip(&["link", "set", ifname, "up"]);
    }
}

// ---------------------------------------------------------------------------------------------
// The server process
// ---------------------------------------------------------------------------------------------

struct ServerOpts<'a> {
    interfaces: &'a str,
    max_age: u32,
    device_id: u8,
    rtsp_port: u16,
    max_replies: u32,
}

impl Default for ServerOpts<'_> {
    fn default() -> Self {
        ServerOpts {
            interfaces: "[\"eth0\"]",
            max_age: 1800,
            device_id: 1,
            rtsp_port: 554,
            max_replies: 50,
        }
    }
}

fn temp_dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!(
        "d2issdp-{}-{}-{tag}",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::SeqCst)
    ));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// The default configuration with test values (all through the `[ssdp]`/`[server]` lines).
fn config(dir: &Path, o: &ServerOpts) -> PathBuf {
    let base = gstdvb2ip::tuners::config::DEFAULT_CONFIG;
    let mut text = String::new();
    for line in base.lines() {
        let l = match line {
            l if l.starts_with("bind = ") => "bind = \"0.0.0.0\"".to_owned(),
            l if l.starts_with("rtsp_port = ") => format!("rtsp_port = {}", o.rtsp_port),
            l if l.starts_with("interfaces = ") => format!("interfaces = {}", o.interfaces),
            l if l.starts_with("state_dir = ") => {
                format!("state_dir = \"{}\"", dir.join("state").display())
            }
            l if l.starts_with("max_age = ") => format!("max_age = {}", o.max_age),
            l if l.starts_with("device_id = ") => format!("device_id = {}", o.device_id),
            l if l.starts_with("interface_poll_secs = ") => "interface_poll_secs = 1".to_owned(),
            l if l.starts_with("max_replies_per_sec = ") => {
                format!("max_replies_per_sec = {}", o.max_replies)
            }
            l => l.to_owned(),
        };
        text.push_str(&l);
        text.push('\n');
    }
    let p = dir.join("dvb2ip.toml");
    std::fs::write(&p, text).unwrap();
    p
}

/// `dvb2ip serve` inside a namespace; killed on drop if still running.
struct Server {
    child: Child,
    log: PathBuf,
}

impl Server {
    fn start(ns: &Netns, conf: &Path, log: PathBuf) -> Server {
        let out = std::fs::File::create(&log).unwrap();
        let child = ns
            .exec(env!("CARGO_BIN_EXE_dvb2ip"))
            .args(["serve", "--config"])
            .arg(conf)
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .expect("dvb2ip serve");
        Server { child, log }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits (bounded) for `needle` in the log.
    fn wait_log(&mut self, needle: &str, timeout: Duration) {
        let end = Instant::now() + timeout;
        while Instant::now() < end {
            if self.log().contains(needle) {
                return;
            }
            if let Ok(Some(st)) = self.child.try_wait() {
                panic!("server exited ({st}) before {needle:?}:\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("no {needle:?} within {timeout:?}:\n{}", self.log());
    }

    fn sigterm(&mut self) -> std::process::ExitStatus {
        let pid = self.child.id() as i32;
        unsafe { libc::kill(pid, libc::SIGTERM) };
        let end = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(Some(st)) = self.child.try_wait() {
                return st;
            }
            assert!(
                Instant::now() < end,
                "no exit after SIGTERM:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

// ---------------------------------------------------------------------------------------------
// SSDP clients
// ---------------------------------------------------------------------------------------------

/// A received datagram.
#[derive(Debug, Clone)]
struct Pkt {
    text: String,
    from: SocketAddrV4,
    ttl: Option<i32>,
}

impl Pkt {
    fn header(&self, name: &str) -> Option<String> {
        header(&self.text, name)
    }

    fn is_alive(&self) -> bool {
        matches!(parse_message(self.text.as_bytes()), Ok(Message::Notify(n)) if n.nts == Nts::Alive)
    }

    fn is_byebye(&self) -> bool {
        matches!(parse_message(self.text.as_bytes()), Ok(Message::Notify(n)) if n.nts == Nts::ByeBye)
    }
}

fn header(text: &str, name: &str) -> Option<String> {
    text.split("\r\n").skip(1).find_map(|l| {
        let (n, v) = l.split_once(':')?;
        n.trim()
            .eq_ignore_ascii_case(name)
            .then(|| v.trim().to_owned())
    })
}

/// A UDP socket in a namespace: on port 1900 joined to the SSDP group (a control point), or
/// on an ephemeral port (a searching client).
struct Udp {
    sock: UdpSocket,
}

impl Udp {
    fn listener(ns: &Netns, iface: &str, local: Ipv4Addr) -> Udp {
        let sock = ns.enter(|| {
            let s = socket2::Socket::new(
                socket2::Domain::IPV4,
                socket2::Type::DGRAM,
                Some(socket2::Protocol::UDP),
            )
            .unwrap();
            s.set_reuse_address(true).unwrap();
            s.bind(&SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 1900).into())
                .unwrap();
            let idx = nix::net::if_::if_nametoindex(iface).expect("iface");
            s.join_multicast_v4_n(&GROUP, &socket2::InterfaceIndexOrAddress::Index(idx))
                .unwrap();
            s.set_multicast_if_v4(&local).unwrap();
            UdpSocket::from(s)
        });
        Udp::setup(sock)
    }

    fn client(ns: &Netns, local: Ipv4Addr) -> Udp {
        let sock = ns.enter(|| {
            let s = UdpSocket::bind(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0)).unwrap();
            socket2::SockRef::from(&s)
                .set_multicast_if_v4(&local)
                .unwrap();
            s.set_multicast_ttl_v4(2).unwrap();
            s
        });
        Udp::setup(sock)
    }

    fn setup(sock: UdpSocket) -> Udp {
        nix::sys::socket::setsockopt(&sock, nix::sys::socket::sockopt::Ipv4RecvTtl, &true).unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        Udp { sock }
    }

    fn send(&self, text: &str, to: SocketAddrV4) {
        self.sock.send_to(text.as_bytes(), to).unwrap();
    }

    fn recv(&self) -> Option<Pkt> {
        use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags, SockaddrIn};
        let mut buf = vec![0u8; 9000];
        let mut iov = [IoSliceMut::new(&mut buf)];
        let mut cmsg = nix::cmsg_space!(libc::c_int);
        let r = recvmsg::<SockaddrIn>(
            self.sock.as_raw_fd(),
            &mut iov,
            Some(&mut cmsg),
            MsgFlags::empty(),
        );
        let msg = r.ok()?;
        let mut ttl = None;
        if let Ok(c) = msg.cmsgs() {
            for m in c {
                if let ControlMessageOwned::Ipv4Ttl(t) = m {
                    ttl = Some(t);
                }
            }
        }
        let from = msg
            .address
            .map(|a| SocketAddrV4::new(a.ip(), a.port()))
            .unwrap();
        let n = msg.bytes;
        Some(Pkt {
            text: String::from_utf8_lossy(&buf[..n]).to_string(),
            from,
            ttl,
        })
    }

    /// Collects packets until `done(all so far)` holds or `timeout` passes. `done` is also
    /// asked when nothing arrived (every 100 ms), so it may depend on the time.
    fn collect(&self, timeout: Duration, mut done: impl FnMut(&[Pkt]) -> bool) -> Vec<Pkt> {
        let end = Instant::now() + timeout;
        let mut all = Vec::new();
        while Instant::now() < end {
            if let Some(p) = self.recv() {
                all.push(p);
            }
            if done(&all) {
                break;
            }
        }
        all
    }
}

fn msearch(st: &str, mx: u32) -> String {
    format!(
        "M-SEARCH * HTTP/1.1\r\nHOST: 239.255.255.250:1900\r\nMAN: \"ssdp:discover\"\r\nMX: {mx}\r\nST: {st}\r\nUSER-AGENT: test/1 UPnP/1.1 test/1\r\n\r\n"
    )
}

/// The unicast M-SEARCH a defender of DEVICE ID `id` sends to `target` (§8.6 step 2).
fn defend_msearch(target: SocketAddrV4, id: u8) -> String {
    format!(
        "M-SEARCH * HTTP/1.1\r\nHOST: {target}\r\nMAN: \"ssdp:discover\"\r\nST: {URN}\r\nUSER-AGENT: Linux/6.1 UPnP/1.1 test/1\r\nDEVICEID.SES.COM: {id}\r\n\r\n"
    )
}

/// Lines of `log` containing `needle`.
fn log_lines(log: &str, needle: &str) -> usize {
    log.lines().filter(|l| l.contains(needle)).count()
}

/// Most lines a [`RateLog`]-limited message may print in `secs` (one per 10 s).
fn rate_log_bound(secs: f64) -> usize {
    1 + (secs / 10.0).ceil() as usize
}

fn boot_id(p: &Pkt) -> u32 {
    p.header("BOOTID.UPNP.ORG").unwrap().parse().unwrap()
}

fn group() -> SocketAddrV4 {
    SocketAddrV4::new(GROUP, 1900)
}

fn alive_from(p: &[Pkt], uuid: Option<&str>) -> Vec<Pkt> {
    p.iter()
        .filter(|x| x.is_alive())
        .filter(|x| uuid.is_none_or(|u| x.header("USN").is_some_and(|s| s.contains(u))))
        .cloned()
        .collect()
}

fn uuid_of(p: &Pkt) -> String {
    let usn = p.header("USN").unwrap();
    usn.trim_start_matches("uuid:")
        .split("::")
        .next()
        .unwrap()
        .to_owned()
}

/// `(headers, body)` of an HTTP GET run with curl inside `ns`.
fn http_get(ns: &Netns, url: &str) -> (String, Vec<u8>) {
    let out = ns
        .exec("curl")
        .args(["-s", "-m", "10", "-D", "-", url])
        .output()
        .expect("curl");
    assert!(out.status.success(), "curl {url}: {:?}", out.status);
    let raw = out.stdout;
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("header end");
    (
        String::from_utf8_lossy(&raw[..split]).to_string(),
        raw[split + 4..].to_vec(),
    )
}

fn settle(server: &mut Server) {
    server.wait_log("settled", Duration::from_secs(60));
}

const STARTUP: Duration = Duration::from_secs(90);

/// A two-host LAN named `tag`: a listener on host 1, and the server on host 0 started with
/// `opts` and past its first announcement. The LAN, the listener, the server's directory and
/// the server (dropped in reverse: the server goes first).
fn announced_server(tag: &str, opts: &ServerOpts) -> (Lan, Udp, PathBuf, Server) {
    let lan = Lan::new(tag, 2);
    let cap = Udp::listener(&lan.hosts[1], "eth0", host_ip(2));
    let dir = temp_dir(tag);
    let conf = config(&dir, opts);
    let mut srv = Server::start(&lan.hosts[0], &conf, dir.join("log"));
    srv.wait_log("dvb2ip: ssdp: announced", STARTUP);
    (lan, cap, dir, srv)
}

// ---------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------

#[test]
fn checklist_109_110_113_alive_set_at_startup() {
    let (_lan, cap, dir, srv) = announced_server("alive", &ServerOpts::default());
    let pkts = cap.collect(Duration::from_secs(10), |p| alive_from(p, None).len() >= 3);
    let alive = alive_from(&pkts, None);
    assert!(alive.len() >= 3, "{pkts:#?}\n{}", srv.log());
    let uuid = uuid_of(&alive[0]);
    let rows = [
        (
            "upnp:rootdevice".to_owned(),
            format!("uuid:{uuid}::upnp:rootdevice"),
        ),
        (format!("uuid:{uuid}"), format!("uuid:{uuid}")),
        (URN.to_owned(), format!("uuid:{uuid}::{URN}")),
    ];
    for (nt, usn) in &rows {
        let m = alive
            .iter()
            .find(|p| p.header("NT").as_deref() == Some(nt.as_str()))
            .unwrap_or_else(|| panic!("no NT {nt}: {alive:#?}"));
        assert!(m.text.starts_with("NOTIFY * HTTP/1.1\r\n"));
        assert_eq!(m.header("USN").as_deref(), Some(usn.as_str()));
        // 110: every header.
        for h in [
            "HOST",
            "CACHE-CONTROL",
            "LOCATION",
            "NT",
            "NTS",
            "SERVER",
            "USN",
            "BOOTID.UPNP.ORG",
            "CONFIGID.UPNP.ORG",
            "DEVICEID.SES.COM",
        ] {
            assert!(m.header(h).is_some(), "{h} missing: {}", m.text);
        }
        assert_eq!(m.header("HOST").as_deref(), Some("239.255.255.250:1900"));
        assert!(m.header("CACHE-CONTROL").unwrap().starts_with("max-age="));
        assert_eq!(
            m.header("LOCATION").unwrap(),
            format!("http://{}:8875/desc.xml", host_ip(1))
        );
        assert_eq!(*m.from.ip(), host_ip(1));
        // 113: TTL 2 on the wire (a bridge does not decrement it).
        assert_eq!(m.ttl, Some(2), "{m:?}");
    }
    drop(srv);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn checklist_111_alive_set_is_refreshed() {
    // max-age 8 s: refreshes are drawn below 4 s; wait up to max-age for a second set.
    let (_lan, cap, _dir, _srv) = announced_server(
        "refresh",
        &ServerOpts {
            max_age: 8,
            ..ServerOpts::default()
        },
    );
    let first = cap.collect(Duration::from_secs(10), |p| alive_from(p, None).len() >= 3);
    assert!(alive_from(&first, None).len() >= 3);
    let again = cap.collect(Duration::from_secs(8), |p| alive_from(p, None).len() >= 3);
    assert!(
        alive_from(&again, None).len() >= 3,
        "no refresh within max-age: {again:#?}"
    );
}

#[test]
fn checklist_112_byebye_on_sigterm() {
    let (_lan, cap, _dir, mut srv) = announced_server("bye", &ServerOpts::default());
    let alive = cap.collect(Duration::from_secs(10), |p| alive_from(p, None).len() >= 3);
    let uuid = uuid_of(&alive_from(&alive, None)[0]);
    let st = srv.sigterm();
    assert!(st.success(), "exit status {st}:\n{}", srv.log());
    let pkts = cap.collect(Duration::from_secs(20), |p| {
        p.iter().filter(|x| x.is_byebye()).count() >= 3
    });
    let bye: Vec<&Pkt> = pkts.iter().filter(|p| p.is_byebye()).collect();
    assert_eq!(bye.len(), 3, "{pkts:#?}\n{}", srv.log());
    let mut nts: Vec<String> = bye.iter().map(|p| p.header("NT").unwrap()).collect();
    nts.sort();
    let mut want = vec![
        "upnp:rootdevice".to_owned(),
        format!("uuid:{uuid}"),
        URN.to_owned(),
    ];
    want.sort();
    assert_eq!(nts, want);
    for p in bye {
        for h in ["CACHE-CONTROL", "LOCATION", "SERVER", "DEVICEID.SES.COM"] {
            assert!(p.header(h).is_none(), "{h} in byebye: {}", p.text);
        }
        for h in [
            "HOST",
            "NT",
            "NTS",
            "USN",
            "BOOTID.UPNP.ORG",
            "CONFIGID.UPNP.ORG",
        ] {
            assert!(p.header(h).is_some(), "{h} missing: {}", p.text);
        }
    }
}

#[test]
fn checklist_114_115_116_117_msearch_per_st() {
    let lan = Lan::new("search", 2);
    let dir = temp_dir("search");
    let conf = config(&dir, &ServerOpts::default());
    let mut srv = Server::start(&lan.hosts[0], &conf, dir.join("log"));
    srv.wait_log("dvb2ip: ssdp: announced", STARTUP);
    let client = Udp::client(&lan.hosts[1], host_ip(2));
    let state: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("state/ssdp.json")).unwrap())
            .unwrap();
    let uuid = state["uuid"].as_str().unwrap().to_owned();
    let my_port = client.sock.local_addr().unwrap().port();

    let ask = |text: &str, want: usize| -> Vec<Pkt> {
        client.send(text, group());
        // MX 1: every answer is due within 1 s; wait a little longer, bounded.
        let got = client.collect(Duration::from_secs(20), |p| p.len() > want);
        got.into_iter()
            .filter(|p| p.text.starts_with("HTTP/1.1 200 OK\r\n"))
            .collect()
    };

    // 114: the SAT>IP URN.
    let r = ask(&msearch(URN, 1), 1);
    assert_eq!(r.len(), 1, "{r:#?}");
    let p = &r[0];
    assert_eq!(*p.from.ip(), host_ip(1), "unicast from the server");
    for h in [
        "CACHE-CONTROL",
        "EXT",
        "LOCATION",
        "SERVER",
        "ST",
        "USN",
        "BOOTID.UPNP.ORG",
        "CONFIGID.UPNP.ORG",
    ] {
        assert!(p.header(h).is_some(), "{h} missing: {}", p.text);
    }
    assert!(p.header("DEVICEID.SES.COM").is_none(), "{}", p.text);
    assert_eq!(p.header("ST").as_deref(), Some(URN));
    assert_eq!(p.header("USN").unwrap(), format!("uuid:{uuid}::{URN}"));
    assert_eq!(
        p.header("LOCATION").unwrap(),
        format!("http://{}:8875/desc.xml", host_ip(1))
    );
    let _ = my_port; // answers reached this socket's own (ephemeral) port

    // 115: ssdp:all gets three answers.
    let r = ask(&msearch("ssdp:all", 1), 3);
    let mut sts: Vec<String> = r.iter().map(|p| p.header("ST").unwrap()).collect();
    sts.sort();
    let mut want = vec![
        "upnp:rootdevice".to_owned(),
        format!("uuid:{uuid}"),
        URN.to_owned(),
    ];
    want.sort();
    assert_eq!(sts, want, "{r:#?}");

    // upnp:rootdevice and uuid:<ours> get their row.
    let r = ask(&msearch("upnp:rootdevice", 1), 1);
    assert_eq!(r.len(), 1);
    assert_eq!(
        r[0].header("USN").unwrap(),
        format!("uuid:{uuid}::upnp:rootdevice")
    );
    let r = ask(&msearch(&format!("uuid:{uuid}"), 1), 1);
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].header("USN").unwrap(), format!("uuid:{uuid}"));

    // 116: unrelated ST, and a request without the quoted MAN: no answer.
    let r = ask(&msearch("urn:schemas-upnp-org:device:MediaServer:1", 1), 0);
    assert!(r.is_empty(), "{r:#?}");
    let r = ask(
        &msearch(URN, 1).replace("\"ssdp:discover\"", "ssdp:discover"),
        0,
    );
    assert!(r.is_empty(), "{r:#?}");

    // 117: mixed-case header names (HD+ app style).
    let mixed = format!(
        "M-SEARCH * HTTP/1.1\r\nHost: 239.255.255.250:1900\r\nMan: \"ssdp:discover\"\r\nMx: 1\r\nSt: {URN}\r\n\r\n"
    );
    let r = ask(&mixed, 1);
    assert_eq!(r.len(), 1, "{r:#?}");

    // A unicast search to the server's address (no MX needed) is answered too.
    client.send(
        &msearch(URN, 1).replace("MX: 1\r\n", ""),
        SocketAddrV4::new(host_ip(1), 1900),
    );
    let r = client.collect(Duration::from_secs(20), |p| !p.is_empty());
    assert_eq!(r.len(), 1, "{r:#?}");
}

#[test]
fn loopback_default_interface_answers_with_127_0_0_1() {
    let ns = Netns::new(PREFIX, "lo");
    let dir = temp_dir("lo");
    let conf = config(
        &dir,
        &ServerOpts {
            interfaces: "[\"lo\"]",
            ..ServerOpts::default()
        },
    );
    let mut srv = Server::start(&ns, &conf, dir.join("log"));
    srv.wait_log("dvb2ip: ssdp: announced", STARTUP);
    let client = Udp::client(&ns, Ipv4Addr::LOCALHOST);
    client.send(&msearch(URN, 1), group());
    let r = client.collect(Duration::from_secs(20), |p| {
        p.iter().any(|x| x.text.starts_with("HTTP/1.1 200"))
    });
    let ok = r
        .iter()
        .find(|p| p.text.starts_with("HTTP/1.1 200"))
        .unwrap_or_else(|| panic!("{r:#?}\n{}", srv.log()));
    assert_eq!(
        ok.header("LOCATION").unwrap(),
        "http://127.0.0.1:8875/desc.xml"
    );
}

#[test]
fn gssdp_discover_finds_server_and_checklist_103_to_108_description() {
    let lan = Lan::new("gssdp", 2);
    let dir = temp_dir("gssdp");
    let conf = config(
        &dir,
        &ServerOpts {
            rtsp_port: 8554,
            ..ServerOpts::default()
        },
    );
    let mut srv = Server::start(&lan.hosts[0], &conf, dir.join("log"));
    srv.wait_log("dvb2ip: ssdp: announced", STARTUP);
    let out = lan.hosts[1]
        .exec("gssdp-discover")
        .args(["-i", "eth0", "-n", "4", "-t", URN])
        .stdin(Stdio::null())
        .output()
        .expect("gssdp-discover (apt-get install gupnp-tools)");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let location = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("Location:"))
        .map(|l| l.trim().to_owned())
        .unwrap_or_else(|| panic!("gssdp-discover found nothing:\n{text}\n{}", srv.log()));
    assert_eq!(location, format!("http://{}:8875/desc.xml", host_ip(1)));
    assert!(text.contains(&format!("::{URN}")), "{text}");

    // 103: text/xml, ends with </root>.
    let (head, body) = http_get(&lan.hosts[1], &location);
    let xml = String::from_utf8(body).unwrap();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(
        header(&format!("{head}\r\n"), "content-type")
            .unwrap()
            .starts_with("text/xml"),
        "{head}"
    );
    assert!(xml.ends_with("</root>"), "{xml}");
    // 108: RTSP is on 8554.
    assert_eq!(
        header(&format!("{head}\r\n"), "X-SATIP-RTSP-Port").as_deref(),
        Some("8554"),
        "{head}"
    );
    // 104: namespace and configId = CONFIGID.UPNP.ORG of the announcements.
    let client = Udp::client(&lan.hosts[1], host_ip(2));
    client.send(&msearch(URN, 1), group());
    let r = client.collect(Duration::from_secs(20), |p| !p.is_empty());
    let answer = r.first().expect("answer");
    let config_id = answer.header("CONFIGID.UPNP.ORG").unwrap();
    assert!(xml.contains(&format!(
        "<root xmlns=\"urn:schemas-upnp-org:device-1-0\" configId=\"{config_id}\">"
    )));
    // 105: deviceType and UDN = the USN's uuid.
    let uuid = uuid_of(answer);
    assert!(xml.contains(&format!("<deviceType>{URN}</deviceType>")));
    assert!(xml.contains(&format!("<UDN>uuid:{uuid}</UDN>")));
    // 106: X_SATIPCAP with the satip prefix and the counts of the configured frontends
    // (default config: two DVB-T/T2, one DVB-C, one DVB-S/S2).
    assert!(
        xml.contains("<satip:X_SATIPCAP xmlns:satip=\"urn:ses-com:satip\">DVBS2-1,DVBT2-2,DVBC-1</satip:X_SATIPCAP>"),
        "{xml}"
    );
    assert!(xml.contains(
        "<satip:X_SATIPM3U xmlns:satip=\"urn:ses-com:satip\">/channels.m3u</satip:X_SATIPM3U>"
    ));
    // 107: PNG and JPEG icons at 48 and 120 that answer 200.
    let base = format!("http://{}:8875", host_ip(1));
    for (file, magic) in [
        ("icon48.png", &b"\x89PNG"[..]),
        ("icon120.png", &b"\x89PNG"[..]),
        ("icon48.jpg", &b"\xff\xd8"[..]),
        ("icon120.jpg", &b"\xff\xd8"[..]),
    ] {
        assert!(xml.contains(&format!("<url>/img/{file}</url>")));
        let (h, b) = http_get(&lan.hosts[1], &format!("{base}/img/{file}"));
        assert!(h.starts_with("HTTP/1.1 200"), "{file}: {h}");
        assert!(b.starts_with(magic), "{file}");
    }
    // The channel list: rtsp URLs on the address the request came in on, exact queries.
    let (h, m3u) = http_get(&lan.hosts[1], &format!("{base}/channels.m3u"));
    assert!(h.starts_with("HTTP/1.1 200"), "{h}");
    let m3u = String::from_utf8_lossy(&m3u).to_string();
    assert!(
        m3u.starts_with("#EXTM3U\r\n#EXTINF:0,1. dvb2ip One HD\r\n"),
        "{m3u}"
    );
    assert!(
        m3u.contains(&format!(
            "\r\nrtsp://{}:8554/?src=1&freq=474&msys=dvbt2&bw=8&plp=0&pids=0,16,17,18,20,256,257,258\r\n",
            host_ip(1)
        )),
        "{m3u}"
    );
    assert_eq!(m3u.matches("#EXTINF:0,").count(), 4);
    // presentationURL: the status page, relative to the description.
    assert!(
        xml.contains("<presentationURL>/</presentationURL>"),
        "{xml}"
    );
    let (h, page) = http_get(&lan.hosts[1], &format!("{base}/"));
    assert!(h.starts_with("HTTP/1.1 200"), "{h}");
    assert!(
        header(&format!("{h}\r\n"), "content-type")
            .unwrap()
            .starts_with("text/html"),
        "{h}"
    );
    let page = String::from_utf8_lossy(&page).to_string();
    assert!(page.contains("<dd id=\"device-id\">1</dd>"), "{page}");
    assert!(
        page.contains(&format!(
            "href=\"rtsp://{}:8554/?src=1&amp;freq=474",
            host_ip(1)
        )),
        "{page}"
    );
}

#[test]
fn checklist_118_119_device_id_conflict_between_two_servers() {
    let lan = Lan::new("devid", 3);
    let watcher = Udp::listener(&lan.hosts[2], "eth0", host_ip(3));
    let dir_a = temp_dir("devid-a");
    let dir_b = temp_dir("devid-b");
    let opts = ServerOpts::default();
    let mut a = Server::start(&lan.hosts[0], &config(&dir_a, &opts), dir_a.join("log"));
    a.wait_log("dvb2ip: ssdp: announced", STARTUP);
    settle(&mut a);
    // B starts with the same DEVICE ID 1: A defends (119), B yields to 2 (118).
    let mut b = Server::start(&lan.hosts[1], &config(&dir_b, &opts), dir_b.join("log"));
    b.wait_log("switching to 2", STARTUP);
    a.wait_log("defending", Duration::from_secs(20));
    b.wait_log("DEVICEID 2 settled", Duration::from_secs(30));
    let state_b: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir_b.join("state/ssdp.json")).unwrap())
            .unwrap();
    assert_eq!(state_b["device_id"], 2, "negotiated id persisted");

    // Both visible to a client in a third namespace, with different ids.
    let client = Udp::client(&lan.hosts[2], host_ip(3));
    client.send(&msearch(URN, 1), group());
    let r = client.collect(Duration::from_secs(20), |p| p.len() >= 2);
    let mut from: Vec<Ipv4Addr> = r.iter().map(|p| *p.from.ip()).collect();
    from.sort();
    assert_eq!(from, vec![host_ip(1), host_ip(2)], "{r:#?}");
    // What a control point saw: B announced 1, then 2; A only ever 1.
    let seen = watcher.collect(Duration::from_millis(500), |_| false);
    let ids = |ip: Ipv4Addr| -> Vec<String> {
        let mut v: Vec<String> = alive_from(&seen, None)
            .iter()
            .filter(|x| *x.from.ip() == ip)
            .filter_map(|x| x.header("DEVICEID.SES.COM"))
            .collect();
        v.dedup();
        v
    };
    assert_eq!(ids(host_ip(1)), vec!["1"]);
    assert_eq!(ids(host_ip(2)), vec!["1", "2"]);
    drop(b);
    drop(a);
}

#[test]
fn checklist_118_joining_server_yields_to_a_defender() {
    // The test plays the defender: after the server's first announcement it sends the
    // unicast M-SEARCH of §8.6 step 2 carrying the server's id.
    let lan = Lan::new("yield", 2);
    let defender = Udp::listener(&lan.hosts[1], "eth0", host_ip(2));
    let dir = temp_dir("yield");
    let conf = config(
        &dir,
        &ServerOpts {
            device_id: 7,
            ..ServerOpts::default()
        },
    );
    let mut srv = Server::start(&lan.hosts[0], &conf, dir.join("log"));
    let first = defender.collect(STARTUP, |p| alive_from(p, None).len() >= 3);
    let alive = alive_from(&first, None);
    assert_eq!(alive[0].header("DEVICEID.SES.COM").as_deref(), Some("7"));
    let boot: u32 = alive[0].header("BOOTID.UPNP.ORG").unwrap().parse().unwrap();
    let target = SocketAddrV4::new(host_ip(1), 1900);
    defender.send(&defend_msearch(target, 7), target);
    let pkts = defender.collect(Duration::from_secs(20), |p| {
        alive_from(p, None)
            .iter()
            .filter(|x| x.header("DEVICEID.SES.COM").as_deref() == Some("8"))
            .count()
            >= 3
    });
    let ack = pkts
        .iter()
        .find(|p| p.text.starts_with("HTTP/1.1 200 OK"))
        .unwrap_or_else(|| panic!("no acknowledgement: {pkts:#?}\n{}", srv.log()));
    assert_eq!(ack.header("DEVICEID.SES.COM").as_deref(), Some("7"));
    let new: Vec<Pkt> = alive_from(&pkts, None)
        .into_iter()
        .filter(|x| x.header("DEVICEID.SES.COM").as_deref() == Some("8"))
        .collect();
    assert!(new.len() >= 3, "{pkts:#?}");
    let new_boot: u32 = new[0].header("BOOTID.UPNP.ORG").unwrap().parse().unwrap();
    assert!(new_boot > boot, "BOOTID increased with the new id");
    srv.wait_log("DEVICEID 8 settled", Duration::from_secs(30));
    // Once settled, a later change request is refused and the id kept.
    defender.send(
        &format!(
            "M-SEARCH * HTTP/1.1\r\nHOST: {target}\r\nMAN: \"ssdp:discover\"\r\nST: {URN}\r\nDEVICEID.SES.COM: 8\r\n\r\n"
        ),
        target,
    );
    let r = defender.collect(Duration::from_secs(20), |p| {
        p.iter().any(|x| x.text.starts_with("HTTP/1.1 "))
    });
    let refusal = r
        .iter()
        .find(|x| x.text.starts_with("HTTP/1.1 "))
        .expect("answer");
    assert!(refusal.text.starts_with("HTTP/1.1 400"), "{}", refusal.text);
    assert_eq!(refusal.header("DEVICEID.SES.COM").as_deref(), Some("8"));
}

/// One RTSP request on `c`; returns the response head.
fn rtsp_req(c: &mut common::rtsp::Client, line: &str, headers: &str, cseq: u32) -> String {
    c.send_raw(&format!("{line} RTSP/1.0\r\nCSeq: {cseq}\r\n{headers}\r\n"))
        .unwrap();
    c.read_response().expect("RTSP answer").head
}

/// The group of a bare multicast SETUP to the server at `host_ip(1)`, from `ns` (torn down
/// again).
fn multicast_group(ns: &Netns) -> Ipv4Addr {
    let c = ns.enter(|| {
        std::net::TcpStream::connect(SocketAddrV4::new(host_ip(1), 554)).expect("RTSP connect")
    });
    c.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut c = common::rtsp::Client::from_stream(c).expect("RTSP connection");
    let base = format!("rtsp://{}:554", host_ip(1));
    let r = rtsp_req(
        &mut c,
        &format!("SETUP {base}/?freq=506&msys=dvbt&bw=8&pids=0"),
        "Transport: RTP/AVP;multicast\r\n",
        1,
    );
    assert!(r.starts_with("RTSP/1.0 200"), "{r}");
    let tr = header(&r, "Transport").expect("Transport");
    let group = tr
        .split(';')
        .find_map(|p| p.strip_prefix("destination="))
        .unwrap_or_else(|| panic!("no destination: {tr}"))
        .parse()
        .unwrap();
    let session = header(&r, "Session").unwrap();
    let session = session.split(';').next().unwrap();
    let id = header(&r, "com.ses.streamID").unwrap();
    let t = rtsp_req(
        &mut c,
        &format!("TEARDOWN {base}/stream={id}"),
        &format!("Session: {session}\r\n"),
        2,
    );
    assert!(t.starts_with("RTSP/1.0 200"), "{t}");
    group
}

#[test]
fn multicast_groups_follow_the_negotiated_device_id() {
    // Server-chosen groups come from 239.<DEVICEID>.0.0/16 of the id in use: the configured
    // one (7) at first; after the test, as defender of 7, makes the server move to 8, the new
    // one; after a restart, the stored one (8, not the configured 7).
    let lan = Lan::new("mcid", 2);
    let defender = Udp::listener(&lan.hosts[1], "eth0", host_ip(2));
    let dir = temp_dir("mcid");
    let conf = config(
        &dir,
        &ServerOpts {
            device_id: 7,
            ..ServerOpts::default()
        },
    );
    let mut srv = Server::start(&lan.hosts[0], &conf, dir.join("log"));
    let first = defender.collect(STARTUP, |p| alive_from(p, None).len() >= 3);
    assert!(!alive_from(&first, None).is_empty(), "{}", srv.log());
    assert_eq!(multicast_group(&lan.hosts[1]).octets()[..2], [239, 7]);
    let target = SocketAddrV4::new(host_ip(1), 1900);
    defender.send(&defend_msearch(target, 7), target);
    srv.wait_log("DEVICEID 8 settled", Duration::from_secs(30));
    // The settled id is published right after it is stored; poll briefly for the switch.
    let end = Instant::now() + Duration::from_secs(10);
    let mut g = multicast_group(&lan.hosts[1]);
    while g.octets()[1] != 8 && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(100));
        g = multicast_group(&lan.hosts[1]);
    }
    assert_eq!(g.octets()[..2], [239, 8], "{}", srv.log());
    assert!(srv.sigterm().success());
    let mut srv = Server::start(&lan.hosts[0], &conf, dir.join("log2"));
    srv.wait_log("dvb2ip: ssdp: announced DEVICEID 8", STARTUP);
    assert_eq!(multicast_group(&lan.hosts[1]).octets()[..2], [239, 8]);
}

#[test]
fn checklist_119_settled_server_defends_its_id() {
    let lan = Lan::new("defend", 2);
    let joiner = Udp::listener(&lan.hosts[1], "eth0", host_ip(2));
    let dir = temp_dir("defend");
    let conf = config(
        &dir,
        &ServerOpts {
            device_id: 3,
            ..ServerOpts::default()
        },
    );
    let mut srv = Server::start(&lan.hosts[0], &conf, dir.join("log"));
    srv.wait_log("dvb2ip: ssdp: announced", STARTUP);
    settle(&mut srv);
    // The test plays a joining server announcing id 3.
    let notify = "NOTIFY * HTTP/1.1\r\nHOST: 239.255.255.250:1900\r\nCACHE-CONTROL: max-age=1800\r\n\
LOCATION: http://10.213.0.2:8875/desc.xml\r\nNT: upnp:rootdevice\r\nNTS: ssdp:alive\r\n\
SERVER: Linux/6.1 UPnP/1.1 test/1\r\nUSN: uuid:11111111-2222-3333-4444-555555555555::upnp:rootdevice\r\n\
BOOTID.UPNP.ORG: 1\r\nCONFIGID.UPNP.ORG: 0\r\nDEVICEID.SES.COM: 3\r\n\r\n";
    joiner.send(notify, group());
    let r = joiner.collect(Duration::from_secs(20), |p| {
        p.iter().any(|x| x.text.starts_with("M-SEARCH"))
    });
    let s = r
        .iter()
        .find(|x| x.text.starts_with("M-SEARCH * HTTP/1.1"))
        .unwrap_or_else(|| panic!("no defence: {r:#?}\n{}", srv.log()));
    assert_eq!(*s.from.ip(), host_ip(1));
    assert_eq!(s.header("DEVICEID.SES.COM").as_deref(), Some("3"));
    assert_eq!(
        s.header("HOST").unwrap(),
        format!("{}:1900", host_ip(2)),
        "HOST is the target"
    );
    assert_eq!(s.header("ST").as_deref(), Some(URN));
    assert_eq!(s.header("MAN").as_deref(), Some("\"ssdp:discover\""));
}

#[test]
fn checklist_120_restart_keeps_uuid_and_device_id_and_grows_bootid() {
    let lan = Lan::new("restart", 2);
    let cap = Udp::listener(&lan.hosts[1], "eth0", host_ip(2));
    let dir = temp_dir("restart");
    // Configured id 5; the test defends 5 so the server negotiates 6 and stores it. After the
    // restart it must announce the stored 6, not the configured 5.
    let conf = config(
        &dir,
        &ServerOpts {
            device_id: 5,
            ..ServerOpts::default()
        },
    );
    let mut srv = Server::start(&lan.hosts[0], &conf, dir.join("log1"));
    let p0 = cap.collect(STARTUP, |p| alive_from(p, None).len() >= 3);
    let a0 = alive_from(&p0, None);
    assert_eq!(a0[0].header("DEVICEID.SES.COM").as_deref(), Some("5"));
    let target = SocketAddrV4::new(host_ip(1), 1900);
    cap.send(&defend_msearch(target, 5), target);
    let p1 = cap.collect(Duration::from_secs(10), |p| {
        alive_from(p, None)
            .iter()
            .filter(|x| x.header("DEVICEID.SES.COM").as_deref() == Some("6"))
            .count()
            >= 3
    });
    let a1: Vec<Pkt> = alive_from(&p1, None)
        .into_iter()
        .filter(|x| x.header("DEVICEID.SES.COM").as_deref() == Some("6"))
        .collect();
    assert!(!a1.is_empty(), "{p1:#?}\n{}", srv.log());
    srv.wait_log("DEVICEID 6 settled", Duration::from_secs(30));
    assert!(srv.sigterm().success());
    let state: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("state/ssdp.json")).unwrap())
            .unwrap();
    assert_eq!(state["device_id"], 6, "negotiated id stored: {state}");

    let mut srv = Server::start(&lan.hosts[0], &conf, dir.join("log2"));
    let p2 = cap.collect(STARTUP, |p| alive_from(p, None).len() >= 3);
    let a2 = alive_from(&p2, None);
    assert!(!a2.is_empty(), "{}", srv.log());
    assert_eq!(uuid_of(&a1[0]), uuid_of(&a2[0]));
    assert_eq!(
        a2[0].header("DEVICEID.SES.COM").as_deref(),
        Some("6"),
        "the stored id, not the configured 5"
    );
    let (b1, b2) = (boot_id(&a1[0]), boot_id(&a2[0]));
    assert!(b2 > b1, "{b1} -> {b2}");
    srv.wait_log("announced", Duration::from_secs(20));
}

#[test]
fn interface_address_changes_are_followed() {
    let (lan, cap, _dir, srv) = announced_server(
        "ifchg",
        &ServerOpts {
            interfaces: "[\"eth0\", \"eth1\"]",
            ..ServerOpts::default()
        },
    );
    let first = cap.collect(Duration::from_secs(20), |p| alive_from(p, None).len() >= 3);
    let boot = boot_id(&alive_from(&first, None)[0]);

    // Address change on eth0: byebye, then alive with the new LOCATION.
    let server = &lan.hosts[0];
    let new_ip = host_ip(11);
    // Keep the new (secondary) address when the old primary goes, as a renumbering would.
    let st = server
        .exec("sysctl")
        .args(["-qw", "net.ipv4.conf.eth0.promote_secondaries=1"])
        .status()
        .unwrap();
    assert!(st.success());
    server.ip(&["addr", "add", &format!("{new_ip}/24"), "dev", "eth0"]);
    server.ip(&["addr", "del", &format!("{}/24", host_ip(1)), "dev", "eth0"]);
    let want = format!("http://{new_ip}:8875/desc.xml");
    let pkts = cap.collect(Duration::from_secs(10), |p| {
        alive_from(p, None)
            .iter()
            .filter(|x| x.header("LOCATION").as_deref() == Some(want.as_str()))
            .count()
            >= 3
    });
    let first_bye = pkts.iter().position(|p| p.is_byebye());
    let first_new = pkts
        .iter()
        .position(|p| p.is_alive() && p.header("LOCATION").as_deref() == Some(want.as_str()));
    assert!(
        first_bye.is_some() && first_new.is_some() && first_bye < first_new,
        "byebye then alive on the new address: {pkts:#?}\n{}",
        srv.log()
    );
    // The first announcement after a byebye carries a new BOOTID.
    let renumbered = boot_id(&pkts[first_new.unwrap()]);
    assert!(renumbered > boot, "BOOTID {boot} -> {renumbered}");
    // Searches are answered with the new address.
    let client = Udp::client(&lan.hosts[1], host_ip(2));
    client.send(&msearch(URN, 1), group());
    let r = client.collect(Duration::from_secs(20), |p| !p.is_empty());
    assert_eq!(
        r.first().and_then(|p| p.header("LOCATION")),
        Some(want.clone())
    );

    // An interface that appears while running (eth1, configured but absent at start).
    let late_ip = Ipv4Addr::new(NET[0], NET[1], NET[2], 21);
    lan.plug(0, "eth1", Some(late_ip));
    let late = format!("http://{late_ip}:8875/desc.xml");
    let pkts = cap.collect(Duration::from_secs(10), |p| {
        alive_from(p, None)
            .iter()
            .any(|x| x.header("LOCATION").as_deref() == Some(late.as_str()))
    });
    let on_late: Vec<Pkt> = alive_from(&pkts, None)
        .into_iter()
        .filter(|x| x.header("LOCATION").as_deref() == Some(late.as_str()))
        .collect();
    assert!(!on_late.is_empty(), "{pkts:#?}\n{}", srv.log());
    // A new interface is a first announcement too (UPnP DA 1.1): yet another BOOTID.
    let late_boot = boot_id(&on_late[0]);
    assert!(late_boot > renumbered, "BOOTID {renumbered} -> {late_boot}");
}

#[test]
fn only_address_replaced_byebye_then_alive_from_the_new_one() {
    let (lan, cap, dir, mut srv) = announced_server("ifrep", &ServerOpts::default());
    let first = cap.collect(Duration::from_secs(20), |p| alive_from(p, None).len() >= 3);
    let alive = alive_from(&first, None);
    assert!(!alive.is_empty(), "{first:#?}\n{}", srv.log());
    let uuid = uuid_of(&alive[0]);
    let boot = boot_id(&alive[0]);

    // Delete eth0's only address, let the server see that, then add another one.
    let server = &lan.hosts[0];
    server.ip(&["addr", "del", &format!("{}/24", host_ip(1)), "dev", "eth0"]);
    srv.wait_log("no address left", Duration::from_secs(10));
    let new_ip = host_ip(12);
    server.ip(&["addr", "add", &format!("{new_ip}/24"), "dev", "eth0"]);
    let want = format!("http://{new_ip}:8875/desc.xml");
    let pkts = cap.collect(Duration::from_secs(10), |p| {
        alive_from(p, None)
            .iter()
            .filter(|x| x.header("LOCATION").as_deref() == Some(want.as_str()))
            .count()
            >= 3
    });
    let ctx = || format!("{pkts:#?}\n{}", srv.log());
    let bye: Vec<&Pkt> = pkts
        .iter()
        .filter(|p| p.is_byebye() && p.header("USN").is_some_and(|u| u.contains(&uuid)))
        .collect();
    assert_eq!(bye.len(), 3, "one byebye set: {}", ctx());
    for b in &bye {
        assert_eq!(
            *b.from.ip(),
            new_ip,
            "byebye from the new address: {}",
            ctx()
        );
        assert_eq!(boot_id(b), boot, "byebye carries the BOOTID it ends");
    }
    let first_bye = pkts.iter().position(|p| p.is_byebye());
    let first_new = pkts
        .iter()
        .position(|p| p.is_alive() && p.header("LOCATION").as_deref() == Some(want.as_str()));
    assert!(
        first_bye.is_some() && first_new.is_some() && first_bye < first_new,
        "byebye then alive: {}",
        ctx()
    );
    // Re-joining after a byebye is a first announcement: a new BOOTID, stored.
    let new_boot = boot_id(&pkts[first_new.unwrap()]);
    assert!(new_boot > boot, "BOOTID {boot} -> {new_boot}: {}", ctx());
    let state: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("state/ssdp.json")).unwrap())
            .unwrap();
    assert_eq!(state["boot_id"], new_boot, "{state}");
    // Our own byebye, looped back, is not mistaken for a spoofed one.
    assert!(!srv.log().contains("spoofed"), "{}", srv.log());
}

#[test]
fn device_id_search_flood_moves_the_id_at_most_once_per_announcement() {
    // 3 x 254 unicast M-SEARCHes carrying DEVICEID 1..254 while the server is joining with 1.
    let lan = Lan::new("yflood", 2);
    let peer = Udp::listener(&lan.hosts[1], "eth0", host_ip(2));
    let dir = temp_dir("yflood");
    let conf = config(
        &dir,
        &ServerOpts {
            max_replies: 20,
            ..ServerOpts::default()
        },
    );
    let srv = Server::start(&lan.hosts[0], &conf, dir.join("log"));
    let first = peer.collect(STARTUP, |p| alive_from(p, None).len() >= 3);
    let alive = alive_from(&first, None);
    assert_eq!(alive[0].header("DEVICEID.SES.COM").as_deref(), Some("1"));
    let boot = boot_id(&alive[0]);
    let target = SocketAddrV4::new(host_ip(1), 1900);
    let start = Instant::now();
    for _ in 0..3 {
        for id in 1..=254u8 {
            peer.send(&defend_msearch(target, id), target);
        }
    }
    // At least 4 s (the bounds below scale with the time taken), and until the server's first
    // new alive set came (a slow machine takes longer, bounded at 60 s).
    let pkts = peer.collect(Duration::from_secs(60), |p| {
        start.elapsed() >= Duration::from_secs(4)
            && p.iter().any(|p| {
                *p.from.ip() == host_ip(1)
                    && p.is_alive()
                    && p.header("NT").as_deref() == Some("upnp:rootdevice")
            })
    });
    let secs = start.elapsed().as_secs_f64();
    let ctx = || srv.log();
    let ours: Vec<&Pkt> = pkts.iter().filter(|p| *p.from.ip() == host_ip(1)).collect();
    // Alive sets: one per announced id, and a new id at most once per second.
    let sets: Vec<&Pkt> = ours
        .iter()
        .copied()
        .filter(|p| p.is_alive() && p.header("NT").as_deref() == Some("upnp:rootdevice"))
        .collect();
    let mut ids: Vec<String> = sets
        .iter()
        .filter_map(|p| p.header("DEVICEID.SES.COM"))
        .collect();
    ids.dedup();
    let bound = 1 + secs.ceil() as usize;
    eprintln!(
        "flood of {} searches: {} alive sets, ids {ids:?}, {} datagrams back, in {secs:.1} s",
        3 * 254,
        sets.len(),
        ours.len()
    );
    assert!(
        !ids.is_empty() && ids[0] == "2",
        "the first conflict moved 1 -> 2: {ids:?}\n{}",
        ctx()
    );
    assert!(
        ids.len() <= bound,
        "{} ids in {secs:.1} s: {ids:?}",
        ids.len()
    );
    assert!(
        sets.len() <= bound,
        "{} alive sets in {secs:.1} s",
        sets.len()
    );
    // One BOOTID per announced id, no more.
    let max_boot = sets.iter().map(|p| boot_id(p)).max().unwrap();
    assert!(
        max_boot - boot <= ids.len() as u32,
        "BOOTID {boot} -> {max_boot} for {ids:?}"
    );
    // Answers and acknowledgements share the bucket (20 per second).
    let answers = ours
        .iter()
        .filter(|p| p.text.starts_with("HTTP/1.1 "))
        .count();
    assert!(
        answers <= 20 * (1 + secs.ceil() as usize),
        "{answers} answers in {secs:.1} s"
    );
    let switches = log_lines(&srv.log(), "switching to");
    assert!(
        (1..=rate_log_bound(secs)).contains(&switches),
        "{switches} lines:\n{}",
        ctx()
    );
}

#[test]
fn device_id_defences_are_bounded() {
    // 200 "joining servers" on 200 loopback addresses announce the server's settled id; their
    // SEARCHPORT points every defence at one socket, which counts them.
    let ns = Netns::new(PREFIX, "dflood");
    let dir = temp_dir("dflood");
    let conf = config(
        &dir,
        &ServerOpts {
            interfaces: "[\"lo\"]",
            device_id: 3,
            max_replies: 20,
            ..ServerOpts::default()
        },
    );
    let mut srv = Server::start(&ns, &conf, dir.join("log"));
    srv.wait_log("dvb2ip: ssdp: announced", STARTUP);
    settle(&mut srv);
    let sink = Udp::client(&ns, Ipv4Addr::LOCALHOST);
    let port = sink.sock.local_addr().unwrap().port();
    let senders: Vec<UdpSocket> = ns.enter(|| {
        (0..200u32)
            .map(|i| {
                UdpSocket::bind(SocketAddrV4::new(Ipv4Addr::from(0x7f00_0002 + i), 0)).unwrap()
            })
            .collect()
    });
    let notify = format!(
        "NOTIFY * HTTP/1.1\r\nHOST: 239.255.255.250:1900\r\nCACHE-CONTROL: max-age=1800\r\n\
LOCATION: http://127.0.0.2:8875/desc.xml\r\nNT: upnp:rootdevice\r\nNTS: ssdp:alive\r\n\
SERVER: Linux/6.1 UPnP/1.1 test/1\r\nUSN: uuid:11111111-2222-3333-4444-555555555555::upnp:rootdevice\r\n\
BOOTID.UPNP.ORG: 1\r\nCONFIGID.UPNP.ORG: 0\r\nSEARCHPORT.UPNP.ORG: {port}\r\nDEVICEID.SES.COM: 3\r\n\r\n"
    );
    let start = Instant::now();
    for s in &senders {
        s.send_to(
            notify.as_bytes(),
            SocketAddrV4::new(Ipv4Addr::LOCALHOST, 1900),
        )
        .unwrap();
    }
    // At least 3 s (the bound below scales with the time taken), and until a defence came (a
    // slow machine takes longer, bounded at 60 s).
    let got = sink.collect(Duration::from_secs(60), |p| {
        start.elapsed() >= Duration::from_secs(3)
            && p.iter().any(|p| p.text.starts_with("M-SEARCH * HTTP/1.1"))
    });
    let secs = start.elapsed().as_secs_f64();
    let defences = got
        .iter()
        .filter(|p| p.text.starts_with("M-SEARCH * HTTP/1.1"))
        .count();
    assert!(defences >= 1, "still defending:\n{}", srv.log());
    assert!(
        defences <= 20 * (1 + secs.ceil() as usize),
        "{defences} defences in {secs:.1} s"
    );
    let lines = log_lines(&srv.log(), "defending");
    eprintln!("200 NOTIFYs: {defences} defences, {lines} log lines, in {secs:.1} s");
    assert!(
        (1..=rate_log_bound(secs)).contains(&lines),
        "{lines} lines:\n{}",
        srv.log()
    );
}

#[test]
fn unconfigured_interfaces_get_nothing() {
    // eth0 is configured, eth1 (same LAN) is not: nothing may leave through eth1.
    let lan = Lan::new("ifsel", 2);
    lan.plug(0, "eth1", Some(host_ip(31)));
    let cap = Udp::listener(&lan.hosts[1], "eth0", host_ip(2));
    let dir = temp_dir("ifsel");
    let conf = config(&dir, &ServerOpts::default());
    let mut srv = Server::start(&lan.hosts[0], &conf, dir.join("log"));
    srv.wait_log("dvb2ip: ssdp: announced", STARTUP);
    let pkts = cap.collect(Duration::from_secs(3), |_| false);
    assert!(!alive_from(&pkts, None).is_empty());
    assert!(pkts.iter().all(|p| *p.from.ip() == host_ip(1)), "{pkts:#?}");
    // A unicast search to the unconfigured interface's address is not answered.
    let client = Udp::client(&lan.hosts[1], host_ip(2));
    client.send(&msearch(URN, 1), SocketAddrV4::new(host_ip(31), 1900));
    let r = client.collect(Duration::from_secs(2), |p| !p.is_empty());
    assert!(r.is_empty(), "{r:#?}");
}

#[test]
fn bad_input_is_ignored_and_answers_are_bounded() {
    let lan = Lan::new("flood", 2);
    let dir = temp_dir("flood");
    let conf = config(
        &dir,
        &ServerOpts {
            max_replies: 20,
            ..ServerOpts::default()
        },
    );
    let mut srv = Server::start(&lan.hosts[0], &conf, dir.join("log"));
    srv.wait_log("dvb2ip: ssdp: announced", STARTUP);
    let client = Udp::client(&lan.hosts[1], host_ip(2));
    let to = SocketAddrV4::new(host_ip(1), 1900);
    let start = Instant::now();
    // Oversized, garbage, malformed, wrong MAN; the garbage 200 times.
    client.send(&"X".repeat(6000), to);
    for _ in 0..200 {
        client.sock.send_to(&[0xff, 0xfe, 0, 1, 2], to).unwrap();
    }
    client.send("M-SEARCH * HTTP/1.1\r\nbroken\r\n\r\n", to);
    client.send(&msearch(URN, 1).replace("MX: 1", "MX: soon"), group());
    // A flood of ssdp:all searches: 3 answers each, at most 20 per second.
    for _ in 0..300 {
        client.send(&msearch("ssdp:all", 1), group());
    }
    // At least 3 s (the bound below scales with the time taken), and until an answer came (a
    // slow machine takes longer, bounded at 60 s).
    let got = client.collect(Duration::from_secs(60), |p| {
        start.elapsed() >= Duration::from_secs(3) && !p.is_empty()
    });
    let secs = start.elapsed().as_secs_f64();
    let bound = (20.0 * (secs + 1.0)).ceil() as usize;
    assert!(!got.is_empty(), "still answering");
    assert!(got.len() <= bound, "{} answers in {secs:.1} s", got.len());
    srv.wait_log("ignored datagram", Duration::from_secs(30));
    // Over 200 bad datagrams and 900 answers dropped, but the log stays short: one line per
    // kind and 10 s, counting what it suppressed.
    let log = srv.log();
    let secs = start.elapsed().as_secs_f64();
    let ignored = log_lines(&log, "ignored datagram");
    assert!(
        (1..=rate_log_bound(secs)).contains(&ignored),
        "{ignored} lines in {secs:.1} s:\n{log}"
    );
    let dropped = log_lines(&log, "too many searches");
    assert!(
        (1..=rate_log_bound(secs)).contains(&dropped),
        "{dropped} lines in {secs:.1} s:\n{log}"
    );
    // Still alive and answering once the bucket refilled.
    std::thread::sleep(Duration::from_millis(1500));
    client.send(&msearch(URN, 1), group());
    let r = client.collect(Duration::from_secs(20), |p| !p.is_empty());
    assert_eq!(r.len(), 1, "{r:#?}\n{}", srv.log());

    // A spoofed byebye in our name makes the server re-announce.
    let cap = Udp::listener(&lan.hosts[1], "eth0", host_ip(2));
    let uuid = uuid_of(&r[0]);
    let bye = format!(
        "NOTIFY * HTTP/1.1\r\nHOST: 239.255.255.250:1900\r\nNT: {URN}\r\nNTS: ssdp:byebye\r\nUSN: uuid:{uuid}::{URN}\r\n\r\n"
    );
    cap.send(&bye, group());
    let pkts = cap.collect(Duration::from_secs(20), |p| {
        alive_from(p, Some(&uuid))
            .iter()
            .any(|x| *x.from.ip() == host_ip(1))
    });
    assert!(
        alive_from(&pkts, Some(&uuid))
            .iter()
            .any(|x| *x.from.ip() == host_ip(1)),
        "{pkts:#?}\n{}",
        srv.log()
    );
}

#[test]
fn vlc_upnp_discovery_lists_the_server() {
    // VLC refuses to run as root: run it as `nobody` (runuser) with a throw-away HOME.
    // scripts/test.sh installs VLC (TEST_PACKAGES in scripts/deps.sh): missing is a failure.
    assert!(
        Command::new("cvlc").arg("--version").output().is_ok(),
        "cvlc not found: install the test dependencies (scripts/deps.sh TEST_PACKAGES, \
         e.g. `apt-get install vlc-bin vlc-plugin-base`) or run scripts/test.sh"
    );
    let lan = Lan::new("vlc", 2);
    let dir = temp_dir("vlc");
    let conf = config(&dir, &ServerOpts::default());
    let mut srv = Server::start(&lan.hosts[0], &conf, dir.join("log"));
    srv.wait_log("dvb2ip: ssdp: announced", STARTUP);
    // libupnp picks its interface from the routes: give the client namespace a multicast one.
    // It also takes the first multicast-capable interface, so lo must not be one here.
    lan.hosts[1].ip(&["route", "add", "239.0.0.0/8", "dev", "eth0"]);
    lan.hosts[1].ip(&["link", "set", "lo", "multicast", "off"]);
    let home = dir.join("home");
    std::fs::create_dir_all(&home).unwrap();
    run("chmod", &["777", &home.to_string_lossy()]);
    // libupnp fails to bind while the fresh veth's IPv6 link-local address is still
    // tentative (DAD): wait until no address is tentative, and still retry a bind failure.
    wait_no_tentative(&lan.hosts[1], Duration::from_secs(10));
    let mut log = String::new();
    for _ in 0..3 {
        let (found, l) = vlc_lists_server(&lan.hosts[1], &home, Duration::from_secs(30));
        log = l;
        if found || !log.contains("UPNP_E_SOCKET_BIND") {
            break;
        }
        std::thread::sleep(Duration::from_secs(1));
    }
    assert!(
        log.contains("Adding server 'dvb2ip'"),
        "VLC did not list the server:\n{}\nserver log:\n{}",
        vlc_log_tail(&log),
        srv.log()
    );
}

/// Waits (bounded) until `ns` has no tentative IPv6 address left.
fn wait_no_tentative(ns: &Netns, limit: Duration) {
    let start = Instant::now();
    while start.elapsed() < limit {
        let out = ns
            .exec("ip")
            .args(["-6", "addr", "show", "tentative"])
            .output()
            .expect("ip -6 addr");
        if out.stdout.is_empty() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Runs `cvlc -S upnp` as `nobody` in `ns` until it lists the dvb2ip server or `limit`
/// passes (VLC refuses to run as root). Returns whether it did, and VLC's log.
fn vlc_lists_server(ns: &Netns, home: &Path, limit: Duration) -> (bool, String) {
    use std::io::BufRead;
    let mut child = ns
        .exec("timeout")
        .arg(format!("{}", limit.as_secs() + 5))
        .args(["runuser", "-u", "nobody", "--", "env"])
        .arg(format!("HOME={}", home.display()))
        .args(["cvlc", "-I", "dummy", "-S", "upnp", "-vv"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("cvlc");
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    let reader = std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + limit;
    let mut log = String::new();
    let mut found = false;
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        match rx.recv_timeout(left) {
            Ok(line) => {
                found |= line.contains("Adding server 'dvb2ip'");
                log.push_str(&line);
                log.push('\n');
                if found || line.contains("UPNP_E_SOCKET_BIND") {
                    break;
                }
            }
            Err(_) => break,
        }
    }
    // `ip netns exec` execs `timeout`, which passes SIGTERM on to VLC.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGTERM);
    }
    let _ = child.wait();
    drop(rx);
    let _ = reader.join();
    (found, log)
}

/// The lines of a VLC log that say something about discovery, or its end.
fn vlc_log_tail(log: &str) -> String {
    let relevant: Vec<&str> = log
        .lines()
        .filter(|l| {
            let l = l.to_ascii_lowercase();
            l.contains("upnp") || l.contains("error") || l.contains("warning")
        })
        .collect();
    if relevant.is_empty() {
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    } else {
        relevant[relevant.len().saturating_sub(60)..].join("\n")
    }
}

#[test]
fn checklist_59_a_tuner_set_change_is_announced_with_a_new_configid() {
    let (lan, cap, dir, mut srv) = announced_server("tuners", &ServerOpts::default());
    let p0 = cap.collect(Duration::from_secs(10), |p| alive_from(p, None).len() >= 3);
    let a0 = alive_from(&p0, None);
    assert!(a0.len() >= 3, "{p0:#?}\n{}", srv.log());
    let c0 = a0[0].header("CONFIGID.UPNP.ORG").unwrap();
    let b0 = boot_id(&a0[0]);
    // Drop the first DVB-T/T2 adapter from the file, then SIGHUP.
    let conf = dir.join("dvb2ip.toml");
    let text = std::fs::read_to_string(&conf).unwrap();
    let start = text
        .find("[[adapter]]\nname = \"Emulated DVB-T/T2 A\"")
        .expect("adapter A in the default configuration");
    let end = start + text[start..].find("\n\n").unwrap() + 1;
    std::fs::write(&conf, format!("{}{}", &text[..start], &text[end..])).unwrap();
    run("kill", &["-HUP", &srv.child.id().to_string()]);
    srv.wait_log("dvb2ip: reload: ", Duration::from_secs(30));
    // byebye with the old CONFIGID and BOOTID, then alive with the new CONFIGID.
    let new_alive = |p: &[Pkt]| -> Vec<Pkt> {
        alive_from(p, None)
            .into_iter()
            .filter(|x| x.header("CONFIGID.UPNP.ORG").as_deref() != Some(c0.as_str()))
            .collect()
    };
    let p1 = cap.collect(Duration::from_secs(20), |p| new_alive(p).len() >= 3);
    let bye: Vec<&Pkt> = p1.iter().filter(|p| p.is_byebye()).collect();
    assert_eq!(bye.len(), 3, "{p1:#?}\n{}", srv.log());
    for p in &bye {
        assert_eq!(
            p.header("CONFIGID.UPNP.ORG"),
            Some(c0.clone()),
            "{}",
            p.text
        );
        assert_eq!(boot_id(p), b0, "{}", p.text);
    }
    let a1 = new_alive(&p1);
    assert!(a1.len() >= 3, "{p1:#?}\n{}", srv.log());
    let c1 = a1[0].header("CONFIGID.UPNP.ORG").unwrap();
    assert!(boot_id(&a1[0]) > b0, "a new BOOTID after the byebye");
    // The description says the same.
    let (_, body) = http_get(
        &lan.hosts[1],
        &format!("http://{}:8875/desc.xml", host_ip(1)),
    );
    let body = String::from_utf8(body).unwrap();
    assert!(body.contains(&format!("configId=\"{c1}\"")), "{body}");
    assert!(
        body.contains(">DVBS2-1,DVBT2-1,DVBC-1</satip:X_SATIPCAP>"),
        "{body}"
    );
}
