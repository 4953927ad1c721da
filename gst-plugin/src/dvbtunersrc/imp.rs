// Lock order: settings → state → status. No lock is held while pushing, posting or notifying.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;
use once_cell::sync::Lazy;

use super::{
    Bandwidth, CodeRate, Delsys, Guard, Hierarchy, Interleaving, Inversion, Modulation, Pilot,
    Rolloff, TransmissionMode,
};
use crate::proto::tuner_pool::{DelSys, Polarisation, Transponder};
use crate::tuners::{self, FeedSink, Lease, LeaseError, LeaseRequest, PidFilter, TunerStatus};

static CAT: Lazy<gst::DebugCategory> = Lazy::new(|| {
    gst::DebugCategory::new(
        "dvbtunersrc",
        gst::DebugColorFlags::empty(),
        Some("DVB tuner pool source"),
    )
});

const DEFAULT_ADAPTER: i32 = -1;
const DEFAULT_FRONTEND: i32 = -1;
const DEFAULT_POLARITY: &str = "H";
const DEFAULT_STREAM_ID: i32 = -1;
const DEFAULT_LNB_LOF1: u32 = 9_750_000;
const DEFAULT_LNB_LOF2: u32 = 10_600_000;
const DEFAULT_LNB_SLOF: u32 = 11_700_000;
const DEFAULT_DISEQC: i32 = -1;
const DEFAULT_TUNING_TIMEOUT: u64 = 10_000_000_000;
const DEFAULT_PIDS: &str = "all";
/// `snr` and `ber` when the frontend gives no such figure (or none is leased).
const UNKNOWN: f64 = -1.0;
/// `signal-dbm` when the frontend gives no figure in dBm (or none is leased): far below any
/// signal a tuner receives, so that no reading is mistaken for it.
const UNKNOWN_DBM: f64 = -1000.0;

/// An enum property settable up to READY, as all of dvbtunersrc's tuning properties are.
fn enumeration<E>(name: &str, nick: &str, blurb: &str, default: E) -> glib::ParamSpec
where
    E: glib::types::StaticType
        + glib::translate::FromGlib<i32>
        + glib::translate::IntoGlib<GlibType = i32>,
{
    glib::ParamSpecEnum::builder_with_default(name, default)
        .nick(nick)
        .blurb(blurb)
        .mutable_ready()
        .build()
}

/// dvbsrc's remaining tuning properties, with its names, types, ranges and defaults. They are
/// only forwarded: to dvbsrc on a real frontend. They are not part of the transponder (requests
/// that differ only in them share a frontend, which receives the same signal either way), and the
/// emulated frontend locks whatever they say, as a real frontend left on `auto` would.
fn forwarded_pspecs() -> &'static [glib::ParamSpec] {
    static PSPECS: Lazy<Vec<glib::ParamSpec>> = Lazy::new(|| {
        let int = |name: &str, nick: &str, blurb: &str, min, max, default| {
            glib::ParamSpecInt::builder(name)
                .nick(nick)
                .blurb(blurb)
                .minimum(min)
                .maximum(max)
                .default_value(default)
                .mutable_ready()
                .build()
        };
        let uint = |name: &str, nick: &str, blurb: &str, min, max, default| {
            glib::ParamSpecUInt::builder(name)
                .nick(nick)
                .blurb(blurb)
                .minimum(min)
                .maximum(max)
                .default_value(default)
                .mutable_ready()
                .build()
        };
        let mut v = vec![
            enumeration(
                "code-rate-hp",
                "Code rate HP",
                "(DVB-T, DVB-S/S2 and DVB-C) High priority code rate (dvbsrc nicks: 1/2, 2/3, 3/4, 5/6, 7/8, auto, …)",
                CodeRate::Auto,
            ),
            enumeration(
                "code-rate-lp",
                "Code rate LP",
                "(DVB-T) Low priority code rate (dvbsrc nicks: none, 1/2, 2/3, …, auto)",
                CodeRate::R1_2,
            ),
            enumeration(
                "guard",
                "Guard interval",
                "(DVB-T) Guard interval as the denominator of 1/N (32, 16, 8, 4, 128), 19/128, 19/256, auto, or DTMB pn420/pn595/pn945",
                Guard::G1_16,
            ),
            enumeration(
                "trans-mode",
                "Transmission mode",
                "(DVB-T) Transmission mode (FFT size): 1k, 2k, 4k, 8k, 16k, 32k, auto, or DTMB c1/c3780",
                TransmissionMode::M8k,
            ),
            enumeration(
                "hierarchy",
                "Hierarchy",
                "(DVB-T) Hierarchy information: none, 1, 2, 4 or auto",
                Hierarchy::H1,
            ),
            enumeration(
                "inversion",
                "Inversion",
                "(DVB-T and DVB-C) Spectral inversion: off, on or auto",
                Inversion::On,
            ),
            enumeration(
                "pilot",
                "Pilot",
                "(DVB-S2) Pilot symbols: on, off or auto",
                Pilot::Auto,
            ),
            enumeration(
                "rolloff",
                "Roll-off",
                "(DVB-S2) Roll-off factor in percent: 35, 20, 25 or auto",
                Rolloff::Auto,
            ),
            enumeration(
                "interleaving",
                "Interleaving",
                "(DTMB) Interleaving type: none, auto, 240 or 720",
                Interleaving::Auto,
            ),
            uint(
                "isdbt-layer-enabled",
                "ISDB-T layers",
                "(ISDB-T) Layers enabled, a bit mask of A=1, B=2, C=4 (7 = all layers)",
                1,
                7,
                7,
            ),
        ];
        for layer in ['a', 'b', 'c'] {
            let up = layer.to_ascii_uppercase();
            v.push(enumeration(
                &format!("isdbt-layer{layer}-fec"),
                &format!("ISDB-T layer {up} FEC"),
                &format!("(ISDB-T) Layer {up} forward error correction code rate"),
                CodeRate::Auto,
            ));
            v.push(enumeration(
                &format!("isdbt-layer{layer}-modulation"),
                &format!("ISDB-T layer {up} modulation"),
                &format!("(ISDB-T) Layer {up} modulation type"),
                Modulation::Auto,
            ));
            v.push(int(
                &format!("isdbt-layer{layer}-segment-count"),
                &format!("ISDB-T layer {up} segments"),
                &format!("(ISDB-T) Layer {up} segment count (-1 = auto)"),
                -1,
                13,
                -1,
            ));
            v.push(int(
                &format!("isdbt-layer{layer}-time-interleaving"),
                &format!("ISDB-T layer {up} time interleaving"),
                &format!("(ISDB-T) Layer {up} time interleaving (-1 = auto)"),
                -1,
                8,
                -1,
            ));
        }
        v.extend([
            int(
                "isdbt-partial-reception",
                "ISDB-T partial reception",
                "(ISDB-T) Partial reception: 0 or 1, -1 = auto",
                -1,
                1,
                1,
            ),
            uint(
                "isdbt-sb-segment-count",
                "ISDB-T SB segment count",
                "(ISDB-T) Sound broadcasting segment count",
                1,
                13,
                1,
            ),
            int(
                "isdbt-sb-segment-idx",
                "ISDB-T SB segment index",
                "(ISDB-T) Sound broadcasting segment index",
                0,
                12,
                0,
            ),
            int(
                "isdbt-sb-subchannel-id",
                "ISDB-T SB subchannel",
                "(ISDB-T) Sound broadcasting subchannel id (-1 = auto)",
                -1,
                41,
                -1,
            ),
            int(
                "isdbt-sound-broadcasting",
                "ISDB-T sound broadcasting",
                "(ISDB-T) Sound broadcasting: 0 or 1",
                0,
                1,
                0,
            ),
        ]);
        v
    });
    PSPECS.as_ref()
}

