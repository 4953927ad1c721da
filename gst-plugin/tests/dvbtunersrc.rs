//! dvbtunersrc against the emulated tuner pool: sharing, PID changes while playing, busy error,
//! lock time, fault knobs, status messages, invalid properties.
//!
//! Each test drives a tuner pool of its own (`common::own_pool()`, handed to its pipelines in a
//! `dvb2ip.tuner-pool` context), so they run in parallel. Only
//! `a_pool_handed_in_a_context_serves_the_pipeline` looks at the default pool (that nothing
//! leases from it); `emulated_loop.rs` plays from the default pool, as gst-launch does.

mod common;

use std::time::{Duration, Instant};

use gst::prelude::*;
use gstdvb2ip::tuners;

struct Rx {
    pipeline: gst::Pipeline,
    sink: gst_app::AppSink,
    src: gst::Element,
}

impl Rx {
    fn new(pool: &tuners::Pool, props: &str) -> Rx {
        let p = gst::parse::launch(&format!(
            "dvbtunersrc name=src {props} ! appsink name=sink sync=false max-buffers=2000"
        ))
        .unwrap()
        .downcast::<gst::Pipeline>()
        .unwrap();
        let sink = p
            .by_name("sink")
            .unwrap()
            .downcast::<gst_app::AppSink>()
            .unwrap();
        let src = p.by_name("src").unwrap();
        common::use_pool(&p, pool);
        Rx {
            pipeline: p,
            sink,
            src,
        }
    }

    fn play(&self) -> Result<(), gst::StateChangeError> {
        self.pipeline.set_state(gst::State::Playing).map(|_| ())
    }

    /// Collects packets for `d` (or until `n` packets), returning them.
    fn collect(&self, d: Duration, n: usize) -> Vec<[u8; 188]> {
        let end = Instant::now() + d;
        let mut out = Vec::new();
        while Instant::now() < end && out.len() < n {
            if let Some(s) = self
                .sink
                .try_pull_sample(gst::ClockTime::from_mseconds(100))
            {
                let b = s.buffer().unwrap().map_readable().unwrap();
                assert_eq!(b.len() % 188, 0);
                for p in b.chunks_exact(188) {
                    out.push(p.try_into().unwrap());
                }
            }
        }
        out
    }

    /// Pulls `n` buffers (at most for `d`), keeping them.
    fn buffers(&self, d: Duration, n: usize) -> Vec<gst::Buffer> {
        let end = Instant::now() + d;
        let mut out = Vec::new();
        while Instant::now() < end && out.len() < n {
            if let Some(s) = self
                .sink
                .try_pull_sample(gst::ClockTime::from_mseconds(100))
            {
                out.push(s.buffer_owned().unwrap());
            }
        }
        out
    }

    fn error(&self, timeout: Duration) -> Option<gst::glib::Error> {
        let bus = self.pipeline.bus().unwrap();
        let m = bus.timed_pop_filtered(
            gst::ClockTime::from_nseconds(timeout.as_nanos() as u64),
            &[gst::MessageType::Error],
        )?;
        match m.view() {
            gst::MessageView::Error(e) => Some(e.error()),
            _ => None,
        }
    }
}

impl Drop for Rx {
    fn drop(&mut self) {
        let _ = self.pipeline.set_state(gst::State::Null);
    }
}

fn pid(p: &[u8; 188]) -> u16 {
    ((p[1] as u16 & 0x1F) << 8) | p[2] as u16
}

const T506: &str = "delsys=dvb-t frequency=506000000 bandwidth-hz=8000000";
const T2_474: &str = "delsys=dvb-t2 frequency=474000000 bandwidth-hz=8000000 stream-id=0";

