//! The per-mux collector (digest §1, §8.2, §9.6): a pure state machine fed frontend status,
//! sections (or TS packets) and a monotonic time in milliseconds. It waits for lock, then
//! collects PAT → PMTs, SDT actual and NIT actual (and, on request, NIT/SDT other) with all
//! filters armed together and a budget per table counted from lock, and ends with a verdict
//! and the transponders the NIT announces.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::psi::{Pat, Pmt, Section, SectionAssembler};
use crate::satip::Family;
use crate::ts::PacketView;

use super::classify::{self, EsKind, ServiceClass};
use super::mux::Mux;
use super::nit::{Announced, Lcn, LcnOptions, NitTable};
use super::sdt::{SdtEntry, SdtTable};
use super::subtable::{SubTableKey, SubTables};

/// Per-table budgets in ms (totals per mux, counted from lock; PMTs from the complete PAT).
/// Defaults are the digest's [OURS] figures (§8.2), in the spirit of dvbv5-scan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Timeouts {
    /// Lock budget for terrestrial muxes.
    pub lock_terrestrial_ms: u64,
    /// Lock budget for cable and satellite muxes.
    pub lock_other_ms: u64,
    /// Give up when neither SIGNAL nor CARRIER has been seen by then.
    pub no_signal_ms: u64,
    /// PAT.
    pub pat_ms: u64,
    /// Each PMT, after the PAT is complete.
    pub pmt_ms: u64,
    /// SDT actual.
    pub sdt_ms: u64,
    /// NIT actual.
    pub nit_ms: u64,
    /// NIT and SDT other.
    pub other_ms: u64,
    /// Every budget is multiplied by this percentage (dvbv5-scan `-T`, w_scan's factor).
    pub multiplier_percent: u32,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            lock_terrestrial_ms: 4000,
            lock_other_ms: 3000,
            no_signal_ms: 2000,
            pat_ms: 1500,
            pmt_ms: 1500,
            sdt_ms: 3000,
            nit_ms: 12000,
            other_ms: 12000,
            multiplier_percent: 100,
        }
    }
}

impl Timeouts {
    fn scaled(&self, ms: u64) -> u64 {
        ms.saturating_mul(u64::from(self.multiplier_percent)) / 100
    }
}

/// What the collector reads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct CollectorConfig {
    /// Budgets.
    pub timeouts: Timeouts,
    /// Read NIT actual (discovery, LCNs).
    pub read_nit: bool,
    /// Also read NIT other and SDT other.
    pub read_other: bool,
    /// LCN options (NorDig v2 country).
    #[serde(skip)]
    pub lcn: LcnOptions,
}

impl Default for CollectorConfig {
    fn default() -> Self {
        CollectorConfig {
            timeouts: Timeouts::default(),
            read_nit: true,
            read_other: false,
            lcn: LcnOptions::default(),
        }
    }
}

/// A table the collector waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TableKind {
    /// PAT.
    Pat,
    /// PMT of a service.
    Pmt(u16),
    /// SDT actual.
    SdtActual,
    /// NIT actual.
    NitActual,
    /// NIT other.
    NitOther,
    /// SDT other.
    SdtOther,
}

/// A section filter to arm: PID and table_id (a demux filter matches byte 0 only).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Filter {
    /// PID.
    pub pid: u16,
    /// table_id.
    pub table_id: u8,
}

/// Frontend status bits (FE_READ_STATUS).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FrontendStatus {
    /// FE_HAS_SIGNAL.
    pub signal: bool,
    /// FE_HAS_CARRIER.
    pub carrier: bool,
    /// FE_HAS_LOCK.
    pub lock: bool,
}

/// Outcome of a mux scan (§9.6 [OURS]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// Lock, PAT, every PMT and SDT actual.
    Found,
    /// Lock and PAT, something else missing.
    Partial,
    /// No lock, or no PAT.
    Failed,
}

