//! `dvb2ip-bench soak`: a bounded soak of one `dvb2ip serve` process on loopback.
//!
//! The server is a child process (the `dvb2ip` binary beside this one, as for `satip`) with the
//! embedded configuration plus: SSDP and hardware probing off, free HTTP/CSS ports, a short
//! session timeout, DVB-CSS on the `news` channel, and a fault schedule on the "Emulated
//! DVB-C" frontend (`[adapter.faults] lose_lock_after_ms`, `lock_lost_for_ms`): the emulator
//! drops the lock that long after every lock, for two seconds, every few minutes (scaled down
//! for short runs).
//!
//! Clients, each on its own thread (RTP, HTTP) or task (CSS), all in this process:
//! - **stayers** hold one session from start to end: RTP (SAT>IP SETUP/PLAY on the DVB-T2 and
//!   DVB-T muxes, plus the `/ch/news` channel whose CSS the CSS clients use), HTTP (`GET /?…`),
//!   CSS (CII, TS, WC). RTP stayers on the DVB-C mux, whose frontend loses lock, are a class of
//!   their own ("lock-loss stayers"): they see a gap per lock loss, and TS continuity restarts
//!   with the multiplex, so their loss and CC figures are printed but not held to zero; what is
//!   asked of them is that the session survives (keep-alives answered to the end) and data
//!   flows again after every loss.
//! - **churners** join, stay a few seconds, leave, and join again until the end, on any mux
//!   (the DVB-S2 one only has churners, so its frontend is tuned and released over and over).
//!   One leave in four is a kill: no TEARDOWN, the RTSP connection closed (half of them with a
//!   reset) and the UDP sockets abandoned, so the session has to time out. The abandoned ports
//!   are held, unread, until that session must have expired, so that a later client is not
//!   handed the same port and the dead session's stream.
//!
//! "Loss" is RTP sequence numbers never received (expected − received) and "CC errors" are TS
//! continuity errors, per session, from the first datagram to the leave; an HTTP client has no
//! RTP, so its CC errors include any drop. A stall is a second or more without data once data
//! flowed. Every few seconds the server's RSS, open descriptors and threads are sampled; the
//! slopes are least-squares fits (per minute) over the samples after the warm-up. At the end
//! every client leaves, the bench waits (bounded) until the status page shows every frontend
//! without users and the descriptor count back near its idle value, then stops the server
//! with SIGTERM and checks that it exits cleanly.
//!
//! Hard targets (exit status, and what the CI test checks): 0 loss and 0 CC errors on the
//! stayers, every stayer set up and alive to the end, every frontend released, the server
//! alive to the end and exiting cleanly, descriptors back within [`FD_SLACK`] of idle.
//! Printed, not enforced: churners' figures and RSS/fd slopes ("flat" is judged, see
//! [`RSS_FLAT_SHARE_PER_HOUR`]). The last line, `soak-summary: key=value …`, is for scripts.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::ops::ControlFlow;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

use crate::satip::{self, Rtsp};
use crate::satip_rx::{self as rx, Receiver, NONE};

/// What `dvb2ip-bench soak` runs.
#[derive(Debug, Clone)]
pub struct Options {
    pub minutes: f64,
    pub rtp: usize,
    pub http: usize,
    pub css: usize,
    pub seed: u64,
}

/// A multiplex the clients ask for.
struct Mux {
    name: &'static str,
    query: &'static str,
    /// On the frontend with the lock-loss schedule.
    lock_loss: bool,
    /// Stayers use it (the others only get churners).
    stay: bool,
}

const MUXES: [Mux; 4] = [
    Mux {
        name: "DVB-T2 474 MHz",
        query: "freq=474&msys=dvbt2&bw=8&plp=0",
        lock_loss: false,
        stay: true,
    },
    Mux {
        name: "DVB-T 506 MHz",
        query: "freq=506&msys=dvbt&bw=8",
        lock_loss: false,
        stay: true,
    },
    Mux {
        name: "DVB-C 346 MHz",
        query: "freq=346&msys=dvbc&sr=6900&mtype=256qam",
        lock_loss: true,
        stay: true,
    },
    Mux {
        name: "DVB-S2 11494 MHz",
        query: "src=1&freq=11494&pol=h&msys=dvbs2&sr=22000&mtype=8psk&fec=34&ro=0.35&plts=off",
        lock_loss: false,
        stay: false,
    },
];
/// Index of the lock-loss mux in [`MUXES`].
const LOCK_LOSS_MUX: usize = 2;
/// The emulated adapter that gets the lock-loss schedule (the only one that tunes DVB-C).
const LOCK_LOSS_ADAPTER: &str = "Emulated DVB-C";
/// How long each lock loss lasts.
const LOCK_LOST_FOR_MS: u64 = 2000;
/// PID sets (every mux has services at PMT 0x100, 0x200 and 0x300): a TV service with SI, a
/// TV service, a radio service.
const PIDS: [&str; 3] = [
    "0,16,17,18,20,256,257,258",
    "0,17,18,512,513,514",
    "0,17,768,770",
];
/// The channel the anchor stayer plays and whose DVB-CSS the CSS clients use.
const CHANNEL: &str = "news";
/// Its TEMI timeline (timescale 90 kHz in the embedded configuration).
const TEMI: &str = "urn:dvb:css:timeline:temi:1:1";
const TEMI_RATE: f64 = 90_000.0;
/// CC errors in this window after a session's first datagram are counted apart (`cc_start`):
/// a `/ch/` mount (suspend mode reset) sends a few packets prerolled at DESCRIBE before the
/// restarted multiplex, whose continuity counters start again (a start-of-stream artefact,
/// not a degradation over the run).
const START_WINDOW: Duration = Duration::from_secs(1);
/// No data for this long, once data flowed, is a stall.
const STALL: Duration = Duration::from_secs(1);
/// How often a client thread looks at its counters.
const POLL: Duration = Duration::from_millis(100);
/// Share of churner leaves that are kills.
const KILL_P: f64 = 0.25;
/// Share of RTP churner joins on the `news` channel rather than a SAT>IP query.
const CHANNEL_P: f64 = 0.15;
/// Descriptors the server may hold at the end above its idle count.
pub const FD_SLACK: i64 = 8;
/// RSS counts as flat if its slope projects less than this share of the mean per hour.
const RSS_FLAT_SHARE_PER_HOUR: f64 = 0.10;
/// Descriptors count as flat below this slope (per minute).
const FD_FLAT_PER_MIN: f64 = 0.5;
/// Longest wait for the server to start (the first start may generate the emulated content).
const START_TIMEOUT: Duration = Duration::from_secs(180);
const IO_TIMEOUT: Duration = Duration::from_secs(5);

/// Timings derived from the run length.
#[derive(Debug, Clone)]
struct Plan {
    total: Duration,
    warm_up: Duration,
    lock_loss_every: Duration,
    session_timeout: u32,
    keepalive: Duration,
    dwell_max: Duration,
    sample_every: Duration,
}

impl Plan {
    fn new(minutes: f64) -> Plan {
        let s = minutes * 60.0;
        let session_timeout = (s / 8.0).clamp(10.0, 30.0) as u32;
        Plan {
            total: Duration::from_secs_f64(s),
            warm_up: Duration::from_secs_f64((s * 0.2).clamp(20.0, 300.0)),
            lock_loss_every: Duration::from_secs_f64((s / 6.0).clamp(15.0, 180.0)),
            session_timeout,
            keepalive: Duration::from_secs(u64::from(session_timeout / 3).max(1)),
            dwell_max: Duration::from_secs_f64((s / 5.0).clamp(5.0, 60.0)),
            sample_every: Duration::from_secs(if s < 600.0 { 1 } else { 2 }),
        }
    }
}

// ---- small helpers ----------------------------------------------------------------------------

/// xorshift64*: a seeded sequence for the clients' choices.
struct Rng(u64);

impl Rng {
    fn new(seed: u64, stream: u64) -> Rng {
        let mut r = Rng((seed ^ stream.wrapping_mul(0x9e37_79b9_7f4a_7c15)) | 1);
        r.next();
        r
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
    fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }
    fn between(&mut self, lo: Duration, hi: Duration) -> Duration {
        lo + (hi.saturating_sub(lo)).mul_f64(self.unit())
    }
}

fn proc_fds(pid: u32) -> Option<u64> {
    Some(std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count() as u64)
}

