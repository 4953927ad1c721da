//! `dvbtunersrc`: leases a frontend from the process-wide tuner pool and outputs its transport
//! stream, PID-filtered per instance.
//!
//! Property names and units follow `dvbsrc` (frequency in Hz, or kHz for satellite; symbol rate
//! in kBd; `delsys`, `modulation`, `guard`, `trans-mode`, `code-rate-hp`… with dvbsrc's enum
//! values and nicks, and dvbsrc's defaults), so a `dvbsrc` line keeps working:
//!
//! ```text
//! gst-launch-1.0 dvbtunersrc delsys=dvb-t frequency=506000000 bandwidth-hz=8000000 ! tsdemux ! fakesink
//! ```

use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;

mod imp;

/// Delivery system; values, names and nicks are those of `dvbsrc`'s `GstDvbSrcDelsys`.
#[derive(Debug, Eq, PartialEq, Ord, PartialOrd, Hash, Clone, Copy, glib::Enum)]
#[repr(u32)]
#[enum_type(name = "GstDvbTunerSrcDelsys")]
pub enum Delsys {
    #[enum_value(name = "UNDEFINED", nick = "undefined")]
    Undefined = 0,
    #[enum_value(name = "DVB-C-A", nick = "dvb-c-a")]
    DvbCA = 1,
    #[enum_value(name = "DVB-C-B", nick = "dvb-c-b")]
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
    #[enum_value(name = "DVB-C-C", nick = "dvb-c-c")]
    DvbCC = 18,
}

/// Modulation; values, names and nicks are those of `dvbsrc`'s `GstDvbSrcModulation`.
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
    #[enum_value(name = "DQPSK", nick = "dqpsk")]
    Dqpsk = 12,
    #[enum_value(name = "QAM 4 NR", nick = "qam-4-nr")]
    Qam4Nr = 13,
}

// The enums below mirror dvbsrc's (same values, names and nicks, so `guard=16` or
// `code-rate-hp=2/3` means what it means to dvbsrc); their GType names are our own, since the
// dvb plugin registers `GstDvbSrc…` when it is loaded.

/// Forward error correction code rate; dvbsrc's `GstDvbSrcCode_Rate`.
#[derive(Debug, Eq, PartialEq, Hash, Clone, Copy, glib::Enum)]
#[repr(i32)]
#[enum_type(name = "GstDvbTunerSrcCodeRate")]
pub enum CodeRate {
    #[enum_value(name = "NONE", nick = "none")]
    None = 0,
    #[enum_value(name = "1/2", nick = "1/2")]
    R1_2 = 1,
    #[enum_value(name = "2/3", nick = "2/3")]
    R2_3 = 2,
    #[enum_value(name = "3/4", nick = "3/4")]
    R3_4 = 3,
    #[enum_value(name = "4/5", nick = "4/5")]
    R4_5 = 4,
    #[enum_value(name = "5/6", nick = "5/6")]
    R5_6 = 5,
    #[enum_value(name = "6/7", nick = "6/7")]
    R6_7 = 6,
    #[enum_value(name = "7/8", nick = "7/8")]
    R7_8 = 7,
    #[enum_value(name = "8/9", nick = "8/9")]
    R8_9 = 8,
    #[enum_value(name = "AUTO", nick = "auto")]
    Auto = 9,
    #[enum_value(name = "3/5", nick = "3/5")]
    R3_5 = 10,
    #[enum_value(name = "9/10", nick = "9/10")]
    R9_10 = 11,
    #[enum_value(name = "2/5", nick = "2/5")]
    R2_5 = 12,
}

/// Guard interval; dvbsrc's `GstDvbSrcGuard`.
#[derive(Debug, Eq, PartialEq, Hash, Clone, Copy, glib::Enum)]
#[repr(i32)]
#[enum_type(name = "GstDvbTunerSrcGuard")]
pub enum Guard {
    #[enum_value(name = "32", nick = "32")]
    G1_32 = 0,
    #[enum_value(name = "16", nick = "16")]
    G1_16 = 1,
    #[enum_value(name = "8", nick = "8")]
    G1_8 = 2,
    #[enum_value(name = "4", nick = "4")]
    G1_4 = 3,
    #[enum_value(name = "AUTO", nick = "auto")]
    Auto = 4,
    #[enum_value(name = "128", nick = "128")]
    G1_128 = 5,
    #[enum_value(name = "19/128", nick = "19/128")]
    G19_128 = 6,
    #[enum_value(name = "19/256", nick = "19/256")]
    G19_256 = 7,
    #[enum_value(name = "PN420", nick = "pn420")]
    Pn420 = 8,
    #[enum_value(name = "PN595", nick = "pn595")]
    Pn595 = 9,
    #[enum_value(name = "PN945", nick = "pn945")]
    Pn945 = 10,
}

/// OFDM transmission mode; dvbsrc's `GstDvbSrcTransmission_Mode`.
#[derive(Debug, Eq, PartialEq, Hash, Clone, Copy, glib::Enum)]
#[repr(i32)]
#[enum_type(name = "GstDvbTunerSrcTransmissionMode")]
pub enum TransmissionMode {
    #[enum_value(name = "2K", nick = "2k")]
    M2k = 0,
    #[enum_value(name = "8K", nick = "8k")]
    M8k = 1,
    #[enum_value(name = "AUTO", nick = "auto")]
    Auto = 2,
    #[enum_value(name = "4K", nick = "4k")]
    M4k = 3,
    #[enum_value(name = "1K", nick = "1k")]
    M1k = 4,
    #[enum_value(name = "16K", nick = "16k")]
    M16k = 5,
    #[enum_value(name = "32K", nick = "32k")]
    M32k = 6,
    #[enum_value(name = "C1", nick = "c1")]
    C1 = 7,
    #[enum_value(name = "C3780", nick = "c3780")]
    C3780 = 8,
}

