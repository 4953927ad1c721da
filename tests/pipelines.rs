//! Every example in pipelines/ runs with the real gst-launch-1.0.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

fn launch_file(name: &str) -> String {
    std::fs::read_to_string(common::repo_file(&format!("pipelines/{name}")))
        .unwrap()
        .trim()
        .to_string()
}

/// Runs gst-launch-1.0 on a description with `env` added until it exits or `done(its output so
/// far)` holds, then interrupts it (gst-launch -e turns that into EOS); at most `limit` (see
/// [`common::run_until`]). Its exit status and its output (stdout and stderr).
fn launch(
    limit: Duration,
    args: &[&str],
    desc: &str,
    cwd: &Path,
    env: &[(&str, &Path)],
    done: impl FnMut(&str) -> bool,
) -> (std::process::ExitStatus, String) {
    let mut cmd = Command::new("gst-launch-1.0");
    cmd.args(args)
        .args(common::launch_args(desc))
        .env("GST_PLUGIN_PATH", common::plugin_dir())
        .envs(env.iter().copied())
        .current_dir(cwd);
    common::run_until(cmd, &cwd.join("gst-launch.log"), limit, done)
}

/// Runs a description until `done(its output so far)` holds (at most 240 s: a slow machine
/// takes longer, it does not see less); true when nothing reported an error.
fn run_until(
    args: &[&str],
    desc: &str,
    cwd: &Path,
    done: impl FnMut(&str) -> bool,
) -> (bool, String) {
    let (_, text) = launch(Duration::from_secs(240), args, desc, cwd, &[], done);
    (!text.contains("ERROR") && !text.contains("erroneous"), text)
}

/// Runs a recording example from pipelines/ in a new directory until `ready(file, ffprobe's
/// JSON)` holds for the `file` it is writing (what the test checks is in the recording), then
/// ffprobes the finished file: its path and ffprobe's JSON.
fn record_and_probe(
    tag: &str,
    example: &str,
    file: &str,
    ready: impl Fn(&Path, &serde_json::Value) -> bool,
) -> (std::path::PathBuf, serde_json::Value) {
    let dir = common::temp_dir(tag);
    let file = dir.join(file);
    let (ok, text) = run_until(&["-e"], &launch_file(example), &dir, |_| {
        common::try_ffprobe(&file).is_some_and(|v| ready(&file, &v))
    });
    assert!(ok, "{text}");
    let v = common::ffprobe(file.to_str().unwrap(), &[]);
    (file, v)
}

/// The (service name, codec types) of `v` has a program named `name` with every kind in
/// `kinds`.
fn has_program(v: &serde_json::Value, name: &str, kinds: &[&str]) -> bool {
    common::programs(v)
        .iter()
        .any(|(n, t)| n == name && kinds.iter().all(|k| t.iter().any(|x| x == k)))
}

#[test]
fn record_service_gives_a_file_ffprobe_reads_with_named_service_video_and_audio() {
    let (file, v) = record_and_probe("record", "record-service.launch", "news.ts", |f, v| {
        let streams = v["streams"].as_array().cloned().unwrap_or_default();
        std::fs::metadata(f).map_or(0, |m| m.len()) > 1_000_000
            && has_program(v, "dvb2ip News", &["video", "audio"])
            && streams
                .iter()
                .any(|s| s["codec_name"] == "h264" && s["width"] == 720)
            && streams
                .iter()
                .any(|s| s["codec_name"] == "mp2" && s["sample_rate"] == "48000")
    });
    assert!(std::fs::metadata(&file).unwrap().len() > 1_000_000);
    let progs = common::programs(&v);
    let news = progs
        .iter()
        .find(|(n, _)| n == "dvb2ip News")
        .unwrap_or_else(|| panic!("{progs:?}"));
    assert!(
        news.1.contains(&"video".to_string()) && news.1.contains(&"audio".to_string()),
        "{news:?}"
    );
    let streams = v["streams"].as_array().unwrap();
    assert!(streams
        .iter()
        .any(|s| s["codec_name"] == "h264" && s["width"] == 720));
    assert!(streams
        .iter()
        .any(|s| s["codec_name"] == "mp2" && s["sample_rate"] == "48000"));
}

#[test]
fn record_mux_gives_a_file_ffprobe_lists_every_service_by_name() {
    let (_, v) = record_and_probe("record-mux", "record-mux.launch", "mux.ts", |_, v| {
        has_program(v, "dvb2ip News", &["video", "audio"])
            && has_program(v, "dvb2ip Sport", &["video", "audio"])
            && has_program(v, "dvb2ip Classic FM", &["audio"])
    });
    let progs = common::programs(&v);
    let kinds = |name: &str| {
        progs
            .iter()
            .find(|(n, _)| n == name)
            .unwrap_or_else(|| panic!("no service {name:?} in {progs:?}"))
            .1
            .clone()
    };
    // The DVB-T mux of the embedded configuration: two TV services and a radio-only one.
    for tv in ["dvb2ip News", "dvb2ip Sport"] {
        let k = kinds(tv);
        assert!(
            k.contains(&"video".into()) && k.contains(&"audio".into()),
            "{tv}: {k:?}"
        );
    }
    assert_eq!(kinds("dvb2ip Classic FM"), vec!["audio".to_string()]);
    assert_eq!(progs.len(), 3, "{progs:?}");
    for p in v["programs"].as_array().unwrap() {
        assert_eq!(p["tags"]["service_provider"], "dvb2ip", "{p}");
    }
}

