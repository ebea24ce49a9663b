//! The relay and agents as real processes on a real Mosquitto: operator commands create the CA, certificates and a
//! credential; the operator's envelopes reach online agents; an agent that was offline gets its stored envelope on
//! reconnect; an agent enrolled later is backfilled by peer rewrap; a job runs with the credential injected; scope
//! grants and certificate revocation take effect; the audit chain verifies; the relay never holds a plaintext; the
//! admin API refuses a certificate that is not an operator's.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
// One story on one broker, read top to bottom.
#![allow(clippy::too_many_lines)]

mod admin;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use tessera_system_tests::bins::{bin, bin_dir};
use tessera_system_tests::cluster::{wait_for, AgentProc, Cluster};

const WAIT: Duration = Duration::from_secs(30);
const JOBS: &str = "[policy.\"*\"]\nuids = [0]\n[jobs.hash-db]\ncommand = [\"/bin/sh\", \"-c\", \"printf %s \\\"$DB\\\" | sha256sum\"]\ncredentials = { DB = \"db\" }\n";

fn holds(a: &AgentProc, name: &str, value: &str) {
    wait_for(&format!("{} to hold {name}", a.id.as_str()), WAIT, || {
        Ok(a.value(name)?.as_deref() == Some(value))
    })
    .unwrap();
}

#[test]
fn relay_and_agents_sync_a_credential_end_to_end() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let mut c = Cluster::new(root, &bin_dir(), "").unwrap();
    c.start_relay().unwrap();

    let mut a = c.agent("edge-1", JOBS).unwrap();
    let mut b = c.agent("edge-2", JOBS).unwrap();
    a.start().unwrap();
    b.start().unwrap();
    c.wait_state("edge-1", "online", WAIT).unwrap();
    c.wait_state("edge-2", "online", WAIT).unwrap();

    // The operator puts a credential; the plaintext is sealed on this side to both certified agents.
    let put = c.put("db", "hunter2\n", &[]).unwrap();
    assert_eq!(put["sealed_for"].as_array().unwrap().len(), 2);
    holds(&a, "db", "hunter2");
    holds(&b, "db", "hunter2");

    // edge-2 goes offline; a second credential is put; on reconnect it gets its stored envelope.
    b.kill();
    c.op(&[
        "cred",
        "put",
        "api-token",
        "--file",
        write(root, "token.txt", "tok-123").to_str().unwrap(),
    ])
    .unwrap();
    holds(&a, "api-token", "tok-123");
    b.start().unwrap();
    holds(&b, "api-token", "tok-123");

    // A third agent enrolled later is backfilled by peer rewrap.
    let mut d = c.agent("edge-3", JOBS).unwrap();
    d.start().unwrap();
    holds(&d, "db", "hunter2");
    holds(&d, "api-token", "tok-123");
    assert!(c.relay_log().contains("relay connected to broker"));

    // Sync chips: db synced 3/3.
    wait_for("db synced on 3 agents", WAIT, || {
        Ok(c.chips("db")? == Some((3, 3)))
    })
    .unwrap();

    // A job with the credential injected.
    let result = c.job("hash-db", Some("edge-3"), &["db"], WAIT).unwrap();
    assert_eq!(result["exit_code"], 0, "{result}");

    // Explicit scope, then a grant: edge-2 is refused until the operator re-signs the scope.
    c.op(&[
        "cred",
        "put",
        "scoped",
        "--agent",
        "edge-1",
        "--file",
        write(root, "s.txt", "only-edge-1").to_str().unwrap(),
    ])
    .unwrap();
    holds(&a, "scoped", "only-edge-1");
    let refused = b.get("scoped").unwrap();
    assert_eq!(
        refused.status.code(),
        Some(11),
        "NOT_GRANTED: {}",
        String::from_utf8_lossy(&refused.stderr)
    );
    c.op(&["grant", "scoped", "edge-2"]).unwrap();
    holds(&b, "scoped", "only-edge-1");
    // A rotation keeps the explicit scope: edge-3 never receives it.
    c.op(&[
        "cred",
        "rotate",
        "scoped",
        "--file",
        write(root, "s2.txt", "only-1-and-2").to_str().unwrap(),
    ])
    .unwrap();
    holds(&a, "scoped", "only-1-and-2");
    holds(&b, "scoped", "only-1-and-2");
    assert_eq!(
        d.get("scoped").unwrap().status.code(),
        Some(11),
        "the rotation widened the scope"
    );

    // Revoking edge-3's certificate: the relay delivers nothing more to it.
    let cert = d.cert.to_str().unwrap().to_owned();
    c.op(&[
        "ca",
        "revoke",
        "--push",
        "--dir",
        c.ca_dir().to_str().unwrap(),
        "--cert",
        &cert,
    ])
    .unwrap();
    c.op(&[
        "cred",
        "put",
        "later",
        "--file",
        write(root, "l.txt", "after-revoke").to_str().unwrap(),
    ])
    .unwrap();
    holds(&a, "later", "after-revoke");
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        !d.get("later").unwrap().status.success(),
        "a revoked agent received a new credential"
    );

    // The audit chain verifies; the relay never saw the plaintext.
    c.op(&["audit", "verify"]).unwrap();
    assert!(!c.relay_log().contains("hunter2"));
    if let Some(db) = &c.db {
        // The run on PostgreSQL (TESSERA_TEST_STATE=postgres) kept the state there, and no plaintext in it.
        assert!(db.count("deliveries").unwrap() > 0 && db.count("audit").unwrap() > 0);
        let hits = db
            .count(
                "(SELECT rec::text AS t FROM deliveries UNION ALL SELECT rec::text FROM credentials \
                 UNION ALL SELECT rec::text FROM envelopes UNION ALL SELECT entry::text FROM audit) AS r \
                 WHERE r.t LIKE '%hunter2%'",
            )
            .unwrap();
        assert_eq!(hits, 0, "plaintext in the relay's database");
    }
    for entry in walk(&c.relay_state()) {
        let bytes = std::fs::read(entry).unwrap();
        assert!(
            !bytes.windows(7).any(|w| w == b"hunter2"),
            "plaintext in the relay's state"
        );
    }
    // A certificate from the org CA that is not an operator's (the relay's own service certificate) is refused.
    let svc = c.service_identity("relay-1");
    let client = admin::client_as(&c, &svc.cert, &svc.key);
    let rt = admin::runtime();
    // The relay reports the state backend it really runs on.
    let status = admin::get(&c, "/v1/status");
    assert_eq!(
        status["state_backend"],
        if c.db.is_some() { "postgres" } else { "sled" }
    );
    match rt.block_on(client.get("/v1/agents")) {
        Err(tessera_operator::client::ClientError::Api { status, error, .. }) => {
            assert_eq!((status, error.as_str()), (401, "unauthorized"));
        }
        other => panic!("a service certificate was accepted as an operator: {other:?}"),
    }
    // Without operator files the command refuses locally.
    let out = Command::new(bin("tessera"))
        .env("TESSERA_RELAY", &c.admin)
        .env("TESSERA_OPERATOR_DIR", root.join("nonexistent"))
        .args(["agents", "ls"])
        .stdout(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

fn write(root: &Path, name: &str, text: &str) -> PathBuf {
    let p = root.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}
