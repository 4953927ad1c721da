//! Streams: creating one from a query ([`StreamSpec::create`]) and modifying it
//! ([`StreamSpec::apply`]: retune or PID change), with the per-stream PID limit.

use super::*;

/// How a query changed an existing stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// Nothing changed.
    Unchanged,
    /// Same tuning, different PID set: must be applied without interrupting the stream.
    Pids,
    /// The tuning changed (possibly the PIDs too): retune, keep RTP sequence numbers running.
    Retune,
}

/// The requested state of one stream: tuning and PID set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamSpec {
    /// The merged parameters as requested (defaults not applied), for later merges.
    pub params: TuningParams,
    pub tuning: Tuning,
    pub pids: PidSet,
}

impl StreamSpec {
    /// A new stream from the query of a creating SETUP (or HTTP GET, or a describing DESCRIBE).
    /// `addpids`/`delpids` are refused (400): they only modify a running stream. Without `pids`
    /// the stream has no filters. More than `max_pids` PIDs → 503 `No-More: pids`.
    pub fn create(q: &Query, max_pids: usize) -> Result<StreamSpec, QueryError> {
        if q.addpids.is_some() {
            return Err(QueryError::syntax(
                SyntaxReason::AddDelOnNewStream,
                "addpids",
            ));
        }
        if q.delpids.is_some() {
            return Err(QueryError::syntax(
                SyntaxReason::AddDelOnNewStream,
                "delpids",
            ));
        }
        let tuning = q.tuning.resolve()?;
        let pids = q.pids.clone().unwrap_or_default();
        check_pid_limit(&pids, max_pids)?;
        Ok(StreamSpec {
            params: q.tuning.clone(),
            tuning,
            pids,
        })
    }

    /// Apply a PLAY / in-session SETUP query to this stream. Tuning attributes merge as in
    /// [`TuningParams::merge`]; PIDs apply in [TVH] order: `pids`, then `delpids`, then
    /// `addpids` (mixing `pids` with add/del is tolerated). An empty query changes nothing.
    pub fn apply(&self, q: &Query, max_pids: usize) -> Result<(StreamSpec, Change), QueryError> {
        let (params, tuning) = if q.tuning.is_empty() {
            (self.params.clone(), self.tuning.clone())
        } else {
            let params = self.params.merge(&q.tuning);
            let tuning = params.resolve()?;
            (params, tuning)
        };
        let mut pids = q.pids.clone().unwrap_or_else(|| self.pids.clone());
        if let Some(d) = &q.delpids {
            pids.remove(d);
        }
        if let Some(a) = &q.addpids {
            pids.add(a);
        }
        check_pid_limit(&pids, max_pids)?;
        let change = if tuning != self.tuning {
            Change::Retune
        } else if pids != self.pids {
            Change::Pids
        } else {
            Change::Unchanged
        };
        Ok((
            StreamSpec {
                params,
                tuning,
                pids,
            },
            change,
        ))
    }

    pub fn key(&self) -> TuningKey {
        self.tuning.key()
    }

    /// Canonical query including `pids`.
    pub fn canonical_query(&self) -> String {
        self.tuning.canonical_query(Some(&self.pids))
    }
}

