//! Tuner allocation and sharing rules (SAT>IP digest §10.2), free of any I/O.
//!
//! A request is granted, in this order:
//! 1. a frontend already tuned to the same transponder (shared, refcounted);
//! 2. else a free frontend that supports the delivery system (the one with the fewest other
//!    capabilities first, so multi-standard tuners stay free for requests only they can serve);
//! 3. else it is refused as busy.
//!
//! A request may pin an adapter and/or frontend; then only that frontend is considered.

use std::fmt;

/// Linux DVB delivery systems (`enum fe_delivery_system` values, also used by `dvbsrc`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DelSys {
    DvbCAnnexA = 1,
    DvbCAnnexB = 2,
    DvbT = 3,
    Dss = 4,
    DvbS = 5,
    DvbS2 = 6,
    DvbH = 7,
    IsdbT = 8,
    IsdbS = 9,
    IsdbC = 10,
    Atsc = 11,
    AtscMh = 12,
    Dtmb = 13,
    Cmmb = 14,
    Dab = 15,
    DvbT2 = 16,
    Turbo = 17,
    DvbCAnnexC = 18,
}

impl DelSys {
    pub const ALL: [DelSys; 18] = [
        DelSys::DvbCAnnexA,
        DelSys::DvbCAnnexB,
        DelSys::DvbT,
        DelSys::Dss,
        DelSys::DvbS,
        DelSys::DvbS2,
        DelSys::DvbH,
        DelSys::IsdbT,
        DelSys::IsdbS,
        DelSys::IsdbC,
        DelSys::Atsc,
        DelSys::AtscMh,
        DelSys::Dtmb,
        DelSys::Cmmb,
        DelSys::Dab,
        DelSys::DvbT2,
        DelSys::Turbo,
        DelSys::DvbCAnnexC,
    ];

    pub fn from_u32(v: u32) -> Option<DelSys> {
        DelSys::ALL.iter().copied().find(|d| *d as u32 == v)
    }

    /// The nick `dvbsrc` uses (`dvb-t`, `dvb-s2`, `dvb-c-a`, …).
    pub fn nick(self) -> &'static str {
        match self {
            DelSys::DvbCAnnexA => "dvb-c-a",
            DelSys::DvbCAnnexB => "dvb-c-b",
            DelSys::DvbT => "dvb-t",
            DelSys::Dss => "dss",
            DelSys::DvbS => "dvb-s",
            DelSys::DvbS2 => "dvb-s2",
            DelSys::DvbH => "dvb-h",
            DelSys::IsdbT => "isdb-t",
            DelSys::IsdbS => "isdb-s",
            DelSys::IsdbC => "isdb-c",
            DelSys::Atsc => "atsc",
            DelSys::AtscMh => "atsc-mh",
            DelSys::Dtmb => "dtmb",
            DelSys::Cmmb => "cmmb",
            DelSys::Dab => "dab",
            DelSys::DvbT2 => "dvb-t2",
            DelSys::Turbo => "turbo",
            DelSys::DvbCAnnexC => "dvb-c-c",
        }
    }

    /// Parses a nick; also accepts `dvb-c` for annex A.
    pub fn from_nick(s: &str) -> Option<DelSys> {
        let s = s.trim().to_ascii_lowercase();
        if s == "dvb-c" || s == "dvbc" {
            return Some(DelSys::DvbCAnnexA);
        }
        DelSys::ALL
            .iter()
            .copied()
            .find(|d| d.nick() == s || d.nick().replace('-', "") == s)
    }

    /// Satellite systems measure frequency in kHz in `dvbsrc`; all others in Hz.
    pub fn is_satellite(self) -> bool {
        matches!(
            self,
            DelSys::DvbS | DelSys::DvbS2 | DelSys::IsdbS | DelSys::Dss | DelSys::Turbo
        )
    }

    pub fn is_cable(self) -> bool {
        matches!(
            self,
            DelSys::DvbCAnnexA | DelSys::DvbCAnnexB | DelSys::DvbCAnnexC | DelSys::IsdbC
        )
    }

    pub fn is_terrestrial(self) -> bool {
        !self.is_satellite() && !self.is_cable()
    }
}

impl fmt::Display for DelSys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.nick())
    }
}

/// A group of `satip:X_SATIPCAP` (SAT>IP digest §8.7), in list order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum CapGroup {
    DvbS2,
    DvbT,
    DvbT2,
    DvbC,
    DvbC2,
}

