//! Recording a channel to the first VOD root, so a broadcast becomes a file on demand.
//!
//! A recording opens the same stream source the HTTP streamer uses
//! ([`crate::streams::source::open`], a tuner-pool subscription, sharing a frontend already
//! tuned to the multiplex), and writes its TS to `.<name>.ts.part` in the first root: a hidden
//! name, which the library never lists and the path rules never serve. When it stops (its
//! duration is over, `DELETE /api/recordings/<id>`, or the server shuts down) the file is
//! flushed, synced and renamed to `<name>.ts`, and only then appears under `/vod/`.
//!
//! One thread per recording owns its source, its file and its queue; the source's feed thread
//! only queues (a full queue drops and counts, it never blocks the feed).
//!
//! Managed over HTTP (`/api/recordings`, [`super::http`]) from loopback only for now: there
//! are no administrators yet (the web UI issue brings them); and with `dvb2ip serve --record
//! <channel>[:seconds]`.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use gstdvb2ip::proto::satip::{parse_query, QueryError, StreamSpec};
use gstdvb2ip::tuners::Pool;
use serde::{Deserialize, Serialize};

use super::path::encode_path;
use super::CAT;
use crate::config::{ChannelConfig, Config};
use crate::streams::source::{self, TsSink};

/// Buffers queued between the feed and the file before data is dropped (a few seconds of a
/// multiplex at the feed's buffer size).
const QUEUE_BUFFERS: usize = 4096;
/// How long stopping waits for the file to be final.
const STOP_WAIT: Duration = Duration::from_secs(10);

/// What to record: `{"channel": "news"}` or `{"query": "freq=…&pids=…"}`, optionally
/// `"duration_s"` (else until stopped) and `"name"` (else `<channel>-<UTC time>`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordRequest {
    #[serde(default)]
    pub channel: Option<String>,
    #[serde(default)]
    pub query: Option<String>,
    #[serde(default)]
    pub duration_s: Option<u64>,
    #[serde(default)]
    pub name: Option<String>,
}

impl RecordRequest {
    /// Parses the CLI form `<channel>[:seconds]`.
    pub fn from_cli(arg: &str) -> Result<Self, String> {
        let (channel, secs) = match arg.split_once(':') {
            Some((c, s)) => (
                c,
                Some(s.parse::<u64>().ok().filter(|s| *s > 0).ok_or_else(|| {
                    format!("--record {arg:?}: {s:?} is not a number of seconds > 0")
                })?),
            ),
            None => (arg, None),
        };
        if channel.is_empty() {
            return Err(format!("--record {arg:?}: expected <channel>[:seconds]"));
        }
        Ok(RecordRequest {
            channel: Some(channel.to_owned()),
            duration_s: secs,
            ..Default::default()
        })
    }
}

/// Why a recording could not start.
#[derive(Debug)]
pub enum RecordError {
    /// No `[vod] roots`: nowhere to record to.
    NoRoot,
    /// The request is malformed (both or neither of channel/query, bad name, duration 0).
    Bad(String),
    /// No channel of that name in the configuration.
    UnknownChannel(String),
    /// The file exists already.
    Exists(String),
    /// The query is refused, or no frontend is free.
    Query(QueryError),
    /// The file could not be created.
    Io(String),
}

impl RecordError {
    /// The HTTP status of the API's answer.
    pub fn status(&self) -> u16 {
        match self {
            RecordError::NoRoot | RecordError::Exists(_) => 409,
            RecordError::Bad(_) => 400,
            RecordError::UnknownChannel(_) => 404,
            RecordError::Query(e) => e.status(),
            RecordError::Io(_) => 500,
        }
    }
}

