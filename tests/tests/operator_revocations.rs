//! The operator seals by the newest revocation list it can verify, not by the relay's say-so: a revoked agent's
//! certificate still chains to the org CA, and the relay (untrusted) lists it among the candidates unless told. The
//! list comes from the operator directory's copy (which `ca revoke` writes) or from the relay's copy, whichever is
//! newer; a copy that does not verify stops the put before anything is sealed.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::time::Duration;

use tessera_system_tests::bins::bin_dir;
use tessera_system_tests::cluster::Cluster;

const WAIT: Duration = Duration::from_secs(60);

fn strings(v: &serde_json::Value) -> Vec<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_owned())
        .collect()
}

/// The agents a put skipped (each reported with its reason).
fn skipped(put: &serde_json::Value) -> Vec<String> {
    put["skipped"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["agent"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn cred_put_never_seals_to_a_revoked_agent_whoever_withholds_the_list() {
    let tmp = tempfile::tempdir().unwrap();
    let mut c = Cluster::new(tmp.path(), &bin_dir(), "").unwrap();
    c.start_relay().unwrap();
    let policy = "[policy.\"*\"]\nuids = [0]\n";
    let mut agents = Vec::new();
    for id in ["edge-1", "edge-2", "edge-3"] {
        let mut a = c.agent(id, policy).unwrap();
        a.start().unwrap();
        c.wait_state(id, "online", WAIT).unwrap();
        agents.push(a);
    }
    let ca_dir = c.ca_dir().to_str().unwrap().to_owned();
    let copy = c.operator_dir().join("revocations.json");
    let before = c.put("before", "sealed-to-all", &[]).unwrap();
    assert_eq!(strings(&before["sealed_for"]).len(), 3);

    // Revoked without --push: the relay does not know and still lists edge-2. The operator's copy says so.
    let revoked = c
        .op_json(&[
            "ca",
            "revoke",
            "--dir",
            &ca_dir,
            "--cert",
            agents[1].cert.to_str().unwrap(),
        ])
        .unwrap();
    assert_eq!(revoked["operator_copy"], true);
    assert!(copy.is_file());
    let listed = c.op_json(&["agents", "ls"]).unwrap();
    assert!(
        listed
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["id"] == "edge-2"),
        "the relay still lists the revoked agent"
    );
    let put = c.put("withheld", "not-for-edge-2", &[]).unwrap();
    assert_eq!(strings(&put["sealed_for"]), ["edge-1", "edge-3"]);
    assert_eq!(skipped(&put), ["edge-2"]);

    // The relay's copy alone (pushed; the operator's copy gone) is enough: a newer list also revokes edge-3.
    c.op(&[
        "ca",
        "revoke",
        "--push",
        "--dir",
        &ca_dir,
        "--cert",
        agents[2].cert.to_str().unwrap(),
    ])
    .unwrap();
    std::fs::remove_file(&copy).unwrap();
    let put = c.put("relays-list", "only-edge-1", &[]).unwrap();
    assert_eq!(strings(&put["sealed_for"]), ["edge-1"]);
    assert_eq!(skipped(&put), ["edge-2", "edge-3"]);

    // A copy altered after signing (edge-2 taken off the list) stops the put: nothing is sealed, nothing is sent.
    let ca_list = std::fs::read_to_string(c.ca_dir().join("revocations.json")).unwrap();
    let mut signed: serde_json::Value = serde_json::from_str(&ca_list).unwrap();
    let payload = tessera_proto::b64_decode(signed["payload"].as_str().unwrap()).unwrap();
    let mut body: serde_json::Value = serde_json::from_slice(&payload).unwrap();
    assert_eq!(body["revoked"].as_array().unwrap().len(), 2);
    body["revoked"] = serde_json::json!([]);
    signed["payload"] = tessera_proto::b64_encode(serde_json::to_vec(&body).unwrap()).into();
    std::fs::write(&copy, serde_json::to_vec(&signed).unwrap()).unwrap();
    // A real secret: an empty one is refused before anything else is checked.
    let secret = c.root().join("tampered-secret.txt");
    std::fs::write(&secret, "a-secret-long-enough-to-seal").unwrap();
    let refused = c
        .op_unchecked(&[
            "cred",
            "put",
            "tampered",
            "--file",
            secret.to_str().unwrap(),
        ])
        .unwrap();
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("revocations.json"),
        "the error names the file: {stderr}"
    );
    let names = c.credential_ids().unwrap();
    assert!(!names.contains_key("tampered"), "{names:?}");
    // `audit verify` judges receipts by the list too: it refuses to run on a tampered copy, and passes once the
    // CA's list is copied back.
    let refused = c.op_unchecked(&["audit", "verify"]).unwrap();
    assert_eq!(refused.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("revocations.json"));
    std::fs::write(&copy, &ca_list).unwrap();
    c.op(&["audit", "verify"]).unwrap();
}
