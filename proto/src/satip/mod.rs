//! SAT>IP query parsing, validation and normalisation (spec digest `satip.md` §2, §4.3, §4.4,
//! §6.1, §7.2, §10.2), plus the tuner status string, the RTCP APP `SES1` packet and the extended
//! M3U channel list.
//!
//! Pure code: std only, never `gst`/`glib`, never panics on any input.
//!
//! Flow for a request URI:
//!
//! 1. [`parse_target`] splits `rtsp://host/stream=3?query` into the stream id and a [`Query`].
//!    Syntax errors (bad path, missing `=`, duplicated attribute) are 400 `Check-Syntax:`.
//! 2. [`parse_query`] turns the query into typed values. Values are case-insensitive, names are
//!    case-sensitive, unknown attributes and empty pairs are ignored. Values that are not
//!    understood are collected and reported together as 403 `Out-of-Range: a b`.
//! 3. [`StreamSpec::create`] (SETUP creating a stream) or [`StreamSpec::apply`] (PLAY or
//!    in-session SETUP on an existing stream) merges the query, applies the defaults of §2.7,
//!    checks the values against the delivery system and yields a resolved [`Tuning`] plus a
//!    [`PidSet`], and for `apply` whether this is a retune or a PID change only.
//! 4. [`Tuning::check_capabilities`] checks the request against what the server has (403 `msys`,
//!    403 `fe`).
//!
//! Units used by [`Tuning`] follow GStreamer's `dvbsrc`: `frequency` is kHz for satellite and Hz
//! for terrestrial and cable, `symbol_rate` is kSym/s (dvbsrc `symbol-rate` is in kBd),
//! `bandwidth_hz` is Hz (dvbsrc `bandwidth-hz`).

use std::collections::BTreeSet;
use std::fmt;

/// Longest query (bytes, after `?`) we accept; longer ones get 414.
pub const MAX_QUERY_LEN: usize = 8192;
/// Highest valid PID.
pub const MAX_PID: u16 = 8191;
/// Default per-stream PID filter limit ([MS] uses 128 per tuner); beyond it: 503 `No-More: pids`.
pub const DEFAULT_MAX_PIDS: usize = 128;
/// Content type of 400/403/503 bodies.
pub const ERROR_CONTENT_TYPE: &str = "text/parameters";

// ---------------------------------------------------------------------------------------------
// Attributes and errors
// ---------------------------------------------------------------------------------------------

/// A query attribute this server knows. The declaration order is the canonical query order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Attr {
    Src,
    Fe,
    Freq,
    Pol,
    Ro,
    Msys,
    Mtype,
    Plts,
    Sr,
    Fec,
    Bw,
    Tmode,
    Gi,
    Plp,
    T2id,
    Sm,
    C2tft,
    Ds,
    Specinv,
    /// DVB-S2 input stream id (extension, §2.6).
    Isi,
    /// DVB-S2 PLS mode (extension).
    Plsm,
    /// DVB-S2 PLS code (extension).
    Plsc,
    Pids,
    Addpids,
    Delpids,
}

impl Attr {
    const ALL: [Attr; 25] = [
        Attr::Src,
        Attr::Fe,
        Attr::Freq,
        Attr::Pol,
        Attr::Ro,
        Attr::Msys,
        Attr::Mtype,
        Attr::Plts,
        Attr::Sr,
        Attr::Fec,
        Attr::Bw,
        Attr::Tmode,
        Attr::Gi,
        Attr::Plp,
        Attr::T2id,
        Attr::Sm,
        Attr::C2tft,
        Attr::Ds,
        Attr::Specinv,
        Attr::Isi,
        Attr::Plsm,
        Attr::Plsc,
        Attr::Pids,
        Attr::Addpids,
        Attr::Delpids,
    ];

    /// The attribute name as written in queries and error bodies.
    pub fn name(self) -> &'static str {
        match self {
            Attr::Src => "src",
            Attr::Fe => "fe",
            Attr::Freq => "freq",
            Attr::Pol => "pol",
            Attr::Ro => "ro",
            Attr::Msys => "msys",
            Attr::Mtype => "mtype",
            Attr::Plts => "plts",
            Attr::Sr => "sr",
            Attr::Fec => "fec",
            Attr::Bw => "bw",
            Attr::Tmode => "tmode",
            Attr::Gi => "gi",
            Attr::Plp => "plp",
            Attr::T2id => "t2id",
            Attr::Sm => "sm",
            Attr::C2tft => "c2tft",
            Attr::Ds => "ds",
            Attr::Specinv => "specinv",
            Attr::Isi => "isi",
            Attr::Plsm => "plsm",
            Attr::Plsc => "plsc",
            Attr::Pids => "pids",
            Attr::Addpids => "addpids",
            Attr::Delpids => "delpids",
        }
    }

    /// Look up an attribute by its (case-sensitive) name; `None` for unknown attributes, which
    /// callers ignore (§2.1). `x_pmt` and `tvhweight` (§2.6) are accepted that way too.
    pub fn from_name(name: &str) -> Option<Attr> {
        Attr::ALL.iter().copied().find(|a| a.name() == name)
    }
}

impl fmt::Display for Attr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Why a value was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// Required for this delivery system and not given (and no earlier value to keep).
    Missing,
    /// Not a value of the expected shape (not a number, unknown keyword, bad PID list).
    Malformed,
    /// A well-formed value outside the allowed range.
    OutOfRange,
    /// Well-formed, but not allowed for this delivery system (e.g. `mtype=8psk` with `dvbt`).
    NotAllowed,
    /// Valid per the spec but this server has no frontend for it (e.g. `msys` without tuner).
    Unsupported,
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Reason::Missing => "missing",
            Reason::Malformed => "malformed value",
            Reason::OutOfRange => "value out of range",
            Reason::NotAllowed => "value not allowed for this delivery system",
            Reason::Unsupported => "not supported by this server",
        })
    }
}

/// One refused attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Violation {
    pub attr: Attr,
    pub reason: Reason,
}

/// Why a request is syntactically wrong (400).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyntaxReason {
    /// A query token without `=`.
    MissingEquals,
    /// The same known attribute twice in one query.
    DuplicateAttribute,
    /// A `%` escape that is not two hex digits or decodes to invalid UTF-8.
    BadEscape,
    /// A path other than `/` or `/stream=<id>`.
    BadPath,
    /// `stream=` with something that is not a 16-bit decimal.
    BadStreamId,
    /// `addpids`/`delpids` in a query that creates a stream: they only modify a running one.
    AddDelOnNewStream,
}

/// A resource that ran out (503 `No-More:`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Resource {
    Sessions,
    Frontends,
    Pids,
}

impl Resource {
    pub fn name(self) -> &'static str {
        match self {
            Resource::Sessions => "sessions",
            Resource::Frontends => "frontends",
            Resource::Pids => "pids",
        }
    }
}

/// A refused SAT>IP request, with its RTSP/HTTP status and `text/parameters` body (§2.9).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QueryError {
    /// 400 Bad Request, body `Check-Syntax: <text>`.
    Syntax { reason: SyntaxReason, text: String },
    /// 403 Forbidden, body `Out-of-Range: <attr> <attr> ...` (sorted, deduplicated).
    OutOfRange(Vec<Violation>),
    /// 414 Request-URI Too Long, no body.
    UriTooLong { len: usize, max: usize },
    /// 503 Service Unavailable, body `No-More: <res> ...`.
    NoMore(Vec<Resource>),
}

impl QueryError {
    fn syntax(reason: SyntaxReason, text: &str) -> QueryError {
        QueryError::Syntax {
            reason,
            text: sanitize_token(text),
        }
    }

    fn out_of_range(mut v: Vec<Violation>) -> QueryError {
        v.sort_by_key(|x| x.attr);
        v.dedup_by_key(|x| x.attr);
        QueryError::OutOfRange(v)
    }

    /// Shorthand for a single 403 violation.
    pub fn violation(attr: Attr, reason: Reason) -> QueryError {
        QueryError::OutOfRange(vec![Violation { attr, reason }])
    }

    /// The RTSP (and HTTP) status code.
    pub fn status(&self) -> u16 {
        match self {
            QueryError::Syntax { .. } => 400,
            QueryError::OutOfRange(_) => 403,
            QueryError::UriTooLong { .. } => 414,
            QueryError::NoMore(_) => 503,
        }
    }

    /// The reason phrase for the status line.
    pub fn reason_phrase(&self) -> &'static str {
        match self {
            QueryError::Syntax { .. } => "Bad Request",
            QueryError::OutOfRange(_) => "Forbidden",
            QueryError::UriTooLong { .. } => "Request-URI Too Long",
            QueryError::NoMore(_) => "Service Unavailable",
        }
    }

    /// The `text/parameters` body, without trailing CRLF; `None` for 414.
    pub fn body(&self) -> Option<String> {
        match self {
            QueryError::Syntax { text, .. } => Some(format!("Check-Syntax: {text}")),
            QueryError::OutOfRange(v) => {
                let names: Vec<&str> = v.iter().map(|x| x.attr.name()).collect();
                Some(format!("Out-of-Range: {}", names.join(" ")))
            }
            QueryError::UriTooLong { .. } => None,
            QueryError::NoMore(r) => {
                let names: Vec<&str> = r.iter().map(|x| x.name()).collect();
                Some(format!("No-More: {}", names.join(" ")))
            }
        }
    }

    /// A complete RTSP/1.0 error response (status line, CSeq if any, Content-Type and
    /// Content-Length when there is a body, empty line, body).
    pub fn to_rtsp_response(&self, cseq: Option<u32>) -> String {
        let mut s = format!("RTSP/1.0 {} {}\r\n", self.status(), self.reason_phrase());
        if let Some(c) = cseq {
            s.push_str(&format!("CSeq: {c}\r\n"));
        }
        match self.body() {
            Some(body) => {
                s.push_str(&format!(
                    "Content-Type: {ERROR_CONTENT_TYPE}\r\nContent-Length: {}\r\n\r\n{body}",
                    body.len()
                ));
            }
            None => s.push_str("\r\n"),
        }
        s
    }
}

impl fmt::Display for QueryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            QueryError::Syntax { reason, text } => write!(f, "syntax error ({reason:?}): {text}"),
            QueryError::OutOfRange(v) => {
                f.write_str("out of range:")?;
                for x in v {
                    write!(f, " {} ({})", x.attr, x.reason)?;
                }
                Ok(())
            }
            QueryError::UriTooLong { len, max } => write!(f, "URI too long ({len} > {max})"),
            QueryError::NoMore(r) => {
                f.write_str("no more:")?;
                for x in r {
                    write!(f, " {}", x.name())?;
                }
                Ok(())
            }
        }
    }
}

impl std::error::Error for QueryError {}

/// Make request text safe to echo in a body: printable ASCII only, at most 64 bytes.
fn sanitize_token(s: &str) -> String {
    s.chars()
        .take(64)
        .map(|c| {
            if c.is_ascii_graphic() || c == ' ' {
                c
            } else {
                '?'
            }
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Value enums
// ---------------------------------------------------------------------------------------------

/// Broad signal family: decides the status-string layout (§4.3) and the frequency unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Family {
    Satellite,
    Terrestrial,
    Cable,
}

/// Delivery system (`msys`). The first six are SAT>IP 1.2.2; the rest are §2.6 extensions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DeliverySystem {
    DvbS,
    DvbS2,
    DvbT,
    DvbT2,
    DvbC,
    DvbC2,
    /// ATSC 8VSB (`atsc`).
    Atsc,
    /// ITU J.83 annex B cable (`dvbcb`).
    DvbCAnnexB,
    /// ITU J.83 annex C cable (`dvbcc`).
    DvbCAnnexC,
    IsdbT,
    IsdbS,
    IsdbC,
    DvbH,
    Dss,
    /// DTMB (`dmbth`).
    DmbTh,
}

impl DeliverySystem {
    const ALL: [DeliverySystem; 15] = [
        DeliverySystem::DvbS,
        DeliverySystem::DvbS2,
        DeliverySystem::DvbT,
        DeliverySystem::DvbT2,
        DeliverySystem::DvbC,
        DeliverySystem::DvbC2,
        DeliverySystem::Atsc,
        DeliverySystem::DvbCAnnexB,
        DeliverySystem::DvbCAnnexC,
        DeliverySystem::IsdbT,
        DeliverySystem::IsdbS,
        DeliverySystem::IsdbC,
        DeliverySystem::DvbH,
        DeliverySystem::Dss,
        DeliverySystem::DmbTh,
    ];

    /// The `msys` value.
    pub fn query_name(self) -> &'static str {
        match self {
            DeliverySystem::DvbS => "dvbs",
            DeliverySystem::DvbS2 => "dvbs2",
            DeliverySystem::DvbT => "dvbt",
            DeliverySystem::DvbT2 => "dvbt2",
            DeliverySystem::DvbC => "dvbc",
            DeliverySystem::DvbC2 => "dvbc2",
            DeliverySystem::Atsc => "atsc",
            DeliverySystem::DvbCAnnexB => "dvbcb",
            DeliverySystem::DvbCAnnexC => "dvbcc",
            DeliverySystem::IsdbT => "isdbt",
            DeliverySystem::IsdbS => "isdbs",
            DeliverySystem::IsdbC => "isdbc",
            DeliverySystem::DvbH => "dvbh",
            DeliverySystem::Dss => "dss",
            DeliverySystem::DmbTh => "dmbth",
        }
    }

    /// Parse an `msys` value (already lower case).
    pub fn from_query_name(s: &str) -> Option<DeliverySystem> {
        DeliverySystem::ALL
            .iter()
            .copied()
            .find(|d| d.query_name() == s)
    }

    pub fn family(self) -> Family {
        match self {
            DeliverySystem::DvbS
            | DeliverySystem::DvbS2
            | DeliverySystem::IsdbS
            | DeliverySystem::Dss => Family::Satellite,
            DeliverySystem::DvbT
            | DeliverySystem::DvbT2
            | DeliverySystem::Atsc
            | DeliverySystem::IsdbT
            | DeliverySystem::DvbH
            | DeliverySystem::DmbTh => Family::Terrestrial,
            DeliverySystem::DvbC
            | DeliverySystem::DvbC2
            | DeliverySystem::DvbCAnnexB
            | DeliverySystem::DvbCAnnexC
            | DeliverySystem::IsdbC => Family::Cable,
        }
    }

    /// Nick of dvbsrc's `delsys` enum; `None` when dvbsrc (Linux DVB) has no such system (C2).
    pub fn dvbsrc_nick(self) -> Option<&'static str> {
        Some(match self {
            DeliverySystem::DvbS => "dvb-s",
            DeliverySystem::DvbS2 => "dvb-s2",
            DeliverySystem::DvbT => "dvb-t",
            DeliverySystem::DvbT2 => "dvb-t2",
            DeliverySystem::DvbC => "dvb-c-a",
            DeliverySystem::DvbC2 => return None,
            DeliverySystem::Atsc => "atsc",
            DeliverySystem::DvbCAnnexB => "dvb-c-b",
            DeliverySystem::DvbCAnnexC => "dvb-c-c",
            DeliverySystem::IsdbT => "isdb-t",
            DeliverySystem::IsdbS => "isdb-s",
            DeliverySystem::IsdbC => "isdb-c",
            DeliverySystem::DvbH => "dvb-h",
            DeliverySystem::Dss => "dss",
            DeliverySystem::DmbTh => "dtmb",
        })
    }
}

impl fmt::Display for DeliverySystem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.query_name())
    }
}

/// Satellite polarisation (`pol`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Polarisation {
    Horizontal,
    Vertical,
    CircularLeft,
    CircularRight,
}

impl Polarisation {
    pub fn query_name(self) -> &'static str {
        match self {
            Polarisation::Horizontal => "h",
            Polarisation::Vertical => "v",
            Polarisation::CircularLeft => "l",
            Polarisation::CircularRight => "r",
        }
    }

    fn from_query_name(s: &str) -> Option<Polarisation> {
        match s {
            "h" => Some(Polarisation::Horizontal),
            "v" => Some(Polarisation::Vertical),
            "l" => Some(Polarisation::CircularLeft),
            "r" => Some(Polarisation::CircularRight),
            _ => None,
        }
    }

    /// LNB supply voltage: 18 V for horizontal and circular left, 13 V otherwise.
    pub fn is_18v(self) -> bool {
        matches!(self, Polarisation::Horizontal | Polarisation::CircularLeft)
    }

    /// Value for dvbsrc's `polarity` string, which only knows H (18 V) and V (13 V); circular
    /// polarisations map by voltage (L → H, R → V).
    pub fn dvbsrc_polarity(self) -> &'static str {
        if self.is_18v() {
            "H"
        } else {
            "V"
        }
    }
}

/// DVB-S2 roll-off (`ro`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RollOff {
    R035,
    R025,
    R020,
    /// DVB-S2X.
    R015,
    /// DVB-S2X.
    R010,
    /// DVB-S2X.
    R005,
}

