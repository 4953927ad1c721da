//! Delivery system descriptors of the NIT transport loop (EN 300 468 §6.2.13, §6.4.6.3, §6.2.41)
//! and their conversion to a [`Mux`] to tune.

use crate::satip::{
    CodeRate, DeliverySystem, GuardInterval, Modulation, Polarisation, RollOff, SisoMiso,
    TransmissionMode,
};

use super::mux::{blank_tuning, Mux};

/// Descriptor tags read here.
pub mod tag {
    /// satellite_delivery_system_descriptor.
    pub const SATELLITE: u8 = 0x43;
    /// cable_delivery_system_descriptor.
    pub const CABLE: u8 = 0x44;
    /// terrestrial_delivery_system_descriptor.
    pub const TERRESTRIAL: u8 = 0x5A;
    /// frequency_list_descriptor.
    pub const FREQUENCY_LIST: u8 = 0x62;
    /// S2_satellite_delivery_system_descriptor.
    pub const S2_SATELLITE: u8 = 0x79;
    /// extension_descriptor.
    pub const EXTENSION: u8 = 0x7F;
    /// tag_extension of the T2_delivery_system_descriptor.
    pub const EXT_T2: u8 = 0x04;
}

/// Decode `digits` BCD nibbles from the low end of `v`; `None` on a nibble above 9.
fn bcd(v: u32, digits: u32) -> Option<u32> {
    let mut out = 0u32;
    for i in (0..digits).rev() {
        let d = (v >> (4 * i)) & 0xF;
        if d > 9 {
            return None;
        }
        out = out * 10 + d;
    }
    Some(out)
}

/// FEC_inner of the satellite and cable descriptors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fec {
    /// 0: not defined.
    Undefined,
    /// A code rate.
    Rate(CodeRate),
    /// 15: no convolutional coding.
    None,
}

fn fec_inner(v: u8) -> Fec {
    match v {
        1 => Fec::Rate(CodeRate::R1_2),
        2 => Fec::Rate(CodeRate::R2_3),
        3 => Fec::Rate(CodeRate::R3_4),
        4 => Fec::Rate(CodeRate::R5_6),
        5 => Fec::Rate(CodeRate::R7_8),
        6 => Fec::Rate(CodeRate::R8_9),
        7 => Fec::Rate(CodeRate::R3_5),
        8 => Fec::Rate(CodeRate::R4_5),
        9 => Fec::Rate(CodeRate::R9_10),
        15 => Fec::None,
        _ => Fec::Undefined,
    }
}

impl Fec {
    fn rate(self) -> Option<CodeRate> {
        match self {
            Fec::Rate(r) => Some(r),
            _ => None,
        }
    }
}

/// satellite_delivery_system_descriptor (0x43).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SatelliteDelivery {
    /// Transponder frequency in kHz.
    pub frequency_khz: u32,
    /// Orbital position in 0.1°, positive east.
    pub orbital: i16,
    /// Polarisation.
    pub polarisation: Polarisation,
    /// Roll-off (DVB-S2 only).
    pub roll_off: Option<RollOff>,
    /// modulation_system = 1.
    pub s2: bool,
    /// modulation_type (None = auto).
    pub modulation: Option<Modulation>,
    /// Symbol rate in Bd.
    pub symbol_rate_bd: u32,
    /// FEC_inner.
    pub fec: Fec,
}

