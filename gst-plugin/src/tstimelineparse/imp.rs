// Lock order: settings → state. No lock is held while pushing events, posting messages or
// notifying.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;
use gst_base::prelude::*;
use gst_base::subclass::base_transform::GenerateOutputSuccess;
use gst_base::subclass::prelude::*;
use once_cell::sync::Lazy;

use super::event::{ServiceIdentity, TimelineEventKind, TimelineInfo};
use super::spts::SptsFilter;
use crate::proto::clock::{StcLock, PTS_HZ};
use crate::proto::css::timeline::{TimelineSelector, PTS_SELECTOR};
use crate::proto::timeline::{ChangeKind, DiscontinuityReason, TimelineEvent, TimelineTracker};
use crate::proto::ts::{TsReader, PACKET_SIZE, SYNC_BYTE};

static CAT: Lazy<gst::DebugCategory> = Lazy::new(|| {
    gst::DebugCategory::new(
        "tstimelineparse",
        gst::DebugColorFlags::empty(),
        Some("TS PTS/TEMI timeline parser"),
    )
});

const DEFAULT_PROGRAM_NUMBER: u32 = 0;
const DEFAULT_POST_MESSAGES: bool = true;
const DEFAULT_SEND_EVENTS: bool = true;
/// At most one bus warning per this interval: of running time when the buffers have one, else
/// of wall-clock time. Errors not warned about yet are warned about at EOS.
const WARNING_INTERVAL: Duration = Duration::from_secs(1);

#[derive(Debug, Clone)]
struct Settings {
    program_number: u32,
    post_messages: bool,
    send_events: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            program_number: DEFAULT_PROGRAM_NUMBER,
            post_messages: DEFAULT_POST_MESSAGES,
            send_events: DEFAULT_SEND_EVENTS,
        }
    }
}

/// (program, PID, timeline_id or −1 for the PTS timeline).
type Key = (u16, u16, i16);

#[derive(Debug, Default, Clone, Copy)]
struct Counters {
    buffers: u64,
    bytes: u64,
    /// Times the 188-byte cadence was lost or never found: a packet not starting with 0x47
    /// (seen by the aligned fast path or by the reader), or bytes skipped while not already
    /// hunting. One per loss, however many bytes or buffers the hunt spans.
    sync_losses: u64,
    /// Hunting for sync since the last loss; no packet read since.
    in_loss: bool,
    /// A partial packet left at EOS (outside a loss already counted).
    truncated_packets: u64,
    /// Bytes of partial packets dropped at EOS.
    truncated_bytes: u64,
    warnings: u64,
}

/// When the last bus warning was posted.
#[derive(Debug, Clone, Copy)]
enum WarnedAt {
    RunningTime(gst::ClockTime),
    Wall(Instant),
}

struct State {
    reader: TsReader,
    tracker: TimelineTracker,
    filter: Option<SptsFilter>,
    program: Option<u16>,
    packet_index: u64,
    timelines: BTreeMap<Key, TimelineInfo>,
    /// Each program's STC locked to the buffers' running time (presentation times).
    stc: BTreeMap<u16, StcLock>,
    counters: Counters,
    last_warning: Option<WarnedAt>,
    warned_errors: u64,
    /// Timestamps of the last buffer (for what is found at EOS).
    last_ctx: Option<BufCtx>,
    scratch: Vec<TimelineEvent>,
}

impl State {
    fn new(program_number: u32) -> Self {
        let program = u16::try_from(program_number).ok().filter(|&p| p != 0);
        State {
            reader: TsReader::new(),
            tracker: TimelineTracker::default(),
            filter: program.map(SptsFilter::new),
            program,
            packet_index: 0,
            timelines: BTreeMap::new(),
            stc: BTreeMap::new(),
            counters: Counters::default(),
            last_warning: None,
            warned_errors: 0,
            last_ctx: None,
            scratch: Vec::new(),
        }
    }

    /// After a flush: forget the stream, keep the counters.
    fn flush(&mut self) {
        self.reader = TsReader::new();
        self.tracker.reset();
        if let Some(f) = &mut self.filter {
            f.reset();
        }
        self.packet_index = 0;
        self.timelines.clear();
        self.stc.clear();
        self.counters.in_loss = false;
        self.last_ctx = None;
    }

    fn lost_sync(&mut self) {
        if !self.counters.in_loss {
            self.counters.in_loss = true;
            self.counters.sync_losses += 1;
        }
    }

