//! Scan input: DVBv5 initial tuning files (digest §9.1, the format of Debian's
//! `dtv-scan-tables`) and blind rasters (§9.2) as mux generators.

use std::fmt;

use crate::satip::{
    CodeRate, DeliverySystem, Family, GuardInterval, Modulation, Pilots, PlsMode, Polarisation,
    RollOff, TransmissionMode,
};

use super::mux::{blank_tuning, Mux};

/// A parse error, naming the 1-based line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InitialError {
    /// 1-based line number.
    pub line: usize,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for InitialError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

impl std::error::Error for InitialError {}

/// One entry of an initial tuning file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InitialEntry {
    /// The `[name]` (`CHANNEL` = unnamed).
    pub name: String,
    /// Line of the `[name]`.
    pub line: usize,
    /// The mux.
    pub mux: Mux,
}

fn code_rate(v: &str) -> Result<Option<CodeRate>, ()> {
    Ok(Some(match v {
        "AUTO" | "NONE" => return Ok(None),
        "1/2" => CodeRate::R1_2,
        "2/3" => CodeRate::R2_3,
        "3/4" => CodeRate::R3_4,
        "3/5" => CodeRate::R3_5,
        "4/5" => CodeRate::R4_5,
        "5/6" => CodeRate::R5_6,
        "6/7" => CodeRate::R6_7,
        "7/8" => CodeRate::R7_8,
        "8/9" => CodeRate::R8_9,
        "9/10" => CodeRate::R9_10,
        "1/3" => CodeRate::R1_3,
        "1/4" => CodeRate::R1_4,
        "2/5" => CodeRate::R2_5,
        _ => return Err(()),
    }))
}

fn modulation(v: &str) -> Result<Option<Modulation>, ()> {
    Ok(Some(match v {
        "QAM/AUTO" | "AUTO" => return Ok(None),
        "QPSK" => Modulation::Qpsk,
        "PSK/8" => Modulation::Psk8,
        "APSK/16" => Modulation::Apsk16,
        "APSK/32" => Modulation::Apsk32,
        "QAM/16" => Modulation::Qam16,
        "QAM/32" => Modulation::Qam32,
        "QAM/64" => Modulation::Qam64,
        "QAM/128" => Modulation::Qam128,
        "QAM/256" => Modulation::Qam256,
        "VSB/8" => Modulation::Vsb8,
        "VSB/16" => Modulation::Vsb16,
        "DQPSK" => Modulation::Dqpsk,
        _ => return Err(()),
    }))
}

fn delivery_system(v: &str) -> Option<DeliverySystem> {
    Some(match v {
        "DVBT" => DeliverySystem::DvbT,
        "DVBT2" => DeliverySystem::DvbT2,
        "DVBC/ANNEX_A" => DeliverySystem::DvbC,
        "DVBC/ANNEX_B" => DeliverySystem::DvbCAnnexB,
        "DVBC/ANNEX_C" => DeliverySystem::DvbCAnnexC,
        "DVBC2" => DeliverySystem::DvbC2,
        "DVBS" => DeliverySystem::DvbS,
        "DVBS2" => DeliverySystem::DvbS2,
        "DVBH" => DeliverySystem::DvbH,
        "ATSC" => DeliverySystem::Atsc,
        "ISDBT" => DeliverySystem::IsdbT,
        "ISDBS" => DeliverySystem::IsdbS,
        "ISDBC" => DeliverySystem::IsdbC,
        "DTMB" => DeliverySystem::DmbTh,
        "DSS" => DeliverySystem::Dss,
        _ => return None,
    })
}

/// The DVBv5 spelling of a delivery system.
pub fn delivery_system_name(d: DeliverySystem) -> &'static str {
    match d {
        DeliverySystem::DvbT => "DVBT",
        DeliverySystem::DvbT2 => "DVBT2",
        DeliverySystem::DvbC => "DVBC/ANNEX_A",
        DeliverySystem::DvbCAnnexB => "DVBC/ANNEX_B",
        DeliverySystem::DvbCAnnexC => "DVBC/ANNEX_C",
        DeliverySystem::DvbC2 => "DVBC2",
        DeliverySystem::DvbS => "DVBS",
        DeliverySystem::DvbS2 => "DVBS2",
        DeliverySystem::DvbH => "DVBH",
        DeliverySystem::Atsc => "ATSC",
        DeliverySystem::IsdbT => "ISDBT",
        DeliverySystem::IsdbS => "ISDBS",
        DeliverySystem::IsdbC => "ISDBC",
        DeliverySystem::DmbTh => "DTMB",
        DeliverySystem::Dss => "DSS",
    }
}

