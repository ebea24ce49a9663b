//! The `[sealer.tpm]` configuration. Always compiled, so an agent configuration naming the TPM backend parses (and
//! is refused with [`SealError::TpmNotBuilt`] at start) in builds without the `tpm` feature.

use std::collections::BTreeSet;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::sealer::SealError;

/// Number of PCRs a TPM 2.0 (PC Client profile) has.
pub const PCR_COUNT: u8 = 24;

/// Smallest and largest persistent object handle in the owner hierarchy range (TPM 2.0 Part 2, 7.2).
const PERSISTENT_FIRST: u32 = 0x8100_0000;
const PERSISTENT_LAST: u32 = 0x81FF_FFFF;

/// TCTI prefixes accepted in [`TpmConfig::tcti`].
const TCTI_KINDS: [&str; 3] = ["device", "swtpm", "mssim"];

/// A PCR bank (the hash algorithm of the PCR values).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PcrBank {
    /// SHA-1 (legacy firmware measures only into this bank).
    Sha1,
    /// SHA-256.
    #[default]
    Sha256,
    /// SHA-384.
    Sha384,
}

impl PcrBank {
    /// The configuration name (`sha1`, `sha256`, `sha384`).
    pub fn name(self) -> &'static str {
        match self {
            Self::Sha1 => "sha1",
            Self::Sha256 => "sha256",
            Self::Sha384 => "sha384",
        }
    }

    /// The size of one PCR value in this bank.
    pub fn digest_len(self) -> usize {
        match self {
            Self::Sha1 => 20,
            Self::Sha256 => 32,
            Self::Sha384 => 48,
        }
    }

    /// The TPM algorithm identifier (TPM_ALG_ID).
    pub fn alg_id(self) -> u16 {
        match self {
            Self::Sha1 => 0x0004,
            Self::Sha256 => 0x000B,
            Self::Sha384 => 0x000C,
        }
    }

    /// The bank with this TPM algorithm identifier.
    pub fn from_alg_id(id: u16) -> Option<Self> {
        [Self::Sha1, Self::Sha256, Self::Sha384]
            .into_iter()
            .find(|b| b.alg_id() == id)
    }
}

impl std::fmt::Display for PcrBank {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// How the TPM backend reaches the TPM and what it binds the store key to (`[sealer.tpm]`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct TpmConfig {
    /// TCTI: "device:/dev/tpmrm0" (default), "swtpm:host=127.0.0.1,port=2321", "mssim:host=..,port=..".
    pub tcti: String,
    /// Persistent handle of an existing primary storage key in the owner hierarchy (e.g. 0x81000001); None = the
    /// primary is created deterministically from the standard template (ECC P-256 restricted decryption,
    /// AES-128-CFB, SHA-256 name) at every seal/unseal and flushed after.
    pub primary_handle: Option<u32>,
    /// PCRs the sealed object's policy binds to (empty = no PCR policy). e.g. [0, 2, 4, 7].
    pub pcrs: Vec<u8>,
    /// PCR bank: "sha1", "sha256" (default) or "sha384".
    pub pcr_bank: PcrBank,
    /// File holding the owner hierarchy's authorization value (raw bytes, trailing newline stripped); None = empty
    /// auth. Auth values are never taken from the command line or the environment.
    pub owner_auth_file: Option<PathBuf>,
}

impl Default for TpmConfig {
    fn default() -> Self {
        Self {
            tcti: "device:/dev/tpmrm0".to_owned(),
            primary_handle: None,
            pcrs: Vec::new(),
            pcr_bank: PcrBank::Sha256,
            owner_auth_file: None,
        }
    }
}

impl TpmConfig {
    /// Checks the configuration without touching the TPM: a known TCTI kind, a persistent-range primary handle,
    /// PCR indices below 24 without duplicates.
    pub fn validate(&self) -> Result<(), SealError> {
        let bad = |msg: String| Err(SealError::TpmConfig(msg));
        let kind = self.tcti.split(':').next().unwrap_or_default();
        if !TCTI_KINDS.contains(&kind) {
            return bad(format!(
                "tcti {:?} is not one of device:<path>, swtpm:host=..,port=.., mssim:host=..,port=..",
                self.tcti
            ));
        }
        if let Some(h) = self.primary_handle {
            if !(PERSISTENT_FIRST..=PERSISTENT_LAST).contains(&h) {
                return bad(format!(
                    "primary_handle {h:#010x} is not a persistent handle (0x81000000..=0x81ffffff)"
                ));
            }
        }
        if self.pcrs.len() > usize::from(PCR_COUNT) {
            return bad(format!(
                "pcrs lists {} PCRs; a TPM has {PCR_COUNT}",
                self.pcrs.len()
            ));
        }
        let mut seen = BTreeSet::new();
        for &pcr in &self.pcrs {
            if pcr >= PCR_COUNT {
                return bad(format!("pcrs: PCR {pcr} does not exist (0..=23)"));
            }
            if !seen.insert(pcr) {
                return bad(format!("pcrs: PCR {pcr} is listed twice"));
            }
        }
        if let Some(path) = &self.owner_auth_file {
            if path.as_os_str().is_empty() {
                return bad(
                    "owner_auth_file is empty; remove it for an empty owner auth".to_owned(),
                );
            }
        }
        Ok(())
    }

    /// The configured PCRs, sorted ascending (the order the blob and the policy use).
    pub fn sorted_pcrs(&self) -> Vec<u8> {
        let mut pcrs = self.pcrs.clone();
        pcrs.sort_unstable();
        pcrs
    }
}

#[cfg(test)]
mod tests;