    #[inline]
    fn packet(
        &mut self,
        p: &[u8],
        events: &mut Vec<TimelineEvent>,
        out: &mut Option<&mut Vec<u8>>,
    ) {
        let idx = self.packet_index;
        self.packet_index += 1;
        self.counters.in_loss = false;
        let mut ev = self.tracker.push_packet(p, idx);
        if !ev.is_empty() {
            events.append(&mut ev);
        }
        if let (Some(f), Some(o)) = (self.filter.as_mut(), out.as_deref_mut()) {
            f.push(p, o);
        }
    }

    /// Feeds `data`. Hot path: while the reader holds nothing, whole packets are read straight
    /// from the buffer (no copy). The incremental [`TsReader`] takes over for what is left:
    /// a partial packet at the end of a buffer not aligned to 188 bytes (only that packet is
    /// completed through it before going back to the hot path), or a lost sync (it hunts for
    /// the next 0x47 cadence, counting skipped bytes).
    fn feed(
        &mut self,
        data: &[u8],
        events: &mut Vec<TimelineEvent>,
        mut out: Option<&mut Vec<u8>>,
    ) {
        let mut data = data;
        while !data.is_empty() {
            let buffered = self.reader.buffered();
            if buffered == 0 {
                let mut consumed = 0;
                for p in data.chunks_exact(PACKET_SIZE) {
                    if p.first() != Some(&SYNC_BYTE) {
                        // The reader hunts from here; this loss is counted once.
                        self.lost_sync();
                        break;
                    }
                    self.packet(p, events, &mut out);
                    consumed += PACKET_SIZE;
                }
                data = data.get(consumed..).unwrap_or(&[]);
                if data.is_empty() {
                    break;
                }
                // A partial packet or garbage: the reader keeps/hunts it; a partial packet
                // leaves it synced (once it has confirmed the cadence) for the next buffer.
                self.reader.push(data);
                self.drain_reader(events, &mut out);
                break;
            }
            if self.reader.is_synced() && buffered < PACKET_SIZE {
                // Complete the packet started in the previous buffer, then back to the hot path.
                let take = (PACKET_SIZE - buffered).min(data.len());
                let (head, rest) = data.split_at(take);
                self.reader.push(head);
                data = rest;
                self.drain_reader(events, &mut out);
                continue;
            }
            self.reader.push(data);
            self.drain_reader(events, &mut out);
            break;
        }
    }

    fn drain_reader(&mut self, events: &mut Vec<TimelineEvent>, out: &mut Option<&mut Vec<u8>>) {
        loop {
            let skipped = self.reader.stats().bytes_skipped;
            let next = self.reader.next();
            if self.reader.stats().bytes_skipped > skipped {
                // Garbage where no sync was established (stream start, after a DISCONT).
                self.lost_sync();
            }
            match next {
                Ok(Some(pkt)) => self.packet(&pkt.data, events, out),
                Ok(None) => break,
                // The next call resyncs.
                Err(_) => self.lost_sync(),
            }
        }
    }

    /// End of stream: the reader returns what it kept for its sync look-ahead; a partial
    /// packet left after that is dropped and counted (once, unless already in a sync loss).
    fn finish(&mut self, events: &mut Vec<TimelineEvent>, out: &mut Option<&mut Vec<u8>>) {
        self.reader.finish();
        self.drain_reader(events, out);
        let left = self.reader.buffered() as u64;
        if left > 0 {
            self.counters.truncated_bytes += left;
            if !self.counters.in_loss {
                self.counters.truncated_packets += 1;
            }
        }
        self.reader.reset();
        self.counters.in_loss = false;
    }

    fn error_total(&self) -> u64 {
        let t = self.tracker.stats();
        self.counters.sync_losses
            + self.counters.truncated_packets
            + t.tei_packets
            + t.cc_errors
            + t.malformed_packets
            + t.malformed_adaptation_fields
            + t.malformed_descriptors
            + t.section_errors
            + self.filter.as_ref().map_or(0, |f| f.section_errors)
    }

    fn stats_structure(&self) -> gst::Structure {
        let r = self.reader.stats();
        let t = self.tracker.stats();
        let c = &self.counters;
        gst::Structure::builder("tstimelineparse-stats")
            .field("buffers", c.buffers)
            .field("bytes", c.bytes)
            .field("packets", t.packets)
            .field("sync-losses", c.sync_losses)
            .field("bytes-skipped", r.bytes_skipped + c.truncated_bytes)
            .field("truncated-packets", c.truncated_packets)
            .field("tei-packets", t.tei_packets)
            .field("cc-errors", t.cc_errors)
            .field("malformed-packets", t.malformed_packets)
            .field("malformed-adaptation-fields", t.malformed_adaptation_fields)
            .field("malformed-descriptors", t.malformed_descriptors)
            .field("section-errors", t.section_errors)
            .field(
                "spts-section-errors",
                self.filter.as_ref().map_or(0, |f| f.section_errors),
            )
            .field("nonconformant-descriptors", t.nonconformant_descriptors)
            .field("dropped-descriptors", t.dropped_descriptors)
            .field("errors", self.error_total())
            .field("warnings", c.warnings)
            .build()
    }

