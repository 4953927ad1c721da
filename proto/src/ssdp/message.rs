//! SSDP/UPnP messages for SAT>IP discovery (spec digest `satip.md` §8): ssdp:alive and
//! ssdp:byebye NOTIFY sets, strict M-SEARCH parsing, search responses, parsing of other servers'
//! NOTIFYs and responses, the DEVICE ID negotiation as a pure state machine, and the device
//! description XML.
//!
//! Pure code: std only, never `gst`/`glib`, never panics on any input. Time is plain
//! milliseconds supplied by the caller; sockets live in the advertiser.

use std::fmt;

/// SSDP multicast group.
pub const SSDP_MULTICAST_ADDR: std::net::Ipv4Addr = std::net::Ipv4Addr::new(239, 255, 255, 250);
/// SSDP port.
pub const SSDP_PORT: u16 = 1900;
/// `HOST` value of multicast messages.
pub const SSDP_HOST: &str = "239.255.255.250:1900";
/// IP TTL for multicast SSDP packets.
pub const SSDP_MULTICAST_TTL: u32 = 2;
/// SAT>IP device type URN.
pub const SATIP_DEVICE_TYPE: &str = "urn:ses-com:device:SatIPServer:1";
/// Namespace of the `satip:` description elements.
pub const SATIP_XML_NS: &str = "urn:ses-com:satip";
/// Default advertisement validity (`CACHE-CONTROL: max-age`).
pub const DEFAULT_MAX_AGE: u32 = 1800;
/// Largest SSDP datagram we parse; larger ones are refused.
pub const MAX_MESSAGE_LEN: usize = 4096;
/// Most header lines we accept in one message.
pub const MAX_HEADERS: usize = 64;
/// Cap for the response delay taken from `MX` (seconds).
pub const MAX_MX: u32 = 5;
/// How long a joining server listens for a DEVICE ID conflict after announcing.
pub const DEVICE_ID_SETTLE_MS: u64 = 5000;

// ---------------------------------------------------------------------------------------------
// Identity and notification types
// ---------------------------------------------------------------------------------------------

/// What this server announces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// Device UUID, `8-4-4-4-12` hex, without `uuid:`.
    pub uuid: String,
    /// Description URL, e.g. `http://10.0.0.5:8080/desc.xml`.
    pub location: String,
    /// `SERVER` / `USER-AGENT` value: `<OS>/<ver> UPnP/1.1 <product>/<ver>`.
    pub server: String,
    /// `CACHE-CONTROL: max-age` seconds.
    pub max_age: u32,
    /// `BOOTID.UPNP.ORG`.
    pub boot_id: u32,
    /// `CONFIGID.UPNP.ORG`, equal to the description's `configId`.
    pub config_id: u32,
    /// `DEVICEID.SES.COM` for alive messages; `None` omits it.
    pub device_id: Option<u8>,
    /// `SEARCHPORT.UPNP.ORG`, only when not listening on 1900.
    pub search_port: Option<u16>,
}

/// The three NT/USN rows of §8.2.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Nt {
    /// `upnp:rootdevice`.
    RootDevice,
    /// `uuid:<UUID>`.
    Uuid,
    /// `urn:ses-com:device:SatIPServer:1`.
    DeviceType,
}

impl Nt {
    /// Rows in announcement order.
    pub const ALL: [Nt; 3] = [Nt::RootDevice, Nt::Uuid, Nt::DeviceType];

    /// `NT` (or `ST`) value.
    pub fn nt(self, uuid: &str) -> String {
        match self {
            Nt::RootDevice => "upnp:rootdevice".to_owned(),
            Nt::Uuid => format!("uuid:{uuid}"),
            Nt::DeviceType => SATIP_DEVICE_TYPE.to_owned(),
        }
    }

    /// `USN` value.
    pub fn usn(self, uuid: &str) -> String {
        match self {
            Nt::RootDevice => format!("uuid:{uuid}::upnp:rootdevice"),
            Nt::Uuid => format!("uuid:{uuid}"),
            Nt::DeviceType => format!("uuid:{uuid}::{SATIP_DEVICE_TYPE}"),
        }
    }
}

/// Whether `s` is a UUID in `8-4-4-4-12` hex form.
pub fn is_valid_uuid(s: &str) -> bool {
    let groups: Vec<&str> = s.split('-').collect();
    groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(g, n)| g.len() == n && g.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// The UUID inside a USN (`uuid:<UUID>[::...]`), if any.
pub fn usn_uuid(usn: &str) -> Option<&str> {
    let rest = usn.strip_prefix("uuid:")?;
    Some(rest.split("::").next().unwrap_or(rest))
}

// ---------------------------------------------------------------------------------------------
// Building messages
// ---------------------------------------------------------------------------------------------

/// One `ssdp:alive` NOTIFY (headers in the order of §8.2).
pub fn alive(id: &Identity, nt: Nt) -> String {
    let mut s = String::from("NOTIFY * HTTP/1.1\r\n");
    s.push_str(&format!("HOST: {SSDP_HOST}\r\n"));
    s.push_str(&format!("CACHE-CONTROL: max-age={}\r\n", id.max_age));
    s.push_str(&format!("LOCATION: {}\r\n", id.location));
    s.push_str(&format!("NT: {}\r\n", nt.nt(&id.uuid)));
    s.push_str("NTS: ssdp:alive\r\n");
    s.push_str(&format!("SERVER: {}\r\n", id.server));
    s.push_str(&format!("USN: {}\r\n", nt.usn(&id.uuid)));
    s.push_str(&format!("BOOTID.UPNP.ORG: {}\r\n", id.boot_id));
    s.push_str(&format!("CONFIGID.UPNP.ORG: {}\r\n", id.config_id));
    if let Some(p) = id.search_port {
        s.push_str(&format!("SEARCHPORT.UPNP.ORG: {p}\r\n"));
    }
    if let Some(d) = id.device_id {
        s.push_str(&format!("DEVICEID.SES.COM: {d}\r\n"));
    }
    s.push_str("\r\n");
    s
}

/// The three alive messages of one announcement.
pub fn alive_set(id: &Identity) -> [String; 3] {
    Nt::ALL.map(|nt| alive(id, nt))
}

/// One `ssdp:byebye` NOTIFY: HOST, NT, NTS, USN, BOOTID, CONFIGID only (§8.3).
pub fn byebye(id: &Identity, nt: Nt) -> String {
    format!(
        "NOTIFY * HTTP/1.1\r\nHOST: {SSDP_HOST}\r\nNT: {}\r\nNTS: ssdp:byebye\r\nUSN: {}\r\n\
         BOOTID.UPNP.ORG: {}\r\nCONFIGID.UPNP.ORG: {}\r\n\r\n",
        nt.nt(&id.uuid),
        nt.usn(&id.uuid),
        id.boot_id,
        id.config_id
    )
}

/// The three byebye messages.
pub fn byebye_set(id: &Identity) -> [String; 3] {
    Nt::ALL.map(|nt| byebye(id, nt))
}

/// Unicast `HTTP/1.1 200 OK` answer to an M-SEARCH for `st` (§8.5). `date` is an HTTP date
/// (see [`http_date`]), omitted when `None`. `device_id` is `Some` only when the search carried
/// `DEVICEID.SES.COM` (server-to-server); ordinary answers have none.
pub fn search_response(id: &Identity, st: Nt, date: Option<&str>, device_id: Option<u8>) -> String {
    let mut s = String::from("HTTP/1.1 200 OK\r\n");
    s.push_str(&format!("CACHE-CONTROL: max-age={}\r\n", id.max_age));
    if let Some(d) = date {
        s.push_str(&format!("DATE: {d}\r\n"));
    }
    s.push_str("EXT:\r\n");
    s.push_str(&format!("LOCATION: {}\r\n", id.location));
    s.push_str(&format!("SERVER: {}\r\n", id.server));
    s.push_str(&format!("ST: {}\r\n", st.nt(&id.uuid)));
    s.push_str(&format!("USN: {}\r\n", st.usn(&id.uuid)));
    s.push_str(&format!("BOOTID.UPNP.ORG: {}\r\n", id.boot_id));
    s.push_str(&format!("CONFIGID.UPNP.ORG: {}\r\n", id.config_id));
    if let Some(p) = id.search_port {
        s.push_str(&format!("SEARCHPORT.UPNP.ORG: {p}\r\n"));
    }
    if let Some(d) = device_id {
        s.push_str(&format!("DEVICEID.SES.COM: {d}\r\n"));
    }
    s.push_str("\r\n");
    s
}

/// [OURS] answer of a server whose DEVICE ID is settled to a conflicting unicast M-SEARCH:
/// `HTTP/1.1 400 Bad Request` naming the id it keeps. The spec only says such requests are
/// ignored; defenders ([MS], [TVH]) discard every reply, so this is informative only.
pub fn search_refusal(id: &Identity, device_id: u8) -> String {
    format!(
        "HTTP/1.1 400 Bad Request\r\nEXT:\r\nSERVER: {}\r\nUSN: {}\r\nBOOTID.UPNP.ORG: {}\r\n\
         CONFIGID.UPNP.ORG: {}\r\nDEVICEID.SES.COM: {device_id}\r\n\r\n",
        id.server,
        Nt::Uuid.usn(&id.uuid),
        id.boot_id,
        id.config_id
    )
}

/// The defender's unicast M-SEARCH (§8.6 step 2) to `target` (`ip:port` of the server that
/// announced our id; HOST is the target address, which [TVH] requires).
pub fn defend_search(target: &str, user_agent: &str, device_id: u8) -> String {
    format!(
        "M-SEARCH * HTTP/1.1\r\nHOST: {target}\r\nMAN: \"ssdp:discover\"\r\n\
         ST: {SATIP_DEVICE_TYPE}\r\nUSER-AGENT: {user_agent}\r\n\
         DEVICEID.SES.COM: {device_id}\r\n\r\n"
    )
}

/// RFC 1123 date (`Tue, 04 Mar 2025 18:20:11 GMT`) of a Unix time in seconds.
pub fn http_date(unix_secs: u64) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let days = unix_secs / 86_400;
    let secs = unix_secs % 86_400;
    // Civil date from days since 1970-01-01 (H. Hinnant's algorithm), all unsigned.
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    let wd = DAYS.get((days % 7) as usize).copied().unwrap_or("Thu");
    let mon = MONTHS
        .get((month as usize).saturating_sub(1))
        .copied()
        .unwrap_or("Jan");
    format!(
        "{wd}, {day:02} {mon} {year} {:02}:{:02}:{:02} GMT",
        secs / 3600,
        (secs / 60) % 60,
        secs % 60
    )
}

