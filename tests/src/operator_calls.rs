//! The operator's hostile suite's shared steps: the `tessera` command against a lying admin API
//! ([`crate::lying_admin`]), what a relay would list for a statement, and what the command sent.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::missing_panics_doc,
    clippy::indexing_slicing
)]

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Output;

use tessera_proto::admin::PutBody;
use tessera_proto::ids::AgentId;
use tessera_proto::statement::{CredentialStatement, Scope, Signed, CREDENTIAL_KIND};

use crate::cluster::Cluster;
use crate::lying_admin::Received;

/// The DER of the first certificate in a PEM file.
pub fn pem_der(path: &Path) -> Vec<u8> {
    tessera_proto::pem_files::first_cert(&std::fs::read(path).unwrap()).unwrap()
}

/// An agent as `GET /v1/agents` lists it.
pub fn agent_view(id: &str, der: &[u8]) -> serde_json::Value {
    serde_json::json!({
        "id": id, "state": "online", "last_seen_ms": 0, "mode": null,
        "cert": tessera_proto::b64_encode(der),
    })
}

/// The body of a signed credential statement (as JSON), unverified.
pub fn parse(statement: &serde_json::Value) -> CredentialStatement {
    let signed: Signed<CredentialStatement> = serde_json::from_value(statement.clone()).unwrap();
    signed.parse_unverified(CREDENTIAL_KIND).unwrap()
}

/// The view an honest relay lists for a posted statement.
pub fn cred_view(statement: &serde_json::Value) -> serde_json::Value {
    cred_view_as(statement, None, None)
}

/// The view a relay lists for a statement, with `name` and `id` overridden (the lie).
pub fn cred_view_as(
    statement: &serde_json::Value,
    name: Option<&str>,
    id: Option<&str>,
) -> serde_json::Value {
    let st = parse(statement);
    serde_json::json!({
        "id": id.map_or_else(|| st.credential_id.to_string(), str::to_owned),
        "name": name.unwrap_or(st.name.as_str()),
        "version": st.version,
        "scope": st.scope,
        "deleted": false,
        "sync": { "synced": 0, "of": 0, "pending": 0, "stalled": 0, "integrity_failure": false },
        "statement": statement,
    })
}

/// `tessera --json ARGS` with the operator directory `dir`, `secret` (if any) given in a file.
pub fn tessera(c: &Cluster, dir: &Path, args: &[&str], secret: Option<&str>) -> Output {
    let mut cmd = c.operator_cmd();
    cmd.env("TESSERA_OPERATOR_DIR", dir)
        .arg("--json")
        .args(args);
    if let Some(s) = secret {
        let f = c.root().join("secret.txt");
        std::fs::write(&f, s).unwrap();
        cmd.arg("--file").arg(f);
    }
    cmd.output().unwrap()
}

/// What a successful command printed.
pub fn ok(o: &Output) -> serde_json::Value {
    assert!(
        o.status.success(),
        "tessera failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    serde_json::from_slice(&o.stdout).unwrap()
}

/// Every credential put among `sent`, with its statement.
pub fn puts(sent: &[Received]) -> Vec<(PutBody, serde_json::Value)> {
    sent.iter()
        .filter(|r| r.method == "POST" && r.path == "/v1/credentials")
        .map(|r| {
            let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
            (
                serde_json::from_value(v.clone()).unwrap(),
                v["statement"].clone(),
            )
        })
        .collect()
}

/// The one put among `sent`.
pub fn posted(sent: &[Received]) -> (PutBody, serde_json::Value) {
    let mut p = puts(sent);
    assert_eq!(p.len(), 1, "{sent:?}");
    p.remove(0)
}

/// The agents a put sealed to.
pub fn sealed_to(body: &PutBody) -> BTreeSet<String> {
    body.envelopes
        .iter()
        .map(|e| e.agent.as_str().to_owned())
        .collect()
}

/// A set of strings.
pub fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

/// An explicit scope.
pub fn explicit(ids: &[&str]) -> Scope {
    Scope::explicit(ids.iter().map(|i| AgentId::new(*i).unwrap()))
}
