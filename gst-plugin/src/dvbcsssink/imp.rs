// Lock order: settings → state → servers. No lock is held while notifying, posting messages
// or waiting for the server tasks. `Shared` methods never block and never call back into the
// element, so they may be called with the state lock held.

use std::collections::BTreeMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;
use gst_base::prelude::*;
use gst_base::subclass::prelude::*;
use once_cell::sync::Lazy;
use tokio::sync::oneshot;

use crate::css_server::{
    self as servers, Endpoint, EventHook, ServerEvent, Shared, WallClock, WcConfig, WsConfig,
};
use crate::proto::css::cii::{is_valid_presentation_status, ContentIdStatus, TimelineOption};
use crate::proto::css::clock::Correlation;
use crate::proto::css::contentid::{DvbContentId, DvbEvent, PtDuration, UtcMinute};
use crate::proto::css::lines::{LineConfig, Observed, Track};
use crate::proto::css::timeline::{TickRate, TimelineSelector};
use crate::runtime::RUNTIME;
use crate::tstimelineparse::event::{ServiceIdentity, TimelineEventKind, TimelineInfo};

static CAT: Lazy<gst::DebugCategory> = Lazy::new(|| {
    gst::DebugCategory::new(
        "dvbcsssink",
        gst::DebugColorFlags::empty(),
        Some("DVB-CSS sink"),
    )
});

const DEFAULT_BIND_ADDRESS: &str = "127.0.0.1";
const DEFAULT_CII_PORT: u32 = 7681;
const DEFAULT_TS_PORT: u32 = 7681;
const DEFAULT_WC_PORT: u32 = 6677;
const DEFAULT_CII_PATH: &str = "/cii";
const DEFAULT_TS_PATH: &str = "/ts";
const DEFAULT_ENABLE: bool = true;
const DEFAULT_MAX_CONNECTIONS: u32 = 32;
const DEFAULT_WC_FOLLOW_UP: bool = false;
const DEFAULT_PROGRAM_NUMBER: u32 = 0;
const DEFAULT_TOLERANCE_US: u32 = 1000;
const DEFAULT_POST_MESSAGES: bool = false;
/// A new service may replace the followed one (program-number 0) once the followed program has
/// produced no timeline anchor for this long (ns of running time).
const PROGRAM_IDLE_NS: u64 = 500_000_000;
/// Time allowed to the server tasks to finish in `stop()`.
const STOP_TIMEOUT: Duration = Duration::from_secs(3);

#[derive(Debug, Clone)]
struct Settings {
    bind_address: String,
    cii_port: u32,
    ts_port: u32,
    wc_port: u32,
    cii_path: String,
    ts_path: String,
    content_id: Option<String>,
    presentation_status: Option<String>,
    enable_cii: bool,
    enable_ts: bool,
    enable_wc: bool,
    max_connections: u32,
    wc_follow_up: bool,
    program_number: u32,
    tolerance_us: u32,
    post_messages: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            bind_address: DEFAULT_BIND_ADDRESS.into(),
            cii_port: DEFAULT_CII_PORT,
            ts_port: DEFAULT_TS_PORT,
            wc_port: DEFAULT_WC_PORT,
            cii_path: DEFAULT_CII_PATH.into(),
            ts_path: DEFAULT_TS_PATH.into(),
            content_id: None,
            presentation_status: None,
            enable_cii: DEFAULT_ENABLE,
            enable_ts: DEFAULT_ENABLE,
            enable_wc: DEFAULT_ENABLE,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            wc_follow_up: DEFAULT_WC_FOLLOW_UP,
            program_number: DEFAULT_PROGRAM_NUMBER,
            tolerance_us: DEFAULT_TOLERANCE_US,
            post_messages: DEFAULT_POST_MESSAGES,
        }
    }
}

/// Something seen on the sink pad, applied when the next buffer is rendered (it belongs to
/// that buffer: events are serialized in front of it).
#[derive(Debug)]
enum Pending {
    Timeline(TimelineInfo),
    Service(ServiceIdentity),
}

/// One served timeline.
#[derive(Debug)]
struct Served {
    track: Track,
    /// The line moved and must be published.
    dirty: bool,
    /// The line is built on presentation times (PTS on the STC), not on buffer times.
    on_presentation: bool,
}

struct State {
    shared: Arc<Shared>,
    line_config: LineConfig,
    program_fixed: Option<u16>,
    content_override: Option<String>,
    status_override: Option<String>,
    pending: Vec<Pending>,
    timelines: BTreeMap<String, Served>,
    /// Program whose timelines are served.
    program: Option<u16>,
    /// Running time of the last anchor accepted from `program`.
    program_last_rt: Option<u64>,
    service: Option<ServiceIdentity>,
    /// In PLAYING (lines are published at speed ≠ 0).
    playing: bool,
    /// When not playing: (wall clock, running time) at which presentation stopped.
    stopped_at: Option<(i64, i128)>,
    /// Wall clock = running time + offset, as last published.
    offset: Option<i128>,
    /// Segment rate.
    rate: f64,
    /// A buffer was rendered since start / the last channel change.
    presenting: bool,
    /// Anchors carried by the buffer being rendered (for `post-messages`): selector, value,
    /// tick rate, presentation running time (ns) when the anchor has one.
    anchors: Vec<(String, u64, u64, Option<i128>)>,
}

struct Servers {
    stops: Vec<oneshot::Sender<()>>,
    tasks: Vec<tokio::task::JoinHandle<io::Result<()>>>,
}

pub struct DvbCssSink {
    settings: Mutex<Settings>,
    state: Mutex<Option<State>>,
    servers: Mutex<Option<Servers>>,
    /// The thread presenting anchors at their time (for `post-messages`), once needed.
    presenter: Mutex<Option<Presenter>>,
    /// Counters of the servers of earlier runs (start → stop), for the `stats` totals.
    finished: Mutex<crate::css_server::ServerStats>,
}

