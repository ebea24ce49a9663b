//! The PolicyPCR digest, computed in software (TPM 2.0 Part 3, 23.7) so the unsealer can check that the PCR
//! selection and values stored in a blob are the ones the sealed object's authPolicy was made from.

use sha2::{Digest as _, Sha256};

use crate::tpm_config::PcrBank;

/// TPM_CC_PolicyPCR.
const TPM_CC_POLICY_PCR: u32 = 0x0000_017F;
/// sizeofSelect of the PCR selections this backend makes (24 PCRs).
pub(crate) const SIZE_OF_SELECT: u8 = 3;

/// The marshalled TPML_PCR_SELECTION with one selection: `bank`, the PCRs in `pcrs`.
pub(crate) fn selection_bytes(bank: PcrBank, pcrs: &[u8]) -> Vec<u8> {
    let mut bitmap = [0u8; SIZE_OF_SELECT as usize];
    for &pcr in pcrs {
        if let Some(byte) = bitmap.get_mut(usize::from(pcr / 8)) {
            *byte |= 1 << (pcr % 8);
        }
    }
    let mut out = Vec::with_capacity(10);
    out.extend_from_slice(&1u32.to_be_bytes());
    out.extend_from_slice(&bank.alg_id().to_be_bytes());
    out.push(SIZE_OF_SELECT);
    out.extend_from_slice(&bitmap);
    out
}

/// The SHA-256 policy digest of a policy made of one TPM2_PolicyPCR over `pcrs` of `bank` holding `values`
/// (in ascending PCR order), starting from the empty policy.
pub(crate) fn pcr_policy_digest(bank: PcrBank, pcrs: &[u8], values: &[Vec<u8>]) -> [u8; 32] {
    let mut policy = Sha256::new();
    policy.update([0u8; 32]);
    policy.update(TPM_CC_POLICY_PCR.to_be_bytes());
    policy.update(selection_bytes(bank, pcrs));
    policy.update(pcr_values_digest(values));
    policy.finalize().into()
}

/// SHA-256 of the concatenated PCR values: the pcrDigest TPM2_PolicyPCR takes.
pub(crate) fn pcr_values_digest(values: &[Vec<u8>]) -> [u8; 32] {
    let mut h = Sha256::new();
    for v in values {
        h.update(v);
    }
    h.finalize().into()
}

#[cfg(test)]
mod tests;
