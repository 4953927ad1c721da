//! What a SAT>IP *client* needs (our remote tuners: a `[[satip_server]]` lending its tuners to
//! our pool, gst-plugin `tuners/satip_remote.rs`): the frontends an `X_SATIPCAP` announces,
//! the query that tunes a pool transponder on the remote, the PLAY query of a PID change, the
//! parts of an RTSP response, the payload of an RTP packet, and the remote's signal figures
//! from its RTCP `SES1` report.

use std::collections::BTreeSet;

use super::*;
use crate::tuner_pool::{DelSys, Transponder};

/// Most frontends one `X_SATIPCAP` group may announce (more is taken as a typo).
pub const MAX_REMOTE_FRONTENDS: u32 = 64;

/// The frontends `X_SATIPCAP` (`DVBS2-2,DVBT2-1,DVBC-1`) announces, one entry per frontend
/// with the delivery systems it tunes: DVBS2 → DVB-S/S2, DVBT → DVB-T, DVBT2 → DVB-T/T2, DVBC
/// and DVBC2 → DVB-C (annex A and C). A combo tuner listed in two groups counts twice (the
/// list cannot tell it apart from two tuners). `DVBS2-0` (no frontend at all) gives none.
pub fn frontends_from_satipcap(caps: &str) -> Result<Vec<Vec<DelSys>>, String> {
    let mut out = Vec::new();
    for part in caps.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (group, count) = part
            .rsplit_once('-')
            .ok_or_else(|| format!("{part:?} is not GROUP-COUNT (e.g. DVBT2-2)"))?;
        let count: u32 = count
            .trim()
            .parse()
            .map_err(|_| format!("{part:?}: {count:?} is not a number of frontends"))?;
        if count > MAX_REMOTE_FRONTENDS {
            return Err(format!(
                "{part:?}: more than {MAX_REMOTE_FRONTENDS} frontends in one group"
            ));
        }
        let delsys = match group.trim().to_ascii_uppercase().as_str() {
            "DVBS2" => vec![DelSys::DvbS, DelSys::DvbS2],
            "DVBT" => vec![DelSys::DvbT],
            "DVBT2" => vec![DelSys::DvbT, DelSys::DvbT2],
            "DVBC" | "DVBC2" => vec![DelSys::DvbCAnnexA, DelSys::DvbCAnnexC],
            g => {
                return Err(format!(
                    "{part:?}: unknown group {g:?} (DVBS2, DVBT, DVBT2, DVBC, DVBC2)"
                ))
            }
        };
        out.extend((0..count).map(|_| delsys.clone()));
    }
    if out.is_empty() && !caps.trim().to_ascii_uppercase().starts_with("DVBS2-0") {
        return Err(format!("{caps:?} lists no frontend"));
    }
    Ok(out)
}

/// The text of `<satip:X_SATIPCAP …>…</satip:X_SATIPCAP>` in a UPnP device description.
pub fn satipcap_in_description(xml: &str) -> Option<&str> {
    let start = xml.find("X_SATIPCAP")?;
    let open_end = start + xml[start..].find('>')? + 1;
    let close = open_end + xml[open_end..].find("</")?;
    Some(xml[open_end..close].trim())
}

/// The text of `<UDN>…</UDN>` (`uuid:…`) in a UPnP device description.
pub fn udn_in_description(xml: &str) -> Option<&str> {
    let start = xml.find("<UDN>")? + "<UDN>".len();
    let end = start + xml[start..].find("</UDN>")?;
    Some(xml[start..end].trim())
}

/// The dvbsrc `modulation` nick (`qam-256`, `8psk`, `auto`) as an `mtype` value; `None` for
/// auto or one SAT>IP has no name for.
fn mtype_of_dvbsrc(nick: &str) -> Option<String> {
    let n = nick.trim().to_ascii_lowercase();
    let v = match n.strip_prefix("qam-") {
        Some(q) if q != "auto" => format!("{q}qam"),
        Some(_) => return None,
        None => n,
    };
    (v != "auto" && !v.is_empty()).then_some(v)
}