    fn timelines_array(&self) -> gst::Array {
        gst::Array::new(self.timelines.values().map(|t| {
            gst::Structure::builder("timeline")
                .field("selector", t.selector.as_str())
                .field("type", if t.temi { "temi" } else { "pts" })
                .field("program", u32::from(t.program))
                .field("pid", u32::from(t.pid))
                .field_if_some("timeline-id", t.timeline_id.map(u32::from))
                .field_if_some("component-tag", t.component_tag.map(u32::from))
                .field("tick-rate", t.tick_rate)
                .field("paused", t.paused)
                .field_if_some("last-value", t.value)
                .field_if_some("last-pts", t.pts)
                .field_if_some("last-running-time", t.running_time.map(|r| r.nseconds()))
                .build()
                .to_send_value()
        }))
    }

    fn wanted(&self, program: Option<u16>) -> bool {
        self.program.is_none() || program == self.program
    }
}

/// Timestamps of the buffer being processed.
#[derive(Debug, Clone, Copy)]
struct BufCtx {
    running_time: Option<gst::ClockTime>,
    pts: Option<gst::ClockTime>,
    /// Index of the buffer's last TS packet.
    last_index: u64,
}

impl State {
    /// When a decoder presents the access unit with `pts` of `program`, found in a buffer with
    /// a running time (`ctx`).
    fn presentation_time(&self, ctx: BufCtx, program: u16, pts: u64) -> Option<gst::ClockTime> {
        ctx.running_time?;
        let rt = self.stc.get(&program)?.presentation_rt(pts)?;
        u64::try_from(rt).ok().map(gst::ClockTime::from_nseconds)
    }
}

/// What to send once the state lock is released.
enum Out {
    Timeline(TimelineInfo),
    Service(ServiceIdentity),
}

fn temi_selector(pid: u16, component_tag: Option<u8>, timeline_id: u8) -> String {
    match component_tag {
        Some(component_tag) => TimelineSelector::Temi {
            component_tag,
            timeline_id,
        },
        None => TimelineSelector::TemiPid { pid, timeline_id },
    }
    .to_string()
}

fn reason_str(r: DiscontinuityReason) -> (&'static str, Option<i64>) {
    match r {
        DiscontinuityReason::Flagged => ("flagged", None),
        DiscontinuityReason::TimescaleChanged => ("timescale-changed", None),
        DiscontinuityReason::UndeclaredJump { deviation } => ("undeclared-jump", Some(deviation)),
    }
}

