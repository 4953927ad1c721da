//! A resolved tuning ([`Tuning`]) with its defaults and capability checks, and the key that
//! says whether two requests need the same transponder ([`TuningKey`]).

use super::*;

/// LNB band of a universal Ku-band LNB (dvbsrc defaults: LOF1 9750 MHz, LOF2 10600 MHz,
/// switch at 11700 MHz).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum LnbBand {
    /// 22 kHz tone off.
    Low,
    /// 22 kHz tone on.
    High,
}

/// Universal LNB switch frequency (kHz), dvbsrc `lnb-slof` default.
pub const LNB_SLOF_KHZ: u32 = 11_700_000;

/// A fully resolved tuning, in dvbsrc units.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Tuning {
    /// Signal source 1..255 (DiSEqC: 1 = A … 4 = D); default 1.
    pub src: u8,
    /// Pinned frontend (1-based), if the client asked for one.
    pub fe: Option<u16>,
    pub delivery_system: DeliverySystem,
    /// dvbsrc `frequency`: kHz for satellite (transponder or IF), Hz for terrestrial and cable.
    pub frequency: u32,
    /// Satellite only.
    pub polarisation: Option<Polarisation>,
    /// DVB-S2 only; `None` = auto.
    pub roll_off: Option<RollOff>,
    /// `None` = auto.
    pub modulation: Option<Modulation>,
    /// DVB-S2 only; `None` = auto.
    pub pilots: Option<Pilots>,
    /// kSym/s (dvbsrc `symbol-rate` is in kBd); satellite and DVB-C.
    pub symbol_rate: Option<u32>,
    /// `None` = auto.
    pub code_rate: Option<CodeRate>,
    /// dvbsrc `bandwidth-hz`; `None` = auto.
    pub bandwidth_hz: Option<u32>,
    pub transmission_mode: Option<TransmissionMode>,
    pub guard_interval: Option<GuardInterval>,
    /// DVB-T2 / DVB-C2 PLP id.
    pub plp: Option<u8>,
    pub t2_system_id: Option<u16>,
    pub siso_miso: Option<SisoMiso>,
    /// DVB-C2 `c2tft` (0..2).
    pub c2_tuning_type: Option<u8>,
    /// DVB-C2 data slice.
    pub data_slice: Option<u8>,
    /// DVB-C spectral inversion; `None` = auto.
    pub spectral_inversion: Option<bool>,
    /// DVB-S2 input stream id (`isi`, or `plp` as alias).
    pub input_stream_id: Option<u8>,
    pub pls_mode: Option<PlsMode>,
    pub pls_code: Option<u32>,
}

impl Tuning {
    /// A tuning with every optional parameter automatic: `frequency` in dvbsrc units (Hz for
    /// terrestrial and cable, kHz for satellite), `src` 1, no pinned frontend.
    pub fn blank(delivery_system: DeliverySystem, frequency: u32) -> Tuning {
        Tuning {
            src: 1,
            fe: None,
            delivery_system,
            frequency,
            polarisation: None,
            roll_off: None,
            modulation: None,
            pilots: None,
            symbol_rate: None,
            code_rate: None,
            bandwidth_hz: None,
            transmission_mode: None,
            guard_interval: None,
            plp: None,
            t2_system_id: None,
            siso_miso: None,
            c2_tuning_type: None,
            data_slice: None,
            spectral_inversion: None,
            input_stream_id: None,
            pls_mode: None,
            pls_code: None,
        }
    }

    pub fn family(&self) -> Family {
        self.delivery_system.family()
    }

    /// The frequency in kHz whatever the family.
    pub fn freq_khz(&self) -> u32 {
        match self.family() {
            Family::Satellite => self.frequency,
            _ => self.frequency / 1000,
        }
    }

    /// dvbsrc `stream-id`: DVB-T2/C2 PLP or DVB-S2 ISI.
    pub fn stream_id(&self) -> Option<u8> {
        self.input_stream_id.or(self.plp)
    }

    /// Band of a universal LNB for Ku-band transponder frequencies; `None` for IF frequencies
    /// (< 2200 MHz), C-band, and non-satellite tunings.
    pub fn lnb_band(&self) -> Option<LnbBand> {
        if self.family() != Family::Satellite || self.frequency < 10_000_000 {
            return None;
        }
        Some(if self.frequency < LNB_SLOF_KHZ {
            LnbBand::Low
        } else {
            LnbBand::High
        })
    }

    /// The sharing key of §10.2.
    pub fn key(&self) -> TuningKey {
        let khz = self.freq_khz();
        let family = self.family();
        TuningKey {
            src: self.src,
            freq_mhz: (khz.saturating_add(500)) / 1000,
            pol: self.polarisation,
            family,
            symbol_rate: self.symbol_rate,
            modulation: self.modulation,
            stream_id: self.stream_id(),
            band: self.lnb_band(),
        }
    }

