//! A raw RTSP/1.0 client: one blocking TCP connection, requests written as given (the client
//! numbers `CSeq`), responses read as a status line, header lines and a `Content-Length` body,
//! and RTP/RTCP interleaved frames (`$`, channel, length, data; RFC 2326 §10.12) told apart from
//! responses on the same connection.
//!
//! It checks the framing only: a test asserts on the [`Response`], a benchmark turns a status
//! into its own error. Failures are `std::io::Error`s (a connection closed in the middle of a
//! response is `UnexpectedEof`, a malformed response `InvalidData`), never panics, except in
//! the two helpers documented as test conveniences ([`Response::session`],
//! [`Response::stream_id`]).
//!
//! Reads go through one buffer, so responses, interleaved frames and plain reads
//! ([`Client`] implements [`Read`]) can follow each other on the connection in any order.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// One RTSP response.
#[derive(Debug, Clone)]
pub struct Response {
    /// Status code (`RTSP/1.0 454 Session Not Found` → 454).
    pub status: u16,
    /// Header fields in order of arrival, names and values trimmed.
    pub headers: Vec<(String, String)>,
    /// The body (`Content-Length` bytes; none without that header), decoded lossily as UTF-8.
    pub body: String,
    /// The status line and the header lines as received, through the empty line that ends them.
    pub head: String,
}

impl Response {
    /// The status line, e.g. `RTSP/1.0 200 OK`.
    pub fn status_line(&self) -> &str {
        self.head.split("\r\n").next().unwrap_or("")
    }

    /// The value of the first header called `name` (ASCII case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The session identifier of the `Session` header (without `;timeout=…`), if any.
    pub fn session_id(&self) -> Option<&str> {
        self.header("Session")
            .map(|s| s.split(';').next().unwrap_or(s).trim())
    }

    /// Test convenience: the session identifier of the `Session` header (the part before the
    /// first `;`). Panics without one.
    pub fn session(&self) -> String {
        self.header("Session")
            .expect("Session header")
            .split(';')
            .next()
            .unwrap_or_default()
            .to_string()
    }

    /// Test convenience: the SAT>IP `com.ses.streamID` header as a number. Panics without one.
    pub fn stream_id(&self) -> u16 {
        self.header("com.ses.streamID")
            .expect("com.ses.streamID")
            .parse()
            .expect("decimal stream id")
    }
}

/// What comes next on a connection that may carry interleaved data.
#[derive(Debug)]
pub enum Item {
    /// `$`, channel, data.
    Frame(u8, Vec<u8>),
    Response(Response),
}

/// One RTSP connection.
pub struct Client {
    conn: BufReader<TcpStream>,
    /// `host:port` of the server, for [`Client::url`].
    authority: String,
    /// `CSeq` of the last request [`Client::send`] wrote (0 before the first).
    pub cseq: u32,
}

fn invalid(what: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what)
}

impl Client {
    /// Connects to `addr` (from the calling thread's network namespace) within `timeout`, which
    /// also bounds every later read and write.
    pub fn connect(addr: SocketAddr, timeout: Duration) -> io::Result<Client> {
        let s = TcpStream::connect_timeout(&addr, timeout)?;
        s.set_read_timeout(Some(timeout))?;
        s.set_write_timeout(Some(timeout))?;
        Client::from_stream(s)
    }

    /// A client on a connection made elsewhere (its timeouts as they are).
    pub fn from_stream(s: TcpStream) -> io::Result<Client> {
        Ok(Client {
            authority: s.peer_addr()?.to_string(),
            conn: BufReader::new(s),
            cseq: 0,
        })
    }

    /// The socket, for its options (`set_nodelay`, `set_read_timeout`, …). Read through the
    /// client, not the socket: it may hold bytes already received.
    pub fn stream(&self) -> &TcpStream {
        self.conn.get_ref()
    }

    /// `rtsp://host:port/rest` on the server this client is connected to.
    pub fn url(&self, rest: &str) -> String {
        format!("rtsp://{}/{rest}", self.authority)
    }

    /// Writes `METHOD url RTSP/1.0`, the next `CSeq` and `headers` (in that order) as one write;
    /// returns the `CSeq`.
    pub fn send(&mut self, method: &str, url: &str, headers: &[(&str, &str)]) -> io::Result<u32> {
        self.cseq += 1;
        let mut m = format!("{method} {url} RTSP/1.0\r\nCSeq: {}\r\n", self.cseq);
        for (k, v) in headers {
            m += &format!("{k}: {v}\r\n");
        }
        m += "\r\n";
        self.send_raw(&m)?;
        Ok(self.cseq)
    }

    /// Writes `text` as it is (a whole request, or a deliberately malformed one).
    pub fn send_raw(&mut self, text: &str) -> io::Result<()> {
        self.conn.get_mut().write_all(text.as_bytes())
    }

    /// [`Client::send`], then [`Client::read_response`].
    pub fn request(
        &mut self,
        method: &str,
        url: &str,
        headers: &[(&str, &str)],
    ) -> io::Result<Response> {
        self.send(method, url, headers)?;
        self.read_response()
    }

