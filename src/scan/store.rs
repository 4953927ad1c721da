//! The channel database file in the state directory (`channels.json`), replaced atomically:
//! written to a temporary file in the same directory, fsynced, renamed over the old one, and
//! the directory fsynced (digest `dvb-scan.md` §9.7 rule 7). A crash leaves either the old or
//! the new file, never a mix; a corrupt file is an error naming it.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use gstdvb2ip::proto::scan::db::ChannelDb;

/// File name of the database in the state directory.
pub const DB_FILE: &str = "channels.json";

/// Where a channel database lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DbStore {
    path: PathBuf,
}

impl DbStore {
    /// The database of state directory `dir`.
    pub fn in_dir(dir: &Path) -> DbStore {
        DbStore {
            path: dir.join(DB_FILE),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The stored database; an empty one when there is no file yet.
    pub fn load(&self) -> anyhow::Result<ChannelDb> {
        let bytes = match std::fs::read(&self.path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(ChannelDb::new()),
            Err(e) => {
                return Err(e).with_context(|| format!("reading {}", self.path.display()));
            }
        };
        ChannelDb::from_bytes(&bytes).map_err(|e| {
            anyhow::anyhow!(
                "{}: not a valid channel database ({e}); move it away to start afresh",
                self.path.display()
            )
        })
    }

    /// Replaces the stored database atomically.
    pub fn save(&self, db: &ChannelDb) -> anyhow::Result<()> {
        let dir = self
            .path
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir)
            .with_context(|| format!("creating state directory {}", dir.display()))?;
        let tmp = dir.join(format!(".{DB_FILE}.{}.tmp", std::process::id()));
        let write = || -> std::io::Result<()> {
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(&db.to_bytes())?;
            f.sync_all()?;
            drop(f);
            std::fs::rename(&tmp, &self.path)?;
            std::fs::File::open(dir)?.sync_all()
        };
        write().map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            anyhow::anyhow!("writing {}: {e}", self.path.display())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn save_load_and_corrupt_file_named() {
        let dir = std::env::temp_dir().join(format!("dvb2ip-store-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let s = DbStore::in_dir(&dir.join("state"));
        assert!(s.load().unwrap().is_empty(), "no file: empty");
        let db = ChannelDb::new();
        s.save(&db).unwrap();
        assert_eq!(s.load().unwrap(), db);
        let leftovers: Vec<_> = std::fs::read_dir(dir.join("state"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(leftovers, vec![std::ffi::OsString::from(DB_FILE)]);
        std::fs::write(s.path(), b"{\"version\": 1, \"muxes\": [").unwrap();
        let e = s.load().unwrap_err().to_string();
        assert!(e.contains(&s.path().display().to_string()), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
