//! Timeline lines of `dvbcsssink`: which (running time, timeline value) pair each served
//! timeline is anchored on, and when that anchor must change. Pure numbers:
//! times are nanoseconds of running time, values are ticks.
//!
//! `tstimelineparse` reports, for every PES that carries a timeline anchor, the running time
//! at which a decoder presents it (PTS on the PCR-locked STC; those lie on a straight line up
//! to the STC estimate's small moves), or, without PCRs, the running time of the buffer
//! holding it. On a live source those running times are arrival stamps: most
//! lie within a fraction of a millisecond of one straight line, but a late chunk shows up
//! tens of milliseconds late (measured on the emulated tuners: ±0.3 ms, outliers +10…+40 ms).
//! Publishing every anchor would send clients a control timestamp per PES and make the
//! timeline jitter by the arrival noise. So each timeline keeps a *line* (anchor running time,
//! anchor value, speed) and only moves it when:
//!
//! * there is none yet, or a reset was asked for (discontinuity, TEMI paused/resumed, flush);
//! * the speed changes (TEMI paused flag, segment rate);
//! * an anchor arrives **earlier** than the line predicts by more than the tolerance (the line
//!   was built on a late sample: move it at once);
//! * anchors arrive **later** than predicted by more than the tolerance, either by more than
//!   the jump limit (a jump: move at once) or continuously for the persistence time (drift
//!   or a small jump: move to the least late of them). A single late outlier never moves it.
//!
//! The line is thus close to the lower envelope of the arrival times, as NTP-style filters
//! do, and the published timeline only changes when something really changed.

/// Nanoseconds per second.
const NS: i128 = 1_000_000_000;

/// Filter parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LineConfig {
    /// Deviation (ns) within which an anchor confirms the line.
    pub tolerance_ns: u64,
    /// Late anchors (beyond the tolerance) must persist this long (ns of running time)
    /// before the line moves to them.
    pub persist_ns: u64,
    /// Anchors later than this (ns) move the line at once (a jump, not jitter).
    pub jump_ns: u64,
}

impl Default for LineConfig {
    fn default() -> Self {
        Self {
            tolerance_ns: 1_000_000,
            persist_ns: 1_000_000_000,
            jump_ns: 500_000_000,
        }
    }
}

/// A straight line from running time to timeline ticks.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Line {
    /// Running time (ns) of the anchor.
    pub rt_ns: i128,
    /// Timeline value (ticks) at `rt_ns`.
    pub ticks: i128,
    /// Timeline speed (1 normal, 0 paused).
    pub speed: f64,
}

impl Line {
    /// The timeline value (ticks, rounded to nearest) at running time `rt_ns`.
    pub fn ticks_at(&self, rt_ns: i128, tick_rate: u64) -> i128 {
        if self.speed == 0.0 {
            return self.ticks;
        }
        let d = rt_ns - self.rt_ns;
        if self.speed == 1.0 {
            let p = d * i128::from(tick_rate);
            // round half away from zero
            let q = p / NS;
            let r = p % NS;
            return self.ticks + q + if 2 * r.abs() >= NS { p.signum() } else { 0 };
        }
        self.ticks + (d as f64 * tick_rate as f64 * self.speed / 1e9).round() as i128
    }

    /// The running time (ns) at which the timeline reads `ticks`; `None` when paused.
    pub fn rt_at(&self, ticks: i128, tick_rate: u64) -> Option<i128> {
        if self.speed == 0.0 || tick_rate == 0 {
            return None;
        }
        let d = ticks - self.ticks;
        if self.speed == 1.0 {
            return Some(self.rt_ns + d * NS / i128::from(tick_rate));
        }
        Some(self.rt_ns + (d as f64 * 1e9 / (tick_rate as f64 * self.speed)).round() as i128)
    }
}

/// What [`Track::observe`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Observed {
    /// The anchor confirmed the line (or is being watched as late).
    Kept,
    /// The line moved; publish it.
    Moved,
}

/// One timeline's line and filter state.
#[derive(Debug, Clone, PartialEq)]
pub struct Track {
    /// Ticks per second.
    pub tick_rate: u64,
    /// The current line, once an anchor arrived.
    pub line: Option<Line>,
    /// Move to the next anchor whatever it is.
    reset: bool,
    /// Late anchors so far: (running time of the first, least late anchor, its lateness).
    late: Option<(i128, Line, i128)>,
}

impl Track {
    /// A timeline with no anchor yet.
    pub fn new(tick_rate: u64) -> Self {
        Self {
            tick_rate,
            line: None,
            reset: false,
            late: None,
        }
    }

    /// Move to the next anchor unconditionally.
    pub fn reset(&mut self) {
        self.reset = true;
        self.late = None;
    }