/// GStreamer's system clock as the CSS wall clock.
struct SystemWallClock(gst::Clock);

impl WallClock for SystemWallClock {
    fn now_ns(&self) -> u64 {
        self.0.time().nseconds()
    }
}

fn system_clock() -> gst::Clock {
    gst::SystemClock::obtain()
}

fn to_i64(v: i128) -> i64 {
    v.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64
}

impl State {
    fn cii_timelines(&self) -> Option<Vec<TimelineOption>> {
        let v: Vec<TimelineOption> = self
            .timelines
            .iter()
            .filter_map(|(sel, s)| {
                let rate = TickRate::per_second(s.track.tick_rate)?;
                Some(TimelineOption::new(
                    &TimelineSelector::parse(sel),
                    rate,
                    None,
                ))
            })
            .collect();
        (!v.is_empty()).then_some(v)
    }

    fn update_cii_timelines(&self) {
        let t = self.cii_timelines();
        self.shared.update_cii(|c| c.timelines = t);
    }

    fn presentation_status(&self) -> String {
        self.status_override.clone().unwrap_or_else(|| {
            if self.presenting {
                "okay"
            } else {
                "transitioning"
            }
            .to_owned()
        })
    }

    fn update_status(&self) {
        let s = self.presentation_status();
        self.shared.update_cii(|c| c.presentation_status = Some(s));
    }

    /// contentId and status from the override or the service identity.
    fn update_content_id(&self) {
        let (id, status) = match (&self.content_override, &self.service) {
            (Some(o), _) => (Some(o.clone()), Some(ContentIdStatus::Final)),
            (
                None,
                Some(
                    svc @ ServiceIdentity {
                        service_id,
                        original_network_id: Some(onid),
                        transport_stream_id: Some(tsid),
                        ..
                    },
                ),
            ) => {
                // `partial` until the present event (EIT p/f) is known, then `final`.
                let mut id = DvbContentId::service(*onid, *tsid, *service_id);
                if let Some(event) = present_event(svc) {
                    id = id.with_event(event);
                }
                (Some(id.to_string()), Some(id.status()))
            }
            _ => (None, None),
        };
        self.shared.update_cii(|c| {
            c.content_id = id;
            c.content_id_status = status;
        });
    }

    /// Withdraw every timeline (clients get unavailable CTs).
    fn clear_timelines(&mut self) {
        for sel in std::mem::take(&mut self.timelines).keys() {
            self.shared.remove_timeline(sel);
        }
        self.update_cii_timelines();
    }

    /// The wall clock correlation and speed of a line now.
    fn wall_line(&self, track: &Track) -> Option<(Correlation, f64)> {
        let line = track.line?;
        match (self.playing, self.offset) {
            (true, Some(off)) => Some((
                Correlation::new(to_i64(line.rt_ns + off), to_i64(line.ticks)),
                line.speed * self.rate,
            )),
            _ => {
                let (wall, rt) = self.stopped_at?;
                Some((
                    Correlation::new(wall, to_i64(line.ticks_at(rt, track.tick_rate))),
                    0.0,
                ))
            }
        }
    }

    fn publish(&self, sel: &str, served: &Served) {
        let Some(rate) = TickRate::per_second(served.track.tick_rate) else {
            return;
        };
        match self.wall_line(&served.track) {
            Some((c, speed)) => {
                let _ = self.shared.set_timeline(sel, rate, Some(c), speed);
            }
            None => self
                .shared
                .set_timeline_state(sel, rate, servers::TimelineState::Pending),
        }
    }

    fn publish_dirty(&mut self) {
        for (sel, s) in &self.timelines {
            if s.dirty {
                self.publish(sel, s);
            }
        }
        for s in self.timelines.values_mut() {
            s.dirty = false;
        }
    }

    fn publish_all(&mut self) {
        for s in self.timelines.values_mut() {
            s.dirty = true;
        }
        self.publish_dirty();
    }

    /// Whether a timeline record of `program` is for us (locks on the first program seen).
    fn accept_program(&mut self, program: u16) -> bool {
        if let Some(p) = self.program_fixed {
            return p == program;
        }
        if program == 0 {
            return false;
        }
        *self.program.get_or_insert(program) == program
    }

    fn apply_service(&mut self, id: ServiceIdentity) {
        let sid = id.service_id;
        let follow = match (self.program_fixed, self.program) {
            (Some(p), _) => p == sid,
            (None, None) => true,
            (None, Some(p)) if p == sid => true,
            (None, Some(_)) => match (id.running_time, self.program_last_rt) {
                (Some(now), Some(last)) => now.nseconds().saturating_sub(last) >= PROGRAM_IDLE_NS,
                _ => self.program_last_rt.is_none(),
            },
        };
        if !follow {
            return;
        }
        let changed = self.service.as_ref().is_some_and(|old| {
            old.service_id != id.service_id
                || matches!((old.original_network_id, id.original_network_id), (Some(a), Some(b)) if a != b)
                || matches!((old.transport_stream_id, id.transport_stream_id), (Some(a), Some(b)) if a != b)
        });
        if changed {
            gst::info!(CAT, "channel change to service {:#x}", sid);
            self.clear_timelines();
            self.presenting = false;
            self.program_last_rt = None;
        }
        if self.program_fixed.is_none() {
            self.program = Some(sid);
        }
        self.service = Some(id);
        self.update_content_id();
        self.update_status();
    }

