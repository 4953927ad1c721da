//! [`TimelineTracker`]: follows PAT/PMT/SDT/NIT/EIT/TDT of one multiplex, reads PES PTS and the
//! TEMI adaptation-field descriptors, and turns them into [`TimelineEvent`]s: TEMI anchors, PTS
//! anchors, timeline appear/disappear/pause/discontinuity changes and service identity.
//!
//! Packet in, events out; no I/O, no clock, no GStreamer. A GStreamer element feeds it the
//! 188-byte packets of the stream (see [`crate::ts::TsReader`]) and maps events to
//! messages.
//!
//! Binding rule (spec 2.3): a timeline descriptor goes with the PTS of the PES whose header
//! starts in the same TS packet. A descriptor in a PUSI = 0 packet, or in a packet whose PES has
//! no PTS, is kept and bound to the next PTS on the same PID, and reported non-conformant.

use std::collections::{BTreeMap, HashMap, HashSet};

use crate::clock::{
    convert, pcr_diff, pts_add, PtsUnwrapper, TimelineAnchor, PCR_HZ, PCR_MODULO, PTS_HZ,
};
use crate::psi::{self, table_id, Eit, Nit, Pat, Pmt, Sdt, Section, SectionAssembler, TimeTable};
use crate::temi::{af_descriptors, MediaTimestamp, TemiDescriptor, TimelineDescriptor};
use crate::ts::{CcStatus, ContinuityChecker, Packet, PacketView, PesHeader, PID_NULL};

/// Tracker settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TrackerConfig {
    /// A timeline disappears when its program's PCR moved this far (27 MHz ticks) since its
    /// last descriptor. Default 5 s.
    pub timeline_timeout_27mhz: u64,
    /// Extra tolerance, in timeline ticks, before a received value that disagrees with the
    /// extrapolated one counts as an undeclared jump. The tolerance used is this plus one PTS
    /// tick expressed in timeline ticks (rounded up). Default 2.
    pub jump_tolerance_ticks: u64,
    /// Maximum number of descriptors kept waiting for a PTS on one PID. Default 32.
    pub max_pending: usize,
    /// Maximum number of (PID, timeline_id) timelines followed; descriptors of further
    /// timelines are counted in [`TrackerStats::dropped_descriptors`] and ignored. Default 256.
    pub max_timelines: usize,
    /// Largest forward step (27 MHz ticks) between two consecutive PCRs of a program that is
    /// still the same time base. ISO/IEC 13818-1 (2.7.2) wants a PCR at least every 100 ms, so
    /// a longer step, or any step backwards, without the discontinuity_indicator is an
    /// undeclared time-base discontinuity (a splice, a looped or concatenated file). Judged on
    /// the PCR values alone (stream time), never on arrival time. Default 1 s: ten times the
    /// PCR interval, so that a few lost PCR packets are not a jump.
    pub max_pcr_step_27mhz: u64,
}

impl Default for TrackerConfig {
    fn default() -> Self {
        TrackerConfig {
            timeline_timeout_27mhz: 5 * PCR_HZ,
            jump_tolerance_ticks: 2,
            max_pending: 32,
            max_timelines: 256,
            max_pcr_step_27mhz: PCR_HZ,
        }
    }
}

/// One elementary stream of a program.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamInfo {
    /// elementary_PID.
    pub pid: u16,
    /// stream_type.
    pub stream_type: u8,
    /// From a stream_identifier_descriptor (0x52).
    pub component_tag: Option<u8>,
    /// An af_extensions_descriptor (0x3F/0x04) is present (hint only).
    pub af_extensions: bool,
}

/// A program as announced by its PMT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProgramInfo {
    /// program_number (= service_id).
    pub program_number: u16,
    /// PMT PID.
    pub pmt_pid: u16,
    /// PCR_PID.
    pub pcr_pid: u16,
    /// PMT version.
    pub version: u8,
    /// The PID whose PTS forms the program's PTS timeline: the PCR PID when it is one of the
    /// streams, else the first video stream, else the first stream.
    pub pts_pid: Option<u16>,
    /// Streams in PMT order.
    pub streams: Vec<StreamInfo>,
}

/// What is known about a service.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ServiceInfo {
    /// service_id (= program_number).
    pub service_id: u16,
    /// original_network_id (SDT actual).
    pub original_network_id: Option<u16>,
    /// transport_stream_id (SDT actual, else PAT).
    pub transport_stream_id: Option<u16>,
    /// service_type from the service_descriptor.
    pub service_type: Option<u8>,
    /// service_name.
    pub service_name: Option<String>,
    /// service_provider_name.
    pub provider_name: Option<String>,
    /// network_name from the NIT actual.
    pub network_name: Option<String>,
    /// event_id of the present event (EIT p/f actual, section 0).
    pub event_id: Option<u16>,
    /// Name of the present event.
    pub event_name: Option<String>,
    /// Start of the present event, Unix seconds (UTC).
    pub event_start_unix: Option<i64>,
    /// Duration of the present event, seconds.
    pub event_duration_s: Option<u32>,
}

/// A PTS observed on a program's PTS PID.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PtsAnchor {
    /// program_number.
    pub program: u16,
    /// PID of the PES.
    pub pid: u16,
    /// Raw 33-bit PTS.
    pub pts: u64,
    /// PTS unwrapped on the program's continuous timeline.
    pub pts_unwrapped: u64,
    /// DTS, if present.
    pub dts: Option<u64>,
    /// random_access_indicator of the packet.
    pub random_access: bool,
    /// Index of the TS packet starting the PES.
    pub packet_index: u64,
}

/// A TEMI timeline descriptor bound to a PTS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TemiAnchor {
    /// program_number, if the PID was in a PMT.
    pub program: Option<u16>,
    /// PID carrying the descriptor.
    pub pid: u16,
    /// component_tag of that PID, if signalled.
    pub component_tag: Option<u8>,
    /// timeline_id.
    pub timeline_id: u8,
    /// Ticks per second.
    pub timescale: u32,
    /// Timeline value at `pts`.
    pub media_timestamp: u64,
    /// 32 or 64 (width on the wire).
    pub timestamp_bits: u8,
    /// Raw 33-bit PTS the value belongs to.
    pub pts: u64,
    /// That PTS unwrapped on the program's timeline.
    pub pts_unwrapped: u64,
    /// force_reload.
    pub force_reload: bool,
    /// paused.
    pub paused: bool,
    /// discontinuity.
    pub discontinuity: bool,
    /// The full descriptor (NTP, PTP, timecode...).
    pub descriptor: TimelineDescriptor,
    /// Index of the TS packet holding the descriptor.
    pub packet_index: u64,
    /// Index of the TS packet whose PES header gave the PTS.
    pub pts_packet_index: u64,
    /// False when the descriptor was not in the packet starting the PES with the PTS.
    pub conformant: bool,
}

/// A temi_location_descriptor seen on a PID.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemiLocation {
    /// program_number, if known.
    pub program: Option<u16>,
    /// PID.
    pub pid: u16,
    /// The descriptor.
    pub descriptor: crate::temi::LocationDescriptor,
    /// The full URL (with the PID's base URL when use_base_temi_url is set).
    pub url: Option<String>,
    /// Timescale of timeline (PID, timeline_id) if a timeline descriptor gave it (one in the
    /// same packet counts), else of the announcement, if any.
    pub timescale: Option<u32>,
    /// TS packet index.
    pub packet_index: u64,
}

/// Why a timeline was declared discontinuous.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DiscontinuityReason {
    /// The descriptor's discontinuity flag.
    Flagged,
    /// The timescale changed.
    TimescaleChanged,
    /// The value disagrees with the extrapolation from the previous anchor by `deviation`
    /// timeline ticks.
    UndeclaredJump {
        /// received − predicted.
        deviation: i64,
    },
}

/// Kind of timeline state change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeKind {
    /// First descriptor (or first after disappearing).
    Appeared {
        /// Ticks per second.
        timescale: u32,
    },
    /// No descriptor for the configured timeout, or the PID left the PMT.
    Disappeared,
    /// paused went 0 → 1.
    Paused,
    /// paused went 1 → 0.
    Resumed,
    /// Earlier anchors must not be used any more.
    Discontinuity(DiscontinuityReason),
}

/// A change of a timeline identified by (PID, timeline_id).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimelineChange {
    /// program_number, if known.
    pub program: Option<u16>,
    /// PID.
    pub pid: u16,
    /// component_tag of the PID, if signalled.
    pub component_tag: Option<u8>,
    /// timeline_id.
    pub timeline_id: u8,
    /// What happened.
    pub kind: ChangeKind,
    /// TS packet index where it was noticed.
    pub packet_index: u64,
}

