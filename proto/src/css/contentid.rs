//! DVB broadcast content identifiers (digest 6.2).
//!
//! Form: `dvb://<onid>.<tsid>.<sid>[;<event_id>~<YYYYMMDDThhmmZ>--PT<hh>H<mm>M]`.
//!
//! * Emitted: lower-case hex without padding, as in pydvbcss's examples
//!   (`dvb://233a.1004.1044;363a~20130218T0915Z--PT00H45M`); hours and minutes of the duration
//!   are two digits at least.
//! * Parsed: the scheme and hex digits in either case, hex numbers of 1–4 digits (so padded
//!   forms such as `2174.0004.10bf` are accepted), and nothing else: the event part must be
//!   complete (id, start and duration), the start has no seconds, the duration only hours
//!   and minutes. Parsing then formatting gives the canonical string, which may differ from a
//!   non-canonical input; content ids are compared as strings, so keep the received string
//!   when matching stems.

use std::fmt;
use std::str::FromStr;

use super::cii::ContentIdStatus;

/// The URI scheme prefix.
pub const DVB_SCHEME: &str = "dvb://";

/// Why a string is not a DVB content id of the supported form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContentIdError {
    /// Does not start with `dvb://`.
    NotDvb,
    /// Starts with `dvb://` but a part is malformed (the string names the part).
    Malformed(&'static str),
}

impl fmt::Display for ContentIdError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotDvb => f.write_str("not a dvb:// content id"),
            Self::Malformed(part) => write!(f, "malformed dvb:// content id: bad {part}"),
        }
    }
}

impl std::error::Error for ContentIdError {}

/// A UTC start time to the minute (`YYYYMMDDThhmmZ`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct UtcMinute {
    /// Year, 0–9999.
    pub year: u16,
    /// Month, 1–12.
    pub month: u8,
    /// Day of month, 1–31.
    pub day: u8,
    /// Hour, 0–23.
    pub hour: u8,
    /// Minute, 0–59.
    pub minute: u8,
}

impl UtcMinute {
    /// Checked constructor.
    pub fn new(year: u16, month: u8, day: u8, hour: u8, minute: u8) -> Option<Self> {
        let ok = year <= 9999
            && (1..=12).contains(&month)
            && (1..=days_in_month(year, month)).contains(&day)
            && hour < 24
            && minute < 60;
        ok.then_some(Self {
            year,
            month,
            day,
            hour,
            minute,
        })
    }

    /// From seconds since 1970-01-01T00:00Z (seconds are dropped). `None` outside years
    /// 1970–9999.
    pub fn from_unix_secs(secs: u64) -> Option<Self> {
        let days = secs / 86_400;
        let rem = secs % 86_400;
        let (y, m, d) = civil_from_days(days);
        let year = u16::try_from(y).ok()?;
        Self::new(year, m, d, (rem / 3600) as u8, ((rem % 3600) / 60) as u8)
    }

    /// From a DVB EIT start time: Modified Julian Date plus UTC hour and minute.
    pub fn from_mjd(mjd: u32, hour: u8, minute: u8) -> Option<Self> {
        // MJD 40587 is 1970-01-01.
        let days = u64::from(mjd.checked_sub(40_587)?);
        let (y, m, d) = civil_from_days(days);
        Self::new(u16::try_from(y).ok()?, m, d, hour, minute)
    }
}

fn is_leap(y: u16) -> bool {
    (y.is_multiple_of(4) && !y.is_multiple_of(100)) || y.is_multiple_of(400)
}

fn days_in_month(y: u16, m: u8) -> u8 {
    match m {
        2 if is_leap(y) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian (H. Hinnant's algorithm).
fn civil_from_days(days: u64) -> (u64, u8, u8) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u8;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u8;
    let y = yoe + era * 400 + u64::from(m <= 2);
    (y, m, d)
}

impl fmt::Display for UtcMinute {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:04}{:02}{:02}T{:02}{:02}Z",
            self.year, self.month, self.day, self.hour, self.minute
        )
    }
}

