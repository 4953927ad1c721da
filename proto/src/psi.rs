//! PSI/SI sections: reassembly from TS packets (pointer_field, PUSI, several sections per packet,
//! 0xFF stuffing, continuity counter), CRC-32 check, and parsers for PAT, PMT, SDT, NIT, TDT/TOT
//! and EIT present/following, with the descriptors the timeline exporter needs.
//!
//! Nothing here panics on bad input; malformed sections become [`PsiError`]s.

use std::fmt;

use crate::crc::crc32_mpeg2;
use crate::ts::ByteCursor;

/// Table ids.
pub mod table_id {
    /// program_association_section.
    pub const PAT: u8 = 0x00;
    /// TS_program_map_section.
    pub const PMT: u8 = 0x02;
    /// network_information_section, actual network.
    pub const NIT_ACTUAL: u8 = 0x40;
    /// network_information_section, other network.
    pub const NIT_OTHER: u8 = 0x41;
    /// service_description_section, actual TS.
    pub const SDT_ACTUAL: u8 = 0x42;
    /// service_description_section, other TS.
    pub const SDT_OTHER: u8 = 0x46;
    /// event_information_section, present/following, actual TS.
    pub const EIT_PF_ACTUAL: u8 = 0x4E;
    /// event_information_section, present/following, other TS.
    pub const EIT_PF_OTHER: u8 = 0x4F;
    /// time_date_section.
    pub const TDT: u8 = 0x70;
    /// time_offset_section.
    pub const TOT: u8 = 0x73;
}

/// Well-known PIDs.
pub mod pid {
    /// PAT.
    pub const PAT: u16 = 0x0000;
    /// NIT.
    pub const NIT: u16 = 0x0010;
    /// SDT/BAT.
    pub const SDT: u16 = 0x0011;
    /// EIT.
    pub const EIT: u16 = 0x0012;
    /// TDT/TOT.
    pub const TDT: u16 = 0x0014;
}

/// Largest section (private sections: 4096 bytes including the 3-byte header).
pub const MAX_SECTION_SIZE: usize = 4096;

/// Errors from section reassembly and table parsing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PsiError {
    /// Fewer bytes than a structure needs.
    Truncated,
    /// section_length above the maximum.
    SectionTooLong(u16),
    /// The CRC-32 of the section does not check.
    Crc {
        /// table_id of the bad section.
        table_id: u8,
    },
    /// pointer_field points past the end of the packet.
    BadPointer(u8),
    /// A partial section was dropped because of a continuity counter jump.
    ContinuityLost,
    /// The section is not the table the parser expected.
    WrongTable(u8),
    /// A loop length runs past its container.
    BadLength,
    /// A BCD time field holds a nibble above 9.
    BadBcd,
}

impl fmt::Display for PsiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PsiError::Truncated => write!(f, "truncated section"),
            PsiError::SectionTooLong(l) => write!(f, "section_length {l} too long"),
            PsiError::Crc { table_id } => {
                write!(f, "CRC error in section with table_id 0x{table_id:02x}")
            }
            PsiError::BadPointer(p) => write!(f, "pointer_field {p} past the packet end"),
            PsiError::ContinuityLost => write!(f, "partial section dropped after continuity error"),
            PsiError::WrongTable(t) => write!(f, "unexpected table_id 0x{t:02x}"),
            PsiError::BadLength => write!(f, "loop length past the section end"),
            PsiError::BadBcd => write!(f, "invalid BCD digit"),
        }
    }
}

impl std::error::Error for PsiError {}

/// The section header; the long-form fields are zero for short sections (syntax = 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SectionHeader {
    /// table_id.
    pub table_id: u8,
    /// section_syntax_indicator.
    pub syntax: bool,
    /// private_indicator (the '0' bit after the syntax indicator).
    pub private_indicator: bool,
    /// section_length (bytes after this field).
    pub length: u16,
    /// table_id_extension (transport_stream_id, program_number, service_id...).
    pub table_id_extension: u16,
    /// version_number (5 bits).
    pub version: u8,
    /// current_next_indicator.
    pub current_next: bool,
    /// section_number.
    pub section_number: u8,
    /// last_section_number.
    pub last_section_number: u8,
}

/// A complete section with a good CRC (when it has one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Section {
    /// Header fields.
    pub header: SectionHeader,
    /// The whole section: header, body and CRC.
    pub data: Vec<u8>,
}

/// Whether a section carries a CRC_32: all long-form sections, plus the TOT.
fn has_crc(table_id: u8, syntax: bool) -> bool {
    syntax || table_id == table_id::TOT
}

impl Section {
    /// Parse and CRC-check one complete section (exactly `3 + section_length` bytes, or more:
    /// the tail is ignored).
    pub fn parse(bytes: &[u8]) -> Result<Section, PsiError> {
        let mut c = ByteCursor::new(bytes);
        let table_id = c.u8().ok_or(PsiError::Truncated)?;
        let w = c.u16().ok_or(PsiError::Truncated)?;
        let length = w & 0x0FFF;
        if usize::from(length) + 3 > MAX_SECTION_SIZE {
            return Err(PsiError::SectionTooLong(length));
        }
        let data = bytes
            .get(..3 + usize::from(length))
            .ok_or(PsiError::Truncated)?;
        let mut header = SectionHeader {
            table_id,
            syntax: w & 0x8000 != 0,
            private_indicator: w & 0x4000 != 0,
            length,
            ..Default::default()
        };
        if header.syntax {
            if length < 9 {
                return Err(PsiError::Truncated);
            }
            header.table_id_extension = c.u16().ok_or(PsiError::Truncated)?;
            let v = c.u8().ok_or(PsiError::Truncated)?;
            header.version = (v >> 1) & 0x1F;
            header.current_next = v & 1 != 0;
            header.section_number = c.u8().ok_or(PsiError::Truncated)?;
            header.last_section_number = c.u8().ok_or(PsiError::Truncated)?;
        }
        if has_crc(table_id, header.syntax) && (length < 4 || crc32_mpeg2(data) != 0) {
            return Err(PsiError::Crc { table_id });
        }
        Ok(Section {
            header,
            data: data.to_vec(),
        })
    }

