//! A constant-bitrate MPEG-TS multiplexer for the emulated broadcast.
//!
//! Elementary streams are given as one loop of access units (all streams loop with the same
//! period). Time is derived from a wall-clock start so that the multiplex looks like a broadcast
//! that has always been on air: PCR, PTS/DTS and TEMI come from the 27 MHz system time clock
//! (STC = Unix time), keep increasing across loop points, and continuity counters never break.
//! Packets are produced in slot order; slot `i` is sent at `start + i × 188 × 8 / bitrate`.
//! PSI/SI (PAT, PMT, SDT, NIT, EIT p/f, TDT, TOT) is repeated on a fixed schedule, the rest is
//! padded with null packets.

use std::sync::Arc;

use super::si;

/// 27 MHz ticks per second.
pub const STC_HZ: u64 = 27_000_000;
const PTS_MASK: u64 = (1 << 33) - 1;

/// One loop of access units of an elementary stream.
#[derive(Debug, Clone)]
pub struct EsData {
    /// Access units in decode order; `frames[k]` is decoded at `k × frame_duration_90k`.
    pub frames: Arc<Vec<Vec<u8>>>,
    /// Access units that may start decoding (IDR for video, all for audio).
    pub keyframes: Arc<Vec<bool>>,
    pub frame_duration_90k: u64,
}

impl EsData {
    pub fn loop_duration_90k(&self) -> u64 {
        self.frames.len() as u64 * self.frame_duration_90k
    }
}

/// A TEMI timeline carried on an ES.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TemiSpec {
    pub timeline_id: u8,
    pub timescale: u32,
}

#[derive(Debug, Clone)]
pub struct StreamSpec {
    pub pid: u16,
    pub stream_type: u8,
    /// PES stream_id: 0xE0 video, 0xC0 MPEG audio.
    pub stream_id: u8,
    pub component_tag: u8,
    pub language: Option<[u8; 3]>,
    pub es: EsData,
    pub temi: Option<TemiSpec>,
    /// How long before its DTS an access unit may be sent, in 90 kHz ticks.
    pub max_delay_90k: u64,
}

#[derive(Debug, Clone)]
pub struct ServiceSpec {
    pub service_id: u16,
    pub name: String,
    pub provider: String,
    /// DVB service_type: 0x16 advanced-codec SD TV, 0x02 radio, …
    pub service_type: u8,
    pub pmt_pid: u16,
    pub pcr_pid: u16,
    pub streams: Vec<StreamSpec>,
    /// Flagged scrambled: free_CA_mode = 1 in the SDT and a CA_descriptor with this
    /// CA_system_id in the PMT (no ECMs are sent: the CA PID is 0x1FFF).
    pub ca_system_id: Option<u16>,
    /// A service that comes and goes; `None` = always on air.
    pub on_air: Option<OnAir>,
}

/// When a service is on air: the first `on_s` seconds of every `period_s` seconds from
/// `epoch_unix_s`. Off air it is left out of the PAT, the SDT and the EIT and its PMT is not
/// sent (its elementary streams keep flowing).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OnAir {
    pub epoch_unix_s: i64,
    pub period_s: u32,
    pub on_s: u32,
}

impl OnAir {
    /// Whether the service is on air at `unix_s`.
    pub fn is_on(&self, unix_s: i64) -> bool {
        self.period_s == 0
            || (unix_s - self.epoch_unix_s).rem_euclid(i64::from(self.period_s))
                < i64::from(self.on_s)
    }
}

impl ServiceSpec {
    /// Whether the service is on air at `unix_s`.
    pub fn is_on_air(&self, unix_s: i64) -> bool {
        self.on_air.is_none_or(|o| o.is_on(unix_s))
    }
}

#[derive(Debug, Clone)]
pub struct MuxSpec {
    pub transport_stream_id: u16,
    pub original_network_id: u16,
    pub network_id: u16,
    pub network_name: String,
    /// The transport loop of NIT actual: every TS of the network, this one included, with its
    /// descriptors (delivery system, service list, logical channel numbers).
    pub nit_transports: Vec<si::NitTransport>,
    /// NIT other: one sub-table per other network announced.
    pub nit_other: Vec<NitNetwork>,
    /// SDT other: one sub-table per other transport stream described.
    pub sdt_other: Vec<SdtOther>,
    pub services: Vec<ServiceSpec>,
    pub bitrate: u64,
}

/// A network described in a NIT other sub-table.
#[derive(Debug, Clone)]
pub struct NitNetwork {
    pub network_id: u16,
    pub network_name: String,
    pub transports: Vec<si::NitTransport>,
}