    fn apply_timeline(&mut self, info: TimelineInfo) {
        if !self.accept_program(info.program) {
            return;
        }
        if let Some(rt) = info.running_time {
            self.program_last_rt = Some(rt.nseconds());
        }
        let sel = info.selector.clone();
        match info.kind {
            TimelineEventKind::Disappeared => {
                if self.timelines.remove(&sel).is_some() {
                    self.shared.remove_timeline(&sel);
                    self.update_cii_timelines();
                }
            }
            TimelineEventKind::Paused
            | TimelineEventKind::Resumed
            | TimelineEventKind::Discontinuity => {
                if let Some(s) = self.timelines.get_mut(&sel) {
                    s.track.reset();
                }
            }
            TimelineEventKind::Location => {}
            TimelineEventKind::Appeared | TimelineEventKind::Correlation => {
                if info.tick_rate == 0 {
                    return;
                }
                let new = match self.timelines.get(&sel) {
                    Some(s) => s.track.tick_rate != info.tick_rate,
                    None => true,
                };
                if new {
                    self.timelines.insert(
                        sel.clone(),
                        Served {
                            track: Track::new(info.tick_rate),
                            dirty: true,
                            on_presentation: false,
                        },
                    );
                    self.update_cii_timelines();
                }
                let ticks = if info.temi {
                    info.value
                } else {
                    info.pts_unwrapped.or(info.value)
                };
                // A decoder shows the access unit at its PTS on the program's STC: that is
                // the moment the timeline has this value. Without one, the buffer's time.
                let presented = info.presentation_time.map(|t| i128::from(t.nseconds()));
                let (Some(ticks), Some(rt)) = (ticks, info.presentation_time.or(info.running_time))
                else {
                    return;
                };
                let speed = if info.paused { 0.0 } else { 1.0 };
                let cfg = self.line_config;
                let served = self.timelines.get_mut(&sel).expect("inserted above");
                if served.on_presentation != presented.is_some() {
                    // Buffer times and presentation times differ by the decoder delay: the
                    // line moves to the new kind of anchor at once.
                    served.on_presentation = presented.is_some();
                    served.track.reset();
                }
                if served.track.observe(ticks, rt.nseconds(), speed, &cfg) == Observed::Moved {
                    served.dirty = true;
                }
                self.anchors.push((sel, ticks, info.tick_rate, presented));
            }
        }
    }

    fn drain_pending(&mut self) {
        for p in std::mem::take(&mut self.pending) {
            match p {
                Pending::Timeline(t) => self.apply_timeline(t),
                Pending::Service(s) => self.apply_service(s),
            }
        }
    }
}

/// Presents timeline anchors at their due time (`post-messages`) on a thread of its own, at
/// real-time priority where the system allows it (as a TV's presentation path runs), so that a
/// busy machine delays the moment of presentation as little as possible.
struct Presenter {
    tx: std::sync::mpsc::Sender<(u64, gst::SingleShotClockId, gst::Structure)>,
    /// Bumped by [`Presenter::cancel`]: queued presentations of older generations are dropped.
    generation: Arc<std::sync::atomic::AtomicU64>,
    waiting: Arc<Mutex<Option<gst::SingleShotClockId>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Presenter {
    fn start(sink: &super::DvbCssSink) -> Self {
        use std::sync::atomic::Ordering;
        let (tx, rx) = std::sync::mpsc::channel::<(u64, gst::SingleShotClockId, gst::Structure)>();
        let generation = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let waiting: Arc<Mutex<Option<gst::SingleShotClockId>>> = Arc::default();
        let weak = sink.downgrade();
        let (g, w) = (generation.clone(), waiting.clone());
        let thread = std::thread::Builder::new()
            .name("dvbcss-present".into())
            .spawn(move || {
                let rt = crate::sys::set_fifo_priority(1);
                gst::debug!(CAT, "presentation thread, real-time priority: {rt}");
                for (gen, id, s) in rx {
                    if gen != g.load(Ordering::SeqCst) {
                        continue;
                    }
                    *w.lock().unwrap() = Some(id.clone());
                    // A cancel between the check and here unschedules the stored id.
                    if gen != g.load(Ordering::SeqCst) {
                        continue;
                    }
                    let (res, _) = id.wait();
                    w.lock().unwrap().take();
                    if matches!(res, Ok(_) | Err(gst::ClockError::Early)) {
                        if let Some(o) = weak.upgrade() {
                            o.imp().post_presented(s);
                        }
                    }
                }
            })
            .ok();
        Self {
            tx,
            generation,
            waiting,
            thread,
        }
    }

    fn present(&self, id: gst::SingleShotClockId, s: gst::Structure) {
        let gen = self.generation.load(std::sync::atomic::Ordering::SeqCst);
        let _ = self.tx.send((gen, id, s));
    }

    /// Drops everything queued or waiting.
    fn cancel(&self) {
        self.generation
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        if let Some(id) = self.waiting.lock().unwrap().take() {
            id.unschedule();
        }
    }

    fn stop(mut self) {
        self.cancel();
        let Presenter { tx, thread, .. } = &mut self;
        drop(std::mem::replace(tx, std::sync::mpsc::channel().0));
        if let Some(t) = thread.take() {
            let _ = t.join();
        }
    }
}

/// The present event of a service for its content id: event id, start (to the minute) and
/// duration (rounded to the minute), when EIT p/f gave all three.
fn present_event(svc: &ServiceIdentity) -> Option<DvbEvent> {
    Some(DvbEvent {
        event_id: svc.event_id?,
        start: UtcMinute::from_unix_secs(u64::try_from(svc.event_start?).ok()?)?,
        duration: PtDuration::from_minutes(svc.event_duration?.saturating_add(30) / 60),
    })
}

impl DvbCssSink {
    /// The `stats` property's structure.
    fn stats(&self) -> gst::Structure {
        let f = *self.finished.lock().unwrap();
        let (content_id, timelines, connections, now) = match self.state.lock().unwrap().as_ref() {
            Some(st) => {
                let state = st.shared.state();
                (
                    state.cii.content_id.clone().unwrap_or_default(),
                    state
                        .timelines
                        .keys()
                        .cloned()
                        .collect::<Vec<_>>()
                        .join(","),
                    st.shared.connections(),
                    st.shared.stats(),
                )
            }
            None => (String::new(), String::new(), 0, Default::default()),
        };
        gst::Structure::builder("dvb-css-stats")
            .field("content-id", content_id)
            .field("timelines", timelines)
            .field(
                "connections",
                u32::try_from(connections).unwrap_or(u32::MAX),
            )
            .field("wc-requests", f.wc_requests + now.wc_requests)
            .field("cii-sessions", f.cii_sessions + now.cii_sessions)
            .field("ts-sessions", f.ts_sessions + now.ts_sessions)
            .build()
    }

