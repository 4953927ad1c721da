//! PSI/SI section *writers* (ISO/IEC 13818-1 and EN 300 468): PAT, PMT, SDT, NIT (actual and
//! other, with delivery system and logical channel descriptors), EIT p/f, TDT and TOT, plus the packetiser that splits a section into 188-byte TS packets.
//!
//! The readers live in `psi.rs`; tests here round-trip through the CRC and byte layouts.

use super::crc::crc32_mpeg2;

/// Well-known PIDs.
pub const PID_PAT: u16 = 0x0000;
pub const PID_NIT: u16 = 0x0010;
pub const PID_SDT: u16 = 0x0011;
pub const PID_EIT: u16 = 0x0012;
pub const PID_TDT: u16 = 0x0014;
pub const PID_NULL: u16 = 0x1FFF;

/// A long-form section (section_syntax_indicator = 1) with CRC.
pub fn long_section(
    table_id: u8,
    table_id_extension: u16,
    version: u8,
    section_number: u8,
    last_section_number: u8,
    body: &[u8],
) -> Vec<u8> {
    // section_length counts from after the length field: 5 header bytes + body + 4 CRC.
    let section_length = 5 + body.len() + 4;
    debug_assert!(section_length <= 1021);
    let mut s = Vec::with_capacity(3 + section_length);
    s.push(table_id);
    s.push(0xB0 | ((section_length >> 8) as u8 & 0x0F));
    s.push(section_length as u8);
    s.extend_from_slice(&table_id_extension.to_be_bytes());
    s.push(0xC0 | ((version & 0x1F) << 1) | 0x01);
    s.push(section_number);
    s.push(last_section_number);
    s.extend_from_slice(body);
    let crc = crc32_mpeg2(&s);
    s.extend_from_slice(&crc.to_be_bytes());
    s
}

/// A program entry of the PAT. Program 0 points at the NIT.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PatEntry {
    pub program_number: u16,
    pub pid: u16,
}

pub fn pat(transport_stream_id: u16, version: u8, entries: &[PatEntry]) -> Vec<u8> {
    let mut body = Vec::with_capacity(entries.len() * 4);
    for e in entries {
        body.extend_from_slice(&e.program_number.to_be_bytes());
        body.extend_from_slice(&(0xE000 | (e.pid & 0x1FFF)).to_be_bytes());
    }
    long_section(0x00, transport_stream_id, version, 0, 0, &body)
}

/// An elementary stream of a PMT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PmtStream {
    pub stream_type: u8,
    pub pid: u16,
    pub descriptors: Vec<u8>,
}

pub fn pmt(
    program_number: u16,
    version: u8,
    pcr_pid: u16,
    program_descriptors: &[u8],
    streams: &[PmtStream],
) -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(&(0xE000 | (pcr_pid & 0x1FFF)).to_be_bytes());
    body.extend_from_slice(&(0xF000 | (program_descriptors.len() as u16 & 0x0FFF)).to_be_bytes());
    body.extend_from_slice(program_descriptors);
    for s in streams {
        body.push(s.stream_type);
        body.extend_from_slice(&(0xE000 | (s.pid & 0x1FFF)).to_be_bytes());
        body.extend_from_slice(&(0xF000 | (s.descriptors.len() as u16 & 0x0FFF)).to_be_bytes());
        body.extend_from_slice(&s.descriptors);
    }
    long_section(0x02, program_number, version, 0, 0, &body)
}

/// A generic descriptor: tag, length, body.
pub fn descriptor(tag: u8, body: &[u8]) -> Vec<u8> {
    let len = body.len().min(255);
    let mut d = Vec::with_capacity(2 + len);
    d.push(tag);
    d.push(len as u8);
    d.extend_from_slice(&body[..len]);
    d
}

/// stream_identifier_descriptor (0x52): binds a component_tag to an ES.
pub fn stream_identifier_descriptor(component_tag: u8) -> Vec<u8> {
    descriptor(0x52, &[component_tag])
}

/// af_extensions_descriptor: MPEG extension descriptor 0x3F with extension tag 0x04, announcing
/// that the ES carries adaptation-field descriptors (TEMI).
pub fn af_extensions_descriptor() -> Vec<u8> {
    descriptor(0x3F, &[0x04])
}

/// ISO_639_language_descriptor (0x0A) with audio_type 0.
pub fn iso639_descriptor(lang: &[u8; 3]) -> Vec<u8> {
    descriptor(0x0A, &[lang[0], lang[1], lang[2], 0x00])
}

