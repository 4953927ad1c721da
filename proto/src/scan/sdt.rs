//! SDT actual/other (EN 300 468 §5.2.3) read from a complete sub-table, with names decoded per
//! Annex A ([`super::text`]).

use crate::psi::{find_descriptor, PsiError, Sdt, Section};

use super::text;

/// One service of an SDT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SdtEntry {
    /// service_id.
    pub service_id: u16,
    /// EIT_schedule_flag.
    pub eit_schedule: bool,
    /// EIT_present_following_flag.
    pub eit_present_following: bool,
    /// running_status: 0 undefined, 1 not running, 2 starts soon, 3 pausing, 4 running,
    /// 5 off-air.
    pub running_status: u8,
    /// free_CA_mode: some components may be scrambled.
    pub free_ca_mode: bool,
    /// service_type of the service_descriptor.
    pub service_type: Option<u8>,
    /// service_provider_name.
    pub provider: Option<String>,
    /// service_name.
    pub name: Option<String>,
}

/// A whole SDT sub-table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SdtTable {
    /// 0x42 rather than 0x46.
    pub actual: bool,
    /// transport_stream_id.
    pub tsid: u16,
    /// original_network_id.
    pub onid: u16,
    /// version_number.
    pub version: u8,
    /// Services of all sections, in order.
    pub services: Vec<SdtEntry>,
}

/// Parse a service_descriptor body: (service_type, provider, name).
pub fn service_descriptor(d: &[u8]) -> Option<(u8, String, String)> {
    let ty = *d.first()?;
    let pl = usize::from(*d.get(1)?);
    let provider = d.get(2..2 + pl)?;
    let nl = usize::from(*d.get(2 + pl)?);
    let name = d.get(3 + pl..3 + pl + nl)?;
    Some((ty, text::decode(provider), text::decode(name)))
}

impl SdtTable {
    /// Read an SDT from the sections of one complete sub-table.
    pub fn from_sections<'a>(
        sections: impl IntoIterator<Item = &'a Section>,
    ) -> Result<SdtTable, PsiError> {
        let mut out: Option<SdtTable> = None;
        for s in sections {
            let sdt = Sdt::parse(s)?;
            let t = out.get_or_insert_with(|| SdtTable {
                actual: sdt.actual,
                tsid: sdt.transport_stream_id,
                onid: sdt.original_network_id,
                version: sdt.version,
                services: Vec::new(),
            });
            for e in sdt.services {
                let sd = find_descriptor(&e.descriptors, 0x48).and_then(service_descriptor);
                t.services.push(SdtEntry {
                    service_id: e.service_id,
                    eit_schedule: e.eit_schedule,
                    eit_present_following: e.eit_present_following,
                    running_status: e.running_status,
                    free_ca_mode: e.free_ca_mode,
                    service_type: sd.as_ref().map(|s| s.0),
                    provider: sd.as_ref().map(|s| s.1.clone()),
                    name: sd.map(|s| s.2),
                });
            }
        }
        out.ok_or(PsiError::Truncated)
    }

    /// The entry of a service.
    pub fn service(&self, sid: u16) -> Option<&SdtEntry> {
        self.services.iter().find(|s| s.service_id == sid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::si;

    #[test]
    fn digest_entry_vector() {
        // §4: service 0x0101, p/f present, running, FTA, type 0x19, "ACME", "Example HD".
        let entry = [
            0x01, 0x01, 0xFD, 0x80, 0x13, 0x48, 0x11, 0x19, 0x04, 0x41, 0x43, 0x4D, 0x45, 0x0A,
            0x45, 0x78, 0x61, 0x6D, 0x70, 0x6C, 0x65, 0x20, 0x48, 0x44,
        ];
        let mut body = vec![0x21, 0x74, 0xFF];
        body.extend(entry);
        let s = Section::parse(&si::long_section(0x42, 4, 1, 0, 0, &body)).unwrap();
        let t = SdtTable::from_sections([&s]).unwrap();
        assert_eq!((t.tsid, t.onid, t.actual), (4, 0x2174, true));
        assert_eq!(
            t.services,
            vec![SdtEntry {
                service_id: 0x0101,
                eit_schedule: false,
                eit_present_following: true,
                running_status: 4,
                free_ca_mode: false,
                service_type: Some(0x19),
                provider: Some("ACME".into()),
                name: Some("Example HD".into()),
            }]
        );
        // The writer produces the same entry bytes.
        let w = si::sdt_actual(
            4,
            0x2174,
            1,
            &[si::SdtService {
                service_id: 0x0101,
                eit_present_following: true,
                running_status: 4,
                descriptors: si::service_descriptor(0x19, "ACME", "Example HD"),
            }],
        );
        assert_eq!(w, si::long_section(0x42, 4, 1, 0, 0, &body));
    }

    #[test]
    fn multi_section_other_sdt_with_ca_and_latin1() {
        let mut body0 = vec![0x22, 0x22, 0xFF];
        // 0x0201 not running, scrambled, Latin-1 name through the writer.
        let d = si::service_descriptor(0x02, "Prov", "Radio Zürich");
        body0.extend([0x02, 0x01, 0xFE, 0x30 | (d.len() >> 8) as u8, d.len() as u8]);
        body0.extend(&d);
        let mut body1 = vec![0x22, 0x22, 0xFF];
        body1.extend([0x02, 0x02, 0xFC, 0x00, 0x00]);
        let s0 = Section::parse(&si::long_section(0x46, 9, 0, 0, 1, &body0)).unwrap();
        let s1 = Section::parse(&si::long_section(0x46, 9, 0, 1, 1, &body1)).unwrap();
        let t = SdtTable::from_sections([&s0, &s1]).unwrap();
        assert!(!t.actual);
        let a = t.service(0x0201).unwrap();
        assert!(a.free_ca_mode && a.eit_schedule && !a.eit_present_following);
        assert_eq!(a.running_status, 1);
        assert_eq!(a.name.as_deref(), Some("Radio Zürich"));
        let b = t.service(0x0202).unwrap();
        assert_eq!((b.service_type, b.name.as_deref()), (None, None));
    }
}
