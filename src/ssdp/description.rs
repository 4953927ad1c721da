//! HTTP side of discovery (SAT>IP digest §7.2, §8.7): the device description at
//! [`DESC_PATH`], the extended M3U channel list at [`M3U_PATH`] and the icons it lists.
//!
//! [`router`] returns an axum `Router`; URLs inside the answers name the address the request
//! came in on. Serve it with
//! `into_make_service_with_connect_info::<ConnAddrs>()` so handlers see that local address;
//! without it they fall back to the request's `Host` header.

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, RwLock};

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use super::message::{default_icons, DeviceDescription, SatipCaps};

/// Path of the description (the SSDP `LOCATION`).
pub const DESC_PATH: &str = "/desc.xml";
/// Path of the status page (`presentationURL`); `/?<query>` there is HTTP streaming.
pub const PRESENTATION_PATH: &str = "/";
/// Path of the channel list (`satip:X_SATIPM3U`).
pub const M3U_PATH: &str = "/channels.m3u";
/// Standard RTSP port; any other is announced with [`RTSP_PORT_HEADER`].
pub const RTSP_DEFAULT_PORT: u16 = 554;
/// The description's RTSP port header, spelt as the digest spells it (§7.2): clients such as
/// vdr-plugin-satip match it case-sensitively. The `http` crate stores header names in lower
/// case; the HTTP server's own response writer (`http::conn`) restores this spelling.
pub const RTSP_PORT_HEADER: &str = "X-SATIP-RTSP-Port";

/// Local and remote address of an HTTP connection (axum connect info).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnAddrs {
    pub local: SocketAddr,
    pub remote: SocketAddr,
}

impl
    axum::extract::connect_info::Connected<axum::serve::IncomingStream<'_, tokio::net::TcpListener>>
    for ConnAddrs
{
    fn connect_info(stream: axum::serve::IncomingStream<'_, tokio::net::TcpListener>) -> Self {
        let remote = *stream.remote_addr();
        let local = stream.io().local_addr().unwrap_or(remote);
        ConnAddrs { local, remote }
    }
}

/// One configured channel for the M3U list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Channel {
    pub title: String,
    /// SAT>IP query without the leading `?`, copied into the URL exactly.
    pub query: String,
}

/// Everything the routes serve. The description follows the tuner set
/// ([`DescriptionState::set_caps`]): X_SATIPCAP and with it CONFIGID change at run time.
#[derive(Debug)]
pub struct DescriptionState {
    pub rtsp_port: u16,
    pub channels: Vec<Channel>,
    /// More channels, read at each request (the channel database, src/scan).
    pub more_channels: Option<MoreChannels>,
    live: RwLock<Arc<Live>>,
}

/// The description as served now.
#[derive(Debug)]
struct Live {
    description: DeviceDescription,
    xml: String,
}

/// A source of channels listed after the configured ones (the channel database).
#[derive(Clone)]
pub struct MoreChannels(pub Arc<dyn Fn() -> Vec<NumberedChannel> + Send + Sync>);

/// A channel with its own number and a line of detail (provider, type) for the status page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NumberedChannel {
    pub number: u32,
    pub channel: Channel,
    pub detail: String,
}

impl std::fmt::Debug for MoreChannels {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MoreChannels")
    }
}

impl Clone for DescriptionState {
    fn clone(&self) -> Self {
        DescriptionState {
            rtsp_port: self.rtsp_port,
            channels: self.channels.clone(),
            more_channels: self.more_channels.clone(),
            live: RwLock::new(self.live.read().unwrap().clone()),
        }
    }
}

impl Live {
    /// `description` with its CONFIGID computed from its content.
    fn new(mut description: DeviceDescription) -> Live {
        description.config_id = 0;
        // CONFIGID follows the content: any change of the description changes it.
        description.config_id = config_id_for(&description.to_xml());
        let xml = description.to_xml();
        Live { description, xml }
    }
}

