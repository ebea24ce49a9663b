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
fn small_records_read_back() {
    let dir = tempfile::tempdir().unwrap();
    conformance::small_records_read_back(&opener(&dir));
}
