//! SSDP/UPnP discovery (SAT>IP digest §8).
//!
//! * `message`: GStreamer-free message building/parsing and the DEVICE ID state machine (in
//!   the `dvb2ip-proto` crate, re-exported here).
//! * `advertiser`: the tokio task on UDP 1900 (NOTIFY, M-SEARCH answers, DEVICE ID defence,
//!   interface tracking).
//! * `description`: axum routes for the device description, the M3U channel list and icons,
//!   served by the launcher's HTTP server (`crate::http::server`), which runs with or
//!   without SSDP.
//!
//! * `discovery`: with `[ssdp] discover_servers`, other SAT>IP servers found over SSDP lend
//!   their tuners to the pool.
//!
//! [`spawn`] starts the advertiser on the launcher's runtime; `serve` calls it once, after the
//! HTTP server is up. The returned [`Ssdp`] handle sends the byebye set when dropped.
//!
//! Loopback (the default interface) carries multicast only after
//! `ip link set lo multicast on` (and, for clients that do not pin the interface,
//! `ip route add 239.255.255.250/32 dev lo`); without it the announcements fail with a logged
//! error and nothing is sent elsewhere.

pub mod advertiser;
pub mod description;
pub mod discovery;
/// The GStreamer-free SSDP messages, from the `dvb2ip-proto` crate.
pub use dvb2ip_proto::ssdp::message;

use std::io;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use serde::{Deserialize, Serialize};

use crate::config::Config;

/// What persists across restarts in `<state_dir>/ssdp.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PersistentState {
    /// Device UUID (`8-4-4-4-12`), fixed forever.
    pub uuid: String,
    /// Last `BOOTID.UPNP.ORG` used.
    pub boot_id: u32,
    /// Last DEVICE ID that was settled (or configured, before the first negotiation).
    pub device_id: u8,
}

/// The state file.
#[derive(Debug, Clone)]
pub struct StateStore {
    path: PathBuf,
}

impl StateStore {
    pub fn new(dir: &Path) -> Self {
        StateStore {
            path: dir.join("ssdp.json"),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The configured directory, or `$DVB2IP_STATE_DIR`, `$XDG_STATE_HOME/dvb2ip`,
    /// `~/.local/state/dvb2ip`.
    pub fn resolve_dir(configured: &str) -> PathBuf {
        if !configured.is_empty() {
            return PathBuf::from(configured);
        }
        let env = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty());
        if let Some(d) = env("DVB2IP_STATE_DIR") {
            return PathBuf::from(d);
        }
        if let Some(d) = env("XDG_STATE_HOME") {
            return PathBuf::from(d).join("dvb2ip");
        }
        let home = env("HOME")
            .map(PathBuf::from)
            .unwrap_or_else(std::env::temp_dir);
        home.join(".local/state/dvb2ip")
    }

    /// The stored state; `Ok(None)` when there is none yet. A corrupt file is an error.
    pub fn load(&self) -> io::Result<Option<PersistentState>> {
        let text = match std::fs::read_to_string(&self.path) {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let s: PersistentState = serde_json::from_str(&text).map_err(|e| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{}: {e}", self.path.display()),
            )
        })?;
        if !message::is_valid_uuid(&s.uuid) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{}: bad uuid {:?}", self.path.display(), s.uuid),
            ));
        }
        Ok(Some(s))
    }

    /// Writes atomically (temporary file, then rename).
    pub fn save(&self, s: &PersistentState) -> io::Result<()> {
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let tmp = self.path.with_extension("json.tmp");
        let text = serde_json::to_string_pretty(s).map_err(io::Error::other)?;
        std::fs::write(&tmp, text)?;
        std::fs::rename(&tmp, &self.path)
    }

    /// Start-up: load (or create with a fresh UUID and `initial_device_id`), increase BOOTID,
    /// store, and return the state to use.
    pub fn boot(&self, initial_device_id: u8) -> io::Result<PersistentState> {
        let mut s = self.load()?.unwrap_or_else(|| PersistentState {
            uuid: random_uuid(),
            boot_id: 0,
            device_id: initial_device_id,
        });
        s.boot_id = message::next_boot_id(s.boot_id);
        self.save(&s)?;
        Ok(s)
    }
}

/// `count` random bytes from the kernel (falls back to time and pid if /dev/urandom fails).
pub(crate) fn random_bytes<const N: usize>() -> [u8; N] {
    use std::io::Read;
    let mut b = [0u8; N];
    let ok = std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut b))
        .is_ok();
    if !ok {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0)
            ^ u128::from(std::process::id()) << 64;
        for (i, x) in b.iter_mut().enumerate() {
            *x = (t >> ((i % 16) * 8)) as u8 ^ (i as u8).wrapping_mul(151);
        }
    }
    b
}

