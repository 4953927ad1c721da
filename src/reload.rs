//! `SIGHUP` to `dvb2ip serve --config FILE`: the file is read again and its broadcast part
//! applied to the running tuner pool ([`gstdvb2ip::tuners::Pool::reconfigure`]): emulated
//! adapters join and leave (streams on one that leaves move to another frontend), multiplexes
//! apply from the next tuning; with the server's remote tuners, `[[satip_server]]` entries
//! start, stop and restart as listed. Changes elsewhere (`[server]`, `[ssdp]`, `[[channel]]`,
//! `[emulator] hardware`, …) are reported as needing a restart. A file that does not parse
//! is reported with file and line and changes nothing.

use std::path::{Path, PathBuf};

use gstdvb2ip::tuners::{MembershipChange, Pool};

use crate::config::Config;

/// Top-level keys a reload applies (`satip_server` when the reloader has the server's
/// remote tuners, [`Reloader::with_remote_tuners`]).
const APPLIED: &[&str] = &["adapter", "mux", "emulator"];

/// What one reload did.
#[derive(Debug)]
pub struct Reloaded {
    pub change: MembershipChange,
    /// Parts of the file that changed but apply only at the next start.
    pub need_restart: Vec<String>,
}

/// The reloader of one server: the file and the text it last applied.
#[derive(Debug)]
pub struct Reloader {
    path: PathBuf,
    text: String,
    /// The server's `[[satip_server]]` watches, which a reload applies.
    remote: Option<crate::remote_tuners::RemoteTuners>,
}

impl Reloader {
    /// For `path`, whose current content is what the server started with.
    pub fn new(path: &Path) -> Reloader {
        Reloader {
            path: path.to_owned(),
            text: std::fs::read_to_string(path).unwrap_or_default(),
            remote: None,
        }
    }

    /// Also applies `[[satip_server]]` changes to `remote` (added ones start, removed ones
    /// stop, changed ones restart).
    pub fn with_remote_tuners(mut self, remote: crate::remote_tuners::RemoteTuners) -> Self {
        self.remote = Some(remote);
        self
    }

    /// Reads the file again and applies it to `pool`; the error names file and line.
    pub fn reload(&mut self, pool: &Pool) -> Result<Reloaded, String> {
        let (file, text) =
            gstdvb2ip::tuners::config::read_config_file(&self.path).map_err(|e| e.to_string())?;
        let cfg = Config::parse(&file, &text).map_err(|e| e.to_string())?;
        let mut need_restart = needs_restart(&self.text, &text);
        if let Some(remote) = &self.remote {
            need_restart.retain(|k| k != "[[satip_server]]");
            if let Some(summary) = remote.apply(&cfg) {
                eprintln!("dvb2ip: reload: {file}: {summary}");
            }
        }
        let change = pool.reconfigure(cfg.broadcast);
        // New multiplexes get their content now rather than at their first tuning.
        if let Err(e) = pool.prepare_content() {
            eprintln!("dvb2ip: reload: {file}: {e}");
        }
        self.text = text;
        Ok(Reloaded {
            change,
            need_restart,
        })
    }

    /// [`Reloader::reload`], reported on stderr.
    pub fn reload_and_report(&mut self, pool: &Pool) {
        let file = self.path.display().to_string();
        match self.reload(pool) {
            Ok(r) => {
                eprintln!("dvb2ip: reload: {file}: tuners: {}", r.change);
                if !r.need_restart.is_empty() {
                    eprintln!(
                        "dvb2ip: reload: {file}: changes to {} apply after a restart",
                        r.need_restart.join(", ")
                    );
                }
            }
            Err(e) => eprintln!("dvb2ip: reload: {e}; configuration unchanged"),
        }
    }
}

/// The parts of the configuration that differ between `old` and `new` (both valid) and that a
/// reload does not apply: top-level sections other than adapters and multiplexes, and
/// `[emulator] hardware`.
pub fn needs_restart(old: &str, new: &str) -> Vec<String> {
    let parse = |t: &str| t.parse::<toml::Table>().unwrap_or_default();
    let (old, new) = (parse(old), parse(new));
    let mut keys: Vec<&String> = old.keys().chain(new.keys()).collect();
    keys.sort();
    keys.dedup();
    let mut out = Vec::new();
    for k in keys {
        if APPLIED.contains(&k.as_str()) {
            continue;
        }
        if old.get(k) != new.get(k) {
            out.push(match (old.get(k), new.get(k)) {
                (Some(toml::Value::Array(_)), _) | (_, Some(toml::Value::Array(_))) => {
                    format!("[[{k}]]")
                }
                (Some(toml::Value::Table(_)), _) | (_, Some(toml::Value::Table(_))) => {
                    format!("[{k}]")
                }
                _ => k.clone(),
            });
        }
    }
    let hw = |t: &toml::Table| t.get("emulator").and_then(|e| e.get("hardware")).cloned();
    if hw(&old) != hw(&new) {
        out.push("[emulator] hardware".into());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adapters_and_muxes_apply_other_sections_need_a_restart() {
        let base = "[server]\nrtsp_port = 8554\n\n[emulator]\ncache_dir = \"/a\"\n\n\
                    [[adapter]]\nname = \"A\"\ndelsys = [\"dvb-t\"]\n";
        let fewer = "[server]\nrtsp_port = 8554\n\n[emulator]\ncache_dir = \"/b\"\n";
        assert!(needs_restart(base, fewer).is_empty());
        let other = "[server]\nrtsp_port = 9554\n\n[emulator]\nhardware = \"off\"\n\n\
                     [[channel]]\nname = \"x\"\nquery = \"freq=506\"\n";
        assert_eq!(
            needs_restart(base, other),
            vec![
                "[[channel]]".to_owned(),
                "[server]".to_owned(),
                "[emulator] hardware".to_owned()
            ]
        );
    }

    #[test]
    fn a_broken_file_is_reported_with_its_line_and_changes_nothing() {
        let dir = std::env::temp_dir().join(format!("dvb2ip-reload-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("c.toml");
        let mut cfg = gstdvb2ip::tuners::BroadcastConfig::embedded();
        cfg.emulator.hardware = "off".into();
        let pool = Pool::new(cfg);
        std::fs::write(&f, "[server]\nrtsp_port = 8554\n").unwrap();
        let mut r = Reloader::new(&f);
        std::fs::write(&f, "[server]\nrtsp_port = 8554\n\n[[adapter]]\nname = 3\n").unwrap();
        let e = r.reload(&pool).unwrap_err();
        assert!(e.starts_with(&format!("{}:5:", f.display())), "{e}");
        assert_eq!(pool.frontends().len(), 4);
        assert_eq!(pool.membership_generation(), 0);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
