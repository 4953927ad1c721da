//! `[[relay]]`: streams of other servers relayed by this one, on demand (issue 14 item 1).
//!
//! ```toml
//! [[relay]]
//! name = "news"                                  # mounted at /relay/news
//! source = "rtsp://tuners.lan:554/ch/news"       # or rtsp://…/?<SAT>IP query>, http://…, udp://group:port
//! # mount = "/relay/news"                        # the default; must lie under /relay/
//! # on_demand = true                             # false: pull from start, always
//! # start_timeout = 10                           # seconds a first reader waits for the upstream
//! # close_after = 10                             # seconds the upstream stays after the last reader
//! ```
//!
//! Only listed relays exist (the list is the administrator's approval). A bad value is a
//! configuration error naming the file and line.

use serde::Deserialize;

/// Where a relay pulls from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Upstream {
    /// RTSP (a mount, or a SAT>IP query URL) with MPEG-TS over RTP (PT 33).
    Rtsp(String),
    /// An HTTP URL answering an MPEG-TS stream.
    Http(String),
    /// A multicast (or unicast) UDP group carrying TS, raw or in RTP.
    Udp { group: std::net::IpAddr, port: u16 },
}

/// One `[[relay]]` entry as written.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RelaySection {
    pub name: String,
    pub source: String,
    /// Default `/relay/<name>`.
    #[serde(default)]
    pub mount: Option<String>,
    #[serde(default = "default_true")]
    pub on_demand: bool,
    /// Seconds.
    #[serde(default = "default_start_timeout")]
    pub start_timeout: f64,
    /// Seconds.
    #[serde(default = "default_close_after")]
    pub close_after: f64,
}

fn default_true() -> bool {
    true
}
fn default_start_timeout() -> f64 {
    10.0
}
fn default_close_after() -> f64 {
    10.0
}

/// Relay mounts lie under this prefix (RTSP and HTTP).
pub const RELAY_PREFIX: &str = "/relay/";

impl RelaySection {
    /// The mount path (`/relay/<name>` unless configured).
    pub fn mount_path(&self) -> String {
        self.mount
            .clone()
            .unwrap_or_else(|| format!("{RELAY_PREFIX}{}", self.name))
    }

    /// The upstream `source` names.
    pub fn upstream(&self) -> Result<Upstream, String> {
        parse_source(&self.source)
    }

    pub fn start_timeout(&self) -> std::time::Duration {
        std::time::Duration::from_secs_f64(self.start_timeout)
    }

    pub fn close_after(&self) -> std::time::Duration {
        std::time::Duration::from_secs_f64(self.close_after)
    }

    /// Checks the entry; on error, the key at fault and why.
    fn check(&self) -> Result<(), (&'static str, String)> {
        let n = &self.name;
        if n.is_empty()
            || !n
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        {
            return Err((
                "name",
                format!("relay name {n:?} must be letters, digits, '-', '_' or '.'"),
            ));
        }
        self.upstream()
            .map_err(|e| ("source", format!("relay {n:?}: source: {e}")))?;
        let mount = self.mount_path();
        let rest = mount.strip_prefix(RELAY_PREFIX).unwrap_or("");
        if rest.is_empty()
            || !rest
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_./".contains(c))
            || rest
                .split('/')
                .any(|s| s.is_empty() || s == "." || s == "..")
        {
            return Err((
                "mount",
                format!(
                    "relay {n:?}: mount {mount:?} must be {RELAY_PREFIX}<name> (letters, digits, '-', '_', '.', '/')"
                ),
            ));
        }
        if !(self.start_timeout.is_finite()
            && self.start_timeout > 0.0
            && self.start_timeout <= 600.0)
        {
            return Err((
                "start_timeout",
                format!(
                    "relay {n:?}: start_timeout {} must be more than 0 and at most 600 seconds",
                    self.start_timeout
                ),
            ));
        }
        if !(self.close_after.is_finite() && self.close_after >= 0.0 && self.close_after <= 86400.0)
        {
            return Err((
                "close_after",
                format!(
                    "relay {n:?}: close_after {} must be 0 to 86400 seconds",
                    self.close_after
                ),
            ));
        }
        Ok(())
    }
}

/// Parses a relay source URL.
pub fn parse_source(s: &str) -> Result<Upstream, String> {
    let (scheme, rest) = s
        .split_once("://")
        .ok_or_else(|| format!("{s:?} is not a URL (rtsp://, http:// or udp://)"))?;
    let authority = rest.split(['/', '?']).next().unwrap_or("");
    if authority.is_empty() {
        return Err(format!("{s:?} names no host"));
    }
    if s.chars()
        .any(|c| c.is_whitespace() || c == '"' || c.is_control())
    {
        return Err(format!("{s:?} holds spaces, quotes or control characters"));
    }
    match scheme.to_ascii_lowercase().as_str() {
        "rtsp" => Ok(Upstream::Rtsp(s.to_string())),
        "http" | "https" => Ok(Upstream::Http(s.to_string())),
        "udp" | "rtp" => {
            if rest.len() != authority.len() && rest != format!("{authority}/") {
                return Err(format!("{s:?}: a udp:// source is udp://group:port only"));
            }
            let addr: std::net::SocketAddr =
                authority.trim_start_matches('@').parse().map_err(|_| {
                    format!("{s:?}: udp:// needs group:port (e.g. udp://239.1.1.1:1234)")
                })?;
            if addr.port() == 0 {
                return Err(format!("{s:?}: port 0"));
            }
            Ok(Upstream::Udp {
                group: addr.ip(),
                port: addr.port(),
            })
        }
        other => Err(format!("{s:?}: scheme {other:?} is not rtsp, http or udp")),
    }
}

