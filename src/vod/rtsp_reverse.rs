//! Reverse trick play of a VOD media (`Scale: -2`, `-4`, `-8` …): key frames only, going
//! backwards from where the media is, |Scale| media seconds per wall-clock second.
//!
//! `tsdemux` refuses negative rates (GStreamer 1.22), so reverse goes by steps for every file:
//! after the random access point the PLAY landed on (a normal seek at rate 1, answered with its
//! Range and RTP-Info), a driver thread seeks the demuxer (flushing, key unit, snap before) to
//! just before the last key frame sent and the video probe lets the last key frame at or before
//! that target through, nothing else. The flushes and segments of these seeks stop at the
//! payloaders: downstream (rtpbin, the sinks, the pipeline's running time) never sees them. Each
//! key frame sent is restamped so that its running time is the first one's plus its distance
//! back in media time divided by |Scale|: the sinks pace the sending, the RTP timestamps
//! keep growing for the client. Audio is muted. A step falls back further when seeking takes
//! longer than the pace allows.
//!
//! Reaching the start of the file ends reverse play as the end of file ends forward play: EOS
//! into every payloader (rtpbin sends RTCP BYE), the session stays with the position at the
//! start. PAUSE pauses the media as at rate 1 (the sinks hold the key frame they have or get
//! next). The driver seeks only while the media plays and once the last key frame has left
//! (the flush of a step stops at the payloaders, so a sink holding the streaming thread would
//! hold up the seek). The next PLAY stops the driver first ([`Reverse::stop`], waiting for a
//! seek in flight) and seeks to the last key frame sent; until the flush of that seek nothing
//! leaves.

use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use gst::glib;
use gst::prelude::*;

use super::rtsp::CAT;

/// Not in reverse play.
const OFF: u8 = 0;
/// A PLAY with a reverse Scale is seeking: its first key frame passes as at rate 1.
const LANDING: u8 = 1;
/// The driver steps backwards.
const STEPPING: u8 = 2;
/// Stopped: nothing leaves until the next flush.
const STOPPING: u8 = 3;

/// A step target this far before the last key frame sent, ns (its predecessor is before it).
const STEP_BACK_NS: u64 = 1_000_000;
/// How long the driver waits for a step's key frame while the media plays.
const STEP_TIMEOUT: Duration = Duration::from_secs(10);
/// Time after a key frame's running time when the sink has sent it, ns.
const RENDER_SLACK_NS: u64 = 2_000_000;
/// How long the streams have to end themselves at the start of the file.
const EOS_WAIT: Duration = Duration::from_secs(1);
/// How long a PLAY waits for a seek of the driver in flight.
const STOP_WAIT: Duration = Duration::from_secs(3);

/// What a probe does with an item.
pub enum Verdict {
    /// Not reverse play's business: the normal trick-play rules apply.
    Normal,
    /// Let it pass as it is (or as reverse play rewrote it).
    Pass,
    /// Drop it.
    Drop,
    /// Drop it and end the stream here (EOS into the pad, from its own streaming thread).
    Eos,
}

/// A payloader's sink pad as reverse play knows it.
struct PadEntry {
    video: bool,
    pad: glib::WeakRef<gst::Pad>,
    /// EOS went into it since reverse play reached the start.
    eos: Arc<AtomicBool>,
}

/// One reverse run's state (stream times and running times in ns).
#[derive(Default)]
struct Step {
    /// |Scale|.
    rate: f64,
    /// Stream time and running time of the first key frame sent.
    p0: u64,
    r0: u64,
    /// The video payloader's segment when reverse started; every key frame is restamped in it.
    seg: Option<gst::FormattedSegment<gst::ClockTime>>,
    /// Stream time of the last key frame sent.
    last: u64,
    /// Key frames sent.
    sent: u64,
    /// The target of the current step: the key frame at or before it goes next.
    target: u64,
    /// The demuxer's segment of the current step (None: data of an older step, dropped).
    step_seg: Option<gst::FormattedSegment<gst::ClockTime>>,
    /// The latest key frame at or before the target seen in this step, and its stream time.
    candidate: Option<(gst::Buffer, u64)>,
    /// The last key frame seen in this step (for the GOP).
    prev_key: Option<u64>,
    /// Distance between key frames as seen, ns (0: unknown).
    gop: u64,
    /// No key frame before the last one sent: the start of the file.
    at_start: bool,
}

