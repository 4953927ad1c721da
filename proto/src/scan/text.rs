//! DVB text strings (EN 300 468 Annex A): the character-table selector, the one-byte tables
//! (ISO/IEC 6937 with € by default, ISO/IEC 8859-n), UCS-2 and UTF-8, control codes and trimming.
//!
//! `psi::decode_dvb_string` reads every one-byte table as Latin-1; this decoder is exact for the
//! default table and 8859-1…-16. The multi-byte East Asian tables (0x12 KS X 1001, 0x13 GB 2312,
//! 0x14 Big5) have no decoder in std: their ASCII bytes are kept, other bytes become U+FFFD.

use super::text_tables::{iso8859_upper, mark_6937, COMBINING_6937, ISO6937_UPPER};

/// The character table a string is coded in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Charset {
    /// No selector: ISO/IEC 6937 plus the euro sign (figure A.1).
    Default,
    /// ISO/IEC 8859-n.
    Iso8859(u8),
    /// 0x11: ISO/IEC 10646 basic multilingual plane, two bytes per character, big-endian.
    Ucs2,
    /// 0x15: UTF-8.
    Utf8,
    /// 0x12, 0x13, 0x14 and 0x1F + id: tables we cannot decode (selector byte).
    Unsupported(u8),
}

/// Split off the character-table selector (Annex A, table A.3).
pub fn charset(bytes: &[u8]) -> (Charset, &[u8]) {
    let rest1 = || bytes.get(1..).unwrap_or(&[]);
    match bytes.first() {
        None => (Charset::Default, bytes),
        Some(&b) if b >= 0x20 => (Charset::Default, bytes),
        Some(&b @ 0x01..=0x0B) => (Charset::Iso8859(b + 4), rest1()),
        Some(&0x10) => match bytes.get(1..3) {
            Some(&[0x00, n]) if iso8859_upper(n).is_some() => {
                (Charset::Iso8859(n), bytes.get(3..).unwrap_or(&[]))
            }
            _ => (Charset::Unsupported(0x10), bytes.get(3..).unwrap_or(&[])),
        },
        Some(&0x11) => (Charset::Ucs2, rest1()),
        Some(&0x15) => (Charset::Utf8, rest1()),
        Some(&0x1F) => (Charset::Unsupported(0x1F), bytes.get(2..).unwrap_or(&[])),
        Some(&b) => (Charset::Unsupported(b), rest1()),
    }
}

/// What a control code (U+0080..U+009F, or 0xE080.. in UCS-2) becomes: 0x8A is a line break,
/// 0x86/0x87 (emphasis on/off) and the rest are dropped.
fn control(code: u32) -> Option<char> {
    (code & 0xFF == 0x8A).then_some('\n')
}

/// Decode a DVB string to Unicode, dropping control codes and trimming blanks at both ends.
pub fn decode(bytes: &[u8]) -> String {
    let (cs, text) = charset(bytes);
    let mut out = String::with_capacity(text.len());
    match cs {
        Charset::Default => decode_6937(text, &mut out),
        Charset::Iso8859(n) => {
            let upper = iso8859_upper(n).unwrap_or(&ISO6937_UPPER);
            for &b in text {
                match b {
                    0x00..=0x7F => out.push(char::from(b)),
                    0x80..=0x9F => out.extend(control(u32::from(b))),
                    _ => match upper[usize::from(b - 0xA0)] {
                        0 => out.push(char::REPLACEMENT_CHARACTER),
                        u => out.push(char::from_u32(u32::from(u)).unwrap_or('\u{FFFD}')),
                    },
                }
            }
        }
        Charset::Ucs2 => {
            let units = text
                .chunks_exact(2)
                .map(|c| u16::from_be_bytes([c[0], c[1]]));
            for r in char::decode_utf16(units) {
                match r {
                    Ok(c)
                        if ('\u{80}'..='\u{9F}').contains(&c)
                            || ('\u{E080}'..='\u{E09F}').contains(&c) =>
                    {
                        out.extend(control(c as u32))
                    }
                    Ok(c) => out.push(c),
                    Err(_) => out.push(char::REPLACEMENT_CHARACTER),
                }
            }
        }
        Charset::Utf8 => {
            for c in String::from_utf8_lossy(text).chars() {
                if ('\u{80}'..='\u{9F}').contains(&c) {
                    out.extend(control(c as u32));
                } else {
                    out.push(c);
                }
            }
        }
        Charset::Unsupported(_) => {
            for &b in text {
                out.push(if b < 0x80 {
                    char::from(b)
                } else {
                    char::REPLACEMENT_CHARACTER
                });
            }
        }
    }
    out.trim_matches(|c: char| c == ' ' || c == '\u{A0}' || c == '\t')
        .to_owned()
}

