//! `[[push]]`: a mount of this server (`/ch/<name>`, `/relay/<name>`, `/live/<name>`) sent to
//! another server with ANNOUNCE/SETUP/RECORD, as a publisher would (spec digest §5.2).
//!
//! One supervisor thread per push runs `rtspsrc` of the mount on this server's own RTSP port
//! (loopback: the same source readers share) into `rtspclientsink` to the target, MPEG-TS in
//! RTP (PT 33). A push that fails or ends is started again after a backoff doubling from 1 s
//! to [`MAX_BACKOFF`]; its state and counters are reported through the core.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use gst::prelude::*;
use serde::Serialize;

use super::config::{PushSection, Target};
use super::CAT;

/// Longest wait between two attempts of a push that keeps failing.
pub const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// A push's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    /// Not started (the server is starting).
    Idle,
    /// The pipeline runs and has sent nothing yet.
    Starting,
    /// Data goes out.
    Live,
    /// The last attempt failed; the next is due after the backoff.
    Failed,
}

/// A push's report.
#[derive(Debug, Clone, Serialize)]
pub struct PushStatus {
    pub name: String,
    pub source: String,
    /// The target without credentials.
    pub target: String,
    pub state: Phase,
    pub bytes_out: u64,
    pub starts: u64,
    pub failures: u64,
    pub last_error: Option<String>,
    /// Seconds until the next attempt (state `failed`).
    pub retry_in_s: Option<f64>,
}

#[derive(Default)]
struct State {
    phase: Option<Phase>,
    generation: u64,
    failed_gen: Option<(u64, String)>,
    live_gen: Option<u64>,
    starts: u64,
    failures: u64,
    failures_in_row: u32,
    retry_at: Option<Instant>,
    last_error: Option<String>,
    shutdown: bool,
}

/// One `[[push]]`.
pub struct Push {
    cfg: PushSection,
    target: Target,
    state: Mutex<State>,
    cond: Condvar,
    bytes_out: AtomicU64,
}

impl Push {
    pub fn status(&self) -> PushStatus {
        let st = self.state.lock().unwrap();
        PushStatus {
            name: self.cfg.name.clone(),
            source: self.cfg.source.clone(),
            target: self.target.url.clone(),
            state: st.phase.unwrap_or(Phase::Idle),
            bytes_out: self.bytes_out.load(Ordering::Relaxed),
            starts: st.starts,
            failures: st.failures,
            last_error: st.last_error.clone(),
            retry_in_s: st
                .retry_at
                .filter(|_| st.phase == Some(Phase::Failed))
                .map(|t| t.saturating_duration_since(Instant::now()).as_secs_f64()),
        }
    }

