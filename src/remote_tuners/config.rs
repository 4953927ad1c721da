//! `[[satip_server]]`: another SAT>IP server lending its tuners to our pool (issue 14 item 3).
//!
//! ```toml
//! [[satip_server]]
//! url = "rtsp://tuners.lan:554/"                    # its RTSP address
//! frontends = "DVBS2-2,DVBT2-1"                     # its tuners, as X_SATIPCAP lists them, or:
//! # description = "http://tuners.lan:8875/desc.xml" # its UPnP description (read for X_SATIPCAP)
//! ```
//!
//! Either `frontends` or `description` is needed. A bad value is a configuration error naming
//! the file and line.

use serde::Deserialize;

use gstdvb2ip::tuners::satip_remote::RemoteServer;

/// One `[[satip_server]]` entry as written.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct SatipServerSection {
    pub url: String,
    #[serde(default)]
    pub frontends: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
}

impl SatipServerSection {
    /// The server as the pool sees it.
    pub fn server(&self) -> Result<RemoteServer, String> {
        RemoteServer::new(
            &self.url,
            self.frontends.as_deref(),
            self.description.as_deref(),
        )
    }
}

/// Checks every entry: (line, message) of the first bad one.
pub fn check_all(list: &[SatipServerSection], text: &str) -> Result<(), (Option<usize>, String)> {
    let mut urls = std::collections::HashSet::new();
    for (i, s) in list.iter().enumerate() {
        let server = s
            .server()
            .map_err(|e| (line_of(text, i), format!("satip_server: {e}")))?;
        if !urls.insert(server.url.clone()) {
            return Err((
                line_of(text, i),
                format!("satip_server {} listed twice", server.url),
            ));
        }
    }
    Ok(())
}

/// The 1-based line of the `index`-th `[[satip_server]]` header of `text`.
fn line_of(text: &str, index: usize) -> Option<usize> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| l.trim() == "[[satip_server]]")
        .nth(index)
        .map(|(i, _)| i + 1)
}

#[cfg(test)]
mod tests {
    fn parse(text: &str) -> Result<crate::config::Config, gstdvb2ip::tuners::ConfigError> {
        crate::config::Config::parse("t.toml", text)
    }

    #[test]
    fn entries_are_checked() {
        let c =
            parse("[[satip_server]]\nurl = \"rtsp://127.0.0.1:8554/\"\nfrontends = \"DVBT2-2\"\n")
                .unwrap();
        assert_eq!(c.satip_server.len(), 1);
        let e = parse("\n[[satip_server]]\nurl = \"rtsp://127.0.0.1:8554/\"\n").unwrap_err();
        assert_eq!(e.line, Some(2));
        assert!(e.message.contains("frontends"), "{}", e.message);
        let e =
            parse("[[satip_server]]\nurl = \"http://x/\"\nfrontends = \"DVBT-1\"\n").unwrap_err();
        assert!(e.message.contains("rtsp://"), "{}", e.message);
        let e = parse(
            "[[satip_server]]\nurl = \"rtsp://x/\"\nfrontends = \"DVBT-1\"\n\
             [[satip_server]]\nurl = \"rtsp://x:554\"\nfrontends = \"DVBT-1\"\n",
        )
        .unwrap_err();
        assert_eq!(e.line, Some(4));
        assert!(e.message.contains("twice"), "{}", e.message);
        let e = parse("[[satip_server]]\nurl = \"rtsp://x/\"\nfronts = 1\n").unwrap_err();
        assert!(e.message.contains("fronts"), "{}", e.message);
    }
}
