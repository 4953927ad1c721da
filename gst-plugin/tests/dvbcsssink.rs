//! dvbcsssink: the element under the Harness (and one filesrc pipeline through
//! tstimelineparse) while the test plays raw WebSocket/UDP clients on 127.0.0.1, ports 0.
//!
//! Timeline and service events are built with `tstimelineparse::event`, so the tests control
//! running times exactly; the sink runs with `sync=false`, the system clock and a fixed base
//! time, so every expected wallClockTime is computed, never measured.

mod common;

use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use gst::prelude::*;
use gstdvb2ip::proto::css::cii::CiiMessage;
use gstdvb2ip::proto::css::ts::{ControlTimestamp, SetupData};
use gstdvb2ip::proto::css::wc::{MessageType, WcMessage};
use gstdvb2ip::tstimelineparse::event::{ServiceIdentity, TimelineEventKind, TimelineInfo};
use serde_json::Value;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

const CAPS: &str = "video/mpegts,systemstream=(boolean)true,packetsize=(int)188";
const TEMI: &str = "urn:dvb:css:timeline:temi:1:1";
const STEP: Duration = Duration::from_secs(5);
const MS: u64 = 1_000_000;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap()
}

/// The sink under a Harness, playing, with its bound ports.
struct Sink {
    h: gst_check::Harness,
    base: u64,
    cii: SocketAddr,
    wc: SocketAddr,
}

impl Sink {
    fn new(props: &[(&str, &str)]) -> Self {
        common::init();
        // Properties (ports) must be set before the harness starts the element.
        let e = gst::ElementFactory::make("dvbcsssink").build().unwrap();
        for p in ["cii-port", "ts-port", "wc-port"] {
            e.set_property(p, 0u32);
        }
        e.set_property("sync", false);
        for (k, v) in props {
            e.set_property_from_str(k, v);
        }
        let clock = gst::SystemClock::obtain();
        let base = clock.time().nseconds();
        e.set_clock(Some(&clock)).unwrap();
        e.set_base_time(gst::ClockTime::from_nseconds(base));
        let mut h = gst_check::Harness::with_element(&e, Some("sink"), None);
        h.play();
        h.set_src_caps_str(CAPS);
        let port = |p: &str| e.property::<u32>(p) as u16;
        assert_ne!(port("cii-port"), 0, "bound port written back");
        assert_eq!(
            port("cii-port"),
            port("ts-port"),
            "CII and TS share a server"
        );
        Self {
            cii: SocketAddr::from(([127, 0, 0, 1], port("cii-port"))),
            wc: SocketAddr::from(([127, 0, 0, 1], port("wc-port"))),
            base,
            h,
        }
    }

    fn element(&self) -> gst::Element {
        self.h.element().unwrap()
    }

    fn event(&mut self, e: gst::Event) {
        assert!(self.h.push_event(e));
    }

    /// A buffer at running time `rt_ns` (segment starts at 0): renders the events before it.
    fn buffer(&mut self, rt_ns: u64) {
        let mut b = gst::Buffer::from_mut_slice(vec![0x47u8; 188]);
        b.get_mut()
            .unwrap()
            .set_pts(gst::ClockTime::from_nseconds(rt_ns));
        assert_eq!(self.h.push(b), Ok(gst::FlowSuccess::Ok));
    }

    fn service(&mut self, sid: u16, rt_ns: u64) {
        let id = ServiceIdentity {
            service_id: sid,
            original_network_id: Some(0x233a),
            transport_stream_id: Some(0x1002),
            running_time: Some(gst::ClockTime::from_nseconds(rt_ns)),
            ..Default::default()
        };
        self.event(id.to_event());
    }

    fn anchor(&mut self, kind: TimelineEventKind, program: u16, value: u64, rt_ns: u64) {
        let mut t = TimelineInfo::new(kind, TEMI.into(), true, program, 0x101);
        t.timeline_id = Some(1);
        t.component_tag = Some(1);
        t.tick_rate = 90_000;
        t.value = Some(value);
        t.running_time = Some(gst::ClockTime::from_nseconds(rt_ns));
        self.event(t.to_event());
    }
}

async fn connect(addr: SocketAddr, path: &str) -> Ws {
    let (ws, _) = tokio::time::timeout(
        STEP,
        tokio_tungstenite::connect_async(format!("ws://{addr}{path}")),
    )
    .await
    .expect("connect in time")
    .expect("upgrade accepted");
    ws
}

