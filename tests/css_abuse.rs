//! CSS-CII/TS against silent connections (issue 16 item 6): TCP connections that never send
//! their HTTP upgrade used to hold all 16 handshake slots for the 5 s handshake timeout, which
//! an attacker renews forever, locking every new client out. Handshakes in progress are now
//! bounded per address (4) and in total (64), with a 3 s timeout: silent connections of one
//! address cannot lock out another, and they end on their own.
//!
//! The TV emulator (`dvb2ip css tv`) runs in the test process on 127.0.0.1; clients connect
//! from other loopback addresses (127.0.0.0/8 is all on `lo`).

mod common;

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use dvb2ip::css::tools::{self, TvOptions};

/// The CII port of a `ws://127.0.0.1:PORT/cii` URL.
fn port_of(url: &str) -> u16 {
    url.trim_start_matches("ws://127.0.0.1:")
        .split('/')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("port in the CII URL")
}

/// A TCP connection to 127.0.0.1:`port` from `from`.
fn connect_from(from: Ipv4Addr, port: u16) -> TcpStream {
    let s =
        socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).expect("socket");
    s.bind(&SocketAddr::from((from, 0)).into()).expect("bind");
    s.connect_timeout(
        &SocketAddr::from((Ipv4Addr::LOCALHOST, port)).into(),
        Duration::from_secs(10),
    )
    .expect("connect");
    let s: TcpStream = s.into();
    s.set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    s
}

/// A CSS-CII client from `from`: the WebSocket upgrade on `/cii` is answered 101 and the first
/// message (the full CII state, a text frame) arrives.
fn cii_client_from(from: Ipv4Addr, port: u16) -> Result<(), String> {
    let mut s = connect_from(from, port);
    s.write_all(
        format!(
            "GET /cii HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n\
             Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
             Sec-WebSocket-Version: 13\r\n\r\n"
        )
        .as_bytes(),
    )
    .map_err(|e| format!("send: {e}"))?;
    let mut got = Vec::new();
    let mut b = [0u8; 1];
    while !got.ends_with(b"\r\n\r\n") {
        match s.read(&mut b) {
            Ok(1) => got.push(b[0]),
            Ok(_) => return Err(format!("closed after {:?}", String::from_utf8_lossy(&got))),
            Err(e) => return Err(format!("{e} after {:?}", String::from_utf8_lossy(&got))),
        }
    }
    let head = String::from_utf8_lossy(&got);
    if !head.starts_with("HTTP/1.1 101") {
        return Err(head.into_owned());
    }
    // The first frame: FIN + text (0x81).
    s.read_exact(&mut b)
        .map_err(|e| format!("first frame: {e}"))?;
    if b[0] != 0x81 {
        return Err(format!("first frame starts with {:#x}", b[0]));
    }
    Ok(())
}

/// Whether the server closed `s` (end of stream or reset) without an answer, waiting at most
/// the read timeout.
fn closed_without_answer(s: &mut TcpStream) -> bool {
    let mut b = [0u8; 16];
    match s.read(&mut b) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => e.kind() == std::io::ErrorKind::ConnectionReset,
    }
}

#[test]
fn silent_connections_do_not_lock_out_css_clients() {
    let tv = tools::start_tv(&TvOptions {
        cii_port: 0,
        wc_port: 0,
        ..TvOptions::default()
    })
    .expect("TV starts");
    let port = port_of(&tv.urls.cii);
    let pid = std::process::id();
    let fds = || {
        std::fs::read_dir("/proc/self/fd")
            .map(|d| d.count())
            .unwrap_or(0)
    };
    let base_fds = fds();
    // A normal client first: the server is up.
    let deadline = Instant::now() + Duration::from_secs(60);
    while let Err(e) = cii_client_from(Ipv4Addr::new(127, 0, 0, 2), port) {
        assert!(Instant::now() < deadline, "no CII client served: {e}");
        std::thread::sleep(Duration::from_millis(100));
    }

    // 16 silent connections from one address: 4 are held pending, the others are closed at
    // once without an answer.
    let attacker = Ipv4Addr::new(127, 0, 0, 9);
    let mut silent: Vec<TcpStream> = (0..16).map(|_| connect_from(attacker, port)).collect();
    // The first 4 are pending (the handshake timeout ends them later); the rest are closed.
    let mut closed = 0;
    for s in silent.iter_mut().skip(4) {
        if closed_without_answer(s) {
            closed += 1;
        }
    }
    assert_eq!(closed, 12, "connections beyond 4 pending from one address");
    // While they are held, a client from another address is served at its first attempt.
    cii_client_from(Ipv4Addr::new(127, 0, 0, 3), port).expect("CII client beside the silent ones");

    // Silent connections from 16 addresses, 4 each: the 64 handshake slots are full; one more
    // address is closed without an answer. Then the handshake timeout ends the silent ones and
    // a client is served again.
    let mut many = Vec::new();
    for a in 10..26u8 {
        for _ in 0..4 {
            many.push(connect_from(Ipv4Addr::new(127, 0, 0, a), port));
        }
    }
    // The 4 of `attacker` may still be pending: the total may be reached before the last
    // address; every connection beyond 64 pending is closed without an answer.
    let mut extra = connect_from(Ipv4Addr::new(127, 0, 0, 30), port);
    assert!(
        closed_without_answer(&mut extra),
        "a connection beyond 64 pending handshakes"
    );
    // Every silent connection ends by the handshake timeout (bounded by the read timeout).
    for s in silent.iter_mut().take(4).chain(many.iter_mut()) {
        assert!(closed_without_answer(s), "a silent connection left open");
    }
    drop(silent);
    drop(many);
    cii_client_from(Ipv4Addr::new(127, 0, 0, 4), port).expect("CII client after the flood");
    // The server's descriptors come back near where they were.
    let deadline = Instant::now() + Duration::from_secs(30);
    while fds() > base_fds + 8 {
        assert!(
            Instant::now() < deadline,
            "process {pid}: {} descriptors, {base_fds} before",
            fds()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}
