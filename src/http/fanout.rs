//! The HTTP streaming writer: a stream's TS goes from the source's thread (the frontend's
//! feed) straight into the client's socket, without a thread or a task wake-up per buffer, as
//! the RTP direct path sends its datagrams ([`crate::rtp::udp`]).
//!
//! Each [`Writer`] is the [`TsSink`] of one client's source. A push appends the buffer (a
//! reference, no copy) to the client's queue and writes what the queue holds with one
//! non-blocking vectored `sendmsg`; what the socket does not take stays queued and goes first
//! with the next push. The queue is bounded in bytes: a client that does not keep up is
//! dropped (its queue freed, its socket shut down, [`HttpStats::slow_dropped`] counted, a
//! rate-limited log line) rather than growing memory. The connection's task
//! ([`super::conn`]) only waits for the client to close or to be dropped.

use std::collections::VecDeque;
use std::io::IoSlice;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nix::errno::Errno;
use nix::sys::socket::{sendmsg, MsgFlags};

use super::limits::HttpStats;
use crate::limits::RateLimitedLog;
use crate::streams::source::TsSink;

/// Most buffers written by one `sendmsg`.
const IOV_MAX: usize = 64;

static SLOW_LOG: once_cell::sync::Lazy<RateLimitedLog> =
    once_cell::sync::Lazy::new(|| RateLimitedLog::new(Duration::from_secs(10)));

/// Why a writer stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Closed {
    /// Its queue exceeded the bound: the client does not read fast enough.
    Slow,
    /// The socket failed (the client went away).
    Error(Errno),
}

enum Chunk {
    Head(Vec<u8>),
    Ts(gst::MappedBuffer<gst::buffer::Readable>),
}

impl Chunk {
    fn bytes(&self) -> &[u8] {
        match self {
            Chunk::Head(h) => h,
            Chunk::Ts(b) => b.as_slice(),
        }
    }
}

#[derive(Default)]
struct Queue {
    /// The response head was handed over: data may go out.
    started: bool,
    chunks: VecDeque<Chunk>,
    /// Bytes of the first chunk already written.
    offset: usize,
    /// Bytes queued, not yet written.
    bytes: usize,
    closed: Option<Closed>,
    /// The buffer the pool primed the stream with (the feed's latest, pushed in the thread that
    /// opened the source), until the feed's own first push came.
    primed: Option<gst::Buffer>,
    /// The feed's thread pushed already.
    fed: bool,
}

/// One streaming client's writer (see the module documentation).
pub struct Writer {
    /// Keeps the descriptor open while the feed may still push.
    sock: Arc<tokio::net::TcpStream>,
    fd: RawFd,
    peer: SocketAddr,
    limit: usize,
    stats: Arc<HttpStats>,
    queue: Mutex<Queue>,
    /// The thread opening the source, while it does: its push is the pool's priming.
    opener: Mutex<Option<std::thread::ThreadId>>,
    /// Signalled once the writer stopped.
    pub closed: tokio::sync::Notify,
    /// Bytes the socket took (head and TS), for the session's bitrate.
    sent: std::sync::atomic::AtomicU64,
}

impl Writer {
    /// A writer on `sock` (non-blocking) queueing at most `limit` bytes.
    pub fn new(
        sock: Arc<tokio::net::TcpStream>,
        peer: SocketAddr,
        limit: usize,
        stats: Arc<HttpStats>,
    ) -> Arc<Writer> {
        Arc::new(Writer {
            fd: sock.as_raw_fd(),
            sock,
            peer,
            limit,
            stats,
            queue: Mutex::new(Queue::default()),
            opener: Mutex::new(None),
            closed: tokio::sync::Notify::new(),
            sent: std::sync::atomic::AtomicU64::new(0),
        })
    }

    /// Bytes written to the client so far.
    pub fn sent(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }

    /// Opens the stream's source with `open` in this thread. The pool primes a new subscriber
    /// with the feed's latest buffer in the opening thread, racing the feed's own next push:
    /// the primed buffer is kept only when it comes first, and the feed's push of that same
    /// buffer is then skipped, so the client sees every packet once and in order.
    pub fn opening<T>(&self, open: impl FnOnce() -> T) -> T {
        *self.opener.lock().unwrap() = Some(std::thread::current().id());
        let r = open();
        *self.opener.lock().unwrap() = None;
        r
    }

    /// Whether `b` is the primed buffer `p` (the same buffer, or the same filtered packets).
    fn same(p: &gst::Buffer, b: &gst::Buffer) -> bool {
        if p.as_ptr() == b.as_ptr() {
            return true;
        }
        match (p.map_readable(), b.map_readable()) {
            (Ok(x), Ok(y)) => x.as_slice() == y.as_slice(),
            _ => false,
        }
    }

