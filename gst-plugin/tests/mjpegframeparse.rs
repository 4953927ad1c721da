//! mjpegframeparse: `.mjpeg` movies made here from real JPEGs (videotestsrc ! jpegenc), through
//! the element pushed in chunks (Harness), pulled by filesrc (decode, seek in time, duration),
//! from the gst-launch-1.0 command line, through RTP JPEG (rtpjpegpay ! rtpjpegdepay), and
//! damaged (bad digits, length 0, non-JPEG data, truncated last frame) giving bus errors.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use gst::glib;
use gst::prelude::*;

const WIDTH: i32 = 160;
const HEIGHT: i32 = 120;
const FRAMES: usize = 12;
/// Bound on every wait (a loaded machine is slower; it does not see less).
const WAIT: Duration = Duration::from_secs(60);

/// `n` baseline 4:2:0 JPEGs of a moving ball, as GStreamer's jpegenc makes them.
fn jpegs(n: usize) -> Vec<Vec<u8>> {
    jpegs_of(n, "ball", WIDTH, HEIGHT, 85)
}

/// `n` baseline 4:2:0 JPEGs of a videotestsrc `pattern`.
fn jpegs_of(n: usize, pattern: &str, width: i32, height: i32, quality: u32) -> Vec<Vec<u8>> {
    let pipeline = gst::parse::launch(&format!(
        "videotestsrc num-buffers={n} pattern={pattern} ! \
         video/x-raw,format=I420,width={width},height={height} ! jpegenc quality={quality} ! \
         appsink name=sink sync=false"
    ))
    .unwrap()
    .downcast::<gst::Pipeline>()
    .unwrap();
    let sink = pipeline
        .by_name("sink")
        .unwrap()
        .downcast::<gst_app::AppSink>()
        .unwrap();
    pipeline.set_state(gst::State::Playing).unwrap();
    let mut out = Vec::new();
    while let Some(s) = sink.try_pull_sample(gst::ClockTime::from_seconds(WAIT.as_secs())) {
        let b = s.buffer().unwrap().map_readable().unwrap();
        out.push(b.as_slice().to_vec());
    }
    pipeline.set_state(gst::State::Null).unwrap();
    assert_eq!(out.len(), n, "jpegenc made {} of {n} JPEGs", out.len());
    out
}

/// The `.mjpeg` bytes of `frames`: 5 ASCII digits of each length, then the JPEG.
fn mjpeg(frames: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::new();
    for f in frames {
        out.extend_from_slice(format!("{:05}", f.len()).as_bytes());
        out.extend_from_slice(f);
    }
    out
}

fn write(dir: &Path, name: &str, data: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, data).unwrap();
    p
}

fn ms(n: u64) -> gst::ClockTime {
    gst::ClockTime::from_mseconds(n)
}

/// A pipeline from a description with an appsink named `sink`.
fn pipeline_with_sink(desc: &str) -> (gst::Pipeline, gst_app::AppSink) {
    let pipeline = gst::parse::launch(desc)
        .unwrap()
        .downcast::<gst::Pipeline>()
        .unwrap();
    let sink = pipeline
        .by_name("sink")
        .unwrap()
        .downcast::<gst_app::AppSink>()
        .unwrap();
    (pipeline, sink)
}

/// Waits (bounded) for async-done or an error on the bus; panics on an error.
fn wait_async_done(pipeline: &gst::Pipeline) {
    let bus = pipeline.bus().unwrap();
    let msg = bus
        .timed_pop_filtered(
            gst::ClockTime::from_seconds(WAIT.as_secs()),
            &[gst::MessageType::AsyncDone, gst::MessageType::Error],
        )
        .expect("no async-done in time");
    if let gst::MessageView::Error(e) = msg.view() {
        panic!("error: {} ({:?})", e.error(), e.debug());
    }
}

/// Every sample until EOS (bounded), then the pipeline to NULL; panics on a bus error.
fn pull_all(pipeline: &gst::Pipeline, sink: &gst_app::AppSink) -> Vec<gst::Sample> {
    let mut out = Vec::new();
    while let Some(s) = sink.try_pull_sample(gst::ClockTime::from_seconds(WAIT.as_secs())) {
        out.push(s);
    }
    assert!(sink.is_eos(), "no EOS within {WAIT:?}");
    let bus = pipeline.bus().unwrap();
    if let Some(msg) = bus.pop_filtered(&[gst::MessageType::Error]) {
        if let gst::MessageView::Error(e) = msg.view() {
            panic!("error: {} ({:?})", e.error(), e.debug());
        }
    }
    pipeline.set_state(gst::State::Null).unwrap();
    out
}

