//! Clock model shared by the CSS-WC and CSS-TS algorithms (digest section 3).
//!
//! This follows pydvbcss's clock tree in plain numbers: a clock is described relative to its
//! parent by a [`Correlation`] (a pair of simultaneous readings plus an error bound), a tick
//! rate and a speed. Ticks are `i64`; rates are ticks per second (`f64`, so NTSC-style
//! rational rates fit); error bounds and dispersions are seconds (`f64`).
//!
//! Nothing in the model reads the system clock: every method that needs "now" takes it as a
//! parent tick value. [`monotonic_ns`] is the one helper that reads `CLOCK_MONOTONIC` (through
//! [`std::time::Instant`]) for callers that want a root clock in nanoseconds.
//!
//! Conversions round to the nearest tick once (ties away from zero). When the rates and the
//! speed are integers (90 kHz timelines, 1 GHz wall clocks, speed 1 or 0) the arithmetic is
//! exact 128-bit integer arithmetic; otherwise it is `f64` relative to the correlation point.

use std::fmt;
use std::sync::OnceLock;
use std::time::Instant;

/// Nanoseconds per second, the tick rate of wall clocks and of [`monotonic_ns`].
pub const NANOS_PER_SEC: u64 = 1_000_000_000;

/// Nanoseconds per second as a tick rate.
pub const NANOS_TICK_RATE: f64 = 1e9;

/// A pair of simultaneous readings of a parent clock and a child clock, with an error bound.
///
/// When the parent reads `parent_ticks` the child reads `child_ticks`. The child's error at
/// that moment is `initial_error` seconds and grows by `error_growth_rate` seconds per second
/// of parent time.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Correlation {
    /// Parent clock reading, in parent ticks.
    pub parent_ticks: i64,
    /// Child clock reading at the same moment, in child ticks.
    pub child_ticks: i64,
    /// Error bound at the correlation point, seconds.
    pub initial_error: f64,
    /// Growth of the error bound, seconds per second of parent time.
    pub error_growth_rate: f64,
}

impl Correlation {
    /// An error-free correlation.
    pub const fn new(parent_ticks: i64, child_ticks: i64) -> Self {
        Self {
            parent_ticks,
            child_ticks,
            initial_error: 0.0,
            error_growth_rate: 0.0,
        }
    }

    /// The same correlation with the given error bound (seconds) and growth (s/s).
    pub const fn with_error(self, initial_error: f64, error_growth_rate: f64) -> Self {
        Self {
            initial_error,
            error_growth_rate,
            ..self
        }
    }
}

impl Default for Correlation {
    fn default() -> Self {
        Self::new(0, 0)
    }
}

/// A rejected clock parameter.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ClockError {
    /// Tick rates must be finite and greater than zero.
    InvalidTickRate(f64),
    /// Speeds must be finite (zero and negative speeds are allowed).
    InvalidSpeed(f64),
}

impl fmt::Display for ClockError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::InvalidTickRate(r) => write!(f, "invalid tick rate {r}: must be finite and > 0"),
            Self::InvalidSpeed(s) => write!(f, "invalid speed {s}: must be finite"),
        }
    }
}

impl std::error::Error for ClockError {}

fn check_rate(rate: f64) -> Result<f64, ClockError> {
    if rate.is_finite() && rate > 0.0 {
        Ok(rate)
    } else {
        Err(ClockError::InvalidTickRate(rate))
    }
}

fn check_speed(speed: f64) -> Result<f64, ClockError> {
    if speed.is_finite() {
        Ok(speed)
    } else {
        Err(ClockError::InvalidSpeed(speed))
    }
}

/// `Some(n)` when `x` is an integer small enough to be exact in `f64`.
fn exact_int(x: f64) -> Option<i128> {
    const LIMIT: f64 = 9_007_199_254_740_992.0; // 2^53
    (x.fract() == 0.0 && x.abs() <= LIMIT).then_some(x as i128)
}

/// `p / d` rounded to nearest, ties away from zero. `d` must be non-zero.
fn div_round(p: i128, d: i128) -> i128 {
    let q = p / d;
    let r = p % d;
    if 2 * r.abs() >= d.abs() {
        if (p < 0) == (d < 0) {
            q + 1
        } else {
            q - 1
        }
    } else {
        q
    }
}

