//! `dvb2ip css …`: the command-line DVB-CSS tools (the equivalents of pydvbcss's examples)
//! and the TV emulator.
//!
//! * `css wc-client HOST:PORT`: CSS-WC client, prints offset and dispersion per exchange.
//! * `css cii-client ws://…`: CSS-CII client, prints every message and what changed.
//! * `css ts-client ws://… udp://… STEM SELECTOR TICKRATE`: CSS-TS client synchronised by
//!   CSS-WC, prints the estimated timeline position.
//! * `css wc-server`: a standalone CSS-WC server.
//! * `css tv`: plays a channel of the emulated tuners (or a TS file) through
//!   `tstimelineparse ! dvbcsssink` and serves CSS-CII, CSS-TS and CSS-WC on the real
//!   broadcast timeline.

use std::net::{SocketAddr, ToSocketAddrs};
use std::ops::ControlFlow;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use futures_util::StreamExt;
use gst::prelude::*;
use gstdvb2ip::tstimelineparse::event::{ServiceIdentity, TimelineEventKind, TimelineInfo};

use super::clients::{self, TsReason};

/// Default TV channel: the "dvb2ip News" service (0x1201) of the emulated DVB-T multiplex on
/// 506 MHz, which carries a 90 kHz TEMI timeline (`urn:dvb:css:timeline:temi:1:1`).
pub const DEFAULT_TV_PROGRAM: u32 = 0x1201;
/// Frequency (Hz) of the default TV multiplex.
pub const DEFAULT_TV_FREQUENCY: u32 = 506_000_000;

/// A launcher-owned tokio runtime for the client tools.
fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("dvb2ip-css")
        .enable_all()
        .build()
        .context("tokio runtime")
}

/// Resolve `HOST:PORT` or `udp://HOST:PORT` to an address.
pub fn parse_wc_addr(s: &str) -> anyhow::Result<SocketAddr> {
    let hp = s.strip_prefix("udp://").unwrap_or(s).trim_end_matches('/');
    hp.to_socket_addrs()
        .with_context(|| format!("resolving {hp:?}"))?
        .next()
        .ok_or_else(|| anyhow!("{hp:?} resolves to no address"))
}

fn ms(secs: f64) -> String {
    if secs.is_finite() {
        format!("{:.3} ms", secs * 1e3)
    } else {
        "inf".into()
    }
}