fn proc_threads(pid: u32) -> Option<u64> {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("Threads:"))
        .and_then(|v| v.trim().parse().ok())
}

/// Least-squares slope of `(seconds, value)` points, per minute.
pub fn slope_per_min(points: &[(f64, f64)]) -> Option<f64> {
    if points.len() < 3 {
        return None;
    }
    let n = points.len() as f64;
    let mx = points.iter().map(|p| p.0).sum::<f64>() / n;
    let my = points.iter().map(|p| p.1).sum::<f64>() / n;
    let sxx: f64 = points.iter().map(|p| (p.0 - mx).powi(2)).sum();
    let sxy: f64 = points.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
    (sxx > 0.0).then(|| sxy / sxx * 60.0)
}

/// Stall accounting over a growing counter.
struct Stalls {
    last: u64,
    since: Instant,
    stalled: bool,
    count: u64,
    longest: Duration,
}

impl Stalls {
    fn new() -> Stalls {
        Stalls {
            last: 0,
            since: Instant::now(),
            stalled: false,
            count: 0,
            longest: Duration::ZERO,
        }
    }
    fn update(&mut self, value: u64, now: Instant) {
        if value != self.last {
            if self.stalled {
                self.longest = self.longest.max(now - self.since);
                self.stalled = false;
            }
            self.last = value;
            self.since = now;
        } else if self.last > 0 && !self.stalled && now - self.since >= STALL {
            self.stalled = true;
            self.count += 1;
        }
    }
    fn finish(&mut self, now: Instant) {
        if self.stalled {
            self.longest = self.longest.max(now - self.since);
        }
    }
}

// ---- what each session leaves behind ----------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Proto {
    Rtp,
    Http,
    Css,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Role {
    Stayer,
    LockLossStayer,
    Churner,
}

#[derive(Debug, Clone)]
struct Record {
    proto: Proto,
    role: Role,
    /// On the mux whose frontend loses lock.
    lock_loss_mux: bool,
    target: String,
    /// Set up (RTSP PLAY / HTTP 200 / CSS connected) and received data (CSS: what it needs).
    ok: bool,
    killed: bool,
    error: Option<String>,
    /// RTP datagrams, TS packets (HTTP), messages or exchanges (CSS).
    units: u64,
    bytes: u64,
    lost: u64,
    /// CC errors after [`START_WINDOW`].
    cc: u64,
    /// CC errors in the [`START_WINDOW`].
    cc_start: u64,
    rx_drops: u64,
    stalls: u64,
    longest_stall: Duration,
}

impl Record {
    fn new(proto: Proto, role: Role, lock_loss_mux: bool, target: String) -> Record {
        Record {
            proto,
            role,
            lock_loss_mux,
            target,
            ok: false,
            killed: false,
            error: None,
            units: 0,
            bytes: 0,
            lost: 0,
            cc: 0,
            cc_start: 0,
            rx_drops: 0,
            stalls: 0,
            longest_stall: Duration::ZERO,
        }
    }
}

/// What the clients share.
struct Ctx {
    plan: Plan,
    rtsp_port: u16,
    http_port: u16,
    cii_port: u16,
    wc_port: u16,
    end: Instant,
    records: Mutex<Vec<Record>>,
    /// Sessions open now, per [`Proto`].
    active: [AtomicUsize; 3],
    /// The anchor (`/ch/news` stayer) plays: the channel's CSS servers are up.
    anchor_playing: AtomicBool,
    anchor_done: AtomicBool,
}

impl Ctx {
    fn push(&self, r: Record) {
        self.records.lock().unwrap().push(r);
    }
}

/// Sockets of a closed session, held until `until`.
type Grave = Vec<(Instant, UdpSocket, UdpSocket)>;

fn bury(grave: &mut Grave, until: Instant, rtp: UdpSocket, rtcp: UdpSocket) {
    grave.push((until, rtp, rtcp));
    let now = Instant::now();
    grave.retain(|g| g.0 > now);
}

// ---- server process ---------------------------------------------------------------------------

struct ServerProc {
    child: Child,
    rtsp_port: u16,
    log: PathBuf,
}

impl ServerProc {
    fn spawn(conf: &Path, log: PathBuf) -> anyhow::Result<ServerProc> {
        let exe = satip::server_exe(satip::Server::Dvb2ip)?;
        let mut cmd = Command::new(&exe);
        cmd.arg("serve")
            .arg("--config")
            .arg(conf)
            .args(["--rtsp-port", "0", "--bind", "127.0.0.1"])
            .env_remove("GST_PLUGIN_PATH")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).context("server log file")?);
        // SAFETY: prctl is async-signal-safe; the child dies with the bench.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let mut child = cmd
            .spawn()
            .with_context(|| format!("starting {}", exe.display()))?;
        let stdout = child.stdout.take().context("server stdout")?;
        let (tx, port_rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(p) = line
                    .split_once("serving RTSP on ")
                    .and_then(|(_, a)| a.trim().rsplit(':').next()?.parse::<u16>().ok())
                {
                    let _ = tx.send(p);
                }
            }
        });
        let mut s = ServerProc {
            child,
            rtsp_port: 0,
            log,
        };
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Ok(p) = port_rx.recv_timeout(Duration::from_millis(100)) {
                s.rtsp_port = p;
                return Ok(s);
            }
            if !s.alive() {
                bail!("dvb2ip serve exited at start:\n{}", s.log_tail());
            }
            if Instant::now() >= deadline {
                bail!("dvb2ip serve did not start in {START_TIMEOUT:?}");
            }
        }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    /// SIGTERM, then the exit status (`None`: had to be killed, or already gone).
    fn stop(&mut self) -> Option<std::process::ExitStatus> {
        if !self.alive() {
            return None;
        }
        // SAFETY: signalling our own child.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        if rx::wait_until(Duration::from_secs(15), || !self.alive()) {
            return self.child.wait().ok();
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        None
    }
}

impl Drop for ServerProc {
    fn drop(&mut self) {
        if self.alive() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Free TCP ports (HTTP, CSS-CII/TS) and a free UDP port (CSS-WC), bound at once.
fn free_ports() -> anyhow::Result<(u16, u16, u16)> {
    let a = std::net::TcpListener::bind("127.0.0.1:0")?;
    let b = std::net::TcpListener::bind("127.0.0.1:0")?;
    let c = UdpSocket::bind("127.0.0.1:0")?;
    Ok((
        a.local_addr()?.port(),
        b.local_addr()?.port(),
        c.local_addr()?.port(),
    ))
}

/// The entry of the array of tables `array` (`[[adapter]]`, `[[channel]]`) called `name`.
fn named<'a>(t: &'a mut toml::Table, array: &str, name: &str) -> Option<&'a mut toml::Table> {
    t.get_mut(array)?
        .as_array_mut()?
        .iter_mut()
        .filter_map(|v| v.as_table_mut())
        .find(|e| e.get("name").and_then(|n| n.as_str()) == Some(name))
}

/// The embedded configuration with the soak's changes (see the module documentation).
fn server_config(
    plan: &Plan,
    max_sessions: usize,
    (http, cii, wc): (u16, u16, u16),
) -> anyhow::Result<String> {
    let mut t = crate::satip::server_table_with(
        Some(max_sessions),
        &[
            ("server", "bind", "127.0.0.1".into()),
            ("server", "http_port", i64::from(http).into()),
            (
                "server",
                "session_timeout",
                i64::from(plan.session_timeout).into(),
            ),
        ],
    )?;
    let adapter = named(&mut t, "adapter", LOCK_LOSS_ADAPTER).with_context(|| {
        format!("no adapter {LOCK_LOSS_ADAPTER:?} in the embedded configuration")
    })?;
    let mut faults = toml::Table::new();
    faults.insert(
        "lose_lock_after_ms".into(),
        (plan.lock_loss_every.as_millis() as i64).into(),
    );
    faults.insert("lock_lost_for_ms".into(), (LOCK_LOST_FOR_MS as i64).into());
    adapter.insert("faults".into(), faults.into());
    let channel = named(&mut t, "channel", CHANNEL)
        .with_context(|| format!("no channel {CHANNEL:?} in the embedded configuration"))?;
    let mut css = toml::Table::new();
    css.insert("cii_port".into(), i64::from(cii).into());
    css.insert("wc_port".into(), i64::from(wc).into());
    channel.insert("css".into(), css.into());
    Ok(toml::to_string(&t)?)
}

