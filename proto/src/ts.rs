//! MPEG-2 transport stream packets (ISO/IEC 13818-1 2.4.3): header, adaptation field (PCR, OPCR,
//! splice countdown, private data, adaptation_field_extension with the af_descriptor bytes), PES
//! header (PTS/DTS), an incremental packet reader that keeps and regains sync, and a per-PID
//! continuity counter checker.
//!
//! Everything here works on untrusted bytes and never panics: every read is bounds-checked and
//! malformed input becomes a [`TsError`].

use std::fmt;

/// Size of one TS packet in bytes.
pub const PACKET_SIZE: usize = 188;
/// The sync byte that starts every TS packet.
pub const SYNC_BYTE: u8 = 0x47;
/// The null packet PID.
pub const PID_NULL: u16 = 0x1FFF;
/// How many sync bytes in a row, 188 bytes apart, the reader wants before it trusts a cadence.
pub const SYNC_CONFIRM: usize = 3;

/// Errors from TS packet, adaptation field and PES header parsing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TsError {
    /// Fewer bytes than the structure needs.
    Truncated,
    /// The first byte is not 0x47.
    BadSync(u8),
    /// adaptation_field_control = 00 (reserved).
    ReservedAdaptationFieldControl,
    /// The adaptation_field_length does not fit in the packet.
    BadAdaptationFieldLength(u8),
    /// A field announced by a flag runs past the end of the adaptation field.
    AdaptationFieldOverrun,
    /// The adaptation_field_extension_length runs past the end of the adaptation field.
    BadExtensionLength(u8),
    /// The payload does not start with the PES start code prefix 00 00 01.
    NotPes,
    /// The PES header is malformed (bad marker bits or header length).
    BadPesHeader,
    /// The reader lost the 188-byte cadence; it resyncs on the next call.
    LostSync {
        /// Byte offset in the input where the expected sync byte was missing.
        offset: u64,
    },
}

impl fmt::Display for TsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TsError::Truncated => write!(f, "truncated data"),
            TsError::BadSync(b) => write!(f, "bad sync byte 0x{b:02x}"),
            TsError::ReservedAdaptationFieldControl => {
                write!(f, "reserved adaptation_field_control")
            }
            TsError::BadAdaptationFieldLength(l) => write!(f, "bad adaptation_field_length {l}"),
            TsError::AdaptationFieldOverrun => {
                write!(f, "adaptation field fields overrun its length")
            }
            TsError::BadExtensionLength(l) => {
                write!(f, "bad adaptation_field_extension_length {l}")
            }
            TsError::NotPes => write!(f, "payload is not a PES packet start"),
            TsError::BadPesHeader => write!(f, "malformed PES header"),
            TsError::LostSync { offset } => write!(f, "lost TS sync at byte offset {offset}"),
        }
    }
}

impl std::error::Error for TsError {}

/// A bounds-checked big-endian reader over a byte slice. Every getter returns `None` instead of
/// reading past the end.
#[derive(Debug, Clone)]
pub struct ByteCursor<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> ByteCursor<'a> {
    /// A cursor at the start of `data`.
    pub fn new(data: &'a [u8]) -> Self {
        ByteCursor { data, pos: 0 }
    }

    /// Bytes not read yet.
    pub fn remaining(&self) -> usize {
        self.data.len().saturating_sub(self.pos)
    }

    /// Current position from the start of the slice.
    pub fn position(&self) -> usize {
        self.pos
    }

    /// The unread tail.
    pub fn rest(&self) -> &'a [u8] {
        self.data.get(self.pos..).unwrap_or(&[])
    }

    /// The next `n` bytes, advancing.
    pub fn bytes(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.pos.checked_add(n)?;
        let s = self.data.get(self.pos..end)?;
        self.pos = end;
        Some(s)
    }

    /// One byte.
    pub fn u8(&mut self) -> Option<u8> {
        self.bytes(1).and_then(|b| b.first().copied())
    }

    /// Big-endian u16.
    pub fn u16(&mut self) -> Option<u16> {
        self.be(2).map(|v| v as u16)
    }

    /// Big-endian 24-bit value.
    pub fn u24(&mut self) -> Option<u32> {
        self.be(3).map(|v| v as u32)
    }

    /// Big-endian u32.
    pub fn u32(&mut self) -> Option<u32> {
        self.be(4).map(|v| v as u32)
    }

    /// Big-endian u64.
    pub fn u64(&mut self) -> Option<u64> {
        self.be(8)
    }

    /// Big-endian unsigned integer of `n` ≤ 8 bytes.
    pub fn be(&mut self, n: usize) -> Option<u64> {
        if n > 8 {
            return None;
        }
        Some(
            self.bytes(n)?
                .iter()
                .fold(0u64, |acc, &b| (acc << 8) | u64::from(b)),
        )
    }

    /// Skip `n` bytes; `None` if fewer remain.
    pub fn skip(&mut self, n: usize) -> Option<()> {
        self.bytes(n).map(|_| ())
    }
}

/// The 4-byte TS packet header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TsHeader {
    /// transport_error_indicator.
    pub tei: bool,
    /// payload_unit_start_indicator.
    pub pusi: bool,
    /// transport_priority.
    pub priority: bool,
    /// 13-bit PID.
    pub pid: u16,
    /// transport_scrambling_control (2 bits).
    pub scrambling: u8,
    /// adaptation_field_control (2 bits): 01 payload, 10 AF only, 11 AF + payload.
    pub afc: u8,
    /// continuity_counter (4 bits).
    pub cc: u8,
}