/// Maps tracker events to outgoing structures and keeps the `timelines` table. Returns whether
/// the set of available timelines changed.
fn map_events(st: &mut State, events: &[TimelineEvent], ctx: BufCtx, outs: &mut Vec<Out>) -> bool {
    let mut changed = false;
    for ev in events {
        match ev {
            TimelineEvent::Temi(a) => {
                if !st.wanted(a.program) {
                    continue;
                }
                let program = a.program.unwrap_or(0);
                let mut info = TimelineInfo::new(
                    TimelineEventKind::Correlation,
                    temi_selector(a.pid, a.component_tag, a.timeline_id),
                    true,
                    program,
                    a.pid,
                );
                info.timeline_id = Some(a.timeline_id);
                info.component_tag = a.component_tag;
                info.tick_rate = u64::from(a.timescale);
                info.value = Some(a.media_timestamp);
                info.pts = Some(a.pts);
                info.pts_unwrapped = Some(a.pts_unwrapped);
                info.running_time = ctx.running_time;
                info.buffer_pts = ctx.pts;
                info.presentation_time = st.presentation_time(ctx, program, a.pts);
                info.packet_index = a.packet_index;
                info.paused = a.paused;
                info.discontinuity = a.discontinuity;
                info.force_reload = a.force_reload;
                info.timestamp_bits = Some(a.timestamp_bits);
                info.conformant = a.conformant;
                info.ntp = a.descriptor.ntp;
                let key = (program, a.pid, i16::from(a.timeline_id));
                changed |= st.timelines.insert(key, info.clone()).is_none();
                outs.push(Out::Timeline(info));
            }
            TimelineEvent::Pts(p) => {
                if !st.wanted(Some(p.program)) {
                    continue;
                }
                let key = (p.program, p.pid, -1);
                let mut info = TimelineInfo::new(
                    TimelineEventKind::Correlation,
                    PTS_SELECTOR.to_string(),
                    false,
                    p.program,
                    p.pid,
                );
                info.tick_rate = PTS_HZ;
                info.value = Some(p.pts_unwrapped);
                info.pts = Some(p.pts);
                info.pts_unwrapped = Some(p.pts_unwrapped);
                info.running_time = ctx.running_time;
                info.buffer_pts = ctx.pts;
                info.presentation_time = st.presentation_time(ctx, p.program, p.pts);
                info.packet_index = p.packet_index;
                if !st.timelines.contains_key(&key) {
                    // A program's PTS PID may change with its PMT: one PTS timeline per program.
                    let old: Vec<Key> = st
                        .timelines
                        .keys()
                        .filter(|k| k.0 == p.program && k.2 == -1)
                        .copied()
                        .collect();
                    for k in old {
                        if let Some(mut o) = st.timelines.remove(&k) {
                            o.kind = TimelineEventKind::Disappeared;
                            o.packet_index = p.packet_index;
                            outs.push(Out::Timeline(o));
                        }
                    }
                    let mut appeared = info.clone();
                    appeared.kind = TimelineEventKind::Appeared;
                    outs.push(Out::Timeline(appeared));
                    changed = true;
                }
                st.timelines.insert(key, info.clone());
                outs.push(Out::Timeline(info));
            }
            TimelineEvent::Change(c) => {
                if !st.wanted(c.program) {
                    continue;
                }
                let program = c.program.unwrap_or(0);
                let key = (program, c.pid, i16::from(c.timeline_id));
                let mut info = st.timelines.get(&key).cloned().unwrap_or_else(|| {
                    TimelineInfo::new(
                        TimelineEventKind::Appeared,
                        temi_selector(c.pid, c.component_tag, c.timeline_id),
                        true,
                        program,
                        c.pid,
                    )
                });
                info.timeline_id = Some(c.timeline_id);
                info.component_tag = c.component_tag;
                info.packet_index = c.packet_index;
                info.running_time = ctx.running_time;
                info.buffer_pts = ctx.pts;
                info.reason = None;
                info.deviation = None;
                info.url = None;
                match c.kind {
                    ChangeKind::Appeared { timescale } => {
                        info.kind = TimelineEventKind::Appeared;
                        info.tick_rate = u64::from(timescale);
                        info.value = None;
                        info.pts = None;
                        info.pts_unwrapped = None;
                        changed |= st.timelines.insert(key, info.clone()).is_none();
                    }
                    ChangeKind::Disappeared => {
                        info.kind = TimelineEventKind::Disappeared;
                        changed |= st.timelines.remove(&key).is_some();
                    }
                    ChangeKind::Paused | ChangeKind::Resumed => {
                        let paused = matches!(c.kind, ChangeKind::Paused);
                        info.kind = if paused {
                            TimelineEventKind::Paused
                        } else {
                            TimelineEventKind::Resumed
                        };
                        info.paused = paused;
                        if let Some(e) = st.timelines.get_mut(&key) {
                            e.paused = paused;
                        }
                    }
                    ChangeKind::Discontinuity(r) => {
                        info.kind = TimelineEventKind::Discontinuity;
                        let (reason, deviation) = reason_str(r);
                        info.reason = Some(reason.into());
                        info.deviation = deviation;
                    }
                }
                outs.push(Out::Timeline(info));
            }
            TimelineEvent::Pcr {
                program,
                pcr,
                packet_index,
            } => {
                if let Some(rt) = ctx.running_time {
                    st.stc.entry(*program).or_default().observe(
                        *pcr,
                        *packet_index,
                        rt.nseconds(),
                        ctx.last_index,
                    );
                }
            }
            TimelineEvent::PcrDiscontinuity {
                program,
                packet_index,
                declared,
                ..
            } => {
                if let Some(l) = st.stc.get_mut(program) {
                    l.reset();
                }
                if !st.wanted(Some(*program)) {
                    continue;
                }
                for (k, t) in st.timelines.iter() {
                    if k.0 == *program && k.2 == -1 {
                        let mut info = t.clone();
                        info.kind = TimelineEventKind::Discontinuity;
                        info.reason = Some(
                            if *declared {
                                "pcr-discontinuity"
                            } else {
                                "pcr-jump"
                            }
                            .into(),
                        );
                        info.packet_index = *packet_index;
                        info.running_time = ctx.running_time;
                        info.buffer_pts = ctx.pts;
                        outs.push(Out::Timeline(info));
                    }
                }
            }
            TimelineEvent::ProgramRemoved { program } => {
                let keys: Vec<Key> = st
                    .timelines
                    .keys()
                    .filter(|k| k.0 == *program && k.2 == -1)
                    .copied()
                    .collect();
                for k in keys {
                    if let Some(mut info) = st.timelines.remove(&k) {
                        changed = true;
                        info.kind = TimelineEventKind::Disappeared;
                        info.running_time = ctx.running_time;
                        info.buffer_pts = ctx.pts;
                        outs.push(Out::Timeline(info));
                    }
                }
            }
            TimelineEvent::Service(s) => {
                if !st.wanted(Some(s.service_id)) {
                    continue;
                }
                outs.push(Out::Service(ServiceIdentity {
                    service_id: s.service_id,
                    original_network_id: s.original_network_id,
                    transport_stream_id: s.transport_stream_id,
                    service_type: s.service_type,
                    service_name: s.service_name.clone(),
                    provider_name: s.provider_name.clone(),
                    network_name: s.network_name.clone(),
                    event_id: s.event_id,
                    event_name: s.event_name.clone(),
                    event_start: s.event_start_unix,
                    event_duration: s.event_duration_s,
                    running_time: ctx.running_time,
                }));
            }
            TimelineEvent::Location(l) => {
                if !st.wanted(l.program) {
                    continue;
                }
                let program = l.program.unwrap_or(0);
                let tid = l.descriptor.timeline_id;
                let known = st.timelines.get(&(program, l.pid, i16::from(tid)));
                let component_tag = known.and_then(|t| t.component_tag);
                let mut info = TimelineInfo::new(
                    TimelineEventKind::Location,
                    temi_selector(l.pid, component_tag, tid),
                    true,
                    program,
                    l.pid,
                );
                info.timeline_id = Some(tid);
                info.component_tag = component_tag;
                // The timeline's timescale (its descriptor may be in the same packet), else an
                // announcement's; 0 = not known yet.
                info.tick_rate = known
                    .map(|t| t.tick_rate)
                    .or(l.timescale.map(u64::from))
                    .unwrap_or(0);
                info.force_reload = l.descriptor.force_reload;
                info.url = l.url.clone();
                info.packet_index = l.packet_index;
                info.running_time = ctx.running_time;
                info.buffer_pts = ctx.pts;
                outs.push(Out::Timeline(info));
            }
            TimelineEvent::Program(_)
            | TimelineEvent::TemiWithoutTimestamp { .. }
            | TimelineEvent::Utc { .. } => {}
        }
    }
    changed
}

