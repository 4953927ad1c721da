//! NIT actual/other (EN 300 468 §5.2.1) read from a complete sub-table: network name, the
//! transport loop with delivery descriptors and service lists, and logical channel numbers
//! (digest §6) with their private_data_specifier rules.

use std::collections::BTreeMap;

use crate::psi::{descriptors, Nit, PsiError, Section};

use super::delivery::Delivery;
use super::mux::Mux;
use super::text;

/// private_data_specifier values with an LCN meaning.
pub mod pds {
    /// EACEM / IEC 62216 E-Book.
    pub const EACEM: u32 = 0x28;
    /// NorDig.
    pub const NORDIG: u32 = 0x29;
    /// UK DTG.
    pub const UK_DTG: u32 = 0x233A;
}

/// A logical channel number for one service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Lcn {
    /// The number (never 0).
    pub number: u16,
    /// visible_service_flag: false = selectable by number, not listed.
    pub visible: bool,
}

/// Where an LCN came from; higher wins for the same service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum LcnSource {
    /// 0x83 (EACEM, DTG, NorDig v1, or no PDS).
    V1,
    /// 0x87 NorDig v2.
    NordigV2,
    /// 0x88 HD simulcast.
    HdSimulcast,
}

/// LCN reading options.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LcnOptions {
    /// NorDig v2 channel list to pick by country (ISO 3166 alpha-3, e.g. `NOR`); else the first.
    pub country: Option<[u8; 3]>,
}

/// LCNs of one descriptor loop, keyed by service_id. The PDS in effect is the last 0x5F met
/// earlier in the same loop; 0x83 without any PDS is read as EACEM [OURS].
pub fn lcns_in_loop(loop_bytes: &[u8], opts: &LcnOptions) -> BTreeMap<u16, Lcn> {
    let mut best: BTreeMap<u16, (LcnSource, Lcn)> = BTreeMap::new();
    let mut put = |sid: u16, src: LcnSource, lcn: Lcn| {
        if lcn.number == 0 {
            return;
        }
        match best.get(&sid) {
            Some((s, _)) if *s > src => {}
            _ => {
                best.insert(sid, (src, lcn));
            }
        }
    };
    let mut pds: Option<u32> = None;
    for d in descriptors(loop_bytes) {
        match (d.tag, pds) {
            (0x5F, _) => {
                if let Some(b) = d.data.get(..4) {
                    pds = Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]));
                }
            }
            (0x83, None | Some(pds::EACEM) | Some(pds::UK_DTG)) => {
                for (sid, lcn) in lcn_entries(d.data, 0x3FF) {
                    put(sid, LcnSource::V1, lcn);
                }
            }
            (0x83, Some(pds::NORDIG)) => {
                for (sid, lcn) in lcn_entries(d.data, 0x3FFF) {
                    put(sid, LcnSource::V1, lcn);
                }
            }
            (0x88, Some(pds::EACEM) | Some(pds::UK_DTG)) => {
                for (sid, lcn) in lcn_entries(d.data, 0x3FF) {
                    put(sid, LcnSource::HdSimulcast, lcn);
                }
            }
            (0x87, Some(pds::NORDIG)) => {
                for (sid, lcn) in nordig_v2(d.data, opts) {
                    put(sid, LcnSource::NordigV2, lcn);
                }
            }
            _ => {}
        }
    }
    best.into_iter().map(|(k, (_, l))| (k, l)).collect()
}

/// The 4-byte entries of a 0x83/0x88 descriptor: service_id, visible_service_flag (top bit)
/// and the number under `mask` (10 bits for EACEM/DTG, 14 for NorDig v1).
fn lcn_entries(data: &[u8], mask: u16) -> impl Iterator<Item = (u16, Lcn)> + '_ {
    data.chunks_exact(4).map(move |e| {
        let w = u16::from_be_bytes([e[2], e[3]]);
        (
            u16::from_be_bytes([e[0], e[1]]),
            Lcn {
                number: w & mask,
                visible: w & 0x8000 != 0,
            },
        )
    })
}

