//! Query attribute names ([`Attr`]) and the errors a request can get ([`QueryError`]: 400
//! `Check-Syntax`, 403 `Out-of-Range`, 414, 503 `No-More`) with their RTSP/HTTP form (§2.9).

use super::*;

/// A query attribute this server knows. The declaration order is the canonical query order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Attr {
    Src,
    Fe,
    Freq,
    Pol,
    Ro,
    Msys,
    Mtype,
    Plts,
    Sr,
    Fec,
    Bw,
    Tmode,
    Gi,
    Plp,
    T2id,
    Sm,
    C2tft,
    Ds,
    Specinv,
    /// DVB-S2 input stream id (extension, §2.6).
    Isi,
    /// DVB-S2 PLS mode (extension).
    Plsm,
    /// DVB-S2 PLS code (extension).
    Plsc,
    Pids,
    Addpids,
    Delpids,
}

impl Attr {
    const ALL: [Attr; 25] = [
        Attr::Src,
        Attr::Fe,
        Attr::Freq,
        Attr::Pol,
        Attr::Ro,
        Attr::Msys,
        Attr::Mtype,
        Attr::Plts,
        Attr::Sr,
        Attr::Fec,
        Attr::Bw,
        Attr::Tmode,
        Attr::Gi,
        Attr::Plp,
        Attr::T2id,
        Attr::Sm,
        Attr::C2tft,
        Attr::Ds,
        Attr::Specinv,
        Attr::Isi,
        Attr::Plsm,
        Attr::Plsc,
        Attr::Pids,
        Attr::Addpids,
        Attr::Delpids,
    ];

    /// The attribute name as written in queries and error bodies.
    pub fn name(self) -> &'static str {
        match self {
            Attr::Src => "src",
            Attr::Fe => "fe",
            Attr::Freq => "freq",
            Attr::Pol => "pol",
            Attr::Ro => "ro",
            Attr::Msys => "msys",
            Attr::Mtype => "mtype",
            Attr::Plts => "plts",
            Attr::Sr => "sr",
            Attr::Fec => "fec",
            Attr::Bw => "bw",
            Attr::Tmode => "tmode",
            Attr::Gi => "gi",
            Attr::Plp => "plp",
            Attr::T2id => "t2id",
            Attr::Sm => "sm",
            Attr::C2tft => "c2tft",
            Attr::Ds => "ds",
            Attr::Specinv => "specinv",
            Attr::Isi => "isi",
            Attr::Plsm => "plsm",
            Attr::Plsc => "plsc",
            Attr::Pids => "pids",
            Attr::Addpids => "addpids",
            Attr::Delpids => "delpids",
        }
    }

    /// Look up an attribute by its (case-sensitive) name; `None` for unknown attributes, which
    /// callers ignore (§2.1). `x_pmt` and `tvhweight` (§2.6) are accepted that way too.
    pub fn from_name(name: &str) -> Option<Attr> {
        Attr::ALL.iter().copied().find(|a| a.name() == name)
    }
}

impl fmt::Display for Attr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Why a value was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// Required for this delivery system and not given (and no earlier value to keep).
    Missing,
    /// Not a value of the expected shape (not a number, unknown keyword, bad PID list).
    Malformed,
    /// A well-formed value outside the allowed range.
    OutOfRange,
    /// Well-formed, but not allowed for this delivery system (e.g. `mtype=8psk` with `dvbt`).
    NotAllowed,
    /// Valid per the spec but this server has no frontend for it (e.g. `msys` without tuner).
    Unsupported,
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Reason::Missing => "missing",
            Reason::Malformed => "malformed value",
            Reason::OutOfRange => "value out of range",
            Reason::NotAllowed => "value not allowed for this delivery system",
            Reason::Unsupported => "not supported by this server",
        })
    }
}

/// One refused attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Violation {
    pub attr: Attr,
    pub reason: Reason,
}

/// Why a request is syntactically wrong (400).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyntaxReason {
    /// A query token without `=`.
    MissingEquals,
    /// The same known attribute twice in one query.
    DuplicateAttribute,
    /// A `%` escape that is not two hex digits or decodes to invalid UTF-8.
    BadEscape,
    /// A path other than `/` or `/stream=<id>`.
    BadPath,
    /// `stream=` with something that is not a 16-bit decimal.
    BadStreamId,
    /// `addpids`/`delpids` in a query that creates a stream: they only modify a running one.
    AddDelOnNewStream,
}

/// A resource that ran out (503 `No-More:`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Resource {
    Sessions,
    Frontends,
    Pids,
}

impl Resource {
    pub fn name(self) -> &'static str {
        match self {
            Resource::Sessions => "sessions",
            Resource::Frontends => "frontends",
            Resource::Pids => "pids",
        }
    }
}

/// A refused SAT>IP request, with its RTSP/HTTP status and `text/parameters` body (§2.9).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QueryError {
    /// 400 Bad Request, body `Check-Syntax: <text>`.
    Syntax { reason: SyntaxReason, text: String },
    /// 403 Forbidden, body `Out-of-Range: <attr> <attr> ...` (sorted, deduplicated).
    OutOfRange(Vec<Violation>),
    /// 414 Request-URI Too Long, no body.
    UriTooLong { len: usize, max: usize },
    /// 503 Service Unavailable, body `No-More: <res> ...`.
    NoMore(Vec<Resource>),
    /// 503 Service Unavailable for a cause that is not a resource limit (a frontend that
    /// failed to open, say), body `Unavailable: <text>`. The digest defines only `No-More`
    /// bodies for 503; this one names the real cause instead of claiming a full resource.
    Unavailable(String),
}

