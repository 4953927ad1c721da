//! The SAT>IP stream table: stream ids, owners, and what serves each stream (a media of its
//! own, or a unicast stream on the shared media).

use std::collections::BTreeMap;
use std::sync::Mutex;

use gst::glib;
use gst::prelude::*;
use gstdvb2ip::proto::satip::{parse_query, Change, StreamSpec, TransportSpec};

/// A stream served without a media of its own (a unicast RTP/UDP stream on the shared media):
/// what the table asks of it.
pub trait Served: Send + Sync {
    /// The stream's current spec.
    fn spec(&self) -> StreamSpec;
    /// The SAT>IP status string.
    fn status(&self) -> String;
    /// Applies a modified stream; returns whether a frontend serves it afterwards.
    fn update(&self, new: StreamSpec, change: Change) -> bool;
}

/// What serves a stream.
pub enum Backend {
    /// A media of its own (multicast, RTP over RTSP, DESCRIBE with a query): its
    /// `satipmapsrc` and the media.
    Media {
        src: glib::WeakRef<gst::Element>,
        media: glib::WeakRef<gst_rtsp_server::RTSPMedia>,
    },
    /// A unicast RTP/UDP stream on the shared media, owned by its session media.
    Direct(std::sync::Weak<dyn Served>),
}

/// One stream (or one non-owner copy of a stream joined through `stream=N`).
pub struct Entry {
    /// The SAT>IP stream id (`com.ses.streamID`).
    pub stream_id: u16,
    /// A non-owner copy created by a SETUP on `/stream=N` of another session's stream.
    pub joined: bool,
    pub backend: Backend,
    /// Session id of the owner, once its SETUP succeeded.
    pub owner: Option<String>,
    pub playing: bool,
}

impl Entry {
    fn alive(&self) -> bool {
        match &self.backend {
            Backend::Media { src, .. } => src.upgrade().is_some(),
            Backend::Direct(s) => s.strong_count() > 0,
        }
    }

    /// The media of a stream with a media of its own.
    pub fn media(&self) -> Option<gst_rtsp_server::RTSPMedia> {
        match &self.backend {
            Backend::Media { media, .. } => media.upgrade(),
            Backend::Direct(_) => None,
        }
    }

    /// The stream's current spec, read back from what serves it (the source of truth).
    pub fn spec(&self) -> Option<StreamSpec> {
        match &self.backend {
            Backend::Media { src, .. } => {
                let src = src.upgrade()?;
                let req: Option<String> = src.property("request");
                let q = parse_query(&req?).ok()?;
                StreamSpec::create(&q, usize::MAX).ok()
            }
            Backend::Direct(s) => Some(s.upgrade()?.spec()),
        }
    }

    pub fn status(&self) -> Option<String> {
        match &self.backend {
            Backend::Media { src, .. } => src.upgrade().map(|s| s.property::<String>("status")),
            Backend::Direct(s) => Some(s.upgrade()?.status()),
        }
    }

    /// Applies a modified stream (`new`, `change` from [`StreamSpec::apply`]); returns
    /// whether a frontend serves it afterwards. Call without the table locked.
    pub fn update(backend: &Backend, new: StreamSpec, change: Change) -> bool {
        match backend {
            Backend::Media { src, .. } => {
                let Some(src) = src.upgrade() else {
                    return false;
                };
                src.set_property("request", new.canonical_query());
                change != Change::Retune || src.property::<u32>("frontend-number") > 0
            }
            Backend::Direct(s) => s.upgrade().is_some_and(|s| s.update(new, change)),
        }
    }
}

impl Clone for Backend {
    fn clone(&self) -> Self {
        match self {
            Backend::Media { src, media } => Backend::Media {
                src: src.clone(),
                media: media.clone(),
            },
            Backend::Direct(s) => Backend::Direct(s.clone()),
        }
    }
}

#[derive(Default)]
pub struct Streams {
    next_key: u64,
    next_id: u16,
    /// By internal key (the number in the media's bin name `satip-<key>`, or
    /// the unicast stream's key).
    pub entries: BTreeMap<u64, Entry>,
    /// The transport each entry's session got in its SETUP answer (same keys as `entries`).
    pub transports: BTreeMap<u64, TransportSpec>,
}

/// A server's stream table (owned by its [`crate::core::Core`]).
pub type StreamTable = std::sync::Arc<Mutex<Streams>>;

impl Streams {
    /// Forgets streams whose server went away.
    pub fn gc(&mut self) {
        self.entries.retain(|_, e| e.alive());
        let entries = &self.entries;
        self.transports.retain(|k, _| entries.contains_key(k));
    }

    /// A free stream id (1..=65535).
    pub fn allocate_id(&mut self) -> u16 {
        self.gc();
        for _ in 0..=u16::MAX {
            self.next_id = self.next_id.checked_add(1).unwrap_or(1);
            let id = self.next_id;
            if !self
                .entries
                .values()
                .any(|e| e.stream_id == id && !e.joined)
            {
                return id;
            }
        }
        1
    }

    pub fn insert(&mut self, entry: Entry) -> u64 {
        self.next_key += 1;
        self.entries.insert(self.next_key, entry);
        self.next_key
    }

    pub fn exists(&mut self, id: u16) -> bool {
        self.gc();
        self.entries
            .values()
            .any(|e| e.stream_id == id && !e.joined)
    }

    /// Whether any stream or joined copy has this id (PLAY/TEARDOWN of a joined session
    /// outlive the owner's stream).
    pub fn exists_any(&mut self, id: u16) -> bool {
        self.gc();
        self.entries.values().any(|e| e.stream_id == id)
    }

    pub fn owner_entry(&mut self, id: u16) -> Option<&Entry> {
        self.gc();
        self.entries
            .values()
            .find(|e| e.stream_id == id && !e.joined)
    }

    /// The internal key of the entry served by `media`.
    pub fn key_of_media(&self, media: &gst_rtsp_server::RTSPMedia) -> Option<u64> {
        self.entries
            .iter()
            .find(|(_, e)| e.media().as_ref() == Some(media))
            .map(|(k, _)| *k)
    }

    /// The transport of the owner's session of stream `id`, once set up.
    pub fn owner_transport(&mut self, id: u16) -> Option<&TransportSpec> {
        self.gc();
        let key = self
            .entries
            .iter()
            .find(|(_, e)| e.stream_id == id && !e.joined)
            .map(|(k, _)| *k)?;
        self.transports.get(&key)
    }

    pub fn by_media(&mut self, media: &gst_rtsp_server::RTSPMedia) -> Option<&mut Entry> {
        self.entries
            .values_mut()
            .find(|e| e.media().as_ref() == Some(media))
    }
}

/// `satip-<key>` → key.
pub fn key_of_element(name: &str) -> Option<u64> {
    name.strip_prefix("satip-")?.parse().ok()
}
