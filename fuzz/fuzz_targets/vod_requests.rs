//! Fuzz target over what a files-on-demand request brings: the `/vod/<path>` rules against a
//! real library folder (nothing outside the root, no hidden or non-regular file is ever
//! resolved), the HTTP `Range` header, and the RTSP `Range: npt=`, `Scale` and path helpers of
//! the VOD server.
//!
//! Input: byte 0 picks the parser; the rest is the header value or the path.

#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;

use dvb2ip::vod::http::{parse_range, RangeAnswer};
use dvb2ip::vod::path::resolve;
use dvb2ip::vod::rtsp_npt;

/// A library root with files, a sub-folder, a hidden file and a symlink leading out of it, and
/// a secret beside the root.
fn library() -> &'static (PathBuf, PathBuf) {
    static LIB: OnceLock<(PathBuf, PathBuf)> = OnceLock::new();
    LIB.get_or_init(|| {
        let base = std::env::temp_dir().join(format!("dvb2ip-fuzz-vod-{}", std::process::id()));
        let root = base.join("root");
        std::fs::create_dir_all(root.join("films/sub")).unwrap();
        std::fs::write(root.join("a.ts"), b"ts").unwrap();
        std::fs::write(root.join("films/b c.mp4"), b"mp4").unwrap();
        std::fs::write(root.join("films/sub/%2e.mjpeg"), b"m").unwrap();
        std::fs::write(root.join(".hidden.ts"), b"h").unwrap();
        std::fs::write(base.join("secret"), b"s").unwrap();
        let _ = std::os::unix::fs::symlink(base.join("secret"), root.join("out"));
        let _ = std::os::unix::fs::symlink("/etc", root.join("etc"));
        (root.canonicalize().unwrap(), base.join("secret"))
    })
}

fuzz_target!(|input: &[u8]| {
    let Some((&which, data)) = input.split_first() else {
        return;
    };
    let text = String::from_utf8_lossy(data);
    match which % 4 {
        0 => {
            let (root, secret) = library();
            if let Ok(r) = resolve(std::slice::from_ref(root), &text) {
                assert!(r.file.starts_with(root), "{text:?} -> {:?}", r.file);
                assert_ne!(&r.file, secret);
                assert!(r.file.is_file());
                assert!(!r.relative.split('/').any(|s| s.starts_with('.')));
            }
        }
        1 => {
            let size = u64::from(which) * 1000;
            match parse_range(Some(&text), size) {
                RangeAnswer::Partial { start, end } => assert!(start <= end && end < size),
                RangeAnswer::Full | RangeAnswer::Unsatisfiable => {}
            }
        }
        2 => {
            let _ = rtsp_npt::parse_range(&text);
            if let Ok(s) = rtsp_npt::parse_scale(&text) {
                let _ = rtsp_npt::applied_scale(s, true);
                let _ = rtsp_npt::applied_scale(s, false);
            }
        }
        _ => {
            let _ = rtsp_npt::split_vod_path(&text);
            let _ = rtsp_npt::mount_path(&text);
            let _ = rtsp_npt::sanitize_path(&text);
            let _ = rtsp_npt::is_random_access(data, which & 4 != 0);
        }
    }
});
