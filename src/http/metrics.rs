//! `GET /metrics`: the server's state in the Prometheus text exposition format (0.0.4).
//!
//! Names carry their unit (`_seconds`, `_bytes`, `_percent`, `_decibels`); counters end in
//! `_total`. Labels are bounded: a frontend's pool index, a protocol, a scan outcome; never a
//! client address. The figures are read when scraped, from the same core the status page and
//! the API read: the tuner pool, the session count, the HTTP server's counters, the channel
//! database and its scans, the relays, the CSS channels' servers, and the process itself (`/proc/self`, the standard `process_`
//! metrics).

use std::fmt::Write;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;

use crate::core::Core;

/// The content type of the text format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The route.
pub fn router(core: Arc<Core>) -> Router {
    Router::new().route(
        "/metrics",
        get(move || {
            let core = core.clone();
            async move {
                // The session registry asks gst-rtsp-server's session pool: off the workers.
                match tokio::task::spawn_blocking(move || render(&core)).await {
                    Ok(text) => ([(header::CONTENT_TYPE, CONTENT_TYPE)], text).into_response(),
                    Err(_) => axum::http::StatusCode::INTERNAL_SERVER_ERROR.into_response(),
                }
            }
        }),
    )
}

/// One metric family being written: `# HELP`, `# TYPE`, then its samples.
struct Family<'a> {
    out: &'a mut String,
    name: &'static str,
}

impl Family<'_> {
    /// A sample with `labels` (`name="value"` pairs; values are escaped here).
    fn sample(&mut self, labels: &[(&str, &str)], value: f64) {
        self.out.push_str(self.name);
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                let _ = write!(self.out, "{k}=\"{}\"", escape_label(v));
            }
            self.out.push('}');
        }
        let _ = writeln!(self.out, " {}", number(value));
    }
}

/// Starts family `name` of `kind` (`gauge`, `counter`) with its help text.
fn family<'a>(out: &'a mut String, name: &'static str, kind: &str, help: &str) -> Family<'a> {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
    Family { out, name }
}

/// A label value with `\`, `"` and newlines escaped as the format asks.
fn escape_label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// A sample value: integers without a fraction, `NaN`/`+Inf` spelt as the format spells them.
fn number(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 { "+Inf" } else { "-Inf" }.into()
    } else if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

/// The process's own figures from `/proc/self` (Linux): CPU seconds, resident and virtual
/// memory, open and maximum descriptors, threads, start time.
#[derive(Debug, Default)]
struct ProcessFigures {
    cpu_seconds: f64,
    resident_bytes: f64,
    virtual_bytes: f64,
    open_fds: f64,
    max_fds: f64,
    threads: f64,
    start_time_seconds: f64,
}

fn process_figures() -> ProcessFigures {
    let mut p = ProcessFigures::default();
    // SAFETY: sysconf only reads configuration values.
    let (ticks, page) = unsafe {
        (
            libc::sysconf(libc::_SC_CLK_TCK) as f64,
            libc::sysconf(libc::_SC_PAGESIZE) as f64,
        )
    };
    if let Ok(stat) = std::fs::read_to_string("/proc/self/stat") {
        // Fields after the command name (which may hold spaces) in ")".
        if let Some((_, rest)) = stat.rsplit_once(')') {
            let f: Vec<&str> = rest.split_whitespace().collect();
            // rest[0] is field 3 (state): utime 14, stime 15, num_threads 20, starttime 22,
            // vsize 23, rss 24.
            let at = |n: usize| f.get(n - 3).and_then(|v| v.parse::<f64>().ok());
            if let (Some(u), Some(s)) = (at(14), at(15)) {
                p.cpu_seconds = (u + s) / ticks;
            }
            p.threads = at(20).unwrap_or(0.0);
            p.virtual_bytes = at(23).unwrap_or(0.0);
            p.resident_bytes = at(24).unwrap_or(0.0) * page;
            if let Some(start) = at(22) {
                p.start_time_seconds = boot_time() + start / ticks;
            }
        }
    }
    p.open_fds = std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count()) as f64;
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into `lim`.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } == 0 {
        p.max_fds = lim.rlim_cur as f64;
    }
    p
}

/// The boot time, seconds since the Unix epoch (`btime` of `/proc/stat`).
fn boot_time() -> f64 {
    std::fs::read_to_string("/proc/stat")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("btime "))
                .and_then(|v| v.trim().parse().ok())
        })
        .unwrap_or(0.0)
}

