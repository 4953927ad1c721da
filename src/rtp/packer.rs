//! The RTP/MP2T packetizer of SAT>IP streams ([`Packer`]) and the one timer thread that
//! flushes partial packets, fills silences with empty packets and sends the direct path's RTCP
//! for every live packer of a server ([`Packers`]).
//!
//! A packer sends through gst-rtsp-server (`pay0`'s appsrc: TCP-interleaved, multicast, every
//! stream before PLAY) or, for a playing unicast RTP/UDP stream, straight to the client through
//! [`UdpDest`]: all full packets of one TS buffer in one `sendmsg` with UDP segmentation
//! offload, in the feed's thread, with no thread and no GStreamer object per stream.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gst::glib;
use gst::prelude::*;
use gstdvb2ip::proto::rtp::{rtp_header, RTP_HEADER_LEN};

use super::udp::UdpDest;
use super::CAT;

/// TS packets per RTP packet (§5).
pub const TS_PER_RTP: usize = 7;
/// An empty RTP packet goes out after this long without any packet (§5, checklist 89).
const IDLE_EMPTY: Duration = Duration::from_millis(100);
/// A partly filled RTP packet goes out after this long (low-rate PID sets).
const PARTIAL_FLUSH: Duration = Duration::from_millis(20);
/// RTCP compound interval on the direct path: 5 per second (checklist 95).
const RTCP_EVERY: Duration = Duration::from_millis(200);

/// RTP/MP2T packetizer of one stream: sequence numbers run on across retunes and PID
/// changes, and empty RTP packets fill silences (no signal, `pids=none`), which also lets
/// gst-rtsp-server prepare a media whose frontend has no signal.
///
/// Packets go to the `pay0` appsrc (gst-rtsp-server's path: TCP-interleaved, multicast,
/// and every stream before it plays), or, for a playing unicast UDP stream, straight to the
/// client through [`UdpDest`] with RTCP built here.
pub struct Packer {
    seq: u16,
    ssrc: u32,
    start: Instant,
    pending: Vec<u8>,
    last_push: Instant,
    appsrc: glib::WeakRef<gst_app::AppSrc>,
    /// The stream's status string (for RTCP APP); called without the packer locked.
    status: StatusFn,
    direct: Option<UdpDest>,
    /// Shared with the `pay0` probe: set, it keeps gst-rtsp-server's RTP path quiet for a
    /// direct stream; the probe stores the sequence number of the last packet it let through
    /// (`NO_SEQ` before any), which a direct stream continues from.
    probe: Arc<ProbeState>,
    /// Media is sent only after PLAY; before it, `pay0` gets an empty packet now and then so
    /// gst-rtsp-server can prepare the media, and that is all a client can see of that time.
    playing: bool,
    /// The newest tuner buffer of a direct stream set up but not yet playing.
    last_tap: Option<gst::Buffer>,
    packets: u32,
    octets: u32,
    last_rtcp: Instant,
    /// Bytes of RTP (headers and payloads) handed to the network or to `pay0`, for the
    /// session's bitrate (src/clients.rs).
    sent: Arc<std::sync::atomic::AtomicU64>,
}

/// Reads a stream's status string.
pub type StatusFn = Arc<dyn Fn() -> Option<String> + Send + Sync>;

impl Packer {
    /// A packer sending through `pay0`'s appsrc until (and unless) its stream goes the
    /// direct path; `status` reads the stream's status string.
    pub fn with_pay0(appsrc: &gst_app::AppSrc, status: StatusFn) -> Self {
        Self::with_status(appsrc.downgrade(), status)
    }

    /// A packer without `pay0`: its stream only ever goes the direct path.
    pub fn detached() -> Self {
        Self::with_status(glib::WeakRef::new(), Arc::new(|| None))
    }

    pub fn set_status_fn(&mut self, status: StatusFn) {
        self.status = status;
    }

    /// Sequence number and RTP timestamp the next packet will carry (RTP-Info of PLAY).
    pub fn rtp_info(&self) -> (u16, u32) {
        (self.seq, self.rtp_time(Instant::now()))
    }

    pub fn ssrc(&self) -> u32 {
        self.ssrc
    }

    /// The count of RTP bytes this packer sent (shared, read without the packer's lock).
    pub fn sent_counter(&self) -> Arc<std::sync::atomic::AtomicU64> {
        self.sent.clone()
    }