    /// Feed one anchor: timeline value `ticks` at running time `rt_ns`, at `speed`.
    pub fn observe(&mut self, ticks: u64, rt_ns: u64, speed: f64, cfg: &LineConfig) -> Observed {
        let sample = Line {
            rt_ns: i128::from(rt_ns),
            ticks: i128::from(ticks),
            speed,
        };
        let Some(line) = self.line.filter(|_| !self.reset) else {
            return self.moved(sample);
        };
        if line.speed != speed {
            return self.moved(sample);
        }
        // Deviation of the sample from the line, as running time (ns); paused lines compare
        // values.
        let deviation = match line.rt_at(sample.ticks, self.tick_rate) {
            Some(pred) => sample.rt_ns - pred,
            None => {
                return if sample.ticks == line.ticks {
                    Observed::Kept
                } else {
                    self.moved(sample)
                };
            }
        };
        let tol = i128::from(cfg.tolerance_ns);
        if deviation < -tol || deviation > i128::from(cfg.jump_ns) {
            return self.moved(sample);
        }
        if deviation <= tol {
            self.late = None;
            return Observed::Kept;
        }
        // Late by more than the tolerance: watch.
        match &mut self.late {
            None => self.late = Some((sample.rt_ns, sample, deviation)),
            Some((first, best, best_dev)) => {
                if deviation < *best_dev {
                    *best = sample;
                    *best_dev = deviation;
                }
                if sample.rt_ns - *first >= i128::from(cfg.persist_ns) {
                    let best = *best;
                    return self.moved(best);
                }
            }
        }
        Observed::Kept
    }

    fn moved(&mut self, line: Line) -> Observed {
        self.line = Some(line);
        self.reset = false;
        self.late = None;
        Observed::Moved
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    fn cfg() -> LineConfig {
        LineConfig::default()
    }

    #[test]
    fn line_maths() {
        let l = Line {
            rt_ns: 1_000,
            ticks: 90_000,
            speed: 1.0,
        };
        assert_eq!(l.ticks_at(1_000 + 1_000_000_000, 90_000), 180_000);
        assert_eq!(l.ticks_at(1_000 - 1_000_000_000, 90_000), 0);
        assert_eq!(l.rt_at(180_000, 90_000), Some(1_000_001_000));
        // 1 tick at 90 kHz is 11111.1 ns; rounding to nearest
        assert_eq!(l.ticks_at(1_000 + 5_556, 90_000), 90_001);
        assert_eq!(l.ticks_at(1_000 + 5_555, 90_000), 90_000);
        assert_eq!(l.ticks_at(1_000 - 5_556, 90_000), 89_999);
        let p = Line { speed: 0.0, ..l };
        assert_eq!(p.ticks_at(10_000_000_000, 90_000), 90_000);
        assert_eq!(p.rt_at(1, 90_000), None);
        let h = Line { speed: 2.0, ..l };
        assert_eq!(h.ticks_at(1_000 + 500_000_000, 1000), 90_000 + 1000);
        assert_eq!(h.rt_at(91_000, 1000), Some(500_001_000));
    }

    #[test]
    fn jitter_within_tolerance_keeps_the_line() {
        let mut t = Track::new(1000);
        assert_eq!(t.observe(0, 100 * MS, 1.0, &cfg()), Observed::Moved);
        for i in 1..100u64 {
            let jitter = (i % 5) * 150_000; // up to 0.6 ms late
            assert_eq!(
                t.observe(i * 40, 100 * MS + i * 40 * MS + jitter, 1.0, &cfg()),
                Observed::Kept
            );
        }
    }

    #[test]
    fn late_outliers_are_ignored_but_persistent_lateness_moves() {
        let mut t = Track::new(1000);
        t.observe(0, 0, 1.0, &cfg());
        // single 30 ms outlier
        assert_eq!(t.observe(40, 70 * MS, 1.0, &cfg()), Observed::Kept);
        assert_eq!(t.observe(80, 80 * MS, 1.0, &cfg()), Observed::Kept);
        // from now on everything is 5 ms late (a small jump), one is only 4 ms late
        let mut moved = None;
        for i in 3..60u64 {
            let late = if i == 10 { 4 * MS } else { 5 * MS };
            if t.observe(i * 40, i * 40 * MS + late, 1.0, &cfg()) == Observed::Moved {
                moved = Some(i);
                break;
            }
        }
        let i = moved.expect("moves after the persistence time");
        assert!(i * 40 - 120 >= 1000, "not before 1 s: {i}");
        assert_eq!(
            t.line.unwrap().rt_ns - t.line.unwrap().ticks * 1_000_000,
            4 * MS as i128
        );
    }

    #[test]
    fn early_anchor_and_jumps_move_at_once() {
        let mut t = Track::new(90_000);
        t.observe(90_000, 1_000 * MS, 1.0, &cfg());
        // 2 ms early: the first anchor was late
        assert_eq!(t.observe(180_000, 1_998 * MS, 1.0, &cfg()), Observed::Moved);
        // timeline jumps back by 10 s: the anchor looks 10 s late
        assert_eq!(t.observe(0, 2_000 * MS, 1.0, &cfg()), Observed::Moved);
        // speed change
        assert_eq!(t.observe(9_000, 2_100 * MS, 0.0, &cfg()), Observed::Moved);
        assert_eq!(t.observe(9_000, 2_200 * MS, 0.0, &cfg()), Observed::Kept);
        assert_eq!(t.observe(9_001, 2_300 * MS, 0.0, &cfg()), Observed::Moved);
        t.reset();
        assert_eq!(t.observe(9_002, 2_300 * MS, 0.0, &cfg()), Observed::Moved);
    }
}
