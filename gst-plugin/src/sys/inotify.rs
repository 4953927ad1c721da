//! inotify(7): a non-blocking instance, watches, and reading events with a timeout (for the
//! tuner hotplug watcher, `crate::tuners::hotplug`).

use std::ffi::{CString, OsString};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::Path;
use std::time::Duration;

pub use libc::{
    IN_ATTRIB, IN_CREATE, IN_DELETE, IN_DELETE_SELF, IN_IGNORED, IN_ISDIR, IN_MOVED_FROM,
    IN_MOVED_TO, IN_MOVE_SELF, IN_Q_OVERFLOW,
};

/// One event: the watch it came from, its mask and the name within a watched directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub wd: i32,
    pub mask: u32,
    pub name: OsString,
}

/// An inotify instance (closed on drop).
#[derive(Debug)]
pub struct Inotify {
    fd: OwnedFd,
}

/// Size of `struct inotify_event` without its name.
const EVENT_HEADER: usize = std::mem::size_of::<libc::inotify_event>();

impl Inotify {
    /// A non-blocking, close-on-exec instance.
    pub fn new() -> io::Result<Inotify> {
        // SAFETY: inotify_init1 takes flags only and returns a new descriptor or -1.
        let fd = unsafe { libc::inotify_init1(libc::IN_NONBLOCK | libc::IN_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` is a fresh descriptor nobody else owns.
        Ok(Inotify {
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
        })
    }

    /// Watches `path` for the events in `mask`; returns the watch descriptor.
    pub fn add_watch(&self, path: &Path, mask: u32) -> io::Result<i32> {
        let c = CString::new(path.as_os_str().as_bytes())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains NUL"))?;
        // SAFETY: a valid descriptor and a NUL-terminated path that outlives the call.
        let wd = unsafe { libc::inotify_add_watch(self.fd.as_raw_fd(), c.as_ptr(), mask) };
        if wd < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(wd)
    }

    /// Stops watch `wd` (an error when it is gone already, e.g. its directory was deleted).
    pub fn rm_watch(&self, wd: i32) -> io::Result<()> {
        // SAFETY: a valid descriptor; the kernel checks `wd`.
        if unsafe { libc::inotify_rm_watch(self.fd.as_raw_fd(), wd) } < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Waits up to `timeout` for events and returns those queued (none on timeout).
    pub fn read_events(&self, timeout: Duration) -> io::Result<Vec<Event>> {
        let mut pfd = libc::pollfd {
            fd: self.fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        let ms = i32::try_from(timeout.as_millis()).unwrap_or(i32::MAX);
        // SAFETY: one live pollfd, count 1.
        let r = unsafe { libc::poll(&mut pfd, 1, ms) };
        if r < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                return Ok(Vec::new());
            }
            return Err(e);
        }
        let mut out = Vec::new();
        // Room for many events with names up to NAME_MAX (the kernel never splits one).
        let mut buf = vec![0u8; 64 * (EVENT_HEADER + 256)];
        loop {
            // SAFETY: a valid descriptor and a writable buffer of `buf.len()` bytes.
            let n = unsafe {
                libc::read(
                    self.fd.as_raw_fd(),
                    buf.as_mut_ptr().cast::<libc::c_void>(),
                    buf.len(),
                )
            };
            if n < 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::WouldBlock || e.kind() == io::ErrorKind::Interrupted {
                    return Ok(out);
                }
                return Err(e);
            }
            let n = usize::try_from(n).unwrap_or(0);
            if n == 0 {
                return Ok(out);
            }
            out.extend(parse_events(&buf[..n]));
        }
    }
}

/// Parses the `struct inotify_event` records of one read.
pub fn parse_events(mut b: &[u8]) -> Vec<Event> {
    let mut out = Vec::new();
    while b.len() >= EVENT_HEADER {
        // The header: i32 wd, u32 mask, u32 cookie, u32 len, in native byte order.
        let wd = i32::from_ne_bytes([b[0], b[1], b[2], b[3]]);
        let mask = u32::from_ne_bytes([b[4], b[5], b[6], b[7]]);
        let len = u32::from_ne_bytes([b[12], b[13], b[14], b[15]]) as usize;
        let Some(name) = b.get(EVENT_HEADER..EVENT_HEADER + len) else {
            break;
        };
        let name = &name[..name.iter().position(|&c| c == 0).unwrap_or(name.len())];
        out.push(Event {
            wd,
            mask,
            name: OsString::from_vec(name.to_vec()),
        });
        b = &b[EVENT_HEADER + len..];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sees_a_directory_and_a_file_come_and_go() {
        let dir = std::env::temp_dir().join(format!("dvb2ip-inotify-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let ino = Inotify::new().unwrap();
        let wd = ino.add_watch(&dir, IN_CREATE | IN_DELETE).unwrap();
        std::fs::create_dir(dir.join("adapter3")).unwrap();
        std::fs::write(dir.join("frontend0"), b"").unwrap();
        std::fs::remove_file(dir.join("frontend0")).unwrap();
        let mut seen = Vec::new();
        let end = std::time::Instant::now() + Duration::from_secs(10);
        while seen.len() < 3 && std::time::Instant::now() < end {
            seen.extend(ino.read_events(Duration::from_millis(100)).unwrap());
        }
        let names: Vec<(String, bool, bool)> = seen
            .iter()
            .map(|e| {
                assert_eq!(e.wd, wd);
                (
                    e.name.to_string_lossy().into_owned(),
                    e.mask & IN_CREATE != 0,
                    e.mask & IN_ISDIR != 0,
                )
            })
            .collect();
        assert_eq!(
            names,
            vec![
                ("adapter3".into(), true, true),
                ("frontend0".into(), true, false),
                ("frontend0".into(), false, false),
            ]
        );
        ino.rm_watch(wd).unwrap();
        let _ = std::fs::remove_dir_all(&dir);
    }
}
