//! MPEG-TS files over RTSP without a pipeline per session: the file goes as it is, one MP2T RTP
//! stream (RFC 2250, payload type 33), as live555MediaServer sends TS files.
//!
//! gst-rtsp-server still does the RTSP of it, as for unicast SAT>IP streams
//! ([`crate::rtsp::direct`]): every TS file's mount has one shared media ([`DirectFactory`])
//! whose pipeline is an idle `pay0` (its one packet and rtpbin's RTCP are dropped). It gives the
//! sessions, SETUP answers (`server_port`, interleaved channels), keep-alive, timeouts and
//! TEARDOWN, and the SDP (`m=video 0 RTP/AVP 33`, `a=rtpmap:33 MP2T/90000`, with the range of
//! the file's PCRs, [`media_imp::DirectMedia`]).
//!
//! Each session is a [`DirectSession`] on its session media: its own [`Reader`] of the file
//! (opened at SETUP: two clients of one file never move each other) on the one pacing thread of
//! [`super::pacer`], and its own RTP/MP2T packetizer ([`Out`]: 7 TS packets per RTP packet,
//! RTCP SR every second, SR + BYE at the end), which sends to the client straight through
//! [`UdpDest`] (RTP/UDP) or through the session's `RTSPStreamTransport` (RTP over RTSP, the
//! same call gst-rtsp-server's own stream makes from its sending thread). A session costs no
//! thread and no GStreamer object of its own.
//!
//! * PLAY with `Range: npt=` seeks the reader to the key frame at or before it (TsFile's PCR
//!   bisection) before gst-rtsp-server sees the request (the Range is taken out of it: the
//!   shared media is never seeked). The answer's Range is that key frame's NPT, its RTP-Info
//!   the sequence number and RTP time of the first packet after it, which leaves after the
//!   answer (the reader starts in `play-request`, once the answer is queued).
//! * RTP time: 90 kHz (RFC 2250), a clock that runs while the session plays, so it continues
//!   across PAUSE and seeks (RTP-Info of each PLAY says where the new position starts).
//! * PAUSE stops the reader where it is; PLAY without Range goes on from there.
//! * `Scale`: the reader's trick play (key frames only, forward and reverse,
//!   [`Reader::set_scale`]); the answer names the Scale it applies, PLAY without Scale plays at 1.
//! * End of file: RTCP SR + BYE, the session stays, paused at the end. A read error: logged,
//!   SR + BYE, and the session ends.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use gst::glib;
use gst::glib::translate::{from_glib_none, ToGlibPtr};
use gst::prelude::*;
use gst_rtsp_server::gst_rtsp;
use gst_rtsp_server::prelude::*;
use gst_rtsp_server::subclass::prelude::*;
use gst_rtsp_server::{RTSPContext, RTSPMedia, RTSPSessionMedia, RTSPStreamTransport};
use gstdvb2ip::proto::rtp::{rtp_header, RTP_HEADER_LEN};
use gstdvb2ip::proto::ts::PACKET_SIZE;

use super::pacer::{ChunkSink, Pacer, Reader};
use super::rtsp_npt::{parse_range, parse_scale, RangeReq};
use super::ts_file::TsFile;
use super::CAT;
use crate::core::Core;
use crate::rtp::packer::TS_PER_RTP;
use crate::rtp::udp::UdpDest;
use crate::rtsp::client::Answer;

/// Key of the [`DirectSession`] on its `RTSPSessionMedia`.
const SESSION_KEY: &str = "dvb2ip-vod-direct";
/// RTCP sender reports of a playing session, at least this often.
const RTCP_EVERY: Duration = Duration::from_secs(1);
/// Rounding slack when comparing a requested NPT with a key frame's time, seconds.
const NPT_SLACK_S: f64 = 0.002;
/// RTP payload of a full packet.
const PAYLOAD: usize = TS_PER_RTP * PACKET_SIZE;