impl CapGroup {
    /// Every group, in X_SATIPCAP order.
    pub const ALL: [CapGroup; 5] = [
        CapGroup::DvbS2,
        CapGroup::DvbT,
        CapGroup::DvbT2,
        CapGroup::DvbC,
        CapGroup::DvbC2,
    ];

    /// The name in X_SATIPCAP (`DVBS2`, `DVBT`, …).
    pub fn name(self) -> &'static str {
        match self {
            CapGroup::DvbS2 => "DVBS2",
            CapGroup::DvbT => "DVBT",
            CapGroup::DvbT2 => "DVBT2",
            CapGroup::DvbC => "DVBC",
            CapGroup::DvbC2 => "DVBC2",
        }
    }

    /// Whether a stream of `d` is of this group's family.
    pub fn covers(self, d: DelSys) -> bool {
        match self {
            CapGroup::DvbS2 => matches!(d, DelSys::DvbS | DelSys::DvbS2),
            CapGroup::DvbT | CapGroup::DvbT2 => matches!(d, DelSys::DvbT | DelSys::DvbT2),
            CapGroup::DvbC | CapGroup::DvbC2 => {
                matches!(d, DelSys::DvbCAnnexA | DelSys::DvbCAnnexC)
            }
        }
    }

    /// The groups a frontend that tunes `delsys` is listed in ([MS] rules, §8.7): DVBS2 for
    /// DVB-S/S2; DVBT2 for a T2-capable tuner, else DVBT; DVBC for DVB-C annex A/C (Linux
    /// has no DVB-C2). A combo tuner (say DVB-S2 + T2) is in each of its groups.
    pub fn of_frontend(delsys: &[DelSys]) -> Vec<CapGroup> {
        let has = |d: DelSys| delsys.contains(&d);
        let mut g = Vec::new();
        if has(DelSys::DvbS) || has(DelSys::DvbS2) {
            g.push(CapGroup::DvbS2);
        }
        if has(DelSys::DvbT2) {
            g.push(CapGroup::DvbT2);
        } else if has(DelSys::DvbT) {
            g.push(CapGroup::DvbT);
        }
        if has(DelSys::DvbCAnnexA) || has(DelSys::DvbCAnnexC) {
            g.push(CapGroup::DvbC);
        }
        g
    }
}

/// One SAT>IP frontend number: `fe=n` is entry `n - 1` of [`satip_numbering`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SatipFe {
    /// The X_SATIPCAP group it is counted in; `None` for a frontend of no group (ATSC,
    /// ISDB, …), numbered after all listed ones.
    pub group: Option<CapGroup>,
    /// Index of the frontend in the pool.
    pub index: usize,
}

/// SAT>IP frontend numbering (digest §8.7): clients that pin `fe=` number frontends
/// consecutively in X_SATIPCAP order, so `fe=1..` are the DVBS2 group's frontends, then
/// DVBT's, DVBT2's, DVBC's, each in pool order; frontends of no group follow. A frontend in
/// two groups gets two numbers that alias the same device (its second user while it is tuned
/// elsewhere gets 503). `delsys[i]` is what pool frontend `i` tunes.
pub fn satip_numbering<'a>(delsys: impl IntoIterator<Item = &'a [DelSys]>) -> Vec<SatipFe> {
    let groups: Vec<Vec<CapGroup>> = delsys.into_iter().map(CapGroup::of_frontend).collect();
    let mut out = Vec::new();
    for g in CapGroup::ALL {
        for (index, _) in groups.iter().enumerate().filter(|(_, gs)| gs.contains(&g)) {
            out.push(SatipFe {
                group: Some(g),
                index,
            });
        }
    }
    for (index, _) in groups.iter().enumerate().filter(|(_, gs)| gs.is_empty()) {
        out.push(SatipFe { group: None, index });
    }
    out
}

/// The `fe` number (1-based) to report for pool frontend `index` serving a stream of `delsys`:
/// `pinned` when that number names this frontend, else the first number of the frontend
/// whose group covers `delsys`, else its first number; 0 when it has none.
pub fn satip_fe_number(
    numbering: &[SatipFe],
    index: usize,
    delsys: Option<DelSys>,
    pinned: Option<u16>,
) -> u32 {
    if let Some(p) = pinned {
        if numbering
            .get(usize::from(p).wrapping_sub(1))
            .is_some_and(|f| f.index == index)
        {
            return u32::from(p);
        }
    }
    let pos = |f: &dyn Fn(&SatipFe) -> bool| {
        numbering
            .iter()
            .position(|x| x.index == index && f(x))
            .map(|p| p as u32 + 1)
    };
    delsys
        .and_then(|d| pos(&|x: &SatipFe| x.group.is_some_and(|g| g.covers(d))))
        .or_else(|| pos(&|_: &SatipFe| true))
        .unwrap_or(0)
}

