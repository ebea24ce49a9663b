#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use tessera_board::{FileSealer, Sealer};
use tessera_proto::secret::SecretBytes;

use super::*;
use crate::config::AgentConfig;
use crate::store::{SelfRecord, StoreKeys};
use crate::unseal::{open_or_create_store, open_store_keys};

const NOW: i64 = 1_800_000_000;

fn cfg(dir: &Path) -> AgentConfig {
    AgentConfig {
        state_dir: dir.join("state"),
        ..AgentConfig::default()
    }
}

fn agent_id(store: &Store) -> Vec<u8> {
    store
        .get_self(SelfRecord::AgentId)
        .unwrap()
        .unwrap()
        .expose(<[u8]>::to_vec)
}

#[test]
fn a_rotation_ends_steady_with_the_old_key_file_destroyed() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = cfg(dir.path());
    let store = open_or_create_store(&cfg, NOW).unwrap();
    store.put_self(&[(SelfRecord::AgentId, b"edge-1")]).unwrap();
    let state = saved_state(&cfg);
    let started = start(&cfg, &store, &state, SealerBackend::File, NOW + 5).unwrap();
    assert_eq!(
        (started.name(), started.active().generation),
        ("reencrypting", 2)
    );
    // One rotation at a time.
    let err = start(&cfg, &store, &started, SealerBackend::File, NOW).unwrap_err();
    assert!(
        matches!(err, StoreKeyError::InProgress { generation: 2, .. }),
        "{err}"
    );
    let done = run_to_end(&cfg, &store, started).unwrap();
    assert_eq!((done.name(), done.active().generation), ("steady", 2));
    assert_eq!(done.active().created_at, NOW + 5);
    assert!(!cfg.key_file().exists(), "the old key file is destroyed");
    assert!(sealing::rotated_key_file(&cfg, 2).exists());
    assert_eq!(agent_id(&store), b"edge-1");
    drop(store);
    let reopened = open_store_keys(&cfg).unwrap();
    assert_eq!(reopened.keys, done);
    assert_eq!(agent_id(&reopened.store), b"edge-1");
}

/// The state saved in the manifest, for a store opened by the test.
fn saved_state(cfg: &AgentConfig) -> KeyState {
    manifest::load(
        &cfg.store_keys_file(),
        &cfg.sealed_key_file(),
        &cfg.key_file(),
    )
    .unwrap()
    .unwrap()
}

#[test]
fn a_crash_while_destroying_is_completed_at_the_next_open() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = cfg(dir.path());
    let store = open_or_create_store(&cfg, NOW).unwrap();
    store.put_self(&[(SelfRecord::AgentId, b"edge-1")]).unwrap();
    let state = saved_state(&cfg);
    let KeyState::Reencrypting { active, retiring } =
        start(&cfg, &store, &state, SealerBackend::File, NOW).unwrap()
    else {
        panic!("not reencrypting")
    };
    while !step(&store, 100).unwrap().done {}
    store.finish_key_generation().unwrap();
    // The crash: `destroying` saved, the old key file still there.
    manifest::save(
        &cfg.store_keys_file(),
        &KeyState::Destroying {
            active: active.clone(),
            retired: retiring,
        },
    )
    .unwrap();
    drop(store);
    assert!(cfg.key_file().exists());
    let reopened = open_store_keys(&cfg).unwrap();
    assert_eq!(reopened.keys, KeyState::Steady { active });
    assert!(!cfg.key_file().exists());
    assert_eq!(agent_id(&reopened.store), b"edge-1");
}

#[test]
fn a_store_from_before_the_manifest_rotates_and_drops_its_sealed_file() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = cfg(dir.path());
    std::fs::create_dir_all(&cfg.state_dir).unwrap();
    std::fs::set_permissions(
        &cfg.state_dir,
        std::os::unix::fs::PermissionsExt::from_mode(0o700),
    )
    .unwrap();
    // As `enroll` wrote it before store-key rotation: a key file, `store.sealed`, format-1 records.
    let key = SecretBytes::new(vec![4; 32]);
    let sealer = FileSealer::open_or_create(&cfg.key_file()).unwrap();
    tessera_board::write_private_file(&cfg.sealed_key_file(), &sealer.seal(&key).unwrap().0)
        .unwrap();
    {
        let store = Store::open_keys(&cfg.store_dir(), &StoreKeys::single(0, key), 100).unwrap();
        store.put_self(&[(SelfRecord::AgentId, b"edge-0")]).unwrap();
    }
    let opened = open_store_keys(&cfg).unwrap();
    assert_eq!(
        (opened.keys.name(), opened.keys.active().generation),
        ("steady", 0)
    );
    assert!(
        !cfg.store_keys_file().exists(),
        "opening alone writes nothing"
    );
    let started = start(&cfg, &opened.store, &opened.keys, SealerBackend::File, NOW).unwrap();
    let done = run_to_end(&cfg, &opened.store, started).unwrap();
    assert_eq!(done.active().generation, 1);
    assert!(!cfg.sealed_key_file().exists());
    assert!(!cfg.key_file().exists());
    assert!(sealing::rotated_key_file(&cfg, 1).exists());
    drop(opened);
    assert_eq!(agent_id(&open_store_keys(&cfg).unwrap().store), b"edge-0");
}

