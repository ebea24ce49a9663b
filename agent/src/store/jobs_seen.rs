//! The job ids this agent has run or refused: `job/<uuid>` records holding the dispatch's expiry (Unix seconds,
//! i64 big-endian), sealed like every record. [`SeenJobs::admit`] writes and flushes the record before it says a
//! job may start, so a dispatch delivered twice (a QoS 1 redelivery after a reconnect or a crash, a relay replaying
//! it) runs at most once. Records are pruned [`GRACE_SECS`] after their expiry: a dispatch that old is refused as
//! expired anyway, and the grace covers the agent's clock being stepped back a little. The dispatch's expiry is at
//! most a day ahead ([`tessera_proto::wire::MAX_JOB_TTL_SECS`]) and at most [`MAX_SEEN`] records are kept, so the
//! set stays bounded.

use tessera_proto::wire::MAX_JOB_TTL_SECS;

use super::{Store, StoreError};

const JOB: &[u8] = b"job/";

/// How long past its expiry a job id is remembered, seconds.
pub const GRACE_SECS: i64 = 3_600;

/// Most job ids remembered; beyond this a new job is refused (nothing runs) until old ones expire.
pub const MAX_SEEN: usize = 10_000;

/// How often (at most) [`SeenJobs::admit`] prunes, seconds.
const PRUNE_EVERY_SECS: i64 = 60;

/// What [`SeenJobs::admit`] decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Admission {
    /// First time: recorded and flushed; the job may start.
    New,
    /// Already run or refused: it must not start.
    Duplicate,
    /// [`MAX_SEEN`] job ids are remembered and none has expired: it must not start.
    Full,
}

/// The record of seen job ids. One instance (the core worker's) decides for the store; `&mut self` keeps its
/// check-then-write from interleaving.
#[derive(Debug)]
pub struct SeenJobs {
    store: Store,
    count: usize,
    max: usize,
    last_prune: i64,
}

fn key(id: &uuid::Uuid) -> Vec<u8> {
    let mut k = JOB.to_vec();
    k.extend_from_slice(id.to_string().as_bytes());
    k
}

impl SeenJobs {
    /// The seen-job record of `store`. Nothing is read until the first [`Self::admit`], which prunes (and counts)
    /// first.
    pub fn new(store: Store) -> Self {
        Self::with_max(store, MAX_SEEN)
    }

    fn with_max(store: Store, max: usize) -> Self {
        Self {
            store,
            count: 0,
            max,
            last_prune: i64::MIN,
        }
    }

    /// How many job ids are remembered, as of the last [`Self::admit`] or [`Self::prune`].
    pub fn len(&self) -> usize {
        self.count
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Records job `id` (expiring at `expires_at`) unless it was seen; flushed before it returns
    /// [`Admission::New`].
    pub fn admit(
        &mut self,
        id: &uuid::Uuid,
        expires_at: i64,
        now: i64,
    ) -> Result<Admission, StoreError> {
        if self.count >= self.max || now.saturating_sub(self.last_prune) >= PRUNE_EVERY_SECS {
            self.prune(now)?;
        }
        let k = key(id);
        if self.store.inner.backend.get(&k)?.is_some() {
            return Ok(Admission::Duplicate);
        }
        if self.count >= self.max {
            return Ok(Admission::Full);
        }
        // Bounded even if a caller skipped the expiry check.
        let keep_until = expires_at.min(now.saturating_add(MAX_JOB_TTL_SECS));
        let rec = self.store.seal(&k, 0, &keep_until.to_be_bytes())?;
        self.store.commit_durable(vec![(k, Some(rec))])?;
        self.count += 1;
        Ok(Admission::New)
    }

    /// Forgets job ids more than [`GRACE_SECS`] past their expiry; returns how many.
    pub fn prune(&mut self, now: i64) -> Result<usize, StoreError> {
        let mut ops = Vec::new();
        let entries = self.store.inner.backend.scan_prefix(JOB)?;
        let total = entries.len();
        for (k, rec) in entries {
            let (_, plain) = self.store.open_raw(&k, &rec)?;
            let expires = <[u8; 8]>::try_from(plain.as_slice())
                .map(i64::from_be_bytes)
                .map_err(|_| StoreError::Corrupt {
                    record: super::record_name(&k),
                    reason: "not a job expiry",
                })?;
            if expires.saturating_add(GRACE_SECS) < now {
                ops.push((k, None));
            }
        }
        let pruned = ops.len();
        if pruned > 0 {
            self.store.commit(ops)?;
        }
        self.count = total - pruned;
        self.last_prune = now;
        Ok(pruned)
    }
}

#[cfg(test)]
mod tests;