/// Wait for Ctrl-C or `duration` (forever when `None`).
async fn until_stopped(duration: Option<Duration>) {
    match duration {
        Some(d) => {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = tokio::time::sleep(d) => {}
            }
        }
        None => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

/// `css wc-client`.
pub fn wc_client(addr: &str, duration: Duration) -> anyhow::Result<()> {
    let addr = parse_wc_addr(addr)?;
    let rt = runtime()?;
    let t0 = Instant::now();
    let summary = rt.block_on(async {
        tokio::select! {
            r = clients::wc_client(addr, duration, |u| {
                let offset = u
                    .offset_ns
                    .map_or("unknown".to_owned(), |o| format!("{:.3} ms", o / 1e6));
                let rtt = u.candidate.map_or("timeout".to_owned(), |c| format!("{:.1} us", c.rtt_ns() as f64 / 1e3));
                println!(
                    "t={:7.3}s  offset {offset}  dispersion {}  rtt {rtt}{}",
                    t0.elapsed().as_secs_f64(),
                    ms(u.dispersion_secs),
                    if u.adopted { "  (adopted)" } else { "" },
                );
                ControlFlow::Continue(())
            }) => r.map(Some),
            _ = tokio::signal::ctrl_c() => Ok(None),
        }
    })?;
    if let Some(s) = summary {
        println!(
            "{} exchanges, {} adopted, {} timeouts, {} datagrams ignored",
            s.exchanges, s.adopted, s.timeouts, s.ignored_datagrams
        );
    }
    Ok(())
}

/// `css cii-client`.
pub fn cii_client(url: &str, duration: Option<Duration>) -> anyhow::Result<()> {
    let rt = runtime()?;
    let t0 = Instant::now();
    rt.block_on(async {
        tokio::select! {
            r = clients::cii_client(url, |m, _state, changed| {
                let names: Vec<&str> = changed.iter().map(|p| p.name()).collect();
                println!(
                    "t={:7.3}s  {}\n           changed: {}",
                    t0.elapsed().as_secs_f64(),
                    m.to_json(),
                    if names.is_empty() { "nothing".into() } else { names.join(", ") }
                );
                ControlFlow::Continue(())
            }) => {
                let state = r?;
                println!("connection closed; last state: {}", state.full_message().to_json());
            }
            _ = until_stopped(duration) => {}
        }
        anyhow::Ok(())
    })
}

/// `css ts-client`.
pub fn ts_client(
    ws_url: &str,
    wc_url: &str,
    stem: &str,
    selector: &str,
    tick_rate: f64,
    interval: Duration,
    duration: Option<Duration>,
) -> anyhow::Result<()> {
    let wc = parse_wc_addr(wc_url)?;
    let rt = runtime()?;
    let t0 = Instant::now();
    rt.block_on(async {
        tokio::select! {
            r = clients::ts_client(ws_url, wc, stem, selector, tick_rate, interval, |e| {
                let why = match e.reason {
                    TsReason::ControlTimestamp(_) => "CT",
                    TsReason::Periodic => "  ",
                    TsReason::Closed => "closed",
                };
                let pos = match (e.available, e.content_time) {
                    (false, _) => "unavailable".to_owned(),
                    (true, None) => "available (wall clock not synchronised yet)".to_owned(),
                    (true, Some(t)) => format!(
                        "{t} ticks = {:.3} s, speed {}",
                        t as f64 / tick_rate,
                        e.speed.unwrap_or(f64::NAN)
                    ),
                };
                println!(
                    "t={:7.3}s {why:6} {pos}  (WC dispersion {})",
                    t0.elapsed().as_secs_f64(),
                    ms(e.wall_dispersion_secs)
                );
                if let (TsReason::ControlTimestamp(_), Some(ct)) = (e.reason, &e.last_ct) {
                    if let Ok(j) = ct.to_json() {
                        println!("           {j}");
                    }
                }
                ControlFlow::Continue(())
            }) => { r?; }
            _ = until_stopped(duration) => {}
        }
        anyhow::Ok(())
    })
}

/// `css wc-server`.
pub fn wc_server(bind: &str, follow_up: bool) -> anyhow::Result<()> {
    let bind = parse_wc_addr(bind)?;
    let rt = runtime()?;
    let stats = rt.block_on(async {
        let server = clients::WcServer::bind(bind, follow_up)
            .await
            .with_context(|| format!("binding {bind}"))?;
        println!(
            "CSS-WC server on udp://{}{}; stop with Ctrl-C",
            server.local_addr()?,
            if follow_up { " (with follow-ups)" } else { "" }
        );
        let stop = async {
            let _ = tokio::signal::ctrl_c().await;
        };
        anyhow::Ok(server.run(stop).await?)
    })?;
    println!(
        "answered {} requests, ignored {} datagrams",
        stats.answered, stats.ignored
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// TV emulator
// ---------------------------------------------------------------------------------------------

/// What `css tv` plays and where it serves.
#[derive(Debug, Clone)]
pub struct TvOptions {
    /// Play this TS file (timestamped from its PCRs by `tsparse`) instead of a tuner.
    pub file: Option<PathBuf>,
    /// Tuner frequency (Hz) when no file is given (DVB-T).
    pub frequency: u32,
    /// Program (service id) to present; 0 = the first one seen.
    pub program: u32,
    /// Bind address of the CSS servers.
    pub bind: String,
    /// CSS-CII (and CSS-TS) TCP port; 0 picks one.
    pub cii_port: u16,
    /// CSS-WC UDP port; 0 picks one.
    pub wc_port: u16,
    /// Post `dvb-css-presented` messages (benchmarks).
    pub post_messages: bool,
}

impl Default for TvOptions {
    fn default() -> Self {
        Self {
            file: None,
            frequency: DEFAULT_TV_FREQUENCY,
            program: DEFAULT_TV_PROGRAM,
            bind: "127.0.0.1".into(),
            cii_port: 7681,
            wc_port: 6677,
            post_messages: false,
        }
    }
}

/// Where a running TV serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TvUrls {
    /// `ws://HOST:PORT/cii`.
    pub cii: String,
    /// `ws://HOST:PORT/ts`.
    pub ts: String,
    /// `udp://HOST:PORT`.
    pub wc: String,
}

/// A TV pipeline: source ! tstimelineparse name=timeline ! dvbcsssink name=css.
pub struct Tv {
    pub pipeline: gst::Pipeline,
    pub sink: gst::Element,
    pub urls: TvUrls,
}

impl Drop for Tv {
    fn drop(&mut self) {
        let _ = self.pipeline.set_state(gst::State::Null);
    }
}

/// Registers the plugin and prepares the emulated tuner pool (embedded configuration).
/// Idempotent.
pub fn init_tv() -> anyhow::Result<()> {
    static ONCE: std::sync::OnceLock<Result<(), String>> = std::sync::OnceLock::new();
    ONCE.get_or_init(|| {
        gst::init().map_err(|e| e.to_string())?;
        gstdvb2ip::plugin_register_static().map_err(|e| e.to_string())?;
        gstdvb2ip::tuners::configure(gstdvb2ip::tuners::BroadcastConfig::embedded())
            .map_err(|e| e.to_string())?;
        gstdvb2ip::tuners::prepare_content().map_err(|e| e.to_string())
    })
    .clone()
    .map_err(anyhow::Error::msg)
}

/// The launch line of the TV (the sink's ports are set afterwards).
pub fn tv_launch_line(o: &TvOptions) -> String {
    let source = match &o.file {
        // tsparse stamps buffers from the PCRs, so the sink presents the file in real time.
        Some(f) => format!(
            "filesrc location=\"{}\" ! tsparse set-timestamps=true",
            f.display()
        ),
        None => format!(
            "dvbtunersrc delsys=dvb-t frequency={} bandwidth-hz=8000000",
            o.frequency
        ),
    };
    format!(
        "{source} ! tstimelineparse name=timeline program-number={} ! dvbcsssink name=css",
        o.program
    )
}

/// Build and start the TV (PLAYING); the CSS servers are up when this returns.
pub fn start_tv(o: &TvOptions) -> anyhow::Result<Tv> {
    init_tv()?;
    let pipeline = gst::parse::launch(&tv_launch_line(o))?
        .downcast::<gst::Pipeline>()
        .map_err(|_| anyhow!("not a pipeline"))?;
    let sink = pipeline.by_name("css").context("css sink")?;
    sink.set_property("bind-address", &o.bind);
    sink.set_property("cii-port", u32::from(o.cii_port));
    sink.set_property("ts-port", u32::from(o.cii_port));
    sink.set_property("wc-port", u32::from(o.wc_port));
    sink.set_property("program-number", o.program);
    sink.set_property("post-messages", o.post_messages);
    // start() binds the servers during READY → PAUSED.
    if let Err(e) = pipeline.set_state(gst::State::Paused) {
        let err = first_error(&pipeline).unwrap_or_else(|| e.to_string());
        let _ = pipeline.set_state(gst::State::Null);
        bail!("starting the TV: {err}");
    }
    pipeline
        .set_state(gst::State::Playing)
        .context("setting the TV to PLAYING")?;
    let host = if o.bind.contains(':') {
        format!("[{}]", o.bind)
    } else {
        o.bind.clone()
    };
    let cii_port = sink.property::<u32>("cii-port");
    let ts_port = sink.property::<u32>("ts-port");
    let wc_port = sink.property::<u32>("wc-port");
    let urls = TvUrls {
        cii: format!(
            "ws://{host}:{cii_port}{}",
            sink.property::<String>("cii-path")
        ),
        ts: format!(
            "ws://{host}:{ts_port}{}",
            sink.property::<String>("ts-path")
        ),
        wc: format!("udp://{host}:{wc_port}"),
    };
    Ok(Tv {
        pipeline,
        sink,
        urls,
    })
}

fn first_error(p: &gst::Pipeline) -> Option<String> {
    let bus = p.bus()?;
    let m = bus.timed_pop_filtered(gst::ClockTime::ZERO, &[gst::MessageType::Error])?;
    match m.view() {
        gst::MessageView::Error(e) => Some(format!(
            "{} ({})",
            e.error(),
            e.debug().map(|d| d.to_string()).unwrap_or_default()
        )),
        _ => None,
    }
}

/// `css tv`: run until Ctrl-C, EOS, an error or `duration`.
pub fn tv(o: &TvOptions, duration: Option<Duration>) -> anyhow::Result<()> {
    let tv = start_tv(o)?;
    println!("TV emulator playing: {}", tv_launch_line(o));
    println!("  CSS-CII  {}", tv.urls.cii);
    println!("  CSS-TS   {}", tv.urls.ts);
    println!("  CSS-WC   {}", tv.urls.wc);
    println!("Try: dvb2ip css cii-client {}", tv.urls.cii);
    if o.file.is_none() && o.program == DEFAULT_TV_PROGRAM {
        println!(
            "     dvb2ip css ts-client {} {} \"\" urn:dvb:css:timeline:temi:1:1 90000",
            tv.urls.ts, tv.urls.wc
        );
    } else {
        println!(
            "     dvb2ip css ts-client {} {} \"\" SELECTOR TICKRATE   (timelines: see CII)",
            tv.urls.ts, tv.urls.wc
        );
    }
    println!("Stop with Ctrl-C.");
    let bus = tv.pipeline.bus().context("bus")?;
    let rt = runtime()?;
    let result = rt.block_on(async {
        let mut messages = bus.stream();
        let mut last_print: Option<Instant> = None;
        let stop = until_stopped(duration);
        tokio::pin!(stop);
        loop {
            let m = tokio::select! {
                _ = &mut stop => return Ok(()),
                m = messages.next() => match m { Some(m) => m, None => return Ok(()) },
            };
            match m.view() {
                gst::MessageView::Eos(_) => {
                    println!("end of stream");
                    return Ok(());
                }
                gst::MessageView::Error(e) => {
                    return Err(anyhow!(
                        "{}: {}",
                        e.src()
                            .map(|s| s.path_string().to_string())
                            .unwrap_or_default(),
                        e.error()
                    ));
                }
                _ => {}
            }
            if let Some(s) = ServiceIdentity::from_message(&m) {
                println!(
                    "service {:#x} {:?} onid {:?} tsid {:?} event {:?} {:?}",
                    s.service_id,
                    s.service_name.unwrap_or_default(),
                    s.original_network_id,
                    s.transport_stream_id,
                    s.event_id,
                    s.event_name.unwrap_or_default()
                );
            } else if let Some(t) = TimelineInfo::from_message(&m) {
                let due = last_print.is_none_or(|l| l.elapsed() >= Duration::from_secs(5));
                match t.kind {
                    TimelineEventKind::Correlation if t.temi && due => {
                        last_print = Some(Instant::now());
                        println!(
                            "timeline {} at {:.3} s",
                            t.selector,
                            t.value.unwrap_or(0) as f64 / t.tick_rate.max(1) as f64
                        );
                    }
                    TimelineEventKind::Correlation | TimelineEventKind::Location => {}
                    kind => println!("timeline {} {}", t.selector, kind.as_str()),
                }
            }
        }
    });
    drop(tv);
    result
}