fn caps_size(s: &gst::Sample) -> (i32, i32) {
    let st = s.caps().unwrap().structure(0).unwrap().to_owned();
    (st.get("width").unwrap(), st.get("height").unwrap())
}

#[test]
fn pushed_chunks_become_timestamped_key_frames_with_exact_bytes() {
    common::init();
    let frames = jpegs(FRAMES);
    let stream = mjpeg(&frames);
    // The property is read at start, so it is given at parse time.
    let mut h = gst_check::Harness::new_parse("mjpegframeparse framerate=20/1");
    h.set_src_caps_str("video/x-mjpeg-framed");
    // Chunks that cut prefixes and JPEGs anywhere.
    for chunk in stream.chunks(777) {
        h.push(gst::Buffer::from_slice(chunk.to_vec())).unwrap();
    }
    h.push_event(gst::event::Eos::new());
    let mut got = Vec::new();
    while let Some(b) = h.try_pull() {
        got.push(b);
    }
    assert_eq!(got.len(), FRAMES);
    for (i, b) in got.iter().enumerate() {
        let i64 = i as u64;
        assert_eq!(b.pts(), Some(ms(50 * i64)), "frame {i} pts");
        assert_eq!(b.dts(), Some(ms(50 * i64)), "frame {i} dts");
        assert_eq!(b.duration(), Some(ms(50)), "frame {i} duration");
        assert!(
            !b.flags().contains(gst::BufferFlags::DELTA_UNIT),
            "frame {i} is a key frame"
        );
        assert_eq!(
            b.map_readable().unwrap().as_slice(),
            &frames[i][..],
            "frame {i} bytes"
        );
    }
    let caps = h.sinkpad().unwrap().current_caps().unwrap();
    let s = caps.structure(0).unwrap();
    assert_eq!(s.name(), "image/jpeg");
    assert_eq!(s.get::<bool>("parsed"), Ok(true));
    assert_eq!(s.get::<i32>("width"), Ok(WIDTH));
    assert_eq!(s.get::<i32>("height"), Ok(HEIGHT));
    assert_eq!(
        s.get::<gst::Fraction>("framerate"),
        Ok(gst::Fraction::new(20, 1))
    );
}

