//! Authenticated publishing into this server and pushing out of it (issue 14 items 2 and 4).
//!
//! * `config`: the `[[publish]]` and `[[push]]` sections.
//! * `auth`: RTSP Digest and Basic against the configured users, nonces.
//! * `rtsp`: ANNOUNCE/SETUP `mode=record`/RECORD on `/live/<name>` and readers' PLAY of the
//!   same mount; the checks run before gst-rtsp-server dispatches a request.
//! * `push`: `[[push]]`: a mount of this server sent to another server with ANNOUNCE/RECORD
//!   (`rtspclientsink`), kept up with backoff.
//! * `http`: `GET /live/<name>` (the published TS) and `GET /api/publishers`.
//!
//! The published stream itself is a source in `crate::streams::publish`, shared by the RTSP
//! and HTTP readers.

pub mod auth;
pub mod config;
pub mod http;
pub mod push;
pub mod rtsp;

use std::sync::Arc;

use crate::streams::publish::{PublishStatus, Published};

pub(crate) static CAT: once_cell::sync::Lazy<gst::DebugCategory> =
    once_cell::sync::Lazy::new(|| {
        gst::DebugCategory::new(
            "dvb2ip-publish",
            gst::DebugColorFlags::empty(),
            Some("dvb2ip publishing"),
        )
    });

/// One `[[publish]]` mount: its configuration and its published source.
pub struct Mount {
    pub config: config::PublishSection,
    pub published: Arc<Published>,
}

/// The server's publish mounts, pushes and nonces, owned by the core.
pub struct Publishers {
    list: Vec<Arc<Mount>>,
    pub auth: auth::Authenticator,
    pub pushes: push::Pushes,
}

impl Publishers {
    pub fn new(cfg: &crate::config::Config) -> Publishers {
        Publishers {
            list: cfg
                .publish
                .iter()
                .map(|p| {
                    Arc::new(Mount {
                        published: Published::new(&p.name, &p.mount_path()),
                        config: p.clone(),
                    })
                })
                .collect(),
            auth: auth::Authenticator::default(),
            pushes: push::Pushes::new(&cfg.push),
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = &Arc<Mount>> {
        self.list.iter()
    }

    /// The mount `path` falls under (a control suffix such as `/streamid=0` is allowed).
    pub fn by_path(&self, path: &str) -> Option<&Arc<Mount>> {
        let path = path.trim_end_matches('/');
        self.list.iter().find(|m| {
            let mp = m.published.mount();
            path == mp
                || path
                    .strip_prefix(mp)
                    .is_some_and(|rest| rest.starts_with('/'))
        })
    }

    pub fn status(&self) -> Vec<PublishStatus> {
        self.list.iter().map(|m| m.published.status()).collect()
    }
}