/// Another transport stream's services, described in an SDT other (0x46) sub-table.
#[derive(Debug, Clone)]
pub struct SdtOther {
    pub transport_stream_id: u16,
    pub original_network_id: u16,
    pub services: Vec<SdtOtherService>,
}

/// A service of an [`SdtOther`] transport stream.
#[derive(Debug, Clone)]
pub struct SdtOtherService {
    pub service_id: u16,
    pub service_type: u8,
    pub provider: String,
    pub name: String,
    /// free_CA_mode.
    pub scrambled: bool,
    /// Comes and goes, as on its own multiplex.
    pub on_air: Option<OnAir>,
}

impl SdtOtherService {
    fn is_on_air(&self, unix_s: i64) -> bool {
        self.on_air.is_none_or(|o| o.is_on(unix_s))
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MuxError {
    NoServices,
    LoopMismatch {
        pid: u16,
        loop_90k: u64,
        expected_90k: u64,
    },
    EmptyStream {
        pid: u16,
    },
    BitrateTooLow {
        bitrate: u64,
        needed: u64,
    },
}

impl std::fmt::Display for MuxError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MuxError::NoServices => write!(f, "multiplex has no services"),
            MuxError::LoopMismatch {
                pid,
                loop_90k,
                expected_90k,
            } => write!(
                f,
                "PID {pid} loops every {loop_90k} ticks, other streams every {expected_90k}"
            ),
            MuxError::EmptyStream { pid } => write!(f, "PID {pid} has no access units"),
            MuxError::BitrateTooLow { bitrate, needed } => write!(
                f,
                "multiplex bitrate {bitrate} bit/s is below the {needed} bit/s its streams need"
            ),
        }
    }
}

impl std::error::Error for MuxError {}

/// Counters of what the multiplexer produced.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MuxStats {
    pub packets: u64,
    pub null_packets: u64,
    pub psi_packets: u64,
    pub pcr_packets: u64,
    /// Access units whose last packet left after their DTS (must stay 0).
    pub late_access_units: u64,
}

struct EsState {
    pid: u16,
    stream_id: u8,
    es: EsData,
    temi: Option<TemiSpec>,
    max_delay_90k: u64,
    cc: u8,
    /// Index of the next access unit, counted since the STC epoch.
    next_au: u64,
    /// PES bytes of the access unit being sent, and how far we are.
    pes: Vec<u8>,
    pes_pos: usize,
    pes_dts: u64,
    pes_first_packet: bool,
    pes_key: bool,
    pes_temi: Option<Vec<u8>>,
    pcr_interval_27m: u64,
    is_pcr_pid: bool,
    last_pcr_27m: Option<u64>,
}

struct Table {
    pid_index: usize,
    interval_27m: u64,
    next_27m: u64,
    kind: TableKind,
}

enum TableKind {
    Pat,
    Pmt(usize),
    Sdt,
    SdtOther,
    Nit,
    Eit,
    Tdt,
    Tot,
}

/// The multiplexer.
pub struct Mux {
    spec: MuxSpec,
    start_27m: u64,
    start_unix_ns: i128,
    slot: u64,
    es: Vec<EsState>,
    tables: Vec<Table>,
    packetizers: Vec<si::SectionPacketizer>,
    psi_queue: std::collections::VecDeque<[u8; 188]>,
    stats: MuxStats,
    eit_versions: Vec<(u16, u8)>,
}

/// A TEMI temi_timeline_descriptor with a 32- or 64-bit media timestamp.
pub fn temi_timeline_descriptor(timeline_id: u8, timescale: u32, value: u64) -> Vec<u8> {
    super::temi::encode_timeline_descriptor(&super::temi::TimelineDescriptor::new(
        timeline_id,
        timescale,
        value,
    ))
}

fn pts_bytes(prefix: u8, pts: u64) -> [u8; 5] {
    let p = pts & PTS_MASK;
    [
        (prefix << 4) | (((p >> 30) as u8 & 0x07) << 1) | 1,
        (p >> 22) as u8,
        (((p >> 15) as u8) << 1) | 1,
        (p >> 7) as u8,
        ((p as u8) << 1) | 1,
    ]
}

