//! CSS-WC, the wall clock protocol (digest section 2).
//!
//! * [`WcMessage`]: the 32-byte message, [`WcMessage::encode`] / [`WcMessage::decode`]
//!   (decode never panics; it returns a [`WcError`] for any bad input).
//! * [`encode_precision`] / [`encode_max_freq_error`] and their inverses.
//! * Server side: [`respond`] turns a request datagram into a response, [`follow_up`] builds
//!   the type-3 message that may follow a type-2 response.
//! * Client side: [`Exchange`] collects and ranks the replies to one request, [`Candidate`]
//!   does the measurement maths of digest 2.3, and [`LowestDispersionCandidate`] is pydvbcss's
//!   client algorithm (digest 2.4) as a pure state machine fed with times in nanoseconds.

use std::fmt;

use super::clock::{CorrelatedClock, Correlation, NANOS_PER_SEC, NANOS_TICK_RATE};

/// Every CSS-WC message is exactly this many bytes.
pub const WC_MESSAGE_LEN: usize = 32;

/// The only protocol version.
pub const WC_VERSION: u8 = 0;

/// pydvbcss's client waits this long for a reply (seconds).
pub const DEFAULT_TIMEOUT_SECS: f64 = 0.2;

/// pydvbcss's client sends a new request this long after adopting a candidate (seconds).
pub const DEFAULT_REPEAT_SECS: f64 = 1.0;

/// Default local max frequency error (ppm), pydvbcss's SysClock default. It is also the
/// honest bound for Linux's `CLOCK_MONOTONIC`: NTP may slew it by up to 500 ppm
/// (`adjtimex` tolerance), so a client cannot assume less without knowing its clock.
pub const DEFAULT_CLIENT_MAX_FREQ_ERROR_PPM: f64 = 500.0;

/// Our client's request interval (seconds) during its fast start.
pub const DEFAULT_FAST_REPEAT_SECS: f64 = 0.05;

/// Length (seconds) of our client's fast start, counted from its first exchange: it asks
/// every [`DEFAULT_FAST_REPEAT_SECS`] whatever the outcome, so the lowest-dispersion candidate
/// is picked from many and the estimate is never older than that interval. Afterwards the
/// delay after an adopted candidate doubles up to the repeat interval. With 500 ppm on both
/// sides the dispersion grows by 1 ms per second, so this is what keeps it around 0.1 ms
/// during the first seconds on a LAN (pydvbcss's fixed 1 s interval gives 1 ms).
pub const DEFAULT_FAST_START_SECS: f64 = 2.0;

/// The `message_type` byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum MessageType {
    /// Client → server request (0).
    Request = 0,
    /// Server → client response, no follow-up (1).
    Response = 1,
    /// Server → client response that a follow-up will follow (2).
    ResponseWithFollowUp = 2,
    /// Server → client follow-up with a better transmit time (3).
    FollowUp = 3,
}

impl MessageType {
    /// The type for a byte value, `None` for the reserved values 4–255.
    pub fn from_u8(v: u8) -> Option<Self> {
        match v {
            0 => Some(Self::Request),
            1 => Some(Self::Response),
            2 => Some(Self::ResponseWithFollowUp),
            3 => Some(Self::FollowUp),
            _ => None,
        }
    }
}

/// Why bytes are not a usable CSS-WC message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WcError {
    /// Not exactly [`WC_MESSAGE_LEN`] bytes (the actual length).
    WrongLength(usize),
    /// `version` byte other than 0.
    UnsupportedVersion(u8),
    /// Reserved `message_type` 4–255.
    UnknownMessageType(u8),
    /// A well-formed message of a type the receiver does not accept here (a server only
    /// accepts requests, a client only responses and follow-ups).
    UnexpectedType(MessageType),
}

impl fmt::Display for WcError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::WrongLength(n) => write!(f, "WC message is {n} bytes, expected 32"),
            Self::UnsupportedVersion(v) => write!(f, "unsupported WC version {v}"),
            Self::UnknownMessageType(t) => write!(f, "reserved WC message type {t}"),
            Self::UnexpectedType(t) => write!(f, "unexpected WC message type {t:?}"),
        }
    }
}

impl std::error::Error for WcError {}

/// A timevalue: 32-bit seconds then 32-bit nanoseconds, stored as the raw words so that a
/// request's originate value is echoed bit for bit even when `nanos` ≥ 1e9.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Timevalue {
    /// Seconds word.
    pub secs: u32,
    /// Nanoseconds word (< 1e9 when written by a well-behaved sender).
    pub nanos: u32,
}

impl Timevalue {
    /// Split nanoseconds into words. `nanos` is always < 1e9; seconds wrap modulo 2^32
    /// (after 136 years of clock time).
    pub fn from_ns(ns: u64) -> Self {
        Self {
            secs: (ns / NANOS_PER_SEC) as u32,
            nanos: (ns % NANOS_PER_SEC) as u32,
        }
    }

    /// `secs × 1e9 + nanos` (cannot overflow: at most about 2^62).
    pub fn to_ns(self) -> u64 {
        u64::from(self.secs) * NANOS_PER_SEC + u64::from(self.nanos)
    }

    fn read(b: &[u8]) -> Self {
        Self {
            secs: u32::from_be_bytes([b[0], b[1], b[2], b[3]]),
            nanos: u32::from_be_bytes([b[4], b[5], b[6], b[7]]),
        }
    }

    fn write(self, b: &mut [u8]) {
        b[0..4].copy_from_slice(&self.secs.to_be_bytes());
        b[4..8].copy_from_slice(&self.nanos.to_be_bytes());
    }
}

/// One CSS-WC message. `version` is implicit (always 0) and the reserved byte is written as 0
/// and ignored on decode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WcMessage {
    /// Request, response, response-with-follow-up or follow-up.
    pub message_type: MessageType,
    /// Server clock precision as log2 seconds (see [`encode_precision`]).
    pub precision: i8,
    /// Server clock max frequency error in 1/256 ppm (see [`encode_max_freq_error`]).
    pub max_freq_error: u32,
    /// Client's clock when it sent the request, echoed by the server.
    pub originate: Timevalue,
    /// Server wall clock when the request arrived.
    pub receive: Timevalue,
    /// Server wall clock when the response was sent.
    pub transmit: Timevalue,
}

