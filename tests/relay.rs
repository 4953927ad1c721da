//! On-demand relays between two `dvb2ip serve` processes on loopback (issue 14 items 1 and 4):
//! an origin serving its emulated tuners, an edge with `[[relay]]` entries pulling the
//! origin's `/ch/news`. The origin's RTSP sessions are read from its `GET /api/relays`, the
//! edge's relay state, readers and counters from the edge's.

mod common;

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use common::rtsp::{Item, Rtsp};

/// Bound of every wait: a slow machine takes longer, it does not get less.
const LIMIT: Duration = Duration::from_secs(90);

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The shipped configuration on `http_port`, sessions timing out after `session_timeout` s,
/// without SSDP, multicast or real adapters, then `extra`.
fn config(http_port: u16, session_timeout: u32, extra: &str) -> String {
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
            l if l.starts_with("session_timeout = ") => {
                format!("session_timeout = {session_timeout}")
            }
            l if l.starts_with("hardware = ") => "hardware = \"off\"".to_owned(),
            "enabled = true" if section == "[ssdp]" || section == "[multicast]" => {
                "enabled = false".to_owned()
            }
            l => l.to_owned(),
        };
        out.push_str(&l);
        out.push('\n');
    }
    out + extra
}

/// `dvb2ip serve`; killed on drop.
struct Serve {
    child: Child,
    rtsp_port: u16,
    http_port: u16,
    log: mpsc::Receiver<String>,
}

