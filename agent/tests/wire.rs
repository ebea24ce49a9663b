//! The real agent binary against a real Mosquitto (TLS, client certificates, pattern ACL), with the test acting
//! as the relay on the wire: registration and backfill, the target role and its refusals, the peer role and its
//! refusals, the local API with two uids, exec, JIT repair, jobs, bad input and a restart.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
// Each scenario reads top to bottom as one story on one broker; splitting it would hide the sequence.
#![allow(clippy::too_many_lines)]

mod common;

use common::{assert_never_seen, envelope_field, is_root, stdout, World};
use tessera_proto::envelope::open;
use tessera_proto::ids::{AgentId, CredentialId, CredentialName, TemplateName};
use tessera_proto::secret::SecretPayload;
use tessera_proto::statement::Scope;
use tessera_proto::wire::{
    self, AgentState, Down, JobDispatch, PublicReason, RefusalReason, RegisterAck,
    RegistrationMode, RewrapRequest, StoreOutcome, Up,
};

const POLICY: &str =
    "[policy.db]\nuids = [0]\n[policy.shared]\nuids = [0, 65534]\n[policy.\"*\"]\nuids = [0]\n";

fn stored_outcome(up: Up) -> StoreOutcome {
    match up {
        Up::CredentialStored(s) => s.outcome,
        other => panic!("expected credential_stored, got {other:?}"),
    }
}

