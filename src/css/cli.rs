//! The `dvb2ip css …` subcommands (clap definitions and dispatch), kept out of `main.rs`.

use std::path::PathBuf;
use std::time::Duration;

use clap::Subcommand;

use super::tools::{self, TvOptions};

fn secs(s: Option<f64>) -> Option<Duration> {
    s.and_then(|s| Duration::try_from_secs_f64(s).ok())
}

#[derive(Subcommand, Debug)]
pub enum CssCommand {
    /// CSS-WC client: synchronise with a wall clock server, print offset and dispersion.
    WcClient {
        /// Server as HOST:PORT or udp://HOST:PORT.
        server: String,
        /// Seconds to run.
        #[arg(long, default_value_t = 10.0)]
        duration: f64,
    },
    /// CSS-CII client: print every CII message and what changed.
    CiiClient {
        /// ws://HOST:PORT/cii
        url: String,
        /// Seconds to run (default: until the server closes or Ctrl-C).
        #[arg(long)]
        duration: Option<f64>,
    },
    /// CSS-TS client: follow a timeline (synchronised by CSS-WC), print its position.
    TsClient {
        /// ws://HOST:PORT/ts
        ts_url: String,
        /// udp://HOST:PORT of the CSS-WC server.
        wc_url: String,
        /// contentIdStem ("" matches any content).
        stem: String,
        /// Timeline selector, e.g. urn:dvb:css:timeline:pts or urn:dvb:css:timeline:temi:1:1.
        selector: String,
        /// Timeline ticks per second (90000 for PTS).
        tick_rate: f64,
        /// Seconds between position reports.
        #[arg(long, default_value_t = 1.0)]
        interval: f64,
        /// Seconds to run (default: until the server closes or Ctrl-C).
        #[arg(long)]
        duration: Option<f64>,
    },
    /// Standalone CSS-WC server.
    WcServer {
        /// Address to serve on.
        #[arg(long, default_value = "127.0.0.1:6677")]
        bind: String,
        /// Send a type-2 response plus a type-3 follow-up per request.
        #[arg(long)]
        follow_up: bool,
    },
    /// TV emulator: play a channel through dvbcsssink and serve CSS-CII/TS/WC for it.
    Tv {
        /// Play this TS file instead of the emulated tuners.
        #[arg(long)]
        file: Option<PathBuf>,
        /// DVB-T frequency in Hz of the multiplex to tune.
        #[arg(long, default_value_t = tools::DEFAULT_TV_FREQUENCY)]
        frequency: u32,
        /// Program (service id) to present; 0 = the first one (default: dvb2ip News, 0x1201;
        /// with --file: 0).
        #[arg(long)]
        program: Option<u32>,
        /// Address the CSS servers listen on.
        #[arg(long, default_value = "127.0.0.1")]
        bind: String,
        /// TCP port of CSS-CII and CSS-TS (0 picks one).
        #[arg(long, default_value_t = 7681)]
        cii_port: u16,
        /// UDP port of CSS-WC (0 picks one).
        #[arg(long, default_value_t = 6677)]
        wc_port: u16,
        /// Seconds to run (default: until Ctrl-C or end of file).
        #[arg(long)]
        duration: Option<f64>,
    },
}

/// Run one `css` subcommand.
pub fn run(cmd: CssCommand) -> anyhow::Result<()> {
    match cmd {
        CssCommand::WcClient { server, duration } => tools::wc_client(
            &server,
            Duration::try_from_secs_f64(duration).unwrap_or(Duration::from_secs(10)),
        ),
        CssCommand::CiiClient { url, duration } => tools::cii_client(&url, secs(duration)),
        CssCommand::TsClient {
            ts_url,
            wc_url,
            stem,
            selector,
            tick_rate,
            interval,
            duration,
        } => tools::ts_client(
            &ts_url,
            &wc_url,
            &stem,
            &selector,
            tick_rate,
            Duration::try_from_secs_f64(interval)
                .ok()
                .filter(|d| !d.is_zero())
                .unwrap_or(Duration::from_secs(1)),
            secs(duration),
        ),
        CssCommand::WcServer { bind, follow_up } => tools::wc_server(&bind, follow_up),
        CssCommand::Tv {
            file,
            frequency,
            program,
            bind,
            cii_port,
            wc_port,
            duration,
        } => {
            let program = program.unwrap_or(if file.is_some() {
                0
            } else {
                tools::DEFAULT_TV_PROGRAM
            });
            // Many CSS clients: the soft descriptor limit up to the hard one (issue 16 item 1).
            if let Err(e) = crate::limits::raise_nofile() {
                eprintln!("dvb2ip: cannot raise the descriptor limit: {e}");
            }
            let o = TvOptions {
                file,
                frequency,
                program,
                bind,
                cii_port,
                wc_port,
                post_messages: false,
            };
            tools::tv(&o, secs(duration))
        }
    }
}
