//! A compromised relay against the operator's own commands. The real `tessera` binary runs against a lying admin
//! API (real HTTPS with the relay's certificate, operator certificates required): it lies about which id a name
//! has, serves another credential's validly signed statement, reports an older version, widens the scope in its
//! listing, adds agents and certificates to its agent list, and lists a credential the operator never created.
//! Each lie gets a clear refusal and nothing signed or sealed, or (where the lie is only about candidates) exactly
//! what the operator asked for and no more; the relay's bytes never contain a secret.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::too_many_lines
)]

use std::collections::BTreeSet;
use std::process::Output;

use tessera_system_tests::bins::bin_dir;
use tessera_system_tests::cluster::Cluster;
use tessera_system_tests::lying_admin::{LyingAdmin, Received};
use tessera_system_tests::operator_calls::{
    agent_view, cred_view, cred_view_as, explicit, ok, parse, pem_der, posted, sealed_to, set,
    tessera,
};

const SECRETS: [&str; 4] = [
    "db-password-v1",
    "web-token-v1",
    "db-password-v2",
    "db-password-v3",
];

/// The command was refused with `needle` in its message, and nothing was signed, sealed or deleted.
fn refused(o: &Output, sent: &[Received], needle: &str) {
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(
        o.status.code(),
        Some(2),
        "expected a refusal ({needle}): {stderr}"
    );
    assert!(stderr.contains(needle), "expected {needle:?} in: {stderr}");
    let writes: Vec<&Received> = sent.iter().filter(|r| r.method != "GET").collect();
    assert!(
        writes.is_empty(),
        "sent to the relay despite the refusal: {writes:?}"
    );
}

