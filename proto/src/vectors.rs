//! The third-party test vectors in `../shared/media` (or `$DVB2IP_MEDIA_DIR`) (a `.ts` file with its expected values in
//! a `.json` beside it), for unit and integration tests.

use std::path::PathBuf;

/// Environment variable that names the vector directory instead of the default.
pub const MEDIA_DIR_ENV: &str = "DVB2IP_MEDIA_DIR";

/// The directory holding the vectors: `$DVB2IP_MEDIA_DIR` when set, else `../shared/media`
/// relative to the repository root (a `shared/` directory beside the checkout). Panics naming
/// both when the vectors are not there.
pub fn media_dir() -> PathBuf {
    // This crate sits in `<repository>/proto`.
    let default = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/media"));
    let dir = match std::env::var_os(MEDIA_DIR_ENV) {
        Some(d) if !d.is_empty() => PathBuf::from(d),
        _ => default.clone(),
    };
    assert!(
        dir.join("temi_a_single_timeline.ts").exists(),
        "test vectors not found in {}: set {MEDIA_DIR_ENV} to their directory, or put them in \
         ../shared/media relative to the repository root ({})",
        dir.display(),
        default.display()
    );
    dir
}

/// Vector `name`: the transport stream and its expected values.
pub fn load(name: &str) -> (Vec<u8>, serde_json::Value) {
    let dir = media_dir();
    let ts = std::fs::read(dir.join(format!("{name}.ts"))).expect("read .ts vector");
    let json = serde_json::from_str(
        &std::fs::read_to_string(dir.join(format!("{name}.json"))).expect("read .json"),
    )
    .expect("parse .json");
    (ts, json)
}
