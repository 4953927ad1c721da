//! `dvbtunersrc`: leases a frontend from the process-wide tuner pool and outputs its transport
//! stream, PID-filtered per instance.
//!
//! Property names and units follow `dvbsrc` (frequency in Hz, or kHz for satellite; symbol rate
//! in kBd; `delsys` and `modulation` with dvbsrc's nicks), so a `dvbsrc` line keeps working:
//!
//! ```text
//! gst-launch-1.0 dvbtunersrc delsys=dvb-t frequency=506000000 bandwidth-hz=8000000 ! tsdemux ! fakesink
//! ```

use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;

mod imp;

/// Delivery system; values and nicks are those of `dvbsrc`'s `GstDvbSrcDelsys`.
#[derive(Debug, Eq, PartialEq, Ord, PartialOrd, Hash, Clone, Copy, glib::Enum)]
#[repr(u32)]
#[enum_type(name = "GstDvbTunerSrcDelsys")]
pub enum Delsys {
    #[enum_value(name = "Undefined", nick = "undefined")]
    Undefined = 0,
    #[enum_value(name = "DVB-C annex A", nick = "dvb-c-a")]
    DvbCA = 1,
    #[enum_value(name = "DVB-C annex B", nick = "dvb-c-b")]
    DvbCB = 2,
    #[enum_value(name = "DVB-T", nick = "dvb-t")]
    DvbT = 3,
    #[enum_value(name = "DSS", nick = "dss")]
    Dss = 4,
    #[enum_value(name = "DVB-S", nick = "dvb-s")]
    DvbS = 5,
    #[enum_value(name = "DVB-S2", nick = "dvb-s2")]
    DvbS2 = 6,
    #[enum_value(name = "DVB-H", nick = "dvb-h")]
    DvbH = 7,
    #[enum_value(name = "ISDB-T", nick = "isdb-t")]
    IsdbT = 8,
    #[enum_value(name = "ISDB-S", nick = "isdb-s")]
    IsdbS = 9,
    #[enum_value(name = "ISDB-C", nick = "isdb-c")]
    IsdbC = 10,
    #[enum_value(name = "ATSC", nick = "atsc")]
    Atsc = 11,
    #[enum_value(name = "ATSC-MH", nick = "atsc-mh")]
    AtscMh = 12,
    #[enum_value(name = "DTMB", nick = "dtmb")]
    Dtmb = 13,
    #[enum_value(name = "CMMB", nick = "cmmb")]
    Cmmb = 14,
    #[enum_value(name = "DAB", nick = "dab")]
    Dab = 15,
    #[enum_value(name = "DVB-T2", nick = "dvb-t2")]
    DvbT2 = 16,
    #[enum_value(name = "TURBO", nick = "turbo")]
    Turbo = 17,
    #[enum_value(name = "DVB-C annex C", nick = "dvb-c-c")]
    DvbCC = 18,
}

/// Modulation; values and nicks are those of `dvbsrc`'s `GstDvbSrcModulation`.
#[derive(Debug, Eq, PartialEq, Ord, PartialOrd, Hash, Clone, Copy, glib::Enum)]
#[repr(u32)]
#[enum_type(name = "GstDvbTunerSrcModulation")]
pub enum Modulation {
    #[enum_value(name = "QPSK", nick = "qpsk")]
    Qpsk = 0,
    #[enum_value(name = "QAM 16", nick = "qam-16")]
    Qam16 = 1,
    #[enum_value(name = "QAM 32", nick = "qam-32")]
    Qam32 = 2,
    #[enum_value(name = "QAM 64", nick = "qam-64")]
    Qam64 = 3,
    #[enum_value(name = "QAM 128", nick = "qam-128")]
    Qam128 = 4,
    #[enum_value(name = "QAM 256", nick = "qam-256")]
    Qam256 = 5,
    #[enum_value(name = "AUTO", nick = "auto")]
    Auto = 6,
    #[enum_value(name = "8VSB", nick = "8vsb")]
    Vsb8 = 7,
    #[enum_value(name = "16VSB", nick = "16vsb")]
    Vsb16 = 8,
    #[enum_value(name = "8PSK", nick = "8psk")]
    Psk8 = 9,
    #[enum_value(name = "16APSK", nick = "16apsk")]
    Apsk16 = 10,
    #[enum_value(name = "32APSK", nick = "32apsk")]
    Apsk32 = 11,
}

glib::wrapper! {
    pub struct DvbTunerSrc(ObjectSubclass<imp::DvbTunerSrc>) @extends gst::Bin, gst::Element, gst::Object, @implements gst::ChildProxy, gst::URIHandler;
}

/// A Rust-side consumer of the feed: called in the feed's thread with every buffer the
/// element's PID filter lets through; returning `true` consumes the buffer (it does not
/// enter the pipeline). It must not block: every subscriber of the frontend waits for it.
pub type Tap = std::sync::Arc<dyn Fn(&gst::Buffer) -> bool + Send + Sync>;

impl DvbTunerSrc {
    /// Installs (or removes) a [`Tap`]. It stays across retunes and PID changes; buffers
    /// already queued in the element still flow downstream.
    pub fn set_tap(&self, tap: Option<Tap>) {
        *self.imp().tap.lock().unwrap() = tap;
    }
}

pub fn register(plugin: &gst::Plugin) -> Result<(), glib::BoolError> {
    #[cfg(feature = "doc")]
    {
        Delsys::static_type().mark_as_plugin_api(gst::PluginAPIFlags::empty());
        Modulation::static_type().mark_as_plugin_api(gst::PluginAPIFlags::empty());
    }
    gst::Element::register(
        Some(plugin),
        "dvbtunersrc",
        gst::Rank::MARGINAL,
        DvbTunerSrc::static_type(),
    )
}

/// The pool request of a `dvbtunersrc` whose properties were set to `props` (name, value) and
/// `pids`, validated as the element validates them at start, without making an element.
pub fn lease_request(
    props: &[(&str, String)],
    pids: &str,
) -> Result<crate::tuners::LeaseRequest, String> {
    imp::lease_request(props, pids)
}
