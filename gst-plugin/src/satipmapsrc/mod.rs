//! `satipmapsrc`: a SAT>IP query (`src=1&freq=474&msys=dvbt2&bw=8&plp=0&pids=0,16,17,100`)
//! mapped to a tuning request on the tuner pool and a PID set on an inner `dvbtunersrc`.
//!
//! ```text
//! gst-launch-1.0 -e satipmapsrc request="freq=506&msys=dvbt&bw=8&pids=0,16,17,18,256,257,258" ! filesink location=news.ts
//! ```
//!
//! The query is validated and normalised with [`crate::proto::satip`]. While the element runs,
//! a new `request` is applied as a modification of the running stream (SAT>IP PLAY semantics):
//! `pids`/`addpids`/`delpids` change the PID filter without retuning; new tuning attributes
//! retune, releasing the old frontend before leasing the new one.

use gst::glib;
use gst::prelude::*;

use crate::proto::satip::{
    self, Capabilities, DeliverySystem, Family, SignalStatus, StreamSpec, Tuning,
};
use crate::proto::tuner_pool::DelSys;
use crate::tuners::Pool;

mod imp;
mod subscription;

pub use subscription::Subscription;

glib::wrapper! {
    pub struct SatIpMapSrc(ObjectSubclass<imp::SatIpMapSrc>) @extends gst::Bin, gst::Element, gst::Object, @implements gst::ChildProxy;
}

impl SatIpMapSrc {
    /// Installs (or removes) a [`Tap`](crate::dvbtunersrc::Tap) on the stream's frontend feed,
    /// as [`DvbTunerSrc::set_tap`](crate::dvbtunersrc::DvbTunerSrc::set_tap) does; it stays
    /// across PID changes, retunes and restarts of the element.
    pub fn set_tap(&self, tap: Option<crate::dvbtunersrc::Tap>) {
        use gst::subclass::prelude::ObjectSubclassIsExt;
        self.imp().set_tap(tap);
    }
}

pub fn register(plugin: &gst::Plugin) -> Result<(), glib::BoolError> {
    gst::Element::register(
        Some(plugin),
        "satipmapsrc",
        gst::Rank::NONE,
        SatIpMapSrc::static_type(),
    )
}

/// Number of satellite signal sources (`src=1..4`, DiSEqC A–D) the server accepts.
pub const SATELLITE_SOURCES: u8 = 4;

/// What the process-wide default tuner pool can tune ([`capabilities_of`] it).
pub fn pool_capabilities() -> Capabilities {
    capabilities_of(crate::tuners::Pool::default_pool())
}

/// What `pool` can tune, for
/// [`Tuning::check_capabilities`](crate::proto::satip::Tuning::check_capabilities).
/// Frontend numbers (`fe=`) are 1-based positions in [`Pool::satip_frontends`]
/// (X_SATIPCAP order).
pub fn capabilities_of(pool: &Pool) -> Capabilities {
    let fes = pool.frontends();
    let numbers = pool.satip_frontends().len();
    let mut systems = Vec::new();
    const MSYS: [&str; 15] = [
        "dvbs", "dvbs2", "dvbt", "dvbt2", "dvbc", "dvbc2", "atsc", "dvbcb", "dvbcc", "isdbt",
        "isdbs", "isdbc", "dvbh", "dss", "dmbth",
    ];
    for d in MSYS
        .iter()
        .filter_map(|m| DeliverySystem::from_query_name(m))
    {
        let Some(nick) = d.dvbsrc_nick() else {
            continue;
        };
        let Some(ds) = DelSys::from_nick(nick) else {
            continue;
        };
        if fes.iter().any(|f| f.delsys.contains(&ds)) {
            systems.push(d);
        }
    }
    Capabilities {
        systems,
        frontends: u16::try_from(numbers).unwrap_or(u16::MAX),
        satellite_sources: SATELLITE_SOURCES,
    }
}

/// `dvbtunersrc` property values (name, value in `gst_util_set_object_arg` syntax) for a
/// resolved tuning on the default pool ([`dvbtunersrc_properties_in`]).
pub fn dvbtunersrc_properties(t: &Tuning) -> Result<Vec<(&'static str, String)>, String> {
    dvbtunersrc_properties_in(crate::tuners::Pool::default_pool(), t)
}

