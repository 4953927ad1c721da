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
        && groups.iter().zip([8, 4, 4, 4, 12]).all(|(g, n)| {
            g.len() == n && g.bytes().all(|b| b.is_ascii_hexdigit())
        })
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
        "M-SEARCH * HTTP/1.1\r\nHOST: {target}\r\nMAN: \"ssdp:discover\"\r\nST: {SATIP_DEVICE_TYPE}\r\n\
         USER-AGENT: {user_agent}\r\nDEVICEID.SES.COM: {device_id}\r\n\r\n"
    )
}

/// RFC 1123 date (`Tue, 04 Mar 2025 18:20:11 GMT`) of a Unix time in seconds.
pub fn http_date(unix_secs: u64) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] =
        ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
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
    let mon = MONTHS.get((month as usize).saturating_sub(1)).copied().unwrap_or("Jan");
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
        } else if st.strip_prefix("uuid:").is_some_and(|u| u.eq_ignore_ascii_case(our_uuid)) {
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
        let id = if (1..=254).contains(&stored) { stored } else { 1 };
        DeviceIdNegotiator { id, settled: false, announced_at: None }
    }

    /// Start with an id known to be ours (no negotiation).
    pub fn settled(id: u8) -> Self {
        DeviceIdNegotiator { settled: true, ..DeviceIdNegotiator::new(id) }
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
            && self.announced_at.is_some_and(|t| now_ms.saturating_sub(t) < DEVICE_ID_SETTLE_MS)
    }

    /// Decide on an M-SEARCH that carried `their_id` in `DEVICEID.SES.COM` (or not).
    pub fn on_search(&mut self, their_id: Option<u8>, now_ms: u64) -> SearchVerdict {
        let Some(theirs) = their_id else {
            return SearchVerdict::Answer { device_id: None };
        };
        if theirs != self.id {
            return SearchVerdict::Answer { device_id: Some(self.id) };
        }
        if self.in_window(now_ms) {
            let old_id = self.id;
            self.id = next_device_id(old_id);
            self.announced_at = None;
            SearchVerdict::Yield { old_id, new_id: self.id }
        } else if self.settled || self.announced_at.is_some() {
            SearchVerdict::Refuse { device_id: self.id }
        } else {
            // Not announced yet: nobody can have seen our id; answer plainly.
            SearchVerdict::Answer { device_id: Some(self.id) }
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
        Some(Defend { device_id: self.id, port: notify.search_port.unwrap_or(SSDP_PORT) })
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
        Icon { mimetype: mimetype.to_owned(), width: size, height: size, depth: 24, url: url.to_owned() }
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
            s.push_str(&format!("    <presentationURL>{}</presentationURL>\n", xml_escape(v)));
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
