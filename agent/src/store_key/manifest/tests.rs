#![allow(clippy::unwrap_used, clippy::cast_possible_truncation)]

use super::*;

fn generation(n: u32, sealer: SealerRef) -> SealedGeneration {
    SealedGeneration {
        generation: n,
        created_at: 1_800_000_000 + i64::from(n),
        sealer,
        sealed: vec![n as u8; 60],
    }
}

fn file(n: u32) -> SealedGeneration {
    generation(
        n,
        SealerRef::File {
            key_file: PathBuf::from(format!("/k.{n}")),
        },
    )
}

#[test]
fn every_state_round_trips_through_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store-keys.json");
    for state in [
        KeyState::Steady { active: file(1) },
        KeyState::Reencrypting {
            active: generation(2, SealerRef::Tpm),
            retiring: file(1),
        },
        KeyState::Destroying {
            active: generation(2, SealerRef::Tpm),
            retired: file(1),
        },
    ] {
        save(&path, &state).unwrap();
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(&path).unwrap().permissions(),
        );
        assert_eq!(mode & 0o777, 0o600);
        let loaded = load(&path, &dir.path().join("none"), Path::new("/k")).unwrap();
        assert_eq!(loaded, Some(state));
    }
}

#[test]
fn a_store_enrolled_before_the_manifest_is_generation_zero() {
    let dir = tempfile::tempdir().unwrap();
    let legacy = dir.path().join("store.sealed");
    let manifest = dir.path().join("store-keys.json");
    assert_eq!(load(&manifest, &legacy, Path::new("/k")).unwrap(), None);
    std::fs::write(&legacy, b"TSK1blob").unwrap();
    let Some(KeyState::Steady { active }) = load(&manifest, &legacy, Path::new("/k")).unwrap()
    else {
        panic!("not steady")
    };
    assert_eq!(active.generation, 0);
    assert_eq!(active.sealed, b"TSK1blob");
    assert_eq!(
        active.sealer,
        SealerRef::File {
            key_file: PathBuf::from("/k")
        }
    );
    // Once a manifest exists it wins.
    save(&manifest, &KeyState::Steady { active: file(3) }).unwrap();
    assert_eq!(
        load(&manifest, &legacy, Path::new("/k"))
            .unwrap()
            .unwrap()
            .active()
            .generation,
        3
    );
}

#[test]
fn bad_manifests_are_named_errors() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store-keys.json");
    let none = dir.path().join("none");
    let ok = serde_json::to_value(Manifest {
        format: 1,
        keys: KeyState::Steady { active: file(1) },
    })
    .unwrap();
    let mut future = ok.clone();
    future["format"] = 2.into();
    let mut extra = ok.clone();
    extra["keys"]["active"]["extra"] = 1.into();
    let backwards = serde_json::to_value(Manifest {
        format: 1,
        keys: KeyState::Reencrypting {
            active: file(1),
            retiring: file(2),
        },
    })
    .unwrap();
    for (bad, says) in [
        (serde_json::to_vec(&future).unwrap(), "format 2"),
        (serde_json::to_vec(&extra).unwrap(), "unknown field"),
        (serde_json::to_vec(&backwards).unwrap(), "not older"),
        (b"{".to_vec(), "EOF"),
        (vec![b' '; 70 * 1024], "64 KiB"),
    ] {
        std::fs::write(&path, &bad).unwrap();
        let err = load(&path, &none, Path::new("/k")).unwrap_err();
        assert!(
            matches!(err, StoreKeyError::Manifest { .. }) && err.to_string().contains(says),
            "{err}"
        );
    }
    // Saving an inconsistent state is refused too, leaving the file as it was.
    assert!(save(
        &path,
        &KeyState::Destroying {
            active: file(1),
            retired: file(1)
        }
    )
    .is_err());
}
