//! Mapping tss-esapi errors to [`SealError`], in one place.
//!
//! The mapping depends on the response code and on the stage that failed: a TPM_RC_HANDLE while opening the
//! persistent primary means the primary is missing, while any format error while loading a blob means the blob
//! is not ours (altered, or sealed by another TPM) and is reported as [`SealError::Unseal`] like every backend.

use tss_esapi::constants::response_code::Tss2ResponseCodeKind as Kind;
use tss_esapi::Error;

use crate::sealer::SealError;

/// What the sealer was doing when the TSS reported an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stage {
    /// Creating the template primary (owner hierarchy auth) or opening the persistent one.
    Primary,
    /// Reading PCRs, computing the policy, creating the sealed object.
    Seal,
    /// Loading a blob's object under the primary.
    Load,
    /// Satisfying the policy and unsealing.
    Unseal,
}

/// What an error means to the operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Class {
    /// TPM_RC_LOCKOUT.
    Lockout,
    /// The owner hierarchy's authorization was refused.
    Auth,
    /// The persistent primary does not exist.
    ObjectMissing,
    /// The blob is not one this TPM sealed under this primary, or was altered.
    NotOurs,
    /// The PCR policy does not hold (the caller names the PCRs that changed).
    Policy,
    /// Anything else.
    Other,
}

/// Classifies a TPM response code (`None` for codes tss-esapi does not know) at `stage`.
pub(crate) fn classify(kind: Option<Kind>, stage: Stage) -> Class {
    let Some(kind) = kind else {
        return if stage == Stage::Load {
            Class::NotOurs
        } else {
            Class::Other
        };
    };
    match (kind, stage) {
        (Kind::Lockout, _) => Class::Lockout,
        (Kind::AuthFail | Kind::BadAuth, Stage::Primary | Stage::Seal) => Class::Auth,
        (Kind::Handle, Stage::Primary) => Class::ObjectMissing,
        (Kind::PolicyFail | Kind::Value | Kind::Pcr | Kind::PcrChanged, Stage::Unseal) => {
            Class::Policy
        }
        (kind, Stage::Load) if !is_transient(kind) => Class::NotOurs,
        (Kind::AuthFail | Kind::BadAuth | Kind::Integrity, Stage::Unseal) => Class::NotOurs,
        _ => Class::Other,
    }
}

/// Resource or state conditions a retry (or the operator) can clear: never evidence about the blob.
fn is_transient(kind: Kind) -> bool {
    matches!(
        kind,
        Kind::ObjectMemory
            | Kind::SessionMemory
            | Kind::Memory
            | Kind::SessionHandles
            | Kind::ObjectHandles
            | Kind::Retry
            | Kind::Yielded
            | Kind::Canceled
            | Kind::Testing
            | Kind::NvRate
            | Kind::NvUnavailable
            | Kind::ContextGap
            | Kind::Initialize
            | Kind::Failure
            | Kind::Reboot
            | Kind::Lockout
    )
}

/// The class of a tss-esapi error at `stage`. Wrapper errors (tss-esapi refusing a value before the TPM sees it)
/// while loading a blob mean the blob is malformed.
pub(crate) fn class_of(err: Error, stage: Stage) -> Class {
    match err {
        Error::Tss2Error(rc) => classify(rc.kind(), stage),
        Error::WrapperError(_) if stage == Stage::Load => Class::NotOurs,
        Error::WrapperError(_) => Class::Other,
    }
}

/// The [`SealError`] for a tss-esapi error at `stage`. `primary_handle` is the configured persistent primary.
/// A [`Class::Policy`] error reaching here (the caller could not name a changed PCR) is reported as not ours.
pub(crate) fn to_seal_error(err: Error, stage: Stage, primary_handle: Option<u32>) -> SealError {
    from_class(class_of(err, stage), stage, primary_handle, &err)
}

fn from_class(
    class: Class,
    stage: Stage,
    primary_handle: Option<u32>,
    err: &dyn std::fmt::Display,
) -> SealError {
    match class {
        Class::Lockout => SealError::TpmLockout,
        Class::Auth => SealError::TpmAuth,
        Class::ObjectMissing => match primary_handle {
            Some(handle) => SealError::TpmObjectMissing { handle },
            None => other(stage, err),
        },
        Class::NotOurs | Class::Policy => SealError::Unseal("tpm"),
        Class::Other => other(stage, err),
    }
}

fn other(stage: Stage, err: &dyn std::fmt::Display) -> SealError {
    let what = match stage {
        Stage::Primary => "opening the primary key",
        Stage::Seal => "sealing",
        Stage::Load => "loading the sealed object",
        Stage::Unseal => "unsealing",
    };
    SealError::Tpm {
        detail: format!("{what}: {err}"),
    }
}

/// The error for a TCTI that does not open.
pub(crate) fn no_tpm(tcti: &str, err: Error) -> SealError {
    SealError::NoTpm {
        tcti: tcti.to_owned(),
        detail: err.to_string(),
    }
}

#[cfg(test)]
mod tests;
