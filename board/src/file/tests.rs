use std::os::unix::fs::PermissionsExt;

use super::*;

#[test]
fn creates_key_file_with_mode_0600() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.key");
    FileSealer::open_or_create(&path).unwrap();
    let meta = fs::metadata(&path).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    assert_eq!(meta.len(), 32);
}

#[test]
fn reopening_keeps_the_same_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.key");
    let key = SecretBytes::new(vec![7; 32]);
    let blob = FileSealer::open_or_create(&path)
        .unwrap()
        .seal(&key)
        .unwrap();
    let again = FileSealer::open_or_create(&path).unwrap();
    assert!(again.unseal(&blob).unwrap().ct_eq(&key));
}

#[test]
fn refuses_group_or_world_readable_key_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.key");
    FileSealer::open_or_create(&path).unwrap();
    for mode in [0o640, 0o604, 0o660, 0o644] {
        fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
        let err = FileSealer::open(&path).unwrap_err();
        assert!(
            matches!(err, SealError::Permissions { .. }),
            "mode {mode:o}: {err}"
        );
    }
}

#[test]
fn refuses_symlinked_key_file() {
    let dir = tempfile::tempdir().unwrap();
    let real = dir.path().join("real.key");
    FileSealer::open_or_create(&real).unwrap();
    let link = dir.path().join("link.key");
    std::os::unix::fs::symlink(&real, &link).unwrap();
    assert!(matches!(
        FileSealer::open(&link),
        Err(SealError::Permissions { .. })
    ));
}

#[test]
fn missing_and_truncated_key_files_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.key");
    assert!(matches!(
        FileSealer::open(&path),
        Err(SealError::Missing(_))
    ));
    write_private_file(&path, &[1; 31]).unwrap();
    assert!(matches!(
        FileSealer::open(&path),
        Err(SealError::CorruptKeyFile(_))
    ));
}

#[test]
fn refuses_keys_of_the_wrong_length() {
    let dir = tempfile::tempdir().unwrap();
    let sealer = FileSealer::open_or_create(&dir.path().join("k")).unwrap();
    assert!(matches!(
        sealer.seal(&SecretBytes::new(vec![1; 16])),
        Err(SealError::KeyLength)
    ));
}