impl std::fmt::Display for RecordError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RecordError::NoRoot => f.write_str("no [vod] roots configured: nowhere to record to"),
            RecordError::Bad(m) => f.write_str(m),
            RecordError::UnknownChannel(c) => write!(f, "no channel {c:?} in the configuration"),
            RecordError::Exists(n) => write!(f, "{n:?} exists already"),
            RecordError::Query(e) => write!(f, "{e}"),
            RecordError::Io(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for RecordError {}

/// A recording as the API shows it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct RecordingInfo {
    pub id: u64,
    /// The channel recorded, if one was named.
    pub channel: Option<String>,
    /// The SAT>IP query recorded.
    pub query: String,
    /// The file, relative to the first root (final name, also while recording).
    pub file: String,
    /// Where it is served once done: `/vod/<file>` percent-encoded.
    pub url: String,
    /// `recording`, `done` or `failed`.
    pub state: &'static str,
    /// Why it failed.
    pub error: Option<String>,
    /// Bytes written.
    pub bytes: u64,
    /// Buffers the writer could not keep up with (lost).
    pub dropped: u64,
    /// Start, seconds since 1970 (UTC).
    pub started_unix: u64,
    /// Seconds recorded so far (or in all).
    pub elapsed_s: f64,
    /// The requested duration (none: until stopped).
    pub duration_s: Option<u64>,
}

/// One recording, shared by its thread and the list.
struct Shared {
    info: Mutex<RecordingInfo>,
    started: Instant,
    ended: Mutex<Option<Instant>>,
    stop: AtomicBool,
    bytes: AtomicU64,
    dropped: Arc<AtomicU64>,
    done: (Mutex<bool>, Condvar),
}

impl Shared {
    fn snapshot(&self) -> RecordingInfo {
        let mut i = self.info.lock().unwrap().clone();
        i.bytes = self.bytes.load(Ordering::Relaxed);
        i.dropped = self.dropped.load(Ordering::Relaxed);
        let end = self.ended.lock().unwrap().unwrap_or_else(Instant::now);
        i.elapsed_s = end.duration_since(self.started).as_secs_f64();
        i
    }

    fn wait_done(&self, timeout: Duration) -> bool {
        let (m, cv) = &self.done;
        let g = m.lock().unwrap();
        let (g, _) = cv.wait_timeout_while(g, timeout, |d| !*d).unwrap();
        *g
    }
}

struct Inner {
    pool: Pool,
    roots: Vec<PathBuf>,
    channels: Vec<ChannelConfig>,
    next: AtomicU64,
    list: Mutex<BTreeMap<u64, Arc<Shared>>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        let all: Vec<Arc<Shared>> = self.list.lock().unwrap().values().cloned().collect();
        for s in &all {
            s.stop.store(true, Ordering::SeqCst);
        }
        for s in &all {
            s.wait_done(STOP_WAIT);
        }
    }
}

/// The recordings of one server (the core's); cheap to clone.
#[derive(Clone)]
pub struct Recordings(Arc<Inner>);

impl std::fmt::Debug for Recordings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recordings")
            .field("roots", &self.0.roots)
            .finish_non_exhaustive()
    }
}

/// Receives the feed in the feed's thread: queue or drop, never block.
struct Queue {
    tx: SyncSender<Vec<u8>>,
    dropped: Arc<AtomicU64>,
}

