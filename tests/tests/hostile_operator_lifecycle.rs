//! The operator's hostile suite for the lifecycle: a compromised relay (the scriptable lying admin API) against the
//! real `tessera` commands. It queues renewal requests it forged, hoping the offline CA certifies keys of its own;
//! and it records deliveries, purges and rotations that never happened (no receipt, or one it signed itself),
//! hoping `audit verify` and `cred show` vouch for them. Each gets a refusal or a report, and nothing signed.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::too_many_lines
)]

use std::collections::BTreeMap;

use tessera_proto::audit::{next_entry, AuditEntry};
use tessera_proto::cert::{CertSerial, IdentityKey, RenewalRequest};
use tessera_proto::envelope::WrapPrivateKey;
use tessera_proto::receipt::{in_audit, Receipt, ReceiptBody, ReceiptFact};
use tessera_proto::statement::RevocationList;
use tessera_system_tests::bins::bin_dir;
use tessera_system_tests::cluster::Cluster;
use tessera_system_tests::lying_admin::LyingAdmin;
use tessera_system_tests::operator_calls::{agent_view, ok, parse, posted, tessera};
use tessera_system_tests::wire_agent::WireAgent;

struct World {
    _tmp: tempfile::TempDir,
    c: Cluster,
    relay: LyingAdmin,
    agents: Vec<WireAgent>,
}

fn world() -> World {
    let tmp = tempfile::tempdir().unwrap();
    let c = Cluster::new(tmp.path(), &bin_dir(), "").unwrap();
    let agents: Vec<WireAgent> = ["edge-1", "edge-2", "edge-3"]
        .iter()
        .map(|id| WireAgent::enroll(&c, id))
        .collect();
    let relay = LyingAdmin::for_cluster(&c);
    relay.answer_fleet(serde_json::Value::Array(
        agents
            .iter()
            .map(|a| agent_view(a.id.as_str(), &a.cert))
            .collect(),
    ));
    World {
        _tmp: tmp,
        c,
        relay,
        agents,
    }
}

fn queued(agent: &WireAgent, request: &RenewalRequest) -> serde_json::Value {
    serde_json::json!({
        "agent": agent.id.as_str(), "state": "requested", "request": request,
        "requested_ms": 0, "updated_ms": 0,
    })
}

