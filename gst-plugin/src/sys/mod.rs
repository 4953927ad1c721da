//! Every syscall `unsafe` of the plugin and the launcher, behind small safe functions.
//!
//! * [`net`]: UDP receive timestamps (`SO_TIMESTAMPNS`), `recvmsg`/`recvmmsg` with their
//!   control data, `sendmmsg` with UDP GSO (`UDP_SEGMENT`), an `eventfd` wake-up and `poll`.
//! * [`dvb`]: the DVB frontend ioctls (`FE_GET_INFO`, `FE_GET_PROPERTY`/`DTV_ENUM_DELSYS`).
//! * [`inotify`]: watches on /dev and /dev/dvb for tuner hotplug.
//! * here: the realtime clock and real-time thread priority.
//!
//! Each `unsafe` block carries a `// SAFETY:` note; nothing outside this module calls libc
//! through `unsafe` for a syscall. GStreamer FFI in the launcher is not a syscall and stays
//! where it is used, and so does the launcher's `mallopt(M_ARENA_MAX)` in `serve.rs` (an
//! allocator setting, with its own SAFETY note).

pub mod dvb;
#[cfg(target_os = "linux")]
pub mod inotify;
#[cfg(target_os = "linux")]
pub mod net;

/// `CLOCK_REALTIME` now (ns), e.g. to turn a kernel receive stamp into an age.
pub fn realtime_ns() -> Option<u64> {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid clock id and a pointer to a live timespec, which is all clock_gettime
    // writes.
    if unsafe { libc::clock_gettime(libc::CLOCK_REALTIME, &mut ts) } != 0 {
        return None;
    }
    let s = u64::try_from(ts.tv_sec).ok()?;
    let n = u64::try_from(ts.tv_nsec).ok()?;
    Some(s * 1_000_000_000 + n)
}

/// Puts the calling thread in `SCHED_FIFO` at `priority`; false if refused (no privilege).
pub fn set_fifo_priority(priority: i32) -> bool {
    let p = libc::sched_param {
        sched_priority: priority,
    };
    // SAFETY: pid 0 is the calling thread; `p` is a live sched_param the call only reads.
    unsafe { libc::sched_setscheduler(0, libc::SCHED_FIFO, &p) == 0 }
}

#[cfg(test)]
mod tests {
    #[test]
    fn realtime_clock_reads_after_2020() {
        let now = super::realtime_ns().expect("CLOCK_REALTIME");
        assert!(now > 1_577_836_800 * 1_000_000_000, "{now}");
    }
}
