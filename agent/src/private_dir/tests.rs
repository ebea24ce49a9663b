use std::os::unix::fs::PermissionsExt;

use super::*;

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o7777
}

#[test]
fn a_missing_state_dir_is_created_private() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("a/state");
    check_state_dir(&dir, false).unwrap();
    assert!(!dir.exists(), "not created without create");
    check_state_dir(&dir, true).unwrap();
    assert_eq!(mode(&dir), 0o700);
    check_state_dir(&dir, false).unwrap();
}

#[test]
fn a_writable_state_dir_is_refused_naming_path_and_mode() {
    let root = tempfile::tempdir().unwrap();
    for bad in [0o777, 0o770, 0o722] {
        std::fs::set_permissions(root.path(), std::fs::Permissions::from_mode(bad)).unwrap();
        let err = check_state_dir(root.path(), true).unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, DirError::Writable { .. }), "{text}");
        assert!(
            text.contains(&root.path().display().to_string())
                && text.contains(&format!("{bad:04o}")),
            "{text}"
        );
    }
    // Readable by others is allowed (the files inside are 0600); writable is not.
    std::fs::set_permissions(root.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    check_state_dir(root.path(), true).unwrap();
}

#[test]
fn a_file_is_not_a_state_dir() {
    let root = tempfile::tempdir().unwrap();
    let file = root.path().join("f");
    std::fs::write(&file, b"").unwrap();
    assert!(matches!(
        check_state_dir(&file, true),
        Err(DirError::NotADirectory(_))
    ));
}

#[test]
fn restrict_tree_takes_group_and_other_bits_off() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("store");
    std::fs::create_dir_all(dir.join("blobs")).unwrap();
    std::fs::write(dir.join("db"), b"x").unwrap();
    std::fs::write(dir.join("blobs/1"), b"x").unwrap();
    for p in [&dir, &dir.join("blobs")] {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    for p in [dir.join("db"), dir.join("blobs/1")] {
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    restrict_tree(&dir).unwrap();
    assert_eq!(mode(&dir), 0o700);
    assert_eq!(mode(&dir.join("blobs")), 0o700);
    assert_eq!(mode(&dir.join("db")), 0o600);
    assert_eq!(mode(&dir.join("blobs/1")), 0o600);
}

#[test]
fn the_socket_dir_is_private_or_group_reachable() {
    let root = tempfile::tempdir().unwrap();
    let plain = root.path().join("run/tessera");
    create_socket_dir(&plain, None).unwrap();
    assert_eq!(mode(&plain), 0o700);
    let gid = rustix::process::getegid().as_raw();
    let grouped = root.path().join("run2/tessera");
    create_socket_dir(&grouped, Some(gid)).unwrap();
    assert_eq!(mode(&grouped), 0o710);
    assert_eq!(
        std::os::unix::fs::MetadataExt::gid(&std::fs::metadata(&grouped).unwrap()),
        gid
    );
    // An existing directory is not touched.
    std::fs::set_permissions(&plain, std::fs::Permissions::from_mode(0o755)).unwrap();
    create_socket_dir(&plain, None).unwrap();
    assert_eq!(mode(&plain), 0o755);
}
