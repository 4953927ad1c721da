//! Files on demand over RTSP: `rtsp://HOST/vod/<path below a [vod] root>`.
//!
//! gst-rtsp-server does the RTSP of it (sessions, transports, RTP-Info, seeking a prepared media
//! on `Range`, rates on `Scale`, PAUSE, GET_PARAMETER, timeouts); this module adds what it lacks:
//!
//! * Routing: gst-rtsp-server matches DESCRIBE by exact mount path and splits a SETUP's control
//!   (`/stream=N`) off at the mount, so every file gets a mount of its own, added on its first
//!   request at its canonical path ([`super::rtsp_npt::mount_path`]: every spelling of one URL
//!   shares it), with a [`VodFactory`] that builds a media per request.
//! * Refusals before any pipeline exists: a path [`crate::vod::path::resolve`] refuses (missing,
//!   outside the roots, …) → 404, one answer for every cause; a file no demuxer reads → 415 with
//!   the reason; `Range` starting at or after the end → 457; `Scale: 0` or junk → 400.
//! * Scale: the answer names the rate applied (gst-rtsp-server would answer `Scale: 1.000` and
//!   `Speed: 4.000` for a 4× seek). A reverse rate goes to gst-rtsp-server as a rate-1 seek to
//!   where reverse play starts, then [`super::rtsp_reverse`] steps backwards; on a file without
//!   video it is applied and answered as 1.
//! * A read error ends the session (after RTCP BYE); see [`super::rtsp_media`].
//! * With `[vod] direct`, a TS file's mount gets a [`super::rtsp_direct::DirectFactory`] instead
//!   (one MP2T stream, no pipeline per session); PLAY and the answers of its sessions go to
//!   [`super::rtsp_direct`].

use std::sync::Arc;

use gst::glib;
use gst_rtsp_server::prelude::*;
use gst_rtsp_server::{RTSPContext, RTSPMedia};

use super::rtsp_media::{check_format, state_of, VodFactory};
use super::rtsp_npt::{
    applied_scale, mount_path, parse_range, parse_scale, split_vod_path, RangeReq,
};
use crate::core::Core;
use crate::rtsp::client::Answer;
use crate::rtsp::message::{Msg, METHOD_DESCRIBE, METHOD_PLAY, METHOD_SETUP};
use crate::rtsp::routing::uri_path;

/// Rounding slack when comparing a requested NPT with a key frame's time, seconds.
const NPT_SLACK_S: f64 = 0.002;

/// VOD URLs start with this path.
pub const VOD_PREFIX: &str = "/vod/";

pub(crate) use super::CAT;

/// The path of a request URI as gst-rtsp-server sees it (repeated `/` collapsed, no trailing
/// `/`), if it is a VOD path.
fn vod_path(uri: &str) -> Option<String> {
    let path = super::rtsp_npt::sanitize_path(uri_path(uri));
    path.starts_with(VOD_PREFIX).then_some(path)
}

/// Whether `uri` (a request URI) names a VOD file.
pub fn is_vod(uri: &str) -> bool {
    vod_path(uri).is_some()
}

/// The file a VOD request URI names, as the path rules allow it.
pub fn resolve_uri(core: &Core, uri: &str) -> Result<super::path::Resolved, Answer> {
    let not_found = || Answer::plain(404, "Not Found");
    let path = vod_path(uri).ok_or_else(not_found)?;
    let (file, _) = split_vod_path(&path).ok_or_else(not_found)?;
    // `resolve` logs the real reason of a refusal; the client only ever sees 404.
    super::path::resolve(&core.config.vod.roots, file).map_err(|_| not_found())
}