#[derive(Default)]
struct Pending {
    name: String,
    line: usize,
    props: Vec<(usize, String, String)>,
}

fn number(line: usize, key: &str, v: &str) -> Result<u64, InitialError> {
    v.parse::<u64>().map_err(|_| InitialError {
        line,
        message: format!("{key} = {v}: not a number"),
    })
}

fn build(p: Pending) -> Result<InitialEntry, InitialError> {
    let get = |k: &str| p.props.iter().rev().find(|(_, key, _)| key == k);
    let Some((dl, _, dv)) = get("DELIVERY_SYSTEM") else {
        return Err(InitialError {
            line: p.line,
            message: format!("[{}] has no DELIVERY_SYSTEM", p.name),
        });
    };
    let msys = delivery_system(dv).ok_or_else(|| InitialError {
        line: *dl,
        message: format!("DELIVERY_SYSTEM = {dv}: unknown delivery system"),
    })?;
    let Some((fl, _, fv)) = get("FREQUENCY") else {
        return Err(InitialError {
            line: p.line,
            message: format!("[{}] has no FREQUENCY", p.name),
        });
    };
    let f = number(*fl, "FREQUENCY", fv)?;
    let frequency = u32::try_from(f).map_err(|_| InitialError {
        line: *fl,
        message: format!("FREQUENCY = {fv}: out of range"),
    })?;
    let mut t = blank_tuning(msys, frequency);
    let family = msys.family();
    let mut orbital = None;
    for (line, key, v) in &p.props {
        let line = *line;
        let bad = || InitialError {
            line,
            message: format!("{key} = {v}: unknown value"),
        };
        match key.as_str() {
            "MODULATION" => t.modulation = modulation(v).map_err(|_| bad())?,
            "INNER_FEC" if family != Family::Terrestrial => {
                t.code_rate = code_rate(v).map_err(|_| bad())?
            }
            "INNER_FEC" => {
                code_rate(v).map_err(|_| bad())?;
            }
            "CODE_RATE_HP" if family == Family::Terrestrial => {
                t.code_rate = code_rate(v).map_err(|_| bad())?
            }
            "CODE_RATE_HP" | "CODE_RATE_LP" => {
                code_rate(v).map_err(|_| bad())?;
            }
            "BANDWIDTH_HZ" => {
                let b = number(line, key, v)?;
                t.bandwidth_hz = match b {
                    0 => None,
                    5_000_000 | 6_000_000 | 7_000_000 | 8_000_000 | 10_000_000 | 1_712_000 => {
                        Some(b as u32)
                    }
                    _ => return Err(bad()),
                }
            }
            "SYMBOL_RATE" => {
                let sr = number(line, key, v)?;
                t.symbol_rate = Some(u32::try_from(sr / 1000).map_err(|_| bad())?);
            }
            "TRANSMISSION_MODE" => {
                t.transmission_mode = match v.as_str() {
                    "AUTO" => None,
                    "1K" => Some(TransmissionMode::K1),
                    "2K" => Some(TransmissionMode::K2),
                    "4K" => Some(TransmissionMode::K4),
                    "8K" => Some(TransmissionMode::K8),
                    "16K" => Some(TransmissionMode::K16),
                    "32K" => Some(TransmissionMode::K32),
                    "C1" => Some(TransmissionMode::C1),
                    "C3780" => Some(TransmissionMode::C3780),
                    _ => return Err(bad()),
                }
            }
            "GUARD_INTERVAL" => {
                t.guard_interval = match v.as_str() {
                    "AUTO" => None,
                    "1/4" => Some(GuardInterval::G1_4),
                    "1/8" => Some(GuardInterval::G1_8),
                    "1/16" => Some(GuardInterval::G1_16),
                    "1/32" => Some(GuardInterval::G1_32),
                    "1/128" => Some(GuardInterval::G1_128),
                    "19/128" => Some(GuardInterval::G19_128),
                    "19/256" => Some(GuardInterval::G19_256),
                    "PN420" => Some(GuardInterval::Pn420),
                    "PN595" => Some(GuardInterval::Pn595),
                    "PN945" => Some(GuardInterval::Pn945),
                    _ => return Err(bad()),
                }
            }
            "HIERARCHY" if !matches!(v.as_str(), "NONE" | "1" | "2" | "4" | "AUTO") => {
                return Err(bad())
            }
            "INVERSION" => {
                t.spectral_inversion = match v.as_str() {
                    "AUTO" => None,
                    "ON" => Some(true),
                    "OFF" => Some(false),
                    _ => return Err(bad()),
                }
            }
            "PILOT" => {
                t.pilots = match v.as_str() {
                    "AUTO" => None,
                    "ON" => Some(Pilots::On),
                    "OFF" => Some(Pilots::Off),
                    _ => return Err(bad()),
                }
            }
            "ROLLOFF" => {
                t.roll_off = match v.as_str() {
                    "AUTO" => None,
                    "35" => Some(RollOff::R035),
                    "25" => Some(RollOff::R025),
                    "20" => Some(RollOff::R020),
                    _ => return Err(bad()),
                }
            }
            "POLARIZATION" => {
                t.polarisation = match v.as_str() {
                    "OFF" => None,
                    "HORIZONTAL" => Some(Polarisation::Horizontal),
                    "VERTICAL" => Some(Polarisation::Vertical),
                    "LEFT" => Some(Polarisation::CircularLeft),
                    "RIGHT" => Some(Polarisation::CircularRight),
                    _ => return Err(bad()),
                }
            }
            "STREAM_ID" => {
                // 4294967295 (~0) is NO_STREAM_ID_FILTER: no stream id.
                let id = number(line, key, v)?;
                if id != u64::from(u32::MAX) {
                    let id = u8::try_from(id).map_err(|_| bad())?;
                    match family {
                        Family::Satellite => t.input_stream_id = Some(id),
                        _ => t.plp = Some(id),
                    }
                }
            }
            "PLS_MODE" => {
                t.pls_mode = match v.as_str() {
                    "0" | "ROOT" => Some(PlsMode::Root),
                    "1" | "GOLD" => Some(PlsMode::Gold),
                    "2" | "COMBO" => Some(PlsMode::Combo),
                    _ => return Err(bad()),
                }
            }
            "PLS_CODE" => {
                t.pls_code = Some(u32::try_from(number(line, key, v)?).map_err(|_| bad())?)
            }
            "SAT_NUMBER" => {
                let n = number(line, key, v)?;
                t.src = u8::try_from(n + 1).map_err(|_| bad())?;
            }
            "ORBITAL_POSITION" => {
                // Not libdvbv5: our own extension for satellite lists (0.1°, negative west).
                orbital = Some(v.parse::<i16>().map_err(|_| bad())?);
            }
            _ => {}
        }
    }
    // The SAT>IP tuning needs these for satellite; dvbv5 files always carry them.
    if family == Family::Satellite {
        if t.polarisation.is_none() {
            return Err(InitialError {
                line: p.line,
                message: format!("[{}]: satellite entry without POLARIZATION", p.name),
            });
        }
        if t.symbol_rate.is_none() {
            return Err(InitialError {
                line: p.line,
                message: format!("[{}]: satellite entry without SYMBOL_RATE", p.name),
            });
        }
        if msys == DeliverySystem::DvbS {
            t.modulation = Some(Modulation::Qpsk);
        }
    }
    Ok(InitialEntry {
        name: p.name,
        line: p.line,
        mux: Mux { tuning: t, orbital },
    })
}