/// Reverse play of one media, shared by its payloader probes and the PLAY/PAUSE handling.
#[derive(Default)]
pub struct Reverse {
    phase: AtomicU8,
    /// The driver must not start another seek.
    stop: AtomicBool,
    /// Held by the driver around each seek.
    seeking: Mutex<()>,
    step: Mutex<Step>,
    cond: Condvar,
    /// The sink pads of the media's payloaders, for the driver's seeks and EOS.
    pads: Mutex<Vec<PadEntry>>,
}

impl Reverse {
    /// Registers a payloader's sink pad; its probe passes the flag returned to
    /// [`Reverse::on_event`] and [`Reverse::on_buffer`].
    pub fn add_pad(&self, pad: &gst::Pad, video: bool) -> Arc<AtomicBool> {
        let eos = Arc::new(AtomicBool::new(false));
        self.pads.lock().unwrap().push(PadEntry {
            video,
            pad: pad.downgrade(),
            eos: eos.clone(),
        });
        eos
    }

    fn clear_eos(&self) {
        for p in self.pads.lock().unwrap().iter() {
            p.eos.store(false, Ordering::SeqCst);
        }
    }

    /// At the start of the file, the first item a pad sees after it ends its stream.
    fn at_start(&self, eos: &AtomicBool) -> Option<Verdict> {
        if !self.step.lock().unwrap().at_start {
            return None;
        }
        Some(if eos.swap(true, Ordering::SeqCst) {
            Verdict::Drop
        } else {
            Verdict::Eos
        })
    }

    fn phase(&self) -> u8 {
        self.phase.load(Ordering::SeqCst)
    }

    /// Whether a reverse run is on (or stopping).
    pub fn active(&self) -> bool {
        self.phase() != OFF
    }

    /// Stops a reverse run (waiting for a seek of the driver in flight) and returns where it
    /// was (stream time of the last key frame sent), if it was on. Nothing leaves until the next
    /// flush.
    pub fn stop(&self) -> Option<gst::ClockTime> {
        let phase = self.phase();
        if phase == OFF {
            return None;
        }
        self.stop.store(true, Ordering::SeqCst);
        self.cond.notify_all();
        let deadline = Instant::now() + STOP_WAIT;
        loop {
            match self.seeking.try_lock() {
                Ok(_) => break,
                Err(_) if Instant::now() >= deadline => {
                    gst::warning!(CAT, "reverse: a step seek is still in flight");
                    break;
                }
                Err(_) => std::thread::sleep(Duration::from_millis(5)),
            }
        }
        self.phase.store(STOPPING, Ordering::SeqCst);
        let step = self.step.lock().unwrap();
        (phase != LANDING || step.sent > 0).then(|| gst::ClockTime::from_nseconds(step.last))
    }

    /// A PLAY at `scale` (negative) is about to seek: the key frame it lands on passes, then
    /// [`drive`] steps backwards.
    pub fn begin(self: &Arc<Self>, scale: f64) {
        *self.step.lock().unwrap() = Step {
            rate: scale.abs(),
            ..Default::default()
        };
        self.stop.store(false, Ordering::SeqCst);
        self.clear_eos();
        self.phase.store(LANDING, Ordering::SeqCst);
        let me = self.clone();
        let spawned = std::thread::Builder::new()
            .name("vod-reverse".into())
            .spawn(move || me.drive());
        if spawned.is_err() {
            gst::error!(CAT, "reverse: cannot start its thread");
            self.phase.store(STOPPING, Ordering::SeqCst);
        }
    }

