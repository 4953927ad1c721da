//! `[[publish]]` and `[[push]]` (issue 14 item 2).
//!
//! ```toml
//! [[publish]]
//! name = "cam1"                                   # mounted at /live/cam1
//! # mount = "/live/cam1"                          # the default; must lie under /live/
//! [[publish.publisher]]
//! user = "alice"
//! password_digest = "53ed74b6481a7a8645bcacc010ce5554"   # MD5("alice:dvb2ip:secret"): RTSP Digest
//! # password_hash = "pbkdf2-sha256$…"             # `dvb2ip hash-password`: RTSP Basic only
//! # from = ["127.0.0.1", "192.0.2.0/24"]          # addresses allowed to publish (default: any)
//! [[publish.reader]]                              # none: anyone may PLAY the mount
//! user = "bob"
//! password_digest = "…"
//!
//! [[push]]
//! name = "news-out"
//! source = "/ch/news"                             # a mount of this server (channel, relay, live)
//! target = "rtsp://alice:secret@edge.lan:8554/live/news"
//! ```
//!
//! Only listed mounts take publishers, only listed users publish (nothing listed: nobody). A
//! bad value is a configuration error naming the file and line.

use std::net::IpAddr;

use serde::Deserialize;

/// Publish mounts lie under this prefix.
pub const LIVE_PREFIX: &str = "/live/";

/// The Digest realm; `password_digest` is `MD5(user ":" REALM ":" password)`.
pub const REALM: &str = "dvb2ip";

/// One user of a mount (publisher or reader).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct User {
    pub user: String,
    /// `MD5(user:dvb2ip:password)` in hex: the user may authenticate with Digest (and Basic).
    #[serde(default)]
    pub password_digest: Option<String>,
    /// A `dvb2ip hash-password` hash: the user may authenticate with Basic.
    #[serde(default)]
    pub password_hash: Option<String>,
    /// Addresses or CIDR ranges the user may connect from (empty: any).
    #[serde(default)]
    pub from: Vec<String>,
}

/// One `[[publish]]` entry.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PublishSection {
    pub name: String,
    /// Default `/live/<name>`.
    #[serde(default)]
    pub mount: Option<String>,
    #[serde(default)]
    pub publisher: Vec<User>,
    /// Read credentials; none: anyone may read.
    #[serde(default)]
    pub reader: Vec<User>,
}

/// One `[[push]]` entry.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PushSection {
    pub name: String,
    /// A mount of this server (`/ch/<name>`, `/relay/<name>`, `/live/<name>`).
    pub source: String,
    /// `rtsp://[user:password@]host[:port]/path` of the other server.
    pub target: String,
}

/// An address range of `from`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    pub addr: IpAddr,
    pub prefix: u8,
}

impl Cidr {
    pub fn parse(s: &str) -> Result<Cidr, String> {
        let (a, p) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = a
            .trim()
            .parse()
            .map_err(|_| format!("{s:?} is not an address or CIDR range"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match p {
            Some(p) => p
                .trim()
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("{s:?}: prefix length must be 0 to {max}"))?,
            None => max,
        };
        Ok(Cidr { addr, prefix })
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match (self.addr, ip) {
            (IpAddr::V4(_), IpAddr::V6(v6)) => match v6.to_ipv4_mapped() {
                Some(v4) => IpAddr::V4(v4),
                None => return false,
            },
            _ => ip,
        };
        match (self.addr, ip) {
            (IpAddr::V4(a), IpAddr::V4(b)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(a) & mask == u32::from(b) & mask
            }
            (IpAddr::V6(a), IpAddr::V6(b)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(a) & mask == u128::from(b) & mask
            }
            _ => false,
        }
    }
}

impl User {
    /// The parsed `from` ranges.
    pub fn ranges(&self) -> Vec<Cidr> {
        self.from
            .iter()
            .filter_map(|s| Cidr::parse(s).ok())
            .collect()
    }

