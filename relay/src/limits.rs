//! Per-agent rate limiting (token bucket) and sliding-window counters for the flood alerts.

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;

/// A token bucket per key: `burst` tokens, refilled at `per_minute`.
#[derive(Debug)]
pub struct RateLimiter<K> {
    burst: f64,
    per_ms: f64,
    buckets: HashMap<K, (f64, u64)>,
}

impl<K: Eq + Hash + Clone> RateLimiter<K> {
    /// A limiter allowing `burst` at once and `per_minute` sustained.
    pub fn new(burst: u32, per_minute: u32) -> Self {
        Self {
            burst: f64::from(burst),
            per_ms: f64::from(per_minute) / 60_000.0,
            buckets: HashMap::new(),
        }
    }

    /// New rates (a reload): buckets keep their tokens, capped at the new burst.
    pub fn set_rates(&mut self, burst: u32, per_minute: u32) {
        self.burst = f64::from(burst);
        self.per_ms = f64::from(per_minute) / 60_000.0;
        for (tokens, _) in self.buckets.values_mut() {
            *tokens = tokens.min(self.burst);
        }
    }

    /// Takes a token for `key` at `now_ms`; false when none is left.
    pub fn allow(&mut self, key: &K, now_ms: u64) -> bool {
        let (tokens, last) = self
            .buckets
            .entry(key.clone())
            .or_insert((self.burst, now_ms));
        #[allow(clippy::cast_precision_loss)] // milliseconds since the last call: far below 2^52
        let elapsed = now_ms.saturating_sub(*last) as f64;
        *tokens = (*tokens + elapsed * self.per_ms).min(self.burst);
        *last = now_ms;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// Counts events per key in a sliding window.
#[derive(Debug)]
pub struct WindowCounter<K> {
    window_ms: u64,
    events: HashMap<K, VecDeque<u64>>,
}

impl<K: Eq + Hash + Clone> WindowCounter<K> {
    /// Counting over `window_ms`.
    pub fn new(window_ms: u64) -> Self {
        Self {
            window_ms,
            events: HashMap::new(),
        }
    }

    /// A new window (a reload); the events recorded are kept.
    pub fn set_window(&mut self, window_ms: u64) {
        self.window_ms = window_ms;
    }

    /// Records an event for `key` at `now_ms` and returns how many fall in the window ending now.
    pub fn record(&mut self, key: &K, now_ms: u64) -> usize {
        let q = self.events.entry(key.clone()).or_default();
        q.push_back(now_ms);
        while q
            .front()
            .is_some_and(|t| now_ms.saturating_sub(*t) >= self.window_ms)
        {
            q.pop_front();
        }
        q.len()
    }
}

#[cfg(test)]
mod tests;
