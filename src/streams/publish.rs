//! A published stream (`[[publish]]`, src/publish): the TS a publisher sends with
//! ANNOUNCE/RECORD, shared by every reader of its mount (RTSP and HTTP).
//!
//! One publisher at a time holds the mount ([`Published::claim`]); a second one is refused
//! (no silent takeover). The publisher's TS goes through [`Published::ingest`] to the readers'
//! [`Reader`]s, each new reader first getting PAT, PMT and the packets since the last random
//! access point (the relays' [`TsCache`]). When the publisher leaves, every reader gets
//! [`Reader::end`] and the mount goes idle.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use serde::Serialize;

use crate::relay::ts::{Aligner, TsCache, PACKET};

/// What a reader receives the TS through, in the publisher's streaming thread: it must not
/// block. `push` returns false when the reader cannot take more (it gets nothing more).
pub trait Reader: Send + Sync + 'static {
    fn push(&self, ts: &[u8]) -> bool;
    /// The publisher left: the stream ends.
    fn end(&self);
}

/// A mount's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    /// No publisher.
    Idle,
    /// A publisher announced and has sent nothing yet.
    Starting,
    /// The publisher's stream arrives.
    Live,
}

/// A mount's report (`GET /api/publishers`, metrics).
#[derive(Debug, Clone, Serialize)]
pub struct PublishStatus {
    pub name: String,
    pub mount: String,
    pub state: Phase,
    /// `ip:port` of the publisher's RTSP connection.
    pub publisher: Option<String>,
    pub user: Option<String>,
    /// Seconds since the publisher announced.
    pub publishing_for_s: Option<f64>,
    /// Readers attached now (RTSP media and HTTP streams).
    pub readers: usize,
    pub bytes_in: u64,
    pub bytes_out: u64,
    /// Publisher RTP/RTCP datagrams dropped: sent from another address than the RTSP peer's.
    pub foreign_dropped: u64,
    /// Publishers accepted, publishers gone.
    pub starts: u64,
    pub stops: u64,
    /// Publish attempts refused: credentials (401), address (403), mount taken (455).
    pub refused: u64,
    pub last_refusal: Option<String>,
}

struct Holder {
    id: u64,
    peer: String,
    user: String,
    since: Instant,
    live: bool,
}

struct ReaderEntry {
    id: u64,
    out: Arc<dyn Reader>,
    waiting_rap: bool,
}

#[derive(Default)]
struct Data {
    holder: Option<Holder>,
    aligner: Aligner,
    cache: TsCache,
    readers: Vec<ReaderEntry>,
    next_id: u64,
    starts: u64,
    stops: u64,
    refused: u64,
    last_refusal: Option<String>,
}

/// One publish mount.
pub struct Published {
    name: String,
    mount: String,
    data: Mutex<Data>,
    bytes_in: AtomicU64,
    bytes_out: AtomicU64,
    /// RTP/RTCP datagrams dropped because they came from another address than the
    /// publisher's RTSP connection.
    foreign_dropped: AtomicU64,
}

/// The publisher's hold on a mount; dropping it ends the publication (readers get the end).
pub struct Claim {
    published: Arc<Published>,
    id: u64,
}

impl Claim {
    /// The publisher's TS (any chunking).
    pub fn ingest(&self, bytes: &[u8]) {
        self.published.ingest(self.id, bytes);
    }

    pub fn published(&self) -> &Arc<Published> {
        &self.published
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        self.published.release(self.id);
    }
}

impl std::fmt::Debug for Claim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Claim({}#{})", self.published.mount, self.id)
    }
}

/// A reader attached to a mount; dropping it detaches it.
pub struct ReaderHandle {
    published: Arc<Published>,
    id: u64,
}

impl Drop for ReaderHandle {
    fn drop(&mut self) {
        let mut d = self.published.data.lock().unwrap();
        d.readers.retain(|r| r.id != self.id);
    }
}

impl std::fmt::Debug for ReaderHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ReaderHandle({}#{})", self.published.mount, self.id)
    }
}

