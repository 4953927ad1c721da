//! Every example in pipelines/ runs with the real gst-launch-1.0.

mod common;

use std::process::Command;

fn launch_file(name: &str) -> String {
    std::fs::read_to_string(common::repo_file(&format!("pipelines/{name}")))
        .unwrap()
        .trim()
        .to_string()
}

/// Runs gst-launch-1.0 on a description with `env` added, interrupted after `secs` seconds
/// (gst-launch -e turns that into EOS). Its exit status and its output (stdout then stderr).
fn launch(
    secs: u32,
    args: &[&str],
    desc: &str,
    cwd: &std::path::Path,
    env: &[(&str, &std::path::Path)],
) -> (std::process::ExitStatus, String) {
    let out = Command::new("timeout")
        .args(["-s", "INT", &secs.to_string(), "gst-launch-1.0"])
        .args(args)
        .args(common::launch_args(desc))
        .env("GST_PLUGIN_PATH", common::plugin_dir())
        .envs(env.iter().copied())
        .current_dir(cwd)
        .output()
        .expect("gst-launch-1.0");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status, text)
}

/// Runs a description for `secs` seconds; true when nothing reported an error.
fn run_for(secs: u32, args: &[&str], desc: &str, cwd: &std::path::Path) -> (bool, String) {
    let (_, text) = launch(secs, args, desc, cwd, &[]);
    (!text.contains("ERROR") && !text.contains("erroneous"), text)
}

/// Runs a recording example from pipelines/ for 8 s in a new directory, then ffprobes the
/// `file` it wrote: the file's path and ffprobe's JSON.
fn record_and_probe(
    tag: &str,
    example: &str,
    file: &str,
) -> (std::path::PathBuf, serde_json::Value) {
    let dir = common::temp_dir(tag);
    let (ok, text) = run_for(8, &["-e"], &launch_file(example), &dir);
    assert!(ok, "{text}");
    let file = dir.join(file);
    let v = common::ffprobe(file.to_str().unwrap(), &[]);
    (file, v)
}

#[test]
fn record_service_gives_a_file_ffprobe_reads_with_named_service_video_and_audio() {
    let (file, v) = record_and_probe("record", "record-service.launch", "news.ts");
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
    let (_, v) = record_and_probe("record-mux", "record-mux.launch", "mux.ts");
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
    let (ok, text) = run_for(8, &["-v"], &desc, &dir);
    assert!(ok, "{}", &text[..text.len().min(4000)]);
    // Decoded video and audio reach their sinks (fakesink's last-message per buffer).
    for bin in ["vbin", "abin"] {
        let buffers = text
            .lines()
            .filter(|l| l.contains(&format!("/GstBin:{bin}/GstFakeSink:")) && l.contains("chain"))
            .count();
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
    let (ok, text) = run_for(6, &["-m"], &launch_file("dump-psi.launch"), &dir);
    assert!(ok, "{text}");
    for table in ["pat", "pmt", "sdt", "nit", "eit", "tdt"] {
        assert!(
            text.contains(&format!("(element): {table}, section")),
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
        let (status, text) = launch(
            120,
            &["-e"],
            &format!(
                "dvbtunersrc delsys=dvb-t frequency=522000000 bandwidth-hz=8000000 ! identity eos-after=300 ! filesink location={file}"
            ),
            &dir,
            &[("DVB2IP_CONFIG", &config), ("DVB2IP_CACHE_DIR", &cache)],
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
