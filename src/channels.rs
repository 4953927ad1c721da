//! Channel queries (SAT>IP syntax) mapped onto `dvbtunersrc` properties, and the per-channel
//! DVB-CSS option (`css` of a `[[channel]]`).

use std::fmt;
use std::net::IpAddr;

use gstdvb2ip::proto::satip::{parse_query, Family, PidSet, StreamSpec, Tuning};
use gstdvb2ip::tuners::config::BroadcastConfig;
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::Deserialize;

/// Default TCP port of a channel's CSS-CII and CSS-TS (pydvbcss's convention).
pub const DEFAULT_CSS_CII_PORT: u16 = 7681;
/// Default UDP port of a channel's CSS-WC.
pub const DEFAULT_CSS_WC_PORT: u16 = 6677;

/// DVB-CSS for a channel mount: while the channel is played (its RTSP media exists), a
/// `tstimelineparse ! dvbcsssink` branch on the same stream serves CSS-CII
/// (`ws://HOST:cii_port/cii`), CSS-TS (`ws://HOST:cii_port/ts`) and CSS-WC
/// (`udp://HOST:wc_port`). In the configuration: `css = true` (the defaults) or a
/// `[channel.css]` table with any of these fields. Several CSS channels need distinct
/// ports (checked when the configuration is loaded).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChannelCss {
    /// TCP port of CSS-CII and CSS-TS (one WebSocket server, paths `/cii` and `/ts`);
    /// 0 picks a free port when the channel starts.
    #[serde(default = "default_cii_port")]
    pub cii_port: u16,
    /// UDP port of CSS-WC; 0 picks a free port when the channel starts.
    #[serde(default = "default_wc_port")]
    pub wc_port: u16,
    /// Address the CSS servers listen on ("" = `[server] bind`).
    #[serde(default)]
    pub bind: String,
    /// Service id whose timelines and identity are served (0 = the first program with
    /// timelines, normally the channel's only one).
    #[serde(default)]
    pub program: u16,
    /// How long after the stream leaves the server the TV presents it (ms): `dvbcsssink`'s
    /// `ts-offset`, so the CSS-TS timeline models a TV with this decoding and display delay
    /// (a real TV has hundreds of ms). Companion screens that receive the channel later than
    /// the RTSP stream leaves (the browser page of `/companion/<channel>`: transcoder and
    /// player buffer) can only play in sync with a TV that is at least that late. 0: the
    /// moment the stream leaves.
    #[serde(default)]
    pub presentation_delay_ms: u32,
}

impl Default for ChannelCss {
    fn default() -> Self {
        Self {
            cii_port: DEFAULT_CSS_CII_PORT,
            wc_port: DEFAULT_CSS_WC_PORT,
            bind: String::new(),
            program: 0,
            presentation_delay_ms: 0,
        }
    }
}

fn default_cii_port() -> u16 {
    DEFAULT_CSS_CII_PORT
}
fn default_wc_port() -> u16 {
    DEFAULT_CSS_WC_PORT
}

/// `css = true | false | { … }` of a `[[channel]]` (serde `deserialize_with`).
pub fn deserialize_css<'de, D: Deserializer<'de>>(d: D) -> Result<Option<ChannelCss>, D::Error> {
    struct V;
    impl<'de> Visitor<'de> for V {
        type Value = Option<ChannelCss>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("true, false or a table with cii_port, wc_port, bind, program, presentation_delay_ms")
        }
        fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
            Ok(v.then(ChannelCss::default))
        }
        fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
            ChannelCss::deserialize(de::value::MapAccessDeserializer::new(map)).map(Some)
        }
    }
    d.deserialize_any(V)
}

impl ChannelCss {
    /// The bind address: own or the server's.
    pub fn bind_address<'a>(&'a self, server_bind: &'a str) -> &'a str {
        if self.bind.trim().is_empty() {
            server_bind
        } else {
            self.bind.trim()
        }
    }

    /// The launch fragment appended to the channel's source: a tee whose second branch feeds
    /// `tstimelineparse ! dvbcsssink` (sync, so it presents with the RTP sender), ending
    /// with `csstee.` so that the mount's payloader links to the tee's other branch.
    /// `program` is the service to serve when the option names none (see
    /// [`channel_program`]).
    pub fn branch(&self, server_bind: &str, program: u16) -> String {
        let bind = self.bind_address(server_bind);
        let program = if self.program != 0 {
            self.program
        } else {
            program
        };
        // A delayed TV holds the delay's worth of stream in its queue.
        let (queue, offset) = match self.presentation_delay_ms {
            0 => (String::new(), String::new()),
            ms => (
                format!(
                    " max-size-buffers=0 max-size-bytes=0 max-size-time={}",
                    (u64::from(ms) + 2000) * 1_000_000
                ),
                format!(" ts-offset={}", u64::from(ms) * 1_000_000),
            ),
        };
        format!(
            " ! tee name=csstee csstee. ! queue leaky=downstream{queue} ! tstimelineparse ! \
             dvbcsssink name=css sync=true async=false bind-address={bind} cii-port={cii} \
             ts-port={cii} wc-port={wc} program-number={prog}{offset} csstee.",
            cii = self.cii_port,
            wc = self.wc_port,
            prog = program
        )
    }

