//! `dvb2ip scan`: one scan on the configured tuner pool into the channel database of the state
//! directory, with progress on the terminal (a bar), as plain lines, or as JSON lines; Ctrl-C
//! (SIGINT, SIGTERM) stops it, keeping every finished mux. Optionally exports the result.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::{Args, ValueEnum};
use gstdvb2ip::proto::scan::db::ChannelDb;
use gstdvb2ip::proto::scan::export;

use super::engine::{self, Progress, ScanControl, ScanEvent, ScanParams};
use super::store::DbStore;
use crate::config::Config;

/// Export formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ExportFormat {
    /// SAT>IP M3U (rtsp:// URLs on server.bind and server.rtsp_port).
    M3u,
    /// dvbv5 channel file (dvbv5-zap, dvb-format-convert).
    Dvbv5,
    /// VDR channels.conf.
    Vdr,
    /// zap (tzap/czap/szap) channels.conf.
    Zap,
}

/// Progress output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ProgressMode {
    /// A bar on a terminal, plain lines otherwise.
    Auto,
    Bar,
    Plain,
    /// One JSON object per line on stdout.
    Json,
}

/// `dvb2ip scan` options.
#[derive(Debug, Args)]
pub struct ScanArgs {
    /// Configuration file (default: the embedded conf/default.toml).
    #[arg(short, long)]
    pub config: Option<PathBuf>,
    /// State directory holding the channel database (default: server.state_dir,
    /// $DVB2IP_STATE_DIR, /var/lib/dvb2ip).
    #[arg(long)]
    pub state_dir: Option<PathBuf>,
    /// Initial tuning file in DVBv5 format (dtv-scan-tables).
    #[arg(long, conflicts_with = "raster")]
    pub initial: Option<PathBuf>,
    /// Blind raster: dvb-t (UHF 474–858 MHz), dvb-t-vhf, dvb-c, dvb-s (transponder list).
    #[arg(long)]
    pub raster: Option<String>,
    /// Most frontends used at once (default: every free one).
    #[arg(long)]
    pub frontends: Option<usize>,
    /// Also read NIT/SDT other and scan what NIT other announces.
    #[arg(long)]
    pub nit_other: bool,
    /// Drop a service or mux after this many consecutive missed scans.
    #[arg(long)]
    pub k_misses: Option<u32>,
    /// Multiply every table budget by this percentage (dvbv5-scan -T).
    #[arg(long)]
    pub timeout_percent: Option<u32>,
    /// Write the channel list in this format after the scan.
    #[arg(long, value_enum)]
    pub export: Option<ExportFormat>,
    /// Where the export goes (default: stdout).
    #[arg(long, short, requires = "export")]
    pub output: Option<PathBuf>,
    /// Progress output.
    #[arg(long, value_enum, default_value = "auto")]
    pub progress: ProgressMode,
}

/// The state directory: given, configured, `$DVB2IP_STATE_DIR`, else /var/lib/dvb2ip.
pub fn state_dir(given: Option<PathBuf>, cfg: &Config) -> PathBuf {
    given
        .or_else(|| (!cfg.server.state_dir.is_empty()).then(|| cfg.server.state_dir.clone().into()))
        .or_else(|| {
            std::env::var_os("DVB2IP_STATE_DIR")
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        })
        .unwrap_or_else(|| PathBuf::from("/var/lib/dvb2ip"))
}

/// The export of `db` in `format`; `base` is the M3U's `rtsp://host:port/`.
pub fn export_text(db: &ChannelDb, format: ExportFormat, base: &str) -> String {
    let ch = db.channels();
    match format {
        ExportFormat::M3u => export::m3u(&ch, base),
        ExportFormat::Dvbv5 => export::dvbv5(&ch),
        ExportFormat::Vdr => export::vdr(&ch),
        ExportFormat::Zap => export::zap(&ch),
    }
}

/// Sets `control`'s stop flag on SIGINT or SIGTERM (a thread with its own small runtime).
fn stop_on_signals(control: Arc<ScanControl>) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("signal runtime")?;
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("dvb2ip-scan-signals".into())
        .spawn(move || {
            rt.block_on(async move {
                use tokio::signal::unix::{signal, SignalKind};
                let int = signal(SignalKind::interrupt());
                let term = signal(SignalKind::terminate());
                let _ = ready_tx.send(());
                let (Ok(mut int), Ok(mut term)) = (int, term) else {
                    return;
                };
                tokio::select! {
                    _ = int.recv() => {}
                    _ = term.recv() => {}
                }
                control.stop();
            })
        })
        .context("signal thread")?;
    let _ = ready_rx.recv();
    Ok(())
}

struct Output {
    mode: ProgressMode,
    bar: Option<indicatif::ProgressBar>,
}

