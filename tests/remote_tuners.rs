//! Remote SAT>IP tuners in the pool (issue 14 item 3), two `dvb2ip serve` processes on
//! loopback: an origin with the emulated tuners, and an edge with no tuners of its own and a
//! `[[satip_server]]` pointing at the origin (its tuners read from the origin's
//! `X_SATIPCAP`). Through the edge: ffprobe of a SAT>IP query, a PID change that becomes
//! `addpids` on the origin's session and brings the new PID's packets, HTTP streaming; the
//! edge reports its remote tuners (state, bytes, starts) in `/api/tuners`; killing the origin
//! takes them out of the edge's pool, restarting it brings them back.

mod common;

use std::net::UdpSocket;
use std::path::Path;
use std::time::{Duration, Instant};

use common::rtsp::Rtsp;
use common::serve_child::{free_port, ServeChild};

/// Bound of every wait: a slow machine takes longer, it does not get less.
const LIMIT: Duration = Duration::from_secs(90);

const NEWS: &str = "freq=506&msys=dvbt&bw=8";
/// The video PID of "dvb2ip Sport" on the same multiplex as News.
const SPORT_VIDEO: u16 = 0x201;

/// The shipped configuration on `http_port`, without SSDP, multicast or real adapters.
fn origin_config(http_port: u16) -> String {
    let mut out = String::new();
    let mut section = String::new();
    for line in std::fs::read_to_string(common::repo_file("conf/default.toml"))
        .unwrap()
        .lines()
    {
        if line.starts_with('[') {
            section = line.to_owned();
        }
        let l = match line {
            l if l.starts_with("http_port = ") => format!("http_port = {http_port}"),
            l if l.starts_with("hardware = ") => "hardware = \"off\"".to_owned(),
            "enabled = true" if section == "[ssdp]" || section == "[multicast]" => {
                "enabled = false".to_owned()
            }
            l => l.to_owned(),
        };
        out.push_str(&l);
        out.push('\n');
    }
    out
}

/// An edge without tuners, borrowing the origin's.
fn edge_config(http_port: u16, origin_rtsp: u16, origin_http: u16) -> String {
    format!(
        r#"[server]
bind = "127.0.0.1"
http_port = {http_port}
session_timeout = 30

[ssdp]
enabled = false

[multicast]
enabled = false

[emulator]
hardware = "off"

[[channel]]
name = "news"
title = "dvb2ip News"
query = "{NEWS}&pids=0,16,17,18,20,256,257,258"

[[satip_server]]
url = "rtsp://127.0.0.1:{origin_rtsp}/"
description = "http://127.0.0.1:{origin_http}/desc.xml"
"#
    )
}

fn start(conf: &Path, rtsp_port: u16) -> ServeChild {
    let mut s = ServeChild::start_on(conf, rtsp_port, &[]);
    // HTTP is up once the banner is complete.
    s.wait_line("Stop with Ctrl-C.", LIMIT);
    s
}

fn get_json(port: u16, path: &str) -> serde_json::Value {
    let a = common::http::get(port, path);
    assert_eq!(a.status, 200, "GET {path}: {}", a.text());
    serde_json::from_str(&a.text()).unwrap_or_else(|e| panic!("GET {path}: {e}: {}", a.text()))
}

/// The edge's remote tuners as `/api/tuners` lists them.
fn remote_tuners(http_port: u16) -> Vec<serde_json::Value> {
    get_json(http_port, "/api/tuners")
        .as_array()
        .expect("a list of tuners")
        .iter()
        .filter(|t| t["kind"] == "remote")
        .cloned()
        .collect()
}

fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let end = Instant::now() + LIMIT;
    while !cond() {
        assert!(Instant::now() < end, "{what}: not within {LIMIT:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// An RTP socket on an even port and its RTCP neighbour.
fn udp_pair() -> (UdpSocket, UdpSocket) {
    loop {
        let a = UdpSocket::bind("127.0.0.1:0").unwrap();
        let p = a.local_addr().unwrap().port();
        if p.is_multiple_of(2) {
            if let Ok(b) = UdpSocket::bind(("127.0.0.1", p + 1)) {
                a.set_read_timeout(Some(Duration::from_millis(500)))
                    .unwrap();
                return (a, b);
            }
        }
    }
}

/// Reads RTP until a TS packet of `pid` arrives (bounded); the packets seen.
fn wait_pid(rtp: &UdpSocket, pid: u16) -> u64 {
    let end = Instant::now() + LIMIT;
    let mut buf = [0u8; 65536];
    let mut packets = 0;
    loop {
        assert!(
            Instant::now() < end,
            "no packet of PID {pid} within {LIMIT:?} ({packets} TS packets seen)"
        );
        let Ok(n) = rtp.recv(&mut buf) else { continue };
        for p in buf[12.min(n)..n].chunks_exact(188) {
            packets += 1;
            if p[0] == 0x47 && ((u16::from(p[1]) & 0x1F) << 8 | u16::from(p[2])) == pid {
                return packets;
            }
        }
    }
}

#[test]
fn an_edge_without_tuners_serves_through_the_origins() {
    std::env::set_var(
        "DVB2IP_CACHE_DIR",
        std::env::var("DVB2IP_CACHE_DIR").unwrap_or_else(|_| "/work/cache/dvb2ip".into()),
    );
    let dir = common::temp_dir("remote_tuners");
    let (origin_rtsp, origin_http, edge_http) = (free_port(), free_port(), free_port());
    let origin_conf = dir.join("origin.toml");
    std::fs::write(&origin_conf, origin_config(origin_http)).unwrap();
    let edge_conf = dir.join("edge.toml");
    std::fs::write(&edge_conf, edge_config(edge_http, origin_rtsp, origin_http)).unwrap();

    let mut origin = start(&origin_conf, origin_rtsp);
    let edge = start(&edge_conf, 0);

    // The origin's X_SATIPCAP (DVBS2-1,DVBT2-2,DVBC-1) becomes four remote tuners.
    wait_for("the origin's tuners in the edge's pool", || {
        remote_tuners(edge_http).len() == 4
    });
    let tuners = remote_tuners(edge_http);
    assert!(
        tuners.iter().all(|t| t["remote"]["state"] == "idle"
            && t["remote"]["server"] == format!("rtsp://127.0.0.1:{origin_rtsp}/")),
        "{tuners:#?}"
    );
    wait_for("the edge's X_SATIPCAP counting the remote tuners", || {
        common::http::get(edge_http, "/desc.xml")
            .text()
            .contains("DVBS2-1,DVBT2-2,DVBC-1")
    });

    // ffprobe of a SAT>IP query on the edge finds the programmes.
    let v = common::ffprobe(
        &format!(
            "rtsp://127.0.0.1:{}/?{NEWS}&pids=0,16,17,18,20,256,257,258",
            edge.rtsp_port
        ),
        &["-rtsp_transport", "udp"],
    );
    let progs = common::programs(&v);
    assert!(
        progs
            .iter()
            .any(|(n, t)| n == "dvb2ip News" && t.contains(&"video".to_string())),
        "{progs:?}"
    );
    let live = remote_tuners(edge_http);
    assert!(
        live.iter()
            .any(|t| t["remote"]["bytes_in"].as_u64() > Some(0)
                && t["remote"]["starts"].as_u64() >= Some(1)),
        "{live:#?}"
    );
    let metrics = common::http::get(edge_http, "/metrics").text();
    assert!(
        metrics.contains("dvb2ip_remote_tuner_info{")
            && metrics.contains("dvb2ip_remote_tuner_received_bytes_total{"),
        "{metrics}"
    );
    wait_for("the edge's frontends free after ffprobe", || {
        remote_tuners(edge_http).iter().all(|t| t["users"] == 0)
    });

    // A SAT>IP session on the edge; its PID change becomes addpids on the origin.
    let (rtp, _rtcp) = udp_pair();
    let p = rtp.local_addr().unwrap().port();
    let mut c = Rtsp::connect(edge.rtsp_port);
    let r = c.req(
        "SETUP",
        &format!("?{NEWS}&pids=0,256"),
        &[(
            "Transport",
            &format!("RTP/AVP;unicast;client_port={p}-{}", p + 1),
        )],
    );
    assert_eq!(r.status, 200, "{r:?}");
    let (sid, sess) = (r.stream_id(), r.session());
    let r = c.req("PLAY", &format!("stream={sid}"), &[("Session", &sess)]);
    assert_eq!(r.status, 200, "{r:?}");
    wait_pid(&rtp, 256);
    // The edge's tuner is live, and reports the origin's signal (from its RTCP SES1).
    wait_for("a live remote tuner with the origin's lock", || {
        remote_tuners(edge_http)
            .iter()
            .any(|t| t["remote"]["state"] == "live" && t["locked"] == true)
    });
    let origin_level = get_json(origin_http, "/api/tuners")
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["users"].as_u64() > Some(0))
        .and_then(|t| t["level_percent"].as_i64())
        .expect("the origin's busy tuner reports a level");
    wait_for("the origin's level on the edge", || {
        remote_tuners(edge_http).iter().any(|t| {
            t["level_percent"]
                .as_i64()
                .is_some_and(|l| (l - origin_level).abs() <= 2)
        })
    });

    let r = c.req(
        "PLAY",
        &format!("stream={sid}?addpids={SPORT_VIDEO}"),
        &[("Session", &sess)],
    );
    assert_eq!(r.status, 200, "{r:?}");
    wait_for("addpids on the origin's session", || {
        get_json(origin_http, "/api/sessions")
            .as_array()
            .unwrap()
            .iter()
            .any(|s| {
                s["query"]
                    .as_str()
                    .is_some_and(|q| q.contains(&format!("addpids={SPORT_VIDEO}")))
            })
    });
    wait_pid(&rtp, SPORT_VIDEO);
    let r = c.req("TEARDOWN", &format!("stream={sid}"), &[("Session", &sess)]);
    assert_eq!(r.status, 200, "{r:?}");
    drop(c);

    // HTTP streaming on the edge (SAT>IP over HTTP: this server has no `/ch/<name>` over
    // HTTP), through the origin's tuner.
    let v = common::ffprobe(
        &format!("http://127.0.0.1:{edge_http}/?{NEWS}&pids=0,16,17,18,20,256,257,258"),
        &[],
    );
    let progs = common::programs(&v);
    assert!(progs.iter().any(|(n, _)| n == "dvb2ip News"), "{progs:?}");

    // The channel's RTSP mount on the edge (its dvbtunersrc leases from the edge's pool).
    let v = common::ffprobe(
        &format!("rtsp://127.0.0.1:{}/ch/news", edge.rtsp_port),
        &["-rtsp_transport", "tcp"],
    );
    let progs = common::programs(&v);
    assert!(progs.iter().any(|(n, _)| n == "dvb2ip News"), "{progs:?}");

    // The origin dies: its tuners leave the edge's pool.
    origin.signal(libc::SIGKILL);
    let _ = origin.child.wait();
    wait_for("the remote tuners gone", || {
        remote_tuners(edge_http).is_empty()
    });
    let r = Rtsp::connect(edge.rtsp_port).req(
        "SETUP",
        &format!("?{NEWS}&pids=0"),
        &[("Transport", "RTP/AVP;unicast;client_port=40000-40001")],
    );
    assert_ne!(r.status, 200, "no tuner left on the edge: {r:?}");

    // It comes back on the same ports: so do they, and the edge streams again.
    drop(origin);
    let _origin = start(&origin_conf, origin_rtsp);
    wait_for("the remote tuners back", || {
        remote_tuners(edge_http).len() == 4
    });
    let v = common::ffprobe(
        &format!(
            "rtsp://127.0.0.1:{}/?{NEWS}&pids=0,16,17,18,20,256,257,258",
            edge.rtsp_port
        ),
        &["-rtsp_transport", "udp"],
    );
    assert!(
        common::programs(&v).iter().any(|(n, _)| n == "dvb2ip News"),
        "{v}"
    );
}

// ---------------------------------------------------------------------------------------------
// Servers found over SSDP (`[ssdp] discover_servers`), in network namespaces this test creates
// ---------------------------------------------------------------------------------------------

/// `dvb2ip serve` inside a namespace, its output in a file; killed on drop if still running.
struct NsServe {
    child: std::process::Child,
    log: std::path::PathBuf,
}

impl NsServe {
    fn start(ns: &common::netns::Netns, conf: &Path, log: std::path::PathBuf) -> NsServe {
        let out = std::fs::File::create(&log).unwrap();
        let child = ns
            .exec(common::dvb2ip_bin().to_str().unwrap())
            .args(["serve", "--config"])
            .arg(conf)
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .expect("dvb2ip serve");
        let mut s = NsServe { child, log };
        s.wait_log("Stop with Ctrl-C.");
        s
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits (bounded) for `needle` in the log.
    fn wait_log(&mut self, needle: &str) -> String {
        let end = Instant::now() + LIMIT;
        loop {
            let log = self.log();
            if let Some(l) = log.lines().find(|l| l.contains(needle)) {
                return l.to_owned();
            }
            if let Ok(Some(st)) = self.child.try_wait() {
                panic!("server exited ({st}) before {needle:?}:\n{log}");
            }
            assert!(
                Instant::now() < end,
                "no {needle:?} within {LIMIT:?}:\n{log}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGTERM, and waits (bounded) for the exit.
    fn stop(&mut self) {
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let end = Instant::now() + LIMIT;
        while self.child.try_wait().ok().flatten().is_none() {
            assert!(
                Instant::now() < end,
                "no exit after SIGTERM:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for NsServe {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The shipped configuration with `[ssdp]` on `iface` (state in `state`), bound to every
/// address, DEVICE ID `device_id`, without multicast or real adapters; with the emulated
/// tuners or none; searching for other servers or not.
fn ns_config(
    iface: &str,
    state: &Path,
    (rtsp_port, device_id): (u16, u8),
    tuners: bool,
    discover: bool,
) -> String {
    let mut out = String::new();
    let mut section = String::new();
    for line in std::fs::read_to_string(common::repo_file("conf/default.toml"))
        .unwrap()
        .lines()
    {
        if line.starts_with('[') {
            section = line.to_owned();
        }
        if !tuners && (section == "[[adapter]]" || section.starts_with("[adapter.")) {
            continue;
        }
        let l = match line {
            l if l.starts_with("bind = ") => "bind = \"0.0.0.0\"".to_owned(),
            l if l.starts_with("rtsp_port = ") => format!("rtsp_port = {rtsp_port}"),
            l if l.starts_with("interfaces = ") => format!("interfaces = [\"{iface}\"]"),
            l if l.starts_with("state_dir = ") => format!("state_dir = \"{}\"", state.display()),
            l if l.starts_with("discover_servers = ") => format!("discover_servers = {discover}"),
            l if l.starts_with("device_id = ") => format!("device_id = {device_id}"),
            l if l.starts_with("hardware = ") => "hardware = \"off\"".to_owned(),
            "enabled = true" if section == "[multicast]" => "enabled = false".to_owned(),
            l => l.to_owned(),
        };
        out.push_str(&l);
        out.push('\n');
    }
    out
}

/// The remote tuners of the server in `ns` (HTTP on 8875 there).
fn ns_remote_tuners(ns: &common::netns::Netns) -> Vec<serde_json::Value> {
    ns.enter(|| remote_tuners(8875))
}

#[test]
fn servers_found_over_ssdp_lend_their_tuners_until_they_leave() {
    std::env::set_var(
        "DVB2IP_CACHE_DIR",
        std::env::var("DVB2IP_CACHE_DIR").unwrap_or_else(|_| "/work/cache/dvb2ip".into()),
    );
    let dir = common::temp_dir("remote_tuners_ssdp");
    // Two namespaces joined by a veth pair: the origin's eth0 10.214.0.1, the edge's eth1
    // 10.214.0.2. Nothing this test sends leaves them.
    let origin_ns = common::netns::Netns::new("d2iremote", "origin");
    let edge_ns = common::netns::Netns::new("d2iremote", "edge");
    origin_ns.ip(&[
        "link",
        "add",
        "eth0",
        "type",
        "veth",
        "peer",
        "name",
        "eth1",
        "netns",
        &edge_ns.name,
    ]);
    origin_ns.ip(&["addr", "add", "10.214.0.1/24", "dev", "eth0"]);
    origin_ns.ip(&["link", "set", "eth0", "up"]);
    edge_ns.ip(&["addr", "add", "10.214.0.2/24", "dev", "eth1"]);
    edge_ns.ip(&["link", "set", "eth1", "up"]);

    // The origin announces its tuners on eth0 (RTSP on 8554: X-SATIP-RTSP-Port says so).
    let origin_conf = dir.join("origin.toml");
    std::fs::write(
        &origin_conf,
        ns_config("eth0", &dir.join("origin-state"), (8554, 1), true, false),
    )
    .unwrap();
    let mut origin = NsServe::start(&origin_ns, &origin_conf, dir.join("origin.log"));
    // Settled: it announces nothing more for a long while (max-age 1800 s), so the edge can
    // find it only by searching.
    origin.wait_log("dvb2ip: ssdp: DEVICEID 1 settled");

    // The edge has no tuners; it announces itself too, with another DEVICE ID (its own
    // messages must not count), and searches eth1.
    let edge_conf = dir.join("edge.toml");
    std::fs::write(
        &edge_conf,
        ns_config("eth1", &dir.join("edge-state"), (554, 2), false, true),
    )
    .unwrap();
    let mut edge = NsServe::start(&edge_ns, &edge_conf, dir.join("edge.log"));
    let edge_uuid = edge
        .wait_log("dvb2ip: ssdp: uuid ")
        .split_whitespace()
        .nth(3)
        .expect("the edge's uuid in its banner")
        .to_owned();
    assert!(
        ns_remote_tuners(&edge_ns).is_empty(),
        "no tuners of its own"
    );

    // Found by the edge's M-SEARCH: the origin's X_SATIPCAP (DVBS2-1,DVBT2-2,DVBC-1) makes
    // four remote tuners on rtsp://10.214.0.1:8554/.
    edge.wait_log("answered our search at http://10.214.0.1:8875/desc.xml");
    wait_for("the origin's four tuners in the edge's pool", || {
        ns_remote_tuners(&edge_ns).len() == 4
    });
    let tuners = ns_remote_tuners(&edge_ns);
    assert!(
        tuners
            .iter()
            .all(|t| t["remote"]["server"] == "rtsp://10.214.0.1:8554/"),
        "{tuners:#?}"
    );

    // ffprobe satip:// on the edge plays through the origin's tuner.
    let out = edge_ns
        .exec("timeout")
        .args([
            "120",
            "ffprobe",
            "-v",
            "error",
            "-print_format",
            "json",
            "-show_programs",
            "-show_streams",
            &format!("satip://10.214.0.2/?{NEWS}&pids=0,16,17,18,256,257,258"),
        ])
        .output()
        .expect("ffprobe runs");
    assert!(
        out.status.success(),
        "ffprobe: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("ffprobe JSON");
    let progs = common::programs(&v);
    assert!(
        progs
            .iter()
            .any(|(n, t)| n == "dvb2ip News" && t.contains(&"video".to_string())),
        "{progs:?}"
    );
    assert!(
        ns_remote_tuners(&edge_ns)
            .iter()
            .any(|t| t["remote"]["bytes_in"].as_u64() > Some(0)),
        "the remote tuner carried the stream"
    );

    // The origin stops: its byebye takes the tuners out of the edge's pool.
    origin.stop();
    edge.wait_log("said byebye: its tuners leave the pool");
    wait_for("the remote tuners gone", || {
        ns_remote_tuners(&edge_ns).is_empty()
    });

    // It starts again: its alive NOTIFY brings them back.
    let mut origin = NsServe::start(&origin_ns, &origin_conf, dir.join("origin2.log"));
    origin.wait_log("dvb2ip: ssdp: announced");
    edge.wait_log("announced itself at http://10.214.0.1:8875/desc.xml");
    wait_for("the remote tuners back", || {
        ns_remote_tuners(&edge_ns).len() == 4
    });

    // Never itself: the edge's own announcements and answers (looped back) were ignored.
    let log = edge.log();
    assert!(
        !log.contains(&format!("SAT>IP server uuid:{edge_uuid}")),
        "the edge took itself for a server:\n{log}"
    );
    drop(origin);
    drop(edge);
}

#[test]
fn satip_server_entries_follow_sighup() {
    std::env::set_var(
        "DVB2IP_CACHE_DIR",
        std::env::var("DVB2IP_CACHE_DIR").unwrap_or_else(|_| "/work/cache/dvb2ip".into()),
    );
    let dir = common::temp_dir("remote_tuners_sighup");
    let (origin_rtsp, origin_http, edge_http) = (free_port(), free_port(), free_port());
    let origin_conf = dir.join("origin.toml");
    std::fs::write(&origin_conf, origin_config(origin_http)).unwrap();
    let _origin = start(&origin_conf, origin_rtsp);
    // The edge starts without the entry.
    let with_entry = edge_config(edge_http, origin_rtsp, origin_http);
    let without = with_entry[..with_entry.find("[[satip_server]]").unwrap()].to_owned();
    let edge_conf = dir.join("edge.toml");
    std::fs::write(&edge_conf, &without).unwrap();
    let mut edge = start(&edge_conf, 0);
    assert!(remote_tuners(edge_http).is_empty());

    // Added: its four tuners join.
    std::fs::write(&edge_conf, &with_entry).unwrap();
    edge.signal(libc::SIGHUP);
    edge.wait_line("satip_server: started", LIMIT);
    wait_for("the added server's tuners", || {
        remote_tuners(edge_http).len() == 4
    });
    // Changed (one DVB-T2 tuner listed): restarted with one tuner.
    let changed = format!(
        "{without}[[satip_server]]\nurl = \"rtsp://127.0.0.1:{origin_rtsp}/\"\nfrontends = \"DVBT2-1\"\n"
    );
    std::fs::write(&edge_conf, &changed).unwrap();
    edge.signal(libc::SIGHUP);
    let url = format!("[\"rtsp://127.0.0.1:{origin_rtsp}/\"]");
    let line = edge.wait_line("satip_server: started", LIMIT);
    assert!(
        line.contains(&format!("started {url}, stopped {url}")),
        "{line}"
    );
    wait_for("the changed server's one tuner", || {
        remote_tuners(edge_http).len() == 1
    });
    // Removed: its tuners leave.
    std::fs::write(&edge_conf, &without).unwrap();
    edge.signal(libc::SIGHUP);
    let line = edge.wait_line("satip_server: started", LIMIT);
    assert!(
        line.contains(&format!("started [], stopped {url}")),
        "{line}"
    );
    wait_for("the removed server's tuners gone", || {
        remote_tuners(edge_http).is_empty()
    });
}
