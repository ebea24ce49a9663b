//! Scenario 8, the hostile relay: a relay taken over (a double with the relay's rights on the broker that speaks
//! the real wire protocol) tries each attack of docs/threat-model.md ("The four attacks of the reference protocol") against real `tessera-agent` processes through a real
//! Mosquitto with TLS and the pattern ACL. For each: the agent stores nothing, a waiting workload gets a typed error,
//! the peer never encrypts to a key the org CA did not certify for the named target, and no plaintext ever reaches
//! the relay (every byte it received is searched).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
// Each suite reads top to bottom as one story on one broker.
#![allow(clippy::too_many_lines)]

use std::process::Output;
use std::time::Duration;

use tessera_proto::envelope::open;
use tessera_proto::ids::{AgentId, CredentialId};
use tessera_proto::secret::SecretPayload;
use tessera_proto::statement::Scope;
use tessera_proto::wire::{
    self, CredentialStore, Down, RefusalReason, RewrapRequest, StoreOutcome, Up,
};
use tessera_system_tests::bins::bin;
use tessera_system_tests::wire_world::{
    assert_never_seen, envelope_field, stdout, Agent, Org, WireRelay, World,
};

const POLICY: &str = "[policy.\"*\"]\nuids = [0]\n";

async fn world() -> World {
    World::new(&bin("tessera-agent")).await
}

fn stored_outcome(up: Up) -> StoreOutcome {
    match up {
        Up::CredentialStored(s) => s.outcome,
        other => panic!("expected credential_stored, got {other:?}"),
    }
}

fn refused(reason: RefusalReason) -> StoreOutcome {
    StoreOutcome::Refused { reason }
}

/// A workload on `agent` asks for `name`, which it lacks; the hostile relay answers its JIT request with the
/// delivery `make` builds. Returns the agent's answer to the delivery and what the workload got.
async fn during_jit(
    relay: &mut WireRelay,
    agent: &Agent,
    name: &str,
    make: impl FnOnce(uuid::Uuid) -> CredentialStore,
) -> (StoreOutcome, Output) {
    let bin = bin("tessera-agent");
    let socket = agent.socket.clone();
    let name = name.to_owned();
    let workload = std::thread::spawn(move || {
        std::process::Command::new(bin)
            .arg("--socket")
            .arg(socket)
            .args(["get", &name])
            .output()
            .unwrap()
    });
    let Up::CredentialMissing(m) = relay.next_up(&agent.id).await else {
        panic!("expected credential_missing")
    };
    relay
        .send(&agent.id, &Down::CredentialStore(make(m.request_id)))
        .await;
    let outcome = stored_outcome(relay.next_up(&agent.id).await);
    let out = tokio::task::block_in_place(|| workload.join().unwrap());
    (outcome, out)
}

/// An attack answering a JIT request: its name, the delivery, the agent's answer, the workload's exit code and
/// public reason.
type Case<'a> = (
    &'static str,
    Box<dyn FnOnce(uuid::Uuid) -> CredentialStore + 'a>,
    StoreOutcome,
    i32,
    &'static str,
);