/// Whether `file` goes the direct path: `[vod] direct` is on and the file is an MPEG-TS the
/// probe reads (PAT, PMT, PCRs) whose key frames carry their parameter sets (a client joining
/// at a seek decodes from the file's own bytes). Decided when its mount is made; a TS file
/// that fails the last test goes the pipeline way (its parsers put SPS/PPS in front of every
/// key frame), and the log says so.
pub fn serves(core: &Core, file: &Path) -> bool {
    if !core.config.vod.direct || super::rtsp_media::is_mjpeg(file) {
        return false;
    }
    let Ok(ts) = TsFile::open(file) else {
        return false;
    };
    match ts.key_frames_carry_parameter_sets() {
        Ok(true) => true,
        Ok(false) => {
            gst::info!(
                CAT,
                "{}: key frames without SPS/sequence header: served per elementary stream",
                file.display()
            );
            false
        }
        Err(e) => {
            gst::warning!(CAT, "{}: {e}", file.display());
            false
        }
    }
}

/// Where a session's packets go.
enum Dest {
    Udp(Box<UdpDest>),
    Tcp(Transport),
    /// The session is gone (nothing more is sent).
    None,
}

/// A session's RTP-over-RTSP transport, used from the pacing thread.
struct Transport(RTSPStreamTransport);

// SAFETY: a GObject's reference counting is thread-safe, and gst-rtsp-server itself calls
// `gst_rtsp_stream_transport_send_rtp`/`_rtcp` from its streams' sending threads, outside the
// client's thread; the bindings only lack the marker.
unsafe impl Send for Transport {}
// SAFETY: as above; the transport is only used through `&self` calls of the C API.
unsafe impl Sync for Transport {}

/// One direct session's RTP/MP2T packetizer and RTCP sender (the pacer's [`ChunkSink`]).
struct Out {
    st: Mutex<OutState>,
    /// Ends the session after a read error (set at SETUP).
    fatal: Mutex<Option<Box<dyn FnOnce() + Send>>>,
    file: PathBuf,
    sent: Arc<AtomicU64>,
}

struct OutState {
    dest: Dest,
    seq: u16,
    ssrc: u32,
    /// RTP time when the play clock was at 0.
    rtp_base: u32,
    /// Play time before the current run.
    played: Duration,
    /// Start of the current run (set by its first packet).
    since: Option<Instant>,
    /// Between PLAY and PAUSE (or the end).
    running: bool,
    pending: Vec<u8>,
    packets: u32,
    octets: u32,
    last_rtcp: Option<Instant>,
    /// NPT of the last seek's key frame (or of where play last resumed after a change of
    /// Scale), ns, and the play clock then.
    npt_base: u64,
    clock_base: Duration,
    /// After a seek: the PIDs whose first PES start was sent, and how many more packets are
    /// looked at. Until its PES starts, a PID's packets are left out (the key frame the seek
    /// found starts the video, but an audio PES is usually cut: a client would decode its tail
    /// as a broken frame). `None`: everything passes.
    started: Option<(Vec<u16>, usize)>,
}

/// Packets after a seek within which every PID's first PES start is waited for.
const START_WINDOW: usize = 20_000;

impl OutState {
    fn clock(&self, now: Instant) -> Duration {
        self.played
            + self
                .since
                .map_or(Duration::ZERO, |s| now.saturating_duration_since(s))
    }

    fn rtp_time(&self, now: Instant) -> u32 {
        let ticks = self.clock(now).as_nanos() * 9 / 100_000;
        self.rtp_base.wrapping_add(ticks as u32)
    }

    fn stop_clock(&mut self, now: Instant) {
        self.played = self.clock(now);
        self.since = None;
    }

    /// Sends full packets of `pending` + `ts`; keeps the rest pending.
    fn take(&mut self, mut ts: &[u8], sent: &AtomicU64) {
        let mut out: Vec<&[u8]> = Vec::with_capacity(1 + ts.len() / PAYLOAD);
        let mut head = std::mem::take(&mut self.pending);
        if !head.is_empty() {
            let need = PAYLOAD - head.len();
            if ts.len() < need {
                head.extend_from_slice(ts);
                self.pending = head;
                return;
            }
            head.extend_from_slice(&ts[..need]);
            ts = &ts[need..];
            out.push(&head);
        }
        let (body, tail) = ts.split_at(ts.len() / PAYLOAD * PAYLOAD);
        out.extend(body.chunks_exact(PAYLOAD));
        self.send(&out, sent);
        drop(out);
        head.clear();
        head.extend_from_slice(tail);
        self.pending = head;
    }