impl WcMessage {
    /// A client request: type 0, originate = `originate_ns`, every other field 0.
    pub fn request(originate_ns: u64) -> Self {
        Self {
            message_type: MessageType::Request,
            precision: 0,
            max_freq_error: 0,
            originate: Timevalue::from_ns(originate_ns),
            receive: Timevalue::default(),
            transmit: Timevalue::default(),
        }
    }

    /// The 32 bytes on the wire.
    pub fn encode(&self) -> [u8; WC_MESSAGE_LEN] {
        let mut b = [0u8; WC_MESSAGE_LEN];
        b[0] = WC_VERSION;
        b[1] = self.message_type as u8;
        b[2] = self.precision.to_be_bytes()[0];
        b[3] = 0;
        b[4..8].copy_from_slice(&self.max_freq_error.to_be_bytes());
        self.originate.write(&mut b[8..16]);
        self.receive.write(&mut b[16..24]);
        self.transmit.write(&mut b[24..32]);
        b
    }

    /// Parse any datagram. Rejects a length other than 32, a version other than 0 and the
    /// reserved types 4–255; accepts all four defined types.
    pub fn decode(bytes: &[u8]) -> Result<Self, WcError> {
        if bytes.len() != WC_MESSAGE_LEN {
            return Err(WcError::WrongLength(bytes.len()));
        }
        if bytes[0] != WC_VERSION {
            return Err(WcError::UnsupportedVersion(bytes[0]));
        }
        let message_type =
            MessageType::from_u8(bytes[1]).ok_or(WcError::UnknownMessageType(bytes[1]))?;
        Ok(Self {
            message_type,
            precision: i8::from_be_bytes([bytes[2]]),
            max_freq_error: u32::from_be_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]),
            originate: Timevalue::read(&bytes[8..16]),
            receive: Timevalue::read(&bytes[16..24]),
            transmit: Timevalue::read(&bytes[24..32]),
        })
    }

    /// Parse a datagram received by a server: only a well-formed request is accepted.
    pub fn decode_request(bytes: &[u8]) -> Result<Self, WcError> {
        let m = Self::decode(bytes)?;
        match m.message_type {
            MessageType::Request => Ok(m),
            t => Err(WcError::UnexpectedType(t)),
        }
    }

    /// Parse a datagram received by a client: requests (type 0) are rejected.
    pub fn decode_reply(bytes: &[u8]) -> Result<Self, WcError> {
        let m = Self::decode(bytes)?;
        match m.message_type {
            MessageType::Request => Err(WcError::UnexpectedType(MessageType::Request)),
            _ => Ok(m),
        }
    }

    /// Server clock precision in seconds (`2^precision`).
    pub fn precision_secs(&self) -> f64 {
        decode_precision(self.precision)
    }

    /// Server max frequency error in ppm.
    pub fn max_freq_error_ppm(&self) -> f64 {
        decode_max_freq_error(self.max_freq_error)
    }
}

fn pow2(p: i32) -> f64 {
    2f64.powi(p)
}

/// Precision field for a clock precision of `secs` seconds: `ceil(log2(secs))`, so the
/// encoded value never claims better than `secs`. Clamped to −128..=127; zero, negative and
/// tiny values give −128, NaN and huge values give 127.
pub fn encode_precision(secs: f64) -> i8 {
    if secs.is_nan() || secs > pow2(127) {
        return 127;
    }
    if secs <= pow2(-128) {
        return -128;
    }
    let mut p = (secs.log2().ceil() as i32).clamp(-128, 127);
    // log2 may be off by an ulp near powers of two: settle on the exact smallest p with
    // 2^p >= secs.
    while p < 127 && pow2(p) < secs {
        p += 1;
    }
    while p > -128 && pow2(p - 1) >= secs {
        p -= 1;
    }
    p as i8
}

/// Seconds for a precision field: `2^p`.
pub fn decode_precision(p: i8) -> f64 {
    pow2(i32::from(p))
}

/// Max-frequency-error field for `ppm`: `ceil(ppm × 256)`, saturating to the `u32` range
/// (NaN gives `u32::MAX`, the conservative choice).
pub fn encode_max_freq_error(ppm: f64) -> u32 {
    if ppm.is_nan() {
        return u32::MAX;
    }
    // `as` saturates; ppm × 256 is exact (power of two), so only the input's rounding counts.
    (ppm * 256.0).ceil().max(0.0) as u32
}

/// ppm for a max-frequency-error field (`value / 256`).
pub fn decode_max_freq_error(v: u32) -> f64 {
    f64::from(v) / 256.0
}

/// What a server says about its wall clock in every response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerClockInfo {
    /// Precision field (log2 seconds), from [`encode_precision`].
    pub precision: i8,
    /// Max frequency error field (1/256 ppm), from [`encode_max_freq_error`].
    pub max_freq_error: u32,
}

impl ServerClockInfo {
    /// From a precision in seconds and a max frequency error in ppm.
    pub fn from_secs_ppm(precision_secs: f64, max_freq_error_ppm: f64) -> Self {
        Self {
            precision: encode_precision(precision_secs),
            max_freq_error: encode_max_freq_error(max_freq_error_ppm),
        }
    }
}

/// Server side: answer the datagram `request` received at wall clock `receive_ns` and about
/// to be sent at `transmit_ns`.
///
/// Returns an error (and the server must send nothing) unless `request` is a well-formed
/// type-0 message. The response echoes bytes 8–15 bit for bit, has type 1 (or 2 with
/// `will_follow_up`), and its transmit time is never before its receive time (a
/// `transmit_ns < receive_ns` is raised to `receive_ns`). Encode it with
/// [`WcMessage::encode`]; if `will_follow_up`, send [`follow_up`] afterwards.
pub fn respond(
    request: &[u8],
    receive_ns: u64,
    transmit_ns: u64,
    info: ServerClockInfo,
    will_follow_up: bool,
) -> Result<WcMessage, WcError> {
    let req = WcMessage::decode_request(request)?;
    Ok(WcMessage {
        message_type: if will_follow_up {
            MessageType::ResponseWithFollowUp
        } else {
            MessageType::Response
        },
        precision: info.precision,
        max_freq_error: info.max_freq_error,
        originate: req.originate,
        receive: Timevalue::from_ns(receive_ns),
        transmit: Timevalue::from_ns(transmit_ns.max(receive_ns)),
    })
}