#[test]
fn playbin_plays_the_mux_through_the_uri_handler() {
    let dir = common::temp_dir("playbin");
    let desc = format!(
        "{} video-sink=\"fakesink silent=false\" audio-sink=\"fakesink silent=false\"",
        launch_file("play-playbin.launch")
    );
    // Decoded video and audio reach their sinks (fakesink's last-message per buffer).
    let buffers = |text: &str, bin: &str| {
        text.lines()
            .filter(|l| l.contains(&format!("/GstBin:{bin}/GstFakeSink:")) && l.contains("chain"))
            .count()
    };
    let (ok, text) = run_until(&["-v"], &desc, &dir, |t| {
        ["vbin", "abin"].iter().all(|bin| buffers(t, bin) >= 10)
    });
    assert!(ok, "{}", &text[..text.len().min(4000)]);
    for bin in ["vbin", "abin"] {
        let buffers = buffers(&text, bin);
        assert!(
            buffers >= 10,
            "{bin}: {buffers} buffers\n{}",
            &text[..text.len().min(4000)]
        );
    }
}

#[test]
fn dump_psi_shows_every_table() {
    let dir = common::temp_dir("psi");
    let tables = ["pat", "pmt", "sdt", "nit", "eit", "tdt"];
    let seen = |text: &str, table: &str| text.contains(&format!("(element): {table}, section"));
    let (ok, text) = run_until(&["-m"], &launch_file("dump-psi.launch"), &dir, |t| {
        tables.iter().all(|table| seen(t, table))
    });
    assert!(ok, "{text}");
    for table in tables {
        assert!(
            seen(&text, table),
            "no {table} section message in:\n{}",
            &text[..text.len().min(3000)]
        );
    }
}

/// Content is generated at first use into the cache directory, with a progress line, and reused
/// afterwards. A small configuration (one mux: a TV and a radio service) keeps it quick.
#[test]
fn content_is_generated_at_first_use_with_a_progress_line_then_reused() {
    let dir = common::temp_dir("first-use");
    let cache = dir.join("cache");
    let config = dir.join("small.toml");
    std::fs::write(
        &config,
        r#"
[[adapter]]
name = "Emulated DVB-T"
delsys = ["dvb-t"]

[[mux]]
name = "DVB-T 522 MHz"
delsys = "dvb-t"
frequency_khz = 522000
bandwidth_hz = 8000000
bitrate = 15000000
transport_stream_id = 0x1777
original_network_id = 0x233a

  [[mux.service]]
  service_id = 0x1771
  name = "First Use TV"
  kind = "tv"
  pmt_pid = 0x100
  video_pid = 0x101
  audio_pid = 0x102
  pattern = "ball"
  tone_hz = 777

  [[mux.service]]
  service_id = 0x1772
  name = "First Use Radio"
  kind = "radio"
  pmt_pid = 0x200
  audio_pid = 0x202
  tone_hz = 1777
"#,
    )
    .unwrap();
    let record = |file: &str| {
        // Ends by itself (EOS after 300 buffers); generating the content on a slow machine
        // takes a while.
        let (status, text) = launch(
            Duration::from_secs(300),
            &["-e"],
            &format!(
                "dvbtunersrc delsys=dvb-t frequency=522000000 bandwidth-hz=8000000 ! identity eos-after=300 ! filesink location={file}"
            ),
            &dir,
            &[("DVB2IP_CONFIG", &config), ("DVB2IP_CACHE_DIR", &cache)],
            |_| false,
        );
        assert!(status.success(), "{text}");
        text
    };
    let first = record("first.ts");
    let progress: Vec<&str> = first
        .lines()
        .filter(|l| l.starts_with("dvb2ip: generating emulated broadcast content ["))
        .collect();
    // Video and audio of the TV service, audio of the radio service.
    assert_eq!(progress.len(), 3, "{first}");
    assert!(
        progress[0].contains("[1/3]") && progress[2].contains("[3/3]"),
        "{progress:?}"
    );
    assert!(
        progress.iter().all(|l| l.contains(cache.to_str().unwrap())),
        "{progress:?}"
    );
    assert!(first.contains("audio 1777 Hz"), "{first}");
    let cached = std::fs::read_dir(&cache)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "es")
        })
        .count();
    assert_eq!(cached, 3);
    let v = common::ffprobe(dir.join("first.ts").to_str().unwrap(), &[]);
    let names: Vec<String> = common::programs(&v).into_iter().map(|p| p.0).collect();
    assert!(names.contains(&"First Use TV".to_string()), "{names:?}");
    assert!(names.contains(&"First Use Radio".to_string()), "{names:?}");

    let second = record("second.ts");
    assert!(
        !second.contains("generating emulated broadcast content"),
        "{second}"
    );
}
