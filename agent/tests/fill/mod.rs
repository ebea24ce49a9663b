//! Shared by the store-key tests and bench: a freshly enrolled store (generation 1, the configured sealer) filled
//! with `n` credentials `cred-<i>`, each with the secret `secret(i)`, as deliveries leave it.
#![allow(dead_code, clippy::unwrap_used)]

use tessera_agent::config::AgentConfig;
use tessera_agent::store::NewCredential;
use tessera_agent::unseal::open_or_create_store;
use tessera_proto::ids::CredentialId;
use tessera_proto::statement::Scope;
use tessera_system_tests::org::TestOrg;

/// Enrols the store at `now` and accepts the credentials in batches of 500.
pub(crate) fn store_with_credentials(
    cfg: &AgentConfig,
    org: &TestOrg,
    now: i64,
    n: usize,
    secret: impl Fn(usize) -> String,
) {
    let store = open_or_create_store(cfg, now).unwrap();
    for chunk in (0..n).collect::<Vec<_>>().chunks(500) {
        let batch: Vec<NewCredential> = chunk
            .iter()
            .map(|i| {
                let (signed, statement, payload) = org.credential(
                    CredentialId::random(),
                    1,
                    &format!("cred-{i}"),
                    Scope::All,
                    &secret(*i),
                );
                NewCredential {
                    statement,
                    signed,
                    payload,
                }
            })
            .collect();
        store.accept(&batch, now).unwrap();
    }
}