/// [`respond`], encoded: the 32 response bytes to send back to the request's source address
/// and port.
pub fn respond_bytes(
    request: &[u8],
    receive_ns: u64,
    transmit_ns: u64,
    info: ServerClockInfo,
    will_follow_up: bool,
) -> Result<[u8; WC_MESSAGE_LEN], WcError> {
    respond(request, receive_ns, transmit_ns, info, will_follow_up).map(|m| m.encode())
}

/// Server side: the type-3 follow-up to a type-2 `response`, with a better-measured
/// `transmit_ns` (never earlier than the response's own transmit value).
pub fn follow_up(response: &WcMessage, transmit_ns: u64) -> WcMessage {
    WcMessage {
        message_type: MessageType::FollowUp,
        transmit: Timevalue::from_ns(transmit_ns.max(response.transmit.to_ns())),
        ..*response
    }
}

/// Server side, in place: write `transmit_ns` into an encoded response (bytes 24–31), never
/// earlier than its receive value (bytes 16–23). Lets a server encode a batch of responses
/// first and read the transmit time once, as late as possible, right before sending them.
pub fn stamp_transmit(response: &mut [u8; WC_MESSAGE_LEN], transmit_ns: u64) {
    let receive = Timevalue::read(&response[16..24]).to_ns();
    Timevalue::from_ns(transmit_ns.max(receive)).write(&mut response[24..32]);
}

/// Server side, in place: turn an encoded type-2 response into its type-3 follow-up with a
/// better-measured `transmit_ns` (never earlier than the response's own transmit value);
/// originate, receive and the clock fields stay.
pub fn make_follow_up(response: &mut [u8; WC_MESSAGE_LEN], transmit_ns: u64) {
    let previous = Timevalue::read(&response[24..32]).to_ns();
    response[1] = MessageType::FollowUp as u8;
    Timevalue::from_ns(transmit_ns.max(previous)).write(&mut response[24..32]);
}

/// pydvbcss's ranking of a reply to the request whose originate value was `originate`:
/// type 1 → 3, type 2 → 2, type 3 → 4, and 10 lower if the originate does not match.
/// Requests (type 0) are not replies: `None`.
pub fn reply_rank(reply: &WcMessage, originate: Timevalue) -> Option<i32> {
    let base = match reply.message_type {
        MessageType::Request => return None,
        MessageType::Response => 3,
        MessageType::ResponseWithFollowUp => 2,
        MessageType::FollowUp => 4,
    };
    Some(if reply.originate == originate {
        base
    } else {
        base - 10
    })
}

/// A reply rank at or above this ends the wait for replies early.
pub const GOOD_ENOUGH_RANK: i32 = 3;

/// One measurement: the reply to a request plus the client time it arrived.
///
/// `t1` (originate) and `t4` are client clock nanoseconds; `t2` (receive) and `t3`
/// (transmit) are server wall clock nanoseconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Candidate {
    /// Client clock at sending (ns), echoed as the originate value.
    pub t1: u64,
    /// Server wall clock when the request arrived (ns).
    pub t2: u64,
    /// Server wall clock when the reply left (ns).
    pub t3: u64,
    /// Client clock when the reply arrived (ns).
    pub t4: u64,
    /// Server precision field (log2 seconds).
    pub precision: i8,
    /// Server max frequency error field (1/256 ppm).
    pub max_freq_error: u32,
}

impl Candidate {
    /// From a decoded reply and the client clock time `t4_ns` it arrived.
    pub fn from_reply(reply: &WcMessage, t4_ns: u64) -> Self {
        Self {
            t1: reply.originate.to_ns(),
            t2: reply.receive.to_ns(),
            t3: reply.transmit.to_ns(),
            t4: t4_ns,
            precision: reply.precision,
            max_freq_error: reply.max_freq_error,
        }
    }

    fn client_span(&self) -> i128 {
        i128::from(self.t4) - i128::from(self.t1)
    }

    fn server_span(&self) -> i128 {
        i128::from(self.t3) - i128::from(self.t2)
    }

    /// Round-trip time `(t4 − t1) − (t3 − t2)` in ns (saturated to `i64`).
    pub fn rtt_ns(&self) -> i64 {
        let v = self.client_span() - self.server_span();
        v.clamp(i64::MIN.into(), i64::MAX.into()) as i64
    }

    /// Offset of the server clock from the client clock, `((t2 + t3) − (t1 + t4)) / 2` ns.
    pub fn offset_ns(&self) -> f64 {
        let twice = (i128::from(self.t2) + i128::from(self.t3))
            - (i128::from(self.t1) + i128::from(self.t4));
        twice as f64 / 2.0
    }

    /// Error bound (seconds) at the correlation point:
    /// `2^precision + (rtt/2 + mfeC·(t4 − t1) + mfeS·(t3 − t2)) / 1e9`, with
    /// `client_mfe_ppm` as mfeC. A negative rtt or span (impossible with sane clocks) counts
    /// as 0, so a bogus reply can never look better than a perfect one.
    pub fn initial_error(&self, client_mfe_ppm: f64) -> f64 {
        let rtt = self.client_span() - self.server_span();
        let mfe_c = client_mfe_ppm / 1e6;
        let mfe_s = decode_max_freq_error(self.max_freq_error) / 1e6;
        let pos = |v: i128| v.max(0) as f64;
        decode_precision(self.precision)
            + (pos(rtt) / 2.0 + mfe_c * pos(self.client_span()) + mfe_s * pos(self.server_span()))
                / NANOS_TICK_RATE
    }

    /// Error growth (seconds per second): `mfeC + mfeS`.
    pub fn error_growth_rate(&self, client_mfe_ppm: f64) -> f64 {
        (client_mfe_ppm + decode_max_freq_error(self.max_freq_error)) / 1e6
    }