/// An event duration as `PT<hh>H<mm>M`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PtDuration {
    /// Hours (any number).
    pub hours: u32,
    /// Minutes, 0–59.
    pub minutes: u8,
}

impl PtDuration {
    /// From a total number of minutes.
    pub fn from_minutes(total: u32) -> Self {
        Self {
            hours: total / 60,
            minutes: (total % 60) as u8,
        }
    }

    /// Total minutes.
    pub fn total_minutes(&self) -> u64 {
        u64::from(self.hours) * 60 + u64::from(self.minutes)
    }
}

impl fmt::Display for PtDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PT{:02}H{:02}M", self.hours, self.minutes)
    }
}

/// The event part `;<event_id>~<start>--<duration>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DvbEvent {
    /// EIT event_id.
    pub event_id: u16,
    /// Event start, UTC.
    pub start: UtcMinute,
    /// Event duration.
    pub duration: PtDuration,
}

/// A `dvb://` content id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DvbContentId {
    /// original_network_id.
    pub original_network_id: u16,
    /// transport_stream_id.
    pub transport_stream_id: u16,
    /// service_id.
    pub service_id: u16,
    /// The present event, once known.
    pub event: Option<DvbEvent>,
}

impl DvbContentId {
    /// The service-only (partial) id.
    pub fn service(original_network_id: u16, transport_stream_id: u16, service_id: u16) -> Self {
        Self {
            original_network_id,
            transport_stream_id,
            service_id,
            event: None,
        }
    }

    /// The same service with the given event.
    pub fn with_event(self, event: DvbEvent) -> Self {
        Self {
            event: Some(event),
            ..self
        }
    }

    /// `partial` without the event part, `final` with it (checklist 79).
    pub fn status(&self) -> ContentIdStatus {
        if self.event.is_some() {
            ContentIdStatus::Final
        } else {
            ContentIdStatus::Partial
        }
    }

    /// The service stem `dvb://<onid>.<tsid>.<sid>` (matches this service, any event).
    pub fn service_stem(&self) -> String {
        Self {
            event: None,
            ..*self
        }
        .to_string()
    }

    /// Parse; see the module docs for what is accepted.
    pub fn parse(s: &str) -> Result<Self, ContentIdError> {
        let scheme = s.get(..DVB_SCHEME.len()).ok_or(ContentIdError::NotDvb)?;
        if !scheme.eq_ignore_ascii_case(DVB_SCHEME) {
            return Err(ContentIdError::NotDvb);
        }
        let rest = &s[DVB_SCHEME.len()..];
        let (triplet, event) = match rest.split_once(';') {
            Some((t, e)) => (t, Some(e)),
            None => (rest, None),
        };
        let mut parts = triplet.split('.');
        let onid = hex16(parts.next(), "original_network_id")?;
        let tsid = hex16(parts.next(), "transport_stream_id")?;
        let sid = hex16(parts.next(), "service_id")?;
        if parts.next().is_some() {
            return Err(ContentIdError::Malformed("service triplet"));
        }
        let event = event.map(parse_event).transpose()?;
        Ok(Self {
            original_network_id: onid,
            transport_stream_id: tsid,
            service_id: sid,
            event,
        })
    }
}

fn hex16(s: Option<&str>, what: &'static str) -> Result<u16, ContentIdError> {
    let s = s.ok_or(ContentIdError::Malformed(what))?;
    if s.is_empty() || s.len() > 4 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(ContentIdError::Malformed(what));
    }
    u16::from_str_radix(s, 16).map_err(|_| ContentIdError::Malformed(what))
}

fn digits<T: FromStr>(s: &str, what: &'static str) -> Result<T, ContentIdError> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ContentIdError::Malformed(what));
    }
    s.parse().map_err(|_| ContentIdError::Malformed(what))
}

