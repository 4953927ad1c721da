//! A multiplex to scan: a SAT>IP [`Tuning`] (the type the pool tunes with) plus the orbital
//! position a satellite mux belongs to, and the §9.3 equivalence used to deduplicate muxes.
//!
//! Serialised (JSON) as the canonical SAT>IP query of the tuning, which `satip::parse_query`
//! reads back to the same tuning.

use serde::{Deserialize, Serialize};

use crate::satip::{parse_query, Choice, DeliverySystem, Family, Tuning, TuningParams};

/// One multiplex (transponder; for T2/S2 one PLP/input stream of it).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(into = "MuxRepr", try_from = "MuxRepr")]
pub struct Mux {
    /// How to tune it. Frequencies: Hz for terrestrial and cable, kHz for satellite.
    pub tuning: Tuning,
    /// Orbital position in 0.1°, positive east (satellite only, when known).
    pub orbital: Option<i16>,
}

/// The JSON form: the canonical SAT>IP query (kHz precision) plus the exact frequency in
/// dvbsrc units (ATSC pilots and ISDB-T 1/7 MHz offsets need Hz).
#[derive(Serialize, Deserialize)]
struct MuxRepr {
    tuning: String,
    frequency: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    orbital: Option<i16>,
}

impl From<Mux> for MuxRepr {
    fn from(m: Mux) -> MuxRepr {
        MuxRepr {
            tuning: m.tuning.canonical_query(None),
            frequency: m.tuning.frequency,
            orbital: m.orbital,
        }
    }
}

impl TryFrom<MuxRepr> for Mux {
    type Error = String;

    fn try_from(r: MuxRepr) -> Result<Mux, String> {
        let q = parse_query(&r.tuning).map_err(|e| format!("tuning \"{}\": {e}", r.tuning))?;
        let mut tuning = tuning_from_params(&q.tuning)
            .ok_or_else(|| format!("tuning \"{}\": no msys", r.tuning))?;
        tuning.frequency = r.frequency;
        Ok(Mux {
            tuning,
            orbital: r.orbital,
        })
    }
}

/// The tuning a canonical query describes, without the SAT>IP range checks of
/// `TuningParams::resolve` (initial tuning files hold muxes a SAT>IP client may not ask for,
/// e.g. Ka-band satellites or 256-QAM DVB-T entries). `None` without `msys`.
pub fn tuning_from_params(p: &TuningParams) -> Option<Tuning> {
    let msys = p.msys?;
    let khz = p.freq_khz.unwrap_or(0);
    let mut t = blank_tuning(
        msys,
        match msys.family() {
            Family::Satellite => khz,
            _ => khz.saturating_mul(1000),
        },
    );
    t.src = p.src.unwrap_or(1);
    t.fe = p.fe;
    t.polarisation = p.pol;
    t.roll_off = p.ro.and_then(Choice::fixed);
    t.modulation = p.mtype.and_then(Choice::fixed);
    t.pilots = p.plts.and_then(Choice::fixed);
    t.symbol_rate = p.sr;
    t.code_rate = p.fec.and_then(Choice::fixed);
    t.bandwidth_hz = p.bw_khz.and_then(Choice::fixed).map(|k| k * 1000);
    t.transmission_mode = p.tmode.and_then(Choice::fixed);
    t.guard_interval = p.gi.and_then(Choice::fixed);
    t.plp = p.plp;
    t.t2_system_id = p.t2id;
    t.siso_miso = p.sm;
    t.c2_tuning_type = p.c2tft;
    t.data_slice = p.ds;
    t.spectral_inversion = p.specinv;
    t.input_stream_id = p.isi;
    t.pls_mode = p.plsm;
    t.pls_code = p.plsc;
    Some(t)
}

/// A tuning with every optional parameter automatic: `frequency` in Hz (T, C) or kHz (S).
pub fn blank_tuning(delivery_system: DeliverySystem, frequency: u32) -> Tuning {
    Tuning::blank(delivery_system, frequency)
}

impl Mux {
    /// A mux from a tuning, with no orbital position.
    pub fn new(tuning: Tuning) -> Mux {
        Mux {
            tuning,
            orbital: None,
        }
    }

    /// Satellite, terrestrial or cable.
    pub fn family(&self) -> Family {
        self.tuning.family()
    }

    /// Frequency in kHz.
    pub fn freq_khz(&self) -> u32 {
        self.tuning.freq_khz()
    }

    /// PLP (T2) or ISI (S2); "unset" counts as 0, which is what drivers do with
    /// NO_STREAM_ID_FILTER.
    pub fn stream_id(&self) -> u8 {
        self.tuning.stream_id().unwrap_or(0)
    }

    /// Frequency tolerance of §9.3 [OURS] in kHz: ±1 MHz for T and C; for S the larger of
    /// 2 MHz and SR × 1.35 / 8.
    pub fn tolerance_khz(&self) -> u32 {
        match self.family() {
            Family::Satellite => {
                let sr = self.tuning.symbol_rate.unwrap_or(0);
                (sr.saturating_mul(135) / 800).max(2000)
            }
            _ => 1000,
        }
    }