impl RollOff {
    /// `0.35` style, as the query and the status string use it.
    pub fn query_name(self) -> &'static str {
        match self {
            RollOff::R035 => "0.35",
            RollOff::R025 => "0.25",
            RollOff::R020 => "0.20",
            RollOff::R015 => "0.15",
            RollOff::R010 => "0.10",
            RollOff::R005 => "0.05",
        }
    }

    /// Accepts `0.35`, `0.2`, and the `35` style [TVH] prints.
    fn from_query_name(s: &str) -> Option<RollOff> {
        match s {
            "0.35" | "35" => Some(RollOff::R035),
            "0.25" | "25" => Some(RollOff::R025),
            "0.20" | "0.2" | "20" => Some(RollOff::R020),
            "0.15" | "15" => Some(RollOff::R015),
            "0.10" | "0.1" | "10" => Some(RollOff::R010),
            "0.05" | "05" => Some(RollOff::R005),
            _ => None,
        }
    }

    /// Nick of dvbsrc's `rolloff` enum; `None` for the DVB-S2X values (use `auto`).
    pub fn dvbsrc_nick(self) -> Option<&'static str> {
        match self {
            RollOff::R035 => Some("35"),
            RollOff::R025 => Some("25"),
            RollOff::R020 => Some("20"),
            _ => None,
        }
    }
}

/// Modulation (`mtype`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Modulation {
    Qpsk,
    Psk8,
    Apsk16,
    Apsk32,
    Apsk64,
    Apsk128,
    Apsk256,
    Qam16,
    Qam32,
    Qam64,
    Qam128,
    Qam256,
    Vsb8,
    Vsb16,
    Dqpsk,
}

impl Modulation {
    const ALL: [Modulation; 15] = [
        Modulation::Qpsk,
        Modulation::Psk8,
        Modulation::Apsk16,
        Modulation::Apsk32,
        Modulation::Apsk64,
        Modulation::Apsk128,
        Modulation::Apsk256,
        Modulation::Qam16,
        Modulation::Qam32,
        Modulation::Qam64,
        Modulation::Qam128,
        Modulation::Qam256,
        Modulation::Vsb8,
        Modulation::Vsb16,
        Modulation::Dqpsk,
    ];

    pub fn query_name(self) -> &'static str {
        match self {
            Modulation::Qpsk => "qpsk",
            Modulation::Psk8 => "8psk",
            Modulation::Apsk16 => "16apsk",
            Modulation::Apsk32 => "32apsk",
            Modulation::Apsk64 => "64apsk",
            Modulation::Apsk128 => "128apsk",
            Modulation::Apsk256 => "256apsk",
            Modulation::Qam16 => "16qam",
            Modulation::Qam32 => "32qam",
            Modulation::Qam64 => "64qam",
            Modulation::Qam128 => "128qam",
            Modulation::Qam256 => "256qam",
            Modulation::Vsb8 => "8vsb",
            Modulation::Vsb16 => "16vsb",
            Modulation::Dqpsk => "dqpsk",
        }
    }

    /// Accepts the spec spelling (`64qam`) and [TVH]'s `qam64`.
    fn from_query_name(s: &str) -> Option<Modulation> {
        if let Some(m) = Modulation::ALL
            .iter()
            .copied()
            .find(|m| m.query_name() == s)
        {
            return Some(m);
        }
        match s {
            "qam16" => Some(Modulation::Qam16),
            "qam32" => Some(Modulation::Qam32),
            "qam64" => Some(Modulation::Qam64),
            "qam128" => Some(Modulation::Qam128),
            "qam256" => Some(Modulation::Qam256),
            _ => None,
        }
    }

    /// Nick of dvbsrc's `modulation` enum; `None` when dvbsrc lacks it (64..256 APSK).
    pub fn dvbsrc_nick(self) -> Option<&'static str> {
        Some(match self {
            Modulation::Qpsk => "qpsk",
            Modulation::Psk8 => "8psk",
            Modulation::Apsk16 => "16apsk",
            Modulation::Apsk32 => "32apsk",
            Modulation::Qam16 => "qam-16",
            Modulation::Qam32 => "qam-32",
            Modulation::Qam64 => "qam-64",
            Modulation::Qam128 => "qam-128",
            Modulation::Qam256 => "qam-256",
            Modulation::Vsb8 => "8vsb",
            Modulation::Vsb16 => "16vsb",
            Modulation::Dqpsk => "dqpsk",
            Modulation::Apsk64 | Modulation::Apsk128 | Modulation::Apsk256 => return None,
        })
    }

    fn allowed_for(self, msys: DeliverySystem) -> bool {
        use Modulation::*;
        match msys {
            DeliverySystem::DvbS | DeliverySystem::Dss => self == Qpsk,
            DeliverySystem::DvbS2 | DeliverySystem::IsdbS => {
                matches!(
                    self,
                    Qpsk | Psk8 | Apsk16 | Apsk32 | Apsk64 | Apsk128 | Apsk256
                )
            }
            DeliverySystem::DvbT | DeliverySystem::DvbH => matches!(self, Qpsk | Qam16 | Qam64),
            DeliverySystem::DvbT2 => matches!(self, Qpsk | Qam16 | Qam64 | Qam256),
            DeliverySystem::Atsc => matches!(self, Vsb8 | Vsb16),
            DeliverySystem::IsdbT => matches!(self, Qpsk | Dqpsk | Qam16 | Qam64),
            DeliverySystem::DmbTh => matches!(self, Qpsk | Qam16 | Qam32 | Qam64),
            DeliverySystem::DvbCAnnexB => matches!(self, Qam64 | Qam256),
            DeliverySystem::DvbC
            | DeliverySystem::DvbC2
            | DeliverySystem::DvbCAnnexC
            | DeliverySystem::IsdbC => matches!(self, Qam16 | Qam32 | Qam64 | Qam128 | Qam256),
        }
    }
}

/// DVB-S2 pilots (`plts`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Pilots {
    On,
    Off,
}

impl Pilots {
    pub fn query_name(self) -> &'static str {
        match self {
            Pilots::On => "on",
            Pilots::Off => "off",
        }
    }

    /// Nick of dvbsrc's `pilot` enum.
    pub fn dvbsrc_nick(self) -> &'static str {
        self.query_name()
    }
}

/// Inner code rate (`fec`), written without the slash in queries (`34` = 3/4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum CodeRate {
    R1_2,
    R2_3,
    R3_4,
    R5_6,
    R7_8,
    R8_9,
    R3_5,
    R4_5,
    R9_10,
    R6_7,
    R1_3,
    R1_4,
    R2_5,
    R1_5,
    R2_9,
    R4_15,
    R5_9,
    R7_9,
    R7_15,
    R8_15,
    R9_20,
}

impl CodeRate {
    const ALL: [CodeRate; 21] = [
        CodeRate::R1_2,
        CodeRate::R2_3,
        CodeRate::R3_4,
        CodeRate::R5_6,
        CodeRate::R7_8,
        CodeRate::R8_9,
        CodeRate::R3_5,
        CodeRate::R4_5,
        CodeRate::R9_10,
        CodeRate::R6_7,
        CodeRate::R1_3,
        CodeRate::R1_4,
        CodeRate::R2_5,
        CodeRate::R1_5,
        CodeRate::R2_9,
        CodeRate::R4_15,
        CodeRate::R5_9,
        CodeRate::R7_9,
        CodeRate::R7_15,
        CodeRate::R8_15,
        CodeRate::R9_20,
    ];

    /// Numerator and denominator.
    pub fn fraction(self) -> (u8, u8) {
        match self {
            CodeRate::R1_2 => (1, 2),
            CodeRate::R2_3 => (2, 3),
            CodeRate::R3_4 => (3, 4),
            CodeRate::R5_6 => (5, 6),
            CodeRate::R7_8 => (7, 8),
            CodeRate::R8_9 => (8, 9),
            CodeRate::R3_5 => (3, 5),
            CodeRate::R4_5 => (4, 5),
            CodeRate::R9_10 => (9, 10),
            CodeRate::R6_7 => (6, 7),
            CodeRate::R1_3 => (1, 3),
            CodeRate::R1_4 => (1, 4),
            CodeRate::R2_5 => (2, 5),
            CodeRate::R1_5 => (1, 5),
            CodeRate::R2_9 => (2, 9),
            CodeRate::R4_15 => (4, 15),
            CodeRate::R5_9 => (5, 9),
            CodeRate::R7_9 => (7, 9),
            CodeRate::R7_15 => (7, 15),
            CodeRate::R8_15 => (8, 15),
            CodeRate::R9_20 => (9, 20),
        }
    }

    /// Query form: `34`, `910`.
    pub fn query_name(self) -> String {
        let (n, d) = self.fraction();
        format!("{n}{d}")
    }

    fn from_query_name(s: &str) -> Option<CodeRate> {
        CodeRate::ALL.iter().copied().find(|c| c.query_name() == s)
    }

    /// Nick of dvbsrc's `code-rate-hp` enum (`3/4`); `None` when dvbsrc lacks it.
    pub fn dvbsrc_nick(self) -> Option<&'static str> {
        Some(match self {
            CodeRate::R1_2 => "1/2",
            CodeRate::R2_3 => "2/3",
            CodeRate::R3_4 => "3/4",
            CodeRate::R4_5 => "4/5",
            CodeRate::R5_6 => "5/6",
            CodeRate::R6_7 => "6/7",
            CodeRate::R7_8 => "7/8",
            CodeRate::R8_9 => "8/9",
            CodeRate::R3_5 => "3/5",
            CodeRate::R9_10 => "9/10",
            CodeRate::R2_5 => "2/5",
            _ => return None,
        })
    }

    fn allowed_for(self, family: Family) -> bool {
        use CodeRate::*;
        match family {
            // 1.2.2 list plus the DVB-S2X rates [MS][TVH] accept.
            Family::Satellite => true,
            Family::Terrestrial => matches!(self, R1_2 | R3_5 | R2_3 | R3_4 | R4_5 | R5_6 | R7_8),
            // No `fec` for cable in SAT>IP; the attribute is ignored there.
            Family::Cable => true,
        }
    }
}

/// Terrestrial transmission mode (`tmode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TransmissionMode {
    K1,
    K2,
    K4,
    K8,
    K16,
    K32,
    /// DTMB single carrier.
    C1,
    /// DTMB multi carrier.
    C3780,
}

impl TransmissionMode {
    const ALL: [TransmissionMode; 8] = [
        TransmissionMode::K1,
        TransmissionMode::K2,
        TransmissionMode::K4,
        TransmissionMode::K8,
        TransmissionMode::K16,
        TransmissionMode::K32,
        TransmissionMode::C1,
        TransmissionMode::C3780,
    ];

    pub fn query_name(self) -> &'static str {
        match self {
            TransmissionMode::K1 => "1k",
            TransmissionMode::K2 => "2k",
            TransmissionMode::K4 => "4k",
            TransmissionMode::K8 => "8k",
            TransmissionMode::K16 => "16k",
            TransmissionMode::K32 => "32k",
            TransmissionMode::C1 => "c1",
            TransmissionMode::C3780 => "c3780",
        }
    }

    fn from_query_name(s: &str) -> Option<TransmissionMode> {
        TransmissionMode::ALL
            .iter()
            .copied()
            .find(|t| t.query_name() == s)
    }

    /// Nick of dvbsrc's `trans-mode` enum (same spelling as the query).
    pub fn dvbsrc_nick(self) -> &'static str {
        self.query_name()
    }
}

/// Terrestrial guard interval (`gi`), written without the slash (`132` = 1/32).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GuardInterval {
    G1_4,
    G1_8,
    G1_16,
    G1_32,
    G1_128,
    G19_128,
    G19_256,
    Pn420,
    Pn595,
    Pn945,
}

impl GuardInterval {
    const ALL: [GuardInterval; 10] = [
        GuardInterval::G1_4,
        GuardInterval::G1_8,
        GuardInterval::G1_16,
        GuardInterval::G1_32,
        GuardInterval::G1_128,
        GuardInterval::G19_128,
        GuardInterval::G19_256,
        GuardInterval::Pn420,
        GuardInterval::Pn595,
        GuardInterval::Pn945,
    ];

    pub fn query_name(self) -> &'static str {
        match self {
            GuardInterval::G1_4 => "14",
            GuardInterval::G1_8 => "18",
            GuardInterval::G1_16 => "116",
            GuardInterval::G1_32 => "132",
            GuardInterval::G1_128 => "1128",
            GuardInterval::G19_128 => "19128",
            GuardInterval::G19_256 => "19256",
            GuardInterval::Pn420 => "pn420",
            GuardInterval::Pn595 => "pn595",
            GuardInterval::Pn945 => "pn945",
        }
    }

    fn from_query_name(s: &str) -> Option<GuardInterval> {
        GuardInterval::ALL
            .iter()
            .copied()
            .find(|g| g.query_name() == s)
    }

    /// Nick of dvbsrc's `guard` enum.
    pub fn dvbsrc_nick(self) -> &'static str {
        match self {
            GuardInterval::G1_4 => "4",
            GuardInterval::G1_8 => "8",
            GuardInterval::G1_16 => "16",
            GuardInterval::G1_32 => "32",
            GuardInterval::G1_128 => "128",
            GuardInterval::G19_128 => "19/128",
            GuardInterval::G19_256 => "19/256",
            GuardInterval::Pn420 => "pn420",
            GuardInterval::Pn595 => "pn595",
            GuardInterval::Pn945 => "pn945",
        }
    }
}

/// DVB-T2 SISO/MISO (`sm`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SisoMiso {
    Siso,
    Miso,
}

impl SisoMiso {
    pub fn query_name(self) -> &'static str {
        match self {
            SisoMiso::Siso => "0",
            SisoMiso::Miso => "1",
        }
    }
}

/// DVB-S2 physical layer scrambling mode (`plsm`, extension).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PlsMode {
    Root,
    Gold,
    Combo,
}

impl PlsMode {
    pub fn query_name(self) -> &'static str {
        match self {
            PlsMode::Root => "root",
            PlsMode::Gold => "gold",
            PlsMode::Combo => "combo",
        }
    }
}

/// A value that may explicitly be `auto` in a query.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Choice<T> {
    Auto,
    Fixed(T),
}

