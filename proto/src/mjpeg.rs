//! The networking course assignment's `.mjpeg` movie format: each frame is 5 ASCII digits giving
//! the length of a JPEG in bytes, then that JPEG. There is no file header, no timing and no
//! trailer; the frame rate is the player's choice.
//!
//! * [`MjpegReader`]: an incremental frame parser (`push` bytes, `next` frames), which tells
//!   "need more" apart from "invalid" and resyncs on the next plausible frame after an error.
//! * [`IndexBuilder`] / [`FrameIndex`]: the byte offset of every frame, built from the 7 bytes
//!   at each frame start (digits and JPEG SOI) without reading the JPEGs, for seeking.
//! * [`jpeg_info`]: width, height and sampling from a JPEG's SOF marker.
//! * [`frame_time_ns`] / [`frame_at_time_ns`]: frame number ↔ time at a rational frame rate.
//!
//! Everything here works on untrusted bytes and never panics.

use std::fmt;

/// Bytes of the ASCII length prefix of each frame.
pub const HEADER_LEN: usize = 5;
/// Bytes needed to check a frame start: the length prefix and the JPEG SOI marker.
pub const PROBE_LEN: usize = HEADER_LEN + 2;
/// The largest length 5 digits can give, and the default cap.
pub const MAX_FRAME_LEN: usize = 99_999;
/// JPEG start-of-image marker.
pub const SOI: [u8; 2] = [0xFF, 0xD8];

/// What is wrong with a `.mjpeg` stream. Every variant names the byte offset of the frame start
/// (its first digit) in the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MjpegError {
    /// The 5 bytes of the length prefix are not all ASCII digits.
    BadDigits {
        /// Offset of the first digit.
        offset: u64,
        /// The 5 bytes found.
        found: [u8; HEADER_LEN],
    },
    /// The length prefix is `00000`.
    EmptyFrame {
        /// Offset of the first digit.
        offset: u64,
    },
    /// The length prefix is above the configured cap.
    TooLong {
        /// Offset of the first digit.
        offset: u64,
        /// The announced length.
        len: usize,
        /// The cap.
        max: usize,
    },
    /// The frame data does not start with the JPEG SOI marker FF D8.
    NotJpeg {
        /// Offset of the first digit.
        offset: u64,
        /// The first (up to 2) bytes of the frame data.
        found: Vec<u8>,
    },
    /// The stream ends inside a frame (prefix or data).
    Truncated {
        /// Offset of the first digit.
        offset: u64,
        /// Bytes the frame needs, prefix included (`HEADER_LEN` while the prefix is incomplete).
        needed: usize,
        /// Bytes that were there.
        available: usize,
    },
}

impl MjpegError {
    /// Byte offset of the frame start the error is about.
    pub fn offset(&self) -> u64 {
        match self {
            MjpegError::BadDigits { offset, .. }
            | MjpegError::EmptyFrame { offset }
            | MjpegError::TooLong { offset, .. }
            | MjpegError::NotJpeg { offset, .. }
            | MjpegError::Truncated { offset, .. } => *offset,
        }
    }
}

impl fmt::Display for MjpegError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MjpegError::BadDigits { offset, found } => write!(
                f,
                "bad frame length at byte {offset}: expected 5 ASCII digits, found {:?}",
                String::from_utf8_lossy(found)
            ),
            MjpegError::EmptyFrame { offset } => {
                write!(f, "empty frame (length 00000) at byte {offset}")
            }
            MjpegError::TooLong { offset, len, max } => write!(
                f,
                "frame length {len} at byte {offset} is above the limit of {max} bytes"
            ),
            MjpegError::NotJpeg { offset, found } => {
                write!(f, "frame at byte {offset} is not a JPEG: it starts with")?;
                for b in found {
                    write!(f, " {b:02X}")?;
                }
                write!(f, " instead of the SOI marker FF D8")
            }
            MjpegError::Truncated {
                offset,
                needed,
                available,
            } => write!(
                f,
                "truncated frame at byte {offset}: {available} of {needed} bytes before the end of the stream"
            ),
        }
    }
}

impl std::error::Error for MjpegError {}