/// Output of [`TimelineTracker`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TimelineEvent {
    /// A program appeared or its PMT changed.
    Program(ProgramInfo),
    /// A program left the PAT.
    ProgramRemoved {
        /// program_number.
        program: u16,
    },
    /// Service identity changed (SDT/NIT/EIT/PAT).
    Service(ServiceInfo),
    /// A PTS on a program's PTS PID.
    Pts(PtsAnchor),
    /// A TEMI timeline anchor.
    Temi(TemiAnchor),
    /// A timeline descriptor without media timestamp (flags, NTP/PTP/timecode only).
    TemiWithoutTimestamp {
        /// program_number, if known.
        program: Option<u16>,
        /// PID.
        pid: u16,
        /// The descriptor.
        descriptor: TimelineDescriptor,
        /// TS packet index.
        packet_index: u64,
    },
    /// A TEMI location descriptor.
    Location(TemiLocation),
    /// A timeline state change.
    Change(TimelineChange),
    /// A new time base starts on the program's PCR PID: a PCR with the discontinuity_indicator
    /// (`declared`), or a PCR that steps backwards or further forward than
    /// [`TrackerConfig::max_pcr_step_27mhz`] from the previous one without it (an undeclared
    /// jump). The program's PTS unwrapping restarts; its TEMI timelines are carried across
    /// (spec 6: TEMI survives a splice) and their next values checked against it.
    PcrDiscontinuity {
        /// program_number.
        program: u16,
        /// PCR PID.
        pid: u16,
        /// The new PCR (27 MHz).
        pcr: u64,
        /// The PCR before it (27 MHz, old time base).
        previous_pcr: u64,
        /// True for the discontinuity_indicator, false for an undeclared jump.
        declared: bool,
        /// TS packet index.
        packet_index: u64,
    },
    /// A PCR of a program (every one, after any [`TimelineEvent::PcrDiscontinuity`] it
    /// starts): lets a consumer lock the program's STC to its buffers' running time.
    Pcr {
        /// program_number.
        program: u16,
        /// The PCR (27 MHz).
        pcr: u64,
        /// TS packet index.
        packet_index: u64,
    },
    /// UTC from a TDT/TOT.
    Utc {
        /// Unix seconds.
        unix_seconds: i64,
        /// TS packet index.
        packet_index: u64,
    },
}

/// Error and activity counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TrackerStats {
    /// Packets processed.
    pub packets: u64,
    /// Packets that failed to split (bad AF length, reserved AFC...).
    pub malformed_packets: u64,
    /// Packets with transport_error_indicator (skipped).
    pub tei_packets: u64,
    /// Continuity counter discontinuities.
    pub cc_errors: u64,
    /// Adaptation fields that failed to parse.
    pub malformed_adaptation_fields: u64,
    /// af_descriptors that failed to parse.
    pub malformed_descriptors: u64,
    /// Section errors (CRC, lost continuity, bad pointer, table parse).
    pub section_errors: u64,
    /// Timeline descriptors bound to a later PTS.
    pub nonconformant_descriptors: u64,
    /// Timeline descriptors dropped because too many were pending.
    pub dropped_descriptors: u64,
}

#[derive(Debug, Clone, Copy)]
struct Pending {
    descriptor: TimelineDescriptor,
    packet_index: u64,
}

#[derive(Debug, Default)]
struct PidState {
    program: Option<u16>,
    component_tag: Option<u8>,
    pending: Vec<Pending>,
    base_url: Option<String>,
    /// Used while the PID belongs to no known program.
    unwrapper: PtsUnwrapper,
}

#[derive(Debug)]
struct TimelineState {
    timescale: u32,
    anchor: Option<TimelineAnchor>,
    paused: bool,
    gone: bool,
    last_seen_pcr: Option<u64>,
    /// Set at a time-base discontinuity: the anchor was carried across it with an estimated
    /// offset, uncertain by this many 27 MHz ticks, which widens the next jump check.
    splice_uncertainty_27mhz: Option<u64>,
}

#[derive(Debug)]
struct ProgramState {
    info: ProgramInfo,
    unwrapper: PtsUnwrapper,
    last_pcr: Option<u64>,
    /// Packet index of `last_pcr`.
    last_pcr_index: u64,
    /// The last regular PCR step on the current time base: (27 MHz ticks, packets).
    last_step: Option<(u64, u64)>,
}

/// PCR interval assumed when none was measured yet (ISO/IEC 13818-1's maximum, 100 ms).
const MAX_PCR_INTERVAL_27MHZ: u64 = PCR_HZ / 10;

/// Follows the timelines of one multiplex. See the module documentation.
#[derive(Debug)]
pub struct TimelineTracker {
    config: TrackerConfig,
    cc: ContinuityChecker,
    assemblers: HashMap<u16, SectionAssembler>,
    pat: Option<Pat>,
    /// PMT PID → programs announced on it.
    pmt_pids: HashMap<u16, Vec<u16>>,
    programs: BTreeMap<u16, ProgramState>,
    pids: HashMap<u16, PidState>,
    timelines: BTreeMap<(u16, u8), TimelineState>,
    services: BTreeMap<u16, ServiceInfo>,
    network_name: Option<String>,
    stats: TrackerStats,
}

impl Default for TimelineTracker {
    fn default() -> Self {
        Self::new(TrackerConfig::default())
    }
}

fn is_si_pid(pid: u16) -> bool {
    matches!(
        pid,
        psi::pid::PAT | psi::pid::NIT | psi::pid::SDT | psi::pid::EIT | psi::pid::TDT
    )
}

impl TimelineTracker {
    /// A tracker with `config`.
    pub fn new(config: TrackerConfig) -> Self {
        TimelineTracker {
            config,
            cc: ContinuityChecker::new(),
            assemblers: HashMap::new(),
            pat: None,
            pmt_pids: HashMap::new(),
            programs: BTreeMap::new(),
            pids: HashMap::new(),
            timelines: BTreeMap::new(),
            services: BTreeMap::new(),
            network_name: None,
            stats: TrackerStats::default(),
        }
    }

    /// Counters.
    pub fn stats(&self) -> TrackerStats {
        self.stats
    }

    /// Known programs, by program_number.
    pub fn programs(&self) -> impl Iterator<Item = &ProgramInfo> {
        self.programs.values().map(|p| &p.info)
    }

    /// Known services, by service_id.
    pub fn services(&self) -> impl Iterator<Item = &ServiceInfo> {
        self.services.values()
    }

    /// The latest anchor of timeline (pid, timeline_id), if it is valid.
    pub fn anchor(&self, pid: u16, timeline_id: u8) -> Option<TimelineAnchor> {
        self.timelines
            .get(&(pid, timeline_id))
            .filter(|t| !t.gone)
            .and_then(|t| t.anchor)
    }

    /// Value of timeline (pid, timeline_id) at raw PTS `pts` (same time base), from its latest
    /// anchor (spec section 7).
    pub fn value_at(&self, pid: u16, timeline_id: u8, pts: u64) -> Option<u64> {
        self.anchor(pid, timeline_id)?.value_at(pts)
    }

    /// Forget everything (after a flush or a channel change); counters are kept.
    pub fn reset(&mut self) {
        let stats = self.stats;
        *self = TimelineTracker::new(self.config);
        self.stats = stats;
    }

    /// Process one packet from a [`crate::ts::TsReader`].
    pub fn push(&mut self, packet: &Packet) -> Vec<TimelineEvent> {
        self.push_packet(&packet.data, packet.index)
    }

    /// Process one 188-byte packet; `packet_index` is echoed in events.
    pub fn push_packet(&mut self, data: &[u8], packet_index: u64) -> Vec<TimelineEvent> {
        let mut out = Vec::new();
        self.process(data, packet_index, &mut out);
        out
    }

