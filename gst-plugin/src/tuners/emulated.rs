//! The emulated frontend: behaves like a real one (lock time, signal figures, no lock where no
//! multiplex is configured, fault knobs) and plays the configured multiplex in real time.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::config::{
    AdapterConfig, Faults, MuxConfig, ServiceConfig, ServiceKind, LOST_LOCK_FADE_DB,
};
use super::content;
use super::feed::{Fanout, StatusTimer, TunerStatus};
use crate::proto::mux::{self, EsData, MuxSpec, OnAir, ServiceSpec, StreamSpec, TemiSpec};
use crate::proto::si;
use crate::proto::tuner_pool::{DelSys, Polarisation};

/// Interval at which the play-out thread wakes up and sends what is due.
pub const TICK: Duration = Duration::from_millis(10);

/// CA_system_id of the CA_descriptor of services flagged `scrambled` (Conax's range).
pub const CA_SYSTEM_ID: u16 = 0x0B00;

/// Builds the multiplex description of `m`, generating its content if needed; `network` is
/// every configured mux (what its NIT announces), `epoch_unix_s` the start of the emulator's
/// running time (services that come and go count their periods from it).
pub fn build_spec(
    m: &MuxConfig,
    network: &[MuxConfig],
    cache_dir: &std::path::Path,
    epoch_unix_s: i64,
) -> Result<MuxSpec, String> {
    let recipes = content::recipes(m);
    let flat: Vec<content::EsRecipe> = recipes
        .iter()
        .flat_map(|(v, a)| v.iter().cloned().chain(std::iter::once(a.clone())))
        .collect();
    let data = content::ensure(cache_dir, &flat).map_err(|e| e.to_string())?;
    let mut it = data.into_iter();
    let mut services = Vec::new();
    for s in &m.service {
        let mut streams = Vec::new();
        let mut tag = 1u8;
        if s.kind == ServiceKind::Tv {
            let es: EsData = it.next().ok_or("content missing")?;
            streams.push(StreamSpec {
                pid: s.video_pid.ok_or("tv service without video PID")?,
                stream_type: 0x1B,
                stream_id: 0xE0,
                component_tag: tag,
                language: None,
                es,
                temi: s.temi.as_ref().map(|t| TemiSpec {
                    timeline_id: t.timeline_id,
                    timescale: t.timescale,
                }),
                max_delay_90k: 45_000,
            });
            tag += 1;
        }
        let es = it.next().ok_or("content missing")?;
        streams.push(StreamSpec {
            pid: s.audio_pid,
            stream_type: 0x03,
            stream_id: 0xC0,
            component_tag: tag,
            language: Some(*b"eng"),
            es,
            temi: None,
            max_delay_90k: 9_000,
        });
        services.push(ServiceSpec {
            service_id: s.service_id,
            name: s.name.clone(),
            provider: s.provider.clone(),
            service_type: service_type(s),
            pmt_pid: s.pmt_pid,
            pcr_pid: s.video_pid.unwrap_or(s.audio_pid),
            streams,
            ca_system_id: s.scrambled.then_some(CA_SYSTEM_ID),
            on_air: s.on_air.map(|o| OnAir {
                epoch_unix_s,
                period_s: o.period_s,
                on_s: o.on_s,
            }),
        });
    }
    let (nit_transports, nit_other) = network_tables(m, network);
    let sdt_other = network
        .iter()
        .filter(|x| {
            (x.original_network_id, x.transport_stream_id)
                != (m.original_network_id, m.transport_stream_id)
        })
        .map(|x| mux::SdtOther {
            transport_stream_id: x.transport_stream_id,
            original_network_id: x.original_network_id,
            services: x
                .service
                .iter()
                .map(|s| mux::SdtOtherService {
                    service_id: s.service_id,
                    service_type: service_type(s),
                    provider: s.provider.clone(),
                    name: s.name.clone(),
                    scrambled: s.scrambled,
                    on_air: s.on_air.map(|o| OnAir {
                        epoch_unix_s,
                        period_s: o.period_s,
                        on_s: o.on_s,
                    }),
                })
                .collect(),
        })
        .collect();
    Ok(MuxSpec {
        transport_stream_id: m.transport_stream_id,
        original_network_id: m.original_network_id,
        network_id: m.network_id,
        network_name: m.network_name.clone(),
        nit_transports,
        nit_other,
        sdt_other,
        services,
        bitrate: m.bitrate,
    })
}