/// A forwarded property's value as a number: the enum value, or the integer.
fn forwarded_to_i32(v: &glib::Value) -> i32 {
    if let Some((_, e)) = glib::EnumValue::from_value(v) {
        e.value()
    } else if let Ok(i) = v.get::<i32>() {
        i
    } else {
        v.get::<u32>().expect("type checked upstream") as i32
    }
}

/// The value of the forwarded property `pspec` for the number `n`.
fn forwarded_value(pspec: &glib::ParamSpec, n: i32) -> glib::Value {
    let t = pspec.value_type();
    if t.is_a(glib::Type::ENUM) {
        glib::EnumClass::with_type(t)
            .and_then(|c| c.to_value(n))
            .unwrap_or_else(|| pspec.default_value().clone())
    } else if t == glib::Type::U32 {
        (n as u32).to_value()
    } else {
        n.to_value()
    }
}

/// The forwarded value as dvbsrc reads it from a string: the enum's nick, or the number.
fn forwarded_str(pspec: &glib::ParamSpec, n: i32) -> String {
    let t = pspec.value_type();
    if t.is_a(glib::Type::ENUM) {
        if let Some(nick) =
            glib::EnumClass::with_type(t).and_then(|c| c.value(n).map(|v| v.nick().to_string()))
        {
            return nick;
        }
    } else if t == glib::Type::U32 {
        return (n as u32).to_string();
    }
    n.to_string()
}

#[derive(Debug, Clone)]
struct Settings {
    adapter: i32,
    frontend: i32,
    delsys: Delsys,
    frequency: u32,
    polarity: String,
    symbol_rate: u32,
    bandwidth_hz: u32,
    modulation: Modulation,
    stream_id: i32,
    lnb_lof1: u32,
    lnb_lof2: u32,
    lnb_slof: u32,
    diseqc_source: i32,
    tuning_timeout: u64,
    pids: String,
    /// Values of [`forwarded_pspecs`], in its order.
    forwarded: Vec<i32>,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            adapter: DEFAULT_ADAPTER,
            frontend: DEFAULT_FRONTEND,
            delsys: Delsys::Undefined,
            frequency: 0,
            polarity: DEFAULT_POLARITY.into(),
            symbol_rate: 0,
            bandwidth_hz: 0,
            modulation: Modulation::Auto,
            stream_id: DEFAULT_STREAM_ID,
            lnb_lof1: DEFAULT_LNB_LOF1,
            lnb_lof2: DEFAULT_LNB_LOF2,
            lnb_slof: DEFAULT_LNB_SLOF,
            diseqc_source: DEFAULT_DISEQC,
            tuning_timeout: DEFAULT_TUNING_TIMEOUT,
            pids: DEFAULT_PIDS.into(),
            forwarded: forwarded_pspecs()
                .iter()
                .map(|p| forwarded_to_i32(p.default_value()))
                .collect(),
        }
    }
}

