//! The load generator's RTP/UDP receivers for `dvb2ip-bench satip`: a few threads, each
//! draining many non-blocking sockets through epoll and `recvmmsg`, so that hundreds of
//! 20 Mbit/s sessions cost little CPU next to the server being measured.
//!
//! Per session it counts RTP packets and payload bytes, RTP sequence gaps (loss), MPEG-TS
//! continuity-counter errors per PID, and the arrival time of the first packet. Counters are
//! atomics written only by the receiving thread, so the caller can snapshot them at any time.

use std::net::UdpSocket;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Datagrams fetched per `recvmmsg` call.
const BATCH: usize = 64;
/// Largest datagram kept (RTP header + 7 TS packets is 1328 bytes).
const DGRAM: usize = 2048;
/// `first_ns` value of a session that has not received anything yet.
pub const NONE: u64 = u64::MAX;
const TS: usize = 188;
const NULL_PID: usize = 0x1fff;

/// One session's counters (written by its receiving thread only).
pub struct Counters {
    pub packets: AtomicU64,
    /// RTP payload bytes (TS bytes).
    pub bytes: AtomicU64,
    /// Missing RTP sequence numbers: expected (highest − first + 1) minus received.
    pub lost: AtomicU64,
    /// Datagrams that arrived after one with a higher sequence number.
    pub reordered: AtomicU64,
    /// TS continuity-counter errors, plus TS packets without the 0x47 sync byte.
    pub cc_errors: AtomicU64,
    /// Nanoseconds since [`Receiver::epoch`] of the first datagram, or [`NONE`].
    pub first_ns: AtomicU64,
}

impl Default for Counters {
    fn default() -> Self {
        Counters {
            packets: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            lost: AtomicU64::new(0),
            reordered: AtomicU64::new(0),
            cc_errors: AtomicU64::new(0),
            first_ns: AtomicU64::new(NONE),
        }
    }
}

/// TS packets seen per PID on one session, over `span_ns` (first to last datagram).
#[derive(Debug, Clone, Default)]
pub struct PidTally {
    pub packets: Vec<u64>,
    pub span_ns: u64,
}

impl PidTally {
    /// Bit rate of the given PIDs in bit/s (`None`: no usable measurement).
    pub fn rate_of(&self, pids: &[u16]) -> Option<f64> {
        if self.span_ns < 500_000_000 || self.packets.is_empty() {
            return None;
        }
        let n: u64 = pids
            .iter()
            .map(|&p| self.packets.get(usize::from(p)).copied().unwrap_or(0))
            .sum();
        Some(n as f64 * (TS * 8) as f64 / (self.span_ns as f64 / 1e9))
    }

    /// Bit rate of every PID (the whole multiplex) in bit/s.
    pub fn total_rate(&self) -> Option<f64> {
        let all: Vec<u16> = (0..self.packets.len() as u16).collect();
        self.rate_of(&all)
    }
}

/// Running receivers over a fixed set of sockets (session `i` is `sockets[i]`).
pub struct Receiver {
    pub epoch: Instant,
    pub sessions: Arc<Vec<Counters>>,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<Option<PidTally>>>,
}

/// Per-session state private to the receiving thread.
struct Session {
    fd: i32,
    index: usize,
    /// Extended sequence number of the first datagram and the highest one so far.
    seq: Option<(i64, i64)>,
    received: u64,
    reordered: u64,
    /// Last continuity counter per PID; 0xff = none yet.
    cc: Box<[u8]>,
    tally: Option<Vec<u64>>,
    first_ns: u64,
    last_ns: u64,
}