// ---- HTTP (client side) -----------------------------------------------------------------------

/// Decodes a `Transfer-Encoding: chunked` body incrementally (or passes bytes through).
struct Dechunk {
    chunked: bool,
    /// Bytes left in the current chunk; `None` while reading a size line.
    remaining: Option<usize>,
    /// After a chunk's data: skipping its CRLF.
    trailer: bool,
    line: Vec<u8>,
    done: bool,
}

impl Dechunk {
    fn new(chunked: bool) -> Dechunk {
        Dechunk {
            chunked,
            remaining: None,
            trailer: false,
            line: Vec::new(),
            done: false,
        }
    }

    fn feed(&mut self, mut input: &[u8], out: &mut Vec<u8>) -> anyhow::Result<()> {
        if !self.chunked {
            out.extend_from_slice(input);
            return Ok(());
        }
        while !input.is_empty() && !self.done {
            match self.remaining {
                Some(n) => {
                    let k = n.min(input.len());
                    out.extend_from_slice(&input[..k]);
                    input = &input[k..];
                    self.remaining = (n > k).then_some(n - k);
                    self.trailer = n == k;
                }
                None => {
                    let Some(nl) = input.iter().position(|&b| b == b'\n') else {
                        self.line.extend_from_slice(input);
                        if self.line.len() > 1024 {
                            bail!("chunk size line too long");
                        }
                        return Ok(());
                    };
                    self.line.extend_from_slice(&input[..nl]);
                    input = &input[nl + 1..];
                    let line = String::from_utf8_lossy(&self.line).trim().to_string();
                    self.line.clear();
                    if std::mem::take(&mut self.trailer) {
                        if !line.is_empty() {
                            bail!("chunk not followed by CRLF");
                        }
                        continue;
                    }
                    let size = line.split(';').next().unwrap_or("").trim();
                    let n = usize::from_str_radix(size, 16)
                        .with_context(|| format!("bad chunk size line {line:?}"))?;
                    if n == 0 {
                        self.done = true;
                    } else {
                        self.remaining = Some(n);
                    }
                }
            }
        }
        Ok(())
    }
}

/// Sends `GET target` and reads the response head; returns (status line, head, body bytes
/// already read).
fn http_request(
    s: &mut TcpStream,
    port: u16,
    target: &str,
) -> anyhow::Result<(u16, String, Vec<u8>)> {
    let req = format!(
        "GET {target} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUser-Agent: dvb2ip-bench-soak\r\nConnection: close\r\n\r\n"
    );
    s.write_all(req.as_bytes())?;
    let deadline = Instant::now() + IO_TIMEOUT * 2;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_string();
            let status = head
                .split_whitespace()
                .nth(1)
                .and_then(|c| c.parse().ok())
                .with_context(|| format!("bad status line in {head:?}"))?;
            return Ok((status, head, buf[end + 4..].to_vec()));
        }
        if buf.len() > 64 * 1024 || Instant::now() >= deadline {
            bail!("no complete response head");
        }
        match s.read(&mut chunk) {
            Ok(0) => bail!("connection closed before the response head"),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(e) => return Err(e.into()),
        }
    }
}

fn head_has(head: &str, name: &str, value: &str) -> bool {
    head.lines().any(|l| {
        l.split_once(':').is_some_and(|(k, v)| {
            k.trim().eq_ignore_ascii_case(name) && v.to_ascii_lowercase().contains(value)
        })
    })
}

/// A whole small HTTP response body (the status page).
fn http_get(port: u16, target: &str) -> anyhow::Result<String> {
    let mut s = TcpStream::connect_timeout(&SocketAddr::from(([127, 0, 0, 1], port)), IO_TIMEOUT)?;
    s.set_read_timeout(Some(IO_TIMEOUT))?;
    s.set_write_timeout(Some(IO_TIMEOUT))?;
    let (status, head, rest) = http_request(&mut s, port, target)?;
    if status != 200 {
        bail!("GET {target}: {}", head.lines().next().unwrap_or(""));
    }
    let mut raw = rest;
    s.read_to_end(&mut raw)?;
    let mut body = Vec::new();
    Dechunk::new(head_has(&head, "transfer-encoding", "chunked")).feed(&raw, &mut body)?;
    Ok(String::from_utf8_lossy(&body).into_owned())
}

/// One frontend of the status page.
#[derive(Debug, Clone)]
struct Frontend {
    name: String,
    users: usize,
    tuned: String,
}

/// The frontends of the status page (`GET /`, its "Frontends" table).
fn frontends(http_port: u16) -> anyhow::Result<Vec<Frontend>> {
    let page = http_get(http_port, "/")?;
    let table = page
        .split_once("<h2>Frontends</h2>")
        .and_then(|(_, t)| t.split_once("</table>"))
        .map(|(t, _)| t)
        .context("status page without a Frontends table")?;
    let mut out = Vec::new();
    for row in table.lines() {
        let Some(cells) = row
            .trim()
            .strip_prefix("<tr><td>")
            .and_then(|r| r.strip_suffix("</td></tr>"))
        else {
            continue;
        };
        let cols: Vec<&str> = cells.split("</td><td>").collect();
        if cols.len() < 6 {
            bail!("unexpected frontend row {row:?}");
        }
        out.push(Frontend {
            name: cols[1].to_string(),
            users: cols[4]
                .parse()
                .with_context(|| format!("users in row {row:?}"))?,
            tuned: cols[5].to_string(),
        });
    }
    if out.is_empty() {
        bail!("status page lists no frontend");
    }
    Ok(out)
}

// ---- RTP clients ------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy)]
enum RtpTarget {
    Satip { mux: usize, pids: usize },
    Channel,
}

impl RtpTarget {
    fn describe(self) -> String {
        match self {
            RtpTarget::Satip { mux, pids } => format!("{} pids={}", MUXES[mux].name, PIDS[pids]),
            RtpTarget::Channel => format!("/ch/{CHANNEL}"),
        }
    }
    fn lock_loss(self) -> bool {
        matches!(self, RtpTarget::Satip { mux, .. } if MUXES[mux].lock_loss)
    }
}

/// A playing RTP session: its connection and the URL for keep-alives and TEARDOWN.
struct RtpConn {
    rtsp: Rtsp,
    url: String,
    channel: bool,
}

fn rtp_open(ctx: &Ctx, target: RtpTarget, rtp: &UdpSocket) -> anyhow::Result<RtpConn> {
    let port = ctx.rtsp_port;
    let mut rtsp = Rtsp::connect(port)?;
    let tr = satip::transport(rtp)?;
    match target {
        RtpTarget::Satip { mux, pids } => {
            let r = rtsp.request(
                "SETUP",
                &format!(
                    "rtsp://127.0.0.1:{port}/?{}&pids={}",
                    MUXES[mux].query, PIDS[pids]
                ),
                &[("Transport", &tr)],
            )?;
            let sid = r
                .header("com.ses.streamID")
                .context("SETUP answer without com.ses.streamID")?
                .to_string();
            let url = format!("rtsp://127.0.0.1:{port}/stream={sid}");
            rtsp.request("PLAY", &url, &[])?;
            Ok(RtpConn {
                rtsp,
                url,
                channel: false,
            })
        }
        RtpTarget::Channel => {
            let url = format!("rtsp://127.0.0.1:{port}/ch/{CHANNEL}");
            let d = rtsp.request("DESCRIBE", &url, &[("Accept", "application/sdp")])?;
            let base = d
                .header("Content-Base")
                .map(str::to_string)
                .unwrap_or_else(|| format!("{url}/"));
            let control = d
                .body
                .split("\nm=")
                .nth(1)
                .and_then(|m| m.lines().find_map(|l| l.trim().strip_prefix("a=control:")))
                .unwrap_or("stream=0")
                .to_string();
            let setup_url = if control.starts_with("rtsp://") {
                control
            } else {
                format!("{}/{control}", base.trim_end_matches('/'))
            };
            rtsp.request("SETUP", &setup_url, &[("Transport", &tr)])?;
            rtsp.request("PLAY", &base, &[])?;
            Ok(RtpConn {
                rtsp,
                url: base,
                channel: true,
            })
        }
    }
}