impl Output {
    fn new(mode: ProgressMode) -> Output {
        let mode = match mode {
            ProgressMode::Auto if std::io::stderr().is_terminal() => ProgressMode::Bar,
            ProgressMode::Auto => ProgressMode::Plain,
            m => m,
        };
        let bar = (mode == ProgressMode::Bar).then(|| {
            let b = indicatif::ProgressBar::new(0);
            b.set_style(
                indicatif::ProgressStyle::with_template(
                    "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} muxes, {msg}",
                )
                .expect("valid template"),
            );
            b.enable_steady_tick(std::time::Duration::from_millis(120));
            b
        });
        Output { mode, bar }
    }

    fn line(&self, text: &str) {
        match &self.bar {
            Some(b) => b.println(text),
            None => eprintln!("{text}"),
        }
    }

    fn event(&self, e: &ScanEvent, p: &Progress) {
        match self.mode {
            ProgressMode::Json => {
                let mut v = serde_json::to_value(e).unwrap_or_default();
                v["progress"] = serde_json::to_value(p).unwrap_or_default();
                let mut out = std::io::stdout().lock();
                let _ = writeln!(out, "{v}");
                let _ = out.flush();
            }
            _ => {
                let text = match e {
                    ScanEvent::Tune { mux, frontend } => format!("tune {mux} on {frontend}"),
                    ScanEvent::Retry { mux, attempt } => {
                        format!("{mux}: no lock, retry {attempt}")
                    }
                    ScanEvent::Preempted { mux } => {
                        format!("{mux}: frontend taken by a viewer, later again")
                    }
                    ScanEvent::MuxDone {
                        mux,
                        verdict,
                        services,
                        added,
                        dropped,
                        discovered,
                    } => {
                        let mut t = format!(
                            "{mux}: {verdict}, {services} services ({added} new, {dropped} dropped)"
                        );
                        if !discovered.is_empty() {
                            t += &format!("; NIT announces {}", discovered.join(", "));
                        }
                        t
                    }
                };
                if let Some(b) = &self.bar {
                    b.set_length(p.muxes_total as u64);
                    b.set_position(p.muxes_done as u64);
                    b.set_message(format!("{} services", p.services));
                }
                let line = format!(
                    "[{}/{} muxes, {} services] {text}",
                    p.muxes_done, p.muxes_total, p.services
                );
                self.line(&line);
            }
        }
    }

    fn finish(&self, p: &Progress, path: &std::path::Path) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
        match self.mode {
            ProgressMode::Json => {
                let v = serde_json::json!({ "event": "end", "progress": p, "database": path });
                println!("{v}");
            }
            _ => eprintln!(
                "scan {}: {} services; {} of {} muxes done ({} found, {} partial, {} failed) in {:.1} s; database {}",
                p.state,
                p.services,
                p.muxes_done,
                p.muxes_total,
                p.found,
                p.partial,
                p.failed,
                p.elapsed_ms as f64 / 1000.0,
                path.display()
            ),
        }
    }
}

/// Runs `dvb2ip scan`. Returns whether it was stopped by a signal.
pub fn run(args: ScanArgs) -> anyhow::Result<bool> {
    let cfg = match &args.config {
        Some(p) => Config::load(p).map_err(|e| anyhow::anyhow!("{e}"))?,
        None => Config::embedded(),
    };
    let mut section = cfg.scan.clone();
    if let Some(p) = &args.initial {
        section.initial = p.display().to_string();
        section.raster.clear();
    }
    if let Some(r) = &args.raster {
        section.raster = r.clone();
        section.initial.clear();
    }
    if args.nit_other {
        section.nit_other = true;
    }
    if let Some(k) = args.k_misses {
        section.k_misses = k;
    }
    if let Some(t) = args.timeout_percent {
        section.timeout_percent = t;
    }
    let frontends = args
        .frontends
        .or((section.frontends > 0).then_some(section.frontends));
    let store = DbStore::in_dir(&state_dir(args.state_dir.clone(), &cfg));
    let db = store.load()?;
    let (initial, origin) = section.initial_muxes(&cfg.broadcast, &db)?;

    gst::init()?;
    gstdvb2ip::plugin_register_static().context("registering the dvb2ip elements")?;
    let pool = gstdvb2ip::tuners::Pool::new(cfg.broadcast.clone());
    pool.prepare_content().map_err(anyhow::Error::msg)?;

    let control = ScanControl::new();
    stop_on_signals(control.clone())?;
    let out = Output::new(args.progress);
    let params = ScanParams {
        config: section.scan_config(),
        initial,
        origin,
        frontends,
    };
    let (db, outcome) = engine::run(
        &pool,
        db,
        params,
        &control,
        &mut |db| store.save(db),
        &mut |e, p| out.event(e, p),
    )?;
    // The last write (also when nothing finished: the file then exists, empty).
    store.save(&db)?;
    out.finish(&outcome.progress, store.path());
    if let Some(fmt) = args.export {
        let base = format!("rtsp://{}:{}/", cfg.server.bind, cfg.server.rtsp_port);
        let text = export_text(&db, fmt, &base);
        match &args.output {
            Some(p) => {
                std::fs::write(p, text).with_context(|| format!("writing {}", p.display()))?
            }
            None => print!("{text}"),
        }
    }
    Ok(outcome.stopped)
}