/// One NorDig v2 channel list: country code and entries.
type ChannelList = ([u8; 3], Vec<(u16, Lcn)>);

/// NorDig v2 (0x87): channel lists; the one for `opts.country`, else the first.
fn nordig_v2(d: &[u8], opts: &LcnOptions) -> Vec<(u16, Lcn)> {
    let mut lists: Vec<ChannelList> = Vec::new();
    let mut i = 0;
    while i + 2 <= d.len() {
        let name_len = usize::from(d[i + 1]);
        let Some(country) = d.get(i + 2 + name_len..i + 5 + name_len) else {
            break;
        };
        let Some(&len) = d.get(i + 5 + name_len) else {
            break;
        };
        let start = i + 6 + name_len;
        let Some(entries) = d.get(start..start + usize::from(len)) else {
            break;
        };
        let list = entries
            .chunks_exact(4)
            .map(|e| {
                let w = u16::from_be_bytes([e[2], e[3]]);
                (
                    u16::from_be_bytes([e[0], e[1]]),
                    Lcn {
                        number: w & 0x3FF,
                        visible: w & 0x8000 != 0,
                    },
                )
            })
            .collect();
        lists.push(([country[0], country[1], country[2]], list));
        i = start + usize::from(len);
    }
    let pick = opts
        .country
        .and_then(|c| lists.iter().position(|(lc, _)| lc.eq_ignore_ascii_case(&c)))
        .unwrap_or(0);
    if lists.is_empty() {
        Vec::new()
    } else {
        lists.swap_remove(pick).1
    }
}

/// One transport stream of a NIT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NitTransport {
    /// transport_stream_id.
    pub tsid: u16,
    /// original_network_id.
    pub onid: u16,
    /// Delivery descriptors.
    pub delivery: Delivery,
    /// service_list_descriptor entries: (service_id, service_type).
    pub services: Vec<(u16, u8)>,
    /// LCNs by service_id.
    pub lcns: BTreeMap<u16, Lcn>,
}

/// A whole NIT sub-table (all its sections).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NitTable {
    /// 0x40 rather than 0x41.
    pub actual: bool,
    /// network_id.
    pub network_id: u16,
    /// version_number.
    pub version: u8,
    /// network_name_descriptor, decoded per Annex A.
    pub network_name: Option<String>,
    /// Transport streams of every section, in order.
    pub transports: Vec<NitTransport>,
    /// LCNs found in the network loop (libdvbv5 reads them there), by service_id; they apply
    /// to services of any TS of the network.
    pub network_lcns: BTreeMap<u16, Lcn>,
}

impl NitTable {
    /// Read a NIT from the sections of one complete sub-table.
    pub fn from_sections<'a>(
        sections: impl IntoIterator<Item = &'a Section>,
        opts: &LcnOptions,
    ) -> Result<NitTable, PsiError> {
        let mut out: Option<NitTable> = None;
        for s in sections {
            let n = Nit::parse(s)?;
            let t = out.get_or_insert_with(|| NitTable {
                actual: n.actual,
                network_id: n.network_id,
                version: n.version,
                network_name: None,
                transports: Vec::new(),
                network_lcns: BTreeMap::new(),
            });
            if t.network_name.is_none() {
                t.network_name =
                    crate::psi::find_descriptor(&n.descriptors, 0x40).map(text::decode);
            }
            t.network_lcns.extend(lcns_in_loop(&n.descriptors, opts));
            for ts in n.transport_streams {
                let services = descriptors(&ts.descriptors)
                    .filter(|d| d.tag == 0x41)
                    .flat_map(|d| {
                        d.data
                            .chunks_exact(3)
                            .map(|e| (u16::from_be_bytes([e[0], e[1]]), e[2]))
                            .collect::<Vec<_>>()
                    })
                    .collect();
                t.transports.push(NitTransport {
                    tsid: ts.transport_stream_id,
                    onid: ts.original_network_id,
                    delivery: Delivery::from_descriptors(&ts.descriptors),
                    services,
                    lcns: lcns_in_loop(&ts.descriptors, opts),
                });
            }
        }
        out.ok_or(PsiError::Truncated)
    }

    /// LCN of a service of this network: the TS loop's entry wins over the network loop's.
    pub fn lcn(&self, onid: u16, tsid: u16, sid: u16) -> Option<Lcn> {
        self.transports
            .iter()
            .filter(|t| t.onid == onid && t.tsid == tsid)
            .find_map(|t| t.lcns.get(&sid).copied())
            .or_else(|| self.network_lcns.get(&sid).copied())
    }

    /// Every LCN of this network, keyed by (onid, tsid, sid); network-loop LCNs are attached to
    /// the TS whose service list names the service.
    pub fn all_lcns(&self) -> BTreeMap<(u16, u16, u16), Lcn> {
        let mut out = BTreeMap::new();
        for t in &self.transports {
            for (sid, _) in &t.services {
                if let Some(l) = self.network_lcns.get(sid) {
                    out.insert((t.onid, t.tsid, *sid), *l);
                }
            }
        }
        for t in &self.transports {
            for (sid, l) in &t.lcns {
                out.insert((t.onid, t.tsid, *sid), *l);
            }
        }
        out
    }
}