    /// The table body: after the 8-byte long header (or 3-byte short header) and before the CRC.
    pub fn body(&self) -> &[u8] {
        let start = if self.header.syntax { 8 } else { 3 };
        let end = if has_crc(self.header.table_id, self.header.syntax) {
            self.data.len().saturating_sub(4)
        } else {
            self.data.len()
        };
        self.data.get(start..end).unwrap_or(&[])
    }
}

/// Reassembles the sections of one PID.
#[derive(Debug, Default, Clone)]
pub struct SectionAssembler {
    buf: Vec<u8>,
    /// A section start was seen and `buf` holds its beginning.
    active: bool,
    last_cc: Option<u8>,
}

impl SectionAssembler {
    /// An empty assembler.
    pub fn new() -> Self {
        Self::default()
    }

    /// Forget any partial section and the continuity state.
    pub fn reset(&mut self) {
        self.buf.clear();
        self.active = false;
        self.last_cc = None;
    }

    /// Feed the payload of one TS packet of this PID. `discontinuity` is the adaptation field's
    /// discontinuity_indicator. Returns the sections completed by this packet, in order, and the
    /// errors met on the way (CRC, lost continuity, bad pointer).
    pub fn push(
        &mut self,
        pusi: bool,
        cc: u8,
        discontinuity: bool,
        payload: &[u8],
    ) -> Vec<Result<Section, PsiError>> {
        let mut out = Vec::new();
        let cc = cc & 0x0F;
        if let Some(last) = self.last_cc {
            if cc == last && !discontinuity {
                // Duplicate packet: already consumed.
                return out;
            }
            if cc != (last + 1) & 0x0F && !discontinuity && self.active {
                self.buf.clear();
                self.active = false;
                out.push(Err(PsiError::ContinuityLost));
            }
        }
        self.last_cc = Some(cc);

        if !pusi {
            if self.active {
                self.buf.extend_from_slice(payload);
                self.extract(&mut out);
            }
            return out;
        }
        let Some((&pointer, rest)) = payload.split_first() else {
            return out;
        };
        let Some(tail) = rest.get(..usize::from(pointer)) else {
            self.buf.clear();
            self.active = false;
            out.push(Err(PsiError::BadPointer(pointer)));
            return out;
        };
        if self.active && !tail.is_empty() {
            self.buf.extend_from_slice(tail);
            self.extract_one(&mut out);
        }
        self.buf.clear();
        self.buf
            .extend_from_slice(rest.get(usize::from(pointer)..).unwrap_or(&[]));
        self.active = true;
        self.extract(&mut out);
        out
    }

    /// Complete at most the section in progress (used for the bytes before a pointer).
    fn extract_one(&mut self, out: &mut Vec<Result<Section, PsiError>>) {
        if let Some(total) = self.pending_total(out) {
            if self.buf.len() >= total {
                out.push(Section::parse(&self.buf));
            }
        }
    }

    /// Total size of the section at the start of `buf`, or `None` if unknown yet/stuffing/bad.
    fn pending_total(&mut self, out: &mut Vec<Result<Section, PsiError>>) -> Option<usize> {
        let first = *self.buf.first()?;
        if first == 0xFF {
            // Stuffing: nothing more in this packet.
            self.buf.clear();
            self.active = false;
            return None;
        }
        let hi = *self.buf.get(1)?;
        let lo = *self.buf.get(2)?;
        let length = (u16::from(hi & 0x0F) << 8) | u16::from(lo);
        let total = 3 + usize::from(length);
        if total > MAX_SECTION_SIZE {
            self.buf.clear();
            self.active = false;
            out.push(Err(PsiError::SectionTooLong(length)));
            return None;
        }
        Some(total)
    }

    /// Take every complete section off the front of `buf`.
    fn extract(&mut self, out: &mut Vec<Result<Section, PsiError>>) {
        while let Some(total) = self.pending_total(out) {
            if self.buf.len() < total {
                return;
            }
            out.push(Section::parse(&self.buf));
            self.buf.drain(..total);
        }
    }
}

/// One descriptor of a descriptor loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Descriptor<'a> {
    /// descriptor_tag.
    pub tag: u8,
    /// The bytes after descriptor_length.
    pub data: &'a [u8],
}

/// Iterate over a descriptor loop; stops at the first truncated descriptor.
pub fn descriptors(bytes: &[u8]) -> impl Iterator<Item = Descriptor<'_>> {
    let mut c = ByteCursor::new(bytes);
    std::iter::from_fn(move || {
        let tag = c.u8()?;
        let len = c.u8()?;
        let data = c.bytes(usize::from(len))?;
        Some(Descriptor { tag, data })
    })
}

/// The first descriptor with `tag` in a loop.
pub fn find_descriptor(bytes: &[u8], tag: u8) -> Option<&[u8]> {
    descriptors(bytes).find(|d| d.tag == tag).map(|d| d.data)
}

