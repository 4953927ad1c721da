//! The launcher's configuration file: `[server]` and `[[channel]]`, plus the tuner pool's
//! `[emulator]`, `[[adapter]]` and `[[mux]]` parts (parsed by the plugin's `tuners::config`).

use std::path::Path;

use gstdvb2ip::tuners::config::{toml_error, BroadcastConfig, ConfigError, DEFAULT_CONFIG};
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
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            bind: default_bind(),
            rtsp_port: default_rtsp_port(),
            http_port: default_http_port(),
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

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct LauncherPart {
    #[serde(default)]
    server: ServerConfig,
    #[serde(default)]
    channel: Vec<ChannelConfig>,
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
            broadcast,
        })
    }

    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            file: file.clone(),
            line: None,
            message: format!("cannot read: {e}"),
        })?;
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