async fn next_text(ws: &mut Ws) -> String {
    loop {
        match tokio::time::timeout(STEP, ws.next())
            .await
            .expect("message in time")
        {
            Some(Ok(Message::Text(t))) => return t.as_str().to_owned(),
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
            other => panic!("expected text, got {other:?}"),
        }
    }
}

async fn next_json(ws: &mut Ws) -> Value {
    serde_json::from_str(&next_text(ws).await).unwrap()
}

async fn next_ct(ws: &mut Ws) -> ControlTimestamp {
    ControlTimestamp::parse(&next_text(ws).await).unwrap()
}

async fn quiet(ws: &mut Ws, d: Duration) {
    if let Ok(m) = tokio::time::timeout(d, ws.next()).await {
        panic!("unexpected {m:?}");
    }
}

async fn close_code(ws: &mut Ws) -> Option<CloseCode> {
    loop {
        match tokio::time::timeout(STEP, ws.next())
            .await
            .expect("close in time")
        {
            Some(Ok(Message::Close(f))) => return f.map(|f| f.code),
            Some(Ok(_)) => continue,
            _ => return None,
        }
    }
}

async fn http_status(addr: SocketAddr, path: &str) -> u16 {
    match tokio_tungstenite::connect_async(format!("ws://{addr}{path}")).await {
        Err(tungstenite::Error::Http(r)) => r.status().as_u16(),
        Ok(_) => 101,
        Err(e) => panic!("{e}"),
    }
}

fn keys(v: &Value) -> Vec<String> {
    let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
    k.sort();
    k
}

#[test]
fn cii_full_state_then_incremental_updates_on_channel_change() {
    let rt = runtime();
    let mut s = Sink::new(&[]);
    // Service A with a TEMI timeline, presented.
    s.service(0x1201, 0);
    s.anchor(TimelineEventKind::Correlation, 0x1201, 900_000, 10 * MS);
    s.buffer(10 * MS);
    let (cii, wc) = (s.cii, s.wc);
    let mut ws = rt.block_on(connect(cii, "/cii"));
    let first = rt.block_on(next_json(&mut ws));
    assert_eq!(first["protocolVersion"], "1.1");
    assert_eq!(first["contentId"], "dvb://233a.1002.1201");
    assert_eq!(first["contentIdStatus"], "partial");
    assert_eq!(first["presentationStatus"], "okay");
    assert_eq!(first["tsUrl"], format!("ws://127.0.0.1:{}/ts", cii.port()));
    assert_eq!(first["wcUrl"], format!("udp://127.0.0.1:{}", wc.port()));
    assert_eq!(first["timelines"][0]["timelineSelector"], TEMI);
    assert_eq!(
        first["timelines"][0]["timelineProperties"]["unitsPerSecond"],
        90_000
    );
    assert!(CiiMessage::parse(&first.to_string())
        .unwrap()
        .validate()
        .is_ok());

    // More anchors on the same line: nothing to tell.
    s.anchor(TimelineEventKind::Correlation, 0x1201, 903_600, 50 * MS);
    s.buffer(50 * MS);
    rt.block_on(quiet(&mut ws, Duration::from_millis(200)));

    // Channel change to 0x1202 (A idle for > 0.5 s): only the changed properties arrive.
    s.service(0x1202, 1_000 * MS);
    s.buffer(1_000 * MS);
    let mut seen = serde_json::Map::new();
    while seen.get("contentId") != Some(&Value::from("dvb://233a.1002.1202")) {
        let m = rt.block_on(next_json(&mut ws));
        for k in keys(&m) {
            assert!(
                [
                    "contentId",
                    "contentIdStatus",
                    "timelines",
                    "presentationStatus"
                ]
                .contains(&k.as_str()),
                "unexpected property {k} in {m}"
            );
        }
        if m.get("contentId").is_some() {
            assert!(m.get("contentIdStatus").is_some(), "checklist 33");
        }
        seen.extend(m.as_object().unwrap().clone());
    }
    assert_eq!(seen["timelines"], Value::Null, "old timelines withdrawn");
    // The new service's timeline appears: a message with just `timelines`.
    s.anchor(TimelineEventKind::Correlation, 0x1202, 5, 1_010 * MS);
    s.buffer(1_010 * MS);
    let m = loop {
        let m = rt.block_on(next_json(&mut ws));
        assert!(
            keys(&m)
                .iter()
                .all(|k| k == "timelines" || k == "presentationStatus"),
            "{m}"
        );
        if m.get("timelines").is_some() {
            break m;
        }
    };
    assert_eq!(m["timelines"][0]["timelineSelector"], TEMI);
    // content-id property override
    s.element()
        .set_property("content-id", "dvb://1.2.3;4~20240301T1830Z--PT00H30M");
    let m = rt.block_on(next_json(&mut ws));
    assert_eq!(keys(&m), ["contentId", "contentIdStatus"]);
    assert_eq!(m["contentIdStatus"], "final");
    drop(ws);
}