    fn process(&mut self, data: &[u8], idx: u64, out: &mut Vec<TimelineEvent>) {
        self.stats.packets += 1;
        let Ok(view) = PacketView::parse(data) else {
            self.stats.malformed_packets += 1;
            return;
        };
        let h = view.header;
        if h.tei {
            self.stats.tei_packets += 1;
            return;
        }
        if h.pid == PID_NULL {
            return;
        }
        let af = match view.adaptation_field() {
            Ok(af) => af,
            Err(_) => {
                self.stats.malformed_adaptation_fields += 1;
                None
            }
        };
        let discontinuity = af.as_ref().is_some_and(|a| a.discontinuity);
        if let CcStatus::Discontinuity { .. } = self.cc.check(&h, discontinuity) {
            self.stats.cc_errors += 1;
        }

        if let Some(pcr) = af.as_ref().and_then(|a| a.pcr) {
            self.on_pcr(h.pid, pcr.to_27mhz(), discontinuity, idx, out);
        }

        if is_si_pid(h.pid) || self.pmt_pids.contains_key(&h.pid) {
            if h.has_payload() && h.scrambling == 0 {
                let results = self.assemblers.entry(h.pid).or_default().push(
                    h.pusi,
                    h.cc,
                    discontinuity,
                    view.payload,
                );
                for r in results {
                    match r {
                        Ok(s) => self.on_section(h.pid, &s, idx, out),
                        Err(_) => self.stats.section_errors += 1,
                    }
                }
            }
            return;
        }

        // TEMI descriptors of this packet; locations are reported after the timeline
        // descriptors of the same packet are bound, so that they know its timescale.
        let mut here: Vec<TimelineDescriptor> = Vec::new();
        let mut locations: Vec<TemiLocation> = Vec::new();
        if let Some(descs) = af
            .as_ref()
            .and_then(|a| a.extension)
            .and_then(|e| e.af_descriptors)
        {
            for d in af_descriptors(descs).map(|r| r.and_then(TemiDescriptor::parse)) {
                match d {
                    Ok(TemiDescriptor::Timeline(t)) => here.push(t),
                    Ok(TemiDescriptor::Location(l)) => {
                        let ps = self.pids.entry(h.pid).or_default();
                        let url = l.url(ps.base_url.as_deref());
                        locations.push(TemiLocation {
                            program: ps.program,
                            pid: h.pid,
                            timescale: l.announcement.map(|a| a.timescale),
                            descriptor: l,
                            url,
                            packet_index: idx,
                        });
                    }
                    Ok(TemiDescriptor::BaseUrl(b)) => {
                        self.pids.entry(h.pid).or_default().base_url = b.url()
                    }
                    Ok(TemiDescriptor::Other(_)) => {}
                    Err(_) => self.stats.malformed_descriptors += 1,
                }
            }
        }

        // PES header with PTS?
        let pes = if h.pusi && h.scrambling == 0 {
            PesHeader::parse(view.payload).ok()
        } else {
            None
        };
        let pts = pes.and_then(|p| p.pts.map(|pts| (pts, p.dts)));
        let Some((pts, dts)) = pts else {
            if !here.is_empty() {
                let max = self.config.max_pending;
                let ps = self.pids.entry(h.pid).or_default();
                for descriptor in here {
                    if ps.pending.len() >= max {
                        ps.pending.remove(0);
                        self.stats.dropped_descriptors += 1;
                    }
                    ps.pending.push(Pending {
                        descriptor,
                        packet_index: idx,
                    });
                }
            }
            self.push_locations(locations, out);
            return;
        };

        let ps = self.pids.entry(h.pid).or_default();
        let program = ps.program;
        let pending = std::mem::take(&mut ps.pending);
        let pts_unwrapped = match program.and_then(|p| self.programs.get_mut(&p)) {
            Some(prog) => prog.unwrapper.unwrap(pts),
            None => ps.unwrapper.unwrap(pts),
        };
        if let Some(prog) = program.and_then(|p| self.programs.get(&p)) {
            if prog.info.pts_pid == Some(h.pid) {
                out.push(TimelineEvent::Pts(PtsAnchor {
                    program: prog.info.program_number,
                    pid: h.pid,
                    pts,
                    pts_unwrapped,
                    dts,
                    random_access: af.as_ref().is_some_and(|a| a.random_access),
                    packet_index: idx,
                }));
            }
        }
        for p in pending {
            self.stats.nonconformant_descriptors += 1;
            self.bind(
                h.pid,
                p.descriptor,
                pts,
                pts_unwrapped,
                p.packet_index,
                idx,
                false,
                out,
            );
        }
        for d in here {
            self.bind(h.pid, d, pts, pts_unwrapped, idx, idx, true, out);
        }
        self.push_locations(locations, out);
    }

    fn push_locations(&self, locations: Vec<TemiLocation>, out: &mut Vec<TimelineEvent>) {
        for mut l in locations {
            if let Some(t) = self
                .timelines
                .get(&(l.pid, l.descriptor.timeline_id))
                .filter(|t| !t.gone)
            {
                l.timescale = Some(t.timescale);
            }
            out.push(TimelineEvent::Location(l));
        }
    }

    fn component_tag(&self, pid: u16) -> Option<u8> {
        self.pids.get(&pid).and_then(|p| p.component_tag)
    }

    #[allow(clippy::too_many_arguments)]
    fn bind(
        &mut self,
        pid: u16,
        d: TimelineDescriptor,
        pts: u64,
        pts_unwrapped: u64,
        packet_index: u64,
        pts_packet_index: u64,
        conformant: bool,
        out: &mut Vec<TimelineEvent>,
    ) {
        let program = self.pids.get(&pid).and_then(|p| p.program);
        let component_tag = self.component_tag(pid);
        let last_pcr = program
            .and_then(|p| self.programs.get(&p))
            .and_then(|p| p.last_pcr);
        let change = |kind| {
            TimelineEvent::Change(TimelineChange {
                program,
                pid,
                component_tag,
                timeline_id: d.timeline_id,
                kind,
                packet_index: pts_packet_index,
            })
        };
        let Some(MediaTimestamp {
            timescale,
            value,
            bits,
        }) = d.media_timestamp
        else {
            if let Some(t) = self.timelines.get_mut(&(pid, d.timeline_id)) {
                if d.discontinuity {
                    t.anchor = None;
                    out.push(change(ChangeKind::Discontinuity(
                        DiscontinuityReason::Flagged,
                    )));
                }
                if d.paused != t.paused {
                    t.paused = d.paused;
                    out.push(change(if d.paused {
                        ChangeKind::Paused
                    } else {
                        ChangeKind::Resumed
                    }));
                }
            }
            out.push(TimelineEvent::TemiWithoutTimestamp {
                program,
                pid,
                descriptor: d,
                packet_index,
            });
            return;
        };
        let tolerance = self
            .config
            .jump_tolerance_ticks
            .saturating_add(u64::from(timescale).div_ceil(PTS_HZ));
        let new_anchor = TimelineAnchor {
            pts,
            value,
            timescale: u64::from(timescale),
            paused: d.paused,
        };
        let full = self.timelines.len() >= self.config.max_timelines;
        match self.timelines.get_mut(&(pid, d.timeline_id)) {
            None if full => {
                self.stats.dropped_descriptors += 1;
                return;
            }
            None => {
                out.push(change(ChangeKind::Appeared { timescale }));
                if d.paused {
                    out.push(change(ChangeKind::Paused));
                }
                self.timelines.insert(
                    (pid, d.timeline_id),
                    TimelineState {
                        timescale,
                        anchor: Some(new_anchor),
                        paused: d.paused,
                        gone: false,
                        last_seen_pcr: last_pcr,
                        splice_uncertainty_27mhz: None,
                    },
                );
            }
            Some(t) => {
                if t.gone {
                    t.gone = false;
                    t.anchor = None;
                    out.push(change(ChangeKind::Appeared { timescale }));
                }
                if d.discontinuity {
                    t.anchor = None;
                    out.push(change(ChangeKind::Discontinuity(
                        DiscontinuityReason::Flagged,
                    )));
                } else if timescale != t.timescale {
                    t.anchor = None;
                    out.push(change(ChangeKind::Discontinuity(
                        DiscontinuityReason::TimescaleChanged,
                    )));
                } else if let Some(a) = t.anchor {
                    // A paused timeline stays at its value: while paused, and at the resume,
                    // the value must be the paused one exactly. A running one is extrapolated
                    // (across a time-base splice with that splice's uncertainty).
                    let tolerance = if a.paused {
                        0
                    } else {
                        let splice = t.splice_uncertainty_27mhz.map_or(0, |u| {
                            convert(u, PCR_HZ, u64::from(timescale)).saturating_add(1)
                        });
                        tolerance.saturating_add(splice)
                    };
                    if let Some(dev) = a.deviation(pts, value) {
                        if dev.unsigned_abs() > u128::from(tolerance) {
                            let deviation = i64::try_from(dev).unwrap_or(if dev < 0 {
                                i64::MIN
                            } else {
                                i64::MAX
                            });
                            out.push(change(ChangeKind::Discontinuity(
                                DiscontinuityReason::UndeclaredJump { deviation },
                            )));
                        }
                    }
                }
                if d.paused != t.paused {
                    out.push(change(if d.paused {
                        ChangeKind::Paused
                    } else {
                        ChangeKind::Resumed
                    }));
                }
                t.timescale = timescale;
                t.paused = d.paused;
                t.anchor = Some(new_anchor);
                t.last_seen_pcr = last_pcr;
                t.splice_uncertainty_27mhz = None;
            }
        }
        out.push(TimelineEvent::Temi(TemiAnchor {
            program,
            pid,
            component_tag,
            timeline_id: d.timeline_id,
            timescale,
            media_timestamp: value,
            timestamp_bits: bits,
            pts,
            pts_unwrapped,
            force_reload: d.force_reload,
            paused: d.paused,
            discontinuity: d.discontinuity,
            descriptor: d,
            packet_index,
            pts_packet_index,
            conformant,
        }));
    }

