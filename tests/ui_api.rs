//! The web UI's JSON API (src/ui, src/clients.rs) against a real `dvb2ip serve`: every
//! endpoint and action, sessions of RTSP and HTTP clients listed with their channel and
//! address and ended by `DELETE /api/sessions/<id>`, cross-site requests refused, and actions
//! from a non-loopback address (a network namespace on a veth pair) refused without the
//! administrator's password.

mod common;

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream, UdpSocket};
use std::time::{Duration, Instant};

use common::netns::{run, Netns};
use common::rtsp::Rtsp;
use common::serve_child::{free_port, ServeChild};

const ONE: &str = "src=1&freq=474&msys=dvbt2&bw=8&plp=0&pids=0,16,17,18,20,256,257,258";
const NEWS: &str = "freq=506&msys=dvbt&bw=8&pids=0,16,17,18,20,256,257,258";

/// The embedded configuration without SSDP, HTTP on `http_port`, `extra` appended.
fn config(http_port: u16, bind: &str, extra: &str) -> String {
    let text = gstdvb2ip::tuners::config::DEFAULT_CONFIG;
    let ssdp = text.find("[ssdp]").expect("[ssdp]");
    format!(
        "{}{}\n{extra}",
        &text[..ssdp],
        text[ssdp..].replacen("enabled = true", "enabled = false", 1)
    )
    .replacen("http_port = 8875", &format!("http_port = {http_port}"), 1)
    .replacen("bind = \"127.0.0.1\"", &format!("bind = \"{bind}\""), 1)
}

struct Answer {
    status: u16,
    head: String,
    body: String,
}

impl Answer {
    fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {} {}", self.head, self.body))
    }
}

/// One request to `to` with `headers`, the whole answer read.
fn req(to: SocketAddr, method: &str, path: &str, headers: &[(&str, &str)]) -> Answer {
    req_body(to, method, path, headers, "")
}

/// [`req`] with a body.
fn req_body(
    to: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Answer {
    let mut s = TcpStream::connect_timeout(&to, Duration::from_secs(10)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut text = format!("{method} {path} HTTP/1.1\r\nHost: {to}\r\nConnection: close\r\n");
    for (k, v) in headers {
        text.push_str(&format!("{k}: {v}\r\n"));
    }
    text.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
    s.write_all(text.as_bytes()).unwrap();
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    let raw = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    // Chunked bodies: the tests' JSON comes with a length, pages may not; strip chunk sizes.
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(body)
    } else {
        body.to_owned()
    };
    Answer {
        status,
        head: head.to_owned(),
        body,
    }
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        s = rest[n..].trim_start_matches("\r\n");
    }
    out
}

fn lo(port: u16) -> SocketAddr {
    (Ipv4Addr::LOCALHOST, port).into()
}

/// Waits (bounded) until `f` gives something.
fn wait_for<T>(what: &str, limit: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let end = Instant::now() + limit;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < end, "{what}: not within {limit:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn session_where(port: u16, f: impl Fn(&serde_json::Value) -> bool) -> Option<serde_json::Value> {
    let a = req(lo(port), "GET", "/api/sessions", &[]);
    assert_eq!(a.status, 200, "{}", a.body);
    a.json().as_array()?.iter().find(|s| f(s)).cloned()
}

