//! Number helpers: unsigned and fixed-point decimals in, shortest forms out, percent-decoding.

/// Parse an unsigned decimal (`123`) with at most 10 digits.
pub(super) fn parse_uint(s: &str) -> Option<u64> {
    if s.is_empty() || s.len() > 10 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// Parse a fixed-point decimal (`11361.75`, `191.5`, `.5`) scaled by 10^3, truncating extra
/// fraction digits. No sign, no exponent, at most 12 integer digits.
pub(super) fn parse_milli(s: &str) -> Option<u64> {
    let (int, frac) = s.split_once('.').unwrap_or((s, ""));
    if (int.is_empty() && frac.is_empty())
        || int.len() > 12
        || !int.bytes().all(|b| b.is_ascii_digit())
        || !frac.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let mut v: u64 = 0;
    for b in int.bytes() {
        v = v.checked_mul(10)?.checked_add(u64::from(b - b'0'))?;
    }
    let fb = frac.as_bytes();
    for i in 0..3 {
        let d = fb.get(i).map_or(0, |b| b - b'0');
        v = v.checked_mul(10)?.checked_add(u64::from(d))?;
    }
    Some(v)
}

/// `11494000` kHz-style thousandths → `11494`, `11361.75`, `1.712` (shortest exact form).
pub(super) fn fmt_milli_min(v: u32) -> String {
    let int = v / 1000;
    let frac = v % 1000;
    if frac == 0 {
        return int.to_string();
    }
    let mut f = format!("{frac:03}");
    while f.ends_with('0') {
        f.pop();
    }
    format!("{int}.{f}")
}

/// Thousandths → two decimals, rounded (`11494000` → `11494.00`).
pub(super) fn fmt_milli_2dp(v: u32) -> String {
    let hundredths = (u64::from(v) + 5) / 10;
    format!("{}.{:02}", hundredths / 100, hundredths % 100)
}

pub(super) fn percent_decode(s: &str) -> Option<String> {
    if !s.contains('%') {
        return Some(s.to_owned());
    }
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let h = b.get(i + 1).and_then(|c| (*c as char).to_digit(16))?;
            let l = b.get(i + 2).and_then(|c| (*c as char).to_digit(16))?;
            out.push((h * 16 + l) as u8);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}