/// A DVB string: plain ASCII/Latin-1 text needs no character-table prefix.
fn dvb_string(s: &str, max: usize) -> Vec<u8> {
    let mut out: Vec<u8> = s
        .chars()
        .map(|c| {
            if (c as u32) < 0x100 {
                c as u32 as u8
            } else {
                b'?'
            }
        })
        .collect();
    // Only prefix with 0x10 0x00 0x01 (ISO 8859-1) where a byte could be taken for a table id.
    if out.iter().any(|&b| b >= 0x80) {
        let mut p = vec![0x10, 0x00, 0x01];
        p.append(&mut out);
        out = p;
    }
    out.truncate(max);
    out
}

/// service_descriptor (0x48).
pub fn service_descriptor(service_type: u8, provider: &str, name: &str) -> Vec<u8> {
    let p = dvb_string(provider, 100);
    let n = dvb_string(name, 100);
    let mut b = vec![service_type, p.len() as u8];
    b.extend_from_slice(&p);
    b.push(n.len() as u8);
    b.extend_from_slice(&n);
    descriptor(0x48, &b)
}

/// An SDT service entry.
#[derive(Debug, Clone)]
pub struct SdtService {
    pub service_id: u16,
    pub eit_present_following: bool,
    pub running_status: u8,
    pub descriptors: Vec<u8>,
}

/// SDT actual (table 0x42).
pub fn sdt_actual(tsid: u16, onid: u16, version: u8, services: &[SdtService]) -> Vec<u8> {
    sdt(0x42, tsid, onid, version, services, &[])
}

/// An SDT section: `table_id` 0x42 (actual) or 0x46 (other); the services listed in
/// `free_ca` carry free_CA_mode = 1 (some components may be scrambled).
pub fn sdt(
    table_id: u8,
    tsid: u16,
    onid: u16,
    version: u8,
    services: &[SdtService],
    free_ca: &[u16],
) -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(&onid.to_be_bytes());
    body.push(0xFF);
    for s in services {
        body.extend_from_slice(&s.service_id.to_be_bytes());
        body.push(0xFC | if s.eit_present_following { 0x01 } else { 0 });
        let l = s.descriptors.len() as u16 & 0x0FFF;
        let ca = if free_ca.contains(&s.service_id) {
            0x10
        } else {
            0
        };
        body.push(((s.running_status & 0x07) << 5) | ca | ((l >> 8) as u8 & 0x0F));
        body.push(l as u8);
        body.extend_from_slice(&s.descriptors);
    }
    long_section(table_id, tsid, version, 0, 0, &body)
}

/// CA_descriptor (0x09) of a PMT: `ca_system_id` and the PID of its ECMs (EMMs in the CAT).
pub fn ca_descriptor(ca_system_id: u16, ca_pid: u16) -> Vec<u8> {
    let mut b = ca_system_id.to_be_bytes().to_vec();
    b.extend_from_slice(&(0xE000 | (ca_pid & 0x1FFF)).to_be_bytes());
    descriptor(0x09, &b)
}

/// A transport stream entry in a NIT.
#[derive(Debug, Clone)]
pub struct NitTransport {
    pub tsid: u16,
    pub onid: u16,
    pub descriptors: Vec<u8>,
}

/// NIT actual (table 0x40).
pub fn nit_actual(
    network_id: u16,
    version: u8,
    network_descriptors: &[u8],
    transports: &[NitTransport],
) -> Vec<u8> {
    nit(0x40, network_id, version, network_descriptors, transports)
}

/// A NIT section: `table_id` 0x40 (actual) or 0x41 (other: a network this TS is not part of).
pub fn nit(
    table_id: u8,
    network_id: u16,
    version: u8,
    network_descriptors: &[u8],
    transports: &[NitTransport],
) -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(&(0xF000 | (network_descriptors.len() as u16 & 0x0FFF)).to_be_bytes());
    body.extend_from_slice(network_descriptors);
    let mut ts_loop = Vec::new();
    for t in transports {
        ts_loop.extend_from_slice(&t.tsid.to_be_bytes());
        ts_loop.extend_from_slice(&t.onid.to_be_bytes());
        ts_loop.extend_from_slice(&(0xF000 | (t.descriptors.len() as u16 & 0x0FFF)).to_be_bytes());
        ts_loop.extend_from_slice(&t.descriptors);
    }
    body.extend_from_slice(&(0xF000 | (ts_loop.len() as u16 & 0x0FFF)).to_be_bytes());
    body.extend_from_slice(&ts_loop);
    long_section(table_id, network_id, version, 0, 0, &body)
}

