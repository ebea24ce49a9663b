//! The PostgreSQL backend on the machine's server, each test in a database of its own.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use tessera_system_tests::pg::TestDb;

use super::{PgConfig, PgStore};
use crate::state::conformance;
use crate::state::{RelayStore, StateError};

fn config(db: &TestDb) -> PgConfig {
    PgConfig {
        url: db.url().to_owned(),
        connect_timeout_ms: 2_000,
        ..PgConfig::default()
    }
}

fn opener(db: &TestDb) -> impl Fn() -> Arc<dyn RelayStore> + '_ {
    move || Arc::new(PgStore::open(&config(db)).unwrap()) as Arc<dyn RelayStore>
}

#[test]
fn rows_and_in_flight_records_survive_a_reopen() {
    let db = TestDb::create().unwrap();
    conformance::rows_and_in_flight_records_survive_a_reopen(&opener(&db));
}

#[test]
fn the_audit_chain_continues_and_a_stale_batch_writes_nothing() {
    let db = TestDb::create().unwrap();
    conformance::the_audit_chain_continues_and_a_stale_batch_writes_nothing(&opener(&db));
}

#[test]
fn operator_envelopes_single_and_batched_survive_a_reopen() {
    let db = TestDb::create().unwrap();
    conformance::operator_envelopes_single_and_batched_survive_a_reopen(&opener(&db));
}

#[test]
fn small_records_read_back() {
    let db = TestDb::create().unwrap();
    conformance::small_records_read_back(&opener(&db));
}

#[test]
fn the_database_refuses_to_rewrite_or_delete_the_audit_trail() {
    let db = TestDb::create().unwrap();
    let store = opener(&db)();
    let e = tessera_proto::audit::next_entry(
        None,
        1,
        "one",
        None,
        std::collections::BTreeMap::default(),
    );
    store
        .apply(&crate::state::Batch(vec![crate::state::Write::Audit(e)]))
        .unwrap();
    for sql in [
        "UPDATE audit SET entry = '{}'::jsonb",
        "DELETE FROM audit",
        "TRUNCATE audit",
    ] {
        let err = db.execute(sql).expect_err(sql).to_string();
        assert!(err.contains("append-only"), "{sql}: {err}");
    }
    assert_eq!(store.audit().unwrap().len(), 1);
}

#[test]
fn relays_sharing_a_database_write_in_turns_and_each_sees_the_others_writes() {
    use crate::state::{Batch, Write};
    use tessera_proto::audit::next_entry;

    let db = TestDb::create().unwrap();
    let first = PgStore::open(&config(&db)).unwrap();
    let second = PgStore::open(&config(&db)).unwrap();
    let entry = |prev: Option<&tessera_proto::audit::AuditEntry>, kind: &str| {
        next_entry(prev, 1, kind, None, std::collections::BTreeMap::new())
    };
    // Nobody wrote since either opened.
    assert!(!first.begin_turn().unwrap());
    let one = entry(None, "one");
    first
        .apply(&Batch(vec![Write::Audit(one.clone())]))
        .unwrap();
    first.end_turn();
    // The second's turn shows the first wrote, and reads the chain's head again: its batch follows it.
    assert!(second.begin_turn().unwrap());
    assert_eq!(second.audit_head().unwrap(), Some(one.clone()));
    let two = entry(Some(&one), "two");
    second
        .apply(&Batch(vec![Write::Audit(two.clone())]))
        .unwrap();
    second.end_turn();
    assert!(first.begin_turn().unwrap());
    assert!(
        !first.begin_turn().unwrap(),
        "a turn held is not taken twice"
    );
    first.end_turn();
    assert!(!first.begin_turn().unwrap(), "nobody wrote since");
    first.end_turn();
    // A batch applied outside a turn takes one of its own, and is refused when it was built on what another
    // relay has since changed.
    let three = entry(Some(&two), "three");
    second
        .apply(&Batch(vec![Write::Audit(three.clone())]))
        .unwrap();
    let stale = entry(Some(&two), "stale");
    match first.apply(&Batch(vec![Write::Audit(stale)])) {
        Err(StateError::Conflict(_)) => {}
        other => panic!("a batch built before another relay wrote was applied: {other:?}"),
    }
    assert_eq!(first.audit().unwrap(), [one, two, three]);
}

#[test]
fn a_turn_waits_for_the_relay_holding_it() {
    let db = TestDb::create().unwrap();
    let first = Arc::new(PgStore::open(&config(&db)).unwrap());
    let second = PgStore::open(&config(&db)).unwrap();
    first.begin_turn().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let waiter = std::thread::spawn(move || {
        second.begin_turn().unwrap();
        tx.send(()).unwrap();
        second.end_turn();
    });
    assert!(
        rx.recv_timeout(std::time::Duration::from_millis(300))
            .is_err(),
        "two relays held the write turn at once"
    );
    first.end_turn();
    rx.recv_timeout(std::time::Duration::from_secs(10)).unwrap();
    waiter.join().unwrap();
}