/// One RTP session from SETUP to its leave at `until` (TEARDOWN, or a kill if `kill`).
fn rtp_session(
    ctx: &Ctx,
    role: Role,
    target: RtpTarget,
    until: Instant,
    kill: Option<bool>,
    grave: &mut Grave,
) -> Record {
    let mut rec = Record::new(Proto::Rtp, role, target.lock_loss(), target.describe());
    let (rtp, rtcp) = match satip::rtp_pair() {
        Ok(p) => p,
        Err(e) => {
            rec.error = Some(format!("sockets: {e:#}"));
            return rec;
        }
    };
    // The receiver reads this descriptor until it is stopped: keep it open until then (a
    // closed number would be reused by the next socket, e.g. this session's RTSP connection).
    let rx_sock = match rtp.try_clone() {
        Ok(s) => s,
        Err(e) => {
            rec.error = Some(format!("sockets: {e}"));
            return rec;
        }
    };
    let receiver = match Receiver::start(std::slice::from_ref(&rx_sock), 1, None) {
        Ok(r) => r,
        Err(e) => {
            rec.error = Some(format!("receiver: {e:#}"));
            return rec;
        }
    };
    let t_setup = Instant::now();
    let mut conn = match rtp_open(ctx, target, &rtp) {
        Ok(c) => c,
        Err(e) => {
            receiver.stop();
            drop(rx_sock);
            rec.error = Some(format!("setup (after {:?}): {e:#}", t_setup.elapsed()));
            bury(grave, Instant::now() + Duration::from_secs(2), rtp, rtcp);
            return rec;
        }
    };
    let anchor = matches!(target, RtpTarget::Channel) && role == Role::Stayer;
    ctx.active[Proto::Rtp as usize].fetch_add(1, Ordering::Relaxed);
    let c = receiver.sessions.clone();
    let counters = &c[0];
    let mut stalls = Stalls::new();
    let mut next_keepalive = Instant::now() + ctx.plan.keepalive;
    let mut first_seen: Option<Instant> = None;
    let mut cc_start: Option<u64> = None;
    loop {
        let now = Instant::now();
        let packets = counters.packets.load(Ordering::Relaxed);
        stalls.update(packets, now);
        if packets > 0 {
            let first = *first_seen.get_or_insert(now);
            if cc_start.is_none() && now >= first + START_WINDOW {
                cc_start = Some(counters.cc_errors.load(Ordering::Relaxed));
            }
        }
        if anchor && counters.first_ns.load(Ordering::Relaxed) != NONE {
            ctx.anchor_playing.store(true, Ordering::Relaxed);
        }
        if now >= until {
            break;
        }
        if now >= next_keepalive {
            next_keepalive = now + ctx.plan.keepalive;
            let (method, url) = if conn.channel {
                ("GET_PARAMETER", conn.url.clone())
            } else {
                ("OPTIONS", format!("rtsp://127.0.0.1:{}/", ctx.rtsp_port))
            };
            if let Err(e) = conn.rtsp.request(method, &url, &[]) {
                rec.error = Some(format!("keep-alive {method}: {e:#}"));
                break;
            }
        }
        std::thread::sleep(POLL.min(until.saturating_duration_since(now)));
    }
    let now = Instant::now();
    stalls.finish(now);
    let mut hold = now + Duration::from_secs(2);
    match kill {
        Some(reset) => {
            rec.killed = true;
            if reset {
                let _ =
                    socket2::SockRef::from(conn.rtsp.c.stream()).set_linger(Some(Duration::ZERO));
            }
            drop(conn);
            hold = now + Duration::from_secs(u64::from(ctx.plan.session_timeout) + 10);
        }
        None => {
            let url = conn.url.clone();
            if let Err(e) = conn.rtsp.request("TEARDOWN", &url, &[]) {
                rec.error.get_or_insert(format!("TEARDOWN: {e:#}"));
            }
        }
    }
    if anchor {
        ctx.anchor_done.store(true, Ordering::Relaxed);
    }
    ctx.active[Proto::Rtp as usize].fetch_sub(1, Ordering::Relaxed);
    receiver.stop();
    drop(rx_sock);
    rec.units = counters.packets.load(Ordering::Relaxed);
    rec.bytes = counters.bytes.load(Ordering::Relaxed);
    rec.lost = counters.lost.load(Ordering::Relaxed);
    let cc = counters.cc_errors.load(Ordering::Relaxed);
    rec.cc_start = cc_start.unwrap_or(cc);
    rec.cc = cc - rec.cc_start;
    rec.stalls = stalls.count;
    rec.longest_stall = stalls.longest;
    rec.rx_drops = rtp
        .local_addr()
        .map(|a| rx::socket_drops(&[a.port()]))
        .unwrap_or(0);
    rec.ok = rec.error.is_none() && rec.units > 0;
    if rec.units == 0 && rec.error.is_none() {
        rec.error = Some("no RTP datagram received".into());
    }
    bury(grave, hold, rtp, rtcp);
    rec
}

// ---- HTTP clients -----------------------------------------------------------------------------

