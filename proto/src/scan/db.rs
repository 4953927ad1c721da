//! The channel database (digest §9.7 [OURS]): muxes and services keyed by (ONID, TSID, SID),
//! miss counters so flaky tuners never drop anything before K consecutive misses, channel
//! numbers that stay put across rescans, and a versioned JSON form. Writing the file (temp +
//! fsync + rename) is the caller's: this module gives and takes bytes.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use super::classify::{self, ServiceClass};
use super::collector::{MuxResult, PmtInfo, Verdict};
use super::mux::Mux;
use super::nit::Lcn;
use super::queue::Identity;

/// Version of the JSON layout written by [`ChannelDb::to_bytes`].
pub const DB_VERSION: u32 = 1;

/// Database policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct DbPolicy {
    /// K: drop a service or mux at this many consecutive misses (default 3).
    pub max_misses: u32,
}

impl Default for DbPolicy {
    fn default() -> Self {
        DbPolicy { max_misses: 3 }
    }
}

/// A multiplex of the database.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DbMux {
    /// How to tune it (updated from the last successful scan).
    pub mux: Mux,
    /// original_network_id, once known.
    #[serde(default)]
    pub onid: Option<u16>,
    /// transport_stream_id, once known.
    #[serde(default)]
    pub tsid: Option<u16>,
    /// network_id of the NIT actual read on it.
    #[serde(default)]
    pub network_id: Option<u16>,
    /// Network name from that NIT.
    #[serde(default)]
    pub network_name: Option<String>,
    /// Consecutive failed scans.
    #[serde(default)]
    pub misses: u32,
    /// Verdict of the last scan.
    #[serde(default)]
    pub last_verdict: Option<Verdict>,
}

impl DbMux {
    fn identity(&self) -> Option<Identity> {
        Some((self.onid?, self.tsid?, self.mux.stream_id()))
    }
}

/// A service of the database.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DbService {
    /// original_network_id.
    pub onid: u16,
    /// transport_stream_id.
    pub tsid: u16,
    /// service_id.
    pub sid: u16,
    /// Channel number, assigned once.
    pub number: u32,
    /// service_name.
    #[serde(default)]
    pub name: Option<String>,
    /// service_provider_name.
    #[serde(default)]
    pub provider: Option<String>,
    /// service_type (SDT, else NIT service list).
    #[serde(default)]
    pub service_type: Option<u8>,
    /// TV / radio / data / other.
    pub class: ServiceClass,
    /// free_CA_mode or a CA_descriptor.
    #[serde(default)]
    pub scrambled: bool,
    /// Listed in channel lists (false for NVOD and hidden-LCN services).
    #[serde(default = "yes")]
    pub listed: bool,
    /// running_status of the SDT.
    #[serde(default)]
    pub running_status: Option<u8>,
    /// PMT PID.
    pub pmt_pid: u16,
    /// The last PMT read.
    #[serde(default)]
    pub pmt: Option<PmtInfo>,
    /// Broadcast LCN, if any.
    #[serde(default)]
    pub lcn: Option<Lcn>,
    /// Consecutive Found scans of its mux without it in the PAT.
    #[serde(default)]
    pub misses: u32,
    /// First-seen order.
    #[serde(default)]
    pub seq: u64,
}

fn yes() -> bool {
    true
}

impl DbService {
    /// (ONID, TSID, SID).
    pub fn key(&self) -> (u16, u16, u16) {
        (self.onid, self.tsid, self.sid)
    }

    /// Seen in the last Found scan of its mux.
    pub fn seen(&self) -> bool {
        self.misses == 0
    }
}

/// A stored LCN of the network (NITs describe services of muxes not scanned yet).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LcnEntry {
    /// original_network_id.
    pub onid: u16,
    /// transport_stream_id.
    pub tsid: u16,
    /// service_id.
    pub sid: u16,
    /// The LCN.
    pub lcn: Lcn,
}

