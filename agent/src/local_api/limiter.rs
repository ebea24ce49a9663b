//! Concurrent requests per caller uid.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Counts requests in flight per uid.
#[derive(Debug, Clone)]
pub struct UidLimiter {
    max: usize,
    inflight: Arc<Mutex<HashMap<u32, usize>>>,
}

/// Releases its slot on drop.
#[derive(Debug)]
pub struct Permit {
    uid: u32,
    inflight: Arc<Mutex<HashMap<u32, usize>>>,
}

impl UidLimiter {
    /// At most `max` per uid.
    pub fn new(max: usize) -> Self {
        Self {
            max,
            inflight: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// A slot for `uid`, or `None` when it has `max` in flight.
    pub fn try_acquire(&self, uid: u32) -> Option<Permit> {
        let mut map = self.inflight.lock().ok()?;
        let n = map.entry(uid).or_insert(0);
        if *n >= self.max {
            return None;
        }
        *n += 1;
        Some(Permit {
            uid,
            inflight: self.inflight.clone(),
        })
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        if let Ok(mut map) = self.inflight.lock() {
            if let Some(n) = map.get_mut(&self.uid) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    map.remove(&self.uid);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
