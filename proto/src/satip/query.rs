//! A parsed query ([`Query`], [`parse_query`]) and a request target ([`parse_target`]).

use super::*;

/// Tuning attributes of one query, as given (all optional; `Choice::Auto` for explicit `auto`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TuningParams {
    pub src: Option<u8>,
    pub fe: Option<u16>,
    /// `freq` in kHz.
    pub freq_khz: Option<u32>,
    pub pol: Option<Polarisation>,
    pub ro: Option<Choice<RollOff>>,
    pub msys: Option<DeliverySystem>,
    pub mtype: Option<Choice<Modulation>>,
    pub plts: Option<Choice<Pilots>>,
    /// `sr` in kSym/s.
    pub sr: Option<u32>,
    pub fec: Option<Choice<CodeRate>>,
    /// `bw` in kHz.
    pub bw_khz: Option<Choice<u32>>,
    pub tmode: Option<Choice<TransmissionMode>>,
    pub gi: Option<Choice<GuardInterval>>,
    pub plp: Option<u8>,
    pub t2id: Option<u16>,
    pub sm: Option<SisoMiso>,
    pub c2tft: Option<u8>,
    pub ds: Option<u8>,
    pub specinv: Option<bool>,
    pub isi: Option<u8>,
    pub plsm: Option<PlsMode>,
    pub plsc: Option<u32>,
}

impl TuningParams {
    /// No tuning attribute at all (a PID-only or empty query).
    pub fn is_empty(&self) -> bool {
        *self == TuningParams::default()
    }

    /// Merge a newer query over these parameters. A query with `freq` starts from scratch
    /// ([MS]: "a query that contains freq= resets all tuning fields"); otherwise the given
    /// attributes replace the old ones one by one.
    pub fn merge(&self, newer: &TuningParams) -> TuningParams {
        if newer.freq_khz.is_some() {
            return newer.clone();
        }
        TuningParams {
            src: newer.src.or(self.src),
            fe: newer.fe.or(self.fe),
            freq_khz: self.freq_khz,
            pol: newer.pol.or(self.pol),
            ro: newer.ro.or(self.ro),
            msys: newer.msys.or(self.msys),
            mtype: newer.mtype.or(self.mtype),
            plts: newer.plts.or(self.plts),
            sr: newer.sr.or(self.sr),
            fec: newer.fec.or(self.fec),
            bw_khz: newer.bw_khz.or(self.bw_khz),
            tmode: newer.tmode.or(self.tmode),
            gi: newer.gi.or(self.gi),
            plp: newer.plp.or(self.plp),
            t2id: newer.t2id.or(self.t2id),
            sm: newer.sm.or(self.sm),
            c2tft: newer.c2tft.or(self.c2tft),
            ds: newer.ds.or(self.ds),
            specinv: newer.specinv.or(self.specinv),
            isi: newer.isi.or(self.isi),
            plsm: newer.plsm.or(self.plsm),
            plsc: newer.plsc.or(self.plsc),
        }
    }