    /// (`ws://…/cii`, `ws://…/ts`, `udp://…`) for humans: an unspecified bind address is
    /// shown as loopback; port 0 shows as 0 (picked when the channel starts).
    pub fn urls(&self, server_bind: &str) -> (String, String, String) {
        let host = match self.bind_address(server_bind).parse::<IpAddr>() {
            Ok(IpAddr::V4(a)) if a.is_unspecified() => "127.0.0.1".to_string(),
            Ok(IpAddr::V6(a)) if a.is_unspecified() => "[::1]".to_string(),
            Ok(IpAddr::V6(a)) => format!("[{a}]"),
            Ok(a) => a.to_string(),
            Err(_) => self.bind_address(server_bind).to_string(),
        };
        (
            format!("ws://{host}:{}/cii", self.cii_port),
            format!("ws://{host}:{}/ts", self.cii_port),
            format!("udp://{host}:{}", self.wc_port),
        )
    }
}

/// The service a channel carries, from the emulated broadcast: the one service of the tuned
/// multiplex whose PMT PID the channel's query selects; 0 when that is not exactly one
/// (real tuners, `pids=all`). The SDT of a multiplex lists every service, so without this
/// `dvbcsssink` could follow a service the channel does not carry.
pub fn channel_program(query: &str, broadcast: &BroadcastConfig) -> u16 {
    let Ok((spec, _)) = tuning_for_query(query) else {
        return 0;
    };
    let PidSet::Set(pids) = &spec.pids else {
        return 0;
    };
    let f = u64::from(spec.tuning.frequency);
    let khz = if spec.tuning.family() == Family::Satellite {
        f
    } else {
        f / 1000
    };
    let found: Vec<u16> = broadcast
        .mux
        .iter()
        .filter(|m| m.frequency_khz == khz)
        .flat_map(|m| m.service.iter())
        .filter(|s| pids.contains(&s.pmt_pid))
        .map(|s| s.service_id)
        .collect();
    match found.as_slice() {
        [one] => *one,
        _ => 0,
    }
}

/// Checks the CSS options of all channels: bind addresses are IP addresses and no two CSS
/// channels share a (non-zero) CII/TS or WC port. Returns the offending channel's name and
/// the message.
pub fn check_css<'a>(
    channels: impl IntoIterator<Item = (&'a str, Option<&'a ChannelCss>)>,
) -> Result<(), (String, String)> {
    let mut tcp: Vec<(u16, &str)> = Vec::new();
    let mut udp: Vec<(u16, &str)> = Vec::new();
    for (name, css) in channels {
        let Some(css) = css else { continue };
        if !css.bind.trim().is_empty() && css.bind.trim().parse::<IpAddr>().is_err() {
            return Err((
                name.into(),
                format!(
                    "channel {name:?}: css.bind {:?} is not an IP address",
                    css.bind
                ),
            ));
        }
        for (port, list, what) in [
            (css.cii_port, &mut tcp, "cii_port"),
            (css.wc_port, &mut udp, "wc_port"),
        ] {
            if port == 0 {
                continue;
            }
            if let Some((_, other)) = list.iter().find(|(p, _)| *p == port) {
                return Err((
                    name.into(),
                    format!(
                        "channel {name:?}: css.{what} {port} is already used by channel {other:?}; \
                         give each CSS channel its own ports"
                    ),
                ));
            }
            list.push((port, name));
        }
    }
    Ok(())
}

/// Most PIDs one stream may ask for.
pub const MAX_PIDS: usize = 128;

/// `dvbtunersrc` properties for a parsed tuning (launch-syntax `name=value` pairs).
pub fn dvbtunersrc_properties(t: &Tuning) -> Result<Vec<(String, String)>, String> {
    let delsys = t.delivery_system.dvbsrc_nick().ok_or_else(|| {
        format!(
            "delivery system {} is not supported by the tuner pool",
            t.delivery_system.query_name()
        )
    })?;
    let mut p = vec![
        ("delsys".to_string(), delsys.to_string()),
        ("frequency".to_string(), t.frequency.to_string()),
    ];
    if let Some(sr) = t.symbol_rate {
        p.push(("symbol-rate".into(), sr.to_string()));
    }
    if let (Family::Terrestrial, Some(bw)) = (t.family(), t.bandwidth_hz) {
        p.push(("bandwidth-hz".into(), bw.to_string()));
    }
    if let Some(pol) = t.polarisation {
        p.push(("polarity".into(), pol.dvbsrc_polarity().to_string()));
    }
    if let Some(m) = t.modulation.and_then(|m| m.dvbsrc_nick()) {
        p.push(("modulation".into(), m.to_string()));
    }
    if let Some(s) = t.stream_id() {
        p.push(("stream-id".into(), s.to_string()));
    }
    if t.family() == Family::Satellite && t.src > 1 {
        p.push(("diseqc-source".into(), (t.src - 1).min(7).to_string()));
    }
    Ok(p)
}