/// Descriptor tags used here.
pub mod descriptor_tag {
    /// registration_descriptor (13818-1).
    pub const REGISTRATION: u8 = 0x05;
    /// ISO_639_language_descriptor.
    pub const ISO_639_LANGUAGE: u8 = 0x0A;
    /// MPEG extension_descriptor.
    pub const EXTENSION: u8 = 0x3F;
    /// network_name_descriptor (EN 300 468).
    pub const NETWORK_NAME: u8 = 0x40;
    /// service_descriptor.
    pub const SERVICE: u8 = 0x48;
    /// short_event_descriptor.
    pub const SHORT_EVENT: u8 = 0x4D;
    /// stream_identifier_descriptor.
    pub const STREAM_IDENTIFIER: u8 = 0x52;
    /// extension_descriptor_tag of the af_extensions_descriptor inside 0x3F.
    pub const EXT_AF_EXTENSIONS: u8 = 0x04;
}

/// component_tag of a stream_identifier_descriptor (0x52) in a loop.
pub fn component_tag(descs: &[u8]) -> Option<u8> {
    find_descriptor(descs, descriptor_tag::STREAM_IDENTIFIER).and_then(|d| d.first().copied())
}

/// Whether the loop holds an af_extensions_descriptor (0x3F with extension tag 0x04).
pub fn has_af_extensions_descriptor(descs: &[u8]) -> bool {
    descriptors(descs).any(|d| {
        d.tag == descriptor_tag::EXTENSION
            && d.data.first() == Some(&descriptor_tag::EXT_AF_EXTENSIONS)
    })
}

/// format_identifier of a registration_descriptor (0x05), e.g. `*b"HEVC"`.
pub fn registration(descs: &[u8]) -> Option<[u8; 4]> {
    let d = find_descriptor(descs, descriptor_tag::REGISTRATION)?;
    d.get(..4)?.try_into().ok()
}

/// ISO 639 language code of the first ISO_639_language_descriptor entry.
pub fn language(descs: &[u8]) -> Option<[u8; 3]> {
    let d = find_descriptor(descs, descriptor_tag::ISO_639_LANGUAGE)?;
    d.get(..3)?.try_into().ok()
}

fn expect_table(s: &Section, ids: &[u8]) -> Result<(), PsiError> {
    if ids.contains(&s.header.table_id) {
        Ok(())
    } else {
        Err(PsiError::WrongTable(s.header.table_id))
    }
}

/// One PAT entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PatEntry {
    /// program_number (0 means the network PID).
    pub program_number: u16,
    /// PMT PID (or network PID for program 0).
    pub pid: u16,
}

/// A program association section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pat {
    /// transport_stream_id.
    pub transport_stream_id: u16,
    /// version_number.
    pub version: u8,
    /// Programs with program_number ≠ 0.
    pub programs: Vec<PatEntry>,
    /// network_PID (program_number 0), if present.
    pub network_pid: Option<u16>,
}

impl Pat {
    /// Parse a PAT section.
    pub fn parse(s: &Section) -> Result<Pat, PsiError> {
        expect_table(s, &[table_id::PAT])?;
        let mut c = ByteCursor::new(s.body());
        let mut pat = Pat {
            transport_stream_id: s.header.table_id_extension,
            version: s.header.version,
            programs: Vec::new(),
            network_pid: None,
        };
        while c.remaining() >= 4 {
            let program_number = c.u16().ok_or(PsiError::Truncated)?;
            let pid = c.u16().ok_or(PsiError::Truncated)? & 0x1FFF;
            if program_number == 0 {
                pat.network_pid = Some(pid);
            } else {
                pat.programs.push(PatEntry {
                    program_number,
                    pid,
                });
            }
        }
        Ok(pat)
    }
}

/// One elementary stream of a PMT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PmtStream {
    /// stream_type.
    pub stream_type: u8,
    /// elementary_PID.
    pub pid: u16,
    /// Raw ES_info descriptor loop.
    pub descriptors: Vec<u8>,
}

impl PmtStream {
    /// component_tag from a stream_identifier_descriptor (0x52).
    pub fn component_tag(&self) -> Option<u8> {
        component_tag(&self.descriptors)
    }

    /// Whether an af_extensions_descriptor (0x3F/0x04) is present (a hint only).
    pub fn has_af_extensions(&self) -> bool {
        has_af_extensions_descriptor(&self.descriptors)
    }

    /// format_identifier of a registration_descriptor.
    pub fn registration(&self) -> Option<[u8; 4]> {
        registration(&self.descriptors)
    }

    /// ISO 639 language code.
    pub fn language(&self) -> Option<[u8; 3]> {
        language(&self.descriptors)
    }

    /// Whether the stream_type is a video type (MPEG-1/2, MPEG-4 part 2, AVC, HEVC, VVC, CAVS…).
    pub fn is_video(&self) -> bool {
        matches!(
            self.stream_type,
            0x01 | 0x02 | 0x10 | 0x1B | 0x20 | 0x24 | 0x25 | 0x33 | 0x42 | 0xD1 | 0xEA
        )
    }

    /// Whether the stream_type is an audio type (MPEG audio, AAC, LATM, AC-3/E-AC-3 ATSC).
    pub fn is_audio(&self) -> bool {
        matches!(
            self.stream_type,
            0x03 | 0x04 | 0x0F | 0x11 | 0x1C | 0x81 | 0x87
        )
    }
}

/// A TS program map section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pmt {
    /// program_number.
    pub program_number: u16,
    /// version_number.
    pub version: u8,
    /// PCR_PID (0x1FFF = none).
    pub pcr_pid: u16,
    /// Raw program_info descriptor loop.
    pub program_info: Vec<u8>,
    /// Elementary streams in order.
    pub streams: Vec<PmtStream>,
}

