//! The emulated broadcast's SI, read the way the scanner reads it: each default mux is tuned
//! through a tuner pool and its tables go through `proto::scan`'s collector. Every mux's NIT
//! announces every mux of its network (delivery system, frequency, services, LCNs) and each
//! other network in a NIT other sub-table.

mod common;

use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gstdvb2ip::proto::satip::{DeliverySystem, Polarisation};
use gstdvb2ip::proto::scan::collector::{
    CollectorConfig, FrontendStatus, MuxCollector, MuxResult, Poll, Timeouts, Verdict,
};
use gstdvb2ip::proto::scan::mux::{blank_tuning, Mux};
use gstdvb2ip::proto::scan::nit::{Lcn, NitTable};
use gstdvb2ip::proto::tuner_pool::Transponder;
use gstdvb2ip::tuners::{self, config::MuxConfig, BroadcastConfig, LeaseRequest, PidFilter, Pool};

/// The embedded configuration without real adapters, in a pool of its own.
fn pool_of(cfg: &BroadcastConfig) -> Pool {
    common::init();
    let mut cfg = cfg.clone();
    cfg.emulator.hardware = "off".into();
    let pool = Pool::new(cfg);
    pool.prepare_content().expect("content");
    pool
}

fn embedded() -> BroadcastConfig {
    BroadcastConfig::embedded()
}

enum Ev {
    Data(Vec<u8>),
    Lock(bool),
    Failed(String),
}

struct Sink(Mutex<mpsc::Sender<Ev>>);

impl tuners::FeedSink for Sink {
    fn push(&self, buffer: gst::Buffer) {
        if let Ok(m) = buffer.map_readable() {
            let _ = self.0.lock().unwrap().send(Ev::Data(m.as_slice().to_vec()));
        }
    }
    fn status(&self, _: &tuners::TunerStatus) {}
    fn lock_changed(&self, locked: bool, _: &tuners::TunerStatus) {
        let _ = self.0.lock().unwrap().send(Ev::Lock(locked));
    }
    fn tune_failed(&self, reason: &str) {
        let _ = self.0.lock().unwrap().send(Ev::Failed(reason.into()));
    }
    fn failed(&self, reason: &str) {
        let _ = self.0.lock().unwrap().send(Ev::Failed(reason.into()));
    }
}

/// The scanner's view of a configured mux.
fn scan_mux_of(m: &MuxConfig) -> Mux {
    let (msys, freq) = match m.delsys.as_str() {
        "dvb-t" => (DeliverySystem::DvbT, m.frequency_khz * 1000),
        "dvb-t2" => (DeliverySystem::DvbT2, m.frequency_khz * 1000),
        "dvb-c" => (DeliverySystem::DvbC, m.frequency_khz * 1000),
        "dvb-s" => (DeliverySystem::DvbS, m.frequency_khz),
        "dvb-s2" => (DeliverySystem::DvbS2, m.frequency_khz),
        d => panic!("delivery system {d} not in this test"),
    };
    let mut t = blank_tuning(msys, freq as u32);
    if msys == DeliverySystem::DvbT2 {
        t.plp = Some(m.stream_id.max(0) as u8);
    }
    t.polarisation = match m.polarisation.as_deref() {
        Some("h") => Some(Polarisation::Horizontal),
        Some("v") => Some(Polarisation::Vertical),
        Some("l") => Some(Polarisation::CircularLeft),
        Some("r") => Some(Polarisation::CircularRight),
        _ => None,
    };
    Mux::new(t)
}

/// Collector budgets: the defaults, except NIT/SDT other (both repeat every 2 s).
fn collector_config(read_other: bool) -> CollectorConfig {
    CollectorConfig {
        timeouts: Timeouts {
            other_ms: 5000,
            ..Timeouts::default()
        },
        read_other,
        ..CollectorConfig::default()
    }
}