fn parse_event(s: &str) -> Result<DvbEvent, ContentIdError> {
    let (id, times) = s
        .split_once('~')
        .ok_or(ContentIdError::Malformed("event part"))?;
    let event_id = hex16(Some(id), "event_id")?;
    let (start, duration) = times
        .split_once("--")
        .ok_or(ContentIdError::Malformed("event part"))?;
    Ok(DvbEvent {
        event_id,
        start: parse_start(start)?,
        duration: parse_duration(duration)?,
    })
}

fn parse_start(s: &str) -> Result<UtcMinute, ContentIdError> {
    const BAD: ContentIdError = ContentIdError::Malformed("start time");
    let b = s.as_bytes();
    if b.len() != 14 || !s.is_ascii() || b[8] != b'T' || b[13] != b'Z' {
        return Err(BAD);
    }
    let year = digits(&s[0..4], "start time")?;
    let month = digits(&s[4..6], "start time")?;
    let day = digits(&s[6..8], "start time")?;
    let hour = digits(&s[9..11], "start time")?;
    let minute = digits(&s[11..13], "start time")?;
    UtcMinute::new(year, month, day, hour, minute).ok_or(BAD)
}

fn parse_duration(s: &str) -> Result<PtDuration, ContentIdError> {
    const BAD: ContentIdError = ContentIdError::Malformed("duration");
    let body = s
        .strip_prefix("PT")
        .and_then(|r| r.strip_suffix('M'))
        .ok_or(BAD)?;
    let (h, m) = body.split_once('H').ok_or(BAD)?;
    let hours = digits(h, "duration")?;
    let minutes: u8 = digits(m, "duration")?;
    if minutes >= 60 || m.len() > 2 {
        return Err(BAD);
    }
    Ok(PtDuration { hours, minutes })
}