impl Receiver {
    /// Starts `threads` receiving threads sharing `sockets` round-robin; the socket of session
    /// `tally_session` also gets a per-PID packet tally, returned by [`Receiver::stop`].
    pub fn start(
        sockets: &[UdpSocket],
        threads: usize,
        tally_session: Option<usize>,
    ) -> std::io::Result<Receiver> {
        let epoch = Instant::now();
        let sessions: Arc<Vec<Counters>> =
            Arc::new((0..sockets.len()).map(|_| Counters::default()).collect());
        let stop = Arc::new(AtomicBool::new(false));
        let threads = threads.clamp(1, sockets.len().max(1));
        let mut handles = Vec::new();
        for t in 0..threads {
            let mut mine = Vec::new();
            for (i, s) in sockets.iter().enumerate().skip(t).step_by(threads) {
                s.set_nonblocking(true)?;
                mine.push(Session {
                    fd: s.as_raw_fd(),
                    index: i,
                    seq: None,
                    received: 0,
                    reordered: 0,
                    cc: vec![0xff; 8192].into_boxed_slice(),
                    tally: (tally_session == Some(i)).then(|| vec![0; 8192]),
                    first_ns: NONE,
                    last_ns: 0,
                });
            }
            let (sessions, stop) = (sessions.clone(), stop.clone());
            handles.push(
                std::thread::Builder::new()
                    .name(format!("bench-rx{t}"))
                    .spawn(move || rx_loop(mine, &sessions, &stop, epoch))?,
            );
        }
        Ok(Receiver {
            epoch,
            sessions,
            stop,
            threads: handles,
        })
    }

    /// Nanoseconds since the receivers' epoch.
    pub fn now_ns(&self) -> u64 {
        self.epoch.elapsed().as_nanos() as u64
    }

    /// Stops and joins the threads (the sockets stay open); returns the PID tally if any.
    pub fn stop(self) -> Option<PidTally> {
        self.stop.store(true, Ordering::Relaxed);
        let mut tally = None;
        for h in self.threads {
            if let Ok(Some(t)) = h.join() {
                tally = Some(t);
            }
        }
        tally
    }
}

impl Session {
    /// Counts one datagram with RTP sequence number `seq` (extended over wrap-arounds).
    fn track_seq(&mut self, seq: u16) {
        self.received += 1;
        let s = i64::from(seq);
        match &mut self.seq {
            None => self.seq = Some((s, s)),
            Some((_, highest)) => {
                let delta = i64::from(seq.wrapping_sub(*highest as u16) as i16);
                if delta > 0 {
                    *highest += delta;
                } else if delta < 0 {
                    self.reordered += 1;
                }
            }
        }
    }

    fn lost(&self) -> u64 {
        self.seq.map_or(0, |(first, highest)| {
            ((highest - first + 1) as u64).saturating_sub(self.received)
        })
    }
}

