//! The path rules of files on demand: `/vod/<path>` → a regular file under one of the roots.
//!
//! One function, [`resolve`], used by every front end (HTTP and RTSP), so the rules cannot drift
//! apart. `<path>` arrives still percent-encoded. It is split on `/` first and each segment is
//! decoded once, so an encoded `%2f` can never become a separator and a double-encoded `%252e`
//! stays the literal name `%2e`. Refused, all with the one answer [`VodPathError::NotFound`]:
//!
//! - a missing file, a directory, or anything that is not a regular file (FIFO, device, socket);
//! - an empty path, empty segments (`a//b`, a leading `/`, i.e. absolute paths), `.` and `..`,
//!   encoded or not, and every other segment starting with `.` (hidden files, which is also
//!   where recordings in progress live);
//! - NUL bytes, backslashes, `/` inside a decoded segment, invalid `%` escapes, non-UTF-8 names;
//! - a path whose canonical form (symlinks followed) leaves the root it was found under.
//!
//! The real reason goes to the log (category `dvb2ip-vod`, one line per refusal); the caller
//! answers exactly as for a missing file, so a client cannot probe what exists outside the roots.

use std::path::PathBuf;

use super::CAT;

/// A file found under a root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    /// Canonical path of the file (symlinks followed; inside `roots[root]`).
    pub file: PathBuf,
    /// The decoded path relative to the root, segments joined with `/` (as requested).
    pub relative: String,
    /// Index into the roots of the root it was found under.
    pub root: usize,
}

/// The one refusal: callers answer it like a missing file (HTTP 404, RTSP 404).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VodPathError {
    NotFound,
}

impl std::fmt::Display for VodPathError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("not found")
    }
}

impl std::error::Error for VodPathError {}

fn refuse(url_path: &str, why: &str) -> VodPathError {
    gst::info!(CAT, "vod: /vod/{url_path:?} refused: {why}");
    VodPathError::NotFound
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Percent-decodes one segment once; `None` for an invalid escape or non-UTF-8 result.
pub fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hi = hex(*b.get(i + 1)?)?;
            let lo = hex(*b.get(i + 2)?)?;
            out.push(hi << 4 | lo);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// Checks and decodes `url_path` into its segments, or says why not.
fn segments(url_path: &str) -> Result<Vec<String>, &'static str> {
    if url_path.is_empty() {
        return Err("empty path");
    }
    let mut out = Vec::new();
    for raw in url_path.split('/') {
        if raw.is_empty() {
            return Err("empty segment or absolute path");
        }
        let seg = percent_decode(raw).ok_or("invalid percent escape or not UTF-8")?;
        if seg.contains('\0') {
            return Err("NUL byte");
        }
        if seg.contains('/') {
            return Err("encoded '/' in a segment");
        }
        if seg.contains('\\') {
            return Err("backslash");
        }
        if seg == "." || seg == ".." {
            return Err("'.' or '..' segment");
        }
        if seg.starts_with('.') {
            return Err("hidden name (starts with '.')");
        }
        out.push(seg);
    }
    Ok(out)
}

/// Maps `url_path` (the still percent-encoded part after `/vod/`, without query) to a regular
/// file under one of `roots`, searched in order. Every refusal is [`VodPathError::NotFound`];
/// the reason is logged.
pub fn resolve(roots: &[PathBuf], url_path: &str) -> Result<Resolved, VodPathError> {
    let segs = segments(url_path).map_err(|why| refuse(url_path, why))?;
    let relative = segs.join("/");
    let mut why = "no such file under any root";
    for (i, root) in roots.iter().enumerate() {
        let Ok(root_canon) = root.canonicalize() else {
            gst::warning!(CAT, "vod: root {root:?} is unreachable");
            continue;
        };
        let mut candidate = root_canon.clone();
        candidate.extend(segs.iter());
        let Ok(file) = candidate.canonicalize() else {
            continue;
        };
        if !file.starts_with(&root_canon) {
            why = "symlink leaves the root";
            continue;
        }
        match std::fs::metadata(&file) {
            Ok(m) if m.is_file() => {
                return Ok(Resolved {
                    file,
                    relative,
                    root: i,
                })
            }
            Ok(m) if m.is_dir() => why = "a directory",
            Ok(_) => why = "not a regular file",
            Err(_) => {}
        }
    }
    Err(refuse(url_path, why))
}

/// Whether `name` (one file or folder name inside a root) is one [`resolve`] can reach, i.e.
/// what a library listing may show: not hidden, no backslash, valid UTF-8.
pub fn listable_name(name: &std::ffi::OsStr) -> bool {
    name.to_str()
        .is_some_and(|n| !n.is_empty() && !n.starts_with('.') && !n.contains('\\'))
}