impl DescriptionState {
    pub fn new(
        uuid: &str,
        friendly_name: &str,
        caps: SatipCaps,
        rtsp_port: u16,
        channels: Vec<Channel>,
    ) -> Self {
        let description = DeviceDescription {
            config_id: 0,
            friendly_name: friendly_name.to_owned(),
            manufacturer: "dvb2ip developers".to_owned(),
            manufacturer_url: None,
            model_description: Some("dvb2ip SAT>IP server for Linux DVB".to_owned()),
            model_name: "dvb2ip".to_owned(),
            model_number: Some(env!("CARGO_PKG_VERSION").to_owned()),
            model_url: None,
            serial_number: Some(uuid.rsplit('-').next().unwrap_or(uuid).to_owned()),
            uuid: uuid.to_owned(),
            icons: default_icons(),
            // The status page (src/http/status.rs), relative to the description (§8.7).
            presentation_url: Some(PRESENTATION_PATH.to_owned()),
            caps,
            m3u_url: Some(M3U_PATH.to_owned()),
        };
        DescriptionState {
            rtsp_port,
            channels,
            more_channels: None,
            live: RwLock::new(Arc::new(Live::new(description))),
        }
    }

    /// The description as served now.
    pub fn description(&self) -> DeviceDescription {
        self.live.read().unwrap().description.clone()
    }

    /// Changes X_SATIPCAP (the tuner set changed): returns the new CONFIGID, or `None` when
    /// the capabilities are the same. The new CONFIGID always differs from the previous one.
    pub fn set_caps(&self, caps: SatipCaps) -> Option<u32> {
        let mut live = self.live.write().unwrap();
        if live.description.caps == caps {
            return None;
        }
        let old = live.description.config_id;
        let mut next = Live::new(DeviceDescription {
            caps,
            ..live.description.clone()
        });
        if next.description.config_id == old {
            next.description.config_id = (old + 1) & 0x00ff_ffff;
            next.xml = next.description.to_xml();
        }
        let id = next.description.config_id;
        *live = Arc::new(next);
        Some(id)
    }

    /// The configured channels (numbered in order), then the database's (their numbers).
    pub fn all_channels(&self) -> Vec<NumberedChannel> {
        let mut v: Vec<NumberedChannel> = self
            .channels
            .iter()
            .enumerate()
            .map(|(i, c)| NumberedChannel {
                number: u32::try_from(i + 1).unwrap_or(u32::MAX),
                channel: c.clone(),
                detail: String::new(),
            })
            .collect();
        if let Some(m) = &self.more_channels {
            v.extend((m.0)());
        }
        v
    }

    /// The description of this server: `uuid`, the configured friendly name and channels, the
    /// X_SATIPCAP of `pool`, RTSP on `rtsp_port`.
    pub fn for_config(
        cfg: &crate::config::Config,
        pool: &gstdvb2ip::tuners::Pool,
        uuid: &str,
        rtsp_port: u16,
    ) -> Self {
        let channels = cfg
            .channel
            .iter()
            .map(|c| Channel {
                title: if c.title.is_empty() {
                    c.name.clone()
                } else {
                    c.title.clone()
                },
                query: c.query.clone(),
            })
            .collect();
        Self::new(
            uuid,
            &cfg.ssdp.friendly_name,
            caps_from_numbering(&pool.satip_frontends()),
            rtsp_port,
            channels,
        )
    }

    /// `configId` of the description = `CONFIGID.UPNP.ORG`.
    pub fn config_id(&self) -> u32 {
        self.live.read().unwrap().description.config_id
    }

    /// The description document as served now.
    pub fn xml(&self) -> String {
        self.live.read().unwrap().xml.clone()
    }

    /// The M3U list with URLs on `host` (an IP literal).
    pub fn m3u(&self, host: IpAddr) -> Vec<u8> {
        let host = match host {
            IpAddr::V6(a) => format!("[{a}]"),
            IpAddr::V4(a) => a.to_string(),
        };
        let channels = self.all_channels();
        let urls: Vec<(u32, &str, String)> = channels
            .iter()
            .map(|c| {
                (
                    c.number,
                    c.channel.title.as_str(),
                    format!(
                        "rtsp://{host}:{}/?{}",
                        self.rtsp_port,
                        c.channel.query.trim_start_matches('?')
                    ),
                )
            })
            .collect();
        let text = gstdvb2ip::proto::satip::m3u_playlist(
            urls.iter().map(|(n, t, u)| (*n, *t, u.as_str())),
        );
        gstdvb2ip::proto::satip::to_latin1(&text)
    }
}

/// `CONFIGID.UPNP.ORG` for a description text: FNV-1a folded to 24 bits (UPnP allows
/// 0..16777215).
pub fn config_id_for(xml: &str) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for b in xml.bytes() {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    (h >> 24 ^ h) & 0x00ff_ffff
}

