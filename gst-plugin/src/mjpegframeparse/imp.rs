//! `mjpegframeparse` implementation: a `BaseParse` subclass over [`crate::proto::mjpeg`].
//!
//! Lock order: settings → state (never both held while pushing, pulling or posting).

use std::sync::Mutex;

use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;
use gst_base::prelude::*;
use gst_base::subclass::prelude::*;
use once_cell::sync::Lazy;

use crate::proto::mjpeg::{self, IndexBuilder, MjpegError, HEADER_LEN, MAX_FRAME_LEN, PROBE_LEN};

static CAT: Lazy<gst::DebugCategory> = Lazy::new(|| {
    gst::DebugCategory::new(
        "mjpegframeparse",
        gst::DebugColorFlags::empty(),
        Some("Course-assignment .mjpeg frame parser"),
    )
});

const DEFAULT_FRAMERATE: gst::Fraction = gst::Fraction::from_integer(25);
const MAX_FRAMERATE: gst::Fraction = gst::Fraction::from_integer(1000);

#[derive(Debug, Clone)]
struct Settings {
    framerate: gst::Fraction,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            framerate: DEFAULT_FRAMERATE,
        }
    }
}

/// Exists between start and stop.
#[derive(Debug)]
struct State {
    /// Frame rate copied from the settings at start, as (numerator, denominator) > 0.
    fps: (u32, u32),
    /// Frame starts seen or indexed so far, contiguous from byte 0.
    index: IndexBuilder,
    /// True once `index` covers the whole stream (pull mode, indexed up front).
    complete: bool,
    /// Whether indexing up front was tried (pull mode, first frame).
    index_tried: bool,
    /// Number the next frame gets when its offset is not in the index.
    next_frame: u64,
    /// The (width, height) of the caps sent last.
    size: Option<(u16, u16)>,
    /// (frame number, PTS, duration) of the frame being finished, for `pre_push_frame`.
    pending: Option<(u64, gst::ClockTime, gst::ClockTime)>,
}

impl State {
    fn new(fps: (u32, u32)) -> Self {
        Self {
            fps,
            index: IndexBuilder::new(MAX_FRAME_LEN),
            complete: false,
            index_tried: false,
            next_frame: 0,
            size: None,
            pending: None,
        }
    }

    fn time_of(&self, n: u64) -> gst::ClockTime {
        gst::ClockTime::from_nseconds(mjpeg::frame_time_ns(n, self.fps.0, self.fps.1))
    }

    fn frame_at(&self, t: gst::ClockTime) -> u64 {
        mjpeg::frame_at_time_ns(t.nseconds(), self.fps.0, self.fps.1)
    }
}

#[derive(Default)]
pub struct MjpegFrameParse {
    settings: Mutex<Settings>,
    state: Mutex<Option<State>>,
}

#[glib::object_subclass]
impl ObjectSubclass for MjpegFrameParse {
    const NAME: &'static str = "GstMjpegFrameParse";
    type Type = super::MjpegFrameParse;
    type ParentType = gst_base::BaseParse;
}

impl ObjectImpl for MjpegFrameParse {
    fn properties() -> &'static [glib::ParamSpec] {
        static PROPERTIES: Lazy<Vec<glib::ParamSpec>> = Lazy::new(|| {
            vec![
                /**
                 * GstMjpegFrameParse:framerate:
                 *
                 * Frames per second the file is played at; the file itself has no timing.
                 */
                gst::ParamSpecFraction::builder("framerate")
                    .nick("Frame rate")
                    .blurb(
                        "Frames per second (1/1000 to 1000/1) that gives \
                         frame n the timestamp n/framerate",
                    )
                    .minimum(gst::Fraction::new(1, 1000))
                    .maximum(MAX_FRAMERATE)
                    .default_value(DEFAULT_FRAMERATE)
                    .mutable_ready()
                    .build(),
            ]
        });
        PROPERTIES.as_ref()
    }

    fn set_property(&self, _id: usize, value: &glib::Value, pspec: &glib::ParamSpec) {
        match pspec.name() {
            "framerate" => {
                let new: gst::Fraction = value.get().expect("type checked upstream");
                let mut settings = self.settings.lock().unwrap();
                if new.numer() <= 0 || new.denom() <= 0 {
                    gst::warning!(
                        CAT,
                        imp = self,
                        "framerate {new} is not above 0, keeping {}",
                        settings.framerate
                    );
                    return;
                }
                gst::debug!(CAT, imp = self, "framerate {} → {new}", settings.framerate);
                settings.framerate = new;
            }
            _ => unimplemented!(),
        }
    }

    fn property(&self, _id: usize, pspec: &glib::ParamSpec) -> glib::Value {
        match pspec.name() {
            "framerate" => self.settings.lock().unwrap().framerate.to_value(),
            _ => unimplemented!(),
        }
    }
}