/// `relative` percent-encoded for a URL path: every byte but unreserved characters and the `/`
/// separators is escaped, so `resolve(roots, &encode_path(r))` finds `r` again.
pub fn encode_path(relative: &str) -> String {
    let mut out = String::with_capacity(relative.len());
    for b in relative.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~/".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    /// Two roots and an outside folder in a fresh temporary directory.
    struct Tree {
        base: PathBuf,
        roots: Vec<PathBuf>,
    }

    impl Drop for Tree {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.base);
        }
    }

    fn tree(tag: &str) -> Tree {
        let base =
            std::env::temp_dir().join(format!("dvb2ip-vodpath-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        let a = base.join("a");
        let b = base.join("b");
        let out = base.join("outside");
        for d in [&a, &b, &out, &a.join("sub"), &a.join(".hidden")] {
            std::fs::create_dir_all(d).unwrap();
        }
        std::fs::write(a.join("x.ts"), b"x").unwrap();
        std::fs::write(a.join("sub/y.mp4"), b"y").unwrap();
        std::fs::write(a.join("with space ü.mkv"), b"s").unwrap();
        std::fs::write(a.join("%2e"), b"literal").unwrap();
        std::fs::write(a.join(".hidden/h.ts"), b"h").unwrap();
        std::fs::write(a.join(".part.ts"), b"p").unwrap();
        std::fs::write(b.join("z.mp3"), b"z").unwrap();
        std::fs::write(b.join("x.ts"), b"second").unwrap();
        std::fs::write(out.join("secret.ts"), b"secret").unwrap();
        symlink(out.join("secret.ts"), a.join("escape.ts")).unwrap();
        symlink(&out, a.join("outdir")).unwrap();
        symlink(a.join("x.ts"), a.join("inside-link.ts")).unwrap();
        symlink("/etc/passwd", a.join("passwd")).unwrap();
        Tree {
            base,
            roots: vec![a, b],
        }
    }

    #[test]
    fn finds_files_in_root_order() {
        let t = tree("find");
        let r = resolve(&t.roots, "x.ts").unwrap();
        assert_eq!(r.root, 0);
        assert_eq!(r.relative, "x.ts");
        assert_eq!(std::fs::read(&r.file).unwrap(), b"x");
        let r = resolve(&t.roots, "z.mp3").unwrap();
        assert_eq!((r.root, r.relative.as_str()), (1, "z.mp3"));
        let r = resolve(&t.roots, "sub/y.mp4").unwrap();
        assert_eq!(r.relative, "sub/y.mp4");
        let r = resolve(&t.roots, "with%20space%20%C3%BC.mkv").unwrap();
        assert_eq!(r.relative, "with space ü.mkv");
        assert_eq!(resolve(&t.roots, &encode_path(&r.relative)).unwrap(), r);
        // A symlink that stays inside the root is followed.
        let r = resolve(&t.roots, "inside-link.ts").unwrap();
        assert_eq!(std::fs::read(&r.file).unwrap(), b"x");
        // Decoded once: %252e is the literal name "%2e", which exists here.
        let r = resolve(&t.roots, "%252e").unwrap();
        assert_eq!(std::fs::read(&r.file).unwrap(), b"literal");
    }

    #[test]
    fn every_refusal_is_not_found() {
        let t = tree("refuse");
        for p in [
            "",
            "missing.ts",
            "sub",
            "sub/",
            "/etc/passwd",
            "%2fetc%2fpasswd",
            "%2Fetc/passwd",
            "//etc/passwd",
            "..",
            "../outside/secret.ts",
            "sub/../x.ts",
            "sub/../../outside/secret.ts",
            "%2e%2e/outside/secret.ts",
            "%2E%2E/outside/secret.ts",
            ".%2e/outside/secret.ts",
            "%2e./outside/secret.ts",
            "sub%2f..%2f..%2foutside%2fsecret.ts",
            "..%2foutside%2fsecret.ts",
            "%252e%252e/outside/secret.ts",
            "%25252e%25252e/outside/secret.ts",
            ".",
            "./x.ts",
            "%2e/x.ts",
            "x.ts%00",
            "x.ts%00.mp4",
            "x.ts\0",
            "..%5coutside%5csecret.ts",
            "..\\outside\\secret.ts",
            "sub\\y.mp4",
            "escape.ts",
            "outdir/secret.ts",
            "passwd",
            ".hidden/h.ts",
            ".part.ts",
            "x.ts%",
            "x.ts%2",
            "x.ts%zz",
            "%ff.ts",
            "%c0%ae%c0%ae/outside/secret.ts",
        ] {
            assert_eq!(
                resolve(&t.roots, p),
                Err(VodPathError::NotFound),
                "{p:?} must be refused"
            );
        }
        assert_eq!(resolve(&[], "x.ts"), Err(VodPathError::NotFound));
        assert_eq!(
            resolve(&[t.base.join("gone")], "x.ts"),
            Err(VodPathError::NotFound)
        );
    }

    #[test]
    fn names_and_encoding() {
        assert!(listable_name("a b.ts".as_ref()));
        assert!(!listable_name(".x.ts".as_ref()));
        assert!(!listable_name("a\\b".as_ref()));
        assert_eq!(encode_path("a b/ü#?%.ts"), "a%20b/%C3%BC%23%3F%25.ts");
        assert_eq!(percent_decode("a%20b%C3%BC").as_deref(), Some("a bü"));
        assert_eq!(percent_decode("%"), None);
    }
}