impl TsHeader {
    /// Parse the first 4 bytes of a packet.
    pub fn parse(data: &[u8]) -> Result<TsHeader, TsError> {
        let h = data.get(..4).ok_or(TsError::Truncated)?;
        let (b0, b1, b2, b3) = match *h {
            [a, b, c, d] => (a, b, c, d),
            _ => return Err(TsError::Truncated),
        };
        if b0 != SYNC_BYTE {
            return Err(TsError::BadSync(b0));
        }
        Ok(TsHeader {
            tei: b1 & 0x80 != 0,
            pusi: b1 & 0x40 != 0,
            priority: b1 & 0x20 != 0,
            pid: (u16::from(b1 & 0x1F) << 8) | u16::from(b2),
            scrambling: b3 >> 6,
            afc: (b3 >> 4) & 0x03,
            cc: b3 & 0x0F,
        })
    }

    /// Serialise back to 4 bytes.
    pub fn encode(&self) -> [u8; 4] {
        [
            SYNC_BYTE,
            (u8::from(self.tei) << 7)
                | (u8::from(self.pusi) << 6)
                | (u8::from(self.priority) << 5)
                | ((self.pid >> 8) as u8 & 0x1F),
            self.pid as u8,
            ((self.scrambling & 3) << 6) | ((self.afc & 3) << 4) | (self.cc & 0x0F),
        ]
    }

    /// The packet has an adaptation field.
    pub fn has_adaptation_field(&self) -> bool {
        self.afc & 0b10 != 0
    }

    /// The packet has a payload.
    pub fn has_payload(&self) -> bool {
        self.afc & 0b01 != 0
    }
}

/// A program clock reference: 33-bit base (90 kHz) and 9-bit extension (0..299 at 27 MHz).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pcr {
    /// 33-bit base, 90 kHz.
    pub base: u64,
    /// 9-bit extension, 27 MHz (0..299 when valid).
    pub extension: u16,
}

impl Pcr {
    /// Decode the 6-byte field `base(33) reserved(6) extension(9)`.
    pub fn parse(b: &[u8]) -> Option<Pcr> {
        let v = ByteCursor::new(b).be(6)?;
        Some(Pcr {
            base: v >> 15,
            extension: (v & 0x1FF) as u16,
        })
    }

    /// Encode to 6 bytes with the reserved bits set to 1.
    pub fn encode(&self) -> [u8; 6] {
        let v =
            ((self.base & 0x1_FFFF_FFFF) << 15) | (0x3F << 9) | u64::from(self.extension & 0x1FF);
        let b = v.to_be_bytes();
        [b[2], b[3], b[4], b[5], b[6], b[7]]
    }

    /// The value in 27 MHz ticks: base × 300 + extension (fields masked to 33 and 9 bits).
    pub fn to_27mhz(&self) -> u64 {
        (self.base & 0x1_FFFF_FFFF) * 300 + u64::from(self.extension & 0x1FF)
    }
}

/// ltw fields of the adaptation_field_extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ltw {
    /// ltw_valid_flag.
    pub valid: bool,
    /// 15-bit ltw_offset.
    pub offset: u16,
}

/// seamless_splice fields of the adaptation_field_extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SeamlessSplice {
    /// 4-bit splice_type.
    pub splice_type: u8,
    /// 33-bit DTS_next_AU.
    pub dts_next_au: u64,
}

/// adaptation_field_extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AfExtension<'a> {
    /// Legal time window.
    pub ltw: Option<Ltw>,
    /// 22-bit piecewise_rate.
    pub piecewise_rate: Option<u32>,
    /// Seamless splice.
    pub seamless_splice: Option<SeamlessSplice>,
    /// The af_descriptor loop bytes, `None` when af_descriptor_not_present_flag = 1.
    pub af_descriptors: Option<&'a [u8]>,
}

/// A parsed adaptation field. Slices borrow from the packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AdaptationField<'a> {
    /// adaptation_field_length.
    pub length: u8,
    /// discontinuity_indicator.
    pub discontinuity: bool,
    /// random_access_indicator.
    pub random_access: bool,
    /// elementary_stream_priority_indicator.
    pub es_priority: bool,
    /// Program clock reference.
    pub pcr: Option<Pcr>,
    /// Original program clock reference.
    pub opcr: Option<Pcr>,
    /// splice_countdown (signed).
    pub splice_countdown: Option<i8>,
    /// transport_private_data bytes.
    pub private_data: Option<&'a [u8]>,
    /// adaptation_field_extension.
    pub extension: Option<AfExtension<'a>>,
}