#[test]
fn plays_the_mux_with_psi_and_services() {
    let pool = common::own_pool();
    let rx = Rx::new(&pool, T506);
    rx.play().unwrap();
    let pkts = rx.collect(Duration::from_secs(10), 20_000);
    assert!(pkts.len() >= 20_000, "got {} packets", pkts.len());
    let pids: std::collections::BTreeSet<u16> = pkts.iter().map(pid).collect();
    for p in [
        0x0000, 0x0010, 0x0011, 0x0012, 0x0014, 0x100, 0x101, 0x102, 0x200, 0x201, 0x302, 0x1FFF,
    ] {
        assert!(pids.contains(&p), "PID {p:#x} missing from {pids:?}");
    }
    assert!(rx.src.property::<bool>("locked"));
    assert!(rx.src.property::<u32>("signal-level") > 0);
    assert!(rx.src.property::<i32>("adapter-in-use") >= 0);
}

#[test]
fn subscribers_on_one_transponder_share_a_frontend_with_own_pid_sets() {
    let pool = common::own_pool();
    let a = Rx::new(&pool, &format!("{T506} pids=all"));
    let b = Rx::new(&pool, &format!("{T506} pids=0,16,256"));
    a.play().unwrap();
    b.play().unwrap();
    // PIDs 0, 16 and 256 (PSI) bring about 20 packets per second: 200 take about 10 s, so
    // allow 30 on a loaded machine.
    let pb = b.collect(Duration::from_secs(30), 200);
    assert!(pb.len() >= 200, "b got {} packets", pb.len());
    assert!(
        pb.iter().all(|p| matches!(pid(p), 0 | 16 | 256)),
        "b got a PID outside its set"
    );
    let pa = a.collect(Duration::from_secs(10), 2000);
    assert!(pa.iter().any(|p| pid(p) == 0x101));
    let used: Vec<_> = pool
        .frontends()
        .into_iter()
        .filter(|f| f.users > 0)
        .collect();
    assert_eq!(used.len(), 1, "{used:?}");
    assert_eq!(used[0].users, 2);
    assert_eq!(
        a.src.property::<i32>("adapter-in-use"),
        b.src.property::<i32>("adapter-in-use")
    );
    drop(a);
    drop(b);
    assert!(
        pool.frontends().iter().all(|f| f.users == 0),
        "frontend not released"
    );
}

#[test]
fn pids_change_while_playing_without_retuning() {
    let pool = common::own_pool();
    let rx = Rx::new(&pool, &format!("{T506} pids=0"));
    rx.play().unwrap();
    // PAT alone comes at a few packets per second: a loaded machine gets 30 s for 50.
    let before = rx.collect(Duration::from_secs(30), 50);
    assert!(before.len() >= 50 && before.iter().all(|p| pid(p) == 0));
    let adapter = rx.src.property::<i32>("adapter-in-use");
    rx.src.set_property("pids", "0:257");
    // Drain what was queued before the change, then expect the new PID.
    let after = rx.collect(Duration::from_secs(10), 3000);
    assert!(after.iter().any(|p| pid(p) == 257), "PID 257 never arrived");
    assert!(after.iter().all(|p| matches!(pid(p), 0 | 257)));
    assert_eq!(rx.src.property::<i32>("adapter-in-use"), adapter);
    assert!(rx.src.property::<bool>("locked"));
}

#[test]
fn no_free_frontend_is_a_busy_error_naming_the_request() {
    let pool = common::own_pool();
    // Two DVB-T/T2 frontends: take both with different transponders.
    let a = Rx::new(&pool, T506);
    let b = Rx::new(&pool, T2_474);
    a.play().unwrap();
    b.play().unwrap();
    let c = Rx::new(
        &pool,
        "delsys=dvb-t frequency=522000000 bandwidth-hz=8000000",
    );
    assert!(c.play().is_err());
    let e = c.error(Duration::from_secs(5)).expect("error message");
    assert!(e.matches(gst::ResourceError::Busy), "{e:?}");
    assert!(e.message().contains("522000 kHz"), "{}", e.message());
    // A third user of an already tuned transponder is still served.
    let d = Rx::new(&pool, T506);
    d.play().unwrap();
    assert!(!d.collect(Duration::from_secs(10), 10).is_empty());
}

