//! Configuration of the tuner pool: emulated adapters and the multiplexes they receive.
//!
//! These are the `[emulator]`, `[[adapter]]` and `[[mux]]` parts of a dvb2ip configuration file
//! (see `conf/default.toml`). Other top-level keys belong to the launcher and are ignored here.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::proto::tuner_pool::{DelSys, Polarisation, Transponder};

/// The embedded default configuration.
pub const DEFAULT_CONFIG: &str = include_str!("../../../conf/default.toml");

#[derive(Debug, Clone, Deserialize, Default)]
pub struct BroadcastConfig {
    #[serde(default)]
    pub emulator: EmulatorConfig,
    #[serde(default)]
    pub adapter: Vec<AdapterConfig>,
    #[serde(default)]
    pub mux: Vec<MuxConfig>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmulatorConfig {
    /// Where generated content is cached; empty = `$DVB2IP_CACHE_DIR`, `$XDG_CACHE_HOME/dvb2ip`
    /// or `~/.cache/dvb2ip`.
    #[serde(default)]
    pub cache_dir: String,
    /// Probe real adapters under /dev/dvb: "auto" (default) or "off".
    #[serde(default = "default_hardware")]
    pub hardware: String,
}

impl Default for EmulatorConfig {
    fn default() -> Self {
        Self {
            cache_dir: String::new(),
            hardware: default_hardware(),
        }
    }
}

fn default_hardware() -> String {
    "auto".into()
}

/// Fault knobs of an emulated frontend.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Faults {
    /// Lose lock this long after each lock (0 = never).
    #[serde(default)]
    pub lose_lock_after_ms: u64,
    /// How long the lock stays lost (default 1000 ms).
    #[serde(default)]
    pub lock_lost_for_ms: u64,
    /// Probability of dropping each TS packet (0.0–1.0).
    #[serde(default)]
    pub drop_probability: f64,
    /// Probability of flipping each bit (0.0–1.0).
    #[serde(default)]
    pub bit_error_rate: f64,
    /// Probability that a tune never locks (0.0–1.0), drawn once per tune: a flaky frontend.
    #[serde(default)]
    pub lock_failure_probability: f64,
    /// Probability of losing each PSI/SI section (0.0–1.0): all its TS packets are dropped.
    #[serde(default)]
    pub table_loss_probability: f64,
    /// Seed of the random draws of these knobs (lock failures, table losses, packet drops, bit
    /// errors): the same seed gives the same sequence of draws. None = seeded from the clock.
    #[serde(default)]
    pub seed: Option<u64>,
}

