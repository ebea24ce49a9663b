//! The relay's admin API as a test reads it: `GET` as the operator `alice` over mutual TLS (shared by the system
//! tests that look at what the relay reports; `mod admin;` in each).

use tessera_system_tests::cluster::Cluster;

/// A client of `c`'s admin API presenting the certificate and key in `cert` and `key` (PEM files).
pub(crate) fn client_as(
    c: &Cluster,
    cert: &std::path::Path,
    key: &std::path::Path,
) -> tessera_operator::client::AdminClient {
    let tls = tessera_operator::tls::client_config(
        &c.ca_der().unwrap(),
        tessera_operator::tls::DEFAULT_RELAY_NAME,
        &std::fs::read(cert).unwrap(),
        &std::fs::read(key).unwrap(),
    )
    .unwrap();
    tessera_operator::client::AdminClient::new(&c.admin, tls)
}

/// A runtime to wait on a client's answers from a test's thread.
pub(crate) fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// `GET path` on `c`'s admin API as the operator `alice`, the answer's JSON.
pub(crate) fn get(c: &Cluster, path: &str) -> serde_json::Value {
    let dir = c.operator_dir();
    let client = client_as(c, &dir.join("operator.pem"), &dir.join("operator.key"));
    runtime().block_on(client.get(path)).unwrap()
}
