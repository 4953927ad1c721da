//! The web UI in a real browser (headless Chromium over WebDriver, tests/common/browser.rs):
//! the page loads and goes live without console errors; the VOD library's files and the relays
//! have their rows; an RTSP session a test starts shows up
//! as a row with its channel and client address; its Disconnect button ends the session (the
//! client's RTP stops and its session is gone: 454); the session's frontend shows its signal in
//! dBm in the tuner table. Screenshots land in
//! `target/<profile>/screenshots/webui-*.png`.

mod common;

use std::net::UdpSocket;
use std::time::Duration;

use common::browser::Browser;
use common::rtsp::Rtsp;
use common::serve_child::{free_port, ServeChild};

const ONE: &str = "src=1&freq=474&msys=dvbt2&bw=8&plp=0&pids=0,16,17,18,20,256,257,258";

/// The embedded configuration without SSDP, HTTP on `http_port`, the VOD library at `vod`
/// and a relay `up` (on demand, its upstream a port nothing listens on).
fn config(http_port: u16, vod: &std::path::Path) -> String {
    let text = gstdvb2ip::tuners::config::DEFAULT_CONFIG;
    let ssdp = text.find("[ssdp]").expect("[ssdp]");
    format!(
        "{}{}\n[vod]\nroots = [{:?}]\n\n[[relay]]\nname = \"up\"\nsource = \"http://127.0.0.1:{}/none\"\n",
        &text[..ssdp],
        text[ssdp..].replacen("enabled = true", "enabled = false", 1),
        vod.to_str().unwrap(),
        free_port()
    )
    .replacen("http_port = 8875", &format!("http_port = {http_port}"), 1)
}

