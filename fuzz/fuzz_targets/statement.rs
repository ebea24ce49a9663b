//! Signed statements: `Signed<CredentialStatement>` and `Signed<RevocationList>`, parsed from their wire JSON and
//! verified against the fixed org CA (`tessera_proto::statement`).
//!
//! The first input byte picks the mode (the rest is the input proper):
//! - 0: the rest is the JSON of a `Signed<_>`: parsed as both kinds, each verified (credential statements against
//!   an empty and a revoking list).
//! - 1: the rest is a credential statement payload, signed here by the fixture operator, so the fuzzer reaches
//!   everything after the signature check (canonical form, kind, creator, version, scope, validity at the signing
//!   time).
//! - 2: the rest is a revocation list payload, signed here by the fixture CA (serial, order).
//! - 3: the rest is an agent receipt's payload (`tessera_proto::receipt`): parsed as the relay and the operator's
//!   tools parse it before they look up the certificate it names, then verified against the fixture agent.
//! - 4: the rest is the JSON of a renewal request (`tessera_proto::cert::RenewalRequest`), verified against the
//!   fixture agent's certificate.
//!
//! Checked beyond "no panic": a verified statement is exactly its canonical bytes (one encoding per statement), a
//! statement verified against the revoking list has a signer that is not on it, and a verified revocation list is
//! newer than the held one and sorted; a receipt that parses is its canonical bytes and never verifies without the
//! agent's key; a renewal request never verifies without the agent's key.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tessera_fuzz::{fixtures, mode, pinned, signed_raw};
use tessera_proto::canonical;
use tessera_proto::cert::{AgentCertificate, RenewalRequest};
use tessera_proto::receipt::Receipt;
use tessera_proto::statement::{CredentialStatement, RevocationList, Signed};

fn credential(st: &Signed<CredentialStatement>) {
    let fx = fixtures();
    let _ = st.parse_unverified(tessera_proto::statement::CREDENTIAL_KIND);
    if let Ok(v) = st.verify(pinned(), &RevocationList::empty()) {
        let bytes = canonical::to_vec(&v.statement).expect("a verified statement canonicalises");
        assert_eq!(
            bytes, st.payload,
            "a verified statement is its canonical bytes"
        );
        assert_eq!(v.statement.creator, v.signer.operator_id);
        assert!(v.statement.version >= 1);
    }
    if let Ok(v) = st.verify(pinned(), &fx.revoking) {
        assert!(
            !fx.revoking.is_revoked(&v.signer.serial),
            "a revoked signer never verifies"
        );
    }
}

fn revocation(st: &Signed<RevocationList>) {
    let held = RevocationList::empty();
    if let Ok(list) = st.verify(pinned(), &held) {
        let bytes = canonical::to_vec(&list).expect("a verified list canonicalises");
        assert_eq!(bytes, st.payload, "a verified list is its canonical bytes");
        assert!(list.serial > held.serial);
        assert!(list.revoked.windows(2).all(|w| w[0] < w[1]));
    }
    // The same list is never accepted twice (monotonic serial).
    if let Ok(list) = st.verify(pinned(), &fixtures().revoking) {
        assert!(list.serial > fixtures().revoking.serial);
        assert!(
            st.verify(pinned(), &list).is_err(),
            "a list does not replace itself"
        );
    }
}

fuzz_target!(|data: &[u8]| {
    let fx = fixtures();
    match mode(data) {
        Some((0, json)) => {
            if let Ok(st) = serde_json::from_slice::<Signed<CredentialStatement>>(json) {
                credential(&st);
            }
            if let Ok(st) = serde_json::from_slice::<Signed<RevocationList>>(json) {
                revocation(&st);
            }
        }
        Some((1, payload)) => {
            let signature = fx.operator_key.sign(payload);
            if let Some(st) = signed_raw(payload, &signature, &fx.operator_cert) {
                credential(&st);
            }
        }
        Some((2, payload)) => {
            let signature = fx.ca.key().sign(payload);
            if let Some(st) = signed_raw(payload, &signature, fx.ca.cert_der()) {
                revocation(&st);
            }
        }
        Some((3, payload)) => {
            let receipt = Receipt {
                payload: payload.to_vec(),
                signature: fx.operator_key.sign(payload),
            };
            if let Ok(body) = receipt.claimed() {
                let bytes = canonical::to_vec(&body).expect("a parsed receipt canonicalises");
                assert_eq!(bytes, payload, "a receipt is its canonical bytes");
                assert!(
                    receipt.verify(agent()).is_err(),
                    "a receipt not signed by the agent's key never verifies"
                );
            }
        }
        Some((4, json)) => {
            if let Ok(req) = serde_json::from_slice::<RenewalRequest>(json) {
                let _ = req.digest();
                assert!(
                    req.verify(agent()).is_err(),
                    "a renewal request not signed by the agent's key never verifies"
                );
            }
        }
        _ => {}
    }
});

fn agent() -> &'static AgentCertificate {
    static AGENT: std::sync::OnceLock<AgentCertificate> = std::sync::OnceLock::new();
    AGENT.get_or_init(|| {
        pinned()
            .verify_agent(&fixtures().agent_cert, tessera_fuzz::NOW, &RevocationList::empty())
            .expect("the fixture agent verifies")
    })
}