pub struct TsTimelineParse {
    settings: Mutex<Settings>,
    state: Mutex<State>,
    /// SPTS mode: the input buffer between submit_input_buffer and generate_output.
    pending: Mutex<Option<gst::Buffer>>,
}

impl TsTimelineParse {
    fn buffer_ctx(&self, buf: &gst::BufferRef) -> BufCtx {
        let pts = buf.pts().or(buf.dts());
        let running_time = pts.and_then(|t| {
            self.obj()
                .segment()
                .downcast_ref::<gst::ClockTime>()
                .and_then(|s| s.to_running_time(t))
        });
        BufCtx {
            running_time,
            pts,
            last_index: 0,
        }
    }

    /// SPTS mode: replaces the buffer's memory with the packets kept. Returns false when nothing
    /// is left to push.
    fn filter_in_place(&self, buf: &mut gst::BufferRef) -> Result<bool, gst::FlowError> {
        let mut out = Vec::with_capacity(buf.size());
        {
            let map = buf.map_readable().map_err(|_| {
                gst::element_imp_error!(self, gst::CoreError::Failed, ["Failed to map buffer"]);
                gst::FlowError::Error
            })?;
            self.process(buf, map.as_slice(), Some(&mut out));
        }
        if out.is_empty() {
            return Ok(false);
        }
        buf.replace_all_memory(gst::Memory::from_mut_slice(out));
        Ok(true)
    }

    /// Runs `data` through the parser (and the SPTS filter into `out`), then sends what it
    /// found. Returns nothing to send back; all locks are released before pushing/posting.
    fn process(&self, buf: &gst::BufferRef, data: &[u8], out: Option<&mut Vec<u8>>) {
        let ctx = self.buffer_ctx(buf);
        let settings = self.settings.lock().unwrap().clone();
        let mut outs = Vec::new();
        let (warning, changed) = {
            let mut guard = self.state.lock().unwrap();
            let st = &mut *guard;
            if buf.flags().contains(gst::BufferFlags::DISCONT) && st.reader.buffered() > 0 {
                gst::debug!(
                    CAT,
                    imp = self,
                    "discont: dropping {} partial bytes",
                    st.reader.buffered()
                );
                st.reader.reset();
            }
            st.counters.buffers += 1;
            st.counters.bytes += data.len() as u64;
            let mut events = std::mem::take(&mut st.scratch);
            events.clear();
            st.feed(data, &mut events, out);
            let ctx = BufCtx {
                last_index: st.packet_index.saturating_sub(1),
                ..ctx
            };
            st.last_ctx = Some(ctx);
            let changed = !events.is_empty() && map_events(st, &events, ctx, &mut outs);
            events.clear();
            st.scratch = events;
            (self.due_warning(st, ctx.running_time, false), changed)
        };
        self.send(&settings, outs, warning, changed);
    }