impl SatelliteDelivery {
    /// Parse the descriptor body (after tag and length).
    pub fn parse(d: &[u8]) -> Option<SatelliteDelivery> {
        let d = d.get(..11)?;
        let f = bcd(u32::from_be_bytes([d[0], d[1], d[2], d[3]]), 8)?;
        let pos = bcd(u32::from(u16::from_be_bytes([d[4], d[5]])), 4)? as i16;
        let b = d[6];
        let east = b & 0x80 != 0;
        let s2 = b & 0x04 != 0;
        let polarisation = match (b >> 5) & 3 {
            0 => Polarisation::Horizontal,
            1 => Polarisation::Vertical,
            2 => Polarisation::CircularLeft,
            _ => Polarisation::CircularRight,
        };
        let roll_off = if s2 {
            match (b >> 3) & 3 {
                0 => Some(RollOff::R035),
                1 => Some(RollOff::R025),
                2 => Some(RollOff::R020),
                _ => None,
            }
        } else {
            None
        };
        let modulation = match b & 3 {
            1 => Some(Modulation::Qpsk),
            2 => Some(Modulation::Psk8),
            3 => Some(Modulation::Qam16),
            _ => None,
        };
        let w = u32::from_be_bytes([d[7], d[8], d[9], d[10]]);
        let sr = bcd(w >> 4, 7)?;
        Some(SatelliteDelivery {
            frequency_khz: f * 10,
            orbital: if east { pos } else { -pos },
            polarisation,
            roll_off,
            s2,
            modulation,
            symbol_rate_bd: sr * 100,
            fec: fec_inner((w & 0xF) as u8),
        })
    }
}

/// cable_delivery_system_descriptor (0x44).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CableDelivery {
    /// Frequency in Hz.
    pub frequency_hz: u32,
    /// FEC_outer: 0 undefined, 1 none, 2 RS(204,188).
    pub fec_outer: u8,
    /// QAM order (None = undefined/reserved).
    pub modulation: Option<Modulation>,
    /// Symbol rate in Bd.
    pub symbol_rate_bd: u32,
    /// FEC_inner.
    pub fec: Fec,
}

impl CableDelivery {
    /// Parse the descriptor body.
    pub fn parse(d: &[u8]) -> Option<CableDelivery> {
        let d = d.get(..11)?;
        let f = bcd(u32::from_be_bytes([d[0], d[1], d[2], d[3]]), 8)?;
        let modulation = match d[6] {
            1 => Some(Modulation::Qam16),
            2 => Some(Modulation::Qam32),
            3 => Some(Modulation::Qam64),
            4 => Some(Modulation::Qam128),
            5 => Some(Modulation::Qam256),
            _ => None,
        };
        let w = u32::from_be_bytes([d[7], d[8], d[9], d[10]]);
        Some(CableDelivery {
            frequency_hz: f.checked_mul(100)?,
            fec_outer: d[5] & 0xF,
            modulation,
            symbol_rate_bd: bcd(w >> 4, 7)? * 100,
            fec: fec_inner((w & 0xF) as u8),
        })
    }
}

/// terrestrial_delivery_system_descriptor (0x5A).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TerrestrialDelivery {
    /// Centre frequency in Hz.
    pub frequency_hz: u32,
    /// Bandwidth in Hz (None = reserved value).
    pub bandwidth_hz: Option<u32>,
    /// priority: true = HP stream.
    pub high_priority: bool,
    /// Constellation (None = reserved).
    pub modulation: Option<Modulation>,
    /// hierarchy_information (3 bits; bit 2 = in-depth interleaver, 0 = non-hierarchical).
    pub hierarchy: u8,
    /// code_rate-HP.
    pub code_rate_hp: Option<CodeRate>,
    /// code_rate-LP.
    pub code_rate_lp: Option<CodeRate>,
    /// guard_interval.
    pub guard_interval: GuardInterval,
    /// transmission_mode (None = reserved).
    pub transmission_mode: Option<TransmissionMode>,
    /// other_frequency_flag.
    pub other_frequency: bool,
}

fn t_code_rate(v: u8) -> Option<CodeRate> {
    match v {
        0 => Some(CodeRate::R1_2),
        1 => Some(CodeRate::R2_3),
        2 => Some(CodeRate::R3_4),
        3 => Some(CodeRate::R5_6),
        4 => Some(CodeRate::R7_8),
        _ => None,
    }
}

