//! What the relay writes in its audit chain, typed: one [`AuditEvent`] variant per entry kind, with the facts that
//! kind records. Each turns into the entry's `kind`, `link` and `data` exactly as the relay wrote them before the
//! types existed, so existing chains verify and `tessera audit` reads them unchanged; `audit_event/tests.rs` pins
//! every kind's JSON, and docs/protocol.md ("Relay audit events") lists them.
//!
//! What this file does not do: decide when an event happens (the engine's handlers do) or chain and store it
//! (`Engine::audit`, then the event's one commit).

use std::collections::BTreeMap;

use tessera_proto::cert::CertSerial;
use tessera_proto::ids::{AgentId, CredentialId, CredentialName, OperatorId, TemplateName};
use tessera_proto::receipt::{in_audit, Receipt, ReceiptBody};
use tessera_proto::wire::RegistrationMode;

use crate::lifecycle::Source;

/// An agent's receipt, verified, recorded with the entry it proves.
pub(crate) type Receipted<'a> = Option<(&'a Receipt, &'a ReceiptBody)>;

/// One audit entry, before it is chained.
#[derive(Debug)]
pub(crate) enum AuditEvent<'a> {
    /// A message from an agent dropped as malformed, unverifiable or out of place.
    DroppedMessage {
        /// The agent whose topic it came on (`?` when the topic is not an agent's).
        agent: &'a str,
        /// Why.
        reason: &'a str,
    },
    /// An answer that fits no in-flight delivery as it stands.
    UnsolicitedResponse {
        /// Who sent it.
        agent: &'a AgentId,
        /// The request or delivery id it names.
        request: uuid::Uuid,
        /// Which binding failed.
        reason: &'a str,
    },
    /// A delivery starts (the write-ahead entry a `rewrap_final` closes).
    RewrapPending {
        /// Credential.
        credential: CredentialId,
        /// Version.
        version: u64,
        /// Target.
        target: &'a AgentId,
    },
    /// A delivery the target stored and proved.
    RewrapDelivered {
        /// The `rewrap_pending` entry it closes.
        pending: u64,
        /// Credential.
        credential: CredentialId,
        /// Version.
        version: u64,
        /// Target.
        target: &'a AgentId,
        /// Where the envelope came from.
        source: &'a Source,
        /// The delivery id.
        delivery: uuid::Uuid,
        /// The creator's commitment, which the target's digest matched.
        digest: &'a [u8; 32],
        /// The target's receipt.
        receipt: Receipted<'a>,
    },
    /// A delivery that ended without delivery (`exhausted`, `timeout`, `target_refused:…`).
    RewrapFailed {
        /// The `rewrap_pending` entry it closes.
        pending: u64,
        /// Internal result.
        result: &'a str,
        /// Credential.
        credential: CredentialId,
        /// Target.
        target: &'a AgentId,
    },
    /// A rewrap asked for the target's old key, ended because the target registered a new one (asked again).
    RewrapResealed {
        /// The `rewrap_pending` entry it closes.
        pending: u64,
        /// Credential.
        credential: CredentialId,
        /// Target.
        target: &'a AgentId,
    },
    /// A target's plaintext did not match the creator's commitment.
    CommitmentMismatch {
        /// The `rewrap_pending` entry of the delivery (`None` for a delivery this relay never dispatched).
        pending: Option<u64>,
        /// Credential.
        credential: CredentialId,
        /// Version.
        version: u64,
        /// Target.
        target: &'a AgentId,
        /// The source's name (`operator`, a peer, or `not_dispatched_by_this_relay`).
        source: &'a str,
        /// The delivery id, for a delivery this relay never dispatched.
        delivery: Option<uuid::Uuid>,
    },
    /// A JIT request refused before any dispatch.
    JitRefused {
        /// The asking agent.
        agent: &'a AgentId,
        /// The name asked for.
        name: &'a CredentialName,
        /// The internal refusal.
        reason: String,
    },
    /// An agent registered.
    AgentRegistered {
        /// The agent.
        agent: &'a AgentId,
        /// How.
        mode: RegistrationMode,
        /// Deliveries its registration left pending.
        backfill: u32,
        /// Its certificate's serial.
        serial: &'a CertSerial,
    },
    /// An agent reported held credentials whose signer is revoked.
    CredentialSignerRevoked {
        /// The agent.
        agent: &'a AgentId,
        /// Its reason.
        reason: &'a str,
        /// The revocation list it judged by.
        list_serial: u64,
        /// The known credentials' ids (at most a bounded number).
        credentials: Vec<String>,
        /// How many it named that the relay knows.
        known: usize,
        /// How many it named that the relay does not know.
        unknown: usize,
    },
    /// An operator put a credential (a new one, a version, a scope change).
    CredentialPut {
        /// Credential.
        credential: CredentialId,
        /// Name.
        name: &'a CredentialName,
        /// Version.
        version: u64,
        /// Scope revision.
        scope_revision: u64,
        /// The operator who signed the statement.
        creator: &'a OperatorId,
    },
    /// An operator removed a credential from the relay.
    CredentialRemoved {
        /// Credential.
        credential: CredentialId,
    },
    /// An operator's tombstone was accepted.
    CredentialTombstoned {
        /// Credential.
        credential: CredentialId,
        /// Name.
        name: &'a CredentialName,
        /// The version it deletes.
        version: u64,
        /// The operator who signed it.
        creator: &'a OperatorId,
    },
    /// The tombstone went to the credential's agents.
    PurgeSent {
        /// Credential.
        credential: CredentialId,
        /// How many agents.
        agents: usize,
    },
    /// The tombstone went again to an agent at its registration.
    PurgeSentAtRegistration {
        /// Credential.
        credential: CredentialId,
        /// The agent.
        agent: &'a AgentId,
    },
    /// A scope change that leaves an agent out was sent to it.
    RevokeSent {
        /// Credential.
        credential: CredentialId,
        /// The agent.
        agent: &'a AgentId,
        /// The new scope revision.
        scope_revision: u64,
    },
    /// An agent purged a credential and proved it.
    CredentialPurged {
        /// Credential.
        credential: CredentialId,
        /// The agent.
        agent: &'a AgentId,
        /// The version it purged.
        version: u64,
        /// The scope revision that left it out, for a scope revoke.
        scope_revision: Option<u64>,
        /// Its receipt.
        receipt: (&'a Receipt, &'a ReceiptBody),
    },
    /// An operator's revocation list was accepted.
    RevocationList {
        /// Its serial.
        serial: u64,
        /// How many certificates it revokes.
        revoked: usize,
    },
    /// An operator acknowledged an alert.
    AlertAcknowledged {
        /// The alert's id.
        alert: &'a str,
        /// Its kind.
        kind: &'a str,
        /// The operator.
        operator: &'a str,
    },
    /// A job was dispatched.
    JobDispatched {
        /// The job.
        job: uuid::Uuid,
        /// Its template.
        template: &'a TemplateName,
        /// The agent it went to.
        agent: &'a AgentId,
        /// When it expires, Unix seconds.
        expires_at: i64,
    },
    /// An agent refused a second copy of a job.
    JobDuplicate {
        /// The job.
        job: uuid::Uuid,
        /// The agent.
        agent: &'a AgentId,
    },
    /// A job's result.
    JobResult {
        /// The job.
        job: uuid::Uuid,
        /// The agent.
        agent: &'a AgentId,
        /// Its exit code (`None` when it did not exit).
        exit_code: Option<i32>,
    },
    /// An agent's renewal request was queued for the operators' CA.
    RenewalRequested {
        /// The agent.
        agent: &'a AgentId,
        /// The serial it renews.
        serial: &'a CertSerial,
        /// The request's digest, hex.
        request: String,
    },
    /// An operator's CA certified a renewal; the certificate was forwarded.
    RenewalCertified {
        /// The agent.
        agent: &'a AgentId,
        /// The new certificate's serial.
        serial: &'a CertSerial,
        /// The serial it renews.
        renews: &'a CertSerial,
    },
    /// An operator asked an agent to rotate its keys.
    RotationRequested {
        /// The agent.
        agent: &'a AgentId,
    },
    /// An agent switched to its renewed certificate and proved it.
    RotationCompleted {
        /// The agent.
        agent: &'a AgentId,
        /// The serial it left.
        previous_serial: &'a CertSerial,
        /// The serial it switched to.
        serial: &'a CertSerial,
        /// Its receipt, signed with the new key.
        receipt: (&'a Receipt, &'a ReceiptBody),
    },
    /// An agent reported a failed rotation.
    RotationFailed {
        /// The agent.
        agent: &'a AgentId,
        /// The serial it reported.
        serial: &'a CertSerial,
        /// Its reason.
        reason: String,
        /// Whether the relay had a renewal queued for it.
        queued: bool,
    },
}