/// The JPEG length announced by a 5-byte prefix read at `offset`, checked against `max`.
pub fn parse_header(prefix: &[u8], offset: u64, max: usize) -> Result<usize, MjpegError> {
    let Some(bytes) = prefix.get(..HEADER_LEN) else {
        return Err(MjpegError::Truncated {
            offset,
            needed: HEADER_LEN,
            available: prefix.len(),
        });
    };
    let mut found = [0u8; HEADER_LEN];
    found.copy_from_slice(bytes);
    if !found.iter().all(u8::is_ascii_digit) {
        return Err(MjpegError::BadDigits { offset, found });
    }
    let len = found
        .iter()
        .fold(0usize, |acc, d| acc * 10 + usize::from(d - b'0'));
    if len == 0 {
        return Err(MjpegError::EmptyFrame { offset });
    }
    if len > max {
        return Err(MjpegError::TooLong { offset, len, max });
    }
    Ok(len)
}

/// Checks that `data` (the frame data after the prefix, at least its first 2 bytes, or all of a
/// shorter frame) starts with SOI.
pub fn check_soi(data: &[u8], offset: u64) -> Result<(), MjpegError> {
    if data.starts_with(&SOI) {
        Ok(())
    } else {
        Err(MjpegError::NotJpeg {
            offset,
            found: data.iter().take(2).copied().collect(),
        })
    }
}

/// One frame of a `.mjpeg` stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// Frame number, 0 for the first frame returned.
    pub index: u64,
    /// Byte offset of the frame start (its length prefix) in the stream.
    pub offset: u64,
    /// The JPEG, without the length prefix.
    pub jpeg: Vec<u8>,
}

impl Frame {
    /// Bytes the frame takes in the stream, prefix included.
    pub fn stream_len(&self) -> usize {
        HEADER_LEN + self.jpeg.len()
    }
}

/// Incremental `.mjpeg` parser: [`push`](Self::push) bytes, then call [`next`](Self::next) until
/// it returns `Ok(None)`. After an error the next call skips to the next position that looks like
/// a frame start (5 digits within the cap, then FF D8).
#[derive(Debug)]
pub struct MjpegReader {
    buf: Vec<u8>,
    start: usize,
    base_offset: u64,
    frames: u64,
    max_len: usize,
    eos: bool,
    resync: bool,
}

impl Default for MjpegReader {
    fn default() -> Self {
        Self::new()
    }
}

impl MjpegReader {
    /// A reader with the format's own cap ([`MAX_FRAME_LEN`]).
    pub fn new() -> Self {
        Self::with_max_len(MAX_FRAME_LEN)
    }

    /// A reader that refuses frames longer than `max_len` bytes.
    pub fn with_max_len(max_len: usize) -> Self {
        Self {
            buf: Vec::new(),
            start: 0,
            base_offset: 0,
            frames: 0,
            max_len,
            eos: false,
            resync: false,
        }
    }

    /// Append input bytes.
    pub fn push(&mut self, data: &[u8]) {
        crate::ts::append_compacting(&mut self.buf, &mut self.start, &mut self.base_offset, data);
    }

    /// Mark the end of input: an incomplete frame left over is then an error.
    pub fn finish(&mut self) {
        self.eos = true;
    }

    /// Frames returned so far.
    pub fn frames(&self) -> u64 {
        self.frames
    }

    /// Stream offset of the next unread byte.
    pub fn position(&self) -> u64 {
        self.base_offset + self.start as u64
    }

    /// Bytes buffered and not returned yet.
    pub fn buffered(&self) -> usize {
        self.buf.len().saturating_sub(self.start)
    }

