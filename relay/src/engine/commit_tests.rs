//! One event, one commit: when the commit fails, nothing of the event is written, nothing it would have sent goes
//! out, and the engine's memory agrees with the store afterwards.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use tessera_proto::audit::AuditEntry;
use tessera_proto::ids::{AgentId, CredentialId, CredentialName};
use tessera_proto::receipt::Receipt;
use tessera_proto::statement::{RevocationList, Scope, Signed};
use tessera_proto::wire::{Down, RegistrationMode};

use super::operator::OperatorError;
use super::tests::World;
use crate::alerts::Alert;
use crate::state::{
    AgentRecord, Batch, CredentialRecord, DeliveryRow, JobRecord, PendingRewrap, ReceiptKind,
    RelayStore, RenewalRecord, StateError, StateResult,
};

/// A backend whose commits fail while `failing` is set (a database gone away, a full disk).
#[derive(Debug)]
struct FlakyStore {
    inner: Arc<dyn RelayStore>,
    failing: Arc<AtomicBool>,
    /// Reading every agent fails while set (a read half-way through an operator's change).
    agents_fail: Arc<AtomicBool>,
    /// Reading a credential's delivery rows fails while set (a read half-way through an agent's message).
    rows_fail: Arc<AtomicBool>,
}

macro_rules! delegate {
    ($($name:ident($($arg:ident: $ty:ty),*) -> $ret:ty;)*) => {
        $(fn $name(&self, $($arg: $ty),*) -> $ret { self.inner.$name($($arg),*) })*
    };
}

impl RelayStore for FlakyStore {
    delegate! {
        agent(id: &AgentId) -> StateResult<Option<AgentRecord>>;
        credential(id: &CredentialId) -> StateResult<Option<CredentialRecord>>;
        credential_by_name(name: &CredentialName) -> StateResult<Option<CredentialRecord>>;
        credentials() -> StateResult<Vec<CredentialRecord>>;
        delivery(c: &CredentialId, a: &AgentId) -> StateResult<Option<DeliveryRow>>;
        deliveries_of_agent(a: &AgentId) -> StateResult<Vec<DeliveryRow>>;
        deliveries() -> StateResult<Vec<DeliveryRow>>;
        envelope(c: &CredentialId, v: u64, a: &AgentId) -> StateResult<Option<(crate::state::OperatorSealed, [u8; 32])>>;
        batch_envelope(b: &uuid::Uuid, a: &AgentId) -> StateResult<Option<crate::state::BatchEnvelopeRecord>>;
        pending(id: &uuid::Uuid) -> StateResult<Option<PendingRewrap>>;
        pendings() -> StateResult<Vec<PendingRewrap>>;
        pendings_of_target(t: &AgentId) -> StateResult<Vec<PendingRewrap>>;
        blocked_until(c: &CredentialId, p: &AgentId) -> StateResult<Option<u64>>;
        alert(key: &str) -> StateResult<Option<Alert>>;
        alerts() -> StateResult<Vec<Alert>>;
        audit() -> StateResult<Vec<AuditEntry>>;
        audit_head() -> StateResult<Option<AuditEntry>>;
        job(id: &uuid::Uuid) -> StateResult<Option<JobRecord>>;
        jobs() -> StateResult<Vec<JobRecord>>;
        revocations() -> StateResult<Option<Signed<RevocationList>>>;
        receipt(c: &CredentialId, a: &AgentId, k: ReceiptKind) -> StateResult<Option<Receipt>>;
        renewal(a: &AgentId) -> StateResult<Option<RenewalRecord>>;
        renewals() -> StateResult<Vec<RenewalRecord>>;
        flush() -> StateResult<()>;
    }

    fn agents(&self) -> StateResult<Vec<AgentRecord>> {
        if self.agents_fail.load(Ordering::SeqCst) {
            return Err(StateError::Backend("injected: a read failed".into()));
        }
        self.inner.agents()
    }

    fn deliveries_of_credential(&self, c: &CredentialId) -> StateResult<Vec<DeliveryRow>> {
        if self.rows_fail.load(Ordering::SeqCst) {
            return Err(StateError::Backend("injected: a read failed".into()));
        }
        self.inner.deliveries_of_credential(c)
    }