/// The mount path of a VOD request (its file's canonical mount, then `/stream=N` if named),
/// mounting a [`VodFactory`] there on first use. `check` also refuses files no demuxer reads
/// (DESCRIBE, and a SETUP without DESCRIBE).
pub fn make_path(
    client: &impl IsA<gst_rtsp_server::RTSPClient>,
    core: &Arc<Core>,
    uri: &str,
    check: bool,
) -> Result<String, Answer> {
    let resolved = resolve_uri(core, uri)?;
    if check {
        if let Err(reason) = check_format(&resolved.file) {
            gst::info!(CAT, "{uri}: 415: {reason}");
            return Err(Answer {
                status: 415,
                reason: "Unsupported Media Type".into(),
                headers: vec![],
                body: Some(("text/plain".into(), reason)),
            });
        }
    }
    let mount = mount_path(&resolved.relative);
    let mounts = client
        .as_ref()
        .mount_points()
        .ok_or_else(|| Answer::plain(500, "Internal Server Error"))?;
    if crate::rtsp::mounts::mount_of(&mounts, &mount).as_deref() != Some(mount.as_str()) {
        if super::rtsp_direct::serves(core, &resolved.file) {
            gst::debug!(
                CAT,
                "mounting {mount} → {} (direct, MP2T)",
                resolved.file.display()
            );
            mounts.add_factory(
                &mount,
                super::rtsp_direct::DirectFactory::new(resolved.file),
            );
        } else {
            gst::debug!(CAT, "mounting {mount} → {}", resolved.file.display());
            mounts.add_factory(&mount, VodFactory::new(core.clone()));
        }
    }
    let path = vod_path(uri).unwrap_or_default();
    Ok(match split_vod_path(&path).and_then(|(_, c)| c) {
        Some(c) => format!("{mount}/{c}"),
        None => mount,
    })
}

/// The mount path of a DESCRIBE on a VOD URL, for the mount points (which look DESCRIBE up
/// themselves): the request's client already checked it in `pre_describe_request`.
pub fn describe_path(url: &gst_rtsp_server::gst_rtsp::RTSPUrl) -> Option<Option<glib::GString>> {
    let uri = url.request_uri();
    if !is_vod(&uri) {
        return None;
    }
    let path = RTSPContext::with_current_context(|ctx| {
        let client = ctx.client()?;
        let satip = client.downcast_ref::<crate::rtsp::client::SatipClient>()?;
        make_path(satip, satip.core(), &uri, false).ok()
    })
    .flatten();
    Some(Some(
        path.unwrap_or_else(|| crate::rtsp::routing::REFUSED_PATH.to_string())
            .into(),
    ))
}

/// The end of a media's range in seconds (`npt=0-60.040` → 60.04), if known.
fn duration_s(media: &RTSPMedia) -> Option<f64> {
    let r = media.range_string(false, gst_rtsp_server::gst_rtsp::RTSPRangeUnit::Npt)?;
    let end = r.split('-').nth(1)?.trim();
    end.parse::<f64>().ok()
}