    /// The next frame, `Ok(None)` when more input is needed (or at the end), or an error.
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> Result<Option<Frame>, MjpegError> {
        if self.resync && !self.find_frame_start() {
            return Ok(None);
        }
        let offset = self.position();
        let avail = self.buf.get(self.start..).unwrap_or_default();
        if avail.len() < HEADER_LEN {
            return self.need_more(offset, HEADER_LEN, avail.len());
        }
        let len = match parse_header(avail, offset, self.max_len) {
            Ok(len) => len,
            Err(e) => return Err(self.fail(e)),
        };
        let data = avail.get(HEADER_LEN..).unwrap_or_default();
        // SOI is checked within the frame only (a 1-byte frame followed by FF D8 is no JPEG).
        let head = data.get(..data.len().min(len).min(2)).unwrap_or_default();
        if let Err(e) = check_soi(head, offset) {
            // A frame shorter than SOI, or data that already shows it is no JPEG.
            if head.len() >= 2 || len < 2 {
                return Err(self.fail(e));
            }
        }
        let Some(jpeg) = data.get(..len) else {
            return self.need_more(offset, HEADER_LEN + len, avail.len());
        };
        let frame = Frame {
            index: self.frames,
            offset,
            jpeg: jpeg.to_vec(),
        };
        self.start += HEADER_LEN + len;
        self.frames += 1;
        Ok(Some(frame))
    }

    fn need_more(
        &mut self,
        offset: u64,
        needed: usize,
        available: usize,
    ) -> Result<Option<Frame>, MjpegError> {
        if !self.eos || available == 0 {
            return Ok(None);
        }
        self.start = self.buf.len();
        Err(MjpegError::Truncated {
            offset,
            needed,
            available,
        })
    }

    fn fail(&mut self, e: MjpegError) -> MjpegError {
        self.start += 1;
        self.resync = true;
        e
    }

    /// Skips to the next plausible frame start at or after the current position. True when one
    /// is at `start`; false when more input is needed (the bytes that cannot start a frame are
    /// dropped).
    fn find_frame_start(&mut self) -> bool {
        let mut p = self.start;
        while let Some(probe) = self.buf.get(p..p + PROBE_LEN) {
            let ok = parse_header(probe, 0, self.max_len).is_ok()
                && probe.get(HEADER_LEN..) == Some(&SOI[..]);
            if ok {
                self.start = p;
                self.resync = false;
                return true;
            }
            p += 1;
        }
        // Keep the tail that may still be the beginning of a frame start.
        self.start = p.min(self.buf.len());
        if self.eos {
            self.start = self.buf.len();
        }
        false
    }
}

/// The start offset of every frame of a stream, for seeking.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FrameIndex {
    offsets: Vec<u64>,
    end: u64,
}

impl FrameIndex {
    /// Indexes a whole stream held in memory.
    pub fn from_bytes(data: &[u8]) -> Result<Self, MjpegError> {
        let mut b = IndexBuilder::new(MAX_FRAME_LEN);
        loop {
            let at = usize::try_from(b.next_offset()).unwrap_or(usize::MAX);
            let Some(rest) = data.get(at..) else {
                break;
            };
            if rest.is_empty() {
                break;
            }
            b.push_probe(rest.get(..PROBE_LEN).unwrap_or(rest))?;
        }
        b.finish(data.len() as u64)
    }

    /// Number of frames.
    pub fn len(&self) -> usize {
        self.offsets.len()
    }

    /// Whether the stream has no frame.
    pub fn is_empty(&self) -> bool {
        self.offsets.is_empty()
    }

    /// Offset of frame `n`'s start.
    pub fn offset(&self, n: usize) -> Option<u64> {
        self.offsets.get(n).copied()
    }

    /// Offset just past the last frame (the stream length).
    pub fn end(&self) -> u64 {
        self.end
    }

    /// Number of the frame starting exactly at `offset`.
    pub fn frame_at(&self, offset: u64) -> Option<usize> {
        self.offsets.binary_search(&offset).ok()
    }

    /// Number of the frame whose bytes (prefix included) contain `offset`.
    pub fn frame_containing(&self, offset: u64) -> Option<usize> {
        if offset >= self.end {
            return None;
        }
        self.offsets
            .partition_point(|&o| o <= offset)
            .checked_sub(1)
    }

    /// The first frame start at or after `offset`, or [`end`](Self::end).
    pub fn next_start(&self, offset: u64) -> u64 {
        let i = self.offsets.partition_point(|&o| o < offset);
        self.offsets.get(i).copied().unwrap_or(self.end)
    }
}

/// Builds a [`FrameIndex`] by reading [`PROBE_LEN`] bytes at each frame start: read at
/// [`next_offset`](Self::next_offset), hand the bytes to [`push_probe`](Self::push_probe), repeat
/// until the stream ends there, then [`finish`](Self::finish) with the stream length.
#[derive(Debug, Clone)]
pub struct IndexBuilder {
    index: FrameIndex,
    max_len: usize,
}