/// private_data_specifier_descriptor (0x5F): gives the private descriptors after it in the
/// same loop their meaning (0x28 EACEM/E-Book, 0x29 NorDig, 0x233A UK DTG).
pub fn private_data_specifier_descriptor(pds: u32) -> Vec<u8> {
    descriptor(0x5F, &pds.to_be_bytes())
}

/// A logical channel number of [`logical_channel_descriptor`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LcnEntry {
    pub service_id: u16,
    pub visible: bool,
    /// 10 bits.
    pub number: u16,
}

/// EACEM/E-Book logical_channel_descriptor (private tag 0x83, 10-bit numbers), preceded by
/// the private_data_specifier_descriptor (PDS 0x28) it needs: put the result in a NIT
/// transport loop as is. Empty when `entries` is.
pub fn logical_channel_descriptor(entries: &[LcnEntry]) -> Vec<u8> {
    if entries.is_empty() {
        return Vec::new();
    }
    let mut b = Vec::with_capacity(entries.len() * 4);
    for e in entries {
        b.extend_from_slice(&e.service_id.to_be_bytes());
        let v = if e.visible { 0x8000 } else { 0 } | 0x7C00 | (e.number & 0x03FF);
        b.extend_from_slice(&v.to_be_bytes());
    }
    let mut d = private_data_specifier_descriptor(0x28);
    d.extend(descriptor(0x83, &b));
    d
}

/// network_name_descriptor (0x40).
pub fn network_name_descriptor(name: &str) -> Vec<u8> {
    descriptor(0x40, &dvb_string(name, 250))
}

/// service_list_descriptor (0x41).
pub fn service_list_descriptor(services: &[(u16, u8)]) -> Vec<u8> {
    let mut b = Vec::new();
    for (sid, ty) in services {
        b.extend_from_slice(&sid.to_be_bytes());
        b.push(*ty);
    }
    descriptor(0x41, &b)
}

fn bcd(value: u64, digits: u32) -> u64 {
    let mut out = 0u64;
    let mut v = value;
    for i in 0..digits {
        out |= (v % 10) << (4 * i);
        v /= 10;
    }
    out
}

/// terrestrial_delivery_system_descriptor (0x5A). `bandwidth_hz` in 8/7/6/5 MHz.
pub fn terrestrial_delivery_descriptor(frequency_hz: u64, bandwidth_hz: u32) -> Vec<u8> {
    let f = (frequency_hz / 10) as u32;
    let bw = match bandwidth_hz {
        7_000_000 => 1u8,
        6_000_000 => 2,
        5_000_000 => 3,
        _ => 0,
    };
    let mut b = f.to_be_bytes().to_vec();
    // bandwidth(3) priority(1)=1 time_slicing(1)=1 (not used) mpe_fec(1)=1 reserved(2)
    b.push((bw << 5) | 0x1F);
    // constellation 64-QAM (2), hierarchy 0, code_rate_HP 2/3 (1)
    b.push((2 << 6) | 0x01);
    // code_rate_LP(3)=0 guard(2)=1/4 (3)? use 1/32 (0) transmission_mode(2)=8k (1) other_freq 0
    b.push(0x01 << 1);
    b.extend_from_slice(&[0xFF; 4]);
    descriptor(0x5A, &b)
}

/// T2_delivery_system_descriptor: extension descriptor 0x7F, tag_extension 0x04 (short form).
pub fn t2_delivery_descriptor(plp_id: u8, t2_system_id: u16) -> Vec<u8> {
    let mut b = vec![0x04, plp_id];
    b.extend_from_slice(&t2_system_id.to_be_bytes());
    descriptor(0x7F, &b)
}

/// T2_delivery_system_descriptor, long form: SISO, one cell (id 0) at `frequency_hz`, no TFS,
/// guard interval 19/256 and 32k FFT (the usual UK/DE T2 parameters). `bandwidth_hz` in
/// 8/7/6/5/10/1.712 MHz.
pub fn t2_delivery_descriptor_long(
    plp_id: u8,
    t2_system_id: u16,
    bandwidth_hz: u32,
    frequency_hz: u64,
) -> Vec<u8> {
    let bw = match bandwidth_hz {
        7_000_000 => 1u8,
        6_000_000 => 2,
        5_000_000 => 3,
        10_000_000 => 4,
        1_712_000 => 5,
        _ => 0,
    };
    let mut b = vec![0x04, plp_id];
    b.extend_from_slice(&t2_system_id.to_be_bytes());
    // SISO_MISO(2)=0 bandwidth(4) reserved(2)
    b.push((bw << 2) | 0x03);
    // guard_interval(3)=19/256 (6) transmission_mode(3)=32k (5) other_frequency 0 tfs 0
    b.push((6 << 5) | (5 << 2));
    b.extend_from_slice(&[0x00, 0x00]); // cell_id
    b.extend_from_slice(&((frequency_hz / 10) as u32).to_be_bytes());
    b.push(0); // subcell_info_loop_length
    descriptor(0x7F, &b)
}

