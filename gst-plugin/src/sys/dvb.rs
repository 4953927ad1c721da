//! Linux DVB frontend ioctls (`linux/dvb/frontend.h`): `FE_GET_INFO` and `FE_GET_PROPERTY`
//! with `DTV_ENUM_DELSYS`, the two questions [`crate::tuners`] asks a frontend it discovers,
//! and `FE_GET_PROPERTY` with the DVBv5 statistics (`DTV_STAT_*`), which it asks a frontend
//! while it runs.
//!
//! The kernel structures are handled as byte buffers laid out as the header declares them; the
//! answers are parsed from those bytes by [`parse_frontend_info`], [`parse_enum_delsys`] and
//! [`parse_stat`], which the tests feed fixed byte vectors. Request numbers follow `asm-generic/ioctl.h`
//! (`_IOR`: direction read in bits 30–31, size in bits 16–29, type in 8–15, number in 0–7),
//! the encoding of x86, ARM and most other architectures (not Alpha, MIPS, PowerPC or SPARC).

use std::io;
use std::mem::size_of;
use std::os::fd::{AsRawFd, BorrowedFd};

/// `_IOR(ty, nr, size)` of `asm-generic/ioctl.h`.
pub const fn ior(ty: u8, nr: u8, size: usize) -> libc::c_ulong {
    const IOC_READ: libc::c_ulong = 2;
    (IOC_READ << 30)
        | ((size as libc::c_ulong & 0x3fff) << 16)
        | ((ty as libc::c_ulong) << 8)
        | nr as libc::c_ulong
}

/// `sizeof(struct dvb_frontend_info)`: `char name[128]`, then `enum fe_type type` and nine
/// more 32-bit fields (`frequency_min` … `notifier_delay`, `enum fe_caps caps`).
pub const FRONTEND_INFO_LEN: usize = 168;

/// `DTV_ENUM_DELSYS`: the delivery systems a frontend supports.
pub const DTV_ENUM_DELSYS: u32 = 44;

/// `sizeof(union { __u32 data; struct dtv_fe_stats st; struct { __u8 data[32]; __u32 len;
/// __u32 reserved1[3]; void *reserved2; } buffer; } u)` of `struct dtv_property`: the buffer
/// member (48 bytes and a pointer) is the largest (`dtv_fe_stats` is 37 bytes).
const DTV_PROPERTY_UNION_LEN: usize = 48 + size_of::<*mut libc::c_void>();

/// `sizeof(struct dtv_property)` (`__attribute__((packed))`): `cmd`, `reserved[3]`, the union,
/// `int result`. 76 bytes with 64-bit pointers, 72 with 32-bit ones.
pub const DTV_PROPERTY_LEN: usize = 4 + 12 + DTV_PROPERTY_UNION_LEN + 4;

/// Offsets inside `struct dtv_property`.
const PROP_UNION: usize = 16;
/// `u.st.stat[0]` (`u.st.len` is the union's first byte).
const PROP_STAT: usize = PROP_UNION + 1;
const PROP_BUFFER_LEN: usize = PROP_UNION + 32;
const PROP_RESULT: usize = PROP_UNION + DTV_PROPERTY_UNION_LEN;

/// `struct dtv_properties { __u32 num; struct dtv_property *props; }` (natural alignment).
#[repr(C)]
struct DtvProperties {
    num: u32,
    props: *mut u8,
}

/// `sizeof(struct dtv_properties)`: 16 bytes with 64-bit pointers, 8 with 32-bit ones.
pub const DTV_PROPERTIES_LEN: usize = size_of::<DtvProperties>();

/// `FE_GET_INFO`: `_IOR('o', 61, struct dvb_frontend_info)`.
pub const FE_GET_INFO: libc::c_ulong = ior(b'o', 61, FRONTEND_INFO_LEN);

/// `FE_GET_PROPERTY`: `_IOR('o', 83, struct dtv_properties)`. The size field is the size of
/// `struct dtv_properties`, which holds a pointer: computed from `size_of` so that the number
/// is right for the target (`0x80106f53` on 64-bit, `0x80086f53` on 32-bit) instead of the
/// 64-bit value written down once.
pub const FE_GET_PROPERTY: libc::c_ulong = ior(b'o', 83, DTV_PROPERTIES_LEN);