impl<'a> AdaptationField<'a> {
    /// Parse the adaptation field body: the `length` bytes after adaptation_field_length.
    pub fn parse(body: &'a [u8]) -> Result<AdaptationField<'a>, TsError> {
        let length = u8::try_from(body.len()).map_err(|_| TsError::AdaptationFieldOverrun)?;
        let mut af = AdaptationField {
            length,
            ..Default::default()
        };
        let mut c = ByteCursor::new(body);
        let flags = match c.u8() {
            Some(f) => f,
            None => return Ok(af), // length 0: a single stuffing byte
        };
        let ovr = TsError::AdaptationFieldOverrun;
        af.discontinuity = flags & 0x80 != 0;
        af.random_access = flags & 0x40 != 0;
        af.es_priority = flags & 0x20 != 0;
        if flags & 0x10 != 0 {
            af.pcr = Some(c.bytes(6).and_then(Pcr::parse).ok_or(ovr)?);
        }
        if flags & 0x08 != 0 {
            af.opcr = Some(c.bytes(6).and_then(Pcr::parse).ok_or(ovr)?);
        }
        if flags & 0x04 != 0 {
            af.splice_countdown = Some(c.u8().ok_or(ovr)? as i8);
        }
        if flags & 0x02 != 0 {
            let n = c.u8().ok_or(ovr)?;
            af.private_data = Some(c.bytes(usize::from(n)).ok_or(ovr)?);
        }
        if flags & 0x01 != 0 {
            let e = c.u8().ok_or(ovr)?;
            let ext = c
                .bytes(usize::from(e))
                .ok_or(TsError::BadExtensionLength(e))?;
            af.extension = Some(parse_af_extension(ext)?);
        }
        Ok(af)
    }
}

/// Parse the adaptation_field_extension body (after its length byte).
fn parse_af_extension(ext: &[u8]) -> Result<AfExtension<'_>, TsError> {
    let ovr = TsError::AdaptationFieldOverrun;
    let mut c = ByteCursor::new(ext);
    let mut out = AfExtension {
        ltw: None,
        piecewise_rate: None,
        seamless_splice: None,
        af_descriptors: None,
    };
    let flags = match c.u8() {
        Some(f) => f,
        None => return Ok(out),
    };
    if flags & 0x80 != 0 {
        let v = c.u16().ok_or(ovr)?;
        out.ltw = Some(Ltw {
            valid: v & 0x8000 != 0,
            offset: v & 0x7FFF,
        });
    }
    if flags & 0x40 != 0 {
        out.piecewise_rate = Some(c.u24().ok_or(ovr)? & 0x3F_FFFF);
    }
    if flags & 0x20 != 0 {
        let b = c.bytes(5).ok_or(ovr)?;
        let first = b.first().copied().unwrap_or(0);
        out.seamless_splice = Some(SeamlessSplice {
            splice_type: first >> 4,
            dts_next_au: decode_timestamp(b).ok_or(ovr)?,
        });
    }
    if flags & 0x10 == 0 {
        out.af_descriptors = Some(c.rest());
    }
    Ok(out)
}

/// Decode a 5-byte PTS/DTS field (`prefix(4) ts[32..30] m ts[29..15] m ts[14..0] m`). Marker
/// bits are not checked.
pub fn decode_timestamp(b: &[u8]) -> Option<u64> {
    let v = ByteCursor::new(b).be(5)?;
    let hi = (v >> 33) & 0x7;
    let mid = (v >> 17) & 0x7FFF;
    let lo = (v >> 1) & 0x7FFF;
    Some((hi << 30) | (mid << 15) | lo)
}

/// Encode a 33-bit timestamp as the 5-byte PTS/DTS field with the 4-bit `prefix`
/// (0b0010 PTS only, 0b0011 PTS of PTS+DTS, 0b0001 DTS) and marker bits set.
pub fn encode_timestamp(prefix: u8, ts: u64) -> [u8; 5] {
    let ts = ts & 0x1_FFFF_FFFF;
    [
        ((prefix & 0x0F) << 4) | (((ts >> 30) as u8 & 0x07) << 1) | 1,
        (ts >> 22) as u8,
        (((ts >> 15) as u8 & 0x7F) << 1) | 1,
        (ts >> 7) as u8,
        ((ts as u8 & 0x7F) << 1) | 1,
    ]
}

/// A parsed view of one 188-byte packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PacketView<'a> {
    /// The header.
    pub header: TsHeader,
    /// Body of the adaptation field (after the length byte), if the packet has one.
    pub adaptation_field_bytes: Option<&'a [u8]>,
    /// Payload bytes (empty when the packet has none).
    pub payload: &'a [u8],
}

impl<'a> PacketView<'a> {
    /// Split a packet into header, adaptation field and payload. Accepts slices longer than 188
    /// bytes (only the first 188 are used).
    pub fn parse(data: &'a [u8]) -> Result<PacketView<'a>, TsError> {
        let pkt = data.get(..PACKET_SIZE).ok_or(TsError::Truncated)?;
        let header = TsHeader::parse(pkt)?;
        if header.afc == 0 {
            return Err(TsError::ReservedAdaptationFieldControl);
        }
        let mut pos = 4usize;
        let mut adaptation_field_bytes = None;
        if header.has_adaptation_field() {
            let l = *pkt.get(4).ok_or(TsError::Truncated)?;
            let max = if header.has_payload() { 182 } else { 183 };
            if usize::from(l) > max {
                return Err(TsError::BadAdaptationFieldLength(l));
            }
            adaptation_field_bytes = Some(
                pkt.get(5..5 + usize::from(l))
                    .ok_or(TsError::BadAdaptationFieldLength(l))?,
            );
            pos = 5 + usize::from(l);
        }
        let payload = if header.has_payload() {
            pkt.get(pos..).unwrap_or(&[])
        } else {
            &[]
        };
        Ok(PacketView {
            header,
            adaptation_field_bytes,
            payload,
        })
    }

    /// Parse the adaptation field, if any.
    pub fn adaptation_field(&self) -> Result<Option<AdaptationField<'a>>, TsError> {
        self.adaptation_field_bytes
            .map(AdaptationField::parse)
            .transpose()
    }
}