#[test]
fn invalid_tuning_values_name_the_property() {
    let pool = common::own_pool();
    for (props, name) in [
        ("delsys=dvb-t", "frequency"),
        ("frequency=506000000", "delsys"),
        ("delsys=dvb-t frequency=506000", "frequency"),
        (
            "delsys=dvb-s2 frequency=11494000 polarity=x symbol-rate=22000",
            "polarity",
        ),
        ("delsys=dvb-c-a frequency=346000000", "symbol-rate"),
    ] {
        let rx = Rx::new(&pool, props);
        assert!(rx.play().is_err(), "{props}");
        let e = rx.error(Duration::from_secs(2)).expect("error");
        assert!(e.matches(gst::ResourceError::Settings), "{props}: {e:?}");
        assert!(
            e.message().contains(&format!("'{name}'")),
            "{props}: {}",
            e.message()
        );
    }
}

#[test]
fn no_multiplex_there_means_no_lock_and_an_error_after_the_timeout() {
    let pool = common::own_pool();
    let rx = Rx::new(
        &pool,
        "delsys=dvb-t frequency=690000000 tuning-timeout=800000000",
    );
    rx.play().unwrap();
    let e = rx.error(Duration::from_secs(10)).expect("tuning error");
    assert!(e.matches(gst::ResourceError::NotFound), "{e:?}");
    assert!(e.message().contains("690000 kHz"), "{}", e.message());
    assert!(!rx.src.property::<bool>("locked"));
}

/// Waits for the first `dvb-tuner-lock` with `locked=true`, returning when it came after `t0`.
fn first_lock(rx: &Rx, t0: Instant, within: Duration) -> Option<Duration> {
    let bus = rx.pipeline.bus().unwrap();
    let end = Instant::now() + within;
    while Instant::now() < end {
        let Some(m) = bus.timed_pop_filtered(
            gst::ClockTime::from_mseconds(50),
            &[gst::MessageType::Element],
        ) else {
            continue;
        };
        let s = m.structure().unwrap();
        if s.name() == "dvb-tuner-lock" && s.get::<bool>("locked").unwrap() {
            return Some(t0.elapsed());
        }
    }
    None
}

#[test]
fn lock_comes_after_the_default_lock_time() {
    let pool = common::own_pool();
    let rx = Rx::new(&pool, T2_474);
    let t0 = Instant::now();
    rx.play().unwrap();
    let lock_after = first_lock(&rx, t0, Duration::from_secs(30)).expect("no lock message");
    // The emulated frontends' configured lock time is 300 ms: no lock before it.
    assert!(
        lock_after >= Duration::from_millis(300),
        "locked after {lock_after:?}"
    );
}

#[test]
fn a_configured_lock_time_delays_the_lock() {
    let mut cfg = tuners::BroadcastConfig::embedded();
    for a in &mut cfg.adapter {
        a.lock_time_ms = 1500;
    }
    let pool = common::own_pool_with(cfg);
    let rx = Rx::new(&pool, T506);
    let t0 = Instant::now();
    rx.play().unwrap();
    let early = rx.src.property::<bool>("locked");
    let early_at = t0.elapsed();
    assert!(
        !early || early_at >= Duration::from_millis(1500),
        "locked {early_at:?} after PLAYING"
    );
    let lock_after = first_lock(&rx, t0, Duration::from_secs(30)).expect("no lock message");
    assert!(
        lock_after >= Duration::from_millis(1500),
        "locked after {lock_after:?}, configured 1500 ms"
    );
    assert!(rx.src.property::<bool>("locked"));
    assert!(!rx.collect(Duration::from_secs(10), 100).is_empty());
}

