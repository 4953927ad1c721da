//! RTSP authentication of publishers and readers (spec digest §6): Digest (RFC 2617, MD5, with
//! or without `qop=auth`) against `password_digest` (`MD5(user:dvb2ip:password)`), Basic
//! against either `password_digest` or a `dvb2ip hash-password` PBKDF2 hash.
//!
//! The challenge is `Digest realm="dvb2ip", nonce="<16 hex>"` (nothing before the nonce, as
//! live555 parses it), followed by `Basic realm="dvb2ip"` when a user of the mount has a PBKDF2
//! hash only. The response is verified with the header's `uri`, not the Request-URI. Nonces
//! live [`NONCE_LIFE`]; a right answer to an expired nonce gets `stale=true`.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine;

use super::config::{User, REALM};

/// How long a nonce is accepted after it was issued.
pub const NONCE_LIFE: Duration = Duration::from_secs(300);
/// Most nonces remembered (the oldest go first).
const MAX_NONCES: usize = 4096;

/// Why a request was not authenticated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// No or wrong credentials: 401 with a challenge (`stale`: the nonce expired, the answer
    /// was right).
    Unauthorized { stale: bool, why: String },
    /// Malformed `Authorization`: 400.
    BadRequest(String),
    /// Right credentials, but not from this address: 403.
    Forbidden(String),
}

/// Lower-case hex MD5 of `s` (of its bytes: a NUL from the network is data here, where
/// glib's string checksum panicked on it; found by the `publish_auth` fuzz target).
pub fn md5_hex(s: &str) -> String {
    gst::glib::compute_checksum_for_data(gst::glib::ChecksumType::Md5, s.as_bytes())
        .map(|g| g.to_string())
        .unwrap_or_default()
}

/// `MD5(user:dvb2ip:password)`, the value of `password_digest`.
pub fn digest_ha1(user: &str, password: &str) -> String {
    md5_hex(&format!("{user}:{REALM}:{password}"))
}

/// The directives of a `Digest …` header value (`None` when malformed).
fn digest_params(v: &str) -> Option<HashMap<String, String>> {
    let mut out = HashMap::new();
    let mut rest = v.trim();
    while !rest.is_empty() {
        let (key, after) = rest.split_once('=')?;
        let key = key.trim().to_ascii_lowercase();
        let after = after.trim_start();
        let (value, tail) = if let Some(q) = after.strip_prefix('"') {
            let mut val = String::new();
            let mut chars = q.char_indices();
            let mut end = None;
            while let Some((i, c)) = chars.next() {
                match c {
                    '\\' => {
                        if let Some((_, n)) = chars.next() {
                            val.push(n);
                        }
                    }
                    '"' => {
                        end = Some(i + 1);
                        break;
                    }
                    c => val.push(c),
                }
            }
            (val, &q[end?..])
        } else {
            let end = after.find(',').unwrap_or(after.len());
            (after[..end].trim().to_string(), &after[end..])
        };
        if key.is_empty() {
            return None;
        }
        out.insert(key, value);
        rest = tail.trim_start();
        rest = rest.strip_prefix(',').unwrap_or(rest).trim_start();
    }
    Some(out)
}

/// Issued nonces and verified Basic passwords.
#[derive(Default)]
pub struct Authenticator {
    nonces: Mutex<(HashMap<String, Instant>, std::collections::VecDeque<String>)>,
    /// `(user, hash, password)` checked against a PBKDF2 hash: each is derived once.
    basic_ok: Mutex<HashSet<(String, String, String)>>,
}

