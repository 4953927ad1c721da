//! Tuner hotplug end to end (issue 12 item 4, dvb-scan digest §11.4, checklist 57–59): a
//! `dvb2ip serve --config FILE` child whose emulated adapters follow the file on SIGHUP. A
//! SAT>IP RTSP session on an adapter that leaves moves to the other DVB-T/T2 frontend in the
//! same session (RTP goes on, RTCP SES1 shows the other tuner), X_SATIPCAP and CONFIGID
//! change and come back with the adapter; with no frontend free an HTTP stream on it ends.
//! Everything stays on loopback.

mod common;

use std::io::{Read, Write};
use std::net::{TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::rtsp::Rtsp;
use gstdvb2ip::proto::satip::decode_rtcp_app_ses1;

const NEWS: &str = "freq=506&msys=dvbt&bw=8&pids=0,16,17,256,257,258";
const T2: &str = "freq=474&msys=dvbt2&bw=8&plp=0&pids=all";
/// Signal levels (percent) of the two DVB-T/T2 adapters, so that SES1 tells them apart.
const LEVEL_A: u32 = 90;
const LEVEL_B: u32 = 40;

/// The adapters of the test configurations.
fn adapter(name: &str, delsys: &str, level: u32) -> String {
    format!(
        "\n[[adapter]]\nname = \"{name}\"\ndelsys = [{delsys}]\nlock_time_ms = 100\n\
         signal_level = {level}\n"
    )
}

fn adapter_a() -> String {
    adapter("Emulated DVB-T/T2 A", "\"dvb-t\", \"dvb-t2\"", LEVEL_A)
}

fn adapter_b() -> String {
    adapter("Emulated DVB-T/T2 B", "\"dvb-t\", \"dvb-t2\"", LEVEL_B)
}

fn others() -> String {
    adapter("Emulated DVB-C", "\"dvb-c\"", 70)
        + &adapter("Emulated DVB-S/S2", "\"dvb-s\", \"dvb-s2\"", 70)
}

/// The default configuration on `http_port` with SSDP and real adapters off and `adapters`
/// instead of the default ones.
fn config(http_port: u16, adapters: &str) -> String {
    let mut out = String::new();
    let mut section = String::new();
    let mut in_adapter = false;
    for line in gstdvb2ip::tuners::config::DEFAULT_CONFIG.lines() {
        if line.starts_with('[') {
            section = line.to_owned();
            in_adapter = line == "[[adapter]]";
        }
        if in_adapter {
            if line.trim().is_empty() {
                in_adapter = false;
            }
            continue;
        }
        let l = match line {
            l if l.starts_with("http_port = ") => format!("http_port = {http_port}"),
            l if l.starts_with("hardware = ") => "hardware = \"off\"".to_owned(),
            "enabled = true" if section == "[ssdp]" => "enabled = false".to_owned(),
            l => l.to_owned(),
        };
        out.push_str(&l);
        out.push('\n');
    }
    out + adapters
}

/// `dvb2ip serve` with a configuration file of `adapters`; killed on drop.
struct Serve {
    srv: common::serve_child::ServeChild,
    conf: PathBuf,
    http_port: u16,
}

impl Serve {
    fn start(dir: &Path, adapters: &str) -> Serve {
        let http_port = common::serve_child::free_port();
        let conf = dir.join("dvb2ip.toml");
        std::fs::write(&conf, config(http_port, adapters)).unwrap();
        Serve {
            srv: common::serve_child::ServeChild::start(&conf, &[]),
            conf,
            http_port,
        }
    }

    fn wait_line(&mut self, needle: &str, limit: Duration) -> String {
        self.srv.wait_line(needle, limit)
    }

    /// Writes a new configuration and sends SIGHUP; waits for the reload's report.
    fn reload(&mut self, adapters: &str) {
        std::fs::write(&self.conf, config(self.http_port, adapters)).unwrap();
        let st = Command::new("kill")
            .args(["-HUP", &self.srv.child.id().to_string()])
            .status()
            .unwrap();
        assert!(st.success());
        self.wait_line("dvb2ip: reload: ", Duration::from_secs(60));
    }

    /// The description: (X_SATIPCAP, configId).
    fn description(&self) -> (String, String) {
        let body = common::http::get(self.http_port, "/desc.xml").body;
        let body = String::from_utf8(body).unwrap();
        let between = |a: &str, b: &str| {
            let s = body
                .split_once(a)
                .unwrap_or_else(|| panic!("{a} in {body}"))
                .1;
            s.split_once(b).unwrap().0.to_owned()
        };
        (
            between("urn:ses-com:satip\">", "</satip:X_SATIPCAP>"),
            between("configId=\"", "\""),
        )
    }
}

fn wait_for(what: &str, limit: Duration, mut f: impl FnMut() -> bool) {
    let end = Instant::now() + limit;
    while !f() {
        assert!(Instant::now() < end, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// An even/odd UDP port pair on loopback: (rtp, rtcp).
fn udp_pair() -> (UdpSocket, UdpSocket) {
    for _ in 0..100 {
        let a = UdpSocket::bind("127.0.0.1:0").unwrap();
        let p = a.local_addr().unwrap().port();
        if !p.is_multiple_of(2) || p == u16::MAX {
            continue;
        }
        if let Ok(b) = UdpSocket::bind(("127.0.0.1", p + 1)) {
            a.set_read_timeout(Some(Duration::from_millis(200)))
                .unwrap();
            b.set_read_timeout(Some(Duration::from_millis(200)))
                .unwrap();
            return (a, b);
        }
    }
    panic!("no even/odd UDP port pair");
}

/// The `tuner=` field of SES1: (fe, level, lock, quality).
fn tuner_of(status: &str) -> (u32, u32, u32, u32) {
    let t = status
        .split(';')
        .find_map(|f| f.strip_prefix("tuner="))
        .unwrap_or_else(|| panic!("no tuner= in {status}"));
    let v: Vec<u32> = t.split(',').take(4).map(|x| x.parse().unwrap()).collect();
    (v[0], v[1], v[2], v[3])
}

/// Reads RTCP until an APP SES1 satisfies `ok`; returns its status string.
fn ses1_until(rtcp: &UdpSocket, limit: Duration, ok: impl Fn(&str) -> bool) -> String {
    let end = Instant::now() + limit;
    let mut buf = [0u8; 2048];
    let mut last = String::new();
    while Instant::now() < end {
        let Ok(n) = rtcp.recv(&mut buf) else { continue };
        let d = &buf[..n];
        let mut off = 0;
        while off + 4 <= d.len() {
            let len = (usize::from(u16::from_be_bytes([d[off + 2], d[off + 3]])) + 1) * 4;
            if d[off + 1] == 204 {
                if let Some((_, s)) = decode_rtcp_app_ses1(&d[off..]) {
                    if ok(&s) {
                        return s;
                    }
                    last = s;
                }
            }
            off += len;
        }
    }
    panic!("no matching SES1 within {limit:?}; last {last:?}");
}

/// Drops what the socket holds (RTP from before a switch).
fn drain(sock: &UdpSocket) {
    sock.set_nonblocking(true).unwrap();
    let mut buf = [0u8; 2048];
    while sock.recv(&mut buf).is_ok() {}
    sock.set_nonblocking(false).unwrap();
}

/// Waits (bounded) until `n` RTP datagrams carrying TS packets arrived.
fn rtp_flows(rtp: &UdpSocket, n: usize, limit: Duration) {
    let end = Instant::now() + limit;
    let mut buf = [0u8; 2048];
    let mut got = 0;
    while got < n {
        assert!(
            Instant::now() < end,
            "only {got} RTP packets with TS within {limit:?}"
        );
        if let Ok(len) = rtp.recv(&mut buf) {
            assert!(len >= 12 && buf[0] == 0x80, "RTP");
            if len >= 12 + 188 && buf[12] == 0x47 {
                got += 1;
            }
        }
    }
}

#[test]
fn checklist_57_58_59_a_session_moves_when_its_adapter_is_dropped_by_reload() {
    let dir = common::temp_dir("hotplug-rtsp");
    let all = adapter_a() + &adapter_b() + &others();
    let mut srv = Serve::start(&dir, &all);
    let (caps0, id0) = srv.description();
    assert_eq!(caps0, "DVBS2-1,DVBT2-2,DVBC-1");

    // A session plays on adapter A (the first DVB-T/T2 frontend).
    let (rtp, rtcp) = udp_pair();
    let p = rtp.local_addr().unwrap().port();
    let mut c = Rtsp::connect(srv.srv.rtsp_port);
    let r = c.req(
        "SETUP",
        &format!("?{NEWS}"),
        &[(
            "Transport",
            &format!("RTP/AVP;unicast;client_port={p}-{}", p + 1),
        )],
    );
    assert_eq!(r.status, 200, "{r:?}");
    let (sid, sess) = (r.stream_id(), r.session());
    let r = c.req("PLAY", &format!("stream={sid}"), &[("Session", &sess)]);
    assert_eq!(r.status, 200, "{r:?}");
    let before = ses1_until(&rtcp, Duration::from_secs(60), |s| tuner_of(s).2 == 1);
    let (fe_a, level_a, _, _) = tuner_of(&before);
    rtp_flows(&rtp, 200, Duration::from_secs(30));

    // A leaves the configuration: the session moves to B.
    srv.reload(&(adapter_b() + &others()));
    wait_for("X_SATIPCAP without A", Duration::from_secs(30), || {
        srv.description().0 == "DVBS2-1,DVBT2-1,DVBC-1"
    });
    let (_, id1) = srv.description();
    assert_ne!(id1, id0, "CONFIGID changes with the tuner set");
    let after = ses1_until(&rtcp, Duration::from_secs(60), |s| {
        let t = tuner_of(s);
        t.2 == 1 && t.1 != level_a
    });
    let (fe_b, level_b, _, _) = tuner_of(&after);
    drain(&rtp);
    assert!(
        level_b < level_a,
        "B's level ({LEVEL_B} %) after A's ({LEVEL_A} %): {before} -> {after}"
    );
    assert!(fe_b >= 1 && fe_a >= 1);
    // RTP goes on in the same session, which still answers.
    rtp_flows(&rtp, 200, Duration::from_secs(30));
    // OPTIONS keeps the session alive (200); GET_PARAMETER is not implemented (501, as
    // before) but the session is known (no 454); both echo the same session.
    let id = sess.split(';').next().unwrap().to_owned();
    for (m, want) in [("OPTIONS", 200), ("GET_PARAMETER", 501)] {
        let r = c.req(m, "", &[("Session", &sess)]);
        assert_eq!(r.status, want, "{m}: {r:?}");
        assert_eq!(r.session_id(), Some(id.as_str()), "{m}: {r:?}");
    }
    // DESCRIBE of the session's stream reports the new tuner too.
    let r = c.req(
        "DESCRIBE",
        &format!("stream={sid}"),
        &[("Accept", "application/sdp"), ("Session", &sess)],
    );
    assert_eq!(r.status, 200, "{r:?}");
    let level = |sdp: &str| {
        sdp.split("tuner=")
            .nth(1)
            .and_then(|t| t.split(',').nth(1))
            .and_then(|l| l.parse::<u32>().ok())
    };
    assert_eq!(level(&r.body), Some(level_b), "{}", r.body);

    // A comes back: X_SATIPCAP returns; the session stays on B.
    srv.reload(&all);
    wait_for("X_SATIPCAP with A", Duration::from_secs(30), || {
        srv.description().0 == caps0
    });
    let (_, id2) = srv.description();
    assert_ne!(id2, id1);
    let still = ses1_until(&rtcp, Duration::from_secs(30), |s| tuner_of(s).2 == 1);
    assert_eq!(tuner_of(&still).1, level_b, "{still}");
    rtp_flows(&rtp, 50, Duration::from_secs(30));

    // A file that does not parse changes nothing and names file and line.
    std::fs::write(
        &srv.conf,
        config(srv.http_port, &all) + "\n[[adapter]]\nname = 3\n",
    )
    .unwrap();
    Command::new("kill")
        .args(["-HUP", &srv.srv.child.id().to_string()])
        .status()
        .unwrap();
    let line = srv.wait_line("dvb2ip: reload: ", Duration::from_secs(60));
    assert!(
        line.contains(&format!("{}:", srv.conf.display()))
            && line.contains("configuration unchanged"),
        "{line}"
    );
    assert_eq!(srv.description(), (caps0, id2));

    let r = c.req("TEARDOWN", &format!("stream={sid}"), &[("Session", &sess)]);
    assert_eq!(r.status, 200);
    drop(srv);
    let _ = std::fs::remove_dir_all(&dir);
}

/// An HTTP stream: reads in a thread, reports byte counts and the end.
fn http_stream(port: u16, query: &str) -> mpsc::Receiver<Option<usize>> {
    let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    write!(c, "GET /?{query} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match c.read(&mut buf) {
                Ok(0) | Err(_) => {
                    let _ = tx.send(None);
                    return;
                }
                Ok(n) => {
                    if tx.send(Some(n)).is_err() {
                        return;
                    }
                }
            }
        }
    });
    rx
}

/// Waits until `n` more bytes came (bounded); panics if the stream ended.
fn http_flows(rx: &mpsc::Receiver<Option<usize>>, n: usize) {
    let end = Instant::now() + Duration::from_secs(60);
    let mut got = 0;
    while got < n {
        let left = end.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(Some(k)) => got += k,
            Ok(None) => panic!("HTTP stream ended after {got} bytes"),
            Err(_) => panic!("only {got} bytes within 60 s"),
        }
    }
}

#[test]
fn checklist_58_without_a_free_frontend_the_http_stream_ends() {
    let dir = common::temp_dir("hotplug-http");
    let all = adapter_a() + &adapter_b() + &others();
    let mut srv = Serve::start(&dir, &all);
    // 506 MHz DVB-T on A, 474 MHz DVB-T2 on B: no DVB-T/T2 frontend is left free.
    let on_a = http_stream(srv.http_port, NEWS);
    http_flows(&on_a, 188 * 1000);
    let on_b = http_stream(srv.http_port, T2);
    http_flows(&on_b, 188 * 1000);

    srv.reload(&(adapter_b() + &others()));
    // The stream on A ends (bounded); the one on B goes on.
    let end = Instant::now() + Duration::from_secs(30);
    loop {
        let left = end.saturating_duration_since(Instant::now());
        match on_a.recv_timeout(left) {
            Ok(Some(_)) => continue,
            Ok(None) => break,
            Err(_) => panic!("the HTTP stream on the removed adapter did not end"),
        }
    }
    http_flows(&on_b, 188 * 1000);
    drop(srv);
    let _ = std::fs::remove_dir_all(&dir);
}
