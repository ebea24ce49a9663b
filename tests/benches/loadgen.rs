//! `tessera-loadgen`: a fleet of simulated agents in one process against the real relay (release build, sled) and a
//! real Mosquitto with TLS and the pattern ACL, so that the relay is measured with a fleet connected.
//!
//! `cargo bench -p tessera-system-tests --bench loadgen` prints a table. Each simulated agent has its own identity
//! key, RSA wrap key and certificate from the org CA, and its own TLS connection; it registers as `tessera-agent`
//! does (announcing `batch_rewrap`), and as a target verifies each delivery's operator-signed statement, opens the
//! envelope (a batch's once), checks the commitment and acknowledges with its signed receipt (real crypto). It is
//! also a peer once it holds the credentials, as every agent is: the relay asks whichever holder has room
//! (docs/protocol.md, "Backfill pacing"), so a simulated agent seals what it holds to the certified target key
//! (without re-checking the statement). One real `tessera-agent` holds the org's credentials first.
//!
//! Scenarios:
//! - registration herd: every simulated agent connects and registers at once (first registration) and is
//!   backfilled with the org's credentials: time until the relay lists every agent online;
//! - the broker restarted: every agent reconnects at once and registers again (warm reconnect): time until all are
//!   online again, and no delivery lost (each holds every credential, none delivered twice);
//! - idle: the relay's resident memory and CPU with the fleet connected and nothing to do, per agent;
//! - JIT repair under load: with the fleet still connected, a real agent's workload asks for credentials its agent
//!   lacks (`tessera-agent get`, JIT repair through the peer), first with nothing else going on, then while another
//!   real agent is backfilled with 10,000 credentials from the same peer: p50 / p99 of each.
//!
//! Run by `cargo test --all-targets` (without `--bench`, a debug build) it is a smoke run: 20 agents, 2 s idle, no
//! JIT scenario, unless the knobs say otherwise.
//!
//! Knobs: `TESSERA_LOADGEN_AGENTS` (default 1000), `TESSERA_LOADGEN_CREDENTIALS` (default 2),
//! `TESSERA_LOADGEN_IDLE_SECS` (default 20), `TESSERA_LOADGEN_BACKFILL` (default 10000; 0 skips the JIT scenario),
//! `TESSERA_LOADGEN_JIT` (requests per phase, default 100).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::print_stderr,
    clippy::cast_precision_loss,
    clippy::indexing_slicing
)]

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rumqttc::{
    AsyncClient, Event, LastWill, MqttOptions, Packet, QoS, TlsConfiguration, Transport,
};
use tessera_proto::cert::{AgentCertificate, EnrollmentRequest, IdentityKey, PinnedCa, Validity};
use tessera_proto::commitment;
use tessera_proto::envelope::{batch, open, seal, WrapPrivateKey};
use tessera_proto::ids::{AgentId, CredentialId};
use tessera_proto::receipt::{Receipt, ReceiptBody, ReceiptFact};
use tessera_proto::secret::{SecretBytes, SecretPayload};
use tessera_proto::statement::{CredentialStatement, RevocationList, Signed, CREDENTIAL_KIND};
use tessera_proto::topics;
use tessera_proto::wire::{
    self, AgentState, CredentialStored, Down, Held, RefusalReason, Register, RegistrationMode,
    RewrapBatchRequest, RewrapBatchResponse, RewrapRefused, RewrapRequest, RewrapResponse,
    SealedItem, Status, StoreOutcome, Up,
};
use tessera_system_tests::bins::bin_dir;
use tessera_system_tests::broker::now;
use tessera_system_tests::cluster::{knob, wait_for, Cluster};
use tokio_util::sync::CancellationToken;

const POLICY: &str = "[policy.\"*\"]\nuids = [0]\n";
/// How long a simulated agent first waits for its registration's acknowledgement before sending it again (the
/// agent's `register_retry_ms` default); then, as the agent, twice as long each time, spread by its serial
/// (`tessera_proto::backoff::resend_after_ms`).
const REGISTER_RETRY_MS: u64 = 10_000;

/// When `sim` sends an unacknowledged registration again, by how many times it was sent again (as the agent).
fn resend_after(sim: &Sim) -> impl Fn(u32) -> Duration {
    let spread = tessera_proto::backoff::spread_of_serial(sim.cert.serial.as_str());
    move |resent| {
        Duration::from_millis(tessera_proto::backoff::resend_after_ms(
            REGISTER_RETRY_MS,
            resent,
            spread,
        ))
    }
}

