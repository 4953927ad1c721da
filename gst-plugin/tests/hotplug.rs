//! Tuner hotplug in the pool: frontends leave and join while leased (a reloaded configuration,
//! real adapters appearing under a watched directory), leases move to another frontend or go
//! without one, and the device watcher sees adapters and probes them.

mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gstdvb2ip::proto::tuner_pool::Transponder;
use gstdvb2ip::tuners::hotplug::{self, HotplugEvent, ProbeError, WatchOptions};
use gstdvb2ip::tuners::{
    BroadcastConfig, FeedSink, HwFrontend, Lease, LeaseRequest, PidFilter, Pool, TunerStatus,
};

/// Counts what a lease's sink receives.
#[derive(Default)]
struct Counting {
    bytes: AtomicU64,
    discont: AtomicU64,
    changed: Mutex<Vec<(u32, u32)>>,
    failed: Mutex<Vec<String>>,
    locked: AtomicBool,
}

impl FeedSink for Counting {
    fn push(&self, buffer: gst::Buffer) {
        if buffer.flags().contains(gst::BufferFlags::DISCONT) {
            self.discont.fetch_add(1, Ordering::Relaxed);
        }
        self.bytes
            .fetch_add(buffer.size() as u64, Ordering::Relaxed);
    }
    fn status(&self, _: &TunerStatus) {}
    fn lock_changed(&self, locked: bool, _: &TunerStatus) {
        self.locked.store(locked, Ordering::Relaxed);
    }
    fn tune_failed(&self, _: &str) {}
    fn failed(&self, reason: &str) {
        self.failed.lock().unwrap().push(reason.to_owned());
    }
    fn frontend_changed(&self, st: &TunerStatus) {
        self.changed.lock().unwrap().push((st.adapter, st.frontend));
    }
}

