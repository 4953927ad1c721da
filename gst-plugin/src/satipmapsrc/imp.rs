// Lock order: state only (one mutex). It is never held while changing the child's state or
// properties, posting messages or notifying; `retuning` is an atomic so `handle_message` (which
// runs synchronously inside the child's state change) never needs the lock.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;
use once_cell::sync::Lazy;

use crate::proto::satip::{parse_query, Change, QueryError, StreamSpec, DEFAULT_MAX_PIDS};
use crate::tuners::Pool;

static CAT: Lazy<gst::DebugCategory> = Lazy::new(|| {
    gst::DebugCategory::new(
        "satipmapsrc",
        gst::DebugColorFlags::empty(),
        Some("SAT>IP query to tuner pool source"),
    )
});

const DEFAULT_MAX_PIDS_U32: u32 = DEFAULT_MAX_PIDS as u32;

/// Describes a refused query naming each parameter and the reason.
pub(crate) fn describe(e: &QueryError) -> String {
    match e {
        QueryError::OutOfRange(v) => v
            .iter()
            .map(|x| format!("parameter '{}': {}", x.attr, x.reason))
            .collect::<Vec<_>>()
            .join("; "),
        QueryError::Syntax { reason, text } => {
            format!("syntax error at '{text}' ({reason:?})")
        }
        QueryError::NoMore(_) => format!("{e} (too many PIDs for one stream)"),
        QueryError::UriTooLong { .. } | QueryError::Unavailable(_) => e.to_string(),
    }
}

#[derive(Default)]
struct State {
    /// The stream as requested (normalised); `None` until a valid `request` is set.
    spec: Option<StreamSpec>,
    /// The last `request` set while stopped, if it was refused.
    error: Option<(String, QueryError)>,
    /// Between a successful READY→PAUSED and PAUSED→READY: requests modify the stream.
    running: bool,
    /// A live retune could not get a frontend: the stream is defined but not tuned.
    untuned: bool,
    max_pids: u32,
    /// The inner `dvbtunersrc`, from NULL→READY to READY→NULL.
    child: Option<gst::Element>,
}

pub struct SatIpMapSrc {
    /// The tuner pool: from a `dvb2ip.tuner-pool` context, else the default one.
    pool: Mutex<Option<Pool>>,
    /// See [`super::SatIpMapSrc::set_tap`]; given to each inner `dvbtunersrc`.
    tap: Mutex<Option<crate::dvbtunersrc::Tap>>,
    state: Mutex<State>,
    retuning: AtomicBool,
    srcpad: gst::GhostPad,
}

impl SatIpMapSrc {
    /// See [`super::SatIpMapSrc::set_tap`].
    pub(super) fn set_tap(&self, tap: Option<crate::dvbtunersrc::Tap>) {
        *self.tap.lock().unwrap() = tap.clone();
        let child = self.state.lock().unwrap().child.clone();
        if let Some(t) = child.and_then(|c| c.downcast::<crate::dvbtunersrc::DvbTunerSrc>().ok()) {
            t.set_tap(tap);
        }
    }

    /// The pool this element uses (known from NULL→READY on; before, the default one).
    fn pool(&self) -> Pool {
        self.pool
            .lock()
            .unwrap()
            .clone()
            .unwrap_or_else(|| Pool::default_pool().clone())
    }

    /// Sets every tuning property of `child` for `spec` (defaults first, so nothing of a
    /// previous tuning lingers). The child must be in NULL or READY.
    fn configure_child(&self, child: &gst::Element, spec: &StreamSpec) -> Result<(), String> {
        let props = super::dvbtunersrc_properties_in(&self.pool(), &spec.tuning)?;
        for (name, value) in [
            ("adapter", "-1"),
            ("frontend", "-1"),
            ("symbol-rate", "0"),
            ("bandwidth-hz", "0"),
            ("modulation", "auto"),
            ("stream-id", "-1"),
            ("diseqc-source", "-1"),
            ("polarity", "H"),
        ] {
            child.set_property_from_str(name, value);
        }
        for (name, value) in &props {
            child.set_property_from_str(name, value);
        }
        child.set_property("pids", spec.pids.to_string());
        Ok(())
    }

    fn check_capabilities(&self, spec: &StreamSpec) -> Result<(), QueryError> {
        spec.tuning
            .check_capabilities(&super::capabilities_of(&self.pool()))
    }