    /// Posts a `dvb-css-presented` message stamped with the wall clock of this moment.
    fn post_presented(&self, mut s: gst::Structure) {
        s.set("wall-clock", system_clock().time().nseconds());
        let obj = self.obj();
        let _ = obj.post_message(gst::message::Element::builder(s).src(&*obj).build());
    }

    /// Drops the presentations still waiting (flush).
    fn cancel_presentations(&self) {
        if let Some(p) = self.presenter.lock().unwrap().as_ref() {
            p.cancel();
        }
    }

    /// Pipeline clock time (ns) at which a buffer of running time 0 is presented: base time +
    /// latency + ts-offset.
    fn clock_offset(&self) -> Option<i128> {
        let obj = self.obj();
        let base = obj.base_time()?;
        Some(
            i128::from(base.nseconds())
                + i128::from(obj.latency().nseconds())
                + i128::from(obj.ts_offset()),
        )
    }

    /// [`Self::clock_offset`] on the wall clock (system clock) domain, converted when the
    /// pipeline clock is not the system clock.
    fn wall_offset(&self) -> Option<i128> {
        let clock = self.obj().clock()?;
        let mut off = self.clock_offset()?;
        let sys = system_clock();
        if clock != sys {
            off += i128::from(sys.time().nseconds()) - i128::from(clock.time().nseconds());
        }
        Some(off)
    }

    fn running_time(&self, buffer: &gst::BufferRef) -> Option<i128> {
        let segment = self.obj().segment();
        let seg = segment.downcast_ref::<gst::format::Time>()?;
        let pts = buffer.pts().or(buffer.dts())?;
        seg.to_running_time(pts).map(|t| i128::from(t.nseconds()))
    }

    fn start_servers(
        &self,
        settings: &Settings,
    ) -> Result<(Arc<Shared>, Servers, [u16; 3]), gst::ErrorMessage> {
        let ip: IpAddr = settings.bind_address.parse().map_err(|e| {
            gst::error_msg!(
                gst::ResourceError::Settings,
                ["Invalid bind-address {:?}: {}", settings.bind_address, e]
            )
        })?;
        let hook: EventHook = Arc::new(|e: &ServerEvent| match e {
            ServerEvent::WcIgnored { from, error, total } => {
                gst::debug!(
                    CAT,
                    "CSS-WC: ignored datagram from {from}: {error} ({total} so far)"
                )
            }
            ServerEvent::BadMessage {
                endpoint,
                peer,
                error,
            } => {
                gst::debug!(CAT, "{endpoint}: unusable message from {peer}: {error}")
            }
            ServerEvent::AptEptLpt { .. } => gst::trace!(CAT, "{e:?}"),
            _ => gst::debug!(CAT, "{e:?}"),
        });
        let shared = Shared::with_events(SystemWallClock(system_clock()), hook);
        let _guard = RUNTIME.enter();
        let bind_err = |what: &str, port: u32, e: io::Error| {
            gst::error_msg!(
                gst::ResourceError::OpenReadWrite,
                [
                    "Could not bind the {} server to {}:{}: {}",
                    what,
                    ip,
                    port,
                    e
                ]
            )
        };
        let port16 = |p: u32| u16::try_from(p).unwrap_or(0);
        let tcp = |what: &str, port: u32| -> Result<tokio::net::TcpListener, gst::ErrorMessage> {
            let l = std::net::TcpListener::bind(SocketAddr::new(ip, port16(port)))
                .and_then(|l| l.set_nonblocking(true).map(|()| l))
                .map_err(|e| bind_err(what, port, e))?;
            tokio::net::TcpListener::from_std(l).map_err(|e| bind_err(what, port, e))
        };
        let max = settings.max_connections.max(1) as usize;
        let cii_cfg = WsConfig {
            max_connections: max,
            ..WsConfig::new(settings.cii_path.clone())
        };
        let ts_cfg = WsConfig {
            max_connections: max,
            ..WsConfig::new(settings.ts_path.clone())
        };
        let mut stops = Vec::new();
        let mut tasks = Vec::new();
        let mut spawn =
            |fut: std::pin::Pin<Box<dyn std::future::Future<Output = io::Result<()>> + Send>>,
             stop: oneshot::Sender<()>| {
                stops.push(stop);
                tasks.push(RUNTIME.spawn(fut));
            };
        let stopper = || {
            let (tx, rx) = oneshot::channel::<()>();
            (tx, async move {
                let _ = rx.await;
            })
        };
        let cii_listener = tcp("CSS-CII", settings.cii_port)?;
        let cii_port = cii_listener.local_addr().map(|a| a.port()).unwrap_or(0);
        let ts_port;
        if settings.ts_port == settings.cii_port {
            ts_port = cii_port;
            let (tx, sd) = stopper();
            spawn(
                Box::pin(servers::run_cii_ts(
                    cii_listener,
                    shared.clone(),
                    cii_cfg,
                    ts_cfg,
                    sd,
                )),
                tx,
            );
        } else {
            let ts_listener = tcp("CSS-TS", settings.ts_port)?;
            ts_port = ts_listener.local_addr().map(|a| a.port()).unwrap_or(0);
            let (tx, sd) = stopper();
            spawn(
                Box::pin(servers::run_cii(cii_listener, shared.clone(), cii_cfg, sd)),
                tx,
            );
            let (tx, sd) = stopper();
            spawn(
                Box::pin(servers::run_ts(ts_listener, shared.clone(), ts_cfg, sd)),
                tx,
            );
        }
        let mut wc_port = 0;
        if settings.enable_wc {
            let sock = std::net::UdpSocket::bind(SocketAddr::new(ip, port16(settings.wc_port)))
                .and_then(|s| s.set_nonblocking(true).map(|()| s))
                .and_then(tokio::net::UdpSocket::from_std)
                .map_err(|e| bind_err("CSS-WC", settings.wc_port, e))?;
            wc_port = sock.local_addr().map(|a| a.port()).unwrap_or(0);
            let cfg = WcConfig {
                follow_up: settings.wc_follow_up,
                ..WcConfig::default()
            };
            let (tx, sd) = stopper();
            spawn(Box::pin(servers::run_wc(sock, shared.clone(), cfg, sd)), tx);
        }
        Ok((
            shared,
            Servers { stops, tasks },
            [cii_port, ts_port, wc_port],
        ))
    }
}

#[glib::object_subclass]
impl ObjectSubclass for DvbCssSink {
    const NAME: &'static str = "GstDvbCssSink";
    type Type = super::DvbCssSink;
    type ParentType = gst_base::BaseSink;