    /// Reads one response: the head up to the empty line, then `Content-Length` bytes of body.
    pub fn read_response(&mut self) -> io::Result<Response> {
        let mut buf = Vec::new();
        while !buf.ends_with(b"\r\n\r\n") {
            if self.conn.read_until(b'\n', &mut buf)? == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("connection closed; got {:?}", String::from_utf8_lossy(&buf)),
                ));
            }
        }
        let head = String::from_utf8_lossy(&buf).into_owned();
        let mut lines = head.split("\r\n");
        let status_line = lines.next().unwrap_or_default();
        if !status_line.starts_with("RTSP/1.0 ") {
            return Err(invalid(format!(
                "not an RTSP/1.0 status line: {status_line:?}"
            )));
        }
        let status = status_line
            .get(9..12)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| invalid(format!("no status code in {status_line:?}")))?;
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
            .collect();
        let len = match headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("Content-Length"))
        {
            Some((_, v)) => v
                .parse()
                .map_err(|_| invalid(format!("Content-Length {v:?}")))?,
            None => 0,
        };
        let mut body = vec![0u8; len];
        self.conn.read_exact(&mut body)?;
        Ok(Response {
            status,
            headers,
            body: String::from_utf8_lossy(&body).into_owned(),
            head,
        })
    }

    /// The next interleaved frame or response on the connection.
    pub fn next_item(&mut self) -> io::Result<Item> {
        let first = match self.conn.fill_buf()? {
            [] => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "connection closed",
                ))
            }
            b => b[0],
        };
        if first != b'$' {
            return self.read_response().map(Item::Response);
        }
        let mut h = [0u8; 4];
        self.conn.read_exact(&mut h)?;
        let mut data = vec![0u8; usize::from(u16::from_be_bytes([h[2], h[3]]))];
        self.conn.read_exact(&mut data)?;
        Ok(Item::Frame(h[1], data))
    }

    /// Sends a request and returns its response, skipping the interleaved frames before it.
    pub fn request_interleaved(
        &mut self,
        method: &str,
        url: &str,
        headers: &[(&str, &str)],
    ) -> io::Result<Response> {
        self.send(method, url, headers)?;
        loop {
            if let Item::Response(r) = self.next_item()? {
                return Ok(r);
            }
        }
    }
}

/// Reads what follows on the connection (after any buffered bytes); `Ok(0)` once the server
/// closed it.
impl Read for Client {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.conn.read(buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    /// A one-connection server that checks the request it gets and answers `answer`.
    fn server(expect: &'static str, answer: Vec<u8>) -> (SocketAddr, std::thread::JoinHandle<()>) {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let t = std::thread::spawn(move || {
            let (mut s, _) = l.accept().unwrap();
            let mut got = vec![0u8; expect.len()];
            s.read_exact(&mut got).unwrap();
            assert_eq!(String::from_utf8_lossy(&got), expect);
            s.write_all(&answer).unwrap();
        });
        (addr, t)
    }

    #[test]
    fn request_and_response_with_body() {
        let (addr, t) = server(
            "DESCRIBE rtsp://x/ RTSP/1.0\r\nCSeq: 1\r\nAccept: application/sdp\r\n\r\n",
            b"RTSP/1.0 200 OK\r\nCSeq: 1\r\nsession: ab;timeout=60\r\nContent-Length: 4\r\n\r\nv=0\n"
                .to_vec(),
        );
        let mut c = Client::connect(addr, Duration::from_secs(10)).unwrap();
        assert_eq!(c.url("stream=1"), format!("rtsp://{addr}/stream=1"));
        let r = c
            .request("DESCRIBE", "rtsp://x/", &[("Accept", "application/sdp")])
            .unwrap();
        assert_eq!((r.status, r.status_line()), (200, "RTSP/1.0 200 OK"));
        assert_eq!(r.header("CSEQ"), Some("1"));
        assert_eq!((r.session_id(), r.session().as_str()), (Some("ab"), "ab"));
        assert_eq!(r.body, "v=0\n");
        assert!(r.head.ends_with("Content-Length: 4\r\n\r\n"));
        t.join().unwrap();
        // The server closed the connection.
        assert_eq!(c.read(&mut [0u8; 1]).unwrap(), 0);
        let e = c.read_response().unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof);
    }

    #[test]
    fn interleaved_frames_before_a_response() {
        let mut answer = vec![b'$', 1, 0, 3, 9, 8, 7];
        answer.extend_from_slice(b"RTSP/1.0 454 Session Not Found\r\nCSeq: 1\r\n\r\n");
        answer.extend_from_slice(&[b'$', 0, 0, 1, 5]);
        let (addr, t) = server(
            "PLAY rtsp://x/ RTSP/1.0\r\nCSeq: 1\r\nSession: s\r\n\r\n",
            answer,
        );
        let mut c = Client::connect(addr, Duration::from_secs(10)).unwrap();
        let r = c
            .request_interleaved("PLAY", "rtsp://x/", &[("Session", "s")])
            .unwrap();
        assert_eq!(r.status, 454);
        assert!(matches!(c.next_item().unwrap(), Item::Frame(0, d) if d == [5]));
        t.join().unwrap();
    }

    #[test]
    fn a_malformed_response_is_an_error() {
        let (addr, t) = server("X\r\n", b"HTTP/1.1 200 OK\r\n\r\n".to_vec());
        let mut c = Client::connect(addr, Duration::from_secs(10)).unwrap();
        c.send_raw("X\r\n").unwrap();
        let e = c.read_response().unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
        t.join().unwrap();
    }
}