/// DVB service_type of an emulated service: H.264 SD TV or MPEG-1 Layer II radio.
fn service_type(s: &ServiceConfig) -> u8 {
    if s.kind == ServiceKind::Tv {
        0x16
    } else {
        0x02
    }
}

/// The delivery system descriptor of `m` (T2: the long form, with the centre frequency, so
/// that it can be read on any mux; the T2 system is the network).
pub fn delivery_descriptor(m: &MuxConfig) -> Vec<u8> {
    let Some(delsys) = m.delsys() else {
        return Vec::new();
    };
    if delsys.is_satellite() {
        let pol = match m.polarisation.as_deref().and_then(Polarisation::parse) {
            Some(Polarisation::Vertical) => 1,
            Some(Polarisation::CircularLeft) => 2,
            Some(Polarisation::CircularRight) => 3,
            _ => 0,
        };
        si::satellite_delivery_descriptor(
            m.frequency_khz,
            192,
            true,
            pol,
            delsys == DelSys::DvbS2,
            m.symbol_rate_ksym,
        )
    } else if delsys.is_cable() {
        let modulation = match m.modulation.as_deref().unwrap_or("qam-256") {
            "qam-16" => 1,
            "qam-32" => 2,
            "qam-64" => 3,
            "qam-128" => 4,
            _ => 5,
        };
        si::cable_delivery_descriptor(m.frequency_khz * 1000, m.symbol_rate_ksym, modulation)
    } else if delsys == DelSys::DvbT2 {
        si::t2_delivery_descriptor_long(
            m.stream_id.max(0) as u8,
            m.network_id,
            m.bandwidth_hz,
            m.frequency_khz * 1000,
        )
    } else {
        si::terrestrial_delivery_descriptor(m.frequency_khz * 1000, m.bandwidth_hz)
    }
}

/// The NIT transport-loop entry of `m`: delivery system, service list and the logical channel
/// numbers of its services that have one (EACEM, after its private data specifier).
pub fn nit_transport(m: &MuxConfig) -> si::NitTransport {
    let mut d = delivery_descriptor(m);
    let list: Vec<(u16, u8)> = m
        .service
        .iter()
        .map(|s| (s.service_id, service_type(s)))
        .collect();
    d.extend(si::service_list_descriptor(&list));
    let lcns: Vec<si::LcnEntry> = m
        .service
        .iter()
        .filter_map(|s| {
            s.lcn.map(|number| si::LcnEntry {
                service_id: s.service_id,
                visible: true,
                number,
            })
        })
        .collect();
    d.extend(si::logical_channel_descriptor(&lcns));
    si::NitTransport {
        tsid: m.transport_stream_id,
        onid: m.original_network_id,
        descriptors: d,
    }
}

/// What the NIT of `m` carries, given every configured mux (`network`): NIT actual lists the
/// muxes of its network (same `network_id`, `m` included even when `network` lacks it), and
/// a NIT other sub-table describes each other network, in configuration order.
pub fn network_tables(
    m: &MuxConfig,
    network: &[MuxConfig],
) -> (Vec<si::NitTransport>, Vec<mux::NitNetwork>) {
    let mut actual: Vec<si::NitTransport> = network
        .iter()
        .filter(|x| x.network_id == m.network_id)
        .map(nit_transport)
        .collect();
    if !actual
        .iter()
        .any(|t| t.tsid == m.transport_stream_id && t.onid == m.original_network_id)
    {
        actual.insert(0, nit_transport(m));
    }
    let mut other: Vec<mux::NitNetwork> = Vec::new();
    for x in network.iter().filter(|x| x.network_id != m.network_id) {
        match other.iter_mut().find(|n| n.network_id == x.network_id) {
            Some(n) => n.transports.push(nit_transport(x)),
            None => other.push(mux::NitNetwork {
                network_id: x.network_id,
                network_name: x.network_name.clone(),
                transports: vec![nit_transport(x)],
            }),
        }
    }
    (actual, other)
}