    /// A downstream event at a payloader's sink pad (`eos`: its flag from
    /// [`Reverse::add_pad`]).
    pub fn on_event(&self, video: bool, eos: &AtomicBool, ev: &gst::EventRef) -> Verdict {
        match self.phase() {
            STOPPING => {
                if let gst::EventView::FlushStop(_) = ev.view() {
                    // The seek of the PLAY that ended reverse play.
                    self.phase.store(OFF, Ordering::SeqCst);
                    self.clear_eos();
                }
                Verdict::Normal
            }
            STEPPING => match ev.view() {
                gst::EventView::FlushStart(_)
                | gst::EventView::FlushStop(_)
                | gst::EventView::Gap(_) => Verdict::Drop,
                // The end at the start of the file (ours) passes; the demuxer's end of file
                // does not end reverse play.
                gst::EventView::Eos(_) if self.step.lock().unwrap().at_start => {
                    eos.store(true, Ordering::SeqCst);
                    Verdict::Normal
                }
                gst::EventView::Eos(_) => Verdict::Drop,
                _ if !ev.is_sticky() || ev.type_() == gst::EventType::Segment => {
                    if let Some(v) = self.at_start(eos) {
                        return v;
                    }
                    self.step_event(video, ev)
                }
                _ => Verdict::Normal,
            },
            _ => Verdict::Normal,
        }
    }

    /// A segment (or another non-sticky event) while stepping.
    fn step_event(&self, video: bool, ev: &gst::EventRef) -> Verdict {
        match ev.view() {
            gst::EventView::Segment(s) => {
                if video {
                    let mut step = self.step.lock().unwrap();
                    step.step_seg = s.segment().downcast_ref::<gst::ClockTime>().cloned();
                    step.prev_key = None;
                    step.candidate = None;
                }
                Verdict::Drop
            }
            _ => Verdict::Normal,
        }
    }

    /// A buffer at a payloader's sink pad: `delta` when it is not a random access point,
    /// `awaiting` while the video probe waits for the key frame a seek lands on. May replace
    /// the buffer in `info` (the key frame of a step, restamped).
    pub fn on_buffer(
        &self,
        video: bool,
        eos: &AtomicBool,
        delta: bool,
        awaiting: bool,
        info: &mut gst::PadProbeInfo,
    ) -> Verdict {
        match self.phase() {
            OFF => Verdict::Normal,
            LANDING if video && awaiting => Verdict::Normal,
            STEPPING => match self.at_start(eos) {
                Some(v) => v,
                None if video => self.step_buffer(delta, info),
                None => Verdict::Drop,
            },
            _ => Verdict::Drop,
        }
    }

    /// The key frame a reverse PLAY's seek landed on passed at `pts` (stream time
    /// `stream_time`) in the video payloader's segment `seg`: stepping starts. A segment end is
    /// removed (the restamped key frames go beyond it) by a segment event into `pad`.
    pub fn landed(
        &self,
        pad: &gst::Pad,
        seg: Option<gst::FormattedSegment<gst::ClockTime>>,
        stream_time: Option<gst::ClockTime>,
        pts: Option<gst::ClockTime>,
    ) {
        if self.phase() != LANDING {
            return;
        }
        let (Some(mut seg), Some(p0), Some(pts)) = (seg, stream_time, pts) else {
            gst::warning!(
                CAT,
                "reverse: the key frame has no time, reverse play stops"
            );
            self.phase.store(STOPPING, Ordering::SeqCst);
            return;
        };
        if seg.stop().is_some() {
            seg.set_stop(gst::ClockTime::NONE);
            let _ = pad.send_event(gst::event::Segment::new(&seg));
        }
        let Some(r0) = seg.to_running_time(pts) else {
            self.phase.store(STOPPING, Ordering::SeqCst);
            return;
        };
        {
            let mut step = self.step.lock().unwrap();
            step.p0 = p0.nseconds();
            step.r0 = r0.nseconds();
            step.last = p0.nseconds();
            step.sent = 1;
            step.seg = Some(seg);
        }
        gst::debug!(
            CAT,
            "reverse: from the key frame at {p0} (running time {r0})"
        );
        self.phase.store(STEPPING, Ordering::SeqCst);
        self.cond.notify_all();
    }

