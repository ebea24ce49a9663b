//! Sealing an import in batches (docs/protocol.md, "Operator batches"): for each agent key, the credentials of one
//! admin request sealed in as few batch envelopes as the batch limits allow (64 items, 512 KiB of plaintext), so
//! the agent opens one envelope for many credentials; a key with one credential gets a single envelope.

use std::collections::BTreeMap;

use tessera_proto::admin::{BatchEnvelopeFor, ItemEnvelopeFor};
use tessera_proto::cert::AgentCertificate;
use tessera_proto::envelope::batch::{self, MAX_BATCH_ITEMS, MAX_BATCH_PLAINTEXT};
use tessera_proto::envelope::{seal, KeyFingerprint};
use tessera_proto::ids::CredentialId;
use tessera_proto::secret::SecretPayload;

use super::CredError;

/// One credential of a request, and the certificates of the agents that take batches it is sealed to.
pub(super) struct Sealable<'a> {
    pub(super) id: CredentialId,
    pub(super) version: u64,
    pub(super) payload: &'a SecretPayload,
    /// Its signed statement's size, as the relay counts it against a delivery's statement budget.
    pub(super) statement_bytes: usize,
    pub(super) certs: &'a [AgentCertificate],
}

/// What `items` seal to: single envelopes and batch envelopes.
pub(super) type Sealed = (Vec<ItemEnvelopeFor>, Vec<BatchEnvelopeFor>);

/// Seals `items` per agent key: batches of two or more, single envelopes for the rest.
pub(super) fn seal_per_key(items: &[Sealable<'_>]) -> Result<Sealed, CredError> {
    // Per (agent, key): two agents certified with one key are two recipients.
    type Recipient = (String, [u8; 32]);
    let mut per_key: BTreeMap<Recipient, (&AgentCertificate, Vec<&Sealable<'_>>)> = BTreeMap::new();
    for item in items {
        for cert in item.certs {
            per_key
                .entry((cert.agent_id.as_str().to_owned(), cert.wrap.fingerprint().0))
                .or_insert_with(|| (cert, Vec::new()))
                .1
                .push(item);
        }
    }
    let (mut singles, mut batches) = (Vec::new(), Vec::new());
    for ((_, key), (cert, items)) in per_key {
        let key = KeyFingerprint(key);
        for group in groups(&items) {
            if let [one] = group.as_slice() {
                singles.push(ItemEnvelopeFor {
                    credential_id: one.id,
                    agent: cert.agent_id.clone(),
                    key,
                    envelope: seal(&cert.wrap, one.payload.bytes())
                        .map_err(|e| CredError::Invalid(e.to_string()))?,
                });
                continue;
            }
            let parts: Vec<_> = group
                .iter()
                .map(|s| (s.id, s.version, s.payload.bytes()))
                .collect();
            batches.push(BatchEnvelopeFor {
                batch_id: uuid::Uuid::new_v4(),
                items: group.iter().map(|s| s.id).collect(),
                agent: cert.agent_id.clone(),
                key,
                envelope: batch::seal(&cert.wrap, &parts)
                    .map_err(|e| CredError::Invalid(e.to_string()))?,
            });
        }
    }
    Ok((singles, batches))
}

/// The statement bytes one delivery of a batch carries at most (the relay's limit, so that a batch travels in one
/// message of one frame: docs/protocol.md, "Operator batches").
const MAX_STATEMENT_BYTES: usize = 192 * 1024;

/// `items` in order, cut where a batch would pass 64 items, 512 KiB of plaintext or 192 KiB of statements.
fn groups<'s, 'a>(items: &[&'s Sealable<'a>]) -> Vec<Vec<&'s Sealable<'a>>> {
    let mut groups: Vec<Vec<&Sealable<'_>>> = Vec::new();
    let (mut bytes, mut statements) = (0, 0);
    for item in items {
        let size = batch::item_size(item.payload.bytes().len());
        let full = groups.last().is_none_or(|g| {
            g.len() >= MAX_BATCH_ITEMS
                || batch::plaintext_size(bytes + size) > MAX_BATCH_PLAINTEXT
                || statements + item.statement_bytes > MAX_STATEMENT_BYTES
        });
        if full {
            groups.push(Vec::new());
            (bytes, statements) = (0, 0);
        }
        bytes += size;
        statements += item.statement_bytes;
        if let Some(g) = groups.last_mut() {
            g.push(item);
        }
    }
    groups
}

#[cfg(test)]
mod tests;
