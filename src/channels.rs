//! Channel queries (SAT>IP syntax) mapped onto `dvbtunersrc` properties.

use gstdvb2ip::proto::satip::{parse_query, Family, StreamSpec, Tuning};

/// Most PIDs one stream may ask for.
pub const MAX_PIDS: usize = 128;

/// `dvbtunersrc` properties for a parsed tuning (launch-syntax `name=value` pairs).
pub fn dvbtunersrc_properties(t: &Tuning) -> Result<Vec<(String, String)>, String> {
    let delsys = t.delivery_system.dvbsrc_nick().ok_or_else(|| {
        format!(
            "delivery system {} is not supported by the tuner pool",
            t.delivery_system.query_name()
        )
    })?;
    let mut p = vec![
        ("delsys".to_string(), delsys.to_string()),
        ("frequency".to_string(), t.frequency.to_string()),
    ];
    if let Some(sr) = t.symbol_rate {
        p.push(("symbol-rate".into(), sr.to_string()));
    }
    if let (Family::Terrestrial, Some(bw)) = (t.family(), t.bandwidth_hz) {
        p.push(("bandwidth-hz".into(), bw.to_string()));
    }
    if let Some(pol) = t.polarisation {
        p.push(("polarity".into(), pol.dvbsrc_polarity().to_string()));
    }
    if let Some(m) = t.modulation.and_then(|m| m.dvbsrc_nick()) {
        p.push(("modulation".into(), m.to_string()));
    }
    if let Some(s) = t.stream_id() {
        p.push(("stream-id".into(), s.to_string()));
    }
    if t.family() == Family::Satellite && t.src > 1 {
        p.push(("diseqc-source".into(), (t.src - 1).min(7).to_string()));
    }
    Ok(p)
}

/// Parses a channel's SAT>IP query into its stream spec and the `dvbtunersrc` launch fragment.
pub fn tuning_for_query(query: &str) -> Result<(StreamSpec, String), String> {
    let q = parse_query(query.trim_start_matches('?')).map_err(|e| e.to_string())?;
    let spec = StreamSpec::create(&q, MAX_PIDS).map_err(|e| e.to_string())?;
    let props = dvbtunersrc_properties(&spec.tuning)?;
    let mut frag = String::from("dvbtunersrc");
    for (k, v) in props {
        frag.push_str(&format!(" {k}={v}"));
    }
    frag.push_str(&format!(" pids={}", spec.pids));
    Ok((spec, frag))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_channels_map_to_dvbsrc_units() {
        let (_, f) = tuning_for_query("freq=506&msys=dvbt&bw=8&pids=0,16,17").unwrap();
        assert!(f.contains("delsys=dvb-t "), "{f}");
        assert!(f.contains("frequency=506000000"), "{f}");
        assert!(f.contains("bandwidth-hz=8000000"), "{f}");
        assert!(f.ends_with("pids=0,16,17"), "{f}");
        let (_, f) =
            tuning_for_query("src=1&freq=11494&pol=h&msys=dvbs2&sr=22000&mtype=8psk&fec=34&ro=0.35&plts=off&pids=all")
                .unwrap();
        assert!(
            f.contains("frequency=11494000") && f.contains("symbol-rate=22000"),
            "{f}"
        );
        assert!(f.contains("polarity=H") || f.contains("polarity=h"), "{f}");
        assert!(tuning_for_query("freq=506&msys=dvbq").is_err());
    }
}
