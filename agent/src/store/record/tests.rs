#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

use super::*;

fn cipher(generation: u32, byte: u8) -> RecordCipher {
    RecordCipher::new(generation, &SecretBytes::new(vec![byte; 32])).unwrap()
}

#[test]
fn each_generation_has_its_format_and_round_trips() {
    for generation in [0u32, 1, 7, u32::MAX] {
        let c = cipher(generation, 3);
        let rec = c.seal(b"cred/x", 5, b"secret").unwrap();
        assert_eq!(rec[0], if generation == 0 { 1 } else { 2 });
        assert_eq!(generation_of(&rec), Some(generation));
        let (v, plain) = c.open(b"cred/x", &rec).unwrap();
        assert_eq!((v, plain.as_slice()), (5, &b"secret"[..]));
    }
}

#[test]
fn the_generation_is_authenticated() {
    // The same key under two generation numbers: a record re-labelled with another generation does not open.
    let g1 = cipher(1, 3);
    let g2 = cipher(2, 3);
    let mut rec = g1.seal(b"cred/x", 5, b"secret").unwrap();
    rec[1..5].copy_from_slice(&2u32.to_be_bytes());
    assert_eq!(g2.open(b"cred/x", &rec), Err(RecordFault::Authentication));
    // A format-2 record claiming generation 0 is malformed, not silently read as format 1.
    rec[1..5].copy_from_slice(&0u32.to_be_bytes());
    assert_eq!(generation_of(&rec), None);
}

#[test]
fn another_generation_is_named_not_guessed() {
    let rec = cipher(1, 3).seal(b"k", 0, b"v").unwrap();
    assert_eq!(
        cipher(2, 3).open(b"k", &rec),
        Err(RecordFault::UnknownGeneration(1))
    );
}

#[test]
fn key_and_version_stay_bound() {
    let c = cipher(4, 9);
    let rec = c.seal(b"cred/a", 2, b"v").unwrap();
    assert_eq!(c.open(b"cred/b", &rec), Err(RecordFault::Authentication));
    let mut older = rec.clone();
    older[5..13].copy_from_slice(&1u64.to_be_bytes());
    assert_eq!(c.open(b"cred/a", &older), Err(RecordFault::Authentication));
    for len in [0, 1, 5, 13, 13 + 12 + 15] {
        assert!(c.open(b"cred/a", &rec[..len]).is_err(), "{len}");
    }
}

#[test]
fn legacy_records_still_open() {
    // A record written by the format-1 code before store-key rotation: `1 ‖ version ‖ nonce ‖ ct` under the v1 AAD.
    use aes_gcm::aead::{Aead, KeyInit, Payload};
    let key = [5u8; 32];
    let nonce = [1u8; 12];
    let mut aad = b"tessera/store-record/v1\0".to_vec();
    aad.extend_from_slice(&6u32.to_be_bytes());
    aad.extend_from_slice(b"cred/x");
    aad.extend_from_slice(&3u64.to_be_bytes());
    let ct = aes_gcm::Aes256Gcm::new((&key).into())
        .encrypt(
            (&nonce).into(),
            Payload {
                msg: b"old",
                aad: &aad,
            },
        )
        .unwrap();
    let mut rec = vec![1u8];
    rec.extend_from_slice(&3u64.to_be_bytes());
    rec.extend_from_slice(&nonce);
    rec.extend_from_slice(&ct);
    let (v, plain) = cipher(0, 5).open(b"cred/x", &rec).unwrap();
    assert_eq!((v, plain.as_slice()), (3, &b"old"[..]));
}
