//! Exporters (digest §10): dvbv5 channel file, VDR `channels.conf`, dvb-apps zap files and a
//! SAT>IP M3U playlist, from the channel database's [`Channel`]s.

use std::fmt::Write as _;

use crate::satip::{
    CodeRate, DeliverySystem, Family, GuardInterval, Modulation, PidSet, Pilots, Polarisation,
    RollOff, SisoMiso, TransmissionMode, Tuning,
};

use super::classify::{EsKind, ServiceClass};
use super::collector::EsInfo;
use super::db::Channel;
use super::initial::delivery_system_name;
use super::mux::orbital_label;

fn v5_modulation(m: Option<Modulation>) -> &'static str {
    match m {
        None => "QAM/AUTO",
        Some(Modulation::Qpsk) => "QPSK",
        Some(Modulation::Psk8) => "PSK/8",
        Some(Modulation::Apsk16) => "APSK/16",
        Some(Modulation::Apsk32) => "APSK/32",
        Some(Modulation::Qam16) => "QAM/16",
        Some(Modulation::Qam32) => "QAM/32",
        Some(Modulation::Qam64) => "QAM/64",
        Some(Modulation::Qam128) => "QAM/128",
        Some(Modulation::Qam256) => "QAM/256",
        Some(Modulation::Vsb8) => "VSB/8",
        Some(Modulation::Vsb16) => "VSB/16",
        Some(Modulation::Dqpsk) => "DQPSK",
        Some(_) => "QAM/AUTO",
    }
}

fn v5_fec(c: Option<CodeRate>, none: bool) -> String {
    match c {
        None if none => "NONE".into(),
        None => "AUTO".into(),
        Some(c) => {
            let (n, d) = c.fraction();
            format!("{n}/{d}")
        }
    }
}

fn v5_guard(g: Option<GuardInterval>) -> &'static str {
    match g {
        None => "AUTO",
        Some(GuardInterval::G1_4) => "1/4",
        Some(GuardInterval::G1_8) => "1/8",
        Some(GuardInterval::G1_16) => "1/16",
        Some(GuardInterval::G1_32) => "1/32",
        Some(GuardInterval::G1_128) => "1/128",
        Some(GuardInterval::G19_128) => "19/128",
        Some(GuardInterval::G19_256) => "19/256",
        Some(GuardInterval::Pn420) => "PN420",
        Some(GuardInterval::Pn595) => "PN595",
        Some(GuardInterval::Pn945) => "PN945",
    }
}

fn v5_tmode(t: Option<TransmissionMode>) -> &'static str {
    match t {
        None => "AUTO",
        Some(TransmissionMode::K1) => "1K",
        Some(TransmissionMode::K2) => "2K",
        Some(TransmissionMode::K4) => "4K",
        Some(TransmissionMode::K8) => "8K",
        Some(TransmissionMode::K16) => "16K",
        Some(TransmissionMode::K32) => "32K",
        Some(TransmissionMode::C1) => "C1",
        Some(TransmissionMode::C3780) => "C3780",
    }
}

fn on_off(v: Option<bool>) -> &'static str {
    match v {
        None => "AUTO",
        Some(true) => "ON",
        Some(false) => "OFF",
    }
}

fn v5_pol(p: Option<Polarisation>) -> &'static str {
    match p {
        None => "OFF",
        Some(Polarisation::Horizontal) => "HORIZONTAL",
        Some(Polarisation::Vertical) => "VERTICAL",
        Some(Polarisation::CircularLeft) => "LEFT",
        Some(Polarisation::CircularRight) => "RIGHT",
    }
}

fn v5_rolloff(r: Option<RollOff>) -> &'static str {
    match r {
        Some(RollOff::R035) => "35",
        Some(RollOff::R025) => "25",
        Some(RollOff::R020) => "20",
        _ => "AUTO",
    }
}

fn streams<'a>(c: &Channel<'a>) -> &'a [EsInfo] {
    c.service.pmt.as_ref().map_or(&[], |p| p.streams.as_slice())
}