impl<T: Copy> Choice<T> {
    /// `None` for auto.
    pub fn fixed(self) -> Option<T> {
        match self {
            Choice::Auto => None,
            Choice::Fixed(v) => Some(v),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Number helpers
// ---------------------------------------------------------------------------------------------

/// Parse an unsigned decimal (`123`) with at most 10 digits.
fn parse_uint(s: &str) -> Option<u64> {
    if s.is_empty() || s.len() > 10 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// Parse a fixed-point decimal (`11361.75`, `191.5`, `.5`) scaled by 10^3, truncating extra
/// fraction digits. No sign, no exponent, at most 12 integer digits.
fn parse_milli(s: &str) -> Option<u64> {
    let (int, frac) = s.split_once('.').unwrap_or((s, ""));
    if (int.is_empty() && frac.is_empty())
        || int.len() > 12
        || !int.bytes().all(|b| b.is_ascii_digit())
        || !frac.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let mut v: u64 = 0;
    for b in int.bytes() {
        v = v.checked_mul(10)?.checked_add(u64::from(b - b'0'))?;
    }
    let fb = frac.as_bytes();
    for i in 0..3 {
        let d = fb.get(i).map_or(0, |b| b - b'0');
        v = v.checked_mul(10)?.checked_add(u64::from(d))?;
    }
    Some(v)
}

/// `11494000` kHz-style thousandths → `11494`, `11361.75`, `1.712` (shortest exact form).
fn fmt_milli_min(v: u32) -> String {
    let int = v / 1000;
    let frac = v % 1000;
    if frac == 0 {
        return int.to_string();
    }
    let mut f = format!("{frac:03}");
    while f.ends_with('0') {
        f.pop();
    }
    format!("{int}.{f}")
}

/// Thousandths → two decimals, rounded (`11494000` → `11494.00`).
fn fmt_milli_2dp(v: u32) -> String {
    let hundredths = (u64::from(v) + 5) / 10;
    format!("{}.{:02}", hundredths / 100, hundredths % 100)
}

fn percent_decode(s: &str) -> Option<String> {
    if !s.contains('%') {
        return Some(s.to_owned());
    }
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let h = b.get(i + 1).and_then(|c| (*c as char).to_digit(16))?;
            let l = b.get(i + 2).and_then(|c| (*c as char).to_digit(16))?;
            out.push((h * 16 + l) as u8);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

// ---------------------------------------------------------------------------------------------
// PIDs
// ---------------------------------------------------------------------------------------------

/// A stream's PID filter set (§2.8).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub enum PidSet {
    /// `pids=all`: the full multiplex.
    All,
    /// `pids=none`, or no `pids` at all: no filters, only empty RTP packets.
    #[default]
    None,
    /// An explicit list; kept non-empty by the methods here (empty becomes [`PidSet::None`]).
    Set(BTreeSet<u16>),
}

impl PidSet {
    /// Parse a `pids` value: `all`, `none`, or a CSV of 0..8191 (empty elements skipped, an
    /// empty value means `none`).
    pub fn parse(value: &str) -> Result<PidSet, Reason> {
        let v = value.trim().to_ascii_lowercase();
        match v.as_str() {
            "all" => Ok(PidSet::All),
            "none" | "" => Ok(PidSet::None),
            _ => Ok(PidSet::from_pids(parse_pid_list(&v)?)),
        }
    }

    /// A set from explicit PIDs (empty → `None`).
    pub fn from_pids<I: IntoIterator<Item = u16>>(pids: I) -> PidSet {
        PidSet::Set(pids.into_iter().collect()).normalised()
    }

    fn normalised(self) -> PidSet {
        match self {
            PidSet::Set(s) if s.is_empty() => PidSet::None,
            other => other,
        }
    }

    /// `addpids`: `All` stays `All`.
    pub fn add(&mut self, pids: &BTreeSet<u16>) {
        let next = match std::mem::take(self) {
            PidSet::All => PidSet::All,
            PidSet::None => PidSet::Set(pids.clone()),
            PidSet::Set(mut s) => {
                s.extend(pids.iter().copied());
                PidSet::Set(s)
            }
        };
        *self = next.normalised();
    }

    /// `delpids`: removing from `All` leaves `All` (there is no "all but" set); use `pids=`.
    pub fn remove(&mut self, pids: &BTreeSet<u16>) {
        let next = match std::mem::take(self) {
            PidSet::All => PidSet::All,
            PidSet::None => PidSet::None,
            PidSet::Set(mut s) => {
                s.retain(|p| !pids.contains(p));
                PidSet::Set(s)
            }
        };
        *self = next.normalised();
    }

    /// Whether a packet with this PID belongs to the stream.
    pub fn contains(&self, pid: u16) -> bool {
        match self {
            PidSet::All => pid <= MAX_PID,
            PidSet::None => false,
            PidSet::Set(s) => s.contains(&pid),
        }
    }

    /// Number of filters (`All` counts as one, as it needs a single demux filter).
    pub fn filter_count(&self) -> usize {
        match self {
            PidSet::All => 1,
            PidSet::None => 0,
            PidSet::Set(s) => s.len(),
        }
    }

    /// dvbsrc `pids` property value: colon-separated, `8192` for all, `None` for no PIDs.
    pub fn to_dvbsrc_pids(&self) -> Option<String> {
        match self {
            PidSet::All => Some("8192".to_owned()),
            PidSet::None => None,
            PidSet::Set(s) if s.is_empty() => None,
            PidSet::Set(s) => Some(s.iter().map(u16::to_string).collect::<Vec<_>>().join(":")),
        }
    }
}

/// Status-string form: `all`, `none` or `0,17,18` (ascending).
impl fmt::Display for PidSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PidSet::All => f.write_str("all"),
            PidSet::None => f.write_str("none"),
            PidSet::Set(s) if s.is_empty() => f.write_str("none"),
            PidSet::Set(s) => {
                let mut first = true;
                for p in s {
                    if !first {
                        f.write_str(",")?;
                    }
                    first = false;
                    write!(f, "{p}")?;
                }
                Ok(())
            }
        }
    }
}

/// CSV of PIDs 0..8191; empty elements skipped; anything else (8192, `-1`, `abc`) is refused.
fn parse_pid_list(v: &str) -> Result<BTreeSet<u16>, Reason> {
    let mut out = BTreeSet::new();
    for item in v.split(',') {
        let item = item.trim();
        if item.is_empty() {
            continue;
        }
        let n = parse_uint(item).ok_or(Reason::Malformed)?;
        if n > u64::from(MAX_PID) {
            return Err(Reason::OutOfRange);
        }
        out.insert(n as u16);
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// Query
// ---------------------------------------------------------------------------------------------

/// Tuning attributes of one query, as given (all optional; `Choice::Auto` for explicit `auto`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TuningParams {
    pub src: Option<u8>,
    pub fe: Option<u16>,
    /// `freq` in kHz.
    pub freq_khz: Option<u32>,
    pub pol: Option<Polarisation>,
    pub ro: Option<Choice<RollOff>>,
    pub msys: Option<DeliverySystem>,
    pub mtype: Option<Choice<Modulation>>,
    pub plts: Option<Choice<Pilots>>,
    /// `sr` in kSym/s.
    pub sr: Option<u32>,
    pub fec: Option<Choice<CodeRate>>,
    /// `bw` in kHz.
    pub bw_khz: Option<Choice<u32>>,
    pub tmode: Option<Choice<TransmissionMode>>,
    pub gi: Option<Choice<GuardInterval>>,
    pub plp: Option<u8>,
    pub t2id: Option<u16>,
    pub sm: Option<SisoMiso>,
    pub c2tft: Option<u8>,
    pub ds: Option<u8>,
    pub specinv: Option<bool>,
    pub isi: Option<u8>,
    pub plsm: Option<PlsMode>,
    pub plsc: Option<u32>,
}

impl TuningParams {
    /// No tuning attribute at all (a PID-only or empty query).
    pub fn is_empty(&self) -> bool {
        *self == TuningParams::default()
    }

    /// Merge a newer query over these parameters. A query with `freq` starts from scratch
    /// ([MS]: "a query that contains freq= resets all tuning fields"); otherwise the given
    /// attributes replace the old ones one by one.
    pub fn merge(&self, newer: &TuningParams) -> TuningParams {
        if newer.freq_khz.is_some() {
            return newer.clone();
        }
        TuningParams {
            src: newer.src.or(self.src),
            fe: newer.fe.or(self.fe),
            freq_khz: self.freq_khz,
            pol: newer.pol.or(self.pol),
            ro: newer.ro.or(self.ro),
            msys: newer.msys.or(self.msys),
            mtype: newer.mtype.or(self.mtype),
            plts: newer.plts.or(self.plts),
            sr: newer.sr.or(self.sr),
            fec: newer.fec.or(self.fec),
            bw_khz: newer.bw_khz.or(self.bw_khz),
            tmode: newer.tmode.or(self.tmode),
            gi: newer.gi.or(self.gi),
            plp: newer.plp.or(self.plp),
            t2id: newer.t2id.or(self.t2id),
            sm: newer.sm.or(self.sm),
            c2tft: newer.c2tft.or(self.c2tft),
            ds: newer.ds.or(self.ds),
            specinv: newer.specinv.or(self.specinv),
            isi: newer.isi.or(self.isi),
            plsm: newer.plsm.or(self.plsm),
            plsc: newer.plsc.or(self.plsc),
        }
    }

    /// Apply defaults (§2.7) and check every value against the delivery system. All problems
    /// are reported together as one 403.
    pub fn resolve(&self) -> Result<Tuning, QueryError> {
        let mut bad: Vec<Violation> = Vec::new();
        let mut fail = |attr, reason| bad.push(Violation { attr, reason });

        let Some(msys) = self.msys else {
            fail(Attr::Msys, Reason::Missing);
            if self.freq_khz.is_none() {
                fail(Attr::Freq, Reason::Missing);
            }
            return Err(QueryError::out_of_range(bad));
        };
        let family = msys.family();
        let is_t2 = msys == DeliverySystem::DvbT2;
        let is_c2 = msys == DeliverySystem::DvbC2;
        let is_s2 = matches!(msys, DeliverySystem::DvbS2 | DeliverySystem::IsdbS);

        let mut t = Tuning {
            src: self.src.unwrap_or(1),
            fe: self.fe,
            delivery_system: msys,
            frequency: 0,
            polarisation: None,
            roll_off: None,
            modulation: None,
            pilots: None,
            symbol_rate: None,
            code_rate: None,
            bandwidth_hz: None,
            transmission_mode: None,
            guard_interval: None,
            plp: None,
            t2_system_id: None,
            siso_miso: None,
            c2_tuning_type: None,
            data_slice: None,
            spectral_inversion: None,
            input_stream_id: None,
            pls_mode: None,
            pls_code: None,
        };

        // Frequency, per family range, converted to dvbsrc units.
        match self.freq_khz {
            None => fail(Attr::Freq, Reason::Missing),
            Some(khz) => {
                let (lo, hi) = match family {
                    // IF (950..2150) or C/Ku-band transponder frequencies.
                    Family::Satellite => (950_000, 13_000_000),
                    Family::Terrestrial => (40_000, 1_000_000),
                    Family::Cable => (40_000, 1_218_000),
                };
                if khz < lo || khz > hi {
                    fail(Attr::Freq, Reason::OutOfRange);
                } else {
                    t.frequency = match family {
                        Family::Satellite => khz,
                        _ => khz.saturating_mul(1000),
                    };
                }
            }
        }

        // Modulation: default qpsk for dvbs, 8psk for dvbs2, else auto ([MS]).
        let mtype = match self.mtype {
            Some(c) => c.fixed(),
            None => match msys {
                DeliverySystem::DvbS | DeliverySystem::Dss => Some(Modulation::Qpsk),
                DeliverySystem::DvbS2 => Some(Modulation::Psk8),
                _ => None,
            },
        };
        if let Some(m) = mtype {
            if !is_c2 {
                if m.allowed_for(msys) {
                    t.modulation = Some(m);
                } else {
                    fail(Attr::Mtype, Reason::NotAllowed);
                }
            }
        }

        if let Some(c) = self.fec.and_then(Choice::fixed) {
            if family != Family::Cable {
                if c.allowed_for(family) {
                    t.code_rate = Some(c);
                } else {
                    fail(Attr::Fec, Reason::NotAllowed);
                }
            }
        }

        match family {
            Family::Satellite => {
                match self.pol {
                    Some(p) => t.polarisation = Some(p),
                    None => fail(Attr::Pol, Reason::Missing),
                }
                match self.sr {
                    None => fail(Attr::Sr, Reason::Missing),
                    Some(sr) if !(100..=100_000).contains(&sr) => {
                        fail(Attr::Sr, Reason::OutOfRange)
                    }
                    Some(sr) => t.symbol_rate = Some(sr),
                }
                if is_s2 {
                    // `ro` and `plts` are DVB-S2 only; with dvbs they are accepted and ignored.
                    t.roll_off = self.ro.and_then(Choice::fixed);
                    t.pilots = self.plts.and_then(Choice::fixed);
                    // [MS] accepts `plp` as an alias of `isi`.
                    t.input_stream_id = self.isi.or(self.plp);
                    t.pls_mode = self.plsm;
                    t.pls_code = self.plsc;
                }
            }
            Family::Terrestrial => {
                if let Some(bw) = self.bw_khz.and_then(Choice::fixed) {
                    if [1712, 5000, 6000, 7000, 8000, 10_000].contains(&bw) {
                        t.bandwidth_hz = Some(bw.saturating_mul(1000));
                    } else {
                        fail(Attr::Bw, Reason::NotAllowed);
                    }
                }
                t.transmission_mode = self.tmode.and_then(Choice::fixed);
                t.guard_interval = self.gi.and_then(Choice::fixed);
                if is_t2 {
                    t.plp = self.plp;
                    t.t2_system_id = self.t2id;
                    t.siso_miso = self.sm;
                }
            }
            Family::Cable => {
                if let Some(bw) = self.bw_khz.and_then(Choice::fixed) {
                    let allowed: &[u32] = if is_c2 {
                        &[6000, 8000]
                    } else {
                        &[6000, 7000, 8000]
                    };
                    if allowed.contains(&bw) {
                        t.bandwidth_hz = Some(bw.saturating_mul(1000));
                    } else {
                        fail(Attr::Bw, Reason::NotAllowed);
                    }
                }
                if is_c2 {
                    t.c2_tuning_type = self.c2tft;
                    t.data_slice = self.ds;
                    t.plp = self.plp;
                } else {
                    match self.sr {
                        None if msys == DeliverySystem::DvbC => fail(Attr::Sr, Reason::Missing),
                        None => {}
                        Some(sr) if !(1000..=7200).contains(&sr) => {
                            fail(Attr::Sr, Reason::OutOfRange)
                        }
                        Some(sr) => t.symbol_rate = Some(sr),
                    }
                    t.spectral_inversion = self.specinv;
                }
            }
        }

        if bad.is_empty() {
            Ok(t)
        } else {
            Err(QueryError::out_of_range(bad))
        }
    }
}

/// A parsed query: tuning attributes plus PID operations.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Query {
    pub tuning: TuningParams,
    /// `pids=`: replaces the set.
    pub pids: Option<PidSet>,
    /// `addpids=`.
    pub addpids: Option<BTreeSet<u16>>,
    /// `delpids=`.
    pub delpids: Option<BTreeSet<u16>>,
}

impl Query {
    /// No known attribute at all.
    pub fn is_empty(&self) -> bool {
        *self == Query::default()
    }

    /// Whether the query touches the PID set.
    pub fn has_pid_change(&self) -> bool {
        self.pids.is_some() || self.addpids.is_some() || self.delpids.is_some()
    }

    fn set(&mut self, attr: Attr, v: &str) -> Result<(), Reason> {
        fn num<T: TryFrom<u64>>(v: &str, lo: u64, hi: u64) -> Result<T, Reason> {
            let n = parse_uint(v).ok_or(Reason::Malformed)?;
            if n < lo || n > hi {
                return Err(Reason::OutOfRange);
            }
            T::try_from(n).map_err(|_| Reason::OutOfRange)
        }
        fn auto<T>(v: &str, f: impl Fn(&str) -> Option<T>) -> Result<Choice<T>, Reason> {
            if v == "auto" {
                Ok(Choice::Auto)
            } else {
                f(v).map(Choice::Fixed).ok_or(Reason::Malformed)
            }
        }
        let p = &mut self.tuning;
        match attr {
            Attr::Src => p.src = Some(num(v, 1, 255)?),
            Attr::Fe => p.fe = Some(num(v, 1, 65535)?),
            Attr::Freq => {
                let khz = parse_milli(v).ok_or(Reason::Malformed)?;
                if khz == 0 {
                    return Err(Reason::OutOfRange);
                }
                p.freq_khz = Some(u32::try_from(khz).map_err(|_| Reason::OutOfRange)?);
            }
            Attr::Pol => p.pol = Some(Polarisation::from_query_name(v).ok_or(Reason::Malformed)?),
            Attr::Ro => p.ro = Some(auto(v, RollOff::from_query_name)?),
            Attr::Msys => {
                p.msys = Some(DeliverySystem::from_query_name(v).ok_or(Reason::Malformed)?)
            }
            Attr::Mtype => p.mtype = Some(auto(v, Modulation::from_query_name)?),
            Attr::Plts => {
                p.plts = Some(auto(v, |s| match s {
                    "on" => Some(Pilots::On),
                    "off" => Some(Pilots::Off),
                    _ => None,
                })?)
            }
            Attr::Sr => p.sr = Some(num(v, 1, 1_000_000)?),
            Attr::Fec => p.fec = Some(auto(v, CodeRate::from_query_name)?),
            Attr::Bw => {
                p.bw_khz = Some(if v == "auto" {
                    Choice::Auto
                } else {
                    let milli = parse_milli(v).ok_or(Reason::Malformed)?;
                    // `bw=8000000` ([MS]): a plain integer of 1000 or more is Hz.
                    let khz = if !v.contains('.') && milli >= 1_000_000 {
                        milli / 1_000_000
                    } else {
                        milli
                    };
                    Choice::Fixed(u32::try_from(khz).map_err(|_| Reason::OutOfRange)?)
                })
            }
            Attr::Tmode => p.tmode = Some(auto(v, TransmissionMode::from_query_name)?),
            Attr::Gi => p.gi = Some(auto(v, GuardInterval::from_query_name)?),
            Attr::Plp => p.plp = Some(num(v, 0, 255)?),
            Attr::T2id => p.t2id = Some(num(v, 0, 65535)?),
            Attr::Sm => {
                p.sm = Some(match v {
                    "0" => SisoMiso::Siso,
                    "1" => SisoMiso::Miso,
                    _ => return Err(Reason::Malformed),
                })
            }
            Attr::C2tft => p.c2tft = Some(num(v, 0, 2)?),
            Attr::Ds => p.ds = Some(num(v, 0, 255)?),
            Attr::Specinv => p.specinv = Some(num::<u8>(v, 0, 1)? == 1),
            Attr::Isi => p.isi = Some(num(v, 0, 255)?),
            Attr::Plsm => {
                p.plsm = Some(match v {
                    "root" => PlsMode::Root,
                    "gold" => PlsMode::Gold,
                    "combo" => PlsMode::Combo,
                    _ => return Err(Reason::Malformed),
                })
            }
            Attr::Plsc => p.plsc = Some(num(v, 0, 262_143)?),
            Attr::Pids => self.pids = Some(PidSet::parse(v)?),
            Attr::Addpids => self.addpids = Some(parse_pid_list(v)?),
            Attr::Delpids => self.delpids = Some(parse_pid_list(v)?),
        }
        Ok(())
    }
}

/// Parse a SAT>IP query (with or without the leading `?`).
///
/// Names are case-sensitive, values case-insensitive; empty pairs and unknown attributes are
/// skipped; an empty value counts as absent except `pids=` (= none). Errors: 414 beyond
/// [`MAX_QUERY_LEN`]; 400 for a token without `=`, a duplicated known attribute or a bad `%`
/// escape; 403 naming every attribute whose value is not understood.
pub fn parse_query(query: &str) -> Result<Query, QueryError> {
    let query = query.strip_prefix('?').unwrap_or(query);
    if query.len() > MAX_QUERY_LEN {
        return Err(QueryError::UriTooLong {
            len: query.len(),
            max: MAX_QUERY_LEN,
        });
    }
    let mut q = Query::default();
    let mut seen = BTreeSet::new();
    let mut bad = Vec::new();
    for token in query.split('&') {
        if token.is_empty() {
            continue;
        }
        let Some((raw_name, raw_value)) = token.split_once('=') else {
            return Err(QueryError::syntax(SyntaxReason::MissingEquals, token));
        };
        let name = percent_decode(raw_name)
            .ok_or_else(|| QueryError::syntax(SyntaxReason::BadEscape, token))?;
        let Some(attr) = Attr::from_name(&name) else {
            continue;
        };
        if !seen.insert(attr) {
            return Err(QueryError::syntax(SyntaxReason::DuplicateAttribute, &name));
        }
        let value = percent_decode(raw_value)
            .ok_or_else(|| QueryError::syntax(SyntaxReason::BadEscape, token))?
            .to_ascii_lowercase();
        if value.is_empty() && attr != Attr::Pids {
            continue;
        }
        if let Err(reason) = q.set(attr, &value) {
            bad.push(Violation { attr, reason });
        }
    }
    if bad.is_empty() {
        Ok(q)
    } else {
        Err(QueryError::out_of_range(bad))
    }
}

/// What a request URI addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// `Some(id)` for `/stream=<id>`, `None` for the server root (`/`, `*`, empty path).
    pub stream: Option<u16>,
    /// The parsed query (`Query::default()` when there is none).
    pub query: Query,
    /// Whether the URI had a non-empty query part.
    pub has_query: bool,
}