    /// A video buffer while stepping: the last key frame at or before the step's target goes,
    /// restamped; nothing else.
    fn step_buffer(&self, delta: bool, info: &mut gst::PadProbeInfo) -> Verdict {
        let mut step = self.step.lock().unwrap();
        if step.at_start {
            return Verdict::Drop;
        }
        let Some(gst::PadProbeData::Buffer(b)) = &info.data else {
            return Verdict::Drop;
        };
        let Some(s) = step
            .step_seg
            .as_ref()
            .zip(b.pts())
            .and_then(|(seg, pts)| seg.to_stream_time(pts))
            .map(|s| s.nseconds())
        else {
            return Verdict::Drop;
        };
        let target = step.target;
        let chosen = if !delta && s <= target {
            if let Some(gop) = step.prev_key.filter(|&p| s > p).map(|p| s - p) {
                step.gop = gop;
            }
            step.prev_key = Some(s);
            if step.gop > 0 && s + step.gop > target {
                // The next key frame would be after the target: this is the one.
                Some((b.clone(), s))
            } else {
                step.candidate = Some((b.clone(), s));
                None
            }
        } else if s > target {
            match step.candidate.take() {
                Some(c) => Some(c),
                None => {
                    gst::debug!(CAT, "reverse: no key frame before {target} ns: start");
                    step.at_start = true;
                    self.cond.notify_all();
                    return Verdict::Drop;
                }
            }
        } else {
            None
        };
        let Some((buffer, s)) = chosen else {
            return Verdict::Drop;
        };
        let rt = step.r0 + ((step.p0.saturating_sub(s)) as f64 / step.rate) as u64;
        let Some(pts) = step
            .seg
            .as_ref()
            .and_then(|seg| seg.position_from_running_time(gst::ClockTime::from_nseconds(rt)))
        else {
            return Verdict::Drop;
        };
        let mut buffer = buffer;
        {
            let b = buffer.make_mut();
            b.set_pts(pts);
            b.set_dts(pts);
            b.set_duration(gst::ClockTime::NONE);
        }
        gst::trace!(CAT, "reverse: key frame at {s} ns sent as {pts}");
        step.last = s;
        step.sent += 1;
        step.step_seg = None;
        step.candidate = None;
        info.data = Some(gst::PadProbeData::Buffer(buffer));
        self.cond.notify_all();
        Verdict::Pass
    }

    /// The video payloader's sink pad and its pipeline, if the media is still there.
    fn video_pad(&self) -> Option<(gst::Pad, gst::Element)> {
        let pad = self
            .pads
            .lock()
            .unwrap()
            .iter()
            .filter(|p| p.video)
            .find_map(|p| p.pad.upgrade())?;
        let mut top = pad.parent_element()?;
        while let Some(p) = top.parent().and_then(|p| p.downcast::<gst::Element>().ok()) {
            top = p;
        }
        Some((pad, top))
    }

    /// Waits (in slices, so that a stop is seen) until `done` holds; false on stop, on
    /// `timeout` while the pipeline plays, or when the media went.
    fn wait(&self, timeout: Duration, done: impl Fn(&Step) -> bool) -> bool {
        let mut waited = Duration::ZERO;
        let mut step = self.step.lock().unwrap();
        loop {
            if self.stop.load(Ordering::SeqCst) {
                return false;
            }
            if done(&step) {
                return true;
            }
            let slice = Duration::from_millis(100);
            step = self.cond.wait_timeout(step, slice).unwrap().0;
            let Some((_, pipeline)) = self.video_pad() else {
                return false;
            };
            match pipeline.current_state() {
                gst::State::Playing => waited += slice,
                gst::State::Paused => {}
                _ => return false,
            }
            if waited >= timeout {
                gst::warning!(CAT, "reverse: no key frame within {timeout:?}");
                return false;
            }
        }
    }