fn http_session(
    ctx: &Ctx,
    role: Role,
    mux: usize,
    pids: usize,
    until: Instant,
    kill: bool,
) -> Record {
    let mut rec = Record::new(
        Proto::Http,
        role,
        MUXES[mux].lock_loss,
        format!("{} pids={}", MUXES[mux].name, PIDS[pids]),
    );
    let target = format!("/?{}&pids={}", MUXES[mux].query, PIDS[pids]);
    let mut s = match TcpStream::connect_timeout(
        &SocketAddr::from(([127, 0, 0, 1], ctx.http_port)),
        IO_TIMEOUT,
    ) {
        Ok(s) => s,
        Err(e) => {
            rec.error = Some(format!("connect: {e}"));
            return rec;
        }
    };
    let _ = s.set_read_timeout(Some(POLL));
    let _ = s.set_write_timeout(Some(IO_TIMEOUT));
    let (status, head, first) = match http_request(&mut s, ctx.http_port, &target) {
        Ok(r) => r,
        Err(e) => {
            rec.error = Some(format!("GET: {e:#}"));
            return rec;
        }
    };
    if status != 200 {
        rec.error = Some(format!("GET: {}", head.lines().next().unwrap_or("")));
        return rec;
    }
    ctx.active[Proto::Http as usize].fetch_add(1, Ordering::Relaxed);
    let mut dechunk = Dechunk::new(head_has(&head, "transfer-encoding", "chunked"));
    let mut cc = vec![0xffu8; 8192];
    let mut ts = Vec::with_capacity(256 * 1024);
    let mut buf = vec![0u8; 128 * 1024];
    let mut stalls = Stalls::new();
    let mut first_seen: Option<Instant> = None;
    let mut feed = |data: &[u8], rec: &mut Record, ts: &mut Vec<u8>| -> anyhow::Result<()> {
        dechunk.feed(data, ts)?;
        let whole = ts.len() / 188 * 188;
        let now = Instant::now();
        let first = *first_seen.get_or_insert(now);
        let errors = rx::check_ts(&ts[..whole], &mut cc, None);
        if now < first + START_WINDOW {
            rec.cc_start += errors;
        } else {
            rec.cc += errors;
        }
        rec.units += (whole / 188) as u64;
        rec.bytes += whole as u64;
        ts.drain(..whole);
        Ok(())
    };
    if let Err(e) = feed(&first, &mut rec, &mut ts) {
        rec.error = Some(format!("body: {e:#}"));
    }
    while rec.error.is_none() {
        let now = Instant::now();
        stalls.update(rec.units, now);
        if now >= until {
            break;
        }
        match s.read(&mut buf) {
            Ok(0) => rec.error = Some("the server ended the stream".into()),
            Ok(n) => {
                if let Err(e) = feed(&buf[..n], &mut rec, &mut ts) {
                    rec.error = Some(format!("body: {e:#}"));
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(e) => rec.error = Some(format!("read: {e}")),
        }
    }
    stalls.finish(Instant::now());
    if kill {
        rec.killed = true;
        let _ = socket2::SockRef::from(&s).set_linger(Some(Duration::ZERO));
    }
    drop(s);
    ctx.active[Proto::Http as usize].fetch_sub(1, Ordering::Relaxed);
    rec.stalls = stalls.count;
    rec.longest_stall = stalls.longest;
    rec.ok = rec.error.is_none() && rec.units > 0;
    if rec.units == 0 && rec.error.is_none() {
        rec.error = Some("no TS packet received".into());
    }
    rec
}

// ---- CSS clients ------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy)]
enum CssKind {
    Cii,
    Ts,
    Wc,
}

const CSS_KINDS: [CssKind; 3] = [CssKind::Cii, CssKind::Ts, CssKind::Wc];

async fn css_session(ctx: &Ctx, role: Role, kind: CssKind, dwell: Duration) -> Record {
    use dvb2ip::css::clients;
    let mut rec = Record::new(Proto::Css, role, false, format!("{kind:?}"));
    let wc_addr = SocketAddr::from(([127, 0, 0, 1], ctx.wc_port));
    ctx.active[Proto::Css as usize].fetch_add(1, Ordering::Relaxed);
    match kind {
        CssKind::Cii => {
            let url = format!("ws://127.0.0.1:{}/cii", ctx.cii_port);
            let (mut messages, mut content) = (0u64, false);
            let r = tokio::time::timeout(
                dwell,
                clients::cii_client(&url, |_, state, _| {
                    messages += 1;
                    content |= state.content_id.is_some();
                    ControlFlow::Continue(())
                }),
            )
            .await;
            rec.units = messages;
            match r {
                Err(_) => rec.ok = content,
                Ok(Ok(_)) => rec.error = Some("the server closed the CII connection".into()),
                Ok(Err(e)) => rec.error = Some(format!("CII: {e}")),
            }
            if !rec.ok && rec.error.is_none() {
                rec.error = Some("no contentId received".into());
            }
        }
        CssKind::Ts => {
            let url = format!("ws://127.0.0.1:{}/ts", ctx.cii_port);
            let mut cts = 0u64;
            let r = tokio::time::timeout(
                dwell,
                clients::ts_client(
                    &url,
                    wc_addr,
                    "",
                    TEMI,
                    TEMI_RATE,
                    Duration::from_secs(1),
                    |e| {
                        cts = e.control_timestamps;
                        ControlFlow::Continue(())
                    },
                ),
            )
            .await;
            rec.units = cts;
            match r {
                Err(_) => rec.ok = cts > 0,
                Ok(Ok(_)) => rec.error = Some("the server closed the TS connection".into()),
                Ok(Err(e)) => rec.error = Some(format!("TS: {e}")),
            }
            if !rec.ok && rec.error.is_none() {
                rec.error = Some("no control timestamp received".into());
            }
        }
        CssKind::Wc => {
            match clients::wc_client(wc_addr, dwell, |_| ControlFlow::Continue(())).await {
                Ok(s) => {
                    rec.units = s.exchanges;
                    rec.ok = s.adopted > 0;
                    if !rec.ok {
                        rec.error = Some(format!(
                            "no WC reply adopted ({} exchanges, {} timeouts)",
                            s.exchanges, s.timeouts
                        ));
                    }
                }
                Err(e) => rec.error = Some(format!("WC: {e}")),
            }
        }
    }
    ctx.active[Proto::Css as usize].fetch_sub(1, Ordering::Relaxed);
    rec
}

async fn css_slot(ctx: Arc<Ctx>, slot: usize, stayer: bool, seed: u64) {
    let mut rng = Rng::new(seed, 3000 + slot as u64);
    let role = if stayer { Role::Stayer } else { Role::Churner };
    // The channel's CSS servers exist while the anchor plays it.
    let ready = Instant::now() + Duration::from_secs(60);
    while !ctx.anchor_playing.load(Ordering::Relaxed) {
        if Instant::now() >= ready.min(ctx.end) || ctx.anchor_done.load(Ordering::Relaxed) {
            let mut rec = Record::new(Proto::Css, role, false, "-".into());
            rec.error = Some(format!("/ch/{CHANNEL} never played: no CSS to connect to"));
            ctx.push(rec);
            return;
        }
        tokio::time::sleep(POLL).await;
    }
    tokio::time::sleep(Duration::from_millis(200 * slot as u64)).await;
    let mut turn = slot;
    loop {
        let now = Instant::now();
        // Leave a little before the end, while the anchor still plays.
        let stop = ctx
            .end
            .checked_sub(Duration::from_secs(1))
            .unwrap_or(ctx.end);
        if now + Duration::from_secs(2) >= stop {
            break;
        }
        let dwell = if stayer {
            stop - now
        } else {
            rng.between(Duration::from_secs(3), ctx.plan.dwell_max)
                .min(stop - now)
        };
        let kind = CSS_KINDS[turn % CSS_KINDS.len()];
        let rec = css_session(&ctx, role, kind, dwell).await;
        ctx.push(rec);
        if stayer {
            break;
        }
        turn += 1 + rng.below(2);
        tokio::time::sleep(rng.between(Duration::from_millis(200), Duration::from_secs(2))).await;
    }
}

// ---- slots ------------------------------------------------------------------------------------

fn rtp_slot(ctx: Arc<Ctx>, slot: usize, stayer: Option<(Role, RtpTarget)>, seed: u64) {
    let mut rng = Rng::new(seed, 1000 + slot as u64);
    let mut grave = Grave::new();
    std::thread::sleep(Duration::from_millis(30 * slot as u64));
    if let Some((role, target)) = stayer {
        let rec = rtp_session(&ctx, role, target, ctx.end, None, &mut grave);
        ctx.push(rec);
        return;
    }
    while Instant::now() + Duration::from_secs(1) < ctx.end {
        let target = if rng.chance(CHANNEL_P) {
            RtpTarget::Channel
        } else {
            RtpTarget::Satip {
                mux: rng.below(MUXES.len()),
                pids: rng.below(PIDS.len()),
            }
        };
        let dwell = rng.between(Duration::from_secs(3), ctx.plan.dwell_max);
        let until = (Instant::now() + dwell).min(ctx.end);
        let kill = rng.chance(KILL_P).then(|| rng.chance(0.5));
        let rec = rtp_session(&ctx, Role::Churner, target, until, kill, &mut grave);
        ctx.push(rec);
        std::thread::sleep(rng.between(Duration::from_millis(200), Duration::from_secs(2)));
    }
}

fn http_slot(ctx: Arc<Ctx>, slot: usize, stayer: Option<(usize, usize)>, seed: u64) {
    let mut rng = Rng::new(seed, 2000 + slot as u64);
    std::thread::sleep(Duration::from_millis(30 * slot as u64));
    if let Some((mux, pids)) = stayer {
        let rec = http_session(&ctx, Role::Stayer, mux, pids, ctx.end, false);
        ctx.push(rec);
        return;
    }
    while Instant::now() + Duration::from_secs(1) < ctx.end {
        let (mux, pids) = (rng.below(MUXES.len()), rng.below(PIDS.len()));
        let dwell = rng.between(Duration::from_secs(3), ctx.plan.dwell_max);
        let until = (Instant::now() + dwell).min(ctx.end);
        let kill = rng.chance(KILL_P);
        let rec = http_session(&ctx, Role::Churner, mux, pids, until, kill);
        ctx.push(rec);
        std::thread::sleep(rng.between(Duration::from_millis(200), Duration::from_secs(2)));
    }
}

/// Stayers among `n` clients.
fn stayers(n: usize) -> usize {
    n.div_ceil(2)
}

/// What RTP stayer `k` plays: 0 the channel (the CSS anchor), every third on the lock-loss
/// mux, the others alternating between the stayers' other muxes with rotating PID sets.
fn rtp_stayer(k: usize) -> (Role, RtpTarget) {
    if k == 0 {
        return (Role::Stayer, RtpTarget::Channel);
    }
    if k % 3 == 2 {
        return (
            Role::LockLossStayer,
            RtpTarget::Satip {
                mux: LOCK_LOSS_MUX,
                pids: k % PIDS.len(),
            },
        );
    }
    let muxes: Vec<usize> = (0..MUXES.len())
        .filter(|&m| MUXES[m].stay && !MUXES[m].lock_loss)
        .collect();
    (
        Role::Stayer,
        RtpTarget::Satip {
            mux: muxes[k % muxes.len()],
            pids: k % PIDS.len(),
        },
    )
}

fn http_stayer(k: usize) -> (usize, usize) {
    let muxes: Vec<usize> = (0..MUXES.len())
        .filter(|&m| MUXES[m].stay && !MUXES[m].lock_loss)
        .collect();
    (muxes[k % muxes.len()], (k + 1) % PIDS.len())
}

// ---- the run ----------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy)]
struct Sample {
    t: f64,
    rss_kib: u64,
    fds: u64,
    threads: u64,
}

fn sample(pid: u32, start: Instant) -> Option<Sample> {
    Some(Sample {
        t: start.elapsed().as_secs_f64(),
        rss_kib: satip::proc_rss_kib(pid)?,
        fds: proc_fds(pid)?,
        threads: proc_threads(pid)?,
    })
}

/// Sum of a group of records.
#[derive(Debug, Default, Clone)]
struct Tally {
    sessions: usize,
    ok: usize,
    killed: usize,
    units: u64,
    bytes: u64,
    lost: u64,
    rx_drops: u64,
    cc: u64,
    cc_start: u64,
    stalls: u64,
    longest_stall: Duration,
    errors: Vec<String>,
}

fn tally<'a>(records: impl IntoIterator<Item = &'a Record>) -> Tally {
    let mut t = Tally::default();
    for r in records {
        t.sessions += 1;
        t.ok += usize::from(r.ok);
        t.killed += usize::from(r.killed);
        t.units += r.units;
        t.bytes += r.bytes;
        t.lost += r.lost;
        t.rx_drops += r.rx_drops;
        t.cc += r.cc;
        t.cc_start += r.cc_start;
        t.stalls += r.stalls;
        t.longest_stall = t.longest_stall.max(r.longest_stall);
        if let Some(e) = &r.error {
            t.errors.push(format!("{}: {e}", r.target));
        }
    }
    t
}

fn verdict(ok: bool) -> &'static str {
    if ok {
        "met"
    } else {
        "NOT met"
    }
}