#[test]
fn ts_unavailable_available_paused_and_gone() {
    let rt = runtime();
    let mut s = Sink::new(&[]);
    let base = s.base as i64;
    s.service(0x1201, 0);
    s.buffer(0);
    let mut ws = rt.block_on(connect(s.cii, "/ts"));
    // Garbage before SetupData is ignored, the connection stays (checklist 71).
    rt.block_on(ws.send(Message::text("{not json"))).unwrap();
    rt.block_on(ws.send(Message::binary(vec![1u8, 2, 3])))
        .unwrap();
    rt.block_on(ws.send(Message::text(
        SetupData::new("dvb://233a.1002.1201", TEMI).to_json(),
    )))
    .unwrap();
    let ct = rt.block_on(next_ct(&mut ws));
    assert!(!ct.is_available(), "no timeline yet");

    // Available: the correlation is (presentation time of the anchor buffer, value).
    s.anchor(TimelineEventKind::Correlation, 0x1201, 900_000, 40 * MS);
    s.buffer(40 * MS);
    let ct = rt.block_on(next_ct(&mut ws));
    assert_eq!(
        ct,
        ControlTimestamp::available(base + 40 * MS as i64, 900_000, 1.0)
    );
    // Jitter below the tolerance and a lone late outlier: no CT (checklist 64).
    s.anchor(
        TimelineEventKind::Correlation,
        0x1201,
        903_600,
        80 * MS + 300_000,
    );
    s.buffer(80 * MS + 300_000);
    s.anchor(TimelineEventKind::Correlation, 0x1201, 907_200, 150 * MS);
    s.buffer(150 * MS);
    rt.block_on(quiet(&mut ws, Duration::from_millis(200)));

    // Pause: speed 0 at the position of the pause moment.
    let e = s.element();
    e.set_state(gst::State::Paused).unwrap();
    let ct = rt.block_on(next_ct(&mut ws));
    let t = ct.timing.expect("available while paused");
    assert_eq!(t.speed, 0.0);
    let wall = ct.wall_clock_time;
    let expected = 900_000 + (wall - base - 40 * MS as i64) as i128 * 90_000 / 1_000_000_000;
    assert!((i128::from(t.content_time) - expected).abs() <= 1);
    // Play again (same base time): speed 1 on the same line.
    e.set_state(gst::State::Playing).unwrap();
    let ct = rt.block_on(next_ct(&mut ws));
    assert_eq!(
        ct,
        ControlTimestamp::available(base + 40 * MS as i64, 900_000, 1.0)
    );

    // Discontinuity: the next anchor is taken as it is.
    let mut d = TimelineInfo::new(
        TimelineEventKind::Discontinuity,
        TEMI.into(),
        true,
        0x1201,
        0x101,
    );
    d.tick_rate = 90_000;
    s.event(d.to_event());
    s.anchor(TimelineEventKind::Correlation, 0x1201, 5_000, 200 * MS);
    s.buffer(200 * MS);
    let ct = rt.block_on(next_ct(&mut ws));
    assert_eq!(
        ct,
        ControlTimestamp::available(base + 200 * MS as i64, 5_000, 1.0)
    );
    // TEMI paused flag: speed 0.
    let mut p = TimelineInfo::new(
        TimelineEventKind::Correlation,
        TEMI.into(),
        true,
        0x1201,
        0x101,
    );
    p.tick_rate = 90_000;
    p.value = Some(9_000);
    p.paused = true;
    p.running_time = Some(gst::ClockTime::from_nseconds(300 * MS));
    s.event(p.to_event());
    s.buffer(300 * MS);
    let ct = rt.block_on(next_ct(&mut ws));
    assert_eq!(ct.timing.unwrap().speed, 0.0);
    assert_eq!(ct.timing.unwrap().content_time, 9_000);

    // Timeline gone: unavailable, once (checklist 60, 65).
    let mut g = TimelineInfo::new(
        TimelineEventKind::Disappeared,
        TEMI.into(),
        true,
        0x1201,
        0x101,
    );
    g.tick_rate = 90_000;
    s.event(g.to_event());
    s.buffer(400 * MS);
    assert!(!rt.block_on(next_ct(&mut ws)).is_available());
    s.event(gst::event::Eos::new());
    rt.block_on(quiet(&mut ws, Duration::from_millis(200)));
    drop(ws);
}

