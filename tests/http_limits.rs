//! The HTTP server's limits (issue 16 items 3 and 4, issue 17 item 3) against a `dvb2ip serve`
//! child process on 127.0.0.1 (under `prlimit` where the descriptor limit matters): many
//! streaming clients share a bounded thread count, a client that never reads is dropped and
//! the memory comes back, idle and half-sent requests are closed after the timeouts, the
//! connection caps answer 503 with `Retry-After`, HTTP streams count against `max_sessions`
//! with RTSP sessions, and a normal client is served afterwards.
//!
//! Every wait is for a condition, bounded; no test asserts a duration.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::rtsp::Rtsp;

/// The emulated DVB-T2 mux every test streams.
const MUX: &str = "freq=474&msys=dvbt2&bw=8&plp=0";
/// Bound of every wait for a condition.
const WAIT: Duration = Duration::from_secs(60);

/// A `dvb2ip serve` child, killed when dropped.
struct Serve {
    child: Child,
    rtsp_port: u16,
    http_port: u16,
}

impl Serve {
    /// Starts `dvb2ip serve` with the embedded configuration (SSDP off, emulated frontends
    /// only, free ports) plus `extra` TOML tables (`[server]` keys go in `server`), under
    /// `prlimit --nofile=N:N` when `nofile` is given.
    fn start(tag: &str, server: &str, extra: &str, nofile: Option<u64>) -> Serve {
        let dir = common::temp_dir(tag);
        let mut t: toml::Table = gstdvb2ip::tuners::config::DEFAULT_CONFIG.parse().unwrap();
        let mut set = |section: &str, key: &str, v: toml::Value| {
            t.entry(section)
                .or_insert_with(|| toml::Value::Table(Default::default()))
                .as_table_mut()
                .unwrap()
                .insert(key.into(), v);
        };
        set("ssdp", "enabled", false.into());
        set("ssdp", "state_dir", dir.display().to_string().into());
        set("emulator", "hardware", "off".into());
        set("server", "http_port", 0.into());
        let server_extra: toml::Table = server.parse().unwrap();
        for (k, v) in server_extra {
            set("server", &k, v);
        }
        let mut text = toml::to_string(&t).unwrap();
        text.push('\n');
        text.push_str(extra);
        let conf = dir.join("serve.toml");
        std::fs::write(&conf, text).unwrap();
        let mut cmd = match nofile {
            Some(n) => {
                let mut c = Command::new("prlimit");
                c.arg(format!("--nofile={n}:{n}"))
                    .arg("--")
                    .arg(common::dvb2ip_bin());
                c
            }
            None => Command::new(common::dvb2ip_bin()),
        };
        cmd.arg("serve")
            .arg("--config")
            .arg(&conf)
            .args(["--rtsp-port", "0", "--bind", "127.0.0.1"])
            .env_remove("GST_PLUGIN_PATH")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        let mut child = cmd.spawn().expect("start dvb2ip serve");
        let out = BufReader::new(child.stdout.take().unwrap());
        let (mut rtsp_port, mut http_port) = (0u16, 0u16);
        for line in out.lines() {
            let line = line.expect("banner");
            if let Some((_, a)) = line.split_once("serving RTSP on ") {
                rtsp_port = a.trim().rsplit(':').next().unwrap().parse().unwrap();
            }
            if let Some(a) = line
                .strip_suffix("# status page")
                .and_then(|l| l.trim().strip_prefix("curl http://"))
            {
                http_port = a
                    .trim()
                    .trim_end_matches('/')
                    .rsplit(':')
                    .next()
                    .unwrap()
                    .parse()
                    .unwrap();
            }
            if rtsp_port != 0 && http_port != 0 {
                break;
            }
        }
        assert!(
            rtsp_port != 0 && http_port != 0,
            "no banner from dvb2ip serve"
        );
        Serve {
            child,
            rtsp_port,
            http_port,
        }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// A `/proc/PID/status` field (e.g. `Threads`, `VmRSS` in KiB).
    fn status(&self, field: &str) -> u64 {
        let text = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        text.lines()
            .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or_else(|| panic!("no {field} in /proc status"))
    }

    fn threads(&self) -> u64 {
        self.status("Threads")
    }

    fn rss_kib(&self) -> u64 {
        self.status("VmRSS")
    }

    /// Frontend users the status page shows (the sum of its Users column).
    fn frontend_users(&self) -> usize {
        let (status, _, body) = get(self.http_port, "/");
        assert_eq!(status, 200);
        let page = String::from_utf8_lossy(&body);
        page.lines()
            .filter(|l| l.starts_with("<tr><td>"))
            .filter_map(|l| {
                l.split("<td>")
                    .nth(5)?
                    .split('<')
                    .next()?
                    .parse::<usize>()
                    .ok()
            })
            .sum()
    }

    /// A counter of the status page's HTTP section (`<dd id="http-NAME">`).
    fn http_counter(&self, name: &str) -> u64 {
        let (status, _, body) = get(self.http_port, "/");
        assert_eq!(status, 200);
        let page = String::from_utf8_lossy(&body);
        let key = format!("<dd id=\"http-{name}\">");
        page.split_once(&key)
            .and_then(|(_, v)| v.split('<').next()?.parse().ok())
            .unwrap_or_else(|| panic!("no {name} counter on the status page"))
    }

    fn wait_frontends_free(&self) {
        wait_for("every frontend released", || self.frontend_users() == 0);
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting: {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Connects to 127.0.0.1:`port` from `from` (any address of 127.0.0.0/8).
fn connect_from(from: Ipv4Addr, port: u16) -> TcpStream {
    let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    s.bind(&SocketAddr::from((from, 0)).into()).unwrap();
    s.connect(&SocketAddr::from((Ipv4Addr::LOCALHOST, port)).into())
        .unwrap();
    let s: TcpStream = s.into();
    s.set_read_timeout(Some(WAIT)).unwrap();
    s
}

/// Reads a response head (through its blank line) and returns (status, head).
fn read_head(s: &mut TcpStream) -> (u32, String) {
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match s.read(&mut b) {
            Ok(1) => head.push(b[0]),
            _ => break,
        }
    }
    let text = String::from_utf8_lossy(&head).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    (status, text)
}

/// A plain GET with `Connection: close`: (status, head, body).
fn get(port: u16, path: &str) -> (u32, String, Vec<u8>) {
    let mut s = connect_from(Ipv4Addr::LOCALHOST, port);
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let (status, head) = read_head(&mut s);
    let mut body = Vec::new();
    let _ = s.read_to_end(&mut body);
    (status, head, body)
}

/// Starts an HTTP stream of `pids` from `from`; returns the connection after its head.
fn stream_from(from: Ipv4Addr, port: u16, pids: &str) -> (u32, String, TcpStream) {
    let mut s = connect_from(from, port);
    write!(
        s,
        "GET /?{MUX}&pids={pids} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    )
    .unwrap();
    let (status, head) = read_head(&mut s);
    (status, head, s)
}

/// Reads from `s` until `n` bytes of whole TS packets came; asserts they are TS.
fn read_ts(s: &mut TcpStream, n: usize) {
    let mut got = vec![0u8; n];
    s.read_exact(&mut got).expect("stream data");
    assert!(got.chunks(188).all(|p| p[0] == 0x47), "raw TS");
}

/// Whether the server closed `s` (EOF or reset), reading and discarding what is still queued.
fn closed_by_server(s: &mut TcpStream) -> bool {
    let mut b = vec![0u8; 64 << 10];
    loop {
        match s.read(&mut b) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return false,
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => return false,
            Err(_) => return true,
        }
    }
}

/// A normal client is served: the status page and a SAT>IP HTTP stream with data.
fn normal_client_is_served(srv: &Serve) {
    let (status, head, body) = get(srv.http_port, "/");
    assert_eq!(status, 200, "{head}");
    assert!(String::from_utf8_lossy(&body).contains("<h2>Frontends</h2>"));
    let (status, head, mut s) = stream_from(Ipv4Addr::LOCALHOST, srv.http_port, "0,16,17");
    assert_eq!(status, 200, "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: video/mp2t"),
        "{head}"
    );
    read_ts(&mut s, 188 * 4);
}

#[test]
fn many_stream_clients_share_a_bounded_thread_count() {
    let srv = Serve::start("http-threads", "max_sessions = 200", "", None);
    // The mux tuned by a first client; then the server's threads before the crowd.
    let (status, head, mut first) = stream_from(Ipv4Addr::LOCALHOST, srv.http_port, "0");
    assert_eq!(status, 200, "{head}");
    read_ts(&mut first, 188);
    let mut clients = Vec::new();
    for i in 0..120u32 {
        let from = Ipv4Addr::new(127, 0, 1, (i % 100) as u8 + 1);
        let (status, head, s) = stream_from(from, srv.http_port, "0,16,17");
        assert_eq!(status, 200, "client {i}: {head}");
        clients.push(s);
    }
    for s in &mut clients {
        read_ts(s, 188 * 2);
    }
    let threads = srv.threads();
    assert!(
        threads < 32,
        "{threads} threads for 121 HTTP streams: no thread per client"
    );
    drop(clients);
    drop(first);
    srv.wait_frontends_free();
    normal_client_is_served(&srv);
}

#[test]
fn a_stalled_reader_is_dropped_and_memory_comes_back() {
    let srv = Serve::start(
        "http-stalled",
        "max_sessions = 100",
        "[http]\nstream_queue_bytes = 262144\n",
        None,
    );
    let (status, head, mut warm) = stream_from(Ipv4Addr::LOCALHOST, srv.http_port, "0");
    assert_eq!(status, 200, "{head}");
    read_ts(&mut warm, 188);
    let baseline = srv.rss_kib();
    // 40 clients of the whole mux (about 20 Mbit/s each) that never read.
    let stalled: Vec<TcpStream> = (0..40u8)
        .map(|i| {
            let s =
                socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
            s.set_recv_buffer_size(4096).unwrap();
            s.bind(&SocketAddr::from((Ipv4Addr::new(127, 0, 2, i + 1), 0)).into())
                .unwrap();
            s.connect(&SocketAddr::from((Ipv4Addr::LOCALHOST, srv.http_port)).into())
                .unwrap();
            let mut s: TcpStream = s.into();
            write!(s, "GET /?{MUX}&pids=all HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
            s
        })
        .collect();
    // Dropped: the status page counts slow clients dropped.
    wait_for("the stalled readers dropped", || {
        srv.http_counter("slow-dropped") == 40
    });
    assert_eq!(srv.frontend_users(), 1, "only the warm client streams");
    let peak = srv.rss_kib();
    for mut s in stalled {
        s.set_read_timeout(Some(WAIT)).unwrap();
        assert!(closed_by_server(&mut s), "a stalled reader is closed");
    }
    drop(warm);
    srv.wait_frontends_free();
    let after = srv.rss_kib();
    eprintln!(
        "RSS: baseline {baseline} KiB, with 40 stalled readers {peak} KiB, after {after} KiB"
    );
    // The old streamer grew ~9 MB per stalled reader and kept it.
    assert!(
        peak < baseline + 40 * 1024,
        "40 stalled readers grew RSS from {baseline} to {peak} KiB"
    );
    assert!(
        after < baseline + 16 * 1024,
        "RSS did not come back: {baseline} -> {after} KiB"
    );
    normal_client_is_served(&srv);
}

#[test]
fn idle_and_half_sent_requests_are_closed_after_the_timeouts() {
    let srv = Serve::start(
        "http-timeouts",
        "",
        "[http]\nheader_timeout = 1\nidle_timeout = 1\n",
        None,
    );
    // Connected, nothing sent.
    let mut idle = connect_from(Ipv4Addr::LOCALHOST, srv.http_port);
    // Half a request head.
    let mut half = connect_from(Ipv4Addr::LOCALHOST, srv.http_port);
    half.write_all(b"GET /desc.xml HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        .unwrap();
    // A keep-alive connection after one answered request.
    let mut kept = connect_from(Ipv4Addr::LOCALHOST, srv.http_port);
    kept.write_all(b"GET /desc.xml HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .unwrap();
    let (status, head) = read_head(&mut kept);
    assert_eq!(status, 200, "{head}");
    let len: usize = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-length:")
                .map(|v| v.trim().parse().unwrap())
        })
        .expect("Content-Length on a keep-alive answer");
    let mut body = vec![0u8; len];
    kept.read_exact(&mut body).unwrap();

    let mut rest = Vec::new();
    assert_eq!(
        idle.read_to_end(&mut rest).unwrap_or(0),
        0,
        "idle: closed without an answer"
    );
    let (status, head) = read_head(&mut half);
    assert_eq!(status, 408, "half-sent head: {head}");
    assert!(closed_by_server(&mut half));
    assert!(
        closed_by_server(&mut kept),
        "idle keep-alive connection closed"
    );
    normal_client_is_served(&srv);
}

#[test]
fn two_thousand_connections_from_one_address_get_503_and_others_are_served() {
    // The descriptor limit of the reproduction (1,024), and idle connections held
    // for longer than the test.
    let srv = Serve::start(
        "http-caps",
        "",
        "[http]\nheader_timeout = 600\nmax_per_address = 32\n",
        Some(1024),
    );
    let attacker = Ipv4Addr::new(127, 0, 0, 2);
    // Connections are accepted in the order they were made: the first 32 are held (idle),
    // every later one is answered 503 and closed.
    let mut conns = Vec::new();
    for i in 0..2000 {
        conns.push(connect_from(attacker, srv.http_port));
        if i % 250 == 0 {
            normal_client_is_served(&srv);
        }
    }
    for (i, s) in conns.iter_mut().enumerate().skip(32) {
        let (status, head) = read_head(s);
        assert_eq!(status, 503, "connection {i}: {head}");
        assert!(head.contains("\r\nRetry-After: "), "{head}");
        let mut body = String::new();
        let _ = s.read_to_string(&mut body);
        assert!(
            body.contains("this address's HTTP connection limit"),
            "{body}"
        );
    }
    normal_client_is_served(&srv);
    // The 32 held ones are live connections.
    for (i, s) in conns.iter_mut().enumerate().take(32) {
        s.write_all(b"GET /desc.xml HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            .unwrap();
        let (status, head) = read_head(s);
        assert_eq!(status, 200, "held connection {i}: {head}");
    }
    // RTSP still answers too.
    let mut r = Rtsp::connect(srv.rtsp_port);
    assert_eq!(r.req("OPTIONS", "", &[]).status, 200);
    drop(conns);
    normal_client_is_served(&srv);
}

#[test]
fn the_connection_cap_answers_503_until_connections_close() {
    let srv = Serve::start(
        "http-cap",
        "",
        "[http]\nmax_connections = 12\nmax_per_address = 4\nheader_timeout = 600\n",
        None,
    );
    // Three addresses fill the cap of 12 with idle connections.
    let held: Vec<TcpStream> = (0..12u8)
        .map(|i| connect_from(Ipv4Addr::new(127, 0, 3, i / 4 + 1), srv.http_port))
        .collect();
    // The 13th (a fourth address) is refused.
    let mut s = connect_from(Ipv4Addr::new(127, 0, 3, 9), srv.http_port);
    let (status, head) = read_head(&mut s);
    assert_eq!(status, 503, "{head}");
    assert!(head.contains("Retry-After: "), "{head}");
    let mut body = String::new();
    let _ = s.read_to_string(&mut body);
    assert!(body.contains("server's HTTP connection limit"), "{body}");
    drop(held);
    // Places come back as the server sees the connections close.
    wait_for("a connection admitted again", || {
        let (status, _, _) = get(srv.http_port, "/desc.xml");
        status == 200
    });
    // Per address.
    let _four: Vec<TcpStream> = (0..4)
        .map(|_| connect_from(Ipv4Addr::new(127, 0, 3, 20), srv.http_port))
        .collect();
    let mut fifth = connect_from(Ipv4Addr::new(127, 0, 3, 20), srv.http_port);
    let (status, head) = read_head(&mut fifth);
    assert_eq!(status, 503, "{head}");
    let mut body = String::new();
    let _ = fifth.read_to_string(&mut body);
    assert!(
        body.contains("this address's HTTP connection limit"),
        "{body}"
    );
    normal_client_is_served(&srv);
}

#[test]
fn http_streams_count_against_max_sessions_with_rtsp_sessions() {
    let srv = Serve::start("http-sessions", "max_sessions = 3", "", None);
    let mut streams: Vec<TcpStream> = (0..3)
        .map(|i| {
            let (status, head, s) = stream_from(Ipv4Addr::LOCALHOST, srv.http_port, "0");
            assert_eq!(status, 200, "stream {i}: {head}");
            s
        })
        .collect();
    // HEAD answers the stream's head without taking a place or a frontend.
    let mut h = connect_from(Ipv4Addr::LOCALHOST, srv.http_port);
    write!(h, "HEAD /?{MUX}&pids=0 HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let (status, head) = read_head(&mut h);
    assert_eq!(status, 200, "{head}");
    assert!(head.to_ascii_lowercase().contains("video/mp2t"), "{head}");
    let (status, head, mut s) = stream_from(Ipv4Addr::LOCALHOST, srv.http_port, "0");
    assert_eq!(status, 503, "{head}");
    let mut body = String::new();
    let _ = s.read_to_string(&mut body);
    assert_eq!(body, "No-More: sessions");
    // RTSP counts the HTTP streams too.
    let mut r = Rtsp::connect(srv.rtsp_port);
    let setup = r.req(
        "SETUP",
        &format!("?{MUX}&pids=0"),
        &[("Transport", "RTP/AVP;unicast;client_port=40000-40001")],
    );
    assert_eq!(setup.status, 503, "{}", setup.status_line());
    // One stream ends: a new one is admitted once the server saw it go.
    drop(streams.pop());
    wait_for("a place among the sessions", || {
        let (status, _, s) = stream_from(Ipv4Addr::LOCALHOST, srv.http_port, "0");
        if status == 200 {
            streams.push(s);
            true
        } else {
            false
        }
    });
    drop(streams);
    srv.wait_frontends_free();
    normal_client_is_served(&srv);
}