    /// Sends what is pending as one partly filled packet.
    fn flush(&mut self, sent: &AtomicU64) {
        if !self.pending.is_empty() {
            let p = std::mem::take(&mut self.pending);
            self.send(&[&p], sent);
            self.pending = p;
            self.pending.clear();
        }
    }

    fn send(&mut self, payloads: &[&[u8]], sent: &AtomicU64) {
        if payloads.is_empty() {
            return;
        }
        let now = Instant::now();
        if self.since.is_none() && self.running {
            // The first packet of a run carries the RTP time PLAY's RTP-Info named.
            self.since = Some(now);
        }
        let ts = self.rtp_time(now);
        let headers: Vec<[u8; RTP_HEADER_LEN]> = payloads
            .iter()
            .map(|p| {
                let h = rtp_header(self.seq, ts, self.ssrc);
                self.seq = self.seq.wrapping_add(1);
                self.packets = self.packets.wrapping_add(1);
                self.octets = self.octets.wrapping_add(p.len() as u32);
                h
            })
            .collect();
        let n: usize = payloads.iter().map(|p| RTP_HEADER_LEN + p.len()).sum();
        sent.fetch_add(n as u64, Ordering::Relaxed);
        match &self.dest {
            Dest::Udp(d) => d.send_rtp(&headers, payloads),
            Dest::Tcp(t) => {
                for (h, p) in headers.iter().zip(payloads) {
                    let mut data = Vec::with_capacity(RTP_HEADER_LEN + p.len());
                    data.extend_from_slice(h);
                    data.extend_from_slice(p);
                    // Refused when the connection's backlog is full or it is gone: the
                    // packet is lost, as gst-rtsp-server's own stream would lose it.
                    let _ = t.0.send_rtp(&gst::Buffer::from_mut_slice(data));
                }
            }
            Dest::None => {}
        }
        if self
            .last_rtcp
            .is_none_or(|t| now.duration_since(t) >= RTCP_EVERY)
        {
            self.send_rtcp(false);
        }
    }

    /// RTCP SR + SDES CNAME (+ BYE).
    fn send_rtcp(&mut self, bye: bool) {
        let now = Instant::now();
        self.last_rtcp = Some(now);
        let unix = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        let mut out = Vec::with_capacity(128);
        gstdvb2ip::proto::rtp::push_sender_report(
            &mut out,
            self.ssrc,
            gstdvb2ip::proto::rtp::ntp_timestamp(unix.as_nanos()),
            self.rtp_time(now),
            self.packets,
            self.octets,
        );
        gstdvb2ip::proto::rtp::push_sdes_cname(&mut out, self.ssrc, "dvb2ip-vod");
        if bye {
            // RFC 3550 §6.6: V=2, SC=1, PT=203, length 1, the SSRC.
            out.extend_from_slice(&[0x81, 203, 0, 1]);
            out.extend_from_slice(&self.ssrc.to_be_bytes());
        }
        match &self.dest {
            Dest::Udp(d) => d.send_rtcp(&out),
            Dest::Tcp(t) => {
                let _ = t.0.send_rtcp(&gst::Buffer::from_mut_slice(out));
            }
            Dest::None => {}
        }
    }

    /// NPT of where normal play is, ns: the last seek's key frame plus the play time since
    /// (the client's RTP clock; the reader's bytes run up to a chunk ahead of it).
    fn position_ns(&self, now: Instant) -> u64 {
        let played = self.clock(now).saturating_sub(self.clock_base);
        self.npt_base + played.as_nanos() as u64
    }

    /// Positions are counted from `npt_ns` at the play clock's current time.
    fn rebase(&mut self, npt_ns: u64) {
        self.npt_base = npt_ns;
        self.clock_base = self.clock(Instant::now());
    }
}

impl ChunkSink for Out {
    fn chunk(&self, ts: &[u8]) -> bool {
        let mut st = self.st.lock().unwrap();
        if matches!(st.dest, Dest::None) {
            return false;
        }
        match st.started.take() {
            None => st.take(ts, &self.sent),
            Some((mut pids, left)) => {
                let mut kept = Vec::with_capacity(ts.len());
                for p in ts.chunks_exact(PACKET_SIZE) {
                    let pid = (u16::from(p[1] & 0x1F) << 8) | u16::from(p[2]);
                    if pids.contains(&pid) {
                        kept.extend_from_slice(p);
                    } else if p[1] & 0x40 != 0 && pid != 0x1FFF {
                        pids.push(pid);
                        kept.extend_from_slice(p);
                    }
                }
                let n = ts.len() / PACKET_SIZE;
                if left > n {
                    st.started = Some((pids, left - n));
                }
                st.take(&kept, &self.sent);
            }
        }
        true
    }