// ---------------------------------------------------------------------------------------------
// Parsing
// ---------------------------------------------------------------------------------------------

/// Why a datagram is not an SSDP message we act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParseError {
    /// Larger than [`MAX_MESSAGE_LEN`].
    TooLarge(usize),
    /// Not UTF-8.
    NotUtf8,
    /// Empty or unterminated start line, or too many header lines.
    Truncated,
    /// Start line is not `M-SEARCH * HTTP/1.1`, `NOTIFY * HTTP/1.1` or `HTTP/1.x <code> ...`.
    BadStartLine,
    /// A header line without `:`, with an empty name, or a folded continuation line.
    MalformedHeader,
    /// A header we interpret appears twice.
    DuplicateHeader(&'static str),
    /// A required header is absent.
    MissingHeader(&'static str),
    /// A header we interpret has an unusable value.
    BadValue(&'static str),
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParseError::TooLarge(n) => write!(f, "message too large ({n} bytes)"),
            ParseError::NotUtf8 => f.write_str("message is not UTF-8"),
            ParseError::Truncated => f.write_str("truncated message"),
            ParseError::BadStartLine => f.write_str("bad start line"),
            ParseError::MalformedHeader => f.write_str("malformed header line"),
            ParseError::DuplicateHeader(h) => write!(f, "duplicate header {h}"),
            ParseError::MissingHeader(h) => write!(f, "missing header {h}"),
            ParseError::BadValue(h) => write!(f, "bad value for header {h}"),
        }
    }
}

impl std::error::Error for ParseError {}

/// An M-SEARCH request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchRequest {
    pub host: Option<String>,
    /// `MX` seconds; may be absent on unicast searches.
    pub mx: Option<u32>,
    /// `ST`.
    pub st: String,
    pub user_agent: Option<String>,
    /// `DEVICEID.SES.COM`: present only in server-to-server searches.
    pub device_id: Option<u8>,
}

impl SearchRequest {
    /// The rows to answer for our UUID: three for `ssdp:all`, one for `upnp:rootdevice`,
    /// `uuid:<ours>` or the SAT>IP URN, none for anything else.
    pub fn targets(&self, our_uuid: &str) -> Vec<Nt> {
        let st = self.st.as_str();
        if st == "ssdp:all" {
            Nt::ALL.to_vec()
        } else if st == "upnp:rootdevice" {
            vec![Nt::RootDevice]
        } else if st.eq_ignore_ascii_case(SATIP_DEVICE_TYPE) {
            vec![Nt::DeviceType]
        } else if st
            .strip_prefix("uuid:")
            .is_some_and(|u| u.eq_ignore_ascii_case(our_uuid))
        {
            vec![Nt::Uuid]
        } else {
            Vec::new()
        }
    }

    /// A multicast search must carry `MX`; a unicast one need not.
    pub fn check(&self, multicast: bool) -> Result<(), ParseError> {
        if multicast && self.mx.is_none() {
            return Err(ParseError::MissingHeader("MX"));
        }
        Ok(())
    }

    /// Upper bound of the random response delay in milliseconds (`MX` capped at 5 s; 0 without
    /// `MX`).
    pub fn max_delay_ms(&self) -> u64 {
        u64::from(self.mx.unwrap_or(0).min(MAX_MX)) * 1000
    }
}

/// `NTS` of a NOTIFY.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Nts {
    Alive,
    ByeBye,
    Update,
}

/// A NOTIFY from some device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notify {
    pub nt: String,
    pub nts: Nts,
    pub usn: String,
    pub location: Option<String>,
    pub max_age: Option<u32>,
    pub boot_id: Option<u32>,
    pub config_id: Option<u32>,
    pub device_id: Option<u8>,
    pub search_port: Option<u16>,
}

impl Notify {
    /// UUID of the sender, from the USN.
    pub fn uuid(&self) -> Option<&str> {
        usn_uuid(&self.usn)
    }
}

/// An HTTP response over UDP (answer to a search).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchResponse {
    pub status: u16,
    pub st: Option<String>,
    pub usn: Option<String>,
    pub location: Option<String>,
    pub device_id: Option<u8>,
}

/// A parsed SSDP datagram.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    Search(SearchRequest),
    Notify(Notify),
    Response(SearchResponse),
}

impl Message {
    /// UUID of the sender (USN), when the message carries one: use it to drop our own packets.
    pub fn sender_uuid(&self) -> Option<&str> {
        match self {
            Message::Search(_) => None,
            Message::Notify(n) => n.uuid(),
            Message::Response(r) => r.usn.as_deref().and_then(usn_uuid),
        }
    }
}

struct Headers<'a> {
    list: Vec<(&'a str, &'a str)>,
}

