use super::*;

#[test]
fn selection_marshalling() {
    assert_eq!(
        selection_bytes(PcrBank::Sha256, &[0, 2, 4, 7, 16, 23]),
        vec![0, 0, 0, 1, 0x00, 0x0B, 3, 0b1001_0101, 0, 0b1000_0001]
    );
    assert_eq!(
        selection_bytes(PcrBank::Sha1, &[]),
        vec![0, 0, 0, 1, 0, 4, 3, 0, 0, 0]
    );
}

#[test]
fn policy_digest_depends_on_every_input() {
    let values = vec![vec![0u8; 32], vec![1u8; 32]];
    let base = pcr_policy_digest(PcrBank::Sha256, &[0, 7], &values);
    assert_ne!(base, pcr_policy_digest(PcrBank::Sha256, &[0, 8], &values));
    assert_ne!(base, pcr_policy_digest(PcrBank::Sha384, &[0, 7], &values));
    let mut other = values.clone();
    other[1][31] ^= 1;
    assert_ne!(base, pcr_policy_digest(PcrBank::Sha256, &[0, 7], &other));
    assert_eq!(base, pcr_policy_digest(PcrBank::Sha256, &[0, 7], &values));
    assert_eq!(pcr_values_digest(&values), {
        let mut h = Sha256::new();
        h.update([0u8; 32]);
        h.update([1u8; 32]);
        <[u8; 32]>::from(h.finalize())
    });
}