impl TerrestrialDelivery {
    /// Parse the descriptor body.
    pub fn parse(d: &[u8]) -> Option<TerrestrialDelivery> {
        let d = d.get(..7)?;
        let f = u32::from_be_bytes([d[0], d[1], d[2], d[3]]);
        let bandwidth_hz = match d[4] >> 5 {
            0 => Some(8_000_000),
            1 => Some(7_000_000),
            2 => Some(6_000_000),
            3 => Some(5_000_000),
            _ => None,
        };
        let modulation = match d[5] >> 6 {
            0 => Some(Modulation::Qpsk),
            1 => Some(Modulation::Qam16),
            2 => Some(Modulation::Qam64),
            _ => None,
        };
        Some(TerrestrialDelivery {
            frequency_hz: f.checked_mul(10)?,
            bandwidth_hz,
            high_priority: d[4] & 0x10 != 0,
            modulation,
            hierarchy: (d[5] >> 3) & 7,
            code_rate_hp: t_code_rate(d[5] & 7),
            code_rate_lp: t_code_rate(d[6] >> 5),
            guard_interval: match (d[6] >> 3) & 3 {
                0 => GuardInterval::G1_32,
                1 => GuardInterval::G1_16,
                2 => GuardInterval::G1_8,
                _ => GuardInterval::G1_4,
            },
            transmission_mode: match (d[6] >> 1) & 3 {
                0 => Some(TransmissionMode::K2),
                1 => Some(TransmissionMode::K8),
                2 => Some(TransmissionMode::K4),
                _ => None,
            },
            other_frequency: d[6] & 1 != 0,
        })
    }
}

/// One cell of a long-form T2 delivery descriptor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct T2Cell {
    /// cell_id.
    pub cell_id: u16,
    /// Centre frequencies in Hz (several with TFS).
    pub frequencies_hz: Vec<u32>,
    /// (cell_id_extension, transposer frequency in Hz).
    pub subcells: Vec<(u8, u32)>,
}

/// The optional part of a T2 delivery descriptor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct T2Details {
    /// SISO/MISO.
    pub siso_miso: Option<SisoMiso>,
    /// Bandwidth in Hz.
    pub bandwidth_hz: Option<u32>,
    /// Guard interval.
    pub guard_interval: Option<GuardInterval>,
    /// FFT size.
    pub transmission_mode: Option<TransmissionMode>,
    /// other_frequency_flag.
    pub other_frequency: bool,
    /// tfs_flag.
    pub tfs: bool,
    /// Cells.
    pub cells: Vec<T2Cell>,
}

/// T2_delivery_system_descriptor (extension 0x7F, tag_extension 0x04).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct T2Delivery {
    /// plp_id carrying this TS.
    pub plp_id: u8,
    /// T2_system_id.
    pub t2_system_id: u16,
    /// Present in the long form.
    pub details: Option<T2Details>,
}

