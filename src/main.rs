use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use dvb2ip::config::Config;

#[derive(Parser)]
#[command(
    name = "dvb2ip",
    version,
    about = "DVB tuners to a SAT>IP / RTSP network TV server"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server (emulated tuners by default; loopback only unless configured).
    Serve {
        /// Configuration file (default: the embedded conf/default.toml).
        #[arg(short, long)]
        config: Option<PathBuf>,
        /// RTSP port (overrides server.rtsp_port; 0 picks a free one).
        #[arg(long)]
        rtsp_port: Option<u16>,
        /// Address to bind (overrides server.bind).
        #[arg(long)]
        bind: Option<String>,
        /// SAT>IP/RTSP session timeout in seconds (overrides server.session_timeout).
        #[arg(long)]
        session_timeout: Option<u32>,
    },
    /// Check a configuration file and print a summary.
    CheckConfig { file: PathBuf },
    /// List the frontends of the tuner pool.
    Tuners {
        #[arg(short, long)]
        config: Option<PathBuf>,
    },
    /// Print the embedded default configuration.
    DefaultConfig,
    /// DVB-CSS tools: clients, a CSS-WC server and a TV emulator.
    Css {
        #[command(subcommand)]
        which: dvb2ip::css::cli::CssCommand,
    },
    /// Benchmarks.
    Bench {
        #[command(subcommand)]
        which: BenchCommand,
    },
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
        mode: dvb2ip::rtsp::bench::ModeArg,
        /// Servers to measure.
        #[arg(long, value_enum, default_value = "both")]
        server: dvb2ip::rtsp::bench::ServerArg,
        /// Receiving threads of the load generator.
        #[arg(long, default_value_t = 1)]
        rx_threads: usize,
        /// Same as --mode distinct.
        #[arg(long, hide = true)]
        distinct: bool,
    },
    /// The baseline server of `bench satip` (run by the bench as a child process).
    #[command(hide = true)]
    SatipBaselineServer,
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

fn load(config: Option<PathBuf>) -> Result<Config, String> {
    match config {
        Some(p) => Config::load(&p).map_err(|e| e.to_string()),
        None => Ok(Config::embedded()),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let r: anyhow::Result<()> = (|| match cli.command {
        Command::Serve {
            config,
            rtsp_port,
            bind,
            session_timeout,
        } => {
            let mut cfg = load(config).map_err(anyhow::Error::msg)?;
            if let Some(t) = session_timeout {
                cfg.server.session_timeout = t;
            }
            dvb2ip::serve::run(cfg, dvb2ip::serve::ServeOptions { rtsp_port, bind })
        }
        Command::CheckConfig { file } => {
            let cfg = Config::load(&file).map_err(|e| anyhow::anyhow!("{e}"))?;
            println!(
                "{}: ok ({} adapters, {} multiplexes, {} channels; binds {})",
                file.display(),
                cfg.broadcast.adapter.len(),
                cfg.broadcast.mux.len(),
                cfg.channel.len(),
                cfg.server.bind
            );
            Ok(())
        }
        Command::Tuners { config } => {
            let cfg = load(config).map_err(anyhow::Error::msg)?;
            gst::init()?;
            gstdvb2ip::tuners::configure(cfg.broadcast).map_err(anyhow::Error::msg)?;
            for f in gstdvb2ip::tuners::frontends() {
                let ds: Vec<&str> = f.delsys.iter().map(|d| d.nick()).collect();
                println!(
                    "adapter{}/frontend{}\t{}\t{}\t{}",
                    f.adapter,
                    f.frontend,
                    if f.emulated { "emulated" } else { "hardware" },
                    ds.join(","),
                    f.name
                );
            }
            Ok(())
        }
        Command::DefaultConfig => {
            print!("{}", gstdvb2ip::tuners::config::DEFAULT_CONFIG);
            Ok(())
        }
        Command::Css { which } => dvb2ip::css::cli::run(which),
        Command::Bench {
            which: BenchCommand::Css { seconds },
        } => dvb2ip::bench::run_css(seconds).map(|_| ()),
        Command::Bench {
            which:
                BenchCommand::Satip {
                    sessions,
                    seconds,
                    mode,
                    server,
                    rx_threads,
                    distinct,
                },
        } => dvb2ip::rtsp::bench::run(&dvb2ip::rtsp::bench::Options {
            sessions,
            seconds,
            mode: if distinct {
                dvb2ip::rtsp::bench::ModeArg::Distinct
            } else {
                mode
            },
            server,
            rx_threads,
        }),
        Command::Bench {
            which: BenchCommand::SatipBaselineServer,
        } => dvb2ip::rtsp::bench_baseline::run_server(),
        Command::Bench {
            which:
                BenchCommand::Tuner {
                    subscribers,
                    seconds,
                },
        } => dvb2ip::bench::run_tuner(&subscribers, seconds).map(|_| ()),
    })();
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("dvb2ip: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