/// One 188-byte packet produced by [`TsReader`].
#[derive(Clone, PartialEq, Eq)]
pub struct Packet {
    /// The raw bytes.
    pub data: [u8; PACKET_SIZE],
    /// 0-based index of this packet among those the reader returned.
    pub index: u64,
    /// Byte offset of the packet in the pushed input.
    pub offset: u64,
}

impl fmt::Debug for Packet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Packet")
            .field("index", &self.index)
            .field("offset", &self.offset)
            .finish()
    }
}

impl Packet {
    /// Parse the packet.
    pub fn view(&self) -> Result<PacketView<'_>, TsError> {
        PacketView::parse(&self.data)
    }

    /// The header (never fails: the reader only returns packets starting with 0x47).
    pub fn header(&self) -> Result<TsHeader, TsError> {
        TsHeader::parse(&self.data)
    }
}

/// Counters kept by [`TsReader`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReaderStats {
    /// Packets returned.
    pub packets: u64,
    /// Times an established sync was lost.
    pub sync_losses: u64,
    /// Bytes thrown away while looking for sync.
    pub bytes_skipped: u64,
    /// Packets returned with transport_error_indicator set.
    pub tei_packets: u64,
}

/// Incremental TS packet reader: `push()` bytes, then call `next()` until `Ok(None)`.
///
/// It locks on when [`SYNC_CONFIRM`] sync bytes follow each other 188 bytes apart, and after a
/// missing sync byte returns [`TsError::LostSync`] once and searches for a new cadence on the
/// next call. At end of input call [`TsReader::finish`] so that the last packets can be returned
/// without the look-ahead.
#[derive(Debug, Default)]
pub struct TsReader {
    buf: Vec<u8>,
    start: usize,
    /// Input offset of `buf[0]`.
    base_offset: u64,
    synced: bool,
    eos: bool,
    stats: ReaderStats,
}

/// Appends `data` to an incremental reader's buffer `buf`, whose bytes before `start` are
/// consumed and whose byte 0 is at stream offset `base_offset`. Once the consumed part is at
/// least half the buffer it is dropped first (and `base_offset` moved on), so the buffer stays
/// bounded by about twice the unread input.
pub(crate) fn append_compacting(
    buf: &mut Vec<u8>,
    start: &mut usize,
    base_offset: &mut u64,
    data: &[u8],
) {
    if *start > 0 && *start >= buf.len() / 2 {
        buf.drain(..*start);
        *base_offset += *start as u64;
        *start = 0;
    }
    buf.extend_from_slice(data);
}

impl TsReader {
    /// A reader with no input yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Append input bytes.
    pub fn push(&mut self, data: &[u8]) {
        append_compacting(&mut self.buf, &mut self.start, &mut self.base_offset, data);
    }

    /// Mark the end of input: the trailing packets no longer need the sync look-ahead.
    pub fn finish(&mut self) {
        self.eos = true;
    }

    /// Counters so far.
    pub fn stats(&self) -> ReaderStats {
        self.stats
    }

    /// Whether the reader is locked on a 188-byte cadence.
    pub fn is_synced(&self) -> bool {
        self.synced
    }

    /// Bytes buffered and not returned yet.
    pub fn buffered(&self) -> usize {
        self.buf.len().saturating_sub(self.start)
    }

    /// Forget all buffered bytes and sync (e.g. after a flush). Counters are kept.
    pub fn reset(&mut self) {
        self.base_offset += self.buf.len() as u64;
        self.buf.clear();
        self.start = 0;
        self.synced = false;
        self.eos = false;
    }

    fn skip_to(&mut self, pos: usize) {
        let pos = pos.min(self.buf.len());
        self.stats.bytes_skipped += (pos.saturating_sub(self.start)) as u64;
        self.start = pos;
    }

    /// The next packet, `Ok(None)` when more input is needed, or an error once per lost sync.
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> Result<Option<Packet>, TsError> {
        if !self.synced && !self.find_sync() {
            return Ok(None);
        }
        let end = self.start + PACKET_SIZE;
        let Some(bytes) = self.buf.get(self.start..end) else {
            return Ok(None);
        };
        if bytes.first() != Some(&SYNC_BYTE) {
            self.synced = false;
            self.stats.sync_losses += 1;
            return Err(TsError::LostSync {
                offset: self.base_offset + self.start as u64,
            });
        }
        let mut data = [0u8; PACKET_SIZE];
        data.copy_from_slice(bytes);
        let pkt = Packet {
            data,
            index: self.stats.packets,
            offset: self.base_offset + self.start as u64,
        };
        self.start = end;
        self.stats.packets += 1;
        if data.get(1).is_some_and(|b| b & 0x80 != 0) {
            self.stats.tei_packets += 1;
        }
        Ok(Some(pkt))
    }