/// Satellite polarisation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Polarisation {
    Horizontal,
    Vertical,
    CircularLeft,
    CircularRight,
}

impl Polarisation {
    /// Parses `dvbsrc`'s polarity letters (`h`, `v`, `l`, `r`, either case).
    pub fn parse(s: &str) -> Option<Polarisation> {
        match s.trim().to_ascii_lowercase().as_str() {
            "h" | "horizontal" => Some(Polarisation::Horizontal),
            "v" | "vertical" => Some(Polarisation::Vertical),
            "l" | "left" => Some(Polarisation::CircularLeft),
            "r" | "right" => Some(Polarisation::CircularRight),
            _ => None,
        }
    }

    pub fn letter(self) -> char {
        match self {
            Polarisation::Horizontal => 'h',
            Polarisation::Vertical => 'v',
            Polarisation::CircularLeft => 'l',
            Polarisation::CircularRight => 'r',
        }
    }
}

/// What identifies a transponder: requests that compare `same_transponder` share a frontend.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Transponder {
    pub delsys: DelSys,
    /// Always kHz here (dvbsrc's Hz for terrestrial/cable are divided by 1000).
    pub frequency_khz: u64,
    pub polarisation: Option<Polarisation>,
    /// kSym/s for satellite and cable; 0 when not applicable.
    pub symbol_rate_ksym: u32,
    /// Hz for terrestrial; 0 when not applicable or automatic.
    pub bandwidth_hz: u32,
    /// PLP (DVB-T2) or input stream id (DVB-S2); -1 when none.
    pub stream_id: i32,
}

impl Transponder {
    /// Tolerance for "the same frequency": 1 MHz (SAT>IP digest §10.2).
    pub const FREQ_TOLERANCE_KHZ: u64 = 1000;

    pub fn same_transponder(&self, other: &Transponder) -> bool {
        self.family() == other.family()
            && self.frequency_khz.abs_diff(other.frequency_khz) <= Self::FREQ_TOLERANCE_KHZ
            && self.polarisation == other.polarisation
            && sym_match(self.symbol_rate_ksym, other.symbol_rate_ksym)
            && (self.bandwidth_hz == other.bandwidth_hz
                || self.bandwidth_hz == 0
                || other.bandwidth_hz == 0)
            && stream_match(self.stream_id, other.stream_id)
    }

    /// DVB-T and DVB-T2 (and S/S2) signals are different transponders even at one frequency,
    /// but a DVB-S request may be served by an S2 tuning of the same transponder.
    fn family(&self) -> u32 {
        match self.delsys {
            DelSys::DvbS | DelSys::DvbS2 => 1,
            d => 100 + d as u32,
        }
    }
}

fn sym_match(a: u32, b: u32) -> bool {
    a == 0 || b == 0 || a.abs_diff(b) * 100 <= a.max(b)
}

fn stream_match(a: i32, b: i32) -> bool {
    a == b || (a <= 0 && b <= 0)
}

impl fmt::Display for Transponder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} kHz", self.delsys, self.frequency_khz)?;
        if let Some(p) = self.polarisation {
            write!(f, " pol {}", p.letter())?;
        }
        if self.symbol_rate_ksym != 0 {
            write!(f, " {} kSym/s", self.symbol_rate_ksym)?;
        }
        if self.bandwidth_hz != 0 {
            write!(f, " bw {} Hz", self.bandwidth_hz)?;
        }
        if self.stream_id >= 0 {
            write!(f, " stream-id {}", self.stream_id)?;
        }
        Ok(())
    }
}

/// A frontend of the pool as the rules see it.
#[derive(Debug, Clone)]
pub struct Slot {
    pub adapter: u32,
    pub frontend: u32,
    pub delsys: Vec<DelSys>,
    pub tuned: Option<Transponder>,
    pub users: usize,
    /// A tuner lent by another SAT>IP server: used only when no local frontend can serve.
    pub remote: bool,
}

