//! Entries of the bounded local audit of reads: who (uid, gid, pid), what (operation, credential name), when, and
//! the outcome.

use serde::{Deserialize, Serialize};

/// The outcome of an audited request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[non_exhaustive]
pub enum AuditOutcome {
    /// Served.
    Served,
    /// Refused by policy.
    NotGranted,
    /// Not held and not repaired.
    Unavailable,
    /// Rejected for too many concurrent requests.
    Busy,
    /// A bad request.
    Invalid,
    /// An internal failure.
    Internal,
}

/// One audit entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditEntry {
    /// Sequence number (assigned by the store).
    pub seq: u64,
    /// Unix seconds.
    pub at: i64,
    /// Caller uid.
    pub uid: u32,
    /// Caller gid.
    pub gid: u32,
    /// Caller pid, if the kernel reported it.
    pub pid: Option<i32>,
    /// `get`, `meta`, `list`, or `job:<template>`.
    pub op: String,
    /// The credential name, if any.
    pub name: Option<String>,
    /// What happened.
    pub outcome: AuditOutcome,
    /// The public error code, if refused.
    pub detail: Option<String>,
}
