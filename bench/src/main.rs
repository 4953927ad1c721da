//! `dvb2ip-bench`: the benchmarks of dvb2ip, out of the shipped server.
//!
//! - `tuner`: one emulated multiplex fanned out to N `dvbtunersrc` subscribers ([`tuner`]);
//! - `satip`: N SAT>IP RTP/UDP unicast sessions against the `dvb2ip` server and a stock
//!   gst-rtsp-server baseline, each in its own process ([`satip`], [`satip_baseline`],
//!   [`satip_rx`]); the `dvb2ip` server is the binary beside this one in the same target
//!   directory, the baseline this binary's hidden `satip-baseline-server` subcommand;
//! - `css`: CSS-WC server throughput and latency, WC client dispersion, CSS-TS accuracy
//!   ([`css`]);
//! - `soak`: RTP, HTTP and CSS clients coming and going on one `dvb2ip serve` for a bounded
//!   time, a frontend losing lock now and then ([`soak`]).

mod css;
mod satip;
mod satip_baseline;
mod satip_rx;
mod soak;
mod tuner;

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
    /// The baseline server of `satip` (run by the bench as a child process).
    #[command(hide = true)]
    SatipBaselineServer,
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
        BenchCommand::SatipBaselineServer => satip_baseline::run_server(),
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