fn rx_loop(
    mut mine: Vec<Session>,
    counters: &[Counters],
    stop: &AtomicBool,
    epoch: Instant,
) -> Option<PidTally> {
    // SAFETY: plain epoll/recvmmsg syscalls on descriptors the caller keeps open until this
    // thread is joined; every buffer outlives the calls that use it.
    let ep = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
    if ep < 0 {
        return None;
    }
    for (k, s) in mine.iter().enumerate() {
        let mut ev = libc::epoll_event {
            events: libc::EPOLLIN as u32,
            u64: k as u64,
        };
        unsafe { libc::epoll_ctl(ep, libc::EPOLL_CTL_ADD, s.fd, &mut ev) };
    }
    let mut bufs = vec![0u8; BATCH * DGRAM];
    let mut iovs: Vec<libc::iovec> = (0..BATCH)
        .map(|i| libc::iovec {
            iov_base: bufs[i * DGRAM..].as_mut_ptr().cast(),
            iov_len: DGRAM,
        })
        .collect();
    // SAFETY: mmsghdr is plain data; zero is a valid "no name, no control" header.
    let mut msgs: Vec<libc::mmsghdr> = (0..BATCH)
        .map(|i| {
            let mut m: libc::mmsghdr = unsafe { std::mem::zeroed() };
            m.msg_hdr.msg_iov = &mut iovs[i];
            m.msg_hdr.msg_iovlen = 1;
            m
        })
        .collect();
    let mut events = vec![libc::epoll_event { events: 0, u64: 0 }; 256];
    while !stop.load(Ordering::Relaxed) {
        let n = unsafe { libc::epoll_wait(ep, events.as_mut_ptr(), events.len() as i32, 50) };
        if n <= 0 {
            continue;
        }
        let now = epoch.elapsed().as_nanos() as u64;
        for ev in &events[..n as usize] {
            let s = &mut mine[ev.u64 as usize];
            let c = &counters[s.index];
            let (mut packets, mut bytes, mut cc_err) = (0u64, 0u64, 0u64);
            loop {
                let got = unsafe {
                    libc::recvmmsg(
                        s.fd,
                        msgs.as_mut_ptr(),
                        BATCH as u32,
                        libc::MSG_DONTWAIT,
                        std::ptr::null_mut(),
                    )
                };
                if got <= 0 {
                    break;
                }
                for (i, m) in msgs[..got as usize].iter().enumerate() {
                    let len = (m.msg_len as usize).min(DGRAM);
                    let d = &bufs[i * DGRAM..i * DGRAM + len];
                    let Some(payload) = rtp_payload(d) else {
                        continue;
                    };
                    packets += 1;
                    bytes += payload.len() as u64;
                    s.track_seq(u16::from_be_bytes([d[2], d[3]]));
                    cc_err += check_ts(payload, &mut s.cc, s.tally.as_deref_mut());
                }
                if (got as usize) < BATCH {
                    break;
                }
            }
            if packets > 0 {
                if s.first_ns == NONE {
                    s.first_ns = now;
                    c.first_ns.store(now, Ordering::Relaxed);
                }
                s.last_ns = now;
                c.packets.fetch_add(packets, Ordering::Relaxed);
                c.bytes.fetch_add(bytes, Ordering::Relaxed);
                c.lost.store(s.lost(), Ordering::Relaxed);
                c.reordered.store(s.reordered, Ordering::Relaxed);
                c.cc_errors.fetch_add(cc_err, Ordering::Relaxed);
            }
        }
    }
    unsafe { libc::close(ep) };
    mine.into_iter().find_map(|s| {
        s.tally.map(|packets| PidTally {
            packets,
            span_ns: s.last_ns.saturating_sub(s.first_ns),
        })
    })
}

/// The payload of an RTP packet (version 2, CSRCs and extension skipped, padding removed).
fn rtp_payload(d: &[u8]) -> Option<&[u8]> {
    if d.len() < 12 || d[0] >> 6 != 2 {
        return None;
    }
    let mut start = 12 + 4 * usize::from(d[0] & 0x0f);
    if d[0] & 0x10 != 0 {
        let ext = d.get(start + 2..start + 4)?;
        start += 4 + 4 * usize::from(u16::from_be_bytes([ext[0], ext[1]]));
    }
    let mut end = d.len();
    if d[0] & 0x20 != 0 {
        end = end.checked_sub(usize::from(*d.last()?))?;
    }
    d.get(start..end)
}

/// Checks the continuity counters of the TS packets in `payload`; returns the error count.
pub fn check_ts(payload: &[u8], cc: &mut [u8], mut tally: Option<&mut [u64]>) -> u64 {
    let mut errors = 0;
    for p in payload.chunks_exact(TS) {
        if p[0] != 0x47 {
            errors += 1;
            continue;
        }
        let pid = usize::from(p[1] & 0x1f) << 8 | usize::from(p[2]);
        if let Some(t) = tally.as_deref_mut() {
            t[pid] += 1;
        }
        let afc = p[3] >> 4 & 3;
        if pid == NULL_PID || afc & 1 == 0 {
            // No payload: the counter does not advance.
            continue;
        }
        let c = p[3] & 0x0f;
        let discontinuity = afc & 2 != 0 && p[4] > 0 && p[5] & 0x80 != 0;
        let last = cc[pid];
        // A single repetition (same counter) is allowed.
        if last != 0xff && !discontinuity && c != (last + 1) & 0x0f && c != last {
            errors += 1;
        }
        cc[pid] = c;
    }
    errors
}