    fn check(&self, what: &str) -> Result<(), (&'static str, String)> {
        let u = &self.user;
        if u.is_empty() || u.contains([':', '"', '\\']) || u.chars().any(char::is_control) {
            return Err((
                "user",
                format!("{what} user {u:?} must be non-empty, without ':', '\"' or '\\'"),
            ));
        }
        match (&self.password_digest, &self.password_hash) {
            (None, None) => {
                return Err((
                    "user",
                    format!("{what} user {u:?} needs password_digest or password_hash"),
                ))
            }
            (Some(d), _) if d.len() != 32 || !d.chars().all(|c| c.is_ascii_hexdigit()) => {
                return Err((
                    "password_digest",
                    format!(
                        "{what} user {u:?}: password_digest must be 32 hex digits, MD5(\"{u}:{REALM}:<password>\")"
                    ),
                ))
            }
            (_, Some(h)) if crate::ui::auth::PasswordHash::parse(h).is_none() => {
                return Err((
                    "password_hash",
                    format!(
                        "{what} user {u:?}: password_hash is not a `dvb2ip hash-password` hash (pbkdf2-sha256$…)"
                    ),
                ))
            }
            _ => {}
        }
        for f in &self.from {
            Cidr::parse(f).map_err(|e| ("from", format!("{what} user {u:?}: from: {e}")))?;
        }
        Ok(())
    }
}

fn valid_name(n: &str) -> bool {
    !n.is_empty()
        && n.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
}

impl PublishSection {
    /// The mount path (`/live/<name>` unless configured).
    pub fn mount_path(&self) -> String {
        self.mount
            .clone()
            .unwrap_or_else(|| format!("{LIVE_PREFIX}{}", self.name))
    }

    fn check(&self) -> Result<(), (&'static str, String)> {
        let n = &self.name;
        if !valid_name(n) {
            return Err((
                "name",
                format!("publish name {n:?} must be letters, digits, '-', '_' or '.'"),
            ));
        }
        let mount = self.mount_path();
        let rest = mount.strip_prefix(LIVE_PREFIX).unwrap_or("");
        if rest.is_empty()
            || !rest
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_./".contains(c))
            || rest
                .split('/')
                .any(|s| s.is_empty() || s == "." || s == ".." || s.contains('='))
        {
            return Err((
                "mount",
                format!(
                    "publish {n:?}: mount {mount:?} must be {LIVE_PREFIX}<name> (letters, digits, '-', '_', '.', '/')"
                ),
            ));
        }
        for u in &self.publisher {
            u.check(&format!("publish {n:?}: publisher"))?;
        }
        for u in &self.reader {
            u.check(&format!("publish {n:?}: reader"))?;
        }
        Ok(())
    }
}

/// The parts of a push target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The URL without credentials.
    pub url: String,
    pub user: Option<String>,
    pub password: Option<String>,
}

impl PushSection {
    pub fn target(&self) -> Result<Target, String> {
        let rest = self
            .target
            .strip_prefix("rtsp://")
            .ok_or_else(|| format!("target {:?} must be an rtsp:// URL", self.target))?;
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        let (creds, host) = match authority.rsplit_once('@') {
            Some((c, h)) => (Some(c), h),
            None => (None, authority),
        };
        if host.is_empty() {
            return Err(format!("target {:?} names no host", self.target));
        }
        let (user, password) = match creds {
            Some(c) => match c.split_once(':') {
                Some((u, p)) => (Some(u.to_string()), Some(p.to_string())),
                None => (Some(c.to_string()), None),
            },
            None => (None, None),
        };
        Ok(Target {
            url: format!("rtsp://{host}{path}"),
            user,
            password,
        })
    }

    fn check(&self) -> Result<(), (&'static str, String)> {
        let n = &self.name;
        if !valid_name(n) {
            return Err((
                "name",
                format!("push name {n:?} must be letters, digits, '-', '_' or '.'"),
            ));
        }
        let s = &self.source;
        let ok = ["/ch/", "/relay/", LIVE_PREFIX]
            .iter()
            .any(|p| s.strip_prefix(p).is_some_and(|r| !r.is_empty()))
            && !s.contains(['?', ' ', '"']);
        if !ok {
            return Err((
                "source",
                format!("push {n:?}: source {s:?} must be a mount of this server: /ch/<name>, /relay/<name> or /live/<name>"),
            ));
        }
        self.target()
            .map_err(|e| ("target", format!("push {n:?}: {e}")))?;
        Ok(())
    }
}

