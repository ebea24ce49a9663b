//! Agents' receipts, checked on the workstation (docs/protocol.md, "Receipts").
//!
//! The certificate a receipt names is looked up in the CA's registry of issued certificates ([`Registry`]), never
//! taken from the relay; it must verify against the org CA at the receipt's time, and it must not be revoked —
//! unless it was retired by a completed rotation or a replacement after the receipt was signed (the revocation
//! that ends a rotation's grace period does not void what the old key signed before). So a relay cannot record a
//! delivery, a purge or a rotation without the agent's key, and what `tessera audit verify` and `tessera cred
//! show` report as receipted is what agents signed.
//!
//! A certificate revoked otherwise (`tessera ca revoke`: a compromised or removed agent) is [`ReceiptCheck::Revoked`]:
//! its key could have signed a receipt with any time, so what it signed is not vouched for; the commands report
//! those apart from missing and forged receipts, which only a lying relay produces.

use tessera_proto::audit::AuditEntry;
use tessera_proto::cert::PinnedCa;
use tessera_proto::receipt::{in_audit, Receipt, ReceiptBody, ReceiptFact};
use tessera_proto::statement::RevocationList;

use crate::catalogue::Catalogue;
use crate::issued::Registry;

/// Why a receipt does not stand.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReceiptCheck {
    /// There is none where one is required.
    #[error("no receipt")]
    Missing,
    /// It does not parse.
    #[error("malformed receipt: {0}")]
    Malformed(String),
    /// It names a certificate the CA's registry does not hold for that agent.
    #[error(
        "signed by certificate {serial}, which the CA did not issue for {agent} (issued.json)"
    )]
    UnknownCertificate {
        /// The agent named.
        agent: String,
        /// The serial named.
        serial: String,
    },
    /// The certificate is revoked and was not retired by a rotation before the receipt was signed.
    #[error("signed by certificate {0}, which is revoked")]
    Revoked(String),
    /// The signature, the time or the certificate does not verify.
    #[error("{0}")]
    Invalid(String),
    /// It verifies, but attests something else than the record claims.
    #[error("the receipt does not match the record: {0}")]
    Mismatch(String),
}

/// Verifies `receipt` against the registry: the body when it stands.
pub fn verify(
    receipt: &Receipt,
    registry: &Registry,
    ca: &PinnedCa,
    revoked: &RevocationList,
) -> Result<ReceiptBody, ReceiptCheck> {
    let claimed = receipt
        .claimed()
        .map_err(|e| ReceiptCheck::Malformed(e.to_string()))?;
    let issued = registry
        .find(&claimed.agent, &claimed.signer_serial)
        .ok_or_else(|| ReceiptCheck::UnknownCertificate {
            agent: claimed.agent.as_str().to_owned(),
            serial: claimed.signer_serial.to_string(),
        })?;
    let der = tessera_proto::b64_decode(&issued.cert)
        .ok_or_else(|| ReceiptCheck::Invalid("the registry's certificate is not base64".into()))?;
    let cert = ca
        .verify_agent(&der, claimed.at, &RevocationList::empty())
        .map_err(|e| ReceiptCheck::Invalid(format!("certificate at the receipt's time: {e}")))?;
    if revoked.is_revoked(&cert.serial) && issued.retired_at.is_none_or(|t| claimed.at > t) {
        return Err(ReceiptCheck::Revoked(cert.serial.to_string()));
    }
    receipt
        .verify(&cert)
        .map_err(|e| ReceiptCheck::Invalid(e.to_string()))
}

/// The receipt an audit entry must carry, checked against the entry; `None` for entries that need none.
///
/// The entry keeps the receipt's signature, time and signer serial beside its own fields
/// ([`tessera_proto::receipt::in_audit`]); the signed body is rebuilt from them, so a field the relay edited (agent,
/// credential, version, delivery, digest, serials) makes the signature fail.
pub fn check_entry(
    e: &AuditEntry,
    registry: &Registry,
    catalogue: &Catalogue,
    ca: &PinnedCa,
    revoked: &RevocationList,
) -> Option<Result<(), ReceiptCheck>> {
    if !in_audit::needs_receipt(&e.kind, &e.data) {
        return None;
    }
    Some((|| {
        let receipt = in_audit::rebuild(e)
            .map_err(|err| ReceiptCheck::Malformed(err.to_string()))?
            .ok_or(ReceiptCheck::Missing)?;
        let body = verify(&receipt, registry, ca, revoked)?;
        // The digest against what an operator signed, when the catalogue has that version.
        if let ReceiptFact::Stored {
            credential_id,
            version,
            digest,
            ..
        } = &body.fact
        {
            if let Some(entry) = catalogue
                .by_id(credential_id)
                .filter(|c| c.version == *version)
            {
                let signed = entry
                    .statement
                    .parse_unverified(tessera_proto::statement::CREDENTIAL_KIND)
                    .map_err(|err| ReceiptCheck::Invalid(err.to_string()))?;
                if signed.commitment != *digest {
                    return Err(ReceiptCheck::Mismatch(
                        "the agent stored a plaintext whose commitment is not the signed one"
                            .into(),
                    ));
                }
            }
        }
        Ok(())
    })())
}

/// A receipt an audit entry lacks or that does not stand.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct BadReceipt {
    /// The entry.
    pub seq: u64,
    /// Its kind.
    pub kind: String,
    /// The agent it names.
    pub agent: String,
    /// Why.
    pub reason: String,
}

/// What the receipts of an audit trail come to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tally {
    /// Receipts that verified.
    pub verified: usize,
    /// Receipts signed by certificates revoked since (not vouched for, no sign of a lying relay).
    pub by_revoked: usize,
    /// Entries without a receipt that stands (only a lying relay produces these).
    pub bad: Vec<BadReceipt>,
}

/// Checks the receipt of every entry of `entries` that needs one.
pub fn tally(
    entries: &[AuditEntry],
    registry: &Registry,
    catalogue: &Catalogue,
    ca: &PinnedCa,
    revoked: &RevocationList,
) -> Tally {
    let mut t = Tally::default();
    let mut seen = std::collections::HashSet::new();
    for e in entries {
        // One receipt stands for one entry: the same signature recorded again is a replay.
        let replayed = e
            .data
            .get(in_audit::SIGNATURE)
            .is_some_and(|sig| !seen.insert(sig.clone()));
        let checked = if replayed && in_audit::needs_receipt(&e.kind, &e.data) {
            Some(Err(ReceiptCheck::Mismatch(
                "the same receipt is recorded in an earlier entry (replayed)".into(),
            )))
        } else {
            check_entry(e, registry, catalogue, ca, revoked)
        };
        match checked {
            Some(Ok(())) => t.verified += 1,
            Some(Err(ReceiptCheck::Revoked(_))) => t.by_revoked += 1,
            Some(Err(reason)) => t.bad.push(BadReceipt {
                seq: e.seq,
                kind: e.kind.clone(),
                agent: e
                    .data
                    .get("target")
                    .or_else(|| e.data.get("agent"))
                    .cloned()
                    .unwrap_or_default(),
                reason: reason.to_string(),
            }),
            None => {}
        }
    }
    t
}

#[cfg(test)]
mod tests;