fn saturate(v: i128) -> i64 {
    v.clamp(i64::MIN as i128, i64::MAX as i128) as i64
}

/// `delta × num / den`, rounded once to the nearest integer and saturated to `i64`.
/// `den` must be non-zero. Non-finite results saturate (NaN gives 0).
pub(crate) fn scale(delta: i128, num: f64, den: f64) -> i64 {
    if let (Some(n), Some(d)) = (exact_int(num), exact_int(den)) {
        if d != 0 {
            // |delta| <= 2^65 and |n| <= 2^53: the product fits in i128.
            return saturate(div_round(delta * n, d));
        }
    }
    // `as` saturates and maps NaN to 0.
    (delta as f64 * num / den).round() as i64
}

/// A clock whose reading is a linear function of its parent's (pydvbcss `CorrelatedClock`).
///
/// `ticks = child_ticks + (parent − parent_ticks) × rate × speed / parent_rate`.
/// Changing the speed or tick rate does **not** move the correlation point, so the reading
/// jumps unless the caller first re-bases (see [`Self::rebased_at_parent`], or use
/// [`TunableClock`], which always does).
#[derive(Debug, Clone, PartialEq)]
pub struct CorrelatedClock {
    parent_tick_rate: f64,
    tick_rate: f64,
    speed: f64,
    correlation: Correlation,
    available: bool,
}

impl CorrelatedClock {
    /// A clock at speed 1, correlation `(0, 0)` without error, available.
    pub fn new(parent_tick_rate: f64, tick_rate: f64) -> Result<Self, ClockError> {
        Ok(Self {
            parent_tick_rate: check_rate(parent_tick_rate)?,
            tick_rate: check_rate(tick_rate)?,
            speed: 1.0,
            correlation: Correlation::default(),
            available: true,
        })
    }

    /// A wall clock (1e9 ticks/s) over a nanosecond parent such as [`monotonic_ns`].
    pub fn wall_clock() -> Self {
        Self {
            parent_tick_rate: NANOS_TICK_RATE,
            tick_rate: NANOS_TICK_RATE,
            speed: 1.0,
            correlation: Correlation::default(),
            available: true,
        }
    }

    /// Parent ticks per second.
    pub fn parent_tick_rate(&self) -> f64 {
        self.parent_tick_rate
    }

    /// Ticks per second at speed 1.
    pub fn tick_rate(&self) -> f64 {
        self.tick_rate
    }

    /// Speed multiplier (1 normal, 0 paused, negative reverse).
    pub fn speed(&self) -> f64 {
        self.speed
    }

    /// The current correlation.
    pub fn correlation(&self) -> Correlation {
        self.correlation
    }

    /// Replace the correlation (speed unchanged).
    pub fn set_correlation(&mut self, correlation: Correlation) {
        self.correlation = correlation;
    }

    /// Set the speed without re-basing (the reading jumps unless at the correlation point).
    pub fn set_speed(&mut self, speed: f64) -> Result<(), ClockError> {
        self.speed = check_speed(speed)?;
        Ok(())
    }

    /// Set the tick rate without re-basing.
    pub fn set_tick_rate(&mut self, tick_rate: f64) -> Result<(), ClockError> {
        self.tick_rate = check_rate(tick_rate)?;
        Ok(())
    }

    /// Set correlation and speed as one change (the caller notifies dependants once).
    /// On error nothing changes.
    pub fn set_correlation_and_speed(
        &mut self,
        correlation: Correlation,
        speed: f64,
    ) -> Result<(), ClockError> {
        self.speed = check_speed(speed)?;
        self.correlation = correlation;
        Ok(())
    }

    /// The clock's own availability flag.
    pub fn own_availability(&self) -> bool {
        self.available
    }

    /// Mark the clock available or unavailable.
    pub fn set_available(&mut self, available: bool) {
        self.available = available;
    }