/// Why a mux failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Failure {
    /// Neither SIGNAL nor CARRIER within `no_signal_ms`.
    NoSignal,
    /// No LOCK within the lock budget.
    NoLock,
    /// Locked but no complete PAT within its budget.
    NoPat,
}

/// An elementary stream of a scanned service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EsInfo {
    /// elementary_PID.
    pub pid: u16,
    /// stream_type.
    pub stream_type: u8,
    /// Kind.
    pub kind: EsKind,
    /// ISO 639 language, lower case.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
}

/// What the PMT of a service said.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PmtInfo {
    /// PCR_PID (0x1FFF = none), stored even when it is no ES PID.
    pub pcr_pid: u16,
    /// Streams in PMT order.
    pub streams: Vec<EsInfo>,
    /// CA_system_ids of every CA_descriptor.
    pub ca_system_ids: Vec<u16>,
}

impl PmtInfo {
    fn from_pmt(p: &Pmt) -> PmtInfo {
        PmtInfo {
            pcr_pid: p.pcr_pid,
            streams: p
                .streams
                .iter()
                .map(|s| EsInfo {
                    pid: s.pid,
                    stream_type: s.stream_type,
                    kind: classify::es_kind(s.stream_type, &s.descriptors),
                    language: classify::es_language(s),
                })
                .collect(),
            ca_system_ids: classify::ca_system_ids(p),
        }
    }

    /// The kinds of the streams.
    pub fn kinds(&self) -> Vec<EsKind> {
        self.streams.iter().map(|s| s.kind).collect()
    }
}

/// One service found on a mux.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScannedService {
    /// service_id (program_number).
    pub service_id: u16,
    /// PMT PID from the PAT.
    pub pmt_pid: u16,
    /// The PMT, when it was read.
    pub pmt: Option<PmtInfo>,
    /// The SDT actual entry, when read.
    pub sdt: Option<SdtEntry>,
    /// service_type from the NIT's service_list_descriptor.
    pub nit_service_type: Option<u8>,
    /// LCN from the NIT read on this mux.
    pub lcn: Option<Lcn>,
}

impl ScannedService {
    /// service_type: the SDT's, else the NIT service list's.
    pub fn service_type(&self) -> Option<u8> {
        self.sdt
            .as_ref()
            .and_then(|s| s.service_type)
            .or(self.nit_service_type)
    }

    /// TV / radio / data / other.
    pub fn class(&self) -> ServiceClass {
        let kinds = self.pmt.as_ref().map(PmtInfo::kinds).unwrap_or_default();
        classify::classify(self.service_type(), &kinds)
    }

    /// free_CA_mode or a CA_descriptor.
    pub fn scrambled(&self) -> bool {
        self.sdt.as_ref().is_some_and(|s| s.free_ca_mode)
            || self
                .pmt
                .as_ref()
                .is_some_and(|p| !p.ca_system_ids.is_empty())
    }
}

/// Everything one mux scan produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MuxResult {
    /// The mux as tuned.
    pub mux: Mux,
    /// Verdict.
    pub verdict: Verdict,
    /// Why it failed.
    pub failure: Option<Failure>,
    /// transport_stream_id from the PAT.
    pub tsid: Option<u16>,
    /// original_network_id from SDT actual, else from the NIT actual entry of this TSID.
    pub onid: Option<u16>,
    /// NIT actual, if read.
    pub nit_actual: Option<NitTable>,
    /// SDT actual, if read.
    pub sdt_actual: Option<SdtTable>,
    /// NIT other sub-tables read.
    pub nit_other: Vec<NitTable>,
    /// SDT other sub-tables read.
    pub sdt_other: Vec<SdtTable>,
    /// Services of the PAT, in PAT order.
    pub services: Vec<ScannedService>,
    /// Tables still missing at the end.
    pub missing: Vec<TableKind>,
    /// Time from start to lock.
    pub lock_ms: Option<u64>,
    /// Time from start to the verdict.
    pub elapsed_ms: u64,
}

