// dvb2ip web UI: renders the live sections of / from server-sent events (/api/events, one
// snapshot a second). Plain JS, every value put in with textContent (never as HTML).
"use strict";

(function () {
  const $ = (id) => document.getElementById(id);

  function el(tag, text, cls) {
    const e = document.createElement(tag);
    if (text !== undefined && text !== null) e.textContent = String(text);
    if (cls) e.className = cls;
    return e;
  }

  function row(cells) {
    const tr = document.createElement("tr");
    for (const c of cells) {
      const td = document.createElement("td");
      if (c instanceof Node) td.appendChild(c); else td.textContent = c === null || c === undefined ? "-" : String(c);
      tr.appendChild(td);
    }
    return tr;
  }

  function bar(percent) {
    const s = el("span");
    const b = el("span", null, "bar");
    const fill = el("span");
    fill.style.width = Math.max(0, Math.min(100, percent)) + "%";
    b.appendChild(fill);
    s.appendChild(b);
    s.appendChild(document.createTextNode(percent + "%"));
    return s;
  }

  function duration(s) {
    const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), sec = s % 60;
    const two = (n) => (n < 10 ? "0" : "") + n;
    return (h ? h + ":" + two(m) : m) + ":" + two(sec);
  }

  function bitrate(bps) {
    if (bps === null || bps === undefined) return "-";
    if (bps >= 1e6) return (bps / 1e6).toFixed(2) + " Mbit/s";
    return (bps / 1e3).toFixed(0) + " kbit/s";
  }

  function bytes(n) {
    if (n === null || n === undefined) return "-";
    if (n >= 1 << 30) return (n / (1 << 30)).toFixed(2) + " GiB";
    if (n >= 1 << 20) return (n / (1 << 20)).toFixed(1) + " MiB";
    if (n >= 1 << 10) return (n / (1 << 10)).toFixed(0) + " KiB";
    return n + " B";
  }

  async function act(method, url, body) {
    const opts = { method, headers: { "X-Requested-With": "dvb2ip" } };
    if (body !== undefined) {
      opts.headers["Content-Type"] = "application/json";
      opts.body = JSON.stringify(body);
    }
    const r = await fetch(url, opts);
    let msg = "";
    try { msg = (await r.json()).error || ""; } catch (e) { msg = ""; }
    note(r.ok ? method + " " + url + ": done" : method + " " + url + ": " + r.status + " " + msg);
    return r;
  }

  function note(text) {
    const n = $("ui-note");
    if (n) n.textContent = text;
  }

  function renderServer(st) {
    const dl = $("server-facts");
    if (!dl) return;
    dl.replaceChildren();
    const facts = [
      ["Version", st.version],
      ["DEVICE ID", st.device_id],
      ["Uptime", duration(st.uptime_s)],
      ["CPU", st.cpu_percent === null ? "-" : st.cpu_percent + " %"],
      ["RSS", bytes(st.rss_bytes)],
      ["Threads", st.threads],
      ["Listening", st.bound.join("  ")],
      ["Sessions", st.sessions + " of " + (st.max_sessions || "unlimited") + " (RTSP " + st.sessions_rtsp + ", HTTP " + st.sessions_http + ")"],
      ["Tuners in use", st.tuners_in_use + " of " + st.tuners],
    ];
    for (const [k, v] of facts) {
      dl.appendChild(el("dt", k));
      dl.appendChild(el("dd", v));
    }
    const id = $("device-id");
    if (id) id.textContent = String(st.device_id);
  }

  // A TS error count (since the frontend was opened): "-" while idle, flagged when not 0.
  function errors(n) {
    if (n === null || n === undefined) return "-";
    return n ? el("span", String(n), "nolock") : "0";
  }

  // The signal level: dBm where the frontend gives it, else the percentage (as tuners_table
  // in src/ui/web.rs renders the first paint).
  function level(t) {
    if (t.signal_dbm !== null && t.signal_dbm !== undefined) return t.signal_dbm.toFixed(1) + " dBm";
    return t.level_percent === null ? "-" : bar(t.level_percent);
  }

  function renderTuners(tuners) {
    const table = $("frontends");
    if (!table) return;
    const body = document.createElement("tbody");
    const head = row(["fe", "Name", "Kind", "Delivery systems", "Users", "Tuned", "Lock", "Level", "Quality", "SNR", "BER", "CC errors", "TEI errors"]);
    for (const td of head.children) { const th = el("th", td.textContent); td.replaceWith(th); }
    body.appendChild(head);
    for (const t of tuners) {
      const lock = t.locked === null ? "-" : el("span", t.locked ? "locked" : "no lock", t.locked ? "locked" : "nolock");
      body.appendChild(row([
        t.fe.join(", "), t.name, t.kind + " adapter" + t.adapter + "/frontend" + t.frontend,
        t.delivery_systems.join(", "), t.users, t.tuned || "idle", lock,
        level(t),
        t.quality_percent === null ? "-" : bar(t.quality_percent),
        t.snr_db === null ? "-" : t.snr_db.toFixed(1) + " dB",
        t.ber === null ? "-" : t.ber.toExponential(1),
        errors(t.continuity_errors_total), errors(t.transport_errors_total),
      ]));
    }
    table.replaceChildren(body);
  }

  function renderSessions(sessions) {
    const body = $("sessions-body");
    if (!body) return;
    body.replaceChildren();
    if (!sessions.length) {
      const tr = row(["no sessions"]);
      tr.firstChild.colSpan = 10;
      tr.firstChild.className = "muted";
      body.appendChild(tr);
    }
    for (const s of sessions) {
      const b = el("button", "Disconnect", "danger");
      b.dataset.session = s.id;
      b.addEventListener("click", () => {
        b.disabled = true;
        act("DELETE", "/api/sessions/" + encodeURIComponent(s.id));
      });
      const tr = row([
        s.client_address + ":" + s.client_port, s.protocol.toUpperCase(), s.user_agent || "-",
        s.channel || "-", s.pids, bitrate(s.bitrate_bps), duration(s.duration_s), b,
      ]);
      tr.dataset.session = s.id;
      tr.className = "session";
      body.appendChild(tr);
    }
  }

  function renderScan(scan) {
    const box = $("scan-state");
    if (!box) return;
    const p = scan.progress || {};
    box.replaceChildren();
    if (!scan.enabled) {
      box.appendChild(el("span", "No channel database (set server.state_dir).", "muted"));
    } else {
      const line = el("div", (scan.running ? "Scanning" : "Idle") + (p.state ? " (" + p.state + ")" : "") +
        ": " + (p.muxes_done || 0) + " of " + (p.muxes_total || 0) + " muxes, " + (p.services || 0) + " services" +
        (p.error ? ", error: " + p.error : ""));
      box.appendChild(line);
      if (p.muxes_total) {
        const pr = el("progress");
        pr.max = p.muxes_total;
        pr.value = p.muxes_done || 0;
        box.appendChild(pr);
      }
    }
    $("scan-start").disabled = !scan.enabled || scan.running;
    $("scan-stop").disabled = !scan.running;
    if (lastScanRunning && !scan.running) loadLineup();
    lastScanRunning = scan.running;
  }
  let lastScanRunning = false;

  async function loadLineup() {
    const body = $("lineup-body");
    if (!body) return;
    let list;
    try { list = await (await fetch("/api/lineup")).json(); } catch (e) { return; }
    body.replaceChildren();
    const host = location.hostname.includes(":") ? "[" + location.hostname + "]" : location.hostname;
    const rtspPort = (document.body.dataset.rtspPort || "554");
    for (const c of list) {
      const url = "rtsp://" + host + ":" + rtspPort + "/?" + c.query;
      const play = el("a", "Play", "button");
      play.href = "/play/" + encodeURIComponent(c.slug);
      const copy = el("button", "Copy URL");
      copy.addEventListener("click", async () => {
        try { await navigator.clipboard.writeText(url); note("copied " + url); }
        catch (e) { window.prompt("RTSP URL", url); }
      });
      const rec = el("button", "Record");
      rec.addEventListener("click", () => act("POST", "/api/recordings", { query: c.query, name: c.name }));
      const buttons = el("span");
      buttons.append(play, " ", copy, " ", rec);
      body.appendChild(row([c.number, c.name, c.provider || "-", c.kind || "-", buttons]));
    }
    const old = $("channel-list");
    if (old) old.hidden = true;
    $("live-channels").hidden = false;
  }

  function empty(body, cols, text) {
    const tr = row([text]);
    tr.firstChild.colSpan = cols;
    tr.firstChild.className = "muted";
    body.appendChild(tr);
  }

  function seconds(s) {
    if (s === null || s === undefined) return "-";
    return duration(Math.round(s));
  }

  function renderRecordings(recs) {
    const body = $("recordings-body");
    if (!body) return;
    body.replaceChildren();
    if (!recs.length) empty(body, 6, "no recordings (use Record in the channel list)");
    for (const r of recs) {
      let action = "";
      if (r.state === "recording") {
        action = el("button", "Stop", "danger");
        action.addEventListener("click", () => { action.disabled = true; act("DELETE", "/api/recordings/" + r.id); });
      } else if (r.state === "done") {
        action = el("a", "Download", "button");
        action.href = r.url;
      }
      const tr = row([r.file, r.channel || r.query, r.state + (r.error ? ": " + r.error : ""),
        seconds(r.elapsed_s), bytes(r.bytes), action]);
      tr.dataset.recording = String(r.id);
      tr.className = "recording";
      body.appendChild(tr);
    }
  }

  async function loadVod() {
    const body = $("vod-body");
    if (!body) return;
    let list;
    try { list = await (await fetch("/api/vod")).json(); } catch (e) { return; }
    body.replaceChildren();
    if (!list.length) empty(body, 4, "no files (set [vod] roots)");
    for (const f of list) {
      const open = el("a", "Open", "button");
      open.href = f.url;
      const buttons = el("span");
      buttons.append(open);
      if (f.play_url) {
        const play = el("a", "Play", "button");
        play.href = f.play_url;
        buttons.append(" ", play);
      }
      const tr = row([f.path, bytes(f.size_bytes), seconds(f.duration_s), buttons]);
      tr.dataset.path = f.path;
      tr.className = "vod-file";
      body.appendChild(tr);
    }
  }
  let vodFiles = -1;

  function renderRelays(relays) {
    const body = $("relays-body");
    if (!body) return;
    body.replaceChildren();
    if (!relays.length) empty(body, 9, "no relays (add [[relay]] sections)");
    for (const r of relays) {
      const buttons = el("span");
      if (r.play_url) {
        const play = el("a", "Play", "button");
        play.href = r.play_url;
        buttons.append(play);
      }
      // Start holds the pull up without readers; Stop lets it go (readers still hold it).
      const hold = el("button", r.held ? "Stop" : "Start");
      hold.className = "relay-" + (r.held ? "stop" : "start");
      hold.addEventListener("click", () => {
        hold.disabled = true;
        act("POST", "/api/relays/" + encodeURIComponent(r.name) + (r.held ? "/stop" : "/start"));
      });
      buttons.append(hold);
      const tr = row([r.name, r.source, r.state + (r.last_error ? ": " + r.last_error : ""), r.readers,
        bytes(r.bytes_in), bytes(r.bytes_out), r.starts, r.failures, buttons]);
      tr.dataset.relay = r.name;
      tr.className = "relay";
      body.appendChild(tr);
    }
  }

  function ms(v) {
    return v === null || v === undefined ? "-" : v + " ms";
  }

  function renderPublishers(mounts, pushes) {
    const body = $("publishers-body");
    if (!body) return;
    body.replaceChildren();
    if (!mounts.length) empty(body, 11, "no publish mounts (add [[publish]] sections)");
    for (const p of mounts) {
      const who = p.publisher ? p.publisher + (p.user ? " (" + p.user + ")" : "") : "-";
      const refused = p.refused + (p.last_refusal ? ": " + p.last_refusal : "");
      const live = p.publishing_for_s === null || p.publishing_for_s === undefined
        ? "-" : duration(Math.floor(p.publishing_for_s));
      // start_latency_ms: announce → first data, where the server reports it.
      const tr = row([p.mount, p.state, who, p.readers, bytes(p.bytes_in), bytes(p.bytes_out),
        p.starts, p.stops, refused, ms(p.start_latency_ms), live]);
      tr.dataset.mount = p.mount;
      tr.dataset.state = p.state;
      tr.className = "publisher";
      body.appendChild(tr);
    }
    const pb = $("pushes-body");
    if (!pb) return;
    pb.replaceChildren();
    if (!pushes.length) empty(pb, 7, "no pushes (add [[push]] sections)");
    for (const p of pushes) {
      let state = p.state + (p.last_error ? ": " + p.last_error : "");
      if (p.retry_in_s !== null && p.retry_in_s !== undefined) state += " (retry in " + Math.ceil(p.retry_in_s) + " s)";
      const tr = row([p.name, p.source, p.target, state, bytes(p.bytes_out), p.starts, p.failures]);
      tr.dataset.push = p.name;
      tr.className = "push";
      pb.appendChild(tr);
    }
  }

  function renderCss(chans) {
    const body = $("css-body");
    if (!body) return;
    body.replaceChildren();
    if (!chans.length) empty(body, 6, "no CSS channels (set css = true on a [[channel]])");
    for (const c of chans) {
      const tr = row([c.name + (c.playing ? "" : " (not playing)"), c.content_id || "-",
        c.timelines.length ? c.timelines.join(", ") : "-", c.companion_connections, c.wc_requests_total,
        c.cii_url + "  " + c.wc_url]);
      tr.dataset.css = c.name;
      tr.className = "css-channel";
      body.appendChild(tr);
    }
  }

  function connect() {
    const conn = $("conn");
    const es = new EventSource("/api/events");
    es.addEventListener("snapshot", (ev) => {
      const snap = JSON.parse(ev.data);
      renderServer(snap.status);
      renderTuners(snap.tuners);
      renderSessions(snap.sessions);
      renderScan(snap.scan);
      renderRecordings(snap.recordings || []);
      renderRelays(snap.relays || []);
      renderPublishers(snap.publishers || [], snap.pushes || []);
      renderCss(snap.css || []);
      if (snap.vod_files !== vodFiles) { vodFiles = snap.vod_files; loadVod(); }
      // The update's latency: when the server took it → now (for people and the benchmark).
      document.body.dataset.latencyMs = String(Date.now() - snap.taken_unix_ms);
      if (conn) { conn.textContent = "live"; conn.className = "live"; }
      document.body.dataset.updates = String(Number(document.body.dataset.updates || 0) + 1);
    });
    es.onerror = () => {
      if (conn) { conn.textContent = "reconnecting…"; conn.className = ""; }
    };
  }

  document.addEventListener("DOMContentLoaded", () => {
    $("scan-start").addEventListener("click", () => act("POST", "/api/scan/start"));
    $("scan-stop").addEventListener("click", () => act("POST", "/api/scan/stop"));
    loadLineup();
    connect();
  });
})();