    fn start(&self) -> Result<(), gst::ErrorMessage> {
        let (spec, child) = {
            let st = self.state.lock().unwrap();
            if let Some((req, e)) = &st.error {
                return Err(gst::error_msg!(
                    gst::ResourceError::Settings,
                    ("Invalid SAT>IP request {:?}: {}", req, describe(e))
                ));
            }
            let Some(spec) = st.spec.clone() else {
                return Err(gst::error_msg!(
                    gst::ResourceError::Settings,
                    ("No SAT>IP request set (property 'request', e.g. \"freq=506&msys=dvbt&bw=8&pids=0,16,17\")")
                ));
            };
            (
                spec,
                st.child.clone().expect("child exists from NULL→READY"),
            )
        };
        self.check_capabilities(&spec).map_err(|e| {
            gst::error_msg!(
                gst::ResourceError::Settings,
                (
                    "Invalid SAT>IP request {:?}: {}",
                    spec.canonical_query(),
                    describe(&e)
                )
            )
        })?;
        self.configure_child(&child, &spec).map_err(|e| {
            gst::error_msg!(
                gst::ResourceError::Settings,
                ("Invalid SAT>IP request {:?}: {}", spec.canonical_query(), e)
            )
        })?;
        gst::info!(CAT, imp = self, "tuning {}", spec.canonical_query());
        Ok(())
    }

    /// Applies a new `request` value.
    fn set_request(&self, value: &str) {
        let q = parse_query(value.trim_start_matches('?'));
        let mut st = self.state.lock().unwrap();
        let max = st.max_pids as usize;
        if !st.running {
            match q.and_then(|q| StreamSpec::create(&q, max)) {
                Ok(spec) => {
                    gst::debug!(
                        CAT,
                        imp = self,
                        "request {:?} -> {}",
                        value,
                        spec.canonical_query()
                    );
                    st.spec = Some(spec);
                    st.error = None;
                }
                Err(e) => {
                    gst::warning!(
                        CAT,
                        imp = self,
                        "invalid request {:?}: {}",
                        value,
                        describe(&e)
                    );
                    st.spec = None;
                    st.error = Some((value.to_string(), e));
                }
            }
            return;
        }
        let cur = st.spec.clone().expect("running implies a stream");
        let applied = q.and_then(|q| {
            let (new, change) = cur.apply(&q, max)?;
            if change == Change::Retune {
                self.check_capabilities(&new)?;
            }
            Ok((new, change))
        });
        let (new, change) = match applied {
            Ok(x) => x,
            Err(e) => {
                drop(st);
                gst::element_imp_warning!(
                    self,
                    gst::ResourceError::Settings,
                    (
                        "Refused SAT>IP request {:?}: {}; the stream is unchanged",
                        value,
                        describe(&e)
                    )
                );
                return;
            }
        };
        let child = st.child.clone().expect("running implies a child");
        let untuned = st.untuned;
        st.spec = Some(new.clone());
        drop(st);
        match change {
            Change::Unchanged => {}
            Change::Pids if !untuned => {
                gst::debug!(CAT, imp = self, "pids {} -> {}", cur.pids, new.pids);
                child.set_property("pids", new.pids.to_string());
            }
            Change::Pids | Change::Retune => self.retune(&child, &cur, &new),
        }
        self.obj().notify("request");
    }

    /// Moves the child to another transponder: READY first (gives the old frontend back), then
    /// new properties, then back to the bin's state (leases the new frontend).
    fn retune(&self, child: &gst::Element, old: &StreamSpec, new: &StreamSpec) {
        gst::info!(
            CAT,
            imp = self,
            "retune {} -> {}",
            old.canonical_query(),
            new.canonical_query()
        );
        self.retuning.store(true, Ordering::SeqCst);
        let _ = child.set_state(gst::State::Ready);
        let ok = match self.configure_child(child, new) {
            Ok(()) => {
                child.sync_state_with_parent().is_ok() && {
                    let (_, cur, _) = child.state(gst::ClockTime::ZERO);
                    cur >= gst::State::Paused
                }
            }
            Err(e) => {
                gst::warning!(CAT, imp = self, "{}", e);
                false
            }
        };
        self.retuning.store(false, Ordering::SeqCst);
        self.state.lock().unwrap().untuned = !ok;
        if !ok {
            let _ = child.set_state(gst::State::Ready);
            gst::element_imp_warning!(
                self,
                gst::ResourceError::Busy,
                (
                    "No frontend free for {}; the stream stays untuned until the next request",
                    new.canonical_query()
                )
            );
        }
    }