impl Mux {
    /// Builds a multiplexer whose first packet leaves at `start_unix_ns` (Unix time).
    pub fn new(spec: MuxSpec, start_unix_ns: i128) -> Result<Self, MuxError> {
        if spec.services.is_empty() {
            return Err(MuxError::NoServices);
        }
        let mut loop_90k = None;
        let mut needed_bits = 0u64;
        for s in spec.services.iter().flat_map(|s| s.streams.iter()) {
            if s.es.frames.is_empty() || s.es.frame_duration_90k == 0 {
                return Err(MuxError::EmptyStream { pid: s.pid });
            }
            let l = s.es.loop_duration_90k();
            match loop_90k {
                None => loop_90k = Some(l),
                Some(e) if e != l => {
                    return Err(MuxError::LoopMismatch {
                        pid: s.pid,
                        loop_90k: l,
                        expected_90k: e,
                    })
                }
                _ => {}
            }
            let bytes: u64 = s.es.frames.iter().map(|f| f.len() as u64 + 20).sum();
            // TS overhead ~ 188/184, plus PCR/AF slack.
            needed_bits += bytes * 8 * 90_000 * 188 / 184 / l;
        }
        needed_bits += 200_000; // PSI/SI
        if spec.bitrate < needed_bits {
            return Err(MuxError::BitrateTooLow {
                bitrate: spec.bitrate,
                needed: needed_bits,
            });
        }

        let start_27m = (start_unix_ns.max(0) as u128 * STC_HZ as u128 / 1_000_000_000) as u64;
        let start_90k = start_27m / 300;

        let mut es = Vec::new();
        for svc in &spec.services {
            for s in &svc.streams {
                let dur = s.es.frame_duration_90k;
                // First access unit that can still arrive in time: DTS >= now + its delay.
                let next_au = (start_90k + s.max_delay_90k).div_ceil(dur);
                es.push(EsState {
                    pid: s.pid,
                    stream_id: s.stream_id,
                    es: s.es.clone(),
                    temi: s.temi,
                    max_delay_90k: s.max_delay_90k,
                    cc: 0,
                    next_au,
                    pes: Vec::new(),
                    pes_pos: 0,
                    pes_dts: 0,
                    pes_first_packet: false,
                    pes_key: false,
                    pes_temi: None,
                    pcr_interval_27m: STC_HZ * 30 / 1000,
                    is_pcr_pid: s.pid == svc.pcr_pid,
                    last_pcr_27m: None,
                });
            }
        }

        let mut packetizers = vec![
            si::SectionPacketizer::new(si::PID_PAT),
            si::SectionPacketizer::new(si::PID_NIT),
            si::SectionPacketizer::new(si::PID_SDT),
            si::SectionPacketizer::new(si::PID_EIT),
            si::SectionPacketizer::new(si::PID_TDT),
        ];
        let ms = STC_HZ / 1000;
        let mut tables = vec![
            Table {
                pid_index: 0,
                interval_27m: 100 * ms,
                next_27m: start_27m,
                kind: TableKind::Pat,
            },
            Table {
                pid_index: 2,
                interval_27m: 500 * ms,
                next_27m: start_27m + 5 * ms,
                kind: TableKind::Sdt,
            },
            Table {
                pid_index: 1,
                interval_27m: 2000 * ms,
                next_27m: start_27m + 7 * ms,
                kind: TableKind::Nit,
            },
            Table {
                pid_index: 2,
                interval_27m: 2000 * ms,
                next_27m: start_27m + 13 * ms,
                kind: TableKind::SdtOther,
            },
            Table {
                pid_index: 3,
                interval_27m: 1000 * ms,
                next_27m: start_27m + 9 * ms,
                kind: TableKind::Eit,
            },
            Table {
                pid_index: 4,
                interval_27m: 5000 * ms,
                next_27m: start_27m + 11 * ms,
                kind: TableKind::Tdt,
            },
            Table {
                pid_index: 4,
                interval_27m: 5000 * ms,
                next_27m: start_27m + 2511 * ms,
                kind: TableKind::Tot,
            },
        ];
        for (i, svc) in spec.services.iter().enumerate() {
            packetizers.push(si::SectionPacketizer::new(svc.pmt_pid));
            tables.push(Table {
                pid_index: packetizers.len() - 1,
                interval_27m: 100 * ms,
                next_27m: start_27m + (1 + i as u64) * ms,
                kind: TableKind::Pmt(i),
            });
        }

        Ok(Self {
            spec,
            start_27m,
            start_unix_ns,
            slot: 0,
            es,
            tables,
            packetizers,
            psi_queue: Default::default(),
            stats: MuxStats::default(),
            eit_versions: Vec::new(),
        })
    }

    pub fn spec(&self) -> &MuxSpec {
        &self.spec
    }

    pub fn stats(&self) -> &MuxStats {
        &self.stats
    }

    /// Nanoseconds between two packets.
    pub fn packet_duration_ns(&self) -> f64 {
        188.0 * 8.0 * 1e9 / self.spec.bitrate as f64
    }

    /// The STC (27 MHz) at the start of slot `slot`.
    pub fn stc_at(&self, slot: u64) -> u64 {
        self.start_27m
            + (slot as u128 * 188 * 8 * STC_HZ as u128 / self.spec.bitrate as u128) as u64
    }