/// What `FE_GET_INFO` tells about a frontend (the deprecated `type` and `notifier_delay`
/// fields are left out).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrontendInfo {
    /// `name`, up to its first NUL (lossy UTF-8).
    pub name: String,
    pub frequency_min: u32,
    pub frequency_max: u32,
    pub frequency_stepsize: u32,
    pub frequency_tolerance: u32,
    pub symbol_rate_min: u32,
    pub symbol_rate_max: u32,
    pub symbol_rate_tolerance: u32,
    /// `enum fe_caps` bits.
    pub caps: u32,
}

/// Parses a `struct dvb_frontend_info` as the kernel wrote it (native byte order).
pub fn parse_frontend_info(b: &[u8; FRONTEND_INFO_LEN]) -> FrontendInfo {
    let end = b[..128].iter().position(|&c| c == 0).unwrap_or(128);
    let u32_at = |i: usize| u32::from_ne_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
    FrontendInfo {
        name: String::from_utf8_lossy(&b[..end]).into_owned(),
        frequency_min: u32_at(132),
        frequency_max: u32_at(136),
        frequency_stepsize: u32_at(140),
        frequency_tolerance: u32_at(144),
        symbol_rate_min: u32_at(148),
        symbol_rate_max: u32_at(152),
        symbol_rate_tolerance: u32_at(156),
        caps: u32_at(164),
    }
}

/// `DTV_STAT_*`: the DVBv5 statistics, each answered as a `struct dtv_fe_stats`.
pub const DTV_STAT_SIGNAL_STRENGTH: u32 = 62;
pub const DTV_STAT_CNR: u32 = 63;
pub const DTV_STAT_PRE_ERROR_BIT_COUNT: u32 = 64;
pub const DTV_STAT_PRE_TOTAL_BIT_COUNT: u32 = 65;
pub const DTV_STAT_POST_ERROR_BIT_COUNT: u32 = 66;
pub const DTV_STAT_POST_TOTAL_BIT_COUNT: u32 = 67;
pub const DTV_STAT_ERROR_BLOCK_COUNT: u32 = 68;
pub const DTV_STAT_TOTAL_BLOCK_COUNT: u32 = 69;

/// `enum fecap_scale_params`.
pub const FE_SCALE_NOT_AVAILABLE: u8 = 0;
pub const FE_SCALE_DECIBEL: u8 = 1;
pub const FE_SCALE_RELATIVE: u8 = 2;
pub const FE_SCALE_COUNTER: u8 = 3;

/// `MAX_DTV_STATS`: entries of `struct dtv_fe_stats`'s `stat` array.
pub const MAX_DTV_STATS: usize = 4;

/// `sizeof(struct dtv_stats)` (packed): `__u8 scale`, then a 64-bit `uvalue`/`svalue` union.
pub const DTV_STATS_LEN: usize = 9;

// `struct dtv_fe_stats` (`u.st`) ends before `result`, whatever the pointer width.
const _: () = assert!(PROP_STAT + MAX_DTV_STATS * DTV_STATS_LEN <= PROP_RESULT);

/// One `struct dtv_stats` reading, by its scale.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Stat {
    /// `FE_SCALE_NOT_AVAILABLE`, an unknown scale, or no entry (`u.st.len` 0: the driver does
    /// not give this statistic).
    #[default]
    NotAvailable,
    /// `FE_SCALE_DECIBEL`: `svalue` in 0.001 dB (0.001 dBm for the signal strength).
    Decibel(i64),
    /// `FE_SCALE_RELATIVE`: `uvalue`, 0 = 0 % … 65535 = 100 %.
    Relative(u64),
    /// `FE_SCALE_COUNTER`: `uvalue`, a count of events since the driver last reset it.
    Counter(u64),
}

impl Stat {
    /// The figure in dB (or dBm) of a `FE_SCALE_DECIBEL` reading.
    pub fn decibels(self) -> Option<f64> {
        match self {
            Stat::Decibel(v) => Some(v as f64 / 1000.0),
            _ => None,
        }
    }

