//! The third-party test vectors in `../shared/media` (a `.ts` file with its expected values in
//! a `.json` beside it), for unit and integration tests.

use std::path::PathBuf;

/// The directory holding the vectors: `shared/media` beside the repository, else
/// `/work/shared/media`. Panics naming both places when neither has them.
pub fn media_dir() -> PathBuf {
    let a = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/media"));
    if a.join("temi_a_single_timeline.ts").exists() {
        return a;
    }
    let b = PathBuf::from("/work/shared/media");
    assert!(
        b.join("temi_a_single_timeline.ts").exists(),
        "TEMI test vectors not found: looked in {} and {}",
        a.display(),
        b.display()
    );
    b
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
