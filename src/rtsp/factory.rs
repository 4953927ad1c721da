//! The SAT>IP media factory: one media per stream (multicast, RTP over RTSP, a stream a
//! DESCRIBE defined), `satipmapsrc ! appsink` feeding our own RTP/MP2T packetizer
//! (`appsrc name=pay0`, PT 33, 7×188 bytes, empty packets when idle), with the RTCP APP `SES1`
//! status packet appended to every compound RTCP packet. The packetizer also serves the
//! pipeline-less unicast streams of [`super::direct`].

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gst::glib;
use gst::prelude::*;
use gst_rtsp_server::gst_rtsp;
use gst_rtsp_server::prelude::*;
use gst_rtsp_server::subclass::prelude::*;
use gstdvb2ip::proto::rtp::{
    ntp_timestamp, push_sdes_cname, push_sender_report, rtp_header, RTP_HEADER_LEN,
};
use gstdvb2ip::proto::satip::{encode_rtcp_app_ses1, parse_query, StreamSpec};

use super::streams::{key_of_element, Backend, Entry, Route, MAX_PIDS, STREAMS};
use super::udp::UdpDest;
use super::CAT;

/// RTCP report interval asked from rtpbin: SAT>IP wants ~5 reports per second.
const RTCP_INTERVAL_NS: u64 = 130_000_000;

mod imp {
    use super::*;

    #[derive(Default)]
    pub struct SatipFactory {}

    #[glib::object_subclass]
    impl ObjectSubclass for SatipFactory {
        const NAME: &'static str = "Dvb2IpSatipFactory";
        type Type = super::SatipFactory;
        type ParentType = gst_rtsp_server::RTSPMediaFactory;
    }

    impl ObjectImpl for SatipFactory {
        fn constructed(&self) {
            self.parent_constructed();
            let f = self.obj();
            // Each SAT>IP stream is its own media; frontends are shared by the tuner pool.
            super::configure_satip_factory(
                f.upcast_ref(),
                false,
                gst_rtsp::RTSPLowerTrans::UDP | gst_rtsp::RTSPLowerTrans::TCP,
            );
        }
    }

    impl RTSPMediaFactoryImpl for SatipFactory {
        fn create_element(&self, url: &gst_rtsp::RTSPUrl) -> Option<gst::Element> {
            let uri = url.request_uri();
            let Route::Satip(Ok(target)) = super::super::streams::route(&uri) else {
                return None;
            };
            let (request, stream_id, joined) = match target.stream {
                None if target.has_query => {
                    let spec = StreamSpec::create(&target.query, MAX_PIDS).ok()?;
                    let id = STREAMS.lock().unwrap().allocate_id();
                    (spec.canonical_query(), id, false)
                }
                Some(n) => {
                    let mut st = STREAMS.lock().unwrap();
                    let spec = st.owner_entry(n)?.spec()?;
                    (spec.canonical_query(), n, true)
                }
                None => return None,
            };
            let src = gst::ElementFactory::make("satipmapsrc")
                .name("satip")
                .property("request", &request)
                .build()
                .ok()?;
            let (tsink, pay) = packetizer(&src);
            let key = STREAMS.lock().unwrap().insert(Entry {
                stream_id,
                joined,
                backend: Backend::Media {
                    src: src.downgrade(),
                    media: glib::WeakRef::new(),
                },
                owner: None,
                playing: false,
            });
            let bin = gst::Bin::builder().name(format!("satip-{key}")).build();
            bin.add_many([&src, tsink.upcast_ref(), pay.upcast_ref()])
                .ok()?;
            src.link(&tsink).ok()?;
            gst::info!(
                CAT,
                "stream {stream_id}{}: {request}",
                if joined { " (joined)" } else { "" }
            );
            Some(bin.upcast())
        }

        fn media_configure(&self, media: &gst_rtsp_server::RTSPMedia) {
            self.parent_media_configure(media);
            // A media that cannot be prepared answers 503 with its real reason.
            crate::rtsp::client::record_media_errors(media);
            let element = media.element();
            let Some(key) = key_of_element(&element.name()) else {
                return;
            };
            if let Some(Backend::Media { media: m, .. }) = STREAMS
                .lock()
                .unwrap()
                .entries
                .get_mut(&key)
                .map(|e| &mut e.backend)
            {
                m.set(Some(media));
            }
            media.connect_unprepared(move |m| {
                end_direct(m);
                STREAMS.lock().unwrap().entries.remove(&key);
            });
            media.connect_prepared(hook_rtcp);
        }
    }
}

