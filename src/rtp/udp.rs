//! The direct RTP/UDP path of unicast SAT>IP streams.
//!
//! gst-rtsp-server negotiates the transport and owns the stream's RTP/RTCP sockets (so RTP
//! still leaves from `server_port` and RTCP from `server_port+1`, checklist 94), but the
//! packets of a playing unicast stream do not travel appsrc → rtpbin → multiudpsink, one
//! `sendmsg` per datagram. The packetizer writes them here instead: all full RTP packets of
//! one TS buffer go out in one `sendmsg` with UDP segmentation offload (`UDP_SEGMENT`, one
//! 1328-byte datagram per segment), falling back to one `sendmmsg` when the kernel refuses
//! segmentation (or when `DVB2IP_NO_GSO` is set, to measure the difference). RTCP (SR + SDES
//! + APP `SES1`) is built by the packetizer as well.

use std::io::IoSlice;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use gst::glib::translate::ToGlibPtr;
use gst_rtsp_server::gio;
use gst_rtsp_server::prelude::*;
use gst_rtsp_server::RTSPMedia;
use nix::sys::socket::{
    sendmmsg, sendmsg, ControlMessage, MsgFlags, MultiHeaders, SockaddrStorage,
};

use gstdvb2ip::proto::rtp::RTP_HEADER_LEN;
use nix::errno::Errno;

use super::CAT;

/// Segments per `UDP_SEGMENT` send: the kernel takes at most 64, and the whole send must fit
/// one IP datagram (48 × 1328 = 63 744 bytes).
const MAX_SEGMENTS: usize = 48;
/// Send buffer asked for each stream socket: room for several 10 ms bursts of a full mux.
const SNDBUF: usize = 1 << 20;

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
    /// Datagrams that could not be sent (socket buffer full, or an error): the server's count.
    dropped: Arc<AtomicU64>,
}

impl UdpDest {
    /// The unicast UDP destination of a stream transport of `media`, with duplicates of the
    /// stream's own RTP/RTCP sockets, counting what cannot be sent in `dropped`. `None` for TCP-interleaved or multicast transports,
    /// which stay on gst-rtsp-server's path.
    pub fn of_transport(
        media: &RTSPMedia,
        trans: &gst_rtsp_server::RTSPStreamTransport,
        dropped: &Arc<AtomicU64>,
    ) -> Option<UdpDest> {
        let stream = media.stream(0)?;
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
            // gio::Socket lends its fd safely; the duplicate is ours.
            std::os::fd::AsFd::as_fd(s).try_clone_to_owned().ok()
        };
        let peer = SocketAddr::new(ip, rtp_port);
        let rtp_fd = dup(&rtp)?;
        let _ = nix::sys::socket::setsockopt(&rtp_fd, nix::sys::socket::sockopt::SndBuf, &SNDBUF);
        Some(UdpDest {
            rtp: rtp_fd,
            rtp_to: SockaddrStorage::from(peer),
            rtcp: dup(&rtcp)?,
            rtcp_to: SockaddrStorage::from(SocketAddr::new(ip, rtcp_port)),
            gso: AtomicBool::new(std::env::var_os("DVB2IP_NO_GSO").is_none()),
            peer,
            dropped: dropped.clone(),
        })
    }

    /// Sends RTP packets, `headers[i]` followed by `payloads[i]`: runs of equal-sized
    /// packets go out in segmented sends straight from the payload slices.
    pub fn send_rtp(&self, headers: &[[u8; RTP_HEADER_LEN]], payloads: &[&[u8]]) {
        let mut i = 0;
        while i < payloads.len() {
            let len = payloads[i].len();
            let mut j = i + 1;
            while j < payloads.len() && j - i < MAX_SEGMENTS && payloads[j].len() == len {
                j += 1;
            }
            self.send_run(&headers[i..j], &payloads[i..j]);
            i = j;
        }
    }

    /// Sends one RTCP datagram.
    pub fn send_rtcp(&self, datagram: &[u8]) {
        self.send_one(&self.rtcp, &self.rtcp_to, datagram);
    }

    /// Sends packets whose payloads all have the same length.
    fn send_run(&self, headers: &[[u8; RTP_HEADER_LEN]], payloads: &[&[u8]]) {
        let iov: Vec<IoSlice> = headers
            .iter()
            .zip(payloads)
            .flat_map(|(h, p)| [IoSlice::new(h), IoSlice::new(p)])
            .collect();
        let seg = RTP_HEADER_LEN + payloads[0].len();
        if payloads.len() > 1 && self.gso.load(Ordering::Relaxed) {
            let seg16 = seg as u16;
            let cmsg = [ControlMessage::UdpGsoSegments(&seg16)];
            let r = retry(|| {
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
                Err(Errno::EIO | Errno::EINVAL | Errno::ENOPROTOOPT) => {
                    gst::info!(
                        CAT,
                        "UDP segmentation refused by the kernel, using sendmmsg"
                    );
                    self.gso.store(false, Ordering::Relaxed);
                }
                Err(e) => return self.dropped(payloads.len(), e),
            }
        }
        if payloads.len() == 1 {
            // One datagram: a plain sendmsg (no sendmmsg headers to allocate).
            let r = retry(|| {
                sendmsg(
                    self.rtp.as_raw_fd(),
                    &iov,
                    &[],
                    MsgFlags::empty(),
                    Some(&self.rtp_to),
                )
            });
            if let Err(e) = r {
                self.dropped(1, e);
            }
            return;
        }
        let msgs: Vec<&[IoSlice]> = iov.chunks(2).collect();
        let mut headers = MultiHeaders::<SockaddrStorage>::preallocate(msgs.len(), None);
        let addrs = vec![Some(self.rtp_to); msgs.len()];
        let mut sent = 0;
        while sent < msgs.len() {
            let r = retry(|| {
                sendmmsg(
                    self.rtp.as_raw_fd(),
                    &mut headers,
                    &msgs[sent..],
                    &addrs[sent..],
                    [],
                    MsgFlags::empty(),
                )
                .map(|r| r.count())
            });
            match r {
                Ok(0) => break,
                Ok(n) => sent += n,
                Err(e) => return self.dropped(msgs.len() - sent, e),
            }
        }
    }

    fn send_one(&self, fd: &OwnedFd, to: &SockaddrStorage, datagram: &[u8]) {
        let iov = [IoSlice::new(datagram)];
        if let Err(e) = retry(|| sendmsg(fd.as_raw_fd(), &iov, &[], MsgFlags::empty(), Some(to))) {
            self.dropped(1, e);
        }
    }

    fn dropped(&self, n: usize, e: Errno) {
        let total = self.dropped.fetch_add(n as u64, Ordering::Relaxed) + n as u64;
        gst::debug!(
            CAT,
            "to {}: {n} datagrams not sent ({e}), {total} in all",
            self.peer
        );
    }
}

/// Runs a send, retrying on EINTR. A full socket buffer (EAGAIN) is not waited for: sends
/// run in the frontend's feed thread, where one stalled client must not hold up the others,
/// so its datagrams are dropped and counted, as a busy network would.
fn retry<T>(mut send: impl FnMut() -> nix::Result<T>) -> nix::Result<T> {
    loop {
        match send() {
            Err(Errno::EINTR) => continue,
            r => return r,
        }
    }
}
