//! Opening the store: the store key manifest says which generations the store needs; the board's sealers unseal
//! them; a store-key rotation a crash interrupted while destroying the old key is completed first.

use std::path::PathBuf;

use crate::config::AgentConfig;
use crate::private_dir::{check_state_dir, restrict_tree, DirError};
use crate::store::{Store, StoreError, StoreKeys};
use crate::store_key::{manifest, rotate, sealing, KeyState, SealedGeneration, StoreKeyError};

/// Why the store could not be opened.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    /// No sealed store key: the agent is not enrolled.
    #[error("no sealed store key at {0}: this agent is not enrolled (run `tessera-agent enroll`)")]
    NotEnrolled(PathBuf),
    /// The state directory is not the agent's own (group- or world-writable, another owner).
    #[error(transparent)]
    UnsafeDir(#[from] DirError),
    /// The sealed store keys could not be read or unsealed (missing or unsafe key file, no TPM, PCR mismatch, a
    /// blob that does not open, a bad manifest).
    #[error(transparent)]
    StoreKey(#[from] StoreKeyError),
    /// The store refused (wrong key, corrupt, locked).
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// An open store and where its store key stands.
#[derive(Debug)]
pub struct OpenStore {
    /// The store.
    pub store: Store,
    /// The store key state (`reencrypting`: a rotation to resume).
    pub keys: KeyState,
}

/// Opens the store of an enrolled agent.
pub fn open_store(cfg: &AgentConfig) -> Result<Store, OpenError> {
    open(cfg, None).map(|o| o.store)
}

/// Opens the store of an enrolled agent, with its store key state.
pub fn open_store_keys(cfg: &AgentConfig) -> Result<OpenStore, OpenError> {
    open(cfg, None)
}

/// Opens the store, creating the store key (generation 1, sealed by `[sealer] backend`), its manifest and the
/// store if they do not exist (enrolment).
pub fn open_or_create_store(cfg: &AgentConfig, now: i64) -> Result<Store, OpenError> {
    open(cfg, Some(now)).map(|o| o.store)
}

fn open(cfg: &AgentConfig, create_at: Option<i64>) -> Result<OpenStore, OpenError> {
    check_state_dir(&cfg.state_dir, create_at.is_some())?;
    let manifest_path = cfg.store_keys_file();
    let loaded = manifest::load(&manifest_path, &cfg.sealed_key_file(), &cfg.key_file())?;
    let state = if let Some(state) = loaded {
        state
    } else {
        let Some(now) = create_at else {
            return Err(OpenError::NotEnrolled(manifest_path));
        };
        let key_file = cfg.key_file();
        let (active, _) = sealing::new_generation(
            cfg,
            1,
            cfg.sealer.backend,
            (&key_file, sealing::KeyFile::KeepExisting),
            now,
        )?;
        let state = KeyState::Steady { active };
        manifest::save(&manifest_path, &state)?;
        state
    };
    // Every key is unsealed and the store opened before anything is changed: the keys a manifest names are trusted
    // only once the store confirms them (the check record opens; a rotation's next key was confirmed under the key
    // it replaces).
    let (keys, next_key) = match &state {
        KeyState::Steady { active } | KeyState::Destroying { active, .. } => (
            StoreKeys::single(active.generation, sealing::unseal(cfg, active)?),
            None,
        ),
        KeyState::Reencrypting { active, retiring } => {
            let next = sealing::unseal(cfg, active)?;
            (
                StoreKeys {
                    active: (active.generation, next.clone()),
                    retiring: Some((retiring.generation, sealing::unseal(cfg, retiring)?)),
                },
                Some(next),
            )
        }
    };
    restrict_tree(&cfg.store_dir())?;
    let store = Store::open_keys(&cfg.store_dir(), &keys, cfg.audit.max_entries)?;
    // sled's files, if anything created them under a looser umask.
    restrict_tree(&cfg.store_dir())?;
    store.set_quarantine_revoked_signers(cfg.store.quarantine_revoked_signers);
    let state = match state {
        KeyState::Destroying { active, retired } => {
            tracing::info!(
                generation = retired.generation,
                "store key rotation: completing the destruction of the old key"
            );
            store.forget_next_generation()?;
            rotate::destroy(cfg, active, &retired)?
        }
        KeyState::Reencrypting { active, retiring } => match next_key {
            Some(next) if store.next_generation_confirmed(&next)? => {
                KeyState::Reencrypting { active, retiring }
            }
            _ => abandon(cfg, &store, &active, retiring)?,
        },
        steady @ KeyState::Steady { .. } => steady,
    };
    Ok(OpenStore { store, keys: state })
}

/// A manifest naming a next key the store never confirmed: a crash between sealing it and confirming it, or an
/// altered manifest. Nothing was written under that key (the confirmation comes first), so the store goes on with
/// the key it confirmed, and the unconfirmed one is destroyed.
fn abandon(
    cfg: &AgentConfig,
    store: &Store,
    unconfirmed: &SealedGeneration,
    confirmed: SealedGeneration,
) -> Result<KeyState, OpenError> {
    tracing::warn!(
        generation = unconfirmed.generation,
        "store-keys.json names a next store key the store never confirmed (a crash as a rotation began, or an \
         altered manifest); it is ignored and destroyed, the store keeps generation {}",
        confirmed.generation
    );
    store.abandon_key_generation()?;
    if let Err(e) = sealing::destroy(cfg, unconfirmed) {
        tracing::warn!(error = %e, "the unconfirmed store key was not destroyed");
    }
    let steady = KeyState::Steady { active: confirmed };
    manifest::save(&cfg.store_keys_file(), &steady).map_err(OpenError::StoreKey)?;
    Ok(steady)
}