#[test]
fn ts_channel_change_makes_a_service_stem_unavailable() {
    let rt = runtime();
    let mut s = Sink::new(&[]);
    s.service(0x1201, 0);
    s.anchor(TimelineEventKind::Correlation, 0x1201, 1_000, 0);
    s.buffer(0);
    let mut ws = rt.block_on(connect(s.cii, "/ts"));
    rt.block_on(ws.send(Message::text(
        SetupData::new("dvb://233a.1002.1201", TEMI).to_json(),
    )))
    .unwrap();
    assert!(rt.block_on(next_ct(&mut ws)).is_available());
    s.service(0x1202, 2_000 * MS);
    s.anchor(TimelineEventKind::Correlation, 0x1202, 7, 2_000 * MS);
    s.buffer(2_000 * MS);
    assert!(
        !rt.block_on(next_ct(&mut ws)).is_available(),
        "checklist 63"
    );
    rt.block_on(quiet(&mut ws, Duration::from_millis(200)));
}

#[test]
fn wc_follow_up_and_malformed_datagrams() {
    let s = Sink::new(&[("wc-follow-up", "true")]);
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(STEP)).unwrap();
    let template = WcMessage::request(0x1234_5678_9abc).encode();
    let mut bad: Vec<Vec<u8>> = vec![
        vec![],
        vec![0],
        template[..31].to_vec(),
        vec![0u8; 33],
        vec![0xffu8; 1000],
    ];
    for t in 1u8..=255 {
        let mut b = template;
        b[1] = t;
        bad.push(b.to_vec());
    }
    let mut v = template;
    v[0] = 1;
    bad.push(v.to_vec());
    let mut buf = [0u8; 64];
    // In small batches (so the server's socket buffer never overflows), each followed by a
    // good request: only the good one is answered, with a type-2 response and a follow-up.
    for (i, batch) in bad.chunks(16).enumerate() {
        for b in batch {
            sock.send_to(b, s.wc).unwrap();
        }
        let originate = 0x1234_5678_9abc + i as u64;
        let before = gst::SystemClock::obtain().time().nseconds();
        sock.send_to(&WcMessage::request(originate).encode(), s.wc)
            .unwrap();
        let mut replies = Vec::new();
        while let Ok((n, _)) = sock.recv_from(&mut buf) {
            replies.push(WcMessage::decode(&buf[..n]).expect("well-formed reply"));
            if replies.len() == 2 {
                break;
            }
        }
        let after = gst::SystemClock::obtain().time().nseconds();
        assert_eq!(replies.len(), 2, "batch {i}: response and follow-up");
        let (a, b) = (replies[0], replies[1]);
        assert_eq!(
            a.originate.to_ns(),
            originate,
            "no reply to a malformed one"
        );
        assert_eq!(a.message_type, MessageType::ResponseWithFollowUp);
        assert_eq!(b.message_type, MessageType::FollowUp);
        assert_eq!((a.originate, a.receive), (b.originate, b.receive));
        assert!(b.transmit.to_ns() >= a.transmit.to_ns());
        // The wall clock is the GStreamer system clock (checklist 16, 80); 1 ms of slack for
        // the kernel receive stamp's conversion between clocks.
        assert!(before - 1_000_000 <= a.receive.to_ns() && b.transmit.to_ns() <= after);
    }
    // Nothing else arrives (no reply to the malformed ones).
    sock.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    assert!(sock.recv_from(&mut buf).is_err());
}