    /// Unix time (ns) of slot `slot`.
    pub fn unix_ns_at(&self, slot: u64) -> i128 {
        self.start_unix_ns + (slot as i128 * 188 * 8 * 1_000_000_000 / self.spec.bitrate as i128)
    }

    /// Index of the next slot to be produced.
    pub fn slot(&self) -> u64 {
        self.slot
    }

    fn table_sections(&mut self, kind: &TableKind, now_unix_s: i64) -> Vec<Vec<u8>> {
        let spec = &self.spec;
        match kind {
            TableKind::Pat => {
                let mut entries = vec![si::PatEntry {
                    program_number: 0,
                    pid: si::PID_NIT,
                }];
                entries.extend(
                    spec.services
                        .iter()
                        .filter(|s| s.is_on_air(now_unix_s))
                        .map(|s| si::PatEntry {
                            program_number: s.service_id,
                            pid: s.pmt_pid,
                        }),
                );
                vec![si::pat(
                    spec.transport_stream_id,
                    presence_version(spec, now_unix_s),
                    &entries,
                )]
            }
            TableKind::Pmt(i) => {
                let svc = &spec.services[*i];
                if !svc.is_on_air(now_unix_s) {
                    return Vec::new();
                }
                let streams: Vec<si::PmtStream> = svc
                    .streams
                    .iter()
                    .map(|s| {
                        let mut d = si::stream_identifier_descriptor(s.component_tag);
                        if let Some(l) = &s.language {
                            d.extend(si::iso639_descriptor(l));
                        }
                        if s.temi.is_some() {
                            d.extend(si::af_extensions_descriptor());
                        }
                        si::PmtStream {
                            stream_type: s.stream_type,
                            pid: s.pid,
                            descriptors: d,
                        }
                    })
                    .collect();
                let ca = svc
                    .ca_system_id
                    .map(|id| si::ca_descriptor(id, 0x1FFF))
                    .unwrap_or_default();
                vec![si::pmt(svc.service_id, 0, svc.pcr_pid, &ca, &streams)]
            }
            TableKind::Sdt => {
                let on_air = spec.services.iter().filter(|s| s.is_on_air(now_unix_s));
                let free_ca: Vec<u16> = on_air
                    .clone()
                    .filter(|s| s.ca_system_id.is_some())
                    .map(|s| s.service_id)
                    .collect();
                let services: Vec<si::SdtService> = on_air
                    .map(|s| si::SdtService {
                        service_id: s.service_id,
                        eit_present_following: true,
                        running_status: 4,
                        descriptors: si::service_descriptor(s.service_type, &s.provider, &s.name),
                    })
                    .collect();
                vec![si::sdt(
                    0x42,
                    spec.transport_stream_id,
                    spec.original_network_id,
                    presence_version(spec, now_unix_s),
                    &services,
                    &free_ca,
                )]
            }
            TableKind::SdtOther => spec
                .sdt_other
                .iter()
                .map(|ts| {
                    let on_air = ts.services.iter().filter(|s| s.is_on_air(now_unix_s));
                    let free_ca: Vec<u16> = on_air
                        .clone()
                        .filter(|s| s.scrambled)
                        .map(|s| s.service_id)
                        .collect();
                    let services: Vec<si::SdtService> = on_air
                        .map(|s| si::SdtService {
                            service_id: s.service_id,
                            eit_present_following: true,
                            running_status: 4,
                            descriptors: si::service_descriptor(
                                s.service_type,
                                &s.provider,
                                &s.name,
                            ),
                        })
                        .collect();
                    // The version follows which services are on air, as for SDT actual.
                    let version = ts
                        .services
                        .iter()
                        .enumerate()
                        .filter(|(_, s)| !s.is_on_air(now_unix_s))
                        .fold(0u8, |v, (i, _)| (v + 1 + i as u8 % 31) % 32);
                    si::sdt(
                        0x46,
                        ts.transport_stream_id,
                        ts.original_network_id,
                        version,
                        &services,
                        &free_ca,
                    )
                })
                .collect(),
            TableKind::Nit => {
                let mut out = vec![si::nit_actual(
                    spec.network_id,
                    0,
                    &si::network_name_descriptor(&spec.network_name),
                    &spec.nit_transports,
                )];
                for n in &spec.nit_other {
                    out.push(si::nit(
                        0x41,
                        n.network_id,
                        0,
                        &si::network_name_descriptor(&n.network_name),
                        &n.transports,
                    ));
                }
                out
            }
            TableKind::Eit => {
                let mut out = Vec::new();
                let services: Vec<(u16, String)> = spec
                    .services
                    .iter()
                    .filter(|s| s.is_on_air(now_unix_s))
                    .map(|s| (s.service_id, s.name.clone()))
                    .collect();
                for (sid, name) in services {
                    let (present, following) = schedule(now_unix_s, &name);
                    // The version follows the present event, so it changes only when the
                    // programme changes, never at a loop point.
                    let version = (present.event_id % 32) as u8;
                    match self.eit_versions.iter_mut().find(|(s, _)| *s == sid) {
                        Some(v) => v.1 = version,
                        None => self.eit_versions.push((sid, version)),
                    }
                    let spec = &self.spec;
                    for (n, ev) in [(0u8, &present), (1u8, &following)] {
                        out.push(si::eit_pf(
                            sid,
                            spec.transport_stream_id,
                            spec.original_network_id,
                            version,
                            n,
                            Some(ev),
                        ));
                    }
                }
                out
            }
            TableKind::Tdt => vec![si::tdt(now_unix_s)],
            TableKind::Tot => vec![si::tot(now_unix_s, &[])],
        }
    }