impl FromStr for DvbContentId {
    type Err = ContentIdError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl fmt::Display for DvbContentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{DVB_SCHEME}{:x}.{:x}.{:x}",
            self.original_network_id, self.transport_stream_id, self.service_id
        )?;
        if let Some(e) = &self.event {
            write!(f, ";{:x}~{}--{}", e.event_id, e.start, e.duration)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PYDVBCSS_EXAMPLE: &str = "dvb://233a.1004.1044;363a~20130218T0915Z--PT00H45M";

    fn example() -> DvbContentId {
        DvbContentId::service(0x233a, 0x1004, 0x1044).with_event(DvbEvent {
            event_id: 0x363a,
            start: UtcMinute::new(2013, 2, 18, 9, 15).unwrap(),
            duration: PtDuration::from_minutes(45),
        })
    }

    #[test]
    fn non_ascii_start_time_is_malformed_not_a_panic() {
        // Found by the css_messages fuzz target: byte slicing inside a multi-byte character.
        let id = "dvb://233a.1004.1044;363a~23\u{fffd}218T0915Z--PT00H45M";
        assert!(matches!(
            DvbContentId::parse(id),
            Err(ContentIdError::Malformed(_))
        ));
    }

    #[test]
    fn checklist_78_spec_example_round_trips() {
        assert_eq!(example().to_string(), PYDVBCSS_EXAMPLE);
        assert_eq!(DvbContentId::parse(PYDVBCSS_EXAMPLE), Ok(example()));
        let s = DvbContentId::service(0x233a, 0x1004, 0x1044);
        assert_eq!(s.to_string(), "dvb://233a.1004.1044");
        assert_eq!("dvb://233a.1004.1044".parse(), Ok(s));
        assert_eq!(example().service_stem(), "dvb://233a.1004.1044");
    }

    #[test]
    fn checklist_79_status_partial_then_final() {
        assert_eq!(
            DvbContentId::service(1, 2, 3).status(),
            ContentIdStatus::Partial
        );
        assert_eq!(example().status(), ContentIdStatus::Final);
    }

    #[test]
    fn lower_case_no_padding_out_either_case_and_padding_in() {
        let id = DvbContentId::parse("DVB://2174.0004.10BF;5C1E~20240301T1830Z--PT00H30M").unwrap();
        assert_eq!(id.transport_stream_id, 4);
        assert_eq!(id.service_id, 0x10bf);
        assert_eq!(
            id.to_string(),
            "dvb://2174.4.10bf;5c1e~20240301T1830Z--PT00H30M"
        );
        assert_eq!(DvbContentId::service(0, 0, 0).to_string(), "dvb://0.0.0");
        assert_eq!(
            DvbContentId::service(0xffff, 0xffff, 0xffff).to_string(),
            "dvb://ffff.ffff.ffff"
        );
    }

    #[test]
    fn long_durations_and_padding() {
        let d = PtDuration::from_minutes(125 * 60 + 5);
        assert_eq!(d.to_string(), "PT125H05M");
        assert_eq!(parse_duration("PT125H05M"), Ok(d));
        assert_eq!(d.total_minutes(), 125 * 60 + 5);
        assert_eq!(parse_duration("PT1H5M"), Ok(PtDuration::from_minutes(65)));
    }

    #[test]
    fn malformed_ids_are_errors() {
        for bad in [
            "",
            "dvb:/",
            "http://233a.1004.1044",
            "dvb://",
            "dvb://233a.1004",
            "dvb://233a.1004.1044.1",
            "dvb://233a..1044",
            "dvb://12345.1.1",
            "dvb://g.1.1",
            "dvb://+1.1.1",
            "dvb://1.1.1;",
            "dvb://1.1.1;363a",
            "dvb://1.1.1;363a~20130218T0915Z",
            "dvb://1.1.1;363a~20130218T0915Z--",
            "dvb://1.1.1;363a~20130218T0915Z--PT00H60M",
            "dvb://1.1.1;363a~20130218T091500Z--PT00H45M",
            "dvb://1.1.1;363a~20130230T0915Z--PT00H45M",
            "dvb://1.1.1;363a~20131318T0915Z--PT00H45M",
            "dvb://1.1.1;363a~20130218T2415Z--PT00H45M",
            "dvb://1.1.1;363a~20130218T0915Z--PT45M",
            "dvb://1.1.1;363a~20130218T0915Z--P1D",
            "dvb://1.1.1;363a~20130218T0915Z--PT99999999999H00M",
            "dvb://1.1.1;363a~20130218T0915Z--PT00H045M",
            "dvb://1.1.1;363a~2013-02-18T0915Z--PT00H45M",
            "dvb://é.1.1",
            "dvbé//1.1.1",
        ] {
            assert!(DvbContentId::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(DvbContentId::parse("urn:x"), Err(ContentIdError::NotDvb));
        assert!(ContentIdError::Malformed("x").to_string().contains('x'));
    }

    #[test]
    fn start_time_conversions() {
        assert_eq!(
            UtcMinute::from_unix_secs(1_361_178_900 + 59),
            UtcMinute::new(2013, 2, 18, 9, 15)
        );
        assert_eq!(
            UtcMinute::from_unix_secs(0),
            UtcMinute::new(1970, 1, 1, 0, 0)
        );
        assert_eq!(UtcMinute::from_unix_secs(u64::MAX), None);
        // EN 300 468 annex C example: MJD 45218 = 1982-09-06
        assert_eq!(
            UtcMinute::from_mjd(45_218, 12, 45),
            UtcMinute::new(1982, 9, 6, 12, 45)
        );
        assert_eq!(UtcMinute::from_mjd(40_586, 0, 0), None);
        assert_eq!(UtcMinute::new(2024, 2, 29, 0, 0).map(|u| u.day), Some(29));
        assert_eq!(UtcMinute::new(2023, 2, 29, 0, 0), None);
        assert_eq!(UtcMinute::new(2000, 2, 29, 0, 0).map(|u| u.day), Some(29));
        assert_eq!(UtcMinute::new(1900, 2, 29, 0, 0), None);
    }
}