impl Pmt {
    /// Parse a PMT section.
    pub fn parse(s: &Section) -> Result<Pmt, PsiError> {
        expect_table(s, &[table_id::PMT])?;
        let mut c = ByteCursor::new(s.body());
        let pcr_pid = c.u16().ok_or(PsiError::Truncated)? & 0x1FFF;
        let pil = usize::from(c.u16().ok_or(PsiError::Truncated)? & 0x0FFF);
        let program_info = c.bytes(pil).ok_or(PsiError::BadLength)?.to_vec();
        let mut streams = Vec::new();
        while c.remaining() >= 5 {
            let stream_type = c.u8().ok_or(PsiError::Truncated)?;
            let pid = c.u16().ok_or(PsiError::Truncated)? & 0x1FFF;
            let l = usize::from(c.u16().ok_or(PsiError::Truncated)? & 0x0FFF);
            let descriptors = c.bytes(l).ok_or(PsiError::BadLength)?.to_vec();
            streams.push(PmtStream {
                stream_type,
                pid,
                descriptors,
            });
        }
        Ok(Pmt {
            program_number: s.header.table_id_extension,
            version: s.header.version,
            pcr_pid,
            program_info,
            streams,
        })
    }
}

/// Decode a DVB text string (EN 300 468 Annex A).
///
/// The optional leading character-table selector is honoured for UTF-8 (0x15) and UCS-2
/// (0x11); for the single-byte tables (no selector, 0x01–0x0B, 0x10 xx yy) bytes are read as
/// Latin-1, which is exact for ISO 8859-1 and an approximation otherwise. Control codes
/// 0x80–0x9F are dropped, except 0x8A (CR/LF) which becomes '\n'.
pub fn decode_dvb_string(bytes: &[u8]) -> String {
    let (table, text) = match bytes.first() {
        None => return String::new(),
        Some(&b) if b >= 0x20 => (0u8, bytes),
        Some(&0x10) => (0x10, bytes.get(3..).unwrap_or(&[])),
        Some(&0x1F) => (0x1F, bytes.get(2..).unwrap_or(&[])),
        Some(&b) => (b, bytes.get(1..).unwrap_or(&[])),
    };
    match table {
        0x15 => String::from_utf8_lossy(text)
            .replace('\u{8A}', "\n")
            .replace(['\u{86}', '\u{87}'], ""),
        0x11 => {
            let units = text
                .chunks_exact(2)
                .map(|c| u16::from_be_bytes([c[0], c[1]]));
            char::decode_utf16(units)
                .filter_map(|r| match r {
                    Ok('\u{E08A}') => Some('\n'),
                    Ok(ch) if ('\u{E080}'..='\u{E09F}').contains(&ch) => None,
                    Ok(ch) => Some(ch),
                    Err(_) => Some(char::REPLACEMENT_CHARACTER),
                })
                .collect()
        }
        _ => text
            .iter()
            .filter_map(|&b| match b {
                0x8A => Some('\n'),
                0x80..=0x9F => None,
                _ => Some(char::from(b)),
            })
            .collect(),
    }
}

/// Read a 1-byte-length-prefixed DVB string.
fn dvb_string(c: &mut ByteCursor<'_>) -> Option<String> {
    let n = c.u8()?;
    Some(decode_dvb_string(c.bytes(usize::from(n))?))
}

/// service_descriptor (0x48).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceDescriptor {
    /// service_type (0x01 digital TV, 0x02 radio, 0x19 HD...).
    pub service_type: u8,
    /// service_provider_name.
    pub provider_name: String,
    /// service_name.
    pub service_name: String,
}

impl ServiceDescriptor {
    /// Parse the body of a service_descriptor.
    pub fn parse(d: &[u8]) -> Option<ServiceDescriptor> {
        let mut c = ByteCursor::new(d);
        let service_type = c.u8()?;
        let provider_name = dvb_string(&mut c)?;
        let service_name = dvb_string(&mut c)?;
        Some(ServiceDescriptor {
            service_type,
            provider_name,
            service_name,
        })
    }
}

/// One SDT service entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SdtService {
    /// service_id (= program_number).
    pub service_id: u16,
    /// EIT_schedule_flag.
    pub eit_schedule: bool,
    /// EIT_present_following_flag.
    pub eit_present_following: bool,
    /// running_status (3 bits).
    pub running_status: u8,
    /// free_CA_mode.
    pub free_ca_mode: bool,
    /// Raw descriptor loop.
    pub descriptors: Vec<u8>,
}

impl SdtService {
    /// The service_descriptor, if any.
    pub fn service_descriptor(&self) -> Option<ServiceDescriptor> {
        find_descriptor(&self.descriptors, descriptor_tag::SERVICE)
            .and_then(ServiceDescriptor::parse)
    }
}

/// A service description section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sdt {
    /// table 0x42 (actual TS) rather than 0x46.
    pub actual: bool,
    /// transport_stream_id.
    pub transport_stream_id: u16,
    /// original_network_id.
    pub original_network_id: u16,
    /// version_number.
    pub version: u8,
    /// Services of this section.
    pub services: Vec<SdtService>,
}

impl Sdt {
    /// Parse an SDT section.
    pub fn parse(s: &Section) -> Result<Sdt, PsiError> {
        expect_table(s, &[table_id::SDT_ACTUAL, table_id::SDT_OTHER])?;
        let mut c = ByteCursor::new(s.body());
        let original_network_id = c.u16().ok_or(PsiError::Truncated)?;
        c.skip(1).ok_or(PsiError::Truncated)?;
        let mut services = Vec::new();
        while c.remaining() >= 5 {
            let service_id = c.u16().ok_or(PsiError::Truncated)?;
            let f = c.u8().ok_or(PsiError::Truncated)?;
            let w = c.u16().ok_or(PsiError::Truncated)?;
            let descriptors = c
                .bytes(usize::from(w & 0x0FFF))
                .ok_or(PsiError::BadLength)?
                .to_vec();
            services.push(SdtService {
                service_id,
                eit_schedule: f & 0x02 != 0,
                eit_present_following: f & 0x01 != 0,
                running_status: (w >> 13) as u8,
                free_ca_mode: w & 0x1000 != 0,
                descriptors,
            });
        }
        Ok(Sdt {
            actual: s.header.table_id == table_id::SDT_ACTUAL,
            transport_stream_id: s.header.table_id_extension,
            original_network_id,
            version: s.header.version,
            services,
        })
    }
}