    /// Look for [`SYNC_CONFIRM`] sync bytes in cadence. Returns true when locked at `start`.
    fn find_sync(&mut self) -> bool {
        let len = self.buf.len();
        let mut p = self.start;
        while p < len {
            if self.buf.get(p) != Some(&SYNC_BYTE) {
                p += 1;
                continue;
            }
            let mut ok = true;
            let mut need_more = false;
            for k in 1..SYNC_CONFIRM {
                let q = p + k * PACKET_SIZE;
                match self.buf.get(q) {
                    Some(&SYNC_BYTE) => {}
                    Some(_) => {
                        ok = false;
                        break;
                    }
                    None => {
                        // At end of input a shorter run will do, if the packet itself is whole.
                        if !self.eos || p + PACKET_SIZE > len {
                            need_more = true;
                        }
                        break;
                    }
                }
            }
            if need_more {
                self.skip_to(p);
                return false;
            }
            if ok {
                self.skip_to(p);
                self.synced = true;
                return true;
            }
            p += 1;
        }
        self.skip_to(len);
        false
    }
}

/// Result of a continuity counter check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CcStatus {
    /// First packet seen on this PID.
    First,
    /// The counter incremented as expected.
    Ok,
    /// Same counter as the previous packet: a legal duplicate (allowed once).
    Duplicate,
    /// The packet carries no payload, so its counter is not checked and does not advance.
    NoPayload,
    /// discontinuity_indicator was set: any value is accepted.
    Signalled,
    /// Null packet, not checked.
    Ignored,
    /// Packets were lost (or repeated more than once).
    Discontinuity {
        /// The counter that was expected.
        expected: u8,
        /// The counter found.
        found: u8,
    },
}

const CC_UNKNOWN: u8 = 0xFF;
const CC_DUP_SEEN: u8 = 0x10;

/// Per-PID continuity counter checker for all 8192 PIDs.
#[derive(Debug, Clone)]
pub struct ContinuityChecker {
    state: Vec<u8>,
    errors: u64,
}

impl Default for ContinuityChecker {
    fn default() -> Self {
        Self::new()
    }
}

impl ContinuityChecker {
    /// A checker that has seen nothing yet.
    pub fn new() -> Self {
        ContinuityChecker {
            state: vec![CC_UNKNOWN; 8192],
            errors: 0,
        }
    }

    /// Number of discontinuities reported so far.
    pub fn errors(&self) -> u64 {
        self.errors
    }

    /// Forget the state of one PID.
    pub fn reset_pid(&mut self, pid: u16) {
        if let Some(s) = self.state.get_mut(usize::from(pid & 0x1FFF)) {
            *s = CC_UNKNOWN;
        }
    }

    /// Check one packet; `discontinuity_indicator` comes from its adaptation field.
    pub fn check(&mut self, header: &TsHeader, discontinuity_indicator: bool) -> CcStatus {
        if header.pid == PID_NULL {
            return CcStatus::Ignored;
        }
        let Some(slot) = self.state.get_mut(usize::from(header.pid & 0x1FFF)) else {
            return CcStatus::Ignored;
        };
        let cc = header.cc & 0x0F;
        if discontinuity_indicator {
            if header.has_payload() {
                *slot = cc;
            }
            return CcStatus::Signalled;
        }
        if !header.has_payload() {
            return CcStatus::NoPayload;
        }
        let prev = *slot;
        if prev == CC_UNKNOWN {
            *slot = cc;
            return CcStatus::First;
        }
        let last = prev & 0x0F;
        if cc == last {
            if prev & CC_DUP_SEEN == 0 {
                *slot = cc | CC_DUP_SEEN;
                return CcStatus::Duplicate;
            }
            self.errors += 1;
            return CcStatus::Discontinuity {
                expected: (last + 1) & 0x0F,
                found: cc,
            };
        }
        *slot = cc;
        let expected = (last + 1) & 0x0F;
        if cc == expected {
            CcStatus::Ok
        } else {
            self.errors += 1;
            CcStatus::Discontinuity {
                expected,
                found: cc,
            }
        }
    }
}

/// The optional PES header fields we use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PesHeader {
    /// stream_id.
    pub stream_id: u8,
    /// PES_packet_length (0 = unbounded, video).
    pub packet_length: u16,
    /// PES_scrambling_control (0 when there is no optional header).
    pub scrambling: u8,
    /// data_alignment_indicator.
    pub data_alignment: bool,
    /// 33-bit presentation time stamp, 90 kHz.
    pub pts: Option<u64>,
    /// 33-bit decoding time stamp, 90 kHz.
    pub dts: Option<u64>,
    /// PES_header_data_length (0 when there is no optional header).
    pub header_data_length: u8,
    /// Offset of the PES payload from the start of the PES packet.
    pub payload_offset: usize,
}

/// Whether a stream_id has the optional PES header (13818-1 Table 2-21 exclusions).
pub fn stream_id_has_optional_header(stream_id: u8) -> bool {
    !matches!(
        stream_id,
        0xBC | 0xBE | 0xBF | 0xF0 | 0xF1 | 0xFF | 0xF2 | 0xF8
    )
}

