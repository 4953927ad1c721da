//! Throughput of `tstimelineparse` against GStreamer's `tsparse` on the same 1 GB file.
//!
//! ```text
//! cargo run --release -p gst-plugin-dvb2ip --example bench_timeline [-- SIZE_MB [BLOCKSIZE]]
//! ```
//!
//! The file is the emulated "DVB-T 506 MHz" multiplex of the embedded configuration (three
//! services, TEMI at 90 kHz on PID 0x101, PSI/SI, null packets, 18 Mbit/s), generated with
//! `proto::mux` as fast as it can run instead of in real time: the multiplexer is the same one
//! the emulated frontends pace, so PCR/PTS/TEMI/CC stay continuous over the whole file (its
//! ~12 s content loop repeats ~37 times in 1 GB, with no CC rewriting needed).
//!
//! Each element then reads it with `filesrc blocksize=1 MiB ! X ! fakesink` (one streaming
//! thread, i.e. one core; the page cache is warmed first). Each element runs 3 times and the
//! best run counts. Element messages are dropped by a bus sync handler so the bus does not
//! grow; `tstimelineparse` still builds and posts them.

use std::io::Write;
use std::time::Instant;

use gst::prelude::*;
use gstdvb2ip::proto::mux::{Mux, MuxSpec};
use gstdvb2ip::tuners;

fn spec_of(m: &tuners::config::MuxConfig, cache: &std::path::Path) -> MuxSpec {
    tuners::mux_spec(m, std::slice::from_ref(m), cache).expect("emulated multiplex and its content")
}

fn make_file(path: &std::path::Path, size: u64) {
    let cfg = tuners::BroadcastConfig::embedded();
    let m = cfg
        .mux
        .iter()
        .find(|m| m.name == "DVB-T 506 MHz")
        .expect("DVB-T 506 MHz in the embedded configuration");
    let spec = spec_of(m, &cfg.cache_dir());
    let mut mux = Mux::new(spec, 1_700_000_000_000_000_000).expect("mux");
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).expect("create file"));
    let packets = size / 188;
    let mut buf = Vec::with_capacity(5577 * 188);
    let mut done = 0;
    let t = Instant::now();
    while done < packets {
        let n = (packets - done).min(5577);
        buf.clear();
        mux.fill(n as usize, &mut buf);
        f.write_all(&buf).expect("write");
        done += n;
    }
    f.flush().expect("flush");
    println!(
        "generated {} MB ({} packets) in {:.1} s",
        packets * 188 / 1_000_000,
        packets,
        t.elapsed().as_secs_f64()
    );
}

fn run(path: &std::path::Path, element: &str, blocksize: u32) -> f64 {
    let desc = format!(
        "filesrc location={} blocksize={blocksize} ! {element} ! fakesink",
        path.display()
    );
    let p = gst::parse::launch(&desc)
        .expect("pipeline")
        .downcast::<gst::Pipeline>()
        .expect("a pipeline");
    let bus = p.bus().expect("bus");
    bus.set_sync_handler(|_, m| {
        if m.type_() == gst::MessageType::Element {
            gst::BusSyncReply::Drop
        } else {
            gst::BusSyncReply::Pass
        }
    });
    let t = Instant::now();
    p.set_state(gst::State::Playing).expect("play");
    let msg = bus.timed_pop_filtered(
        gst::ClockTime::from_seconds(600),
        &[gst::MessageType::Eos, gst::MessageType::Error],
    );
    let secs = t.elapsed().as_secs_f64();
    if let Some(m) = &msg {
        if let gst::MessageView::Error(e) = m.view() {
            panic!("{desc}: {} {:?}", e.error(), e.debug());
        }
    } else {
        panic!("{desc}: timed out");
    }
    if element.starts_with("tstimelineparse") {
        let parse = p
            .iterate_elements()
            .into_iter()
            .flatten()
            .find(|e| e.factory().is_some_and(|f| f.name() == "tstimelineparse"));
        if let Some(e) = parse {
            let s = e.property::<gst::Structure>("stats");
            println!(
                "    stats: packets={} errors={}",
                s.get::<u64>("packets").unwrap_or(0),
                s.get::<u64>("errors").unwrap_or(0)
            );
        }
    }
    p.set_state(gst::State::Null).expect("stop");
    secs
}

fn main() {
    gst::init().expect("gst init");
    gstdvb2ip::plugin_register_static().expect("register plugin");
    let mut args = std::env::args().skip(1);
    let size_mb: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(1000);
    let blocksize: u32 = args.next().and_then(|a| a.parse().ok()).unwrap_or(1 << 20);
    let dir = std::env::temp_dir().join(format!("bench_timeline-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join("mux.ts");
    make_file(&path, size_mb * 1_000_000);
    let bytes = std::fs::metadata(&path).expect("file").len();

    // Warm the page cache, and measure what reading alone costs.
    run(&path, "identity", blocksize);
    let base = run(&path, "identity", blocksize);
    println!(
        "  baseline filesrc ! identity ! fakesink: {:.3} s, {:.0} MB/s",
        base,
        bytes as f64 / 1e6 / base
    );

    let mut results = Vec::new();
    for element in ["tstimelineparse", "tsparse"] {
        let mut best = f64::MAX;
        for i in 0..3 {
            let s = run(&path, element, blocksize);
            println!(
                "  {element} run {}: {:.3} s, {:.0} MB/s",
                i + 1,
                s,
                bytes as f64 / 1e6 / s
            );
            best = best.min(s);
        }
        results.push((element, bytes as f64 / 1e6 / best));
    }
    println!("file: {} bytes, blocksize {blocksize}", bytes);
    for (e, mbs) in &results {
        println!("{e:>16}: {mbs:8.0} MB/s");
    }
    let ratio = results[0].1 / results[1].1;
    println!("ratio tstimelineparse / tsparse: {ratio:.2}x");
    let verdict = |ok: bool| if ok { "met" } else { "NOT met" };
    println!(
        "targets: at least 3x tsparse {}; at least 1 GB/s on one core {} ({:.0} MB/s)",
        verdict(ratio >= 3.0),
        verdict(results[0].1 >= 1000.0),
        results[0].1
    );
    std::fs::remove_dir_all(&dir).ok();
}