impl Authenticator {
    /// A new nonce, remembered for [`NONCE_LIFE`].
    pub fn nonce(&self) -> String {
        let mut b = [0u8; 8];
        let filled = std::fs::File::open("/dev/urandom")
            .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut b))
            .is_ok();
        if !filled {
            let r = gst::glib::random_int().to_be_bytes();
            let t = (Instant::now().elapsed().as_nanos() as u32 ^ std::process::id()).to_be_bytes();
            b[..4].copy_from_slice(&r);
            b[4..].copy_from_slice(&t);
        }
        let n: String = b.iter().map(|x| format!("{x:02x}")).collect();
        let mut g = self.nonces.lock().unwrap();
        let (map, order) = &mut *g;
        map.insert(n.clone(), Instant::now());
        order.push_back(n.clone());
        while order.len() > MAX_NONCES {
            if let Some(old) = order.pop_front() {
                map.remove(&old);
            }
        }
        n
    }

    /// The `WWW-Authenticate` values for `users` (Digest with a new nonce first).
    pub fn challenges(&self, users: &[User], stale: bool) -> Vec<String> {
        let mut out = Vec::new();
        if users.iter().any(|u| u.password_digest.is_some()) || users.is_empty() {
            out.push(format!(
                "Digest realm=\"{REALM}\", nonce=\"{}\"{}",
                self.nonce(),
                if stale { ", stale=true" } else { "" }
            ));
        }
        if users
            .iter()
            .any(|u| u.password_digest.is_none() && u.password_hash.is_some())
        {
            out.push(format!("Basic realm=\"{REALM}\""));
        }
        out
    }

    fn nonce_state(&self, nonce: &str) -> Option<bool> {
        let g = self.nonces.lock().unwrap();
        g.0.get(nonce).map(|at| at.elapsed() <= NONCE_LIFE)
    }

    /// Authenticates a request of `method` with `authorization` (the header, if any) from
    /// `peer` against `users`: the user name on success.
    pub fn check(
        &self,
        users: &[User],
        method: &str,
        authorization: Option<&str>,
        peer: Option<IpAddr>,
    ) -> Result<String, Refusal> {
        let Some(auth) = authorization.map(str::trim) else {
            return Err(Refusal::Unauthorized {
                stale: false,
                why: "no credentials".into(),
            });
        };
        let (scheme, rest) = auth.split_once(' ').unwrap_or((auth, ""));
        let user = if scheme.eq_ignore_ascii_case("Digest") {
            self.check_digest(users, method, rest)?
        } else if scheme.eq_ignore_ascii_case("Basic") {
            self.check_basic(users, rest.trim())?
        } else {
            return Err(Refusal::Unauthorized {
                stale: false,
                why: format!("unsupported scheme {scheme:?}"),
            });
        };
        let ranges = user.ranges();
        if !ranges.is_empty() && !peer.is_some_and(|ip| ranges.iter().any(|r| r.contains(ip))) {
            return Err(Refusal::Forbidden(format!(
                "user {:?} may not connect from {}",
                user.user,
                peer.map_or("an unknown address".to_string(), |p| p.to_string())
            )));
        }
        Ok(user.user.clone())
    }

    fn check_digest<'u>(
        &self,
        users: &'u [User],
        method: &str,
        rest: &str,
    ) -> Result<&'u User, Refusal> {
        let p = digest_params(rest)
            .ok_or_else(|| Refusal::BadRequest("malformed Digest credentials".into()))?;
        let get = |k: &str| {
            p.get(k)
                .map(String::as_str)
                .ok_or_else(|| Refusal::BadRequest(format!("Digest credentials without {k}")))
        };
        let (name, nonce, uri, response) = (
            get("username")?,
            get("nonce")?,
            get("uri")?,
            get("response")?,
        );
        if p.get("realm").is_some_and(|r| r != REALM) {
            return Err(Refusal::Unauthorized {
                stale: false,
                why: "wrong realm".into(),
            });
        }
        if let Some(a) = p.get("algorithm") {
            if !a.eq_ignore_ascii_case("MD5") && !a.eq_ignore_ascii_case("MD5-sess") {
                return Err(Refusal::Unauthorized {
                    stale: false,
                    why: format!("unsupported algorithm {a}"),
                });
            }
        }
        let wrong = || Refusal::Unauthorized {
            stale: false,
            why: format!("wrong Digest credentials for user {name:?}"),
        };
        let user = users
            .iter()
            .find(|u| u.user == name && u.password_digest.is_some())
            .ok_or_else(wrong)?;
        let mut ha1 = user
            .password_digest
            .as_deref()
            .unwrap_or_default()
            .to_ascii_lowercase();
        if p.get("algorithm")
            .is_some_and(|a| a.eq_ignore_ascii_case("MD5-sess"))
        {
            ha1 = md5_hex(&format!("{ha1}:{nonce}:{}", get("cnonce")?));
        }
        let ha2 = md5_hex(&format!("{method}:{uri}"));
        let expected = match p.get("qop").map(String::as_str) {
            Some(q) if q.eq_ignore_ascii_case("auth") => md5_hex(&format!(
                "{ha1}:{nonce}:{}:{}:auth:{ha2}",
                get("nc")?,
                get("cnonce")?
            )),
            Some(q) => {
                return Err(Refusal::BadRequest(format!("unsupported qop {q:?}")));
            }
            None => md5_hex(&format!("{ha1}:{nonce}:{ha2}")),
        };
        if !constant_eq(
            expected.as_bytes(),
            response.to_ascii_lowercase().as_bytes(),
        ) {
            return Err(wrong());
        }
        match self.nonce_state(nonce) {
            Some(true) => Ok(user),
            // Unknown (another run's) or expired nonce, right answer: retry with a new one.
            _ => Err(Refusal::Unauthorized {
                stale: true,
                why: "stale nonce".into(),
            }),
        }
    }

    fn check_basic<'u>(&self, users: &'u [User], b64: &str) -> Result<&'u User, Refusal> {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .ok_or_else(|| Refusal::BadRequest("malformed Basic credentials".into()))?;
        let (name, password) = decoded
            .split_once(':')
            .ok_or_else(|| Refusal::BadRequest("malformed Basic credentials".into()))?;
        let wrong = || Refusal::Unauthorized {
            stale: false,
            why: format!("wrong Basic credentials for user {name:?}"),
        };
        let user = users.iter().find(|u| u.user == name).ok_or_else(wrong)?;
        let ok = if let Some(d) = &user.password_digest {
            constant_eq(
                digest_ha1(name, password).as_bytes(),
                d.to_ascii_lowercase().as_bytes(),
            )
        } else if let Some(h) = &user.password_hash {
            let key = (name.to_string(), h.clone(), password.to_string());
            if self.basic_ok.lock().unwrap().contains(&key) {
                true
            } else if crate::ui::auth::verify_password(password, h) {
                let mut ok = self.basic_ok.lock().unwrap();
                if ok.len() > 256 {
                    ok.clear();
                }
                ok.insert(key);
                true
            } else {
                false
            }
        } else {
            false
        };
        if ok {
            Ok(user)
        } else {
            Err(wrong())
        }
    }
}