/// Makes every RTCP compound of `media` carry the APP `SES1` status packet and sets the report
/// interval. Idempotent; called when the media is prepared and again when a SETUP succeeds
/// (the `prepared` signal can come after the first RTCP report).
pub fn hook_rtcp(media: &gst_rtsp_server::RTSPMedia) {
    let src = media
        .element()
        .downcast_ref::<gst::Bin>()
        .and_then(|b| b.by_name("satip"));
    let Some(src) = src else { return };
    for i in 0..media.n_streams() {
        let Some(sess) = media.stream(i).and_then(|s| s.rtpsession()) else {
            continue;
        };
        // SAFETY: the key is only ever used with a `bool`.
        unsafe {
            if sess.data::<bool>("dvb2ip-ses1").is_some() {
                continue;
            }
            sess.set_data("dvb2ip-ses1", true);
        }
        gst::debug!(CAT, "hooking RTCP of stream {i}");
        let src_weak = src.downgrade();
        sess.connect("on-sending-rtcp", false, move |args| {
            gst::trace!(CAT, "on-sending-rtcp");
            if let Some(src) = src_weak.upgrade() {
                let status: String = src.property("status");
                // SAFETY: arg 1 is the GstBuffer being built (boxed, not ref'd by us, so
                // still writable).
                unsafe { append_app(&args[1], &status) };
            }
            Some(false.to_value())
        });
        // After connecting: changing the interval wakes the RTCP thread, which may send at once.
        set_rtcp_interval(&sess, RTCP_INTERVAL_NS);
    }
}

/// Sets rtpbin's RTCP interval of an RTP session (where the property exists).
fn set_rtcp_interval(sess: &glib::Object, ns: u64) {
    if sess.find_property("rtcp-min-interval").is_some() {
        sess.set_property("rtcp-min-interval", ns);
    }
}

/// Quiets rtpbin's own RTCP on every stream of `media`: the packer sends RTCP itself.
pub(super) fn quiet_rtcp(media: &gst_rtsp_server::RTSPMedia) {
    for i in 0..media.n_streams() {
        if let Some(sess) = media.stream(i).and_then(|s| s.rtpsession()) {
            set_rtcp_interval(&sess, RTCP_QUIET_NS);
        }
    }
}

/// The settings every SAT>IP media factory shares: no stop on disconnect, no latency, no
/// suspend, AVP; `shared` and the lower transports differ.
pub(super) fn configure_satip_factory(
    f: &gst_rtsp_server::RTSPMediaFactory,
    shared: bool,
    protocols: gst_rtsp::RTSPLowerTrans,
) {
    f.set_shared(shared);
    f.set_stop_on_disconnect(false);
    f.set_latency(0);
    f.set_suspend_mode(gst_rtsp_server::RTSPSuspendMode::None);
    f.set_profiles(gst_rtsp::RTSPProfile::AVP);
    f.set_protocols(protocols);
}

pub(super) mod pay_imp {
    use super::*;

    /// `pay0` for gst-rtsp-server: a bin around the packetizer's appsrc that also answers
    /// the `pt` property gst-rtsp-server reads from payloaders.
    #[derive(Default)]
    pub struct SatipPay {
        pub(super) packer: std::sync::OnceLock<Arc<Mutex<super::Packer>>>,
    }

    #[glib::object_subclass]
    impl ObjectSubclass for SatipPay {
        const NAME: &'static str = "Dvb2IpSatipPay";
        type Type = super::SatipPay;
        type ParentType = gst::Bin;
    }

    impl ObjectImpl for SatipPay {
        fn properties() -> &'static [glib::ParamSpec] {
            static PROPS: once_cell::sync::Lazy<Vec<glib::ParamSpec>> =
                once_cell::sync::Lazy::new(|| {
                    vec![
                        glib::ParamSpecUInt::builder("pt")
                            .nick("Payload type")
                            .blurb("RTP payload type of the SAT>IP stream (always 33, MP2T)")
                            .minimum(33)
                            .maximum(33)
                            .default_value(33)
                            .read_only()
                            .build(),
                        // Read by gst-rtsp-server for RTP-Info when no buffer waits at its
                        // block (a later PLAY).
                        glib::ParamSpecUInt::builder("seqnum")
                            .nick("Sequence number")
                            .blurb("Sequence number of the next RTP packet")
                            .maximum(u32::from(u16::MAX))
                            .read_only()
                            .build(),
                        glib::ParamSpecUInt::builder("timestamp")
                            .nick("Timestamp")
                            .blurb("RTP timestamp of the next RTP packet")
                            .read_only()
                            .build(),
                    ]
                });
            PROPS.as_ref()
        }