    fn end(&self, error: Option<io::Error>) {
        let mut st = self.st.lock().unwrap();
        st.flush(&self.sent);
        st.running = false;
        st.stop_clock(Instant::now());
        st.send_rtcp(true);
        drop(st);
        match error {
            None => gst::info!(
                CAT,
                "{}: end of file, RTCP BYE sent, session paused at the end",
                self.file.display()
            ),
            Some(e) => {
                gst::error!(
                    CAT,
                    "{}: read error, ending its session: {e}",
                    self.file.display()
                );
                if let Some(f) = self.fatal.lock().unwrap().take() {
                    // Not in the pacing thread: ending the session drops its reader.
                    std::thread::spawn(f);
                }
            }
        }
    }

    fn seeked(&self) {
        let mut st = self.st.lock().unwrap();
        st.pending.clear();
        st.started = Some((Vec::new(), START_WINDOW));
    }
}

/// One direct VOD session: its reader and packetizer (on its session media).
pub struct DirectSession {
    reader: Arc<Reader>,
    out: Arc<Out>,
    duration_ns: u64,
    /// The Scale applied (see [`Reader::set_scale`]).
    scale: Mutex<f64>,
    /// Set by a PLAY answered 200: the reader starts once the answer is on its way.
    start_pending: std::sync::atomic::AtomicBool,
}

impl DirectSession {
    fn open(pacer: &Pacer, file: &Path, dest: Dest) -> Result<DirectSession, String> {
        let ts = TsFile::open(file).map_err(|e| format!("{}: {e}", file.display()))?;
        let duration_ns = ts.info.duration_ns();
        let r = random();
        let out = Arc::new(Out {
            st: Mutex::new(OutState {
                dest,
                seq: r as u16,
                ssrc: (r >> 32) as u32,
                rtp_base: (r >> 16) as u32,
                played: Duration::ZERO,
                since: None,
                running: false,
                pending: Vec::with_capacity(PAYLOAD),
                packets: 0,
                octets: 0,
                last_rtcp: None,
                npt_base: 0,
                clock_base: Duration::ZERO,
                started: Some((Vec::new(), START_WINDOW)),
            }),
            fatal: Mutex::new(None),
            file: file.to_path_buf(),
            sent: Arc::default(),
        });
        let sink: Arc<dyn ChunkSink> = out.clone();
        let reader =
            Reader::new(pacer, ts, sink).map_err(|e| format!("{}: {e}", file.display()))?;
        Ok(DirectSession {
            reader,
            out,
            duration_ns,
            scale: Mutex::new(1.0),
            start_pending: Default::default(),
        })
    }

    fn attach(self, sm: &RTSPSessionMedia) {
        // SAFETY: the key is only ever used with a `DirectSession`.
        unsafe { sm.set_data(SESSION_KEY, self) };
    }

    /// The session of a session media, if it is a direct one.
    fn with<T>(sm: &RTSPSessionMedia, f: impl FnOnce(&DirectSession) -> T) -> Option<T> {
        // SAFETY: see `attach`.
        unsafe { sm.data::<DirectSession>(SESSION_KEY).map(|p| f(p.as_ref())) }
    }

    /// NPT of where the session is, ns.
    fn position_ns(&self) -> u64 {
        let pos = if *self.scale.lock().unwrap() == 1.0 {
            self.out.st.lock().unwrap().position_ns(Instant::now())
        } else {
            self.reader.position_ns()
        };
        pos.min(self.duration_ns)
    }

    /// Stops sending and keeps the position.
    fn pause(&self) {
        self.reader.pause();
        self.start_pending.store(false, Ordering::SeqCst);
        let mut st = self.out.st.lock().unwrap();
        st.flush(&self.out.sent);
        st.running = false;
        st.stop_clock(Instant::now());
    }
}

