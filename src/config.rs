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
    /// Most sessions at once, RTSP sessions and HTTP streams together; one more SETUP or HTTP
    /// stream gets 503 `No-More: sessions`. 0: sized from the descriptor limit
    /// ([`ServerConfig::effective_max_sessions`]).
    #[serde(default = "default_max_sessions")]
    pub max_sessions: u32,
    /// Where the channel database lives ("" = none: channels come from `[[channel]]` only;
    /// `dvb2ip scan` then uses `$DVB2IP_STATE_DIR` or /var/lib/dvb2ip).
    #[serde(default)]
    pub state_dir: String,
}

impl ServerConfig {
    /// `max_sessions`, or for 0 the limit the process's descriptors allow
    /// ([`crate::http::limits::auto_max_sessions`]).
    pub fn effective_max_sessions(&self) -> u32 {
        match self.max_sessions {
            0 => crate::http::limits::auto_max_sessions(crate::http::limits::fd_limit()),
            n => n,
        }
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            bind: default_bind(),
            rtsp_port: default_rtsp_port(),
            http_port: default_http_port(),
            session_timeout: default_session_timeout(),
            max_sessions: default_max_sessions(),
            state_dir: String::new(),
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
fn default_max_sessions() -> u32 {
    64
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
    /// DVB-CSS while the channel plays: `css = true` or a `[channel.css]` table
    /// (see [`crate::channels::ChannelCss`]).
    #[serde(default, deserialize_with = "crate::channels::deserialize_css")]
    pub css: Option<crate::channels::ChannelCss>,
}

/// `[ssdp]`: SAT>IP discovery (SSDP announcements, M-SEARCH answers, device description).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SsdpSection {
    /// Run the SSDP advertiser (the HTTP server with the description runs either way).
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
    /// Search `interfaces` for other SAT>IP servers and borrow their tuners
    /// (src/ssdp/discovery.rs); off by default, independent of `enabled`.
    #[serde(default)]
    pub discover_servers: bool,
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
            discover_servers: false,
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

/// `[multicast]`: SAT>IP multicast streams (SETUP `RTP/AVP;multicast`, checklist 42–44, 76).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MulticastSection {
    /// Offer multicast streams at all; when false, a multicast SETUP gets 461.
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// IP TTL of server-chosen groups (1 keeps the stream on the local network).
    #[serde(default = "default_multicast_ttl")]
    pub ttl: u8,
    /// Highest TTL a client may ask for (`ttl=` in its Transport); more gets 461.
    #[serde(default = "default_multicast_max_ttl")]
    pub max_ttl: u8,
    /// Groups handed out, `FIRST-LAST` (IPv4 multicast). "" = `239.<DEVICEID>.0.0-239.<DEVICEID>.254.254`
    /// with the DEVICE ID in use (the stored or negotiated one; `[ssdp] device_id` at first).
    #[serde(default)]
    pub addresses: String,
    /// RTP ports handed out with the groups, `FIRST-LAST` (even RTP port, RTCP on the next).
    #[serde(default = "default_multicast_ports")]
    pub ports: String,
    /// Interface multicast is sent on ("" = the routing table decides).
    #[serde(default)]
    pub interface: String,
}

impl Default for MulticastSection {
    fn default() -> Self {
        Self {
            enabled: true,
            ttl: default_multicast_ttl(),
            max_ttl: default_multicast_max_ttl(),
            addresses: String::new(),
            ports: default_multicast_ports(),
            interface: String::new(),
        }
    }
}

fn default_multicast_ttl() -> u8 {
    1
}
fn default_multicast_max_ttl() -> u8 {
    16
}
fn default_multicast_ports() -> String {
    "5004-5999".into()
}

impl MulticastSection {
    /// The group range: `addresses`, or the SAT>IP range of DEVICE ID `device_id`.
    pub fn address_range(
        &self,
        device_id: u8,
    ) -> Result<(std::net::Ipv4Addr, std::net::Ipv4Addr), String> {
        if self.addresses.trim().is_empty() {
            Ok(gstdvb2ip::proto::satip::device_multicast_range(device_id))
        } else {
            gstdvb2ip::proto::satip::parse_multicast_range(&self.addresses)
                .map_err(|e| e.to_string())
        }
    }

    /// The port range `ports` (first even, at least one RTP/RTCP pair).
    pub fn port_range(&self) -> Result<(u16, u16), String> {
        let (a, b) = self
            .ports
            .split_once('-')
            .and_then(|(a, b)| Some((a.trim().parse::<u16>().ok()?, b.trim().parse::<u16>().ok()?)))
            .ok_or_else(|| format!("{:?} is not FIRST-LAST", self.ports))?;
        if a == 0 || b <= a {
            return Err(format!("{:?} needs 0 < FIRST < LAST", self.ports));
        }
        Ok((a, b))
    }

