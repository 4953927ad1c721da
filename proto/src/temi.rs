//! TEMI (ISO/IEC 13818-1 Amd.1 "Delivery of timeline for external data") adaptation-field
//! descriptors: the af_descriptor loop, temi_timeline_descriptor (0x04), temi_location_descriptor
//! (0x05) and temi_base_url_descriptor (0x06), plus a writer for the timeline descriptor.
//!
//! See `shared/specs/temi.md` sections 1–4. Parsing is defensive: lengths that do not fit give a
//! [`TemiError`], unknown tags are skipped by length, and nothing reads past the slice.

use std::fmt;

use crate::ts::ByteCursor;

/// af_descriptor tags.
pub mod tag {
    /// temi_timeline_descriptor.
    pub const TIMELINE: u8 = 0x04;
    /// temi_location_descriptor.
    pub const LOCATION: u8 = 0x05;
    /// temi_base_url_descriptor.
    pub const BASE_URL: u8 = 0x06;
}

/// Errors from af_descriptor parsing. Each names the descriptor tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TemiError {
    /// The descriptor header or its af_descr_length runs past the end of the loop.
    Truncated {
        /// af_descr_tag.
        tag: u8,
    },
    /// af_descr_length is shorter than the flags of the descriptor require.
    TooShort {
        /// af_descr_tag.
        tag: u8,
    },
    /// A reserved value (has_timestamp = 3, has_timecode = 3) makes the layout unknown.
    Reserved {
        /// af_descr_tag.
        tag: u8,
    },
}

impl fmt::Display for TemiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TemiError::Truncated { tag } => write!(
                f,
                "af_descriptor 0x{tag:02x} runs past the adaptation field"
            ),
            TemiError::TooShort { tag } => {
                write!(f, "af_descriptor 0x{tag:02x} shorter than its flags need")
            }
            TemiError::Reserved { tag } => {
                write!(f, "af_descriptor 0x{tag:02x} uses a reserved value")
            }
        }
    }
}

impl std::error::Error for TemiError {}

/// One raw af_descriptor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AfDescriptor<'a> {
    /// af_descr_tag.
    pub tag: u8,
    /// The af_descr_length bytes after the length.
    pub body: &'a [u8],
}

/// Iterator over an af_descriptor loop. Yields one `Err` and stops if a descriptor's length runs
/// past the loop.
#[derive(Debug, Clone)]
pub struct AfDescriptorIter<'a> {
    cursor: ByteCursor<'a>,
    done: bool,
}

impl<'a> Iterator for AfDescriptorIter<'a> {
    type Item = Result<AfDescriptor<'a>, TemiError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done || self.cursor.remaining() == 0 {
            return None;
        }
        let tag = self.cursor.u8()?;
        let body = self
            .cursor
            .u8()
            .and_then(|len| self.cursor.bytes(usize::from(len)));
        match body {
            Some(body) => Some(Ok(AfDescriptor { tag, body })),
            None => {
                self.done = true;
                Some(Err(TemiError::Truncated { tag }))
            }
        }
    }
}

/// Walk the af_descriptor bytes of an adaptation_field_extension
/// ([`crate::ts::AfExtension::af_descriptors`]).
pub fn af_descriptors(bytes: &[u8]) -> AfDescriptorIter<'_> {
    AfDescriptorIter {
        cursor: ByteCursor::new(bytes),
        done: false,
    }
}

/// media_timestamp with its timescale.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MediaTimestamp {
    /// Ticks per second.
    pub timescale: u32,
    /// The timeline position in `timescale` ticks.
    pub value: u64,
    /// Width of the field on the wire: 32 or 64.
    pub bits: u8,
}

/// IEEE 1588 timestamp (80 bits).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PtpTimestamp {
    /// 48-bit seconds.
    pub seconds: u64,
    /// 32-bit nanoseconds.
    pub nanoseconds: u32,
}

/// Timecode fields (layout from a single source, see the spec).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timecode {
    /// drop flag.
    pub drop: bool,
    /// 15-bit frames_per_tc_seconds.
    pub frames_per_tc_seconds: u16,
    /// 16-bit duration.
    pub duration: u16,
    /// Width: 24 (short_time_code) or 64 (long_time_code).
    pub bits: u8,
    /// The time code value.
    pub time_code: u64,
}