impl GstObjectImpl for MjpegFrameParse {}

impl ElementImpl for MjpegFrameParse {
    fn metadata() -> Option<&'static gst::subclass::ElementMetadata> {
        static METADATA: Lazy<gst::subclass::ElementMetadata> = Lazy::new(|| {
            gst::subclass::ElementMetadata::new(
                "Course-assignment MJPEG frame parser",
                "Codec/Parser/Video",
                "Splits .mjpeg movie files (5 ASCII digits giving each JPEG's length, then the \
                 JPEG) into timestamped JPEG key frames at the framerate property. Seekable in \
                 time when pulling from a file.",
                "dvb2ip developers",
            )
        });
        Some(&*METADATA)
    }

    fn pad_templates() -> &'static [gst::PadTemplate] {
        static TEMPLATES: Lazy<Vec<gst::PadTemplate>> = Lazy::new(|| {
            let sink = gst::Caps::builder(super::SINK_CAPS_NAME).build();
            let src = gst::Caps::builder("image/jpeg")
                .field("parsed", true)
                .field("width", gst::IntRange::new(1, i32::from(u16::MAX)))
                .field("height", gst::IntRange::new(1, i32::from(u16::MAX)))
                .field(
                    "framerate",
                    gst::FractionRange::new(
                        gst::Fraction::new(1, i32::MAX),
                        gst::Fraction::new(i32::MAX, 1),
                    ),
                )
                .build();
            vec![
                crate::always_template("sink", gst::PadDirection::Sink, &sink),
                crate::always_template("src", gst::PadDirection::Src, &src),
            ]
        });
        TEMPLATES.as_ref()
    }
}

impl BaseParseImpl for MjpegFrameParse {
    fn start(&self) -> Result<(), gst::ErrorMessage> {
        let framerate = self.settings.lock().unwrap().framerate;
        let fps = (
            u32::try_from(framerate.numer()).unwrap_or(1),
            u32::try_from(framerate.denom()).unwrap_or(1),
        );
        gst::info!(CAT, imp = self, "starting at {framerate} fps");
        *self.state.lock().unwrap() = Some(State::new(fps));
        let obj = self.obj();
        obj.set_min_frame_size(PROBE_LEN as u32);
        obj.set_frame_rate(framerate, 0, 0);
        Ok(())
    }

    fn stop(&self) -> Result<(), gst::ErrorMessage> {
        *self.state.lock().unwrap() = None;
        Ok(())
    }