impl MuxResult {
    /// Muxes announced by NIT actual (and by NIT other when `other`).
    pub fn announced(&self, other: bool) -> Vec<Announced> {
        let mut out: Vec<Announced> = self
            .nit_actual
            .iter()
            .flat_map(|n| n.announced(Some(&self.mux)))
            .collect();
        if other {
            for n in &self.nit_other {
                out.extend(n.announced(Some(&self.mux)));
            }
        }
        out
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Tuning,
    Collecting { locked_at: u64 },
    Done,
}

/// The collector of one mux.
#[derive(Debug, Clone)]
pub struct MuxCollector {
    mux: Mux,
    cfg: CollectorConfig,
    started: u64,
    phase: Phase,
    signal_seen: bool,
    tables: SubTables,
    assemblers: BTreeMap<u16, SectionAssembler>,
    pat: Option<Pat>,
    pat_at: Option<u64>,
    pmts: BTreeMap<u16, Pmt>,
    sdt: Option<SdtTable>,
    nit: Option<NitTable>,
    nit_other: BTreeMap<u16, NitTable>,
    sdt_other: BTreeMap<(u16, u16), SdtTable>,
    result: Option<MuxResult>,
}

/// What [`MuxCollector::poll`] says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Poll {
    /// Still working: call again at this time at the latest (or when input arrives).
    Pending {
        /// Next deadline, in the caller's ms.
        wake_at_ms: u64,
    },
    /// Finished: take the result with [`MuxCollector::result`].
    Done(Verdict),
}

impl MuxCollector {
    /// Start scanning `mux` at `now_ms` (just after the tune command).
    pub fn new(mux: Mux, cfg: CollectorConfig, now_ms: u64) -> MuxCollector {
        MuxCollector {
            mux,
            cfg,
            started: now_ms,
            phase: Phase::Tuning,
            signal_seen: false,
            tables: SubTables::new(),
            assemblers: BTreeMap::new(),
            pat: None,
            pat_at: None,
            pmts: BTreeMap::new(),
            sdt: None,
            nit: None,
            nit_other: BTreeMap::new(),
            sdt_other: BTreeMap::new(),
            result: None,
        }
    }

    /// The mux being scanned.
    pub fn mux(&self) -> &Mux {
        &self.mux
    }

    fn t(&self, ms: u64) -> u64 {
        self.cfg.timeouts.scaled(ms)
    }

    fn lock_budget(&self) -> u64 {
        self.t(if self.mux.family() == Family::Terrestrial {
            self.cfg.timeouts.lock_terrestrial_ms
        } else {
            self.cfg.timeouts.lock_other_ms
        })
    }

    /// Report FE_READ_STATUS.
    pub fn frontend_status(&mut self, now_ms: u64, st: FrontendStatus) {
        self.signal_seen |= st.signal || st.carrier || st.lock;
        if st.lock && self.phase == Phase::Tuning {
            self.phase = Phase::Collecting { locked_at: now_ms };
        }
    }

    /// Section filters to arm now (PAT, SDT, NIT at once; PMTs once the PAT is known).
    pub fn filters(&self) -> Vec<Filter> {
        if !matches!(self.phase, Phase::Collecting { .. }) {
            return Vec::new();
        }
        let mut f = vec![
            Filter {
                pid: 0x0000,
                table_id: 0x00,
            },
            Filter {
                pid: 0x0011,
                table_id: 0x42,
            },
        ];
        let nit_pid = self.nit_pid();
        if self.cfg.read_nit {
            f.push(Filter {
                pid: nit_pid,
                table_id: 0x40,
            });
        }
        if self.cfg.read_other {
            f.push(Filter {
                pid: nit_pid,
                table_id: 0x41,
            });
            f.push(Filter {
                pid: 0x0011,
                table_id: 0x46,
            });
        }
        if let Some(p) = &self.pat {
            for e in &p.programs {
                let flt = Filter {
                    pid: e.pid,
                    table_id: 0x02,
                };
                if !f.contains(&flt) {
                    f.push(flt);
                }
            }
        }
        f
    }