/// Tunes `m` on `pool` (waiting while its frontends are busy with other scans of this test)
/// and runs a collector over what arrives until it has a verdict.
fn scan(pool: &Pool, m: &MuxConfig, cfg: CollectorConfig) -> MuxResult {
    let (tx, rx) = mpsc::channel();
    let sink = Arc::new(Sink(Mutex::new(tx)));
    let busy_until = Instant::now() + Duration::from_secs(120);
    let lease = loop {
        let req = LeaseRequest {
            transponder: m.transponder().expect("valid mux"),
            adapter: None,
            frontend: None,
            pids: PidFilter::All,
            tuning_timeout: Duration::from_secs(10),
            dvbsrc_properties: vec![],
        };
        match pool.lease(req, sink.clone()) {
            Ok(l) => break l,
            Err(e) => {
                assert!(Instant::now() < busy_until, "{}: {e}", m.name);
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    };
    let t0 = Instant::now();
    let now = || t0.elapsed().as_millis() as u64;
    let mut c = MuxCollector::new(scan_mux_of(m), cfg, 0);
    loop {
        if let Poll::Done(_) = c.poll(now()) {
            break;
        }
        match rx.recv_timeout(Duration::from_millis(50)) {
            Ok(Ev::Data(b)) => {
                let t = now();
                for p in b.chunks_exact(188) {
                    c.push_packet(t, p);
                }
            }
            Ok(Ev::Lock(locked)) => c.frontend_status(
                now(),
                FrontendStatus {
                    signal: locked,
                    carrier: locked,
                    lock: locked,
                },
            ),
            Ok(Ev::Failed(reason)) => eprintln!("{}: {reason}", m.name),
            Err(_) => {}
        }
    }
    drop(lease);
    c.into_result().expect("done")
}

/// Scans every mux of `muxes` at once (each waits for a free frontend).
fn scan_all(pool: &Pool, muxes: &[MuxConfig], read_other: bool) -> Vec<MuxResult> {
    let handles: Vec<_> = muxes
        .iter()
        .cloned()
        .map(|m| {
            let pool = pool.clone();
            std::thread::spawn(move || scan(&pool, &m, collector_config(read_other)))
        })
        .collect();
    handles
        .into_iter()
        .map(|h| h.join().expect("scan thread"))
        .collect()
}

/// Checks that `nit` describes every mux of `network` as configured.
fn assert_describes(nit: &NitTable, network: &[&MuxConfig], on: &MuxResult, what: &str) {
    assert_eq!(
        nit.transports.len(),
        network.len(),
        "{what}: {:?}",
        nit.transports
    );
    for x in network {
        assert_eq!(nit.network_id, x.network_id, "{what}");
        assert_eq!(nit.network_name.as_deref(), Some(x.network_name.as_str()));
        let t = nit
            .transports
            .iter()
            .find(|t| t.tsid == x.transport_stream_id && t.onid == x.original_network_id)
            .unwrap_or_else(|| panic!("{what}: {} not announced", x.name));
        let (announced, _) = t
            .delivery
            .to_mux(Some(&on.mux))
            .unwrap_or_else(|| panic!("{what}: {} without delivery descriptor", x.name));
        let want = scan_mux_of(x);
        assert_eq!(
            announced.tuning.delivery_system, want.tuning.delivery_system,
            "{what}: {}",
            x.name
        );
        assert_eq!(
            announced.tuning.frequency, want.tuning.frequency,
            "{what}: {}",
            x.name
        );
        assert_eq!(announced.tuning.plp, want.tuning.plp, "{what}: {}", x.name);
        assert!(announced.same_transponder(&want), "{what}: {}", x.name);
        match want.tuning.delivery_system {
            DeliverySystem::DvbC => {
                assert_eq!(announced.tuning.symbol_rate, Some(x.symbol_rate_ksym))
            }
            DeliverySystem::DvbS2 => {
                assert_eq!(announced.tuning.symbol_rate, Some(x.symbol_rate_ksym));
                assert!(announced.tuning.polarisation.is_some());
                assert_eq!(announced.orbital, Some(192));
            }
            _ => assert_eq!(announced.tuning.bandwidth_hz, Some(x.bandwidth_hz)),
        }
        let listed: Vec<u16> = t.services.iter().map(|(sid, _)| *sid).collect();
        let configured: Vec<u16> = x.service.iter().map(|s| s.service_id).collect();
        assert_eq!(listed, configured, "{what}: service list of {}", x.name);
        for s in &x.service {
            let want = s.lcn.map(|number| Lcn {
                number,
                visible: true,
            });
            assert_eq!(
                nit.lcn(x.original_network_id, x.transport_stream_id, s.service_id),
                want,
                "{what}: LCN of {}",
                s.name
            );
        }
    }
}

#[test]
fn every_mux_announces_its_network_with_lcns_and_the_other_networks() {
    let cfg = embedded();
    let pool = pool_of(&cfg);
    let results = scan_all(&pool, &cfg.mux, true);
    let mut networks: Vec<u16> = cfg.mux.iter().map(|m| m.network_id).collect();
    networks.sort();
    networks.dedup();
    assert!(networks.len() >= 2, "a second network: {networks:?}");
    assert!(
        cfg.mux
            .iter()
            .filter(|m| m.network_id == cfg.mux[0].network_id)
            .count()
            >= 2,
        "the first network has several muxes"
    );
    for (m, r) in cfg.mux.iter().zip(&results) {
        assert_eq!(r.verdict, Verdict::Found, "{}: {r:?}", m.name);
        assert_eq!(r.tsid, Some(m.transport_stream_id), "{}", m.name);
        assert_eq!(r.onid, Some(m.original_network_id), "{}", m.name);
        let nit = r
            .nit_actual
            .as_ref()
            .unwrap_or_else(|| panic!("{}: no NIT actual", m.name));
        assert!(nit.actual);
        let own: Vec<&MuxConfig> = cfg
            .mux
            .iter()
            .filter(|x| x.network_id == m.network_id)
            .collect();
        assert_describes(nit, &own, r, &format!("NIT actual on {}", m.name));
        for n in networks.iter().filter(|n| **n != m.network_id) {
            let other = r
                .nit_other
                .iter()
                .find(|t| t.network_id == *n)
                .unwrap_or_else(|| panic!("{}: no NIT other for network {n:#x}", m.name));
            assert!(!other.actual);
            let theirs: Vec<&MuxConfig> = cfg.mux.iter().filter(|x| x.network_id == *n).collect();
            assert_describes(
                other,
                &theirs,
                r,
                &format!("NIT other {n:#x} on {}", m.name),
            );
        }
        assert_eq!(r.nit_other.len(), networks.len() - 1, "{}", m.name);
        // The collector hands each service its number, as the scanner will store it.
        for s in &m.service {
            let scanned = r
                .services
                .iter()
                .find(|x| x.service_id == s.service_id)
                .unwrap_or_else(|| panic!("{}: {} not in the PAT", m.name, s.name));
            assert_eq!(scanned.lcn.map(|l| l.number), s.lcn, "{}", s.name);
            let sdt = scanned.sdt.as_ref().expect("SDT entry");
            assert_eq!(sdt.name.as_deref(), Some(s.name.as_str()));
        }
    }
    // Every default service has a number, and no two share one.
    let mut lcns: Vec<u16> = cfg
        .mux
        .iter()
        .flat_map(|m| {
            m.service
                .iter()
                .map(|s| s.lcn.expect("default services have LCNs"))
        })
        .collect();
    let n = lcns.len();
    lcns.sort();
    lcns.dedup();
    assert_eq!(lcns.len(), n, "duplicate LCNs in the default configuration");
}

#[test]
fn the_nit_only_mux_is_announced_and_locks_and_carries_a_scrambled_service() {
    let cfg = embedded();
    let pool = pool_of(&cfg);
    let initial: Vec<MuxConfig> = cfg.initial_muxes().cloned().collect();
    let nit_only: Vec<&MuxConfig> = cfg.mux.iter().filter(|m| !m.initial).collect();
    assert!(!nit_only.is_empty(), "a mux only the NIT announces");
    let results = scan_all(&pool, &initial, false);
    let announced: Vec<Mux> = results
        .iter()
        .flat_map(|r| r.announced(false))
        .map(|a| a.mux)
        .collect();
    for x in &nit_only {
        let want = scan_mux_of(x);
        assert!(
            !initial
                .iter()
                .any(|i| scan_mux_of(i).same_transponder(&want)),
            "{} is not in the initial list",
            x.name
        );
        assert!(
            announced.iter().any(|a| a.same_transponder(&want)),
            "{} announced by a NIT actual: {announced:?}",
            x.name
        );
        let r = scan(&pool, x, collector_config(false));
        assert_eq!(r.verdict, Verdict::Found, "{}: {r:?}", x.name);
        assert_eq!(r.tsid, Some(x.transport_stream_id));
        for s in x.service.iter().filter(|s| s.on_air.is_none()) {
            let scanned = r
                .services
                .iter()
                .find(|v| v.service_id == s.service_id)
                .unwrap_or_else(|| panic!("{} not found on {}", s.name, x.name));
            let sdt = scanned.sdt.as_ref().expect("SDT entry");
            assert_eq!(sdt.name.as_deref(), Some(s.name.as_str()));
            assert_eq!(scanned.scrambled(), s.scrambled, "{}", s.name);
            assert_eq!(sdt.free_ca_mode, s.scrambled, "{}: free_CA_mode", s.name);
            let ca = &scanned.pmt.as_ref().expect("PMT").ca_system_ids;
            assert_eq!(
                !ca.is_empty(),
                s.scrambled,
                "{}: CA_descriptor {ca:?}",
                s.name
            );
        }
    }
    let scrambled: Vec<&str> = cfg
        .mux
        .iter()
        .flat_map(|m| m.service.iter())
        .filter(|s| s.scrambled)
        .map(|s| s.name.as_str())
        .collect();
    assert_eq!(scrambled.len(), 1, "{scrambled:?}");
}

#[test]
fn sdt_other_describes_every_other_transport_stream() {
    let cfg = embedded();
    let pool = pool_of(&cfg);
    for m in &cfg.mux {
        let r = scan(&pool, m, collector_config(true));
        assert_eq!(r.verdict, Verdict::Found, "{}: {r:?}", m.name);
        assert!(r.sdt_other.iter().all(|t| !t.actual));
        for x in cfg.mux.iter().filter(|x| {
            (x.original_network_id, x.transport_stream_id)
                != (m.original_network_id, m.transport_stream_id)
        }) {
            let t = r
                .sdt_other
                .iter()
                .find(|t| t.tsid == x.transport_stream_id && t.onid == x.original_network_id)
                .unwrap_or_else(|| panic!("{}: no SDT other for {}", m.name, x.name));
            for s in x.service.iter().filter(|s| s.on_air.is_none()) {
                let e = t
                    .service(s.service_id)
                    .unwrap_or_else(|| panic!("{}: {} not in SDT other", m.name, s.name));
                assert_eq!(e.name.as_deref(), Some(s.name.as_str()));
                assert_eq!(e.provider.as_deref(), Some(s.provider.as_str()));
                assert_eq!(e.free_ca_mode, s.scrambled, "{}", s.name);
            }
        }
        assert_eq!(r.sdt_other.len(), cfg.mux.len() - 1, "{}", m.name);
    }
}

/// Whether `sid` is in the PAT and the SDT actual sections seen on a packet stream, with the
/// PAT version, as the stream goes.
#[derive(Default)]
struct Presence {
    assemblers: std::collections::HashMap<u16, gstdvb2ip::proto::psi::SectionAssembler>,
    /// (PAT has it, PAT version) of each PAT section seen.
    pat: Vec<(bool, u8)>,
    /// SDT has it, for each SDT actual section seen.
    sdt: Vec<bool>,
}

impl Presence {
    fn push(&mut self, sid: u16, packet: &[u8]) {
        use gstdvb2ip::proto::ts::PacketView;
        let Ok(p) = PacketView::parse(packet) else {
            return;
        };
        let pid = p.header.pid;
        if pid != 0 && pid != 0x11 {
            return;
        }
        let out = self.assemblers.entry(pid).or_default().push(
            p.header.pusi,
            p.header.cc,
            false,
            p.payload,
        );
        for s in out.into_iter().flatten() {
            match s.header.table_id {
                0x00 => {
                    let pat = gstdvb2ip::proto::psi::Pat::parse(&s).expect("PAT");
                    let has = pat.programs.iter().any(|e| e.program_number == sid);
                    self.pat.push((has, pat.version));
                }
                0x42 => {
                    let sdt =
                        gstdvb2ip::proto::scan::sdt::SdtTable::from_sections([&s]).expect("SDT");
                    self.sdt.push(sdt.service(sid).is_some());
                }
                _ => {}
            }
        }
    }

    /// The distinct states in order (consecutive repeats merged).
    fn runs<T: PartialEq + Copy>(v: &[T]) -> Vec<T> {
        let mut out: Vec<T> = Vec::new();
        for x in v {
            if out.last() != Some(x) {
                out.push(*x);
            }
        }
        out
    }
}

#[test]
fn a_service_comes_and_goes_with_the_pat_and_sdt() {
    let mut cfg = embedded();
    let mut found = None;
    for m in &mut cfg.mux {
        if let Some(s) = m.service.iter_mut().find(|s| s.on_air.is_some()) {
            // A short period, so that the test sees it come and go.
            s.on_air = Some(tuners::config::OnAirConfig {
                period_s: 4,
                on_s: 2,
            });
            let sid = s.service_id;
            found = Some((m.clone(), sid));
            break;
        }
    }
    let (mux, sid) = found.expect("a service that comes and goes in the default configuration");
    let pool = pool_of(&cfg);
    let (tx, rx) = mpsc::channel();
    let lease = pool
        .lease(
            LeaseRequest {
                transponder: mux.transponder().unwrap(),
                adapter: None,
                frontend: None,
                pids: PidFilter::All,
                tuning_timeout: Duration::from_secs(10),
                dvbsrc_properties: vec![],
            },
            Arc::new(Sink(Mutex::new(tx))),
        )
        .expect("lease");
    let mut seen = Presence::default();
    let deadline = Instant::now() + Duration::from_secs(60);
    // On, off, on again (or off, on, off): both transitions seen in the PAT and the SDT.
    let done = |p: &Presence| {
        Presence::runs(&p.pat.iter().map(|x| x.0).collect::<Vec<_>>()).len() >= 3
            && Presence::runs(&p.sdt).len() >= 3
    };
    while !done(&seen) {
        assert!(
            Instant::now() < deadline,
            "PAT {:?} SDT {:?}",
            Presence::runs(&seen.pat),
            Presence::runs(&seen.sdt)
        );
        if let Ok(Ev::Data(b)) = rx.recv_timeout(Duration::from_millis(100)) {
            for p in b.chunks_exact(188) {
                seen.push(sid, p);
            }
        }
    }
    drop(lease);
    // Each state has its own PAT version, so a receiver notices the change.
    for (has, version) in Presence::runs(&seen.pat) {
        assert_eq!(
            version == 0,
            has,
            "PAT version {version} with the service {has}"
        );
    }
}

/// What a lease of `transponder` on `pool` reports until it locks or fails (bounded).
#[derive(Debug, PartialEq, Eq)]
enum Tune {
    Locked,
    Failed(String),
}

fn tune(pool: &Pool, transponder: Transponder, adapter: Option<u32>) -> Tune {
    let (tx, rx) = mpsc::channel();
    let _lease = pool
        .lease(
            LeaseRequest {
                transponder,
                adapter,
                frontend: None,
                pids: PidFilter::All,
                tuning_timeout: Duration::from_millis(1500),
                dvbsrc_properties: vec![],
            },
            Arc::new(Sink(Mutex::new(tx))),
        )
        .expect("lease");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        assert!(Instant::now() < deadline, "neither lock nor failure");
        match rx.recv_timeout(Duration::from_millis(100)) {
            Ok(Ev::Lock(true)) => return Tune::Locked,
            Ok(Ev::Failed(reason)) => return Tune::Failed(reason),
            Ok(Ev::Data(_)) => panic!("data before lock"),
            _ => {}
        }
    }
}

/// The adapter number of the pool's emulated frontend named `name`.
fn adapter_named(pool: &Pool, name: &str) -> u32 {
    pool.frontends()
        .into_iter()
        .find(|f| f.name == name)
        .unwrap_or_else(|| panic!("no frontend {name}"))
        .adapter
}

fn mux_named<'a>(cfg: &'a BroadcastConfig, name: &str) -> &'a MuxConfig {
    cfg.mux.iter().find(|m| m.name == name).expect("mux")
}

