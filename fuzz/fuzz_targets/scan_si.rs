//! Fuzz target over the scanner's SI readers: SDT and NIT sub-tables built from sections (service
//! descriptors, network names, Annex A text), every delivery system descriptor, the frequency
//! list and the logical channel number rules.
//!
//! Input: byte 0 picks the reader; the rest is a section (or descriptor body, or NIT loop).

#![no_main]

use libfuzzer_sys::fuzz_target;

use dvb2ip_proto::psi::Section;
use dvb2ip_proto::scan::delivery::{
    CableDelivery, FrequencyList, S2Delivery, SatelliteDelivery, T2Delivery, TerrestrialDelivery,
};
use dvb2ip_proto::scan::nit::{lcns_in_loop, LcnOptions, NitTable};
use dvb2ip_proto::scan::sdt::{service_descriptor, SdtTable};
use dvb2ip_proto::scan::text;

fuzz_target!(|input: &[u8]| {
    let Some((&which, data)) = input.split_first() else {
        return;
    };
    match which % 5 {
        0 => {
            if let Ok(s) = Section::parse(data) {
                let _ = SdtTable::from_sections([&s]);
                if let Ok(n) = NitTable::from_sections([&s], &LcnOptions::default()) {
                    let _ = n.all_lcns();
                    let _ = n.announced(None);
                }
                let country = LcnOptions {
                    country: Some(*b"NOR"),
                };
                let _ = NitTable::from_sections([&s], &country);
            }
        }
        1 => {
            let _ = SatelliteDelivery::parse(data);
            let _ = CableDelivery::parse(data);
            let _ = TerrestrialDelivery::parse(data);
            let _ = T2Delivery::parse(data);
            let _ = S2Delivery::parse(data);
            let _ = FrequencyList::parse(data);
        }
        2 => {
            let _ = lcns_in_loop(data, &LcnOptions::default());
        }
        3 => {
            let _ = service_descriptor(data);
        }
        _ => {
            let _ = text::decode(data);
        }
    }
});