    /// At EOS: drains the reader (a partial last packet counts as an error), sends what that
    /// found (and in SPTS mode pushes the packets kept), and posts the warning still owed for
    /// errors not warned about yet.
    fn drain_at_eos(&self) {
        let settings = self.settings.lock().unwrap().clone();
        let spts = !self.obj().is_passthrough();
        let mut outs = Vec::new();
        let mut kept = Vec::new();
        let (warning, changed) = {
            let mut guard = self.state.lock().unwrap();
            let st = &mut *guard;
            let mut events = Vec::new();
            st.finish(&mut events, &mut spts.then_some(&mut kept));
            let ctx = BufCtx {
                last_index: st.packet_index.saturating_sub(1),
                ..st.last_ctx.unwrap_or(BufCtx {
                    running_time: None,
                    pts: None,
                    last_index: 0,
                })
            };
            let changed = !events.is_empty() && map_events(st, &events, ctx, &mut outs);
            (self.due_warning(st, None, true), changed)
        };
        if !kept.is_empty() {
            gst::debug!(CAT, imp = self, "EOS: pushing {} bytes kept", kept.len());
            let _ = self.obj().src_pad().push(gst::Buffer::from_mut_slice(kept));
        }
        self.send(&settings, outs, warning, changed);
    }

    /// A warning to post if errors were counted since the last one and the rate limit allows
    /// it (`force` at EOS). Rate-limited on the buffers' running time when they have one.
    fn due_warning(
        &self,
        st: &mut State,
        running_time: Option<gst::ClockTime>,
        force: bool,
    ) -> Option<(u64, gst::Structure)> {
        let errors = st.error_total();
        if errors <= st.warned_errors {
            return None;
        }
        let now = match running_time {
            Some(rt) => WarnedAt::RunningTime(rt),
            None => WarnedAt::Wall(Instant::now()),
        };
        let interval = gst::ClockTime::try_from(WARNING_INTERVAL).unwrap_or(gst::ClockTime::SECOND);
        let due = force
            || match (st.last_warning, now) {
                (None, _) => true,
                (Some(WarnedAt::RunningTime(last)), WarnedAt::RunningTime(rt)) => {
                    // A running time going back (new segment) starts the interval over.
                    rt < last || rt - last >= interval
                }
                (Some(WarnedAt::Wall(last)), WarnedAt::Wall(now)) => {
                    now.duration_since(last) >= WARNING_INTERVAL
                }
                // The buffers gained or lost timestamps: start over.
                _ => true,
            };
        if !due {
            return None;
        }
        st.last_warning = Some(now);
        let new = errors - st.warned_errors;
        st.warned_errors = errors;
        st.counters.warnings += 1;
        Some((new, st.stats_structure()))
    }

    /// Pushes the events and posts the messages and warning; no lock may be held.
    fn send(
        &self,
        settings: &Settings,
        outs: Vec<Out>,
        warning: Option<(u64, gst::Structure)>,
        changed: bool,
    ) {
        let obj = self.obj();
        for o in outs {
            let (event, message) = match &o {
                Out::Timeline(i) => (
                    settings.send_events.then(|| i.to_event()),
                    settings.post_messages.then(|| i.to_message(&*obj)),
                ),
                Out::Service(s) => (
                    settings.send_events.then(|| s.to_event()),
                    settings.post_messages.then(|| s.to_message(&*obj)),
                ),
            };
            if let Some(e) = event {
                let _ = obj.src_pad().push_event(e);
            }
            if let Some(m) = message {
                let _ = obj.post_message(m);
            }
        }
        if let Some((new, stats)) = warning {
            gst::warning!(CAT, imp = self, "{new} new stream errors: {stats}");
            gst::element_imp_warning!(
                self,
                gst::StreamError::Demux,
                ["Damaged transport stream: {} new errors (at most one warning per second of running time)", new],
                details: stats
            );
        }
        if changed {
            obj.notify("timelines");
        }
    }
}