    /// Effective availability: available only if the clock and all its ancestors are
    /// (`parent_available` is the ancestors' effective availability).
    pub fn is_available(&self, parent_available: bool) -> bool {
        self.available && parent_available
    }

    /// Child reading when the parent reads `parent_ticks`.
    pub fn from_parent(&self, parent_ticks: i64) -> i64 {
        let c = &self.correlation;
        let delta = parent_ticks as i128 - c.parent_ticks as i128;
        let d = scale(delta, self.tick_rate * self.speed, self.parent_tick_rate);
        c.child_ticks.saturating_add(d)
    }

    /// Parent reading when this clock reads `ticks`. At speed 0 this exists only for
    /// `ticks == child_ticks`; other values give `None`.
    pub fn to_parent(&self, ticks: i64) -> Option<i64> {
        let c = &self.correlation;
        if self.speed == 0.0 {
            return (ticks == c.child_ticks).then_some(c.parent_ticks);
        }
        let delta = ticks as i128 - c.child_ticks as i128;
        let d = scale(delta, self.parent_tick_rate, self.tick_rate * self.speed);
        Some(c.parent_ticks.saturating_add(d))
    }

    /// Own error bound (seconds) when the parent reads `parent_ticks`.
    pub fn error_at_parent(&self, parent_ticks: i64) -> f64 {
        let c = &self.correlation;
        if c.error_growth_rate == 0.0 {
            return c.initial_error;
        }
        let elapsed = (parent_ticks as i128 - c.parent_ticks as i128).unsigned_abs() as f64
            / self.parent_tick_rate;
        c.initial_error + elapsed * c.error_growth_rate
    }

    /// Own error bound (seconds) when this clock reads `ticks`: `initial_error +
    /// |to_parent(ticks) − parent_ticks| / parent_rate × growth`. Infinite when `ticks` is
    /// never reached (speed 0).
    pub fn error_at(&self, ticks: i64) -> f64 {
        self.to_parent(ticks)
            .map_or(f64::INFINITY, |p| self.error_at_parent(p))
    }

    /// Dispersion (seconds) when the parent reads `parent_ticks`: own error plus the
    /// parent's dispersion at that moment (`parent_dispersion`, 0 for an ideal root).
    pub fn dispersion_at_parent(&self, parent_ticks: i64, parent_dispersion: f64) -> f64 {
        self.error_at_parent(parent_ticks) + parent_dispersion
    }

    /// The correlation re-based at parent time `parent_ticks`: same timing, error carried
    /// forward: `(p, from_parent(p), error_at_parent(p), growth)`.
    pub fn rebased_at_parent(&self, parent_ticks: i64) -> Correlation {
        Correlation {
            parent_ticks,
            child_ticks: self.from_parent(parent_ticks),
            initial_error: self.error_at_parent(parent_ticks),
            error_growth_rate: self.correlation.error_growth_rate,
        }
    }

    /// How big (seconds) a change to `correlation` and `speed` would be (pydvbcss
    /// `quantifyChange`): infinite if the speed differs; otherwise
    /// `|new.parent_ticks − to_parent(new.child_ticks)| / parent_rate`, or at speed 0
    /// `|new.child_ticks − from_parent(new.parent_ticks)| / rate`.
    pub fn change_size(&self, correlation: &Correlation, speed: f64) -> f64 {
        if speed != self.speed {
            return f64::INFINITY;
        }
        if speed != 0.0 {
            match self.to_parent(correlation.child_ticks) {
                Some(old) => {
                    (correlation.parent_ticks as i128 - old as i128).unsigned_abs() as f64
                        / self.parent_tick_rate
                }
                None => f64::INFINITY,
            }
        } else {
            let old = self.from_parent(correlation.parent_ticks);
            (correlation.child_ticks as i128 - old as i128).unsigned_abs() as f64 / self.tick_rate
        }
    }

    /// Whether [`Self::change_size`] exceeds `threshold_secs`.
    pub fn is_change_significant(
        &self,
        correlation: &Correlation,
        speed: f64,
        threshold_secs: f64,
    ) -> bool {
        self.change_size(correlation, speed) > threshold_secs
    }
}