/// Parse an RTSP/HTTP request URI (`rtsp://host[:port]/stream=3?query`, `/?query`, `*`).
///
/// Only `/` and `/stream=<u16>` (optionally with a trailing `/`) are valid paths; anything else
/// is 400 with the offending attribute text (`/strem=1` → `Check-Syntax: strem`).
pub fn parse_target(uri: &str) -> Result<Target, QueryError> {
    let absolute = !uri.starts_with(['/', '*']);
    let rest = match uri.find("://").filter(|_| absolute) {
        Some(i) => {
            let after = uri.get(i + 3..).unwrap_or("");
            match after.find(['/', '?']) {
                Some(j) => after.get(j..).unwrap_or(""),
                None => "",
            }
        }
        None => uri,
    };
    let (path, query) = match rest.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (rest, None),
    };
    let stream = match path {
        "" | "/" | "*" => None,
        _ => {
            let seg = path.strip_prefix('/').unwrap_or(path);
            let seg = seg.strip_suffix('/').unwrap_or(seg);
            match seg.split_once('=') {
                Some(("stream", id)) => match parse_uint(id).and_then(|n| u16::try_from(n).ok()) {
                    Some(n) => Some(n),
                    None => return Err(QueryError::syntax(SyntaxReason::BadStreamId, seg)),
                },
                Some((name, _)) => return Err(QueryError::syntax(SyntaxReason::BadPath, name)),
                None => return Err(QueryError::syntax(SyntaxReason::BadPath, seg)),
            }
        }
    };
    let has_query = query.is_some_and(|q| !q.is_empty());
    let query = match query {
        Some(q) => parse_query(q)?,
        None => Query::default(),
    };
    Ok(Target {
        stream,
        query,
        has_query,
    })
}

// ---------------------------------------------------------------------------------------------
// Tuning
// ---------------------------------------------------------------------------------------------

/// LNB band of a universal Ku-band LNB (dvbsrc defaults: LOF1 9750 MHz, LOF2 10600 MHz,
/// switch at 11700 MHz).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum LnbBand {
    /// 22 kHz tone off.
    Low,
    /// 22 kHz tone on.
    High,
}

/// Universal LNB switch frequency (kHz), dvbsrc `lnb-slof` default.
pub const LNB_SLOF_KHZ: u32 = 11_700_000;

/// A fully resolved tuning, in dvbsrc units.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Tuning {
    /// Signal source 1..255 (DiSEqC: 1 = A … 4 = D); default 1.
    pub src: u8,
    /// Pinned frontend (1-based), if the client asked for one.
    pub fe: Option<u16>,
    pub delivery_system: DeliverySystem,
    /// dvbsrc `frequency`: kHz for satellite (transponder or IF), Hz for terrestrial and cable.
    pub frequency: u32,
    /// Satellite only.
    pub polarisation: Option<Polarisation>,
    /// DVB-S2 only; `None` = auto.
    pub roll_off: Option<RollOff>,
    /// `None` = auto.
    pub modulation: Option<Modulation>,
    /// DVB-S2 only; `None` = auto.
    pub pilots: Option<Pilots>,
    /// kSym/s (dvbsrc `symbol-rate` is in kBd); satellite and DVB-C.
    pub symbol_rate: Option<u32>,
    /// `None` = auto.
    pub code_rate: Option<CodeRate>,
    /// dvbsrc `bandwidth-hz`; `None` = auto.
    pub bandwidth_hz: Option<u32>,
    pub transmission_mode: Option<TransmissionMode>,
    pub guard_interval: Option<GuardInterval>,
    /// DVB-T2 / DVB-C2 PLP id.
    pub plp: Option<u8>,
    pub t2_system_id: Option<u16>,
    pub siso_miso: Option<SisoMiso>,
    /// DVB-C2 `c2tft` (0..2).
    pub c2_tuning_type: Option<u8>,
    /// DVB-C2 data slice.
    pub data_slice: Option<u8>,
    /// DVB-C spectral inversion; `None` = auto.
    pub spectral_inversion: Option<bool>,
    /// DVB-S2 input stream id (`isi`, or `plp` as alias).
    pub input_stream_id: Option<u8>,
    pub pls_mode: Option<PlsMode>,
    pub pls_code: Option<u32>,
}

impl Tuning {
    pub fn family(&self) -> Family {
        self.delivery_system.family()
    }

    /// The frequency in kHz whatever the family.
    pub fn freq_khz(&self) -> u32 {
        match self.family() {
            Family::Satellite => self.frequency,
            _ => self.frequency / 1000,
        }
    }

    /// dvbsrc `stream-id`: DVB-T2/C2 PLP or DVB-S2 ISI.
    pub fn stream_id(&self) -> Option<u8> {
        self.input_stream_id.or(self.plp)
    }

    /// Band of a universal LNB for Ku-band transponder frequencies; `None` for IF frequencies
    /// (< 2200 MHz), C-band, and non-satellite tunings.
    pub fn lnb_band(&self) -> Option<LnbBand> {
        if self.family() != Family::Satellite || self.frequency < 10_000_000 {
            return None;
        }
        Some(if self.frequency < LNB_SLOF_KHZ {
            LnbBand::Low
        } else {
            LnbBand::High
        })
    }

    /// The sharing key of §10.2.
    pub fn key(&self) -> TuningKey {
        let khz = self.freq_khz();
        let family = self.family();
        TuningKey {
            src: self.src,
            freq_mhz: (khz.saturating_add(500)) / 1000,
            pol: self.polarisation,
            family,
            symbol_rate: self.symbol_rate,
            modulation: self.modulation,
            stream_id: self.stream_id(),
            band: self.lnb_band(),
        }
    }

    /// Back to query parameters (used when a later query modifies this tuning).
    pub fn to_params(&self) -> TuningParams {
        TuningParams {
            src: Some(self.src),
            fe: self.fe,
            freq_khz: Some(self.freq_khz()),
            pol: self.polarisation,
            ro: self.roll_off.map(Choice::Fixed),
            msys: Some(self.delivery_system),
            mtype: Some(self.modulation.map_or(Choice::Auto, Choice::Fixed)),
            plts: self.pilots.map(Choice::Fixed),
            sr: self.symbol_rate,
            fec: self.code_rate.map(Choice::Fixed),
            bw_khz: self.bandwidth_hz.map(|b| Choice::Fixed(b / 1000)),
            tmode: self.transmission_mode.map(Choice::Fixed),
            gi: self.guard_interval.map(Choice::Fixed),
            plp: if self.family() == Family::Satellite {
                None
            } else {
                self.plp
            },
            t2id: self.t2_system_id,
            sm: self.siso_miso,
            c2tft: self.c2_tuning_type,
            ds: self.data_slice,
            specinv: self.spectral_inversion,
            isi: self.input_stream_id,
            plsm: self.pls_mode,
            plsc: self.pls_code,
        }
    }

    /// Canonical query: attributes in [`Attr`] order, auto values omitted, frequencies in the
    /// shortest exact decimal form, `pids` last when given. Parsing it yields the same tuning.
    pub fn canonical_query(&self, pids: Option<&PidSet>) -> String {
        let mut parts: Vec<String> = Vec::new();
        let mut push = |a: Attr, v: String| parts.push(format!("{}={v}", a.name()));
        push(Attr::Src, self.src.to_string());
        if let Some(fe) = self.fe {
            push(Attr::Fe, fe.to_string());
        }
        push(Attr::Freq, fmt_milli_min(self.freq_khz()));
        if let Some(p) = self.polarisation {
            push(Attr::Pol, p.query_name().to_owned());
        }
        if let Some(r) = self.roll_off {
            push(Attr::Ro, r.query_name().to_owned());
        }
        push(Attr::Msys, self.delivery_system.query_name().to_owned());
        match self.modulation {
            Some(m) => push(Attr::Mtype, m.query_name().to_owned()),
            // Keep an explicit auto where the default would not be auto.
            None if matches!(
                self.delivery_system,
                DeliverySystem::DvbS | DeliverySystem::DvbS2 | DeliverySystem::Dss
            ) =>
            {
                push(Attr::Mtype, "auto".to_owned())
            }
            None => {}
        }
        if let Some(p) = self.pilots {
            push(Attr::Plts, p.query_name().to_owned());
        }
        if let Some(sr) = self.symbol_rate {
            push(Attr::Sr, sr.to_string());
        }
        if let Some(c) = self.code_rate {
            push(Attr::Fec, c.query_name());
        }
        if let Some(bw) = self.bandwidth_hz {
            push(Attr::Bw, fmt_milli_min(bw / 1000));
        }
        if let Some(t) = self.transmission_mode {
            push(Attr::Tmode, t.query_name().to_owned());
        }
        if let Some(g) = self.guard_interval {
            push(Attr::Gi, g.query_name().to_owned());
        }
        if let Some(p) = self.plp {
            push(Attr::Plp, p.to_string());
        }
        if let Some(t) = self.t2_system_id {
            push(Attr::T2id, t.to_string());
        }
        if let Some(s) = self.siso_miso {
            push(Attr::Sm, s.query_name().to_owned());
        }
        if let Some(c) = self.c2_tuning_type {
            push(Attr::C2tft, c.to_string());
        }
        if let Some(d) = self.data_slice {
            push(Attr::Ds, d.to_string());
        }
        if let Some(s) = self.spectral_inversion {
            push(Attr::Specinv, if s { "1" } else { "0" }.to_owned());
        }
        if let Some(i) = self.input_stream_id {
            push(Attr::Isi, i.to_string());
        }
        if let Some(m) = self.pls_mode {
            push(Attr::Plsm, m.query_name().to_owned());
        }
        if let Some(c) = self.pls_code {
            push(Attr::Plsc, c.to_string());
        }
        if let Some(p) = pids {
            push(Attr::Pids, p.to_string());
        }
        parts.join("&")
    }

    /// Check the request against the server: `msys` needs a frontend type (403 `msys`,
    /// checklist 9), a pinned `fe` must exist (403 `fe`, checklist 50), and a satellite `src`
    /// must be one of the configured sources (403 `src`).
    pub fn check_capabilities(&self, caps: &Capabilities) -> Result<(), QueryError> {
        let mut bad = Vec::new();
        if !caps.systems.contains(&self.delivery_system) {
            bad.push(Violation {
                attr: Attr::Msys,
                reason: Reason::Unsupported,
            });
        }
        if let Some(fe) = self.fe {
            if fe > caps.frontends {
                bad.push(Violation {
                    attr: Attr::Fe,
                    reason: Reason::OutOfRange,
                });
            }
        }
        if self.family() == Family::Satellite && self.src > caps.satellite_sources {
            bad.push(Violation {
                attr: Attr::Src,
                reason: Reason::OutOfRange,
            });
        }
        if bad.is_empty() {
            Ok(())
        } else {
            Err(QueryError::out_of_range(bad))
        }
    }
}

/// What the server can tune, for [`Tuning::check_capabilities`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Capabilities {
    /// Delivery systems at least one frontend supports.
    pub systems: Vec<DeliverySystem>,
    /// Number of frontends (valid `fe` values are 1..=frontends).
    pub frontends: u16,
    /// Number of satellite sources (valid `src` values are 1..=satellite_sources).
    pub satellite_sources: u8,
}

/// Tuner-sharing key (§10.2): two tunings with equal keys can share one frontend.
///
/// The frequency is rounded to whole MHz, so equality means "within ~1 MHz" except across a
/// rounding boundary; [`TuningKey::same_transponder`] tolerates ±1 MHz.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TuningKey {
    pub src: u8,
    pub freq_mhz: u32,
    pub pol: Option<Polarisation>,
    pub family: Family,
    /// kSym/s.
    pub symbol_rate: Option<u32>,
    pub modulation: Option<Modulation>,
    /// PLP or ISI.
    pub stream_id: Option<u8>,
    pub band: Option<LnbBand>,
}

impl TuningKey {
    /// Equal except for a frequency difference of at most 1 MHz.
    pub fn same_transponder(&self, other: &TuningKey) -> bool {
        self.freq_mhz.abs_diff(other.freq_mhz) <= 1
            && TuningKey {
                freq_mhz: 0,
                ..*self
            } == TuningKey {
                freq_mhz: 0,
                ..*other
            }
    }
}

/// Stable text form, usable as an RTSP media factory key.
impl fmt::Display for TuningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let fam = match self.family {
            Family::Satellite => "sat",
            Family::Terrestrial => "ter",
            Family::Cable => "cab",
        };
        write!(f, "{fam}:src={}:freq={}", self.src, self.freq_mhz)?;
        if let Some(p) = self.pol {
            write!(f, ":pol={}", p.query_name())?;
        }
        if let Some(sr) = self.symbol_rate {
            write!(f, ":sr={sr}")?;
        }
        if let Some(m) = self.modulation {
            write!(f, ":mtype={}", m.query_name())?;
        }
        if let Some(s) = self.stream_id {
            write!(f, ":sid={s}")?;
        }
        match self.band {
            Some(LnbBand::Low) => f.write_str(":band=low"),
            Some(LnbBand::High) => f.write_str(":band=high"),
            None => Ok(()),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Streams: create and modify
// ---------------------------------------------------------------------------------------------

/// How a query changed an existing stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// Nothing changed.
    Unchanged,
    /// Same tuning, different PID set: must be applied without interrupting the stream.
    Pids,
    /// The tuning changed (possibly the PIDs too): retune, keep RTP sequence numbers running.
    Retune,
}

/// The requested state of one stream: tuning and PID set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamSpec {
    /// The merged parameters as requested (defaults not applied), for later merges.
    pub params: TuningParams,
    pub tuning: Tuning,
    pub pids: PidSet,
}

impl StreamSpec {
    /// A new stream from the query of a creating SETUP (or HTTP GET, or a describing DESCRIBE).
    /// `addpids`/`delpids` are refused (400): they only modify a running stream. Without `pids`
    /// the stream has no filters. More than `max_pids` PIDs → 503 `No-More: pids`.
    pub fn create(q: &Query, max_pids: usize) -> Result<StreamSpec, QueryError> {
        if q.addpids.is_some() {
            return Err(QueryError::syntax(
                SyntaxReason::AddDelOnNewStream,
                "addpids",
            ));
        }
        if q.delpids.is_some() {
            return Err(QueryError::syntax(
                SyntaxReason::AddDelOnNewStream,
                "delpids",
            ));
        }
        let tuning = q.tuning.resolve()?;
        let pids = q.pids.clone().unwrap_or_default();
        check_pid_limit(&pids, max_pids)?;
        Ok(StreamSpec {
            params: q.tuning.clone(),
            tuning,
            pids,
        })
    }

