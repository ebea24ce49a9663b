//! A stored credential: the creator's signed statement, when it was accepted, and the canonical plaintext.
//!
//! Record plaintext: `u32 be length ‖ JSON {statement, stored_at} ‖ canonical payload bytes`.

use serde::{Deserialize, Serialize};
use tessera_proto::commitment::Commitment;
use tessera_proto::ids::{CredentialId, CredentialName};
use tessera_proto::secret::{SecretBytes, SecretPayload};
use tessera_proto::statement::{CredentialStatement, Signed, CREDENTIAL_KIND};
use tessera_proto::wire::FlagReason;

/// A credential as the agent holds it.
#[derive(Debug, Clone)]
pub struct StoredCredential {
    /// The statement, verified when the credential was accepted.
    pub statement: CredentialStatement,
    /// The signed form, kept to show a peer's scope decision is the creator's.
    pub signed: Signed<CredentialStatement>,
    /// When it was stored, unix seconds.
    pub stored_at: i64,
    /// The plaintext.
    pub payload: SecretPayload,
    /// Whether it is flagged or quarantined (set by the store when it reads the record).
    pub status: CredentialStatus,
}

/// Whether a held credential is trusted as it was when accepted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum CredentialStatus {
    /// Nothing known against it.
    #[default]
    Ok,
    /// The operator certificate that signed its statement was revoked since; still served
    /// (`[store] quarantine_revoked_signers = false`).
    SignerRevoked,
    /// As `SignerRevoked`, and quarantined: not served to workloads and not rewrapped for peers.
    Quarantined,
}

/// Why a held credential was flagged (the `flag/<id>` record).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CredentialFlag {
    /// Why.
    pub reason: FlagReason,
    /// The revocation list serial it was flagged under.
    pub list_serial: u64,
    /// When, unix seconds.
    pub at: i64,
}

/// What may be shown without the plaintext.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CredentialMeta {
    /// Credential id.
    pub id: CredentialId,
    /// Name.
    pub name: CredentialName,
    /// Version held.
    pub version: u64,
    /// Scope revision of the statement held.
    pub scope_revision: u64,
    /// The creator (operator id).
    pub creator: String,
    /// When the version was stored, unix seconds.
    pub stored_at: i64,
    /// The creator's commitment.
    pub commitment: Commitment,
    /// `ok`, `signer_revoked` or `quarantined`.
    #[serde(default)]
    pub status: CredentialStatus,
}

impl StoredCredential {
    /// The metadata view.
    pub fn meta(&self) -> CredentialMeta {
        CredentialMeta {
            id: self.statement.credential_id,
            name: self.statement.name.clone(),
            version: self.statement.version,
            scope_revision: self.statement.scope_revision,
            creator: self.statement.creator.as_str().to_owned(),
            stored_at: self.stored_at,
            commitment: self.statement.commitment,
            status: self.status,
        }
    }
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Header {
    statement: Signed<CredentialStatement>,
    stored_at: i64,
}

pub(crate) fn encode(
    signed: &Signed<CredentialStatement>,
    stored_at: i64,
    payload: &SecretPayload,
) -> Option<SecretBytes> {
    let header = serde_json::to_vec(&Header {
        statement: signed.clone(),
        stored_at,
    })
    .ok()?;
    let len = u32::try_from(header.len()).ok()?.to_be_bytes();
    Some(payload.expose(|p| {
        let mut out = Vec::with_capacity(4 + header.len() + p.len());
        out.extend_from_slice(&len);
        out.extend_from_slice(&header);
        out.extend_from_slice(p);
        SecretBytes::new(out)
    }))
}

pub(crate) fn decode(plain: &[u8]) -> Result<StoredCredential, &'static str> {
    let (len, rest) = plain.split_at_checked(4).ok_or("truncated")?;
    let mut l = [0u8; 4];
    l.copy_from_slice(len);
    let len = usize::try_from(u32::from_be_bytes(l)).map_err(|_| "length")?;
    let (header, payload) = rest.split_at_checked(len).ok_or("truncated header")?;
    let header: Header = serde_json::from_slice(header).map_err(|_| "header is not valid")?;
    // The statement was verified when the credential was accepted; the record is authenticated by the store key.
    let statement = header
        .statement
        .parse_unverified(CREDENTIAL_KIND)
        .map_err(|_| "statement is not valid")?;
    let payload = SecretPayload::from_canonical(SecretBytes::copy_from(payload))
        .map_err(|_| "payload is not canonical")?;
    Ok(StoredCredential {
        statement,
        signed: header.statement,
        stored_at: header.stored_at,
        payload,
        status: CredentialStatus::Ok,
    })
}
