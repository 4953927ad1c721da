//! Who may act (`[ui]`, src/ui/config.rs), checked by one middleware on every state-changing
//! request under `/api/` (POST, PUT, PATCH, DELETE: sessions, scans, recordings, relays):
//!
//! * **Cross-site requests are refused** (403) before anything else: a request whose `Origin`
//!   names another host than its `Host`, or whose `Sec-Fetch-Site` is `cross-site` or
//!   `same-site`. A request a browser sends (it has `Origin` or `Sec-Fetch-Site`) must also
//!   carry `X-Requested-With` or a JSON `Content-Type`, which a plain HTML form cannot set.
//! * **Administrator**: a loopback peer when `allow_loopback` (the default); otherwise HTTP
//!   Basic (any user name) with the password whose salted PBKDF2-HMAC-SHA256 hash is
//!   `admin_password_hash`. Without a hash, only loopback acts. A refusal is 401 with
//!   `WWW-Authenticate: Basic` (403 when no password is configured).

use std::net::IpAddr;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use sha2::Sha256;

use super::config::UiSection;
use crate::ssdp::description::ConnAddrs;

/// PBKDF2 iterations of new hashes (OWASP 2023 for PBKDF2-HMAC-SHA256).
pub const ITERATIONS: u32 = 600_000;

/// A parsed `pbkdf2-sha256$<iterations>$<salt>$<hash>` (salt and hash in unpadded base64).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasswordHash {
    pub iterations: u32,
    pub salt: Vec<u8>,
    pub hash: Vec<u8>,
}

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD_NO_PAD;

impl PasswordHash {
    pub fn parse(s: &str) -> Option<PasswordHash> {
        let mut p = s.split('$');
        if p.next()? != "pbkdf2-sha256" {
            return None;
        }
        let iterations: u32 = p.next()?.parse().ok().filter(|n| *n >= 1)?;
        let salt = B64.decode(p.next()?).ok().filter(|s| s.len() >= 8)?;
        let hash = B64.decode(p.next()?).ok().filter(|h| h.len() == 32)?;
        p.next().is_none().then_some(PasswordHash {
            iterations,
            salt,
            hash,
        })
    }
}

fn derive(password: &str, salt: &[u8], iterations: u32) -> [u8; 32] {
    let mut out = [0u8; 32];
    pbkdf2::pbkdf2_hmac::<Sha256>(password.as_bytes(), salt, iterations, &mut out);
    out
}

/// A new salted hash of `password` with `iterations` rounds.
pub fn hash_with(password: &str, iterations: u32) -> std::io::Result<String> {
    let mut salt = [0u8; 16];
    use std::io::Read;
    std::fs::File::open("/dev/urandom")?.read_exact(&mut salt)?;
    let hash = derive(password, &salt, iterations);
    Ok(format!(
        "pbkdf2-sha256${iterations}${}${}",
        B64.encode(salt),
        B64.encode(hash)
    ))
}

/// A new salted hash of `password` (what `dvb2ip hash-password` prints).
pub fn hash_password(password: &str) -> std::io::Result<String> {
    hash_with(password, ITERATIONS)
}

/// Whether `password` is the one `hash` was made from (compared in constant time).
pub fn verify_password(password: &str, hash: &str) -> bool {
    let Some(h) = PasswordHash::parse(hash) else {
        return false;
    };
    let got = derive(password, &h.salt, h.iterations);
    got.iter()
        .zip(h.hash.iter())
        .fold(0u8, |acc, (a, b)| acc | (a ^ b))
        == 0
}

/// The password of an `Authorization: Basic` value.
fn basic_password(value: &str) -> Option<String> {
    let (scheme, creds) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let raw = base64::engine::general_purpose::STANDARD
        .decode(creds.trim())
        .ok()?;
    let text = String::from_utf8(raw).ok()?;
    Some(text.split_once(':')?.1.to_owned())
}

/// The host[:port] of an `Origin` value (`None` for `null` or garbage).
fn origin_host(origin: &str) -> Option<&str> {
    let rest = origin.split_once("://")?.1;
    Some(rest.trim_end_matches('/'))
}

fn refuse(code: StatusCode, why: &str) -> Response {
    let mut r = (code, axum::Json(serde_json::json!({ "error": why }))).into_response();
    if code == StatusCode::UNAUTHORIZED {
        r.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            header::HeaderValue::from_static("Basic realm=\"dvb2ip\", charset=\"UTF-8\""),
        );
    }
    r
}