    fn on_pcr(
        &mut self,
        pid: u16,
        pcr: u64,
        discontinuity: bool,
        idx: u64,
        out: &mut Vec<TimelineEvent>,
    ) {
        let timeout = self.config.timeline_timeout_27mhz;
        let max_step = i64::try_from(self.config.max_pcr_step_27mhz).unwrap_or(i64::MAX);
        let progs: Vec<u16> = self
            .programs
            .iter()
            .filter(|(_, p)| p.info.pcr_pid == pid)
            .map(|(&n, _)| n)
            .collect();
        for program in progs {
            let Some(p) = self.programs.get_mut(&program) else {
                continue;
            };
            let previous = p.last_pcr.map(|prev| (prev, p.last_pcr_index));
            p.last_pcr = Some(pcr);
            p.last_pcr_index = idx;
            // A new time base: the discontinuity_indicator, or a step no PCR cadence explains.
            // (The step is modulo 2^33 × 300, so the PCR wrapping is a small forward step.)
            let splice = previous.and_then(|(prev, prev_idx)| {
                let step = pcr_diff(pcr, prev);
                let packets = idx.saturating_sub(prev_idx);
                let regular = (0..=max_step).contains(&step);
                if !discontinuity && regular {
                    if packets > 0 {
                        p.last_step = Some((step.unsigned_abs(), packets));
                    }
                    return None;
                }
                // Where the old time base would be now: the last PCR plus the packets since
                // at the last measured PCR rate; the time between two PCRs is uncertain by
                // about one PCR interval.
                let (elapsed, uncertainty) = match p.last_step {
                    Some((ticks, n)) if n > 0 => (
                        u64::try_from(u128::from(ticks) * u128::from(packets) / u128::from(n))
                            .unwrap_or(u64::MAX)
                            .min(MAX_PCR_INTERVAL_27MHZ),
                        ticks.min(MAX_PCR_INTERVAL_27MHZ),
                    ),
                    _ => (0, MAX_PCR_INTERVAL_27MHZ),
                };
                let expected = prev.wrapping_add(elapsed) % PCR_MODULO;
                Some((prev, pcr_diff(pcr, expected), uncertainty))
            });
            if let Some((previous_pcr, _, _)) = splice {
                p.unwrapper.reset();
                p.last_step = None;
                out.push(TimelineEvent::PcrDiscontinuity {
                    program,
                    pid,
                    pcr,
                    previous_pcr,
                    declared: discontinuity,
                    packet_index: idx,
                });
            }
            out.push(TimelineEvent::Pcr {
                program,
                pcr,
                packet_index: idx,
            });
            let members: HashSet<u16> = p.info.streams.iter().map(|s| s.pid).collect();
            for (&(tpid, tid), t) in self.timelines.iter_mut() {
                if !members.contains(&tpid) {
                    continue;
                }
                if let Some((_, offset, uncertainty)) = splice {
                    // TEMI is meant to survive a splice: carry the anchor onto the new time
                    // base (the new base is `offset` ahead of the old one); the next value
                    // tells whether the timeline really continues.
                    if let Some(a) = &mut t.anchor {
                        a.pts = pts_add(a.pts, offset.div_euclid(300));
                    }
                    t.splice_uncertainty_27mhz = Some(
                        t.splice_uncertainty_27mhz
                            .unwrap_or(0)
                            .saturating_add(uncertainty),
                    );
                    t.last_seen_pcr = Some(pcr);
                    continue;
                }
                let Some(seen) = t.last_seen_pcr else {
                    t.last_seen_pcr = Some(pcr);
                    continue;
                };
                if !t.gone && pcr_diff(pcr, seen) > i64::try_from(timeout).unwrap_or(i64::MAX) {
                    t.gone = true;
                    t.anchor = None;
                    let component_tag = self.pids.get(&tpid).and_then(|s| s.component_tag);
                    out.push(TimelineEvent::Change(TimelineChange {
                        program: Some(program),
                        pid: tpid,
                        component_tag,
                        timeline_id: tid,
                        kind: ChangeKind::Disappeared,
                        packet_index: idx,
                    }));
                }
            }
        }
    }

    fn on_section(&mut self, pid: u16, s: &Section, idx: u64, out: &mut Vec<TimelineEvent>) {
        if !s.header.current_next && s.header.syntax {
            return;
        }
        let tid = s.header.table_id;
        let res = match (pid, tid) {
            (psi::pid::PAT, table_id::PAT) => Pat::parse(s).map(|p| self.on_pat(p, idx, out)),
            (psi::pid::SDT, table_id::SDT_ACTUAL) => Sdt::parse(s).map(|t| self.on_sdt(t, out)),
            (psi::pid::NIT, table_id::NIT_ACTUAL) => Nit::parse(s).map(|n| self.on_nit(n, out)),
            (psi::pid::EIT, table_id::EIT_PF_ACTUAL) => Eit::parse(s).map(|e| self.on_eit(e, out)),
            (psi::pid::TDT, table_id::TDT | table_id::TOT) => TimeTable::parse(s).map(|t| {
                out.push(TimelineEvent::Utc {
                    unix_seconds: t.utc_unix,
                    packet_index: idx,
                })
            }),
            (_, table_id::PMT) if self.pmt_pids.contains_key(&pid) => {
                Pmt::parse(s).map(|p| self.on_pmt(pid, p, idx, out))
            }
            _ => Ok(()),
        };
        if res.is_err() {
            self.stats.section_errors += 1;
        }
    }

    fn update_service(
        &mut self,
        service_id: u16,
        f: impl FnOnce(&mut ServiceInfo),
        out: &mut Vec<TimelineEvent>,
    ) {
        let network_name = self.network_name.clone();
        let tsid = self.pat.as_ref().map(|p| p.transport_stream_id);
        let is_new = !self.services.contains_key(&service_id);
        let svc = self
            .services
            .entry(service_id)
            .or_insert_with(|| ServiceInfo {
                service_id,
                transport_stream_id: tsid,
                network_name,
                ..Default::default()
            });
        let before = svc.clone();
        f(svc);
        if is_new || *svc != before {
            out.push(TimelineEvent::Service(svc.clone()));
        }
    }

    fn on_pat(&mut self, pat: Pat, idx: u64, out: &mut Vec<TimelineEvent>) {
        if self.pat.as_ref() == Some(&pat) {
            return;
        }
        let mut pmt_pids: HashMap<u16, Vec<u16>> = HashMap::new();
        for e in &pat.programs {
            pmt_pids.entry(e.pid).or_default().push(e.program_number);
        }
        let wanted: HashSet<u16> = pat.programs.iter().map(|e| e.program_number).collect();
        let removed: Vec<u16> = self
            .programs
            .keys()
            .copied()
            .filter(|p| !wanted.contains(p))
            .collect();
        for program in removed {
            self.remove_program(program, idx, out);
        }
        // A program whose PMT PID moved must be re-learnt.
        let moved: Vec<u16> = pat
            .programs
            .iter()
            .filter(|e| {
                self.programs
                    .get(&e.program_number)
                    .is_some_and(|p| p.info.pmt_pid != e.pid)
            })
            .map(|e| e.program_number)
            .collect();
        for program in moved {
            self.remove_program(program, idx, out);
        }
        self.assemblers
            .retain(|pid, _| is_si_pid(*pid) || pmt_pids.contains_key(pid));
        self.pmt_pids = pmt_pids;
        let tsid = pat.transport_stream_id;
        let programs: Vec<u16> = pat.programs.iter().map(|e| e.program_number).collect();
        self.pat = Some(pat);
        for sid in programs {
            self.update_service(
                sid,
                |s| {
                    if s.transport_stream_id.is_none() {
                        s.transport_stream_id = Some(tsid);
                    }
                },
                out,
            );
        }
    }

