//! Entries of the bounded local audit of reads: who (uid, gid, pid), what (operation, credential name), when, and
//! the outcome; and of the jobs the relay dispatched (job id, template, the parameter a refusal concerns; never a
//! credential value).

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
    /// A job started, with its credentials injected.
    Ran,
    /// A job refused before it started (`detail` has the code: `PARAM_REFUSED`, `JOB_EXPIRED`, `JOB_DUPLICATE`...).
    Refused,
}

/// One audit entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditEntry {
    /// Sequence number (assigned by the store).
    pub seq: u64,
    /// Unix seconds.
    pub at: i64,
    /// Caller uid (for a job: the agent's own, the job came from the relay).
    pub uid: u32,
    /// Caller gid (likewise).
    pub gid: u32,
    /// Caller pid, if the kernel reported it (none for a job).
    pub pid: Option<i32>,
    /// `get`, `meta`, `list`, or `job:<template>`.
    pub op: String,
    /// The credential name, if any (for a job that ran: the credentials injected, comma-separated).
    pub name: Option<String>,
    /// What happened.
    pub outcome: AuditOutcome,
    /// The public error code, if refused (for a job: `CODE: detail`, naming a rule, never quoting a value).
    pub detail: Option<String>,
    /// The job, for `job:` entries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_id: Option<uuid::Uuid>,
    /// The parameter a job refusal concerns.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub param: Option<String>,
}