    /// §9.3 [OURS]: same family and source, same polarisation and stream id, orbit within
    /// ±0.2°, frequencies within the tolerance.
    pub fn same_transponder(&self, other: &Mux) -> bool {
        if self.family() != other.family() || self.stream_id() != other.stream_id() {
            return false;
        }
        if self.family() == Family::Satellite {
            if self.tuning.src != other.tuning.src
                || self.tuning.polarisation != other.tuning.polarisation
            {
                return false;
            }
            if let (Some(a), Some(b)) = (self.orbital, other.orbital) {
                if (i32::from(a) - i32::from(b)).abs() > 2 {
                    return false;
                }
            }
        }
        let tol = self.tolerance_khz().max(other.tolerance_khz());
        self.freq_khz().abs_diff(other.freq_khz()) <= tol
    }

    /// Short human label: `506.000 MHz dvbt`, `11494.000 MHz H dvbs2 @19.2E`, `474 MHz plp 1`.
    pub fn label(&self) -> String {
        let t = &self.tuning;
        let mut s = format!("{:.3} MHz", f64::from(self.freq_khz()) / 1000.0);
        if let Some(p) = t.polarisation {
            s.push(' ');
            s.push_str(&p.query_name().to_ascii_uppercase());
        }
        s.push(' ');
        s.push_str(t.delivery_system.query_name());
        if let Some(id) = t.stream_id() {
            s.push_str(&format!(" stream {id}"));
        }
        if let Some(o) = self.orbital {
            s.push_str(&format!(" @{}", orbital_label(o)));
        }
        s
    }
}

/// `192` → `19.2E`, `-50` → `5.0W`.
pub fn orbital_label(tenths: i16) -> String {
    let a = i32::from(tenths).abs();
    let dir = if tenths < 0 { 'W' } else { 'E' };
    format!("{}.{}{dir}", a / 10, a % 10)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::satip::{Modulation, Polarisation};

    fn t(f_hz: u32) -> Mux {
        let mut t = blank_tuning(DeliverySystem::DvbT, f_hz);
        t.bandwidth_hz = Some(8_000_000);
        Mux::new(t)
    }

    fn s(f_khz: u32, pol: Polarisation, sr: u32) -> Mux {
        let mut t = blank_tuning(DeliverySystem::DvbS2, f_khz);
        t.polarisation = Some(pol);
        t.symbol_rate = Some(sr);
        t.modulation = Some(Modulation::Psk8);
        Mux {
            tuning: t,
            orbital: Some(192),
        }
    }

    #[test]
    fn terrestrial_tolerance_and_plp() {
        assert!(t(506_000_000).same_transponder(&t(506_166_000)));
        assert!(t(506_000_000).same_transponder(&t(507_000_000)));
        assert!(!t(506_000_000).same_transponder(&t(507_001_000)));
        let mut p1 = t(474_000_000);
        p1.tuning.delivery_system = DeliverySystem::DvbT2;
        let mut p0 = p1.clone();
        p1.tuning.plp = Some(1);
        assert!(!p0.same_transponder(&p1), "two PLPs stay apart");
        p0.tuning.plp = Some(0);
        assert!(
            p0.same_transponder(&t(474_000_000)),
            "unset stream id = PLP 0"
        );
    }

    #[test]
    fn satellite_tolerance_polarisation_orbit() {
        let a = s(11_494_000, Polarisation::Horizontal, 22_000);
        // 22000 kBd × 1.35 / 8 = 3712 kHz.
        assert!(a.same_transponder(&s(11_497_700, Polarisation::Horizontal, 22_000)));
        assert!(!a.same_transponder(&s(11_497_800, Polarisation::Horizontal, 22_000)));
        assert!(!a.same_transponder(&s(11_494_000, Polarisation::Vertical, 22_000)));
        let mut b = a.clone();
        b.orbital = Some(130);
        assert!(!a.same_transponder(&b));
        b.orbital = Some(190);
        assert!(a.same_transponder(&b));
    }

    #[test]
    fn serde_round_trip_through_query() {
        for m in [
            t(506_000_000),
            s(11_494_000, Polarisation::Vertical, 27_500),
        ] {
            let j = serde_json::to_string(&m).unwrap();
            let back: Mux = serde_json::from_str(&j).unwrap();
            assert_eq!(back, m, "{j}");
        }
        let e = serde_json::from_str::<Mux>(r#"{"tuning":"freq=506&msys=nope","frequency":1}"#)
            .unwrap_err();
        assert!(e.to_string().contains("msys"), "{e}");
        // Hz precision survives (ISDB-T centre 473 + 1/7 MHz).
        let mut isdb = t(473_142_857);
        isdb.tuning.delivery_system = DeliverySystem::IsdbT;
        let j = serde_json::to_string(&isdb).unwrap();
        assert_eq!(serde_json::from_str::<Mux>(&j).unwrap(), isdb, "{j}");
    }

    #[test]
    fn labels() {
        assert_eq!(t(506_000_000).label(), "506.000 MHz dvbt");
        assert_eq!(
            s(11_494_000, Polarisation::Horizontal, 22_000).label(),
            "11494.000 MHz H dvbs2 @19.2E"
        );
        assert_eq!(orbital_label(-50), "5.0W");
    }
}