/// temi_timeline_descriptor (0x04).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TimelineDescriptor {
    /// 8-bit timeline_id.
    pub timeline_id: u8,
    /// force_reload.
    pub force_reload: bool,
    /// paused.
    pub paused: bool,
    /// discontinuity.
    pub discontinuity: bool,
    /// Present when has_timestamp is 1 (32-bit) or 2 (64-bit).
    pub media_timestamp: Option<MediaTimestamp>,
    /// NTP timestamp (32.32 fixed point seconds since 1900).
    pub ntp: Option<u64>,
    /// PTP timestamp.
    pub ptp: Option<PtpTimestamp>,
    /// Timecode.
    pub timecode: Option<Timecode>,
}

impl TimelineDescriptor {
    /// A descriptor with just a media timestamp (width chosen by the encoder).
    pub fn new(timeline_id: u8, timescale: u32, value: u64) -> Self {
        TimelineDescriptor {
            timeline_id,
            media_timestamp: Some(MediaTimestamp {
                timescale,
                value,
                bits: 32,
            }),
            ..Default::default()
        }
    }

    /// Parse the body (after tag and length). A longer body is accepted (the tail is ignored).
    pub fn parse(body: &[u8]) -> Result<TimelineDescriptor, TemiError> {
        let short = TemiError::TooShort { tag: tag::TIMELINE };
        let reserved = TemiError::Reserved { tag: tag::TIMELINE };
        let mut c = ByteCursor::new(body);
        let f = c.u8().ok_or(short)?;
        let f2 = c.u8().ok_or(short)?;
        let timeline_id = c.u8().ok_or(short)?;
        let has_timestamp = f >> 6;
        let has_ntp = f & 0x20 != 0;
        let has_ptp = f & 0x10 != 0;
        let has_timecode = (f >> 2) & 0x03;
        if has_timestamp == 3 || has_timecode == 3 {
            return Err(reserved);
        }
        let mut d = TimelineDescriptor {
            timeline_id,
            force_reload: f & 0x02 != 0,
            paused: f & 0x01 != 0,
            discontinuity: f2 & 0x80 != 0,
            ..Default::default()
        };
        if has_timestamp != 0 {
            let timescale = c.u32().ok_or(short)?;
            let (value, bits) = if has_timestamp == 1 {
                (u64::from(c.u32().ok_or(short)?), 32)
            } else {
                (c.u64().ok_or(short)?, 64)
            };
            d.media_timestamp = Some(MediaTimestamp {
                timescale,
                value,
                bits,
            });
        }
        if has_ntp {
            d.ntp = Some(c.u64().ok_or(short)?);
        }
        if has_ptp {
            let seconds = c.be(6).ok_or(short)?;
            let nanoseconds = c.u32().ok_or(short)?;
            d.ptp = Some(PtpTimestamp {
                seconds,
                nanoseconds,
            });
        }
        if has_timecode != 0 {
            let w = c.u16().ok_or(short)?;
            let duration = c.u16().ok_or(short)?;
            let (time_code, bits) = if has_timecode == 1 {
                (u64::from(c.u24().ok_or(short)?), 24)
            } else {
                (c.u64().ok_or(short)?, 64)
            };
            d.timecode = Some(Timecode {
                drop: w & 0x8000 != 0,
                frames_per_tc_seconds: w & 0x7FFF,
                duration,
                bits,
                time_code,
            });
        }
        Ok(d)
    }
}