/// cable_delivery_system_descriptor (0x44). `modulation`: 1=16QAM … 5=256QAM.
pub fn cable_delivery_descriptor(
    frequency_hz: u64,
    symbol_rate_ksym: u32,
    modulation: u8,
) -> Vec<u8> {
    // frequency: 8 BCD digits, 100 Hz units (XXXX.XXXX MHz)
    let f = bcd(frequency_hz / 100, 8) as u32;
    let mut b = f.to_be_bytes().to_vec();
    b.push(0xFF);
    b.push(0xF0 | 0x02); // FEC_outer RS(204/188)
    b.push(modulation);
    // symbol rate: 7 BCD digits in 100 sym/s units, then FEC_inner(4) = 0xF (none/unknown)
    let sr = bcd(symbol_rate_ksym as u64 * 10, 7) as u32;
    b.extend_from_slice(&((sr << 4) | 0x0F).to_be_bytes());
    descriptor(0x44, &b)
}

/// satellite_delivery_system_descriptor (0x43). Polarisation 0=H 1=V 2=L 3=R.
pub fn satellite_delivery_descriptor(
    frequency_khz: u64,
    orbital_position_tenths: u16,
    east: bool,
    polarisation: u8,
    s2: bool,
    symbol_rate_ksym: u32,
) -> Vec<u8> {
    // frequency: 8 BCD digits in 10 kHz units (XXX.XXXXX GHz)
    let f = bcd(frequency_khz / 10, 8) as u32;
    let mut b = f.to_be_bytes().to_vec();
    b.extend_from_slice(&(bcd(orbital_position_tenths as u64, 4) as u16).to_be_bytes());
    // west_east(1) polarization(2) roll_off(2) modulation_system(1) modulation_type(2)
    let modtype = if s2 { 2u8 } else { 1 }; // 8PSK / QPSK
    b.push(
        (if east { 0x80 } else { 0 })
            | ((polarisation & 3) << 5)
            | if s2 { 0x04 } else { 0 }
            | modtype,
    );
    let sr = bcd(symbol_rate_ksym as u64 * 10, 7) as u32;
    b.extend_from_slice(&((sr << 4) | 0x03).to_be_bytes()); // FEC 3/4
    descriptor(0x43, &b)
}

/// Converts unix seconds to DVB UTC_time: 16-bit MJD + 24-bit BCD hh:mm:ss.
pub fn utc_time(unix_secs: i64) -> [u8; 5] {
    let days = unix_secs.div_euclid(86_400);
    let secs = unix_secs.rem_euclid(86_400);
    let mjd = (40_587 + days).clamp(0, 0xFFFF) as u16;
    let h = bcd((secs / 3600) as u64, 2) as u8;
    let m = bcd(((secs / 60) % 60) as u64, 2) as u8;
    let s = bcd((secs % 60) as u64, 2) as u8;
    let mb = mjd.to_be_bytes();
    [mb[0], mb[1], h, m, s]
}

/// A duration as 24-bit BCD hh:mm:ss.
pub fn bcd_duration(secs: u32) -> [u8; 3] {
    [
        bcd((secs / 3600) as u64 % 100, 2) as u8,
        bcd(((secs / 60) % 60) as u64, 2) as u8,
        bcd((secs % 60) as u64, 2) as u8,
    ]
}

/// TDT (table 0x70): short section without CRC.
pub fn tdt(unix_secs: i64) -> Vec<u8> {
    let mut s = vec![0x70, 0x70, 0x05];
    s.extend_from_slice(&utc_time(unix_secs));
    s
}

/// TOT (table 0x73) with an optional descriptor loop, and CRC.
pub fn tot(unix_secs: i64, descriptors: &[u8]) -> Vec<u8> {
    let section_length = 5 + 2 + descriptors.len() + 4;
    let mut s = vec![
        0x73,
        0x70 | ((section_length >> 8) as u8 & 0x0F),
        section_length as u8,
    ];
    s.extend_from_slice(&utc_time(unix_secs));
    s.extend_from_slice(&(0xF000 | (descriptors.len() as u16 & 0x0FFF)).to_be_bytes());
    s.extend_from_slice(descriptors);
    let crc = crc32_mpeg2(&s);
    s.extend_from_slice(&crc.to_be_bytes());
    s
}

