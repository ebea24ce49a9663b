#![allow(clippy::unwrap_used, clippy::expect_used)]

use tessera_proto::cert::{CertSerial, OrgCa, Validity};
use tessera_proto::statement::RevocationList;

use super::{newest, read_dir_copy, write_dir_copy, RevocationsError};

fn ca() -> OrgCa {
    OrgCa::generate("Test Org", Validity::days_from(1_700_000_000, 365)).unwrap()
}

fn list(serial: u64) -> RevocationList {
    RevocationList::new(
        serial,
        1_700_000_000,
        [CertSerial::from_bytes(&serial.to_be_bytes())],
    )
}

#[test]
fn the_copy_round_trips_and_a_missing_one_is_none() {
    let dir = tempfile::tempdir().unwrap();
    let ca = ca();
    assert_eq!(read_dir_copy(dir.path(), ca.pinned()).unwrap(), None);
    write_dir_copy(dir.path(), &list(3).sign(&ca).unwrap()).unwrap();
    assert_eq!(
        read_dir_copy(dir.path(), ca.pinned()).unwrap(),
        Some(list(3))
    );
}

#[test]
fn a_copy_signed_by_another_ca_is_an_error_not_an_empty_list() {
    let dir = tempfile::tempdir().unwrap();
    write_dir_copy(dir.path(), &list(3).sign(&ca()).unwrap()).unwrap();
    assert!(matches!(
        read_dir_copy(dir.path(), ca().pinned()),
        Err(RevocationsError::File { .. })
    ));
}

#[test]
fn the_higher_serial_wins_from_either_side() {
    assert_eq!(newest(Some(list(2)), Some(list(5))), list(5));
    assert_eq!(newest(Some(list(5)), Some(list(2))), list(5));
    assert_eq!(newest(None, Some(list(2))), list(2));
    assert_eq!(newest(Some(list(2)), None), list(2));
    assert_eq!(newest(None, None), RevocationList::empty());
}