impl<'a> Headers<'a> {
    /// The single value of `name` (case-insensitive); a duplicate is an error.
    fn one(&self, name: &'static str) -> Result<Option<&'a str>, ParseError> {
        let mut found = None;
        for (n, v) in &self.list {
            if n.eq_ignore_ascii_case(name) {
                if found.is_some() {
                    return Err(ParseError::DuplicateHeader(name));
                }
                found = Some(*v);
            }
        }
        Ok(found)
    }

    fn required(&self, name: &'static str) -> Result<&'a str, ParseError> {
        match self.one(name)? {
            Some(v) if !v.is_empty() => Ok(v),
            _ => Err(ParseError::MissingHeader(name)),
        }
    }

    fn number<T: std::str::FromStr>(&self, name: &'static str) -> Result<Option<T>, ParseError> {
        match self.one(name)? {
            None => Ok(None),
            Some(v) => {
                if v.is_empty() || v.len() > 10 || !v.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(ParseError::BadValue(name));
                }
                v.parse().map(Some).map_err(|_| ParseError::BadValue(name))
            }
        }
    }
}

/// Parse one SSDP datagram (M-SEARCH, NOTIFY, or a `HTTP/1.x` response).
///
/// Strict: exact start lines, `MAN: "ssdp:discover"` with quotes, numeric `MX`/ids, no
/// duplicate interpreted headers, no folded lines, at most [`MAX_MESSAGE_LEN`] bytes and
/// [`MAX_HEADERS`] lines. Tolerant: header names in any case, optional whitespace after `:`,
/// bare LF line ends, a missing final empty line, unknown headers.
pub fn parse_message(data: &[u8]) -> Result<Message, ParseError> {
    if data.len() > MAX_MESSAGE_LEN {
        return Err(ParseError::TooLarge(data.len()));
    }
    let text = std::str::from_utf8(data).map_err(|_| ParseError::NotUtf8)?;
    let mut lines = text.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l));
    let start = lines.next().unwrap_or("");
    if start.is_empty() {
        return Err(ParseError::Truncated);
    }
    let mut list = Vec::new();
    for line in lines {
        // Anything after the empty line would be a body, which SSDP messages do not have.
        if line.is_empty() {
            break;
        }
        if list.len() >= MAX_HEADERS {
            return Err(ParseError::Truncated);
        }
        if line.starts_with([' ', '\t']) {
            return Err(ParseError::MalformedHeader);
        }
        let (name, value) = line.split_once(':').ok_or(ParseError::MalformedHeader)?;
        let name = name.trim_end();
        if name.is_empty() || name.contains([' ', '\t']) {
            return Err(ParseError::MalformedHeader);
        }
        list.push((name, value.trim()));
    }
    let h = Headers { list };

    match start {
        "M-SEARCH * HTTP/1.1" => {
            let man = h.required("MAN")?;
            if man != "\"ssdp:discover\"" {
                return Err(ParseError::BadValue("MAN"));
            }
            Ok(Message::Search(SearchRequest {
                host: h.one("HOST")?.map(str::to_owned),
                mx: h.number("MX")?,
                st: h.required("ST")?.to_owned(),
                user_agent: h.one("USER-AGENT")?.map(str::to_owned),
                device_id: h.number("DEVICEID.SES.COM")?,
            }))
        }
        "NOTIFY * HTTP/1.1" => {
            let nts = match h.required("NTS")? {
                "ssdp:alive" => Nts::Alive,
                "ssdp:byebye" => Nts::ByeBye,
                "ssdp:update" => Nts::Update,
                _ => return Err(ParseError::BadValue("NTS")),
            };
            let max_age = match h.one("CACHE-CONTROL")? {
                None => None,
                Some(v) => Some(parse_max_age(v).ok_or(ParseError::BadValue("CACHE-CONTROL"))?),
            };
            Ok(Message::Notify(Notify {
                nt: h.required("NT")?.to_owned(),
                nts,
                usn: h.required("USN")?.to_owned(),
                location: h.one("LOCATION")?.map(str::to_owned),
                max_age,
                boot_id: h.number("BOOTID.UPNP.ORG")?,
                config_id: h.number("CONFIGID.UPNP.ORG")?,
                device_id: h.number("DEVICEID.SES.COM")?,
                search_port: h.number("SEARCHPORT.UPNP.ORG")?,
            }))
        }
        _ => {
            let rest = start
                .strip_prefix("HTTP/1.1 ")
                .or_else(|| start.strip_prefix("HTTP/1.0 "))
                .ok_or(ParseError::BadStartLine)?;
            let code = rest.split(' ').next().unwrap_or("");
            if code.len() != 3 || !code.bytes().all(|b| b.is_ascii_digit()) {
                return Err(ParseError::BadStartLine);
            }
            let status = code.parse().map_err(|_| ParseError::BadStartLine)?;
            Ok(Message::Response(SearchResponse {
                status,
                st: h.one("ST")?.map(str::to_owned),
                usn: h.one("USN")?.map(str::to_owned),
                location: h.one("LOCATION")?.map(str::to_owned),
                device_id: h.number("DEVICEID.SES.COM")?,
            }))
        }
    }
}

/// `max-age=1800` (possibly among other directives) → 1800.
fn parse_max_age(v: &str) -> Option<u32> {
    v.split(',').find_map(|d| {
        let (k, val) = d.trim().split_once('=')?;
        if !k.trim().eq_ignore_ascii_case("max-age") {
            return None;
        }
        let val = val.trim();
        if val.is_empty() || val.len() > 10 || !val.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        val.parse().ok()
    })
}

// ---------------------------------------------------------------------------------------------
// DEVICE ID negotiation (§8.6)
// ---------------------------------------------------------------------------------------------

/// Next DEVICE ID after `id` in our range 1..=254 (254 wraps to 1).
pub fn next_device_id(id: u8) -> u8 {
    if (1..254).contains(&id) {
        id + 1
    } else {
        1
    }
}

/// Next BOOTID.UPNP.ORG (UPnP limits it to 31 bits; wraps to 1).
pub fn next_boot_id(prev: u32) -> u32 {
    if prev >= 0x7FFF_FFFF {
        1
    } else {
        prev + 1
    }
}

/// What to do with an incoming M-SEARCH, as far as the DEVICE ID goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SearchVerdict {
    /// Answer normally; put `DEVICEID.SES.COM: <id>` in the answer when `Some` (only when the
    /// search carried the header).
    Answer { device_id: Option<u8> },
    /// Conflict while we were still joining: answer with `DEVICEID.SES.COM: old_id`, then
    /// (optionally send byebye,) increase BOOTID and announce `new_id`, then call
    /// [`DeviceIdNegotiator::announced`].
    Yield { old_id: u8, new_id: u8 },
    /// Our id is settled and someone asks us to change it: keep it ([`search_refusal`]).
    Refuse { device_id: u8 },
}

/// A defence to mount: send [`defend_search`] to the offender's address at `port`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Defend {
    pub device_id: u8,
    pub port: u16,
}

/// DEVICE ID state machine of one server. Time is milliseconds on any monotonic clock.
///
/// Joining: [`new`](Self::new) with the stored id, announce, call
/// [`announced`](Self::announced); feed searches to [`on_search`](Self::on_search) and call
/// [`poll`](Self::poll) periodically, which reports once when the id has survived
/// [`DEVICE_ID_SETTLE_MS`] and should be stored. Defending: feed other servers' NOTIFYs to
/// [`on_notify`](Self::on_notify).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceIdNegotiator {
    id: u8,
    settled: bool,
    announced_at: Option<u64>,
}

impl DeviceIdNegotiator {
    /// Start from the stored id (0 and 255 are outside our range and become 1).
    pub fn new(stored: u8) -> Self {
        let id = if (1..=254).contains(&stored) {
            stored
        } else {
            1
        };
        DeviceIdNegotiator {
            id,
            settled: false,
            announced_at: None,
        }
    }

    /// Start with an id known to be ours (no negotiation).
    pub fn settled(id: u8) -> Self {
        DeviceIdNegotiator {
            settled: true,
            ..DeviceIdNegotiator::new(id)
        }
    }

    pub fn device_id(&self) -> u8 {
        self.id
    }

    pub fn is_settled(&self) -> bool {
        self.settled
    }

    /// The alive set carrying the current id went out at `now_ms`.
    pub fn announced(&mut self, now_ms: u64) {
        if !self.settled {
            self.announced_at = Some(now_ms);
        }
    }

    /// `Some(id)` exactly once, when the id has been announced for [`DEVICE_ID_SETTLE_MS`]
    /// without conflict: store it persistently.
    pub fn poll(&mut self, now_ms: u64) -> Option<u8> {
        match self.announced_at {
            Some(t) if !self.settled && now_ms.saturating_sub(t) >= DEVICE_ID_SETTLE_MS => {
                self.settled = true;
                Some(self.id)
            }
            _ => None,
        }
    }

