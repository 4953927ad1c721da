//! Runs `dvb2ip-bench` as the bench tests do: a child with a bound on its run time, and its
//! `<name>-summary: k=v …` line.

use std::collections::HashMap;
use std::io::Read;
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// What one bounded run printed.
pub struct Run {
    /// `None`: killed at the bound.
    pub status: Option<ExitStatus>,
    pub stdout: String,
    /// stdout and stderr, for assertion messages.
    pub report: String,
}

impl Run {
    /// The `key=value` pairs of the `<name>-summary:` line.
    pub fn summary(&self, name: &str) -> HashMap<String, String> {
        let prefix = format!("{name}-summary: ");
        self.stdout
            .lines()
            .find_map(|l| l.strip_prefix(prefix.as_str()))
            .unwrap_or_else(|| panic!("no {name}-summary line\n{}", self.report))
            .split_whitespace()
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// Number `key` of the `<name>-summary:` line.
    pub fn num(&self, name: &str, key: &str) -> f64 {
        self.summary(name)
            .get(key)
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{name}-summary without {key}\n{}", self.report))
    }
}

/// `dvb2ip-bench ARGS`, killed if it runs longer than `bound`. The server it measures is the
/// `dvb2ip` binary beside it (cargo builds both into the same target directory when the
/// workspace's tests are built).
pub fn run_bench(args: &[&str], bound: Duration) -> Run {
    let bench = env!("CARGO_BIN_EXE_dvb2ip-bench");
    let server = std::path::Path::new(bench).with_file_name("dvb2ip");
    assert!(
        server.is_file(),
        "{} not built: build the workspace (cargo build --workspace) or run `cargo test --workspace`",
        server.display()
    );
    let mut child = Command::new(bench)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("dvb2ip-bench starts");
    let mut out = child.stdout.take().expect("stdout");
    let mut err = child.stderr.take().expect("stderr");
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let end = Instant::now() + bound;
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait for dvb2ip-bench") {
            break Some(s);
        }
        if Instant::now() >= end {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let stdout = reader.join().unwrap_or_default();
    let stderr = err_reader.join().unwrap_or_default();
    let report = format!("--- stdout\n{stdout}\n--- stderr\n{stderr}");
    assert!(
        status.is_some(),
        "dvb2ip-bench {} did not end within {bound:?}\n{report}",
        args.join(" ")
    );
    Run {
        status,
        stdout,
        report,
    }
}
