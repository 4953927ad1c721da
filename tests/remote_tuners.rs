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