#[test]
fn status_is_posted_once_a_second_with_every_field() {
    let pool = common::own_pool();
    let rx = Rx::new(&pool, T2_474);
    let bus = rx.pipeline.bus().unwrap();
    rx.play().unwrap();
    first_lock(&rx, Instant::now(), Duration::from_secs(30)).expect("no lock");
    // Count statuses over 6 s of the pipeline's running time. They are posted at least 1 s
    // apart, so at most 7 fit in (8 with one popped late); a loaded machine may delay some.
    let window = gst::ClockTime::from_seconds(6);
    let start = rx.pipeline.current_running_time().unwrap();
    let mut statuses = Vec::new();
    while rx.pipeline.current_running_time().unwrap() < start + window {
        let _ = rx.sink.try_pull_sample(gst::ClockTime::ZERO);
        let Some(m) = bus.timed_pop_filtered(
            gst::ClockTime::from_mseconds(50),
            &[gst::MessageType::Element],
        ) else {
            continue;
        };
        let s = m.structure().unwrap().to_owned();
        if s.name() == "dvb-tuner-status" {
            statuses.push(s);
        }
    }
    assert!(
        (3..=8).contains(&statuses.len()),
        "{} statuses in 6 s",
        statuses.len()
    );
    for s in &statuses {
        assert!(s
            .get::<String>("frontend-name")
            .unwrap()
            .starts_with("Emulated"));
        assert!(s.get::<u32>("adapter").is_ok() && s.get::<u32>("frontend").is_ok());
        assert!(
            s.get::<String>("transponder")
                .unwrap()
                .contains("474000 kHz"),
            "{s}"
        );
        assert!(s.get::<bool>("locked").unwrap(), "{s}");
        let level = s.get::<u32>("signal-level").unwrap();
        let quality = s.get::<u32>("signal-quality").unwrap();
        assert!(
            (1..=100).contains(&level) && (1..=100).contains(&quality),
            "{s}"
        );
        assert_eq!(s.get::<f64>("signal-dbm").unwrap(), -45.0, "{s}");
        let snr = s.get::<f64>("snr").unwrap();
        assert!(snr > 0.0 && snr < 60.0, "{s}");
        let ber = s.get::<f64>("ber").unwrap();
        assert!((0.0..=1.0).contains(&ber), "{s}");
    }
    // The properties agree with the messages (the default emulated frontend: 78 %, 93 %,
    // -45 dBm, 27.5 dB).
    assert!(rx.src.property::<bool>("locked"));
    assert_eq!(rx.src.property::<f64>("signal-dbm"), -45.0);
    assert_eq!(rx.src.property::<u32>("signal-level"), 78);
    assert_eq!(rx.src.property::<u32>("signal-quality"), 93);
    assert_eq!(rx.src.property::<f64>("snr"), 27.5);
    assert_eq!(rx.src.property::<f64>("ber"), 0.0);
    assert!(rx.src.property::<i32>("adapter-in-use") >= 0);
    assert!(rx
        .src
        .property::<String>("frontend-name")
        .starts_with("Emulated"));
    drop(rx);
    // Without a lease the figures are unknown.
    let idle = Rx::new(&pool, T2_474);
    assert!(!idle.src.property::<bool>("locked"));
    assert_eq!(idle.src.property::<f64>("snr"), -1.0);
    assert_eq!(idle.src.property::<f64>("ber"), -1.0);
    assert_eq!(idle.src.property::<f64>("signal-dbm"), -1000.0);
    assert_eq!(idle.src.property::<i32>("adapter-in-use"), -1);
}