        fn property(&self, _id: usize, pspec: &glib::ParamSpec) -> glib::Value {
            let info = || {
                self.packer
                    .get()
                    .map(|p| p.lock().unwrap().rtp_info())
                    .unwrap_or_default()
            };
            match pspec.name() {
                "seqnum" => u32::from(info().0).to_value(),
                "timestamp" => info().1.to_value(),
                _ => 33u32.to_value(),
            }
        }
    }

    impl GstObjectImpl for SatipPay {}
    impl ElementImpl for SatipPay {}
    impl BinImpl for SatipPay {}
}

glib::wrapper! {
    /// `pay0` of the SAT>IP media.
    pub struct SatipPay(ObjectSubclass<pay_imp::SatipPay>) @extends gst::Bin, gst::Element, gst::Object;
}

/// TS packets per RTP packet (§5).
const TS_PER_RTP: usize = 7;
/// An empty RTP packet goes out after this long without any packet (§5, checklist 89).
const IDLE_EMPTY: Duration = Duration::from_millis(100);
/// A partly filled RTP packet goes out after this long (low-rate PID sets).
const PARTIAL_FLUSH: Duration = Duration::from_millis(20);
/// Bytes the `pay0` appsrc may queue (oldest dropped first): 100 ms of a 20 Mbit/s mux.
const PAY_QUEUE_BYTES: u64 = 256 * 1024;
/// RTCP compound interval on the direct path: 5 per second (checklist 95).
const RTCP_EVERY: Duration = Duration::from_millis(200);

/// RTP/MP2T packetizer of one stream: sequence numbers run on across retunes and PID
/// changes, and empty RTP packets fill silences (no signal, `pids=none`), which also lets
/// gst-rtsp-server prepare a media whose frontend has no signal.
///
/// Packets go to the `pay0` appsrc (gst-rtsp-server's path: TCP-interleaved, multicast,
/// and every stream before it plays), or, for a playing unicast UDP stream, straight to the
/// client through [`UdpDest`] with RTCP built here.
pub(super) struct Packer {
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
}

/// Reads a stream's status string.
pub(super) type StatusFn = Arc<dyn Fn() -> Option<String> + Send + Sync>;

impl Packer {
    fn new(appsrc: &gst_app::AppSrc, src: &gst::Element) -> Self {
        let src = src.downgrade();
        Self::with_status(
            appsrc.downgrade(),
            Arc::new(move || src.upgrade().map(|s| s.property::<String>("status"))),
        )
    }

    /// A packer without `pay0`: its stream only ever goes the direct path.
    pub(super) fn detached() -> Self {
        Self::with_status(glib::WeakRef::new(), Arc::new(|| None))
    }

    pub(super) fn set_status_fn(&mut self, status: StatusFn) {
        self.status = status;
    }

    /// Sequence number and RTP timestamp the next packet will carry (RTP-Info of PLAY).
    pub(super) fn rtp_info(&self) -> (u16, u32) {
        (self.seq, self.rtp_time(Instant::now()))
    }

    pub(super) fn ssrc(&self) -> u32 {
        self.ssrc
    }

