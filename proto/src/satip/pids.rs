//! PID sets: `pids=`, `addpids=`, `delpids=`, `all` and `none` (§2.4, §3.5).

use super::*;

/// A stream's PID filter set (§2.8).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub enum PidSet {
    /// `pids=all`: the full multiplex.
    All,
    /// `pids=none`, or no `pids` at all: no filters, only empty RTP packets.
    #[default]
    None,
    /// An explicit list; kept non-empty by the methods here (empty becomes [`PidSet::None`]).
    Set(BTreeSet<u16>),
}

impl PidSet {
    /// Parse a `pids` value: `all`, `none`, or a CSV of 0..8191 (empty elements skipped, an
    /// empty value means `none`).
    pub fn parse(value: &str) -> Result<PidSet, Reason> {
        let v = value.trim().to_ascii_lowercase();
        match v.as_str() {
            "all" => Ok(PidSet::All),
            "none" | "" => Ok(PidSet::None),
            _ => Ok(PidSet::from_pids(parse_pid_list(&v)?)),
        }
    }

    /// A set from explicit PIDs (empty → `None`).
    pub fn from_pids<I: IntoIterator<Item = u16>>(pids: I) -> PidSet {
        PidSet::Set(pids.into_iter().collect()).normalised()
    }

    fn normalised(self) -> PidSet {
        match self {
            PidSet::Set(s) if s.is_empty() => PidSet::None,
            other => other,
        }
    }

    /// `addpids`: `All` stays `All`.
    pub fn add(&mut self, pids: &BTreeSet<u16>) {
        let next = match std::mem::take(self) {
            PidSet::All => PidSet::All,
            PidSet::None => PidSet::Set(pids.clone()),
            PidSet::Set(mut s) => {
                s.extend(pids.iter().copied());
                PidSet::Set(s)
            }
        };
        *self = next.normalised();
    }

    /// `delpids`: removing from `All` leaves `All` (there is no "all but" set); use `pids=`.
    pub fn remove(&mut self, pids: &BTreeSet<u16>) {
        let next = match std::mem::take(self) {
            PidSet::All => PidSet::All,
            PidSet::None => PidSet::None,
            PidSet::Set(mut s) => {
                s.retain(|p| !pids.contains(p));
                PidSet::Set(s)
            }
        };
        *self = next.normalised();
    }

    /// Whether a packet with this PID belongs to the stream.
    pub fn contains(&self, pid: u16) -> bool {
        match self {
            PidSet::All => pid <= MAX_PID,
            PidSet::None => false,
            PidSet::Set(s) => s.contains(&pid),
        }
    }

    /// Number of filters (`All` counts as one, as it needs a single demux filter).
    pub fn filter_count(&self) -> usize {
        match self {
            PidSet::All => 1,
            PidSet::None => 0,
            PidSet::Set(s) => s.len(),
        }
    }

    /// dvbsrc `pids` property value: colon-separated, `8192` for all, `None` for no PIDs.
    pub fn to_dvbsrc_pids(&self) -> Option<String> {
        match self {
            PidSet::All => Some("8192".to_owned()),
            PidSet::None => None,
            PidSet::Set(s) if s.is_empty() => None,
            PidSet::Set(s) => Some(s.iter().map(u16::to_string).collect::<Vec<_>>().join(":")),
        }
    }
}

/// Status-string form: `all`, `none` or `0,17,18` (ascending).
impl fmt::Display for PidSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PidSet::All => f.write_str("all"),
            PidSet::None => f.write_str("none"),
            PidSet::Set(s) if s.is_empty() => f.write_str("none"),
            PidSet::Set(s) => {
                let mut first = true;
                for p in s {
                    if !first {
                        f.write_str(",")?;
                    }
                    first = false;
                    write!(f, "{p}")?;
                }
                Ok(())
            }
        }
    }
}

/// CSV of PIDs 0..8191; empty elements skipped; anything else (8192, `-1`, `abc`) is refused.
pub(super) fn parse_pid_list(v: &str) -> Result<BTreeSet<u16>, Reason> {
    let mut out = BTreeSet::new();
    for item in v.split(',') {
        let item = item.trim();
        if item.is_empty() {
            continue;
        }
        let n = parse_uint(item).ok_or(Reason::Malformed)?;
        if n > u64::from(MAX_PID) {
            return Err(Reason::OutOfRange);
        }
        out.insert(n as u16);
    }
    Ok(out)
}