#[test]
fn lock_failure_probability_one_never_locks_and_zero_always_does() {
    let cfg = embedded();
    let pool = pool_of(&cfg);
    let cable = adapter_named(&pool, "Emulated DVB-C");
    let t = mux_named(&cfg, "DVB-C 346 MHz").transponder().unwrap();
    pool.set_faults(
        cable,
        tuners::Faults {
            lock_failure_probability: 1.0,
            ..Default::default()
        },
    )
    .unwrap();
    for _ in 0..3 {
        match tune(&pool, t.clone(), Some(cable)) {
            Tune::Failed(reason) => assert!(
                reason.contains("lock_failure_probability") && reason.contains("346000 kHz"),
                "{reason}"
            ),
            Tune::Locked => panic!("locked with lock_failure_probability = 1"),
        }
    }
    pool.set_faults(cable, tuners::Faults::default()).unwrap();
    for _ in 0..3 {
        assert_eq!(tune(&pool, t.clone(), Some(cable)), Tune::Locked);
    }
    // The same knob from the configuration file, per adapter.
    let cable_adapter = "name = \"Emulated DVB-C\"\ndelsys = [\"dvb-c\"]\nlock_time_ms = 300\n";
    assert!(tuners::config::DEFAULT_CONFIG.contains(cable_adapter));
    let text = tuners::config::DEFAULT_CONFIG.replace(
        cable_adapter,
        &format!("{cable_adapter}[adapter.faults]\nlock_failure_probability = 1.0\nseed = 3\n"),
    );
    let flaky = BroadcastConfig::parse("flaky.toml", &text).expect("valid");
    let pool = pool_of(&flaky);
    assert!(matches!(tune(&pool, t.clone(), None), Tune::Failed(_)));
    // Other adapters are not affected.
    let t506 = mux_named(&flaky, "DVB-T 506 MHz").transponder().unwrap();
    assert_eq!(tune(&pool, t506, None), Tune::Locked);
}

