use super::*;

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

#[derive(serde::Deserialize)]
struct Vector {
    salt_hex: String,
    credential_id: String,
    version: u64,
    payload: String,
    canonical: String,
    commitment_hex: String,
}

#[derive(serde::Deserialize)]
struct Vectors {
    vectors: Vec<Vector>,
}

/// The vectors were produced by an independent Python implementation (`testdata/interop.py vectors`).
#[test]
fn published_vectors_match() {
    let file: Vectors =
        serde_json::from_str(include_str!("../../testdata/commitment_vectors.json")).unwrap();
    assert!(file.vectors.len() >= 4);
    for v in file.vectors {
        let salt = Salt(unhex(&v.salt_hex).try_into().unwrap());
        let id: CredentialId = v.credential_id.parse().unwrap();
        let payload = SecretPayload::from_json(v.payload.as_bytes()).unwrap();
        payload.expose(|p| assert_eq!(p, v.canonical.as_bytes(), "canonical form"));
        let expected = Commitment(unhex(&v.commitment_hex).try_into().unwrap());
        assert_eq!(
            compute(&salt, &id, v.version, &payload),
            expected,
            "{}",
            v.credential_id
        );
        verify(&salt, &id, v.version, &payload, &expected).unwrap();
    }
}

fn fixture() -> (Salt, CredentialId, SecretPayload) {
    (
        Salt([7; 32]),
        CredentialId::random(),
        SecretPayload::from_plain_text("s3cret").unwrap(),
    )
}

#[test]
fn binds_every_input() {
    let (salt, id, payload) = fixture();
    let c = compute(&salt, &id, 3, &payload);
    assert_eq!(verify(&salt, &id, 3, &payload, &c), Ok(()));
    // Another plaintext, id, version or salt: each a mismatch.
    let other = SecretPayload::from_plain_text("s3cret!").unwrap();
    assert_eq!(verify(&salt, &id, 3, &other, &c), Err(CommitmentMismatch));
    assert_eq!(
        verify(&salt, &CredentialId::random(), 3, &payload, &c),
        Err(CommitmentMismatch)
    );
    assert_eq!(verify(&salt, &id, 2, &payload, &c), Err(CommitmentMismatch));
    assert_eq!(
        verify(&Salt([8; 32]), &id, 3, &payload, &c),
        Err(CommitmentMismatch)
    );
}

#[test]
fn encoding_is_injective_across_field_boundaries() {
    // Moving bytes between the id and the plaintext must change the commitment.
    let salt = Salt([1; 32]);
    let a = compute_raw(&salt, "ab", 1, b"c");
    let b = compute_raw(&salt, "a", 1, b"bc");
    assert_ne!(a, b);
}

#[test]
fn salts_are_random() {
    assert_ne!(Salt::random(), Salt::random());
}