impl Settings {
    /// Sets one tuning property (every property but `pids`, which also reaches a lease).
    fn set(&mut self, name: &str, value: &glib::Value) {
        let v = value;
        let text = || {
            v.get::<Option<String>>()
                .expect("type checked upstream")
                .unwrap_or_default()
        };
        match name {
            "adapter" => self.adapter = v.get().expect("type checked upstream"),
            "frontend" => self.frontend = v.get().expect("type checked upstream"),
            "delsys" => self.delsys = v.get().expect("type checked upstream"),
            "frequency" => self.frequency = v.get().expect("type checked upstream"),
            "polarity" => self.polarity = text(),
            "symbol-rate" => self.symbol_rate = v.get().expect("type checked upstream"),
            "bandwidth-hz" => self.bandwidth_hz = v.get().expect("type checked upstream"),
            "bandwidth" => {
                self.bandwidth_hz = v.get::<Bandwidth>().expect("type checked upstream").hz()
            }
            "modulation" => self.modulation = v.get().expect("type checked upstream"),
            "stream-id" => self.stream_id = v.get().expect("type checked upstream"),
            "lnb-lof1" => self.lnb_lof1 = v.get().expect("type checked upstream"),
            "lnb-lof2" => self.lnb_lof2 = v.get().expect("type checked upstream"),
            "lnb-slof" => self.lnb_slof = v.get().expect("type checked upstream"),
            "diseqc-source" => self.diseqc_source = v.get().expect("type checked upstream"),
            "tuning-timeout" => self.tuning_timeout = v.get().expect("type checked upstream"),
            "pids" => self.pids = text(),
            _ => {
                let i = forwarded_pspecs()
                    .iter()
                    .position(|p| p.name() == name)
                    .expect("a forwarded property");
                self.forwarded[i] = forwarded_to_i32(v);
            }
        }
    }

    /// The value of a forwarded property, if `name` is one.
    fn forwarded(&self, name: &str) -> Option<glib::Value> {
        let (i, p) = forwarded_pspecs()
            .iter()
            .enumerate()
            .find(|(_, p)| p.name() == name)?;
        Some(forwarded_value(p, self.forwarded[i]))
    }
}

/// The pool request an element with default settings would make after `props` (name, value
/// in `gst_util_set_object_arg` syntax, as [`crate::satipmapsrc::dvbtunersrc_properties`]
/// gives them) and `pids` were set: the same validation, without an element.
pub(crate) fn lease_request(props: &[(&str, String)], pids: &str) -> Result<LeaseRequest, String> {
    let class = glib::object::ObjectClass::from_type(super::DvbTunerSrc::static_type())
        .ok_or("dvbtunersrc is not registered")?;
    let mut s = Settings::default();
    for (name, value) in props
        .iter()
        .map(|(n, v)| (*n, v.as_str()))
        .chain([("pids", pids)])
    {
        let pspec = class
            .find_property(name)
            .ok_or_else(|| format!("dvbtunersrc has no property '{name}'"))?;
        let v = glib::Value::deserialize(value, pspec.value_type())
            .map_err(|_| format!("invalid value {value:?} for '{name}'"))?;
        s.set(name, &v);
    }
    s.to_request()
        .map_err(|i| format!("invalid property '{}': {}", i.property, i.reason))
}

/// A validation failure naming the property.
struct Invalid {
    property: &'static str,
    reason: String,
}