#[test]
fn sessions_appear_live_and_the_disconnect_button_ends_them() {
    let dir = common::temp_dir("webui");
    let http = free_port();
    let conf = dir.join("serve.toml");
    let vod = dir.join("vod");
    std::fs::create_dir_all(&vod).unwrap();
    std::fs::write(vod.join("clip.ts"), [0x47u8; 188 * 10]).unwrap();
    std::fs::write(&conf, config(http, &vod)).unwrap();
    let srv = ServeChild::start(&conf, &[]);
    let b = Browser::start();
    b.goto(&format!("http://127.0.0.1:{http}/"));
    // Live: snapshots arrive and render the sections.
    b.wait_for(
        "Number(document.body.dataset.updates || 0) >= 2",
        Duration::from_secs(30),
    );
    b.wait_for(
        "document.querySelectorAll('#lineup-body tr').length >= 4",
        Duration::from_secs(10),
    );
    let facts = b.eval("document.getElementById('server-facts').textContent");
    assert!(
        facts.as_str().is_some_and(|t| t.contains("DEVICE ID")),
        "{facts}"
    );
    // The library's file and the relay have their rows, with their Play buttons.
    let file = b.wait_for(
        "document.querySelector('tr.vod-file[data-path=\"clip.ts\"]') && \
         document.querySelector('tr.vod-file[data-path=\"clip.ts\"]').textContent",
        Duration::from_secs(10),
    );
    assert!(file.as_str().is_some_and(|t| t.contains("Play")), "{file}");
    let relay = b.wait_for(
        "document.querySelector('tr.relay[data-relay=\"up\"]') && \
         document.querySelector('tr.relay[data-relay=\"up\"]').textContent",
        Duration::from_secs(10),
    );
    assert!(
        relay
            .as_str()
            .is_some_and(|t| t.contains("idle") && t.contains("Play")),
        "{relay}"
    );
    b.screenshot("webui-idle");

    let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
    let p = udp.local_addr().unwrap().port();
    let mut c = Rtsp::connect(srv.rtsp_port);
    let transport = format!("RTP/AVP;unicast;client_port={p}-{}", p + 1);
    let r = c.req(
        "SETUP",
        &format!("?{ONE}"),
        &[("Transport", &transport), ("User-Agent", "webui-test/1")],
    );
    assert_eq!(r.status, 200, "{}", r.head);
    let sid = r.session();
    let url = c.url(&format!("stream={}", r.stream_id()));
    assert_eq!(
        c.request("PLAY", &url, &[("Session", &sid)])
            .unwrap()
            .status,
        200
    );
    let mut dgram = [0u8; 2048];
    udp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    udp.recv(&mut dgram).expect("RTP");
    let client = format!("127.0.0.1:{}", c.stream().local_addr().unwrap().port());
    let row = format!("document.querySelector('tr.session[data-session=\"rtsp-{sid}\"]')");
    let text = b.wait_for(
        &format!("{row} && {row}.textContent"),
        Duration::from_secs(3),
    );
    let text = text.as_str().unwrap_or_default().to_owned();
    assert!(text.contains("dvb2ip One HD"), "{text}");
    assert!(text.contains(&client), "{client} in {text}");
    assert!(
        text.contains("RTSP/UDP") && text.contains("webui-test/1"),
        "{text}"
    );
    b.screenshot("webui-session");
    // The session's frontend shows its signal in dBm (the emulated default, -45 dBm) in the
    // live tuner table.
    let tuner = b.wait_for(
        "Array.from(document.querySelectorAll('#frontends tr'))\
         .map(r => r.textContent).find(t => t.includes('dBm'))",
        Duration::from_secs(10),
    );
    assert!(
        tuner
            .as_str()
            .is_some_and(|t| t.contains("-45.0 dBm") && t.contains("locked")),
        "{tuner}"
    );
    b.eval("document.getElementById('frontends').scrollIntoView()");
    b.screenshot("webui-tuner-dbm");

    // The Disconnect button, clicked as a user would.
    let css = format!("tr.session[data-session=\"rtsp-{sid}\"] button");
    b.run(|cl| async move { cl.find(fantoccini::Locator::Css(&css)).await?.click().await })
        .expect("click Disconnect");
    b.wait_for(&format!("!{row}"), Duration::from_secs(10));
    let after = c.request("OPTIONS", &url, &[("Session", &sid)]).unwrap();
    assert_eq!(after.status, 454, "{}", after.head);
    udp.set_read_timeout(Some(Duration::from_millis(1500)))
        .unwrap();
    let end = std::time::Instant::now() + Duration::from_secs(10);
    while udp.recv(&mut dgram).is_ok() {
        assert!(std::time::Instant::now() < end, "RTP still flowing");
    }
    b.screenshot("webui-disconnected");
    let errors = b.console_errors();
    assert!(errors.is_empty(), "console errors: {errors:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// `MD5("alice:dvb2ip:secret")`: the publisher of the publish mount below.
const ALICE_DIGEST: &str = "53ed74b6481a7a8645bcacc010ce5554";

/// Ends a child process on drop.
struct Kill(std::process::Child);

impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The Publishers section follows a publish mount live: idle, then a publisher that
/// `rtspclientsink` starts shows up with its address, user and bytes in; a reader makes the
/// reader count and bytes out move; the publisher leaving returns the mount to idle with one
/// stop counted. Screenshots: `webui-publisher-live.png`, `webui-publisher-gone.png`.
#[test]
fn a_publisher_appears_live_in_the_publishers_section() {
    let dir = common::temp_dir("webui-publish");
    let http = free_port();
    let conf = dir.join("serve.toml");
    let vod = dir.join("vod");
    std::fs::create_dir_all(&vod).unwrap();
    let text = config(http, &vod) + &format!(
        "\n[[publish]]\nname = \"cam\"\n[[publish.publisher]]\nuser = \"alice\"\npassword_digest = \"{ALICE_DIGEST}\"\nfrom = [\"127.0.0.0/8\"]\n"
    );
    std::fs::write(&conf, text).unwrap();
    let srv = ServeChild::start(&conf, &[]);
    let b = Browser::start();
    b.goto(&format!("http://127.0.0.1:{http}/"));
    b.wait_for(
        "Number(document.body.dataset.updates || 0) >= 2",
        Duration::from_secs(30),
    );
    let row = "document.querySelector('tr.publisher[data-mount=\"/live/cam\"]')";
    b.wait_for(
        &format!("{row} && {row}.dataset.state === 'idle'"),
        Duration::from_secs(10),
    );
    let pushes = b.eval("document.getElementById('pushes-body').textContent");
    assert!(
        pushes.as_str().is_some_and(|t| t.contains("no pushes")),
        "{pushes}"
    );

    let mut gst = common::gst_launch();
    gst.args([
        "-q",
        "videotestsrc",
        "is-live=true",
        "!",
        "video/x-raw,width=320,height=240,framerate=25/1",
        "!",
        "x264enc",
        "tune=zerolatency",
        "key-int-max=25",
        "!",
        "h264parse",
        "!",
        "rtspclientsink",
    ])
    .arg(format!(
        "location=rtsp://127.0.0.1:{}/live/cam",
        srv.rtsp_port
    ))
    .args(["user-id=alice", "user-pw=secret", "protocols=tcp"])
    .stdout(std::process::Stdio::null())
    .stderr(std::process::Stdio::null());
    let publisher = Kill(gst.spawn().expect("gst-launch runs"));
    // Live, with the publisher's address and user, and bytes coming in.
    let text = b.wait_for(
        &format!(
            "{row} && {row}.dataset.state === 'live' && \
             {row}.children[4].textContent !== '0 B' && {row}.textContent"
        ),
        Duration::from_secs(60),
    );
    let text = text.as_str().unwrap_or_default().to_owned();
    assert!(
        text.contains("127.0.0.1:") && text.contains("(alice)"),
        "{text}"
    );

    // A reader over HTTP: the reader count and bytes out follow.
    let mut reader = std::net::TcpStream::connect(("127.0.0.1", http)).unwrap();
    use std::io::{Read, Write};
    write!(reader, "GET /live/cam HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    reader
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut r2 = reader.try_clone().unwrap();
    let read = std::thread::spawn(move || {
        let mut buf = [0u8; 65536];
        while matches!(r2.read(&mut buf), Ok(n) if n > 0) {}
    });
    b.wait_for(
        &format!(
            "{row} && {row}.children[3].textContent === '1' && \
             {row}.children[5].textContent !== '0 B'"
        ),
        Duration::from_secs(60),
    );
    b.eval("document.getElementById('publishers').scrollIntoView()");
    b.screenshot("webui-publisher-live");

    // The publisher leaves: idle again, its stop counted.
    drop(publisher);
    let text = b.wait_for(
        &format!(
            "{row} && {row}.dataset.state === 'idle' && {row}.children[7].textContent === '1' \
             && {row}.textContent"
        ),
        Duration::from_secs(60),
    );
    assert!(
        text.as_str().is_some_and(|t| t.starts_with("/live/cam")),
        "{text}"
    );
    b.eval("document.getElementById('publishers').scrollIntoView()");
    b.screenshot("webui-publisher-gone");
    drop(reader);
    let _ = read.join();
    let errors = b.console_errors();
    assert!(errors.is_empty(), "console errors: {errors:?}");
    let _ = std::fs::remove_dir_all(&dir);
}