/// The command exited with `code`; what it printed (JSON).
fn exits(o: &std::process::Output, code: i32) -> serde_json::Value {
    assert_eq!(
        o.status.code(),
        Some(code),
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    serde_json::from_slice(&o.stdout).unwrap()
}

fn issued_count(c: &Cluster) -> usize {
    let v: serde_json::Value =
        serde_json::from_slice(&std::fs::read(c.ca_dir().join("issued.json")).unwrap()).unwrap();
    v["certs"].as_array().unwrap().len()
}

#[test]
fn ca_renew_refuses_renewal_requests_the_relay_forged_and_certifies_only_genuine_ones() {
    let w = world();
    let [e1, e2, e3] = [&w.agents[0], &w.agents[1], &w.agents[2]];
    let ca = w.c.ca_dir();
    let before = issued_count(&w.c);

    // 1. For edge-1's certificate, signed by a key the relay holds (it wants its own keys certified as edge-1).
    let relay_key = IdentityKey::generate().unwrap();
    let relay_wrap = WrapPrivateKey::generate().unwrap();
    let forged = RenewalRequest::new(
        &e1.certificate,
        &relay_key,
        &relay_key,
        relay_wrap.public_key(),
        0,
    )
    .unwrap();
    // 2. edge-3's genuine request, listed under edge-2.
    let misfiled = e3.renewal();
    // 3. edge-3's genuine request with the serial edited to a certificate the CA never issued.
    let mut unknown = e3.renewal();
    unknown.body.current_serial = CertSerial::try_from("7f00ff".to_owned()).unwrap();
    w.relay.answer(
        "/v1/renewals",
        serde_json::json!([
            queued(e1, &forged),
            queued(e2, &misfiled),
            queued(e3, &unknown)
        ]),
    );
    let o = tessera(
        &w.c,
        &w.c.operator_dir(),
        &["ca", "renew", "--dir", ca.to_str().unwrap(), "--due"],
        None,
    );
    let rows = exits(&o, 2);
    for (i, why) in [
        "does not verify",
        "names agent edge-3",
        "not one the CA issued",
    ]
    .iter()
    .enumerate()
    {
        let outcome = rows[i]["outcome"].as_str().unwrap();
        assert!(
            outcome.starts_with("REFUSED") && outcome.contains(why),
            "{outcome}"
        );
    }
    let sent = w.relay.take();
    assert!(
        sent.iter().all(|r| r.method == "GET"),
        "nothing pushed: {sent:?}"
    );
    assert_eq!(issued_count(&w.c), before, "nothing certified");
    // Listed in the relay's reverse order, as text: a table with headers, sorted by agent; REFUSED still exit 2.
    w.relay.answer(
        "/v1/renewals",
        serde_json::json!([
            queued(e3, &unknown),
            queued(e2, &misfiled),
            queued(e1, &forged)
        ]),
    );
    let human =
        w.c.operator_cmd()
            .args(["ca", "renew", "--dir", ca.to_str().unwrap(), "--due"])
            .output()
            .unwrap();
    assert_eq!(human.status.code(), Some(2));
    let text = String::from_utf8_lossy(&human.stdout);
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines[0].starts_with("AGENT") && lines[0].contains("REQUESTED"),
        "{text}"
    );
    let agents: Vec<&str> = lines[1..]
        .iter()
        .map(|l| l.split_whitespace().next().unwrap())
        .collect();
    assert_eq!(agents, ["edge-1", "edge-2", "edge-3"], "{text}");
    assert!(lines[1..].iter().all(|l| l.contains("REFUSED")), "{text}");
    w.relay.take();
    assert_eq!(issued_count(&w.c), before, "nothing certified");

    // The genuine request of edge-1: certified for exactly its new keys and pushed.
    let genuine = e1.renewal();
    w.relay
        .answer("/v1/renewals", serde_json::json!([queued(e1, &genuine)]));
    ok(&tessera(
        &w.c,
        &w.c.operator_dir(),
        &["ca", "renew", "--dir", ca.to_str().unwrap(), "--due"],
        None,
    ));
    let sent = w.relay.take();
    let pushes: Vec<_> = sent.iter().filter(|r| r.method == "POST").collect();
    assert_eq!(pushes.len(), 1, "{sent:?}");
    assert_eq!(pushes[0].path, "/v1/renewals/edge-1/certificate");
    let body: serde_json::Value = serde_json::from_slice(&pushes[0].body).unwrap();
    let der = tessera_proto::b64_decode(body["cert"].as_str().unwrap()).unwrap();
    let ca_pin = tessera_proto::cert::PinnedCa::from_der(&w.c.ca_der().unwrap()).unwrap();
    let green = ca_pin
        .verify_agent(
            &der,
            tessera_system_tests::broker::now(),
            &RevocationList::empty(),
        )
        .unwrap();
    assert_eq!(green.agent_id, e1.id);
    assert_eq!(
        green.identity.spki_der(),
        genuine.body.identity_spki.as_slice()
    );
    assert_eq!(green.wrap.spki_der(), genuine.body.wrap_spki.as_slice());
    assert_eq!(issued_count(&w.c), before + 1);
}

fn chain(kinds: &[(&str, BTreeMap<String, String>)]) -> Vec<AuditEntry> {
    let mut out: Vec<AuditEntry> = Vec::new();
    for (kind, data) in kinds {
        let e = next_entry(out.last(), 0, kind, None, data.clone());
        out.push(e);
    }
    out
}

