//! The tuner status string (§4.3) and the signal level and quality scales (§4.4).

use super::*;

/// What the frontend reports, on the SAT>IP scales.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SignalStatus {
    /// 0..255.
    pub level: u8,
    pub lock: bool,
    /// 0..15; reported as 0 without lock.
    pub quality: u8,
}

/// Level from input power in milli-dBm (Linux DVBv5 `FE_SCALE_DECIBEL` unit):
/// `32 + 4.8 × (P + 65)`, rounded and clamped to 0..255 (−65 dBm → 32, −25 dBm → 224).
pub fn level_from_dbm_milli(mdbm: i64) -> u8 {
    let x = i128::from(mdbm) + 65_000;
    // 4.8 per dB = 48 per 10 000 milli-dB; round half away from zero.
    let scaled = x * 48;
    let q = if scaled >= 0 {
        (scaled + 5000) / 10_000
    } else {
        (scaled - 5000) / 10_000
    };
    (q + 32).clamp(0, 255) as u8
}

/// Level from a relative strength 0..65535 (`FE_SCALE_RELATIVE`), mapped to 0..240 (240 is what
/// [TVH] reads as 100 %).
pub fn level_from_relative(v: u16) -> u8 {
    ((u32::from(v) * 240 + 32767) / 65535) as u8
}

/// Quality 0..15 from a relative SNR 0..65535.
pub fn quality_from_relative(v: u16) -> u8 {
    ((u32::from(v) * 16) >> 16) as u8
}

/// Quality 0..15 from an SNR/CNR in milli-dB: dB / 2, clamped.
pub fn quality_from_snr_milli_db(mdb: i64) -> u8 {
    (mdb / 2000).clamp(0, 15) as u8
}