#[test]
fn a_lying_relay_gets_refusals_and_no_secret_from_the_operators_commands() {
    let tmp = tempfile::tempdir().unwrap();
    let c = Cluster::new(tmp.path(), &bin_dir(), "").unwrap();
    let mut agents = Vec::new();
    for id in ["edge-1", "edge-2", "edge-3"] {
        agents.push(c.agent(id, "").unwrap());
    }
    let der: Vec<Vec<u8>> = agents.iter().map(|a| pem_der(&a.cert)).collect();
    let honest_agents = serde_json::json!([
        agent_view("edge-1", &der[0]),
        agent_view("edge-2", &der[1]),
        agent_view("edge-3", &der[2]),
    ]);
    let relay = LyingAdmin::for_cluster(&c);
    relay.answer_fleet(honest_agents.clone());
    let alice = c.operator_dir();
    let mut all_sent = Vec::new();

    // Honest baseline: db sealed to exactly the two agents named, web to every certified agent.
    let out = ok(&tessera(
        &c,
        &alice,
        &[
            "cred", "put", "db", "--agent", "edge-1", "--agent", "edge-2",
        ],
        Some(SECRETS[0]),
    ));
    assert_eq!(out["version"], 1);
    let sent = relay.take();
    let (body, db1) = posted(&sent);
    assert_eq!(sealed_to(&body), set(&["edge-1", "edge-2"]));
    all_sent.extend(sent);
    ok(&tessera(
        &c,
        &alice,
        &["cred", "put", "web"],
        Some(SECRETS[1]),
    ));
    let sent = relay.take();
    let (body, web1) = posted(&sent);
    assert_eq!(sealed_to(&body), set(&["edge-1", "edge-2", "edge-3"]));
    all_sent.extend(sent);
    let web_id = cred_view(&web1)["id"].as_str().unwrap().to_owned();
    let db_id = cred_view(&db1)["id"].as_str().unwrap().to_owned();
    let honest = serde_json::json!([cred_view(&db1), cred_view(&web1)]);
    relay.answer("/v1/credentials", honest.clone());

    // 1. Which id a name has: db listed with web's id and web's (validly signed) statement.
    relay.answer(
        "/v1/credentials",
        serde_json::json!([cred_view_as(&web1, Some("db"), None)]),
    );
    let o = tessera(&c, &alice, &["cred", "rotate", "db"], Some(SECRETS[2]));
    refused(&o, &relay.take(), "serves a statement signed for web");
    // 2. Another credential's statement under db's own id and name.
    relay.answer(
        "/v1/credentials",
        serde_json::json!([cred_view_as(&web1, Some("db"), Some(&db_id))]),
    );
    let o = tessera(&c, &alice, &["grant", "db", "edge-3"], None);
    refused(&o, &relay.take(), "serves a statement signed for web");
    // 3. A name the operator never created, carrying a real statement.
    relay.answer(
        "/v1/credentials",
        serde_json::json!([cred_view_as(&web1, Some("ghost"), None)]),
    );
    let o = tessera(&c, &alice, &["cred", "put", "ghost"], Some("ghost-secret"));
    refused(&o, &relay.take(), "does not know");
    // The same statement listed as db, under its own (web's) id: the name is bound to another id.
    let mut as_db = cred_view(&web1);
    as_db["name"] = "db".into();
    relay.answer(
        "/v1/credentials",
        serde_json::json!([cred_view(&web1), as_db]),
    );
    let o = tessera(&c, &alice, &["cred", "rm", "db"], None);
    refused(&o, &relay.take(), "serves a statement signed for web");

    // An honest rotation; then the relay reports the older version again.
    relay.answer("/v1/credentials", honest.clone());
    let out = ok(&tessera(
        &c,
        &alice,
        &["cred", "rotate", "db"],
        Some(SECRETS[2]),
    ));
    assert_eq!(out["version"], 2);
    let sent = relay.take();
    let (body, db2) = posted(&sent);
    assert_eq!(sealed_to(&body), set(&["edge-1", "edge-2"]));
    all_sent.extend(sent);
    // 4. Rollback claim: v1 is listed as current.
    let o = tessera(&c, &alice, &["cred", "rotate", "db"], Some(SECRETS[3]));
    refused(&o, &relay.take(), "older than version 2");

    // 5. The listing widens db's scope to all and adds agents: a rogue CA's "mallory", edge-1's certificate under
    //    another id. The rotation keeps the signed scope and seals to exactly edge-1 and edge-2.
    // A rogue CA of the same org name certifies "mallory".
    let mallory = tessera_system_tests::org::TestOrg::new()
        .agent("mallory")
        .cert;
    let mut widened = cred_view(&db2);
    widened["scope"] = serde_json::json!({ "type": "all" });
    relay.answer(
        "/v1/credentials",
        serde_json::json!([widened, cred_view(&web1)]),
    );
    let mut padded = honest_agents.as_array().unwrap().clone();
    padded.push(agent_view("mallory", &mallory));
    padded.push(agent_view("edge-9", &der[0]));
    relay.answer("/v1/agents", serde_json::Value::Array(padded.clone()));
    let out = ok(&tessera(
        &c,
        &alice,
        &["cred", "rotate", "db"],
        Some(SECRETS[3]),
    ));
    assert_eq!(out["version"], 3);
    let sent = relay.take();
    let (body, db3) = posted(&sent);
    assert_eq!(sealed_to(&body), set(&["edge-1", "edge-2"]));
    assert_eq!(parse(&db3).scope, explicit(&["edge-1", "edge-2"]));
    all_sent.extend(sent);
    // Scope all: only certificates the CA issued for that agent id are sealed to; the rest are reported.
    relay.answer(
        "/v1/credentials",
        serde_json::json!([cred_view(&db3), cred_view(&web1)]),
    );
    let out = ok(&tessera(
        &c,
        &alice,
        &["cred", "rotate", "web"],
        Some("web-token-v2"),
    ));
    let sent = relay.take();
    let (body, web2) = posted(&sent);
    assert_eq!(sealed_to(&body), set(&["edge-1", "edge-2", "edge-3"]));
    let skipped: BTreeSet<String> = out["skipped"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["agent"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(skipped, set(&["edge-9", "mallory"]));
    all_sent.extend(sent);
    // 6. An explicit scope naming an agent the CA never certified: an error, not "sealed for 0 agents".
    let o = tessera(
        &c,
        &alice,
        &["cred", "put", "mal", "--agent", "mallory"],
        Some("for-mallory"),
    );
    refused(&o, &relay.take(), "--agent mallory: no live certificate");

    // 7. A replaced certificate: edge-3 re-enrolled with --replace; the relay keeps listing its old certificate.
    let req = agents[2].dir.join("request.json");
    let new_cert = c.root().join("edge-3-new.pem");
    let o = c
        .operator_cmd()
        .args(["ca", "issue-agent", "--dir"])
        .arg(c.ca_dir())
        .arg(&req)
        .arg("--out")
        .arg(&new_cert)
        .output()
        .unwrap();
    assert!(
        !o.status.success(),
        "a second live certificate for edge-3 was issued without --replace"
    );
    let o = c
        .operator_cmd()
        .args(["ca", "issue-agent", "--replace", "--dir"])
        .arg(c.ca_dir())
        .arg(&req)
        .arg("--out")
        .arg(&new_cert)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    relay.answer("/v1/agents", serde_json::Value::Array(padded));
    relay.answer(
        "/v1/credentials",
        serde_json::json!([cred_view(&db3), cred_view(&web2)]),
    );
    let out = ok(&tessera(
        &c,
        &alice,
        &["cred", "rotate", "web"],
        Some("web-token-v3"),
    ));
    let sent = relay.take();
    let (body, web3) = posted(&sent);
    assert_eq!(
        sealed_to(&body),
        set(&["edge-1", "edge-2"]),
        "the replaced certificate was sealed to"
    );
    assert_eq!(out["skipped"].as_array().unwrap().len(), 3);
    all_sent.extend(sent);

    // 8. Grant and revoke change the scope only as asked, from the catalogue's statement, and print the change.
    relay.answer(
        "/v1/credentials",
        serde_json::json!([cred_view(&db3), cred_view(&web3)]),
    );
    let out = ok(&tessera(&c, &alice, &["grant", "db", "edge-3"], None));
    assert_eq!(out["scope_change"]["added"], serde_json::json!(["edge-3"]));
    let sent = relay.take();
    let (body, db3r1) = posted(&sent);
    assert!(body.envelopes.is_empty());
    assert_eq!(
        parse(&db3r1).scope,
        explicit(&["edge-1", "edge-2", "edge-3"])
    );
    all_sent.extend(sent);
    // The relay still lists revision 0 (it withholds the grant): refused, the relay is behind what was signed.
    let o = tessera(&c, &alice, &["revoke", "db", "edge-2"], None);
    refused(&o, &relay.take(), "older than version 3 revision 1");
    relay.answer(
        "/v1/credentials",
        serde_json::json!([cred_view(&db3r1), cred_view(&web3)]),
    );
    let out = ok(&tessera(&c, &alice, &["revoke", "db", "edge-2"], None));
    assert_eq!(out["scope_revision"], 2);
    assert_eq!(
        out["scope_change"]["removed"],
        serde_json::json!(["edge-2"])
    );
    let sent = relay.take();
    let (_, db3r2) = posted(&sent);
    assert_eq!(parse(&db3r2).scope, explicit(&["edge-1", "edge-3"]));
    all_sent.extend(sent);

    // 9. A second operator learns credentials only from verified statements, trusting a new name on first use.
    let bob = c.root().join("bob");
    let o = c
        .operator_cmd()
        .args(["ca", "issue-operator", "--id", "bob", "--dir"])
        .arg(c.ca_dir())
        .arg("--out-dir")
        .arg(&bob)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    relay.answer(
        "/v1/credentials",
        serde_json::json!([cred_view(&db3r2), cred_view(&web3)]),
    );
    let o = tessera(&c, &bob, &["cred", "rotate", "web"], Some("bobs-token"));
    refused(&o, &relay.take(), "does not know");
    let mut tampered = cred_view(&web3);
    let mut payload: serde_json::Value = serde_json::from_slice(
        &tessera_proto::b64_decode(tampered["statement"]["payload"].as_str().unwrap()).unwrap(),
    )
    .unwrap();
    payload["scope"] = serde_json::json!({ "type": "explicit", "agents": ["edge-1"] });
    tampered["statement"]["payload"] =
        tessera_proto::b64_encode(serde_json::to_vec(&payload).unwrap()).into();
    relay.answer(
        "/v1/credentials",
        serde_json::json!([cred_view(&db3r2), tampered]),
    );
    let o = tessera(&c, &bob, &["cred", "adopt", "--all"], None);
    assert_eq!(o.status.code(), Some(2));
    let adopted: Vec<serde_json::Value> = serde_json::from_slice(&o.stdout).unwrap();
    let outcome = |n: &str| adopted.iter().find(|a| a["name"] == n).unwrap()["outcome"].clone();
    assert_eq!(outcome("db"), "new");
    assert_eq!(outcome("web"), "refused");
    relay.answer(
        "/v1/credentials",
        serde_json::json!([cred_view(&db3r2), cred_view(&web3)]),
    );
    ok(&tessera(&c, &bob, &["cred", "adopt", "web"], None));
    let out = ok(&tessera(
        &c,
        &bob,
        &["cred", "rotate", "web"],
        Some("bobs-token"),
    ));
    assert_eq!(out["version"], 4);
    all_sent.extend(relay.take());

    // 10. rm takes the id from the catalogue.
    let out = ok(&tessera(&c, &alice, &["cred", "rm", "db"], None));
    assert_eq!(out["deleted"], db_id);
    let sent = relay.take();
    let tombstones: Vec<&Received> = sent
        .iter()
        .filter(|r| r.method == "POST" && r.path.ends_with("/tombstone"))
        .collect();
    assert_eq!(tombstones.len(), 1);
    assert_eq!(
        tombstones[0].path,
        format!("/v1/credentials/{db_id}/tombstone")
    );
    // The tombstone names the catalogue's id and version, signed by alice.
    let body: tessera_proto::admin::TombstoneBody =
        serde_json::from_slice(&tombstones[0].body).unwrap();
    let t = body
        .tombstone
        .parse_unverified(tessera_proto::statement::TOMBSTONE_KIND)
        .unwrap();
    assert_eq!(
        (
            t.credential_id.to_string(),
            t.name.as_str(),
            t.creator.as_str()
        ),
        (db_id.clone(), "db", "alice")
    );
    assert_eq!(t.version, 3);
    assert!(!sent
        .iter()
        .any(|r| r.path.contains(&web_id)
            && (r.method == "DELETE" || r.path.ends_with("/tombstone"))));
    all_sent.extend(sent);

    // 11. db re-created (a new id); the relay serves the deleted id's statement under the name again.
    relay.answer("/v1/credentials", serde_json::json!([cred_view(&web3)]));
    let out = ok(&tessera(
        &c,
        &alice,
        &["cred", "put", "db", "--agent", "edge-1"],
        Some("db-new"),
    ));
    assert_ne!(out["id"], db_id);
    all_sent.extend(relay.take());
    relay.answer("/v1/credentials", serde_json::json!([cred_view(&db3r2)]));
    let o = tessera(&c, &alice, &["cred", "rotate", "db"], Some("db-newer"));
    refused(&o, &relay.take(), "was deleted");

    // The relay's bytes never contain a secret.
    for r in &all_sent {
        for s in SECRETS
            .iter()
            .chain(&["web-token-v2", "web-token-v3", "bobs-token"])
        {
            assert!(
                !r.body.windows(s.len()).any(|w| w == s.as_bytes()),
                "{s} reached the relay in {} {}",
                r.method,
                r.path
            );
        }
    }
}
