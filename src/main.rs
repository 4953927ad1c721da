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
        /// Record a channel into the first [vod] root from the start, until SECONDS have passed
        /// or the server stops (repeatable).
        #[arg(long, value_name = "CHANNEL[:SECONDS]", value_parser = dvb2ip::vod::record::RecordRequest::from_cli)]
        record: Vec<dvb2ip::vod::record::RecordRequest>,
        /// State directory holding the channel database (overrides server.state_dir).
        #[arg(long)]
        state_dir: Option<PathBuf>,
    },
    /// Scan for channels into the channel database (see README "Scanning").
    Scan(dvb2ip::scan::cli::ScanArgs),
    /// Check a configuration file and print a summary.
    CheckConfig { file: PathBuf },
    /// List the frontends of the tuner pool.
    Tuners {
        #[arg(short, long)]
        config: Option<PathBuf>,
    },
    /// Print the embedded default configuration.
    DefaultConfig,
    /// Print a salted hash of a password for `[ui] admin_password_hash` (the password is read
    /// from standard input, one line).
    HashPassword,
    /// DVB-CSS tools: clients, a CSS-WC server and a TV emulator.
    Css {
        #[command(subcommand)]
        which: dvb2ip::css::cli::CssCommand,
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
    let mut interrupted = false;
    let r: anyhow::Result<()> = (|| match cli.command {
        Command::Serve {
            config,
            rtsp_port,
            bind,
            session_timeout,
            record,
            state_dir,
        } => {
            let config_path = config.clone();
            let mut cfg = load(config).map_err(anyhow::Error::msg)?;
            if let Some(t) = session_timeout {
                cfg.server.session_timeout = t;
            }
            if let Some(d) = state_dir {
                cfg.server.state_dir = d.display().to_string();
            }
            cfg.vod.record_at_start = record;
            dvb2ip::serve::run_from(
                cfg,
                dvb2ip::serve::ServeOptions { rtsp_port, bind },
                config_path,
            )
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
        Command::HashPassword => {
            let mut line = String::new();
            std::io::stdin().read_line(&mut line)?;
            let password = line.trim_end_matches(['\r', '\n']);
            anyhow::ensure!(!password.is_empty(), "no password on standard input");
            println!("{}", dvb2ip::ui::auth::hash_password(password)?);
            Ok(())
        }
        Command::DefaultConfig => {
            print!("{}", gstdvb2ip::tuners::config::DEFAULT_CONFIG);
            Ok(())
        }
        Command::Css { which } => dvb2ip::css::cli::run(which),
        Command::Scan(args) => {
            // Stopped by Ctrl-C/SIGTERM: what was found is stored; exit status 130.
            interrupted = dvb2ip::scan::cli::run(args)?;
            Ok(())
        }
    })();
    match r {
        Ok(()) if interrupted => ExitCode::from(130),
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("dvb2ip: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