    /// The driver: seeks to key frames at decreasing positions until the start, a stop or the
    /// media's end.
    fn drive(&self) {
        if !self.wait_phase_stepping() {
            return;
        }
        loop {
            let Some((pad, pipeline)) = self.video_pad() else {
                return;
            };
            // Seeks go when the media plays and the last key frame left (its streaming thread
            // is free): the flush of a seek stops at the payloaders, so a sink holding that
            // thread (waiting for the key frame's time, or prerolled in PAUSE) would hold up
            // the seek too.
            if !self.wait_rendered(&pipeline) {
                return;
            }
            let now_rt = running_time(&pipeline);
            let (target, sent) = {
                let mut step = self.step.lock().unwrap();
                if step.last < STEP_BACK_NS || step.at_start {
                    step.at_start = true;
                    (None, step.sent)
                } else {
                    let mut t = step.last - STEP_BACK_NS;
                    // Where the pace says the media should be now: behind it, step further.
                    if let Some(now) = now_rt.filter(|&n| n > step.r0) {
                        let due = step.p0 as f64 - (now - step.r0) as f64 * step.rate;
                        t = t.min(due.max(0.0) as u64);
                    }
                    step.target = t;
                    step.step_seg = None;
                    step.candidate = None;
                    step.prev_key = None;
                    (Some(t), step.sent)
                }
            };
            let Some(target) = target else {
                self.end();
                return;
            };
            {
                let _seeking = self.seeking.lock().unwrap();
                if self.stop.load(Ordering::SeqCst) {
                    return;
                }
                let seek = gst::event::Seek::new(
                    1.0,
                    gst::SeekFlags::FLUSH | gst::SeekFlags::KEY_UNIT | gst::SeekFlags::SNAP_BEFORE,
                    gst::SeekType::Set,
                    gst::ClockTime::from_nseconds(target),
                    gst::SeekType::None,
                    gst::ClockTime::NONE,
                );
                if !pad.push_event(seek) {
                    gst::warning!(CAT, "reverse: the seek to {target} ns failed");
                    if self.stop.load(Ordering::SeqCst) {
                        return;
                    }
                    self.step.lock().unwrap().at_start = true;
                }
            }
            drop(pad);
            if !self.wait(STEP_TIMEOUT, |s| s.sent != sent || s.at_start) {
                return;
            }
            if self.step.lock().unwrap().at_start {
                self.end();
                return;
            }
        }
    }

    /// Waits until the media plays and its running time reached that of the last key frame
    /// sent; false on stop or when the media went.
    fn wait_rendered(&self, pipeline: &gst::Element) -> bool {
        loop {
            if self.stop.load(Ordering::SeqCst) {
                return false;
            }
            let due = {
                let s = self.step.lock().unwrap();
                s.r0 + (s.p0.saturating_sub(s.last) as f64 / s.rate) as u64 + RENDER_SLACK_NS
            };
            let wait = match pipeline.current_state() {
                gst::State::Playing => match running_time(pipeline) {
                    Some(now) if now >= due => return true,
                    Some(now) => Duration::from_nanos(due - now).min(Duration::from_millis(100)),
                    None => Duration::from_millis(20),
                },
                gst::State::Paused => Duration::from_millis(50),
                _ => return false,
            };
            let step = self.step.lock().unwrap();
            let _ = self.cond.wait_timeout(step, wait).unwrap();
        }
    }

    /// Waits for the landing key frame (phase STEPPING).
    fn wait_phase_stepping(&self) -> bool {
        self.wait(STEP_TIMEOUT, |_| self.phase() == STEPPING)
    }

    /// The start of the file: EOS into every payloader (RTCP BYE), as at the end of file. Each
    /// pad's streaming thread sends it on its next item (EOS from here, while the demuxer still
    /// pushes, races with its data); a pad that gets nothing within [`EOS_WAIT`] gets it from
    /// here.
    fn end(&self) {
        let at = self.step.lock().unwrap().last;
        gst::info!(
            CAT,
            "reverse play reached the start ({:.3} s): RTCP BYE, session paused there",
            at as f64 / 1e9
        );
        let deadline = Instant::now() + EOS_WAIT;
        while Instant::now() < deadline && !self.stop.load(Ordering::SeqCst) {
            if self
                .pads
                .lock()
                .unwrap()
                .iter()
                .all(|p| p.eos.load(Ordering::SeqCst))
            {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        if self.stop.load(Ordering::SeqCst) {
            return;
        }
        let pads: Vec<gst::Pad> = self
            .pads
            .lock()
            .unwrap()
            .iter()
            .filter(|p| !p.eos.swap(true, Ordering::SeqCst))
            .filter_map(|p| p.pad.upgrade())
            .collect();
        for pad in pads {
            let _ = pad.send_event(gst::event::Eos::new());
        }
    }
}

/// The running time of `pipeline` now, ns.
fn running_time(pipeline: &gst::Element) -> Option<u64> {
    let clock = pipeline.clock()?;
    let base = pipeline.base_time()?;
    Some(clock.time().saturating_sub(base).nseconds())
}
