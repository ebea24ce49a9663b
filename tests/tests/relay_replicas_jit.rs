//! JIT repair across three relay replicas (three `tessera-relay serve` processes on one PostgreSQL database, behind
//! one Mosquitto with TLS and the pattern ACL, reading the agents' upward topics through the shared subscription):
//!
//! 1. the same repair asked through several replicas at once (a target on the wire sends three requests for one
//!    credential back to back; the shared subscription hands them to different replicas) runs one rewrap, and the
//!    target gets the one delivery that answers them;
//! 2. the replica that dispatched a repair is SIGKILLed while the rewrap is in flight: the peer's answer lands on a
//!    survivor, which checks it against the database and delivers, and the workload waiting on JIT gets its
//!    credential within its budget (the agent's `socket.jit_timeout_ms`, 15 s).
//!
//! docs/operations.md, "Running several relays".
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    clippy::too_many_lines
)]

use std::os::unix::fs::MetadataExt as _;
use std::time::{Duration, Instant};

use tessera_proto::cert::PinnedCa;
use tessera_proto::envelope::{open, seal};
use tessera_proto::ids::CredentialName;
use tessera_proto::receipt::ReceiptFact;
use tessera_proto::secret::{SecretBytes, SecretPayload};
use tessera_proto::statement::{RevocationList, CREDENTIAL_KIND};
use tessera_proto::wire::{
    CredentialMissing, CredentialStore, CredentialStored, Down, Held, RegistrationMode,
    RewrapRequest, RewrapResponse, StoreOutcome, Up,
};
use tessera_system_tests::bins::bin_dir;
use tessera_system_tests::broker::now;
use tessera_system_tests::cluster::{wait_for, Cluster};
use tessera_system_tests::plain_http;
use tessera_system_tests::wire_agent::WireAgent;

const WAIT: Duration = Duration::from_secs(30);
const SECRET: &str = "db-password-shared-by-replicas";
/// The in-flight rewrap outlives the test's pause: only a survivor taking it over can deliver it in time.
const ENGINE: &str = "reconcile_interval_ms = 3600000\npeer_timeout_ms = 30000";

fn blocking<T>(f: impl FnOnce() -> T) -> T {
    tokio::task::block_in_place(f)
}

/// The next message for `a` that `pick` accepts, skipping the others (status answers, revocation lists).
async fn next_of<T>(a: &mut WireAgent, what: &str, pick: impl Fn(Down) -> Option<T>) -> T {
    let deadline = Instant::now() + WAIT;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let down = a
            .next_down(left)
            .await
            .unwrap_or_else(|| panic!("{}: no {what} within {WAIT:?}", a.id.as_str()));
        if let Down::CredentialUnavailable(u) = &down {
            panic!("{}: refused while waiting for {what}: {u:?}", a.id.as_str());
        }
        if let Some(t) = pick(down) {
            return t;
        }
    }
}

fn rewrap(d: Down) -> Option<RewrapRequest> {
    match d {
        Down::RewrapRequest(r) => Some(r),
        _ => None,
    }
}

fn store(d: Down) -> Option<CredentialStore> {
    match d {
        Down::CredentialStore(s) => Some(s),
        _ => None,
    }
}

/// `a`'s signed acknowledgement that it stored `d` (whose statement it read).
async fn acknowledge(a: &WireAgent, d: &CredentialStore) {
    let st = d.statement.parse_unverified(CREDENTIAL_KIND).unwrap();
    a.send(&Up::CredentialStored(CredentialStored {
        delivery_id: d.delivery_id,
        credential_id: st.credential_id,
        version: st.version,
        outcome: StoreOutcome::Stored {
            digest: st.commitment,
        },
        receipt: Some(a.receipt(ReceiptFact::Stored {
            delivery_id: d.delivery_id,
            credential_id: st.credential_id,
            version: st.version,
            digest: st.commitment,
        })),
    }))
    .await;
}

/// An honest peer's answer: `plaintext` (what it holds) sealed to the target the request names.
async fn answer(peer: &WireAgent, ca: &PinnedCa, req: &RewrapRequest, plaintext: &SecretBytes) {
    let target = ca
        .verify_agent(&req.target_cert, now(), &RevocationList::empty())
        .unwrap();
    peer.send(&Up::RewrapResponse(RewrapResponse {
        request_id: req.request_id,
        nonce: req.nonce,
        peer: peer.id.clone(),
        credential_id: req.credential_id,
        version: req.version,
        target_key: target.wrap.fingerprint(),
        envelope: seal(&target.wrap, plaintext).unwrap(),
    }))
    .await;
}

/// A relay replica as the test sees it: its name, admin and health addresses.
#[derive(Clone)]
struct Relay {
    name: String,
    admin: String,
    health: String,
}

fn relays(c: &mut Cluster) -> Vec<Relay> {
    let mut all = vec![Relay {
        name: "relay-1".into(),
        admin: c.admin.clone(),
        health: c.health.clone(),
    }];
    for i in 0..2 {
        let r = c.replica(i).unwrap();
        all.push(Relay {
            name: r.name.clone(),
            admin: r.admin.clone(),
            health: r.health.clone(),
        });
    }
    all
}

