//! Pure helpers of RTSP VOD requests: the `npt` Range of a PLAY, the `Scale` header, the
//! `/vod/<file>[/stream=N]` split and the canonical spelling of a mount path. No GStreamer.

/// A PLAY `Range: npt=` value in seconds: start (`None` = `now` or absent) and end.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Npt {
    pub start: Option<f64>,
    pub end: Option<f64>,
}

/// What a `Range` header asks for.
#[derive(Debug, Clone, PartialEq)]
pub enum RangeReq {
    /// `npt=…`.
    Npt(Npt),
    /// Another unit (`smpte`, `clock`): left to gst-rtsp-server.
    Other,
}

/// One npt time: `now`, seconds (`12.5`) or `H:MM:SS[.frac]`.
fn npt_time(s: &str) -> Result<Option<f64>, String> {
    let s = s.trim();
    if s.eq_ignore_ascii_case("now") {
        return Ok(None);
    }
    let bad = || format!("bad npt time {s:?}");
    let secs = if s.contains(':') {
        let parts: Vec<&str> = s.split(':').collect();
        let [h, m, sec] = parts.as_slice() else {
            return Err(bad());
        };
        let h: u64 = h.parse().map_err(|_| bad())?;
        let m: u64 = m.parse().map_err(|_| bad())?;
        let sec: f64 = sec.parse().map_err(|_| bad())?;
        if m >= 60 || !(0.0..60.0).contains(&sec) {
            return Err(bad());
        }
        // In f64: an hour count from the network may be any u64 (no overflow).
        h as f64 * 3600.0 + m as f64 * 60.0 + sec
    } else {
        s.parse::<f64>().map_err(|_| bad())?
    };
    if !secs.is_finite() || secs < 0.0 {
        return Err(bad());
    }
    Ok(Some(secs))
}

/// Parses a `Range` header value (`npt=600-`, `npt=0:10:00-0:20:00`, `npt=-30`, `npt=now-`,
/// with an optional `;time=…` that we ignore). Errors name what is wrong (→ 400).
pub fn parse_range(value: &str) -> Result<RangeReq, String> {
    let spec = value.split(';').next().unwrap_or("").trim();
    let Some(npt) = spec.strip_prefix("npt=") else {
        return Ok(RangeReq::Other);
    };
    let (a, b) = npt
        .split_once('-')
        .ok_or_else(|| format!("npt range without '-': {npt:?}"))?;
    let start = if a.trim().is_empty() {
        None
    } else {
        npt_time(a)?
    };
    let end = if b.trim().is_empty() {
        None
    } else {
        npt_time(b)?
    };
    Ok(RangeReq::Npt(Npt { start, end }))
}

/// Parses a `Scale` value: a non-zero finite number (`Scale: 0` or junk → 400).
pub fn parse_scale(value: &str) -> Result<f64, String> {
    let v: f64 = value
        .trim()
        .parse()
        .map_err(|_| format!("Scale {value:?} is not a number"))?;
    if !v.is_finite() || v == 0.0 {
        return Err(format!("Scale {value:?} is not a non-zero rate"));
    }
    Ok(v)
}

/// The `Scale` we apply for a requested one: forward rates as asked (2, 4, 8, 0.5 …);
/// reverse rates when the file's reader can play backwards, else 1 (the nearest rate we can
/// do, RFC 2326 §12.34: the answer names it).
pub fn applied_scale(requested: f64, reverse_ok: bool) -> f64 {
    if requested < 0.0 && !reverse_ok {
        1.0
    } else {
        requested
    }
}

/// Whether a path segment is a stream control (`stream=N`).
fn is_control(seg: &str) -> bool {
    seg.strip_prefix("stream=")
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

/// `/vod/<file>[/stream=N]` → (`<file>` as sent, percent-encoded; the control). `None` for
/// other paths.
pub fn split_vod_path(path: &str) -> Option<(&str, Option<&str>)> {
    let rest = path.strip_prefix(super::rtsp::VOD_PREFIX)?;
    match rest.rsplit_once('/') {
        Some((file, ctl)) if is_control(ctl) => Some((file, Some(ctl))),
        _ => Some((rest, None)),
    }
}

/// The canonical mount path of a file at `relative` (its path below the root, `/`-separated):
/// `/vod/` + the path with every byte outside unreserved characters and `/` percent-encoded,
/// so that every spelling of one file's URL lands on one mount.
pub fn mount_path(relative: &str) -> String {
    let mut s = String::from(super::rtsp::VOD_PREFIX);
    for b in relative.trim_start_matches('/').bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'/') {
            s.push(b as char);
        } else {
            s += &format!("%{b:02X}");
        }
    }
    s
}

/// A URL path as gst-rtsp-server normalizes it before matching mounts: runs of `/` collapsed
/// into one, a trailing `/` removed (but `/` stays `/`).
pub fn sanitize_path(path: &str) -> String {
    let mut s = String::with_capacity(path.len());
    for c in path.chars() {
        if !(c == '/' && s.ends_with('/')) {
            s.push(c);
        }
    }
    if s.len() > 1 && s.ends_with('/') {
        s.pop();
    }
    s
}