impl Settings {
    /// Checks the tuning values and turns them into a pool request.
    fn to_request(&self) -> Result<LeaseRequest, Invalid> {
        let inv = |property, reason: String| Invalid { property, reason };
        let delsys = DelSys::from_u32(self.delsys as u32).ok_or_else(|| {
            inv(
                "delsys",
                "must be set (e.g. dvb-t, dvb-t2, dvb-c-a, dvb-s, dvb-s2)".into(),
            )
        })?;
        if self.frequency == 0 {
            return Err(inv(
                "frequency",
                "must be set (Hz, or kHz for satellite)".into(),
            ));
        }
        let frequency_khz = if delsys.is_satellite() {
            if !(950_000..=13_000_000).contains(&self.frequency) {
                return Err(inv(
                    "frequency",
                    format!(
                        "{} kHz is out of range for {delsys} (950000–13000000 kHz)",
                        self.frequency
                    ),
                ));
            }
            self.frequency as u64
        } else {
            if !(30_000_000..=1_000_000_000).contains(&self.frequency) {
                return Err(inv(
                    "frequency",
                    format!(
                        "{} Hz is out of range for {delsys} (30–1000 MHz, given in Hz)",
                        self.frequency
                    ),
                ));
            }
            self.frequency as u64 / 1000
        };
        let polarisation = if delsys.is_satellite() {
            Some(Polarisation::parse(&self.polarity).ok_or_else(|| {
                inv(
                    "polarity",
                    format!("{:?} is not one of H, V, L, R", self.polarity),
                )
            })?)
        } else {
            None
        };
        if (delsys.is_satellite() || delsys.is_cable()) && self.symbol_rate == 0 {
            return Err(inv(
                "symbol-rate",
                format!("must be set for {delsys} (kBd)"),
            ));
        }
        if (delsys.is_satellite() || delsys.is_cable())
            && !(1000..=100_000).contains(&self.symbol_rate)
        {
            return Err(inv(
                "symbol-rate",
                format!("{} kBd is out of range 1000–100000", self.symbol_rate),
            ));
        }
        if self.bandwidth_hz != 0 && !(1_000_000..=10_000_000).contains(&self.bandwidth_hz) {
            return Err(inv(
                "bandwidth-hz",
                format!("{} Hz is out of range 1–10 MHz", self.bandwidth_hz),
            ));
        }
        let pids = PidFilter::parse(&self.pids).map_err(|e| inv("pids", e))?;
        let transponder = Transponder {
            delsys,
            frequency_khz,
            polarisation,
            symbol_rate_ksym: if delsys.is_terrestrial() {
                0
            } else {
                self.symbol_rate
            },
            bandwidth_hz: if delsys.is_terrestrial() {
                self.bandwidth_hz
            } else {
                0
            },
            stream_id: self.stream_id,
        };
        let mut props = vec![
            ("delsys".to_string(), delsys.nick().to_string()),
            ("frequency".to_string(), self.frequency.to_string()),
            (
                "modulation".to_string(),
                modulation_nick(self.modulation).to_string(),
            ),
            ("stream-id".to_string(), self.stream_id.to_string()),
            (
                "tuning-timeout".to_string(),
                self.tuning_timeout.to_string(),
            ),
        ];
        if delsys.is_satellite() {
            props.push(("polarity".into(), self.polarity.clone()));
            props.push(("lnb-lof1".into(), self.lnb_lof1.to_string()));
            props.push(("lnb-lof2".into(), self.lnb_lof2.to_string()));
            props.push(("lnb-slof".into(), self.lnb_slof.to_string()));
            props.push(("diseqc-source".into(), self.diseqc_source.to_string()));
        }
        for (p, &n) in forwarded_pspecs().iter().zip(&self.forwarded) {
            props.push((p.name().to_string(), forwarded_str(p, n)));
        }
        if !delsys.is_terrestrial() {
            props.push(("symbol-rate".into(), self.symbol_rate.to_string()));
        } else if self.bandwidth_hz != 0 {
            props.push(("bandwidth-hz".into(), self.bandwidth_hz.to_string()));
        }
        Ok(LeaseRequest {
            transponder,
            adapter: (self.adapter >= 0).then_some(self.adapter as u32),
            frontend: (self.frontend >= 0).then_some(self.frontend as u32),
            pids,
            tuning_timeout: Duration::from_nanos(self.tuning_timeout),
            dvbsrc_properties: props,
        })
    }
}

fn modulation_nick(m: Modulation) -> &'static str {
    use glib::EnumClass;
    let class = EnumClass::with_type(Modulation::static_type()).expect("registered enum");
    class.value(m as i32).map(|v| v.nick()).unwrap_or("auto")
}

#[derive(Default)]
struct State {
    lease: Option<Lease>,
    uri: Option<String>,
}

#[derive(Debug, Default, Clone)]
struct Status {
    status: TunerStatus,
}

pub struct DvbTunerSrc {
    /// The tuner pool: from a `dvb2ip.tuner-pool` context, else the default one.
    pool: Mutex<Option<tuners::Pool>>,
    settings: Mutex<Settings>,
    state: Mutex<State>,
    status: Mutex<Status>,
    appsrc: gst_app::AppSrc,
    /// See [`super::DvbTunerSrc::set_tap`]; shared with the feed's sink.
    pub(super) tap: Arc<Mutex<Option<super::Tap>>>,
}

/// Receives the feed of the leased frontend. Holds the element weakly.
struct ElementSink {
    appsrc: gst_app::AppSrc,
    element: glib::WeakRef<super::DvbTunerSrc>,
    tap: Arc<Mutex<Option<super::Tap>>>,
}

impl FeedSink for ElementSink {
    fn push(&self, buffer: gst::Buffer) {
        let tap = self.tap.lock().unwrap().clone();
        if tap.is_some_and(|tap| tap(&buffer)) {
            return;
        }
        // Flushing/not-negotiated while shutting down is expected; the appsrc queue is leaky.
        let _ = self.appsrc.push_buffer(buffer);
    }

    fn status(&self, status: &TunerStatus) {
        if let Some(e) = self.element.upgrade() {
            e.imp().on_status(status);
        }
    }

    fn lock_changed(&self, locked: bool, status: &TunerStatus) {
        if let Some(e) = self.element.upgrade() {
            e.imp().on_lock_changed(locked, status);
        }
    }