#[test]
fn a_bad_url_or_an_unreachable_server_is_a_clear_error() {
    let bad = PgStore::open(&PgConfig {
        url: "not a url at all ::".into(),
        ..PgConfig::default()
    });
    assert!(
        matches!(bad, Err(StateError::Backend(ref m)) if m.contains("url")),
        "{bad:?}"
    );
    let port = tessera_system_tests::broker::free_port().unwrap();
    let down = PgStore::open(&PgConfig {
        url: format!("postgres://tessera@127.0.0.1:{port}/tessera"),
        connect_timeout_ms: 500,
        ..PgConfig::default()
    });
    assert!(matches!(down, Err(StateError::Backend(_))), "{down:?}");
}

#[test]
fn after_the_server_drops_its_sessions_the_relay_writes_again() {
    use crate::state::{Batch, Write};
    use tessera_proto::audit::next_entry;

    let db = TestDb::create().unwrap();
    let store = PgStore::open(&config(&db)).unwrap();
    let one = next_entry(None, 1, "one", None, std::collections::BTreeMap::new());
    store
        .apply(&Batch(vec![Write::Audit(one.clone())]))
        .unwrap();
    // A server restart, as the relay sees it: every session of its database is gone.
    db.execute(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE datname = current_database() AND pid <> pg_backend_pid()",
    )
    .unwrap();
    let two = next_entry(
        Some(&one),
        2,
        "two",
        None,
        std::collections::BTreeMap::new(),
    );
    // A write may fail on a connection that died under it; the next ones reconnect.
    let mut written = false;
    for _ in 0..20 {
        if store.apply(&Batch(vec![Write::Audit(two.clone())])).is_ok() {
            written = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(
        written,
        "the relay never wrote again after its sessions were dropped"
    );
    assert_eq!(store.audit().unwrap(), [one, two]);
}

#[test]
fn a_turn_after_another_relay_wrote_reads_fresh_records_and_a_batch_on_a_moved_epoch_is_refused() {
    use crate::state::{Batch, DeliveryState, Write};
    use tessera_proto::ids::{AgentId, CredentialId};

    let db = TestDb::create().unwrap();
    let a = PgStore::open(&config(&db)).unwrap();
    let b = PgStore::open(&config(&db)).unwrap();
    let (c, t) = (CredentialId::random(), AgentId::new("edge-1").unwrap());
    let state = |s: &PgStore| s.delivery(&c, &t).unwrap().unwrap().state;
    let write =
        |s: &PgStore, st| s.apply(&Batch(vec![Write::Delivery(conformance::row(c, &t, st))]));
    // A writes a row and reads it during its turn: cached.
    a.begin_turn().unwrap();
    write(&a, DeliveryState::Pending).unwrap();
    assert_eq!(state(&a), DeliveryState::Pending);
    a.end_turn();
    // B changes it.
    assert!(b.begin_turn().unwrap());
    write(&b, DeliveryState::Stored).unwrap();
    b.end_turn();
    // A's next turn reads B's version, not the one it cached.
    assert!(a.begin_turn().unwrap());
    assert_eq!(state(&a), DeliveryState::Stored);
    // The epoch moves under A's turn (another relay's write that committed late, after A's turn began): A's batch
    // was built on what that write changed, and is refused whole.
    db.execute("UPDATE write_epoch SET n = n + 1").unwrap();
    match write(&a, DeliveryState::Pending) {
        Err(StateError::Conflict(_)) => {}
        other => panic!("a batch on a moved epoch was applied: {other:?}"),
    }
    a.end_turn();
    assert_eq!(state(&b), DeliveryState::Stored);
}

#[test]
fn each_connected_replica_status_is_listed_and_a_departed_one_is_not() {
    let db = TestDb::create().unwrap();
    let a = PgStore::open_as(&config(&db), "relay-a").unwrap();
    let b = PgStore::open_as(&config(&db), "relay-b").unwrap();
    // A name longer than what the server keeps of a session's application_name (63 bytes with the prefix).
    let long = format!("relay-c-{}", "x".repeat(56));
    let c = PgStore::open_as(&config(&db), &long).unwrap();
    let status = |name: &str, degraded: bool| serde_json::json!({ "replica": name, "backend": "redis", "degraded": degraded });
    a.record_replica_status("relay-a", &status("relay-a", false))
        .unwrap();
    b.record_replica_status("relay-b", &status("relay-b", false))
        .unwrap();
    c.record_replica_status(&long, &status(&long, false))
        .unwrap();
    // A change replaces the replica's row.
    b.record_replica_status("relay-b", &status("relay-b", true))
        .unwrap();
    assert_eq!(
        a.replica_statuses().unwrap(),
        Some(vec![
            status("relay-a", false),
            status("relay-b", true),
            status(&long, false)
        ])
    );
    drop(c);
    // relay-b's sessions end: its row stays, but it is no longer listed.
    drop(b);
    let mut listed = None;
    for _ in 0..50 {
        listed = a.replica_statuses().unwrap();
        if listed.as_ref().is_some_and(|l| l.len() == 1) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert_eq!(listed, Some(vec![status("relay-a", false)]));
}