fn decode_6937(text: &[u8], out: &mut String) {
    let mut i = 0;
    while i < text.len() {
        let b = text[i];
        i += 1;
        match b {
            0x00..=0x7F => out.push(char::from(b)),
            0x80..=0x9F => out.extend(control(u32::from(b))),
            0xC1..=0xCF => {
                // A non-spacing diacritic precedes its base letter.
                let Some(mark) = mark_6937(b) else {
                    out.push(char::REPLACEMENT_CHARACTER);
                    continue;
                };
                match text.get(i) {
                    Some(&base) if base.is_ascii_alphabetic() => {
                        i += 1;
                        match COMBINING_6937
                            .iter()
                            .find(|(d, l, _)| *d == b && *l == base)
                        {
                            Some((_, _, u)) => {
                                out.push(char::from_u32(u32::from(*u)).unwrap_or('\u{FFFD}'))
                            }
                            None => {
                                out.push(char::from(base));
                                out.push(mark);
                            }
                        }
                    }
                    _ => out.push(mark),
                }
            }
            _ => match ISO6937_UPPER[usize::from(b - 0xA0)] {
                0 => out.push(char::REPLACEMENT_CHARACTER),
                u => out.push(char::from_u32(u32::from(u)).unwrap_or('\u{FFFD}')),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_table_is_6937_with_euro() {
        // "Caf" + acute + "e", then 0xA4 = € (not ¤ as in Latin-1), and "Ł".
        assert_eq!(decode(b"Caf\xC2e \xA4 \xE8odz"), "Café € Łodz");
        // A diacritic with a base that has no precomposed form keeps the combining mark.
        assert_eq!(decode(b"\xCFq"), "q\u{30C}");
    }

    #[test]
    fn selectors_pick_8859_tables() {
        // 0x01 = ISO 8859-5: 0xB0 is Cyrillic А.
        assert_eq!(decode(b"\x01\xB0\xB1"), "АБ");
        // 0x10 0x00 0x02 = ISO 8859-2: 0xA3 is Ł.
        assert_eq!(decode(b"\x10\x00\x02\xA3"), "Ł");
        // 0x10 0x00 0x01 = Latin-1, as si.rs writes non-ASCII names.
        assert_eq!(decode(b"\x10\x00\x01Z\xFCrich"), "Zürich");
        // 0x0B = ISO 8859-15: 0xA4 is €.
        assert_eq!(decode(b"\x0B\xA4"), "€");
        // 0x07 = ISO 8859-11 (Thai): 0xA1 is ก.
        assert_eq!(decode(b"\x07\xA1"), "ก");
    }

    #[test]
    fn utf8_ucs2_controls_and_trim() {
        assert_eq!(decode("\u{15}  Ünïcødé ".as_bytes()), "Ünïcødé");
        assert_eq!(decode(b"\x11\x00A\x04\x10"), "AА");
        assert_eq!(decode(b"\x11\xE0\x86\x00B\xE0\x8A\x00C"), "B\nC");
        assert_eq!(decode(b" News\x86 24\x87\x8Aline "), "News 24\nline");
        assert_eq!(decode(b"\x15A\xC2\x8AB\xC2\x86"), "A\nB");
        assert_eq!(decode(b""), "");
    }

    #[test]
    fn unsupported_tables_keep_ascii() {
        assert_eq!(decode(b"\x13AB\xB0\xA1"), "AB\u{FFFD}\u{FFFD}");
    }
}
