//! The RTSP `Transport` header (§3.4) and multicast address ranges.

use super::*;

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

/// Why a multicast range was refused (the `Display` text names the offending input).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MulticastRangeError {
    /// No `-` between two addresses.
    NotARange(String),
    /// One side is not an IPv4 address.
    NotIpv4(String),
    /// An address outside 224.0.0.0/4.
    NotMulticast(String),
    /// The first address is after the last.
    Reversed(String),
}

impl fmt::Display for MulticastRangeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MulticastRangeError::NotARange(s) => write!(f, "{s:?} is not FIRST-LAST"),
            MulticastRangeError::NotIpv4(a) => write!(f, "{a:?} is not an IPv4 address"),
            MulticastRangeError::NotMulticast(s) => write!(f, "{s:?} is not inside 224.0.0.0/4"),
            MulticastRangeError::Reversed(s) => write!(f, "{s:?}: first address after last"),
        }
    }
}

impl std::error::Error for MulticastRangeError {}

/// A multicast address range `first-last` (IPv4, both inside 224.0.0.0/4, first <= last).
pub fn parse_multicast_range(
    s: &str,
) -> Result<(std::net::Ipv4Addr, std::net::Ipv4Addr), MulticastRangeError> {
    let (a, b) = s
        .split_once('-')
        .ok_or_else(|| MulticastRangeError::NotARange(s.to_string()))?;
    let ip = |x: &str| {
        x.trim()
            .parse::<std::net::Ipv4Addr>()
            .map_err(|_| MulticastRangeError::NotIpv4(x.trim().to_string()))
    };
    let (a, b) = (ip(a)?, ip(b)?);
    if !a.is_multicast() || !b.is_multicast() {
        return Err(MulticastRangeError::NotMulticast(s.to_string()));
    }
    if u32::from(a) > u32::from(b) {
        return Err(MulticastRangeError::Reversed(s.to_string()));
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
        // The messages are the ones the launcher's configuration errors always showed.
        let e = |s: &str| parse_multicast_range(s).expect_err(s).to_string();
        assert_eq!(
            e("239.1.0.9-239.1.0.1"),
            "\"239.1.0.9-239.1.0.1\": first address after last"
        );
        assert_eq!(
            e("10.0.0.1-10.0.0.9"),
            "\"10.0.0.1-10.0.0.9\" is not inside 224.0.0.0/4"
        );
        assert_eq!(e("239.1.0.1"), "\"239.1.0.1\" is not FIRST-LAST");
        assert_eq!(e("239.1.0.1 - x"), "\"x\" is not an IPv4 address");
        assert_eq!(
            parse_multicast_range("239.1.0.1-x"),
            Err(MulticastRangeError::NotIpv4("x".into()))
        );
    }
}