    fn schedule_tables(&mut self, stc: u64, now_unix_s: i64) {
        for t in 0..self.tables.len() {
            if self.tables[t].next_27m <= stc {
                let interval = self.tables[t].interval_27m;
                self.tables[t].next_27m += interval;
                if self.tables[t].next_27m <= stc {
                    self.tables[t].next_27m = stc + interval;
                }
                let kind = std::mem::replace(&mut self.tables[t].kind, TableKind::Pat);
                let sections = self.table_sections(&kind, now_unix_s);
                self.tables[t].kind = kind;
                let pk = self.tables[t].pid_index;
                let mut buf = Vec::new();
                for s in sections {
                    self.packetizers[pk].packetize(&s, &mut buf);
                }
                for p in buf.chunks_exact(188) {
                    let mut a = [0u8; 188];
                    a.copy_from_slice(p);
                    self.psi_queue.push_back(a);
                }
            }
        }
    }

    /// Loads the next access unit of ES `i` into its PES buffer if it is empty.
    fn load_au(&mut self, i: usize) {
        let e = &mut self.es[i];
        if e.pes_pos < e.pes.len() {
            return;
        }
        let n = e.es.frames.len() as u64;
        let idx = (e.next_au % n) as usize;
        let dts = e.next_au * e.es.frame_duration_90k;
        let frame = &e.es.frames[idx];
        e.pes.clear();
        e.pes_pos = 0;
        let video = e.stream_id & 0xF0 == 0xE0;
        let aud: &[u8] = if video && !starts_with_aud(frame) {
            &[0, 0, 0, 1, 0x09, 0xF0]
        } else {
            &[]
        };
        let payload_len = aud.len() + frame.len();
        let pes_len = 3 + 5 + payload_len;
        e.pes.extend_from_slice(&[0, 0, 1, e.stream_id]);
        let l = if pes_len > 0xFFFF { 0 } else { pes_len as u16 };
        e.pes.extend_from_slice(&l.to_be_bytes());
        e.pes
            .extend_from_slice(&[0x80 | if e.es.keyframes[idx] { 0x04 } else { 0 }, 0x80, 5]);
        e.pes.extend_from_slice(&pts_bytes(0x2, dts));
        e.pes.extend_from_slice(aud);
        e.pes.extend_from_slice(frame);
        e.pes_dts = dts;
        e.pes_first_packet = true;
        e.pes_key = e.es.keyframes[idx];
        e.pes_temi = e.temi.map(|t| {
            let value = (dts as u128 * t.timescale as u128 / 90_000) as u64;
            temi_timeline_descriptor(t.timeline_id, t.timescale, value)
        });
        e.next_au += 1;
    }

    fn es_ready(&mut self, i: usize, now_90k: u64) -> Option<u64> {
        self.load_au(i);
        let e = &self.es[i];
        if e.pes_dts <= now_90k + e.max_delay_90k {
            Some(e.pes_dts)
        } else {
            None
        }
    }