#[test]
fn websocket_refusals_oversized_json_and_floods_never_kill_the_servers() {
    let rt = runtime();
    let mut s = Sink::new(&[("max-connections", "2")]);
    s.service(0x1201, 0);
    s.anchor(TimelineEventKind::Correlation, 0x1201, 1, 0);
    s.buffer(0);
    let addr = s.cii;
    rt.block_on(async {
        assert_eq!(http_status(addr, "/nope").await, 404);
        // Oversized TS message: closed with 1009; the server keeps serving.
        let mut big = connect(addr, "/ts").await;
        let _ = big.send(Message::text("x".repeat(70 * 1024))).await;
        assert_eq!(close_code(&mut big).await, Some(CloseCode::Size));
        drop(big);
        // A flood of junk on one TS session, then SetupData still works.
        let mut ts = connect(addr, "/ts").await;
        for i in 0..500 {
            let junk = match i % 4 {
                0 => "{".repeat(1000),
                1 => "[1,2,3]".into(),
                2 => format!("{{\"contentIdStem\":{i}}}"),
                _ => "\u{0}\u{1}".into(),
            };
            ts.send(Message::text(junk)).await.unwrap();
        }
        ts.send(Message::text(SetupData::new("", TEMI).to_json()))
            .await
            .unwrap();
        assert!(next_ct(&mut ts).await.is_available());
        // Limit of 2 CII sessions: the third is refused with 503.
        let mut a = connect(addr, "/cii").await;
        let mut b = connect(addr, "/cii").await;
        next_text(&mut a).await;
        next_text(&mut b).await;
        for _ in 0..20 {
            assert_eq!(http_status(addr, "/cii").await, 503);
        }
        // A raw TCP connection sending garbage instead of HTTP.
        let mut raw = TcpStream::connect(addr).await.unwrap();
        tokio::io::AsyncWriteExt::write_all(&mut raw, b"\x16\x03\x01garbage\r\n\r\n")
            .await
            .unwrap();
        drop(raw);
        drop(b);
    });
    // Switching CSS-TS off: open sessions get 1001, upgrades 403.
    let e = s.element();
    e.set_property("enable-ts", false);
    rt.block_on(async {
        let mut ts = connect(addr, "/cii").await;
        next_text(&mut ts).await;
        assert_eq!(http_status(addr, "/ts").await, 403);
    });
    e.set_property("enable-ts", true);
    rt.block_on(async {
        let mut ts = connect(addr, "/ts").await;
        ts.send(Message::text(SetupData::new("", TEMI).to_json()))
            .await
            .unwrap();
        assert!(next_ct(&mut ts).await.is_available());
    });
}

fn media(name: &str) -> std::path::PathBuf {
    gstdvb2ip::proto::vectors::media_dir().join(name)
}

/// filesrc → tsparse (PCR timestamps) → tstimelineparse → dvbcsssink: the CII timelines and
/// a CSS-TS client see the file's TEMI timeline (private PID-keyed selector: no component tag).
#[test]
fn file_through_tstimelineparse_serves_its_temi_timeline() {
    common::init();
    let rt = runtime();
    let file = media("temi_a_single_timeline.ts");
    let p = gst::parse::launch(&format!(
        "filesrc location={} ! tsparse set-timestamps=true ! tstimelineparse ! dvbcsssink name=css cii-port=0 ts-port=0 wc-port=0 sync=false",
        file.display()
    ))
    .unwrap()
    .downcast::<gst::Pipeline>()
    .unwrap();
    let sink = p.by_name("css").unwrap();
    p.set_state(gst::State::Paused).unwrap();
    let addr = SocketAddr::from(([127, 0, 0, 1], sink.property::<u32>("cii-port") as u16));
    let selector = "urn:dvb2ip:timeline:temi-pid:102:1";
    let mut cii = rt.block_on(connect(addr, "/cii"));
    let mut ts = rt.block_on(connect(addr, "/ts"));
    rt.block_on(ts.send(Message::text(SetupData::new("", selector).to_json())))
        .unwrap();
    p.set_state(gst::State::Playing).unwrap();
    let found = rt.block_on(async {
        loop {
            let m = next_json(&mut cii).await;
            if let Some(t) = m.get("timelines").and_then(|t| t.as_array()) {
                if t.iter().any(|e| e["timelineSelector"] == selector) {
                    assert!(t
                        .iter()
                        .all(|e| e["timelineProperties"]["unitsPerSecond"] == 1000
                            || e["timelineSelector"] == "urn:dvb:css:timeline:pts"));
                    return true;
                }
            }
        }
    });
    assert!(found);
    let ct = rt.block_on(async {
        loop {
            let ct = next_ct(&mut ts).await;
            if ct.is_available() {
                return ct;
            }
        }
    });
    // media_timestamp starts at 0 (ms) in this vector and the file is 10 s long
    assert!(ct.timing.unwrap().content_time < 10_000);
    let bus = p.bus().unwrap();
    let eos = bus.timed_pop_filtered(
        gst::ClockTime::from_seconds(20),
        &[gst::MessageType::Eos, gst::MessageType::Error],
    );
    assert!(matches!(
        eos.map(|m| m.type_()),
        Some(gst::MessageType::Eos)
    ));
    // EOS: timeline gone
    let ct = rt.block_on(async {
        loop {
            let ct = next_ct(&mut ts).await;
            if !ct.is_available() {
                return ct;
            }
        }
    });
    assert!(!ct.is_available());
    p.set_state(gst::State::Null).unwrap();
}
