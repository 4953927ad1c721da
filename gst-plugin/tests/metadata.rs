//! Every element of the plugin documents itself for gst-inspect-1.0: long name, klass,
//! description, and a nick and blurb on every property it declares (the doc-cache generator is
//! not packaged in Debian 12, so this test takes its place).

mod common;

use gst::prelude::*;

#[test]
fn every_element_and_property_is_documented() {
    common::init();
    let registry = gst::Registry::get();
    let features = registry.features_by_plugin("dvb2ip");
    let factories: Vec<gst::ElementFactory> = features
        .into_iter()
        .filter_map(|f| f.downcast::<gst::ElementFactory>().ok())
        .collect();
    let names: Vec<String> = factories.iter().map(|f| f.name().to_string()).collect();
    for (expected, klass) in [
        ("dvbtunersrc", "Source/Hardware"),
        ("satipmapsrc", "Source/Network"),
        ("tstimelineparse", "Filter/Analyzer"),
        ("dvbcsssink", "Sink/Network"),
        ("mjpegframeparse", "Codec/Parser/Video"),
    ] {
        let f = factories
            .iter()
            .find(|f| f.name() == expected)
            .unwrap_or_else(|| panic!("{expected} not registered: {names:?}"));
        assert_eq!(
            f.metadata(gst::ELEMENT_METADATA_KLASS),
            Some(klass),
            "{expected}: klass"
        );
    }
    assert_eq!(factories.len(), 5, "unexpected elements: {names:?}");
    for f in &factories {
        for key in [
            gst::ELEMENT_METADATA_LONGNAME,
            gst::ELEMENT_METADATA_KLASS,
            gst::ELEMENT_METADATA_DESCRIPTION,
        ] {
            let v = f.metadata(key).unwrap_or_default();
            assert!(!v.trim().is_empty(), "{}: empty {key}", f.name());
        }
        let desc = f.metadata(gst::ELEMENT_METADATA_DESCRIPTION).unwrap();
        assert!(
            desc.matches(". ").count() < 2,
            "{}: description longer than 2 sentences",
            f.name()
        );
        let element = f.create().build().unwrap();
        let own = element.type_();
        for p in element.list_properties() {
            if p.owner_type() != own {
                continue;
            }
            assert!(
                !p.nick().trim().is_empty(),
                "{}::{} has no nick",
                f.name(),
                p.name()
            );
            let blurb = p.blurb().unwrap_or_default();
            assert!(
                blurb.len() > 10,
                "{}::{} has no useful blurb",
                f.name(),
                p.name()
            );
        }
        for t in f.static_pad_templates() {
            assert!(
                !t.caps().is_any(),
                "{}: pad template {} has ANY caps",
                f.name(),
                t.name_template()
            );
        }
    }
}