    fn write_es_packet(&mut self, i: usize, pcr: Option<u64>, now_90k: u64, out: &mut Vec<u8>) {
        let e = &mut self.es[i];
        let start = out.len();
        let pusi = e.pes_first_packet;
        out.push(0x47);
        out.push(if pusi { 0x40 } else { 0 } | ((e.pid >> 8) as u8 & 0x1F));
        out.push(e.pid as u8);
        // AF contents (after the length byte).
        let mut af: Vec<u8> = Vec::new();
        let rai = pusi && e.pes_key;
        let temi = if pusi { e.pes_temi.take() } else { None };
        if pcr.is_some() || rai || temi.is_some() {
            let mut flags = 0u8;
            if rai {
                flags |= 0x40;
            }
            if pcr.is_some() {
                flags |= 0x10;
            }
            if temi.is_some() {
                flags |= 0x01;
            }
            af.push(flags);
            if let Some(p) = pcr {
                af.extend_from_slice(&pcr_bytes(p));
            }
            if let Some(t) = &temi {
                af.push((1 + t.len()) as u8);
                af.push(0x0F); // no ltw/piecewise/seamless; af_descriptor_not_present = 0
                af.extend_from_slice(t);
            }
        }
        let remaining = e.pes.len() - e.pes_pos;
        let af_total = if af.is_empty() { 0 } else { 1 + af.len() };
        let space = 184 - af_total;
        let (payload, af_total) = if remaining >= space {
            (space, af_total)
        } else {
            (remaining, 184 - remaining)
        };
        let has_af = af_total > 0;
        out.push(if has_af { 0x30 } else { 0x10 } | (e.cc & 0x0F));
        e.cc = (e.cc + 1) & 0x0F;
        if has_af {
            out.push((af_total - 1) as u8);
            if af_total > 1 {
                if af.is_empty() {
                    af.push(0);
                }
                out.extend_from_slice(&af);
                let pad = af_total - 1 - af.len();
                out.extend(std::iter::repeat_n(0xFF, pad));
            }
        }
        out.extend_from_slice(&e.pes[e.pes_pos..e.pes_pos + payload]);
        e.pes_pos += payload;
        e.pes_first_packet = false;
        debug_assert_eq!(out.len() - start, 188);
        if e.pes_pos == e.pes.len() && now_90k > e.pes_dts {
            self.stats.late_access_units += 1;
        }
    }

    fn write_pcr_only(&mut self, i: usize, pcr: u64, out: &mut Vec<u8>) {
        let e = &self.es[i];
        out.extend_from_slice(&[0x47, (e.pid >> 8) as u8 & 0x1F, e.pid as u8]);
        // AF only: CC not incremented.
        out.push(0x20 | (e.cc.wrapping_sub(1) & 0x0F));
        out.push(183);
        out.push(0x10);
        out.extend_from_slice(&pcr_bytes(pcr));
        out.extend(std::iter::repeat_n(0xFF, 183 - 7));
    }

    /// Appends the next `n` packets to `out`.
    pub fn fill(&mut self, n: usize, out: &mut Vec<u8>) {
        out.reserve(n * 188);
        for _ in 0..n {
            let stc = self.stc_at(self.slot);
            let now_90k = stc / 300;
            let now_unix_s = (self.unix_ns_at(self.slot) / 1_000_000_000) as i64;
            self.schedule_tables(stc, now_unix_s);
            self.stats.packets += 1;
            if let Some(p) = self.psi_queue.pop_front() {
                out.extend_from_slice(&p);
                self.stats.psi_packets += 1;
                self.slot += 1;
                continue;
            }
            // PCR due?
            let due = (0..self.es.len()).find(|&i| {
                let e = &self.es[i];
                e.is_pcr_pid && e.last_pcr_27m.is_none_or(|l| stc >= l + e.pcr_interval_27m)
            });
            if let Some(i) = due {
                self.es[i].last_pcr_27m = Some(stc);
                self.stats.pcr_packets += 1;
                if self.es_ready(i, now_90k).is_some() {
                    self.write_es_packet(i, Some(stc), now_90k, out);
                } else {
                    self.write_pcr_only(i, stc, out);
                }
                self.slot += 1;
                continue;
            }
            // Earliest-deadline ES packet.
            let mut best: Option<(usize, u64)> = None;
            for i in 0..self.es.len() {
                if let Some(dts) = self.es_ready(i, now_90k) {
                    if best.is_none_or(|(_, d)| dts < d) {
                        best = Some((i, dts));
                    }
                }
            }
            if let Some((i, _)) = best {
                self.write_es_packet(i, None, now_90k, out);
            } else {
                out.extend_from_slice(&NULL_PACKET);
                self.stats.null_packets += 1;
            }
            self.slot += 1;
        }
    }
}

/// The version of the PAT and SDT: 0 with every service on air, else one that depends on which
/// services are off (so a receiver sees a new version each time one comes or goes).
fn presence_version(spec: &MuxSpec, unix_s: i64) -> u8 {
    spec.services
        .iter()
        .enumerate()
        .filter(|(_, s)| !s.is_on_air(unix_s))
        .fold(0u8, |v, (i, _)| (v + 1 + i as u8 % 31) % 32)
}