    fn tune_failed(&self, reason: &str) {
        if let Some(e) = self.element.upgrade() {
            let timeout = e.imp().settings.lock().unwrap().tuning_timeout;
            gst::element_error!(
                e,
                gst::ResourceError::NotFound,
                (
                    "Could not lock within tuning-timeout ({} ms): {}",
                    timeout / 1_000_000,
                    reason
                )
            );
        }
    }

    fn failed(&self, reason: &str) {
        if let Some(e) = self.element.upgrade() {
            gst::element_error!(e, gst::ResourceError::Read, ("Frontend failed: {}", reason));
        }
    }
}

fn status_structure(name: &str, st: &TunerStatus) -> gst::Structure {
    gst::Structure::builder(name)
        .field("adapter", st.adapter)
        .field("frontend", st.frontend)
        .field("frontend-name", st.name.as_str())
        .field(
            "transponder",
            st.transponder
                .as_ref()
                .map(|t| t.to_string())
                .unwrap_or_default(),
        )
        .field("locked", st.locked)
        .field("signal-level", st.level)
        .field("signal-quality", st.quality)
        .field("signal-dbm", st.signal_dbm.unwrap_or(UNKNOWN_DBM))
        .field("snr", st.snr_db.unwrap_or(UNKNOWN))
        .field("ber", st.ber.unwrap_or(UNKNOWN))
        .build()
}

impl DvbTunerSrc {
    fn on_status(&self, st: &TunerStatus) {
        self.status.lock().unwrap().status = st.clone();
        let msg = gst::message::Element::builder(status_structure("dvb-tuner-status", st))
            .src(&*self.obj())
            .build();
        let _ = self.obj().post_message(msg);
    }

    fn on_lock_changed(&self, locked: bool, st: &TunerStatus) {
        let was = {
            let mut s = self.status.lock().unwrap();
            let was = s.status.locked;
            s.status = st.clone();
            s.status.locked = locked;
            was
        };
        if locked {
            gst::info!(
                CAT,
                imp = self,
                "locked on {}",
                st.transponder
                    .as_ref()
                    .map(|t| t.to_string())
                    .unwrap_or_default()
            );
        } else {
            gst::element_imp_warning!(
                self,
                gst::ResourceError::Read,
                (
                    "Lost lock on adapter {} frontend {}; streaming resumes when lock returns",
                    st.adapter,
                    st.frontend
                )
            );
        }
        let msg = gst::message::Element::builder(status_structure("dvb-tuner-lock", st))
            .src(&*self.obj())
            .build();
        let _ = self.obj().post_message(msg);
        if was != locked {
            self.obj().notify("locked");
        }
    }

    fn start(&self) -> Result<(), gst::ErrorMessage> {
        let settings = self.settings.lock().unwrap().clone();
        let req = settings.to_request().map_err(|i| {
            gst::error_msg!(
                gst::ResourceError::Settings,
                ("Invalid property '{}': {}", i.property, i.reason)
            )
        })?;
        let what = req.transponder.to_string();
        let sink = Arc::new(ElementSink {
            appsrc: self.appsrc.clone(),
            element: self.obj().downgrade(),
            tap: self.tap.clone(),
        });
        let pool = tuners::pool_for_element(self.obj().upcast_ref(), &self.pool);
        let lease = pool.lease(req, sink).map_err(|e| match e {
            LeaseError::Pool(crate::proto::tuner_pool::PoolError::Busy) => {
                gst::error_msg!(
                    gst::ResourceError::Busy,
                    ("No frontend free for {}: {}", what, e)
                )
            }
            LeaseError::Pool(_) => gst::error_msg!(
                gst::ResourceError::NotFound,
                ("No frontend for {}: {}", what, e)
            ),
            LeaseError::Backend(e) => gst::error_msg!(
                gst::ResourceError::OpenRead,
                ("Cannot open frontend for {}: {}", what, e)
            ),
        })?;
        gst::info!(
            CAT,
            imp = self,
            "leased adapter {} frontend {} ({}) for {}{}",
            lease.adapter(),
            lease.frontend(),
            lease.frontend_name(),
            what,
            if lease.is_shared() { ", shared" } else { "" }
        );
        {
            let mut st = self.status.lock().unwrap();
            st.status.adapter = lease.adapter();
            st.status.frontend = lease.frontend();
            st.status.name = lease.frontend_name().to_string();
        }
        self.state.lock().unwrap().lease = Some(lease);
        Ok(())
    }

    fn stop(&self) {
        let lease = self.state.lock().unwrap().lease.take();
        if let Some(l) = lease {
            gst::info!(
                CAT,
                imp = self,
                "returning adapter {} frontend {}",
                l.adapter(),
                l.frontend()
            );
            drop(l);
        }
        self.status.lock().unwrap().status.locked = false;
    }
}

#[glib::object_subclass]
impl ObjectSubclass for DvbTunerSrc {
    const NAME: &'static str = "GstDvbTunerSrc";
    type Type = super::DvbTunerSrc;
    type ParentType = gst::Bin;
    type Interfaces = (gst::URIHandler,);