    /// At PLAY: sends the tuner data kept since SETUP at once, the remainder as a partly
    /// filled packet, or an empty packet when nothing was kept (a low-rate PID set between two
    /// chunks, no signal), so the client sees the stream start without waiting for the next
    /// chunk or flush (direct path, playing).
    pub fn flush_kept(&mut self) {
        if self.direct.is_none() || !self.playing {
            return;
        }
        let before = self.packets;
        if let Some(first) = self.last_tap.take() {
            self.take(&first);
        }
        if !self.pending.is_empty() {
            self.flush_partial();
        } else if self.packets == before {
            self.emit(&[]);
        }
    }

    pub fn is_playing(&self) -> bool {
        self.playing
    }

    /// Whether the stream's packets go the direct path ([`UdpDest`]).
    pub fn is_direct(&self) -> bool {
        self.direct.is_some()
    }

    /// The state shared with the `pay0` probe.
    pub fn probe(&self) -> Arc<ProbeState> {
        self.probe.clone()
    }

    /// A buffer from the media's own pipeline (gst-rtsp-server's path): packed and sent when
    /// the stream plays and is not on the direct path (where the tuner's tap delivers).
    pub fn take_from_pipeline(&mut self, buf: &gst::BufferRef) {
        if self.direct.is_none() && self.playing {
            self.take(buf);
        }
    }

    pub fn set_playing(&mut self) {
        self.playing = true;
    }

    /// A tuner buffer for a stream that may be on the direct path: sent when playing (after
    /// the newest one kept since SETUP), kept when not yet. `false` when the stream is not on
    /// the direct path (the buffer is not consumed).
    pub fn feed(&mut self, buf: &gst::Buffer, keep_before_setup: bool) -> bool {
        match (self.direct.is_some(), self.playing) {
            (false, _) if !keep_before_setup => return false,
            (true, true) => {
                if let Some(first) = self.last_tap.take() {
                    self.take(&first);
                }
                self.take(buf)
            }
            // Not playing: only the newest buffer is kept, for PLAY.
            _ => self.last_tap = Some(buf.clone()),
        }
        true
    }

    fn with_status(appsrc: glib::WeakRef<gst_app::AppSrc>, status: StatusFn) -> Self {
        // Random enough for SSRC and initial sequence number (RFC 3550 wants them random).
        let mut h = std::collections::hash_map::DefaultHasher::new();
        std::hash::Hash::hash(
            &(Instant::now(), std::process::id(), &h as *const _ as usize),
            &mut h,
        );
        let r = std::hash::Hasher::finish(&h);
        let now = Instant::now();
        Packer {
            seq: r as u16,
            ssrc: (r >> 32) as u32,
            start: now,
            pending: Vec::with_capacity(TS_PER_RTP * 188 * 2),
            last_push: now,
            appsrc,
            status,
            direct: None,
            probe: Arc::new(ProbeState {
                direct: AtomicBool::new(false),
                passed_seq: AtomicU32::new(NO_SEQ),
            }),
            playing: false,
            last_tap: None,
            packets: 0,
            octets: 0,
            last_rtcp: now,
            sent: Arc::default(),
        }
    }

    /// RTP timestamp (90 kHz since the packer started) of `at`.
    fn rtp_time(&self, at: Instant) -> u32 {
        (at.saturating_duration_since(self.start).as_nanos() * 9 / 100_000) as u32
    }

    /// The header of the next packet, counted for the sender report.
    fn next_header(&mut self, timestamp: u32, payload_len: usize) -> [u8; RTP_HEADER_LEN] {
        let h = rtp_header(self.seq, timestamp, self.ssrc);
        self.seq = self.seq.wrapping_add(1);
        self.packets = self.packets.wrapping_add(1);
        self.octets = self.octets.wrapping_add(payload_len as u32);
        h
    }

    /// Sends packets (headers with their payloads, in order) on the stream's current path.
    /// Called with the packer locked, so sequence numbers leave in order.
    fn send(&self, headers: &[[u8; RTP_HEADER_LEN]], payloads: &[&[u8]]) {
        let n: usize = payloads.iter().map(|p| RTP_HEADER_LEN + p.len()).sum();
        self.sent.fetch_add(n as u64, Ordering::Relaxed);
        if let Some(d) = &self.direct {
            d.send_rtp(headers, payloads);
        } else if let Some(appsrc) = self.appsrc.upgrade() {
            for (h, p) in headers.iter().zip(payloads) {
                let mut data = Vec::with_capacity(RTP_HEADER_LEN + p.len());
                data.extend_from_slice(h);
                data.extend_from_slice(p);
                // Non-blocking (leaky) appsrc: only a queue insertion.
                let _ = appsrc.push_buffer(gst::Buffer::from_mut_slice(data));
            }
        }
    }