#[test]
fn pids_all_copies_nothing_and_a_pid_set_copies_its_packets() {
    use std::sync::atomic::Ordering;
    let pool = common::own_pool();
    // Two pids=all subscribers of one mux: without copies they hold the very memory the feed
    // produced, so buffers both hold at the same time have the same data address. A copy per
    // subscriber would give each its own allocation (both kept alive here, so an address
    // cannot be reused between them).
    let a = Rx::new(&pool, &format!("{T506} pids=all"));
    let b = Rx::new(&pool, &format!("{T506} pids=all"));
    a.play().unwrap();
    b.play().unwrap();
    let ba = a.buffers(Duration::from_secs(30), 200);
    let bb = b.buffers(Duration::from_secs(30), 200);
    assert!(
        ba.len() >= 200 && bb.len() >= 200,
        "{} and {} buffers",
        ba.len(),
        bb.len()
    );
    let addr = |buf: &gst::Buffer| buf.map_readable().unwrap().as_ptr() as usize;
    let in_b: std::collections::BTreeSet<usize> = bb.iter().map(addr).collect();
    let shared = ba.iter().filter(|buf| in_b.contains(&addr(buf))).count();
    // Both were subscribed before most of these chunks were produced: all but the first
    // few are shared.
    assert!(
        shared >= ba.len() / 2,
        "only {shared} of {} pids=all buffers share memory with another pids=all subscriber",
        ba.len()
    );
    eprintln!("pids=all: {shared} of {} buffers shared", ba.len());
    drop((a, b));
    // A PID set filters, which copies the packets it passes.
    let copied = || pool.counters().bytes_copied.load(Ordering::Relaxed);
    let c0 = copied();
    let some = Rx::new(&pool, &format!("{T506} pids=0,256,257"));
    some.play().unwrap();
    let got = some.collect(Duration::from_secs(10), 100);
    assert!(got.len() >= 100, "filtered subscriber got {}", got.len());
    assert!(copied() > c0, "a filtered subscriber copied nothing");
}

/// Enum property value as its nick.
fn nick(e: &gst::Element, name: &str) -> String {
    let v = e.property_value(name);
    let (_, ev) = gst::glib::EnumValue::from_value(&v).expect("an enum property");
    ev.nick().to_string()
}

#[test]
fn a_dvbsrc_launch_line_plays_and_its_properties_read_back() {
    let pool = common::own_pool();
    // As one would write it for dvbsrc (deprecated `bandwidth` included).
    let rx = Rx::new(
        &pool,
        "delsys=dvb-t frequency=506000000 bandwidth=8 modulation=qam-64 trans-mode=8k \
         guard=4 code-rate-hp=2/3 code-rate-lp=none hierarchy=none inversion=auto",
    );
    assert_eq!(rx.src.property::<u32>("bandwidth-hz"), 8_000_000);
    for (name, value) in [
        ("bandwidth", "8"),
        ("modulation", "qam-64"),
        ("trans-mode", "8k"),
        ("guard", "4"),
        ("code-rate-hp", "2/3"),
        ("code-rate-lp", "none"),
        ("hierarchy", "none"),
        ("inversion", "auto"),
        // Untouched: dvbsrc's defaults.
        ("pilot", "auto"),
        ("rolloff", "auto"),
        ("interleaving", "auto"),
        ("isdbt-layera-fec", "auto"),
    ] {
        assert_eq!(nick(&rx.src, name), value, "{name}");
    }
    assert_eq!(rx.src.property::<u32>("isdbt-layer-enabled"), 7);
    assert_eq!(rx.src.property::<i32>("isdbt-partial-reception"), 1);
    rx.play().unwrap();
    let pkts = rx.collect(Duration::from_secs(10), 500);
    assert!(pkts.len() >= 500, "{} packets", pkts.len());
    assert!(pkts.iter().any(|p| pid(p) == 0), "no PAT");
    // A DVB-S2 line too.
    let sat = Rx::new(
        &pool,
        "delsys=dvb-s2 frequency=11494000 polarity=h symbol-rate=22000 modulation=8psk \
         code-rate-hp=3/4 pilot=on rolloff=35 inversion=auto",
    );
    sat.play().unwrap();
    assert!(sat.collect(Duration::from_secs(10), 100).len() >= 100);
    assert_eq!(nick(&sat.src, "rolloff"), "35");
}