    fn launch_line(&self, local: &str) -> String {
        let q = |s: &str| format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""));
        let mut sink = format!(
            "rtspclientsink name=sink location={} protocols=tcp latency=0",
            q(&self.target.url)
        );
        if let Some(u) = &self.target.user {
            sink += &format!(" user-id={}", q(u));
        }
        if let Some(p) = &self.target.password {
            sink += &format!(" user-pw={}", q(p));
        }
        format!(
            "rtspsrc location={} latency=0 protocols=tcp ! rtpmp2tdepay name=depay ! tsparse set-timestamps=true alignment=7 ! {sink}",
            q(&format!("{local}{}", self.cfg.source))
        )
    }

    fn start_pipeline(
        self: &Arc<Self>,
        local: &str,
        generation: u64,
    ) -> Result<gst::Pipeline, String> {
        let line = self.launch_line(local);
        let pipeline = gst::parse::launch(&line)
            .map_err(|e| format!("cannot build the push: {e}"))?
            .downcast::<gst::Pipeline>()
            .map_err(|_| "the push is not a pipeline".to_string())?;
        if let Some(pad) = pipeline.by_name("depay").and_then(|d| d.static_pad("src")) {
            let weak = Arc::downgrade(self);
            pad.add_probe(gst::PadProbeType::BUFFER, move |_, info| {
                if let (Some(p), Some(b)) = (weak.upgrade(), info.buffer()) {
                    p.bytes_out.fetch_add(b.size() as u64, Ordering::Relaxed);
                    let mut st = p.state.lock().unwrap();
                    if st.live_gen != Some(generation) && st.generation == generation {
                        st.live_gen = Some(generation);
                        p.cond.notify_all();
                    }
                }
                gst::PadProbeReturn::Ok
            });
        }
        let bus = pipeline.bus().ok_or("the push has no bus")?;
        let weak = Arc::downgrade(self);
        bus.set_sync_handler(move |_, msg| {
            let why = match msg.view() {
                gst::MessageView::Error(e) => Some(format!(
                    "{}{}",
                    e.error(),
                    e.debug()
                        .map(|d| format!(" ({})", d.lines().last().unwrap_or("")))
                        .unwrap_or_default()
                )),
                gst::MessageView::Eos(_) => Some("the source ended".to_string()),
                _ => None,
            };
            if let (Some(why), Some(p)) = (why, weak.upgrade()) {
                let mut st = p.state.lock().unwrap();
                if st.generation == generation && st.failed_gen.is_none() {
                    st.failed_gen = Some((generation, why));
                    p.cond.notify_all();
                }
            }
            gst::BusSyncReply::Drop
        });
        gst::debug!(CAT, "push {}: {line}", self.cfg.name);
        if let Err(e) = pipeline.set_state(gst::State::Playing) {
            let _ = pipeline.set_state(gst::State::Null);
            return Err(format!("cannot start the push: {e}"));
        }
        Ok(pipeline)
    }

    fn supervise(self: Arc<Self>, local: &str) {
        let mut pipeline: Option<gst::Pipeline> = None;
        let stop = |p: &mut Option<gst::Pipeline>| {
            if let Some(p) = p.take() {
                if let Some(bus) = p.bus() {
                    bus.unset_sync_handler();
                }
                let _ = p.set_state(gst::State::Null);
            }
        };
        let mut st = self.state.lock().unwrap();
        loop {
            if st.shutdown {
                drop(st);
                stop(&mut pipeline);
                return;
            }
            let now = Instant::now();
            let phase = st.phase.unwrap_or(Phase::Idle);
            if let Some((_, why)) = st.failed_gen.take() {
                st.failures += 1;
                st.failures_in_row += 1;
                let backoff =
                    Duration::from_secs(1u64 << st.failures_in_row.min(6).saturating_sub(1))
                        .min(MAX_BACKOFF);
                st.retry_at = Some(now + backoff);
                st.phase = Some(Phase::Failed);
                eprintln!(
                    "dvb2ip: push {} to {}: {why} (next attempt in {} s)",
                    self.cfg.name,
                    self.target.url,
                    backoff.as_secs()
                );
                st.last_error = Some(why);
                st.generation += 1;
                drop(st);
                stop(&mut pipeline);
                st = self.state.lock().unwrap();
                continue;
            }
            if phase == Phase::Starting && st.live_gen == Some(st.generation) {
                st.phase = Some(Phase::Live);
                st.failures_in_row = 0;
                eprintln!(
                    "dvb2ip: push {}: {} live to {}",
                    self.cfg.name, self.cfg.source, self.target.url
                );
                continue;
            }
            let due = match phase {
                Phase::Idle => true,
                Phase::Failed => st.retry_at.is_none_or(|t| now >= t),
                _ => false,
            };
            if due {
                st.generation += 1;
                let generation = st.generation;
                st.phase = Some(Phase::Starting);
                st.starts += 1;
                drop(st);
                let started = self.start_pipeline(local, generation);
                st = self.state.lock().unwrap();
                match started {
                    Ok(p) => pipeline = Some(p),
                    Err(why) => st.failed_gen = Some((generation, why)),
                }
                continue;
            }
            let wait = match phase {
                Phase::Failed => st
                    .retry_at
                    .map(|t| t.saturating_duration_since(now))
                    .unwrap_or_default(),
                _ => Duration::from_secs(3600),
            }
            .max(Duration::from_millis(1));
            st = self.cond.wait_timeout(st, wait).unwrap().0;
        }
    }
}

/// The server's pushes, owned by the core's publishers.
pub struct Pushes {
    list: Vec<Arc<Push>>,
    started: std::sync::Once,
}

impl Pushes {
    pub fn new(cfg: &[PushSection]) -> Pushes {
        Pushes {
            list: cfg
                .iter()
                .filter_map(|c| {
                    let target = c.target().ok()?;
                    Some(Arc::new(Push {
                        cfg: c.clone(),
                        target,
                        state: Mutex::default(),
                        cond: Condvar::new(),
                        bytes_out: AtomicU64::new(0),
                    }))
                })
                .collect(),
            started: std::sync::Once::new(),
        }
    }

    /// Starts every push, reading this server's mounts on `bind`:`rtsp_port` (loopback for an
    /// unspecified address). Once.
    pub fn start(&self, bind: std::net::IpAddr, rtsp_port: u16) {
        let host = match bind {
            b if b.is_unspecified() && b.is_ipv6() => "[::1]".to_string(),
            b if b.is_unspecified() => "127.0.0.1".to_string(),
            std::net::IpAddr::V6(b) => format!("[{b}]"),
            b => b.to_string(),
        };
        let local = format!("rtsp://{host}:{rtsp_port}");
        self.started.call_once(|| {
            for p in &self.list {
                let p = p.clone();
                let local = local.clone();
                if let Err(e) = std::thread::Builder::new()
                    .name(format!("push-{}", p.cfg.name))
                    .spawn(move || p.supervise(&local))
                {
                    gst::error!(CAT, "cannot start a push supervisor: {e}");
                }
            }
        });
    }

    pub fn status(&self) -> Vec<PushStatus> {
        self.list.iter().map(|p| p.status()).collect()
    }
}

impl Drop for Pushes {
    fn drop(&mut self) {
        for p in &self.list {
            p.state.lock().unwrap().shutdown = true;
            p.cond.notify_all();
        }
    }
}