/// The NAL unit types in one access unit: Annex B start codes when it starts with one, else
/// 4-byte lengths (the `avc`/`hvc1` layout parsers output).
fn nal_headers(au: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    if au.starts_with(&[0, 0, 1]) || au.starts_with(&[0, 0, 0, 1]) {
        let mut i = 0;
        while i + 3 <= au.len() {
            if au[i..i + 3] == [0, 0, 1] {
                out.push(&au[i + 3..]);
                i += 3;
            } else {
                i += 1;
            }
        }
    } else {
        let mut i = 0;
        while i + 4 < au.len() {
            let n = u32::from_be_bytes([au[i], au[i + 1], au[i + 2], au[i + 3]]) as usize;
            out.push(&au[i + 4..]);
            i = i.saturating_add(4 + n);
        }
    }
    out
}

/// Whether an H.264 (`hevc == false`) or H.265 access unit holds a random access point (an IDR
/// slice; an IRAP picture). Parsers may flag the first unit after a seek as a key frame
/// although it is not: the payload says.
pub fn is_random_access(au: &[u8], hevc: bool) -> bool {
    nal_headers(au).iter().any(|n| match n.first() {
        Some(&b) if !hevc => b & 0x1f == 5,
        Some(&b) => (16..=23).contains(&((b >> 1) & 0x3f)),
        None => false,
    })
}

/// `npt=<start>-<end>` of seconds, three decimals.
pub fn npt_text(start: f64, end: Option<f64>) -> String {
    match end {
        Some(e) => format!("npt={start:.3}-{e:.3}"),
        None => format!("npt={start:.3}-"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_huge_hour_count_is_a_time_not_an_overflow() {
        // Found by the vod_requests fuzz target: hours * 3600 overflowed u64.
        assert!(parse_range("npt=8884444444444444448:36:2-").is_ok());
    }

    #[test]
    fn ranges() {
        let npt = |s: &str| match parse_range(s).unwrap() {
            RangeReq::Npt(n) => n,
            RangeReq::Other => panic!("{s}"),
        };
        assert_eq!(
            npt("npt=600-"),
            Npt {
                start: Some(600.0),
                end: None
            }
        );
        assert_eq!(
            npt("npt=0:10:00-0:20:00.5"),
            Npt {
                start: Some(600.0),
                end: Some(1200.5)
            }
        );
        assert_eq!(
            npt("npt=-30"),
            Npt {
                start: None,
                end: Some(30.0)
            }
        );
        assert_eq!(
            npt("npt=now-;time=19970123T153600Z"),
            Npt {
                start: None,
                end: None
            }
        );
        assert_eq!(npt("npt=30.000-").start, Some(30.0));
        assert_eq!(
            parse_range("smpte=0:10:00-").unwrap(),
            RangeReq::Other,
            "other units are gst-rtsp-server's"
        );
        assert!(parse_range("npt=abc-").is_err());
        assert!(parse_range("npt=5").is_err());
        assert!(parse_range("npt=1:70:00-").is_err());
        assert!(parse_range("npt=-5-").is_err());
    }

    #[test]
    fn scales() {
        assert_eq!(parse_scale("4").unwrap(), 4.0);
        assert_eq!(parse_scale(" -2.0 ").unwrap(), -2.0);
        assert!(parse_scale("0").is_err());
        assert!(parse_scale("0.000").is_err());
        assert!(parse_scale("fast").is_err());
        assert!(parse_scale("inf").is_err());
        assert_eq!(applied_scale(-4.0, false), 1.0);
        assert_eq!(applied_scale(-4.0, true), -4.0);
        assert_eq!(applied_scale(8.0, false), 8.0);
    }

    #[test]
    fn random_access_points() {
        // Annex B: AUD, SPS, PPS, IDR / AUD, non-IDR slice.
        let idr = [
            0, 0, 0, 1, 9, 0xf0, 0, 0, 0, 1, 0x67, 1, 0, 0, 1, 0x68, 2, 0, 0, 1, 0x65, 3,
        ];
        let p = [0, 0, 0, 1, 9, 0xf0, 0, 0, 1, 0x41, 3];
        assert!(is_random_access(&idr, false));
        assert!(!is_random_access(&p, false));
        // Length-prefixed (avc): a non-IDR slice, then an IDR one.
        let avc = [0, 0, 0, 2, 0x41, 9, 0, 0, 0, 2, 0x65, 9];
        assert!(is_random_access(&avc, false));
        assert!(!is_random_access(&avc[..6], false));
        // H.265: IDR_W_RADL (19) vs TRAIL_R (1).
        assert!(is_random_access(&[0, 0, 1, 19 << 1, 1, 7], true));
        assert!(!is_random_access(&[0, 0, 1, 1 << 1, 1, 7], true));
    }

    #[test]
    fn paths() {
        assert_eq!(split_vod_path("/vod/a/b.ts"), Some(("a/b.ts", None)));
        assert_eq!(
            split_vod_path("/vod/a/b.ts/stream=1"),
            Some(("a/b.ts", Some("stream=1")))
        );
        assert_eq!(split_vod_path("/vod/stream=x"), Some(("stream=x", None)));
        assert_eq!(split_vod_path("/ch/news"), None);
        assert_eq!(mount_path("a b/é.ts"), "/vod/a%20b/%C3%A9.ts");
        assert_eq!(mount_path("x.ts"), "/vod/x.ts");
        assert_eq!(sanitize_path("//vod//a/b.ts/"), "/vod/a/b.ts");
        assert_eq!(sanitize_path("/"), "/");
        assert_eq!(npt_text(29.48, Some(60.0)), "npt=29.480-60.000");
    }
}