    /// Apply defaults (§2.7) and check every value against the delivery system. All problems
    /// are reported together as one 403.
    pub fn resolve(&self) -> Result<Tuning, QueryError> {
        let mut bad: Vec<Violation> = Vec::new();
        let mut fail = |attr, reason| bad.push(Violation { attr, reason });

        let Some(msys) = self.msys else {
            fail(Attr::Msys, Reason::Missing);
            if self.freq_khz.is_none() {
                fail(Attr::Freq, Reason::Missing);
            }
            return Err(QueryError::out_of_range(bad));
        };
        let family = msys.family();
        let is_t2 = msys == DeliverySystem::DvbT2;
        let is_c2 = msys == DeliverySystem::DvbC2;
        let is_s2 = matches!(msys, DeliverySystem::DvbS2 | DeliverySystem::IsdbS);

        let mut t = Tuning {
            src: self.src.unwrap_or(1),
            fe: self.fe,
            ..Tuning::blank(msys, 0)
        };

        // Frequency, per family range, converted to dvbsrc units.
        match self.freq_khz {
            None => fail(Attr::Freq, Reason::Missing),
            Some(khz) => {
                let (lo, hi) = match family {
                    // IF (950..2150) or C/Ku-band transponder frequencies.
                    Family::Satellite => (950_000, 13_000_000),
                    Family::Terrestrial => (40_000, 1_000_000),
                    Family::Cable => (40_000, 1_218_000),
                };
                if khz < lo || khz > hi {
                    fail(Attr::Freq, Reason::OutOfRange);
                } else {
                    t.frequency = match family {
                        Family::Satellite => khz,
                        _ => khz.saturating_mul(1000),
                    };
                }
            }
        }

        // Modulation: default qpsk for dvbs, 8psk for dvbs2, else auto ([MS]).
        let mtype = match self.mtype {
            Some(c) => c.fixed(),
            None => match msys {
                DeliverySystem::DvbS | DeliverySystem::Dss => Some(Modulation::Qpsk),
                DeliverySystem::DvbS2 => Some(Modulation::Psk8),
                _ => None,
            },
        };
        if let Some(m) = mtype {
            if !is_c2 {
                if m.allowed_for(msys) {
                    t.modulation = Some(m);
                } else {
                    fail(Attr::Mtype, Reason::NotAllowed);
                }
            }
        }

        if let Some(c) = self.fec.and_then(Choice::fixed) {
            if family != Family::Cable {
                if c.allowed_for(family) {
                    t.code_rate = Some(c);
                } else {
                    fail(Attr::Fec, Reason::NotAllowed);
                }
            }
        }

        match family {
            Family::Satellite => {
                match self.pol {
                    Some(p) => t.polarisation = Some(p),
                    None => fail(Attr::Pol, Reason::Missing),
                }
                match self.sr {
                    None => fail(Attr::Sr, Reason::Missing),
                    Some(sr) if !(100..=100_000).contains(&sr) => {
                        fail(Attr::Sr, Reason::OutOfRange)
                    }
                    Some(sr) => t.symbol_rate = Some(sr),
                }
                if is_s2 {
                    // `ro` and `plts` are DVB-S2 only; with dvbs they are accepted and ignored.
                    t.roll_off = self.ro.and_then(Choice::fixed);
                    t.pilots = self.plts.and_then(Choice::fixed);
                    // [MS] accepts `plp` as an alias of `isi`.
                    t.input_stream_id = self.isi.or(self.plp);
                    t.pls_mode = self.plsm;
                    t.pls_code = self.plsc;
                }
            }
            Family::Terrestrial => {
                if let Some(bw) = self.bw_khz.and_then(Choice::fixed) {
                    if [1712, 5000, 6000, 7000, 8000, 10_000].contains(&bw) {
                        t.bandwidth_hz = Some(bw.saturating_mul(1000));
                    } else {
                        fail(Attr::Bw, Reason::NotAllowed);
                    }
                }
                t.transmission_mode = self.tmode.and_then(Choice::fixed);
                t.guard_interval = self.gi.and_then(Choice::fixed);
                if is_t2 {
                    t.plp = self.plp;
                    t.t2_system_id = self.t2id;
                    t.siso_miso = self.sm;
                }
            }
            Family::Cable => {
                if let Some(bw) = self.bw_khz.and_then(Choice::fixed) {
                    let allowed: &[u32] = if is_c2 {
                        &[6000, 8000]
                    } else {
                        &[6000, 7000, 8000]
                    };
                    if allowed.contains(&bw) {
                        t.bandwidth_hz = Some(bw.saturating_mul(1000));
                    } else {
                        fail(Attr::Bw, Reason::NotAllowed);
                    }
                }
                if is_c2 {
                    t.c2_tuning_type = self.c2tft;
                    t.data_slice = self.ds;
                    t.plp = self.plp;
                } else {
                    match self.sr {
                        None if msys == DeliverySystem::DvbC => fail(Attr::Sr, Reason::Missing),
                        None => {}
                        Some(sr) if !(1000..=7200).contains(&sr) => {
                            fail(Attr::Sr, Reason::OutOfRange)
                        }
                        Some(sr) => t.symbol_rate = Some(sr),
                    }
                    t.spectral_inversion = self.specinv;
                }
            }
        }

        if bad.is_empty() {
            Ok(t)
        } else {
            Err(QueryError::out_of_range(bad))
        }
    }
}