    /// Before PLAY: gives `pay0` an empty packet when its queue is empty (at most one waits
    /// there, one more at gst-rtsp-server's block), so the media can be prepared.
    fn prime_pay0(&mut self) {
        if self.direct.is_some() || (self.packets > 0 && self.last_push.elapsed() < IDLE_EMPTY) {
            return;
        }
        let Some(appsrc) = self.appsrc.upgrade() else {
            return;
        };
        if appsrc.current_level_buffers() == 0 {
            self.emit(&[]);
        }
    }

    /// Sends one packet with `payload` (whole TS packets, possibly none).
    fn emit(&mut self, payload: &[u8]) {
        let now = Instant::now();
        let h = self.next_header(self.rtp_time(now), payload.len());
        self.send(&[h], &[payload]);
        self.last_push = now;
    }

    /// Packs the TS packets of `buf` after what is pending and sends every full RTP packet
    /// (on the direct path in one segmented send, payloads straight from the buffer); the
    /// remainder stays pending.
    fn take(&mut self, buf: &gst::BufferRef) {
        let Ok(map) = buf.map_readable() else { return };
        self.take_slice(map.as_slice());
    }

    /// TS packets (whole, 188 bytes each) for a stream on the direct path that plays: sent
    /// as [`Packer::feed`] sends a buffer; dropped when not playing (paused). Returns whether
    /// they were sent.
    pub fn feed_slice(&mut self, ts: &[u8]) -> bool {
        if self.direct.is_none() || !self.playing {
            return false;
        }
        self.take_slice(ts);
        true
    }

    /// Stops sending (PAUSE of a direct stream); [`Packer::set_playing`] resumes.
    pub fn set_paused(&mut self) {
        self.playing = false;
        self.last_tap = None;
    }

    /// [`Packer::take`] of bytes.
    fn take_slice(&mut self, mut rest: &[u8]) {
        const PAYLOAD: usize = TS_PER_RTP * 188;
        let mut head = std::mem::take(&mut self.pending);
        if !head.is_empty() {
            let need = PAYLOAD - head.len();
            if rest.len() < need {
                head.extend_from_slice(rest);
                self.pending = head;
                return;
            }
            head.extend_from_slice(&rest[..need]);
            rest = &rest[need..];
        }
        let (body, tail) = rest.split_at(rest.len() / PAYLOAD * PAYLOAD);
        let mut payloads: Vec<&[u8]> = Vec::with_capacity(1 + body.len() / PAYLOAD);
        if !head.is_empty() {
            payloads.push(&head);
        }
        payloads.extend(body.chunks_exact(PAYLOAD));
        if !payloads.is_empty() {
            let now = Instant::now();
            let ts = self.rtp_time(now);
            let headers: Vec<_> = payloads
                .iter()
                .map(|p| self.next_header(ts, p.len()))
                .collect();
            self.send(&headers, &payloads);
            self.last_push = now;
        }
        drop(payloads);
        head.clear();
        head.extend_from_slice(tail);
        self.pending = head;
    }

    /// Sends what is pending as one partly filled packet.
    fn flush_partial(&mut self) {
        let pending = std::mem::take(&mut self.pending);
        self.emit(&pending);
        self.pending = pending;
        self.pending.clear();
    }

    /// Sends the compound RTCP packet (SR, SDES CNAME, APP `SES1`) on the direct path.
    fn send_rtcp(&mut self, status: &str) {
        let Some(d) = &self.direct else { return };
        let now = Instant::now();
        let out = super::rtcp::compound(
            self.ssrc,
            self.rtp_time(now),
            self.packets,
            self.octets,
            &format!("dvb2ip@{}", local_cname_host(d)),
            status,
        );
        d.send_rtcp(&out);
        self.last_rtcp = now;
    }