    fn handle_frame(
        &self,
        mut frame: gst_base::BaseParseFrame,
    ) -> Result<(gst::FlowSuccess, u32), gst::FlowError> {
        let obj = self.obj();
        self.index_up_front();
        let offset = frame.offset();

        // Landed inside a frame (a seek by estimate): skip to the next frame start.
        {
            let state = self.state.lock().unwrap();
            let state = state.as_ref().ok_or(gst::FlowError::Flushing)?;
            let index = state.index.index();
            if state.complete && offset < index.end() && index.frame_at(offset).is_none() {
                let skip = index.next_start(offset) - offset;
                gst::debug!(CAT, imp = self, "skipping {skip} bytes to a frame start");
                return Ok((
                    gst::FlowSuccess::Ok,
                    u32::try_from(skip).unwrap_or(u32::MAX),
                ));
            }
        }

        let input = frame.buffer().ok_or(gst::FlowError::Error)?;
        let map = input.map_readable().map_err(|_| {
            gst::element_imp_error!(self, gst::CoreError::Failed, ["Could not map input"]);
            gst::FlowError::Error
        })?;
        let data = map.as_slice();
        let draining = obj.is_draining();

        let len = match mjpeg::parse_header(data, offset, MAX_FRAME_LEN) {
            Ok(len) => len,
            Err(MjpegError::Truncated { .. }) if !draining => {
                obj.set_min_frame_size(PROBE_LEN as u32);
                return Ok((gst::FlowSuccess::Ok, 0));
            }
            Err(e) => return Err(self.fail(&e)),
        };
        let total = HEADER_LEN + len;
        let payload = data.get(HEADER_LEN..).unwrap_or_default();
        if payload.len() >= 2 || len < 2 {
            mjpeg::check_soi(payload, offset).map_err(|e| self.fail(&e))?;
        }
        let Some(jpeg) = data.get(HEADER_LEN..total) else {
            if draining {
                return Err(self.fail(&MjpegError::Truncated {
                    offset,
                    needed: total,
                    available: data.len(),
                }));
            }
            obj.set_min_frame_size(total as u32);
            return Ok((gst::FlowSuccess::Ok, 0));
        };
        let Some(info) = mjpeg::jpeg_info(jpeg) else {
            return Err(self.error(format!(
                "frame at byte {offset} is a JPEG without a start-of-frame (SOF) marker: no size"
            )));
        };
        if info.width == 0 || info.height == 0 {
            return Err(self.error(format!(
                "frame at byte {offset}: JPEG size {}x{} is not supported",
                info.width, info.height
            )));
        }

        let (n, pts, duration, new_caps) = {
            let mut guard = self.state.lock().unwrap();
            let state = guard.as_mut().ok_or(gst::FlowError::Flushing)?;
            let n = match state.index.index().frame_at(offset) {
                Some(n) => n as u64,
                None if offset == state.index.next_offset() && !state.complete => {
                    // Checked above, cannot fail; the index stays as it is if it did.
                    let _ = state.index.push_probe(&data[..PROBE_LEN.min(data.len())]);
                    state.index.frames().saturating_sub(1) as u64
                }
                None => state.next_frame,
            };
            state.next_frame = n + 1;
            let pts = state.time_of(n);
            let duration = state.time_of(n + 1).saturating_sub(pts);
            state.pending = Some((n, pts, duration));
            let size = (info.width, info.height);
            let new_caps = (state.size != Some(size)).then(|| {
                state.size = Some(size);
                gst::Caps::builder("image/jpeg")
                    .field("parsed", true)
                    .field("width", i32::from(info.width))
                    .field("height", i32::from(info.height))
                    .field(
                        "framerate",
                        gst::Fraction::new(state.fps.0 as i32, state.fps.1 as i32),
                    )
                    .build()
            });
            (n, pts, duration, new_caps)
        };

        let mut out = input
            .copy_region(gst::BufferCopyFlags::MEMORY, HEADER_LEN..total)
            .map_err(|_| gst::FlowError::Error)?;
        stamp(out.make_mut(), n, pts, duration);
        drop(map);

        if let Some(caps) = new_caps {
            gst::debug!(CAT, imp = self, "caps {caps}");
            obj.src_pad().push_event(gst::event::Caps::new(&caps));
        }
        gst::log!(
            CAT,
            imp = self,
            "frame {n} at byte {offset}: {len} bytes, pts {pts}"
        );
        frame.set_output_buffer(out);
        obj.set_min_frame_size(PROBE_LEN as u32);
        obj.finish_frame(frame, total as u32)?;
        Ok((gst::FlowSuccess::Ok, 0))
    }

    /// BaseParse clears the timestamps set in `handle_frame` when upstream runs in TIME (appsrc,
    /// a Harness) to follow upstream's: the file has no timing, so put ours back.
    fn pre_push_frame(
        &self,
        frame: &mut gst_base::BaseParseFrame,
    ) -> Result<gst::FlowSuccess, gst::FlowError> {
        let pending = self
            .state
            .lock()
            .unwrap()
            .as_mut()
            .and_then(|s| s.pending.take());
        if let (Some((n, pts, duration)), Some(buffer)) = (pending, frame.buffer()) {
            if buffer.pts() != Some(pts) || buffer.duration() != Some(duration) {
                let mut out = buffer.to_owned();
                stamp(out.make_mut(), n, pts, duration);
                frame.set_output_buffer(out);
            }
        }
        self.parent_pre_push_frame(frame)
    }

