//! `dvb2ip-bench`: the benchmarks of dvb2ip, out of the shipped server.
//!
//! - `tuner`: one emulated multiplex fanned out to N `dvbtunersrc` subscribers ([`tuner`]);
//! - `satip`: N SAT>IP RTP/UDP unicast sessions against the `dvb2ip` server and a stock
//!   gst-rtsp-server baseline, each in its own process ([`satip`], [`satip_baseline`],
//!   [`satip_rx`]); the `dvb2ip` server is the binary beside this one in the same target
//!   directory, the baseline this binary's hidden `satip-baseline-server` subcommand;
//! - `vod`: N RTSP VOD sessions of a ~20 Mbit/s TS, each seeking every 10 s ([`vod`]);
//! - `http`: N SAT>IP HTTP streaming clients against N RTP/UDP sessions of the same mux
//!   ([`http`]);
//! - `css`: CSS-WC server throughput and latency, WC client dispersion, CSS-TS accuracy
//!   ([`css`]);
//! - `scan`: channel scan of the default configuration, 1 and all frontends ([`scan`]).
//! - `headend`: a hotel headend's mix, 800 RTP/UDP and 200 HTTP single-service clients over
//!   the four emulated muxes joining at 50/s, against dvb2ip and the baseline ([`headend`]).
//! - `relay`: an edge relaying one multiplex to N RTSP readers against N readers of a local
//!   tuner, and a relay's first reader cold and warm ([`relay`]).
//! - `ui`: what the web UI's live updates and `/metrics` cost a server playing 200 RTP
//!   sessions, and the page's update latency ([`ui`]).
//! - `soak`: RTP, HTTP and CSS clients coming and going on one `dvb2ip serve` for a bounded
//!   time, a frontend losing lock now and then ([`soak`]).

mod css;
mod headend;
mod http;
mod relay;
mod satip;
mod satip_baseline;
mod satip_rx;
mod scan;
mod soak;
mod tuner;
mod ui;
mod vod;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "dvb2ip-bench",
    version,
    about = "Benchmarks of the dvb2ip server and its GStreamer elements"
)]
struct Cli {
    #[command(subcommand)]
    command: BenchCommand,
}