/// xorshift64* — enough randomness for fault injection, no dependency.
struct Rng(u64);

impl Rng {
    fn new() -> Self {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0x9E37_79B9_7F4A_7C15);
        Rng(seed | 1)
    }
    /// A generator whose draws follow from `seed`.
    fn seeded(seed: u64) -> Self {
        // splitmix64 of the seed, so that nearby seeds give unrelated sequences.
        let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        Rng((z ^ (z >> 31)) | 1)
    }
    /// True with probability `p`.
    fn chance(&mut self, p: f64) -> bool {
        p > 0.0 && self.unit() <= p
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// Uniform in (0, 1].
    fn unit(&mut self) -> f64 {
        ((self.next() >> 11) + 1) as f64 / (1u64 << 53) as f64
    }
    /// Number of trials until the next success of probability `p` (geometric).
    fn gap(&mut self, p: f64) -> f64 {
        if p <= 0.0 {
            f64::INFINITY
        } else if p >= 1.0 {
            0.0
        } else {
            (self.unit().ln() / (1.0 - p).ln()).floor()
        }
    }
}

/// The fault knobs of an emulated adapter and the generator of their draws, which lives as
/// long as the knobs (across tunes), so that a seed fixes the whole sequence of lock failures.
pub(crate) struct FaultState {
    pub faults: Faults,
    rng: Rng,
}

impl FaultState {
    pub fn new(faults: Faults) -> Self {
        let rng = faults.seed.map_or_else(Rng::new, Rng::seeded);
        Self { faults, rng }
    }
}

/// Applies packet drops, bit errors and section losses to a chunk of packets.
struct FaultInjector {
    rng: Rng,
    next_drop: f64,
    next_flip: f64,
    p_drop: f64,
    p_flip: f64,
    /// PIDs carrying PSI/SI sections, and whether the section now running on each is lost.
    psi: std::collections::HashMap<u16, bool>,
}

impl FaultInjector {
    fn with_rng(rng: Rng) -> Self {
        Self {
            rng,
            next_drop: f64::INFINITY,
            next_flip: f64::INFINITY,
            p_drop: 0.0,
            p_flip: 0.0,
            psi: Default::default(),
        }
    }

    /// The PIDs whose sections [`Self::lose_sections`] may drop.
    fn set_psi_pids(&mut self, pids: impl IntoIterator<Item = u16>) {
        self.psi = pids.into_iter().map(|p| (p, false)).collect();
    }

    /// Drops every packet of a section lost with probability `p` (drawn at its first packet).
    /// The emulator starts each section in a packet of its own, so whole sections go.
    fn lose_sections(&mut self, p: f64, chunk: Vec<u8>) -> Vec<u8> {
        let mut keep = Vec::with_capacity(chunk.len());
        for pkt in chunk.chunks_exact(188) {
            let pid = ((pkt[1] as u16 & 0x1F) << 8) | pkt[2] as u16;
            if let Some(lost) = self.psi.get_mut(&pid) {
                if pkt[1] & 0x40 != 0 {
                    *lost = self.rng.chance(p);
                }
                if *lost {
                    continue;
                }
            }
            keep.extend_from_slice(pkt);
        }
        keep
    }

