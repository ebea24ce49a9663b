//! The reconciler's backoff table (docs/protocol.md, "Relay: a delivery"): after the n-th failed attempt, wait 30 s, 2 min, 8 min, 30 min, then
//! 2 h for attempts 4 to 9; after the 10th the row is retired (stalled).

/// Backoff settings.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct Backoff {
    /// Delays after attempts 1, 2, 3, ..., milliseconds; the last repeats.
    pub delays_ms: Vec<u64>,
    /// Attempts after which a row is retired.
    pub max_attempts: u32,
}

impl Default for Backoff {
    fn default() -> Self {
        const MIN: u64 = 60_000;
        Self {
            delays_ms: vec![30_000, 2 * MIN, 8 * MIN, 30 * MIN, 120 * MIN],
            max_attempts: 10,
        }
    }
}

/// What to do after a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Try again at this time.
    RetryAt(u64),
    /// Give up: the row is stalled.
    Retire,
}

impl Backoff {
    /// After `attempts` failures (1 = the first), at `now_ms`.
    pub fn after(&self, attempts: u32, now_ms: u64) -> Next {
        if attempts >= self.max_attempts {
            return Next::Retire;
        }
        let i = usize::try_from(attempts.saturating_sub(1)).unwrap_or(usize::MAX);
        let delay = self
            .delays_ms
            .get(i)
            .or(self.delays_ms.last())
            .copied()
            .unwrap_or(30_000);
        Next::RetryAt(now_ms.saturating_add(delay))
    }
}

#[cfg(test)]
mod tests;
