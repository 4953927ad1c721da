//! `dvb2ip-bench tuner`: one emulated multiplex fanned out to N `dvbtunersrc` subscribers.
//! Prints CPU per subscriber and bytes copied, for pids=all and for distinct PID sets.
//!
//! The CPU of a point includes the frontend itself (on the emulator: reading, pacing and
//! restamping the multiplex; on hardware that is the kernel's work). The bench measures that
//! fixed part once, as one subscriber that takes no PID, and also prints the marginal CPU per
//! subscriber, (total − frontend) / N.

use std::time::{Duration, Instant};

use gst::prelude::*;
use gstdvb2ip::tuners;

fn cpu_seconds() -> f64 {
    // SAFETY: getrusage fills the struct we pass.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let t = |tv: libc::timeval| tv.tv_sec as f64 + tv.tv_usec as f64 / 1e6;
    t(ru.ru_utime) + t(ru.ru_stime)
}

/// One measured configuration.
#[derive(Debug, Clone)]
pub struct TunerBenchResult {
    pub subscribers: usize,
    pub mode: &'static str,
    pub cpu_percent_total: f64,
    pub cpu_percent_per_subscriber: f64,
    /// (total − the frontend alone) / N.
    pub marginal_cpu_percent_per_subscriber: f64,
    pub bytes_in_per_s: f64,
    pub bytes_copied_per_s: f64,
    pub buffers_per_s: f64,
}

fn pids_for(i: usize) -> String {
    // Each subscriber gets a different set: PSI, one service, plus a PID unique to it.
    let svc = [
        (0x100, 0x101, 0x102),
        (0x200, 0x201, 0x202),
        (0x300, 0x302, 0x302),
    ][i % 3];
    format!("0,16,17,18,20,{},{},{},{}", svc.0, svc.1, svc.2, 0x1000 + i)
}

/// The measured multiplex: the 20 Mbit/s DVB-T2 one of the embedded configuration.
const MUX: &str = "delsys=dvb-t2 frequency=474000000 bandwidth-hz=8000000 stream-id=0";

/// `subscribers` pipelines with the given PID sets.
fn measure_pids(
    n: usize,
    pids: impl Fn(usize) -> String,
    seconds: f64,
) -> anyhow::Result<(f64, f64, f64, f64)> {
    let mut pipelines = Vec::new();
    for i in 0..n {
        let p = gst::parse::launch(&format!(
            "dvbtunersrc {MUX} pids={} ! fakesink sync=false",
            pids(i)
        ))?;
        p.set_state(gst::State::Playing)?;
        pipelines.push(p);
    }
    // Wait for lock and for every pipeline to run.
    std::thread::sleep(Duration::from_millis(1500));
    let c0 = cpu_seconds();
    let b0 = tuners::Pool::default_pool()
        .counters()
        .bytes_in
        .load(std::sync::atomic::Ordering::Relaxed);
    let k0 = tuners::Pool::default_pool()
        .counters()
        .bytes_copied
        .load(std::sync::atomic::Ordering::Relaxed);
    let o0 = tuners::Pool::default_pool()
        .counters()
        .buffers_out
        .load(std::sync::atomic::Ordering::Relaxed);
    let t0 = Instant::now();
    std::thread::sleep(Duration::from_secs_f64(seconds));
    let dt = t0.elapsed().as_secs_f64();
    let cpu = (cpu_seconds() - c0) / dt * 100.0;
    let bytes_in = (tuners::Pool::default_pool()
        .counters()
        .bytes_in
        .load(std::sync::atomic::Ordering::Relaxed)
        - b0) as f64
        / dt;
    let copied = (tuners::Pool::default_pool()
        .counters()
        .bytes_copied
        .load(std::sync::atomic::Ordering::Relaxed)
        - k0) as f64
        / dt;
    let bufs = (tuners::Pool::default_pool()
        .counters()
        .buffers_out
        .load(std::sync::atomic::Ordering::Relaxed)
        - o0) as f64
        / dt;
    for p in pipelines {
        p.set_state(gst::State::Null)?;
    }
    Ok((cpu, bytes_in, copied, bufs))
}