/// A simulated agent's identity.
struct Sim {
    id: AgentId,
    key: IdentityKey,
    wrap: WrapPrivateKey,
    cert_der: Vec<u8>,
    cert: AgentCertificate,
    tls: Arc<rustls::ClientConfig>,
}

/// What a simulated agent holds: each credential's version, and its payload (to answer rewraps as a peer).
#[derive(Default)]
struct Holdings {
    versions: BTreeMap<CredentialId, u64>,
    payloads: std::collections::HashMap<CredentialId, SecretBytes>,
}

/// What the simulated fleet did.
#[derive(Default)]
struct Stats {
    /// Deliveries stored (statement verified, envelope opened, commitment matched) and acknowledged.
    stored: AtomicUsize,
    /// Deliveries of a version already held (acknowledged again).
    again: AtomicUsize,
    /// Deliveries refused (a check failed).
    refused: AtomicUsize,
    /// Registrations acknowledged by the relay.
    acks: AtomicUsize,
}

/// Keys and certificates for `n` agents, issued in-process by the org CA in `ca_dir` (on both cores).
fn fleet(authority: &std::path::Path, ca_der: &[u8], n: usize) -> Vec<Sim> {
    let ca = Arc::new(tessera_operator::ca::load(authority).unwrap());
    let threads = 2;
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let ca = ca.clone();
            let trust = ca_der.to_vec();
            std::thread::spawn(move || {
                (t..n)
                    .step_by(threads)
                    .map(|i| {
                        let id = AgentId::new(format!("sim-{i:05}")).unwrap();
                        let key = IdentityKey::generate().unwrap();
                        let wrap = WrapPrivateKey::generate().unwrap();
                        let req = EnrollmentRequest::new(
                            id.clone(),
                            &key,
                            wrap.public_key(),
                            BTreeMap::new(),
                            now(),
                        )
                        .unwrap();
                        let cert_der = ca
                            .issue_agent(&req, Validity::days_from(now() - 60, 2))
                            .unwrap();
                        let cert = ca
                            .pinned()
                            .verify_agent(&cert_der, now(), &RevocationList::empty())
                            .unwrap();
                        let pkcs8 = key.to_pkcs8_der().unwrap().expose(<[u8]>::to_vec);
                        let tls =
                            tessera_system_tests::mqtt::client_tls(&trust, cert_der.clone(), pkcs8)
                                .unwrap();
                        (
                            i,
                            Sim {
                                id,
                                key,
                                wrap,
                                cert_der,
                                cert,
                                tls,
                            },
                        )
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let mut all: Vec<(usize, Sim)> = handles
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect();
    all.sort_by_key(|(i, _)| *i);
    all.into_iter().map(|(_, s)| s).collect()
}

fn status(state: AgentState) -> Vec<u8> {
    wire::encode(&Status { state, at: now() }).unwrap()
}

/// One simulated agent until `cancel`: connects (again after every error, with a jittered pause), registers, and
/// stores and acknowledges what is delivered to it. Returns what it holds: credential id → version.
async fn run(
    sim: Sim,
    port: u16,
    ca: PinnedCa,
    stats: Arc<Stats>,
    cancel: CancellationToken,
) -> BTreeMap<CredentialId, u64> {
    let mut opts = MqttOptions::new(sim.id.as_str(), "127.0.0.1", port);
    opts.set_keep_alive(Duration::from_secs(30))
        .set_max_packet_size(4 << 20, 4 << 20)
        .set_last_will(LastWill::new(
            topics::agent_status(&sim.id),
            status(AgentState::Offline),
            QoS::AtLeastOnce,
            true,
        ))
        .set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(
            sim.tls.clone(),
        )));
    let (client, mut events) = AsyncClient::new(opts, 256);
    let (down, up) = (topics::agent_down(&sim.id), topics::agent_up(&sim.id));
    let send = |up_msg: &Up| {
        let _ = client.try_publish(&up, QoS::AtLeastOnce, false, wire::encode(up_msg).unwrap());
    };
    let mut held = Holdings::default();
    let mut registered = false;
    // Until the relay acknowledges the registration, it is sent again, later each time (as the agent does).
    let mut awaiting_ack: Option<tokio::time::Instant> = None;
    let mut resent = 0u32;
    let resend_after = resend_after(&sim);
    let register = |registered: bool, held: &Holdings| {
        Up::Register(Register {
            mode: if registered {
                RegistrationMode::WarmReconnect
            } else {
                RegistrationMode::FirstRegistration
            },
            cert: sim.cert_der.clone(),
            held: held
                .versions
                .iter()
                .map(|(id, v)| Held {
                    credential_id: *id,
                    version: *v,
                })
                .collect(),
            agent_version: "loadgen".into(),
            capabilities: vec![wire::CAPABILITY_BATCH_REWRAP.to_owned()],
        })
    };
    loop {
        let retry = async {
            match awaiting_ack {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        let event = tokio::select! {
            () = cancel.cancelled() => return held.versions,
            () = retry => {
                send(&register(registered, &held));
                resent += 1;
                awaiting_ack = Some(tokio::time::Instant::now() + resend_after(resent));
                continue;
            }
            e = events.poll() => e,
        };
        match event {
            Ok(Event::Incoming(Packet::ConnAck(_))) => {
                let _ = client.try_subscribe(&down, QoS::AtLeastOnce);
                let _ = client.try_publish(
                    topics::agent_status(&sim.id),
                    QoS::AtLeastOnce,
                    true,
                    status(AgentState::Online),
                );
                send(&register(registered, &held));
                resent = 0;
                awaiting_ack = Some(tokio::time::Instant::now() + resend_after(resent));
            }
            Ok(Event::Incoming(Packet::Publish(p))) => match wire::decode::<Down>(&p.payload) {
                Ok(Down::RegisterAck(_)) => {
                    registered = true;
                    awaiting_ack = None;
                    stats.acks.fetch_add(1, Ordering::Relaxed);
                }
                Ok(down) => {
                    if let Some(ack) = delivery(&sim, &ca, down, &mut held, &stats) {
                        send(&ack);
                    }
                }
                Err(_) => {}
            },
            Ok(_) => {}
            Err(_) => {
                // Spread the reconnections over a second, as agents' jittered backoff does.
                let jitter = sim
                    .id
                    .as_str()
                    .bytes()
                    .fold(0_u64, |h, b| h.wrapping_mul(31).wrapping_add(u64::from(b)))
                    % 1000;
                tokio::time::sleep(Duration::from_millis(200 + jitter)).await;
            }
        }
    }
}

/// A delivery, single or batched: the acknowledgement to send (none for any other message).
fn delivery(
    sim: &Sim,
    ca: &PinnedCa,
    down: Down,
    held: &mut Holdings,
    stats: &Stats,
) -> Option<Up> {
    match down {
        Down::RewrapRequest(r) => Some(rewrap(sim, ca, held, &r)),
        Down::RewrapBatchRequest(r) => Some(rewrap_batch(sim, ca, held, &r)),
        Down::CredentialStore(d) => {
            let plain = open(&sim.wrap, &d.envelope).ok();
            store(sim, ca, d.delivery_id, &d.statement, plain, held, stats)
                .map(Up::CredentialStored)
        }
        Down::CredentialStoreBatch(b) => {
            let items = batch::open(&sim.wrap, &b.envelope).unwrap_or_default();
            let acks: Vec<CredentialStored> = b
                .items
                .iter()
                .filter_map(|d| {
                    let claimed = d.statement.parse_unverified(CREDENTIAL_KIND).ok()?;
                    let plain = items
                        .iter()
                        .find(|i| {
                            i.credential_id == claimed.credential_id && i.version == claimed.version
                        })
                        .map(|i| i.payload.clone());
                    store(sim, ca, d.delivery_id, &d.statement, plain, held, stats)
                })
                .collect();
            (!acks.is_empty()).then_some(Up::CredentialStoredBatch(wire::CredentialStoredBatch {
                batch_id: b.batch_id,
                items: acks,
            }))
        }
        _ => None,
    }
}

/// A target's checks on a delivery (its statement against the CA, its plaintext `plain` from the envelope or the
/// batch, the commitment); the acknowledgement to send.
fn store(
    sim: &Sim,
    ca: &PinnedCa,
    delivery_id: uuid::Uuid,
    statement: &Signed<CredentialStatement>,
    plain: Option<SecretBytes>,
    held: &mut Holdings,
    stats: &Stats,
) -> Option<CredentialStored> {
    let verified = statement.verify(ca, &RevocationList::empty()).ok();
    let st = verified.map(|v| v.statement)?;
    let payload = plain.and_then(|b| SecretPayload::from_canonical(b).ok());
    let Some(payload) = payload.filter(|p| {
        commitment::compute(&st.salt, &st.credential_id, st.version, p).ct_eq(&st.commitment)
    }) else {
        stats.refused.fetch_add(1, Ordering::Relaxed);
        return None;
    };
    held.payloads
        .insert(st.credential_id, payload.bytes().clone());
    if held.versions.insert(st.credential_id, st.version) == Some(st.version) {
        stats.again.fetch_add(1, Ordering::Relaxed);
    } else {
        stats.stored.fetch_add(1, Ordering::Relaxed);
    }
    let fact = ReceiptFact::Stored {
        delivery_id,
        credential_id: st.credential_id,
        version: st.version,
        digest: st.commitment,
    };
    let receipt = Receipt::sign(
        &ReceiptBody::new(sim.id.clone(), sim.cert.serial.clone(), now(), fact),
        &sim.key,
    )
    .ok();
    Some(CredentialStored {
        delivery_id,
        credential_id: st.credential_id,
        version: st.version,
        outcome: StoreOutcome::Stored {
            digest: st.commitment,
        },
        receipt,
    })
}

/// As a peer: the target's certificate verified against the CA and naming the target, the credential held at the
/// version asked, sealed to the certified key. (A simulated peer does not check the statement again: the relay's
/// bindings and the target's checks are what the fleet measures.)
fn rewrap(sim: &Sim, ca: &PinnedCa, held: &Holdings, r: &RewrapRequest) -> Up {
    let target = ca
        .verify_agent(&r.target_cert, now(), &RevocationList::empty())
        .ok()
        .filter(|t| t.agent_id == r.target);
    let payload = held
        .payloads
        .get(&r.credential_id)
        .filter(|_| held.versions.get(&r.credential_id) == Some(&r.version));
    match (target, payload) {
        (Some(t), Some(p)) => Up::RewrapResponse(RewrapResponse {
            request_id: r.request_id,
            nonce: r.nonce,
            peer: sim.id.clone(),
            credential_id: r.credential_id,
            version: r.version,
            target_key: t.wrap.fingerprint(),
            envelope: seal(&t.wrap, p).unwrap(),
        }),
        _ => Up::RewrapRefused(RewrapRefused {
            request_id: r.request_id,
            nonce: r.nonce,
            reason: RefusalReason::UnknownCredential,
        }),
    }
}

/// [`rewrap`] for a batch: what it holds sealed in one envelope, the rest refused.
fn rewrap_batch(sim: &Sim, ca: &PinnedCa, held: &Holdings, r: &RewrapBatchRequest) -> Up {
    let target = ca
        .verify_agent(&r.target_cert, now(), &RevocationList::empty())
        .ok()
        .filter(|t| t.agent_id == r.target);
    let mut answer = RewrapBatchResponse {
        batch_id: r.batch_id,
        peer: sim.id.clone(),
        target_key: None,
        envelope: None,
        sealed: Vec::new(),
        refused: Vec::new(),
    };
    let mut items = Vec::new();
    for i in &r.items {
        let payload = held
            .payloads
            .get(&i.credential_id)
            .filter(|_| held.versions.get(&i.credential_id) == Some(&i.version));
        match (&target, payload) {
            (Some(_), Some(p)) => {
                items.push((i.credential_id, i.version, p));
                answer.sealed.push(SealedItem {
                    request_id: i.request_id,
                    nonce: i.nonce,
                    credential_id: i.credential_id,
                    version: i.version,
                });
            }
            _ => answer.refused.push(RewrapRefused {
                request_id: i.request_id,
                nonce: i.nonce,
                reason: RefusalReason::UnknownCredential,
            }),
        }
    }
    if let (Some(t), false) = (&target, items.is_empty()) {
        answer.target_key = Some(t.wrap.fingerprint());
        answer.envelope = Some(batch::seal(&t.wrap, &items).unwrap());
    }
    Up::RewrapBatchResponse(answer)
}

/// How many agents the relay lists online.
fn online(c: &Cluster) -> usize {
    c.op_json(&["agents", "ls"])
        .unwrap()
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["state"] == "online")
        .count()
}

/// The relay's resident memory, KiB.
fn rss_kib(pid: u32) -> u64 {
    tessera_system_tests::process_stats::rss_kib(pid).unwrap()
}

/// User plus system CPU time of a process, ms.
fn cpu_ms(pid: u32) -> u64 {
    let t = tessera_system_tests::process_stats::cpu_time(pid).unwrap();
    u64::try_from(t.as_millis()).unwrap()
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --all-targets` runs this binary without it, in a debug build: a
    // smoke run then (20 agents, a short idle, no 10,000-credential scenario), unless the knobs say otherwise.
    let bench = std::env::args().any(|a| a == "--bench");
    let n = knob("TESSERA_LOADGEN_AGENTS", if bench { 1000 } else { 20 });
    let m = knob("TESSERA_LOADGEN_CREDENTIALS", 2);
    let idle = knob("TESSERA_LOADGEN_IDLE_SECS", if bench { 20 } else { 2 });
    let wait = Duration::from_secs(300 + u64::try_from(n * m).unwrap() / 10);
    let mut rows: Vec<(String, String)> = Vec::new();
    let tmp = tempfile::tempdir().unwrap();
    // JIT repair must be what delivers the JIT scenario's credentials (no reconciler pass), and the workload's
    // requests must not be rate limited.
    let mut c = Cluster::new(
        tmp.path(),
        &bin_dir(),
        "reconcile_interval_ms = 3600000\njit_burst = 10000\njit_per_minute = 10000\nmissing_flood_threshold = 10000",
    )
    .unwrap();
    let creds: BTreeMap<String, String> = (0..m)
        .map(|i| (format!("fleet-{i}"), format!("fleet-secret-{i:04}")))
        .collect();
    let mut peer = c.with_seeded_peer("edge-0", POLICY, &creds, wait).unwrap();
    let ca_der = c.ca_der().unwrap();
    let ca = PinnedCa::from_der(&ca_der).unwrap();
    let t = Instant::now();
    let sims = fleet(&c.ca_dir(), &ca_der, n);
    eprintln!("{n} agents' keys and certificates in {:?}", t.elapsed());

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let stats = Arc::new(Stats::default());
    let cancel = CancellationToken::new();
    let relay = c.relay_pid().unwrap();
    let baseline = rss_kib(relay);

    // The herd: every agent at once.
    let t = Instant::now();
    let tasks: Vec<_> = sims
        .into_iter()
        .map(|s| {
            rt.spawn(run(
                s,
                c.broker.port,
                ca.clone(),
                stats.clone(),
                cancel.clone(),
            ))
        })
        .collect();
    poll_online(&c, n + 1, wait);
    rows.push((
        format!("registration herd: {n} agents at once, each backfilled with {m} credential(s): all online"),
        format!("{:.1} s", t.elapsed().as_secs_f64()),
    ));

    eprintln!("idle from now: {}", relay_progress(&c));
    rows.extend(idle_cost(relay, n, idle, baseline));
    eprintln!("idle until now: {}", relay_progress(&c));

    // The broker restarted: everyone reconnects at once and registers again; done when the relay has acknowledged
    // every registration and lists every agent online.
    let stored_before = stats.stored.load(Ordering::Relaxed);
    let acks_before = stats.acks.load(Ordering::Relaxed);
    let t = Instant::now();
    c.broker.restart().unwrap();
    wait_for("every agent registered again", wait, || {
        Ok(stats.acks.load(Ordering::Relaxed) >= acks_before + n)
    })
    .unwrap();
    poll_online(&c, n + 1, wait);
    let back = t.elapsed();
    rows.push((
        format!("broker restarted: {n} agents reconnect at once (warm): all online again"),
        format!("{:.1} s", back.as_secs_f64()),
    ));

    let (backfill, jit) = (
        knob("TESSERA_LOADGEN_BACKFILL", if bench { 10_000 } else { 0 }),
        knob("TESSERA_LOADGEN_JIT", 100),
    );
    if backfill > 0 {
        rows.extend(jit_under_load(&c, &mut peer, backfill, jit, n, wait));
    }

    cancel.cancel();
    let holdings: Vec<BTreeMap<CredentialId, u64>> = rt.block_on(async {
        let mut all = Vec::new();
        for t in tasks {
            all.push(t.await.unwrap());
        }
        all
    });
    let complete = holdings.iter().filter(|h| h.len() == m).count();
    let ids: BTreeSet<CredentialId> = holdings.iter().flat_map(|h| h.keys().copied()).collect();
    assert_eq!(ids.len(), m, "the fleet holds the org's credentials");
    assert_eq!(complete, n, "an agent lacks a credential");
    assert_eq!(
        stats.refused.load(Ordering::Relaxed),
        0,
        "a delivery failed a check"
    );
    rows.push((
        "deliveries: stored / again / lost".to_owned(),
        format!(
            "{} / {} / {} (before the restart: {stored_before})",
            stats.stored.load(Ordering::Relaxed),
            stats.again.load(Ordering::Relaxed),
            n * m - complete * m
        ),
    ));
    print_table(rows);
}

fn print_table(rows: Vec<(String, String)>) {
    let width = rows.iter().map(|r| r.0.chars().count()).max().unwrap_or(0);
    println!(
        "\n{:<width$}  value",
        "figure (release relay on sled, real Mosquitto, this machine)"
    );
    for (k, v) in rows {
        println!("{k:<width$}  {v}");
    }
}

/// JIT repair with the fleet connected: `jit` requests with nothing else going on, then `jit` more while a real
/// agent is backfilled with `backfill` credentials from the same peer.
fn jit_under_load(
    c: &Cluster,
    peer: &mut tessera_system_tests::cluster::AgentProc,
    backfill: usize,
    jit: usize,
    n: usize,
    wait: Duration,
) -> Vec<(String, String)> {
    // The credentials are scoped to the agents of the scenario, not the fleet. The backfilled agent's are sealed
    // for it by the operator (an explicit scope: `cred import --agent`). The JIT target's are granted to it after
    // the import (a grant carries no envelope, so only a peer can deliver them), and it joins while the peer is
    // away, so it lacks them and only JIT repair delivers them (the reconciler is slowed).
    let mut target = c.agent("edge-jit", POLICY).unwrap();
    let mut big = c.agent("edge-big", POLICY).unwrap();
    peer.kill();
    c.wait_state("edge-0", "offline", wait).unwrap();
    let bulk: Vec<(String, String)> = (0..backfill)
        .map(|i| (format!("bulk-{i:05}"), format!("bulk-secret-{i:05}")))
        .collect();
    let asked: Vec<(String, String)> = (0..2 * jit)
        .map(|i| (format!("jit-{i:04}"), format!("jit-secret-{i:04}")))
        .collect();
    let t = Instant::now();
    import_scoped(c, &bulk, &["edge-0", "edge-big"]);
    import_scoped(c, &asked, &["edge-0"]);
    for (name, _) in &asked {
        c.op(&["grant", name, "edge-jit"]).unwrap();
    }
    eprintln!(
        "imported {} and granted {} in {:?}",
        backfill + 2 * jit,
        2 * jit,
        t.elapsed()
    );
    target.start().unwrap();
    c.wait_state("edge-jit", "online", wait).unwrap();
    peer.start().unwrap();
    c.wait_state("edge-0", "online", wait).unwrap();
    wait_for("the peer to hold everything", wait, || {
        Ok(peer.held_count()? >= backfill + 2 * jit)
    })
    .unwrap();

    let timed = |names: &[(String, String)]| -> Vec<Duration> {
        let mut times: Vec<Duration> = names
            .iter()
            .map(|(name, value)| {
                let t = Instant::now();
                let got = target.value(name).unwrap();
                let took = t.elapsed();
                assert_eq!(got.as_deref(), Some(value.as_str()), "JIT repair of {name}");
                took
            })
            .collect();
        times.sort();
        times
    };
    let (unloaded_names, loaded_names) = asked.split_at(jit);
    let unloaded = timed(unloaded_names);
    let t = Instant::now();
    big.start().unwrap();
    c.wait_state("edge-big", "backfilling", wait).unwrap();
    let loaded = timed(loaded_names);
    let during = c.agent_state("edge-big").unwrap().as_deref() == Some("backfilling");
    c.wait_state("edge-big", "online", wait).unwrap();
    let took = t.elapsed();
    // Its bulk credentials and the fleet's, which are every agent's.
    assert!(big.held_count().unwrap() >= backfill);
    let pct = |v: &[Duration], p: usize| v[(v.len() - 1) * p / 100].as_secs_f64() * 1000.0;
    eprintln!(
        "JIT unloaded p50/p99 {:.1}/{:.1} ms, during the backfill {:.1}/{:.1} ms (during: {during}), backfill {:?}",
        pct(&unloaded, 50),
        pct(&unloaded, 99),
        pct(&loaded, 50),
        pct(&loaded, 99),
        took
    );
    vec![
        (
            format!("JIT repair with {n} agents connected, nothing else running: p50 / p99 of {jit}"),
            format!("{:.1} ms / {:.1} ms", pct(&unloaded, 50), pct(&unloaded, 99)),
        ),
        (
            format!(
                "JIT repair with {n} agents connected during a {backfill}-credential backfill (goal p99 ≤ 20 ms, ≤ 2× unloaded)"
            ),
            format!(
                "{:.1} ms / {:.1} ms ({:.1}× unloaded at p99){}",
                pct(&loaded, 50),
                pct(&loaded, 99),
                pct(&loaded, 99) / pct(&unloaded, 99),
                if during {
                    ""
                } else {
                    "; the backfill ended before the last request"
                }
            ),
        ),
        (
            format!("that backfill of {backfill} (operator-sealed envelopes), start to online"),
            format!("{:.1} s", took.as_secs_f64()),
        ),
    ]
}

/// `cred import` of `credentials` scoped to `agents`.
fn import_scoped(c: &Cluster, credentials: &[(String, String)], agents: &[&str]) {
    let dir = c.root().join(format!("import-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    for (name, secret) in credentials {
        std::fs::write(dir.join(name), secret).unwrap();
    }
    let d = dir.to_string_lossy().into_owned();
    let mut args = vec!["cred", "import", d.as_str()];
    for a in agents {
        args.extend(["--agent", a]);
    }
    c.op(&args).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The relay's resident memory (against `baseline_kib`, before the fleet connected) and CPU over `secs` seconds
/// with `n` agents connected and nothing to do.
fn idle_cost(relay: u32, n: usize, secs: usize, baseline_kib: u64) -> Vec<(String, String)> {
    std::thread::sleep(Duration::from_secs(2));
    let (rss, cpu0, t) = (rss_kib(relay), cpu_ms(relay), Instant::now());
    std::thread::sleep(Duration::from_secs(u64::try_from(secs).unwrap()));
    let cpu = cpu_ms(relay) - cpu0;
    let elapsed = t.elapsed().as_secs_f64();
    vec![
        (
            format!("relay RSS with {n} agents connected, idle"),
            format!(
                "{:.1} MiB ({:.1} MiB before the fleet connected: {:.1} KiB per agent)",
                rss as f64 / 1024.0,
                baseline_kib as f64 / 1024.0,
                rss.saturating_sub(baseline_kib) as f64 / n as f64
            ),
        ),
        (
            format!("relay CPU with {n} agents connected, idle, over {secs} s"),
            format!(
                "{:.2} % of a core ({:.1} µs/s per agent)",
                cpu as f64 / elapsed / 10.0,
                cpu as f64 * 1000.0 / elapsed / n as f64
            ),
        ),
    ]
}

/// Waits until the relay lists `want` agents online, printing progress.
fn poll_online(c: &Cluster, expected: usize, within: Duration) {
    let t = Instant::now();
    let mut printed = Instant::now();
    wait_for("the fleet online", within, || {
        let now_online = online(c);
        if printed.elapsed() >= Duration::from_secs(5) {
            eprintln!(
                "  {now_online}/{expected} online after {:?} ({})",
                t.elapsed(),
                relay_progress(c)
            );
            printed = Instant::now();
        }
        Ok(now_online >= expected)
    })
    .unwrap();
}

/// What the relay has done so far, from its metrics: where a slow herd spends its time.
fn relay_progress(c: &Cluster) -> String {
    let Ok((_, text)) = tessera_system_tests::plain_http::get(&c.health, "/metrics") else {
        return "metrics unavailable".to_owned();
    };
    [
        ("rewraps asked", "tessera_relay_rewrap_requests_total"),
        ("in batches", "tessera_relay_rewrap_batches_total"),
        ("delivered", "tessera_relay_deliveries_ok_total"),
        ("unsolicited", "tessera_relay_unsolicited_total"),
        ("dropped", "tessera_relay_dropped_messages_total"),
        ("in flight", "tessera_relay_rewraps_in_flight"),
    ]
    .iter()
    .map(|(what, series)| {
        let v = tessera_system_tests::plain_http::metric(&text, series).unwrap_or(-1.0);
        format!("{what} {v}")
    })
    .collect::<Vec<_>>()
    .join(", ")
}