/// JIT requests `r` served (dispatched or joined) since it started.
fn jit_dispatched(r: &Relay) -> f64 {
    let (status, text) = plain_http::get(&r.health, "/metrics").unwrap();
    assert_eq!(status, 200);
    plain_http::metric(
        &text,
        "tessera_relay_jit_requests_total{outcome=\"dispatched\"}",
    )
    .unwrap_or(0.0)
}

/// The audit entries of `kind` about `target` and credential `credential`, read through `r`'s admin API.
fn audit_about(
    c: &Cluster,
    r: &Relay,
    kind: &str,
    target: &str,
    credential: &str,
) -> Vec<serde_json::Value> {
    let out = c
        .op_via(&r.admin, &["--json", "audit", "ls", "--kind", kind])
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let all: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    all.as_array()
        .unwrap()
        .iter()
        .filter(|e| e["data"]["target"] == target && e["data"]["credential"] == credential)
        .cloned()
        .collect()
}

fn successes(c: &Cluster, r: &Relay, target: &str, credential: &str) -> usize {
    audit_about(c, r, "rewrap_final", target, credential)
        .iter()
        .filter(|e| e["data"]["result"] == "success")
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jit_repair_through_three_replicas_runs_once_and_survives_the_dispatcher_killed() {
    let tmp = tempfile::tempdir().unwrap();
    let mut c = Cluster::replicated(tmp.path(), &bin_dir(), ENGINE, 3).unwrap();
    blocking(
        || -> Result<(), tessera_system_tests::cluster::ClusterError> {
            c.start_relay()?;
            c.start_replica(0)?;
            c.start_replica(1)
        },
    )
    .unwrap();
    let relays = relays(&mut c);
    let ca_der = c.ca_der().unwrap();
    let ca = PinnedCa::from_der(&ca_der).unwrap();
    let policy = format!(
        "[policy.\"*\"]\nuids = [{}]\n",
        std::fs::metadata(tmp.path()).unwrap().uid()
    );

    // edge-0, a peer on the wire that answers honestly, gets db from the operator and keeps its plaintext.
    let mut peer = WireAgent::registered(&c, "edge-0").await;
    blocking(|| c.wait_state("edge-0", "online", WAIT)).unwrap();
    blocking(|| c.put("db", SECRET, &[])).unwrap();
    let from_operator = next_of(&mut peer, "the operator's envelope", store).await;
    let plaintext = open(&peer.wrap, &from_operator.envelope).unwrap();
    acknowledge(&peer, &from_operator).await;
    let st = from_operator
        .statement
        .parse_unverified(CREDENTIAL_KIND)
        .unwrap();
    let db = st.credential_id.to_string();
    blocking(|| {
        wait_for("edge-0's copy recorded", WAIT, || {
            Ok(c.chips("db")? == Some((1, 1)))
        })
    })
    .unwrap();

    // edge-9 (on the wire) and edge-3 (a real agent) join while the only holder is away: their backfills find no
    // peer, and the reconciler is an hour away. Then edge-0 comes back.
    peer.disconnect().await;
    blocking(|| c.wait_state("edge-0", "offline", WAIT)).unwrap();
    let mut target = WireAgent::enroll(&c, "edge-9");
    target.connect(c.broker.port, &ca_der).await;
    target.register().await;
    next_of(&mut target, "its registration ack", |d| {
        matches!(d, Down::RegisterAck(_)).then_some(())
    })
    .await;
    let mut a3 = blocking(|| c.agent("edge-3", &policy)).unwrap();
    a3.start().unwrap();
    blocking(|| c.wait_state("edge-3", "online", WAIT)).unwrap();
    blocking(|| c.wait_state("edge-9", "online", WAIT)).unwrap();
    peer.connect(c.broker.port, &ca_der).await;
    peer.register_with(
        RegistrationMode::WarmReconnect,
        vec![Held {
            credential_id: st.credential_id,
            version: st.version,
        }],
    )
    .await;
    next_of(&mut peer, "its registration ack", |d| {
        matches!(d, Down::RegisterAck(_)).then_some(())
    })
    .await;
    blocking(|| c.wait_state("edge-0", "online", WAIT)).unwrap();
    assert_eq!(blocking(|| c.chips("db")).unwrap(), Some((1, 3)));

    // 1. Three requests for db from edge-9, back to back: the shared subscription spreads them over the replicas.
    let before: Vec<f64> = blocking(|| relays.iter().map(jit_dispatched).collect());
    let pending_before =
        blocking(|| audit_about(&c, &relays[0], "rewrap_pending", "edge-9", &db)).len();
    let asked: Vec<uuid::Uuid> = (0..3).map(|_| uuid::Uuid::new_v4()).collect();
    for request_id in &asked {
        target
            .send(&Up::CredentialMissing(CredentialMissing {
                request_id: *request_id,
                name: CredentialName::new("db").unwrap(),
            }))
            .await;
    }
    let req = next_of(&mut peer, "a rewrap request for edge-9", rewrap).await;
    assert_eq!(req.credential_id, st.credential_id);
    answer(&peer, &ca, &req, &plaintext).await;
    let delivered = next_of(&mut target, "db's delivery", store).await;
    assert!(
        delivered.request_id.is_some_and(|id| asked.contains(&id)),
        "the delivery answers one of the requests: {:?}",
        delivered.request_id
    );
    let value = open(&target.wrap, &delivered.envelope).unwrap();
    let expected = SecretPayload::from_plain_text(SECRET).unwrap();
    assert!(value.ct_eq(expected.bytes()), "edge-9 opened another value");
    acknowledge(&target, &delivered).await;
    // Every replica that got a request served it (a refusal would have reached edge-9 above), each joined the one
    // rewrap in flight: the peer is asked nothing more, and one successful delivery is recorded.
    blocking(|| {
        wait_for("edge-9's delivery recorded", WAIT, || {
            Ok(successes(&c, &relays[0], "edge-9", &db) == 1)
        })
    })
    .unwrap();
    if let Some(d) = peer.next_down(Duration::from_secs(3)).await {
        assert!(
            !matches!(d, Down::RewrapRequest(_)),
            "a second rewrap was dispatched: {d:?}"
        );
    }
    // The counters are copied on each replica's tick and rendered at most once a second: wait for all three.
    let mut per_replica = Vec::new();
    blocking(|| {
        wait_for("the three requests counted", WAIT, || {
            per_replica = relays
                .iter()
                .zip(&before)
                .map(|(r, b)| jit_dispatched(r) - b)
                .collect::<Vec<f64>>();
            Ok(per_replica.iter().sum::<f64>() >= 2.5)
        })
    })
    .unwrap();
    eprintln!("JIT requests served per replica: {per_replica:?}");
    assert!(
        (per_replica.iter().sum::<f64>() - 3.0).abs() < 0.5,
        "{per_replica:?}"
    );
    // Mosquitto hands a shared subscription's messages to its subscribers in turn, so three messages in a row reach
    // more than one replica.
    assert!(
        per_replica.iter().filter(|n| **n > 0.0).count() >= 2,
        "the requests did not reach several replicas: {per_replica:?}"
    );
    assert_eq!(
        blocking(|| audit_about(&c, &relays[0], "rewrap_pending", "edge-9", &db)).len(),
        pending_before + 1,
        "one rewrap for the three requests"
    );

    // 2. A workload on edge-3 asks for db; the replica that dispatches the repair is killed before the peer answers.
    // (edge-9 holds db now too; peers are asked in id order, so edge-0 is asked first.)
    let before: Vec<f64> = blocking(|| relays.iter().map(jit_dispatched).collect());
    let started = Instant::now();
    let workload = a3.get_in_background("db");
    let req = next_of(&mut peer, "a rewrap request for edge-3", rewrap).await;
    let mut dispatcher = None;
    blocking(|| {
        wait_for("the dispatching replica", Duration::from_secs(5), || {
            dispatcher = relays
                .iter()
                .zip(&before)
                .position(|(r, b)| jit_dispatched(r) > *b);
            Ok(dispatcher.is_some())
        })
    })
    .unwrap();
    let dispatcher = dispatcher.unwrap();
    eprintln!(
        "{} dispatched edge-3's repair: SIGKILL",
        relays[dispatcher].name
    );
    if dispatcher == 0 {
        c.kill_relay();
    } else {
        c.replica(dispatcher - 1).unwrap().kill();
    }
    // Its MQTT session expires (2 s here), so the shared subscription hands the answer to a survivor.
    tokio::time::sleep(Duration::from_secs(3)).await;
    answer(&peer, &ca, &req, &plaintext).await;
    let out = blocking(|| workload.join().unwrap().unwrap());
    let waited = started.elapsed();
    assert!(
        out.status.success(),
        "the workload did not get db: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim_end(), SECRET);
    eprintln!("the workload got db in {waited:?} with its dispatcher killed");
    let survivor = relays
        .iter()
        .enumerate()
        .find(|(i, _)| *i != dispatcher)
        .map(|(_, r)| r.clone())
        .unwrap();
    blocking(|| {
        wait_for("edge-3's delivery recorded", WAIT, || {
            Ok(successes(&c, &survivor, "edge-3", &db) == 1)
        })
    })
    .unwrap();
    assert_eq!(blocking(|| successes(&c, &survivor, "edge-9", &db)), 1);
    let verify = blocking(|| c.op_via(&survivor.admin, &["audit", "verify"])).unwrap();
    assert!(
        verify.status.success(),
        "{}",
        String::from_utf8_lossy(&verify.stderr)
    );
    let listed = blocking(|| c.op_via(&survivor.admin, &["--json", "cred", "ls"])).unwrap();
    let creds: serde_json::Value = serde_json::from_slice(&listed.stdout).unwrap();
    assert_eq!(creds[0]["sync"]["synced"], 3, "{creds}");
}
