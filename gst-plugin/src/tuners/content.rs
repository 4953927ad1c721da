//! Emulated broadcast content: elementary streams made locally by GStreamer encoders at first
//! use and cached on disk.
//!
//! Every stream is one 12 s loop: video is 300 frames of H.264 at 25 fps (test pattern, service
//! name and a running clock burnt in, IDR every second, no B-frames so the loop point is a
//! clean IDR), audio is 500 frames of MPEG-1 Layer II at 48 kHz (a test tone).
//! The cache file is a tiny container of access units (see `write_es`/`read_es`).

use std::collections::HashMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use gst::prelude::*;
use once_cell::sync::Lazy;

use super::config::{MuxConfig, ServiceKind};
use crate::proto::mux::EsData;

pub const LOOP_SECONDS: u64 = 12;
pub const VIDEO_FRAMES: usize = 300; // 25 fps
pub const VIDEO_FRAME_90K: u64 = 3600;
pub const AUDIO_FRAMES: usize = 500; // 1152 samples at 48 kHz = 24 ms
pub const AUDIO_FRAME_90K: u64 = 2160;
const FORMAT_VERSION: u32 = 1;
const MAGIC: &[u8; 8] = b"DVB2IPES";

static CAT: Lazy<gst::DebugCategory> = Lazy::new(|| {
    gst::DebugCategory::new(
        "dvb2ip-content",
        gst::DebugColorFlags::empty(),
        Some("dvb2ip emulated content"),
    )
});

static LOADED: Lazy<Mutex<HashMap<PathBuf, EsData>>> = Lazy::new(|| Mutex::new(HashMap::new()));

/// What one elementary stream is made of; its cache file name derives from this.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum EsRecipe {
    Video { name: String, pattern: String },
    Audio { tone_hz: u32 },
}

impl EsRecipe {
    fn file_name(&self) -> String {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        FORMAT_VERSION.hash(&mut h);
        self.hash(&mut h);
        match self {
            EsRecipe::Video { .. } => format!("video-{:016x}.es", h.finish()),
            EsRecipe::Audio { .. } => format!("audio-{:016x}.es", h.finish()),
        }
    }

    fn pipeline(&self) -> String {
        match self {
            EsRecipe::Video { name, pattern } => {
                let text = name.replace(['"', '\\'], "");
                format!(
                    "videotestsrc pattern={pattern} num-buffers={VIDEO_FRAMES} \
                     ! video/x-raw,format=I420,width=720,height=576,framerate=25/1,pixel-aspect-ratio=16/15 \
                     ! textoverlay text=\"{text}\" valignment=top halignment=left font-desc=\"Sans Bold 28\" shaded-background=true \
                     ! timeoverlay valignment=bottom halignment=right font-desc=\"Sans 24\" shaded-background=true \
                     ! x264enc bframes=0 key-int-max=25 bitrate=2500 vbv-buf-capacity=1000 speed-preset=veryfast \
                       option-string=\"scenecut=0:repeat-headers=1\" \
                     ! video/x-h264,stream-format=byte-stream,alignment=au,profile=main \
                     ! appsink name=sink sync=false max-buffers=0"
                )
            }
            EsRecipe::Audio { tone_hz } => format!(
                "audiotestsrc wave=sine freq={tone_hz} volume=0.3 samplesperbuffer=1152 num-buffers={} \
                 ! audio/x-raw,format=S16LE,rate=48000,channels=2 \
                 ! avenc_mp2 bitrate=128000 ! appsink name=sink sync=false max-buffers=0",
                AUDIO_FRAMES + 4
            ),
        }
    }

    fn frames(&self) -> (usize, u64) {
        match self {
            EsRecipe::Video { .. } => (VIDEO_FRAMES, VIDEO_FRAME_90K),
            EsRecipe::Audio { .. } => (AUDIO_FRAMES, AUDIO_FRAME_90K),
        }
    }
}

