//! Agent certificates for the unit tests of the registry and the sealing targets.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;

use tessera_proto::cert::{AgentCertificate, EnrollmentRequest, IdentityKey, OrgCa, Validity};
use tessera_proto::envelope::WrapPrivateKey;
use tessera_proto::ids::AgentId;
use tessera_proto::statement::RevocationList;

/// The tests' "now".
pub(crate) const NOW: i64 = 1_700_000_000;

/// A fresh agent `id` certified by `ca` for 30 days from [`NOW`].
pub(crate) fn issue(ca: &OrgCa, id: &str) -> AgentCertificate {
    issue_with_key(ca, id).0
}

/// A fresh agent `id` certified by `ca` for 30 days from [`NOW`], with its identity key.
pub(crate) fn issue_with_key(ca: &OrgCa, id: &str) -> (AgentCertificate, IdentityKey) {
    let (cert, key, _) = issue_with_keys(ca, id);
    (cert, key)
}

/// A fresh agent `id` certified by `ca` for 30 days from [`NOW`], with its identity and wrap keys.
pub(crate) fn issue_with_keys(
    ca: &OrgCa,
    id: &str,
) -> (AgentCertificate, IdentityKey, WrapPrivateKey) {
    let key = IdentityKey::generate().unwrap();
    let wrap = WrapPrivateKey::generate().unwrap();
    let req = EnrollmentRequest::new(
        AgentId::new(id).unwrap(),
        &key,
        wrap.public_key(),
        BTreeMap::new(),
        NOW,
    )
    .unwrap();
    let der = ca.issue_agent(&req, Validity::days_from(NOW, 30)).unwrap();
    let cert = ca
        .pinned()
        .verify_agent(&der, NOW + 1, &RevocationList::empty())
        .unwrap();
    (cert, key, wrap)
}