#[test]
fn an_invalid_dvbsrc_value_is_an_error_naming_the_property() {
    // Refused while parsing the line or URI: no pool is involved.
    common::init();
    for (prop, bad) in [
        ("guard", "17"),
        ("code-rate-hp", "1/9"),
        ("trans-mode", "3k"),
    ] {
        let line = format!("dvbtunersrc {T506} {prop}={bad} ! fakesink");
        let e = gst::parse::launch(&line).expect_err(&line);
        assert!(e.message().contains(prop), "{line}: {}", e.message());
        let uri = format!("dvbtuner://?delsys=dvb-t&frequency=506000000&{prop}={bad}");
        let e = gst::Element::make_from_uri(gst::URIType::Src, &uri, None).expect_err(&uri);
        assert!(e.message().contains(prop), "{uri}: {}", e.message());
    }
}

/// Every tuning property of dvbsrc exists on dvbtunersrc with the same type, range, values and
/// default (dvbsrc is in gstreamer1.0-plugins-bad, which the server needs anyway).
#[test]
fn tuning_properties_mirror_dvbsrc() {
    common::init();
    let dvbsrc = gst::ElementFactory::make("dvbsrc").build().expect(
        "dvbsrc not found: install gstreamer1.0-plugins-bad (scripts/deps.sh SERVER_PACKAGES) \
         or run scripts/test.sh",
    );
    let ours = gst::ElementFactory::make("dvbtunersrc").build().unwrap();
    // Not tuning: the base class, the device and its buffers, dvbsrc's own messages, the
    // `tune` action. `adapter`/`frontend` default to -1 (any) in the pool, `pids` is ours
    // (changeable while playing, no automatic PAT/CAT), and `modulation` defaults to auto.
    let skip = [
        "name",
        "parent",
        "blocksize",
        "num-buffers",
        "typefind",
        "do-timestamp",
        "dvb-buffer-size",
        "stats-reporting-interval",
        "timeout",
        "tune",
        "pids",
        "adapter",
        "frontend",
    ];
    for p in dvbsrc.list_properties() {
        let name = p.name();
        if skip.contains(&name) {
            continue;
        }
        let q = ours
            .find_property(name)
            .unwrap_or_else(|| panic!("dvbtunersrc lacks dvbsrc's {name}"));
        let (pt, qt) = (p.value_type(), q.value_type());
        if pt.is_a(gst::glib::Type::ENUM) {
            assert!(qt.is_a(gst::glib::Type::ENUM), "{name}: not an enum");
            let pc = gst::glib::EnumClass::with_type(pt).unwrap();
            let qc = gst::glib::EnumClass::with_type(qt).unwrap();
            let values = |c: &gst::glib::EnumClass| {
                c.values()
                    .iter()
                    .map(|v| (v.value(), v.name().to_string(), v.nick().to_string()))
                    .collect::<Vec<_>>()
            };
            assert_eq!(values(&pc), values(&qc), "{name}: enum values");
            // The initial values, as gst-inspect shows them (dvbsrc's deprecated `bandwidth`
            // starts at AUTO whatever its pspec's default says).
            let initial = |e: &gst::Element| {
                gst::glib::EnumValue::from_value(&e.property_value(name))
                    .unwrap()
                    .1
                    .value()
            };
            if name != "modulation" {
                assert_eq!(initial(&dvbsrc), initial(&ours), "{name}: default");
            }
        } else {
            assert_eq!(pt, qt, "{name}: type");
            // Initial values as gst-inspect shows them (dvbsrc's `bandwidth-hz` pspec says
            // 8000000, but the element starts at 0).
            if p.flags().contains(gst::glib::ParamFlags::READABLE) {
                assert_eq!(
                    dvbsrc.property_value(name).serialize().unwrap(),
                    ours.property_value(name).serialize().unwrap(),
                    "{name}: default"
                );
            }
            if let (Some(a), Some(b)) = (
                p.downcast_ref::<gst::glib::ParamSpecInt>(),
                q.downcast_ref::<gst::glib::ParamSpecInt>(),
            ) {
                assert_eq!(
                    (a.minimum(), a.maximum()),
                    (b.minimum(), b.maximum()),
                    "{name}"
                );
            }
            if let (Some(a), Some(b)) = (
                p.downcast_ref::<gst::glib::ParamSpecUInt>(),
                q.downcast_ref::<gst::glib::ParamSpecUInt>(),
            ) {
                assert_eq!(
                    (a.minimum(), a.maximum()),
                    (b.minimum(), b.maximum()),
                    "{name}"
                );
            }
        }
    }
}