    fn check(&self, device_id: u8) -> Result<(), (&'static str, String)> {
        if self.ttl == 0 || self.ttl > self.max_ttl {
            return Err((
                "ttl",
                format!(
                    "multicast.ttl {} must be 1..=max_ttl ({})",
                    self.ttl, self.max_ttl
                ),
            ));
        }
        self.address_range(device_id)
            .map_err(|e| ("addresses", format!("multicast.addresses: {e}")))?;
        self.port_range()
            .map_err(|e| ("ports", format!("multicast.ports: {e}")))?;
        Ok(())
    }
}

/// Why the SSDP `LOCATION` (`http://<address of an announced interface>:<http_port>/desc.xml`)
/// would name an address the HTTP server, bound to `bind`, does not listen on; `None` when it
/// can be reached (or discovery is off). Loopback addresses exist only on `lo`, so a loopback
/// `bind` with another interface, or another `bind` with `lo`, never works. (A specific LAN
/// address is checked against the interface's real addresses at start-up.)
pub fn unreachable_location(
    bind: std::net::IpAddr,
    ssdp: &SsdpSection,
    http_port: u16,
) -> Option<String> {
    if !ssdp.enabled || bind.is_unspecified() {
        return None;
    }
    let other = ssdp.interfaces.iter().find(|i| {
        let lo = i.as_str() == "lo";
        bind.is_loopback() != lo
    })?;
    Some(format!(
        "server.bind {bind} but [ssdp] interfaces announces {other:?}: its LOCATION \
         http://<{other} address>:{http_port}/desc.xml would name an address where nothing \
         listens. Set server.bind = \"0.0.0.0\" (or an address of {other:?}), or announce on \
         {} only",
        if bind.is_loopback() {
            "[\"lo\"]"
        } else {
            "the interface holding that address"
        }
    ))
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
    #[serde(default)]
    multicast: MulticastSection,
    #[serde(default)]
    vod: crate::vod::config::VodSection,
    #[serde(default)]
    scan: crate::scan::config::ScanSection,
    #[serde(default)]
    http: crate::http::limits::HttpSection,
    #[serde(default)]
    relay: Vec<crate::relay::config::RelaySection>,
    #[serde(default)]
    satip_server: Vec<crate::remote_tuners::config::SatipServerSection>,
    #[serde(default)]
    publish: Vec<crate::publish::config::PublishSection>,
    #[serde(default)]
    push: Vec<crate::publish::config::PushSection>,
    #[serde(default)]
    ui: crate::ui::config::UiSection,
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
    pub multicast: MulticastSection,
    pub vod: crate::vod::config::VodSection,
    /// `[scan]`: channel scanning (src/scan/config.rs).
    pub scan: crate::scan::config::ScanSection,
    /// `[http]`: the HTTP server's limits.
    pub http: crate::http::limits::HttpSection,
    /// `[[relay]]`: streams of other servers relayed on demand (src/relay/config.rs).
    pub relay: Vec<crate::relay::config::RelaySection>,
    /// `[[satip_server]]`: remote SAT>IP servers lending their tuners (src/remote_tuners).
    pub satip_server: Vec<crate::remote_tuners::config::SatipServerSection>,
    /// `[[publish]]` mounts and `[[push]]`es (src/publish/config.rs).
    pub publish: Vec<crate::publish::config::PublishSection>,
    pub push: Vec<crate::publish::config::PushSection>,
    /// `[ui]`: the web UI's administrator (src/ui/config.rs).
    pub ui: crate::ui::config::UiSection,
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
        if let Err((name, message)) = crate::channels::check_css(
            part.channel
                .iter()
                .map(|c| (c.name.as_str(), c.css.as_ref())),
        ) {
            let line = text
                .lines()
                .position(|l| l.contains(&format!("\"{name}\"")))
                .map(|i| i + 1);
            return Err(ConfigError {
                file: file.into(),
                line,
                message,
            });
        }
        // server.bind must be an address, and one the announced LOCATIONs can reach.
        let bind_error = match part.server.bind.parse::<std::net::IpAddr>() {
            Err(_) => Some(format!(
                "server.bind {:?} is not an IP address",
                part.server.bind
            )),
            Ok(b) => unreachable_location(b, &part.ssdp, part.server.http_port),
        };
        if let Some(message) = bind_error {
            let line = text
                .lines()
                .position(|l| l.trim_start().starts_with("bind"))
                .map(|i| i + 1);
            return Err(ConfigError {
                file: file.into(),
                line,
                message,
            });
        }
        if let Err((key, message)) = part.multicast.check(part.ssdp.device_id) {
            let in_section = text
                .lines()
                .position(|l| l.trim() == "[multicast]")
                .unwrap_or(0);
            let line = text
                .lines()
                .enumerate()
                .skip(in_section)
                .find(|(_, l)| l.trim_start().starts_with(key))
                .map(|(i, _)| i + 1);
            return Err(ConfigError {
                file: file.into(),
                line,
                message,
            });
        }
        if let Err((root, message)) = part.vod.check() {
            let line = crate::vod::config::VodSection::line_of(text, root);
            return Err(ConfigError {
                file: file.into(),
                line,
                message,
            });
        }
        if let Err((line, message)) = crate::relay::config::check_all(&part.relay, text) {
            return Err(ConfigError {
                file: file.into(),
                line,
                message,
            });
        }
        if let Err((line, message)) =
            crate::remote_tuners::config::check_all(&part.satip_server, text)
                .and_then(|()| crate::publish::config::check_all(&part.publish, &part.push, text))
        {
            return Err(ConfigError {
                file: file.into(),
                line,
                message,
            });
        }
        if let Err(message) = part.ui.check() {
            let line = crate::ui::config::UiSection::line_of(text);
            return Err(ConfigError {
                file: file.into(),
                line,
                message,
            });
        }
        Ok(Self {
            server: part.server,
            channel: part.channel,
            ssdp: part.ssdp,
            multicast: part.multicast,
            vod: part.vod,
            scan: part.scan,
            http: part.http,
            relay: part.relay,
            satip_server: part.satip_server,
            publish: part.publish,
            push: part.push,
            ui: part.ui,
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

    #[test]
    fn location_must_be_reachable_from_bind() {
        let e = Config::parse(
            "x.toml",
            "[server]\nbind = \"127.0.0.1\"\n[ssdp]\ninterfaces = [\"eth0\"]\n",
        )
        .unwrap_err();
        assert_eq!(e.line, Some(2), "{e}");
        let m = e.to_string();
        assert!(m.starts_with("x.toml:2:"), "{m}");
        assert!(m.contains("\"eth0\"") && m.contains("0.0.0.0"), "{m}");
        let e = Config::parse(
            "x.toml",
            "[server]\nbind = \"10.0.0.2\"\n[ssdp]\ninterfaces = [\"eth0\", \"lo\"]\n",
        )
        .unwrap_err();
        assert!(e.to_string().contains("\"lo\""), "{e}");
        for ok in [
            "[server]\nbind = \"0.0.0.0\"\n[ssdp]\ninterfaces = [\"eth0\"]\n",
            "[server]\nbind = \"10.0.0.2\"\n[ssdp]\ninterfaces = [\"eth0\"]\n",
            "[server]\nbind = \"127.0.0.1\"\n[ssdp]\ninterfaces = [\"lo\"]\n",
            "[server]\nbind = \"127.0.0.1\"\n[ssdp]\nenabled = false\ninterfaces = [\"eth0\"]\n",
        ] {
            assert!(Config::parse("x.toml", ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn server_limits_and_multicast_section() {
        let c = Config::embedded();
        assert_eq!(c.server.max_sessions, 64);
        assert_eq!(c.multicast.ttl, 1);
        assert_eq!(
            c.multicast.address_range(7).unwrap(),
            (
                std::net::Ipv4Addr::new(239, 7, 0, 0),
                std::net::Ipv4Addr::new(239, 7, 254, 254)
            )
        );
        let c = Config::parse(
            "x.toml",
            "[server]\nmax_sessions = 2\n[multicast]\nttl = 3\naddresses = \"239.9.0.1-239.9.0.9\"\nports = \"6000-6099\"\n",
        )
        .unwrap();
        assert_eq!(c.server.max_sessions, 2);
        assert_eq!(c.multicast.port_range().unwrap(), (6000, 6099));
        let e = Config::parse(
            "x.toml",
            "[multicast]\nttl = 1\naddresses = \"10.0.0.1-10.0.0.2\"\n",
        )
        .unwrap_err();
        assert_eq!(e.line, Some(3), "{e}");
        let e = Config::parse("x.toml", "[multicast]\nttl = 0\n").unwrap_err();
        assert_eq!(e.line, Some(2), "{e}");
    }
}