    /// SAT>IP `fe` number of the frontend the child holds for `tuning`, 0 when none.
    fn frontend_number(&self, child: &gst::Element, tuning: &crate::proto::satip::Tuning) -> u32 {
        let adapter: i32 = child.property("adapter-in-use");
        if adapter < 0 {
            return 0;
        }
        let name: String = child.property("frontend-name");
        let pool = self.pool();
        pool.frontends()
            .iter()
            .find(|f| f.adapter == adapter as u32 && f.name == name)
            .map(|f| super::fe_number_in(&pool, f.index, tuning))
            .unwrap_or(0)
    }

    fn status(&self) -> String {
        let (spec, child, untuned) = {
            let st = self.state.lock().unwrap();
            (st.spec.clone(), st.child.clone(), st.untuned)
        };
        let tuned = child.filter(|_| !untuned).map(|c| super::Tuned {
            fe: spec
                .as_ref()
                .map_or(0, |s| self.frontend_number(&c, &s.tuning)),
            locked: c.property("locked"),
            level: c.property("signal-level"),
            quality: c.property("signal-quality"),
        });
        super::status_string(spec.as_ref(), tuned)
    }
}

#[glib::object_subclass]
impl ObjectSubclass for SatIpMapSrc {
    const NAME: &'static str = "GstSatIpMapSrc";
    type Type = super::SatIpMapSrc;
    type ParentType = gst::Bin;

    fn with_class(klass: &Self::Class) -> Self {
        let templ = klass.pad_template("src").expect("src template");
        let srcpad = gst::GhostPad::builder_from_template(&templ)
            .name("src")
            .build();
        Self {
            pool: Mutex::new(None),
            tap: Mutex::new(None),
            state: Mutex::new(State {
                max_pids: DEFAULT_MAX_PIDS_U32,
                ..Default::default()
            }),
            retuning: AtomicBool::new(false),
            srcpad,
        }
    }
}

impl ObjectImpl for SatIpMapSrc {
    fn properties() -> &'static [glib::ParamSpec] {
        static PROPERTIES: Lazy<Vec<glib::ParamSpec>> = Lazy::new(|| {
            vec![
                /**
                 * GstSatIpMapSrc:request:
                 *
                 * The SAT>IP query. Before start it defines the stream; while playing it
                 * modifies it (pids/addpids/delpids without retuning, tuning attributes retune).
                 * Reading it gives the normalised query of the current stream.
                 */
                glib::ParamSpecString::builder("request")
                    .nick("Request")
                    .blurb("SAT>IP query (e.g. \"freq=474&msys=dvbt2&bw=8&plp=0&pids=0,16,17\"): defines the stream before start, modifies it (addpids, delpids, pids, retune) while playing; reads back normalised")
                    .mutable_playing()
                    .build(),
                glib::ParamSpecUInt::builder("max-pids")
                    .nick("Maximum PIDs")
                    .blurb("Most PIDs one stream may filter (1–8192); more is refused as No-More: pids")
                    .minimum(1)
                    .maximum(8192)
                    .default_value(DEFAULT_MAX_PIDS_U32)
                    .mutable_ready()
                    .build(),
                /**
                 * GstSatIpMapSrc:status:
                 *
                 * The SAT>IP status string of `a=fmtp:33` and the RTCP APP packet.
                 */
                glib::ParamSpecString::builder("status")
                    .nick("Status")
                    .blurb("SAT>IP status string (ver=…;tuner=fe,level 0–255,lock,quality 0–15,…;pids=…) of the current stream")
                    .read_only()
                    .build(),
                glib::ParamSpecUInt::builder("frontend-number")
                    .nick("Frontend number")
                    .blurb("1-based SAT>IP frontend number (fe=, in satip:X_SATIPCAP order) serving the stream, 0 when none")
                    .read_only()
                    .build(),
            ]
        });
        PROPERTIES.as_ref()
    }

    fn set_property(&self, _id: usize, value: &glib::Value, pspec: &glib::ParamSpec) {
        match pspec.name() {
            "request" => {
                let v: Option<String> = value.get().expect("type checked upstream");
                self.set_request(v.as_deref().unwrap_or(""));
            }
            "max-pids" => {
                self.state.lock().unwrap().max_pids = value.get().expect("type checked upstream")
            }
            _ => unimplemented!(),
        }
    }

    fn property(&self, _id: usize, pspec: &glib::ParamSpec) -> glib::Value {
        match pspec.name() {
            "request" => {
                let st = self.state.lock().unwrap();
                match (&st.spec, &st.error) {
                    (Some(s), _) => Some(s.canonical_query()),
                    (None, Some((raw, _))) => Some(raw.clone()),
                    (None, None) => None,
                }
                .to_value()
            }
            "max-pids" => self.state.lock().unwrap().max_pids.to_value(),
            "status" => self.status().to_value(),
            "frontend-number" => {
                let (child, untuned, spec) = {
                    let st = self.state.lock().unwrap();
                    (st.child.clone(), st.untuned, st.spec.clone())
                };
                match (child.filter(|_| !untuned), spec) {
                    (Some(c), Some(s)) => self.frontend_number(&c, &s.tuning),
                    _ => 0,
                }
                .to_value()
            }
            _ => unimplemented!(),
        }
    }

    fn constructed(&self) {
        self.parent_constructed();
        let obj = self.obj();
        obj.add_pad(&self.srcpad).expect("add ghost pad");
        obj.set_element_flags(gst::ElementFlags::SOURCE);
    }
}