    fn with_class(_klass: &Self::Class) -> Self {
        let appsrc = crate::live_appsrc("feed", &crate::mpegts_caps(), 4 * 1024 * 1024);
        Self {
            pool: Mutex::new(None),
            settings: Mutex::new(Settings::default()),
            state: Mutex::new(State::default()),
            status: Mutex::new(Status::default()),
            appsrc,
            tap: Arc::default(),
        }
    }
}

impl ObjectImpl for DvbTunerSrc {
    fn properties() -> &'static [glib::ParamSpec] {
        static PROPERTIES: Lazy<Vec<glib::ParamSpec>> = Lazy::new(|| {
            vec![
                /**
                 * GstDvbTunerSrc:adapter:
                 *
                 * Pins an adapter; -1 lets the pool choose.
                 */
                glib::ParamSpecInt::builder("adapter")
                    .nick("Adapter")
                    .blurb("Adapter number to use (as in /dev/dvb/adapterN), -1 = any free adapter chosen by the pool")
                    .minimum(-1)
                    .maximum(255)
                    .default_value(DEFAULT_ADAPTER)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecInt::builder("frontend")
                    .nick("Frontend")
                    .blurb("Frontend number within the adapter, -1 = any")
                    .minimum(-1)
                    .maximum(16)
                    .default_value(DEFAULT_FRONTEND)
                    .mutable_ready()
                    .build(),
                enumeration(
                    "delsys",
                    "Delivery system",
                    "Delivery system to tune (dvbsrc nicks: dvb-t, dvb-t2, dvb-c-a, dvb-s, dvb-s2, …); required",
                    Delsys::Undefined,
                ),
                glib::ParamSpecUInt::builder("frequency")
                    .nick("Frequency")
                    .blurb("Centre frequency in Hz, or in kHz for satellite systems (as dvbsrc); required")
                    .mutable_ready()
                    .build(),
                glib::ParamSpecString::builder("polarity")
                    .nick("Polarity")
                    .blurb("Satellite polarisation: H, V, L or R")
                    .default_value(Some(DEFAULT_POLARITY))
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt::builder("symbol-rate")
                    .nick("Symbol rate")
                    .blurb("Symbol rate in kBd for DVB-S/S2 and DVB-C (e.g. 22000); required there")
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt::builder("bandwidth-hz")
                    .nick("Bandwidth")
                    .blurb("Channel bandwidth in Hz for terrestrial systems (e.g. 8000000), 0 = automatic")
                    .mutable_ready()
                    .build(),
                glib::ParamSpecEnum::builder_with_default("bandwidth", Bandwidth::Auto)
                    .nick("Bandwidth (MHz)")
                    .blurb("(DVB-T) Bandwidth in MHz: 8, 7, 6, 5, 10, 1.712 or AUTO. Deprecated, as in dvbsrc: it sets bandwidth-hz")
                    .mutable_ready()
                    .deprecated()
                    .build(),
                enumeration(
                    "modulation",
                    "Modulation",
                    "Modulation (dvbsrc nicks: qpsk, qam-16 … qam-256, 8psk, auto)",
                    Modulation::Auto,
                ),
                glib::ParamSpecInt::builder("stream-id")
                    .nick("Stream ID")
                    .blurb("DVB-T2 PLP or DVB-S2 input stream id, -1 = none")
                    .minimum(-1)
                    .maximum(65535)
                    .default_value(DEFAULT_STREAM_ID)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt::builder("lnb-lof1")
                    .nick("LNB LOF1")
                    .blurb("LNB low-band local oscillator frequency in kHz (satellite, real hardware)")
                    .default_value(DEFAULT_LNB_LOF1)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt::builder("lnb-lof2")
                    .nick("LNB LOF2")
                    .blurb("LNB high-band local oscillator frequency in kHz (satellite, real hardware)")
                    .default_value(DEFAULT_LNB_LOF2)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt::builder("lnb-slof")
                    .nick("LNB SLOF")
                    .blurb("LNB switch frequency between low and high band in kHz (satellite, real hardware)")
                    .default_value(DEFAULT_LNB_SLOF)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecInt::builder("diseqc-source")
                    .nick("DiSEqC source")
                    .blurb("DiSEqC switch input 0–7, -1 = no DiSEqC (satellite, real hardware)")
                    .minimum(-1)
                    .maximum(7)
                    .default_value(DEFAULT_DISEQC)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt64::builder("tuning-timeout")
                    .nick("Tuning timeout")
                    .blurb("Nanoseconds to wait for lock before posting an error")
                    .minimum(0)
                    .default_value(DEFAULT_TUNING_TIMEOUT)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecString::builder("pids")
                    .nick("PIDs")
                    .blurb("PIDs to output: \"all\" (or 8192) for the whole multiplex, else a list separated by commas or colons; changeable while playing without retuning")
                    .default_value(Some(DEFAULT_PIDS))
                    .mutable_playing()
                    .build(),
                glib::ParamSpecBoolean::builder("locked")
                    .nick("Locked")
                    .blurb("Whether the frontend has lock on the signal")
                    .read_only()
                    .build(),
                glib::ParamSpecUInt::builder("signal-level")
                    .nick("Signal level")
                    .blurb("Signal level in percent (0–100); on real frontends, of the driver's relative 0–65535 signal strength")
                    .maximum(100)
                    .read_only()
                    .build(),
                glib::ParamSpecUInt::builder("signal-quality")
                    .nick("Signal quality")
                    .blurb("Signal quality in percent (0–100); on real frontends, of the driver's relative 0–65535 SNR")
                    .maximum(100)
                    .read_only()
                    .build(),
                glib::ParamSpecDouble::builder("signal-dbm")
                    .nick("Signal level in dBm")
                    .blurb("Signal level in dBm; -1000 when unknown (no lease, or a real frontend whose driver gives no DVBv5 signal strength in dB: see signal-level)")
                    .minimum(UNKNOWN_DBM)
                    .maximum(1000.0)
                    .default_value(UNKNOWN_DBM)
                    .read_only()
                    .build(),
                glib::ParamSpecDouble::builder("snr")
                    .nick("SNR")
                    .blurb("Signal-to-noise ratio in dB; -1 when unknown (no lease, or a real frontend whose driver gives no DVBv5 CNR in dB: its legacy SNR reading has no unit, see signal-quality)")
                    .minimum(-1.0)
                    .default_value(UNKNOWN)
                    .read_only()
                    .build(),
                glib::ParamSpecDouble::builder("ber")
                    .nick("BER")
                    .blurb("Bit error rate before error correction (0–1); -1 when unknown (no lease, or a real frontend whose driver gives no DVBv5 bit counters: its legacy BER reading is a driver-specific count, not a rate)")
                    .minimum(-1.0)
                    .maximum(1.0)
                    .default_value(UNKNOWN)
                    .read_only()
                    .build(),
                glib::ParamSpecInt::builder("adapter-in-use")
                    .nick("Adapter in use")
                    .blurb("Adapter number of the leased frontend, -1 when none is leased")
                    .minimum(-1)
                    .default_value(-1)
                    .read_only()
                    .build(),
                glib::ParamSpecString::builder("frontend-name")
                    .nick("Frontend name")
                    .blurb("Name of the leased frontend, empty when none is leased")
                    .read_only()
                    .build(),
            ]
            .into_iter()
            .chain(forwarded_pspecs().iter().cloned())
            .collect()
        });
        PROPERTIES.as_ref()
    }

    fn set_property(&self, _id: usize, value: &glib::Value, pspec: &glib::ParamSpec) {
        let mut s = self.settings.lock().unwrap();
        if pspec.name() != "pids" {
            s.set(pspec.name(), value);
            return;
        }
        let v = value
            .get::<Option<String>>()
            .expect("type checked upstream")
            .unwrap_or_default();
        match PidFilter::parse(&v) {
            Ok(f) => {
                gst::debug!(CAT, imp = self, "pids {} -> {}", s.pids, v);
                s.pids = v;
                drop(s);
                let state = self.state.lock().unwrap();
                if let Some(l) = &state.lease {
                    l.set_pids(f);
                }
            }
            Err(e) => {
                drop(s);
                gst::element_imp_warning!(
                    self,
                    gst::ResourceError::Settings,
                    (
                        "Invalid property 'pids' value {:?}: {}; keeping the previous PIDs",
                        v,
                        e
                    )
                );
            }
        }
    }

    fn property(&self, _id: usize, pspec: &glib::ParamSpec) -> glib::Value {
        let s = self.settings.lock().unwrap();
        match pspec.name() {
            "adapter" => s.adapter.to_value(),
            "frontend" => s.frontend.to_value(),
            "delsys" => s.delsys.to_value(),
            "frequency" => s.frequency.to_value(),
            "polarity" => s.polarity.to_value(),
            "symbol-rate" => s.symbol_rate.to_value(),
            "bandwidth-hz" => s.bandwidth_hz.to_value(),
            "modulation" => s.modulation.to_value(),
            "stream-id" => s.stream_id.to_value(),
            "lnb-lof1" => s.lnb_lof1.to_value(),
            "lnb-lof2" => s.lnb_lof2.to_value(),
            "lnb-slof" => s.lnb_slof.to_value(),
            "diseqc-source" => s.diseqc_source.to_value(),
            "tuning-timeout" => s.tuning_timeout.to_value(),
            "pids" => s.pids.to_value(),
            "bandwidth" => Bandwidth::from_hz(s.bandwidth_hz).to_value(),
            name => {
                if let Some(v) = s.forwarded(name) {
                    return v;
                }
                drop(s);
                let leased = self.state.lock().unwrap().lease.is_some();
                let st = self.status.lock().unwrap().status.clone();
                match name {
                    "locked" => (leased && st.locked).to_value(),
                    "signal-level" => (if leased { st.level.min(100) } else { 0 }).to_value(),
                    "signal-quality" => (if leased { st.quality.min(100) } else { 0 }).to_value(),
                    "signal-dbm" => (if leased { st.signal_dbm } else { None })
                        .unwrap_or(UNKNOWN_DBM)
                        .to_value(),
                    "snr" => (if leased { st.snr_db } else { None })
                        .unwrap_or(UNKNOWN)
                        .to_value(),
                    "ber" => (if leased { st.ber } else { None })
                        .unwrap_or(UNKNOWN)
                        .to_value(),
                    "adapter-in-use" => (if leased { st.adapter as i32 } else { -1 }).to_value(),
                    "frontend-name" => (if leased { st.name } else { String::new() }).to_value(),
                    _ => unimplemented!(),
                }
            }
        }
    }

    fn constructed(&self) {
        self.parent_constructed();
        let obj = self.obj();
        obj.add(&self.appsrc).expect("add appsrc");
        let pad = self.appsrc.static_pad("src").expect("appsrc has a src pad");
        let ghost = gst::GhostPad::builder_with_target(&pad)
            .expect("ghost pad")
            .name("src")
            .build();
        obj.add_pad(&ghost).expect("add ghost pad");
        obj.set_element_flags(gst::ElementFlags::SOURCE);
    }
}