    fn apply(&mut self, f: &Faults, chunk: Vec<u8>) -> Vec<u8> {
        if f.drop_probability != self.p_drop {
            self.p_drop = f.drop_probability;
            self.next_drop = self.rng.gap(self.p_drop);
        }
        if f.bit_error_rate != self.p_flip {
            self.p_flip = f.bit_error_rate;
            self.next_flip = self.rng.gap(self.p_flip);
        }
        let mut chunk = chunk;
        if self.p_flip > 0.0 {
            let bits = chunk.len() as f64 * 8.0;
            let mut pos = self.next_flip;
            while pos < bits {
                let b = pos as usize;
                chunk[b / 8] ^= 1 << (b % 8);
                pos += 1.0 + self.rng.gap(self.p_flip);
            }
            self.next_flip = pos - bits;
        }
        if self.p_drop > 0.0 {
            let n = chunk.len() / 188;
            let mut keep = Vec::with_capacity(chunk.len());
            for i in 0..n {
                if self.next_drop < 1.0 {
                    self.next_drop = self.rng.gap(self.p_drop);
                } else {
                    self.next_drop -= 1.0;
                    keep.extend_from_slice(&chunk[i * 188..(i + 1) * 188]);
                }
            }
            chunk = keep;
        }
        chunk
    }
}

/// What an emulated frontend receives where it is tuned.
pub(crate) struct Reception {
    /// The mux configured there, if any (else nothing locks).
    pub mux: Option<MuxConfig>,
    /// Every configured mux (what the NIT announces).
    pub network: Vec<MuxConfig>,
    /// Start of the emulator's running time (Unix s).
    pub epoch_unix_s: i64,
    /// Generated content cache.
    pub cache_dir: std::path::PathBuf,
}