impl Drop for DirectSession {
    fn drop(&mut self) {
        self.reader.pause();
        // Nothing more leaves for this session (the transport goes with the session media).
        self.out.st.lock().unwrap().dest = Dest::None;
        gst::debug!(CAT, "{}: direct session ends", self.out.file.display());
    }
}

/// Random enough for SSRC, first sequence number and RTP time (RFC 3550 wants them random).
fn random() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos(),
    );
    h.finish()
}

/// Whether `media` is a direct VOD media.
pub fn is_direct(media: &RTSPMedia) -> bool {
    media.is::<DirectMedia>()
}

/// The session media of the request being handled.
fn current_session_media() -> Option<RTSPSessionMedia> {
    RTSPContext::with_current_context(|ctx| {
        let p: *const gst_rtsp_server::ffi::GstRTSPContext = ctx.to_glib_none().0;
        // SAFETY: a valid context; `sessmedia` is NULL or a session media it holds.
        unsafe { from_glib_none((*p).sessmedia) }
    })
    .flatten()
}

/// The session media of `session` on `media`.
fn session_media_of(
    session: &gst_rtsp_server::RTSPSession,
    media: &RTSPMedia,
) -> Option<RTSPSessionMedia> {
    let mut found = None;
    session.filter(Some(&mut |_, sm| {
        if found.is_none() && sm.media().as_ref() == Some(media) {
            found = Some(sm.clone());
        }
        gst_rtsp_server::RTSPFilterResult::Keep
    }));
    found
}

/// A header [`pre_play`] adds to a PLAY it seeked: the key frame's NPT, s.
const LANDED: &str = "X-Dvb2ip-Direct-Landed";
/// A header [`pre_play`] adds to a PLAY with `Scale`: the Scale applied.
const SCALE: &str = "X-Dvb2ip-Direct-Scale";

/// A PLAY on a direct session, before gst-rtsp-server handles it: checks `Range` (400, 457) and
/// `Scale` (400), seeks the session's reader (paused until the answer is out), and takes Range
/// and Scale out of the request (the shared media does not move).
pub(crate) fn pre_play(
    media: &RTSPMedia,
    request: &crate::rtsp::message::Msg,
) -> Result<(), Answer> {
    let session = RTSPContext::with_current_context(|c| c.session().cloned()).flatten();
    let sm = current_session_media().or_else(|| session.and_then(|s| session_media_of(&s, media)));
    let Some(sm) = sm else {
        // No session (gst-rtsp-server answers 454).
        return Ok(());
    };
    let scale = match request.header("Scale") {
        Some(v) => Some(parse_scale(&v).map_err(|e| {
            gst::info!(CAT, "PLAY: 400: {e}");
            Answer::plain(400, "Bad Request")
        })?),
        None => None,
    };
    let npt = match request.header("Range").map(|v| parse_range(&v)) {
        None | Some(Ok(RangeReq::Other)) => None,
        Some(Ok(RangeReq::Npt(n))) => Some(n),
        Some(Err(e)) => {
            gst::info!(CAT, "PLAY: 400: {e}");
            return Err(Answer::plain(400, "Bad Request"));
        }
    };
    let result = DirectSession::with(&sm, |d| {
        let end_s = d.duration_ns as f64 / 1e9;
        if let Some(n) = npt {
            if let Some(start) = n.start {
                if start >= end_s {
                    gst::info!(
                        CAT,
                        "PLAY: 457: Range starts at {start} s, the end is {end_s} s"
                    );
                    return Err(Answer::plain(457, "Invalid Range"));
                }
                if n.end.is_some_and(|e| e <= start) {
                    return Err(Answer::plain(457, "Invalid Range"));
                }
            }
        }
        d.pause();
        // PLAY without Scale plays at 1 (after trick play too).
        let want = scale.unwrap_or(1.0);
        let applied = d.reader.set_scale(want);
        if applied != want {
            gst::info!(CAT, "PLAY: Scale {want} not possible, applying {applied}");
        }
        let old = std::mem::replace(&mut *d.scale.lock().unwrap(), applied);
        if old != applied {
            // Positions count on from where the old rate left it.
            let at = if old == 1.0 {
                d.out.st.lock().unwrap().position_ns(Instant::now())
            } else {
                d.reader.position_ns()
            };
            d.out.st.lock().unwrap().rebase(at.min(d.duration_ns));
        }
        if scale.is_some() {
            request.set_header(SCALE, &format!("{applied:.3}"));
        }
        if let Some(start) = npt.and_then(|n| n.start) {
            let target = ((start - NPT_SLACK_S).max(0.0) * 1e9) as u64;
            match d.reader.seek(target) {
                Ok(l) => {
                    d.out.st.lock().unwrap().rebase(l.npt_ns);
                    request.set_header(LANDED, &format!("{:.3}", l.npt_ns as f64 / 1e9));
                }
                Err(e) => {
                    gst::error!(CAT, "{}: seek: {e}", d.out.file.display());
                    return Err(Answer::plain(500, "Internal Server Error"));
                }
            }
        }
        Ok(())
    });
    if result.is_some() {
        request.remove_header("Range");
        request.remove_header("Scale");
        request.remove_header("Speed");
    }
    result.unwrap_or(Ok(()))
}

