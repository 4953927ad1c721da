//! RTSP mounts `/ch/<name>` of the channel database: one per service, following every change
//! of the database (a new service becomes playable, a dropped one is unmounted and 404s).
//! `[[channel]]` mounts of the same name win (they are mounted by `serve` and left alone).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use gst_rtsp_server::prelude::*;

use crate::core::Core;

/// Mounts the database's channels on `mounts` now and after every database change.
pub fn attach(core: &Arc<Core>, mounts: &gst_rtsp_server::RTSPMountPoints) {
    let mounted: Arc<Mutex<BTreeMap<String, String>>> = Arc::default();
    let sync = {
        let scans = Arc::downgrade(&core.scans);
        let ctx = core.pool_context();
        let mounts = mounts.clone();
        move || {
            let Some(scans) = scans.upgrade() else { return };
            let want: BTreeMap<String, String> = scans
                .channels()
                .into_iter()
                .filter(|c| !c.overridden)
                .map(|c| (c.mount, c.query))
                .collect();
            let mut have = mounted.lock().unwrap();
            have.retain(|path, query| {
                let keep = want.get(path) == Some(query);
                if !keep {
                    mounts.remove_factory(path);
                    gst::info!(super::CAT, "unmounted {path}");
                }
                keep
            });
            for (path, query) in want {
                if have.contains_key(&path) {
                    continue;
                }
                let source = match crate::channels::tuning_for_query(&query) {
                    Ok((_, s)) => s,
                    Err(e) => {
                        gst::warning!(super::CAT, "{path}: {e}");
                        continue;
                    }
                };
                let factory = gst_rtsp_server::RTSPMediaFactory::new();
                factory.set_launch(
                    crate::serve::CHANNEL_LAUNCH
                        .trim()
                        .replace("{source}", &source)
                        .as_str(),
                );
                factory.set_shared(true);
                factory.set_suspend_mode(gst_rtsp_server::RTSPSuspendMode::Reset);
                factory.set_latency(0);
                let ctx = ctx.clone();
                factory.connect_media_configure(move |_, media| media.element().set_context(&ctx));
                mounts.add_factory(&path, factory);
                gst::info!(super::CAT, "mounted {path} -> {source}");
                have.insert(path, query);
            }
        }
    };
    let sync = Arc::new(sync);
    sync();
    let s = sync.clone();
    core.scans.on_change(move |_| s());
}