/// Runs the soak and prints its report; `Ok(true)` if every hard target was met.
pub fn run(o: &Options) -> anyhow::Result<bool> {
    if !(o.minutes > 0.0 && o.minutes <= 240.0) {
        bail!("--minutes must be in (0, 240]");
    }
    if o.rtp == 0 || o.rtp > 500 || o.http > 200 || o.css > 100 {
        bail!("client counts: --rtp 1..=500 (the first plays the CSS channel), --http ..=200, --css ..=100");
    }
    let plan = Plan::new(o.minutes);
    let dir = std::env::temp_dir().join(format!("dvb2ip-bench-soak-{}", std::process::id()));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let ports = free_ports()?;
    let max_sessions = 2 * (o.rtp + o.http) + 16;
    let conf = dir.join("server.toml");
    std::fs::write(&conf, server_config(&plan, max_sessions, ports)?)
        .with_context(|| format!("writing {}", conf.display()))?;
    dvb2ip::config::Config::load(&conf)
        .map_err(|e| anyhow::anyhow!("generated configuration rejected: {e}"))?;
    let mut server = ServerProc::spawn(&conf, dir.join("server.log"))?;
    let pid = server.pid();
    let exe = satip::server_exe(satip::Server::Dvb2ip)?;
    let (rtp_stay, http_stay, css_stay) = (stayers(o.rtp), stayers(o.http), stayers(o.css));
    println!(
        "dvb2ip-bench soak: {:.1} min on 127.0.0.1, seed {}; server {} ({} build) pid {pid}",
        o.minutes,
        o.seed,
        exe.display(),
        if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        }
    );
    println!(
        "clients: {} RTP ({rtp_stay} stay: /ch/{CHANNEL}, {} on the lock-loss mux; {} churn), {} HTTP ({http_stay} stay), {} CSS ({css_stay} stay); a churner leave is a kill with p={KILL_P}",
        o.rtp,
        (0..rtp_stay).filter(|&k| rtp_stayer(k).0 == Role::LockLossStayer).count(),
        o.rtp - rtp_stay,
        o.http,
        o.css
    );
    println!(
        "faults: {LOCK_LOSS_ADAPTER:?} ({}) loses lock {:.0} s after each lock, for {LOCK_LOST_FOR_MS} ms; session timeout {} s, keep-alive every {} s; warm-up {:.0} s",
        MUXES[LOCK_LOSS_MUX].name,
        plan.lock_loss_every.as_secs_f64(),
        plan.session_timeout,
        plan.keepalive.as_secs(),
        plan.warm_up.as_secs_f64()
    );

    // Idle figures of the started server.
    std::thread::sleep(Duration::from_secs(1));
    let start = Instant::now();
    let idle = sample(pid, start).context("server process vanished")?;
    let ctx = Arc::new(Ctx {
        plan: plan.clone(),
        rtsp_port: server.rtsp_port,
        http_port: ports.0,
        cii_port: ports.1,
        wc_port: ports.2,
        end: start + plan.total,
        records: Mutex::new(Vec::new()),
        active: Default::default(),
        anchor_playing: AtomicBool::new(false),
        anchor_done: AtomicBool::new(false),
    });

    let mut threads = Vec::new();
    for slot in 0..o.rtp {
        let c = ctx.clone();
        let stay = (slot < rtp_stay).then(|| rtp_stayer(slot));
        let seed = o.seed;
        threads.push(
            std::thread::Builder::new()
                .name(format!("soak-rtp{slot}"))
                .spawn(move || rtp_slot(c, slot, stay, seed))?,
        );
    }
    for slot in 0..o.http {
        let c = ctx.clone();
        let stay = (slot < http_stay).then(|| http_stayer(slot));
        let seed = o.seed;
        threads.push(
            std::thread::Builder::new()
                .name(format!("soak-http{slot}"))
                .spawn(move || http_slot(c, slot, stay, seed))?,
        );
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("soak-css")
        .enable_all()
        .build()
        .context("tokio runtime")?;
    let css_tasks: Vec<_> = (0..o.css)
        .map(|slot| rt.spawn(css_slot(ctx.clone(), slot, slot < css_stay, o.seed)))
        .collect();

    // Sample until the end.
    let mut samples = vec![idle];
    let mut crashed = None;
    let report_every = (plan.total / 10).max(Duration::from_secs(10));
    let mut next_report = start + report_every;
    let mut next_sample = start + plan.sample_every;
    while Instant::now() < ctx.end {
        std::thread::sleep(next_sample.saturating_duration_since(Instant::now()));
        next_sample += plan.sample_every;
        if !server.alive() {
            crashed = Some(format!(
                "the server exited during the run:\n{}",
                server.log_tail()
            ));
            break;
        }
        if let Some(s) = sample(pid, start) {
            samples.push(s);
            if Instant::now() >= next_report {
                next_report += report_every;
                let a = |p: Proto| ctx.active[p as usize].load(Ordering::Relaxed);
                println!(
                    "  t={:>5.0} s  rss {:>6.1} MiB  fds {:>4}  threads {:>4}  open: rtp {} http {} css {}",
                    s.t,
                    s.rss_kib as f64 / 1024.0,
                    s.fds,
                    s.threads,
                    a(Proto::Rtp),
                    a(Proto::Http),
                    a(Proto::Css)
                );
            }
        }
    }
    // Every client leaves (each thread's I/O is bounded by its timeouts).
    for t in threads {
        let _ = t.join();
    }
    rt.block_on(async {
        for t in css_tasks {
            let _ = tokio::time::timeout(Duration::from_secs(30), t).await;
        }
    });
    drop(rt);
    let left_at = Instant::now();

    // Every frontend released once the killed clients' sessions expired.
    let release_budget = Duration::from_secs(u64::from(plan.session_timeout) + 30);
    let mut fes: anyhow::Result<Vec<Frontend>> = Err(anyhow::anyhow!("not asked"));
    if crashed.is_none() {
        loop {
            fes = frontends(ctx.http_port);
            let done = fes.as_ref().is_ok_and(|f| f.iter().all(|f| f.users == 0));
            if done || left_at.elapsed() >= release_budget || !server.alive() {
                break;
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    }
    let released_after = left_at.elapsed();
    // Descriptors back near idle.
    let mut end_fds = proc_fds(pid);
    let fd_deadline = Instant::now() + Duration::from_secs(20);
    while end_fds.is_some_and(|n| n as i64 > idle.fds as i64 + FD_SLACK)
        && Instant::now() < fd_deadline
    {
        std::thread::sleep(Duration::from_millis(500));
        end_fds = proc_fds(pid);
    }
    let end_sample = sample(pid, start);
    let alive_at_end = server.alive();
    if crashed.is_none() && !alive_at_end {
        crashed = Some(format!(
            "the server exited after the clients left:\n{}",
            server.log_tail()
        ));
    }
    let exit = server.stop();
    let clean_exit = alive_at_end && exit.is_some_and(|s| s.success());
    let log_tail = server.log_tail();
    drop(server);

    // ---- report ----
    let records = std::mem::take(&mut *ctx.records.lock().unwrap());
    println!();
    println!(
        "{:<34} {:>5} {:>4} {:>6} {:>10} {:>9} {:>6} {:>6} {:>5} {:>8} {:>6} {:>8}",
        "class",
        "sess",
        "ok",
        "killed",
        "units",
        "MB",
        "lost",
        "rxdrop",
        "cc",
        "cc_start",
        "stalls",
        "max_stall"
    );
    let groups: [(&str, Proto, Role, Option<bool>); 9] = [
        ("rtp stayers", Proto::Rtp, Role::Stayer, None),
        (
            "rtp lock-loss stayers",
            Proto::Rtp,
            Role::LockLossStayer,
            None,
        ),
        ("rtp churners", Proto::Rtp, Role::Churner, Some(false)),
        (
            "rtp churners on the lock-loss mux",
            Proto::Rtp,
            Role::Churner,
            Some(true),
        ),
        ("http stayers", Proto::Http, Role::Stayer, None),
        ("http churners", Proto::Http, Role::Churner, Some(false)),
        (
            "http churners on the lock-loss mux",
            Proto::Http,
            Role::Churner,
            Some(true),
        ),
        ("css stayers", Proto::Css, Role::Stayer, None),
        ("css churners", Proto::Css, Role::Churner, None),
    ];
    let pick = |p: Proto, r: Role, ll: Option<bool>| {
        tally(
            records
                .iter()
                .filter(|x| x.proto == p && x.role == r && ll.is_none_or(|l| x.lock_loss_mux == l)),
        )
    };
    let mut all_errors = Vec::new();
    for (name, p, r, ll) in groups {
        let t = pick(p, r, ll);
        if t.sessions == 0 {
            continue;
        }
        println!(
            "{:<34} {:>5} {:>4} {:>6} {:>10} {:>9.1} {:>6} {:>6} {:>5} {:>8} {:>6} {:>7.1}s",
            name,
            t.sessions,
            t.ok,
            t.killed,
            t.units,
            t.bytes as f64 / 1e6,
            if p == Proto::Rtp {
                t.lost.to_string()
            } else {
                "-".into()
            },
            if p == Proto::Rtp {
                t.rx_drops.to_string()
            } else {
                "-".into()
            },
            if p == Proto::Css {
                "-".into()
            } else {
                t.cc.to_string()
            },
            if p == Proto::Css {
                "-".into()
            } else {
                t.cc_start.to_string()
            },
            if p == Proto::Css {
                "-".into()
            } else {
                t.stalls.to_string()
            },
            t.longest_stall.as_secs_f64()
        );
        all_errors.extend(t.errors.iter().map(|e| format!("{name}: {e}")));
    }
    println!("units: RTP datagrams, TS packets (HTTP), CII messages / TS control timestamps / WC exchanges (CSS)");
    println!(
        "cc: TS continuity errors after the first {:.0} s of a session; cc_start: within it (a /ch/ mount sends packets prerolled at DESCRIBE before the restarted mux)",
        START_WINDOW.as_secs_f64()
    );
    for r in records.iter().filter(|r| {
        matches!(r.role, Role::Stayer | Role::LockLossStayer)
            && (r.lost > 0 || r.cc > 0 || r.cc_start > 0)
    }) {
        println!(
            "  {:?} {:?} on {}: {} units, lost {}, rxdrop {}, cc {}, cc_start {}, stalls {}",
            r.proto, r.role, r.target, r.units, r.lost, r.rx_drops, r.cc, r.cc_start, r.stalls
        );
    }
    let odd: Vec<&Record> = records
        .iter()
        .filter(|r| r.role == Role::Churner && !r.lock_loss_mux && (r.lost > 0 || r.cc > 0))
        .collect();
    for r in odd.iter().take(10) {
        println!(
            "  churner {:?} on {}{}: {} units, lost {}, rxdrop {}, cc {}, cc_start {}, stalls {} (max {:.1} s)",
            r.proto,
            r.target,
            if r.killed { " (killed)" } else { "" },
            r.units,
            r.lost,
            r.rx_drops,
            r.cc,
            r.cc_start,
            r.stalls,
            r.longest_stall.as_secs_f64()
        );
    }
    for e in all_errors.iter().take(12) {
        println!("  error: {e}");
    }
    if all_errors.len() > 12 {
        println!("  … {} more errors", all_errors.len() - 12);
    }

    let stay = tally(
        records
            .iter()
            .filter(|r| r.role == Role::Stayer && r.proto != Proto::Css),
    );
    let css_stay_t = pick(Proto::Css, Role::Stayer, None);
    let ll = pick(Proto::Rtp, Role::LockLossStayer, None);
    let churn = tally(records.iter().filter(|r| r.role == Role::Churner));
    let expected_stayers = rtp_stay - ll.sessions + http_stay;
    let stayers_ok = stay.sessions == expected_stayers && stay.ok == stay.sessions;
    let clean = stay.lost == 0 && stay.cc == 0;
    let css_ok = css_stay_t.sessions == css_stay && css_stay_t.ok == css_stay_t.sessions;
    let ll_ok = ll.ok == ll.sessions;
    let losses_expected =
        (plan.total.as_secs_f64() / (plan.lock_loss_every.as_secs_f64() + 2.3)).floor();

    println!();
    match &fes {
        Ok(f) => {
            let rows: Vec<String> = f
                .iter()
                .map(|f| format!("{} users {} ({})", f.name, f.users, f.tuned))
                .collect();
            println!(
                "frontends {:.1} s after the last client left: {}",
                released_after.as_secs_f64(),
                rows.join("; ")
            );
        }
        Err(e) => println!("frontends: status page not read: {e:#}"),
    }
    let in_use = fes
        .as_ref()
        .map_or(usize::MAX, |f| f.iter().map(|f| f.users).sum::<usize>());
    let warm: Vec<&Sample> = samples
        .iter()
        .filter(|s| s.t >= plan.warm_up.as_secs_f64())
        .collect();
    let rss_pts: Vec<(f64, f64)> = warm.iter().map(|s| (s.t, s.rss_kib as f64)).collect();
    let fd_pts: Vec<(f64, f64)> = warm.iter().map(|s| (s.t, s.fds as f64)).collect();
    let thr_pts: Vec<(f64, f64)> = warm.iter().map(|s| (s.t, s.threads as f64)).collect();
    let mean = |p: &[(f64, f64)]| p.iter().map(|x| x.1).sum::<f64>() / p.len().max(1) as f64;
    let (rss_slope, fd_slope, thr_slope) = (
        slope_per_min(&rss_pts),
        slope_per_min(&fd_pts),
        slope_per_min(&thr_pts),
    );
    let rss_mean = mean(&rss_pts);
    let fmt =
        |v: Option<f64>, unit: &str| v.map_or("n/a".into(), |v| format!("{v:+.2} {unit}/min"));
    println!(
        "after warm-up (t >= {:.0} s, {} samples): RSS {} (mean {:.1} MiB), fds {} (mean {:.1}), threads {} (mean {:.1})",
        plan.warm_up.as_secs_f64(),
        warm.len(),
        fmt(rss_slope, "KiB"),
        rss_mean / 1024.0,
        fmt(fd_slope, "fd"),
        mean(&fd_pts),
        fmt(thr_slope, "thread"),
        mean(&thr_pts)
    );
    // The allocator's arenas may still grow past the warm-up under churn: the second half of
    // the window shows whether growth went on or levelled off.
    let half = rss_pts.len() / 2;
    println!(
        "last half (t >= {:.0} s, {} samples): RSS {} (mean {:.1} MiB), fds {}",
        rss_pts.get(half).map_or(0.0, |p| p.0),
        rss_pts.len() - half,
        fmt(slope_per_min(&rss_pts[half..]), "KiB"),
        mean(&rss_pts[half..]) / 1024.0,
        fmt(slope_per_min(&fd_pts[half..]), "fd"),
    );
    let peak = samples.iter().map(|s| s.rss_kib).max().unwrap_or(0);
    println!(
        "server: idle rss {:.1} MiB fds {} threads {}; peak rss {:.1} MiB; at the end rss {} fds {} threads {}; exit on SIGTERM: {}",
        idle.rss_kib as f64 / 1024.0,
        idle.fds,
        idle.threads,
        peak as f64 / 1024.0,
        end_sample.map_or("-".into(), |s| format!("{:.1} MiB", s.rss_kib as f64 / 1024.0)),
        end_fds.map_or("-".into(), |n| n.to_string()),
        end_sample.map_or("-".into(), |s| s.threads.to_string()),
        match exit {
            Some(s) if s.success() => "clean".to_string(),
            Some(s) => format!("{s}"),
            None => "killed or already gone".into(),
        }
    );
    if let Some(c) = &crashed {
        println!("  {c}");
    } else if !clean_exit {
        println!("  server log tail:\n{log_tail}");
    }
    let fd_back = end_fds.is_some_and(|n| n as i64 <= idle.fds as i64 + FD_SLACK);
    let rss_flat = rss_slope.map(|s| s * 60.0 <= RSS_FLAT_SHARE_PER_HOUR * rss_mean);
    let fd_flat = fd_slope.map(|s| s <= FD_FLAT_PER_MIN);

    println!();
    println!("targets:");
    println!(
        "  0 RTP loss and 0 CC errors on the stayers ({} sessions: lost {}, rxdrop {}, cc {}; cc_start {} not counted): {}",
        stay.sessions,
        stay.lost,
        stay.rx_drops,
        stay.cc,
        stay.cc_start,
        verdict(clean)
    );
    println!(
        "  every stayer set up and alive to the end ({} of {expected_stayers} RTP/HTTP, {} of {css_stay} CSS): {}",
        stay.ok,
        css_stay_t.ok,
        verdict(stayers_ok && css_ok)
    );
    println!(
        "  lock-loss stayers survive every loss ({} of {} alive to the end over ~{losses_expected:.0} losses; lost {}, cc {}, stalls {}): {}",
        ll.ok,
        ll.sessions,
        ll.lost,
        ll.cc,
        ll.stalls,
        verdict(ll_ok)
    );
    println!(
        "  every frontend released at the end ({} users left): {}",
        if in_use == usize::MAX {
            "?".into()
        } else {
            in_use.to_string()
        },
        verdict(in_use == 0)
    );
    println!(
        "  no server crash, clean exit on SIGTERM: {}",
        verdict(crashed.is_none() && clean_exit)
    );
    println!(
        "  descriptors back within {FD_SLACK} of idle ({} -> {}): {}",
        idle.fds,
        end_fds.map_or("-".into(), |n| n.to_string()),
        verdict(fd_back)
    );
    println!(
        "  [printed, not enforced] churners: {} of {} joins ok, {} killed: {}",
        churn.ok,
        churn.sessions,
        churn.killed,
        verdict(churn.ok == churn.sessions)
    );
    println!(
        "  [printed, not enforced] RSS flat after warm-up (slope x 60 min <= {:.0} % of mean): {}; fds flat (slope <= {FD_FLAT_PER_MIN}/min): {}",
        RSS_FLAT_SHARE_PER_HOUR * 100.0,
        rss_flat.map_or("not measured", verdict),
        fd_flat.map_or("not measured", verdict)
    );
    let hard = clean
        && stayers_ok
        && css_ok
        && ll_ok
        && in_use == 0
        && crashed.is_none()
        && clean_exit
        && fd_back;
    println!(
        "soak-summary: stayers={} stayers_ok={} stayer_lost={} stayer_cc={} stayer_cc_start={} css_stayers={} css_stayers_ok={} lockloss_stayers={} lockloss_ok={} lockloss_stalls={} churn_sessions={} churn_ok={} churn_killed={} frontends_in_use={} server_ok={} fd_idle={} fd_end={} rss_slope_kib_min={} fd_slope_min={} hard_targets_met={}",
        stay.sessions,
        stay.ok,
        stay.lost,
        stay.cc,
        stay.cc_start,
        css_stay_t.sessions,
        css_stay_t.ok,
        ll.sessions,
        ll.ok,
        ll.stalls,
        churn.sessions,
        churn.ok,
        churn.killed,
        if in_use == usize::MAX { -1 } else { in_use as i64 },
        u8::from(crashed.is_none() && clean_exit),
        idle.fds,
        end_fds.map_or(-1, |n| n as i64),
        rss_slope.map_or("nan".into(), |v| format!("{v:.2}")),
        fd_slope.map_or("nan".into(), |v| format!("{v:.3}")),
        u8::from(hard)
    );
    if hard {
        let _ = std::fs::remove_dir_all(&dir);
    } else {
        println!("kept for inspection: {}", dir.display());
    }
    Ok(hard)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn least_squares_slope_per_minute() {
        let pts: Vec<(f64, f64)> = (0..10)
            .map(|i| (i as f64 * 6.0, 100.0 + i as f64))
            .collect();
        // +1 per 6 s = +10 per minute.
        assert!((slope_per_min(&pts).unwrap() - 10.0).abs() < 1e-9);
        assert_eq!(slope_per_min(&pts[..2]), None);
        let flat: Vec<(f64, f64)> = (0..5).map(|i| (i as f64, 7.0)).collect();
        assert_eq!(slope_per_min(&flat), Some(0.0));
    }

    #[test]
    fn chunked_bodies_are_decoded_across_reads() {
        let raw = b"4\r\nabcd\r\n3;x=1\r\nefg\r\n0\r\n\r\n";
        for split in 0..raw.len() {
            let mut d = Dechunk::new(true);
            let mut out = Vec::new();
            d.feed(&raw[..split], &mut out).unwrap();
            d.feed(&raw[split..], &mut out).unwrap();
            assert_eq!(out, b"abcdefg", "split at {split}");
            assert!(d.done);
        }
        let mut d = Dechunk::new(true);
        assert!(d.feed(b"zz\r\n", &mut Vec::new()).is_err());
        let mut d = Dechunk::new(false);
        let mut out = Vec::new();
        d.feed(b"raw", &mut out).unwrap();
        assert_eq!(out, b"raw");
    }

    #[test]
    fn stalls_count_gaps_after_data() {
        let t0 = Instant::now();
        let mut s = Stalls::new();
        s.since = t0;
        // Nothing yet: waiting for the first packet is not a stall.
        s.update(0, t0 + Duration::from_secs(3));
        assert_eq!(s.count, 0);
        s.update(5, t0 + Duration::from_secs(3));
        s.update(5, t0 + Duration::from_millis(3500));
        s.update(5, t0 + Duration::from_millis(4100));
        s.update(5, t0 + Duration::from_millis(4500));
        assert_eq!(s.count, 1);
        s.update(9, t0 + Duration::from_secs(5));
        assert_eq!(s.longest, Duration::from_secs(2));
        s.finish(t0 + Duration::from_secs(5));
        assert_eq!((s.count, s.longest), (1, Duration::from_secs(2)));
    }

    #[test]
    fn the_soak_configuration_loads() {
        let plan = Plan::new(1.5);
        let text = server_config(&plan, 40, (18875, 17681, 16677)).unwrap();
        let dir = std::env::temp_dir().join(format!("dvb2ip-soak-conf-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("c.toml");
        std::fs::write(&p, &text).unwrap();
        let cfg = dvb2ip::config::Config::load(&p);
        let _ = std::fs::remove_dir_all(&dir);
        let cfg = cfg.unwrap();
        let dvbc = cfg
            .broadcast
            .adapter
            .iter()
            .find(|a| a.name == LOCK_LOSS_ADAPTER)
            .unwrap();
        assert_eq!(dvbc.faults.lose_lock_after_ms, 15_000);
        assert_eq!(dvbc.faults.lock_lost_for_ms, LOCK_LOST_FOR_MS);
        let others = cfg
            .broadcast
            .adapter
            .iter()
            .filter(|a| a.name != LOCK_LOSS_ADAPTER);
        for a in others {
            assert_eq!(a.faults.lose_lock_after_ms, 0, "{}", a.name);
        }
        let news = cfg.channel.iter().find(|c| c.name == CHANNEL).unwrap();
        let css = news.css.as_ref().unwrap();
        assert_eq!((css.cii_port, css.wc_port), (17681, 16677));
        assert_eq!(cfg.server.session_timeout, plan.session_timeout);
        assert_eq!(cfg.server.max_sessions, 40);
        assert_eq!(cfg.server.http_port, 18875);
        assert!(!cfg.ssdp.enabled);
    }
}