impl GstObjectImpl for DvbTunerSrc {}

impl ElementImpl for DvbTunerSrc {
    fn set_context(&self, context: &gst::Context) {
        if let Some(pool) = tuners::pool_of_context(context) {
            *self.pool.lock().unwrap() = Some(pool);
        }
        self.parent_set_context(context)
    }

    fn metadata() -> Option<&'static gst::subclass::ElementMetadata> {
        static ELEMENT_METADATA: Lazy<gst::subclass::ElementMetadata> = Lazy::new(|| {
            gst::subclass::ElementMetadata::new(
                "DVB tuner pool source",
                "Source/Hardware",
                "Leases a DVB frontend (real, via dvbsrc, or emulated) from a process-wide pool shared by every \
                 instance tuned to the same transponder, and outputs its PID-filtered transport stream.",
                "dvb2ip developers",
            )
        });
        Some(&*ELEMENT_METADATA)
    }

    fn pad_templates() -> &'static [gst::PadTemplate] {
        static PAD_TEMPLATES: Lazy<Vec<gst::PadTemplate>> = Lazy::new(|| {
            vec![crate::always_template(
                "src",
                gst::PadDirection::Src,
                &crate::mpegts_caps(),
            )]
        });
        PAD_TEMPLATES.as_ref()
    }

    fn change_state(
        &self,
        transition: gst::StateChange,
    ) -> Result<gst::StateChangeSuccess, gst::StateChangeError> {
        if transition == gst::StateChange::ReadyToPaused {
            if let Err(e) = self.start() {
                gst::error!(CAT, imp = self, "{:?}", e);
                self.post_error_message(e);
                return Err(gst::StateChangeError);
            }
        }
        let ret = match self.parent_change_state(transition) {
            Ok(r) => r,
            Err(e) => {
                if transition == gst::StateChange::ReadyToPaused {
                    self.stop();
                }
                return Err(e);
            }
        };
        match transition {
            gst::StateChange::PausedToReady => self.stop(),
            gst::StateChange::ReadyToPaused | gst::StateChange::PlayingToPaused => {
                return Ok(gst::StateChangeSuccess::NoPreroll)
            }
            _ => {}
        }
        Ok(ret)
    }
}