/// What applying one mux result changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Applied {
    /// Services added (keys).
    pub added: Vec<(u16, u16, u16)>,
    /// Services dropped at K misses.
    pub dropped: Vec<(u16, u16, u16)>,
    /// Services renumbered by a changed LCN: (key, old, new).
    pub renumbered: Vec<((u16, u16, u16), u32, u32)>,
    /// The mux was dropped at K misses.
    pub mux_dropped: bool,
}

/// Errors reading a database.
#[derive(Debug)]
pub enum DbError {
    /// Not JSON of the expected layout.
    Json(serde_json::Error),
    /// Written by a newer layout.
    Version(u32),
}

impl fmt::Display for DbError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DbError::Json(e) => write!(f, "channel database: {e}"),
            DbError::Version(v) => write!(
                f,
                "channel database version {v} is newer than this dvb2ip reads ({DB_VERSION})"
            ),
        }
    }
}

impl std::error::Error for DbError {}

/// The channel database.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChannelDb {
    /// Layout version ([`DB_VERSION`]).
    pub version: u32,
    /// Multiplexes, in first-seen order.
    #[serde(default)]
    pub muxes: Vec<DbMux>,
    /// Services, in first-seen order.
    #[serde(default)]
    pub services: Vec<DbService>,
    /// LCNs read from NITs.
    #[serde(default)]
    pub lcns: Vec<LcnEntry>,
    /// Next first-seen sequence number.
    #[serde(default)]
    pub next_seq: u64,
}

impl Default for ChannelDb {
    fn default() -> Self {
        ChannelDb {
            version: DB_VERSION,
            muxes: Vec::new(),
            services: Vec::new(),
            lcns: Vec::new(),
            next_seq: 0,
        }
    }
}

/// A service with its mux, as exporters and the server want it.
#[derive(Debug, Clone, Copy)]
pub struct Channel<'a> {
    /// The service.
    pub service: &'a DbService,
    /// Its mux.
    pub mux: &'a DbMux,
}

impl Channel<'_> {
    /// The service name, or dvbv5-scan's fallback `506.00MHz#257` (GHz for satellite).
    pub fn name(&self) -> String {
        match self.service.name.as_deref().filter(|n| !n.is_empty()) {
            Some(n) => n.to_owned(),
            None => {
                let khz = self.mux.mux.freq_khz();
                if self.mux.mux.family() == crate::satip::Family::Satellite {
                    format!("{:.2}GHz#{}", f64::from(khz) / 1e6, self.service.sid)
                } else {
                    format!("{:.2}MHz#{}", f64::from(khz) / 1e3, self.service.sid)
                }
            }
        }
    }
}

impl ChannelDb {
    /// An empty database.
    pub fn new() -> ChannelDb {
        ChannelDb::default()
    }