impl Serve {
    /// `rtsp_port` 0: a free port.
    fn start(dir: &Path, tag: &str, rtsp_port: u16, session_timeout: u32, extra: &str) -> Serve {
        let http_port = free_port();
        let conf = dir.join(format!("{tag}.toml"));
        std::fs::write(&conf, config(http_port, session_timeout, extra)).unwrap();
        let mut child = Command::new(common::dvb2ip_bin())
            .args(["serve", "--rtsp-port", &rtsp_port.to_string(), "--config"])
            .arg(&conf)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("dvb2ip serve starts");
        let (tx, log) = mpsc::channel::<String>();
        for r in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let tx = tx.clone();
            let tag = tag.to_owned();
            std::thread::spawn(move || {
                for line in BufReader::new(r).lines().map_while(Result::ok) {
                    eprintln!("{tag}: {line}");
                    if tx.send(line).is_err() {
                        break;
                    }
                }
            });
        }
        let mut s = Serve {
            child,
            rtsp_port: 0,
            http_port,
            log,
        };
        let line = s.wait_line("dvb2ip: serving RTSP on 127.0.0.1:");
        s.rtsp_port = line.rsplit(':').next().unwrap().trim().parse().unwrap();
        // HTTP is up once the banner is complete.
        s.wait_line("Stop with Ctrl-C.");
        s
    }

    /// Waits (bounded) for a log line containing `needle`.
    fn wait_line(&mut self, needle: &str) -> String {
        let end = Instant::now() + LIMIT;
        loop {
            let left = end.saturating_duration_since(Instant::now());
            assert!(!left.is_zero(), "no {needle:?} from the server");
            match self.log.recv_timeout(left.min(Duration::from_millis(200))) {
                Ok(l) if l.contains(needle) => return l,
                Ok(_) | Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    panic!("server gone before {needle:?}: {:?}", self.child.try_wait())
                }
            }
        }
    }

    /// `GET /api/relays` as JSON.
    fn api(&self) -> serde_json::Value {
        let out = Command::new("curl")
            .args(["-s", "-m", "20"])
            .arg(format!("http://127.0.0.1:{}/api/relays", self.http_port))
            .output()
            .expect("curl");
        serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)))
    }

    /// RTSP sessions the server holds.
    fn sessions(&self) -> u64 {
        self.api()["rtsp_sessions"].as_u64().expect("rtsp_sessions")
    }

    /// The report of relay `name`.
    fn relay(&self, name: &str) -> serde_json::Value {
        self.api()["relays"]
            .as_array()
            .expect("relays")
            .iter()
            .find(|r| r["name"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("no relay {name}"))
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits (bounded) until `cond`.
fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let end = Instant::now() + LIMIT;
    while !cond() {
        assert!(Instant::now() < end, "{what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A reader playing `url` over RTP/UDP in a gst-launch process (killed with SIGKILL on drop).
struct Player(Child);

impl Player {
    fn start(url: &str) -> Player {
        Player(
            Command::new("gst-launch-1.0")
                .args(["-q", "rtspsrc"])
                .arg(format!("location={url}"))
                .args(["protocols=udp", "latency=0", "!", "fakesink", "sync=false"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("gst-launch-1.0"),
        )
    }
}

impl Drop for Player {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A raw RTSP reader over TCP: DESCRIBE, SETUP (interleaved), PLAY, until the first RTP
/// packet. (DESCRIBE time, PLAY → first packet, session.)
fn play_tcp(c: &mut Rtsp, path: &str) -> (Duration, Duration, String) {
    let t = Instant::now();
    let d = c.req("DESCRIBE", path, &[("Accept", "application/sdp")]);
    let describe = t.elapsed();
    assert_eq!(d.status, 200, "{}", d.head);
    assert!(d.body.contains("MP2T/90000"), "{}", d.body);
    let s = c.req(
        "SETUP",
        &format!("{path}/stream=0"),
        &[("Transport", "RTP/AVP/TCP;unicast;interleaved=0-1")],
    );
    assert_eq!(s.status, 200, "{}", s.head);
    let session = s.session();
    let t = Instant::now();
    let p = c.req(
        "PLAY",
        path,
        &[("Session", &session), ("Range", "npt=0.000-")],
    );
    assert_eq!(p.status, 200, "{}", p.head);
    loop {
        match c.next_item() {
            Item::Frame(0, rtp) => {
                let elapsed = t.elapsed();
                // The reader's first TS packet is the PAT (then the PMT and a key frame).
                let ts = &rtp[12..];
                assert!(ts.len() >= 2 * 188 && ts[0] == 0x47, "TS in RTP");
                assert_eq!(ts[1] & 0x1F, 0, "first packet: PID 0");
                assert_eq!(ts[2], 0, "first packet: PID 0");
                assert_eq!(ts[188 + 5], 0x02, "second packet: a PMT section");
                return (describe, elapsed, session);
            }
            Item::Frame(..) => {}
            Item::Response(r) => panic!("unexpected {}", r.head),
        }
    }
}

/// TEARDOWN of `session` (its reader leaves the relay at once).
fn teardown(c: &mut Rtsp, path: &str, session: &str) {
    let r = c.req_interleaved("TEARDOWN", path, &[("Session", session)]);
    assert_eq!(r.status, 200, "{}", r.head);
}

/// Reads (and drops) what the server sends on `c` from another thread, as a player would:
/// gst-rtsp-server keeps an interleaved session alive while its data leaves, so a reader that
/// never reads times out once the socket buffers are full (about 20 s of this channel on
/// loopback, then the edge's session timeout). Returns the socket, to close.
fn drain(mut c: Rtsp) -> std::net::TcpStream {
    let sock = c.stream().try_clone().expect("socket");
    std::thread::spawn(move || while common::rtsp::Client::next_item(&mut c).is_ok() {});
    sock
}

#[test]
fn relays_pull_on_demand_share_one_upstream_session_and_close_after_the_last_reader() {
    let dir = common::temp_dir("relay");
    let origin_port = free_port();
    let mut origin = Serve::start(&dir, "origin", origin_port, 60, "");
    let dead_port = free_port();
    // Accepts connections and never answers.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_port = silent.local_addr().unwrap().port();
    let edge_text = format!(
        "\n[[relay]]\nname = \"news\"\nsource = \"rtsp://127.0.0.1:{o}/ch/news\"\nclose_after = 1.5\n\n\
         [[relay]]\nname = \"grace\"\nsource = \"rtsp://127.0.0.1:{o}/ch/news\"\nclose_after = 60\n\n\
         [[relay]]\nname = \"dead\"\nsource = \"rtsp://127.0.0.1:{dead_port}/ch/news\"\nstart_timeout = 4\n\n\
         [[relay]]\nname = \"silent\"\nsource = \"rtsp://127.0.0.1:{silent_port}/ch/news\"\nstart_timeout = 2\n",
        o = origin.rtsp_port
    );
    // Sessions of readers that vanish time out after 2 s (+ gst-rtsp-server's 5 s).
    let edge = Serve::start(&dir, "edge", 0, 2, &edge_text);
    assert_eq!(edge.relay("news")["state"], "idle");
    assert_eq!(origin.sessions(), 0);

    // ffprobe through the edge's RTSP mount lists the channel's streams.
    let url = format!("rtsp://127.0.0.1:{}/relay/news", edge.rtsp_port);
    let probe = common::ffprobe(&url, &["-rtsp_transport", "tcp"]);
    let kinds: Vec<&str> = probe["streams"]
        .as_array()
        .expect("streams")
        .iter()
        .filter_map(|s| s["codec_type"].as_str())
        .collect();
    assert!(
        kinds.contains(&"video") && kinds.contains(&"audio"),
        "{probe}"
    );
    let r = edge.relay("news");
    assert_eq!(r["starts"], 1, "{r}");
    assert!(r["start_latency_ms"].as_u64().is_some(), "{r}");
    // ffprobe left: the upstream closes after close_after.
    wait_until("the pull closes after ffprobe left", || {
        edge.relay("news")["state"] == "idle"
    });
    wait_until("the origin session ends", || origin.sessions() == 0);

    // Three readers, one origin session; all SIGKILLed: their sessions time out, then the
    // upstream closes.
    let players: Vec<Player> = (0..3).map(|_| Player::start(&url)).collect();
    wait_until("three readers on the relay", || {
        edge.relay("news")["readers"] == 3
    });
    let r = edge.relay("news");
    assert_eq!(r["state"], "live", "{r}");
    assert_eq!(
        origin.sessions(),
        1,
        "three edge readers, one origin session"
    );
    assert_eq!(r["starts"], 2, "{r}");
    drop(players);
    wait_until("the SIGKILLed readers' sessions time out", || {
        edge.relay("news")["readers"] == 0
    });
    wait_until("the upstream closes after the killed readers", || {
        edge.relay("news")["state"] == "idle"
    });
    wait_until("the origin session ends", || origin.sessions() == 0);
    let r = edge.relay("news");
    assert_eq!(r["stops"], 2, "{r}");
    assert_eq!(r["failures"], 0, "{r}");

    // An operator's start holds the pull up without readers; stop lets it close at once.
    let post = |path: &str| -> (String, serde_json::Value) {
        let out = Command::new("curl")
            .args(["-s", "-m", "20", "-X", "POST", "-w", "\n%{http_code}"])
            .arg(format!("http://127.0.0.1:{}{path}", edge.http_port))
            .output()
            .expect("curl");
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        let (body, code) = text.rsplit_once('\n').expect("status line");
        (
            code.to_string(),
            serde_json::from_str(body).unwrap_or_default(),
        )
    };
    let (code, r) = post("/api/relays/news/start");
    assert_eq!(code, "200", "{r}");
    assert_eq!(r["held"], true, "{r}");
    wait_until("the held relay pulls without readers", || {
        let r = edge.relay("news");
        r["state"] == "live" && r["readers"] == 0
    });
    assert_eq!(origin.sessions(), 1);
    let (code, r) = post("/api/relays/news/stop");
    assert_eq!(code, "200", "{r}");
    assert_eq!(r["held"], false, "{r}");
    wait_until("the stopped relay closes", || {
        edge.relay("news")["state"] == "idle"
    });
    wait_until("the origin session ends", || origin.sessions() == 0);
    let (code, r) = post("/api/relays/nosuch/start");
    assert_eq!(code, "404", "{r}");
    assert!(r["error"].as_str().unwrap().contains("nosuch"), "{r}");

    // A reader during the grace period reuses the pull: no second upstream start.
    let mut a = Rtsp::connect(edge.rtsp_port);
    let (cold_describe, cold_play, session) = play_tcp(&mut a, "relay/grace");
    teardown(&mut a, "relay/grace", &session);
    wait_until("the grace relay is closing", || {
        edge.relay("grace")["state"] == "closing"
    });
    let mut b = Rtsp::connect(edge.rtsp_port);
    let (warm_describe, warm_play, _) = play_tcp(&mut b, "relay/grace");
    // b stays a reader (and keeps reading) until its connection closes below.
    let b = drain(b);
    let r = edge.relay("grace");
    assert_eq!(r["state"], "live", "{r}");
    assert_eq!(r["starts"], 1, "the second reader reused the pull: {r}");
    assert_eq!(r["readers"], 1, "{r}");
    assert_eq!(origin.sessions(), 1);
    eprintln!(
        "figures: cold DESCRIBE {cold_describe:?}, PLAY → first packet {cold_play:?}; \
         warm DESCRIBE {warm_describe:?}, PLAY → first packet {warm_play:?}"
    );

    // A relay is live: a real seek is 456 and names the header; "from now" plays (checklist 40).
    let mut s = Rtsp::connect(edge.rtsp_port);
    let d = s.req("DESCRIBE", "relay/grace", &[("Accept", "application/sdp")]);
    assert_eq!(d.status, 200, "{}", d.head);
    let st = s.req(
        "SETUP",
        "relay/grace/stream=0",
        &[("Transport", "RTP/AVP/TCP;unicast;interleaved=0-1")],
    );
    assert_eq!(st.status, 200, "{}", st.head);
    let session = st.session();
    let p = s.req(
        "PLAY",
        "relay/grace",
        &[("Session", &session), ("Range", "npt=600-")],
    );
    assert_eq!(p.status, 456, "{}", p.head);
    assert!(p.body.contains("npt=600-"), "{}", p.body);
    let p = s.req_interleaved(
        "PLAY",
        "relay/grace",
        &[("Session", &session), ("Range", "npt=now-")],
    );
    assert_eq!(p.status, 200, "{}", p.head);
    teardown(&mut s, "relay/grace", &session);
    wait_until("the seeking reader left", || {
        edge.relay("grace")["readers"] == 1
    });

    // HTTP read of a relay: TS starting with PAT, then PMT (and the same pull: no new start).
    let mut curl = Command::new("curl")
        .args(["-s", "-N", "-m", "60"])
        .arg(format!("http://127.0.0.1:{}/relay/grace", edge.http_port))
        .stdout(Stdio::piped())
        .spawn()
        .expect("curl");
    let mut head = vec![0u8; 3 * 188];
    curl.stdout
        .as_mut()
        .unwrap()
        .read_exact(&mut head)
        .expect("three TS packets from the relay over HTTP");
    assert_eq!(edge.api()["http_streams"], 1);
    assert_eq!(
        edge.relay("grace")["readers"],
        2,
        "RTSP and HTTP read one pull"
    );
    let _ = curl.kill();
    let _ = curl.wait();
    wait_until("the HTTP reader leaves with its connection", || {
        edge.relay("grace")["readers"] == 1 && edge.api()["http_streams"] == 0
    });
    let pid = |p: &[u8]| (u16::from(p[1] & 0x1F) << 8) | u16::from(p[2]);
    assert!(head.chunks(188).all(|p| p[0] == 0x47), "TS sync");
    assert_eq!(pid(&head[..188]), 0, "the first packet is the PAT");
    assert_eq!(head[188 + 5], 0x02, "the second packet is a PMT section");
    assert_eq!(edge.relay("grace")["starts"], 1);
    // b's connection closes: its TCP session (and its reader) ends with it.
    let _ = b.shutdown(std::net::Shutdown::Both);
    drop(a);

    // Upstream loss while a reader plays: the relay pulls again (with backoff) once the
    // origin is back on its port, and the reader's session goes on receiving.
    let mut c = Rtsp::connect(edge.rtsp_port);
    play_tcp(&mut c, "relay/news");
    let frames = Arc::new(AtomicU64::new(0));
    let counter = frames.clone();
    std::thread::spawn(move || {
        while let Ok(item) = common::rtsp::Client::next_item(&mut c) {
            if let Item::Frame(0, _) = item {
                counter.fetch_add(1, Ordering::Relaxed);
            }
        }
    });
    wait_until("the reader receives", || frames.load(Ordering::Relaxed) > 0);
    let starts = edge.relay("news")["starts"].as_u64().unwrap();
    drop(origin);
    wait_until("the relay notices the upstream loss", || {
        edge.relay("news")["failures"].as_u64().unwrap() >= 1
    });
    assert_eq!(edge.relay("news")["readers"], 1, "the reader is kept");
    origin = Serve::start(&dir, "origin2", origin_port, 60, "");
    wait_until("the relay pulls again", || {
        let r = edge.relay("news");
        r["state"] == "live" && r["starts"].as_u64().unwrap() > starts
    });
    let n = frames.load(Ordering::Relaxed);
    wait_until("the reader receives again", || {
        frames.load(Ordering::Relaxed) > n + 10
    });
    assert_eq!(edge.relay("news")["readers"], 1);
    // One upstream session: a pull attempt that raced the origin's restart (and was given
    // up) holds one there only until its TEARDOWN is handled.
    wait_until("one origin session after the re-pull", || {
        origin.sessions() == 1
    });

    // ANNOUNCE on a relay mount: 405 with Allow, and no pull starts.
    let starts = edge.relay("news")["starts"].clone();
    let sdp = "v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=x\r\nt=0 0\r\nm=video 0 RTP/AVP 33\r\n\
               a=rtpmap:33 MP2T/90000\r\na=control:stream=0\r\n";
    let mut p = Rtsp::connect(edge.rtsp_port);
    let url = p.url("relay/news");
    let a = p.raw(&format!(
        "ANNOUNCE {url} RTSP/1.0\r\nCSeq: 1\r\nContent-Type: application/sdp\r\n\
         Content-Length: {}\r\n\r\n{sdp}",
        sdp.len()
    ));
    assert_eq!(a.status, 405, "{}", a.head);
    assert!(
        a.header("Allow").is_some_and(|v| v.contains("PLAY")),
        "{}",
        a.head
    );
    assert_eq!(edge.relay("news")["starts"], starts);

    // A dead origin: 503 with Retry-After within start_timeout, over RTSP and HTTP, and a
    // log line naming the cause.
    let mut c = Rtsp::connect(edge.rtsp_port);
    let t = Instant::now();
    let d = c.req("DESCRIBE", "relay/dead", &[("Accept", "application/sdp")]);
    assert_eq!(d.status, 503, "{}", d.head);
    assert!(d.header("Retry-After").is_some(), "{}", d.head);
    assert!(t.elapsed() < LIMIT);
    eprintln!(
        "figures: dead upstream answered 503 after {:?}",
        t.elapsed()
    );
    let out = Command::new("curl")
        .args(["-s", "-i", "-m", "30"])
        .arg(format!("http://127.0.0.1:{}/relay/dead", edge.http_port))
        .output()
        .expect("curl");
    let text = String::from_utf8_lossy(&out.stdout).to_lowercase();
    assert!(text.starts_with("http/1.1 503"), "{text}");
    assert!(text.contains("retry-after: "), "{text}");
    let r = edge.relay("dead");
    assert!(r["failures"].as_u64().unwrap() >= 1, "{r}");
    assert_eq!(r["state"], "failed", "{r}");
    // An upstream that accepts and never answers: 503 once start_timeout has passed.
    let d = c.req("DESCRIBE", "relay/silent", &[("Accept", "application/sdp")]);
    assert_eq!(d.status, 503, "{}", d.head);
    assert!(d.header("Retry-After").is_some(), "{}", d.head);
    assert!(d.body.contains("start_timeout"), "{}", d.body);
    wait_until("the silent relay's pull is given up", || {
        edge.relay("silent")["state"] == "failed"
    });
    let r = edge.relay("silent");
    assert!(
        r["last_error"].as_str().unwrap().contains("start_timeout"),
        "{r}"
    );
    drop(silent);
}

#[test]
fn bad_relay_entries_name_the_file_and_line() {
    let dir = common::temp_dir("relay-conf");
    let f = dir.join("bad.toml");
    std::fs::write(
        &f,
        "[server]\nbind = \"127.0.0.1\"\n\n[[relay]]\nname = \"x\"\nsource = \"gopher://h/x\"\n",
    )
    .unwrap();
    let out = Command::new(common::dvb2ip_bin())
        .args(["check-config"])
        .arg(&f)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&format!("{}:6:", f.display())), "{err}");
    assert!(err.contains("gopher"), "{err}");
}

#[test]
fn a_udp_relay_not_on_demand_pulls_from_start_and_serves_http() {
    let media = std::fs::read(common::repo_file(
        "../shared/media/temi_a_single_timeline.ts",
    ))
    .expect("test media (../shared/media)");
    let dir = common::temp_dir("relay-udp");
    let port = {
        let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        s.local_addr().unwrap().port()
    };
    let edge = Serve::start(
        &dir,
        "udp-edge",
        0,
        60,
        &format!(
            "\n[[relay]]\nname = \"udp\"\nsource = \"udp://127.0.0.1:{port}\"\non_demand = false\n"
        ),
    );
    // The sender: the file, 7 packets a datagram, paced, looping, to loopback only.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sender = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
            while !stop.load(Ordering::Relaxed) {
                for d in media.chunks(7 * 188) {
                    if stop.load(Ordering::Relaxed) {
                        return;
                    }
                    let _ = s.send_to(d, ("127.0.0.1", port));
                    std::thread::sleep(Duration::from_millis(2));
                }
            }
        })
    };
    // Pulled without any reader.
    wait_until("the relay pulls from start", || {
        let r = edge.relay("udp");
        r["state"] == "live" && r["readers"] == 0
    });
    let url = format!("http://127.0.0.1:{}/relay/udp", edge.http_port);
    let probe = common::ffprobe(&url, &[]);
    let kinds: Vec<&str> = probe["streams"]
        .as_array()
        .expect("streams")
        .iter()
        .filter_map(|s| s["codec_type"].as_str())
        .collect();
    assert!(kinds.contains(&"video"), "{probe}");
    let r = edge.relay("udp");
    assert_eq!(r["starts"], 1, "{r}");
    assert!(r["bytes_in"].as_u64().unwrap() > 0, "{r}");
    assert!(r["bytes_out"].as_u64().unwrap() > 0, "{r}");
    stop.store(true, Ordering::Relaxed);
    sender.join().unwrap();
}

/// cvlc (Debian 12's VLC has no live555: its SAT>IP access module opens `rtsp://` URLs) plays
/// a relay. It sends SETUP on the mount without DESCRIBE, then PLAY on `/stream=N` with the
/// `com.ses.streamID` the SETUP answer named: that PLAY must start the relay reader's direct
/// path (src/rtsp/client.rs maps it to the relay mount).
#[test]
fn cvlc_plays_a_relay() {
    assert!(
        Command::new("cvlc").arg("--version").output().is_ok(),
        "cvlc not found: install the test dependencies (scripts/deps.sh TEST_PACKAGES)"
    );
    let dir = common::temp_dir("relay-cvlc");
    let origin = Serve::start(&dir, "cvlc-origin", free_port(), 60, "");
    let edge = Serve::start(
        &dir,
        "cvlc-edge",
        0,
        60,
        &format!(
            "\n[[relay]]\nname = \"news\"\nsource = \"rtsp://127.0.0.1:{}/ch/news\"\n",
            origin.rtsp_port
        ),
    );
    // VLC refuses to run as root; nobody needs a writable HOME.
    let home = dir.join("vlc-home");
    std::fs::create_dir_all(&home).unwrap();
    Command::new("chmod")
        .args(["-R", "777"])
        .arg(&dir)
        .status()
        .unwrap();
    let url = format!("rtsp://127.0.0.1:{}/relay/news", edge.rtsp_port);
    let out = Command::new("timeout")
        .args(["120", "runuser", "-u", "nobody", "--", "env"])
        .arg(format!("HOME={}", home.display()))
        .args([
            "cvlc",
            "--no-dbus",
            "--intf",
            "dummy",
            "--vout",
            "dummy",
            "--aout",
            "dummy",
            // Demux only, as the SAT>IP cvlc test (tests/satip_rtsp.rs).
            "--no-video",
            "--no-audio",
            "--play-and-exit",
            "--run-time",
            "5",
            "-vv",
            &url,
        ])
        .output()
        .expect("cvlc runs");
    let text =
        String::from_utf8_lossy(&out.stderr).to_string() + &String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(
        !text.contains("timed out waiting for data") && !text.contains("unable to open"),
        "{text}"
    );
    // The relayed multiplex was demuxed: News's PMT and its elementary streams.
    assert!(
        text.contains("new PMT program number=4609") && text.contains("enabling pid 257"),
        "{text}"
    );
    // Continuity: VLC's demuxer reports every TS continuity break (its own "discontinuity
    // received" warnings, libdvbpsi's PSI errors). The relay's stream has none: each one must
    // follow an RTP packet loss that VLC's SAT>IP access reported first ("Gap in seq_nr"),
    // i.e. datagrams the server sent and VLC's socket dropped. VLC reads RTP through a socket
    // with the system's default receive buffer (212992 bytes here); on a
    // loaded machine its reading thread falls behind and the kernel drops what overflows
    // (captured on lo: the server's packets were all sent, in order, with continuous
    // counters; `Udp: RcvbufErrors` rose by the datagrams VLC missed).
    let lines: Vec<&str> = text.lines().collect();
    let first_gap = lines.iter().position(|l| l.contains("Gap in seq_nr"));
    let breaks: Vec<(usize, &str)> = lines
        .iter()
        .enumerate()
        .filter(|(_, l)| {
            l.contains("discontinuity received") || l.contains("libdvbpsi error (PSI decoder)")
        })
        .map(|(i, l)| (i, *l))
        .collect();
    eprintln!(
        "figures: {} RTP sequence gaps reported by VLC, {} TS continuity breaks",
        lines.iter().filter(|l| l.contains("Gap in seq_nr")).count(),
        breaks.len()
    );
    let unexplained: Vec<&str> = breaks
        .iter()
        .filter(|(i, _)| first_gap.is_none_or(|g| *i < g))
        .map(|(_, l)| *l)
        .collect();
    assert!(
        unexplained.is_empty(),
        "continuity breaks without an RTP loss before them: {unexplained:#?}"
    );
    // Errors other than the interface modules a headless run lacks, and the PSI continuity
    // breaks checked above, fail the test.
    let errors: Vec<&str> = text
        .lines()
        .filter(|l| l.contains(" error:"))
        .filter(|l| !l.contains("interface error") && !l.contains("libvlc error: interface"))
        .filter(|l| !(first_gap.is_some() && l.contains("libdvbpsi error (PSI decoder)")))
        .collect();
    assert!(errors.is_empty(), "{errors:#?}");
    let r = edge.relay("news");
    assert_eq!(r["starts"], 1, "{r}");
}
