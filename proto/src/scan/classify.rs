//! Service and elementary-stream classification (digest §3.3, §4.1): TV, radio, data or other
//! from the SDT's service_type, falling back on the PMT's streams; scrambled from free_CA_mode
//! or a CA_descriptor.

use serde::{Deserialize, Serialize};

use crate::psi::{descriptors, Pmt, PmtStream};

/// What a service is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ServiceClass {
    /// Television (video).
    Tv,
    /// Radio (audio, no video).
    Radio,
    /// Teletext, data broadcast, MHP, or streams with neither video nor audio.
    Data,
    /// No type and no streams to judge by.
    Other,
}

impl ServiceClass {
    /// Lower-case name (`tv`, `radio`, `data`, `other`).
    pub fn name(self) -> &'static str {
        match self {
            ServiceClass::Tv => "tv",
            ServiceClass::Radio => "radio",
            ServiceClass::Data => "data",
            ServiceClass::Other => "other",
        }
    }
}

/// What an elementary stream carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EsKind {
    /// Video of any codec.
    Video,
    /// MPEG audio, AAC, LATM (stream types 0x03 0x04 0x0F 0x11 0x1C).
    Audio,
    /// AC-3 (0x06 + 0x6A, or 0x81, or registration `AC-3`).
    Ac3,
    /// E-AC-3 (0x06 + 0x7A, or 0x87, or registration `EAC3`).
    Eac3,
    /// DTS (0x06 + 0x7B or registration `DTS1..3`).
    Dts,
    /// AAC signalled by descriptor 0x7C on a 0x06 stream.
    Aac,
    /// AC-4 (0x06 + extension 0x15).
    Ac4,
    /// DVB subtitles (0x06 + 0x59).
    Subtitle,
    /// Teletext (0x06 + 0x56 or 0x46).
    Teletext,
    /// Private sections, DSM-CC, SCTE-35.
    Data,
    /// Anything else.
    Other,
}

impl EsKind {
    /// Whether this is an audio kind.
    pub fn is_audio(self) -> bool {
        matches!(
            self,
            EsKind::Audio | EsKind::Ac3 | EsKind::Eac3 | EsKind::Dts | EsKind::Aac | EsKind::Ac4
        )
    }
}

/// Classify one ES: registration fourcc first, then stream_type, then 0x06 by descriptor [V5].
pub fn es_kind(stream_type: u8, descs: &[u8]) -> EsKind {
    let mut reg = None;
    let mut tags = Vec::new();
    for d in descriptors(descs) {
        if d.tag == 0x05 && d.data.len() >= 4 {
            reg = Some([d.data[0], d.data[1], d.data[2], d.data[3]]);
        }
        if d.tag == 0x7F {
            if d.data.first() == Some(&0x15) {
                tags.push(0x7F15u16);
            }
        } else {
            tags.push(u16::from(d.tag));
        }
    }
    match reg.as_ref() {
        Some(b"AC-3") => return EsKind::Ac3,
        Some(b"EAC3") => return EsKind::Eac3,
        Some(b"DTS1" | b"DTS2" | b"DTS3") => return EsKind::Dts,
        Some(b"HEVC") => return EsKind::Video,
        _ => {}
    }
    match stream_type {
        0x01 | 0x02 | 0x10 | 0x1B | 0x20 | 0x24 | 0x25 | 0x33 | 0x42 | 0xD1 | 0xEA => EsKind::Video,
        0x03 | 0x04 | 0x0F | 0x11 | 0x1C => EsKind::Audio,
        0x81 => EsKind::Ac3,
        0x87 => EsKind::Eac3,
        0x05 | 0x0B | 0x0D | 0x86 => EsKind::Data,
        0x06 => {
            let has = |t: u16| tags.contains(&t);
            if has(0x6A) {
                EsKind::Ac3
            } else if has(0x7A) {
                EsKind::Eac3
            } else if has(0x7B) {
                EsKind::Dts
            } else if has(0x7C) {
                EsKind::Aac
            } else if has(0x7F15) {
                EsKind::Ac4
            } else if has(0x59) {
                EsKind::Subtitle
            } else if has(0x56) || has(0x46) {
                EsKind::Teletext
            } else {
                EsKind::Other
            }
        }
        _ => EsKind::Other,
    }
}

/// Class from a service_type alone; `None` when the type says nothing (missing, 0, reserved,
/// user defined 0x80–0xFE) and the PMT must decide.
pub fn class_of_service_type(service_type: u8) -> Option<ServiceClass> {
    match service_type {
        0x01 | 0x11 | 0x16 | 0x19 | 0x1F | 0x1C..=0x1E | 0x06 | 0x0B => Some(ServiceClass::Tv),
        0x04 | 0x05 | 0x17 | 0x18 | 0x1A | 0x1B => Some(ServiceClass::Tv),
        0x02 | 0x07 | 0x0A => Some(ServiceClass::Radio),
        0x03 | 0x0C | 0x10 => Some(ServiceClass::Data),
        _ => None,
    }
}

/// NVOD reference and time-shifted services: TV, but not listed [§4.1].
pub fn is_nvod(service_type: u8) -> bool {
    matches!(service_type, 0x04 | 0x05 | 0x17 | 0x18 | 0x1A | 0x1B)
}

/// Class from the streams: video → TV, else audio → radio, else anything → data, else other.
pub fn class_of_streams(kinds: &[EsKind]) -> ServiceClass {
    if kinds.contains(&EsKind::Video) {
        ServiceClass::Tv
    } else if kinds.iter().any(|k| k.is_audio()) {
        ServiceClass::Radio
    } else if kinds.is_empty() {
        ServiceClass::Other
    } else {
        ServiceClass::Data
    }
}