/// An EIT event.
#[derive(Debug, Clone)]
pub struct EitEvent {
    pub event_id: u16,
    pub start_unix: i64,
    pub duration_secs: u32,
    /// 4 = running, 1 = not running.
    pub running_status: u8,
    pub name: String,
    pub text: String,
}

/// short_event_descriptor (0x4D).
pub fn short_event_descriptor(lang: &[u8; 3], name: &str, text: &str) -> Vec<u8> {
    let n = dvb_string(name, 80);
    let t = dvb_string(text, 150);
    let mut b = lang.to_vec();
    b.push(n.len() as u8);
    b.extend_from_slice(&n);
    b.push(t.len() as u8);
    b.extend_from_slice(&t);
    descriptor(0x4D, &b)
}

/// One EIT present/following actual section (table 0x4E): section 0 = present, 1 = following.
pub fn eit_pf(
    service_id: u16,
    tsid: u16,
    onid: u16,
    version: u8,
    section_number: u8,
    event: Option<&EitEvent>,
) -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(&tsid.to_be_bytes());
    body.extend_from_slice(&onid.to_be_bytes());
    body.push(1); // segment_last_section_number
    body.push(0x4E); // last_table_id
    if let Some(e) = event {
        body.extend_from_slice(&e.event_id.to_be_bytes());
        body.extend_from_slice(&utc_time(e.start_unix));
        body.extend_from_slice(&bcd_duration(e.duration_secs));
        let d = short_event_descriptor(b"eng", &e.name, &e.text);
        let l = d.len() as u16 & 0x0FFF;
        body.push(((e.running_status & 7) << 5) | ((l >> 8) as u8 & 0x0F));
        body.push(l as u8);
        body.extend_from_slice(&d);
    }
    long_section(0x4E, service_id, version, section_number, 1, &body)
}

/// Splits sections into TS packets on one PID, keeping the continuity counter.
#[derive(Debug, Clone)]
pub struct SectionPacketizer {
    pub pid: u16,
    pub cc: u8,
}

impl SectionPacketizer {
    pub fn new(pid: u16) -> Self {
        Self { pid, cc: 0 }
    }

