//! Exponential backoff with full jitter: the n-th delay is uniform in `[min, min(max, min·2ⁿ)]`; and the spread-out,
//! doubling wait before an agent sends an unacknowledged registration again ([`resend_after_ms`]).

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

/// How many times the wait before a registration is sent again doubles: at most 4 × `retry_ms` (40 s by default),
/// so that an agent whose registrations were lost (a relay that came back without its session) is not long away.
const RESEND_DOUBLINGS: u32 = 2;

/// How long an agent waits for the acknowledgement of a registration before it sends it again, when `resent`
/// registrations of this connection were already sent again: `retry_ms` doubled each time (at most 4 ×), times a
/// factor from 0.75 to 1.25 set by `spread` (a number of the agent's own: its certificate serial's last digits).
///
/// A fixed interval turns a registration herd into congestion collapse: when the relay is behind, every agent's
/// retry adds to the queue that made it late, and the relay spends its time on registrations it has already
/// handled (docs/benchmarks.md, "Fleet load"). Doubling lets the queue drain; the spread keeps a fleet that
/// registered at once from retrying at once.
pub fn resend_after_ms(retry_ms: u64, resent: u32, spread: u16) -> u64 {
    let base = retry_ms.saturating_mul(1u64 << resent.min(RESEND_DOUBLINGS));
    // base × (0.75 + 0.5 × spread / 65536), in integers.
    let factor = 49_152 + u64::from(spread) / 2;
    u64::try_from(u128::from(base) * u128::from(factor) / 65_536).unwrap_or(u64::MAX)
}

/// The spread of [`resend_after_ms`] for an agent whose certificate serial is `serial_hex` (random digits from the
/// CA): its last four hex digits, or the middle of the range when it has none.
pub fn spread_of_serial(serial_hex: &str) -> u16 {
    let tail = serial_hex
        .get(serial_hex.len().saturating_sub(4)..)
        .unwrap_or("");
    u16::from_str_radix(tail, 16).unwrap_or(0x8000)
}

#[cfg(test)]
mod tests;