/// Write a complete temi_timeline_descriptor (tag, length, body).
///
/// The media timestamp uses 32 bits when its value fits and `bits` is not 64, else 64 bits.
/// Reserved bits are written as 1 (byte 3 = `discontinuity << 7 | 0x7F`), as GPAC does.
pub fn encode_timeline_descriptor(d: &TimelineDescriptor) -> Vec<u8> {
    let mut body = Vec::with_capacity(40);
    let ts_mode: u8 = match d.media_timestamp {
        None => 0,
        Some(m) if m.bits != 64 && m.value <= u64::from(u32::MAX) => 1,
        Some(_) => 2,
    };
    let tc_mode: u8 = match d.timecode {
        None => 0,
        Some(t) if t.bits != 64 && t.time_code <= 0xFF_FFFF => 1,
        Some(_) => 2,
    };
    body.push(
        (ts_mode << 6)
            | (u8::from(d.ntp.is_some()) << 5)
            | (u8::from(d.ptp.is_some()) << 4)
            | (tc_mode << 2)
            | (u8::from(d.force_reload) << 1)
            | u8::from(d.paused),
    );
    body.push((u8::from(d.discontinuity) << 7) | 0x7F);
    body.push(d.timeline_id);
    if let Some(m) = d.media_timestamp {
        body.extend_from_slice(&m.timescale.to_be_bytes());
        if ts_mode == 1 {
            body.extend_from_slice(&(m.value as u32).to_be_bytes());
        } else {
            body.extend_from_slice(&m.value.to_be_bytes());
        }
    }
    if let Some(ntp) = d.ntp {
        body.extend_from_slice(&ntp.to_be_bytes());
    }
    if let Some(p) = d.ptp {
        body.extend_from_slice(&p.seconds.to_be_bytes()[2..]);
        body.extend_from_slice(&p.nanoseconds.to_be_bytes());
    }
    if let Some(t) = d.timecode {
        body.extend_from_slice(
            &((u16::from(t.drop) << 15) | (t.frames_per_tc_seconds & 0x7FFF)).to_be_bytes(),
        );
        body.extend_from_slice(&t.duration.to_be_bytes());
        if tc_mode == 1 {
            body.extend_from_slice(&(t.time_code as u32).to_be_bytes()[1..]);
        } else {
            body.extend_from_slice(&t.time_code.to_be_bytes());
        }
    }
    let mut out = Vec::with_capacity(body.len() + 2);
    out.push(tag::TIMELINE);
    out.push(body.len() as u8); // at most 3 + 12 + 8 + 10 + 12 = 45
    out.extend_from_slice(&body);
    out
}

/// Build a URL from url_scheme and url_path: 0 = path is the URL, 1 = http://, 2 = https://.
/// Other schemes are reserved and give `None`.
pub fn url_from_scheme(scheme: u8, path: &str) -> Option<String> {
    match scheme {
        0 => Some(path.to_owned()),
        1 => Some(format!("http://{path}")),
        2 => Some(format!("https://{path}")),
        _ => None,
    }
}

/// Announcement fields of a location descriptor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Announcement {
    /// Ticks per second of `time_before_activation`.
    pub timescale: u32,
    /// Countdown before the timeline becomes active.
    pub time_before_activation: u32,
}

/// temi_location_descriptor (0x05).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LocationDescriptor {
    /// force_reload.
    pub force_reload: bool,
    /// is_announcement.
    pub is_announcement: bool,
    /// splicing_flag.
    pub splicing: bool,
    /// use_base_temi_url: no URL fields; use the last base URL of the PID.
    pub use_base_temi_url: bool,
    /// 7-bit timeline_id.
    pub timeline_id: u8,
    /// Present when is_announcement.
    pub announcement: Option<Announcement>,
    /// url_scheme (absent with use_base_temi_url).
    pub url_scheme: Option<u8>,
    /// url_path, decoded lossily as UTF-8.
    pub url_path: Option<String>,
    /// nb_addons, when the descriptor is long enough to hold it. Add-ons are skipped.
    pub nb_addons: Option<u8>,
}

impl LocationDescriptor {
    /// Parse the body (after tag and length).
    pub fn parse(body: &[u8]) -> Result<LocationDescriptor, TemiError> {
        let short = TemiError::TooShort { tag: tag::LOCATION };
        let mut c = ByteCursor::new(body);
        let f = c.u8().ok_or(short)?;
        let id = c.u8().ok_or(short)?;
        let mut d = LocationDescriptor {
            force_reload: f & 0x80 != 0,
            is_announcement: f & 0x40 != 0,
            splicing: f & 0x20 != 0,
            use_base_temi_url: f & 0x10 != 0,
            timeline_id: id & 0x7F,
            ..Default::default()
        };
        if d.is_announcement {
            let timescale = c.u32().ok_or(short)?;
            let time_before_activation = c.u32().ok_or(short)?;
            d.announcement = Some(Announcement {
                timescale,
                time_before_activation,
            });
        }
        if !d.use_base_temi_url {
            d.url_scheme = Some(c.u8().ok_or(short)?);
            let n = c.u8().ok_or(short)?;
            d.url_path =
                Some(String::from_utf8_lossy(c.bytes(usize::from(n)).ok_or(short)?).into_owned());
        }
        d.nb_addons = c.u8();
        Ok(d)
    }

    /// The full URL. With use_base_temi_url, `base` (the last base URL of the PID) is used.
    pub fn url(&self, base: Option<&str>) -> Option<String> {
        if self.use_base_temi_url {
            return base.map(str::to_owned);
        }
        url_from_scheme(self.url_scheme?, self.url_path.as_deref()?)
    }