/// `satip:X_SATIPCAP` counts from the tuner pool's SAT>IP frontend numbering (call after the
/// pool is configured), so that the list and the `fe=` numbers clients derive from it agree.
pub fn caps_from_frontends() -> SatipCaps {
    caps_from_numbering(&gstdvb2ip::tuners::satip_frontends())
}

/// X_SATIPCAP counts of a frontend numbering (entries of no group are not listed).
pub fn caps_from_numbering(numbering: &[gstdvb2ip::proto::tuner_pool::SatipFe]) -> SatipCaps {
    use gstdvb2ip::proto::tuner_pool::CapGroup;
    let mut caps = SatipCaps::default();
    for f in numbering {
        let n = match f.group {
            Some(CapGroup::DvbS2) => &mut caps.dvbs2,
            Some(CapGroup::DvbT) => &mut caps.dvbt,
            Some(CapGroup::DvbT2) => &mut caps.dvbt2,
            Some(CapGroup::DvbC) => &mut caps.dvbc,
            Some(CapGroup::DvbC2) => &mut caps.dvbc2,
            None => continue,
        };
        *n = n.saturating_add(1);
    }
    caps
}

/// The routes: description, channel list, icons.
pub fn router(state: Arc<DescriptionState>) -> Router {
    Router::new()
        .route(DESC_PATH, get(description))
        .route(M3U_PATH, get(channel_list))
        .route("/img/{file}", get(icon))
        .route("/favicon.ico", get(favicon))
        .with_state(state)
}

/// The address the client used to reach us: the connection's local address, else `Host`.
pub(crate) fn local_host(req: &Request) -> IpAddr {
    if let Some(ConnectInfo(c)) = req.extensions().get::<ConnectInfo<ConnAddrs>>() {
        return c.local.ip().to_canonical();
    }
    host_header_ip(req.headers()).unwrap_or(IpAddr::V4(std::net::Ipv4Addr::LOCALHOST))
}

fn host_header_ip(h: &HeaderMap) -> Option<IpAddr> {
    let host = h.get(header::HOST)?.to_str().ok()?;
    if let Ok(sa) = host.parse::<SocketAddr>() {
        return Some(sa.ip());
    }
    host.trim_start_matches('[')
        .trim_end_matches(']')
        .parse()
        .ok()
}

async fn description(State(s): State<Arc<DescriptionState>>) -> Response {
    let mut r = (
        [(header::CONTENT_TYPE, "text/xml; charset=\"utf-8\"")],
        s.xml(),
    )
        .into_response();
    if s.rtsp_port != RTSP_DEFAULT_PORT {
        if let Ok(v) = HeaderValue::from_str(&s.rtsp_port.to_string()) {
            r.headers_mut().insert(RTSP_PORT_HEADER, v);
        }
    }
    r
}

async fn channel_list(State(s): State<Arc<DescriptionState>>, req: Request) -> Response {
    let host = local_host(&req);
    (
        [(header::CONTENT_TYPE, "audio/x-mpegurl; charset=iso-8859-1")],
        s.m3u(host),
    )
        .into_response()
}

async fn icon(axum::extract::Path(file): axum::extract::Path<String>) -> Response {
    let (mime, data) = match file.as_str() {
        "icon48.png" => ("image/png", png_icon(48)),
        "icon120.png" => ("image/png", png_icon(120)),
        "icon48.jpg" => ("image/jpeg", jpeg_icon(48)),
        "icon120.jpg" => ("image/jpeg", jpeg_icon(120)),
        _ => return StatusCode::NOT_FOUND.into_response(),
    };
    ([(header::CONTENT_TYPE, mime)], data).into_response()
}

/// `/favicon.ico`, which browsers ask every page for: the 48-pixel PNG icon (browsers take PNG
/// there whatever the name says).
async fn favicon() -> Response {
    ([(header::CONTENT_TYPE, "image/png")], png_icon(48)).into_response()
}

// ---------------------------------------------------------------------------------------------
// Icons, drawn in code: a blue "screen" on a dark frame, 8×8-block aligned so that the JPEG
// (flat blocks only) and the PNG show the same picture.
// ---------------------------------------------------------------------------------------------

const FRAME: [u8; 3] = [0x1d, 0x2b, 0x4a];
const SCREEN: [u8; 3] = [0x3c, 0x9a, 0xe0];
const STAND: [u8; 3] = [0xd0, 0xd8, 0xe0];