/// Parse a DVBv5 file: `[name]` entries of `KEY = value` (also `KEY=value`), `#` comments,
/// keys and enumerated values case-insensitive, unknown keys skipped, an unknown value of a
/// known key an error naming the line.
pub fn parse_dvbv5(text: &str) -> Result<Vec<InitialEntry>, InitialError> {
    let mut out = Vec::new();
    let mut cur: Option<Pending> = None;
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        let l = raw.trim();
        if l.is_empty() || l.starts_with('#') {
            continue;
        }
        if let Some(rest) = l.strip_prefix('[') {
            let name = rest.strip_suffix(']').ok_or_else(|| InitialError {
                line,
                message: format!("\"{l}\": missing ']'"),
            })?;
            if let Some(p) = cur.take() {
                out.push(build(p)?);
            }
            cur = Some(Pending {
                name: name.trim().to_owned(),
                line,
                props: Vec::new(),
            });
            continue;
        }
        let Some((k, v)) = l.split_once('=') else {
            return Err(InitialError {
                line,
                message: format!("\"{l}\": expected KEY = value"),
            });
        };
        let Some(p) = cur.as_mut() else {
            return Err(InitialError {
                line,
                message: format!("\"{l}\": property before the first [entry]"),
            });
        };
        p.props.push((
            line,
            k.trim().to_ascii_uppercase(),
            v.trim().to_ascii_uppercase(),
        ));
    }
    if let Some(p) = cur.take() {
        out.push(build(p)?);
    }
    Ok(out)
}