impl GstObjectImpl for SatIpMapSrc {}

impl ElementImpl for SatIpMapSrc {
    fn set_context(&self, context: &gst::Context) {
        if let Some(pool) = crate::tuners::pool_of_context(context) {
            *self.pool.lock().unwrap() = Some(pool);
        }
        self.parent_set_context(context)
    }

    fn metadata() -> Option<&'static gst::subclass::ElementMetadata> {
        static ELEMENT_METADATA: Lazy<gst::subclass::ElementMetadata> = Lazy::new(|| {
            gst::subclass::ElementMetadata::new(
                "SAT>IP request source",
                "Source/Network",
                "Validates a SAT>IP query and maps it to a frontend of the tuner pool and a PID set; \
                 accepts live PID changes and retunes while playing.",
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
        match transition {
            gst::StateChange::NullToReady => {
                // Our pool (asked from the parents once); the child gets it from us as a bin.
                let pool = crate::tuners::pool_for_element(self.obj().upcast_ref(), &self.pool);
                *self.pool.lock().unwrap() = Some(pool.clone());
                let child = gst::ElementFactory::make("dvbtunersrc")
                    .name("tuner")
                    .build()
                    .map_err(|e| {
                        gst::element_imp_error!(
                            self,
                            gst::CoreError::MissingPlugin,
                            ("Cannot create dvbtunersrc: {}", e)
                        );
                        gst::StateChangeError
                    })?;
                child.set_context(&crate::tuners::pool_context(&pool));
                self.obj().add(&child).expect("add child");
                let pad = child.static_pad("src").expect("dvbtunersrc has src");
                self.srcpad.set_target(Some(&pad)).expect("set target");
                if let Some(t) = child.downcast_ref::<crate::dvbtunersrc::DvbTunerSrc>() {
                    t.set_tap(self.tap.lock().unwrap().clone());
                }
                self.state.lock().unwrap().child = Some(child);
            }
            gst::StateChange::ReadyToPaused => {
                if let Err(e) = self.start() {
                    gst::error!(CAT, imp = self, "{:?}", e);
                    self.post_error_message(e);
                    return Err(gst::StateChangeError);
                }
            }
            gst::StateChange::PausedToReady => {
                self.state.lock().unwrap().running = false;
            }
            _ => {}
        }
        let ret = self.parent_change_state(transition)?;
        match transition {
            gst::StateChange::ReadyToPaused => {
                let mut st = self.state.lock().unwrap();
                st.running = true;
                st.untuned = false;
                return Ok(gst::StateChangeSuccess::NoPreroll);
            }
            gst::StateChange::PlayingToPaused => return Ok(gst::StateChangeSuccess::NoPreroll),
            gst::StateChange::ReadyToNull => {
                let child = self.state.lock().unwrap().child.take();
                let _ = self.srcpad.set_target(None::<&gst::Pad>);
                if let Some(c) = child {
                    let _ = self.obj().remove(&c);
                }
            }
            _ => {}
        }
        Ok(ret)
    }
}

impl BinImpl for SatIpMapSrc {
    fn handle_message(&self, msg: gst::Message) {
        if let gst::MessageView::Error(e) = msg.view() {
            let err = e.error();
            let running = self.state.lock().unwrap().running;
            let retuning = self.retuning.load(Ordering::SeqCst);
            // A failed live retune, or a frontend that does not lock, must not end a SAT>IP
            // stream: it carries on untuned / without lock (status lock=0).
            if retuning || (running && err.matches(gst::ResourceError::NotFound)) {
                gst::warning!(
                    CAT,
                    imp = self,
                    "child error turned into a warning: {}",
                    err
                );
                gst::element_imp_warning!(self, gst::ResourceError::Busy, ("{}", err.message()));
                return;
            }
        }
        self.parent_handle_message(msg)
    }
}
