// dvb2ip companion screen: plays a channel in sync with a DVB-CSS TV (src/companion/mod.rs).
//
// Clocks: the page's own clock is performance.now() in ns. The TV's wall clock is estimated
// over the wall clock WebSocket (dvb2ip's extension: the 32-byte CSS-WC messages as binary
// WebSocket messages) with pydvbcss's lowest-dispersion rule, as the UDP client in
// dvb2ip_proto::css::wc does; without it, from CSS-TS control timestamps alone (larger error).
// Media: video.currentTime → muxed PTS (mpegts.js's own record of each remuxed segment) →
// broadcast PTS (the server's measured shift, /companion/<channel>/media.json) → the TV's
// timelines (its PTS and, if offered, TEMI control timestamps).
(function () {
  "use strict";
  var cfg = window.COMPANION_CONFIG || {};
  var query = new URLSearchParams(location.search);
  var $ = function (id) { return document.getElementById(id); };
  var video = $("video");
  var PTS_SELECTOR = "urn:dvb:css:timeline:pts";
  var PTS_WRAP = 8589934592; // 2^33
  var SEEK_THRESHOLD_MS = 250;
  var IN_SYNC_MS = 20;
  var CLIENT_MFE_PPM = 500;

  function nowNs() { return performance.now() * 1e6; }
  function mod33(v) { var r = v % PTS_WRAP; return r < 0 ? r + PTS_WRAP : r; }
  function ptsDiff(a, b) { var d = mod33(a - b); return d >= PTS_WRAP / 2 ? d - PTS_WRAP : d; }
  function fail(msg) { $("error").textContent = msg || ""; }

  // ----- where the TV is -----
  var ciiUrl, wcWsUrl, channel;
  if (cfg.mode === "tv") {
    ciiUrl = query.get("cii");
    wcWsUrl = query.get("wcws") || null;
    channel = query.get("channel");
    if (!ciiUrl) { fail("TV mode needs ?cii=ws://HOST:PORT/cii (and channel=NAME, optionally wcws=ws://HOST:PORT/wc)."); return; }
    if (!channel) { fail("TV mode needs channel=NAME: the channel of this server to play."); return; }
  } else {
    var host = cfg.ciiHost || location.hostname;
    if (host.indexOf(":") >= 0 && host[0] !== "[") { host = "[" + host + "]"; }
    ciiUrl = "ws://" + host + ":" + cfg.ciiPort + "/cii";
    wcWsUrl = query.has("nowc") ? null : "ws://" + host + ":" + cfg.ciiPort + "/wc";
    channel = cfg.channel;
  }

  var S = {
    state: "waiting", reason: "connecting", errorMs: null, inSyncSince: null,
    cii: {}, contentId: null, presentationStatus: null,
    followed: { selector: PTS_SELECTOR, rate: 90000 },
    cts: {}, // selector → {content, wall, speed} | null (unavailable)
    wc: { mode: wcWsUrl ? "websocket" : "cii-ts-only", est: null, ws: null, open: false, replies: 0, adopted: 0 },
    media: { segments: null, running: false, videoSegments: [] },
    seeks: 0, lastSeekAt: 0, seekLatencyMs: 150, seekPending: null, holding: false,
    events: [], syncedAt: null, loadedAt: performance.now()
  };
  // Diagnostics (read by tests): steering ticks, video frames, player warnings.
  var trace = { ticks: [], frames: [], audio: [] };
  function keep(list, item, n) { list.push(item); if (list.length > n) { list.shift(); } }
  function log(what) {
    S.events.push({ t: Math.round(performance.now()), what: what });
    if (S.events.length > 200) { S.events.shift(); }
  }

  // ----- wall clock over WebSocket (lowest dispersion) -----
  function dispersionAt(e, now) { return e.err0 + e.growth * Math.max(0, now - e.parent) / 1e9; }
  function wallAt(now) {
    var e = S.wc.est;
    return e ? e.child + (now - e.parent) : null;
  }
  function wcRequest(t1) {
    var b = new ArrayBuffer(32), v = new DataView(b);
    var secs = Math.floor(t1 / 1e9), nanos = Math.floor(t1 - secs * 1e9);
    v.setUint8(0, 0); v.setUint8(1, 0); v.setInt8(2, -13); v.setUint8(3, 0);
    v.setUint32(4, CLIENT_MFE_PPM * 256);
    v.setUint32(8, secs); v.setUint32(12, nanos);
    return { bytes: b, key: secs + ":" + nanos };
  }
  var wcPending = {}, wcTimer = null, wcStart = null, wcBackoff = 0.1;
  function wcSchedule(adopted) {
    var now = performance.now();
    var delay;
    if (now - wcStart < 2000) { delay = 50; }
    else if (adopted) { delay = wcBackoff * 1000; wcBackoff = Math.min(1.0, wcBackoff * 2); }
    else { delay = 200; }
    clearTimeout(wcTimer);
    wcTimer = setTimeout(wcSend, delay);
  }
  function wcSend() {
    var ws = S.wc.ws;
    if (!ws || ws.readyState !== 1) { return; }
    var t1 = Math.round(nowNs());
    var r = wcRequest(t1);
    wcPending = {};
    wcPending[r.key] = t1;
    ws.send(r.bytes);
    clearTimeout(wcTimer);
    wcTimer = setTimeout(function () { wcPending = {}; wcSchedule(false); }, 200);
  }
  function wcOnMessage(ev) {
    var t4 = nowNs();
    if (!(ev.data instanceof ArrayBuffer) || ev.data.byteLength !== 32) { return; }
    var v = new DataView(ev.data);
    var type = v.getUint8(1);
    if (v.getUint8(0) !== 0 || (type !== 1 && type !== 2 && type !== 3)) { return; }
    var key = v.getUint32(8) + ":" + v.getUint32(12);
    var t1 = wcPending[key];
    if (t1 === undefined) { return; }
    delete wcPending[key];
    var t2 = v.getUint32(16) * 1e9 + v.getUint32(20);
    var t3 = v.getUint32(24) * 1e9 + v.getUint32(28);
    var precision = Math.pow(2, v.getInt8(2));
    var mfeS = v.getUint32(4) / 256 / 1e6, mfeC = CLIENT_MFE_PPM / 1e6;
    var rtt = (t4 - t1) - (t3 - t2);
    var c = {
      parent: (t1 + t4) / 2, child: (t2 + t3) / 2,
      err0: precision + (Math.max(rtt, 0) / 2 + mfeC * Math.max(t4 - t1, 0) + mfeS * Math.max(t3 - t2, 0)) / 1e9,
      growth: mfeC + mfeS, rtt: rtt
    };
    S.wc.replies++;
    var adopted = !S.wc.est || dispersionAt(c, t4) < dispersionAt(S.wc.est, t4);
    if (adopted) { S.wc.est = c; S.wc.adopted++; }
    wcSchedule(adopted);
  }
  function openWc() {
    if (!wcWsUrl) { return; }
    var ws = new WebSocket(wcWsUrl);
    ws.binaryType = "arraybuffer";
    S.wc.ws = ws;
    ws.onopen = function () { S.wc.open = true; wcStart = performance.now(); wcBackoff = 0.1; log("wall clock WebSocket open"); wcSend(); };
    ws.onmessage = wcOnMessage;
    ws.onclose = function () {
      S.wc.open = false;
      clearTimeout(wcTimer);
      setTimeout(openWc, 2000);
    };
  }
  // Without the extension: each control timestamp's wall clock time is no later than when it
  // arrived, so the latest-looking one bounds the TV's wall clock from below.
  function ctOnlyClock(ct, arrived) {
    if (S.wc.mode !== "cii-ts-only" || !ct) { return; }
    var offset = ct.wall - arrived;
    var e = S.wc.est;
    if (!e || offset > e.child - e.parent) {
      S.wc.est = { parent: arrived, child: ct.wall, err0: 0.05, growth: 0.001, rtt: NaN };
    }
  }

  // ----- CSS-CII -----
  var tsSockets = {}, ciiRetries = 0;
  function openCii() {
    var ws;
    try { ws = new WebSocket(ciiUrl); } catch (e) { fail("Cannot open CSS-CII " + ciiUrl + ": " + e.message); return; }
    ws.onmessage = function (ev) {
      var m;
      try { m = JSON.parse(ev.data); } catch (e) { return; }
      var before = S.cii;
      var merged = Object.assign({}, before, m);
      S.cii = merged;
      if ("contentId" in m && m.contentId !== S.contentId) {
        if (S.contentId !== null) { log("contentId changed: " + S.contentId + " → " + m.contentId); }
        S.contentId = m.contentId;
        restartTs("content changed");
        if (m.contentId) { followChannel(m.contentId); }
      }
      if ("presentationStatus" in m) {
        // A string of space-separated words ("okay", "transitioning", "fault", …).
        var ps = m.presentationStatus;
        S.presentationStatus = Array.isArray(ps) ? ps : (ps ? String(ps).split(" ") : null);
        log("presentationStatus " + JSON.stringify(m.presentationStatus));
      }
      if ("timelines" in m || "tsUrl" in m) {
        pickTimeline();
        restartTs("timelines or tsUrl changed");
      }
    };
    ws.onopen = function () { log("CSS-CII open"); fail(""); ciiRetries = 0; };
    ws.onclose = function () {
      log("CSS-CII closed");
      S.reason = "the TV's CSS-CII (" + ciiUrl + ") is not reachable" +
        (cfg.mode === "tv" ? "" : " – its CSS runs while the channel's RTSP mount /ch/" + channel + " plays");
      closeTs();
      S.cii = {}; S.contentId = null;
      // A TV changing channel restarts its servers: try again soon, then every second.
      ciiRetries++;
      setTimeout(openCii, ciiRetries <= 4 ? 250 : 1000);
    };
  }
  // A channel change of the TV: play this server's channel whose service the new contentId
  // names (/companion/channels.json), if it is another one.
  function followChannel(contentId) {
    fetch("/companion/channels.json", { cache: "no-store" })
      .then(function (r) { return r.json(); })
      .then(function (j) {
        var list = (j && j.channels) || [];
        for (var i = 0; i < list.length; i++) {
          var stem = list[i].contentIdStem;
          if (contentId === stem || contentId.indexOf(stem + ";") === 0) {
            if (list[i].name !== channel && S.contentId === contentId) {
              log("channel change: playing " + list[i].name + " (" + contentId + ")");
              channel = list[i].name;
              S.media.segments = null; S.media.info = null; S.media.running = false;
              S.syncedAt = null; S.loadedAt = performance.now();
              startPlayer();
            }
            return;
          }
        }
      })
      .catch(function () { /* keep the current channel */ });
  }
  function pickTimeline() {
    var list = S.cii.timelines || [];
    var chosen = { selector: PTS_SELECTOR, rate: 90000 };
    for (var i = 0; i < list.length; i++) {
      var t = list[i];
      if (t && typeof t.timelineSelector === "string" && t.timelineSelector.indexOf("urn:dvb:css:timeline:temi:") === 0) {
        var p = t.timelineProperties || {};
        var rate = (p.unitsPerSecond || 0) / (p.unitsPerTick || 1);
        if (rate > 0) { chosen = { selector: t.timelineSelector, rate: rate }; break; }
      }
    }
    if (chosen.selector !== S.followed.selector) { log("following " + chosen.selector); }
    S.followed = chosen;
  }

  // ----- CSS-TS -----
  function closeTs() {
    for (var k in tsSockets) { tsSockets[k].onclose = null; tsSockets[k].close(); }
    tsSockets = {};
    S.cts = {};
  }
  function restartTs(why) {
    closeTs();
    var url = S.cii.tsUrl;
    if (!url) { S.reason = "the TV announces no CSS-TS URL"; return; }
    log("CSS-TS (re)started: " + why);
    var selectors = [PTS_SELECTOR];
    if (S.followed.selector !== PTS_SELECTOR) { selectors.push(S.followed.selector); }
    selectors.forEach(function (sel) { openTs(url, sel); });
  }
  function openTs(url, sel) {
    var ws = new WebSocket(url);
    tsSockets[sel] = ws;
    ws.onopen = function () { ws.send(JSON.stringify({ contentIdStem: "", timelineSelector: sel })); };
    ws.onmessage = function (ev) {
      var arrived = nowNs();
      var m;
      try { m = JSON.parse(ev.data); } catch (e) { return; }
      var old = S.cts[sel];
      if (m.contentTime === null || m.contentTime === undefined) {
        S.cts[sel] = null;
        log("timeline " + sel + " unavailable");
        return;
      }
      var ct = { content: Number(m.contentTime), wall: Number(m.wallClockTime), speed: Number(m.timelineSpeedMultiplier) };
      if (!isFinite(ct.speed)) { ct.speed = 1; }
      if (old && old.speed !== ct.speed) { log("timeline " + sel + " speed " + old.speed + " → " + ct.speed); }
      if (sel === PTS_SELECTOR && old) {
        // A jump of the line (discontinuity, seek of the TV) is logged; steering follows it.
        var rate = 90000;
        var predicted = old.content + (ct.wall - old.wall) * old.speed * rate / 1e9;
        if (Math.abs(ct.content - predicted) > rate * 0.1) { log("timeline discontinuity " + Math.round((ct.content - predicted) / 90) + " ms"); }
      }
      S.cts[sel] = ct;
      ctOnlyClock(ct, arrived);
    };
    ws.onclose = function () {
      if (tsSockets[sel] === ws) {
        delete tsSockets[sel];
        S.cts[sel] = undefined;
        setTimeout(function () { if (!tsSockets[sel] && S.cii.tsUrl === url) { openTs(url, sel); } }, 1000);
      }
    };
  }
  function timelineAt(ct, wall, rate) { return ct.content + (wall - ct.wall) * ct.speed * rate / 1e9; }

  // ----- media: the channel's browser stream and its PTS -----
  if (!window.mpegts) { fail("The player script (mpegts.js) did not load."); return; }
  mpegts.LoggingControl.enableDebug = false;
  mpegts.LoggingControl.enableVerbose = false;
  if (!mpegts.getFeatureList().mseLivePlayback) { fail("This browser cannot play live MPEG-TS (no Media Source Extensions)."); return; }
  var player = null;
  function startPlayer() {
    if (player) { try { player.destroy(); } catch (e) { /* gone */ } }
    S.media.videoSegments = [];
    player = mpegts.createPlayer(
      { type: "mpegts", isLive: true, url: new URL("/play/" + encodeURIComponent(channel) + ".ts", location.href).href },
      { enableWorker: false, enableStashBuffer: false, stashInitialSize: 64 * 1024, lazyLoad: false,
        autoCleanupSourceBuffer: true, liveBufferLatencyChasing: false, liveSync: false }
    );
    player.on(mpegts.Events.ERROR, function (type, detail, info) {
      log("player error " + type + " " + detail);
      fail("Playback error: " + type + " / " + detail + (info && info.msg ? ": " + info.msg : "") + " – retrying");
      setTimeout(startPlayer, 2000);
    });
    player.attachMediaElement(video);
    player.load();
    hookRemuxer();
    var p = player.play();
    if (p && p.catch) { p.catch(function (e) { log("play(): " + e.message); }); }
    window.dvb2ipPlayer = player;
  }
  // mpegts.js 1.8.2 (main thread) keeps no list of live segments, so each video segment's
  // media time ↔ original timestamp is recorded as its remuxer hands it over (the remuxer is
  // made when the first data arrives: looked for until then).
  function hookRemuxer() {
    var mine = player, tries = 0;
    var look = function () {
      if (player !== mine) { return; }
      var e = player._player_engine;
      var c = e && e._transmuxer && e._transmuxer._controller;
      var r = c && c._remuxer;
      if (!r || typeof r._onMediaSegment !== "function") {
        if (++tries > 3000) { S.media.hookError = "mpegts.js internals not found: media time cannot be mapped"; fail(S.media.hookError); return; }
        setTimeout(look, 10);
        return;
      }
      var orig = r._onMediaSegment;
      r._onMediaSegment = function (type, segment) {
        try {
          if (type === "audio" && segment && segment.info && r._dtsBaseInited) {
            var ai = segment.info;
            keep(trace.audio, [Math.round(performance.now()), ai.beginDts, ai.endDts, ai.originalBeginDts + r._dtsBase - ai.beginDts, segment.sampleCount], 600);
          }
          if (type === "video" && segment && segment.info && r._dtsBaseInited) {
            var i = segment.info;
            var list = S.media.videoSegments;
            list.push({ begin: i.beginDts, end: i.endDts, offset: i.originalBeginDts + r._dtsBase - i.beginDts });
            if (list.length > 600) { list.shift(); }
          }
        } catch (x) { /* keep playing */ }
        return orig.apply(this, arguments);
      };
      log("mpegts.js remuxer hooked");
    };
    look();
  }
  // Muxed PTS (ticks) of media time `ms`, or null.
  function muxedPts(ms) {
    var list = S.media.videoSegments;
    for (var i = list.length - 1; i >= 0; i--) {
      if (list[i].begin <= ms) { return (ms + list[i].offset) * 90; }
    }
    return null;
  }
  function broadcastPts(muxed) {
    var segs = S.media.segments;
    if (!segs || !segs.length || muxed === null) { return null; }
    var shift = segs[0][1];
    for (var i = 1; i < segs.length; i++) {
      if (ptsDiff(muxed, segs[i][0]) >= 0) { shift = segs[i][1]; }
    }
    return mod33(muxed + shift);
  }
  function pollMedia() {
    var asked = channel;
    fetch("/companion/" + encodeURIComponent(channel) + "/media.json", { cache: "no-store" })
      .then(function (r) { return r.json(); })
      .then(function (j) {
        if (asked !== channel) { return; }
        S.media.running = !!j.running;
        S.media.info = j.media || null;
        S.media.segments = j.media && j.media.segments && j.media.segments.length ? j.media.segments : null;
      })
      .catch(function () { S.media.running = false; })
      .then(function () { setTimeout(pollMedia, S.media.segments ? 2000 : 300); });
  }

  // ----- the page's position on the TV's timelines -----
  // {now, wall, mediaMs, pts (page, PTS timeline ticks), tvPts, errTicks, position (followed
  // timeline ticks), tvPosition} or {why}.
  function measure() {
    var now = nowNs();
    var wall = wallAt(now);
    var mediaMs = video.currentTime * 1000;
    if (wall === null) { return { why: S.wc.mode === "websocket" ? "synchronising the wall clock" : "waiting for a control timestamp" }; }
    var ptsCt = S.cts[PTS_SELECTOR];
    if (!ptsCt) { return { why: ptsCt === null ? "the TV's PTS timeline is unavailable" : "waiting for the TV's PTS timeline" }; }
    var muxed = muxedPts(mediaMs);
    var page = broadcastPts(muxed);
    if (page === null) { return { why: S.media.segments ? "waiting for video" : "waiting for the stream's PTS relation (" + (S.media.running ? "measuring" : "stream not running") + ")" }; }
    var tvPts = timelineAt(ptsCt, wall, 90000);
    var err = ptsDiff(page, mod33(tvPts));
    var r = { now: now, wall: wall, mediaMs: mediaMs, pts: tvPts + err, tvPts: tvPts, errTicks: err, speed: ptsCt.speed,
              selector: PTS_SELECTOR, rate: 90000, position: tvPts + err, tvPosition: tvPts, segOffset: muxed / 90 - mediaMs };
    var f = S.followed;
    if (f.selector !== PTS_SELECTOR) {
      var ct = S.cts[f.selector];
      if (!ct) { return { why: ct === null ? "the TV's " + f.selector + " is unavailable" : "waiting for " + f.selector }; }
      var tv = timelineAt(ct, wall, f.rate);
      r.selector = f.selector; r.rate = f.rate; r.tvPosition = tv; r.position = tv + err / 90000 * f.rate;
    }
    return r;
  }

  function bufferedRange(t) {
    var b = video.buffered;
    for (var i = 0; i < b.length; i++) { if (t >= b.start(i) && t <= b.end(i)) { return true; } }
    return false;
  }
  function setState(state, reason) {
    if (state !== S.state) { log("state " + state + (reason ? " (" + reason + ")" : "")); }
    S.state = state; S.reason = reason || "";
  }

  // ----- steering -----
  var recent = [];
  function steer() {
    var status = S.presentationStatus;
    var m = measure();
    if (m.why) {
      S.errorMs = null; recent = [];
      if (video.playbackRate !== 1) { video.playbackRate = 1; }
      setState("waiting", m.why);
      return;
    }
    var errMs = m.errTicks / 90;
    S.errorMs = errMs;
    keep(trace.ticks, [m.now / 1e6, m.mediaMs, video.playbackRate, errMs, m.wall / 1e6, m.tvPts, m.segOffset], 1200);
    if (S.seekPending) { return; }
    var t = video.currentTime;
    if (m.speed === 0) {
      // The TV is paused: hold the frame it shows.
      if (!video.paused) { video.pause(); log("paused with the TV"); }
      if (Math.abs(errMs) > 40 && bufferedRange(t - errMs / 1000)) { seekTo(t - errMs / 1000, 0); }
      recent = [];
      setState("paused", "the TV is paused");
      return;
    }
    if (Math.abs(errMs) > SEEK_THRESHOLD_MS) {
      recent = [];
      if (video.playbackRate !== 1) { video.playbackRate = 1; }
      var target = t - errMs / 1000;
      var ahead = target + S.seekLatencyMs / 1000;
      var b = video.buffered;
      var start = b.length ? b.start(0) : Infinity, end = b.length ? b.end(b.length - 1) : -Infinity;
      if (errMs > 0 && target < start) {
        // The TV shows what came before this stream began: hold until it catches up.
        if (!video.paused) { video.pause(); S.holding = true; }
        setState("syncing", "waiting for the TV to reach this stream's start (" + Math.round(errMs) + " ms ahead)");
        return;
      }
      if (errMs < 0 && ahead > end - 0.05) {
        if (video.paused) { video.play().catch(function () {}); }
        setState("syncing", "the TV is " + Math.round(-errMs) + " ms ahead of what this stream has received: give the TV a presentation delay (css.presentation_delay_ms)");
        return;
      }
      seekTo(bufferedRange(ahead) ? ahead : target, errMs);
      setState("syncing", "seeking (" + Math.round(errMs) + " ms off)");
      return;
    }
    if (video.paused) {
      // Holding (before the TV reached us, or after a TV pause): go once the TV is there.
      if (errMs <= 5) { S.holding = false; video.play().catch(function () {}); log("playing"); }
      setState("syncing", "holding " + Math.round(errMs) + " ms");
      return;
    }
    video.playbackRate = steeredRate(errMs, video.playbackRate);
    recent.push(Math.abs(errMs));
    if (recent.length > 5) { recent.shift(); }
    var ok = recent.length === 5 && recent.every(function (e) { return e <= IN_SYNC_MS; });
    if (ok) {
      if (S.syncedAt === null) { S.syncedAt = performance.now(); log("in sync " + Math.round(S.syncedAt - S.loadedAt) + " ms after loading"); }
      setState("in sync", "");
    } else {
      setState("syncing", Math.round(errMs) + " ms off");
    }
    if (status && status.length && status[0] !== "okay") { S.reason = "TV presentation status: " + status.join(" "); }
  }
  // The playbackRate for an offset of `errMs` (positive: ahead of the TV): proportional, a
  // time constant of 1 / RATE_GAIN s. It never returns to exactly 1 once steering: Chrome
  // switches its audio renderer between a plain copy (rate 1) and time-stretching (any other
  // rate), and each switch costs about one audio buffer of media time (the video slips
  // 21–28 ms; measured in tests/companion.rs, the cause of the old p95 of 36 ms). Inside
  // ±MIN_RATE_STEP the rate stays on the side it is on until the error changes sign.
  var RATE_GAIN = 5, MIN_RATE_STEP = 0.003;
  function steeredRate(errMs, current) {
    var rate = Math.max(0.8, Math.min(1.2, 1 - errMs / 1000 * RATE_GAIN));
    if (Math.abs(rate - 1) < MIN_RATE_STEP) {
      var side = errMs > 0.5 ? -1 : (errMs < -0.5 ? 1 : (current < 1 ? -1 : 1));
      rate = 1 + side * MIN_RATE_STEP;
    }
    return Math.abs(current - rate) > 0.0005 ? rate : current;
  }
  function seekTo(t, errMs) {
    S.seeks++;
    var asked = performance.now();
    S.seekPending = { at: asked };
    log("seek " + Math.round(errMs) + " ms → " + t.toFixed(3));
    var done = function () {
      video.removeEventListener("seeked", done);
      var took = performance.now() - asked;
      // What the TV moved on while seeking is aimed ahead of next time.
      S.seekLatencyMs = Math.min(1000, Math.max(20, 0.5 * S.seekLatencyMs + 0.5 * took));
      S.seekPending = null;
    };
    video.addEventListener("seeked", done);
    setTimeout(function () { if (S.seekPending && S.seekPending.at === asked) { done(); } }, 3000);
    video.currentTime = t;
  }

  // ----- display -----
  function show() {
    var s = $("sync");
    s.className = S.state === "in sync" ? "in-sync" : (S.state === "syncing" ? "syncing" : "waiting");
    s.textContent = S.state === "in sync" ? "In sync" : (S.state === "paused" ? "Paused with the TV" : (S.state === "syncing" ? "Synchronising…" : "Waiting"));
    var e = S.wc.est, now = nowNs();
    var clock = S.wc.mode === "websocket"
      ? "wall clock: WebSocket extension, dispersion " + (e ? (dispersionAt(e, now) * 1000).toFixed(2) + " ms" : "–")
      : "wall clock: no WebSocket wall clock – falling back to CII/TS timing only (larger error)";
    $("timing").textContent =
      "offset " + (S.errorMs === null ? "–" : (S.errorMs >= 0 ? "+" : "") + S.errorMs.toFixed(1) + " ms (positive: ahead of the TV)") +
      " · rate " + video.playbackRate.toFixed(3) + " · seeks " + S.seeks + "\n" + clock +
      (S.reason ? "\n" + S.reason : "");
    $("details").textContent =
      "TV " + ciiUrl + (cfg.mode === "tv" ? " (TV mode)" : "") + "\ncontentId " + (S.contentId || "–") +
      " · presentation " + (S.presentationStatus ? S.presentationStatus.join(" ") : "–") +
      "\ntimeline " + S.followed.selector + " (" + S.followed.rate + " ticks/s)";
  }

  // For tests and tools: the page's own view, read in one go.
  window.companion = {
    get state() { return S.state; },
    get reason() { return S.reason; },
    get errorMs() { return S.errorMs; },
    get followed() { return S.followed; },
    get wallClock() { return S.wc.mode; },
    get seeks() { return S.seeks; },
    get events() { return S.events.slice(); },
    get trace() { return trace; },
    get contentId() { return S.contentId; },
    get channel() { return channel; },
    /** Video media time mapped now: position on the followed timeline, the page's TV wall clock. */
    sample: function () {
      var m = measure();
      var e = S.wc.est;
      return m.why ? { ok: false, why: m.why } : {
        ok: true, mediaTime: m.mediaMs / 1000, wallNs: m.wall, selector: m.selector, rate: m.rate,
        position: m.position, tvPosition: m.tvPosition, pts: m.pts, errorMs: m.errTicks / 90,
        dispersionMs: e ? dispersionAt(e, m.now) * 1000 : null, state: S.state
      };
    }
  };

  if (video.requestVideoFrameCallback) {
    var onFrame = function (now, md) {
      keep(trace.frames, [now, md.mediaTime * 1000, md.expectedDisplayTime, md.presentedFrames, performance.now(), video.currentTime * 1000, video.playbackRate], 1200);
      video.requestVideoFrameCallback(onFrame);
    };
    video.requestVideoFrameCallback(onFrame);
  }
  ["waiting", "stalled", "seeking", "seeked", "ratechange"].forEach(function (n) {
    video.addEventListener(n, function () { if (n !== "ratechange") { log("video " + n + " at " + video.currentTime.toFixed(3)); } });
  });
  mpegts.LoggingControl.enableWarn = true;
  mpegts.LoggingControl.addLogListener(function (level, msg) {
    if (level === "warn" || level === "error") { log("mpegts.js " + level + ": " + String(msg).slice(0, 200)); }
  });
  openWc();
  openCii();
  pollMedia();
  startPlayer();
  setInterval(steer, 50);
  setInterval(show, 250);
})();