    /// The percentage (0–100, rounded) of a `FE_SCALE_RELATIVE` reading; a value beyond 65535
    /// reads as 100 %.
    pub fn percent(self) -> Option<u32> {
        match self {
            Stat::Relative(v) => Some(((v.min(0xFFFF) * 100 + 0x7FFF) / 0xFFFF) as u32),
            _ => None,
        }
    }

    /// The count of a `FE_SCALE_COUNTER` reading.
    pub fn count(self) -> Option<u64> {
        match self {
            Stat::Counter(v) => Some(v),
            _ => None,
        }
    }
}

/// The DVBv5 statistics [`frontend_stats`] asks for, in this order.
pub const STATS_ASKED: [u32; 8] = [
    DTV_STAT_SIGNAL_STRENGTH,
    DTV_STAT_CNR,
    DTV_STAT_PRE_ERROR_BIT_COUNT,
    DTV_STAT_PRE_TOTAL_BIT_COUNT,
    DTV_STAT_POST_ERROR_BIT_COUNT,
    DTV_STAT_POST_TOTAL_BIT_COUNT,
    DTV_STAT_ERROR_BLOCK_COUNT,
    DTV_STAT_TOTAL_BLOCK_COUNT,
];

/// A frontend's DVBv5 statistics: the global figure (`stat[0]`) of each; the others are per
/// layer (ISDB-T) and not read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FrontendStatsV5 {
    /// Signal strength: dBm ([`Stat::Decibel`]) or relative.
    pub signal: Stat,
    /// Carrier-to-noise ratio: dB or relative.
    pub cnr: Stat,
    /// Bit errors and bits before the inner (Viterbi/LDPC) decoder, counters.
    pub pre_error_bits: Stat,
    pub pre_total_bits: Stat,
    /// Bit errors and bits after it, counters.
    pub post_error_bits: Stat,
    pub post_total_bits: Stat,
    /// Blocks the outer decoder could not correct, and blocks received, counters.
    pub error_blocks: Stat,
    pub total_blocks: Stat,
}

impl FrontendStatsV5 {
    /// Reads the answers of a `FE_GET_PROPERTY` asked with [`stats_request`]`(&STATS_ASKED)`;
    /// `None` if `props` is not that many properties.
    pub fn from_properties(props: &[u8]) -> Option<Self> {
        if props.len() != STATS_ASKED.len() * DTV_PROPERTY_LEN {
            return None;
        }
        let mut s = [Stat::NotAvailable; STATS_ASKED.len()];
        for (i, p) in props.chunks_exact(DTV_PROPERTY_LEN).enumerate() {
            let p: &[u8; DTV_PROPERTY_LEN] = p.try_into().ok()?;
            // A property answered for another command than asked is no answer.
            s[i] = parse_stat(p)
                .filter(|(cmd, _)| *cmd == STATS_ASKED[i])
                .map(|(_, st)| st)
                .unwrap_or_default();
        }
        let [signal, cnr, pre_error_bits, pre_total_bits, post_error_bits, post_total_bits, error_blocks, total_blocks] =
            s;
        Some(Self {
            signal,
            cnr,
            pre_error_bits,
            pre_total_bits,
            post_error_bits,
            post_total_bits,
            error_blocks,
            total_blocks,
        })
    }
}

/// The `struct dtv_property` array that asks for the statistics `cmds`: each `cmd` set,
/// everything else 0, packed one after the other.
pub fn stats_request(cmds: &[u32]) -> Vec<u8> {
    let mut v = vec![0u8; cmds.len() * DTV_PROPERTY_LEN];
    for (p, cmd) in v.chunks_exact_mut(DTV_PROPERTY_LEN).zip(cmds) {
        p[..4].copy_from_slice(&cmd.to_ne_bytes());
    }
    v
}