/// A parsed query: tuning attributes plus PID operations.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Query {
    pub tuning: TuningParams,
    /// `pids=`: replaces the set.
    pub pids: Option<PidSet>,
    /// `addpids=`.
    pub addpids: Option<BTreeSet<u16>>,
    /// `delpids=`.
    pub delpids: Option<BTreeSet<u16>>,
}

impl Query {
    /// No known attribute at all.
    pub fn is_empty(&self) -> bool {
        *self == Query::default()
    }

    /// Whether the query touches the PID set.
    pub fn has_pid_change(&self) -> bool {
        self.pids.is_some() || self.addpids.is_some() || self.delpids.is_some()
    }

    fn set(&mut self, attr: Attr, v: &str) -> Result<(), Reason> {
        fn num<T: TryFrom<u64>>(v: &str, lo: u64, hi: u64) -> Result<T, Reason> {
            let n = parse_uint(v).ok_or(Reason::Malformed)?;
            if n < lo || n > hi {
                return Err(Reason::OutOfRange);
            }
            T::try_from(n).map_err(|_| Reason::OutOfRange)
        }
        fn auto<T>(v: &str, f: impl Fn(&str) -> Option<T>) -> Result<Choice<T>, Reason> {
            if v == "auto" {
                Ok(Choice::Auto)
            } else {
                f(v).map(Choice::Fixed).ok_or(Reason::Malformed)
            }
        }
        let p = &mut self.tuning;
        match attr {
            Attr::Src => p.src = Some(num(v, 1, 255)?),
            Attr::Fe => p.fe = Some(num(v, 1, 65535)?),
            Attr::Freq => {
                let khz = parse_milli(v).ok_or(Reason::Malformed)?;
                if khz == 0 {
                    return Err(Reason::OutOfRange);
                }
                p.freq_khz = Some(u32::try_from(khz).map_err(|_| Reason::OutOfRange)?);
            }
            Attr::Pol => p.pol = Some(Polarisation::from_query_name(v).ok_or(Reason::Malformed)?),
            Attr::Ro => p.ro = Some(auto(v, RollOff::from_query_name)?),
            Attr::Msys => {
                p.msys = Some(DeliverySystem::from_query_name(v).ok_or(Reason::Malformed)?)
            }
            Attr::Mtype => p.mtype = Some(auto(v, Modulation::from_query_name)?),
            Attr::Plts => {
                p.plts = Some(auto(v, |s| match s {
                    "on" => Some(Pilots::On),
                    "off" => Some(Pilots::Off),
                    _ => None,
                })?)
            }
            Attr::Sr => p.sr = Some(num(v, 1, 1_000_000)?),
            Attr::Fec => p.fec = Some(auto(v, CodeRate::from_query_name)?),
            Attr::Bw => {
                p.bw_khz = Some(if v == "auto" {
                    Choice::Auto
                } else {
                    let milli = parse_milli(v).ok_or(Reason::Malformed)?;
                    // `bw=8000000` ([MS]): a plain integer of 1000 or more is Hz.
                    let khz = if !v.contains('.') && milli >= 1_000_000 {
                        milli / 1_000_000
                    } else {
                        milli
                    };
                    Choice::Fixed(u32::try_from(khz).map_err(|_| Reason::OutOfRange)?)
                })
            }
            Attr::Tmode => p.tmode = Some(auto(v, TransmissionMode::from_query_name)?),
            Attr::Gi => p.gi = Some(auto(v, GuardInterval::from_query_name)?),
            Attr::Plp => p.plp = Some(num(v, 0, 255)?),
            Attr::T2id => p.t2id = Some(num(v, 0, 65535)?),
            Attr::Sm => {
                p.sm = Some(match v {
                    "0" => SisoMiso::Siso,
                    "1" => SisoMiso::Miso,
                    _ => return Err(Reason::Malformed),
                })
            }
            Attr::C2tft => p.c2tft = Some(num(v, 0, 2)?),
            Attr::Ds => p.ds = Some(num(v, 0, 255)?),
            Attr::Specinv => p.specinv = Some(num::<u8>(v, 0, 1)? == 1),
            Attr::Isi => p.isi = Some(num(v, 0, 255)?),
            Attr::Plsm => {
                p.plsm = Some(match v {
                    "root" => PlsMode::Root,
                    "gold" => PlsMode::Gold,
                    "combo" => PlsMode::Combo,
                    _ => return Err(Reason::Malformed),
                })
            }
            Attr::Plsc => p.plsc = Some(num(v, 0, 262_143)?),
            Attr::Pids => self.pids = Some(PidSet::parse(v)?),
            Attr::Addpids => self.addpids = Some(parse_pid_list(v)?),
            Attr::Delpids => self.delpids = Some(parse_pid_list(v)?),
        }
        Ok(())
    }
}