impl T2Delivery {
    /// Parse the body of an extension descriptor (starting at tag_extension); `None` if it is
    /// another extension or malformed.
    pub fn parse(d: &[u8]) -> Option<T2Delivery> {
        if *d.first()? != tag::EXT_T2 {
            return None;
        }
        let plp_id = *d.get(1)?;
        let t2_system_id = u16::from_be_bytes([*d.get(2)?, *d.get(3)?]);
        let rest = &d[4..];
        if rest.len() < 2 {
            return Some(T2Delivery {
                plp_id,
                t2_system_id,
                details: None,
            });
        }
        let (a, b) = (rest[0], rest[1]);
        let tfs = b & 1 != 0;
        let mut cells = Vec::new();
        let mut i = 2;
        let u32_at = |i: usize| -> Option<u32> {
            let s = rest.get(i..i + 4)?;
            u32::from_be_bytes([s[0], s[1], s[2], s[3]]).checked_mul(10)
        };
        while i + 2 <= rest.len() {
            let cell_id = u16::from_be_bytes([rest[i], rest[i + 1]]);
            i += 2;
            let mut frequencies_hz = Vec::new();
            if tfs {
                let n = usize::from(*rest.get(i)?);
                i += 1;
                for k in 0..n / 4 {
                    frequencies_hz.push(u32_at(i + 4 * k)?);
                }
                i += n;
            } else {
                frequencies_hz.push(u32_at(i)?);
                i += 4;
            }
            let n = usize::from(*rest.get(i)?);
            i += 1;
            let mut subcells = Vec::new();
            for k in 0..n / 5 {
                let ext = *rest.get(i + 5 * k)?;
                subcells.push((ext, u32_at(i + 5 * k + 1)?));
            }
            i += n;
            cells.push(T2Cell {
                cell_id,
                frequencies_hz,
                subcells,
            });
        }
        Some(T2Delivery {
            plp_id,
            t2_system_id,
            details: Some(T2Details {
                siso_miso: match a >> 6 {
                    0 => Some(SisoMiso::Siso),
                    1 => Some(SisoMiso::Miso),
                    _ => None,
                },
                bandwidth_hz: match (a >> 2) & 0xF {
                    0 => Some(8_000_000),
                    1 => Some(7_000_000),
                    2 => Some(6_000_000),
                    3 => Some(5_000_000),
                    4 => Some(10_000_000),
                    5 => Some(1_712_000),
                    _ => None,
                },
                guard_interval: match b >> 5 {
                    0 => Some(GuardInterval::G1_32),
                    1 => Some(GuardInterval::G1_16),
                    2 => Some(GuardInterval::G1_8),
                    3 => Some(GuardInterval::G1_4),
                    4 => Some(GuardInterval::G1_128),
                    5 => Some(GuardInterval::G19_128),
                    6 => Some(GuardInterval::G19_256),
                    _ => None,
                },
                transmission_mode: match (b >> 2) & 7 {
                    0 => Some(TransmissionMode::K2),
                    1 => Some(TransmissionMode::K8),
                    2 => Some(TransmissionMode::K4),
                    3 => Some(TransmissionMode::K1),
                    4 => Some(TransmissionMode::K16),
                    5 => Some(TransmissionMode::K32),
                    _ => None,
                },
                other_frequency: b & 2 != 0,
                tfs,
                cells,
            }),
        })
    }
}

/// S2_satellite_delivery_system_descriptor (0x79): the PLS code and input stream id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S2Delivery {
    /// backwards_compatibility_indicator.
    pub backwards_compatible: bool,
    /// scrambling_sequence_index when the selector is set.
    pub pls_code: Option<u32>,
    /// input_stream_identifier when multiple_input_stream_flag is set.
    pub input_stream_id: Option<u8>,
}

impl S2Delivery {
    /// Parse the descriptor body.
    pub fn parse(d: &[u8]) -> Option<S2Delivery> {
        let b = *d.first()?;
        let mut i = 1;
        let pls_code = if b & 0x80 != 0 {
            let s = d.get(1..4)?;
            i = 4;
            Some(u32::from_be_bytes([0, s[0], s[1], s[2]]) & 0x3_FFFF)
        } else {
            None
        };
        let input_stream_id = if b & 0x40 != 0 {
            Some(*d.get(i)?)
        } else {
            None
        };
        Some(S2Delivery {
            backwards_compatible: b & 0x20 != 0,
            pls_code,
            input_stream_id,
        })
    }
}

/// frequency_list_descriptor (0x62).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrequencyList {
    /// coding_type: 1 satellite, 2 cable, 3 terrestrial.
    pub coding_type: u8,
    /// Frequencies in kHz (satellite) or Hz (cable, terrestrial).
    pub frequencies: Vec<u32>,
}

impl FrequencyList {
    /// Parse the descriptor body.
    pub fn parse(d: &[u8]) -> Option<FrequencyList> {
        let coding_type = *d.first()? & 3;
        let frequencies = d[1..]
            .chunks_exact(4)
            .filter_map(|c| {
                let v = u32::from_be_bytes([c[0], c[1], c[2], c[3]]);
                match coding_type {
                    1 => bcd(v, 8).map(|f| f * 10),
                    2 => bcd(v, 8).and_then(|f| f.checked_mul(100)),
                    3 => v.checked_mul(10),
                    _ => None,
                }
            })
            .collect();
        Some(FrequencyList {
            coding_type,
            frequencies,
        })
    }
}