/// Parses a channel's SAT>IP query into its stream spec and the `dvbtunersrc` launch fragment.
pub fn tuning_for_query(query: &str) -> Result<(StreamSpec, String), String> {
    let q = parse_query(query.trim_start_matches('?')).map_err(|e| e.to_string())?;
    let spec = StreamSpec::create(&q, MAX_PIDS).map_err(|e| e.to_string())?;
    let props = dvbtunersrc_properties(&spec.tuning)?;
    let mut frag = String::from("dvbtunersrc");
    for (k, v) in props {
        frag.push_str(&format!(" {k}={v}"));
    }
    frag.push_str(&format!(" pids={}", spec.pids));
    Ok((spec, frag))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize)]
    struct Ch {
        #[serde(default, deserialize_with = "deserialize_css")]
        css: Option<ChannelCss>,
    }

    #[test]
    fn css_option_bool_or_table() {
        let c: Ch = toml::from_str("css = true").unwrap();
        assert_eq!(c.css, Some(ChannelCss::default()));
        let c: Ch = toml::from_str("css = false").unwrap();
        assert_eq!(c.css, None);
        let c: Ch = toml::from_str("").unwrap();
        assert_eq!(c.css, None);
        let c: Ch = toml::from_str("[css]\ncii_port = 7700\nprogram = 0x1201\n").unwrap();
        let css = c.css.unwrap();
        assert_eq!(
            (css.cii_port, css.wc_port, css.program),
            (7700, 6677, 0x1201)
        );
        assert!(toml::from_str::<Ch>("[css]\nport = 1\n").is_err());
        let b = css.branch("127.0.0.1", 7);
        assert!(
            b.contains("cii-port=7700 ts-port=7700 wc-port=6677 program-number=4609"),
            "{b}"
        );
        assert!(b.trim_end().ends_with("csstee."), "{b}");
        let (cii, ts, wc) = css.urls("0.0.0.0");
        assert_eq!(cii, "ws://127.0.0.1:7700/cii");
        assert_eq!(ts, "ws://127.0.0.1:7700/ts");
        assert_eq!(wc, "udp://127.0.0.1:6677");
    }

    #[test]
    fn channel_program_from_the_emulated_broadcast() {
        let b = BroadcastConfig::embedded();
        let q = "freq=506&msys=dvbt&bw=8&pids=0,16,17,18,20,256,257,258";
        assert_eq!(channel_program(q, &b), 0x1201);
        assert_eq!(channel_program("freq=506&msys=dvbt&bw=8&pids=all", &b), 0);
        assert_eq!(channel_program("freq=999&msys=dvbt&bw=8&pids=0,256", &b), 0);
    }

    #[test]
    fn css_ports_must_differ() {
        let a = ChannelCss::default();
        let b = ChannelCss {
            cii_port: 7682,
            ..ChannelCss::default()
        };
        let e = check_css([("a", Some(&a)), ("b", None), ("c", Some(&b))]).unwrap_err();
        assert_eq!(e.0, "c");
        assert!(
            e.1.contains("wc_port 6677") && e.1.contains("\"a\""),
            "{}",
            e.1
        );
        let c = ChannelCss {
            cii_port: 7682,
            wc_port: 6678,
            ..ChannelCss::default()
        };
        assert!(check_css([("a", Some(&a)), ("c", Some(&c))]).is_ok());
        let zero = ChannelCss {
            cii_port: 0,
            wc_port: 0,
            ..ChannelCss::default()
        };
        assert!(check_css([("a", Some(&zero)), ("c", Some(&zero))]).is_ok());
        let bad = ChannelCss {
            bind: "lo".into(),
            ..ChannelCss::default()
        };
        assert!(check_css([("a", Some(&bad))]).is_err());
    }

    #[test]
    fn default_channels_map_to_dvbsrc_units() {
        let (_, f) = tuning_for_query("freq=506&msys=dvbt&bw=8&pids=0,16,17").unwrap();
        assert!(f.contains("delsys=dvb-t "), "{f}");
        assert!(f.contains("frequency=506000000"), "{f}");
        assert!(f.contains("bandwidth-hz=8000000"), "{f}");
        assert!(f.ends_with("pids=0,16,17"), "{f}");
        let (_, f) =
            tuning_for_query("src=1&freq=11494&pol=h&msys=dvbs2&sr=22000&mtype=8psk&fec=34&ro=0.35&plts=off&pids=all")
                .unwrap();
        assert!(
            f.contains("frequency=11494000") && f.contains("symbol-rate=22000"),
            "{f}"
        );
        assert!(f.contains("polarity=H") || f.contains("polarity=h"), "{f}");
        assert!(tuning_for_query("freq=506&msys=dvbq").is_err());
    }
}