    /// Whether some filter is on `pid` (the per-packet check, without building the list).
    fn wants_pid(&self, pid: u16) -> bool {
        matches!(self.phase, Phase::Collecting { .. })
            && (pid == 0x0000
                || pid == 0x0011
                || ((self.cfg.read_nit || self.cfg.read_other) && pid == self.nit_pid())
                || self
                    .pat
                    .as_ref()
                    .is_some_and(|p| p.programs.iter().any(|e| e.pid == pid)))
    }

    fn nit_pid(&self) -> u16 {
        self.pat
            .as_ref()
            .and_then(|p| p.network_pid)
            .unwrap_or(0x0010)
    }

    /// Feed one 188-byte TS packet; sections are reassembled per PID. Packets of PIDs no
    /// filter wants are ignored. Data before lock counts as lock (some sources never report
    /// status).
    pub fn push_packet(&mut self, now_ms: u64, packet: &[u8]) {
        let Ok(p) = PacketView::parse(packet) else {
            return;
        };
        if p.header.tei || p.payload.is_empty() {
            return;
        }
        let pid = p.header.pid;
        if self.phase == Phase::Tuning {
            self.frontend_status(
                now_ms,
                FrontendStatus {
                    signal: true,
                    carrier: true,
                    lock: true,
                },
            );
        }
        if !self.wants_pid(pid) {
            return;
        }
        let disc = p
            .adaptation_field_bytes
            .and_then(|a| a.first())
            .is_some_and(|b| b & 0x80 != 0);
        let out = self.assemblers.entry(pid).or_default().push(
            p.header.pusi,
            p.header.cc,
            disc,
            p.payload,
        );
        for s in out.into_iter().flatten() {
            self.push_section(now_ms, pid, &s);
        }
    }

    /// Feed one CRC-checked section read on `pid`.
    pub fn push_section(&mut self, now_ms: u64, pid: u16, s: &Section) {
        if self.phase == Phase::Done {
            return;
        }
        if self.phase == Phase::Tuning {
            self.phase = Phase::Collecting { locked_at: now_ms };
            self.signal_seen = true;
        }
        let tid = s.header.table_id;
        if !self
            .filters()
            .iter()
            .any(|f| f.pid == pid && f.table_id == tid)
        {
            return;
        }
        if tid == 0x02 {
            // Only the program the PAT maps to this PID.
            let ok = self.pat.as_ref().is_some_and(|p| {
                p.programs
                    .iter()
                    .any(|e| e.pid == pid && e.program_number == s.header.table_id_extension)
            });
            if !ok {
                return;
            }
        }
        self.tables.push(s);
        let key = SubTableKey::of(s);
        let Some(st) = self.tables.get(&key).filter(|t| t.is_complete()) else {
            return;
        };
        match tid {
            0x00 if self.pat.is_none() => {
                let mut pat: Option<Pat> = None;
                for sec in st.sections() {
                    let Ok(p) = Pat::parse(sec) else { return };
                    match pat.as_mut() {
                        None => pat = Some(p),
                        Some(acc) => {
                            acc.programs.extend(p.programs);
                            acc.network_pid = acc.network_pid.or(p.network_pid);
                        }
                    }
                }
                self.pat = pat;
                self.pat_at = Some(now_ms);
            }
            0x02 => {
                if let Some(Ok(p)) = st.sections().next().map(Pmt::parse) {
                    self.pmts.entry(p.program_number).or_insert(p);
                }
            }
            0x42 if self.sdt.is_none() => {
                // SDT actual of this TS only (the PAT's TSID when known).
                if let Ok(t) = SdtTable::from_sections(st.sections()) {
                    if self
                        .pat
                        .as_ref()
                        .is_none_or(|p| p.transport_stream_id == t.tsid)
                    {
                        self.sdt = Some(t);
                    }
                }
            }
            0x40 if self.nit.is_none() => {
                self.nit = NitTable::from_sections(st.sections(), &self.cfg.lcn).ok();
            }
            0x41 => {
                if let Ok(t) = NitTable::from_sections(st.sections(), &self.cfg.lcn) {
                    self.nit_other.entry(t.network_id).or_insert(t);
                }
            }
            0x46 => {
                if let Ok(t) = SdtTable::from_sections(st.sections()) {
                    self.sdt_other.entry((t.onid, t.tsid)).or_insert(t);
                }
            }
            _ => {}
        }
    }