fn constant_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {

    #[test]
    fn md5_of_text_with_a_nul_is_its_bytes_md5() {
        assert_eq!(super::md5_hex(""), "d41d8cd98f00b204e9800998ecf8427e");
        assert_eq!(super::md5_hex("a\0b").len(), 32);
    }
    use super::*;

    fn alice() -> User {
        User {
            user: "alice".into(),
            password_digest: Some(digest_ha1("alice", "secret")),
            password_hash: None,
            from: vec![],
        }
    }

    #[test]
    fn the_digest_example_of_the_spec() {
        // Spec digest §6.2: alice / dvb2ip / secret.
        assert_eq!(
            digest_ha1("alice", "secret"),
            "53ed74b6481a7a8645bcacc010ce5554"
        );
        let a = Authenticator::default();
        let nonce = "3f2a9c1e7b4d8a60";
        a.nonces
            .lock()
            .unwrap()
            .0
            .insert(nonce.into(), Instant::now());
        let h = format!("username=\"alice\", realm=\"dvb2ip\", nonce=\"{nonce}\", uri=\"rtsp://192.0.2.10:8554/live/cam1\", response=\"3055759ec9322c8de52339ee331e1454\"");
        let users = [alice()];
        assert_eq!(
            a.check(&users, "ANNOUNCE", Some(&format!("Digest {h}")), None),
            Ok("alice".into())
        );
        // The same answer for another method is wrong.
        assert!(matches!(
            a.check(&users, "SETUP", Some(&format!("Digest {h}")), None),
            Err(Refusal::Unauthorized { stale: false, .. })
        ));
        // A right answer to a nonce never issued (or expired): stale.
        let other = h.replace(nonce, "0000000000000000");
        assert!(matches!(
            a.check(&users, "ANNOUNCE", Some(&format!("Digest {other}")), None),
            Err(Refusal::Unauthorized { .. })
        ));
        assert!(matches!(
            a.check(&users, "ANNOUNCE", Some("Digest username=\"alice"), None),
            Err(Refusal::BadRequest(_))
        ));
        assert!(matches!(
            a.check(&users, "ANNOUNCE", None, None),
            Err(Refusal::Unauthorized { .. })
        ));
    }

    #[test]
    fn qop_auth_basic_and_addresses() {
        let a = Authenticator::default();
        let nonce = a.nonce();
        let ha1 = digest_ha1("alice", "secret");
        let ha2 = md5_hex("RECORD:rtsp://h/live/x");
        let resp = md5_hex(&format!("{ha1}:{nonce}:00000001:abc:auth:{ha2}"));
        let h = format!("Digest username=\"alice\", realm=\"dvb2ip\", nonce=\"{nonce}\", uri=\"rtsp://h/live/x\", response=\"{resp}\", qop=\"auth\", nc=00000001, cnonce=\"abc\"");
        let mut users = vec![alice()];
        assert_eq!(
            a.check(&users, "RECORD", Some(&h), None),
            Ok("alice".into())
        );
        let basic = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode("alice:secret")
        );
        assert_eq!(
            a.check(&users, "ANNOUNCE", Some(&basic), None),
            Ok("alice".into())
        );
        users[0].from = vec!["10.0.0.0/8".into()];
        assert!(matches!(
            a.check(
                &users,
                "ANNOUNCE",
                Some(&basic),
                Some("127.0.0.1".parse().unwrap())
            ),
            Err(Refusal::Forbidden(_))
        ));
        assert!(a
            .check(
                &users,
                "ANNOUNCE",
                Some(&basic),
                Some("10.1.2.3".parse().unwrap())
            )
            .is_ok());
        // PBKDF2 hashes take Basic only.
        let hashed = User {
            user: "bob".into(),
            password_digest: None,
            password_hash: Some(crate::ui::auth::hash_with("pw", 10).unwrap()),
            from: vec![],
        };
        let basic = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode("bob:pw")
        );
        assert_eq!(
            a.check(
                std::slice::from_ref(&hashed),
                "ANNOUNCE",
                Some(&basic),
                None
            ),
            Ok("bob".into())
        );
        let ch = a.challenges(&[hashed], false);
        assert_eq!(ch, vec!["Basic realm=\"dvb2ip\"".to_string()]);
        let ch = a.challenges(&[alice()], true);
        assert!(ch[0].starts_with("Digest realm=\"dvb2ip\", nonce=\""));
        assert!(ch[0].ends_with(", stale=true"));
    }
}
