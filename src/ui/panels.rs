//! The UI's views of the other parts of the server: the VOD library (`GET /api/vod`), the
//! CSS channels (`GET /api/css`, [`super::css`]), and the relays, recordings and scans the
//! live updates carry ([`super::Snapshot`]).

use std::collections::HashMap;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use serde::Serialize;

use gstdvb2ip::proto::clock::pcr_diff;
use gstdvb2ip::proto::ts::Pcr;

/// One file of the VOD library as `GET /api/vod` lists it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct VodFile {
    /// Path relative to its root (`/`-separated).
    pub path: String,
    /// Index of its `[vod] roots` entry.
    pub root: usize,
    pub size_bytes: u64,
    /// From the first and last PCR of a TS file (`None`: not a TS, or no PCR near its ends).
    pub duration_s: Option<f64>,
    /// `/vod/<path>` percent-encoded (HTTP, with ranges); the same path on the RTSP port.
    pub url: String,
    /// The browser player's page of a TS file (`/play/vod~<hex path>`, src/play).
    pub play_url: Option<String>,
}

/// A relay as the live updates carry it: its report and its browser player's page.
#[derive(Debug, Clone, Serialize)]
pub struct UiRelay {
    #[serde(flatten)]
    pub status: crate::relay::RelayStatus,
    /// `/play/relay~<name>`.
    pub play_url: String,
}

/// The relays of `relays` with their players.
pub fn relays(relays: &crate::relay::Relays) -> Vec<UiRelay> {
    relays
        .status()
        .into_iter()
        .map(|status| UiRelay {
            play_url: format!(
                "/play/{}{}",
                crate::play::RELAY_PREFIX,
                crate::vod::path::encode_path(&status.name)
            ),
            status,
        })
        .collect()
}

/// Bytes read at each end of a file for its duration.
const PCR_PROBE_BYTES: usize = 188 * 4000;

/// The first PCR (27 MHz) of the first PCR PID in `data` (whole TS packets, synced at 0),
/// or the last one when `last`.
fn pcr_in(data: &[u8], pid: Option<u16>, last: bool) -> Option<(u16, u64)> {
    let start = data.iter().take(188).position(|b| *b == 0x47)?;
    let packets = data[start..].chunks_exact(188).filter(|p| p[0] == 0x47);
    let mut found = None;
    for p in packets {
        let this = (u16::from(p[1] & 0x1F) << 8) | u16::from(p[2]);
        let has_af = p[3] & 0x20 != 0;
        if !has_af || p[4] < 7 || p[5] & 0x10 == 0 || pid.is_some_and(|q| q != this) {
            continue;
        }
        let Some(pcr) = Pcr::parse(&p[6..12]) else {
            continue;
        };
        found = Some((this, pcr.to_27mhz()));
        if !last {
            break;
        }
    }
    found
}

/// A TS file's duration from the PCRs near its start and its end (reads at most twice
/// [`PCR_PROBE_BYTES`]).
pub fn ts_duration(path: &Path) -> Option<f64> {
    let mut f = std::fs::File::open(path).ok()?;
    let size = f.metadata().ok()?.len();
    let mut head = vec![0u8; PCR_PROBE_BYTES.min(size as usize)];
    f.read_exact(&mut head).ok()?;
    let (pid, first) = pcr_in(&head, None, false)?;
    let tail_len = PCR_PROBE_BYTES.min(size as usize);
    f.seek(SeekFrom::Start(size - tail_len as u64)).ok()?;
    let mut tail = vec![0u8; tail_len];
    f.read_exact(&mut tail).ok()?;
    let (_, last) = pcr_in(&tail, Some(pid), true)?;
    let ticks = pcr_diff(last, first);
    (ticks >= 0).then(|| (ticks as f64 / 27_000_000.0 * 10.0).round() / 10.0)
}

/// A file as its duration is cached: path, size, modification time.
type FileKey = (PathBuf, u64, Option<SystemTime>);

/// How long a listing of the library is reused (the live updates read its size).
const LIBRARY_TTL: Duration = Duration::from_secs(5);

/// The library listing and file durations, cached: durations by (path, size, mtime), the
/// listing for [`LIBRARY_TTL`].
#[derive(Default)]
pub struct Library {
    listed: Mutex<Option<(Instant, Arc<Vec<VodFile>>)>>,
    durations: Mutex<HashMap<FileKey, Option<f64>>>,
}

impl Library {
    /// The files under `roots` (blocking file-system work: call off the async workers).
    pub fn list(&self, roots: &[PathBuf]) -> Arc<Vec<VodFile>> {
        if let Some((at, l)) = self.listed.lock().unwrap().as_ref() {
            if at.elapsed() < LIBRARY_TTL {
                return l.clone();
            }
        }
        let entries = crate::vod::library::list(roots);
        let mut durations = self.durations.lock().unwrap();
        let mut keep = HashMap::new();
        let files: Vec<VodFile> = entries
            .into_iter()
            .map(|e| {
                let full = roots[e.root].join(&e.relative);
                let mtime = std::fs::metadata(&full)
                    .ok()
                    .and_then(|m| m.modified().ok());
                let key = (full.clone(), e.size, mtime);
                let is_ts = crate::vod::library::content_type(&e.relative) == "video/mp2t";
                let duration = match durations.get(&key) {
                    Some(d) => *d,
                    None => is_ts.then(|| ts_duration(&full)).flatten(),
                };
                keep.insert(key, duration);
                let enc = crate::vod::path::encode_path(&e.relative);
                VodFile {
                    url: format!("/vod/{enc}"),
                    play_url: is_ts
                        .then(|| format!("/play/{}", crate::play::vod_slug(&e.relative))),
                    path: e.relative,
                    root: e.root,
                    size_bytes: e.size,
                    duration_s: duration,
                }
            })
            .collect();
        *durations = keep;
        drop(durations);
        let files = Arc::new(files);
        *self.listed.lock().unwrap() = Some((Instant::now(), files.clone()));
        files
    }

    /// Forgets the listing (a recording ended: a new file).
    pub fn invalidate(&self) {
        *self.listed.lock().unwrap() = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packet(pid: u16, pcr_base: Option<u64>) -> [u8; 188] {
        let mut p = [0xFFu8; 188];
        p[0] = 0x47;
        p[1] = (pid >> 8) as u8 & 0x1F;
        p[2] = pid as u8;
        match pcr_base {
            Some(base) => {
                p[3] = 0x30;
                p[4] = 7;
                p[5] = 0x10;
                p[6..12].copy_from_slice(&Pcr { base, extension: 0 }.encode());
            }
            None => p[3] = 0x10,
        }
        p
    }

    #[test]
    fn duration_from_first_and_last_pcr() {
        let dir = std::env::temp_dir().join(format!("dvb2ip-ui-pcr-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("a.ts");
        let mut data = Vec::new();
        // 12.5 s of PCRs on PID 256 every 100 ms, another PID's PCR ignored, payload between.
        for i in 0..=125u64 {
            data.extend_from_slice(&packet(256, Some(1_000 + i * 9_000)));
            data.extend_from_slice(&packet(300, Some(99_999_999)));
            for _ in 0..50 {
                data.extend_from_slice(&packet(257, None));
            }
        }
        std::fs::write(&f, &data).unwrap();
        assert_eq!(ts_duration(&f), Some(12.5));
        std::fs::write(&f, b"not a transport stream").unwrap();
        assert_eq!(ts_duration(&f), None);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