/// Colour of the 8×8 block at block coordinates (`bx`, `by`) of an `n`×`n`-block icon.
fn block_colour(bx: u32, by: u32, n: u32) -> [u8; 3] {
    let screen_rows = n * 2 / 3;
    if bx >= 1 && bx + 1 < n && by >= 1 && by < screen_rows.max(2) {
        SCREEN
    } else if by + 2 == n && bx >= n / 3 && bx < n - n / 3 {
        STAND
    } else {
        FRAME
    }
}

fn crc32(data: &[u8]) -> u32 {
    let mut c = 0xffff_ffffu32;
    for &b in data {
        c ^= u32::from(b);
        for _ in 0..8 {
            c = if c & 1 != 0 {
                0xedb8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
        }
    }
    !c
}

fn adler32(data: &[u8]) -> u32 {
    let (mut a, mut b) = (1u32, 0u32);
    for &x in data {
        a = (a + u32::from(x)) % 65_521;
        b = (b + a) % 65_521;
    }
    (b << 16) | a
}

/// A `size`×`size` RGB PNG (zlib stored blocks, no compression needed at this size).
pub fn png_icon(size: u32) -> Vec<u8> {
    let n = size / 8;
    let mut raw = Vec::new();
    for y in 0..size {
        raw.push(0u8);
        for x in 0..size {
            raw.extend_from_slice(&block_colour(x / 8, y / 8, n));
        }
    }
    let mut z = vec![0x78, 0x01];
    let chunks: Vec<&[u8]> = raw.chunks(65_535).collect();
    for (i, c) in chunks.iter().enumerate() {
        z.push(u8::from(i + 1 == chunks.len()));
        let len = c.len() as u16;
        z.extend_from_slice(&len.to_le_bytes());
        z.extend_from_slice(&(!len).to_le_bytes());
        z.extend_from_slice(c);
    }
    z.extend_from_slice(&adler32(&raw).to_be_bytes());

    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut chunk = |kind: &[u8; 4], body: &[u8]| {
        png.extend_from_slice(&(body.len() as u32).to_be_bytes());
        let mut c = kind.to_vec();
        c.extend_from_slice(body);
        png.extend_from_slice(&c);
        png.extend_from_slice(&crc32(&c).to_be_bytes());
    };
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&size.to_be_bytes());
    ihdr.extend_from_slice(&size.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
    chunk(b"IHDR", &ihdr);
    chunk(b"IDAT", &z);
    chunk(b"IEND", &[]);
    png
}

struct BitWriter {
    out: Vec<u8>,
    acc: u32,
    n: u32,
}

impl BitWriter {
    fn put(&mut self, bits: u32, len: u32) {
        for i in (0..len).rev() {
            self.acc = (self.acc << 1) | ((bits >> i) & 1);
            self.n += 1;
            if self.n == 8 {
                let b = self.acc as u8;
                self.out.push(b);
                if b == 0xff {
                    self.out.push(0);
                }
                self.acc = 0;
                self.n = 0;
            }
        }
    }

    fn finish(mut self) -> Vec<u8> {
        while self.n != 0 {
            self.put(1, 1);
        }
        self.out
    }
}

/// A `size`×`size` baseline JPEG (YCbCr 4:4:4). Every 8×8 block is flat, so each block is
/// its DC difference plus end-of-block; Huffman tables are minimal (DC: categories 0..11 with
/// 4-bit codes; AC: EOB only).
pub fn jpeg_icon(size: u32) -> Vec<u8> {
    let n = size / 8;
    let mut j = vec![0xff, 0xd8];
    // APP0 JFIF 1.01, no thumbnail.
    j.extend_from_slice(&[
        0xff, 0xe0, 0, 16, b'J', b'F', b'I', b'F', 0, 1, 1, 0, 0, 1, 0, 1, 0, 0,
    ]);
    // DQT: table 0, all 8 (flat blocks only use the DC entry).
    j.extend_from_slice(&[0xff, 0xdb, 0, 67, 0]);
    j.extend_from_slice(&[8u8; 64]);
    // SOF0.
    let s = size as u16;
    j.extend_from_slice(&[0xff, 0xc0, 0, 17, 8]);
    j.extend_from_slice(&s.to_be_bytes());
    j.extend_from_slice(&s.to_be_bytes());
    j.extend_from_slice(&[3, 1, 0x11, 0, 2, 0x11, 0, 3, 0x11, 0]);
    // DHT DC 0: 12 symbols of length 4.
    j.extend_from_slice(&[0xff, 0xc4, 0, 31, 0x00]);
    let mut counts = [0u8; 16];
    counts[3] = 12;
    j.extend_from_slice(&counts);
    j.extend_from_slice(&[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]);
    // DHT AC 0: EOB (0x00) with a 1-bit code.
    j.extend_from_slice(&[0xff, 0xc4, 0, 20, 0x10]);
    let mut counts = [0u8; 16];
    counts[0] = 1;
    j.extend_from_slice(&counts);
    j.push(0x00);
    // SOS.
    j.extend_from_slice(&[0xff, 0xda, 0, 12, 3, 1, 0x00, 2, 0x00, 3, 0x00, 0, 63, 0]);

    let mut w = BitWriter {
        out: Vec::new(),
        acc: 0,
        n: 0,
    };
    let mut pred = [0i32; 3];
    for by in 0..n {
        for bx in 0..n {
            let [r, g, b] = block_colour(bx, by, n).map(f64::from);
            let ycc = [
                0.299 * r + 0.587 * g + 0.114 * b,
                -0.168_736 * r - 0.331_264 * g + 0.5 * b + 128.0,
                0.5 * r - 0.418_688 * g - 0.081_312 * b + 128.0,
            ];
            for (c, v) in ycc.iter().enumerate() {
                // DC coefficient of a flat block = 8 × (value − 128); quantised by 8.
                let dc = (v.round() as i32).clamp(0, 255) - 128;
                let diff = dc - pred[c];
                pred[c] = dc;
                let cat = 32 - diff.unsigned_abs().leading_zeros();
                w.put(cat, 4);
                if cat > 0 {
                    let bits = if diff >= 0 {
                        diff as u32
                    } else {
                        (diff + (1 << cat) - 1) as u32
                    };
                    w.put(bits, cat);
                }
                w.put(0, 1); // EOB
            }
        }
    }
    j.extend_from_slice(&w.finish());
    j.extend_from_slice(&[0xff, 0xd9]);
    j
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state() -> DescriptionState {
        DescriptionState::new(
            "3f2a9c10-5b7e-4d21-9a0c-00155d0a0b0c",
            "dvb2ip test",
            SatipCaps {
                dvbs2: 1,
                dvbt2: 2,
                dvbc: 1,
                ..SatipCaps::default()
            },
            8554,
            vec![
                Channel {
                    title: "One".into(),
                    query: "src=1&freq=474&msys=dvbt2&pids=0,16".into(),
                },
                Channel {
                    title: "Télé".into(),
                    query: "?freq=346&msys=dvbc&sr=6900&mtype=256qam&pids=0".into(),
                },
            ],
        )
    }

    #[test]
    fn description_elements() {
        let s = state();
        let xml = s.xml();
        assert!(xml.ends_with("</root>"));
        assert!(xml.contains(&format!("configId=\"{}\"", s.config_id())));
        assert!(xml.contains("<UDN>uuid:3f2a9c10-5b7e-4d21-9a0c-00155d0a0b0c</UDN>"));
        assert!(xml.contains(
            "<satip:X_SATIPCAP xmlns:satip=\"urn:ses-com:satip\">DVBS2-1,DVBT2-2,DVBC-1</satip:X_SATIPCAP>"
        ));
        assert!(xml.contains(
            "<satip:X_SATIPM3U xmlns:satip=\"urn:ses-com:satip\">/channels.m3u</satip:X_SATIPM3U>"
        ));
        assert!(
            xml.contains("<presentationURL>/</presentationURL>"),
            "{xml}"
        );
        assert!(s.config_id() <= 0x00ff_ffff);
        assert_eq!(
            s.config_id(),
            config_id_for(
                &DeviceDescription {
                    config_id: 0,
                    ..s.description()
                }
                .to_xml()
            ),
            "CONFIGID covers the description with its presentationURL"
        );
        // A different description has a different CONFIGID.
        let other = DescriptionState::new(
            "3f2a9c10-5b7e-4d21-9a0c-00155d0a0b0c",
            "renamed",
            SatipCaps::default(),
            554,
            Vec::new(),
        );
        assert_ne!(other.config_id(), s.config_id());
    }

    #[test]
    fn new_caps_change_x_satipcap_and_configid() {
        let s = state();
        let (id0, xml0) = (s.config_id(), s.xml());
        assert_eq!(
            s.set_caps(s.description().caps),
            None,
            "same caps, no change"
        );
        let fewer = SatipCaps {
            dvbs2: 1,
            dvbt2: 1,
            dvbc: 1,
            ..SatipCaps::default()
        };
        let id1 = s.set_caps(fewer).expect("changed");
        assert_ne!(id1, id0);
        assert_eq!(s.config_id(), id1);
        let xml = s.xml();
        assert!(
            xml.contains(">DVBS2-1,DVBT2-1,DVBC-1</satip:X_SATIPCAP>"),
            "{xml}"
        );
        assert!(xml.contains(&format!("configId=\"{id1}\"")), "{xml}");
        // Back to the first set: the first description again.
        let back = s.set_caps(SatipCaps { dvbt2: 2, ..fewer });
        assert_eq!(back, Some(id0));
        assert_eq!(s.xml(), xml0);
    }

    /// The router's answer to `GET /desc.xml` (the HTTP server's writer spells the header
    /// names; `ssdp_discovery.rs` checks the spelling on the wire).
    fn description_reply(s: DescriptionState) -> Response {
        use tower_service::Service;
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let req = axum::http::Request::get(DESC_PATH)
            .body(axum::body::Body::empty())
            .unwrap();
        rt.block_on(router(Arc::new(s)).call(req)).unwrap()
    }

    #[test]
    fn rtsp_port_header_names_a_port_other_than_554() {
        let reply = description_reply(state());
        assert_eq!(reply.status(), StatusCode::OK);
        assert_eq!(
            reply.headers().get(RTSP_PORT_HEADER).map(|v| v.as_bytes()),
            Some(&b"8554"[..])
        );
        // Port 554 is not announced.
        let mut at_554 = state();
        at_554.rtsp_port = RTSP_DEFAULT_PORT;
        let reply = description_reply(at_554);
        assert!(reply.headers().get(RTSP_PORT_HEADER).is_none());
    }

    #[test]
    fn m3u_uses_the_request_address_and_exact_query() {
        let s = state();
        let text = s.m3u("10.0.0.5".parse().unwrap());
        assert_eq!(
            text,
            b"#EXTM3U\r\n#EXTINF:0,1. One\r\nrtsp://10.0.0.5:8554/?src=1&freq=474&msys=dvbt2&pids=0,16\r\n\
#EXTINF:0,2. T\xe9l\xe9\r\nrtsp://10.0.0.5:8554/?freq=346&msys=dvbc&sr=6900&mtype=256qam&pids=0\r\n"
                .to_vec()
        );
        let v6 = String::from_utf8_lossy(&s.m3u("::1".parse().unwrap())).to_string();
        assert!(v6.contains("rtsp://[::1]:8554/?"), "{v6}");
    }

    #[test]
    fn png_icons_are_well_formed() {
        for size in [48u32, 120] {
            let p = png_icon(size);
            assert_eq!(&p[..8], b"\x89PNG\r\n\x1a\n");
            assert_eq!(&p[12..16], b"IHDR");
            assert_eq!(u32::from_be_bytes([p[16], p[17], p[18], p[19]]), size);
            assert_eq!(&p[p.len() - 8..p.len() - 4], b"IEND");
            // IHDR CRC.
            let crc = u32::from_be_bytes([p[29], p[30], p[31], p[32]]);
            assert_eq!(crc, crc32(&p[12..29]));
        }
        assert_eq!(crc32(b"123456789"), 0xcbf4_3926);
        assert_eq!(adler32(b"Wikipedia"), 0x11e6_0398);
    }

    #[test]
    fn jpeg_icons_are_framed() {
        for size in [48u32, 120] {
            let j = jpeg_icon(size);
            assert_eq!(&j[..2], &[0xff, 0xd8]);
            assert_eq!(&j[j.len() - 2..], &[0xff, 0xd9]);
            let sof = j.windows(2).position(|w| w == [0xff, 0xc0]).unwrap();
            assert_eq!(
                u16::from_be_bytes([j[sof + 5], j[sof + 6]]),
                size as u16,
                "height"
            );
        }
    }

    #[test]
    fn host_header_fallback() {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, HeaderValue::from_static("10.1.2.3:8875"));
        assert_eq!(host_header_ip(&h), Some("10.1.2.3".parse().unwrap()));
        h.insert(header::HOST, HeaderValue::from_static("[::1]:8875"));
        assert_eq!(host_header_ip(&h), Some("::1".parse().unwrap()));
        h.insert(header::HOST, HeaderValue::from_static("name.example"));
        assert_eq!(host_header_ip(&h), None);
    }
}
