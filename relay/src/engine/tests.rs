//! The engine's rules, each with a test that fails when the rule is broken. Real crypto, a real sled store, a
//! manual clock; the agents' side is played by building their wire messages.

use std::collections::BTreeMap;
use std::sync::Arc;

use tessera_proto::commitment::Commitment;
use tessera_proto::envelope::{seal, Envelope};
use tessera_proto::ids::{AgentId, CredentialId, CredentialName};
use tessera_proto::statement::Scope;
use tessera_proto::topics;
use tessera_proto::wire::{
    self, AgentState, CredentialMissing, CredentialStored, Down, Held, PublicReason, RefusalReason,
    Register, RegistrationMode, RewrapRefused, RewrapRequest, RewrapResponse, StoreOutcome, Up,
};
use tessera_system_tests::org::{TestAgent, TestOrg};

use super::*;
use crate::alerts::AlertKind;
use crate::clock::ManualClock;
use crate::state::{DeliveryState, SledStore};

pub(super) const T0: u64 = 1_800_000_000_000;

pub(super) struct World {
    pub(super) engine: Engine,
    pub(super) org: TestOrg,
    pub(super) clock: ManualClock,
    pub(super) agents: BTreeMap<String, TestAgent>,
    dir: tempfile::TempDir,
    /// The database, when the run puts the state on PostgreSQL (`TESSERA_TEST_STATE=postgres`).
    pub(super) db: Option<tessera_system_tests::pg::TestDb>,
}

/// The backend this run tests the engine on: sled, or PostgreSQL with `TESSERA_TEST_STATE=postgres`.
fn open_backend(
    dir: &std::path::Path,
    db: Option<&tessera_system_tests::pg::TestDb>,
) -> Arc<dyn RelayStore> {
    match db {
        Some(db) => Arc::new(
            crate::state::PgStore::open(&crate::state::PgConfig {
                url: db.url().to_owned(),
                ..crate::state::PgConfig::default()
            })
            .unwrap(),
        ),
        None => Arc::new(SledStore::open(&dir.join("state")).unwrap()),
    }
}

impl World {
    pub(super) fn new() -> Self {
        Self::with(EngineConfig::default())
    }

    /// An engine over a store the test wraps around this run's backend.
    pub(super) fn over(wrap: impl FnOnce(Arc<dyn RelayStore>) -> Arc<dyn RelayStore>) -> Self {
        let mut w = Self::new();
        let store = wrap(w.engine.store().clone());
        w.engine = Engine::new(
            store,
            w.org.ca.pinned().clone(),
            EngineConfig::default(),
            Arc::new(w.clock.clone()),
        );
        w
    }

    pub(super) fn with(cfg: EngineConfig) -> Self {
        let db = tessera_system_tests::pg::state_on_postgres()
            .then(|| tessera_system_tests::pg::TestDb::create().unwrap());
        Self::with_db(cfg, db)
    }

    /// A world on PostgreSQL whatever the run, and a second relay (a replica) over a store of its own on the same
    /// database, with the same clock and org.
    pub(super) fn replicas(cfg: EngineConfig) -> (Self, Engine) {
        let db = tessera_system_tests::pg::TestDb::create().unwrap();
        let second = open_backend(std::path::Path::new("/nonexistent"), Some(&db));
        let w = Self::with_db(cfg.clone(), Some(db));
        let b = Engine::new(
            second,
            w.org.ca.pinned().clone(),
            cfg,
            Arc::new(w.clock.clone()),
        );
        (w, b)
    }