impl IndexBuilder {
    /// An empty index that refuses frames longer than `max_len` bytes.
    pub fn new(max_len: usize) -> Self {
        Self {
            index: FrameIndex::default(),
            max_len,
        }
    }

    /// Where the next frame starts.
    pub fn next_offset(&self) -> u64 {
        self.index.end
    }

    /// Frames indexed so far.
    pub fn frames(&self) -> usize {
        self.index.len()
    }

    /// The index so far (every frame whose start was checked).
    pub fn index(&self) -> &FrameIndex {
        &self.index
    }

    /// Adds the frame whose first bytes (up to [`PROBE_LEN`]; fewer only at the end of the
    /// stream) were read at [`next_offset`](Self::next_offset).
    pub fn push_probe(&mut self, probe: &[u8]) -> Result<(), MjpegError> {
        let offset = self.index.end;
        let len = parse_header(probe, offset, self.max_len)?;
        let data = probe.get(HEADER_LEN..).unwrap_or_default();
        if data.len() < 2.min(len) {
            return Err(MjpegError::Truncated {
                offset,
                needed: HEADER_LEN + len,
                available: probe.len(),
            });
        }
        check_soi(data, offset)?;
        self.index.offsets.push(offset);
        self.index.end = offset + (HEADER_LEN + len) as u64;
        Ok(())
    }

    /// The index of a stream of `stream_len` bytes; an error if its last frame runs past it.
    pub fn finish(self, stream_len: u64) -> Result<FrameIndex, MjpegError> {
        if let (Some(&last), true) = (self.index.offsets.last(), self.index.end > stream_len) {
            return Err(MjpegError::Truncated {
                offset: last,
                needed: usize::try_from(self.index.end - last).unwrap_or(usize::MAX),
                available: usize::try_from(stream_len.saturating_sub(last)).unwrap_or(usize::MAX),
            });
        }
        Ok(self.index)
    }
}

/// Start time in nanoseconds of frame `n` at `fps_n/fps_d` frames per second (0 if the rate is
/// not positive).
pub fn frame_time_ns(n: u64, fps_n: u32, fps_d: u32) -> u64 {
    if fps_n == 0 {
        return 0;
    }
    let t = u128::from(n) * 1_000_000_000 * u128::from(fps_d) / u128::from(fps_n);
    u64::try_from(t).unwrap_or(u64::MAX)
}

/// Number of the frame shown at `ns` nanoseconds: ⌊ns·fps⌋ (0 if the rate is not positive).
pub fn frame_at_time_ns(ns: u64, fps_n: u32, fps_d: u32) -> u64 {
    if fps_d == 0 {
        return 0;
    }
    let n = u128::from(ns) * u128::from(fps_n) / (1_000_000_000 * u128::from(fps_d));
    u64::try_from(n).unwrap_or(u64::MAX)
}

/// What a JPEG's start-of-frame marker says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JpegInfo {
    /// Width in pixels.
    pub width: u16,
    /// Height in pixels (lines).
    pub height: u16,
    /// Sample precision in bits (8 for baseline).
    pub precision: u8,
    /// Number of components (1 grey, 3 YCbCr).
    pub components: u8,
    /// The SOF marker's second byte: C0 baseline, C1 extended, C2 progressive, ….
    pub sof: u8,
}

