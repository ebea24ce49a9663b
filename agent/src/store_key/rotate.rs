//! The steps of a store-key rotation, each entered by one atomic manifest write, and resumable from the state a
//! crash left (the state diagram is in docs/operations.md, "Rotating the store key"):
//!
//! 1. [`start`]: a fresh key is sealed (by the sealer asked for) and the manifest saved as `reencrypting` **before**
//!    the store writes anything under it; then the store makes it the active generation.
//! 2. [`step`]: one bounded batch of records moves from the retiring generation to the active one.
//! 3. [`finish`]: once none is left, the store drops the retiring key, the manifest is saved as `destroying`, what
//!    sealed the old key is destroyed ([`destroy`]) and the manifest is saved as `steady`.

use super::manifest::{self, KeyState};
use super::sealing;
use super::StoreKeyError;
use crate::config::{AgentConfig, SealerBackend};
use crate::store::{AuditEntry, AuditOutcome, Reencrypted, Store};

fn audit(store: &Store, detail: String) {
    tracing::info!(detail = %detail, "store key rotation");
    let mut entry = AuditEntry::wire_refusal("store_key", None, detail);
    entry.outcome = AuditOutcome::StoreKey;
    // Flushed: the manifest write that follows is durable at once, and the record of the step must be too.
    if let Err(e) = store.audit(entry).and_then(|()| store.flush()) {
        tracing::error!(error = %e, "could not write the local audit");
    }
}

/// Starts a rotation from `state` (which must be `steady`) to a new generation sealed by `to`.
pub fn start(
    cfg: &AgentConfig,
    store: &Store,
    state: &KeyState,
    to: SealerBackend,
    now: i64,
) -> Result<KeyState, StoreKeyError> {
    let active = match state {
        KeyState::Steady { active } => active,
        other => {
            return Err(StoreKeyError::InProgress {
                generation: other.active().generation,
                state: other.name(),
            })
        }
    };
    let generation = active
        .generation
        .checked_add(1)
        .ok_or(StoreKeyError::Exhausted)?;
    let key_file = sealing::rotated_key_file(cfg, generation);
    let (sealed, key) = sealing::new_generation(
        cfg,
        generation,
        to,
        (&key_file, sealing::KeyFile::Fresh),
        now,
    )?;
    let next = KeyState::Reencrypting {
        active: sealed,
        retiring: active.clone(),
    };
    // Confirmed under the current key first, so a manifest naming a key the store never confirmed is refused.
    store.confirm_next_generation(generation, &key)?;
    // Audited before the manifest commits to it: a kill between the two leaves an attempt on record (the next
    // rotation starts afresh), never a rotation without its start.
    audit(
        store,
        format!(
            "started: generation {} ({}) -> {generation} ({to})",
            active.generation,
            active.sealer.backend()
        ),
    );
    manifest::save(&cfg.store_keys_file(), &next)?;
    store.begin_key_generation(generation, &key)?;
    Ok(next)
}

/// Re-encrypts one batch of at most `batch` records.
pub fn step(store: &Store, batch: usize) -> Result<Reencrypted, StoreKeyError> {
    Ok(store.reencrypt_batch(batch)?)
}

/// Ends a rotation whose records are all re-encrypted: `reencrypting` → `destroying` → `steady`. From
/// `destroying` (a crash after the first write) it only destroys. From `steady` it does nothing.
pub fn finish(
    cfg: &AgentConfig,
    store: &Store,
    state: KeyState,
) -> Result<KeyState, StoreKeyError> {
    let (active, retired) = match state {
        KeyState::Steady { .. } => return Ok(state),
        KeyState::Reencrypting { active, retiring } => {
            store.finish_key_generation()?;
            manifest::save(
                &cfg.store_keys_file(),
                &KeyState::Destroying {
                    active: active.clone(),
                    retired: retiring.clone(),
                },
            )?;
            store.forget_next_generation()?;
            (active, retiring)
        }
        KeyState::Destroying { active, retired } => {
            store.forget_next_generation()?;
            (active, retired)
        }
    };
    // Audited before the last manifest write: a kill between the two resumes in `destroying` and audits again, so
    // the end is on record at least once.
    audit(
        store,
        format!(
            "finished: generation {} ({}) destroyed, generation {} ({}) active",
            retired.generation,
            retired.sealer.backend(),
            active.generation,
            active.sealer.backend()
        ),
    );
    destroy(cfg, active, &retired)
}

/// Destroys what sealed `retired` (and, for generation 0, the pre-manifest `store.sealed`), then saves `steady`.
/// A key file that cannot be deleted (or a path this agent would not have made) is reported, not fatal: the store
/// no longer needs it, and the agent must start.
pub fn destroy(
    cfg: &AgentConfig,
    active: manifest::SealedGeneration,
    retired: &manifest::SealedGeneration,
) -> Result<KeyState, StoreKeyError> {
    if let Err(e) = sealing::destroy(cfg, retired) {
        tracing::warn!(error = %e, generation = retired.generation, "store key rotation: the old key was not destroyed; delete it by hand");
    }
    if retired.generation == 0 {
        let legacy = cfg.sealed_key_file();
        match std::fs::remove_file(&legacy) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                tracing::warn!(error = %e, file = %legacy.display(), "store key rotation: could not delete the pre-manifest sealed key");
            }
        }
    }
    let steady = KeyState::Steady { active };
    manifest::save(&cfg.store_keys_file(), &steady)?;
    Ok(steady)
}

/// Runs a started (or resumed) rotation to its end in this thread, pausing `pause` between batches (the offline
/// `tessera-agent rotate-store-key`, when no agent is running).
pub fn run_to_end(
    cfg: &AgentConfig,
    store: &Store,
    state: KeyState,
) -> Result<KeyState, StoreKeyError> {
    if matches!(state, KeyState::Reencrypting { .. }) {
        let pause = std::time::Duration::from_millis(cfg.store.reencrypt_pause_ms);
        loop {
            let done = step(store, cfg.store.reencrypt_batch)?;
            tracing::debug!(
                rewritten = done.rewritten,
                done = done.done,
                "store key: batch"
            );
            if done.done {
                break;
            }
            std::thread::sleep(pause);
        }
    }
    finish(cfg, store, state)
}

#[cfg(test)]
mod tests;
