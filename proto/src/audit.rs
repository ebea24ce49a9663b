//! The hash-chained audit trail.
//!
//! Each entry carries the SHA-256 of its predecessor; its own hash is SHA-256 over `prev ‖ RFC 8785 JSON of the
//! entry without its hash`. [`verify`] walks the chain and names the first entry that was removed, altered or
//! moved. A truncated tail is not detectable from the chain alone: `audit verify` prints the head (sequence and
//! hash) so an operator can compare it with one recorded earlier.
//!
//! Write-ahead: a dispatch appends a `pending` entry before it starts and a final entry (`success`, `peer_failed`,
//! `timeout`, `exhausted`, ...) whose `link` is the pending entry's sequence number.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// One entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditEntry {
    /// Position in the chain, from 0.
    pub seq: u64,
    /// When, Unix milliseconds.
    pub at_ms: u64,
    /// What happened (`rewrap_pending`, `rewrap_final`, `commitment_mismatch_detected`, `dropped_message`, ...).
    pub kind: String,
    /// The pending entry a final entry closes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link: Option<u64>,
    /// Facts (ids, reasons); never secrets.
    pub data: BTreeMap<String, String>,
    /// Hash of the previous entry (hex), zeros for the first.
    pub prev: String,
    /// This entry's hash (hex).
    pub hash: String,
}

/// Why a chain does not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AuditError {
    /// An entry is missing before this one, or entries were reordered.
    #[error("audit entry {seq}: the chain is broken before it (an entry was removed or moved)")]
    Broken {
        /// The entry.
        seq: u64,
    },
    /// An entry's content does not match its hash.
    #[error("audit entry {seq}: its content was altered")]
    Altered {
        /// The entry.
        seq: u64,
    },
}

/// The hash of the genesis predecessor.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::with_capacity(64), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// The hash an entry must carry.
pub fn entry_hash(entry: &AuditEntry) -> String {
    let mut body = entry.clone();
    body.hash = String::new();
    let canonical = crate::canonical::to_vec(&body).unwrap_or_default();
    let mut h = Sha256::new();
    h.update(entry.prev.as_bytes());
    h.update(&canonical);
    hex(&h.finalize())
}

/// Builds the next entry after `prev` (None for the first).
pub fn next_entry(
    prev: Option<&AuditEntry>,
    at_ms: u64,
    kind: &str,
    link: Option<u64>,
    data: BTreeMap<String, String>,
) -> AuditEntry {
    let mut e = AuditEntry {
        seq: prev.map_or(0, |p| p.seq + 1),
        at_ms,
        kind: kind.to_owned(),
        link,
        data,
        prev: prev.map_or_else(|| GENESIS.to_owned(), |p| p.hash.clone()),
        hash: String::new(),
    };
    e.hash = entry_hash(&e);
    e
}

/// Verifies a whole chain, in order.
pub fn verify(entries: &[AuditEntry]) -> Result<(), AuditError> {
    let mut expected_prev = GENESIS.to_owned();
    for (i, e) in entries.iter().enumerate() {
        let i = u64::try_from(i).unwrap_or(u64::MAX);
        if e.seq != i || e.prev != expected_prev {
            return Err(AuditError::Broken { seq: e.seq });
        }
        if entry_hash(e) != e.hash {
            return Err(AuditError::Altered { seq: e.seq });
        }
        expected_prev.clone_from(&e.hash);
    }
    Ok(())
}

#[cfg(test)]
mod tests;