/// Socket receive-queue drops per local UDP port (`/proc/net/udp`, last column), for `ports`.
pub fn socket_drops(ports: &[u16]) -> u64 {
    let text = std::fs::read_to_string("/proc/net/udp").unwrap_or_default();
    let wanted: std::collections::HashSet<u16> = ports.iter().copied().collect();
    text.lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let port = u16::from_str_radix(f.get(1)?.rsplit(':').next()?, 16).ok()?;
            wanted
                .contains(&port)
                .then(|| f.last()?.parse::<u64>().ok())
                .flatten()
        })
        .sum()
}

/// Waits until `f` holds or `timeout` passes; returns whether it held.
pub fn wait_until(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + timeout;
    loop {
        if f() {
            return true;
        }
        if Instant::now() >= end {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(pid: u16, cc: u8) -> [u8; TS] {
        let mut p = [0xffu8; TS];
        p[0] = 0x47;
        p[1] = (pid >> 8) as u8 & 0x1f;
        p[2] = pid as u8;
        p[3] = 0x10 | (cc & 0x0f);
        p
    }

    #[test]
    fn continuity_counters() {
        let mut cc = vec![0xffu8; 8192];
        let mut buf = Vec::new();
        for c in [0u8, 1, 2, 2, 3, 5] {
            buf.extend_from_slice(&ts(256, c));
        }
        buf.extend_from_slice(&ts(0x1fff, 9));
        buf.extend_from_slice(&ts(0x1fff, 3));
        let mut tally = vec![0u64; 8192];
        assert_eq!(check_ts(&buf, &mut cc, Some(&mut tally)), 1);
        assert_eq!(tally[256], 6);
        assert_eq!(tally[0x1fff], 2);
        // Wrap-around 15 -> 0 is fine.
        let mut cc = vec![0xffu8; 8192];
        let mut buf = Vec::new();
        buf.extend_from_slice(&ts(17, 15));
        buf.extend_from_slice(&ts(17, 0));
        assert_eq!(check_ts(&buf, &mut cc, None), 0);
    }

    #[test]
    fn sequence_loss_and_reordering() {
        let mut s = Session {
            fd: -1,
            index: 0,
            seq: None,
            received: 0,
            reordered: 0,
            cc: Box::new([]),
            tally: None,
            first_ns: NONE,
            last_ns: 0,
        };
        for q in [65534u16, 65535, 1, 0, 3] {
            s.track_seq(q);
        }
        // 65534..=3 (wrapping) is 6 numbers and 5 arrived: 2 is missing, 0 came late.
        assert_eq!((s.lost(), s.reordered), (1, 1));
    }

    #[test]
    fn rtp_payload_skips_header() {
        let mut d = vec![0x80, 33, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1];
        d.extend_from_slice(&[0x47; 4]);
        assert_eq!(rtp_payload(&d), Some(&[0x47u8; 4][..]));
        assert_eq!(rtp_payload(&d[..8]), None);
    }

    #[test]
    fn loopback_receiver_counts_packets_and_gaps() {
        let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
        let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
        tx.connect(rx.local_addr().unwrap()).unwrap();
        let r = Receiver::start(std::slice::from_ref(&rx), 1, Some(0)).unwrap();
        for seq in [1u16, 2, 4] {
            let mut d = vec![0x80, 33];
            d.extend_from_slice(&seq.to_be_bytes());
            d.extend_from_slice(&[0; 8]);
            d.extend_from_slice(&ts(256, seq as u8));
            tx.send(&d).unwrap();
        }
        let c = &r.sessions[0];
        assert!(wait_until(Duration::from_secs(5), || c
            .packets
            .load(Ordering::Relaxed)
            == 3));
        assert_eq!(c.lost.load(Ordering::Relaxed), 1);
        assert_eq!(c.cc_errors.load(Ordering::Relaxed), 1);
        assert_eq!(c.bytes.load(Ordering::Relaxed), 3 * TS as u64);
        assert_ne!(c.first_ns.load(Ordering::Relaxed), NONE);
        let tally = r.stop().unwrap();
        assert_eq!(tally.packets[256], 3);
    }
}
