//! Authenticated publishing (issue 14 item 2) between real processes on loopback: `ffmpeg -f
//! rtsp` and gst `rtspclientsink` publish into `dvb2ip serve`'s `/live/<name>` with RTSP Digest,
//! `ffprobe` and gst `rtspsrc` read the mount while the publisher is live, wrong or missing
//! credentials get 401, a second publisher is refused (455), and a `[[push]]` of one server
//! lands on a second one. State and counters are read from `GET /api/publishers`.

mod common;

use std::net::UdpSocket;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::rtsp::Rtsp;
use common::serve_child::{free_port, ServeChild};

/// Bound of every wait: a slow machine takes longer, it does not get less.
const LIMIT: Duration = Duration::from_secs(90);

/// `MD5("alice:dvb2ip:secret")` (spec digest §6.2).
const ALICE_DIGEST: &str = "53ed74b6481a7a8645bcacc010ce5554";

fn media() -> String {
    common::repo_file("../shared/media/temi_a_single_timeline.ts")
        .to_string_lossy()
        .into_owned()
}

/// The embedded configuration without SSDP, HTTP on `http_port`, then `extra`.
fn config(http_port: u16, extra: &str) -> String {
    let text = gstdvb2ip::tuners::config::DEFAULT_CONFIG;
    let ssdp = text.find("[ssdp]").expect("[ssdp]");
    format!(
        "{}{}",
        &text[..ssdp],
        text[ssdp..].replacen("enabled = true", "enabled = false", 1)
    )
    .replacen("http_port = 8875", &format!("http_port = {http_port}"), 1)
        + extra
}

/// A `[[publish]]` mount `/live/<name>` with publisher alice/secret.
fn publish_mount(name: &str) -> String {
    format!(
        "\n[[publish]]\nname = \"{name}\"\n[[publish.publisher]]\nuser = \"alice\"\npassword_digest = \"{ALICE_DIGEST}\"\nfrom = [\"127.0.0.0/8\"]\n"
    )
}

struct Server {
    srv: ServeChild,
    http_port: u16,
}

impl Server {
    fn start(dir: &Path, tag: &str, extra: &str) -> Server {
        let http_port = free_port();
        let conf = dir.join(format!("{tag}.toml"));
        std::fs::write(&conf, config(http_port, extra)).unwrap();
        let srv = ServeChild::start(&conf, &[]);
        Server { srv, http_port }
    }

    fn rtsp_url(&self, auth: &str, path: &str) -> String {
        format!("rtsp://{auth}127.0.0.1:{}{path}", self.srv.rtsp_port)
    }

    /// `GET /api/publishers`.
    fn api(&self) -> serde_json::Value {
        let a = common::http::get(self.http_port, "/api/publishers");
        assert_eq!(a.status, 200, "{}", a.head);
        serde_json::from_slice(&a.body).expect("JSON")
    }