/// Hierarchy; dvbsrc's `GstDvbSrcHierarchy`.
#[derive(Debug, Eq, PartialEq, Hash, Clone, Copy, glib::Enum)]
#[repr(i32)]
#[enum_type(name = "GstDvbTunerSrcHierarchy")]
pub enum Hierarchy {
    #[enum_value(name = "NONE", nick = "none")]
    None = 0,
    #[enum_value(name = "1", nick = "1")]
    H1 = 1,
    #[enum_value(name = "2", nick = "2")]
    H2 = 2,
    #[enum_value(name = "4", nick = "4")]
    H4 = 3,
    #[enum_value(name = "AUTO", nick = "auto")]
    Auto = 4,
}

/// Spectral inversion; dvbsrc's `GstDvbSrcInversion`.
#[derive(Debug, Eq, PartialEq, Hash, Clone, Copy, glib::Enum)]
#[repr(i32)]
#[enum_type(name = "GstDvbTunerSrcInversion")]
pub enum Inversion {
    #[enum_value(name = "OFF", nick = "off")]
    Off = 0,
    #[enum_value(name = "ON", nick = "on")]
    On = 1,
    #[enum_value(name = "AUTO", nick = "auto")]
    Auto = 2,
}

/// DVB-S2 pilot; dvbsrc's `GstDvbSrcPilot`.
#[derive(Debug, Eq, PartialEq, Hash, Clone, Copy, glib::Enum)]
#[repr(i32)]
#[enum_type(name = "GstDvbTunerSrcPilot")]
pub enum Pilot {
    #[enum_value(name = "ON", nick = "on")]
    On = 0,
    #[enum_value(name = "OFF", nick = "off")]
    Off = 1,
    #[enum_value(name = "AUTO", nick = "auto")]
    Auto = 2,
}

/// DVB-S2 roll-off; dvbsrc's `GstDvbSrcRolloff`.
#[derive(Debug, Eq, PartialEq, Hash, Clone, Copy, glib::Enum)]
#[repr(i32)]
#[enum_type(name = "GstDvbTunerSrcRolloff")]
pub enum Rolloff {
    #[enum_value(name = "35", nick = "35")]
    R35 = 0,
    #[enum_value(name = "20", nick = "20")]
    R20 = 1,
    #[enum_value(name = "25", nick = "25")]
    R25 = 2,
    #[enum_value(name = "auto", nick = "auto")]
    Auto = 3,
}

/// DTMB interleaving; dvbsrc's `GstDvbSrcInterleaving`.
#[derive(Debug, Eq, PartialEq, Hash, Clone, Copy, glib::Enum)]
#[repr(i32)]
#[enum_type(name = "GstDvbTunerSrcInterleaving")]
pub enum Interleaving {
    #[enum_value(name = "NONE", nick = "none")]
    None = 0,
    #[enum_value(name = "AUTO", nick = "auto")]
    Auto = 1,
    #[enum_value(name = "240", nick = "240")]
    I240 = 2,
    #[enum_value(name = "720", nick = "720")]
    I720 = 3,
}

/// Terrestrial bandwidth of dvbsrc's deprecated `bandwidth` property (`GstDvbSrcBandwidth`);
/// it sets `bandwidth-hz`.
#[derive(Debug, Eq, PartialEq, Hash, Clone, Copy, glib::Enum)]
#[repr(i32)]
#[enum_type(name = "GstDvbTunerSrcBandwidth")]
pub enum Bandwidth {
    #[enum_value(name = "8", nick = "8")]
    B8 = 0,
    #[enum_value(name = "7", nick = "7")]
    B7 = 1,
    #[enum_value(name = "6", nick = "6")]
    B6 = 2,
    #[enum_value(name = "AUTO", nick = "AUTO")]
    Auto = 3,
    #[enum_value(name = "5", nick = "5")]
    B5 = 4,
    #[enum_value(name = "10", nick = "10")]
    B10 = 5,
    #[enum_value(name = "1.712", nick = "1.712")]
    B1_712 = 6,
}

impl Bandwidth {
    /// The bandwidth in Hz, 0 for automatic.
    pub fn hz(self) -> u32 {
        match self {
            Bandwidth::B8 => 8_000_000,
            Bandwidth::B7 => 7_000_000,
            Bandwidth::B6 => 6_000_000,
            Bandwidth::Auto => 0,
            Bandwidth::B5 => 5_000_000,
            Bandwidth::B10 => 10_000_000,
            Bandwidth::B1_712 => 1_712_000,
        }
    }

    /// The value naming `hz`, `Auto` for any other.
    pub fn from_hz(hz: u32) -> Bandwidth {
        [
            Bandwidth::B8,
            Bandwidth::B7,
            Bandwidth::B6,
            Bandwidth::B5,
            Bandwidth::B10,
            Bandwidth::B1_712,
        ]
        .into_iter()
        .find(|b| b.hz() == hz)
        .unwrap_or(Bandwidth::Auto)
    }
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
        for t in [
            Modulation::static_type(),
            CodeRate::static_type(),
            Guard::static_type(),
            TransmissionMode::static_type(),
            Hierarchy::static_type(),
            Inversion::static_type(),
            Pilot::static_type(),
            Rolloff::static_type(),
            Interleaving::static_type(),
            Bandwidth::static_type(),
        ] {
            t.mark_as_plugin_api(gst::PluginAPIFlags::empty());
        }
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