    fn apply(&self, batch: &Batch) -> StateResult<()> {
        if self.failing.load(Ordering::SeqCst) {
            return Err(StateError::Backend(
                "injected: the database went away".into(),
            ));
        }
        self.inner.apply(batch)
    }
}

fn failing_world() -> (World, Arc<AtomicBool>) {
    let (w, failing, _) = failing_world_with_reads();
    (w, failing)
}

fn failing_world_with_reads() -> (World, Arc<AtomicBool>, Arc<AtomicBool>) {
    let (w, failing, agents_fail, _) = failing_world_with_row_reads();
    (w, failing, agents_fail)
}

fn failing_world_with_row_reads() -> (World, Arc<AtomicBool>, Arc<AtomicBool>, Arc<AtomicBool>) {
    let failing = Arc::new(AtomicBool::new(false));
    let agents_fail = Arc::new(AtomicBool::new(false));
    let rows_fail = Arc::new(AtomicBool::new(false));
    let (flag, reads, rows) = (failing.clone(), agents_fail.clone(), rows_fail.clone());
    let w = World::over(move |inner| {
        Arc::new(FlakyStore {
            inner,
            failing: flag,
            agents_fail: reads,
            rows_fail: rows,
        })
    });
    (w, failing, agents_fail, rows_fail)
}

/// Registers target-1 (a peer holds `db`) while `failure` is set: nothing of the registration is written or sent
/// and memory agrees with the store; then, cleared, the agent's retry (it retries until acknowledged) does it all,
/// once.
fn a_failed_registration_leaves_nothing_and_its_retry_succeeds(mut w: World, failure: &AtomicBool) {
    let (peer, id, _) = w.seeded_peer("peer-1", "db", "pw");
    let target = w.agent("target-1");
    let audit_before = w.engine.store().audit().unwrap().len();

    failure.store(true, Ordering::SeqCst);
    let out = w.register(&target, RegistrationMode::FirstRegistration, vec![]);
    assert!(out.is_empty(), "a failed event sent {out:?}");
    assert!(w.engine.store().agent(&target).unwrap().is_none());
    assert!(w.engine.store().delivery(&id, &target).unwrap().is_none());
    assert!(w.engine.store().pendings().unwrap().is_empty());
    assert_eq!(w.engine.store().audit().unwrap().len(), audit_before);
    assert_eq!(
        w.engine.in_flight_count(),
        0,
        "memory kept a rewrap the store lost"
    );
    assert_eq!(w.engine.backfill_backlog(), 0);

    failure.store(false, Ordering::SeqCst);
    let out = w.register(&target, RegistrationMode::FirstRegistration, vec![]);
    assert!(
        matches!(out.first().map(|o| &o.msg), Some(Down::RegisterAck(_))),
        "{out:?}"
    );
    let (to, _) = super::tests::rewrap_msg(&out);
    assert_eq!(to, peer);
    assert_eq!(w.engine.store().pendings().unwrap().len(), 1);
    assert_eq!(w.engine.in_flight_count(), 1);
    tessera_proto::audit::verify(&w.engine.store().audit().unwrap()).unwrap();
}

#[test]
fn a_registration_whose_commit_fails_writes_nothing_sends_nothing_and_succeeds_when_retried() {
    let (w, failing) = failing_world();
    a_failed_registration_leaves_nothing_and_its_retry_succeeds(w, &failing);
}

#[test]
fn an_operator_change_whose_commit_fails_is_refused_as_a_state_failure_and_leaves_nothing() {
    let (mut w, failing) = failing_world();
    let a = w.agent("edge-1");
    w.register(&a, RegistrationMode::FirstRegistration, vec![]);
    failing.store(true, Ordering::SeqCst);
    let id = CredentialId::random();
    let (signed, _, _) = w.org.credential(id, 1, "db", Scope::All, "pw");
    let r = w.engine.put_credential(&signed, &[]);
    assert!(matches!(r, Err(OperatorError::State(_))), "{r:?}");
    assert!(w.engine.store().credential(&id).unwrap().is_none());
    assert!(w
        .engine
        .store()
        .deliveries_of_credential(&id)
        .unwrap()
        .is_empty());
    failing.store(false, Ordering::SeqCst);
    w.engine.put_credential(&signed, &[]).unwrap();
    assert!(w.engine.store().credential(&id).unwrap().is_some());
}