#[glib::object_subclass]
impl ObjectSubclass for TsTimelineParse {
    const NAME: &'static str = "GstTsTimelineParse";
    type Type = super::TsTimelineParse;
    type ParentType = gst_base::BaseTransform;

    fn new() -> Self {
        TsTimelineParse {
            settings: Mutex::new(Settings::default()),
            state: Mutex::new(State::new(DEFAULT_PROGRAM_NUMBER)),
            pending: Mutex::new(None),
        }
    }
}

impl ObjectImpl for TsTimelineParse {
    fn properties() -> &'static [glib::ParamSpec] {
        static PROPERTIES: Lazy<Vec<glib::ParamSpec>> = Lazy::new(|| {
            vec![
                /**
                 * GstTsTimelineParse:program-number:
                 *
                 * 0 passes the whole multiplex through untouched and reports every program.
                 * Any other value reports only that program and outputs an SPTS: a rewritten PAT
                 * naming only it, its PMT, ES and PCR PIDs, its SDT entry and EIT sections, the
                 * NIT and TDT/TOT.
                 */
                glib::ParamSpecUInt::builder("program-number")
                    .nick("Program number")
                    .blurb("Program (service_id) to keep, 1–65535, turning the element into an SPTS filter; 0 = pass everything through (changeable in NULL/READY)")
                    .minimum(0)
                    .maximum(65535)
                    .default_value(DEFAULT_PROGRAM_NUMBER)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecBoolean::builder("post-messages")
                    .nick("Post messages")
                    .blurb("Whether to post dvb-timeline and dvb-service element messages on the bus")
                    .default_value(DEFAULT_POST_MESSAGES)
                    .mutable_playing()
                    .build(),
                glib::ParamSpecBoolean::builder("send-events")
                    .nick("Send events")
                    .blurb("Whether to send dvb-timeline and dvb-service custom downstream events")
                    .default_value(DEFAULT_SEND_EVENTS)
                    .mutable_playing()
                    .build(),
                /**
                 * GstTsTimelineParse:timelines:
                 *
                 * One `timeline` structure per available timeline: selector, type (pts/temi),
                 * program, pid, timeline-id, component-tag, tick-rate, paused, last-value,
                 * last-pts, last-running-time.
                 */
                gst::ParamSpecArray::builder("timelines")
                    .nick("Timelines")
                    .blurb("Timelines currently available, as an array of timeline structures (selector, type, program, pid, timeline-id, component-tag, tick-rate in ticks/s, paused, last-value, last-pts, last-running-time in ns)")
                    .element_spec(
                        &glib::ParamSpecBoxed::builder::<gst::Structure>("timeline")
                            .nick("Timeline")
                            .blurb("One available timeline")
                            .build(),
                    )
                    .read_only()
                    .build(),
                glib::ParamSpecBoxed::builder::<gst::Structure>("stats")
                    .nick("Statistics")
                    .blurb("Counters since start: buffers, bytes, packets, sync-losses (one per loss of the 188-byte cadence), bytes-skipped, truncated-packets (a partial packet at EOS), cc-errors, malformed packets/adaptation fields/descriptors, section errors, errors, warnings")
                    .read_only()
                    .build(),
            ]
        });
        PROPERTIES.as_ref()
    }

    fn set_property(&self, _id: usize, value: &glib::Value, pspec: &glib::ParamSpec) {
        match pspec.name() {
            "program-number" => {
                let v: u32 = value.get().expect("type checked upstream");
                let old = {
                    let mut s = self.settings.lock().unwrap();
                    std::mem::replace(&mut s.program_number, v)
                };
                gst::debug!(CAT, imp = self, "program-number {old} → {v}");
                *self.state.lock().unwrap() = State::new(v);
                self.obj().set_passthrough(v == 0);
            }
            "post-messages" => {
                let v = value.get().expect("type checked upstream");
                self.settings.lock().unwrap().post_messages = v;
                gst::debug!(CAT, imp = self, "post-messages → {v}");
            }
            "send-events" => {
                let v = value.get().expect("type checked upstream");
                self.settings.lock().unwrap().send_events = v;
                gst::debug!(CAT, imp = self, "send-events → {v}");
            }
            _ => unimplemented!(),
        }
    }

    fn property(&self, _id: usize, pspec: &glib::ParamSpec) -> glib::Value {
        match pspec.name() {
            "program-number" => self.settings.lock().unwrap().program_number.to_value(),
            "post-messages" => self.settings.lock().unwrap().post_messages.to_value(),
            "send-events" => self.settings.lock().unwrap().send_events.to_value(),
            "timelines" => self.state.lock().unwrap().timelines_array().to_value(),
            "stats" => self.state.lock().unwrap().stats_structure().to_value(),
            _ => unimplemented!(),
        }
    }

    fn constructed(&self) {
        self.parent_constructed();
        self.obj().set_passthrough(true);
        self.obj().set_in_place(true);
    }
}