#[derive(Subcommand)]
enum BenchCommand {
    /// DVB-CSS: CSS-WC server throughput and latency, WC client dispersion, CSS-TS accuracy.
    Css {
        /// Seconds of WC load per throughput run.
        #[arg(long, default_value_t = 3.0)]
        seconds: f64,
    },
    /// SAT>IP: N concurrent RTP/UDP unicast sessions on one ~20 Mbit/s mux (loopback), dvb2ip
    /// versus a stock gst-rtsp-server baseline, each server in its own process.
    Satip {
        /// Session counts.
        #[arg(long, value_delimiter = ',', default_value = "1,10,50,100,200,300")]
        sessions: Vec<usize>,
        /// Seconds measured per point (after the sessions settled).
        #[arg(long, default_value_t = 5.0)]
        seconds: f64,
        /// PIDs of the sessions: pids=all, distinct PID subsets, or both.
        #[arg(long, value_enum, default_value = "both")]
        mode: satip::ModeArg,
        /// Servers to measure.
        #[arg(long, value_enum, default_value = "both")]
        server: satip::ServerArg,
        /// Receiving threads of the load generator.
        #[arg(long, default_value_t = 1)]
        rx_threads: usize,
        /// Same as --mode distinct.
        #[arg(long, hide = true)]
        distinct: bool,
    },
    /// Channel scan of the default configuration from empty, 1 and all frontends, vs. the floor.
    Scan {
        #[arg(long, default_value_t = 3)]
        runs: usize,
        /// Table budgets in percent (dvbv5-scan -T).
        #[arg(long, default_value_t = 100)]
        timeout_percent: u32,
    },
    /// HTTP streaming at scale: N HTTP clients vs N RTP/UDP sessions of one mux, server CPU
    /// per thread, threads, RSS per client, CC errors, HTTP/RTP CPU ratio.
    Http {
        #[arg(long, default_value_t = 200)]
        clients: usize,
        #[arg(long, default_value_t = 5.0)]
        seconds: f64,
        /// Skip the RTP/UDP comparison point.
        #[arg(long)]
        no_rtp: bool,
        /// Profile the server with `perf record -g` over each window (data in this directory).
        #[arg(long)]
        perf: Option<std::path::PathBuf>,
        /// HTTP clients send their requests all at once (first-byte times then include the
        /// queue of the burst) instead of joining one after the other.
        #[arg(long)]
        burst: bool,
        /// PIDs of every client: `all` or a list (e.g. one service: 0,16,17,256,257,258).
        #[arg(long, default_value = "all")]
        pids: String,
    },
    /// Headend mix: N clients (4/5 SAT>IP RTP/UDP, 1/5 HTTP) of single services over the four
    /// emulated muxes joining at a fixed rate; server CPU, threads, RSS per client, loss, CC,
    /// join latency, rate per client, against the issue 17 targets and the baseline.
    Headend {
        #[arg(long, default_value_t = 1000)]
        clients: usize,
        /// Seconds of the measured hold window after the last join.
        #[arg(long, default_value_t = 10.0)]
        seconds: f64,
        /// Clients joining per second.
        #[arg(long, default_value_t = 50.0)]
        join_rate: f64,
        /// Skip the gst-rtsp-server baseline run.
        #[arg(long)]
        no_baseline: bool,
        /// Profile the dvb2ip server with `perf record -g` over the hold window (data here).
        #[arg(long)]
        perf: Option<std::path::PathBuf>,
        /// Receiving threads of the RTP clients.
        #[arg(long, default_value_t = 1)]
        rx_threads: usize,
    },
    /// Web UI: extra server CPU of 10 UI clients and /metrics once a second over 200 RTP
    /// sessions, and the page's update latency (src/ui; bench/src/ui.rs).
    Ui(ui::Options),
    /// The baseline server of `satip` (run by the bench as a child process).
    #[command(hide = true)]
    SatipBaselineServer,
    /// Files on demand: N RTSP VOD sessions of one ~20 Mbit/s TS, each seeking every few seconds.
    Vod {
        #[arg(long, default_value_t = 100)]
        sessions: usize,
        /// Seconds of the bounded run.
        #[arg(long, default_value_t = 60.0)]
        seconds: f64,
        /// Seconds between the seeks of a session.
        #[arg(long, default_value_t = 10.0)]
        seek_every: f64,
        /// Bit rate of the file, Mbit/s.
        #[arg(long, default_value_t = 20)]
        mbps: u32,
        /// Only the pipeline-free path's file readers (src/vod/pacer.rs), in this process.
        #[arg(long)]
        readers_only: bool,
        /// The server sends the TS file per elementary stream from a pipeline per session
        /// (`[vod] direct = false`) instead of its direct path (one MP2T stream).
        #[arg(long)]
        pipeline: bool,
    },
    /// An edge relaying one multiplex to N readers against N readers of a local tuner.
    Relay {
        /// Readers in each of the two measured phases.
        #[arg(long, default_value_t = 200)]
        readers: usize,
        /// Measured window of each phase, in seconds.
        #[arg(long, default_value_t = 5.0)]
        seconds: f64,
        /// First readers timed on a cold and on a warm relay.
        #[arg(long, default_value_t = 5)]
        tries: usize,
        /// Receiving threads of the load generator.
        #[arg(long, default_value_t = 1)]
        rx_threads: usize,
    },
    /// Soak: RTP, HTTP and CSS clients coming and going (some killed) on one `dvb2ip serve`
    /// for a bounded time, a frontend losing lock every few minutes; prints loss/CC of the
    /// clients that stayed, frontends left in use, RSS/fd slopes. Fails if a hard target fails.
    Soak {
        /// Length of the run in minutes.
        #[arg(long, default_value_t = 30.0)]
        minutes: f64,
        /// RTP clients (half stay, half churn).
        #[arg(long, default_value_t = 50)]
        rtp: usize,
        /// HTTP clients (half stay, half churn).
        #[arg(long, default_value_t = 10)]
        http: usize,
        /// CSS clients (half stay, half churn).
        #[arg(long, default_value_t = 5)]
        css: usize,
        /// Seed of the clients' choices (targets, dwell times, kills).
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
    /// One emulated mux fanned out to N dvbtunersrc subscribers.
    Tuner {
        /// Subscriber counts.
        #[arg(long, value_delimiter = ',', default_value = "1,10,100")]
        subscribers: Vec<usize>,
        /// Seconds measured per point.
        #[arg(long, default_value_t = 5.0)]
        seconds: f64,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let r: anyhow::Result<()> = match cli.command {
        BenchCommand::Css { seconds } => css::run_css(seconds).map(|_| ()),
        BenchCommand::Satip {
            sessions,
            seconds,
            mode,
            server,
            rx_threads,
            distinct,
        } => satip::run(&satip::Options {
            sessions,
            seconds,
            mode: if distinct {
                satip::ModeArg::Distinct
            } else {
                mode
            },
            server,
            rx_threads,
        }),
        BenchCommand::Http {
            clients,
            seconds,
            no_rtp,
            perf,
            burst,
            pids,
        } => http::run(&http::Options {
            clients,
            seconds,
            rtp: !no_rtp,
            perf,
            burst,
            pids,
        }),
        BenchCommand::Soak {
            minutes,
            rtp,
            http,
            css,
            seed,
        } => soak::run(&soak::Options {
            minutes,
            rtp,
            http,
            css,
            seed,
        })
        .and_then(|met| {
            if met {
                Ok(())
            } else {
                Err(anyhow::anyhow!(
                    "soak: a hard target was not met (see above)"
                ))
            }
        }),
        BenchCommand::Ui(o) => ui::run(&o),
        BenchCommand::Headend {
            clients,
            seconds,
            join_rate,
            no_baseline,
            perf,
            rx_threads,
        } => headend::run(&headend::Options {
            clients,
            seconds,
            join_rate,
            baseline: !no_baseline,
            perf,
            rx_threads,
        }),
        BenchCommand::Relay {
            readers,
            seconds,
            tries,
            rx_threads,
        } => relay::run(&relay::Options {
            readers,
            seconds,
            tries,
            rx_threads,
        }),
        BenchCommand::SatipBaselineServer => satip_baseline::run_server(),
        BenchCommand::Scan {
            runs,
            timeout_percent,
        } => scan::run(runs, timeout_percent),
        BenchCommand::Vod {
            sessions,
            seconds,
            seek_every,
            mbps,
            readers_only,
            pipeline,
        } => {
            let opts = vod::Options {
                sessions,
                seconds,
                seek_every,
                mbps,
                direct: !pipeline,
            };
            if readers_only {
                vod::run_readers(&opts)
            } else {
                vod::run(&opts)
            }
        }
        BenchCommand::Tuner {
            subscribers,
            seconds,
        } => tuner::run_tuner(&subscribers, seconds).map(|_| ()),
    };
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("dvb2ip-bench: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