pub(crate) struct EmulatedFeed {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl EmulatedFeed {
    pub fn start(
        adapter: AdapterConfig,
        faults: Arc<Mutex<FaultState>>,
        reception: Reception,
        fanout: Arc<Fanout>,
        status: Arc<Mutex<TunerStatus>>,
    ) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = stop.clone();
        let thread = std::thread::Builder::new()
            .name(format!("dvb2ip-emu{}", status.lock().unwrap().adapter))
            .spawn(move || run(adapter, faults, reception, fanout, status, stop2))
            .expect("spawn emulated frontend thread");
        Self {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for EmulatedFeed {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn sleep_until(deadline: Instant, stop: &AtomicBool) {
    let now = Instant::now();
    if deadline > now && !stop.load(Ordering::Relaxed) {
        std::thread::sleep(deadline - now);
    }
}

fn unix_now_ns() -> i128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i128)
        .unwrap_or(0)
}

fn run(
    adapter: AdapterConfig,
    faults: Arc<Mutex<FaultState>>,
    reception: Reception,
    fanout: Arc<Fanout>,
    status: Arc<Mutex<TunerStatus>>,
    stop: Arc<AtomicBool>,
) {
    // Content generation (first use only) is not tuning: lock time counts from when it is ready.
    let began = Instant::now();
    let Reception {
        mux: mux_cfg,
        network,
        epoch_unix_s,
        cache_dir,
    } = reception;
    let spec = match mux_cfg
        .as_ref()
        .map(|m| build_spec(m, &network, &cache_dir, epoch_unix_s))
    {
        Some(Ok(s)) => Some(s),
        Some(Err(e)) => {
            fanout.failed(&format!("emulated content unavailable: {e}"));
            None
        }
        None => None,
    };
    fanout.extend_deadlines(began.elapsed());
    let no_signal = {
        let st = status.lock().unwrap();
        match &st.transponder {
            Some(t) => format!("no signal on {t}: no multiplex is configured there"),
            None => "no signal".to_string(),
        }
    };
    // A flaky frontend: this tune never locks, with lock_failure_probability.
    let (fails_to_lock, mut injector) = {
        let mut st = faults.lock().unwrap();
        let p = st.faults.lock_failure_probability;
        let fails = st.rng.chance(p);
        let seed = st.rng.next();
        (fails, FaultInjector::with_rng(Rng(seed | 1)))
    };
    let no_signal = if fails_to_lock && spec.is_some() {
        let st = status.lock().unwrap();
        let on = st
            .transponder
            .as_ref()
            .map(|t| format!(" on {t}"))
            .unwrap_or_default();
        format!("no lock{on}: emulated lock failure (faults.lock_failure_probability)")
    } else {
        no_signal
    };
    // A multiplex is there: the frontend sees its signal (FE_HAS_SIGNAL) while it locks, even
    // on a tune that never locks; where nothing is configured it sees none.
    if spec.is_some() {
        let mut st = status.lock().unwrap();
        st.level = adapter.signal_level;
        st.signal_dbm = Some(adapter.signal_dbm);
    }
    let spec = spec.filter(|_| !fails_to_lock);
    if let Some(s) = &spec {
        injector.set_psi_pids(
            [
                si::PID_PAT,
                si::PID_NIT,
                si::PID_SDT,
                si::PID_EIT,
                si::PID_TDT,
            ]
            .into_iter()
            .chain(s.services.iter().map(|svc| svc.pmt_pid)),
        );
    }
    let mut lock_at = Instant::now() + Duration::from_millis(adapter.lock_time_ms);
    let mut locked: Option<(mux::Mux, Instant, u64, Instant)> = None;
    let mut status_timer = StatusTimer::new(Instant::now());
    let mut next_tick = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        let now = Instant::now();
        let f = faults.lock().unwrap().faults.clone();
        match &mut locked {
            None => {
                if let (Some(spec), true) = (&spec, now >= lock_at) {
                    match mux::Mux::new(spec.clone(), unix_now_ns()) {
                        Ok(m) => {
                            locked = Some((m, now, 0, now));
                            let st = {
                                let mut s = status.lock().unwrap();
                                s.locked = true;
                                s.level = adapter.signal_level;
                                s.signal_dbm = Some(adapter.signal_dbm);
                                s.quality = adapter.signal_quality;
                                s.snr_db = Some(adapter.snr_db);
                                s.ber = Some(adapter.ber.max(f.bit_error_rate));
                                s.clone()
                            };
                            fanout.lock_changed(true, &st);
                        }
                        Err(e) => {
                            fanout.failed(&format!("emulated multiplex is invalid: {e}"));
                            lock_at = now + Duration::from_secs(3600);
                        }
                    }
                } else {
                    fanout.check_deadlines(now, &no_signal);
                }
            }
            Some((m, started, produced, locked_since)) => {
                if f.lose_lock_after_ms > 0
                    && now >= *locked_since + Duration::from_millis(f.lose_lock_after_ms)
                {
                    let lost_for = if f.lock_lost_for_ms == 0 {
                        1000
                    } else {
                        f.lock_lost_for_ms
                    };
                    lock_at = now + Duration::from_millis(lost_for);
                    locked = None;
                    let st = {
                        let mut s = status.lock().unwrap();
                        s.locked = false;
                        s.level = adapter.signal_level / 4;
                        s.signal_dbm = Some(adapter.signal_dbm - LOST_LOCK_FADE_DB);
                        s.quality = 0;
                        s.snr_db = Some(0.0);
                        s.clone()
                    };
                    fanout.lock_changed(false, &st);
                } else {
                    let pkt_ns = m.packet_duration_ns();
                    let due = ((now - *started).as_nanos() as f64 / pkt_ns) as u64;
                    let mut n = due.saturating_sub(*produced);
                    // After a stall of more than a second, skip ahead like a live signal would.
                    let one_sec = (1e9 / pkt_ns) as u64;
                    if n > one_sec {
                        *produced += n - one_sec / 10;
                        n = one_sec / 10;
                    }
                    if n > 0 {
                        let mut chunk = Vec::with_capacity(n as usize * 188);
                        m.fill(n as usize, &mut chunk);
                        *produced += n;
                        if f.table_loss_probability > 0.0 {
                            chunk = injector.lose_sections(f.table_loss_probability, chunk);
                        }
                        if f.drop_probability > 0.0 || f.bit_error_rate > 0.0 {
                            chunk = injector.apply(&f, chunk);
                        }
                        if !chunk.is_empty() {
                            fanout.distribute(chunk);
                        }
                    }
                }
            }
        }
        status_timer.poll(now, &status, &fanout);
        next_tick += TICK;
        if next_tick < now {
            next_tick = now + TICK;
        }
        sleep_until(next_tick, &stop);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fault_injector_drops_about_p() {
        let mut fi = FaultInjector::with_rng(Rng::new());
        let f = Faults {
            drop_probability: 0.1,
            ..Default::default()
        };
        let mut kept = 0;
        for _ in 0..100 {
            kept += fi.apply(&f, vec![0x47; 188 * 100]).len() / 188;
        }
        assert!((8500..9500).contains(&kept), "kept {kept}");
    }

    #[test]
    fn whole_sections_are_lost_and_others_pass() {
        let mut fi = FaultInjector::with_rng(Rng::seeded(1));
        fi.set_psi_pids([0x0000]);
        let pkt = |pid: u16, pusi: bool| {
            let mut p = vec![0xFFu8; 188];
            p[0] = 0x47;
            p[1] = (if pusi { 0x40 } else { 0 }) | (pid >> 8) as u8;
            p[2] = pid as u8;
            p[3] = 0x10;
            p
        };
        // Sections of two packets on PID 0, an ES packet between.
        let mut chunk = Vec::new();
        for _ in 0..1000 {
            chunk.extend(pkt(0, true));
            chunk.extend(pkt(0x100, false));
            chunk.extend(pkt(0, false));
        }
        let out = fi.lose_sections(0.3, chunk.clone());
        let pids: Vec<(u16, bool)> = out
            .chunks_exact(188)
            .map(|p| (((p[1] as u16 & 0x1F) << 8) | p[2] as u16, p[1] & 0x40 != 0))
            .collect();
        assert_eq!(pids.iter().filter(|p| p.0 == 0x100).count(), 1000);
        let starts = pids.iter().filter(|p| p.0 == 0 && p.1).count();
        let tails = pids.iter().filter(|p| p.0 == 0 && !p.1).count();
        assert_eq!(starts, tails, "a section goes whole or not at all");
        assert!(
            (600..800).contains(&starts),
            "kept {starts} of 1000 sections"
        );
        assert_eq!(fi.lose_sections(0.0, chunk.clone()), chunk);
        assert!(fi
            .lose_sections(1.0, chunk)
            .chunks_exact(188)
            .all(|p| p[2] == 0x00 && p[1] == 0x01));
    }

    #[test]
    fn a_seed_fixes_the_lock_failures() {
        let draws = |seed| {
            let mut st = FaultState::new(Faults {
                lock_failure_probability: 0.3,
                seed: Some(seed),
                ..Default::default()
            });
            (0..200).map(|_| st.rng.chance(0.3)).collect::<Vec<bool>>()
        };
        assert_eq!(draws(5), draws(5));
        assert_ne!(draws(5), draws(6));
        let n = draws(5).iter().filter(|f| **f).count();
        assert!((35..85).contains(&n), "{n} failures of 200 at p = 0.3");
    }

    #[test]
    fn fault_injector_flips_about_ber() {
        let mut fi = FaultInjector::with_rng(Rng::new());
        let f = Faults {
            bit_error_rate: 1e-3,
            ..Default::default()
        };
        let mut flips = 0u32;
        for _ in 0..100 {
            let c = fi.apply(&f, vec![0u8; 1000]);
            flips += c.iter().map(|b| b.count_ones()).sum::<u32>();
        }
        // 800k bits at 1e-3: ~800 flips.
        assert!((600..1000).contains(&flips), "flips {flips}");
    }
}