impl TsSink for Queue {
    fn push(&self, buffer: &gst::Buffer) {
        if let Ok(map) = buffer.map_readable() {
            if let Err(TrySendError::Full(_)) = self.tx.try_send(map.as_slice().to_vec()) {
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// `YYYYMMDD-HHMMSS` (UTC) of `t` seconds since 1970.
fn utc_stamp(t: u64) -> String {
    let days = (t / 86400) as i64;
    let secs = t % 86400;
    // Civil date from days since 1970-01-01 (H. Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}{m:02}{d:02}-{:02}{:02}{:02}",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

/// Checks a requested file name (without `.ts`): letters, digits, ` -_.()`, not hidden.
fn check_name(name: &str) -> Result<String, RecordError> {
    let name = name.strip_suffix(".ts").unwrap_or(name);
    if name.is_empty()
        || name.len() > 200
        || name.starts_with('.')
        || !name
            .chars()
            .all(|c| c.is_alphanumeric() || " -_.()".contains(c))
    {
        return Err(RecordError::Bad(format!(
            "name {name:?} must be 1-200 letters, digits, ' ', '-', '_', '.', '(' or ')', not starting with '.'"
        )));
    }
    Ok(name.to_owned())
}

impl Recordings {
    /// The recordings of a server running `config` on `pool` (recording to the first root).
    pub fn new(pool: Pool, config: &Config) -> Self {
        Recordings(Arc::new(Inner {
            pool,
            roots: config.vod.roots.clone(),
            channels: config.channel.clone(),
            next: AtomicU64::new(1),
            list: Mutex::new(BTreeMap::new()),
        }))
    }

    /// Starts a recording (blocking briefly: leases a frontend, creates the file).
    pub fn start(&self, req: RecordRequest) -> Result<RecordingInfo, RecordError> {
        let root = self.0.roots.first().ok_or(RecordError::NoRoot)?.clone();
        if req.duration_s == Some(0) {
            return Err(RecordError::Bad("duration_s must be > 0".into()));
        }
        let query = match (&req.channel, &req.query) {
            (Some(c), None) => self
                .0
                .channels
                .iter()
                .find(|ch| &ch.name == c)
                .map(|ch| ch.query.trim_start_matches('?').to_owned())
                .ok_or_else(|| RecordError::UnknownChannel(c.clone()))?,
            (None, Some(q)) => q.trim_start_matches('?').to_owned(),
            _ => {
                return Err(RecordError::Bad(
                    "give exactly one of \"channel\" and \"query\"".into(),
                ))
            }
        };
        let spec = parse_query(&query)
            .and_then(|q| StreamSpec::create(&q, crate::channels::MAX_PIDS))
            .and_then(|s| {
                s.tuning
                    .check_capabilities(&gstdvb2ip::satipmapsrc::capabilities_of(&self.0.pool))?;
                Ok(s)
            })
            .map_err(RecordError::Query)?;
        let started_unix = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        // The file: the requested name, else <channel>-<time>(-N).
        let (name, tmp, file) = match &req.name {
            Some(n) => {
                let n = check_name(n)?;
                let (tmp, fin) = (
                    root.join(format!(".{n}.ts.part")),
                    root.join(format!("{n}.ts")),
                );
                let f = self.create(&tmp, &fin).map_err(|e| match e {
                    Some(e) => e,
                    None => RecordError::Exists(format!("{n}.ts")),
                })?;
                (n, tmp, f)
            }
            None => {
                let base = format!(
                    "{}-{}",
                    req.channel.as_deref().unwrap_or("recording"),
                    utc_stamp(started_unix)
                );
                let mut k = 1;
                loop {
                    let n = if k == 1 {
                        base.clone()
                    } else {
                        format!("{base}-{k}")
                    };
                    let (tmp, fin) = (
                        root.join(format!(".{n}.ts.part")),
                        root.join(format!("{n}.ts")),
                    );
                    match self.create(&tmp, &fin) {
                        Ok(f) => break (n, tmp, f),
                        Err(Some(e)) => return Err(e),
                        Err(None) if k < 100 => k += 1,
                        Err(None) => return Err(RecordError::Exists(format!("{n}.ts"))),
                    }
                }
            }
        };
        let final_name = format!("{name}.ts");
        let final_path = root.join(&final_name);
        let dropped = Arc::new(AtomicU64::new(0));
        let (tx, rx) = std::sync::mpsc::sync_channel(QUEUE_BUFFERS);
        let sink = Arc::new(Queue {
            tx,
            dropped: dropped.clone(),
        });
        let src = match source::open(&self.0.pool, spec, sink) {
            Ok(s) => s,
            Err(e) => {
                let _ = std::fs::remove_file(&tmp);
                return Err(RecordError::Query(e));
            }
        };
        let id = self.0.next.fetch_add(1, Ordering::SeqCst);
        let shared = Arc::new(Shared {
            info: Mutex::new(RecordingInfo {
                id,
                channel: req.channel.clone(),
                query: query.clone(),
                url: format!("/vod/{}", encode_path(&final_name)),
                file: final_name,
                state: "recording",
                error: None,
                bytes: 0,
                dropped: 0,
                started_unix,
                elapsed_s: 0.0,
                duration_s: req.duration_s,
            }),
            started: Instant::now(),
            ended: Mutex::new(None),
            stop: AtomicBool::new(false),
            bytes: AtomicU64::new(0),
            dropped,
            done: (Mutex::new(false), Condvar::new()),
        });
        let deadline = req
            .duration_s
            .map(|s| shared.started + Duration::from_secs(s));
        let th = shared.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("dvb2ip-rec-{id}"))
            .spawn(move || writer(th, src, rx, file, tmp, final_path, deadline));
        if let Err(e) = spawned {
            return Err(RecordError::Io(format!(
                "cannot start the recording thread: {e}"
            )));
        }
        gst::info!(CAT, "recording {id}: {query} -> {name}.ts");
        self.0.list.lock().unwrap().insert(id, shared.clone());
        Ok(shared.snapshot())
    }

    /// Creates `tmp` exclusively unless `fin` exists; `Err(None)` when either exists.
    fn create(
        &self,
        tmp: &std::path::Path,
        fin: &std::path::Path,
    ) -> Result<std::fs::File, Option<RecordError>> {
        if fin.exists() {
            return Err(None);
        }
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(tmp)
        {
            Ok(f) => Ok(f),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Err(None),
            Err(e) => Err(Some(RecordError::Io(format!("cannot create {tmp:?}: {e}")))),
        }
    }

    /// Every recording, running and finished, by id.
    pub fn list(&self) -> Vec<RecordingInfo> {
        let all: Vec<Arc<Shared>> = self.0.list.lock().unwrap().values().cloned().collect();
        all.iter().map(|s| s.snapshot()).collect()
    }

    /// One recording.
    pub fn get(&self, id: u64) -> Option<RecordingInfo> {
        let s = self.0.list.lock().unwrap().get(&id).cloned()?;
        Some(s.snapshot())
    }

    /// Stops a recording and waits (bounded) until its file is final; `None` for an unknown id.
    pub fn stop(&self, id: u64) -> Option<RecordingInfo> {
        let s = self.0.list.lock().unwrap().get(&id).cloned()?;
        s.stop.store(true, Ordering::SeqCst);
        if !s.wait_done(STOP_WAIT) {
            gst::warning!(CAT, "recording {id}: not final after {STOP_WAIT:?}");
        }
        Some(s.snapshot())
    }

    /// Stops every running recording, waiting (bounded) for their files.
    pub fn stop_all(&self) {
        let ids: Vec<u64> = self.0.list.lock().unwrap().keys().copied().collect();
        for id in ids {
            self.stop(id);
        }
    }

    /// Waits (bounded) until recording `id` has ended by itself; whether it has.
    pub fn wait(&self, id: u64, timeout: Duration) -> bool {
        let s = self.0.list.lock().unwrap().get(&id).cloned();
        s.is_some_and(|s| s.wait_done(timeout))
    }
}

/// Starts the configuration's `record_at_start` recordings (`serve --record`) on `core`;
/// a line per recording for the console.
pub fn start_at_start(core: &crate::core::Core) -> anyhow::Result<String> {
    let mut lines = String::new();
    for r in &core.config.vod.record_at_start {
        let what = r.channel.as_deref().or(r.query.as_deref()).unwrap_or("");
        let info = core
            .recordings
            .start(r.clone())
            .map_err(|e| anyhow::anyhow!("--record {what}: {e}"))?;
        lines += &format!(
            "dvb2ip: recording {what} to {} ({}; GET /api/recordings/{})\n",
            info.file,
            match info.duration_s {
                Some(s) => format!("{s} s"),
                None => "until stopped".into(),
            },
            info.id
        );
    }
    Ok(lines)
}

/// The recording's thread: queue → file until stopped or the deadline, then final.
fn writer(
    sh: Arc<Shared>,
    src: Box<dyn source::Source>,
    rx: Receiver<Vec<u8>>,
    file: std::fs::File,
    tmp: PathBuf,
    final_path: PathBuf,
    deadline: Option<Instant>,
) {
    let mut out = std::io::BufWriter::with_capacity(256 * 1024, file);
    let mut src = Some(src);
    let mut error: Option<String> = None;
    let mut write = |buf: &[u8], out: &mut std::io::BufWriter<std::fs::File>| {
        if error.is_none() {
            match out.write_all(buf) {
                Ok(()) => {
                    sh.bytes.fetch_add(buf.len() as u64, Ordering::Relaxed);
                }
                Err(e) => error = Some(format!("write error: {e}")),
            }
        }
        error.is_none()
    };
    loop {
        if sh.stop.load(Ordering::SeqCst) || deadline.is_some_and(|d| Instant::now() >= d) {
            break;
        }
        let wait = deadline
            .map(|d| d.saturating_duration_since(Instant::now()))
            .unwrap_or(Duration::MAX)
            .min(Duration::from_millis(100));
        match rx.recv_timeout(wait) {
            Ok(buf) => {
                if !write(&buf, &mut out) {
                    break;
                }
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => break,
        }
    }
    *sh.ended.lock().unwrap() = Some(Instant::now());
    // Stop the feed (gives the frontend back), then write what it had queued.
    drop(src.take());
    while let Ok(buf) = rx.try_recv() {
        if !write(&buf, &mut out) {
            break;
        }
    }
    let finished = match out.into_inner() {
        Ok(f) => f.sync_all().map_err(|e| format!("sync: {e}")),
        Err(e) => Err(format!("flush: {}", e.error())),
    };
    let result = match (error.take(), finished) {
        (Some(e), _) | (None, Err(e)) => Err(e),
        (None, Ok(())) => std::fs::rename(&tmp, &final_path)
            .map_err(|e| format!("cannot rename {tmp:?} to {final_path:?}: {e}")),
    };
    {
        let mut info = sh.info.lock().unwrap();
        match result {
            Ok(()) => {
                info.state = "done";
                gst::info!(CAT, "recording {}: {final_path:?} done", info.id);
            }
            Err(e) => {
                gst::error!(CAT, "recording {}: {e}", info.id);
                info.state = "failed";
                info.error = Some(e);
            }
        }
    }
    let (m, cv) = &sh.done;
    *m.lock().unwrap() = true;
    cv.notify_all();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cli_form() {
        let r = RecordRequest::from_cli("news:30").unwrap();
        assert_eq!(
            (r.channel.as_deref(), r.duration_s),
            (Some("news"), Some(30))
        );
        let r = RecordRequest::from_cli("news").unwrap();
        assert_eq!((r.channel.as_deref(), r.duration_s), (Some("news"), None));
        for bad in ["news:", "news:0", "news:x", ":5", ""] {
            assert!(RecordRequest::from_cli(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn names_and_stamps() {
        assert_eq!(utc_stamp(0), "19700101-000000");
        assert_eq!(utc_stamp(1_798_000_000), "20261223-042640");
        assert_eq!(utc_stamp(951_782_400), "20000229-000000");
        assert_eq!(check_name("News at 8 (2).ts").unwrap(), "News at 8 (2)");
        for bad in ["", ".x", "a/b", "../x", "a\\b", "x\0"] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
    }
}
