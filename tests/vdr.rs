//! VDR with vdr-plugin-satip (Debian's `vdr`, `vdr-plugin-satip`) against `dvb2ip serve` on a
//! non-554 RTSP port, both in a network namespace of the test's own: VDR finds the server over
//! SSDP, takes the RTSP port from the description's `X-SATIP-RTSP-Port` header (matched
//! case-sensitively by the plugin's `ParseRtspPort`: with any other spelling it falls back to
//! 554 and gets nothing), records a channel by a timer set over SVDRP, and the recording has
//! no continuity errors.
//!
//! VDR logs to syslog only: it runs in a private mount namespace whose `/dev` is an overlay
//! where `log` leads to a socket this test reads.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::netns::Netns;

/// A non-standard RTSP port: the one VDR only finds through `X-SATIP-RTSP-Port`.
const RTSP_PORT: u16 = 8554;
const HTTP_PORT: u16 = 8875;
const SVDRP_PORT: u16 = 6419;

/// "dvb2ip News" on the emulated DVB-T mux at 506 MHz (conf/default.toml): video PID 0x101
/// (H.264, stream type 27), audio 0x102, service 0x1201, ONID 0x233a, TSID 0x1002.
const CHANNELS_CONF: &str =
    "dvb2ip News;dvb2ip:506000:B8C23D0G4M64S0T8Y0:T:0:257=27:258=@4:0:0:4609:9018:4098:0\n";