/// A multiplex announced by a NIT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Announced {
    /// How to tune it.
    pub mux: Mux,
    /// Alternative frequencies of the same TS (frequency_list, TFS/SFN cells).
    pub alternatives: Vec<u32>,
    /// original_network_id.
    pub onid: u16,
    /// transport_stream_id.
    pub tsid: u16,
    /// network_id of the NIT.
    pub network_id: u16,
    /// From NIT actual rather than other.
    pub actual: bool,
}

impl NitTable {
    /// The muxes this NIT announces (entries without a usable delivery descriptor are skipped).
    /// `current` is the mux the NIT was read on.
    pub fn announced(&self, current: Option<&Mux>) -> Vec<Announced> {
        self.transports
            .iter()
            .filter_map(|t| {
                let (mux, alternatives) = t.delivery.to_mux(current)?;
                Some(Announced {
                    mux,
                    alternatives,
                    onid: t.onid,
                    tsid: t.tsid,
                    network_id: self.network_id,
                    actual: self.actual,
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::si;

    const EACEM: [u8; 20] = [
        0x5F, 0x04, 0x00, 0x00, 0x00, 0x28, 0x83, 0x0C, 0x01, 0x01, 0xFC, 0x01, 0x01, 0x02, 0xFC,
        0x02, 0x01, 0x03, 0x7F, 0x20,
    ];

    #[test]
    fn eacem_digest_vector() {
        let l = lcns_in_loop(&EACEM, &LcnOptions::default());
        assert_eq!(
            l.get(&0x0101),
            Some(&Lcn {
                number: 1,
                visible: true
            })
        );
        assert_eq!(l.get(&0x0102).map(|l| l.number), Some(2));
        assert_eq!(
            l.get(&0x0103),
            Some(&Lcn {
                number: 800,
                visible: false
            })
        );
    }

    #[test]
    fn pds_rules() {
        // No PDS: 0x83 read as EACEM.
        assert_eq!(
            lcns_in_loop(&EACEM[6..], &LcnOptions::default()).len(),
            3,
            "0x83 without PDS"
        );
        // Another PDS: 0x83 means something else.
        let mut other = EACEM;
        other[5] = 0x99;
        assert!(lcns_in_loop(&other, &LcnOptions::default()).is_empty());
        // NorDig v1: 14 bits.
        let nordig = [
            0x5F, 0x04, 0x00, 0x00, 0x00, 0x29, 0x83, 0x04, 0x01, 0x01, 0xA0, 0x01,
        ];
        assert_eq!(
            lcns_in_loop(&nordig, &LcnOptions::default()).get(&0x0101),
            Some(&Lcn {
                number: 0x2001,
                visible: true
            })
        );
        // LCN 0 is no number; 0x88 HD simulcast beats 0x83 in either order.
        let mut l = EACEM.to_vec();
        l.extend([0x88, 0x08, 0x01, 0x01, 0x80, 0x00, 0x01, 0x02, 0x80, 0x33]);
        let r = lcns_in_loop(&l, &LcnOptions::default());
        assert_eq!(r.get(&0x0101).map(|l| l.number), Some(1));
        assert_eq!(r.get(&0x0102).map(|l| l.number), Some(0x33));
        // 0x88 without PDS is ignored.
        assert!(lcns_in_loop(&l[20..], &LcnOptions::default()).is_empty());
    }

    #[test]
    fn nordig_v2_lists_pick_country_else_first() {
        let mut d = vec![0x5F, 0x04, 0x00, 0x00, 0x00, 0x29, 0x87, 0];
        // list 1: "A", SWE, one entry sid 0x0101 → 5
        d.extend([1, 1, b'A', b'S', b'W', b'E', 4, 0x01, 0x01, 0xFC, 0x05]);
        // list 2: "B", NOR, sid 0x0101 → 7
        d.extend([2, 1, b'B', b'N', b'O', b'R', 4, 0x01, 0x01, 0xFC, 0x07]);
        d[7] = (d.len() - 8) as u8;
        let first = lcns_in_loop(&d, &LcnOptions::default());
        assert_eq!(first.get(&0x0101).map(|l| l.number), Some(5));
        let nor = lcns_in_loop(
            &d,
            &LcnOptions {
                country: Some(*b"NOR"),
            },
        );
        assert_eq!(nor.get(&0x0101).map(|l| l.number), Some(7));
    }

    #[test]
    fn nit_sections_round_trip_through_si_writer() {
        let mut ts1 = si::terrestrial_delivery_descriptor(506_000_000, 8_000_000);
        ts1.extend(si::service_list_descriptor(&[
            (0x0101, 0x19),
            (0x0102, 0x02),
        ]));
        ts1.extend(EACEM);
        let ts2 = si::t2_delivery_descriptor(1, 0x8001);
        let s0 = si::nit_actual(
            0x3001,
            4,
            &si::network_name_descriptor("Zürich Net"),
            &[si::NitTransport {
                tsid: 4,
                onid: 0x2174,
                descriptors: ts1,
            }],
        );
        // Section 1 of 2 by rewriting the header (and CRC).
        let s1 = {
            let body = si::nit_actual(
                0x3001,
                4,
                &[],
                &[si::NitTransport {
                    tsid: 5,
                    onid: 0x2174,
                    descriptors: ts2,
                }],
            );
            si::long_section(0x40, 0x3001, 4, 1, 1, &body[8..body.len() - 4])
        };
        let s0 = si::long_section(0x40, 0x3001, 4, 0, 1, &s0[8..s0.len() - 4]);
        let secs = [Section::parse(&s0).unwrap(), Section::parse(&s1).unwrap()];
        let n = NitTable::from_sections(&secs, &LcnOptions::default()).unwrap();
        assert!(n.actual);
        assert_eq!(n.network_id, 0x3001);
        assert_eq!(n.network_name.as_deref(), Some("Zürich Net"));
        assert_eq!(n.transports.len(), 2);
        assert_eq!(
            n.transports[0].services,
            vec![(0x0101, 0x19), (0x0102, 0x02)]
        );
        assert_eq!(n.lcn(0x2174, 4, 0x0103).map(|l| l.number), Some(800));
        assert_eq!(n.all_lcns().len(), 3);
        let mut cur =
            super::super::mux::blank_tuning(crate::satip::DeliverySystem::DvbT2, 474_000_000);
        cur.plp = Some(0);
        let a = n.announced(Some(&Mux::new(cur)));
        assert_eq!(a.len(), 2);
        assert_eq!(a[0].mux.tuning.frequency, 506_000_000);
        assert_eq!((a[1].tsid, a[1].mux.tuning.plp), (5, Some(1)));
        assert_eq!(a[1].mux.tuning.frequency, 474_000_000);
    }
}
