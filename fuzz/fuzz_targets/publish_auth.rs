//! Fuzz target over what a publisher or reader sends to authenticate (bytes from the
//! network): the `Authorization` header of an RTSP request on a `/live/` mount, Digest and
//! Basic, checked against users with a Digest hash and address ranges. Whatever comes in, the
//! answer is a user name or a refusal, never a panic; a made-up credential never passes.
//!
//! Input layout: byte 0 picks the method and whether a peer address is known; the rest is the
//! header value (lossy UTF-8).

#![no_main]

use libfuzzer_sys::fuzz_target;

use dvb2ip::publish::auth::{digest_ha1, Authenticator};
use dvb2ip::publish::config::User;

fuzz_target!(|input: &[u8]| {
    let [mode, header @ ..] = input else {
        return;
    };
    let users = [
        User {
            user: "alice".into(),
            password_digest: Some(digest_ha1("alice", "secret")),
            password_hash: None,
            from: vec![],
        },
        User {
            user: "bob".into(),
            password_digest: Some(digest_ha1("bob", "pw")),
            password_hash: None,
            from: vec!["127.0.0.0/8".into(), "::1".into()],
        },
    ];
    let auth = Authenticator::default();
    // A nonce the server handed out, so that Digest answers reach the response check.
    let nonce = auth.nonce();
    let method = ["ANNOUNCE", "SETUP", "RECORD", "DESCRIBE"][usize::from(mode & 3)];
    let peer = (mode & 4 != 0).then(|| std::net::IpAddr::from([127, 0, 0, 1]));
    let text = String::from_utf8_lossy(header);
    let _ = auth.check(&users, method, Some(&text), peer);
    // The same with the live nonce spliced in where the input names one.
    let spliced = text.replace("NONCE", &nonce);
    if let Ok(user) = auth.check(&users, method, Some(&spliced), peer) {
        // Passing needs the right response, which random input does not have: only the
        // users above can come out.
        assert!(user == "alice" || user == "bob");
    }
    let _ = auth.challenges(&users, mode & 8 != 0);
});