#[test]
fn filesrc_jpegdec_decodes_every_frame_at_its_time_and_reports_the_duration() {
    common::init();
    let dir = common::temp_dir("mjpegframeparse", "decode");
    let file = write(&dir, "movie.mjpeg", &mjpeg(&jpegs(FRAMES)));
    let (pipeline, sink) = pipeline_with_sink(&format!(
        "filesrc location={} ! mjpegframeparse ! jpegdec ! appsink name=sink sync=false",
        file.display()
    ));
    pipeline.set_state(gst::State::Paused).unwrap();
    wait_async_done(&pipeline);
    assert_eq!(
        pipeline.query_duration::<gst::ClockTime>(),
        Some(ms(40 * FRAMES as u64))
    );
    pipeline.set_state(gst::State::Playing).unwrap();
    let samples = pull_all(&pipeline, &sink);
    assert_eq!(samples.len(), FRAMES);
    for (i, s) in samples.iter().enumerate() {
        assert_eq!(
            s.buffer().unwrap().pts(),
            Some(ms(40 * i as u64)),
            "frame {i}"
        );
        assert_eq!(caps_size(s), (WIDTH, HEIGHT));
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// Frames above the 64 KiB BaseParse pulls at a time (noise JPEGs of ~86 kB, under the
/// format's 99 999-byte limit) come out whole.
#[test]
fn frames_larger_than_a_pull_block_come_out_whole() {
    common::init();
    let dir = common::temp_dir("mjpegframeparse", "large");
    let frames = jpegs_of(4, "snow", 352, 288, 93);
    assert!(
        frames.iter().all(|f| f.len() > 65_536 && f.len() <= 99_999),
        "sizes {:?}",
        frames.iter().map(Vec::len).collect::<Vec<_>>()
    );
    let file = write(&dir, "large.mjpeg", &mjpeg(&frames));
    let (pipeline, sink) = pipeline_with_sink(&format!(
        "filesrc location={} ! mjpegframeparse ! appsink name=sink sync=false",
        file.display()
    ));
    pipeline.set_state(gst::State::Playing).unwrap();
    let samples = pull_all(&pipeline, &sink);
    assert_eq!(samples.len(), frames.len());
    for (s, f) in samples.iter().zip(&frames) {
        assert!(s.buffer().unwrap().map_readable().unwrap().as_slice() == &f[..]);
        assert_eq!(caps_size(s), (352, 288));
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// Seeks a paused `filesrc ! mjpegframeparse ! appsink` to `target` with `flags`; the frames
/// that come out after it (bytes and PTS).
fn frames_after_seek(
    file: &Path,
    flags: gst::SeekFlags,
    target: gst::ClockTime,
) -> Vec<(u64, Vec<u8>)> {
    let (pipeline, sink) = pipeline_with_sink(&format!(
        "filesrc location={} ! mjpegframeparse ! appsink name=sink sync=false",
        file.display()
    ));
    pipeline.set_state(gst::State::Paused).unwrap();
    wait_async_done(&pipeline);
    pipeline.seek_simple(flags, target).expect("seek");
    wait_async_done(&pipeline);
    pipeline.set_state(gst::State::Playing).unwrap();
    pull_all(&pipeline, &sink)
        .iter()
        .map(|s| {
            let b = s.buffer().unwrap();
            (
                b.pts().unwrap().mseconds(),
                b.map_readable().unwrap().as_slice().to_vec(),
            )
        })
        .collect()
}

#[test]
fn seek_in_time_restarts_at_the_frame_shown_at_that_time() {
    common::init();
    let dir = common::temp_dir("mjpegframeparse", "seek");
    let frames = jpegs(FRAMES);
    let file = write(&dir, "movie.mjpeg", &mjpeg(&frames));
    // 7 × 40 ms + 10 ms shows frame 7; so does 7 × 40 ms exactly; 450 ms shows frame 11.
    for (flags, target, first) in [
        (gst::SeekFlags::FLUSH, ms(290), 7usize),
        (gst::SeekFlags::FLUSH | gst::SeekFlags::KEY_UNIT, ms(280), 7),
        (gst::SeekFlags::FLUSH | gst::SeekFlags::ACCURATE, ms(130), 3),
        (gst::SeekFlags::FLUSH, ms(450), 11),
    ] {
        let got = frames_after_seek(&file, flags, target);
        assert_eq!(
            got.len(),
            FRAMES - first,
            "seek {flags:?} to {target}: frames {:?}",
            got.iter().map(|(t, _)| *t).collect::<Vec<_>>()
        );
        for (k, (pts, bytes)) in got.iter().enumerate() {
            let n = first + k;
            assert_eq!(
                *pts,
                40 * n as u64,
                "seek {flags:?} to {target}: pts of frame {n}"
            );
            assert!(
                bytes == &frames[n],
                "seek {flags:?} to {target}: bytes of frame {n}"
            );
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn rtp_jpeg_round_trip_decodes_every_frame() {
    common::init();
    let dir = common::temp_dir("mjpegframeparse", "rtp");
    let file = write(&dir, "movie.mjpeg", &mjpeg(&jpegs(FRAMES)));
    let (pipeline, sink) = pipeline_with_sink(&format!(
        "filesrc location={} ! mjpegframeparse ! rtpjpegpay ! application/x-rtp,payload=26 ! \
         rtpjpegdepay ! jpegdec ! appsink name=sink sync=false",
        file.display()
    ));
    pipeline.set_state(gst::State::Playing).unwrap();
    let samples = pull_all(&pipeline, &sink);
    assert_eq!(samples.len(), FRAMES);
    for s in &samples {
        assert_eq!(caps_size(s), (WIDTH, HEIGHT));
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// The directory holding libgstdvb2ip.so (the test binary sits in its deps/).
fn plugin_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().and_then(|d| d.parent()).unwrap().to_path_buf();
    assert!(
        dir.join("libgstdvb2ip.so").exists(),
        "{} has no libgstdvb2ip.so; run `cargo build -p gst-plugin-dvb2ip` first",
        dir.display()
    );
    dir
}

/// pipelines/mjpeg-file.launch, as the README runs it (`gst-launch-1.0 -v $(cat …)`) next to a
/// movie.mjpeg, decodes every frame at 25 fps.
#[test]
fn gst_launch_runs_the_mjpeg_file_example_and_decodes_every_frame() {
    common::init();
    let dir = common::temp_dir("mjpegframeparse", "launch");
    write(&dir, "movie.mjpeg", &mjpeg(&jpegs(FRAMES)));
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../pipelines/mjpeg-file.launch");
    let desc = std::fs::read_to_string(&example).unwrap();
    let out = Command::new("timeout")
        .arg(WAIT.as_secs().to_string())
        .args(["gst-launch-1.0", "-v"])
        .args(desc.split_whitespace())
        .env("GST_PLUGIN_PATH", plugin_dir())
        .current_dir(&dir)
        .output()
        .expect("run gst-launch-1.0");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{}: {text}", out.status);
    assert!(!text.contains("ERROR"), "{text}");
    let chains: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("last-message = chain"))
        .collect();
    assert_eq!(chains.len(), FRAMES, "{text}");
    for (i, l) in chains.iter().enumerate() {
        let ns = 40_000_000 * i as u64;
        let pts = format!(
            "pts: 0:00:{:02}.{:09},",
            ns / 1_000_000_000,
            ns % 1_000_000_000
        );
        assert!(l.contains(&pts), "frame {i}: {l}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// Plays `filesrc ! [queue !] mjpegframeparse ! fakesink` on `data`; the first bus error, its
/// debug text and the name of the element that posted it.
fn first_error(
    dir: &Path,
    name: &str,
    data: &[u8],
    push: bool,
) -> (glib::Error, Option<String>, Option<String>) {
    let file = write(dir, name, data);
    let pipeline = gst::parse::launch(&format!(
        "filesrc location={} ! {} mjpegframeparse name=parse ! fakesink",
        file.display(),
        if push { "queue !" } else { "" }
    ))
    .unwrap()
    .downcast::<gst::Pipeline>()
    .unwrap();
    pipeline.set_state(gst::State::Playing).unwrap();
    let msg = pipeline
        .bus()
        .unwrap()
        .timed_pop_filtered(
            gst::ClockTime::from_seconds(WAIT.as_secs()),
            &[gst::MessageType::Error, gst::MessageType::Eos],
        )
        .expect("no error or EOS in time");
    pipeline.set_state(gst::State::Null).unwrap();
    match msg.view() {
        gst::MessageView::Error(e) => (
            e.error(),
            e.debug().map(|d| d.to_string()),
            e.src().map(|s| s.name().to_string()),
        ),
        _ => panic!("{name}: EOS instead of an error"),
    }
}

#[test]
fn damaged_files_give_a_format_error_naming_the_byte_offset() {
    common::init();
    let dir = common::temp_dir("mjpegframeparse", "damaged");
    let frames = jpegs(3);
    let good = mjpeg(&frames);
    let second = 5 + frames[0].len();
    let third = second + 5 + frames[1].len();

    let mut digits = good.clone();
    digits[second + 2] = b'x';
    let mut zero = good.clone();
    zero[second..second + 5].copy_from_slice(b"00000");
    let mut png = good.clone();
    png[second + 5..second + 9].copy_from_slice(b"\x89PNG");
    let truncated = &good[..good.len() - 10];
    let mut cut_soi = mjpeg(&frames[..1]);
    cut_soi.extend_from_slice(b"00100\xFF");
    let mut no_sof = mjpeg(&frames[..1]);
    no_sof.extend_from_slice(b"00004\xFF\xD8\xFF\xD9");

    let x = String::from_utf8_lossy(&digits[second..second + 5]).to_string();
    let cases: Vec<(&str, &[u8], String)> = vec![
        (
            "digits",
            &digits,
            format!("bad frame length at byte {second}: expected 5 ASCII digits, found \"{x}\""),
        ),
        (
            "zero",
            &zero,
            format!("empty frame (length 00000) at byte {second}"),
        ),
        (
            "png",
            &png,
            format!("frame at byte {second} is not a JPEG: it starts with 89 50"),
        ),
        (
            "truncated",
            truncated,
            format!(
                "truncated frame at byte {third}: {} of {} bytes",
                good.len() - 10 - third,
                good.len() - third
            ),
        ),
        (
            "cutsoi",
            &cut_soi,
            format!("truncated frame at byte {second}: 6 of 105 bytes"),
        ),
        (
            "nosof",
            &no_sof,
            format!("frame at byte {second} is a JPEG without a start-of-frame (SOF) marker"),
        ),
    ];
    for (name, data, expected) in cases {
        for push in [false, true] {
            let (error, debug, src) = first_error(&dir, &format!("{name}.mjpeg"), data, push);
            let what = format!("{name} (push {push}): {error} / {debug:?}");
            assert!(error.matches(gst::StreamError::Format), "{what}");
            assert!(
                error.to_string().contains(&expected),
                "{what}\nexpected {expected}"
            );
            assert_eq!(src.as_deref(), Some("parse"), "{what}");
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}