/// Finishes gst-rtsp-server's answer to a request on a direct VOD media (SETUP: the session
/// and its destination; PLAY: Range, Scale, RTP-Info).
pub(crate) fn finish_response(
    core: &Core,
    client: &gst_rtsp_server::RTSPClient,
    msg: &crate::rtsp::message::Msg,
    request: Option<&crate::rtsp::message::Msg>,
    method: u32,
    media: &RTSPMedia,
) {
    use crate::rtsp::message::{METHOD_PLAY, METHOD_SETUP};
    if msg.status() != Some(200) {
        return;
    }
    let session = RTSPContext::with_current_context(|c| c.session().cloned()).flatten();
    let Some(sm) = current_session_media()
        .or_else(|| session.as_ref().and_then(|s| session_media_of(s, media)))
    else {
        return;
    };
    match method {
        METHOD_SETUP => {
            let Some(trans) = sm.transport(0) else { return };
            let dest = match UdpDest::of_transport(media, &trans, &core.metrics.rtp_dropped) {
                Some(d) => Dest::Udp(Box::new(d)),
                None if is_interleaved(&trans) => Dest::Tcp(Transport(trans)),
                None => {
                    gst::warning!(CAT, "direct VOD session without a unicast destination");
                    return;
                }
            };
            let mut dest = Some(dest);
            let known = DirectSession::with(&sm, |d| {
                // A SETUP again in the session: the new destination.
                let mut st = d.out.st.lock().unwrap();
                st.dest = dest.take().unwrap_or(Dest::None);
                st.ssrc
            });
            let ssrc = match known {
                Some(s) => s,
                None => {
                    let Some(file) = media
                        .downcast_ref::<DirectMedia>()
                        .and_then(|m| m.imp().file.get().cloned())
                    else {
                        return;
                    };
                    let d = match DirectSession::open(
                        core.vod_pacer(),
                        &file,
                        dest.take().unwrap_or(Dest::None),
                    ) {
                        Ok(d) => d,
                        Err(e) => {
                            gst::error!(CAT, "SETUP: {e}");
                            msg.reset_response(500, "Internal Server Error", request);
                            return;
                        }
                    };
                    let ssrc = d.out.st.lock().unwrap().ssrc;
                    if let (Some(session), Some(pool)) = (session.as_ref(), client.session_pool()) {
                        let (ws, wp) = (session.downgrade(), pool.downgrade());
                        *d.out.fatal.lock().unwrap() = Some(Box::new(move || {
                            if let (Some(s), Some(p)) = (ws.upgrade(), wp.upgrade()) {
                                gst::info!(
                                    CAT,
                                    "ending session {} after a read error",
                                    s.sessionid().unwrap_or_default()
                                );
                                let _ = p.remove(&s);
                            }
                        }));
                    }
                    gst::info!(CAT, "direct reader of {} (ssrc {ssrc:08x})", file.display());
                    d.attach(&sm);
                    ssrc
                }
            };
            if let Some(t) = msg.header("Transport") {
                msg.set_header("Transport", &crate::rtsp::client::with_ssrc(&t, ssrc));
            }
        }
        METHOD_PLAY => {
            let Some(request) = request else { return };
            DirectSession::with(&sm, |d| {
                let pos = d.position_ns();
                let (seq, rtptime, end) = {
                    let mut st = d.out.st.lock().unwrap();
                    st.running = true;
                    (st.seq, st.rtp_time(Instant::now()), d.duration_ns)
                };
                let start = request
                    .header(LANDED)
                    .and_then(|v| v.parse::<f64>().ok())
                    .unwrap_or(pos as f64 / 1e9);
                msg.set_header("Range", &format!("npt={start:.3}-{:.3}", end as f64 / 1e9));
                let info = msg.header("RTP-Info").unwrap_or_else(|| {
                    let url = RTSPContext::with_current_context(|c| {
                        c.uri().map(|u| u.request_uri().to_string())
                    })
                    .flatten()
                    .unwrap_or_default();
                    format!("url={}/stream=0", url.trim_end_matches('/'))
                });
                msg.set_header(
                    "RTP-Info",
                    &crate::relay::rtsp_direct::rtp_info(&info, seq, rtptime),
                );
                match request.header(SCALE) {
                    Some(s) => msg.set_header("Scale", &s),
                    None => msg.remove_header("Scale"),
                }
                msg.remove_header("Speed");
                d.start_pending.store(true, Ordering::SeqCst);
                gst::debug!(
                    CAT,
                    "{}: PLAY at {start:.3} s, seq {seq}, rtptime {rtptime}",
                    d.out.file.display()
                );
            });
        }
        // PAUSE: [`pause_session`] (called for every VOD PAUSE).
        _ => {}
    }
}