    /// Write a complete descriptor (tag, length, body) with nb_addons = 0.
    pub fn encode(&self) -> Vec<u8> {
        let mut body = vec![
            (u8::from(self.force_reload) << 7)
                | (u8::from(self.is_announcement) << 6)
                | (u8::from(self.splicing) << 5)
                | (u8::from(self.use_base_temi_url) << 4)
                | 0x0F,
            0x80 | (self.timeline_id & 0x7F),
        ];
        if self.is_announcement {
            let a = self.announcement.unwrap_or(Announcement {
                timescale: 0,
                time_before_activation: 0,
            });
            body.extend_from_slice(&a.timescale.to_be_bytes());
            body.extend_from_slice(&a.time_before_activation.to_be_bytes());
        }
        if !self.use_base_temi_url {
            let path = self.url_path.as_deref().unwrap_or("").as_bytes();
            let path = path.get(..path.len().min(240)).unwrap_or(&[]);
            body.push(self.url_scheme.unwrap_or(0));
            body.push(path.len() as u8);
            body.extend_from_slice(path);
        }
        body.push(0);
        let mut out = vec![tag::LOCATION, body.len() as u8];
        out.extend_from_slice(&body);
        out
    }
}

/// temi_base_url_descriptor (0x06).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BaseUrlDescriptor {
    /// url_scheme.
    pub url_scheme: u8,
    /// url_path (lossy UTF-8).
    pub url_path: String,
}

impl BaseUrlDescriptor {
    /// Parse the body (after tag and length).
    pub fn parse(body: &[u8]) -> Result<BaseUrlDescriptor, TemiError> {
        let short = TemiError::TooShort { tag: tag::BASE_URL };
        let mut c = ByteCursor::new(body);
        let url_scheme = c.u8().ok_or(short)?;
        let n = c.u8().ok_or(short)?;
        let url_path = String::from_utf8_lossy(c.bytes(usize::from(n)).ok_or(short)?).into_owned();
        Ok(BaseUrlDescriptor {
            url_scheme,
            url_path,
        })
    }

    /// The full base URL.
    pub fn url(&self) -> Option<String> {
        url_from_scheme(self.url_scheme, &self.url_path)
    }
}

/// A decoded af_descriptor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TemiDescriptor<'a> {
    /// 0x04.
    Timeline(TimelineDescriptor),
    /// 0x05.
    Location(LocationDescriptor),
    /// 0x06.
    BaseUrl(BaseUrlDescriptor),
    /// Any other tag, left raw.
    Other(AfDescriptor<'a>),
}

impl<'a> TemiDescriptor<'a> {
    /// Decode one raw af_descriptor.
    pub fn parse(d: AfDescriptor<'a>) -> Result<TemiDescriptor<'a>, TemiError> {
        Ok(match d.tag {
            tag::TIMELINE => TemiDescriptor::Timeline(TimelineDescriptor::parse(d.body)?),
            tag::LOCATION => TemiDescriptor::Location(LocationDescriptor::parse(d.body)?),
            tag::BASE_URL => TemiDescriptor::BaseUrl(BaseUrlDescriptor::parse(d.body)?),
            _ => TemiDescriptor::Other(d),
        })
    }
}

/// Decode a whole af_descriptor loop; malformed descriptors are returned as errors in place and
/// the walk goes on with the next one (it stops only when a length runs past the loop).
pub fn parse_af_descriptors(bytes: &[u8]) -> Vec<Result<TemiDescriptor<'_>, TemiError>> {
    af_descriptors(bytes)
        .map(|r| r.and_then(TemiDescriptor::parse))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// af_descriptor bytes from TS packet 3 of shared/media/temi_a_single_timeline.ts.
    fn temi_a_descs() -> Vec<u8> {
        let mut v = vec![0x05, 0x1b, 0x0f, 0x81, 0x01, 0x16];
        v.extend_from_slice(b"example.com/temi/a.xml");
        v.extend_from_slice(&[
            0x00, 0x04, 0x0b, 0x40, 0x7f, 0x01, 0x00, 0x00, 0x03, 0xe8, 0x00, 0x00, 0x00, 0x00,
        ]);
        v
    }