#[test]
fn an_operator_change_that_fails_half_way_writes_none_of_what_it_staged_and_can_be_sent_again() {
    let (mut w, _, agents_fail) = failing_world_with_reads();
    let a = w.agent("edge-1");
    w.register(&a, RegistrationMode::FirstRegistration, vec![]);
    let audit_before = w.engine.store().audit().unwrap().len();
    let id = CredentialId::random();
    let (signed, _, _) = w.org.credential(id, 1, "db", Scope::All, "pw");
    // The credential and its audit entry are staged, then reading the agents in scope fails.
    agents_fail.store(true, Ordering::SeqCst);
    let r = w.engine.put_credential(&signed, &[]);
    assert!(matches!(r, Err(OperatorError::State(_))), "{r:?}");
    assert!(w.engine.store().credential(&id).unwrap().is_none());
    assert_eq!(w.engine.store().audit().unwrap().len(), audit_before);
    // Sent again, it is the same change, not a conflict with a half-written first attempt.
    agents_fail.store(false, Ordering::SeqCst);
    w.engine.put_credential(&signed, &[]).unwrap();
    assert!(w.engine.store().delivery(&id, &a).unwrap().is_some());
}

#[test]
fn a_renamed_credential_gives_its_old_name_up_in_the_store() {
    let mut w = World::new();
    let id = CredentialId::random();
    let (v1, _, _) = w.org.credential(id, 1, "old-name", Scope::All, "pw");
    w.engine.put_credential(&v1, &[]).unwrap();
    let (v2, _, _) = w.org.credential(id, 2, "new-name", Scope::All, "pw2");
    w.engine.put_credential(&v2, &[]).unwrap();
    let store = w.engine.store();
    let by = |n: &str| {
        store
            .credential_by_name(&CredentialName::new(n).unwrap())
            .unwrap()
            .map(|c| (c.id, c.version))
    };
    assert_eq!(by("new-name"), Some((id, 2)));
    assert_eq!(
        by("old-name"),
        None,
        "the old name still points at the renamed credential"
    );
}

/// A read that fails half-way through an agent's message ends the event there: nothing it staged before the
/// failure (the agent's record, its rows, the audit entry) is written. The registration stages the agent and its
/// rows, then reads the credential's rows to choose a peer.
#[test]
fn a_registration_whose_read_fails_half_way_leaves_nothing_and_succeeds_when_retried() {
    let (w, _, _, rows_fail) = failing_world_with_row_reads();
    a_failed_registration_leaves_nothing_and_its_retry_succeeds(w, &rows_fail);
}

/// A workload's JIT request whose handling hits a failing store is answered `BACKEND_BUSY` at once, even when
/// nothing can be written: the answer does not wait for a commit.
#[test]
fn a_jit_request_is_answered_busy_while_the_store_fails() {
    let (mut w, failing, _, rows_fail) = failing_world_with_row_reads();
    w.seeded_peer("peer-1", "db", "pw");
    let target = w.agent("target-1");
    w.register(&target, RegistrationMode::FirstRegistration, vec![]);
    // The backfill's dispatch times out (the peer never answers), so the JIT request starts a dispatch of its own.
    w.clock.advance(30_001);
    w.engine.tick();
    assert!(w.engine.store().pendings().unwrap().is_empty());
    let jit = uuid::Uuid::new_v4();
    rows_fail.store(true, Ordering::SeqCst);
    failing.store(true, Ordering::SeqCst);
    let out = w.up(
        &target,
        &tessera_proto::wire::Up::CredentialMissing(tessera_proto::wire::CredentialMissing {
            request_id: jit,
            name: CredentialName::new("db").unwrap(),
        }),
    );
    assert!(
        out.iter()
            .any(|o| matches!(&o.msg, Down::CredentialUnavailable(u)
            if u.request_id == jit && u.reason == tessera_proto::wire::PublicReason::BackendBusy)),
        "{out:?}"
    );
}