/// A PAUSE answered 200 (gst-rtsp-server names no media in its context then): every direct
/// session media of the request's session stops where it is.
pub(crate) fn pause_session(msg: &crate::rtsp::message::Msg) {
    if msg.status() != Some(200) {
        return;
    }
    let Some(session) = RTSPContext::with_current_context(|c| c.session().cloned()).flatten()
    else {
        return;
    };
    session.filter(Some(&mut |_, sm| {
        DirectSession::with(sm, |d| {
            d.pause();
            gst::debug!(
                CAT,
                "{}: PAUSE at {:.3} s",
                d.out.file.display(),
                d.position_ns() as f64 / 1e9
            );
        });
        gst_rtsp_server::RTSPFilterResult::Keep
    }));
}

/// `play-request` (the PLAY answer is queued): a direct session answered 200 starts sending.
pub fn play_request() {
    let Some(sm) = current_session_media() else {
        return;
    };
    DirectSession::with(&sm, |d| {
        if d.start_pending.swap(false, Ordering::SeqCst) {
            d.reader.play();
        }
    });
}

/// The count of RTP bytes a direct session sent (for its bitrate), `None` off the direct path.
pub fn sent_counter(sm: &RTSPSessionMedia) -> Option<Arc<AtomicU64>> {
    DirectSession::with(sm, |d| d.out.sent.clone())
}

fn is_interleaved(trans: &RTSPStreamTransport) -> bool {
    // SAFETY: the transport struct belongs to `trans`, which we hold.
    unsafe {
        let t =
            gst_rtsp_server::ffi::gst_rtsp_stream_transport_get_transport(trans.to_glib_none().0);
        !t.is_null() && (*t).lower_transport == gst_rtsp::ffi::GST_RTSP_LOWER_TRANS_TCP
    }
}

pub mod media_imp {
    use super::*;

    /// The shared media of a TS file on the direct path: its SDP's range is the file's (by its
    /// PCRs), from 0.
    #[derive(Default)]
    pub struct DirectMedia {
        pub file: OnceLock<PathBuf>,
        pub duration_ns: OnceLock<u64>,
    }

    #[glib::object_subclass]
    impl ObjectSubclass for DirectMedia {
        const NAME: &'static str = "Dvb2IpVodDirectMedia";
        type Type = super::DirectMedia;
        type ParentType = gst_rtsp_server::RTSPMedia;
    }

    impl ObjectImpl for DirectMedia {}

