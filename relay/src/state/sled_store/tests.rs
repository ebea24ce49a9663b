#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use super::SledStore;
use crate::state::conformance;
use crate::state::RelayStore;

fn opener(dir: &tempfile::TempDir) -> impl Fn() -> Arc<dyn RelayStore> + '_ {
    move || Arc::new(SledStore::open(&dir.path().join("state")).unwrap()) as Arc<dyn RelayStore>
}

#[test]
fn rows_and_in_flight_records_survive_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    conformance::rows_and_in_flight_records_survive_a_reopen(&opener(&dir));
}

#[test]
fn the_audit_chain_continues_and_a_stale_batch_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    conformance::the_audit_chain_continues_and_a_stale_batch_writes_nothing(&opener(&dir));
}

#[test]
fn operator_envelopes_single_and_batched_survive_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    conformance::operator_envelopes_single_and_batched_survive_a_reopen(&opener(&dir));
}

#[test]
fn small_records_read_back() {
    let dir = tempfile::tempdir().unwrap();
    conformance::small_records_read_back(&opener(&dir));
}

#[test]
fn a_batch_interrupted_after_its_redo_record_is_finished_at_the_next_open() {
    use tessera_proto::ids::{AgentId, CredentialId};

    use crate::state::{DeliveryRow, Write};

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state");
    let (a, c) = (AgentId::new("edge-a").unwrap(), CredentialId::random());
    let row = DeliveryRow::pending(c, a.clone(), 1, 0);
    let entry =
        tessera_proto::audit::next_entry(None, 1, "one", None, std::collections::BTreeMap::new());
    {
        let s = SledStore::open(&path).unwrap();
        // The crash: the redo record is written, none of the batch's records are.
        let ops = [
            SledStore::encode(&Write::Delivery(row.clone())).unwrap(),
            SledStore::encode(&Write::Audit(entry.clone())).unwrap(),
        ];
        s.meta
            .insert(super::REDO_KEY, super::redo::encode(&ops))
            .unwrap();
        s.flush().unwrap();
    }
    let s = SledStore::open(&path).unwrap();
    assert_eq!(s.deliveries_of_agent(&a).unwrap(), [row]);
    assert_eq!(s.audit_head().unwrap(), Some(entry));
    assert!(s.meta.get(super::REDO_KEY).unwrap().is_none());
}
