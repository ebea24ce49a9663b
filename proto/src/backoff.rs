//! Exponential backoff with full jitter: the n-th delay is uniform in `[min, min(max, min·2ⁿ)]`.

use std::time::Duration;

/// Reconnect delays.
#[derive(Debug, Clone)]
pub struct Backoff {
    min_ms: u64,
    max_ms: u64,
    attempt: u32,
}

impl Backoff {
    /// Delays between `min_ms` and `max_ms`.
    pub fn new(min_ms: u64, max_ms: u64) -> Self {
        Self {
            min_ms: min_ms.max(1),
            max_ms: max_ms.max(min_ms.max(1)),
            attempt: 0,
        }
    }

    /// The ceiling of the next delay (no jitter).
    pub fn ceiling_ms(&self) -> u64 {
        self.min_ms
            .saturating_mul(1u64.checked_shl(self.attempt.min(32)).unwrap_or(u64::MAX))
            .min(self.max_ms)
    }

    /// The next delay, jittered.
    pub fn next_delay(&mut self) -> Duration {
        let ceiling = self.ceiling_ms();
        self.attempt = self.attempt.saturating_add(1);
        let span = ceiling - self.min_ms;
        let jitter = if span == 0 {
            0
        } else {
            u64::from_le_bytes(crate::random::array::<8>()) % (span + 1)
        };
        Duration::from_millis(self.min_ms + jitter)
    }

    /// After a successful connection.
    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

#[cfg(test)]
mod tests;