fn cc_errors(pkts: &[[u8; 188]]) -> usize {
    let mut last = std::collections::HashMap::new();
    let mut errors = 0;
    for p in pkts {
        let pid = pid(p);
        if pid == 0x1FFF || p[3] & 0x10 == 0 {
            continue;
        }
        let cc = p[3] & 0x0F;
        if let Some(l) = last.insert(pid, cc) {
            if cc != (l + 1) & 0x0F {
                errors += 1;
            }
        }
    }
    errors
}

#[test]
fn fault_knobs_drop_packets_and_flip_bits() {
    let pool = common::own_pool();
    let rx = Rx::new(&pool, T506);
    rx.play().unwrap();
    let clean = rx.collect(Duration::from_secs(10), 20_000);
    assert_eq!(cc_errors(&clean), 0, "clean stream has CC errors");
    let adapter = rx.src.property::<i32>("adapter-in-use") as u32;
    pool.set_faults(
        adapter,
        tuners::Faults {
            drop_probability: 0.02,
            ..Default::default()
        },
    )
    .unwrap();
    let _ = rx.collect(Duration::from_millis(300), usize::MAX); // flush the queue
    let lossy = rx.collect(Duration::from_secs(10), 20_000);
    assert!(
        cc_errors(&lossy) > 10,
        "drops not visible: {}",
        cc_errors(&lossy)
    );
    pool.set_faults(
        adapter,
        tuners::Faults {
            bit_error_rate: 1e-4,
            ..Default::default()
        },
    )
    .unwrap();
    let _ = rx.collect(Duration::from_millis(300), usize::MAX);
    let noisy = rx.collect(Duration::from_secs(10), 20_000);
    // Null packets are all 0xFF after the header: count flipped bits there.
    let flipped: u32 = noisy
        .iter()
        .filter(|p| pid(p) == 0x1FFF)
        .map(|p| p[4..].iter().map(|b| (!b).count_ones()).sum::<u32>())
        .sum();
    assert!(flipped > 0, "no bit errors seen");
}