impl BinImpl for DvbTunerSrc {}

/// `dvbtuner://?delsys=dvb-t&frequency=506000000&bandwidth-hz=8000000&pids=all`: every query
/// parameter is a property of the element, so playbin can use the pool.
impl URIHandlerImpl for DvbTunerSrc {
    const URI_TYPE: gst::URIType = gst::URIType::Src;

    fn protocols() -> &'static [&'static str] {
        &["dvbtuner"]
    }

    fn uri(&self) -> Option<String> {
        self.state.lock().unwrap().uri.clone()
    }

    fn set_uri(&self, uri: &str) -> Result<(), glib::Error> {
        let bad = |m: String| glib::Error::new(gst::URIError::BadUri, &m);
        let rest = uri
            .strip_prefix("dvbtuner://")
            .ok_or_else(|| bad(format!("{uri}: not a dvbtuner:// URI")))?;
        let query = rest.split_once('?').map(|(_, q)| q).unwrap_or("");
        let obj = self.obj();
        let mut pairs = Vec::new();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair
                .split_once('=')
                .ok_or_else(|| bad(format!("{uri}: {pair:?} is not name=value")))?;
            let Some(pspec) = obj.find_property(k) else {
                return Err(bad(format!("{uri}: dvbtunersrc has no property '{k}'")));
            };
            if !pspec.flags().contains(glib::ParamFlags::WRITABLE) {
                return Err(bad(format!("{uri}: property '{k}' is read-only")));
            }
            let value = glib::Value::deserialize(v, pspec.value_type())
                .map_err(|_| bad(format!("{uri}: invalid value {v:?} for property '{k}'")))?;
            pairs.push((k.to_string(), value));
        }
        for (k, v) in pairs {
            obj.set_property_from_value(&k, &v);
        }
        self.state.lock().unwrap().uri = Some(uri.to_string());
        Ok(())
    }
}
