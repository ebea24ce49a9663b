//! Certificate verification against the pinned org CA: `PinnedCa::verify_agent`, `verify_operator` and
//! `PinnedCa::from_der` (`tessera_proto::cert`).
//!
//! The first input byte picks the mode (the rest is the input proper):
//! - 0: the rest is a certificate, DER.
//! - 1: the rest is a TBSCertificate, wrapped here into a certificate and signed by the fixture CA key, so the
//!   fuzzer reaches every check after the signature (validity, revocation, basicConstraints, OU, CN, identity
//!   key, wrap key extension, critical extensions).
//!
//! Checked beyond "no panic": a verified certificate is valid at the time of the check, is not on the revoking
//! list when checked against it, has the role's OU (an agent never passes as an operator with the same bytes),
//! and an agent's wrap key is 2048 to 4096 bits.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tessera_fuzz::{certificate_with_tbs, fixtures, mode, pinned, NOW};
use tessera_proto::cert::PinnedCa;
use tessera_proto::envelope::{MAX_WRAP_KEY_BITS, MIN_WRAP_KEY_BITS};
use tessera_proto::statement::RevocationList;

fn verify(der: &[u8]) {
    let fx = fixtures();
    let none = RevocationList::empty();
    let agent = pinned().verify_agent(der, NOW, &none);
    let operator = pinned().verify_operator(der, NOW, &none);
    assert!(
        !(agent.is_ok() && operator.is_ok()),
        "one certificate passed as both agent and operator"
    );
    if let Ok(a) = &agent {
        assert!(a.not_before <= NOW && NOW <= a.not_after);
        assert_eq!(a.der, der);
        let bits = a.wrap.size_bytes() * 8;
        assert!((MIN_WRAP_KEY_BITS..=MAX_WRAP_KEY_BITS).contains(&bits));
        if let Ok(r) = pinned().verify_agent(der, NOW, &fx.revoking) {
            assert!(
                !fx.revoking.is_revoked(&r.serial),
                "a revoked agent verified"
            );
        }
    }
    if let Ok(o) = &operator {
        assert!(o.not_before <= NOW && NOW <= o.not_after);
        if let Ok(r) = pinned().verify_operator(der, NOW, &fx.revoking) {
            assert!(
                !fx.revoking.is_revoked(&r.serial),
                "a revoked operator verified"
            );
        }
    }
    if let Ok(ca) = PinnedCa::from_der(der) {
        assert_eq!(ca.der(), der);
    }
}

fuzz_target!(|data: &[u8]| {
    match mode(data) {
        Some((0, der)) => verify(der),
        Some((1, tbs)) => verify(&certificate_with_tbs(tbs, fixtures().ca.key())),
        _ => {}
    }
});