impl GstObjectImpl for TsTimelineParse {}

impl ElementImpl for TsTimelineParse {
    fn metadata() -> Option<&'static gst::subclass::ElementMetadata> {
        static ELEMENT_METADATA: Lazy<gst::subclass::ElementMetadata> = Lazy::new(|| {
            gst::subclass::ElementMetadata::new(
                "TS timeline parser",
                "Filter/Analyzer",
                "Passes an MPEG-TS through and exports the PTS and TEMI timelines and service identity of its programs as dvb-timeline/dvb-service events and messages. Can also cut one program out as an SPTS.",
                "dvb2ip developers",
            )
        });
        Some(&*ELEMENT_METADATA)
    }

    fn pad_templates() -> &'static [gst::PadTemplate] {
        static PAD_TEMPLATES: Lazy<Vec<gst::PadTemplate>> = Lazy::new(|| {
            let caps = crate::mpegts_caps();
            vec![
                crate::always_template("src", gst::PadDirection::Src, &caps),
                crate::always_template("sink", gst::PadDirection::Sink, &caps),
            ]
        });
        PAD_TEMPLATES.as_ref()
    }
}

impl BaseTransformImpl for TsTimelineParse {
    const MODE: gst_base::subclass::BaseTransformMode =
        gst_base::subclass::BaseTransformMode::AlwaysInPlace;
    const PASSTHROUGH_ON_SAME_CAPS: bool = false;
    const TRANSFORM_IP_ON_PASSTHROUGH: bool = true;

    fn start(&self) -> Result<(), gst::ErrorMessage> {
        let program = self.settings.lock().unwrap().program_number;
        *self.state.lock().unwrap() = State::new(program);
        self.obj().set_passthrough(program == 0);
        gst::debug!(CAT, imp = self, "started, program-number {program}");
        Ok(())
    }

    fn stop(&self) -> Result<(), gst::ErrorMessage> {
        self.pending.lock().unwrap().take();
        let stats = self.state.lock().unwrap().stats_structure();
        gst::debug!(CAT, imp = self, "stopped: {stats}");
        Ok(())
    }

    fn sink_event(&self, event: gst::Event) -> bool {
        match event.view() {
            gst::EventView::FlushStop(_) => self.state.lock().unwrap().flush(),
            gst::EventView::Eos(_) => self.drain_at_eos(),
            _ => {}
        }
        self.parent_sink_event(event)
    }

    fn transform_ip_passthrough(
        &self,
        buf: &gst::Buffer,
    ) -> Result<gst::FlowSuccess, gst::FlowError> {
        let map = buf.map_readable().map_err(|_| {
            gst::element_imp_error!(self, gst::CoreError::Failed, ["Failed to map buffer"]);
            gst::FlowError::Error
        })?;
        self.process(buf, map.as_slice(), None);
        Ok(gst::FlowSuccess::Ok)
    }

    fn transform_ip(&self, buf: &mut gst::BufferRef) -> Result<gst::FlowSuccess, gst::FlowError> {
        if self.filter_in_place(buf)? {
            Ok(gst::FlowSuccess::Ok)
        } else {
            Ok(gst_base::BASE_TRANSFORM_FLOW_DROPPED)
        }
    }

    // In SPTS mode input is queued and output produced here rather than by the default
    // implementations, so that caps-less input (`filesrc ! tstimelineparse program-number=N`)
    // works as it does in passthrough mode: the defaults refuse to transform before caps are
    // negotiated.
    fn submit_input_buffer(
        &self,
        is_discont: bool,
        inbuf: gst::Buffer,
    ) -> Result<gst::FlowSuccess, gst::FlowError> {
        if self.obj().is_passthrough() {
            return self.parent_submit_input_buffer(is_discont, inbuf);
        }
        *self.pending.lock().unwrap() = Some(inbuf);
        Ok(gst::FlowSuccess::Ok)
    }

    fn generate_output(&self) -> Result<GenerateOutputSuccess, gst::FlowError> {
        if self.obj().is_passthrough() {
            return self.parent_generate_output();
        }
        let Some(mut buf) = self.pending.lock().unwrap().take() else {
            return Ok(GenerateOutputSuccess::NoOutput);
        };
        if self.filter_in_place(buf.make_mut())? {
            Ok(GenerateOutputSuccess::Buffer(buf))
        } else {
            Ok(GenerateOutputSuccess::NoOutput)
        }
    }
}