    fn with_db(cfg: EngineConfig, db: Option<tessera_system_tests::pg::TestDb>) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let org = TestOrg::at(i64::try_from(T0 / 1000).unwrap());
        let clock = ManualClock::at(T0);
        let store = open_backend(dir.path(), db.as_ref());
        let engine = Engine::new(store, org.ca.pinned().clone(), cfg, Arc::new(clock.clone()));
        Self {
            engine,
            org,
            clock,
            agents: BTreeMap::new(),
            dir,
            db,
        }
    }

    /// Reopens the engine on the same state (a relay restart).
    pub(super) fn restart(&mut self) {
        let store: Arc<dyn RelayStore> = self.engine.store().clone();
        drop(std::mem::replace(
            &mut self.engine,
            Engine::new(
                store,
                self.org.ca.pinned().clone(),
                EngineConfig::default(),
                Arc::new(self.clock.clone()),
            ),
        ));
    }

    pub(super) fn agent(&mut self, id: &str) -> AgentId {
        let a = self.org.agent(id);
        let aid = a.id.clone();
        self.agents.insert(id.to_owned(), a);
        aid
    }

    pub(super) fn up(&mut self, from: &AgentId, up: &Up) -> Vec<Outbound> {
        self.engine
            .on_message(&topics::agent_up(from), &wire::encode(up).unwrap())
    }

    pub(super) fn register(
        &mut self,
        id: &AgentId,
        mode: RegistrationMode,
        held: Vec<Held>,
    ) -> Vec<Outbound> {
        let cert = self.agents[id.as_str()].cert.clone();
        self.up(
            id,
            &Up::Register(Register {
                mode,
                cert,
                held,
                agent_version: "test".into(),
                capabilities: Vec::new(),
            }),
        )
    }

    /// Puts a credential with operator envelopes for `sealed_for`.
    pub(super) fn put(
        &mut self,
        name: &str,
        scope: Scope,
        secret: &str,
        sealed_for: &[&AgentId],
    ) -> (CredentialId, Commitment, Vec<Outbound>) {
        let id = CredentialId::random();
        let (signed, st, payload) = self.org.credential(id, 1, name, scope, secret);
        let envs: Vec<(AgentId, tessera_proto::envelope::KeyFingerprint, Envelope)> = sealed_for
            .iter()
            .map(|a| {
                let key = self.agents[a.as_str()].wrap.public_key();
                (
                    (*a).clone(),
                    key.fingerprint(),
                    seal(key, payload.bytes()).unwrap(),
                )
            })
            .collect();
        let out = self.engine.put_credential(&signed, &envs).unwrap();
        (id, st.commitment, out)
    }

    /// `from` acknowledges a delivery of version 1; a `stored` outcome carries its signed receipt, as an honest
    /// agent's does.
    pub(super) fn ack(
        &mut self,
        from: &AgentId,
        delivery: uuid::Uuid,
        id: CredentialId,
        outcome: StoreOutcome,
    ) -> Vec<Outbound> {
        let msg = self.ack_msg(from, delivery, id, outcome);
        self.up(from, &msg)
    }

    /// The acknowledgement [`World::ack`] sends.
    pub(super) fn ack_msg(
        &self,
        from: &AgentId,
        delivery: uuid::Uuid,
        id: CredentialId,
        outcome: StoreOutcome,
    ) -> Up {
        let receipt = match &outcome {
            StoreOutcome::Stored { digest } => {
                Some(
                    self.org
                        .stored_receipt(&self.agents[from.as_str()], delivery, id, 1, *digest),
                )
            }
            _ => None,
        };
        Up::CredentialStored(CredentialStored {
            delivery_id: delivery,
            credential_id: id,
            version: 1,
            outcome,
            receipt,
        })
    }

    /// `from` acknowledges a purge, with its signed receipt.
    pub(super) fn purge_ack(
        &mut self,
        from: &AgentId,
        id: CredentialId,
        version: u64,
    ) -> Vec<Outbound> {
        let receipt = self.org.receipt(
            &self.agents[from.as_str()],
            tessera_proto::receipt::ReceiptFact::Purged {
                credential_id: id,
                version,
                scope_revision: None,
            },
        );
        self.up(
            from,
            &Up::CredentialPurged(wire::CredentialPurged {
                credential_id: id,
                version,
                receipt: Some(receipt),
            }),
        )
    }

    /// An agent that holds `secret` as credential `name`, registered and online; returns the credential id.
    pub(super) fn seeded_peer(
        &mut self,
        peer: &str,
        name: &str,
        secret: &str,
    ) -> (AgentId, CredentialId, Commitment) {
        let p = self.agent(peer);
        let (id, commitment, _) = self.put(name, Scope::All, secret, &[&p]);
        let out = self.register(&p, RegistrationMode::FirstRegistration, vec![]);
        let d = store_msg(&out, &p);
        self.ack(
            &p,
            d.delivery_id,
            id,
            StoreOutcome::Stored { digest: commitment },
        );
        (p, id, commitment)
    }

    pub(super) fn row(&self, id: &CredentialId, agent: &AgentId) -> crate::state::DeliveryRow {
        self.engine.store.delivery(id, agent).unwrap().unwrap()
    }

    pub(super) fn audit_kinds(&self) -> Vec<String> {
        self.engine
            .store
            .audit()
            .unwrap()
            .into_iter()
            .map(|e| e.kind)
            .collect()
    }
}