/// One transport stream entry of a NIT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NitTransportStream {
    /// transport_stream_id.
    pub transport_stream_id: u16,
    /// original_network_id.
    pub original_network_id: u16,
    /// Raw descriptor loop (delivery system, service list...).
    pub descriptors: Vec<u8>,
}

/// A network information section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Nit {
    /// table 0x40 (actual network) rather than 0x41.
    pub actual: bool,
    /// network_id.
    pub network_id: u16,
    /// version_number.
    pub version: u8,
    /// From the network_name_descriptor (0x40).
    pub network_name: Option<String>,
    /// Raw network descriptor loop.
    pub descriptors: Vec<u8>,
    /// Transport stream loop.
    pub transport_streams: Vec<NitTransportStream>,
}

impl Nit {
    /// Parse a NIT section.
    pub fn parse(s: &Section) -> Result<Nit, PsiError> {
        expect_table(s, &[table_id::NIT_ACTUAL, table_id::NIT_OTHER])?;
        let mut c = ByteCursor::new(s.body());
        let nl = usize::from(c.u16().ok_or(PsiError::Truncated)? & 0x0FFF);
        let descriptors = c.bytes(nl).ok_or(PsiError::BadLength)?.to_vec();
        let tl = usize::from(c.u16().ok_or(PsiError::Truncated)? & 0x0FFF);
        let mut tc = ByteCursor::new(c.bytes(tl).ok_or(PsiError::BadLength)?);
        let mut transport_streams = Vec::new();
        while tc.remaining() >= 6 {
            let transport_stream_id = tc.u16().ok_or(PsiError::Truncated)?;
            let original_network_id = tc.u16().ok_or(PsiError::Truncated)?;
            let l = usize::from(tc.u16().ok_or(PsiError::Truncated)? & 0x0FFF);
            let d = tc.bytes(l).ok_or(PsiError::BadLength)?.to_vec();
            transport_streams.push(NitTransportStream {
                transport_stream_id,
                original_network_id,
                descriptors: d,
            });
        }
        let network_name =
            find_descriptor(&descriptors, descriptor_tag::NETWORK_NAME).map(decode_dvb_string);
        Ok(Nit {
            actual: s.header.table_id == table_id::NIT_ACTUAL,
            network_id: s.header.table_id_extension,
            version: s.header.version,
            network_name,
            descriptors,
            transport_streams,
        })
    }
}

fn bcd(b: u8) -> Result<u32, PsiError> {
    let (hi, lo) = (b >> 4, b & 0x0F);
    if hi > 9 || lo > 9 {
        return Err(PsiError::BadBcd);
    }
    Ok(u32::from(hi) * 10 + u32::from(lo))
}

/// Decode a BCD `hhmmss` duration (3 bytes) to seconds.
pub fn bcd_duration(b: &[u8]) -> Result<u32, PsiError> {
    match *b.get(..3).ok_or(PsiError::Truncated)? {
        [h, m, s] => Ok(bcd(h)? * 3600 + bcd(m)? * 60 + bcd(s)?),
        _ => Err(PsiError::Truncated),
    }
}

/// Decode the 40-bit UTC_time field (16-bit MJD + 24-bit BCD hhmmss) to Unix seconds.
pub fn mjd_utc_to_unix(b: &[u8]) -> Result<i64, PsiError> {
    let mut c = ByteCursor::new(b);
    let mjd = c.u16().ok_or(PsiError::Truncated)?;
    let secs = bcd_duration(c.bytes(3).ok_or(PsiError::Truncated)?)?;
    Ok((i64::from(mjd) - 40587) * 86400 + i64::from(secs))
}

/// A time_date_section or time_offset_section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimeTable {
    /// UTC as Unix seconds.
    pub utc_unix: i64,
    /// Raw descriptor loop (TOT only; local_time_offset_descriptor...).
    pub descriptors: Vec<u8>,
}

impl TimeTable {
    /// Parse a TDT (0x70) or TOT (0x73) section.
    pub fn parse(s: &Section) -> Result<TimeTable, PsiError> {
        expect_table(s, &[table_id::TDT, table_id::TOT])?;
        let mut c = ByteCursor::new(s.body());
        let utc_unix = mjd_utc_to_unix(c.bytes(5).ok_or(PsiError::Truncated)?)?;
        let mut descriptors = Vec::new();
        if s.header.table_id == table_id::TOT {
            let l = usize::from(c.u16().ok_or(PsiError::Truncated)? & 0x0FFF);
            descriptors = c.bytes(l).ok_or(PsiError::BadLength)?.to_vec();
        }
        Ok(TimeTable {
            utc_unix,
            descriptors,
        })
    }
}

/// short_event_descriptor (0x4D).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShortEvent {
    /// ISO 639 language code.
    pub language: [u8; 3],
    /// event_name.
    pub name: String,
    /// text.
    pub text: String,
}

impl ShortEvent {
    /// Parse the body of a short_event_descriptor.
    pub fn parse(d: &[u8]) -> Option<ShortEvent> {
        let mut c = ByteCursor::new(d);
        let language = c.bytes(3)?.try_into().ok()?;
        let name = dvb_string(&mut c)?;
        let text = dvb_string(&mut c).unwrap_or_default();
        Some(ShortEvent {
            language,
            name,
            text,
        })
    }
}