/// A random (version 4) UUID in `8-4-4-4-12` form.
pub fn random_uuid() -> String {
    let mut b: [u8; 16] = random_bytes();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// `SERVER` / `USER-AGENT`: `Linux/<release> UPnP/1.1 dvb2ip/<version>`.
pub fn server_string() -> String {
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .ok()
        .and_then(|r| r.split_whitespace().next().map(str::to_owned))
        .filter(|r| !r.is_empty())
        .unwrap_or_else(|| "1.0".to_owned());
    format!(
        "Linux/{release} UPnP/1.1 dvb2ip/{}",
        env!("CARGO_PKG_VERSION")
    )
}

/// The DEVICE ID to start with: the stored (last settled) one, else `[ssdp] device_id`. The
/// RTSP server takes its multicast range from it before discovery starts; a missing or
/// unreadable state file gives the configured id ([`spawn`] reports a corrupt one).
pub fn initial_device_id(cfg: &Config) -> u8 {
    if !cfg.ssdp.enabled {
        return cfg.ssdp.device_id;
    }
    StateStore::new(&StateStore::resolve_dir(&cfg.ssdp.state_dir))
        .load()
        .ok()
        .flatten()
        .map_or(cfg.ssdp.device_id, |s| s.device_id)
}

/// Announced interface addresses an HTTP server bound to `bind` does not listen on.
pub fn uncovered_locations<'a>(
    bind: IpAddr,
    ifaces: impl IntoIterator<Item = &'a advertiser::IfInfo>,
) -> Vec<(String, std::net::Ipv4Addr)> {
    if bind.is_unspecified() {
        return Vec::new();
    }
    ifaces
        .into_iter()
        .flat_map(|i| i.addrs.iter().map(move |a| (i.name.clone(), a.addr)))
        .filter(|(_, a)| IpAddr::V4(*a) != bind)
        .collect()
}

/// Who this server is on the network: the identity SSDP announces and the description shows.
#[derive(Debug, Clone)]
pub struct Identity {
    /// UUID, BOOTID and DEVICE ID to start with.
    pub state: PersistentState,
    /// Where they persist (`None` with SSDP off: nothing is written then).
    pub store: Option<StateStore>,
}

impl Identity {
    /// With SSDP on: the stored identity (created on first start) with the next BOOTID, saved.
    /// With SSDP off: the stored UUID when there is one, else a fresh one for this run, and
    /// the configured DEVICE ID; nothing is written. A corrupt state file is an error.
    pub fn load(cfg: &Config) -> anyhow::Result<Identity> {
        let sc = &cfg.ssdp;
        let store = StateStore::new(&StateStore::resolve_dir(&sc.state_dir));
        if !sc.enabled {
            let uuid = store
                .load()
                .ok()
                .flatten()
                .map_or_else(random_uuid, |s| s.uuid);
            return Ok(Identity {
                state: PersistentState {
                    uuid,
                    boot_id: 0,
                    device_id: sc.device_id,
                },
                store: None,
            });
        }
        let state = store
            .boot(sc.device_id)
            .with_context(|| format!("SSDP state file {}", store.path().display()))?;
        Ok(Identity {
            state,
            store: Some(store),
        })
    }
}

/// Checks, before anything starts, that every `LOCATION` SSDP would announce names an address
/// the HTTP server listens on: a refusal when the configuration cannot work, a warning per
/// interface address left out. Nothing to check with SSDP off.
pub fn check_locations(cfg: &Config, bind: IpAddr) -> anyhow::Result<()> {
    let sc = &cfg.ssdp;
    if !sc.enabled {
        return Ok(());
    }
    if let Some(m) = crate::config::unreachable_location(bind, sc, cfg.server.http_port) {
        anyhow::bail!("{m}");
    }
    if let Ok(ifaces) = advertiser::scan_interfaces(&sc.interfaces) {
        for (name, addr) in uncovered_locations(bind, ifaces.values()) {
            eprintln!(
                "dvb2ip: ssdp: warning: {name} has {addr}, but HTTP listens on {bind} only: \
                 LOCATION http://{addr}:{}{} will not answer (set server.bind = \"0.0.0.0\")",
                cfg.server.http_port,
                description::DESC_PATH
            );
        }
    }
    Ok(())
}

/// Running discovery: dropping it sends byebye.
pub struct Ssdp {
    shutdown: Option<tokio::sync::watch::Sender<bool>>,
    done: Option<std::sync::mpsc::Receiver<()>>,
    /// Where identity and ids persist.
    pub state_file: Option<PathBuf>,
}

impl Ssdp {
    /// Signals shutdown and waits (bounded) for the byebye set to go out.
    pub fn stop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(true);
        }
        if let Some(rx) = self.done.take() {
            let _ = rx.recv_timeout(Duration::from_secs(3));
        }
    }
}