    fn remove_program(&mut self, program: u16, idx: u64, out: &mut Vec<TimelineEvent>) {
        if let Some(p) = self.programs.remove(&program) {
            for s in &p.info.streams {
                self.detach_pid(s.pid, program, idx, out);
            }
            out.push(TimelineEvent::ProgramRemoved { program });
        }
    }

    fn detach_pid(&mut self, pid: u16, program: u16, idx: u64, out: &mut Vec<TimelineEvent>) {
        if let Some(ps) = self.pids.get_mut(&pid) {
            if ps.program == Some(program) {
                ps.program = None;
            }
        }
        let component_tag = self.component_tag(pid);
        let keys: Vec<(u16, u8)> = self
            .timelines
            .range((pid, 0)..=(pid, u8::MAX))
            .map(|(k, _)| *k)
            .collect();
        for k in keys {
            if let Some(t) = self.timelines.remove(&k) {
                if !t.gone {
                    out.push(TimelineEvent::Change(TimelineChange {
                        program: Some(program),
                        pid,
                        component_tag,
                        timeline_id: k.1,
                        kind: ChangeKind::Disappeared,
                        packet_index: idx,
                    }));
                }
            }
        }
    }

    fn on_pmt(&mut self, pmt_pid: u16, pmt: Pmt, idx: u64, out: &mut Vec<TimelineEvent>) {
        let program = pmt.program_number;
        if !self
            .pmt_pids
            .get(&pmt_pid)
            .is_some_and(|v| v.contains(&program))
        {
            return;
        }
        let streams: Vec<StreamInfo> = pmt
            .streams
            .iter()
            .map(|s| StreamInfo {
                pid: s.pid,
                stream_type: s.stream_type,
                component_tag: s.component_tag(),
                af_extensions: s.has_af_extensions(),
            })
            .collect();
        let pts_pid = if streams.iter().any(|s| s.pid == pmt.pcr_pid) {
            Some(pmt.pcr_pid)
        } else {
            pmt.streams
                .iter()
                .find(|s| s.is_video())
                .or(pmt.streams.first())
                .map(|s| s.pid)
        };
        let info = ProgramInfo {
            program_number: program,
            pmt_pid,
            pcr_pid: pmt.pcr_pid,
            version: pmt.version,
            pts_pid,
            streams,
        };
        if self.programs.get(&program).is_some_and(|p| p.info == info) {
            return;
        }
        let old: Vec<u16> = self
            .programs
            .get(&program)
            .map(|p| p.info.streams.iter().map(|s| s.pid).collect())
            .unwrap_or_default();
        for pid in old {
            if !info.streams.iter().any(|s| s.pid == pid) {
                self.detach_pid(pid, program, idx, out);
            }
        }
        for s in &info.streams {
            let ps = self.pids.entry(s.pid).or_default();
            if ps.program.is_none_or(|p| p == program) {
                ps.program = Some(program);
                ps.component_tag = s.component_tag;
            }
        }
        match self.programs.get_mut(&program) {
            Some(p) => p.info = info.clone(),
            None => {
                self.programs.insert(
                    program,
                    ProgramState {
                        info: info.clone(),
                        unwrapper: PtsUnwrapper::new(),
                        last_pcr: None,
                        last_pcr_index: 0,
                        last_step: None,
                    },
                );
            }
        }
        out.push(TimelineEvent::Program(info));
    }

    fn on_sdt(&mut self, sdt: Sdt, out: &mut Vec<TimelineEvent>) {
        for svc in &sdt.services {
            let sd = svc.service_descriptor();
            let (onid, tsid) = (sdt.original_network_id, sdt.transport_stream_id);
            self.update_service(
                svc.service_id,
                |s| {
                    s.original_network_id = Some(onid);
                    s.transport_stream_id = Some(tsid);
                    if let Some(sd) = sd {
                        s.service_type = Some(sd.service_type);
                        s.service_name = Some(sd.service_name);
                        s.provider_name = Some(sd.provider_name);
                    }
                },
                out,
            );
        }
    }

    fn on_nit(&mut self, nit: Nit, out: &mut Vec<TimelineEvent>) {
        if nit.network_name == self.network_name {
            return;
        }
        self.network_name = nit.network_name;
        let ids: Vec<u16> = self.services.keys().copied().collect();
        for id in ids {
            let name = self.network_name.clone();
            self.update_service(id, |s| s.network_name = name, out);
        }
    }