    /// Apply a PLAY / in-session SETUP query to this stream. Tuning attributes merge as in
    /// [`TuningParams::merge`]; PIDs apply in [TVH] order: `pids`, then `delpids`, then
    /// `addpids` (mixing `pids` with add/del is tolerated). An empty query changes nothing.
    pub fn apply(&self, q: &Query, max_pids: usize) -> Result<(StreamSpec, Change), QueryError> {
        let (params, tuning) = if q.tuning.is_empty() {
            (self.params.clone(), self.tuning.clone())
        } else {
            let params = self.params.merge(&q.tuning);
            let tuning = params.resolve()?;
            (params, tuning)
        };
        let mut pids = q.pids.clone().unwrap_or_else(|| self.pids.clone());
        if let Some(d) = &q.delpids {
            pids.remove(d);
        }
        if let Some(a) = &q.addpids {
            pids.add(a);
        }
        check_pid_limit(&pids, max_pids)?;
        let change = if tuning != self.tuning {
            Change::Retune
        } else if pids != self.pids {
            Change::Pids
        } else {
            Change::Unchanged
        };
        Ok((
            StreamSpec {
                params,
                tuning,
                pids,
            },
            change,
        ))
    }

    pub fn key(&self) -> TuningKey {
        self.tuning.key()
    }

    /// Canonical query including `pids`.
    pub fn canonical_query(&self) -> String {
        self.tuning.canonical_query(Some(&self.pids))
    }
}

fn check_pid_limit(pids: &PidSet, max_pids: usize) -> Result<(), QueryError> {
    if pids.filter_count() > max_pids {
        Err(QueryError::NoMore(vec![Resource::Pids]))
    } else {
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// Status string (§4.3) and signal scales (§4.4)
// ---------------------------------------------------------------------------------------------

/// What the frontend reports, on the SAT>IP scales.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SignalStatus {
    /// 0..255.
    pub level: u8,
    pub lock: bool,
    /// 0..15; reported as 0 without lock.
    pub quality: u8,
}

/// Level from input power in milli-dBm (Linux DVBv5 `FE_SCALE_DECIBEL` unit):
/// `32 + 4.8 × (P + 65)`, rounded and clamped to 0..255 (−65 dBm → 32, −25 dBm → 224).
pub fn level_from_dbm_milli(mdbm: i64) -> u8 {
    let x = i128::from(mdbm) + 65_000;
    // 4.8 per dB = 48 per 10 000 milli-dB; round half away from zero.
    let scaled = x * 48;
    let q = if scaled >= 0 {
        (scaled + 5000) / 10_000
    } else {
        (scaled - 5000) / 10_000
    };
    (q + 32).clamp(0, 255) as u8
}

/// Level from a relative strength 0..65535 (`FE_SCALE_RELATIVE`), mapped to 0..240 (240 is what
/// [TVH] reads as 100 %).
pub fn level_from_relative(v: u16) -> u8 {
    ((u32::from(v) * 240 + 32767) / 65535) as u8
}

/// Quality 0..15 from a relative SNR 0..65535.
pub fn quality_from_relative(v: u16) -> u8 {
    ((u32::from(v) * 16) >> 16) as u8
}

/// Quality 0..15 from an SNR/CNR in milli-dB: dB / 2, clamped.
pub fn quality_from_snr_milli_db(mdb: i64) -> u8 {
    (mdb / 2000).clamp(0, 15) as u8
}

/// The status string of `a=fmtp:33` and the RTCP APP payload (§4.3) for frontend `fe`.
///
/// Layout by family: satellite `ver=1.0;src=..;tuner=` with 12 fields, terrestrial `ver=1.1;`
/// with 14, cable `ver=1.2;` with 13; fields that do not apply stay empty. Frequencies have two
/// decimals; for DVB-S the mtype, pilots and roll-off fields are empty (spec example). Level is
/// clamped to 0..255, quality to 0..15 and forced to 0 without lock. Without a tuning the
/// satellite layout with empty fields is used.
pub fn status_string(
    fe: u16,
    signal: SignalStatus,
    tuning: Option<&Tuning>,
    pids: &PidSet,
) -> String {
    let quality = if signal.lock {
        signal.quality.min(15)
    } else {
        0
    };
    let head = format!("{fe},{},{},{quality}", signal.level, u8::from(signal.lock));
    let Some(t) = tuning else {
        return format!("ver=1.0;src=1;tuner={head},,,,,,,,;pids={pids}");
    };
    let opt = |o: Option<String>| o.unwrap_or_default();
    let freq = fmt_milli_2dp(t.freq_khz());
    let msys = t.delivery_system.query_name();
    let mtype = opt(t.modulation.map(|m| m.query_name().to_owned()));
    let fec = opt(t.code_rate.map(CodeRate::query_name));
    let bw = opt(t.bandwidth_hz.map(|b| fmt_milli_min(b / 1000)));
    let sr = opt(t.symbol_rate.map(|s| s.to_string()));
    let plp = opt(t.plp.map(|p| p.to_string()));
    match t.family() {
        Family::Satellite => {
            let pol = opt(t.polarisation.map(|p| p.query_name().to_owned()));
            let dvbs = t.delivery_system == DeliverySystem::DvbS;
            let (mtype, plts, ro) = if dvbs {
                (String::new(), String::new(), String::new())
            } else {
                (
                    mtype,
                    opt(t.pilots.map(|p| p.query_name().to_owned())),
                    opt(t.roll_off.map(|r| r.query_name().to_owned())),
                )
            };
            format!(
                "ver=1.0;src={};tuner={head},{freq},{pol},{msys},{mtype},{plts},{ro},{sr},{fec};\
                 pids={pids}",
                t.src
            )
        }
        Family::Terrestrial => {
            let tmode = opt(t.transmission_mode.map(|m| m.query_name().to_owned()));
            let gi = opt(t.guard_interval.map(|g| g.query_name().to_owned()));
            let t2id = opt(t.t2_system_id.map(|x| x.to_string()));
            let sm = opt(t.siso_miso.map(|s| s.query_name().to_owned()));
            format!(
                "ver=1.1;tuner={head},{freq},{bw},{msys},{tmode},{mtype},{gi},{fec},{plp},{t2id},\
                 {sm};pids={pids}"
            )
        }
        Family::Cable => {
            let c2tft = opt(t.c2_tuning_type.map(|x| x.to_string()));
            let ds = opt(t.data_slice.map(|x| x.to_string()));
            let specinv = opt(t.spectral_inversion.map(|s| u8::from(s).to_string()));
            format!(
                "ver=1.2;tuner={head},{freq},{bw},{msys},{mtype},{sr},{c2tft},{ds},{plp},\
                 {specinv};pids={pids}"
            )
        }
    }
}

// ---------------------------------------------------------------------------------------------
// RTCP APP "SES1" (§6.1)
// ---------------------------------------------------------------------------------------------

/// RTCP packet type APP.
pub const RTCP_PT_APP: u8 = 204;
/// Longest status string an APP packet can carry (16-bit `string_length`).
pub const MAX_APP_STRING: usize = 65_535;

/// Encode the SAT>IP RTCP APP packet: V=2, subtype 0, PT 204, name `SES1`, identifier 0,
/// 16-bit string length, the status string, zero fill to 4 bytes (not signalled by P).
/// A longer string than [`MAX_APP_STRING`] is cut at a character boundary.
pub fn encode_rtcp_app_ses1(ssrc: u32, status: &str) -> Vec<u8> {
    let mut end = status.len().min(MAX_APP_STRING);
    while end > 0 && !status.is_char_boundary(end) {
        end -= 1;
    }
    let s = status.as_bytes().get(..end).unwrap_or_default();
    let pad = (4 - s.len() % 4) % 4;
    let total = 16 + s.len() + pad;
    let words = (total / 4 - 1) as u16;
    let mut out = Vec::with_capacity(total);
    out.push(0x80);
    out.push(RTCP_PT_APP);
    out.extend_from_slice(&words.to_be_bytes());
    out.extend_from_slice(&ssrc.to_be_bytes());
    out.extend_from_slice(b"SES1");
    out.extend_from_slice(&0u16.to_be_bytes());
    out.extend_from_slice(&(s.len() as u16).to_be_bytes());
    out.extend_from_slice(s);
    out.resize(total, 0);
    out
}

/// Decode one APP `SES1` packet at the start of `packet`: `(ssrc, status string)`.
/// `None` if it is not a well-formed SES1 APP packet.
pub fn decode_rtcp_app_ses1(packet: &[u8]) -> Option<(u32, String)> {
    let hdr = packet.get(..16)?;
    if hdr[0] & 0xC0 != 0x80 || hdr[1] != RTCP_PT_APP || &hdr[8..12] != b"SES1" {
        return None;
    }
    let total = (usize::from(u16::from_be_bytes([hdr[2], hdr[3]])) + 1) * 4;
    let ssrc = u32::from_be_bytes([hdr[4], hdr[5], hdr[6], hdr[7]]);
    let len = usize::from(u16::from_be_bytes([hdr[14], hdr[15]]));
    if 16 + len > total || total > packet.len() {
        return None;
    }
    let s = packet.get(16..16 + len)?;
    Some((ssrc, String::from_utf8(s.to_vec()).ok()?))
}

// ---------------------------------------------------------------------------------------------
// Extended M3U (§7.2)
// ---------------------------------------------------------------------------------------------

/// The extended M3U channel list: `#EXTM3U`, then per channel `#EXTINF:0,<number>. <name>` and
/// the URL, CRLF line ends. Line breaks inside names or URLs become spaces. Serve it with
/// [`to_latin1`] (the spec calls the list Latin-1).
pub fn m3u_playlist<'a, I>(entries: I) -> String
where
    I: IntoIterator<Item = (u32, &'a str, &'a str)>,
{
    let clean = |s: &str| -> String {
        s.chars()
            .map(|c| if c == '\r' || c == '\n' { ' ' } else { c })
            .collect()
    };
    let mut out = String::from("#EXTM3U\r\n");
    for (number, name, url) in entries {
        out.push_str(&format!(
            "#EXTINF:0,{number}. {}\r\n{}\r\n",
            clean(name),
            clean(url)
        ));
    }
    out
}

/// Latin-1 bytes of `s`; characters outside Latin-1 become `?`.
pub fn to_latin1(s: &str) -> Vec<u8> {
    s.chars()
        .map(|c| u8::try_from(u32::from(c)).unwrap_or(b'?'))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// RTSP Transport header (§3.4)
// ---------------------------------------------------------------------------------------------

/// How RTP reaches the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Delivery {
    /// `RTP/AVP[/UDP];unicast;client_port=a-(a+1)`.
    Unicast,
    /// `RTP/AVP[/UDP];multicast[;destination=…][;port=…][;ttl=…]`.
    Multicast,
    /// `RTP/AVP/TCP[;unicast];interleaved=a-b`: RTP on the RTSP connection (§3.9).
    Interleaved,
}

/// One transport specification of a `Transport` header, as far as SAT>IP cares (§3.4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransportSpec {
    pub delivery: Delivery,
    /// Unicast RTP/RTCP ports of the client.
    pub client_port: Option<(u16, u16)>,
    /// Multicast group (unicast: informative, kept as sent).
    pub destination: Option<std::net::Ipv4Addr>,
    /// Multicast RTP/RTCP ports.
    pub port: Option<(u16, u16)>,
    /// Multicast TTL (1..=255).
    pub ttl: Option<u8>,
    /// Interleaved channels (TCP only).
    pub interleaved: Option<(u8, u8)>,
}

/// Why a `Transport` header is refused (always 461 Unsupported Transport).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransportError {
    /// Empty header.
    Missing,
    /// A profile other than `RTP/AVP`, `RTP/AVP/UDP` or `RTP/AVP/TCP` (e.g. `RTP/SAVP`).
    Profile(String),
    /// A parameter that cannot be understood or does not fit the profile (text of it).
    Parameter(String),
}

impl TransportError {
    /// Always 461.
    pub fn status(&self) -> u16 {
        461
    }

    pub fn reason_phrase(&self) -> &'static str {
        "Unsupported Transport"
    }
}

impl fmt::Display for TransportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TransportError::Missing => write!(f, "no transport specification"),
            TransportError::Profile(p) => write!(f, "profile {p:?} is not RTP/AVP"),
            TransportError::Parameter(p) => write!(f, "transport parameter {p:?} not supported"),
        }
    }
}

impl std::error::Error for TransportError {}

/// `a-b` (or a single `a`, meaning `a-(a+1)`) where b must be a+1.
fn port_pair(v: &str) -> Option<(u16, u16)> {
    let (a, b) = match v.split_once('-') {
        Some((a, b)) => (a.trim().parse::<u16>().ok()?, b.trim().parse::<u16>().ok()?),
        None => {
            let a = v.trim().parse::<u16>().ok()?;
            (a, a.checked_add(1)?)
        }
    };
    (a.checked_add(1) == Some(b)).then_some((a, b))
}

fn channel_pair(v: &str) -> Option<(u8, u8)> {
    let (a, b) = match v.split_once('-') {
        Some((a, b)) => (a.trim().parse::<u8>().ok()?, b.trim().parse::<u8>().ok()?),
        None => {
            let a = v.trim().parse::<u8>().ok()?;
            (a, a.checked_add(1)?)
        }
    };
    (b > a).then_some((a, b))
}

fn parse_one_transport(spec: &str) -> Result<TransportSpec, TransportError> {
    let mut parts = spec.split(';').map(str::trim);
    let profile = parts.next().unwrap_or("");
    if profile.is_empty() {
        return Err(TransportError::Missing);
    }
    let tcp = match profile.to_ascii_uppercase().as_str() {
        "RTP/AVP" | "RTP/AVP/UDP" => false,
        "RTP/AVP/TCP" => true,
        _ => return Err(TransportError::Profile(profile.to_string())),
    };
    let mut t = TransportSpec {
        delivery: if tcp {
            Delivery::Interleaved
        } else {
            Delivery::Unicast
        },
        client_port: None,
        destination: None,
        port: None,
        ttl: None,
        interleaved: None,
    };
    let bad = |p: &str| TransportError::Parameter(p.to_string());
    for p in parts.filter(|p| !p.is_empty()) {
        let (name, value) = match p.split_once('=') {
            Some((n, v)) => (
                n.trim().to_ascii_lowercase(),
                Some(v.trim().trim_matches('"')),
            ),
            None => (p.to_ascii_lowercase(), None),
        };
        match (name.as_str(), value) {
            ("unicast", None) => {}
            ("multicast", None) if !tcp => t.delivery = Delivery::Multicast,
            ("multicast", None) => return Err(bad(p)),
            ("client_port", Some(v)) => t.client_port = Some(port_pair(v).ok_or_else(|| bad(p))?),
            ("port", Some(v)) => t.port = Some(port_pair(v).ok_or_else(|| bad(p))?),
            ("destination", Some(v)) => match v.parse::<std::net::Ipv4Addr>() {
                Ok(a) => t.destination = Some(a),
                // A unicast destination may be a host name: informative only.
                Err(_) if !v.is_empty() => {}
                Err(_) => return Err(bad(p)),
            },
            ("ttl", Some(v)) => match v.parse::<u8>() {
                Ok(n) if n > 0 => t.ttl = Some(n),
                _ => return Err(bad(p)),
            },
            ("interleaved", Some(v)) if tcp => {
                t.interleaved = Some(channel_pair(v).ok_or_else(|| bad(p))?)
            }
            ("interleaved", Some(_)) => return Err(bad(p)),
            ("mode", Some(v)) if !v.eq_ignore_ascii_case("play") => return Err(bad(p)),
            // source, server_port, ssrc, mode=PLAY, append, layers, …: nothing to check.
            _ => {}
        }
    }
    if t.delivery == Delivery::Multicast {
        if t.destination.is_some_and(|d| !d.is_multicast()) {
            return Err(TransportError::Parameter(format!(
                "destination={} is not a multicast address",
                t.destination.map(|d| d.to_string()).unwrap_or_default()
            )));
        }
    } else if t.delivery == Delivery::Unicast && t.client_port.is_none() {
        return Err(TransportError::Parameter("client_port missing".into()));
    }
    Ok(t)
}

/// Parses a request's `Transport` header (§3.4). A comma-separated list yields its first
/// usable specification (RFC 2326 §12.39); when none is usable, the first one's error.
pub fn parse_transport(header: &str) -> Result<TransportSpec, TransportError> {
    let mut first_err = None;
    for spec in header.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        match parse_one_transport(spec) {
            Ok(t) => return Ok(t),
            Err(e) => {
                first_err.get_or_insert(e);
            }
        }
    }
    Err(first_err.unwrap_or(TransportError::Missing))
}