impl Drop for Ssdp {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Starts the SSDP advertiser on `rt`, announcing the description the HTTP server serves on
/// `http_port` (its CONFIGID the current value of `config_ids`; each change is announced)
/// under `identity`; each DEVICE ID discovery settles
/// on goes to `settled`. With SSDP off, nothing starts. Call after `serve::init` (X_SATIPCAP
/// reads the tuner pool). Bind errors are returned, never panicked on.
pub fn spawn(
    rt: &tokio::runtime::Runtime,
    cfg: &Config,
    identity: &Identity,
    http_port: u16,
    config_ids: tokio::sync::watch::Receiver<u32>,
    settled: tokio::sync::watch::Sender<u8>,
) -> anyhow::Result<Ssdp> {
    let sc = &cfg.ssdp;
    let Some(store) = identity.store.clone().filter(|_| sc.enabled) else {
        return Ok(Ssdp {
            shutdown: None,
            done: None,
            state_file: None,
        });
    };
    let state = identity.state.clone();
    let _guard = rt.enter();
    let socket = advertiser::bind_socket(message::SSDP_PORT)
        .context("cannot listen for SSDP on UDP port 1900")?;
    let first_config_id = *config_ids.borrow();
    let acfg = advertiser::SsdpConfig {
        interfaces: sc.interfaces.clone(),
        port: message::SSDP_PORT,
        http_port,
        desc_path: description::DESC_PATH.to_owned(),
        server: server_string(),
        max_age: sc.max_age.max(4),
        config_id: first_config_id,
        config_ids: Some(config_ids),
        state: state.clone(),
        store: Some(store.clone()),
        poll_interval: Duration::from_secs(u64::from(sc.interface_poll_secs.max(1))),
        max_replies_per_sec: sc.max_replies_per_sec.max(1),
        settled_id: Some(settled),
    };
    let (tx, rx) = tokio::sync::watch::channel(false);
    let (ssdp_done_tx, ssdp_done_rx) = std::sync::mpsc::channel();
    rt.spawn(async move {
        if let Err(e) = advertiser::run_with_socket(acfg, socket, rx).await {
            eprintln!("dvb2ip: ssdp: advertiser stopped: {e}");
        }
        let _ = ssdp_done_tx.send(());
    });
    eprintln!(
        "dvb2ip: ssdp: uuid {} boot {} on {:?}; description http://<interface address>:{http_port}{} (state {})",
        state.uuid,
        state.boot_id,
        sc.interfaces,
        description::DESC_PATH,
        store.path().display()
    );
    Ok(Ssdp {
        shutdown: Some(tx),
        done: Some(ssdp_done_rx),
        state_file: Some(store.path().to_owned()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuid_form() {
        let u = random_uuid();
        assert!(message::is_valid_uuid(&u), "{u}");
        assert_eq!(&u[14..15], "4");
        assert_ne!(random_uuid(), u);
    }

    #[test]
    fn state_persists_and_boot_id_grows() {
        let dir = std::env::temp_dir().join(format!("dvb2ip-ssdp-state-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let store = StateStore::new(&dir);
        assert_eq!(store.load().unwrap(), None);
        let a = store.boot(7).unwrap();
        assert_eq!(a.device_id, 7);
        assert_eq!(a.boot_id, 1);
        let b = store.boot(9).unwrap();
        assert_eq!(b.uuid, a.uuid, "UUID stable across restarts");
        assert_eq!(b.device_id, 7, "stored id wins over the configured one");
        assert!(b.boot_id > a.boot_id);
        std::fs::write(store.path(), "{").unwrap();
        assert!(
            store.boot(1).is_err(),
            "corrupt state is reported, not replaced"
        );
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(
            StateStore::resolve_dir("/x/y"),
            PathBuf::from("/x/y"),
            "configured dir is used as is"
        );
    }

    #[test]
    fn locations_not_covered_by_bind() {
        let eth0 = advertiser::IfInfo {
            name: "eth0".into(),
            index: 2,
            addrs: vec![
                advertiser::IfAddr {
                    addr: "10.0.0.2".parse().unwrap(),
                    prefix: 24,
                },
                advertiser::IfAddr {
                    addr: "10.0.1.2".parse().unwrap(),
                    prefix: 24,
                },
            ],
        };
        assert!(uncovered_locations("0.0.0.0".parse().unwrap(), [&eth0]).is_empty());
        assert_eq!(
            uncovered_locations("10.0.0.2".parse().unwrap(), [&eth0]),
            vec![("eth0".to_owned(), "10.0.1.2".parse().unwrap())]
        );
    }

    #[test]
    fn server_header_form() {
        let s = server_string();
        assert!(
            s.starts_with("Linux/") && s.contains(" UPnP/1.1 dvb2ip/"),
            "{s}"
        );
    }
}