/// An entry's kind, link and data, as chained.
pub(crate) struct Entry {
    /// The kind.
    pub kind: &'static str,
    /// The pending entry it closes.
    pub link: Option<u64>,
    /// The facts.
    pub data: BTreeMap<String, String>,
}

fn fields<const N: usize>(pairs: [(&str, String); N]) -> BTreeMap<String, String> {
    pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
}

fn with_receipt(
    mut data: BTreeMap<String, String>,
    receipt: Receipted<'_>,
) -> BTreeMap<String, String> {
    if let Some((r, body)) = receipt {
        data.extend(in_audit::fields(r, body).map(|(k, v)| (k.to_owned(), v)));
    }
    data
}

impl AuditEvent<'_> {
    /// The entry it is written as.
    #[allow(clippy::too_many_lines)] // one arm per kind, each a few lines: splitting it would hide the table
    pub(crate) fn entry(self) -> Entry {
        let (kind, link, data) = match self {
            Self::DroppedMessage { agent, reason } => (
                "dropped_message",
                None,
                fields([("agent", agent.to_owned()), ("reason", reason.to_owned())]),
            ),
            Self::UnsolicitedResponse {
                agent,
                request,
                reason,
            } => (
                "unsolicited_response",
                None,
                fields([
                    ("agent", agent.as_str().to_owned()),
                    ("request", request.to_string()),
                    ("reason", reason.to_owned()),
                ]),
            ),
            Self::RewrapPending {
                credential,
                version,
                target,
            } => (
                "rewrap_pending",
                None,
                fields([
                    ("credential", credential.to_string()),
                    ("version", version.to_string()),
                    ("target", target.as_str().to_owned()),
                ]),
            ),
            Self::RewrapDelivered {
                pending,
                credential,
                version,
                target,
                source,
                delivery,
                digest,
                receipt,
            } => (
                "rewrap_final",
                Some(pending),
                with_receipt(
                    fields([
                        ("result", "success".to_owned()),
                        ("credential", credential.to_string()),
                        ("version", version.to_string()),
                        ("target", target.as_str().to_owned()),
                        ("peer", source.name().to_owned()),
                        ("delivery", delivery.to_string()),
                        ("digest", tessera_proto::b64_encode(digest)),
                    ]),
                    receipt,
                ),
            ),
            Self::RewrapFailed {
                pending,
                result,
                credential,
                target,
            } => (
                "rewrap_final",
                Some(pending),
                fields([
                    ("result", result.to_owned()),
                    ("credential", credential.to_string()),
                    ("target", target.as_str().to_owned()),
                ]),
            ),
            Self::RewrapResealed {
                pending,
                credential,
                target,
            } => (
                "rewrap_final",
                Some(pending),
                fields([
                    ("result", "resealed".to_owned()),
                    ("credential", credential.to_string()),
                    ("target", target.as_str().to_owned()),
                ]),
            ),
            Self::CommitmentMismatch {
                pending,
                credential,
                version,
                target,
                source,
                delivery,
            } => {
                let mut data = fields([
                    ("credential", credential.to_string()),
                    ("version", version.to_string()),
                    ("target", target.as_str().to_owned()),
                    ("source", source.to_owned()),
                ]);
                if let Some(d) = delivery {
                    data.insert("delivery".to_owned(), d.to_string());
                }
                ("commitment_mismatch_detected", pending, data)
            }
            Self::JitRefused {
                agent,
                name,
                reason,
            } => (
                "jit_refused",
                None,
                fields([
                    ("agent", agent.as_str().to_owned()),
                    ("name", name.as_str().to_owned()),
                    ("reason", reason),
                ]),
            ),
            Self::AgentRegistered {
                agent,
                mode,
                backfill,
                serial,
            } => (
                "agent_registered",
                None,
                fields([
                    ("agent", agent.as_str().to_owned()),
                    ("mode", format!("{mode:?}")),
                    ("backfill", backfill.to_string()),
                    ("serial", serial.to_string()),
                ]),
            ),
            Self::CredentialSignerRevoked {
                agent,
                reason,
                list_serial,
                credentials,
                known,
                unknown,
            } => (
                "credential_signer_revoked",
                None,
                fields([
                    ("agent", agent.as_str().to_owned()),
                    ("reason", reason.to_owned()),
                    ("list_serial", list_serial.to_string()),
                    ("credentials", credentials.join(",")),
                    ("known", known.to_string()),
                    ("unknown", unknown.to_string()),
                ]),
            ),
            Self::CredentialPut {
                credential,
                name,
                version,
                scope_revision,
                creator,
            } => (
                "credential_put",
                None,
                fields([
                    ("credential", credential.to_string()),
                    ("name", name.as_str().to_owned()),
                    ("version", version.to_string()),
                    ("scope_revision", scope_revision.to_string()),
                    ("creator", creator.as_str().to_owned()),
                ]),
            ),
            Self::CredentialRemoved { credential } => (
                "credential_removed",
                None,
                fields([("credential", credential.to_string())]),
            ),
            Self::CredentialTombstoned {
                credential,
                name,
                version,
                creator,
            } => (
                "credential_tombstoned",
                None,
                fields([
                    ("credential", credential.to_string()),
                    ("name", name.as_str().to_owned()),
                    ("version", version.to_string()),
                    ("creator", creator.as_str().to_owned()),
                ]),
            ),
            Self::PurgeSent { credential, agents } => (
                "credential_purge_sent",
                None,
                fields([
                    ("credential", credential.to_string()),
                    ("agents", agents.to_string()),
                ]),
            ),
            Self::PurgeSentAtRegistration { credential, agent } => (
                "credential_purge_sent",
                None,
                fields([
                    ("credential", credential.to_string()),
                    ("agent", agent.as_str().to_owned()),
                    ("at", "registration".to_owned()),
                ]),
            ),
            Self::RevokeSent {
                credential,
                agent,
                scope_revision,
            } => (
                "credential_revoke_sent",
                None,
                fields([
                    ("credential", credential.to_string()),
                    ("agent", agent.as_str().to_owned()),
                    ("scope_revision", scope_revision.to_string()),
                ]),
            ),
            Self::CredentialPurged {
                credential,
                agent,
                version,
                scope_revision,
                receipt,
            } => {
                let mut data = fields([
                    ("credential", credential.to_string()),
                    ("agent", agent.as_str().to_owned()),
                    ("version", version.to_string()),
                ]);
                if let Some(r) = scope_revision {
                    data.insert("scope_revision".to_owned(), r.to_string());
                }
                ("credential_purged", None, with_receipt(data, Some(receipt)))
            }
            Self::RevocationList { serial, revoked } => (
                "revocation_list",
                None,
                fields([
                    ("serial", serial.to_string()),
                    ("revoked", revoked.to_string()),
                ]),
            ),
            Self::AlertAcknowledged {
                alert,
                kind,
                operator,
            } => (
                "alert_acknowledged",
                None,
                fields([
                    ("alert", alert.to_owned()),
                    ("kind", kind.to_owned()),
                    ("operator", operator.to_owned()),
                ]),
            ),
            Self::JobDispatched {
                job,
                template,
                agent,
                expires_at,
            } => (
                "job_dispatched",
                None,
                fields([
                    ("job", job.to_string()),
                    ("template", template.as_str().to_owned()),
                    ("agent", agent.as_str().to_owned()),
                    ("expires_at", expires_at.to_string()),
                ]),
            ),
            Self::JobDuplicate { job, agent } => (
                "job_duplicate",
                None,
                fields([
                    ("job", job.to_string()),
                    ("agent", agent.as_str().to_owned()),
                ]),
            ),
            Self::JobResult {
                job,
                agent,
                exit_code,
            } => (
                "job_result",
                None,
                fields([
                    ("job", job.to_string()),
                    ("agent", agent.as_str().to_owned()),
                    ("exit_code", format!("{exit_code:?}")),
                ]),
            ),
            Self::RenewalRequested {
                agent,
                serial,
                request,
            } => (
                "renewal_requested",
                None,
                fields([
                    ("agent", agent.as_str().to_owned()),
                    ("serial", serial.to_string()),
                    ("request", request),
                ]),
            ),
            Self::RenewalCertified {
                agent,
                serial,
                renews,
            } => (
                "renewal_certified",
                None,
                fields([
                    ("agent", agent.as_str().to_owned()),
                    ("serial", serial.to_string()),
                    ("renews", renews.to_string()),
                ]),
            ),
            Self::RotationRequested { agent } => (
                "rotation_requested",
                None,
                fields([("agent", agent.as_str().to_owned())]),
            ),
            Self::RotationCompleted {
                agent,
                previous_serial,
                serial,
                receipt,
            } => (
                "rotation_completed",
                None,
                with_receipt(
                    fields([
                        ("agent", agent.as_str().to_owned()),
                        ("previous_serial", previous_serial.to_string()),
                        ("serial", serial.to_string()),
                    ]),
                    Some(receipt),
                ),
            ),
            Self::RotationFailed {
                agent,
                serial,
                reason,
                queued,
            } => (
                "rotation_failed",
                None,
                fields([
                    ("agent", agent.as_str().to_owned()),
                    ("serial", serial.to_string()),
                    ("reason", reason),
                    ("queued", queued.to_string()),
                ]),
            ),
        };
        Entry { kind, link, data }
    }
}

#[cfg(test)]
mod tests;
