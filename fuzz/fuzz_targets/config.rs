//! Fuzz target over the configuration readers: the launcher's whole TOML configuration
//! (server, SSDP, multicast, channels and the broadcast part) and the tuner pool's broadcast
//! configuration on its own. Errors must name the file and a line, never panic.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: &[u8]| {
    let text = String::from_utf8_lossy(input);
    if let Err(e) = dvb2ip::config::Config::parse("fuzz.toml", &text) {
        assert!(e.to_string().contains("fuzz.toml"), "{e}");
    }
    if let Err(e) = gstdvb2ip::tuners::config::BroadcastConfig::parse("fuzz.toml", &text) {
        assert!(e.to_string().contains("fuzz.toml"), "{e}");
    }
});
