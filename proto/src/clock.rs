//! Clock maths with plain integers: 33-bit PTS arithmetic and unwrapping, PCR (27 MHz) helpers,
//! overflow-free tick-rate conversion, TEMI timeline values at a PTS (spec section 7) and the
//! [`Correlation`] that ties a timeline to a reference clock.
//!
//! Units are explicit: PTS/DTS in 90 kHz ticks, PCR in 27 MHz ticks, times in nanoseconds,
//! timelines as `(ticks, rate)` pairs.

/// PTS/DTS clock rate.
pub const PTS_HZ: u64 = 90_000;
/// PCR clock rate.
pub const PCR_HZ: u64 = 27_000_000;
/// Nanoseconds per second.
pub const NS_PER_S: u64 = 1_000_000_000;
/// PTS/DTS/PCR-base modulus (2^33).
pub const PTS_MODULO: u64 = 1 << 33;
/// PCR modulus in 27 MHz ticks (2^33 × 300).
pub const PCR_MODULO: u64 = PTS_MODULO * 300;

/// `(a − b)` of two 33-bit values, as a signed step in −2^32 .. 2^32−1.
pub fn pts_diff(a: u64, b: u64) -> i64 {
    let d = a.wrapping_sub(b) & (PTS_MODULO - 1);
    if d >= PTS_MODULO / 2 {
        d as i64 - PTS_MODULO as i64
    } else {
        d as i64
    }
}

/// `pts + delta` modulo 2^33.
pub fn pts_add(pts: u64, delta: i64) -> u64 {
    (pts as i64).wrapping_add(delta) as u64 & (PTS_MODULO - 1)
}

/// `(a − b)` of two 27 MHz PCR values modulo 2^33 × 300, as a signed step.
pub fn pcr_diff(a: u64, b: u64) -> i64 {
    let d = (a % PCR_MODULO + PCR_MODULO - b % PCR_MODULO) % PCR_MODULO;
    if d >= PCR_MODULO / 2 {
        d as i64 - PCR_MODULO as i64
    } else {
        d as i64
    }
}

/// PCR base (90 kHz) and extension to 27 MHz ticks.
pub fn pcr_to_27mhz(base: u64, extension: u16) -> u64 {
    (base & (PTS_MODULO - 1)) * 300 + u64::from(extension)
}

/// 27 MHz ticks to 90 kHz ticks (truncating).
pub fn pcr_to_pts(pcr: u64) -> u64 {
    pcr / 300
}

/// Convert `ticks` at `from_rate` to `to_rate`, rounding down, using u128 internally.
/// Saturates at `u64::MAX`; gives 0 when `from_rate` is 0.
pub fn convert(ticks: u64, from_rate: u64, to_rate: u64) -> u64 {
    if from_rate == 0 {
        return 0;
    }
    let v = u128::from(ticks) * u128::from(to_rate) / u128::from(from_rate);
    u64::try_from(v).unwrap_or(u64::MAX)
}

/// Signed version of [`convert`], rounding towards −∞ (floor). Saturates at the i64 range.
pub fn convert_signed(ticks: i64, from_rate: u64, to_rate: u64) -> i64 {
    if from_rate == 0 {
        return 0;
    }
    let v = i128::from(ticks) * i128::from(to_rate);
    let v = v.div_euclid(i128::from(from_rate));
    i64::try_from(v).unwrap_or(if v < 0 { i64::MIN } else { i64::MAX })
}

/// 90 kHz ticks to nanoseconds.
pub fn pts_to_ns(pts: u64) -> u64 {
    convert(pts, PTS_HZ, NS_PER_S)
}

/// Nanoseconds to 90 kHz ticks (rounding down).
pub fn ns_to_pts(ns: u64) -> u64 {
    convert(ns, NS_PER_S, PTS_HZ)
}

/// Unwraps 33-bit PTS values into a continuous 64-bit timeline.
///
/// Each new value is placed at the signed modular step (−2^32 .. 2^32) from the previous one, so
/// a step past 2^33 continues upwards and B-frame reordering (small steps backwards) never counts
/// as a wrap. The first value maps to itself. Call [`PtsUnwrapper::reset`] on a time-base
/// discontinuity.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PtsUnwrapper {
    last: Option<i64>,
}

impl PtsUnwrapper {
    /// An unwrapper that has seen nothing.
    pub fn new() -> Self {
        Self::default()
    }

    /// Forget the history; the next value maps to itself.
    pub fn reset(&mut self) {
        self.last = None;
    }

    /// The last unwrapped value (signed; see [`PtsUnwrapper::unwrap_signed`]).
    pub fn last(&self) -> Option<i64> {
        self.last
    }