/// The SAT>IP query (without `pids`) that tunes `t` on a remote server, with the details of
/// the lease's dvbsrc properties SAT>IP can carry (`modulation`, `diseqc-source`). Normalised
/// by our own parser: a transponder it cannot express is an error naming the value.
pub fn remote_tuning_query(t: &Transponder, props: &[(String, String)]) -> Result<String, String> {
    let prop = |name: &str| {
        props
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    let msys = DeliverySystem::from_query_name(&t.delsys.nick().replace('-', ""))
        .or(match t.delsys {
            DelSys::DvbCAnnexA => Some(DeliverySystem::DvbC),
            DelSys::DvbCAnnexB => Some(DeliverySystem::DvbCAnnexB),
            DelSys::DvbCAnnexC => Some(DeliverySystem::DvbCAnnexC),
            DelSys::Dtmb => Some(DeliverySystem::DmbTh),
            _ => None,
        })
        .ok_or_else(|| format!("SAT>IP has no msys for {}", t.delsys))?;
    let mhz = t.frequency_khz as f64 / 1000.0;
    let mut q = vec![format!("msys={}", msys.query_name()), format!("freq={mhz}")];
    if let Some(p) = t.polarisation {
        q.push(format!("pol={}", p.letter()));
    }
    if t.symbol_rate_ksym != 0 {
        q.push(format!("sr={}", t.symbol_rate_ksym));
    }
    if t.bandwidth_hz != 0 && msys.family() == Family::Terrestrial {
        q.push(format!("bw={}", t.bandwidth_hz as f64 / 1_000_000.0));
    }
    if t.stream_id >= 0 {
        match msys {
            DeliverySystem::DvbS2 => q.push(format!("isi={}", t.stream_id)),
            _ => q.push(format!("plp={}", t.stream_id)),
        }
    }
    if let Some(m) = prop("modulation").and_then(mtype_of_dvbsrc) {
        q.push(format!("mtype={m}"));
    }
    if msys.family() == Family::Satellite {
        if let Some(src) = prop("diseqc-source").and_then(|s| s.trim().parse::<i32>().ok()) {
            if (0..255).contains(&src) {
                q.push(format!("src={}", src + 1));
            }
        }
    }
    let text = q.join("&");
    let parsed = parse_query(&text).map_err(|e| format!("{text}: {e}"))?;
    let spec = StreamSpec::create(&parsed, DEFAULT_MAX_PIDS).map_err(|e| format!("{text}: {e}"))?;
    Ok(spec.tuning.canonical_query(None))
}

/// The `pids` query value of a PID set: `all`, `none` or the list.
pub fn pids_value(pids: &PidSet) -> String {
    pids.to_string()
}

/// The PLAY query that takes a remote stream from PID set `old` to `new`: `addpids`/`delpids`
/// between two lists, `pids=` otherwise; `None` when nothing changes.
pub fn pid_change_query(old: &PidSet, new: &PidSet) -> Option<String> {
    if old == new {
        return None;
    }
    match (old, new) {
        (PidSet::Set(a), PidSet::Set(b)) => {
            let add: BTreeSet<u16> = b.difference(a).copied().collect();
            let del: BTreeSet<u16> = a.difference(b).copied().collect();
            let list = |s: &BTreeSet<u16>| {
                s.iter()
                    .map(|p| p.to_string())
                    .collect::<Vec<_>>()
                    .join(",")
            };
            let mut parts = Vec::new();
            if !add.is_empty() {
                parts.push(format!("addpids={}", list(&add)));
            }
            if !del.is_empty() {
                parts.push(format!("delpids={}", list(&del)));
            }
            Some(parts.join("&"))
        }
        (_, new) => Some(format!("pids={new}")),
    }
}

/// The status line and headers of an RTSP response (`head` without the blank line).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponseHead {
    pub status: u16,
    pub reason: String,
    pub headers: Vec<(String, String)>,
}

