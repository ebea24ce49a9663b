//! Alerts (docs/operations.md, "Alerts", lists them), deduplicated per (kind, subject) over a window per kind.

mod subject;

use serde::{Deserialize, Serialize};

pub use subject::Subject;

/// Alert kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum AlertKind {
    /// A delivery retired after the last attempt.
    CredentialSyncStalled,
    /// An agent asked for too many missing credentials.
    AgentCredentialFlood,
    /// A plaintext did not match its commitment.
    CredentialCommitmentMismatch,
    /// A peer supplied a mismatching plaintext.
    PeerAgentIntegrityFailure,
    /// Too many mismatches involving one agent.
    AgentCommitmentFlood,
    /// The coordination backend (multi-replica) is degraded.
    RedisCoordinationDegraded,
    /// An agent holds a credential whose statement's signer (an operator certificate) was revoked since.
    CredentialSignerRevoked,
    /// An agent is in the last part of its certificate's lifetime and no renewed certificate is certified for it.
    CertificateExpiring,
    /// An agent could not validate its renewed certificate (the broker refused it, or no registration round trip)
    /// and kept the old one.
    AgentRotationFailed,
    /// An agent has not acknowledged a purge (tombstone or scope revoke) within the configured time.
    CredentialPurgeOverdue,
}

/// Severity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Medium.
    Medium,
    /// High.
    High,
    /// Critical.
    Critical,
}

const HOUR_MS: u64 = 3_600_000;

impl AlertKind {
    /// Its severity (docs/operations.md, "Alerts").
    pub fn severity(self) -> Severity {
        match self {
            Self::CredentialSyncStalled
            | Self::RedisCoordinationDegraded
            | Self::CredentialPurgeOverdue => Severity::Medium,
            Self::AgentCredentialFlood
            | Self::AgentCommitmentFlood
            | Self::CredentialSignerRevoked
            | Self::CertificateExpiring
            | Self::AgentRotationFailed => Severity::High,
            Self::CredentialCommitmentMismatch | Self::PeerAgentIntegrityFailure => {
                Severity::Critical
            }
        }
    }

    /// How long a raised alert suppresses the same (kind, subject); `None`: raised once, ever.
    pub fn dedup_ms(self) -> Option<u64> {
        match self {
            Self::CredentialSyncStalled
            | Self::CertificateExpiring
            | Self::CredentialPurgeOverdue => Some(24 * HOUR_MS),
            Self::PeerAgentIntegrityFailure => None,
            _ => Some(HOUR_MS),
        }
    }

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::CredentialSyncStalled => "credential_sync_stalled",
            Self::AgentCredentialFlood => "agent_credential_flood",
            Self::CredentialCommitmentMismatch => "credential_commitment_mismatch",
            Self::PeerAgentIntegrityFailure => "peer_agent_integrity_failure",
            Self::AgentCommitmentFlood => "agent_commitment_flood",
            Self::RedisCoordinationDegraded => "redis_coordination_degraded",
            Self::CredentialSignerRevoked => "credential_signer_revoked",
            Self::CertificateExpiring => "certificate_expiring",
            Self::AgentRotationFailed => "agent_rotation_failed",
            Self::CredentialPurgeOverdue => "credential_purge_overdue",
        }
    }
}

/// A raised alert, with how often it recurred while suppressed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Alert {
    /// Kind.
    pub kind: AlertKind,
    /// Severity.
    pub severity: Severity,
    /// What it is about (`agent=edge-1`, `credential=<id> peer=edge-2`).
    pub subject: String,
    /// When it was (last) raised, Unix ms.
    pub raised_ms: u64,
    /// When it last recurred, Unix ms.
    pub last_ms: u64,
    /// Occurrences, including suppressed ones.
    pub count: u64,
    /// A human message.
    pub message: String,
    /// When an operator acknowledged it (`POST /v1/alerts/{id}/ack`), Unix ms; cleared when it is raised again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acknowledged_ms: Option<u64>,
}

impl Alert {
    /// The deduplication key.
    pub fn key(kind: AlertKind, subject: &str) -> String {
        format!("{}|{subject}", kind.as_str())
    }

    /// Its id in the admin API: the first 16 hex digits of SHA-256 over its deduplication key (stable across
    /// recurrences, URL-safe whatever the subject holds).
    pub fn id(&self) -> String {
        use sha2::Digest as _;
        let digest = sha2::Sha256::digest(Self::key(self.kind, &self.subject).as_bytes());
        digest
            .iter()
            .take(8)
            .fold(String::with_capacity(16), |mut s, b| {
                use std::fmt::Write as _;
                let _ = write!(s, "{b:02x}");
                s
            })
    }

    /// Applies a new occurrence to `existing`: returns the updated alert and whether it is raised (not
    /// suppressed).
    pub fn occur(
        existing: Option<Alert>,
        kind: AlertKind,
        subject: &str,
        message: String,
        now_ms: u64,
    ) -> (Alert, bool) {
        match existing {
            Some(mut a) => {
                a.count += 1;
                a.last_ms = now_ms;
                let expired = kind
                    .dedup_ms()
                    .is_some_and(|w| now_ms.saturating_sub(a.raised_ms) >= w);
                if expired {
                    a.raised_ms = now_ms;
                    a.message = message;
                    a.acknowledged_ms = None;
                }
                (a, expired)
            }
            None => (
                Alert {
                    kind,
                    severity: kind.severity(),
                    subject: subject.to_owned(),
                    raised_ms: now_ms,
                    last_ms: now_ms,
                    count: 1,
                    message,
                    acknowledged_ms: None,
                },
                true,
            ),
        }
    }
}

#[cfg(test)]
mod tests;
