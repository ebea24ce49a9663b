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
    pub(super) certs: &'a [AgentCertificate],
}

/// What `items` seal to: single envelopes and batch envelopes.
pub(super) type Sealed = (Vec<ItemEnvelopeFor>, Vec<BatchEnvelopeFor>);

/// Seals `items` per agent key: batches of two or more, single envelopes for the rest.
pub(super) fn seal_per_key(items: &[Sealable<'_>]) -> Result<Sealed, CredError> {
    let mut per_key: BTreeMap<[u8; 32], (&AgentCertificate, Vec<&Sealable<'_>>)> = BTreeMap::new();
    for item in items {
        for cert in item.certs {
            per_key
                .entry(cert.wrap.fingerprint().0)
                .or_insert_with(|| (cert, Vec::new()))
                .1
                .push(item);
        }
    }
    let (mut singles, mut batches) = (Vec::new(), Vec::new());
    for (key, (cert, items)) in per_key {
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

/// `items` in order, cut where a batch would pass 64 items or 512 KiB of plaintext.
fn groups<'s, 'a>(items: &[&'s Sealable<'a>]) -> Vec<Vec<&'s Sealable<'a>>> {
    let mut groups: Vec<Vec<&Sealable<'_>>> = Vec::new();
    let mut bytes = 0;
    for item in items {
        let size = batch::item_size(item.payload.bytes().len());
        let full = groups.last().is_none_or(|g| {
            g.len() >= MAX_BATCH_ITEMS || batch::plaintext_size(bytes + size) > MAX_BATCH_PLAINTEXT
        });
        if full {
            groups.push(Vec::new());
            bytes = 0;
        }
        bytes += size;
        if let Some(g) = groups.last_mut() {
            g.push(item);
        }
    }
    groups
}

#[cfg(test)]
mod tests;