    /// Back to query parameters (used when a later query modifies this tuning).
    pub fn to_params(&self) -> TuningParams {
        TuningParams {
            src: Some(self.src),
            fe: self.fe,
            freq_khz: Some(self.freq_khz()),
            pol: self.polarisation,
            ro: self.roll_off.map(Choice::Fixed),
            msys: Some(self.delivery_system),
            mtype: Some(self.modulation.map_or(Choice::Auto, Choice::Fixed)),
            plts: self.pilots.map(Choice::Fixed),
            sr: self.symbol_rate,
            fec: self.code_rate.map(Choice::Fixed),
            bw_khz: self.bandwidth_hz.map(|b| Choice::Fixed(b / 1000)),
            tmode: self.transmission_mode.map(Choice::Fixed),
            gi: self.guard_interval.map(Choice::Fixed),
            plp: if self.family() == Family::Satellite {
                None
            } else {
                self.plp
            },
            t2id: self.t2_system_id,
            sm: self.siso_miso,
            c2tft: self.c2_tuning_type,
            ds: self.data_slice,
            specinv: self.spectral_inversion,
            isi: self.input_stream_id,
            plsm: self.pls_mode,
            plsc: self.pls_code,
        }
    }

    /// Canonical query: attributes in [`Attr`] order, auto values omitted, frequencies in the
    /// shortest exact decimal form, `pids` last when given. Parsing it yields the same tuning.
    pub fn canonical_query(&self, pids: Option<&PidSet>) -> String {
        let mut parts: Vec<String> = Vec::new();
        let mut push = |a: Attr, v: String| parts.push(format!("{}={v}", a.name()));
        push(Attr::Src, self.src.to_string());
        if let Some(fe) = self.fe {
            push(Attr::Fe, fe.to_string());
        }
        push(Attr::Freq, fmt_milli_min(self.freq_khz()));
        if let Some(p) = self.polarisation {
            push(Attr::Pol, p.query_name().to_owned());
        }
        if let Some(r) = self.roll_off {
            push(Attr::Ro, r.query_name().to_owned());
        }
        push(Attr::Msys, self.delivery_system.query_name().to_owned());
        match self.modulation {
            Some(m) => push(Attr::Mtype, m.query_name().to_owned()),
            // Keep an explicit auto where the default would not be auto.
            None if matches!(
                self.delivery_system,
                DeliverySystem::DvbS | DeliverySystem::DvbS2 | DeliverySystem::Dss
            ) =>
            {
                push(Attr::Mtype, "auto".to_owned())
            }
            None => {}
        }
        if let Some(p) = self.pilots {
            push(Attr::Plts, p.query_name().to_owned());
        }
        if let Some(sr) = self.symbol_rate {
            push(Attr::Sr, sr.to_string());
        }
        if let Some(c) = self.code_rate {
            push(Attr::Fec, c.query_name());
        }
        if let Some(bw) = self.bandwidth_hz {
            push(Attr::Bw, fmt_milli_min(bw / 1000));
        }
        if let Some(t) = self.transmission_mode {
            push(Attr::Tmode, t.query_name().to_owned());
        }
        if let Some(g) = self.guard_interval {
            push(Attr::Gi, g.query_name().to_owned());
        }
        if let Some(p) = self.plp {
            push(Attr::Plp, p.to_string());
        }
        if let Some(t) = self.t2_system_id {
            push(Attr::T2id, t.to_string());
        }
        if let Some(s) = self.siso_miso {
            push(Attr::Sm, s.query_name().to_owned());
        }
        if let Some(c) = self.c2_tuning_type {
            push(Attr::C2tft, c.to_string());
        }
        if let Some(d) = self.data_slice {
            push(Attr::Ds, d.to_string());
        }
        if let Some(s) = self.spectral_inversion {
            push(Attr::Specinv, if s { "1" } else { "0" }.to_owned());
        }
        if let Some(i) = self.input_stream_id {
            push(Attr::Isi, i.to_string());
        }
        if let Some(m) = self.pls_mode {
            push(Attr::Plsm, m.query_name().to_owned());
        }
        if let Some(c) = self.pls_code {
            push(Attr::Plsc, c.to_string());
        }
        if let Some(p) = pids {
            push(Attr::Pids, p.to_string());
        }
        parts.join("&")
    }

