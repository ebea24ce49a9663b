//! The batched rewrap messages (docs/protocol.md, "Batched rewrap"): the relay asks a peer for several credentials
//! for one target at once, the peer seals them in one envelope ([`crate::envelope::batch`]), the relay hands it to
//! the target with each credential's statement, and the target acknowledges every item in one message. Each item
//! keeps the request id, nonce and bindings of a single rewrap; only the transport is shared.
//!
//! Sent only between parties that announced [`CAPABILITY_BATCH_REWRAP`] in their registration.

use serde::{Deserialize, Serialize};

use super::{check, CredentialStored, Nonce, RewrapRefused, WireError, MAX_CERT_BYTES};
use crate::envelope::batch::MAX_BATCH_ITEMS;
use crate::envelope::{Envelope, KeyFingerprint};
use crate::ids::{AgentId, CredentialId};
use crate::statement::{CredentialStatement, Signed};

/// The capability an agent announces in its registration when it answers and accepts batches.
pub const CAPABILITY_BATCH_REWRAP: &str = "batch_rewrap";

/// One credential of a [`RewrapBatchRequest`]: what a single rewrap request carries, less the target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RewrapItem {
    /// The item's request id (one per credential, as for a single rewrap).
    pub request_id: uuid::Uuid,
    /// Its fresh nonce, echoed in the answer.
    #[serde(with = "crate::b64::array")]
    pub nonce: Nonce,
    /// The credential...
    pub credential_id: CredentialId,
    /// ...and version to re-encrypt.
    pub version: u64,
    /// The creator's statement.
    pub statement: Signed<CredentialStatement>,
}

/// Asks a peer to seal several credentials for one target in one envelope.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RewrapBatchRequest {
    /// Batch id, echoed (for logs; each item is correlated by its own request id).
    pub batch_id: uuid::Uuid,
    /// The target agent.
    pub target: AgentId,
    /// The target's certificate, DER: the only source of the key the peer seals to.
    #[serde(with = "crate::b64::vec")]
    pub target_cert: Vec<u8>,
    /// The credentials (1 to [`MAX_BATCH_ITEMS`], distinct request and credential ids).
    pub items: Vec<RewrapItem>,
}

/// An item the peer sealed: the bindings of a single rewrap response (nonce, credential, version) per item.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SealedItem {
    /// Echo of the item's request id.
    pub request_id: uuid::Uuid,
    /// Binding 1: echo of the item's nonce.
    #[serde(with = "crate::b64::array")]
    pub nonce: Nonce,
    /// Binding 3: the credential id...
    pub credential_id: CredentialId,
    /// ...and version sealed.
    pub version: u64,
}

/// A peer's answer to a [`RewrapBatchRequest`]: the items it sealed, in one envelope, and those it refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RewrapBatchResponse {
    /// Echo of the batch id.
    pub batch_id: uuid::Uuid,
    /// Binding 2: the responding peer.
    pub peer: AgentId,
    /// Binding 4: the wrap key the envelope is sealed to; present exactly when `sealed` is not empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_key: Option<KeyFingerprint>,
    /// The envelope holding every sealed item; present exactly when `sealed` is not empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub envelope: Option<Envelope>,
    /// The items in the envelope.
    #[serde(default)]
    pub sealed: Vec<SealedItem>,
    /// The items refused, each with its reason.
    #[serde(default)]
    pub refused: Vec<RewrapRefused>,
}

/// One credential of a [`CredentialStoreBatch`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BatchDelivery {
    /// Delivery id the acknowledgement echoes.
    pub delivery_id: uuid::Uuid,
    /// The creator's signed statement.
    pub statement: Signed<CredentialStatement>,
    /// The JIT request this answers, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<uuid::Uuid>,
}

/// Delivers several credentials to a target in one envelope.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CredentialStoreBatch {
    /// Batch id, echoed in the acknowledgement.
    pub batch_id: uuid::Uuid,
    /// The envelope, sealed to the target's wrap key.
    pub envelope: Envelope,
    /// The wrap key the envelope is sealed to, as the peer declared it (which key the target tries first).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_key: Option<KeyFingerprint>,
    /// The credentials (1 to [`MAX_BATCH_ITEMS`], distinct delivery ids): the target stores only these, each after
    /// its own checks.
    pub items: Vec<BatchDelivery>,
}

/// A target's acknowledgement of a [`CredentialStoreBatch`]: one outcome per item, each as a single delivery's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CredentialStoredBatch {
    /// Echo of the batch id.
    pub batch_id: uuid::Uuid,
    /// The outcomes (1 to [`MAX_BATCH_ITEMS`], distinct delivery ids).
    pub items: Vec<CredentialStored>,
}

fn distinct<T: Ord>(mut v: Vec<T>) -> bool {
    let n = v.len();
    v.sort_unstable();
    v.dedup();
    v.len() == n
}

fn count_ok(n: usize) -> bool {
    (1..=MAX_BATCH_ITEMS).contains(&n)
}

impl RewrapBatchRequest {
    pub(super) fn validate(&self) -> Result<(), WireError> {
        check(count_ok(self.items.len()), "a batch holds 1 to 64 items")?;
        check(
            self.target_cert.len() <= MAX_CERT_BYTES,
            "certificate too large",
        )?;
        check(
            self.items.iter().all(|i| i.version >= 1),
            "version must be at least 1",
        )?;
        check(
            distinct(self.items.iter().map(|i| i.request_id).collect()),
            "duplicate request id in a batch",
        )?;
        check(
            distinct(self.items.iter().map(|i| i.credential_id).collect()),
            "duplicate credential in a batch",
        )
    }
}

impl RewrapBatchResponse {
    pub(super) fn validate(&self) -> Result<(), WireError> {
        check(
            count_ok(self.sealed.len() + self.refused.len()),
            "a batch holds 1 to 64 items",
        )?;
        check(
            self.sealed.is_empty() == self.envelope.is_none()
                && self.sealed.is_empty() == self.target_key.is_none(),
            "an envelope and its key come with sealed items, and only with them",
        )?;
        check(
            self.sealed.iter().all(|i| i.version >= 1),
            "version must be at least 1",
        )?;
        check(
            distinct(
                self.sealed
                    .iter()
                    .map(|i| i.request_id)
                    .chain(self.refused.iter().map(|r| r.request_id))
                    .collect(),
            ),
            "duplicate request id in a batch",
        )?;
        check(
            distinct(self.sealed.iter().map(|i| i.credential_id).collect()),
            "duplicate credential in a batch",
        )
    }
}

impl CredentialStoreBatch {
    pub(super) fn validate(&self) -> Result<(), WireError> {
        check(count_ok(self.items.len()), "a batch holds 1 to 64 items")?;
        check(
            distinct(self.items.iter().map(|i| i.delivery_id).collect()),
            "duplicate delivery id in a batch",
        )
    }
}

impl CredentialStoredBatch {
    pub(super) fn validate(&self) -> Result<(), WireError> {
        check(count_ok(self.items.len()), "a batch holds 1 to 64 items")?;
        check(
            self.items.iter().all(|s| s.version >= 1),
            "version must be at least 1",
        )?;
        check(
            self.items
                .iter()
                .all(|s| super::up::receipt_fits(s.receipt.as_ref())),
            "receipt too large",
        )?;
        check(
            distinct(self.items.iter().map(|i| i.delivery_id).collect()),
            "duplicate delivery id in a batch",
        )
    }
}