/// Checks every entry; on error, the line (if found) and why.
pub fn check_all(
    publish: &[PublishSection],
    push: &[PushSection],
    text: &str,
) -> Result<(), (Option<usize>, String)> {
    let mut names = std::collections::HashSet::new();
    let mut mounts = std::collections::HashSet::new();
    for (i, p) in publish.iter().enumerate() {
        let fail = |key: &str, msg: String| (line_of(text, "[[publish]]", i, key), msg);
        p.check().map_err(|(key, msg)| fail(key, msg))?;
        if !names.insert(p.name.clone()) {
            return Err(fail("name", format!("publish {:?} defined twice", p.name)));
        }
        if !mounts.insert(p.mount_path()) {
            return Err(fail(
                "mount",
                format!("publish {:?}: mount {} used twice", p.name, p.mount_path()),
            ));
        }
    }
    let mut names = std::collections::HashSet::new();
    for (i, p) in push.iter().enumerate() {
        let fail = |key: &str, msg: String| (line_of(text, "[[push]]", i, key), msg);
        p.check().map_err(|(key, msg)| fail(key, msg))?;
        if !names.insert(p.name.clone()) {
            return Err(fail("name", format!("push {:?} defined twice", p.name)));
        }
    }
    Ok(())
}

/// The 1-based line of `key` in the `index`-th `header` block of `text` (up to the next
/// `[[`/`[` header of another table), or of the block's header.
fn line_of(text: &str, header: &str, index: usize, key: &str) -> Option<usize> {
    let lines: Vec<&str> = text.lines().collect();
    let start = lines
        .iter()
        .enumerate()
        .filter(|(_, l)| l.trim() == header)
        .nth(index)?
        .0;
    let table = header.trim_matches(['[', ']']);
    let end = lines
        .iter()
        .enumerate()
        .skip(start + 1)
        .find(|(_, l)| {
            let t = l.trim();
            t.starts_with('[') && !t.trim_matches(['[', ']']).starts_with(&format!("{table}."))
        })
        .map_or(lines.len(), |(i, _)| i);
    let found = (start..end).find(|&i| {
        lines[i]
            .trim_start()
            .strip_prefix(key)
            .is_some_and(|r| r.trim_start().starts_with('='))
    });
    Some(found.unwrap_or(start) + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    type Parsed = (Vec<PublishSection>, Vec<PushSection>);

    fn parse(text: &str) -> Result<Parsed, (Option<usize>, String)> {
        #[derive(Deserialize)]
        struct T {
            #[serde(default)]
            publish: Vec<PublishSection>,
            #[serde(default)]
            push: Vec<PushSection>,
        }
        let t: T = toml::from_str(text).map_err(|e| (None, e.to_string()))?;
        check_all(&t.publish, &t.push, text)?;
        Ok((t.publish, t.push))
    }

    #[test]
    fn entries_parse_and_bad_values_name_their_line() {
        let ok = "[[publish]]\nname = \"cam1\"\n[[publish.publisher]]\nuser = \"alice\"\npassword_digest = \"53ed74b6481a7a8645bcacc010ce5554\"\nfrom = [\"127.0.0.1\", \"10.0.0.0/8\"]\n\n[[push]]\nname = \"out\"\nsource = \"/ch/news\"\ntarget = \"rtsp://alice:secret@h:8554/live/x\"\n";
        let (p, q) = parse(ok).unwrap();
        assert_eq!(p[0].mount_path(), "/live/cam1");
        assert_eq!(p[0].publisher[0].ranges().len(), 2);
        let t = q[0].target().unwrap();
        assert_eq!(t.url, "rtsp://h:8554/live/x");
        assert_eq!(t.user.as_deref(), Some("alice"));
        assert_eq!(t.password.as_deref(), Some("secret"));

        let bad = ok.replace("53ed74b6481a7a8645bcacc010ce5554", "xyz");
        assert_eq!(parse(&bad).unwrap_err().0, Some(5));
        let bad = ok.replace("10.0.0.0/8", "10.0.0.0/33");
        assert_eq!(parse(&bad).unwrap_err().0, Some(6));
        let bad = ok.replace("/ch/news", "news");
        assert_eq!(parse(&bad).unwrap_err().0, Some(10));
        let bad = ok.replace("name = \"cam1\"", "name = \"cam1\"\nmount = \"/relay/x\"");
        assert_eq!(parse(&bad).unwrap_err().0, Some(3));
    }

    #[test]
    fn cidr_matching() {
        let c = Cidr::parse("192.0.2.0/24").unwrap();
        assert!(c.contains("192.0.2.77".parse().unwrap()));
        assert!(!c.contains("192.0.3.1".parse().unwrap()));
        assert!(c.contains("::ffff:192.0.2.1".parse().unwrap()));
        assert!(Cidr::parse("0.0.0.0/0")
            .unwrap()
            .contains("8.8.8.8".parse().unwrap()));
        assert!(Cidr::parse("::1").unwrap().contains("::1".parse().unwrap()));
    }
}
