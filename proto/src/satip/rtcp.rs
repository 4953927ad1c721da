//! The RTCP APP packet `SES1` carrying the status string (§6.1).

/// RTCP packet type APP.
pub const RTCP_PT_APP: u8 = 204;
/// Longest status string an APP packet can carry (16-bit `string_length`).
pub const MAX_APP_STRING: usize = 65_535;

/// Encode the SAT>IP RTCP APP packet: V=2, subtype 0, PT 204, name `SES1`, identifier 0,
/// 16-bit string length, the status string, zero fill to 4 bytes (not signalled by P).
/// A longer string than [`MAX_APP_STRING`] is cut at a character boundary.
pub fn encode_rtcp_app_ses1(ssrc: u32, status: &str) -> Vec<u8> {
    let mut end = status.len().min(MAX_APP_STRING);
    while end > 0 && !status.is_char_boundary(end) {
        end -= 1;
    }
    let s = status.as_bytes().get(..end).unwrap_or_default();
    let pad = (4 - s.len() % 4) % 4;
    let total = 16 + s.len() + pad;
    let words = (total / 4 - 1) as u16;
    let mut out = Vec::with_capacity(total);
    out.push(0x80);
    out.push(RTCP_PT_APP);
    out.extend_from_slice(&words.to_be_bytes());
    out.extend_from_slice(&ssrc.to_be_bytes());
    out.extend_from_slice(b"SES1");
    out.extend_from_slice(&0u16.to_be_bytes());
    out.extend_from_slice(&(s.len() as u16).to_be_bytes());
    out.extend_from_slice(s);
    out.resize(total, 0);
    out
}

/// Decode one APP `SES1` packet at the start of `packet`: `(ssrc, status string)`.
/// `None` if it is not a well-formed SES1 APP packet.
pub fn decode_rtcp_app_ses1(packet: &[u8]) -> Option<(u32, String)> {
    let hdr = packet.get(..16)?;
    if hdr[0] & 0xC0 != 0x80 || hdr[1] != RTCP_PT_APP || &hdr[8..12] != b"SES1" {
        return None;
    }
    let total = (usize::from(u16::from_be_bytes([hdr[2], hdr[3]])) + 1) * 4;
    let ssrc = u32::from_be_bytes([hdr[4], hdr[5], hdr[6], hdr[7]]);
    let len = usize::from(u16::from_be_bytes([hdr[14], hdr[15]]));
    if 16 + len > total || total > packet.len() {
        return None;
    }
    let s = packet.get(16..16 + len)?;
    Some((ssrc, String::from_utf8(s.to_vec()).ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::satip::test_util::*;
    use crate::satip::*;

    #[test]
    fn checklist_97_rtcp_app_layout() {
        // Worked example of §6.1.
        let status = "ver=1.0;src=1;tuner=1,200,1,12,11494,h,dvbs2,8psk,on,0.35,22000,23;pids=0,17,18,5100,5101";
        let pkt = encode_rtcp_app_ses1(0x1A2B_3C4D, status);
        let mut expected = vec![
            0x80, 0xcc, 0x00, 0x1a, 0x1a, 0x2b, 0x3c, 0x4d, 0x53, 0x45, 0x53, 0x31, 0x00, 0x00,
            0x00, 0x59,
        ];
        expected.extend_from_slice(status.as_bytes());
        expected.extend_from_slice(&[0, 0, 0]);
        assert_eq!(pkt.len(), 108);
        assert_eq!(pkt, expected);
        // Already aligned: no padding.
        let pkt = encode_rtcp_app_ses1(1, "abcd");
        assert_eq!(pkt.len(), 20);
        assert_eq!(&pkt[2..4], &[0, 4]);
        assert_eq!(&pkt[14..16], &[0, 4]);
        for n in 0..9 {
            let s = "x".repeat(n);
            let p = encode_rtcp_app_ses1(7, &s);
            assert_eq!(p.len() % 4, 0);
            assert_eq!(
                usize::from(u16::from_be_bytes([p[2], p[3]])),
                p.len() / 4 - 1
            );
            assert_eq!(decode_rtcp_app_ses1(&p), Some((7, s)));
        }
        // Oversized strings are cut, never panic.
        let huge = "é".repeat(40_000);
        let p = encode_rtcp_app_ses1(1, &huge);
        let (_, back) = decode_rtcp_app_ses1(&p).expect("decodes");
        assert!(back.len() <= MAX_APP_STRING && huge.starts_with(&back));
    }

    #[test]
    fn checklist_98_app_string_is_fmtp_string() {
        let s = spec(SAT_Q);
        let fmtp = status_string(2, locked(196, 13), Some(&s.tuning), &s.pids);
        let pkt = encode_rtcp_app_ses1(42, &fmtp);
        assert_eq!(decode_rtcp_app_ses1(&pkt), Some((42, fmtp)));
    }

    #[test]
    fn rtcp_app_decode_rejects_garbage() {
        assert_eq!(decode_rtcp_app_ses1(&[]), None);
        assert_eq!(decode_rtcp_app_ses1(&[0x80, 0xcc, 0, 0]), None);
        let mut p = encode_rtcp_app_ses1(1, "hello");
        p[8] = b'X';
        assert_eq!(decode_rtcp_app_ses1(&p), None);
        let mut p = encode_rtcp_app_ses1(1, "hello");
        p[15] = 200;
        assert_eq!(decode_rtcp_app_ses1(&p), None);
        let p = encode_rtcp_app_ses1(1, "hello");
        assert_eq!(decode_rtcp_app_ses1(&p[..p.len() - 1]), None);
    }
}
