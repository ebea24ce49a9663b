//! The retry cooldown, enforced by the dashboard itself (the relay enforces its own): one retry per credential per
//! period.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use tessera_proto::ids::CredentialId;

/// How long after a retry the next one for the same credential is refused.
pub(crate) const RETRY_COOLDOWN: Duration = Duration::from_secs(30);

/// The last retry of each credential.
#[derive(Debug)]
pub(crate) struct Cooldown {
    period: Duration,
    last: Mutex<HashMap<CredentialId, Instant>>,
}

impl Cooldown {
    pub(crate) fn new(period: Duration) -> Self {
        Self {
            period,
            last: Mutex::new(HashMap::new()),
        }
    }

    /// Starts a cooldown for `id` at `now`, or the time left of the running one.
    pub(crate) fn try_start(&self, id: CredentialId, now: Instant) -> Result<(), Duration> {
        let mut last = self.last.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(left) = Self::left(self.period, last.get(&id), now) {
            return Err(left);
        }
        last.insert(id, now);
        Ok(())
    }

    /// The time left of `id`'s cooldown at `now`, if one runs.
    pub(crate) fn remaining(&self, id: &CredentialId, now: Instant) -> Option<Duration> {
        let last = self.last.lock().unwrap_or_else(PoisonError::into_inner);
        Self::left(self.period, last.get(id), now)
    }

    fn left(period: Duration, at: Option<&Instant>, now: Instant) -> Option<Duration> {
        let elapsed = now.saturating_duration_since(*at?);
        (elapsed < period).then(|| period.saturating_sub(elapsed))
    }
}