/// A [`CorrelatedClock`] that re-bases at "now" before every speed or rate change, so its
/// reading never jumps (pydvbcss `TunableClock`). Used as an adjustable local clock.
#[derive(Debug, Clone, PartialEq)]
pub struct TunableClock {
    clock: CorrelatedClock,
}

impl TunableClock {
    /// A clock reading `start_ticks` when the parent reads `now_parent`, at speed 1.
    pub fn new(
        parent_tick_rate: f64,
        tick_rate: f64,
        now_parent: i64,
        start_ticks: i64,
    ) -> Result<Self, ClockError> {
        let mut clock = CorrelatedClock::new(parent_tick_rate, tick_rate)?;
        clock.set_correlation(Correlation::new(now_parent, start_ticks));
        Ok(Self { clock })
    }

    /// The underlying correlated clock (for conversions and dispersion).
    pub fn clock(&self) -> &CorrelatedClock {
        &self.clock
    }

    /// Reading when the parent reads `now_parent`.
    pub fn ticks_at(&self, now_parent: i64) -> i64 {
        self.clock.from_parent(now_parent)
    }

    /// Step the clock by `delta` ticks (adds to the correlation's child ticks).
    pub fn adjust_ticks(&mut self, delta: i64) {
        let mut c = self.clock.correlation();
        c.child_ticks = c.child_ticks.saturating_add(delta);
        self.clock.set_correlation(c);
    }

    /// Current speed.
    pub fn speed(&self) -> f64 {
        self.clock.speed()
    }

    /// Change speed at parent time `now_parent` without a jump.
    pub fn set_speed(&mut self, speed: f64, now_parent: i64) -> Result<(), ClockError> {
        let speed = check_speed(speed)?;
        let c = self.clock.rebased_at_parent(now_parent);
        self.clock.set_correlation_and_speed(c, speed)
    }

    /// Change tick rate at parent time `now_parent` without a jump.
    pub fn set_tick_rate(&mut self, tick_rate: f64, now_parent: i64) -> Result<(), ClockError> {
        let tick_rate = check_rate(tick_rate)?;
        let c = self.clock.rebased_at_parent(now_parent);
        self.clock.set_correlation(c);
        self.clock.set_tick_rate(tick_rate)
    }

    /// Slew in ticks per second relative to speed 1: `(speed − 1) × rate`.
    pub fn slew(&self) -> f64 {
        (self.clock.speed() - 1.0) * self.clock.tick_rate()
    }

    /// Set the slew (ticks per second) at parent time `now_parent` without a jump.
    pub fn set_slew(&mut self, slew: f64, now_parent: i64) -> Result<(), ClockError> {
        self.set_speed(1.0 + slew / self.clock.tick_rate(), now_parent)
    }
}

fn anchor() -> Instant {
    static ANCHOR: OnceLock<Instant> = OnceLock::new();
    *ANCHOR.get_or_init(Instant::now)
}

/// Nanoseconds of `CLOCK_MONOTONIC` since an arbitrary process-wide epoch (the first call).
///
/// Never goes backwards. This is the only function in `proto::css` that reads the system clock;
/// the models take its value as an argument.
pub fn monotonic_ns() -> u64 {
    let epoch = anchor();
    u64::try_from(Instant::now().duration_since(epoch).as_nanos()).unwrap_or(u64::MAX)
}

