//! The direct RTP/UDP path of unicast SAT>IP streams.
//!
//! gst-rtsp-server negotiates the transport and owns the stream's RTP/RTCP sockets (so RTP
//! still leaves from `server_port` and RTCP from `server_port+1`, checklist 94), but the
//! packets of a playing unicast stream do not travel appsrc → rtpbin → multiudpsink, one
//! `sendmsg` per datagram. The packetizer writes them here instead: all full RTP packets of
//! one TS buffer go out in one `sendmsg` with UDP segmentation offload (`UDP_SEGMENT`, one
//! 1328-byte datagram per segment), falling back to one `sendmmsg` when the kernel refuses
//! segmentation. RTCP (SR + SDES + APP `SES1`) is built by the packetizer as well.

use std::io::IoSlice;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use gst::glib::translate::ToGlibPtr;
use gst_rtsp_server::gio;
use gst_rtsp_server::prelude::*;
use gst_rtsp_server::RTSPMedia;
use nix::sys::socket::{
    sendmmsg, sendmsg, ControlMessage, MsgFlags, MultiHeaders, SockaddrStorage,
};

use super::CAT;

/// Segments per `UDP_SEGMENT` send: the kernel takes at most 64, and the whole send must fit
/// one IP datagram (48 × 1328 = 63 744 bytes).
const MAX_SEGMENTS: usize = 48;
/// How long a send may wait for room in a full socket buffer before the batch is dropped.
const SEND_WAIT_MS: i32 = 20;

/// Datagrams that could not be sent (socket buffer full for too long, or an error).
pub static DROPPED: AtomicU64 = AtomicU64::new(0);

/// Where one unicast stream's RTP and RTCP go, and the sockets they leave from.
#[derive(Debug)]
pub struct UdpDest {
    rtp: OwnedFd,
    rtp_to: SockaddrStorage,
    rtcp: OwnedFd,
    rtcp_to: SockaddrStorage,
    /// Cleared for good once the kernel refuses `UDP_SEGMENT`.
    gso: AtomicBool,
    pub peer: SocketAddr,
}

impl UdpDest {
    /// The unicast UDP destination of `media`'s only stream transport, with duplicates of the
    /// stream's own RTP/RTCP sockets. `None` for TCP-interleaved or multicast transports,
    /// which stay on gst-rtsp-server's path.
    pub fn of_media(media: &RTSPMedia) -> Option<UdpDest> {
        let stream = media.stream(0)?;
        let mut first = None;
        stream.transport_filter(Some(&mut |_, t| {
            first.get_or_insert_with(|| t.clone());
            gst_rtsp_server::RTSPFilterResult::Keep
        }));
        let trans = first?;
        // SAFETY: the transport struct belongs to `trans`, which we hold; fields are read
        // while it lives.
        let (lower, dest, rtp_port, rtcp_port) = unsafe {
            let t = gst_rtsp_server::ffi::gst_rtsp_stream_transport_get_transport(
                trans.to_glib_none().0,
            );
            if t.is_null() || (*t).destination.is_null() {
                return None;
            }
            let dest = std::ffi::CStr::from_ptr((*t).destination)
                .to_string_lossy()
                .into_owned();
            (
                (*t).lower_transport,
                dest,
                (*t).client_port.min,
                (*t).client_port.max,
            )
        };
        if lower != gst_rtsp_server::gst_rtsp::ffi::GST_RTSP_LOWER_TRANS_UDP {
            return None;
        }
        let ip: IpAddr = dest.parse().ok()?;
        let (rtp_port, rtcp_port) = (
            u16::try_from(rtp_port).ok()?,
            u16::try_from(rtcp_port).ok()?,
        );
        let family = if ip.is_ipv4() {
            gio::SocketFamily::Ipv4
        } else {
            gio::SocketFamily::Ipv6
        };
        let rtp = stream.rtp_socket(family)?;
        let rtcp = stream.rtcp_socket(family)?;
        let dup = |s: &gio::Socket| -> Option<OwnedFd> {
            // SAFETY: the socket is alive for this call; the duplicate is ours.
            let fd = unsafe { std::os::fd::BorrowedFd::borrow_raw(s.as_raw_fd()) };
            fd.try_clone_to_owned().ok()
        };
        let peer = SocketAddr::new(ip, rtp_port);
        Some(UdpDest {
            rtp: dup(&rtp)?,
            rtp_to: SockaddrStorage::from(peer),
            rtcp: dup(&rtcp)?,
            rtcp_to: SockaddrStorage::from(SocketAddr::new(ip, rtcp_port)),
            gso: AtomicBool::new(true),
            peer,
        })
    }