    /// Unwrap `raw` (only its low 33 bits are used). Can be negative only when the stream steps
    /// backwards across 0 right after the first value.
    pub fn unwrap_signed(&mut self, raw: u64) -> i64 {
        let raw = raw & (PTS_MODULO - 1);
        let v = match self.last {
            None => raw as i64,
            Some(last) => last.saturating_add(pts_diff(raw, last as u64 & (PTS_MODULO - 1))),
        };
        self.last = Some(v);
        v
    }

    /// Unwrap `raw`, clamping the (rare) negative case of [`PtsUnwrapper::unwrap_signed`] to 0.
    pub fn unwrap(&mut self, raw: u64) -> u64 {
        self.unwrap_signed(raw).max(0) as u64
    }
}

/// A TEMI (or any) timeline anchored to a raw 33-bit PTS (spec section 7).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimelineAnchor {
    /// Raw 33-bit PTS of the anchor.
    pub pts: u64,
    /// Timeline value at `pts`.
    pub value: u64,
    /// Timeline ticks per second.
    pub timescale: u64,
    /// A paused timeline stays at `value`.
    pub paused: bool,
}

impl TimelineAnchor {
    /// The timeline value at raw PTS `p` on the same time base:
    /// `value + floor(signed33(p − pts) × timescale / 90000)`, or `value` when paused.
    /// `None` if the result would be negative or past u64.
    pub fn value_at(&self, p: u64) -> Option<u64> {
        if self.paused {
            return Some(self.value);
        }
        let dp = pts_diff(p, self.pts);
        let dt = i128::from(dp) * i128::from(self.timescale);
        let dt = dt.div_euclid(i128::from(PTS_HZ));
        u64::try_from(i128::from(self.value) + dt).ok()
    }

    /// The value the timeline would have at `p`, compared with `observed`: the difference
    /// `observed − predicted` in timeline ticks (for undeclared-jump detection).
    pub fn deviation(&self, p: u64, observed: u64) -> Option<i128> {
        Some(i128::from(observed) - i128::from(self.value_at(p)?))
    }
}

/// A correlation between a timeline and a reference clock, as DVB-CSS uses it: at reference time
/// `reference_ns` the timeline was at `timeline_ticks` (at `tick_rate` per second), moving at
/// `speed` (1.0 = normal, 0.0 = paused).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Correlation {
    /// Timeline position at the correlation point.
    pub timeline_ticks: u64,
    /// Timeline ticks per second.
    pub tick_rate: u64,
    /// Reference (wall or pipeline) clock at the correlation point, ns.
    pub reference_ns: u64,
    /// Timeline speed.
    pub speed: f64,
}

impl Correlation {
    /// The timeline position at reference time `ns` (negative results are clamped to 0).
    pub fn timeline_at(&self, ns: u64) -> u64 {
        let dns = i128::from(ns) - i128::from(self.reference_ns);
        let float =
            || (dns as f64 * self.tick_rate as f64 / NS_PER_S as f64 * self.speed).floor() as i128;
        let dt = if self.speed == 1.0 {
            dns.checked_mul(i128::from(self.tick_rate))
                .map(|v| v.div_euclid(i128::from(NS_PER_S)))
                .unwrap_or_else(float)
        } else if self.speed == 0.0 {
            0
        } else {
            float()
        };
        let v = i128::from(self.timeline_ticks).saturating_add(dt).max(0);
        u64::try_from(v).unwrap_or(u64::MAX)
    }

    /// The reference time at which the timeline reaches `ticks`; `None` when paused or
    /// the rate is zero.
    pub fn reference_at(&self, ticks: u64) -> Option<u64> {
        if self.speed == 0.0 || self.tick_rate == 0 {
            return None;
        }
        let dt = i128::from(ticks) - i128::from(self.timeline_ticks);
        let dns = if self.speed == 1.0 {
            (dt * i128::from(NS_PER_S)).div_euclid(i128::from(self.tick_rate))
        } else {
            (dt as f64 * NS_PER_S as f64 / self.tick_rate as f64 / self.speed).floor() as i128
        };
        u64::try_from(i128::from(self.reference_ns).saturating_add(dns)).ok()
    }

    /// The same correlation expressed at another tick rate.
    pub fn with_tick_rate(&self, tick_rate: u64) -> Correlation {
        Correlation {
            timeline_ticks: convert(self.timeline_ticks, self.tick_rate, tick_rate),
            tick_rate,
            ..*self
        }
    }
}

