//! `dvb2ip-bench vod`: N concurrent RTSP VOD sessions of one ~20 Mbit/s MPEG-TS file against the
//! `dvb2ip` server (the binary beside this one, in its own process, on 127.0.0.1), each seeking
//! to a random position every few seconds, for a bounded time.
//!
//! Each session is a thread with a raw RTSP client (RTP over RTSP, video stream only): DESCRIBE,
//! SETUP, PLAY `Range: npt=<random>-`, then reading; every `--seek-every` seconds a PLAY with a
//! new Range. Measured: server CPU and RSS (per session over the idle server), PLAY-with-Range
//! → first RTP packet of the new position (median, p99), requested vs delivered position (the
//! answered Range, the random access point used), stalls (no packet for 1 s while playing) and
//! RTP sequence errors within a play period (with `--pipeline` the RTP stand-in for TS CC
//! errors: the file goes out per elementary stream there), threads per session. A PLAY left unanswered for 10 s
//! fails its session (the run stays bounded). The server sends the file as one MP2T stream from
//! its pipeline-free path (`[vod] direct`, its default), and the TS inside is checked for
//! continuity errors per PID within each play period as well; `--pipeline` measures the
//! pipeline per session instead (`[vod] direct = false`).
//!
//! `--readers-only` measures the pipeline-free path's readers instead ([`run_readers`]): the
//! file reading, seeking and PCR pacing of `src/vod/{ts_file,pacer}.rs`, in this process;
//! every fourth reader plays in trick play (Scale 4, -4, 8, -2 in turn, a new one at each
//! seek).

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use dvb2ip_testkit::rtsp::{Client, Item, Response};

/// Options of `dvb2ip-bench vod`.
pub struct Options {
    pub sessions: usize,
    pub seconds: f64,
    pub seek_every: f64,
    pub mbps: u32,
    /// The server sends TS files on its direct path (`[vod] direct`): one MP2T RTP stream,
    /// checked for TS continuity too.
    pub direct: bool,
}

/// A gap without packets that counts as a stall.
const STALL: Duration = Duration::from_secs(1);
/// A PLAY without an answer after this long fails its session (the run stays bounded).
const ANSWER_WITHIN: Duration = Duration::from_secs(10);
/// Length of the generated file, seconds.
const FILE_SECONDS: u32 = 120;

/// User+system CPU seconds of process `pid`.
fn proc_cpu_secs(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = stat.rsplit_once(')')?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ut: f64 = f.get(11)?.parse().ok()?;
    let st: f64 = f.get(12)?.parse().ok()?;
    // SAFETY: sysconf has no preconditions.
    let tick = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    Some((ut + st) / tick)
}

/// Thread count of process `pid`.
fn proc_threads(pid: u32) -> Option<u64> {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("Threads:"))
        .and_then(|v| v.trim().parse().ok())
}

/// Resident set size of process `pid` in KiB.
fn proc_rss_kib(pid: u32) -> Option<u64> {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
}

