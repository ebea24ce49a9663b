use super::*;

#[test]
fn an_envelope_kept_before_operator_batches_reads_as_a_single_envelope() {
    // The form both backends wrote before `batch` existed.
    let old = r#"{"envelope":{"encrypted_key":"a2V5","iv":"aXY=","ciphertext":"Y3Q=","tag":"dGFn"},"key":[7,7,7,7,7,7,7,7,7,7,7,7,7,7,7,7,7,7,7,7,7,7,7,7,7,7,7,7,7,7,7,7]}"#;
    let stored: StoredSealed = serde_json::from_str(old).unwrap();
    match stored.into_sealed() {
        Some((OperatorSealed::Envelope(e), key)) => {
            assert_eq!((e.ciphertext.as_str(), key), ("Y3Q=", [7; 32]));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_batch_item_is_kept_as_a_reference_without_an_envelope() {
    let batch = uuid::Uuid::new_v4();
    let json = serde_json::to_string(&StoredSealed::new(&OperatorSealed::InBatch(batch), [1; 32]))
        .unwrap();
    assert!(!json.contains("envelope"), "{json}");
    let back: StoredSealed = serde_json::from_str(&json).unwrap();
    assert!(matches!(back.into_sealed(), Some((OperatorSealed::InBatch(b), _)) if b == batch));
    // Neither form: not a record this relay wrote.
    let neither: StoredSealed = serde_json::from_str(
        r#"{"key":[0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0]}"#,
    )
    .unwrap();
    assert!(neither.into_sealed().is_none());
}