fn data(pairs: &[(&str, String)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect()
}

#[test]
fn deliveries_purges_and_rotations_recorded_without_the_agents_receipt_are_reported() {
    let w = world();
    let [e1, e2, _] = [&w.agents[0], &w.agents[1], &w.agents[2]];
    let alice = w.c.operator_dir();
    // A real credential (so the catalogue knows db and its commitment).
    ok(&tessera(
        &w.c,
        &alice,
        &[
            "cred", "put", "db", "--agent", "edge-1", "--agent", "edge-2",
        ],
        Some("db-password-v1"),
    ));
    let (_, statement) = posted(&w.relay.take());
    let st = parse(&statement);
    let id = st.credential_id;
    let stored = |delivery| ReceiptFact::Stored {
        delivery_id: delivery,
        credential_id: id,
        version: 1,
        digest: st.commitment,
    };
    let delivery = uuid::Uuid::new_v4();
    let genuine = e1.receipt(stored(delivery));
    // The relay's own signature over a purge receipt naming edge-1's certificate.
    let relay_key = IdentityKey::generate().unwrap();
    let forged_purge = Receipt::sign(
        &ReceiptBody::new(
            e1.id.clone(),
            e1.certificate.serial.clone(),
            tessera_system_tests::broker::now(),
            ReceiptFact::Purged {
                credential_id: id,
                version: 1,
                scope_revision: None,
            },
        ),
        &relay_key,
    )
    .unwrap();
    // A rotation "completed" by edge-1, receipted by edge-2.
    let other_agents = e2.receipt(ReceiptFact::Rotated {
        previous_serial: e1.certificate.serial.clone(),
        serial: e2.certificate.serial.clone(),
    });
    let with = |mut d: BTreeMap<String, String>, r: Option<&Receipt>| {
        if let Some(r) = r {
            d.extend(in_audit::fields(r, &r.claimed().unwrap()).map(|(k, v)| (k.to_owned(), v)));
        }
        d
    };
    let success = |target: &str, receipt: Option<&Receipt>| {
        with(
            data(&[
                ("result", "success".into()),
                ("credential", id.to_string()),
                ("version", "1".into()),
                ("target", target.into()),
                ("peer", "operator".into()),
                ("delivery", delivery.to_string()),
                ("digest", tessera_proto::b64_encode(st.commitment.0)),
            ]),
            receipt,
        )
    };
    let trail = chain(&[
        ("rewrap_final", success("edge-1", Some(&genuine))),
        ("rewrap_final", success("edge-2", None)),
        (
            "credential_purged",
            with(
                data(&[
                    ("credential", id.to_string()),
                    ("version", "1".into()),
                    ("agent", "edge-1".into()),
                ]),
                Some(&forged_purge),
            ),
        ),
        (
            "rotation_completed",
            with(
                data(&[
                    ("agent", "edge-1".into()),
                    ("previous_serial", e1.certificate.serial.to_string()),
                    ("serial", e2.certificate.serial.to_string()),
                ]),
                Some(&other_agents),
            ),
        ),
    ]);
    w.relay
        .answer("/v1/audit", serde_json::to_value(&trail).unwrap());
    let o = tessera(&w.c, &alice, &["audit", "verify"], None);
    let v = exits(&o, 4);
    assert_eq!(v["chain"], "intact");
    assert_eq!(v["receipts"], 1);
    let bad: Vec<u64> = v["bad_receipts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(bad, vec![1, 2, 3]);
    // The honest part alone verifies.
    w.relay
        .answer("/v1/audit", serde_json::to_value(&trail[..1]).unwrap());
    let v = ok(&tessera(&w.c, &alice, &["audit", "verify"], None));
    assert_eq!(v["ok"], true);

    // `cred show db`: the relay claims edge-1 stored it (receipted), edge-2 stored it (no receipt) and edge-3 purged
    // it (the relay's own signature).
    let row = |agent: &str, state: &str, receipt: Option<&Receipt>, purge: Option<&Receipt>| {
        serde_json::json!({
            "agent": agent, "agent_state": "online", "version": 1, "state": state, "attempts": 0,
            "next_attempt_ms": 0, "last_error": null,
            "purge": purge.map(|_| "purged"), "receipt": receipt, "purge_receipt": purge,
        })
    };
    w.relay.answer(
        &format!("/v1/credentials/{id}/deliveries"),
        serde_json::json!([
            row("edge-1", "stored", Some(&genuine), None),
            row("edge-2", "stored", None, None),
            row("edge-3", "pending", None, Some(&forged_purge)),
        ]),
    );
    let o = tessera(&w.c, &alice, &["cred", "show", "db"], None);
    let v = exits(&o, 4);
    assert_eq!(v["without_valid_receipt"], 2);
    assert_eq!(v["agents"][0]["receipt"], "ok");
    assert_eq!(v["agents"][1]["receipt"], "no receipt");
    assert!(v["agents"][2]["receipt"]
        .as_str()
        .unwrap()
        .contains("signature"));
    // Text output marks them too.
    let human =
        w.c.operator_cmd()
            .env("TESSERA_OPERATOR_DIR", &alice)
            .args(["cred", "show", "db"])
            .output()
            .unwrap();
    let text = String::from_utf8_lossy(&human.stdout);
    assert_eq!(text.matches("NO VALID RECEIPT").count(), 2, "{text}");
    assert_eq!(human.status.code(), Some(4));
    // A table: the name and id, a header line, one row per agent sorted by agent, then the summary.
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].starts_with("db  "), "{text}");
    assert!(
        lines[1].starts_with("AGENT") && lines[1].contains("RECEIPT"),
        "{text}"
    );
    let agents: Vec<&str> = lines[2..5]
        .iter()
        .map(|l| l.split_whitespace().next().unwrap())
        .collect();
    assert_eq!(agents, ["edge-1", "edge-2", "edge-3"], "{text}");
}