/// Checks every entry (and that names and mounts are unique); on error, the line at fault in
/// `text` and the message.
pub fn check_all(relays: &[RelaySection], text: &str) -> Result<(), (Option<usize>, String)> {
    let mut names = std::collections::HashSet::new();
    let mut mounts = std::collections::HashSet::new();
    for (i, r) in relays.iter().enumerate() {
        let fail = |key: &str, msg: String| (line_of(text, i, key), msg);
        r.check().map_err(|(key, msg)| fail(key, msg))?;
        if !names.insert(r.name.clone()) {
            return Err(fail("name", format!("relay {:?} defined twice", r.name)));
        }
        if !mounts.insert(r.mount_path()) {
            return Err(fail(
                "mount",
                format!("relay {:?}: mount {} used twice", r.name, r.mount_path()),
            ));
        }
    }
    Ok(())
}

/// The 1-based line of `key` in the `index`-th `[[relay]]` block of `text`, or of the block's
/// header.
fn line_of(text: &str, index: usize, key: &str) -> Option<usize> {
    let lines: Vec<&str> = text.lines().collect();
    let start = lines
        .iter()
        .enumerate()
        .filter(|(_, l)| l.trim() == "[[relay]]")
        .nth(index)?
        .0;
    let end = lines
        .iter()
        .enumerate()
        .skip(start + 1)
        .find(|(_, l)| l.trim_start().starts_with('['))
        .map_or(lines.len(), |(i, _)| i);
    (start + 1..end)
        .find(|&i| {
            let l = lines[i].trim_start();
            l.strip_prefix(key)
                .is_some_and(|r| r.trim_start().starts_with('='))
        })
        .map(|i| i + 1)
        .or(Some(start + 1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    #[test]
    fn defaults_and_sources() {
        let c = Config::parse(
            "x.toml",
            "[[relay]]\nname = \"a\"\nsource = \"rtsp://10.0.0.1:554/ch/news\"\n\n[[relay]]\nname = \"b\"\nsource = \"udp://239.1.1.1:1234\"\non_demand = false\nstart_timeout = 2.5\nclose_after = 0\n",
        )
        .unwrap();
        assert_eq!(c.relay.len(), 2);
        let a = &c.relay[0];
        assert_eq!(a.mount_path(), "/relay/a");
        assert!(a.on_demand);
        assert_eq!(a.start_timeout().as_secs(), 10);
        assert_eq!(a.close_after().as_secs(), 10);
        let b = &c.relay[1];
        assert_eq!(
            b.upstream().unwrap(),
            Upstream::Udp {
                group: "239.1.1.1".parse().unwrap(),
                port: 1234
            }
        );
        assert!(!b.on_demand);
        assert_eq!(
            parse_source("http://h:8875/?freq=506&msys=dvbt").unwrap(),
            Upstream::Http("http://h:8875/?freq=506&msys=dvbt".into())
        );
    }

    #[test]
    fn bad_values_name_the_line() {
        let e = Config::parse(
            "x.toml",
            "[[relay]]\nname = \"a\"\nsource = \"ftp://h/x\"\n",
        )
        .unwrap_err();
        assert_eq!(e.line, Some(3), "{e}");
        assert!(e.to_string().contains("ftp"), "{e}");
        let e = Config::parse(
            "x.toml",
            "[[relay]]\nname = \"a\"\nsource = \"udp://239.1.1.1\"\n",
        )
        .unwrap_err();
        assert_eq!(e.line, Some(3), "{e}");
        let e = Config::parse(
            "x.toml",
            "[[relay]]\nname = \"a\"\nsource = \"rtsp://h/x\"\nstart_timeout = 0\n",
        )
        .unwrap_err();
        assert_eq!(e.line, Some(4), "{e}");
        let e = Config::parse(
            "x.toml",
            "[[relay]]\nname = \"a\"\nsource = \"rtsp://h/x\"\nmount = \"/live/a\"\n",
        )
        .unwrap_err();
        assert_eq!(e.line, Some(4), "{e}");
        let e = Config::parse(
            "x.toml",
            "[[relay]]\nname = \"a\"\nsource = \"rtsp://h/x\"\n\n[[relay]]\nname = \"a\"\nsource = \"rtsp://h/y\"\n",
        )
        .unwrap_err();
        assert_eq!(e.line, Some(6), "{e}");
        let e = Config::parse(
            "x.toml",
            "[[relay]]\nname = \"a\"\nsource = \"rtsp://h/x\"\nclose = 3\n",
        )
        .unwrap_err();
        assert_eq!(e.line, Some(4), "{e}");
    }
}