fn wait_for(what: &str, limit: Duration, mut f: impl FnMut() -> bool) {
    let end = Instant::now() + limit;
    while !f() {
        assert!(Instant::now() < end, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn transponder(cfg: &BroadcastConfig, mux: &str) -> Transponder {
    cfg.mux
        .iter()
        .find(|m| m.name == mux)
        .and_then(|m| m.transponder())
        .unwrap_or_else(|| panic!("no mux {mux:?}"))
}

fn lease(pool: &Pool, mux: &str) -> (Lease, Arc<Counting>) {
    let sink = Arc::new(Counting::default());
    let l = pool
        .lease(
            LeaseRequest {
                transponder: transponder(&pool.current_config(), mux),
                adapter: None,
                frontend: None,
                pids: PidFilter::All,
                tuning_timeout: Duration::from_secs(30),
                dvbsrc_properties: Vec::new(),
            },
            sink.clone(),
        )
        .expect("a free frontend");
    (l, sink)
}

/// Waits until the lease is locked and more data arrived.
fn flowing(l: &Lease, s: &Counting) {
    wait_for("lock", Duration::from_secs(30), || l.status().locked);
    let before = s.bytes.load(Ordering::Relaxed);
    wait_for("data", Duration::from_secs(30), || {
        s.bytes.load(Ordering::Relaxed) > before + 188 * 100
    });
}

/// The embedded configuration without the adapter named `name`.
fn without(cfg: &BroadcastConfig, name: &str) -> BroadcastConfig {
    let mut c = cfg.clone();
    c.adapter.retain(|a| a.name != name);
    c
}

#[test]
fn a_lease_moves_to_the_other_dvbt_frontend_when_its_adapter_is_dropped() {
    let pool = common::own_pool();
    let full = pool.current_config();
    let (l, s) = lease(&pool, "DVB-T 506 MHz");
    flowing(&l, &s);
    let first = l.frontend_name();
    let first_adapter = l.adapter();
    let gen = pool.membership_generation();
    let heard = Arc::new(Mutex::new(Vec::new()));
    let h2 = heard.clone();
    let _listener = pool.on_membership_change(move |c| {
        h2.lock()
            .unwrap()
            .push((c.added.len(), c.removed.len(), c.satip.len()));
    });

    let change = pool.reconfigure(without(&full, &first));
    assert_eq!(change.removed.len(), 1, "{change}");
    assert_eq!(change.removed[0].name, first);
    assert_eq!(change.moved.len(), 1, "{change}");
    assert_eq!(change.orphaned, 0);
    assert!(pool.membership_generation() > gen);
    assert_eq!(heard.lock().unwrap().as_slice(), &[(0, 1, 3)]);
    assert!(pool.frontends().iter().all(|f| f.name != first));

    // Same lease, another frontend: status and index say so, data goes on.
    assert_ne!(l.frontend_name(), first);
    assert!(
        l.frontend_name().contains("DVB-T/T2"),
        "{}",
        l.frontend_name()
    );
    let idx = l.frontend_index().expect("served");
    assert_eq!(pool.frontends()[idx].name, l.frontend_name());
    assert_eq!(pool.frontends()[idx].users, 1);
    assert_eq!(
        s.changed.lock().unwrap().as_slice(),
        &[(l.adapter(), l.frontend())]
    );
    flowing(&l, &s);
    assert_eq!(l.status().name, l.frontend_name());
    assert!(s.discont.load(Ordering::Relaxed) >= 1, "no DISCONT buffer");
    assert!(s.failed.lock().unwrap().is_empty());

    // Back again: it joins with its old number, X_SATIPCAP's count returns; the lease stays.
    let change = pool.reconfigure(full.clone());
    assert_eq!(change.added.len(), 1, "{change}");
    assert_eq!(change.added[0].adapter, first_adapter);
    assert_eq!(pool.satip_frontends().len(), 4);
    assert_eq!(pool.frontends().len(), 4);
    assert_ne!(l.frontend_name(), first);
    drop(l);
    wait_for("all free", Duration::from_secs(10), || {
        pool.frontends().iter().all(|f| f.users == 0)
    });
}

#[test]
fn without_a_free_frontend_the_lease_goes_unlocked_and_fails_then_resumes() {
    let pool = common::own_pool();
    let full = pool.current_config();
    let (a, sa) = lease(&pool, "DVB-T 506 MHz");
    let (b, sb) = lease(&pool, "DVB-T2 474 MHz");
    flowing(&a, &sa);
    flowing(&b, &sb);
    let a_name = a.frontend_name();
    let change = pool.reconfigure(without(&full, &a_name));
    assert_eq!(change.orphaned, 1, "{change}");
    assert_eq!(a.frontend_index(), None);
    let st = a.status();
    assert!(!st.locked && st.level == 0 && st.quality == 0, "{st:?}");
    assert!(!sa.locked.load(Ordering::Relaxed));
    let failed = sa.failed.lock().unwrap().clone();
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert!(failed[0].contains("no other frontend"), "{failed:?}");
    // The other lease is untouched.
    assert!(b.status().locked);
    assert!(sb.failed.lock().unwrap().is_empty());

    // The adapter comes back: the lease gets a frontend again (that one).
    let change = pool.reconfigure(full.clone());
    assert_eq!(change.resumed, 1, "{change}");
    assert_eq!(a.frontend_name(), a_name);
    flowing(&a, &sa);

    // Again without it; this time the other lease ends, and its frontend takes ours over.
    let change = pool.reconfigure(without(&full, &a_name));
    assert_eq!(change.orphaned, 1, "{change}");
    assert_eq!(a.frontend_index(), None);
    let b_name = b.frontend_name();
    drop(b);
    assert_eq!(a.frontend_name(), b_name);
    assert!(a.frontend_index().is_some());
    flowing(&a, &sa);
    assert_eq!(sa.changed.lock().unwrap().len(), 2);
}

#[test]
fn watcher_sees_adapters_come_and_go_and_probes_their_frontends() {
    common::init();
    let pool = common::own_pool();
    let root = common::temp_dir("hotplug", "watch");
    let events = Arc::new(Mutex::new(Vec::<HotplugEvent>::new()));
    let probed = Arc::new(Mutex::new(Vec::<u32>::new()));
    let (e2, p2) = (events.clone(), probed.clone());
    // A fake probe: a frontend node whose content names delivery systems is a tuner.
    let probe = move |dir: &std::path::Path, adapter: u32| {
        p2.lock().unwrap().push(adapter);
        let text = std::fs::read_to_string(dir.join("frontend0"))
            .map_err(|e| ProbeError::NotReady(e.to_string()))?;
        if text.is_empty() {
            return Err(ProbeError::NotReady("empty".into()));
        }
        Ok(vec![HwFrontend {
            adapter,
            frontend: 0,
            name: format!("fake {adapter}"),
            delsys: text
                .split(',')
                .filter_map(gstdvb2ip::proto::tuner_pool::DelSys::from_nick)
                .collect(),
        }])
    };
    let w = pool
        .watch_devices(WatchOptions {
            root: root.clone(),
            probe: Arc::new(probe),
            on_event: Some(Arc::new(move |e: &HotplugEvent| {
                e2.lock().unwrap().push(e.clone())
            })),
        })
        .unwrap();
    let has = |e: &HotplugEvent| events.lock().unwrap().contains(e);
    // /dev/dvb appears after the watcher started, then adapter7 and, later, its frontend.
    let dvb = root.join("dvb");
    std::fs::create_dir(&dvb).unwrap();
    wait_for("dvb directory", Duration::from_secs(10), || {
        has(&HotplugEvent::DvbDirectory)
    });
    std::fs::create_dir(dvb.join("adapter7")).unwrap();
    wait_for("adapter7", Duration::from_secs(10), || {
        has(&HotplugEvent::AdapterAppeared(7))
    });
    wait_for(
        "a probe without a frontend node",
        Duration::from_secs(10),
        || probed.lock().unwrap().contains(&7),
    );
    std::fs::write(dvb.join("adapter7/frontend0"), "dvb-t,dvb-t2").unwrap();
    wait_for("adapter7 joined", Duration::from_secs(10), || {
        has(&HotplugEvent::Joined {
            adapter: 7,
            frontends: vec![0],
        })
    });
    assert_eq!(pool.hardware_frontends(), vec![(7, 0)]);
    let fes = pool.frontends();
    assert_eq!(fes.len(), 5);
    assert_eq!((fes[0].adapter, fes[0].name.as_str()), (7, "fake 7"));
    assert!(!fes[0].emulated);
    // X_SATIPCAP counts it with the DVB-T2 group.
    assert_eq!(pool.satip_frontends().len(), 5);

    // Removing the node, then the directory: it leaves.
    std::fs::remove_file(dvb.join("adapter7/frontend0")).unwrap();
    wait_for("frontend0 left", Duration::from_secs(10), || {
        has(&HotplugEvent::Left {
            adapter: 7,
            frontend: Some(0),
        })
    });
    assert!(pool.hardware_frontends().is_empty());
    std::fs::remove_dir(dvb.join("adapter7")).unwrap();
    wait_for("adapter7 left", Duration::from_secs(10), || {
        has(&HotplugEvent::Left {
            adapter: 7,
            frontend: None,
        })
    });
    assert_eq!(pool.frontends().len(), 4);
    drop(w);
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn the_real_probe_of_a_file_that_is_no_device_fails_cleanly() {
    common::init();
    let pool = common::own_pool();
    let root = common::temp_dir("hotplug", "probe");
    let dvb = root.join("dvb");
    std::fs::create_dir_all(dvb.join("adapter0")).unwrap();
    for n in ["demux0", "dvr0", "frontend0"] {
        std::fs::write(dvb.join("adapter0").join(n), b"not a device").unwrap();
    }
    // Called directly: a clear failure, no panic.
    let direct = hotplug::probe_adapter(&dvb.join("adapter0"), 0).unwrap_err();
    assert!(
        matches!(&direct, ProbeError::Failed(s) if s.contains("not a DVB frontend")),
        "{direct:?}"
    );
    // Through the watcher (enumerated at start, then a second adapter by event).
    let events = Arc::new(Mutex::new(Vec::<HotplugEvent>::new()));
    let e2 = events.clone();
    let w = pool
        .watch_devices(WatchOptions {
            root: root.clone(),
            on_event: Some(Arc::new(move |e: &HotplugEvent| {
                e2.lock().unwrap().push(e.clone())
            })),
            ..Default::default()
        })
        .unwrap();
    let failed = |n: u32| {
        events
            .lock()
            .unwrap()
            .iter()
            .any(|e| matches!(e, HotplugEvent::ProbeFailed { adapter, reason } if *adapter == n && reason.contains("FE_GET_INFO")))
    };
    wait_for("adapter0 probe failure", Duration::from_secs(10), || {
        failed(0)
    });
    std::fs::create_dir(dvb.join("adapter1")).unwrap();
    for n in ["demux0", "dvr0", "frontend0"] {
        std::fs::write(dvb.join("adapter1").join(n), b"not a device").unwrap();
    }
    wait_for("adapter1 probe failure", Duration::from_secs(10), || {
        failed(1)
    });
    assert!(pool.hardware_frontends().is_empty());
    assert_eq!(pool.frontends().len(), 4);
    drop(w);
    let _ = std::fs::remove_dir_all(&root);
}
