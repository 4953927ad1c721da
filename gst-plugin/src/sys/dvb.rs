//! Linux DVB frontend ioctls (`linux/dvb/frontend.h`): `FE_GET_INFO` and `FE_GET_PROPERTY`
//! with `DTV_ENUM_DELSYS`, the two questions [`crate::tuners`] asks a frontend it discovers.
//!
//! The kernel structures are handled as byte buffers laid out as the header declares them; the
//! answers are parsed from those bytes by [`parse_frontend_info`] and [`parse_enum_delsys`],
//! which the tests feed fixed byte vectors. Request numbers follow `asm-generic/ioctl.h`
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
    }
}