    /// At PLAY: sends the tuner data kept since SETUP at once, the remainder as a partly
    /// filled packet, or an empty packet when nothing was kept (a low-rate PID set between two
    /// chunks, no signal), so the client sees the stream start without waiting for the next
    /// chunk or flush (direct path, playing).
    pub(super) fn flush_kept(&mut self) {
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

    pub(super) fn is_playing(&self) -> bool {
        self.playing
    }

    pub(super) fn set_playing(&mut self) {
        self.playing = true;
    }

    /// A tuner buffer for a stream that may be on the direct path: sent when playing (after
    /// the newest one kept since SETUP), kept when not yet. `false` when the stream is not on
    /// the direct path (the buffer is not consumed).
    pub(super) fn feed(&mut self, buf: &gst::Buffer, keep_before_setup: bool) -> bool {
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
        const PAYLOAD: usize = TS_PER_RTP * 188;
        let Ok(map) = buf.map_readable() else { return };
        let mut rest = map.as_slice();
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
        let unix = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        let mut out = Vec::with_capacity(256);
        push_sender_report(
            &mut out,
            self.ssrc,
            ntp_timestamp(unix.as_nanos()),
            self.rtp_time(now),
            self.packets,
            self.octets,
        );
        push_sdes_cname(
            &mut out,
            self.ssrc,
            &format!("dvb2ip@{}", local_cname_host(d)),
        );
        out.extend_from_slice(&encode_rtcp_app_ses1(self.ssrc, status));
        d.send_rtcp(&out);
        self.last_rtcp = now;
    }

    /// Switches to (or off) the direct path; pending full packets stay in order.
    pub(super) fn set_direct(&mut self, direct: Option<UdpDest>) {
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

/// Every live packer, for the one timer thread that flushes partial packets, sends empty
/// packets in silences and RTCP on the direct path.
static PACKERS: Mutex<Vec<std::sync::Weak<Mutex<Packer>>>> = Mutex::new(Vec::new());

pub(super) fn register(packer: &Arc<Mutex<Packer>>) {
    static TIMER: std::sync::Once = std::sync::Once::new();
    PACKERS.lock().unwrap().push(Arc::downgrade(packer));
    TIMER.call_once(|| {
        std::thread::Builder::new()
            .name("satip-timer".into())
            .spawn(timer_loop)
            .expect("spawn the SAT>IP timer thread");
    });
}

fn timer_loop() {
    loop {
        std::thread::sleep(PARTIAL_FLUSH / 2);
        let live: Vec<Arc<Mutex<Packer>>> = {
            let mut all = PACKERS.lock().unwrap();
            all.retain(|w| w.strong_count() > 0);
            all.iter().filter_map(|w| w.upgrade()).collect()
        };
        for packer in live {
            // The status string is read before locking: a property read must not wait on us.
            let (status, rtcp_due) = {
                let p = packer.lock().unwrap();
                let due = p.direct.is_some() && p.playing && p.last_rtcp.elapsed() >= RTCP_EVERY;
                (p.status.clone(), due)
            };
            let status = rtcp_due.then(|| status()).flatten();
            let mut p = packer.lock().unwrap();
            if !p.playing {
                p.prime_pay0();
                continue;
            }
            if p.direct.is_none() && p.appsrc.upgrade().is_none() {
                continue;
            }
            let idle = p.last_push.elapsed();
            if !p.pending.is_empty() && idle >= PARTIAL_FLUSH {
                p.flush_partial();
            } else if idle >= IDLE_EMPTY {
                p.emit(&[]);
            }
            if let Some(status) = status {
                p.send_rtcp(&status);
            }
        }
    }
}

/// `appsink name=tsink` (TS in) and `pay0` (a [`SatipPay`] bin around the RTP appsrc) around
/// one [`Packer`], registered with the timer thread.
fn packetizer(src: &gst::Element) -> (gst_app::AppSink, SatipPay) {
    let caps = rtp_caps();
    // gst-rtsp-server blocks the stream between SETUP and PLAY; only the newest data needs
    // to wait there, and a playing stream drains at once.
    let pay = gstdvb2ip::live_appsrc("rtpsrc", &caps, PAY_QUEUE_BYTES);
    let tsink = gst_app::AppSink::builder()
        .name("tsink")
        .sync(false)
        .async_(false)
        .build();
    let packer = Arc::new(Mutex::new(Packer::new(&pay, src)));
    let p = packer.clone();
    tsink.set_callbacks(
        gst_app::AppSinkCallbacks::builder()
            .new_sample(move |sink| {
                let sample = sink.pull_sample().map_err(|_| gst::FlowError::Flushing)?;
                if let Some(buf) = sample.buffer() {
                    let mut p = p.lock().unwrap();
                    // On the direct path the tuner's tap delivers; before PLAY nothing is sent.
                    if p.direct.is_none() && p.playing {
                        p.take(buf);
                    }
                }
                Ok(gst::FlowSuccess::Ok)
            })
            .build(),
    );
    // A direct stream's RTP never goes through gst-rtsp-server: what pay0 still holds from
    // before SETUP is dropped. What passes is noted (see `ProbeState`).
    let probe = packer.lock().unwrap().probe.clone();
    pay.static_pad("src").expect("appsrc src").add_probe(
        gst::PadProbeType::BUFFER,
        move |_, info| {
            if probe.direct.load(Ordering::SeqCst) {
                return gst::PadProbeReturn::Drop;
            }
            if let Some(gst::PadProbeData::Buffer(b)) = &info.data {
                let mut seq = [0u8; 2];
                if b.copy_to_slice(2, &mut seq).is_ok() {
                    probe
                        .passed_seq
                        .store(u32::from(u16::from_be_bytes(seq)), Ordering::SeqCst);
                }
            }
            gst::PadProbeReturn::Ok
        },
    );
    register(&packer);
    let bin: SatipPay = glib::Object::builder().property("name", "pay0").build();
    bin.add(&pay).expect("add appsrc");
    let ghost =
        gst::GhostPad::with_target(&pay.static_pad("src").expect("appsrc src")).expect("ghost pad");
    bin.add_pad(&ghost).expect("add ghost pad");
    let _ = bin.imp().packer.set(packer);
    (tsink, bin)
}

/// Caps of the SAT>IP RTP stream.
fn rtp_caps() -> gst::Caps {
    gst::Caps::builder("application/x-rtp")
        .field("media", "video")
        .field("clock-rate", 90000i32)
        .field("encoding-name", "MP2T")
        .field("payload", 33i32)
        .build()
}

/// `pay0` of the shared unicast media: one empty RTP packet, so gst-rtsp-server can prepare
/// the media, then nothing (the streams' packets go the direct path).
pub(super) fn idle_pay0() -> SatipPay {
    let pay = gstdvb2ip::live_appsrc("rtpsrc", &rtp_caps(), 4096);
    let primed = AtomicBool::new(false);
    pay.set_callbacks(
        gst_app::AppSrcCallbacks::builder()
            .need_data(move |src, _| {
                if !primed.swap(true, Ordering::SeqCst) {
                    let _ =
                        src.push_buffer(gst::Buffer::from_mut_slice(rtp_header(0, 0, 0).to_vec()));
                }
            })
            .build(),
    );
    let bin: SatipPay = glib::Object::builder().property("name", "pay0").build();
    bin.add(&pay).expect("add appsrc");
    let ghost =
        gst::GhostPad::with_target(&pay.static_pad("src").expect("appsrc src")).expect("ghost pad");
    bin.add_pad(&ghost).expect("add ghost pad");
    bin
}

/// The packer of a SAT>IP media.
fn packer_of(media: &gst_rtsp_server::RTSPMedia) -> Option<Arc<Mutex<Packer>>> {
    media
        .element()
        .downcast_ref::<gst::Bin>()
        .and_then(|b| b.by_name("pay0"))
        .and_then(|e| e.downcast::<SatipPay>().ok())
        .and_then(|pay| pay.imp().packer.get().cloned())
}

/// The `dvbtunersrc` inside the media's `satipmapsrc`.
fn tuner_of(media: &gst_rtsp_server::RTSPMedia) -> Option<gstdvb2ip::dvbtunersrc::DvbTunerSrc> {
    media
        .element()
        .downcast_ref::<gst::Bin>()
        .and_then(|b| b.by_name("satip"))
        .and_then(|s| s.downcast::<gst::Bin>().ok())
        .and_then(|s| s.by_name("tuner"))
        .and_then(|t| t.downcast::<gstdvb2ip::dvbtunersrc::DvbTunerSrc>().ok())
}

/// After a successful SETUP: a unicast UDP stream moves to the direct path. From now on the
/// tuner hands its buffers to the packer in the feed's thread (no appsrc, no thread hop per
/// stream), nothing enters gst-rtsp-server's RTP path, and rtpbin's own RTCP is quieted (the
/// packer sends SR + SDES + APP itself). Nothing reaches the client before [`play_done`].
/// TCP-interleaved and multicast streams stay on gst-rtsp-server's path.
pub fn setup_done(
    media: &gst_rtsp_server::RTSPMedia,
    transport: &gst_rtsp_server::RTSPStreamTransport,
) {
    let Some(packer) = packer_of(media) else {
        return;
    };
    let Some(dest) = UdpDest::of_transport(media, transport) else {
        return;
    };
    packer.lock().unwrap().set_direct(Some(dest));
    match tuner_of(media) {
        Some(tuner) => {
            let packer = Arc::downgrade(&packer);
            tuner.set_tap(Some(Arc::new(move |buf: &gst::Buffer| {
                packer
                    .upgrade()
                    .is_some_and(|p| p.lock().unwrap().feed(buf, false))
            })));
        }
        None => gst::warning!(CAT, "no tuner in the SAT>IP media: its RTP stays silent"),
    }
    quiet_rtcp(media);
}

/// After a successful PLAY: the stream starts sending. A direct stream's packets leave from the
/// feed's thread only (the next tuner buffer, preceded by the newest one kept since SETUP):
/// sends of one stream from two threads can overtake each other on the way to the client.
pub fn play_done(media: &gst_rtsp_server::RTSPMedia) {
    if let Some(packer) = packer_of(media) {
        packer.lock().unwrap().playing = true;
    }
}

/// The media is going away: stop the direct path.
fn end_direct(media: &gst_rtsp_server::RTSPMedia) {
    if let Some(tuner) = tuner_of(media) {
        tuner.set_tap(None);
    }
    if let Some(packer) = packer_of(media) {
        packer.lock().unwrap().set_direct(None);
    }
}

/// See [`Packer::probe`].
struct ProbeState {
    direct: AtomicBool,
    passed_seq: AtomicU32,
}

const NO_SEQ: u32 = u32::MAX;

/// rtpbin's RTCP interval while the packer sends RTCP itself: effectively never.
const RTCP_QUIET_NS: u64 = 24 * 3600 * 1_000_000_000;

/// Appends the SAT>IP APP `SES1` packet to the compound RTCP buffer in `value`.
///
/// # Safety
/// `value` must hold the `GstBuffer*` of rtpsession's `on-sending-rtcp` signal.
unsafe fn append_app(value: &glib::Value, status: &str) {
    use glib::translate::ToGlibPtr;
    let gvalue: *const glib::gobject_ffi::GValue = value.to_glib_none().0;
    let buf = glib::gobject_ffi::g_value_get_boxed(gvalue) as *mut gst::ffi::GstBuffer;
    if buf.is_null() {
        return;
    }
    let mut rtcp: gst_rtp::ffi::GstRTCPBuffer = std::mem::zeroed();
    if gst_rtp::ffi::gst_rtcp_buffer_map(buf, gst::ffi::GST_MAP_READWRITE, &mut rtcp) == 0 {
        gst::warning!(CAT, "cannot map the RTCP buffer to add APP SES1");
        return;
    }
    // SSRC of the first packet (SR or RR) of the compound.
    let ssrc = if rtcp.map.size >= 8 {
        let d = std::slice::from_raw_parts(rtcp.map.data, 8);
        u32::from_be_bytes([d[4], d[5], d[6], d[7]])
    } else {
        0
    };
    let app = encode_rtcp_app_ses1(ssrc, status);
    let mut packet: gst_rtp::ffi::GstRTCPPacket = std::mem::zeroed();
    if gst_rtp::ffi::gst_rtcp_buffer_add_packet(
        &mut rtcp,
        gst_rtp::ffi::GST_RTCP_TYPE_APP,
        &mut packet,
    ) != 0
    {
        gst::trace!(CAT, "adding APP SES1 ({} bytes)", app.len());
        gst_rtp::ffi::gst_rtcp_packet_app_set_subtype(&mut packet, 0);
        gst_rtp::ffi::gst_rtcp_packet_app_set_ssrc(&mut packet, ssrc);
        gst_rtp::ffi::gst_rtcp_packet_app_set_name(&mut packet, c"SES1".as_ptr());
        let data = &app[12..];
        if gst_rtp::ffi::gst_rtcp_packet_app_set_data_length(&mut packet, (data.len() / 4) as u16)
            != 0
        {
            let dst = gst_rtp::ffi::gst_rtcp_packet_app_get_data(&mut packet);
            if !dst.is_null() {
                std::ptr::copy_nonoverlapping(data.as_ptr(), dst, data.len());
            }
        }
    }
    gst_rtp::ffi::gst_rtcp_buffer_unmap(&mut rtcp);
}

glib::wrapper! {
    pub struct SatipFactory(ObjectSubclass<imp::SatipFactory>) @extends gst_rtsp_server::RTSPMediaFactory;
}

impl Default for SatipFactory {
    fn default() -> Self {
        glib::Object::new()
    }
}

/// Checks a creating query as the factory will (used before a media is built).
pub fn check_new_stream(query: &str) -> Result<StreamSpec, gstdvb2ip::proto::satip::QueryError> {
    let q = parse_query(query)?;
    let spec = StreamSpec::create(&q, MAX_PIDS)?;
    spec.tuning
        .check_capabilities(&gstdvb2ip::satipmapsrc::pool_capabilities())?;
    Ok(spec)
}
