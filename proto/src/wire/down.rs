//! Messages the relay sends to an agent (its `down` topic).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{
    check, AgentState, Nonce, PublicReason, RegistrationMode, WireError, WireMessage,
    MAX_CERT_BYTES, MAX_JOB_CREDENTIALS, MAX_JOB_PARAMS, MAX_PARAM_VALUE,
};
use crate::cert::CertSerial;
use crate::envelope::{Envelope, KeyFingerprint};
use crate::ids::{is_valid_name, AgentId, CredentialId, CredentialName, TemplateName};
use crate::statement::{CredentialStatement, CredentialTombstone, RevocationList, Signed};

/// Everything the relay may send to an agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(
    tag = "type",
    content = "body",
    rename_all = "snake_case",
    deny_unknown_fields
)]
#[non_exhaustive]
pub enum Down {
    /// Registration accepted.
    RegisterAck(RegisterAck),
    /// Asks a peer to re-encrypt a credential for a target.
    RewrapRequest(RewrapRequest),
    /// Delivers an envelope to a target.
    CredentialStore(CredentialStore),
    /// A JIT repair that cannot be served.
    CredentialUnavailable(CredentialUnavailable),
    /// Run a locally defined job template.
    JobDispatch(JobDispatch),
    /// A newer revocation list.
    RevocationUpdate(RevocationUpdate),
    /// An operator deleted a credential: forget it (only on the operator-signed tombstone it carries).
    CredentialPurge(CredentialPurge),
    /// An operator narrowed a credential's scope and this agent is no longer in it: forget it (only on the newer
    /// operator-signed statement it carries).
    CredentialRevoke(CredentialRevoke),
    /// An operator asked for a rotation of the agent's keys now (`tessera agents rotate`): the agent starts one if
    /// none is under way. It only makes the agent generate keys and ask; nothing is certified without the CA.
    RotateKeys(RotateKeys),
    /// The CA certified the agent's renewal request: the green certificate, which the agent verifies against its
    /// pinned CA and its new keys before it validates and switches to it.
    RenewalCertificate(RenewalCertificate),
    /// Asks a peer to seal several credentials for one target in one envelope (docs/protocol.md, "Batched rewrap").
    RewrapBatchRequest(super::RewrapBatchRequest),
    /// Delivers several credentials to a target in one envelope.
    CredentialStoreBatch(super::CredentialStoreBatch),
}

/// Start a key rotation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RotateKeys {}

/// A certificate the org CA issued for the agent's renewal request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RenewalCertificate {
    /// The certificate, DER.
    #[serde(with = "crate::b64::vec")]
    pub cert: Vec<u8>,
}

/// Registration accepted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegisterAck {
    /// Echo of the mode.
    pub mode: RegistrationMode,
    /// `backfilling` while deliveries are pending, else `online`.
    pub state: AgentState,
    /// How many deliveries the backfill will make.
    pub backfill: u32,
    /// The serial of the certificate registered with: an agent validating a renewed certificate takes only an
    /// acknowledgement of that certificate as the round trip that completes the validation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serial: Option<CertSerial>,
}

/// A rewrap request to a peer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RewrapRequest {
    /// Request id.
    pub request_id: uuid::Uuid,
    /// Fresh nonce the response must echo.
    #[serde(with = "crate::b64::array")]
    pub nonce: Nonce,
    /// The credential...
    pub credential_id: CredentialId,
    /// ...and version to re-encrypt.
    pub version: u64,
    /// The creator's statement (the peer checks the target against its signed scope).
    pub statement: Signed<CredentialStatement>,
    /// The target agent.
    pub target: AgentId,
    /// The target's certificate, DER: the only source of the key the peer will encrypt to.
    #[serde(with = "crate::b64::vec")]
    pub target_cert: Vec<u8>,
}

/// A delivery to a target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CredentialStore {
    /// Delivery id the acknowledgement echoes.
    pub delivery_id: uuid::Uuid,
    /// The creator's signed statement: id, version, name, scope, salt, commitment.
    pub statement: Signed<CredentialStatement>,
    /// The envelope, sealed to the target's wrap key.
    pub envelope: Envelope,
    /// The JIT request this answers, if any.
    #[serde(default)]
    pub request_id: Option<uuid::Uuid>,
    /// The fingerprint of the wrap key the envelope is sealed to, as the peer (binding 4) or the operator declared
    /// it: only which of its keys the target tries first (during a key rotation it holds two); it tries the others
    /// if this one does not open it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_key: Option<KeyFingerprint>,
}

/// A JIT repair that cannot be served.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CredentialUnavailable {
    /// Echo of the request id.
    pub request_id: uuid::Uuid,
    /// The credential asked for.
    pub name: CredentialName,
    /// The public reason.
    pub reason: PublicReason,
}

/// A job: a template name the agent defines locally, never a command line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobDispatch {
    /// Job id.
    pub job_id: uuid::Uuid,
    /// The template, defined in the agent's configuration.
    pub template: TemplateName,
    /// Parameters the template may reference (names match the id alphabet).
    #[serde(default)]
    pub params: BTreeMap<String, String>,
    /// Credentials the job needs.
    #[serde(default)]
    pub credentials: Vec<CredentialName>,
    /// Unix seconds after which the agent refuses the dispatch (`JOB_EXPIRED`); at most
    /// [`super::MAX_JOB_TTL_SECS`] ahead of the agent's clock (else `JOB_EXPIRY_TOO_FAR`). Absent is 0: expired.
    /// The agent runs a job id at most once until then.
    #[serde(default)]
    pub expires_at: i64,
}

/// A newer revocation list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RevocationUpdate {
    /// The list, signed by the org CA.
    pub list: Signed<RevocationList>,
}

/// A deleted credential to forget.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CredentialPurge {
    /// The operator-signed tombstone: the agent verifies it against its pinned CA before it forgets anything.
    pub tombstone: Signed<CredentialTombstone>,
}

/// A credential whose signed scope no longer includes the agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CredentialRevoke {
    /// The newer statement (a higher scope revision, or a newer version) whose scope leaves the agent out.
    pub statement: Signed<CredentialStatement>,
}

impl WireMessage for Down {
    fn validate(&self) -> Result<(), WireError> {
        match self {
            Self::RewrapRequest(r) => {
                check(r.version >= 1, "version must be at least 1")?;
                check(
                    r.target_cert.len() <= MAX_CERT_BYTES,
                    "certificate too large",
                )
            }
            Self::JobDispatch(j) => {
                check(j.params.len() <= MAX_JOB_PARAMS, "too many job parameters")?;
                check(
                    j.credentials.len() <= MAX_JOB_CREDENTIALS,
                    "too many job credentials",
                )?;
                check(
                    j.params.keys().all(|k| is_valid_name(k)),
                    "invalid job parameter name",
                )?;
                check(
                    j.params
                        .values()
                        .all(|v| v.len() <= MAX_PARAM_VALUE && !v.contains('\0')),
                    "invalid job parameter value",
                )
            }
            Self::RenewalCertificate(r) => {
                check(r.cert.len() <= MAX_CERT_BYTES, "certificate too large")
            }
            Self::RewrapBatchRequest(r) => r.validate(),
            Self::CredentialStoreBatch(b) => b.validate(),
            Self::RegisterAck(_)
            | Self::RotateKeys(_)
            | Self::CredentialStore(_)
            | Self::CredentialUnavailable(_)
            | Self::RevocationUpdate(_)
            | Self::CredentialPurge(_)
            | Self::CredentialRevoke(_) => Ok(()),
        }
    }
}
