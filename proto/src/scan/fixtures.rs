//! Test fixtures: a small network built with the `si.rs` writers the emulator uses, and a
//! helper that runs a [`MuxCollector`] over its sections.

use crate::psi::Section;
use crate::satip::{DeliverySystem, Modulation};
use crate::si;

use super::collector::{CollectorConfig, MuxCollector, MuxResult, Poll};
use super::mux::{blank_tuning, Mux};

/// A service of a fixture mux.
#[derive(Debug, Clone)]
pub struct FxService {
    pub sid: u16,
    pub pmt_pid: u16,
    pub service_type: u8,
    pub name: &'static str,
    pub provider: &'static str,
    pub video: Option<u16>,
    pub audio: Vec<u16>,
    /// A PCR PID of its own (not an ES PID).
    pub pcr: Option<u16>,
    pub free_ca: bool,
    pub ca_descriptor: bool,
    pub lcn: Option<u16>,
}

/// A fixture mux.
#[derive(Debug, Clone)]
pub struct FxMux {
    pub mux: Mux,
    pub tsid: u16,
    pub onid: u16,
    pub services: Vec<FxService>,
    /// Whether its NIT entry carries a delivery descriptor.
    pub in_nit: bool,
}

pub const ONID: u16 = 0x2174;
pub const NID: u16 = 0x3001;

fn svc(sid: u16, ty: u8, name: &'static str, lcn: Option<u16>) -> FxService {
    let base = (sid & 0xFF) * 16 + 0x100;
    FxService {
        sid,
        pmt_pid: base,
        service_type: ty,
        name,
        provider: "ACME",
        video: (ty != 0x02).then_some(base + 1),
        audio: vec![base + 2],
        pcr: None,
        free_ca: false,
        ca_descriptor: false,
        lcn,
    }
}

pub fn dvbt(freq_hz: u32) -> Mux {
    let mut t = blank_tuning(DeliverySystem::DvbT, freq_hz);
    t.bandwidth_hz = Some(8_000_000);
    Mux::new(t)
}

pub fn dvbt2(freq_hz: u32, plp: u8) -> Mux {
    let mut t = blank_tuning(DeliverySystem::DvbT2, freq_hz);
    t.bandwidth_hz = Some(8_000_000);
    t.plp = Some(plp);
    t.t2_system_id = Some(0x8001);
    Mux::new(t)
}

/// Three muxes: DVB-T 506 MHz (TSID 4), DVB-T2 474 MHz PLP 0 (TSID 1) and PLP 1 (TSID 5, only
/// reachable through the NIT).
pub fn network() -> Vec<FxMux> {
    let mut radio = svc(0x0103, 0x02, "Example Radio", Some(3));
    radio.pcr = Some(0x1FF0);
    let mut pay = svc(0x0104, 0x19, "Pay HD", Some(4));
    pay.free_ca = true;
    let mut t506 = dvbt(506_000_000);
    t506.tuning.modulation = Some(Modulation::Qam64);
    vec![
        FxMux {
            mux: t506,
            tsid: 4,
            onid: ONID,
            services: vec![
                svc(0x0101, 0x01, "Example One", Some(1)),
                svc(0x0102, 0x01, "Example Two", Some(2)),
                radio,
            ],
            in_nit: true,
        },
        FxMux {
            mux: dvbt2(474_000_000, 0),
            tsid: 1,
            onid: ONID,
            services: vec![pay, svc(0x0105, 0x0C, "Data", None)],
            in_nit: true,
        },
        FxMux {
            mux: dvbt2(474_000_000, 1),
            tsid: 5,
            onid: ONID,
            services: vec![svc(0x0106, 0x19, "Hidden HD", Some(6))],
            in_nit: true,
        },
    ]
}

fn nit_descriptors(m: &FxMux, current: &FxMux) -> Vec<u8> {
    let mut d = Vec::new();
    if m.in_nit {
        match m.mux.tuning.delivery_system {
            DeliverySystem::DvbT2 => {
                if m.mux.tuning.frequency != current.mux.tuning.frequency
                    || current.mux.tuning.delivery_system != DeliverySystem::DvbT2
                {
                    d.extend(si::terrestrial_delivery_descriptor(
                        u64::from(m.mux.tuning.frequency),
                        8_000_000,
                    ));
                }
                d.extend(si::t2_delivery_descriptor(
                    m.mux.tuning.plp.unwrap_or(0),
                    0x8001,
                ));
            }
            _ => d.extend(si::terrestrial_delivery_descriptor(
                u64::from(m.mux.tuning.frequency),
                8_000_000,
            )),
        }
    }
    let list: Vec<(u16, u8)> = m.services.iter().map(|s| (s.sid, s.service_type)).collect();
    d.extend(si::service_list_descriptor(&list));
    let mut lcn = vec![0x5F, 0x04, 0x00, 0x00, 0x00, 0x28];
    let mut body = Vec::new();
    for s in &m.services {
        if let Some(n) = s.lcn {
            body.extend(s.sid.to_be_bytes());
            body.extend((0xFC00 | n).to_be_bytes());
        }
    }
    if !body.is_empty() {
        lcn.push(0x83);
        lcn.push(body.len() as u8);
        lcn.extend(body);
        d.extend(lcn);
    }
    d
}

