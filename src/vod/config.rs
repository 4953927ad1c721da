//! `[vod]`: the folders served as files on demand.
//!
//! ```toml
//! [vod]
//! roots = ["/srv/media", "/home/tv/recordings"]
//! direct = true   # TS files over RTSP as one MP2T stream, no pipeline per session (default)
//! ```
//!
//! No section, or no roots, means VOD is off. Every root must be an absolute path to an existing
//! directory when the configuration is loaded: a missing root is a configuration error naming
//! the file and line (a typo should not silently serve an empty library).

use std::path::{Path, PathBuf};

use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VodSection {
    /// Folders served at `rtsp://HOST/vod/<path>` and `http://HOST:PORT/vod/<path>`, searched
    /// in this order; recordings go to the first.
    #[serde(default)]
    pub roots: Vec<PathBuf>,
    /// MPEG-TS files over RTSP as one MP2T RTP stream on the pipeline-free path
    /// ([`super::rtsp_direct`], the default); `false`: a pipeline per session sending each
    /// elementary stream, as other formats go.
    #[serde(default = "direct_default")]
    pub direct: bool,
    /// Recordings `dvb2ip serve` starts with (`--record <channel>[:seconds]`; not a file key).
    #[serde(skip)]
    pub record_at_start: Vec<super::record::RecordRequest>,
}

fn direct_default() -> bool {
    true
}

impl Default for VodSection {
    fn default() -> Self {
        VodSection {
            roots: Vec::new(),
            direct: direct_default(),
            record_at_start: Vec::new(),
        }
    }
}

impl VodSection {
    /// Whether files on demand are served at all.
    pub fn enabled(&self) -> bool {
        !self.roots.is_empty()
    }

    /// Checks every root; on error, the offending root and why.
    pub fn check(&self) -> Result<(), (&Path, String)> {
        for root in &self.roots {
            if !root.is_absolute() {
                return Err((
                    root,
                    format!("vod.roots: {root:?} must be an absolute path"),
                ));
            }
            match std::fs::metadata(root) {
                Ok(m) if m.is_dir() => {}
                Ok(_) => {
                    return Err((root, format!("vod.roots: {root:?} is not a directory")));
                }
                Err(e) => return Err((root, format!("vod.roots: {root:?}: {e}"))),
            }
        }
        Ok(())
    }

    /// The 1-based line of `root` in the configuration `text` (inside `[vod]`), or of `[vod]`.
    pub fn line_of(text: &str, root: &Path) -> Option<usize> {
        let start = text.lines().position(|l| l.trim() == "[vod]")?;
        let needle = root.to_string_lossy();
        text.lines()
            .enumerate()
            .skip(start)
            .find(|(_, l)| l.contains(needle.as_ref()))
            .map(|(i, _)| i + 1)
            .or(Some(start + 1))
    }
}

#[cfg(test)]
mod tests {
    use crate::config::Config;

    #[test]
    fn no_section_means_off() {
        let c = Config::parse("x.toml", "").unwrap();
        assert!(!c.vod.enabled());
        let c = Config::parse("x.toml", "[vod]\nroots = []\n").unwrap();
        assert!(!c.vod.enabled());
    }

    #[test]
    fn roots_must_exist_and_errors_name_the_line() {
        let dir = std::env::temp_dir();
        let text = format!(
            "[vod]\nroots = [\n  {:?},\n  \"/nonexistent/dvb2ip-vod\",\n]\n",
            dir
        );
        let e = Config::parse("x.toml", &text).unwrap_err();
        assert_eq!(e.line, Some(4), "{e}");
        assert!(e.to_string().contains("/nonexistent/dvb2ip-vod"), "{e}");
        let e = Config::parse("x.toml", "[vod]\nroots = [\"media\"]\n").unwrap_err();
        assert_eq!(e.line, Some(2), "{e}");
        assert!(e.to_string().contains("absolute"), "{e}");
        let e = Config::parse("x.toml", "[vod]\nroots = [\"/etc/hostname\"]\n").unwrap_err();
        assert!(e.to_string().contains("not a directory"), "{e}");
        let e = Config::parse("x.toml", "[vod]\nroot = [\"/\"]\n").unwrap_err();
        assert_eq!(e.line, Some(2), "{e}");
        let c = Config::parse("x.toml", &format!("[vod]\nroots = [{dir:?}]\n")).unwrap();
        assert_eq!(c.vod.roots, vec![dir.clone()]);
        assert!(c.vod.enabled());
        assert!(c.vod.direct, "TS files go the direct path by default");
        let text = format!("[vod]\nroots = [{dir:?}]\ndirect = false\n");
        assert!(!Config::parse("x.toml", &text).unwrap().vod.direct);
    }
}