/// One EIT event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EitEvent {
    /// event_id.
    pub event_id: u16,
    /// start_time as Unix seconds; `None` when undefined (all bits 1) or invalid.
    pub start_unix: Option<i64>,
    /// duration in seconds; `None` when undefined or invalid.
    pub duration_s: Option<u32>,
    /// running_status (4 = running).
    pub running_status: u8,
    /// free_CA_mode.
    pub free_ca_mode: bool,
    /// Raw descriptor loop.
    pub descriptors: Vec<u8>,
}

impl EitEvent {
    /// The first short_event_descriptor.
    pub fn short_event(&self) -> Option<ShortEvent> {
        find_descriptor(&self.descriptors, descriptor_tag::SHORT_EVENT).and_then(ShortEvent::parse)
    }
}

/// An event information section (present/following).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Eit {
    /// table 0x4E (actual TS) rather than 0x4F.
    pub actual: bool,
    /// service_id.
    pub service_id: u16,
    /// version_number.
    pub version: u8,
    /// section_number: 0 = present, 1 = following.
    pub section_number: u8,
    /// transport_stream_id.
    pub transport_stream_id: u16,
    /// original_network_id.
    pub original_network_id: u16,
    /// Events of the section.
    pub events: Vec<EitEvent>,
}

impl Eit {
    /// Parse an EIT p/f section (0x4E or 0x4F).
    pub fn parse(s: &Section) -> Result<Eit, PsiError> {
        expect_table(s, &[table_id::EIT_PF_ACTUAL, table_id::EIT_PF_OTHER])?;
        let mut c = ByteCursor::new(s.body());
        let transport_stream_id = c.u16().ok_or(PsiError::Truncated)?;
        let original_network_id = c.u16().ok_or(PsiError::Truncated)?;
        c.skip(2).ok_or(PsiError::Truncated)?; // segment_last_section_number, last_table_id
        let mut events = Vec::new();
        while c.remaining() >= 12 {
            let event_id = c.u16().ok_or(PsiError::Truncated)?;
            let st = c.bytes(5).ok_or(PsiError::Truncated)?;
            let du = c.bytes(3).ok_or(PsiError::Truncated)?;
            let w = c.u16().ok_or(PsiError::Truncated)?;
            let descriptors = c
                .bytes(usize::from(w & 0x0FFF))
                .ok_or(PsiError::BadLength)?
                .to_vec();
            let undefined = |b: &[u8]| b.iter().all(|&x| x == 0xFF);
            events.push(EitEvent {
                event_id,
                start_unix: if undefined(st) {
                    None
                } else {
                    mjd_utc_to_unix(st).ok()
                },
                duration_s: if undefined(du) {
                    None
                } else {
                    bcd_duration(du).ok()
                },
                running_status: (w >> 13) as u8,
                free_ca_mode: w & 0x1000 != 0,
                descriptors,
            });
        }
        Ok(Eit {
            actual: s.header.table_id == table_id::EIT_PF_ACTUAL,
            service_id: s.header.table_id_extension,
            version: s.header.version,
            section_number: s.header.section_number,
            transport_stream_id,
            original_network_id,
            events,
        })
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Build a long-form section with a correct CRC.
    pub(crate) fn long_section(table_id: u8, ext: u16, version: u8, body: &[u8]) -> Vec<u8> {
        let len = 5 + body.len() + 4;
        let mut s = vec![table_id, 0xB0 | (len >> 8) as u8, len as u8];
        s.extend_from_slice(&ext.to_be_bytes());
        s.extend_from_slice(&[0xC1 | (version << 1), 0, 0]);
        s.extend_from_slice(body);
        let crc = crc32_mpeg2(&s);
        s.extend_from_slice(&crc.to_be_bytes());
        s
    }

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    // Sections of shared/media/temi_a_single_timeline.ts, packets 0..2.
    const PAT_A: &str = "00b00d0000c100000001e064dee0f320";
    const SDT_A: &str = "42b0200000c100000000ff0001fc800f480d0104475041430654454d492d4197ad8242";
    const PMT_A: &str = "02b01d0001d10000e066f0001be066f00628044d400d000fe065f0007503de8f";

    #[test]
    fn gpac_pat_pmt_sdt() {
        let s = Section::parse(&hex(PAT_A)).unwrap();
        assert_eq!(s.header.table_id, 0);
        assert_eq!(s.header.length, 13);
        assert!(s.header.syntax && s.header.current_next);
        let pat = Pat::parse(&s).unwrap();
        assert_eq!(pat.transport_stream_id, 0);
        assert_eq!(
            pat.programs,
            vec![PatEntry {
                program_number: 1,
                pid: 100
            }]
        );
        assert_eq!(pat.network_pid, None);

        let pmt = Pmt::parse(&Section::parse(&hex(PMT_A)).unwrap()).unwrap();
        assert_eq!((pmt.program_number, pmt.pcr_pid, pmt.version), (1, 102, 8));
        assert_eq!(pmt.streams.len(), 2);
        assert_eq!(
            (pmt.streams[0].stream_type, pmt.streams[0].pid),
            (0x1B, 102)
        );
        assert_eq!(
            pmt.streams[0].descriptors,
            vec![0x28, 0x04, 0x4d, 0x40, 0x0d, 0x00]
        );
        assert!(pmt.streams[0].is_video());
        assert_eq!(pmt.streams[0].component_tag(), None);
        assert!(!pmt.streams[0].has_af_extensions());
        assert_eq!(
            (pmt.streams[1].stream_type, pmt.streams[1].pid),
            (0x0F, 101)
        );
        assert!(pmt.streams[1].is_audio());

        let sdt = Sdt::parse(&Section::parse(&hex(SDT_A)).unwrap()).unwrap();
        assert!(sdt.actual);
        assert_eq!((sdt.transport_stream_id, sdt.original_network_id), (0, 0));
        assert_eq!(sdt.services.len(), 1);
        let svc = &sdt.services[0];
        assert_eq!(
            (svc.service_id, svc.running_status, svc.free_ca_mode),
            (1, 4, false)
        );
        let sd = svc.service_descriptor().unwrap();
        assert_eq!(
            sd,
            ServiceDescriptor {
                service_type: 1,
                provider_name: "GPAC".into(),
                service_name: "TEMI-A".into()
            }
        );
    }

    #[test]
    fn crc_and_wrong_table() {
        let mut b = hex(PAT_A);
        b[9] ^= 1;
        assert_eq!(Section::parse(&b), Err(PsiError::Crc { table_id: 0 }));
        let s = Section::parse(&hex(PAT_A)).unwrap();
        assert_eq!(Pmt::parse(&s), Err(PsiError::WrongTable(0)));
        assert_eq!(Section::parse(&hex(PAT_A)[..10]), Err(PsiError::Truncated));
        assert_eq!(
            Section::parse(&[0x00, 0xBF, 0xFF]),
            Err(PsiError::SectionTooLong(0xFFF))
        );
    }

    #[test]
    fn pmt_descriptor_helpers() {
        let mut es = vec![0x52, 0x01, 0x07, 0x3F, 0x01, 0x04, 0x05, 0x04];
        es.extend_from_slice(b"HEVC");
        es.extend_from_slice(&[0x0A, 0x04, b'e', b'n', b'g', 0x00]);
        let mut body = vec![
            0xE0,
            0x65,
            0xF0,
            0x00,
            0x24,
            0xE0,
            0x65,
            0xF0,
            es.len() as u8,
        ];
        body.extend_from_slice(&es);
        body.extend_from_slice(&[0x06, 0xE0, 0x66, 0xF0, 0x03, 0x52, 0x01]); // truncated desc loop
        let s = Section::parse(&long_section(0x02, 5, 1, &body)).unwrap();
        assert_eq!(Pmt::parse(&s), Err(PsiError::BadLength));
        body.truncate(body.len() - 7);
        let pmt = Pmt::parse(&Section::parse(&long_section(0x02, 5, 1, &body)).unwrap()).unwrap();
        let st = &pmt.streams[0];
        assert_eq!(st.component_tag(), Some(7));
        assert!(st.has_af_extensions());
        assert_eq!(st.registration(), Some(*b"HEVC"));
        assert_eq!(st.language(), Some(*b"eng"));
        // a truncated trailing descriptor is ignored by the iterator
        assert_eq!(
            descriptors(&[0x52, 0x01, 0x01, 0x48, 0x05, 0x00]).count(),
            1
        );
    }

    fn packets(pid: u16, sections: &[u8], cc0: u8) -> Vec<[u8; 188]> {
        // pointer 0 in the first packet; the stream of sections is cut into 184-byte payloads
        let mut data = vec![0u8];
        data.extend_from_slice(sections);
        let mut out = Vec::new();
        for (i, chunk) in data.chunks(184).enumerate() {
            let mut p = [0xFFu8; 188];
            p[0] = 0x47;
            p[1] = if i == 0 { 0x40 } else { 0 } | (pid >> 8) as u8;
            p[2] = pid as u8;
            p[3] = 0x10 | ((cc0 + i as u8) & 15);
            p[4..4 + chunk.len()].copy_from_slice(chunk);
            out.push(p);
        }
        out
    }

    fn feed(a: &mut SectionAssembler, p: &[u8; 188]) -> Vec<Result<Section, PsiError>> {
        a.push(p[1] & 0x40 != 0, p[3] & 15, false, &p[4..])
    }

    #[test]
    fn reassembly_multi_packet_and_multi_section() {
        // a 400-byte section spanning 3 packets, followed by two small sections in one run
        let big = long_section(0x42, 1, 0, &vec![0x5A; 400 - 12]);
        assert_eq!(big.len(), 400);
        let mut all = big.clone();
        all.extend_from_slice(&hex(PAT_A));
        all.extend_from_slice(&hex(PMT_A));
        let pk = packets(0x11, &all, 14);
        let mut a = SectionAssembler::new();
        let mut got = Vec::new();
        for p in &pk {
            got.extend(feed(&mut a, p));
        }
        let got: Vec<Section> = got.into_iter().map(|r| r.unwrap()).collect();
        assert_eq!(got.len(), 3);
        assert_eq!(got[0].data, big);
        assert_eq!(got[1].data, hex(PAT_A));
        assert_eq!(got[2].data, hex(PMT_A));
        // duplicate packet is ignored
        assert!(feed(&mut a, pk.last().unwrap()).is_empty());
    }

    #[test]
    fn reassembly_pointer_field_and_cc_loss() {
        // packet 1: a section start (the 400-byte one); packet 2: its continuation; packet 3 has
        // pointer_field = tail length of the first section then a PAT.
        let big = long_section(0x42, 1, 0, &vec![0x33; 400 - 12]);
        let mut a = SectionAssembler::new();
        let mut p1 = vec![0u8];
        p1.extend_from_slice(&big[..183]);
        assert!(a.push(true, 0, false, &p1).is_empty());
        assert!(a.push(false, 1, false, &big[183..367]).is_empty());
        let mut p3 = vec![(400 - 367) as u8];
        p3.extend_from_slice(&big[367..]);
        p3.extend_from_slice(&hex(PAT_A));
        p3.resize(184, 0xFF);
        let r = a.push(true, 2, false, &p3);
        assert_eq!(r.len(), 2);
        assert_eq!(r[0].as_ref().unwrap().data, big);
        assert_eq!(r[1].as_ref().unwrap().data, hex(PAT_A));

        // CC jump in the middle of a section drops it
        let mut a = SectionAssembler::new();
        assert!(a.push(true, 0, false, &p1).is_empty());
        let r = a.push(false, 5, false, &big[183..367]);
        assert_eq!(r, vec![Err(PsiError::ContinuityLost)]);
        let r = a.push(true, 6, false, &p3);
        // the tail before the pointer is dropped; the PAT is still found
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].as_ref().unwrap().data, hex(PAT_A));

