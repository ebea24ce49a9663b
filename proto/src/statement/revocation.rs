//! The revocation list: certificate serials the org CA has revoked, with a monotonic serial.

use serde::{Deserialize, Serialize};

use super::{Signed, StatementError};
use crate::cert::{CertSerial, OrgCa, PinnedCa};

/// Kind tag of version 1 revocation lists.
pub const REVOCATION_KIND: &str = "tessera/revocation-list/v1";

/// The body of a revocation list.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RevocationList {
    /// Always [`REVOCATION_KIND`].
    pub kind: String,
    /// Monotonic: a holder refuses a list whose serial is not higher than the one it holds.
    pub serial: u64,
    /// Issue time, unix seconds.
    pub issued_at: i64,
    /// Revoked certificate serials, sorted and unique.
    pub revoked: Vec<CertSerial>,
}

impl RevocationList {
    /// The list every holder starts from: serial 0, nothing revoked.
    pub fn empty() -> Self {
        Self {
            kind: REVOCATION_KIND.to_owned(),
            serial: 0,
            issued_at: 0,
            revoked: Vec::new(),
        }
    }

    /// A list with `serial` and the given serials (sorted, deduplicated).
    pub fn new(serial: u64, issued_at: i64, revoked: impl IntoIterator<Item = CertSerial>) -> Self {
        let mut revoked: Vec<CertSerial> = revoked.into_iter().collect();
        revoked.sort();
        revoked.dedup();
        Self {
            kind: REVOCATION_KIND.to_owned(),
            serial,
            issued_at,
            revoked,
        }
    }

    /// Whether `serial` is revoked.
    pub fn is_revoked(&self, serial: &CertSerial) -> bool {
        self.revoked.binary_search(serial).is_ok()
    }

    /// Signs the list with the org CA.
    pub fn sign(&self, ca: &OrgCa) -> Result<Signed<Self>, StatementError> {
        Signed::sign(self, ca.key(), ca.cert_der())
    }
}

impl Signed<RevocationList> {
    /// Verifies a list signed by the pinned CA and newer than `held`.
    pub fn verify(
        &self,
        ca: &PinnedCa,
        held: &RevocationList,
    ) -> Result<RevocationList, StatementError> {
        if self.signer_cert != ca.der() {
            return Err(StatementError::Signer(
                crate::cert::CertError::UntrustedIssuer,
            ));
        }
        let list = self.open_with(ca.public_key(), REVOCATION_KIND)?;
        if list.serial <= held.serial {
            return Err(StatementError::Stale {
                got: list.serial,
                held: held.serial,
            });
        }
        if list
            .revoked
            .windows(2)
            .any(|w| matches!(w, [a, b] if a >= b))
        {
            return Err(StatementError::Malformed(
                "revoked serials are not sorted and unique",
            ));
        }
        Ok(list)
    }
}
