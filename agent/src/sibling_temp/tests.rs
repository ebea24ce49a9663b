use std::os::unix::fs::PermissionsExt as _;

use super::*;

#[test]
fn the_file_is_new_beside_the_path_with_exactly_the_mode() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("a.prom");
    let (one, _) = create(&target, 0o644).unwrap();
    let (two, _) = create(&target, 0o600).unwrap();
    assert_ne!(one, two, "each temporary file has its own name");
    assert_eq!(one.parent(), Some(dir.path()));
    assert!(one
        .file_name()
        .unwrap()
        .to_string_lossy()
        .starts_with(".a.prom.tmp."));
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o7777;
    assert_eq!((mode(&one), mode(&two)), (0o644, 0o600));
}