fn terrestrial(msys: DeliverySystem, hz: u32, bw: u32) -> Mux {
    let mut t = blank_tuning(msys, hz);
    t.bandwidth_hz = Some(bw);
    Mux::new(t)
}

/// UHF Europe: 474–858 MHz in 8 MHz steps (channels 21–69). With `t2`, each centre is tried
/// as DVB-T2 (PLP unset) first, then DVB-T.
pub fn raster_uhf(t2: bool) -> Vec<Mux> {
    let mut v = Vec::new();
    for ch in 21..=69u32 {
        let hz = (306 + 8 * ch) * 1_000_000;
        if t2 {
            v.push(terrestrial(DeliverySystem::DvbT2, hz, 8_000_000));
        }
        v.push(terrestrial(DeliverySystem::DvbT, hz, 8_000_000));
    }
    v
}

/// VHF band III Europe: 177.5–226.5 MHz in 7 MHz steps (channels 5–12), 7 MHz bandwidth.
pub fn raster_vhf(t2: bool) -> Vec<Mux> {
    let mut v = Vec::new();
    for ch in 5..=12u32 {
        let hz = 142_500_000 + 7_000_000 * ch;
        if t2 {
            v.push(terrestrial(DeliverySystem::DvbT2, hz, 7_000_000));
        }
        v.push(terrestrial(DeliverySystem::DvbT, hz, 7_000_000));
    }
    v
}

/// DVB-C Europe: centres ≡ 2 MHz mod 8 from 114 to 858 MHz, each with every symbol rate
/// (kBd) × modulation given (`None` = QAM auto, for frontends with FE_CAN_QAM_AUTO).
pub fn raster_dvbc(symbol_rates_kbd: &[u32], modulations: &[Option<Modulation>]) -> Vec<Mux> {
    let mut v = Vec::new();
    for mhz in (114..=858u32).step_by(8) {
        for &sr in symbol_rates_kbd {
            for &m in modulations {
                let mut t = blank_tuning(DeliverySystem::DvbC, mhz * 1_000_000);
                t.symbol_rate = Some(sr);
                t.modulation = m;
                v.push(Mux::new(t));
            }
        }
    }
    v
}

/// The DVB-C default: 6900 and 6875 kBd × 256- and 64-QAM.
pub fn raster_dvbc_default() -> Vec<Mux> {
    raster_dvbc(
        &[6900, 6875],
        &[Some(Modulation::Qam256), Some(Modulation::Qam64)],
    )
}

/// A satellite transponder list, one per line: `<MHz> <H|V|L|R> <kBd> [S|S2]` (`#` comments);
/// S2 unless `S` is given. Satellite has no blind scan through the Linux API (§9.2).
pub fn parse_transponder_list(text: &str, orbital: i16) -> Result<Vec<Mux>, InitialError> {
    let mut v = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        let l = raw.split('#').next().unwrap_or("").trim();
        if l.is_empty() {
            continue;
        }
        let f: Vec<&str> = l.split_whitespace().collect();
        let err = |m: &str| InitialError {
            line,
            message: format!("\"{l}\": {m}"),
        };
        if !(3..=4).contains(&f.len()) {
            return Err(err("expected <MHz> <H|V|L|R> <kBd> [S|S2]"));
        }
        let mhz: f64 = f[0].parse().map_err(|_| err("bad frequency"))?;
        if !(2000.0..=13000.0).contains(&mhz) {
            return Err(err("frequency outside 2000–13000 MHz"));
        }
        let pol = match f[1].to_ascii_uppercase().as_str() {
            "H" => Polarisation::Horizontal,
            "V" => Polarisation::Vertical,
            "L" => Polarisation::CircularLeft,
            "R" => Polarisation::CircularRight,
            _ => return Err(err("polarisation must be H, V, L or R")),
        };
        let sr: u32 = f[2].parse().map_err(|_| err("bad symbol rate"))?;
        let msys = match f.get(3).map(|s| s.to_ascii_uppercase()) {
            None => DeliverySystem::DvbS2,
            Some(s) if s == "S2" => DeliverySystem::DvbS2,
            Some(s) if s == "S" => DeliverySystem::DvbS,
            Some(_) => return Err(err("system must be S or S2")),
        };
        let mut t = blank_tuning(msys, (mhz * 1000.0).round() as u32);
        t.polarisation = Some(pol);
        t.symbol_rate = Some(sr);
        t.modulation = (msys == DeliverySystem::DvbS).then_some(Modulation::Qpsk);
        v.push(Mux {
            tuning: t,
            orbital: Some(orbital),
        });
    }
    Ok(v)
}

