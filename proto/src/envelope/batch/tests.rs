use super::*;
use crate::envelope::WrapPrivateKey;

fn payload(text: &str) -> SecretBytes {
    SecretBytes::copy_from(text.as_bytes())
}

#[test]
fn a_sealed_batch_opens_to_its_items_in_order() {
    let key = WrapPrivateKey::generate().unwrap();
    let (a, b) = (CredentialId::random(), CredentialId::random());
    let (pa, pb) = (payload(r#"{"a":1}"#), payload(r#"{"b":"two"}"#));
    let env = seal(key.public_key(), &[(a, 3, &pa), (b, 1, &pb)]).unwrap();
    let items = open(&key, &env).unwrap();
    assert_eq!(items.len(), 2);
    assert_eq!((items[0].credential_id, items[0].version), (a, 3));
    assert!(items[0].payload.ct_eq(&pa));
    assert_eq!((items[1].credential_id, items[1].version), (b, 1));
    assert!(items[1].payload.ct_eq(&pb));
}

#[test]
fn a_batch_sealed_to_another_key_does_not_open() {
    let key = WrapPrivateKey::generate().unwrap();
    let other = WrapPrivateKey::generate().unwrap();
    let p = payload("{}");
    let env = seal(other.public_key(), &[(CredentialId::random(), 1, &p)]).unwrap();
    assert_eq!(
        open(&key, &env).unwrap_err(),
        BatchError::Envelope(EnvelopeError::KeyUnwrap)
    );
}

#[test]
fn encode_refuses_empty_oversized_duplicate_and_version_zero() {
    let p = payload("{}");
    let id = CredentialId::random();
    assert_eq!(encode(&[]).unwrap_err(), BatchError::Count);
    let many: Vec<_> = (0..=MAX_BATCH_ITEMS)
        .map(|_| (CredentialId::random(), 1, &p))
        .collect();
    assert_eq!(encode(&many).unwrap_err(), BatchError::Count);
    assert_eq!(
        encode(&[(id, 1, &p), (id, 2, &p)]).unwrap_err(),
        BatchError::Duplicate
    );
    assert!(matches!(
        encode(&[(id, 0, &p)]).unwrap_err(),
        BatchError::Malformed(_)
    ));
    let big = SecretBytes::new(vec![b'x'; MAX_SECRET_BYTES]);
    let large: Vec<_> = (0..9).map(|_| (CredentialId::random(), 1, &big)).collect();
    assert_eq!(encode(&large).unwrap_err(), BatchError::TooLarge);
}

#[test]
fn decode_refuses_every_malformed_plaintext() {
    let p = payload(r#"{"k":"v"}"#);
    let (a, b) = (CredentialId::random(), CredentialId::random());
    let good = encode(&[(a, 1, &p), (b, 2, &p)])
        .unwrap()
        .expose(<[u8]>::to_vec);
    assert_eq!(decode(&SecretBytes::copy_from(&good)).unwrap().len(), 2);

    let mut trailing = good.clone();
    trailing.push(0);
    let mut bad_magic = good.clone();
    bad_magic[0] = b'X';
    let mut zero_count = good.clone();
    zero_count[4..6].copy_from_slice(&0u16.to_be_bytes());
    let mut too_many = good.clone();
    too_many[4..6].copy_from_slice(&3u16.to_be_bytes());
    let mut version_zero = good.clone();
    version_zero[6 + 16..6 + 24].copy_from_slice(&0u64.to_be_bytes());
    let mut huge_len = good.clone();
    huge_len[6 + 24..6 + 28].copy_from_slice(&u32::MAX.to_be_bytes());
    let mut duplicate = good.clone();
    let second = 6 + ITEM_HEADER + p.len();
    duplicate[second..second + 16].copy_from_slice(a.uuid().as_bytes());
    for (case, bytes) in [
        ("trailing byte", trailing),
        ("bad magic", bad_magic),
        ("count 0", zero_count),
        ("count larger than the items", too_many),
        ("version 0", version_zero),
        ("length past the end", huge_len),
        ("a credential twice", duplicate),
        ("truncated", good[..good.len() - 1].to_vec()),
        ("empty", Vec::new()),
    ] {
        assert!(
            decode(&SecretBytes::new(bytes)).is_err(),
            "{case} was accepted"
        );
    }
}