    fn in_window(&self, now_ms: u64) -> bool {
        !self.settled
            && self
                .announced_at
                .is_some_and(|t| now_ms.saturating_sub(t) < DEVICE_ID_SETTLE_MS)
    }

    /// Decide on an M-SEARCH that carried `their_id` in `DEVICEID.SES.COM` (or not).
    pub fn on_search(&mut self, their_id: Option<u8>, now_ms: u64) -> SearchVerdict {
        let Some(theirs) = their_id else {
            return SearchVerdict::Answer { device_id: None };
        };
        if theirs != self.id {
            return SearchVerdict::Answer {
                device_id: Some(self.id),
            };
        }
        if self.in_window(now_ms) {
            let old_id = self.id;
            self.id = next_device_id(old_id);
            self.announced_at = None;
            SearchVerdict::Yield {
                old_id,
                new_id: self.id,
            }
        } else if self.settled || self.announced_at.is_some() {
            SearchVerdict::Refuse { device_id: self.id }
        } else {
            // Not announced yet: nobody can have seen our id; answer plainly.
            SearchVerdict::Answer {
                device_id: Some(self.id),
            }
        }
    }

    /// A NOTIFY from another server: defend our id if it is settled and the NOTIFY announces
    /// it. Our own NOTIFYs (same UUID) and byebyes are ignored.
    pub fn on_notify(&self, notify: &Notify, our_uuid: &str) -> Option<Defend> {
        let theirs = notify.uuid()?;
        if theirs.eq_ignore_ascii_case(our_uuid)
            || notify.nts != Nts::Alive
            || notify.device_id != Some(self.id)
            || !self.settled
        {
            return None;
        }
        Some(Defend {
            device_id: self.id,
            port: notify.search_port.unwrap_or(SSDP_PORT),
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Device description (§8.7)
// ---------------------------------------------------------------------------------------------

/// Escape text for XML element content and attribute values.
pub fn xml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // Characters XML 1.0 cannot carry at all.
            c if (c as u32) < 0x20 && !matches!(c, '\t' | '\n' | '\r') => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// One `<icon>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Icon {
    pub mimetype: String,
    pub width: u32,
    pub height: u32,
    pub depth: u32,
    /// Root-relative URL ([VLC] prefixes scheme://host:port).
    pub url: String,
}

impl Icon {
    pub fn new(mimetype: &str, size: u32, url: &str) -> Icon {
        Icon {
            mimetype: mimetype.to_owned(),
            width: size,
            height: size,
            depth: 24,
            url: url.to_owned(),
        }
    }
}

/// The icon set the spec asks for: PNG and JPEG at 48×48 and 120×120 under `/img/`.
pub fn default_icons() -> Vec<Icon> {
    vec![
        Icon::new("image/png", 48, "/img/icon48.png"),
        Icon::new("image/png", 120, "/img/icon120.png"),
        Icon::new("image/jpeg", 48, "/img/icon48.jpg"),
        Icon::new("image/jpeg", 120, "/img/icon120.jpg"),
    ]
}

/// Frontend counts for `satip:X_SATIPCAP`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SatipCaps {
    pub dvbs2: u32,
    pub dvbt: u32,
    pub dvbt2: u32,
    pub dvbc: u32,
    pub dvbc2: u32,
}

impl SatipCaps {
    /// Count one frontend from the `msys` names it supports, the way [MS] does: satellite under
    /// DVBS2; a T2-capable tuner only under DVBT2, else DVBT; a C2-capable one only under
    /// DVBC2, else DVBC. A combo tuner (e.g. S2 + T2) is counted in each group.
    pub fn add_frontend(&mut self, systems: &[&str]) {
        let has = |n: &str| systems.iter().any(|s| s.eq_ignore_ascii_case(n));
        if has("dvbs") || has("dvbs2") {
            self.dvbs2 = self.dvbs2.saturating_add(1);
        }
        if has("dvbt2") {
            self.dvbt2 = self.dvbt2.saturating_add(1);
        } else if has("dvbt") {
            self.dvbt = self.dvbt.saturating_add(1);
        }
        if has("dvbc2") {
            self.dvbc2 = self.dvbc2.saturating_add(1);
        } else if has("dvbc") {
            self.dvbc = self.dvbc.saturating_add(1);
        }
    }

    /// Frontends in X_SATIPCAP order (clients number `fe` in this order).
    pub fn total(&self) -> u32 {
        [self.dvbs2, self.dvbt, self.dvbt2, self.dvbc, self.dvbc2]
            .iter()
            .fold(0u32, |a, b| a.saturating_add(*b))
    }
}

/// `DVBS2-2,DVBT2-1,DVBC-1`: non-zero groups in the order DVBS2, DVBT, DVBT2, DVBC, DVBC2;
/// `DVBS2-0` when there is no frontend at all (as [MS]).
impl fmt::Display for SatipCaps {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let groups = [
            ("DVBS2", self.dvbs2),
            ("DVBT", self.dvbt),
            ("DVBT2", self.dvbt2),
            ("DVBC", self.dvbc),
            ("DVBC2", self.dvbc2),
        ];
        let mut first = true;
        for (name, n) in groups.iter().filter(|(_, n)| *n > 0) {
            if !first {
                f.write_str(",")?;
            }
            first = false;
            write!(f, "{name}-{n}")?;
        }
        if first {
            f.write_str("DVBS2-0")?;
        }
        Ok(())
    }
}

/// The UPnP device description document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceDescription {
    /// Must equal `CONFIGID.UPNP.ORG`.
    pub config_id: u32,
    pub friendly_name: String,
    pub manufacturer: String,
    pub manufacturer_url: Option<String>,
    pub model_description: Option<String>,
    pub model_name: String,
    pub model_number: Option<String>,
    pub model_url: Option<String>,
    pub serial_number: Option<String>,
    /// Same UUID as in every USN (without `uuid:`).
    pub uuid: String,
    pub icons: Vec<Icon>,
    pub presentation_url: Option<String>,
    pub caps: SatipCaps,
    /// Channel list URL for `satip:X_SATIPM3U`.
    pub m3u_url: Option<String>,
}