    /// The wall clock correlation this measurement gives: client time `(t1 + t4)/2`
    /// (parent) ↔ server wall clock `(t2 + t3)/2` (child), with its error bound.
    pub fn correlation(&self, client_mfe_ppm: f64) -> Correlation {
        let mid = |a: u64, b: u64| ((u128::from(a) + u128::from(b)) / 2) as i64;
        Correlation {
            parent_ticks: mid(self.t1, self.t4),
            child_ticks: mid(self.t2, self.t3),
            initial_error: self.initial_error(client_mfe_ppm),
            error_growth_rate: self.error_growth_rate(client_mfe_ppm),
        }
    }
}

/// Client side: the replies to one request (digest 2.4).
///
/// Create it when sending, feed it every datagram that arrives from the server's address and
/// port, and stop waiting when [`Exchange::is_done`] or the timeout passes; then take
/// [`Exchange::best`].
#[derive(Debug, Clone)]
pub struct Exchange {
    originate: Timevalue,
    best: Option<(i32, Candidate)>,
}

impl Exchange {
    /// Start an exchange whose request leaves at client time `originate_ns`; returns the
    /// request bytes to send.
    pub fn start(originate_ns: u64) -> (Self, [u8; WC_MESSAGE_LEN]) {
        let req = WcMessage::request(originate_ns);
        (
            Self {
                originate: req.originate,
                best: None,
            },
            req.encode(),
        )
    }

    /// The originate value replies should echo.
    pub fn originate(&self) -> Timevalue {
        self.originate
    }

    /// Offer a datagram received at client time `t4_ns`. Malformed datagrams and requests
    /// are returned as errors and otherwise ignored (the client keeps running). Returns the
    /// reply's rank when it was usable.
    pub fn on_datagram(&mut self, datagram: &[u8], t4_ns: u64) -> Result<i32, WcError> {
        let reply = WcMessage::decode_reply(datagram)?;
        let rank = reply_rank(&reply, self.originate)
            .ok_or(WcError::UnexpectedType(reply.message_type))?;
        if self.best.is_none_or(|(r, _)| rank > r) {
            self.best = Some((rank, Candidate::from_reply(&reply, t4_ns)));
        }
        Ok(rank)
    }

    /// A reply good enough to stop waiting (rank ≥ [`GOOD_ENOUGH_RANK`]) has arrived.
    pub fn is_done(&self) -> bool {
        self.best.is_some_and(|(r, _)| r >= GOOD_ENOUGH_RANK)
    }

    /// The best-ranked reply so far as a candidate (a lone type 2 counts).
    pub fn best(&self) -> Option<Candidate> {
        self.best.map(|(_, c)| c)
    }
}

/// pydvbcss's `LowestDispersionCandidate` algorithm as a pure state machine.
///
/// Holds the wall clock estimate as a [`CorrelatedClock`] whose parent is the client's own
/// clock in nanoseconds. Starts with no estimate (infinite dispersion); a candidate is adopted
/// only if its dispersion now is lower than the current estimate's.
#[derive(Debug, Clone)]
pub struct LowestDispersionCandidate {
    wall_clock: CorrelatedClock,
    have_estimate: bool,
    client_precision: f64,
    client_mfe_ppm: f64,
    repeat_secs: f64,
    timeout_secs: f64,
    fast_start_secs: f64,
    fast_repeat_secs: f64,
    /// Client time of the first [`LowestDispersionCandidate::next_request_delay`] call.
    started_ns: Option<u64>,
    /// Current back-off delay after the fast start.
    backoff_secs: f64,
}

impl LowestDispersionCandidate {
    /// `client_precision_secs` is the client clock's precision (seconds, see
    /// [`super::clock::measure_monotonic_precision`]); `client_mfe_ppm` its max frequency
    /// error (pydvbcss: 500).
    pub fn new(client_precision_secs: f64, client_mfe_ppm: f64) -> Self {
        Self {
            wall_clock: CorrelatedClock::wall_clock(),
            have_estimate: false,
            client_precision: client_precision_secs,
            client_mfe_ppm,
            repeat_secs: DEFAULT_REPEAT_SECS,
            timeout_secs: DEFAULT_TIMEOUT_SECS,
            fast_start_secs: DEFAULT_FAST_START_SECS,
            fast_repeat_secs: DEFAULT_FAST_REPEAT_SECS,
            started_ns: None,
            backoff_secs: 0.0,
        }
    }

    /// Override the fast start: `fast_start_secs` long, one request every
    /// `fast_repeat_secs`. `fast_start_secs` 0 gives pydvbcss's schedule from the start.
    pub fn with_fast_start(mut self, fast_start_secs: f64, fast_repeat_secs: f64) -> Self {
        self.fast_start_secs = fast_start_secs;
        self.fast_repeat_secs = fast_repeat_secs;
        self
    }

    /// Override the repeat interval and reply timeout (seconds).
    pub fn with_timing(mut self, repeat_secs: f64, timeout_secs: f64) -> Self {
        self.repeat_secs = repeat_secs;
        self.timeout_secs = timeout_secs;
        self
    }

    /// Reply timeout (seconds).
    pub fn timeout_secs(&self) -> f64 {
        self.timeout_secs
    }

    /// Dispersion (seconds) of the current estimate at client time `now_ns`; infinite before
    /// the first adopted candidate.
    pub fn dispersion_at(&self, now_ns: u64) -> f64 {
        if !self.have_estimate {
            return f64::INFINITY;
        }
        self.wall_clock
            .dispersion_at_parent(clamp_i64(now_ns), self.client_precision)
    }

    /// Dispersion (seconds) that `candidate` would have at client time `now_ns`.
    pub fn candidate_dispersion_at(&self, candidate: &Candidate, now_ns: u64) -> f64 {
        let mut c = self.wall_clock.clone();
        c.set_correlation(candidate.correlation(self.client_mfe_ppm));
        c.dispersion_at_parent(clamp_i64(now_ns), self.client_precision)
    }

    /// Offer a candidate at client time `now_ns`; adopts it (returns `true`) only if its
    /// dispersion now is lower than the current estimate's.
    pub fn offer(&mut self, candidate: &Candidate, now_ns: u64) -> bool {
        if self.candidate_dispersion_at(candidate, now_ns) < self.dispersion_at(now_ns) {
            self.wall_clock
                .set_correlation(candidate.correlation(self.client_mfe_ppm));
            self.have_estimate = true;
            true
        } else {
            false
        }
    }