    fn new() -> Self {
        Self {
            settings: Mutex::new(Settings::default()),
            state: Mutex::new(None),
            servers: Mutex::new(None),
            presenter: Mutex::new(None),
            finished: Mutex::new(Default::default()),
        }
    }
}

impl ObjectImpl for DvbCssSink {
    fn properties() -> &'static [glib::ParamSpec] {
        static PROPERTIES: Lazy<Vec<glib::ParamSpec>> = Lazy::new(|| {
            vec![
                /**
                 * GstDvbCssSink:bind-address:
                 *
                 * Address the three servers listen on. CII URLs use the address each client
                 * connected to, so 0.0.0.0 works for several interfaces.
                 */
                glib::ParamSpecString::builder("bind-address")
                    .nick("Bind address")
                    .blurb("IP address the CSS-CII, CSS-TS and CSS-WC servers listen on (e.g. 127.0.0.1, 0.0.0.0, ::)")
                    .default_value(Some(DEFAULT_BIND_ADDRESS))
                    .mutable_ready()
                    .build(),
                /**
                 * GstDvbCssSink:cii-port:
                 *
                 * TCP port of the CSS-CII WebSocket server; 0 picks a free port, written back
                 * once bound.
                 */
                glib::ParamSpecUInt::builder("cii-port")
                    .nick("CII port")
                    .blurb("TCP port of the CSS-CII WebSocket server (0-65535, 0 = pick a free port; the bound port is written back)")
                    .maximum(65535)
                    .default_value(DEFAULT_CII_PORT)
                    .mutable_ready()
                    .build(),
                /**
                 * GstDvbCssSink:ts-port:
                 *
                 * TCP port of the CSS-TS WebSocket server. Equal to cii-port (the default,
                 * pydvbcss's convention): one server answers both paths.
                 */
                glib::ParamSpecUInt::builder("ts-port")
                    .nick("TS port")
                    .blurb("TCP port of the CSS-TS WebSocket server (0-65535; equal to cii-port = same server as CII, 0 = pick a free port; the bound port is written back)")
                    .maximum(65535)
                    .default_value(DEFAULT_TS_PORT)
                    .mutable_ready()
                    .build(),
                /**
                 * GstDvbCssSink:wc-port:
                 *
                 * UDP port of the CSS-WC server; 0 picks a free port, written back once bound.
                 */
                glib::ParamSpecUInt::builder("wc-port")
                    .nick("WC port")
                    .blurb("UDP port of the CSS-WC wall clock server (0-65535, 0 = pick a free port; the bound port is written back)")
                    .maximum(65535)
                    .default_value(DEFAULT_WC_PORT)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecString::builder("cii-path")
                    .nick("CII path")
                    .blurb("HTTP path of the CSS-CII WebSocket endpoint (other paths get 404)")
                    .default_value(Some(DEFAULT_CII_PATH))
                    .mutable_ready()
                    .build(),
                glib::ParamSpecString::builder("ts-path")
                    .nick("TS path")
                    .blurb("HTTP path of the CSS-TS WebSocket endpoint (other paths get 404)")
                    .default_value(Some(DEFAULT_TS_PATH))
                    .mutable_ready()
                    .build(),
                /**
                 * GstDvbCssSink:content-id:
                 *
                 * Replaces the contentId derived from the service identity (sent with
                 * contentIdStatus "final"); NULL = derive it.
                 */
                glib::ParamSpecString::builder("content-id")
                    .nick("Content id")
                    .blurb("CSS-CII contentId to announce instead of dvb://onid.tsid.sid from the stream (NULL = from the stream)")
                    .mutable_playing()
                    .build(),
                /**
                 * GstDvbCssSink:presentation-status:
                 *
                 * Replaces the automatic presentationStatus ("transitioning" until a buffer is
                 * rendered, then "okay"). Must start with okay, transitioning or fault.
                 */
                glib::ParamSpecString::builder("presentation-status")
                    .nick("Presentation status")
                    .blurb("CSS-CII presentationStatus to announce (space-separated words, first okay/transitioning/fault; NULL = automatic)")
                    .mutable_playing()
                    .build(),
                glib::ParamSpecBoolean::builder("enable-cii")
                    .nick("Enable CII")
                    .blurb("Serve CSS-CII; when false, upgrades get HTTP 403 and open sessions are closed with 1001")
                    .default_value(DEFAULT_ENABLE)
                    .mutable_playing()
                    .build(),
                glib::ParamSpecBoolean::builder("enable-ts")
                    .nick("Enable TS")
                    .blurb("Serve CSS-TS; when false, upgrades get HTTP 403 and open sessions are closed with 1001")
                    .default_value(DEFAULT_ENABLE)
                    .mutable_playing()
                    .build(),
                glib::ParamSpecBoolean::builder("enable-wc")
                    .nick("Enable WC")
                    .blurb("Run the CSS-WC server (when false, no UDP socket is opened and wcUrl is null)")
                    .default_value(DEFAULT_ENABLE)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt::builder("max-connections")
                    .nick("Max connections")
                    .blurb("Open WebSocket sessions allowed per endpoint (1-4096); further upgrades get HTTP 503")
                    .minimum(1)
                    .maximum(4096)
                    .default_value(DEFAULT_MAX_CONNECTIONS)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecBoolean::builder("wc-follow-up")
                    .nick("WC follow-up")
                    .blurb("Answer CSS-WC requests with a type-2 response plus a type-3 follow-up carrying a transmit time read after sending")
                    .default_value(DEFAULT_WC_FOLLOW_UP)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt::builder("program-number")
                    .nick("Program number")
                    .blurb("Program (service id) whose timelines and identity are served (0-65535, 0 = the first one seen; a new one once it has been idle for 0.5 s)")
                    .maximum(65535)
                    .default_value(DEFAULT_PROGRAM_NUMBER)
                    .mutable_ready()
                    .build(),
                /**
                 * GstDvbCssSink:correlation-tolerance:
                 *
                 * Arrival jitter of timeline anchors that does not move the published timeline.
                 */
                glib::ParamSpecUInt::builder("correlation-tolerance")
                    .nick("Correlation tolerance")
                    .blurb("Deviation in microseconds (0-1000000) of a timeline anchor from the published timeline below which no new control timestamp is sent")
                    .maximum(1_000_000)
                    .default_value(DEFAULT_TOLERANCE_US)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecBoolean::builder("post-messages")
                    .nick("Post messages")
                    .blurb("Post a dvb-css-presented element message (selector, value, tick-rate, wall-clock ns) for every timeline anchor when it is presented: at its PTS on the program's PCR-locked clock, or when its buffer is rendered if it has none")
                    .default_value(DEFAULT_POST_MESSAGES)
                    .mutable_playing()
                    .build(),
                /**
                 * GstDvbCssSink:stats:
                 *
                 * What the servers do (a `dvb-css-stats` structure): `content-id` (CII
                 * contentId now, "" when none), `timelines` (selectors served, comma-separated),
                 * `connections` (CSS-CII and CSS-TS sessions open now), and the totals since
                 * the element was made: `wc-requests` (CSS-WC requests answered),
                 * `cii-sessions`, `ts-sessions`.
                 */
                glib::ParamSpecBoxed::builder::<gst::Structure>("stats")
                    .nick("Statistics")
                    .blurb("The servers' state and counters: content-id, timelines, connections, wc-requests, cii-sessions, ts-sessions")
                    .read_only()
                    .build(),
            ]
        });
        PROPERTIES.as_ref()
    }