impl Published {
    pub fn new(name: &str, mount: &str) -> Arc<Published> {
        Arc::new(Published {
            name: name.to_string(),
            mount: mount.to_string(),
            data: Mutex::default(),
            bytes_in: AtomicU64::new(0),
            bytes_out: AtomicU64::new(0),
            foreign_dropped: AtomicU64::new(0),
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn mount(&self) -> &str {
        &self.mount
    }

    /// The publisher holding the mount (`ip:port`), if any.
    pub fn holder(&self) -> Option<String> {
        self.data
            .lock()
            .unwrap()
            .holder
            .as_ref()
            .map(|h| h.peer.clone())
    }

    /// Takes the mount for the publisher at `peer` (`user`); `Err` names who holds it.
    pub fn claim(self: &Arc<Self>, peer: &str, user: &str) -> Result<Claim, String> {
        let mut d = self.data.lock().unwrap();
        if let Some(h) = &d.holder {
            let why = format!(
                "{} already has a publisher (from {}, user {})",
                self.mount, h.peer, h.user
            );
            d.refused += 1;
            d.last_refusal = Some(why.clone());
            return Err(why);
        }
        d.next_id += 1;
        let id = d.next_id;
        d.holder = Some(Holder {
            id,
            peer: peer.to_string(),
            user: user.to_string(),
            since: Instant::now(),
            live: false,
        });
        d.starts += 1;
        d.aligner.reset();
        d.cache.reset();
        drop(d);
        eprintln!(
            "dvb2ip: publish {}: publisher {peer} (user {user}) announced",
            self.mount
        );
        Ok(Claim {
            published: self.clone(),
            id,
        })
    }

    /// Counts a refused publish attempt.
    pub fn refused(&self, why: &str) {
        let mut d = self.data.lock().unwrap();
        d.refused += 1;
        d.last_refusal = Some(why.to_string());
    }

    fn release(&self, id: u64) {
        let readers = {
            let mut d = self.data.lock().unwrap();
            if d.holder.as_ref().is_none_or(|h| h.id != id) {
                return;
            }
            let h = d.holder.take();
            d.stops += 1;
            d.aligner.reset();
            d.cache.reset();
            eprintln!(
                "dvb2ip: publish {}: publisher {} left; {} reader(s) get the end of the stream",
                self.mount,
                h.map(|h| h.peer).unwrap_or_default(),
                d.readers.len()
            );
            std::mem::take(&mut d.readers)
        };
        for r in readers {
            r.out.end();
        }
    }

    fn ingest(&self, id: u64, bytes: &[u8]) {
        self.bytes_in
            .fetch_add(bytes.len() as u64, Ordering::Relaxed);
        let mut batch = Vec::with_capacity(bytes.len());
        let mut d = self.data.lock().unwrap();
        match &mut d.holder {
            Some(h) if h.id == id => h.live = true,
            _ => return,
        }
        d.aligner.push(bytes, &mut batch);
        if batch.is_empty() {
            return;
        }
        let mut first_rap = None;
        for (i, p) in batch.chunks(PACKET).enumerate() {
            if d.cache.packet(p) && first_rap.is_none() {
                first_rap = Some(i * PACKET);
            }
        }
        let psi = d.cache.psi();
        let mut gone = Vec::new();
        // Pushed under the lock: a joining reader sees every packet once, in order; pushes
        // never block.
        for r in &mut d.readers {
            let own;
            let bytes: &[u8] = if !r.waiting_rap {
                &batch
            } else if let (Some(at), Some(psi)) = (first_rap, psi.as_ref()) {
                r.waiting_rap = false;
                own = [psi.as_slice(), &batch[at..]].concat();
                &own
            } else {
                continue;
            };
            self.bytes_out
                .fetch_add(bytes.len() as u64, Ordering::Relaxed);
            if !r.out.push(bytes) {
                gone.push(r.id);
            }
        }
        if !gone.is_empty() {
            d.readers.retain(|r| !gone.contains(&r.id));
        }
    }

    /// Attaches a reader; `Err` (why) while nobody publishes.
    pub fn attach(self: &Arc<Self>, out: Arc<dyn Reader>) -> Result<ReaderHandle, String> {
        let mut d = self.data.lock().unwrap();
        if d.holder.is_none() {
            return Err(format!("nobody is publishing to {}", self.mount));
        }
        d.next_id += 1;
        let id = d.next_id;
        let first = d.cache.join();
        if let Some(first) = &first {
            self.bytes_out
                .fetch_add(first.len() as u64, Ordering::Relaxed);
            out.push(first);
        }
        d.readers.push(ReaderEntry {
            id,
            out,
            waiting_rap: first.is_none(),
        });
        Ok(ReaderHandle {
            published: self.clone(),
            id,
        })
    }

    /// Counts a publisher datagram dropped for its source address.
    pub fn dropped_foreign(&self) {
        self.foreign_dropped.fetch_add(1, Ordering::Relaxed);
    }

    pub fn status(&self) -> PublishStatus {
        let d = self.data.lock().unwrap();
        PublishStatus {
            name: self.name.clone(),
            mount: self.mount.clone(),
            state: match &d.holder {
                None => Phase::Idle,
                Some(h) if h.live => Phase::Live,
                Some(_) => Phase::Starting,
            },
            publisher: d.holder.as_ref().map(|h| h.peer.clone()),
            user: d.holder.as_ref().map(|h| h.user.clone()),
            publishing_for_s: d.holder.as_ref().map(|h| h.since.elapsed().as_secs_f64()),
            readers: d.readers.len(),
            bytes_in: self.bytes_in.load(Ordering::Relaxed),
            bytes_out: self.bytes_out.load(Ordering::Relaxed),
            foreign_dropped: self.foreign_dropped.load(Ordering::Relaxed),
            starts: d.starts,
            stops: d.stops,
            refused: d.refused,
            last_refusal: d.last_refusal.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Collect(Mutex<(Vec<u8>, bool)>);
    impl Reader for Collect {
        fn push(&self, ts: &[u8]) -> bool {
            self.0.lock().unwrap().0.extend_from_slice(ts);
            true
        }
        fn end(&self) {
            self.0.lock().unwrap().1 = true;
        }
    }

    #[test]
    fn one_publisher_at_a_time_and_readers_get_the_end() {
        let p = Published::new("x", "/live/x");
        let reader = Arc::new(Collect(Mutex::default()));
        assert!(p.attach(reader.clone()).is_err());
        let claim = p.claim("127.0.0.1:1", "alice").unwrap();
        let second = p.claim("127.0.0.1:2", "alice");
        assert!(second.unwrap_err().contains("127.0.0.1:1"));
        let _h = p.attach(reader.clone()).unwrap();
        assert_eq!(p.status().state, Phase::Starting);
        claim.ingest(&[0x47; 188]);
        assert_eq!(p.status().state, Phase::Live);
        assert_eq!(p.status().readers, 1);
        drop(claim);
        assert!(reader.0.lock().unwrap().1);
        let s = p.status();
        assert_eq!(
            (s.state, s.starts, s.stops, s.refused),
            (Phase::Idle, 1, 1, 1)
        );
        assert!(p.claim("127.0.0.1:2", "alice").is_ok());
    }
}
