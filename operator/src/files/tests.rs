#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use super::*;

#[test]
fn a_damaged_file_is_named_with_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("catalogue.json");
    std::fs::write(&path, b"{ not json").unwrap();
    let e = read_json::<serde_json::Value>(&path)
        .unwrap_err()
        .to_string();
    assert!(e.starts_with(&path.display().to_string()), "{e}");
    assert!(e.contains("restore it from a backup"), "{e}");
    assert!(
        read_json::<serde_json::Value>(&dir.path().join("none.json"))
            .unwrap()
            .is_none()
    );
}