#[test]
fn endpoints_sessions_and_actions_from_loopback() {
    let dir = common::temp_dir("ui-api");
    let http = free_port();
    let conf = dir.join("serve.toml");
    std::fs::write(&conf, config(http, "127.0.0.1", "")).unwrap();
    let srv = ServeChild::start(&conf, &[]);

    // Status, tuners, lineup, assets, the page's first paint.
    let st = req(lo(http), "GET", "/api/status", &[]).json();
    assert_eq!(st["version"], env!("CARGO_PKG_VERSION"), "{st}");
    assert!(
        st["uptime_s"].is_u64() && st["rss_bytes"].as_u64() > Some(0),
        "{st}"
    );
    assert!(st["device_id"].is_u64(), "{st}");
    let bound = st["bound"].to_string();
    assert!(bound.contains(&format!("http://127.0.0.1:{http}")), "{st}");
    assert!(
        bound.contains(&format!("rtsp://127.0.0.1:{}", srv.rtsp_port)),
        "{st}"
    );
    let tuners = req(lo(http), "GET", "/api/tuners", &[]).json();
    let t0 = &tuners[0];
    assert!(
        t0["fe"].is_array() && t0["delivery_systems"].is_array(),
        "{t0}"
    );
    assert_eq!(t0["kind"], "emulated", "{t0}");
    for k in [
        "level_percent",
        "signal_dbm",
        "quality_percent",
        "snr_db",
        "ber",
        "locked",
        "users",
        "continuity_errors_total",
        "transport_errors_total",
    ] {
        assert!(t0.get(k).is_some(), "{k} in {t0}");
    }
    let lineup = req(lo(http), "GET", "/api/lineup", &[]).json();
    let one = lineup
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["slug"] == "one")
        .unwrap_or_else(|| panic!("{lineup}"));
    assert_eq!(one["name"], "dvb2ip One HD");
    let page = req(lo(http), "GET", "/", &[]);
    assert_eq!(page.status, 200);
    for needle in [
        "/ui/app.js",
        "/ui/app.css",
        "DEVICE ID",
        "rtsp://",
        "id=\"sessions\"",
    ] {
        assert!(page.body.contains(needle), "{needle} in the page");
    }
    let js = req(lo(http), "GET", "/ui/app.js", &[]);
    assert!(js.head.contains("text/javascript") && js.body.contains("EventSource"));
    assert!(req(lo(http), "GET", "/ui/app.css", &[])
        .head
        .contains("text/css"));

    // Live updates: the first snapshot comes at once.
    let mut ev = TcpStream::connect(lo(http)).unwrap();
    ev.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(ev, "GET /api/events HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 8192];
    while !String::from_utf8_lossy(&got).contains("\n\n")
        || !String::from_utf8_lossy(&got).contains("event: snapshot")
    {
        let n = ev.read(&mut buf).expect("an event");
        assert!(n > 0, "events closed: {}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&got).into_owned();
    assert!(text.contains("text/event-stream"), "{text}");
    assert!(
        text.contains("\"tuners\":[") && text.contains("\"sessions\":"),
        "{text}"
    );
    drop(ev);

    // An RTSP/UDP session shows with its channel, address and user agent, and ends by DELETE.
    let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
    udp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let p = udp.local_addr().unwrap().port();
    let mut c = Rtsp::connect(srv.rtsp_port);
    let transport = format!("RTP/AVP;unicast;client_port={p}-{}", p + 1);
    let r = c.req(
        "SETUP",
        &format!("?{ONE}"),
        &[("Transport", &transport), ("User-Agent", "ui-api-test/1")],
    );
    assert_eq!(r.status, 200, "{}", r.head);
    let sid = r.session();
    let url = c.url(&format!("stream={}", r.stream_id()));
    let play = c.request("PLAY", &url, &[("Session", &sid)]).unwrap();
    assert_eq!(play.status, 200);
    let mut dgram = [0u8; 2048];
    udp.recv(&mut dgram).expect("RTP before the disconnect");
    let local_port = c.stream().local_addr().unwrap().port();
    let s = wait_for("the RTSP session listed", Duration::from_secs(3), || {
        session_where(http, |s| s["id"] == format!("rtsp-{sid}"))
    });
    assert_eq!(s["protocol"], "rtsp/udp", "{s}");
    assert_eq!(s["channel"], "dvb2ip One HD", "{s}");
    assert_eq!(s["client_address"], "127.0.0.1", "{s}");
    assert_eq!(s["client_port"], local_port, "{s}");
    assert_eq!(s["user_agent"], "ui-api-test/1", "{s}");
    assert_eq!(s["pids"], "0,16,17,18,20,256,257,258", "{s}");
    assert!(
        s["duration_s"].is_u64() && s.get("bitrate_bps").is_some(),
        "{s}"
    );
    let one_session = req(lo(http), "GET", &format!("/api/sessions/rtsp-{sid}"), &[]);
    assert_eq!(one_session.status, 200);
    let del = req(
        lo(http),
        "DELETE",
        &format!("/api/sessions/rtsp-{sid}"),
        &[],
    );
    assert_eq!(del.status, 200, "{}", del.body);
    assert!(session_where(http, |s| s["id"] == format!("rtsp-{sid}")).is_none());
    let after = c.request("OPTIONS", &url, &[("Session", &sid)]).unwrap();
    assert_eq!(after.status, 454, "{}", after.head);
    // Its RTP stops: datagrams still in flight drain, then nothing comes for a while.
    udp.set_read_timeout(Some(Duration::from_millis(1500)))
        .unwrap();
    wait_for("the RTP to stop", Duration::from_secs(10), || {
        udp.recv(&mut dgram).is_err().then_some(())
    });
    assert_eq!(
        req(lo(http), "DELETE", "/api/sessions/rtsp-nope", &[]).status,
        404
    );

    // An HTTP stream likewise; DELETE closes it.
    let mut hs = TcpStream::connect(lo(http)).unwrap();
    hs.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        hs,
        "GET /?{NEWS} HTTP/1.1\r\nHost: x\r\nUser-Agent: ui-http/2\r\n\r\n"
    )
    .unwrap();
    let mut first = [0u8; 4096];
    assert!(hs.read(&mut first).unwrap() > 0);
    let s = wait_for("the HTTP stream listed", Duration::from_secs(3), || {
        session_where(http, |s| s["protocol"] == "http")
    });
    assert_eq!(s["channel"], "dvb2ip News", "{s}");
    assert_eq!(s["user_agent"], "ui-http/2", "{s}");
    assert_eq!(s["client_port"], hs.local_addr().unwrap().port(), "{s}");
    let id = s["id"].as_str().unwrap().to_owned();
    assert_eq!(
        req(lo(http), "DELETE", &format!("/api/sessions/{id}"), &[]).status,
        200
    );
    wait_for(
        "the HTTP stream closed",
        Duration::from_secs(10),
        || match hs.read(&mut first) {
            Ok(0) | Err(_) => Some(()),
            Ok(_) => None,
        },
    );

    // Cross-site requests are refused before anything happens.
    let evil = [("Origin", "http://evil.example"), ("X-Requested-With", "x")];
    assert_eq!(req(lo(http), "POST", "/api/scan/start", &evil).status, 403);
    assert_eq!(
        req(lo(http), "DELETE", "/api/sessions/rtsp-x", &evil).status,
        403
    );
    let site = [("Sec-Fetch-Site", "cross-site")];
    assert_eq!(req(lo(http), "POST", "/api/recordings", &site).status, 403);
    let host = format!("http://127.0.0.1:{http}");
    let form = [("Origin", host.as_str())];
    let a = req(lo(http), "POST", "/api/scan/stop", &form);
    assert_eq!(
        a.status, 403,
        "a form's POST without the custom header: {}",
        a.body
    );
    let same = [("Origin", host.as_str()), ("X-Requested-With", "dvb2ip")];
    // The scan actions themselves: no channel database in this configuration.
    let a = req(lo(http), "POST", "/api/scan/start", &same);
    assert_eq!(a.status, 503, "{}", a.body);
    assert!(a.body.contains("state_dir"), "{}", a.body);
    assert_eq!(req(lo(http), "POST", "/api/scan/stop", &same).status, 409);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn actions_from_another_address_need_the_password() {
    let ns = Netns::new("dvb2ip-ui", "auth");
    let n = std::process::id() % 200 + 20;
    let (host_if, ns_if) = (format!("uih{n}"), format!("uin{n}"));
    let (host_ip, ns_ip) = (format!("10.77.{n}.1"), format!("10.77.{n}.2"));
    let _ = std::process::Command::new("ip")
        .args(["link", "del", &host_if])
        .status();
    run(
        "ip",
        &[
            "link", "add", &host_if, "type", "veth", "peer", "name", &ns_if,
        ],
    );
    run("ip", &["link", "set", &ns_if, "netns", &ns.name]);
    run(
        "ip",
        &["addr", "add", &format!("{host_ip}/24"), "dev", &host_if],
    );
    run("ip", &["link", "set", &host_if, "up"]);
    ns.ip(&["addr", "add", &format!("{ns_ip}/24"), "dev", &ns_if]);
    ns.ip(&["link", "set", &ns_if, "up"]);
    struct Link(String);
    impl Drop for Link {
        fn drop(&mut self) {
            let _ = std::process::Command::new("ip")
                .args(["link", "del", &self.0])
                .status();
        }
    }
    let _link = Link(host_if);

    let dir = common::temp_dir("ui-auth");
    let http = free_port();
    let hash = dvb2ip::ui::auth::hash_with("s3cret", 1000).unwrap();
    let conf = dir.join("serve.toml");
    std::fs::write(
        &conf,
        config(
            http,
            &host_ip,
            &format!("[ui]\nadmin_password_hash = \"{hash}\"\n"),
        ),
    )
    .unwrap();
    let mut child = std::process::Command::new(common::dvb2ip_bin())
        .args(["serve", "--rtsp-port", "0", "--config"])
        .arg(&conf)
        .spawn()
        .expect("dvb2ip serve starts");
    struct Kill<'a>(&'a mut std::process::Child);
    impl Drop for Kill<'_> {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let _kill = Kill(&mut child);
    let to: SocketAddr = format!("{host_ip}:{http}").parse().unwrap();
    ns.enter(|| {
        wait_for("the server answering", Duration::from_secs(120), || {
            TcpStream::connect_timeout(&to, Duration::from_secs(1)).ok()
        });
        // Reading needs nobody.
        assert_eq!(req(to, "GET", "/api/status", &[]).status, 200);
        assert_eq!(req(to, "GET", "/api/sessions", &[]).status, 200);
        // Acting needs the password.
        let a = req(to, "DELETE", "/api/sessions/rtsp-x", &[]);
        assert_eq!(a.status, 401, "{}", a.body);
        assert!(
            a.head.contains("WWW-Authenticate: Basic")
                || a.head.contains("www-authenticate: Basic"),
            "{}",
            a.head
        );
        let bad = format!("Basic {}", b64("admin:wrong"));
        assert_eq!(
            req(
                to,
                "DELETE",
                "/api/sessions/rtsp-x",
                &[("Authorization", &bad)]
            )
            .status,
            401
        );
        assert_eq!(req(to, "POST", "/api/scan/start", &[]).status, 401);
        assert_eq!(req(to, "POST", "/api/recordings", &[]).status, 401);
        assert_eq!(req(to, "DELETE", "/api/recordings/1", &[]).status, 401);
        // The lists of the page's other sections need nobody either.
        for path in ["/api/vod", "/api/css", "/api/relays", "/api/recordings"] {
            let a = req(to, "GET", path, &[]);
            assert_eq!(a.status, 200, "{path}: {}", a.body);
        }
        let good = format!("Basic {}", b64("admin:s3cret"));
        // Past the check: no such session.
        let a = req(
            to,
            "DELETE",
            "/api/sessions/rtsp-x",
            &[("Authorization", &good)],
        );
        assert_eq!(a.status, 404, "{}", a.body);
        let a = req(to, "POST", "/api/scan/start", &[("Authorization", &good)]);
        assert_eq!(a.status, 503, "{}", a.body);
        // Recordings follow the same rule (no longer loopback only): past the check, an
        // empty body is a bad request, and no recording 7 runs.
        let a = req(to, "POST", "/api/recordings", &[("Authorization", &good)]);
        assert_eq!(a.status, 400, "{}", a.body);
        assert!(a.body.contains("expected JSON"), "{}", a.body);
        let a = req(
            to,
            "DELETE",
            "/api/recordings/7",
            &[("Authorization", &good)],
        );
        assert_eq!(a.status, 404, "{}", a.body);
    });
    let _ = std::fs::remove_dir_all(&dir);
}

/// Faults injected in the emulated DVB-T/T2 frontends (packet drops, bit errors) show as the
/// continuity and transport errors of the frontend a stream uses, in `/api/tuners`, the live
/// update and `/metrics`; idle frontends show none.
#[test]
fn injected_faults_raise_a_tuners_error_counters() {
    let dir = common::temp_dir("ui-ts-errors");
    let http = free_port();
    let faults = "lock_time_ms = 300\n[adapter.faults]\ndrop_probability = 0.01\n\
                  bit_error_rate = 0.0005\nseed = 15\n";
    let text = config(http, "127.0.0.1", "").replacen("lock_time_ms = 300\n", faults, 2);
    assert_eq!(text.matches("\n[adapter.faults]\n").count(), 2);
    let conf = dir.join("serve.toml");
    std::fs::write(&conf, text).unwrap();
    let srv = ServeChild::start(&conf, &[]);

    let tuners = get_json(http, "/api/tuners");
    for t in tuners.as_array().unwrap() {
        assert!(t["continuity_errors_total"].is_null(), "idle: {t}");
        assert!(t["transport_errors_total"].is_null(), "idle: {t}");
    }

    // An HTTP stream on a faulty frontend, read until the test ends.
    let mut hs = TcpStream::connect(lo(http)).unwrap();
    hs.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(hs, "GET /?{ONE} HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut first = [0u8; 4096];
    assert!(hs.read(&mut first).unwrap() > 0);
    let reader = std::thread::spawn(move || {
        let mut buf = vec![0u8; 65536];
        while matches!(hs.read(&mut buf), Ok(n) if n > 0) {}
    });

    let in_use = |t: &serde_json::Value| t["users"].as_u64() > Some(0);
    let counts = |t: &serde_json::Value| {
        (
            t["continuity_errors_total"].as_u64().unwrap_or(0),
            t["transport_errors_total"].as_u64().unwrap_or(0),
        )
    };
    let (index, before) = wait_for(
        "continuity and transport errors on the stream's frontend",
        Duration::from_secs(30),
        || {
            let tuners = get_json(http, "/api/tuners");
            let t = tuners
                .as_array()
                .unwrap()
                .iter()
                .find(|t| in_use(t))?
                .clone();
            let (cc, tei) = counts(&t);
            (cc > 0 && tei > 0).then(|| (t["index"].as_u64().unwrap(), (cc, tei)))
        },
    );
    eprintln!("frontend {index}: (continuity, transport) errors {before:?}");
    for t in get_json(http, "/api/tuners").as_array().unwrap() {
        if t["index"] == index {
            // Counters only grow while the frontend stays open.
            let (cc, tei) = counts(t);
            assert!(cc >= before.0 && tei >= before.1, "{t} after {before:?}");
        } else if !in_use(t) {
            assert!(t["continuity_errors_total"].is_null(), "idle: {t}");
        }
    }
    // The live update carries them.
    let snap = first_snapshot(http);
    let t = snap["tuners"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["index"] == index)
        .unwrap_or_else(|| panic!("{snap}"));
    assert!(counts(t).0 >= before.0 && counts(t).1 >= before.1, "{t}");
    // So does /metrics, labelled with the frontend's pool index.
    let metrics = req(lo(http), "GET", "/metrics", &[]).body;
    for name in [
        "dvb2ip_tuner_continuity_errors_total",
        "dvb2ip_tuner_transport_errors_total",
    ] {
        let prefix = format!("{name}{{frontend=\"{index}\"}} ");
        let v: f64 = metrics
            .lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("{prefix} in {metrics}"));
        assert!(v > 0.0, "{prefix}{v}");
    }
    // The page's tuner table has the columns.
    let js = req(lo(http), "GET", "/ui/app.js", &[]).body;
    assert!(js.contains("continuity_errors_total") && js.contains("CC errors"));

    // Stopping the server ends the stream and its reader.
    drop(srv);
    let _ = reader.join();
    let _ = std::fs::remove_dir_all(&dir);
}

/// An emulated frontend reports its configured `signal_dbm` (item 1 of issue 15: the signal
/// in dBm where the frontend gives it) in `/api/tuners`, the live update, `/metrics` and the
/// server-rendered tuner table, which has the live table's columns from the first paint.
#[test]
fn emulated_frontends_report_their_configured_signal_in_dbm() {
    let dir = common::temp_dir("ui-dbm");
    let http = free_port();
    // Both DVB-T/T2 adapters (the first two): -52.5 dBm.
    let text = config(http, "127.0.0.1", "").replacen(
        "lock_time_ms = 300\n",
        "lock_time_ms = 300\nsignal_dbm = -52.5\n",
        2,
    );
    assert_eq!(text.matches("\nsignal_dbm = -52.5\n").count(), 2);
    let conf = dir.join("serve.toml");
    std::fs::write(&conf, text).unwrap();
    let srv = ServeChild::start(&conf, &[]);

    for t in get_json(http, "/api/tuners").as_array().unwrap() {
        assert!(
            t.get("signal_dbm").is_some_and(|v| v.is_null()),
            "idle: {t}"
        );
    }
    let mut hs = TcpStream::connect(lo(http)).unwrap();
    hs.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(hs, "GET /?{ONE} HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut first = [0u8; 4096];
    assert!(hs.read(&mut first).unwrap() > 0);
    let reader = std::thread::spawn(move || {
        let mut buf = vec![0u8; 65536];
        while matches!(hs.read(&mut buf), Ok(n) if n > 0) {}
    });

    let t = wait_for(
        "a locked frontend serving the stream",
        Duration::from_secs(30),
        || {
            get_json(http, "/api/tuners")
                .as_array()
                .unwrap()
                .iter()
                .find(|t| t["users"].as_u64() > Some(0) && t["locked"] == true)
                .cloned()
        },
    );
    assert_eq!(t["signal_dbm"].as_f64(), Some(-52.5), "{t}");
    // The percentage stays beside it (the default 78 %).
    assert_eq!(t["level_percent"].as_u64(), Some(78), "{t}");
    let index = t["index"].as_u64().unwrap();
    for other in get_json(http, "/api/tuners").as_array().unwrap() {
        if other["index"] != index && other["users"] == 0 {
            assert!(other["signal_dbm"].is_null(), "idle: {other}");
        }
    }
    // The live update carries it.
    let snap = first_snapshot(http);
    let live = snap["tuners"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["index"] == index)
        .unwrap_or_else(|| panic!("{snap}"));
    assert_eq!(live["signal_dbm"].as_f64(), Some(-52.5), "{live}");
    // /metrics: a gauge for that frontend only (the idle ones report nothing).
    let metrics = req(lo(http), "GET", "/metrics", &[]).body;
    let gauges: Vec<&str> = metrics
        .lines()
        .filter(|l| l.starts_with("dvb2ip_frontend_signal_level_dbm{"))
        .collect();
    assert_eq!(
        gauges,
        [format!(
            "dvb2ip_frontend_signal_level_dbm{{frontend=\"{index}\"}} -52.5"
        )],
        "{metrics}"
    );
    // The first paint: the frontend's row shows the dBm, and the table has the live table's
    // columns, the TS error counts among them.
    let page = req(lo(http), "GET", "/", &[]).body;
    assert!(
        page.contains("<th>Level</th><th>Quality</th><th>SNR</th><th>BER</th><th>CC errors</th><th>TEI errors</th>"),
        "{page}"
    );
    let row = page
        .lines()
        .find(|l| l.starts_with("<tr><td>") && l.contains("dBm"))
        .unwrap_or_else(|| panic!("a row with dBm in {page}"));
    assert!(row.contains("<td>-52.5 dBm</td>"), "{row}");
    assert!(
        row.ends_with("<td>0</td><td>0</td></tr>"),
        "clean mux: {row}"
    );
    assert_eq!(row.matches("<td>").count(), 13, "{row}");
    let js = req(lo(http), "GET", "/ui/app.js", &[]).body;
    assert!(js.contains("signal_dbm") && js.contains(" dBm"));

    drop(srv);
    let _ = reader.join();
    let _ = std::fs::remove_dir_all(&dir);
}

/// Reads an HTTP stream on its own thread until it ends; the receiver hears when it did.
fn drain(mut s: TcpStream) -> std::sync::mpsc::Receiver<()> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
        let mut buf = vec![0u8; 65536];
        while matches!(s.read(&mut buf), Ok(n) if n > 0) {}
        let _ = tx.send(());
    });
    rx
}