/// The recipes a multiplex needs, per service: (video, audio).
pub fn recipes(mux: &MuxConfig) -> Vec<(Option<EsRecipe>, EsRecipe)> {
    mux.service
        .iter()
        .map(|s| {
            let video = (s.kind == ServiceKind::Tv).then(|| EsRecipe::Video {
                name: s.name.clone(),
                pattern: s.pattern.clone(),
            });
            (video, EsRecipe::Audio { tone_hz: s.tone_hz })
        })
        .collect()
}

#[derive(Debug)]
pub struct ContentError(pub String);

impl std::fmt::Display for ContentError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ContentError {}

fn write_es(path: &Path, frames: &[(bool, Vec<u8>)], frame_90k: u64) -> std::io::Result<()> {
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    {
        let mut f = std::io::BufWriter::new(fs::File::create(&tmp)?);
        f.write_all(MAGIC)?;
        f.write_all(&FORMAT_VERSION.to_le_bytes())?;
        f.write_all(&frame_90k.to_le_bytes())?;
        f.write_all(&(frames.len() as u32).to_le_bytes())?;
        for (key, data) in frames {
            f.write_all(&[*key as u8])?;
            f.write_all(&(data.len() as u32).to_le_bytes())?;
            f.write_all(data)?;
        }
        f.flush()?;
    }
    fs::rename(&tmp, path)
}

/// Reads a cached stream; `None` if it is absent or not of this format version.
fn read_es(path: &Path) -> Option<EsData> {
    let b = fs::read(path).ok()?;
    let mut pos = 0usize;
    let mut take = |n: usize| -> Option<&[u8]> {
        let s = b.get(pos..pos + n)?;
        pos += n;
        Some(s)
    };
    if take(8)? != MAGIC || u32::from_le_bytes(take(4)?.try_into().ok()?) != FORMAT_VERSION {
        return None;
    }
    let frame_90k = u64::from_le_bytes(take(8)?.try_into().ok()?);
    let n = u32::from_le_bytes(take(4)?.try_into().ok()?) as usize;
    let mut frames = Vec::with_capacity(n);
    let mut keys = Vec::with_capacity(n);
    for _ in 0..n {
        let key = take(1)?[0] != 0;
        let len = u32::from_le_bytes(take(4)?.try_into().ok()?) as usize;
        frames.push(take(len)?.to_vec());
        keys.push(key);
    }
    Some(EsData {
        frames: Arc::new(frames),
        keyframes: Arc::new(keys),
        frame_duration_90k: frame_90k,
    })
}

fn encode(recipe: &EsRecipe) -> Result<Vec<(bool, Vec<u8>)>, ContentError> {
    let desc = recipe.pipeline();
    let pipeline = gst::parse::launch(&desc)
        .map_err(|e| ContentError(format!("cannot build encoder pipeline ({e}); are gstreamer1.0-plugins-ugly (x264enc), gstreamer1.0-libav (avenc_mp2) and gstreamer1.0-plugins-base installed?")))?
        .downcast::<gst::Pipeline>()
        .map_err(|_| ContentError("encoder description is not a pipeline".into()))?;
    let sink = pipeline
        .by_name("sink")
        .and_then(|s| s.downcast::<gst_app::AppSink>().ok())
        .ok_or_else(|| ContentError("encoder pipeline has no appsink".into()))?;
    pipeline
        .set_state(gst::State::Playing)
        .map_err(|e| ContentError(format!("encoder pipeline failed to start: {e}")))?;
    let mut frames = Vec::new();
    let (want, _) = recipe.frames();
    let result = loop {
        match sink.try_pull_sample(gst::ClockTime::from_seconds(60)) {
            Some(sample) => {
                if let Some(buf) = sample.buffer() {
                    let key = !buf.flags().contains(gst::BufferFlags::DELTA_UNIT);
                    if let Ok(map) = buf.map_readable() {
                        frames.push((key, map.as_slice().to_vec()));
                    }
                }
            }
            None => {
                if sink.is_eos() {
                    break Ok(());
                }
                let bus = pipeline.bus().expect("pipeline has a bus");
                let err = bus
                    .pop_filtered(&[gst::MessageType::Error])
                    .and_then(|m| match m.view() {
                        gst::MessageView::Error(e) => Some(e.error().to_string()),
                        _ => None,
                    })
                    .unwrap_or_else(|| "timed out".into());
                break Err(ContentError(format!("encoder pipeline failed: {err}")));
            }
        }
    };
    let _ = pipeline.set_state(gst::State::Null);
    result?;
    if frames.len() < want {
        return Err(ContentError(format!(
            "encoder produced {} frames, {} needed",
            frames.len(),
            want
        )));
    }
    frames.truncate(want);
    if matches!(recipe, EsRecipe::Video { .. }) && !frames[0].0 {
        return Err(ContentError("first video frame is not a keyframe".into()));
    }
    Ok(frames)
}