/// The status string of `a=fmtp:33` and the RTCP APP payload (§4.3) for frontend `fe`.
///
/// Layout by family: satellite `ver=1.0;src=..;tuner=` with 12 fields, terrestrial `ver=1.1;`
/// with 14, cable `ver=1.2;` with 13; fields that do not apply stay empty. Frequencies have two
/// decimals; for DVB-S the mtype, pilots and roll-off fields are empty (spec example). Level is
/// clamped to 0..255, quality to 0..15 and forced to 0 without lock. Without a tuning the
/// satellite layout with empty fields is used.
pub fn status_string(
    fe: u16,
    signal: SignalStatus,
    tuning: Option<&Tuning>,
    pids: &PidSet,
) -> String {
    let quality = if signal.lock {
        signal.quality.min(15)
    } else {
        0
    };
    let head = format!("{fe},{},{},{quality}", signal.level, u8::from(signal.lock));
    let Some(t) = tuning else {
        return format!("ver=1.0;src=1;tuner={head},,,,,,,,;pids={pids}");
    };
    let opt = |o: Option<String>| o.unwrap_or_default();
    let freq = fmt_milli_2dp(t.freq_khz());
    let msys = t.delivery_system.query_name();
    let mtype = opt(t.modulation.map(|m| m.query_name().to_owned()));
    let fec = opt(t.code_rate.map(CodeRate::query_name));
    let bw = opt(t.bandwidth_hz.map(|b| fmt_milli_min(b / 1000)));
    let sr = opt(t.symbol_rate.map(|s| s.to_string()));
    let plp = opt(t.plp.map(|p| p.to_string()));
    match t.family() {
        Family::Satellite => {
            let pol = opt(t.polarisation.map(|p| p.query_name().to_owned()));
            let dvbs = t.delivery_system == DeliverySystem::DvbS;
            let (mtype, plts, ro) = if dvbs {
                (String::new(), String::new(), String::new())
            } else {
                (
                    mtype,
                    opt(t.pilots.map(|p| p.query_name().to_owned())),
                    opt(t.roll_off.map(|r| r.query_name().to_owned())),
                )
            };
            format!(
                "ver=1.0;src={};tuner={head},{freq},{pol},{msys},{mtype},{plts},{ro},{sr},{fec};\
                 pids={pids}",
                t.src
            )
        }
        Family::Terrestrial => {
            let tmode = opt(t.transmission_mode.map(|m| m.query_name().to_owned()));
            let gi = opt(t.guard_interval.map(|g| g.query_name().to_owned()));
            let t2id = opt(t.t2_system_id.map(|x| x.to_string()));
            let sm = opt(t.siso_miso.map(|s| s.query_name().to_owned()));
            format!(
                "ver=1.1;tuner={head},{freq},{bw},{msys},{tmode},{mtype},{gi},{fec},{plp},{t2id},\
                 {sm};pids={pids}"
            )
        }
        Family::Cable => {
            let c2tft = opt(t.c2_tuning_type.map(|x| x.to_string()));
            let ds = opt(t.data_slice.map(|x| x.to_string()));
            let specinv = opt(t.spectral_inversion.map(|s| u8::from(s).to_string()));
            format!(
                "ver=1.2;tuner={head},{freq},{bw},{msys},{mtype},{sr},{c2tft},{ds},{plp},\
                 {specinv};pids={pids}"
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::satip::test_util::*;

    #[test]
    fn status_string_spec_examples() {
        // §4.2 example, DVB-S2.
        let s = spec("src=1&freq=11494&pol=h&ro=0.35&msys=dvbs2&mtype=8psk&plts=on&sr=22000&fec=23&pids=0,17,18,5100,5101");
        assert_eq!(
            status_string(2, locked(196, 13), Some(&s.tuning), &s.pids),
            "ver=1.0;src=1;tuner=2,196,1,13,11494.00,h,dvbs2,8psk,on,0.35,22000,23;pids=0,17,18,5100,5101"
        );
        // §4.2 example, DVB-T set up but idle.
        let s = spec(&TER_Q.replace("&pids=0,16,17,18", ""));
        assert_eq!(
            status_string(5, SignalStatus::default(), Some(&s.tuning), &s.pids),
            "ver=1.1;tuner=5,0,0,0,538.00,8,dvbt,8k,64qam,14,23,,,;pids=none"
        );
        // §4.3 DVB-T example.
        let s = spec(TER_Q);
        assert_eq!(
            status_string(5, locked(180, 11), Some(&s.tuning), &s.pids),
            "ver=1.1;tuner=5,180,1,11,538.00,8,dvbt,8k,64qam,14,23,,,;pids=0,16,17,18"
        );
        // §4.3 DVB-S example (our two-decimal frequency).
        let s = spec("src=1&freq=10744&pol=h&msys=dvbs&sr=22000&fec=56&pids=0,16,17");
        assert_eq!(
            status_string(1, locked(210, 9), Some(&s.tuning), &s.pids),
            "ver=1.0;src=1;tuner=1,210,1,9,10744.00,h,dvbs,,,,22000,56;pids=0,16,17"
        );
        // §4.3 DVB-S2 example.
        let s = spec("src=2&freq=11836&pol=h&ro=0.20&msys=dvbs2&mtype=8psk&plts=on&sr=27500&fec=910&pids=all");
        assert_eq!(
            status_string(3, locked(188, 11), Some(&s.tuning), &s.pids),
            "ver=1.0;src=2;tuner=3,188,1,11,11836.00,h,dvbs2,8psk,on,0.20,27500,910;pids=all"
        );
        // §4.3 DVB-C example, bw given in the query.
        let s = spec(&CAB_Q.replace("msys=dvbc", "bw=8&msys=dvbc"));
        assert_eq!(
            status_string(7, locked(150, 12), Some(&s.tuning), &s.pids),
            "ver=1.2;tuner=7,150,1,12,474.00,8,dvbc,256qam,6900,,,,0;pids=0,16,17"
        );
        // §4.3 DVB-T2 tail.
        let s = spec(
            "freq=538&bw=8&msys=dvbt2&tmode=32k&mtype=256qam&gi=1128&fec=35&plp=0&t2id=1&sm=0",
        );
        assert!(status_string(1, locked(1, 1), Some(&s.tuning), &s.pids)
            .ends_with(",dvbt2,32k,256qam,1128,35,0,1,0;pids=none"));
        // DVB-C2.
        let s = spec(C2_Q);
        assert_eq!(
            status_string(8, locked(100, 10), Some(&s.tuning), &s.pids),
            "ver=1.2;tuner=8,100,1,10,650.50,8,dvbc2,,,0,0,0,;pids=0"
        );
        // No tuning known.
        assert_eq!(
            status_string(1, SignalStatus::default(), None, &PidSet::None),
            "ver=1.0;src=1;tuner=1,0,0,0,,,,,,,,;pids=none"
        );
    }

    fn tuner_fields(s: &str) -> Vec<String> {
        let item = s
            .split(';')
            .find_map(|i| i.strip_prefix("tuner="))
            .expect("tuner item");
        item.split(',').map(str::to_owned).collect()
    }

    #[test]
    fn checklist_81_satellite_status_layout() {
        for q in [
            SAT_Q,
            "freq=10744&pol=v&msys=dvbs&sr=22000",
            "freq=11494&pol=h&msys=dvbs2&sr=22000&mtype=auto",
        ] {
            let s = spec(q);
            let st = status_string(1, locked(1, 1), Some(&s.tuning), &s.pids);
            assert!(
                st.starts_with(&format!("ver=1.0;src={};tuner=", s.tuning.src)),
                "{st}"
            );
            assert_eq!(tuner_fields(&st).len(), 12, "{st}");
        }
        assert_eq!(
            tuner_fields(&status_string(1, locked(1, 1), None, &PidSet::None)).len(),
            12
        );
    }

    #[test]
    fn checklist_82_terrestrial_status_layout() {
        for q in [TER_Q, "freq=538&msys=dvbt2&plp=1", "freq=575&msys=atsc"] {
            let s = spec(q);
            let st = status_string(1, locked(1, 1), Some(&s.tuning), &s.pids);
            assert!(st.starts_with("ver=1.1;tuner="), "{st}");
            assert_eq!(tuner_fields(&st).len(), 14, "{st}");
        }
    }

    #[test]
    fn checklist_83_cable_status_layout() {
        for q in [CAB_Q, C2_Q, "freq=575&msys=dvbcb"] {
            let s = spec(q);
            let st = status_string(1, locked(1, 1), Some(&s.tuning), &s.pids);
            assert!(st.starts_with("ver=1.2;tuner="), "{st}");
            assert_eq!(tuner_fields(&st).len(), 13, "{st}");
        }
    }

    #[test]
    fn checklist_84_signal_ranges() {
        let s = spec(SAT_Q);
        let st = status_string(
            1,
            SignalStatus {
                level: 255,
                lock: true,
                quality: 200,
            },
            Some(&s.tuning),
            &s.pids,
        );
        assert_eq!(&tuner_fields(&st)[1..4], ["255", "1", "15"]);
        let st = status_string(
            1,
            SignalStatus {
                level: 90,
                lock: false,
                quality: 12,
            },
            Some(&s.tuning),
            &s.pids,
        );
        assert_eq!(
            &tuner_fields(&st)[1..4],
            ["90", "0", "0"],
            "no lock → lock 0, quality 0"
        );
        // §4.4 scales.
        assert_eq!(level_from_dbm_milli(-65_000), 32);
        assert_eq!(level_from_dbm_milli(-25_000), 224);
        assert_eq!(level_from_dbm_milli(-100_000), 0);
        assert_eq!(level_from_dbm_milli(0), 255);
        assert_eq!(level_from_dbm_milli(i64::MIN), 0);
        assert_eq!(level_from_dbm_milli(i64::MAX), 255);
        assert_eq!(level_from_relative(0), 0);
        assert_eq!(level_from_relative(65_535), 240);
        assert_eq!(level_from_relative(32_768), 120);
        assert_eq!(quality_from_relative(0), 0);
        assert_eq!(quality_from_relative(65_535), 15);
        assert_eq!(quality_from_snr_milli_db(13_500), 6);
        assert_eq!(quality_from_snr_milli_db(-3_000), 0);
        assert_eq!(quality_from_snr_milli_db(90_000), 15);
    }

    #[test]
    fn checklist_86_pids_item() {
        let mut s = spec(SAT_Q);
        let st = |s: &StreamSpec| status_string(1, locked(1, 1), Some(&s.tuning), &s.pids);
        assert!(st(&s).ends_with(";pids=0,17,18,5100"));
        s.pids = PidSet::All;
        assert!(st(&s).ends_with(";pids=all"));
        s.pids = PidSet::None;
        assert!(st(&s).ends_with(";pids=none"));
        s.pids = PidSet::Set(BTreeSet::new());
        assert!(st(&s).ends_with(";pids=none"));
    }
}