/// The service_type table, then the PMT.
pub fn classify(service_type: Option<u8>, kinds: &[EsKind]) -> ServiceClass {
    service_type
        .and_then(class_of_service_type)
        .unwrap_or_else(|| class_of_streams(kinds))
}

/// Whether a descriptor loop holds a CA_descriptor (0x09).
pub fn has_ca_descriptor(descs: &[u8]) -> bool {
    descriptors(descs).any(|d| d.tag == 0x09)
}

/// CA_system_ids of every CA_descriptor in the PMT (program and ES loops), deduplicated.
pub fn ca_system_ids(pmt: &Pmt) -> Vec<u16> {
    let mut out = Vec::new();
    let loops = std::iter::once(pmt.program_info.as_slice())
        .chain(pmt.streams.iter().map(|s| s.descriptors.as_slice()));
    for l in loops {
        for d in descriptors(l).filter(|d| d.tag == 0x09 && d.data.len() >= 2) {
            let id = u16::from_be_bytes([d.data[0], d.data[1]]);
            if !out.contains(&id) {
                out.push(id);
            }
        }
    }
    out
}

/// Scrambled = free_CA_mode 1 or any CA_descriptor in the PMT.
pub fn is_scrambled(free_ca_mode: bool, pmt: Option<&Pmt>) -> bool {
    free_ca_mode || pmt.is_some_and(|p| !ca_system_ids(p).is_empty())
}

/// ISO 639 language of an ES, lower case, if it has a 0x0A descriptor (or a subtitling or
/// teletext descriptor, whose entries start with one).
pub fn es_language(s: &PmtStream) -> Option<String> {
    descriptors(&s.descriptors)
        .find(|d| matches!(d.tag, 0x0A | 0x59 | 0x56) && d.data.len() >= 3)
        .and_then(|d| std::str::from_utf8(&d.data[..3]).ok())
        .filter(|l| l.bytes().all(|b| b.is_ascii_alphabetic()))
        .map(str::to_ascii_lowercase)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::psi::Section;
    use crate::si;

    #[test]
    fn stream_types_and_private_descriptors() {
        // §13 items 6 and 7.
        for t in [0x01, 0x02, 0x1B, 0x24] {
            assert_eq!(es_kind(t, &[]), EsKind::Video, "0x{t:02x}");
        }
        for t in [0x03, 0x04, 0x0F, 0x11] {
            assert_eq!(es_kind(t, &[]), EsKind::Audio, "0x{t:02x}");
        }
        assert_eq!(es_kind(0x06, &[0x6A, 0x01, 0x00]), EsKind::Ac3);
        assert_eq!(es_kind(0x06, &[0x7A, 0x01, 0x00]), EsKind::Eac3);
        assert_eq!(
            es_kind(0x06, &[0x59, 0x08, b'e', b'n', b'g', 0x10, 0, 1, 0, 1]),
            EsKind::Subtitle
        );
        assert_eq!(
            es_kind(0x06, &[0x56, 0x05, b'd', b'e', b'u', 0x09, 0x00]),
            EsKind::Teletext
        );
        assert_eq!(es_kind(0x06, &[0x7F, 0x01, 0x15]), EsKind::Ac4);
        assert_eq!(es_kind(0x06, &[]), EsKind::Other);
        assert_eq!(
            es_kind(0x06, &[0x05, 0x04, b'E', b'A', b'C', b'3']),
            EsKind::Eac3
        );
        assert_eq!(es_kind(0x86, &[]), EsKind::Data);
    }

    #[test]
    fn service_types_then_pmt() {
        // §13 item 11.
        for t in [0x01, 0x11, 0x16, 0x19, 0x1F] {
            assert_eq!(classify(Some(t), &[]), ServiceClass::Tv);
        }
        for t in [0x02, 0x0A] {
            assert_eq!(classify(Some(t), &[EsKind::Video]), ServiceClass::Radio);
        }
        assert_eq!(classify(Some(0x0C), &[]), ServiceClass::Data);
        assert_eq!(classify(Some(0x80), &[EsKind::Audio]), ServiceClass::Radio);
        assert_eq!(
            classify(Some(0xFE), &[EsKind::Audio, EsKind::Video]),
            ServiceClass::Tv
        );
        assert_eq!(classify(None, &[EsKind::Teletext]), ServiceClass::Data);
        assert_eq!(classify(None, &[]), ServiceClass::Other);
        assert!(is_nvod(0x04) && !is_nvod(0x01));
    }

    #[test]
    fn scrambled_from_free_ca_or_ca_descriptor() {
        // §13 item 12.
        let ca = [0x09, 0x04, 0x0B, 0x00, 0xE1, 0x23];
        let in_program = si::pmt(1, 0, 0x100, &ca, &[]);
        let in_es = si::pmt(
            1,
            0,
            0x100,
            &[],
            &[si::PmtStream {
                stream_type: 0x1B,
                pid: 0x101,
                descriptors: ca.to_vec(),
            }],
        );
        let clear = si::pmt(1, 0, 0x100, &[], &[]);
        let p = |b: &[u8]| Pmt::parse(&Section::parse(b).unwrap()).unwrap();
        assert!(is_scrambled(false, Some(&p(&in_program))));
        assert!(is_scrambled(false, Some(&p(&in_es))));
        assert_eq!(ca_system_ids(&p(&in_es)), vec![0x0B00]);
        assert!(!is_scrambled(false, Some(&p(&clear))));
        assert!(is_scrambled(true, Some(&p(&clear))));
        assert!(is_scrambled(true, None));
    }
}