/// A tuning request.
#[derive(Debug, Clone)]
pub struct Request {
    pub transponder: Transponder,
    pub adapter: Option<u32>,
    pub frontend: Option<u32>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Grant {
    /// Joined frontend `index`, already tuned to the transponder.
    Shared(usize),
    /// Frontend `index` was idle and must now be tuned.
    Fresh(usize),
}

impl Grant {
    pub fn index(self) -> usize {
        match self {
            Grant::Shared(i) | Grant::Fresh(i) => i,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PoolError {
    /// Every frontend able to serve the request is tuned elsewhere.
    Busy,
    /// No frontend of the pool supports the delivery system at all.
    Unsupported(DelSys),
    /// The pinned adapter/frontend does not exist.
    NoSuchFrontend {
        adapter: Option<u32>,
        frontend: Option<u32>,
    },
}

impl fmt::Display for PoolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PoolError::Busy => write!(f, "all frontends able to serve it are busy"),
            PoolError::Unsupported(d) => write!(f, "no frontend supports {d}"),
            PoolError::NoSuchFrontend { adapter, frontend } => write!(
                f,
                "no frontend matches adapter {} frontend {}",
                adapter.map_or("any".into(), |a| a.to_string()),
                frontend.map_or("any".into(), |a| a.to_string())
            ),
        }
    }
}

impl std::error::Error for PoolError {}

/// The allocation state of all frontends.
#[derive(Debug, Clone, Default)]
pub struct Pool {
    pub slots: Vec<Slot>,
}

impl Pool {
    pub fn new(slots: Vec<Slot>) -> Self {
        Self { slots }
    }

    fn pinned(&self, i: usize, req: &Request) -> bool {
        let s = &self.slots[i];
        req.adapter.is_none_or(|a| a == s.adapter) && req.frontend.is_none_or(|f| f == s.frontend)
    }

    /// Decides which frontend serves `req` and records it.
    pub fn acquire(&mut self, req: &Request) -> Result<Grant, PoolError> {
        let candidates: Vec<usize> = (0..self.slots.len())
            .filter(|&i| self.pinned(i, req))
            .collect();
        if candidates.is_empty() {
            return Err(PoolError::NoSuchFrontend {
                adapter: req.adapter,
                frontend: req.frontend,
            });
        }
        let delsys = req.transponder.delsys;
        if !candidates
            .iter()
            .any(|&i| self.slots[i].delsys.contains(&delsys))
        {
            return Err(PoolError::Unsupported(delsys));
        }
        // Local frontends first (one on the transponder, else a free one), then remote ones
        // the same way.
        for remote in [false, true] {
            if let Some(&i) = candidates.iter().find(|&&i| {
                let s = &self.slots[i];
                s.remote == remote
                    && s.users > 0
                    && s.delsys.contains(&delsys)
                    && s.tuned
                        .as_ref()
                        .is_some_and(|t| t.same_transponder(&req.transponder))
            }) {
                self.slots[i].users += 1;
                return Ok(Grant::Shared(i));
            }
            let free = candidates
                .iter()
                .copied()
                .filter(|&i| {
                    let s = &self.slots[i];
                    s.remote == remote && s.users == 0 && s.delsys.contains(&delsys)
                })
                .min_by_key(|&i| (self.slots[i].delsys.len(), i));
            if let Some(i) = free {
                let s = &mut self.slots[i];
                s.users = 1;
                s.tuned = Some(req.transponder.clone());
                return Ok(Grant::Fresh(i));
            }
        }
        Err(PoolError::Busy)
    }