    /// Sends `data`, the concatenation of datagrams of `seg` bytes each (the last one may be
    /// shorter), as RTP.
    pub fn send_rtp_segments(&self, data: &[u8], seg: usize) {
        for batch in data.chunks(seg * MAX_SEGMENTS) {
            self.send_batch(batch, seg);
        }
    }

    /// Sends one RTP datagram.
    pub fn send_rtp(&self, datagram: &[u8]) {
        self.send_one(&self.rtp, &self.rtp_to, datagram);
    }

    /// Sends one RTCP datagram.
    pub fn send_rtcp(&self, datagram: &[u8]) {
        self.send_one(&self.rtcp, &self.rtcp_to, datagram);
    }

    fn send_batch(&self, batch: &[u8], seg: usize) {
        if batch.len() <= seg {
            return self.send_one(&self.rtp, &self.rtp_to, batch);
        }
        if self.gso.load(Ordering::Relaxed) {
            let seg16 = seg as u16;
            let cmsg = [ControlMessage::UdpGsoSegments(&seg16)];
            let iov = [IoSlice::new(batch)];
            let r = retry(&self.rtp, || {
                sendmsg(
                    self.rtp.as_raw_fd(),
                    &iov,
                    &cmsg,
                    MsgFlags::empty(),
                    Some(&self.rtp_to),
                )
            });
            match r {
                Ok(_) => return,
                Err(
                    nix::errno::Errno::EIO
                    | nix::errno::Errno::EINVAL
                    | nix::errno::Errno::ENOPROTOOPT,
                ) => {
                    gst::info!(
                        CAT,
                        "UDP segmentation refused by the kernel, using sendmmsg"
                    );
                    self.gso.store(false, Ordering::Relaxed);
                }
                Err(e) => {
                    self.dropped(batch.len().div_ceil(seg), e);
                    return;
                }
            }
        }
        let slices: Vec<[IoSlice; 1]> = batch.chunks(seg).map(|c| [IoSlice::new(c)]).collect();
        let mut headers = MultiHeaders::<SockaddrStorage>::preallocate(slices.len(), None);
        let addrs = vec![Some(self.rtp_to); slices.len()];
        let mut sent = 0;
        while sent < slices.len() {
            let r = retry(&self.rtp, || {
                sendmmsg(
                    self.rtp.as_raw_fd(),
                    &mut headers,
                    &slices[sent..],
                    &addrs[sent..],
                    [],
                    MsgFlags::empty(),
                )
                .map(|r| r.count())
            });
            match r {
                Ok(0) => break,
                Ok(n) => sent += n,
                Err(e) => return self.dropped(slices.len() - sent, e),
            }
        }
    }

    fn send_one(&self, fd: &OwnedFd, to: &SockaddrStorage, datagram: &[u8]) {
        let iov = [IoSlice::new(datagram)];
        if let Err(e) = retry(fd, || {
            sendmsg(fd.as_raw_fd(), &iov, &[], MsgFlags::empty(), Some(to))
        }) {
            self.dropped(1, e);
        }
    }

    fn dropped(&self, n: usize, e: nix::errno::Errno) {
        let total = DROPPED.fetch_add(n as u64, Ordering::Relaxed) + n as u64;
        gst::debug!(
            CAT,
            "to {}: {n} datagrams not sent ({e}), {total} in all",
            self.peer
        );
    }
}

/// Runs a send, waiting (bounded) for room when the socket buffer is full.
fn retry<T>(fd: &OwnedFd, mut send: impl FnMut() -> nix::Result<T>) -> nix::Result<T> {
    loop {
        match send() {
            Err(nix::errno::Errno::EINTR) => continue,
            Err(nix::errno::Errno::EAGAIN) => {
                let mut pfd = [nix::poll::PollFd::new(
                    fd.as_fd(),
                    nix::poll::PollFlags::POLLOUT,
                )];
                match nix::poll::poll(&mut pfd, nix::poll::PollTimeout::from(SEND_WAIT_MS as u16)) {
                    Ok(n) if n > 0 => continue,
                    _ => return Err(nix::errno::Errno::EAGAIN),
                }
            }
            r => return r,
        }
    }
}