    fn on_eit(&mut self, eit: Eit, out: &mut Vec<TimelineEvent>) {
        if eit.section_number != 0 {
            return;
        }
        let ev = eit.events.first();
        let event_id = ev.map(|e| e.event_id);
        let event_name = ev.and_then(|e| e.short_event()).map(|s| s.name);
        let (start, duration) = (ev.and_then(|e| e.start_unix), ev.and_then(|e| e.duration_s));
        self.update_service(
            eit.service_id,
            |s| {
                s.event_id = event_id;
                s.event_name = event_name;
                s.event_start_unix = start;
                s.event_duration_s = duration;
            },
            out,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::psi::tests::long_section;
    use crate::temi::encode_timeline_descriptor;
    use crate::ts::{encode_timestamp, Pcr, TsReader};
    use serde_json::Value;

    fn run_file(name: &str) -> (Vec<TimelineEvent>, TimelineTracker, Value) {
        let (ts, json) = crate::vectors::load(name);
        assert_eq!(json["size_bytes"].as_u64(), Some(ts.len() as u64));
        let mut reader = TsReader::new();
        let mut tracker = TimelineTracker::default();
        let mut events = Vec::new();
        for chunk in ts.chunks(1000) {
            reader.push(chunk);
            while let Some(p) = reader.next().expect("clean stream") {
                events.extend(tracker.push(&p));
            }
        }
        reader.finish();
        while let Some(p) = reader.next().expect("clean stream") {
            events.extend(tracker.push(&p));
        }
        assert_eq!(reader.stats().packets, ts.len() as u64 / 188);
        assert_eq!(reader.stats().bytes_skipped, 0);
        let st = tracker.stats();
        assert_eq!(
            (
                st.cc_errors,
                st.malformed_packets,
                st.malformed_adaptation_fields,
                st.malformed_descriptors,
                st.section_errors
            ),
            (0, 0, 0, 0, 0),
            "{st:?}"
        );
        (events, tracker, json)
    }

    fn temi_anchors(events: &[TimelineEvent]) -> Vec<TemiAnchor> {
        events
            .iter()
            .filter_map(|e| match e {
                TimelineEvent::Temi(a) => Some(*a),
                _ => None,
            })
            .collect()
    }

    fn check_vector(name: &str) -> (Vec<TimelineEvent>, TimelineTracker, Value) {
        let (events, tracker, json) = run_file(name);
        let anchors = temi_anchors(&events);
        let want = json["temi"].as_array().expect("temi array");
        assert_eq!(anchors.len(), want.len(), "{name}: number of TEMI anchors");
        for (i, (a, w)) in anchors.iter().zip(want).enumerate() {
            let got = (
                a.packet_index,
                a.pid as u64,
                a.pts,
                a.timeline_id as u64,
                a.timescale as u64,
                a.media_timestamp,
                a.force_reload,
                a.paused,
                a.discontinuity,
            );
            let exp = (
                w["ts_packet_index"].as_u64().unwrap(),
                w["pid"].as_u64().unwrap(),
                w["pts"].as_u64().unwrap(),
                w["timeline_id"].as_u64().unwrap(),
                w["timescale"].as_u64().unwrap(),
                w["media_timestamp"].as_u64().unwrap(),
                w["force_reload"].as_bool().unwrap(),
                w["paused"].as_bool().unwrap(),
                w["discontinuity"].as_bool().unwrap(),
            );
            assert_eq!(got, exp, "{name}: temi entry {i}");
            assert_eq!(a.packet_index * 188, w["byte_offset"].as_u64().unwrap());
            assert!(
                a.conformant,
                "{name}: entry {i} should bind in its own packet"
            );
            assert_eq!(a.pts_packet_index, a.packet_index);
            assert_eq!(a.pts_unwrapped, a.pts, "no wrap in the vectors");
        }

        // No false discontinuities or disappearances in clean streams.
        for e in &events {
            if let TimelineEvent::Change(c) = e {
                assert!(
                    matches!(c.kind, ChangeKind::Appeared { .. }),
                    "{name}: unexpected change {c:?}"
                );
            }
        }

        // Programs and services.
        let programs: Vec<&ProgramInfo> = tracker.programs().collect();
        let want = json["programs"].as_array().unwrap();
        assert_eq!(programs.len(), want.len());
        for w in want {
            let pn = w["program_number"].as_u64().unwrap() as u16;
            let p = programs
                .iter()
                .find(|p| p.program_number == pn)
                .expect("program present");
            assert_eq!(p.pmt_pid as u64, w["pmt_pid"].as_u64().unwrap());
            assert_eq!(p.pcr_pid as u64, w["pcr_pid"].as_u64().unwrap());
            assert_eq!(p.pts_pid, Some(p.pcr_pid));
            let pids: Vec<u64> = p.streams.iter().map(|s| s.pid as u64).collect();
            let wpids: Vec<u64> = w["streams"]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| s["pid"].as_u64().unwrap())
                .collect();
            assert_eq!(pids, wpids);
            for (s, ws) in p.streams.iter().zip(w["streams"].as_array().unwrap()) {
                let st = match ws["codec"].as_str().unwrap() {
                    "h264" => 0x1B,
                    "aac" => 0x0F,
                    c => panic!("codec {c}"),
                };
                assert_eq!(s.stream_type, st);
            }
            assert!(w["stream_identifier_descriptor"].is_null());
            assert!(p
                .streams
                .iter()
                .all(|s| s.component_tag.is_none() && !s.af_extensions));
            let svc = tracker
                .services()
                .find(|s| s.service_id == pn)
                .expect("service present");
            assert_eq!(svc.service_name.as_deref(), w["service_name"].as_str());
            assert_eq!(svc.provider_name.as_deref(), Some("GPAC"));
        }

        // Timeline summary.
        for w in json["timelines"].as_array().unwrap() {
            let pid = w["pid"].as_u64().unwrap() as u16;
            let tid = w["timeline_id"].as_u64().unwrap() as u8;
            let of: Vec<&TemiAnchor> = anchors
                .iter()
                .filter(|a| a.pid == pid && a.timeline_id == tid)
                .collect();
            assert_eq!(of.len() as u64, w["count"].as_u64().unwrap());
            assert!(of
                .iter()
                .all(|a| a.timescale as u64 == w["timescale"].as_u64().unwrap()));
            let mut bits: Vec<u64> = of.iter().map(|a| a.timestamp_bits as u64).collect();
            bits.sort();
            bits.dedup();
            let wbits: Vec<u64> = w["media_timestamp_bits"]
                .as_array()
                .unwrap()
                .iter()
                .map(|b| b.as_u64().unwrap())
                .collect();
            assert_eq!(bits, wbits);
            let f = &w["first_in_stream_order"];
            assert_eq!(of[0].packet_index, f["ts_packet_index"].as_u64().unwrap());
            assert_eq!(of[0].pts, f["pts"].as_u64().unwrap());
            assert_eq!(
                of[0].media_timestamp,
                f["media_timestamp"].as_u64().unwrap()
            );
            let program = of[0].program.expect("program known");
            assert!(events.iter().any(|e| matches!(e, TimelineEvent::Change(c)
                if c.pid == pid && c.timeline_id == tid && c.program == Some(program)
                    && c.kind == ChangeKind::Appeared { timescale: w["timescale"].as_u64().unwrap() as u32 })));
        }
        (events, tracker, json)
    }

    #[test]
    fn vector_temi_a_single_timeline() {
        let (events, tracker, json) = check_vector("temi_a_single_timeline");
        let locs: Vec<&TemiLocation> = events
            .iter()
            .filter_map(|e| match e {
                TimelineEvent::Location(l) => Some(l),
                _ => None,
            })
            .collect();
        let w = &json["temi_location_descriptors"];
        assert_eq!(locs.len() as u64, w["count"].as_u64().unwrap());
        let idx: Vec<u64> = locs.iter().map(|l| l.packet_index).collect();
        let widx: Vec<u64> = w["ts_packet_indexes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap())
            .collect();
        assert_eq!(idx, widx);
        let d = &w["distinct"][0];
        for l in &locs {
            assert_eq!(l.pid as u64, d["pid"].as_u64().unwrap());
            assert_eq!(
                l.descriptor.timeline_id as u64,
                d["timeline_id"].as_u64().unwrap()
            );
            assert_eq!(l.url.as_deref(), d["url"].as_str());
            // The first one shares its packet with the timeline's first descriptor.
            assert_eq!(l.timescale, Some(1000));
            assert_eq!(l.program, Some(1));
        }
        // Spec 7 worked example through the tracker: value at PTS 903000 is 9920.
        assert_eq!(tracker.value_at(102, 1, 903_000), Some(9920));
        // The PTS timeline follows the PCR PID (video): one PTS anchor per video PES.
        let pts: Vec<&PtsAnchor> = events
            .iter()
            .filter_map(|e| match e {
                TimelineEvent::Pts(p) => Some(p),
                _ => None,
            })
            .collect();
        assert_eq!(pts.len(), 250);
        assert!(pts.iter().all(|p| p.pid == 102 && p.program == 1));
        assert_eq!(
            (pts[0].pts, pts[0].packet_index, pts[0].random_access),
            (10200, 3, true)
        );
        let svc = tracker.services().next().unwrap();
        assert_eq!(
            (
                svc.service_id,
                svc.original_network_id,
                svc.transport_stream_id
            ),
            (1, Some(0), Some(0))
        );
    }

    #[test]
    fn vector_temi_d_two_programs() {
        let (events, tracker, _json) = check_vector("temi_d_two_programs");
        let anchors = temi_anchors(&events);
        // timeline ids are per PID; program binding follows the PMTs
        for a in &anchors {
            let want = match a.pid {
                102 => 10,
                201 | 202 => 20,
                p => panic!("unexpected PID {p}"),
            };
            assert_eq!(a.program, Some(want));
        }
        assert!(anchors
            .iter()
            .filter(|a| a.pid == 202)
            .all(|a| a.timestamp_bits == 64));
        // 90 kHz timeline: value - 1000000 == PTS - first PTS
        assert!(anchors
            .iter()
            .filter(|a| a.pid == 202)
            .all(|a| a.media_timestamp - 1_000_000 == a.pts - 96006));
        let names: Vec<Option<&str>> = tracker
            .services()
            .map(|s| s.service_name.as_deref())
            .collect();
        assert_eq!(names, vec![Some("TEMI-D1"), Some("TEMI-D2")]);
    }

    // ---- synthetic streams ----

    struct Mux {
        cc: HashMap<u16, u8>,
        out: Vec<[u8; 188]>,
    }

    impl Mux {
        fn new() -> Self {
            Mux {
                cc: HashMap::new(),
                out: Vec::new(),
            }
        }

        fn next_cc(&mut self, pid: u16) -> u8 {
            let c = self.cc.entry(pid).or_insert(15);
            *c = (*c + 1) & 15;
            *c
        }

        fn section(&mut self, pid: u16, sec: &[u8]) {
            let cc = self.next_cc(pid);
            let mut p = [0xFFu8; 188];
            p[..5].copy_from_slice(&[0x47, 0x40 | (pid >> 8) as u8, pid as u8, 0x10 | cc, 0]);
            p[5..5 + sec.len()].copy_from_slice(sec);
            self.out.push(p);
        }

        fn psi(&mut self) {
            self.section(0, &long_section(0, 1, 0, &[0, 1, 0xE1, 0x00]));
            let mut es = vec![0x1B, 0xE1, 0x01, 0xF0, 0x03, 0x52, 0x01, 0x2A];
            es.extend_from_slice(&[0x0F, 0xE1, 0x02, 0xF0, 0x00]);
            let mut body = vec![0xE1, 0x01, 0xF0, 0x00];
            body.extend_from_slice(&es);
            self.section(0x100, &long_section(2, 1, 0, &body));
        }

        /// A packet on `pid` with optional PCR, af_descriptors, PES start with PTS.
        fn es(
            &mut self,
            pid: u16,
            pusi: bool,
            pcr: Option<(u64, bool)>,
            descs: &[u8],
            pts: Option<u64>,
        ) {
            let cc = self.next_cc(pid);
            let mut af = vec![0u8];
            if let Some((base, disc)) = pcr {
                af[0] |= 0x10 | if disc { 0x80 } else { 0 };
                af.extend_from_slice(&Pcr { base, extension: 0 }.encode());
            }
            if !descs.is_empty() {
                af[0] |= 0x01;
                af.push(descs.len() as u8 + 1);
                af.push(0x0F);
                af.extend_from_slice(descs);
            }
            let mut p = [0xFFu8; 188];
            p[..4].copy_from_slice(&[
                0x47,
                (u8::from(pusi) << 6) | (pid >> 8) as u8,
                pid as u8,
                0x30 | cc,
            ]);
            p[4] = af.len() as u8;
            p[5..5 + af.len()].copy_from_slice(&af);
            let pos = 5 + af.len();
            if pusi {
                let mut pes = vec![0, 0, 1, 0xE0, 0, 0, 0x80];
                match pts {
                    Some(t) => {
                        pes.extend_from_slice(&[0x80, 5]);
                        pes.extend_from_slice(&encode_timestamp(2, t));
                    }
                    None => pes.extend_from_slice(&[0x00, 0]),
                }
                p[pos..pos + pes.len()].copy_from_slice(&pes);
            }
            self.out.push(p);
        }

        fn run(&self, t: &mut TimelineTracker) -> Vec<TimelineEvent> {
            let mut ev = Vec::new();
            for (i, p) in self.out.iter().enumerate() {
                ev.extend(t.push_packet(p, i as u64));
            }
            ev
        }
    }

    fn td(id: u8, scale: u32, v: u64) -> Vec<u8> {
        encode_timeline_descriptor(&TimelineDescriptor::new(id, scale, v))
    }

    #[test]
    fn pts_wrap_past_2_pow_33() {
        let mut m = Mux::new();
        m.psi();
        let start = (1u64 << 33) - 5 * 3600;
        for f in 0..12u64 {
            let pts = (start + f * 3600) & ((1 << 33) - 1);
            let pcr = (start - 9000 + f * 3600) & ((1 << 33) - 1);
            m.es(
                0x101,
                true,
                Some((pcr, false)),
                &td(1, 1000, 100 + f * 40),
                Some(pts),
            );
        }
        let mut t = TimelineTracker::default();
        let ev = m.run(&mut t);
        let a = temi_anchors(&ev);
        assert_eq!(a.len(), 12);
        for (f, x) in a.iter().enumerate() {
            assert_eq!(x.pts_unwrapped, start + f as u64 * 3600);
            assert_eq!(x.media_timestamp, 100 + f as u64 * 40);
            assert_eq!(x.component_tag, Some(0x2A));
            assert_eq!(x.program, Some(1));
        }
        assert!(a[11].pts < 1 << 33 && a[11].pts_unwrapped > 1 << 33);
        // no false jump across the wrap
        assert!(!ev.iter().any(|e| matches!(e, TimelineEvent::Change(c) if c.kind != ChangeKind::Appeared { timescale: 1000 })));
        // value after the wrap from the latest anchor
        assert_eq!(t.value_at(0x101, 1, 3600 * 7), Some(100 + 11 * 40 + 40));
    }

    #[test]
    fn late_binding_pause_jump_disappear() {
        let mut m = Mux::new();
        m.psi();
        let mut pcr = 1000u64;
        // 0: conformant
        m.es(0x101, true, Some((pcr, false)), &td(1, 1000, 0), Some(9000));
        // descriptor in a PUSI=0 packet, bound to the next PTS
        m.es(0x101, false, None, &td(1, 1000, 40), None);
        // PES without PTS: still pending, a second descriptor with it
        m.es(0x101, true, None, &td(2, 90000, 5), None);
        m.es(0x101, true, None, &[], Some(9000 + 3600));
        // paused
        let mut d = TimelineDescriptor::new(1, 1000, 80);
        d.paused = true;
        m.es(
            0x101,
            true,
            None,
            &encode_timeline_descriptor(&d),
            Some(9000 + 7200),
        );
        // resumed and an undeclared jump
        m.es(0x101, true, None, &td(1, 1000, 80), Some(9000 + 10800));
        m.es(0x101, true, None, &td(1, 1000, 5000), Some(9000 + 14400));
        // flagged discontinuity
        let mut d = TimelineDescriptor::new(1, 1000, 7);
        d.discontinuity = true;
        m.es(
            0x101,
            true,
            None,
            &encode_timeline_descriptor(&d),
            Some(9000 + 18000),
        );
        // PCR runs 6 s without descriptors -> both timelines disappear
        for _ in 0..7 {
            pcr += 90_000;
            m.es(0x101, false, Some((pcr, false)), &[], None);
        }
        let mut t = TimelineTracker::default();
        let ev = m.run(&mut t);
        let a = temi_anchors(&ev);
        assert_eq!(a.len(), 7);
        assert!(a[0].conformant);
        assert_eq!(
            (
                a[1].packet_index,
                a[1].pts_packet_index,
                a[1].conformant,
                a[1].pts
            ),
            (3, 5, false, 12600)
        );
        assert_eq!(
            (a[2].packet_index, a[2].timeline_id, a[2].conformant),
            (4, 2, false)
        );
        assert_eq!(t.stats().nonconformant_descriptors, 2);
        let changes: Vec<(u8, ChangeKind)> = ev
            .iter()
            .filter_map(|e| match e {
                TimelineEvent::Change(c) => Some((c.timeline_id, c.kind)),
                _ => None,
            })
            .collect();
        assert_eq!(
            changes,
            vec![
                (1, ChangeKind::Appeared { timescale: 1000 }),
                (2, ChangeKind::Appeared { timescale: 90000 }),
                (1, ChangeKind::Paused),
                (1, ChangeKind::Resumed),
                (
                    1,
                    ChangeKind::Discontinuity(DiscontinuityReason::UndeclaredJump {
                        deviation: 5000 - 120
                    })
                ),
                (1, ChangeKind::Discontinuity(DiscontinuityReason::Flagged)),
                (1, ChangeKind::Disappeared),
                (2, ChangeKind::Disappeared),
            ]
        );
        assert_eq!(t.value_at(0x101, 1, 0), None);
    }

    #[test]
    fn pcr_discontinuity_resets_time_base() {
        let mut m = Mux::new();
        m.psi();
        m.es(0x101, true, Some((100, false)), &td(1, 1000, 0), Some(9000));
        m.es(
            0x101,
            true,
            Some((5_000_000, true)),
            &td(1, 1000, 40),
            Some(5_009_000),
        );
        let mut t = TimelineTracker::default();
        let ev = m.run(&mut t);
        assert!(ev.iter().any(|e| matches!(
            e,
            TimelineEvent::PcrDiscontinuity {
                program: 1,
                pid: 0x101,
                pcr: 1_500_000_000,
                ..
            }
        )));
        // Every PCR is reported, the new time base after its discontinuity.
        let pcrs: Vec<u64> = ev
            .iter()
            .filter_map(|e| match e {
                TimelineEvent::Pcr {
                    program: 1, pcr, ..
                } => Some(*pcr),
                _ => None,
            })
            .collect();
        assert_eq!(pcrs, [30_000, 1_500_000_000]);
        let disc = ev
            .iter()
            .position(|e| matches!(e, TimelineEvent::PcrDiscontinuity { .. }))
            .unwrap();
        assert!(matches!(
            ev[disc + 1],
            TimelineEvent::Pcr {
                pcr: 1_500_000_000,
                ..
            }
        ));
        // no jump reported: the timeline continues across the splice (the new base is
        // 4_999_900 ticks ahead, so 40 at 5_009_000 is 1 tick off the prediction, and with a
        // single PCR before it the splice point is uncertain by up to 100 ms)
        assert!(!ev.iter().any(|e| matches!(e, TimelineEvent::Change(c) if matches!(c.kind, ChangeKind::Discontinuity(_)))));
        let a = temi_anchors(&ev);
        assert_eq!(a[1].pts_unwrapped, 5_009_000);
        assert_eq!(t.value_at(0x101, 1, 5_009_000 + 900), Some(50));
    }

    fn changes(ev: &[TimelineEvent]) -> Vec<(u64, u8, ChangeKind)> {
        ev.iter()
            .filter_map(|e| match e {
                TimelineEvent::Change(c) => Some((c.packet_index, c.timeline_id, c.kind)),
                _ => None,
            })
            .collect()
    }

    fn splices(ev: &[TimelineEvent]) -> Vec<(u64, bool)> {
        ev.iter()
            .filter_map(|e| match e {
                TimelineEvent::PcrDiscontinuity {
                    packet_index,
                    declared,
                    ..
                } => Some((*packet_index, *declared)),
                _ => None,
            })
            .collect()
    }

    /// 20 frames of 40 ms, one packet each with PCR, PTS and a 1 kHz TEMI value, PCR from
    /// `start` + 1 s; from frame 10 on, PCR and PTS are moved by `shift` (90 kHz, mod 2^33)
    /// with the discontinuity_indicator if `flag`, and the TEMI value by `temi_jump`.
    fn spliced_from(start: u64, shift: u64, flag: bool, temi_jump: i64) -> Vec<TimelineEvent> {
        let mut m = Mux::new();
        m.psi();
        for f in 0..20u64 {
            let s = if f >= 10 { shift } else { 0 };
            let pcr = (start + 90_000 + f * 3600 + s) & ((1 << 33) - 1);
            let value = (1000 + f * 40) as i64 + if f >= 10 { temi_jump } else { 0 };
            m.es(
                0x101,
                true,
                Some((pcr, flag && f == 10)),
                &td(1, 1000, value as u64),
                Some((pcr + 9000) & ((1 << 33) - 1)),
            );
        }
        m.run(&mut TimelineTracker::default())
    }

    fn spliced(shift: u64, flag: bool, temi_jump: i64) -> Vec<TimelineEvent> {
        spliced_from(0, shift, flag, temi_jump)
    }

    #[test]
    fn undeclared_pcr_jumps_are_time_base_discontinuities() {
        // Packets 0, 1 are PAT and PMT; frame f is packet f + 2.
        let appeared = (2, 1, ChangeKind::Appeared { timescale: 1000 });
        // Back by 3 s (a file played twice), forward by 1.5 s: undeclared.
        for shift in [(1 << 33) - 270_000, 135_000] {
            let ev = spliced(shift, false, 0);
            assert_eq!(splices(&ev), [(12, false)], "shift {shift}");
            // The TEMI timeline carries on across the splice: no change.
            assert_eq!(changes(&ev), [appeared], "shift {shift}");
            // PTS unwrapping restarted at the new time base.
            let pts: Vec<(u64, u64)> = ev
                .iter()
                .filter_map(|e| match e {
                    TimelineEvent::Pts(p) => Some((p.pts, p.pts_unwrapped)),
                    _ => None,
                })
                .collect();
            assert_eq!(pts[10].0, pts[10].1);
        }
        // Forward by 0.9 s: the same time base, so a TEMI value that did not move with the PTS
        // is an ordinary undeclared jump.
        let ev = spliced(81_000, false, 0);
        assert_eq!(splices(&ev), []);
        let jump =
            ChangeKind::Discontinuity(DiscontinuityReason::UndeclaredJump { deviation: -900 });
        assert_eq!(changes(&ev), [appeared, (12, 1, jump)]);
        // PCR and PTS wrapping past 2^33 (PCR between frames 9 and 10): not a jump.
        let ev = spliced_from((1 << 33) - 90_000 - 9 * 3600 - 1800, 0, false, 0);
        assert_eq!(splices(&ev), []);
        assert_eq!(changes(&ev), [appeared]);
        let a = temi_anchors(&ev);
        assert!(a.windows(2).any(|w| w[1].pts < w[0].pts));
        assert!(a
            .windows(2)
            .all(|w| w[1].pts_unwrapped == w[0].pts_unwrapped + 3600));
        // With the flag, even a continuous PCR starts a new time base.
        assert_eq!(splices(&spliced(0, true, 0)), [(12, true)]);
    }

    #[test]
    fn temi_across_a_splice_is_checked_against_the_old_time_base() {
        let appeared = (2, 1, ChangeKind::Appeared { timescale: 1000 });
        for (shift, flag) in [(450_000, true), (450_000, false), (0, true)] {
            // Carries on: no change.
            let ev = spliced(shift, flag, 0);
            assert_eq!(changes(&ev), [appeared], "{shift} {flag}");
            // Jumps: one undeclared jump, at the first descriptor on the new time base.
            let ev = spliced(shift, flag, -1400);
            assert_eq!(
                changes(&ev),
                [
                    appeared,
                    (
                        12,
                        1,
                        ChangeKind::Discontinuity(DiscontinuityReason::UndeclaredJump {
                            deviation: -1400
                        })
                    )
                ],
                "{shift} {flag}"
            );
        }
        // The file played twice: PCR and PTS start over, and so does the timeline.
        let mut m = Mux::new();
        m.psi();
        for f in 0..20u64 {
            let g = f % 10;
            m.es(
                0x101,
                true,
                Some((3000 + g * 3600, false)),
                &td(1, 1000, g * 40),
                Some(12_000 + g * 3600),
            );
        }
        let ev = m.run(&mut TimelineTracker::default());
        assert_eq!(splices(&ev), [(12, false)]);
        let c = changes(&ev);
        assert_eq!(c.len(), 2, "{c:?}");
        assert!(matches!(
            c[1],
            (12, 1, ChangeKind::Discontinuity(DiscontinuityReason::UndeclaredJump { deviation }))
                if (-401..=-399).contains(&deviation)
        ));
    }

    #[test]
    fn value_jumps_while_paused_and_on_resume() {
        let mut m = Mux::new();
        m.psi();
        let d = |v: u64, paused: bool| {
            let mut d = TimelineDescriptor::new(1, 1000, v);
            d.paused = paused;
            encode_timeline_descriptor(&d)
        };
        // (value, paused) per 40 ms frame.
        let frames = [
            (0, false),
            (40, false),
            (999, true), // pauses at a value that does not follow: jump
            (999, true),
            (1010, true),  // changes while paused: jump
            (1010, false), // resumes where it stopped: no jump
            (1050, false),
            (1090, true),
            (1200, false), // resumes elsewhere: jump
        ];
        for (f, (v, paused)) in frames.iter().enumerate() {
            let pts = 9000 + f as u64 * 3600;
            m.es(
                0x101,
                true,
                Some((pts - 9000, false)),
                &d(*v, *paused),
                Some(pts),
            );
        }
        let ev = m.run(&mut TimelineTracker::default());
        let jump = |deviation| {
            ChangeKind::Discontinuity(DiscontinuityReason::UndeclaredJump { deviation })
        };
        assert_eq!(
            changes(&ev),
            [
                (2, 1, ChangeKind::Appeared { timescale: 1000 }),
                (4, 1, jump(999 - 80)),
                (4, 1, ChangeKind::Paused),
                (6, 1, jump(11)),
                (7, 1, ChangeKind::Resumed),
                (9, 1, ChangeKind::Paused),
                (10, 1, jump(110)),
                (10, 1, ChangeKind::Resumed),
            ]
        );
    }

    #[test]
    fn pmt_change_disappearance_has_its_packet_index() {
        let mut m = Mux::new();
        m.psi();
        m.es(0x101, true, Some((0, false)), &td(1, 1000, 0), Some(9000));
        // New PMT version without PID 0x101 (the PCR on 0x102 now).
        let es = [0x0F, 0xE1, 0x02, 0xF0, 0x00];
        let mut body = vec![0xE1, 0x02, 0xF0, 0x00];
        body.extend_from_slice(&es);
        m.section(0x100, &long_section(2, 1, 1, &body));
        let ev = m.run(&mut TimelineTracker::default());
        assert_eq!(
            changes(&ev),
            [
                (2, 1, ChangeKind::Appeared { timescale: 1000 }),
                (3, 1, ChangeKind::Disappeared)
            ]
        );
    }

    #[test]
    fn garbage_never_panics() {
        let mut t = TimelineTracker::default();
        let mut x: u32 = 12345;
        for i in 0..20_000u64 {
            let mut p = [0u8; 188];
            for b in p.iter_mut() {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                *b = x as u8;
            }
            p[0] = 0x47;
            // steer towards interesting PIDs and AF with extensions
            if i % 3 == 0 {
                p[1] &= 0xE0;
                p[2] = [0x00, 0x11, 0x12, 0x14, 0x10][(i / 3 % 5) as usize];
            }
            if i % 2 == 0 {
                p[5] |= 0x01;
            }
            let _ = t.push_packet(&p, i);
            let _ = t.push_packet(&p[..(i % 188) as usize], i);
        }
        assert!(t.stats().packets > 0);
    }
}