impl TransportSpec {
    /// The specification as a `Transport` header value (request form).
    pub fn to_header(&self) -> String {
        let mut s = String::from(match self.delivery {
            Delivery::Unicast => "RTP/AVP;unicast",
            Delivery::Multicast => "RTP/AVP;multicast",
            Delivery::Interleaved => "RTP/AVP/TCP;unicast",
        });
        if let Some((a, b)) = self.client_port {
            s += &format!(";client_port={a}-{b}");
        }
        if let Some(d) = self.destination {
            s += &format!(";destination={d}");
        }
        if let Some((a, b)) = self.port {
            s += &format!(";port={a}-{b}");
        }
        if let Some(t) = self.ttl {
            s += &format!(";ttl={t}");
        }
        if let Some((a, b)) = self.interleaved {
            s += &format!(";interleaved={a}-{b}");
        }
        s
    }
}

/// A multicast address range `first-last` (IPv4, both inside 224.0.0.0/4, first <= last).
pub fn parse_multicast_range(s: &str) -> Result<(std::net::Ipv4Addr, std::net::Ipv4Addr), String> {
    let (a, b) = s
        .split_once('-')
        .ok_or_else(|| format!("{s:?} is not FIRST-LAST"))?;
    let a: std::net::Ipv4Addr = a
        .trim()
        .parse()
        .map_err(|_| format!("{:?} is not an IPv4 address", a.trim()))?;
    let b: std::net::Ipv4Addr = b
        .trim()
        .parse()
        .map_err(|_| format!("{:?} is not an IPv4 address", b.trim()))?;
    if !a.is_multicast() || !b.is_multicast() {
        return Err(format!("{s:?} is not inside 224.0.0.0/4"));
    }
    if u32::from(a) > u32::from(b) {
        return Err(format!("{s:?}: first address after last"));
    }
    Ok((a, b))
}

