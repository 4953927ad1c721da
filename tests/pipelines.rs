//! Every example in pipelines/ runs with the real gst-launch-1.0.

mod common;

use std::process::Command;

fn launch_file(name: &str) -> String {
    std::fs::read_to_string(common::repo_file(&format!("pipelines/{name}")))
        .unwrap()
        .trim()
        .to_string()
}

/// Runs a description for `secs` seconds, then interrupts it (gst-launch -e turns that into EOS).
fn run_for(secs: u32, args: &[&str], desc: &str, cwd: &std::path::Path) -> (bool, String) {
    let out = Command::new("timeout")
        .args(["-s", "INT", &secs.to_string(), "gst-launch-1.0"])
        .args(args)
        .args(common::launch_args(desc))
        .env("GST_PLUGIN_PATH", common::plugin_dir())
        .current_dir(cwd)
        .output()
        .expect("gst-launch-1.0");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (!text.contains("ERROR") && !text.contains("erroneous"), text)
}

#[test]
fn record_service_gives_a_file_ffprobe_reads_with_named_service_video_and_audio() {
    let dir = common::temp_dir("record");
    let (ok, text) = run_for(8, &["-e"], &launch_file("record-service.launch"), &dir);
    assert!(ok, "{text}");
    let file = dir.join("news.ts");
    assert!(std::fs::metadata(&file).unwrap().len() > 1_000_000);
    let v = common::ffprobe(file.to_str().unwrap(), &[]);
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
    let dir = common::temp_dir("record-mux");
    let (ok, text) = run_for(8, &["-e"], &launch_file("record-mux.launch"), &dir);
    assert!(ok, "{text}");
    let file = dir.join("mux.ts");
    let v = common::ffprobe(file.to_str().unwrap(), &[]);
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
        assert!(k.contains(&"video".into()) && k.contains(&"audio".into()), "{tv}: {k:?}");
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
        assert!(buffers >= 10, "{bin}: {buffers} buffers\n{}", &text[..text.len().min(4000)]);
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