    /// The wall clock estimate (parent: client ns), once a candidate was adopted.
    pub fn wall_clock(&self) -> Option<&CorrelatedClock> {
        self.have_estimate.then_some(&self.wall_clock)
    }

    /// Estimated server wall clock (ns) at client time `client_ns`.
    pub fn wall_clock_at(&self, client_ns: u64) -> Option<i64> {
        self.wall_clock()
            .map(|c| c.from_parent(clamp_i64(client_ns)))
    }

    /// How long to wait (seconds) before the next request, asked at client time `now_ns`
    /// right after an exchange.
    ///
    /// During the fast start (the first `fast_start_secs` after the first call): the fast
    /// repeat interval, whatever the outcome. Afterwards pydvbcss's rule with a back-off:
    /// only the timeout after a timeout or a rejected candidate; after an adopted one, a
    /// delay that starts at twice the fast interval and doubles up to the repeat interval.
    pub fn next_request_delay(&mut self, adopted: bool, now_ns: u64) -> f64 {
        let start = *self.started_ns.get_or_insert(now_ns);
        let elapsed = now_ns.saturating_sub(start) as f64 / NANOS_PER_SEC as f64;
        if elapsed < self.fast_start_secs {
            return self.fast_repeat_secs;
        }
        if !adopted {
            return self.timeout_secs;
        }
        self.backoff_secs = (self.backoff_secs.max(self.fast_repeat_secs) * 2.0)
            .min(self.repeat_secs)
            .max(0.0);
        self.backoff_secs
    }
}