/// Walks a JPEG's marker segments up to its first SOF marker (C0–CF except C4 DHT, C8 JPG and
/// CC DAC). `None` if `jpeg` does not start with SOI or the SOF is missing or cut short.
pub fn jpeg_info(jpeg: &[u8]) -> Option<JpegInfo> {
    if !jpeg.starts_with(&SOI) {
        return None;
    }
    let mut p = 2usize;
    loop {
        if *jpeg.get(p)? != 0xFF {
            return None;
        }
        // Fill bytes: any number of FF before the marker code.
        while *jpeg.get(p + 1)? == 0xFF {
            p += 1;
        }
        let marker = *jpeg.get(p + 1)?;
        p += 2;
        match marker {
            0x01 | 0xD0..=0xD7 => continue,
            0xD9 | 0xDA => return None,
            _ => {}
        }
        let seg_len = usize::from(u16::from_be_bytes([*jpeg.get(p)?, *jpeg.get(p + 1)?]));
        if seg_len < 2 {
            return None;
        }
        if (0xC0..=0xCF).contains(&marker) && !matches!(marker, 0xC4 | 0xC8 | 0xCC) {
            let seg = jpeg.get(p + 2..p + seg_len)?;
            let height = u16::from_be_bytes([*seg.get(1)?, *seg.get(2)?]);
            let width = u16::from_be_bytes([*seg.get(3)?, *seg.get(4)?]);
            return Some(JpegInfo {
                width,
                height,
                precision: *seg.first()?,
                components: *seg.get(5)?,
                sof: marker,
            });
        }
        p += seg_len;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal (undecodable but well-formed up to SOF) JPEG: SOI, a COM segment, SOF0 for
    /// `w`×`h` 3-component 8-bit, EOI.
    fn jpeg(w: u16, h: u16) -> Vec<u8> {
        let mut v = vec![0xFF, 0xD8, 0xFF, 0xFE, 0x00, 0x04, b'h', b'i'];
        v.extend_from_slice(&[0xFF, 0xC0, 0x00, 0x11, 0x08]);
        v.extend_from_slice(&h.to_be_bytes());
        v.extend_from_slice(&w.to_be_bytes());
        v.extend_from_slice(&[3, 1, 0x22, 0, 2, 0x11, 1, 3, 0x11, 1]);
        v.extend_from_slice(&[0xFF, 0xD9]);
        v
    }

    #[test]
    fn a_frame_shorter_than_soi_is_refused_even_when_ff_d8_follows() {
        // Found by the mjpeg fuzz target: SOI was checked on the bytes after the header, past
        // the end of a 1-byte frame.
        let mut r = MjpegReader::with_max_len(99_999);
        r.push(b"00001\xFF\xD8");
        r.finish();
        assert!(matches!(
            r.next(),
            Err(MjpegError::NotJpeg { offset: 0, .. })
        ));
    }

    fn mjpeg(frames: &[&[u8]]) -> Vec<u8> {
        let mut out = Vec::new();
        for f in frames {
            out.extend_from_slice(format!("{:05}", f.len()).as_bytes());
            out.extend_from_slice(f);
        }
        out
    }

    fn read_all(r: &mut MjpegReader) -> Vec<Result<Frame, MjpegError>> {
        let mut out = Vec::new();
        for _ in 0..100 {
            match r.next() {
                Ok(Some(f)) => out.push(Ok(f)),
                Ok(None) => break,
                Err(e) => out.push(Err(e)),
            }
        }
        out
    }

    #[test]
    fn sof_vector_is_byte_exact() {
        assert_eq!(
            jpeg(640, 480),
            [
                0xFF, 0xD8, 0xFF, 0xFE, 0x00, 0x04, 0x68, 0x69, 0xFF, 0xC0, 0x00, 0x11, 0x08, 0x01,
                0xE0, 0x02, 0x80, 0x03, 0x01, 0x22, 0x00, 0x02, 0x11, 0x01, 0x03, 0x11, 0x01, 0xFF,
                0xD9
            ]
        );
        assert_eq!(
            jpeg_info(&jpeg(640, 480)),
            Some(JpegInfo {
                width: 640,
                height: 480,
                precision: 8,
                components: 3,
                sof: 0xC0
            })
        );
    }

    #[test]
    fn jpeg_info_skips_fill_bytes_and_standalone_markers_and_refuses_no_sof() {
        let mut j = vec![0xFF, 0xD8, 0xFF, 0xFF, 0xD0];
        j.extend_from_slice(&jpeg(32, 16)[2..]);
        assert_eq!(jpeg_info(&j).map(|i| (i.width, i.height)), Some((32, 16)));
        // Progressive.
        let mut p = jpeg(8, 8);
        p[9] = 0xC2;
        assert_eq!(jpeg_info(&p).map(|i| i.sof), Some(0xC2));
        // DHT (C4) is not a SOF: a JPEG with only DHT then SOS has no size.
        assert_eq!(
            jpeg_info(&[0xFF, 0xD8, 0xFF, 0xC4, 0x00, 0x02, 0xFF, 0xDA, 0x00, 0x02]),
            None
        );
        assert_eq!(jpeg_info(&[0xFF, 0xD8, 0xFF, 0xD9]), None);
        assert_eq!(jpeg_info(&[0x89, b'P', b'N', b'G']), None);
        // Cut inside SOF.
        assert_eq!(jpeg_info(&jpeg(8, 8)[..14]), None);
        // Segment length below 2.
        assert_eq!(jpeg_info(&[0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x01]), None);
    }

    #[test]
    fn reads_byte_exact_frames_fed_one_byte_at_a_time() {
        let a = jpeg(16, 16);
        let b = jpeg(320, 240);
        let stream = mjpeg(&[&a, &b]);
        assert_eq!(&stream[..7], b"00029\xFF\xD8");
        assert_eq!(&stream[34..41], b"00029\xFF\xD8");
        let mut r = MjpegReader::new();
        let mut frames = Vec::new();
        for byte in &stream {
            r.push(std::slice::from_ref(byte));
            while let Some(f) = r.next().unwrap() {
                frames.push(f);
            }
        }
        r.finish();
        assert_eq!(r.next(), Ok(None));
        assert_eq!(
            frames,
            vec![
                Frame {
                    index: 0,
                    offset: 0,
                    jpeg: a.clone()
                },
                Frame {
                    index: 1,
                    offset: 34,
                    jpeg: b.clone()
                }
            ]
        );
        assert_eq!(frames[1].stream_len(), 34);
        assert_eq!(r.position(), 68);
        assert_eq!(r.buffered(), 0);
    }

    #[test]
    fn bad_digits_name_the_offset_and_the_reader_resyncs() {
        let a = jpeg(16, 16);
        let mut stream = mjpeg(&[&a]);
        stream.extend_from_slice(b"00x29");
        stream.extend_from_slice(&a);
        stream.extend_from_slice(&mjpeg(&[&a]));
        let mut r = MjpegReader::new();
        r.push(&stream);
        r.finish();
        let out = read_all(&mut r);
        assert_eq!(out.len(), 3, "{out:?}");
        assert_eq!(out[0].as_ref().unwrap().offset, 0);
        let e = out[1].clone().unwrap_err();
        assert_eq!(
            e,
            MjpegError::BadDigits {
                offset: 34,
                found: *b"00x29"
            }
        );
        assert_eq!(
            e.to_string(),
            "bad frame length at byte 34: expected 5 ASCII digits, found \"00x29\""
        );
        let f = out[2].as_ref().unwrap();
        assert_eq!((f.index, f.offset, &f.jpeg), (1, 68, &a));
    }

    #[test]
    fn empty_too_long_and_not_jpeg_frames_are_typed_errors() {
        let mut r = MjpegReader::new();
        r.push(b"00000");
        assert_eq!(r.next(), Err(MjpegError::EmptyFrame { offset: 0 }));

        let mut r = MjpegReader::with_max_len(1000);
        r.push(b"01001\xFF\xD8");
        let e = r.next().unwrap_err();
        assert_eq!(
            e,
            MjpegError::TooLong {
                offset: 0,
                len: 1001,
                max: 1000
            }
        );
        assert_eq!(
            e.to_string(),
            "frame length 1001 at byte 0 is above the limit of 1000 bytes"
        );

        let mut r = MjpegReader::new();
        r.push(b"00004\x89PNG");
        let e = r.next().unwrap_err();
        assert_eq!(
            e,
            MjpegError::NotJpeg {
                offset: 0,
                found: vec![0x89, b'P']
            }
        );
        assert_eq!(
            e.to_string(),
            "frame at byte 0 is not a JPEG: it starts with 89 50 instead of the SOI marker FF D8"
        );
        // Not-JPEG is seen as soon as 2 data bytes are there, before the whole frame.
        let mut r = MjpegReader::new();
        r.push(b"09999GI");
        assert!(matches!(r.next(), Err(MjpegError::NotJpeg { .. })));
        // A 1-byte frame can never hold SOI.
        let mut r = MjpegReader::new();
        r.push(b"00001\xFF");
        assert!(matches!(r.next(), Err(MjpegError::NotJpeg { .. })));
    }

    #[test]
    fn truncated_last_frame_is_an_error_only_at_the_end() {
        let a = jpeg(16, 16);
        let stream = mjpeg(&[&a, &a]);
        let cut = &stream[..stream.len() - 3];
        let mut r = MjpegReader::new();
        r.push(cut);
        assert!(r.next().unwrap().is_some());
        assert_eq!(r.next(), Ok(None));
        r.finish();
        let e = r.next().unwrap_err();
        assert_eq!(
            e,
            MjpegError::Truncated {
                offset: 34,
                needed: 34,
                available: 31
            }
        );
        assert_eq!(
            e.to_string(),
            "truncated frame at byte 34: 31 of 34 bytes before the end of the stream"
        );
        assert_eq!(r.next(), Ok(None));
        // Inside the prefix.
        let mut r = MjpegReader::new();
        r.push(b"000");
        r.finish();
        assert_eq!(
            r.next(),
            Err(MjpegError::Truncated {
                offset: 0,
                needed: 5,
                available: 3
            })
        );
    }

    #[test]
    fn index_gives_every_frame_start_and_maps_offsets_and_times() {
        let a = jpeg(16, 16);
        let b = jpeg(320, 240);
        let stream = mjpeg(&[&a, &b, &a]);
        let idx = FrameIndex::from_bytes(&stream).unwrap();
        assert_eq!(idx.len(), 3);
        assert_eq!(
            (0..3).map(|n| idx.offset(n).unwrap()).collect::<Vec<_>>(),
            [0, 34, 68]
        );
        assert_eq!(idx.end(), 102);
        assert_eq!(idx.frame_at(34), Some(1));
        assert_eq!(idx.frame_at(35), None);
        assert_eq!(idx.frame_containing(35), Some(1));
        assert_eq!(idx.frame_containing(101), Some(2));
        assert_eq!(idx.frame_containing(102), None);
        assert_eq!(idx.next_start(1), 34);
        assert_eq!(idx.next_start(69), 102);
        assert!(FrameIndex::from_bytes(&[]).unwrap().is_empty());

        // 25 fps: frame 12 starts at 480 ms; 500 ms shows frame 12.
        assert_eq!(frame_time_ns(12, 25, 1), 480_000_000);
        assert_eq!(frame_at_time_ns(500_000_000, 25, 1), 12);
        assert_eq!(frame_at_time_ns(479_999_999, 25, 1), 11);
        // NTSC 30000/1001: frame 1 at 33 366 666 ns.
        assert_eq!(frame_time_ns(1, 30000, 1001), 33_366_666);
        assert_eq!(frame_at_time_ns(33_366_667, 30000, 1001), 1);
        assert_eq!(frame_time_ns(5, 0, 1), 0);
        assert_eq!(frame_at_time_ns(5, 1, 0), 0);
    }

    #[test]
    fn index_builder_reports_bad_starts_and_a_short_last_frame() {
        let a = jpeg(16, 16);
        let stream = mjpeg(&[&a, &a]);
        assert_eq!(
            FrameIndex::from_bytes(&stream[..60]),
            Err(MjpegError::Truncated {
                offset: 34,
                needed: 34,
                available: 26
            })
        );
        let mut bad = stream.clone();
        bad[34..39].copy_from_slice(b"12 45");
        assert_eq!(
            FrameIndex::from_bytes(&bad),
            Err(MjpegError::BadDigits {
                offset: 34,
                found: *b"12 45"
            })
        );
        let mut b = IndexBuilder::new(MAX_FRAME_LEN);
        b.push_probe(&stream[..PROBE_LEN]).unwrap();
        assert_eq!(b.next_offset(), 34);
        assert_eq!(b.frames(), 1);
        assert_eq!(
            b.push_probe(b"00029\xFF"),
            Err(MjpegError::Truncated {
                offset: 34,
                needed: 34,
                available: 6
            })
        );
        assert_eq!(
            b.push_probe(b"00029AB"),
            Err(MjpegError::NotJpeg {
                offset: 34,
                found: b"AB".to_vec()
            })
        );
    }
}