#[test]
fn a_purge_receipt_of_an_earlier_revoke_does_not_stand_for_a_later_one() {
    let w = world();
    let e2 = &w.agents[1];
    let alice = w.c.operator_dir();
    // db for edge-1 and edge-2; edge-2 revoked (revision 1), granted again (2), revoked again (3). The relay answers
    // honestly about each statement, so each command builds on the one before.
    let run = |args: &[&str], secret: Option<&str>| {
        ok(&tessera(&w.c, &alice, args, secret));
        let (_, statement) = posted(&w.relay.take());
        w.relay.answer(
            "/v1/credentials",
            serde_json::json!([tessera_system_tests::operator_calls::cred_view(&statement)]),
        );
        parse(&statement)
    };
    let st = run(
        &[
            "cred", "put", "db", "--agent", "edge-1", "--agent", "edge-2",
        ],
        Some("db-password-v1"),
    );
    let id = st.credential_id;
    for args in [
        ["revoke", "db", "edge-2"],
        ["grant", "db", "edge-2"],
        ["revoke", "db", "edge-2"],
    ] {
        run(&args, None);
    }
    let purged = |revision| {
        e2.receipt(ReceiptFact::Purged {
            credential_id: id,
            version: 1,
            scope_revision: Some(revision),
        })
    };
    let show = |receipt: &Receipt| {
        w.relay.answer(
            &format!("/v1/credentials/{id}/deliveries"),
            serde_json::json!([{
                "agent": "edge-2", "agent_state": "online", "version": 1, "state": "pending", "attempts": 0,
                "next_attempt_ms": 0, "last_error": null, "purge": "purged", "purge_receipt": receipt,
            }]),
        );
        tessera(&w.c, &alice, &["cred", "show", "db"], None)
    };
    // The receipt edge-2 signed for the first revoke, before it was granted again: refused.
    let o = show(&purged(1));
    let v = exits(&o, 4);
    assert!(
        v["agents"][0]["receipt"]
            .as_str()
            .unwrap()
            .contains("another revoke"),
        "{v}"
    );
    // The receipt of the revoke in force: it stands.
    let v = ok(&show(&purged(3)));
    assert_eq!(v["without_valid_receipt"], 0, "{v}");
    assert_eq!(v["agents"][0]["receipt"], "ok");
}

