//! The sealed blob's byte format (version 1). Every integer is big-endian.
//!
//! ```text
//! "TPM1"                          magic and format version
//! u8 primary                      0 = transient primary from the standard template, 1 = persistent handle
//! [u32 handle]                    only when primary = 1
//! u16 bank                        TPM_ALG_ID of the PCR bank (0x0004 sha1, 0x000B sha256, 0x000C sha384)
//! u8 n ‖ n × u8                   the policy's PCRs, strictly ascending, each < 24 (n = 0: no PCR policy)
//! n × digest                      each PCR's value at seal time (bank digest size each)
//! u16 len ‖ TPMT_PUBLIC           the sealed object's public area, marshalled
//! u16 len ‖ TPM2B_PRIVATE body    the sealed object's private area (encrypted and HMACed by the primary)
//! ```
//!
//! The header is not authenticated here: the public area is authenticated by the TPM when it loads the object
//! (the private area's integrity HMAC covers the public's name), and the unsealer checks that the PCR selection
//! and values reproduce the public's authPolicy and that the primary matches the configuration before using them.

use crate::tpm_config::{PcrBank, PCR_COUNT};

/// The magic and format version.
const MAGIC: &[u8; 4] = b"TPM1";
const PRIMARY_TEMPLATE: u8 = 0;
const PRIMARY_PERSISTENT: u8 = 1;

/// Where the sealed object's parent comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PrimarySpec {
    /// Created from the standard template (and flushed after use).
    Template,
    /// A persistent key at this handle.
    Persistent(u32),
}

impl PrimarySpec {
    pub(crate) fn from_config(handle: Option<u32>) -> Self {
        handle.map_or(Self::Template, Self::Persistent)
    }
}

/// A decoded sealed blob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SealedBlob {
    pub(crate) primary: PrimarySpec,
    pub(crate) bank: PcrBank,
    /// Strictly ascending.
    pub(crate) pcrs: Vec<u8>,
    /// One value per entry of `pcrs`, each `bank.digest_len()` bytes.
    pub(crate) pcr_values: Vec<Vec<u8>>,
    /// Marshalled TPMT_PUBLIC.
    pub(crate) public: Vec<u8>,
    /// TPM2B_PRIVATE buffer.
    pub(crate) private: Vec<u8>,
}

impl SealedBlob {
    /// Encodes the blob; `None` if a field does not fit the format (a bug, not an input error).
    pub(crate) fn encode(&self) -> Option<Vec<u8>> {
        let mut out = Vec::with_capacity(64 + self.public.len() + self.private.len());
        out.extend_from_slice(MAGIC);
        match self.primary {
            PrimarySpec::Template => out.push(PRIMARY_TEMPLATE),
            PrimarySpec::Persistent(h) => {
                out.push(PRIMARY_PERSISTENT);
                out.extend_from_slice(&h.to_be_bytes());
            }
        }
        out.extend_from_slice(&self.bank.alg_id().to_be_bytes());
        out.push(u8::try_from(self.pcrs.len()).ok()?);
        out.extend_from_slice(&self.pcrs);
        if self.pcr_values.len() != self.pcrs.len() {
            return None;
        }
        for v in &self.pcr_values {
            if v.len() != self.bank.digest_len() {
                return None;
            }
            out.extend_from_slice(v);
        }
        for field in [&self.public, &self.private] {
            out.extend_from_slice(&u16::try_from(field.len()).ok()?.to_be_bytes());
            out.extend_from_slice(field);
        }
        Some(out)
    }

    /// Decodes a blob, refusing anything not exactly in the format (`None`).
    pub(crate) fn decode(bytes: &[u8]) -> Option<Self> {
        let mut r = Reader(bytes);
        if r.take(MAGIC.len())? != MAGIC {
            return None;
        }
        let primary = match r.u8()? {
            PRIMARY_TEMPLATE => PrimarySpec::Template,
            PRIMARY_PERSISTENT => PrimarySpec::Persistent(u32::from_be_bytes(r.array()?)),
            _ => return None,
        };
        let bank = PcrBank::from_alg_id(u16::from_be_bytes(r.array()?))?;
        let n = usize::from(r.u8()?);
        let pcrs = r.take(n)?.to_vec();
        let ascending = pcrs.windows(2).all(|w| w.first() < w.get(1));
        if !ascending || pcrs.iter().any(|&p| p >= PCR_COUNT) {
            return None;
        }
        let pcr_values = (0..n)
            .map(|_| r.take(bank.digest_len()).map(<[u8]>::to_vec))
            .collect::<Option<Vec<_>>>()?;
        let public = r.sized()?.to_vec();
        let private = r.sized()?.to_vec();
        if !r.0.is_empty() || public.is_empty() || private.is_empty() {
            return None;
        }
        Some(Self {
            primary,
            bank,
            pcrs,
            pcr_values,
            public,
            private,
        })
    }
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let (head, rest) = self.0.split_at_checked(n)?;
        self.0 = rest;
        Some(head)
    }

    fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
        self.take(N)?.try_into().ok()
    }

    fn u8(&mut self) -> Option<u8> {
        self.take(1)?.first().copied()
    }

    fn sized(&mut self) -> Option<&'a [u8]> {
        let len = u16::from_be_bytes(self.array()?);
        self.take(usize::from(len))
    }
}

#[cfg(test)]
mod tests;
