#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use super::*;

fn sample(primary: PrimarySpec, pcrs: Vec<u8>) -> SealedBlob {
    SealedBlob {
        primary,
        bank: PcrBank::Sha256,
        pcr_values: pcrs.iter().map(|&p| vec![p; 32]).collect(),
        pcrs,
        public: vec![1, 2, 3],
        private: vec![4, 5, 6, 7],
    }
}

#[test]
fn round_trips() {
    for blob in [
        sample(PrimarySpec::Template, vec![]),
        sample(PrimarySpec::Template, vec![0, 7, 23]),
        sample(PrimarySpec::Persistent(0x8100_0001), vec![16]),
    ] {
        let bytes = blob.encode().unwrap();
        assert_eq!(&bytes[..4], b"TPM1");
        assert_eq!(SealedBlob::decode(&bytes).unwrap(), blob);
    }
}

#[test]
fn layout_is_as_documented() {
    let bytes = sample(PrimarySpec::Persistent(0x8100_0001), vec![16])
        .encode()
        .unwrap();
    let mut expected = b"TPM1".to_vec();
    expected.extend_from_slice(&[1, 0x81, 0, 0, 1, 0x00, 0x0B, 1, 16]);
    expected.extend_from_slice(&[16; 32]);
    expected.extend_from_slice(&[0, 3, 1, 2, 3, 0, 4, 4, 5, 6, 7]);
    assert_eq!(bytes, expected);
}

#[test]
fn refuses_malformed() {
    let good = sample(PrimarySpec::Template, vec![0, 7]).encode().unwrap();
    // Every truncation and any trailing byte.
    for n in 0..good.len() {
        assert!(SealedBlob::decode(&good[..n]).is_none(), "truncated at {n}");
    }
    let mut long = good.clone();
    long.push(0);
    assert!(SealedBlob::decode(&long).is_none());
    // Unknown primary kind, unknown bank, descending or duplicate or out-of-range PCRs.
    let mut bad = good.clone();
    bad[4] = 2;
    assert!(SealedBlob::decode(&bad).is_none());
    let mut bad = good.clone();
    bad[6] = 0x12;
    assert!(SealedBlob::decode(&bad).is_none());
    for pcrs in [[7u8, 0], [7, 7], [0, 24]] {
        let mut bad = good.clone();
        bad[8..10].copy_from_slice(&pcrs);
        assert!(SealedBlob::decode(&bad).is_none(), "{pcrs:?}");
    }
    // Mismatched values are not encodable.
    let mut blob = sample(PrimarySpec::Template, vec![1]);
    blob.pcr_values[0].pop();
    assert!(blob.encode().is_none());
}