fn measure(
    n: usize,
    distinct: bool,
    seconds: f64,
    frontend_cpu: f64,
) -> anyhow::Result<TunerBenchResult> {
    let (cpu, bytes_in, copied, bufs) = measure_pids(
        n,
        |i| if distinct { pids_for(i) } else { "all".into() },
        seconds,
    )?;
    Ok(TunerBenchResult {
        subscribers: n,
        mode: if distinct {
            "distinct PID sets"
        } else {
            "pids=all"
        },
        cpu_percent_total: cpu,
        cpu_percent_per_subscriber: cpu / n as f64,
        marginal_cpu_percent_per_subscriber: (cpu - frontend_cpu).max(0.0) / n as f64,
        bytes_in_per_s: bytes_in,
        bytes_copied_per_s: copied,
        buffers_per_s: bufs,
    })
}

/// Runs the tuner fan-out benchmark and prints a table.
pub fn run_tuner(counts: &[usize], seconds: f64) -> anyhow::Result<Vec<TunerBenchResult>> {
    gst::init()?;
    gstdvb2ip::plugin_register_static()?;
    tuners::configure(tuners::BroadcastConfig::embedded()).map_err(anyhow::Error::msg)?;
    tuners::prepare_content().map_err(anyhow::Error::msg)?;
    println!(
        "dvb2ip-bench tuner: emulated DVB-T2 474 MHz mux (20 Mbit/s), {seconds} s per point, {} CPUs",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    let (frontend_cpu, ..) = measure_pids(1, |_| "none".into(), seconds)?;
    println!("the frontend alone (one subscriber taking no PID): {frontend_cpu:.2} % of one core");
    println!(
        "{:>5}  {:<18} {:>10} {:>10} {:>14} {:>10} {:>12} {:>10}",
        "subs", "mode", "CPU % tot", "%/sub", "marginal %/sub", "in MB/s", "copied MB/s", "bufs/s"
    );
    let mut out = Vec::new();
    for &n in counts.iter().filter(|&&n| n > 0) {
        for distinct in [false, true] {
            let r = measure(n, distinct, seconds, frontend_cpu)?;
            println!(
                "{:>5}  {:<18} {:>10.2} {:>10.3} {:>14.3} {:>10.2} {:>12.2} {:>10.0}",
                r.subscribers,
                r.mode,
                r.cpu_percent_total,
                r.cpu_percent_per_subscriber,
                r.marginal_cpu_percent_per_subscriber,
                r.bytes_in_per_s / 1e6,
                r.bytes_copied_per_s / 1e6,
                r.buffers_per_s
            );
            out.push(r);
        }
    }
    let worst_marginal = out
        .iter()
        .map(|r| r.marginal_cpu_percent_per_subscriber)
        .fold(0.0, f64::max);
    let worst_total = out
        .iter()
        .filter(|r| r.subscribers > 1)
        .map(|r| r.cpu_percent_per_subscriber)
        .fold(0.0, f64::max);
    let verdict = |v: f64| if v < 0.5 { "met" } else { "NOT met" };
    println!(
        "target < 0.5 % of one core per subscriber: marginal {} (worst {worst_marginal:.3} %); \
         total/N with more than one subscriber {} (worst {worst_total:.3} %); with one subscriber \
         total/N is the frontend itself",
        verdict(worst_marginal),
        verdict(worst_total)
    );
    let all_copied: f64 = out
        .iter()
        .filter(|r| r.mode == "pids=all")
        .map(|r| r.bytes_copied_per_s)
        .sum();
    println!(
        "pids=all copies no payload: {}",
        if all_copied == 0.0 {
            "yes (0 bytes)"
        } else {
            "NO"
        }
    );
    Ok(out)
}