fn check_pid_limit(pids: &PidSet, max_pids: usize) -> Result<(), QueryError> {
    if pids.filter_count() > max_pids {
        Err(QueryError::NoMore(vec![Resource::Pids]))
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::satip::test_util::*;

    #[test]
    fn spec_satellite_example() {
        let s = spec(SAT_Q);
        let t = &s.tuning;
        assert_eq!(t.src, 1);
        assert_eq!(t.fe, None);
        assert_eq!(t.delivery_system, DeliverySystem::DvbS2);
        assert_eq!(
            t.frequency, 11_494_000,
            "satellite frequency is kHz for dvbsrc"
        );
        assert_eq!(t.polarisation, Some(Polarisation::Horizontal));
        assert_eq!(t.roll_off, Some(RollOff::R035));
        assert_eq!(t.modulation, Some(Modulation::Psk8));
        assert_eq!(t.pilots, Some(Pilots::On));
        assert_eq!(t.symbol_rate, Some(22_000));
        assert_eq!(t.code_rate, Some(CodeRate::R2_3));
        assert_eq!(t.lnb_band(), Some(LnbBand::Low));
        assert_eq!(s.pids, pids(&[0, 17, 18, 5100]));
        assert_eq!(t.delivery_system.dvbsrc_nick(), Some("dvb-s2"));
        assert_eq!(t.code_rate.and_then(CodeRate::dvbsrc_nick), Some("2/3"));
        assert_eq!(t.polarisation.map(Polarisation::dvbsrc_polarity), Some("H"));
    }

    #[test]
    fn spec_terrestrial_example() {
        let t = spec(TER_Q).tuning;
        assert_eq!(t.src, 1);
        assert_eq!(t.delivery_system, DeliverySystem::DvbT);
        assert_eq!(
            t.frequency, 538_000_000,
            "terrestrial frequency is Hz for dvbsrc"
        );
        assert_eq!(t.bandwidth_hz, Some(8_000_000));
        assert_eq!(t.transmission_mode, Some(TransmissionMode::K8));
        assert_eq!(t.modulation, Some(Modulation::Qam64));
        assert_eq!(t.guard_interval, Some(GuardInterval::G1_4));
        assert_eq!(t.code_rate, Some(CodeRate::R2_3));
        assert_eq!(t.polarisation, None);
        assert_eq!(t.symbol_rate, None);
        assert_eq!(t.lnb_band(), None);
    }

    #[test]
    fn spec_cable_examples() {
        let t = spec(CAB_Q).tuning;
        assert_eq!(t.delivery_system, DeliverySystem::DvbC);
        assert_eq!(t.frequency, 474_000_000);
        assert_eq!(t.modulation, Some(Modulation::Qam256));
        assert_eq!(t.symbol_rate, Some(6900));
        assert_eq!(t.spectral_inversion, Some(false));
        assert_eq!(t.delivery_system.dvbsrc_nick(), Some("dvb-c-a"));

        let c2 = spec(C2_Q).tuning;
        assert_eq!(c2.delivery_system, DeliverySystem::DvbC2);
        assert_eq!(c2.frequency, 650_500_000);
        assert_eq!(c2.bandwidth_hz, Some(8_000_000));
        assert_eq!(
            (c2.c2_tuning_type, c2.data_slice, c2.plp),
            (Some(0), Some(0), Some(0))
        );
        assert_eq!(c2.delivery_system.dvbsrc_nick(), None);
    }

    #[test]
    fn t2_fields() {
        let t = spec("freq=191.5&bw=1.712&msys=dvbt2&tmode=32k&mtype=256qam&gi=1128&fec=35&plp=3&t2id=1&sm=1")
            .tuning;
        assert_eq!(t.frequency, 191_500_000);
        assert_eq!(t.bandwidth_hz, Some(1_712_000));
        assert_eq!(t.plp, Some(3));
        assert_eq!(t.stream_id(), Some(3));
        assert_eq!(t.t2_system_id, Some(1));
        assert_eq!(t.siso_miso, Some(SisoMiso::Miso));
        // plp/t2id/sm are T2 only.
        let t = spec("freq=538&msys=dvbt&plp=3&t2id=1&sm=1").tuning;
        assert_eq!((t.plp, t.t2_system_id, t.siso_miso), (None, None, None));
    }

    #[test]
    fn checklist_1_unknown_attribute_ignored() {
        let with = spec(&format!("{SAT_Q}&foo=1&x_pmt=100&tvhweight=5&mcast=1"));
        assert_eq!(with, spec(SAT_Q));
    }

    #[test]
    fn checklist_2_order_independent() {
        let shuffled = "?pids=0,17,18,5100&fec=23&sr=22000&plts=on&mtype=8psk&msys=dvbs2&ro=0.35&pol=h&freq=11494&src=1";
        assert_eq!(spec(shuffled), spec(SAT_Q));
        assert_eq!(
            spec(shuffled).canonical_query(),
            spec(SAT_Q).canonical_query()
        );
    }

    #[test]
    fn checklist_3_freq_integer_and_fixed_point() {
        let base = "src=1&pol=h&msys=dvbs2&sr=22000";
        assert_eq!(
            spec(&format!("freq=11494&{base}")).tuning.frequency,
            11_494_000
        );
        assert_eq!(
            spec(&format!("freq=11494.5&{base}")).tuning.frequency,
            11_494_500
        );
        assert_eq!(
            spec(&format!("freq=11361.75&{base}")).tuning.frequency,
            11_361_750
        );
        assert_eq!(
            spec(&format!("freq=12603.5&{base}")).tuning.lnb_band(),
            Some(LnbBand::High)
        );
        // Satellite 22402 MHz is out of range.
        assert_eq!(
            err(&format!("freq=22402&{base}")).body().as_deref(),
            Some("Out-of-Range: freq")
        );
    }

    #[test]
    fn checklist_4_values_case_insensitive() {
        let upper = "?src=1&freq=11494&pol=H&ro=0.35&msys=DVBS2&mtype=8PSK&plts=ON&sr=22000&fec=23&pids=0,17,18,5100";
        assert_eq!(spec(upper), spec(SAT_Q));
        assert_eq!(
            spec("freq=474&msys=dvbc&mtype=QAM256&sr=6900")
                .tuning
                .modulation,
            Some(Modulation::Qam256)
        );
        // Names stay case-sensitive: an upper-case name is an unknown attribute.
        assert_eq!(
            err("FREQ=11494&pol=h&msys=dvbs2&sr=22000")
                .body()
                .as_deref(),
            Some("Out-of-Range: freq")
        );
    }

    #[test]
    fn checklist_5_empty_pairs_skipped() {
        let q = "?src=1&&freq=11494&pol=h&&ro=0.35&msys=dvbs2&mtype=8psk&plts=on&sr=22000&fec=23&pids=0,17,18,5100&";
        assert_eq!(spec(q), spec(SAT_Q));
        // An empty value counts as absent.
        assert_eq!(
            spec("src=1&fe=&freq=11494&pol=h&msys=dvbs2&sr=22000")
                .tuning
                .fe,
            None
        );
    }

    #[test]
    fn checklist_6_default_src() {
        let q = SAT_Q.replace("src=1&", "");
        assert_eq!(spec(&q).tuning.src, 1);
        assert_eq!(spec(&q).tuning, spec(SAT_Q).tuning);
        assert_eq!(spec(&q).canonical_query(), spec(SAT_Q).canonical_query());
    }

    #[test]
    fn checklist_7_bad_pid_entries() {
        for bad in ["0,8192", "0,-1", "0,abc", "0,17x", "all,0", "99999999999"] {
            let e =
                err(&format!("{SAT_Q}&foo=1").replace("pids=0,17,18,5100", &format!("pids={bad}")));
            assert_eq!(e.status(), 403, "{bad}");
            assert_eq!(e.body().as_deref(), Some("Out-of-Range: pids"), "{bad}");
        }
        let q = parse_query("addpids=8192");
        assert_eq!(
            q.map_err(|e| e.body()),
            Err(Some("Out-of-Range: addpids".to_owned()))
        );
    }

    #[test]
    fn checklist_8_values_outside_allowed_set() {
        for (from, to, attr) in [
            ("pol=h", "pol=x", "pol"),
            ("fec=23", "fec=99", "fec"),
            ("ro=0.35", "ro=0.5", "ro"),
        ] {
            let e = err(&SAT_Q.replace(from, to));
            assert_eq!(e.status(), 403);
            assert_eq!(e.reason_phrase(), "Forbidden");
            assert_eq!(e.body(), Some(format!("Out-of-Range: {attr}")));
        }
        // Several at once, in canonical order.
        let e = err(&SAT_Q.replace("fec=23", "fec=99").replace("pol=h", "pol=x"));
        assert_eq!(e.body().as_deref(), Some("Out-of-Range: pol fec"));
        // Values that exist but do not fit the delivery system.
        assert_eq!(
            err(&TER_Q.replace("64qam", "8psk")).body().as_deref(),
            Some("Out-of-Range: mtype")
        );
        assert_eq!(
            err(&TER_Q.replace("fec=23", "fec=910")).body().as_deref(),
            Some("Out-of-Range: fec")
        );
        assert_eq!(
            err(&TER_Q.replace("bw=8", "bw=9")).body().as_deref(),
            Some("Out-of-Range: bw")
        );
        assert_eq!(
            err("freq=11494&pol=h&msys=dvbs&mtype=8psk&sr=22000")
                .body()
                .as_deref(),
            Some("Out-of-Range: mtype")
        );
        if let QueryError::OutOfRange(v) = err(&SAT_Q.replace("pol=h", "pol=x")) {
            assert_eq!(
                v,
                vec![Violation {
                    attr: Attr::Pol,
                    reason: Reason::Malformed
                }]
            );
        } else {
            panic!("expected 403");
        }
    }

    #[test]
    fn checklist_9_msys_without_frontend() {
        let caps = Capabilities {
            systems: vec![DeliverySystem::DvbS, DeliverySystem::DvbS2],
            frontends: 2,
            satellite_sources: 4,
        };
        assert_eq!(spec(SAT_Q).tuning.check_capabilities(&caps), Ok(()));
        let e = spec(TER_Q)
            .tuning
            .check_capabilities(&caps)
            .expect_err("no DVB-T frontend");
        assert_eq!(e.status(), 403);
        assert_eq!(e.body().as_deref(), Some("Out-of-Range: msys"));
        let e = spec(&SAT_Q.replace("src=1", "src=5"))
            .tuning
            .check_capabilities(&caps)
            .expect_err("src 5");
        assert_eq!(e.body().as_deref(), Some("Out-of-Range: src"));
    }

    #[test]
    fn checklist_12_pids_replace() {
        let s = spec(SAT_Q);
        let (s2, change) = s
            .apply(&parse_query("pids=0,100").expect("q"), DEFAULT_MAX_PIDS)
            .expect("apply");
        assert_eq!(s2.pids, pids(&[0, 100]));
        assert_eq!(change, Change::Pids);
        assert_eq!(s2.tuning, s.tuning);
    }

    #[test]
    fn checklist_13_addpids_delpids() {
        let s = spec(SAT_Q);
        let (s2, c) = s
            .apply(&parse_query("addpids=5101").expect("q"), DEFAULT_MAX_PIDS)
            .expect("add");
        assert_eq!(
            (s2.pids.clone(), c),
            (pids(&[0, 17, 18, 5100, 5101]), Change::Pids)
        );
        let (s3, c) = s2
            .apply(&parse_query("delpids=17").expect("q"), DEFAULT_MAX_PIDS)
            .expect("del");
        assert_eq!(
            (s3.pids.clone(), c),
            (pids(&[0, 18, 5100, 5101]), Change::Pids)
        );
        // Deleting a PID that is not there changes nothing.
        let (_, c) = s3
            .apply(&parse_query("delpids=999").expect("q"), DEFAULT_MAX_PIDS)
            .expect("del");
        assert_eq!(c, Change::Unchanged);
    }

    #[test]
    fn checklist_14_addpids_and_delpids_together() {
        let s = spec(SAT_Q);
        let (s2, c) = s
            .apply(
                &parse_query("delpids=17,18&addpids=200,201").expect("q"),
                DEFAULT_MAX_PIDS,
            )
            .expect("apply");
        assert_eq!(s2.pids, pids(&[0, 200, 201, 5100]));
        assert_eq!(c, Change::Pids);
        // pids with add/del is tolerated, in TVH order: pids, then delpids, then addpids.
        let (s3, _) = s
            .apply(
                &parse_query("addpids=7&pids=1,2,7&delpids=2,7").expect("q"),
                DEFAULT_MAX_PIDS,
            )
            .expect("apply");
        assert_eq!(s3.pids, pids(&[1, 7]));
    }

    #[test]
    fn checklist_15_pids_all() {
        let s = spec(&SAT_Q.replace("pids=0,17,18,5100", "pids=all"));
        assert_eq!(s.pids, PidSet::All);
        assert!(s.pids.contains(0) && s.pids.contains(8191) && s.pids.contains(4242));
        assert!(!s.pids.contains(8192));
        assert_eq!(s.pids.to_string(), "all");
        assert_eq!(s.pids.to_dvbsrc_pids().as_deref(), Some("8192"));
        let mut all = PidSet::All;
        all.add(&[5].into_iter().collect());
        all.remove(&[5].into_iter().collect());
        assert_eq!(all, PidSet::All);
    }

    #[test]
    fn checklist_16_pids_none() {
        let s = spec(&SAT_Q.replace("pids=0,17,18,5100", "pids=none"));
        assert_eq!(s.pids, PidSet::None);
        assert!(!s.pids.contains(0));
        assert_eq!(s.pids.to_string(), "none");
        assert_eq!(s.pids.to_dvbsrc_pids(), None);
        // No pids attribute at all: no filters either (§2.8).
        assert_eq!(
            spec(&SAT_Q.replace("&pids=0,17,18,5100", "")).pids,
            PidSet::None
        );
        // Removing the last PID gives none.
        let (s2, _) = spec("freq=474&msys=dvbc&sr=6900&pids=5")
            .apply(&parse_query("delpids=5").expect("q"), DEFAULT_MAX_PIDS)
            .expect("apply");
        assert_eq!(s2.pids, PidSet::None);
        assert_eq!(PidSet::parse(""), Ok(PidSet::None));
    }

    #[test]
    fn checklist_50_fe_beyond_frontends() {
        let caps = Capabilities {
            systems: vec![DeliverySystem::DvbS2],
            frontends: 4,
            satellite_sources: 4,
        };
        assert_eq!(
            spec(&format!("{SAT_Q}&fe=4"))
                .tuning
                .check_capabilities(&caps),
            Ok(())
        );
        let e = spec(&format!("{SAT_Q}&fe=9"))
            .tuning
            .check_capabilities(&caps)
            .expect_err("fe 9");
        assert_eq!(e.body().as_deref(), Some("Out-of-Range: fe"));
        assert_eq!(
            err(&format!("{SAT_Q}&fe=0")).body().as_deref(),
            Some("Out-of-Range: fe")
        );
    }

    #[test]
    fn defaults_of_section_2_7() {
        // Real-world list without ro, plts, mtype, fec.
        let t = spec("?src=1&freq=11494&pol=h&msys=dvbs2&sr=22000&pids=0").tuning;
        assert_eq!(t.modulation, Some(Modulation::Psk8));
        assert_eq!((t.roll_off, t.pilots, t.code_rate), (None, None, None));
        let t = spec("?freq=12603&pol=h&msys=dvbs&sr=22000&ro=0.25&plts=on").tuning;
        assert_eq!(t.modulation, Some(Modulation::Qpsk));
        assert_eq!(
            (t.roll_off, t.pilots),
            (None, None),
            "ro/plts ignored for DVB-S"
        );
        let t = spec("?freq=538&msys=dvbt").tuning;
        assert_eq!(
            (
                t.modulation,
                t.bandwidth_hz,
                t.transmission_mode,
                t.guard_interval
            ),
            (None, None, None, None)
        );
        // Explicit auto differs from the default.
        assert_eq!(
            spec("?freq=11494&pol=h&msys=dvbs2&sr=22000&mtype=auto")
                .tuning
                .modulation,
            None
        );
        // Required values.
        assert_eq!(
            err("?freq=11494&msys=dvbs2&sr=22000").body().as_deref(),
            Some("Out-of-Range: pol")
        );
        assert_eq!(
            err("?freq=11494&pol=h&msys=dvbs2").body().as_deref(),
            Some("Out-of-Range: sr")
        );
        assert_eq!(
            err("?freq=11494&pol=h&sr=22000").body().as_deref(),
            Some("Out-of-Range: msys")
        );
        assert_eq!(
            err("?pids=0").body().as_deref(),
            Some("Out-of-Range: freq msys")
        );
        assert_eq!(
            err("?freq=474&msys=dvbc").body().as_deref(),
            Some("Out-of-Range: sr")
        );
        if let QueryError::OutOfRange(v) = err("?freq=11494&msys=dvbs2") {
            assert_eq!(
                v,
                vec![
                    Violation {
                        attr: Attr::Pol,
                        reason: Reason::Missing
                    },
                    Violation {
                        attr: Attr::Sr,
                        reason: Reason::Missing
                    }
                ]
            );
        } else {
            panic!("expected 403");
        }
    }

    #[test]
    fn extensions_of_section_2_6() {
        let t = spec("freq=11494&pol=v&msys=dvbs2&sr=27500&mtype=16apsk&fec=auto&plts=auto&ro=0.15&isi=5&plsm=gold&plsc=131070")
            .tuning;
        assert_eq!(t.modulation, Some(Modulation::Apsk16));
        assert_eq!(t.roll_off, Some(RollOff::R015));
        assert_eq!(t.roll_off.and_then(RollOff::dvbsrc_nick), None);
        assert_eq!((t.code_rate, t.pilots), (None, None));
        assert_eq!(
            (t.input_stream_id, t.pls_mode, t.pls_code),
            (Some(5), Some(PlsMode::Gold), Some(131_070))
        );
        assert_eq!(
            spec("freq=11494&pol=v&msys=dvbs2&sr=27500&plp=7")
                .tuning
                .stream_id(),
            Some(7)
        );
        assert_eq!(
            spec("freq=11494&pol=v&msys=dvbs2&sr=27500&fec=920")
                .tuning
                .code_rate,
            Some(CodeRate::R9_20)
        );
        assert_eq!(
            spec("freq=11494&pol=v&msys=dvbs2&sr=27500&ro=auto")
                .tuning
                .roll_off,
            None
        );
        for (q, m) in [
            ("atsc&mtype=8vsb", DeliverySystem::Atsc),
            ("isdbt", DeliverySystem::IsdbT),
            ("dvbcb&mtype=256qam", DeliverySystem::DvbCAnnexB),
        ] {
            let t = spec(&format!("freq=575&msys={q}")).tuning;
            assert_eq!(t.delivery_system, m);
            assert_eq!(t.frequency, 575_000_000);
        }
        assert_eq!(
            spec("freq=538&msys=dvbt&bw=8000000").tuning.bandwidth_hz,
            Some(8_000_000)
        );
        assert_eq!(
            spec("freq=538&msys=dvbt&bw=auto&tmode=auto&gi=auto&fec=auto&mtype=auto")
                .tuning
                .bandwidth_hz,
            None
        );
        assert_eq!(
            spec("freq=11494&pol=l&msys=dvbs2&sr=22000")
                .tuning
                .polarisation
                .map(Polarisation::dvbsrc_polarity),
            Some("H")
        );
    }

    #[test]
    fn addpids_only_on_running_stream() {
        let q = parse_query(&format!("{SAT_Q}&addpids=5").replace("&pids=0,17,18,5100", ""))
            .expect("q");
        let e = StreamSpec::create(&q, DEFAULT_MAX_PIDS).expect_err("addpids on new stream");
        assert_eq!(
            (e.status(), e.body().as_deref()),
            (400, Some("Check-Syntax: addpids"))
        );
        let q = parse_query(&format!("{SAT_Q}&delpids=5")).expect("q");
        assert_eq!(
            StreamSpec::create(&q, DEFAULT_MAX_PIDS).map_err(|e| e.body()),
            Err(Some("Check-Syntax: delpids".to_owned()))
        );
    }

    #[test]
    fn pid_limit_is_503() {
        let list: Vec<String> = (0..129).map(|p| p.to_string()).collect();
        let q = SAT_Q.replace("0,17,18,5100", &list.join(","));
        let e = err(&q);
        assert_eq!(
            (e.status(), e.body().as_deref()),
            (503, Some("No-More: pids"))
        );
        let s = spec(SAT_Q);
        let e = s
            .apply(&parse_query("addpids=1,2,3").expect("q"), 5)
            .expect_err("limit");
        assert_eq!(e, QueryError::NoMore(vec![Resource::Pids]));
        // `all` needs a single filter.
        assert!(StreamSpec::create(
            &parse_query(&SAT_Q.replace("0,17,18,5100", "all")).expect("q"),
            1
        )
        .is_ok());
    }

    #[test]
    fn apply_retune_and_merge() {
        let s = spec(SAT_Q);
        // Empty query (in-session SETUP without query) leaves everything unchanged.
        let (same, c) = s.apply(&Query::default(), DEFAULT_MAX_PIDS).expect("apply");
        assert_eq!((same.clone(), c), (s.clone(), Change::Unchanged));
        // A query with freq starts from scratch: fec, ro, plts from before are gone.
        let (s2, c) = s
            .apply(
                &parse_query("src=1&freq=12603&pol=h&msys=dvbs&sr=22000&pids=0,6300").expect("q"),
                DEFAULT_MAX_PIDS,
            )
            .expect("retune");
        assert_eq!(c, Change::Retune);
        assert_eq!(s2.tuning.code_rate, None);
        assert_eq!(s2.tuning.modulation, Some(Modulation::Qpsk));
        assert_eq!(s2.pids, pids(&[0, 6300]));
        assert_eq!(s2.tuning.lnb_band(), Some(LnbBand::High));
        // Without freq the query merges: only pol changes.
        let (s3, c) = s
            .apply(&parse_query("pol=v").expect("q"), DEFAULT_MAX_PIDS)
            .expect("merge");
        assert_eq!(c, Change::Retune);
        assert_eq!(s3.tuning.polarisation, Some(Polarisation::Vertical));
        assert_eq!(s3.tuning.code_rate, Some(CodeRate::R2_3));
        assert_eq!(s3.pids, s.pids);
        // Repeating the same tuning with other PIDs is a PID change only.
        let (_, c) = s
            .apply(
                &parse_query(&SAT_Q.replace("5100", "5200")).expect("q"),
                DEFAULT_MAX_PIDS,
            )
            .expect("same");
        assert_eq!(c, Change::Pids);
        // A bad merged result is refused and the caller keeps the old spec.
        let e = s
            .apply(&parse_query("msys=dvbt").expect("q"), DEFAULT_MAX_PIDS)
            .expect_err("sat freq as dvbt");
        assert_eq!(e.status(), 403);
    }

    #[test]
    fn canonical_query_round_trip() {
        assert_eq!(
            spec(SAT_Q).canonical_query(),
            "src=1&freq=11494&pol=h&ro=0.35&msys=dvbs2&mtype=8psk&plts=on&sr=22000&fec=23&pids=0,17,18,5100"
        );
        assert_eq!(
            spec(TER_Q).canonical_query(),
            "src=1&freq=538&msys=dvbt&mtype=64qam&fec=23&bw=8&tmode=8k&gi=14&pids=0,16,17,18"
        );
        for q in [
            SAT_Q,
            TER_Q,
            CAB_Q,
            C2_Q,
            "freq=11361.75&pol=r&msys=dvbs2&sr=27500&mtype=auto&isi=3&plsm=root&plsc=1&fe=2&src=3",
            "freq=191.5&bw=1.712&msys=dvbt2&tmode=32k&mtype=256qam&gi=1128&fec=35&plp=3&t2id=1&sm=0&pids=all",
            "freq=12603&pol=h&msys=dvbs&sr=22000&fec=56",
        ] {
            let s = spec(q);
            let again = spec(&s.canonical_query());
            assert_eq!(again.tuning, s.tuning, "{q}");
            assert_eq!(again.pids, s.pids, "{q}");
            assert_eq!(again.canonical_query(), s.canonical_query(), "{q}");
        }
    }
}