/// The (PID, section) pairs a mux carries: PAT, PMTs, SDT actual, NIT actual.
pub fn sections(m: &FxMux, all: &[FxMux]) -> Vec<(u16, Section)> {
    let mut out = Vec::new();
    let mut pat = vec![si::PatEntry {
        program_number: 0,
        pid: 0x10,
    }];
    for s in &m.services {
        pat.push(si::PatEntry {
            program_number: s.sid,
            pid: s.pmt_pid,
        });
    }
    out.push((0, si::pat(m.tsid, 1, &pat)));
    for s in &m.services {
        let mut streams = Vec::new();
        if let Some(v) = s.video {
            streams.push(si::PmtStream {
                stream_type: 0x1B,
                pid: v,
                descriptors: vec![],
            });
        }
        for a in &s.audio {
            streams.push(si::PmtStream {
                stream_type: 0x03,
                pid: *a,
                descriptors: si::iso639_descriptor(b"eng"),
            });
        }
        let pcr = s.pcr.or(s.video).unwrap_or(s.audio[0]);
        let pd = if s.ca_descriptor {
            vec![0x09, 0x04, 0x0B, 0x00, 0xE1, 0x23]
        } else {
            vec![]
        };
        out.push((s.pmt_pid, si::pmt(s.sid, 1, pcr, &pd, &streams)));
    }
    let mut body = ONID.to_be_bytes().to_vec();
    body.push(0xFF);
    for s in &m.services {
        let d = si::service_descriptor(s.service_type, s.provider, s.name);
        body.extend(s.sid.to_be_bytes());
        body.push(0xFD);
        let w = (4u16 << 13) | if s.free_ca { 0x1000 } else { 0 } | d.len() as u16;
        body.extend(w.to_be_bytes());
        body.extend(d);
    }
    out.push((0x11, si::long_section(0x42, m.tsid, 1, 0, 0, &body)));
    let transports: Vec<si::NitTransport> = all
        .iter()
        .map(|x| si::NitTransport {
            tsid: x.tsid,
            onid: x.onid,
            descriptors: nit_descriptors(x, m),
        })
        .collect();
    out.push((
        0x10,
        si::nit_actual(
            NID,
            1,
            &si::network_name_descriptor("Example Net"),
            &transports,
        ),
    ));
    out.into_iter()
        .map(|(p, b)| (p, Section::parse(&b).expect("fixture section")))
        .collect()
}

/// Lock at 10 ms, feed every section at 20 ms, poll until done.
pub fn collect(m: &FxMux, all: &[FxMux], cfg: CollectorConfig) -> MuxResult {
    collect_filtered(m, all, cfg, |_| true)
}

/// As [`collect`], keeping only the sections `keep` accepts (by table_id).
pub fn collect_filtered(
    m: &FxMux,
    all: &[FxMux],
    cfg: CollectorConfig,
    keep: impl Fn(u8) -> bool,
) -> MuxResult {
    let mut c = MuxCollector::new(m.mux.clone(), cfg, 0);
    c.frontend_status(
        10,
        super::collector::FrontendStatus {
            signal: true,
            carrier: true,
            lock: true,
        },
    );
    // PAT first so the PMT filters exist, then the rest.
    for (pid, s) in sections(m, all) {
        if keep(s.header.table_id) {
            c.push_section(20, pid, &s);
        }
    }
    let mut now = 20;
    loop {
        match c.poll(now) {
            Poll::Done(_) => break,
            Poll::Pending { wake_at_ms } => now = wake_at_ms,
        }
    }
    c.into_result().expect("done")
}

/// A failed mux scan (no lock).
pub fn failed(m: &Mux) -> MuxResult {
    let mut c = MuxCollector::new(m.clone(), CollectorConfig::default(), 0);
    let mut now = 0;
    loop {
        match c.poll(now) {
            Poll::Done(_) => break,
            Poll::Pending { wake_at_ms } => now = wake_at_ms,
        }
    }
    c.into_result().expect("done")
}