/// Estimate the precision (seconds) of [`monotonic_ns`] as the smallest positive step seen
/// over `samples` consecutive reads (pydvbcss does the same at start-up). Returns 1 µs if no
/// step was seen.
pub fn measure_monotonic_precision(samples: usize) -> f64 {
    let mut best = u64::MAX;
    let mut last = monotonic_ns();
    for _ in 0..samples {
        let now = monotonic_ns();
        if now > last {
            best = best.min(now - last);
            last = now;
        }
    }
    if best == u64::MAX {
        1e-6
    } else {
        best as f64 / NANOS_TICK_RATE
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pts_clock() -> CorrelatedClock {
        CorrelatedClock::new(1e9, 90_000.0).unwrap()
    }

    #[test]
    fn div_round_ties_away_from_zero() {
        assert_eq!(div_round(5, 2), 3);
        assert_eq!(div_round(-5, 2), -3);
        assert_eq!(div_round(5, -2), -3);
        assert_eq!(div_round(4, 3), 1);
        assert_eq!(div_round(-4, 3), -1);
        assert_eq!(div_round(0, 7), 0);
    }

    #[test]
    fn pts_over_wall_clock_is_exact() {
        let mut c = pts_clock();
        c.set_correlation(Correlation::new(1_000_000_000, 900));
        // one second later: +90000 ticks exactly
        assert_eq!(c.from_parent(2_000_000_000), 90_900);
        assert_eq!(c.to_parent(90_900), Some(2_000_000_000));
        // one tick = 11111.1 ns, rounded
        assert_eq!(c.to_parent(901), Some(1_000_011_111));
        assert_eq!(c.from_parent(1_000_011_111), 901);
        // far from the correlation point, no precision loss
        let p = 1_000_000_000 + 86_400 * 365 * NANOS_PER_SEC as i64;
        assert_eq!(c.from_parent(p), 900 + 86_400 * 365 * 90_000);
    }

    #[test]
    fn speed_scales_and_zero_speed_inverse_is_partial() {
        let mut c = pts_clock();
        c.set_correlation_and_speed(Correlation::new(0, 0), 2.0)
            .unwrap();
        assert_eq!(c.from_parent(1_000_000_000), 180_000);
        assert_eq!(c.to_parent(180_000), Some(1_000_000_000));
        c.set_speed(-1.0).unwrap();
        assert_eq!(c.from_parent(1_000_000_000), -90_000);
        assert_eq!(c.to_parent(-90_000), Some(1_000_000_000));
        c.set_speed(0.0).unwrap();
        assert_eq!(c.from_parent(123_456_789), 0);
        assert_eq!(c.to_parent(0), Some(0));
        assert_eq!(c.to_parent(1), None);
        assert_eq!(c.error_at(1), f64::INFINITY);
        // fractional speed takes the f64 path
        c.set_speed(0.5).unwrap();
        assert_eq!(c.from_parent(1_000_000_000), 45_000);
    }

    #[test]
    fn invalid_parameters_are_rejected() {
        assert!(CorrelatedClock::new(0.0, 1.0).is_err());
        assert!(CorrelatedClock::new(1.0, f64::NAN).is_err());
        let mut c = pts_clock();
        assert_eq!(
            c.set_speed(f64::INFINITY),
            Err(ClockError::InvalidSpeed(f64::INFINITY))
        );
        assert!(c.set_tick_rate(-1.0).is_err());
        let before = c.clone();
        assert!(c
            .set_correlation_and_speed(Correlation::new(5, 5), f64::NAN)
            .is_err());
        assert_eq!(c, before);
    }

    #[test]
    fn extreme_values_saturate_without_panic() {
        let mut c = CorrelatedClock::new(1.0, 1e9).unwrap();
        c.set_correlation(Correlation::new(i64::MIN, i64::MAX));
        assert_eq!(c.from_parent(i64::MAX), i64::MAX);
        c.set_correlation(Correlation::new(i64::MAX, i64::MIN));
        assert_eq!(c.from_parent(i64::MIN), i64::MIN);
        assert!(c.to_parent(i64::MAX).is_some());
        c.set_speed(1e300).unwrap();
        let _ = c.from_parent(0);
        let _ = c.to_parent(0);
        let _ = c.change_size(&Correlation::new(i64::MIN, i64::MAX), 1e300);
    }

    #[test]
    fn error_and_dispersion_grow_with_parent_distance() {
        let mut c = CorrelatedClock::wall_clock();
        c.set_correlation(Correlation::new(10_000_000_000, 5).with_error(0.001, 0.000_5));
        assert_eq!(c.error_at_parent(10_000_000_000), 0.001);
        // 2 s either side: +1 ms
        assert!((c.error_at_parent(12_000_000_000) - 0.002).abs() < 1e-12);
        assert!((c.error_at_parent(8_000_000_000) - 0.002).abs() < 1e-12);
        assert!((c.error_at(5 + 2_000_000_000) - 0.002).abs() < 1e-12);
        assert!((c.dispersion_at_parent(12_000_000_000, 0.000_1) - 0.002_1).abs() < 1e-12);
    }

    #[test]
    fn rebasing_keeps_timing_and_carries_error() {
        let mut c = pts_clock();
        c.set_correlation(Correlation::new(0, 1000).with_error(0.01, 0.001));
        let r = c.rebased_at_parent(3_000_000_000);
        assert_eq!(r.parent_ticks, 3_000_000_000);
        assert_eq!(r.child_ticks, 1000 + 270_000);
        assert!((r.initial_error - 0.013).abs() < 1e-12);
        assert_eq!(r.error_growth_rate, 0.001);
        let mut d = c.clone();
        d.set_correlation(r);
        for p in [0, 1_234_567_891, 9_000_000_000] {
            assert_eq!(d.from_parent(p), c.from_parent(p));
        }
    }

    #[test]
    fn speed_change_without_rebase_jumps() {
        let mut c = pts_clock();
        c.set_correlation(Correlation::new(0, 0));
        assert_eq!(c.from_parent(1_000_000_000), 90_000);
        c.set_speed(2.0).unwrap();
        assert_eq!(c.from_parent(1_000_000_000), 180_000);
    }

    #[test]
    fn change_size_matches_pydvbcss_quantify_change() {
        let mut c = pts_clock();
        c.set_correlation(Correlation::new(0, 0));
        // same timing expressed at another point: no change
        assert_eq!(
            c.change_size(&Correlation::new(1_000_000_000, 90_000), 1.0),
            0.0
        );
        // timeline 9 ticks (0.1 ms) ahead
        let ahead = Correlation::new(1_000_000_000, 90_009);
        assert!((c.change_size(&ahead, 1.0) - 0.000_1).abs() < 1e-9);
        assert!(c.is_change_significant(&ahead, 1.0, 0.000_05));
        assert!(!c.is_change_significant(&ahead, 1.0, 0.001));
        assert_eq!(c.change_size(&ahead, 2.0), f64::INFINITY);
        // paused: compare child ticks
        c.set_speed(0.0).unwrap();
        assert!((c.change_size(&Correlation::new(5, 900), 0.0) - 0.01).abs() < 1e-12);
    }

    #[test]
    fn availability_needs_all_ancestors() {
        let mut c = pts_clock();
        assert!(c.is_available(true));
        assert!(!c.is_available(false));
        c.set_available(false);
        assert!(!c.own_availability());
        assert!(!c.is_available(true));
    }

    #[test]
    fn tunable_clock_never_jumps() {
        let mut t = TunableClock::new(1e9, 1e9, 1_000, 0).unwrap();
        assert_eq!(t.ticks_at(1_000_001_000), 1_000_000_000);
        t.set_speed(1.5, 1_000_001_000).unwrap();
        assert_eq!(t.ticks_at(1_000_001_000), 1_000_000_000);
        assert_eq!(t.ticks_at(2_000_001_000), 2_500_000_000);
        assert_eq!(t.slew(), 0.5e9);
        t.set_slew(0.0, 2_000_001_000).unwrap();
        assert_eq!(t.speed(), 1.0);
        assert_eq!(t.ticks_at(3_000_001_000), 3_500_000_000);
        t.adjust_ticks(-500_000_000);
        assert_eq!(t.ticks_at(3_000_001_000), 3_000_000_000);
        t.set_tick_rate(1e6, 3_000_001_000).unwrap();
        assert_eq!(t.ticks_at(3_000_001_000), 3_000_000_000);
        assert_eq!(t.ticks_at(4_000_001_000), 3_001_000_000);
        assert!(t.set_speed(f64::NAN, 0).is_err());
        assert_eq!(t.clock().tick_rate(), 1e6);
    }

    #[test]
    fn monotonic_clock_does_not_go_backwards() {
        let a = monotonic_ns();
        let b = monotonic_ns();
        assert!(b >= a);
        let p = measure_monotonic_precision(1000);
        assert!(p > 0.0 && p <= 1.0);
    }
}