/// Checks of a PLAY on a VOD session before gst-rtsp-server seeks: `Range` syntax (400) and
/// bounds (457), `Scale` (400 for 0 or junk; a reverse rate the reader cannot do becomes 1). A
/// rate change without Range seeks to the current position (gst-rtsp-server would only seek
/// for a trick rate, so a return to 1 would keep the old rate).
pub(crate) fn pre_play(media: Option<&RTSPMedia>, request: &Msg) -> Result<(), Answer> {
    if let Some(m) = media.filter(|m| super::rtsp_direct::is_direct(m)) {
        return super::rtsp_direct::pre_play(m, request);
    }
    let state = media.and_then(state_of);
    let scale = match request.header("Scale") {
        Some(v) => Some(parse_scale(&v).map_err(|e| {
            gst::info!(CAT, "PLAY: 400: {e}");
            Answer::plain(400, "Bad Request")
        })?),
        None => None,
    };
    let reverse_ok = state.as_ref().is_some_and(|st| st.target.has_video());
    let applied = scale.map(|s| applied_scale(s, reverse_ok));
    if let (Some(s), Some(a)) = (scale, applied) {
        if a != s {
            gst::info!(
                CAT,
                "PLAY: Scale {s} not possible on this file, applying {a}"
            );
            request.set_header("Scale", &format!("{a:.3}"));
        }
    }
    let npt = match request.header("Range").map(|v| parse_range(&v)) {
        None | Some(Ok(RangeReq::Other)) => None,
        Some(Ok(RangeReq::Npt(n))) => Some(n),
        Some(Err(e)) => {
            gst::info!(CAT, "PLAY: 400: {e}");
            return Err(Answer::plain(400, "Bad Request"));
        }
    };
    if let Some(npt) = npt {
        if let (Some(start), Some(d)) = (npt.start, media.and_then(duration_s)) {
            if start >= d {
                gst::info!(
                    CAT,
                    "PLAY: 457: Range starts at {start} s, the end is {d} s"
                );
                return Err(Answer::plain(457, "Invalid Range"));
            }
        }
        if let (Some(start), Some(end)) = (npt.start, npt.end) {
            if end <= start && applied.unwrap_or(1.0) > 0.0 {
                return Err(Answer::plain(457, "Invalid Range"));
            }
        }
    }
    let Some(st) = state else { return Ok(()) };
    let new_rate = applied.unwrap_or(1.0);
    let old_rate = std::mem::replace(&mut *st.rate.lock().unwrap(), new_rate);
    // A reverse run stops here (its position is the last key frame it sent).
    let reverse_at = st.target.reverse.stop().map(|t| t.nseconds() as f64 / 1e9);
    if new_rate < 0.0 {
        // gst-rtsp-server seeks at rate 1 to where reverse play starts; the answer names the
        // reverse rate.
        request.set_header("Scale", "1.000");
        request.set_header(REVERSE_SCALE, &format!("{new_rate:.3}"));
    }
    let start = match npt.and_then(|n| n.start) {
        Some(s) => Some(s),
        None if new_rate != old_rate || new_rate < 0.0 || reverse_at.is_some() => {
            // A seek where the media is, without a target: video resumes at its next key
            // frame (the position a trick rate reports can run ahead of the data).
            let pos = reverse_at.or_else(|| {
                media.and_then(|m| {
                    position_s(m).or_else(|| {
                        super::rtsp_media::reader_position(m).map(|p| p.nseconds() as f64 / 1e9)
                    })
                })
            });
            match pos {
                Some(p) => {
                    // One millisecond before: gst-rtsp-server does not seek to where it
                    // already is (a trick rate's position often sits exactly on a millisecond,
                    // e.g. a frame at 12.700 s), and without that seek the old rate would go
                    // on while the key-frame filter waits for the new start.
                    let p = (p - 0.001).max(0.0);
                    request.set_header("Range", &format!("npt={p:.3}-"));
                    st.target.start(u64::MAX);
                }
                None => gst::warning!(CAT, "PLAY: rate {new_rate}: position unknown, no seek"),
            }
            None
        }
        None => None,
    };
    if let Some(s) = start {
        st.at_end.store(false, std::sync::atomic::Ordering::SeqCst);
        // Video starts at the random access point at or before the NPT asked for, audio at
        // the same point; nothing before it leaves (the demuxer lands up to a few seconds
        // earlier). Clients write NPT in milliseconds: a key frame a hair before counts as at
        // it.
        st.target.start(((s - NPT_SLACK_S).max(0.0) * 1e9) as u64);
        request.set_header(SEEKING, "1");
    }
    if new_rate < 0.0 {
        st.target.reverse.begin(new_rate);
    }
    Ok(())
}

/// A header pre_play adds to a PLAY request that seeks (read back when answering it).
const SEEKING: &str = "X-Dvb2ip-Seeking";
/// A header pre_play adds to a PLAY request with a reverse Scale: the Scale applied.
const REVERSE_SCALE: &str = "X-Dvb2ip-Reverse-Scale";

/// The start of a media's current range in seconds (where it is).
fn position_s(media: &RTSPMedia) -> Option<f64> {
    let r = media.range_string(true, gst_rtsp_server::gst_rtsp::RTSPRangeUnit::Npt)?;
    r.strip_prefix("npt=")?
        .split('-')
        .next()?
        .trim()
        .parse()
        .ok()
}