/// The whole exposition for `core`.
pub fn render(core: &Core) -> String {
    let mut o = String::with_capacity(8 * 1024);

    let mut f = family(
        &mut o,
        "dvb2ip_build_info",
        "gauge",
        "The server's version (always 1).",
    );
    f.sample(&[("version", env!("CARGO_PKG_VERSION"))], 1.0);

    // The tuner pool: one sample per frontend, labelled with its pool index.
    let frontends = core.pool.frontends();
    let status: Vec<_> = frontends
        .iter()
        .map(|fr| core.pool.frontend_status(fr.index).filter(|_| fr.users > 0))
        .collect();
    let idx: Vec<String> = frontends.iter().map(|fr| fr.index.to_string()).collect();
    let mut f = family(
        &mut o,
        "dvb2ip_frontend_info",
        "gauge",
        "A frontend of the tuner pool (always 1): its name and device.",
    );
    for (fr, i) in frontends.iter().zip(&idx) {
        let device = format!("adapter{}/frontend{}", fr.adapter, fr.frontend);
        let delsys: Vec<&str> = fr.delsys.iter().map(|d| d.nick()).collect();
        f.sample(
            &[
                ("frontend", i),
                ("name", &fr.name),
                ("device", &device),
                ("delivery_systems", &delsys.join(",")),
                ("emulated", if fr.emulated { "true" } else { "false" }),
            ],
            1.0,
        );
    }
    let mut f = family(
        &mut o,
        "dvb2ip_frontend_users",
        "gauge",
        "Streams, recordings and scans using the frontend.",
    );
    for (fr, i) in frontends.iter().zip(&idx) {
        f.sample(&[("frontend", i)], fr.users as f64);
    }
    let mut f = family(
        &mut o,
        "dvb2ip_frontend_locked",
        "gauge",
        "1 when the frontend is tuned and locked, 0 otherwise.",
    );
    for (s, i) in status.iter().zip(&idx) {
        f.sample(
            &[("frontend", i)],
            f64::from(u8::from(s.as_ref().is_some_and(|s| s.locked))),
        );
    }
    let mut f = family(
        &mut o,
        "dvb2ip_frontend_signal_level_percent",
        "gauge",
        "Signal level of a tuned frontend, percent.",
    );
    for (s, i) in status.iter().zip(&idx) {
        if let Some(s) = s {
            f.sample(&[("frontend", i)], f64::from(s.level));
        }
    }
    let mut f = family(
        &mut o,
        "dvb2ip_frontend_signal_level_dbm",
        "gauge",
        "Signal level of a tuned frontend in dBm, where it gives one (DVBv5 statistics, emulated frontends).",
    );
    for (s, i) in status.iter().zip(&idx) {
        if let Some(dbm) = s.as_ref().and_then(|s| s.signal_dbm) {
            f.sample(&[("frontend", i)], dbm);
        }
    }
    let mut f = family(
        &mut o,
        "dvb2ip_frontend_signal_quality_percent",
        "gauge",
        "Signal quality of a tuned frontend, percent.",
    );
    for (s, i) in status.iter().zip(&idx) {
        if let Some(s) = s {
            f.sample(&[("frontend", i)], f64::from(s.quality));
        }
    }
    let mut f = family(
        &mut o,
        "dvb2ip_frontend_snr_decibels",
        "gauge",
        "Signal-to-noise ratio of a tuned frontend where the driver gives it in dB.",
    );
    for (s, i) in status.iter().zip(&idx) {
        if let Some(db) = s.as_ref().and_then(|s| s.snr_db) {
            f.sample(&[("frontend", i)], db);
        }
    }
    let mut f = family(
        &mut o,
        "dvb2ip_frontend_bit_error_ratio",
        "gauge",
        "Bit error ratio before error correction of a tuned frontend, where the driver gives it.",
    );
    for (s, i) in status.iter().zip(&idx) {
        if let Some(ber) = s.as_ref().and_then(|s| s.ber) {
            f.sample(&[("frontend", i)], ber);
        }
    }
    // TS errors of what each tuned frontend delivered: counted from the frontend's opening,
    // so a counter restarts (a reset, as rate() expects) when the frontend is opened again.
    for (name, help, value) in [
        (
            "dvb2ip_tuner_continuity_errors_total",
            "TS continuity errors (per PID, ISO/IEC 13818-1) in what a tuned frontend delivered since it was opened.",
            (|s| s.continuity_errors) as fn(&gstdvb2ip::tuners::TunerStatus) -> u64,
        ),
        (
            "dvb2ip_tuner_transport_errors_total",
            "TS packets with transport_error_indicator set that a tuned frontend delivered since it was opened.",
            |s| s.transport_errors,
        ),
    ] {
        let mut f = family(&mut o, name, "counter", help);
        for (s, i) in status.iter().zip(&idx) {
            if let Some(s) = s {
                f.sample(&[("frontend", i)], value(s) as f64);
            }
        }
    }
    // Remote SAT>IP tuners (src/remote_tuners): their server, state and counters.
    let remote: Vec<_> = frontends
        .iter()
        .zip(&idx)
        .filter_map(|(fr, i)| fr.remote.as_ref().map(|r| (i, r)))
        .collect();
    let mut f = family(
        &mut o,
        "dvb2ip_remote_tuner_info",
        "gauge",
        "A frontend lent by a remote SAT>IP server (always 1): its server and state.",
    );
    for (i, r) in &remote {
        f.sample(
            &[
                ("frontend", i),
                ("server", &r.server),
                ("state", r.state.name()),
            ],
            1.0,
        );
    }
    for (name, help, value) in [
        (
            "dvb2ip_remote_tuner_received_bytes_total",
            "Transport stream bytes received from the remote tuner.",
            (|r| r.bytes_in) as fn(&gstdvb2ip::tuners::satip_remote::RemoteReport) -> u64,
        ),
        (
            "dvb2ip_remote_tuner_starts_total",
            "Sessions set up on the remote tuner's server, retries included.",
            |r| r.starts,
        ),
        (
            "dvb2ip_remote_tuner_failures_total",
            "Sessions on the remote tuner's server that failed.",
            |r| r.failures,
        ),
    ] {
        let mut f = family(&mut o, name, "counter", help);
        for (i, r) in &remote {
            f.sample(&[("frontend", i)], value(r) as f64);
        }
    }
    let c = core.pool.counters();
    let mut f = family(
        &mut o,
        "dvb2ip_tuner_received_bytes_total",
        "counter",
        "Transport stream bytes read from all frontends.",
    );
    f.sample(&[], c.bytes_in.load(Ordering::Relaxed) as f64);
    let mut f = family(
        &mut o,
        "dvb2ip_tuner_filtered_bytes_total",
        "counter",
        "Bytes copied by PID filtering for streams that asked for some PIDs.",
    );
    f.sample(&[], c.bytes_copied.load(Ordering::Relaxed) as f64);

    // Sessions.
    let mut f = family(
        &mut o,
        "dvb2ip_sessions",
        "gauge",
        "Client sessions by protocol (RTSP sessions, HTTP streams).",
    );
    f.sample(&[("protocol", "rtsp")], core.sessions.rtsp() as f64);
    f.sample(&[("protocol", "http")], core.sessions.http() as f64);
    // The session registry (src/clients.rs): what the web UI lists, by how clients receive.
    let totals = core.clients.totals();
    let mut f = family(
        &mut o,
        "dvb2ip_client_sessions",
        "gauge",
        "Sessions receiving a stream, by transport (rtsp/udp, rtsp/tcp, multicast, http).",
    );
    for t in &totals {
        f.sample(&[("protocol", t.protocol.name())], t.sessions as f64);
    }
    let mut f = family(
        &mut o,
        "dvb2ip_client_sent_bytes_total",
        "counter",
        "Bytes sent to clients' sessions (RTP headers and payload; HTTP response bytes), by transport.",
    );
    for t in &totals {
        f.sample(&[("protocol", t.protocol.name())], t.bytes_sent as f64);
    }
    let mut f = family(
        &mut o,
        "dvb2ip_sessions_max",
        "gauge",
        "The session limit RTSP and HTTP share (0: none).",
    );
    f.sample(&[], core.sessions.max() as f64);
    let mut f = family(
        &mut o,
        "dvb2ip_rtp_dropped_datagrams_total",
        "counter",
        "RTP/RTCP datagrams that could not be sent (socket buffer full or an error).",
    );
    f.sample(&[], core.metrics.rtp_dropped.load(Ordering::Relaxed) as f64);

    // The HTTP server.
    let h = &core.metrics.http;
    let mut f = family(
        &mut o,
        "dvb2ip_http_connections",
        "gauge",
        "Open HTTP connections.",
    );
    f.sample(&[], h.open.load(Ordering::Relaxed) as f64);
    let mut f = family(
        &mut o,
        "dvb2ip_http_streams",
        "gauge",
        "HTTP connections streaming a transport stream.",
    );
    f.sample(&[], h.streams.load(Ordering::Relaxed) as f64);
    let mut f = family(
        &mut o,
        "dvb2ip_http_refused_connections_total",
        "counter",
        "HTTP connections refused with 503, by the cap that refused them.",
    );
    f.sample(
        &[("cap", "total")],
        h.refused_cap.load(Ordering::Relaxed) as f64,
    );
    f.sample(
        &[("cap", "per_address")],
        h.refused_address.load(Ordering::Relaxed) as f64,
    );
    let mut f = family(
        &mut o,
        "dvb2ip_http_timed_out_connections_total",
        "counter",
        "HTTP connections closed for a request head or idle timeout.",
    );
    f.sample(&[], h.timed_out.load(Ordering::Relaxed) as f64);
    let mut f = family(
        &mut o,
        "dvb2ip_http_slow_clients_dropped_total",
        "counter",
        "HTTP stream clients dropped because they did not read.",
    );
    f.sample(&[], h.slow_dropped.load(Ordering::Relaxed) as f64);

    // The channel database and its scans.
    let p = core.scans.progress();
    let mut f = family(
        &mut o,
        "dvb2ip_channels",
        "gauge",
        "Services in the channel database.",
    );
    f.sample(&[], core.scans.channels().len() as f64);
    let mut f = family(
        &mut o,
        "dvb2ip_scan_running",
        "gauge",
        "1 while a scan runs.",
    );
    f.sample(&[], f64::from(u8::from(core.scans.is_running())));
    let mut f = family(
        &mut o,
        "dvb2ip_scan_muxes",
        "gauge",
        "Multiplexes of the current or last scan, by outcome.",
    );
    f.sample(&[("outcome", "found")], p.found as f64);
    f.sample(&[("outcome", "partial")], p.partial as f64);
    f.sample(&[("outcome", "failed")], p.failed as f64);
    f.sample(
        &[("outcome", "pending")],
        p.muxes_total.saturating_sub(p.muxes_done) as f64,
    );

    // Relays: one sample per configured relay (names come from the configuration).
    let relays = core.relays.status();
    let mut f = family(
        &mut o,
        "dvb2ip_relay_state",
        "gauge",
        "1 for the state a relay is in (idle, starting, live, closing, failed), 0 for the others.",
    );
    for r in &relays {
        let now = serde_json::to_value(r.state)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        for state in ["idle", "starting", "live", "closing", "failed"] {
            f.sample(
                &[("relay", &r.name), ("state", state)],
                f64::from(u8::from(now == state)),
            );
        }
    }
    let mut f = family(
        &mut o,
        "dvb2ip_relay_readers",
        "gauge",
        "Readers of a relay (RTSP media and HTTP streams).",
    );
    for r in &relays {
        f.sample(&[("relay", &r.name)], r.readers as f64);
    }
    for (name, help, get) in [
        (
            "dvb2ip_relay_starts_total",
            "Upstream pulls a relay started.",
            (|r| r.starts) as fn(&crate::relay::source::RelayStatus) -> u64,
        ),
        (
            "dvb2ip_relay_stops_total",
            "Upstream pulls a relay ended because no reader was left.",
            |r| r.stops,
        ),
        (
            "dvb2ip_relay_failures_total",
            "Upstream pulls of a relay that could not start or dropped.",
            |r| r.failures,
        ),
        (
            "dvb2ip_relay_received_bytes_total",
            "Bytes a relay received from its upstream.",
            |r| r.bytes_in,
        ),
        (
            "dvb2ip_relay_sent_bytes_total",
            "Bytes a relay handed to its readers.",
            |r| r.bytes_out,
        ),
    ] {
        let mut f = family(&mut o, name, "counter", help);
        for r in &relays {
            f.sample(&[("relay", &r.name)], get(r) as f64);
        }
    }

    // DVB-CSS: the configured CSS channels' servers (src/ui/css.rs).
    let css = core.css.channels(&core.config);
    let mut f = family(
        &mut o,
        "dvb2ip_css_wc_requests_total",
        "counter",
        "CSS-WC requests answered by the wall clock server of a CSS channel.",
    );
    for c in &css {
        f.sample(&[("channel", &c.name)], c.wc_requests_total as f64);
    }
    let mut f = family(
        &mut o,
        "dvb2ip_css_companion_connections",
        "gauge",
        "CSS-CII and CSS-TS WebSocket sessions open on a CSS channel.",
    );
    for c in &css {
        f.sample(&[("channel", &c.name)], f64::from(c.companion_connections));
    }

    // Publish mounts (src/publish): one sample per configured mount.
    let mounts = core.publishers.status();
    let mut f = family(
        &mut o,
        "dvb2ip_publish_live",
        "gauge",
        "1 while a publisher holds the mount, 0 when it is idle.",
    );
    for m in &mounts {
        f.sample(
            &[("mount", &m.name)],
            f64::from(u8::from(m.publisher.is_some())),
        );
    }
    let mut f = family(
        &mut o,
        "dvb2ip_publish_readers",
        "gauge",
        "Readers of a publish mount (RTSP media and HTTP streams).",
    );
    for m in &mounts {
        f.sample(&[("mount", &m.name)], m.readers as f64);
    }
    for (name, help, get) in [
        (
            "dvb2ip_publish_starts_total",
            "Publishers a mount accepted.",
            (|m| m.starts) as fn(&crate::streams::publish::PublishStatus) -> u64,
        ),
        (
            "dvb2ip_publish_refused_total",
            "Publish attempts a mount refused (credentials, address, mount taken).",
            |m| m.refused,
        ),
        (
            "dvb2ip_publish_received_bytes_total",
            "Bytes of TS a mount received from its publishers.",
            |m| m.bytes_in,
        ),
        (
            "dvb2ip_publish_sent_bytes_total",
            "Bytes a mount handed to its readers.",
            |m| m.bytes_out,
        ),
        (
            "dvb2ip_publish_foreign_dropped_total",
            "Publisher RTP/RTCP datagrams dropped: from another address than the RTSP peer's.",
            |m| m.foreign_dropped,
        ),
    ] {
        let mut f = family(&mut o, name, "counter", help);
        for m in &mounts {
            f.sample(&[("mount", &m.name)], get(m) as f64);
        }
    }

    // The process.
    let pr = process_figures();
    for (name, kind, help, v) in [
        (
            "process_cpu_seconds_total",
            "counter",
            "User and system CPU time spent, seconds.",
            pr.cpu_seconds,
        ),
        (
            "process_resident_memory_bytes",
            "gauge",
            "Resident memory size, bytes.",
            pr.resident_bytes,
        ),
        (
            "process_virtual_memory_bytes",
            "gauge",
            "Virtual memory size, bytes.",
            pr.virtual_bytes,
        ),
        (
            "process_open_fds",
            "gauge",
            "Open file descriptors.",
            pr.open_fds,
        ),
        (
            "process_max_fds",
            "gauge",
            "The soft limit of open file descriptors.",
            pr.max_fds,
        ),
        (
            "process_threads",
            "gauge",
            "Threads of the process.",
            pr.threads,
        ),
        (
            "process_start_time_seconds",
            "gauge",
            "Start time of the process since the Unix epoch, seconds.",
            pr.start_time_seconds,
        ),
    ] {
        family(&mut o, name, kind, help).sample(&[], v);
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_and_labels_are_spelt_as_the_format_asks() {
        assert_eq!(number(3.0), "3");
        assert_eq!(number(0.25), "0.25");
        assert_eq!(number(f64::NAN), "NaN");
        assert_eq!(number(f64::INFINITY), "+Inf");
        assert_eq!(escape_label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
        let mut o = String::new();
        let mut f = family(&mut o, "x_total", "counter", "Things.");
        f.sample(&[("a", "1"), ("b", "q\"")], 2.0);
        f.sample(&[], 5.5);
        assert_eq!(
            o,
            "# HELP x_total Things.\n# TYPE x_total counter\nx_total{a=\"1\",b=\"q\\\"\"} 2\nx_total 5.5\n"
        );
    }

    #[test]
    fn process_figures_are_read() {
        let p = process_figures();
        assert!(p.resident_bytes > 0.0, "{p:?}");
        assert!(p.open_fds >= 3.0, "{p:?}");
        assert!(p.threads >= 1.0, "{p:?}");
        assert!(p.max_fds >= p.open_fds, "{p:?}");
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        assert!(
            p.start_time_seconds > now - 86_400.0 && p.start_time_seconds <= now + 1.0,
            "{p:?}"
        );
    }
}