    /// Gives back one use of frontend `index`. Returns true when it became idle.
    pub fn release(&mut self, index: usize) -> bool {
        let Some(s) = self.slots.get_mut(index) else {
            return false;
        };
        if s.users == 0 {
            return false;
        }
        s.users -= 1;
        if s.users == 0 {
            s.tuned = None;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn satip_numbering_follows_x_satipcap_order() {
        use DelSys::*;
        // The default configuration: two DVB-T/T2, one DVB-C, one DVB-S/S2.
        let pool: Vec<Vec<DelSys>> = vec![
            vec![DvbT, DvbT2],
            vec![DvbT, DvbT2],
            vec![DvbCAnnexA],
            vec![DvbS, DvbS2],
        ];
        let n = satip_numbering(pool.iter().map(Vec::as_slice));
        let idx: Vec<(Option<CapGroup>, usize)> = n.iter().map(|f| (f.group, f.index)).collect();
        assert_eq!(
            idx,
            vec![
                (Some(CapGroup::DvbS2), 3),
                (Some(CapGroup::DvbT2), 0),
                (Some(CapGroup::DvbT2), 1),
                (Some(CapGroup::DvbC), 2),
            ]
        );
        assert_eq!(satip_fe_number(&n, 3, Some(DvbS2), None), 1);
        assert_eq!(satip_fe_number(&n, 1, Some(DvbT), None), 3);
        assert_eq!(satip_fe_number(&n, 2, Some(DvbCAnnexA), Some(4)), 4);
        assert_eq!(satip_fe_number(&n, 9, None, None), 0);

        // A T-only tuner is DVBT, listed before DVBT2; a DVB-S2 + T2 combo is in both groups
        // (two aliasing numbers); an ATSC tuner has no group and comes last.
        let pool: Vec<Vec<DelSys>> = vec![
            vec![Atsc],
            vec![DvbT2, DvbS2, DvbT],
            vec![DvbT],
            vec![DvbS2],
        ];
        let n = satip_numbering(pool.iter().map(Vec::as_slice));
        let idx: Vec<(Option<CapGroup>, usize)> = n.iter().map(|f| (f.group, f.index)).collect();
        assert_eq!(
            idx,
            vec![
                (Some(CapGroup::DvbS2), 1),
                (Some(CapGroup::DvbS2), 3),
                (Some(CapGroup::DvbT), 2),
                (Some(CapGroup::DvbT2), 1),
                (None, 0),
            ]
        );
        // The combo serving DVB-T2 reports its DVBT2 number, serving DVB-S2 its DVBS2 one;
        // a client that pinned either alias gets that alias back.
        assert_eq!(satip_fe_number(&n, 1, Some(DvbT2), None), 4);
        assert_eq!(satip_fe_number(&n, 1, Some(DvbS2), None), 1);
        assert_eq!(satip_fe_number(&n, 1, Some(DvbT2), Some(1)), 1);
        // A pinned number of another frontend is not echoed.
        assert_eq!(satip_fe_number(&n, 1, Some(DvbT2), Some(2)), 4);
        assert_eq!(satip_fe_number(&n, 0, Some(Atsc), None), 5);
        assert!(satip_numbering(std::iter::empty()).is_empty());
    }

    fn t(delsys: DelSys, khz: u64) -> Transponder {
        Transponder {
            delsys,
            frequency_khz: khz,
            polarisation: None,
            symbol_rate_ksym: 0,
            bandwidth_hz: 8_000_000,
            stream_id: -1,
        }
    }

    fn req(tp: Transponder) -> Request {
        Request {
            transponder: tp,
            adapter: None,
            frontend: None,
        }
    }

    fn pool() -> Pool {
        let slot = |a, d: &[DelSys]| Slot {
            adapter: a,
            frontend: 0,
            delsys: d.to_vec(),
            tuned: None,
            users: 0,
            remote: false,
        };
        Pool::new(vec![
            slot(0, &[DelSys::DvbT, DelSys::DvbT2]),
            slot(1, &[DelSys::DvbT, DelSys::DvbT2]),
            slot(2, &[DelSys::DvbCAnnexA]),
            slot(3, &[DelSys::DvbS, DelSys::DvbS2]),
        ])
    }

    #[test]
    fn local_frontends_come_before_remote_ones() {
        let slot = |a, d: &[DelSys], remote| Slot {
            adapter: a,
            frontend: 0,
            delsys: d.to_vec(),
            tuned: None,
            users: 0,
            remote,
        };
        // The remote one is listed first and tunes fewer systems: still the local one wins.
        let mut p = Pool::new(vec![
            slot(0, &[DelSys::DvbT], true),
            slot(1, &[DelSys::DvbT, DelSys::DvbT2], false),
            slot(2, &[DelSys::DvbT], true),
        ]);
        assert_eq!(
            p.acquire(&req(t(DelSys::DvbT, 506_000))),
            Ok(Grant::Fresh(1))
        );
        // The local one busy elsewhere: a remote one serves.
        assert_eq!(
            p.acquire(&req(t(DelSys::DvbT, 522_000))),
            Ok(Grant::Fresh(0))
        );
        // A remote one on the transponder is shared before another remote one is tuned.
        assert_eq!(
            p.acquire(&req(t(DelSys::DvbT, 522_000))),
            Ok(Grant::Shared(0))
        );
        // Once the local one is free it serves a new transponder again.
        assert!(p.release(1));
        assert_eq!(
            p.acquire(&req(t(DelSys::DvbT, 546_000))),
            Ok(Grant::Fresh(1))
        );
        assert_eq!(
            p.acquire(&req(t(DelSys::DvbT, 570_000))),
            Ok(Grant::Fresh(2))
        );
        assert_eq!(
            p.acquire(&req(t(DelSys::DvbT, 594_000))),
            Err(PoolError::Busy)
        );
    }

    #[test]
    fn same_transponder_shares_a_frontend() {
        let mut p = pool();
        assert_eq!(
            p.acquire(&req(t(DelSys::DvbT, 506_000))),
            Ok(Grant::Fresh(0))
        );
        // Within 1 MHz is the same transponder.
        assert_eq!(
            p.acquire(&req(t(DelSys::DvbT, 506_500))),
            Ok(Grant::Shared(0))
        );
        assert_eq!(p.slots[0].users, 2);
        assert!(!p.release(0));
        assert!(p.release(0));
        assert!(p.slots[0].tuned.is_none());
    }

    #[test]
    fn other_transponder_takes_a_free_frontend_then_busy() {
        let mut p = pool();
        assert_eq!(
            p.acquire(&req(t(DelSys::DvbT, 506_000))),
            Ok(Grant::Fresh(0))
        );
        assert_eq!(
            p.acquire(&req(t(DelSys::DvbT2, 474_000))),
            Ok(Grant::Fresh(1))
        );
        assert_eq!(
            p.acquire(&req(t(DelSys::DvbT, 522_000))),
            Err(PoolError::Busy)
        );
        // DVB-T and DVB-T2 at one frequency are different signals.
        assert_eq!(
            p.acquire(&req(t(DelSys::DvbT2, 506_000))),
            Err(PoolError::Busy)
        );
        p.release(0);
        assert_eq!(
            p.acquire(&req(t(DelSys::DvbT, 522_000))),
            Ok(Grant::Fresh(0))
        );
    }

    #[test]
    fn unsupported_and_pinning() {
        let mut p = pool();
        assert_eq!(
            p.acquire(&req(t(DelSys::Atsc, 600_000))),
            Err(PoolError::Unsupported(DelSys::Atsc))
        );
        let mut r = req(t(DelSys::DvbT, 506_000));
        r.adapter = Some(1);
        assert_eq!(p.acquire(&r), Ok(Grant::Fresh(1)));
        r.adapter = Some(9);
        assert!(matches!(
            p.acquire(&r),
            Err(PoolError::NoSuchFrontend { .. })
        ));
        // Pinned to a frontend that does not support the system.
        r.adapter = Some(2);
        assert_eq!(p.acquire(&r), Err(PoolError::Unsupported(DelSys::DvbT)));
    }

    #[test]
    fn prefers_the_least_capable_free_frontend() {
        let mut p = pool();
        p.slots[0].delsys.push(DelSys::DvbCAnnexA);
        let mut c = t(DelSys::DvbCAnnexA, 346_000);
        c.symbol_rate_ksym = 6900;
        c.bandwidth_hz = 0;
        assert_eq!(p.acquire(&req(c.clone())), Ok(Grant::Fresh(2)));
        // The multi-standard frontend 0 still serves a second cable transponder.
        c.frequency_khz = 354_000;
        assert_eq!(p.acquire(&req(c)), Ok(Grant::Fresh(0)));
    }

    #[test]
    fn satellite_needs_same_polarisation_and_symbol_rate() {
        let mut a = t(DelSys::DvbS2, 11_494_000);
        a.polarisation = Some(Polarisation::Horizontal);
        a.symbol_rate_ksym = 22_000;
        a.bandwidth_hz = 0;
        let mut b = a.clone();
        assert!(a.same_transponder(&b));
        b.polarisation = Some(Polarisation::Vertical);
        assert!(!a.same_transponder(&b));
        b.polarisation = a.polarisation;
        b.symbol_rate_ksym = 27_500;
        assert!(!a.same_transponder(&b));
        b.symbol_rate_ksym = 22_000;
        b.delsys = DelSys::DvbS;
        assert!(a.same_transponder(&b));
    }

    #[test]
    fn nicks_round_trip() {
        for d in DelSys::ALL {
            assert_eq!(DelSys::from_nick(d.nick()), Some(d));
            assert_eq!(DelSys::from_u32(d as u32), Some(d));
        }
        assert_eq!(DelSys::from_nick("DVB-C"), Some(DelSys::DvbCAnnexA));
        assert_eq!(Polarisation::parse("H"), Some(Polarisation::Horizontal));
        assert_eq!(Polarisation::parse("x"), None);
    }
}