/// Why a state-changing request is refused, if it is (see the module documentation).
pub fn check(
    ui: &UiSection,
    peer: Option<IpAddr>,
    headers: &axum::http::HeaderMap,
) -> Option<Response> {
    let h = |n: &str| headers.get(n).and_then(|v| v.to_str().ok());
    let origin = h("origin");
    let fetch_site = h("sec-fetch-site");
    if let Some(site) = fetch_site {
        if site.eq_ignore_ascii_case("cross-site") || site.eq_ignore_ascii_case("same-site") {
            return Some(refuse(StatusCode::FORBIDDEN, "cross-site request refused"));
        }
    }
    if let Some(o) = origin {
        if origin_host(o).is_none_or(|oh| Some(oh) != h("host")) {
            return Some(refuse(StatusCode::FORBIDDEN, "cross-site request refused"));
        }
    }
    if origin.is_some() || fetch_site.is_some() {
        let json = h("content-type").is_some_and(|c| c.starts_with("application/json"));
        if !json && h("x-requested-with").is_none() {
            return Some(refuse(
                StatusCode::FORBIDDEN,
                "a browser's action needs X-Requested-With or a JSON body",
            ));
        }
    }
    if ui.allow_loopback && peer.is_some_and(|p| p.to_canonical().is_loopback()) {
        return None;
    }
    if ui.admin_password_hash.is_empty() {
        return Some(refuse(
            StatusCode::FORBIDDEN,
            "actions are allowed from this machine only: set [ui] admin_password_hash",
        ));
    }
    match h("authorization").and_then(basic_password) {
        Some(p) if verify_password(&p, &ui.admin_password_hash) => None,
        Some(_) => Some(refuse(StatusCode::UNAUTHORIZED, "wrong password")),
        None => Some(refuse(
            StatusCode::UNAUTHORIZED,
            "administrator password required",
        )),
    }
}

/// The middleware: state-changing requests under `/api/` need an administrator.
pub async fn guard(
    State(ui): State<std::sync::Arc<UiSection>>,
    req: Request,
    next: Next,
) -> Response {
    let acts = !matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    if acts && req.uri().path().starts_with("/api/") {
        let peer = req
            .extensions()
            .get::<ConnectInfo<ConnAddrs>>()
            .map(|ConnectInfo(c)| c.remote.ip());
        if let Some(r) = check(&ui, peer, req.headers()) {
            return r;
        }
    }
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderMap;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut m = HeaderMap::new();
        for (k, v) in pairs {
            m.insert(*k, v.parse().unwrap());
        }
        m
    }

    #[test]
    fn hashes_verify_and_reject() {
        let h = hash_with("secret", 1000).unwrap();
        assert!(h.starts_with("pbkdf2-sha256$1000$"), "{h}");
        assert!(verify_password("secret", &h));
        assert!(!verify_password("Secret", &h));
        assert!(!verify_password("secret", "garbage"));
        assert_ne!(h, hash_with("secret", 1000).unwrap(), "salted");
        // RFC 7914 §11 PBKDF2-HMAC-SHA256 vector.
        let v = derive("passwd", b"salt", 1);
        assert_eq!(v[..4], [0x55, 0xac, 0x04, 0x6e]);
    }

    #[test]
    fn loopback_password_and_cross_site() {
        let lo = Some("127.0.0.1".parse().unwrap());
        let far = Some("10.9.0.2".parse().unwrap());
        let open = UiSection::default();
        assert!(check(&open, lo, &headers(&[])).is_none());
        assert_eq!(check(&open, far, &headers(&[])).unwrap().status(), 403);
        let hash = hash_with("pw", 10).unwrap();
        let ui = UiSection {
            admin_password_hash: hash,
            allow_loopback: false,
        };
        assert_eq!(check(&ui, lo, &headers(&[])).unwrap().status(), 401);
        let good = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode("admin:pw")
        );
        let bad = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode("admin:nope")
        );
        assert!(check(&ui, far, &headers(&[("authorization", &good)])).is_none());
        assert_eq!(
            check(&ui, far, &headers(&[("authorization", &bad)]))
                .unwrap()
                .status(),
            401
        );
        let cross = headers(&[
            ("origin", "http://evil.example"),
            ("host", "127.0.0.1:8875"),
            ("x-requested-with", "x"),
        ]);
        assert_eq!(check(&open, lo, &cross).unwrap().status(), 403);
        let form = headers(&[
            ("origin", "http://127.0.0.1:8875"),
            ("host", "127.0.0.1:8875"),
        ]);
        assert_eq!(check(&open, lo, &form).unwrap().status(), 403);
        let same = headers(&[
            ("origin", "http://127.0.0.1:8875"),
            ("host", "127.0.0.1:8875"),
            ("x-requested-with", "dvb2ip"),
            ("sec-fetch-site", "same-origin"),
        ]);
        assert!(check(&open, lo, &same).is_none());
        let site = headers(&[("sec-fetch-site", "cross-site")]);
        assert_eq!(check(&open, lo, &site).unwrap().status(), 403);
    }
}
