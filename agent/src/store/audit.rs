//! Entries of the bounded local audit: reads by workloads (who: uid, gid, pid; what: operation, credential name;
//! when; the outcome); the jobs the relay dispatched (job id, template, the parameter a refusal concerns; never a
//! credential value); and what the agent refused on the wire for its own reasons (`op` `delivery` or `rewrap`,
//! with the agent's own uid, gid and pid, outcome `REFUSED`, the typed reason in `detail`).

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
    /// Refused before acting: a job (`detail` has the code: `PARAM_REFUSED`, `JOB_EXPIRED`, `JOB_DUPLICATE`...), or
    /// a message from the relay (a delivery or rewrap request, `detail` has the reason).
    Refused,
    /// A credential forgotten on an operator-signed tombstone (`op` `purge`, `detail` has the id and version).
    Purged,
    /// A step of a key rotation (`op` `rotation`, `detail` names the step and the certificate serials).
    Rotation,
    /// A step of a store-key rotation (`op` `store_key`, `detail` names the step, the generations and sealers).
    StoreKey,
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

impl AuditEntry {
    /// An entry for something the agent itself refused on the wire (`op`: `delivery` or `rewrap`).
    pub fn wire_refusal(op: &str, name: Option<&str>, detail: String) -> Self {
        let at = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
        Self {
            seq: 0,
            at,
            uid: rustix::process::geteuid().as_raw(),
            gid: rustix::process::getegid().as_raw(),
            pid: Some(rustix::process::getpid().as_raw_nonzero().get()),
            op: op.to_owned(),
            name: name.map(str::to_owned),
            outcome: AuditOutcome::Refused,
            detail: Some(detail),
            job_id: None,
            param: None,
        }
    }
}