    fn missing(&self) -> Vec<TableKind> {
        let mut m = Vec::new();
        match &self.pat {
            None => m.push(TableKind::Pat),
            Some(p) => {
                for e in &p.programs {
                    if !self.pmts.contains_key(&e.program_number) {
                        m.push(TableKind::Pmt(e.program_number));
                    }
                }
            }
        }
        if self.sdt.is_none() {
            m.push(TableKind::SdtActual);
        }
        if self.cfg.read_nit && self.nit.is_none() {
            m.push(TableKind::NitActual);
        }
        if self.cfg.read_other {
            // "Other" is open-ended: done once something was seen and all of it is complete.
            let nit_open = !self.tables.seen(0x41)
                || self.tables.complete(0x41).count() < self.sub_tables_seen(0x41);
            let sdt_open = !self.tables.seen(0x46)
                || self.tables.complete(0x46).count() < self.sub_tables_seen(0x46);
            if nit_open {
                m.push(TableKind::NitOther);
            }
            if sdt_open {
                m.push(TableKind::SdtOther);
            }
        }
        m
    }

    fn sub_tables_seen(&self, tid: u8) -> usize {
        self.tables.count(tid)
    }

    /// Advance timers; returns whether the scan is finished.
    pub fn poll(&mut self, now_ms: u64) -> Poll {
        if let Some(r) = &self.result {
            return Poll::Done(r.verdict);
        }
        match self.phase {
            Phase::Done => unreachable!("result is set when done"),
            Phase::Tuning => {
                let no_signal = self.started + self.t(self.cfg.timeouts.no_signal_ms);
                let no_lock = self.started + self.lock_budget();
                if !self.signal_seen && now_ms >= no_signal {
                    return self.finish(now_ms, None, Some(Failure::NoSignal));
                }
                if now_ms >= no_lock {
                    return self.finish(now_ms, None, Some(Failure::NoLock));
                }
                let wake = if self.signal_seen {
                    no_lock
                } else {
                    no_signal.min(no_lock)
                };
                Poll::Pending { wake_at_ms: wake }
            }
            Phase::Collecting { locked_at } => {
                let to = &self.cfg.timeouts;
                let pat_deadline = locked_at + self.t(to.pat_ms);
                if self.pat.is_none() && now_ms >= pat_deadline {
                    return self.finish(now_ms, Some(locked_at), Some(Failure::NoPat));
                }
                let missing = self.missing();
                if missing.is_empty() {
                    return self.finish(now_ms, Some(locked_at), None);
                }
                // The deadline of every missing table; done when all have passed.
                let deadline = |k: &TableKind| -> u64 {
                    match k {
                        TableKind::Pat => pat_deadline,
                        TableKind::Pmt(_) => self.pat_at.unwrap_or(locked_at) + self.t(to.pmt_ms),
                        TableKind::SdtActual => locked_at + self.t(to.sdt_ms),
                        TableKind::NitActual => locked_at + self.t(to.nit_ms),
                        TableKind::NitOther | TableKind::SdtOther => {
                            locked_at + self.t(to.other_ms)
                        }
                    }
                };
                let wake = missing.iter().map(deadline).max().unwrap_or(now_ms);
                if now_ms >= wake {
                    return self.finish(now_ms, Some(locked_at), None);
                }
                Poll::Pending { wake_at_ms: wake }
            }
        }
    }

