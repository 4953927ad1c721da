//! `[scan]`: channel scanning in the server and the defaults of `dvb2ip scan`.

use std::path::{Path, PathBuf};

use anyhow::Context;
use gstdvb2ip::proto::scan::collector::{CollectorConfig, Timeouts};
use gstdvb2ip::proto::scan::db::{ChannelDb, DbPolicy};
use gstdvb2ip::proto::scan::initial;
use gstdvb2ip::proto::scan::mux::Mux;
use gstdvb2ip::proto::scan::queue::{Origin, QueueConfig};
use gstdvb2ip::proto::scan::session::ScanConfig;
use gstdvb2ip::tuners::config::BroadcastConfig;
use serde::Deserialize;

/// When the server scans at start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum OnStart {
    /// Only when the channel database is empty (first start).
    #[default]
    IfEmpty,
    /// At every start.
    Always,
    /// Never (scans only through the API or `rescan_interval`).
    Never,
}

/// `[scan]` of the configuration file.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct ScanSection {
    /// Scan when the server starts: "if-empty", "always" or "never".
    pub on_start: OnStart,
    /// Seconds between rescans on idle frontends (0 = none).
    pub rescan_interval: u64,
    /// A service or mux is dropped after this many consecutive scans missed it (K).
    pub k_misses: u32,
    /// Most frontends a scan uses at once (0 = every free one).
    pub frontends: usize,
    /// Initial tuning file (DVBv5 format, dtv-scan-tables); "" = the configured emulated
    /// multiplexes' initial list while the database is empty.
    pub initial: String,
    /// Blind raster instead: "dvb-t", "dvb-t-vhf", "dvb-c" or "dvb-s" ("" = none).
    pub raster: String,
    /// Also read NIT/SDT other and queue what NIT other announces.
    pub nit_other: bool,
    /// Retries of a mux that does not lock (R).
    pub retries: u32,
    /// Every table budget multiplied by this percentage (dvbv5-scan -T).
    pub timeout_percent: u32,
}

impl Default for ScanSection {
    fn default() -> Self {
        ScanSection {
            on_start: OnStart::IfEmpty,
            rescan_interval: 6 * 3600,
            k_misses: DbPolicy::default().max_misses,
            frontends: 0,
            initial: String::new(),
            raster: String::new(),
            nit_other: false,
            retries: QueueConfig::default().retries,
            timeout_percent: 100,
        }
    }
}

/// The satellite "raster": the home transponders of dtv-scan-tables' Astra 19.2°E list (the
/// NIT announces the rest).
pub const SATELLITE_LIST: &str = "/usr/share/dvb/dvb-s/Astra-19.2E";

impl ScanSection {
    /// The session configuration.
    pub fn scan_config(&self) -> ScanConfig {
        ScanConfig {
            collector: CollectorConfig {
                timeouts: Timeouts {
                    multiplier_percent: self.timeout_percent.max(1),
                    ..Timeouts::default()
                },
                read_other: self.nit_other,
                ..CollectorConfig::default()
            },
            queue: QueueConfig {
                retries: self.retries,
                discover_other: self.nit_other,
                ..QueueConfig::default()
            },
            policy: DbPolicy {
                max_misses: self.k_misses.max(1),
            },
        }
    }

    /// What to scan besides the database's known muxes: the initial file, else the raster,
    /// else (with an empty database) the configured emulated multiplexes' initial list.
    pub fn initial_muxes(
        &self,
        broadcast: &BroadcastConfig,
        db: &ChannelDb,
    ) -> anyhow::Result<(Vec<Mux>, Origin)> {
        if !self.initial.is_empty() {
            return Ok((
                read_initial_file(Path::new(&self.initial))?,
                Origin::Initial,
            ));
        }
        if !self.raster.is_empty() {
            return Ok((raster(&self.raster)?, Origin::Raster));
        }
        if !db.muxes.is_empty() {
            return Ok((Vec::new(), Origin::Known));
        }
        let muxes: Vec<Mux> = broadcast
            .initial_muxes()
            .filter_map(super::engine::mux_of_config)
            .collect();
        if muxes.is_empty() || broadcast.adapter.is_empty() {
            anyhow::bail!(
                "nothing to scan: the channel database is empty and no initial tuning file \
                 (--initial FILE, [scan] initial) or raster (--raster dvb-t|dvb-c|dvb-s) is given"
            );
        }
        Ok((muxes, Origin::Initial))
    }
}

/// Reads a DVBv5 initial tuning file; errors name the file and line.
pub fn read_initial_file(path: &Path) -> anyhow::Result<Vec<Mux>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading initial tuning file {}", path.display()))?;
    let entries = initial::parse_dvbv5(&text)
        .map_err(|e| anyhow::anyhow!("{}:{}: {}", path.display(), e.line, e.message))?;
    if entries.is_empty() {
        anyhow::bail!("{}: no tuning entries", path.display());
    }
    Ok(entries.into_iter().map(|e| e.mux).collect())
}

/// A blind raster by name.
pub fn raster(name: &str) -> anyhow::Result<Vec<Mux>> {
    match name {
        "dvb-s" | "dvbs" => {
            read_initial_file(&PathBuf::from(SATELLITE_LIST)).with_context(|| {
                format!("satellite has no blind raster; its transponder list {SATELLITE_LIST} (Debian dtv-scan-tables) is needed")
            })
        }
        n => initial::raster_by_name(n).ok_or_else(|| {
            anyhow::anyhow!("unknown raster {n:?}: use dvb-t, dvb-t-vhf, dvb-c or dvb-s")
        }),
    }
}