    fn mount(&self, name: &str) -> serde_json::Value {
        self.api()["publishers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("no publish mount {name}"))
    }

    fn wait_state(&self, name: &str, state: &str) -> serde_json::Value {
        let end = Instant::now() + LIMIT;
        loop {
            let m = self.mount(name);
            if m["state"] == state {
                return m;
            }
            assert!(Instant::now() < end, "{name} not {state}: {m}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// A child killed on drop.
struct Kill(Child);

impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// SIGINT to `child`, then waits (bounded) for it to end.
fn interrupt(child: &mut Child) {
    // SAFETY: kill(2) on our own child's pid.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let end = Instant::now() + LIMIT;
    while child.try_wait().unwrap().is_none() {
        assert!(Instant::now() < end, "child still running after SIGINT");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `ffmpeg -re` publishing the test file (H.264 and AAC) in a loop to `url`.
fn ffmpeg_publish(url: &str, transport: &str) -> Command {
    let mut c = Command::new("ffmpeg");
    c.args(["-hide_banner", "-loglevel", "info", "-nostdin", "-re"])
        .args(["-stream_loop", "-1", "-i"])
        .arg(media())
        // Video copied; the file's ADTS AAC has no global header, which FFmpeg's RTSP muxer
        // needs for its SDP ("AAC with no global headers is currently not supported"), so the
        // audio is encoded again.
        .args(["-c:v", "copy", "-c:a", "aac"])
        .args(["-f", "rtsp", "-rtsp_transport", transport])
        .arg(url);
    c
}

/// Runs `cmd` to its end, killed after `limit`: its output.
fn run_bounded(mut cmd: Command, limit: Duration) -> Output {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    let end = Instant::now() + limit;
    while child.try_wait().unwrap().is_none() {
        if Instant::now() >= end {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().unwrap()
}

/// The codec names of `v`'s streams.
fn codecs(v: &serde_json::Value) -> Vec<String> {
    v["streams"]
        .as_array()
        .map(|s| {
            s.iter()
                .filter_map(|s| s["codec_name"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// An ANNOUNCE of a one-stream H.264 SDP to `path` with `headers`.
fn announce(c: &mut Rtsp, path: &str, headers: &[(&str, &str)]) -> common::rtsp::Resp {
    let sdp = "v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=No Name\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\na=control:streamid=0\r\n";
    c.cseq += 1;
    let mut m = format!(
        "ANNOUNCE {} RTSP/1.0\r\nCSeq: {}\r\nContent-Type: application/sdp\r\nContent-Length: {}\r\n",
        c.url(path.trim_start_matches('/')),
        c.cseq,
        sdp.len()
    );
    for (k, v) in headers {
        m += &format!("{k}: {v}\r\n");
    }
    m += "\r\n";
    m += sdp;
    c.raw(&m)
}

#[test]
fn ffmpeg_publishes_with_digest_readers_play_and_a_second_publisher_is_refused() {
    let dir = common::temp_dir("publish-ffmpeg");
    let s = Server::start(&dir, "serve", &publish_mount("x"));
    assert_eq!(s.mount("x")["state"], "idle");

    // Missing credentials: 401 with the Digest challenge, nothing announced.
    let mut c = Rtsp::connect(s.srv.rtsp_port);
    let r = announce(&mut c, "/live/x", &[]);
    assert_eq!(r.status, 401, "{}", r.head);
    let challenge = r.header("WWW-Authenticate").unwrap_or_default().to_owned();
    assert!(
        challenge.starts_with("Digest realm=\"dvb2ip\", nonce=\""),
        "{challenge}"
    );
    // Wrong credentials (a made-up response): 401 again.
    let nonce = challenge.split('"').nth(3).unwrap().to_owned();
    let wrong = format!(
        "Digest username=\"alice\", realm=\"dvb2ip\", nonce=\"{nonce}\", uri=\"{}\", response=\"00000000000000000000000000000000\"",
        c.url("live/x")
    );
    let r = announce(&mut c, "/live/x", &[("Authorization", &wrong)]);
    assert_eq!(r.status, 401, "{}", r.head);
    // Unconfigured mount: 404, never 500.
    let r = announce(&mut c, "/live/nothing", &[]);
    assert_eq!(r.status, 404, "{}", r.head);
    // Nobody publishes yet: readers get 404.
    let r = c.req("DESCRIBE", "live/x", &[("Accept", "application/sdp")]);
    assert_eq!(r.status, 404, "{}", r.head);
    drop(c);

    // ffmpeg with a wrong password gives up on the 401.
    let out = run_bounded(
        ffmpeg_publish(&s.rtsp_url("alice:wrong@", "/live/x"), "udp"),
        LIMIT,
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "ffmpeg with a wrong password: {err}");
    assert!(err.contains("401"), "{err}");
    assert_eq!(s.mount("x")["state"], "idle");

    // The right credentials: live.
    let _publisher = Kill(
        ffmpeg_publish(&s.rtsp_url("alice:secret@", "/live/x"), "udp")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("ffmpeg runs"),
    );
    let live = s.wait_state("x", "live");
    assert_eq!(live["user"], "alice");
    let publisher = live["publisher"].as_str().unwrap().to_owned();
    assert!(publisher.starts_with("127.0.0.1:"), "{live}");

    // Readers: ffprobe over RTSP and HTTP, gst rtspsrc.
    let v = common::ffprobe(&s.rtsp_url("", "/live/x"), &["-rtsp_transport", "tcp"]);
    let found = codecs(&v);
    assert!(
        found.contains(&"h264".to_string()) && found.contains(&"aac".to_string()),
        "{v}"
    );
    let v = common::ffprobe(&format!("http://127.0.0.1:{}/live/x", s.http_port), &[]);
    assert!(codecs(&v).contains(&"h264".to_string()), "{v}");
    let mut gst = common::gst_launch();
    gst.args(["-v", "rtspsrc"])
        .arg(format!("location={}", s.rtsp_url("", "/live/x")))
        .args([
            "protocols=tcp",
            "!",
            "rtpmp2tdepay",
            "!",
            "fakesink",
            "sync=false",
            "silent=false",
        ]);
    // rtspsrc receives the published TS. (Through tsdemux ! h264parse the sink saw only gap
    // events in this setup while ffprobe decodes the same mount: not resolved yet.)
    common::run_until(gst, &dir.join("rtspsrc.log"), LIMIT, |t| {
        t.contains("video/mpegts") && t.matches("last-message = chain").count() >= 25
    });
    let m = s.mount("x");
    assert!(m["bytes_in"].as_u64().unwrap() > 0, "{m}");
    assert!(m["bytes_out"].as_u64().unwrap() > 0, "{m}");

    // A second publisher, right credentials: refused, the first one stays.
    let out = run_bounded(
        ffmpeg_publish(&s.rtsp_url("alice:secret@", "/live/x"), "tcp"),
        LIMIT,
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "second publisher: {err}");
    assert!(err.contains("455"), "{err}");
    let m = s.mount("x");
    assert_eq!(m["publisher"], publisher.as_str(), "{m}");
    assert_eq!(m["state"], "live");
    assert!(m["refused"].as_u64().unwrap() >= 1, "{m}");

    // The publisher leaves (ffmpeg ends with TEARDOWN on SIGINT): the mount goes idle,
    // readers get 404 again.
    let mut publisher_proc = _publisher;
    interrupt(&mut publisher_proc.0);
    let m = s.wait_state("x", "idle");
    assert_eq!(m["stops"], 1, "{m}");
    let mut c = Rtsp::connect(s.srv.rtsp_port);
    let r = c.req("DESCRIBE", "live/x", &[("Accept", "application/sdp")]);
    assert_eq!(r.status, 404, "{}", r.head);
}

#[test]
fn rtspclientsink_publishes() {
    let dir = common::temp_dir("publish-gst");
    let s = Server::start(&dir, "serve", &publish_mount("cam"));
    let mut gst = common::gst_launch();
    gst.args([
        "-q",
        "videotestsrc",
        "is-live=true",
        "!",
        "video/x-raw,width=320,height=240,framerate=25/1",
        "!",
        "x264enc",
        "tune=zerolatency",
        "key-int-max=25",
        "!",
        "h264parse",
        "!",
        "rtspclientsink",
    ])
    .arg(format!("location={}", s.rtsp_url("", "/live/cam")))
    .args(["user-id=alice", "user-pw=secret", "protocols=tcp"])
    .stdout(Stdio::null())
    .stderr(Stdio::null());
    let _publisher = Kill(gst.spawn().expect("gst-launch runs"));
    let live = s.wait_state("cam", "live");
    assert_eq!(live["user"], "alice");
    let v = common::ffprobe(&s.rtsp_url("", "/live/cam"), &["-rtsp_transport", "tcp"]);
    assert!(codecs(&v).contains(&"h264".to_string()), "{v}");
}

#[test]
fn a_push_lands_on_a_second_server() {
    let dir = common::temp_dir("publish-push");
    let edge = Server::start(&dir, "edge", &publish_mount("news"));
    let origin = Server::start(
        &dir,
        "origin",
        &format!(
            "\n[[push]]\nname = \"news-out\"\nsource = \"/ch/news\"\ntarget = \"{}\"\n",
            edge.rtsp_url("alice:secret@", "/live/news")
        ),
    );
    let live = edge.wait_state("news", "live");
    assert_eq!(live["user"], "alice");
    let end = Instant::now() + LIMIT;
    let push = loop {
        let p = origin.api()["pushes"][0].clone();
        if p["state"] == "live" {
            break p;
        }
        assert!(Instant::now() < end, "push not live: {p}");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(push["target"], edge.rtsp_url("", "/live/news"));
    let v = common::ffprobe(
        &edge.rtsp_url("", "/live/news"),
        &["-rtsp_transport", "tcp"],
    );
    assert!(
        v["streams"].as_array().is_some_and(|s| !s.is_empty()),
        "{v}"
    );
}

#[test]
fn bad_publish_entries_name_the_file_and_line() {
    let dir = common::temp_dir("publish-conf");
    let f = dir.join("bad.toml");
    std::fs::write(
        &f,
        "[server]\nbind = \"127.0.0.1\"\n\n[[publish]]\nname = \"x\"\n[[publish.publisher]]\nuser = \"alice\"\npassword_digest = \"nothex\"\n",
    )
    .unwrap();
    let out = Command::new(common::dvb2ip_bin())
        .args(["check-config"])
        .arg(&f)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&format!("{}:8:", f.display())), "{err}");
    assert!(err.contains("password_digest"), "{err}");
}

/// Digest `Authorization` for alice on `method uri` after the challenge `www` (spec §6.2).
fn alice_digest(www: &str, method: &str, uri: &str) -> String {
    let nonce = www
        .split("nonce=\"")
        .nth(1)
        .and_then(|n| n.split('"').next())
        .expect("a nonce in the challenge");
    let ha2 = dvb2ip::publish::auth::md5_hex(&format!("{method}:{uri}"));
    let response = dvb2ip::publish::auth::md5_hex(&format!("{ALICE_DIGEST}:{nonce}:{ha2}"));
    format!(
        "Digest username=\"alice\", realm=\"dvb2ip\", nonce=\"{nonce}\", uri=\"{uri}\", response=\"{response}\""
    )
}

/// Seven TS null packets in an RTP packet (MP2T, PT 33) with sequence number `seq`.
fn rtp_ts(seq: u16) -> Vec<u8> {
    let mut p = vec![0x80, 33];
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&(u32::from(seq) * 3600).to_be_bytes());
    p.extend_from_slice(&0x1234_5678u32.to_be_bytes());
    for _ in 0..7 {
        let mut ts = [0xffu8; 188];
        ts[..4].copy_from_slice(&[0x47, 0x1f, 0xff, 0x10]);
        p.extend_from_slice(&ts);
    }
    p
}

/// Waits (bounded) until `cond` holds on mount `name`'s report; the report.
fn wait_mount(
    srv: &Server,
    name: &str,
    what: &str,
    mut cond: impl FnMut(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let end = Instant::now() + LIMIT;
    loop {
        let m = srv.mount(name);
        if cond(&m) {
            return m;
        }
        assert!(Instant::now() < end, "{name}: {what}: {m}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A raw publisher of an MP2T stream on `/live/x` over UDP, recording: its RTSP connection
/// (kept open), its RTP socket and the server's RTP port.
fn raw_publisher(srv: &Server) -> (Rtsp, UdpSocket, u16) {
    let mut c = Rtsp::connect(srv.srv.rtsp_port);
    let uri = c.url("live/x");
    let sdp = "v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=No Name\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=video 0 RTP/AVP 33\r\na=rtpmap:33 MP2T/90000\r\na=control:streamid=0\r\n";
    let announce = |c: &mut Rtsp, auth: Option<&str>| {
        c.cseq += 1;
        let auth = auth.map_or(String::new(), |a| format!("Authorization: {a}\r\n"));
        let m = format!(
            "ANNOUNCE {uri} RTSP/1.0\r\nCSeq: {}\r\nContent-Type: application/sdp\r\n{auth}Content-Length: {}\r\n\r\n{sdp}",
            c.cseq,
            sdp.len()
        );
        c.raw(&m)
    };
    let r = announce(&mut c, None);
    assert_eq!(r.status, 401, "{r:?}");
    let www = r.header("WWW-Authenticate").unwrap().to_owned();
    let r = announce(&mut c, Some(&alice_digest(&www, "ANNOUNCE", &uri)));
    assert_eq!(r.status, 200, "{r:?}");
    let rtp = UdpSocket::bind("127.0.0.1:0").unwrap();
    let p = rtp.local_addr().unwrap().port();
    let setup_uri = format!("{uri}/streamid=0");
    let r = c.req(
        "SETUP",
        "live/x/streamid=0",
        &[
            (
                "Transport",
                &format!("RTP/AVP/UDP;unicast;client_port={p}-{};mode=record", p + 1),
            ),
            ("Authorization", &alice_digest(&www, "SETUP", &setup_uri)),
        ],
    );
    assert_eq!(r.status, 200, "{r:?}");
    let session = r.session();
    let server_port: u16 = r
        .header("Transport")
        .and_then(|t| t.split("server_port=").nth(1))
        .and_then(|p| p.split(['-', ';']).next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("server_port in {r:?}"));
    let r = c.req(
        "RECORD",
        "live/x",
        &[
            ("Session", &session),
            ("Authorization", &alice_digest(&www, "RECORD", &uri)),
        ],
    );
    assert_eq!(r.status, 200, "{r:?}");
    (c, rtp, server_port)
}

#[test]
fn checklist_51_publisher_udp_from_another_address_is_dropped_and_counted() {
    let dir = common::temp_dir("publish_foreign");
    let srv = Server::start(&dir, "foreign", &publish_mount("x"));
    let (_c, rtp, server_port) = raw_publisher(&srv);
    let to = ("127.0.0.1", server_port);

    // From 127.0.0.2 (another address than the RTSP connection's): dropped, counted.
    let foreign = UdpSocket::bind("127.0.0.2:0").expect("bind 127.0.0.2");
    for seq in 0..10u16 {
        foreign.send_to(&rtp_ts(seq), to).unwrap();
    }
    wait_mount(&srv, "x", "10 foreign datagrams counted", |m| {
        m["foreign_dropped"] == 10
    });
    // From the publisher's address: received. Only these ten reach the mount.
    for seq in 10..20u16 {
        rtp.send_to(&rtp_ts(seq), to).unwrap();
    }
    let m = wait_mount(&srv, "x", "the publisher's packets received", |m| {
        m["bytes_in"].as_u64() >= Some(10 * 7 * 188)
    });
    assert_eq!(m["bytes_in"], 10 * 7 * 188, "{m}");
    assert_eq!(m["foreign_dropped"], 10, "{m}");
    let metrics = common::http::get(srv.http_port, "/metrics").text();
    assert!(
        metrics.contains("dvb2ip_publish_foreign_dropped_total{mount=\"x\"} 10"),
        "{metrics}"
    );
}

#[test]
fn a_udp_publisher_that_vanishes_frees_the_mount() {
    let dir = common::temp_dir("publish_vanish");
    // Sessions outlive every wait of this test (LIMIT): only the silence can free the mount.
    let http_port = free_port();
    let conf = dir.join("vanish.toml");
    std::fs::write(
        &conf,
        config(http_port, &publish_mount("x")).replacen(
            "session_timeout = 60",
            "session_timeout = 600",
            1,
        ),
    )
    .unwrap();
    let srv = Server {
        srv: ServeChild::start(&conf, &[]),
        http_port,
    };
    let url = srv.rtsp_url("alice:secret@", "/live/x");
    let first = Kill(
        ffmpeg_publish(&url, "udp")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("ffmpeg"),
    );
    let live = srv.wait_state("x", "live");
    let first_peer = live["publisher"].clone();
    // SIGKILL: no TEARDOWN, no BYE; the RTSP connection closes, but FFmpeg's UDP session
    // stays with the server until its RTP stops for PUBLISHER_SILENCE.
    drop(first);
    srv.wait_state("x", "idle");
    let _second = Kill(
        ffmpeg_publish(&url, "udp")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("ffmpeg"),
    );
    let m = wait_mount(&srv, "x", "the second publisher live", |m| {
        m["state"] == "live" && m["publisher"] != first_peer
    });
    assert_eq!(m["starts"], 2, "{m}");
    drop(_second);
    srv.wait_state("x", "idle");

    // A publisher whose host vanishes: its RTSP connection stays open, its RTP stops. After
    // PUBLISHER_SILENCE (5 s) without RTP the mount is free and the next publisher is taken.
    let (c, rtp, server_port) = raw_publisher(&srv);
    for seq in 0..10u16 {
        rtp.send_to(&rtp_ts(seq), ("127.0.0.1", server_port))
            .unwrap();
    }
    let m = srv.wait_state("x", "live");
    let silent_peer = m["publisher"].clone();
    let _third = Kill(
        ffmpeg_publish(&url, "udp")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("ffmpeg"),
    );
    // FFmpeg is refused (455) while the silent one holds the mount; it is started again until
    // it is accepted.
    let mut third = _third;
    let m = wait_mount(&srv, "x", "a publisher after the silent one", |m| {
        if third.0.try_wait().ok().flatten().is_some() {
            third = Kill(
                ffmpeg_publish(&url, "udp")
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .expect("ffmpeg"),
            );
        }
        m["state"] == "live" && m["publisher"] != silent_peer
    });
    assert_eq!(m["starts"], 4, "{m}");
    let mut srv = srv;
    srv.srv
        .wait_line("no RTP from the publisher for 5 s", LIMIT);
    srv.srv.wait_line(
        &format!("publisher {} left", silent_peer.as_str().unwrap()),
        LIMIT,
    );
    drop(c);
}

#[test]
fn read_credentials_on_a_publish_mount() {
    let dir = common::temp_dir("publish_read");
    let bob = dvb2ip::publish::auth::md5_hex("bob:dvb2ip:pw");
    let srv = Server::start(
        &dir,
        "read",
        &format!(
            "{}[[publish.reader]]\nuser = \"bob\"\npassword_digest = \"{bob}\"\n",
            publish_mount("r")
        ),
    );
    let _publisher = Kill(
        ffmpeg_publish(&srv.rtsp_url("alice:secret@", "/live/r"), "tcp")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("ffmpeg"),
    );
    srv.wait_state("r", "live");

    // Without credentials: 401 with the Digest challenge.
    let mut c = Rtsp::connect(srv.srv.rtsp_port);
    let uri = c.url("live/r");
    let r = c.req("DESCRIBE", "live/r", &[("Accept", "application/sdp")]);
    assert_eq!(r.status, 401, "{}", r.head);
    let www = r.header("WWW-Authenticate").unwrap_or_default().to_owned();
    assert!(
        www.starts_with("Digest realm=\"dvb2ip\", nonce=\""),
        "{www}"
    );
    // Wrong credentials: bob with another password, and a made-up user.
    let nonce = www.split('"').nth(3).unwrap().to_owned();
    let ha2 = dvb2ip::publish::auth::md5_hex(&format!("DESCRIBE:{uri}"));
    for (user, ha1) in [
        ("bob", dvb2ip::publish::auth::md5_hex("bob:dvb2ip:wrong")),
        ("eve", dvb2ip::publish::auth::md5_hex("eve:dvb2ip:pw")),
    ] {
        let response = dvb2ip::publish::auth::md5_hex(&format!("{ha1}:{nonce}:{ha2}"));
        let auth = format!(
            "Digest username=\"{user}\", realm=\"dvb2ip\", nonce=\"{nonce}\", uri=\"{uri}\", response=\"{response}\""
        );
        let r = c.req(
            "DESCRIBE",
            "live/r",
            &[("Accept", "application/sdp"), ("Authorization", &auth)],
        );
        assert_eq!(r.status, 401, "{user}: {}", r.head);
    }
    // The right ones: 200 with the SDP.
    let response = dvb2ip::publish::auth::md5_hex(&format!("{bob}:{nonce}:{ha2}"));
    let auth = format!(
        "Digest username=\"bob\", realm=\"dvb2ip\", nonce=\"{nonce}\", uri=\"{uri}\", response=\"{response}\""
    );
    let r = c.req(
        "DESCRIBE",
        "live/r",
        &[("Accept", "application/sdp"), ("Authorization", &auth)],
    );
    assert_eq!(r.status, 200, "{}", r.head);
    drop(c);

    // ffprobe: refused without and with wrong credentials, reads the mount with bob's.
    for auth in ["", "bob:wrong@"] {
        let out = run_bounded(
            {
                let mut c = Command::new("ffprobe");
                c.args(["-v", "error", "-rtsp_transport", "tcp"])
                    .arg(srv.rtsp_url(auth, "/live/r"));
                c
            },
            LIMIT,
        );
        assert!(
            !out.status.success(),
            "ffprobe with {auth:?} read the mount"
        );
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("401"), "ffprobe with {auth:?}: {err}");
    }
    let v = common::ffprobe(
        &srv.rtsp_url("bob:pw@", "/live/r"),
        &["-rtsp_transport", "tcp"],
    );
    assert!(codecs(&v).contains(&"h264".to_string()), "{v}");
}
