#![allow(clippy::unwrap_used, clippy::cast_possible_truncation)]

use super::*;

fn keys(active: u32, retiring: Option<u32>) -> StoreKeys {
    StoreKeys {
        active: (active, SecretBytes::new(vec![active as u8; 32])),
        retiring: retiring.map(|g| (g, SecretBytes::new(vec![g as u8; 32]))),
    }
}

#[test]
fn opens_both_generations_and_writes_only_the_active_one() {
    let old = Keyring::new(&keys(1, None)).unwrap();
    let rec_old = old.seal(b"k", 1, b"v1").unwrap();
    let ring = Keyring::new(&keys(2, Some(1))).unwrap();
    assert_eq!(ring.open(b"k", &rec_old).unwrap().1.as_slice(), b"v1");
    assert!(ring.is_stale(&rec_old));
    let fresh = ring.reseal(b"k", &rec_old).unwrap();
    assert!(!ring.is_stale(&fresh));
    assert_eq!(generation_of(&fresh), Some(2));
    assert_eq!(
        ring.open(b"k", &fresh).unwrap(),
        (1, zeroize::Zeroizing::new(b"v1".to_vec()))
    );
}

#[test]
fn begin_and_finish() {
    let mut ring = Keyring::new(&keys(1, None)).unwrap();
    let rec = ring.seal(b"k", 0, b"v").unwrap();
    // Not backwards, not the same generation.
    assert!(ring
        .begin(RecordCipher::new(1, &SecretBytes::new(vec![9; 32])).unwrap())
        .is_none());
    ring.begin(RecordCipher::new(2, &SecretBytes::new(vec![2; 32])).unwrap())
        .unwrap();
    assert_eq!(
        (ring.active_generation(), ring.retiring_generation()),
        (2, Some(1))
    );
    // Only one rotation at a time.
    assert!(ring
        .begin(RecordCipher::new(3, &SecretBytes::new(vec![3; 32])).unwrap())
        .is_none());
    assert!(ring.open(b"k", &rec).is_ok());
    ring.finish();
    assert_eq!(
        ring.open(b"k", &rec),
        Err(RecordFault::UnknownGeneration(1))
    );
}

#[test]
fn refuses_two_copies_of_one_generation() {
    assert!(Keyring::new(&keys(2, Some(2))).is_none());
}