    fn convert(
        &self,
        src_val: impl gst::format::FormattedValue,
        dest_format: gst::Format,
    ) -> Option<gst::GenericFormattedValue> {
        let src_val: gst::GenericFormattedValue = src_val.into();
        let src_format = src_val.format();
        let raw = src_val.value();
        if src_format == dest_format {
            return Some(gst::GenericFormattedValue::new(dest_format, raw));
        }
        let converted = {
            let state = self.state.lock().unwrap();
            state.as_ref().and_then(|state| {
                let raw = u64::try_from(raw).ok()?;
                let index = state.index.index();
                // Source value as a frame number (for BYTES: the frame holding that byte).
                let n = match src_format {
                    gst::Format::Time => state.frame_at(gst::ClockTime::from_nseconds(raw)),
                    gst::Format::Default => raw,
                    gst::Format::Bytes => match index.frame_containing(raw) {
                        Some(n) => n as u64,
                        None if state.complete && raw >= index.end() => index.len() as u64,
                        None => return None,
                    },
                    _ => return None,
                };
                let v = match dest_format {
                    gst::Format::Time => state.time_of(n).nseconds(),
                    gst::Format::Default => n,
                    gst::Format::Bytes => match index.offset(n as usize) {
                        Some(o) => o,
                        None if state.complete => index.end(),
                        None => return None,
                    },
                    _ => return None,
                };
                i64::try_from(v).ok()
            })
        };
        match converted {
            Some(v) => Some(gst::GenericFormattedValue::new(dest_format, v)),
            None => self.parent_convert(src_val, dest_format),
        }
    }
}

impl MjpegFrameParse {
    /// Posts a `StreamError::Format` bus error for damaged input; the flow error to return.
    fn fail(&self, e: &MjpegError) -> gst::FlowError {
        self.error(e.to_string())
    }

    fn error(&self, text: String) -> gst::FlowError {
        gst::error!(CAT, imp = self, "{text}");
        gst::element_imp_error!(
            self,
            gst::StreamError::Format,
            ("Damaged .mjpeg stream: {}", text),
            ["{}", text]
        );
        gst::FlowError::Error
    }

    /// In pull mode, on the first frame: reads the 7 bytes at every frame start to index the
    /// whole stream, then announces the duration. A damaged frame start ends the index there
    /// (parsing reports it when it gets there).
    fn index_up_front(&self) {
        let obj = self.obj();
        let sink = obj.sink_pad();
        {
            let mut state = self.state.lock().unwrap();
            let Some(state) = state.as_mut() else {
                return;
            };
            if state.index_tried || sink.mode() != gst::PadMode::Pull {
                return;
            }
            state.index_tried = true;
        }
        let stream_len = sink.peer_query_duration::<gst::format::Bytes>();
        let mut builder = IndexBuilder::new(MAX_FRAME_LEN);
        let complete = loop {
            let at = builder.next_offset();
            if stream_len.is_some_and(|l| at >= *l) {
                break true;
            }
            let probe = match sink.pull_range(at, PROBE_LEN as u32) {
                Ok(b) => b,
                Err(gst::FlowError::Eos) => break true,
                Err(e) => {
                    gst::debug!(CAT, imp = self, "indexing stopped at byte {at}: {e:?}");
                    break false;
                }
            };
            let Ok(map) = probe.map_readable() else {
                break false;
            };
            if map.is_empty() {
                break true;
            }
            if let Err(e) = builder.push_probe(map.as_slice()) {
                gst::debug!(CAT, imp = self, "indexing stopped: {e}");
                break false;
            }
        };
        let complete = complete
            && match stream_len {
                Some(l) => builder.clone().finish(*l).is_ok(),
                None => true,
            };
        let frames = builder.frames();
        let duration = {
            let mut state = self.state.lock().unwrap();
            let Some(state) = state.as_mut() else {
                return;
            };
            state.index = builder;
            state.complete = complete;
            complete.then(|| state.time_of(frames as u64))
        };
        gst::info!(
            CAT,
            imp = self,
            "indexed {frames} frames{}",
            if complete { "" } else { " (incomplete)" }
        );
        if let Some(d) = duration {
            obj.set_duration(d, 0);
        }
    }
}

/// Frame `n`'s timing and flags: PTS = DTS, one frame long, offset = frame number, key frame.
fn stamp(buffer: &mut gst::BufferRef, n: u64, pts: gst::ClockTime, duration: gst::ClockTime) {
    buffer.set_pts(pts);
    buffer.set_dts(pts);
    buffer.set_duration(duration);
    buffer.set_offset(n);
    buffer.set_offset_end(n + 1);
    buffer.unset_flags(gst::BufferFlags::DELTA_UNIT);
}
