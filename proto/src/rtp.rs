//! RTP and RTCP packets as SAT>IP sends them (RFC 3550; satip.md §3.5.15, §3.6.1): the
//! 12-byte RTP header of payload type 33 and the sender report / SDES parts of the compound
//! RTCP packet (the APP `SES1` part is [`super::satip::encode_rtcp_app_ses1`]).

/// RTP payload type of MPEG-2 TS.
pub const PT_MP2T: u8 = 33;
/// Size of the fixed RTP header (no CSRC, no extension).
pub const RTP_HEADER_LEN: usize = 12;
const RTCP_PT_SR: u8 = 200;
const RTCP_PT_SDES: u8 = 202;
const SDES_CNAME: u8 = 1;
/// Seconds from 1900-01-01 (NTP era 0) to 1970-01-01.
const NTP_UNIX_OFFSET: u64 = 2_208_988_800;

/// The fixed RTP header: version 2, no padding/extension/CSRC, marker clear, PT 33.
pub fn rtp_header(seq: u16, timestamp: u32, ssrc: u32) -> [u8; RTP_HEADER_LEN] {
    let mut h = [0u8; RTP_HEADER_LEN];
    h[0] = 0x80;
    h[1] = PT_MP2T;
    h[2..4].copy_from_slice(&seq.to_be_bytes());
    h[4..8].copy_from_slice(&timestamp.to_be_bytes());
    h[8..12].copy_from_slice(&ssrc.to_be_bytes());
    h
}

/// 64-bit NTP timestamp (seconds since 1900 in the high word, binary fraction in the low one)
/// of `unix_nanos` nanoseconds since the Unix epoch.
pub fn ntp_timestamp(unix_nanos: u128) -> u64 {
    let secs = (unix_nanos / 1_000_000_000) as u64 + NTP_UNIX_OFFSET;
    let frac = ((unix_nanos % 1_000_000_000) << 32) / 1_000_000_000;
    (secs << 32) | frac as u64
}

/// Appends a sender report without report blocks (28 bytes).
pub fn push_sender_report(
    out: &mut Vec<u8>,
    ssrc: u32,
    ntp: u64,
    rtp_timestamp: u32,
    packets: u32,
    octets: u32,
) {
    out.extend_from_slice(&[0x80, RTCP_PT_SR]);
    out.extend_from_slice(&6u16.to_be_bytes());
    out.extend_from_slice(&ssrc.to_be_bytes());
    out.extend_from_slice(&ntp.to_be_bytes());
    out.extend_from_slice(&rtp_timestamp.to_be_bytes());
    out.extend_from_slice(&packets.to_be_bytes());
    out.extend_from_slice(&octets.to_be_bytes());
}

/// Appends an SDES packet with one chunk carrying the CNAME item (at most 255 bytes of it),
/// terminated and padded to a 32-bit boundary.
pub fn push_sdes_cname(out: &mut Vec<u8>, ssrc: u32, cname: &str) {
    let mut end = cname.len().min(255);
    while !cname.is_char_boundary(end) {
        end -= 1;
    }
    let name = &cname.as_bytes()[..end];
    // SSRC + item type + length + text + at least one terminating zero, padded.
    let chunk = 4 + 2 + name.len() + 1;
    let chunk = chunk.div_ceil(4) * 4;
    let words = ((4 + chunk) / 4 - 1) as u16;
    let start = out.len();
    out.extend_from_slice(&[0x81, RTCP_PT_SDES]);
    out.extend_from_slice(&words.to_be_bytes());
    out.extend_from_slice(&ssrc.to_be_bytes());
    out.push(SDES_CNAME);
    out.push(name.len() as u8);
    out.extend_from_slice(name);
    out.resize(start + 4 + chunk, 0);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_layout() {
        let h = rtp_header(0x1234, 0xdead_beef, 0x0102_0304);
        assert_eq!(
            h,
            [0x80, 33, 0x12, 0x34, 0xde, 0xad, 0xbe, 0xef, 1, 2, 3, 4]
        );
    }

    #[test]
    fn ntp_of_the_unix_epoch_and_half_seconds() {
        assert_eq!(ntp_timestamp(0) >> 32, NTP_UNIX_OFFSET);
        assert_eq!(
            ntp_timestamp(1_500_000_000),
            ((NTP_UNIX_OFFSET + 1) << 32) | 0x8000_0000
        );
    }

    #[test]
    fn compound_sr_sdes_lengths_are_consistent() {
        let mut out = Vec::new();
        push_sender_report(&mut out, 7, ntp_timestamp(0), 90_000, 10, 13_160);
        assert_eq!(out.len(), 28);
        assert_eq!(u16::from_be_bytes([out[2], out[3]]), 6);
        for cname in ["", "a", "ab", "abc", "dvb2ip@127.0.0.1", &"x".repeat(300)] {
            let mut o = Vec::new();
            push_sdes_cname(&mut o, 7, cname);
            assert_eq!(o.len() % 4, 0, "{cname:?}");
            assert_eq!(
                (usize::from(u16::from_be_bytes([o[2], o[3]])) + 1) * 4,
                o.len()
            );
            assert_eq!(o[1], 202);
            assert_eq!(o[8], 1);
            let n = usize::from(o[9]);
            assert_eq!(n, cname.len().min(255));
            assert_eq!(&o[10..10 + n], &cname.as_bytes()[..n]);
            assert_eq!(o[10 + n], 0, "terminated");
        }
    }
}
