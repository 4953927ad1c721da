//! `dvbcsssink`: serves DVB-CSS (CII, TS, WC) for what it renders.

pub mod servers;
