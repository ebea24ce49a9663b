//! The wall clock as the agent uses it: Unix seconds (0 before 1970, saturating far in the future). The one place
//! the agent reads it; state machines take the time as an argument instead.

/// Now, in Unix seconds.
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}