impl DeviceDescription {
    /// The XML document; it ends with `</root>` (no trailing newline). Serve as `text/xml`.
    pub fn to_xml(&self) -> String {
        let mut s = String::from("<?xml version=\"1.0\"?>\n");
        s.push_str(&format!(
            "<root xmlns=\"urn:schemas-upnp-org:device-1-0\" configId=\"{}\">\n",
            self.config_id
        ));
        s.push_str("  <specVersion><major>1</major><minor>1</minor></specVersion>\n");
        s.push_str("  <device>\n");
        let mut el = |name: &str, value: &str| {
            s.push_str(&format!("    <{name}>{}</{name}>\n", xml_escape(value)));
        };
        el("deviceType", SATIP_DEVICE_TYPE);
        el("friendlyName", &self.friendly_name);
        el("manufacturer", &self.manufacturer);
        if let Some(v) = &self.manufacturer_url {
            el("manufacturerURL", v);
        }
        if let Some(v) = &self.model_description {
            el("modelDescription", v);
        }
        el("modelName", &self.model_name);
        if let Some(v) = &self.model_number {
            el("modelNumber", v);
        }
        if let Some(v) = &self.model_url {
            el("modelURL", v);
        }
        if let Some(v) = &self.serial_number {
            el("serialNumber", v);
        }
        el("UDN", &format!("uuid:{}", self.uuid));
        if !self.icons.is_empty() {
            s.push_str("    <iconList>\n");
            for i in &self.icons {
                s.push_str(&format!(
                    "      <icon><mimetype>{}</mimetype><width>{}</width><height>{}</height>\
                     <depth>{}</depth><url>{}</url></icon>\n",
                    xml_escape(&i.mimetype),
                    i.width,
                    i.height,
                    i.depth,
                    xml_escape(&i.url)
                ));
            }
            s.push_str("    </iconList>\n");
        }
        if let Some(v) = &self.presentation_url {
            s.push_str(&format!(
                "    <presentationURL>{}</presentationURL>\n",
                xml_escape(v)
            ));
        }
        s.push_str(&format!(
            "    <satip:X_SATIPCAP xmlns:satip=\"{SATIP_XML_NS}\">{}</satip:X_SATIPCAP>\n",
            self.caps
        ));
        if let Some(v) = &self.m3u_url {
            s.push_str(&format!(
                "    <satip:X_SATIPM3U xmlns:satip=\"{SATIP_XML_NS}\">{}</satip:X_SATIPM3U>\n",
                xml_escape(v)
            ));
        }
        s.push_str("  </device>\n</root>");
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const UUID: &str = "3f2a9c10-5b7e-4d21-9a0c-00155d0a0b0c";

    fn identity() -> Identity {
        Identity {
            uuid: UUID.to_owned(),
            location: "http://10.0.0.5:8080/desc.xml".to_owned(),
            server: "Linux/6.1 UPnP/1.1 satipd/0.3".to_owned(),
            max_age: DEFAULT_MAX_AGE,
            boot_id: 17,
            config_id: 0,
            device_id: Some(1),
            search_port: None,
        }
    }

    fn search(st: &str) -> SearchRequest {
        let msg = format!(
            "M-SEARCH * HTTP/1.1\r\nHOST: 239.255.255.250:1900\r\nMAN: \"ssdp:discover\"\r\nMX: 2\r\nST: {st}\r\n\r\n"
        );
        match parse_message(msg.as_bytes()) {
            Ok(Message::Search(s)) => s,
            other => panic!("not a search: {other:?}"),
        }
    }

    fn header<'a>(msg: &'a str, name: &str) -> Option<&'a str> {
        msg.split("\r\n").find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }

    #[test]
    fn alive_message_bytes() {
        let expected = "NOTIFY * HTTP/1.1\r\n\
HOST: 239.255.255.250:1900\r\n\
CACHE-CONTROL: max-age=1800\r\n\
LOCATION: http://10.0.0.5:8080/desc.xml\r\n\
NT: urn:ses-com:device:SatIPServer:1\r\n\
NTS: ssdp:alive\r\n\
SERVER: Linux/6.1 UPnP/1.1 satipd/0.3\r\n\
USN: uuid:3f2a9c10-5b7e-4d21-9a0c-00155d0a0b0c::urn:ses-com:device:SatIPServer:1\r\n\
BOOTID.UPNP.ORG: 17\r\n\
CONFIGID.UPNP.ORG: 0\r\n\
DEVICEID.SES.COM: 1\r\n\
\r\n";
        assert_eq!(alive(&identity(), Nt::DeviceType), expected);
        let mut id = identity();
        id.search_port = Some(1901);
        id.device_id = None;
        let m = alive(&id, Nt::RootDevice);
        assert_eq!(header(&m, "SEARCHPORT.UPNP.ORG"), Some("1901"));
        assert_eq!(header(&m, "DEVICEID.SES.COM"), None);
    }

    #[test]
    fn checklist_109_three_alive_messages() {
        let set = alive_set(&identity());
        let rows: Vec<(Option<&str>, Option<&str>)> = set
            .iter()
            .map(|m| (header(m, "NT"), header(m, "USN")))
            .collect();
        assert_eq!(
            rows,
            vec![
                (Some("upnp:rootdevice"), Some("uuid:3f2a9c10-5b7e-4d21-9a0c-00155d0a0b0c::upnp:rootdevice")),
                (Some("uuid:3f2a9c10-5b7e-4d21-9a0c-00155d0a0b0c"), Some("uuid:3f2a9c10-5b7e-4d21-9a0c-00155d0a0b0c")),
                (
                    Some("urn:ses-com:device:SatIPServer:1"),
                    Some("uuid:3f2a9c10-5b7e-4d21-9a0c-00155d0a0b0c::urn:ses-com:device:SatIPServer:1")
                ),
            ]
        );
        for m in &set {
            assert!(m.starts_with("NOTIFY * HTTP/1.1\r\n") && m.ends_with("\r\n\r\n"));
            assert_eq!(header(m, "HOST"), Some(SSDP_HOST));
        }
    }

    #[test]
    fn checklist_110_alive_headers() {
        for m in alive_set(&identity()) {
            for h in [
                "HOST",
                "CACHE-CONTROL",
                "LOCATION",
                "NT",
                "NTS",
                "SERVER",
                "USN",
                "BOOTID.UPNP.ORG",
                "CONFIGID.UPNP.ORG",
                "DEVICEID.SES.COM",
            ] {
                assert!(header(&m, h).is_some(), "{h} missing in {m}");
            }
            // And our parser reads it back.
            match parse_message(m.as_bytes()) {
                Ok(Message::Notify(n)) => {
                    assert_eq!(n.nts, Nts::Alive);
                    assert_eq!(n.max_age, Some(1800));
                    assert_eq!(
                        (n.boot_id, n.config_id, n.device_id),
                        (Some(17), Some(0), Some(1))
                    );
                    assert_eq!(n.uuid(), Some(UUID));
                    assert_eq!(n.location.as_deref(), Some("http://10.0.0.5:8080/desc.xml"));
                }
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn checklist_112_byebye_headers() {
        let set = byebye_set(&identity());
        assert_eq!(
            set[0],
            "NOTIFY * HTTP/1.1\r\nHOST: 239.255.255.250:1900\r\nNT: upnp:rootdevice\r\nNTS: ssdp:byebye\r\n\
USN: uuid:3f2a9c10-5b7e-4d21-9a0c-00155d0a0b0c::upnp:rootdevice\r\nBOOTID.UPNP.ORG: 17\r\nCONFIGID.UPNP.ORG: 0\r\n\r\n"
        );
        for m in &set {
            for absent in ["CACHE-CONTROL", "LOCATION", "SERVER", "DEVICEID.SES.COM"] {
                assert!(header(m, absent).is_none(), "{absent} in byebye");
            }
            assert!(matches!(
                parse_message(m.as_bytes()),
                Ok(Message::Notify(Notify {
                    nts: Nts::ByeBye,
                    ..
                }))
            ));
        }
    }

    #[test]
    fn msearch_spec_example() {
        let msg = b"M-SEARCH * HTTP/1.1\r\nHOST: 239.255.255.250:1900\r\nMAN: \"ssdp:discover\"\r\nMX: 2\r\n\
ST: urn:ses-com:device:SatIPServer:1\r\nUSER-AGENT: Android/14 UPnP/1.1 someapp/2.0\r\n\r\n";
        let expected = SearchRequest {
            host: Some("239.255.255.250:1900".to_owned()),
            mx: Some(2),
            st: SATIP_DEVICE_TYPE.to_owned(),
            user_agent: Some("Android/14 UPnP/1.1 someapp/2.0".to_owned()),
            device_id: None,
        };
        assert_eq!(parse_message(msg), Ok(Message::Search(expected.clone())));
        assert_eq!(expected.check(true), Ok(()));
        assert_eq!(expected.max_delay_ms(), 2000);
        assert_eq!(expected.targets(UUID), vec![Nt::DeviceType]);
    }

    #[test]
    fn checklist_114_search_response() {
        let date = http_date(1_741_112_411);
        assert_eq!(date, "Tue, 04 Mar 2025 18:20:11 GMT");
        let expected = "HTTP/1.1 200 OK\r\n\
CACHE-CONTROL: max-age=1800\r\n\
DATE: Tue, 04 Mar 2025 18:20:11 GMT\r\n\
EXT:\r\n\
LOCATION: http://10.0.0.5:8080/desc.xml\r\n\
SERVER: Linux/6.1 UPnP/1.1 satipd/0.3\r\n\
ST: urn:ses-com:device:SatIPServer:1\r\n\
USN: uuid:3f2a9c10-5b7e-4d21-9a0c-00155d0a0b0c::urn:ses-com:device:SatIPServer:1\r\n\
BOOTID.UPNP.ORG: 17\r\n\
CONFIGID.UPNP.ORG: 0\r\n\
\r\n";
        let r = search_response(&identity(), Nt::DeviceType, Some(&date), None);
        assert_eq!(r, expected);
        assert!(header(&r, "DEVICEID.SES.COM").is_none());
        let r = search_response(&identity(), Nt::DeviceType, None, Some(1));
        assert_eq!(header(&r, "DEVICEID.SES.COM"), Some("1"));
        assert!(header(&r, "DATE").is_none());
        match parse_message(r.as_bytes()) {
            Ok(Message::Response(resp)) => {
                assert_eq!(resp.status, 200);
                assert_eq!(resp.st.as_deref(), Some(SATIP_DEVICE_TYPE));
                assert_eq!(resp.device_id, Some(1));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn checklist_115_ssdp_all_gets_three() {
        let s = search("ssdp:all");
        assert_eq!(s.targets(UUID), Nt::ALL.to_vec());
        let sts: Vec<String> = s
            .targets(UUID)
            .into_iter()
            .map(|nt| search_response(&identity(), nt, None, None))
            .filter_map(|r| header(&r, "ST").map(str::to_owned))
            .collect();
        assert_eq!(
            sts,
            vec![
                "upnp:rootdevice".to_owned(),
                format!("uuid:{UUID}"),
                SATIP_DEVICE_TYPE.to_owned()
            ]
        );
        assert_eq!(
            search("upnp:rootdevice").targets(UUID),
            vec![Nt::RootDevice]
        );
        assert_eq!(
            search(&format!("uuid:{}", UUID.to_uppercase())).targets(UUID),
            vec![Nt::Uuid]
        );
    }

    #[test]
    fn checklist_116_unrelated_st_no_reply() {
        assert!(search("urn:schemas-upnp-org:device:MediaServer:1")
            .targets(UUID)
            .is_empty());
        assert!(search("uuid:00000000-0000-0000-0000-000000000000")
            .targets(UUID)
            .is_empty());
    }

    #[test]
    fn checklist_117_mixed_case_headers() {
        let msg = b"M-SEARCH * HTTP/1.1\r\nHost:239.255.255.250:1900\r\nMan:\"ssdp:discover\"\r\nMx:1\r\n\
St:urn:ses-com:device:SatIPServer:1\r\n\r\n";
        match parse_message(msg) {
            Ok(Message::Search(s)) => {
                assert_eq!(s.targets(UUID), vec![Nt::DeviceType]);
                assert_eq!(s.mx, Some(1));
            }
            other => panic!("{other:?}"),
        }
        // Bare LF line ends and no final empty line are tolerated too.
        let msg = b"M-SEARCH * HTTP/1.1\nMAN: \"ssdp:discover\"\nST: ssdp:all";
        assert!(matches!(parse_message(msg), Ok(Message::Search(_))));
    }

    #[test]
    fn msearch_rejections() {
        let ok = "M-SEARCH * HTTP/1.1\r\nHOST: 239.255.255.250:1900\r\nMAN: \"ssdp:discover\"\r\nMX: 2\r\nST: ssdp:all\r\n\r\n";
        assert!(parse_message(ok.as_bytes()).is_ok());
        let cases: Vec<(String, ParseError)> = vec![
            (
                ok.replace("\"ssdp:discover\"", "ssdp:discover"),
                ParseError::BadValue("MAN"),
            ),
            (
                ok.replace("MAN: \"ssdp:discover\"\r\n", ""),
                ParseError::MissingHeader("MAN"),
            ),
            (
                ok.replace("ST: ssdp:all\r\n", ""),
                ParseError::MissingHeader("ST"),
            ),
            (
                ok.replace("ST: ssdp:all", "ST:"),
                ParseError::MissingHeader("ST"),
            ),
            (ok.replace("MX: 2", "MX: two"), ParseError::BadValue("MX")),
            (ok.replace("MX: 2", "MX: -1"), ParseError::BadValue("MX")),
            (
                ok.replace("MX: 2", "MX: 99999999999"),
                ParseError::BadValue("MX"),
            ),
            (
                ok.replace(
                    "ST: ssdp:all\r\n",
                    "ST: ssdp:all\r\nst: upnp:rootdevice\r\n",
                ),
                ParseError::DuplicateHeader("ST"),
            ),
            (
                ok.replace("MX: 2\r\n", "MX: 2\r\n continued\r\n"),
                ParseError::MalformedHeader,
            ),
            (
                ok.replace("MX: 2\r\n", "garbage line\r\n"),
                ParseError::MalformedHeader,
            ),
            (
                ok.replace("MX: 2\r\n", ": x\r\n"),
                ParseError::MalformedHeader,
            ),
            (
                ok.replace("M-SEARCH * HTTP/1.1", "M-SEARCH / HTTP/1.1"),
                ParseError::BadStartLine,
            ),
            (
                ok.replace("M-SEARCH * HTTP/1.1", "GET / HTTP/1.1"),
                ParseError::BadStartLine,
            ),
            (
                ok.replace("DEVICEID", "x")
                    .replace("MX: 2", "DEVICEID.SES.COM: 300"),
                ParseError::BadValue("DEVICEID.SES.COM"),
            ),
            (String::new(), ParseError::Truncated),
            ("\r\n".to_owned(), ParseError::Truncated),
        ];
        for (msg, e) in cases {
            assert_eq!(parse_message(msg.as_bytes()), Err(e), "{msg:?}");
        }
        assert_eq!(parse_message(&[0xff, 0xfe]), Err(ParseError::NotUtf8));
        let big = format!("{ok}{}", "x".repeat(MAX_MESSAGE_LEN));
        assert!(matches!(
            parse_message(big.as_bytes()),
            Err(ParseError::TooLarge(_))
        ));
        let many = ok.replace("MX: 2\r\n", &"X-A: 1\r\n".repeat(MAX_HEADERS + 1));
        assert_eq!(parse_message(many.as_bytes()), Err(ParseError::Truncated));
        // MX is only required on multicast searches.
        let unicast = ok.replace("MX: 2\r\n", "");
        match parse_message(unicast.as_bytes()) {
            Ok(Message::Search(s)) => {
                assert_eq!(s.check(false), Ok(()));
                assert_eq!(s.check(true), Err(ParseError::MissingHeader("MX")));
                assert_eq!(s.max_delay_ms(), 0);
            }
            other => panic!("{other:?}"),
        }
        // MX is capped at 5 s.
        assert_eq!(search("ssdp:all").max_delay_ms(), 2000);
        let s = SearchRequest {
            host: None,
            mx: Some(120),
            st: String::new(),
            user_agent: None,
            device_id: None,
        };
        assert_eq!(s.max_delay_ms(), 5000);
    }

    #[test]
    fn notify_from_others_and_own_packets() {
        let other = "NOTIFY * HTTP/1.1\r\nHOST: 239.255.255.250:1900\r\nCACHE-CONTROL: no-cache, max-age=120\r\n\
LOCATION: http://10.0.0.9/desc.xml\r\nNT: upnp:rootdevice\r\nNTS: ssdp:alive\r\nSERVER: x\r\n\
USN: uuid:11111111-2222-3333-4444-555555555555::upnp:rootdevice\r\nDEVICEID.SES.COM: 1\r\nSEARCHPORT.UPNP.ORG: 1901\r\n\r\n";
        let m = parse_message(other.as_bytes()).expect("notify");
        assert_eq!(
            m.sender_uuid(),
            Some("11111111-2222-3333-4444-555555555555")
        );
        match m {
            Message::Notify(n) => {
                assert_eq!(n.max_age, Some(120));
                assert_eq!(n.search_port, Some(1901));
                assert_eq!(n.device_id, Some(1));
            }
            other => panic!("{other:?}"),
        }
        let own = parse_message(alive(&identity(), Nt::Uuid).as_bytes()).expect("own");
        assert_eq!(own.sender_uuid(), Some(UUID));
        let bad = other.replace("ssdp:alive", "ssdp:dead");
        assert_eq!(
            parse_message(bad.as_bytes()),
            Err(ParseError::BadValue("NTS"))
        );
        let bad = other.replace("max-age=120", "max-age=soon");
        assert_eq!(
            parse_message(bad.as_bytes()),
            Err(ParseError::BadValue("CACHE-CONTROL"))
        );
        assert!(is_valid_uuid(UUID));
        assert!(!is_valid_uuid("3f2a9c10-5b7e-4d21-9a0c-00155d0a0b0"));
        assert!(!is_valid_uuid("zf2a9c10-5b7e-4d21-9a0c-00155d0a0b0c"));
        assert_eq!(usn_uuid("uuid:abc::upnp:rootdevice"), Some("abc"));
        assert_eq!(usn_uuid("abc"), None);
    }

    #[test]
    fn checklist_118_conflict_while_joining() {
        let mut n = DeviceIdNegotiator::new(1);
        n.announced(10_000);
        // A defender asks within 5 s: answer with the clashing id, announce id + 1.
        let v = n.on_search(Some(1), 12_000);
        assert_eq!(
            v,
            SearchVerdict::Yield {
                old_id: 1,
                new_id: 2
            }
        );
        let reply = search_response(&identity(), Nt::DeviceType, None, Some(1));
        assert_eq!(header(&reply, "DEVICEID.SES.COM"), Some("1"));
        let mut id = identity();
        id.boot_id = next_boot_id(id.boot_id);
        id.device_id = Some(n.device_id());
        for m in alive_set(&id) {
            assert_eq!(header(&m, "DEVICEID.SES.COM"), Some("2"));
            assert_eq!(header(&m, "BOOTID.UPNP.ORG"), Some("18"));
        }
        n.announced(12_100);
        // Repeats of the same defence (one per NOTIFY of the old set) change nothing more.
        assert_eq!(
            n.on_search(Some(1), 12_200),
            SearchVerdict::Answer { device_id: Some(2) }
        );
        // Not settled until 5 s after the new announcement.
        assert_eq!(n.poll(17_000), None);
        assert_eq!(n.poll(17_100), Some(2));
        assert_eq!(n.poll(18_000), None, "reported once");
        assert!(n.is_settled());
        // Later change requests are refused.
        assert_eq!(
            n.on_search(Some(2), 30_000),
            SearchVerdict::Refuse { device_id: 2 }
        );
        let r = search_refusal(&identity(), 2);
        assert!(r.starts_with("HTTP/1.1 400 Bad Request\r\n"));
        assert_eq!(header(&r, "DEVICEID.SES.COM"), Some("2"));
        // Ordinary client searches carry no id and get none.
        assert_eq!(
            n.on_search(None, 30_000),
            SearchVerdict::Answer { device_id: None }
        );
    }

    #[test]
    fn device_id_window_and_range() {
        let mut n = DeviceIdNegotiator::new(254);
        // Before announcing, nobody can clash with us.
        assert_eq!(
            n.on_search(Some(254), 0),
            SearchVerdict::Answer {
                device_id: Some(254)
            }
        );
        n.announced(0);
        assert_eq!(
            n.on_search(Some(254), 4_999),
            SearchVerdict::Yield {
                old_id: 254,
                new_id: 1
            }
        );
        n.announced(5_000);
        // Past the window but not yet polled: treated as settled.
        assert_eq!(
            n.on_search(Some(1), 10_000),
            SearchVerdict::Refuse { device_id: 1 }
        );
        assert_eq!(DeviceIdNegotiator::new(0).device_id(), 1);
        assert_eq!(DeviceIdNegotiator::new(255).device_id(), 1);
        assert_eq!(next_device_id(1), 2);
        assert_eq!(next_device_id(253), 254);
        assert_eq!(next_device_id(254), 1);
        assert_eq!(next_device_id(0), 1);
        assert_eq!(n.poll(u64::MAX), Some(1));
        let mut late = DeviceIdNegotiator::new(3);
        assert_eq!(late.poll(1_000_000), None, "never announced, never settles");
    }

    #[test]
    fn checklist_119_defend_settled_id() {
        let us = DeviceIdNegotiator::settled(1);
        let joiner = "NOTIFY * HTTP/1.1\r\nHOST: 239.255.255.250:1900\r\nNT: upnp:rootdevice\r\nNTS: ssdp:alive\r\n\
USN: uuid:11111111-2222-3333-4444-555555555555::upnp:rootdevice\r\nDEVICEID.SES.COM: 1\r\n\r\n";
        let Ok(Message::Notify(n)) = parse_message(joiner.as_bytes()) else {
            panic!("notify")
        };
        assert_eq!(
            us.on_notify(&n, UUID),
            Some(Defend {
                device_id: 1,
                port: SSDP_PORT
            })
        );
        // Byte-exact defence of §8.6 step 2 (HOST = target address).
        assert_eq!(
            defend_search("10.0.0.9:1900", "Linux/6.1 UPnP/1.1 satipd/0.3", 1),
            "M-SEARCH * HTTP/1.1\r\nHOST: 10.0.0.9:1900\r\nMAN: \"ssdp:discover\"\r\nST: urn:ses-com:device:SatIPServer:1\r\n\
USER-AGENT: Linux/6.1 UPnP/1.1 satipd/0.3\r\nDEVICEID.SES.COM: 1\r\n\r\n"
        );
        // The joiner parses it as a server-to-server search.
        let Ok(Message::Search(s)) =
            parse_message(defend_search("10.0.0.9:1900", "x", 1).as_bytes())
        else {
            panic!("search")
        };
        assert_eq!(s.device_id, Some(1));
        assert_eq!(s.check(false), Ok(()));
        // No defence: other id, our own NOTIFY, byebye, or we are not settled ourselves.
        let Ok(Message::Notify(other_id)) =
            parse_message(joiner.replace("ID.SES.COM: 1", "ID.SES.COM: 2").as_bytes())
        else {
            panic!("notify")
        };
        assert_eq!(us.on_notify(&other_id, UUID), None);
        let Ok(Message::Notify(own)) = parse_message(alive(&identity(), Nt::RootDevice).as_bytes())
        else {
            panic!("notify")
        };
        assert_eq!(us.on_notify(&own, UUID), None);
        let Ok(Message::Notify(bye)) =
            parse_message(joiner.replace("ssdp:alive", "ssdp:byebye").as_bytes())
        else {
            panic!("notify")
        };
        assert_eq!(us.on_notify(&bye, UUID), None);
        assert_eq!(DeviceIdNegotiator::new(1).on_notify(&n, UUID), None);
        let Ok(Message::Notify(sp)) = parse_message(
            joiner
                .replace("\r\n\r\n", "\r\nSEARCHPORT.UPNP.ORG: 1902\r\n\r\n")
                .as_bytes(),
        ) else {
            panic!("notify")
        };
        assert_eq!(
            us.on_notify(&sp, UUID),
            Some(Defend {
                device_id: 1,
                port: 1902
            })
        );
    }

    #[test]
    fn checklist_120_boot_id_grows() {
        assert!(next_boot_id(17) > 17);
        assert_eq!(next_boot_id(0x7FFF_FFFE), 0x7FFF_FFFF);
        assert_eq!(next_boot_id(0x7FFF_FFFF), 1);
        assert_eq!(next_boot_id(u32::MAX), 1);
        // The stored, settled id is reused as is after a restart.
        assert_eq!(DeviceIdNegotiator::new(7).device_id(), 7);
    }

    fn spec_description() -> DeviceDescription {
        DeviceDescription {
            config_id: 0,
            friendly_name: "satipd living room".to_owned(),
            manufacturer: "Example Project".to_owned(),
            manufacturer_url: Some("http://example.org/".to_owned()),
            model_description: Some("satipd SAT>IP server for Linux DVB".to_owned()),
            model_name: "satipd".to_owned(),
            model_number: Some("0.3".to_owned()),
            model_url: Some("http://example.org/satipd".to_owned()),
            serial_number: Some("00155d0a0b0c".to_owned()),
            uuid: UUID.to_owned(),
            icons: default_icons(),
            presentation_url: Some("/".to_owned()),
            caps: SatipCaps {
                dvbs2: 2,
                dvbt2: 1,
                dvbc: 1,
                ..SatipCaps::default()
            },
            m3u_url: Some("/channels.m3u".to_owned()),
        }
    }

    #[test]
    fn description_spec_example() {
        let expected = r#"<?xml version="1.0"?>
<root xmlns="urn:schemas-upnp-org:device-1-0" configId="0">
  <specVersion><major>1</major><minor>1</minor></specVersion>
  <device>
    <deviceType>urn:ses-com:device:SatIPServer:1</deviceType>
    <friendlyName>satipd living room</friendlyName>
    <manufacturer>Example Project</manufacturer>
    <manufacturerURL>http://example.org/</manufacturerURL>
    <modelDescription>satipd SAT&gt;IP server for Linux DVB</modelDescription>
    <modelName>satipd</modelName>
    <modelNumber>0.3</modelNumber>
    <modelURL>http://example.org/satipd</modelURL>
    <serialNumber>00155d0a0b0c</serialNumber>
    <UDN>uuid:3f2a9c10-5b7e-4d21-9a0c-00155d0a0b0c</UDN>
    <iconList>
      <icon><mimetype>image/png</mimetype><width>48</width><height>48</height><depth>24</depth><url>/img/icon48.png</url></icon>
      <icon><mimetype>image/png</mimetype><width>120</width><height>120</height><depth>24</depth><url>/img/icon120.png</url></icon>
      <icon><mimetype>image/jpeg</mimetype><width>48</width><height>48</height><depth>24</depth><url>/img/icon48.jpg</url></icon>
      <icon><mimetype>image/jpeg</mimetype><width>120</width><height>120</height><depth>24</depth><url>/img/icon120.jpg</url></icon>
    </iconList>
    <presentationURL>/</presentationURL>
    <satip:X_SATIPCAP xmlns:satip="urn:ses-com:satip">DVBS2-2,DVBT2-1,DVBC-1</satip:X_SATIPCAP>
    <satip:X_SATIPM3U xmlns:satip="urn:ses-com:satip">/channels.m3u</satip:X_SATIPM3U>
  </device>
</root>"#;
        assert_eq!(spec_description().to_xml(), expected);
    }

    #[test]
    fn checklist_104_config_id_matches() {
        let mut d = spec_description();
        d.config_id = 42;
        let mut id = identity();
        id.config_id = 42;
        assert!(d
            .to_xml()
            .contains("<root xmlns=\"urn:schemas-upnp-org:device-1-0\" configId=\"42\">"));
        assert_eq!(
            header(&alive(&id, Nt::Uuid), "CONFIGID.UPNP.ORG"),
            Some("42")
        );
        assert!(d.to_xml().ends_with("</root>"));
    }

    #[test]
    fn checklist_105_device_type_and_udn() {
        let xml = spec_description().to_xml();
        assert!(xml.contains("<deviceType>urn:ses-com:device:SatIPServer:1</deviceType>"));
        let udn = xml
            .split("<UDN>")
            .nth(1)
            .and_then(|r| r.split("</UDN>").next())
            .expect("UDN");
        for m in alive_set(&identity()) {
            assert!(header(&m, "USN").is_some_and(|usn| usn.starts_with(udn)));
        }
    }

    #[test]
    fn checklist_106_satipcap() {
        let mut caps = SatipCaps::default();
        assert_eq!(caps.to_string(), "DVBS2-0");
        caps.add_frontend(&["dvbs", "dvbs2"]);
        caps.add_frontend(&["dvbt"]);
        caps.add_frontend(&["dvbt"]);
        caps.add_frontend(&["dvbt", "dvbt2", "dvbc"]);
        caps.add_frontend(&["DVBT2", "dvbc2"]);
        caps.add_frontend(&["dvbc"]);
        assert_eq!(caps.to_string(), "DVBS2-1,DVBT-2,DVBT2-2,DVBC-2,DVBC2-1");
        let caps = SatipCaps {
            dvbs2: 1,
            dvbt: 2,
            dvbt2: 2,
            dvbc: 1,
            dvbc2: 0,
        };
        assert_eq!(caps.to_string(), "DVBS2-1,DVBT-2,DVBT2-2,DVBC-1");
        assert_eq!(caps.total(), 6);
        assert_eq!(
            SatipCaps {
                dvbs2: 12,
                ..SatipCaps::default()
            }
            .to_string(),
            "DVBS2-12"
        );
        // Grammar SYS-N(,SYS-N)* with the satip prefix bound to urn:ses-com:satip.
        for entry in caps.to_string().split(',') {
            let (sys, n) = entry.split_once('-').expect("SYS-N");
            assert!(["DVBS2", "DVBT", "DVBT2", "DVBC", "DVBC2"].contains(&sys));
            assert!(!n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
        }
        let mut d = spec_description();
        d.caps = caps;
        assert!(d.to_xml().contains(
            "<satip:X_SATIPCAP xmlns:satip=\"urn:ses-com:satip\">DVBS2-1,DVBT-2,DVBT2-2,DVBC-1</satip:X_SATIPCAP>"
        ));
    }

    #[test]
    fn checklist_107_icons() {
        let icons = default_icons();
        for mime in ["image/png", "image/jpeg"] {
            for size in [48, 120] {
                assert!(icons
                    .iter()
                    .any(|i| i.mimetype == mime && i.width == size && i.height == size));
            }
        }
        assert!(icons.iter().all(|i| i.url.starts_with('/')));
    }

    #[test]
    fn xml_escaping() {
        assert_eq!(
            xml_escape("a<b>&\"c'\u{1}"),
            "a&lt;b&gt;&amp;&quot;c&apos; "
        );
        let mut d = spec_description();
        d.friendly_name = "Tom & Jerry's <tuner>".to_owned();
        d.m3u_url = None;
        d.presentation_url = None;
        d.icons.clear();
        let xml = d.to_xml();
        assert!(xml.contains("<friendlyName>Tom &amp; Jerry&apos;s &lt;tuner&gt;</friendlyName>"));
        assert!(
            !xml.contains("X_SATIPM3U")
                && !xml.contains("iconList")
                && !xml.contains("presentationURL")
        );
    }

    #[test]
    fn http_dates() {
        assert_eq!(http_date(0), "Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(http_date(951_782_400), "Tue, 29 Feb 2000 00:00:00 GMT");
        assert_eq!(http_date(4_102_444_799), "Thu, 31 Dec 2099 23:59:59 GMT");
        let _ = http_date(u64::MAX);
    }

    /// Deterministic pseudo-random datagrams: nothing may panic.
    #[test]
    fn never_panics_on_garbage() {
        let seeds: [&[u8]; 3] = [
            b"M-SEARCH * HTTP/1.1\r\nMAN: \"ssdp:discover\"\r\nMX: 2\r\nST: ssdp:all\r\nDEVICEID.SES.COM: 1\r\n\r\n",
            b"NOTIFY * HTTP/1.1\r\nNT: a\r\nNTS: ssdp:alive\r\nUSN: uuid:x::y\r\nCACHE-CONTROL: max-age=5\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nST: x\r\nUSN: uuid:y\r\n\r\n",
        ];
        let mut x: u64 = 0x2545_F491_4F6C_DD1D;
        let mut n = DeviceIdNegotiator::new(1);
        for round in 0..6000u64 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let mut data = seeds[(round % 3) as usize].to_vec();
            for k in 0..(x % 6) {
                let pos = ((x >> (8 * k)) as usize) % (data.len() + 1);
                let byte = (x >> (5 * k)) as u8;
                match (x >> (3 * k)) % 3 {
                    0 => data.insert(pos, byte),
                    1 if pos < data.len() => {
                        data.remove(pos);
                    }
                    _ => data.truncate(pos),
                }
            }
            match parse_message(&data) {
                Ok(Message::Search(s)) => {
                    let _ = s.targets(UUID);
                    let _ = n.on_search(s.device_id, round);
                }
                Ok(Message::Notify(nt)) => {
                    let _ = n.on_notify(&nt, UUID);
                }
                _ => {}
            }
        }
    }
}