impl ResponseHead {
    /// Parses `RTSP/1.0 200 OK\r\nCSeq: 1\r\n…`.
    pub fn parse(head: &str) -> Result<ResponseHead, String> {
        let mut lines = head.split("\r\n").flat_map(|l| l.split('\n'));
        let first = lines.next().unwrap_or_default();
        let mut it = first.splitn(3, ' ');
        let proto = it.next().unwrap_or_default();
        if !proto.starts_with("RTSP/") {
            return Err(format!("not an RTSP response: {first:?}"));
        }
        let status = it
            .next()
            .and_then(|s| s.parse::<u16>().ok())
            .ok_or_else(|| format!("no status code in {first:?}"))?;
        let reason = it.next().unwrap_or_default().trim().to_owned();
        let headers = lines
            .filter(|l| !l.trim().is_empty())
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
            .collect();
        Ok(ResponseHead {
            status,
            reason,
            headers,
        })
    }

    /// The first header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// `Content-Length`, 0 when absent or bad.
    pub fn content_length(&self) -> usize {
        self.header("Content-Length")
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0)
    }

    /// The session id and timeout (s) of the `Session` header (`12345678;timeout=60`).
    pub fn session(&self) -> Option<(String, Option<u32>)> {
        let v = self.header("Session")?;
        let mut parts = v.split(';');
        let id = parts.next()?.trim().to_owned();
        if id.is_empty() {
            return None;
        }
        let timeout = parts
            .filter_map(|p| p.trim().strip_prefix("timeout="))
            .find_map(|t| t.trim().parse().ok());
        Some((id, timeout))
    }

    /// The `com.ses.streamID` header.
    pub fn stream_id(&self) -> Option<u32> {
        self.header("com.ses.streamID")?.trim().parse().ok()
    }
}

/// The TS payload of an RTP packet (version 2, CSRCs, extension and padding skipped); `None`
/// for anything else.
pub fn rtp_payload(pkt: &[u8]) -> Option<&[u8]> {
    let b0 = *pkt.first()?;
    if b0 >> 6 != 2 || pkt.len() < 12 {
        return None;
    }
    let mut start = 12 + usize::from(b0 & 0x0F) * 4;
    if b0 & 0x10 != 0 {
        let ext = pkt.get(start..start + 4)?;
        start += 4 + usize::from(u16::from_be_bytes([ext[2], ext[3]])) * 4;
    }
    let mut end = pkt.len();
    if b0 & 0x20 != 0 {
        let pad = usize::from(*pkt.last()?);
        end = end.checked_sub(pad)?;
    }
    pkt.get(start..end)
}

/// The status string of the `SES1` APP packet in a compound RTCP packet, if one is there.
pub fn ses1_in_compound(mut packet: &[u8]) -> Option<String> {
    while packet.len() >= 4 {
        if packet[0] & 0xC0 != 0x80 {
            return None;
        }
        let len = (usize::from(u16::from_be_bytes([packet[2], packet[3]])) + 1) * 4;
        let this = packet.get(..len)?;
        if let Some((_, s)) = decode_rtcp_app_ses1(this) {
            return Some(s);
        }
        packet = &packet[len..];
    }
    None
}