/// A program's system time clock (STC, carried by its PCRs) locked to the running time of the
/// buffers that bring it, the way a decoder locks its STC: the running time at which the STC
/// reads an access unit's PTS is the moment that access unit is presented.
///
/// Each PCR gives one sample `running time of its packet − PCR time`. A live source stamps a
/// buffer when it arrives, i.e. at about its *last* packet: a packet's own time is the buffer's
/// running time minus the packets behind it in that buffer times the packet duration (measured
/// from the PCRs themselves). Arrival can only be late, never early, so the offset is the
/// lowest sample of a sliding window (a lower envelope, robust to late buffers); the window
/// follows a slow drift between the broadcaster's clock and ours.
#[derive(Debug, Clone)]
pub struct StcLock {
    window_ns: i128,
    /// Raw 27 MHz value and unwrapped nanoseconds of the newest PCR.
    last: Option<(u64, i128)>,
    /// First PCR since the lock (re)started: (unwrapped ns, packet index), for the packet
    /// duration.
    first: Option<(i128, u64)>,
    /// Packet index of the newest PCR.
    last_index: Option<u64>,
    /// Samples (unwrapped PCR ns, offset ns) whose offsets increase: a sliding minimum.
    samples: std::collections::VecDeque<(i128, i128)>,
}

impl Default for StcLock {
    fn default() -> Self {
        Self::new(STC_WINDOW_NS)
    }
}

/// Default window of [`StcLock`]: 4 s of PCR time.
pub const STC_WINDOW_NS: u64 = 4 * NS_PER_S;

impl StcLock {
    /// A lock whose offset is the lowest sample of the last `window_ns` of PCR time.
    pub fn new(window_ns: u64) -> Self {
        Self {
            window_ns: i128::from(window_ns),
            last: None,
            first: None,
            last_index: None,
            samples: std::collections::VecDeque::new(),
        }
    }

    /// Forgets everything (PCR discontinuity, flush).
    pub fn reset(&mut self) {
        *self = Self::new(self.window_ns as u64);
    }

    /// Packet duration (ns) measured from the PCRs, once they span enough packets.
    pub fn packet_ns(&self) -> Option<f64> {
        let (first_ns, first_idx) = self.first?;
        let (_, last_ns) = self.last?;
        let last_idx = self.last_index?;
        let n = last_idx.checked_sub(first_idx).filter(|&n| n >= 64)?;
        Some((last_ns - first_ns) as f64 / n as f64)
    }

    /// One PCR: `pcr` (27 MHz) in packet `index`, carried by a buffer of running time
    /// `buffer_rt_ns` whose last packet has index `buffer_last_index`.
    pub fn observe(&mut self, pcr: u64, index: u64, buffer_rt_ns: u64, buffer_last_index: u64) {
        let ns = match self.last {
            Some((raw, ns)) => {
                let d = pcr_diff(pcr, raw);
                // Backwards or more than 10 s forward without a discontinuity flag: start over.
                if !(0..=10 * PCR_HZ as i64).contains(&d) {
                    self.reset();
                    0
                } else {
                    ns + i128::from(d) * 1000 / 27
                }
            }
            None => 0,
        };
        self.last = Some((pcr, ns));
        self.last_index = Some(index);
        self.first.get_or_insert((ns, index));
        let behind = buffer_last_index.saturating_sub(index);
        let shift = self
            .packet_ns()
            .map_or(0, |p| (behind as f64 * p).round() as i128);
        let offset = i128::from(buffer_rt_ns) - shift - ns;
        while self.samples.back().is_some_and(|&(_, o)| o >= offset) {
            self.samples.pop_back();
        }
        self.samples.push_back((ns, offset));
        while self
            .samples
            .front()
            .is_some_and(|&(t, _)| t < ns - self.window_ns)
        {
            self.samples.pop_front();
        }
    }