/// dvbv5 channel file (`dvbv5-scan -o`, `dvbv5-zap -c`): `KEY = value`, tab-indented, a blank
/// line between entries, the system's properties in libdvbv5's order, DELIVERY_SYSTEM last.
pub fn dvbv5(channels: &[Channel<'_>]) -> String {
    let mut o = String::new();
    for c in channels {
        let s = c.service;
        let t = &c.mux.mux.tuning;
        let _ = writeln!(o, "[{}]", c.name().replace([']', '\n'], " "));
        let mut kv = |k: &str, v: String| {
            let _ = writeln!(o, "\t{k} = {v}");
        };
        if let Some(l) = s.lcn {
            kv("VCHANNEL", l.number.to_string());
        }
        kv("SERVICE_ID", s.sid.to_string());
        kv("NETWORK_ID", s.onid.to_string());
        kv("TRANSPORT_ID", s.tsid.to_string());
        let es = streams(c);
        let join = |f: &dyn Fn(&EsInfo) -> bool| {
            es.iter()
                .filter(|e| f(e))
                .map(|e| e.pid.to_string())
                .collect::<Vec<_>>()
                .join(" ")
        };
        let video = join(&|e| e.kind == EsKind::Video);
        if !video.is_empty() {
            kv("VIDEO_PID", video);
        }
        let audio = join(&|e| e.kind.is_audio());
        if !audio.is_empty() {
            kv("AUDIO_PID", audio);
        }
        let mut other_types: Vec<u8> = es
            .iter()
            .filter(|e| e.kind != EsKind::Video && !e.kind.is_audio())
            .map(|e| e.stream_type)
            .collect();
        other_types.sort_unstable_by(|a, b| b.cmp(a));
        other_types.dedup();
        for ty in other_types {
            kv(
                &format!("PID_{ty:02x}"),
                join(&|e| e.stream_type == ty && e.kind != EsKind::Video && !e.kind.is_audio()),
            );
        }
        let f = t.frequency.to_string();
        let msys = t.delivery_system;
        match msys {
            DeliverySystem::DvbT | DeliverySystem::DvbT2 | DeliverySystem::DvbH => {
                kv("FREQUENCY", f);
                kv("MODULATION", v5_modulation(t.modulation).into());
                kv("BANDWIDTH_HZ", t.bandwidth_hz.unwrap_or(0).to_string());
                kv("INVERSION", on_off(t.spectral_inversion).into());
                kv("CODE_RATE_HP", v5_fec(t.code_rate, false));
                kv("CODE_RATE_LP", "NONE".into());
                kv("GUARD_INTERVAL", v5_guard(t.guard_interval).into());
                kv("TRANSMISSION_MODE", v5_tmode(t.transmission_mode).into());
                kv("HIERARCHY", "NONE".into());
                if msys == DeliverySystem::DvbT2 {
                    if let Some(p) = t.plp {
                        kv("STREAM_ID", p.to_string());
                    }
                }
            }
            DeliverySystem::DvbC | DeliverySystem::DvbCAnnexB | DeliverySystem::DvbCAnnexC => {
                kv("FREQUENCY", f);
                kv("MODULATION", v5_modulation(t.modulation).into());
                kv("INVERSION", on_off(t.spectral_inversion).into());
                kv(
                    "SYMBOL_RATE",
                    (u64::from(t.symbol_rate.unwrap_or(0)) * 1000).to_string(),
                );
                kv("INNER_FEC", v5_fec(t.code_rate, true));
            }
            DeliverySystem::DvbS | DeliverySystem::DvbS2 => {
                kv("SAT_NUMBER", t.src.saturating_sub(1).to_string());
                if t.lnb_band().is_some() {
                    kv("LNB", "UNIVERSAL".into());
                }
                kv("FREQUENCY", f);
                kv("INVERSION", on_off(t.spectral_inversion).into());
                kv(
                    "SYMBOL_RATE",
                    (u64::from(t.symbol_rate.unwrap_or(0)) * 1000).to_string(),
                );
                kv("INNER_FEC", v5_fec(t.code_rate, false));
                if msys == DeliverySystem::DvbS2 {
                    kv("MODULATION", v5_modulation(t.modulation).into());
                    kv("PILOT", on_off(t.pilots.map(|p| p == Pilots::On)).into());
                    kv("ROLLOFF", v5_rolloff(t.roll_off).into());
                }
                kv("POLARIZATION", v5_pol(t.polarisation).into());
                if msys == DeliverySystem::DvbS2 {
                    if let Some(i) = t.input_stream_id {
                        kv("STREAM_ID", i.to_string());
                    }
                }
            }
            _ => {
                kv("FREQUENCY", f);
                kv("MODULATION", v5_modulation(t.modulation).into());
                if let Some(b) = t.bandwidth_hz {
                    kv("BANDWIDTH_HZ", b.to_string());
                }
                kv("INVERSION", on_off(t.spectral_inversion).into());
            }
        }
        kv("DELIVERY_SYSTEM", delivery_system_name(msys).into());
        o.push('\n');
    }
    o
}

fn vdr_fec(c: CodeRate) -> String {
    let (n, d) = c.fraction();
    format!("{n}{d}")
}

fn vdr_params(t: &Tuning) -> String {
    let mut p: Vec<(char, String)> = Vec::new();
    let msys = t.delivery_system;
    let s2 = msys == DeliverySystem::DvbS2;
    let t2 = msys == DeliverySystem::DvbT2;
    let family = t.family();
    if let Some(b) = t.bandwidth_hz.filter(|_| family == Family::Terrestrial) {
        p.push((
            'B',
            if b == 1_712_000 {
                "1712".into()
            } else {
                (b / 1_000_000).to_string()
            },
        ));
    }
    match (t.code_rate, family) {
        (Some(c), _) => p.push(('C', vdr_fec(c))),
        (None, Family::Cable) => p.push(('C', "0".into())),
        _ => {}
    }
    if msys == DeliverySystem::DvbT {
        p.push(('D', "0".into()));
    }
    if let Some(g) = t.guard_interval {
        let v = match g {
            GuardInterval::G1_4 => "4",
            GuardInterval::G1_8 => "8",
            GuardInterval::G1_16 => "16",
            GuardInterval::G1_32 => "32",
            GuardInterval::G1_128 => "128",
            GuardInterval::G19_128 => "19128",
            GuardInterval::G19_256 => "19256",
            _ => "",
        };
        if !v.is_empty() {
            p.push(('G', v.into()));
        }
    }
    if let Some(i) = t.spectral_inversion {
        p.push(('I', if i { "1" } else { "0" }.into()));
    }
    let m = match t.modulation {
        Some(Modulation::Qpsk) => Some("2"),
        Some(Modulation::Psk8) => Some("5"),
        Some(Modulation::Apsk16) => Some("6"),
        Some(Modulation::Apsk32) => Some("7"),
        Some(Modulation::Vsb8) => Some("10"),
        Some(Modulation::Dqpsk) => Some("12"),
        Some(Modulation::Qam16) => Some("16"),
        Some(Modulation::Qam32) => Some("32"),
        Some(Modulation::Qam64) => Some("64"),
        Some(Modulation::Qam128) => Some("128"),
        Some(Modulation::Qam256) => Some("256"),
        _ => None,
    };
    if let Some(m) = m {
        p.push(('M', m.into()));
    }
    if s2 {
        if let Some(pl) = t.pilots {
            p.push(('N', if pl == Pilots::On { "1" } else { "0" }.into()));
        }
        if let Some(r) = t.roll_off {
            let v = match r {
                RollOff::R035 => "35",
                RollOff::R025 => "25",
                RollOff::R020 => "20",
                _ => "",
            };
            if !v.is_empty() {
                p.push(('O', v.into()));
            }
        }
    }
    if s2 || t2 {
        p.push(('P', t.stream_id().unwrap_or(0).to_string()));
    }
    if t2 {
        if let Some(q) = t.t2_system_id {
            p.push(('Q', q.to_string()));
        }
    }
    if matches!(family, Family::Satellite | Family::Terrestrial) {
        p.push(('S', if s2 || t2 { "1" } else { "0" }.into()));
    }
    if let Some(tm) = t.transmission_mode {
        let v = match tm {
            TransmissionMode::K1 => "1",
            TransmissionMode::K2 => "2",
            TransmissionMode::K4 => "4",
            TransmissionMode::K8 => "8",
            TransmissionMode::K16 => "16",
            TransmissionMode::K32 => "32",
            _ => "",
        };
        if !v.is_empty() {
            p.push(('T', v.into()));
        }
    }
    if t2 {
        let x = match t.siso_miso {
            Some(SisoMiso::Miso) => "1",
            _ => "0",
        };
        p.push(('X', x.into()));
    }
    if family == Family::Terrestrial && matches!(msys, DeliverySystem::DvbT | DeliverySystem::DvbT2)
    {
        p.push(('Y', "0".into()));
    }
    p.sort_by_key(|(k, _)| *k);
    let mut out = String::new();
    if let Some(pol) = t.polarisation.filter(|_| family == Family::Satellite) {
        out.push_str(&pol.query_name().to_ascii_uppercase());
    }
    for (k, v) in p {
        out.push(k);
        out.push_str(&v);
    }
    out
}

/// VDR `channels.conf`: 13 fields per line, `:` in names written as `|`.
pub fn vdr(channels: &[Channel<'_>]) -> String {
    let mut o = String::new();
    for c in channels {
        let s = c.service;
        let t = &c.mux.mux.tuning;
        let mut name = c.name().replace(':', "|").replace('\n', " ");
        if let Some(p) = s.provider.as_deref().filter(|p| !p.is_empty()) {
            name.push(';');
            name.push_str(&p.replace(':', "|").replace('\n', " "));
        }
        let family = t.family();
        let freq = match family {
            Family::Satellite => (t.frequency / 1000).to_string(),
            Family::Cable => (t.frequency / 1000).to_string(),
            Family::Terrestrial => t.frequency.to_string(),
        };
        let source = match (family, t.delivery_system) {
            (Family::Satellite, _) => match c.mux.mux.orbital {
                Some(o) => format!("S{}", orbital_label(o)),
                None => "S".into(),
            },
            (Family::Cable, _) => "C".into(),
            (_, DeliverySystem::Atsc) => "A".into(),
            _ => "T".into(),
        };
        let srate = match family {
            Family::Terrestrial => 0,
            _ => t.symbol_rate.unwrap_or(0),
        };
        let es = streams(c);
        let pcr = s.pmt.as_ref().map_or(0x1FFF, |p| p.pcr_pid);
        let vpid = match es.iter().find(|e| e.kind == EsKind::Video) {
            None => "0".to_string(),
            Some(v) => {
                let mut x = v.pid.to_string();
                if pcr != v.pid && pcr != 0x1FFF {
                    let _ = write!(x, "+{pcr}");
                }
                let _ = write!(x, "={}", v.stream_type);
                x
            }
        };
        let lang = |e: &EsInfo| {
            e.language
                .as_ref()
                .map(|l| format!("={l}"))
                .unwrap_or_default()
        };
        let apids: Vec<String> = es
            .iter()
            .filter(|e| e.kind == EsKind::Audio)
            .map(|e| format!("{}{}@{}", e.pid, lang(e), e.stream_type))
            .collect();
        let dpids: Vec<String> = es
            .iter()
            .filter(|e| matches!(e.kind, EsKind::Ac3 | EsKind::Eac3))
            .map(|e| {
                let tag = if e.kind == EsKind::Ac3 { 106 } else { 122 };
                format!("{}{}@{tag}", e.pid, lang(e))
            })
            .collect();
        let mut apid = if apids.is_empty() {
            "0".to_string()
        } else {
            apids.join(",")
        };
        if !dpids.is_empty() {
            apid.push(';');
            apid.push_str(&dpids.join(","));
        }
        let tpid_main = es
            .iter()
            .find(|e| e.kind == EsKind::Teletext)
            .map_or("0".to_string(), |e| e.pid.to_string());
        let subs: Vec<String> = es
            .iter()
            .filter(|e| e.kind == EsKind::Subtitle)
            .map(|e| format!("{}{}", e.pid, lang(e)))
            .collect();
        let tpid = if subs.is_empty() {
            tpid_main
        } else {
            format!("{tpid_main};{}", subs.join(","))
        };
        let ca = match s.pmt.as_ref().map(|p| p.ca_system_ids.as_slice()) {
            Some(ids) if !ids.is_empty() => ids
                .iter()
                .map(|i| format!("{i:X}"))
                .collect::<Vec<_>>()
                .join(","),
            _ => "0".into(),
        };
        let _ = writeln!(
            o,
            "{name}:{freq}:{}:{source}:{srate}:{vpid}:{apid}:{tpid}:{ca}:{}:{}:{}:0",
            vdr_params(t),
            s.sid,
            s.onid,
            s.tsid
        );
    }
    o
}

fn zap_fec(c: Option<CodeRate>, none: bool) -> String {
    match c {
        None if none => "FEC_NONE".into(),
        None => "FEC_AUTO".into(),
        Some(c) => {
            let (n, d) = c.fraction();
            format!("FEC_{n}_{d}")
        }
    }
}

fn zap_mod(m: Option<Modulation>) -> &'static str {
    match m {
        Some(Modulation::Qpsk) => "QPSK",
        Some(Modulation::Qam16) => "QAM_16",
        Some(Modulation::Qam32) => "QAM_32",
        Some(Modulation::Qam64) => "QAM_64",
        Some(Modulation::Qam128) => "QAM_128",
        Some(Modulation::Qam256) => "QAM_256",
        Some(Modulation::Psk8) => "8PSK",
        Some(Modulation::Vsb8) => "8VSB",
        _ => "QAM_AUTO",
    }
}

/// dvb-apps zap lines: tzap (DVB-T/T2), czap (DVB-C), szap (satellite, 8 fields), azap (ATSC).
/// One video and one audio PID; T2/S2 parameters have no place in these formats.
pub fn zap(channels: &[Channel<'_>]) -> String {
    let mut o = String::new();
    for c in channels {
        let s = c.service;
        let t = &c.mux.mux.tuning;
        let name = c.name().replace(':', "|").replace('\n', " ");
        let es = streams(c);
        let vpid = es
            .iter()
            .find(|e| e.kind == EsKind::Video)
            .map_or(0, |e| e.pid);
        let apid = es
            .iter()
            .find(|e| e.kind == EsKind::Audio)
            .or_else(|| es.iter().find(|e| e.kind.is_audio()))
            .map_or(0, |e| e.pid);
        let inv = match t.spectral_inversion {
            None => "INVERSION_AUTO",
            Some(true) => "INVERSION_ON",
            Some(false) => "INVERSION_OFF",
        };
        let line = match (t.family(), t.delivery_system) {
            (Family::Terrestrial, DeliverySystem::Atsc) => {
                format!("{name}:{}:8VSB:{vpid}:{apid}:{}", t.frequency, s.sid)
            }
            (Family::Terrestrial, _) => {
                let bw = match t.bandwidth_hz {
                    Some(1_712_000) => "BANDWIDTH_1.712_MHZ".to_string(),
                    Some(b) => format!("BANDWIDTH_{}_MHZ", b / 1_000_000),
                    None => "BANDWIDTH_AUTO".into(),
                };
                let tm = match t.transmission_mode {
                    None | Some(TransmissionMode::C1 | TransmissionMode::C3780) => {
                        "TRANSMISSION_MODE_AUTO".to_string()
                    }
                    Some(m) => format!("TRANSMISSION_MODE_{}", v5_tmode(Some(m))),
                };
                let gi = match t.guard_interval {
                    None
                    | Some(GuardInterval::Pn420 | GuardInterval::Pn595 | GuardInterval::Pn945) => {
                        "GUARD_INTERVAL_AUTO".to_string()
                    }
                    Some(g) => format!("GUARD_INTERVAL_{}", v5_guard(Some(g)).replace('/', "_")),
                };
                format!(
                    "{name}:{}:{inv}:{bw}:{}:FEC_NONE:{}:{tm}:{gi}:HIERARCHY_NONE:{vpid}:{apid}:{}",
                    t.frequency,
                    zap_fec(t.code_rate, false),
                    zap_mod(t.modulation),
                    s.sid
                )
            }
            (Family::Cable, _) => format!(
                "{name}:{}:{inv}:{}:{}:{}:{vpid}:{apid}:{}",
                t.frequency,
                u64::from(t.symbol_rate.unwrap_or(0)) * 1000,
                zap_fec(t.code_rate, true),
                zap_mod(t.modulation),
                s.sid
            ),
            (Family::Satellite, _) => format!(
                "{name}:{}:{}:{}:{}:{vpid}:{apid}:{}",
                t.frequency / 1000,
                t.polarisation.map_or("h", |p| p.query_name()),
                t.src.saturating_sub(1),
                t.symbol_rate.unwrap_or(0),
                s.sid
            ),
        };
        o.push_str(&line);
        o.push('\n');
    }
    o
}

/// The SAT>IP URL query of a channel: the tuning (no `src` outside satellite) and `pids=` with
/// 0, the PMT PID, a separate PCR PID and every ES PID.
pub fn satip_query(c: &Channel<'_>) -> String {
    let s = c.service;
    let t = &c.mux.mux.tuning;
    let mut pids = vec![0u16, s.pmt_pid];
    if let Some(p) = &s.pmt {
        if p.pcr_pid != 0x1FFF {
            pids.push(p.pcr_pid);
        }
        pids.extend(p.streams.iter().map(|e| e.pid));
    }
    let set = PidSet::from_pids(pids);
    let mut tuning = t.clone();
    tuning.fe = None;
    let q = tuning.canonical_query(Some(&set));
    if t.family() == Family::Satellite {
        q
    } else {
        q.strip_prefix(&format!("src={}&", t.src))
            .map_or(q.clone(), str::to_owned)
    }
}

/// SAT>IP M3U (§10.4 [OURS]): listed services by number, `#EXTINF:0` with `tvg-chno`,
/// `tvg-id` (hex ONID.TSID.SID), `group-title` and `radio="true"`, then the RTSP URL on `base`
/// (e.g. `rtsp://127.0.0.1:554/`).
pub fn m3u(channels: &[Channel<'_>], base: &str) -> String {
    let mut o = String::from("#EXTM3U\n");
    for c in channels.iter().filter(|c| c.service.listed) {
        let s = c.service;
        let group = match s.class {
            ServiceClass::Tv => "TV",
            ServiceClass::Radio => "Radio",
            ServiceClass::Data => "Data",
            ServiceClass::Other => "Other",
        };
        let radio = if s.class == ServiceClass::Radio {
            " radio=\"true\""
        } else {
            ""
        };
        let _ = writeln!(
            o,
            "#EXTINF:0 tvg-chno=\"{n}\" tvg-id=\"{:x}.{:x}.{:x}\" group-title=\"{group}\"{radio},{n}. {}",
            s.onid,
            s.tsid,
            s.sid,
            c.name().replace(['\n', '\r'], " "),
            n = s.number
        );
        let _ = writeln!(o, "{base}?{}", satip_query(c));
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::satip::parse_query;
    use crate::scan::collector::{CollectorConfig, PmtInfo};
    use crate::scan::db::{ChannelDb, DbMux, DbPolicy, DbService};
    use crate::scan::fixtures::{collect, network};
    use crate::scan::mux::{blank_tuning, Mux};
    use std::path::{Path, PathBuf};
    use std::process::Command;

    fn es(pid: u16, stream_type: u8, kind: EsKind, lang: Option<&str>) -> EsInfo {
        EsInfo {
            pid,
            stream_type,
            kind,
            language: lang.map(str::to_owned),
        }
    }

    fn svc(
        onid: u16,
        tsid: u16,
        sid: u16,
        number: u32,
        name: &str,
        streams: Vec<EsInfo>,
        pcr: u16,
    ) -> DbService {
        DbService {
            onid,
            tsid,
            sid,
            number,
            name: Some(name.into()),
            provider: Some("ACME".into()),
            service_type: Some(0x19),
            class: ServiceClass::Tv,
            scrambled: false,
            listed: true,
            running_status: Some(4),
            pmt_pid: sid,
            pmt: Some(PmtInfo {
                pcr_pid: pcr,
                streams,
                ca_system_ids: vec![],
            }),
            lcn: None,
            misses: 0,
            seq: u64::from(number),
        }
    }

    /// The fixture network scanned into a database, plus the digest's §10.2 examples: a
    /// DVB-T service with teletext and subtitles, DVB-C and DVB-S2 services.
    fn db() -> ChannelDb {
        let net = network();
        let mut db = ChannelDb::new();
        for m in &net {
            db.apply(
                &collect(m, &net, CollectorConfig::default()),
                DbPolicy::default(),
            );
        }
        let mut t = blank_tuning(DeliverySystem::DvbT, 522_000_000);
        t.bandwidth_hz = Some(8_000_000);
        t.modulation = Some(Modulation::Qam64);
        t.code_rate = Some(CodeRate::R2_3);
        t.guard_interval = Some(GuardInterval::G1_8);
        t.transmission_mode = Some(TransmissionMode::K8);
        let mut c = blank_tuning(DeliverySystem::DvbC, 346_000_000);
        c.symbol_rate = Some(6900);
        c.modulation = Some(Modulation::Qam256);
        let mut s = blank_tuning(DeliverySystem::DvbS2, 11_494_000);
        s.polarisation = Some(Polarisation::Horizontal);
        s.symbol_rate = Some(22_000);
        s.code_rate = Some(CodeRate::R2_3);
        s.modulation = Some(Modulation::Psk8);
        s.roll_off = Some(RollOff::R035);
        s.pilots = Some(Pilots::On);
        for (tuning, tsid, orbital) in [(t, 14, None), (c, 2, None), (s, 3, Some(192))] {
            db.muxes.push(DbMux {
                mux: Mux { tuning, orbital },
                onid: Some(0x2174),
                tsid: Some(tsid),
                network_id: None,
                network_name: None,
                misses: 0,
                last_verdict: None,
            });
        }
        db.services.push(svc(
            0x2174,
            14,
            257,
            10,
            "Example: One",
            vec![
                es(1001, 2, EsKind::Video, None),
                es(1002, 3, EsKind::Audio, Some("eng")),
                es(1003, 3, EsKind::Audio, Some("fra")),
                es(1004, 6, EsKind::Teletext, Some("eng")),
                es(1005, 6, EsKind::Subtitle, Some("eng")),
            ],
            1001,
        ));
        db.services.push(svc(
            0x2174,
            2,
            1025,
            11,
            "Example C",
            vec![
                es(1025, 2, EsKind::Video, None),
                es(1026, 3, EsKind::Audio, Some("deu")),
            ],
            1025,
        ));
        let mut s2 = svc(
            0x2174,
            3,
            1537,
            12,
            "Example S2",
            vec![
                es(1537, 27, EsKind::Video, None),
                es(1538, 3, EsKind::Audio, Some("eng")),
                es(1539, 6, EsKind::Eac3, Some("eng")),
            ],
            1536,
        );
        s2.pmt.as_mut().unwrap().ca_system_ids = vec![0x0B00, 0x1702];
        db.services.push(s2);
        db
    }

    fn line_of<'a>(text: &'a str, name: &str) -> &'a str {
        text.lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("no line for {name} in\n{text}"))
    }

    #[test]
    fn dvbv5_layout() {
        // §13 item 43.
        let db = db();
        let out = dvbv5(&db.channels());
        let one = out
            .split("\n\n")
            .find(|e| e.starts_with("[Example: One]"))
            .unwrap();
        assert_eq!(
            one,
            "[Example: One]\n\tSERVICE_ID = 257\n\tNETWORK_ID = 8564\n\tTRANSPORT_ID = 14\n\tVIDEO_PID = 1001\n\tAUDIO_PID = 1002 1003\n\tPID_06 = 1004 1005\n\tFREQUENCY = 522000000\n\tMODULATION = QAM/64\n\tBANDWIDTH_HZ = 8000000\n\tINVERSION = AUTO\n\tCODE_RATE_HP = 2/3\n\tCODE_RATE_LP = NONE\n\tGUARD_INTERVAL = 1/8\n\tTRANSMISSION_MODE = 8K\n\tHIERARCHY = NONE\n\tDELIVERY_SYSTEM = DVBT"
        );
        assert!(out.contains("[Example One]\n\tVCHANNEL = 1\n\tSERVICE_ID = 257\n"));
        let s2 = out
            .split("\n\n")
            .find(|e| e.starts_with("[Example S2]"))
            .unwrap();
        assert!(s2.contains("\tFREQUENCY = 11494000\n\tINVERSION = AUTO\n\tSYMBOL_RATE = 22000000\n\tINNER_FEC = 2/3\n\tMODULATION = PSK/8\n\tPILOT = ON\n\tROLLOFF = 35\n\tPOLARIZATION = HORIZONTAL\n\tDELIVERY_SYSTEM = DVBS2"), "{s2}");
        assert!(out.ends_with("\n\n"));
        // Our own reader takes the tuning back.
        let back = crate::scan::initial::parse_dvbv5(&out).unwrap();
        assert_eq!(back.len(), db.channels().len());
        for (e, c) in back.iter().zip(db.channels()) {
            assert_eq!(
                e.mux.tuning.frequency, c.mux.mux.tuning.frequency,
                "{}",
                e.name
            );
            assert_eq!(
                e.mux.tuning.delivery_system,
                c.mux.mux.tuning.delivery_system
            );
        }
    }

    #[test]
    fn vdr_lines_follow_vdrs_writer() {
        // §13 items 47, 48, 49.
        let db = db();
        let out = vdr(&db.channels());
        assert_eq!(
            line_of(&out, "Example| One"),
            "Example| One;ACME:522000000:B8C23D0G8M64S0T8Y0:T:0:1001=2:1002=eng@3,1003=fra@3:1004;1005=eng:0:257:8564:14:0"
        );
        assert_eq!(
            line_of(&out, "Example C"),
            "Example C;ACME:346000:C0M256:C:6900:1025=2:1026=deu@3:0:0:1025:8564:2:0"
        );
        assert_eq!(
            line_of(&out, "Example S2"),
            "Example S2;ACME:11494:HC23M5N1O35P0S1:S19.2E:22000:1537+1536=27:1538=eng@3;1539=eng@122:0:B00,1702:1537:8564:3:0"
        );
        let hidden = line_of(&out, "Hidden HD");
        assert!(
            hidden.contains(":474000000:B8P1Q32769S1X0Y0:T:0:"),
            "{hidden}"
        );
        let radio = line_of(&out, "Example Radio");
        assert!(
            radio.split(':').nth(5) == Some("0"),
            "radio VPID 0: {radio}"
        );
        for l in out.lines() {
            assert_eq!(l.split(':').count(), 13, "{l}");
        }
    }

    #[test]
    fn zap_lines() {
        // §13 item 50.
        let db = db();
        let out = zap(&db.channels());
        assert_eq!(
            line_of(&out, "Example| One"),
            "Example| One:522000000:INVERSION_AUTO:BANDWIDTH_8_MHZ:FEC_2_3:FEC_NONE:QAM_64:TRANSMISSION_MODE_8K:GUARD_INTERVAL_1_8:HIERARCHY_NONE:1001:1002:257"
        );
        assert_eq!(
            line_of(&out, "Example C"),
            "Example C:346000000:INVERSION_AUTO:6900000:FEC_NONE:QAM_256:1025:1026:1025"
        );
        assert_eq!(
            line_of(&out, "Example S2"),
            "Example S2:11494:h:0:22000:1537:1538:1537"
        );
    }

    #[test]
    fn m3u_entries() {
        // §13 items 51, 52.
        let db = db();
        let out = m3u(&db.channels(), "rtsp://127.0.0.1:554/");
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines[0], "#EXTM3U");
        assert_eq!(
            lines[1],
            "#EXTINF:0 tvg-chno=\"1\" tvg-id=\"2174.4.101\" group-title=\"TV\",1. Example One"
        );
        assert_eq!(
            lines[2],
            "rtsp://127.0.0.1:554/?freq=506&msys=dvbt&mtype=64qam&bw=8&pids=0,272,273,274"
        );
        let radio = lines
            .iter()
            .position(|l| l.contains("Example Radio"))
            .unwrap();
        assert_eq!(
            lines[radio],
            "#EXTINF:0 tvg-chno=\"3\" tvg-id=\"2174.4.103\" group-title=\"Radio\" radio=\"true\",3. Example Radio"
        );
        // Separate PCR PID 0x1FF0 = 8176 is in the set.
        assert!(
            lines[radio + 1].ends_with("&pids=0,304,306,8176"),
            "{}",
            lines[radio + 1]
        );
        // Every URL parses as a SAT>IP query and resolves.
        for url in lines.iter().filter(|l| l.starts_with("rtsp://")) {
            let q = parse_query(url.split_once('?').unwrap().1).unwrap();
            q.tuning.resolve().unwrap_or_else(|e| panic!("{url}: {e}"));
            assert!(q.pids.is_some());
        }
        assert!(out.contains("?src=1&freq=11494&pol=h&ro=0.35&msys=dvbs2&mtype=8psk&plts=on&sr=22000&fec=23&pids=0,1536,1537,1538,1539"));
    }

    // ---- dvb-format-convert (Debian dvb-tools): a parser nobody here wrote ----

    fn tool() -> PathBuf {
        let found = std::env::var_os("PATH").and_then(|p| {
            std::env::split_paths(&p)
                .map(|d| d.join("dvb-format-convert"))
                .find(|f| f.is_file())
        });
        found.expect("dvb-format-convert not found: install Debian package dvb-tools")
    }

    fn tempdir(tag: &str) -> PathBuf {
        let d =
            std::env::temp_dir().join(format!("dvb2ip-scan-export-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn convert(dir: &Path, input: &str, from: &str, to: &str, delsys: Option<&str>) -> String {
        let i = dir.join(format!("in.{}", from.to_ascii_lowercase()));
        let o = dir.join(format!("out.{}", to.to_ascii_lowercase()));
        std::fs::write(&i, input).unwrap();
        let mut cmd = Command::new(tool());
        cmd.args(["-I", from, "-O", to]);
        if let Some(s) = delsys {
            cmd.args(["-s", s]);
        }
        let r = cmd.arg(&i).arg(&o).output().unwrap();
        assert!(
            r.status.success(),
            "dvb-format-convert -I {from} -O {to} failed: {}\n{}\ninput:\n{input}",
            String::from_utf8_lossy(&r.stdout),
            String::from_utf8_lossy(&r.stderr)
        );
        std::fs::read_to_string(&o).unwrap()
    }

    #[test]
    fn dvb_format_convert_reads_our_dvbv5_export() {
        // §13 item 44: DVBV5 → DVBV5 keeps every entry and PID; DVBV5 → VDR names them all.
        let db = db();
        let chans = db.channels();
        let ours = dvbv5(&chans);
        let dir = tempdir("v5");
        let back = convert(&dir, &ours, "DVBV5", "DVBV5", None);
        let theirs = crate::scan::initial::parse_dvbv5(&back).unwrap();
        assert_eq!(theirs.len(), chans.len(), "{back}");
        for c in &chans {
            let entry = back
                .split("\n\n")
                .find(|e| e.trim_start().starts_with(&format!("[{}]", c.name())))
                .unwrap_or_else(|| panic!("{} missing in\n{back}", c.name()));
            assert!(
                entry.contains(&format!("SERVICE_ID = {}", c.service.sid)),
                "{entry}"
            );
            assert!(
                entry.contains(&format!("FREQUENCY = {}", c.mux.mux.tuning.frequency)),
                "{entry}"
            );
            for e in streams(c) {
                assert!(
                    entry.contains(&e.pid.to_string()),
                    "PID {} lost: {entry}",
                    e.pid
                );
            }
        }
        let vdr_out = convert(&dir, &ours, "DVBV5", "VDR", None);
        // libdvbv5's VDR writer keeps a ':' in a name as it is (VDR would read a wrong field
        // count); it writes `name,VCHANNEL` and the frequency / 1000.
        for c in &chans {
            let name = c.name();
            let rest = vdr_out
                .lines()
                .find_map(|l| l.strip_prefix(name.as_str()))
                .unwrap_or_else(|| panic!("{name} missing in\n{vdr_out}"));
            let f = c.mux.mux.tuning.frequency / 1000;
            assert_eq!(
                rest.split(':').nth(1),
                Some(f.to_string().as_str()),
                "{rest}"
            );
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn dvb_format_convert_reads_our_zap_and_writes_zap_from_our_dvbv5() {
        // §13 item 45, and ZAP → DVBV5 on our tzap lines.
        let db = db();
        let terrestrial: Vec<Channel<'_>> = db
            .channels()
            .into_iter()
            .filter(|c| c.mux.mux.tuning.delivery_system == DeliverySystem::DvbT)
            .collect();
        assert!(terrestrial.len() >= 4);
        let dir = tempdir("zap");
        let z = convert(&dir, &dvbv5(&terrestrial), "DVBV5", "ZAP", Some("DVBT"));
        assert_eq!(z.lines().count(), terrestrial.len(), "{z}");
        let v5 = convert(&dir, &zap(&terrestrial), "ZAP", "DVBV5", Some("DVBT"));
        let entries = crate::scan::initial::parse_dvbv5(&v5).unwrap();
        assert_eq!(entries.len(), terrestrial.len(), "{v5}");
        for (e, c) in entries.iter().zip(&terrestrial) {
            assert_eq!(e.name, c.name().replace(':', "|"));
            assert_eq!(e.mux.tuning.frequency, c.mux.mux.tuning.frequency);
        }
        let cable: Vec<Channel<'_>> = db
            .channels()
            .into_iter()
            .filter(|c| c.mux.mux.family() == Family::Cable)
            .collect();
        let v5 = convert(&dir, &zap(&cable), "ZAP", "DVBV5", Some("DVBC/ANNEX_A"));
        assert!(
            v5.contains("[Example C]") && v5.contains("FREQUENCY = 346000000"),
            "{v5}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