/// Finishes gst-rtsp-server's answer to a VOD request.
pub(crate) fn finish_response(
    client: &impl IsA<gst_rtsp_server::RTSPClient>,
    msg: &Msg,
    request: Option<&Msg>,
    method: u32,
    media: Option<&RTSPMedia>,
    media_error: Option<glib::Error>,
) {
    if method == crate::rtsp::message::METHOD_PAUSE {
        super::rtsp_direct::pause_session(msg);
    }
    if let Some(m) = media.filter(|m| super::rtsp_direct::is_direct(m)) {
        let Some(satip) = client
            .as_ref()
            .downcast_ref::<crate::rtsp::client::SatipClient>()
        else {
            return;
        };
        super::rtsp_direct::finish_response(satip.core(), client.as_ref(), msg, request, method, m);
        return;
    }
    let status = msg.status().unwrap_or(0);
    match (method, status) {
        // The media could not be prepared: the file is not what its name or first bytes said.
        (METHOD_DESCRIBE | METHOD_SETUP, 503) => {
            let reason = media_error
                .map(|e| e.message().to_string())
                .unwrap_or_else(|| "no stream of the file can be sent over RTP".into());
            gst::info!(CAT, "415: {reason}");
            msg.reset_response(415, "Unsupported Media Type", request);
            msg.add_header("Content-Type", "text/plain");
            msg.set_body(reason.as_bytes());
        }
        (METHOD_PLAY, 200) => {
            let Some(request) = request else { return };
            // The Range actually used: from the random access point the seek landed on (the
            // pipeline's position still names where the demuxer landed, before it).
            let landed = media
                .and_then(state_of)
                .and_then(|st| st.target.landed())
                .filter(|_| request.header(SEEKING).is_some());
            if let (Some(t), Some(range)) = (landed, msg.header("Range")) {
                let end = range.split_once('-').map(|(_, e)| e.to_string());
                msg.set_header(
                    "Range",
                    &format!("npt={:.3}-{}", t as f64 / 1e9, end.unwrap_or_default()),
                );
            }
            // The Scale applied (the request's, as pre_play left it).
            let scale = request
                .header(REVERSE_SCALE)
                .or_else(|| request.header("Scale"));
            match scale.and_then(|s| parse_scale(&s).ok()) {
                Some(s) => {
                    msg.set_header("Scale", &format!("{s:.3}"));
                    if request.header("Speed").is_none() {
                        msg.remove_header("Speed");
                    }
                }
                None if request.header("Speed").is_none() => {
                    msg.remove_header("Speed");
                }
                None => {}
            }
        }
        (METHOD_SETUP, 200) => {
            // A read error ends the session (rtsp_media pushes BYE first).
            let Some(session) =
                RTSPContext::with_current_context(|c| c.session().cloned()).flatten()
            else {
                return;
            };
            let Some(pool) = client.as_ref().session_pool() else {
                return;
            };
            let path = RTSPContext::with_current_context(|c| c.uri().map(|u| u.request_uri()))
                .flatten()
                .and_then(|u| vod_path(&u));
            let media = path.and_then(|_| {
                let mut found = None;
                session.filter(Some(&mut |_, sm| {
                    if found.is_none() {
                        found = sm.media();
                    }
                    gst_rtsp_server::RTSPFilterResult::Keep
                }));
                found
            });
            let Some(state) = media.as_ref().and_then(state_of) else {
                return;
            };
            let weak_session = session.downgrade();
            let weak_pool = pool.downgrade();
            state.on_fatal(move || {
                if let (Some(s), Some(p)) = (weak_session.upgrade(), weak_pool.upgrade()) {
                    gst::info!(
                        CAT,
                        "ending session {} after a read error",
                        s.sessionid().unwrap_or_default()
                    );
                    let _ = p.remove(&s);
                }
            });
        }
        _ => {}
    }
}