    #[test]
    fn temi_a_location_and_timeline() {
        let v = temi_a_descs();
        let d = parse_af_descriptors(&v);
        assert_eq!(d.len(), 2);
        let TemiDescriptor::Location(loc) = d[0].clone().unwrap() else {
            panic!("not a location")
        };
        assert_eq!(loc.timeline_id, 1);
        assert!(
            !loc.is_announcement && !loc.use_base_temi_url && !loc.force_reload && !loc.splicing
        );
        assert_eq!(loc.url_scheme, Some(1));
        assert_eq!(loc.nb_addons, Some(0));
        assert_eq!(
            loc.url(None).as_deref(),
            Some("http://example.com/temi/a.xml")
        );
        assert_eq!(loc.encode(), v[..29].to_vec());
        let TemiDescriptor::Timeline(t) = d[1].clone().unwrap() else {
            panic!("not a timeline")
        };
        assert_eq!(t, TimelineDescriptor::new(1, 1000, 0));
        assert_eq!(encode_timeline_descriptor(&t), v[29..].to_vec());
    }

    #[test]
    fn timeline_64bit_from_temi_d() {
        // PID 202 of temi_d: timeline 2, 90 kHz, 64-bit value 1000000.
        let b = [
            0x04, 0x0f, 0x80, 0x7f, 0x02, 0, 1, 0x5f, 0x90, 0, 0, 0, 0, 0, 0x0f, 0x42, 0x40,
        ];
        let d = parse_af_descriptors(&b);
        let TemiDescriptor::Timeline(t) = d[0].clone().unwrap() else {
            panic!()
        };
        assert_eq!(
            t.media_timestamp,
            Some(MediaTimestamp {
                timescale: 90000,
                value: 1_000_000,
                bits: 64
            })
        );
        assert_eq!(encode_timeline_descriptor(&t), b.to_vec());
        // auto width: a value past u32 goes to 64 bits; a small one with bits 32 stays 32.
        let big = TimelineDescriptor::new(9, 1000, 0x1_0000_0000);
        let e = encode_timeline_descriptor(&big);
        assert_eq!(&e[..3], &[0x04, 0x0f, 0x80]);
        assert_eq!(
            TimelineDescriptor::parse(&e[2..])
                .unwrap()
                .media_timestamp
                .unwrap()
                .value,
            0x1_0000_0000
        );
        let small =
            encode_timeline_descriptor(&TimelineDescriptor::new(9, 1000, u64::from(u32::MAX)));
        assert_eq!(&small[..3], &[0x04, 0x0b, 0x40]);
    }

    #[test]
    fn timeline_all_fields_roundtrip() {
        let d = TimelineDescriptor {
            timeline_id: 200,
            force_reload: true,
            paused: true,
            discontinuity: true,
            media_timestamp: Some(MediaTimestamp {
                timescale: 50,
                value: 7,
                bits: 32,
            }),
            ntp: Some(0xE000_0000_8000_0000),
            ptp: Some(PtpTimestamp {
                seconds: 0xABCD_1234_5678,
                nanoseconds: 999_999_999,
            }),
            timecode: Some(Timecode {
                drop: true,
                frames_per_tc_seconds: 30,
                duration: 1001,
                bits: 24,
                time_code: 0x12_3456,
            }),
        };
        let e = encode_timeline_descriptor(&d);
        assert_eq!(e[1] as usize, 3 + 8 + 8 + 10 + 4 + 3);
        assert_eq!(e[1] as usize, e.len() - 2);
        assert_eq!(
            &e[2..5],
            &[0x40 | 0x20 | 0x10 | 0x04 | 0x02 | 0x01, 0xFF, 200]
        );
        assert_eq!(TimelineDescriptor::parse(&e[2..]), Ok(d));
        let mut d2 = d;
        d2.timecode = Some(Timecode {
            drop: false,
            frames_per_tc_seconds: 25,
            duration: 1,
            bits: 64,
            time_code: 1 << 40,
        });
        d2.media_timestamp = None;
        let e = encode_timeline_descriptor(&d2);
        assert_eq!(e[2] >> 6, 0);
        assert_eq!((e[2] >> 2) & 3, 2);
        assert_eq!(TimelineDescriptor::parse(&e[2..]), Ok(d2));
        // longer body: the tail is ignored
        let mut long = encode_timeline_descriptor(&TimelineDescriptor::new(1, 1000, 5));
        long.extend_from_slice(&[1, 2, 3]);
        long[1] += 3;
        let p = parse_af_descriptors(&long);
        assert_eq!(
            p,
            vec![Ok(TemiDescriptor::Timeline(TimelineDescriptor::new(
                1, 1000, 5
            )))]
        );
    }