impl PesHeader {
    /// Parse the header at the start of `data` (the payload of a packet with PUSI = 1).
    pub fn parse(data: &[u8]) -> Result<PesHeader, TsError> {
        let mut c = ByteCursor::new(data);
        if c.u24().ok_or(TsError::Truncated)? != 0x00_0001 {
            return Err(TsError::NotPes);
        }
        let stream_id = c.u8().ok_or(TsError::Truncated)?;
        let packet_length = c.u16().ok_or(TsError::Truncated)?;
        let mut h = PesHeader {
            stream_id,
            packet_length,
            scrambling: 0,
            data_alignment: false,
            pts: None,
            dts: None,
            header_data_length: 0,
            payload_offset: 6,
        };
        if !stream_id_has_optional_header(stream_id) {
            return Ok(h);
        }
        let f1 = c.u8().ok_or(TsError::Truncated)?;
        let f2 = c.u8().ok_or(TsError::Truncated)?;
        let hdl = c.u8().ok_or(TsError::Truncated)?;
        if f1 & 0xC0 != 0x80 {
            return Err(TsError::BadPesHeader);
        }
        h.scrambling = (f1 >> 4) & 3;
        h.data_alignment = f1 & 0x04 != 0;
        h.header_data_length = hdl;
        h.payload_offset = 9 + usize::from(hdl);
        let mut opt = ByteCursor::new(c.rest());
        let needed = match f2 >> 6 {
            0b10 => 5,
            0b11 => 10,
            _ => 0,
        };
        if needed > usize::from(hdl) {
            return Err(TsError::BadPesHeader);
        }
        match f2 >> 6 {
            0b10 => {
                h.pts = Some(
                    opt.bytes(5)
                        .and_then(decode_timestamp)
                        .ok_or(TsError::Truncated)?,
                );
            }
            0b11 => {
                h.pts = Some(
                    opt.bytes(5)
                        .and_then(decode_timestamp)
                        .ok_or(TsError::Truncated)?,
                );
                h.dts = Some(
                    opt.bytes(5)
                        .and_then(decode_timestamp)
                        .ok_or(TsError::Truncated)?,
                );
            }
            _ => {}
        }
        Ok(h)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// TS packet 3 of shared/media/temi_a_single_timeline.ts (first 4 + 52 bytes, then the PES).
    fn temi_a_packet3() -> [u8; PACKET_SIZE] {
        let mut p = [0u8; PACKET_SIZE];
        let mut v: Vec<u8> = vec![
            0x47, 0x40, 0x66, 0x30, 0x33, 0x51, 0x00, 0x00, 0x05, 0xdc, 0x00, 0x00,
        ];
        v.extend_from_slice(&[0x2b, 0x0f, 0x05, 0x1b, 0x0f, 0x81, 0x01, 0x16]);
        v.extend_from_slice(b"example.com/temi/a.xml");
        v.extend_from_slice(&[
            0x00, 0x04, 0x0b, 0x40, 0x7f, 0x01, 0x00, 0x00, 0x03, 0xe8, 0x00, 0x00, 0x00, 0x00,
        ]);
        assert_eq!(v.len(), 56);
        // PES: video, unbounded, PTS+DTS.
        v.extend_from_slice(&[0x00, 0x00, 0x01, 0xe0, 0x00, 0x00, 0x80, 0xc0, 0x0a]);
        v.extend_from_slice(&encode_timestamp(0b0011, 10200));
        v.extend_from_slice(&encode_timestamp(0b0001, 6600));
        p[..v.len()].copy_from_slice(&v);
        p
    }

    #[test]
    fn header_roundtrip() {
        let p = temi_a_packet3();
        let h = TsHeader::parse(&p).unwrap();
        assert_eq!(
            h,
            TsHeader {
                tei: false,
                pusi: true,
                priority: false,
                pid: 102,
                scrambling: 0,
                afc: 3,
                cc: 0
            }
        );
        assert_eq!(h.encode(), [0x47, 0x40, 0x66, 0x30]);
        assert_eq!(
            TsHeader::parse(&[0x46, 0, 0, 0]),
            Err(TsError::BadSync(0x46))
        );
        assert_eq!(TsHeader::parse(&[0x47, 0]), Err(TsError::Truncated));
        let all = TsHeader::parse(&[0x47, 0xFF, 0xFF, 0xFF]).unwrap();
        assert!(all.tei && all.pusi && all.priority);
        assert_eq!(
            (all.pid, all.scrambling, all.afc, all.cc),
            (0x1FFF, 3, 3, 15)
        );
    }

    #[test]
    fn adaptation_field_of_temi_a_packet3() {
        let p = temi_a_packet3();
        let v = PacketView::parse(&p).unwrap();
        let af = v.adaptation_field().unwrap().unwrap();
        assert_eq!(af.length, 0x33);
        assert!(af.random_access && !af.discontinuity && !af.es_priority);
        assert_eq!(
            af.pcr,
            Some(Pcr {
                base: 3000,
                extension: 0
            })
        );
        assert_eq!(af.pcr.unwrap().to_27mhz(), 900_000);
        assert_eq!(af.opcr, None);
        let ext = af.extension.unwrap();
        assert_eq!(
            (ext.ltw, ext.piecewise_rate, ext.seamless_splice),
            (None, None, None)
        );
        let d = ext.af_descriptors.unwrap();
        assert_eq!(d.len(), 42);
        assert_eq!(&d[..4], &[0x05, 0x1b, 0x0f, 0x81]);
        assert_eq!(&d[29..31], &[0x04, 0x0b]);
        assert_eq!(v.payload.len(), PACKET_SIZE - 56);
        let pes = PesHeader::parse(v.payload).unwrap();
        assert_eq!(pes.stream_id, 0xe0);
        assert_eq!(pes.pts, Some(10200));
        assert_eq!(pes.dts, Some(6600));
        assert_eq!(pes.payload_offset, 19);
    }

    #[test]
    fn adaptation_field_all_fields() {
        let pcr = Pcr {
            base: 0x1_2345_6789,
            extension: 299,
        };
        let opcr = Pcr {
            base: 7,
            extension: 1,
        };
        let mut af = vec![0xFF]; // all flags
        af.extend_from_slice(&pcr.encode());
        af.extend_from_slice(&opcr.encode());
        af.push(0xFE); // splice countdown -2
        af.extend_from_slice(&[2, 0xAA, 0xBB]);
        // extension: len, flags(ltw, piecewise, seamless, af present), ltw, rate, splice, descs
        let mut ext = vec![0xE0 | 0x0F];
        ext.extend_from_slice(&[0x80 | 0x12, 0x34]);
        ext.extend_from_slice(&[0xC0 | 0x12, 0x34, 0x56]);
        let mut s = encode_timestamp(0b0101, 0x1_0000_0001);
        s[0] |= 0; // splice_type 5 is the prefix nibble
        ext.extend_from_slice(&s);
        ext.extend_from_slice(&[0x80, 0x01, 0x99]);
        af.push(ext.len() as u8);
        af.extend_from_slice(&ext);
        af.extend_from_slice(&[0xFF, 0xFF]);
        let a = AdaptationField::parse(&af).unwrap();
        assert!(a.discontinuity && a.random_access && a.es_priority);
        assert_eq!(a.pcr, Some(pcr));
        assert_eq!(a.pcr.unwrap().to_27mhz(), 0x1_2345_6789 * 300 + 299);
        assert_eq!(a.opcr, Some(opcr));
        assert_eq!(a.splice_countdown, Some(-2));
        assert_eq!(a.private_data, Some(&[0xAA, 0xBB][..]));
        let e = a.extension.unwrap();
        assert_eq!(
            e.ltw,
            Some(Ltw {
                valid: true,
                offset: 0x1234
            })
        );
        assert_eq!(e.piecewise_rate, Some(0x12_3456));
        assert_eq!(
            e.seamless_splice,
            Some(SeamlessSplice {
                splice_type: 5,
                dts_next_au: 0x1_0000_0001
            })
        );
        assert_eq!(e.af_descriptors, Some(&[0x80, 0x01, 0x99][..]));
        // not-present flag set: no descriptors
        let a = AdaptationField::parse(&[0x01, 0x02, 0x1F, 0x00]).unwrap();
        assert_eq!(a.extension.unwrap().af_descriptors, None);
    }

    #[test]
    fn malformed_adaptation_fields() {
        assert_eq!(
            AdaptationField::parse(&[0x10, 0, 0]),
            Err(TsError::AdaptationFieldOverrun)
        );
        assert_eq!(
            AdaptationField::parse(&[0x02, 5, 1]),
            Err(TsError::AdaptationFieldOverrun)
        );
        assert_eq!(
            AdaptationField::parse(&[0x01, 9, 0, 0]),
            Err(TsError::BadExtensionLength(9))
        );
        assert_eq!(
            AdaptationField::parse(&[0x01, 2, 0x80, 0]),
            Err(TsError::AdaptationFieldOverrun)
        );
        assert_eq!(AdaptationField::parse(&[]).unwrap().length, 0);
        let mut p = [0xFFu8; PACKET_SIZE];
        p[..5].copy_from_slice(&[0x47, 0x00, 0x10, 0x30, 183]);
        assert_eq!(
            PacketView::parse(&p),
            Err(TsError::BadAdaptationFieldLength(183))
        );
        p[3] = 0x20;
        let v = PacketView::parse(&p).unwrap();
        assert!(v.payload.is_empty());
        assert_eq!(v.adaptation_field_bytes.unwrap().len(), 183);
        p[3] = 0x00;
        assert_eq!(
            PacketView::parse(&p),
            Err(TsError::ReservedAdaptationFieldControl)
        );
        assert_eq!(PacketView::parse(&p[..100]), Err(TsError::Truncated));
    }

    #[test]
    fn pes_headers() {
        let mut pes = vec![0, 0, 1, 0xC0, 0x01, 0x00, 0x80, 0x80, 0x05];
        pes.extend_from_slice(&encode_timestamp(0b0010, 0x1_FFFF_FFFF));
        let h = PesHeader::parse(&pes).unwrap();
        assert_eq!(
            (h.pts, h.dts, h.packet_length, h.payload_offset),
            (Some(0x1_FFFF_FFFF), None, 256, 14)
        );
        assert_eq!(
            encode_timestamp(0b0010, 0x1_FFFF_FFFF),
            [0x2F, 0xFF, 0xFF, 0xFF, 0xFF]
        );
        assert_eq!(encode_timestamp(0b0010, 0), [0x21, 0x00, 0x01, 0x00, 0x01]);
        // padding stream: no optional header
        let h = PesHeader::parse(&[0, 0, 1, 0xBE, 0, 4, 0xFF]).unwrap();
        assert_eq!((h.pts, h.payload_offset), (None, 6));
        // no PTS
        let h = PesHeader::parse(&[0, 0, 1, 0xE0, 0, 0, 0x80, 0x00, 0x00]).unwrap();
        assert_eq!(h.pts, None);
        assert_eq!(PesHeader::parse(&[0, 0, 2, 0xE0]), Err(TsError::NotPes));
        assert_eq!(
            PesHeader::parse(&[0, 0, 1, 0xE0, 0, 0, 0x80, 0x80, 0x05, 0x21]),
            Err(TsError::Truncated)
        );
        assert_eq!(
            PesHeader::parse(&[0, 0, 1, 0xE0, 0, 0, 0x80, 0x80, 0x02]),
            Err(TsError::BadPesHeader)
        );
        assert_eq!(
            PesHeader::parse(&[0, 0, 1, 0xE0, 0, 0, 0x40, 0x00, 0x00]),
            Err(TsError::BadPesHeader)
        );
    }

    fn null_packet(cc: u8) -> [u8; PACKET_SIZE] {
        let mut p = [0xFFu8; PACKET_SIZE];
        p[..4].copy_from_slice(&[0x47, 0x00, 0x20, 0x10 | cc]);
        p
    }

    #[test]
    fn reader_splits_and_resyncs() {
        let mut input = vec![0x00, 0x47, 0x12]; // leading garbage, with a false sync byte
        for i in 0..4 {
            input.extend_from_slice(&null_packet(i));
        }
        input.extend_from_slice(&[0x12, 0x47, 0x00, 0x47, 0x47]); // garbage with false syncs
        for i in 4..8 {
            input.extend_from_slice(&null_packet(i));
        }
        let mut r = TsReader::new();
        let mut got = Vec::new();
        let mut errors = 0;
        // feed in odd-sized chunks
        for chunk in input.chunks(77) {
            r.push(chunk);
            loop {
                match r.next() {
                    Ok(Some(p)) => got.push(p),
                    Ok(None) => break,
                    Err(TsError::LostSync { offset }) => {
                        assert_eq!(offset, 3 + 4 * 188);
                        errors += 1;
                    }
                    Err(e) => panic!("{e}"),
                }
            }
        }
        r.finish();
        while let Ok(Some(p)) = r.next() {
            got.push(p);
        }
        assert_eq!(errors, 1);
        assert_eq!(got.len(), 8);
        for (i, p) in got.iter().enumerate() {
            assert_eq!(p.index, i as u64);
            assert_eq!(p.data[3] & 0x0F, i as u8);
        }
        assert_eq!(got[0].offset, 3);
        assert_eq!(got[4].offset, 3 + 4 * 188 + 5);
        let s = r.stats();
        assert_eq!((s.packets, s.sync_losses, s.bytes_skipped), (8, 1, 8));
    }

    #[test]
    fn reader_needs_finish_for_short_input() {
        let mut r = TsReader::new();
        r.push(&null_packet(0));
        assert_eq!(r.next(), Ok(None));
        r.finish();
        assert!(r.next().unwrap().is_some());
        assert_eq!(r.next(), Ok(None));
        // random garbage never panics and yields nothing
        let mut r = TsReader::new();
        let junk: Vec<u8> = (0..5000u32)
            .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
            .collect();
        r.push(&junk);
        r.finish();
        let mut n = 0;
        while let Ok(Some(_)) | Err(_) = r.next() {
            n += 1;
            assert!(n < 100);
        }
    }

    #[test]
    fn continuity_counter() {
        let mut c = ContinuityChecker::new();
        let h = |cc: u8, afc: u8| TsHeader {
            tei: false,
            pusi: false,
            priority: false,
            pid: 0x100,
            scrambling: 0,
            afc,
            cc,
        };
        assert_eq!(c.check(&h(14, 1), false), CcStatus::First);
        assert_eq!(c.check(&h(15, 1), false), CcStatus::Ok);
        assert_eq!(c.check(&h(15, 1), false), CcStatus::Duplicate);
        assert_eq!(
            c.check(&h(15, 1), false),
            CcStatus::Discontinuity {
                expected: 0,
                found: 15
            }
        );
        assert_eq!(c.check(&h(0, 1), false), CcStatus::Ok);
        assert_eq!(c.check(&h(0, 2), false), CcStatus::NoPayload); // AF only: no increment
        assert_eq!(c.check(&h(1, 3), false), CcStatus::Ok);
        assert_eq!(
            c.check(&h(5, 3), false),
            CcStatus::Discontinuity {
                expected: 2,
                found: 5
            }
        );
        assert_eq!(c.check(&h(9, 3), true), CcStatus::Signalled);
        assert_eq!(c.check(&h(10, 1), false), CcStatus::Ok);
        assert_eq!(c.errors(), 2);
        let mut n = h(3, 1);
        n.pid = PID_NULL;
        assert_eq!(c.check(&n, false), CcStatus::Ignored);
    }

    #[test]
    fn cursor_bounds() {
        let mut c = ByteCursor::new(&[1, 2, 3]);
        assert_eq!(c.u16(), Some(0x0102));
        assert_eq!(c.u16(), None);
        assert_eq!(c.u8(), Some(3));
        assert_eq!(c.u8(), None);
        assert_eq!(c.skip(usize::MAX), None);
        assert_eq!(c.be(9), None);
    }
}
