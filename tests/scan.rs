//! Channel scanning: `dvb2ip scan` (a real child process) over the emulated broadcast, the
//! channel database it leaves in the state directory, its exports read by dvb-format-convert,
//! Ctrl-C, flaky frontends, the K-miss rule with the service that comes and goes, background
//! leases, and the server's scans (scan at start, API, M3U, RTSP mounts, viewers first).

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use dvb2ip::config::Config;
use dvb2ip::core::Core;
use dvb2ip::scan::engine::{self, ScanControl, ScanParams};
use dvb2ip::scan::store::DbStore;
use gstdvb2ip::proto::scan::classify::ServiceClass;
use gstdvb2ip::proto::scan::db::ChannelDb;
use gstdvb2ip::proto::scan::queue::Origin;
use gstdvb2ip::tuners::config::{BroadcastConfig, OnAirConfig, ServiceKind};
use gstdvb2ip::tuners::{FeedSink, LeaseRequest, PidFilter, Pool, TunerStatus};

/// (number, name, provider, class, scrambled) of every channel, by number.
type Listing = Vec<(u32, String, String, ServiceClass, bool)>;

fn listing(db: &ChannelDb) -> Listing {
    db.channels()
        .iter()
        .map(|c| {
            (
                c.service.number,
                c.name(),
                c.service.provider.clone().unwrap_or_default(),
                c.service.class,
                c.service.scrambled,
            )
        })
        .collect()
}

/// What the configuration broadcasts, as a scan must list it.
fn expected(cfg: &BroadcastConfig) -> Listing {
    let mut v: Listing = cfg
        .mux
        .iter()
        .flat_map(|m| m.service.iter())
        .map(|s| {
            (
                u32::from(s.lcn.expect("default services have LCNs")),
                s.name.clone(),
                s.provider.clone(),
                match s.kind {
                    ServiceKind::Tv => ServiceClass::Tv,
                    _ => ServiceClass::Radio,
                },
                s.scrambled,
            )
        })
        .collect();
    v.sort();
    v
}