    fn set_property(&self, _id: usize, value: &glib::Value, pspec: &glib::ParamSpec) {
        let mut settings = self.settings.lock().unwrap();
        let name = pspec.name();
        match name {
            "bind-address" => {
                settings.bind_address = value
                    .get::<Option<String>>()
                    .expect("type checked upstream")
                    .unwrap_or_else(|| DEFAULT_BIND_ADDRESS.into())
            }
            "cii-port" => settings.cii_port = value.get().expect("type checked upstream"),
            "ts-port" => settings.ts_port = value.get().expect("type checked upstream"),
            "wc-port" => settings.wc_port = value.get().expect("type checked upstream"),
            "cii-path" => {
                settings.cii_path = value
                    .get::<Option<String>>()
                    .expect("type checked upstream")
                    .unwrap_or_else(|| DEFAULT_CII_PATH.into())
            }
            "ts-path" => {
                settings.ts_path = value
                    .get::<Option<String>>()
                    .expect("type checked upstream")
                    .unwrap_or_else(|| DEFAULT_TS_PATH.into())
            }
            "content-id" => {
                let v: Option<String> = value.get().expect("type checked upstream");
                settings.content_id = v.clone();
                drop(settings);
                if let Some(st) = self.state.lock().unwrap().as_mut() {
                    st.content_override = v;
                    st.update_content_id();
                }
                return;
            }
            "presentation-status" => {
                let v: Option<String> = value.get().expect("type checked upstream");
                if let Some(s) = v.as_deref().filter(|s| !is_valid_presentation_status(s)) {
                    gst::warning!(
                        CAT,
                        imp = self,
                        "ignoring invalid presentation-status {s:?}"
                    );
                    return;
                }
                settings.presentation_status = v.clone();
                drop(settings);
                if let Some(st) = self.state.lock().unwrap().as_mut() {
                    st.status_override = v;
                    st.update_status();
                }
                return;
            }
            "enable-cii" | "enable-ts" => {
                let on: bool = value.get().expect("type checked upstream");
                let endpoint = if name == "enable-cii" {
                    settings.enable_cii = on;
                    Endpoint::Cii
                } else {
                    settings.enable_ts = on;
                    Endpoint::Ts
                };
                drop(settings);
                if let Some(st) = self.state.lock().unwrap().as_ref() {
                    st.shared.set_enabled(endpoint, on);
                }
                return;
            }
            "enable-wc" => settings.enable_wc = value.get().expect("type checked upstream"),
            "max-connections" => {
                settings.max_connections = value.get().expect("type checked upstream")
            }
            "wc-follow-up" => settings.wc_follow_up = value.get().expect("type checked upstream"),
            "program-number" => {
                settings.program_number = value.get().expect("type checked upstream")
            }
            "correlation-tolerance" => {
                settings.tolerance_us = value.get().expect("type checked upstream")
            }
            "post-messages" => settings.post_messages = value.get().expect("type checked upstream"),
            _ => unimplemented!(),
        }
        gst::debug!(CAT, imp = self, "{name} set to {value:?}");
    }