/// The SAT>IP multicast range of a server with DEVICE ID `id`: `239.<id>.0.0-239.<id>.254.254`
/// (§1, §8.6).
pub fn device_multicast_range(id: u8) -> (std::net::Ipv4Addr, std::net::Ipv4Addr) {
    (
        std::net::Ipv4Addr::new(239, id, 0, 0),
        std::net::Ipv4Addr::new(239, id, 254, 254),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAT_Q: &str = "?src=1&freq=11494&pol=h&ro=0.35&msys=dvbs2&mtype=8psk&plts=on&sr=22000&fec=23&pids=0,17,18,5100";
    const TER_Q: &str =
        "?freq=538&bw=8&msys=dvbt&tmode=8k&mtype=64qam&gi=14&fec=23&pids=0,16,17,18";
    const CAB_Q: &str = "?freq=474&msys=dvbc&mtype=256qam&sr=6900&specinv=0&pids=0,16,17";
    const C2_Q: &str = "?freq=650.5&bw=8&msys=dvbc2&c2tft=0&ds=0&plp=0&pids=0";

    fn spec(q: &str) -> StreamSpec {
        StreamSpec::create(&parse_query(q).expect("query parses"), DEFAULT_MAX_PIDS)
            .expect("stream spec")
    }

    fn err(q: &str) -> QueryError {
        match parse_query(q).and_then(|q| StreamSpec::create(&q, DEFAULT_MAX_PIDS)) {
            Ok(s) => panic!("expected an error for {q}, got {s:?}"),
            Err(e) => e,
        }
    }

    fn pids(list: &[u16]) -> PidSet {
        PidSet::from_pids(list.iter().copied())
    }

    fn locked(level: u8, quality: u8) -> SignalStatus {
        SignalStatus {
            level,
            lock: true,
            quality,
        }
    }

    #[test]
    fn spec_satellite_example() {
        let s = spec(SAT_Q);
        let t = &s.tuning;
        assert_eq!(t.src, 1);
        assert_eq!(t.fe, None);
        assert_eq!(t.delivery_system, DeliverySystem::DvbS2);
        assert_eq!(
            t.frequency, 11_494_000,
            "satellite frequency is kHz for dvbsrc"
        );
        assert_eq!(t.polarisation, Some(Polarisation::Horizontal));
        assert_eq!(t.roll_off, Some(RollOff::R035));
        assert_eq!(t.modulation, Some(Modulation::Psk8));
        assert_eq!(t.pilots, Some(Pilots::On));
        assert_eq!(t.symbol_rate, Some(22_000));
        assert_eq!(t.code_rate, Some(CodeRate::R2_3));
        assert_eq!(t.lnb_band(), Some(LnbBand::Low));
        assert_eq!(s.pids, pids(&[0, 17, 18, 5100]));
        assert_eq!(t.delivery_system.dvbsrc_nick(), Some("dvb-s2"));
        assert_eq!(t.code_rate.and_then(CodeRate::dvbsrc_nick), Some("2/3"));
        assert_eq!(t.polarisation.map(Polarisation::dvbsrc_polarity), Some("H"));
    }

    #[test]
    fn spec_terrestrial_example() {
        let t = spec(TER_Q).tuning;
        assert_eq!(t.src, 1);
        assert_eq!(t.delivery_system, DeliverySystem::DvbT);
        assert_eq!(
            t.frequency, 538_000_000,
            "terrestrial frequency is Hz for dvbsrc"
        );
        assert_eq!(t.bandwidth_hz, Some(8_000_000));
        assert_eq!(t.transmission_mode, Some(TransmissionMode::K8));
        assert_eq!(t.modulation, Some(Modulation::Qam64));
        assert_eq!(t.guard_interval, Some(GuardInterval::G1_4));
        assert_eq!(t.code_rate, Some(CodeRate::R2_3));
        assert_eq!(t.polarisation, None);
        assert_eq!(t.symbol_rate, None);
        assert_eq!(t.lnb_band(), None);
    }

    #[test]
    fn spec_cable_examples() {
        let t = spec(CAB_Q).tuning;
        assert_eq!(t.delivery_system, DeliverySystem::DvbC);
        assert_eq!(t.frequency, 474_000_000);
        assert_eq!(t.modulation, Some(Modulation::Qam256));
        assert_eq!(t.symbol_rate, Some(6900));
        assert_eq!(t.spectral_inversion, Some(false));
        assert_eq!(t.delivery_system.dvbsrc_nick(), Some("dvb-c-a"));

        let c2 = spec(C2_Q).tuning;
        assert_eq!(c2.delivery_system, DeliverySystem::DvbC2);
        assert_eq!(c2.frequency, 650_500_000);
        assert_eq!(c2.bandwidth_hz, Some(8_000_000));
        assert_eq!(
            (c2.c2_tuning_type, c2.data_slice, c2.plp),
            (Some(0), Some(0), Some(0))
        );
        assert_eq!(c2.delivery_system.dvbsrc_nick(), None);
    }

    #[test]
    fn t2_fields() {
        let t = spec("freq=191.5&bw=1.712&msys=dvbt2&tmode=32k&mtype=256qam&gi=1128&fec=35&plp=3&t2id=1&sm=1")
            .tuning;
        assert_eq!(t.frequency, 191_500_000);
        assert_eq!(t.bandwidth_hz, Some(1_712_000));
        assert_eq!(t.plp, Some(3));
        assert_eq!(t.stream_id(), Some(3));
        assert_eq!(t.t2_system_id, Some(1));
        assert_eq!(t.siso_miso, Some(SisoMiso::Miso));
        // plp/t2id/sm are T2 only.
        let t = spec("freq=538&msys=dvbt&plp=3&t2id=1&sm=1").tuning;
        assert_eq!((t.plp, t.t2_system_id, t.siso_miso), (None, None, None));
    }

    #[test]
    fn checklist_1_unknown_attribute_ignored() {
        let with = spec(&format!("{SAT_Q}&foo=1&x_pmt=100&tvhweight=5&mcast=1"));
        assert_eq!(with, spec(SAT_Q));
    }

    #[test]
    fn checklist_2_order_independent() {
        let shuffled = "?pids=0,17,18,5100&fec=23&sr=22000&plts=on&mtype=8psk&msys=dvbs2&ro=0.35&pol=h&freq=11494&src=1";
        assert_eq!(spec(shuffled), spec(SAT_Q));
        assert_eq!(
            spec(shuffled).canonical_query(),
            spec(SAT_Q).canonical_query()
        );
    }

    #[test]
    fn checklist_3_freq_integer_and_fixed_point() {
        let base = "src=1&pol=h&msys=dvbs2&sr=22000";
        assert_eq!(
            spec(&format!("freq=11494&{base}")).tuning.frequency,
            11_494_000
        );
        assert_eq!(
            spec(&format!("freq=11494.5&{base}")).tuning.frequency,
            11_494_500
        );
        assert_eq!(
            spec(&format!("freq=11361.75&{base}")).tuning.frequency,
            11_361_750
        );
        assert_eq!(
            spec(&format!("freq=12603.5&{base}")).tuning.lnb_band(),
            Some(LnbBand::High)
        );
        // Satellite 22402 MHz is out of range.
        assert_eq!(
            err(&format!("freq=22402&{base}")).body().as_deref(),
            Some("Out-of-Range: freq")
        );
    }

    #[test]
    fn checklist_4_values_case_insensitive() {
        let upper = "?src=1&freq=11494&pol=H&ro=0.35&msys=DVBS2&mtype=8PSK&plts=ON&sr=22000&fec=23&pids=0,17,18,5100";
        assert_eq!(spec(upper), spec(SAT_Q));
        assert_eq!(
            spec("freq=474&msys=dvbc&mtype=QAM256&sr=6900")
                .tuning
                .modulation,
            Some(Modulation::Qam256)
        );
        // Names stay case-sensitive: an upper-case name is an unknown attribute.
        assert_eq!(
            err("FREQ=11494&pol=h&msys=dvbs2&sr=22000")
                .body()
                .as_deref(),
            Some("Out-of-Range: freq")
        );
    }

    #[test]
    fn checklist_5_empty_pairs_skipped() {
        let q = "?src=1&&freq=11494&pol=h&&ro=0.35&msys=dvbs2&mtype=8psk&plts=on&sr=22000&fec=23&pids=0,17,18,5100&";
        assert_eq!(spec(q), spec(SAT_Q));
        // An empty value counts as absent.
        assert_eq!(
            spec("src=1&fe=&freq=11494&pol=h&msys=dvbs2&sr=22000")
                .tuning
                .fe,
            None
        );
    }

    #[test]
    fn checklist_6_default_src() {
        let q = SAT_Q.replace("src=1&", "");
        assert_eq!(spec(&q).tuning.src, 1);
        assert_eq!(spec(&q).tuning, spec(SAT_Q).tuning);
        assert_eq!(spec(&q).canonical_query(), spec(SAT_Q).canonical_query());
    }

    #[test]
    fn checklist_7_bad_pid_entries() {
        for bad in ["0,8192", "0,-1", "0,abc", "0,17x", "all,0", "99999999999"] {
            let e =
                err(&format!("{SAT_Q}&foo=1").replace("pids=0,17,18,5100", &format!("pids={bad}")));
            assert_eq!(e.status(), 403, "{bad}");
            assert_eq!(e.body().as_deref(), Some("Out-of-Range: pids"), "{bad}");
        }
        let q = parse_query("addpids=8192");
        assert_eq!(
            q.map_err(|e| e.body()),
            Err(Some("Out-of-Range: addpids".to_owned()))
        );
    }

    #[test]
    fn checklist_8_values_outside_allowed_set() {
        for (from, to, attr) in [
            ("pol=h", "pol=x", "pol"),
            ("fec=23", "fec=99", "fec"),
            ("ro=0.35", "ro=0.5", "ro"),
        ] {
            let e = err(&SAT_Q.replace(from, to));
            assert_eq!(e.status(), 403);
            assert_eq!(e.reason_phrase(), "Forbidden");
            assert_eq!(e.body(), Some(format!("Out-of-Range: {attr}")));
        }
        // Several at once, in canonical order.
        let e = err(&SAT_Q.replace("fec=23", "fec=99").replace("pol=h", "pol=x"));
        assert_eq!(e.body().as_deref(), Some("Out-of-Range: pol fec"));
        // Values that exist but do not fit the delivery system.
        assert_eq!(
            err(&TER_Q.replace("64qam", "8psk")).body().as_deref(),
            Some("Out-of-Range: mtype")
        );
        assert_eq!(
            err(&TER_Q.replace("fec=23", "fec=910")).body().as_deref(),
            Some("Out-of-Range: fec")
        );
        assert_eq!(
            err(&TER_Q.replace("bw=8", "bw=9")).body().as_deref(),
            Some("Out-of-Range: bw")
        );
        assert_eq!(
            err("freq=11494&pol=h&msys=dvbs&mtype=8psk&sr=22000")
                .body()
                .as_deref(),
            Some("Out-of-Range: mtype")
        );
        if let QueryError::OutOfRange(v) = err(&SAT_Q.replace("pol=h", "pol=x")) {
            assert_eq!(
                v,
                vec![Violation {
                    attr: Attr::Pol,
                    reason: Reason::Malformed
                }]
            );
        } else {
            panic!("expected 403");
        }
    }

    #[test]
    fn checklist_9_msys_without_frontend() {
        let caps = Capabilities {
            systems: vec![DeliverySystem::DvbS, DeliverySystem::DvbS2],
            frontends: 2,
            satellite_sources: 4,
        };
        assert_eq!(spec(SAT_Q).tuning.check_capabilities(&caps), Ok(()));
        let e = spec(TER_Q)
            .tuning
            .check_capabilities(&caps)
            .expect_err("no DVB-T frontend");
        assert_eq!(e.status(), 403);
        assert_eq!(e.body().as_deref(), Some("Out-of-Range: msys"));
        let e = spec(&SAT_Q.replace("src=1", "src=5"))
            .tuning
            .check_capabilities(&caps)
            .expect_err("src 5");
        assert_eq!(e.body().as_deref(), Some("Out-of-Range: src"));
    }

    #[test]
    fn checklist_10_malformed_path() {
        let e = parse_target("rtsp://10.0.0.5/strem=1").expect_err("bad path");
        assert_eq!(e.status(), 400);
        assert_eq!(e.reason_phrase(), "Bad Request");
        assert_eq!(e.body().as_deref(), Some("Check-Syntax: strem"));
        assert_eq!(
            parse_target("/stream=abc").map_err(|e| e.status()),
            Err(400)
        );
        assert_eq!(
            parse_target("/stream=70000").map_err(|e| e.status()),
            Err(400)
        );
        assert_eq!(parse_target("/foo/bar").map_err(|e| e.status()), Err(400));
    }

    #[test]
    fn checklist_11_error_body_headers() {
        // Byte-exact example of §2.9.
        let e = err("?src=1&freq=11494&pol=h&msys=dvbs2&sr=fast&fec=99");
        let expected = "RTSP/1.0 403 Forbidden\r\nCSeq: 12\r\nContent-Type: text/parameters\r\nContent-Length: 20\r\n\r\nOut-of-Range: sr fec";
        assert_eq!(e.to_rtsp_response(Some(12)), expected);
        let body = e.body().expect("403 has a body");
        assert_eq!(body.len(), 20);
        // 400 and 503 too.
        let e = parse_query("src=1&freq").expect_err("missing =");
        let r = e.to_rtsp_response(Some(3));
        assert!(r.starts_with(
            "RTSP/1.0 400 Bad Request\r\nCSeq: 3\r\nContent-Type: text/parameters\r\n"
        ));
        assert!(
            r.ends_with("Content-Length: 18\r\n\r\nCheck-Syntax: freq"),
            "{r}"
        );
        let e = QueryError::NoMore(vec![Resource::Frontends]);
        assert_eq!(
            e.to_rtsp_response(None),
            "RTSP/1.0 503 Service Unavailable\r\nContent-Type: text/parameters\r\nContent-Length: 18\r\n\r\nNo-More: frontends"
        );
        let e = QueryError::UriTooLong { len: 1, max: 0 };
        assert_eq!(
            e.to_rtsp_response(Some(1)),
            "RTSP/1.0 414 Request-URI Too Long\r\nCSeq: 1\r\n\r\n"
        );
    }

    #[test]
    fn checklist_12_pids_replace() {
        let s = spec(SAT_Q);
        let (s2, change) = s
            .apply(&parse_query("pids=0,100").expect("q"), DEFAULT_MAX_PIDS)
            .expect("apply");
        assert_eq!(s2.pids, pids(&[0, 100]));
        assert_eq!(change, Change::Pids);
        assert_eq!(s2.tuning, s.tuning);
    }

    #[test]
    fn checklist_13_addpids_delpids() {
        let s = spec(SAT_Q);
        let (s2, c) = s
            .apply(&parse_query("addpids=5101").expect("q"), DEFAULT_MAX_PIDS)
            .expect("add");
        assert_eq!(
            (s2.pids.clone(), c),
            (pids(&[0, 17, 18, 5100, 5101]), Change::Pids)
        );
        let (s3, c) = s2
            .apply(&parse_query("delpids=17").expect("q"), DEFAULT_MAX_PIDS)
            .expect("del");
        assert_eq!(
            (s3.pids.clone(), c),
            (pids(&[0, 18, 5100, 5101]), Change::Pids)
        );
        // Deleting a PID that is not there changes nothing.
        let (_, c) = s3
            .apply(&parse_query("delpids=999").expect("q"), DEFAULT_MAX_PIDS)
            .expect("del");
        assert_eq!(c, Change::Unchanged);
    }

    #[test]
    fn checklist_14_addpids_and_delpids_together() {
        let s = spec(SAT_Q);
        let (s2, c) = s
            .apply(
                &parse_query("delpids=17,18&addpids=200,201").expect("q"),
                DEFAULT_MAX_PIDS,
            )
            .expect("apply");
        assert_eq!(s2.pids, pids(&[0, 200, 201, 5100]));
        assert_eq!(c, Change::Pids);
        // pids with add/del is tolerated, in TVH order: pids, then delpids, then addpids.
        let (s3, _) = s
            .apply(
                &parse_query("addpids=7&pids=1,2,7&delpids=2,7").expect("q"),
                DEFAULT_MAX_PIDS,
            )
            .expect("apply");
        assert_eq!(s3.pids, pids(&[1, 7]));
    }

    #[test]
    fn checklist_15_pids_all() {
        let s = spec(&SAT_Q.replace("pids=0,17,18,5100", "pids=all"));
        assert_eq!(s.pids, PidSet::All);
        assert!(s.pids.contains(0) && s.pids.contains(8191) && s.pids.contains(4242));
        assert!(!s.pids.contains(8192));
        assert_eq!(s.pids.to_string(), "all");
        assert_eq!(s.pids.to_dvbsrc_pids().as_deref(), Some("8192"));
        let mut all = PidSet::All;
        all.add(&[5].into_iter().collect());
        all.remove(&[5].into_iter().collect());
        assert_eq!(all, PidSet::All);
    }

    #[test]
    fn checklist_16_pids_none() {
        let s = spec(&SAT_Q.replace("pids=0,17,18,5100", "pids=none"));
        assert_eq!(s.pids, PidSet::None);
        assert!(!s.pids.contains(0));
        assert_eq!(s.pids.to_string(), "none");
        assert_eq!(s.pids.to_dvbsrc_pids(), None);
        // No pids attribute at all: no filters either (§2.8).
        assert_eq!(
            spec(&SAT_Q.replace("&pids=0,17,18,5100", "")).pids,
            PidSet::None
        );
        // Removing the last PID gives none.
        let (s2, _) = spec("freq=474&msys=dvbc&sr=6900&pids=5")
            .apply(&parse_query("delpids=5").expect("q"), DEFAULT_MAX_PIDS)
            .expect("apply");
        assert_eq!(s2.pids, PidSet::None);
        assert_eq!(PidSet::parse(""), Ok(PidSet::None));
    }

    #[test]
    fn checklist_50_fe_beyond_frontends() {
        let caps = Capabilities {
            systems: vec![DeliverySystem::DvbS2],
            frontends: 4,
            satellite_sources: 4,
        };
        assert_eq!(
            spec(&format!("{SAT_Q}&fe=4"))
                .tuning
                .check_capabilities(&caps),
            Ok(())
        );
        let e = spec(&format!("{SAT_Q}&fe=9"))
            .tuning
            .check_capabilities(&caps)
            .expect_err("fe 9");
        assert_eq!(e.body().as_deref(), Some("Out-of-Range: fe"));
        assert_eq!(
            err(&format!("{SAT_Q}&fe=0")).body().as_deref(),
            Some("Out-of-Range: fe")
        );
    }

    #[test]
    fn defaults_of_section_2_7() {
        // Real-world list without ro, plts, mtype, fec.
        let t = spec("?src=1&freq=11494&pol=h&msys=dvbs2&sr=22000&pids=0").tuning;
        assert_eq!(t.modulation, Some(Modulation::Psk8));
        assert_eq!((t.roll_off, t.pilots, t.code_rate), (None, None, None));
        let t = spec("?freq=12603&pol=h&msys=dvbs&sr=22000&ro=0.25&plts=on").tuning;
        assert_eq!(t.modulation, Some(Modulation::Qpsk));
        assert_eq!(
            (t.roll_off, t.pilots),
            (None, None),
            "ro/plts ignored for DVB-S"
        );
        let t = spec("?freq=538&msys=dvbt").tuning;
        assert_eq!(
            (
                t.modulation,
                t.bandwidth_hz,
                t.transmission_mode,
                t.guard_interval
            ),
            (None, None, None, None)
        );
        // Explicit auto differs from the default.
        assert_eq!(
            spec("?freq=11494&pol=h&msys=dvbs2&sr=22000&mtype=auto")
                .tuning
                .modulation,
            None
        );
        // Required values.
        assert_eq!(
            err("?freq=11494&msys=dvbs2&sr=22000").body().as_deref(),
            Some("Out-of-Range: pol")
        );
        assert_eq!(
            err("?freq=11494&pol=h&msys=dvbs2").body().as_deref(),
            Some("Out-of-Range: sr")
        );
        assert_eq!(
            err("?freq=11494&pol=h&sr=22000").body().as_deref(),
            Some("Out-of-Range: msys")
        );
        assert_eq!(
            err("?pids=0").body().as_deref(),
            Some("Out-of-Range: freq msys")
        );
        assert_eq!(
            err("?freq=474&msys=dvbc").body().as_deref(),
            Some("Out-of-Range: sr")
        );
        if let QueryError::OutOfRange(v) = err("?freq=11494&msys=dvbs2") {
            assert_eq!(
                v,
                vec![
                    Violation {
                        attr: Attr::Pol,
                        reason: Reason::Missing
                    },
                    Violation {
                        attr: Attr::Sr,
                        reason: Reason::Missing
                    }
                ]
            );
        } else {
            panic!("expected 403");
        }
    }

    #[test]
    fn extensions_of_section_2_6() {
        let t = spec("freq=11494&pol=v&msys=dvbs2&sr=27500&mtype=16apsk&fec=auto&plts=auto&ro=0.15&isi=5&plsm=gold&plsc=131070")
            .tuning;
        assert_eq!(t.modulation, Some(Modulation::Apsk16));
        assert_eq!(t.roll_off, Some(RollOff::R015));
        assert_eq!(t.roll_off.and_then(RollOff::dvbsrc_nick), None);
        assert_eq!((t.code_rate, t.pilots), (None, None));
        assert_eq!(
            (t.input_stream_id, t.pls_mode, t.pls_code),
            (Some(5), Some(PlsMode::Gold), Some(131_070))
        );
        assert_eq!(
            spec("freq=11494&pol=v&msys=dvbs2&sr=27500&plp=7")
                .tuning
                .stream_id(),
            Some(7)
        );
        assert_eq!(
            spec("freq=11494&pol=v&msys=dvbs2&sr=27500&fec=920")
                .tuning
                .code_rate,
            Some(CodeRate::R9_20)
        );
        assert_eq!(
            spec("freq=11494&pol=v&msys=dvbs2&sr=27500&ro=auto")
                .tuning
                .roll_off,
            None
        );
        for (q, m) in [
            ("atsc&mtype=8vsb", DeliverySystem::Atsc),
            ("isdbt", DeliverySystem::IsdbT),
            ("dvbcb&mtype=256qam", DeliverySystem::DvbCAnnexB),
        ] {
            let t = spec(&format!("freq=575&msys={q}")).tuning;
            assert_eq!(t.delivery_system, m);
            assert_eq!(t.frequency, 575_000_000);
        }
        assert_eq!(
            spec("freq=538&msys=dvbt&bw=8000000").tuning.bandwidth_hz,
            Some(8_000_000)
        );
        assert_eq!(
            spec("freq=538&msys=dvbt&bw=auto&tmode=auto&gi=auto&fec=auto&mtype=auto")
                .tuning
                .bandwidth_hz,
            None
        );
        assert_eq!(
            spec("freq=11494&pol=l&msys=dvbs2&sr=22000")
                .tuning
                .polarisation
                .map(Polarisation::dvbsrc_polarity),
            Some("H")
        );
    }

    #[test]
    fn syntax_errors_and_limits() {
        let e = parse_query("src=1&src=2").expect_err("duplicate");
        assert_eq!(
            (e.status(), e.body().as_deref()),
            (400, Some("Check-Syntax: src"))
        );
        // Duplicated unknown attributes are just ignored.
        assert!(parse_query("foo=1&foo=2").is_ok());
        let e = parse_query("pids=0%ZZ").expect_err("bad escape");
        assert_eq!(e.status(), 400);
        let long = format!("pids={}", "1,".repeat(MAX_QUERY_LEN));
        assert_eq!(parse_query(&long).map_err(|e| e.status()), Err(414));
        // Control characters are not echoed in bodies.
        let e = parse_query("a\r\nb").expect_err("missing =");
        assert_eq!(e.body().as_deref(), Some("Check-Syntax: a??b"));
        // Percent-encoded commas.
        assert_eq!(
            parse_query("pids=0%2C17").expect("q").pids,
            Some(pids(&[0, 17]))
        );
    }

    #[test]
    fn addpids_only_on_running_stream() {
        let q = parse_query(&format!("{SAT_Q}&addpids=5").replace("&pids=0,17,18,5100", ""))
            .expect("q");
        let e = StreamSpec::create(&q, DEFAULT_MAX_PIDS).expect_err("addpids on new stream");
        assert_eq!(
            (e.status(), e.body().as_deref()),
            (400, Some("Check-Syntax: addpids"))
        );
        let q = parse_query(&format!("{SAT_Q}&delpids=5")).expect("q");
        assert_eq!(
            StreamSpec::create(&q, DEFAULT_MAX_PIDS).map_err(|e| e.body()),
            Err(Some("Check-Syntax: delpids".to_owned()))
        );
    }

    #[test]
    fn pid_limit_is_503() {
        let list: Vec<String> = (0..129).map(|p| p.to_string()).collect();
        let q = SAT_Q.replace("0,17,18,5100", &list.join(","));
        let e = err(&q);
        assert_eq!(
            (e.status(), e.body().as_deref()),
            (503, Some("No-More: pids"))
        );
        let s = spec(SAT_Q);
        let e = s
            .apply(&parse_query("addpids=1,2,3").expect("q"), 5)
            .expect_err("limit");
        assert_eq!(e, QueryError::NoMore(vec![Resource::Pids]));
        // `all` needs a single filter.
        assert!(StreamSpec::create(
            &parse_query(&SAT_Q.replace("0,17,18,5100", "all")).expect("q"),
            1
        )
        .is_ok());
    }

    #[test]
    fn apply_retune_and_merge() {
        let s = spec(SAT_Q);
        // Empty query (in-session SETUP without query) leaves everything unchanged.
        let (same, c) = s.apply(&Query::default(), DEFAULT_MAX_PIDS).expect("apply");
        assert_eq!((same.clone(), c), (s.clone(), Change::Unchanged));
        // A query with freq starts from scratch: fec, ro, plts from before are gone.
        let (s2, c) = s
            .apply(
                &parse_query("src=1&freq=12603&pol=h&msys=dvbs&sr=22000&pids=0,6300").expect("q"),
                DEFAULT_MAX_PIDS,
            )
            .expect("retune");
        assert_eq!(c, Change::Retune);
        assert_eq!(s2.tuning.code_rate, None);
        assert_eq!(s2.tuning.modulation, Some(Modulation::Qpsk));
        assert_eq!(s2.pids, pids(&[0, 6300]));
        assert_eq!(s2.tuning.lnb_band(), Some(LnbBand::High));
        // Without freq the query merges: only pol changes.
        let (s3, c) = s
            .apply(&parse_query("pol=v").expect("q"), DEFAULT_MAX_PIDS)
            .expect("merge");
        assert_eq!(c, Change::Retune);
        assert_eq!(s3.tuning.polarisation, Some(Polarisation::Vertical));
        assert_eq!(s3.tuning.code_rate, Some(CodeRate::R2_3));
        assert_eq!(s3.pids, s.pids);
        // Repeating the same tuning with other PIDs is a PID change only.
        let (_, c) = s
            .apply(
                &parse_query(&SAT_Q.replace("5100", "5200")).expect("q"),
                DEFAULT_MAX_PIDS,
            )
            .expect("same");
        assert_eq!(c, Change::Pids);
        // A bad merged result is refused and the caller keeps the old spec.
        let e = s
            .apply(&parse_query("msys=dvbt").expect("q"), DEFAULT_MAX_PIDS)
            .expect_err("sat freq as dvbt");
        assert_eq!(e.status(), 403);
    }

    #[test]
    fn tuning_key_equality() {
        use std::collections::HashSet;
        let a = spec(SAT_Q).key();
        let b = spec("freq=11494.2&src=1&pol=h&msys=dvbs2&sr=22000&fec=34&pids=1").key();
        assert_eq!(
            a, b,
            "fec and pids are not part of the key; 200 kHz off is the same transponder"
        );
        let c = spec("freq=11494.2&src=1&pol=h&msys=dvbs&sr=22000&mtype=qpsk").key();
        assert_ne!(a, c, "different mtype");
        let d = spec("freq=11495.4&src=1&pol=h&msys=dvbs2&sr=22000").key();
        assert_ne!(a, d);
        assert!(a.same_transponder(&d));
        assert!(!a.same_transponder(&spec("freq=11497&src=1&pol=h&msys=dvbs2&sr=22000").key()));
        assert_ne!(a, spec(&SAT_Q.replace("pol=h", "pol=v")).key());
        assert_ne!(a, spec(&SAT_Q.replace("src=1", "src=2")).key());
        let set: HashSet<TuningKey> = [a, b, d].into_iter().collect();
        assert_eq!(set.len(), 2);
        assert_eq!(
            a.to_string(),
            "sat:src=1:freq=11494:pol=h:sr=22000:mtype=8psk:band=low"
        );
        assert_eq!(
            spec(TER_Q).key().to_string(),
            "ter:src=1:freq=538:mtype=64qam"
        );
        assert_eq!(spec(C2_Q).key().to_string(), "cab:src=1:freq=651:sid=0");
    }

    #[test]
    fn canonical_query_round_trip() {
        assert_eq!(
            spec(SAT_Q).canonical_query(),
            "src=1&freq=11494&pol=h&ro=0.35&msys=dvbs2&mtype=8psk&plts=on&sr=22000&fec=23&pids=0,17,18,5100"
        );
        assert_eq!(
            spec(TER_Q).canonical_query(),
            "src=1&freq=538&msys=dvbt&mtype=64qam&fec=23&bw=8&tmode=8k&gi=14&pids=0,16,17,18"
        );
        for q in [
            SAT_Q,
            TER_Q,
            CAB_Q,
            C2_Q,
            "freq=11361.75&pol=r&msys=dvbs2&sr=27500&mtype=auto&isi=3&plsm=root&plsc=1&fe=2&src=3",
            "freq=191.5&bw=1.712&msys=dvbt2&tmode=32k&mtype=256qam&gi=1128&fec=35&plp=3&t2id=1&sm=0&pids=all",
            "freq=12603&pol=h&msys=dvbs&sr=22000&fec=56",
        ] {
            let s = spec(q);
            let again = spec(&s.canonical_query());
            assert_eq!(again.tuning, s.tuning, "{q}");
            assert_eq!(again.pids, s.pids, "{q}");
            assert_eq!(again.canonical_query(), s.canonical_query(), "{q}");
        }
    }

    #[test]
    fn targets() {
        let t = parse_target("rtsp://10.0.0.5:554/stream=3?addpids=18").expect("target");
        assert_eq!(t.stream, Some(3));
        assert!(t.has_query);
        assert_eq!(t.query.addpids, Some([18].into_iter().collect()));
        let t = parse_target(&format!("rtsp://10.0.0.5:554/{SAT_Q}")).expect("target");
        assert_eq!((t.stream, t.has_query), (None, true));
        assert_eq!(
            spec(SAT_Q).tuning,
            t.query.tuning.resolve().expect("resolve")
        );
        for root in ["*", "/", "rtsp://10.0.0.5", "rtsp://10.0.0.5:554/", ""] {
            let t = parse_target(root).expect(root);
            assert_eq!((t.stream, t.has_query), (None, false), "{root}");
        }
        assert_eq!(
            parse_target("/stream=4/").expect("trailing slash").stream,
            Some(4)
        );
        let t = parse_target("/stream=5?foo=http://x/y&pids=1").expect("scheme-like text in query");
        assert_eq!((t.stream, t.query.pids), (Some(5), Some(pids(&[1]))));
        assert_eq!(
            parse_target("http://10.0.0.5:8080/?freq=538&msys=dvbt")
                .expect("http")
                .stream,
            None
        );
    }

    #[test]
    fn status_string_spec_examples() {
        // §4.2 example, DVB-S2.
        let s = spec("src=1&freq=11494&pol=h&ro=0.35&msys=dvbs2&mtype=8psk&plts=on&sr=22000&fec=23&pids=0,17,18,5100,5101");
        assert_eq!(
            status_string(2, locked(196, 13), Some(&s.tuning), &s.pids),
            "ver=1.0;src=1;tuner=2,196,1,13,11494.00,h,dvbs2,8psk,on,0.35,22000,23;pids=0,17,18,5100,5101"
        );
        // §4.2 example, DVB-T set up but idle.
        let s = spec(&TER_Q.replace("&pids=0,16,17,18", ""));
        assert_eq!(
            status_string(5, SignalStatus::default(), Some(&s.tuning), &s.pids),
            "ver=1.1;tuner=5,0,0,0,538.00,8,dvbt,8k,64qam,14,23,,,;pids=none"
        );
        // §4.3 DVB-T example.
        let s = spec(TER_Q);
        assert_eq!(
            status_string(5, locked(180, 11), Some(&s.tuning), &s.pids),
            "ver=1.1;tuner=5,180,1,11,538.00,8,dvbt,8k,64qam,14,23,,,;pids=0,16,17,18"
        );
        // §4.3 DVB-S example (our two-decimal frequency).
        let s = spec("src=1&freq=10744&pol=h&msys=dvbs&sr=22000&fec=56&pids=0,16,17");
        assert_eq!(
            status_string(1, locked(210, 9), Some(&s.tuning), &s.pids),
            "ver=1.0;src=1;tuner=1,210,1,9,10744.00,h,dvbs,,,,22000,56;pids=0,16,17"
        );
        // §4.3 DVB-S2 example.
        let s = spec("src=2&freq=11836&pol=h&ro=0.20&msys=dvbs2&mtype=8psk&plts=on&sr=27500&fec=910&pids=all");
        assert_eq!(
            status_string(3, locked(188, 11), Some(&s.tuning), &s.pids),
            "ver=1.0;src=2;tuner=3,188,1,11,11836.00,h,dvbs2,8psk,on,0.20,27500,910;pids=all"
        );
        // §4.3 DVB-C example, bw given in the query.
        let s = spec(&CAB_Q.replace("msys=dvbc", "bw=8&msys=dvbc"));
        assert_eq!(
            status_string(7, locked(150, 12), Some(&s.tuning), &s.pids),
            "ver=1.2;tuner=7,150,1,12,474.00,8,dvbc,256qam,6900,,,,0;pids=0,16,17"
        );
        // §4.3 DVB-T2 tail.
        let s = spec(
            "freq=538&bw=8&msys=dvbt2&tmode=32k&mtype=256qam&gi=1128&fec=35&plp=0&t2id=1&sm=0",
        );
        assert!(status_string(1, locked(1, 1), Some(&s.tuning), &s.pids)
            .ends_with(",dvbt2,32k,256qam,1128,35,0,1,0;pids=none"));
        // DVB-C2.
        let s = spec(C2_Q);
        assert_eq!(
            status_string(8, locked(100, 10), Some(&s.tuning), &s.pids),
            "ver=1.2;tuner=8,100,1,10,650.50,8,dvbc2,,,0,0,0,;pids=0"
        );
        // No tuning known.
        assert_eq!(
            status_string(1, SignalStatus::default(), None, &PidSet::None),
            "ver=1.0;src=1;tuner=1,0,0,0,,,,,,,,;pids=none"
        );
    }

    fn tuner_fields(s: &str) -> Vec<String> {
        let item = s
            .split(';')
            .find_map(|i| i.strip_prefix("tuner="))
            .expect("tuner item");
        item.split(',').map(str::to_owned).collect()
    }

    #[test]
    fn checklist_81_satellite_status_layout() {
        for q in [
            SAT_Q,
            "freq=10744&pol=v&msys=dvbs&sr=22000",
            "freq=11494&pol=h&msys=dvbs2&sr=22000&mtype=auto",
        ] {
            let s = spec(q);
            let st = status_string(1, locked(1, 1), Some(&s.tuning), &s.pids);
            assert!(
                st.starts_with(&format!("ver=1.0;src={};tuner=", s.tuning.src)),
                "{st}"
            );
            assert_eq!(tuner_fields(&st).len(), 12, "{st}");
        }
        assert_eq!(
            tuner_fields(&status_string(1, locked(1, 1), None, &PidSet::None)).len(),
            12
        );
    }

    #[test]
    fn checklist_82_terrestrial_status_layout() {
        for q in [TER_Q, "freq=538&msys=dvbt2&plp=1", "freq=575&msys=atsc"] {
            let s = spec(q);
            let st = status_string(1, locked(1, 1), Some(&s.tuning), &s.pids);
            assert!(st.starts_with("ver=1.1;tuner="), "{st}");
            assert_eq!(tuner_fields(&st).len(), 14, "{st}");
        }
    }

    #[test]
    fn checklist_83_cable_status_layout() {
        for q in [CAB_Q, C2_Q, "freq=575&msys=dvbcb"] {
            let s = spec(q);
            let st = status_string(1, locked(1, 1), Some(&s.tuning), &s.pids);
            assert!(st.starts_with("ver=1.2;tuner="), "{st}");
            assert_eq!(tuner_fields(&st).len(), 13, "{st}");
        }
    }

    #[test]
    fn checklist_84_signal_ranges() {
        let s = spec(SAT_Q);
        let st = status_string(
            1,
            SignalStatus {
                level: 255,
                lock: true,
                quality: 200,
            },
            Some(&s.tuning),
            &s.pids,
        );
        assert_eq!(&tuner_fields(&st)[1..4], ["255", "1", "15"]);
        let st = status_string(
            1,
            SignalStatus {
                level: 90,
                lock: false,
                quality: 12,
            },
            Some(&s.tuning),
            &s.pids,
        );
        assert_eq!(
            &tuner_fields(&st)[1..4],
            ["90", "0", "0"],
            "no lock → lock 0, quality 0"
        );
        // §4.4 scales.
        assert_eq!(level_from_dbm_milli(-65_000), 32);
        assert_eq!(level_from_dbm_milli(-25_000), 224);
        assert_eq!(level_from_dbm_milli(-100_000), 0);
        assert_eq!(level_from_dbm_milli(0), 255);
        assert_eq!(level_from_dbm_milli(i64::MIN), 0);
        assert_eq!(level_from_dbm_milli(i64::MAX), 255);
        assert_eq!(level_from_relative(0), 0);
        assert_eq!(level_from_relative(65_535), 240);
        assert_eq!(level_from_relative(32_768), 120);
        assert_eq!(quality_from_relative(0), 0);
        assert_eq!(quality_from_relative(65_535), 15);
        assert_eq!(quality_from_snr_milli_db(13_500), 6);
        assert_eq!(quality_from_snr_milli_db(-3_000), 0);
        assert_eq!(quality_from_snr_milli_db(90_000), 15);
    }

    #[test]
    fn checklist_86_pids_item() {
        let mut s = spec(SAT_Q);
        let st = |s: &StreamSpec| status_string(1, locked(1, 1), Some(&s.tuning), &s.pids);
        assert!(st(&s).ends_with(";pids=0,17,18,5100"));
        s.pids = PidSet::All;
        assert!(st(&s).ends_with(";pids=all"));
        s.pids = PidSet::None;
        assert!(st(&s).ends_with(";pids=none"));
        s.pids = PidSet::Set(BTreeSet::new());
        assert!(st(&s).ends_with(";pids=none"));
    }

    #[test]
    fn checklist_97_rtcp_app_layout() {
        // Worked example of §6.1.
        let status = "ver=1.0;src=1;tuner=1,200,1,12,11494,h,dvbs2,8psk,on,0.35,22000,23;pids=0,17,18,5100,5101";
        let pkt = encode_rtcp_app_ses1(0x1A2B_3C4D, status);
        let mut expected = vec![
            0x80, 0xcc, 0x00, 0x1a, 0x1a, 0x2b, 0x3c, 0x4d, 0x53, 0x45, 0x53, 0x31, 0x00, 0x00,
            0x00, 0x59,
        ];
        expected.extend_from_slice(status.as_bytes());
        expected.extend_from_slice(&[0, 0, 0]);
        assert_eq!(pkt.len(), 108);
        assert_eq!(pkt, expected);
        // Already aligned: no padding.
        let pkt = encode_rtcp_app_ses1(1, "abcd");
        assert_eq!(pkt.len(), 20);
        assert_eq!(&pkt[2..4], &[0, 4]);
        assert_eq!(&pkt[14..16], &[0, 4]);
        for n in 0..9 {
            let s = "x".repeat(n);
            let p = encode_rtcp_app_ses1(7, &s);
            assert_eq!(p.len() % 4, 0);
            assert_eq!(
                usize::from(u16::from_be_bytes([p[2], p[3]])),
                p.len() / 4 - 1
            );
            assert_eq!(decode_rtcp_app_ses1(&p), Some((7, s)));
        }
        // Oversized strings are cut, never panic.
        let huge = "é".repeat(40_000);
        let p = encode_rtcp_app_ses1(1, &huge);
        let (_, back) = decode_rtcp_app_ses1(&p).expect("decodes");
        assert!(back.len() <= MAX_APP_STRING && huge.starts_with(&back));
    }

    #[test]
    fn checklist_98_app_string_is_fmtp_string() {
        let s = spec(SAT_Q);
        let fmtp = status_string(2, locked(196, 13), Some(&s.tuning), &s.pids);
        let pkt = encode_rtcp_app_ses1(42, &fmtp);
        assert_eq!(decode_rtcp_app_ses1(&pkt), Some((42, fmtp)));
    }

    #[test]
    fn rtcp_app_decode_rejects_garbage() {
        assert_eq!(decode_rtcp_app_ses1(&[]), None);
        assert_eq!(decode_rtcp_app_ses1(&[0x80, 0xcc, 0, 0]), None);
        let mut p = encode_rtcp_app_ses1(1, "hello");
        p[8] = b'X';
        assert_eq!(decode_rtcp_app_ses1(&p), None);
        let mut p = encode_rtcp_app_ses1(1, "hello");
        p[15] = 200;
        assert_eq!(decode_rtcp_app_ses1(&p), None);
        let p = encode_rtcp_app_ses1(1, "hello");
        assert_eq!(decode_rtcp_app_ses1(&p[..p.len() - 1]), None);
    }

    #[test]
    fn m3u_spec_example() {
        let list = m3u_playlist([
            (1, "Example One HD", "rtsp://10.0.0.5/?src=1&freq=11494&pol=h&msys=dvbs2&mtype=8psk&sr=22000&fec=23&pids=0,5100,5101,5102"),
            (2, "Example Radio", "rtsp://10.0.0.5/?src=1&freq=12603&pol=h&msys=dvbs&mtype=qpsk&sr=22000&fec=56&pids=0,6300"),
            (3, "Multicast Channel", "rtp://239.3.0.12:5004"),
        ]);
        let expected = "#EXTM3U\r\n\
#EXTINF:0,1. Example One HD\r\n\
rtsp://10.0.0.5/?src=1&freq=11494&pol=h&msys=dvbs2&mtype=8psk&sr=22000&fec=23&pids=0,5100,5101,5102\r\n\
#EXTINF:0,2. Example Radio\r\n\
rtsp://10.0.0.5/?src=1&freq=12603&pol=h&msys=dvbs&mtype=qpsk&sr=22000&fec=56&pids=0,6300\r\n\
#EXTINF:0,3. Multicast Channel\r\n\
rtp://239.3.0.12:5004\r\n";
        assert_eq!(list, expected);
        assert_eq!(
            m3u_playlist([(4, "Bad\r\nName", "u")]),
            "#EXTM3U\r\n#EXTINF:0,4. Bad  Name\r\nu\r\n"
        );
        assert_eq!(to_latin1("Télé 5 ☺"), b"T\xe9l\xe9 5 ?".to_vec());
    }

    /// Deterministic pseudo-random inputs: nothing may panic.
    #[test]
    fn never_panics_on_garbage() {
        let alphabet: Vec<char> = "=&?%/,.0123456789abcdefpidsrcfreqmsysdvbs2-:*all none\u{e9}\r\n"
            .chars()
            .collect();
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        for _ in 0..4000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let len = (x % 40) as usize;
            let mut s = String::new();
            let mut y = x;
            for _ in 0..len {
                y = y.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                s.push(alphabet[(y >> 33) as usize % alphabet.len()]);
            }
            let _ = parse_target(&s);
            if let Ok(q) = parse_query(&s) {
                if let Ok(sp) = StreamSpec::create(&q, DEFAULT_MAX_PIDS) {
                    let _ = status_string(1, SignalStatus::default(), Some(&sp.tuning), &sp.pids);
                    let _ = sp.apply(&q, DEFAULT_MAX_PIDS);
                }
            }
            let _ = decode_rtcp_app_ses1(s.as_bytes());
        }
        for i in 0..=SAT_Q.len() {
            if let Some(prefix) = SAT_Q.get(..i) {
                let _ = parse_target(prefix).map(|t| t.query.tuning.resolve());
            }
        }
        let _ = parse_query("freq=99999999999999999999&sr=99999999999&bw=999999999999.999&src=300");
    }
    #[test]
    fn transport_unicast_multicast_tcp() {
        let t = parse_transport("RTP/AVP;unicast;client_port=40100-40101").unwrap();
        assert_eq!(t.delivery, Delivery::Unicast);
        assert_eq!(t.client_port, Some((40100, 40101)));
        // FFmpeg's spelling, and RTSP's case-insensitive profile.
        let t = parse_transport("rtp/avp/udp;unicast;client_port=5000-5001").unwrap();
        assert_eq!(t.delivery, Delivery::Unicast);
        let t = parse_transport("RTP/AVP;multicast").unwrap();
        assert_eq!(t.delivery, Delivery::Multicast);
        assert_eq!((t.destination, t.port, t.ttl), (None, None, None));
        let t = parse_transport("RTP/AVP;multicast;destination=239.3.0.12;port=5004-5005;ttl=2")
            .unwrap();
        assert_eq!(t.destination, Some(std::net::Ipv4Addr::new(239, 3, 0, 12)));
        assert_eq!((t.port, t.ttl), (Some((5004, 5005)), Some(2)));
        assert_eq!(
            t.to_header(),
            "RTP/AVP;multicast;destination=239.3.0.12;port=5004-5005;ttl=2"
        );
        for h in [
            "RTP/AVP/TCP;interleaved=0-1",
            "RTP/AVP/TCP;unicast;interleaved=0-1",
        ] {
            let t = parse_transport(h).unwrap();
            assert_eq!(t.delivery, Delivery::Interleaved, "{h}");
            assert_eq!(t.interleaved, Some((0, 1)));
        }
        // A server's answer parses too (extra parameters are ignored).
        let t = parse_transport(
            "RTP/AVP;multicast;destination=239.1.0.2;ttl=1;port=5004-5005;ssrc=1A2B3C4D;mode=\"PLAY\"",
        )
        .unwrap();
        assert_eq!(t.port, Some((5004, 5005)));
        // A list: the first usable entry.
        let t = parse_transport("RTP/SAVP;unicast;client_port=1-2,RTP/AVP;unicast;client_port=6-7")
            .unwrap();
        assert_eq!(t.client_port, Some((6, 7)));
    }

    #[test]
    fn transport_refusals_are_461() {
        for h in [
            "",
            "RTP/SAVP;unicast;client_port=5000-5001",
            "RTP/AVP;unicast;client_port=5000-5003",
            "RTP/AVP;unicast;client_port=5001-5000",
            "RTP/AVP;unicast;client_port=x-y",
            "RTP/AVP;unicast",
            "RTP/AVP;multicast;destination=10.0.0.1",
            "RTP/AVP;multicast;port=5004-5007",
            "RTP/AVP;multicast;ttl=0",
            "RTP/AVP;multicast;ttl=300",
            "RTP/AVP/TCP;multicast",
            "RTP/AVP/TCP;interleaved=1-0",
            "RTP/AVP;unicast;client_port=5000-5001;interleaved=0-1",
            "RTP/AVP;unicast;client_port=5000-5001;mode=record",
        ] {
            let e = parse_transport(h).expect_err(h);
            assert_eq!(e.status(), 461, "{h}");
        }
        assert!(matches!(
            parse_transport("RTP/SAVP;unicast;client_port=5000-5001"),
            Err(TransportError::Profile(_))
        ));
    }

    #[test]
    fn multicast_ranges() {
        assert_eq!(
            device_multicast_range(3),
            (
                std::net::Ipv4Addr::new(239, 3, 0, 0),
                std::net::Ipv4Addr::new(239, 3, 254, 254)
            )
        );
        assert!(parse_multicast_range("239.1.0.0-239.1.254.254").is_ok());
        assert!(parse_multicast_range("239.1.0.9-239.1.0.1").is_err());
        assert!(parse_multicast_range("10.0.0.1-10.0.0.9").is_err());
        assert!(parse_multicast_range("239.1.0.1").is_err());
    }
}