/// An HTTP reader of a relay (here relaying the server's own HTTP stream of a tuner) is
/// listed in `/api/sessions` with its address, user agent, path, bitrate and duration, and
/// its disconnect ends the stream.
#[test]
fn relay_readers_over_http_are_sessions() {
    let dir = common::temp_dir("ui-relay-session");
    let http = free_port();
    let extra =
        format!("[[relay]]\nname = \"loop\"\nsource = \"http://127.0.0.1:{http}/?{NEWS}\"\n");
    let conf = dir.join("serve.toml");
    std::fs::write(&conf, config(http, "127.0.0.1", &extra)).unwrap();
    let srv = ServeChild::start(&conf, &[]);

    let mut hs = TcpStream::connect(lo(http)).unwrap();
    hs.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    write!(
        hs,
        "GET /relay/loop HTTP/1.1\r\nHost: x\r\nUser-Agent: ui-relay/3\r\n\r\n"
    )
    .unwrap();
    let mut first = [0u8; 4096];
    let n = hs.read(&mut first).unwrap();
    assert!(
        String::from_utf8_lossy(&first[..n]).starts_with("HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&first[..n])
    );
    let port = hs.local_addr().unwrap().port();
    let ended = drain(hs);
    let s = wait_for(
        "the relay reader listed with a bitrate",
        Duration::from_secs(10),
        || {
            session_where(http, |s| {
                s["path"] == "/relay/loop" && s["bitrate_bps"].as_u64() > Some(0)
            })
        },
    );
    assert_eq!(s["protocol"], "http", "{s}");
    assert_eq!(s["client_address"], "127.0.0.1", "{s}");
    assert_eq!(s["client_port"], port, "{s}");
    assert_eq!(s["user_agent"], "ui-relay/3", "{s}");
    assert!(
        s["duration_s"].is_u64() && s["bytes_sent"].as_u64() > Some(0),
        "{s}"
    );
    let id = s["id"].as_str().unwrap().to_owned();
    let del = req(lo(http), "DELETE", &format!("/api/sessions/{id}"), &[]);
    assert_eq!(del.status, 200, "{}", del.body);
    ended
        .recv_timeout(Duration::from_secs(10))
        .expect("the relay stream ends after its disconnect");
    assert!(session_where(http, |s| s["id"] == id.as_str()).is_none());
    drop(srv);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A `/vod/` download is listed in `/api/sessions` while it is sent (a client that stopped
/// reading a large file) and its disconnect ends it before the end of the file.
#[test]
fn vod_downloads_are_sessions() {
    let dir = common::temp_dir("ui-vod-session");
    let root = dir.join("vod");
    std::fs::create_dir_all(&root).unwrap();
    let size = 32 << 20;
    let mut packet = [0u8; 188];
    packet[..4].copy_from_slice(&[0x47, 0x1F, 0xFF, 0x10]);
    std::fs::write(root.join("big.ts"), packet.repeat(size / 188)).unwrap();
    let http = free_port();
    let extra = format!("[vod]\nroots = [{:?}]\n", root.to_str().unwrap());
    let conf = dir.join("serve.toml");
    std::fs::write(&conf, config(http, "127.0.0.1", &extra)).unwrap();
    let srv = ServeChild::start(&conf, &[]);

    let mut hs = TcpStream::connect(lo(http)).unwrap();
    hs.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        hs,
        "GET /vod/big.ts HTTP/1.1\r\nHost: x\r\nUser-Agent: ui-vod/4\r\n\r\n"
    )
    .unwrap();
    let mut buf = vec![0u8; 65536];
    let n = hs.read(&mut buf).unwrap();
    assert!(
        String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&buf[..n])
    );
    let mut got = n;
    // The client stops reading: the download waits, listed.
    let s = wait_for("the download listed", Duration::from_secs(10), || {
        session_where(http, |s| {
            s["path"] == "/vod/big.ts" && s["bytes_sent"].as_u64() > Some(0)
        })
    });
    assert_eq!(s["protocol"], "http", "{s}");
    assert_eq!(s["client_address"], "127.0.0.1", "{s}");
    assert_eq!(s["client_port"], hs.local_addr().unwrap().port(), "{s}");
    assert_eq!(s["user_agent"], "ui-vod/4", "{s}");
    assert!(
        s["duration_s"].is_u64() && s.get("bitrate_bps").is_some(),
        "{s}"
    );
    let id = s["id"].as_str().unwrap().to_owned();
    let del = req(lo(http), "DELETE", &format!("/api/sessions/{id}"), &[]);
    assert_eq!(del.status, 200, "{}", del.body);
    // What was queued drains, then the connection ends short of the file.
    loop {
        match hs.read(&mut buf) {
            Ok(0) => break,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                panic!("the download still open 10 s after its disconnect")
            }
            Err(_) => break,
            Ok(n) => got += n,
        }
    }
    assert!(
        got < size,
        "{got} bytes of {size}: the download was not cut"
    );
    assert!(session_where(http, |s| s["id"] == id.as_str()).is_none());
    drop(srv);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A browser player's stream (`/play/<slug>.ts`, the transcoded variant) is listed in
/// `/api/sessions` with its bitrate, and its disconnect ends it.
#[test]
fn browser_streams_are_sessions() {
    let dir = common::temp_dir("ui-play-session");
    let http = free_port();
    let conf = dir.join("serve.toml");
    std::fs::write(&conf, config(http, "127.0.0.1", "")).unwrap();
    let srv = ServeChild::start(&conf, &[]);

    let mut hs = TcpStream::connect(lo(http)).unwrap();
    hs.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(
        hs,
        "GET /play/news.ts HTTP/1.1\r\nHost: x\r\nUser-Agent: ui-play/5\r\n\r\n"
    )
    .unwrap();
    let mut first = [0u8; 4096];
    let n = hs.read(&mut first).unwrap();
    assert!(
        String::from_utf8_lossy(&first[..n]).starts_with("HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&first[..n])
    );
    let port = hs.local_addr().unwrap().port();
    let ended = drain(hs);
    let s = wait_for(
        "the browser stream listed with a bitrate",
        Duration::from_secs(30),
        || {
            session_where(http, |s| {
                s["path"] == "/play/news.ts" && s["bitrate_bps"].as_u64() > Some(0)
            })
        },
    );
    assert_eq!(s["protocol"], "http", "{s}");
    assert_eq!(s["client_address"], "127.0.0.1", "{s}");
    assert_eq!(s["client_port"], port, "{s}");
    assert_eq!(s["user_agent"], "ui-play/5", "{s}");
    assert!(s["duration_s"].is_u64(), "{s}");
    let id = s["id"].as_str().unwrap().to_owned();
    let del = req(lo(http), "DELETE", &format!("/api/sessions/{id}"), &[]);
    assert_eq!(del.status, 200, "{}", del.body);
    ended
        .recv_timeout(Duration::from_secs(10))
        .expect("the browser stream ends after its disconnect");
    assert!(session_where(http, |s| s["id"] == id.as_str()).is_none());
    drop(srv);
    let _ = std::fs::remove_dir_all(&dir);
}

/// An HTTP reader of a `/live/` publish mount (ffmpeg publishing a test file) is listed in
/// `/api/sessions` with its bitrate, and its disconnect ends it.
#[test]
fn live_mount_readers_over_http_are_sessions() {
    let dir = common::temp_dir("ui-live-session");
    let http = free_port();
    // Publisher alice/secret (digest MD5("alice:dvb2ip:secret")).
    let extra = "[[publish]]\nname = \"x\"\n[[publish.publisher]]\nuser = \"alice\"\n\
                 password_digest = \"53ed74b6481a7a8645bcacc010ce5554\"\nfrom = [\"127.0.0.0/8\"]\n";
    let conf = dir.join("serve.toml");
    std::fs::write(&conf, config(http, "127.0.0.1", extra)).unwrap();
    let srv = ServeChild::start(&conf, &[]);
    let media = common::repo_file("../shared/media/temi_a_single_timeline.ts");
    /// The publisher, killed when the test ends (or fails).
    struct Publisher(std::process::Child);
    impl Drop for Publisher {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let ffmpeg = std::process::Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-nostdin", "-re"])
        .args(["-stream_loop", "-1", "-i"])
        .arg(&media)
        .args([
            "-c:v",
            "copy",
            "-c:a",
            "aac",
            "-f",
            "rtsp",
            "-rtsp_transport",
            "tcp",
        ])
        .arg(format!(
            "rtsp://alice:secret@127.0.0.1:{}/live/x",
            srv.rtsp_port
        ))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .map(Publisher)
        .expect("ffmpeg runs");
    wait_for("the mount live", Duration::from_secs(60), || {
        let p = get_json(http, "/api/publishers");
        p["publishers"]
            .as_array()?
            .iter()
            .any(|m| m["name"] == "x" && m["state"] == "live")
            .then_some(())
    });

    let mut hs = TcpStream::connect(lo(http)).unwrap();
    hs.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    write!(
        hs,
        "GET /live/x HTTP/1.1\r\nHost: x\r\nUser-Agent: ui-live/6\r\n\r\n"
    )
    .unwrap();
    let mut first = [0u8; 4096];
    let n = hs.read(&mut first).unwrap();
    assert!(
        String::from_utf8_lossy(&first[..n]).starts_with("HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&first[..n])
    );
    let port = hs.local_addr().unwrap().port();
    let ended = drain(hs);
    let s = wait_for(
        "the live reader listed with a bitrate",
        Duration::from_secs(30),
        || {
            session_where(http, |s| {
                s["path"] == "/live/x" && s["bitrate_bps"].as_u64() > Some(0)
            })
        },
    );
    assert_eq!(s["protocol"], "http", "{s}");
    assert_eq!(s["client_address"], "127.0.0.1", "{s}");
    assert_eq!(s["client_port"], port, "{s}");
    assert_eq!(s["user_agent"], "ui-live/6", "{s}");
    assert!(s["duration_s"].is_u64(), "{s}");
    let id = s["id"].as_str().unwrap().to_owned();
    let del = req(lo(http), "DELETE", &format!("/api/sessions/{id}"), &[]);
    assert_eq!(del.status, 200, "{}", del.body);
    ended
        .recv_timeout(Duration::from_secs(10))
        .expect("the live stream ends after its disconnect");
    assert!(session_where(http, |s| s["id"] == id.as_str()).is_none());
    drop(ffmpeg);
    drop(srv);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A TS of `tenths` × 100 ms: a PCR on PID 256 every 100 ms, payload packets between.
fn pcr_ts(tenths: u64) -> Vec<u8> {
    let mut data = Vec::new();
    for i in 0..=tenths {
        let mut p = [0xFFu8; 188];
        p[..4].copy_from_slice(&[0x47, 0x01, 0x00, 0x30]);
        p[4] = 7;
        p[5] = 0x10;
        p[6..12].copy_from_slice(
            &gstdvb2ip::proto::ts::Pcr {
                base: 90_000 + i * 9_000,
                extension: 0,
            }
            .encode(),
        );
        data.extend_from_slice(&p);
        for _ in 0..20 {
            data.extend_from_slice(&[0x47, 0x01, 0x01, 0x10]);
            data.extend_from_slice(&[0u8; 184]);
        }
    }
    data
}

/// The first live update of `/api/events`.
fn first_snapshot(port: u16) -> serde_json::Value {
    let mut ev = TcpStream::connect(lo(port)).unwrap();
    ev.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    write!(ev, "GET /api/events HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 16384];
    loop {
        let text = String::from_utf8_lossy(&got).into_owned();
        if let Some(data) = text
            .split("\ndata: ")
            .nth(1)
            .and_then(|d| d.split_once("\n\n"))
            .map(|(d, _)| d)
        {
            return serde_json::from_str(data).unwrap_or_else(|e| panic!("{e}: {data}"));
        }
        let n = ev.read(&mut buf).expect("an event");
        assert!(n > 0, "events closed: {text}");
        got.extend_from_slice(&buf[..n]);
    }
}

fn get_json(port: u16, path: &str) -> serde_json::Value {
    let a = req(lo(port), "GET", path, &[]);
    assert_eq!(a.status, 200, "{path}: {}", a.body);
    a.json()
}

/// The VOD library, relays, CSS channels and recordings in the API and the live updates;
/// per-session bitrates of RTP (direct and interleaved) and HTTP sessions; the WC requests a
/// CSS channel answered; the browser players of relays and files.
#[test]
fn library_relays_css_recordings_and_bitrates() {
    let dir = common::temp_dir("ui-panels");
    let root = dir.join("vod");
    std::fs::create_dir_all(&root).unwrap();
    let clip = pcr_ts(30);
    std::fs::write(root.join("clip.ts"), &clip).unwrap();
    let http = free_port();
    let cii = free_port();
    let wc = UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dead = free_port();
    let extra = format!(
        "[vod]\nroots = [{:?}]\n\n[[relay]]\nname = \"up\"\nsource = \"http://127.0.0.1:{dead}/none\"\nstart_timeout = 1\n",
        root.to_str().unwrap()
    );
    let text = config(http, "127.0.0.1", &extra).replacen(
        "# css = true",
        &format!("[channel.css]\ncii_port = {cii}\nwc_port = {wc}"),
        1,
    );
    assert!(text.contains("[channel.css]"));
    let conf = dir.join("serve.toml");
    std::fs::write(&conf, text).unwrap();
    let srv = ServeChild::start(&conf, &[]);

    // The library: size, duration from the PCRs, its URLs.
    let vod = get_json(http, "/api/vod");
    assert_eq!(vod.as_array().map(Vec::len), Some(1), "{vod}");
    let f = &vod[0];
    assert_eq!(f["path"], "clip.ts", "{f}");
    assert_eq!(f["size_bytes"], clip.len(), "{f}");
    assert_eq!(f["duration_s"], 3.0, "{f}");
    assert_eq!(f["url"], "/vod/clip.ts", "{f}");
    assert_eq!(f["play_url"], "/play/vod~636c69702e7473", "{f}");
    let page = req(lo(http), "GET", "/play/vod~636c69702e7473", &[]);
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(
        page.body.contains("/play/vod~636c69702e7473.ts"),
        "{}",
        page.body
    );
    assert_eq!(req(lo(http), "GET", "/play/vod~2e2e2f78", &[]).status, 404);

    // Relays: listed with their player; one whose upstream is down answers 503 with why.
    let relays = get_json(http, "/api/relays");
    assert_eq!(relays["relays"][0]["name"], "up", "{relays}");
    let page = req(lo(http), "GET", "/play/relay~up", &[]);
    assert_eq!(page.status, 200, "{}", page.body);
    let a = req(lo(http), "GET", "/play/relay~up.ts", &[]);
    assert_eq!(a.status, 503, "{} {}", a.head, a.body);
    assert!(a.body.contains("relay unavailable"), "{}", a.body);

    // The live update carries them all.
    let snap = first_snapshot(http);
    assert!(
        snap["taken_unix_ms"].as_u64() > Some(1_600_000_000_000),
        "{snap}"
    );
    assert_eq!(snap["vod_files"], 1, "{snap}");
    assert_eq!(snap["relays"][0]["name"], "up", "{snap}");
    assert_eq!(snap["relays"][0]["play_url"], "/play/relay~up", "{snap}");
    assert_eq!(snap["css"][0]["name"], "news", "{snap}");
    assert!(snap["recordings"].is_array(), "{snap}");

    // CSS: not playing yet; playing /ch/news starts its servers, which answer WC and announce
    // the channel's contentId and timelines.
    let css = get_json(http, "/api/css");
    assert_eq!(css[0]["playing"], false, "{css}");
    assert_eq!(css[0]["wc_url"], format!("udp://127.0.0.1:{wc}"), "{css}");
    assert_eq!(
        css[0]["cii_url"],
        format!("ws://127.0.0.1:{cii}/cii"),
        "{css}"
    );
    let news_rtp = UdpSocket::bind("127.0.0.1:0").unwrap();
    let np = news_rtp.local_addr().unwrap().port();
    let mut ch = Rtsp::connect(srv.rtsp_port);
    let d = ch.req("DESCRIBE", "ch/news", &[("Accept", "application/sdp")]);
    assert_eq!(d.status, 200, "{}", d.head);
    let r = ch.req(
        "SETUP",
        "ch/news/stream=0",
        &[(
            "Transport",
            &format!("RTP/AVP;unicast;client_port={np}-{}", np + 1),
        )],
    );
    assert_eq!(r.status, 200, "{}", r.head);
    let nsid = r.session();
    assert_eq!(ch.req("PLAY", "ch/news", &[("Session", &nsid)]).status, 200);
    let css = wait_for("the CSS channel playing", Duration::from_secs(30), || {
        let c = get_json(http, "/api/css");
        (c[0]["playing"] == true
            && c[0]["content_id"].is_string()
            && c[0]["timelines"].as_array().is_some_and(|t| !t.is_empty()))
        .then_some(c)
    });
    assert!(
        css[0]["content_id"].as_str().unwrap().starts_with("dvb://"),
        "{css}"
    );
    let wc_sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    wc_sock
        .set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let request = gstdvb2ip::proto::css::wc::WcMessage::request(1).encode();
    wait_for("a CSS-WC reply", Duration::from_secs(10), || {
        wc_sock.send_to(&request, ("127.0.0.1", wc)).unwrap();
        let mut b = [0u8; 64];
        wc_sock.recv(&mut b).ok().filter(|n| *n >= 32)
    });
    wait_for("the WC request counted", Duration::from_secs(10), || {
        let c = get_json(http, "/api/css");
        (c[0]["wc_requests_total"].as_u64() >= Some(1)).then_some(())
    });
    let m = req(lo(http), "GET", "/metrics", &[]).body;
    let n: f64 = m
        .lines()
        .find_map(|l| l.strip_prefix("dvb2ip_css_wc_requests_total{channel=\"news\"} "))
        .unwrap_or_else(|| panic!("the WC counter in {m}"))
        .parse()
        .unwrap();
    assert!(n >= 1.0, "{m}");

    // Bitrates: an RTSP/UDP session on the direct path, an RTSP/TCP one through the
    // media's pipeline, an HTTP stream; each measured from the bytes it was sent.
    let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
    let p = udp.local_addr().unwrap().port();
    let mut c = Rtsp::connect(srv.rtsp_port);
    let r = c.req(
        "SETUP",
        &format!("?{ONE}"),
        &[(
            "Transport",
            &format!("RTP/AVP;unicast;client_port={p}-{}", p + 1),
        )],
    );
    assert_eq!(r.status, 200, "{}", r.head);
    let sid = r.session();
    let url = c.url(&format!("stream={}", r.stream_id()));
    assert_eq!(
        c.request("PLAY", &url, &[("Session", &sid)])
            .unwrap()
            .status,
        200
    );
    let mut tcp = Rtsp::connect(srv.rtsp_port);
    let r = tcp.req(
        "SETUP",
        &format!("?{NEWS}"),
        &[("Transport", "RTP/AVP/TCP;unicast;interleaved=0-1")],
    );
    assert_eq!(r.status, 200, "{}", r.head);
    let tsid = r.session();
    let turl = tcp.url(&format!("stream={}", r.stream_id()));
    let play = tcp
        .request_interleaved("PLAY", &turl, &[("Session", &tsid)])
        .unwrap();
    assert_eq!(play.status, 200);
    // Read the interleaved data and the HTTP stream as clients do.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let st = stop.clone();
    let tcp_reader = std::thread::spawn(move || {
        while !st.load(std::sync::atomic::Ordering::Relaxed) {
            if (*tcp).next_item().is_err() {
                break;
            }
        }
    });
    let mut hs = TcpStream::connect(lo(http)).unwrap();
    hs.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(hs, "GET /?{NEWS} HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let st = stop.clone();
    let mut hr = hs.try_clone().unwrap();
    let http_reader = std::thread::spawn(move || {
        let mut b = [0u8; 65536];
        while !st.load(std::sync::atomic::Ordering::Relaxed) {
            match hr.read(&mut b) {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
    });
    for (what, want) in [
        ("rtsp/udp", format!("rtsp-{sid}")),
        ("rtsp/tcp", format!("rtsp-{tsid}")),
        ("http", String::new()),
    ] {
        let s = wait_for(
            &format!("a {what} session's bitrate"),
            Duration::from_secs(15),
            || {
                session_where(http, |s| {
                    s["protocol"] == what
                        && (want.is_empty() || s["id"] == want.as_str())
                        && s["bitrate_bps"].as_u64() > Some(100_000)
                })
            },
        );
        assert!(s["bytes_sent"].as_u64() > Some(10_000), "{s}");
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    drop(hs);

    // Recordings: started and stopped from the API; the file joins the library.
    let json = [("Content-Type", "application/json")];
    let a = req_body(
        lo(http),
        "POST",
        "/api/recordings",
        &json,
        r#"{"channel": "one", "name": "ui-rec"}"#,
    );
    assert_eq!(a.status, 201, "{}", a.body);
    let id = a.json()["id"].as_u64().expect("an id");
    let listed = get_json(http, "/api/recordings");
    assert!(
        listed
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["id"] == id && r["state"] == "recording"),
        "{listed}"
    );
    wait_for("bytes recorded", Duration::from_secs(15), || {
        (get_json(http, &format!("/api/recordings/{id}"))["bytes"].as_u64() > Some(0)).then_some(())
    });
    let a = req(lo(http), "DELETE", &format!("/api/recordings/{id}"), &[]);
    assert_eq!(a.status, 200, "{}", a.body);
    let vod = wait_for(
        "the recording in the library",
        Duration::from_secs(20),
        || {
            let v = get_json(http, "/api/vod");
            (v.as_array().map(Vec::len) == Some(2)).then_some(v)
        },
    );
    assert!(vod.to_string().contains("ui-rec"), "{vod}");
    drop(c);
    drop(ch);
    let _ = tcp_reader.join();
    let _ = http_reader.join();
    let _ = std::fs::remove_dir_all(&dir);
}

fn b64(s: &str) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let b = s.as_bytes();
    let mut o = String::new();
    for c in b.chunks(3) {
        let n = (c[0] as u32) << 16
            | (*c.get(1).unwrap_or(&0) as u32) << 8
            | *c.get(2).unwrap_or(&0) as u32;
        for i in 0..4 {
            if i <= c.len() {
                o.push(T[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                o.push('=');
            }
        }
    }
    o
}

/// Bytes a client received, timestamped, for its own bitrate over a window.
#[derive(Default)]
struct Received(std::sync::Mutex<std::collections::VecDeque<(Instant, u64)>>);

impl Received {
    /// Notes `n` more bytes now.
    fn add(&self, n: usize) {
        let mut q = self.0.lock().unwrap();
        let total = q.back().map_or(0, |(_, b)| *b) + n as u64;
        q.push_back((Instant::now(), total));
        while q.len() > 2 && q[1].0.elapsed() > Duration::from_secs(10) {
            q.pop_front();
        }
    }

    /// Bits per second received over the last `window` (`None` before the client has that
    /// much history).
    fn rate(&self, window: Duration) -> Option<f64> {
        let q = self.0.lock().unwrap();
        let (t1, b1) = *q.back()?;
        let &(t0, b0) = q.iter().find(|(t, _)| t1.duration_since(*t) <= window)?;
        let span = t1.duration_since(t0);
        (span >= window.mul_f64(0.9)).then(|| (b1 - b0) as f64 * 8.0 / span.as_secs_f64())
    }
}

/// Sessions on a `/ch/<name>` mount (gst-rtsp-server's shared channel media, no packer of
/// ours) have a real byte count: over UDP and over interleaved TCP the session's
/// `bitrate_bps` comes within 20 % of the rate its client measures of the RTP it receives, and
/// `bytes_sent` grows with it.
#[test]
fn channel_mount_sessions_report_the_rate_their_clients_receive() {
    let dir = common::temp_dir("ui-ch-bitrate");
    let http = free_port();
    let conf = dir.join("serve.toml");
    std::fs::write(&conf, config(http, "127.0.0.1", "")).unwrap();
    let srv = ServeChild::start(&conf, &[]);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut readers = Vec::new();

    // Over UDP: the client counts the RTP datagrams it receives (header and payload).
    let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
    udp.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let p = udp.local_addr().unwrap().port();
    let mut c = Rtsp::connect(srv.rtsp_port);
    let r = c.req(
        "SETUP",
        "ch/news/stream=0",
        &[(
            "Transport",
            &format!("RTP/AVP;unicast;client_port={p}-{}", p + 1),
        )],
    );
    assert_eq!(r.status, 200, "{}", r.head);
    let usid = r.session();
    assert_eq!(c.req("PLAY", "ch/news", &[("Session", &usid)]).status, 200);
    let got_udp = std::sync::Arc::new(Received::default());
    let (g, st) = (got_udp.clone(), stop.clone());
    readers.push(std::thread::spawn(move || {
        let mut b = [0u8; 65536];
        while !st.load(std::sync::atomic::Ordering::Relaxed) {
            if let Ok(n) = udp.recv(&mut b) {
                g.add(n);
            }
        }
    }));

    // Over TCP: the client counts the RTP of the interleaved frames on channel 0.
    let mut tcp = Rtsp::connect(srv.rtsp_port);
    let r = tcp.req(
        "SETUP",
        "ch/news/stream=0",
        &[("Transport", "RTP/AVP/TCP;unicast;interleaved=0-1")],
    );
    assert_eq!(r.status, 200, "{}", r.head);
    let tsid = r.session();
    let play = tcp.req_interleaved("PLAY", "ch/news", &[("Session", &tsid)]);
    assert_eq!(play.status, 200);
    let got_tcp = std::sync::Arc::new(Received::default());
    let (g, st) = (got_tcp.clone(), stop.clone());
    readers.push(std::thread::spawn(move || {
        while !st.load(std::sync::atomic::Ordering::Relaxed) {
            match (*tcp).next_item() {
                Ok(common::rtsp::Item::Frame(0, data)) => g.add(data.len()),
                Ok(_) => {}
                Err(_) => break,
            }
        }
    }));

    for (what, sid, got) in [("rtsp/udp", &usid, &got_udp), ("rtsp/tcp", &tsid, &got_tcp)] {
        let id = format!("rtsp-{sid}");
        let mut last = String::new();
        let s = wait_for(
            &format!("a {what} /ch/news session's bitrate near its client's"),
            Duration::from_secs(60),
            || {
                let s = session_where(http, |s| s["id"] == id.as_str())?;
                let client = got.rate(clients_window())?;
                let server = s["bitrate_bps"].as_f64()?;
                last = format!("server {server:.0} bit/s, client {client:.0} bit/s: {s}");
                ((server - client).abs() <= 0.2 * client && client > 100_000.0).then_some(s)
            },
        );
        eprintln!("{what}: {last}");
        assert_eq!(s["protocol"], what, "{s}");
        assert_eq!(s["channel"], "dvb2ip News", "{s}");
        assert_eq!(s["path"], "/ch/news/stream=0", "{s}");
        let first = s["bytes_sent"].as_u64().expect("bytes_sent");
        wait_for(
            &format!("{what} bytes_sent growing"),
            Duration::from_secs(30),
            || {
                let s = session_where(http, |s| s["id"] == id.as_str())?;
                (s["bytes_sent"].as_u64()? > first).then_some(())
            },
        );
    }
    // The metrics: sessions and bytes sent by transport, promtool-clean.
    let sample = |text: &str, name: &str| -> Option<f64> {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
    };
    let m = req(lo(http), "GET", "/metrics", &[]).body;
    for p in ["rtsp/udp", "rtsp/tcp"] {
        let sessions = format!("dvb2ip_client_sessions{{protocol=\"{p}\"}}");
        assert_eq!(sample(&m, &sessions), Some(1.0), "{sessions} in {m}");
        let bytes = format!("dvb2ip_client_sent_bytes_total{{protocol=\"{p}\"}}");
        assert!(sample(&m, &bytes) > Some(100_000.0), "{bytes} in {m}");
    }
    let mut promtool = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("promtool runs (apt-get install prometheus)");
    promtool
        .stdin
        .take()
        .unwrap()
        .write_all(m.as_bytes())
        .unwrap();
    let out = promtool.wait_with_output().unwrap();
    assert!(out.status.success(), "promtool: {out:?}\n{m}");
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let _ = c.req("TEARDOWN", "ch/news", &[("Session", &usid)]);
    drop(c);
    for r in readers {
        let _ = r.join();
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// The span over which a test client measures what it received: the server's window.
fn clients_window() -> Duration {
    dvb2ip::clients::BITRATE_WINDOW
}