fn stored_names(agent: &Agent) -> Vec<String> {
    let out = agent.get_as(None, &["list"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let mut names: Vec<String> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap().to_owned())
        .collect();
    names.sort();
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_target_refuses_every_attack_stores_nothing_and_fails_the_workload_typed() {
    let mut w = world().await;
    let agent = w.online_agent("edge-1", POLICY).await;
    let (db, shared) = (CredentialId::random(), CredentialId::random());
    for (id, name, secret) in [(db, "db", "hunter2"), (shared, "shared", "for-everyone")] {
        let d = w
            .org
            .delivery(&agent.cert().wrap, id, 1, name, Scope::All, secret);
        w.relay.send(&agent.id, &Down::CredentialStore(d)).await;
        assert!(matches!(
            stored_outcome(w.relay.next_up(&agent.id).await),
            StoreOutcome::Stored { .. }
        ));
    }

    // Target refusals over the wire: nothing stored, typed outcome.
    let cert = agent.cert().clone();
    // Commitment swap: another credential's envelope under db's statement, version 2.
    let mut swap = w
        .org
        .delivery(&cert.wrap, db, 2, "db", Scope::All, "rotated");
    swap.envelope = w
        .org
        .delivery(&cert.wrap, shared, 2, "shared", Scope::All, "other")
        .envelope;
    w.relay.send(&agent.id, &Down::CredentialStore(swap)).await;
    assert_eq!(
        stored_outcome(w.relay.next_up(&agent.id).await),
        StoreOutcome::Mismatch
    );
    // Injection of a plaintext of the relay's choosing.
    let mut inject = w
        .org
        .delivery(&cert.wrap, db, 2, "db", Scope::All, "rotated");
    inject.envelope = tessera_proto::envelope::seal(
        &cert.wrap,
        SecretPayload::from_plain_text("relay-chosen")
            .unwrap()
            .bytes(),
    )
    .unwrap();
    w.relay
        .send(&agent.id, &Down::CredentialStore(inject))
        .await;
    assert_eq!(
        stored_outcome(w.relay.next_up(&agent.id).await),
        StoreOutcome::Mismatch
    );
    // Tampered envelope fields.
    for field in ["encrypted_key", "iv", "ciphertext", "tag"] {
        let mut d = w
            .org
            .delivery(&cert.wrap, db, 2, "db", Scope::All, "rotated");
        let f = envelope_field(&mut d.envelope, field);
        let mut bytes = tessera_proto::b64_decode(f).unwrap();
        bytes[0] ^= 0x55;
        *f = tessera_proto::b64_encode(&bytes);
        w.relay.send(&agent.id, &Down::CredentialStore(d)).await;
        assert_eq!(
            stored_outcome(w.relay.next_up(&agent.id).await),
            refused(RefusalReason::BadEnvelope),
            "{field}"
        );
    }
    // Scope escalation: explicit scope naming another agent.
    let d = w.org.delivery(
        &cert.wrap,
        CredentialId::random(),
        1,
        "scoped",
        Scope::explicit([AgentId::new("edge-2").unwrap()]),
        "x",
    );
    w.relay.send(&agent.id, &Down::CredentialStore(d)).await;
    assert_eq!(
        stored_outcome(w.relay.next_up(&agent.id).await),
        refused(RefusalReason::NotInScope)
    );
    // A statement from another org.
    let rogue = Org::new();
    let d = rogue.delivery(&cert.wrap, db, 3, "db", Scope::All, "forged");
    w.relay.send(&agent.id, &Down::CredentialStore(d)).await;
    assert_eq!(
        stored_outcome(w.relay.next_up(&agent.id).await),
        refused(RefusalReason::BadStatement)
    );
    // Rotation to v2 succeeds; a replay of v1 (rollback) is then refused.
    let v1_replay = w
        .org
        .delivery(&cert.wrap, db, 1, "db", Scope::All, "hunter2");
    let v2 = w
        .org
        .delivery(&cert.wrap, db, 2, "db", Scope::All, "rotated");
    w.relay.send(&agent.id, &Down::CredentialStore(v2)).await;
    assert!(matches!(
        stored_outcome(w.relay.next_up(&agent.id).await),
        StoreOutcome::Stored { .. }
    ));
    w.relay
        .send(&agent.id, &Down::CredentialStore(v1_replay))
        .await;
    assert_eq!(
        stored_outcome(w.relay.next_up(&agent.id).await),
        refused(RefusalReason::StaleVersion)
    );
    // Replay of an old envelope under the newer statement: the commitment binds the version.
    let (v3_statement, _, _) = w.org.credential(db, 3, "db", Scope::All, "rotated-again");
    let mut replay = w
        .org
        .delivery(&cert.wrap, db, 2, "db", Scope::All, "rotated");
    replay.statement = v3_statement;
    w.relay
        .send(&agent.id, &Down::CredentialStore(replay))
        .await;
    assert_eq!(
        stored_outcome(w.relay.next_up(&agent.id).await),
        StoreOutcome::Mismatch
    );

    // The same attacks answering a waiting workload's JIT request: the workload gets a typed error at once.
    let newcred = CredentialId::random();
    let org = &w.org;
    let swap = |jit| {
        let mut d = org.delivery(&cert.wrap, newcred, 1, "newcred", Scope::All, "genuine");
        d.envelope = org
            .delivery(&cert.wrap, shared, 1, "shared", Scope::All, "for-everyone")
            .envelope;
        d.request_id = Some(jit);
        d
    };
    let inject = |jit| {
        let mut d = org.delivery(&cert.wrap, newcred, 1, "newcred", Scope::All, "genuine");
        d.envelope = tessera_proto::envelope::seal(
            &cert.wrap,
            SecretPayload::from_plain_text("relay-chosen")
                .unwrap()
                .bytes(),
        )
        .unwrap();
        d.request_id = Some(jit);
        d
    };
    let escalate = |jit| {
        let mut d = org.delivery(
            &cert.wrap,
            newcred,
            1,
            "newcred",
            Scope::explicit([AgentId::new("edge-2").unwrap()]),
            "genuine",
        );
        d.request_id = Some(jit);
        d
    };
    let forged = |jit| {
        let mut d = rogue.delivery(&cert.wrap, newcred, 1, "newcred", Scope::All, "forged");
        d.request_id = Some(jit);
        d
    };
    let tampered = |jit| {
        let mut d = org.delivery(&cert.wrap, newcred, 1, "newcred", Scope::All, "genuine");
        let f = envelope_field(&mut d.envelope, "tag");
        let mut bytes = tessera_proto::b64_decode(f).unwrap();
        bytes[0] ^= 1;
        *f = tessera_proto::b64_encode(&bytes);
        d.request_id = Some(jit);
        d
    };
    let cases: [Case<'_>; 5] = [
        (
            "swap",
            Box::new(swap),
            StoreOutcome::Mismatch,
            16,
            "COMMITMENT_MISMATCH",
        ),
        (
            "injection",
            Box::new(inject),
            StoreOutcome::Mismatch,
            16,
            "COMMITMENT_MISMATCH",
        ),
        (
            "scope escalation",
            Box::new(escalate),
            refused(RefusalReason::NotInScope),
            11,
            "NOT_GRANTED",
        ),
        (
            "forged statement",
            Box::new(forged),
            refused(RefusalReason::BadStatement),
            16,
            "COMMITMENT_MISMATCH",
        ),
        // An envelope that does not open may be a faulty peer's: an honest relay tries the next one, so the
        // workload keeps waiting; a relay that sends nothing more leaves it with a typed TIMEOUT.
        (
            "tampered tag",
            Box::new(tampered),
            refused(RefusalReason::BadEnvelope),
            13,
            "TIMEOUT",
        ),
    ];
    for (what, make, outcome, code, public) in cases {
        let (got, out) = during_jit(&mut w.relay, &agent, "newcred", make).await;
        assert_eq!(got, outcome, "{what}");
        assert_eq!(
            out.status.code(),
            Some(code),
            "{what}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            String::from_utf8_lossy(&out.stderr).contains(public),
            "{what}"
        );
    }

    // Messages on the wrong topic: another agent's delivery on this agent's topic, an upward message downward.
    let other = w.org.agent("edge-2");
    let misrouted = w.org.delivery(
        other.wrap.public_key(),
        newcred,
        1,
        "newcred",
        Scope::All,
        "for-edge-2",
    );
    w.relay
        .send(&agent.id, &Down::CredentialStore(misrouted))
        .await;
    assert_eq!(
        stored_outcome(w.relay.next_up(&agent.id).await),
        refused(RefusalReason::BadEnvelope)
    );
    w.relay
        .send_raw(
            &agent.id,
            wire::encode(&Up::CredentialStored(wire::CredentialStored {
                delivery_id: uuid::Uuid::new_v4(),
                credential_id: db,
                version: 9,
                outcome: StoreOutcome::Mismatch,
                receipt: None,
            }))
            .unwrap(),
        )
        .await;

    // Malformed and oversized messages are dropped; the agent keeps serving.
    w.relay.send_raw(&agent.id, b"{not json".to_vec()).await;
    w.relay.send_raw(&agent.id, vec![b'x'; 3 << 19]).await;
    w.relay
        .send_raw(
            &agent.id,
            br#"{"v":1,"msg":{"type":"launch_missiles","body":{}}}"#.to_vec(),
        )
        .await;
    let out = agent.get_as(None, &["get", "db"]);
    assert_eq!(stdout(&out), "rotated", "{}", agent.log());
    // Nothing of any attack was stored: only the two genuine credentials, db at its genuine newest version.
    assert_eq!(stored_names(&agent), ["db", "shared"]);
    assert_eq!(
        stdout(&agent.get_as(None, &["get", "shared"])),
        "for-everyone"
    );
    w.relay.drain(Duration::from_millis(500)).await;
    for secret in [
        "hunter2",
        "rotated",
        "for-everyone",
        "genuine",
        "for-edge-2",
    ] {
        assert_never_seen(&w.relay, secret);
    }
}

fn refusal(up: Up) -> RefusalReason {
    match up {
        Up::RewrapRefused(r) => r.reason,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_peer_never_encrypts_to_an_uncertified_or_out_of_scope_key() {
    let mut w = world().await;
    let peer = w.online_agent("peer-1", POLICY).await;
    let target = w.org.agent("target-1");
    let (target_cert, target_wrap) = (target.cert, target.wrap);
    let cert = peer.cert().clone();
    let (db, scoped) = (CredentialId::random(), CredentialId::random());
    let mut statements = std::collections::HashMap::new();
    for (cid, name, scope) in [
        (db, "db", Scope::All),
        (
            scoped,
            "scoped",
            Scope::explicit([AgentId::new("peer-1").unwrap()]),
        ),
    ] {
        let d = w
            .org
            .delivery(&cert.wrap, cid, 1, name, scope, "peer-secret");
        statements.insert(cid, d.statement.clone());
        w.relay.send(&peer.id, &Down::CredentialStore(d)).await;
        assert!(matches!(
            stored_outcome(w.relay.next_up(&peer.id).await),
            StoreOutcome::Stored { .. }
        ));
    }
    let request = |cid: CredentialId, target: &str, target_cert: &[u8]| {
        Down::RewrapRequest(RewrapRequest {
            request_id: uuid::Uuid::new_v4(),
            nonce: tessera_proto::b64_decode(&tessera_proto::b64_encode(
                uuid::Uuid::new_v4().as_bytes().repeat(2),
            ))
            .unwrap()
            .try_into()
            .unwrap(),
            credential_id: cid,
            version: 1,
            statement: statements
                .get(&cid)
                .cloned()
                .unwrap_or_else(|| w.org.credential(cid, 1, "x", Scope::All, "y").0),
            target: AgentId::new(target).unwrap(),
            target_cert: target_cert.to_vec(),
        })
    };

    // The good case: the four bindings, sealed to the certified key.
    let req = request(db, "target-1", &target_cert);
    w.relay.send(&peer.id, &req).await;
    let Down::RewrapRequest(sent) = &req else {
        unreachable!()
    };
    match w.relay.next_up(&peer.id).await {
        Up::RewrapResponse(r) => {
            assert_eq!((r.request_id, r.nonce), (sent.request_id, sent.nonce));
            assert_eq!(r.peer, peer.id);
            assert_eq!((r.credential_id, r.version), (db, 1));
            assert_eq!(r.target_key, target_wrap.public_key().fingerprint());
            open(&target_wrap, &r.envelope)
                .unwrap()
                .expose(|p| assert_eq!(p, br#"{"secret":"peer-secret"}"#));
            let stranger = w.org.agent("stranger").wrap;
            assert!(
                open(&stranger, &r.envelope).is_err(),
                "sealed to the target alone"
            );
        }
        other => panic!("{other:?}"),
    }
    // Key substitution: the relay's own certificate from another CA for the target's name.
    let rogue = Org::new();
    let rogue_cert = rogue.agent("target-1").cert;
    w.relay
        .send(&peer.id, &request(db, "target-1", &rogue_cert))
        .await;
    assert_eq!(
        refusal(w.relay.next_up(&peer.id).await),
        RefusalReason::UntrustedTarget
    );
    // A valid certificate for someone else than the named target.
    w.relay
        .send(&peer.id, &request(db, "target-2", &target_cert))
        .await;
    assert_eq!(
        refusal(w.relay.next_up(&peer.id).await),
        RefusalReason::TargetMismatch
    );
    // Scope escalation.
    w.relay
        .send(&peer.id, &request(scoped, "target-1", &target_cert))
        .await;
    assert_eq!(
        refusal(w.relay.next_up(&peer.id).await),
        RefusalReason::NotInScope
    );
    // A credential the peer does not hold.
    w.relay
        .send(
            &peer.id,
            &request(CredentialId::random(), "target-1", &target_cert),
        )
        .await;
    assert_eq!(
        refusal(w.relay.next_up(&peer.id).await),
        RefusalReason::UnknownCredential
    );
    // An expired target certificate.
    let expired = w
        .org
        .agent_from("target-1", w.org.at - 60 * 86_400, 30)
        .cert;
    w.relay
        .send(&peer.id, &request(db, "target-1", &expired))
        .await;
    assert_eq!(
        refusal(w.relay.next_up(&peer.id).await),
        RefusalReason::TargetExpired
    );
    // A statement from another org.
    let mut forged = request(db, "target-1", &target_cert);
    if let Down::RewrapRequest(r) = &mut forged {
        r.statement = rogue.credential(db, 1, "db", Scope::All, "peer-secret").0;
    }
    w.relay.send(&peer.id, &forged).await;
    assert_eq!(
        refusal(w.relay.next_up(&peer.id).await),
        RefusalReason::BadStatement
    );
    // After the CA revokes the target, the peer refuses it.
    let serial = w
        .org
        .ca
        .pinned()
        .verify_agent(
            &target_cert,
            tessera_system_tests::broker::now(),
            &tessera_proto::statement::RevocationList::empty(),
        )
        .unwrap()
        .serial;
    let list = tessera_proto::statement::RevocationList::new(
        1,
        tessera_system_tests::broker::now(),
        [serial],
    )
    .sign(&w.org.ca)
    .unwrap();
    w.relay
        .send(
            &peer.id,
            &Down::RevocationUpdate(wire::RevocationUpdate { list }),
        )
        .await;
    // The update has no reply; retry until the peer applies it.
    let mut reason = None;
    for _ in 0..20 {
        w.relay
            .send(&peer.id, &request(db, "target-1", &target_cert))
            .await;
        match w.relay.next_up(&peer.id).await {
            Up::RewrapRefused(r) => {
                reason = Some(r.reason);
                break;
            }
            _ => tokio::time::sleep(std::time::Duration::from_millis(100)).await,
        }
    }
    assert_eq!(reason, Some(RefusalReason::TargetRevoked));
    // The only envelope the peer made opens with the certified target's key alone.
    w.relay.drain(Duration::from_millis(500)).await;
    assert_never_seen(&w.relay, "peer-secret");
}

/// Key rotation: the relay forwards the certificate the CA issued for the agent's new keys, and can try to forward
/// anything else. The agent switches only to a certificate from its pinned CA for this agent and exactly the green
/// keys it generated: a certificate from another CA for those keys, another agent's, or its own current one is
/// refused and the session is not touched; a certificate pushed while no rotation is under way is dropped; a second
/// rotate request during a rotation starts nothing.
#[tokio::test(flavor = "multi_thread")]
async fn a_relay_cannot_make_an_agent_switch_to_a_certificate_the_ca_did_not_issue_for_its_new_keys(
) {
    use tessera_proto::cert::Validity;
    use tessera_proto::wire::{RenewalCertificate, RotateKeys};

    let mut w = world().await;
    let agent = w
        .online_agent(
            "edge-1",
            &format!("{POLICY}[rotation]\nautomatic = false\nvalidate_secs = 30\n"),
        )
        .await;
    let blue = agent.cert().clone();
    let other = w.org.agent("edge-2");
    let push = |cert: Vec<u8>| Down::RenewalCertificate(RenewalCertificate { cert });
    let refusals = |a: &Agent| a.log().matches("refused a renewal certificate").count();

    // Nothing under way: a pushed certificate (even a genuine one of another agent) is dropped.
    w.relay.send(&agent.id, &push(other.cert.clone())).await;
    w.relay
        .send(&agent.id, &Down::RotateKeys(RotateKeys {}))
        .await;
    let Up::RenewalRequested(r) = w.relay.next_up(&agent.id).await else {
        panic!("expected a renewal request")
    };
    // Genuine: signed by the certified key, the new keys proven.
    let (green_identity, green_wrap) = r.request.verify(&blue).unwrap();
    assert_ne!(green_identity, blue.identity);
    assert_ne!(green_wrap.fingerprint(), blue.wrap.fingerprint());
    // Asked again during the rotation: no second request, no new keys.
    w.relay
        .send(&agent.id, &Down::RotateKeys(RotateKeys {}))
        .await;

    let at = tessera_system_tests::broker::now();
    let validity = Validity::days_from(at - 3600, 30);
    let foreign = Org::new()
        .ca
        .issue_renewal(&r.request, &blue, validity)
        .unwrap();
    for bad in [foreign, other.cert.clone(), blue.der.clone()] {
        w.relay.send(&agent.id, &push(bad)).await;
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while refusals(&agent) < 3 {
        assert!(std::time::Instant::now() < deadline, "{}", agent.log());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    w.relay.drain(Duration::from_secs(2)).await;
    assert_eq!(
        w.relay.queued_ups(&agent.id),
        0,
        "the agent neither reconnected with another certificate nor asked again"
    );

    // The CA's certificate for the green keys: the agent reconnects with it and registers, warm.
    let genuine = w.org.ca.issue_renewal(&r.request, &blue, validity).unwrap();
    w.relay.send(&agent.id, &push(genuine.clone())).await;
    let Up::Register(reg) = w.relay.next_up(&agent.id).await else {
        panic!("expected the green registration")
    };
    assert_eq!(reg.cert, genuine);
    assert_eq!(reg.mode, wire::RegistrationMode::WarmReconnect);
    let green = w
        .org
        .ca
        .pinned()
        .verify_agent(
            &genuine,
            at,
            &tessera_proto::statement::RevocationList::empty(),
        )
        .unwrap();
    let ack = |serial| {
        Down::RegisterAck(wire::RegisterAck {
            mode: reg.mode,
            state: wire::AgentState::Online,
            backfill: 0,
            serial: Some(serial),
        })
    };
    // An acknowledgement of another registration (blue's, a stale or replayed one) completes nothing.
    w.relay.send(&agent.id, &ack(blue.serial.clone())).await;
    w.relay.drain(Duration::from_secs(2)).await;
    assert_eq!(w.relay.queued_ups(&agent.id), 0, "{}", agent.log());
    assert!(!agent.log().contains("switched to the renewed certificate"));
    // The acknowledgement of the green registration does.
    w.relay.send(&agent.id, &ack(green.serial.clone())).await;
    let Up::RotationCompleted(done) = w.relay.next_up(&agent.id).await else {
        panic!("expected rotation_completed")
    };
    let body = done.receipt.verify(&green).unwrap();
    assert_eq!(
        body.fact,
        tessera_proto::receipt::ReceiptFact::Rotated {
            previous_serial: blue.serial.clone(),
            serial: green.serial.clone()
        }
    );
}