    fn finish(&mut self, now_ms: u64, locked_at: Option<u64>, failure: Option<Failure>) -> Poll {
        let missing = self.missing();
        let verdict = match (&failure, &self.pat) {
            (Some(_), _) | (None, None) => Verdict::Failed,
            (None, Some(_)) => {
                if missing
                    .iter()
                    .any(|k| matches!(k, TableKind::Pmt(_) | TableKind::SdtActual))
                {
                    Verdict::Partial
                } else {
                    Verdict::Found
                }
            }
        };
        let failure = match (verdict, failure) {
            (Verdict::Failed, None) => Some(Failure::NoPat),
            (_, f) => f,
        };
        let tsid = self.pat.as_ref().map(|p| p.transport_stream_id);
        let onid = self.sdt.as_ref().map(|s| s.onid).or_else(|| {
            let nit = self.nit.as_ref()?;
            let tsid = tsid?;
            nit.transports
                .iter()
                .find(|t| t.tsid == tsid)
                .map(|t| t.onid)
        });
        let services = match &self.pat {
            None => Vec::new(),
            Some(p) => p
                .programs
                .iter()
                .map(|e| {
                    let sid = e.program_number;
                    let nit_entry = self.nit.as_ref().and_then(|n| {
                        n.transports
                            .iter()
                            .find(|t| Some(t.tsid) == tsid && onid.is_none_or(|o| o == t.onid))
                    });
                    ScannedService {
                        service_id: sid,
                        pmt_pid: e.pid,
                        pmt: self.pmts.get(&sid).map(PmtInfo::from_pmt),
                        sdt: self.sdt.as_ref().and_then(|s| s.service(sid)).cloned(),
                        nit_service_type: nit_entry.and_then(|t| {
                            t.services
                                .iter()
                                .find(|(s, _)| *s == sid)
                                .map(|(_, ty)| *ty)
                        }),
                        lcn: match (&self.nit, onid, tsid) {
                            (Some(n), Some(o), Some(t)) => n.lcn(o, t, sid),
                            _ => None,
                        },
                    }
                })
                .collect(),
        };
        self.result = Some(MuxResult {
            mux: self.mux.clone(),
            verdict,
            failure,
            tsid,
            onid,
            nit_actual: self.nit.clone(),
            sdt_actual: self.sdt.clone(),
            nit_other: self.nit_other.values().cloned().collect(),
            sdt_other: self.sdt_other.values().cloned().collect(),
            services,
            missing,
            lock_ms: locked_at.map(|l| l.saturating_sub(self.started)),
            elapsed_ms: now_ms.saturating_sub(self.started),
        });
        self.phase = Phase::Done;
        Poll::Done(verdict)
    }

    /// The result, once [`poll`](Self::poll) returned `Done`.
    pub fn result(&self) -> Option<&MuxResult> {
        self.result.as_ref()
    }