impl QueryError {
    pub(super) fn syntax(reason: SyntaxReason, text: &str) -> QueryError {
        QueryError::Syntax {
            reason,
            text: sanitize_token(text),
        }
    }

    pub(super) fn out_of_range(mut v: Vec<Violation>) -> QueryError {
        v.sort_by_key(|x| x.attr);
        v.dedup_by_key(|x| x.attr);
        QueryError::OutOfRange(v)
    }

    /// Shorthand for a single 403 violation.
    pub fn violation(attr: Attr, reason: Reason) -> QueryError {
        QueryError::OutOfRange(vec![Violation { attr, reason }])
    }

    /// The RTSP (and HTTP) status code.
    pub fn status(&self) -> u16 {
        match self {
            QueryError::Syntax { .. } => 400,
            QueryError::OutOfRange(_) => 403,
            QueryError::UriTooLong { .. } => 414,
            QueryError::NoMore(_) | QueryError::Unavailable(_) => 503,
        }
    }

    /// The reason phrase for the status line.
    pub fn reason_phrase(&self) -> &'static str {
        match self {
            QueryError::Syntax { .. } => "Bad Request",
            QueryError::OutOfRange(_) => "Forbidden",
            QueryError::UriTooLong { .. } => "Request-URI Too Long",
            QueryError::NoMore(_) | QueryError::Unavailable(_) => "Service Unavailable",
        }
    }

    /// The `text/parameters` body, without trailing CRLF; `None` for 414.
    pub fn body(&self) -> Option<String> {
        match self {
            QueryError::Syntax { text, .. } => Some(format!("Check-Syntax: {text}")),
            QueryError::OutOfRange(v) => {
                let names: Vec<&str> = v.iter().map(|x| x.attr.name()).collect();
                Some(format!("Out-of-Range: {}", names.join(" ")))
            }
            QueryError::UriTooLong { .. } => None,
            QueryError::NoMore(r) => {
                let names: Vec<&str> = r.iter().map(|x| x.name()).collect();
                Some(format!("No-More: {}", names.join(" ")))
            }
            QueryError::Unavailable(text) => Some(format!("Unavailable: {}", sanitize_token(text))),
        }
    }

    /// A complete RTSP/1.0 error response (status line, CSeq if any, Content-Type and
    /// Content-Length when there is a body, empty line, body).
    pub fn to_rtsp_response(&self, cseq: Option<u32>) -> String {
        let mut s = format!("RTSP/1.0 {} {}\r\n", self.status(), self.reason_phrase());
        if let Some(c) = cseq {
            s.push_str(&format!("CSeq: {c}\r\n"));
        }
        match self.body() {
            Some(body) => {
                s.push_str(&format!(
                    "Content-Type: {ERROR_CONTENT_TYPE}\r\nContent-Length: {}\r\n\r\n{body}",
                    body.len()
                ));
            }
            None => s.push_str("\r\n"),
        }
        s
    }
}

impl fmt::Display for QueryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            QueryError::Syntax { reason, text } => write!(f, "syntax error ({reason:?}): {text}"),
            QueryError::OutOfRange(v) => {
                f.write_str("out of range:")?;
                for x in v {
                    write!(f, " {} ({})", x.attr, x.reason)?;
                }
                Ok(())
            }
            QueryError::UriTooLong { len, max } => write!(f, "URI too long ({len} > {max})"),
            QueryError::NoMore(r) => {
                f.write_str("no more:")?;
                for x in r {
                    write!(f, " {}", x.name())?;
                }
                Ok(())
            }
            QueryError::Unavailable(text) => write!(f, "unavailable: {text}"),
        }
    }
}

impl std::error::Error for QueryError {}

/// Make request text safe to echo in a body: printable ASCII only, at most 64 bytes.
fn sanitize_token(s: &str) -> String {
    s.chars()
        .take(64)
        .map(|c| {
            if c.is_ascii_graphic() || c == ' ' {
                c
            } else {
                '?'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::satip::test_util::*;

    #[test]
    fn checklist_11_error_body_headers() {
        // Byte-exact example of §2.9.
        let e = err("?src=1&freq=11494&pol=h&msys=dvbs2&sr=fast&fec=99");
        let expected = "RTSP/1.0 403 Forbidden\r\nCSeq: 12\r\nContent-Type: text/parameters\r\nContent-Length: 20\r\n\r\nOut-of-Range: sr fec";
        assert_eq!(e.to_rtsp_response(Some(12)), expected);
        let body = e.body().expect("403 has a body");
        assert_eq!(body.len(), 20);
        // 400 and 503 too.
        let e = parse_query("src=1&freq").expect_err("missing =");
        let r = e.to_rtsp_response(Some(3));
        assert!(r.starts_with(
            "RTSP/1.0 400 Bad Request\r\nCSeq: 3\r\nContent-Type: text/parameters\r\n"
        ));
        assert!(
            r.ends_with("Content-Length: 18\r\n\r\nCheck-Syntax: freq"),
            "{r}"
        );
        let e = QueryError::NoMore(vec![Resource::Frontends]);
        assert_eq!(
            e.to_rtsp_response(None),
            "RTSP/1.0 503 Service Unavailable\r\nContent-Type: text/parameters\r\nContent-Length: 18\r\n\r\nNo-More: frontends"
        );
        let e = QueryError::Unavailable("frontend\r\n failed".into());
        assert_eq!(e.status(), 503);
        assert_eq!(e.body().as_deref(), Some("Unavailable: frontend?? failed"));
        let e = QueryError::UriTooLong { len: 1, max: 0 };
        assert_eq!(
            e.to_rtsp_response(Some(1)),
            "RTSP/1.0 414 Request-URI Too Long\r\nCSeq: 1\r\n\r\n"
        );
    }
}
