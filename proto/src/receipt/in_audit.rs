//! A receipt as the relay's audit trail keeps it: the signature, the signer's serial and the time, beside the entry's
//! own fields (agent, credential, version, delivery, digest, serials), from which the signed body is rebuilt to
//! verify it. One format, written by the relay and read by `tessera audit verify`; the entry stays small (the body
//! would repeat the entry).
//!
//! | entry kind | the receipt's fact, from the entry's fields |
//! |---|---|
//! | `rewrap_final` (`result` `success`) | `stored`: `delivery`, `credential`, `version`, `digest`; agent `target` |
//! | `credential_purged` | `purged`: `credential`, `version`, `scope_revision` (a revoke's); agent `agent` |
//! | `rotation_completed` | `rotated`: `previous_serial`, `serial`; agent `agent` |

use std::collections::BTreeMap;

use super::{Receipt, ReceiptBody, ReceiptError, ReceiptFact};
use crate::audit::AuditEntry;
use crate::canonical;
use crate::cert::CertSerial;
use crate::commitment::Commitment;
use crate::ids::AgentId;

/// The entry field with the receipt's time.
pub const AT: &str = "receipt_at";
/// The entry field with the signer certificate's serial.
pub const SERIAL: &str = "receipt_serial";
/// The entry field with the signature (b64 DER).
pub const SIGNATURE: &str = "receipt_sig";

/// `text` as a u64 written exactly as it prints (no sign, no leading zero): what an entry shows is what was signed.
fn exact_u64(text: &str) -> Option<u64> {
    text.parse::<u64>().ok().filter(|v| v.to_string() == text)
}

/// The fields to add to an audit entry for `receipt` (whose claimed body is `body`).
pub fn fields(receipt: &Receipt, body: &ReceiptBody) -> [(&'static str, String); 3] {
    [
        (AT, body.at.to_string()),
        (SERIAL, body.signer_serial.to_string()),
        (SIGNATURE, crate::b64_encode(&receipt.signature)),
    ]
}

/// Whether entries of `kind` (with `data`) record something an agent must have receipted.
pub fn needs_receipt(kind: &str, data: &BTreeMap<String, String>) -> bool {
    match kind {
        "rewrap_final" => data.get("result").map(String::as_str) == Some("success"),
        "credential_purged" | "rotation_completed" => true,
        _ => false,
    }
}

/// The receipt `e` carries, rebuilt from its fields; `None` when it carries none.
pub fn rebuild(e: &AuditEntry) -> Result<Option<Receipt>, ReceiptError> {
    let get = |k: &str| e.data.get(k).map(String::as_str);
    let (Some(at), Some(serial), Some(signature)) = (get(AT), get(SERIAL), get(SIGNATURE)) else {
        return Ok(None);
    };
    let bad = |what: &'static str| ReceiptError::Malformed(what);
    let field = |k: &str| get(k).ok_or(bad("a field the receipt needs is missing"));
    let id = |k: &str| field(k)?.parse().map_err(|_| bad("not a credential id"));
    let version = || exact_u64(field("version")?).ok_or(bad("not a version"));
    let serial_of = |s: &str| CertSerial::try_from(s.to_owned()).map_err(|_| bad("not a serial"));
    let (agent, fact) = match e.kind.as_str() {
        "rewrap_final" => {
            let digest: [u8; 32] = crate::b64_decode(field("digest")?)
                .and_then(|d| d.try_into().ok())
                .ok_or(bad("not a digest"))?;
            (
                field("target")?,
                ReceiptFact::Stored {
                    delivery_id: field("delivery")?
                        .parse::<uuid::Uuid>()
                        .ok()
                        .filter(|u| u.to_string() == field("delivery").unwrap_or_default())
                        .ok_or(bad("not a delivery id"))?,
                    credential_id: id("credential")?,
                    version: version()?,
                    digest: Commitment(digest),
                },
            )
        }
        "credential_purged" => (
            field("agent")?,
            ReceiptFact::Purged {
                credential_id: id("credential")?,
                version: version()?,
                scope_revision: get("scope_revision")
                    .map(|r| exact_u64(r).ok_or(bad("not a scope revision")))
                    .transpose()?,
            },
        ),
        "rotation_completed" => (
            field("agent")?,
            ReceiptFact::Rotated {
                previous_serial: serial_of(field("previous_serial")?)?,
                serial: serial_of(field("serial")?)?,
            },
        ),
        _ => return Err(bad("no receipt for this kind of entry")),
    };
    let body = ReceiptBody::new(
        AgentId::new(agent).map_err(|_| bad("not an agent id"))?,
        serial_of(serial)?,
        at.parse::<i64>()
            .ok()
            .filter(|t| t.to_string() == at)
            .ok_or(bad("not a time"))?,
        fact,
    );
    Ok(Some(Receipt {
        payload: canonical::to_vec(&body).map_err(|_| ReceiptError::Internal("canonical JSON"))?,
        signature: crate::b64_decode(signature).ok_or(bad("signature is not base64"))?,
    }))
}

#[cfg(test)]
mod tests;
