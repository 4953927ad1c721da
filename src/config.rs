//! The launcher's configuration file: `[server]` and `[[channel]]`, plus the tuner pool's
//! `[emulator]`, `[[adapter]]` and `[[mux]]` parts (parsed by the plugin's `tuners::config`).

use std::path::Path;

use gstdvb2ip::tuners::config::{
    read_config_file, toml_error, BroadcastConfig, ConfigError, DEFAULT_CONFIG,
};
use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// Address RTSP and HTTP bind to; loopback by default.
    #[serde(default = "default_bind")]
    pub bind: String,
    #[serde(default = "default_rtsp_port")]
    pub rtsp_port: u16,
    #[serde(default = "default_http_port")]
    pub http_port: u16,
    /// SAT>IP/RTSP session timeout in seconds (`Session: id;timeout=N`); a session without
    /// any request or RTCP for this long (plus 5 s of grace) is torn down.
    #[serde(default = "default_session_timeout")]
    pub session_timeout: u32,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            bind: default_bind(),
            rtsp_port: default_rtsp_port(),
            http_port: default_http_port(),
            session_timeout: default_session_timeout(),
        }
    }
}

fn default_bind() -> String {
    "127.0.0.1".into()
}
fn default_rtsp_port() -> u16 {
    554
}
fn default_http_port() -> u16 {
    8875
}
fn default_session_timeout() -> u32 {
    60
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChannelConfig {
    /// Mount name: `rtsp://HOST:PORT/ch/<name>`.
    pub name: String,
    /// Human-readable title for channel lists.
    #[serde(default)]
    pub title: String,
    /// SAT>IP query selecting transponder and PIDs.
    pub query: String,
}

/// `[ssdp]`: SAT>IP discovery (SSDP announcements, M-SEARCH answers, device description).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SsdpSection {
    /// Run the SSDP advertiser and the description endpoint.
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// Interfaces to announce and answer on; no other interface is ever used.
    #[serde(default = "default_ssdp_interfaces")]
    pub interfaces: Vec<String>,
    /// Where the device UUID, BOOTID and DEVICE ID persist ("" = `$DVB2IP_STATE_DIR`,
    /// `$XDG_STATE_HOME/dvb2ip` or `~/.local/state/dvb2ip`).
    #[serde(default)]
    pub state_dir: String,
    /// `friendlyName` of the device description.
    #[serde(default = "default_friendly_name")]
    pub friendly_name: String,
    /// `CACHE-CONTROL: max-age` in seconds; the alive set is refreshed before half of it.
    #[serde(default = "default_max_age")]
    pub max_age: u32,
    /// DEVICE ID (1..254) used until one has been negotiated and stored.
    #[serde(default = "default_device_id")]
    pub device_id: u8,
    /// Seconds between interface/address polls.
    #[serde(default = "default_interface_poll_secs")]
    pub interface_poll_secs: u32,
    /// Most M-SEARCH answers sent per second, all peers together.
    #[serde(default = "default_max_replies_per_sec")]
    pub max_replies_per_sec: u32,
}

impl Default for SsdpSection {
    fn default() -> Self {
        Self {
            enabled: true,
            interfaces: default_ssdp_interfaces(),
            state_dir: String::new(),
            friendly_name: default_friendly_name(),
            max_age: default_max_age(),
            device_id: default_device_id(),
            interface_poll_secs: default_interface_poll_secs(),
            max_replies_per_sec: default_max_replies_per_sec(),
        }
    }
}

fn default_true() -> bool {
    true
}
fn default_ssdp_interfaces() -> Vec<String> {
    vec!["lo".into()]
}
fn default_friendly_name() -> String {
    "dvb2ip".into()
}
fn default_max_age() -> u32 {
    1800
}
fn default_device_id() -> u8 {
    1
}
fn default_interface_poll_secs() -> u32 {
    2
}
fn default_max_replies_per_sec() -> u32 {
    50
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct LauncherPart {
    #[serde(default)]
    server: ServerConfig,
    #[serde(default)]
    channel: Vec<ChannelConfig>,
    #[serde(default)]
    ssdp: SsdpSection,
    // Parsed by the plugin; only named here so unknown top-level keys are reported.
    #[serde(default)]
    #[allow(dead_code)]
    emulator: Option<toml::Table>,
    #[serde(default)]
    #[allow(dead_code)]
    adapter: Option<Vec<toml::Table>>,
    #[serde(default)]
    #[allow(dead_code)]
    mux: Option<Vec<toml::Table>>,
}

/// A whole configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub server: ServerConfig,
    pub channel: Vec<ChannelConfig>,
    pub ssdp: SsdpSection,
    pub broadcast: BroadcastConfig,
}

impl Config {
    pub fn parse(file: &str, text: &str) -> Result<Self, ConfigError> {
        let part: LauncherPart = toml::from_str(text).map_err(|e| toml_error(file, text, &e))?;
        let broadcast = BroadcastConfig::parse(file, text)?;
        let mut names = std::collections::HashSet::new();
        for c in &part.channel {
            let line = text
                .lines()
                .position(|l| l.contains(&format!("\"{}\"", c.name)))
                .map(|i| i + 1);
            if c.name.is_empty()
                || !c
                    .name
                    .chars()
                    .all(|ch| ch.is_ascii_alphanumeric() || "-_.".contains(ch))
            {
                return Err(ConfigError {
                    file: file.into(),
                    line,
                    message: format!(
                        "channel name {:?} must be letters, digits, '-', '_' or '.'",
                        c.name
                    ),
                });
            }
            if !names.insert(c.name.clone()) {
                return Err(ConfigError {
                    file: file.into(),
                    line,
                    message: format!("channel {:?} defined twice", c.name),
                });
            }
            if let Err(e) = crate::channels::tuning_for_query(&c.query) {
                return Err(ConfigError {
                    file: file.into(),
                    line,
                    message: format!("channel {:?}: {e}", c.name),
                });
            }
        }
        if part.server.bind.parse::<std::net::IpAddr>().is_err() {
            let line = text
                .lines()
                .position(|l| l.trim_start().starts_with("bind"))
                .map(|i| i + 1);
            return Err(ConfigError {
                file: file.into(),
                line,
                message: format!("server.bind {:?} is not an IP address", part.server.bind),
            });
        }
        Ok(Self {
            server: part.server,
            channel: part.channel,
            ssdp: part.ssdp,
            broadcast,
        })
    }

    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let (file, text) = read_config_file(path)?;
        Self::parse(&file, &text)
    }

    /// The embedded default (`conf/default.toml`).
    pub fn embedded() -> Self {
        Self::parse("<embedded conf/default.toml>", DEFAULT_CONFIG)
            .expect("embedded config is valid")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_parses_with_loopback_defaults() {
        let c = Config::embedded();
        assert_eq!(c.server.bind, "127.0.0.1");
        assert!(c.channel.len() >= 4);
    }

    #[test]
    fn unknown_keys_and_bad_values_name_the_line() {
        let e = Config::parse("x.toml", "[server]\nbind = \"127.0.0.1\"\nport = 5\n").unwrap_err();
        assert_eq!(e.line, Some(3), "{e}");
        let e = Config::parse("x.toml", "[server]\nbind = \"localhost:80\"\n").unwrap_err();
        assert_eq!(e.line, Some(2), "{e}");
        assert!(e.to_string().starts_with("x.toml:2:"), "{e}");
    }
}