#[test]
fn lock_loss_warns_and_streaming_resumes() {
    let pool = common::own_pool();
    let rx = Rx::new(&pool, T2_474);
    rx.play().unwrap();
    assert!(!rx.collect(Duration::from_secs(10), 100).is_empty());
    let adapter = rx.src.property::<i32>("adapter-in-use") as u32;
    pool.set_faults(
        adapter,
        tuners::Faults {
            lose_lock_after_ms: 200,
            lock_lost_for_ms: 700,
            ..Default::default()
        },
    )
    .unwrap();
    let bus = rx.pipeline.bus().unwrap();
    let mut saw_warning = false;
    let mut saw_unlock = false;
    let mut saw_relock = false;
    let end = Instant::now() + Duration::from_secs(15);
    while Instant::now() < end && !(saw_warning && saw_unlock && saw_relock) {
        let _ = rx.sink.try_pull_sample(gst::ClockTime::ZERO);
        let Some(m) = bus.timed_pop_filtered(
            gst::ClockTime::from_mseconds(50),
            &[gst::MessageType::Element, gst::MessageType::Warning],
        ) else {
            continue;
        };
        match m.view() {
            gst::MessageView::Warning(w) => {
                assert!(w.error().message().contains("Lost lock"));
                saw_warning = true;
            }
            gst::MessageView::Element(e) => {
                let s = e.structure().unwrap();
                if s.name() == "dvb-tuner-lock" {
                    // The emulated signal fades by 20 dB while the lock is lost.
                    let dbm = s.get::<f64>("signal-dbm").unwrap();
                    if s.get::<bool>("locked").unwrap() {
                        assert_eq!(dbm, -45.0, "{s}");
                        saw_relock |= saw_unlock;
                    } else {
                        assert_eq!(dbm, -65.0, "{s}");
                        saw_unlock = true;
                    }
                }
            }
            _ => {}
        }
    }
    assert!(
        saw_warning && saw_unlock && saw_relock,
        "warning {saw_warning} unlock {saw_unlock} relock {saw_relock}"
    );
    pool.set_faults(adapter, tuners::Faults::default()).unwrap();
    let _ = rx.collect(Duration::from_millis(200), usize::MAX);
    assert!(
        !rx.collect(Duration::from_secs(5), 100).is_empty(),
        "streaming did not resume"
    );
}

#[test]
fn all_delivery_systems_of_the_default_config_play() {
    let pool = common::own_pool();
    for props in [
        T2_474,
        T506,
        "delsys=dvb-c-a frequency=346000000 symbol-rate=6900 modulation=qam-256",
        "delsys=dvb-s2 frequency=11494000 polarity=h symbol-rate=22000",
    ] {
        let rx = Rx::new(&pool, props);
        rx.play().unwrap();
        let pkts = rx.collect(Duration::from_secs(10), 500);
        assert!(pkts.len() >= 500, "{props}: {} packets", pkts.len());
        assert!(pkts.iter().any(|p| pid(p) == 0), "{props}: no PAT");
    }
}

/// A pipeline handed a pool of its own in a `dvb2ip.tuner-pool` context leases from it, not
/// from the process-wide default pool: `dvbtunersrc` directly, and the one inside
/// `satipmapsrc`.
#[test]
fn a_pool_handed_in_a_context_serves_the_pipeline() {
    // The only test of this binary touching the default pool, so it needs no lock: every
    // other test leases from a pool of its own, and this one asserts the default pool stays
    // unused.
    common::init_emulated();
    let own = tuners::Pool::new(tuners::BroadcastConfig::embedded());
    assert_ne!(&own, tuners::Pool::default_pool());
    let in_use = |p: &tuners::Pool| p.frontends().iter().filter(|f| f.users > 0).count();
    for launch in [
        format!("dvbtunersrc name=src {T506} ! appsink name=sink sync=false max-buffers=2000"),
        "satipmapsrc name=src request=\"freq=506&msys=dvbt&bw=8&pids=0,16,17\" ! appsink name=sink sync=false max-buffers=2000".to_owned(),
    ] {
        let p = gst::parse::launch(&launch)
            .unwrap()
            .downcast::<gst::Pipeline>()
            .unwrap();
        p.set_context(&tuners::pool_context(&own));
        let sink = p
            .by_name("sink")
            .unwrap()
            .downcast::<gst_app::AppSink>()
            .unwrap();
        p.set_state(gst::State::Playing).unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        while sink
            .try_pull_sample(gst::ClockTime::from_mseconds(100))
            .is_none()
        {
            assert!(Instant::now() < deadline, "{launch}: no data");
        }
        assert_eq!(in_use(&own), 1, "{launch}: leased from its own pool");
        assert_eq!(
            in_use(tuners::Pool::default_pool()),
            0,
            "{launch}: the default pool is untouched"
        );
        p.set_state(gst::State::Null).unwrap();
        assert_eq!(in_use(&own), 0, "{launch}: released");
    }
}
