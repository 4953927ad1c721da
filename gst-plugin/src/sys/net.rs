//! UDP syscalls: kernel receive timestamps (`SO_TIMESTAMPNS`, always `CLOCK_REALTIME`),
//! `recvmsg`/`recvmmsg` with their control data, batched replies with `sendmmsg` and UDP GSO
//! (`UDP_SEGMENT`), an `eventfd` wake-up and `poll` (Linux only).
//!
//! The CSS-WC server ([`crate::css_server`]) answers datagrams in batches with a
//! [`ReplyBatch`]; the launcher's WC client reads with [`recv_stamped`].

use std::io;
use std::mem::size_of;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

/// Asks the kernel to stamp every datagram `fd` receives (`SO_TIMESTAMPNS`); false if
/// refused (then there are no stamps).
pub fn enable_rx_timestamps(fd: BorrowedFd<'_>) -> bool {
    let on: libc::c_int = 1;
    // SAFETY: the fd is borrowed, so open; the option value is a live c_int of the size given.
    let r = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_TIMESTAMPNS,
            (&on as *const libc::c_int).cast(),
            size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    r == 0
}

/// The kernel receive stamp (`CLOCK_REALTIME` ns) in a received message's control data.
///
/// # Safety
/// `msg` must be a header that `recvmsg`/`recvmmsg` filled: its control pointer and length
/// describe a live buffer.
unsafe fn stamp_of(msg: &libc::msghdr) -> Option<u64> {
    let mut found = None;
    // SAFETY (caller): the kernel filled the control buffer up to msg_controllen; the CMSG_*
    // macros stay within it, and the payload is read unaligned.
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(msg);
        while !cmsg.is_null() {
            if (*cmsg).cmsg_level == libc::SOL_SOCKET && (*cmsg).cmsg_type == libc::SCM_TIMESTAMPNS
            {
                let ts: libc::timespec =
                    std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast::<libc::timespec>());
                if ts.tv_sec >= 0 && ts.tv_nsec >= 0 {
                    found = Some(ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64);
                }
            }
            cmsg = libc::CMSG_NXTHDR(msg, cmsg);
        }
    }
    found
}