/// A raster by its CLI name: `dvb-t` (UHF, T2 then T), `dvb-t-vhf`, `dvb-c`.
pub fn raster_by_name(name: &str) -> Option<Vec<Mux>> {
    match name {
        "dvb-t" | "dvbt" => Some(raster_uhf(true)),
        "dvb-t-vhf" => Some(raster_vhf(true)),
        "dvb-c" | "dvbc" => Some(raster_dvbc_default()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DIGEST_EXAMPLE: &str = "[CH21]\n\tDELIVERY_SYSTEM = DVBT2\n\tFREQUENCY = 474000000\n\tBANDWIDTH_HZ = 8000000\n\tSTREAM_ID = 0\n\n[CHANNEL]\n\tDELIVERY_SYSTEM = DVBT\n\tFREQUENCY = 506000000\n\tBANDWIDTH_HZ = 8000000\n\tCODE_RATE_HP = AUTO\n\tCODE_RATE_LP = NONE\n\tMODULATION = QAM/AUTO\n\tTRANSMISSION_MODE = AUTO\n\tGUARD_INTERVAL = AUTO\n\tHIERARCHY = NONE\n\n[CHANNEL]\n\tDELIVERY_SYSTEM = DVBC/ANNEX_A\n\tFREQUENCY = 346000000\n\tSYMBOL_RATE = 6900000\n\tINNER_FEC = NONE\n\tMODULATION = QAM/256\n\tINVERSION = AUTO\n\n[CHANNEL]\n\tDELIVERY_SYSTEM = DVBS2\n\tFREQUENCY = 11494000\n\tPOLARIZATION = HORIZONTAL\n\tSYMBOL_RATE = 22000000\n\tINNER_FEC = 2/3\n\tMODULATION = PSK/8\n\tROLLOFF = 35\n\tSTREAM_ID = 0\n";

    #[test]
    fn digest_example() {
        let e = parse_dvbv5(DIGEST_EXAMPLE).unwrap();
        let q: Vec<String> = e
            .iter()
            .map(|e| e.mux.tuning.canonical_query(None))
            .collect();
        assert_eq!(
            q,
            vec![
                "src=1&freq=474&msys=dvbt2&bw=8&plp=0",
                "src=1&freq=506&msys=dvbt&bw=8",
                "src=1&freq=346&msys=dvbc&mtype=256qam&sr=6900",
                "src=1&freq=11494&pol=h&ro=0.35&msys=dvbs2&mtype=8psk&sr=22000&fec=23&isi=0",
            ]
        );
        assert_eq!((e[0].name.as_str(), e[0].line), ("CH21", 1));
        assert_eq!(e[1].name, "CHANNEL");
    }

    #[test]
    fn key_value_without_blanks_case_and_unknown_keys() {
        // §13 item 46.
        let e = parse_dvbv5(
            "# c\n[x]\ndelivery_system=dvbt\nfrequency=482000000\nFOO_BAR = whatever\nmodulation=qam/16\n",
        )
        .unwrap();
        assert_eq!(e[0].mux.tuning.frequency, 482_000_000);
        assert_eq!(e[0].mux.tuning.modulation, Some(Modulation::Qam16));
    }

    #[test]
    fn errors_name_the_line() {
        let e =
            parse_dvbv5("[a]\n\tDELIVERY_SYSTEM = DVBT\n\tFREQUENCY = 1\n\tMODULATION = QAM/7\n")
                .unwrap_err();
        assert_eq!(e.line, 4);
        assert_eq!(e.to_string(), "line 4: MODULATION = QAM/7: unknown value");
        let e = parse_dvbv5("FREQUENCY = 1\n").unwrap_err();
        assert_eq!(e.line, 1);
        let e = parse_dvbv5("\n[a]\nFREQUENCY = 1\n").unwrap_err();
        assert_eq!(e.to_string(), "line 2: [a] has no DELIVERY_SYSTEM");
        let e = parse_dvbv5("[a]\nDELIVERY_SYSTEM = DVBX\nFREQUENCY = 1\n").unwrap_err();
        assert_eq!(e.line, 2);
        let e = parse_dvbv5("[a]\nDELIVERY_SYSTEM = DVBT\nFREQUENCY = many\n").unwrap_err();
        assert!(e.to_string().contains("line 3"), "{e}");
        let e = parse_dvbv5("[a\n").unwrap_err();
        assert!(e.to_string().contains("missing ']'"), "{e}");
        let e = parse_dvbv5("[a]\nDELIVERY_SYSTEM = DVBS\nFREQUENCY = 11000000\n").unwrap_err();
        assert!(e.to_string().contains("POLARIZATION"), "{e}");
    }

    /// Every file of Debian's dtv-scan-tables parses, and every mux survives the database's
    /// serde round trip (a tuning the SAT>IP resolver refuses would make a database unloadable).
    #[test]
    fn every_dtv_scan_tables_file_parses() {
        let root = std::path::Path::new("/usr/share/dvb");
        assert!(
            root.join("dvb-t").is_dir(),
            "/usr/share/dvb/dvb-t missing: install Debian package dtv-scan-tables"
        );
        let mut files = 0;
        let mut muxes = 0;
        let mut refused = Vec::new();
        for dir in ["dvb-t", "dvb-c", "dvb-s", "atsc", "isdb-t"] {
            let Ok(rd) = std::fs::read_dir(root.join(dir)) else {
                continue;
            };
            for f in rd.flatten() {
                let bytes = std::fs::read(f.path()).unwrap();
                let text = String::from_utf8_lossy(&bytes);
                let entries =
                    parse_dvbv5(&text).unwrap_or_else(|e| panic!("{}: {e}", f.path().display()));
                files += 1;
                for e in entries {
                    muxes += 1;
                    let j = serde_json::to_string(&e.mux).unwrap();
                    match serde_json::from_str::<Mux>(&j) {
                        Ok(back) if back == e.mux => {}
                        Ok(back) => refused.push(format!("{}: {j} → {back:?}", f.path().display())),
                        Err(err) => refused.push(format!("{}: {err}", f.path().display())),
                    }
                }
            }
        }
        assert!(
            files > 500 && muxes > 10_000,
            "{files} files, {muxes} muxes"
        );
        let mut kinds: std::collections::BTreeMap<String, usize> = Default::default();
        for r in &refused {
            let k = r
                .split("): ")
                .next()
                .unwrap_or("")
                .split(": ")
                .last()
                .unwrap_or("")
                .to_owned();
            *kinds
                .entry(format!("{} {}", r.split('/').nth(4).unwrap_or(""), k))
                .or_default() += 1;
        }
        assert!(
            refused.is_empty(),
            "{} refused: {kinds:?}, first: {:?}",
            refused.len(),
            refused.first()
        );
    }

    #[test]
    fn rasters() {
        let uhf = raster_uhf(false);
        assert_eq!(uhf.len(), 49);
        assert_eq!(uhf[0].tuning.frequency, 474_000_000);
        assert_eq!(uhf[48].tuning.frequency, 858_000_000);
        let t2 = raster_uhf(true);
        assert_eq!(t2.len(), 98);
        assert_eq!(t2[0].tuning.delivery_system, DeliverySystem::DvbT2);
        assert_eq!(t2[0].tuning.plp, None, "STREAM_ID unset");
        let vhf = raster_vhf(false);
        assert_eq!(
            (vhf.len(), vhf[0].tuning.frequency, vhf[7].tuning.frequency),
            (8, 177_500_000, 226_500_000)
        );
        let c = raster_dvbc_default();
        assert_eq!(c.len(), 94 * 4);
        assert_eq!(c[0].tuning.frequency, 114_000_000);
        assert!(c.iter().all(|m| (m.tuning.frequency / 1_000_000) % 8 == 2));
        assert!(raster_by_name("dvb-t").is_some() && raster_by_name("x").is_none());
        let s = parse_transponder_list("# Astra\n11494 H 22000\n12188 v 27500 S\n", 192).unwrap();
        assert_eq!(s.len(), 2);
        assert_eq!(
            s[1].tuning.canonical_query(None),
            "src=1&freq=12188&pol=v&msys=dvbs&mtype=qpsk&sr=27500"
        );
        let e = parse_transponder_list("11494 X 22000\n", 192).unwrap_err();
        assert_eq!(e.line, 1);
    }
}