    /// Appends the packets carrying `section` (one section per packet run, pointer_field 0,
    /// 0xFF stuffing) to `out`. Returns the number of packets written.
    pub fn packetize(&mut self, section: &[u8], out: &mut Vec<u8>) -> usize {
        let mut n = 0;
        let mut rest = section;
        let mut first = true;
        while first || !rest.is_empty() {
            let start = out.len();
            out.push(0x47);
            out.push(if first { 0x40 } else { 0x00 } | ((self.pid >> 8) as u8 & 0x1F));
            out.push(self.pid as u8);
            out.push(0x10 | (self.cc & 0x0F));
            self.cc = (self.cc + 1) & 0x0F;
            if first {
                out.push(0x00); // pointer_field
            }
            let room = 188 - (out.len() - start);
            let take = room.min(rest.len());
            out.extend_from_slice(&rest[..take]);
            rest = &rest[take..];
            out.resize(start + 188, 0xFF);
            first = false;
            n += 1;
        }
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pat_bytes() {
        let s = pat(
            1,
            0,
            &[
                PatEntry {
                    program_number: 0,
                    pid: 0x10,
                },
                PatEntry {
                    program_number: 1,
                    pid: 0x100,
                },
            ],
        );
        assert_eq!(&s[..8], &[0x00, 0xB0, 0x11, 0x00, 0x01, 0xC1, 0x00, 0x00]);
        assert_eq!(&s[8..16], &[0x00, 0x00, 0xE0, 0x10, 0x00, 0x01, 0xE1, 0x00]);
        assert_eq!(crc32_mpeg2(&s), 0);
        assert_eq!(s.len(), 3 + 0x11);
    }

    #[test]
    fn utc_time_matches_en300468_example() {
        // EN 300 468 annex C: 93/10/13 12:45:00 is coded as "0xC079124500".
        let t = 750_516_300; // 1993-10-13T12:45:00Z
        assert_eq!(utc_time(t), [0xC0, 0x79, 0x12, 0x45, 0x00]);
    }

    #[test]
    fn tot_checks_to_zero_and_tdt_layout() {
        let t = tot(750_516_300, &[]);
        assert_eq!(crc32_mpeg2(&t), 0);
        assert_eq!(t[0], 0x73);
        let d = tdt(750_516_300);
        assert_eq!(d, vec![0x70, 0x70, 0x05, 0xC0, 0x79, 0x12, 0x45, 0x00]);
    }

    #[test]
    fn cable_descriptor_bcd() {
        let d = cable_delivery_descriptor(346_000_000, 6900, 5);
        assert_eq!(&d[..6], &[0x44, 11, 0x03, 0x46, 0x00, 0x00]);
        assert_eq!(d[8], 5);
        assert_eq!(&d[9..13], &[0x00, 0x69, 0x00, 0x0F]);
    }

    #[test]
    fn satellite_descriptor_bcd() {
        let d = satellite_delivery_descriptor(11_494_000, 192, true, 0, true, 22_000);
        assert_eq!(&d[2..6], &[0x01, 0x14, 0x94, 0x00]);
        assert_eq!(&d[6..8], &[0x01, 0x92]);
        assert_eq!(&d[9..13], &[0x02, 0x20, 0x00, 0x03]);
    }

    #[test]
    fn t2_long_form_matches_the_digest_example() {
        // dvb-scan.md §5.4: 474 MHz PLP 0 system 0x8001 8 MHz 19/256 32k.
        assert_eq!(
            t2_delivery_descriptor_long(0, 0x8001, 8_000_000, 474_000_000),
            vec![
                0x7F, 0x0D, 0x04, 0x00, 0x80, 0x01, 0x03, 0xD4, 0x00, 0x00, 0x02, 0xD3, 0x44, 0x40,
                0x00
            ]
        );
    }

    #[test]
    fn lcn_descriptor_matches_the_digest_example() {
        // dvb-scan.md §6: PDS EACEM; 0x0101→1, 0x0102→2 visible, 0x0103→800 hidden.
        let e = |service_id, visible, number| LcnEntry {
            service_id,
            visible,
            number,
        };
        assert_eq!(
            logical_channel_descriptor(&[
                e(0x0101, true, 1),
                e(0x0102, true, 2),
                e(0x0103, false, 800)
            ]),
            vec![
                0x5F, 0x04, 0x00, 0x00, 0x00, 0x28, 0x83, 0x0C, 0x01, 0x01, 0xFC, 0x01, 0x01, 0x02,
                0xFC, 0x02, 0x01, 0x03, 0x7F, 0x20
            ]
        );
        assert!(logical_channel_descriptor(&[]).is_empty());
    }

    #[test]
    fn sdt_free_ca_mode_and_ca_descriptor() {
        let svc = |service_id| SdtService {
            service_id,
            eit_present_following: true,
            running_status: 4,
            descriptors: vec![],
        };
        let s = sdt(0x46, 7, 1, 0, &[svc(1), svc(2)], &[2]);
        assert_eq!(s[0], 0x46);
        assert_eq!(crc32_mpeg2(&s), 0);
        // After the 8-byte header and onid + reserved: 5 bytes per service.
        assert_eq!(&s[11..16], &[0x00, 0x01, 0xFD, 0x80, 0x00]);
        assert_eq!(&s[16..21], &[0x00, 0x02, 0xFD, 0x90, 0x00]);
        assert_eq!(
            ca_descriptor(0x0B00, 0x123),
            vec![0x09, 0x04, 0x0B, 0x00, 0xE1, 0x23]
        );
        assert_eq!(nit(0x41, 9, 0, &[], &[])[0], 0x41);
    }

    #[test]
    fn packetizer_splits_long_sections_and_counts_cc() {
        let mut p = SectionPacketizer::new(0x12);
        let section = vec![0xAB; 400];
        let mut out = Vec::new();
        let n = p.packetize(&section, &mut out);
        assert_eq!(n, 3);
        assert_eq!(out.len(), 3 * 188);
        assert_eq!(out[1] & 0x40, 0x40);
        assert_eq!(out[188 + 1] & 0x40, 0);
        assert_eq!(out[3] & 0x0F, 0);
        assert_eq!(out[188 + 3] & 0x0F, 1);
        assert_eq!(p.cc, 3);
        // 183 + 184 + 33 bytes of section, then stuffing.
        assert_eq!(out[2 * 188 + 4 + 32], 0xAB);
        assert_eq!(out[2 * 188 + 4 + 33], 0xFF);
    }
}