#[test]
fn a_seeded_flaky_frontend_fails_the_same_tunes_each_time() {
    let cfg = embedded();
    let pool = pool_of(&cfg);
    let cable = adapter_named(&pool, "Emulated DVB-C");
    let t = mux_named(&cfg, "DVB-C 346 MHz").transponder().unwrap();
    let run = || {
        pool.set_faults(
            cable,
            tuners::Faults {
                lock_failure_probability: 0.5,
                seed: Some(42),
                ..Default::default()
            },
        )
        .unwrap();
        (0..6)
            .map(|_| tune(&pool, t.clone(), Some(cable)) == Tune::Locked)
            .collect::<Vec<bool>>()
    };
    let first = run();
    assert_eq!(run(), first);
    assert!(
        first.contains(&true) && first.contains(&false),
        "p = 0.5 over 6 tunes: {first:?}"
    );
}

#[test]
fn with_table_loss_the_collector_still_completes_and_with_total_loss_reports_it() {
    let cfg = embedded();
    let pool = pool_of(&cfg);
    let cable = adapter_named(&pool, "Emulated DVB-C");
    let m = mux_named(&cfg, "DVB-C 346 MHz");
    pool.set_faults(
        cable,
        tuners::Faults {
            table_loss_probability: 0.3,
            seed: Some(9),
            ..Default::default()
        },
    )
    .unwrap();
    // Lost sections show as continuity jumps on the PAT PID.
    let (tx, rx) = mpsc::channel();
    let lease = pool
        .lease(
            LeaseRequest {
                transponder: m.transponder().unwrap(),
                adapter: Some(cable),
                frontend: None,
                pids: PidFilter::All,
                tuning_timeout: Duration::from_secs(10),
                dvbsrc_properties: vec![],
            },
            Arc::new(Sink(Mutex::new(tx))),
        )
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut last_cc: Option<u8> = None;
    let mut jumps = 0;
    while jumps < 3 {
        assert!(Instant::now() < deadline, "no PAT section lost");
        if let Ok(Ev::Data(b)) = rx.recv_timeout(Duration::from_millis(100)) {
            for p in b
                .chunks_exact(188)
                .filter(|p| p[1] & 0x1F == 0 && p[2] == 0)
            {
                let cc = p[3] & 0x0F;
                if last_cc.is_some_and(|l| (l + 1) & 0x0F != cc) {
                    jumps += 1;
                }
                last_cc = Some(cc);
            }
        }
    }
    drop(lease);
    // The tables repeat: given the budgets (doubled here), the scan still finds everything.
    let mut c = collector_config(false);
    c.timeouts.multiplier_percent = 200;
    let r = scan(&pool, m, c);
    assert_eq!(r.verdict, Verdict::Found, "{r:?}");
    assert!(r.nit_actual.is_some(), "NIT actual: {:?}", r.missing);
    assert_eq!(r.services.len(), m.service.len());
    // Every section lost: locked, but no PAT, and the collector says so.
    pool.set_faults(
        cable,
        tuners::Faults {
            table_loss_probability: 1.0,
            ..Default::default()
        },
    )
    .unwrap();
    let r = scan(&pool, m, collector_config(false));
    assert_eq!(r.verdict, Verdict::Failed);
    assert_eq!(
        r.failure,
        Some(gstdvb2ip::proto::scan::collector::Failure::NoPat)
    );
    assert!(r.lock_ms.is_some(), "it did lock");
}

#[test]
fn nothing_outside_the_configured_muxes_locks() {
    let cfg = embedded();
    let pool = pool_of(&cfg);
    for m in &cfg.mux {
        // Next door to each configured mux (beyond the pool's tolerance), and the other PLP.
        let mut t = m.transponder().unwrap();
        t.frequency_khz += if t.delsys.is_satellite() {
            38_000
        } else {
            16_000
        };
        match tune(&pool, t.clone(), None) {
            Tune::Failed(reason) => assert!(reason.contains("no signal"), "{t}: {reason}"),
            Tune::Locked => panic!("{t} locked: nothing is configured there"),
        }
    }
    let mut plp2 = mux_named(&cfg, "DVB-T2 474 MHz").transponder().unwrap();
    plp2.stream_id = 2;
    assert!(matches!(tune(&pool, plp2, None), Tune::Failed(_)));
    // The configured ones lock.
    for m in &cfg.mux {
        assert_eq!(
            tune(&pool, m.transponder().unwrap(), None),
            Tune::Locked,
            "{}",
            m.name
        );
    }
}