/// Parse a SAT>IP query (with or without the leading `?`).
///
/// Names are case-sensitive, values case-insensitive; empty pairs and unknown attributes are
/// skipped; an empty value counts as absent except `pids=` (= none). Errors: 414 beyond
/// [`MAX_QUERY_LEN`]; 400 for a token without `=`, a duplicated known attribute or a bad `%`
/// escape; 403 naming every attribute whose value is not understood.
pub fn parse_query(query: &str) -> Result<Query, QueryError> {
    let query = query.strip_prefix('?').unwrap_or(query);
    if query.len() > MAX_QUERY_LEN {
        return Err(QueryError::UriTooLong {
            len: query.len(),
            max: MAX_QUERY_LEN,
        });
    }
    let mut q = Query::default();
    let mut seen = BTreeSet::new();
    let mut bad = Vec::new();
    for token in query.split('&') {
        if token.is_empty() {
            continue;
        }
        let Some((raw_name, raw_value)) = token.split_once('=') else {
            return Err(QueryError::syntax(SyntaxReason::MissingEquals, token));
        };
        let name = percent_decode(raw_name)
            .ok_or_else(|| QueryError::syntax(SyntaxReason::BadEscape, token))?;
        let Some(attr) = Attr::from_name(&name) else {
            continue;
        };
        if !seen.insert(attr) {
            return Err(QueryError::syntax(SyntaxReason::DuplicateAttribute, &name));
        }
        let value = percent_decode(raw_value)
            .ok_or_else(|| QueryError::syntax(SyntaxReason::BadEscape, token))?
            .to_ascii_lowercase();
        if value.is_empty() && attr != Attr::Pids {
            continue;
        }
        if let Err(reason) = q.set(attr, &value) {
            bad.push(Violation { attr, reason });
        }
    }
    if bad.is_empty() {
        Ok(q)
    } else {
        Err(QueryError::out_of_range(bad))
    }
}

/// What a request URI addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// `Some(id)` for `/stream=<id>`, `None` for the server root (`/`, `*`, empty path).
    pub stream: Option<u16>,
    /// The parsed query (`Query::default()` when there is none).
    pub query: Query,
    /// Whether the URI had a non-empty query part.
    pub has_query: bool,
}