    /// Writes the response head, then what was queued before it, then every push.
    pub fn start(&self, head: Vec<u8>) {
        let mut q = self.queue.lock().unwrap();
        if q.closed.is_some() {
            return;
        }
        q.bytes += head.len();
        q.chunks.push_front(Chunk::Head(head));
        q.offset = 0;
        q.started = true;
        self.flush(&mut q);
    }

    /// Why the writer stopped, if it did.
    pub fn closed_reason(&self) -> Option<Closed> {
        self.queue.lock().unwrap().closed
    }

    /// Stops the writer: frees the queue and shuts the socket down (the connection's task
    /// sees the end and gives the source back).
    pub fn close(&self) {
        let mut q = self.queue.lock().unwrap();
        self.close_locked(&mut q, Closed::Error(Errno::ECONNABORTED));
    }

    fn close_locked(&self, q: &mut Queue, why: Closed) {
        if q.closed.is_some() {
            return;
        }
        q.closed = Some(why);
        q.chunks.clear();
        q.bytes = 0;
        q.offset = 0;
        // SAFETY: shutdown on the descriptor `self.sock` keeps open.
        unsafe { libc::shutdown(self.fd, libc::SHUT_RDWR) };
        self.closed.notify_one();
        let _ = &self.sock;
    }

    /// Writes queued chunks until the socket takes no more.
    fn flush(&self, q: &mut Queue) {
        while q.started && !q.chunks.is_empty() {
            let iov: Vec<IoSlice> = q
                .chunks
                .iter()
                .take(IOV_MAX)
                .enumerate()
                .map(|(i, c)| {
                    let b = c.bytes();
                    IoSlice::new(if i == 0 { &b[q.offset..] } else { b })
                })
                .collect();
            let want: usize = iov.iter().map(|s| s.len()).sum();
            let r = sendmsg::<()>(
                self.fd,
                &iov,
                &[],
                MsgFlags::MSG_DONTWAIT | MsgFlags::MSG_NOSIGNAL,
                None,
            );
            drop(iov);
            match r {
                Ok(n) => {
                    self.consume(q, n);
                    if n < want {
                        return;
                    }
                }
                Err(Errno::EINTR) => continue,
                Err(Errno::EAGAIN) => return,
                Err(e) => return self.close_locked(q, Closed::Error(e)),
            }
        }
    }

    fn consume(&self, q: &mut Queue, mut n: usize) {
        q.bytes -= n;
        self.sent.fetch_add(n as u64, Ordering::Relaxed);
        while n > 0 {
            let Some(first) = q.chunks.front() else {
                return;
            };
            let left = first.bytes().len() - q.offset;
            if n >= left {
                n -= left;
                q.offset = 0;
                q.chunks.pop_front();
            } else {
                q.offset += n;
                n = 0;
            }
        }
    }
}

impl TsSink for Writer {
    /// The source ended (its tuner left the pool and no other frontend could take the stream
    /// over): the response ends, the connection closes.
    fn end(&self, reason: &str) {
        let mut q = self.queue.lock().unwrap();
        if q.closed.is_none() {
            eprintln!("dvb2ip: http: stream to {} ends: {reason}", self.peer);
            self.close_locked(&mut q, Closed::Error(Errno::ENODEV));
        }
    }

    fn push(&self, buffer: &gst::Buffer) {
        let priming = *self.opener.lock().unwrap() == Some(std::thread::current().id());
        let mut q = self.queue.lock().unwrap();
        if q.closed.is_some() {
            return;
        }
        if priming {
            if q.fed {
                // The feed was first: the primed buffer is older or the same.
                return;
            }
            q.primed = Some(buffer.clone());
        } else if !q.fed {
            q.fed = true;
            if q.primed.take().is_some_and(|p| Self::same(&p, buffer)) {
                return;
            }
        }
        let Ok(m) = buffer.clone().into_mapped_buffer_readable() else {
            return;
        };
        q.bytes += m.len();
        q.chunks.push_back(Chunk::Ts(m));
        self.flush(&mut q);
        if q.closed.is_none() && q.bytes > self.limit {
            let queued = q.bytes;
            self.close_locked(&mut q, Closed::Slow);
            self.stats.slow_dropped.fetch_add(1, Ordering::Relaxed);
            let peer = self.peer;
            super::conn::log(
                &SLOW_LOG,
                format!(
                    "streaming client {peer} dropped: it does not keep up ({queued} bytes queued)"
                ),
            );
        }
    }
}
