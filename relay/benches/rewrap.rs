//! Relay CPU per rewrap (dispatch, the four bindings, relay to the target, digest check), measured on the sans-IO
//! engine over its real store, sled then PostgreSQL (the machine's server, a database of its own) in the same run:
//! `cargo bench -p tessera-relay --bench rewrap` (`TESSERA_REWRAP_STATE=sled`, `postgres` or `postgres-2` for one;
//! `postgres-2` is two relays on one database, each over its own store, taking the events in turn, as replicas
//! behind a shared subscription would: docs/operations.md, "Running several relays"). The agents' crypto is done
//! (including the target's signed receipt) before the clock starts; only the relay's work is timed (including its
//! check of the receipt). Goal (docs/benchmarks.md): ≤ 100 µs per rewrap.
#![allow(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::too_many_lines,
    missing_docs
)]

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tessera_proto::envelope::seal;
use tessera_proto::ids::CredentialId;
use tessera_proto::statement::Scope;
use tessera_proto::topics;
use tessera_proto::wire::{
    self, CredentialStored, Down, Held, Register, RegistrationMode, RewrapResponse, StoreOutcome,
    Up,
};
use tessera_relay::clock::SystemClock;
use tessera_relay::engine::{Engine, EngineConfig};
use tessera_relay::state::{PgConfig, PgStore, RelayStore, SledStore};
use tessera_system_tests::org::TestOrg;
use tessera_system_tests::pg::TestDb;

fn main() {
    let n: usize = std::env::var("TESSERA_REWRAP_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    let only = std::env::var("TESSERA_REWRAP_STATE").ok();
    println!("| backend | rewraps | relay time, all rewraps | relay CPU per rewrap, engine thread | process CPU per rewrap, all threads |");
    println!("|---|---|---|---|---|");
    if only.as_deref().is_none_or(|b| b == "sled") {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(SledStore::open(&dir.path().join("state")).unwrap());
        run("sled", vec![store], n);
    }
    if only.as_deref().is_none_or(|b| b == "postgres") {
        let db = TestDb::create().unwrap();
        let store = Arc::new(
            PgStore::open(&PgConfig {
                url: db.url().to_owned(),
                ..PgConfig::default()
            })
            .unwrap(),
        );
        run("postgres", vec![store], n);
    }
    if only.as_deref().is_none_or(|b| b == "postgres-2") {
        let db = TestDb::create().unwrap();
        let cfg = PgConfig {
            url: db.url().to_owned(),
            ..PgConfig::default()
        };
        let stores: Vec<Arc<dyn RelayStore>> = vec![
            Arc::new(PgStore::open_as(&cfg, "relay-1").unwrap()),
            Arc::new(PgStore::open_as(&cfg, "relay-2").unwrap()),
        ];
        run("postgres, 2 replicas alternating", stores, n);
    }
}

/// Runs `n` rewraps through one engine per store, each event going to the next engine in turn.
fn run(backend: &str, stores: Vec<Arc<dyn RelayStore>>, n: usize) {
    let org = TestOrg::new();
    let peer = org.agent("peer-1");
    let target = org.agent("target-1");
    let mut engines: Vec<Engine> = stores
        .into_iter()
        .map(|store| {
            Engine::new(
                store,
                org.ca.pinned().clone(),
                EngineConfig::default(),
                Arc::new(SystemClock),
            )
        })
        .collect();
    let mut turn = 0usize;
    let engine = &mut engines[0];
    let mut envelopes = HashMap::new();
    let mut commitments = HashMap::new();
    let mut held = Vec::new();
    for i in 0..n {
        let id = CredentialId::random();
        let (signed, st, payload) =
            org.credential(id, 1, &format!("c{i}"), Scope::All, &format!("s{i}"));
        engine.put_credential(&signed, &[]).unwrap();
        envelopes.insert(id, seal(target.wrap.public_key(), payload.bytes()).unwrap());
        commitments.insert(id, st.commitment);
        held.push(Held {
            credential_id: id,
            version: 1,
        });
    }
    let up = |e: &mut Engine, who: &tessera_proto::ids::AgentId, m: &Up| {
        e.on_message(&topics::agent_up(who), &wire::encode(m).unwrap())
    };
    let reg = |cert: Vec<u8>, mode, held| {
        Up::Register(Register {
            mode,
            cert,
            held,
            agent_version: "bench".into(),
            capabilities: Vec::new(),
        })
    };
    up(
        engine,
        &peer.id,
        &reg(peer.cert.clone(), RegistrationMode::WarmReconnect, held),
    );

    let mut relay_time = Duration::ZERO;
    let cpu_before = process_cpu();
    let t = Instant::now();
    let mut queue = up(
        engine,
        &target.id,
        &reg(
            target.cert.clone(),
            RegistrationMode::FirstRegistration,
            vec![],
        ),
    );
    relay_time += t.elapsed();
    let mut delivered = 0;
    while let Some(o) = queue.pop() {
        let next = match o.msg {
            Down::RewrapRequest(r) => Up::RewrapResponse(RewrapResponse {
                request_id: r.request_id,
                nonce: r.nonce,
                peer: peer.id.clone(),
                credential_id: r.credential_id,
                version: r.version,
                target_key: target.wrap.public_key().fingerprint(),
                envelope: envelopes[&r.credential_id].clone(),
            }),
            Down::CredentialStore(s) => {
                let id = s
                    .statement
                    .parse_unverified(tessera_proto::statement::CREDENTIAL_KIND)
                    .unwrap()
                    .credential_id;
                delivered += 1;
                // The target's receipt is signed here, before the clock starts again: only the relay is timed.
                Up::CredentialStored(CredentialStored {
                    delivery_id: s.delivery_id,
                    credential_id: id,
                    version: 1,
                    outcome: StoreOutcome::Stored {
                        digest: commitments[&id],
                    },
                    receipt: Some(org.stored_receipt(
                        &target,
                        s.delivery_id,
                        id,
                        1,
                        commitments[&id],
                    )),
                })
            }
            _ => continue,
        };
        let (to, bytes) = match &next {
            Up::RewrapResponse(_) => (&peer.id, wire::encode(&next).unwrap()),
            _ => (&target.id, wire::encode(&next).unwrap()),
        };
        turn += 1;
        let count = engines.len();
        let engine = &mut engines[turn % count];
        let t = Instant::now();
        let out = engine.on_message(&topics::agent_up(to), &bytes);
        relay_time += t.elapsed();
        queue.extend(out);
    }
    // sled writes its log from background threads: their CPU is the relay's too.
    let process = process_cpu().saturating_sub(cpu_before);
    assert_eq!(delivered, n);
    assert_eq!(
        engines.iter().map(|e| e.metrics.deliveries_ok).sum::<u64>(),
        u64::try_from(n).unwrap()
    );
    // The relay time is wall time on the engine's thread (its waits for the database included); the process CPU
    // also counts the store's background threads and the bench's own encoding (not the PostgreSQL server's).
    let each = |d: Duration| d / u32::try_from(n).unwrap();
    println!(
        "| {backend} | {n} | {relay_time:.2?} | {:.1?} | {:.1?} |",
        each(relay_time),
        each(process)
    );
}

/// User plus system CPU of this process, all threads (`/proc/self/stat`, in clock ticks of 10 ms).
fn process_cpu() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap();
    Duration::from_millis(ticks * 10)
}