/// Parse an RTSP/HTTP request URI (`rtsp://host[:port]/stream=3?query`, `/?query`, `*`).
///
/// Only `/` and `/stream=<u16>` (optionally with a trailing `/`) are valid paths; anything else
/// is 400 with the offending attribute text (`/strem=1` → `Check-Syntax: strem`).
pub fn parse_target(uri: &str) -> Result<Target, QueryError> {
    let absolute = !uri.starts_with(['/', '*']);
    let rest = match uri.find("://").filter(|_| absolute) {
        Some(i) => {
            let after = uri.get(i + 3..).unwrap_or("");
            match after.find(['/', '?']) {
                Some(j) => after.get(j..).unwrap_or(""),
                None => "",
            }
        }
        None => uri,
    };
    let (path, query) = match rest.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (rest, None),
    };
    let stream = match path {
        "" | "/" | "*" => None,
        _ => {
            let seg = path.strip_prefix('/').unwrap_or(path);
            let seg = seg.strip_suffix('/').unwrap_or(seg);
            match seg.split_once('=') {
                Some(("stream", id)) => match parse_uint(id).and_then(|n| u16::try_from(n).ok()) {
                    Some(n) => Some(n),
                    None => return Err(QueryError::syntax(SyntaxReason::BadStreamId, seg)),
                },
                Some((name, _)) => return Err(QueryError::syntax(SyntaxReason::BadPath, name)),
                None => return Err(QueryError::syntax(SyntaxReason::BadPath, seg)),
            }
        }
    };
    let has_query = query.is_some_and(|q| !q.is_empty());
    let query = match query {
        Some(q) => parse_query(q)?,
        None => Query::default(),
    };
    Ok(Target {
        stream,
        query,
        has_query,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::satip::test_util::*;

    #[test]
    fn checklist_10_malformed_path() {
        let e = parse_target("rtsp://10.0.0.5/strem=1").expect_err("bad path");
        assert_eq!(e.status(), 400);
        assert_eq!(e.reason_phrase(), "Bad Request");
        assert_eq!(e.body().as_deref(), Some("Check-Syntax: strem"));
        assert_eq!(
            parse_target("/stream=abc").map_err(|e| e.status()),
            Err(400)
        );
        assert_eq!(
            parse_target("/stream=70000").map_err(|e| e.status()),
            Err(400)
        );
        assert_eq!(parse_target("/foo/bar").map_err(|e| e.status()), Err(400));
    }

    #[test]
    fn syntax_errors_and_limits() {
        let e = parse_query("src=1&src=2").expect_err("duplicate");
        assert_eq!(
            (e.status(), e.body().as_deref()),
            (400, Some("Check-Syntax: src"))
        );
        // Duplicated unknown attributes are just ignored.
        assert!(parse_query("foo=1&foo=2").is_ok());
        let e = parse_query("pids=0%ZZ").expect_err("bad escape");
        assert_eq!(e.status(), 400);
        let long = format!("pids={}", "1,".repeat(MAX_QUERY_LEN));
        assert_eq!(parse_query(&long).map_err(|e| e.status()), Err(414));
        // Control characters are not echoed in bodies.
        let e = parse_query("a\r\nb").expect_err("missing =");
        assert_eq!(e.body().as_deref(), Some("Check-Syntax: a??b"));
        // Percent-encoded commas.
        assert_eq!(
            parse_query("pids=0%2C17").expect("q").pids,
            Some(pids(&[0, 17]))
        );
    }

    #[test]
    fn targets() {
        let t = parse_target("rtsp://10.0.0.5:554/stream=3?addpids=18").expect("target");
        assert_eq!(t.stream, Some(3));
        assert!(t.has_query);
        assert_eq!(t.query.addpids, Some([18].into_iter().collect()));
        let t = parse_target(&format!("rtsp://10.0.0.5:554/{SAT_Q}")).expect("target");
        assert_eq!((t.stream, t.has_query), (None, true));
        assert_eq!(
            spec(SAT_Q).tuning,
            t.query.tuning.resolve().expect("resolve")
        );
        for root in ["*", "/", "rtsp://10.0.0.5", "rtsp://10.0.0.5:554/", ""] {
            let t = parse_target(root).expect(root);
            assert_eq!((t.stream, t.has_query), (None, false), "{root}");
        }
        assert_eq!(
            parse_target("/stream=4/").expect("trailing slash").stream,
            Some(4)
        );
        let t = parse_target("/stream=5?foo=http://x/y&pids=1").expect("scheme-like text in query");
        assert_eq!((t.stream, t.query.pids), (Some(5), Some(pids(&[1]))));
        assert_eq!(
            parse_target("http://10.0.0.5:8080/?freq=538&msys=dvbt")
                .expect("http")
                .stream,
            None
        );
    }
}
