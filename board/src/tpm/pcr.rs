//! PCRs: reading the policy's PCRs, the trial policy at seal time, the real policy session at unseal time.

use tss_esapi::abstraction::pcr::read_all;
use tss_esapi::constants::SessionType;
use tss_esapi::handles::KeyHandle;
use tss_esapi::interface_types::algorithm::HashingAlgorithm;
use tss_esapi::interface_types::session_handles::{AuthSession, PolicySession};
use tss_esapi::structures::{
    Digest, PcrSelectSize, PcrSelectionList, PcrSelectionListBuilder, PcrSlot,
};
use tss_esapi::{Context, Error, Result, WrapperErrorKind};

use super::policy::pcr_values_digest;
use super::session::{flush_session, start};
use crate::tpm_config::PcrBank;

fn hashing_algorithm(bank: PcrBank) -> HashingAlgorithm {
    match bank {
        PcrBank::Sha1 => HashingAlgorithm::Sha1,
        PcrBank::Sha256 => HashingAlgorithm::Sha256,
        PcrBank::Sha384 => HashingAlgorithm::Sha384,
    }
}

fn slot(pcr: u8) -> Result<PcrSlot> {
    PcrSlot::try_from(1u32.checked_shl(u32::from(pcr)).unwrap_or(0))
}

/// The TPM selection of `pcrs` in `bank` (3-octet select, matching [`super::policy::selection_bytes`]).
pub(crate) fn selection(bank: PcrBank, pcrs: &[u8]) -> Result<PcrSelectionList> {
    let slots = pcrs.iter().map(|&p| slot(p)).collect::<Result<Vec<_>>>()?;
    PcrSelectionListBuilder::new()
        .with_size_of_select(PcrSelectSize::ThreeOctets)
        .with_selection(hashing_algorithm(bank), &slots)
        .build()
}

/// The current values of `pcrs` (ascending) in `bank`, in the order of `pcrs`. Fails if the TPM does not have
/// the bank allocated.
pub(crate) fn read(ctx: &mut Context, bank: PcrBank, pcrs: &[u8]) -> Result<Vec<Vec<u8>>> {
    let data = ctx.execute_without_session(|c| read_all(c, selection(bank, pcrs)?))?;
    let missing = || Error::WrapperError(WrapperErrorKind::WrongValueFromTpm);
    let bank_data = data.pcr_bank(hashing_algorithm(bank)).ok_or_else(missing)?;
    pcrs.iter()
        .map(|&p| {
            let value = bank_data.get_digest(slot(p)?).ok_or_else(missing)?;
            if value.len() == bank.digest_len() {
                Ok(value.value().to_vec())
            } else {
                Err(missing())
            }
        })
        .collect()
}

/// The policy digest of "these PCRs hold these values", computed by the TPM in a trial session.
pub(crate) fn trial_policy(
    ctx: &mut Context,
    bank: PcrBank,
    pcrs: &[u8],
    values: &[Vec<u8>],
) -> Result<Digest> {
    let session = start(ctx, None, SessionType::Trial, false)?;
    let result = (|| {
        let policy = PolicySession::try_from(session)?;
        let pcr_digest = Digest::try_from(pcr_values_digest(values).to_vec())?;
        ctx.execute_without_session(|c| {
            c.policy_pcr(policy, pcr_digest, selection(bank, pcrs)?)?;
            c.policy_get_digest(policy)
        })
    })();
    flush_session(ctx, session);
    result
}

/// Starts a policy session salted with `salt_key` and satisfies "the PCRs hold the values they held at seal
/// time" against the TPM's current PCRs. The caller uses it to authorise the unseal and flushes it.
pub(crate) fn policy_session(
    ctx: &mut Context,
    salt_key: KeyHandle,
    bank: PcrBank,
    pcrs: &[u8],
) -> Result<AuthSession> {
    let session = start(ctx, Some(salt_key), SessionType::Policy, true)?;
    let satisfied = PolicySession::try_from(session).and_then(|policy| {
        ctx.execute_without_session(|c| {
            c.policy_pcr(policy, Digest::default(), selection(bank, pcrs)?)
        })
    });
    match satisfied {
        Ok(()) => Ok(session),
        Err(e) => {
            flush_session(ctx, session);
            Err(e)
        }
    }
}