/// The signal figures of a status string (`ver=1.1;tuner=1,200,1,12,…;pids=…`): frontend
/// number, level (0..255), lock, quality (0..15). `None` when it has no readable `tuner=`.
pub fn parse_tuner_status(status: &str) -> Option<(u16, SignalStatus)> {
    let tuner = status
        .split(';')
        .find_map(|p| p.trim().strip_prefix("tuner="))?;
    let mut f = tuner.split(',').map(str::trim);
    let fe = f.next()?.parse().ok()?;
    let level: u32 = f.next()?.parse().ok()?;
    let lock = f.next()? == "1";
    let quality: u32 = f.next()?.parse().ok()?;
    Some((
        fe,
        SignalStatus {
            level: level.min(255) as u8,
            lock,
            quality: quality.min(15) as u8,
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tuner_pool::Polarisation;

    #[test]
    fn satipcap_lists_frontends() {
        let f = frontends_from_satipcap("DVBS2-1,DVBT2-2,DVBC-1").unwrap();
        assert_eq!(f.len(), 4);
        assert_eq!(f[0], vec![DelSys::DvbS, DelSys::DvbS2]);
        assert_eq!(f[1], vec![DelSys::DvbT, DelSys::DvbT2]);
        assert_eq!(f[3], vec![DelSys::DvbCAnnexA, DelSys::DvbCAnnexC]);
        assert_eq!(
            frontends_from_satipcap(" dvbt-1 ").unwrap(),
            vec![vec![DelSys::DvbT]]
        );
        assert_eq!(frontends_from_satipcap("DVBS2-0").unwrap().len(), 0);
        assert!(frontends_from_satipcap("ATSC-1")
            .unwrap_err()
            .contains("ATSC"));
        assert!(frontends_from_satipcap("DVBT").is_err());
        assert!(frontends_from_satipcap("DVBT-x").is_err());
        assert!(frontends_from_satipcap("DVBT-1000").is_err());
        assert!(frontends_from_satipcap("").is_err());
    }

    #[test]
    fn satipcap_from_a_description() {
        let xml = "<device>\n<satip:X_SATIPCAP xmlns:satip=\"urn:ses-com:satip\">DVBS2-2,DVBT2-1</satip:X_SATIPCAP>\n</device>";
        assert_eq!(satipcap_in_description(xml), Some("DVBS2-2,DVBT2-1"));
        assert_eq!(satipcap_in_description("<device/>"), None);
        assert_eq!(
            udn_in_description("<device><UDN> uuid:3f2a9c10-5b7e </UDN></device>"),
            Some("uuid:3f2a9c10-5b7e")
        );
        assert_eq!(udn_in_description("<device><UDN>uuid:x"), None);
    }

    fn tp(delsys: DelSys, khz: u64) -> Transponder {
        Transponder {
            delsys,
            frequency_khz: khz,
            polarisation: None,
            symbol_rate_ksym: 0,
            bandwidth_hz: 0,
            stream_id: -1,
        }
    }

    #[test]
    fn tuning_queries_for_the_remote() {
        let mut t = tp(DelSys::DvbT, 506_000);
        t.bandwidth_hz = 8_000_000;
        let q = remote_tuning_query(&t, &[]).unwrap();
        assert!(q.contains("freq=506") && q.contains("msys=dvbt") && q.contains("bw=8"));
        let mut s = tp(DelSys::DvbS2, 11_494_000);
        s.polarisation = Some(Polarisation::Horizontal);
        s.symbol_rate_ksym = 22_000;
        let props = vec![
            ("modulation".to_owned(), "8psk".to_owned()),
            ("diseqc-source".to_owned(), "1".to_owned()),
        ];
        let q = remote_tuning_query(&s, &props).unwrap();
        for part in [
            "src=2",
            "freq=11494",
            "pol=h",
            "msys=dvbs2",
            "mtype=8psk",
            "sr=22000",
        ] {
            assert!(q.contains(part), "{part} in {q}");
        }
        let mut c = tp(DelSys::DvbCAnnexA, 346_000);
        c.symbol_rate_ksym = 6900;
        let props = vec![("modulation".to_owned(), "qam-256".to_owned())];
        let q = remote_tuning_query(&c, &props).unwrap();
        assert!(q.contains("msys=dvbc") && q.contains("mtype=256qam"), "{q}");
        let mut t2 = tp(DelSys::DvbT2, 474_000);
        t2.stream_id = 0;
        assert!(remote_tuning_query(&t2, &[]).unwrap().contains("plp=0"));
        assert!(remote_tuning_query(&tp(DelSys::Cmmb, 474_000), &[]).is_err());
    }

    #[test]
    fn pid_changes_become_addpids_and_delpids() {
        let s = |l: &[u16]| PidSet::from_pids(l.iter().copied());
        assert_eq!(pid_change_query(&s(&[0, 16]), &s(&[0, 16])), None);
        assert_eq!(
            pid_change_query(&s(&[0, 16]), &s(&[0, 16, 300, 301])).as_deref(),
            Some("addpids=300,301")
        );
        assert_eq!(
            pid_change_query(&s(&[0, 16, 300]), &s(&[0, 17])).as_deref(),
            Some("addpids=17&delpids=16,300")
        );
        assert_eq!(
            pid_change_query(&s(&[0]), &PidSet::All).as_deref(),
            Some("pids=all")
        );
        assert_eq!(
            pid_change_query(&PidSet::All, &s(&[0, 1])).as_deref(),
            Some("pids=0,1")
        );
        assert_eq!(
            pid_change_query(&s(&[0]), &PidSet::None).as_deref(),
            Some("pids=none")
        );
    }

    #[test]
    fn response_heads() {
        let h = ResponseHead::parse(
            "RTSP/1.0 200 OK\r\nCSeq: 2\r\nSession: 0A1B2C3D;timeout=30\r\ncom.ses.streamID: 7\r\nContent-Length: 12",
        )
        .unwrap();
        assert_eq!(h.status, 200);
        assert_eq!(h.reason, "OK");
        assert_eq!(h.header("cseq"), Some("2"));
        assert_eq!(h.session(), Some(("0A1B2C3D".to_owned(), Some(30))));
        assert_eq!(h.stream_id(), Some(7));
        assert_eq!(h.content_length(), 12);
        let h = ResponseHead::parse("RTSP/1.0 503 Service Unavailable\r\nCSeq: 3").unwrap();
        assert_eq!((h.status, h.session()), (503, None));
        assert!(ResponseHead::parse("HTTP/1.1 200 OK").is_err());
        assert!(ResponseHead::parse("RTSP/1.0 abc").is_err());
        assert!(ResponseHead::parse("").is_err());
    }

    #[test]
    fn rtp_payloads() {
        let mut p = crate::rtp::rtp_header(1, 2, 3).to_vec();
        p.extend_from_slice(&[0x47; 188]);
        assert_eq!(rtp_payload(&p).map(|s| s.len()), Some(188));
        // A CSRC and an extension of one word.
        let mut q = vec![
            0x91, 33, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3, 9, 9, 9, 9, 0xBE, 0xDE, 0, 1,
        ];
        q.extend_from_slice(&[1, 2, 3, 4]);
        q.extend_from_slice(&[0x47; 188]);
        assert_eq!(rtp_payload(&q).map(|s| s.len()), Some(188));
        assert_eq!(rtp_payload(&[0x80, 33]), None);
        assert_eq!(rtp_payload(&[0x40; 20]), None);
        let mut bad = vec![0x9F, 33];
        bad.extend_from_slice(&[0; 10]);
        assert_eq!(rtp_payload(&bad), None);
    }

    #[test]
    fn ses1_from_a_compound_report() {
        let status = "ver=1.1;tuner=1,200,1,12,506.00,8,dvbt,8k,64qam,14,23,,,;pids=0,16";
        let mut compound = Vec::new();
        crate::rtp::push_sender_report(&mut compound, 5, 0, 0, 0, 0);
        crate::rtp::push_sdes_cname(&mut compound, 5, "x");
        compound.extend(encode_rtcp_app_ses1(5, status));
        let s = ses1_in_compound(&compound).unwrap();
        assert_eq!(s, status);
        let (fe, sig) = parse_tuner_status(&s).unwrap();
        assert_eq!(fe, 1);
        assert_eq!(
            sig,
            SignalStatus {
                level: 200,
                lock: true,
                quality: 12
            }
        );
        assert_eq!(ses1_in_compound(&compound[..20]), None);
        assert_eq!(ses1_in_compound(&[]), None);
        assert_eq!(parse_tuner_status("ver=1.0;src=1;pids=0"), None);
        assert_eq!(parse_tuner_status("tuner=1,x,1,1"), None);
        let (_, s) = parse_tuner_status("ver=1.0;tuner=2,999,0,99").unwrap();
        assert_eq!((s.level, s.lock, s.quality), (255, false, 15));
    }
}
