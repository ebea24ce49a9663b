use std::sync::OnceLock;

use super::*;

/// RSA key generation costs ~100 ms; the tests share two keys.
fn keys() -> &'static (WrapPrivateKey, WrapPrivateKey) {
    static KEYS: OnceLock<(WrapPrivateKey, WrapPrivateKey)> = OnceLock::new();
    KEYS.get_or_init(|| {
        (
            WrapPrivateKey::generate().unwrap(),
            WrapPrivateKey::generate().unwrap(),
        )
    })
}

fn sealed(msg: &[u8]) -> Envelope {
    seal(keys().0.public_key(), &SecretBytes::copy_from(msg)).unwrap()
}

fn flip_b64(field: &str, byte: usize) -> String {
    let mut raw = b64::decode(field).unwrap();
    raw[byte] ^= 0x01;
    b64::encode(raw)
}

#[test]
fn round_trip() {
    let env = sealed(br#"{"secret":"hunter2"}"#);
    let opened = open(&keys().0, &env).unwrap();
    opened.expose(|p| assert_eq!(p, br#"{"secret":"hunter2"}"#));
}

#[test]
fn fields_have_the_documented_sizes() {
    let env = sealed(b"0123456789");
    assert_eq!(b64::decode(&env.encrypted_key).unwrap().len(), 256);
    assert_eq!(b64::decode(&env.iv).unwrap().len(), IV_LEN);
    assert_eq!(b64::decode(&env.tag).unwrap().len(), TAG_LEN);
    assert_eq!(
        b64::decode(&env.ciphertext).unwrap().len(),
        10,
        "ciphertext carries no tag"
    );
}

#[test]
fn every_envelope_is_fresh() {
    let a = sealed(b"same");
    let b = sealed(b"same");
    assert_ne!(a.iv, b.iv);
    assert_ne!(a.encrypted_key, b.encrypted_key);
    assert_ne!(a.ciphertext, b.ciphertext);
}

#[test]
fn wrong_key_is_key_unwrap() {
    let env = sealed(b"x");
    assert_eq!(open(&keys().1, &env).unwrap_err(), EnvelopeError::KeyUnwrap);
}

#[test]
fn tampered_encrypted_key_is_key_unwrap() {
    let mut env = sealed(b"x");
    env.encrypted_key = flip_b64(&env.encrypted_key, 100);
    assert_eq!(open(&keys().0, &env).unwrap_err(), EnvelopeError::KeyUnwrap);
}

#[test]
fn tampered_iv_ciphertext_or_tag_fails_authentication() {
    let base = sealed(b"attack at dawn");
    let mut iv = base.clone();
    iv.iv = flip_b64(&iv.iv, 0);
    let mut ct = base.clone();
    ct.ciphertext = flip_b64(&ct.ciphertext, 3);
    let mut tag = base.clone();
    tag.tag = flip_b64(&tag.tag, 15);
    for env in [iv, ct, tag] {
        assert_eq!(
            open(&keys().0, &env).unwrap_err(),
            EnvelopeError::Authentication
        );
    }
}

#[test]
fn swapped_ciphertext_from_another_envelope_fails() {
    let a = sealed(b"aaaa");
    let b = sealed(b"bbbb");
    let mixed = Envelope {
        ciphertext: b.ciphertext,
        ..a
    };
    assert_eq!(
        open(&keys().0, &mixed).unwrap_err(),
        EnvelopeError::Authentication
    );
}

#[test]
fn truncated_fields_report_their_length() {
    let base = sealed(b"x");
    let mut env = base.clone();
    env.iv = b64::encode([0u8; 11]);
    assert_eq!(
        open(&keys().0, &env).unwrap_err(),
        EnvelopeError::FieldLength {
            field: "iv",
            expected: 12,
            actual: 11
        }
    );
    let mut env = base.clone();
    env.tag = b64::encode([0u8; 15]);
    assert!(matches!(
        open(&keys().0, &env),
        Err(EnvelopeError::FieldLength { field: "tag", .. })
    ));
    let mut env = base;
    env.encrypted_key = b64::encode([0u8; 255]);
    assert!(matches!(
        open(&keys().0, &env),
        Err(EnvelopeError::FieldLength {
            field: "encrypted_key",
            ..
        })
    ));
}

#[test]
fn oversized_fields_are_refused_before_decoding() {
    let mut env = sealed(b"x");
    env.ciphertext = "A".repeat(200_000);
    assert!(matches!(
        open(&keys().0, &env),
        Err(EnvelopeError::TooLarge {
            field: "ciphertext",
            ..
        })
    ));
    let mut env = sealed(b"x");
    env.encrypted_key = "A".repeat(10_000);
    assert!(matches!(
        open(&keys().0, &env),
        Err(EnvelopeError::TooLarge {
            field: "encrypted_key",
            ..
        })
    ));
}

#[test]
fn bad_base64_names_the_field() {
    let mut env = sealed(b"x");
    env.tag = "!!not base64!!".into();
    assert_eq!(
        open(&keys().0, &env).unwrap_err(),
        EnvelopeError::Encoding { field: "tag" }
    );
}

#[test]
fn oversized_plaintext_is_refused() {
    let big = SecretBytes::new(vec![0u8; MAX_SECRET_BYTES + 1]);
    assert_eq!(
        seal(keys().0.public_key(), &big).unwrap_err(),
        EnvelopeError::PlaintextTooLarge
    );
}

#[test]
fn wrong_sized_aes_key_is_detected() {
    // A non-conforming sender wraps a 16-byte key: OAEP opens, the length check refuses.
    let public = &keys().0.public_key().key;
    let mut ek = vec![0u8; public.ciphertext_size()];
    let n = public
        .encrypt(&OAEP_SHA256_MGF1SHA256, &[7u8; 16], &mut ek, None)
        .unwrap()
        .len();
    ek.truncate(n);
    let mut env = sealed(b"x");
    env.encrypted_key = b64::encode(ek);
    assert_eq!(
        open(&keys().0, &env).unwrap_err(),
        EnvelopeError::UnwrappedKeyLength { len: 16 }
    );
}

#[test]
fn private_key_round_trips_through_pkcs8() {
    let reloaded = WrapPrivateKey::from_pkcs8_der(keys().0.to_pkcs8_der()).unwrap();
    assert_eq!(
        reloaded.public_key().fingerprint(),
        keys().0.public_key().fingerprint()
    );
    let env = sealed(b"reload");
    open(&reloaded, &env).unwrap();
}

#[test]
fn small_or_non_rsa_keys_are_rejected() {
    assert!(WrapPublicKey::from_spki_der(b"\x30\x03\x02\x01\x00").is_err());
    assert!(WrapPrivateKey::from_pkcs8_der(&SecretBytes::copy_from(b"junk")).is_err());
}

#[test]
fn debug_redacts_private_key() {
    let shown = format!("{:?}", keys().0);
    assert!(shown.contains("REDACTED"));
}