/// `dvbtunersrc` property values (name, value in `gst_util_set_object_arg` syntax) for a
/// resolved tuning. A pinned `fe` selects that frontend of `pool` by adapter/frontend.
pub fn dvbtunersrc_properties_in(
    pool: &Pool,
    t: &Tuning,
) -> Result<Vec<(&'static str, String)>, String> {
    let delsys = t.delivery_system.dvbsrc_nick().ok_or_else(|| {
        format!(
            "delivery system {} is not supported by the tuner pool",
            t.delivery_system.query_name()
        )
    })?;
    let mut p = vec![
        ("delsys", delsys.to_string()),
        ("frequency", t.frequency.to_string()),
    ];
    if let Some(sr) = t.symbol_rate {
        p.push(("symbol-rate", sr.to_string()));
    }
    if let (Family::Terrestrial, Some(bw)) = (t.family(), t.bandwidth_hz) {
        p.push(("bandwidth-hz", bw.to_string()));
    }
    if let Some(pol) = t.polarisation {
        p.push(("polarity", pol.dvbsrc_polarity().to_string()));
    }
    if let Some(m) = t.modulation.and_then(|m| m.dvbsrc_nick()) {
        p.push(("modulation", m.to_string()));
    }
    if let Some(s) = t.stream_id() {
        p.push(("stream-id", s.to_string()));
    }
    if t.family() == Family::Satellite && t.src > 1 {
        p.push(("diseqc-source", (t.src - 1).min(7).to_string()));
    }
    if let Some(fe) = t.fe {
        let numbers = pool.satip_frontends();
        let fes = pool.frontends();
        let f = numbers
            .get(usize::from(fe).wrapping_sub(1))
            .and_then(|n| fes.get(n.index))
            .ok_or_else(|| format!("fe={fe}: the server has {} frontends", numbers.len()))?;
        p.push(("adapter", f.adapter.to_string()));
        p.push(("frontend", f.frontend.to_string()));
    }
    Ok(p)
}

/// The SAT>IP `fe` number (X_SATIPCAP order) of pool frontend `index` serving `tuning`: the
/// client's pinned `fe` when it names this frontend, else the number in the group of the
/// stream's delivery system (a combo tuner has one per group); 0 when none.
pub fn fe_number(index: usize, tuning: &Tuning) -> u32 {
    fe_number_in(crate::tuners::Pool::default_pool(), index, tuning)
}

/// [`fe_number`] in `pool`.
pub fn fe_number_in(pool: &Pool, index: usize, tuning: &Tuning) -> u32 {
    let delsys = tuning
        .delivery_system
        .dvbsrc_nick()
        .and_then(DelSys::from_nick);
    crate::proto::tuner_pool::satip_fe_number(&pool.satip_frontends(), index, delsys, tuning.fe)
}

/// The frontend serving a stream and its signal, for [`status_string`].
#[derive(Debug, Clone, Copy, Default)]
pub struct Tuned {
    /// SAT>IP frontend number ([`fe_number`]), 0 when none.
    pub fe: u32,
    pub locked: bool,
    /// Percent.
    pub level: u32,
    /// Percent.
    pub quality: u32,
}

/// The SAT>IP status string (`a=fmtp:33`, RTCP APP) of a stream: `spec` as requested,
/// `tuned` when a frontend serves it (else no signal, and the pinned or first frontend).
pub fn status_string(spec: Option<&StreamSpec>, tuned: Option<Tuned>) -> String {
    let Some(spec) = spec else {
        return satip::status_string(1, SignalStatus::default(), None, &satip::PidSet::None);
    };
    let rel = |p: u32| (p.min(100) * 65535 / 100) as u16;
    let (fe, signal) = match tuned {
        Some(t) => (
            t.fe,
            SignalStatus {
                level: satip::level_from_relative(rel(t.level)),
                lock: t.locked,
                quality: satip::quality_from_relative(rel(t.quality)),
            },
        ),
        None => (0, SignalStatus::default()),
    };
    let fe = if fe > 0 {
        fe as u16
    } else {
        spec.tuning.fe.unwrap_or(1)
    };
    satip::status_string(fe, signal, Some(&spec.tuning), &spec.pids)
}
