//! Agent hot paths, measured with percentiles: `cargo bench -p tessera-agent --bench agent_paths`.
//!
//! - local API `get` over a real Unix socket (connect, policy, audit, read, answer): the p99 ≤ 1 ms goal;
//! - the target role per delivery (statement verify, envelope open, commitment) and the store (batch accept with one
//!   flush, read by name): what backfill costs on the agent apart from MQTT.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::too_many_lines,
    missing_docs
)]

use std::time::{Duration, Instant};

use tessera_agent::config::{AgentConfig, Policy};
use tessera_agent::core::CoreHandle;
use tessera_agent::identity::AgentKeys;
use tessera_agent::local_api::client::Client;
use tessera_agent::local_api::limiter::UidLimiter;
use tessera_agent::local_api::server::{self, ApiContext};
use tessera_agent::roles::target;
use tessera_agent::store::{NewCredential, Store};
use tessera_proto::envelope::seal;
use tessera_proto::ids::{CredentialId, CredentialName};
use tessera_proto::secret::SecretBytes;
use tessera_proto::statement::{RevocationList, Scope};
use tessera_proto::wire::CredentialStore;
use tessera_system_tests::org::TestOrg;

const NOW: i64 = 1_800_000_000;

fn pct(mut v: Vec<Duration>) -> (Duration, Duration, Duration) {
    v.sort();
    // Index of the p-th per-mille sample.
    let at = |per_mille: usize| {
        v.get((v.len() - 1) * per_mille / 1000)
            .copied()
            .unwrap_or_default()
    };
    (at(500), at(990), at(1000))
}

fn row(name: &str, n: usize, samples: Vec<Duration>) {
    let (p50, p99, max) = pct(samples);
    println!("| {name} | {n} | {p50:.1?} | {p99:.1?} | {max:.1?} |");
}

fn main() {
    let dir = tempfile::tempdir().unwrap();
    let org = TestOrg::at(NOW);
    let agent = org.agent("bench-1");
    let pinned = org.ca.pinned().clone();
    let cert = pinned
        .verify_agent(&agent.cert, NOW, &RevocationList::empty())
        .unwrap();
    let keys = AgentKeys {
        id: agent.id,
        identity: agent.identity,
        wrap: agent.wrap,
        ca: pinned,
        cert: cert.clone(),
        revocations: RevocationList::empty(),
        decrypt_only: Vec::new(),
    };
    let store = Store::open(
        &dir.path().join("store"),
        &SecretBytes::new(vec![3; 32]),
        10_000,
    )
    .unwrap();

    println!("| operation | n | p50 | p99 | max |");
    println!("|---|---|---|---|---|");

    // Target role per delivery.
    let deliveries: Vec<CredentialStore> = (0..1000)
        .map(|i| {
            let (statement, _, payload) = org.credential(
                CredentialId::random(),
                1,
                &format!("c{i}"),
                Scope::All,
                &format!("secret-{i}"),
            );
            CredentialStore {
                delivery_id: uuid::Uuid::new_v4(),
                statement,
                envelope: seal(&cert.wrap, payload.bytes()).unwrap(),
                request_id: None,
                target_key: None,
            }
        })
        .collect();
    let mut accepted = Vec::new();
    let mut samples = Vec::new();
    for d in &deliveries {
        let t = Instant::now();
        let a = target::check(&keys, &store, d).unwrap();
        samples.push(t.elapsed());
        if let target::Accepted::New(c) = a {
            accepted.push(*c);
        }
    }
    row(
        "target check per delivery (verify statement, open envelope, commitment)",
        samples.len(),
        samples,
    );

    // The receipt a target signs for every credential it stores (docs/protocol.md, "Receipts").
    let mut samples = Vec::new();
    for i in 0..1000u128 {
        let fact = tessera_proto::receipt::ReceiptFact::Stored {
            delivery_id: uuid::Uuid::from_u128(i),
            credential_id: CredentialId::random(),
            version: 1,
            digest: tessera_proto::commitment::Commitment([7; 32]),
        };
        let t = Instant::now();
        let receipt = keys.receipt(fact, NOW).unwrap();
        samples.push(t.elapsed());
        assert!(!receipt.signature.is_empty());
    }
    row("receipt of a stored credential, signed", 1000, samples);

    // Store: batches of 64 with one flush each (what the core does under a backfill).
    let mut samples = Vec::new();
    let start = Instant::now();
    let mut it = accepted.into_iter().peekable();
    while it.peek().is_some() {
        let batch: Vec<NewCredential> = it.by_ref().take(64).collect();
        let t = Instant::now();
        store.accept(&batch, NOW).unwrap();
        samples.push(t.elapsed() / u32::try_from(batch.len()).unwrap());
    }
    let total = start.elapsed();
    row(
        "store accept, per credential in a flushed batch of 64",
        1000,
        samples,
    );
    let mut samples = Vec::new();
    for i in 0..50 {
        let (signed, statement, payload) = org.credential(
            CredentialId::random(),
            1,
            &format!("one{i}"),
            Scope::All,
            "s",
        );
        let t = Instant::now();
        store
            .accept(
                &[NewCredential {
                    statement,
                    signed,
                    payload,
                }],
                NOW,
            )
            .unwrap();
        samples.push(t.elapsed());
    }
    row(
        "store accept, one credential with its own flush",
        50,
        samples,
    );

    let mut samples = Vec::new();
    for i in 0..5000 {
        let name = CredentialName::new(format!("c{}", i % 1000)).unwrap();
        let t = Instant::now();
        let c = store.credential_by_name(&name).unwrap();
        samples.push(t.elapsed());
        assert!(c.is_some());
    }
    row("store read by name", 5000, samples);

    // Local API over a real socket.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let socket = dir.path().join("agent.sock");
    let mut cfg = AgentConfig::default();
    cfg.policy.insert(
        "*".into(),
        Policy {
            uids: vec![rustix::process::geteuid().as_raw()],
            gids: vec![],
        },
    );
    let cfg = tessera_agent::config::LiveConfig::fixed(cfg);
    let (cmd_tx, _cmd_rx) = tokio::sync::mpsc::channel(8);
    let ctx = ApiContext {
        cfg,
        store: store.clone(),
        core: CoreHandle::new(cmd_tx),
        limiter: UidLimiter::new(4),
        store_key: None,
        status: None,
    };
    let cancel = tokio_util::sync::CancellationToken::new();
    let listener = rt
        .block_on(async { server::bind(&socket, 0o660, None) })
        .unwrap();
    rt.spawn(server::serve(listener, ctx, cancel.clone()));
    let mut samples = Vec::new();
    for i in 0..5000 {
        let name = CredentialName::new(format!("c{}", i % 1000)).unwrap();
        let t = Instant::now();
        let mut client = Client::connect(&socket).unwrap();
        let (_, secret) = client.get(&name).unwrap();
        samples.push(t.elapsed());
        assert!(!secret.is_empty());
    }
    row(
        "local API get (connect, policy, audit, read, answer)",
        5000,
        samples,
    );
    let mut client = Client::connect(&socket).unwrap();
    let mut samples = Vec::new();
    for i in 0..5000 {
        let name = CredentialName::new(format!("c{}", i % 1000)).unwrap();
        let t = Instant::now();
        client.get(&name).unwrap();
        samples.push(t.elapsed());
    }
    row("local API get on an open connection", 5000, samples);
    cancel.cancel();
    println!();
    println!(
        "1,000 deliveries stored in {total:.2?} of store time (batches of 64, one flush each)."
    );
}