    impl RTSPMediaImpl for DirectMedia {
        fn setup_sdp(
            &self,
            sdp: &mut gst_rtsp_server::gst_sdp::SDPMessageRef,
            info: &gst_rtsp_server::subclass::SDPInfo,
        ) -> Result<(), gst::LoggableError> {
            self.parent_setup_sdp(sdp, info)?;
            let Some(d) = self.duration_ns.get() else {
                return Ok(());
            };
            let value = format!("npt=0-{:.3}", *d as f64 / 1e9);
            let idx = (0..sdp.attributes_len())
                .find(|&i| sdp.attribute(i).is_some_and(|a| a.key() == "range"));
            let attr = gst_rtsp_server::gst_sdp::SDPAttribute::new("range", Some(&value));
            match idx {
                Some(i) => {
                    let _ = sdp.replace_attribute(i, attr);
                }
                None => sdp.add_attribute("range", Some(&value)),
            }
            // The media-level range gst-rtsp-server may have written too.
            for m in 0..sdp.medias_len() {
                if let Some(media) = sdp.media_mut(m) {
                    let idx = (0..media.attributes_len())
                        .find(|&i| media.attribute(i).is_some_and(|a| a.key() == "range"));
                    if let Some(i) = idx {
                        let attr =
                            gst_rtsp_server::gst_sdp::SDPAttribute::new("range", Some(&value));
                        let _ = media.replace_attribute(i, attr);
                    }
                }
            }
            Ok(())
        }
    }
}

glib::wrapper! {
    /// The shared media of a TS file on the direct path (see [`media_imp::DirectMedia`]).
    pub struct DirectMedia(ObjectSubclass<media_imp::DirectMedia>) @extends gst_rtsp_server::RTSPMedia;
}

mod imp {
    use super::*;

    #[derive(Default)]
    pub struct DirectFactory {
        pub file: OnceLock<PathBuf>,
    }

    #[glib::object_subclass]
    impl ObjectSubclass for DirectFactory {
        const NAME: &'static str = "Dvb2IpVodDirectFactory";
        type Type = super::DirectFactory;
        type ParentType = gst_rtsp_server::RTSPMediaFactory;
    }

    impl ObjectImpl for DirectFactory {
        fn constructed(&self) {
            self.parent_constructed();
            let f = self.obj();
            crate::rtsp::factory::configure_satip_factory(
                f.upcast_ref(),
                true,
                gst_rtsp::RTSPLowerTrans::UDP | gst_rtsp::RTSPLowerTrans::TCP,
            );
            f.set_eos_shutdown(false);
            f.set_transport_mode(gst_rtsp_server::RTSPTransportMode::PLAY);
            f.set_media_gtype(super::DirectMedia::static_type());
        }
    }

    impl RTSPMediaFactoryImpl for DirectFactory {
        /// One media for the file (the factory is the file's), whatever the URL's spelling.
        fn gen_key(&self, _url: &gst_rtsp::RTSPUrl) -> Option<glib::GString> {
            Some("vod-direct".into())
        }

        fn create_element(&self, _url: &gst_rtsp::RTSPUrl) -> Option<gst::Element> {
            let bin = gst::Bin::builder().name("vod-direct").build();
            bin.add(&crate::rtsp::pay::idle_pay0()).ok()?;
            Some(bin.upcast())
        }

        fn media_configure(&self, media: &RTSPMedia) {
            self.parent_media_configure(media);
            if let (Some(m), Some(file)) = (media.downcast_ref::<DirectMedia>(), self.file.get()) {
                let _ = m.imp().file.set(file.clone());
                match TsFile::open(file) {
                    Ok(ts) => {
                        let _ = m.imp().duration_ns.set(ts.info.duration_ns());
                    }
                    Err(e) => gst::warning!(CAT, "{}: {e}", file.display()),
                }
            }
            media.connect_prepared(|media| {
                crate::rtsp::factory::quiet_rtcp(media);
                if !crate::rtsp::factory::drop_rtp_output(media) {
                    gst::warning!(CAT, "direct VOD media: no rtpbin send pad to quiet");
                }
            });
        }
    }
}

glib::wrapper! {
    /// The factory mounted at a TS file's path on the direct path: one shared media.
    pub struct DirectFactory(ObjectSubclass<imp::DirectFactory>) @extends gst_rtsp_server::RTSPMediaFactory;
}

impl DirectFactory {
    pub fn new(file: PathBuf) -> Self {
        let f: Self = glib::Object::new();
        let _ = f.imp().file.set(file);
        f
    }
}