fn refused(reason: RefusalReason) -> StoreOutcome {
    StoreOutcome::Refused { reason }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registration_backfill_local_api_and_restart() {
    let mut w = World::new().await;
    let mut agent = common::Agent::new(w.dir.path(), "edge-1", &w.broker, POLICY);
    std::fs::set_permissions(
        &agent.dir,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    agent.enroll(&w.org);
    // Enrolment is idempotent, and refuses another identity with exit code 3.
    let ca = agent.dir.join("org-ca.pem");
    let req = agent.dir.join("request.json");
    let again = agent.cli(&[
        "enroll",
        "--agent-id",
        "edge-1",
        "--ca",
        ca.to_str().unwrap(),
        "--request-out",
        req.to_str().unwrap(),
    ]);
    assert!(again.status.success());
    let other = agent.cli(&[
        "enroll",
        "--agent-id",
        "edge-9",
        "--ca",
        ca.to_str().unwrap(),
        "--request-out",
        req.to_str().unwrap(),
    ]);
    assert_eq!(other.status.code(), Some(3));
    agent.start();

    // First registration, then a backfill of two.
    let Up::Register(r) = w.relay.next_up(&agent.id).await else {
        panic!("expected register")
    };
    assert_eq!(r.mode, RegistrationMode::FirstRegistration);
    assert!(r.held.is_empty());
    assert_eq!(r.cert, agent.cert().der);
    w.relay
        .send(
            &agent.id,
            &Down::RegisterAck(RegisterAck {
                mode: r.mode,
                state: AgentState::Backfilling,
                backfill: 2,
            }),
        )
        .await;
    w.relay
        .wait_status(&agent.id, AgentState::Backfilling)
        .await;

    let db = CredentialId::random();
    let shared = CredentialId::random();
    for (id, name, secret) in [(db, "db", "hunter2"), (shared, "shared", "for-everyone")] {
        let d = w
            .org
            .delivery(&agent.cert().wrap, id, 1, name, Scope::All, secret);
        let (_, payload) = (
            d.statement.clone(),
            SecretPayload::from_plain_text(secret).unwrap(),
        );
        w.relay
            .send(&agent.id, &Down::CredentialStore(d.clone()))
            .await;
        let Up::CredentialStored(s) = w.relay.next_up(&agent.id).await else {
            panic!("expected an ack")
        };
        assert_eq!(
            (s.delivery_id, s.credential_id, s.version),
            (d.delivery_id, id, 1)
        );
        let st = d
            .statement
            .parse_unverified(tessera_proto::statement::CREDENTIAL_KIND)
            .unwrap();
        assert_eq!(
            s.outcome,
            StoreOutcome::Stored {
                digest: st.commitment
            }
        );
        drop(payload);
    }
    w.relay.wait_status(&agent.id, AgentState::Online).await;

    // Local API: root may read db; get prints the secret.
    let out = agent.get_as(None, &["get", "db"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(stdout(&out), "hunter2");
    let meta = agent.get_as(None, &["get", "db", "--meta"]);
    assert!(stdout(&meta).contains("\"version\": 1") && !stdout(&meta).contains("hunter2"));
    // exec injects it into the child only.
    let out = agent.get_as(
        None,
        &[
            "exec",
            "--env",
            "PW=cred:db",
            "--",
            "/bin/sh",
            "-c",
            "test \"$PW\" = hunter2",
        ],
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = agent.get_as(None, &["exec", "--env", "PW=db", "--", "/bin/true"]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "a malformed --env is a usage error"
    );

    if is_root() {
        // A second uid (nobody, in the socket's group): refused db by policy, allowed shared.
        let out = agent.get_as(Some(65534), &["get", "db"]);
        assert_eq!(
            out.status.code(),
            Some(11),
            "NOT_GRANTED: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(String::from_utf8_lossy(&out.stderr).contains("NOT_GRANTED"));
        let out = agent.get_as(Some(65534), &["get", "shared"]);
        assert_eq!(
            stdout(&out),
            "for-everyone",
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let list = agent.get_as(Some(65534), &["list"]);
        assert!(
            stdout(&list).contains("shared") && !stdout(&list).contains("\"db\""),
            "{}",
            stdout(&list)
        );
    }

    // Restart: a warm reconnect lists what is held.
    agent.kill();
    agent.start();
    let Up::Register(r) = w.relay.next_up(&agent.id).await else {
        panic!("expected register")
    };
    assert_eq!(r.mode, RegistrationMode::WarmReconnect);
    let mut held: Vec<(CredentialId, u64)> = r
        .held
        .iter()
        .map(|h| (h.credential_id, h.version))
        .collect();
    held.sort();
    let mut expected = vec![(db, 1), (shared, 1)];
    expected.sort();
    assert_eq!(held, expected);
    agent.kill();

    // The local audit recorded who read what.
    let cfg = tessera_agent::config::AgentConfig::load(Some(&agent.config), Vec::new()).unwrap();
    let store = tessera_agent::unseal::open_store(&cfg).unwrap();
    let log = store.audit_log().unwrap();
    assert!(log
        .iter()
        .any(|e| e.uid == 0 && e.op == "get" && e.name.as_deref() == Some("db")));
    if is_root() {
        assert!(log.iter().any(|e| e.uid == 65534
            && e.name.as_deref() == Some("db")
            && e.outcome == tessera_agent::store::AuditOutcome::NotGranted));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn target_refuses_every_attack_and_stores_nothing() {
    let mut w = World::new().await;
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
    let rogue = common::Org::new();
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
    for secret in ["hunter2", "rotated", "for-everyone", "relay-chosen"] {
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
async fn peer_rewraps_only_to_certified_targets_in_scope() {
    let mut w = World::new().await;
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
        }
        other => panic!("{other:?}"),
    }
    // Key substitution: the relay's own certificate from another CA for the target's name.
    let rogue = common::Org::new();
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
    assert_never_seen(&w.relay, "peer-secret");
}

const JOBS: &str = r#"
[jobs.hash-db]
command = ["/bin/sh", "-c", "printf %s \"$DB\" | sha256sum"]
credentials = { DB = "db" }
inherit_env = ["PATH"]
[jobs.greet]
command = ["/bin/echo", "hello {who}"]
params = ["who"]
[jobs.hash-new]
command = ["/bin/sh", "-c", "printf %s \"$N\" | sha256sum"]
credentials = { N = "newcred" }
inherit_env = ["PATH"]
"#;

fn sha256_hex(s: &str) -> String {
    use sha2::Digest as _;
    sha2::Sha256::digest(s.as_bytes())
        .iter()
        .fold(String::new(), |mut acc, b| {
            use std::fmt::Write as _;
            let _ = write!(acc, "{b:02x}");
            acc
        })
}

fn job(template: &str, params: &[(&str, &str)]) -> (uuid::Uuid, Down) {
    let id = uuid::Uuid::new_v4();
    (
        id,
        Down::JobDispatch(JobDispatch {
            job_id: id,
            template: TemplateName::new(template).unwrap(),
            params: params
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            credentials: Vec::new(),
        }),
    )
}

async fn job_result(w: &mut World, agent: &AgentId) -> wire::JobResult {
    match w.relay.next_up(agent).await {
        Up::JobResult(r) => r,
        other => panic!("expected a job result, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jit_repair_typed_errors_and_jobs() {
    let mut w = World::new().await;
    let agent = w.online_agent("edge-1", &format!("{POLICY}{JOBS}")).await;
    let cert = agent.cert().clone();

    // A workload asks for a credential the agent lacks: credential_missing, delivery, the workload gets it.
    let socket = agent.socket.clone();
    let get = std::thread::spawn(move || {
        std::process::Command::new(common::BIN)
            .arg("--socket")
            .arg(socket)
            .args(["get", "db"])
            .output()
            .unwrap()
    });
    let Up::CredentialMissing(m) = w.relay.next_up(&agent.id).await else {
        panic!("expected credential_missing")
    };
    assert_eq!(m.name, CredentialName::new("db").unwrap());
    let mut d = w.org.delivery(
        &cert.wrap,
        CredentialId::random(),
        1,
        "db",
        Scope::All,
        "jit-secret",
    );
    d.request_id = Some(m.request_id);
    w.relay.send(&agent.id, &Down::CredentialStore(d)).await;
    assert!(matches!(
        stored_outcome(w.relay.next_up(&agent.id).await),
        StoreOutcome::Stored { .. }
    ));
    let out = get.join().unwrap();
    assert_eq!(
        stdout(&out),
        "jit-secret",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // The relay cannot serve it: a typed error, not a timeout.
    for (reason, code) in [
        (PublicReason::NotFound, 12),
        (PublicReason::CommitmentMismatch, 16),
        (PublicReason::RateLimited, 14),
    ] {
        let socket = agent.socket.clone();
        let get = std::thread::spawn(move || {
            std::process::Command::new(common::BIN)
                .arg("--socket")
                .arg(socket)
                .args(["get", "nothere"])
                .output()
                .unwrap()
        });
        let Up::CredentialMissing(m) = w.relay.next_up(&agent.id).await else {
            panic!("expected credential_missing")
        };
        w.relay
            .send(
                &agent.id,
                &Down::CredentialUnavailable(wire::CredentialUnavailable {
                    request_id: m.request_id,
                    name: m.name,
                    reason,
                }),
            )
            .await;
        let out = get.join().unwrap();
        assert_eq!(
            out.status.code(),
            Some(code),
            "{reason:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // No answer at all: TIMEOUT within the configured budget.
    let out = agent.get_as(None, &["get", "silent"]);
    assert_eq!(
        out.status.code(),
        Some(13),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let Up::CredentialMissing(_) = w.relay.next_up(&agent.id).await else {
        panic!("expected credential_missing")
    };

    // Concurrency per uid: four requests wait for repair, the fifth is refused BUSY at once.
    let waiting: Vec<_> = (0..4)
        .map(|i| {
            let socket = agent.socket.clone();
            std::thread::spawn(move || {
                std::process::Command::new(common::BIN)
                    .arg("--socket")
                    .arg(socket)
                    .args(["get", &format!("wait-{i}")])
                    .output()
                    .unwrap()
            })
        })
        .collect();
    for _ in 0..4 {
        let Up::CredentialMissing(_) = w.relay.next_up(&agent.id).await else {
            panic!("expected credential_missing")
        };
    }
    let out = agent.get_as(None, &["get", "db"]);
    assert_eq!(
        out.status.code(),
        Some(18),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for t in waiting {
        assert_eq!(t.join().unwrap().status.code(), Some(13));
    }

    // Jobs: a template runs with the credential injected; only its digest leaves the agent here.
    let (id, d) = job("hash-db", &[]);
    w.relay.send(&agent.id, &d).await;
    let r = job_result(&mut w, &agent.id).await;
    assert_eq!(r.job_id, id);
    assert_eq!(r.exit_code, Some(0), "{r:?}");
    assert!(r.stdout.starts_with(&sha256_hex("jit-secret")), "{r:?}");
    // Parameters are single arguments, never shell.
    let (_, d) = job("greet", &[("who", "x; rm -rf / $(id)")]);
    w.relay.send(&agent.id, &d).await;
    assert_eq!(
        job_result(&mut w, &agent.id).await.stdout,
        "hello x; rm -rf / $(id)\n"
    );
    // Unknown templates and undeclared parameters are refused.
    let (_, d) = job("rm-everything", &[]);
    w.relay.send(&agent.id, &d).await;
    let r = job_result(&mut w, &agent.id).await;
    assert!(r.exit_code.is_none() && r.error.unwrap().contains("unknown job template"));
    let (_, d) = job("greet", &[("who", "a"), ("cmd", "b")]);
    w.relay.send(&agent.id, &d).await;
    assert!(job_result(&mut w, &agent.id)
        .await
        .error
        .unwrap()
        .contains("not declared"));
    // A job needing a credential the agent lacks waits for JIT repair, then runs.
    let (_, d) = job("hash-new", &[]);
    w.relay.send(&agent.id, &d).await;
    let Up::CredentialMissing(m) = w.relay.next_up(&agent.id).await else {
        panic!("expected credential_missing")
    };
    assert_eq!(m.name.as_str(), "newcred");
    let mut d = w.org.delivery(
        &cert.wrap,
        CredentialId::random(),
        1,
        "newcred",
        Scope::All,
        "fresh",
    );
    d.request_id = Some(m.request_id);
    w.relay.send(&agent.id, &Down::CredentialStore(d)).await;
    assert!(matches!(
        stored_outcome(w.relay.next_up(&agent.id).await),
        StoreOutcome::Stored { .. }
    ));
    let r = job_result(&mut w, &agent.id).await;
    assert!(r.stdout.starts_with(&sha256_hex("fresh")), "{r:?}");
    for secret in ["jit-secret", "fresh"] {
        assert_never_seen(&w.relay, secret);
    }
}
