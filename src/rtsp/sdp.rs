//! The SDP of DESCRIBE (§4.2): one media block per stream of the stream table.

use gstdvb2ip::proto::satip::{Delivery, TransportSpec};

use crate::core::Core;

/// The `s=` counts: `SatIPServer:1 <sat>` or `<sat>,<terr>,<cable>`.
fn frontend_counts(pool: &gstdvb2ip::tuners::Pool) -> String {
    // The X_SATIPCAP groups (the same numbering as `fe=`).
    let caps = crate::ssdp::description::caps_from_numbering(&pool.satip_frontends());
    let sat = caps.dvbs2;
    let terr = caps.dvbt + caps.dvbt2;
    let cable = caps.dvbc + caps.dvbc2;
    if terr == 0 && cable == 0 {
        sat.to_string()
    } else {
        format!("{sat},{terr},{cable}")
    }
}

/// One media block of the SDP (§4.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Block {
    pub stream_id: u16,
    /// The status string (`a=fmtp:33`).
    pub status: String,
    pub playing: bool,
    /// Multicast (group, RTP port, TTL); `None` for unicast streams.
    pub multicast: Option<(std::net::Ipv4Addr, u16, u8)>,
}

/// Multicast group, port and TTL of a transport, if it is a complete multicast one.
pub fn multicast_of(t: &TransportSpec) -> Option<(std::net::Ipv4Addr, u16, u8)> {
    match (t.delivery, t.destination, t.port) {
        (Delivery::Multicast, Some(d), Some((p, _))) => Some((d, p, t.ttl.unwrap_or(1))),
        _ => None,
    }
}

/// SDP of DESCRIBE (§4.2) for the given blocks.
pub fn sdp(server_ip: &str, blocks: &[Block]) -> String {
    sdp_in(gstdvb2ip::tuners::Pool::default_pool(), server_ip, blocks)
}

/// [`sdp`] of a server whose frontends are `pool`'s (the `s=` counts).
pub fn sdp_in(pool: &gstdvb2ip::tuners::Pool, server_ip: &str, blocks: &[Block]) -> String {
    let sess = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let mut s = format!(
        "v=0\r\no=- {sess} {sess} IN IP4 {server_ip}\r\ns=SatIPServer:1 {}\r\nt=0 0\r\n",
        frontend_counts(pool)
    );
    for b in blocks {
        // Unicast: port 0 and 0.0.0.0; multicast: the group's RTP port and group/ttl (§4.2).
        let (port, conn) = match b.multicast {
            Some((group, port, ttl)) => (port, format!("{group}/{ttl}")),
            None => (0, "0.0.0.0".to_string()),
        };
        s += &format!(
            "m=video {port} RTP/AVP 33\r\nc=IN IP4 {conn}\r\na=control:stream={}\r\na=fmtp:33 {}\r\na={}\r\n",
            b.stream_id,
            b.status,
            if b.playing { "sendonly" } else { "inactive" }
        );
    }
    s
}

/// The media blocks of every stream (`None`) or of stream `id`.
pub fn blocks(core: &Core, id: Option<u16>) -> Vec<Block> {
    let mut st = core.streams.lock().unwrap();
    st.gc();
    st.entries
        .iter()
        .filter(|(_, e)| !e.joined && id.is_none_or(|i| i == e.stream_id))
        .filter_map(|(k, e)| {
            Some(Block {
                stream_id: e.stream_id,
                status: e.status()?,
                playing: e.playing,
                multicast: st.transports.get(k).and_then(multicast_of),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sdp_layout() {
        let s = sdp(
            "10.0.0.5",
            &[
                Block {
                    stream_id: 3,
                    status: "ver=1.1;tuner=1,0,0,0,506.00,8,dvbt,,,,,,,;pids=0".into(),
                    playing: true,
                    multicast: None,
                },
                Block {
                    stream_id: 4,
                    status: "ver=1.2;tuner=3,0,0,0,346.00,,dvbc,256qam,6900,,,,;pids=0".into(),
                    playing: false,
                    multicast: Some((std::net::Ipv4Addr::new(239, 1, 0, 2), 5004, 2)),
                },
            ],
        );
        let lines: Vec<&str> = s.split("\r\n").collect();
        assert_eq!(lines[0], "v=0");
        assert!(lines[1].starts_with("o=- ") && lines[1].ends_with(" IN IP4 10.0.0.5"));
        assert!(lines[2].starts_with("s=SatIPServer:1 "));
        assert_eq!(lines[3], "t=0 0");
        assert_eq!(
            &lines[4..9],
            &[
                "m=video 0 RTP/AVP 33",
                "c=IN IP4 0.0.0.0",
                "a=control:stream=3",
                "a=fmtp:33 ver=1.1;tuner=1,0,0,0,506.00,8,dvbt,,,,,,,;pids=0",
                "a=sendonly"
            ]
        );
        // 76: a multicast block names its group/ttl and RTP port.
        assert_eq!(
            &lines[9..12],
            &[
                "m=video 5004 RTP/AVP 33",
                "c=IN IP4 239.1.0.2/2",
                "a=control:stream=4"
            ]
        );
        assert_eq!(lines[13], "a=inactive");
    }
}