    /// Take the result.
    pub fn into_result(self) -> Option<MuxResult> {
        self.result
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scan::fixtures::{self, collect, collect_filtered, network};
    use crate::si;

    #[test]
    fn full_mux_is_found_as_soon_as_every_table_is_in() {
        // §13 items 5, 8, 24, 25.
        let net = network();
        let r = collect(&net[0], &net, CollectorConfig::default());
        assert_eq!(r.verdict, Verdict::Found);
        assert_eq!(r.missing, vec![]);
        assert_eq!((r.tsid, r.onid), (Some(4), Some(fixtures::ONID)));
        assert_eq!(r.elapsed_ms, 20, "ends when complete, not at a budget");
        assert_eq!(r.lock_ms, Some(10));
        let sids: Vec<u16> = r.services.iter().map(|s| s.service_id).collect();
        assert_eq!(
            sids,
            vec![0x0101, 0x0102, 0x0103],
            "program 0 is no service"
        );
        let radio = &r.services[2];
        assert_eq!(radio.class(), ServiceClass::Radio);
        assert_eq!(radio.pmt.as_ref().unwrap().pcr_pid, 0x1FF0);
        assert_eq!(
            radio.sdt.as_ref().unwrap().name.as_deref(),
            Some("Example Radio")
        );
        assert_eq!(radio.lcn.map(|l| l.number), Some(3));
        assert_eq!(
            radio.pmt.as_ref().unwrap().streams[0].language.as_deref(),
            Some("eng")
        );
        let a = r.announced(false);
        assert_eq!(a.len(), 3);
        assert_eq!(a.iter().map(|a| a.tsid).collect::<Vec<_>>(), vec![4, 1, 5]);
        assert_eq!(a[2].mux.tuning.plp, Some(1));
        assert_eq!(a[2].mux.tuning.frequency, 474_000_000);
    }

    #[test]
    fn scrambled_and_data_services() {
        let net = network();
        let r = collect(&net[1], &net, CollectorConfig::default());
        assert_eq!(r.verdict, Verdict::Found);
        assert!(r.services[0].scrambled());
        assert_eq!(r.services[0].class(), ServiceClass::Tv);
        assert_eq!(r.services[1].class(), ServiceClass::Data);
        assert!(!r.services[1].scrambled());
    }

    #[test]
    fn no_lock_and_no_signal_budgets_scale() {
        // §13 items 21, 22, 27.
        let net = network();
        let mut c = MuxCollector::new(net[0].mux.clone(), CollectorConfig::default(), 1000);
        c.frontend_status(
            1100,
            FrontendStatus {
                signal: true,
                ..Default::default()
            },
        );
        assert_eq!(c.poll(2999), Poll::Pending { wake_at_ms: 5000 });
        assert_eq!(c.poll(5000), Poll::Done(Verdict::Failed));
        assert_eq!(c.result().unwrap().failure, Some(Failure::NoLock));

        let mut cfg = CollectorConfig::default();
        cfg.timeouts.multiplier_percent = 200;
        let mut c = MuxCollector::new(net[0].mux.clone(), cfg, 0);
        assert_eq!(c.poll(0), Poll::Pending { wake_at_ms: 4000 });
        assert_eq!(c.poll(4000), Poll::Done(Verdict::Failed));
        assert_eq!(c.result().unwrap().failure, Some(Failure::NoSignal));

        // Cable: 3 s lock budget.
        let mut cable = net[0].mux.clone();
        cable.tuning.delivery_system = crate::satip::DeliverySystem::DvbC;
        let mut c = MuxCollector::new(cable, CollectorConfig::default(), 0);
        c.frontend_status(
            5,
            FrontendStatus {
                carrier: true,
                ..Default::default()
            },
        );
        assert_eq!(c.poll(10), Poll::Pending { wake_at_ms: 3000 });
    }

    #[test]
    fn no_pat_fails_and_missing_sdt_is_partial() {
        // §13 items 23, 26.
        let net = network();
        let r = collect_filtered(&net[0], &net, CollectorConfig::default(), |t| t != 0x00);
        assert_eq!(
            (r.verdict, r.failure),
            (Verdict::Failed, Some(Failure::NoPat))
        );
        assert_eq!(r.elapsed_ms, 1510);
        let r = collect_filtered(&net[0], &net, CollectorConfig::default(), |t| t != 0x42);
        assert_eq!(r.verdict, Verdict::Partial);
        assert_eq!(r.missing, vec![TableKind::SdtActual]);
        assert_eq!(r.elapsed_ms, 3010);
        // ONID then comes from the NIT entry of this TSID.
        assert_eq!(r.onid, Some(fixtures::ONID));
        // Missing NIT: still Found, after the NIT budget; no discovery.
        let r = collect_filtered(&net[0], &net, CollectorConfig::default(), |t| t != 0x40);
        assert_eq!(r.verdict, Verdict::Found);
        assert_eq!(r.missing, vec![TableKind::NitActual]);
        assert_eq!(r.elapsed_ms, 12010);
        assert!(r.announced(false).is_empty());
        // A missing PMT: Partial, 1.5 s after the PAT.
        let r = collect_filtered(&net[0], &net, CollectorConfig::default(), |t| t != 0x02);
        assert_eq!(r.verdict, Verdict::Partial);
        assert_eq!(
            r.missing,
            vec![
                TableKind::Pmt(0x0101),
                TableKind::Pmt(0x0102),
                TableKind::Pmt(0x0103)
            ]
        );
        assert_eq!(
            r.elapsed_ms, 1520,
            "PMT budget counts from the PAT at 20 ms"
        );
    }

    #[test]
    fn filters_follow_the_pat_and_other_tables_only_on_request() {
        // §13 item 9.
        let net = network();
        let mut c = MuxCollector::new(net[0].mux.clone(), CollectorConfig::default(), 0);
        assert!(c.filters().is_empty(), "nothing before lock");
        c.frontend_status(
            1,
            FrontendStatus {
                lock: true,
                ..Default::default()
            },
        );
        let f = c.filters();
        assert!(f.contains(&Filter {
            pid: 0,
            table_id: 0
        }));
        assert!(f.contains(&Filter {
            pid: 0x11,
            table_id: 0x42
        }));
        assert!(f.contains(&Filter {
            pid: 0x10,
            table_id: 0x40
        }));
        assert!(!f.iter().any(|f| f.table_id == 0x46 || f.table_id == 0x41));
        let secs = fixtures::sections(&net[0], &net);
        c.push_section(2, 0, &secs[0].1);
        assert!(c.filters().contains(&Filter {
            pid: 0x100 + 16,
            table_id: 2
        }));
        // An SDT other section is dropped unless asked for.
        let other =
            crate::psi::Section::parse(&si::long_section(0x46, 9, 0, 0, 0, &[0x22, 0x22, 0xFF]))
                .unwrap();
        c.push_section(3, 0x11, &other);
        let cfg = CollectorConfig {
            read_other: true,
            ..Default::default()
        };
        let mut o = MuxCollector::new(net[0].mux.clone(), cfg, 0);
        o.push_section(1, 0x11, &other);
        for (pid, s) in &secs {
            o.push_section(2, *pid, s);
        }
        // NIT other never came: the scan waits for its budget, then is Found with SDT other.
        assert_eq!(o.poll(2), Poll::Pending { wake_at_ms: 12001 });
        assert_eq!(o.poll(12001), Poll::Done(Verdict::Found));
        let r = o.into_result().unwrap();
        assert_eq!(r.sdt_other.len(), 1);
        assert_eq!(r.missing, vec![TableKind::NitOther]);
        c.poll(100_000);
        assert!(c.result().unwrap().sdt_other.is_empty());
    }

    #[test]
    fn packets_in_sections_out() {
        // §13 item 4 through the TS path, incl. a section spanning packets.
        let net = network();
        let mut c = MuxCollector::new(net[0].mux.clone(), CollectorConfig::default(), 0);
        let mut ts = Vec::new();
        let mut pk: std::collections::BTreeMap<u16, si::SectionPacketizer> = Default::default();
        for (pid, s) in fixtures::sections(&net[0], &net) {
            pk.entry(pid)
                .or_insert_with(|| si::SectionPacketizer::new(pid))
                .packetize(&s.data, &mut ts);
        }
        // A long NIT other section spanning several packets is ignored without harm.
        for p in ts.chunks(188) {
            c.push_packet(5, p);
        }
        assert_eq!(c.poll(5), Poll::Done(Verdict::Found));
        assert_eq!(c.result().unwrap().services.len(), 3);
        assert_eq!(c.result().unwrap().lock_ms, Some(5));
    }
}
