//! The relay's admin API as a test reads it: `GET` as the operator `alice` over mutual TLS (shared by the system
//! tests that look at what the relay reports; `mod admin;` in each).

use tessera_system_tests::cluster::Cluster;

/// `GET path` on `c`'s admin API, the answer's JSON.
pub(crate) fn get(c: &Cluster, path: &str) -> serde_json::Value {
    let dir = c.operator_dir();
    let tls = tessera_operator::tls::client_config(
        &c.ca_der().unwrap(),
        tessera_operator::tls::DEFAULT_RELAY_NAME,
        &std::fs::read(dir.join("operator.pem")).unwrap(),
        &std::fs::read(dir.join("operator.key")).unwrap(),
    )
    .unwrap();
    let client = tessera_operator::client::AdminClient::new(&c.admin, tls);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(client.get(path)).unwrap()
}