    /// JSON bytes (pretty, newline-terminated).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut v = serde_json::to_vec_pretty(self).expect("the database always serialises");
        v.push(b'\n');
        v
    }

    /// Read JSON bytes; a newer layout version is refused.
    pub fn from_bytes(b: &[u8]) -> Result<ChannelDb, DbError> {
        #[derive(Deserialize)]
        struct V {
            version: u32,
        }
        let v: V = serde_json::from_slice(b).map_err(DbError::Json)?;
        if v.version > DB_VERSION {
            return Err(DbError::Version(v.version));
        }
        serde_json::from_slice(b).map_err(DbError::Json)
    }

    /// Whether nothing was ever found.
    pub fn is_empty(&self) -> bool {
        self.services.is_empty()
    }

    /// A service by key.
    pub fn service(&self, onid: u16, tsid: u16, sid: u16) -> Option<&DbService> {
        self.services.iter().find(|s| s.key() == (onid, tsid, sid))
    }

    /// The mux carrying a service.
    pub fn mux_of(&self, s: &DbService) -> Option<&DbMux> {
        self.muxes
            .iter()
            .find(|m| m.onid == Some(s.onid) && m.tsid == Some(s.tsid))
    }

    /// Every service with a known mux, by channel number.
    pub fn channels(&self) -> Vec<Channel<'_>> {
        let mut v: Vec<Channel<'_>> = self
            .services
            .iter()
            .filter_map(|s| {
                Some(Channel {
                    service: s,
                    mux: self.mux_of(s)?,
                })
            })
            .collect();
        v.sort_by_key(|c| (c.service.number, c.service.seq));
        v
    }

    /// The muxes to rescan (for the queue's `Origin::Known`), with their identity.
    pub fn known_muxes(&self) -> Vec<(Mux, Option<Identity>)> {
        self.muxes
            .iter()
            .map(|m| (m.mux.clone(), m.identity()))
            .collect()
    }

    fn lcn_for(&self, key: (u16, u16, u16)) -> Option<Lcn> {
        self.lcns
            .iter()
            .find(|e| (e.onid, e.tsid, e.sid) == key)
            .map(|e| e.lcn)
    }

    fn number_taken(&self, n: u32, except: (u16, u16, u16)) -> bool {
        self.services
            .iter()
            .any(|s| s.number == n && s.key() != except)
    }

    fn next_free_number(&self) -> u32 {
        self.services.iter().map(|s| s.number).max().unwrap_or(0) + 1
    }

    /// Apply one mux scan (§9.7 rules 2–6).
    pub fn apply(&mut self, r: &MuxResult, policy: DbPolicy) -> Applied {
        let mut out = Applied::default();
        let k = policy.max_misses.max(1);
        let found_idx = self.muxes.iter().position(|m| {
            r.onid.is_some()
                && r.tsid.is_some()
                && m.identity()
                    == Some((r.onid.unwrap_or(0), r.tsid.unwrap_or(0), r.mux.stream_id()))
        });
        let idx = found_idx.or_else(|| {
            self.muxes
                .iter()
                .position(|m| m.mux.same_transponder(&r.mux))
        });

        if r.verdict == Verdict::Failed {
            // Rule 3: mux counter only; services untouched.
            let Some(i) = idx else { return out };
            let m = &mut self.muxes[i];
            m.misses += 1;
            m.last_verdict = Some(Verdict::Failed);
            if m.misses >= k {
                let gone = self.muxes.remove(i);
                if let (Some(o), Some(t)) = (gone.onid, gone.tsid) {
                    self.services.retain(|s| {
                        let drop = s.onid == o && s.tsid == t;
                        if drop {
                            out.dropped.push(s.key());
                        }
                        !drop
                    });
                }
                out.mux_dropped = true;
            }
            return out;
        }

        let Some(tsid) = r.tsid else { return out };
        let previous_identity = idx.and_then(|i| self.muxes[i].identity());
        let onid = r
            .onid
            .or_else(|| previous_identity.map(|p| p.0))
            .unwrap_or(0);
        let nit = r.nit_actual.as_ref();
        let m = DbMux {
            mux: r.mux.clone(),
            onid: Some(onid),
            tsid: Some(tsid),
            network_id: nit.map(|n| n.network_id),
            network_name: nit.and_then(|n| n.network_name.clone()),
            misses: 0,
            last_verdict: Some(r.verdict),
        };
        match idx {
            Some(i) => {
                let old = &mut self.muxes[i];
                old.mux = m.mux;
                old.onid = m.onid;
                old.tsid = m.tsid;
                old.network_id = m.network_id.or(old.network_id);
                old.network_name = m.network_name.or(old.network_name.take());
                old.misses = 0;
                old.last_verdict = m.last_verdict;
            }
            None => self.muxes.push(m),
        }

        // LCNs of every NIT read here.
        for n in r.nit_actual.iter().chain(r.nit_other.iter()) {
            for ((o, t, s), lcn) in n.all_lcns() {
                match self
                    .lcns
                    .iter_mut()
                    .find(|e| (e.onid, e.tsid, e.sid) == (o, t, s))
                {
                    Some(e) => e.lcn = lcn,
                    None => self.lcns.push(LcnEntry {
                        onid: o,
                        tsid: t,
                        sid: s,
                        lcn,
                    }),
                }
            }
        }

        // Services of the PAT, by service_id (first-seen order: mux order, then SID).
        let mut scanned: Vec<_> = r.services.iter().collect();
        scanned.sort_by_key(|s| s.service_id);
        for sc in scanned {
            let key = (onid, tsid, sc.service_id);
            let lcn = sc.lcn.or_else(|| self.lcn_for(key));
            let pos = self.services.iter().position(|s| s.key() == key);
            let pos = match pos {
                Some(p) => p,
                None => {
                    let number = match lcn.filter(|l| l.visible) {
                        Some(l) if !self.number_taken(u32::from(l.number), key) => {
                            u32::from(l.number)
                        }
                        _ => self.next_free_number(),
                    };
                    self.services.push(DbService {
                        onid,
                        tsid,
                        sid: sc.service_id,
                        number,
                        name: None,
                        provider: None,
                        service_type: None,
                        class: ServiceClass::Other,
                        scrambled: false,
                        listed: true,
                        running_status: None,
                        pmt_pid: sc.pmt_pid,
                        pmt: None,
                        lcn,
                        misses: 0,
                        seq: self.next_seq,
                    });
                    self.next_seq += 1;
                    out.added.push(key);
                    self.services.len() - 1
                }
            };
            let s = &mut self.services[pos];
            // Rule 5: only data read in this scan.
            s.pmt_pid = sc.pmt_pid;
            if let Some(sdt) = &sc.sdt {
                if let Some(n) = &sdt.name {
                    s.name = Some(n.clone());
                }
                if let Some(p) = &sdt.provider {
                    s.provider = Some(p.clone());
                }
                s.running_status = Some(sdt.running_status);
            }
            if let Some(t) = sc.service_type() {
                s.service_type = Some(t);
            }
            if let Some(p) = &sc.pmt {
                s.pmt = Some(p.clone());
            }
            if sc.sdt.is_some() || sc.pmt.is_some() {
                s.scrambled = sc.scrambled();
            }
            let kinds = s.pmt.as_ref().map(PmtInfo::kinds).unwrap_or_default();
            s.class = classify::classify(s.service_type, &kinds);
            // Rule 2: only Found scans touch the counters.
            if r.verdict == Verdict::Found {
                s.misses = 0;
            }
        }

        if r.verdict == Verdict::Found {
            let present: Vec<u16> = r.services.iter().map(|s| s.service_id).collect();
            let mine = |s: &DbService| {
                (s.onid, s.tsid) == (onid, tsid)
                    || previous_identity.is_some_and(|p| (s.onid, s.tsid) == (p.0, p.1))
            };
            for s in self.services.iter_mut() {
                if mine(s) && !(s.key().0 == onid && s.tsid == tsid && present.contains(&s.sid)) {
                    s.misses += 1;
                }
            }
            self.services.retain(|s| {
                let drop = s.misses >= k;
                if drop {
                    out.dropped.push(s.key());
                }
                !drop
            });
        }

        self.apply_lcns(&mut out);
        out
    }

    /// Rule 6: a changed broadcast LCN is applied when its number is free.
    fn apply_lcns(&mut self, out: &mut Applied) {
        let table: BTreeMap<(u16, u16, u16), Lcn> = self
            .lcns
            .iter()
            .map(|e| ((e.onid, e.tsid, e.sid), e.lcn))
            .collect();
        for i in 0..self.services.len() {
            let key = self.services[i].key();
            let new = table.get(&key).copied();
            let old = self.services[i].lcn;
            if new == old {
                continue;
            }
            self.services[i].lcn = new;
            if let Some(l) = new.filter(|l| l.visible) {
                let n = u32::from(l.number);
                if self.services[i].number != n && !self.number_taken(n, key) {
                    out.renumbered.push((key, self.services[i].number, n));
                    self.services[i].number = n;
                }
            }
        }
        for s in self.services.iter_mut() {
            s.listed =
                !s.service_type.is_some_and(classify::is_nvod) && s.lcn.is_none_or(|l| l.visible);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scan::collector::CollectorConfig;
    use crate::scan::fixtures::{collect, collect_filtered, failed, network, FxMux, ONID};

    fn scan_all(db: &mut ChannelDb, net: &[FxMux], order: &[usize]) {
        for &i in order {
            db.apply(
                &collect(&net[i], net, CollectorConfig::default()),
                DbPolicy::default(),
            );
        }
    }

    fn numbers(db: &ChannelDb) -> Vec<(u16, u32, String)> {
        db.channels()
            .iter()
            .map(|c| (c.service.sid, c.service.number, c.name()))
            .collect()
    }

    #[test]
    fn first_scan_uses_lcns_then_first_seen_order() {
        let net = network();
        let mut db = ChannelDb::new();
        scan_all(&mut db, &net, &[0, 1, 2]);
        assert_eq!(
            numbers(&db),
            vec![
                (0x0101, 1, "Example One".into()),
                (0x0102, 2, "Example Two".into()),
                (0x0103, 3, "Example Radio".into()),
                (0x0104, 4, "Pay HD".into()),
                (0x0105, 5, "Data".into()),
                (0x0106, 6, "Hidden HD".into()),
            ]
        );
        let pay = db.service(ONID, 1, 0x0104).unwrap();
        assert!(pay.scrambled);
        assert_eq!(pay.class, ServiceClass::Tv);
        assert_eq!(
            db.service(ONID, 4, 0x0103).unwrap().class,
            ServiceClass::Radio
        );
        assert_eq!(
            db.service(ONID, 1, 0x0105).unwrap().class,
            ServiceClass::Data
        );
        assert_eq!(db.muxes.len(), 3);
        assert_eq!(db.muxes[0].network_name.as_deref(), Some("Example Net"));
    }

    #[test]
    fn rescans_in_another_order_keep_numbers_and_json_round_trips() {
        // §13 items 37, 39.
        let mut net = network();
        for m in &mut net {
            for s in &mut m.services {
                s.lcn = None;
            }
        }
        let mut db = ChannelDb::new();
        scan_all(&mut db, &net, &[1, 0, 2]);
        let first = numbers(&db);
        assert_eq!(
            first.iter().map(|x| x.0).collect::<Vec<_>>(),
            vec![0x0104, 0x0105, 0x0101, 0x0102, 0x0103, 0x0106],
            "mux order, then service_id"
        );
        scan_all(&mut db, &net, &[2, 0, 1]);
        assert_eq!(numbers(&db), first);
        let back = ChannelDb::from_bytes(&db.to_bytes()).unwrap();
        assert_eq!(back, db);
    }

    #[test]
    fn lcn_clash_first_holder_keeps_it() {
        // §13 item 38.
        let mut net = network();
        net[1].services[0].lcn = Some(1); // Pay HD also claims 1
        let mut db = ChannelDb::new();
        scan_all(&mut db, &net, &[0, 1, 2]);
        assert_eq!(db.service(ONID, 4, 0x0101).unwrap().number, 1);
        assert_eq!(
            db.service(ONID, 1, 0x0104).unwrap().number,
            4,
            "max in use + 1"
        );
        assert_eq!(
            db.service(ONID, 1, 0x0104).unwrap().lcn.map(|l| l.number),
            Some(1)
        );
    }

    #[test]
    fn service_dropped_only_at_the_kth_found_miss_and_keeps_number_when_back() {
        // §13 items 34, 35, 36.
        let net = network();
        let mut db = ChannelDb::new();
        scan_all(&mut db, &net, &[0, 1, 2]);
        let mut gone = net.clone();
        gone[0].services.retain(|s| s.sid != 0x0102);
        let key = (ONID, 4, 0x0102);
        let apply = |db: &mut ChannelDb, m: &FxMux, all: &[FxMux]| {
            db.apply(
                &collect(m, all, CollectorConfig::default()),
                DbPolicy::default(),
            )
        };
        apply(&mut db, &gone[0], &gone);
        assert_eq!(db.service(key.0, key.1, key.2).unwrap().misses, 1);
        // Partial (no SDT) and Failed scans change no counter.
        db.apply(
            &collect_filtered(&gone[0], &gone, CollectorConfig::default(), |t| t != 0x42),
            DbPolicy::default(),
        );
        db.apply(&failed(&gone[0].mux), DbPolicy::default());
        assert_eq!(db.service(key.0, key.1, key.2).unwrap().misses, 1);
        assert_eq!(db.muxes[0].misses, 1);
        // Back before K: misses 0, same number.
        apply(&mut db, &net[0], &net);
        let s = db.service(key.0, key.1, key.2).unwrap();
        assert_eq!((s.misses, s.number), (0, 2));
        assert_eq!(db.muxes[0].misses, 0);
        // Gone for K = 3 Found scans: dropped at the third, not before.
        apply(&mut db, &gone[0], &gone);
        apply(&mut db, &gone[0], &gone);
        assert!(db.service(key.0, key.1, key.2).is_some());
        let a = apply(&mut db, &gone[0], &gone);
        assert_eq!(a.dropped, vec![key]);
        assert!(db.service(key.0, key.1, key.2).is_none());
        // Its number is free again, and a newcomer without LCN takes max + 1, not 2.
        assert!(db.services.iter().all(|s| s.number != 2));
    }

    #[test]
    fn missing_sdt_keeps_names_and_mux_dropped_after_k_failures() {
        // §13 item 26 (names kept) and rule 3.
        let net = network();
        let mut db = ChannelDb::new();
        scan_all(&mut db, &net, &[0, 1, 2]);
        db.apply(
            &collect_filtered(&net[0], &net, CollectorConfig::default(), |t| t != 0x42),
            DbPolicy::default(),
        );
        assert_eq!(
            db.service(ONID, 4, 0x0101).unwrap().name.as_deref(),
            Some("Example One")
        );
        for i in 1..=3 {
            let a = db.apply(&failed(&net[2].mux), DbPolicy::default());
            assert_eq!(a.mux_dropped, i == 3);
        }
        assert!(db.service(ONID, 5, 0x0106).is_none());
        assert_eq!(db.muxes.len(), 2);
    }

    #[test]
    fn changed_lcn_is_applied_when_free() {
        let net = network();
        let mut db = ChannelDb::new();
        scan_all(&mut db, &net, &[0, 1, 2]);
        let mut moved = net.clone();
        moved[0].services[0].lcn = Some(10);
        let a = db.apply(
            &collect(&moved[0], &moved, CollectorConfig::default()),
            DbPolicy::default(),
        );
        assert_eq!(a.renumbered, vec![((ONID, 4, 0x0101), 1, 10)]);
        // A clash with a held number keeps the current one.
        moved[0].services[1].lcn = Some(3);
        let a = db.apply(
            &collect(&moved[0], &moved, CollectorConfig::default()),
            DbPolicy::default(),
        );
        assert!(a.renumbered.is_empty());
        assert_eq!(db.service(ONID, 4, 0x0102).unwrap().number, 2);
    }

    #[test]
    fn versions_and_garbage_are_refused_with_a_reason() {
        let e = ChannelDb::from_bytes(br#"{"version": 99}"#).unwrap_err();
        assert!(e.to_string().contains("version 99"), "{e}");
        let e = ChannelDb::from_bytes(b"{not json").unwrap_err();
        assert!(e.to_string().contains("channel database"), "{e}");
        let db = ChannelDb::from_bytes(br#"{"version": 1}"#).unwrap();
        assert!(db.is_empty());
    }
}