#[test]
fn a_tpm_rotation_in_a_build_without_tpm_support_changes_nothing() {
    if tessera_board::TPM_BUILT {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let cfg = cfg(dir.path());
    let store = open_or_create_store(&cfg, NOW).unwrap();
    let state = saved_state(&cfg);
    let err = start(&cfg, &store, &state, SealerBackend::Tpm, NOW).unwrap_err();
    assert!(err.to_string().contains("--features tpm"), "{err}");
    assert_eq!(saved_state(&cfg), state);
    assert_eq!(store.key_generations().unwrap(), (1, None));
}

#[test]
fn a_crash_after_the_last_batch_resumes_instead_of_abandoning() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = cfg(dir.path());
    let store = open_or_create_store(&cfg, NOW).unwrap();
    store.put_self(&[(SelfRecord::AgentId, b"edge-1")]).unwrap();
    let state = saved_state(&cfg);
    let started = start(&cfg, &store, &state, SealerBackend::File, NOW).unwrap();
    while !step(&store, 100).unwrap().done {}
    // Every record is under generation 2 and the old key is unloaded; the crash comes before `destroying` is saved.
    store.finish_key_generation().unwrap();
    drop(store);
    let reopened = open_store_keys(&cfg).unwrap();
    assert_eq!(
        reopened.keys, started,
        "the rotation is resumed, not abandoned"
    );
    let done = run_to_end(&cfg, &reopened.store, reopened.keys).unwrap();
    assert_eq!(done.active().generation, 2);
    assert_eq!(agent_id(&reopened.store), b"edge-1");
}

#[test]
fn a_manifest_naming_a_key_the_store_never_confirmed_is_ignored() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = cfg(dir.path());
    let store = open_or_create_store(&cfg, NOW).unwrap();
    store.put_self(&[(SelfRecord::AgentId, b"edge-1")]).unwrap();
    drop(store);
    let genuine = saved_state(&cfg);
    // Someone with the disk (the agent stopped) writes a manifest whose "next" key is theirs, sealed by a key file
    // they made, with the genuine generation as the one retiring.
    let evil_file = cfg.state_dir.join("evil.key");
    let evil_key = SecretBytes::new(vec![0xEE; 32]);
    let sealed = FileSealer::open_or_create(&evil_file)
        .unwrap()
        .seal(&evil_key)
        .unwrap();
    let forged = KeyState::Reencrypting {
        active: manifest::SealedGeneration {
            generation: 2,
            created_at: NOW,
            sealer: manifest::SealerRef::File {
                key_file: evil_file.clone(),
            },
            sealed: sealed.0,
        },
        retiring: genuine.active().clone(),
    };
    manifest::save(&cfg.store_keys_file(), &forged).unwrap();
    let opened = open_store_keys(&cfg).unwrap();
    assert_eq!(opened.keys, genuine, "back to the confirmed key");
    assert_eq!(saved_state(&cfg), genuine);
    // Nothing is re-encrypted under the attacker's key: the store still opens with the genuine key alone...
    opened
        .store
        .put_self(&[(SelfRecord::AgentId, b"edge-1b")])
        .unwrap();
    assert_eq!(opened.store.stale_records().unwrap(), 0);
    drop(opened);
    assert_eq!(agent_id(&open_store_keys(&cfg).unwrap().store), b"edge-1b");
    // ...and not with the attacker's.
    let err = Store::open_keys(&cfg.store_dir(), &StoreKeys::single(2, evil_key), 100).unwrap_err();
    assert!(matches!(err, crate::store::StoreError::WrongKey), "{err}");
    // A path this agent would not have made is not deleted on the manifest's word.
    assert!(evil_file.exists());
}