impl Faults {
    /// The probability knobs by their TOML key, for validation.
    pub fn probabilities(&self) -> [(&'static str, f64); 4] {
        [
            ("drop_probability", self.drop_probability),
            ("bit_error_rate", self.bit_error_rate),
            ("lock_failure_probability", self.lock_failure_probability),
            ("table_loss_probability", self.table_loss_probability),
        ]
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdapterConfig {
    pub name: String,
    /// Delivery systems the frontend supports (dvbsrc nicks: dvb-t, dvb-t2, dvb-c, dvb-s, dvb-s2…).
    pub delsys: Vec<String>,
    #[serde(default = "default_lock_time")]
    pub lock_time_ms: u64,
    /// Signal level in percent.
    #[serde(default = "default_level")]
    pub signal_level: u32,
    /// Signal level in dBm, as a real frontend's DVBv5 statistics give it; while the lock is
    /// lost (`faults.lose_lock_after_ms`) it drops by [`LOST_LOCK_FADE_DB`].
    #[serde(default = "default_signal_dbm")]
    pub signal_dbm: f64,
    /// Signal quality in percent.
    #[serde(default = "default_quality")]
    pub signal_quality: u32,
    #[serde(default = "default_snr")]
    pub snr_db: f64,
    #[serde(default)]
    pub ber: f64,
    #[serde(default)]
    pub faults: Faults,
}

fn default_lock_time() -> u64 {
    300
}
fn default_level() -> u32 {
    78
}
fn default_signal_dbm() -> f64 {
    -45.0
}
/// How far an emulated frontend's `signal_dbm` falls while its lock is lost (a fade).
pub const LOST_LOCK_FADE_DB: f64 = 20.0;
fn default_quality() -> u32 {
    93
}
fn default_snr() -> f64 {
    27.5
}

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ServiceKind {
    Tv,
    Radio,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TemiConfig {
    pub timeline_id: u8,
    /// Ticks per second: 1000 or 90000.
    pub timescale: u32,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceConfig {
    pub service_id: u16,
    pub name: String,
    #[serde(default = "default_provider")]
    pub provider: String,
    pub kind: ServiceKind,
    pub pmt_pid: u16,
    #[serde(default)]
    pub video_pid: Option<u16>,
    pub audio_pid: u16,
    /// videotestsrc pattern nick.
    #[serde(default = "default_pattern")]
    pub pattern: String,
    /// Audio test tone in Hz.
    #[serde(default = "default_tone")]
    pub tone_hz: u32,
    #[serde(default)]
    pub temi: Option<TemiConfig>,
    /// Logical channel number announced in the NIT (EACEM logical_channel_descriptor, 1..1023).
    #[serde(default)]
    pub lcn: Option<u16>,
    /// Flagged as scrambled: free_CA_mode = 1 in the SDT and a CA_descriptor in the PMT (the
    /// content itself stays clear).
    #[serde(default)]
    pub scrambled: bool,
    /// A service that comes and goes; absent = always on air.
    #[serde(default)]
    pub on_air: Option<OnAirConfig>,
}

/// When a service that comes and goes is on air: during the first `on_s` seconds of every
/// `period_s` seconds of the emulator's running time (counted from when the tuner pool was
/// configured). Off air it is gone from the PAT, its PMT, the SDT and the EIT; its elementary
/// streams keep flowing, as a broadcaster's unused PIDs may.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct OnAirConfig {
    pub period_s: u32,
    pub on_s: u32,
}

fn default_provider() -> String {
    "dvb2ip".into()
}
fn default_pattern() -> String {
    "smpte".into()
}
fn default_tone() -> u32 {
    440
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MuxConfig {
    pub name: String,
    pub delsys: String,
    /// Centre frequency in kHz (all delivery systems).
    pub frequency_khz: u64,
    #[serde(default)]
    pub bandwidth_hz: u32,
    #[serde(default)]
    pub symbol_rate_ksym: u32,
    #[serde(default)]
    pub polarisation: Option<String>,
    #[serde(default)]
    pub modulation: Option<String>,
    #[serde(default = "default_stream_id")]
    pub stream_id: i32,
    /// Constant multiplex bitrate in bit/s (15–25 Mbit/s for the defaults).
    #[serde(default = "default_bitrate")]
    pub bitrate: u64,
    pub transport_stream_id: u16,
    pub original_network_id: u16,
    #[serde(default = "default_network_id")]
    pub network_id: u16,
    #[serde(default = "default_network_name")]
    pub network_name: String,
    /// In the initial tuning list a scan starts from (default true). `false`: a mux a scan
    /// reaches only through the NIT of the others ([`BroadcastConfig::initial_muxes`]); it
    /// locks like any other.
    #[serde(default = "default_initial")]
    pub initial: bool,
    pub service: Vec<ServiceConfig>,
}

fn default_initial() -> bool {
    true
}

fn default_stream_id() -> i32 {
    -1
}
fn default_bitrate() -> u64 {
    20_000_000
}
fn default_network_id() -> u16 {
    0x3001
}
fn default_network_name() -> String {
    "dvb2ip emulated network".into()
}

/// A configuration error, naming the file (when known), line and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: String,
    pub line: Option<usize>,
    pub message: String,
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.line {
            Some(l) => write!(f, "{}:{}: {}", self.file, l, self.message),
            None => write!(f, "{}: {}", self.file, self.message),
        }
    }
}

impl std::error::Error for ConfigError {}

/// Reads a configuration file: (its name for messages, its text).
pub fn read_config_file(path: &Path) -> Result<(String, String), ConfigError> {
    let file = path.display().to_string();
    match std::fs::read_to_string(path) {
        Ok(text) => Ok((file, text)),
        Err(e) => Err(ConfigError {
            file,
            line: None,
            message: format!("cannot read: {e}"),
        }),
    }
}

/// Converts a toml error into one naming file and line.
pub fn toml_error(file: &str, text: &str, e: &toml::de::Error) -> ConfigError {
    let line = e
        .span()
        .map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1);
    ConfigError {
        file: file.to_string(),
        line,
        message: e.message().to_string(),
    }
}

/// Finds the line of the first `[[mux]]`-style table whose `name = "<name>"` appears.
fn line_of(text: &str, needle: &str) -> Option<usize> {
    text.lines().position(|l| l.contains(needle)).map(|i| i + 1)
}

/// The line of the first `key = …` after the first line holding `after`.
fn line_after(text: &str, after: &str, key: &str) -> Option<usize> {
    let start = text.lines().position(|l| l.contains(after))?;
    text.lines()
        .enumerate()
        .skip(start + 1)
        .find(|(_, l)| {
            l.trim_start()
                .strip_prefix(key)
                .is_some_and(|r| r.trim_start().starts_with('='))
        })
        .map(|(i, _)| i + 1)
}

impl MuxConfig {
    pub fn delsys(&self) -> Option<DelSys> {
        DelSys::from_nick(&self.delsys)
    }

    pub fn transponder(&self) -> Option<Transponder> {
        let delsys = self.delsys()?;
        Some(Transponder {
            delsys,
            frequency_khz: self.frequency_khz,
            polarisation: self.polarisation.as_deref().and_then(Polarisation::parse),
            symbol_rate_ksym: self.symbol_rate_ksym,
            bandwidth_hz: self.bandwidth_hz,
            stream_id: self.stream_id,
        })
    }
}

impl BroadcastConfig {
    /// Parses and validates; `file` is used in error messages.
    pub fn parse(file: &str, text: &str) -> Result<Self, ConfigError> {
        let cfg: BroadcastConfig = toml::from_str(text).map_err(|e| toml_error(file, text, &e))?;
        cfg.validate(file, text)?;
        Ok(cfg)
    }

    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let (file, text) = read_config_file(path)?;
        Self::parse(&file, &text)
    }

    /// The embedded default.
    pub fn embedded() -> Self {
        Self::parse("<embedded conf/default.toml>", DEFAULT_CONFIG)
            .expect("embedded config is valid")
    }

    fn validate(&self, file: &str, text: &str) -> Result<(), ConfigError> {
        let err = |needle: &str, message: String| ConfigError {
            file: file.to_string(),
            line: line_of(text, needle),
            message,
        };
        if !matches!(self.emulator.hardware.as_str(), "auto" | "off") {
            return Err(err(
                "hardware",
                format!(
                    "emulator.hardware must be \"auto\" or \"off\", not {:?}",
                    self.emulator.hardware
                ),
            ));
        }
        for a in &self.adapter {
            let needle = format!("\"{}\"", a.name);
            if a.delsys.is_empty() {
                return Err(err(
                    &needle,
                    format!("adapter {:?} lists no delivery system", a.name),
                ));
            }
            for d in &a.delsys {
                if DelSys::from_nick(d).is_none() {
                    return Err(err(
                        &format!("\"{d}\""),
                        format!("adapter {:?}: unknown delivery system {d:?}", a.name),
                    ));
                }
            }
            if !(-150.0..=30.0).contains(&a.signal_dbm) {
                return Err(ConfigError {
                    file: file.to_string(),
                    line: line_after(text, &needle, "signal_dbm")
                        .or_else(|| line_of(text, &needle)),
                    message: format!(
                        "adapter {:?}: signal_dbm must be within -150..30 dBm, not {}",
                        a.name, a.signal_dbm
                    ),
                });
            }
            for (key, p) in a.faults.probabilities() {
                if !(0.0..=1.0).contains(&p) {
                    return Err(ConfigError {
                        file: file.to_string(),
                        line: line_after(text, &needle, key).or_else(|| line_of(text, &needle)),
                        message: format!(
                            "adapter {:?}: faults.{key} must be within 0..1, not {p}",
                            a.name
                        ),
                    });
                }
            }
        }
        for m in &self.mux {
            let needle = format!("\"{}\"", m.name);
            let Some(delsys) = m.delsys() else {
                return Err(err(
                    &needle,
                    format!("mux {:?}: unknown delivery system {:?}", m.name, m.delsys),
                ));
            };
            if delsys.is_satellite() {
                if m.polarisation
                    .as_deref()
                    .and_then(Polarisation::parse)
                    .is_none()
                {
                    return Err(err(
                        &needle,
                        format!("mux {:?}: satellite mux needs polarisation h/v/l/r", m.name),
                    ));
                }
                if m.symbol_rate_ksym == 0 {
                    return Err(err(
                        &needle,
                        format!("mux {:?}: satellite mux needs symbol_rate_ksym", m.name),
                    ));
                }
            }
            if delsys.is_cable() && m.symbol_rate_ksym == 0 {
                return Err(err(
                    &needle,
                    format!("mux {:?}: cable mux needs symbol_rate_ksym", m.name),
                ));
            }
            if !(1_000_000..=100_000_000).contains(&m.bitrate) {
                return Err(err(
                    &needle,
                    format!("mux {:?}: bitrate {} bit/s out of range", m.name, m.bitrate),
                ));
            }
            if m.service.is_empty() {
                return Err(err(&needle, format!("mux {:?} has no services", m.name)));
            }
            let mut pids = std::collections::HashSet::new();
            for s in &m.service {
                let sneedle = format!("\"{}\"", s.name);
                if s.kind == ServiceKind::Tv && s.video_pid.is_none() {
                    return Err(err(
                        &sneedle,
                        format!("service {:?}: a tv service needs video_pid", s.name),
                    ));
                }
                for p in [Some(s.pmt_pid), s.video_pid, Some(s.audio_pid)]
                    .into_iter()
                    .flatten()
                {
                    if !(0x20..0x1FFF).contains(&p) || !pids.insert(p) {
                        return Err(err(
                            &sneedle,
                            format!(
                                "service {:?}: PID {p} is reserved or used twice in mux {:?}",
                                s.name, m.name
                            ),
                        ));
                    }
                }
                if s.lcn.is_some_and(|n| !(1..=1023).contains(&n)) {
                    return Err(err(
                        &sneedle,
                        format!("service {:?}: lcn must be within 1..1023", s.name),
                    ));
                }
                if let Some(o) = s.on_air {
                    if o.period_s == 0 || o.on_s == 0 || o.on_s >= o.period_s {
                        return Err(err(
                            &sneedle,
                            format!(
                                "service {:?}: on_air needs 0 < on_s < period_s, not on_s = {} and period_s = {}",
                                s.name, o.on_s, o.period_s
                            ),
                        ));
                    }
                }
                if let Some(t) = &s.temi {
                    if t.timescale == 0 || s.video_pid.is_none() {
                        return Err(err(
                            &sneedle,
                            format!(
                                "service {:?}: TEMI needs a video PID and a timescale",
                                s.name
                            ),
                        ));
                    }
                }
            }
        }
        Ok(())
    }

    /// The muxes of the initial tuning list a scan of this configuration is given: every mux
    /// but those with `initial = false`, which only the NIT announces.
    pub fn initial_muxes(&self) -> impl Iterator<Item = &MuxConfig> {
        self.mux.iter().filter(|m| m.initial)
    }

    /// The cache directory for generated content.
    pub fn cache_dir(&self) -> PathBuf {
        if !self.emulator.cache_dir.is_empty() {
            return PathBuf::from(&self.emulator.cache_dir);
        }
        let env = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty());
        if let Some(d) = env("DVB2IP_CACHE_DIR") {
            return PathBuf::from(d);
        }
        if let Some(d) = env("XDG_CACHE_HOME") {
            return PathBuf::from(d).join("dvb2ip");
        }
        if let Some(d) = env("HOME") {
            return PathBuf::from(d).join(".cache").join("dvb2ip");
        }
        std::env::temp_dir().join("dvb2ip-cache")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_default_is_valid_and_complete() {
        let c = BroadcastConfig::embedded();
        assert_eq!(c.adapter.len(), 4);
        assert!(c.mux.len() >= 4);
        for m in &c.mux {
            assert!(m.service.len() >= 3);
            assert!((15_000_000..=25_000_000).contains(&m.bitrate));
        }
        assert!(c
            .mux
            .iter()
            .any(|m| m.service.iter().any(|s| s.temi.is_some())));
    }

    #[test]
    fn the_default_has_a_nit_only_mux_a_scrambled_and_a_coming_and_going_service() {
        let c = BroadcastConfig::embedded();
        let nit_only: Vec<&MuxConfig> = c.mux.iter().filter(|m| !m.initial).collect();
        assert_eq!(nit_only.len(), 1);
        assert_eq!(c.initial_muxes().count(), c.mux.len() - 1);
        let services = || c.mux.iter().flat_map(|m| m.service.iter());
        assert_eq!(services().filter(|s| s.scrambled).count(), 1);
        assert_eq!(services().filter(|s| s.on_air.is_some()).count(), 1);
    }

    #[test]
    fn a_bad_on_air_period_names_the_service_and_line() {
        let text = DEFAULT_CONFIG.replace(
            "on_air = { period_s = 120, on_s = 60 }",
            "on_air = { period_s = 60, on_s = 60 }",
        );
        assert_ne!(text, DEFAULT_CONFIG);
        let e = BroadcastConfig::parse("my.toml", &text).unwrap_err();
        assert!(
            e.message.contains("on_air") && e.message.contains("dvb2ip Pop-up"),
            "{e}"
        );
        let line = text
            .lines()
            .position(|l| l.contains("\"dvb2ip Pop-up\""))
            .map(|i| i + 1);
        assert_eq!(e.line, line);
    }

    #[test]
    fn fault_knobs_are_read_and_bad_ones_name_key_and_line() {
        let good = "[[adapter]]\nname = \"a\"\ndelsys = [\"dvb-t\"]\n\n[[adapter]]\nname = \"b\"\n\
                    delsys = [\"dvb-c\"]\n[adapter.faults]\nlock_failure_probability = 0.3\n\
                    table_loss_probability = 0.05\nseed = 7\n";
        let c = BroadcastConfig::parse("f.toml", good).unwrap();
        assert_eq!(c.adapter[0].faults, Faults::default());
        let f = &c.adapter[1].faults;
        assert_eq!(f.lock_failure_probability, 0.3);
        assert_eq!(f.table_loss_probability, 0.05);
        assert_eq!(f.seed, Some(7));
        for (from, to, line) in [
            (
                "lock_failure_probability = 0.3",
                "lock_failure_probability = 1.5",
                9,
            ),
            (
                "table_loss_probability = 0.05",
                "table_loss_probability = -0.1",
                10,
            ),
        ] {
            let bad = good.replace(from, to);
            let e = BroadcastConfig::parse("f.toml", &bad).unwrap_err();
            let key = to.split(' ').next().unwrap();
            assert!(
                e.message.contains(&format!("faults.{key}")) && e.message.contains("\"b\""),
                "{e}"
            );
            assert_eq!(e.line, Some(line), "{e}");
            assert!(
                e.to_string().starts_with(&format!("f.toml:{line}: ")),
                "{e}"
            );
        }
        // A value of the wrong type is toml's error, on its line.
        let e = BroadcastConfig::parse("f.toml", &good.replace("0.3", "\"often\"")).unwrap_err();
        assert_eq!(e.line, Some(9), "{e}");
    }

    #[test]
    fn signal_dbm_defaults_and_a_bad_one_names_adapter_and_line() {
        let text = "[[adapter]]\nname = \"a\"\ndelsys = [\"dvb-t\"]\n\n[[adapter]]\nname = \"b\"\n\
                    delsys = [\"dvb-s2\"]\nsignal_dbm = -61.5\n";
        let c = BroadcastConfig::parse("f.toml", text).unwrap();
        assert_eq!(
            (c.adapter[0].signal_dbm, c.adapter[1].signal_dbm),
            (-45.0, -61.5)
        );
        let e = BroadcastConfig::parse("f.toml", &text.replace("-61.5", "45.0")).unwrap_err();
        assert!(
            e.message.contains("signal_dbm") && e.message.contains("\"b\""),
            "{e}"
        );
        assert_eq!(e.line, Some(8), "{e}");
        // The embedded default gives the satellite adapter a weaker signal.
        let c = BroadcastConfig::embedded();
        assert!(c.adapter.iter().any(|a| a.signal_dbm < -45.0));
    }

    #[test]
    fn errors_name_file_and_line() {
        let text = "[[adapter]]\nname = \"x\"\ndelsys = [\"dvb-q\"]\n";
        let e = BroadcastConfig::parse("my.toml", text).unwrap_err();
        assert_eq!(e.file, "my.toml");
        assert_eq!(e.line, Some(3));
        assert!(e.to_string().contains("dvb-q"), "{e}");
        let e = BroadcastConfig::parse("my.toml", "[[adapter]]\nname = 3\n").unwrap_err();
        assert_eq!(e.line, Some(2));
    }
}