/// The ~`mbps` Mbit/s TS (H.264 + AAC, 1 s GOP, CBR by null packets), made once with ffmpeg
/// into `$DVB2IP_CACHE_DIR/vod` (or the temp directory).
fn media(mbps: u32) -> anyhow::Result<PathBuf> {
    let dir = std::env::var_os("DVB2IP_CACHE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join("dvb2ip-cache"))
        .join("vod");
    std::fs::create_dir_all(&dir)?;
    let path = dir.join(format!("bench-{mbps}m-{FILE_SECONDS}s.ts"));
    if path.exists() {
        return Ok(path);
    }
    let tmp = dir.join(format!(".bench-{}.ts", std::process::id()));
    eprintln!("making {} (once) …", path.display());
    let video_kbps = (mbps * 1000).saturating_sub(500).max(500);
    let st = Command::new("ffmpeg")
        .args([
            "-hide_banner",
            "-loglevel",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
        ])
        .arg(format!(
            "testsrc2=size=640x360:rate=25:duration={FILE_SECONDS}"
        ))
        .args(["-f", "lavfi", "-i"])
        .arg(format!("sine=frequency=440:duration={FILE_SECONDS}"))
        .args(["-c:v", "libx264", "-preset", "ultrafast", "-g", "25"])
        .args(["-keyint_min", "25", "-sc_threshold", "0", "-bf", "0"])
        .args(["-b:v", &format!("{video_kbps}k"), "-maxrate"])
        .arg(format!("{video_kbps}k"))
        .args(["-bufsize", &format!("{}k", video_kbps / 2)])
        .args(["-c:a", "aac", "-b:a", "128k", "-f", "mpegts", "-muxrate"])
        .arg(format!("{}", mbps * 1_000_000))
        .arg(&tmp)
        .status()
        .context("ffmpeg (apt-get install ffmpeg)")?;
    if !st.success() {
        bail!("ffmpeg could not make the benchmark file");
    }
    std::fs::rename(&tmp, &path)?;
    Ok(path)
}

/// The dvb2ip server child serving `root` as `[vod]`, on 127.0.0.1 and a free port.
struct ServerProc {
    child: Child,
    port: u16,
}

impl ServerProc {
    fn spawn(
        dir: &Path,
        root: &Path,
        max_sessions: usize,
        direct: bool,
    ) -> anyhow::Result<ServerProc> {
        let me = std::env::current_exe().context("path of dvb2ip-bench")?;
        let exe = me.with_file_name("dvb2ip");
        if !exe.is_file() {
            bail!(
                "{} not found: build it with `cargo build --release -p dvb2ip`",
                exe.display()
            );
        }
        let mut t: toml::Table = gstdvb2ip::tuners::config::DEFAULT_CONFIG.parse()?;
        let mut set = |section: &str, key: &str, v: toml::Value| {
            if let Some(s) = t
                .entry(section)
                .or_insert_with(|| toml::Value::Table(Default::default()))
                .as_table_mut()
            {
                s.insert(key.into(), v);
            }
        };
        set("ssdp", "enabled", false.into());
        set("emulator", "hardware", "off".into());
        set("server", "session_timeout", 60.into());
        // Any free port: a fixed one would clash with another server on the machine.
        set("server", "http_port", 0.into());
        set("server", "max_sessions", (max_sessions as i64 + 8).into());
        set(
            "vod",
            "roots",
            toml::Value::Array(vec![root.to_string_lossy().into_owned().into()]),
        );
        set("vod", "direct", direct.into());
        let conf = dir.join("server.toml");
        std::fs::write(&conf, toml::to_string(&t)?)?;
        let log = dir.join("server.log");
        let mut cmd = Command::new(&exe);
        cmd.arg("serve")
            .arg("--config")
            .arg(&conf)
            .args(["--rtsp-port", "0", "--bind", "127.0.0.1"])
            .env_remove("GST_PLUGIN_PATH")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(File::create(&log)?);
        // SAFETY: prctl is async-signal-safe; the child dies with the bench.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let mut child = cmd.spawn().context("starting dvb2ip")?;
        let stdout = child.stdout.take().context("server stdout")?;
        let (tx, rx) = mpsc::channel();
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
        let port = rx
            .recv_timeout(Duration::from_secs(60))
            .with_context(|| format!("dvb2ip did not start; see {}", log.display()))?;
        Ok(ServerProc { child, port })
    }
}

impl Drop for ServerProc {
    fn drop(&mut self) {
        // SAFETY: signalling our own child.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let end = Instant::now() + Duration::from_secs(5);
        while Instant::now() < end {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What one session measured.
#[derive(Default)]
struct Tally {
    seek_to_first_ms: Vec<f64>,
    /// Delivered minus requested position, seconds.
    distance_s: Vec<f64>,
    stalls: u64,
    seq_errors: u64,
    /// TS continuity errors within play periods (MP2T only).
    cc_errors: u64,
    packets: u64,
    failures: Vec<String>,
}

/// Counts TS continuity errors of the MP2T payload `d` (whole packets) against `last` (per PID,
/// the last counter of a packet with payload).
fn check_cc(d: &[u8], last: &mut Vec<(u16, u8)>) -> u64 {
    let mut errors = 0;
    for p in d.chunks_exact(188).filter(|p| p[0] == 0x47) {
        let pid = (u16::from(p[1] & 0x1F) << 8) | u16::from(p[2]);
        if pid == 0x1FFF || p[3] & 0x10 == 0 {
            continue;
        }
        let cc = p[3] & 0x0F;
        match last.iter_mut().find(|(q, _)| *q == pid) {
            Some((_, l)) => {
                if cc != (*l + 1) & 0x0F && cc != *l {
                    errors += 1;
                }
                *l = cc;
            }
            None => last.push((pid, cc)),
        }
    }
    errors
}

/// A tiny PRNG (xorshift) for the seek positions.
fn next_rand(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

fn npt_start(r: &Response) -> Option<f64> {
    r.header("Range")?
        .strip_prefix("npt=")?
        .split('-')
        .next()?
        .parse()
        .ok()
}

/// One session until `end`: PLAY at a random position every `seek_every`.
fn session(
    port: u16,
    id: usize,
    end: Instant,
    seek_every: Duration,
    duration_s: f64,
    direct: bool,
) -> Tally {
    let mut t = Tally::default();
    if let Err(e) = run_session(port, id, end, seek_every, duration_s, direct, &mut t) {
        t.failures.push(format!("session {id}: {e:#}"));
    }
    t
}

fn run_session(
    port: u16,
    id: usize,
    end: Instant,
    seek_every: Duration,
    duration_s: f64,
    direct: bool,
    t: &mut Tally,
) -> anyhow::Result<()> {
    let mut c = Client::connect(
        std::net::SocketAddr::from(([127, 0, 0, 1], port)),
        Duration::from_secs(10),
    )?;
    let url = c.url("vod/bench.ts");
    let r = c.request("DESCRIBE", &url, &[("Accept", "application/sdp")])?;
    if r.status != 200 {
        bail!("DESCRIBE: {}", r.status_line());
    }
    let r = c.request(
        "SETUP",
        &format!("{url}/stream=0"),
        &[("Transport", "RTP/AVP/TCP;unicast;interleaved=0-1")],
    )?;
    if r.status != 200 {
        bail!("SETUP: {}", r.status_line());
    }
    let session = r.session_id().context("SETUP without Session")?.to_string();
    let mut rng = 0x9E37_79B9_7F4A_7C15u64 ^ (id as u64 + 1).wrapping_mul(0x1000_0001);
    while Instant::now() < end {
        // A random position, leaving room to play until the next seek.
        let span = (duration_s - seek_every.as_secs_f64() - 2.0).max(1.0);
        let want = (next_rand(&mut rng) % (span * 1000.0) as u64) as f64 / 1000.0;
        let range = format!("npt={want:.3}-");
        let sent = Instant::now();
        c.send("PLAY", &url, &[("Session", &session), ("Range", &range)])?;
        // RTCP keeps coming while a PLAY goes unanswered: bounded by time, not by reads.
        let resp = loop {
            if sent.elapsed() > ANSWER_WITHIN {
                bail!(
                    "PLAY {range}: no answer within {} s",
                    ANSWER_WITHIN.as_secs()
                );
            }
            match c.next_item()? {
                Item::Response(r) => break r,
                Item::Frame(..) => {}
            }
        };
        if resp.status != 200 {
            bail!("PLAY {range}: {}", resp.status_line());
        }
        if let Some(got) = npt_start(&resp) {
            t.distance_s.push(got - want);
        }
        let mut first = true;
        let mut last_seq: Option<u16> = None;
        let mut last_cc: Vec<(u16, u8)> = vec![];
        let mut last_at = Instant::now();
        let until = (Instant::now() + seek_every).min(end);
        while Instant::now() < until {
            match c.next_item()? {
                Item::Frame(0, d) if d.len() >= 12 => {
                    let now = Instant::now();
                    if first {
                        t.seek_to_first_ms
                            .push(now.duration_since(sent).as_secs_f64() * 1000.0);
                        first = false;
                    } else if now.duration_since(last_at) > STALL {
                        t.stalls += 1;
                    }
                    let seq = u16::from_be_bytes([d[2], d[3]]);
                    if last_seq.is_some_and(|l| seq != l.wrapping_add(1)) {
                        t.seq_errors += 1;
                    }
                    last_seq = Some(seq);
                    if direct {
                        let cc = 12 + 4 * usize::from(d[0] & 0x0F);
                        t.cc_errors += check_cc(d.get(cc..).unwrap_or(&[]), &mut last_cc);
                    }
                    last_at = now;
                    t.packets += 1;
                }
                Item::Frame(..) => {}
                Item::Response(r) => bail!("unexpected {}", r.status_line()),
            }
        }
        if first && until.saturating_duration_since(sent) > STALL {
            // Not one media packet in the whole play period.
            t.stalls += 1;
        }
    }
    let _ = c.send("TEARDOWN", &url, &[("Session", &session)]);
    Ok(())
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn verdict(ok: bool) -> &'static str {
    if ok {
        "met"
    } else {
        "NOT met"
    }
}

pub fn run(opts: &Options) -> anyhow::Result<()> {
    let file = media(opts.mbps)?;
    let dir = std::env::temp_dir().join(format!("dvb2ip-bench-vod-{}", std::process::id()));
    let root = dir.join("media");
    std::fs::create_dir_all(&root)?;
    let target = root.join("bench.ts");
    if std::fs::hard_link(&file, &target).is_err() {
        std::os::unix::fs::symlink(&file, &target)?;
    }
    let duration_s = f64::from(FILE_SECONDS);
    let server = ServerProc::spawn(&dir, &root, opts.sessions, opts.direct)?;
    let pid = server.child.id();
    std::thread::sleep(Duration::from_millis(500));
    let idle_rss = proc_rss_kib(pid).unwrap_or(0);
    let idle_threads = proc_threads(pid).unwrap_or(0);
    println!(
        "vod: {} sessions of {} ({} Mbit/s, {FILE_SECONDS} s), a seek every {} s, {} s run, server pid {pid} on 127.0.0.1:{}",
        opts.sessions,
        file.display(),
        opts.mbps,
        opts.seek_every,
        opts.seconds,
        server.port
    );
    println!(
        "vod: {}",
        if opts.direct {
            "the server's direct path ([vod] direct): one MP2T RTP stream per session"
        } else {
            "--pipeline ([vod] direct = false): a pipeline per session, each elementary stream"
        }
    );
    let started = Instant::now();
    let end = started + Duration::from_secs_f64(opts.seconds);
    let seek_every = Duration::from_secs_f64(opts.seek_every);
    let results = Arc::new(Mutex::new(Vec::new()));
    let mut threads = vec![];
    for id in 0..opts.sessions {
        let results = results.clone();
        let port = server.port;
        let direct = opts.direct;
        threads.push(std::thread::spawn(move || {
            let t = session(port, id, end, seek_every, duration_s, direct);
            results.lock().unwrap().push(t);
        }));
        // Sessions start spread over the first seconds, as viewers would.
        std::thread::sleep(Duration::from_millis(20));
    }
    // CPU over the middle of the run, RSS at its peak of the run.
    let cpu_from = started + Duration::from_secs_f64(opts.seconds * 0.25);
    let cpu_to = started + Duration::from_secs_f64(opts.seconds * 0.75);
    std::thread::sleep(cpu_from.saturating_duration_since(Instant::now()));
    let c0 = proc_cpu_secs(pid);
    let t0 = Instant::now();
    let mut rss_max = 0;
    let mut threads_max = 0;
    while Instant::now() < cpu_to {
        rss_max = rss_max.max(proc_rss_kib(pid).unwrap_or(0));
        threads_max = threads_max.max(proc_threads(pid).unwrap_or(0));
        std::thread::sleep(Duration::from_millis(500));
    }
    let c1 = proc_cpu_secs(pid);
    let cpu = match (c0, c1) {
        (Some(a), Some(b)) => (b - a) / t0.elapsed().as_secs_f64() * 100.0,
        _ => f64::NAN,
    };
    for th in threads {
        let _ = th.join();
    }
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
    let results = results.lock().unwrap();
    let mut seeks: Vec<f64> = results
        .iter()
        .flat_map(|t| t.seek_to_first_ms.iter().copied())
        .collect();
    seeks.sort_by(f64::total_cmp);
    let mut dist: Vec<f64> = results
        .iter()
        .flat_map(|t| t.distance_s.iter().copied())
        .collect();
    dist.sort_by(f64::total_cmp);
    let stalls: u64 = results.iter().map(|t| t.stalls).sum();
    let seq_errors: u64 = results.iter().map(|t| t.seq_errors).sum();
    let cc_errors: u64 = results.iter().map(|t| t.cc_errors).sum();
    let packets: u64 = results.iter().map(|t| t.packets).sum();
    let failures: Vec<&String> = results.iter().flat_map(|t| &t.failures).collect();
    let ok_sessions = opts.sessions - failures.len();
    // Per session started: a failed session held its pipeline until it failed. With no
    // failure both are the same.
    let rss_per = rss_max.saturating_sub(idle_rss) as f64 / opts.sessions.max(1) as f64;
    let rss_per_ok = rss_max.saturating_sub(idle_rss) as f64 / ok_sessions.max(1) as f64;
    let median = percentile(&seeks, 0.5);
    println!(
        "server: cpu {cpu:.0}% of one core (2-core machine shared with other work), RSS idle {:.1} MiB, peak {:.1} MiB → {rss_per:.0} KiB/session started ({rss_per_ok:.0} KiB per session that did not fail)",
        idle_rss as f64 / 1024.0,
        rss_max as f64 / 1024.0
    );
    println!(
        "server threads: idle {idle_threads}, peak {threads_max} → {:.1} per session started",
        threads_max.saturating_sub(idle_threads) as f64 / opts.sessions.max(1) as f64
    );
    println!(
        "seeks: {} PLAY-with-Range → first packet: median {median:.1} ms, p99 {:.1} ms, max {:.1} ms",
        seeks.len(),
        percentile(&seeks, 0.99),
        seeks.last().copied().unwrap_or(f64::NAN)
    );
    println!(
        "delivered − requested position: min {:+.3} s, median {:+.3} s, max {:+.3} s (the key frame at or before the target; GOP 1 s)",
        dist.first().copied().unwrap_or(f64::NAN),
        percentile(&dist, 0.5),
        dist.last().copied().unwrap_or(f64::NAN)
    );
    println!(
        "delivery: {packets} RTP packets, {stalls} stalls (> {} s without a packet while playing, or none after a PLAY), {seq_errors} RTP sequence errors and {cc_errors} TS continuity errors (MP2T only) within play periods, {} of {} sessions failed",
        STALL.as_secs(),
        failures.len(),
        opts.sessions
    );
    for f in failures.iter().take(5) {
        println!("  {f}");
    }
    println!("targets:");
    println!(
        "  seek → first packet median <= 50 ms: {} ({median:.1} ms)",
        verdict(median <= 50.0)
    );
    println!(
        "  RSS <= 256 KiB per session: {} ({rss_per:.0} KiB)",
        verdict(rss_per <= 256.0)
    );
    println!(
        "  no stall, no sequence or CC error: {} ({stalls} stalls, {seq_errors} sequence errors, {cc_errors} CC errors, {} failed sessions)",
        verdict(stalls == 0 && seq_errors == 0 && cc_errors == 0 && failures.is_empty()),
        failures.len()
    );
    Ok(())
}

/// What one direct reader's sink saw (kept small: it is counted in the RSS per session).
struct ReaderTally {
    /// The seek whose first media chunk has not arrived yet.
    seek_sent: Option<Instant>,
    /// Play since the last seek: PID and last continuity counter.
    cc: Vec<(u16, u8)>,
    last_at: Option<Instant>,
    seek_to_first_ms: Vec<f32>,
    cc_errors: u64,
    stalls: u64,
    bytes: u64,
    ended: bool,
}

struct ReaderSink(Mutex<ReaderTally>);

impl dvb2ip::vod::pacer::ChunkSink for ReaderSink {
    fn chunk(&self, ts: &[u8]) -> bool {
        let now = Instant::now();
        let mut guard = self.0.lock().unwrap();
        let t = &mut *guard;
        for p in ts.chunks_exact(188) {
            let pid = (u16::from(p[1] & 0x1F) << 8) | u16::from(p[2]);
            if pid == 0x1FFF || p[3] & 0x10 == 0 {
                continue;
            }
            let cc = p[3] & 0x0F;
            match t.cc.iter_mut().find(|(q, _)| *q == pid) {
                Some((_, last)) => {
                    if cc != (*last + 1) & 0x0F {
                        t.cc_errors += 1;
                    }
                    *last = cc;
                }
                None => t.cc.push((pid, cc)),
            }
        }
        t.bytes += ts.len() as u64;
        if let Some(sent) = t.seek_sent.take() {
            t.seek_to_first_ms
                .push(now.duration_since(sent).as_secs_f32() * 1000.0);
        } else if t.last_at.is_some_and(|l| now.duration_since(l) > STALL) {
            t.stalls += 1;
        }
        t.last_at = Some(now);
        true
    }

    fn end(&self, error: Option<std::io::Error>) {
        if let Some(e) = error {
            eprintln!("reader: read error: {e}");
        }
        self.0.lock().unwrap().ended = true;
    }

    fn seeked(&self) {
        // The counters continue across seeks (and scale changes): only the stall clock
        // restarts.
        self.0.lock().unwrap().last_at = None;
    }
}

/// The scales of the readers-only run's trick-play readers, one per seek in turn.
const TRICK_SCALES: [f64; 4] = [4.0, -4.0, 8.0, -2.0];

/// `dvb2ip-bench vod --readers-only`: the direct path's readers alone, in this process: N
/// [`dvb2ip::vod::pacer::Reader`]s of the file on one pacing thread, each seeking to a random
/// position every `seek_every`, their TS checked for continuity by an in-process sink (no RTP,
/// no sockets, no RTSP: what the file reading and pacing of a pipeline-free session cost).
/// Every fourth reader seeks into trick play instead ([`TRICK_SCALES`] in turn).
pub fn run_readers(opts: &Options) -> anyhow::Result<()> {
    use dvb2ip::vod::pacer::{Pacer, Reader};
    use dvb2ip::vod::ts_file::TsFile;
    let file = media(opts.mbps)?;
    let me = std::process::id();
    let pacer = Pacer::new();
    let probe = TsFile::open(&file).map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
    let duration_s = probe.info.duration_ns() as f64 / 1e9;
    drop(probe);
    std::thread::sleep(Duration::from_millis(300));
    let idle_rss = proc_rss_kib(me).unwrap_or(0);
    let idle_threads = proc_threads(me).unwrap_or(0);
    println!(
        "vod readers: {} direct readers of {} ({} Mbit/s, {duration_s:.1} s) on one pacing thread, a seek every {} s, {} s run",
        opts.sessions,
        file.display(),
        opts.mbps,
        opts.seek_every,
        opts.seconds
    );
    let seek_every = Duration::from_secs_f64(opts.seek_every);
    let span = (duration_s - opts.seek_every - 2.0).max(1.0);
    let mut sessions = vec![];
    let mut rng = 0x9E37_79B9_7F4A_7C15u64;
    let started = Instant::now();
    let mut distance = vec![];
    for i in 0..opts.sessions {
        let sink = Arc::new(ReaderSink(Mutex::new(ReaderTally {
            seek_sent: None,
            cc: vec![],
            last_at: None,
            seek_to_first_ms: vec![],
            cc_errors: 0,
            stalls: 0,
            bytes: 0,
            ended: false,
        })));
        let f = TsFile::open(&file).map_err(|e| anyhow::anyhow!("{e}"))?;
        let r = Reader::new(&pacer, f, sink.clone())?;
        let want = (next_rand(&mut rng) % (span * 1000.0) as u64) as f64 / 1000.0;
        seek(&r, &sink, want, &mut distance)?;
        // Every fourth reader: trick play (the count of its seeks picks the scale).
        let trick = (i % 4 == 3).then_some(0usize);
        if trick.is_some() {
            r.set_scale(TRICK_SCALES[0]);
        }
        r.play();
        sessions.push((r, sink, Instant::now() + seek_every, trick));
        std::thread::sleep(Duration::from_millis(20));
    }
    let end = started + Duration::from_secs_f64(opts.seconds);
    let cpu_from = started + Duration::from_secs_f64(opts.seconds * 0.25);
    let cpu_to = started + Duration::from_secs_f64(opts.seconds * 0.75);
    let (mut c0, mut t0, mut c1, mut t1) = (None, started, None, started);
    let (mut rss_max, mut threads_max) = (0, 0);
    while Instant::now() < end {
        let now = Instant::now();
        for (r, sink, next, trick) in &mut sessions {
            if now >= *next {
                let want = (next_rand(&mut rng) % (span * 1000.0) as u64) as f64 / 1000.0;
                seek(r, sink, want, &mut distance)?;
                if let Some(k) = trick {
                    *k += 1;
                    r.set_scale(TRICK_SCALES[*k % TRICK_SCALES.len()]);
                    // A trick-play reader may have reached an end: PLAY again.
                    r.play();
                }
                *next = now + seek_every;
            }
        }
        if now >= cpu_from && c0.is_none() {
            (c0, t0) = (proc_cpu_secs(me), now);
        }
        if now >= cpu_from && now < cpu_to {
            rss_max = rss_max.max(proc_rss_kib(me).unwrap_or(0));
            threads_max = threads_max.max(proc_threads(me).unwrap_or(0));
            (c1, t1) = (proc_cpu_secs(me), now);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let cpu = match (c0, c1) {
        (Some(a), Some(b)) if t1 > t0 => (b - a) / t1.duration_since(t0).as_secs_f64() * 100.0,
        _ => f64::NAN,
    };
    let mut seeks: Vec<f64> = vec![];
    let mut trick_seeks: Vec<f64> = vec![];
    let (mut cc_errors, mut stalls, mut bytes, mut ended) = (0, 0, 0, 0);
    let (mut tricks, mut trick_ended) = (0, 0);
    for (_, sink, _, trick) in &sessions {
        let t = sink.0.lock().unwrap();
        let ms = t.seek_to_first_ms.iter().map(|&v| f64::from(v));
        if trick.is_some() {
            trick_seeks.extend(ms);
            tricks += 1;
            trick_ended += usize::from(t.ended);
        } else {
            seeks.extend(ms);
        }
        cc_errors += t.cc_errors;
        stalls += t.stalls;
        bytes += t.bytes;
        ended += usize::from(t.ended);
    }
    seeks.sort_by(f64::total_cmp);
    trick_seeks.sort_by(f64::total_cmp);
    distance.sort_by(f64::total_cmp);
    let n = opts.sessions.max(1) as f64;
    let rss_per = rss_max.saturating_sub(idle_rss) as f64 / n;
    let median = percentile(&seeks, 0.5);
    println!(
        "readers: cpu {cpu:.0}% of one core (this process, sinks included), RSS idle {:.1} MiB, peak {:.1} MiB → {rss_per:.1} KiB/session; threads idle {idle_threads}, peak {threads_max}",
        idle_rss as f64 / 1024.0,
        rss_max as f64 / 1024.0
    );
    println!(
        "delivered {:.1} Mbit/s per session on average (file {} Mbit/s)",
        bytes as f64 * 8.0 / 1e6 / opts.seconds / n,
        opts.mbps
    );
    println!(
        "seeks: {} seek → first media chunk: median {median:.2} ms, p99 {:.2} ms, max {:.2} ms",
        seeks.len(),
        percentile(&seeks, 0.99),
        seeks.last().copied().unwrap_or(f64::NAN)
    );
    println!(
        "trick play: {tricks} readers (Scale {TRICK_SCALES:?} in turn, a new one at each seek): {} seeks, seek → first key frame median {:.2} ms, p99 {:.2} ms; {trick_ended} reached an end of the file at least once",
        trick_seeks.len(),
        percentile(&trick_seeks, 0.5),
        percentile(&trick_seeks, 0.99)
    );
    println!(
        "delivered − requested position: min {:+.3} s, median {:+.3} s, max {:+.3} s (the key frame at or before the target)",
        distance.first().copied().unwrap_or(f64::NAN),
        percentile(&distance, 0.5),
        distance.last().copied().unwrap_or(f64::NAN)
    );
    println!(
        "delivery: {stalls} stalls (> {} s without a chunk while playing), {cc_errors} TS continuity errors within sessions (across seeks and scale changes), {ended} sessions reached an end of the file at least once",
        STALL.as_secs()
    );
    println!("targets (the reading and pacing part of a session only):");
    println!(
        "  seek → first chunk median <= 50 ms: {} ({median:.2} ms)",
        verdict(median <= 50.0)
    );
    println!(
        "  RSS <= 256 KiB per session: {} ({rss_per:.1} KiB)",
        verdict(rss_per <= 256.0)
    );
    println!(
        "  no stall, no CC error: {} ({stalls} stalls, {cc_errors} CC errors)",
        verdict(stalls == 0 && cc_errors == 0)
    );
    Ok(())
}

/// Seeks reader `r` to `want` s (the sink's continuity state restarts in `seeked`) and notes
/// the delivered − requested distance.
fn seek(
    r: &dvb2ip::vod::pacer::Reader,
    sink: &ReaderSink,
    want: f64,
    distance: &mut Vec<f64>,
) -> anyhow::Result<()> {
    {
        sink.0.lock().unwrap().seek_sent = Some(Instant::now());
    }
    let l = r.seek((want * 1e9) as u64)?;
    distance.push(l.npt_ns as f64 / 1e9 - want);
    Ok(())
}