/// An exclusive `flock` on `<dir>/.lock` (std's `File::lock`), released on drop.
struct DirLock(fs::File);

impl DirLock {
    fn take(dir: &Path) -> std::io::Result<DirLock> {
        let f = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(dir.join(".lock"))?;
        f.lock()?;
        Ok(DirLock(f))
    }
}

impl Drop for DirLock {
    fn drop(&mut self) {
        let _ = self.0.unlock();
    }
}

/// Makes sure every recipe is in the cache, generating what is missing with a progress line on
/// stderr, and returns the loaded streams in order.
pub fn ensure(cache_dir: &Path, recipes: &[EsRecipe]) -> Result<Vec<EsData>, ContentError> {
    let paths: Vec<PathBuf> = recipes
        .iter()
        .map(|r| cache_dir.join(r.file_name()))
        .collect();
    let mut out = Vec::with_capacity(recipes.len());
    {
        let loaded = LOADED.lock().unwrap();
        if paths.iter().all(|p| loaded.contains_key(p)) {
            return Ok(paths.iter().map(|p| loaded[p].clone()).collect());
        }
    }
    fs::create_dir_all(cache_dir).map_err(|e| {
        ContentError(format!(
            "cannot create cache directory {}: {e}",
            cache_dir.display()
        ))
    })?;
    let _lock = DirLock::take(cache_dir).map_err(|e| {
        ContentError(format!(
            "cannot lock cache directory {}: {e}",
            cache_dir.display()
        ))
    })?;
    let missing: Vec<usize> = (0..recipes.len())
        .filter(|&i| read_es(&paths[i]).is_none())
        .collect();
    for (n, &i) in missing.iter().enumerate() {
        let what = match &recipes[i] {
            EsRecipe::Video { name, .. } => format!("video \"{name}\""),
            EsRecipe::Audio { tone_hz } => format!("audio {tone_hz} Hz"),
        };
        // A user-facing progress line: generation takes seconds and happens once.
        eprintln!(
            "dvb2ip: generating emulated broadcast content [{}/{}] {what} into {}",
            n + 1,
            missing.len(),
            cache_dir.display()
        );
        gst::info!(CAT, "generating {what}");
        let frames = encode(&recipes[i])?;
        let (_, dur) = recipes[i].frames();
        write_es(&paths[i], &frames, dur)
            .map_err(|e| ContentError(format!("cannot write {}: {e}", paths[i].display())))?;
    }
    let mut loaded = LOADED.lock().unwrap();
    for p in &paths {
        let es = match loaded.get(p) {
            Some(es) => es.clone(),
            None => {
                let es = read_es(p)
                    .ok_or_else(|| ContentError(format!("cannot read {}", p.display())))?;
                loaded.insert(p.clone(), es.clone());
                es
            }
        };
        out.push(es);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn es_file_round_trip_and_rejects_garbage() {
        let dir = std::env::temp_dir().join(format!("dvb2ip-es-test-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let p = dir.join("x.es");
        write_es(&p, &[(true, vec![1, 2, 3]), (false, vec![4])], 3600).unwrap();
        let es = read_es(&p).unwrap();
        assert_eq!(es.frames.len(), 2);
        assert_eq!(es.frames[0], vec![1, 2, 3]);
        assert_eq!(*es.keyframes, vec![true, false]);
        assert_eq!(es.frame_duration_90k, 3600);
        fs::write(&p, b"DVB2IPES\x01\x00\x00\x00short").unwrap();
        assert!(read_es(&p).is_none());
        fs::remove_dir_all(&dir).unwrap();
    }
}