/// The command and global reading (`u.st.stat[0]`) of a statistics property the kernel
/// filled: [`Stat::NotAvailable`] when `u.st.len` is 0 or the scale is not one of
/// `enum fecap_scale_params`'s; `None` if the driver set a negative `result`.
pub fn parse_stat(p: &[u8; DTV_PROPERTY_LEN]) -> Option<(u32, Stat)> {
    let u32_at = |i: usize| u32::from_ne_bytes([p[i], p[i + 1], p[i + 2], p[i + 3]]);
    if (u32_at(PROP_RESULT) as i32) < 0 {
        return None;
    }
    let cmd = u32_at(0);
    let len = p[PROP_UNION] as usize;
    if len == 0 {
        return Some((cmd, Stat::NotAvailable));
    }
    let at = PROP_STAT;
    let mut value = [0u8; 8];
    value.copy_from_slice(&p[at + 1..at + DTV_STATS_LEN]);
    let u = u64::from_ne_bytes(value);
    let stat = match p[at] {
        FE_SCALE_DECIBEL => Stat::Decibel(u as i64),
        FE_SCALE_RELATIVE => Stat::Relative(u),
        FE_SCALE_COUNTER => Stat::Counter(u),
        _ => Stat::NotAvailable,
    };
    Some((cmd, stat))
}

/// The `struct dtv_property` that asks for `DTV_ENUM_DELSYS`: `cmd` set, everything else 0.
pub fn enum_delsys_request() -> [u8; DTV_PROPERTY_LEN] {
    let mut p = [0u8; DTV_PROPERTY_LEN];
    p[..4].copy_from_slice(&DTV_ENUM_DELSYS.to_ne_bytes());
    p
}

/// The delivery systems (`enum fe_delivery_system` values) in a `DTV_ENUM_DELSYS` answer:
/// `u.buffer.data[..u.buffer.len]` (a length beyond 32 is clamped). `None` if the property is
/// not a `DTV_ENUM_DELSYS` one or the driver set a negative `result`.
pub fn parse_enum_delsys(p: &[u8; DTV_PROPERTY_LEN]) -> Option<Vec<u32>> {
    let u32_at = |i: usize| u32::from_ne_bytes([p[i], p[i + 1], p[i + 2], p[i + 3]]);
    if u32_at(0) != DTV_ENUM_DELSYS || (u32_at(PROP_RESULT) as i32) < 0 {
        return None;
    }
    let len = (u32_at(PROP_BUFFER_LEN) as usize).min(32);
    Some(
        p[PROP_UNION..PROP_UNION + len]
            .iter()
            .map(|&d| u32::from(d))
            .collect(),
    )
}

/// `FE_GET_INFO` on an open frontend: its raw answer.
pub fn frontend_info_raw(fd: BorrowedFd<'_>) -> io::Result<[u8; FRONTEND_INFO_LEN]> {
    let mut info = [0u8; FRONTEND_INFO_LEN];
    // SAFETY: FE_GET_INFO writes one struct dvb_frontend_info (FRONTEND_INFO_LEN bytes, checked
    // by the request number's size field) into `info`, which is that long and lives across the
    // call; the fd is borrowed, so open.
    let r = unsafe { libc::ioctl(fd.as_raw_fd(), FE_GET_INFO, info.as_mut_ptr()) };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(info)
}

/// `FE_GET_INFO` on an open frontend, parsed.
pub fn frontend_info(fd: BorrowedFd<'_>) -> io::Result<FrontendInfo> {
    frontend_info_raw(fd).map(|b| parse_frontend_info(&b))
}

/// `FE_GET_PROPERTY` with one `DTV_ENUM_DELSYS` property: the raw property the kernel filled.
pub fn enum_delsys_raw(fd: BorrowedFd<'_>) -> io::Result<[u8; DTV_PROPERTY_LEN]> {
    let mut prop = enum_delsys_request();
    let mut props = DtvProperties {
        num: 1,
        props: prop.as_mut_ptr(),
    };
    // SAFETY: FE_GET_PROPERTY reads `props` (a struct dtv_properties, the size in the request
    // number) and through it `num` = 1 packed struct dtv_property of DTV_PROPERTY_LEN bytes,
    // which `prop` is; the kernel copies them in and out with copy_from/to_user (no alignment
    // needed beyond the natural one of `props`), and both buffers live across the call.
    let r = unsafe { libc::ioctl(fd.as_raw_fd(), FE_GET_PROPERTY, &mut props) };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(prop)
}