/// One `recvmsg` without waiting (`MSG_DONTWAIT`): the datagram's length and its kernel
/// receive stamp (`CLOCK_REALTIME` ns) if [`enable_rx_timestamps`] is on.
pub fn recv_stamped(fd: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<(usize, Option<u64>)> {
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    let mut control = [0u64; 8];
    // SAFETY: all-zero is a valid msghdr (null pointers, zero lengths).
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = size_of::<[u64; 8]>() as _;
    // SAFETY: every pointer in `msg` refers to a live local buffer of the stated size; the fd
    // is borrowed, so open.
    let n = unsafe { libc::recvmsg(fd.as_raw_fd(), &mut msg, libc::MSG_DONTWAIT) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: recvmsg filled `msg`'s control buffer, which is still alive.
    let stamp = unsafe { stamp_of(&msg) };
    Ok((n as usize, stamp))
}

/// A non-blocking `eventfd`: another thread [`signal`](WakeFd::signal)s it to end a
/// [`wait_readable`].
#[derive(Debug)]
pub struct WakeFd(OwnedFd);

impl WakeFd {
    pub fn new() -> io::Result<Self> {
        // SAFETY: a plain syscall with constant flags; a non-negative result is a new fd.
        let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` was just created and is owned by nobody else.
        Ok(WakeFd(unsafe { OwnedFd::from_raw_fd(fd) }))
    }

    /// Makes the eventfd readable (wakes every waiter, now and later).
    pub fn signal(&self) {
        let one: u64 = 1;
        // SAFETY: writes 8 bytes from a live u64 to an eventfd we own.
        let _ = unsafe {
            libc::write(
                self.0.as_raw_fd(),
                (&one as *const u64).cast(),
                size_of::<u64>(),
            )
        };
    }
}

/// Blocks until `fd` is readable or `wake` is signalled; true when woken by `wake`.
pub fn wait_readable(fd: BorrowedFd<'_>, wake: &WakeFd) -> bool {
    let mut fds = [
        libc::pollfd {
            fd: fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        },
        libc::pollfd {
            fd: wake.0.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        },
    ];
    // SAFETY: two live pollfd entries whose fds are open (one borrowed, one owned).
    let r = unsafe { libc::poll(fds.as_mut_ptr(), 2, -1) };
    r > 0 && fds[1].revents != 0
}

/// Datagrams per `recvmmsg`/`sendmmsg` of a [`ReplyBatch`].
pub const BATCH: usize = 64;
/// Control buffer per datagram (u64 for cmsghdr alignment): room for one timespec cmsg.
const CONTROL_WORDS: usize = 8;
/// `SOL_UDP` and its `UDP_SEGMENT` option (linux/udp.h; not in every libc version).
const SOL_UDP: libc::c_int = 17;
const UDP_SEGMENT: libc::c_int = 103;

/// Request/reply buffers for a request-response UDP server: up to [`BATCH`] datagrams of at
/// most `IN` bytes read with one `recvmmsg` (each with its source address and kernel receive
/// stamp), and replies of exactly `OUT` bytes sent back to their requests' sources with one
/// `sendmmsg`. Boxed once; the header pointers are re-aimed before every call because the
/// kernel overwrites the lengths.
pub struct ReplyBatch<const IN: usize, const OUT: usize> {
    bufs: [[u8; IN]; BATCH],
    names: [libc::sockaddr_storage; BATCH],
    control: [[u64; CONTROL_WORDS]; BATCH],
    iov: [libc::iovec; BATCH],
    hdr: [libc::mmsghdr; BATCH],
    /// Replies, and the index of the request each answers.
    out: [[u8; OUT]; BATCH],
    out_of: [usize; BATCH],
    out_iov: [libc::iovec; BATCH],
    out_hdr: [libc::mmsghdr; BATCH],
    /// Control buffers of the GSO messages, and the first reply of each message.
    out_control: [[u64; 4]; BATCH],
    group_start: [usize; BATCH],
}

// SAFETY: the raw pointers inside only ever point into the batch itself (re-aimed before each
// call); nothing is shared with another owner.
unsafe impl<const IN: usize, const OUT: usize> Send for ReplyBatch<IN, OUT> {}

impl<const IN: usize, const OUT: usize> ReplyBatch<IN, OUT> {
    pub fn new() -> Box<Self> {
        // SAFETY: every field is plain old data for which all-zero is valid (null pointers
        // are re-aimed before use).
        unsafe { Box::new(std::mem::zeroed()) }
    }

    /// `recvmmsg` without waiting: datagrams received, or an error (`WouldBlock` when there
    /// is none).
    pub fn recv(&mut self, fd: BorrowedFd<'_>) -> io::Result<usize> {
        for i in 0..BATCH {
            self.iov[i] = libc::iovec {
                iov_base: self.bufs[i].as_mut_ptr().cast(),
                iov_len: IN,
            };
            let h = &mut self.hdr[i].msg_hdr;
            h.msg_name = (&mut self.names[i] as *mut libc::sockaddr_storage).cast();
            h.msg_namelen = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            h.msg_iov = &mut self.iov[i];
            h.msg_iovlen = 1;
            h.msg_control = self.control[i].as_mut_ptr().cast();
            h.msg_controllen = size_of::<[u64; CONTROL_WORDS]>() as _;
            h.msg_flags = 0;
            self.hdr[i].msg_len = 0;
        }
        // SAFETY: every header points at live buffers of this boxed batch, with the lengths
        // stated; the fd is borrowed, so open.
        let n = unsafe {
            libc::recvmmsg(
                fd.as_raw_fd(),
                self.hdr.as_mut_ptr(),
                BATCH as libc::c_uint,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(n as usize)
    }

    /// Datagram `i` of the last [`recv`](Self::recv): its bytes, or `Err(length)` if it was
    /// truncated (longer than `IN`).
    pub fn datagram(&self, i: usize) -> Result<&[u8], usize> {
        let len = self.hdr[i].msg_len as usize;
        if self.hdr[i].msg_hdr.msg_flags & libc::MSG_TRUNC != 0 || len > IN {
            return Err(len.max(IN + 1));
        }
        Ok(&self.bufs[i][..len])
    }

    /// Kernel receive stamp (`CLOCK_REALTIME` ns) of datagram `i`.
    pub fn stamp(&self, i: usize) -> Option<u64> {
        // SAFETY: recvmmsg filled this header, whose control pointer aims at this batch's
        // live control buffer `i`.
        unsafe { stamp_of(&self.hdr[i].msg_hdr) }
    }

    /// Source address of datagram `i`.
    pub fn source(&self, i: usize) -> SocketAddr {
        sockaddr_to_std(&self.names[i]).unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0)))
    }

    /// Sets reply `k` (of the next [`send`](Self::send)) to `reply`, answering datagram `of`.
    pub fn set_reply(&mut self, k: usize, reply: [u8; OUT], of: usize) {
        self.out[k] = reply;
        self.out_of[k] = of;
    }

    /// The first `m` replies, to edit in place between sends.
    pub fn replies_mut(&mut self, m: usize) -> &mut [[u8; OUT]] {
        &mut self.out[..m]
    }

    /// Whether replies `j` and `k` go to the same address.
    fn same_destination(&self, j: usize, k: usize) -> bool {
        let (a, b) = (self.out_of[j], self.out_of[k]);
        let (la, lb) = (
            self.hdr[a].msg_hdr.msg_namelen,
            self.hdr[b].msg_hdr.msg_namelen,
        );
        let len = (la as usize).min(size_of::<libc::sockaddr_storage>());
        // SAFETY: both storages are live and at least `len` bytes long.
        la == lb
            && unsafe {
                libc::memcmp(
                    (&self.names[a] as *const libc::sockaddr_storage).cast(),
                    (&self.names[b] as *const libc::sockaddr_storage).cast(),
                    len,
                ) == 0
            }
    }

    /// Sends the first `m` replies to their requests' sources with `sendmmsg`. With `gso`,
    /// consecutive replies to one address go out as one UDP GSO message (`UDP_SEGMENT` of
    /// `OUT` bytes: the kernel splits it into separate datagrams), which saves most of the
    /// per-datagram cost of the stack. If the kernel or device refuses GSO, `gso` is switched
    /// off and the replies are sent one by one. A datagram the kernel refuses is skipped; the
    /// rest are still sent; a full send buffer drops the rest of the batch.
    pub fn send(&mut self, fd: BorrowedFd<'_>, m: usize, gso: &mut bool) {
        let mut groups = 0;
        let mut k = 0;
        while k < m {
            let mut n = 1;
            if *gso {
                while k + n < m && self.same_destination(k, k + n) {
                    n += 1;
                }
            }
            let i = self.out_of[k];
            self.out_iov[groups] = libc::iovec {
                iov_base: self.out[k].as_mut_ptr().cast(),
                iov_len: OUT * n,
            };
            self.group_start[groups] = k;
            let h = &mut self.out_hdr[groups].msg_hdr;
            h.msg_name = (&mut self.names[i] as *mut libc::sockaddr_storage).cast();
            h.msg_namelen = self.hdr[i].msg_hdr.msg_namelen;
            h.msg_iov = &mut self.out_iov[groups];
            h.msg_iovlen = 1;
            h.msg_flags = 0;
            if n > 1 {
                let ctrl = &mut self.out_control[groups];
                h.msg_control = ctrl.as_mut_ptr().cast();
                // SAFETY: CMSG_SPACE only computes a size; that of a u16 fits the 32-byte
                // control buffer.
                h.msg_controllen = unsafe { libc::CMSG_SPACE(size_of::<u16>() as u32) } as _;
                // SAFETY: the header points at the live control buffer sized above; the u16
                // payload is written unaligned.
                unsafe {
                    let c = libc::CMSG_FIRSTHDR(h);
                    (*c).cmsg_level = SOL_UDP;
                    (*c).cmsg_type = UDP_SEGMENT;
                    (*c).cmsg_len = libc::CMSG_LEN(size_of::<u16>() as u32) as _;
                    std::ptr::write_unaligned(libc::CMSG_DATA(c).cast::<u16>(), OUT as u16);
                }
            } else {
                h.msg_control = std::ptr::null_mut();
                h.msg_controllen = 0;
            }
            groups += 1;
            k += n;
        }
        let mut sent = 0;
        while sent < groups {
            // SAFETY: headers `sent..groups` point at live buffers of this boxed batch; the fd
            // is borrowed, so open.
            let r = unsafe {
                libc::sendmmsg(
                    fd.as_raw_fd(),
                    self.out_hdr.as_mut_ptr().add(sent),
                    (groups - sent) as libc::c_uint,
                    0,
                )
            };
            if r >= 0 {
                sent += (r as usize).max(1);
                continue;
            }
            let e = io::Error::last_os_error();
            match e.kind() {
                io::ErrorKind::Interrupted => {}
                // Send buffer full: drop the rest of the batch rather than stall.
                io::ErrorKind::WouldBlock => return,
                _ if self.out_hdr[sent].msg_hdr.msg_controllen != 0 => {
                    // GSO refused (no checksum offload, old kernel): resend the rest one
                    // datagram at a time and never try GSO again.
                    *gso = false;
                    let from = self.group_start[sent];
                    let rest = m - from;
                    self.out.copy_within(from..m, 0);
                    self.out_of.copy_within(from..m, 0);
                    self.send(fd.as_fd(), rest, gso);
                    return;
                }
                // Refused for this destination only: skip it.
                _ => sent += 1,
            }
        }
    }
}

fn sockaddr_to_std(a: &libc::sockaddr_storage) -> Option<SocketAddr> {
    use std::net::{Ipv4Addr, Ipv6Addr, SocketAddrV6};
    match libc::c_int::from(a.ss_family) {
        libc::AF_INET => {
            // SAFETY: the family says this storage holds a sockaddr_in, which is smaller.
            let s = unsafe { &*(a as *const libc::sockaddr_storage).cast::<libc::sockaddr_in>() };
            Some(SocketAddr::new(
                IpAddr::V4(Ipv4Addr::from(u32::from_be(s.sin_addr.s_addr))),
                u16::from_be(s.sin_port),
            ))
        }
        libc::AF_INET6 => {
            // SAFETY: the family says this storage holds a sockaddr_in6, which is smaller.
            let s = unsafe { &*(a as *const libc::sockaddr_storage).cast::<libc::sockaddr_in6>() };
            Some(SocketAddr::V6(SocketAddrV6::new(
                Ipv6Addr::from(s.sin6_addr.s6_addr),
                u16::from_be(s.sin6_port),
                u32::from_be(s.sin6_flowinfo),
                s.sin6_scope_id,
            )))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::UdpSocket;
    use std::time::Duration;

    fn pair() -> (UdpSocket, UdpSocket) {
        let a = UdpSocket::bind("127.0.0.1:0").expect("bind");
        let b = UdpSocket::bind("127.0.0.1:0").expect("bind");
        (a, b)
    }

    /// Waits until `s` has a datagram (the tests send on loopback first, so it is queued).
    fn readable(s: &UdpSocket) {
        let wake = WakeFd::new().expect("eventfd");
        assert!(!wait_readable(s.as_fd(), &wake));
    }

    #[test]
    fn stamped_receive_and_batched_replies_on_loopback() {
        let (server, client) = pair();
        assert!(enable_rx_timestamps(server.as_fd()));
        let before = crate::sys::realtime_ns().expect("clock");
        for i in 0..3u8 {
            client
                .send_to(&[i; 5], server.local_addr().unwrap())
                .unwrap();
        }
        readable(&server);
        let mut b = ReplyBatch::<16, 4>::new();
        let mut got = 0;
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while got < 3 {
            assert!(std::time::Instant::now() < deadline, "3 datagrams in 30 s");
            match b.recv(server.as_fd()) {
                Ok(n) => {
                    for i in 0..n {
                        let d = b.datagram(i).expect("not truncated");
                        assert_eq!(d.len(), 5);
                        assert_eq!(b.source(i), client.local_addr().unwrap());
                        let stamp = b.stamp(i).expect("kernel stamp");
                        assert!(stamp + 1_000_000_000 >= before, "{stamp} vs {before}");
                        let r = [d[0]; 4];
                        b.set_reply(i, r, i);
                    }
                    for r in b.replies_mut(n) {
                        r[1] = 0xee;
                    }
                    let mut gso = true;
                    b.send(server.as_fd(), n, &mut gso);
                    got += n;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => readable(&server),
                Err(e) => panic!("recvmmsg: {e}"),
            }
        }
        // Each reply arrives as its own 4-byte datagram (GSO splits the group).
        client
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        let mut seen = Vec::new();
        for _ in 0..3 {
            let mut buf = [0u8; 16];
            let (n, from) = client.recv_from(&mut buf).expect("reply");
            assert_eq!((n, from), (4, server.local_addr().unwrap()));
            assert_eq!(buf[1], 0xee);
            seen.push(buf[0]);
        }
        seen.sort();
        assert_eq!(seen, [0, 1, 2]);
    }

    #[test]
    fn truncated_datagram_reports_its_length() {
        let (server, client) = pair();
        client
            .send_to(&[7u8; 40], server.local_addr().unwrap())
            .unwrap();
        readable(&server);
        let mut b = ReplyBatch::<16, 4>::new();
        let n = b.recv(server.as_fd()).expect("recvmmsg");
        assert_eq!(n, 1);
        assert!(b.datagram(0).is_err());
    }

    #[test]
    fn recv_stamped_reads_one_datagram_with_its_stamp() {
        let (server, client) = pair();
        assert!(enable_rx_timestamps(server.as_fd()));
        let mut buf = [0u8; 8];
        let e = recv_stamped(server.as_fd(), &mut buf).expect_err("nothing yet");
        assert_eq!(e.kind(), io::ErrorKind::WouldBlock);
        client
            .send_to(b"abc", server.local_addr().unwrap())
            .unwrap();
        readable(&server);
        let (n, stamp) = recv_stamped(server.as_fd(), &mut buf).expect("recvmsg");
        assert_eq!(&buf[..n], b"abc");
        assert!(stamp.is_some());
    }

    #[test]
    fn wake_fd_ends_a_wait() {
        let (server, _client) = pair();
        let wake = std::sync::Arc::new(WakeFd::new().expect("eventfd"));
        let w = wake.clone();
        let t = std::thread::spawn(move || w.signal());
        assert!(wait_readable(server.as_fd(), &wake));
        t.join().unwrap();
    }
}