    /// Check the request against the server: `msys` needs a frontend type (403 `msys`,
    /// checklist 9), a pinned `fe` must exist (403 `fe`, checklist 50), and a satellite `src`
    /// must be one of the configured sources (403 `src`).
    pub fn check_capabilities(&self, caps: &Capabilities) -> Result<(), QueryError> {
        let mut bad = Vec::new();
        if !caps.systems.contains(&self.delivery_system) {
            bad.push(Violation {
                attr: Attr::Msys,
                reason: Reason::Unsupported,
            });
        }
        if let Some(fe) = self.fe {
            if fe > caps.frontends {
                bad.push(Violation {
                    attr: Attr::Fe,
                    reason: Reason::OutOfRange,
                });
            }
        }
        if self.family() == Family::Satellite && self.src > caps.satellite_sources {
            bad.push(Violation {
                attr: Attr::Src,
                reason: Reason::OutOfRange,
            });
        }
        if bad.is_empty() {
            Ok(())
        } else {
            Err(QueryError::out_of_range(bad))
        }
    }
}

/// What the server can tune, for [`Tuning::check_capabilities`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Capabilities {
    /// Delivery systems at least one frontend supports.
    pub systems: Vec<DeliverySystem>,
    /// Number of frontends (valid `fe` values are 1..=frontends).
    pub frontends: u16,
    /// Number of satellite sources (valid `src` values are 1..=satellite_sources).
    pub satellite_sources: u8,
}

/// Tuner-sharing key (§10.2): two tunings with equal keys can share one frontend.
///
/// The frequency is rounded to whole MHz, so equality means "within ~1 MHz" except across a
/// rounding boundary; [`TuningKey::same_transponder`] tolerates ±1 MHz.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TuningKey {
    pub src: u8,
    pub freq_mhz: u32,
    pub pol: Option<Polarisation>,
    pub family: Family,
    /// kSym/s.
    pub symbol_rate: Option<u32>,
    pub modulation: Option<Modulation>,
    /// PLP or ISI.
    pub stream_id: Option<u8>,
    pub band: Option<LnbBand>,
}

impl TuningKey {
    /// Equal except for a frequency difference of at most 1 MHz.
    pub fn same_transponder(&self, other: &TuningKey) -> bool {
        self.freq_mhz.abs_diff(other.freq_mhz) <= 1
            && TuningKey {
                freq_mhz: 0,
                ..*self
            } == TuningKey {
                freq_mhz: 0,
                ..*other
            }
    }
}

/// Stable text form, usable as an RTSP media factory key.
impl fmt::Display for TuningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let fam = match self.family {
            Family::Satellite => "sat",
            Family::Terrestrial => "ter",
            Family::Cable => "cab",
        };
        write!(f, "{fam}:src={}:freq={}", self.src, self.freq_mhz)?;
        if let Some(p) = self.pol {
            write!(f, ":pol={}", p.query_name())?;
        }
        if let Some(sr) = self.symbol_rate {
            write!(f, ":sr={sr}")?;
        }
        if let Some(m) = self.modulation {
            write!(f, ":mtype={}", m.query_name())?;
        }
        if let Some(s) = self.stream_id {
            write!(f, ":sid={s}")?;
        }
        match self.band {
            Some(LnbBand::Low) => f.write_str(":band=low"),
            Some(LnbBand::High) => f.write_str(":band=high"),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::satip::test_util::*;

    #[test]
    fn tuning_key_equality() {
        use std::collections::HashSet;
        let a = spec(SAT_Q).key();
        let b = spec("freq=11494.2&src=1&pol=h&msys=dvbs2&sr=22000&fec=34&pids=1").key();
        assert_eq!(
            a, b,
            "fec and pids are not part of the key; 200 kHz off is the same transponder"
        );
        let c = spec("freq=11494.2&src=1&pol=h&msys=dvbs&sr=22000&mtype=qpsk").key();
        assert_ne!(a, c, "different mtype");
        let d = spec("freq=11495.4&src=1&pol=h&msys=dvbs2&sr=22000").key();
        assert_ne!(a, d);
        assert!(a.same_transponder(&d));
        assert!(!a.same_transponder(&spec("freq=11497&src=1&pol=h&msys=dvbs2&sr=22000").key()));
        assert_ne!(a, spec(&SAT_Q.replace("pol=h", "pol=v")).key());
        assert_ne!(a, spec(&SAT_Q.replace("src=1", "src=2")).key());
        let set: HashSet<TuningKey> = [a, b, d].into_iter().collect();
        assert_eq!(set.len(), 2);
        assert_eq!(
            a.to_string(),
            "sat:src=1:freq=11494:pol=h:sr=22000:mtype=8psk:band=low"
        );
        assert_eq!(
            spec(TER_Q).key().to_string(),
            "ter:src=1:freq=538:mtype=64qam"
        );
        assert_eq!(spec(C2_Q).key().to_string(), "cab:src=1:freq=651:sid=0");
    }
}