/// The delivery descriptors of one NIT transport-loop entry.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Delivery {
    /// 0x43.
    pub satellite: Option<SatelliteDelivery>,
    /// 0x44.
    pub cable: Option<CableDelivery>,
    /// 0x5A.
    pub terrestrial: Option<TerrestrialDelivery>,
    /// 0x7F/0x04.
    pub t2: Option<T2Delivery>,
    /// 0x79.
    pub s2: Option<S2Delivery>,
    /// 0x62.
    pub frequency_list: Option<FrequencyList>,
}

impl Delivery {
    /// Read the delivery descriptors of a descriptor loop (the first of each kind counts).
    pub fn from_descriptors(loop_bytes: &[u8]) -> Delivery {
        let mut d = Delivery::default();
        for desc in crate::psi::descriptors(loop_bytes) {
            match desc.tag {
                tag::SATELLITE if d.satellite.is_none() => {
                    d.satellite = SatelliteDelivery::parse(desc.data)
                }
                tag::CABLE if d.cable.is_none() => d.cable = CableDelivery::parse(desc.data),
                tag::TERRESTRIAL if d.terrestrial.is_none() => {
                    d.terrestrial = TerrestrialDelivery::parse(desc.data)
                }
                tag::EXTENSION if d.t2.is_none() => d.t2 = T2Delivery::parse(desc.data),
                tag::S2_SATELLITE if d.s2.is_none() => d.s2 = S2Delivery::parse(desc.data),
                tag::FREQUENCY_LIST if d.frequency_list.is_none() => {
                    d.frequency_list = FrequencyList::parse(desc.data)
                }
                _ => {}
            }
        }
        d
    }