/// `dvb2ip scan` with `args`; returns its status and stdout.
fn scan_cli(args: &[&str]) -> (std::process::ExitStatus, String) {
    let out = Command::new(common::dvb2ip_bin())
        .arg("scan")
        .args(args)
        .stderr(Stdio::inherit())
        .output()
        .expect("dvb2ip scan runs");
    (
        out.status,
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

fn load(dir: &Path) -> ChannelDb {
    DbStore::in_dir(dir).load().expect("valid database")
}

#[test]
fn scan_of_the_default_configuration_finds_every_service_incl_the_nit_only_mux() {
    let dir = common::temp_dir("scan-default");
    let state = dir.join("state");
    let (status, out) = scan_cli(&["--state-dir", state.to_str().unwrap(), "--progress", "json"]);
    assert!(status.success(), "{status}");
    // JSON lines for machines: every line parses, the last one reports the end.
    let lines: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect();
    let end = lines.last().expect("progress lines");
    assert_eq!(end["event"], "end", "{end}");
    assert_eq!(end["progress"]["state"], "finished", "{end}");
    assert!(lines.iter().any(|l| l["event"] == "mux_done"), "{out}");

    let cfg = BroadcastConfig::embedded();
    let db = load(&state);
    // The pop-up service is on air in the first minute of the scan's own pool.
    assert_eq!(listing(&db), expected(&cfg));
    assert_eq!(db.muxes.len(), cfg.mux.len());
    let nit_only = cfg.mux.iter().find(|m| !m.initial).expect("a NIT-only mux");
    for s in &nit_only.service {
        assert!(
            db.service(
                nit_only.original_network_id,
                nit_only.transport_stream_id,
                s.service_id
            )
            .is_some(),
            "{} of the NIT-only mux",
            s.name
        );
    }
    assert_eq!(
        end["progress"]["services"],
        cfg.mux.iter().map(|m| m.service.len()).sum::<usize>()
    );
    let _ = std::fs::remove_dir_all(&dir);
}

fn dvb_format_convert(args: &[&str]) {
    let out = Command::new("dvb-format-convert")
        .args(args)
        .output()
        .expect("dvb-format-convert (Debian dvb-tools)");
    assert!(
        out.status.success(),
        "dvb-format-convert {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn exports_parse_with_dvb_format_convert() {
    let dir = common::temp_dir("scan-export");
    let state = dir.join("state");
    let s = state.to_str().unwrap();
    let v5 = dir.join("channels.conf");
    let (status, _) = scan_cli(&[
        "--state-dir",
        s,
        "--progress",
        "plain",
        "--export",
        "dvbv5",
        "--output",
        v5.to_str().unwrap(),
    ]);
    assert!(status.success());
    let text = std::fs::read_to_string(&v5).unwrap();
    let entries = text.matches("SERVICE_ID = ").count();
    assert_eq!(entries, load(&state).channels().len());
    // DVBV5 → DVBV5 keeps every entry.
    let back = dir.join("back.conf");
    dvb_format_convert(&[
        "-I",
        "DVBV5",
        "-O",
        "DVBV5",
        v5.to_str().unwrap(),
        back.to_str().unwrap(),
    ]);
    assert_eq!(
        std::fs::read_to_string(&back)
            .unwrap()
            .matches("SERVICE_ID = ")
            .count(),
        entries
    );
    // DVBV5 → VDR, and the terrestrial entries → ZAP.
    let vdr = dir.join("out.vdr");
    dvb_format_convert(&[
        "-I",
        "DVBV5",
        "-O",
        "VDR",
        v5.to_str().unwrap(),
        vdr.to_str().unwrap(),
    ]);
    let terrestrial: String = text
        .split("\n\n")
        .filter(|e| e.contains("DELIVERY_SYSTEM = DVBT"))
        .map(|e| format!("{}\n\n", e.trim_end()))
        .collect();
    let t = dir.join("t.conf");
    std::fs::write(&t, terrestrial).unwrap();
    let zap = dir.join("t.zap");
    dvb_format_convert(&[
        "-I",
        "DVBV5",
        "-O",
        "ZAP",
        "-s",
        "DVBT",
        t.to_str().unwrap(),
        zap.to_str().unwrap(),
    ]);
    // Our own zap export goes back through its reader; the M3U and VDR exports of the same
    // database are well formed.
    for (fmt, check) in [
        ("zap", "dvb2ip News:506000000:"),
        ("vdr", ":T:0:"),
        ("m3u", "#EXTM3U"),
    ] {
        let f = dir.join(format!("export.{fmt}"));
        let (status, _) = scan_cli(&[
            "--state-dir",
            s,
            "--progress",
            "plain",
            "--export",
            fmt,
            "--output",
            f.to_str().unwrap(),
        ]);
        assert!(status.success());
        let out = std::fs::read_to_string(&f).unwrap();
        assert!(out.contains(check), "{fmt}: {out}");
        if fmt == "zap" {
            let t_only: String = out
                .lines()
                .filter(|l| l.contains(":BANDWIDTH_"))
                .map(|l| format!("{l}\n"))
                .collect();
            let tz = dir.join("ours.zap");
            std::fs::write(&tz, t_only).unwrap();
            dvb_format_convert(&[
                "-I",
                "ZAP",
                "-O",
                "DVBV5",
                "-s",
                "DVBT",
                tz.to_str().unwrap(),
                dir.join("z.conf").to_str().unwrap(),
            ]);
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// The embedded configuration with every emulated frontend failing to lock with `p`.
fn flaky_config(p: f64, seed: u64) -> String {
    let text = gstdvb2ip::tuners::config::DEFAULT_CONFIG;
    let faults = |n: u64| {
        format!(
            "[adapter.faults]\nlock_failure_probability = {p}\nseed = {}\n\n",
            seed * 10 + n
        )
    };
    let mut out = String::new();
    let mut n = 0;
    for line in text.lines() {
        let adapter_ends = line.starts_with("[[adapter]]") && n > 0
            || line.starts_with("# ---- Emulated multiplexes");
        if adapter_ends {
            out += &faults(n);
        }
        if line.starts_with("[[adapter]]") {
            n += 1;
        }
        out += line;
        out.push('\n');
    }
    out
}

#[test]
fn three_scans_with_flaky_frontends_give_the_same_database() {
    let dir = common::temp_dir("scan-flaky");
    let state = dir.join("state");
    let s = state.to_str().unwrap();
    let (status, _) = scan_cli(&["--state-dir", s, "--progress", "plain"]);
    assert!(status.success());
    let reference = listing(&load(&state));
    assert_eq!(reference.len(), 15);
    for seed in [1, 2, 3] {
        let conf = dir.join(format!("flaky{seed}.toml"));
        std::fs::write(&conf, flaky_config(0.3, seed)).unwrap();
        let (status, _) = scan_cli(&[
            "--state-dir",
            s,
            "--config",
            conf.to_str().unwrap(),
            "--progress",
            "plain",
        ]);
        assert!(status.success());
        assert_eq!(listing(&load(&state)), reference, "seed {seed}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// Starts `dvb2ip scan` of the UHF raster (49 channels × (T2, T), most of them silent, so the
/// scan runs long) into `state` with JSON progress, and reads its progress until a mux was
/// found; returns the running scan and the rest of its progress lines.
fn raster_scan_until_found(
    state: &Path,
    stderr: Stdio,
) -> (
    std::process::Child,
    std::io::Lines<BufReader<std::process::ChildStdout>>,
) {
    let mut child = Command::new(common::dvb2ip_bin())
        .args([
            "scan",
            "--raster",
            "dvb-t",
            "--progress",
            "json",
            "--state-dir",
        ])
        .arg(state)
        .stdout(Stdio::piped())
        .stderr(stderr)
        .spawn()
        .expect("dvb2ip scan");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let deadline = Instant::now() + Duration::from_secs(120);
    let failure = loop {
        if Instant::now() >= deadline {
            break "no mux found".to_owned();
        }
        let Some(Ok(line)) = lines.next() else {
            break "the scan's output ended".to_owned();
        };
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        if v["event"] == "end" {
            break format!("the raster scan ended before a mux was found: {v}");
        }
        if v["event"] == "mux_done" && v["verdict"] == "found" {
            return (child, lines);
        }
    };
    let _ = child.kill();
    let _ = child.wait();
    panic!("{failure}");
}

#[test]
fn ctrl_c_mid_scan_leaves_a_valid_database() {
    let dir = common::temp_dir("scan-sigint");
    let state = dir.join("state");
    // Interrupted once a mux was found.
    let (mut child, lines) = raster_scan_until_found(&state, Stdio::inherit());
    // SAFETY: kill(2) on our own child's pid.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGINT) }, 0);
    let mut end = None;
    for line in lines {
        let v: serde_json::Value = serde_json::from_str(&line.unwrap()).unwrap();
        if v["event"] == "end" {
            end = Some(v);
        }
    }
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130), "exit status after SIGINT");
    let end = end.expect("final progress line");
    assert_eq!(end["progress"]["state"], "stopped", "{end}");
    let db = load(&state);
    assert!(db.channels().len() >= 3, "the found mux is kept");
    assert!(
        (end["progress"]["muxes_done"].as_u64().unwrap())
            < end["progress"]["muxes_total"].as_u64().unwrap(),
        "stopped mid-scan: {end}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_corrupt_database_is_an_error_naming_the_file() {
    let dir = common::temp_dir("scan-corrupt");
    let state = dir.join("state");
    std::fs::create_dir_all(&state).unwrap();
    std::fs::write(state.join("channels.json"), "{\"version\": 1, \"muxes\": [").unwrap();
    let out = Command::new(common::dvb2ip_bin())
        .args(["scan", "--progress", "plain", "--state-dir"])
        .arg(&state)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("channels.json"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

// ---- In-process: the engine on a pool of the test's own ------------------------------------

fn own_pool(cfg: &BroadcastConfig) -> Pool {
    common::server::init();
    let mut cfg = cfg.clone();
    cfg.emulator.hardware = "off".into();
    let pool = Pool::new(cfg);
    pool.prepare_content().expect("content");
    pool
}

fn scan_once(pool: &Pool, db: ChannelDb, k: u32) -> ChannelDb {
    let mut section = dvb2ip::scan::config::ScanSection {
        k_misses: k,
        ..Default::default()
    };
    section.rescan_interval = 0;
    let (initial, origin) = section
        .initial_muxes(&pool.current_config(), &db)
        .expect("initial muxes");
    let params = ScanParams {
        config: section.scan_config(),
        initial,
        origin,
        frontends: None,
    };
    let (db, outcome) = engine::run(
        pool,
        db,
        params,
        &ScanControl::new(),
        &mut |_| Ok(()),
        &mut |_, _| {},
    )
    .expect("scan");
    assert_eq!(outcome.progress.state, "finished");
    db
}

#[test]
fn the_service_that_comes_and_goes_is_dropped_only_after_k_misses() {
    const PERIOD: i64 = 30;
    const ON: i64 = 15;
    let mut cfg = BroadcastConfig::embedded();
    let (mux, sid) = {
        let m = cfg
            .mux
            .iter_mut()
            .find(|m| m.service.iter().any(|s| s.on_air.is_some()))
            .expect("a pop-up service");
        let s = m.service.iter_mut().find(|s| s.on_air.is_some()).unwrap();
        s.on_air = Some(OnAirConfig {
            period_s: PERIOD as u32,
            on_s: ON as u32,
        });
        ((m.original_network_id, m.transport_stream_id), s.service_id)
    };
    let pool = own_pool(&cfg);
    let epoch = pool.started_unix_s();
    let wait_phase = |on: bool| wait_phase(epoch, PERIOD, ON, on);
    let present = |db: &ChannelDb| db.service(mux.0, mux.1, sid).map(|s| s.misses);
    wait_phase(true);
    let mut db = scan_once(&pool, ChannelDb::new(), 3);
    assert_eq!(present(&db), Some(0), "on air: found");
    let number = db.service(mux.0, mux.1, sid).unwrap().number;
    for miss in 1..=3u32 {
        wait_phase(false);
        db = scan_once(&pool, db, 3);
        if miss < 3 {
            assert_eq!(present(&db), Some(miss), "kept after {miss} misses");
            assert_eq!(db.service(mux.0, mux.1, sid).unwrap().number, number);
        } else {
            assert_eq!(present(&db), None, "dropped at the K-th miss");
        }
    }
    // The mux-mates were never missed.
    assert_eq!(db.channels().len(), 14);
}

struct Null;
impl FeedSink for Null {
    fn push(&self, _: gst::Buffer) {}
    fn status(&self, _: &TunerStatus) {}
    fn lock_changed(&self, _: bool, _: &TunerStatus) {}
    fn tune_failed(&self, _: &str) {}
    fn failed(&self, _: &str) {}
}

fn request(cfg: &BroadcastConfig, name: &str) -> LeaseRequest {
    LeaseRequest {
        transponder: cfg
            .mux
            .iter()
            .find(|m| m.name == name)
            .and_then(|m| m.transponder())
            .expect("mux"),
        adapter: None,
        frontend: None,
        pids: PidFilter::All,
        tuning_timeout: Duration::from_secs(10),
        dvbsrc_properties: vec![],
    }
}

#[test]
fn a_viewer_takes_a_frontend_back_from_a_background_lease() {
    let cfg = BroadcastConfig::embedded();
    let pool = own_pool(&cfg);
    let revoked: Vec<Arc<AtomicBool>> = (0..2).map(|_| Arc::default()).collect();
    let bg: Vec<_> = ["DVB-T2 474 MHz", "DVB-T 506 MHz"]
        .iter()
        .zip(&revoked)
        .map(|(m, flag)| {
            let flag = flag.clone();
            pool.lease_background(request(&cfg, m), Arc::new(Null), move || {
                flag.store(true, Ordering::SeqCst)
            })
            .expect("free frontend")
        })
        .collect();
    assert_eq!(pool.background_leases(), 2);
    // Another background request finds both DVB-T frontends busy: it takes nothing.
    assert!(pool
        .lease_background(request(&cfg, "DVB-T2 474 MHz PLP 1"), Arc::new(Null), || {})
        .is_err());
    // A viewer does: one background lease is revoked, and told so.
    let viewer = pool
        .lease(request(&cfg, "DVB-T2 474 MHz PLP 1"), Arc::new(Null))
        .expect("the viewer gets a frontend");
    let taken: Vec<usize> = (0..2).filter(|i| bg[*i].is_revoked()).collect();
    assert_eq!(taken.len(), 1, "exactly one background lease revoked");
    assert!(revoked[taken[0]].load(Ordering::SeqCst), "revoke notice");
    // The revoked lease is left without a frontend (index() then says none); its last one is
    // the viewer's.
    assert_eq!(bg[taken[0]].index(), usize::MAX);
    assert_eq!(
        (viewer.adapter(), viewer.frontend()),
        (bg[taken[0]].adapter(), bg[taken[0]].frontend())
    );
    assert_eq!(pool.frontends()[viewer.index()].users, 1);
    // Dropping the revoked lease gives nothing back twice; the viewer keeps the frontend.
    drop(bg);
    assert_eq!(pool.frontends()[viewer.index()].users, 1);
    assert_eq!(pool.background_leases(), 0);
    drop(viewer);
    assert!(pool.frontends().iter().all(|f| f.users == 0));
}

#[test]
fn nothing_outside_the_configured_multiplexes_locks() {
    // The UHF raster up to 514 MHz, once as DVB-T and once as DVB-T2: only the configured
    // multiplexes lock (DVB-T2 474 MHz PLP 0 and DVB-T 506 MHz), nothing else.
    use gstdvb2ip::proto::satip::DeliverySystem;
    let cfg = BroadcastConfig::embedded();
    let pool = own_pool(&cfg);
    for (msys, want) in [
        (DeliverySystem::DvbT, 506_000_000u32),
        (DeliverySystem::DvbT2, 474_000_000),
    ] {
        let raster: Vec<_> = gstdvb2ip::proto::scan::initial::raster_by_name("dvb-t")
            .unwrap()
            .into_iter()
            .filter(|m| m.tuning.frequency <= 514_000_000 && m.tuning.delivery_system == msys)
            .collect();
        assert_eq!(raster.len(), 6);
        let mut params = ScanParams {
            config: dvb2ip::scan::config::ScanSection::default().scan_config(),
            initial: raster,
            origin: Origin::Raster,
            frontends: None,
        };
        params.config.queue.discover = false;
        let (db, outcome) = engine::run(
            &pool,
            ChannelDb::new(),
            params,
            &ScanControl::new(),
            &mut |_| Ok(()),
            &mut |_, _| {},
        )
        .unwrap();
        let locked: Vec<u32> = db
            .muxes
            .iter()
            .filter(|m| m.onid.is_some())
            .map(|m| m.mux.tuning.frequency)
            .collect();
        assert_eq!(locked, vec![want], "{msys:?}: {outcome:?}");
        assert_eq!(
            (outcome.progress.found, outcome.progress.failed),
            (1, 5),
            "{outcome:?}"
        );
    }
}

// ---- The server -----------------------------------------------------------------------------

fn http(port: u16, method: &str, path: &str) -> (u16, String) {
    let a = common::http::request(port, method, path);
    (a.status, a.text())
}

fn wait_scan_done(port: u16) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let (code, body) = http(port, "GET", "/api/scan");
        assert_eq!(code, 200, "{body}");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        if v["running"] == false && v["progress"]["state"] != "idle" {
            return v;
        }
        assert!(Instant::now() < deadline, "scan does not end: {v}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn serve_scans_at_start_lists_and_mounts_the_channels_and_viewers_come_first() {
    common::server::init();
    let dir = common::temp_dir("scan-serve");
    let mut cfg = Config::embedded();
    cfg.ssdp.enabled = false;
    cfg.server.http_port = 0;
    cfg.server.state_dir = dir.join("state").display().to_string();
    let core = Core::with_own_pool(cfg.clone()).expect("core");
    assert!(core.scans.db().is_empty());
    let server = dvb2ip::serve::start_with(
        core.clone(),
        &dvb2ip::serve::ServeOptions {
            rtsp_port: Some(0),
            bind: None,
        },
    )
    .expect("rtsp server");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let network = dvb2ip::serve::spawn_network(&rt, &cfg, &server).expect("http");
    let port = network.http.port;
    // As `serve` does after start: the database is empty, so a scan starts.
    core.scans.start_service();
    let v = wait_scan_done(port);
    assert_eq!(v["progress"]["state"], "finished", "{v}");
    assert_eq!(v["progress"]["services"], 15, "{v}");
    assert!(dir.join("state/channels.json").exists());

    let (code, body) = http(port, "GET", "/api/channels");
    assert_eq!(code, 200);
    let list: Vec<serde_json::Value> = serde_json::from_str(&body).unwrap();
    assert_eq!(list.len(), 15, "{body}");
    let premium = list
        .iter()
        .find(|c| c["name"] == "dvb2ip Premium HD")
        .expect("the NIT-only mux's service");
    assert_eq!(premium["number"], 7);
    assert_eq!(premium["type"], "tv");
    assert_eq!(premium["scrambled"], true);
    assert_eq!(premium["provider"], "dvb2ip");
    let (code, m3u) = http(port, "GET", "/channels.m3u");
    assert_eq!(code, 200);
    let (code, page) = http(port, "GET", "/");
    assert_eq!(code, 200);
    for c in &list {
        // Numbered as in the database, in the M3U list and on the status page.
        let line = format!("{}. {}", c["number"], c["name"].as_str().unwrap());
        assert!(m3u.contains(&line), "{line}: {m3u}");
        let item = format!(
            "<li value=\"{}\">{} ({}, {}, {})",
            c["number"],
            c["name"].as_str().unwrap(),
            c["provider"].as_str().unwrap(),
            c["type"].as_str().unwrap(),
            if c["scrambled"] == true {
                "scrambled"
            } else {
                "free"
            }
        );
        assert!(page.contains(&item), "{item}: {page}");
    }
    // A scanned channel's mount answers DESCRIBE; a name nobody broadcasts does not.
    let talk = list.iter().find(|c| c["name"] == "dvb2ip Talk").unwrap();
    let mount = talk["mount"].as_str().unwrap().to_owned();
    let mut rtsp = common::rtsp::Rtsp::connect(server.rtsp_port);
    let r = rtsp.req(
        "DESCRIBE",
        mount.trim_start_matches('/'),
        &[("Accept", "application/sdp")],
    );
    assert_eq!(r.status, 200, "{r:?}");
    assert!(
        r.body.contains("m=video") || r.body.contains("MP2T"),
        "{}",
        r.body
    );
    let r = rtsp.req(
        "DESCRIBE",
        "ch/no-such-channel",
        &[("Accept", "application/sdp")],
    );
    assert_eq!(r.status, 404, "{r:?}");
    drop(rtsp);

    // A viewer plays over HTTP; a rescan meanwhile does not disturb it.
    let got = Arc::new(AtomicU64::new(0));
    let eof = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let viewer = {
        let (got, eof, stop) = (got.clone(), eof.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            write!(
                s,
                "GET /?freq=506&msys=dvbt&bw=8&pids=0,16,17,256,257,258 HTTP/1.1\r\nHost: x\r\n\r\n"
            )
            .unwrap();
            let mut buf = vec![0u8; 65536];
            while !stop.load(Ordering::Relaxed) {
                match s.read(&mut buf) {
                    Ok(0) | Err(_) => {
                        eof.store(true, Ordering::Relaxed);
                        return;
                    }
                    Ok(n) => {
                        got.fetch_add(n as u64, Ordering::Relaxed);
                    }
                }
            }
        })
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while got.load(Ordering::Relaxed) < 188 * 1000 {
        assert!(Instant::now() < deadline, "viewer gets no data");
        std::thread::sleep(Duration::from_millis(20));
    }
    let viewer_fe = core
        .pool
        .frontends()
        .into_iter()
        .find(|f| f.users > 0)
        .map(|f| f.index);
    let (code, body) = http(port, "POST", "/api/scan/start");
    assert_eq!(code, 202, "{body}");
    let before = got.load(Ordering::Relaxed);
    let v = wait_scan_done(port);
    assert_eq!(v["progress"]["state"], "finished", "{v}");
    assert_eq!(v["progress"]["services"], 15, "{v}");
    // Still playing on the same frontend, bytes still coming.
    let deadline = Instant::now() + Duration::from_secs(30);
    while got.load(Ordering::Relaxed) < before + 188 * 1000 {
        assert!(!eof.load(Ordering::Relaxed), "the viewer's stream ended");
        assert!(Instant::now() < deadline, "viewer stalled");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(!eof.load(Ordering::Relaxed));
    assert!(core
        .pool
        .frontends()
        .iter()
        .any(|f| Some(f.index) == viewer_fe && f.users == 1));
    stop.store(true, Ordering::Relaxed);
    let _ = viewer.join();
    let (code, _) = http(port, "POST", "/api/scan/stop");
    assert_eq!(code, 409, "no scan running");
    drop(network);
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Waits until the service that comes and goes of a pool started at `epoch` is `on` (on air)
/// with at least 6 s of that phase left.
fn wait_phase(epoch: i64, period: i64, on_s: i64, on: bool) {
    let deadline = Instant::now() + Duration::from_secs(3 * period as u64);
    loop {
        assert!(Instant::now() < deadline, "phase on={on} never came");
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        let pos = (now - epoch).rem_euclid(period);
        let (is_on, left) = if pos < on_s {
            (true, on_s - pos)
        } else {
            (false, period - pos)
        };
        if is_on == on && left >= 6 {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn channel_mounts_follow_rescans() {
    common::server::init();
    let dir = common::temp_dir("scan-mounts");
    let mut cfg = Config::embedded();
    cfg.ssdp.enabled = false;
    cfg.server.http_port = 0;
    cfg.server.state_dir = dir.join("state").display().to_string();
    cfg.scan.k_misses = 1;
    cfg.scan.rescan_interval = 0;
    for s in cfg
        .broadcast
        .mux
        .iter_mut()
        .flat_map(|m| m.service.iter_mut())
    {
        if s.on_air.is_some() {
            s.on_air = Some(OnAirConfig {
                period_s: 30,
                on_s: 15,
            });
        }
    }
    let core = Core::with_own_pool(cfg.clone()).expect("core");
    let epoch = core.pool.started_unix_s();
    let server = dvb2ip::serve::start_with(
        core.clone(),
        &dvb2ip::serve::ServeOptions {
            rtsp_port: Some(0),
            bind: None,
        },
    )
    .expect("rtsp server");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let network = dvb2ip::serve::spawn_network(&rt, &cfg, &server).expect("http");
    let port = network.http.port;
    let describe = || {
        let mut rtsp = common::rtsp::Rtsp::connect(server.rtsp_port);
        rtsp.req(
            "DESCRIBE",
            "ch/dvb2ip-pop-up",
            &[("Accept", "application/sdp")],
        )
        .status
    };
    let listed = || {
        let (_, body) = http(port, "GET", "/api/channels");
        body.contains("\"dvb2ip Pop-up\"")
    };
    assert_eq!(describe(), 404, "nothing scanned yet");
    wait_phase(epoch, 30, 15, true);
    core.scans.start_service();
    wait_scan_done(port);
    assert!(listed());
    assert_eq!(describe(), 200, "scanned: playable");
    // Off air at the next scan: with K = 1 dropped, and its mount gone.
    wait_phase(epoch, 30, 15, false);
    assert_eq!(http(port, "POST", "/api/scan/start").0, 202);
    wait_scan_done(port);
    assert!(!listed());
    assert_eq!(describe(), 404, "dropped: unmounted");
    // Back on air: a new service, mounted again.
    wait_phase(epoch, 30, 15, true);
    assert_eq!(http(port, "POST", "/api/scan/start").0, 202);
    wait_scan_done(port);
    assert!(listed());
    assert_eq!(describe(), 200, "back: playable");
    drop(network);
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn an_initial_file_with_one_mux_reaches_its_network_and_with_nit_other_the_rest() {
    let dir = common::temp_dir("scan-initial");
    let initial = dir.join("t2.conf");
    std::fs::write(
        &initial,
        "# one home transponder\n[CH21]\n\tDELIVERY_SYSTEM = DVBT2\n\tFREQUENCY = 474000000\n\tBANDWIDTH_HZ = 8000000\n\tSTREAM_ID = 0\n",
    )
    .unwrap();
    let cfg = BroadcastConfig::embedded();
    let terrestrial: Listing = expected(&cfg).into_iter().filter(|c| c.0 < 100).collect();
    let state = dir.join("a");
    let (status, _) = scan_cli(&[
        "--state-dir",
        state.to_str().unwrap(),
        "--initial",
        initial.to_str().unwrap(),
        "--progress",
        "plain",
    ]);
    assert!(status.success());
    assert_eq!(
        listing(&load(&state)),
        terrestrial,
        "NIT actual: the terrestrial network"
    );
    let state = dir.join("b");
    let (status, _) = scan_cli(&[
        "--state-dir",
        state.to_str().unwrap(),
        "--initial",
        initial.to_str().unwrap(),
        "--nit-other",
        "--progress",
        "plain",
    ]);
    assert!(status.success());
    assert_eq!(
        listing(&load(&state)),
        expected(&cfg),
        "NIT other: every network"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_viewer_arriving_mid_scan_gets_the_frontend_and_the_mux_is_scanned_later() {
    // One DVB-T/T2 frontend with a slow lock (within the 4 s budget), so the scan still holds
    // it, unlocked, when the viewer comes.
    let mut cfg = BroadcastConfig::embedded();
    cfg.adapter.truncate(1);
    cfg.adapter[0].lock_time_ms = 2500;
    let pool = own_pool(&cfg);
    let (tx, rx) = std::sync::mpsc::channel();
    let scan = {
        let pool = pool.clone();
        std::thread::spawn(move || {
            let tx = std::sync::Mutex::new(tx);
            let section = dvb2ip::scan::config::ScanSection::default();
            let db = ChannelDb::new();
            let (initial, origin) = section.initial_muxes(&pool.current_config(), &db).unwrap();
            let params = ScanParams {
                config: section.scan_config(),
                initial,
                origin,
                frontends: None,
            };
            engine::run(
                &pool,
                db,
                params,
                &ScanControl::new(),
                &mut |_| Ok(()),
                &mut |e, _| {
                    let _ = tx.lock().unwrap().send(e.clone());
                },
            )
            .unwrap()
        })
    };
    let next = || {
        rx.recv_timeout(Duration::from_secs(60))
            .expect("scan events")
    };
    // The scan tunes its first mux; the viewer wants the other initial terrestrial mux.
    let first = loop {
        if let engine::ScanEvent::Tune { mux, .. } = next() {
            break mux;
        }
    };
    let other = if first.contains("dvbt2") {
        "DVB-T 506 MHz"
    } else {
        "DVB-T2 474 MHz"
    };
    let viewer = pool
        .lease(request(&cfg, other), Arc::new(Null))
        .expect("the viewer takes the scan's frontend");
    assert!(!viewer.is_shared(), "the scan is still on its first mux");
    loop {
        match next() {
            engine::ScanEvent::Preempted { mux } => {
                assert_eq!(mux, first);
                break;
            }
            engine::ScanEvent::MuxDone { mux, .. } => {
                panic!("{mux} finished on a frontend the viewer holds")
            }
            _ => {}
        }
    }
    drop(viewer);
    let (db, outcome) = scan.join().expect("scan thread");
    assert!(!outcome.stopped);
    assert!(outcome.progress.preempted >= 1, "{outcome:?}");
    let terrestrial: Listing = expected(&cfg).into_iter().filter(|c| c.0 < 100).collect();
    assert_eq!(
        listing(&db),
        terrestrial,
        "every terrestrial mux scanned after all"
    );
}

#[test]
fn muxes_no_frontend_can_tune_fail_and_the_scan_ends() {
    // Only the DVB-T/T2 frontends: NIT other announces cable and satellite muxes they cannot
    // tune; those fail (after their retries) and the terrestrial network is found.
    let dir = common::temp_dir("scan-unsupported");
    let text = gstdvb2ip::tuners::config::DEFAULT_CONFIG;
    let cut_from = text
        .find("[[adapter]]\nname = \"Emulated DVB-C\"")
        .expect("cable adapter");
    let cut_to = text.find("# ---- Emulated multiplexes").expect("muxes");
    let conf = dir.join("t-only.toml");
    std::fs::write(&conf, format!("{}{}", &text[..cut_from], &text[cut_to..])).unwrap();
    let initial = dir.join("t2.conf");
    std::fs::write(
        &initial,
        "[CH21]\n\tDELIVERY_SYSTEM = DVBT2\n\tFREQUENCY = 474000000\n\tBANDWIDTH_HZ = 8000000\n",
    )
    .unwrap();
    let state = dir.join("state");
    let (status, out) = scan_cli(&[
        "--config",
        conf.to_str().unwrap(),
        "--state-dir",
        state.to_str().unwrap(),
        "--initial",
        initial.to_str().unwrap(),
        "--nit-other",
        "--progress",
        "json",
    ]);
    assert!(status.success());
    let end: serde_json::Value = serde_json::from_str(out.lines().last().unwrap()).unwrap();
    assert_eq!(end["progress"]["state"], "finished", "{end}");
    assert_eq!(end["progress"]["failed"], 2, "{end}");
    let cfg = BroadcastConfig::embedded();
    let terrestrial: Listing = expected(&cfg).into_iter().filter(|c| c.0 < 100).collect();
    assert_eq!(listing(&load(&state)), terrestrial);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_crash_mid_scan_leaves_a_loadable_database() {
    // SIGKILL at any moment: the database is the old file or the new one, never a mix.
    let dir = common::temp_dir("scan-sigkill");
    let state = dir.join("state");
    // Killed while the scan runs on, after a mux was found (and stored before it was told).
    let (mut child, _lines) = raster_scan_until_found(&state, Stdio::null());
    child.kill().unwrap();
    child.wait().unwrap();
    let db = load(&state);
    assert!(db.channels().len() >= 3, "the found mux is stored");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn dvb2ip_serve_with_an_empty_state_dir_scans_at_start() {
    let dir = common::temp_dir("scan-serve-bin");
    let state = dir.join("state");
    let text = gstdvb2ip::tuners::config::DEFAULT_CONFIG;
    let ssdp = text.find("[ssdp]").expect("[ssdp]");
    let text = format!(
        "{}{}",
        &text[..ssdp],
        text[ssdp..].replacen("enabled = true", "enabled = false", 1)
    )
    .replacen("http_port = 8875", "http_port = 0", 1);
    let conf = dir.join("serve.toml");
    std::fs::write(&conf, text).unwrap();
    let mut child = Command::new(common::dvb2ip_bin())
        .args(["serve", "--rtsp-port", "0", "--config"])
        .arg(&conf)
        .arg("--state-dir")
        .arg(&state)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("dvb2ip serve");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    // The banner names the HTTP port: "curl http://127.0.0.1:PORT/channels.m3u".
    let port: u16 = loop {
        let line = lines.next().expect("banner").unwrap();
        if let Some(rest) = line.trim().strip_prefix("curl http://127.0.0.1:") {
            if let Some(p) = rest.strip_suffix("/channels.m3u   # channel list (also /desc.xml)") {
                break p.parse().expect("port");
            }
        }
    };
    let v = wait_scan_done(port);
    assert_eq!(v["progress"]["state"], "finished", "{v}");
    let (_, body) = http(port, "GET", "/api/channels");
    let list: Vec<serde_json::Value> = serde_json::from_str(&body).unwrap();
    assert_eq!(list.len(), 15, "{body}");
    // SIGTERM: a clean stop; the database stays.
    // SAFETY: kill(2) on our own child's pid.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGTERM) }, 0);
    let deadline = Instant::now() + Duration::from_secs(30);
    while child.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "serve did not stop");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(load(&state).channels().len(), 15);
    let _ = std::fs::remove_dir_all(&dir);
}
