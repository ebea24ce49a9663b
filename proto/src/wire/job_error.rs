//! The typed error codes of a job result. On the wire a refused or failed job's `error` is `"CODE: detail"` with
//! one of these codes (a stable prefix, so a relay or operator tool of any version can show it and a current one
//! can parse it); the detail is for people and never carries credential values.

use super::JobResult;

/// Why a job did not run, or did not finish.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum JobErrorCode {
    /// The template is not defined in the agent's configuration.
    UnknownTemplate,
    /// A parameter was undeclared, missing, or refused by its declared type.
    ParamRefused,
    /// A credential the template does not declare was asked for.
    CredentialRefused,
    /// A credential the template needs could not be had (not held, JIT repair refused or timed out).
    CredentialUnavailable,
    /// The dispatch's `expires_at` has passed (or was absent).
    JobExpired,
    /// The dispatch's `expires_at` is further ahead than the agent accepts ([`super::MAX_JOB_TTL_SECS`]).
    JobExpiryTooFar,
    /// The agent has already run or refused this job id.
    JobDuplicate,
    /// The agent's record of seen jobs is full; nothing ran.
    JobBusy,
    /// The program could not be started.
    SpawnFailed,
    /// The job was killed at its timeout.
    TimedOut,
    /// The agent could not record or read what it needed (its store).
    Internal,
}

const ALL: [JobErrorCode; 11] = [
    JobErrorCode::UnknownTemplate,
    JobErrorCode::ParamRefused,
    JobErrorCode::CredentialRefused,
    JobErrorCode::CredentialUnavailable,
    JobErrorCode::JobExpired,
    JobErrorCode::JobExpiryTooFar,
    JobErrorCode::JobDuplicate,
    JobErrorCode::JobBusy,
    JobErrorCode::SpawnFailed,
    JobErrorCode::TimedOut,
    JobErrorCode::Internal,
];

impl JobErrorCode {
    /// The code as it appears on the wire.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::UnknownTemplate => "UNKNOWN_TEMPLATE",
            Self::ParamRefused => "PARAM_REFUSED",
            Self::CredentialRefused => "CREDENTIAL_REFUSED",
            Self::CredentialUnavailable => "CREDENTIAL_UNAVAILABLE",
            Self::JobExpired => "JOB_EXPIRED",
            Self::JobExpiryTooFar => "JOB_EXPIRY_TOO_FAR",
            Self::JobDuplicate => "JOB_DUPLICATE",
            Self::JobBusy => "JOB_BUSY",
            Self::SpawnFailed => "SPAWN_FAILED",
            Self::TimedOut => "TIMED_OUT",
            Self::Internal => "INTERNAL",
        }
    }

    /// The code named `s`.
    pub fn parse(s: &str) -> Option<Self> {
        ALL.into_iter().find(|c| c.as_str() == s)
    }

    /// The wire form of an error: `"CODE: detail"`.
    pub fn with(self, detail: impl std::fmt::Display) -> String {
        format!("{}: {detail}", self.as_str())
    }
}

impl std::fmt::Display for JobErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl JobResult {
    /// The typed code of `error`, if it has one.
    pub fn error_code(&self) -> Option<JobErrorCode> {
        let error = self.error.as_deref()?;
        let (code, _) = error.split_once(':')?;
        JobErrorCode::parse(code)
    }
}

#[cfg(test)]
mod tests;