    /// The mux this entry announces, and alternative frequencies of the same TS (kHz for
    /// satellite, Hz otherwise). `current` is the mux the NIT was read on: a short-form T2
    /// descriptor means "another PLP on the current frequency" [OURS §5.7].
    pub fn to_mux(&self, current: Option<&Mux>) -> Option<(Mux, Vec<u32>)> {
        let mut alternatives: Vec<u32> = Vec::new();
        let mux = if let Some(s) = &self.satellite {
            let msys = if s.s2 {
                DeliverySystem::DvbS2
            } else {
                DeliverySystem::DvbS
            };
            let mut t = blank_tuning(msys, s.frequency_khz);
            t.polarisation = Some(s.polarisation);
            t.symbol_rate = Some(s.symbol_rate_bd / 1000);
            t.code_rate = s.fec.rate();
            t.modulation = match (s.s2, s.modulation) {
                (false, _) => Some(Modulation::Qpsk),
                (true, Some(m @ (Modulation::Qpsk | Modulation::Psk8))) => Some(m),
                (true, _) => None,
            };
            if s.s2 {
                t.roll_off = s.roll_off;
                if let Some(s2) = &self.s2 {
                    t.input_stream_id = s2.input_stream_id;
                    t.pls_code = s2.pls_code;
                }
            }
            Mux {
                tuning: t,
                orbital: Some(s.orbital),
            }
        } else if let Some(c) = &self.cable {
            let mut t = blank_tuning(DeliverySystem::DvbC, c.frequency_hz);
            t.symbol_rate = Some(c.symbol_rate_bd / 1000);
            t.modulation = c.modulation;
            Mux::new(t)
        } else if let Some(t2) = &self.t2 {
            let details = t2.details.as_ref();
            let mut freqs: Vec<u32> = details
                .map(|d| {
                    d.cells
                        .iter()
                        .flat_map(|c| c.frequencies_hz.iter().copied())
                        .collect()
                })
                .unwrap_or_default();
            let base = self.terrestrial.as_ref().map(|t| t.frequency_hz);
            let frequency = match (freqs.first().copied(), base, current) {
                (Some(f), _, _) => f,
                (None, Some(f), _) => f,
                (None, None, Some(cur)) if cur.family() == crate::satip::Family::Terrestrial => {
                    cur.tuning.frequency
                }
                _ => return None,
            };
            freqs.retain(|&f| f != frequency);
            alternatives.extend(freqs);
            let mut t = blank_tuning(DeliverySystem::DvbT2, frequency);
            t.plp = Some(t2.plp_id);
            t.t2_system_id = Some(t2.t2_system_id);
            match details {
                Some(d) => {
                    t.bandwidth_hz = d.bandwidth_hz;
                    t.guard_interval = d.guard_interval;
                    t.transmission_mode = d.transmission_mode;
                    t.siso_miso = d.siso_miso;
                }
                None => {
                    t.bandwidth_hz = self
                        .terrestrial
                        .as_ref()
                        .and_then(|t| t.bandwidth_hz)
                        .or_else(|| {
                            current
                                .filter(|c| c.tuning.frequency == frequency)
                                .and_then(|c| c.tuning.bandwidth_hz)
                        });
                }
            }
            Mux::new(t)
        } else if let Some(ter) = &self.terrestrial {
            let mut t = blank_tuning(DeliverySystem::DvbT, ter.frequency_hz);
            t.bandwidth_hz = ter.bandwidth_hz;
            t.modulation = ter.modulation;
            t.code_rate = ter.code_rate_hp;
            t.guard_interval = Some(ter.guard_interval);
            t.transmission_mode = ter.transmission_mode;
            Mux::new(t)
        } else {
            return None;
        };
        if let Some(fl) = &self.frequency_list {
            for f in &fl.frequencies {
                if *f != mux.tuning.frequency && !alternatives.contains(f) {
                    alternatives.push(*f);
                }
            }
        }
        Some((mux, alternatives))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::si;

    fn body(bytes: &[u8]) -> &[u8] {
        &bytes[2..]
    }

    #[test]
    fn satellite_digest_vector() {
        // §13 item 13.
        let d = [
            0x43, 0x0B, 0x01, 0x14, 0x94, 0x00, 0x01, 0x92, 0x86, 0x02, 0x20, 0x00, 0x02,
        ];
        let s = SatelliteDelivery::parse(body(&d)).unwrap();
        assert_eq!(
            s,
            SatelliteDelivery {
                frequency_khz: 11_494_000,
                orbital: 192,
                polarisation: Polarisation::Horizontal,
                roll_off: Some(RollOff::R035),
                s2: true,
                modulation: Some(Modulation::Psk8),
                symbol_rate_bd: 22_000_000,
                fec: Fec::Rate(CodeRate::R2_3),
            }
        );
        let (m, alt) = Delivery::from_descriptors(&d).to_mux(None).unwrap();
        assert!(alt.is_empty());
        assert_eq!(
            m.tuning.canonical_query(None),
            "src=1&freq=11494&pol=h&ro=0.35&msys=dvbs2&mtype=8psk&sr=22000&fec=23"
        );
        assert_eq!(m.orbital, Some(192));
    }

    #[test]
    fn satellite_round_trip_through_si_writer() {
        let d = si::satellite_delivery_descriptor(12_188_000, 130, false, 1, false, 27_500);
        let s = SatelliteDelivery::parse(body(&d)).unwrap();
        assert_eq!(s.frequency_khz, 12_188_000);
        assert_eq!(s.orbital, -130);
        assert_eq!(s.polarisation, Polarisation::Vertical);
        assert!(!s.s2);
        assert_eq!(s.roll_off, None);
        assert_eq!(s.modulation, Some(Modulation::Qpsk));
        assert_eq!(s.symbol_rate_bd, 27_500_000);
        assert_eq!(s.fec, Fec::Rate(CodeRate::R3_4));
    }

    #[test]
    fn cable_digest_vector_and_writer() {
        // §13 item 14.
        let d = [
            0x44, 0x0B, 0x03, 0x46, 0x00, 0x00, 0xFF, 0xF2, 0x05, 0x00, 0x69, 0x00, 0x0F,
        ];
        let c = CableDelivery::parse(body(&d)).unwrap();
        assert_eq!(
            c,
            CableDelivery {
                frequency_hz: 346_000_000,
                fec_outer: 2,
                modulation: Some(Modulation::Qam256),
                symbol_rate_bd: 6_900_000,
                fec: Fec::None,
            }
        );
        assert_eq!(
            si::cable_delivery_descriptor(346_000_000, 6900, 5),
            d.to_vec()
        );
        let (m, _) = Delivery::from_descriptors(&d).to_mux(None).unwrap();
        assert_eq!(
            m.tuning.canonical_query(None),
            "src=1&freq=346&msys=dvbc&mtype=256qam&sr=6900"
        );
    }

    #[test]
    fn terrestrial_digest_vector_and_writer() {
        // §13 item 15.
        let d = [
            0x5A, 0x0B, 0x03, 0x04, 0x18, 0x40, 0x1F, 0x81, 0x12, 0xFF, 0xFF, 0xFF, 0xFF,
        ];
        let t = TerrestrialDelivery::parse(body(&d)).unwrap();
        assert_eq!(
            t,
            TerrestrialDelivery {
                frequency_hz: 506_000_000,
                bandwidth_hz: Some(8_000_000),
                high_priority: true,
                modulation: Some(Modulation::Qam64),
                hierarchy: 0,
                code_rate_hp: Some(CodeRate::R2_3),
                code_rate_lp: Some(CodeRate::R1_2),
                guard_interval: GuardInterval::G1_8,
                transmission_mode: Some(TransmissionMode::K8),
                other_frequency: false,
            }
        );
        let (m, _) = Delivery::from_descriptors(&d).to_mux(None).unwrap();
        assert_eq!(
            m.tuning.canonical_query(None),
            "src=1&freq=506&msys=dvbt&mtype=64qam&fec=23&bw=8&tmode=8k&gi=18"
        );
        // The emulator's writer: 7 MHz, 64-QAM, 2/3, 1/32, 8k.
        let w = si::terrestrial_delivery_descriptor(177_500_000, 7_000_000);
        let t = TerrestrialDelivery::parse(body(&w)).unwrap();
        assert_eq!(t.frequency_hz, 177_500_000);
        assert_eq!(t.bandwidth_hz, Some(7_000_000));
        assert_eq!(t.guard_interval, GuardInterval::G1_32);
        assert_eq!(t.transmission_mode, Some(TransmissionMode::K8));
    }

    #[test]
    fn t2_digest_vector_short_form_and_writer() {
        // §13 item 16.
        let d = [
            0x7F, 0x0D, 0x04, 0x00, 0x80, 0x01, 0x03, 0xD4, 0x00, 0x00, 0x02, 0xD3, 0x44, 0x40,
            0x00,
        ];
        let t2 = T2Delivery::parse(body(&d)).unwrap();
        assert_eq!(t2.plp_id, 0);
        assert_eq!(t2.t2_system_id, 0x8001);
        let det = t2.details.as_ref().unwrap();
        assert_eq!(det.bandwidth_hz, Some(8_000_000));
        assert_eq!(det.guard_interval, Some(GuardInterval::G19_256));
        assert_eq!(det.transmission_mode, Some(TransmissionMode::K32));
        assert_eq!(det.siso_miso, Some(SisoMiso::Siso));
        assert!(!det.tfs);
        assert_eq!(
            det.cells,
            vec![T2Cell {
                cell_id: 0,
                frequencies_hz: vec![474_000_000],
                subcells: vec![]
            }]
        );
        let (m, _) = Delivery::from_descriptors(&d).to_mux(None).unwrap();
        assert_eq!(m.tuning.delivery_system, DeliverySystem::DvbT2);
        assert_eq!(m.tuning.frequency, 474_000_000);
        assert_eq!(m.tuning.plp, Some(0));

        // Short form from si.rs: another PLP on the current frequency.
        let w = si::t2_delivery_descriptor(1, 0x8001);
        let s = T2Delivery::parse(body(&w)).unwrap();
        assert_eq!((s.plp_id, s.t2_system_id, s.details), (1, 0x8001, None));
        assert_eq!(Delivery::from_descriptors(&w).to_mux(None), None);
        let mut cur = blank_tuning(DeliverySystem::DvbT2, 474_000_000);
        cur.bandwidth_hz = Some(8_000_000);
        let (m, _) = Delivery::from_descriptors(&w)
            .to_mux(Some(&Mux::new(cur)))
            .unwrap();
        assert_eq!(
            m.tuning.canonical_query(None),
            "src=1&freq=474&msys=dvbt2&bw=8&plp=1&t2id=32769"
        );
        // With a terrestrial descriptor next to it, that frequency is used.
        let mut both = si::terrestrial_delivery_descriptor(482_000_000, 8_000_000);
        both.extend(&w);
        let (m, _) = Delivery::from_descriptors(&both).to_mux(None).unwrap();
        assert_eq!(
            (m.tuning.delivery_system, m.tuning.frequency),
            (DeliverySystem::DvbT2, 482_000_000)
        );
    }

    #[test]
    fn t2_tfs_cells_and_subcells() {
        let mut b = vec![0x04, 0x02, 0x00, 0x07, 0x40, 0x03];
        b[4] = 0b0000_0111; // SISO(2)=0, bandwidth(4)=1 (7 MHz), reserved(2)
        b[5] = 0b0000_0101; // guard(3)=0, tmode(3)=1 (8k), other_frequency 0, tfs 1
        b.extend([0x12, 0x34, 8]);
        b.extend((47_400_000u32).to_be_bytes());
        b.extend((48_200_000u32).to_be_bytes());
        b.extend([5, 0x01]);
        b.extend((49_000_000u32).to_be_bytes());
        let t2 = T2Delivery::parse(&b).unwrap();
        let det = t2.details.unwrap();
        assert!(det.tfs);
        assert_eq!(det.bandwidth_hz, Some(7_000_000));
        assert_eq!(det.cells[0].cell_id, 0x1234);
        assert_eq!(det.cells[0].frequencies_hz, vec![474_000_000, 482_000_000]);
        assert_eq!(det.cells[0].subcells, vec![(1, 490_000_000)]);
    }

    #[test]
    fn s2_isi_and_frequency_list() {
        // §13 item 17: ISI 5.
        let s2 = S2Delivery::parse(&[0x5F, 0x05]).unwrap();
        assert_eq!(s2.input_stream_id, Some(5));
        assert_eq!(s2.pls_code, None);
        let pls = S2Delivery::parse(&[0xC0, 0x01, 0x23, 0x45, 0x07]).unwrap();
        assert_eq!(pls.pls_code, Some(0x1_2345));
        assert_eq!(pls.input_stream_id, Some(7));
        let mut d = vec![
            0x43, 0x0B, 0x01, 0x14, 0x94, 0x00, 0x01, 0x92, 0x86, 0x02, 0x20, 0x00, 0x02,
        ];
        d.extend([0x79, 0x02, 0x5F, 0x05]);
        let (m, _) = Delivery::from_descriptors(&d).to_mux(None).unwrap();
        assert_eq!(m.tuning.input_stream_id, Some(5));
        assert_eq!(m.stream_id(), 5);

        let fl = [
            0x62, 0x09, 0xFF, 0x02, 0xD3, 0x44, 0x40, 0x02, 0xDF, 0x79, 0x40,
        ];
        let l = FrequencyList::parse(body(&fl)).unwrap();
        assert_eq!(l.coding_type, 3);
        assert_eq!(l.frequencies, vec![474_000_000, 482_000_000]);
        let mut t = si::terrestrial_delivery_descriptor(474_000_000, 8_000_000);
        t.extend(fl);
        let (m, alt) = Delivery::from_descriptors(&t).to_mux(None).unwrap();
        assert_eq!(m.tuning.frequency, 474_000_000);
        assert_eq!(alt, vec![482_000_000]);
    }

    #[test]
    fn bad_bcd_is_refused() {
        let mut d = [0u8; 11];
        d[0] = 0x0A;
        assert_eq!(SatelliteDelivery::parse(&d), None);
        assert_eq!(CableDelivery::parse(&d[..5]), None);
    }
}