/// The embedded configuration with the server on all addresses of the namespace, SSDP on
/// `lo`, RTSP on [`RTSP_PORT`] and the SSDP state in `dir`.
fn config(dir: &Path) -> PathBuf {
    let mut text = String::new();
    for line in gstdvb2ip::tuners::config::DEFAULT_CONFIG.lines() {
        let l = match line {
            l if l.starts_with("bind = ") => "bind = \"127.0.0.1\"".to_owned(),
            l if l.starts_with("rtsp_port = ") => format!("rtsp_port = {RTSP_PORT}"),
            l if l.starts_with("http_port = ") => format!("http_port = {HTTP_PORT}"),
            l if l.starts_with("state_dir = ") => {
                format!("state_dir = \"{}\"", dir.join("state").display())
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

/// A child process killed (and reaped) on drop.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// The syslog lines VDR sent to the socket at `path`, collected by a thread.
fn syslog_collector(path: &Path) -> Arc<Mutex<String>> {
    let sock = UnixDatagram::bind(path).expect("syslog socket");
    let _ = Command::new("chmod").arg("666").arg(path).status();
    let log = Arc::new(Mutex::new(String::new()));
    let l = log.clone();
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 65536];
        while let Ok(n) = sock.recv(&mut buf) {
            let mut g = l.lock().unwrap();
            g.push_str(&String::from_utf8_lossy(&buf[..n]));
            g.push('\n');
        }
    });
    log
}

/// One SVDRP command on a new connection; the reply lines.
fn svdrp(ns: &Netns, cmd: &str) -> Vec<String> {
    let cmd = cmd.to_owned();
    ns.enter(move || {
        let s = TcpStream::connect(("127.0.0.1", SVDRP_PORT)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let mut w = s.try_clone().unwrap();
        let mut r = BufReader::new(s);
        let mut read = || -> Option<Vec<String>> {
            let mut out = Vec::new();
            loop {
                let mut l = String::new();
                if r.read_line(&mut l).ok()? == 0 {
                    return Some(out);
                }
                let l = l.trim_end().to_owned();
                let last = l.as_bytes().get(3) != Some(&b'-');
                out.push(l);
                if last {
                    return Some(out);
                }
            }
        };
        read()?; // greeting
        w.write_all(format!("{cmd}\r\nQUIT\r\n").as_bytes()).ok()?;
        read()
    })
    .unwrap_or_default()
}

/// The raw head of the description reply, read inside `ns` with a plain TCP stream.
fn description_head(ns: &Netns) -> String {
    ns.enter(|| {
        let mut c = TcpStream::connect(("127.0.0.1", HTTP_PORT)).expect("HTTP connect");
        c.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        c.write_all(b"GET /desc.xml HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            .unwrap();
        let mut reply = Vec::new();
        c.read_to_end(&mut reply).unwrap();
        let text = String::from_utf8_lossy(&reply).to_string();
        text.split("\r\n\r\n").next().unwrap_or("").to_owned()
    })
}

/// UTC date and time `secs` from now as VDR's timer fields want them (`YYYY-MM-DD`, `hhmm`).
fn utc_fields(offset_secs: i64) -> (String, String) {
    let out = Command::new("date")
        .env("TZ", "UTC")
        .args(["-d", &format!("{offset_secs} seconds"), "+%Y-%m-%d %H%M"])
        .output()
        .expect("date runs");
    let s = String::from_utf8(out.stdout).unwrap();
    let (d, t) = s.trim().split_once(' ').unwrap();
    (d.to_owned(), t.to_owned())
}

/// Continuity counter errors over all PIDs of a TS (null packets and repeats excepted).
fn cc_errors(ts: &[u8]) -> (usize, usize, Vec<u16>) {
    let mut last: std::collections::BTreeMap<u16, u8> = Default::default();
    let (mut errors, mut packets) = (0, 0);
    for p in ts.chunks_exact(188) {
        assert_eq!(p[0], 0x47, "TS sync lost after {packets} packets");
        packets += 1;
        let pid = (u16::from(p[1] & 0x1f) << 8) | u16::from(p[2]);
        if pid == 0x1fff || p[3] & 0x10 == 0 {
            continue;
        }
        let cc = p[3] & 0x0f;
        if let Some(&l) = last.get(&pid) {
            if cc != (l + 1) & 0x0f && cc != l {
                errors += 1;
            }
        }
        last.insert(pid, cc);
    }
    (packets, errors, last.into_keys().collect())
}

/// The `.ts` files of VDR's recordings under `video`.
fn recordings(video: &Path) -> Vec<PathBuf> {
    fn walk(d: &Path, out: &mut Vec<PathBuf>) {
        for e in std::fs::read_dir(d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(&p, out);
            } else if p.extension().is_some_and(|x| x == "ts") {
                out.push(p);
            }
        }
    }
    let mut out = Vec::new();
    walk(video, &mut out);
    out.sort();
    out
}

#[test]
fn vdr_satip_discovers_the_server_on_a_non_554_port_and_records_without_cc_errors() {
    assert!(
        Command::new("vdr").arg("--version").output().is_ok(),
        "vdr not found: install the test dependencies (scripts/deps.sh TEST_PACKAGES, \
         e.g. `apt-get install vdr vdr-plugin-satip`) or run scripts/test.sh"
    );
    assert!(
        Path::new("/usr/lib/vdr/plugins/libvdr-satip.so.2.6.0").exists()
            || std::fs::read_dir("/usr/lib/vdr/plugins")
                .into_iter()
                .flatten()
                .flatten()
                .any(|e| e
                    .file_name()
                    .to_string_lossy()
                    .starts_with("libvdr-satip.so")),
        "VDR's satip plugin not found: apt-get install vdr-plugin-satip"
    );
    let dir = common::temp_dir("vdr");
    let ns = Netns::new("d2ivdr", "vdr");
    // SSDP multicast on loopback: a route for the groups, with a source address (127.0.0.1
    // has host scope, so without `src` the M-SEARCH would leave from 0.0.0.0).
    ns.ip(&[
        "route",
        "add",
        "224.0.0.0/4",
        "dev",
        "lo",
        "src",
        "127.0.0.1",
    ]);

    let conf = config(&dir);
    let server_log = dir.join("server.log");
    let out = std::fs::File::create(&server_log).unwrap();
    let _server = Proc(
        ns.exec(env!("CARGO_BIN_EXE_dvb2ip"))
            .args(["serve", "--config"])
            .arg(&conf)
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .expect("dvb2ip serve"),
    );
    let server_text = || std::fs::read_to_string(&server_log).unwrap_or_default();
    let end = Instant::now() + Duration::from_secs(60);
    while !server_text().contains("settled") {
        assert!(Instant::now() < end, "server not up:\n{}", server_text());
        std::thread::sleep(Duration::from_millis(100));
    }
    // What VDR will read, on the wire.
    let head = description_head(&ns);
    assert!(
        head.split("\r\n")
            .any(|l| l == format!("X-SATIP-RTSP-Port: {RTSP_PORT}")),
        "{head}"
    );

    // VDR's configuration: the channel, SVDRP from loopback, no channel updates (a changed
    // channel restarts the recording).
    let cfg = dir.join("conf");
    let video = dir.join("video");
    let cache = dir.join("cache");
    for d in [&cfg, &video, &cache] {
        std::fs::create_dir_all(d).unwrap();
    }
    std::fs::write(cfg.join("channels.conf"), CHANNELS_CONF).unwrap();
    std::fs::write(cfg.join("svdrphosts.conf"), "127.0.0.1\n").unwrap();
    std::fs::write(cfg.join("setup.conf"), "UpdateChannels = 0\n").unwrap();
    std::fs::write(cfg.join("sources.conf"), "T       DVB-T\n").unwrap();
    let (up, work) = (dir.join("dev-up"), dir.join("dev-work"));
    std::fs::create_dir_all(&up).unwrap();
    std::fs::create_dir_all(&work).unwrap();
    // /dev/log in VDR's /dev: a link to a socket bound here (a socket bound in the overlay's
    // upper directory would not be the one connect(2) finds through the overlay).
    let sock = dir.join("syslog.sock");
    let syslog = syslog_collector(&sock);
    std::os::unix::fs::symlink(&sock, up.join("log")).unwrap();
    let vdr_text = || syslog.lock().unwrap().clone();
    let script = format!(
        "mount -t overlay overlay -o lowerdir=/dev,upperdir={},workdir={} /dev && \
         exec vdr -c {} -v {} --cachedir={} -E- -l 3 -p {SVDRP_PORT} -D- --no-kbd -P satip",
        up.display(),
        work.display(),
        cfg.display(),
        video.display(),
        cache.display()
    );
    let vdr_out = dir.join("vdr.out");
    let out = std::fs::File::create(&vdr_out).unwrap();
    let mut vdr = Proc(
        ns.exec("unshare")
            .args(["--mount", "--propagation", "private", "sh", "-c", &script])
            .env("TZ", "UTC")
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .expect("vdr"),
    );
    let vdr_fail = |what: &str| -> String {
        format!(
            "{what}\nVDR stdout/stderr:\n{}\nVDR syslog:\n{}\nserver:\n{}",
            std::fs::read_to_string(&vdr_out).unwrap_or_default(),
            vdr_text(),
            server_text()
        )
    };

    // Discovery over SSDP (VDR searches at start; SCAN asks again).
    let end = Instant::now() + Duration::from_secs(90);
    loop {
        if let Ok(Some(st)) = vdr.0.try_wait() {
            panic!("{}", vdr_fail(&format!("VDR exited: {st}")));
        }
        let list = svdrp(&ns, "PLUG satip LIST");
        if list.iter().any(|l| l.contains("127.0.0.1|")) {
            eprintln!("VDR lists: {list:?}");
            break;
        }
        assert!(Instant::now() < end, "{}", vdr_fail("no server discovered"));
        svdrp(&ns, "PLUG satip SCAN");
        std::thread::sleep(Duration::from_secs(1));
    }

    // A timer from a minute ago to ten minutes ahead records at once.
    let (day, start) = utc_fields(-60);
    let (_, stop) = utc_fields(600);
    let r = svdrp(&ns, &format!("NEWT 1:1:{day}:{start}:{stop}:50:99:dvb2ip:"));
    assert!(r.iter().any(|l| l.starts_with("250")), "NEWT: {r:?}");

    // Until the recording holds 20000 packets (about 8 s of the mux's service) with video
    // and audio, at most 180 s.
    let want = 20_000 * 188;
    let end = Instant::now() + Duration::from_secs(180);
    let file = loop {
        if let Ok(Some(st)) = vdr.0.try_wait() {
            panic!("{}", vdr_fail(&format!("VDR exited: {st}")));
        }
        if let Some(f) = recordings(&video)
            .into_iter()
            .find(|f| std::fs::metadata(f).is_ok_and(|m| m.len() as usize >= want))
        {
            break f;
        }
        assert!(Instant::now() < end, "{}", vdr_fail("no recording"));
        std::thread::sleep(Duration::from_millis(500));
    };
    // Stop recording (timer off), then check the file as VDR left it.
    let before = vdr_text().len();
    let r = svdrp(&ns, "MODT 1 off");
    assert!(r.iter().any(|l| l.starts_with("250")), "MODT: {r:?}");
    let end = Instant::now() + Duration::from_secs(60);
    while !vdr_text()[before..].contains("') stop") {
        assert!(
            Instant::now() < end,
            "{}",
            vdr_fail("recording did not stop")
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let ts = std::fs::read(&file).unwrap();
    let (packets, errors, pids) = cc_errors(&ts[..ts.len() / 188 * 188]);
    eprintln!(
        "VDR recorded {} ({packets} packets, PIDs {pids:?}), {errors} continuity errors",
        file.display()
    );
    let log = vdr_text();
    assert!(pids.contains(&0x101) && pids.contains(&0x102), "{pids:?}");
    assert_eq!(errors, 0, "{}", vdr_fail("continuity errors"));
    assert!(
        !log.contains("video data stream broken"),
        "{}",
        vdr_fail("VDR: video data stream broken")
    );
    // VDR's own count of errors in the recording (VDR 2.6: "timer … stopped with N errors").
    assert!(
        !log.lines()
            .any(|l| l.contains("stopped with") && !l.contains("stopped with 0 errors")),
        "{}",
        vdr_fail("VDR counted errors")
    );
}
