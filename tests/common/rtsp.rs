//! The tests' raw RTSP client: [`dvb2ip_testkit::rtsp::Client`] (shared with the benchmarks)
//! with URLs relative to the server it connected to, and panics instead of errors.

use std::net::{Ipv4Addr, SocketAddr};
use std::ops::{Deref, DerefMut};
use std::time::Duration;

pub use dvb2ip_testkit::rtsp::{Client, Item, Response as Resp};

/// Bound of the connect and of every read and write.
const TIMEOUT: Duration = Duration::from_secs(30);

/// One RTSP connection; the [`Client`] underneath (its `cseq`, `stream()`, `Read`) through
/// `Deref`.
pub struct Rtsp {
    c: Client,
}

impl Deref for Rtsp {
    type Target = Client;
    fn deref(&self) -> &Client {
        &self.c
    }
}

impl DerefMut for Rtsp {
    fn deref_mut(&mut self) -> &mut Client {
        &mut self.c
    }
}

impl Rtsp {
    /// Connects to 127.0.0.1:`port`.
    pub fn connect(port: u16) -> Rtsp {
        Rtsp::try_connect((Ipv4Addr::LOCALHOST, port).into()).expect("connect")
    }

    /// Connects to 127.0.0.1:`port` from the local address `from` (any of 127.0.0.0/8 on
    /// `lo`), so that one test can play several clients of different addresses.
    pub fn connect_from(from: Ipv4Addr, port: u16) -> Rtsp {
        let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)
            .expect("socket");
        s.bind(&SocketAddr::from((from, 0)).into())
            .expect("bind the client's address");
        s.connect_timeout(
            &SocketAddr::from((Ipv4Addr::LOCALHOST, port)).into(),
            TIMEOUT,
        )
        .expect("connect");
        let s: std::net::TcpStream = s.into();
        s.set_read_timeout(Some(TIMEOUT)).expect("timeout");
        s.set_write_timeout(Some(TIMEOUT)).expect("timeout");
        Rtsp {
            c: Client::from_stream(s).expect("client"),
        }
    }

    /// Connects to `addr` from the calling thread's network namespace.
    pub fn try_connect(addr: SocketAddr) -> std::io::Result<Rtsp> {
        Ok(Rtsp {
            c: Client::connect(addr, TIMEOUT)?,
        })
    }

    /// Sends `METHOD rtsp://host:port/rest RTSP/1.0` with CSeq and `headers`; reads one
    /// response.
    pub fn req(&mut self, method: &str, rest: &str, headers: &[(&str, &str)]) -> Resp {
        let url = self.c.url(rest);
        self.c
            .request(method, &url, headers)
            .unwrap_or_else(|e| panic!("{method} {url}: {e}"))
    }

    /// Sends `m` as it is; reads one response.
    pub fn raw(&mut self, m: &str) -> Resp {
        self.c.send_raw(m).expect("request sent");
        self.read_response()
    }

    pub fn read_response(&mut self) -> Resp {
        self.c.read_response().expect("response")
    }

    /// Next interleaved frame or response on the connection.
    pub fn next_item(&mut self) -> Item {
        self.c.next_item().expect("data on the RTSP connection")
    }

    /// Sends a request and returns its response, skipping interleaved frames.
    pub fn req_interleaved(&mut self, method: &str, rest: &str, headers: &[(&str, &str)]) -> Resp {
        let url = self.c.url(rest);
        self.c
            .request_interleaved(method, &url, headers)
            .unwrap_or_else(|e| panic!("{method} {url}: {e}"))
    }
}