    /// Switches to (or off) the direct path; pending full packets stay in order.
    pub fn set_direct(&mut self, direct: Option<UdpDest>) {
        if let Some(d) = &direct {
            if self.direct.is_none() {
                // What pay0 still held was dropped: continue after the last packet that went
                // gst-rtsp-server's way (it may still reach the client), and from the tuner's
                // newest data.
                self.pending.clear();
                let passed = self.probe.passed_seq.load(Ordering::SeqCst);
                if passed != NO_SEQ {
                    self.seq = (passed as u16).wrapping_add(1);
                }
            }
            gst::info!(
                CAT,
                "stream ssrc {:08x}: direct RTP/UDP to {}",
                self.ssrc,
                d.peer
            );
        } else {
            self.playing = false;
            self.last_tap = None;
        }
        self.probe.direct.store(direct.is_some(), Ordering::SeqCst);
        self.direct = direct;
    }
}

/// Host part of the CNAME: the address family's loopback-agnostic "local" name.
fn local_cname_host(d: &UdpDest) -> &'static str {
    if d.peer.is_ipv4() {
        "ipv4"
    } else {
        "ipv6"
    }
}

/// A server's live packers, for its one timer thread that flushes partial packets, sends
/// empty packets in silences and RTCP on the direct path. The thread starts with the first
/// packer and ends once the last handle (the server's core) is gone.
#[derive(Clone, Default)]
pub struct Packers(Arc<PackerList>);

struct PackerList {
    list: Mutex<Vec<std::sync::Weak<Mutex<Packer>>>>,
    timer: std::sync::Once,
}

impl Default for PackerList {
    fn default() -> Self {
        PackerList {
            list: Mutex::new(Vec::new()),
            timer: std::sync::Once::new(),
        }
    }
}

impl Packers {
    /// Serves `packer` from the timer thread while it lives.
    pub fn register(&self, packer: &Arc<Mutex<Packer>>) {
        self.0.list.lock().unwrap().push(Arc::downgrade(packer));
        self.0.timer.call_once(|| {
            let list = Arc::downgrade(&self.0);
            std::thread::Builder::new()
                .name("satip-timer".into())
                .spawn(move || timer_loop(list))
                .expect("spawn the SAT>IP timer thread");
        });
    }
}

fn timer_loop(list: std::sync::Weak<PackerList>) {
    loop {
        std::thread::sleep(PARTIAL_FLUSH / 2);
        let Some(list) = list.upgrade() else {
            return;
        };
        let live: Vec<Arc<Mutex<Packer>>> = {
            let mut all = list.list.lock().unwrap();
            all.retain(|w| w.strong_count() > 0);
            all.iter().filter_map(|w| w.upgrade()).collect()
        };
        for packer in live {
            // One lock per packer and tick, two when its RTCP is due: the status string is
            // read without the packer locked (a property read must not wait on us).
            let status = {
                let mut p = packer.lock().unwrap();
                let now = Instant::now();
                let due = p.direct.is_some()
                    && p.playing
                    && now.saturating_duration_since(p.last_rtcp) >= RTCP_EVERY;
                if !due {
                    p.tick(now);
                    continue;
                }
                p.status.clone()
            };
            let status = status();
            let mut p = packer.lock().unwrap();
            p.tick(Instant::now());
            if let Some(status) = status {
                p.send_rtcp(&status);
            }
        }
    }
}

impl Packer {
    /// The timer's work on one packer at `now`: `pay0` primed before PLAY; after it, a partly
    /// filled packet flushed, or an empty one sent in a silence.
    fn tick(&mut self, now: Instant) {
        if !self.playing {
            self.prime_pay0();
            return;
        }
        if self.direct.is_none() && self.appsrc.upgrade().is_none() {
            return;
        }
        let idle = now.saturating_duration_since(self.last_push);
        if !self.pending.is_empty() && idle >= PARTIAL_FLUSH {
            self.flush_partial();
        } else if idle >= IDLE_EMPTY {
            self.emit(&[]);
        }
    }
}

/// Shared between a [`Packer`] and its `pay0` pad probe (see [`Packer::probe`]).
pub struct ProbeState {
    /// Set while the stream goes the direct path: the probe drops what pay0 still sends.
    pub direct: AtomicBool,
    /// Sequence number of the last packet the probe let through, [`NO_SEQ`] before any.
    pub passed_seq: AtomicU32,
}

/// [`ProbeState::passed_seq`] before any packet passed.
pub const NO_SEQ: u32 = u32::MAX;