/// `FE_GET_PROPERTY` with one property per command of `cmds` (statistics): the raw
/// properties the kernel filled.
pub fn stats_raw(fd: BorrowedFd<'_>, cmds: &[u32]) -> io::Result<Vec<u8>> {
    let mut buf = stats_request(cmds);
    let mut props = DtvProperties {
        num: cmds.len() as u32,
        props: buf.as_mut_ptr(),
    };
    // SAFETY: as in `enum_delsys_raw`: the kernel reads `props` and through it `num` packed
    // struct dtv_property of DTV_PROPERTY_LEN bytes each, which `buf` holds one after the other
    // (num * DTV_PROPERTY_LEN bytes), and writes them back; both live across the call.
    let r = unsafe { libc::ioctl(fd.as_raw_fd(), FE_GET_PROPERTY, &mut props) };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(buf)
}

/// The DVBv5 statistics of an open frontend (a read-only open is enough: `FE_GET_PROPERTY` is
/// a read request).
pub fn frontend_stats(fd: BorrowedFd<'_>) -> io::Result<FrontendStatsV5> {
    let raw = stats_raw(fd, &STATS_ASKED)?;
    FrontendStatsV5::from_properties(&raw)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "DTV_STAT_* answer"))
}

/// The delivery systems of an open frontend (`enum fe_delivery_system` values).
pub fn enum_delsys(fd: BorrowedFd<'_>) -> io::Result<Vec<u32>> {
    let raw = enum_delsys_raw(fd)?;
    parse_enum_delsys(&raw)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "DTV_ENUM_DELSYS refused"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_numbers_follow_ior() {
        // _IOR('o', 61, 168 bytes): read (2 << 30) | 168 << 16 | 'o' << 8 | 61.
        assert_eq!(FE_GET_INFO, 0x80a8_6f3d);
        assert_eq!(ior(b'o', 83, 16), 0x8010_6f53);
        assert_eq!(ior(b'o', 83, 8), 0x8008_6f53);
        // FE_READ_STATUS = _IOR('o', 69, fe_status_t): a 4-byte enum.
        assert_eq!(ior(b'o', 69, 4), 0x8004_6f45);
        #[cfg(target_pointer_width = "64")]
        {
            assert_eq!(FE_GET_PROPERTY, 0x8010_6f53);
            assert_eq!((DTV_PROPERTY_LEN, DTV_PROPERTIES_LEN), (76, 16));
        }
        #[cfg(target_pointer_width = "32")]
        {
            assert_eq!(FE_GET_PROPERTY, 0x8008_6f53);
            assert_eq!((DTV_PROPERTY_LEN, DTV_PROPERTIES_LEN), (72, 8));
        }
    }

    /// A dvb_frontend_info as a Si2168 DVB-T/T2/C demodulator reports it (x86-64, little
    /// endian): name, type FE_OFDM (2), 42–870 MHz in 62.5 kHz steps, caps 0x5eb0ffbf … laid
    /// out byte by byte as in the header.
    #[test]
    #[cfg(target_endian = "little")]
    fn frontend_info_is_parsed_from_the_kernel_layout() {
        let mut b = [0u8; FRONTEND_INFO_LEN];
        b[..19].copy_from_slice(b"Silicon Labs Si2168");
        // Bytes after the NUL are not part of the name.
        b[20..24].copy_from_slice(b"junk");
        let words: [(usize, [u8; 4]); 10] = [
            (128, [2, 0, 0, 0]),             // type: FE_OFDM
            (132, [0x80, 0xde, 0x80, 0x02]), // frequency_min 42 000 000
            (136, [0x80, 0x25, 0xdb, 0x33]), // frequency_max 870 000 000
            (140, [0x24, 0xf4, 0x00, 0x00]), // frequency_stepsize 62 500
            (144, [0, 0, 0, 0]),             // frequency_tolerance
            (148, [0x10, 0x27, 0x00, 0x00]), // symbol_rate_min 10 000
            (152, [0x40, 0x42, 0x0f, 0x00]), // symbol_rate_max 1 000 000
            (156, [0x01, 0x00, 0x00, 0x00]), // symbol_rate_tolerance
            (160, [0, 0, 0, 0]),             // notifier_delay
            (164, [0xbf, 0xff, 0xb0, 0x5e]), // caps
        ];
        for (at, w) in words {
            b[at..at + 4].copy_from_slice(&w);
        }
        let i = parse_frontend_info(&b);
        assert_eq!(
            i,
            FrontendInfo {
                name: "Silicon Labs Si2168".into(),
                frequency_min: 42_000_000,
                frequency_max: 870_000_000,
                frequency_stepsize: 62_500,
                frequency_tolerance: 0,
                symbol_rate_min: 10_000,
                symbol_rate_max: 1_000_000,
                symbol_rate_tolerance: 1,
                caps: 0x5eb0_ffbf,
            }
        );
        assert_ne!(i.caps & 0x1000_0000, 0, "FE_CAN_2G_MODULATION");
        // A name filling all 128 bytes has no NUL: all of it is the name.
        let full = [b'A'; FRONTEND_INFO_LEN];
        assert_eq!(parse_frontend_info(&full).name.len(), 128);
    }

    /// The DTV_ENUM_DELSYS request and a driver's answer, byte by byte (x86-64: the union is
    /// 56 bytes, `result` at offset 72).
    #[test]
    #[cfg(all(target_endian = "little", target_pointer_width = "64"))]
    fn enum_delsys_request_and_answer_use_the_kernel_layout() {
        let mut want = [0u8; 76];
        want[0] = 44; // cmd = DTV_ENUM_DELSYS
        assert_eq!(enum_delsys_request(), want);

        // A DVB-S/S2/DSS frontend: u.buffer.data = {5, 6, 4}, u.buffer.len = 3, result 0.
        let mut answer = want;
        answer[16..19].copy_from_slice(&[5, 6, 4]);
        answer[48..52].copy_from_slice(&[3, 0, 0, 0]);
        assert_eq!(parse_enum_delsys(&answer), Some(vec![5, 6, 4]));

        // A DVB-T/T2/C-A frontend (the Si2168 above).
        let mut answer = want;
        answer[16..19].copy_from_slice(&[3, 16, 1]);
        answer[48] = 3;
        assert_eq!(parse_enum_delsys(&answer), Some(vec![3, 16, 1]));

        // Garbage after `len` is ignored; a length beyond 32 is clamped.
        answer[19] = 99;
        assert_eq!(parse_enum_delsys(&answer), Some(vec![3, 16, 1]));
        answer[48..52].copy_from_slice(&1000u32.to_le_bytes());
        assert_eq!(parse_enum_delsys(&answer).map(|v| v.len()), Some(32));

        // A negative result (-EINVAL) or another cmd is no answer.
        let mut refused = want;
        refused[72..76].copy_from_slice(&(-22i32).to_le_bytes());
        assert_eq!(parse_enum_delsys(&refused), None);
        let mut other = want;
        other[0] = 17;
        assert_eq!(parse_enum_delsys(&other), None);
    }

    #[test]
    fn ioctls_on_a_non_frontend_fail_cleanly() {
        let f = std::fs::File::open("/dev/null").expect("/dev/null");
        use std::os::fd::AsFd;
        assert!(frontend_info(f.as_fd()).is_err());
        assert!(enum_delsys(f.as_fd()).is_err());
        assert!(frontend_stats(f.as_fd()).is_err());
    }

    /// The constants as `linux/dvb/frontend.h` defines them.
    #[test]
    fn stat_constants_are_the_headers() {
        assert_eq!(
            STATS_ASKED,
            [62, 63, 64, 65, 66, 67, 68, 69],
            "DTV_STAT_SIGNAL_STRENGTH … DTV_STAT_TOTAL_BLOCK_COUNT"
        );
        assert_eq!(
            (
                FE_SCALE_NOT_AVAILABLE,
                FE_SCALE_DECIBEL,
                FE_SCALE_RELATIVE,
                FE_SCALE_COUNTER
            ),
            (0, 1, 2, 3)
        );
        // struct dtv_fe_stats { __u8 len; struct dtv_stats stat[4]; } __packed: 37 bytes, which
        // fits the 56-byte union of struct dtv_property on 64-bit targets.
        assert_eq!(1 + MAX_DTV_STATS * DTV_STATS_LEN, 37);
    }

    /// A statistics request and a driver's answers, byte by byte as x86-64 lays out the packed
    /// struct dtv_property (offsetof: u.st.len 16, u.st.stat[0].scale 17, .uvalue 18,
    /// u.st.stat[1].scale 26, result 72; sizeof 76: checked against the header with gcc).
    #[test]
    #[cfg(all(target_endian = "little", target_pointer_width = "64"))]
    fn stats_request_and_answers_use_the_kernel_layout() {
        let req = stats_request(&STATS_ASKED);
        assert_eq!(req.len(), 8 * 76);
        for (i, p) in req.chunks_exact(76).enumerate() {
            let mut want = [0u8; 76];
            want[0] = 62 + i as u8;
            assert_eq!(p, want, "property {i}");
        }

        let fill = |p: &mut [u8], len: u8, entries: &[(u8, u64)]| {
            p[16] = len;
            for (k, (scale, v)) in entries.iter().enumerate() {
                p[17 + 9 * k] = *scale;
                p[18 + 9 * k..26 + 9 * k].copy_from_slice(&v.to_le_bytes());
            }
        };
        let mut ans = req.clone();
        let props: Vec<&mut [u8]> = ans.chunks_exact_mut(76).collect();
        let [sig, cnr, pre_e, pre_t, post_e, post_t, blk_e, blk_t] =
            <[_; 8]>::try_from(props).unwrap_or_else(|_| panic!("8 properties"));
        // Signal -45.250 dBm (svalue -45250), with a per-layer entry that is not read.
        fill(
            sig,
            2,
            &[(1, (-45_250i64) as u64), (1, (-60_000i64) as u64)],
        );
        // CNR 27.500 dB.
        fill(cnr, 1, &[(1, 27_500)]);
        fill(pre_e, 1, &[(3, 12)]);
        fill(pre_t, 1, &[(3, 1_000_000)]);
        // Post-FEC counts not available (scale 0, len 1).
        fill(post_e, 1, &[(0, 0)]);
        // Not given at all (len 0), with garbage after len.
        fill(post_t, 0, &[(3, 99)]);
        fill(blk_e, 1, &[(3, 2)]);
        // An unknown scale reads as not available.
        fill(blk_t, 1, &[(7, 5)]);
        let s = FrontendStatsV5::from_properties(&ans).expect("8 properties");
        assert_eq!(s.signal, Stat::Decibel(-45_250));
        assert_eq!(s.signal.decibels(), Some(-45.25));
        assert_eq!(s.signal.percent(), None);
        assert_eq!(s.cnr.decibels(), Some(27.5));
        assert_eq!(
            (s.pre_error_bits.count(), s.pre_total_bits.count()),
            (Some(12), Some(1_000_000))
        );
        assert_eq!(
            (s.post_error_bits, s.post_total_bits),
            (Stat::NotAvailable, Stat::NotAvailable)
        );
        assert_eq!(
            (s.error_blocks, s.total_blocks),
            (Stat::Counter(2), Stat::NotAvailable)
        );

        // A negative result for one property leaves only that one unknown.
        ans[76 + 72..76 + 76].copy_from_slice(&(-95i32).to_le_bytes());
        let s = FrontendStatsV5::from_properties(&ans).unwrap();
        assert_eq!(
            (s.signal.decibels(), s.cnr),
            (Some(-45.25), Stat::NotAvailable)
        );
        // An answer for another command than asked is no answer; a short buffer is none.
        ans[0] = 17;
        assert_eq!(
            FrontendStatsV5::from_properties(&ans).unwrap().signal,
            Stat::NotAvailable
        );
        assert_eq!(FrontendStatsV5::from_properties(&ans[..76]), None);
    }

    #[test]
    fn stat_scales_convert() {
        assert_eq!(Stat::Relative(0).percent(), Some(0));
        assert_eq!(Stat::Relative(0x8000).percent(), Some(50));
        assert_eq!(Stat::Relative(0xFFFF).percent(), Some(100));
        assert_eq!(Stat::Relative(u64::MAX).percent(), Some(100));
        assert_eq!(Stat::Relative(0xFFFF).decibels(), None);
        assert_eq!(Stat::Decibel(-1).decibels(), Some(-0.001));
        assert_eq!(Stat::Decibel(12_345).decibels(), Some(12.345));
        assert_eq!(Stat::Counter(7).count(), Some(7));
        assert_eq!(Stat::Counter(7).percent(), None);
        assert_eq!(Stat::NotAvailable.decibels(), None);
        assert_eq!(Stat::NotAvailable.count(), None);
    }
}