pub(super) fn store_msg(out: &[Outbound], to: &AgentId) -> wire::CredentialStore {
    out.iter()
        .find_map(|o| match &o.msg {
            Down::CredentialStore(s) if o.to == *to => Some(s.clone()),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no credential_store to {}: {out:?}", to.as_str()))
}

pub(super) fn rewrap_msg(out: &[Outbound]) -> (AgentId, RewrapRequest) {
    out.iter()
        .find_map(|o| match &o.msg {
            Down::RewrapRequest(r) => Some((o.to.clone(), r.clone())),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no rewrap_request: {out:?}"))
}

pub(super) fn unavailable(out: &[Outbound]) -> Option<PublicReason> {
    out.iter().find_map(|o| match &o.msg {
        Down::CredentialUnavailable(u) => Some(u.reason),
        _ => None,
    })
}

impl World {
    /// The peer answers `req` honestly with `secret` and the target acknowledges the matching digest.
    pub(super) fn complete_honestly(
        &mut self,
        peer: &AgentId,
        req: &RewrapRequest,
        secret: &str,
        commitment: Commitment,
    ) {
        let resp = self.honest(peer, req, secret);
        let d = store_msg(&self.up(peer, &resp), &req.target);
        self.ack(
            &req.target,
            d.delivery_id,
            req.credential_id,
            StoreOutcome::Stored { digest: commitment },
        );
    }

    /// The peer's honest answer to `req`.
    pub(super) fn honest(&self, peer: &AgentId, req: &RewrapRequest, secret: &str) -> Up {
        let target = &self.agents[req.target.as_str()];
        let payload = tessera_proto::secret::SecretPayload::from_plain_text(secret).unwrap();
        Up::RewrapResponse(RewrapResponse {
            request_id: req.request_id,
            nonce: req.nonce,
            peer: peer.clone(),
            credential_id: req.credential_id,
            version: req.version,
            target_key: target.wrap.public_key().fingerprint(),
            envelope: seal(target.wrap.public_key(), payload.bytes()).unwrap(),
        })
    }
}

#[test]
fn first_registration_backfills_through_a_peer_and_goes_online() {
    let mut w = World::new();
    let (peer, id, commitment) = w.seeded_peer("peer-1", "db", "pw");
    assert_eq!(w.row(&id, &peer).state, DeliveryState::Stored);
    let target = w.agent("target-1");
    let out = w.register(&target, RegistrationMode::FirstRegistration, vec![]);
    let Down::RegisterAck(ack) = &out[0].msg else {
        panic!("{out:?}")
    };
    assert_eq!((ack.state, ack.backfill), (AgentState::Backfilling, 1));
    assert_eq!(
        w.engine.store.agent(&target).unwrap().unwrap().state,
        AgentState::Backfilling
    );
    let (to, req) = rewrap_msg(&out);
    assert_eq!(to, peer);
    assert_eq!(req.target_cert, w.agents["target-1"].cert);
    let resp = w.honest(&peer, &req, "pw");
    let out = w.up(&peer, &resp);
    let d = store_msg(&out, &target);
    assert_eq!(d.delivery_id, req.request_id);
    w.ack(
        &target,
        d.delivery_id,
        id,
        StoreOutcome::Stored { digest: commitment },
    );
    assert_eq!(w.row(&id, &target).state, DeliveryState::Stored);
    assert_eq!(
        w.engine.store.agent(&target).unwrap().unwrap().state,
        AgentState::Online
    );
    // Write-ahead audit: a pending entry and a final entry linked to it; the chain verifies.
    let audit = w.engine.store.audit().unwrap();
    let fin = audit
        .iter()
        .rev()
        .find(|e| e.kind == "rewrap_final")
        .unwrap();
    assert_eq!(fin.data["result"], "success");
    assert_eq!(
        audit[usize::try_from(fin.link.unwrap()).unwrap()].kind,
        "rewrap_pending"
    );
    tessera_proto::audit::verify(&audit).unwrap();
}

#[test]
fn warm_reconnect_backfills_only_the_gap() {
    let mut w = World::new();
    let (peer, a, _) = w.seeded_peer("peer-1", "a", "A");
    let (b, _, _) = w.put("b", Scope::All, "B", &[]);
    let target = w.agent("target-1");
    let held = vec![Held {
        credential_id: a,
        version: 1,
    }];
    let out = w.register(&target, RegistrationMode::WarmReconnect, held);
    let Down::RegisterAck(ack) = &out[0].msg else {
        panic!()
    };
    assert_eq!(ack.backfill, 1, "only b is missing");
    assert_eq!(w.row(&a, &target).state, DeliveryState::Stored);
    assert_eq!(w.row(&b, &target).state, DeliveryState::Pending);
    let _ = peer;
}

#[test]
fn the_stated_agent_version_is_kept_with_the_registration_and_an_empty_one_is_not_reported() {
    let mut w = World::new();
    let a = w.agent("edge-1");
    w.register(&a, RegistrationMode::FirstRegistration, vec![]);
    let rec = w.engine.store.agent(&a).unwrap().unwrap();
    assert_eq!(rec.agent_version.as_deref(), Some("test"));
    let cert = w.agents["edge-1"].cert.clone();
    w.up(
        &a,
        &Up::Register(Register {
            mode: RegistrationMode::KeyRegenerated,
            cert,
            held: vec![],
            agent_version: String::new(),
            capabilities: Vec::new(),
        }),
    );
    assert_eq!(
        w.engine.store.agent(&a).unwrap().unwrap().agent_version,
        None
    );
}

#[test]
fn every_binding_is_checked() {
    let mut w = World::new();
    let (peer, _, _) = w.seeded_peer("peer-1", "db", "pw");
    let other = w.agent("other-1");
    w.register(&other, RegistrationMode::FirstRegistration, vec![]);
    let target = w.agent("target-1");
    let out = w.register(&target, RegistrationMode::FirstRegistration, vec![]);
    let (_, req) = rewrap_msg(&out);
    let good = w.honest(&peer, &req, "pw");
    let Up::RewrapResponse(good) = good else {
        unreachable!()
    };
    let attacks: Vec<(&str, AgentId, RewrapResponse)> = vec![
        (
            "nonce",
            peer.clone(),
            RewrapResponse {
                nonce: [0; 32],
                ..good.clone()
            },
        ),
        (
            "peer field",
            peer.clone(),
            RewrapResponse {
                peer: other.clone(),
                ..good.clone()
            },
        ),
        (
            "responding peer",
            other.clone(),
            RewrapResponse {
                peer: other.clone(),
                ..good.clone()
            },
        ),
        (
            "credential",
            peer.clone(),
            RewrapResponse {
                credential_id: CredentialId::random(),
                ..good.clone()
            },
        ),
        (
            "version",
            peer.clone(),
            RewrapResponse {
                version: 2,
                ..good.clone()
            },
        ),
        (
            "target key",
            peer.clone(),
            RewrapResponse {
                target_key: w.agents["other-1"].wrap.public_key().fingerprint(),
                ..good.clone()
            },
        ),
        (
            "request",
            peer.clone(),
            RewrapResponse {
                request_id: uuid::Uuid::new_v4(),
                ..good.clone()
            },
        ),
    ];
    for (i, (what, from, resp)) in attacks.into_iter().enumerate() {
        let out = w.up(&from, &Up::RewrapResponse(resp));
        assert!(out.is_empty(), "{what}: relayed {out:?}");
        assert_eq!(
            w.engine.metrics.unsolicited,
            u64::try_from(i + 1).unwrap(),
            "{what}"
        );
    }
    assert!(
        w.audit_kinds()
            .iter()
            .filter(|k| *k == "unsolicited_response")
            .count()
            >= 7
    );
    // The genuine answer still goes through.
    let out = w.up(&peer, &Up::RewrapResponse(good));
    store_msg(&out, &target);
}

#[test]
fn commitment_mismatch_is_handled_in_full() {
    let mut w = World::new();
    let (bad_peer, id, commitment) = w.seeded_peer("peer-1", "db", "pw");
    let good_peer = w.agent("peer-2");
    // peer-2 joins and receives it from peer-1 (honestly, this time).
    let out = w.register(&good_peer, RegistrationMode::FirstRegistration, vec![]);
    let (_, req) = rewrap_msg(&out);
    w.complete_honestly(&bad_peer, &req, "pw", commitment);
    assert_eq!(w.row(&id, &good_peer).state, DeliveryState::Stored);

    let target = w.agent("target-1");
    w.register(
        &target,
        RegistrationMode::WarmReconnect,
        vec![Held {
            credential_id: id,
            version: 1,
        }],
    );
    // Force a JIT through the hostile peer: make the target's row pending, then ask.
    let mut row = w.row(&id, &target);
    row.state = DeliveryState::Pending;
    w.engine.store.put_delivery(&row).unwrap();
    w.engine.store.block(&id, &good_peer, T0 + 1).unwrap(); // only for this first choice
    let jit = uuid::Uuid::new_v4();
    let out = w.up(
        &target,
        &Up::CredentialMissing(CredentialMissing {
            request_id: jit,
            name: CredentialName::new("db").unwrap(),
        }),
    );
    let (to, req) = rewrap_msg(&out);
    assert_eq!(to, bad_peer);
    w.clock.advance(10);
    let substituted = w.honest(&bad_peer, &req, "substituted");
    let d = store_msg(&w.up(&bad_peer, &substituted), &target);
    assert_eq!(d.request_id, Some(jit));
    let out = w.ack(&target, d.delivery_id, id, StoreOutcome::Mismatch);

    assert_ne!(
        w.row(&id, &target).state,
        DeliveryState::Stored,
        "no delivery mark"
    );
    assert_eq!(
        w.row(&id, &bad_peer).state,
        DeliveryState::Untrusted,
        "source invalidated"
    );
    assert!(
        w.engine
            .store
            .blocked_until(&id, &bad_peer)
            .unwrap()
            .unwrap()
            >= T0 + 24 * 3_600_000
    );
    let alerts = w.engine.store.alerts().unwrap();
    assert!(alerts
        .iter()
        .any(|a| a.kind == AlertKind::PeerAgentIntegrityFailure && a.subject.contains("peer-1")));
    assert!(alerts
        .iter()
        .any(|a| a.kind == AlertKind::CredentialCommitmentMismatch));
    assert!(w
        .audit_kinds()
        .contains(&"commitment_mismatch_detected".to_owned()));
    assert_eq!(
        unavailable(&out),
        Some(PublicReason::CommitmentMismatch),
        "typed failure, not a timeout"
    );
    // The next peer is asked at once.
    let (next, _) = rewrap_msg(&out);
    assert_eq!(next, good_peer);
    // A second mismatch from the same peer does not raise the critical alert again.
    let n = w
        .engine
        .store
        .alerts()
        .unwrap()
        .iter()
        .find(|a| a.kind == AlertKind::PeerAgentIntegrityFailure)
        .unwrap()
        .count;
    assert_eq!(n, 1);
}

#[test]
fn blocklist_expires_after_24_hours() {
    let mut w = World::new();
    let (peer, id, _) = w.seeded_peer("peer-1", "db", "pw");
    let target = w.agent("target-1");
    w.engine
        .store
        .block(&id, &peer, T0 + 24 * 3_600_000)
        .unwrap();
    let out = w.register(&target, RegistrationMode::FirstRegistration, vec![]);
    assert!(
        out.iter().all(|o| !matches!(o.msg, Down::RewrapRequest(_))),
        "blocklisted peer asked"
    );
    w.clock.advance(60_000);
    let out = w.engine.reconcile().unwrap();
    assert!(
        out.iter().all(|o| !matches!(o.msg, Down::RewrapRequest(_))),
        "still blocklisted"
    );
    w.clock.advance(24 * 3_600_000 - 60_000);
    let out = w.engine.reconcile().unwrap();
    assert_eq!(
        rewrap_msg(&out).0,
        peer,
        "eligible again once the 24 h are over"
    );
}

#[test]
fn reconciler_follows_the_backoff_table_and_retires_with_one_alert() {
    let mut w = World::new();
    let (_, _, _) = w.put("db", Scope::All, "pw", &[]);
    let target = w.agent("target-1");
    w.register(&target, RegistrationMode::FirstRegistration, vec![]); // attempt 1: no peer
    let id = w.engine.store.credentials().unwrap()[0].id;
    let min = 60_000;
    let expected = [
        30_000,
        2 * min,
        8 * min,
        30 * min,
        120 * min,
        120 * min,
        120 * min,
        120 * min,
        120 * min,
    ];
    for (n, delay) in expected.iter().enumerate() {
        let row = w.row(&id, &target);
        assert_eq!(row.attempts, u32::try_from(n + 1).unwrap());
        assert_eq!(
            row.next_attempt_ms,
            w.clock.now_ms() + delay,
            "after attempt {}",
            n + 1
        );
        w.clock.advance(delay - 1);
        w.engine.reconcile().unwrap();
        assert_eq!(
            w.row(&id, &target).attempts,
            u32::try_from(n + 1).unwrap(),
            "too early"
        );
        w.clock.advance(1);
        w.engine.reconcile().unwrap();
    }
    let row = w.row(&id, &target);
    assert_eq!((row.state, row.attempts), (DeliveryState::Stalled, 10));
    let alerts: Vec<_> = w
        .engine
        .store
        .alerts()
        .unwrap()
        .into_iter()
        .filter(|a| a.kind == AlertKind::CredentialSyncStalled)
        .collect();
    assert_eq!(alerts.len(), 1);
    assert_eq!(w.engine.metrics.stalled, 1);
}

#[test]
fn reconciler_takes_at_most_a_batch_per_tick() {
    let mut w = World::new();
    let peer = w.agent("peer-1");
    for i in 0..150 {
        w.put(&format!("c{i}"), Scope::All, "x", &[]);
    }
    w.register(&peer, RegistrationMode::FirstRegistration, vec![]);
    w.clock.advance(30_000);
    let attempts = |w: &World| {
        w.engine
            .store
            .deliveries()
            .unwrap()
            .iter()
            .map(|r| r.attempts)
            .sum::<u32>()
    };
    assert_eq!(
        attempts(&w),
        150,
        "backfill tried every row once and found no peer (failed starts take no concurrency slot)"
    );
    w.engine.reconcile().unwrap();
    assert_eq!(
        attempts(&w),
        150 + 100,
        "one reconciler pass handles at most 100 rows"
    );
}

#[test]
fn jit_rate_limit_flood_alert_and_reason_mapping() {
    let mut w = World::new();
    let (_, _, _) = w.seeded_peer("peer-1", "db", "pw");
    let target = w.agent("target-1");
    w.register(&target, RegistrationMode::WarmReconnect, vec![]);
    let ask = |w: &mut World, name: &str| {
        let out = w.up(
            &target,
            &Up::CredentialMissing(CredentialMissing {
                request_id: uuid::Uuid::new_v4(),
                name: CredentialName::new(name).unwrap(),
            }),
        );
        unavailable(&out)
    };
    assert_eq!(ask(&mut w, "nonexistent"), Some(PublicReason::NotFound));
    let flood = |w: &World| {
        w.engine
            .store
            .alerts()
            .unwrap()
            .iter()
            .any(|a| a.kind == AlertKind::AgentCredentialFlood)
    };
    let mut limited = 0;
    for n in 2..=120 {
        if ask(&mut w, "nonexistent") == Some(PublicReason::RateLimited) {
            limited += 1;
        }
        assert_eq!(flood(&w), n > 100, "flood alert after event {n}");
    }
    assert_eq!(limited, 120 - 20, "a burst of 20, then RATE_LIMITED");
    // Internal reasons never reach the agent.
    assert_eq!(
        jit::JitRefusal::DispatchBackpressure.public(),
        PublicReason::BackendBusy
    );
    assert_eq!(
        jit::JitRefusal::StateFailure.public(),
        PublicReason::BackendBusy
    );
    assert_eq!(
        jit::JitRefusal::OutOfScope.public(),
        PublicReason::NotGranted
    );
}

#[test]
fn out_of_scope_jit_is_not_granted() {
    let mut w = World::new();
    let target = w.agent("target-1");
    w.put(
        "secret-db",
        Scope::explicit([AgentId::new("someone").unwrap()]),
        "x",
        &[],
    );
    w.register(&target, RegistrationMode::FirstRegistration, vec![]);
    let out = w.up(
        &target,
        &Up::CredentialMissing(CredentialMissing {
            request_id: uuid::Uuid::new_v4(),
            name: CredentialName::new("secret-db").unwrap(),
        }),
    );
    assert_eq!(unavailable(&out), Some(PublicReason::NotGranted));
}

#[test]
fn peers_time_out_after_30_s_each_and_at_most_three_are_tried() {
    let mut w = World::new();
    let (p1, id, _) = w.seeded_peer("peer-1", "db", "pw");
    let mut peers = vec![p1];
    for name in ["peer-2", "peer-3", "peer-4"] {
        let p = w.agent(name);
        w.register(
            &p,
            RegistrationMode::WarmReconnect,
            vec![Held {
                credential_id: id,
                version: 1,
            }],
        );
        peers.push(p);
    }
    let target = w.agent("target-1");
    let jit = uuid::Uuid::new_v4();
    w.register(&target, RegistrationMode::WarmReconnect, vec![]);
    // The registration's backfill already asked a peer; the JIT request joins that dispatch.
    let out = w.up(
        &target,
        &Up::CredentialMissing(CredentialMissing {
            request_id: jit,
            name: CredentialName::new("db").unwrap(),
        }),
    );
    assert!(out.is_empty(), "joined, not dispatched twice: {out:?}");
    let pending = w.engine.store.pendings().unwrap();
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].jit, Some(jit));
    let mut asked = vec![pending[0].awaited_peer().cloned().unwrap()];
    for _ in 0..3 {
        w.clock.advance(29_999);
        assert!(
            w.engine
                .tick()
                .iter()
                .all(|o| !matches!(o.msg, Down::RewrapRequest(_))),
            "too early"
        );
        w.clock.advance(1);
        let out = w.engine.tick();
        if let Some(r) = out.iter().find(|o| matches!(o.msg, Down::RewrapRequest(_))) {
            asked.push(r.to.clone());
        } else {
            assert_eq!(unavailable(&out), Some(PublicReason::Timeout), "{out:?}");
        }
    }
    asked.dedup();
    assert_eq!(asked.len(), 3, "three peers, each once: {asked:?}");
    assert!(w.audit_kinds().iter().any(|k| k == "rewrap_final"));
}

#[test]
fn a_refusing_peer_moves_the_dispatch_on() {
    let mut w = World::new();
    let (p1, id, _) = w.seeded_peer("peer-1", "db", "pw");
    let p2 = w.agent("peer-2");
    w.register(
        &p2,
        RegistrationMode::WarmReconnect,
        vec![Held {
            credential_id: id,
            version: 1,
        }],
    );
    let target = w.agent("target-1");
    let out = w.register(&target, RegistrationMode::FirstRegistration, vec![]);
    let (first, req) = rewrap_msg(&out);
    let out = w.up(
        &first,
        &Up::RewrapRefused(RewrapRefused {
            request_id: req.request_id,
            nonce: req.nonce,
            reason: RefusalReason::NotInScope,
        }),
    );
    let (second, _) = rewrap_msg(&out);
    assert_ne!(first, second);
    assert!([p1, p2].contains(&second));
}

#[test]
fn pending_work_survives_a_restart() {
    let mut w = World::new();
    let (peer, id, commitment) = w.seeded_peer("peer-1", "db", "pw");
    let target = w.agent("target-1");
    let out = w.register(&target, RegistrationMode::FirstRegistration, vec![]);
    let (_, req) = rewrap_msg(&out);
    w.engine.store.flush().unwrap();
    w.restart();
    w.complete_honestly(&peer, &req, "pw", commitment);
    assert_eq!(w.row(&id, &target).state, DeliveryState::Stored);
    let _ = &w.dir;
}

#[test]
fn bad_input_is_dropped_with_an_audit_entry_and_no_reply() {
    let mut w = World::new();
    let a = w.agent("edge-1");
    let up = topics::agent_up(&a);
    for (topic, payload) in [
        (up.as_str(), b"{not json".to_vec()),
        (up.as_str(), vec![b'x'; (1 << 20) + 1]),
        (
            up.as_str(),
            br#"{"v":1,"msg":{"type":"launch","body":{}}}"#.to_vec(),
        ),
        (
            up.as_str(),
            br#"{"v":2,"msg":{"type":"register","body":{}}}"#.to_vec(),
        ),
        ("tessera/v1/agents/edge-1/down", b"{}".to_vec()),
        ("some/other/topic", b"{}".to_vec()),
    ] {
        assert!(w.engine.on_message(topic, &payload).is_empty());
    }
    assert_eq!(w.engine.metrics.dropped_messages, 6);
    assert_eq!(
        w.audit_kinds()
            .iter()
            .filter(|k| *k == "dropped_message")
            .count(),
        6
    );
    // A registration whose certificate names another agent, or comes from another CA, is dropped too.
    let other = w.agent("edge-2");
    let cert = w.agents["edge-2"].cert.clone();
    assert!(w
        .up(
            &a,
            &Up::Register(Register {
                mode: RegistrationMode::FirstRegistration,
                cert,
                held: vec![],
                agent_version: "x".into(),
                capabilities: Vec::new(),
            })
        )
        .is_empty());
    let rogue = TestOrg::at(i64::try_from(T0 / 1000).unwrap()).agent("edge-1");
    assert!(w
        .up(
            &a,
            &Up::Register(Register {
                mode: RegistrationMode::FirstRegistration,
                cert: rogue.cert,
                held: vec![],
                agent_version: "x".into(),
                capabilities: Vec::new(),
            })
        )
        .is_empty());
    assert!(w.engine.store.agent(&a).unwrap().is_none());
    let _ = other;
}

#[test]
fn mismatch_flood_raises_the_agent_alert() {
    let mut w = World::new();
    let (peer, _, _) = w.seeded_peer("peer-1", "seed", "s");
    let mut flood = false;
    for i in 0..12 {
        let target = w.agent(&format!("t{i}"));
        let (id, _, _) = w.put(&format!("c{i}"), Scope::All, "pw", &[]);
        let mut row = w
            .engine
            .ensure_row(&w.engine.store.credential(&id).unwrap().unwrap(), &peer)
            .unwrap();
        row.state = DeliveryState::Stored;
        w.engine.store.put_delivery(&row).unwrap();
        let out = w.register(&target, RegistrationMode::FirstRegistration, vec![]);
        let (_, req) = out
            .iter()
            .find_map(|o| match &o.msg {
                Down::RewrapRequest(r) if r.credential_id == id => Some((o.to.clone(), r.clone())),
                _ => None,
            })
            .unwrap();
        let d = store_msg(&w.up(&peer, &w.honest(&peer, &req, "wrong")), &target);
        w.ack(&target, d.delivery_id, id, StoreOutcome::Mismatch);
        flood |= w
            .engine
            .store
            .alerts()
            .unwrap()
            .iter()
            .any(|a| a.kind == AlertKind::AgentCommitmentFlood);
        assert_eq!(flood, i >= 10, "after mismatch {}", i + 1);
    }
}

#[test]
fn a_forged_delivery_refused_by_its_target_raises_the_critical_alert() {
    let mut w = World::new();
    let a = w.agent("edge-1");
    let credential = CredentialId::random();
    // A stale redelivery is only counted; a refusal only forgery can cause is alerted and audited.
    for (outcome, alerted) in [
        (
            StoreOutcome::Refused {
                reason: RefusalReason::StaleVersion,
            },
            false,
        ),
        (StoreOutcome::Mismatch, true),
    ] {
        let out = w.up(
            &a,
            &Up::CredentialStored(CredentialStored {
                delivery_id: uuid::Uuid::new_v4(),
                credential_id: credential,
                version: 1,
                outcome,
                receipt: None,
            }),
        );
        assert!(out.is_empty(), "nothing is sent in answer");
        let alerts = w.engine.store.alerts().unwrap();
        assert_eq!(
            alerts
                .iter()
                .any(|a| a.kind == AlertKind::CredentialCommitmentMismatch
                    && a.subject.contains("source=unknown")),
            alerted
        );
        assert_eq!(
            w.audit_kinds()
                .contains(&"commitment_mismatch_detected".to_owned()),
            alerted
        );
    }
    tessera_proto::audit::verify(&w.engine.store.audit().unwrap()).unwrap();
}

#[test]
fn a_backfill_that_finds_no_peer_leaves_the_agent_online_with_the_row_in_backoff() {
    let mut w = World::new();
    let (peer, id, _) = w.seeded_peer("peer-1", "db", "pw");
    // The only holder goes offline (its Last Will).
    w.engine.on_message(
        &topics::agent_status(&peer),
        &wire::encode(&wire::Status {
            state: AgentState::Offline,
            at: 0,
        })
        .unwrap(),
    );
    let target = w.agent("target-1");
    let out = w.register(&target, RegistrationMode::FirstRegistration, vec![]);
    assert!(out.iter().all(|o| !matches!(o.msg, Down::RewrapRequest(_))));
    let row = w.row(&id, &target);
    assert_eq!(row.state, DeliveryState::Pending);
    assert_eq!(row.next_attempt_ms, T0 + 30_000, "first backoff step");
    assert_eq!(
        w.engine.store.agent(&target).unwrap().unwrap().state,
        AgentState::Online,
        "eligible for jobs: the reconciler and JIT repair take the row from here"
    );
}

#[test]
fn a_backfill_larger_than_the_concurrency_with_no_peer_still_finishes() {
    let mut w = World::new();
    let peer = w.agent("peer-1");
    let n = EngineConfig::default().backfill_concurrency * 2 + 3;
    let ids: Vec<CredentialId> = (0..n)
        .map(|i| w.put(&format!("c{i}"), Scope::All, "x", &[&peer]).0)
        .collect();
    // The only holder never registered: every start fails at once.
    let target = w.agent("target-1");
    w.register(&target, RegistrationMode::FirstRegistration, vec![]);
    for id in &ids {
        assert_eq!(w.row(id, &target).next_attempt_ms, T0 + 30_000);
    }
    assert_eq!(
        w.engine.store.agent(&target).unwrap().unwrap().state,
        AgentState::Online,
        "every row was tried and is waiting out its backoff"
    );
}

#[test]
fn jit_beyond_the_in_flight_limit_is_backend_busy() {
    let mut w = World::with(EngineConfig {
        max_in_flight: 1,
        ..EngineConfig::default()
    });
    let (peer, _, _) = w.seeded_peer("peer-1", "db", "pw");
    // One rewrap in flight: a new agent's backfill, waiting for the peer.
    let first = w.agent("target-1");
    let out = w.register(&first, RegistrationMode::FirstRegistration, vec![]);
    assert_eq!(rewrap_msg(&out).0, peer);
    let second = w.agent("target-2");
    w.register(&second, RegistrationMode::WarmReconnect, vec![]);
    let out = w.up(
        &second,
        &Up::CredentialMissing(CredentialMissing {
            request_id: uuid::Uuid::new_v4(),
            name: CredentialName::new("db").unwrap(),
        }),
    );
    assert_eq!(unavailable(&out), Some(PublicReason::BackendBusy));
}

#[test]
fn a_job_expires_ttl_after_dispatch_and_a_duplicate_refusal_never_replaces_its_result() {
    let mut w = World::with(EngineConfig {
        job_ttl_secs: 120,
        ..EngineConfig::default()
    });
    let a = w.agent("edge-1");
    w.register(&a, RegistrationMode::FirstRegistration, vec![]);
    assert_eq!(
        w.engine.store.agent(&a).unwrap().unwrap().state,
        AgentState::Online
    );
    w.clock.advance(5_000);
    let (id, to, out) = w
        .engine
        .dispatch_job(
            tessera_proto::ids::TemplateName::new("t").unwrap(),
            BTreeMap::new(),
            vec![],
            None,
        )
        .unwrap();
    assert_eq!(to, a);
    let Some(Down::JobDispatch(d)) = out.first().map(|o| &o.msg) else {
        panic!("expected a job dispatch: {out:?}")
    };
    let expected = i64::try_from(T0 / 1000).unwrap() + 5 + 120;
    assert_eq!((d.job_id, d.expires_at), (id, expected));
    assert_eq!(
        w.engine.store.job(&id).unwrap().unwrap().expires_at,
        expected
    );

    // A second copy refused while the first runs answers first; the job's result is the one that follows.
    let result = |error: Option<String>, exit_code| {
        Up::JobResult(wire::JobResult {
            job_id: id,
            exit_code,
            stdout: String::new(),
            stderr: String::new(),
            error,
            meta: BTreeMap::new(),
        })
    };
    w.up(
        &a,
        &result(
            Some(wire::JobErrorCode::JobDuplicate.with("already run")),
            None,
        ),
    );
    assert!(w.engine.store.job(&id).unwrap().unwrap().result.is_none());
    assert!(w.audit_kinds().contains(&"job_duplicate".to_owned()));
    w.up(&a, &result(None, Some(0)));
    let stored = w.engine.store.job(&id).unwrap().unwrap().result.unwrap();
    assert_eq!((stored.exit_code, stored.error), (Some(0), None));
}

#[test]
fn flagged_credentials_raise_one_deduplicated_signer_revoked_alert_each() {
    let mut w = World::new();
    let a = w.agent("edge-1");
    let b = w.agent("edge-2");
    let (id, _, _) = w.put("db", Scope::All, "pw", &[]);
    let stranger = CredentialId::random();
    // The relay's list revokes alice too.
    let serial = w
        .org
        .ca
        .pinned()
        .verify_operator(
            &w.org.operator_cert,
            w.org.at,
            &tessera_proto::statement::RevocationList::empty(),
        )
        .unwrap()
        .serial;
    w.engine
        .set_revocations(tessera_proto::statement::RevocationList::new(
            1,
            w.org.at,
            [serial],
        ));
    let report = |ids: Vec<CredentialId>| {
        Up::CredentialsFlagged(wire::CredentialsFlagged {
            reason: wire::FlagReason::SignerRevoked,
            list_serial: 1,
            credential_ids: ids,
        })
    };
    assert!(w.up(&a, &report(vec![id, stranger])).is_empty());
    let alerts: Vec<_> = w
        .engine
        .store
        .alerts()
        .unwrap()
        .into_iter()
        .filter(|x| x.kind == AlertKind::CredentialSignerRevoked)
        .collect();
    assert_eq!(alerts.len(), 1, "nothing for an id the relay does not know");
    assert_eq!(alerts[0].severity, crate::alerts::Severity::High);
    assert_eq!(alerts[0].subject, format!("credential={id}"));
    assert!(
        alerts[0].message.contains("edge-1") && alerts[0].message.contains("list revokes"),
        "{}",
        alerts[0].message
    );
    // Another agent reporting the same credential: the same alert, counted.
    w.clock.advance(1_000);
    w.up(&b, &report(vec![id]));
    let alerts: Vec<_> = w
        .engine
        .store
        .alerts()
        .unwrap()
        .into_iter()
        .filter(|x| x.kind == AlertKind::CredentialSignerRevoked)
        .collect();
    assert_eq!(alerts.len(), 1);
    assert_eq!(alerts[0].count, 2);
    // Each report is audited, with the agent and the counts.
    let audited: Vec<_> = w
        .engine
        .store
        .audit()
        .unwrap()
        .into_iter()
        .filter(|e| e.kind == "credential_signer_revoked")
        .collect();
    assert_eq!(audited.len(), 2);
    assert_eq!(audited[0].data["agent"], "edge-1");
    assert_eq!(audited[0].data["credentials"], id.to_string());
    assert_eq!(audited[0].data["unknown"], "1");
    assert_eq!(audited[1].data["agent"], "edge-2");
}

pub(super) fn purges_to(out: &[Outbound]) -> Vec<AgentId> {
    out.iter()
        .filter(|o| matches!(o.msg, Down::CredentialPurge(_)))
        .map(|o| o.to.clone())
        .collect()
}

/// A tombstone that verifies deletes the credential and is forwarded to every agent that held it; one that does not
/// verify (another operator's key under alice's name, a wrong id, an older version) is refused and changes nothing;
/// an agent that was away gets the tombstone at registration; acknowledgements mark rows purged.
#[test]
fn a_verified_tombstone_deletes_and_is_forwarded_until_each_agent_purges() {
    let mut w = World::new();
    let (p, id, _) = w.seeded_peer("edge-1", "db", "pw");
    let q = w.agent("edge-2");
    let out = w.register(&q, RegistrationMode::FirstRegistration, vec![]);
    let (peer, _) = rewrap_msg(&out);
    assert_eq!(peer, p);

    // Refused: a forged signature (the payload of one tombstone, the signature of another), a wrong id.
    let mut forged = w.org.tombstone(id, "db", 1);
    forged.signature = w.org.tombstone(CredentialId::random(), "db", 1).signature;
    assert!(matches!(
        w.engine.tombstone_credential(&id, &forged),
        Err(operator::OperatorError::Statement(_))
    ));
    let other = w.org.tombstone(CredentialId::random(), "db", 1);
    assert!(w.engine.tombstone_credential(&id, &other).is_err());
    assert!(!w.engine.store.credential(&id).unwrap().unwrap().deleted);

    // Accepted: deleted, the in-flight rewrap for edge-2 dropped, the tombstone sent to both.
    let out = w
        .engine
        .tombstone_credential(&id, &w.org.tombstone(id, "db", 1))
        .unwrap();
    let mut to = purges_to(&out);
    to.sort();
    assert_eq!(to, vec![p.clone(), q.clone()]);
    let c = w.engine.store.credential(&id).unwrap().unwrap();
    assert!(c.deleted && c.tombstone.is_some());
    assert!(!w.engine.is_in_flight(&id, &q));
    assert_eq!(
        w.row(&id, &p).purge,
        Some(crate::state::PurgeState::Purging)
    );

    // edge-1 acknowledges; edge-2 comes back without acknowledging and is sent the tombstone again.
    w.purge_ack(&p, id, 1);
    assert_eq!(w.row(&id, &p).purge, Some(crate::state::PurgeState::Purged));
    let out = w.register(&q, RegistrationMode::WarmReconnect, vec![]);
    assert_eq!(purges_to(&out), vec![q.clone()]);
    // edge-1 reconnects listing the id (say it lost its purge): sent again; nothing is delivered either way.
    let out = w.register(
        &p,
        RegistrationMode::WarmReconnect,
        vec![Held {
            credential_id: id,
            version: 1,
        }],
    );
    assert_eq!(purges_to(&out), vec![p.clone()]);
    assert!(!out
        .iter()
        .any(|o| matches!(o.msg, Down::CredentialStore(_) | Down::RewrapRequest(_))));
    let kinds = w.audit_kinds();
    assert!(kinds.iter().any(|k| k == "credential_tombstoned"));
    assert!(kinds.iter().any(|k| k == "credential_purged"));
    // An acknowledgement for a credential without a tombstone is dropped.
    let (live, _, _) = w.put("api", Scope::All, "x", &[]);
    w.purge_ack(&p, live, 1);
    assert!(w
        .engine
        .store
        .delivery(&live, &p)
        .unwrap()
        .is_none_or(|r| r.purge.is_none()));
}

/// A put that narrows the scope sends the new signed statement to the agent it leaves out, which is then no peer
/// candidate, until it acknowledges; a grant back resets its row to pending.
#[test]
fn a_scope_revoke_sends_the_narrower_statement_to_the_agent_left_out() {
    use tessera_proto::statement::{CredentialStatement, Signed, CREDENTIAL_KIND};
    let mut w = World::new();
    let (p, id, _) = w.seeded_peer("edge-1", "db", "pw");
    let q = w.agent("edge-2");
    let out = w.register(&q, RegistrationMode::FirstRegistration, vec![]);
    assert_eq!(rewrap_msg(&out).0, p);
    // edge-2 holds it (the peer's answer and the target's ack are short-circuited by marking the row stored).
    let mut row = w.row(&id, &q);
    row.state = DeliveryState::Stored;
    w.engine.store.put_delivery(&row).unwrap();

    let held = w
        .engine
        .store
        .credential(&id)
        .unwrap()
        .unwrap()
        .statement
        .parse_unverified(CREDENTIAL_KIND)
        .unwrap();
    let resign = |scope: Scope, revision: u64, org: &TestOrg| {
        let st = CredentialStatement::new(
            id,
            1,
            revision,
            held.name.clone(),
            scope,
            held.salt,
            held.commitment,
            held.creator.clone(),
            held.created_at,
        );
        Signed::sign(&st, &org.operator_key, &org.operator_cert).unwrap()
    };
    let narrower = resign(Scope::explicit([p.clone()]), 1, &w.org);
    let out = w.engine.put_credential(&narrower, &[]).unwrap();
    let revokes: Vec<&Outbound> = out
        .iter()
        .filter(|o| matches!(o.msg, Down::CredentialRevoke(_)))
        .collect();
    assert_eq!(revokes.len(), 1);
    assert_eq!(revokes[0].to, q);
    assert_eq!(
        revokes[0].msg,
        Down::CredentialRevoke(wire::CredentialRevoke {
            statement: narrower.clone()
        })
    );
    assert_eq!(
        w.row(&id, &q).purge,
        Some(crate::state::PurgeState::Purging)
    );
    // Until it acknowledges, a reconnect sends it again.
    let out = w.register(&q, RegistrationMode::WarmReconnect, vec![]);
    assert!(out
        .iter()
        .any(|o| o.to == q && matches!(o.msg, Down::CredentialRevoke(_))));
    w.purge_ack(&q, id, 1);
    assert_eq!(w.row(&id, &q).purge, Some(crate::state::PurgeState::Purged));
    // A grant back: pending again, no longer marked purged.
    let wider = resign(Scope::explicit([p.clone(), q.clone()]), 2, &w.org);
    w.engine.put_credential(&wider, &[]).unwrap();
    let row = w.row(&id, &q);
    assert_eq!(row.purge, None);
    assert_ne!(row.state, DeliveryState::Stored);
}