    #[test]
    fn defensive_parsing() {
        // flags say 64-bit timestamp but only 8 body bytes
        let b = [0x04, 0x08, 0x80, 0x7f, 0x01, 0, 0, 0x03, 0xe8, 0];
        assert_eq!(
            parse_af_descriptors(&b),
            vec![Err(TemiError::TooShort { tag: 4 })]
        );
        // reserved has_timestamp = 3, then a good unknown descriptor is still walked
        let b = [0x04, 0x03, 0xC0, 0x7f, 0x01, 0x80, 0x01, 0xAA];
        let p = parse_af_descriptors(&b);
        assert_eq!(p[0], Err(TemiError::Reserved { tag: 4 }));
        assert_eq!(
            p[1],
            Ok(TemiDescriptor::Other(AfDescriptor {
                tag: 0x80,
                body: &[0xAA]
            }))
        );
        // absurd length: error, then stop
        let b = [0x07, 0x00, 0x04, 0xFF, 0x40];
        let p = parse_af_descriptors(&b);
        assert_eq!(p.len(), 2);
        assert_eq!(p[1], Err(TemiError::Truncated { tag: 4 }));
        // lone tag byte
        assert_eq!(
            parse_af_descriptors(&[0x05]),
            vec![Err(TemiError::Truncated { tag: 5 })]
        );
        // location: url length past the body
        let b = [0x05, 0x04, 0x0f, 0x81, 0x01, 0x10];
        assert_eq!(
            parse_af_descriptors(&b),
            vec![Err(TemiError::TooShort { tag: 5 })]
        );
        // empty bodies
        assert_eq!(
            TimelineDescriptor::parse(&[]),
            Err(TemiError::TooShort { tag: 4 })
        );
        assert_eq!(
            BaseUrlDescriptor::parse(&[1]),
            Err(TemiError::TooShort { tag: 6 })
        );
        // every prefix of a full descriptor is handled without panic
        let full = encode_timeline_descriptor(&TimelineDescriptor {
            ntp: Some(1),
            ptp: Some(PtpTimestamp {
                seconds: 1,
                nanoseconds: 2,
            }),
            timecode: Some(Timecode {
                drop: false,
                frames_per_tc_seconds: 1,
                duration: 1,
                bits: 64,
                time_code: 3,
            }),
            ..TimelineDescriptor::new(1, 1, 1)
        });
        for n in 0..full.len() {
            let _ = parse_af_descriptors(&full[..n]);
            let _ = TimelineDescriptor::parse(&full[2..n.max(2)]);
            let _ = LocationDescriptor::parse(&full[..n]);
        }
    }

    #[test]
    fn location_variants_and_base_url() {
        // announcement + base url
        let loc = LocationDescriptor {
            is_announcement: true,
            use_base_temi_url: true,
            timeline_id: 5,
            announcement: Some(Announcement {
                timescale: 1000,
                time_before_activation: 3000,
            }),
            nb_addons: Some(0),
            ..Default::default()
        };
        let e = loc.encode();
        assert_eq!(
            e,
            vec![0x05, 0x0b, 0x5f, 0x85, 0, 0, 0x03, 0xe8, 0, 0, 0x0b, 0xb8, 0]
        );
        let TemiDescriptor::Location(back) = parse_af_descriptors(&e)[0].clone().unwrap() else {
            panic!()
        };
        assert_eq!(back, loc);
        assert_eq!(back.url(Some("https://b/")).as_deref(), Some("https://b/"));
        assert_eq!(back.url(None), None);
        // without nb_addons (tolerated)
        let l = LocationDescriptor::parse(&[0x0f, 0x81, 0x02, 0x01, b'x']).unwrap();
        assert_eq!(
            (l.nb_addons, l.url(None).as_deref()),
            (None, Some("https://x"))
        );
        let l = LocationDescriptor::parse(&[0x0f, 0x81, 0x07, 0x01, b'x']).unwrap();
        assert_eq!(l.url(None), None);
        let b = [0x06, 0x05, 0x00, 0x03, b'a', b':', b'b'];
        let p = parse_af_descriptors(&b);
        let TemiDescriptor::BaseUrl(u) = p[0].clone().unwrap() else {
            panic!()
        };
        assert_eq!(u.url().as_deref(), Some("a:b"));
    }
}