    fn property(&self, _id: usize, pspec: &glib::ParamSpec) -> glib::Value {
        let s = self.settings.lock().unwrap();
        match pspec.name() {
            "bind-address" => s.bind_address.to_value(),
            "cii-port" => s.cii_port.to_value(),
            "ts-port" => s.ts_port.to_value(),
            "wc-port" => s.wc_port.to_value(),
            "cii-path" => s.cii_path.to_value(),
            "ts-path" => s.ts_path.to_value(),
            "content-id" => s.content_id.to_value(),
            "presentation-status" => s.presentation_status.to_value(),
            "enable-cii" => s.enable_cii.to_value(),
            "enable-ts" => s.enable_ts.to_value(),
            "enable-wc" => s.enable_wc.to_value(),
            "max-connections" => s.max_connections.to_value(),
            "wc-follow-up" => s.wc_follow_up.to_value(),
            "program-number" => s.program_number.to_value(),
            "correlation-tolerance" => s.tolerance_us.to_value(),
            "post-messages" => s.post_messages.to_value(),
            "stats" => {
                drop(s);
                self.stats().to_value()
            }
            _ => unimplemented!(),
        }
    }

    fn constructed(&self) {
        self.parent_constructed();
        self.obj().set_sync(true);
    }
}

impl GstObjectImpl for DvbCssSink {}

impl ElementImpl for DvbCssSink {
    fn metadata() -> Option<&'static gst::subclass::ElementMetadata> {
        static ELEMENT_METADATA: Lazy<gst::subclass::ElementMetadata> = Lazy::new(|| {
            gst::subclass::ElementMetadata::new(
                "DVB-CSS sink",
                "Sink/Network",
                "Presents an MPEG-TS and serves DVB-CSS (CSS-CII, CSS-TS, CSS-WC) for it to companion screens, with the timelines and service identity from tstimelineparse.",
                "dvb2ip developers",
            )
        });
        Some(&*ELEMENT_METADATA)
    }

    fn pad_templates() -> &'static [gst::PadTemplate] {
        static PAD_TEMPLATES: Lazy<Vec<gst::PadTemplate>> = Lazy::new(|| {
            let caps = gst::Caps::builder("video/mpegts")
                .field("systemstream", true)
                .build();
            vec![crate::always_template(
                "sink",
                gst::PadDirection::Sink,
                &caps,
            )]
        });
        PAD_TEMPLATES.as_ref()
    }

    fn change_state(
        &self,
        transition: gst::StateChange,
    ) -> Result<gst::StateChangeSuccess, gst::StateChangeError> {
        match transition {
            gst::StateChange::PausedToPlaying => {
                let off = self.wall_offset();
                if let Some(st) = self.state.lock().unwrap().as_mut() {
                    st.playing = true;
                    st.stopped_at = None;
                    st.offset = off;
                    st.publish_all();
                }
            }
            gst::StateChange::PlayingToPaused => {
                let off = self.wall_offset();
                let now = i128::from(system_clock().time().nseconds());
                if let Some(st) = self.state.lock().unwrap().as_mut() {
                    st.playing = false;
                    if let Some(off) = off.or(st.offset) {
                        st.stopped_at = Some((to_i64(now), now - off));
                    }
                    st.publish_all();
                }
            }
            _ => {}
        }
        self.parent_change_state(transition)
    }
}

impl BaseSinkImpl for DvbCssSink {
    fn start(&self) -> Result<(), gst::ErrorMessage> {
        let settings = self.settings.lock().unwrap().clone();
        let (shared, servers, [cii_port, ts_port, wc_port]) = self.start_servers(&settings)?;
        let cii_path = &settings.cii_path;
        let ts_path = &settings.ts_path;
        gst::info!(
            CAT,
            imp = self,
            "serving ws://{}:{cii_port}{cii_path}, ws://{}:{ts_port}{ts_path}, udp://{}:{wc_port}",
            settings.bind_address,
            settings.bind_address,
            settings.bind_address
        );
        shared.set_enabled(Endpoint::Cii, settings.enable_cii);
        shared.set_enabled(Endpoint::Ts, settings.enable_ts);
        shared.update_cii(|c| {
            c.ts_url = Some(format!("ws://{{{{host}}}}:{ts_port}{ts_path}"));
            c.wc_url = settings
                .enable_wc
                .then(|| format!("udp://{{{{host}}}}:{wc_port}"));
        });
        let st = State {
            shared,
            line_config: LineConfig {
                tolerance_ns: u64::from(settings.tolerance_us) * 1000,
                ..LineConfig::default()
            },
            program_fixed: u16::try_from(settings.program_number)
                .ok()
                .filter(|p| *p != 0),
            content_override: settings.content_id.clone(),
            status_override: settings.presentation_status.clone(),
            pending: Vec::new(),
            timelines: BTreeMap::new(),
            program: None,
            program_last_rt: None,
            service: None,
            playing: false,
            stopped_at: None,
            offset: None,
            rate: 1.0,
            presenting: false,
            anchors: Vec::new(),
        };
        st.update_content_id();
        st.update_status();
        *self.state.lock().unwrap() = Some(st);
        *self.servers.lock().unwrap() = Some(servers);
        let mut changed = Vec::new();
        {
            let mut guard = self.settings.lock().unwrap();
            let s = &mut *guard;
            for (name, slot, port) in [
                ("cii-port", &mut s.cii_port, cii_port),
                ("ts-port", &mut s.ts_port, ts_port),
                ("wc-port", &mut s.wc_port, wc_port),
            ] {
                if port != 0 && *slot != u32::from(port) {
                    *slot = u32::from(port);
                    changed.push(name);
                }
            }
        }
        for name in changed {
            self.obj().notify(name);
        }
        Ok(())
    }