fn starts_with_aud(frame: &[u8]) -> bool {
    let nal = if frame.starts_with(&[0, 0, 0, 1]) {
        frame.get(4)
    } else if frame.starts_with(&[0, 0, 1]) {
        frame.get(3)
    } else {
        return true; // not Annex B; leave untouched
    };
    nal.is_some_and(|b| b & 0x1F == 9)
}

fn pcr_bytes(stc27: u64) -> [u8; 6] {
    let base = (stc27 / 300) & PTS_MASK;
    let ext = stc27 % 300;
    [
        (base >> 25) as u8,
        (base >> 17) as u8,
        (base >> 9) as u8,
        (base >> 1) as u8,
        (((base & 1) as u8) << 7) | 0x7E | ((ext >> 8) as u8 & 1),
        ext as u8,
    ]
}

/// A null packet (PID 0x1FFF).
pub static NULL_PACKET: [u8; 188] = {
    let mut p = [0xFFu8; 188];
    p[0] = 0x47;
    p[1] = 0x1F;
    p[2] = 0xFF;
    p[3] = 0x10;
    p
};

/// An EIT event for the half hour that contains `unix_s`, and the next one.
pub fn schedule(unix_s: i64, service_name: &str) -> (si::EitEvent, si::EitEvent) {
    const SLOT: i64 = 1800;
    let start = unix_s.div_euclid(SLOT) * SLOT;
    let mk = |s: i64, running: u8| {
        let hm = s.rem_euclid(86_400);
        si::EitEvent {
            event_id: (s.div_euclid(SLOT) & 0xFFFF) as u16,
            start_unix: s,
            duration_secs: SLOT as u32,
            running_status: running,
            name: format!("{} {:02}:{:02}", service_name, hm / 3600, (hm / 60) % 60),
            text: format!("Emulated programme on {service_name}"),
        }
    };
    (mk(start, 4), mk(start + SLOT, 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn es(frames: usize, size: usize, dur: u64) -> EsData {
        EsData {
            frames: Arc::new((0..frames).map(|i| vec![i as u8; size]).collect()),
            keyframes: Arc::new((0..frames).map(|i| i % 25 == 0).collect()),
            frame_duration_90k: dur,
        }
    }

    fn spec() -> MuxSpec {
        MuxSpec {
            transport_stream_id: 1,
            original_network_id: 2,
            network_id: 3,
            network_name: "Test".into(),
            nit_transports: vec![si::NitTransport {
                tsid: 1,
                onid: 2,
                descriptors: si::terrestrial_delivery_descriptor(506_000_000, 8_000_000),
            }],
            nit_other: vec![],
            sdt_other: vec![],
            services: vec![ServiceSpec {
                service_id: 1,
                name: "One".into(),
                provider: "P".into(),
                service_type: 0x16,
                pmt_pid: 0x100,
                pcr_pid: 0x101,
                streams: vec![
                    StreamSpec {
                        pid: 0x101,
                        stream_type: 0x1B,
                        stream_id: 0xE0,
                        component_tag: 1,
                        language: None,
                        es: es(50, 5000, 3600),
                        temi: Some(TemiSpec {
                            timeline_id: 1,
                            timescale: 1000,
                        }),
                        max_delay_90k: 45_000,
                    },
                    StreamSpec {
                        pid: 0x102,
                        stream_type: 0x04,
                        stream_id: 0xC0,
                        component_tag: 2,
                        language: Some(*b"eng"),
                        es: es(250, 576, 720),
                        temi: None,
                        max_delay_90k: 9_000,
                    },
                ],
                ca_system_id: None,
                on_air: None,
            }],
            bitrate: 4_000_000,
        }
    }

    #[test]
    fn produces_aligned_packets_with_continuous_cc_and_no_late_units() {
        let mut m = Mux::new(spec(), 1_700_000_000_000_000_000).unwrap();
        let mut out = Vec::new();
        // 5 s of stream: more than two loops of the 2 s content.
        let n = (4_000_000 * 5 / (188 * 8)) as usize;
        m.fill(n, &mut out);
        assert_eq!(out.len(), n * 188);
        let mut last_cc = std::collections::HashMap::new();
        let mut last_pcr: Option<u64> = None;
        for p in out.chunks_exact(188) {
            assert_eq!(p[0], 0x47);
            let pid = ((p[1] as u16 & 0x1F) << 8) | p[2] as u16;
            let afc = (p[3] >> 4) & 3;
            if afc & 2 != 0 && p[4] > 0 && p[5] & 0x10 != 0 {
                let b = &p[6..12];
                let base = ((b[0] as u64) << 25)
                    | ((b[1] as u64) << 17)
                    | ((b[2] as u64) << 9)
                    | ((b[3] as u64) << 1)
                    | (b[4] as u64 >> 7);
                if let Some(l) = last_pcr {
                    assert!(base > l);
                }
                last_pcr = Some(base);
            }
            if pid == 0x1FFF || afc & 1 == 0 {
                continue;
            }
            let cc = p[3] & 0x0F;
            if let Some(l) = last_cc.insert(pid, cc) {
                assert_eq!(cc, (l + 1) & 0x0F, "pid {pid}");
            }
        }
        assert_eq!(m.stats().late_access_units, 0);
        assert!(m.stats().null_packets > 0);
    }

    /// The sections of one kind of table at `unix_s`.
    fn tables_at(m: &mut Mux, kind: TableKind, unix_s: i64) -> Vec<Vec<u8>> {
        m.table_sections(&kind, unix_s)
    }

    #[test]
    fn a_service_comes_and_goes_and_a_scrambled_one_is_flagged() {
        let mut s = spec();
        let mut two = s.services[0].clone();
        two.service_id = 2;
        two.pmt_pid = 0x200;
        two.ca_system_id = Some(0x0B00);
        two.on_air = Some(OnAir {
            epoch_unix_s: 1000,
            period_s: 10,
            on_s: 4,
        });
        s.services.push(two);
        let mut m = Mux::new(s, 0).unwrap();
        let pat = |m: &mut Mux, t| {
            crate::psi::Pat::parse(
                &crate::psi::Section::parse(&tables_at(m, TableKind::Pat, t)[0]).unwrap(),
            )
            .unwrap()
        };
        for (t, on) in [
            (1000, true),
            (1003, true),
            (1004, false),
            (1009, false),
            (1010, true),
            (999, false),
        ] {
            let p = pat(&mut m, t);
            let sids: Vec<u16> = p.programs.iter().map(|e| e.program_number).collect();
            assert_eq!(sids, if on { vec![1, 2] } else { vec![1] }, "t = {t}");
            assert_eq!(p.version == 0, on, "t = {t}: version {}", p.version);
            let sdt = &tables_at(&mut m, TableKind::Sdt, t)[0];
            assert_eq!(sdt[5] & 0x3E == 0, on, "SDT version at {t}");
            let eit = tables_at(&mut m, TableKind::Eit, t);
            assert_eq!(eit.len(), if on { 4 } else { 2 });
            assert_eq!(tables_at(&mut m, TableKind::Pmt(1), t).is_empty(), !on);
        }
        // Scrambled: CA_descriptor in the PMT (program loop), free_CA_mode in the SDT.
        let pmt = &tables_at(&mut m, TableKind::Pmt(1), 1000)[0];
        assert_eq!(&pmt[10..12], &[0xF0, 0x06]);
        assert_eq!(&pmt[12..18], &[0x09, 0x04, 0x0B, 0x00, 0xFF, 0xFF]);
        assert_eq!(
            &tables_at(&mut m, TableKind::Pmt(0), 1000)[0][10..12],
            &[0xF0, 0x00]
        );
        let sdt = &tables_at(&mut m, TableKind::Sdt, 1000)[0];
        // onid(2) reserved(1), then service 1 (5 bytes + its descriptor), then service 2.
        let first_len = usize::from(sdt[14] & 0x0F) << 8 | usize::from(sdt[15]);
        assert_eq!(sdt[14] & 0x10, 0, "service 1 is free");
        let second = 11 + 5 + first_len;
        assert_eq!(&sdt[second..second + 2], &[0x00, 0x02]);
        assert_eq!(sdt[second + 3] & 0x10, 0x10, "service 2: free_CA_mode");
    }

    #[test]
    fn temi_descriptor_layouts() {
        let d = temi_timeline_descriptor(1, 1000, 0);
        assert_eq!(
            d,
            vec![0x04, 0x0b, 0x40, 0x7f, 0x01, 0, 0, 0x03, 0xe8, 0, 0, 0, 0]
        );
        let d = temi_timeline_descriptor(2, 90000, 1 << 40);
        assert_eq!(d.len(), 17);
        assert_eq!(d[1], 15);
        assert_eq!(d[2], 0x80);
    }

    #[test]
    fn pcr_encoding() {
        let b = pcr_bytes(3000 * 300 + 5);
        assert_eq!(b, [0x00, 0x00, 0x05, 0xdc, 0x7e, 0x05]);
    }

    #[test]
    fn rejects_loop_mismatch_and_low_bitrate() {
        let mut s = spec();
        s.services[0].streams[1].es = es(100, 576, 720);
        assert!(matches!(Mux::new(s, 0), Err(MuxError::LoopMismatch { .. })));
        let mut s = spec();
        s.bitrate = 100_000;
        assert!(matches!(
            Mux::new(s, 0),
            Err(MuxError::BitrateTooLow { .. })
        ));
    }
}