/// A relay fakes "synced" by the count of rows: edge-1 listed twice with its genuine receipt and edge-2 left out;
/// then, after edge-3 is revoked at the same version, edge-3's old genuine receipt listed as if it still held it.
/// `cred show` counts distinct agents of the signed scope, names what is wrong, and exits 4.
#[test]
fn a_relay_cannot_fake_synced_with_a_duplicate_row_or_an_agent_left_out_of_the_scope() {
    let w = world();
    let [e1, _, e3] = [&w.agents[0], &w.agents[1], &w.agents[2]];
    let alice = w.c.operator_dir();
    let run = |args: &[&str], secret: Option<&str>| {
        ok(&tessera(&w.c, &alice, args, secret));
        let (_, statement) = posted(&w.relay.take());
        w.relay.answer(
            "/v1/credentials",
            serde_json::json!([tessera_system_tests::operator_calls::cred_view(&statement)]),
        );
        parse(&statement)
    };
    let st = run(
        &[
            "cred", "put", "db", "--agent", "edge-1", "--agent", "edge-2", "--agent", "edge-3",
        ],
        Some("db-password-v1"),
    );
    let id = st.credential_id;
    let stored = |a: &WireAgent| {
        a.receipt(ReceiptFact::Stored {
            delivery_id: uuid::Uuid::new_v4(),
            credential_id: id,
            version: 1,
            digest: st.commitment,
        })
    };
    let row = |agent: &str, receipt: &Receipt| {
        serde_json::json!({
            "agent": agent, "agent_state": "online", "version": 1, "state": "stored", "attempts": 0,
            "next_attempt_ms": 0, "last_error": null, "receipt": receipt,
        })
    };
    let (r1, r3) = (stored(e1), stored(e3));
    let show = |rows: serde_json::Value| {
        w.relay
            .answer(&format!("/v1/credentials/{id}/deliveries"), rows);
        tessera(&w.c, &alice, &["cred", "show", "db"], None)
    };
    // The honest answer: all three, synced.
    let v = ok(&show(serde_json::json!([
        row("edge-1", &r1),
        row("edge-2", &stored(&w.agents[1])),
        row("edge-3", &r3)
    ])));
    assert_eq!(v["summary"], "stored v1 3/3", "{v}");

    run(&["revoke", "db", "edge-3"], None);
    // (a) edge-1 twice, edge-2 left out.
    let v = exits(
        &show(serde_json::json!([row("edge-1", &r1), row("edge-1", &r1)])),
        4,
    );
    assert_eq!(v["not_listed"], serde_json::json!(["edge-2"]), "{v}");
    assert_eq!(v["summary"], "stored v1 0/2", "{v}");
    assert!(v["integrity_failures"][0]
        .as_str()
        .unwrap()
        .contains("edge-1: listed more than once"));
    // (b) edge-3, revoked from the scope, with its old genuine receipt; edge-2 left out.
    let o = show(serde_json::json!([row("edge-1", &r1), row("edge-3", &r3)]));
    let v = exits(&o, 4);
    assert_eq!(v["summary"], "stored v1 1/2", "{v}");
    assert!(v["integrity_failures"][0]
        .as_str()
        .unwrap()
        .contains("edge-3: recorded as holding it"));
}

/// An agent whose certificate was revoked (`ca revoke`) but has not expired is no agent an explicit scope may name:
/// `--agent` checks it against the operator's current revocation list, not only `issued.json`.
#[test]
fn an_explicit_scope_refuses_an_agent_whose_certificate_is_revoked() {
    let w = world();
    let alice = w.c.operator_dir();
    let pem_path = w.c.root().join("edge-2.pem");
    std::fs::write(
        &pem_path,
        pem::encode(&pem::Pem::new("CERTIFICATE", w.agents[1].cert.clone())),
    )
    .unwrap();
    let o =
        w.c.operator_cmd()
            .args(["ca", "revoke", "--dir"])
            .arg(w.c.ca_dir())
            .arg("--cert")
            .arg(&pem_path)
            .output()
            .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    w.relay.take();
    let o = tessera(
        &w.c,
        &alice,
        &[
            "cred", "put", "db", "--agent", "edge-1", "--agent", "edge-2",
        ],
        Some("db-password-v1"),
    );
    assert_eq!(
        o.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("--agent edge-2: no live certificate"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(w.relay.take().iter().all(|r| r.method == "GET"));
}