fn clamp_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Digest 2.1 worked example.
    const EXAMPLE: [u8; 32] = [
        0x00, 0x01, 0x05, 0x00, 0x00, 0x00, 0x1e, 0x00, 0, 0, 0, 0, 0x00, 0x00, 0x03, 0xe8, 0, 0,
        0, 0, 0x00, 0x00, 0x07, 0xd0, 0, 0, 0, 0, 0x00, 0x00, 0x0b, 0xb8,
    ];

    fn info() -> ServerClockInfo {
        ServerClockInfo {
            precision: -10,
            max_freq_error: encode_max_freq_error(500.0),
        }
    }

    #[test]
    fn transmit_stamped_in_place_and_follow_up() {
        let mut req = WcMessage::request(0).encode();
        req[8..16].copy_from_slice(&[1, 2, 3, 4, 0xff, 0xff, 0xff, 0xff]);
        let mut r = respond_bytes(&req, 2000, 2000, info(), true).unwrap();
        stamp_transmit(&mut r, 3000);
        let mut expected = respond_bytes(&req, 2000, 3000, info(), true).unwrap();
        assert_eq!(r, expected);
        // never before the receive value
        stamp_transmit(&mut r, 1500);
        assert_eq!(WcMessage::decode(&r).unwrap().transmit.to_ns(), 2000);
        stamp_transmit(&mut r, 3000);
        make_follow_up(&mut r, 4000);
        let m = WcMessage::decode(&expected).unwrap();
        expected = follow_up(&m, 4000).encode();
        assert_eq!(r, expected);
        assert_eq!(&r[8..16], &req[8..16]);
        // never before the type-2 transmit value
        make_follow_up(&mut r, 10);
        assert_eq!(WcMessage::decode(&r).unwrap().transmit.to_ns(), 4000);
        assert_eq!(r[1], MessageType::FollowUp as u8);
    }

    #[test]
    fn spec_worked_example_encodes_byte_exact() {
        let m = WcMessage {
            message_type: MessageType::Response,
            precision: 5,
            max_freq_error: encode_max_freq_error(30.0),
            originate: Timevalue::from_ns(1000),
            receive: Timevalue::from_ns(2000),
            transmit: Timevalue::from_ns(3000),
        };
        assert_eq!(m.max_freq_error, 7680);
        assert_eq!(m.encode(), EXAMPLE);
        assert_eq!(WcMessage::decode(&EXAMPLE), Ok(m));
        assert_eq!(m.max_freq_error_ppm(), 30.0);
        assert_eq!(m.precision_secs(), 32.0);
    }

    #[test]
    fn timevalue_2000ns_bytes() {
        let mut b = [0u8; 8];
        Timevalue::from_ns(2000).write(&mut b);
        assert_eq!(b, [0, 0, 0, 0, 0, 0, 0x07, 0xd0]);
        let t = Timevalue::from_ns(5 * NANOS_PER_SEC + 7);
        assert_eq!((t.secs, t.nanos), (5, 7));
        assert_eq!(t.to_ns(), 5 * NANOS_PER_SEC + 7);
        let max = Timevalue {
            secs: u32::MAX,
            nanos: u32::MAX,
        };
        assert_eq!(
            max.to_ns(),
            u64::from(u32::MAX) * NANOS_PER_SEC + u64::from(u32::MAX)
        );
    }

    #[test]
    fn request_has_only_originate() {
        let b = WcMessage::request(1_500_000_123).encode();
        let mut want = [0u8; 32];
        want[8..12].copy_from_slice(&1u32.to_be_bytes());
        want[12..16].copy_from_slice(&500_000_123u32.to_be_bytes());
        assert_eq!(b, want);
    }

    #[test]
    fn all_four_types_round_trip() {
        for (t, byte) in [
            (MessageType::Request, 0u8),
            (MessageType::Response, 1),
            (MessageType::ResponseWithFollowUp, 2),
            (MessageType::FollowUp, 3),
        ] {
            let m = WcMessage {
                message_type: t,
                precision: -128,
                max_freq_error: u32::MAX,
                originate: Timevalue { secs: 1, nanos: 2 },
                receive: Timevalue {
                    secs: u32::MAX,
                    nanos: 999_999_999,
                },
                transmit: Timevalue { secs: 7, nanos: 8 },
            };
            let b = m.encode();
            assert_eq!(b[1], byte);
            assert_eq!(b[2], 0x80);
            assert_eq!(WcMessage::decode(&b), Ok(m));
        }
    }

    #[test]
    fn decode_never_panics_on_any_length_or_bytes() {
        for len in 0..100 {
            let b = vec![0xa5u8; len];
            let _ = WcMessage::decode(&b);
            let _ = WcMessage::decode_reply(&b);
            let _ = respond(&b, 1, 2, info(), false);
        }
        // every value of the first two bytes
        for v in 0..=255u8 {
            for t in 0..=255u8 {
                let mut b = [0xffu8; 32];
                b[0] = v;
                b[1] = t;
                let r = WcMessage::decode(&b);
                assert_eq!(r.is_ok(), v == 0 && t <= 3);
            }
        }
    }

    #[test]
    fn checklist_01_wrong_length_is_not_a_wc_message() {
        let req = WcMessage::request(1).encode();
        assert_eq!(WcMessage::decode(&req[..31]), Err(WcError::WrongLength(31)));
        let mut long = req.to_vec();
        long.push(0);
        assert_eq!(WcMessage::decode(&long), Err(WcError::WrongLength(33)));
        assert_eq!(WcMessage::decode(&[]), Err(WcError::WrongLength(0)));
        assert!(respond(&long, 1, 2, info(), false).is_err());
    }

    #[test]
    fn checklist_02_version_other_than_0_is_ignored() {
        let mut req = WcMessage::request(1).encode();
        req[0] = 1;
        assert_eq!(WcMessage::decode(&req), Err(WcError::UnsupportedVersion(1)));
        assert_eq!(
            respond(&req, 1, 2, info(), false),
            Err(WcError::UnsupportedVersion(1))
        );
    }

    #[test]
    fn checklist_03_server_answers_only_type_0() {
        let mut req = WcMessage::request(1).encode();
        assert!(respond(&req, 1, 2, info(), false).is_ok());
        for t in 1..=255u8 {
            req[1] = t;
            assert!(respond(&req, 1, 2, info(), false).is_err(), "type {t}");
        }
        req[1] = 2;
        assert_eq!(
            respond(&req, 1, 2, info(), false),
            Err(WcError::UnexpectedType(MessageType::ResponseWithFollowUp))
        );
        req[1] = 4;
        assert_eq!(
            respond(&req, 1, 2, info(), false),
            Err(WcError::UnknownMessageType(4))
        );
    }

    #[test]
    fn respond_bytes_matches_spec_example() {
        let req = WcMessage::request(1000).encode();
        let info = ServerClockInfo::from_secs_ppm(32.0, 30.0);
        assert_eq!(respond_bytes(&req, 2000, 3000, info, false), Ok(EXAMPLE));
        assert_eq!(
            respond_bytes(&req[..4], 2000, 3000, info, false),
            Err(WcError::WrongLength(4))
        );
    }

    #[test]
    fn checklist_04_bad_datagrams_leave_no_state() {
        // `respond` is a pure function: a malformed datagram only yields an error, and the
        // next good request is answered as usual.
        assert!(respond(b"garbage", 1, 2, info(), false).is_err());
        let ok = respond(&WcMessage::request(9).encode(), 1, 2, info(), false).unwrap();
        assert_eq!(ok.originate.to_ns(), 9);
    }

    #[test]
    fn checklist_06_originate_echoed_bit_for_bit() {
        let mut req = [0u8; 32];
        req[8..12].copy_from_slice(&0xdead_beefu32.to_be_bytes());
        req[12..16].copy_from_slice(&0xffff_fffeu32.to_be_bytes()); // nanos >= 1e9
        req[3] = 0x77; // reserved: ignored
        req[2] = 0x11;
        req[4..8].copy_from_slice(&[1, 2, 3, 4]);
        let resp = respond(&req, 1, 2, info(), false).unwrap().encode();
        assert_eq!(resp[8..16], req[8..16]);
    }

    #[test]
    fn checklist_07_08_09_10_response_header_and_times() {
        let req = WcMessage::request(1000).encode();
        let r1 = respond(&req, 5_999_999_999, 6_000_000_001, info(), false)
            .unwrap()
            .encode();
        assert_eq!(&r1[0..4], &[0, 1, 0xf6, 0]); // version 0, type 1, precision -10, reserved 0
        let r2 = respond(&req, 2, 3, info(), true).unwrap().encode();
        assert_eq!(&r2[0..2], &[0, 2]);
        let m = WcMessage::decode(&r1).unwrap();
        assert_eq!((m.receive.secs, m.receive.nanos), (5, 999_999_999));
        assert_eq!((m.transmit.secs, m.transmit.nanos), (6, 1));
        assert!(m.receive.nanos < 1_000_000_000 && m.transmit.nanos < 1_000_000_000);
        // checklist 10: transmit never before receive, even if the caller's clock reads are
        // out of order
        let m = respond(&req, 10_000, 9_000, info(), false).unwrap();
        assert!(m.receive.to_ns() <= m.transmit.to_ns());
        assert_eq!(m.transmit.to_ns(), 10_000);
    }

    #[test]
    fn checklist_12_precision_encoding() {
        assert_eq!(encode_precision(0.001), -9);
        assert_eq!(encode_precision(0.0007), -10);
        assert_eq!(encode_precision(1e-5), -16);
        assert_eq!(encode_precision(2f64.powi(-128)), -128);
        assert_eq!(encode_precision(2f64.powi(127)), 127);
        assert_eq!(encode_precision(1e-6), -19); // pydvbcss SysClock at 1 MHz
        assert_eq!(encode_precision(1e-9), -29);
        assert_eq!(encode_precision(1.0), 0);
        assert_eq!(encode_precision(0.5), -1);
        assert_eq!(encode_precision(0.500_000_1), 0);
        assert_eq!(encode_precision(0.0), -128);
        assert_eq!(encode_precision(-1.0), -128);
        assert_eq!(encode_precision(f64::NAN), 127);
        assert_eq!(encode_precision(f64::INFINITY), 127);
        assert_eq!(decode_precision(-9), 0.001_953_125);
        assert_eq!(decode_precision(5), 32.0);
    }

    #[test]
    fn checklist_13_max_freq_error_encoding() {
        assert_eq!(encode_max_freq_error(50.0), 12800);
        assert_eq!(encode_max_freq_error(28.0), 7168);
        assert_eq!(encode_max_freq_error(0.01), 3);
        assert_eq!(encode_max_freq_error(1900.0), 486_400);
        assert_eq!(encode_max_freq_error(100_000.0), 25_600_000);
        assert_eq!(encode_max_freq_error(0.0), 0);
        assert_eq!(encode_max_freq_error(-3.0), 0);
        assert_eq!(encode_max_freq_error(1e300), u32::MAX);
        assert_eq!(encode_max_freq_error(f64::NAN), u32::MAX);
        assert_eq!(decode_max_freq_error(12800), 50.0);
    }

    #[test]
    fn checklist_14_encoded_precision_never_better_than_real() {
        let mut s = 1e-12;
        while s < 1e3 {
            let p = encode_precision(s);
            assert!(decode_precision(p) >= s, "{s}");
            assert!(decode_precision(p) / 2.0 < s, "{s}");
            s *= 1.37;
        }
    }

    #[test]
    fn checklist_17_18_19_follow_up() {
        let req = WcMessage::request(42).encode();
        let r = respond(&req, 100, 200, info(), true).unwrap();
        assert_eq!(r.message_type, MessageType::ResponseWithFollowUp);
        let f = follow_up(&r, 250);
        assert_eq!(f.message_type, MessageType::FollowUp);
        assert_eq!(f.originate, r.originate);
        assert_eq!(f.receive, r.receive);
        assert_eq!(f.transmit.to_ns(), 250);
        assert_eq!(f.encode()[0..4], [0, 3, 0xf6, 0]);
        // never earlier than the type-2 transmit value
        assert_eq!(follow_up(&r, 150).transmit.to_ns(), 200);
    }

    #[test]
    fn checklist_20_reply_matched_by_originate() {
        let (mut ex, req) = Exchange::start(1_000);
        let resp = |orig: u64, t: MessageType| {
            let mut m = WcMessage::decode(&req).unwrap();
            m.message_type = t;
            m.originate = Timevalue::from_ns(orig);
            m.encode()
        };
        assert_eq!(ex.on_datagram(&resp(999, MessageType::Response), 5), Ok(-7));
        assert!(!ex.is_done());
        assert_eq!(ex.best().unwrap().t1, 999);
        assert_eq!(
            ex.on_datagram(&resp(1_000, MessageType::Response), 6),
            Ok(3)
        );
        assert!(ex.is_done());
        assert_eq!(ex.best().unwrap().t1, 1_000);
    }

    #[test]
    fn checklist_21_reply_ranking() {
        let o = Timevalue::from_ns(77);
        let mk = |t| WcMessage {
            message_type: t,
            precision: 0,
            max_freq_error: 0,
            originate: o,
            receive: Timevalue::default(),
            transmit: Timevalue::default(),
        };
        assert_eq!(reply_rank(&mk(MessageType::Response), o), Some(3));
        assert_eq!(
            reply_rank(&mk(MessageType::ResponseWithFollowUp), o),
            Some(2)
        );
        assert_eq!(reply_rank(&mk(MessageType::FollowUp), o), Some(4));
        assert_eq!(reply_rank(&mk(MessageType::Request), o), None);
        assert_eq!(
            reply_rank(&mk(MessageType::FollowUp), Timevalue::from_ns(78)),
            Some(-6)
        );

        // type 2 alone is usable but does not end the wait; a type 3 then does and wins
        let (mut ex, _) = Exchange::start(77);
        ex.on_datagram(&mk(MessageType::ResponseWithFollowUp).encode(), 10)
            .unwrap();
        assert!(!ex.is_done());
        assert_eq!(ex.best().unwrap().t4, 10);
        ex.on_datagram(&mk(MessageType::FollowUp).encode(), 11)
            .unwrap();
        assert!(ex.is_done());
        assert_eq!(ex.best().unwrap().t4, 11);
        // a later, lower-ranked reply does not replace it
        ex.on_datagram(&mk(MessageType::Response).encode(), 12)
            .unwrap();
        assert_eq!(ex.best().unwrap().t4, 11);
    }

    #[test]
    fn checklist_22_client_discards_bad_replies_and_keeps_going() {
        let (mut ex, req) = Exchange::start(5);
        assert_eq!(
            ex.on_datagram(&req, 1),
            Err(WcError::UnexpectedType(MessageType::Request))
        );
        assert_eq!(ex.on_datagram(&req[..20], 1), Err(WcError::WrongLength(20)));
        let mut bad = req;
        bad[0] = 9;
        bad[1] = 1;
        assert_eq!(ex.on_datagram(&bad, 1), Err(WcError::UnsupportedVersion(9)));
        assert!(ex.best().is_none());
        let good = respond(&req, 10, 20, info(), false).unwrap().encode();
        assert_eq!(ex.on_datagram(&good, 30), Ok(3));
        assert!(ex.is_done());
    }

    fn sample() -> Candidate {
        // t1=1000, t2=6000, t3=7000, t4=4000: rtt = 3000 - 1000 = 2000, offset = 4000
        Candidate {
            t1: 1_000,
            t2: 6_000,
            t3: 7_000,
            t4: 4_000,
            precision: -10,
            max_freq_error: encode_max_freq_error(500.0),
        }
    }

    #[test]
    fn checklist_23_rtt_and_offset() {
        let c = sample();
        assert_eq!(c.rtt_ns(), 2_000);
        assert_eq!(c.offset_ns(), 4_000.0);
        let c = Candidate {
            t4: 4_001,
            ..sample()
        };
        assert_eq!(c.offset_ns(), 3_999.5);
        let corr = c.correlation(500.0);
        assert_eq!(corr.parent_ticks, 2_500);
        assert_eq!(corr.child_ticks, 6_500);
    }

    #[test]
    fn checklist_24_dispersion_after_exchange() {
        let c = sample();
        let mfe_c = 100.0;
        let want = 2f64.powi(-10) + (2000.0 / 2.0 + 100e-6 * 3000.0 + 500e-6 * 1000.0) / 1e9;
        assert!((c.initial_error(mfe_c) - want).abs() < 1e-15);
        let mut alg = LowestDispersionCandidate::new(1e-6, mfe_c);
        assert!(alg.offer(&c, 2_500));
        // at the correlation point: initial error + client precision
        assert!((alg.dispersion_at(2_500) - (want + 1e-6)).abs() < 1e-15);
        // the same through the message decoder
        let reply = WcMessage {
            message_type: MessageType::Response,
            precision: -10,
            max_freq_error: 128_000,
            originate: Timevalue::from_ns(1_000),
            receive: Timevalue::from_ns(6_000),
            transmit: Timevalue::from_ns(7_000),
        };
        assert_eq!(Candidate::from_reply(&reply, 4_000), c);
    }

    #[test]
    fn checklist_25_dispersion_growth_rate() {
        let c = sample();
        assert!((c.error_growth_rate(500.0) - 0.001).abs() < 1e-15);
        let mut alg = LowestDispersionCandidate::new(0.0, 500.0);
        alg.offer(&c, 2_500);
        let d0 = alg.dispersion_at(2_500);
        let d1 = alg.dispersion_at(2_500 + NANOS_PER_SEC);
        let d_before = alg.dispersion_at(0);
        assert!((d1 - d0 - 0.001).abs() < 1e-12); // 1 ms per second at 500 + 500 ppm
        assert!(d_before > d0);
    }

    #[test]
    fn fast_start_then_back_off() {
        let s = NANOS_PER_SEC;
        let mut alg = LowestDispersionCandidate::new(1e-6, 500.0);
        assert_eq!(
            alg.next_request_delay(true, 5 * s),
            DEFAULT_FAST_REPEAT_SECS
        );
        assert_eq!(
            alg.next_request_delay(false, 6 * s),
            DEFAULT_FAST_REPEAT_SECS
        );
        assert_eq!(
            alg.next_request_delay(true, 6 * s + s / 2),
            DEFAULT_FAST_REPEAT_SECS
        );
        // after the fast start: timeout after a failure, doubling delays after adoption
        assert_eq!(alg.next_request_delay(false, 7 * s), DEFAULT_TIMEOUT_SECS);
        let delays: Vec<f64> = (0..6)
            .map(|i| alg.next_request_delay(true, 8 * s + i))
            .collect();
        assert_eq!(delays, [0.1, 0.2, 0.4, 0.8, 1.0, 1.0]);
        // pydvbcss's schedule when the fast start is off
        let mut alg = LowestDispersionCandidate::new(1e-6, 500.0)
            .with_fast_start(0.0, 0.05)
            .with_timing(1.0, 0.2);
        assert_eq!(alg.next_request_delay(false, 0), 0.2);
        for _ in 0..5 {
            alg.next_request_delay(true, 0);
        }
        assert_eq!(alg.next_request_delay(true, 0), 1.0);
    }

    #[test]
    fn checklist_26_only_lower_dispersion_replaces() {
        let mut alg = LowestDispersionCandidate::new(1e-6, 500.0).with_fast_start(0.0, 0.05);
        assert_eq!(alg.dispersion_at(0), f64::INFINITY);
        assert!(alg.wall_clock().is_none());
        assert_eq!(alg.next_request_delay(false, 0), DEFAULT_TIMEOUT_SECS);
        let first = sample();
        assert!(alg.offer(&first, 10_000));
        assert_eq!(alg.next_request_delay(true, 10_000), 0.1);
        assert_eq!(alg.next_request_delay(true, 20_000), 0.2);
        assert_eq!(alg.wall_clock_at(2_500), Some(6_500));
        // a worse candidate (rtt 1 ms) at nearly the same time is rejected
        let worse = Candidate {
            t1: 10_000,
            t2: 20_000,
            t3: 21_000,
            t4: 1_011_000,
            ..first
        };
        assert!(!alg.offer(&worse, 1_011_000));
        assert_eq!(alg.wall_clock_at(2_500), Some(6_500));
        // the same worse candidate much later wins, since the old one's error has grown
        let later = 100 * NANOS_PER_SEC;
        let worse_later = Candidate {
            t1: later - 1_001_000,
            t4: later,
            ..worse
        };
        assert!(alg.offer(&worse_later, later));
        assert_eq!(
            alg.wall_clock().unwrap().correlation(),
            worse_later.correlation(500.0)
        );
    }

    #[test]
    fn checklist_27_loopback_like_exchange_reaches_under_2ms() {
        // Simulated loopback: server wall clock = client clock + 5 s, 30 µs rtt, server
        // reports 500 ppm and precision 2^-20 s.
        let server_info = ServerClockInfo::from_secs_ppm(1e-6, 500.0);
        let mut alg = LowestDispersionCandidate::new(1e-6, 500.0);
        let offset = 5 * NANOS_PER_SEC;
        let t1 = 1_000_000;
        let (mut ex, req) = Exchange::start(t1);
        let resp = respond(
            &req,
            t1 + 15_000 + offset,
            t1 + 16_000 + offset,
            server_info,
            false,
        )
        .unwrap()
        .encode();
        let t4 = t1 + 31_000;
        ex.on_datagram(&resp, t4).unwrap();
        assert!(alg.offer(&ex.best().unwrap(), t4));
        assert!(alg.dispersion_at(t4) < 0.002);
        assert!(alg.dispersion_at(t4 + NANOS_PER_SEC) < 0.002);
        let est = alg.wall_clock_at(t4).unwrap();
        assert!((est - (t4 + offset) as i64).abs() <= 15_000);
    }

    #[test]
    fn bogus_times_do_not_panic_or_look_perfect() {
        let c = Candidate {
            t1: u64::MAX,
            t2: u64::MAX,
            t3: 0,
            t4: 0,
            precision: -128,
            max_freq_error: 0,
        };
        let _ = c.rtt_ns();
        let _ = c.offset_ns();
        let e = c.initial_error(500.0);
        assert!(e >= 0.0);
        let mut alg = LowestDispersionCandidate::new(0.0, 500.0);
        let _ = alg.offer(&c, u64::MAX);
        let _ = alg.dispersion_at(0);
    }

    #[test]
    fn errors_display() {
        assert!(WcError::WrongLength(3).to_string().contains('3'));
        assert!(WcError::UnknownMessageType(9).to_string().contains('9'));
    }
}