    /// Running time (ns) at which the STC reads `pts` (90 kHz, 33 bits), taken as the PTS
    /// nearest the newest PCR; `None` before the first PCR.
    pub fn presentation_rt(&self, pts: u64) -> Option<i128> {
        let (raw, ns) = self.last?;
        let offset = self.samples.front()?.1;
        let d = pcr_diff(pts % PTS_MODULO * 300, raw);
        Some(offset + ns + i128::from(d) * 1000 / 27)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signed_differences() {
        assert_eq!(pts_diff(10, 5), 5);
        assert_eq!(pts_diff(5, 10), -5);
        assert_eq!(pts_diff(3600, 8_589_491_792), 446_400);
        assert_eq!(pts_diff(8_589_491_792, 3600), -446_400);
        assert_eq!(pts_diff(1 << 32, 0), -(1 << 32));
        assert_eq!(pts_diff((1 << 32) - 1, 0), (1 << 32) - 1);
        assert_eq!(pts_add(PTS_MODULO - 1, 2), 1);
        assert_eq!(pts_add(1, -2), PTS_MODULO - 1);
        assert_eq!(pcr_diff(5, PCR_MODULO - 5), 10);
        assert_eq!(pcr_diff(PCR_MODULO - 5, 5), -10);
        assert_eq!(pcr_to_27mhz(3000, 0), 900_000);
        assert_eq!(pcr_to_27mhz(PTS_MODULO - 1, 299), PCR_MODULO - 1);
        assert_eq!(pcr_to_pts(900_299), 3000);
    }

    #[test]
    fn conversions_do_not_overflow() {
        assert_eq!(convert(90_000, PTS_HZ, 1000), 1000);
        assert_eq!(convert(u64::MAX, 1, u64::MAX), u64::MAX);
        assert_eq!(convert(u64::MAX, u64::MAX, 1000), 1000);
        assert_eq!(
            convert(1 << 40, 90_000, 1 << 32),
            ((1u128 << 72) / 90_000) as u64
        );
        assert_eq!(convert(5, 0, 7), 0);
        assert_eq!(convert_signed(-1, 90, 1), -1);
        assert_eq!(convert_signed(-90, 90, 1), -1);
        assert_eq!(convert_signed(89, 90, 1), 0);
        assert_eq!(convert_signed(i64::MAX, 1, 2), i64::MAX);
        assert_eq!(pts_to_ns(90_000), NS_PER_S);
        assert_eq!(ns_to_pts(NS_PER_S / 2), 45_000);
    }

    #[test]
    fn unwrap_across_2_pow_33_with_b_frames() {
        let mut u = PtsUnwrapper::new();
        let start = PTS_MODULO - 3 * 3600;
        // decode order with B-frames: I P B B P B B ... each frame 3600 ticks (25 fps)
        let order = [0i64, 3, 1, 2, 6, 4, 5, 9, 7, 8];
        let mut got = Vec::new();
        for &f in &order {
            let raw = pts_add(start, f * 3600);
            got.push(u.unwrap(raw));
        }
        let want: Vec<u64> = order.iter().map(|&f| start + f as u64 * 3600).collect();
        assert_eq!(got, want);
        assert!(*got.last().unwrap() > PTS_MODULO);
        // keep going over several wraps in big (but < 2^32) steps
        let mut raw = pts_add(start, 9 * 3600);
        let mut ext = start + 9 * 3600;
        for _ in 0..10 {
            raw = pts_add(raw, 4_000_000_000);
            ext += 4_000_000_000;
            assert_eq!(u.unwrap(raw), ext);
        }
        assert!(ext > 4 * PTS_MODULO);
        // a small step back right after the start, across 0
        let mut u = PtsUnwrapper::new();
        assert_eq!(u.unwrap(100), 100);
        assert_eq!(u.unwrap_signed(PTS_MODULO - 3500), -3500);
        assert_eq!(u.unwrap(200), 200);
        u.reset();
        assert_eq!(u.unwrap(PTS_MODULO - 1), PTS_MODULO - 1);
        assert_eq!(u.last(), Some(PTS_MODULO as i64 - 1));
    }

    #[test]
    fn spec_section_7_examples() {
        // temi_a: anchor PTS 10200 <-> 0 at 1 kHz; at PTS 903000 the file carries 9920.
        let a = TimelineAnchor {
            pts: 10200,
            value: 0,
            timescale: 1000,
            paused: false,
        };
        assert_eq!(a.value_at(903_000), Some(9920));
        assert_eq!(a.deviation(903_000, 9920), Some(0));
        // across the wrap
        let a = TimelineAnchor {
            pts: 8_589_491_792,
            value: 0,
            timescale: 1000,
            paused: false,
        };
        assert_eq!(a.value_at(3600), Some(4960));
        // 90 kHz timeline: value follows PTS one to one
        let a = TimelineAnchor {
            pts: 96006,
            value: 1_000_000,
            timescale: 90000,
            paused: false,
        };
        assert_eq!(a.value_at(99009), Some(1_003_003));
        // backwards: floor; and before 0
        let a = TimelineAnchor {
            pts: 1000,
            value: 10,
            timescale: 1000,
            paused: false,
        };
        assert_eq!(a.value_at(999), Some(9));
        assert_eq!(a.value_at(0), None); // 10 + floor(-1000 * 1000 / 90000) = -2
        assert_eq!(TimelineAnchor { value: 12, ..a }.value_at(0), Some(0));
        // paused
        let p = TimelineAnchor { paused: true, ..a };
        assert_eq!(p.value_at(1_000_000), Some(10));
        // huge timescale does not overflow
        let h = TimelineAnchor {
            pts: 0,
            value: 0,
            timescale: u64::from(u32::MAX),
            paused: false,
        };
        assert_eq!(
            h.value_at((1 << 32) - 1),
            Some((((1u128 << 32) - 1) * ((1u128 << 32) - 1) / 90000) as u64)
        );
    }

    #[test]
    fn correlation() {
        let c = Correlation {
            timeline_ticks: 1000,
            tick_rate: 1000,
            reference_ns: 5 * NS_PER_S,
            speed: 1.0,
        };
        assert_eq!(c.timeline_at(6 * NS_PER_S), 2000);
        assert_eq!(c.timeline_at(4 * NS_PER_S), 0);
        assert_eq!(c.timeline_at(0), 0);
        assert_eq!(c.reference_at(1500), Some(5_500_000_000));
        let c2 = c.with_tick_rate(90_000);
        assert_eq!(c2.timeline_ticks, 90_000);
        let paused = Correlation { speed: 0.0, ..c };
        assert_eq!(paused.timeline_at(100 * NS_PER_S), 1000);
        assert_eq!(paused.reference_at(2000), None);
        let huge = Correlation {
            timeline_ticks: u64::MAX,
            tick_rate: u64::MAX,
            reference_ns: 0,
            speed: 1.0,
        };
        assert_eq!(huge.timeline_at(u64::MAX), u64::MAX);
        assert_eq!(
            Correlation {
                speed: f64::NAN,
                ..huge
            }
            .timeline_at(0),
            u64::MAX
        );
        assert_eq!(
            Correlation {
                speed: -1e300,
                ..huge
            }
            .timeline_at(u64::MAX),
            0
        );
        assert_eq!(huge.reference_at(0), None); // before the reference clock epoch
        assert_eq!(huge.reference_at(u64::MAX), Some(0));
        let double = Correlation { speed: 2.0, ..c };
        assert_eq!(double.timeline_at(6 * NS_PER_S), 3000);
        assert_eq!(double.reference_at(3000), Some(6 * NS_PER_S));
    }
    /// A CBR stream of 1 packet per 75 µs (≈20 Mbit/s), PCR every 400 packets, delivered in
    /// buffers of 133 packets stamped on arrival of their last packet (+ late buffers).
    #[test]
    fn stc_lock_follows_the_earliest_arrivals_and_maps_pts() {
        let pkt_ns = 75_000u64;
        let rt0 = 5_000_000_000u64;
        let pcr0 = PCR_MODULO - 27_000_000; // wraps 1 s in
        let mut lock = StcLock::default();
        assert_eq!(lock.presentation_rt(0), None);
        for idx in (0..200_000u64).step_by(400) {
            let last_in_buffer = (idx / 133) * 133 + 132;
            // every 7th buffer arrives 12 ms late
            let late = if (idx / 133) % 7 == 3 { 12_000_000 } else { 0 };
            let rt = rt0 + last_in_buffer * pkt_ns + late;
            let pcr = (pcr0 + idx * pkt_ns * 27 / 1000) % PCR_MODULO;
            lock.observe(pcr, idx, rt, last_in_buffer);
        }
        let p = lock.packet_ns().unwrap();
        assert!((p - pkt_ns as f64).abs() < 0.01, "{p}");
        // The STC read pcr0 at rt0: a PTS 2 s after pcr0 (past the wrap) is presented 2 s later.
        let pts = (pcr0 / 300 + 2 * PTS_HZ) % PTS_MODULO;
        let rt = lock.presentation_rt(pts).unwrap();
        assert!((rt - i128::from(rt0 + 2 * NS_PER_S)).abs() < 20_000, "{rt}");
    }

    #[test]
    fn stc_lock_restarts_on_a_backward_pcr() {
        let mut lock = StcLock::default();
        lock.observe(27_000_000, 0, 1_000_000_000, 0);
        lock.observe(27_000_000 + 2_700_000, 1000, 1_100_000_000, 1000);
        lock.observe(1_000, 2000, 1_200_000_000, 2000);
        assert_eq!(lock.packet_ns(), None);
        // The new start: the PTS of that PCR (3 × 300 = 900 ticks, 100 before it) maps to 1.2 s.
        let rt = lock.presentation_rt(3).unwrap();
        assert_eq!(rt, 1_200_000_000 - 100 * 1000 / 27);
    }
}