    fn stop(&self) -> Result<(), gst::ErrorMessage> {
        if let Some(p) = self.presenter.lock().unwrap().take() {
            p.stop();
        }
        let st = self.state.lock().unwrap().take();
        if let Some(st) = &st {
            let now = st.shared.stats();
            let mut f = self.finished.lock().unwrap();
            f.wc_requests += now.wc_requests;
            f.cii_sessions += now.cii_sessions;
            f.ts_sessions += now.ts_sessions;
        }
        drop(st);
        let servers = self.servers.lock().unwrap().take();
        if let Some(Servers { stops, tasks }) = servers {
            for s in stops {
                let _ = s.send(());
            }
            if tokio::runtime::Handle::try_current().is_ok() {
                gst::warning!(
                    CAT,
                    imp = self,
                    "stopped from inside a tokio runtime: not waiting for the servers to finish"
                );
            } else {
                let all = async {
                    for t in tasks {
                        match t.await {
                            Ok(Err(e)) => gst::warning!(CAT, "server ended with {e}"),
                            Err(e) => gst::warning!(CAT, "server task failed: {e}"),
                            Ok(Ok(())) => {}
                        }
                    }
                };
                if RUNTIME
                    .block_on(async { tokio::time::timeout(STOP_TIMEOUT, all).await })
                    .is_err()
                {
                    gst::warning!(CAT, imp = self, "servers did not stop in time");
                }
            }
        }
        gst::info!(CAT, imp = self, "stopped");
        Ok(())
    }

    fn event(&self, event: gst::Event) -> bool {
        match event.view() {
            gst::EventView::CustomDownstream(_) => {
                let p = TimelineInfo::from_event(&event)
                    .map(Pending::Timeline)
                    .or_else(|| ServiceIdentity::from_event(&event).map(Pending::Service));
                if let Some(p) = p {
                    gst::log!(CAT, imp = self, "queued {p:?}");
                    if let Some(st) = self.state.lock().unwrap().as_mut() {
                        st.pending.push(p);
                    }
                }
            }
            gst::EventView::Segment(s) => {
                let rate = s.segment().rate();
                if let Some(st) = self.state.lock().unwrap().as_mut() {
                    if st.rate != rate {
                        st.rate = rate;
                        st.publish_all();
                    }
                }
            }
            gst::EventView::FlushStart(_) => self.cancel_presentations(),
            gst::EventView::FlushStop(_) | gst::EventView::StreamStart(_) => {
                let flush = matches!(event.view(), gst::EventView::FlushStop(_));
                if let Some(st) = self.state.lock().unwrap().as_mut() {
                    gst::debug!(
                        CAT,
                        imp = self,
                        "{:?}: withdrawing timelines",
                        event.type_()
                    );
                    st.pending.clear();
                    st.clear_timelines();
                    if st.program_fixed.is_none() && !flush {
                        st.program = None;
                        st.program_last_rt = None;
                    }
                }
            }
            gst::EventView::Eos(_) => {
                if let Some(st) = self.state.lock().unwrap().as_mut() {
                    gst::debug!(CAT, imp = self, "EOS: timelines gone");
                    st.pending.clear();
                    st.clear_timelines();
                }
            }
            _ => {}
        }
        self.parent_event(event)
    }

    fn prepare(&self, buffer: &gst::Buffer) -> Result<gst::FlowSuccess, gst::FlowError> {
        let rt = self.running_time(buffer);
        let now = system_clock().time().nseconds();
        if let Some(st) = self.state.lock().unwrap().as_mut() {
            if !st.playing {
                // Paused on this buffer: the timeline stands still at its position.
                st.drain_pending();
                st.anchors.clear();
                if let Some(rt) = rt {
                    st.stopped_at = Some((to_i64(i128::from(now)), rt));
                }
                st.publish_dirty();
            }
        }
        Ok(gst::FlowSuccess::Ok)
    }

    fn render(&self, buffer: &gst::Buffer) -> Result<gst::FlowSuccess, gst::FlowError> {
        let off = self.wall_offset();
        let post = self.settings.lock().unwrap().post_messages;
        let anchors = {
            let mut guard = self.state.lock().unwrap();
            let Some(st) = guard.as_mut() else {
                return Ok(gst::FlowSuccess::Ok);
            };
            st.drain_pending();
            if !st.presenting {
                st.presenting = true;
                st.update_status();
            }
            if st.playing {
                if off.is_some() && off != st.offset {
                    st.offset = off;
                    st.publish_all();
                } else {
                    st.publish_dirty();
                }
            }
            std::mem::take(&mut st.anchors)
        };
        gst::log!(CAT, imp = self, "rendered {:?}", buffer.pts());
        if post && !anchors.is_empty() {
            let buffer_rt = self.running_time(buffer).map(|r| r as u64);
            let obj = self.obj();
            let clock = obj.clock();
            let zero = self.clock_offset();
            let mut presenter = self.presenter.lock().unwrap();
            for (sel, value, rate, presented) in anchors {
                let s = gst::Structure::builder(super::PRESENTED_STRUCTURE)
                    .field("selector", sel)
                    .field("value", value)
                    .field("tick-rate", rate)
                    .field_if_some("buffer-running-time", buffer_rt)
                    .field_if_some(
                        "running-time",
                        presented.map_or(buffer_rt, |p| u64::try_from(p).ok()),
                    )
                    .build();
                // Presented later than now: wait for that moment on the pipeline clock.
                let due = match (&clock, zero, presented) {
                    (Some(c), Some(z), Some(p)) => u64::try_from(z + p)
                        .ok()
                        .map(gst::ClockTime::from_nseconds)
                        .filter(|&t| t > c.time())
                        .map(|t| c.new_single_shot_id(t)),
                    _ => None,
                };
                match due {
                    Some(id) => presenter
                        .get_or_insert_with(|| Presenter::start(&obj))
                        .present(id, s),
                    None => self.post_presented(s),
                }
            }
        }
        Ok(gst::FlowSuccess::Ok)
    }
}