        // bad pointer
        let mut a = SectionAssembler::new();
        assert_eq!(
            a.push(true, 0, false, &[200, 1, 2]),
            vec![Err(PsiError::BadPointer(200))]
        );
        assert!(a.push(true, 1, false, &[]).is_empty());
    }

    #[test]
    fn dvb_strings() {
        assert_eq!(decode_dvb_string(b"TEMI-A"), "TEMI-A");
        assert_eq!(decode_dvb_string(&[0x05, b'a', 0xE9]), "a\u{e9}");
        assert_eq!(decode_dvb_string(&[0x10, 0x00, 0x01, 0xC4]), "\u{c4}");
        assert_eq!(decode_dvb_string(&[0x15, 0xC3, 0xA9, b'x']), "\u{e9}x");
        assert_eq!(
            decode_dvb_string(&[0x11, 0x00, 0x41, 0x20, 0xAC]),
            "A\u{20ac}"
        );
        assert_eq!(
            decode_dvb_string(&[b'a', 0x86, b'b', 0x87, 0x8A, b'c']),
            "ab\nc"
        );
        assert_eq!(decode_dvb_string(&[0x10, 0x00]), "");
        assert_eq!(decode_dvb_string(&[]), "");
        assert_eq!(decode_dvb_string(&[0x11, 0x00]), "");
    }

    #[test]
    fn nit_tdt_tot_eit() {
        // NIT: name "Net", one TS (tsid 7, onid 0x233a)
        let mut body = vec![0xF0, 0x05, 0x40, 0x03, b'N', b'e', b't', 0xF0, 0x06];
        body.extend_from_slice(&[0x00, 0x07, 0x23, 0x3A, 0xF0, 0x00]);
        let nit =
            Nit::parse(&Section::parse(&long_section(0x40, 0x3001, 3, &body)).unwrap()).unwrap();
        assert_eq!(nit.network_id, 0x3001);
        assert_eq!(nit.network_name.as_deref(), Some("Net"));
        assert_eq!(
            nit.transport_streams,
            vec![NitTransportStream {
                transport_stream_id: 7,
                original_network_id: 0x233A,
                descriptors: vec![]
            }]
        );

        // TDT: 1993-10-13 12:45:00 (the EN 300 468 example: MJD 0xC079)
        let tdt = [0x70, 0x70, 0x05, 0xC0, 0x79, 0x12, 0x45, 0x00];
        let t = TimeTable::parse(&Section::parse(&tdt).unwrap()).unwrap();
        assert_eq!(t.utc_unix, 750_516_300);
        assert_eq!(
            mjd_utc_to_unix(&[0xC9, 0x58, 0x00, 0x00, 0x00]),
            Ok(946_684_800)
        ); // 2000-01-01
        assert_eq!(
            mjd_utc_to_unix(&[0xC0, 0x79, 0x1A, 0, 0]),
            Err(PsiError::BadBcd)
        );

        // TOT with CRC
        let mut tot = vec![0x73, 0x70, 0x0B, 0xC0, 0x79, 0x12, 0x45, 0x00, 0xF0, 0x00];
        let crc = crc32_mpeg2(&tot);
        tot.extend_from_slice(&crc.to_be_bytes());
        let t = TimeTable::parse(&Section::parse(&tot).unwrap()).unwrap();
        assert_eq!(t.utc_unix, 750_516_300);
        tot[5] = 0x13;
        assert_eq!(Section::parse(&tot), Err(PsiError::Crc { table_id: 0x73 }));

        // EIT p/f actual: event 0x1234 at 12:45:00 for 1h30, "News"
        let mut ev = vec![
            0x4D, 0x0B, b'e', b'n', b'g', 0x04, b'N', b'e', b'w', b's', 0x02, b'h', b'i',
        ];
        let mut body = vec![0x00, 0x07, 0x23, 0x3A, 0x01, 0x4E];
        body.extend_from_slice(&[0x12, 0x34, 0xC0, 0x79, 0x12, 0x45, 0x00, 0x01, 0x30, 0x00]);
        body.extend_from_slice(&[0x80, ev.len() as u8]);
        body.append(&mut ev);
        body.extend_from_slice(&[
            0x12, 0x35, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x20, 0x00,
        ]);
        let eit = Eit::parse(&Section::parse(&long_section(0x4E, 1, 2, &body)).unwrap()).unwrap();
        assert!(eit.actual);
        assert_eq!(
            (
                eit.service_id,
                eit.transport_stream_id,
                eit.original_network_id
            ),
            (1, 7, 0x233A)
        );
        assert_eq!(eit.events.len(), 2);
        let e = &eit.events[0];
        assert_eq!(
            (e.event_id, e.start_unix, e.duration_s, e.running_status),
            (0x1234, Some(750_516_300), Some(5400), 4)
        );
        let se = e.short_event().unwrap();
        assert_eq!(
            (se.language, se.name.as_str(), se.text.as_str()),
            (*b"eng", "News", "hi")
        );
        assert_eq!(
            (eit.events[1].start_unix, eit.events[1].duration_s),
            (None, None)
        );
    }
}
