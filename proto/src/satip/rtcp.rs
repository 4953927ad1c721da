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

    /// §6.1's worked example exactly as the digest prints it (offset, 16 bytes, ASCII).
    const SES1_WORKED_EXAMPLE: &str = "\
0000  80 cc 00 1a 1a 2b 3c 4d 53 45 53 31 00 00 00 59  .....+<MSES1...Y
0010  76 65 72 3d 31 2e 30 3b 73 72 63 3d 31 3b 74 75  ver=1.0;src=1;tu
0020  6e 65 72 3d 31 2c 32 30 30 2c 31 2c 31 32 2c 31  ner=1,200,1,12,1
0030  31 34 39 34 2c 68 2c 64 76 62 73 32 2c 38 70 73  1494,h,dvbs2,8ps
0040  6b 2c 6f 6e 2c 30 2e 33 35 2c 32 32 30 30 30 2c  k,on,0.35,22000,
0050  32 33 3b 70 69 64 73 3d 30 2c 31 37 2c 31 38 2c  23;pids=0,17,18,
0060  35 31 30 30 2c 35 31 30 31 00 00 00              5100,5101...
";

    /// The bytes of a hex dump: up to 16 two-digit hex columns after each offset.
    fn dump_bytes(dump: &str) -> Vec<u8> {
        dump.lines()
            .flat_map(|l| {
                l.split_whitespace()
                    .skip(1)
                    .take(16)
                    .take_while(|t| t.len() == 2)
                    .map(|t| u8::from_str_radix(t, 16).expect("hex column"))
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    #[test]
    fn ses1_worked_example_is_produced_byte_for_byte() {
        let want = dump_bytes(SES1_WORKED_EXAMPLE);
        assert_eq!(want.len(), 108, "the digest's example is 108 bytes");
        let status = "ver=1.0;src=1;tuner=1,200,1,12,11494,h,dvbs2,8psk,on,0.35,22000,23;pids=0,17,18,5100,5101";
        assert_eq!(encode_rtcp_app_ses1(0x1A2B_3C4D, status), want);
        assert_eq!(
            decode_rtcp_app_ses1(&want),
            Some((0x1A2B_3C4D, status.to_string()))
        );
    }

    /// The APP packets carrying the two `a=fmtp:33` values of §4.2's DESCRIBE example: the
    /// status strings as the digest prints them, the header bytes written out from §6.1's
    /// layout (92 bytes: no padding, length 26; 63 bytes: one zero, length 19).
    #[test]
    fn app_packets_of_the_describe_example_are_byte_exact() {
        let s = spec("src=1&freq=11494&pol=h&ro=0.35&msys=dvbs2&mtype=8psk&plts=on&sr=22000&fec=23&pids=0,17,18,5100,5101");
        let fmtp = status_string(2, locked(196, 13), Some(&s.tuning), &s.pids);
        let literal: &[u8] = b"ver=1.0;src=1;tuner=2,196,1,13,11494.00,h,dvbs2,8psk,on,0.35,22000,23;pids=0,17,18,5100,5101";
        assert_eq!(fmtp.as_bytes(), literal);
        let mut want = vec![
            0x80, 0xcc, 0x00, 0x1a, 0x1a, 0x2b, 0x3c, 0x4d, b'S', b'E', b'S', b'1', 0x00, 0x00,
            0x00, 0x5c,
        ];
        want.extend_from_slice(literal);
        assert_eq!(encode_rtcp_app_ses1(0x1A2B_3C4D, &fmtp), want);

        let s = spec("freq=538&bw=8&msys=dvbt&tmode=8k&mtype=64qam&gi=14&fec=23");
        let fmtp = status_string(5, SignalStatus::default(), Some(&s.tuning), &s.pids);
        let literal: &[u8] = b"ver=1.1;tuner=5,0,0,0,538.00,8,dvbt,8k,64qam,14,23,,,;pids=none";
        assert_eq!(fmtp.as_bytes(), literal);
        let mut want = vec![
            0x80, 0xcc, 0x00, 0x13, 0x00, 0x00, 0x00, 0x04, b'S', b'E', b'S', b'1', 0x00, 0x00,
            0x00, 0x3f,
        ];
        want.extend_from_slice(literal);
        want.push(0);
        assert_eq!(encode_rtcp_app_ses1(4, &fmtp), want);
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
